import type { AudioFrame } from '../audio/frame.ts'
import { AnsweringMachineDetector, MessageCue } from '../agent/amd.ts'
import type { LiveMedia } from './live-media.ts'
import type { CallActivities } from './call-activities.ts'
import type { DetectMachineRequest, MachineDetection } from './call-control.ts'

/**
 * The `detectMachine` primitive (a flow's `amd`): the caller's audio from
 * now on goes to the detector agents use on outbound calls (agent/amd.ts:
 * energy and cadence; a short "Hello?" then silence is a person, a long
 * greeting or many words in a row a machine, nothing at all for 2.5 s a
 * machine too), until it decides (within 5 s), interrupt() stops it or the
 * call ends. With `waitForBeep`, a machine is listened to until its greeting
 * is over (the beep, or silence: the agents' MessageCue) before it resolves,
 * so a message said next is recorded (a campaign's voicemail drop).
 * It only listens: what the call plays meanwhile goes on.
 */
export function detectMachine(live: LiveMedia, activities: CallActivities, opts: DetectMachineRequest = {}): Promise<MachineDetection> {
  const { session } = live
  const detector = new AnsweringMachineDetector()
  let waiting: { cue: MessageCue; verdict: MachineDetection } | null = null
  return new Promise<MachineDetection>((resolve) => {
    const done = (r: MachineDetection) => {
      session.off('frame', onFrame)
      unregister()
      resolve(r)
    }
    const onFrame = (frame: AudioFrame) => {
      if (waiting) {
        const cue = waiting.cue.process(frame)
        if (cue) done({ ...waiting.verdict, cue })
        return
      }
      const r = detector.process(frame)
      if (!r) return
      const verdict: MachineDetection = { result: r.verdict, cause: r.cause, decidedAfterMs: r.decidedAfterMs }
      if (r.verdict === 'machine' && opts.waitForBeep) waiting = { cue: new MessageCue(frame.sampleRate), verdict }
      else done(verdict)
    }
    const unregister = activities.add(live, (why) => done({ result: why }))
    session.on('frame', onFrame)
  })
}
