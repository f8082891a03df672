/**
 * Codec registry: one `AudioCodec` per RTP stream direction pair (encoder and
 * decoder state together), created from the negotiated SDP rtpmap/fmtp.
 *
 * Every codec works in 20 ms frames of mono Int16 PCM at `sampleRate` and
 * writes into caller-owned buffers, so the packet path allocates nothing (Opus
 * excepted: the native binding returns fresh Buffers).
 */
import type { SampleRate } from '../audio/frame.ts'
import { decodeAlaw, decodeUlaw, encodeAlaw, encodeUlaw } from './g711.ts'
import { G722Decoder, G722Encoder } from './g722.ts'
import { decodeL16, encodeL16 } from './l16.ts'
import { OpusCodecCore, parseOpusFmtp } from './opus.ts'
import { PitchConcealer } from './plc.ts'

export type CodecName = 'PCMU' | 'PCMA' | 'G722' | 'opus' | 'L16'

export interface AudioCodec {
  readonly name: CodecName
  /** RTP timestamp clock (RFC 3551 §4.5: G.722 is 8000 although it samples at 16k). */
  readonly clockRate: number
  /** PCM rate of frames going in and out. */
  readonly sampleRate: SampleRate
  /** Samples per 20 ms frame at sampleRate. */
  readonly frameSamples: number
  /** RTP timestamp increment per 20 ms frame. */
  readonly timestampStep: number
  /** Largest payload one 20 ms frame can encode to. */
  readonly maxPayload: number
  encode(pcm: Int16Array, out: Uint8Array): number
  /** Decodes one payload; returns samples written (may differ from frameSamples for other ptimes). */
  decode(payload: Uint8Array, out: Int16Array): number
  /** Fills one frame for a lost packet; returns samples written. */
  conceal(out: Int16Array): number
}

export interface CodecSpec {
  name: string
  clockRate?: number
  channels?: number
  fmtp?: string
  /** For Opus: PCM rate of frames (8/16/24/48k); default 48000. The RTP
   * clock stays 48 kHz (RFC 7587 §4.1); a narrowband rate skips resampling
   * when the other side of a bridge is G.711. */
  sampleRate?: SampleRate
  /** For Opus: encoder complexity 0–10; default from defaultOpusComplexity(sampleRate). */
  opusComplexity?: number
}

/** Static RTP payload types, RFC 3551 §6 table 4. */
export const STATIC_PAYLOAD_TYPES: Record<string, number> = { PCMU: 0, PCMA: 8, G722: 9 }

class G711Codec implements AudioCodec {
  readonly clockRate = 8000
  readonly sampleRate = 8000 as const
  readonly frameSamples = 160
  readonly timestampStep = 160
  readonly maxPayload = 160
  private readonly plc = new PitchConcealer(8000, 160)
  constructor(readonly name: 'PCMU' | 'PCMA') {}
  encode(pcm: Int16Array, out: Uint8Array): number {
    return this.name === 'PCMU' ? encodeUlaw(pcm, out, this.frameSamples) : encodeAlaw(pcm, out, this.frameSamples)
  }
  decode(payload: Uint8Array, out: Int16Array): number {
    const n = Math.min(payload.length, out.length)
    if (this.name === 'PCMU') decodeUlaw(payload, out, n)
    else decodeAlaw(payload, out, n)
    if (n > 0) this.plc.remember(out, n)
    return n
  }
  conceal(out: Int16Array): number { return this.plc.conceal(out) }
}

class G722Codec implements AudioCodec {
  readonly name = 'G722' as const
  readonly clockRate = 8000
  readonly sampleRate = 16000 as const
  readonly frameSamples = 320
  readonly timestampStep = 160
  readonly maxPayload = 160
  private readonly enc = new G722Encoder()
  private readonly dec = new G722Decoder()
  private readonly plc = new PitchConcealer(16000, 320)
  encode(pcm: Int16Array, out: Uint8Array): number { return this.enc.encode(pcm, out, this.frameSamples) }
  decode(payload: Uint8Array, out: Int16Array): number {
    const n = this.dec.decode(payload, out, Math.min(payload.length, out.length >> 1))
    if (n > 0) this.plc.remember(out, n)
    return n
  }
  conceal(out: Int16Array): number { return this.plc.conceal(out) }
}

class L16Codec implements AudioCodec {
  readonly name = 'L16' as const
  readonly frameSamples: number
  readonly timestampStep: number
  readonly maxPayload: number
  private readonly plc: PitchConcealer
  constructor(readonly sampleRate: SampleRate, readonly clockRate: number = sampleRate) {
    this.frameSamples = sampleRate / 50
    this.timestampStep = this.frameSamples
    this.maxPayload = this.frameSamples * 2
    this.plc = new PitchConcealer(sampleRate, this.frameSamples)
  }
  encode(pcm: Int16Array, out: Uint8Array): number { return encodeL16(pcm, out, this.frameSamples) }
  decode(payload: Uint8Array, out: Int16Array): number {
    const n = decodeL16(payload, out, Math.min(payload.length, out.length * 2))
    if (n > 0) this.plc.remember(out, n)
    return n
  }
  conceal(out: Int16Array): number { return this.plc.conceal(out) }
}

class OpusCodec implements AudioCodec {
  readonly name = 'opus' as const
  readonly clockRate = 48000
  readonly frameSamples: number
  readonly timestampStep = 960
  readonly maxPayload = 1275 // RFC 6716 §3.4 R2: maximum frame length
  private readonly core: OpusCodecCore
  constructor(readonly sampleRate: SampleRate, fmtp: string | undefined, complexity?: number) {
    this.frameSamples = sampleRate / 50
    this.core = new OpusCodecCore(sampleRate, { ...parseOpusFmtp(fmtp), complexity })
  }
  encode(pcm: Int16Array, out: Uint8Array): number { return this.core.encode(pcm, out) }
  decode(payload: Uint8Array, out: Int16Array): number { return this.core.decode(payload, out) }
  conceal(out: Int16Array): number { return this.core.conceal(out) }
}

export function isSupportedCodec(name: string): boolean {
  return ['PCMU', 'PCMA', 'G722', 'OPUS', 'L16'].includes(name.toUpperCase())
}

export function createCodec(spec: CodecSpec): AudioCodec {
  switch (spec.name.toUpperCase()) {
    case 'PCMU': return new G711Codec('PCMU')
    case 'PCMA': return new G711Codec('PCMA')
    case 'G722': return new G722Codec()
    case 'OPUS': return new OpusCodec(spec.sampleRate ?? 48000, spec.fmtp, spec.opusComplexity)
    case 'L16': {
      const rate = spec.clockRate ?? 8000
      if (rate !== 8000 && rate !== 16000 && rate !== 24000 && rate !== 48000) throw new RangeError(`L16 at ${rate} Hz not supported`)
      return new L16Codec(rate)
    }
    default: throw new RangeError(`unsupported codec ${spec.name}`)
  }
}

export * from './g711.ts'
export * from './l16.ts'
export { G722Encoder, G722Decoder } from './g722.ts'
export { OpusCodecCore, defaultOpusComplexity, parseOpusFmtp, type OpusParams } from './opus.ts'
export { Resampler } from './resampler.ts'
export { StreamResampler, resample } from './stream-resampler.ts'
export * from './dtmf.ts'
export { PitchConcealer } from './plc.ts'
