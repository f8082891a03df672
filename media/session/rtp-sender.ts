/**
 * The send half of a MediaSession: one RTP packet per tick from the queued
 * sources, RFC 4733 DTMF, and the undecoded relay of a same-codec bridge.
 *
 * Per tick (egress pass): flush if requested → catch the RTP clock up over
 * skipped ticks → DTMF, or the next source frame (resampled if needed), or
 * silence → mute → encode → send → the same frame to the duplex sinks.
 * Packets are written into a small ring of buffers made once per codec.
 */
import type { Socket } from 'node:dgram'
import type { AudioCodec } from '../../codecs/index.ts'
import { DtmfSender, type DtmfPacket } from '../../codecs/dtmf.ts'
import { ULAW_SILENCE, ALAW_SILENCE } from '../../codecs/g711.ts'
import type { AudioFrame, FrameSource, SampleRate } from '../../audio/frame.ts'
import { writeRtpHeader, RTP_HEADER_SIZE, type RtpPacketView } from '../rtp/packet.ts'
import type { Direction } from '../sdp/negotiator.ts'
import { PcmQueueSource } from '../playback.ts'
import { StreamResampler } from '../../codecs/stream-resampler.ts'
import type { FrameSinks } from './frame-sinks.ts'
import type { RemotePeer } from './remote-peer.ts'
import type { PlaybackResult, ResolvedSessionOptions, SessionEvents } from './types.ts'

const SEND_RING = 4

interface QueuedSource { source: FrameSource; resolve: (r: PlaybackResult) => void }

export class RtpSender {
  /** Outbound mute: the peer hears silence. */
  muted = false
  readonly ssrc: number
  /** The RTP clock: timestamp of the next packet (RFC 3550 §5.1). */
  ts: number
  private seq: number
  private codec: AudioCodec | null = null
  private pt = 0
  private dtmfPt: number | null = null

  private readonly ring: Uint8Array[] = []
  /** Payload views into ring (after the RTP header), made once: no subarray per packet. */
  private readonly payloads: Uint8Array[] = []
  private ringIdx = 0
  private readonly queue: QueuedSource[] = []
  private ttsQueue: PcmQueueSource | null = null
  private readonly egressAdapters = new Map<number, StreamResampler>()
  private silence = new Int16Array(160)
  private outFrame: AudioFrame = { samples: new Int16Array(160), sampleRate: 8000, rtpTimestamp: 0, receivedAt: 0 }
  private readonly dtmfTx = new DtmfSender(8000)
  private readonly dtmfPacket: DtmfPacket = { length: 0, marker: false, newEvent: false }
  private dtmfTs = 0
  private markerNext = true
  private lastEgressTick = 0
  private flushRequestedAt = 0
  private flushRequestedTick = 0
  private lastAudioSentAt = 0
  private lastAudioTick = 0
  private relayTsOffset: number | null = null
  private relaying = false
  /** Set by pullSource: the frame came from a source (not silence). */
  private pulledFromSource = false

  // --- counters
  packetsSent = 0
  bytesSent = 0
  framesOut = 0
  dtmfSent = 0

  constructor(
    private readonly socket: Socket,
    private readonly peer: RemotePeer,
    private readonly sinks: FrameSinks,
    private readonly events: SessionEvents,
    private readonly opts: ResolvedSessionOptions,
    initial: { ssrc: number; seq: number; ts: number },
  ) {
    this.ssrc = initial.ssrc
    this.seq = initial.seq
    this.ts = initial.ts
  }

  /** A new codec: buffers sized for it, resamplers dropped, the next packet marked. */
  configure(codec: AudioCodec): void {
    this.codec = codec
    const frame = codec.frameSamples
    this.silence = new Int16Array(frame)
    this.outFrame = { samples: new Int16Array(frame), sampleRate: codec.sampleRate, rtpTimestamp: 0, receivedAt: 0 }
    this.ring.length = 0
    this.payloads.length = 0
    for (let i = 0; i < SEND_RING; i++) {
      const b = new Uint8Array(RTP_HEADER_SIZE + Math.max(codec.maxPayload, 320))
      this.ring.push(b)
      this.payloads.push(b.subarray(RTP_HEADER_SIZE))
    }
    this.egressAdapters.clear()
    this.markerNext = true
  }

  setPayloadTypes(audio: number, dtmf: number | null): void {
    this.pt = audio
    this.dtmfPt = dtmf
  }

