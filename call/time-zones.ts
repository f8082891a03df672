/**
 * Wall-clock time in IANA time zones (Intl, so the system's tz database):
 * the one place flows (condition_datetime) and outbound dialing (operating
 * hours) turn an instant into a zone's date and time, and back.
 */

/** True for a time zone name Intl knows (`Europe/Berlin`, `UTC`); a typo is false, never a throw. */
export function isTimeZone(tz: string): boolean {
  if (typeof tz !== 'string' || tz.length === 0 || tz.length > 64) return false
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz })
    return true
  } catch {
    return false
  }
}

export interface ZonedParts {
  year: number
  /** 1..12 */
  month: number
  day: number
  hour: number
  minute: number
  /** 0 = Sunday … 6 = Saturday */
  weekday: number
}

const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const formats = new Map<string, Intl.DateTimeFormat>()

/** `at` as a wall clock in `timeZone`. */
export function zonedParts(timeZone: string, at: Date): ZonedParts {
  let f = formats.get(timeZone)
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone, hour12: false, year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', weekday: 'short',
    })
    formats.set(timeZone, f)
  }
  const p = Object.fromEntries(f.formatToParts(at).map((x) => [x.type, x.value]))
  return {
    year: Number(p.year), month: Number(p.month), day: Number(p.day),
    hour: Number(p.hour) % 24, minute: Number(p.minute), weekday: WEEKDAYS.indexOf(p.weekday!),
  }
}

/**
 * The instant a zone's wall clock shows y-m-d hh:mm. Two passes settle the
 * offset across a DST change; a wall time the change skips (spring forward)
 * comes out an hour later, as clocks do.
 */
export function zonedToInstant(timeZone: string, y: number, m: number, d: number, hh: number, mm: number): Date {
  const wall = Date.UTC(y, m - 1, d, hh, mm)
  let guess = wall
  for (let i = 0; i < 2; i++) {
    const p = zonedParts(timeZone, new Date(guess))
    const shown = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute)
    guess += wall - shown
  }
  return new Date(guess)
}
