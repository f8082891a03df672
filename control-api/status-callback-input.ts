import { Type } from '@sinclair/typebox'
import { STATUS_CALLBACK_METHODS, type StatusCallback } from '../store/status-callbacks.ts'
import { Nullable, StringEnum } from './schemas.ts'
import type { ApiDeps } from './deps.ts'
import { ApiError } from './errors.ts'
import { checkTenantUrl } from './tenant-url.ts'
import { STATUS_CALLBACK_FIELDS_DOC } from './status-callback-request.ts'

/**
 * Telefon's `status_callback` and `status_callback_method`, verbatim, on
 * `POST /v1/calls` and `POST/PATCH /v1/numbers`; shown on the call and the
 * number as `statusCallback: {url, method}`.
 */
const Url = Type.String({
  format: 'uri', pattern: '^https?://', maxLength: 2000,
  description: `Telefon status_callback: every status change of the call (queued, ringing, in-progress, completed, busy, no-answer, failed, canceled) is sent here. ${STATUS_CALLBACK_FIELDS_DOC} ` +
    'https unless the engine runs embedded; an address the outbound URL policy refuses (loopback, private, link-local outside the embedded mode) is a 400.',
})
const Method = StringEnum(STATUS_CALLBACK_METHODS, { description: 'How status_callback is called: POST (default, JSON body) or GET (query parameters). Needs status_callback.' })

/** For POST /v1/calls. */
export const CallStatusCallbackFields = { status_callback: Type.Optional(Url), status_callback_method: Type.Optional(Method) }
/** For POST/PATCH /v1/numbers: applied to every inbound call to the number; PATCH `status_callback: null` removes it. */
export const NumberStatusCallbackFields = {
  status_callback: Type.Optional(Nullable({ ...Url, description: `Applied to every inbound call to the number. ${Url.description}` })),
  status_callback_method: Type.Optional(Method),
}
export const StatusCallbackSchema = Nullable(Type.Object({ url: Type.String(), method: StringEnum(STATUS_CALLBACK_METHODS) }, {
  description: 'Where the statuses are sent (status_callback) and how (status_callback_method); null when none',
}))

const invalid = (field: string, message: string) =>
  new ApiError(400, 'validation_failed', `invalid body: /${field} ${message}`, [{ path: `/${field}`, message }])

/**
 * The status callback a body asks for: `undefined` when it names neither
 * field (nothing changes), `null` to remove it (PATCH), else the URL checked
 * like every tenant URL (https rule of webhooks, outbound URL policy) and
 * its method. `current` is the stored one for a PATCH: a method alone
 * changes its method, a URL alone keeps its method.
 */
export async function statusCallbackOf(
  deps: Pick<ApiDeps, 'allowInsecureWebhooks' | 'urlPolicy'>,
  body: { status_callback?: string | null | undefined; status_callback_method?: StatusCallback['method'] | undefined },
  current: StatusCallback | null = null,
): Promise<StatusCallback | null | undefined> {
  const url = body.status_callback
  const method = body.status_callback_method
  if (url === undefined && method === undefined) return undefined
  if (url === null) {
    if (method !== undefined) throw invalid('status_callback_method', 'needs a status_callback (it is being removed)')
    return null
  }
  if (url === undefined) {
    if (!current) throw invalid('status_callback_method', 'needs a status_callback')
    return { url: current.url, method: method! }
  }
  await checkTenantUrl(deps, url, 'status_callback')
  return { url, method: method ?? current?.method ?? 'POST' }
}
