/**
 * Answering-machine behaviours on outbound calls, with real audio in real
 * time: an espeak-ng voicemail greeting followed by a 1 kHz beep, versus a
 * short human "Hello?". The agent's own audio is checked by recognising it.
 */
import t from 'tap'
import { createAgent } from '../../agent/index.ts'
import { BeepDetector } from '../../agent/amd.ts'
import { concatPcm, silencePcm, speechPcm, toFrames } from './helpers/audio.ts'
import { acmeAgent, BYE_REPLY, GREETING } from './helpers/agents.ts'
import { recognize } from './helpers/recognize.ts'
import { TestMediaPort } from './helpers/test-port.ts'

const words = (s: string): string => s.toLowerCase().replace(/[^a-z ]/g, ' ').replace(/\s+/g, ' ').trim()

function tone(ms: number, hz: number, amp = 8000): Int16Array {
  const n = (8000 * ms) / 1000
  const out = new Int16Array(n)
  for (let i = 0; i < n; i++) out[i] = Math.round(amp * Math.sin((2 * Math.PI * hz * i) / 8000))
  return out
}

const MACHINE_GREETING = 'Hi, you have reached the voicemail of John Smith. I am not available right now. Please leave a message after the tone.'
const machine = (): { pcm: Int16Array; beepEndsAtSample: number } => {
  const greeting = concatPcm(silencePcm(300), speechPcm(MACHINE_GREETING), silencePcm(500))
  const beep = tone(600, 1000)
  return { pcm: concatPcm(greeting, beep, silencePcm(12000)), beepEndsAtSample: greeting.length + beep.length }
}

t.test('beep detector: a steady tone is a beep, speech is not', async (t) => {
  const run = (pcm: Int16Array): string[] => {
    const d = new BeepDetector(8000)
    return toFrames(pcm).map((f) => d.process(f)).filter((x): x is 'start' | 'end' => x !== undefined)
  }
  t.same(run(concatPcm(silencePcm(200), tone(500, 1000), silencePcm(200))), ['start', 'end'], '1 kHz beep')
  t.same(run(concatPcm(tone(400, 440), silencePcm(100))), ['start', 'end'], '440 Hz beep')
  t.same(run(speechPcm(MACHINE_GREETING)), [], 'a spoken greeting has no beep in it')
  t.same(run(concatPcm(tone(100, 1000), silencePcm(200))), [], 'a 100 ms blip is too short')
})

t.test('outbound + machine + hangup: the agent ends the call without a word', async (t) => {
  const port = new TestMediaPort(8000)
  const agent = createAgent({ port, call: { id: 'amd-1', direction: 'outbound' }, config: acmeAgent({ amd: { onMachine: 'hangup' } }) })
  t.teardown(() => {
    port.stop()
    void agent.stop()
  })
  port.start()
  await agent.start()
  port.say(machine().pcm)
  const result = await agent.done
  t.equal(result.reason, 'machine-detected')
  t.same(port.hangups, ['machine-detected'], 'hung up through the port')
  t.match(result.amd, { verdict: 'machine', cause: /LONGGREETING|MAXWORDS/ })
  t.ok(result.amd!.decidedAfterMs < 4000, `decided after ${result.amd!.decidedAfterMs} ms of audio`)
  t.notOk(port.out.some((f) => f.samples), 'not a single agent frame went out')
  t.match(result.transcript.entries, [{ role: 'system', source: 'amd', text: /^AMD: machine/ }])
})

