/**
 * One call's media: terminates RTP/RTCP on a port pair, decodes once at
 * ingress into 20 ms frames for consumers, and paces outbound frames from
 * producers on the shared scheduler (DESIGN.md "Media path").
 *
 * Ingress (socket 'message'): validate (RFC 3550 §5.1, garbage counted by
 * reason), symmetric-RTP latch, SSRC check, RFC 4733 events decoded on
 * arrival, audio copied into the jitter buffer.
 * Tick, ingress phase: jitter-buffer playout → decode or conceal → frame to
 * sinks. Tick, egress phase: flush if requested → DTMF or next source frame →
 * mute → resample if needed → encode → send. RTCP every ~5 s (§6.2).
 */
import { EventEmitter } from 'node:events'
import { randomBytes, randomUUID } from 'node:crypto'
import type { RemoteInfo } from 'node:dgram'
import { createCodec, type AudioCodec, type CodecName } from '../codecs/index.ts'
import { DtmfReceiver, DtmfSender, type DtmfEvent, type DtmfPacket } from '../codecs/dtmf.ts'
import { ULAW_SILENCE, ALAW_SILENCE } from '../codecs/g711.ts'
import type { AudioFrame, DuplexFrameSink, FrameSink, FrameSource, SampleRate } from '../audio/frame.ts'
import { JitterBuffer, slotSizingFor } from './jitter-buffer.ts'
import { RtpPacketView, looksLikeRtcp, writeRtpHeader, RTP_HEADER_SIZE, type RtpParseError } from './rtp/packet.ts'
import { RtpReceiveStats } from './rtp/receive-stats.ts'
import { estimateMos, ntpMiddle, ntpNow, parseRtcp, rttMs, writeRtcpBye, writeRtcpReport, type RtcpInfo } from './rtp/rtcp.ts'
import { SdpNegotiator, type CodecPreference, type Direction, type NegotiatedCodec, type NegotiatedMedia } from './sdp/negotiator.ts'
import type { MediaScheduler, TickTask } from './scheduler.ts'
import type { PortPair } from './port-pool.ts'
import { PcmQueueSource } from './playback.ts'
import { RateAdapter } from './rate-adapter.ts'
import { WavRecorder, type RecordingMode, type RecordingResult } from './recorder.ts'
import { WebSocketFork, type ForkOptions } from './fork.ts'
import { hrtimeMs } from './scheduler.ts'

export type MuteDirection = 'in' | 'out' | 'both'

export interface MediaSessionOptions {
  /** Call id for logs and stats; generated when absent. */
  id?: string
  /** Codec preference, best first (default PCMU, PCMA, G722, opus). */
  codecs?: CodecPreference[]
  telephoneEvent?: boolean
  rtcpMux?: boolean
  /** No inbound RTP for this long while the peer should be sending → 'timeout'. 0 disables. Default 30 s. */
  inactivityTimeoutMs?: number
  /** Send encoded silence when no source has audio (keeps NATs and peers' timers alive). Default true. */
  sendSilence?: boolean
  /** Jitter buffer depth bounds in 20 ms packets (max capped at 12: the ring holds 16). */
  jitterMinDepth?: number
  jitterMaxDepth?: number
  /** PCM rate for Opus decode/encode (default 48000; 16000 suits speech pipelines). */
  opusSampleRate?: SampleRate
  /** Opus encoder complexity 0–10 (default: 1 at 8 kHz, 3 at 16 kHz, 5 above; see codecs/opus.ts). */
  opusComplexity?: number
  /** RTCP report interval (RFC 3550 §6.2 recommends ≥ 5 s, the default). */
  rtcpIntervalMs?: number
}

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

export interface GarbageCounters {
  short: number
  version: number
  malformed: number
  wrongSource: number
  unknownSsrc: number
  unknownPayloadType: number
  rtcpInvalid: number
  undecodable: number
}

export interface MediaSessionStats {
  id: string
  codec: CodecName | null
  localPort: number
  remote: string | null
  latched: boolean
  direction: Direction
  packetsSent: number
  bytesSent: number
  packetsReceived: number
  bytesReceived: number
  packetsLost: number
  fractionLostPercent: number
  jitterMs: number
  maxJitterMs: number
  late: number
  duplicates: number
  reordered: number
  concealed: number
  underruns: number
  skewDrops: number
  jitterBufferDepth: number
  jitterBufferTarget: number
  framesIn: number
  framesOut: number
  dtmfReceived: number
  dtmfSent: number
  rttMs: number | null
  mos: number
  /** What the peer reported about our stream (RTCP RR). */
  remoteReport: { fractionLostPercent: number; cumulativeLost: number; jitterMs: number } | null
  garbage: GarbageCounters
  rtcpSent: number
  rtcpReceived: number
}

export interface SessionTimeoutEvent { reason: 'rtp-timeout'; idleMs: number }
export interface FlushEvent {
  /** Media clock ms (hrtimeMs) of flush(), of the tick that applied it, and of the last audio packet sent. */
  requestedAt: number
  appliedAt: number
  lastAudioSentAt: number
  /** Scheduler ticks: flush() during tick n applies at n+1; the last audio went out at or before n. */
  requestedTick: number
  appliedTick: number
  lastAudioTick: number
}
export interface SessionDtmfEvent extends DtmfEvent { source: 'rfc4733' | 'info' }

export interface MediaSessionEvents {
  frame: [AudioFrame]
  dtmf: [SessionDtmfEvent]
  timeout: [SessionTimeoutEvent]
  negotiated: [NegotiatedMedia]
  flushed: [FlushEvent]
  rtcp: [RtcpInfo]
  closed: []
}

