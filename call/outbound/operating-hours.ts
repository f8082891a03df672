import { Type, type Static } from '@sinclair/typebox'
import { isTimeZone, zonedParts, zonedToInstant } from '../time-zones.ts'

/**
 * When outbound work may dial (Leadlock `OperatingHours`): a daily window
 * `start`–`end` (HH:MM, 24 h) on ISO weekdays (1 = Monday … 7 = Sunday) in a
 * time zone. A contact's own time zone, when known, replaces the window's:
 * "9 to 5" means the contact's 9 to 5. Campaigns and sequences share it.
 */
export const OperatingHoursSchema = Type.Object({
  start: Type.String({ description: 'HH:MM, 24 h: the window opens (inclusive)', examples: ['09:00'] }),
  end: Type.String({ description: 'HH:MM, 24 h: the window closes (exclusive); after start (windows over midnight are not supported)', examples: ['17:00'] }),
  days: Type.Array(Type.Integer({ minimum: 1, maximum: 7 }), { minItems: 1, maxItems: 7, description: 'ISO weekdays: 1 = Monday … 7 = Sunday' }),
  timezone: Type.String({ description: 'IANA time zone of the window, e.g. America/New_York; a contact\'s own time zone replaces it when known' }),
}, { additionalProperties: false, description: 'When calls may be placed' })
export type OperatingHours = Static<typeof OperatingHoursSchema>

const HHMM = /^([01][0-9]|2[0-3]):([0-5][0-9])$/

const minutesOf = (hhmm: string): number => {
  const m = HHMM.exec(hhmm)!
  return Number(m[1]) * 60 + Number(m[2])
}

/** What is wrong with an operating-hours value, each problem naming its field (`field.start: ...`); empty when usable. */
export function checkOperatingHours(value: unknown, field: string): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${field}: must be an object {start, end, days, timezone}`]
  const h = value as Record<string, unknown>
  const problems: string[] = []
  for (const k of Object.keys(h)) if (!['start', 'end', 'days', 'timezone'].includes(k)) problems.push(`${field}.${k}: unknown field`)
  for (const k of ['start', 'end'] as const) {
    if (typeof h[k] !== 'string' || !HHMM.test(h[k])) problems.push(`${field}.${k}: must be HH:MM in 24 h time (e.g. 09:00), got ${JSON.stringify(h[k] ?? null)}`)
  }
  if (!Array.isArray(h.days) || h.days.length === 0) problems.push(`${field}.days: at least one ISO weekday (1 = Monday … 7 = Sunday)`)
  else if (!h.days.every((d) => Number.isInteger(d) && (d as number) >= 1 && (d as number) <= 7)) problems.push(`${field}.days: ISO weekdays are 1 (Monday) to 7 (Sunday)`)
  else if (new Set(h.days).size !== h.days.length) problems.push(`${field}.days: a weekday is listed twice`)
  if (typeof h.timezone !== 'string' || !isTimeZone(h.timezone)) problems.push(`${field}.timezone: unknown time zone ${JSON.stringify(h.timezone ?? null)}`)
  if (problems.length === 0 && minutesOf(h.start as string) >= minutesOf(h.end as string)) {
    problems.push(`${field}: start ${String(h.start)} must be before end ${String(h.end)} (an empty or inverted window never opens)`)
  }
  return problems
}

/** The zone a window is read in: the contact's when it is a real zone, else the window's own. */
const zoneFor = (hours: OperatingHours, contactTz?: string | null): string => (contactTz && isTimeZone(contactTz) ? contactTz : hours.timezone)

const isoWeekday = (weekday0Sunday: number): number => (weekday0Sunday === 0 ? 7 : weekday0Sunday)

/** Whether `at` falls inside the window. No hours (null) means always open. */
export function isOpen(hours: OperatingHours | null | undefined, at: Date, contactTz?: string | null): boolean {
  if (!hours) return true
  const p = zonedParts(zoneFor(hours, contactTz), at)
  const minute = p.hour * 60 + p.minute
  return hours.days.includes(isoWeekday(p.weekday)) && minute >= minutesOf(hours.start) && minute < minutesOf(hours.end)
}

/** The first instant at or after `at` inside the window: `at` itself when open. */
export function nextOpening(hours: OperatingHours | null | undefined, at: Date, contactTz?: string | null): Date {
  if (!hours || isOpen(hours, at, contactTz)) return at
  const zone = zoneFor(hours, contactTz)
  const [sh, sm] = hours.start.split(':').map(Number) as [number, number]
  const today = zonedParts(zone, at)
  // Today's opening if it is still ahead, else the next listed weekday's (at most a week away).
  for (let add = 0; add <= 7; add++) {
    const day = new Date(Date.UTC(today.year, today.month - 1, today.day + add))
    const weekday = isoWeekday(day.getUTCDay())
    if (!hours.days.includes(weekday)) continue
    const opening = zonedToInstant(zone, day.getUTCFullYear(), day.getUTCMonth() + 1, day.getUTCDate(), sh, sm)
    if (opening.getTime() > at.getTime()) return opening
  }
  // Unreachable for a checked window (some listed day comes within 7 days); never dial early.
  return new Date(at.getTime() + 24 * 3600_000)
}
