import t from 'tap'
import { sippUas } from './sipp-util.ts'
import { startSipStack, waitFor, sleep } from './helpers.ts'
import { freePort } from '../../harness/ports.ts'

t.test('attended transfer: caller held with music, target called and briefed, then connected', async (t) => {
  const stack = await startSipStack()
  t.teardown(() => stack.stop())
  const { store, accountId, app } = stack
  await store.numbers.create(accountId, { number: '+14155550123' })
  const agent = await store.agents.create(accountId, { name: 'bot' })
  const pa = await freePort()
  const pb = await freePort()
  const a = sippUas('uas-answer.xml', pa, { timeoutMs: 25_000 })
  const b = sippUas('uas-answer.xml', pb, { timeoutMs: 25_000 })
  t.teardown(() => { a.kill(); b.kill() })
  await sleep(300)
  for (const [prefix, port] of [['+1301', pa], ['+1302', pb]] as const) {
    const trunk = await store.trunks.create(accountId, { name: `c${prefix}`, outbound: { host: '127.0.0.1', port } })
    await store.carrierRoutes.create(accountId, { name: `r${prefix}`, prefix, trunkId: trunk.id, priority: 1 })
  }
  const call = await app.calls.originate({ accountId, to: '+13015550100', from: '+14155550123', agentId: agent.id })
  await waitFor(async () => (await store.calls.getById(call.id))?.status === 'in-progress' || null, 10_000, 'answer')
  const agentLeg = stack.media.legs.find((l) => l.ctx.callId === call.id)!
  const res = await app.calls.transfer(call.id, { mode: 'attended', to: '+13025550100', whisper: 'VIP caller, billing question' })
  t.equal(res.mode, 'attended')
  t.same(agentLeg.holdCalls, [true], 'caller was put on hold with music while the target was called')
  t.ok(stack.media.legs.some((l) => l.said.includes('VIP caller, billing question')), 'target briefed')
  await sleep(300)
  await app.calls.hangup(call.id)
  const done = await waitFor(async () => { const c = await store.calls.getById(call.id); return c?.status === 'completed' ? c : null }, 10_000, 'end')
  t.match(done, { endedReason: 'api-hangup' })
  const [ra, rb] = await Promise.all([a.done, b.done])
  t.equal(ra.code, 0)
  t.equal(rb.code, 0)
  t.match(ra.log, /REINVITE sendonly[\s\S]*REINVITE sendrecv/, 'caller: held, then re-INVITEd onto the target')
})