interface QueuedSource { source: FrameSource; resolve: (r: PlaybackResult) => void }
export type PlaybackResult = 'done' | 'flushed' | 'closed'

/** Something raw RTP can be relayed to without decoding (bridge with matching codecs). */
export interface RtpRelayTarget {
  relayRtp(pkt: RtpPacketView, isDtmf: boolean): void
}

const SEND_RING = 4
const RTCP_INTERVAL_TICKS = 250 // 5 s, RFC 3550 §6.2 minimum
const CN_PAYLOAD_TYPE = 13 // RFC 3389 comfort noise: treated like a DTMF slot

export interface SessionHost {
  scheduler: MediaScheduler
  release(pair: PortPair): void
  externalAddress: string
  onClosed(session: MediaSession): void
}

/** Mean absolute amplitude under ~-54 dBFS: safe to drop for skew correction. */
function isQuiet(pcm: Int16Array, n: number): boolean {
  let acc = 0
  for (let i = 0; i < n; i++) { const v = pcm[i]!; acc += v < 0 ? -v : v }
  return acc < 64 * n
}

export class MediaSession extends EventEmitter<MediaSessionEvents> implements TickTask {
  readonly id: string
  readonly localPort: number
  private readonly host: SessionHost
  private readonly ports: PortPair
  private readonly opts: Required<Omit<MediaSessionOptions, 'id' | 'codecs' | 'opusComplexity'>> & { opusComplexity?: number }
  private readonly negotiator: SdpNegotiator
  private negotiatedMedia: NegotiatedMedia | null = null
  private wantDirection: Direction = 'sendrecv'
  private closed = false

  // --- codecs
  private sendCodec: AudioCodec | null = null
  private sendPt = 0
  private readonly recvCodecs = new Map<number, AudioCodec>()
  private dtmfRecvPts = new Set<number>()
  private dtmfSendPt: number | null = null

  // --- remote addressing / latching (symmetric RTP, RFC 4961)
  /** Where the SDP says the peer receives. */
  private sdpAddr: string | null = null
  private sdpPort = 0
  /** Where we send: the SDP address until latched, then the source we latched. */
  private remoteAddr: string | null = null
  private remotePort = 0
  private latchCandidateAddr = ''
  private latchCandidatePort = 0
  private latchCandidateCount = 0
  private remoteRtcpPort = 0
  private latched = false
  private latchedSsrc = -1
  private lastFromLatchedMs = 0
  private candidateSsrc = -1
  private candidateCount = 0
  private rtcpMux = false
  private rtcpAddr: string | null = null
  private rtcpPort = 0

  // --- receive side
  private readonly view = new RtpPacketView()
  private rxStats: RtpReceiveStats = new RtpReceiveStats(8000)
  private jitter: JitterBuffer
  private readonly dtmfRx = new DtmfReceiver(8000)
  // Sized per codec on negotiation: 120 ms (the longest Opus/RTP packet) and twice that.
  private decodeBuf = new Int16Array(0)
  private pcmFifo = new Int16Array(0)
  private pcmFill = 0
  private inFrame: AudioFrame = { samples: new Int16Array(160), sampleRate: 8000, rtpTimestamp: 0, receivedAt: 0 }
  private lastRtpAtMs = 0
  private timeoutFired = false
  private readonly sinks: FrameSink[] = []
  private readonly duplexSinks: DuplexFrameSink[] = []
  private readonly sinkRates = new Map<FrameSink, { adapter: RateAdapter; frame: AudioFrame }>()
  /** Rates consumers asked for, so a codec change can add an adapter later. */
  private readonly sinkWantRate = new Map<FrameSink, SampleRate>()
  private relayTarget: RtpRelayTarget | null = null
  private muteIn = false

  // --- send side
  private readonly ssrc: number
  private seq: number
  private ts: number
  private readonly sendRing: Uint8Array[] = []
  /** Payload views into sendRing (after the RTP header), made once: no subarray per packet. */
  private readonly sendPayloads: Uint8Array[] = []
  private ringIdx = 0
  private readonly queue: QueuedSource[] = []
  private ttsQueue: PcmQueueSource | null = null
  private readonly egressAdapters = new Map<number, RateAdapter>()
  private silence = new Int16Array(160)
  private outFrame: AudioFrame = { samples: new Int16Array(160), sampleRate: 8000, rtpTimestamp: 0, receivedAt: 0 }
  private readonly dtmfTx = new DtmfSender(8000)
  private readonly dtmfPacket: DtmfPacket = { length: 0, marker: false, newEvent: false }
  private dtmfTs = 0
  private muteOut = false
  private markerNext = true
  private lastEgressTick = 0
  private flushRequestedAt = 0
  private flushRequestedTick = 0
  private lastAudioSentAt = 0
  private lastAudioTick = 0
  private relayTsOffset: number | null = null
  private relaying = false

  // --- RTCP
  private readonly rtcpBuf = new Uint8Array(256)
  private readonly ntp = new Uint32Array(2)
  private readonly rtcpInfo: RtcpInfo = { senderSsrc: 0, srNtpMiddle: -1, fractionLost: 0, cumulativeLost: 0, jitter: 0, lsr: 0, dlsr: 0, hasBlockForUs: false, bye: false }
  private lastSrMiddle = 0
  private lastSrArrivalMs = 0
  private rtcpTick = 0
  private rtcpIntervalTicks = RTCP_INTERVAL_TICKS
  private readonly cname: string

