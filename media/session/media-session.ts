/**
 * One call's media (DESIGN.md "Media path"): terminates RTP/RTCP on a port
 * pair, decodes once at ingress into 20 ms frames for consumers, and paces
 * outbound frames from producers on the shared scheduler.
 *
 * This is the facade: SDP offer/answer, hold/mute, attaching consumers and
 * producers, stats and lifecycle. The work is in its parts:
 * - rtp-receiver.ts: socket → jitter buffer (demux, address check, parse,
 *   latch, SSRC, sequence, relay, jitter), and per tick playout → decode →
 *   sinks;
 * - rtp-sender.ts: per tick flush → DTMF or source frame → mute → encode →
 *   send, and the undecoded relay of a same-codec bridge;
 * - rtcp-channel.ts: reports out and in, BYE;
 * - remote-peer.ts: where the peer is (SDP, latched, RTCP);
 * - frame-sinks.ts: the attached consumers.
 * What a call hears when several things want to play is output-arbiter.ts,
 * which callers put in front of the session.
 */
import { EventEmitter } from 'node:events'
import { randomBytes, randomUUID } from 'node:crypto'
import { createCodec, type AudioCodec } from '../../codecs/index.ts'
import type { FrameSink, FrameSource, SampleRate } from '../../audio/frame.ts'
import type { RtpPacketView } from '../rtp/packet.ts'
import { SdpNegotiator, type Direction, type NegotiatedCodec, type NegotiatedMedia } from '../sdp/negotiator.ts'
import { hrtimeMs, type MediaScheduler, type TickTask } from '../scheduler.ts'
import type { PortPair } from '../port-pool.ts'
import { FrameSinks } from './frame-sinks.ts'
import { RemotePeer } from './remote-peer.ts'
import { RtpReceiver } from './rtp-receiver.ts'
import { RtpSender } from './rtp-sender.ts'
import { RtcpChannel } from './rtcp-channel.ts'
import type {
  GarbageCounters, MediaSessionEvents, MediaSessionOptions, MediaSessionStats, MuteDirection, PlaybackResult,
  ResolvedSessionOptions, RtpRelayTarget,
} from './types.ts'

export type {
  MuteDirection, MediaSessionOptions, GarbageCounters, MediaSessionStats, SessionTimeoutEvent, FlushEvent,
  SessionDtmfEvent, MediaSessionEvents, PlaybackResult, RtpRelayTarget,
} from './types.ts'

/**
 * The Opus fmtp we advertise (RFC 7587 §6.1). maxplaybackrate and
 * sprop-maxcapturerate state the PCM rate we decode and encode at, so a peer
 * that honours them (browsers do) sends narrowband SILK to an 8 kHz session
 * instead of fullband CELT we would decode and throw away (a fullband packet
 * costs about 3× a narrowband one to decode at 8 kHz). No useinbandfec=1:
 * @discordjs/opus cannot decode FEC (it always passes decode_fec=0), so asking
 * the peer to spend bits on it would buy nothing.
 */
export function opusFmtpFor(sampleRate: SampleRate): string {
  return sampleRate < 48000 ? `minptime=10;maxplaybackrate=${sampleRate};sprop-maxcapturerate=${sampleRate}` : 'minptime=10'
}

export interface SessionHost {
  scheduler: MediaScheduler
  release(pair: PortPair): void
  externalAddress: string
  onClosed(session: MediaSession): void
}

export class MediaSession extends EventEmitter<MediaSessionEvents> implements TickTask, RtpRelayTarget {
  readonly id: string
  readonly localPort: number
  private readonly host: SessionHost
  private readonly ports: PortPair
  private readonly opts: ResolvedSessionOptions
  private readonly negotiator: SdpNegotiator
  private negotiatedMedia: NegotiatedMedia | null = null
  private wantDirection: Direction = 'sendrecv'
  private closed = false
  private sendCodec: AudioCodec | null = null

  private readonly peer = new RemotePeer()
  private readonly sinks = new FrameSinks()
  private readonly garbage: GarbageCounters = { short: 0, version: 0, malformed: 0, wrongSource: 0, unknownSsrc: 0, unknownPayloadType: 0, rtcpInvalid: 0, undecodable: 0 }
  private readonly receiver: RtpReceiver
  private readonly sender: RtpSender
  private readonly rtcp: RtcpChannel

