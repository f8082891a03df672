/**
 * The agent's outbound queue: a FrameSource the media session pulls on its
 * tick. Barge-in acts here: `pause()` makes the very next tick return null
 * (nothing more goes out), `clear()` drops the queued audio. Because the media
 * tick pulls, "the last outbound agent packet" is exactly the last non-null
 * nextFrame(), which is what the barge-in latency is measured against.
 *
 * TTS audio is queued at its own rate and resampled when a tick pulls it, not
 * when it arrives: a fast TTS delivers a whole reply long before it plays, and
 * a barge-in drops the rest, so converting up front mostly converts audio no
 * one hears. The resampler is aligned (see codecs/stream-resampler.ts), so a segment's sent
 * samples map exactly onto its source audio: `playedMs` is what was heard.
 */
import { performance } from 'node:perf_hooks'
import { samplesPerFrame, type FrameSource, type SampleRate } from '../audio/frame.ts'
import { StreamResampler } from '../codecs/stream-resampler.ts'

/** One piece of agent speech (a greeting, a reply sentence, a filler). */
export interface Segment {
  readonly id: number
  readonly text: string
  /** performance.now() of the first / last frame handed to the session. */
  firstFrameAt?: number
  lastFrameAt?: number
  /** Segment audio sent so far, in ms (the resampler's lead-in excluded). */
  playedMs: number
  /** Segment audio handed to the playout so far, in ms (all of it once `complete`). */
  queuedMs: number
  /** Set when dropped by clear() before it finished playing. */
  interrupted: boolean
  /** All audio enqueued (TTS finished). */
  complete: boolean
  done: boolean
}

interface Queued {
  seg: Segment
  /** Source-rate audio; empty for the end-of-segment marker. */
  pcm: Int16Array
  offset: number
  /** Converts pcm to the playout rate; absent when the rates match. */
  rs: StreamResampler | undefined
  /** End-of-segment marker: flush the resampler's tail here. */
  tail: boolean
}

/**
 * What the caller heard of a segment: all of its text when it played out,
 * else the words in proportion to the audio that went out before it was cut
 * (speech runs at a roughly even word rate, so the share of the audio played
 * is the share of the words heard). A segment whose synthesis was still
 * running counts against the audio queued so far.
 */
export function heardText(seg: Segment): string {
  if (!seg.interrupted || seg.queuedMs <= 0) return seg.text
  const share = Math.min(1, seg.playedMs / seg.queuedMs)
  if (share >= 0.999) return seg.text
  const words = seg.text.split(/\s+/).filter((w) => w.length > 0)
  return words.slice(0, Math.round(words.length * share)).join(' ')
}

export interface PlayoutHooks {
  onSegmentStart?(seg: Segment): void
  onSegmentEnd?(seg: Segment): void
}

const EMPTY = new Int16Array(0)
let segmentSeq = 0

/**
 * Playouts to top up before the next tick. Converting in nextFrame() would put
 * every playing call's resampling inside the media tick, delaying whatever
 * async work (an STT final, an LLM token) is waiting behind it; instead each
 * pull schedules the next frame's conversion, all playouts in one setImmediate.
 */
const toPrepare = new Set<Playout>()
let prepareScheduled = false

function prepareAll(): void {
  prepareScheduled = false
  for (const p of toPrepare) p.prepareNextFrame()
  toPrepare.clear()
}

export class Playout implements FrameSource {
  private queue: Queued[] = []
  private paused = false
  private drainWaiters: Array<() => void> = []
  private segWaiters = new Map<Segment, Array<() => void>>()
  private resamplers = new Map<Segment, StreamResampler>()
  /** Resampled audio of the playing segment not yet sent (a feed overshoots a frame by a sample or two). */
  private carry: Int16Array = new Int16Array(0)
  private carryOff = 0
  private carryLen = 0
  private carrySeg: Segment | undefined
  private readonly frameSamples: number
  /** performance.now() of the last frame handed out. */
  lastFrameAt = 0
  framesOut = 0

  constructor(
    readonly sampleRate: SampleRate,
    private readonly hooks: PlayoutHooks = {},
  ) {
    this.frameSamples = samplesPerFrame(sampleRate)
  }

