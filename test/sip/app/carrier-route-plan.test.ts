import t from 'tap'
import { shouldFailover, failureStatus } from '../../../sip/app/carrier-route-plan.ts'

t.test('failover on 408, 5xx, 6xx (not 600) and timeout', async (t) => {
  for (const s of [408, 500, 502, 503, 504, 580, 603, 604, 606]) t.ok(shouldFailover({ kind: 'response', status: s }), String(s))
  t.ok(shouldFailover({ kind: 'timeout' }))
})

t.test('never on busy, no-answer, cancel or request errors', async (t) => {
  for (const s of [486, 600, 480, 487, 404, 403, 484]) t.notOk(shouldFailover({ kind: 'response', status: s }), String(s))
  t.notOk(shouldFailover({ kind: 'ring-timeout' }))
  t.notOk(shouldFailover({ kind: 'canceled' }))
  t.notOk(shouldFailover({ kind: 'answered' }))
})

t.test('final statuses of unanswered calls', async (t) => {
  t.same(failureStatus({ kind: 'response', status: 486 }), { status: 'busy', endedReason: 'sip-486-busy' })
  t.same(failureStatus({ kind: 'response', status: 600 }).status, 'busy')
  t.same(failureStatus({ kind: 'response', status: 480 }).status, 'no-answer')
  t.same(failureStatus({ kind: 'ring-timeout' }).status, 'no-answer')
  t.same(failureStatus({ kind: 'response', status: 487 }).status, 'canceled')
  t.same(failureStatus({ kind: 'canceled' }).status, 'canceled')
  t.same(failureStatus({ kind: 'response', status: 503 }), { status: 'failed', endedReason: 'sip-503' })
  t.same(failureStatus({ kind: 'timeout' }), { status: 'failed', endedReason: 'sip-timeout' })
})