  constructor(host: SessionHost, ports: PortPair, options: MediaSessionOptions = {}) {
    super()
    this.host = host
    this.ports = ports
    this.localPort = ports.port
    this.id = options.id ?? randomUUID()
    this.opts = {
      telephoneEvent: options.telephoneEvent ?? true,
      rtcpMux: options.rtcpMux ?? true,
      inactivityTimeoutMs: options.inactivityTimeoutMs ?? 30_000,
      sendSilence: options.sendSilence ?? true,
      jitterMinDepth: options.jitterMinDepth ?? 2,
      jitterMaxDepth: options.jitterMaxDepth ?? 10,
      opusSampleRate: options.opusSampleRate ?? 48000,
      opusComplexity: options.opusComplexity,
      rtcpIntervalMs: options.rtcpIntervalMs ?? 5000,
    }
    this.negotiator = new SdpNegotiator({
      codecs: options.codecs, address: host.externalAddress, port: ports.port,
      telephoneEvent: this.opts.telephoneEvent, rtcpMux: this.opts.rtcpMux,
      opusFmtp: opusFmtpFor(this.opts.opusSampleRate),
    })
    const rnd = randomBytes(10)
    // RFC 3550 §5.1: random SSRC, initial sequence and timestamp.
    this.sender = new RtpSender(ports.rtp, this.peer, this.sinks, this, this.opts, { ssrc: rnd.readUInt32BE(0), seq: rnd.readUInt16BE(4), ts: rnd.readUInt32BE(6) })
    this.receiver = new RtpReceiver(ports.rtp, this.peer, this.sinks, this, this.garbage, this.opts)
    this.rtcp = new RtcpChannel(ports, this.peer, this.sender, this.receiver, this, this.garbage, this.opts.rtcpIntervalMs, this.id)
    this.receiver.rtcp = this.rtcp
    host.scheduler.add(this)
  }

  // ---------------------------------------------------------------- SDP

  /** Our offer (initial INVITE without SDP, re-INVITE, hold/unhold). */
  async createOffer(): Promise<string> {
    this.assertOpen()
    return this.negotiator.createOffer(this.wantDirection)
  }

  /** Answers the peer's offer and starts media with the result. */
  async createAnswer(remoteOffer: string): Promise<string> {
    this.assertOpen()
    const { answer, negotiated } = this.negotiator.processOffer(remoteOffer, this.wantDirection)
    this.apply(negotiated)
    return answer
  }

  /** Applies the peer's answer to our last offer. */
  async setRemoteDescription(remoteAnswer: string): Promise<void> {
    this.assertOpen()
    this.apply(this.negotiator.processAnswer(remoteAnswer, this.wantDirection))
  }

  get negotiated(): NegotiatedMedia | null { return this.negotiatedMedia }
  get direction(): Direction { return this.negotiatedMedia?.direction ?? 'inactive' }
  get codec(): AudioCodec | null { return this.sendCodec }

  private readonly codecFor = (c: NegotiatedCodec): AudioCodec => {
    return createCodec({ name: c.name, clockRate: c.clockRate, channels: c.channels, fmtp: c.fmtp, sampleRate: c.name === 'opus' ? this.opts.opusSampleRate : undefined, opusComplexity: this.opts.opusComplexity })
  }

  private apply(n: NegotiatedMedia): void {
    const prev = this.negotiatedMedia
    this.negotiatedMedia = n
    // Codec (re)selection: keep codec state when unchanged (re-INVITE for hold).
    if (!this.sendCodec || !prev || prev.codec.name !== n.codec.name || prev.codec.clockRate !== n.codec.clockRate) {
      const codec = this.codecFor(n.codec)
      this.sendCodec = codec
      this.sender.configure(codec)
      this.receiver.configure(codec, n.ptime)
      this.rtcp.clockRate = codec.clockRate
      this.sinks.setCodecRate(codec.sampleRate)
    }
    this.sender.setPayloadTypes(n.codec.payloadType, n.dtmfPayloadType)
    this.receiver.setReceiveCodecs(n.receiveCodecs, n.dtmfReceivePayloadTypes, this.codecFor)
    if (this.peer.setFromSdp(n.remoteAddress, n.remoteRtpPort, n.remoteRtcpPort, n.rtcpMux)) this.receiver.forgetLatchCandidate()
    this.receiver.rearmTimeout()
    this.emit('negotiated', n)
  }

