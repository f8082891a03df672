import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js'

/**
 * Phone numbers to E.164 (ITU-T E.164, "+" country code subscriber number).
 *
 * Carriers send called/calling numbers in every shape: "+14155550100",
 * "14155550100", "004420...", "011 44 20...", "tel:+1-415-555-0100",
 * national "4155550100". Everything that can be read as a possible number is
 * returned as E.164; short codes and extensions ("1000", "*97") are returned as
 * null by `toE164` and kept as dialled digits by `normalizeDialled`.
 */

export interface NormalizeOptions {
  /** Country for national-format numbers (ISO 3166-1 alpha-2), e.g. the trunk's country. */
  defaultCountry?: string | null
  /** A tech prefix the carrier prepends (e.g. "123#"): removed before parsing. */
  stripPrefix?: string | null
}

/** The user part of a SIP/tel URI, or the input itself when it is not a URI. */
export function userPart(uriOrNumber: string): string {
  let s = uriOrNumber.trim()
  const angle = /<([^>]*)>/.exec(s)
  if (angle) s = angle[1]!
  const m = /^(?:sips?|tel):([^@;?]*)/i.exec(s)
  if (m) s = m[1]!
  // RFC 3966 §5.1.5: visual separators are not part of the number.
  try { s = decodeURIComponent(s) } catch { /* keep raw */ }
  return s
}

/** Digits (and a leading "+"), with visual separators removed; keeps * and # for service codes. */
export function cleanDigits(s: string): string {
  const lead = s.trim().startsWith('+') ? '+' : ''
  return lead + s.replace(/[^0-9*#]/g, '')
}

/** E.164 for anything that is a possible phone number, else null. */
export function toE164(input: string, opts: NormalizeOptions = {}): string | null {
  let s = cleanDigits(userPart(input))
  if (opts.stripPrefix && s.startsWith(opts.stripPrefix)) s = s.slice(opts.stripPrefix.length)
  if (!s || /[*#]/.test(s)) return null
  // "00" is the ITU international prefix almost everywhere outside NANP.
  if (s.startsWith('00') && s.length > 6) s = `+${s.slice(2)}`
  const country = (opts.defaultCountry ?? undefined)?.toUpperCase() as CountryCode | undefined
  const parsed = s.startsWith('+') ? parsePhoneNumberFromString(s) : parsePhoneNumberFromString(s, country)
  if (!parsed || !parsed.isPossible()) {
    // Without a country, a long digit string is most likely E.164 without its "+".
    if (!country && !s.startsWith('+') && s.length >= 10) {
      const p = parsePhoneNumberFromString(`+${s}`)
      if (p?.isPossible()) return p.number
    }
    return null
  }
  return parsed.number
}

/**
 * What a number lookup uses: E.164 when possible, else the cleaned dialled
 * digits (extensions, short codes such as the demo number "1000").
 */
export function normalizeDialled(input: string, opts: NormalizeOptions = {}): string {
  const e164 = toE164(input, opts)
  if (e164) return e164
  let s = cleanDigits(userPart(input))
  if (opts.stripPrefix && s.startsWith(opts.stripPrefix)) s = s.slice(opts.stripPrefix.length)
  return s || userPart(input)
}

/** True when `s` is already a syntactically valid E.164 string. */
export function isE164(s: string): boolean {
  return /^\+[1-9][0-9]{6,14}$/.test(s)
}
