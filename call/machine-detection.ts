import type { AudioFrame } from '../audio/frame.ts'
import { AnsweringMachineDetector, MessageCue } from '../agent/amd.ts'
import type { LiveMedia } from './live-media.ts'
import type { CallActivities } from './call-activities.ts'
import type { DetectMachineRequest, MachineDetection } from './call-control.ts'

/** The detector decides within this much audio; with no audio at all the same time decides it (dead air is a machine's INITIALSILENCE). */
const DECIDE_MS = 5000
/** Waiting for the greeting's end: no audio for this long counts as its silence; never longer than the cap. */
const CUE_SILENCE_MS = 2500
const CUE_MAX_MS = 30_000

/**
 * The `detectMachine` primitive (a flow's `amd`): the caller's audio from
 * now on goes to the detector agents use on outbound calls (agent/amd.ts:
 * energy and cadence; a short "Hello?" then silence is a person, a long
 * greeting or many words in a row a machine, nothing at all for 2.5 s a
 * machine too), until it decides (within 5 s), interrupt() stops it or the
 * call ends. A far end that sends no RTP at all is dead air: a machine
 * (INITIALSILENCE) after the same 5 s. With `waitForBeep`, a machine is
 * listened to until its greeting is over (the beep, or silence: the agents'
 * MessageCue; RTP stopping counts as silence) before it resolves, so a
 * message said next is recorded (a campaign's voicemail drop).
 * It only listens: what the call plays meanwhile goes on.
 */
export function detectMachine(live: LiveMedia, activities: CallActivities, opts: DetectMachineRequest = {}): Promise<MachineDetection> {
  const { session } = live
  const detector = new AnsweringMachineDetector()
  const started = Date.now()
  let frames = 0
  let waiting: { cue: MessageCue; verdict: MachineDetection; quiet: NodeJS.Timeout; cap: NodeJS.Timeout } | null = null
  return new Promise<MachineDetection>((resolve) => {
    let over = false
    const done = (r: MachineDetection) => {
      if (over) return
      over = true
      clearTimeout(deadAir)
      if (waiting) { clearTimeout(waiting.quiet); clearTimeout(waiting.cap) }
      session.off('frame', onFrame)
      unregister()
      resolve(r)
    }
    const cueBy = (verdict: MachineDetection, cue: NonNullable<MachineDetection['cue']>) => () => done({ ...verdict, cue })
    const decided = (verdict: MachineDetection, sampleRate: number) => {
      if (verdict.result !== 'machine' || !opts.waitForBeep) { done(verdict); return }
      waiting = {
        cue: new MessageCue(sampleRate), verdict,
        quiet: setTimeout(cueBy(verdict, 'silence'), CUE_SILENCE_MS), cap: setTimeout(cueBy(verdict, 'timeout'), CUE_MAX_MS),
      }
    }
    const onFrame = (frame: AudioFrame) => {
      frames++
      if (waiting) {
        waiting.quiet.refresh()
        const cue = waiting.cue.process(frame)
        if (cue) done({ ...waiting.verdict, cue })
        return
      }
      const r = detector.process(frame)
      if (r) decided({ result: r.verdict, cause: r.cause, decidedAfterMs: r.decidedAfterMs }, frame.sampleRate)
    }
    // No RTP at all (a silent far end sends none): no frame ever decides, so the clock does.
    const deadAir = setTimeout(() => {
      if (!waiting && frames === 0) decided({ result: 'machine', cause: 'INITIALSILENCE', decidedAfterMs: Date.now() - started }, 8000)
    }, DECIDE_MS)
    const unregister = activities.add(live, (why) => done({ result: why }))
    session.on('frame', onFrame)
  })
}
