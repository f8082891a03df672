import t from 'tap'
import { transition, canTransition, InvalidTransition, recoveryStep, durationSec, eventFor, CALL_STATUSES, isTerminal, type CallSnapshot } from '../../../sip/app/call-state.ts'

const base = (): CallSnapshot => ({ status: 'queued', createdAt: new Date('2026-01-01T00:00:00Z') })

t.test('happy path stamps each timestamp', async (t) => {
  let c = transition(base(), { to: 'ringing', at: new Date('2026-01-01T00:00:01Z') })
  t.equal(c.ringingAt!.toISOString(), '2026-01-01T00:00:01.000Z')
  c = transition(c, { to: 'in-progress', at: new Date('2026-01-01T00:00:03Z') })
  t.equal(c.answeredAt!.toISOString(), '2026-01-01T00:00:03.000Z')
  c = transition(c, { to: 'completed', endedReason: 'caller-hangup', hangupBy: 'caller', at: new Date('2026-01-01T00:01:03Z') })
  t.match(c, { status: 'completed', endedReason: 'caller-hangup', hangupBy: 'caller' })
  t.equal(durationSec(c), 60)
})

t.test('terminal states are final; answered calls only complete', async (t) => {
  for (const s of CALL_STATUSES) if (isTerminal(s)) for (const to of CALL_STATUSES) t.notOk(canTransition(s, to), `${s}→${to}`)
  t.throws(() => transition({ ...base(), status: 'in-progress' }, { to: 'busy' }), InvalidTransition)
  t.throws(() => transition({ ...base(), status: 'ringing' }, { to: 'queued' }), InvalidTransition)
  t.ok(canTransition('queued', 'in-progress'), 'answered without ringing (direct 200)')
  t.ok(canTransition('ringing', 'canceled'))
})

t.test('terminal step without reason uses the status', async (t) => {
  const c = transition(base(), { to: 'no-answer' })
  t.equal(c.endedReason, 'no-answer')
  t.equal(durationSec(c), 0)
})

t.test('restart recovery', async (t) => {
  t.match(recoveryStep({ ...base(), status: 'in-progress' }), { to: 'completed', endedReason: 'node-restart', hangupBy: 'system' })
  t.match(recoveryStep({ ...base(), status: 'ringing' }), { to: 'failed', endedReason: 'node-restart' })
  t.equal(recoveryStep({ ...base(), status: 'busy' }), null)
})

t.test('events', async (t) => {
  t.equal(eventFor('queued'), 'call.started')
  t.equal(eventFor('ringing'), 'call.ringing')
  t.equal(eventFor('in-progress'), 'call.answered')
  t.equal(eventFor('completed'), 'call.ended')
  t.equal(eventFor('busy'), 'call.failed')
})
