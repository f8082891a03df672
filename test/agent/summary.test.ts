/**
 * The optional end-of-call summary by the agent's own LLM: the scripted model
 * and the OpenAI-compatible adapter (through the lazily loaded registry entry)
 * against the local protocol server. Real-time frames, espeak-ng caller audio;
 * STT/TTS are the zero-latency stubs because the summary is what is under test.
 */
import t from 'tap'
import { performance } from 'node:perf_hooks'
import { createAgent } from '../../agent/index.ts'
import type { AgentConfigInput } from '../../agent/config.ts'
import { speechPcm } from './helpers/audio.ts'
import { TestMediaPort } from './helpers/test-port.ts'
import { startOpenAiFake } from './fakes/openai-server.ts'

/** Records when the agent hung up, to check the summary does not hold the caller. */
class TimedPort extends TestMediaPort {
  hungUpAt: number | undefined
  override async hangup(reason: string): Promise<void> {
    this.hungUpAt = performance.now()
    await super.hangup(reason)
  }
}

const stubs: AgentConfigInput = { stt: { provider: 'stub', options: { text: 'goodbye' } }, tts: { provider: 'stub', options: { msPerChar: 20 } } }

t.test('scripted LLM: summary of what was said, written after the hangup', async (t) => {
  const port = new TimedPort(8000)
  const agent = createAgent({
    port,
    call: { id: 'sum-1' },
    config: {
      ...stubs,
      greeting: 'Hello.',
      summary: true,
      // The delay applies to every request, the summary included: it must come after the hangup.
      llm: { provider: 'scripted', options: { rules: [{ phrases: ['goodbye'], reply: 'Bye now.', endCall: true }], firstTokenDelayMs: 300 } },
    },
  })
  t.teardown(() => port.stop())
  let endedAt = 0
  agent.on('ended', () => (endedAt = performance.now()))
  port.start()
  await agent.start()
  await port.waitFor(() => port.out.some((f) => f.samples) && port.out.slice(-5).every((f) => !f.samples), 5000, 'greeting played')
  port.say(speechPcm('goodbye'))
  const result = await agent.done
  t.equal(result.reason, 'end_call')
  t.equal(result.summary, "The caller said: goodbye. The agent's last words: Bye now.", 'summary built from the transcript')
  t.ok(port.hungUpAt !== undefined && endedAt - port.hungUpAt >= 250, `hung up ${(endedAt - (port.hungUpAt ?? 0)).toFixed(0)} ms before the summary was ready`)
})

t.test('no summary unless the agent asks for one', async (t) => {
  const port = new TestMediaPort(8000)
  const agent = createAgent({ port, call: { id: 'sum-2' }, config: { ...stubs, greeting: 'Hello.', llm: { provider: 'scripted', options: { rules: [] } } } })
  t.teardown(() => port.stop())
  port.start()
  await agent.start()
  await port.waitFor(() => port.out.some((f) => f.samples), 5000, 'greeting')
  const result = await agent.stop()
  t.equal(result.summary, undefined)
  t.ok(result.transcript.entries.length >= 1, 'there was something to summarize')
})

t.test('OpenAI-compatible adapter: the summary request goes to the model with the prompt, the transcript and no tools', async (t) => {
  const fake = await startOpenAiFake()
  t.teardown(() => fake.close())
  const port = new TestMediaPort(8000)
  const agent = createAgent({
    port,
    call: { id: 'sum-3' },
    config: {
      ...stubs,
      stt: { provider: 'stub', options: { text: 'hello there' } },
      aiSpeaksFirst: false,
      summary: true,
      summaryPrompt: 'Summarize the call for the CRM.',
      llm: { provider: 'openai', options: { baseURL: fake.baseURL, apiKey: 'sk-test', model: 'gpt-test' } },
    },
  })
  t.teardown(() => port.stop())
  port.start()
  await agent.start()
  port.say(speechPcm('hello there'))
  await port.waitFor(() => agent.transcript.entries.some((e) => e.role === 'assistant'), 5000, 'the model answered')
  const reply = agent.transcript.entries.find((e) => e.role === 'assistant')!
  t.equal(reply.text, 'You said: hello there. Anything else?', 'conversation went through the adapter')
  const result = await agent.stop()
  const req = fake.requests.at(-1)!
  t.equal(req.path, '/v1/chat/completions')
  t.match(req.body.messages, [{ role: 'system', content: 'Summarize the call for the CRM.' }, { role: 'user', content: /^Caller: hello there\nAgent: You said: hello there\. Anything else\?/ }])
  t.notOk('tools' in req.body, 'no tools offered for a summary')
  // The fake echoes the last user message: the summary is what the model streamed back.
  t.equal(result.summary, `You said: Caller: hello there\nAgent: You said: hello there. Anything else?. Anything else?`)
})

t.test('OpenAI-compatible adapter: a failing summary leaves the call result intact', async (t) => {
  const fake = await startOpenAiFake()
  t.teardown(() => fake.close())
  const port = new TestMediaPort(8000)
  const agent = createAgent({
    port,
    call: { id: 'sum-4' },
    config: { ...stubs, greeting: 'Hello there.', summary: true, llm: { provider: 'openai', options: { baseURL: fake.baseURL, apiKey: 'sk-test', model: 'error-500' } } },
  })
  t.teardown(() => port.stop())
  port.start()
  await agent.start()
  await port.waitFor(() => port.out.some((f) => f.samples) && port.out.slice(-5).every((f) => !f.samples), 5000, 'greeting played')
  const result = await agent.stop()
  t.equal(result.reason, 'stopped')
  t.equal(result.summary, undefined, 'no summary, no crash')
  t.match(result.transcript.entries, [{ role: 'assistant', text: 'Hello there.' }])
  t.match(fake.requests.at(-1)!.body.messages, [{ role: 'system', content: 'Summarize this phone call in two sentences.' }], 'the summary was attempted with the default prompt')
})
