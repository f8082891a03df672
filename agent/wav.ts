/**
 * Minimal RIFF/WAVE parsing for engines that stream WAV on stdout (espeak-ng
 * --stdout writes a header with a bogus length first, then PCM as it is made).
 */
export interface WavFormat {
  sampleRate: number
  channels: number
  bitsPerSample: number
  /** Byte offset where PCM data starts. */
  dataOffset: number
}

/** Returns undefined until enough bytes have arrived to see the `data` chunk. */
export function parseWavHeader(buf: Buffer): WavFormat | undefined {
  if (buf.length < 12) return undefined
  if (buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') {
    throw new Error('not a RIFF/WAVE stream')
  }
  let off = 12
  let fmt: Omit<WavFormat, 'dataOffset'> | undefined
  while (off + 8 <= buf.length) {
    const id = buf.toString('ascii', off, off + 4)
    const size = buf.readUInt32LE(off + 4)
    if (id === 'fmt ') {
      if (off + 8 + 16 > buf.length) return undefined
      fmt = {
        channels: buf.readUInt16LE(off + 10),
        sampleRate: buf.readUInt32LE(off + 12),
        bitsPerSample: buf.readUInt16LE(off + 22),
      }
    } else if (id === 'data') {
      if (!fmt) throw new Error('WAV data before fmt')
      return { ...fmt, dataOffset: off + 8 }
    }
    off += 8 + size + (size & 1)
  }
  return undefined
}

/** Little-endian 16-bit PCM bytes → Int16Array (copies; handles odd offsets). */
export function bytesToInt16(bytes: Buffer): Int16Array {
  const n = bytes.length >> 1
  const out = new Int16Array(n)
  for (let i = 0; i < n; i++) out[i] = bytes.readInt16LE(i * 2)
  return out
}

export function int16ToBytes(samples: Int16Array): Buffer {
  return Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength)
}

export function encodeWav(samples: Int16Array, sampleRate: number): Buffer {
  const data = int16ToBytes(samples)
  const h = Buffer.alloc(44)
  h.write('RIFF', 0, 'ascii')
  h.writeUInt32LE(36 + data.length, 4)
  h.write('WAVE', 8, 'ascii')
  h.write('fmt ', 12, 'ascii')
  h.writeUInt32LE(16, 16)
  h.writeUInt16LE(1, 20)
  h.writeUInt16LE(1, 22)
  h.writeUInt32LE(sampleRate, 24)
  h.writeUInt32LE(sampleRate * 2, 28)
  h.writeUInt16LE(2, 32)
  h.writeUInt16LE(16, 34)
  h.write('data', 36, 'ascii')
  h.writeUInt32LE(data.length, 40)
  return Buffer.concat([h, data])
}
