/**
 * Barge-in at the packet level, with real espeak-ng audio on both sides:
 * the caller talks over a long reply → agent audio stops within a few frames,
 * the latency is recorded, the reply is aborted and the new question answered;
 * a short burst below the policy minimum pauses and then resumes the reply.
 */
import t from 'tap'
import { createAgent } from '../../agent/index.ts'
import { Playout } from '../../agent/playout.ts'
import { concatPcm, rms, silencePcm, speechPcm } from './helpers/audio.ts'
import { acmeAgent, HOURS_REPLY, LONG_REPLY } from './helpers/agents.ts'
import { TestMediaPort } from './helpers/test-port.ts'

function tone(ms: number, hz = 300, amp = 9000): Int16Array {
  const n = (8000 * ms) / 1000
  const out = new Int16Array(n)
  for (let i = 0; i < n; i++) out[i] = Math.round(amp * Math.sin((2 * Math.PI * hz * i) / 8000))
  return out
}

/** Time of the first inbound frame (from index `from` of scripted speech frames) that is actually loud. */
function firstVoicedAt(port: TestMediaPort, pcm: Int16Array, from: number): number {
  for (let i = 0; i * 160 < pcm.length; i++) {
    if (rms(pcm.subarray(i * 160, i * 160 + 160)) > 300) return port.inboundSpeech[from + i]!
  }
  throw new Error('no voiced frame')
}

/** Last non-null outbound frame at or after `t0` before the first gap. */
function lastAgentFrameAfter(port: TestMediaPort, t0: number): number {
  let i = port.out.findIndex((f) => f.at >= t0 - 25)
  let last = t0
  for (; i < port.out.length && port.out[i]!.samples; i++) last = port.out[i]!.at
  return last
}

t.test('caller talking over a reply stops agent audio within a few frames and is answered', async (t) => {
  const port = new TestMediaPort(8000)
  const agent = createAgent({ port, call: { id: 'barge-1' }, config: acmeAgent({ aiSpeaksFirst: false, bargeIn: { minSpeechMs: 200 } }) })
  t.teardown(() => {
    port.stop()
    void agent.stop()
  })
  port.start()
  await agent.start()
  port.say(speechPcm('tell me about the store'))
  await port.waitFor(() => port.out.some((f) => f.samples), 10000, 'long reply starts')
  await new Promise((r) => setTimeout(r, 1500))
  t.ok(port.out.at(-1)?.samples, 'agent is talking')

  const question = speechPcm('what are your opening hours')
  const from = port.inboundSpeech.length
  port.say(question)
  await port.waitFor(() => agent.transcript.bargeIns.length > 0, 3000, 'barge-in')
  const voicedAt = firstVoicedAt(port, question, from)
  const stoppedAt = lastAgentFrameAfter(port, voicedAt)
  const observed = stoppedAt - voicedAt
  t.ok(observed <= 80, `agent audio stopped ${observed.toFixed(1)} ms after the first voiced caller frame`)
  const rec = agent.transcript.bargeIns[0]!
  t.ok(rec.latencyMs <= 80, `recorded barge-in latency ${rec.latencyMs} ms`)
  t.ok(Math.abs(rec.latencyMs - observed) <= 25, 'recorded latency matches what went out on the wire')
  t.ok(port.flushes >= 1, 'port flushed')

  // While the caller speaks, the agent stays silent.
  const whileSpeaking = port.out.filter((f) => f.at > stoppedAt + 1 && f.at < voicedAt + 1000)
  t.ok(whileSpeaking.every((f) => !f.samples), 'no agent audio while the caller speaks')

  await port.waitFor(() => agent.transcript.entries.some((e) => e.role === 'assistant' && e.text === HOURS_REPLY && e.endMs > 0), 15000, 'answer to the interrupting question')
  await port.waitFor(() => agent.transcript.bargeIns[0]!.stood, 100, 'verdict')
  const entries = agent.transcript.entries
  const long = entries.find((e) => e.role === 'assistant' && LONG_REPLY.startsWith(e.text.slice(0, 20)))
  t.ok(long?.interrupted, 'the long reply is marked interrupted')
  t.ok(long && long.text.length < LONG_REPLY.length, 'only what was played is in the transcript')
  t.ok(entries.some((e) => e.role === 'user' && e.text === 'what are your opening hours'))
  const turns = agent.transcript.timings()
  t.equal(turns[0]?.interrupted, true)
})

t.test('a short burst below minSpeechMs pauses the agent, then it resumes and finishes', async (t) => {
  const port = new TestMediaPort(8000)
  const agent = createAgent({ port, call: { id: 'barge-2' }, config: acmeAgent({ aiSpeaksFirst: false, bargeIn: { minSpeechMs: 400 } }) })
  t.teardown(() => {
    port.stop()
    void agent.stop()
  })
  port.start()
  await agent.start()
  port.say(speechPcm('tell me about the store'))
  await port.waitFor(() => port.out.some((f) => f.samples), 10000, 'long reply starts')
  await new Promise((r) => setTimeout(r, 1000))
  port.say(concatPcm(tone(140), silencePcm(100)))
  await port.waitFor(() => agent.transcript.bargeIns.length > 0, 3000, 'barge-in verdict')
  t.same(agent.transcript.bargeIns.map((b) => b.stood), [false], 'false alarm')
  await port.waitFor(() => agent.transcript.entries.some((e) => e.role === 'assistant'), 20000, 'reply finished')
  const entry = agent.transcript.entries.find((e) => e.role === 'assistant')!
  t.equal(entry.text, LONG_REPLY, 'whole reply spoken')
  t.equal(entry.interrupted, false)
  t.notOk(agent.transcript.entries.some((e) => e.role === 'user' && e.text !== 'tell me about the store'), 'the burst is not a user turn')
})

