/**
 * Table-driven, part 2 (turn-taking): barge-in and VAD settings of an agent,
 * set through the REST API, observed on real calls over SIP/RTP: the caller
 * talks over the greeting or asks a question, and the test hears whether and
 * when the agent stops, resumes or answers (see agent-fields-lines.test.ts).
 */
import t, { type Test } from 'tap'
import { speechPcm } from './helpers/audio.ts'
import { fieldLab, frames, sleep, voiced, waitUntil, type LiveCall } from './helpers/field-lab.ts'
import { rms } from '../sip/app/rtp-caller.ts'

const NUMBER = '+14155550189'
const QUESTION = 'what are your opening hours'
const ANSWER = 'We are open every day until six.'
const LONG = 'Thank you for calling the test line. This greeting is long on purpose, so that the caller has time to talk over it. It goes on for a few sentences. And then, at last, it ends.'
const BASE = { greeting: LONG, expectedPhrases: [QUESTION], rules: [{ match: 'opening hours', reply: ANSWER }] }

const question = speechPcm(QUESTION)
/** The question's voiced span in ms (espeak-ng pads with a little silence). */
const voicedIdx = frames(question).map((f, i) => (voiced(f) ? i : -1)).filter((i) => i >= 0)
const voicedMs = (voicedIdx[voicedIdx.length - 1]! - voicedIdx[0]! + 1) * 20
const lastVoicedMs = (voicedIdx[voicedIdx.length - 1]! + 1) * 20
/** The same question, quiet: every 20 ms frame below -40 dBFS (RMS 327), well above -60. */
const loudest = Math.max(...frames(question).map(rms))
const quiet = Int16Array.from(question, (s) => Math.round((s * 250) / loudest))
/** A 200 ms burst of speech: shorter than the default minSpeechMs (300), so a false alarm. */
const start = voicedIdx[0]! * 160
const burst = question.slice(start + 1600, start + 1600 + 1600)

/** The question soft-spoken: its loudest 20 ms at -47 dBFS (RMS 146). */
const soft = Int16Array.from(question, (x) => Math.round((x * 146) / loudest))

const assistant = (call: LiveCall) => call.said().filter((e) => e.role === 'assistant')
/** Talk over the greeting 1.5 s after it started being heard. */
async function talkOverGreeting(call: LiveCall, pcm: Int16Array): Promise<number> {
  const heard = await call.heardAt(0, 40_000)
  if (!heard) throw new Error('no greeting heard')
  await sleep(Math.max(0, heard + 1500 - Date.now()))
  const t0 = Date.now()
  await call.say(pcm)
  return t0
}
/** Longest run of silence (ms) the caller heard between `from` and `to` (wall clock). */
function longestGap(call: LiveCall, from: number, to: number): number {
  let run = 0, best = 0
  call.caller.audioAt.forEach((at, i) => {
    if (at < from || at > to) return
    if (voiced(call.caller.audio[i]!)) run = 0
    else best = Math.max(best, (run += 20))
  })
  return best
}

