/**
 * The first-call journey of the README, as a user makes it: the engine starts
 * (the real Engine, demo seeded on first start), a softphone (baresip) calls
 * `sip:1000`, hears the greeting, asks "what can you do" and hears the demo's
 * answer, says "goodbye", hears the goodbye line and gets the engine's BYE.
 * The caller's words are espeak-ng speech generated here; what the caller
 * heard is baresip's own decode of the RTP it received, recognised with
 * pocketsphinx. Afterwards `GET /v1/calls/:id` has both sides of the
 * transcript and the per-turn timings, its quality (RTCP), and `call.report`
 * (the end-of-call report) arrives on `GET /v1/events`.
 */
import t from 'tap'
import WebSocket from 'ws'
import { readFileSync, rmSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encodeWav, parseWav } from '../../media/wav.ts'
import { runBaresip } from '../harness/baresip.ts'
import { freePort } from '../harness/ports.ts'
import { startStack } from '../harness/stack.ts'
import { waitFor } from '../sip/app/helpers.ts'
import { recognize, talkSpurts } from '../agent/helpers/recognize.ts'
import { concatPcm, silencePcm, speechPcm } from '../agent/helpers/audio.ts'
import { dictionary } from '../../agent/adapters/stt/jsgf.ts'
import { registerBuiltinAdapters } from '../../agent/adapters/builtin.ts'
import { createLlm } from '../../agent/adapters/registry.ts'
import { resolveAgentConfig } from '../../agent/config.ts'
import { agentConfigFrom } from '../../call/agent-binder.ts'
import type { Agent } from '../../store/agents.ts'

const GREETING = 'Hello, this is the Callplane demo agent. Ask me what I can do, or say goodbye to hang up.'
const CAPABILITIES = 'I can say hello, tell you a joke, or tell you who I am. When you are done, say goodbye.'
const FAREWELL = 'Goodbye, and thanks for calling.'
const NEVER_SAID = 'Why did the phone wear glasses? It lost all its contacts.'

const words = (s: string): string => s.toLowerCase().replace(/[^a-z ]/g, ' ').replace(/\s+/g, ' ').trim()

interface CallRecord {
  id: string
  status: string
  to: string
  endedReason: string | null
  hangupBy: string | null
  transcript: Array<{ role: string; text: string }>
  timings: Array<Record<string, unknown>>
}

