/**
 * N-party conference mixer: every participant hears the sum of all others
 * (never themselves). Mixing runs at one rate (default 16 kHz); sessions
 * deliver inbound frames at that rate through a sink adapter and take the
 * mix through a live source that their egress resamples to the codec rate.
 *
 * Participants' sources say `fedByIngress`, so the scheduler runs every
 * ingress before their egress: by the time the first participant pulls its
 * frame for tick n every participant's tick-n frame is in; the sum is computed once per tick and each source
 * subtracts its own contribution (N-1 mixes in O(N)).
 */
import type { AudioFrame, FrameEndpoint, FrameSink, FrameSource, SampleRate } from '../audio/frame.ts'
import type { MediaScheduler } from './scheduler.ts'

class Participant implements FrameSink, FrameSource {
  readonly sampleRate: SampleRate
  readonly fedByIngress = true
  readonly frame: Int16Array
  readonly out: Int16Array
  /** Tick of the last frame received; stale frames do not count. */
  lastTick = -1
  removed = false
  constructor(readonly session: FrameEndpoint, private readonly mixer: Mixer, rate: SampleRate) {
    this.sampleRate = rate
    this.frame = new Int16Array(rate / 50)
    this.out = new Int16Array(rate / 50)
  }
  onFrame(f: AudioFrame): void {
    this.frame.set(f.samples.subarray(0, this.frame.length))
    this.lastTick = this.mixer.tick
  }
  nextFrame(): Int16Array | null { return this.removed ? null : this.mixer.mixFor(this) }
  get ended(): boolean { return this.removed }
}

export class Mixer {
  readonly sampleRate: SampleRate
  private readonly scheduler: MediaScheduler
  private readonly participants: Participant[] = []
  private readonly sum: Int32Array
  private sumTick = -1

  constructor(scheduler: MediaScheduler, sampleRate: SampleRate = 16000) {
    this.scheduler = scheduler
    this.sampleRate = sampleRate
    this.sum = new Int32Array(sampleRate / 50)
  }

  get tick(): number { return this.scheduler.currentTick }
  get size(): number { return this.participants.length }

  add(session: FrameEndpoint): void {
    if (this.participants.some((p) => p.session === session)) return
    const p = new Participant(session, this, this.sampleRate)
    this.participants.push(p)
    session.addSink(p, { sampleRate: this.sampleRate })
    void session.play(p)
  }

  remove(session: FrameEndpoint): void {
    const i = this.participants.findIndex((p) => p.session === session)
    if (i < 0) return
    const [p] = this.participants.splice(i, 1)
    p!.removed = true
    if (!session.isClosed) session.removeSink(p!)
  }

  /** Sum of everyone's frame for this tick minus the participant's own. */
  mixFor(p: Participant): Int16Array {
    const tick = this.tick
    const n = this.sum.length
    if (this.sumTick !== tick) {
      this.sum.fill(0)
      for (const q of this.participants) {
        if (q.lastTick !== tick) continue
        const f = q.frame
        for (let i = 0; i < n; i++) this.sum[i]! += f[i]!
      }
      this.sumTick = tick
    }
    const own = p.lastTick === tick ? p.frame : null
    const out = p.out
    for (let i = 0; i < n; i++) {
      const v = this.sum[i]! - (own ? own[i]! : 0)
      out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v
    }
    return out
  }

  close(): void {
    for (const p of [...this.participants]) this.remove(p.session)
  }
}
