/**
 * SDP offer/answer for one audio stream (RFC 3264 on RFC 4566 syntax, parsed
 * and written with sdp-transform).
 *
 * - Codec choice follows our preference list, restricted to what the peer
 *   offered (§6.1 lets the answerer pick among offered formats).
 * - telephone-event (RFC 4733 §7.1.1) is kept when both sides support it.
 * - Directions combine per §6.1 (sendonly ↔ recvonly, inactive stays); a
 *   c=0.0.0.0 offer is the RFC 2543 hold form (§8.4) and means no sending.
 * - Every new description bumps o= session-version (§8); the session id stays.
 */
import sdpTransform from 'sdp-transform'
import type { MediaDescription, SessionDescription } from 'sdp-transform'
import { isSupportedCodec, STATIC_PAYLOAD_TYPES, type CodecName } from '../../codecs/index.ts'

export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive'

/** 'PCMU', 'PCMA', 'G722', 'opus', 'L16', 'L16/16000'. */
export type CodecPreference = string

export interface NegotiatedCodec {
  name: CodecName
  payloadType: number
  clockRate: number
  channels: number
  fmtp?: string
}

export interface NegotiatedMedia {
  /** The codec we send with (first acceptable in the answer / our pick). */
  codec: NegotiatedCodec
  /** Codecs the peer may send to us, by payload type (§5.1: any codec in our answer/offer). */
  receiveCodecs: NegotiatedCodec[]
  /** telephone-event payload type for sending, or null. */
  dtmfPayloadType: number | null
  /** All telephone-event payload types we accept. */
  dtmfReceivePayloadTypes: number[]
  remoteAddress: string
  remoteRtpPort: number
  remoteRtcpPort: number
  rtcpMux: boolean
  /** Our effective direction after combining with the peer's. */
  direction: Direction
  /** Packetization time the peer asked for (a=ptime), default 20. */
  ptime: number
}

export interface NegotiatorOptions {
  codecs?: CodecPreference[]
  address: string
  port: number
  telephoneEvent?: boolean
  rtcpMux?: boolean
  ptime?: number
  /** fmtp we advertise for opus (RFC 7587 §7). */
  opusFmtp?: string
  sessionName?: string
}

interface CodecInfo { name: CodecName; clockRate: number; channels: number; staticPt?: number; dynamicPt: number }

const KNOWN: Record<string, CodecInfo> = {
  PCMU: { name: 'PCMU', clockRate: 8000, channels: 1, staticPt: 0, dynamicPt: 0 },
  PCMA: { name: 'PCMA', clockRate: 8000, channels: 1, staticPt: 8, dynamicPt: 8 },
  G722: { name: 'G722', clockRate: 8000, channels: 1, staticPt: 9, dynamicPt: 9 },
  OPUS: { name: 'opus', clockRate: 48000, channels: 2, dynamicPt: 111 }, // RFC 7587 §7: opus/48000/2 always
  L16: { name: 'L16', clockRate: 8000, channels: 1, dynamicPt: 118 },
}

function parsePreference(p: CodecPreference): CodecInfo {
  const [n, rate] = p.split('/')
  const info = KNOWN[n!.toUpperCase()]
  if (!info) throw new RangeError(`unsupported codec preference ${p}`)
  if (info.name === 'L16' && rate) {
    const r = Number(rate)
    return { ...info, clockRate: r, dynamicPt: r === 16000 ? 119 : r === 48000 ? 120 : 118 }
  }
  return info
}

export function reverseDirection(d: Direction): Direction {
  return d === 'sendonly' ? 'recvonly' : d === 'recvonly' ? 'sendonly' : d
}

/** Intersects what we want with what the peer allows (peer's view reversed). */
export function combineDirections(want: Direction, remote: Direction): Direction {
  const r = reverseDirection(remote)
  const send = (want === 'sendrecv' || want === 'sendonly') && (r === 'sendrecv' || r === 'sendonly')
  const recv = (want === 'sendrecv' || want === 'recvonly') && (r === 'sendrecv' || r === 'recvonly')
  return send && recv ? 'sendrecv' : send ? 'sendonly' : recv ? 'recvonly' : 'inactive'
}

function mediaDirection(sdp: SessionDescription, m: MediaDescription): Direction {
  const d = (m.direction ?? sdp.direction ?? 'sendrecv') as Direction
  const addr = m.connection?.ip ?? sdp.connection?.ip
  if (addr === '0.0.0.0') {
    // RFC 3264 §8.4: c=0.0.0.0 means "do not send to me".
    return d === 'sendrecv' ? 'sendonly' : d === 'recvonly' ? 'inactive' : d
  }
  return d
}

