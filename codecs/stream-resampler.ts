/**
 * The resampler as its callers use it: one stream of audio through the
 * polyphase filter (codecs/resampler.ts), which designs a bank for any
 * rational ratio, so TTS's odd rates (espeak-ng 22050 Hz, ElevenLabs
 * 44100 Hz) and files (44.1 kHz MP3) work too. Every wrapper of the filter
 * is this one class, read in one of two ways:
 *
 * - **aligned** (`process`/`processInto`, then `flush`): for the agent's
 *   playout, TTS and STT chunks, VADs and one-shot conversions. The filter is
 *   primed with zeros, so its first `delay` output samples are its lead-in,
 *   and the last `delay` samples of real signal only come out once more input
 *   pushes them through. Dropping the lead-in and flushing exactly the tail
 *   makes output sample k correspond to input sample k·in/out, and a stream
 *   of N inputs yield round(N·out/in) outputs. The playout relies on that:
 *   what it has sent maps back to how much of a segment's source audio the
 *   caller has heard.
 * - **frame-paced** (`processFrame`): for the packet path (a session's sinks
 *   and egress, the call's output, forks and streams), where every 20 ms frame
 *   in must give exactly one 20 ms frame out. The filter emits ±1 sample per
 *   call around the ideal count, so output goes through a small FIFO primed
 *   with one frame of silence (20 ms of added latency, no underflow ever);
 *   the filter's lead-in is kept (a fixed latency costs nothing there).
 *
 * One instance is read one way only.
 */
import { Resampler } from './resampler.ts'

/**
 * Filters of finished streams, by rate pair. A Resampler carries a history
 * buffer (one 20 ms input frame per pass, 1–4 KiB) and its filter state; the
 * playout needs one per reply sentence, and reusing them
 * (reset() zeroes the history) keeps that off the garbage collector.
 */
const pool = new Map<string, Resampler[]>()
const POOL_MAX = 256

function acquire(inRate: number, outRate: number): Resampler {
  const r = pool.get(`${inRate}>${outRate}`)?.pop()
  if (!r) return new Resampler(inRate, outRate)
  r.reset()
  return r
}

/** The frame-paced form's buffers, made by its first frame. */
interface Paced {
  fifo: Int16Array
  fill: number
  tmp: Int16Array
  out: Int16Array
}

export class StreamResampler {
  private r: Resampler | undefined
  /** Lead-in output samples still to drop (the filter's group delay, rounded). */
  private skip: number
  private inCount = 0
  private outCount = 0
  private scratch = new Int16Array(0)
  private released = false
  private paced: Paced | undefined

  constructor(
    readonly inRate: number,
    readonly outRate: number,
  ) {
    if (inRate !== outRate) this.r = acquire(inRate, outRate)
    this.skip = this.r ? Math.round(this.r.delay) : 0
  }

  /** Upper bound on what processInto() writes for `n` input samples. */
  maxOutput(n: number): number {
    return this.r ? this.r.maxOutput(n) : n
  }

  /** Input samples needed for about `outSamples` more output. */
  inputFor(outSamples: number): number {
    return Math.max(1, Math.ceil((outSamples * this.inRate) / this.outRate))
  }

  /**
   * Resamples `input` into `out` (sized with maxOutput) without allocating;
   * returns the number of aligned samples written.
   */
  processInto(input: Int16Array, out: Int16Array): number {
    if (this.released) throw new Error('StreamResampler used after release()')
    this.inCount += input.length
    if (!this.r) {
      out.set(input)
      this.outCount += input.length
      return input.length
    }
    let n = this.r.process(input, out)
    if (this.skip > 0) {
      const drop = Math.min(this.skip, n)
      if (drop < n) out.copyWithin(0, drop, n)
      n -= drop
      this.skip -= drop
    }
    this.outCount += n
    return n
  }

  process(input: Int16Array): Int16Array {
    if (!this.r && !this.released) return input.slice()
    const need = this.maxOutput(input.length)
    if (this.scratch.length < need) this.scratch = new Int16Array(need)
    const n = this.processInto(input, this.scratch)
    return this.scratch.slice(0, n)
  }

  /**
   * Pushes zeros through so the filter's last `delay` samples of real signal
   * come out; the result ends the stream at exactly round(fed·out/in) samples.
   */
  flush(): Int16Array {
    if (this.released) throw new Error('StreamResampler used after release()')
    if (!this.r) return new Int16Array(0)
    const want = Math.round((this.inCount * this.outRate) / this.inRate) - this.outCount
    if (want <= 0) return new Int16Array(0)
    // Enough zeros for the lead-in still owed plus the tail, with slack for phase.
    const pad = Math.ceil(((this.skip + want + 4) * this.inRate) / this.outRate) + 8
    const out = new Int16Array(this.r.maxOutput(pad))
    const n = this.processInto(new Int16Array(pad), out)
    this.inCount -= pad
    this.outCount -= Math.max(0, n - want)
    return out.slice(0, Math.min(n, want))
  }

  /**
   * Frame-paced form: converts one 20 ms input frame into exactly one 20 ms
   * output frame. The returned array is reused by the next call.
   */
  processFrame(frame: Int16Array): Int16Array {
    if (this.released) throw new Error('StreamResampler used after release()')
    const p = (this.paced ??= this.makePaced())
    const n = this.r ? this.r.process(frame, p.tmp) : (p.tmp.set(frame), frame.length)
    if (p.fill + n > p.fifo.length) p.fill = p.fifo.length - n // cannot happen at steady state; guard anyway
    p.fifo.set(p.tmp.subarray(0, n), p.fill)
    p.fill += n
    const want = p.out.length
    if (p.fill >= want) {
      p.out.set(p.fifo.subarray(0, want))
      p.fifo.copyWithin(0, want, p.fill)
      p.fill -= want
    } else {
      p.out.fill(0)
    }
    return p.out
  }

  private makePaced(): Paced {
    const outFrame = this.outRate / 50
    const inFrame = this.inRate / 50
    return {
      fifo: new Int16Array(outFrame * 4),
      fill: outFrame, // primed with silence
      tmp: new Int16Array((this.r ? this.r.maxOutput(inFrame) : inFrame) + 4),
      out: new Int16Array(outFrame),
    }
  }

  /** The stream is over: its filter goes back to the pool. Further use is a bug and throws. */
  release(): void {
    const r = this.r
    if (!r) return
    this.r = undefined
    this.released = true
    const key = `${this.inRate}>${this.outRate}`
    const list = pool.get(key) ?? []
    if (list.length < POOL_MAX) list.push(r)
    pool.set(key, list)
  }
}

/**
 * One-shot conversion for paths off the packet clock (file playback, tests,
 * benches): aligned with the input and exactly round(len·out/in) long.
 */
export function resample(input: Int16Array, inRate: number, outRate: number): Int16Array {
  if (inRate === outRate) return input.slice()
  const r = new StreamResampler(inRate, outRate)
  const a = r.process(input)
  const b = r.flush()
  r.release()
  const out = new Int16Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}
