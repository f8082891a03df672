import { parsePhoneNumberFromString } from 'libphonenumber-js'
import type { Plugin } from 'ajv'

/**
 * The one rule for every phone number the API takes (numbers, calls' to and
 * from, transfer destinations, caller ids):
 *
 * - with a leading `+`: an E.164 number (ITU-T E.164: country code and
 *   subscriber number, no separators) that libphonenumber-js finds valid for
 *   its country, e.g. `+4930123456`;
 * - without: a local number of 2 to 8 digits (`*` and `#` allowed), i.e. an
 *   extension or short code such as the demo number `1000`. Longer digit
 *   strings are refused: inbound, the engine reads 10+ digits as E.164 without
 *   its `+` (sip/app/number-normalizer.ts), so such a number would never match.
 */
export const PHONE_NUMBER_RULE = 'an E.164 number (+, country code and number, no spaces, valid for its country, e.g. +4930123456) or a local number of 2-8 digits (extension or short code, e.g. 1000)'

const LOCAL = /^[0-9*#]{2,8}$/
const SIP_URI = /^sips?:[^\s]{3,300}$/

export function isPhoneNumber(s: string): boolean {
  if (LOCAL.test(s)) return true
  if (!/^\+[1-9][0-9]{5,14}$/.test(s)) return false
  const parsed = parsePhoneNumberFromString(s)
  return parsed !== undefined && parsed.number === s && parsed.isValid()
}

/** An E.164 number only (no local numbers): what contact lists, the do-not-call list and scheduled calls dial. */
export const E164_RULE = 'an E.164 number (+, country code and number, no spaces, valid for its country, e.g. +4930123456)'
export function isE164(s: string): boolean {
  return s.startsWith('+') && isPhoneNumber(s)
}

/** Ajv formats: `phone-number`, and `phone-number-or-sip-uri` where a SIP URI (RFC 3261 §19.1) may stand instead. */
export const phoneNumberFormats: Plugin<unknown> = (ajv) => {
  ajv.addFormat('phone-number', { type: 'string', validate: isPhoneNumber })
  ajv.addFormat('e164', { type: 'string', validate: isE164 })
  ajv.addFormat('phone-number-or-sip-uri', { type: 'string', validate: (s: string) => SIP_URI.test(s) || isPhoneNumber(s) })
  return ajv
}

/** The readable message for a value that failed one of these formats, or null for other formats. */
export function phoneFormatMessage(format: unknown): string | null {
  if (format === 'phone-number') return `must be ${PHONE_NUMBER_RULE}`
  if (format === 'e164') return `must be ${E164_RULE}`
  if (format === 'phone-number-or-sip-uri') return `must be a SIP URI (sip:user@host) or ${PHONE_NUMBER_RULE}`
  return null
}
