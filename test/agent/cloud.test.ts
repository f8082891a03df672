/**
 * Cloud adapters against local servers that speak each vendor's documented
 * wire protocol (test/agent/fakes): happy path, error shapes, mid-stream
 * disconnect, abort. No network beyond loopback.
 */
import t from 'tap'
import { OpenAiLlm } from '../../agent/adapters/llm/openai.ts'
import { DeepgramStt } from '../../agent/adapters/stt/deepgram.ts'
import { ElevenLabsTts } from '../../agent/adapters/tts/elevenlabs.ts'
import { OpenAiTts } from '../../agent/adapters/tts/openai.ts'
import { AdapterError } from '../../agent/adapters/adapter-error.ts'
import type { SttEvent } from '../../agent/adapters/stt/contract.ts'
import type { LlmChunk } from '../../agent/adapters/llm/contract.ts'
import type { PcmChunk } from '../../agent/adapters/tts/contract.ts'
import { ToolBox } from '../../agent/tools.ts'
import { concatPcm, silencePcm, speechPcm, toFrames } from './helpers/audio.ts'
import { startDeepgramFake } from './fakes/deepgram-server.ts'
import { startElevenLabsFake } from './fakes/elevenlabs-server.ts'
import { startOpenAiFake } from './fakes/openai-server.ts'

const tools = [...new ToolBox().definitions(), { name: 'lookupOrder', description: 'Look up an order', parameters: { type: 'object', properties: { orderNumber: { type: 'string' } } } }]

async function drain(it: AsyncIterable<LlmChunk>): Promise<LlmChunk[]> {
  const out: LlmChunk[] = []
  for await (const c of it) out.push(c)
  return out
}
async function pcm(it: AsyncIterable<PcmChunk>): Promise<{ samples: number; rate: number }> {
  let samples = 0
  let rate = 0
  for await (const c of it) {
    samples += c.samples.length
    rate = c.sampleRate
  }
  return { samples, rate }
}

