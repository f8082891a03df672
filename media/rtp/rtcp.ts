/**
 * RTCP (RFC 3550 §6): compound SR/RR + SDES CNAME packets written into a
 * preallocated buffer, and parsing of SR/RR/BYE from the peer to derive
 * round-trip time (§6.4.1 LSR/DLSR), remote-reported loss and jitter.
 */

export const RTCP_SR = 200
export const RTCP_RR = 201
export const RTCP_SDES = 202
export const RTCP_BYE = 203

/** NTP timestamp (RFC 3550 §4) as [seconds since 1900, fraction]. */
export function ntpNow(out: Uint32Array): Uint32Array {
  const ms = performance.timeOrigin + performance.now()
  const secs = Math.floor(ms / 1000)
  out[0] = (secs + 2208988800) >>> 0
  out[1] = Math.floor(((ms - secs * 1000) / 1000) * 2 ** 32) >>> 0
  return out
}

/** The middle 32 bits of an NTP timestamp, used by LSR/DLSR (§6.4.1). */
export function ntpMiddle(ntp: Uint32Array): number {
  return (((ntp[0]! & 0xffff) << 16) | (ntp[1]! >>> 16)) >>> 0
}

export interface ReportBlockInput {
  ssrc: number
  fractionLost: number
  cumulativeLost: number
  extendedMaxSeq: number
  jitter: number
  lsr: number
  dlsr: number
}

export interface SenderInfoInput {
  rtpTimestamp: number
  packetCount: number
  octetCount: number
}

function w32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff
  b[o + 1] = (v >>> 16) & 0xff
  b[o + 2] = (v >>> 8) & 0xff
  b[o + 3] = v & 0xff
}
function r32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0
}

/**
 * Writes a compound packet: SR (if `sender` given) or RR, with at most one
 * report block, followed by SDES CNAME (§6.1: every compound packet carries
 * CNAME). Returns the length.
 */
export function writeRtcpReport(out: Uint8Array, ssrc: number, ntp: Uint32Array, sender: SenderInfoInput | null, block: ReportBlockInput | null, cname: string): number {
  const rc = block ? 1 : 0
  let o = 0
  const isSr = sender !== null
  const len = (isSr ? 28 : 8) + rc * 24
  out[0] = 0x80 | rc
  out[1] = isSr ? RTCP_SR : RTCP_RR
  out[2] = 0
  out[3] = len / 4 - 1
  w32(out, 4, ssrc)
  o = 8
  if (sender) {
    w32(out, 8, ntp[0]!)
    w32(out, 12, ntp[1]!)
    w32(out, 16, sender.rtpTimestamp)
    w32(out, 20, sender.packetCount)
    w32(out, 24, sender.octetCount)
    o = 28
  }
  if (block) {
    w32(out, o, block.ssrc)
    out[o + 4] = block.fractionLost & 0xff
    const cl = Math.max(-0x800000, Math.min(0x7fffff, block.cumulativeLost)) & 0xffffff
    out[o + 5] = (cl >> 16) & 0xff
    out[o + 6] = (cl >> 8) & 0xff
    out[o + 7] = cl & 0xff
    w32(out, o + 8, block.extendedMaxSeq)
    w32(out, o + 12, Math.round(block.jitter))
    w32(out, o + 16, block.lsr)
    w32(out, o + 20, block.dlsr)
    o += 24
  }
  // SDES chunk: SSRC, CNAME item (type 1), END, pad to 32-bit boundary (§6.5).
  const start = o
  const nameLen = Math.min(255, cname.length)
  const itemsLen = 2 + nameLen + 1
  const chunkLen = 4 + itemsLen
  const padded = (chunkLen + 3) & ~3
  out[o] = 0x81
  out[o + 1] = RTCP_SDES
  const words = (4 + padded) / 4 - 1
  out[o + 2] = (words >> 8) & 0xff
  out[o + 3] = words & 0xff
  w32(out, o + 4, ssrc)
  out[o + 8] = 1
  out[o + 9] = nameLen
  for (let i = 0; i < nameLen; i++) out[o + 10 + i] = cname.charCodeAt(i) & 0x7f
  for (let i = o + 10 + nameLen; i < start + 4 + padded; i++) out[i] = 0
  o = start + 4 + padded
  return o
}

