/**
 * The agent's outbound queue: a FrameSource the media session pulls on its
 * tick. Barge-in acts here: `pause()` makes the very next tick return null
 * (nothing more goes out), `clear()` drops the queued audio. Because the media
 * tick pulls, "the last outbound agent packet" is exactly the last non-null
 * nextFrame(), which is what the barge-in latency is measured against.
 */
import { performance } from 'node:perf_hooks'
import { samplesPerFrame, type FrameSource, type SampleRate } from '../media/frame.ts'

/** One piece of agent speech (a greeting, a reply sentence, a filler). */
export interface Segment {
  readonly id: number
  readonly text: string
  /** performance.now() of the first / last frame handed to the session. */
  firstFrameAt?: number
  lastFrameAt?: number
  /** Set when dropped by clear() before it finished playing. */
  interrupted: boolean
  /** All audio enqueued (TTS finished). */
  complete: boolean
  done: boolean
}

interface Queued {
  seg: Segment
  pcm: Int16Array
  offset: number
}

export interface PlayoutHooks {
  onSegmentStart?(seg: Segment): void
  onSegmentEnd?(seg: Segment): void
}

let segmentSeq = 0

export class Playout implements FrameSource {
  private queue: Queued[] = []
  private paused = false
  private drainWaiters: Array<() => void> = []
  private segWaiters = new Map<Segment, Array<() => void>>()
  /** performance.now() of the last frame handed out. */
  lastFrameAt = 0
  framesOut = 0

  constructor(
    readonly sampleRate: SampleRate,
    private readonly hooks: PlayoutHooks = {},
  ) {}

  createSegment(text: string): Segment {
    return { id: ++segmentSeq, text, interrupted: false, complete: false, done: false }
  }

  enqueue(seg: Segment, pcm: Int16Array): void {
    if (seg.done || pcm.length === 0) return
    this.queue.push({ seg, pcm, offset: 0 })
  }

  /** No more audio will come for this segment. */
  complete(seg: Segment): void {
    seg.complete = true
    this.finishIfPlayed(seg)
  }

  get hasAudio(): boolean {
    return this.queue.length > 0
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
    const n = samplesPerFrame(this.sampleRate)
    let head = this.queue[0]
    if (!head) return null
    const out = new Int16Array(n)
    let filled = 0
    const now = performance.now()
    // Fill from consecutive chunks of the same segment; a segment boundary pads
    // with silence rather than mixing two segments in one frame.
    const seg = head.seg
    while (head && head.seg === seg && filled < n) {
      if (seg.firstFrameAt === undefined) {
        seg.firstFrameAt = now
        this.hooks.onSegmentStart?.(seg)
      }
      const take = Math.min(n - filled, head.pcm.length - head.offset)
      out.set(head.pcm.subarray(head.offset, head.offset + take), filled)
      filled += take
      head.offset += take
      if (head.offset >= head.pcm.length) {
        this.queue.shift()
        head = this.queue[0]
      }
    }
    seg.lastFrameAt = now
    this.lastFrameAt = now
    this.framesOut++
    this.finishIfPlayed(seg)
    if (this.queue.length === 0) this.wakeDrain()
    return out
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
    for (const q of this.queue) dropped.add(q.seg)
    this.queue = []
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
    seg.interrupted = seg.firstFrameAt !== undefined
    this.markDone(seg)
    if (this.queue.length === 0) this.wakeDrain()
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
    if (this.queue.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.drainWaiters.push(resolve))
  }

  private finishIfPlayed(seg: Segment): void {
    if (seg.done || !seg.complete) return
    if (this.queue.some((q) => q.seg === seg)) return
    this.markDone(seg)
  }

  private markDone(seg: Segment): void {
    if (seg.done) return
    seg.done = true
    this.hooks.onSegmentEnd?.(seg)
    const w = this.segWaiters.get(seg)
    this.segWaiters.delete(seg)
    for (const r of w ?? []) r()
  }

  private wakeDrain(): void {
    for (const w of this.drainWaiters.splice(0)) w()
  }
}
