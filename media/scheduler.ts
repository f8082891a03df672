/**
 * The one media clock (DESIGN.md "One clock"): a drift-free 20 ms tick shared
 * by every session in a thread. Targets are computed as start + n·period from
 * the hrtime clock, never by adding delays, so timing errors do not
 * accumulate. It sleeps with setTimeout until ~1.5 ms before the target and then
 * yields with setImmediate (which still lets socket I/O run) so ticks fire
 * within a fraction of a millisecond without a busy loop for the whole period.
 *
 * Each tick runs in two phases across all tasks: `ingress` (jitter-buffer
 * playout, inbound frames to consumers) then `egress` (pull frames, encode,
 * send). A mixer or bridge therefore sees every participant's frame of tick n
 * before any participant sends tick n.
 */

export interface TickTask {
  ingress?(tick: number, nowMs: number): void
  egress?(tick: number, nowMs: number): void
}

const BUCKET_MS = 0.1
const BUCKETS = 1000 // lateness histogram up to 100 ms

export function hrtimeMs(): number {
  return Number(process.hrtime.bigint()) / 1e6
}

export interface SchedulerStats {
  ticks: number
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
  private readonly tasks: TickTask[] = []
  private running = false
  private tick = 0
  private startMs = 0
  private nextMs = 0
  private timer: NodeJS.Timeout | null = null
  private immediate: NodeJS.Immediate | null = null
  private readonly hist = new Uint32Array(BUCKETS + 1)
  private stats = { ticks: 0, lateTicks: 0, skippedTicks: 0, maxLatenessMs: 0, workMs: 0 }

  /** Called when a task throws; the clock and the other tasks carry on. */
  private readonly onError: (err: unknown, task: TickTask) => void
  taskErrors = 0

  constructor(opts: { periodMs?: number; lateThresholdMs?: number; maxCatchUp?: number; onError?: (err: unknown, task: TickTask) => void } = {}) {
    this.periodMs = opts.periodMs ?? 20
    this.lateThresholdMs = opts.lateThresholdMs ?? 2
    this.maxCatchUp = opts.maxCatchUp ?? 5
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
    const remaining = this.nextMs - hrtimeMs()
    // Timers fire up to ~1 ms late: sleep until 1.5 ms before the target and
    // yield-poll the rest. The poll is the clock's fixed cost (≈ 7% of one
    // core per engine, independent of the number of sessions).
    if (remaining > 2) {
      this.timer = setTimeout(this.wake, remaining - 1.5)
    } else {
      this.immediate = setImmediate(this.wake)
    }
  }

  private readonly wake = (): void => {
    this.timer = null
    this.immediate = null
    if (!this.running) return
    let now = hrtimeMs()
    if (now < this.nextMs - 0.05) { this.arm(); return }
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
    for (let i = 0; i < len; i++) {
      const t = tasks[i]
      if (t?.ingress) {
        try { t.ingress(n, now) } catch (err) { this.taskErrors++; this.onError(err, t) }
      }
    }
    for (let i = 0; i < len; i++) {
      const t = tasks[i]
      if (t?.egress) {
        try { t.egress(n, now) } catch (err) { this.taskErrors++; this.onError(err, t) }
      }
    }
  }

  private percentile(p: number): number {
    const total = this.stats.ticks
    if (total === 0) return 0
    let acc = 0
    const want = total * p
    for (let i = 0; i <= BUCKETS; i++) {
      acc += this.hist[i]!
      if (acc >= want) return (i + 1) * BUCKET_MS
    }
    return BUCKETS * BUCKET_MS
  }

  getStats(): SchedulerStats {
    return {
      ticks: this.stats.ticks,
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
    this.stats = { ticks: 0, lateTicks: 0, skippedTicks: 0, maxLatenessMs: 0, workMs: 0 }
  }
}
