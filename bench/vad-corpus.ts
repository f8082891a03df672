/**
 * A labelled VAD corpus made on this machine: espeak-ng speech at several
 * voices and speeds, laid between stretches of non-speech (digital silence,
 * white and pink noise, mains hum, DTMF bursts), mixed at set SNRs and passed
 * through a telephone band (300–3400 Hz at 8 kHz), cut into 20 ms frames.
 *
 * Labels come from the clean speech before mixing: a frame is speech when the
 * clean signal in it is within 35 dB of the utterance's loudest frame (and
 * above -60 dBFS), so inter-word pauses count as non-speech. Every VAD is
 * scored against the same labels, which is what a comparison needs.
 */
import { execFileSync } from 'node:child_process'
import { resample } from '../codecs/stream-resampler.ts'

export const RATE = 8000
export const FRAME = 160

export type NoiseKind = 'silence' | 'white' | 'pink' | 'hum' | 'dtmf'

export interface Condition {
  id: string
  noise: NoiseKind
  /** Speech active level over noise level, dB; undefined for silence. */
  snrDb?: number
}

export interface Clip {
  condition: Condition
  pcm: Int16Array
  /** Per 20 ms frame: clean speech present. */
  labels: Uint8Array
  /** Frame index of each utterance's first speech frame. */
  onsets: number[]
  /** Frame index one past each utterance's last speech frame. */
  offsets: number[]
}

export const PHRASES = [
  'what are your opening hours',
  'I would like to talk to a human please',
  'can you tell me the balance of my account',
  'yes that is right',
  'no, I said the twenty third of March',
  'my order number is four seven one two',
  'hello, is anybody there',
  'could you repeat that more slowly',
]

/** espeak-ng voice+variant, words per minute. */
export const VOICES: Array<[string, number]> = [
  ['en-us', 160],
  ['en-us+f3', 175],
  ['en-gb', 150],
  ['en-gb-scotland+m3', 140],
  ['en-us+f2', 190],
  ['en-029', 165],
]

export const CONDITIONS: Condition[] = [
  { id: 'silence', noise: 'silence' },
  { id: 'white 20 dB', noise: 'white', snrDb: 20 },
  { id: 'white 10 dB', noise: 'white', snrDb: 10 },
  { id: 'white 5 dB', noise: 'white', snrDb: 5 },
  { id: 'white 0 dB', noise: 'white', snrDb: 0 },
  { id: 'pink 20 dB', noise: 'pink', snrDb: 20 },
  { id: 'pink 10 dB', noise: 'pink', snrDb: 10 },
  { id: 'pink 5 dB', noise: 'pink', snrDb: 5 },
  { id: 'pink 0 dB', noise: 'pink', snrDb: 0 },
  { id: 'hum 20 dB', noise: 'hum', snrDb: 20 },
  { id: 'hum 10 dB', noise: 'hum', snrDb: 10 },
  { id: 'dtmf + white 30 dB', noise: 'dtmf', snrDb: 30 },
]

/** Deterministic PRNG (mulberry32), so every run scores the same audio. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const speechCache = new Map<string, Float64Array>()

/** espeak-ng at its native rate → 8 kHz, as floats (full scale = 1). */
export function synth(text: string, voice: string, wpm: number): Float64Array {
  const key = `${voice}|${wpm}|${text}`
  const hit = speechCache.get(key)
  if (hit) return hit
  const wav = execFileSync('espeak-ng', ['-v', voice, '-s', String(wpm), '--stdout', '--', text], { maxBuffer: 64 << 20 })
  // --stdout writes a streaming header with placeholder sizes: read the rate, take everything after it.
  const rate = wav.readUInt32LE(24)
  const body = wav.subarray(44, 44 + ((wav.length - 44) & ~1))
  const pcm = new Int16Array(body.length / 2)
  for (let i = 0; i < pcm.length; i++) pcm[i] = body.readInt16LE(i * 2)
  const at8k = resample(pcm, rate, RATE)
  const out = Float64Array.from(at8k, (v) => v / 32768)
  speechCache.set(key, out)
  return out
}

