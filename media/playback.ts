/**
 * Frame producers for a session's outbound queue: in-memory PCM, a streaming
 * PCM queue (TTS), generated tones (beep, ringback, music on hold) and
 * decoded files or URLs (WAV, MP3).
 */
import { readFile, stat } from 'node:fs/promises'
import { resample } from '../codecs/stream-resampler.ts'
import type { FrameSource, SampleRate } from '../audio/frame.ts'
import { parseWav, type DecodedAudio } from './wav.ts'

/** Plays a fixed PCM buffer once (or `loops` times), 20 ms per frame. */
export class PcmSource implements FrameSource {
  readonly sampleRate: SampleRate
  readonly pcm: Int16Array
  private readonly frame: Int16Array
  private pos = 0
  private loopsLeft: number

  constructor(pcm: Int16Array, sampleRate: SampleRate, loops = 1) {
    this.pcm = pcm
    this.sampleRate = sampleRate
    this.frame = new Int16Array(sampleRate / 50)
    this.loopsLeft = loops
  }

  get ended(): boolean { return this.loopsLeft <= 0 || this.pcm.length === 0 }

  nextFrame(): Int16Array | null {
    if (this.ended) return null
    const n = this.frame.length
    let filled = 0
    const frame = this.frame
    const pcm = this.pcm
    while (filled < n && this.loopsLeft > 0) {
      const take = Math.min(n - filled, pcm.length - this.pos)
      for (let i = 0; i < take; i++) frame[filled + i] = pcm[this.pos + i]!
      filled += take
      this.pos += take
      if (this.pos >= this.pcm.length) { this.pos = 0; this.loopsLeft-- }
    }
    if (filled < n) this.frame.fill(0, filled)
    return this.frame
  }
}

/**
 * A live PCM stream (TTS output): chunks of any length are appended and
 * played in 20 ms frames. It never ends on its own; `end()` marks the last
 * chunk so the queue can move on once it drains.
 */
export class PcmQueueSource implements FrameSource {
  readonly sampleRate: SampleRate
  private readonly chunks: Int16Array[] = []
  private offset = 0
  private readonly frame: Int16Array
  private endedFlag = false
  private bufferedSamples = 0

  constructor(sampleRate: SampleRate) {
    this.sampleRate = sampleRate
    this.frame = new Int16Array(sampleRate / 50)
  }

  push(pcm: Int16Array): void {
    if (pcm.length === 0) return
    this.chunks.push(pcm)
    this.bufferedSamples += pcm.length
  }

  end(): void { this.endedFlag = true }

  get buffered(): number { return this.bufferedSamples }
  /** true after end(): further input belongs in a new queue. */
  get sealed(): boolean { return this.endedFlag }
  get ended(): boolean { return this.endedFlag && this.bufferedSamples === 0 }

  nextFrame(): Int16Array | null {
    if (this.bufferedSamples === 0) return null
    const n = this.frame.length
    let filled = 0
    while (filled < n && this.chunks.length > 0) {
      const c = this.chunks[0]!
      const take = Math.min(n - filled, c.length - this.offset)
      this.frame.set(c.subarray(this.offset, this.offset + take), filled)
      filled += take
      this.offset += take
      if (this.offset >= c.length) { this.chunks.shift(); this.offset = 0 }
    }
    this.bufferedSamples -= filled
    if (filled < n) this.frame.fill(0, filled)
    return this.frame
  }

  clear(): void {
    this.chunks.length = 0
    this.offset = 0
    this.bufferedSamples = 0
  }
}

export type ToneName = 'beep' | 'ringback' | 'ringback-uk' | 'busy' | 'moh'

/** A cadenced tone: frequencies summed during "on", silence during "off". */
export class ToneSource implements FrameSource {
  readonly sampleRate: SampleRate
  private readonly freqs: number[]
  private readonly onSamples: number
  private readonly periodSamples: number
  private readonly totalSamples: number
  private readonly amplitude: number
  private readonly frame: Int16Array
  private t = 0
  private readonly melody: number[] | null

