/**
 * Opus (RFC 6716) over RTP (RFC 7587) through @discordjs/opus (libopus).
 *
 * The RTP clock is always 48 kHz (RFC 7587 §4.1) whatever the PCM rate we ask
 * libopus to produce; frames can be decoded straight at 16 kHz for an agent
 * pipeline so no resampler is needed. We always encode mono: `stereo=1` in the
 * fmtp only states the receiver's preference (RFC 7587 §6.1) and mono is
 * always acceptable; the decoder downmixes a stereo stream.
 */
import { createRequire } from 'node:module'
import type { OpusEncoder as OpusEncoderType } from '@discordjs/opus'

// The binding is CommonJS with a native addon; named ESM imports are not
// statically detectable, so load it through require.
const { OpusEncoder } = createRequire(import.meta.url)('@discordjs/opus') as { OpusEncoder: typeof OpusEncoderType }
type OpusEncoder = OpusEncoderType
import type { SampleRate } from '../audio/frame.ts'

// opus_defines.h CTL request numbers (stable ABI).
const OPUS_SET_MAX_BANDWIDTH = 4004
const OPUS_SET_COMPLEXITY = 4010
const OPUS_SET_INBAND_FEC = 4012
const OPUS_SET_PACKET_LOSS_PERC = 4014
const OPUS_SET_DTX = 4016
const BANDWIDTH_NB = 1101
const BANDWIDTH_MB = 1102
const BANDWIDTH_WB = 1103
const BANDWIDTH_SWB = 1104
const BANDWIDTH_FB = 1105

/** The fmtp parameters of RFC 7587 §6.1 we act on. */
export interface OpusParams {
  /** Remote wants stereo; we still send mono (allowed), recorded for SDP. */
  stereo?: boolean
  /** useinbandfec=1: encode LBRR so the peer can recover a lost packet. */
  useInbandFec?: boolean
  /** usedtx=1: allow discontinuous transmission in silence. */
  useDtx?: boolean
  /** maxplaybackrate: cap the encoded audio bandwidth. */
  maxPlaybackRate?: number
  /** maxaveragebitrate in bit/s. */
  maxAverageBitrate?: number
  /** Encoder complexity 0–10 (not an fmtp parameter: a local CPU/quality choice). */
  complexity?: number
}

export function parseOpusFmtp(fmtp: string | undefined): OpusParams {
  const p: OpusParams = {}
  if (!fmtp) return p
  for (const part of fmtp.split(';')) {
    const [kRaw, vRaw] = part.split('=')
    const k = kRaw?.trim().toLowerCase()
    const v = vRaw?.trim() ?? ''
    if (k === 'stereo') p.stereo = v === '1'
    else if (k === 'useinbandfec') p.useInbandFec = v === '1'
    else if (k === 'usedtx') p.useDtx = v === '1'
    else if (k === 'maxplaybackrate' && Number(v) > 0) p.maxPlaybackRate = Number(v)
    else if (k === 'maxaveragebitrate' && Number(v) > 0) p.maxAverageBitrate = Number(v)
  }
  return p
}

function bandwidthFor(rate: number): number {
  if (rate <= 8000) return BANDWIDTH_NB
  if (rate <= 12000) return BANDWIDTH_MB
  if (rate <= 16000) return BANDWIDTH_WB
  if (rate <= 24000) return BANDWIDTH_SWB
  return BANDWIDTH_FB
}

/**
 * A TOC-only packet (RFC 6716 §3.1: config 1 = SILK NB 20 ms, mono, code 0)
 * carries one empty frame. libopus decodes a frame of ≤ 1 byte as lost and
 * conceals exactly the TOC's duration in the previous packet's mode (the
 * same path as DTX), so this yields one 20 ms PLC frame. An empty packet
 * would instead conceal the binding's whole output buffer (5760 samples:
 * 720 ms at 8 kHz, 36× the work) and push the decoder's clock that far ahead.
 */
const PLC_PACKET = Buffer.from([0x08])

/** Default encoder complexity (0–10). Measured on this project's bench box
 * (2 × EPYC vCPU): at 8 kHz, 10 → ~95 µs per 20 ms frame, 3 → ~42 µs,
 * 1 → ~22 µs, with round-trip SNR within 1 dB of complexity 10 for narrowband
 * and ~3 dB lower for wideband. Transcoding density is the reason for a low
 * default; `complexity` in OpusParams overrides it. */
export function defaultOpusComplexity(sampleRate: number): number {
  return sampleRate <= 8000 ? 1 : sampleRate <= 16000 ? 3 : 5
}