/** RBJ biquad, applied in place. */
function biquad(x: Float64Array, kind: 'lp' | 'hp', f0: number, q = Math.SQRT1_2): void {
  const w = (2 * Math.PI * f0) / RATE
  const alpha = Math.sin(w) / (2 * q)
  const cos = Math.cos(w)
  const b0 = kind === 'lp' ? (1 - cos) / 2 : (1 + cos) / 2
  const b1 = kind === 'lp' ? 1 - cos : -(1 + cos)
  const b2 = b0
  const a0 = 1 + alpha
  const a1 = -2 * cos
  const a2 = 1 - alpha
  let x1 = 0
  let x2 = 0
  let y1 = 0
  let y2 = 0
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i]!
    const y0 = (b0 * x0 + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2) / a0
    x2 = x1
    x1 = x0
    y2 = y1
    y1 = y0
    x[i] = y0
  }
}

/** Telephone band, 4th order at each edge (two cascaded Butterworth biquads). */
export function phoneBand(x: Float64Array): void {
  biquad(x, 'hp', 300)
  biquad(x, 'hp', 300)
  biquad(x, 'lp', 3400)
  biquad(x, 'lp', 3400)
}

function power(x: Float64Array, from = 0, to = x.length): number {
  let s = 0
  for (let i = from; i < to; i++) s += x[i]! * x[i]!
  return s / Math.max(1, to - from)
}

function noise(kind: NoiseKind, n: number, rand: () => number): Float64Array {
  const x = new Float64Array(n)
  const gauss = (): number => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand())
  if (kind === 'white' || kind === 'dtmf') for (let i = 0; i < n; i++) x[i] = gauss()
  else if (kind === 'pink') {
    // Paul Kellet's refined filter: white → -3 dB/octave.
    let b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0, b6 = 0
    for (let i = 0; i < n; i++) {
      const w = gauss()
      b0 = 0.99886 * b0 + w * 0.0555179
      b1 = 0.99332 * b1 + w * 0.0750759
      b2 = 0.969 * b2 + w * 0.153852
      b3 = 0.8665 * b3 + w * 0.3104856
      b4 = 0.55 * b4 + w * 0.5329522
      b5 = -0.7616 * b5 - w * 0.016898
      x[i] = b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362
      b6 = w * 0.115926
    }
  } else if (kind === 'hum') {
    // 50 Hz mains with odd harmonics up to 1 kHz (rectifier buzz), slowly wobbling.
    for (let i = 0; i < n; i++) {
      let v = 0
      for (let h = 1; h <= 19; h += 2) v += Math.sin((2 * Math.PI * 50 * h * i) / RATE + h) / h
      x[i] = v * (1 + 0.1 * Math.sin((2 * Math.PI * 0.3 * i) / RATE))
    }
  }
  const p = power(x)
  if (p > 0) for (let i = 0; i < n; i++) x[i]! /= Math.sqrt(p)
  return x
}

const DTMF: Array<[number, number]> = [
  [697, 1209], [697, 1336], [697, 1477], [770, 1209], [770, 1336], [770, 1477], [852, 1209], [852, 1336], [852, 1477], [941, 1336],
]

/** Bursts of DTMF digits (70–120 ms on, 80–150 ms off) into `x[from, to)` at amplitude `amp` per tone. */
function addDtmf(x: Float64Array, from: number, to: number, amp: number, rand: () => number): void {
  let i = from + Math.floor(rand() * 800)
  while (i < to) {
    const [lo, hi] = DTMF[Math.floor(rand() * DTMF.length)]!
    const on = Math.floor((0.07 + 0.05 * rand()) * RATE)
    for (let k = 0; k < on && i + k < to; k++) x[i + k]! += amp * (Math.sin((2 * Math.PI * lo * k) / RATE) + Math.sin((2 * Math.PI * hi * k) / RATE))
    i += on + Math.floor((0.08 + 0.07 * rand()) * RATE)
  }
}

export interface CorpusOptions {
  phrases?: string[]
  voices?: Array<[string, number]>
  conditions?: Condition[]
  seed?: number
}

/** One clip per condition: every phrase × voice, separated by 0.6–1.4 s of non-speech. */
export function buildCorpus(opts: CorpusOptions = {}): Clip[] {
  const phrases = opts.phrases ?? PHRASES
  const voices = opts.voices ?? VOICES
  const utterances = voices.flatMap(([v, wpm]) => phrases.map((p) => synth(p, v, wpm)))
  return (opts.conditions ?? CONDITIONS).map((condition, ci) => buildClip(condition, utterances, (opts.seed ?? 7) + ci))
}

