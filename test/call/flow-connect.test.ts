import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startStack } from '../harness/stack.ts'
import { freePort } from '../harness/ports.ts'
import { phoneScenario, registerExtension, startUas, type PhoneBehaviour } from '../harness/sipp-scenarios.ts'
import { sleep, waitFor } from '../harness/wait.ts'
import { frames, RtpCaller, tone, toneRatio, voiced } from '../sip/app/rtp-caller.ts'
import { flowCalls } from './flow-calls.ts'

/** The callee's scenario: logs `INVITE from <caller's number>`. */
const calleeScenario = (behaviour: PhoneBehaviour) => phoneScenario(behaviour, { name: 'callee', capture: ['fromuser'], log: 'INVITE from [$fromuser]' })

/**
 * Dialling from a flow over real SIP: sipp calls a number whose flow
 * `connect`s to sipp UASs (SIP URIs, and a number over a carrier route to a
 * trunk), which ring, answer, hang up or are canceled; the test owns the
 * caller's and the answering callee's RTP, so the bridge is checked by what
 * each side hears. Groupcalls through POST /v1/groupcalls the same way.
 */
const voicedFrames = (pcm: Int16Array) => frames(pcm).filter(voiced).length

interface Executed { id: string; type: string; outcome?: string; startedAt: string }
interface Activeflow { id: string; status: string; executedActions: Executed[]; variables: Record<string, string> }
interface CallDetail { id: string; status: string; endedReason: string | null; from: string; to: string; activeflows: Activeflow[] }
interface Groupcall { id: string; status: string; outcome: string | null; call_ids: string[]; answer_call_id: string | null; dial_index: number; master_call_id: string | null; ring_method: string }

