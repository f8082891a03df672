/**
 * The one media clock (DESIGN.md "One clock"): a drift-free 20 ms tick shared
 * by every session in a thread. Targets are computed as start + n·period from
 * the hrtime clock, never by adding delays, so timing errors do not
 * accumulate. Waiting for a target has three stages:
 *  1. setTimeout until `wakeEarlyMs` (1.5 ms) before it: libuv timers have
 *     millisecond granularity and run after the poll phase, so they fire up to
 *     ~1 ms late on an idle box (more when the loop is busy);
 *  2. Atomics.wait on a private cell until `pollMs` before it: a futex sleep
 *     with sub-millisecond resolution that costs no CPU; the loop is blocked
 *     that long and packets wait in the socket queue meanwhile;
 *  3. setImmediate polling (socket I/O keeps being read) for the last
 *     `pollMs`, which also absorbs the futex wake-up latency on a busy box.
 * The default polls the whole window (pollMs = wakeEarlyMs, no futex stage).
 * That poll is the clock's fixed cost (~8 % of a core per engine whatever the
 * number of sessions) and, measured with V8's sampling heap profiler at 100
 * G.711 sessions, about a third of the media path's garbage (one Immediate
 * object per poll). `pollMs: 0.3` saved 2–3 % of a core there, but in
 * interleaved runs on the shared 2-core bench box (load 2–3) a sleeping
 * thread waited for a core when the futex expired and the on-the-wire p99
 * was not better (2.4–2.7 ms polling vs 4.4–5.5 ms), so polling stays the
 * default until a quiet box says otherwise; `pollMs: 0` blocks to the target.
 *
 * Lateness is broken down so its cause shows: `timerOvershoot` (stage 1 woke
 * after the target: the event loop was blocked by other work, a GC pause or
 * the box's CPU contention) versus lateness the final stages added.
 *
 * Each tick runs in three passes over the tasks:
 *  1. `egress` of every task whose outbound audio does not come from this
 *     tick's inbound audio (TTS, playback, tones, silence): packets leave at
 *     the tick's start, so their timing does not depend on how long decoding
 *     and the consumers (VAD, STT, recorders) take this tick;
 *  2. `ingress` of every task (jitter-buffer playout, inbound frames to
 *     consumers);
 *  3. `egress` of the tasks that said `egressAfterIngress()`: a transcoding
 *     bridge or a conference mixer needs every participant's frame of tick n
 *     before any participant sends tick n.
 * Measured on the bench box (bench/media-sessions.ts, 100 G.711 sessions):
 * with ingress before every egress, each packet left after all sessions'
 * decode work and the on-the-wire pacing deviation followed that work's
 * variance.
 * The price: a consumer that reacts to inbound audio (barge-in flush) acts
 * from the next tick's packet, one frame later than it would after pass 2.
 */

export interface TickTask {
  ingress?(tick: number, nowMs: number): void
  egress?(tick: number, nowMs: number): void
  /** True when this tick's egress needs this tick's ingress of other tasks (bridge, mixer). */
  egressAfterIngress?(): boolean
}

const BUCKET_MS = 0.1
const BUCKETS = 1000 // lateness histogram up to 100 ms

/**
 * The media clock in milliseconds: performance.now(), monotonic and
 * sub-microsecond like process.hrtime, and the clock AudioFrame.receivedAt is
 * documented in. process.hrtime.bigint() allocated a BigInt per call, and the
 * clock is read in every poll of the final wait stage: measured with the
 * sampling heap profiler, ~5 % of the media path's garbage at 100 sessions.
 */
export function hrtimeMs(): number {
  return performance.now()
}

export interface SchedulerStats {
  ticks: number
  /** Ticks whose setTimeout fired after the tick's target (the loop or the process was held up). */
  timerLateTicks: number
  /** p99 of how much later than asked setTimeout fired (ms). */
  p99TimerOvershootMs: number
  /** Mean time per tick the clock spent asleep in its futex stage (ms). */
  meanBlockedWaitMs: number
  /** Ticks that started more than `lateThresholdMs` after their target. */
  lateTicks: number
  /** Ticks skipped after a stall longer than maxCatchUp periods. */
  skippedTicks: number
  tasks: number
  maxLatenessMs: number
  p50LatenessMs: number
  p99LatenessMs: number
  /** Mean wall time spent running tasks per tick. */
  meanTickWorkMs: number
  /** Exceptions thrown by tasks (each logged, none fatal). */
  taskErrors: number
}

