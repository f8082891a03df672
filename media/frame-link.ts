/**
 * A call's audio across a thread boundary: one end of a MessageChannel
 * carrying 20 ms PCM frames (and DTMF digits) both ways between two media
 * workers, so calls on different workers can still be bridged or share a
 * conference (call/plane/worker-planes.ts pairs the ends).
 *
 * Frames arrive between ticks, whenever the other thread's clock sent them.
 * Each end keeps a short queue and hands out one frame per tick; when the
 * queue is full the oldest frame goes (counted), so the added delay stays
 * bounded (at most QUEUE_FRAMES × 20 ms) when the two clocks drift apart.
 *
 * Calls bridged across workers with the same codec relay instead: each
 * inbound RTP packet crosses undecoded and the far call re-stamps it
 * (sendRtp / onRtp), as a local same-codec bridge does.
 *
 * Two ways to use an end for frames:
 * - on the call's own worker, LinkSink and LinkSource: the call's inbound
 *   audio into the link, the link's audio as a live source for its output;
 * - on the worker that mixes a conference, LinkedEndpoint: the far call as a
 *   FrameEndpoint the Mixer and the room recorder take like a session.
 */
import type { MessagePort } from 'node:worker_threads'
import type { AudioFrame, FrameEndpoint, FrameSink, FrameSource, SampleRate } from '../audio/frame.ts'
import type { MediaScheduler, TickTask } from './scheduler.ts'
import { RtpPacketView } from './rtp/packet.ts'

/** Wideband: the conference mix rate, and enough for any codec we negotiate short of Opus fullband. */
export const LINK_RATE: SampleRate = 16000
const FRAME_SAMPLES = LINK_RATE / 50
const QUEUE_FRAMES = 4

type LinkMessage =
  | { t: 'frame'; samples: Int16Array }
  | { t: 'dtmf'; digit: string; durationMs: number }
  | { t: 'rtp'; bytes: Uint8Array; dtmf: boolean }

export class FrameLink {
  private readonly queue: Int16Array[] = []
  private closed = false
  private readonly closeHandlers: Array<() => void> = []
  /** Digits the far side received (the call's worker regenerates them). */
  onDtmf: ((digit: string, durationMs: number) => void) | null = null
  /**
   * Relay mode (both calls negotiated the same codec): the far call's RTP
   * packets, undecoded, for this call to re-stamp and send (MediaSession.relayRtp).
   */
  onRtp: ((pkt: RtpPacketView, isDtmf: boolean) => void) | null = null
  private readonly rtpView = new RtpPacketView()
  sent = 0
  received = 0
  /** Frames dropped because the queue was full (the far clock ran ahead) or malformed. */
  dropped = 0

  constructor(private readonly port: MessagePort) {
    port.on('message', (m: LinkMessage) => this.onMessage(m))
    // The far end closed it, or its thread ended.
    port.on('close', () => this.finish())
  }

  private onMessage(m: LinkMessage): void {
    if (this.closed) return
    if (m?.t === 'frame') {
      if (!(m.samples instanceof Int16Array) || m.samples.length !== FRAME_SAMPLES) { this.dropped++; return }
      if (this.queue.length >= QUEUE_FRAMES) { this.queue.shift(); this.dropped++ }
      this.queue.push(m.samples)
      this.received++
    } else if (m?.t === 'dtmf' && typeof m.digit === 'string') {
      this.onDtmf?.(m.digit, m.durationMs)
    } else if (m?.t === 'rtp') {
      if (!(m.bytes instanceof Uint8Array) || this.rtpView.parse(m.bytes) !== null) { this.dropped++; return }
      this.received++
      this.onRtp?.(this.rtpView, m.dtmf === true)
    }
  }

  /** Forwards one inbound RTP packet as it is (relay mode); the far call re-stamps it into its own stream. */
  sendRtp(pkt: RtpPacketView, isDtmf: boolean): void {
    if (this.closed) return
    const bytes = pkt.buf.slice(0, pkt.payloadOffset + pkt.payloadLength)
    this.port.postMessage({ t: 'rtp', bytes, dtmf: isDtmf } satisfies LinkMessage, [bytes.buffer as ArrayBuffer])
    this.sent++
  }

