/**
 * The AI verbs of a flow over real SIP/RTP, set up through the REST API as a
 * user does: an agent (POST /v1/agents), a flow (POST /v1/flows), a number
 * pointing at the flow, and a sipp caller whose RTP the test owns (it speaks
 * espeak-ng audio and hears what the call sends). `ai_talk` hands the call
 * to the agent and the flow goes on when the agent is done (its goodbye
 * rule, `duration`); `resume` continues the agent's conversation; `amd` on
 * an outbound call placed with POST /v1/calls {actions} tells a machine's
 * long greeting from a person's "hello".
 */
import t from 'tap'
import { speechPcm } from '../agent/helpers/audio.ts'
import { answeringParty, fieldLab, frames, sleep, voiced, waitUntil, type FieldLab, type LiveCall } from '../agent/helpers/field-lab.ts'
import { RtpCaller } from '../sip/app/rtp-caller.ts'
import { startOpenAiFake } from '../agent/fakes/openai-server.ts'
import { startDeepgramFake } from '../agent/fakes/deepgram-server.ts'

const NUMBER = '+14155550231'
const GREETING = 'Hello, this is the assistant.'
const AGENT_BYE = 'Goodbye from the assistant.'

interface Executed { id: string; type: string; outcome?: string; startedAt: string; endedAt?: string }
interface Activeflow { status: string; executedActions: Executed[]; variables: Record<string, string>; error: string | null }
interface FlowCallDetail { status: string; endedReason: string | null; agentId: string | null; summary: string | null; activeflows: Activeflow[] }

/** Stores `actions` as a flow and points the lab's number at it. */
async function flowOnNumber(lab: FieldLab, actions: unknown[]): Promise<string> {
  const flow = await lab.json<{ id: string }>('POST', '/v1/flows', { name: 'ai flow', actions })
  if (flow.status !== 201) throw new Error(`flow: ${flow.status} ${JSON.stringify(flow.body)}`)
  const numbers = await lab.json<{ data: Array<{ id: string; number: string }> }>('GET', '/v1/numbers?limit=100')
  const n = numbers.body.data.find((x) => x.number === NUMBER)!
  const p = await lab.json('PATCH', `/v1/numbers/${n.id}`, { target: { type: 'flow', id: flow.body.id } })
  if (p.status !== 200) throw new Error(`number: ${p.status} ${JSON.stringify(p.body)}`)
  return flow.body.id
}

