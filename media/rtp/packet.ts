/**
 * RTP fixed header (RFC 3550 §5.1) parsed in place into a reusable view and
 * written into caller-owned buffers: nothing is allocated per packet.
 */

export const RTP_HEADER_SIZE = 12

export type RtpParseError = 'short' | 'version' | 'padding' | 'extension' | 'csrc'

/** Mutable view of one RTP packet; `parse` overwrites it. */
export class RtpPacketView {
  marker = false
  payloadType = 0
  sequence = 0
  timestamp = 0
  ssrc = 0
  payloadOffset = 0
  payloadLength = 0
  /** The datagram the view was parsed from (not copied). */
  buf: Uint8Array = new Uint8Array(0)

  /** Returns null on success, or why the datagram is not valid RTP. */
  parse(buf: Uint8Array, length = buf.length): RtpParseError | null {
    if (length < RTP_HEADER_SIZE) return 'short'
    const b0 = buf[0]!
    if (b0 >> 6 !== 2) return 'version'
    const cc = b0 & 0x0f
    let offset = RTP_HEADER_SIZE + cc * 4
    if (offset > length) return 'csrc'
    if (b0 & 0x10) {
      // §5.3.1 header extension: 16-bit profile, 16-bit length in words.
      if (offset + 4 > length) return 'extension'
      const words = (buf[offset + 2]! << 8) | buf[offset + 3]!
      offset += 4 + words * 4
      if (offset > length) return 'extension'
    }
    let end = length
    if (b0 & 0x20) {
      // §5.1 padding: last octet counts padding octets including itself.
      const pad = buf[length - 1]!
      if (pad === 0 || offset + pad > length) return 'padding'
      end -= pad
    }
    const b1 = buf[1]!
    this.marker = (b1 & 0x80) !== 0
    this.payloadType = b1 & 0x7f
    this.sequence = (buf[2]! << 8) | buf[3]!
    this.timestamp = ((buf[4]! << 24) | (buf[5]! << 16) | (buf[6]! << 8) | buf[7]!) >>> 0
    this.ssrc = ((buf[8]! << 24) | (buf[9]! << 16) | (buf[10]! << 8) | buf[11]!) >>> 0
    this.payloadOffset = offset
    this.payloadLength = end - offset
    this.buf = buf
    return null
  }

  payload(): Uint8Array {
    return this.buf.subarray(this.payloadOffset, this.payloadOffset + this.payloadLength)
  }
}

/** Writes a 12-byte header (no CSRC, no extension) and returns its size. */
export function writeRtpHeader(out: Uint8Array, payloadType: number, marker: boolean, sequence: number, timestamp: number, ssrc: number): number {
  out[0] = 0x80
  out[1] = (marker ? 0x80 : 0) | (payloadType & 0x7f)
  out[2] = (sequence >> 8) & 0xff
  out[3] = sequence & 0xff
  out[4] = (timestamp >>> 24) & 0xff
  out[5] = (timestamp >>> 16) & 0xff
  out[6] = (timestamp >>> 8) & 0xff
  out[7] = timestamp & 0xff
  out[8] = (ssrc >>> 24) & 0xff
  out[9] = (ssrc >>> 16) & 0xff
  out[10] = (ssrc >>> 8) & 0xff
  out[11] = ssrc & 0xff
  return RTP_HEADER_SIZE
}

/**
 * RFC 5761 §4: with rtcp-mux, a second octet in 192..223 (RTCP packet types
 * 192–223 map onto RTP payload types 64–95, which must not be used) is RTCP.
 */
export function looksLikeRtcp(buf: Uint8Array, length = buf.length): boolean {
  if (length < 8 || buf[0]! >> 6 !== 2) return false
  const pt = buf[1]!
  return pt >= 192 && pt <= 223
}

/** Signed distance a−b between 16-bit sequence numbers (RFC 3550 A.1 wrap handling). */
export function seqDiff(a: number, b: number): number {
  const d = (a - b) & 0xffff
  return d >= 0x8000 ? d - 0x10000 : d
}
