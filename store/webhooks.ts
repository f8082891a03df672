import { randomBytes, randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { limitExceeded } from './errors.ts'
import type { SecretBox } from './secrets.ts'
import { toEvent, type CallplaneEvent, type EventType } from './outbox.ts'

export const MAX_WEBHOOKS_PER_ACCOUNT = 10

/** Fonella shape: the secret is returned by create only. */
export interface Webhook {
  id: string
  accountId: string
  url: string
  events: EventType[]
  description: string | null
  enabled: boolean
  failureCount: number
  lastDeliveredAt: string | null
  lastFailedAt: string | null
  disabledReason: string | null
  createdAt: string
  updatedAt: string
}

export interface WebhookInput {
  url: string
  events: EventType[]
  description?: string | null
  enabled?: boolean
}

interface Row {
  id: string; seq: string; account_id: string; url: string; events: string[]; description: string | null; secret_sealed: string
  enabled: boolean; failure_count: number; last_delivered_at: Date | null; last_failed_at: Date | null; disabled_reason: string | null
  created_at: Date; updated_at: Date
}
const toWebhook = (r: Row): Webhook => ({
  id: r.id, accountId: r.account_id, url: r.url, events: r.events as EventType[], description: r.description, enabled: r.enabled,
  failureCount: r.failure_count, lastDeliveredAt: r.last_delivered_at?.toISOString() ?? null, lastFailedAt: r.last_failed_at?.toISOString() ?? null,
  disabledReason: r.disabled_reason, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

/** Standard Webhooks secrets: `whsec_` + base64 of 24 random bytes. */
export const generateWebhookSecret = () => `whsec_${randomBytes(24).toString('base64')}`

/** A delivery the worker claimed: the event, where it goes and the secret to sign with. */
export interface ClaimedDelivery {
  id: string
  attempts: number
  webhookId: string
  url: string
  secret: string
  event: CallplaneEvent
}

export class WebhookRepository {
  constructor(private readonly db: Queryable, private readonly secrets: SecretBox) {}

  async create(accountId: string, input: WebhookInput): Promise<{ webhook: Webhook; secret: string }> {
    const { rows: [n] } = await this.db.query<{ n: string }>('SELECT count(*) AS n FROM webhooks WHERE account_id = $1', [accountId])
    if (Number(n!.n) >= MAX_WEBHOOKS_PER_ACCOUNT) throw limitExceeded('webhooks', MAX_WEBHOOKS_PER_ACCOUNT)
    const secret = generateWebhookSecret()
    const { rows } = await this.db.query<Row>(
      `INSERT INTO webhooks (id, account_id, url, events, description, secret_sealed, enabled)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
      [randomUUID(), accountId, input.url, [...new Set(input.events)], input.description ?? null, this.secrets.seal(secret), input.enabled ?? true],
    )
    return { webhook: toWebhook(rows[0]!), secret }
  }

  async get(accountId: string, id: string): Promise<Webhook | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM webhooks WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toWebhook(rows[0]) : null
  }

  list(accountId: string, page: PageRequest): Promise<Page<Webhook>> {
    return pageQuery<Row, Webhook>(this.db, { table: 'webhooks', accountId, order: 'asc', page }, toWebhook)
  }

  /** Re-enabling (enabled: false → true) resets failureCount, as in Fonella. */
  async update(accountId: string, id: string, patch: Partial<WebhookInput>): Promise<Webhook | null> {
    const { rows } = await this.db.query<Row>(
      `UPDATE webhooks SET
         url = COALESCE($3, url),
         events = COALESCE($4, events),
         description = CASE WHEN $5::boolean THEN $6 ELSE description END,
         failure_count = CASE WHEN $7::boolean IS TRUE AND NOT enabled THEN 0 ELSE failure_count END,
         disabled_reason = CASE WHEN $7::boolean IS NOT NULL THEN NULL ELSE disabled_reason END,
         enabled = COALESCE($7, enabled),
         updated_at = now()
       WHERE account_id = $1 AND id = $2 RETURNING *`,
      [accountId, id, patch.url ?? null, patch.events ? [...new Set(patch.events)] : null, patch.description !== undefined, patch.description ?? null, patch.enabled ?? null],
    )
    return rows[0] ? toWebhook(rows[0]) : null
  }

  async delete(accountId: string, id: string): Promise<boolean> {
    const { rowCount } = await this.db.query('DELETE FROM webhooks WHERE account_id = $1 AND id = $2', [accountId, id])
    return (rowCount ?? 0) > 0
  }

  /** Delivery counts by status for one webhook (observability and tests). */
  async deliveryStats(accountId: string, id: string): Promise<Record<string, number>> {
    const { rows } = await this.db.query<{ status: string; n: string }>(
      'SELECT status, count(*) AS n FROM webhook_deliveries WHERE account_id = $1 AND webhook_id = $2 GROUP BY status', [accountId, id])
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]))
  }

  // ---- worker side ----

  /**
   * Claims up to `limit` due deliveries of enabled webhooks by leasing them
   * for `leaseMs`; a claim that is never settled (crash, restart) is due again
   * when the lease runs out.
   */
  async claimDue(limit: number, leaseMs: number): Promise<ClaimedDelivery[]> {
    const { rows } = await this.db.query<{
      id: string; attempts: number; webhook_id: string; url: string; secret_sealed: string
      ev_id: string; type: string; account_id: string; call_id: string | null; created_at: Date; data: Record<string, unknown>
    }>(
      `WITH due AS (
         SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
          WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND w.enabled
            AND (d.locked_until IS NULL OR d.locked_until < now())
          ORDER BY d.next_attempt_at, d.seq LIMIT $1 FOR UPDATE OF d SKIP LOCKED)
       UPDATE webhook_deliveries d SET locked_until = now() + ($2 || ' milliseconds')::interval, attempts = d.attempts + 1
         FROM due, webhooks w, events e
        WHERE d.id = due.id AND w.id = d.webhook_id AND e.id = d.event_id
       RETURNING d.id, d.attempts, d.webhook_id, w.url, w.secret_sealed, e.id AS ev_id, e.type, e.account_id, e.call_id, e.created_at, e.data`,
      [limit, String(leaseMs)],
    )
    return rows.map((r) => ({
      id: r.id, attempts: r.attempts, webhookId: r.webhook_id, url: r.url, secret: this.secrets.open(r.secret_sealed),
      event: toEvent({ id: r.ev_id, type: r.type, account_id: r.account_id, call_id: r.call_id, created_at: r.created_at, data: r.data }),
    }))
  }

  async markDelivered(deliveryId: string, webhookId: string, status: number): Promise<void> {
    await this.db.query(
      `WITH d AS (UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), locked_until = NULL, last_status = $3, last_error = NULL WHERE id = $1)
       UPDATE webhooks SET last_delivered_at = now(), failure_count = 0 WHERE id = $2`,
      [deliveryId, webhookId, status],
    )
  }

  /**
   * Records a failed attempt: the delivery is retried at `retryAt` (or given up
   * when null), and the webhook's failureCount grows; at `disableAfter`
   * consecutive failures the webhook is disabled. Returns whether it was.
   */
  async markFailed(deliveryId: string, webhookId: string, error: string, status: number | null, retryAt: Date | null, disableAfter: number): Promise<boolean> {
    const { rows } = await this.db.query<{ enabled: boolean }>(
      `WITH d AS (UPDATE webhook_deliveries SET status = CASE WHEN $4::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
                    next_attempt_at = COALESCE($4::timestamptz, next_attempt_at), locked_until = NULL, last_error = $3, last_status = $5
                  WHERE id = $1)
       UPDATE webhooks SET failure_count = failure_count + 1, last_failed_at = now(),
              enabled = CASE WHEN failure_count + 1 >= $6 THEN false ELSE enabled END,
              disabled_reason = CASE WHEN failure_count + 1 >= $6 AND enabled THEN 'too many consecutive failures' ELSE disabled_reason END
        WHERE id = $2 RETURNING enabled`,
      [deliveryId, webhookId, error.slice(0, 500), retryAt, status, disableAfter],
    )
    return rows[0] ? !rows[0].enabled : false
  }
}