function rtpmapOf(m: MediaDescription, pt: number): { codec: string; rate: number; channels: number } | null {
  const r = m.rtp.find((x) => x.payload === pt)
  if (r) return { codec: r.codec, rate: r.rate ?? 8000, channels: r.encoding ?? 1 }
  // RFC 3551 static types may be used without a=rtpmap.
  for (const [name, spt] of Object.entries(STATIC_PAYLOAD_TYPES)) if (spt === pt) return { codec: name, rate: 8000, channels: 1 }
  return null
}

function payloadList(m: MediaDescription): number[] {
  return String(m.payloads ?? '').split(/\s+/).filter(Boolean).map(Number)
}

export class SdpError extends Error {
  constructor(message: string, readonly status = 488) { super(message) }
}

export class SdpNegotiator {
  private readonly prefs: CodecInfo[]
  private readonly sessionId = Math.floor(Math.random() * 2 ** 31)
  private version = 0
  private readonly opts: Required<Omit<NegotiatorOptions, 'opusFmtp' | 'codecs'>> & { opusFmtp: string }
  /** Our most recent offer's payload map, to read the answer against. */
  private lastOffer: { pt: number; info: CodecInfo }[] = []

  constructor(opts: NegotiatorOptions) {
    this.prefs = (opts.codecs ?? ['PCMU', 'PCMA', 'G722', 'opus']).map(parsePreference)
    this.opts = {
      address: opts.address,
      port: opts.port,
      telephoneEvent: opts.telephoneEvent ?? true,
      rtcpMux: opts.rtcpMux ?? true,
      ptime: opts.ptime ?? 20,
      sessionName: opts.sessionName ?? 'callplane',
      opusFmtp: opts.opusFmtp ?? 'minptime=10', // no useinbandfec: see opusFmtpFor in session/media-session.ts
    }
  }

  setAddress(address: string, port: number): void {
    this.opts.address = address
    this.opts.port = port
  }

  private write(media: { pt: number; info: CodecInfo; fmtp?: string }[], dtmf: { pt: number; rate: number }[], direction: Direction, rtcpMux: boolean): string {
    this.version++
    const { address, port, sessionName, ptime } = this.opts
    const m: MediaDescription = {
      type: 'audio',
      port,
      protocol: 'RTP/AVP',
      payloads: [...media.map((c) => c.pt), ...dtmf.map((d) => d.pt)].join(' '),
      rtp: [
        ...media.map((c) => ({ payload: c.pt, codec: c.info.name, rate: c.info.clockRate, ...(c.info.channels > 1 ? { encoding: c.info.channels } : {}) })),
        ...dtmf.map((d) => ({ payload: d.pt, codec: 'telephone-event', rate: d.rate })),
      ],
      fmtp: [
        ...media.filter((c) => c.fmtp).map((c) => ({ payload: c.pt, config: c.fmtp! })),
        ...dtmf.map((d) => ({ payload: d.pt, config: '0-16' })),
      ],
      ptime,
      direction,
      ...(rtcpMux ? { rtcpMux: 'rtcp-mux' as const } : {}),
      rtcp: { port: rtcpMux ? port : port + 1 },
    }
    const sdp: SessionDescription = {
      version: 0,
      origin: { username: '-', sessionId: this.sessionId, sessionVersion: this.version, netType: 'IN', ipVer: 4, address },
      name: sessionName,
      connection: { version: 4, ip: address },
      timing: { start: 0, stop: 0 },
      media: [m],
    }
    return sdpTransform.write(sdp)
  }

  /** A fresh offer with every preferred codec (initial INVITE, re-INVITE, hold). */
  createOffer(direction: Direction = 'sendrecv'): string {
    const media = this.prefs.map((info) => ({ pt: info.staticPt ?? info.dynamicPt, info, fmtp: info.name === 'opus' ? this.opts.opusFmtp : undefined }))
    const dtmf: { pt: number; rate: number }[] = []
    if (this.opts.telephoneEvent) {
      dtmf.push({ pt: 101, rate: 8000 })
      if (this.prefs.some((p) => p.clockRate === 48000)) dtmf.push({ pt: 110, rate: 48000 })
    }
    this.lastOffer = media
    return this.write(media, dtmf, direction, this.opts.rtcpMux)
  }

