/**
 * RIFF/WAVE files: the one reader and writer. The recorder writes 16-bit PCM
 * with a header it rewrites as it goes, playback reads whole files (PCM 16/8
 * bit, µ-law, A-law, any channel count), and the espeak-ng adapter reads the
 * header of a stream that is still arriving.
 *
 * Layout (Microsoft RIFF, "WAVE" form): a `fmt ` chunk (format tag 1 PCM,
 * 6 A-law, 7 µ-law, 0xFFFE extensible with the tag in its subformat) and a
 * `data` chunk; chunks are padded to even length.
 */
import { decodeAlaw, decodeUlaw } from '../codecs/g711.ts'
import { encodeL16le } from '../codecs/l16.ts'

/** Size of the canonical header `writeWavHeader` writes (RIFF + fmt + data chunk headers). */
export const WAV_HEADER_BYTES = 44

export interface WavFormat {
  sampleRate: number
  channels: number
  bitsPerSample: number
  /** Byte offset where the sample data starts. */
  dataOffset: number
}

export interface DecodedAudio { pcm: Int16Array; sampleRate: number }

const tag = (buf: Uint8Array, o: number): string => String.fromCharCode(buf[o]!, buf[o + 1]!, buf[o + 2]!, buf[o + 3]!)

/**
 * The format of a WAV that is still arriving (espeak-ng --stdout writes a
 * header with a bogus length first, then PCM as it is made): undefined until
 * the `data` chunk's header is in `buf`.
 */
export function parseWavHeader(buf: Uint8Array): WavFormat | undefined {
  if (buf.length < 12) return undefined
  if (tag(buf, 0) !== 'RIFF' || tag(buf, 8) !== 'WAVE') throw new Error('not a RIFF/WAVE stream')
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  let off = 12
  let fmt: Omit<WavFormat, 'dataOffset'> | undefined
  while (off + 8 <= buf.length) {
    const id = tag(buf, off)
    const size = dv.getUint32(off + 4, true)
    if (id === 'fmt ') {
      if (off + 8 + 16 > buf.length) return undefined
      fmt = { channels: dv.getUint16(off + 10, true), sampleRate: dv.getUint32(off + 12, true), bitsPerSample: dv.getUint16(off + 22, true) }
    } else if (id === 'data') {
      if (!fmt) throw new Error('WAV data before fmt')
      return { ...fmt, dataOffset: off + 8 }
    }
    off += 8 + size + (size & 1)
  }
  return undefined
}

/** Decodes a whole WAV file to mono Int16 (channels averaged). */
export function parseWav(buf: Uint8Array): DecodedAudio {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  if (buf.length < 12 || tag(buf, 0) !== 'RIFF' || tag(buf, 8) !== 'WAVE') throw new Error('not a WAV file')
  let o = 12
  let format = 0, channels = 1, rate = 8000, bits = 16
  let data: Uint8Array | null = null
  while (o + 8 <= buf.length) {
    const id = tag(buf, o)
    let size = dv.getUint32(o + 4, true)
    const body = o + 8
    // A crashed writer leaves a zero or oversize data length: take what is there.
    if (id === 'data' && (size === 0 || body + size > buf.length)) size = buf.length - body
    if (id === 'fmt ') {
      format = dv.getUint16(body, true)
      channels = dv.getUint16(body + 2, true)
      rate = dv.getUint32(body + 4, true)
      bits = dv.getUint16(body + 14, true)
      if (format === 0xfffe && size >= 26) format = dv.getUint16(body + 24, true) // WAVE_FORMAT_EXTENSIBLE subformat
    } else if (id === 'data') {
      data = buf.subarray(body, body + size)
    }
    o = body + size + (size & 1)
  }
  if (!data) throw new Error('WAV has no data chunk')
  const frames = format === 1 ? Math.floor(data.length / (channels * bits / 8)) : Math.floor(data.length / channels)
  const mono = new Int16Array(frames)
  const ddv = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const tmp = new Int16Array(1)
  for (let i = 0; i < frames; i++) {
    let acc = 0
    for (let c = 0; c < channels; c++) {
      const idx = i * channels + c
      if (format === 1 && bits === 16) acc += ddv.getInt16(idx * 2, true)
      else if (format === 1 && bits === 8) acc += (data[idx]! - 128) << 8
      else if (format === 7) { decodeUlaw(data.subarray(idx, idx + 1), tmp, 1); acc += tmp[0]! }
      else if (format === 6) { decodeAlaw(data.subarray(idx, idx + 1), tmp, 1); acc += tmp[0]! }
      else throw new Error(`unsupported WAV format ${format}/${bits}`)
    }
    mono[i] = Math.round(acc / channels)
  }
  return { pcm: mono, sampleRate: rate }
}

/** Writes the 44-byte header of a 16-bit PCM WAV into `h` (the recorder rewrites it as data grows). */
export function writeWavHeader(h: Buffer, sampleRate: number, channels: number, dataBytes: number): void {
  const blockAlign = channels * 2
  h.write('RIFF', 0, 'ascii')
  h.writeUInt32LE(36 + dataBytes, 4)
  h.write('WAVE', 8, 'ascii')
  h.write('fmt ', 12, 'ascii')
  h.writeUInt32LE(16, 16)
  h.writeUInt16LE(1, 20) // PCM
  h.writeUInt16LE(channels, 22)
  h.writeUInt32LE(sampleRate, 24)
  h.writeUInt32LE(sampleRate * blockAlign, 28)
  h.writeUInt16LE(blockAlign, 32)
  h.writeUInt16LE(16, 34)
  h.write('data', 36, 'ascii')
  h.writeUInt32LE(dataBytes, 40)
}

/** A whole mono 16-bit PCM WAV file. */
export function encodeWav(samples: Int16Array, sampleRate: number): Buffer {
  const file = Buffer.alloc(WAV_HEADER_BYTES + samples.length * 2)
  writeWavHeader(file, sampleRate, 1, samples.length * 2)
  encodeL16le(samples, file.subarray(WAV_HEADER_BYTES))
  return file
}