  // --- counters
  private readonly garbage: GarbageCounters = { short: 0, version: 0, malformed: 0, wrongSource: 0, unknownSsrc: 0, unknownPayloadType: 0, rtcpInvalid: 0, undecodable: 0 }
  private c = { packetsSent: 0, bytesSent: 0, packetsReceived: 0, bytesReceived: 0, concealed: 0, framesIn: 0, framesOut: 0, dtmfReceived: 0, dtmfSent: 0, rtcpSent: 0, rtcpReceived: 0 }
  private rtt: number | null = null
  private remoteReport: MediaSessionStats['remoteReport'] = null

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
    this.jitter = new JitterBuffer({ slots: 8, slotBytes: 1 }) // placeholder until a codec is negotiated
    const rnd = randomBytes(10)
    this.ssrc = rnd.readUInt32BE(0)
    this.seq = rnd.readUInt16BE(4) // RFC 3550 §5.1: random initial sequence and timestamp
    this.ts = rnd.readUInt32BE(6)
    this.cname = `${this.id.slice(0, 16)}@callplane`
    ports.rtp.on('message', this.onRtpMessage)
    ports.rtcp.on('message', this.onRtcpMessage)
    // RFC 3550 §6.3.2: the first report comes after half the interval, randomised
    // over [0.5, 1.5]: sessions created in one burst (a bench, a mass call-out)
    // must not all send RTCP in the same tick, which showed as late ticks.
    this.rtcpIntervalTicks = Math.max(1, Math.round((this.opts.rtcpIntervalMs / 2 / 20) * (0.5 + Math.random())))
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

  private codecFor(c: NegotiatedCodec): AudioCodec {
    return createCodec({ name: c.name, clockRate: c.clockRate, channels: c.channels, fmtp: c.fmtp, sampleRate: c.name === 'opus' ? this.opts.opusSampleRate : undefined, opusComplexity: this.opts.opusComplexity })
  }

  private apply(n: NegotiatedMedia): void {
    const prev = this.negotiatedMedia
    this.negotiatedMedia = n
    // Codec (re)selection: keep codec state when unchanged (re-INVITE for hold).
    if (!this.sendCodec || !prev || prev.codec.name !== n.codec.name || prev.codec.clockRate !== n.codec.clockRate) {
      this.sendCodec = this.codecFor(n.codec)
      const frame = this.sendCodec.frameSamples
      this.silence = new Int16Array(frame)
      this.outFrame = { samples: new Int16Array(frame), sampleRate: this.sendCodec.sampleRate, rtpTimestamp: 0, receivedAt: 0 }
      this.sendRing.length = 0
      this.sendPayloads.length = 0
      for (let i = 0; i < SEND_RING; i++) {
        const b = new Uint8Array(RTP_HEADER_SIZE + Math.max(this.sendCodec.maxPayload, 320))
        this.sendRing.push(b)
        this.sendPayloads.push(b.subarray(RTP_HEADER_SIZE))
      }
      this.egressAdapters.clear()
      this.recvCodecs.clear()
      this.rxStats = new RtpReceiveStats(this.sendCodec.clockRate)
      // 16 slots span 320 ms of reordering, more than the deepest playout
      // (jitterMaxDepth, ≤ 12 packets); a longer loss burst re-buffers. The ring
      // is the largest per-session buffer, so its size is memory per call.
      const maxDepth = Math.min(this.opts.jitterMaxDepth, 12)
      // Slots sized for this codec's packet at the negotiated ptime; a larger packet grows them once.
      this.jitter = new JitterBuffer({ slots: 16, minDepth: Math.min(this.opts.jitterMinDepth, maxDepth), maxDepth, ...slotSizingFor(this.sendCodec, n.ptime) })
      this.inFrame = { samples: new Int16Array(frame), sampleRate: this.sendCodec.sampleRate, rtpTimestamp: 0, receivedAt: 0 }
      // One payload decodes to at most 120 ms (an Opus packet, RFC 6716 §3.2.5);
      // the FIFO holds that plus the partial frame left from the previous one.
      this.decodeBuf = new Int16Array(frame * 6)
      this.pcmFifo = new Int16Array(frame * 7)
      this.pcmFill = 0
      this.latchedSsrc = -1
      this.markerNext = true
      // Consumers that asked for a fixed rate keep it across a codec change.
      this.sinkRates.clear()
      for (const [sink, rate] of this.sinkWantRate) {
        if (rate !== this.sendCodec.sampleRate) {
          this.sinkRates.set(sink, { adapter: new RateAdapter(this.sendCodec.sampleRate, rate), frame: { samples: new Int16Array(rate / 50), sampleRate: rate, rtpTimestamp: 0, receivedAt: 0 } })
        }
      }
    }
    this.sendPt = n.codec.payloadType
    for (const rc of n.receiveCodecs) {
      if (!this.recvCodecs.has(rc.payloadType)) {
        this.recvCodecs.set(rc.payloadType, rc.name === this.sendCodec.name && rc.clockRate === this.sendCodec.clockRate ? this.sendCodec : this.codecFor(rc))
      }
    }
    this.dtmfRecvPts = new Set(n.dtmfReceivePayloadTypes)
    this.dtmfSendPt = n.dtmfPayloadType
    // New address or port (re-INVITE): drop the latch and learn again.
    if (n.remoteAddress !== this.sdpAddr || n.remoteRtpPort !== this.sdpPort) {
      this.sdpAddr = n.remoteAddress
      this.sdpPort = n.remoteRtpPort
      this.remoteAddr = n.remoteAddress
      this.remotePort = n.remoteRtpPort
      this.latched = false
      this.latchCandidateAddr = ''
      this.latchCandidateCount = 0
      this.rtcpAddr = null
    }
    this.remoteRtcpPort = n.remoteRtcpPort
    this.rtcpMux = n.rtcpMux
    this.lastRtpAtMs = hrtimeMs()
    this.timeoutFired = false
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
    if (direction !== 'out') this.muteIn = true
    if (direction !== 'in') this.muteOut = true
  }

