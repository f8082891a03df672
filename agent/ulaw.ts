/**
 * G.711 μ-law for the websocket agent type (Twilio Media Streams carries
 * audio/x-mulaw at 8 kHz): whole-buffer helpers over the codec tables in
 * codecs/g711.ts, which own the actual companding.
 */
import { ULAW_DECODE, ULAW_ENCODE, decodeUlaw, encodeUlaw } from '../codecs/g711.ts'

export function ulawEncodeSample(pcm: number): number {
  return ULAW_ENCODE[pcm & 0xffff]!
}

export function ulawDecodeSample(u: number): number {
  return ULAW_DECODE[u & 0xff]!
}

export function ulawEncode(pcm: Int16Array): Uint8Array {
  const out = new Uint8Array(pcm.length)
  encodeUlaw(pcm, out)
  return out
}

export function ulawDecode(bytes: Uint8Array): Int16Array {
  const out = new Int16Array(bytes.length)
  decodeUlaw(bytes, out)
  return out
}
