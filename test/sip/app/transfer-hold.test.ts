import t from 'tap'
import { sippUas } from './sipp-util.ts'
import { startSipStack, waitFor, sleep, type SipStack } from './helpers.ts'
import { freePort } from '../../harness/ports.ts'

const answered = (stack: SipStack, id: string) => waitFor(async () => {
  const c = await stack.store.calls.getById(id)
  return c?.status === 'in-progress' ? c : null
}, 10_000, 'answer')
const finished = (stack: SipStack, id: string) => waitFor(async () => {
  const c = await stack.store.calls.getById(id)
  return c && !['queued', 'ringing', 'in-progress'].includes(c.status) ? c : null
}, 15_000, 'call to finish')

t.test('hold, blind transfer (REFER), bridge transfer with whisper', async (t) => {
  const stack = await startSipStack()
  t.teardown(() => stack.stop())
  const { store, accountId, app } = stack
  await store.numbers.create(accountId, { number: '+14155550123' })
  const agent = await store.agents.create(accountId, { name: 'bot' })

  async function carrierFor(prefix: string, port: number) {
    const trunk = await store.trunks.create(accountId, { name: `c${prefix}`, outbound: { host: '127.0.0.1', port } })
    await store.carrierRoutes.create(accountId, { name: `r${prefix}`, prefix, trunkId: trunk.id, priority: 1 })
    return trunk
  }

  await t.test('hold and unhold by re-INVITE (sendonly / sendrecv) with music-on-hold', async (t) => {
    const port = await freePort()
    const uas = sippUas('uas-answer.xml', port, { timeoutMs: 20_000 })
    t.teardown(() => uas.kill())
    await sleep(300)
    await carrierFor('+1201', port)
    const call = await app.calls.originate({ accountId, to: '+12015550100', from: '+14155550123', agentId: agent.id })
    await answered(stack, call.id)
    await app.calls.hold(call.id)
    const leg = stack.media.legs.find((l) => l.ctx.callId === call.id)!
    t.same(leg.holdCalls, [true], 'media told to play music-on-hold')
    await app.calls.unhold(call.id)
    t.same(leg.holdCalls, [true, false], 'music-on-hold stopped')
    await app.calls.hangup(call.id)
    t.match(await finished(stack, call.id), { status: 'completed', endedReason: 'api-hangup' })
    const r = await uas.done
    t.equal(r.code, 0, 'callee handled both re-INVITEs and the BYE')
    t.match(r.log, /REINVITE sendonly[\s\S]*REINVITE sendrecv/, 'callee saw hold then unhold')
  })

  await t.test('blind transfer: REFER, NOTIFY 200 sipfrag, then we leave the call', async (t) => {
    const port = await freePort()
    const uas = sippUas('uas-answer.xml', port, { timeoutMs: 20_000 })
    t.teardown(() => uas.kill())
    await sleep(300)
    await carrierFor('+1202', port)
    const call = await app.calls.originate({ accountId, to: '+12025550100', from: '+14155550123', agentId: agent.id })
    await answered(stack, call.id)
    const res = await app.calls.transfer(call.id, { mode: 'blind', to: '+12125550199' })
    t.equal(res.mode, 'blind')
    t.match(await finished(stack, call.id), { status: 'completed', endedReason: 'transferred' })
    const r = await uas.done
    t.equal(r.code, 0)
    t.match(r.log, /REFER sip:\+12125550199@/, 'Refer-To carried the target')
  })

  await t.test('bridge transfer with a whisper: the target hears it, then both parties are connected', async (t) => {
    const pa = await freePort()
    const pb = await freePort()
    const a = sippUas('uas-answer.xml', pa, { timeoutMs: 25_000 })
    const b = sippUas('uas-answer.xml', pb, { timeoutMs: 25_000 })
    t.teardown(() => { a.kill(); b.kill() })
    await sleep(300)
    await carrierFor('+1203', pa)
    await carrierFor('+1204', pb)
    const call = await app.calls.originate({ accountId, to: '+12035550100', from: '+14155550123', agentId: agent.id })
    await answered(stack, call.id)
    const agentLeg = stack.media.legs.find((l) => l.ctx.callId === call.id)!
    const res = await app.calls.transfer(call.id, { mode: 'bridge', to: '+12045550100', whisper: 'Caller wants a refund' })
    t.equal(res.mode, 'bridge')
    const whisper = stack.media.legs.find((l) => l.said.length)!
    t.same(whisper.said, ['Caller wants a refund'], 'whisper played to the target')
    t.equal(agentLeg.closedReason, 'transferred', 'the agent left the call')
    t.equal((await store.calls.getById(call.id))!.status, 'in-progress', 'call still live, now bridged')
    await sleep(300)
    await app.calls.hangup(call.id)
    t.match(await finished(stack, call.id), { status: 'completed', endedReason: 'api-hangup' })
    const [ra, rb] = await Promise.all([a.done, b.done])
    t.equal(ra.code, 0, 'party A: re-INVITEd to the target, then BYE')
    t.equal(rb.code, 0, 'target: answered, re-INVITEd to A, then BYE')
    t.match(ra.log, /REINVITE/, 'A re-INVITEd')
    t.match(rb.log, /REINVITE/, 'target re-INVITEd onto A')
  })
})
