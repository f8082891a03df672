/**
 * Narrowband → wideband conditioning for the 16 kHz pocketsphinx model.
 *
 * Measured on this machine (espeak-ng phrases through an 8 kHz phone band, see
 * test/agent/pocketsphinx.test.ts): upsampled telephone audio has nothing above
 * 4 kHz, the log mel filterbank energies there collapse, and the grammar search
 * fails on nearly every phrase. Filling 4–8 kHz with low-level stationary noise
 * (a crude bandwidth "extension") restores word-for-word recognition; cepstral
 * mean normalisation then removes the constant offset it adds.
 */
import { StreamResampler } from '../../../codecs/stream-resampler.ts'

export class BandFill {
  private readonly up: StreamResampler
  private seed = 0x2545f491
  private readonly noiseUp = new StreamResampler(8000, 16000)
  private noiseBuf = new Int16Array(0)
  private parity = 0

  constructor(
    readonly inRate: number,
    /** Noise amplitude (full scale = 32767) before the high-pass. */
    private readonly level = 3000,
  ) {
    this.up = new StreamResampler(inRate, 16000)
  }

  /** Deterministic xorshift noise: tests must not depend on Math.random. */
  private noise(): number {
    let x = this.seed
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.seed = x >>> 0
    return (this.seed / 0xffffffff) * 2 - 1
  }

  /**
   * Steep 4–8 kHz noise: white noise at 8 kHz, interpolated to 16 kHz (so it
   * occupies 0–3.7 kHz), then multiplied by (-1)^n, which mirrors the spectrum
   * into 4.3–8 kHz. A short FIR high-pass leaked into the speech band and broke
   * recognition; this keeps the speech band clean.
   */
  private noiseBlock(n: number): Int16Array {
    while (this.noiseBuf.length < n) {
      const white = new Int16Array(160)
      for (let i = 0; i < white.length; i++) white[i] = Math.round(this.noise() * this.level)
      const up = this.noiseUp.process(white)
      const merged = new Int16Array(this.noiseBuf.length + up.length)
      merged.set(this.noiseBuf)
      merged.set(up, this.noiseBuf.length)
      this.noiseBuf = merged
    }
    const out = this.noiseBuf.slice(0, n)
    this.noiseBuf = this.noiseBuf.slice(n)
    for (let i = 0; i < n; i++) {
      if ((this.parity++ & 1) === 1) out[i] = -out[i]!
    }
    return out
  }

  process(input: Int16Array): Int16Array {
    const wide = this.inRate === 16000 ? input.slice() : this.up.process(input)
    if (this.inRate >= 16000) return wide
    const n = this.noiseBlock(wide.length)
    for (let i = 0; i < wide.length; i++) {
      const v = wide[i]! + n[i]!
      wide[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v
    }
    return wide
  }

  /** Noise-only "silence" at 16 kHz, used to push the decoder past its end-of-utterance detector. */
  silence(ms: number): Int16Array {
    const len = (16000 * ms) / 1000
    if (this.inRate >= 16000) return new Int16Array(len)
    return this.noiseBlock(len)
  }
}