t.test('outbound + machine + leave_message: waits for the beep, then speaks the message and hangs up', async (t) => {
  const port = new TestMediaPort(8000)
  const agent = createAgent({ port, call: { id: 'amd-2', direction: 'outbound' }, config: acmeAgent({ amd: { onMachine: 'leave_message', message: BYE_REPLY } }) })
  t.teardown(() => {
    port.stop()
    void agent.stop()
  })
  port.start()
  await agent.start()
  const m = machine()
  const from = port.inboundSpeech.length
  port.say(m.pcm)
  const result = await agent.done
  t.equal(result.reason, 'voicemail-left')
  t.same(port.hangups, ['voicemail-left'])
  const beepEndAt = port.inboundSpeech[from + Math.ceil(m.beepEndsAtSample / 160) - 1]!
  const firstOut = port.out.find((f) => f.samples)
  t.ok(firstOut, 'the agent spoke')
  const after = firstOut!.at - beepEndAt
  t.ok(after >= 0, `no agent audio before the beep ended (first frame ${after.toFixed(0)} ms after it)`)
  const heard = await recognize(port.agentAudio(), [BYE_REPLY])
  t.equal(words(heard.join(' ')), words(BYE_REPLY), 'the recorded message is the configured one')
  // The beep, not the fallback (2.5 s of silence after the machine's greeting), was the cue.
  t.match(result.transcript.entries, [{ role: 'system', text: /^AMD: machine/ }, { role: 'system', text: 'AMD: message cue beep' }, { role: 'assistant', text: BYE_REPLY, interrupted: false }])
  t.equal(result.transcript.turns.at(-1)?.trigger, 'voicemail')
})

t.test('outbound + machine without a beep + leave_message: speaks once the machine\'s greeting has been over for a while', async (t) => {
  const port = new TestMediaPort(8000)
  const agent = createAgent({ port, call: { id: 'amd-2b', direction: 'outbound' }, config: acmeAgent({ amd: { onMachine: 'leave_message', message: BYE_REPLY, endOfGreetingSilenceMs: 1500 } }) })
  t.teardown(() => {
    port.stop()
    void agent.stop()
  })
  port.start()
  await agent.start()
  const greeting = concatPcm(silencePcm(300), speechPcm(MACHINE_GREETING))
  const from = port.inboundSpeech.length
  port.say(concatPcm(greeting, silencePcm(10000)))
  const result = await agent.done
  t.equal(result.reason, 'voicemail-left')
  t.match(result.transcript.entries, [{ text: /^AMD: machine/ }, { text: 'AMD: message cue silence' }, { role: 'assistant', text: BYE_REPLY }])
  const greetingEndAt = port.inboundSpeech[from + Math.ceil(greeting.length / 160) - 1]!
  const firstOut = port.out.find((f) => f.samples)!
  // 1.5 s after the last voiced frame; espeak's own trailing quiet is part of it.
  t.ok(firstOut.at - greetingEndAt >= 1000, `waited ${(firstOut.at - greetingEndAt).toFixed(0)} ms after the machine stopped talking`)
})

t.test('outbound + a person says "Hello?": the agent greets and the call goes on', async (t) => {
  const port = new TestMediaPort(8000)
  const agent = createAgent({ port, call: { id: 'amd-3', direction: 'outbound' }, config: acmeAgent({ amd: { onMachine: 'hangup' } }) })
  t.teardown(() => {
    port.stop()
    void agent.stop()
  })
  port.start()
  await agent.start()
  port.say(concatPcm(silencePcm(400), speechPcm('Hello?')))
  await port.waitFor(() => agent.transcript.entries.some((e) => e.role === 'assistant'), 8000, 'greeting')
  t.match(agent.transcript.entries[0], { role: 'system', text: /^AMD: human \(HUMAN\)/ })
  t.same(port.hangups, [], 'no hangup')
  const heard = await recognize(port.agentAudio(), [GREETING])
  t.equal(words(heard.join(' ')), words(GREETING), 'the person hears the greeting')
  const result = await agent.stop()
  t.match(result.amd, { verdict: 'human' })
})

t.test('inbound calls are never screened, even with an AMD policy', async (t) => {
  const port = new TestMediaPort(8000)
  const agent = createAgent({ port, call: { id: 'amd-4', direction: 'inbound' }, config: acmeAgent({ amd: { onMachine: 'hangup' } }) })
  t.teardown(() => {
    port.stop()
    void agent.stop()
  })
  port.start()
  await agent.start()
  t.equal(agent.transcript.turns[0]?.trigger, 'greeting', 'the greeting starts at once, no screening')
  port.say(machine().pcm)
  await new Promise((r) => setTimeout(r, 3000))
  t.same(port.hangups, [], 'a long talker on an inbound call is not hung up on')
  const result = await agent.stop()
  t.equal(result.amd, undefined)
  t.notOk(result.transcript.entries.some((e) => e.source === 'amd'))
})
