/**
 * Streaming polyphase resampler for the rates the engine uses (8, 16, 24,
 * 48 kHz). Synchronous and allocation-free per call, so it can sit on the
 * packet path; the wasm libsamplerate port is async to construct and copies
 * through its own heap, which costs more than this filter for 20 ms frames.
 *
 * Design: rational ratio L/M (reduced), one Kaiser-windowed sinc prototype at
 * the virtual rate L·fin, cutoff at 0.45·min(fin, fout) so the transition band
 * ends before the lower Nyquist frequency. Taps per phase = 2·ZEROS·max(1, M/L)
 * (rounded up), giving ≳70 dB stopband attenuation for every supported ratio.
 *
 * Callers use it through codecs/stream-resampler.ts (aligned streams, 20 ms
 * frame pacing, one-shot conversion); benches and codec tests drive it bare.
 */

const ZERO_CROSSINGS = 16
const KAISER_BETA = 7.5
/**
 * Input samples the history takes per pass beyond the filter window. Longer
 * inputs are processed in passes of this size (same output, one window copy
 * per pass), so it only has to cover the common call: one 20 ms frame. It
 * used to be a flat 4096 (16 KiB of Float32 per resampler), which made every
 * rate-converting call leg carry ~33 KiB of mostly idle history.
 */
function historySlack(inRate: number): number {
  return Math.max(256, Math.ceil(inRate / 50 / 64) * 64)
}

function gcd(a: number, b: number): number {
  while (b) { const t = a % b; a = b; b = t }
  return a
}

function besselI0(x: number): number {
  let sum = 1
  let term = 1
  for (let k = 1; k < 50; k++) {
    term *= (x / (2 * k)) ** 2
    sum += term
    if (term < 1e-12 * sum) break
  }
  return sum
}

interface FilterBank {
  up: number
  down: number
  tapsPerPhase: number
  /** phases × tapsPerPhase, each phase reversed for a forward dot product. */
  coeffs: Float32Array
}

const bankCache = new Map<string, FilterBank>()

function designBank(inRate: number, outRate: number): FilterBank {
  const key = `${inRate}:${outRate}`
  const hit = bankCache.get(key)
  if (hit) return hit
  const g = gcd(inRate, outRate)
  const up = outRate / g
  const down = inRate / g
  // Cutoff relative to the virtual rate up·fin: Nyquist of the lower rate, with headroom.
  const cutoff = (0.45 * Math.min(inRate, outRate)) / (inRate * up) // cycles/sample at virtual rate
  // ZERO_CROSSINGS sinc lobes on each side of the centre.
  const halfLen = Math.ceil(ZERO_CROSSINGS / (2 * cutoff))
  const tapsPerPhase = Math.ceil((2 * halfLen + 1) / up)
  const total = tapsPerPhase * up
  const proto = new Float64Array(total)
  const center = (total - 1) / 2
  const i0beta = besselI0(KAISER_BETA)
  for (let n = 0; n < total; n++) {
    const t = n - center
    const sinc = t === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * t) / (Math.PI * t)
    const w = Math.abs(t) > center ? 0 : besselI0(KAISER_BETA * Math.sqrt(1 - (t / center) ** 2)) / i0beta
    proto[n] = sinc * w * up // gain `up` compensates zero-stuffing
  }
  // Polyphase split: phase p uses proto[p + k·up]; store reversed so the
  // inner loop walks input forwards.
  const coeffs = new Float32Array(total)
  for (let p = 0; p < up; p++) {
    for (let k = 0; k < tapsPerPhase; k++) {
      coeffs[p * tapsPerPhase + (tapsPerPhase - 1 - k)] = proto[p + k * up]!
    }
  }
  const bank = { up, down, tapsPerPhase, coeffs }
  bankCache.set(key, bank)
  return bank
}

export class Resampler {
  readonly inRate: number
  readonly outRate: number
  private readonly bank: FilterBank
  /** Input history: the last tapsPerPhase−1 samples followed by new input. */
  private readonly hist: Float32Array
  private histLen: number
  /** Position of the next output in units of 1/up input samples, relative to hist start. */
  private phasePos: number

  constructor(inRate: number, outRate: number) {
    this.inRate = inRate
    this.outRate = outRate
    this.bank = designBank(inRate, outRate)
    this.hist = new Float32Array(this.bank.tapsPerPhase + historySlack(inRate))
    this.histLen = this.bank.tapsPerPhase - 1 // primed with zeros
    this.phasePos = 0
  }

  /** Group delay in output samples (for tests that align signals). */
  get delay(): number {
    return (this.bank.tapsPerPhase * this.bank.up - 1) / 2 / this.bank.down
  }

  /** Maximum output count for `n` inputs; size `out` with this. */
  maxOutput(n: number): number {
    return Math.ceil((n * this.outRate) / this.inRate) + 2
  }

  /**
   * Resamples `count` samples of `input` into `out`; returns samples written.
   * Over a stream the output count averages exactly count·out/in.
   */
  process(input: Int16Array, out: Int16Array, count = input.length): number {
    if (this.inRate === this.outRate) {
      out.set(count === input.length ? input : input.subarray(0, count))
      return count
    }
    const { up, down, tapsPerPhase, coeffs } = this.bank
    const hist = this.hist
    let written = 0
    let offset = 0
    while (offset < count) {
      const chunk = Math.min(count - offset, hist.length - this.histLen)
      for (let i = 0; i < chunk; i++) hist[this.histLen + i] = input[offset + i]!
      this.histLen += chunk
      offset += chunk
      // Produce every output whose full window lies inside the history.
      let pos = this.phasePos
      for (;;) {
        const base = Math.floor(pos / up)
        if (base + tapsPerPhase > this.histLen) break
        const phase = pos - base * up
        const c0 = phase * tapsPerPhase
        let acc = 0
        for (let k = 0; k < tapsPerPhase; k++) acc += hist[base + k]! * coeffs[c0 + k]!
        const v = Math.round(acc)
        out[written++] = v > 32767 ? 32767 : v < -32768 ? -32768 : v
        pos += down
      }
      // Drop consumed input, keep the window tail.
      const consumed = Math.floor(pos / up)
      hist.copyWithin(0, consumed, this.histLen)
      this.histLen -= consumed
      this.phasePos = pos - consumed * up
    }
    return written
  }

  reset(): void {
    this.hist.fill(0)
    this.histLen = this.bank.tapsPerPhase - 1
    this.phasePos = 0
  }
}