t.test('OpenAI-compatible chat: streamed text, streamed tool calls, errors, disconnect, abort', async (t) => {
  const fake = await startOpenAiFake()
  t.teardown(() => fake.close())
  const llm = (model: string): OpenAiLlm => new OpenAiLlm({ model, baseURL: fake.baseURL, apiKey: 'sk-test' })
  const signal = (): AbortSignal => new AbortController().signal

  const text = await drain(llm('gpt-test').chat({ messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello there' }], tools, signal: signal() }))
  t.equal(text.filter((c) => c.type === 'text').map((c) => (c.type === 'text' ? c.text : '')).join(''), 'You said: hello there. Anything else?')
  t.ok(text.filter((c) => c.type === 'text').length > 3, 'tokens streamed')
  t.same(text.at(-1), { type: 'done', finishReason: 'stop' })
  const req = fake.requests.at(-1)!
  t.equal(req.auth, 'Bearer sk-test')
  t.equal(req.body.stream, true)
  t.match(req.body.tools, [{ type: 'function', function: { name: 'end_call' } }])

  const call = await drain(llm('gpt-test').chat({ messages: [{ role: 'user', content: 'where is my order' }], tools, signal: signal() }))
  t.same(call.filter((c) => c.type === 'tool_call'), [{ type: 'tool_call', call: { id: 'call_abc123', name: 'lookupOrder', arguments: '{"orderNumber": "A1"}' } }], 'fragments assembled')
  t.same(call.at(-1), { type: 'done', finishReason: 'tool_calls' })

  // Tool result round trip: history is sent in the documented message shapes.
  const after = await drain(
    llm('gpt-test').chat({
      messages: [
        { role: 'user', content: 'where is my order' },
        { role: 'assistant', content: '', toolCalls: [{ id: 'call_abc123', name: 'lookupOrder', arguments: '{"orderNumber":"A1"}' }] },
        { role: 'tool', toolCallId: 'call_abc123', name: 'lookupOrder', content: 'shipped' },
      ],
      tools,
      signal: signal(),
    }),
  )
  t.match(after.map((c) => (c.type === 'text' ? c.text : '')).join(''), 'The tool said: shipped.')
  t.match(fake.requests.at(-1)!.body.messages, [{ role: 'user' }, { role: 'assistant', content: null, tool_calls: [{ id: 'call_abc123', type: 'function' }] }, { role: 'tool', tool_call_id: 'call_abc123', content: 'shipped' }])

  for (const status of [401, 429, 500]) {
    const err = await drain(llm(`error-${status}`).chat({ messages: [{ role: 'user', content: 'x' }], tools, signal: signal() })).catch((e: unknown) => e)
    t.ok(err instanceof AdapterError, `${status} → AdapterError`)
    t.equal((err as AdapterError).status, status)
    t.equal((err as AdapterError).retryable, status !== 401, 'only 401 is not retryable')
  }
  await t.rejects(drain(llm('disconnect').chat({ messages: [{ role: 'user', content: 'x' }], tools, signal: signal() })), 'mid-stream disconnect is an error')

  const ac = new AbortController()
  const started = performance.now()
  setTimeout(() => ac.abort(), 100)
  await t.rejects(drain(llm('stall').chat({ messages: [{ role: 'user', content: 'x' }], tools, signal: ac.signal })))
  t.ok(performance.now() - started < 1000, 'abort cancels a stalled request')
})

t.test('OpenAI TTS: raw 24 kHz PCM streamed, TTFB, errors, disconnect', async (t) => {
  const fake = await startOpenAiFake()
  t.teardown(() => fake.close())
  const tts = new OpenAiTts({ baseURL: fake.baseURL, apiKey: 'sk-test', model: 'gpt-4o-mini-tts', voice: 'alloy' })
  const s = tts.synthesize({ text: 'Hello there, how are you?', signal: new AbortController().signal })
  const r = await pcm(s)
  t.equal(r.rate, 24000)
  t.ok(r.samples > 24000, `${r.samples} samples`)
  t.ok((s.ttfbMs ?? -1) >= 0)
  t.match(fake.requests.at(-1)?.body, { model: 'gpt-4o-mini-tts', voice: 'alloy', response_format: 'pcm', input: 'Hello there, how are you?' })
  const bad = new OpenAiTts({ baseURL: fake.baseURL, model: 'error-401' })
  t.match(await pcm(bad.synthesize({ text: 'x', signal: new AbortController().signal })).catch((e: unknown) => e), { status: 401 })
  const drop = new OpenAiTts({ baseURL: fake.baseURL, model: 'disconnect' })
  await t.rejects(pcm(drop.synthesize({ text: 'a long enough sentence to need several chunks', signal: new AbortController().signal })))
})

t.test('ElevenLabs streaming TTS via the SDK: pcm_16000, odd chunking, 401/422, disconnect', async (t) => {
  const fake = await startElevenLabsFake()
  t.teardown(() => fake.close())
  const tts = new ElevenLabsTts({ baseUrl: fake.baseUrl, apiKey: 'el-key', voiceId: 'voice123', sampleRate: 16000 })
  const s = tts.synthesize({ text: 'Hello from eleven labs.', signal: new AbortController().signal })
  const r = await pcm(s)
  t.equal(r.rate, 16000)
  t.equal(r.samples, 'Hello from eleven labs.'.length * 800, 'every sample arrives despite odd-sized chunks')
  t.equal(fake.requests.at(-1)?.voice, 'voice123')
  t.equal(fake.requests.at(-1)?.query.get('output_format'), 'pcm_16000')
  t.match(fake.requests.at(-1)?.body, { text: 'Hello from eleven labs.', model_id: 'eleven_flash_v2_5' })
  t.match(await pcm(new ElevenLabsTts({ baseUrl: fake.baseUrl, apiKey: 'wrong' }).synthesize({ text: 'x', signal: new AbortController().signal })).catch((e: unknown) => e), { status: 401, message: /invalid_api_key/ })
  t.match(await pcm(tts.synthesize({ text: '', signal: new AbortController().signal })).catch((e: unknown) => e), { status: 422 })
  await t.rejects(pcm(new ElevenLabsTts({ baseUrl: fake.baseUrl, apiKey: 'el-key', voiceId: 'disconnect' }).synthesize({ text: 'a long enough sentence for chunks', signal: new AbortController().signal })))
})

t.test('Deepgram live STT: interim + final results, Finalize, handshake 401, NET-0001 close, mid-stream drop', async (t) => {
  const fake = await startDeepgramFake(['what are your opening hours', 'goodbye'])
  t.teardown(() => fake.close())
  const stt = new DeepgramStt({ baseUrl: fake.url, apiKey: 'good-key', endpointingMs: 300 })
  const s = await stt.open({ sampleRate: 8000, phrases: ['opening hours'] })
  const events: SttEvent[] = []
  const reader = (async () => {
    for await (const e of s.events()) events.push(e)
  })()
  for (const f of toFrames(concatPcm(silencePcm(200), speechPcm('what are your opening hours'), silencePcm(500)))) s.push(f)
  // Second utterance is cut short by Finalize (no trailing silence).
  for (const f of toFrames(speechPcm('goodbye'))) s.push(f)
  s.flush()
  await new Promise((r) => setTimeout(r, 300))
  await s.close()
  await reader
  const q = fake.connections[0]!
  t.equal(q.get('encoding'), 'linear16')
  t.equal(q.get('sample_rate'), '8000')
  t.same(q.getAll('keyterm'), ['opening hours'])
  t.ok(events.some((e) => e.type === 'partial'), 'interim result surfaced as partial')
  t.same(events.filter((e) => e.type === 'final').map((e) => (e.type === 'final' ? e.text : '')), ['what are your opening hours', 'goodbye'])
  t.ok(events.filter((e) => e.type === 'end_of_utterance').length >= 2)
  t.match(fake.controlMessages, ['Finalize', 'CloseStream'])

  t.match(await new DeepgramStt({ baseUrl: fake.url, apiKey: 'bad' }).open({ sampleRate: 8000 }).catch((e: unknown) => e), { status: 401, message: /INVALID_AUTH/ })

  for (const key of ['net-error', 'drop-after-first']) {
    const s2 = await new DeepgramStt({ baseUrl: fake.url, apiKey: key, endpointingMs: 300 }).open({ sampleRate: 8000 })
    const ev: SttEvent[] = []
    const rd = (async () => {
      for await (const e of s2.events()) ev.push(e)
    })()
    for (const f of toFrames(concatPcm(speechPcm('hello'), silencePcm(600)))) s2.push(f)
    await rd
    const err = ev.find((e) => e.type === 'error')
    t.ok(err, `${key}: error event`)
    if (key === 'net-error') t.match(err, { error: { status: 1011, message: /NET-0001/ } })
    await s2.close()
  }
})
