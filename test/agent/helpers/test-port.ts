/**
 * A real-time AgentMediaPort for tests: a 20 ms clock delivers inbound frames
 * (scripted caller audio, else silence) and pulls the agent's outbound frames,
 * exactly like a media session tick. Nothing about the agent is mocked: the
 * port is the boundary the real MediaSession implements.
 */
import { performance } from 'node:perf_hooks'
import { FRAME_MS, samplesPerFrame, type AudioFrame, type FrameSource, type SampleRate } from '../../../audio/frame.ts'
import type { AgentMediaPort, Unsubscribe } from '../../../agent/media-port.ts'

export interface OutFrame {
  at: number
  samples: Int16Array | null
}

export class TestMediaPort implements AgentMediaPort {
  readonly out: OutFrame[] = []
  readonly hangups: string[] = []
  readonly transfers: string[] = []
  readonly dtmfSent: string[] = []
  flushes = 0
  /** receivedAt of each scripted inbound frame that carried caller audio. */
  readonly inboundSpeech: number[] = []
  private source: FrameSource | undefined
  private frameListeners = new Set<(f: AudioFrame) => void>()
  private dtmfListeners = new Set<(d: string) => void>()
  private endListeners = new Set<(r: string) => void>()
  private inbound: Int16Array[] = []
  private timer: NodeJS.Timeout | undefined
  private ticks = 0
  private t0 = 0
  private rtp = 0

  constructor(readonly sampleRate: SampleRate = 8000) {}

  onFrame(l: (f: AudioFrame) => void): Unsubscribe {
    this.frameListeners.add(l)
    return () => this.frameListeners.delete(l)
  }
  onDtmf(l: (d: string) => void): Unsubscribe {
    this.dtmfListeners.add(l)
    return () => this.dtmfListeners.delete(l)
  }
  onEnded(l: (r: string) => void): Unsubscribe {
    this.endListeners.add(l)
    return () => this.endListeners.delete(l)
  }
  play(source: FrameSource): void {
    this.source = source
  }
  flush(): void {
    this.flushes++
  }
  async sendDtmf(digits: string): Promise<void> {
    this.dtmfSent.push(digits)
  }
  async hangup(reason: string): Promise<void> {
    this.hangups.push(reason)
    this.stop()
  }
  async transfer(target: string): Promise<void> {
    this.transfers.push(target)
  }

  /** Queue caller audio (played after anything already queued). */
  say(pcm: Int16Array): void {
    const n = samplesPerFrame(this.sampleRate)
    for (let i = 0; i < pcm.length; i += n) {
      const f = new Int16Array(n)
      f.set(pcm.subarray(i, Math.min(pcm.length, i + n)))
      this.inbound.push(f)
    }
  }

  get callerQueued(): number {
    return this.inbound.length
  }

  pressDtmf(digit: string): void {
    for (const l of this.dtmfListeners) l(digit)
  }

  remoteHangup(): void {
    for (const l of this.endListeners) l('remote-bye')
    this.stop()
  }

  start(): void {
    this.t0 = performance.now()
    // Self-correcting clock: catch up on late timers so audio time tracks wall time.
    const step = (): void => {
      const due = Math.floor((performance.now() - this.t0) / FRAME_MS)
      while (this.ticks <= due) this.tick()
      this.timer = setTimeout(step, Math.max(1, this.t0 + (this.ticks) * FRAME_MS - performance.now()))
    }
    step()
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
  }

  private tick(): void {
    this.ticks++
    const now = performance.now()
    // Outbound first: a packet sent on this tick went out before the agent could react to this tick's inbound frame.
    const o = this.source?.nextFrame() ?? null
    this.out.push({ at: now, samples: o ? o.slice() : null })
    const n = samplesPerFrame(this.sampleRate)
    const speech = this.inbound.shift()
    const samples = speech ?? new Int16Array(n)
    if (speech) this.inboundSpeech.push(now)
    const frame: AudioFrame = { samples, sampleRate: this.sampleRate, rtpTimestamp: this.rtp, receivedAt: now }
    this.rtp += n
    for (const l of this.frameListeners) l(frame)
  }

  /** All agent audio sent since out index `from`, gaps removed. */
  agentAudio(from = 0, to = this.out.length): Int16Array {
    const frames = this.out.slice(from, to).filter((f) => f.samples) as Array<{ at: number; samples: Int16Array }>
    const pcm = new Int16Array(frames.length * samplesPerFrame(this.sampleRate))
    frames.forEach((f, i) => pcm.set(f.samples, i * f.samples.length))
    return pcm
  }

  /** performance.now() of the last non-null outbound frame at or before t (or undefined). */
  lastAgentFrameAt(): number | undefined {
    for (let i = this.out.length - 1; i >= 0; i--) if (this.out[i]!.samples) return this.out[i]!.at
    return undefined
  }

  /**
   * Timeouts are multiplied by AGENT_TEST_SLOWDOWN (default 3): the adapters are
   * real processes and the CI box is shared, so wall time varies a lot.
   */
  async waitFor(pred: () => boolean, timeoutMs: number, what = 'condition'): Promise<void> {
    const end = performance.now() + timeoutMs * Number(process.env.AGENT_TEST_SLOWDOWN ?? 3)
    while (!pred()) {
      if (performance.now() > end) throw new Error(`timed out waiting for ${what}`)
      await new Promise((r) => setTimeout(r, 10))
    }
  }
}