  constructor(opts: { sampleRate?: SampleRate; freqs?: number[]; onMs: number; offMs?: number; durationMs?: number; amplitude?: number; melody?: number[] }) {
    this.sampleRate = opts.sampleRate ?? 8000
    this.freqs = opts.freqs ?? []
    this.onSamples = Math.round((opts.onMs * this.sampleRate) / 1000)
    this.periodSamples = this.onSamples + Math.round(((opts.offMs ?? 0) * this.sampleRate) / 1000)
    this.totalSamples = opts.durationMs === undefined ? Infinity : Math.round((opts.durationMs * this.sampleRate) / 1000)
    this.amplitude = opts.amplitude ?? 6000
    this.frame = new Int16Array(this.sampleRate / 50)
    this.melody = opts.melody ?? null
  }

  static named(name: ToneName, sampleRate: SampleRate = 8000, durationMs?: number): ToneSource {
    switch (name) {
      case 'beep': return new ToneSource({ sampleRate, freqs: [1000], onMs: 250, durationMs: durationMs ?? 250, amplitude: 8000 })
      // ITU-T E.180 / North American ringback: 440+480 Hz, 2 s on 4 s off.
      case 'ringback': return new ToneSource({ sampleRate, freqs: [440, 480], onMs: 2000, offMs: 4000, durationMs })
      case 'ringback-uk': return new ToneSource({ sampleRate, freqs: [400, 450], onMs: 400, offMs: 200, durationMs })
      case 'busy': return new ToneSource({ sampleRate, freqs: [480, 620], onMs: 500, offMs: 500, durationMs })
      // Music on hold: a soft arpeggio (C major) so it is recognisable as "held".
      case 'moh': return new ToneSource({ sampleRate, onMs: 400, amplitude: 3000, durationMs, melody: [261.63, 329.63, 392.0, 523.25, 392.0, 329.63] })
    }
  }

  get ended(): boolean { return this.t >= this.totalSamples }

  nextFrame(): Int16Array | null {
    if (this.ended) return null
    const f = this.frame
    const rate = this.sampleRate
    for (let i = 0; i < f.length; i++, this.t++) {
      if (this.t >= this.totalSamples) { f[i] = 0; continue }
      const inPeriod = this.t % this.periodSamples
      let v = 0
      if (this.melody) {
        const note = this.melody[Math.floor(this.t / this.onSamples) % this.melody.length]!
        const env = Math.min(1, inPeriod / (rate * 0.02), (this.onSamples - inPeriod) / (rate * 0.05))
        v = env * (Math.sin((2 * Math.PI * note * this.t) / rate) + 0.3 * Math.sin((4 * Math.PI * note * this.t) / rate))
      } else if (inPeriod < this.onSamples) {
        for (const fr of this.freqs) v += Math.sin((2 * Math.PI * fr * this.t) / rate)
        v /= Math.max(1, this.freqs.length)
      }
      f[i] = Math.round(v * this.amplitude)
    }
    return f
  }
}

async function decodeMp3(buf: Uint8Array): Promise<DecodedAudio> {
  const { MPEGDecoder } = await import('mpg123-decoder')
  const dec = new MPEGDecoder()
  await dec.ready
  try {
    const r = dec.decode(buf)
    const chans = r.channelData
    const n = r.samplesDecoded
    const pcm = new Int16Array(n)
    for (let i = 0; i < n; i++) {
      let v = 0
      for (const ch of chans) v += ch[i]!
      v /= chans.length || 1
      pcm[i] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)))
    }
    return { pcm, sampleRate: r.sampleRate }
  } finally {
    dec.free()
  }
}

function nearestRate(rate: number): SampleRate {
  return rate >= 48000 ? 48000 : rate >= 24000 ? 24000 : rate >= 16000 ? 16000 : 8000
}

/**
 * How http(s) audio is fetched. The control API passes its outbound URL
 * policy's fetch (config/outbound-url-policy.ts) so the connection only goes
 * to an approved address; unset means the global fetch (trusted callers).
 */
export type AudioFetch = (url: string, init?: { signal?: AbortSignal }) => Promise<{
  ok: boolean
  status: number
  headers?: { get(name: string): string | null }
  /** Web ReadableStreams (global fetch's and undici's) are async iterables of chunks. */
  body?: AsyncIterable<Uint8Array> | null
  arrayBuffer(): Promise<ArrayBuffer>
}>

