import type { Queryable } from './common.ts'
import { noteDeliveriesQueued } from './outbox.ts'

/**
 * Telefon's `status_callback`: where a call's status changes are sent, and how.
 * Set on `POST /v1/calls`, or on a number for every inbound call to it.
 *
 * The deliveries ride on the webhook machinery (webhooks.ts, the outbox, the
 * control-api's WebhookWorker): each such call gets a delivery target of its
 * own in `webhooks` (kind `status_callback`, `call_id`), hidden from
 * /v1/webhooks, whose lane sends one delivery at a time, oldest first, so the
 * receiver sees the statuses in the order they happened, retries included.
 * Each status change queues one delivery in the transaction that makes it.
 */
export const STATUS_CALLBACK_METHODS = ['POST', 'GET'] as const
export type StatusCallbackMethod = (typeof STATUS_CALLBACK_METHODS)[number]

export interface StatusCallback {
  url: string
  method: StatusCallbackMethod
}

/** A stored pair of columns as a StatusCallback (null when no URL is set). */
export const toStatusCallback = (url: string | null, method: string | null): StatusCallback | null =>
  url ? { url, method: method === 'GET' ? 'GET' : 'POST' } : null

/**
 * In the transaction that creates a call: gives it its status callback (the
 * one asked for, else, for an inbound call to a number, the number's) and the
 * delivery target its statuses are queued on. Returns what the call got.
 */
export async function attachStatusCallback(
  c: Queryable,
  call: { id: string; direction: 'inbound' | 'outbound'; numberId: string | null },
  asked: StatusCallback | null | undefined,
): Promise<StatusCallback | null> {
  const fromNumber = !asked && call.direction === 'inbound' && call.numberId !== null
  if (!asked && !fromNumber) return null
  const { rows } = await c.query<{ status_callback: string; status_callback_method: string }>(
    `WITH wanted AS (
       SELECT $2::text AS url, $3::text AS method WHERE $2::text IS NOT NULL
       UNION ALL
       SELECT n.status_callback, n.status_callback_method FROM numbers n
        WHERE $2::text IS NULL AND n.id = $4::uuid AND n.status_callback IS NOT NULL),
     upd AS (
       UPDATE calls SET status_callback = wanted.url, status_callback_method = COALESCE(wanted.method, 'POST')
         FROM wanted WHERE calls.id = $1 RETURNING calls.id, calls.account_id, calls.status_callback, calls.status_callback_method),
     target AS (
       INSERT INTO webhooks (id, account_id, url, events, kind, call_id, method)
       SELECT gen_random_uuid(), account_id, status_callback, '{}', 'status_callback', id, status_callback_method FROM upd)
     SELECT status_callback, status_callback_method FROM upd`,
    [call.id, asked?.url ?? null, asked?.method ?? null, fromNumber ? call.numberId : null],
  )
  return rows[0] ? toStatusCallback(rows[0].status_callback, rows[0].status_callback_method) : null
}

/** In the transaction of a status change: queues its event for the call's status callback. */
export async function queueStatusCallback(c: Queryable, callId: string, eventId: string): Promise<void> {
  const queued = await c.query(
    `INSERT INTO webhook_deliveries (id, account_id, webhook_id, event_id)
     SELECT gen_random_uuid(), account_id, id, $2 FROM webhooks WHERE call_id = $1`,
    [callId, eventId],
  )
  if (queued.rowCount) noteDeliveriesQueued(c)
}
