/**
 * The receive half of a MediaSession: RTP from the socket into the jitter
 * buffer, and once per tick out of it, decoded, to the sinks.
 *
 * Per packet (socket 'message'), the phases rtpengine's stream_packet
 * (daemon/media_socket.c) walks, each a method over one PacketContext that is
 * made once per session, so the path allocates nothing per packet:
 *
 *   demux → address check → parse → latch → ssrc → sequence → relay → jitter
 *
 * Each phase returns false when the packet stops there (counted in
 * `garbage` by reason, or consumed: RTCP, a DTMF event on its own SSRC).
 * Per tick (ingress pass): playout → decode (or conceal) → deliver.
 */
import type { RemoteInfo, Socket } from 'node:dgram'
import type { AudioCodec } from '../../codecs/index.ts'
import { DtmfReceiver } from '../../codecs/dtmf.ts'
import type { AudioFrame } from '../../audio/frame.ts'
import { JitterBuffer, slotSizingFor, type PopResult } from '../jitter-buffer.ts'
import { RtpPacketView, looksLikeRtcp } from '../rtp/packet.ts'
import { RtpReceiveStats } from '../rtp/receive-stats.ts'
import type { Direction, NegotiatedCodec } from '../sdp/negotiator.ts'
import { hrtimeMs } from '../scheduler.ts'
import type { FrameSinks } from './frame-sinks.ts'
import type { RemotePeer } from './remote-peer.ts'
import type { GarbageCounters, ResolvedSessionOptions, RtpRelayTarget, SessionEvents } from './types.ts'

const CN_PAYLOAD_TYPE = 13 // RFC 3389 comfort noise: treated like a DTMF slot
/** A source other than the SDP's must send this many packets in a row to be latched. */
const LATCH_PACKETS = 5
/** A latched source silent this long may be replaced (NAT rebinding). */
const RELATCH_AFTER_MS = 5000

/** One packet on its way through the receive path, filled in phase by phase. */
interface PacketContext {
  msg: Buffer
  len: number
  address: string
  port: number
  /** address check: from the source we send to (latched). */
  fromLatched: boolean
  /** parse */
  payloadType: number
  isDtmf: boolean
  now: number
}

/** Where the receiver hands RTCP that arrived on the RTP port (rtcp-mux). */
export interface RtcpReceiver {
  receive(msg: Uint8Array, len: number, address: string, port: number): void
}

/** Mean absolute amplitude under ~-54 dBFS: safe to drop for skew correction. */
function isQuiet(pcm: Int16Array, n: number): boolean {
  let acc = 0
  for (let i = 0; i < n; i++) { const v = pcm[i]!; acc += v < 0 ? -v : v }
  return acc < 64 * n
}

export class RtpReceiver {
  /** Inbound mute: sinks, bridges and relays get silence. */
  muted = false
  closed = false
  relayTarget: RtpRelayTarget | null = null
  rtcp: RtcpReceiver | null = null

  // --- codecs (set by configure/setReceiveCodecs)
  private codec: AudioCodec | null = null
  private readonly recvCodecs = new Map<number, AudioCodec>()
  private dtmfRecvPts = new Set<number>()

  // --- latching (the address lives in RemotePeer) and SSRC
  private latchCandidateAddr = ''
  private latchCandidatePort = 0
  private latchCandidateCount = 0
  /** SSRC of the stream we accept; -1 until the first packet after a (re)latch. */
  latchedSsrc = -1
  private lastFromLatchedMs = 0
  private candidateSsrc = -1
  private candidateCount = 0

  // --- receive state
  private readonly view = new RtpPacketView()
  private readonly packet: PacketContext = { msg: Buffer.alloc(0), len: 0, address: '', port: 0, fromLatched: false, payloadType: 0, isDtmf: false, now: 0 }
  rxStats: RtpReceiveStats = new RtpReceiveStats(8000)
  jitter: JitterBuffer = new JitterBuffer({ slots: 8, slotBytes: 1 }) // placeholder until a codec is negotiated
  private readonly dtmfRx = new DtmfReceiver(8000)
  // Sized per codec on negotiation: 120 ms (the longest Opus/RTP packet) and twice that.
  private decodeBuf = new Int16Array(0)
  private pcmFifo = new Int16Array(0)
  private pcmFill = 0
  private inFrame: AudioFrame = { samples: new Int16Array(160), sampleRate: 8000, rtpTimestamp: 0, receivedAt: 0 }
  private lastRtpAtMs = 0
  private timeoutFired = false