  // ---------------------------------------------------------------- producers

  play(source: FrameSource): Promise<PlaybackResult> {
    return new Promise((resolve) => { this.queue.push({ source, resolve }) })
  }

  /** Streaming PCM (TTS) after anything already queued: one PcmQueueSource per run. */
  enqueue(pcm: Int16Array, sampleRate: SampleRate): void {
    if (!this.ttsQueue || this.ttsQueue.sealed || this.ttsQueue.sampleRate !== sampleRate || !this.queue.some((q) => q.source === this.ttsQueue)) {
      this.ttsQueue = new PcmQueueSource(sampleRate)
      void this.play(this.ttsQueue)
    }
    this.ttsQueue.push(pcm)
  }

  endEnqueue(): void { this.ttsQueue?.end() }

  get playing(): boolean { return this.queue.length > 0 }

  /** The head source is another session's live audio: send after every ingress (MediaScheduler). */
  get fedByIngress(): boolean {
    return this.queue.length > 0 && this.queue[0]!.source.fedByIngress === true
  }

  requestFlush(now: number, tick: number): void {
    if (this.flushRequestedAt === 0) {
      this.flushRequestedAt = now
      this.flushRequestedTick = tick
    }
  }

  /** Queues RFC 4733 digits; false when no telephone-event was negotiated. */
  sendDtmf(digits: string, durationMs: number): boolean {
    if (this.dtmfPt === null || !this.codec) return false
    this.dtmfTx.enqueue(digits, durationMs, this.codec.clockRate)
    return true
  }

  // ---------------------------------------------------------------- per tick (egress pass)

  /** Barge-in: drops every queued source and pending digit; 'flushed' says when the last audio left. */
  applyFlush(now: number, tick: number): void {
    if (this.flushRequestedAt === 0) return
    const requestedAt = this.flushRequestedAt
    this.flushRequestedAt = 0
    const dropped = this.queue.splice(0)
    for (const q of dropped) { q.source.close?.(); q.resolve('flushed') }
    this.ttsQueue = null
    this.dtmfTx.clear()
    this.markerNext = true
    this.events.emit('flushed', { requestedAt, appliedAt: now, lastAudioSentAt: this.lastAudioSentAt, requestedTick: this.flushRequestedTick, appliedTick: tick, lastAudioTick: this.lastAudioTick })
  }

  /** One outbound packet: DTMF, the next source frame, or silence. */
  egress(tick: number, now: number, direction: Direction): void {
    const codec = this.codec!
    this.catchUpClock(tick, codec)
    if (direction !== 'sendrecv' && direction !== 'sendonly') { this.ts = (this.ts + codec.timestampStep) >>> 0; return }
    if (this.sendDtmfPacket(codec)) return
    if (this.relaying) return // a bridge peer feeds us raw packets

    let pcm = this.pullSource(codec)
    const fromSource = this.pulledFromSource
    if (!pcm) {
      if (!this.opts.sendSilence) { this.ts = (this.ts + codec.timestampStep) >>> 0; this.markerNext = true; return }
      pcm = this.silence
    }
    if (this.muted) pcm = this.silence
    const buf = this.ringNext()
    const plen = this.encode(codec, pcm, this.payloads[this.ringIdx]!)
    writeRtpHeader(buf, this.pt, this.markerNext, this.seq, this.ts, this.ssrc)
    this.markerNext = false
    this.seq = (this.seq + 1) & 0xffff
    this.send(buf, RTP_HEADER_SIZE + plen)
    if (fromSource && !this.muted) { this.lastAudioSentAt = now; this.lastAudioTick = tick }
    if (this.sinks.duplexCount > 0) {
      const of = this.outFrame
      of.samples.set(pcm.subarray(0, of.samples.length))
      of.rtpTimestamp = this.ts
      of.receivedAt = now
      this.sinks.deliverOutbound(of)
    }
    this.framesOut++
    this.ts = (this.ts + codec.timestampStep) >>> 0
  }

  /**
   * Ticks the scheduler skipped after a stall still passed in media time:
   * advance the RTP clock over them (RFC 3550 §5.1, timestamps follow the
   * sampling clock) and mark the discontinuity, as after silence.
   */
  private catchUpClock(tick: number, codec: AudioCodec): void {
    if (this.lastEgressTick !== 0 && tick - this.lastEgressTick > 1) {
      this.ts = (this.ts + (tick - this.lastEgressTick - 1) * codec.timestampStep) >>> 0
      this.markerNext = true
    }
    this.lastEgressTick = tick
  }