  createSegment(text: string): Segment {
    return { id: ++segmentSeq, text, interrupted: false, complete: false, done: false, playedMs: 0, queuedMs: 0 }
  }

  /**
   * Queue segment audio at `rate` (default: the playout's). The playout keeps
   * a reference to `pcm` until it has played: callers hand over fresh buffers.
   */
  enqueue(seg: Segment, pcm: Int16Array, rate: number = this.sampleRate): void {
    if (seg.done || seg.complete || pcm.length === 0) return
    seg.queuedMs += (pcm.length * 1000) / rate
    let rs: StreamResampler | undefined
    if (rate !== this.sampleRate) {
      rs = this.resamplers.get(seg)
      if (!rs) this.resamplers.set(seg, (rs = new StreamResampler(rate, this.sampleRate)))
      else if (rs.inRate !== rate) throw new RangeError(`segment ${seg.id}: rate changed from ${rs.inRate} to ${rate} Hz`)
    }
    this.queue.push({ seg, pcm, offset: 0, rs, tail: false })
  }

  /** No more audio will come for this segment. */
  complete(seg: Segment): void {
    if (seg.complete) return
    seg.complete = true
    const rs = this.resamplers.get(seg)
    if (rs && !seg.done) this.queue.push({ seg, pcm: EMPTY, offset: 0, rs, tail: true })
    this.finishIfPlayed(seg)
  }

  get hasAudio(): boolean {
    return this.queue.length > 0 || this.carryLen > 0
  }

  get isPaused(): boolean {
    return this.paused
  }

  /** Segments that still have audio queued or not yet complete. */
  busy(...segs: Segment[]): boolean {
    return segs.some((s) => !s.done)
  }

  nextFrame(): Int16Array | null {
    if (this.paused) return null
    const head = this.queue[0]
    // A segment boundary pads with silence rather than mixing two segments in one frame.
    const seg = this.carryLen > 0 ? this.carrySeg! : head?.seg
    if (!seg) return null
    const n = this.frameSamples
    const out = new Int16Array(n)
    let filled = 0
    while (filled < n) {
      if (this.carryLen > 0) {
        const take = Math.min(n - filled, this.carryLen)
        out.set(this.carry.subarray(this.carryOff, this.carryOff + take), filled)
        filled += take
        this.carryOff += take
        this.carryLen -= take
        continue
      }
      const q = this.queue[0]
      if (!q || q.seg !== seg) break
      if (q.tail) {
        this.queue.shift()
        this.setCarry(seg, q.rs!.flush())
        continue
      }
      const left = q.pcm.length - q.offset
      if (!q.rs) {
        const take = Math.min(n - filled, left)
        out.set(q.pcm.subarray(q.offset, q.offset + take), filled)
        filled += take
        q.offset += take
      } else {
        // Feed about one frame's worth; the sample or two of overshoot waits in `carry`.
        const feed = Math.min(left, q.rs.inputFor(n - filled))
        const need = q.rs.maxOutput(feed)
        if (this.carry.length < need) this.carry = new Int16Array(Math.max(need, 2 * n))
        const got = q.rs.processInto(q.pcm.subarray(q.offset, q.offset + feed), this.carry)
        q.offset += feed
        this.carrySeg = seg
        this.carryOff = 0
        this.carryLen = got
      }
      if (q.offset >= q.pcm.length) this.queue.shift()
    }
    // The filter's lead-in can swallow a tiny first chunk: nothing of the segment went out yet.
    if (filled === 0) {
      this.finishIfPlayed(seg)
      return this.nextFrameAfterEmpty()
    }
    const now = performance.now()
    if (seg.firstFrameAt === undefined) {
      seg.firstFrameAt = now
      this.hooks.onSegmentStart?.(seg)
    }
    seg.playedMs += (filled * 1000) / this.sampleRate
    seg.lastFrameAt = now
    this.lastFrameAt = now
    this.framesOut++
    this.finishIfPlayed(seg)
    if (!this.hasAudio) this.wakeDrain()
    else if (this.carryLen < n && this.queue[0]?.rs && !this.queue[0].tail) {
      toPrepare.add(this)
      if (!prepareScheduled) {
        prepareScheduled = true
        setImmediate(prepareAll)
      }
    }
    return out
  }

