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
import type { SampleRate } from '../media/frame.ts'

// opus_defines.h CTL request numbers (stable ABI).
const OPUS_SET_MAX_BANDWIDTH = 4004
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

export class OpusCodecCore {
  readonly sampleRate: SampleRate
  private readonly enc: OpusEncoder
  private readonly dec: OpusEncoder
  /** Reused input buffer for the encoder (libopus reads PCM from a Buffer). */
  private readonly pcmBuf: Buffer
  private readonly frameSamples: number

  constructor(sampleRate: SampleRate, params: OpusParams = {}) {
    this.sampleRate = sampleRate
    this.frameSamples = sampleRate / 50
    this.enc = new OpusEncoder(sampleRate, 1)
    this.dec = new OpusEncoder(sampleRate, 1)
    this.pcmBuf = Buffer.alloc(this.frameSamples * 2)
    if (params.maxAverageBitrate) this.enc.setBitrate(Math.max(6000, Math.min(510000, params.maxAverageBitrate)))
    else this.enc.setBitrate(sampleRate >= 16000 ? 32000 : 16000)
    if (params.useInbandFec) {
      this.enc.applyEncoderCTL(OPUS_SET_INBAND_FEC, 1)
      this.enc.applyEncoderCTL(OPUS_SET_PACKET_LOSS_PERC, 10)
    }
    if (params.useDtx) this.enc.applyEncoderCTL(OPUS_SET_DTX, 1)
    if (params.maxPlaybackRate) this.enc.applyEncoderCTL(OPUS_SET_MAX_BANDWIDTH, bandwidthFor(params.maxPlaybackRate))
  }

  encode(pcm: Int16Array, out: Uint8Array): number {
    const n = Math.min(pcm.length, this.frameSamples)
    const b = this.pcmBuf
    for (let i = 0, j = 0; i < n; i++, j += 2) b.writeInt16LE(pcm[i]!, j)
    const packet = this.enc.encode(b)
    out.set(packet)
    return packet.length
  }

  decode(payload: Uint8Array, out: Int16Array): number {
    const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
    const pcm = this.dec.decode(buf)
    const n = Math.min(out.length, pcm.length >> 1)
    for (let i = 0; i < n; i++) out[i] = pcm.readInt16LE(i * 2)
    return n
  }

  /**
   * Packet loss concealment: an empty packet makes libopus run its PLC
   * (opus_decode with len 0). The binding decodes up to its maximum frame size,
   * so keep only one 20 ms frame.
   */
  conceal(out: Int16Array): number {
    try {
      const pcm = this.dec.decode(Buffer.alloc(0))
      const n = Math.min(this.frameSamples, out.length, pcm.length >> 1)
      for (let i = 0; i < n; i++) out[i] = pcm.readInt16LE(i * 2)
      for (let i = n; i < this.frameSamples; i++) out[i] = 0
    } catch {
      out.fill(0, 0, this.frameSamples)
    }
    return this.frameSamples
  }
}