  // ---------------------------------------------------------------- hold / mute

  /** Puts the call on hold: returns a re-INVITE offer with a=sendonly (RFC 3264 §8.4). */
  async hold(): Promise<string> {
    this.wantDirection = 'sendonly'
    return this.createOffer()
  }

  async unhold(): Promise<string> {
    this.wantDirection = 'sendrecv'
    return this.createOffer()
  }

  /**
   * Seen from the session (the RTP streams): 'in' silences what the peer
   * sends us (consumers, bridges and relays get silence), 'out' silences what
   * we send (the peer hears silence), 'both'. The API's mute directions are
   * seen from the call (VoipBin) and map the other way round: see
   * call/media-actions.ts.
   */
  mute(direction: MuteDirection = 'both'): void {
    if (direction !== 'out') this.receiver.muted = true
    if (direction !== 'in') this.sender.muted = true
  }

  unmute(direction: MuteDirection = 'both'): void {
    if (direction !== 'out') this.receiver.muted = false
    if (direction !== 'in') this.sender.muted = false
  }

  get muted(): { in: boolean; out: boolean } { return { in: this.receiver.muted, out: this.sender.muted } }

  // ---------------------------------------------------------------- consumers

  /**
   * Adds a frame consumer (agent STT, bridge leg, mixer, recorder, fork);
   * with `sampleRate` it gets frames resampled to that rate. A DuplexFrameSink
   * also gets the frames we send. The caller owns the sink: closing it with
   * the session is the caller's business (the 'closed' event).
   */
  addSink(sink: FrameSink, opts: { sampleRate?: SampleRate } = {}): void {
    this.sinks.add(sink, opts.sampleRate, this.sendCodec?.sampleRate ?? null)
  }

  removeSink(sink: FrameSink): void {
    this.sinks.remove(sink)
  }

  /** PCM rate of the negotiated codec (frames in and out use it). */
  codecSampleRate(): SampleRate {
    return this.sendCodec?.sampleRate ?? 8000
  }

  /** Forwards inbound RTP undecoded (same-codec bridge); null stops relaying. */
  setRelayTarget(target: RtpRelayTarget | null): void {
    this.receiver.relayTarget = target
  }

  // ---------------------------------------------------------------- producers

  /** Queues a source; resolves when it finished, was flushed, or the session closed. */
  play(source: FrameSource): Promise<PlaybackResult> {
    this.assertOpen()
    return this.sender.play(source)
  }

  /**
   * Appends streaming PCM (TTS) at `sampleRate`; frames play after anything
   * already queued. Chunks may be any length.
   */
  enqueue(pcm: Int16Array, sampleRate: SampleRate = this.sendCodec?.sampleRate ?? 8000): void {
    this.assertOpen()
    this.sender.enqueue(pcm, sampleRate)
  }

  /** Marks the end of the current enqueue() stream so queued playback after it proceeds. */
  endEnqueue(): void { this.sender.endEnqueue() }

  /**
   * Barge-in: drop every queued frame. Takes effect at the next egress tick
   * (≤ 20 ms); 'flushed' reports when it applied and when the last audio
   * packet went out.
   */
  flush(): void {
    this.sender.requestFlush(hrtimeMs(), this.host.scheduler.currentTick)
  }

  /** Queues RFC 4733 digits; returns false when no telephone-event was negotiated (use SIP INFO). */
  sendDtmf(digits: string, durationMs = 100): boolean {
    this.assertOpen()
    return this.sender.sendDtmf(digits, durationMs)
  }

  /** DTMF that arrived by SIP INFO (RFC 2976 application/dtmf-relay): reported like RFC 4733 digits. */
  injectDtmf(digit: string, durationMs = 100): void {
    this.receiver.countInjectedDtmf()
    this.emit('dtmf', { digit, durationMs, rtpTimestamp: 0, ended: true, source: 'info' })
  }

  get playing(): boolean { return this.sender.playing }

