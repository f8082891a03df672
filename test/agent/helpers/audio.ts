/**
 * Test audio: real espeak-ng speech, band-limited to the telephone band with
 * sox, cut into 20 ms frames like the media path delivers them.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { samplesPerFrame, type AudioFrame, type SampleRate } from '../../../audio/frame.ts'

const cache = new Map<string, Int16Array>()

/** espeak-ng → sox (300–3400 Hz, `rate` Hz, 16-bit) → PCM. */
export function speechPcm(text: string, rate: SampleRate = 8000, voice = 'en-us'): Int16Array {
  const key = `${voice}|${rate}|${text}`
  const hit = cache.get(key)
  if (hit) return hit
  const dir = mkdtempSync(join(tmpdir(), 'cp-audio-'))
  try {
    const wav = join(dir, 'a.wav')
    const raw = join(dir, 'a.raw')
    execFileSync('espeak-ng', ['-v', voice, '-w', wav, '--', text])
    const band = rate === 8000 ? ['highpass', '300', 'lowpass', '3400'] : []
    execFileSync('sox', [wav, '-t', 'raw', '-e', 'signed', '-b', '16', '-c', '1', raw, ...band, 'rate', String(rate)])
    const buf = readFileSync(raw)
    const pcm = new Int16Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length))
    cache.set(key, pcm)
    return pcm
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export function silencePcm(ms: number, rate: SampleRate = 8000): Int16Array {
  return new Int16Array((rate * ms) / 1000)
}

export function concatPcm(...parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

/** Cut PCM into 20 ms frames (last one zero-padded). */
export function toFrames(pcm: Int16Array, rate: SampleRate = 8000): AudioFrame[] {
  const n = samplesPerFrame(rate)
  const frames: AudioFrame[] = []
  for (let i = 0; i < pcm.length; i += n) {
    const samples = new Int16Array(n)
    samples.set(pcm.subarray(i, Math.min(i + n, pcm.length)))
    frames.push({ samples, sampleRate: rate, rtpTimestamp: i, receivedAt: 0 })
  }
  return frames
}

export function rms(samples: Int16Array): number {
  let s = 0
  for (const v of samples) s += v * v
  return Math.sqrt(s / Math.max(1, samples.length))
}
