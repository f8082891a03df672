import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import WebSocket from 'ws'
import { Webhook } from 'standardwebhooks'
import { startStack } from '../../harness/stack.ts'
import { apiClient, pollUntil } from '../../harness/api-client.ts'
import { RtpCaller, awaitAnsweredCall, noise, placeCall, rms } from './rtp-caller.ts'

/**
 * The call record tells the whole story, seen as a user sees it: an agent and
 * a number created through the API, a real SIP call (sipp signalling, the
 * test's own RTP socket as the caller's phone), events read from
 * GET /v1/events, the record from GET /v1/calls/:id. Covers quality (live and
 * final), `say` lines and a barge-in in the transcript, call.dtmf (RFC 4733
 * and SIP INFO), call.tool_call, call.speech_update and call.report.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const LONG = 'This is the long answer. It keeps talking for many seconds on purpose, so that the caller has all the time in the world to cut in '
  + 'somewhere in the middle of it, and the transcript then has to show only what was heard before the interruption and nothing of the rest of it at all.'

interface Evt { type: string; callId: string | null; data: Record<string, any> }

t.test('a live agent call: quality, transcript, events and the end-of-call report', async (t) => {
  const stack = await startStack(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {})
  t.teardown(() => stack.stop())
  const dir = mkdtempSync(join(tmpdir(), 'call-story-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { api, post } = apiClient(stack)
  const waitFor = pollUntil

  // Resources as a user creates them.
  const agentRes = await post('/v1/agents', {
    name: 'story', greeting: 'Hello.',
    summary: { enabled: true },
    rules: [
      { match: '^DTMF: 1$', reply: LONG },
      { match: '^DTMF: 5$', tool: 'send_dtmf', args: { digits: '7' } },
      { match: '^DTMF: 9$', reply: 'Goodbye.', hangup: true },
    ],
  })
  t.equal(agentRes.status, 201, 'agent created')
  const agent = await agentRes.json() as { id: string }
  t.equal((await post('/v1/numbers', { number: '+14155550191', target: { type: 'agent', id: agent.id } })).status, 201, 'number created')
  // A webhook receiver subscribed to the new events (signatures checked as a receiver would).
  const hooked: Array<{ type: string; data: Record<string, any> }> = []
  let secret = ''
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      try {
        hooked.push(new Webhook(secret).verify(Buffer.concat(chunks).toString('utf8'), req.headers as Record<string, string>) as { type: string; data: Record<string, any> })
        res.writeHead(204).end()
      } catch {
        res.writeHead(400).end()
      }
    })
  })
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
  t.teardown(() => receiver.close())
  const hook = await post('/v1/webhooks', { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, events: ['call.report', 'call.dtmf', 'call.tool_call', 'call.speech_update'] })
  t.equal(hook.status, 201, 'a webhook can subscribe to call.report, call.dtmf, call.tool_call, call.speech_update')
  secret = ((await hook.json()) as { secret: string }).secret

  const events: Evt[] = []
  const ws = new WebSocket(`${stack.baseUrl.replace('http', 'ws')}/v1/events?types=call.*&token=${stack.apiKey}`)
  await new Promise<void>((resolve, reject) => { ws.once('message', () => resolve()); ws.once('error', reject) })
  ws.on('message', (m) => events.push(JSON.parse(m.toString()) as Evt))
  t.teardown(() => ws.close())

  const caller = new RtpCaller()
  await caller.start()
  t.teardown(() => caller.close())
  // SIP INFO digit 4 from the caller, 2 s into the call.
  const sipp = await placeCall({ dir, sipPort: stack.sipPort, service: '+14155550191', caller, sendInfo: { digits: '4', afterMs: 2000 } })
  t.teardown(() => sipp.kill())
  const { callId, rtp } = await awaitAnsweredCall(api, caller)
  t.ok(callId && rtp, 'the call was answered and RTP flows')
  const mine = (type: string) => events.filter((e) => e.type === type && e.callId === callId)
  const getCall = async () => await (await api(`/v1/calls/${callId}`)).json() as Record<string, any>

  t.test('quality is on the call while it runs', async (t) => {
    const q = await waitFor(async () => (await getCall()).quality as Record<string, any> | null)
    t.ok(q, 'GET /v1/calls/:id has quality while the call is live')
    t.equal(q!.final, false, 'marked live')
    t.ok(q!.packetsIn > 20, `packets received (${q!.packetsIn})`)
    t.ok(q!.packetsOut > 5, `packets sent (${q!.packetsOut})`)
    t.ok(q!.jitterMs >= 0 && q!.jitterMs < 60, `jitter plausible (${q!.jitterMs} ms)`)
    t.ok(q!.lossPct >= 0 && q!.lossPct < 5, `loss plausible (${q!.lossPct} %)`)
    t.ok(q!.mos >= 3.5 && q!.mos <= 4.5, `MOS plausible for a clean local G.711 call (${q!.mos})`)
  })

  t.test('DTMF by RFC 4733 and by SIP INFO: call.dtmf; a rule calling a tool: call.tool_call', async (t) => {
    const info = await waitFor(() => mine('call.dtmf').find((e) => e.data.digit === '4'))
    t.match(info?.data, { callId, digit: '4', source: 'info' }, 'SIP INFO digit announced')
    // Apart from the INFO digit, so the agent takes them as two inputs.
    await sleep(1500)
    caller.sendDigits('5')
    const rfc = await waitFor(() => mine('call.dtmf').find((e) => e.data.digit === '5'))
    t.match(rfc?.data, { callId, digit: '5', source: 'rfc4733' }, 'RFC 4733 digit announced')
    const tool = await waitFor(() => mine('call.tool_call').find((e) => e.data.name === 'send_dtmf'))
    t.match(tool?.data, { callId, name: 'send_dtmf', arguments: { digits: '7' }, ok: true }, 'tool call announced with its arguments and outcome')
    t.ok(typeof tool?.data.durationMs === 'number' && typeof tool.data.result === 'string', 'with its result and duration')
    // The agent's DTMF reaches the caller too (the tool did its job).
    const heard = await waitFor(() => caller.digits().includes('7'), 10_000)
    t.ok(heard, 'the caller received the digit the tool sent')
  })

  t.test('say: the line is in the transcript, marked as from the API', async (t) => {
    await sleep(500)
    t.equal((await post(`/v1/calls/${callId}/say`, { text: 'This line comes from the API.' })).status, 202)
    const entry = await waitFor(async () => ((await getCall()).transcript as Array<Record<string, any>>).find((e) => e.source === 'api-say'))
    t.match(entry, { role: 'assistant', text: 'This line comes from the API.', source: 'api-say', interrupted: false })
  })

  t.test('barge-in: the interrupted agent line is stored as far as it was heard', async (t) => {
    caller.sendDigits('1')
    // The long reply is playing.
    const playing = await waitFor(() => rms(caller.audioSince(Date.now() - 500)) > 300 ? true : null, 15_000)
    t.ok(playing, 'the long reply is playing')
    await sleep(1500)
    const ref = noise(8000 * 60, 6000, 7)
    caller.signal = (n) => ref[n % ref.length]!
    await sleep(1500)
    caller.signal = () => 0
    // The agent's line after the keypress that asked for the long answer.
    const cut = await waitFor(async () => {
      const tr = (await getCall()).transcript as Array<Record<string, any>>
      return tr.slice(tr.findIndex((e) => e.text === 'DTMF: 1') + 1).find((e) => e.role === 'assistant')
    })
    t.ok(cut, 'the reply is in the transcript')
    t.equal(cut!.interrupted, true, 'marked interrupted')
    t.ok(cut!.text.length > 0 && cut!.text.length < LONG.length - 40 && LONG.startsWith(cut!.text), `truncated to what was heard: "${cut!.text}"`)
    const speech = await waitFor(() => {
      const s = mine('call.speech_update').map((e) => `${e.data.role}:${e.data.status}`)
      return ['user:started', 'user:stopped', 'assistant:started', 'assistant:stopped'].every((k) => s.includes(k)) ? s : null
    })
    t.ok(speech, `call.speech_update for caller and agent, started and stopped (${mine('call.speech_update').map((e) => `${e.data.role}:${e.data.status}`).slice(0, 12).join(' ')})`)
  })

  t.test('the agent hangs up; quality is final; call.report carries the whole story once', async (t) => {
    // Let the noise burst's own turn (whatever STT made of it) finish first, so "9" is the last word.
    await waitFor(async () => {
      const tr = (await getCall()).transcript as Array<Record<string, any>>
      const i = tr.findIndex((e) => e.text === 'DTMF: 1')
      return tr.slice(i + 2).some((e) => e.role === 'assistant') ? true : null
    }, 8000)
    await sleep(2000)
    caller.sendDigits('9')
    const r = await sipp.done
    t.equal(r.code, 0, `the caller got the BYE (${r.errors.slice(0, 200)})`)
    const report = await waitFor(() => mine('call.report')[0], 30_000)
    t.ok(report, 'call.report arrived')
    const d = report!.data
    t.match(d, {
      callId, type: 'inboundPhoneCall', status: 'completed', endedReason: String, hangupBy: 'agent', to: '+14155550191', agentId: agent.id,
      startedAt: String, endedAt: String, summary: String,
    })
    t.ok(d.duration >= 5, `duration in seconds (${d.duration})`)
    t.match(d.transcript, /^(AI: Hello\.\n)?User: DTMF: 4\n[\s\S]*\nUser: DTMF: 5\n[\s\S]*\nAI: Goodbye\.$/, `the transcript as text: ${JSON.stringify(d.transcript)}`)
    t.ok(d.transcriptMessages.some((e: any) => e.source === 'api-say'), 'the say line is in it')
    t.ok(d.transcriptMessages.some((e: any) => e.interrupted === true), 'the interrupted line is in it')
    t.ok(d.transcriptMessages.some((e: any) => e.role === 'tool'), 'the tool call is in it')
    t.ok(Array.isArray(d.timings) && d.timings.length >= 2, `per-turn timings (${d.timings?.length})`)
    t.match(d.quality, { final: true, mos: Number, jitterMs: Number, lossPct: Number })
    t.same(d.recordings, [], 'no recording (none asked for)')
    t.equal(d.recording, null)
    const call = await getCall()
    t.match(call.quality, { final: true }, 'the stored quality is the final one')
    t.ok(call.quality.packetsIn >= d.quality.packetsIn - 0, 'same figures')
    t.equal(call.summary, d.summary, 'report summary = stored summary')
    const after = mine('call.ended')[0]
    t.ok(after && events.indexOf(after) < events.indexOf(report!), 'the report comes after call.ended')
    await sleep(1500)
    t.equal(mine('call.report').length, 1, 'emitted once')
    const viaHook = await waitFor(() => hooked.find((e) => e.type === 'call.report' && e.data.callId === callId))
    t.match(viaHook?.data, { callId, endedReason: d.endedReason, summary: d.summary }, 'the signed webhook delivery carries the same report')
    for (const type of ['call.dtmf', 'call.tool_call', 'call.speech_update']) {
      t.ok(hooked.some((e) => e.type === type && e.data.callId === callId), `${type} delivered to the webhook`)
    }
  })
})
