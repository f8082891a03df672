/** Test-signal helpers shared by codec and media tests. */

export function sine(freq: number, rate: number, seconds: number, amplitude = 10000): Int16Array {
  const n = Math.round(rate * seconds)
  const out = new Int16Array(n)
  for (let i = 0; i < n; i++) out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * freq * i) / rate))
  return out
}

/** A speech-like test signal: sum of harmonics with a slow amplitude envelope. */
export function chirpy(rate: number, seconds: number): Int16Array {
  const n = Math.round(rate * seconds)
  const out = new Int16Array(n)
  for (let i = 0; i < n; i++) {
    const t = i / rate
    const env = 0.5 + 0.5 * Math.sin(2 * Math.PI * 3 * t)
    const f0 = 180 + 60 * Math.sin(2 * Math.PI * 0.7 * t)
    let v = 0
    for (let h = 1; h <= 8; h++) v += Math.sin(2 * Math.PI * f0 * h * t) / h
    out[i] = Math.round(6000 * env * v)
  }
  return out
}

/** SNR in dB of `test` against `ref` over [start, start+len). */
export function snrDb(ref: Int16Array, test: Int16Array, start: number, len: number, lag = 0): number {
  let sig = 0
  let noise = 0
  for (let i = start; i < start + len; i++) {
    const r = ref[i]!
    const t = test[i + lag] ?? 0
    sig += r * r
    noise += (r - t) * (r - t)
  }
  return 10 * Math.log10(sig / Math.max(noise, 1e-9))
}

/** Lag (0..maxLag) at which `test` best matches `ref` (normalised cross-correlation). */
export function bestLag(ref: Int16Array, test: Int16Array, maxLag: number, start = 0, len = Math.min(ref.length, 4000)): { lag: number; corr: number } {
  let best = { lag: 0, corr: -Infinity }
  for (let lag = -maxLag; lag <= maxLag; lag++) {
    let xy = 0, xx = 0, yy = 0
    for (let i = start; i < start + len; i++) {
      const x = ref[i] ?? 0
      const y = test[i + lag] ?? 0
      xy += x * y; xx += x * x; yy += y * y
    }
    const c = xy / Math.sqrt(xx * yy || 1)
    if (c > best.corr) best = { lag, corr: c }
  }
  return best
}

/** Amplitude of `freq` in `x` (Goertzel), as a fraction of full scale sine amplitude. */
export function toneAmplitude(x: Int16Array, rate: number, freq: number, start = 0, len = x.length - start): number {
  const w = (2 * Math.PI * freq) / rate
  const c = 2 * Math.cos(w)
  let s1 = 0, s2 = 0
  for (let i = start; i < start + len; i++) {
    const s0 = x[i]! + c * s1 - s2
    s2 = s1; s1 = s0
  }
  const power = s1 * s1 + s2 * s2 - c * s1 * s2
  return (2 * Math.sqrt(Math.max(power, 0))) / len
}

export function rms(x: Int16Array, start = 0, len = x.length - start): number {
  let s = 0
  for (let i = start; i < start + len; i++) s += x[i]! * x[i]!
  return Math.sqrt(s / Math.max(len, 1))
}
