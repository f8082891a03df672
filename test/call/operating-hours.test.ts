import t from 'tap'
import { checkOperatingHours, isOpen, nextOpening, type OperatingHours } from '../../call/outbound/operating-hours.ts'
import { zonedToInstant } from '../../call/time-zones.ts'

/** Operating hours as campaigns and sequences read them: windows in a zone, the contact's zone first, DST. */
const nineToFive: OperatingHours = { start: '09:00', end: '17:00', days: [1, 2, 3, 4, 5], timezone: 'America/New_York' }

t.test('bad windows are refused, each problem naming its field', async (t) => {
  t.same(checkOperatingHours(nineToFive, 'operating_hours'), [])
  const cases: Array<[unknown, RegExp]> = [
    [{ ...nineToFive, timezone: 'Mars/Base' }, /operating_hours\.timezone: unknown time zone "Mars\/Base"/],
    [{ ...nineToFive, start: '9am' }, /operating_hours\.start: must be HH:MM/],
    [{ ...nineToFive, end: '24:00' }, /operating_hours\.end: must be HH:MM/],
    [{ ...nineToFive, days: [] }, /operating_hours\.days: at least one/],
    [{ ...nineToFive, days: [0, 8] }, /operating_hours\.days: ISO weekdays are 1/],
    [{ ...nineToFive, start: '17:00', end: '09:00' }, /operating_hours: start 17:00 must be before end 09:00/],
    [{ ...nineToFive, start: '10:00', end: '10:00' }, /must be before end/],
    [{ ...nineToFive, extra: 1 }, /operating_hours\.extra: unknown field/],
    ['always', /operating_hours: must be an object/],
  ]
  for (const [value, problem] of cases) t.match(checkOperatingHours(value, 'operating_hours').join('; '), problem)
})

t.test('open and closed instants, in the window\'s zone or the contact\'s', async (t) => {
  // Monday 2026-12-07 14:00 UTC = 09:00 in New York (EST, UTC-5).
  t.ok(isOpen(nineToFive, new Date('2026-12-07T14:00:00Z')), 'Monday 09:00 New York: open')
  t.notOk(isOpen(nineToFive, new Date('2026-12-07T13:59:00Z')), 'Monday 08:59: closed')
  t.notOk(isOpen(nineToFive, new Date('2026-12-07T22:00:00Z')), 'Monday 17:00: closed (end is exclusive)')
  t.notOk(isOpen(nineToFive, new Date('2026-12-06T15:00:00Z')), 'Sunday: closed')
  t.ok(isOpen(nineToFive, new Date('2026-12-07T09:00:00Z'), 'Europe/Berlin'), 'Monday 10:00 in Berlin: the contact\'s zone decides')
  t.notOk(isOpen(nineToFive, new Date('2026-12-07T09:00:00Z'), 'Mars/Base'), 'an unknown contact zone falls back to the window\'s')
  t.ok(isOpen(null, new Date()), 'no hours: always open')
})

t.test('nextOpening: itself when open, else the next window start across nights, weekends and DST', async (t) => {
  const open = new Date('2026-12-07T15:00:00Z')
  t.equal(nextOpening(nineToFive, open).toISOString(), open.toISOString())
  t.equal(nextOpening(nineToFive, new Date('2026-12-07T03:00:00Z')).toISOString(), '2026-12-07T14:00:00.000Z', 'before opening: today at 09:00')
  t.equal(nextOpening(nineToFive, new Date('2026-12-11T23:00:00Z')).toISOString(), '2026-12-14T14:00:00.000Z', 'Friday evening: Monday 09:00')
  // New York springs forward on Sunday 2027-03-14: Monday 09:00 is then UTC-4.
  t.equal(nextOpening(nineToFive, new Date('2027-03-13T12:00:00Z')).toISOString(), '2027-03-15T13:00:00.000Z', 'after DST: 09:00 EDT')
  t.equal(nextOpening({ ...nineToFive, days: [7] }, new Date('2026-12-07T15:00:00Z')).toISOString(), '2026-12-13T14:00:00.000Z', 'Sunday only: six days on')
  t.equal(zonedToInstant('Asia/Kolkata', 2026, 12, 7, 9, 30).toISOString(), '2026-12-07T04:00:00.000Z', 'half-hour zones')
})