  /** Reads the peer's answer to our last offer. */
  processAnswer(answerSdp: string, want: Direction = 'sendrecv'): NegotiatedMedia {
    const sdp = this.parse(answerSdp)
    const m = sdp.media[0]!
    const pts = payloadList(m)
    const recv: NegotiatedCodec[] = []
    for (const pt of pts) {
      const map = rtpmapOf(m, pt)
      if (!map) continue
      const ours = this.lastOffer.find((o) => o.info.name.toUpperCase() === map.codec.toUpperCase() && o.info.clockRate === map.rate)
      if (ours) recv.push({ name: ours.info.name, payloadType: pt, clockRate: map.rate, channels: map.channels, fmtp: m.fmtp.find((f) => f.payload === pt)?.config })
    }
    if (recv.length === 0) throw new SdpError('answer has no codec from our offer')
    return this.negotiated(sdp, m, recv[0]!, recv, want)
  }

  /** Answers a peer's offer; returns our answer and the resulting media parameters. */
  processOffer(offerSdp: string, want: Direction = 'sendrecv'): { answer: string; negotiated: NegotiatedMedia } {
    const sdp = this.parse(offerSdp)
    const m = sdp.media[0]!
    const offered: NegotiatedCodec[] = []
    for (const pt of payloadList(m)) {
      const map = rtpmapOf(m, pt)
      if (!map || !isSupportedCodec(map.codec)) continue
      offered.push({ name: parsePreference(map.codec).name, payloadType: pt, clockRate: map.rate, channels: map.channels, fmtp: m.fmtp.find((f) => f.payload === pt)?.config })
    }
    const chosen = this.prefs.map((p) => offered.find((o) => o.name === p.name && o.clockRate === p.clockRate)).find(Boolean)
    if (!chosen) throw new SdpError('no common codec in offer')
    const negotiated = this.negotiated(sdp, m, chosen, [chosen], want)
    const info = this.prefs.find((p) => p.name === chosen.name)!
    const media = [{ pt: chosen.payloadType, info: { ...info, channels: chosen.channels }, fmtp: chosen.name === 'opus' ? this.opts.opusFmtp : undefined }]
    const dtmf = negotiated.dtmfPayloadType !== null && this.opts.telephoneEvent
      ? [{ pt: negotiated.dtmfPayloadType, rate: rtpmapOf(m, negotiated.dtmfPayloadType)?.rate ?? 8000 }]
      : []
    if (!this.opts.telephoneEvent) { negotiated.dtmfPayloadType = null; negotiated.dtmfReceivePayloadTypes = [] }
    const answer = this.write(media, dtmf, negotiated.direction, negotiated.rtcpMux)
    return { answer, negotiated }
  }

  private parse(text: string): SessionDescription {
    let sdp: SessionDescription
    try { sdp = sdpTransform.parse(text) } catch (err) { throw new SdpError(`unparseable SDP: ${(err as Error).message}`, 400) }
    const m = sdp.media?.find((x) => x.type === 'audio')
    if (!m) throw new SdpError('no audio m-line')
    sdp.media = [m]
    if (!m.rtp) m.rtp = []
    if (!m.fmtp) m.fmtp = []
    return sdp
  }

  private negotiated(sdp: SessionDescription, m: MediaDescription, codec: NegotiatedCodec, recv: NegotiatedCodec[], want: Direction): NegotiatedMedia {
    const address = m.connection?.ip ?? sdp.connection?.ip
    if (!address) throw new SdpError('no connection address')
    const dtmfPts = m.rtp.filter((r) => r.codec.toLowerCase() === 'telephone-event').map((r) => ({ pt: r.payload, rate: r.rate ?? 8000 }))
    // RFC 4733 §2.1: prefer the event clock that matches the audio clock.
    const dtmf = dtmfPts.find((d) => d.rate === codec.clockRate) ?? dtmfPts[0]
    const rtcpMux = this.opts.rtcpMux && m.rtcpMux === 'rtcp-mux'
    const remoteDirection = m.port === 0 ? 'inactive' : mediaDirection(sdp, m)
    return {
      codec,
      receiveCodecs: recv,
      dtmfPayloadType: dtmf?.pt ?? null,
      dtmfReceivePayloadTypes: dtmfPts.map((d) => d.pt),
      remoteAddress: address,
      remoteRtpPort: m.port,
      remoteRtcpPort: rtcpMux ? m.port : (m.rtcp?.port ?? m.port + 1),
      rtcpMux,
      direction: combineDirections(want, remoteDirection),
      ptime: m.ptime ?? 20,
    }
  }
}