  unmute(direction: MuteDirection = 'both'): void {
    if (direction !== 'out') this.muteIn = false
    if (direction !== 'in') this.muteOut = false
  }

  get muted(): { in: boolean; out: boolean } { return { in: this.muteIn, out: this.muteOut } }

  // ---------------------------------------------------------------- consumers

  /** Adds a frame consumer; with `sampleRate` it gets frames resampled to that rate. */
  addSink(sink: FrameSink, opts: { sampleRate?: SampleRate } = {}): void {
    this.sinks.push(sink)
    if ('onOutboundFrame' in sink && typeof (sink as DuplexFrameSink).onOutboundFrame === 'function') this.duplexSinks.push(sink as DuplexFrameSink)
    if (opts.sampleRate) this.sinkWantRate.set(sink, opts.sampleRate)
    if (opts.sampleRate && this.sendCodec && opts.sampleRate !== this.sendCodec.sampleRate) {
      this.sinkRates.set(sink, { adapter: new RateAdapter(this.sendCodec.sampleRate, opts.sampleRate), frame: { samples: new Int16Array(opts.sampleRate / 50), sampleRate: opts.sampleRate, rtpTimestamp: 0, receivedAt: 0 } })
    }
  }

  removeSink(sink: FrameSink): void {
    const i = this.sinks.indexOf(sink)
    if (i >= 0) this.sinks.splice(i, 1)
    const j = this.duplexSinks.indexOf(sink as DuplexFrameSink)
    if (j >= 0) this.duplexSinks.splice(j, 1)
    this.sinkRates.delete(sink)
    this.sinkWantRate.delete(sink)
  }

  /** PCM rate of the negotiated codec (frames in and out use it). */
  codecSampleRate(): SampleRate {
    return this.sendCodec?.sampleRate ?? 8000
  }

  /** Starts a WAV recording (stereo: caller left, us right). Stop with stopRecording. */
  startRecording(path: string, mode: RecordingMode = 'stereo'): WavRecorder {
    this.assertOpen()
    const rec = new WavRecorder({ path, sampleRate: this.codecSampleRate(), mode })
    this.addSink(rec)
    return rec
  }

  stopRecording(rec: WavRecorder): RecordingResult {
    this.removeSink(rec)
    return rec.close()
  }

  /** Forks audio to a WebSocket (L16, PCMU or Twilio Media Streams); resolves once connected. */
  async startFork(opts: ForkOptions): Promise<WebSocketFork> {
    this.assertOpen()
    const fork = new WebSocketFork(this, opts)
    await fork.opened
    this.addSink(fork)
    const onDtmf = (e: SessionDtmfEvent) => fork.onDtmf(e.digit)
    this.on('dtmf', onDtmf)
    fork.onClose(() => this.off('dtmf', onDtmf))
    return fork
  }

  async stopFork(fork: WebSocketFork): Promise<void> {
    this.removeSink(fork)
    await fork.close()
  }

  /** Forwards inbound RTP undecoded (same-codec bridge); null stops relaying. */
  setRelayTarget(target: RtpRelayTarget | null): void {
    this.relayTarget = target
  }

  // ---------------------------------------------------------------- producers

  /** Queues a source; resolves when it finished, was flushed, or the session closed. */
  play(source: FrameSource): Promise<PlaybackResult> {
    this.assertOpen()
    return new Promise((resolve) => { this.queue.push({ source, resolve }) })
  }

  /**
   * Appends streaming PCM (TTS) at `sampleRate`; frames play after anything
   * already queued. Chunks may be any length.
   */
  enqueue(pcm: Int16Array, sampleRate: SampleRate = this.sendCodec?.sampleRate ?? 8000): void {
    this.assertOpen()
    if (!this.ttsQueue || this.ttsQueue.sealed || this.ttsQueue.sampleRate !== sampleRate || !this.queue.some((q) => q.source === this.ttsQueue)) {
      this.ttsQueue = new PcmQueueSource(sampleRate)
      void this.play(this.ttsQueue)
    }
    this.ttsQueue.push(pcm)
  }

  /** Marks the end of the current enqueue() stream so queued playback after it proceeds. */
  endEnqueue(): void { this.ttsQueue?.end() }

  /**
   * Barge-in: drop every queued frame. Takes effect at the next egress tick
   * (≤ 20 ms); 'flushed' reports when it applied and when the last audio
   * packet went out.
   */
  flush(): void {
    if (this.flushRequestedAt === 0) {
      this.flushRequestedAt = hrtimeMs()
      this.flushRequestedTick = this.host.scheduler.currentTick
    }
  }

  /** Queues RFC 4733 digits; returns false when no telephone-event was negotiated (use SIP INFO). */
  sendDtmf(digits: string, durationMs = 100): boolean {
    this.assertOpen()
    if (this.dtmfSendPt === null || !this.sendCodec) return false
    this.dtmfTx.enqueue(digits, durationMs, this.sendCodec.clockRate)
    return true
  }

  /** DTMF that arrived by SIP INFO (RFC 2976 application/dtmf-relay): reported like RFC 4733 digits. */
  injectDtmf(digit: string, durationMs = 100): void {
    this.c.dtmfReceived++
    this.emit('dtmf', { digit, durationMs, rtpTimestamp: 0, ended: true, source: 'info' })
  }

  get playing(): boolean { return this.queue.length > 0 }

  // ---------------------------------------------------------------- socket ingress