  /**
   * Relay from a bridged leg with the same codec (RtpRelayTarget): re-stamped
   * into our stream and sent at once (rtp-sender.ts).
   */
  relayRtp(pkt: RtpPacketView, isDtmf: boolean): void {
    if (this.closed || !this.sendCodec || !this.peer.addr) return
    const dir = this.negotiatedMedia!.direction
    if (dir !== 'sendrecv' && dir !== 'sendonly') return
    this.sender.relay(pkt, isDtmf)
  }

  /** Bridge control: while relaying, our own paced egress stays quiet. */
  setRelaying(on: boolean): void {
    this.sender.setRelaying(on)
  }

  // ---------------------------------------------------------------- scheduler phases

  /** Sends after every session's ingress when the playing source is another session's live audio. */
  egressAfterIngress(): boolean {
    return this.sender.fedByIngress
  }

  /** Tick phase: jitter-buffer playout and frame delivery. */
  ingress(_tick: number, now: number): void {
    if (this.closed || !this.sendCodec) return
    this.receiver.playout(now)
  }

  /** Tick phase: one outbound packet (audio, silence or DTMF), RTCP, timeouts. Runs before ingress unless egressAfterIngress(). */
  egress(tick: number, now: number): void {
    if (this.closed || !this.sendCodec || !this.peer.addr) return
    const dir = this.negotiatedMedia!.direction
    this.sender.applyFlush(now, tick)
    this.receiver.checkTimeout(now, dir)
    this.rtcp.tick()
    this.sender.egress(tick, now, dir)
  }

  // ---------------------------------------------------------------- stats / close

  stats(): MediaSessionStats {
    const rx = this.receiver.rxStats
    const jitter = this.receiver.jitter
    const jb = jitter.stats
    const expected = rx.expected
    const lossPct = expected > 0 ? (100 * rx.lost) / expected : 0
    const r = this.receiver
    const s = this.sender
    return {
      id: this.id,
      codec: this.sendCodec?.name ?? null,
      localPort: this.localPort,
      remote: this.peer.addr ? `${this.peer.addr}:${this.peer.port}` : null,
      latched: this.peer.latched,
      direction: this.direction,
      packetsSent: s.packetsSent,
      bytesSent: s.bytesSent,
      packetsReceived: r.packetsReceived,
      bytesReceived: r.bytesReceived,
      packetsLost: rx.lost,
      fractionLostPercent: Math.round(lossPct * 100) / 100,
      jitterMs: Math.round(rx.jitterMs * 100) / 100,
      maxJitterMs: Math.round(rx.maxJitterMs * 100) / 100,
      late: jb.late,
      duplicates: jb.duplicates,
      reordered: rx.reordered,
      concealed: r.concealed,
      underruns: jb.underruns,
      skewDrops: jb.skewDrops,
      jitterBufferDepth: jitter.depth,
      jitterBufferTarget: jb.targetDepth,
      framesIn: r.framesIn,
      framesOut: s.framesOut,
      dtmfReceived: r.dtmfReceived,
      dtmfSent: s.dtmfSent,
      rttMs: this.rtcp.rtt === null ? null : Math.round(this.rtcp.rtt * 10) / 10,
      mos: this.rtcp.mos(jb.targetDepth, lossPct, this.sendCodec?.name ?? 'PCMU'),
      remoteReport: this.rtcp.remoteReport,
      garbage: { ...this.garbage },
      rtcpSent: this.rtcp.sent,
      rtcpReceived: this.rtcp.received,
    }
  }

  get isClosed(): boolean { return this.closed }

  private assertOpen(): void {
    if (this.closed) throw new Error(`media session ${this.id} is closed`)
  }

  /**
   * Sends RTCP BYE, stops playback, drops the sinks, releases ports, then
   * emits 'closed' (where callers close what they attached: recordings,
   * forks). Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return
    try {
      await this.rtcp.sendBye()
    } catch { /* socket already gone */ }
    this.closed = true
    this.host.scheduler.remove(this)
    this.sender.close()
    this.sinks.clear()
    this.receiver.close()
    this.rtcp.close()
    this.host.release(this.ports)
    this.host.onClosed(this)
    this.emit('closed')
    this.removeAllListeners()
  }
}
