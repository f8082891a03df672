/**
 * The one error type of the whole call surface: signalling (sip/app), media
 * actions and the media workers (call/) throw it, and the API maps `code` to
 * its HTTP status. It lives here, at the lowest layer that throws it, so
 * sip/app need not import upward; call/call-control.ts re-exports it.
 * `details.code` carries the finer reason where there is one
 * (`caller_id_not_owned`, `reinvite_failed`, ...).
 */
export type CallControlErrorCode = 'not_found' | 'invalid_state' | 'unsupported' | 'unavailable' | 'rejected' | 'busy'

const STATUS: Record<CallControlErrorCode, number> = {
  not_found: 404, invalid_state: 409, unsupported: 501, unavailable: 503, rejected: 422, busy: 429,
}

export class CallControlError extends Error {
  readonly statusCode: number
  constructor(readonly code: CallControlErrorCode, message: string, readonly details?: unknown) {
    super(message)
    this.name = 'CallControlError'
    this.statusCode = STATUS[code]
  }
}


/** The code for an HTTP-like status from a lower layer (a SIP transfer's final response, ...). */
export function errorCodeForStatus(status: number): CallControlErrorCode {
  if (status === 404) return 'not_found'
  if (status === 409) return 'invalid_state'
  if (status === 501) return 'unsupported'
  if (status === 503) return 'unavailable'
  if (status === 429) return 'busy'
  return 'rejected'
}