/**
 * Bounds on audio a tenant can make the engine load: the file or download is
 * held in memory whole and decoded at once, so an unbounded URL (a huge file,
 * a server that never finishes) would exhaust memory or hang the request.
 */
export interface AudioLoadLimits {
  /** Largest file or download accepted (default 10 MiB: ~11 min of 8 kHz WAV, ~10 min of 128 kbit/s MP3). */
  maxBytes?: number
  /** Whole download, headers to last byte (default 15 s). */
  timeoutMs?: number
}

const DEFAULT_MAX_AUDIO_BYTES = 10 * 1024 * 1024
const DEFAULT_FETCH_TIMEOUT_MS = 15_000

async function download(location: string, fetchAudio: AudioFetch, maxBytes: number, timeoutMs: number): Promise<Uint8Array> {
  const signal = AbortSignal.timeout(timeoutMs)
  try {
    const res = await fetchAudio(location, { signal })
    if (!res.ok) throw new Error(`fetch ${location}: HTTP ${res.status}`)
    const declared = Number(res.headers?.get('content-length') ?? NaN)
    if (declared > maxBytes) throw new Error(`fetch ${location}: ${declared} bytes is over the ${maxBytes}-byte limit`)
    if (!res.body) {
      const whole = new Uint8Array(await res.arrayBuffer())
      if (whole.length > maxBytes) throw new Error(`fetch ${location}: over the ${maxBytes}-byte limit`)
      return whole
    }
    // Count while reading: a chunked response declares no length.
    const chunks: Uint8Array[] = []
    let total = 0
    // Leaving the loop early (the throw) cancels the stream, closing the connection.
    for await (const chunk of res.body) {
      total += chunk.length
      if (total > maxBytes) throw new Error(`fetch ${location}: over the ${maxBytes}-byte limit`)
      chunks.push(chunk)
    }
    const out = new Uint8Array(total)
    let o = 0
    for (const c of chunks) { out.set(c, o); o += c.length }
    return out
  } catch (err) {
    if (signal.aborted) throw new Error(`fetch ${location}: no complete answer within ${timeoutMs} ms`)
    throw err
  }
}

/**
 * Loads a WAV or MP3 from a path, file:// or http(s) URL into a PcmSource at
 * `targetRate` (resampled once, off the packet path).
 */
export async function loadAudio(location: string, targetRate?: SampleRate, fetchAudio: AudioFetch = fetch, limits: AudioLoadLimits = {}): Promise<PcmSource> {
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_AUDIO_BYTES
  let bytes: Uint8Array
  if (/^https?:\/\//i.test(location)) {
    bytes = await download(location, fetchAudio, maxBytes, limits.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS)
  } else {
    const path = location.startsWith('file://') ? new URL(location) : location
    const size = (await stat(path)).size
    if (size > maxBytes) throw new Error(`${location}: ${size} bytes is over the ${maxBytes}-byte limit`)
    bytes = await readFile(path)
  }
  const isWav = bytes.length > 12 && String.fromCharCode(...bytes.subarray(0, 4)) === 'RIFF'
  const audio = isWav ? parseWav(bytes) : await decodeMp3(bytes)
  let rate: SampleRate = targetRate ?? nearestRate(audio.sampleRate)
  const pcm = audio.sampleRate === rate ? audio.pcm : resample(audio.pcm, audio.sampleRate, rate)
  return new PcmSource(pcm, rate)
}

/** Describes playback in a serializable way (crosses the worker boundary). */
export type PlaySpec =
  | { type: 'file' | 'url'; location: string; loops?: number }
  | { type: 'tone'; tone: ToneName; durationMs?: number }
  | { type: 'pcm'; pcm: Int16Array; sampleRate: SampleRate }

export async function sourceFromSpec(spec: PlaySpec, rate: SampleRate, opts: { fetch?: AudioFetch; limits?: AudioLoadLimits } = {}): Promise<FrameSource> {
  switch (spec.type) {
    case 'tone': return ToneSource.named(spec.tone, rate, spec.durationMs)
    case 'pcm': return new PcmSource(spec.pcm, spec.sampleRate)
    case 'file':
    case 'url': {
      const src = await loadAudio(spec.location, rate, opts.fetch, opts.limits)
      if (spec.loops && spec.loops > 1) return new PcmSource(src.pcm, rate, spec.loops)
      return src
    }
  }
}
