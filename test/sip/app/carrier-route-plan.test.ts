import t from 'tap'
import { selectCarrierRoutes, shouldFailover, failureStatus, type CarrierRouteCandidate } from '../../../sip/app/carrier-route-plan.ts'

const routes: CarrierRouteCandidate[] = [
  { id: 'r1', prefix: '', priority: 10, trunkId: 'default-a' },
  { id: 'r2', prefix: '', priority: 5, trunkId: 'default-b' },
  { id: 'r3', prefix: '+44', priority: 1, trunkId: 'uk' },
  { id: 'r4', prefix: '4420', priority: 2, trunkId: 'london' },
  { id: 'r5', prefix: '+1', priority: 1, trunkId: 'us' },
  { id: 'r6', prefix: '+44', priority: 9, trunkId: 'default-b', },
  { id: 'r7', prefix: '+44', priority: 0, trunkId: 'disabled', enabled: false },
]

t.test('longest prefix first, then priority; each trunk once; disabled skipped', async (t) => {
  t.same(selectCarrierRoutes(routes, '+442079460958').map((r) => r.trunkId), ['london', 'uk', 'default-b', 'default-a'])
  t.same(selectCarrierRoutes(routes, '+14155550100').map((r) => r.trunkId), ['us', 'default-b', 'default-a'])
  t.same(selectCarrierRoutes(routes, '+33123456789').map((r) => r.trunkId), ['default-b', 'default-a'])
  t.same(selectCarrierRoutes([], '+33123456789'), [])
})

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
