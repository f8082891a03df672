/**
 * DTMF carried in SIP INFO (RFC 2976 INFO with the de-facto bodies phones and
 * carriers use where RFC 4733 is not negotiated):
 *  - `application/dtmf-relay` (Cisco): `Signal=5\r\nDuration=160\r\n`;
 *  - `application/dtmf`: the digit alone.
 * Signal 10 and 11 stand for `*` and `#` (the RFC 4733 §3.2 event codes some
 * gateways send). Anything else is not a digit: null.
 */
export interface InfoDigit { digit: string; durationMs?: number }

const EVENT_DIGITS = '0123456789*#ABCD'

function digitOf(raw: string): string | null {
  const v = raw.trim().toUpperCase()
  if (/^[0-9*#A-D]$/.test(v)) return v
  if (/^1[0-5]$/.test(v)) return EVENT_DIGITS[Number(v)]!
  return null
}

export function parseInfoDtmf(contentType: string | undefined, body: string | undefined): InfoDigit | null {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
  if (!body) return null
  if (type === 'application/dtmf') {
    const digit = digitOf(body)
    return digit ? { digit } : null
  }
  if (type !== 'application/dtmf-relay') return null
  const fields = new Map<string, string>()
  for (const line of body.split(/\r?\n/)) {
    const i = line.indexOf('=')
    if (i > 0) fields.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim())
  }
  const digit = digitOf(fields.get('signal') ?? '')
  if (!digit) return null
  const d = Number(fields.get('duration'))
  return Number.isFinite(d) && d > 0 && d <= 10_000 ? { digit, durationMs: Math.round(d) } : { digit }
}
