import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { startStack } from '../harness/stack.ts'
import { freePort } from '../harness/ports.ts'
import { phoneScenario, registerExtension, startUas, type PhoneBehaviour } from '../harness/sipp-scenarios.ts'
import { sleep, waitFor } from '../harness/wait.ts'
import { frames, RtpCaller, tone, toneRatio, voiced } from '../sip/app/rtp-caller.ts'
import { flowCalls } from './flow-calls.ts'

/**
 * Contact agents and ACD queues over real SIP, through the API: two agents
 * whose addresses are extensions registered by sipp phones (their status
 * follows the registration), a caller in a queue hears the wait flow, the
 * first agent rings out and is skipped, the second answers and the two hear
 * each other; an agent on another call is not offered a caller; kick;
 * a caller hanging up while waiting is abandoned; bad input; other accounts.
 */
const voicedFrames = (pcm: Int16Array) => frames(pcm).filter(voiced).length

interface Agent { id: string; status: string; set_status: string; missed_count: number; last_offer_result: string | null; current_queuecall_id: string | null }
interface Queue { id: string; total_incoming_count: number; total_serviced_count: number; total_abandoned_count: number; wait_queuecall_ids: string[]; service_queuecall_ids: string[] }
interface Queuecall { id: string; status: string; end_reason: string | null; service_agent_id: string | null; offered_agent_ids: string[]; skipped_agent_ids: string[]; reference_id: string; duration_waiting: number; duration_service: number; tm_service: string | null }
interface Event { type: string; callId: string | null; data: { queuecall?: Queuecall; contact_agent?: Agent; previous_status?: string | null } }