export class MediaScheduler {
  readonly periodMs: number
  private readonly lateThresholdMs: number
  private readonly maxCatchUp: number
  private readonly wakeEarlyMs: number
  private readonly pollMs: number
  /** Never notified: Atomics.wait on it is a plain timed futex sleep. */
  private readonly waitCell = new Int32Array(new SharedArrayBuffer(4))
  /** When the pending setTimeout was asked to fire (0 = none pending). */
  private timerDueMs = 0
  private readonly overshootHist = new Uint32Array(BUCKETS + 1)
  private readonly tasks: TickTask[] = []
  /** Pass-3 tasks of the running tick (reused: no allocation per tick). */
  private readonly lateEgress: TickTask[] = []
  private running = false
  private tick = 0
  private startMs = 0
  private nextMs = 0
  private timer: NodeJS.Timeout | null = null
  private immediate: NodeJS.Immediate | null = null
  private readonly hist = new Uint32Array(BUCKETS + 1)
  private stats = { ticks: 0, lateTicks: 0, skippedTicks: 0, maxLatenessMs: 0, workMs: 0, timerWakes: 0, timerLateTicks: 0, blockedMs: 0 }

  private readonly afterTick: ((slackMs: number) => void) | null
  /** Called when a task throws; the clock and the other tasks carry on. */
  private readonly onError: (err: unknown, task: TickTask) => void
  taskErrors = 0

  constructor(opts: {
    periodMs?: number; lateThresholdMs?: number; maxCatchUp?: number
    /** Stage 1 ends this long before a target (default 1.5 ms). */
    wakeEarlyMs?: number
    /** Stage 3 polls this long before a target (default: all of wakeEarlyMs); before it, stage 2 sleeps. */
    pollMs?: number
    onError?: (err: unknown, task: TickTask) => void
    /** Runs after each tick's work with the time left before the next target (e.g. IdleGc). */
    afterTick?: (slackMs: number) => void
  } = {}) {
    this.periodMs = opts.periodMs ?? 20
    this.lateThresholdMs = opts.lateThresholdMs ?? 2
    this.maxCatchUp = opts.maxCatchUp ?? 5
    this.wakeEarlyMs = opts.wakeEarlyMs ?? 1.5
    this.pollMs = Math.max(0, Math.min(opts.pollMs ?? this.wakeEarlyMs, this.wakeEarlyMs))
    this.afterTick = opts.afterTick ?? null
    this.onError = opts.onError ?? ((err) => { if (this.taskErrors <= 10) console.error('media scheduler task failed:', err) })
  }

  /** Adds a task; the clock starts with the first task and stops with the last. */
  add(task: TickTask): void {
    this.tasks.push(task)
    if (!this.running) this.start()
  }

  remove(task: TickTask): void {
    const i = this.tasks.indexOf(task)
    if (i >= 0) this.tasks.splice(i, 1)
    if (this.tasks.length === 0) this.stop()
  }

  get currentTick(): number { return this.tick }

  private start(): void {
    this.running = true
    this.startMs = hrtimeMs()
    this.nextMs = this.startMs + this.periodMs
    this.arm()
  }

  stop(): void {
    this.running = false
    if (this.timer) clearTimeout(this.timer)
    if (this.immediate) clearImmediate(this.immediate)
    this.timer = null
    this.immediate = null
  }

  private arm(): void {
    if (!this.running) return
    const now = hrtimeMs()
    const remaining = this.nextMs - now
    if (remaining > this.wakeEarlyMs + 1) {
      const delay = remaining - this.wakeEarlyMs
      this.timerDueMs = now + delay
      this.timer = setTimeout(this.wake, delay)
    } else {
      this.immediate = setImmediate(this.wake)
    }
  }