async function createAgent(lab: FieldLab, body: Record<string, unknown>): Promise<string> {
  const r = await lab.json<{ id: string }>('POST', '/v1/agents', { name: 'flow agent', ...body })
  if (r.status !== 201) throw new Error(`agent: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body.id
}

const detail = async (lab: FieldLab, id: string) => (await lab.json<FlowCallDetail>('GET', `/v1/calls/${id}`)).body
/** Polls the call's transcript events for a line; resolves with the wall time it was seen. */
const lineSeen = async (call: LiveCall, match: (e: { role: string; text: string; source?: string }) => boolean, ms: number, what: string) =>
  waitUntil(() => (call.said().some(match) ? Date.now() : null), ms, what)
    .catch((err: Error) => { throw new Error(`${err.message} (the call's lines: ${call.said().map((e) => `${e.role}: ${e.text}`).join(' | ')})`) })
const voicedBetween = (call: LiveCall, from: number, to: number) =>
  call.caller.audio.filter((f, i) => call.caller.audioAt[i]! >= from && call.caller.audioAt[i]! <= to && voiced(f)).length

t.test('flow AI verbs', async (t) => {
  const lab = await fieldLab(NUMBER)
  t.teardown(() => lab.close())

  await t.test('ai_talk: the agent talks, its goodbye ends its part, the flow goes on (ai_summary, talk) and hangs up', async (t) => {
    const agentId = await createAgent(lab, {
      greeting: GREETING,
      rules: [{ match: 'goodbye', reply: AGENT_BYE, hangup: true }],
    })
    await flowOnNumber(lab, [
      { type: 'talk', option: { text: 'Connecting you.' } },
      { id: 'agent', type: 'ai_talk', option: { agent_id: agentId } },
      { type: 'ai_summary' },
      { type: 'talk', option: { text: 'Back in the flow.' } },
      { type: 'hangup', option: { reason: 'flow-done' } },
    ])
    const call = await lab.call((fn) => t.teardown(fn))
    await lineSeen(call, (e) => e.role === 'assistant' && e.text === GREETING, 30_000, 'the agent\'s greeting')
    const during = await detail(lab, call.id)
    t.equal(during.agentId, agentId, 'while the agent talks, the call record names it')
    t.equal(during.status, 'in-progress')
    // Said again if the offline recognizer missed it (a loaded box): the agent asks again rather than ending.
    let said = 0
    let byeAt = 0
    for (let attempt = 1; !byeAt; attempt++) {
      await call.say(speechPcm('goodbye'))
      said = Date.now()
      byeAt = await lineSeen(call, (e) => e.role === 'assistant' && e.text === AGENT_BYE, 12_000, 'the agent\'s goodbye').catch((err: Error) => { if (attempt >= 3) throw err; return 0 })
    }
    t.ok(voicedBetween(call, said, byeAt) > 20, 'the caller heard the agent\'s goodbye')
    const flowAt = await lineSeen(call, (e) => e.source === 'prompt' && e.text === 'Back in the flow.', 30_000, 'the flow\'s line after the agent')
    t.ok(voicedBetween(call, byeAt, flowAt) > 20, 'and then the flow\'s line')
    const rec = await call.ended(30_000)
    t.equal(rec.endedReason, 'flow-done', 'the flow, not the agent, ended the call')
    const d = await detail(lab, call.id)
    const run = d.activeflows[0]!
    t.same(run.executedActions.map((a) => [a.type, a.outcome]), [['talk', 'done'], ['ai_talk', 'end_call'], ['ai_summary', 'summarized'], ['talk', 'done'], ['hangup', 'hung-up']], 'each verb and its outcome')
    t.equal(run.variables['callplane.ai_talk.reason'], 'end_call')
    t.match(run.variables['callplane.ai_summary.content'], /The caller said: goodbye/, 'ai_summary summarised the call so far with the agent\'s model')
    t.equal(d.summary, run.variables['callplane.ai_summary.content'], 'and it is the call\'s summary')
    t.ok(lab.events.some((e) => e.type === 'call.summary' && e.callId === call.id), 'call.summary was announced')
    t.equal(d.agentId, agentId, 'the record keeps the agent that talked')
    const order = call.said().map((e) => e.text)
    t.ok(order.indexOf('Connecting you.') < order.indexOf(GREETING) && order.indexOf(AGENT_BYE) < order.indexOf('Back in the flow.'), `the lines in order: ${order.join(' | ')}`)
  })

  await t.test('ai_talk duration cuts the agent off; resume continues its conversation (chat history, no second greeting) with the talk\'s language', async (t) => {
    const openai = await startOpenAiFake()
    t.teardown(() => openai.close())
    const deepgram = await startDeepgramFake(['my name is bob', 'what is my name'])
    t.teardown(() => deepgram.close())
    const agentId = await createAgent(lab, {
      greeting: GREETING,
      llm: { provider: 'openai', model: 'gpt-test', options: { baseURL: openai.baseURL, apiKey: 'sk-test' } },
      stt: { provider: 'deepgram', options: { baseUrl: deepgram.url, apiKey: 'good-key' } },
    })
    await flowOnNumber(lab, [
      { type: 'ai_talk', option: { agent_id: agentId, duration: 10 } },
      { type: 'talk', option: { text: 'Please hold on.' } },
      { type: 'ai_talk', option: { ai_id: agentId, duration: 8, resume: true, language: 'fr-FR' } },
      { type: 'hangup', option: { reason: 'flow-done' } },
    ])
    const call = await lab.call((fn) => t.teardown(fn))
    await lineSeen(call, (e) => e.role === 'assistant' && e.text === GREETING, 30_000, 'greeting')
    await call.say(speechPcm('my name is bob'))
    await waitUntil(() => openai.requests.find((r) => r.path.endsWith('/chat/completions')), 20_000, 'the first turn reaches the model')
    await lineSeen(call, (e) => e.source === 'prompt' && e.text === 'Please hold on.', 30_000, 'the flow\'s line after the cut-off')
    await sleep(1000)
    await call.say(speechPcm('what is my name'))
    const second = await waitUntil(() => openai.requests.filter((r) => r.path.endsWith('/chat/completions'))[1], 20_000, 'the resumed talk\'s turn reaches the model')
    const msgs = second.body.messages as Array<{ role: string; content: string }>
    t.ok(msgs.some((m) => m.role === 'user' && m.content === 'my name is bob'), 'the resumed talk carries the first talk\'s chat (the caller\'s first turn)')
    t.ok(msgs.some((m) => m.role === 'assistant' && m.content === GREETING), 'and its greeting')
    t.equal(msgs.filter((m) => m.role === 'system').length, 1, 'one system prompt: the same conversation, not a new one')
    t.equal(msgs[msgs.length - 1]!.content, 'what is my name')
    const rec = await call.ended(30_000)
    t.equal(rec.endedReason, 'flow-done')
    t.equal(call.said().filter((e) => e.role === 'assistant' && e.text === GREETING).length, 1, 'the resumed agent did not greet again')
    t.equal(deepgram.connections.length, 2, 'one STT stream per talk')
    t.not(deepgram.connections[0]!.get('language'), 'fr-FR', 'the first talk hears in the agent\'s language')
    t.equal(deepgram.connections[1]!.get('language'), 'fr-FR', 'the second in the talk\'s language')
    const run = (await detail(lab, call.id)).activeflows[0]!
    const talks = run.executedActions.filter((a) => a.type === 'ai_talk')
    t.same(talks.map((a) => a.outcome), ['max-duration', 'max-duration'], 'both talks ended at their duration')
    const first = Date.parse(talks[0]!.endedAt!) - Date.parse(talks[0]!.startedAt)
    t.ok(first >= 10_000 && first < 14_000, `the first talk lasted its 10 s (${first} ms)`)
  })

  await t.test('ai_talk: an agent\'s transfer hands the call to its target; the flow does not go on (that would cut the transfer off)', async (t) => {
    const target = new RtpCaller()
    await target.start()
    t.teardown(() => target.close())
    // A whisper makes it a bridged transfer (sipp's caller side does not do REFER).
    const party = await answeringParty(lab.dir, target, (fn) => t.teardown(fn), 1)
    const agentId = await createAgent(lab, {
      greeting: GREETING, expectedPhrases: ['talk to sales'],
      rules: [{ match: 'sales', reply: 'Connecting you to sales.', transferTo: 'sales' }],
      transferTargets: [{ name: 'sales', destination: party.uri, whisper: 'A caller for sales.' }],
    })
    await flowOnNumber(lab, [
      { type: 'ai_talk', option: { agent_id: agentId } },
      { type: 'talk', option: { text: 'This line must not be said.' } },
      { type: 'hangup', option: { reason: 'flow-done' } },
    ])
    const call = await lab.call((fn) => t.teardown(fn), 1)
    await lineSeen(call, (e) => e.role === 'assistant' && e.text === GREETING, 30_000, 'greeting')
    await call.say(speechPcm('talk to sales'))
    await lineSeen(call, (e) => e.text === 'Connecting you to sales.', 20_000, 'the transfer line')
    // The caller is silent from here on: what the target hears before the bridge is the whisper.
    const heard = await waitUntil(() => frames(target.audioSince(0)).filter(voiced).length > 40 || null, 30_000, 'the whisper at the target').catch(() => null)
    t.ok(heard, 'the transfer target was called and heard the whisper')
    await sleep(3000)
    const d = await detail(lab, call.id)
    t.equal(d.status, 'in-progress', 'the caller is connected to the target')
    t.equal(d.activeflows[0]!.status, 'running', 'the flow waits on ai_talk while the call is with the target')
    t.notOk(call.said().some((e) => e.text === 'This line must not be said.'), 'the flow did not go on')
    await call.hangup()
    const run = (await detail(lab, call.id)).activeflows[0]!
    // A verb whose wait the run's end cut short is recorded as stopped (flow-run.ts); the variables say why it waited.
    t.same(run.executedActions.map((a) => [a.type, a.outcome]), [['ai_talk', 'stopped']], 'the call\'s end ended the flow on ai_talk')
    t.equal(run.variables['callplane.ai_talk.reason'], 'transfer')
    t.equal(run.variables['callplane.ai_talk.transfer_target'], party.uri, 'the target is in the flow\'s variables')
  })

  await t.test('amd on an outbound call: a machine\'s long greeting is hung up on (machine-detected)', async (t) => {
    const call = await lab.dial((fn) => t.teardown(fn), { actions: [
      { type: 'amd', option: { machine_handle: 'hangup' } },
      { type: 'talk', option: { text: 'Hello, this is a reminder call.' } },
      { type: 'hangup' },
    ] })
    await call.say(speechPcm('Hello, you have reached the voicemail of the test line. Nobody is available to take your call right now. Please leave a message after the tone.'))
    const rec = await call.ended(30_000)
    t.equal(rec.endedReason, 'machine-detected', 'the machine was hung up on')
    const run = (await detail(lab, call.id)).activeflows[0]!
    t.equal(run.variables['callplane.amd.result'], 'machine')
    t.equal(run.variables['callplane.amd.cause'], 'LONGGREETING')
    t.notOk(call.said().some((e) => e.text === 'Hello, this is a reminder call.'), 'the flow\'s message was not played to it')
  })

  await t.test('amd on an outbound call: a person\'s short hello goes on to the flow\'s message', async (t) => {
    const call = await lab.dial((fn) => t.teardown(fn), { actions: [
      { type: 'amd', option: { machine_handle: 'hangup' } },
      { type: 'branch', option: { variable: 'callplane.amd.result', target_ids: { human: 'person' }, default_target_id: 'other' } },
      { id: 'person', type: 'talk', option: { text: 'Hello, this is a reminder call.' } },
      { type: 'hangup', option: { reason: 'reminded' } },
      { id: 'other', type: 'hangup', option: { reason: 'not-a-person' } },
    ] })
    await call.say(speechPcm('hello'))
    const heard = await call.heardAt(Date.now(), 15_000)
    t.ok(heard, 'the person hears the flow\'s message')
    const rec = await call.ended(30_000)
    t.equal(rec.endedReason, 'reminded', 'the branch for a person ran')
    t.ok(frames(call.caller.audioSince(0)).filter(voiced).length > 25, 'speech reached the callee')
    t.equal((await detail(lab, call.id)).activeflows[0]!.variables['callplane.amd.result'], 'human')
  })

  await t.test('bad options are refused with 400 naming the action and the field', async (t) => {
    const agent = '6a1f7d3e-4b7c-4c1e-9d2a-1b2c3d4e5f60'
    const cases: Array<[unknown[], RegExp]> = [
      [[{ id: 'talker', type: 'ai_talk', option: {} }], /actions\[0\] \(id talker\) option\/agent_id/],
      [[{ id: 'talker', type: 'ai_talk', option: { agent_id: agent, ai_id: agent } }], /\(id talker\) option\/agent_id: give agent_id/],
      [[{ id: 'talker', type: 'ai_talk', option: { agent_id: agent, duration: 0 } }], /\(id talker\) option\/duration/],
      [[{ id: 'talker', type: 'ai_talk', option: { agent_id: agent, gender: 'female' } }], /\(id talker\) option\/gender/],
      [[{ id: 'talker', type: 'ai_talk', option: { agent_id: 'not-an-id' } }], /\(id talker\) option\/agent_id/],
      [[{ id: 'sum', type: 'ai_summary', option: { language: 'en' } }], /\(id sum\) option\/language/],
      [[{ id: 'detect', type: 'amd', option: { machine_handle: 'voicemail' } }], /\(id detect\) option\/machine_handle/],
      [[{ id: 'detect', type: 'amd', option: { async: 'yes' } }], /\(id detect\) option\/async/],
    ]
    for (const [actions, problem] of cases) {
      const r = await lab.json<{ error: { message: string } }>('POST', '/v1/flows', { name: 'bad', actions })
      t.equal(r.status, 400, JSON.stringify(actions))
      t.match(r.body.error.message, problem)
    }
    const call = await lab.json<{ error: { message: string } }>('POST', '/v1/calls', { from: NUMBER, to: 'sip:nobody@127.0.0.1:9', actions: [{ id: 'detect', type: 'amd', option: { machine_handle: 'x' } }] })
    t.equal(call.status, 400, 'POST /v1/calls checks its actions too')
    t.match(call.body.error.message, /\(id detect\) option\/machine_handle/)
  })
})
