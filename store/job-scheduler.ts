import type { Logger } from 'pino'
import { Counter, Histogram, type Registry } from 'prom-client'
import type { Job, JobRepository } from './jobs.ts'

/**
 * Business time: when jobs fall due, operating hours, retry delays. The
 * engine's is real time; tests move it (SettableClock) instead of waiting.
 */
export interface Clock {
  now(): Date
}

export const systemClock: Clock = { now: () => new Date() }

/** Real time plus an offset the owner moves; time keeps flowing after a move. */
export class SettableClock implements Clock {
  private offsetMs = 0
  private readonly listeners = new Set<() => void>()

  now(): Date {
    return new Date(Date.now() + this.offsetMs)
  }

  set(at: Date): void {
    this.offsetMs = at.getTime() - Date.now()
    for (const fn of this.listeners) fn()
  }

  advance(ms: number): void {
    this.offsetMs += ms
    for (const fn of this.listeners) fn()
  }

  /** Called after every move (the scheduler looks for jobs the move made due). */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }
}

/** void: done, the job goes. runAt: it stays and runs again then (a later step, or outside operating hours). */
export type JobResult = void | { runAt: Date; error?: string | undefined }

export interface JobContext {
  /** Aborted when the node stops or the job's lease is lost (cancelled, or taken over after a stall): stop working on it. */
  signal: AbortSignal
  clock: Clock
  nodeId: string
}

export type JobHandler = (job: Job, ctx: JobContext) => Promise<JobResult>

export interface JobSchedulerOptions {
  jobs: JobRepository
  nodeId: string
  clock: Clock
  logger: Logger
  /** How long a claim holds without renewal: a node that dies hands its jobs on after this. */
  leaseMs: number
  /** The longest sleep between looks for due jobs (other nodes' new jobs, expired leases). */
  pollMs: number
  registry?: Registry | undefined
}

interface Kind {
  handler: JobHandler
  concurrency: number
  running: number
}

interface Running {
  job: Job
  abort: AbortController
}

/** Jobs due this soon are claimed with the ones due now and started at their time here. */
const LOOKAHEAD_MS = 100
/** Runs ending done within this window are recorded in one statement (the row only goes a little later). */
const DONE_BATCH_MS = 10

/** Delay before the n-th retry of a job whose handler threw (1 s, 2 s, 4 s, ... capped at 5 min). */
const errorBackoffMs = (errorsSoFar: number): number => Math.min(1000 * 2 ** Math.max(0, errorsSoFar - 1), 300_000)

/**
 * Runs due jobs of the kinds registered with handle(): claims them with
 * leases (JobRepository.claim, FOR UPDATE SKIP LOCKED), so any number of
 * nodes share the work and no job runs on two at once, renews the leases of
 * the runs in progress, and records each run's result. Nothing lives only
 * here: a node that dies loses nothing but time (its leases expire and
 * another node runs those jobs again, with `attempts` telling the handler so).
 */
export class JobScheduler {
  private readonly kinds = new Map<string, Kind>()
  private readonly running = new Map<string, Running>()
  private readonly log: Logger
  private timer: NodeJS.Timeout | null = null
  private renewTimer: NodeJS.Timeout | null = null
  private started = false
  private stopping = false
  private looking: Promise<void> | null = null
  private again = false
  /** Business time (ms) the timer is set for, and the next due time the last claim reported. */
  private wakeAt = Number.POSITIVE_INFINITY
  private nextDueMs: number | null = null
  /** Runs that ended done, recorded together in one statement. */
  private doneBatch: { ids: string[]; recorded: Promise<void> } | null = null
  private readonly stopClock: (() => void) | null
  private readonly stopScheduled: () => void
  private readonly runs: Counter<'kind' | 'outcome'> | null
  private readonly lateness: Histogram<'kind'> | null

