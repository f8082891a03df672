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

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b]
  return a
}

interface Bank {
  up: number
  down: number
  taps: number
  half: number
  coeffs: Float32Array
}
const banks = new Map<string, Bank>()

/** Polyphase table for the rational ratio out/in = up/down (computed once per rate pair). */
function bank(inRate: number, outRate: number): Bank {
  const key = `${inRate}>${outRate}`
  const hit = banks.get(key)
  if (hit) return hit
  const g = gcd(inRate, outRate)
  const up = outRate / g
  const down = inRate / g
  // Cutoff just under the lower Nyquist, normalised to the input rate.
  const fc = Math.min(1, outRate / inRate) * 0.92
  const half = Math.ceil(ZERO_CROSSINGS / fc)
  const taps = 2 * half
  const coeffs = new Float32Array(up * taps)
  for (let ph = 0; ph < up; ph++) {
    for (let j = 0; j < taps; j++) {
      const u = ph / up + half - 1 - j
      const x = fc * u
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x)
      const w = Math.abs(u) >= half + 1 ? 0 : 0.5 + 0.5 * Math.cos((Math.PI * u) / (half + 1)) // Hann
      coeffs[ph * taps + j] = fc * sinc * w
    }
  }
  const b = { up, down, taps, half, coeffs }
  banks.set(key, b)
  return b
}

export class StreamResampler {
  private buf = new Float32Array(0)
  /** Absolute input index of buf[0]. */
  private base = 0
  /** Next output sits at input position ipos + phase/up. */
  private ipos = 0
  private phase = 0
  private readonly b: Bank | undefined

  constructor(
    readonly inRate: number,
    readonly outRate: number,
  ) {
    if (inRate !== outRate) this.b = bank(inRate, outRate)
  }

  process(input: Int16Array): Int16Array {
    if (!this.b) return input.slice()
    const merged = new Float32Array(this.buf.length + input.length)
    merged.set(this.buf)
    for (let i = 0; i < input.length; i++) merged[this.buf.length + i] = input[i]!
    this.buf = merged
    return this.drain(this.b)
  }

  /** Push trailing zeros so the last input samples come out. */
  flush(): Int16Array {
    if (!this.b) return new Int16Array(0)
    return this.process(new Int16Array(this.b.half + 1))
  }

  private drain(b: Bank): Int16Array {
    const { up, down, taps, half, coeffs } = b
    const end = this.base + this.buf.length - 1
    const maxOut = Math.max(0, Math.ceil(((end - this.ipos) * up) / down) + 1)
    const out = new Int16Array(maxOut)
    let n = 0
    const buf = this.buf
    while (this.ipos + half <= end && n < maxOut) {
      const first = this.ipos - half + 1 - this.base
      const c0 = this.phase * taps
      let acc = 0
      for (let j = 0; j < taps; j++) {
        const k = first + j
        if (k >= 0) acc += buf[k]! * coeffs[c0 + j]!
      }
      out[n++] = acc > 32767 ? 32767 : acc < -32768 ? -32768 : Math.round(acc)
      this.phase += down
      if (this.phase >= up) {
        this.ipos += Math.floor(this.phase / up)
        this.phase %= up
      }
    }
    const keepFrom = Math.max(0, this.ipos - half - this.base)
    if (keepFrom > 0) {
      this.buf = this.buf.slice(keepFrom)
      this.base += keepFrom
    }
    return out.subarray(0, n)
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
