import { OutboundUrlRefused } from '../config/outbound-url-policy.ts'
import type { ApiDeps } from './deps.ts'
import { ApiError } from './errors.ts'

/**
 * A URL a tenant gives the engine to call later (a status callback, a
 * webhook app): refused when it is written, not when a call needs it, if it
 * breaks the https rule of webhooks or the outbound URL policy refuses it.
 * `field` is its JSON pointer in the body (`target/url`).
 */
export async function checkTenantUrl(deps: Pick<ApiDeps, 'allowInsecureWebhooks' | 'urlPolicy'>, url: string, field: string): Promise<void> {
  requireHttps(deps, url, field)
  try {
    await deps.urlPolicy.check(url)
  } catch (err) {
    if (err instanceof OutboundUrlRefused) throw invalidUrl(field, `is refused by the outbound URL policy (${err.message})`)
    throw err
  }
}

/** The webhooks' https rule alone (plain http only where the engine allows insecure webhooks: the embedded mode). */
export function requireHttps(deps: Pick<ApiDeps, 'allowInsecureWebhooks'>, url: string, field: string): void {
  if (!deps.allowInsecureWebhooks && !url.startsWith('https://')) throw invalidUrl(field, 'must use https')
}

const invalidUrl = (field: string, message: string) =>
  new ApiError(400, 'validation_failed', `invalid body: /${field} ${message}`, [{ path: `/${field}`, message }])