t.test('call 1000: greeting, a known phrase and its reply, goodbye and the engine hangs up; the call record tells it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'journey-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const stack = await startStack()
  t.teardown(() => stack.stop())
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${stack.baseUrl}${path}`, { headers: { authorization: `Bearer ${stack.apiKey}` } })
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`)
    return (await res.json()) as T
  }

  // Everything the engine announces about calls, as an app would listen (GET /v1/events).
  const events: Array<{ type: string; callId?: string; data: Record<string, any> }> = []
  const ws = new WebSocket(`${stack.baseUrl.replace('http', 'ws')}/v1/events?types=call.*&token=${stack.apiKey}`)
  await new Promise<void>((resolve, reject) => { ws.once('message', () => resolve()); ws.once('error', reject) })
  ws.on('message', (m) => events.push(JSON.parse(m.toString()) as (typeof events)[number]))
  t.teardown(() => ws.close())

  // The caller's side of the conversation: silence through the greeting (the
  // agent's start and synthesis take seconds on a loaded box), the question,
  // silence through the answer, "goodbye", then silence that outlasts the call
  // (at the end of its file aufile stops, which the far end hears as noise).
  const caller = concatPcm(
    silencePcm(16_000), speechPcm('what can you do'),
    silencePcm(15_000), speechPcm('goodbye'),
    // Once more, as a caller would if the line did not answer: offline
    // recognition over a phone line misses a word now and then (the call has
    // ended by now when it did not).
    silencePcm(12_000), speechPcm('goodbye'),
    silencePcm(30_000),
  )
  const source = join(dir, 'caller.wav')
  writeFileSync(source, encodeWav(caller, 8000))
  const seconds = Math.ceil(caller.length / 8000) + 5
  const run = runBaresip({ source, dial: `sip:1000@127.0.0.1:${stack.sipPort}`, seconds, sipPort: await freePort() })
  t.teardown(() => run.kill())

  // The engine ends the call (BYE) long before baresip's own timer would.
  const call = await waitFor(async () => {
    const page = await api<{ data: CallRecord[] }>('/v1/calls?number=1000')
    const c = page.data[0]
    return c && c.status === 'completed' ? c : null
  }, (seconds - 5) * 1000, 'the call to 1000 completed').catch(async (err: Error) => {
    const page = await api<{ data: CallRecord[] }>('/v1/calls?number=1000')
    throw new Error(`${err.message}; the call so far: ${JSON.stringify(page.data[0] ?? null)}`)
  })
  t.equal(call.hangupBy, 'agent', 'the engine hung up (BYE from our side), after the goodbye')
  run.kill()
  const res = await run.done
  t.match(res.log, /terminated|closed|BYE/i, 'baresip saw the call end')

  // The stored record, as the API shows it.
  const rec = await waitFor(async () => {
    const c = await api<CallRecord>(`/v1/calls/${call.id}`)
    return c.transcript.some((e) => e.role === 'assistant' && e.text === FAREWELL) ? c : null
  }, 15_000, 'the farewell in the stored transcript')
  t.comment(`transcript: ${JSON.stringify(rec.transcript)}`)
  const said = rec.transcript.filter((e) => e.role === 'user').map((e) => words(e.text))
  t.same(said, ['what can you do', 'goodbye'], 'the caller\'s two phrases, recognised word for word')
  const agent = rec.transcript.filter((e) => e.role === 'assistant').map((e) => e.text)
  t.same(agent, [GREETING, CAPABILITIES, FAREWELL], 'greeting, the rule\'s reply (not the fallback), the farewell')
  t.equal(rec.timings.length, 3, 'one timing per agent turn')
  t.match(rec.timings[0], { trigger: 'greeting' })
  for (const tm of rec.timings.slice(1)) {
    t.match(tm, { trigger: 'speech', totalMs: Number, sttMs: Number, llmMs: Number, ttsMs: Number }, 'a spoken turn has its waterfall')
  }

  // Call quality from RTCP/RTP, stored at the end, and the end-of-call report in one event.
  const final = await waitFor(async () => {
    const c = await api<CallRecord & { quality: Record<string, unknown> | null }>(`/v1/calls/${call.id}`)
    return c.quality?.final ? c : null
  }, 15_000, 'the final quality on the call')
  t.match(final.quality, { final: true, mos: Number, jitterMs: Number, lossPct: Number }, 'the record has the call\'s quality')
  const report = await waitFor(() => events.find((e) => e.type === 'call.report' && e.callId === call.id), 30_000, 'call.report')
  t.match(report.data, { callId: call.id, status: 'completed', hangupBy: 'agent', to: '1000', duration: Number, quality: { final: true, mos: Number } }, 'call.report: status, who hung up, duration, quality')
  t.match(report.data.transcript, /Goodbye, and thanks for calling\.$/, 'call.report: the transcript as text, ending with the farewell')
  t.equal(report.data.timings?.length, 3, 'call.report: the per-turn timings')

  // The rest of the demo's phrases, through the same mapping a call uses
  // (the stored agent as the API returns it → agentConfigFrom → its model).
  const demo = (await api<{ data: Agent[] }>('/v1/agents')).data.find((a) => a.name === 'Demo agent')!
  const cfg = resolveAgentConfig(agentConfigFrom(demo))
  registerBuiltinAdapters()
  const model = createLlm(cfg.llm, cfg)
  const reply = async (text: string): Promise<string> => {
    let out = ''
    for await (const c of model.chat({ messages: [{ role: 'user', content: text }], tools: [], signal: new AbortController().signal })) if (c.type === 'text') out += c.text
    return out.trim()
  }
  t.match(await reply('tell me a joke'), /contacts/, 'a joke')
  t.match(await reply('hello'), /^Hello!/, 'hello')
  t.match(await reply('what time is it'), /clock/, 'the time')
  t.match(await reply('the weather is nice today'), /what can you do, tell me a joke, or goodbye/, 'anything else: a fallback that says what it can do')
  t.same(cfg.expectedPhrases, ['goodbye', 'what can you do', 'tell me a joke', 'who are you', 'what time is it', 'hello'], 'every phrase it knows is in the speech grammar')

  // What the caller actually heard over RTP. The agent speaks a sentence at a
  // time (espeak-ng leaves ~300 ms after each; commas pause < 200 ms), so the
  // dump is cut into sentences at the pauses and each is recognised against
  // every sentence of the demo's lines. A sentence with a word the recogniser's
  // dictionary lacks ("Callplane") cannot be checked this way and is skipped.
  t.ok(res.heardWav, 'baresip dumped what it heard')
  const heard = parseWav(readFileSync(res.heardWav!))
  if (process.env.JOURNEY_KEEP) writeFileSync(process.env.JOURNEY_KEEP, readFileSync(res.heardWav!))
  const dict = dictionary()
  const sentences = (line: string) => line.split(/(?<=[.?!])\s+/).filter((s) => words(s).split(' ').every((w) => dict.has(w)))
  const expected = [GREETING, CAPABILITIES, FAREWELL].flatMap(sentences)
  const grammar = [...expected, ...sentences(NEVER_SAID)]
  const recognised: string[] = []
  for (const spurt of talkSpurts(heard.pcm, 8000, 240)) recognised.push(...(await recognize(spurt, grammar)).map(words))
  t.comment(`heard: ${JSON.stringify(recognised)}`)
  for (const s of expected) t.ok(recognised.includes(words(s)), `the caller heard: "${s}"`)
  for (const s of sentences(NEVER_SAID)) t.notOk(recognised.includes(words(s)), `and not "${s}", which the agent never said`)
})