  /** RFC 4733 §2.5: an event's packets share the timestamp of its start. */
  private sendDtmfPacket(codec: AudioCodec): boolean {
    if (!this.dtmfTx.busy || this.dtmfPt === null) return false
    const p = this.dtmfTx.next(this.ringNext(), this.dtmfPacket)
    if (!p) return false
    if (p.newEvent) { this.dtmfTs = this.ts; this.dtmfSent++ }
    const buf = this.ring[this.ringIdx]!
    buf.copyWithin(RTP_HEADER_SIZE, 0, p.length)
    writeRtpHeader(buf, this.dtmfPt, p.marker, this.seq, this.dtmfTs, this.ssrc)
    this.seq = (this.seq + 1) & 0xffff
    this.ts = (this.ts + codec.timestampStep) >>> 0
    this.send(buf, RTP_HEADER_SIZE + p.length)
    return true
  }

  /** The head source's next frame at the codec's rate; sources that ended are dropped and resolved. */
  private pullSource(codec: AudioCodec): Int16Array | null {
    this.pulledFromSource = false
    while (this.queue.length > 0) {
      const head = this.queue[0]!
      const f = head.source.nextFrame()
      if (f) {
        this.pulledFromSource = true
        return f.length === codec.frameSamples && head.source.sampleRate === codec.sampleRate ? f : this.adapt(f, head.source.sampleRate, codec)
      }
      if (head.source.ended) {
        this.queue.shift()
        head.source.close?.()
        head.resolve('done')
        continue
      }
      return null // live source with nothing right now
    }
    return null
  }

  private encode(codec: AudioCodec, pcm: Int16Array, payload: Uint8Array): number {
    if (pcm === this.silence && (codec.name === 'PCMU' || codec.name === 'PCMA')) {
      payload.fill(codec.name === 'PCMU' ? ULAW_SILENCE : ALAW_SILENCE, 0, codec.frameSamples)
      return codec.frameSamples
    }
    return codec.encode(pcm, payload)
  }

  private adapt(f: Int16Array, rate: SampleRate, codec: AudioCodec): Int16Array {
    let a = this.egressAdapters.get(rate)
    if (!a) { a = new StreamResampler(rate, codec.sampleRate); this.egressAdapters.set(rate, a) }
    return a.processFrame(f)
  }

  private ringNext(): Uint8Array {
    this.ringIdx = (this.ringIdx + 1) % SEND_RING
    return this.ring[this.ringIdx]!
  }

  private send(buf: Uint8Array, len: number): void {
    this.packetsSent++
    this.bytesSent += len
    this.socket.send(buf, 0, len, this.peer.port, this.peer.addr!)
  }

  // ---------------------------------------------------------------- relay (same-codec bridge)

  /**
   * Relay from a bridged leg with the same codec: rewrite SSRC, sequence and
   * timestamp into our own stream (RFC 3550 §7.1 translator behaviour) and
   * send at once, without decoding. The caller checked that we may send.
   */
  relay(pkt: RtpPacketView, isDtmf: boolean): void {
    if (this.muted) return
    const pt = isDtmf ? this.dtmfPt : this.pt
    if (pt === null) return
    if (this.relayTsOffset === null) this.relayTsOffset = (this.ts - pkt.timestamp) | 0
    const ts = (pkt.timestamp + this.relayTsOffset) >>> 0
    const buf = this.ringNext()
    const n = Math.min(pkt.payloadLength, buf.length - RTP_HEADER_SIZE)
    buf.set(pkt.buf.subarray(pkt.payloadOffset, pkt.payloadOffset + n), RTP_HEADER_SIZE)
    writeRtpHeader(buf, pt, pkt.marker, this.seq, ts, this.ssrc)
    this.seq = (this.seq + 1) & 0xffff
    this.ts = ts
    this.send(buf, RTP_HEADER_SIZE + n)
  }

  /** Bridge control: while relaying, our own paced egress stays quiet. */
  setRelaying(on: boolean): void {
    this.relaying = on
    if (!on) { this.relayTsOffset = null; this.markerNext = true }
  }

  /** The session closed: queued sources resolve 'closed'. */
  close(): void {
    for (const q of this.queue.splice(0)) { q.source.close?.(); q.resolve('closed') }
  }
}
