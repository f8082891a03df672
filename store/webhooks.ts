import { randomUUID } from 'node:crypto'
import { iso, pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { limitExceeded } from './errors.ts'
import type { SecretBox } from './secrets.ts'
import { generateSigningSecret } from './webhook-signature.ts'
import type { SigningSecretRepository } from './signing-secrets.ts'
import { toEvent, type CallplaneEvent, type EventType } from './outbox.ts'

export const MAX_WEBHOOKS_PER_ACCOUNT = 10

/**
 * `active`: delivering; `failing`: enabled, every attempt since `failingSince`
 * failed (events keep being queued and retried); `disabled`: no attempts (by
 * the user, or by the engine after failing continuously for WEBHOOK_DISABLE_AFTER).
 */
export const WEBHOOK_STATUSES = ['active', 'failing', 'disabled'] as const
export type WebhookStatus = (typeof WEBHOOK_STATUSES)[number]

/** Fonella shape: the secret is returned by create only. */
export interface Webhook {
  id: string
  accountId: string
  url: string
  events: EventType[]
  description: string | null
  enabled: boolean
  status: WebhookStatus
  failureCount: number
  failingSince: string | null
  lastDeliveredAt: string | null
  lastFailedAt: string | null
  lastError: string | null
  disabledAt: string | null
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
  enabled: boolean; failure_count: number; failing_since: Date | null; last_delivered_at: Date | null; last_failed_at: Date | null
  last_error: string | null; disabled_at: Date | null; disabled_reason: string | null; created_at: Date; updated_at: Date
}
const toWebhook = (r: Row): Webhook => ({
  id: r.id, accountId: r.account_id, url: r.url, events: r.events as EventType[], description: r.description, enabled: r.enabled,
  status: !r.enabled ? 'disabled' : r.failing_since ? 'failing' : 'active',
  failureCount: r.failure_count, failingSince: iso(r.failing_since), lastDeliveredAt: iso(r.last_delivered_at), lastFailedAt: iso(r.last_failed_at),
  lastError: r.last_error, disabledAt: iso(r.disabled_at), disabledReason: r.disabled_reason, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})


/** A delivery the worker claimed: the event, where it goes and the secret to sign with. */
export interface ClaimedDelivery {
  id: string
  /**
   * `webhook`: a /v1/webhooks subscription (POST `{type, timestamp, data}`).
   * `status_callback`: a call's status callback (status-callbacks.ts), sent
   * with `method`, signed with the account signing secret; `sequence` is its
   * place among the call's statuses (0, 1, ...).
   */
  kind: 'webhook' | 'status_callback'
  method: 'POST' | 'GET'
  sequence: number | null
  /** This attempt's number (1 = first); also the claim's fencing token. */
  attempts: number
  /** The previous attempt, or when the delivery was queued. */
  previousAttemptAt: Date
  webhookId: string
  url: string
  secret: string
  event: CallplaneEvent
}

export class WebhookRepository {
  constructor(
    private readonly db: Queryable,
    private readonly secrets: SecretBox,
    /** Runs `fn` in one transaction (the claim's lane locks and its count are one unit). */
    private readonly transaction: <T>(fn: (c: Queryable) => Promise<T>) => Promise<T>,
    /** The account signing secrets status callbacks are signed with. */
    private readonly signingSecrets: Pick<SigningSecretRepository, 'secret'>,
  ) {}

  async create(accountId: string, input: WebhookInput): Promise<{ webhook: Webhook; secret: string }> {
    const { rows: [n] } = await this.db.query<{ n: string }>(`SELECT count(*) AS n FROM webhooks WHERE account_id = $1 AND kind = 'webhook'`, [accountId])
    if (Number(n!.n) >= MAX_WEBHOOKS_PER_ACCOUNT) throw limitExceeded('webhooks', MAX_WEBHOOKS_PER_ACCOUNT)
    const secret = generateSigningSecret()
    const { rows } = await this.db.query<Row>(
      `INSERT INTO webhooks (id, account_id, url, events, description, secret_sealed, enabled, disabled_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $7 THEN NULL ELSE now() END) RETURNING *`,
      [randomUUID(), accountId, input.url, [...new Set(input.events)], input.description ?? null, this.secrets.seal(secret), input.enabled ?? true],
    )
    return { webhook: toWebhook(rows[0]!), secret }
  }

  async get(accountId: string, id: string): Promise<Webhook | null> {
    const { rows } = await this.db.query<Row>(`SELECT * FROM webhooks WHERE account_id = $1 AND id = $2 AND kind = 'webhook'`, [accountId, id])
    return rows[0] ? toWebhook(rows[0]) : null
  }

  list(accountId: string, page: PageRequest): Promise<Page<Webhook>> {
    // A call's status callback target (status-callbacks.ts) is the engine's, not a subscription to list.
    return pageQuery<Row, Webhook>(this.db, { table: 'webhooks', accountId, where: [`kind = 'webhook'`], order: 'asc', page }, toWebhook)
  }

  /**
   * `enabled: true` on a disabled webhook starts it afresh (failureCount 0, no
   * failingSince/disabledAt/disabledReason, as in Fonella); on any webhook it makes
   * its pending deliveries due now, so a backlog goes out at once instead of at
   * each delivery's next retry. `enabled: false` stops attempts; the webhook then
   * queues nothing until it is enabled again (the user's choice, unlike an
   * automatic disable, which keeps queuing).
   */
  async update(accountId: string, id: string, patch: Partial<WebhookInput>): Promise<Webhook | null> {
    const { rows } = await this.db.query<Row>(
      `WITH upd AS (
         UPDATE webhooks SET
           url = COALESCE($3, url),
           events = COALESCE($4, events),
           description = CASE WHEN $5::boolean THEN $6 ELSE description END,
           failure_count = CASE WHEN $7::boolean IS TRUE AND NOT enabled THEN 0 ELSE failure_count END,
           failing_since = CASE WHEN $7::boolean IS TRUE AND NOT enabled THEN NULL ELSE failing_since END,
           disabled_at = CASE WHEN $7::boolean IS TRUE THEN NULL WHEN $7::boolean IS FALSE THEN COALESCE(disabled_at, now()) ELSE disabled_at END,
           disabled_reason = CASE WHEN $7::boolean IS NOT NULL THEN NULL ELSE disabled_reason END,
           enabled = COALESCE($7, enabled),
           updated_at = now()
         WHERE account_id = $1 AND id = $2 AND kind = 'webhook' RETURNING *),
       flush AS (
         UPDATE webhook_deliveries SET next_attempt_at = now()
          WHERE webhook_id = $2 AND status = 'pending' AND next_attempt_at > now() AND $7::boolean IS TRUE AND EXISTS (SELECT 1 FROM upd))
       SELECT * FROM upd`,
      [accountId, id, patch.url ?? null, patch.events ? [...new Set(patch.events)] : null, patch.description !== undefined, patch.description ?? null, patch.enabled ?? null],
    )
    return rows[0] ? toWebhook(rows[0]) : null
  }

  async delete(accountId: string, id: string): Promise<boolean> {
    const { rowCount } = await this.db.query(`DELETE FROM webhooks WHERE account_id = $1 AND id = $2 AND kind = 'webhook'`, [accountId, id])
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
   * Claims up to `limit` due deliveries of enabled webhooks by leasing them for
   * `leaseMs`; a claim that is never settled (crash, restart) is due again when
   * the lease runs out. Each webhook is a lane with at most `perEndpoint`
   * deliveries leased at once, on all nodes together: a slow or hanging endpoint
   * holds only its own slots and the others' deliveries are claimed past it.
   * Within a lane, oldest due first.
   *
   * A call's status callback lane is ordered: one delivery in flight at a
   * time, and only its oldest pending one, so status N+1 never goes out before
   * status N is settled (delivered, or given up), whatever retries N needs.
   * Its secret is the account signing secret, read now (a rotation applies to
   * retries); an account that has none yet gets it created here.
   *
   * One transaction, two statements: first lock the lanes no other node is
   * claiming from right now (SKIP LOCKED: that node serves them), then count
   * their leases and claim. The second statement's snapshot is taken after the
   * locks are held, so it sees every lease a previous claimer of the lane
   * committed, and the bound holds across nodes (in one statement, two nodes
   * could both count a lane's leases before either committed).
   */
  async claimDue(opts: { limit: number; leaseMs: number; perEndpoint: number }): Promise<ClaimedDelivery[]> {
    const rows = await this.transaction(async (c) => {
      const { rows: lanes } = await c.query<{ id: string }>(
        `SELECT w.id FROM webhooks w
          WHERE w.enabled AND EXISTS (SELECT 1 FROM webhook_deliveries d
                                       WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.next_attempt_at <= now())
          FOR NO KEY UPDATE OF w SKIP LOCKED`)
      if (lanes.length === 0) return []
      return (await c.query<{
        id: string; attempts: number; previous_attempt_at: Date; webhook_id: string; url: string; secret_sealed: string | null
        kind: 'webhook' | 'status_callback'; method: 'POST' | 'GET'; sequence: string | null
        ev_id: string; type: string; account_id: string; call_id: string | null; created_at: Date; data: Record<string, unknown>
      }>(
        `WITH lanes AS (
           SELECT w.id, w.kind = 'status_callback' AS ordered,
                  CASE WHEN w.kind = 'status_callback' THEN 1 ELSE $3::int END
                  - (SELECT count(*) FROM webhook_deliveries x
                      WHERE x.webhook_id = w.id AND x.status = 'pending' AND x.locked_until IS NOT NULL AND x.locked_until > now())::int AS free
             FROM webhooks w WHERE w.id = ANY($4::uuid[]) AND w.enabled),
         due AS (
           SELECT d.id, d.previous_attempt_at FROM lanes l CROSS JOIN LATERAL (
             SELECT d.id, d.next_attempt_at, d.seq, COALESCE(d.last_attempt_at, d.created_at) AS previous_attempt_at FROM webhook_deliveries d
              WHERE d.webhook_id = l.id AND d.status = 'pending' AND d.next_attempt_at <= now()
                AND (d.locked_until IS NULL OR d.locked_until <= now())
                -- an ordered lane sends its oldest pending delivery only
                AND (NOT l.ordered OR NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.webhook_id = l.id AND p.status = 'pending' AND p.seq < d.seq))
              ORDER BY d.next_attempt_at, d.seq LIMIT GREATEST(l.free, 0)
              FOR UPDATE OF d SKIP LOCKED) d
           ORDER BY d.next_attempt_at, d.seq LIMIT $1)
         UPDATE webhook_deliveries d SET locked_until = now() + ($2 || ' milliseconds')::interval, attempts = d.attempts + 1, last_attempt_at = now()
           FROM due, webhooks w LEFT JOIN account_signing_secrets s ON w.kind = 'status_callback' AND s.account_id = w.account_id, events e
          WHERE d.id = due.id AND w.id = d.webhook_id AND e.id = d.event_id
         RETURNING d.id, d.attempts, due.previous_attempt_at, d.webhook_id, w.url, COALESCE(w.secret_sealed, s.secret_sealed) AS secret_sealed,
                   w.kind, w.method,
                   CASE WHEN w.kind = 'status_callback' THEN (SELECT count(*) FROM webhook_deliveries q WHERE q.webhook_id = d.webhook_id AND q.seq < d.seq) END AS sequence,
                   e.id AS ev_id, e.type, e.account_id, e.call_id, e.created_at, e.data`,
        [opts.limit, String(opts.leaseMs), opts.perEndpoint, lanes.map((l) => l.id)],
      )).rows
    })
    return Promise.all(rows.map(async (r) => ({
      id: r.id, attempts: r.attempts, previousAttemptAt: r.previous_attempt_at, webhookId: r.webhook_id, url: r.url,
      kind: r.kind, method: r.method, sequence: r.sequence === null ? null : Number(r.sequence),
      secret: r.secret_sealed ? this.secrets.open(r.secret_sealed) : await this.signingSecrets.secret(r.account_id),
      event: toEvent({ id: r.ev_id, type: r.type, account_id: r.account_id, call_id: r.call_id, created_at: r.created_at, data: r.data }),
    })))
  }

  /**
   * Records a 2xx: the delivery is done and the webhook healthy. When the webhook
   * was failing it has recovered: its other pending deliveries (waiting for their
   * next retry, possibly hours away) become due now. Returns how many did.
   */
  async markDelivered(d: Pick<ClaimedDelivery, 'id' | 'webhookId'>, status: number): Promise<{ flushed: number }> {
    // A success stands even if the lease ran out meanwhile (the other claim's
    // settle then finds the row delivered and changes nothing).
    const { rows } = await this.db.query<{ flushed: string }>(
      `WITH done AS (
         UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), locked_until = NULL, last_status = $3, last_error = NULL
          WHERE id = $1 AND status = 'pending' RETURNING id),
       was AS (SELECT failing_since FROM webhooks WHERE id = $2),
       healthy AS (
         -- A success on a webhook the engine disabled meanwhile (another attempt's
         -- failure crossed the window while this one was in flight) enables it again.
         UPDATE webhooks SET last_delivered_at = now(), failure_count = 0, failing_since = NULL,
                enabled = enabled OR disabled_reason IS NOT NULL,
                disabled_at = CASE WHEN disabled_reason IS NOT NULL THEN NULL ELSE disabled_at END, disabled_reason = NULL
          WHERE id = $2 RETURNING id),
       flush AS (
         UPDATE webhook_deliveries SET next_attempt_at = now()
          WHERE webhook_id = $2 AND status = 'pending' AND id <> $1 AND next_attempt_at > now()
            AND (SELECT failing_since FROM was) IS NOT NULL RETURNING id)
       SELECT (SELECT count(*) FROM flush) AS flushed`,
      [d.id, d.webhookId, status],
    )
    return { flushed: Number(rows[0]?.flushed ?? 0) }
  }

  /**
   * Records a failed attempt of a claim (fenced by its attempt number: a stale
   * claim whose lease another node took over changes nothing).
   *  - `retryAt`: when to try again. When the schedule is used up (`exhausted`)
   *    the delivery is given up (`failed`) only if the endpoint accepted another
   *    delivery since this one's previous attempt: the receiver works and refuses
   *    this event. Otherwise the endpoint is down and the delivery keeps waiting
   *    for it (at `retryAt`, the schedule's last delay).
   *  - The webhook's failureCount grows and `failingSince` starts; a webhook
   *    failing for `disableAfterMs` is disabled, its deliveries (and new events)
   *    wait for it to be enabled again.
   *  - A call's status callback lane (ordered: nothing behind the failing
   *    delivery can go first) gives a delivery up when its schedule is used up,
   *    so the call's later statuses are still sent; it is never disabled (no
   *    one could enable it again).
   */
  async markFailed(
    d: Pick<ClaimedDelivery, 'id' | 'webhookId' | 'attempts' | 'previousAttemptAt'>,
    outcome: { error: string; status: number | null; retryAt: Date; exhausted: boolean; disableAfterMs: number; disabledReason: string },
  ): Promise<{ settled: boolean; gaveUp: boolean; disabled: boolean }> {
    const { rows } = await this.db.query<{ gave_up: boolean; enabled: boolean; was_enabled: boolean }>(
      `WITH was AS (SELECT enabled, last_delivered_at, kind FROM webhooks WHERE id = $2),
       settled AS (
         UPDATE webhook_deliveries SET
           status = CASE WHEN $6::boolean AND ((SELECT last_delivered_at FROM was) > $7::timestamptz OR (SELECT kind FROM was) = 'status_callback')
                         THEN 'failed' ELSE 'pending' END,
           next_attempt_at = $4::timestamptz, locked_until = NULL, last_error = $3, last_status = $5
          WHERE id = $1 AND status = 'pending' AND attempts = $8 RETURNING status),
       hook AS (
         UPDATE webhooks SET failure_count = failure_count + 1, last_failed_at = now(), last_error = $3,
                failing_since = COALESCE(failing_since, now()),
                enabled = CASE WHEN kind = 'webhook' AND failing_since <= now() - ($9 || ' milliseconds')::interval THEN false ELSE enabled END,
                disabled_at = CASE WHEN kind = 'webhook' AND enabled AND failing_since <= now() - ($9 || ' milliseconds')::interval THEN now() ELSE disabled_at END,
                disabled_reason = CASE WHEN kind = 'webhook' AND enabled AND failing_since <= now() - ($9 || ' milliseconds')::interval THEN $10 ELSE disabled_reason END
          WHERE id = $2 AND EXISTS (SELECT 1 FROM settled) RETURNING enabled)
       SELECT (SELECT status = 'failed' FROM settled) AS gave_up, (SELECT enabled FROM hook) AS enabled, (SELECT enabled FROM was) AS was_enabled`,
      [d.id, d.webhookId, outcome.error.slice(0, 500), outcome.retryAt, outcome.status, outcome.exhausted, d.previousAttemptAt, d.attempts,
        String(outcome.disableAfterMs), outcome.disabledReason],
    )
    const r = rows[0]
    const settled = r?.enabled != null
    return { settled, gaveUp: r?.gave_up === true, disabled: settled && r!.was_enabled && !r!.enabled }
  }

  /**
   * Removes a call's status callback target once the call has ended and every
   * status it queued is settled: nothing more can be queued on it (the end was
   * its last status, and it committed with its delivery), so the lanes the
   * worker scans stay as few as the calls still being reported.
   */
  async retireStatusCallback(webhookId: string): Promise<void> {
    await this.db.query(
      `DELETE FROM webhooks w WHERE w.id = $1 AND w.kind = 'status_callback'
          AND EXISTS (SELECT 1 FROM calls c WHERE c.id = w.call_id AND c.ended_at IS NOT NULL)
          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending')`,
      [webhookId],
    )
  }

  /** Gives a claim back unattempted (the worker is stopping): due again at once, on any node. */
  async releaseClaim(d: Pick<ClaimedDelivery, 'id' | 'attempts'>): Promise<void> {
    await this.db.query(
      `UPDATE webhook_deliveries SET locked_until = NULL, attempts = attempts - 1 WHERE id = $1 AND status = 'pending' AND attempts = $2`,
      [d.id, d.attempts],
    )
  }
}