  /**
   * Converts the playing segment's next frame of audio now (off the tick), so
   * the next nextFrame() only copies. At most one frame ahead: a barge-in
   * still finds the rest of the reply unconverted.
   */
  prepareNextFrame(): void {
    if (this.paused) return
    const n = this.frameSamples
    const seg = this.carryLen > 0 ? this.carrySeg! : this.queue[0]?.seg
    if (!seg) return
    while (this.carryLen < n) {
      const q = this.queue[0]
      if (!q || q.seg !== seg || !q.rs || q.tail) break
      if (this.carryOff > 0) {
        this.carry.copyWithin(0, this.carryOff, this.carryOff + this.carryLen)
        this.carryOff = 0
      }
      const feed = Math.min(q.pcm.length - q.offset, q.rs.inputFor(n - this.carryLen))
      const need = this.carryLen + q.rs.maxOutput(feed)
      if (this.carry.length < need) {
        const grown = new Int16Array(Math.max(need, 2 * n))
        grown.set(this.carry.subarray(0, this.carryLen))
        this.carry = grown
      }
      const got = q.rs.processInto(q.pcm.subarray(q.offset, q.offset + feed), this.carry.subarray(this.carryLen))
      q.offset += feed
      this.carryLen += got
      this.carrySeg = seg
      if (q.offset >= q.pcm.length) this.queue.shift()
    }
  }

  pause(): void {
    this.paused = true
  }

  resume(): void {
    this.paused = false
  }

  /** Drop everything queued; segments that had not finished are marked interrupted. */
  clear(): Segment[] {
    const dropped = new Set<Segment>()
    if (this.carryLen > 0 && this.carrySeg) dropped.add(this.carrySeg)
    for (const q of this.queue) dropped.add(q.seg)
    this.queue = []
    this.dropCarry()
    for (const seg of dropped) {
      seg.interrupted = true
      this.markDone(seg)
    }
    this.paused = false
    this.wakeDrain()
    return [...dropped]
  }

  /** Abandon a segment that never produced audio (e.g. aborted TTS). */
  abandon(seg: Segment): void {
    if (seg.done) return
    this.queue = this.queue.filter((q) => q.seg !== seg)
    if (this.carrySeg === seg) this.dropCarry()
    seg.interrupted = seg.firstFrameAt !== undefined
    this.markDone(seg)
    if (!this.hasAudio) this.wakeDrain()
  }

  /** Resolves when the segment has played out or was dropped. */
  whenDone(seg: Segment): Promise<void> {
    if (seg.done) return Promise.resolve()
    return new Promise((resolve) => {
      const list = this.segWaiters.get(seg) ?? []
      list.push(resolve)
      this.segWaiters.set(seg, list)
    })
  }

  /** Resolves when nothing is queued (after the last frame was pulled). */
  drained(): Promise<void> {
    if (!this.hasAudio) return Promise.resolve()
    return new Promise((resolve) => this.drainWaiters.push(resolve))
  }

  private finishIfPlayed(seg: Segment): void {
    if (seg.done || !seg.complete) return
    if (this.carryLen > 0 && this.carrySeg === seg) return
    if (this.queue.some((q) => q.seg === seg)) return
    this.markDone(seg)
  }

  private markDone(seg: Segment): void {
    if (seg.done) return
    seg.done = true
    this.resamplers.get(seg)?.release()
    this.resamplers.delete(seg)
    this.hooks.onSegmentEnd?.(seg)
    const w = this.segWaiters.get(seg)
    this.segWaiters.delete(seg)
    for (const r of w ?? []) r()
  }

  /** A frame pull that found only a swallowed lead-in: move on as if the segment had been empty. */
  private nextFrameAfterEmpty(): Int16Array | null {
    if (!this.hasAudio) {
      this.wakeDrain()
      return null
    }
    return this.nextFrame()
  }

  private setCarry(seg: Segment, pcm: Int16Array): void {
    this.carry = pcm.length > this.carry.length ? pcm : (this.carry.set(pcm), this.carry)
    this.carrySeg = seg
    this.carryOff = 0
    this.carryLen = pcm.length
  }

  private dropCarry(): void {
    this.carryLen = 0
    this.carryOff = 0
    this.carrySeg = undefined
  }

  private wakeDrain(): void {
    for (const w of this.drainWaiters.splice(0)) w()
  }
}