  private readonly onRtpMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    if (this.closed) return
    const len = msg.length
    if (this.rtcpMux && looksLikeRtcp(msg, len)) { this.handleRtcp(msg, len, rinfo); return }
    const err: RtpParseError | null = this.view.parse(msg, len)
    if (err) {
      if (err === 'short') this.garbage.short++
      else if (err === 'version') this.garbage.version++
      else this.garbage.malformed++
      return
    }
    const pkt = this.view
    const pt = pkt.payloadType
    const isDtmf = this.dtmfRecvPts.has(pt)
    const codec = isDtmf ? null : this.recvCodecs.get(pt)
    if (!isDtmf && !codec && pt !== CN_PAYLOAD_TYPE) { this.garbage.unknownPayloadType++; return }
    const now = hrtimeMs()

    // Symmetric RTP (RFC 4961): latch onto the source actually seen, then
    // accept only that source. The SDP address latches at once; any other
    // source (a NATed peer) must send 5 packets in a row first, so stray or
    // stale streams (RTP bleed, the old peer after a re-INVITE) cannot steal
    // the session. A latch silent for 5 s may move (NAT rebinding).
    const fromLatched = rinfo.address === this.remoteAddr && rinfo.port === this.remotePort
    if (!this.latched || (!fromLatched && now - this.lastFromLatchedMs > 5000)) {
      const fromSdp = rinfo.address === this.sdpAddr && rinfo.port === this.sdpPort
      if (!fromSdp) {
        if (rinfo.address === this.latchCandidateAddr && rinfo.port === this.latchCandidatePort) this.latchCandidateCount++
        else { this.latchCandidateAddr = rinfo.address; this.latchCandidatePort = rinfo.port; this.latchCandidateCount = 1 }
        if (this.latchCandidateCount < 5) { this.garbage.wrongSource++; return }
      }
      this.latched = true
      this.remoteAddr = rinfo.address
      this.remotePort = rinfo.port
      this.latchedSsrc = pkt.ssrc
      this.rxStats.reset()
      this.jitter.reset()
    } else if (!fromLatched) {
      this.garbage.wrongSource++
      return
    }
    if (isDtmf && this.latchedSsrc !== -1 && pkt.ssrc !== this.latchedSsrc) {
      // Some senders (sipp pcaps, gateways that splice DTMF in) put events on
      // their own SSRC. Events are self-describing (RFC 4733 §2.3), so decode
      // them but keep them out of the audio stream's sequence/jitter state.
      this.lastRtpAtMs = now
      const ev = this.dtmfRx.push(pkt.payload(), pkt.timestamp)
      if (ev) { this.c.dtmfReceived++; this.emit('dtmf', { ...ev, source: 'rfc4733' }) }
      return
    }
    if (pkt.ssrc !== this.latchedSsrc) {
      if (this.latchedSsrc === -1) {
        this.latchedSsrc = pkt.ssrc
      } else {
        // Another SSRC from the latched source: drop it unless it persists
        // (the peer switched streams, e.g. after a transfer behind a B2BUA).
        this.garbage.unknownSsrc++
        if (pkt.ssrc === this.candidateSsrc) this.candidateCount++
        else { this.candidateSsrc = pkt.ssrc; this.candidateCount = 1 }
        if (this.candidateCount < 10 || now - this.lastFromLatchedMs < 200) return
        this.latchedSsrc = pkt.ssrc
        this.rxStats.reset()
        this.jitter.reset()
      }
    }
    this.candidateCount = 0
    this.lastFromLatchedMs = now
    this.lastRtpAtMs = now
    this.c.packetsReceived++
    this.c.bytesReceived += len

    const seqState = this.rxStats.update(pkt.sequence)
    if (seqState === 'duplicate') { this.jitter.stats.duplicates++; return }
    if (seqState === 'bad') { this.garbage.malformed++; return }
    if (seqState === 'restart') this.jitter.reset()

    // Muted inbound (the peer's audio is not passed on) holds for relayed packets too.
    if (this.relayTarget && !this.muteIn) this.relayTarget.relayRtp(pkt, isDtmf)