  constructor(private readonly o: JobSchedulerOptions) {
    this.log = o.logger.child({ component: 'jobs' })
    this.stopClock = o.clock instanceof SettableClock ? o.clock.onChange(() => this.poke()) : null
    // A job scheduled on this node wakes this scheduler by its due time; other nodes' jobs are seen by the poll.
    this.stopScheduled = o.jobs.onScheduled((job) => { if (this.kinds.has(job.kind)) this.wakeBy(job.dueAt.getTime()) })
    this.runs = o.registry
      ? new Counter({ name: 'callplane_jobs_total', help: 'Scheduled job runs by kind and outcome (done, again, error, lost)', labelNames: ['kind', 'outcome'] as const, registers: [o.registry] })
      : null
    this.lateness = o.registry
      ? new Histogram({ name: 'callplane_job_start_lateness_seconds', help: 'From a job falling due to its run starting', labelNames: ['kind'] as const, buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 30], registers: [o.registry] })
      : null
  }

  get clock(): Clock {
    return this.o.clock
  }

  get nodeId(): string {
    return this.o.nodeId
  }

  /** Registers the handler of a kind: at most `concurrency` of its jobs run at once on this node. */
  handle(kind: string, handler: JobHandler, opts: { concurrency?: number } = {}): void {
    if (this.kinds.has(kind)) throw new Error(`job kind ${kind} already has a handler`)
    this.kinds.set(kind, { handler, concurrency: Math.max(1, opts.concurrency ?? 10), running: 0 })
    this.poke()
  }

  /** Changes a kind's per-node concurrency (a service whose need grows: the campaign dialer follows its campaigns' ceilings); more room looks for due jobs at once. */
  setConcurrency(kind: string, concurrency: number): void {
    const k = this.kinds.get(kind)
    if (!k) return
    const grew = concurrency > k.concurrency
    k.concurrency = Math.max(1, concurrency)
    if (grew) this.poke()
  }

  /** A kind's per-node concurrency now. */
  concurrencyOf(kind: string): number | undefined {
    return this.kinds.get(kind)?.concurrency
  }

  start(): void {
    if (this.started) return
    this.started = true
    this.renewTimer = setInterval(() => void this.renew(), Math.max(50, Math.floor(this.o.leaseMs / 3)))
    this.renewTimer.unref()
    this.poke()
  }

  /** Look for due jobs now (a job just scheduled due now, a run just finished, the clock moved). */
  poke(): void {
    if (!this.started || this.stopping) return
    if (this.looking) { this.again = true; return }
    if (this.timer) { clearTimeout(this.timer); this.timer = null }
    this.wakeAt = Number.POSITIVE_INFINITY
    this.looking = this.look()
      .catch((err: unknown) => { this.nextDueMs = null; this.log.error({ err }, 'looking for due jobs failed') })
      .then(() => {
        this.looking = null
        if (this.stopping) return
        if (this.again) { this.again = false; this.poke(); return }
        // Sleep until the next due job the claim saw, or the poll (other nodes' new jobs, expired leases).
        this.wakeBy(this.nextDueMs ?? Number.POSITIVE_INFINITY)
      })
  }

  /** Makes sure the scheduler looks again by business time `atMs` (never later than the poll). */
  private wakeBy(atMs: number): void {
    if (!this.started || this.stopping) return
    if (this.looking) {
      // The look under way may have claimed before this job existed: look once more after it.
      if (atMs <= this.o.clock.now().getTime()) this.again = true
      return
    }
    const now = this.o.clock.now().getTime()
    const at = Math.min(atMs, now + this.o.pollMs)
    if (this.timer && this.wakeAt <= at) return
    if (this.timer) clearTimeout(this.timer)
    this.wakeAt = at
    // A few ms at least: a job scheduled inside a transaction becomes visible when that commits.
    this.timer = setTimeout(() => { this.timer = null; this.poke() }, Math.max(5, at - now))
    this.timer.unref()
  }

  /** Stops claiming, aborts the runs in progress and hands their leases back so another node takes them at once. */
  async stop(): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    this.stopClock?.()
    this.stopScheduled()
    if (this.timer) clearTimeout(this.timer)
    if (this.renewTimer) clearInterval(this.renewTimer)
    await this.looking
    const ids = [...this.running.keys()]
    for (const r of this.running.values()) r.abort.abort(new Error('the node is stopping'))
    // Handlers see the abort and return; give them a moment to record what they did.
    const deadline = Date.now() + 3000
    while (this.running.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    // Runs that ended on the abort left their lease as it was; runs still going lose theirs too.
    await this.o.jobs.release(this.o.nodeId, ids).catch((err: unknown) => this.log.warn({ err }, 'job leases could not be handed back (they expire)'))
  }

  private async look(): Promise<void> {
    for (;;) {
      if (this.stopping) return
      const open = [...this.kinds].filter(([, k]) => k.running < k.concurrency)
      // Every kind full: a run that ends pokes.
      if (open.length === 0) { this.nextDueMs = null; return }
      const limit = Math.max(...open.map(([, k]) => k.concurrency - k.running))
      const now = this.o.clock.now()
      // One statement for every kind with room: the claim and the next due time. Jobs due within
      // LOOKAHEAD_MS come along and wait here for their time: a paced stream of jobs costs one
      // claim per window instead of one per job.
      const { jobs, nextDue } = await this.o.jobs.claim({
        owner: this.o.nodeId, kinds: open.map(([kind]) => kind), now: new Date(now.getTime() + LOOKAHEAD_MS), limit, leaseMs: this.o.leaseMs,
      })
      this.nextDueMs = nextDue?.getTime() ?? null
      const over: string[] = []
      for (const job of jobs) {
        const k = this.kinds.get(job.kind)!
        if (k.running >= k.concurrency) over.push(job.id)
        else this.run(k, job)
      }
      // More of a kind than it had room for (the limit is the roomiest kind's): back at once, not run.
      if (over.length) await this.o.jobs.release(this.o.nodeId, over, { unstarted: true })
      // A short batch means nothing else is due now.
      if (jobs.length < limit || over.length === jobs.length) return
    }
  }

  private run(k: Kind, job: Job): void {
    k.running++
    const abort = new AbortController()
    this.running.set(job.id, { job, abort })
    const ctx: JobContext = { signal: abort.signal, clock: this.o.clock, nodeId: this.o.nodeId }
    void (async () => {
      let outcome: { runAt?: Date; error?: string }
      let label: string
      try {
        // Claimed a little ahead (LOOKAHEAD_MS): wait for its time.
        const early = job.dueAt.getTime() - this.o.clock.now().getTime()
        if (early > 0) await new Promise<void>((resolve) => { const t = setTimeout(resolve, early); abort.signal.addEventListener('abort', () => { clearTimeout(t); resolve() }, { once: true }) })
        this.lateness?.observe({ kind: job.kind }, Math.max(0, this.o.clock.now().getTime() - job.dueAt.getTime()) / 1000)
        if (abort.signal.aborted) throw abort.signal.reason instanceof Error ? abort.signal.reason : new Error('aborted before it started')
        const result = await k.handler(job, ctx)
        outcome = result ? { runAt: result.runAt, ...(result.error !== undefined ? { error: result.error } : {}) } : {}
        label = result ? (result.error !== undefined ? 'error' : 'again') : 'done'
      } catch (err) {
        const message = (err as Error)?.message ?? String(err)
        this.log.warn({ err, kind: job.kind, key: job.key, attempts: job.attempts }, 'job failed; it will be retried')
        outcome = { runAt: new Date(this.o.clock.now().getTime() + errorBackoffMs(job.attempts)), error: message }
        label = 'error'
      }
      const wasFull = k.running >= k.concurrency
      this.running.delete(job.id)
      k.running--
      if (abort.signal.aborted && this.stopping) {
        // Stopping: the lease goes back as it is (stop() releases it), so another node re-runs the job.
        this.runs?.inc({ kind: job.kind, outcome: 'aborted' })
        return
      }
      try {
        if (outcome.runAt === undefined && outcome.error === undefined) await this.recordDone(job.id)
        else await this.o.jobs.finish(this.o.nodeId, job.id, outcome)
        this.runs?.inc({ kind: job.kind, outcome: label })
      } catch (err) {
        this.log.error({ err, kind: job.kind, key: job.key }, 'a job result could not be recorded; its lease will expire and it runs again')
      }
      // A kind that was full may have due jobs waiting for this slot; a job kept for later wakes the scheduler then.
      // (After a short pause: runs ending together then share one claim.)
      if (wasFull) this.wakeBy(this.o.clock.now().getTime() + DONE_BATCH_MS)
      else if (outcome.runAt) this.wakeBy(outcome.runAt.getTime())
    })()
  }

  /** Runs ending done within DONE_BATCH_MS share one statement (JobRepository.finishDone). */
  private recordDone(id: string): Promise<void> {
    if (!this.doneBatch) {
      const ids: string[] = []
      const recorded = new Promise<void>((resolve, reject) => setTimeout(() => {
        this.doneBatch = null
        this.o.jobs.finishDone(this.o.nodeId, ids).then(resolve, reject)
      }, DONE_BATCH_MS))
      this.doneBatch = { ids, recorded }
    }
    this.doneBatch.ids.push(id)
    return this.doneBatch.recorded
  }

  private async renew(): Promise<void> {
    if (this.running.size === 0 || this.stopping) return
    const ids = [...this.running.keys()]
    try {
      const held = await this.o.jobs.renew(this.o.nodeId, ids, this.o.leaseMs)
      for (const id of ids) {
        const r = this.running.get(id)
        if (r && !held.has(id)) {
          this.log.warn({ kind: r.job.kind, key: r.job.key }, 'job lease lost (cancelled, or taken over after a stall): aborting its run')
          this.runs?.inc({ kind: r.job.kind, outcome: 'lost' })
          r.abort.abort(new Error('the job was cancelled or its lease was lost'))
        }
      }
    } catch (err) {
      this.log.warn({ err }, 'job leases could not be renewed')
    }
  }
}