  // --- counters
  packetsReceived = 0
  bytesReceived = 0
  concealed = 0
  framesIn = 0
  dtmfReceived = 0

  constructor(
    private readonly socket: Socket,
    private readonly peer: RemotePeer,
    private readonly sinks: FrameSinks,
    private readonly events: SessionEvents,
    private readonly garbage: GarbageCounters,
    private readonly opts: ResolvedSessionOptions,
  ) {
    socket.on('message', this.onMessage)
  }

  // ---------------------------------------------------------------- per packet

  private readonly onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    if (this.closed) return
    const p = this.packet
    p.msg = msg
    p.len = msg.length
    p.address = rinfo.address
    p.port = rinfo.port
    if (!this.demux(p)) return
    this.checkAddress(p)
    if (!this.parse(p)) return
    if (!this.latch(p)) return
    if (!this.checkSsrc(p)) return
    if (!this.sequence(p)) return
    this.relay(p)
    this.pushJitter(p)
  }

  /** RFC 5761 §4: with rtcp-mux, RTCP shares the port; payload types 64–95 tell it apart. */
  private demux(p: PacketContext): boolean {
    if (this.peer.rtcpMux && looksLikeRtcp(p.msg, p.len)) { this.rtcp?.receive(p.msg, p.len, p.address, p.port); return false }
    return true
  }

  /** Where it came from: the source we latched (and send to), or the address the SDP gave. */
  private checkAddress(p: PacketContext): void {
    const peer = this.peer
    p.fromLatched = p.address === peer.addr && p.port === peer.port
  }

  /** RFC 3550 §5.1 header validation, then a payload type we answered (audio, telephone-event, CN). */
  private parse(p: PacketContext): boolean {
    const err = this.view.parse(p.msg, p.len)
    if (err) {
      if (err === 'short') this.garbage.short++
      else if (err === 'version') this.garbage.version++
      else this.garbage.malformed++
      return false
    }
    const pt = this.view.payloadType
    p.payloadType = pt
    p.isDtmf = this.dtmfRecvPts.has(pt)
    if (!p.isDtmf && !this.recvCodecs.has(pt) && pt !== CN_PAYLOAD_TYPE) { this.garbage.unknownPayloadType++; return false }
    p.now = hrtimeMs()
    return true
  }

  /**
   * Symmetric RTP (RFC 4961): latch onto the source actually seen, then
   * accept only that source. The SDP address latches at once; any other
   * source (a NATed peer) must send 5 packets in a row first, so stray or
   * stale streams (RTP bleed, the old peer after a re-INVITE) cannot steal
   * the session. A latch silent for 5 s may move (NAT rebinding).
   */
  private latch(p: PacketContext): boolean {
    const peer = this.peer
    if (!peer.latched || (!p.fromLatched && p.now - this.lastFromLatchedMs > RELATCH_AFTER_MS)) {
      // The SDP's address latches at once (compared only here, off the steady-state path).
      if (p.address !== peer.sdpAddr || p.port !== peer.sdpPort) {
        if (p.address === this.latchCandidateAddr && p.port === this.latchCandidatePort) this.latchCandidateCount++
        else { this.latchCandidateAddr = p.address; this.latchCandidatePort = p.port; this.latchCandidateCount = 1 }
        if (this.latchCandidateCount < LATCH_PACKETS) { this.garbage.wrongSource++; return false }
      }
      peer.latch(p.address, p.port)
      this.latchedSsrc = this.view.ssrc
      this.rxStats.reset()
      this.jitter.reset()
    } else if (!p.fromLatched) {
      this.garbage.wrongSource++
      return false
    }
    return true
  }

  /** One SSRC per stream (RFC 3550 §8); a new one must persist before it replaces the old. */
  private checkSsrc(p: PacketContext): boolean {
    const ssrc = this.view.ssrc
    if (p.isDtmf && this.latchedSsrc !== -1 && ssrc !== this.latchedSsrc) {
      // Some senders (sipp pcaps, gateways that splice DTMF in) put events on
      // their own SSRC. Events are self-describing (RFC 4733 §2.3), so decode
      // them but keep them out of the audio stream's sequence/jitter state.
      this.lastRtpAtMs = p.now
      this.receiveDtmf()
      return false
    }
    if (ssrc !== this.latchedSsrc) {
      if (this.latchedSsrc === -1) {
        this.latchedSsrc = ssrc
      } else {
        // Another SSRC from the latched source: drop it unless it persists
        // (the peer switched streams, e.g. after a transfer behind a B2BUA).
        this.garbage.unknownSsrc++
        if (ssrc === this.candidateSsrc) this.candidateCount++
        else { this.candidateSsrc = ssrc; this.candidateCount = 1 }
        if (this.candidateCount < 10 || p.now - this.lastFromLatchedMs < 200) return false
        this.latchedSsrc = ssrc
        this.rxStats.reset()
        this.jitter.reset()
      }
    }
    this.candidateCount = 0
    this.lastFromLatchedMs = p.now
    return true
  }

  /** Receive statistics (RFC 3550 Appendix A.1): duplicates and bad jumps stop here. */
  private sequence(p: PacketContext): boolean {
    this.lastRtpAtMs = p.now
    this.packetsReceived++
    this.bytesReceived += p.len
    const seqState = this.rxStats.update(this.view.sequence)
    if (seqState === 'duplicate') { this.jitter.stats.duplicates++; return false }
    if (seqState === 'bad') { this.garbage.malformed++; return false }
    if (seqState === 'restart') this.jitter.reset()
    return true
  }

  /** A same-codec bridge takes the packet undecoded; muted inbound holds for relayed packets too. */
  private relay(p: PacketContext): void {
    if (this.relayTarget && !this.muted) this.relayTarget.relayRtp(this.view, p.isDtmf)
  }

  /** Audio is copied into the jitter buffer; events and CN take a slot without audio. */
  private pushJitter(p: PacketContext): void {
    const pkt = this.view
    if (p.isDtmf) {
      this.receiveDtmf()
      this.jitter.push(pkt.sequence, pkt.timestamp, pkt.marker, null)
      return
    }
    if (p.payloadType === CN_PAYLOAD_TYPE) { this.jitter.push(pkt.sequence, pkt.timestamp, pkt.marker, null); return }
    this.rxStats.updateJitter(pkt.timestamp, p.now)
    this.jitter.push(pkt.sequence, pkt.timestamp, pkt.marker, p.msg, pkt.payloadOffset, pkt.payloadLength, p.payloadType)
  }

  /** RFC 4733 events are decoded on arrival, not at playout. */
  private receiveDtmf(): void {
    const ev = this.dtmfRx.push(this.view.payload(), this.view.timestamp)
    if (ev) { this.dtmfReceived++; this.events.emit('dtmf', { ...ev, source: 'rfc4733' }) }
  }

  // ---------------------------------------------------------------- per tick (ingress pass)

  /** Jitter-buffer playout → decode or conceal → one frame to the sinks. */
  playout(now: number): void {
    const codec = this.codec
    if (!codec) return
    const wantFrames = this.sinks.count > 0 || this.events.listenerCount('frame') > 0
    this.jitter.setJitterEstimate(this.rxStats.jitterMs)
    const n = codec.frameSamples
    let guard = 0
    while (this.pcmFill < n && guard++ < 8) {
      const r = this.jitter.pop()
      if (r.kind === 'empty') break
      if (!wantFrames) continue // nothing consumes audio: keep the buffer moving, skip decoding
      const got = this.decode(r, codec)
      if (got >= 0) this.appendPcm(got)
    }
    if (!wantFrames || this.pcmFill < n) return
    this.deliver(n, now)
  }

  /** Decodes or conceals one playout slot into decodeBuf; -1 when a quiet frame is shed for clock skew. */
  private decode(r: PopResult, codec: AudioCodec): number {
    if (r.kind === 'packet') {
      // RFC 3264 §5.1: the peer may switch among the answered codecs per packet.
      const dec = this.recvCodecs.get(r.payloadType) ?? codec
      let got: number
      try {
        got = dec.decode(r.payload, this.decodeBuf)
      } catch {
        // A corrupt payload (e.g. an invalid Opus TOC) is concealed like a loss.
        this.garbage.undecodable++
        got = codec.conceal(this.decodeBuf)
        this.concealed++
      }
      this.inFrame.rtpTimestamp = r.timestamp
      if (this.jitter.shouldShrink && isQuiet(this.decodeBuf, got)) {
        // Sender clock runs fast: shed latency on a silent frame only.
        this.jitter.recordSkewDrop()
        return -1
      }
      return got
    }
    if (r.kind === 'lost') {
      this.concealed++
      return codec.conceal(this.decodeBuf)
    }
    this.decodeBuf.fill(0, 0, codec.frameSamples)
    return codec.frameSamples
  }

  private appendPcm(got: number): void {
    if (this.pcmFill + got > this.pcmFifo.length) got = this.pcmFifo.length - this.pcmFill
    const fifo = this.pcmFifo
    const dec = this.decodeBuf
    for (let i = 0, o = this.pcmFill; i < got; i++, o++) fifo[o] = dec[i]!
    this.pcmFill += got
  }

  private deliver(n: number, now: number): void {
    const frame = this.inFrame
    if (this.muted) frame.samples.fill(0)
    else { const fs = frame.samples; const fifo = this.pcmFifo; for (let i = 0; i < n; i++) fs[i] = fifo[i]! }
    this.pcmFifo.copyWithin(0, n, this.pcmFill)
    this.pcmFill -= n
    frame.receivedAt = now
    this.framesIn++
    this.sinks.deliverInbound(frame, now)
    this.events.emit('frame', frame)
  }

  // ---------------------------------------------------------------- negotiation, timeout

  /** A new codec: receive state sized for it, statistics and SSRC latch start over. */
  configure(codec: AudioCodec, ptime: number | undefined): void {
    this.codec = codec
    this.recvCodecs.clear()
    this.rxStats = new RtpReceiveStats(codec.clockRate)
    // 16 slots span 320 ms of reordering, more than the deepest playout
    // (jitterMaxDepth, ≤ 12 packets); a longer loss burst re-buffers. The ring
    // is the largest per-session buffer, so its size is memory per call.
    const maxDepth = Math.min(this.opts.jitterMaxDepth, 12)
    // Slots sized for this codec's packet at the negotiated ptime; a larger packet grows them once.
    this.jitter = new JitterBuffer({ slots: 16, minDepth: Math.min(this.opts.jitterMinDepth, maxDepth), maxDepth, ...slotSizingFor(codec, ptime) })
    const frame = codec.frameSamples
    this.inFrame = { samples: new Int16Array(frame), sampleRate: codec.sampleRate, rtpTimestamp: 0, receivedAt: 0 }
    // One payload decodes to at most 120 ms (an Opus packet, RFC 6716 §3.2.5);
    // the FIFO holds that plus the partial frame left from the previous one.
    this.decodeBuf = new Int16Array(frame * 6)
    this.pcmFifo = new Int16Array(frame * 7)
    this.pcmFill = 0
    this.latchedSsrc = -1
  }

  /** The answered payload types (RFC 3264 §5.1); codecs already set up are kept. */
  setReceiveCodecs(codecs: readonly NegotiatedCodec[], dtmfPayloadTypes: readonly number[], codecFor: (c: NegotiatedCodec) => AudioCodec): void {
    const main = this.codec!
    for (const rc of codecs) {
      if (!this.recvCodecs.has(rc.payloadType)) {
        this.recvCodecs.set(rc.payloadType, rc.name === main.name && rc.clockRate === main.clockRate ? main : codecFor(rc))
      }
    }
    this.dtmfRecvPts = new Set(dtmfPayloadTypes)
  }

  /** The peer moved (new SDP address): the address latch is learnt again. */
  forgetLatchCandidate(): void {
    this.latchCandidateAddr = ''
    this.latchCandidateCount = 0
  }

  /** New media description: the inactivity clock starts again. */
  rearmTimeout(): void {
    this.lastRtpAtMs = hrtimeMs()
    this.timeoutFired = false
  }

  /** Emits 'timeout' once when no RTP came for inactivityTimeoutMs while the peer should send. */
  checkTimeout(now: number, direction: Direction): void {
    const limit = this.opts.inactivityTimeoutMs
    if (limit <= 0 || this.timeoutFired) return
    // Only expect RTP when the peer is supposed to send to us.
    if (direction !== 'sendrecv' && direction !== 'recvonly') { this.lastRtpAtMs = now; return }
    const idle = now - this.lastRtpAtMs
    if (idle >= limit) {
      this.timeoutFired = true
      const dtmf = this.dtmfRx.flush()
      if (dtmf) this.events.emit('dtmf', { ...dtmf, source: 'rfc4733' })
      this.events.emit('timeout', { reason: 'rtp-timeout', idleMs: Math.round(idle) })
    }
  }

  /** DTMF that arrived by SIP INFO counts with the RFC 4733 digits. */
  countInjectedDtmf(): void { this.dtmfReceived++ }

  close(): void {
    this.closed = true
    this.socket.off('message', this.onMessage)
  }
}