    if (isDtmf) {
      const ev = this.dtmfRx.push(pkt.payload(), pkt.timestamp)
      if (ev) { this.c.dtmfReceived++; this.emit('dtmf', { ...ev, source: 'rfc4733' }) }
      this.jitter.push(pkt.sequence, pkt.timestamp, pkt.marker, null)
      return
    }
    if (pt === CN_PAYLOAD_TYPE) { this.jitter.push(pkt.sequence, pkt.timestamp, pkt.marker, null); return }
    this.rxStats.updateJitter(pkt.timestamp, now)
    this.jitter.push(pkt.sequence, pkt.timestamp, pkt.marker, msg, pkt.payloadOffset, pkt.payloadLength, pt)
  }

  private readonly onRtcpMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    if (this.closed) return
    this.handleRtcp(msg, msg.length, rinfo)
  }

  private handleRtcp(msg: Uint8Array, len: number, rinfo: RemoteInfo): void {
    if (!parseRtcp(msg, len, this.ssrc, this.rtcpInfo)) { this.garbage.rtcpInvalid++; return }
    // RTCP comes from the peer we latched RTP from (same host).
    if (this.latched && rinfo.address !== this.remoteAddr) { this.garbage.wrongSource++; return }
    this.c.rtcpReceived++
    this.rtcpAddr = rinfo.address
    this.rtcpPort = rinfo.port
    const info = this.rtcpInfo
    const now = hrtimeMs()
    if (info.srNtpMiddle >= 0) {
      this.lastSrMiddle = info.srNtpMiddle
      this.lastSrArrivalMs = now
    }
    if (info.hasBlockForUs) {
      const rtt = rttMs(ntpMiddle(ntpNow(this.ntp)), info.lsr, info.dlsr)
      if (rtt >= 0) this.rtt = rtt
      this.remoteReport = {
        fractionLostPercent: Math.round((info.fractionLost / 256) * 1000) / 10,
        cumulativeLost: info.cumulativeLost,
        jitterMs: this.sendCodec ? Math.round((info.jitter * 10000) / this.sendCodec.clockRate) / 10 : 0,
      }
    }
    this.emit('rtcp', { ...info })
  }

  // ---------------------------------------------------------------- scheduler phases

  /** Sends after every session's ingress when the playing source is another session's live audio. */
  egressAfterIngress(): boolean {
    return this.queue.length > 0 && this.queue[0]!.source.fedByIngress === true
  }

  /** Tick phase: jitter-buffer playout and frame delivery. */
  ingress(_tick: number, now: number): void {
    const codec = this.sendCodec
    if (this.closed || !codec) return
    const wantFrames = this.sinks.length > 0 || this.listenerCount('frame') > 0
    this.jitter.setJitterEstimate(this.rxStats.jitterMs)
    const n = codec.frameSamples
    let guard = 0
    while (this.pcmFill < n && guard++ < 8) {
      const r = this.jitter.pop()
      if (r.kind === 'empty') break
      if (!wantFrames) continue // nothing consumes audio: keep the buffer moving, skip decoding
      let got: number
      if (r.kind === 'packet') {
        // RFC 3264 §5.1: the peer may switch among the answered codecs per packet.
        const dec = this.recvCodecs.get(r.payloadType) ?? codec
        try {
          got = dec.decode(r.payload, this.decodeBuf)
        } catch {
          // A corrupt payload (e.g. an invalid Opus TOC) is concealed like a loss.
          this.garbage.undecodable++
          got = codec.conceal(this.decodeBuf)
          this.c.concealed++
        }
        this.inFrame.rtpTimestamp = r.timestamp
        if (this.jitter.shouldShrink && isQuiet(this.decodeBuf, got)) {
          // Sender clock runs fast: shed latency on a silent frame only.
          this.jitter.recordSkewDrop()
          continue
        }
      } else if (r.kind === 'lost') {
        got = codec.conceal(this.decodeBuf)
        this.c.concealed++
      } else {
        got = n
        this.decodeBuf.fill(0, 0, n)
      }
      if (this.pcmFill + got > this.pcmFifo.length) got = this.pcmFifo.length - this.pcmFill
      const fifo = this.pcmFifo
      const dec = this.decodeBuf
      for (let i = 0, o = this.pcmFill; i < got; i++, o++) fifo[o] = dec[i]!
      this.pcmFill += got
    }
    if (!wantFrames || this.pcmFill < n) return
    const frame = this.inFrame
    if (this.muteIn) frame.samples.fill(0)
    else { const fs = frame.samples; const fifo = this.pcmFifo; for (let i = 0; i < n; i++) fs[i] = fifo[i]! }
    this.pcmFifo.copyWithin(0, n, this.pcmFill)
    this.pcmFill -= n
    frame.receivedAt = now
    this.c.framesIn++
    for (let i = 0; i < this.sinks.length; i++) {
      const sink = this.sinks[i]!
      const conv = this.sinkRates.get(sink)
      if (conv) {
        conv.frame.samples = conv.adapter.process(frame.samples)
        conv.frame.rtpTimestamp = frame.rtpTimestamp
        conv.frame.receivedAt = now
        sink.onFrame(conv.frame)
      } else {
        sink.onFrame(frame)
      }
    }
    this.emit('frame', frame)
  }

  /** Tick phase: one outbound packet (audio, silence or DTMF), RTCP, timeouts. Runs before ingress unless egressAfterIngress(). */
  egress(tick: number, now: number): void {
    const codec = this.sendCodec
    if (this.closed || !codec || !this.remoteAddr) return
    if (this.flushRequestedAt !== 0) this.applyFlush(now, tick)
    this.checkTimeout(now)
    if (++this.rtcpTick >= this.rtcpIntervalTicks) {
      // §6.3.1: randomise each interval over [0.5, 1.5] × T so sessions started together do not synchronise.
      this.rtcpTick = 0
      this.rtcpIntervalTicks = Math.max(1, Math.round((this.opts.rtcpIntervalMs / 20) * (0.5 + Math.random())))
      this.sendRtcp()
    }
    // Ticks the scheduler skipped after a stall still passed in media time:
    // advance the RTP clock over them (RFC 3550 §5.1, timestamps follow the
    // sampling clock) and mark the discontinuity, as after silence.
    if (this.lastEgressTick !== 0 && tick - this.lastEgressTick > 1) {
      this.ts = (this.ts + (tick - this.lastEgressTick - 1) * codec.timestampStep) >>> 0
      this.markerNext = true
    }
    this.lastEgressTick = tick
    const dir = this.negotiatedMedia!.direction
    const canSend = dir === 'sendrecv' || dir === 'sendonly'
    if (!canSend) { this.ts = (this.ts + codec.timestampStep) >>> 0; return }

    if (this.dtmfTx.busy && this.dtmfSendPt !== null) {
      const p = this.dtmfTx.next(this.ringNext(), this.dtmfPacket)
      if (p) {
        if (p.newEvent) { this.dtmfTs = this.ts; this.c.dtmfSent++ }
        const buf = this.sendRing[this.ringIdx]!
        buf.copyWithin(RTP_HEADER_SIZE, 0, p.length)
        writeRtpHeader(buf, this.dtmfSendPt, p.marker, this.seq, this.dtmfTs, this.ssrc)
        this.seq = (this.seq + 1) & 0xffff
        this.ts = (this.ts + codec.timestampStep) >>> 0
        this.sendRtp(buf, RTP_HEADER_SIZE + p.length)
        return
      }
    }
    if (this.relaying) return // a bridge peer feeds us raw packets

    let pcm: Int16Array | null = null
    let fromSource = false
    while (this.queue.length > 0) {
      const head = this.queue[0]!
      const f = head.source.nextFrame()
      if (f) {
        pcm = f.length === codec.frameSamples && head.source.sampleRate === codec.sampleRate ? f : this.adapt(f, head.source.sampleRate, codec)
        fromSource = true
        break
      }
      if (head.source.ended) {
        this.queue.shift()
        head.source.close?.()
        head.resolve('done')
        continue
      }
      break // live source with nothing right now
    }
    if (!pcm) {
      if (!this.opts.sendSilence) { this.ts = (this.ts + codec.timestampStep) >>> 0; this.markerNext = true; return }
      pcm = this.silence
    }
    if (this.muteOut) pcm = this.silence
    const buf = this.ringNext()
    const plen = this.encodeSilenceFast(codec, pcm, this.sendPayloads[this.ringIdx]!)
    writeRtpHeader(buf, this.sendPt, this.markerNext, this.seq, this.ts, this.ssrc)
    this.markerNext = false
    this.seq = (this.seq + 1) & 0xffff
    this.sendRtp(buf, RTP_HEADER_SIZE + plen)
    if (fromSource && !this.muteOut) { this.lastAudioSentAt = now; this.lastAudioTick = tick }
    if (this.duplexSinks.length > 0) {
      const of = this.outFrame
      of.samples.set(pcm.subarray(0, of.samples.length))
      of.rtpTimestamp = this.ts
      of.receivedAt = now
      for (const s of this.duplexSinks) s.onOutboundFrame(of)
    }
    this.c.framesOut++
    this.ts = (this.ts + codec.timestampStep) >>> 0
  }

  private encodeSilenceFast(codec: AudioCodec, pcm: Int16Array, payload: Uint8Array): number {
    if (pcm === this.silence && (codec.name === 'PCMU' || codec.name === 'PCMA')) {
      payload.fill(codec.name === 'PCMU' ? ULAW_SILENCE : ALAW_SILENCE, 0, codec.frameSamples)
      return codec.frameSamples
    }
    return codec.encode(pcm, payload)
  }

  private adapt(f: Int16Array, rate: SampleRate, codec: AudioCodec): Int16Array {
    let a = this.egressAdapters.get(rate)
    if (!a) { a = new RateAdapter(rate, codec.sampleRate); this.egressAdapters.set(rate, a) }
    return a.process(f)
  }

  private applyFlush(now: number, tick: number): void {
    const requestedAt = this.flushRequestedAt
    this.flushRequestedAt = 0
    const dropped = this.queue.splice(0)
    for (const q of dropped) { q.source.close?.(); q.resolve('flushed') }
    this.ttsQueue = null
    this.dtmfTx.clear()
    this.markerNext = true
    this.emit('flushed', { requestedAt, appliedAt: now, lastAudioSentAt: this.lastAudioSentAt, requestedTick: this.flushRequestedTick, appliedTick: tick, lastAudioTick: this.lastAudioTick })
  }

  private checkTimeout(now: number): void {
    const limit = this.opts.inactivityTimeoutMs
    if (limit <= 0 || this.timeoutFired) return
    const dir = this.negotiatedMedia!.direction
    // Only expect RTP when the peer is supposed to send to us.
    if (dir !== 'sendrecv' && dir !== 'recvonly') { this.lastRtpAtMs = now; return }
    const idle = now - this.lastRtpAtMs
    if (idle >= limit) {
      this.timeoutFired = true
      const dtmf = this.dtmfRx.flush()
      if (dtmf) this.emit('dtmf', { ...dtmf, source: 'rfc4733' })
      this.emit('timeout', { reason: 'rtp-timeout', idleMs: Math.round(idle) })
    }
  }

  private ringNext(): Uint8Array {
    this.ringIdx = (this.ringIdx + 1) % SEND_RING
    return this.sendRing[this.ringIdx]!
  }

  private sendRtp(buf: Uint8Array, len: number): void {
    this.c.packetsSent++
    this.c.bytesSent += len
    this.ports.rtp.send(buf, 0, len, this.remotePort, this.remoteAddr!)
  }

  /**
   * Relay from a bridged leg with the same codec: rewrite SSRC, sequence and
   * timestamp into our own stream (RFC 3550 §7.1 translator behaviour) and
   * send at once, without decoding.
   */
  relayRtp(pkt: RtpPacketView, isDtmf: boolean): void {
    const codec = this.sendCodec
    if (this.closed || !codec || !this.remoteAddr) return
    const dir = this.negotiatedMedia!.direction
    if (dir !== 'sendrecv' && dir !== 'sendonly') return
    if (this.muteOut) return
    const pt = isDtmf ? this.dtmfSendPt : this.sendPt
    if (pt === null) return
    if (this.relayTsOffset === null) this.relayTsOffset = (this.ts - pkt.timestamp) | 0
    const ts = (pkt.timestamp + this.relayTsOffset) >>> 0
    const buf = this.ringNext()
    const n = Math.min(pkt.payloadLength, buf.length - RTP_HEADER_SIZE)
    buf.set(pkt.buf.subarray(pkt.payloadOffset, pkt.payloadOffset + n), RTP_HEADER_SIZE)
    writeRtpHeader(buf, pt, pkt.marker, this.seq, ts, this.ssrc)
    this.seq = (this.seq + 1) & 0xffff
    this.ts = ts
    this.sendRtp(buf, RTP_HEADER_SIZE + n)
  }

  /** Bridge control: while relaying, our own paced egress stays quiet. */
  setRelaying(on: boolean): void {
    this.relaying = on
    if (!on) { this.relayTsOffset = null; this.markerNext = true }
  }

  private sendRtcp(): void {
    const codec = this.sendCodec
    if (!codec || !this.remoteAddr) return
    const addr = this.rtcpAddr ?? this.remoteAddr
    const port = this.rtcpAddr ? this.rtcpPort : this.rtcpMux ? this.remotePort : this.remoteRtcpPort
    if (!port) return
    const ntp = ntpNow(this.ntp)
    const sender = this.c.packetsSent > 0 ? { rtpTimestamp: this.ts, packetCount: this.c.packetsSent, octetCount: Math.max(0, this.c.bytesSent - this.c.packetsSent * RTP_HEADER_SIZE) } : null
    let block = null
    if (this.latchedSsrc >= 0 && this.rxStats.received > 0) {
      const dlsr = this.lastSrArrivalMs ? Math.round(((hrtimeMs() - this.lastSrArrivalMs) / 1000) * 65536) : 0
      block = {
        ssrc: this.latchedSsrc,
        fractionLost: this.rxStats.takeFractionLost(),
        cumulativeLost: this.rxStats.lost,
        extendedMaxSeq: this.rxStats.extendedMaxSeq >>> 0,
        jitter: this.rxStats.jitter,
        lsr: this.lastSrMiddle,
        dlsr,
      }
    }
    const len = writeRtcpReport(this.rtcpBuf, this.ssrc, ntp, sender, block, this.cname)
    const sock = this.rtcpMux ? this.ports.rtp : this.ports.rtcp
    sock.send(this.rtcpBuf, 0, len, port, addr)
    this.c.rtcpSent++
  }

  // ---------------------------------------------------------------- stats / close

  stats(): MediaSessionStats {
    const rx = this.rxStats
    const jb = this.jitter.stats
    const expected = rx.expected
    const lossPct = expected > 0 ? (100 * rx.lost) / expected : 0
    const oneWay = (this.rtt ?? 0) / 2 + jb.targetDepth * 20
    return {
      id: this.id,
      codec: this.sendCodec?.name ?? null,
      localPort: this.localPort,
      remote: this.remoteAddr ? `${this.remoteAddr}:${this.remotePort}` : null,
      latched: this.latched,
      direction: this.direction,
      packetsSent: this.c.packetsSent,
      bytesSent: this.c.bytesSent,
      packetsReceived: this.c.packetsReceived,
      bytesReceived: this.c.bytesReceived,
      packetsLost: rx.lost,
      fractionLostPercent: Math.round(lossPct * 100) / 100,
      jitterMs: Math.round(rx.jitterMs * 100) / 100,
      maxJitterMs: Math.round(rx.maxJitterMs * 100) / 100,
      late: jb.late,
      duplicates: jb.duplicates,
      reordered: rx.reordered,
      concealed: this.c.concealed,
      underruns: jb.underruns,
      skewDrops: jb.skewDrops,
      jitterBufferDepth: this.jitter.depth,
      jitterBufferTarget: jb.targetDepth,
      framesIn: this.c.framesIn,
      framesOut: this.c.framesOut,
      dtmfReceived: this.c.dtmfReceived,
      dtmfSent: this.c.dtmfSent,
      rttMs: this.rtt === null ? null : Math.round(this.rtt * 10) / 10,
      mos: estimateMos(oneWay, lossPct, this.sendCodec?.name ?? 'PCMU'),
      remoteReport: this.remoteReport,
      garbage: { ...this.garbage },
      rtcpSent: this.c.rtcpSent,
      rtcpReceived: this.c.rtcpReceived,
    }
  }

  get isClosed(): boolean { return this.closed }

  private assertOpen(): void {
    if (this.closed) throw new Error(`media session ${this.id} is closed`)
  }

  /** Sends RTCP BYE, stops playback, releases ports. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return
    try {
      if (this.remoteAddr && this.sendCodec) {
        const len = writeRtcpReport(this.rtcpBuf, this.ssrc, ntpNow(this.ntp), null, null, this.cname)
        const byeLen = writeRtcpBye(this.rtcpBuf.subarray(len), this.ssrc)
        const port = this.rtcpAddr ? this.rtcpPort : this.rtcpMux ? this.remotePort : this.remoteRtcpPort
        const sock = this.rtcpMux ? this.ports.rtp : this.ports.rtcp
        await new Promise<void>((resolve) => sock.send(this.rtcpBuf, 0, len + byeLen, port, this.rtcpAddr ?? this.remoteAddr!, () => resolve()))
      }
    } catch { /* socket already gone */ }
    this.closed = true
    this.host.scheduler.remove(this)
    for (const q of this.queue.splice(0)) { q.source.close?.(); q.resolve('closed') }
    // Recordings end with the call; forks send their 'stop'.
    for (const sink of this.sinks.splice(0)) {
      if (sink instanceof WavRecorder) sink.close()
      else if (sink instanceof WebSocketFork) void sink.close()
    }
    this.ports.rtp.off('message', this.onRtpMessage)
    this.ports.rtcp.off('message', this.onRtcpMessage)
    this.host.release(this.ports)
    this.host.onClosed(this)
    this.emit('closed')
    this.removeAllListeners()
  }
}
