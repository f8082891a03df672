import type { ClaimedDelivery } from '../store/webhooks.ts'
import type { Call } from '../store/calls.ts'

/**
 * What a call's status callback receives (Telefon's `status_callback`), one
 * request per status change, in order. Field names follow Telefon's Call
 * object (`id`, `status`, `direction`, `from`, `to`, `duration`,
 * `start_time`, `end_time`) plus what a receiver needs to order and
 * de-duplicate them (Twilio's `sequence_number` and `timestamp`):
 *
 * | field | meaning |
 * | --- | --- |
 * | `id` | the call id |
 * | `account_id` | the call's account |
 * | `status` | the status the call reached: queued, ringing, in-progress, completed, busy, no-answer, failed, canceled |
 * | `direction` | inbound or outbound |
 * | `from`, `to` | the parties |
 * | `timestamp` | when the call reached this status (ISO 8601) |
 * | `sequence_number` | 0 for the call's first status, then 1, 2, ... |
 * | `start_time` | when the call was created |
 * | `answer_time` | when it was answered, else null |
 * | `end_time` | when it ended, else null |
 * | `duration` | seconds from answer to end once ended (0 if never answered), else null |
 * | `ended_reason`, `hangup_by` | why it ended and who ended it, once ended, else null |
 *
 * POST sends them as a JSON body; GET as query parameters (nulls left out),
 * and then the full URL is what is signed, as a GET has no body.
 */
export const STATUS_CALLBACK_FIELDS_DOC = 'Each status change is sent as `id`, `account_id`, `status`, `direction`, `from`, `to`, `timestamp` (when the status was reached), ' +
  '`sequence_number` (0, 1, 2, ... per call), `start_time`, `answer_time`, `end_time`, `duration` (seconds answered, once ended), `ended_reason`, `hangup_by`: ' +
  'a JSON body for POST, query parameters for GET (null fields left out). Statuses arrive one at a time in the order they happened; a failed request is retried ' +
  'with backoff before the next status is sent. Requests are signed with the account signing secret (GET /v1/signing-secret) as Standard Webhooks ' +
  '(`webhook-id` stable across retries, `webhook-timestamp`, `webhook-signature`); a GET signs its full URL instead of a body (check it with the library\'s sign(id, timestamp, url): verify() expects a JSON body).'

export interface StatusCallbackRequest {
  method: 'POST' | 'GET'
  url: string
  /** The JSON body (POST only). */
  body: string | null
  /** What the signature covers: the body, or for a GET the full URL. */
  signed: string
}

/** The request for one claimed status callback delivery, from the call as its status event recorded it. */
export function statusCallbackRequest(d: ClaimedDelivery): StatusCallbackRequest {
  const call = (d.event.data as { call?: Partial<Call> }).call ?? {}
  const fields: Record<string, string | number | null> = {
    id: call.id ?? d.event.callId,
    account_id: d.event.accountId,
    status: call.status ?? null,
    direction: call.direction ?? null,
    from: call.from ?? null,
    to: call.to ?? null,
    timestamp: d.event.createdAt,
    sequence_number: d.sequence ?? 0,
    start_time: call.createdAt ?? null,
    answer_time: call.answeredAt ?? null,
    end_time: call.endedAt ?? null,
    duration: call.duration ?? null,
    ended_reason: call.endedReason ?? null,
    hangup_by: call.hangupBy ?? null,
  }
  if (d.method === 'GET') {
    const u = new URL(d.url)
    for (const [k, v] of Object.entries(fields)) if (v !== null) u.searchParams.set(k, String(v))
    return { method: 'GET', url: u.toString(), body: null, signed: u.toString() }
  }
  const body = JSON.stringify(fields)
  return { method: 'POST', url: d.url, body, signed: body }
}
