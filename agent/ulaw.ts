/**
 * G.711 μ-law for the websocket agent type (Twilio Media Streams carries
 * audio/x-mulaw at 8 kHz). Private to agent/ so this module does not depend on
 * codecs/ internals that are being built in parallel; it is the textbook
 * algorithm (bias 0x84, clip 32635), bit-exact with the ITU reference.
 */
const BIAS = 0x84
const CLIP = 32635

export function ulawEncodeSample(pcm: number): number {
  let s = pcm
  const sign = s < 0 ? 0x80 : 0
  if (s < 0) s = -s
  if (s > CLIP) s = CLIP
  s += BIAS
  let exponent = 7
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent--
  const mantissa = (s >> (exponent + 3)) & 0x0f
  return ~(sign | (exponent << 4) | mantissa) & 0xff
}

export function ulawDecodeSample(u: number): number {
  const v = ~u & 0xff
  const sign = v & 0x80
  const exponent = (v >> 4) & 0x07
  const mantissa = v & 0x0f
  const s = (((mantissa << 3) + BIAS) << exponent) - BIAS
  return sign ? -s : s
}

export function ulawEncode(pcm: Int16Array): Uint8Array {
  const out = new Uint8Array(pcm.length)
  for (let i = 0; i < pcm.length; i++) out[i] = ulawEncodeSample(pcm[i]!)
  return out
}

export function ulawDecode(bytes: Uint8Array): Int16Array {
  const out = new Int16Array(bytes.length)
  for (let i = 0; i < bytes.length; i++) out[i] = ulawDecodeSample(bytes[i]!)
  return out
}
