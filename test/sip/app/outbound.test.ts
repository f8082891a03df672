import t from 'tap'
import { sippUas } from './sipp-util.ts'
import { startSipStack, waitFor, sleep, type SipStack } from './helpers.ts'
import { freePort } from '../../harness/ports.ts'
import { CallControlError } from '../../../sip/app/index.ts'

async function carrier(stack: SipStack, name: string, port: number, priority: number, prefix = '+1') {
  const trunk = await stack.store.trunks.create(stack.accountId, { name, outbound: { host: '127.0.0.1', port } })
  await stack.store.carrierRoutes.create(stack.accountId, { name: `${name}-route`, prefix, trunkId: trunk.id, priority })
  return trunk
}

const finished = (stack: SipStack, id: string) => waitFor(async () => {
  const c = await stack.store.calls.getById(id)
  return c && ['completed', 'failed', 'busy', 'no-answer', 'canceled'].includes(c.status) ? c : null
}, 15_000, 'call to finish')

t.test('outbound calls over routes with failover', async (t) => {
  const stack = await startSipStack({ attemptTimeoutMs: 2_000 })
  t.teardown(() => stack.stop())
  const { store, accountId, app } = stack
  await store.numbers.create(accountId, { number: '+14155550123' })
  const agent = await store.agents.create(accountId, { name: 'outbound-bot' })

  await t.test('first trunk answers 503, the second answers 200; the API hangs up', async (t) => {
    const p1 = await freePort()
    const p2 = await freePort()
    const uas1 = sippUas('uas-503.xml', p1, { timeoutMs: 20_000 })
    const uas2 = sippUas('uas-answer.xml', p2, { timeoutMs: 20_000 })
    t.teardown(() => { uas1.kill(); uas2.kill() })
    await sleep(300)
    const t1 = await carrier(stack, 'primary', p1, 1)
    const t2 = await carrier(stack, 'backup', p2, 2)
    const call = await app.calls.originate({ accountId, to: '+12125550100', from: '+14155550123', agentId: agent.id })
    t.equal(call.status, 'queued')
    const live = await waitFor(async () => { const c = await store.calls.getById(call.id); return c?.status === 'in-progress' ? c : null }, 10_000, 'answer')
    t.equal(live.trunkId, t2.id, 'answered over the backup trunk')
    t.ok(live.ringingAt, 'ringing seen (180)')
    const leg = stack.media.legs.find((l) => l.ctx.callId === call.id)!
    await waitFor(() => leg.packetsIn > 5, 5_000, 'RTP from the callee')
    await app.calls.hangup(call.id)
    const done = await finished(stack, call.id)
    t.match(done, { status: 'completed', endedReason: 'api-hangup', hangupBy: 'api', trunkId: t2.id })
    const r1 = await uas1.done
    const r2 = await uas2.done
    t.equal(r1.code, 0, 'carrier 1 saw the INVITE and got its ACK for 503')
    t.equal(r2.code, 0, 'carrier 2 answered and got our BYE')
    t.match(r2.log, /From: <sip:\+14155550123@/, 'caller ID presented')
    await store.carrierRoutes.delete(accountId, (await store.carrierRoutes.list(accountId, {})).data.find((r) => r.trunkId === t1.id)!.id)
    await store.carrierRoutes.delete(accountId, (await store.carrierRoutes.list(accountId, {})).data.find((r) => r.trunkId === t2.id)!.id)
  })

  await t.test('busy (486) does not fail over', async (t) => {
    const p1 = await freePort()
    const uas1 = sippUas('uas-486.xml', p1, { timeoutMs: 20_000 })
    t.teardown(() => uas1.kill())
    await sleep(300)
    await carrier(stack, 'busy-carrier', p1, 1, '+44')
    // A second route that would answer if we (wrongly) failed over: nothing listens, so a failover would end "failed".
    await carrier(stack, 'never', await freePort(), 2, '+44')
    const call = await app.calls.originate({ accountId, to: '+442079460958', from: '+14155550123', agentId: agent.id })
    const done = await finished(stack, call.id)
    t.match(done, { status: 'busy', endedReason: 'sip-486-busy' })
    t.equal((await uas1.done).code, 0)
  })

  await t.test('a silent carrier times out and the call fails over', async (t) => {
    const dead = await freePort()
    const p2 = await freePort()
    const uas2 = sippUas('uas-answer.xml', p2, { timeoutMs: 25_000 })
    t.teardown(() => uas2.kill())
    await sleep(300)
    await carrier(stack, 'silent', dead, 1, '+33')
    const backup = await carrier(stack, 'fr-backup', p2, 2, '+33')
    const call = await app.calls.originate({ accountId, to: '+33123456789', from: '+14155550123', agentId: agent.id })
    const live = await waitFor(async () => { const c = await store.calls.getById(call.id); return c?.status === 'in-progress' ? c : null }, 15_000, 'answer after failover')
    t.equal(live.trunkId, backup.id)
    await app.calls.hangup(call.id)
    t.equal((await finished(stack, call.id)).status, 'completed')
    t.equal((await uas2.done).code, 0)
  })

  await t.test('caller ID the account does not own is refused', async (t) => {
    await t.rejects(app.calls.originate({ accountId, to: '+12125550100', from: '+19999999999' }), CallControlError)
  })

  await t.test('no route → refused before any record exists', async (t) => {
    await t.rejects(app.calls.originate({ accountId, to: '+81312345678', from: '+14155550123' }), { code: 'rejected', details: { code: 'no_route' } })
  })
})
