import type { DoNotCallRepository } from '../../store/do-not-call.ts'
import { CallControlError } from '../call-control.ts'
import { cleanDigits, toE164, userPart } from '../../sip/app/number-normalizer.ts'

/**
 * The do-not-call check every outbound dial passes: `api-call-control.ts`
 * runs it at the top of `originate`, so POST /v1/calls, groupcalls, a flow's
 * `connect`/`call`, scheduled calls, sequences and campaigns are all refused
 * alike for a listed number. The list holds E.164 numbers; a destination is
 * compared by the number it dials, read as the dialer reads it
 * (sip/app/outbound-dialer.ts `plan`, sip/app/number-normalizer.ts): `+4930…`,
 * `tel:+49-30-…`, `+49 30 …`, `004930…`, `4930…` (10+ digits); a SIP URI by its
 * user part when that has the `+` form (`sip:+49-30-…@host`,
 * `sip:%2B4930…@host`: visual separators and %-escapes do not hide it).
 * Extensions, short codes and SIP URIs without a `+` number are never listed.
 */

/** `details.code` of the refusal: routes that want their own status (POST /v1/calls: 403) look for it. */
export const DO_NOT_CALL_CODE = 'do_not_call'

const LOCAL = /^[0-9*#]{2,8}$/

/** The E.164 number a destination dials, or null when it dials none. */
export function dialledNumber(to: string): string | null {
  const s = to.trim()
  if (/^sips?:/i.test(s)) {
    const user = cleanDigits(userPart(s))
    return user.startsWith('+') ? toE164(user) : null
  }
  // Short codes and extensions (the dialer tries an extension first) are not phone numbers.
  if (LOCAL.test(s.replace(/^ext:/i, ''))) return null
  return toE164(s)
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