t.test('minWords: a burst of speech without enough words does not interrupt', async (t) => {
  const port = new TestMediaPort(8000)
  const agent = createAgent({ port, call: { id: 'barge-3' }, config: acmeAgent({ aiSpeaksFirst: false, bargeIn: { minSpeechMs: 100, minWords: 3 } }) })
  t.teardown(() => {
    port.stop()
    void agent.stop()
  })
  port.start()
  await agent.start()
  port.say(speechPcm('tell me about the store'))
  await port.waitFor(() => port.out.some((f) => f.samples), 10000, 'long reply starts')
  await new Promise((r) => setTimeout(r, 1000))
  port.say(tone(400))
  await port.waitFor(() => agent.transcript.bargeIns.length > 0, 6000, 'barge-in verdict')
  t.same(agent.transcript.bargeIns.map((b) => b.stood), [false], 'no words → false alarm, speech resumes')
  await port.waitFor(() => agent.transcript.entries.some((e) => e.role === 'assistant'), 20000, 'reply finished')
  t.equal(agent.transcript.entries.find((e) => e.role === 'assistant')?.interrupted, false)
})

t.test('a non-interruptible greeting plays to the end', async (t) => {
  const port = new TestMediaPort(8000)
  const agent = createAgent({ port, call: { id: 'barge-4' }, config: acmeAgent({ greetingInterruptible: false }) })
  t.teardown(() => {
    port.stop()
    void agent.stop()
  })
  port.start()
  await agent.start()
  await port.waitFor(() => port.out.some((f) => f.samples), 5000, 'greeting')
  port.say(speechPcm('what are your opening hours'))
  await port.waitFor(() => agent.transcript.entries.some((e) => e.role === 'assistant'), 10000, 'greeting done')
  t.equal(agent.transcript.entries[0]?.interrupted, false)
  t.same(agent.transcript.bargeIns, [])
})

t.test('playout: TTS audio at its own rate is resampled on pull, aligned, and playedMs is what went out', async (t) => {
  const playout = new Playout(8000)
  const seg = playout.createSegment('one second of speech')
  // 1 s at espeak-ng's 22050 Hz: quiet, then a 1 kHz burst from exactly 0.5 s, in uneven chunks.
  const src = new Int16Array(22050)
  for (let i = 11025; i < 22050; i++) src[i] = Math.round(8000 * Math.sin((2 * Math.PI * 1000 * i) / 22050))
  for (let o = 0; o < src.length; o += 2999) playout.enqueue(seg, src.slice(o, Math.min(src.length, o + 2999)), 22050)
  playout.complete(seg)
  const frames: Int16Array[] = []
  for (let f = playout.nextFrame(); f; f = playout.nextFrame()) frames.push(f)
  t.equal(frames.length, 50, '1 s in → exactly 50 frames out (tail flushed, lead-in dropped)')
  t.ok(seg.done && !seg.interrupted, 'segment played out')
  t.equal(Math.round(seg.playedMs), 1000, 'playedMs covers the whole segment')
  const out = new Int16Array(8000)
  frames.forEach((f, i) => out.set(f, i * 160))
  const onset = out.findIndex((v) => Math.abs(v) > 2000)
  t.ok(Math.abs(onset - 4000) <= 3, `burst starts at output sample ${onset} (input 0.5 s → 4000)`)
})

t.test('playout: a barge-in after 10 frames leaves playedMs at 200 and never converts the rest', async (t) => {
  const playout = new Playout(8000)
  const seg = playout.createSegment('a long sentence')
  playout.enqueue(seg, new Int16Array(16000 * 3).fill(1000), 16000)
  for (let i = 0; i < 10; i++) t.ok(playout.nextFrame(), `frame ${i}`)
  playout.pause()
  t.equal(playout.nextFrame(), null, 'paused: nothing goes out')
  const dropped = playout.clear()
  t.same(dropped, [seg])
  t.ok(seg.interrupted && seg.done)
  t.equal(seg.playedMs, 200)
  t.equal(playout.hasAudio, false)
  // The filter went back to the pool: a second segment at the same rate reuses it cleanly.
  const next = playout.createSegment('next')
  playout.enqueue(next, new Int16Array(1600).fill(-2000), 16000)
  playout.complete(next)
  const frames: Int16Array[] = []
  for (let f = playout.nextFrame(); f; f = playout.nextFrame()) frames.push(f)
  t.equal(frames.length, 5, '100 ms at 16 kHz → 5 frames at 8 kHz')
  t.ok(Math.abs(frames[0]![80]! + 2000) < 50, `no state leaked from the dropped segment (${frames[0]![80]})`)
  t.equal(Math.round(next.playedMs), 100)
})
