import type { DoNotCallRepository } from '../../store/do-not-call.ts'
import { CallControlError } from '../call-control.ts'

/**
 * The do-not-call check every outbound dial passes: `api-call-control.ts`
 * runs it at the top of `originate`, so POST /v1/calls, groupcalls, a flow's
 * `connect`/`call`, scheduled calls, sequences and campaigns are all refused
 * alike for a listed number. The list holds E.164 numbers; a destination is
 * compared by its number (`+4930…`, or the user part of `sip:+4930…@host` /
 * `tel:+4930…`), so extensions and SIP URIs without one are never listed.
 */

/** `details.code` of the refusal: routes that want their own status (POST /v1/calls: 403) look for it. */
export const DO_NOT_CALL_CODE = 'do_not_call'

/** The E.164 number a destination dials, or null when it dials none. */
export function dialledNumber(to: string): string | null {
  const m = /^(?:(?:sips?|tel):)?(\+[1-9][0-9]{5,14})(?:[@;].*)?$/.exec(to.trim())
  return m ? m[1]! : null
}

/** Throws CallControlError `rejected` (details.code `do_not_call`) when `to` is on the account's list. */
export async function refuseListed(list: Pick<DoNotCallRepository, 'listed'>, accountId: string, to: string): Promise<void> {
  const number = dialledNumber(to)
  if (!number) return
  if ((await list.listed(accountId, [number])).has(number)) {
    throw new CallControlError('rejected', `${number} is on this account's do-not-call list (DELETE /v1/do-not-call/${encodeURIComponent(number)} to dial it again)`,
      { code: DO_NOT_CALL_CODE, number })
  }
}
