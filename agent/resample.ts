/**
 * Private streaming resampler for the agent (windowed sinc, arbitrary rates).
 *
 * Why not codecs/resampler.ts: that one is tuned for the engine's four rates and
 * is still being written in parallel; TTS engines produce odd rates (espeak-ng
 * 22050 Hz, ElevenLabs 22050/44100), so the agent needs any-to-any conversion.
 * Cost is O(taps) per output sample, ~40 taps at telephone rates: negligible
 * next to synthesis itself.
 */
const ZERO_CROSSINGS = 8

export class StreamResampler {
  private buf = new Float32Array(0)
  /** Absolute input index of buf[0]. */
  private base = 0
  /** Absolute input position (fractional) of the next output sample. */
  private pos = 0
  private readonly step: number
  private readonly fc: number
  private readonly half: number

  constructor(
    readonly inRate: number,
    readonly outRate: number,
  ) {
    this.step = inRate / outRate
    // Cutoff just under the lower Nyquist, normalised to the input rate.
    this.fc = Math.min(1, outRate / inRate) * 0.92
    this.half = Math.ceil(ZERO_CROSSINGS / this.fc)
  }

  process(input: Int16Array): Int16Array {
    if (this.inRate === this.outRate) return input.slice()
    const merged = new Float32Array(this.buf.length + input.length)
    merged.set(this.buf)
    for (let i = 0; i < input.length; i++) merged[this.buf.length + i] = input[i]!
    this.buf = merged
    return this.drain()
  }

  /** Push trailing zeros so the last input samples come out. */
  flush(): Int16Array {
    if (this.inRate === this.outRate) return new Int16Array(0)
    return this.process(new Int16Array(this.half + 1))
  }

  private drain(): Int16Array {
    const out: number[] = []
    const end = this.base + this.buf.length - 1
    const { fc, half } = this
    while (this.pos + half <= end) {
      const center = this.pos
      const first = Math.max(this.base, Math.ceil(center - half))
      const last = Math.floor(center + half)
      let acc = 0
      for (let k = first; k <= last; k++) {
        const u = center - k
        const x = fc * u
        const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x)
        const w = 0.5 + 0.5 * Math.cos((Math.PI * u) / (half + 1)) // Hann window
        acc += this.buf[k - this.base]! * fc * sinc * w
      }
      out.push(acc > 32767 ? 32767 : acc < -32768 ? -32768 : Math.round(acc))
      this.pos += this.step
    }
    const keepFrom = Math.max(0, Math.floor(this.pos - half) - 1 - this.base)
    if (keepFrom > 0) {
      this.buf = this.buf.slice(keepFrom)
      this.base += keepFrom
    }
    return Int16Array.from(out)
  }
}

/** One-shot convenience. */
export function resamplePcm(input: Int16Array, inRate: number, outRate: number): Int16Array {
  if (inRate === outRate) return input.slice()
  const r = new StreamResampler(inRate, outRate)
  const a = r.process(input)
  const b = r.flush()
  const out = new Int16Array(Math.min(a.length + b.length, Math.round((input.length * outRate) / inRate)))
  out.set(a.subarray(0, out.length))
  if (a.length < out.length) out.set(b.subarray(0, out.length - a.length), a.length)
  return out
}