export function writeRtcpBye(out: Uint8Array, ssrc: number): number {
  out[0] = 0x81
  out[1] = RTCP_BYE
  out[2] = 0
  out[3] = 1
  w32(out, 4, ssrc)
  return 8
}

/** What we learned from one incoming compound packet. */
export interface RtcpInfo {
  senderSsrc: number
  /** Middle NTP bits of the peer's SR, or -1 if no SR. */
  srNtpMiddle: number
  /** Report block about our stream, if present. */
  fractionLost: number
  cumulativeLost: number
  jitter: number
  lsr: number
  dlsr: number
  hasBlockForUs: boolean
  bye: boolean
}

/** Parses a compound RTCP packet into `info`; false if malformed (§6.4 validity checks). */
export function parseRtcp(buf: Uint8Array, length: number, ourSsrc: number, info: RtcpInfo): boolean {
  info.srNtpMiddle = -1
  info.hasBlockForUs = false
  info.bye = false
  let o = 0
  let first = true
  while (o + 4 <= length) {
    const b0 = buf[o]!
    if (b0 >> 6 !== 2) return false
    const pt = buf[o + 1]!
    const words = (buf[o + 2]! << 8) | buf[o + 3]!
    const end = o + 4 + words * 4
    if (end > length) return false
    // §6.4 (A.2): the first packet of a compound must be SR or RR.
    if (first && pt !== RTCP_SR && pt !== RTCP_RR) return false
    first = false
    const rc = b0 & 0x1f
    if (pt === RTCP_SR || pt === RTCP_RR) {
      info.senderSsrc = r32(buf, o + 4)
      let bo = o + 8
      if (pt === RTCP_SR) {
        if (o + 28 > end) return false
        info.srNtpMiddle = (((r32(buf, o + 8) & 0xffff) << 16) | (r32(buf, o + 12) >>> 16)) >>> 0
        bo = o + 28
      }
      for (let i = 0; i < rc && bo + 24 <= end; i++, bo += 24) {
        if (r32(buf, bo) !== ourSsrc) continue
        info.hasBlockForUs = true
        info.fractionLost = buf[bo + 4]!
        let cl = (buf[bo + 5]! << 16) | (buf[bo + 6]! << 8) | buf[bo + 7]!
        if (cl & 0x800000) cl -= 0x1000000
        info.cumulativeLost = cl
        info.jitter = r32(buf, bo + 12)
        info.lsr = r32(buf, bo + 16)
        info.dlsr = r32(buf, bo + 20)
      }
    } else if (pt === RTCP_BYE) {
      info.bye = true
    }
    o = end
  }
  return !first
}

/** §6.4.1: RTT = A − LSR − DLSR, in 1/65536 s; returns ms or -1 when unknown. */
export function rttMs(nowMiddle: number, lsr: number, dlsr: number): number {
  if (lsr === 0) return -1
  const rtt = (nowMiddle - lsr - dlsr) >>> 0
  if (rtt > 0x7fffffff) return -1
  return (rtt * 1000) / 65536
}

/**
 * Estimated MOS from the ITU-T G.107 E-model, simplified: delay impairment Id
 * from one-way delay, equipment impairment Ie_eff from codec Ie/Bpl and
 * packet-loss percentage (G.113 Appendix I values).
 */
export function estimateMos(oneWayDelayMs: number, lossPercent: number, codec: string): number {
  const ie = codec === 'G722' ? 0 : codec === 'opus' ? 0 : 0
  const bpl = codec === 'PCMU' || codec === 'PCMA' ? 25.1 : codec === 'opus' ? 30 : 20
  const d = oneWayDelayMs
  const id = 0.024 * d + (d > 177.3 ? 0.11 * (d - 177.3) : 0)
  const ieEff = ie + ((95 - ie) * lossPercent) / (lossPercent + bpl)
  const r = Math.max(0, Math.min(100, 93.2 - id - ieEff))
  const mos = 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)
  return Math.round(Math.max(1, Math.min(4.5, mos)) * 100) / 100
}
