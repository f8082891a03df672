/**
 * The contracts of a MediaSession shared by its parts (facade, receiver,
 * sender, RTCP) and by its callers: options, events, stats.
 */
import type { EventEmitter } from 'node:events'
import type { CodecName } from '../../codecs/index.ts'
import type { DtmfEvent } from '../../codecs/dtmf.ts'
import type { AudioFrame, SampleRate } from '../../audio/frame.ts'
import type { RtpPacketView } from '../rtp/packet.ts'
import type { RtcpInfo } from '../rtp/rtcp.ts'
import type { CodecPreference, Direction, NegotiatedMedia } from '../sdp/negotiator.ts'

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

/** The options with their defaults applied. */
export type ResolvedSessionOptions = Required<Omit<MediaSessionOptions, 'id' | 'codecs' | 'opusComplexity'>> & { opusComplexity?: number }

/** Packets dropped on the receive path, by reason. */
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

export type PlaybackResult = 'done' | 'flushed' | 'closed'

/** Something raw RTP can be relayed to without decoding (bridge with matching codecs). */
export interface RtpRelayTarget {
  relayRtp(pkt: RtpPacketView, isDtmf: boolean): void
}

/** The session's event emitter as its parts see it (they emit; the facade is the emitter). */
export type SessionEvents = EventEmitter<MediaSessionEvents>
