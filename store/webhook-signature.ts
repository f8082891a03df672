import { randomBytes, randomUUID } from 'node:crypto'
import { Webhook } from 'standardwebhooks'

/**
 * The one signer of the engine's outbound HTTP requests to tenants: webhook
 * deliveries, agent HTTP tools, status callbacks and webhook apps all sign
 * with the Standard Webhooks scheme (https://www.standardwebhooks.com/):
 *
 *   webhook-id: <id>             (stable across retries of one message)
 *   webhook-timestamp: <unix s>
 *   webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">
 *
 * keyed with the base64 key of a `whsec_…` secret. The HMAC itself is the
 * `standardwebhooks` package's, so receivers verify with any of its ports.
 *
 * It sits in store/ beside the secrets it signs with (generated here, sealed
 * by secrets.ts, kept by the repositories) and below every layer that sends
 * (control-api, call, agent). It is pure: no SQL, no database handle, which
 * is why agent/ may import this one file of store/ (.dependency-cruiser.cjs).
 */

/** Standard Webhooks secrets: `whsec_` + base64 of 24 random bytes. */
export const generateSigningSecret = (): string => `whsec_${randomBytes(24).toString('base64')}`

/** `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` for one message. */
export function signPayload(secret: string, id: string, timestamp: Date, body: string): string {
  return new Webhook(secret).sign(id, timestamp, body)
}

export interface SignatureHeaders {
  'webhook-id': string
  'webhook-timestamp': string
  'webhook-signature': string
}

/**
 * The three headers of one signed request. `id` defaults to a fresh
 * `msg_<uuid>`; pass the same id on every retry of a message so receivers
 * can de-duplicate. A GET has no body: sign what the receiver sees instead
 * (the full URL, query included), and say so in the receiver's docs.
 */
export function signatureHeaders(secret: string, body: string, opts: { id?: string; now?: Date } = {}): SignatureHeaders {
  const id = opts.id ?? `msg_${randomUUID()}`
  const now = opts.now ?? new Date()
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
    'webhook-signature': signPayload(secret, id, now, body),
  }
}
