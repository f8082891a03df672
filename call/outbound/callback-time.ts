import { isTimeZone, zonedParts, zonedToInstant } from '../time-zones.ts'

/**
 * When an agent's `schedule_callback` means, from what a model writes:
 * - ISO 8601 with a date and time (`2025-06-01T10:00:00Z`, `…-04:00`); without
 *   an offset it is read in `timeZone`;
 * - `in N minute(s)|min|hour(s)|h|day(s)` (also `N minutes from now`);
 * - `today|tomorrow [at] H[:MM] [am|pm]` (default 09:00) in `timeZone`;
 * - `now`.
 * `now` is the business clock. Returns the instant, or why not.
 */
const UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000 }

export function parseCallbackTime(when: string, now: Date, timeZone = 'UTC'): Date | { error: string } {
  const zone = isTimeZone(timeZone) ? timeZone : null
  if (!zone) return { error: `unknown time zone ${timeZone}` }
  const w = when.trim().toLowerCase()
  if (w === 'now' || w === 'right now' || w === 'asap') return now
  const rel = /^(?:in\s+)?(\d{1,4}|an?|one)\s*(minutes?|mins?|m|hours?|hrs?|h|days?|d)(?:\s+from\s+now)?$/.exec(w)
  if (rel && (w.startsWith('in') || w.includes('from now'))) {
    const n = /^\d+$/.test(rel[1]!) ? Number(rel[1]) : 1
    return new Date(now.getTime() + n * UNIT_MS[rel[2]![0]!]!)
  }
  const day = /^(today|tomorrow)(?:\s+(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(am|pm)?)?$/.exec(w)
  if (day) {
    let hour = day[2] !== undefined ? Number(day[2]) : 9
    const minute = day[3] !== undefined ? Number(day[3]) : 0
    if (day[4] === 'pm' && hour < 12) hour += 12
    if (day[4] === 'am' && hour === 12) hour = 0
    if (hour > 23 || minute > 59) return { error: `${when}: not a time of day` }
    const p = zonedParts(zone, now)
    const base = new Date(Date.UTC(p.year, p.month - 1, p.day + (day[1] === 'tomorrow' ? 1 : 0)))
    return zonedToInstant(zone, base.getUTCFullYear(), base.getUTCMonth() + 1, base.getUTCDate(), hour, minute)
  }
  const iso = /^(\d{4})-(\d{2})-(\d{2})[t ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(z|[+-]\d{2}:?\d{2})?$/.exec(w)
  if (iso) {
    if (iso[7]) {
      const t = Date.parse(when.trim().replace(' ', 'T'))
      return Number.isNaN(t) ? { error: `${when}: not a date-time` } : new Date(t)
    }
    return zonedToInstant(zone, Number(iso[1]), Number(iso[2]), Number(iso[3]), Number(iso[4]), Number(iso[5]))
  }
  return { error: `${when}: give an ISO 8601 date-time, "in N minutes/hours/days" or "tomorrow at 10am"` }
}
