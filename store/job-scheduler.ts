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
  private readonly stopClock: (() => void) | null
  private readonly runs: Counter<'kind' | 'outcome'> | null
  private readonly lateness: Histogram<'kind'> | null

  constructor(private readonly o: JobSchedulerOptions) {
    this.log = o.logger.child({ component: 'jobs' })
    this.stopClock = o.clock instanceof SettableClock ? o.clock.onChange(() => this.poke()) : null
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
    this.looking = this.look()
      .catch((err: unknown) => this.log.error({ err }, 'looking for due jobs failed'))
      .then(async () => {
        this.looking = null
        if (this.stopping) return
        if (this.again) { this.again = false; this.poke(); return }
        await this.sleepUntilNextDue()
      })
  }

  /** Stops claiming, aborts the runs in progress and hands their leases back so another node takes them at once. */
  async stop(): Promise<void> {
    if (this.stopping) return
    this.stopping = true
    this.stopClock?.()
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
      let claimed = 0
      const now = this.o.clock.now()
      for (const [kind, k] of this.kinds) {
        if (this.stopping) return
        const free = k.concurrency - k.running
        if (free <= 0) continue
        const jobs = await this.o.jobs.claim({ owner: this.o.nodeId, kind, now, limit: free, leaseMs: this.o.leaseMs })
        claimed += jobs.length
        for (const job of jobs) this.run(k, job, now)
      }
      // A full batch may have left more due jobs behind; an empty pass means nothing is due.
      if (claimed === 0) return
    }
  }

  private async sleepUntilNextDue(): Promise<void> {
    let wait = this.o.pollMs
    try {
      const next = await this.o.jobs.nextDue([...this.kinds.keys()].filter((k) => this.kinds.get(k)!.running < this.kinds.get(k)!.concurrency))
      if (next) wait = Math.min(wait, Math.max(0, next.getTime() - this.o.clock.now().getTime()))
    } catch (err) {
      this.log.warn({ err }, 'next due job unknown')
    }
    if (this.stopping || this.looking || this.timer) return
    this.timer = setTimeout(() => { this.timer = null; this.poke() }, Math.max(wait, 5))
    this.timer.unref()
  }

  private run(k: Kind, job: Job, now: Date): void {
    k.running++
    const abort = new AbortController()
    this.running.set(job.id, { job, abort })
    this.lateness?.observe({ kind: job.kind }, Math.max(0, now.getTime() - job.dueAt.getTime()) / 1000)
    const ctx: JobContext = { signal: abort.signal, clock: this.o.clock, nodeId: this.o.nodeId }
    void (async () => {
      let outcome: { runAt?: Date; error?: string }
      let label: string
      try {
        const result = await k.handler(job, ctx)
        outcome = result ? { runAt: result.runAt, ...(result.error !== undefined ? { error: result.error } : {}) } : {}
        label = result ? (result.error !== undefined ? 'error' : 'again') : 'done'
      } catch (err) {
        const message = (err as Error)?.message ?? String(err)
        this.log.warn({ err, kind: job.kind, key: job.key, attempts: job.attempts }, 'job failed; it will be retried')
        outcome = { runAt: new Date(this.o.clock.now().getTime() + errorBackoffMs(job.attempts)), error: message }
        label = 'error'
      }
      this.running.delete(job.id)
      k.running--
      if (abort.signal.aborted && this.stopping) {
        // Stopping: the lease goes back as it is (stop() releases it), so another node re-runs the job.
        this.runs?.inc({ kind: job.kind, outcome: 'aborted' })
        return
      }
      try {
        await this.o.jobs.finish(this.o.nodeId, job.id, outcome)
        this.runs?.inc({ kind: job.kind, outcome: label })
      } catch (err) {
        this.log.error({ err, kind: job.kind, key: job.key }, 'a job result could not be recorded; its lease will expire and it runs again')
      }
      this.poke()
    })()
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