t.test('agent fields change turn-taking on a call (barge-in, VAD)', async (t) => {
  const lab = await fieldLab(NUMBER)
  t.teardown(() => lab.close())

  const interruptedBy = async (t: Test, call: LiveCall, expectInterrupted: boolean) => {
    await talkOverGreeting(call, question)
    const g = await waitUntil(() => assistant(call)[0], 40_000, 'greeting line')
    t.equal(g.interrupted, expectInterrupted, `greeting ${expectInterrupted ? '' : 'not '}interrupted`)
    // The full greeting lasts ~10 s; interrupted, it stops soon after the caller starts (1.5 s in).
    if (expectInterrupted) t.ok(g.endMs - g.startMs < 5000, `it stopped early (${Math.round(g.endMs - g.startMs)} ms played)`)
    else t.equal(g.text, LONG, 'said in full')
  }

  const rows: Array<{ field: string; patch: Record<string, unknown>; run: (t: Test, call: LiveCall) => Promise<void> }> = [
    { field: 'bargeIn (defaults): the caller interrupts the greeting', patch: {}, run: (t, c) => interruptedBy(t, c, true) },
    { field: 'greetingInterruptible: false', patch: { greetingInterruptible: false }, run: (t, c) => interruptedBy(t, c, false) },
    { field: 'bargeIn.enabled: false', patch: { bargeIn: { enabled: false } }, run: (t, c) => interruptedBy(t, c, false) },
    { field: 'bargeIn.minSpeechMs', patch: { bargeIn: { minSpeechMs: 3000 } }, run: (t, c) => interruptedBy(t, c, false) },
    { field: 'bargeIn.minWords', patch: { bargeIn: { minWords: 10 } }, run: (t, c) => interruptedBy(t, c, false) },
    {
      field: 'vad: energy misses a soft-spoken caller', patch: { vad: 'energy' },
      async run(t, call) {
        await talkOverGreeting(call, soft)
        const g = await waitUntil(() => assistant(call)[0], 40_000, 'greeting line')
        t.equal(g.interrupted, false, 'speech below the energy VAD\'s -45 dBFS floor does not interrupt')
      },
    },
    {
      field: 'bargeIn.resumeAfterMs', patch: { bargeIn: { resumeAfterMs: 3000 } },
      async run(t, call) {
        const tb = await talkOverGreeting(call, burst)
        const g = await waitUntil(() => assistant(call)[0], 40_000, 'greeting line')
        t.equal(g.interrupted, false, 'a false alarm: the greeting goes on')
        t.equal(g.text, LONG, 'and is said in full')
        const gap = longestGap(call, tb, tb + 8000)
        t.ok(gap >= 2800, `the paused greeting resumed only after the caller had been quiet ${3000} ms (silence heard: ${gap} ms)`)
      },
    },
    {
      field: 'vadSettings.silenceMs', patch: { greeting: 'Hello.', vadSettings: { silenceMs: 2500 } },
      async run(t, call) {
        await waitUntil(() => assistant(call)[0], 30_000, 'greeting')
        const t0 = Date.now()
        await call.say(question)
        const spokeUntil = t0 + lastVoicedMs
        const answeredAt = await call.heardAt(spokeUntil, 20_000)
        t.ok(answeredAt, 'answered')
        t.ok(answeredAt! - spokeUntil >= 2400, `no answer before 2.5 s of caller silence (${answeredAt! - spokeUntil} ms)`)
        t.equal((await waitUntil(() => assistant(call)[1], 20_000, 'answer')).text, ANSWER)
      },
    },
    {
      field: 'vadSettings.prefixPaddingMs', patch: { greeting: 'Hello.', vadSettings: { prefixPaddingMs: 1500 } },
      async run(t, call) {
        await waitUntil(() => assistant(call)[0], 30_000, 'greeting')
        await call.say(question)
        const user = await waitUntil(() => call.said().find((e) => e.role === 'user'), 20_000, 'caller turn')
        t.ok(user.endMs - user.startMs >= voicedMs + 1200, `the turn starts 1.5 s before the onset: ${Math.round(user.endMs - user.startMs)} ms for ${voicedMs} ms of speech`)
      },
    },
    {
      field: 'vadSettings.threshold: 0 (sensitive) hears a quiet caller', patch: { vadSettings: { threshold: 0 } },
      async run(t, call) {
        await talkOverGreeting(call, quiet)
        const g = await waitUntil(() => assistant(call)[0], 40_000, 'greeting line')
        t.equal(g.interrupted, true, 'the quiet caller interrupts the greeting')
      },
    },
    {
      field: 'vadSettings.threshold: 1 (least sensitive) does not', patch: { vadSettings: { threshold: 1 } },
      async run(t, call) {
        await talkOverGreeting(call, quiet)
        const g = await waitUntil(() => assistant(call)[0], 40_000, 'greeting line')
        t.equal(g.interrupted, false, 'quiet speech is below the detector: the greeting goes on')
        t.equal(g.text, LONG)
      },
    },
  ]

  for (const row of rows) {
    await t.test(row.field, async (t) => {
      await lab.agent(BASE, row.patch)
      const call = await lab.call((fn) => t.teardown(fn))
      await row.run(t, call)
      if (!(await call.record()).endedAt) await call.hangup()
    })
  }
})
