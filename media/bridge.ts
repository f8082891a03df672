/**
 * Two-party bridge for B2BUA legs.
 *
 * 'relay' (same codec and clock on both legs): RTP payloads are forwarded as
 * they arrive, re-stamped into the other leg's SSRC/sequence/timestamp space
 * (an RFC 3550 §7.1 translator); nothing is decoded, nothing transcoded, and
 * telephone-events pass through on the other leg's event payload type.
 * 'transcode' (codecs differ): each leg's decoded frames feed the other leg's
 * outbound queue through a short live source; rate conversion happens at the
 * other leg's egress, and DTMF is regenerated with sendDtmf.
 *
 * A leg is a session, or a session with the output its audio is played
 * through (a call's OutputArbiter, so the bridged audio wins over the agent).
 */
import type { AudioFrame, FrameSink, FrameSource, SampleRate } from '../audio/frame.ts'
import type { MediaSession, SessionDtmfEvent } from './session/media-session.ts'

export type BridgeMode = 'relay' | 'transcode'

/** A call's session and where what it should hear is played (its OutputArbiter). */
export interface BridgeLeg {
  session: MediaSession
  output: { play(source: FrameSource): Promise<unknown> }
}

/** Live frames from one leg to the other; keeps at most a few frames to bound latency. */
class LegPipe implements FrameSink, FrameSource {
  readonly sampleRate: SampleRate
  readonly fedByIngress = true
  private readonly ring: Int16Array[]
  private head = 0
  private count = 0
  private readonly maxFrames: number
  private stopped = false
  dropped = 0

  constructor(sampleRate: SampleRate, maxFrames = 4) {
    this.sampleRate = sampleRate
    this.maxFrames = maxFrames
    this.ring = Array.from({ length: maxFrames }, () => new Int16Array(sampleRate / 50))
  }

  onFrame(frame: AudioFrame): void {
    if (this.count === this.maxFrames) { this.head = (this.head + 1) % this.maxFrames; this.count--; this.dropped++ }
    this.ring[(this.head + this.count) % this.maxFrames]!.set(frame.samples)
    this.count++
  }

  nextFrame(): Int16Array | null {
    if (this.count === 0) return null
    const f = this.ring[this.head]!
    this.head = (this.head + 1) % this.maxFrames
    this.count--
    return f
  }

  get ended(): boolean { return this.stopped }
  stop(): void { this.stopped = true; this.count = 0 }
}

export class Bridge {
  readonly mode: BridgeMode
  private readonly a: MediaSession
  private readonly b: MediaSession
  private readonly outA: BridgeLeg['output']
  private readonly outB: BridgeLeg['output']
  private pipes: LegPipe[] = []
  private readonly dtmfAB = (e: SessionDtmfEvent) => { this.b.sendDtmf(e.digit, e.durationMs) }
  private readonly dtmfBA = (e: SessionDtmfEvent) => { this.a.sendDtmf(e.digit, e.durationMs) }
  private active = true

  constructor(legA: MediaSession | BridgeLeg, legB: MediaSession | BridgeLeg, mode?: BridgeMode) {
    const a = 'session' in legA ? legA.session : legA
    const b = 'session' in legB ? legB.session : legB
    this.a = a
    this.b = b
    this.outA = 'session' in legA ? legA.output : legA
    this.outB = 'session' in legB ? legB.output : legB
    const ca = a.codec
    const cb = b.codec
    if (!ca || !cb) throw new Error('both legs must be negotiated before bridging')
    const same = ca.name === cb.name && ca.clockRate === cb.clockRate && ca.sampleRate === cb.sampleRate
    this.mode = mode ?? (same ? 'relay' : 'transcode')
    if (this.mode === 'relay' && !same) throw new Error(`cannot relay ${ca.name} to ${cb.name} without transcoding`)
    if (this.mode === 'relay') {
      a.setRelayTarget(b)
      b.setRelayTarget(a)
      a.setRelaying(true)
      b.setRelaying(true)
    } else {
      const ab = new LegPipe(ca.sampleRate)
      const ba = new LegPipe(cb.sampleRate)
      this.pipes = [ab, ba]
      a.addSink(ab)
      b.addSink(ba)
      void this.outB.play(ab)
      void this.outA.play(ba)
      a.on('dtmf', this.dtmfAB)
      b.on('dtmf', this.dtmfBA)
    }
  }

  get droppedFrames(): number { return this.pipes.reduce((s, p) => s + p.dropped, 0) }

  /** Separates the legs; each goes back to its own playback/silence. */
  unbridge(): void {
    if (!this.active) return
    this.active = false
    if (this.mode === 'relay') {
      for (const s of [this.a, this.b]) {
        if (s.isClosed) continue
        s.setRelayTarget(null)
        s.setRelaying(false)
      }
    } else {
      const [ab, ba] = this.pipes
      if (!this.a.isClosed) { this.a.removeSink(ab!); this.a.off('dtmf', this.dtmfAB) }
      if (!this.b.isClosed) { this.b.removeSink(ba!); this.b.off('dtmf', this.dtmfBA) }
      ab!.stop()
      ba!.stop()
    }
  }
}
