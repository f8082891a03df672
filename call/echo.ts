import type { AudioFrame, FrameSink, FrameSource, SampleRate } from '../audio/frame.ts'

/**
 * The `echo` verb's audio: the caller's own frames, as they arrive, sent back
 * to it. A sink on the call's inbound audio and a source in its
 * OutputArbiter at once. It is fed by ingress, so the session sends it after
 * every session's ingress of the same tick (as a bridge leg): the caller hears
 * itself one packet later, plus the jitter buffer. The copy never holds more
 * than MAX_FRAMES (a late tick must not grow the delay for good).
 */
const MAX_FRAMES = 5

export class EchoSource implements FrameSink, FrameSource {
  readonly fedByIngress = true
  private readonly frames: Int16Array[] = []
  private readonly spare: Int16Array[] = []
  private out: Int16Array | null = null

  constructor(readonly sampleRate: SampleRate) {}

  onFrame(frame: AudioFrame): void {
    // Frames arrive at the codec's rate (the sink was added without one); a codec change mid-echo is dropped audio, not noise.
    if (frame.sampleRate !== this.sampleRate) return
    if (this.frames.length >= MAX_FRAMES) this.spare.push(this.frames.shift()!)
    let copy = this.spare.pop()
    if (!copy || copy.length !== frame.samples.length) copy = new Int16Array(frame.samples.length)
    copy.set(frame.samples)
    this.frames.push(copy)
  }

  nextFrame(): Int16Array | null {
    // The frame handed out last tick has been encoded by now: it can be reused.
    if (this.out) { this.spare.push(this.out); this.out = null }
    this.out = this.frames.shift() ?? null
    return this.out
  }
}
