import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { startStack } from '../harness/stack.ts'
import { rms } from '../sip/app/rtp-caller.ts'
import { flowCalls } from './flow-calls.ts'
import { speechPcm, silencePcm, concatPcm } from '../agent/helpers/audio.ts'
import type { RtpCaller } from '../sip/app/rtp-caller.ts'

/**
 * IVRs as a user builds them: a flow stored through POST /v1/flows, a number
 * pointing at it, a real SIP call from sipp with the test owning the
 * caller's RTP (what it hears, the RFC 4733 digits and the speech it sends),
 * and the call record read back through the API.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const framesOf = (pcm: Int16Array) => Array.from({ length: Math.floor(pcm.length / 160) }, (_, i) => pcm.subarray(i * 160, i * 160 + 160))
const voicedFrames = (pcm: Int16Array) => framesOf(pcm).filter((f) => rms(f) > 300).length
/** The caller says `text` (espeak-ng) from now on, then 1.5 s of silence. */
function speak(caller: RtpCaller, text: string): void {
  const said = concatPcm(speechPcm(text), silencePcm(1500))
  const from = caller.sent
  caller.signal = (n) => (n >= from && n - from < said.length ? said[n - from]! : 0)
}


t.test('IVR flows over SIP', async (t) => {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  t.teardown(() => stack.stop())
  const dir = mkdtempSync(join(tmpdir(), 'flow-ivr-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { api, post, call, ended } = flowCalls(stack, dir)
  let numberSeq = 0
  /** A flow and a number that runs it; returns the number. */
  const flowNumber = async (actions: unknown[]): Promise<string> => {
    const flow = await post('/v1/flows', { name: `ivr ${numberSeq}`, actions })
    t.equal(flow.status, 201, 'the flow is stored')
    const number = `+1415555${String(300 + numberSeq++).padStart(4, '0')}`
    const n = await post('/v1/numbers', { number, target: { type: 'flow', id: flow.body.id } })
    t.equal(n.status, 201, 'the number points at the flow')
    return number
  }
  t.test('press 1 for sales: the menu is heard, the digit branches, the branch speaks, the flow hangs up', async (t) => {
    const number = await flowNumber([
      { id: 'menu', type: 'gather', option: { text: 'Welcome. For sales press one. For support press two.', max_digits: 1, timeout: 6000 } },
      { type: 'branch', option: { target_ids: { 1: 'sales', 2: 'support' }, default_target_id: 'sorry' } },
      { id: 'sorry', type: 'talk', option: { text: 'Sorry, I did not get that.' }, next_id: 'bye' },
      { id: 'sales', type: 'talk', option: { text: 'Connecting you to sales.' }, next_id: 'bye' },
      { id: 'support', type: 'talk', option: { text: 'Support is closed.' } },
      { id: 'bye', type: 'hangup', option: { reason: 'ivr-done' } },
    ])
    const c = await call(number)
    t.teardown(c.close)
    const t0 = Date.now()
    await sleep(1500)
    t.ok(voicedFrames(c.caller.audioSince(t0)) >= 20, 'the caller hears the menu prompt (speech on the RTP)')
    c.caller.sendDigits('1')
    const d = await ended(c.callId)
    const run = d.activeflows[0]!
    t.same(run.executedActions.map((e) => e.id), ['menu', run.executedActions[1]!.id, 'sales', 'bye'], 'menu → branch → sales → hangup')
    t.equal(run.executedActions[0]!.outcome, 'max-digits', 'the gather ended on its one digit')
    t.equal(run.executedActions[1]!.outcome, 'matched:1', 'the branch matched 1')
    t.equal(run.variables['callplane.call.digits'], '1', 'the digit is in the variables')
    t.equal(d.endedReason, 'ivr-done', 'the hangup verb\'s reason is the call\'s endedReason')
    t.ok(run.executedActions.every((e) => e.endedAt !== undefined || e.type === 'hangup'), 'each executed action has its end')
    const sales = c.caller.audioSince(Date.parse(run.executedActions[2]!.startedAt))
    t.ok(voicedFrames(sales) >= 15, 'the sales line is heard')
  })

  t.test('no digit: the default branch speaks', async (t) => {
    const number = await flowNumber([
      { id: 'menu', type: 'gather', option: { text: 'Press one.', max_digits: 1, timeout: 1500 } },
      { type: 'branch', option: { target_ids: { 1: 'one' }, default_target_id: 'none' } },
      { id: 'one', type: 'hangup', option: { reason: 'pressed' } },
      { id: 'none', type: 'hangup', option: { reason: 'no-input' } },
    ])
    const c = await call(number)
    t.teardown(c.close)
    const d = await ended(c.callId)
    t.equal(d.activeflows[0]!.executedActions[0]!.outcome, 'timeout', 'the gather timed out')
    t.equal(d.endedReason, 'no-input', 'the default target ran')
  })

  t.test('digits_receive hears SIP INFO digits (RFC 2976 application/dtmf-relay) too', async (t) => {
    const number = await flowNumber([
      { type: 'digits_receive', option: { duration: 8000, length: 3 } },
      { type: 'branch', option: { target_ids: { 123: 'yes' }, default_target_id: 'no' } },
      { id: 'yes', type: 'hangup', option: { reason: 'got-123' } },
      { id: 'no', type: 'hangup', option: { reason: 'got-other' } },
    ])
    const c = await call(number, { sendInfo: { digits: '123', afterMs: 800 } })
    t.teardown(c.close)
    const d = await ended(c.callId)
    t.equal(d.endedReason, 'got-123', `the three INFO digits were collected (${d.activeflows[0]?.variables['callplane.call.digits']})`)
    t.equal(d.activeflows[0]!.executedActions[0]!.outcome, 'max-digits')
  })

  t.test('speech gather: the caller says "sales" and the flow branches on it', async (t) => {
    const number = await flowNumber([
      { id: 'ask', type: 'gather', option: { input: ['speech'], text: 'Say sales or support.', hints: ['sales', 'support'], timeout: 8000 } },
      { type: 'branch', option: { variable: 'callplane.gather.speech', target_ids: { sales: 'sales', support: 'support' }, default_target_id: 'other' } },
      { id: 'sales', type: 'hangup', option: { reason: 'said-sales' } },
      { id: 'support', type: 'hangup', option: { reason: 'said-support' } },
      { id: 'other', type: 'hangup', option: { reason: 'said-other' } },
    ])
    const c = await call(number)
    t.teardown(c.close)
    // The prompt plays first; the caller answers after it, as a person would.
    await sleep(2500)
    speak(c.caller, 'sales')
    const d = await ended(c.callId)
    t.equal(d.endedReason, 'said-sales', `the branch followed the speech (heard: ${d.activeflows[0]?.variables['callplane.gather.speech']})`)
    t.equal(d.activeflows[0]!.executedActions[0]!.outcome, 'speech')
  })

  t.test('a flow that runs out of actions hangs up; variables substitute', async (t) => {
    const number = await flowNumber([
      { type: 'variable_set', option: { key: 'greeting', value: 'Hello caller' } },
      { type: 'condition_variable', option: { variable: 'greeting', value_string: 'Hello caller', false_target_id: 'wrong' } },
      { type: 'talk', option: { text: '${greeting}, you called ${callplane.call.destination.target}.' } },
      { type: 'stop' },
      { id: 'wrong', type: 'hangup', option: { reason: 'condition-false' } },
    ])
    const c = await call(number)
    t.teardown(c.close)
    const d = await ended(c.callId)
    t.equal(d.endedReason, 'flow-completed', 'the end of the flow hangs up')
    t.same(d.activeflows[0]!.executedActions.map((e) => e.type), ['variable_set', 'condition_variable', 'talk', 'stop'])
    t.equal(d.activeflows[0]!.variables.greeting, 'Hello caller')
  })

  t.test('transcribe_start on a call with no agent: the caller\'s words become transcript lines and call.transcript events', async (t) => {
    const number = await flowNumber([
      { type: 'transcribe_start', option: { direction: 'in' } },
      { type: 'sleep', option: { duration: 7000 } },
      { type: 'transcribe_stop' },
      { type: 'hangup', option: { reason: 'transcribed' } },
    ])
    const seen: Array<{ type: string; callId: string; data: { role?: string; text?: string } }> = []
    const ws = new WebSocket(`${stack.baseUrl.replace(/^http/, 'ws')}/v1/events?types=call.transcript&token=${stack.apiKey}`)
    ws.on('message', (m) => seen.push(JSON.parse(m.toString()) as (typeof seen)[number]))
    await new Promise((r) => ws.once('open', r))
    t.teardown(() => ws.close())
    const c = await call(number)
    t.teardown(c.close)
    await sleep(800)
    speak(c.caller, 'hello, I would like to book a table for two people tonight')
    const d = await ended(c.callId)
    t.equal(d.endedReason, 'transcribed')
    const full = (await (await api(`/v1/calls/${c.callId}`)).json()) as { transcript: Array<{ role: string; text: string; source?: string }> }
    const lines = full.transcript.filter((l) => l.source === 'transcribe')
    t.ok(lines.length >= 1 && lines.every((l) => l.role === 'user' && l.text.length > 0), `the caller's speech was transcribed: ${JSON.stringify(lines.map((l) => l.text))}`)
    const mine = seen.filter((e) => e.type === 'call.transcript' && e.callId === c.callId)
    t.ok(mine.length >= lines.length && mine.every((e) => e.data.role === 'user'), `call.transcript events on /v1/events (${mine.length})`)
  })

  t.test('verbs queued from the API into a looping menu run, and the loop still finds its targets', async (t) => {
    const number = await flowNumber([
      { id: 'menu', type: 'gather', option: { text: 'Press one.', max_digits: 1, timeout: 1000 } },
      { id: 'again', type: 'goto', option: { target_id: 'menu', loop_count: 2 } },
      { type: 'hangup', option: { reason: 'menu-looped' } },
    ])
    const c = await call(number)
    t.teardown(c.close)
    const r = await post(`/v1/calls/${c.callId}/actions`, { mode: 'queue', actions: [{ id: 'note', type: 'variable_set', option: { key: 'queued', value: 'yes' } }] })
    t.equal(r.status, 202)
    t.equal(r.body.mode, 'queue', 'queued into the running flow')
    const d = await ended(c.callId)
    t.equal(d.endedReason, 'menu-looped', 'the menu looped to its end (no jump lost its target)')
    const run = d.activeflows[0]!
    t.equal(run.variables.queued, 'yes', 'the queued verb ran')
    t.equal(run.executedActions.filter((e) => e.id === 'menu').length, 3, 'the menu ran three times')
  })

  t.test('flows chained in a cycle by on_complete_flow_id end with app-error, not a silent spin', async (t) => {
    const a = await post('/v1/flows', { name: 'a', actions: [{ type: 'variable_set', option: { key: 'x', value: '1' } }] })
    const b = await post('/v1/flows', { name: 'b', actions: [], on_complete_flow_id: a.body.id })
    t.equal((await api(`/v1/flows/${a.body.id}`, { method: 'PATCH', body: JSON.stringify({ on_complete_flow_id: b.body.id }) })).status, 200)
    const number = `+1415555${String(300 + numberSeq++).padStart(4, '0')}`
    t.equal((await post('/v1/numbers', { number, target: { type: 'flow', id: a.body.id } })).status, 201)
    const c = await call(number)
    t.teardown(c.close)
    const d = await ended(c.callId)
    t.equal(d.endedReason, 'app-error')
    t.match(d.activeflows[0]!.error, /chained by on_complete_flow_id/)
  })

  t.test('flow validation: each bad option is a 400 naming the action and field', async (t) => {
    const cases: Array<{ actions: unknown[]; message: RegExp }> = [
      { actions: [{ type: 'dance' }], message: /actions\[0\] type: unknown verb 'dance'/ },
      { actions: [{ id: 'x', type: 'talk', option: {} }], message: /actions\[0\] \(id x\) option.*text/ },
      { actions: [{ type: 'talk', option: { text: 'hi', speed: 3 } }], message: /actions\[0\] option.*speed|additional/i },
      { actions: [{ type: 'goto', option: { target_id: 'nowhere' } }], message: /target nowhere is not an action id/ },
      { actions: [{ type: 'branch', option: { target_ids: { 1: 'a' } } }], message: /target a is not an action id/ },
      { actions: [{ type: 'gather', option: { input: ['speech'], max_digits: 2 } }], message: /input: digit options need input digits/ },
      { actions: [{ type: 'sleep', option: { duration: -1 } }], message: /actions\[0\] option\/duration/ },
      { actions: [{ type: 'condition_datetime', option: { timezone: 'Mars/Base', false_target_id: 'a' } }, { id: 'a', type: 'stop' }], message: /timezone: unknown time zone/ },
      { actions: [{ id: 'a', type: 'stop' }, { id: 'a', type: 'stop' }], message: /duplicate id a/ },
      { actions: [{ type: 'talk', option: { text: 'x' }, next_id: 'ghost' }], message: /next_id: no action has id ghost/ },
    ]
    for (const c of cases) {
      const r = await post('/v1/flows', { name: 'bad', actions: c.actions })
      t.equal(r.status, 400, JSON.stringify(c.actions))
      t.match((r.body.error as { message: string }).message, c.message)
    }
    const doc = await (await fetch(`${stack.baseUrl}/openapi.json`)).json() as { components: { schemas: Record<string, { properties?: Record<string, unknown> }> } }
    t.ok(doc.components.schemas.FlowVerbOption_gather?.properties?.finish_key, 'each verb\'s options are documented in the OpenAPI components')
    const inline = await post('/v1/calls', { from: '+14155550100', to: '+14155550101', actions: [{ type: 'hangup', option: { reason: 'a b' } }] })
    t.equal(inline.status, 400, 'inline actions on POST /v1/calls are checked the same way')
    t.match((inline.body.error as { message: string }).message, /actions\[0\] option\/reason/)
  })
})