t.test('contact agents and queues over SIP', async (t) => {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  t.teardown(() => stack.stop())
  // The phones below are sipp scenarios that expect INVITEs only: no registrar keep-alive OPTIONS to them.
  stack.engine.sipApplication.keepalive.stop()
  const dir = mkdtempSync(join(tmpdir(), 'queues-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = stack.engine.store
  const account = (await store.accounts.first())!
  const kit = flowCalls(stack, dir)
  const { api, post } = kit
  const get = async <T>(path: string) => (await (await api(path)).json()) as T
  const put = async (path: string, body: unknown) => {
    const r = await api(path, { method: 'PUT', body: JSON.stringify(body) })
    return { status: r.status, body: await r.json() as Record<string, unknown> }
  }

  const events: Event[] = []
  const ws = new WebSocket(`${stack.baseUrl.replace(/^http/, 'ws')}/v1/events?types=queue.*,contact_agent.*&token=${stack.apiKey}`)
  ws.on('message', (m) => events.push(JSON.parse(m.toString()) as Event))
  await new Promise((r) => ws.once('open', r))
  t.teardown(() => ws.close())

  let seq = 0
  const flowNumber = async (actions: unknown[]): Promise<string> => {
    const flow = await post('/v1/flows', { name: `queue ${seq}`, actions })
    t.equal(flow.status, 201, `the flow is stored ${JSON.stringify(flow.body.error ?? '')}`)
    const number = `+1415555${String(700 + seq++).padStart(4, '0')}`
    t.equal((await post('/v1/numbers', { number, target: { type: 'flow', id: flow.body.id } })).status, 201)
    return number
  }
  const rtp = async () => {
    const c = new RtpCaller()
    await c.start()
    t.teardown(() => c.close())
    return c
  }
  const call = async (number: string) => {
    const c = await kit.call(number)
    t.teardown(c.close)
    return c
  }
  const agent = (id: string) => get<Agent>(`/v1/contact-agents/${id}`)
  const agentStatus = (id: string, status: string, what: string) => waitFor(async () => ((await agent(id)).status === status ? true : null), 15_000, what)
  const queuecallOf = async (callId: string) => (await get<{ data: Queuecall[] }>(`/v1/queuecalls?reference_id=${callId}`)).data[0]

  // Two extensions, each a sipp phone: it registers from the port it then answers INVITEs on.
  const phones: Record<string, { port: number; username: string }> = {}
  for (const username of ['7301', '7302']) {
    await store.extensions.create(account.id, { extension: username, password: `pw-${username}-secret` })
    phones[username] = { port: await freePort(), username }
  }
  const register = async (username: string) => {
    const p = phones[username]!
    const reg = await registerExtension({ sipPort: stack.sipPort, localPort: p.port, username, password: `pw-${username}-secret` })
    t.equal(reg.code, 0, `${username} registered ${reg.errors}`)
  }
  const phone = async (username: string, behaviour: PhoneBehaviour) => {
    const p = phones[username]!
    const uas = await startUas(dir, `phone-${username}-${seq++}`, phoneScenario(behaviour, { name: 'phone', log: 'INVITE' }), { port: p.port, timeoutMs: 60_000 })
    t.teardown(() => uas.kill())
    return uas
  }

  let alice = ''
  let bob = ''
  let queueId = ''

  await t.test('bad input is a 400 naming the field; agents start offline until their extension registers', async (t) => {
    const noAgents = await post('/v1/queues', { name: 'empty' })
    t.equal(noAgents.status, 400, 'a queue with no agent at all to offer to')
    t.match(noAgents.body, { error: { message: /tag_ids/ } })
    t.equal((await post('/v1/contact-agents', { name: 'x', addresses: [{ type: 'agent', target: '00000000-0000-4000-8000-000000000000' }] })).status, 400, 'an agent address')
    const noExt = await post('/v1/contact-agents', { name: 'x', addresses: [{ type: 'extension', target_name: '9999' }] })
    t.equal(noExt.status, 400, 'an extension that does not exist')
    t.match(noExt.body, { error: { message: /addresses\/0/ } })
    t.equal((await post('/v1/contact-agents', { name: 'x', addresses: [{ type: 'tel', target: '12345' }] })).status, 400, 'a number that is not E.164')
    t.equal((await post('/v1/contact-agents', { name: 'x', addresses: [] })).status, 400, 'no address')
    t.equal((await post('/v1/contact-agents', { name: 'x', addresses: [{ type: 'extension', target_name: '7301' }], status: 'ringing' })).status, 400, 'ringing cannot be set')

    const a = await post('/v1/contact-agents', { name: 'Alice', addresses: [{ type: 'extension', target_name: '7301' }], tag_ids: ['support', 'en'] })
    t.equal(a.status, 201, JSON.stringify(a.body))
    const b = await post('/v1/contact-agents', { name: 'Bob', addresses: [{ type: 'extension', target_name: '7302' }], tag_ids: ['support'] })
    t.equal(b.status, 201)
    alice = a.body.id as string
    bob = b.body.id as string
    t.match(a.body, { status: 'offline', set_status: 'available', ring_method: 'ringall' }, 'not registered: offline')

    const noMatch = await post('/v1/queues', { name: 'q', tag_ids: ['support', 'fr'] })
    t.equal(noMatch.status, 400, 'tags no agent carries all of')
    t.match(noMatch.body, { error: { message: /tag_ids: no contact agent carries all of \[support, fr\]/ } })
    const noFlow = await post('/v1/queues', { name: 'q', tag_ids: ['support'], wait_flow_id: '00000000-0000-4000-8000-000000000000' })
    t.equal(noFlow.status, 400)
    t.match(noFlow.body, { error: { message: /wait_flow_id/ } })
    t.equal((await post('/v1/queues', { name: 'q', routing_method: 'fastest' })).status, 400, 'unknown routing method')
    t.equal((await post('/v1/queues', { name: 'q', ring_timeout: 5 })).status, 400, 'ring_timeout below a second')

    const flowBad = await post('/v1/flows', { name: 'bad', actions: [{ type: 'queue_join', option: {} }] })
    t.equal(flowBad.status, 400, 'queue_join without queue_id')
    const noQueue = await post('/v1/flows', { name: 'bad', actions: [{ type: 'talk', option: { text: 'hi' } }, { type: 'queue_join', option: { queue_id: '00000000-0000-4000-8000-000000000000' } }] })
    t.equal(noQueue.status, 400, 'queue_join to a queue the account does not have')
    t.match(noQueue.body, { error: { message: /actions\[1\] option\/queue_id: no queue/ } })

    await register('7301')
    await register('7302')
    await agentStatus(alice, 'available', 'alice registered: available')
    await agentStatus(bob, 'available', 'bob registered: available')
    t.ok(events.some((e) => e.type === 'contact_agent.status_changed' && e.data.contact_agent?.id === alice && e.data.previous_status === 'offline' && e.data.contact_agent.status === 'available'),
      'contact_agent.status_changed offline → available on /v1/events')

    // Another account sees none of it.
    const other = await store.accounts.create('other', null)
    const { token } = await store.apiKeys.create(other.id, 'other', ['agents:manage', 'calls:read', 'calls:write'], null)
    const as = (path: string, init: RequestInit = {}) => fetch(`${stack.baseUrl}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.body ? { 'content-type': 'application/json' } : {}) } })
    t.equal((await as(`/v1/contact-agents/${alice}`)).status, 404, 'another account\'s agent')
    t.equal((await as(`/v1/contact-agents/${alice}/status`, { method: 'PUT', body: JSON.stringify({ status: 'away' }) })).status, 404)
    t.equal((await as('/v1/queues', { method: 'POST', body: JSON.stringify({ name: 'q', tag_ids: ['support'] }) })).status, 400, 'another account\'s agents do not match its queue')
  })

  await t.test('a caller hears the wait flow; the first agent rings out and is skipped, the second answers and both hear each other', async (t) => {
    const wait = await post('/v1/flows', { name: 'hold music', actions: [{ type: 'talk', option: { text: 'Please hold. You are caller number ${voipbin.queuecall.position} in line for ${voipbin.queue.name}.' } }] })
    t.equal(wait.status, 201)
    const q = await post('/v1/queues', { name: 'Support', tag_ids: ['support'], routing_method: 'round-robin', wait_flow_id: wait.body.id, ring_timeout: 3000 })
    t.equal(q.status, 201, JSON.stringify(q.body))
    queueId = q.body.id as string
    const number = await flowNumber([
      { type: 'queue_join', option: { queue_id: queueId } },
      { type: 'talk', option: { text: 'Thank you for calling.' } },
      { type: 'hangup', option: { reason: 'after-queue' } },
    ])
    const aPhone = await phone('7301', { kind: 'ring' })
    const bRtp = await rtp()
    const bPhone = await phone('7302', { kind: 'answer', rtpPort: bRtp.port, answerAfterMs: 800, byeAfterMs: 5000 })
    const { caller, callId } = await call(number)
    const joinedAt = Date.now()
    const qc0 = await waitFor(async () => queuecallOf(callId), 10_000, 'the caller is in the queue')
    t.equal(qc0.reference_id, callId)
    await agentStatus(alice, 'ringing', 'alice (created first, round-robin) is offered the caller first')
    t.match(await agent(alice), { current_queuecall_id: qc0.id })
    const ra = await aPhone.done
    t.equal(ra.code, 0, `alice's phone rang and was canceled at the ring timeout ${ra.errors}`)
    const inService = await waitFor(async () => { const qc = await queuecallOf(callId); return qc?.status === 'service' ? qc : null }, 15_000, 'bob answered: service')
    t.equal(inService.service_agent_id, bob)
    t.same(inService.skipped_agent_ids, [alice], 'alice was skipped for this caller')
    t.ok(Date.now() - joinedAt >= 3000, 'bob was offered after alice\'s 3 s')
    const a = await agent(alice)
    t.match(a, { status: 'available', last_offer_result: 'no-answer', missed_count: 1 }, 'alice: marked as not answering, available again')
    await agentStatus(bob, 'busy', 'bob is busy while he talks')

    const answeredAt = Date.parse(inService.tm_service!)
    const waiting = caller.audioSince(joinedAt, answeredAt)
    t.ok(voicedFrames(waiting) >= 25, `the caller heard the wait flow while waiting (${voicedFrames(waiting)} voiced frames)`)
    caller.signal = tone(400)
    bRtp.signal = tone(1000)
    await sleep(1800)
    const since = Date.now() - 1000
    const bobHeard = bRtp.audioSince(since)
    const callerHeard = caller.audioSince(since)
    t.ok(bobHeard.length >= 4000 && toneRatio(bobHeard, 400) > 0.8, `bob hears the caller (ratio ${toneRatio(bobHeard, 400).toFixed(2)})`)
    t.ok(callerHeard.length >= 4000 && toneRatio(callerHeard, 1000) > 0.8, `the caller hears bob (ratio ${toneRatio(callerHeard, 1000).toFixed(2)})`)

    // Bob hangs up: the queuecall is done, the caller's flow goes on.
    const d = await kit.ended(callId)
    t.equal(d.endedReason, 'after-queue', 'the flow went on after the agent hung up')
    const flow = d.activeflows[0]!
    t.same(flow.executedActions.map((e) => [e.type, e.outcome]), [['queue_join', 'agent-hangup'], ['talk', 'done'], ['hangup', 'hung-up']])
    t.match(flow.variables, { 'callplane.queuecall.status': 'done', 'callplane.queuecall.end_reason': 'agent-hangup', 'callplane.queuecall.service_agent_id': bob, 'callplane.queue.name': 'Support' })
    const done = await queuecallOf(callId)
    t.match(done, { status: 'done', end_reason: 'agent-hangup', service_agent_id: bob })
    t.ok(done!.duration_waiting >= 3000 && done!.duration_service >= 3000, `durations: waiting ${done!.duration_waiting} ms, service ${done!.duration_service} ms`)
    t.equal((await bPhone.done).code, 0, 'bob answered and hung up')
    await agentStatus(bob, 'available', 'bob is available again once his call ended')
    const queue = await get<Queue>(`/v1/queues/${queueId}`)
    t.match(queue, { total_incoming_count: 1, total_serviced_count: 1, total_abandoned_count: 0, wait_queuecall_ids: [], service_queuecall_ids: [] })
    const mine = events.filter((e) => e.callId === callId).map((e) => e.type)
    t.same(mine, ['queue.joined', 'queue.answered', 'queue.done'], 'queue events on /v1/events')
    t.ok(events.some((e) => e.type === 'contact_agent.status_changed' && e.data.contact_agent?.id === bob && e.data.contact_agent.status === 'ringing'), 'bob was announced ringing')
  })

  await t.test('an agent on another call is not offered a caller; kick takes the caller out and its flow goes on', async (t) => {
    t.equal((await put(`/v1/contact-agents/${alice}/status`, { status: 'away' })).status, 200, 'alice steps away')
    await agentStatus(alice, 'away', 'alice away')
    // Bob takes a call that is not the queue's: a flow connects a caller to him (an agent-type address: his addresses are dialled).
    const bRtp = await rtp()
    const bPhone = await phone('7302', { kind: 'answer', rtpPort: bRtp.port, answerAfterMs: 200 })
    const direct = await flowNumber([{ type: 'connect', option: { destinations: [{ type: 'agent', target: bob }] } }])
    const x = await call(direct)
    await agentStatus(bob, 'busy', 'bob is busy on a call that is not the queue\'s')
    const [gc] = (await get<{ data: Array<{ destinations: unknown[]; answer_call_id: string | null }> }>(`/v1/groupcalls?master_call_id=${x.callId}`)).data
    t.same(gc!.destinations, [{ type: 'extension', target_name: '7302' }], 'connect to an agent address dialled the contact agent\'s extension')

    const number = await flowNumber([
      { type: 'queue_join', option: { queue_id: queueId } },
      { type: 'hangup', option: { reason: 'after-queue' } },
    ])
    const y = await call(number)
    const qc = await waitFor(async () => queuecallOf(y.callId), 10_000, 'the second caller is in the queue')
    await sleep(2500)
    const still = await queuecallOf(y.callId)
    t.match(still, { status: 'waiting', offered_agent_ids: [] }, 'nobody is offered the caller: alice is away, bob is on a call')
    t.equal((await get<{ data: unknown[] }>(`/v1/groupcalls?master_call_id=${y.callId}`)).data.length, 0, 'no agent was dialled')
    t.match(await get<Queue>(`/v1/queues/${queueId}`), { wait_queuecall_ids: [qc.id] })

    const kicked = await post(`/v1/queuecalls/reference_id/${y.callId}/kick`, undefined)
    t.equal(kicked.status, 200)
    t.match(kicked.body, { id: qc.id, status: /kicking|done/ })
    const d = await kit.ended(y.callId)
    t.equal(d.endedReason, 'after-queue', 'the kicked caller\'s flow went on')
    t.match(await queuecallOf(y.callId), { status: 'done', end_reason: 'kicked' })
    t.ok(events.some((e) => e.type === 'queue.kicked' && e.callId === y.callId), 'queue.kicked')
    t.equal((await post(`/v1/queuecalls/${qc.id}/kick`, undefined)).status, 409, 'a second kick: already ended')

    t.equal((await api(`/v1/calls/${x.callId}`, { method: 'DELETE' })).status, 204)
    t.equal((await bPhone.done).code, 0, 'bob\'s other call ended')
    await agentStatus(bob, 'available', 'bob is available after his other call')
  })

  await t.test('a caller who hangs up while waiting is abandoned', async (t) => {
    t.equal((await put(`/v1/contact-agents/${bob}/status`, { status: 'away' })).status, 200)
    await agentStatus(bob, 'away', 'bob away')
    const number = await flowNumber([
      { type: 'queue_join', option: { queue_id: queueId } },
      { type: 'hangup', option: { reason: 'not-reached' } },
    ])
    const c = await call(number)
    await waitFor(async () => (await queuecallOf(c.callId))?.status === 'waiting', 10_000, 'waiting')
    await sleep(500)
    t.equal((await api(`/v1/calls/${c.callId}`, { method: 'DELETE' })).status, 204, 'the caller hangs up')
    const qc = await waitFor(async () => { const x = await queuecallOf(c.callId); return x?.status === 'abandoned' ? x : null }, 10_000, 'abandoned')
    t.equal(qc.end_reason, 'caller-hangup')
    await waitFor(() => events.some((e) => e.type === 'queue.abandoned' && e.callId === c.callId), 5000, 'queue.abandoned on /v1/events')
    t.pass('queue.abandoned on /v1/events')
    t.match(await get<Queue>(`/v1/queues/${queueId}`), { total_incoming_count: 3, total_serviced_count: 1, total_abandoned_count: 1 })
    t.equal((await api(`/v1/queues/${queueId}`, { method: 'DELETE' })).status, 204, 'an empty queue can be deleted')
  })

  await t.test('a caller who leaves while an agent rings (kicked, or hung up): the agent\'s leg is canceled and the agent is free again', async (t) => {
    t.equal((await put(`/v1/contact-agents/${alice}/status`, { status: 'available' })).status, 200)
    await agentStatus(alice, 'available', 'alice back')
    const q = await post('/v1/queues', { name: 'Ringing', tag_ids: ['support', 'en'], ring_timeout: 30_000 })
    t.equal(q.status, 201)
    const number = await flowNumber([
      { type: 'queue_join', option: { queue_id: q.body.id } },
      { type: 'hangup', option: { reason: 'after-queue' } },
    ])
    // The agent's phone rings (its leg is `ringing`, not only the agent claimed).
    const agentLegRinging = (callId: string) => waitFor(async () => {
      const [gc] = (await get<{ data: Array<{ call_ids: string[] }> }>(`/v1/groupcalls?master_call_id=${callId}`)).data
      const leg = gc?.call_ids[0]
      return leg && (await get<{ status: string }>(`/v1/calls/${leg}`)).status === 'ringing' ? leg : null
    }, 10_000, 'the agent\'s phone rings')

    // Kicked while alice rings: her phone gets a CANCEL, she is available, the caller's flow goes on.
    const kPhone = await phone('7301', { kind: 'ring' })
    const k = await call(number)
    await agentStatus(alice, 'ringing', 'alice is offered the first caller')
    await agentLegRinging(k.callId)
    const kqc = (await queuecallOf(k.callId))!
    t.equal((await post(`/v1/queuecalls/${kqc.id}/kick`, undefined)).status, 200, 'kicked while connecting')
    t.equal((await kPhone.done).code, 0, 'alice\'s phone was canceled')
    t.equal((await kit.ended(k.callId)).endedReason, 'after-queue', 'the kicked caller\'s flow went on')
    t.match(await queuecallOf(k.callId), { status: 'done', end_reason: 'kicked', service_agent_id: null })
    await agentStatus(alice, 'available', 'alice is free after the kick')
    t.match(await agent(alice), { current_queuecall_id: null, last_offer_result: 'canceled' })

    // The caller hangs up while alice rings: same, and the caller is abandoned.
    const hPhone = await phone('7301', { kind: 'ring' })
    const h = await call(number)
    await agentStatus(alice, 'ringing', 'alice is offered the second caller')
    const leg = await agentLegRinging(h.callId)
    t.equal((await api(`/v1/calls/${h.callId}`, { method: 'DELETE' })).status, 204, 'the caller hangs up')
    t.equal((await hPhone.done).code, 0, 'alice\'s phone was canceled')
    await waitFor(async () => ((await queuecallOf(h.callId))?.status === 'abandoned' ? true : null), 10_000, 'abandoned')
    t.match(await queuecallOf(h.callId), { status: 'abandoned', end_reason: 'caller-hangup' })
    t.match(await get<{ status: string }>(`/v1/calls/${leg}`), { status: 'canceled' }, 'the agent\'s leg was canceled')
    await agentStatus(alice, 'available', 'alice is free after the caller left')
    t.match(await get<Queue>(`/v1/queues/${q.body.id}`), { total_incoming_count: 2, total_serviced_count: 0, total_abandoned_count: 1, wait_queuecall_ids: [], service_queuecall_ids: [] })

    t.equal((await put(`/v1/contact-agents/${alice}/status`, { status: 'away' })).status, 200)
    await agentStatus(alice, 'away', 'alice away again')
  })

  await t.test('wait_timeout: the caller leaves the queue abandoned and the queue\'s timeout flow runs instead of the rest', async (t) => {
    // Both agents are away (previous subtests).
    const fallback = await post('/v1/flows', { name: 'voicemail', actions: [{ type: 'hangup', option: { reason: 'timeout-flow' } }] })
    const q = await post('/v1/queues', { name: 'Short', tag_ids: ['support'], wait_timeout: 1500, timeout_flow_id: fallback.body.id })
    t.equal(q.status, 201)
    const number = await flowNumber([
      { type: 'queue_join', option: { queue_id: q.body.id } },
      { type: 'hangup', option: { reason: 'not-replaced' } },
    ])
    const c = await call(number)
    const d = await kit.ended(c.callId)
    t.equal(d.endedReason, 'timeout-flow', 'the timeout flow replaced the rest of the caller\'s flow')
    t.match(d.activeflows[0]!.variables, { 'callplane.queuecall.status': 'abandoned', 'callplane.queuecall.end_reason': 'wait-timeout' })
    const qc = await queuecallOf(c.callId)
    t.match(qc, { status: 'abandoned', end_reason: 'wait-timeout' })
    t.ok(qc!.duration_waiting >= 1400, `waited ${qc!.duration_waiting} ms`)
    t.match(await get<Queue>(`/v1/queues/${q.body.id}`), { total_incoming_count: 1, total_abandoned_count: 1 })
  })

  await t.test('concurrent claims never offer one agent twice (FOR UPDATE SKIP LOCKED; also run on PostgreSQL)', async (t) => {
    const presence = (n: string) => ({ extensionIds: [], dialKeys: [n], reachableOtherwise: true })
    const agents = await Promise.all(['+12125550181', '+12125550182', '+12125550183'].map((n, i) => store.contactAgents.create(account.id, { name: `bulk ${i}`, addresses: [{ type: 'tel', target: n }], tagIds: ['bulk'], presence: presence(n) })))
    t.same(agents.map((a) => a.status), ['available', 'available', 'available'])
    const queue = await store.queues.create(account.id, { name: 'bulk', tagIds: ['bulk'], routingMethod: 'longest-idle' })
    const qcs = await Promise.all(Array.from({ length: 12 }, () => store.queuecalls.join({ accountId: account.id, queueId: queue.id, callId: crypto.randomUUID(), nodeId: null })))
    const claimed = (await Promise.all(qcs.map((qc) => store.queuecalls.offer(qc.id, { tagIds: ['bulk'], routingMethod: 'longest-idle' })))).flat()
    t.equal(claimed.length, 3, '12 callers claimed at once: each of the 3 agents once')
    t.same(new Set(claimed.map((a) => a.id)).size, 3, 'no agent twice')
    const ringing = await Promise.all(agents.map((a) => agent(a.id)))
    t.ok(ringing.every((a) => a.status === 'ringing' && a.current_queuecall_id), 'all three ringing, each for one caller')
    for (const qc of qcs) await store.queuecalls.finish(qc.id, 'abandoned', 'flow-stopped')
    const after = await Promise.all(agents.map((a) => agent(a.id)))
    t.same(after.map((a) => a.status), ['available', 'available', 'available'], 'released when their callers left')
  })

  await t.test('a caller answered by an agent is never also abandoned (a hang-up racing the answer); a queue deleted before the join refuses it', async (t) => {
    const [a] = await Promise.all([store.contactAgents.create(account.id, { name: 'race', addresses: [{ type: 'tel', target: '+12125550191' }], tagIds: ['race'], presence: { extensionIds: [], dialKeys: ['+12125550191'], reachableOtherwise: true } })])
    const queue = await store.queues.create(account.id, { name: 'race', tagIds: ['race'] })
    const qc = await store.queuecalls.join({ accountId: account.id, queueId: queue.id, callId: crypto.randomUUID(), nodeId: null })
    t.equal((await store.queuecalls.offer(qc.id, { tagIds: ['race'], routingMethod: 'random' })).length, 1)
    t.ok(await store.queuecalls.answered(qc.id, a!.id, [], crypto.randomUUID()), 'the agent answered')
    const ended = await store.queuecalls.finish(qc.id, 'abandoned', 'caller-hangup')
    t.match(ended, { status: 'done', end_reason: 'caller-hangup', service_agent_id: a!.id }, 'ends done: it was serviced')
    t.match(await get<Queue>(`/v1/queues/${queue.id}`), { total_incoming_count: 1, total_serviced_count: 1, total_abandoned_count: 0 }, 'counted serviced once, not abandoned')
    await waitFor(() => events.some((e) => e.type === 'queue.done' && e.data.queuecall?.id === qc.id), 5000, 'queue.done')
    t.notOk(events.some((e) => e.type === 'queue.abandoned' && e.data.queuecall?.id === qc.id), 'no queue.abandoned')

    t.equal((await api(`/v1/queues/${queue.id}`, { method: 'DELETE' })).status, 204)
    await t.rejects(store.queuecalls.join({ accountId: account.id, queueId: queue.id, callId: crypto.randomUUID(), nodeId: null }), { message: /does not exist/ }, 'no caller joins a deleted queue')
    t.equal((await get<{ data: unknown[] }>(`/v1/queuecalls?queue_id=${queue.id}&status=waiting`)).data.length, 0)
  })

  await t.test('hand-over: ending a served caller\'s queuecall frees its agent and claims it for the next caller in that transaction, once the agent\'s leg has ended', async (t) => {
    const n = '+12125550161'
    const a = await store.contactAgents.create(account.id, { name: 'handover', addresses: [{ type: 'tel', target: n }], tagIds: ['handover'], presence: { extensionIds: [], dialKeys: [n], reachableOtherwise: true } })
    const queue = await store.queues.create(account.id, { name: 'handover', tagIds: ['handover'], routingMethod: 'round-robin' })
    const opts = { tagIds: ['handover'], routingMethod: 'round-robin' as const }
    const join = () => store.queuecalls.join({ accountId: account.id, queueId: queue.id, callId: crypto.randomUUID(), nodeId: null })
    const [first, second, third] = [await join(), await join(), await join()]
    t.same((await store.queuecalls.claim(first!.id, opts)), { agents: [await store.contactAgents.get(account.id, a.id)], more: false }, 'claimed, and no other free agent left')
    // The agent's legs are another node's records: no presence here recomputes the agent behind our back.
    const leg = (status: 'in-progress') => store.calls.create({ accountId: account.id, direction: 'outbound', from: '+14155550100', to: n, status, nodeId: 'elsewhere' })
    const leg1 = await leg('in-progress')
    t.ok(await store.queuecalls.answered(first!.id, a.id, [], leg1.id))
    t.match(await agent(a.id), { status: 'busy' })
    await store.calls.end(leg1.id, { status: 'completed', endedReason: 'callee-hangup', hangupBy: 'callee' })
    const before = events.length
    const r = await store.queuecalls.end(first!.id, 'done', 'agent-hangup', (freed) => (freed.id === a.id ? { qcId: second!.id, ...opts } : null))
    t.match(r.queuecall, { status: 'done', end_reason: 'agent-hangup' })
    t.same(r.handedOver?.agents.map((x) => x.id), [a.id], 'the freed agent is claimed for the next caller')
    t.match(await agent(a.id), { status: 'ringing', current_queuecall_id: second!.id })
    t.match(await queuecallOf(second!.reference_id), { status: 'connecting', offered_agent_ids: [a.id] })
    await waitFor(() => events.slice(before).filter((e) => e.type === 'contact_agent.status_changed' && e.data.contact_agent?.id === a.id).length >= 2, 5000, 'status events')
    t.same(events.slice(before).filter((e) => e.type === 'contact_agent.status_changed' && e.data.contact_agent?.id === a.id).map((e) => e.data.contact_agent?.status), ['available', 'ringing'], 'announced: available, then ringing (other nodes hear it)')

    // Its leg still up (a bridge that failed): the agent stays busy and nobody is claimed.
    const leg2 = await leg('in-progress')
    t.ok(await store.queuecalls.answered(second!.id, a.id, [], leg2.id))
    let asked = false
    const early = await store.queuecalls.end(second!.id, 'done', 'bridge-failed', () => { asked = true; return { qcId: third!.id, ...opts } })
    t.equal(early.handedOver, null)
    t.notOk(asked, 'no next caller asked for while the agent is on its leg')
    t.match(await agent(a.id), { status: 'busy' })
    t.match(await queuecallOf(third!.reference_id), { status: 'waiting' })
    await store.calls.end(leg2.id, { status: 'completed', endedReason: 'callee-hangup', hangupBy: 'callee' })
    await store.contactAgents.refresh(account.id, a.id)
    await store.queuecalls.finish(third!.id, 'abandoned', 'flow-stopped')
    t.match(await agent(a.id), { status: 'available' })
  })

  await t.test('a node restart frees the agents its calls and queuecalls held (busy on a call that ended with it, ringing for its caller)', async (t) => {
    const dead = 'dead-node-queues'
    const mk = (n: string) => store.contactAgents.create(account.id, { name: `restart ${n}`, addresses: [{ type: 'tel', target: n }], tagIds: ['restart'], presence: { extensionIds: [], dialKeys: [n], reachableOtherwise: true } })
    const talking = await mk('+12125550171')
    const ringing = await mk('+12125550172')
    // The dead node's call with the first agent: this node's presence follows only its own calls.
    const c = await store.calls.create({ accountId: account.id, direction: 'outbound', from: '+14155550100', to: '+12125550171', status: 'in-progress', nodeId: dead })
    await store.contactAgents.presenceChanged(account.id, { dialKeys: ['+12125550171'] })
    await agentStatus(talking.id, 'busy', 'on the dead node\'s call')
    const queue = await store.queues.create(account.id, { name: 'restart', tagIds: ['restart'] })
    const qc = await store.queuecalls.join({ accountId: account.id, queueId: queue.id, callId: crypto.randomUUID(), nodeId: dead })
    t.same((await store.queuecalls.offer(qc.id, { tagIds: ['restart'], routingMethod: 'random' })).map((x) => x.id), [ringing.id], 'the free one rings for the dead node\'s caller')
    // The node comes back: its call records end first (nobody follows presence yet), then its queuecalls.
    await store.calls.end(c.id, { status: 'completed', endedReason: 'node-restart', hangupBy: 'system' })
    t.equal(await store.queuecalls.endStale(dead), 1)
    t.match(await queuecallOf(qc.reference_id), { status: 'abandoned', end_reason: 'node-restart' })
    t.match(await agent(ringing.id), { status: 'available', current_queuecall_id: null })
    t.match(await agent(talking.id), { status: 'available' }, 'no agent stays busy on a call that ended with the node')
  })

  await t.test('presence: a call no agent is a party of costs no store query; agents created or readdressed are followed at once', async (t) => {
    const nodeId = stack.engine.sipApplication.nodeId
    const repo = store.contactAgents
    const original = repo.presenceChanged.bind(repo)
    const asked: unknown[] = []
    repo.presenceChanged = (accountId, what) => { asked.push(what); return original(accountId, what) }
    t.teardown(() => { repo.presenceChanged = original })
    const callTo = async (to: string) => {
      const c = await store.calls.create({ accountId: account.id, direction: 'outbound', from: '+14155550100', to, status: 'ringing', nodeId })
      return { end: () => store.calls.end(c.id, { status: 'completed', endedReason: 'test', hangupBy: 'system' }) }
    }
    // Warm the account's keys, then unrelated traffic.
    await (await callTo('+13125550100')).end()
    await sleep(200)
    asked.length = 0
    for (let i = 0; i < 20; i++) await (await callTo(`+1312555${String(1000 + i)}`)).end()
    await sleep(300)
    t.equal(asked.length, 0, '40 call events of no agent: presence asked the store nothing')

    // An agent created after the keys were loaded: its call makes it busy, its end frees it.
    const x = await post('/v1/contact-agents', { name: 'presence', addresses: [{ type: 'tel', target: '+13125550199' }], tag_ids: ['presence'] })
    t.equal(x.status, 201)
    // Events reach the WebSocket after the response on PostgreSQL (NOTIFY): wait for it.
    await waitFor(() => events.some((e) => e.type === 'contact_agent.created' && e.data.contact_agent?.id === x.body.id), 5000, 'contact_agent.created')
    t.pass('contact_agent.created')
    await agentStatus(x.body.id as string, 'available', 'created available')
    const first = await callTo('+13125550199')
    await agentStatus(x.body.id as string, 'busy', 'busy on its call (the new agent\'s keys were loaded)')
    await first.end()
    await agentStatus(x.body.id as string, 'available', 'free after it')
    // Readdressed: the new number counts, the old one no more.
    t.equal((await api(`/v1/contact-agents/${x.body.id}`, { method: 'PATCH', body: JSON.stringify({ addresses: [{ type: 'tel', target: '+13125550198' }] }) })).status, 200)
    await waitFor(() => events.some((e) => e.type === 'contact_agent.updated' && e.data.contact_agent?.id === x.body.id), 5000, 'contact_agent.updated')
    const second = await callTo('+13125550198')
    await agentStatus(x.body.id as string, 'busy', 'busy on a call to its new address')
    await second.end()
    await agentStatus(x.body.id as string, 'available', 'free after it')
    t.equal((await api(`/v1/contact-agents/${x.body.id}`, { method: 'DELETE' })).status, 204)
    await waitFor(() => events.some((e) => e.type === 'contact_agent.deleted' && e.data.contact_agent?.id === x.body.id), 5000, 'contact_agent.deleted')
    asked.length = 0
    await (await callTo('+13125550198')).end()
    await sleep(300)
    t.equal(asked.length, 0, 'a deleted agent\'s number is nobody\'s again')
  })
})