export class OpusCodecCore {
  readonly sampleRate: SampleRate
  readonly complexity: number
  /** One binding object holds both libopus states (it creates the encoder and
   * the decoder lazily on first use); one instead of two saves its 11.5 KB
   * PCM output buffer and 3.8 KB packet buffer per session. */
  private readonly native: OpusEncoder
  /** Reused input buffer for the encoder (libopus reads PCM from a Buffer). */
  private readonly pcmBuf: Buffer
  /** Int16 view over pcmBuf: libopus reads host-endian int16, and every
   * platform Node runs this engine on (x64, arm64) is little-endian. */
  private readonly pcmView: Int16Array
  private readonly frameSamples: number

  private readonly params: OpusParams
  private encoderReady = false

  constructor(sampleRate: SampleRate, params: OpusParams = {}) {
    this.sampleRate = sampleRate
    this.frameSamples = sampleRate / 50
    this.native = new OpusEncoder(sampleRate, 1)
    this.pcmBuf = Buffer.alloc(this.frameSamples * 2)
    this.pcmView = new Int16Array(this.pcmBuf.buffer, this.pcmBuf.byteOffset, this.frameSamples)
    this.params = params
    this.complexity = Math.max(0, Math.min(10, Math.round(params.complexity ?? defaultOpusComplexity(sampleRate))))
  }

  /**
   * The binding creates the libopus encoder on the first encoder call of any
   * kind (a CTL included), and it is the largest part of an Opus session
   * (~45 KiB touched, against ~19 KiB for the decoder). So the CTLs wait for
   * the first frame to encode: a leg that never sends (recvonly, held, or
   * relaying a same-codec bridge) never allocates it.
   */
  private ensureEncoder(): void {
    this.encoderReady = true
    const enc = this.native
    const params = this.params
    enc.applyEncoderCTL(OPUS_SET_COMPLEXITY, this.complexity)
    if (params.maxAverageBitrate) enc.setBitrate(Math.max(6000, Math.min(510000, params.maxAverageBitrate)))
    else enc.setBitrate(this.sampleRate >= 16000 ? 32000 : 16000)
    if (params.useInbandFec) {
      enc.applyEncoderCTL(OPUS_SET_INBAND_FEC, 1)
      enc.applyEncoderCTL(OPUS_SET_PACKET_LOSS_PERC, 10)
    }
    if (params.useDtx) enc.applyEncoderCTL(OPUS_SET_DTX, 1)
    if (params.maxPlaybackRate) enc.applyEncoderCTL(OPUS_SET_MAX_BANDWIDTH, bandwidthFor(params.maxPlaybackRate))
  }

  /** Whether the libopus encoder state exists yet (it is created by the first encode()). */
  get hasEncoder(): boolean { return this.encoderReady }

  encode(pcm: Int16Array, out: Uint8Array): number {
    const n = Math.min(pcm.length, this.frameSamples)
    const v = this.pcmView
    if (n === pcm.length && n === v.length) v.set(pcm)
    else { for (let i = 0; i < n; i++) v[i] = pcm[i]!; v.fill(0, n) }
    if (!this.encoderReady) this.ensureEncoder()
    const packet = this.native.encode(this.pcmBuf)
    out.set(packet)
    return packet.length
  }

  decode(payload: Uint8Array, out: Int16Array): number {
    const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
    return this.copyOut(this.native.decode(buf), out, out.length)
  }

  /**
   * Packet loss concealment for one 20 ms frame with libopus's own PLC (see
   * PLC_PACKET). In-band FEC (decode of the next packet with decode_fec=1,
   * RFC 6716 §2.1.7) is not reachable: @discordjs/opus 0.10 always passes
   * decode_fec=0, so a lost packet is concealed, never recovered.
   */
  conceal(out: Int16Array): number {
    let n = 0
    try {
      n = this.copyOut(this.native.decode(PLC_PACKET), out, Math.min(this.frameSamples, out.length))
    } catch { /* no packet decoded yet: nothing to extrapolate from */ }
    out.fill(0, n, this.frameSamples)
    return this.frameSamples
  }

  private copyOut(pcm: Buffer, out: Int16Array, max: number): number {
    const n = Math.min(max, pcm.length >> 1)
    if ((pcm.byteOffset & 1) === 0) out.set(new Int16Array(pcm.buffer, pcm.byteOffset, n))
    else for (let i = 0; i < n; i++) out[i] = pcm.readInt16LE(i * 2)
    return n
  }
}