  private readonly wake = (): void => {
    this.timer = null
    this.immediate = null
    if (!this.running) return
    let now = hrtimeMs()
    if (this.timerDueMs !== 0) {
      // Stage 1 ended: how late did the timer fire, and did it overrun the target itself?
      const over = now - this.timerDueMs
      this.timerDueMs = 0
      this.stats.timerWakes++
      this.overshootHist[Math.min(BUCKETS, Math.max(0, Math.floor(over / BUCKET_MS)))]!++
      if (now > this.nextMs + this.lateThresholdMs) this.stats.timerLateTicks++
    }
    let remaining = this.nextMs - now
    if (remaining > this.wakeEarlyMs + 1) { this.arm(); return } // woke early (clock adjustments, a spurious immediate)
    if (remaining > this.pollMs + 0.02) {
      Atomics.wait(this.waitCell, 0, 0, remaining - this.pollMs)
      const after = hrtimeMs()
      this.stats.blockedMs += after - now
      now = after
      remaining = this.nextMs - now
    }
    if (remaining > 0) { this.immediate = setImmediate(this.wake); return }
    let late = now - this.nextMs
    if (late > this.maxCatchUp * this.periodMs) {
      // A stall (GC, blocked loop): resynchronise instead of bursting dozens of packets.
      const skipped = Math.floor(late / this.periodMs)
      this.stats.skippedTicks += skipped
      this.nextMs += skipped * this.periodMs
      // Tick numbers keep counting media time, so tasks see the gap.
      this.tick += skipped
      late = now - this.nextMs
    }
    this.record(late)
    const t0 = now
    this.runTick(now)
    this.nextMs += this.periodMs
    now = hrtimeMs()
    this.stats.workMs += now - t0
    if (this.afterTick) {
      try { this.afterTick(this.nextMs - now) } catch (err) { this.onError(err, { }) }
    }
    this.arm()
  }

  private record(late: number): void {
    this.stats.ticks++
    if (late > this.lateThresholdMs) this.stats.lateTicks++
    if (late > this.stats.maxLatenessMs) this.stats.maxLatenessMs = late
    const b = Math.min(BUCKETS, Math.max(0, Math.floor(late / BUCKET_MS)))
    this.hist[b]!++
  }

  private runTick(now: number): void {
    const n = ++this.tick
    const tasks = this.tasks
    // Iterate by index over a length snapshot: tasks may remove themselves.
    const len = tasks.length
    const late = this.lateEgress
    late.length = 0
    for (let i = 0; i < len; i++) {
      const t = tasks[i]
      if (!t?.egress) continue
      if (t.egressAfterIngress?.()) { late.push(t); continue }
      try { t.egress(n, now) } catch (err) { this.taskErrors++; this.onError(err, t) }
    }
    for (let i = 0; i < len; i++) {
      const t = tasks[i]
      if (t?.ingress) {
        try { t.ingress(n, now) } catch (err) { this.taskErrors++; this.onError(err, t) }
      }
    }
    for (let i = 0; i < late.length; i++) {
      const t = late[i]!
      try { t.egress!(n, now) } catch (err) { this.taskErrors++; this.onError(err, t) }
    }
    late.length = 0
  }

  private percentile(p: number, hist = this.hist, total = this.stats.ticks): number {
    if (total === 0) return 0
    let acc = 0
    const want = total * p
    for (let i = 0; i <= BUCKETS; i++) {
      acc += hist[i]!
      if (acc >= want) return (i + 1) * BUCKET_MS
    }
    return BUCKETS * BUCKET_MS
  }

  /** Lateness histogram: counts per 0.1 ms bucket from 0 (the last bucket holds ≥ 100 ms). */
  latenessHistogram(): { bucketMs: number; counts: number[] } {
    let last = 0
    for (let i = 0; i <= BUCKETS; i++) if (this.hist[i]! > 0) last = i
    return { bucketMs: BUCKET_MS, counts: Array.from(this.hist.subarray(0, last + 1)) }
  }

  getStats(): SchedulerStats {
    return {
      ticks: this.stats.ticks,
      timerLateTicks: this.stats.timerLateTicks,
      p99TimerOvershootMs: this.percentile(0.99, this.overshootHist, this.stats.timerWakes),
      meanBlockedWaitMs: this.stats.ticks ? this.stats.blockedMs / this.stats.ticks : 0,
      lateTicks: this.stats.lateTicks,
      skippedTicks: this.stats.skippedTicks,
      tasks: this.tasks.length,
      maxLatenessMs: Math.round(this.stats.maxLatenessMs * 1000) / 1000,
      p50LatenessMs: this.percentile(0.5),
      p99LatenessMs: this.percentile(0.99),
      meanTickWorkMs: this.stats.ticks ? this.stats.workMs / this.stats.ticks : 0,
      taskErrors: this.taskErrors,
    }
  }

  resetStats(): void {
    this.hist.fill(0)
    this.overshootHist.fill(0)
    this.stats = { ticks: 0, lateTicks: 0, skippedTicks: 0, maxLatenessMs: 0, workMs: 0, timerWakes: 0, timerLateTicks: 0, blockedMs: 0 }
  }
}