t.test('connect, call and groupcalls over SIP', async (t) => {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  t.teardown(() => stack.stop())
  const dir = mkdtempSync(join(tmpdir(), 'flow-connect-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = stack.engine.store
  const account = (await store.accounts.first())!
  const kit = flowCalls(stack, dir)
  const { api, post } = kit
  const get = async <T>(path: string) => (await (await api(path)).json()) as T

  let seq = 0
  const flowNumber = async (actions: unknown[]): Promise<string> => {
    const flow = await post('/v1/flows', { name: `connect ${seq}`, actions })
    t.equal(flow.status, 201, `the flow is stored ${JSON.stringify(flow.body.error ?? '')}`)
    const number = `+1415555${String(600 + seq++).padStart(4, '0')}`
    t.equal((await post('/v1/numbers', { number, target: { type: 'flow', id: flow.body.id } })).status, 201)
    return number
  }
  /** A callee sipp on a free port, its scenario written for this test. */
  const callee = async (name: string, behaviour: PhoneBehaviour) => {
    const uas = await startUas(dir, name, calleeScenario(behaviour), { timeoutMs: 60_000 })
    return { ...uas, uri: `sip:${name}@127.0.0.1:${uas.port}` }
  }
  const rtp = async () => {
    const c = new RtpCaller()
    await c.start()
    t.teardown(() => c.close())
    return c
  }
  /** Calls a flow number from sipp with the test's RTP; resolves once answered. */
  const call = async (number: string) => {
    const c = await kit.call(number)
    t.teardown(c.close)
    return c
  }
  /** The run's live state (variables set mid-verb are visible there). */
  const run = async (callId: string) => (await get<{ data: Activeflow[] }>(`/v1/activeflows?callId=${callId}`)).data[0]
  const connected = (callId: string, status = 'answered') => waitFor(async () => {
    const r = await run(callId)
    return r?.variables['callplane.connect.status'] === status ? r : null
  }, 30_000, `connect ${status}`)
  const ended = async (callId: string) => (await kit.ended(callId)) as unknown as CallDetail
  const groupcallOf = async (masterCallId: string) => (await get<{ data: Groupcall[] }>(`/v1/groupcalls?master_call_id=${masterCallId}`)).data

  await t.test('ring_all to three: the second answers, the others get CANCEL, both sides hear each other, the flow goes on when the callee hangs up', async (t) => {
    const a = await callee('alice', { kind: 'ring' })
    const calleeRtp = await rtp()
    const b = await callee('bob', { kind: 'answer', rtpPort: calleeRtp.port, answerAfterMs: 1500, byeAfterMs: 6000 })
    const c = await callee('carol', { kind: 'ring' })
    t.teardown(() => { a.kill(); b.kill(); c.kill() })
    // bob is a number over a carrier route; alice and carol are SIP URIs.
    const trunk = await store.trunks.create(account.id, { name: 'bob-carrier', outbound: { host: '127.0.0.1', port: Number(b.uri.split(':').at(-1)) } })
    await store.carrierRoutes.create(account.id, { name: 'to-bob', prefix: '+1212555', trunkId: trunk.id, priority: 1 })
    const number = await flowNumber([
      { type: 'talk', option: { text: 'Please hold.' } },
      { id: 'dial', type: 'connect', option: { destinations: [{ type: 'sip', target: a.uri }, { type: 'tel', target: '+12125550142' }, { type: 'sip', target: c.uri }], ring_method: 'ring_all', timeout: 20000, early_media: true } },
      { type: 'talk', option: { text: 'The other party hung up. Goodbye.' } },
      { type: 'hangup', option: { reason: 'after-connect' } },
    ])
    const { caller, callId } = await call(number)
    caller.signal = tone(400)
    calleeRtp.signal = tone(1000)
    const t0 = Date.now()
    const r = await connected(callId)
    t.ok(Date.now() - t0 >= 1000, 'connected once bob answered (he waits 1.5 s)')
    await sleep(1500)
    const since = Date.now() - 1000
    const calleeHeard = calleeRtp.audioSince(since)
    const callerHeard = caller.audioSince(since)
    t.ok(calleeHeard.length >= 4000 && toneRatio(calleeHeard, 400) > 0.8, `the callee hears the caller's 400 Hz (ratio ${toneRatio(calleeHeard, 400).toFixed(2)}, ${calleeHeard.length} samples)`)
    t.ok(callerHeard.length >= 4000 && toneRatio(callerHeard, 1000) > 0.8, `the caller hears the callee's 1 kHz (ratio ${toneRatio(callerHeard, 1000).toFixed(2)})`)

    const d = await ended(callId)
    const flow = d.activeflows[0]!
    t.same(flow.executedActions.map((e) => e.type), ['talk', 'connect', 'talk', 'hangup'], 'talk → connect → talk after the callee hung up → hangup')
    t.equal(flow.executedActions[1]!.outcome, 'answered')
    t.equal(d.endedReason, 'after-connect', 'the flow went on after the bridge')
    t.equal(flow.variables['callplane.connect.ended_reason'], 'callee-hangup')
    const legId = r.variables['callplane.connect.call_id']!
    const leg = await get<CallDetail & { answeredAt: string }>(`/v1/calls/${legId}`)
    t.match(leg, { status: 'completed', endedReason: 'callee-hangup', to: '+12125550142', from: '+14155550100' }, 'bob\'s leg: over the route, with the caller\'s number as caller ID')
    // early_media: the engine's ringback (440 + 480 Hz) while they rang.
    const ringing = caller.audioSince(Date.parse(flow.executedActions[1]!.startedAt) + 300, Date.parse(leg.answeredAt) - 100)
    const ringback = toneRatio(ringing, 440) + toneRatio(ringing, 480)
    t.ok(ringing.length >= 4000 && ringback > 0.7, `the caller heard ringback while they rang (ratio ${ringback.toFixed(2)}, ${ringing.length} samples)`)
    const [ra, rb, rc] = await Promise.all([a.done, b.done, c.done])
    t.equal(ra.code, 0, `alice was canceled (CANCEL, 487, ACK) ${ra.errors}`)
    t.equal(rc.code, 0, `carol was canceled ${rc.errors}`)
    t.equal(rb.code, 0, `bob answered and hung up ${rb.errors}`)
    t.match(rb.log, /INVITE from \+14155550100$/m, 'bob saw the caller\'s number')
    const [gc] = await groupcallOf(callId)
    t.match(gc, { status: 'hangup', outcome: 'answered', answer_call_id: legId, ring_method: 'ring_all', master_call_id: callId })
    t.equal(gc!.call_ids.length, 3, 'three legs placed')
    const others = await Promise.all(gc!.call_ids.filter((id) => id !== legId).map((id) => get<CallDetail>(`/v1/calls/${id}`)))
    t.same(others.map((o) => [o.status, o.endedReason]), [['canceled', 'answered-elsewhere'], ['canceled', 'answered-elsewhere']], 'the others: canceled, answered elsewhere')
  })

  await t.test('linear: the first does not answer within its timeout, the second does; hanging up the flow\'s call hangs up the callee', async (t) => {
    const a = await callee('dave', { kind: 'ring' })
    const calleeRtp = await rtp()
    const b = await callee('erin', { kind: 'answer', rtpPort: calleeRtp.port, answerAfterMs: 300 })
    t.teardown(() => { a.kill(); b.kill() })
    const number = await flowNumber([
      { type: 'connect', option: { destinations: [{ type: 'sip', target: a.uri }, { type: 'sip', target: b.uri }], ring_method: 'linear', timeout: 2500 } },
      { type: 'hangup', option: { reason: 'not-reached' } },
    ])
    const { caller, sipp, callId } = await call(number)
    const t0 = Date.now()
    const r = await connected(callId)
    t.ok(Date.now() - t0 >= 2000, `erin was dialled after dave's 2.5 s (${Date.now() - t0} ms)`)
    const ra = await a.done
    t.equal(ra.code, 0, `dave got CANCEL at his timeout ${ra.errors}`)
    caller.signal = tone(600)
    await sleep(1500)
    const heard = calleeRtp.audioSince(Date.now() - 800)
    t.ok(toneRatio(heard, 600) > 0.8, `erin hears the caller (ratio ${toneRatio(heard, 600).toFixed(2)})`)
    t.equal((await api(`/v1/calls/${callId}`, { method: 'DELETE' })).status, 204)
    const rb = await b.done
    t.equal(rb.code, 0, `erin got our BYE when the flow's call ended ${rb.errors}`)
    t.equal((await sipp.done).code, 0, 'the caller got its BYE')
    const legId = r.variables['callplane.connect.call_id']!
    await waitFor(async () => { const l = await get<CallDetail>(`/v1/calls/${legId}`); return l.status === 'completed' && l.endedReason === 'connect-ended' }, 10_000, 'the leg ended: connect-ended')
    const [gc] = await groupcallOf(callId)
    t.match(gc, { outcome: 'answered', dial_index: 1, ring_method: 'linear' })
    const first = await get<CallDetail>(`/v1/calls/${gc!.call_ids[0]}`)
    t.match(first, { status: 'no-answer' }, 'dave\'s leg rang out')
  })

  await t.test('an extension by its username (target_name): its registered contact is dialled', async (t) => {
    await store.extensions.create(account.id, { extension: '7201', password: 'ext-pass-7201' })
    // The extension registers from the port its phone (the sipp callee below) then listens on.
    const port = await freePort()
    const reg = await registerExtension({ sipPort: stack.sipPort, localPort: port, username: '7201', password: 'ext-pass-7201' })
    t.equal(reg.code, 0, `7201 registered ${reg.errors}`)
    const calleeRtp = await rtp()
    const phone = await startUas(dir, 'ext', calleeScenario({ kind: 'answer', rtpPort: calleeRtp.port, answerAfterMs: 200, byeAfterMs: 1000 }), { port, timeoutMs: 30_000 })
    t.teardown(() => phone.kill())
    const number = await flowNumber([
      { type: 'connect', option: { destinations: [{ type: 'extension', target_name: '7201' }] } },
      { type: 'hangup', option: { reason: 'extension-done' } },
    ])
    const { callId } = await call(number)
    const d = await ended(callId)
    t.equal(d.endedReason, 'extension-done')
    t.equal(d.activeflows[0]!.executedActions[0]!.outcome, 'answered')
    const leg = await get<CallDetail>(`/v1/calls/${d.activeflows[0]!.variables['callplane.connect.call_id']}`)
    t.match(leg, { to: 'ext:7201', status: 'completed', endedReason: 'callee-hangup' })
    t.equal((await phone.done).code, 0, 'the extension\'s phone answered and hung up')
  })

  await t.test('stopping the run while they talk hangs up the callee; the flow\'s call stays up', async (t) => {
    const calleeRtp = await rtp()
    const b = await callee('lena', { kind: 'answer', rtpPort: calleeRtp.port, answerAfterMs: 200 })
    t.teardown(() => b.kill())
    const number = await flowNumber([{ type: 'connect', option: { destinations: [{ type: 'sip', target: b.uri }] } }])
    const { callId, sipp } = await call(number)
    const r = await connected(callId)
    const stopped = await post(`/v1/activeflows/${r.id}/stop`, undefined)
    t.equal(stopped.status, 200)
    t.equal((await b.done).code, 0, 'the callee got our BYE')
    const legId = r.variables['callplane.connect.call_id']!
    await waitFor(async () => (await get<CallDetail>(`/v1/calls/${legId}`)).endedReason === 'connect-ended', 10_000, 'the leg ended: connect-ended')
    t.equal((await get<CallDetail>(`/v1/calls/${callId}`)).status, 'in-progress', 'the flow\'s call is still up')
    t.equal((await api(`/v1/calls/${callId}`, { method: 'DELETE' })).status, 204)
    t.equal((await sipp.done).code, 0)
  })

  await t.test('nobody answers: the flow goes on and branches on ${callplane.connect.status}', async (t) => {
    const a = await callee('frank', { kind: 'ring' })
    const b = await callee('grace', { kind: 'ring' })
    t.teardown(() => { a.kill(); b.kill() })
    const number = await flowNumber([
      { type: 'connect', option: { destinations: [{ type: 'sip', target: a.uri }, { type: 'sip', target: b.uri }], timeout: 2000 } },
      { type: 'talk', option: { text: 'Nobody could take your call.' } },
      { type: 'branch', option: { variable: 'callplane.connect.status', target_ids: { 'no-answer': 'voicemail' }, default_target_id: 'other' } },
      { id: 'voicemail', type: 'hangup', option: { reason: 'voicemail' } },
      { id: 'other', type: 'hangup', option: { reason: 'other' } },
    ])
    const { callId } = await call(number)
    const d = await ended(callId)
    const flow = d.activeflows[0]!
    t.equal(d.endedReason, 'voicemail', 'the branch saw no-answer')
    t.same(flow.executedActions.map((e) => [e.type, e.outcome]), [['connect', 'no-answer'], ['talk', 'done'], ['branch', 'matched:no-answer'], ['hangup', 'hung-up']])
    t.equal(flow.variables['callplane.connect.status'], 'no-answer')
    const [ra, rb] = await Promise.all([a.done, b.done])
    t.same([ra.code, rb.code], [0, 0], 'both were canceled at the timeout')
    const [gc] = await groupcallOf(callId)
    t.match(gc, { status: 'hangup', outcome: 'no-answer', answer_call_id: null })
    const legs = await Promise.all(gc!.call_ids.map((id) => get<CallDetail>(`/v1/calls/${id}`)))
    t.same(legs.map((l) => l.status), ['no-answer', 'no-answer'])
  })

  await t.test('the flow\'s call hangs up while the destinations ring: they are all canceled', async (t) => {
    const a = await callee('ivy', { kind: 'ring' })
    const b = await callee('jack', { kind: 'ring' })
    t.teardown(() => { a.kill(); b.kill() })
    const number = await flowNumber([
      { type: 'connect', option: { destinations: [{ type: 'sip', target: a.uri }, { type: 'sip', target: b.uri }], timeout: 30000 } },
      { type: 'hangup', option: { reason: 'not-reached' } },
    ])
    const { callId, sipp } = await call(number)
    const gc = await waitFor(async () => { const [g] = await groupcallOf(callId); return g && g.call_ids.length === 2 ? g : null }, 10_000, 'both legs placed')
    await waitFor(async () => (await Promise.all(gc.call_ids.map((id) => get<CallDetail>(`/v1/calls/${id}`)))).every((c) => c.status === 'ringing'), 10_000, 'both ring')
    t.equal((await api(`/v1/calls/${callId}`, { method: 'DELETE' })).status, 204)
    const [ra, rb] = await Promise.all([a.done, b.done])
    t.same([ra.code, rb.code], [0, 0], 'both got CANCEL')
    t.equal((await sipp.done).code, 0)
    const done = await waitFor(async () => { const [g] = await groupcallOf(callId); return g?.status === 'hangup' ? g : null }, 10_000, 'the groupcall ended')
    t.equal(done.outcome, 'canceled')
    const legs = await Promise.all(done.call_ids.map((id) => get<CallDetail>(`/v1/calls/${id}`)))
    t.same(legs.map((l) => [l.status, l.endedReason]), [['canceled', 'canceled'], ['canceled', 'canceled']])
    const d = await ended(callId)
    t.same(d.activeflows[0]!.executedActions.map((e) => [e.type, e.outcome]), [['connect', 'stopped']], 'the run stopped at the connect')
  })

  await t.test('relay_reason: the callee hanging up ends the flow\'s call with its reason', async (t) => {
    const calleeRtp = await rtp()
    const b = await callee('heidi', { kind: 'answer', rtpPort: calleeRtp.port, answerAfterMs: 200, byeAfterMs: 1500 })
    t.teardown(() => b.kill())
    const number = await flowNumber([
      { type: 'connect', option: { destinations: [{ type: 'sip', target: b.uri }], relay_reason: true } },
      { type: 'hangup', option: { reason: 'not-relayed' } },
    ])
    const { callId, sipp } = await call(number)
    const d = await ended(callId)
    t.equal(d.endedReason, 'callee-hangup', 'the flow call ended with the callee\'s reason')
    t.same(d.activeflows[0]!.executedActions.map((e) => e.type), ['connect'], 'the flow ended at the connect')
    t.equal((await b.done).code, 0)
    t.equal((await sipp.done).code, 0, 'the caller got its BYE')
  })

  await t.test('the call verb: an independent call runs its own actions; chained, it ends with the flow\'s call', async (t) => {
    const calleeRtp = await rtp()
    const b = await callee('ivan', { kind: 'answer', rtpPort: calleeRtp.port, answerAfterMs: 200 })
    t.teardown(() => b.kill())
    const number = await flowNumber([
      { type: 'call', option: { destinations: [{ type: 'sip', target: b.uri }], actions: [{ type: 'talk', option: { text: 'This is a call placed by a flow. It talks for a while.' } }, { type: 'sleep', option: { duration: 30000 } }], chained: true } },
      { type: 'sleep', option: { duration: 60000 } },
    ])
    const { callId, sipp } = await call(number)
    const r = await waitFor(async () => { const x = await run(callId); return x?.variables['callplane.calls.ids'] ? x : null }, 10_000, 'the call verb ran')
    const childId = r.variables['callplane.calls.ids']!
    t.match(childId, /^[0-9a-f-]{36}$/, 'one call placed')
    t.equal(r.executedActions[0]!.outcome, 'placed:1')
    await waitFor(async () => voicedFrames(calleeRtp.audioSince(0)) >= 20, 15_000, 'the new call talks to its callee')
    t.pass('the new call runs its own actions (its callee hears the talk)')
    const child = await get<CallDetail>(`/v1/calls/${childId}`)
    t.match(child, { status: 'in-progress', from: '+14155550100' })
    t.equal((await api(`/v1/calls/${callId}`, { method: 'DELETE' })).status, 204)
    t.equal((await b.done).code, 0, 'chained: the new call was hung up with the flow\'s call')
    await waitFor(async () => (await get<CallDetail>(`/v1/calls/${childId}`)).endedReason === 'chained-hangup', 10_000, 'the chained call ended')
    await sipp.done
  })

  await t.test('POST /v1/groupcalls: the first to answer runs the actions, the other is canceled; hangup ends it', async (t) => {
    await store.numbers.create(account.id, { number: '+14155550699' })
    const calleeRtp = await rtp()
    const a = await callee('judy', { kind: 'answer', rtpPort: calleeRtp.port, answerAfterMs: 500 })
    const b = await callee('ken', { kind: 'ring' })
    t.teardown(() => { a.kill(); b.kill() })
    const created = await post('/v1/groupcalls', {
      source: { type: 'tel', target: '+14155550699' },
      destinations: [{ type: 'sip', target: a.uri }, { type: 'sip', target: b.uri }],
      actions: [{ type: 'talk', option: { text: 'Hello from the group call. You answered first.' } }, { type: 'sleep', option: { duration: 30000 } }],
      ring_method: 'ring_all', answer_method: 'hangup_others',
    })
    t.equal(created.status, 201, JSON.stringify(created.body))
    t.match(created.body, { status: 'progressing', ring_method: 'ring_all', answer_method: 'hangup_others', source: { type: 'tel', target: '+14155550699' } })
    const id = created.body.id as string
    const gc = await waitFor(async () => { const g = await get<Groupcall>(`/v1/groupcalls/${id}`); return g.answer_call_id ? g : null }, 15_000, 'someone answered')
    t.equal((await b.done).code, 0, `ken was canceled ${(await b.done).errors}`)
    await waitFor(async () => voicedFrames(calleeRtp.audioSince(0)) >= 20, 15_000, 'the answered call talks')
    t.pass('the answered call runs the actions')
    const answered = await get<CallDetail>(`/v1/calls/${gc.answer_call_id}`)
    t.match(answered, { status: 'in-progress', from: '+14155550699' })
    t.ok((await get<{ data: Groupcall[] }>('/v1/groupcalls')).data.some((g) => g.id === id), 'listed')
    const hung = await post(`/v1/groupcalls/${id}/hangup`, undefined)
    t.equal(hung.status, 200)
    t.match(hung.body, { id, status: /hangingup|hangup/ })
    t.equal((await a.done).code, 0, 'judy got our BYE')
    const done = await waitFor(async () => { const g = await get<Groupcall>(`/v1/groupcalls/${id}`); return g.status === 'hangup' ? g : null }, 10_000, 'the groupcall ended')
    t.match(done, { outcome: 'answered', call_count: 0 })
    t.equal(done.call_ids.length, 2)
    t.match(await get<CallDetail>(`/v1/calls/${gc.answer_call_id}`), { status: 'completed', endedReason: 'groupcall-hangup' })
  })

  await t.test('bad options: 400 naming the action and the field', async (t) => {
    const cases: Array<{ option: unknown; type?: string; message: RegExp }> = [
      { option: { destinations: [] }, message: /actions\[0\] \(id c\) option\/destinations/ },
      { option: { destinations: [{ type: 'agent', target: 'bob' }] }, message: /\(id c\) option\/destinations\/0\/target: not a contact agent id/ },
      { option: { destinations: [{ type: 'tel', target: '12345' }] }, message: /\(id c\) option\/destinations\/0\/target: not an E\.164 number/ },
      { option: { destinations: [{ type: 'sip', target: 'bob@example.com' }] }, message: /destinations\/0\/target: not a sip/ },
      { option: { destinations: [{ type: 'extension' }] }, message: /destinations\/0: give target/ },
      { option: { destinations: [{ type: 'email', target: 'a@b.c' }] }, message: /\(id c\) option\/destinations\/0\/type/ },
      { option: { destinations: [{ type: 'tel', target: '+12125550100' }], ring_method: 'sequential' }, message: /\(id c\) option\/ring_method/ },
      { option: { destinations: [{ type: 'tel', target: '+12125550100' }], timeout: 10 }, message: /\(id c\) option\/timeout/ },
      { option: { destinations: [{ type: 'tel', target: '+12125550100' }], wait: true }, message: /\(id c\) option.*(wait|additional)/i },
      { type: 'call', option: { destinations: [{ type: 'tel', target: '+12125550100' }] }, message: /\(id c\) option\/flow_id: give exactly one of flow_id and actions/ },
      { type: 'call', option: { destinations: [{ type: 'tel', target: '+12125550100' }], actions: [{ type: 'talk', option: {} }] }, message: /\(id c\) option\/actions\/\[0\] option.*text/ },
    ]
    for (const c of cases) {
      const r = await post('/v1/flows', { name: 'bad', actions: [{ id: 'c', type: c.type ?? 'connect', option: c.option }] })
      t.equal(r.status, 400, JSON.stringify(c.option))
      t.match((r.body.error as { message: string }).message, c.message)
    }
    const bad = [
      { body: { source: { type: 'tel', target: '+14155550699' }, destinations: [{ type: 'extension', target_name: 'nobody' }], actions: [{ type: 'hangup' }] }, message: /destinations\/0: extension nobody: no such extension/ },
      { body: { source: { type: 'tel', target: '+14155550699' }, destinations: [{ type: 'sip', target: 'sip:x@127.0.0.1:9' }] }, message: /flow_id: give exactly one of flow_id and actions/ },
      { body: { source: { type: 'tel', target: '+14155550699' }, destinations: [{ type: 'sip', target: 'sip:x@127.0.0.1:9' }], actions: [{ type: 'talk' }] }, message: /actions\[0\] option.*text/ },
      { body: { source: { type: 'tel', target: '+14155550699' }, destinations: [{ type: 'sip', target: 'sip:x@127.0.0.1:9' }], flow_id: '8a0b6a5e-2b7e-4c1a-9a51-6b0f6a1d2c3e' }, message: /flow_id: no such flow/ },
      { body: { source: { type: 'tel', target: '+14155550699' }, destinations: [{ type: 'sip', target: 'sip:x@127.0.0.1:9' }], actions: [{ type: 'hangup' }], answer_method: 'keep_ringing' }, message: /answer_method/ },
    ]
    for (const c of bad) {
      const r = await post('/v1/groupcalls', c.body)
      t.equal(r.status, 400, JSON.stringify(c.body))
      t.match((r.body.error as { message: string }).message, c.message)
    }
    const notOwned = await post('/v1/groupcalls', { source: { type: 'tel', target: '+19995550000' }, destinations: [{ type: 'sip', target: 'sip:x@127.0.0.1:9' }], actions: [{ type: 'hangup' }] })
    t.equal(notOwned.status, 422, 'a caller ID the account does not own is refused like POST /v1/calls')
    t.match(notOwned.body, { error: { details: { code: 'caller_id_not_owned' } } })
  })
})
