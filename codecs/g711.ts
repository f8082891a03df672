/**
 * G.711 PCMU (µ-law) and PCMA (A-law), ITU-T G.711 / RFC 3551 §4.5.14.
 *
 * Both directions are table lookups built once at module load (DESIGN.md
 * "Hot path"): decode is a 256-entry Int16Array, encode a 65536-entry
 * Uint8Array indexed by the 16-bit sample reinterpreted as unsigned. 128 KiB of
 * tables buys a branch-free encoder that allocates nothing.
 */

const ULAW_BIAS = 0x84
const ULAW_CLIP = 32635

function ulawEncodeSample(pcm: number): number {
  // G.711 §2: µ-law works on 14-bit magnitude; bias makes segment search a log2.
  const sign = pcm < 0 ? 0x80 : 0
  let mag = pcm < 0 ? -pcm : pcm
  if (mag > ULAW_CLIP) mag = ULAW_CLIP
  mag += ULAW_BIAS
  let exponent = 7
  for (let mask = 0x4000; (mag & mask) === 0 && exponent > 0; mask >>= 1) exponent--
  const mantissa = (mag >> (exponent + 3)) & 0x0f
  return ~(sign | (exponent << 4) | mantissa) & 0xff
}

function ulawDecodeSample(code: number): number {
  const u = ~code & 0xff
  const exponent = (u >> 4) & 0x07
  const mantissa = u & 0x0f
  const mag = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS
  return u & 0x80 ? -mag : mag
}

function alawEncodeSample(pcm: number): number {
  // G.711 §3: A-law, 13-bit magnitude, even bits inverted (XOR 0x55).
  let sign = 0x80
  let mag = pcm
  if (mag < 0) { sign = 0; mag = -mag - 1 }
  if (mag > 32767) mag = 32767
  let code: number
  if (mag < 256) {
    code = mag >> 4
  } else {
    let exponent = 1
    for (let m = mag >> 8; m > 1; m >>= 1) exponent++
    code = (exponent << 4) | ((mag >> (exponent + 3)) & 0x0f)
  }
  return (code | sign) ^ 0x55
}

function alawDecodeSample(code: number): number {
  const a = code ^ 0x55
  const exponent = (a >> 4) & 0x07
  const mantissa = a & 0x0f
  let mag = exponent === 0 ? (mantissa << 4) + 8 : ((mantissa << 4) + 0x108) << (exponent - 1)
  return a & 0x80 ? mag : -mag
}

export const ULAW_DECODE = new Int16Array(256)
export const ALAW_DECODE = new Int16Array(256)
export const ULAW_ENCODE = new Uint8Array(65536)
export const ALAW_ENCODE = new Uint8Array(65536)

for (let i = 0; i < 256; i++) {
  ULAW_DECODE[i] = ulawDecodeSample(i)
  ALAW_DECODE[i] = alawDecodeSample(i)
}
for (let i = 0; i < 65536; i++) {
  const s = i < 32768 ? i : i - 65536
  ULAW_ENCODE[i] = ulawEncodeSample(s)
  ALAW_ENCODE[i] = alawEncodeSample(s)
}

/** µ-law silence: the code that decodes to 0. */
export const ULAW_SILENCE = 0xff
/** A-law silence (decodes to ±8, the smallest magnitude). */
export const ALAW_SILENCE = 0xd5

export function encodeUlaw(pcm: Int16Array, out: Uint8Array, count = pcm.length): number {
  for (let i = 0; i < count; i++) out[i] = ULAW_ENCODE[pcm[i]! & 0xffff]!
  return count
}

export function decodeUlaw(payload: Uint8Array, out: Int16Array, count = payload.length): number {
  for (let i = 0; i < count; i++) out[i] = ULAW_DECODE[payload[i]!]!
  return count
}

export function encodeAlaw(pcm: Int16Array, out: Uint8Array, count = pcm.length): number {
  for (let i = 0; i < count; i++) out[i] = ALAW_ENCODE[pcm[i]! & 0xffff]!
  return count
}

export function decodeAlaw(payload: Uint8Array, out: Int16Array, count = payload.length): number {
  for (let i = 0; i < count; i++) out[i] = ALAW_DECODE[payload[i]!]!
  return count
}

/**
 * Direct µ-law ↔ A-law transcoding tables (G.711 Appendix-style via linear),
 * so a PCMU leg bridged to a PCMA leg costs one lookup per byte.
 */
export const ULAW_TO_ALAW = new Uint8Array(256)
export const ALAW_TO_ULAW = new Uint8Array(256)
for (let i = 0; i < 256; i++) {
  ULAW_TO_ALAW[i] = ALAW_ENCODE[ULAW_DECODE[i]! & 0xffff]!
  ALAW_TO_ULAW[i] = ULAW_ENCODE[ALAW_DECODE[i]! & 0xffff]!
}
