/**
 * Fallback chains: when the primary vendor errors or stalls, the next adapter
 * takes over without dropping the turn.
 */
import t from 'tap'
import { FallbackStt } from '../../agent/adapters/stt/fallback.ts'
import { FallbackLlm } from '../../agent/adapters/llm/fallback.ts'
import { FallbackTts } from '../../agent/adapters/tts/fallback.ts'
import { ScriptedLlm } from '../../agent/adapters/llm/scripted.ts'
import { OpenAiLlm } from '../../agent/adapters/llm/openai.ts'
import { DeepgramStt } from '../../agent/adapters/stt/deepgram.ts'
import { ElevenLabsTts } from '../../agent/adapters/tts/elevenlabs.ts'
import { EspeakTts } from '../../agent/adapters/tts/espeak.ts'
import type { SttEvent } from '../../agent/adapters/stt/contract.ts'
import type { LlmChunk } from '../../agent/adapters/llm/contract.ts'
import { createAgent } from '../../agent/index.ts'
import { concatPcm, silencePcm, speechPcm, toFrames } from './helpers/audio.ts'
import { TestMediaPort } from './helpers/test-port.ts'
import { startDeepgramFake } from './fakes/deepgram-server.ts'
import { startElevenLabsFake } from './fakes/elevenlabs-server.ts'
import { startOpenAiFake } from './fakes/openai-server.ts'

const scripted = new ScriptedLlm({ rules: [{ phrases: ['opening hours'], reply: 'We are open every day until six.' }], fallback: 'Backup here.' })
const text = (cs: LlmChunk[]): string => cs.map((c) => (c.type === 'text' ? c.text : '')).join('')
async function drain(it: AsyncIterable<LlmChunk>): Promise<LlmChunk[]> {
  const out: LlmChunk[] = []
  for await (const c of it) out.push(c)
  return out
}

t.test('LLM: error and stall both hand over to the next adapter; the failed one sits out', async (t) => {
  const fake = await startOpenAiFake()
  t.teardown(() => fake.close())
  const switches: string[] = []
  const chain = new FallbackLlm([new OpenAiLlm({ model: 'error-500', baseURL: fake.baseURL }), scripted], { onSwitch: (k, from, to, why) => switches.push(`${k}:${from}->${to}:${why}`) })
  t.equal(text(await drain(chain.chat({ messages: [{ role: 'user', content: 'opening hours?' }], tools: [], signal: new AbortController().signal }))), 'We are open every day until six.')
  t.match(switches, [/llm:openai->scripted:openai: 500/])
  const before = fake.requests.length
  await drain(chain.chat({ messages: [{ role: 'user', content: 'hi' }], tools: [], signal: new AbortController().signal }))
  t.equal(fake.requests.length, before, 'primary skipped during cool-down')

  const stall = new FallbackLlm([new OpenAiLlm({ model: 'stall', baseURL: fake.baseURL }), scripted], { firstChunkTimeoutMs: 300 })
  const started = performance.now()
  t.equal(text(await drain(stall.chat({ messages: [{ role: 'user', content: 'hi' }], tools: [], signal: new AbortController().signal }))), 'Backup here.')
  const took = performance.now() - started
  t.ok(took >= 290 && took < 1500, `switched after the ${took.toFixed(0)} ms deadline`)
})

t.test('TTS: a failing vendor falls back to espeak-ng', async (t) => {
  const fake = await startElevenLabsFake()
  t.teardown(() => fake.close())
  const chain = new FallbackTts([new ElevenLabsTts({ baseUrl: fake.baseUrl, apiKey: 'wrong' }), new EspeakTts()])
  const s = chain.synthesize({ text: 'Hello there.', signal: new AbortController().signal })
  let rate = 0
  let n = 0
  for await (const c of s) {
    rate = c.sampleRate
    n += c.samples.length
  }
  t.equal(rate, 22050, 'espeak-ng audio')
  t.ok(n > 10000)
  t.ok(s.ttfbMs !== undefined)
})

t.test('STT: a dropped Deepgram stream is replaced mid-call and later utterances still arrive', async (t) => {
  const fake = await startDeepgramFake(['first utterance', 'second utterance'])
  t.teardown(() => fake.close())
  const chain = new FallbackStt([new DeepgramStt({ baseUrl: fake.url, apiKey: 'drop-after-first', endpointingMs: 300 }), new DeepgramStt({ baseUrl: fake.url, apiKey: 'good-key', endpointingMs: 300 })])
  const s = await chain.open({ sampleRate: 8000 })
  const events: SttEvent[] = []
  const reader = (async () => {
    for await (const e of s.events()) events.push(e)
  })()
  const send = async (pcm: Int16Array): Promise<void> => {
    for (const f of toFrames(pcm)) {
      s.push(f)
      await new Promise((r) => setImmediate(r))
    }
  }
  await send(concatPcm(speechPcm('hello'), silencePcm(500)))
  await new Promise((r) => setTimeout(r, 200))
  await send(concatPcm(speechPcm('hello again'), silencePcm(500)))
  await new Promise((r) => setTimeout(r, 300))
  await s.close()
  await reader
  t.same(events.filter((e) => e.type === 'final').map((e) => (e.type === 'final' ? e.text : '')), ['first utterance', 'second utterance'])
  t.equal(fake.connections.length, 2, 'second vendor connection opened')
  t.notOk(events.some((e) => e.type === 'error'), 'the drop is absorbed by the chain')
})

t.test('in a call: primary LLM errors, the turn is still answered', async (t) => {
  const fake = await startOpenAiFake()
  t.teardown(() => fake.close())
  const port = new TestMediaPort(8000)
  const agent = createAgent({
    port,
    call: { id: 'fb-1' },
    config: {
      aiSpeaksFirst: false,
      llm: [
        { provider: 'openai', options: { model: 'error-500', baseURL: fake.baseURL } },
        { provider: 'scripted', options: { rules: [{ phrases: ['what are your opening hours'], reply: 'We are open every day until six.' }] } },
      ],
    },
  })
  t.teardown(() => {
    port.stop()
    void agent.stop()
  })
  port.start()
  await agent.start()
  port.say(speechPcm('what are your opening hours'))
  await port.waitFor(() => agent.transcript.entries.some((e) => e.role === 'assistant'), 15000, 'answer')
  t.equal(agent.transcript.entries.find((e) => e.role === 'assistant')?.text, 'We are open every day until six.')
  t.ok(fake.requests.some((r) => r.path === '/v1/chat/completions'), 'primary was tried first')
})
