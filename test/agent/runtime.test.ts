/**
 * Full conversations through the runtime with the real offline adapters
 * (espeak-ng, pocketsphinx, scripted) and real-time 20 ms frames.
 */
import t from 'tap'
import { createAgent } from '../../agent/index.ts'
import { speechPcm } from './helpers/audio.ts'
import { acmeAgent, BYE_REPLY, GREETING, HOURS_REPLY } from './helpers/agents.ts'
import { recognize } from './helpers/recognize.ts'
import { TestMediaPort } from './helpers/test-port.ts'

const words = (s: string): string => s.toLowerCase().replace(/[^a-z ]/g, ' ').replace(/\s+/g, ' ').trim()

async function quiet(port: TestMediaPort, frames = 25, timeoutMs = 15000): Promise<void> {
  await port.waitFor(() => port.out.length > frames && port.out.slice(-frames).every((f) => !f.samples), timeoutMs, 'agent to go quiet')
}

t.test('greets, answers a question, says goodbye and hangs up; the caller hears the words', async (t) => {
  const port = new TestMediaPort(8000)
  const agent = createAgent({ port, call: { id: 'conv-1' }, config: acmeAgent() })
  t.teardown(() => {
    port.stop()
    void agent.stop()
  })
  port.start()
  await agent.start()

  await port.waitFor(() => port.out.some((f) => f.samples), 5000, 'greeting audio')
  await quiet(port)
  const greetingAudio = port.agentAudio()
  t.equal(words((await recognize(greetingAudio, [GREETING])).join(' ')), words(GREETING), 'caller side recognizes the greeting')
  // Negative control: the same check must fail for words that were not said.
  t.not(words((await recognize(greetingAudio, [HOURS_REPLY])).join(' ')), words(HOURS_REPLY), 'and does not hear the answer in it')

  const mark = port.out.length
  port.say(speechPcm('what are your opening hours'))
  await port.waitFor(() => port.out.slice(mark).some((f) => f.samples), 10000, 'reply audio')
  await quiet(port)
  const reply = await recognize(port.agentAudio(mark), [HOURS_REPLY])
  t.equal(words(reply.join(' ')), words(HOURS_REPLY), 'caller side recognizes the answer')

  port.say(speechPcm('goodbye'))
  const result = await agent.done
  const bye = await recognize(port.agentAudio(mark + 1), [BYE_REPLY])
  t.match(words(bye.join(' ')), words(BYE_REPLY), 'goodbye is heard before the hangup')
  t.equal(result.reason, 'end_call')
  t.same(port.hangups, ['end_call'], 'agent hung up through the port')

  const entries = result.transcript.entries
  t.same(
    entries.filter((e) => e.role !== 'tool').map((e) => [e.role, e.text, e.interrupted]),
    [
      ['assistant', GREETING, false],
      ['user', 'what are your opening hours', false],
      ['assistant', HOURS_REPLY, false],
      ['user', 'goodbye', false],
      ['assistant', BYE_REPLY, false],
    ],
  )
  t.match(entries.find((e) => e.role === 'tool'), { tool: { name: 'end_call', ok: true } })
  for (const e of entries) t.ok(e.endMs >= e.startMs, `entry times ordered (${e.role})`)

  const turns = result.transcript.turns.filter((x) => x.trigger === 'speech')
  t.equal(turns.length, 2)
  for (const turn of turns) {
    const m = turn.marks
    t.ok(m.endOfSpeech! <= m.finalTranscript! && m.finalTranscript! <= m.firstLlmToken! && m.firstLlmToken! <= m.firstTtsAudio! && m.firstTtsAudio! <= m.firstReplyFrame!, `waterfall ordered: ${JSON.stringify(m)}`)
    t.ok(turn.totalMs! > 0 && turn.totalMs! < 3000, `turn latency ${turn.totalMs} ms`)
  }
})

// Was skipped as "no STT final under tap": the caller's first words came after
// seconds of line silence, and pocketsphinx had re-estimated its cepstral mean
// on the band-fill noise alone, so the grammar missed them (flaky: ~1 run in 3).
// Fixed by gating the decoder to talk spurts (agent/adapters/stt/pocketsphinx.ts).
t.test('aiSpeaksFirst=false waits for the caller; DTMF goes to the LLM; transfer uses the named target', async (t) => {
  const port = new TestMediaPort(8000)
  const agent = createAgent({ port, call: { id: 'conv-2' }, config: acmeAgent({ aiSpeaksFirst: false }) })
  t.teardown(() => {
    port.stop()
    void agent.stop()
  })
  port.start()
  await agent.start()
  // Long enough that a greeting would have started.
  await new Promise((r) => setTimeout(r, 2500))
  t.notOk(port.out.some((f) => f.samples), 'no greeting')

  port.pressDtmf('1')
  await port.waitFor(() => port.out.some((f) => f.samples), 5000, 'dtmf reply')
  await quiet(port)
  t.match(agent.transcript.entries.map((e) => e.text), ['DTMF: 1', 'You pressed one.'])

  port.say(speechPcm('talk to a human'))
  agent.on('stt_final', (f) => t.comment(`stt final: ${JSON.stringify(f)}`))
  agent.on('transcript', (e) => t.comment(`transcript: ${JSON.stringify(e)}`))
  const result = await agent.done
  t.equal(result.reason, 'transfer')
  t.same(port.transfers, ['sip:sales@example.com'])
  t.equal(result.transferTarget, 'sip:sales@example.com')
  t.same(port.hangups, [], 'transfer does not hang up: the app owns the legs')
})

t.test('max silence: prompts once, then hangs up', async (t) => {
  const port = new TestMediaPort(8000)
  const agent = createAgent({ port, call: { id: 'conv-3' }, config: acmeAgent({ aiSpeaksFirst: false, maxSilenceSeconds: 1, silencePrompt: 'Are you still there?' }) })
  t.teardown(() => port.stop())
  port.start()
  await agent.start()
  const result = await agent.done
  t.equal(result.reason, 'max-silence')
  t.same(port.hangups, ['max-silence'])
  t.same(result.transcript.entries.map((e) => e.text), ['Are you still there?'])
})

t.test('remote hangup ends the agent without a second hangup', async (t) => {
  const port = new TestMediaPort(8000)
  const agent = createAgent({ port, call: { id: 'conv-4' }, config: acmeAgent() })
  port.start()
  await agent.start()
  await port.waitFor(() => port.out.some((f) => f.samples), 5000, 'greeting audio')
  port.remoteHangup()
  const result = await agent.done
  t.equal(result.reason, 'remote-hangup')
  t.same(port.hangups, [])
  t.equal(result.transcript.entries[0]?.interrupted, true, 'greeting cut off by the hangup is marked interrupted')
})