export function buildClip(condition: Condition, utterances: Float64Array[], seed: number): Clip {
  const rand = rng(seed)
  // Layout: gap, utterance, gap, utterance, …, gap; each utterance at its own level.
  const gaps = utterances.map(() => Math.round((0.6 + 0.8 * rand()) * RATE / FRAME) * FRAME)
  const tail = RATE
  const total = gaps.reduce((a, b) => a + b, 0) + utterances.reduce((a, u) => a + u.length, 0) + tail
  const speech = new Float64Array(total)
  const spans: Array<[number, number]> = []
  let at = 0
  utterances.forEach((u, k) => {
    at += gaps[k]!
    // Talker level between -30 and -16 dBFS active (quiet handset to loud).
    const levelDb = -30 + 14 * rand()
    const gain = 10 ** (levelDb / 20) / Math.sqrt(activePower(u))
    for (let i = 0; i < u.length; i++) speech[at + i] = u[i]! * gain
    spans.push([at, at + u.length])
    at += u.length
  })
  const frames = Math.floor(total / FRAME)
  const labels = labelFrames(speech, spans, frames)
  const mix = Float64Array.from(speech)
  if (condition.noise !== 'silence') {
    const speechPow = activeFramesPower(speech, labels)
    const noisePow = speechPow / 10 ** ((condition.snrDb ?? 30) / 10)
    const nz = noise(condition.noise, total, rand)
    for (let i = 0; i < total; i++) mix[i]! += nz[i]! * Math.sqrt(noisePow)
    if (condition.noise === 'dtmf') {
      // Key presses only between utterances: a caller navigating a menu, not talking.
      let prev = 0
      for (const [s, e] of spans) {
        addDtmf(mix, prev + 400, s - 400, 0.1, rand)
        prev = e
      }
    }
  } else {
    // Digital silence plus ±1 LSB dither, as a real decoder produces.
    for (let i = 0; i < total; i++) mix[i]! += (rand() - 0.5) * (2 / 32768)
  }
  phoneBand(mix)
  const pcm = new Int16Array(frames * FRAME)
  for (let i = 0; i < pcm.length; i++) {
    const v = Math.round(mix[i]! * 32768)
    pcm[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v
  }
  const onsets: number[] = []
  const offsets: number[] = []
  for (const [s, e] of spans) {
    const f0 = Math.floor(s / FRAME)
    const f1 = Math.min(frames, Math.ceil(e / FRAME))
    let on = -1
    let off = -1
    for (let f = f0; f < f1; f++) if (labels[f]) {
      if (on < 0) on = f
      off = f + 1
    }
    if (on >= 0) {
      onsets.push(on)
      offsets.push(off)
    }
  }
  return { condition, pcm, labels, onsets, offsets }
}

function activePower(u: Float64Array): number {
  // Mean power over the louder half of 20 ms blocks ≈ active speech level.
  const blocks: number[] = []
  for (let i = 0; i + FRAME <= u.length; i += FRAME) blocks.push(power(u, i, i + FRAME))
  blocks.sort((a, b) => b - a)
  const top = blocks.slice(0, Math.max(1, Math.floor(blocks.length / 2)))
  return top.reduce((a, b) => a + b, 0) / top.length || 1e-9
}

function activeFramesPower(x: Float64Array, labels: Uint8Array): number {
  let s = 0
  let n = 0
  for (let f = 0; f < labels.length; f++) if (labels[f]) {
    s += power(x, f * FRAME, (f + 1) * FRAME)
    n++
  }
  return n ? s / n : 1e-9
}

function labelFrames(speech: Float64Array, spans: Array<[number, number]>, frames: number): Uint8Array {
  const labels = new Uint8Array(frames)
  const band = Float64Array.from(speech)
  phoneBand(band)
  for (const [s, e] of spans) {
    const f0 = Math.floor(s / FRAME)
    const f1 = Math.min(frames, Math.ceil(e / FRAME))
    let peak = 0
    for (let f = f0; f < f1; f++) peak = Math.max(peak, power(band, f * FRAME, (f + 1) * FRAME))
    const floor = Math.max(peak * 10 ** (-35 / 10), 10 ** (-60 / 10))
    for (let f = f0; f < f1; f++) if (power(band, f * FRAME, (f + 1) * FRAME) > floor) labels[f] = 1
  }
  return labels
}
