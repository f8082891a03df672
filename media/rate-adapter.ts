/**
 * Turns a stream of 20 ms frames at one rate into 20 ms frames at another,
 * exactly one out per one in. The streaming resampler emits ±1 sample per
 * call around the ideal count, so output goes through a small FIFO primed
 * with one frame of silence (20 ms of added latency, no underflow ever).
 */
import { Resampler } from '../codecs/resampler.ts'
import type { SampleRate } from '../audio/frame.ts'

export class RateAdapter {
  readonly inRate: SampleRate
  readonly outRate: SampleRate
  private readonly resampler: Resampler
  private readonly fifo: Int16Array
  private fill: number
  private readonly tmp: Int16Array
  private readonly out: Int16Array

  constructor(inRate: SampleRate, outRate: SampleRate) {
    this.inRate = inRate
    this.outRate = outRate
    this.resampler = new Resampler(inRate, outRate)
    const outFrame = outRate / 50
    this.fifo = new Int16Array(outFrame * 4)
    this.fill = outFrame // primed with silence
    this.tmp = new Int16Array(this.resampler.maxOutput(inRate / 50) + 4)
    this.out = new Int16Array(outFrame)
  }

  /** Converts one input frame; the returned array is reused by the next call. */
  process(frame: Int16Array): Int16Array {
    const n = this.resampler.process(frame, this.tmp)
    if (this.fill + n > this.fifo.length) this.fill = this.fifo.length - n // cannot happen at steady state; guard anyway
    this.fifo.set(this.tmp.subarray(0, n), this.fill)
    this.fill += n
    const want = this.out.length
    if (this.fill >= want) {
      this.out.set(this.fifo.subarray(0, want))
      this.fifo.copyWithin(0, want, this.fill)
      this.fill -= want
    } else {
      this.out.fill(0)
    }
    return this.out
  }
}