  /** Sends one LINK_RATE frame (copied: the caller's buffer is usually reused). */
  send(samples: Int16Array): void {
    if (this.closed) return
    const copy = samples.slice(0, FRAME_SAMPLES)
    this.port.postMessage({ t: 'frame', samples: copy } satisfies LinkMessage, [copy.buffer as ArrayBuffer])
    this.sent++
  }

  sendDtmf(digit: string, durationMs: number): void {
    if (!this.closed) this.port.postMessage({ t: 'dtmf', digit, durationMs } satisfies LinkMessage)
  }

  /** The oldest frame received and not yet taken, or null. */
  take(): Int16Array | null {
    return this.queue.shift() ?? null
  }

  get isClosed(): boolean {
    return this.closed
  }

  onClose(fn: () => void): void {
    if (this.closed) fn()
    else this.closeHandlers.push(fn)
  }

  /** Ends both sides: the far end sees its port close. */
  close(): void {
    if (this.closed) return
    this.port.close()
    this.finish()
  }

  private finish(): void {
    if (this.closed) return
    this.closed = true
    this.queue.length = 0
    for (const fn of this.closeHandlers.splice(0)) {
      try { fn() } catch { /* one failing handler must not keep the others from running */ }
    }
  }
}

/** The call's inbound audio into the link (add it with `{ sampleRate: LINK_RATE }`). */
export class LinkSink implements FrameSink {
  constructor(private readonly link: FrameLink) {}
  onFrame(frame: AudioFrame): void { this.link.send(frame.samples) }
}

/** The link's audio as a live source; it ends when the link closes. */
export class LinkSource implements FrameSource {
  readonly sampleRate = LINK_RATE
  constructor(private readonly link: FrameLink) {}
  nextFrame(): Int16Array | null { return this.link.take() }
  get ended(): boolean { return this.link.isClosed }
}

/**
 * The far call as a FrameEndpoint on this worker. Its frames go to the sinks
 * in the scheduler's ingress pass, like a local session's, so a mixer counts
 * them for the same tick; the source played to it is pulled after every
 * ingress (the mix needs them all) and sent over the link.
 */
export class LinkedEndpoint implements FrameEndpoint, TickTask {
  private readonly sinks = new Set<FrameSink>()
  private source: FrameSource | null = null
  private settle: ((r: 'done' | 'closed') => void) | null = null
  private readonly frame: AudioFrame = { samples: new Int16Array(FRAME_SAMPLES), sampleRate: LINK_RATE, rtpTimestamp: 0, receivedAt: 0 }

  constructor(readonly link: FrameLink, private readonly scheduler: MediaScheduler) {
    scheduler.add(this)
    link.onClose(() => this.stop())
  }

  addSink(sink: FrameSink, opts: { sampleRate?: SampleRate } = {}): void {
    if (opts.sampleRate && opts.sampleRate !== LINK_RATE) throw new RangeError(`a linked endpoint delivers ${LINK_RATE} Hz frames, not ${opts.sampleRate}`)
    this.sinks.add(sink)
  }

  removeSink(sink: FrameSink): void {
    this.sinks.delete(sink)
  }

  /** One live source at a time (the mixer's participant); resolves when it ends or the link closes. */
  play(source: FrameSource): Promise<'done' | 'closed'> {
    if (source.sampleRate !== LINK_RATE) return Promise.reject(new RangeError(`a linked endpoint sends ${LINK_RATE} Hz frames, not ${source.sampleRate}`))
    this.settle?.('done')
    this.source = source
    return new Promise((resolve) => { this.settle = resolve })
  }

  get isClosed(): boolean {
    return this.link.isClosed
  }

  ingress(_tick: number, now: number): void {
    const f = this.link.take()
    if (!f) return
    this.frame.samples = f
    this.frame.rtpTimestamp = (this.frame.rtpTimestamp + FRAME_SAMPLES) >>> 0
    this.frame.receivedAt = now
    for (const s of this.sinks) s.onFrame(this.frame)
  }

  egressAfterIngress(): boolean { return true }

  egress(): void {
    const src = this.source
    if (!src) return
    const f = src.nextFrame()
    if (f) this.link.send(f)
    else if (src.ended) { this.source = null; src.close?.(); this.settle?.('done'); this.settle = null }
  }

  private stop(): void {
    this.scheduler.remove(this)
    this.sinks.clear()
    this.source?.close?.()
    this.source = null
    this.settle?.('closed')
    this.settle = null
  }
}
