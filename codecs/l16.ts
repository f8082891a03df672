/**
 * L16: linear 16-bit PCM in network byte order (RFC 3551 §4.5.11). Frames are
 * host-order Int16Array, so every sample is byte-swapped on the wire.
 */

export function encodeL16(pcm: Int16Array, out: Uint8Array, count = pcm.length): number {
  for (let i = 0, j = 0; i < count; i++, j += 2) {
    const s = pcm[i]!
    out[j] = (s >> 8) & 0xff
    out[j + 1] = s & 0xff
  }
  return count * 2
}

export function decodeL16(payload: Uint8Array, out: Int16Array, byteCount = payload.length): number {
  const n = byteCount >> 1
  for (let i = 0, j = 0; i < n; i++, j += 2) {
    out[i] = (payload[j]! << 8) | payload[j + 1]!
  }
  return n
}

/** Little-endian variant, used by WAV files and the raw-L16 WebSocket fork. */
export function encodeL16le(pcm: Int16Array, out: Uint8Array, count = pcm.length): number {
  for (let i = 0, j = 0; i < count; i++, j += 2) {
    const s = pcm[i]!
    out[j] = s & 0xff
    out[j + 1] = (s >> 8) & 0xff
  }
  return count * 2
}

export function decodeL16le(payload: Uint8Array, out: Int16Array, byteCount = payload.length): number {
  const n = byteCount >> 1
  for (let i = 0, j = 0; i < n; i++, j += 2) {
    out[i] = (payload[j + 1]! << 8) | payload[j]!
  }
  return n
}

/** Little-endian PCM16 bytes → a new Int16Array (an odd last byte is ignored); off the packet path. */
export function pcmFromL16le(bytes: Uint8Array): Int16Array {
  const pcm = new Int16Array(bytes.length >> 1)
  decodeL16le(bytes, pcm)
  return pcm
}

/** Int16 samples → new little-endian PCM16 bytes; off the packet path. */
export function pcmToL16le(pcm: Int16Array): Uint8Array {
  const bytes = new Uint8Array(pcm.length * 2)
  encodeL16le(pcm, bytes)
  return bytes
}
