/**
 * Contact centre and outbound at scale (issue 17): the durable job
 * scheduler's overhead per job, a campaign's pacing accuracy against sipp
 * UASs, and how soon a queued caller is bridged once an agent becomes free.
 * Targets: ≤ 1 ms of CPU per job, the achieved call rate within ±5 % of the
 * configured calls per second over a minute, queue assignment p99 ≤ 50 ms.
 *
 *   tsx bench/dialer.ts [--quick|--full] [--out file.json] [--only scheduler,pacing,queue]
 *                       [--postgres] [--jobs N] [--concurrency N] [--cps N]
 *
 * Parts (each can be run alone with --only):
 * - scheduler: store/job-scheduler.ts JobScheduler in this process on the
 *   embedded PGlite (its worker thread is the database side of the CPU) or,
 *   with --postgres, on a throwaway PostgreSQL (test/harness/postgres.ts; its
 *   server processes are the database side). N jobs are scheduled
 *   (JobRepository.schedule, one at a time as a service schedules them), then
 *   run by a handler that does nothing (claim with SKIP LOCKED, the run,
 *   finish): CPU per job scheduled and per job run, engine side (this
 *   process's main thread: the scheduler and the pg client) and database
 *   side apart, jobs/s. Then N jobs due one after the other at a steady rate
 *   (as a campaign's dials fall due): start lateness (due → handler start)
 *   p50/p99 and the CPU per job with the scheduler sleeping between them.
 * - pacing: a campaign (/v1/outplans, /v1/outdials + targets, /v1/campaigns
 *   with calls_per_second and max_concurrent_calls) dials its contacts
 *   through a carrier route to sipp UASs that answer and hang up at once.
 *   The UASs log each INVITE's arrival: the achieved rate over the window
 *   against the configured one, the rate second by second, the most calls up
 *   at once against the ceiling, failures.
 * - queue: callers wait in a /v1/queues queue (queue_join); contact agents
 *   are sipp UAS extensions that answer. From an agent becoming free (set
 *   available over the API) to the caller's bridge (queuecall tm_service).
 *
 * The engine (pacing, queue) is the orchestrator's shared one (bench/run.ts),
 * else one of its own; --postgres starts its own on the throwaway PostgreSQL.
 * Figure ids get `.postgres` with --postgres.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { openDatabase, type Database } from '../store/database.ts'
import { migrate } from '../store/migrator.ts'
import { JobRepository, type Job } from '../store/jobs.ts'
import { JobScheduler, SettableClock } from '../store/job-scheduler.ts'
import { finishBench, parseBenchArgs, percentile, type BenchFigure, type PlotSpec } from './bench-result.ts'
import { killAllEngines } from './engine-process.ts'
import { cpuMeter, exitWithParent, threadSharesMeter } from './proc-stats.ts'
import { cdfFromSamples } from './svg-plot.ts'
import { startPostgres, type ThrowawayPostgres } from '../test/harness/postgres.ts'

const args = parseBenchArgs()
const argv = process.argv.slice(2)
const argOf = (name: string): string | undefined => {
  const i = argv.indexOf(name)
  if (i >= 0) return argv[i + 1]
  return argv.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1)
}
const PARTS = ['scheduler', 'pacing', 'queue'] as const
type Part = (typeof PARTS)[number]
const only = (argOf('--only') ?? '').split(',').filter(Boolean)
if (only.some((p) => !PARTS.includes(p as Part))) {
  process.stderr.write(`dialer: --only takes ${PARTS.join(', ')}\n`)
  process.exit(2)
}
const runs = (p: Part): boolean => only.length === 0 || only.includes(p)
const POSTGRES = argv.includes('--postgres')
const fid = (id: string): string => (POSTGRES ? `${id}.postgres` : id)
const quick = args.mode === 'quick'
const startedAt = new Date()
const cores = cpus().length

/** The targets. */
const TARGET_CPU_MS_PER_JOB = 1
const TARGET_PACING_PCT = 5
const TARGET_QUEUE_P99_MS = 50

/** Jobs through the scheduler, each phase. */
const JOBS = Number(argOf('--jobs') ?? (quick ? 2000 : 10_000))
/** Jobs one kind runs at once on a node: the scheduler's default (a campaign sets its own ceiling). */
const JOB_CONCURRENCY = Number(argOf('--concurrency') ?? 10)
/** The campaign dialer's: one dial job per target, each held while its call rings and talks (call/outbound/campaign-dialer.ts). */
const WIDE_CONCURRENCY = 200
/** Jobs falling due per second in the paced phase (a campaign's dials, well above its calls per second). */
const PACED_RATE = quick ? 200 : 200
const PACED_JOBS = quick ? 1000 : JOBS

const silent = pino({ level: 'silent' })
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const figures: BenchFigure[] = []
const plots: PlotSpec[] = []
const notes: string[] = []
const details: Record<string, unknown> = {}

let postgres: ThrowawayPostgres | undefined
/** The PostgreSQL server's postmaster (its backends are its children). */
let postgresPid: number | undefined
const cleanup = () => {
  killAllEngines()
}
process.on('SIGINT', () => { cleanup(); process.exit(130) })
process.on('SIGTERM', () => { cleanup(); process.exit(143) })
process.on('exit', cleanup)
exitWithParent(cleanup)

async function ensurePostgres(): Promise<ThrowawayPostgres> {
  if (!postgres) {
    postgres = await startPostgres()
    postgresPid = Number(readFileSync(join(postgres.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0])
    notes.push('store: a throwaway PostgreSQL 15 (test/harness/postgres.ts: fsync, full_page_writes and synchronous_commit off) instead of the embedded PGlite; its server processes\' CPU is the database side')
  }
  return postgres
}

// ───────────────────────────────────────────────────────────── scheduler: overhead per job

/**
 * CPU over an interval, split: this process's main thread (the scheduler,
 * the pg client, the handler), the database (the PGlite worker thread, or
 * the PostgreSQL server's processes) and the rest of this process (GC and
 * libuv helper threads).
 */
interface CpuSplit { wallSec: number; totalSec: number; mainSec: number; dbSec: number; otherSec: number }

function cpuSplitMeter(): { read(): CpuSplit } {
  const pid = process.pid
  const threads = threadSharesMeter(pid)
  const pg = postgresPid ? cpuMeter(postgresPid, true, true) : null
  const self0 = process.cpuUsage()
  return {
    read() {
      const self = process.cpuUsage(self0)
      const { wallSec, threads: ts } = threads.read()
      const selfSec = (self.user + self.system) / 1e6
      const mainSec = (ts.find((t) => t.tid === pid)?.share ?? 0) * wallSec
      // Embedded: the busiest other thread of this process is PGlite's worker (SQL runs synchronously there).
      const pgliteSec = pg ? 0 : (ts.find((t) => t.tid !== pid)?.share ?? 0) * wallSec
      const dbSec = pg ? pg.read().cpuSec : pgliteSec
      const otherSec = Math.max(0, selfSec - mainSec - pgliteSec)
      return { wallSec, totalSec: selfSec + (pg ? dbSec : 0), mainSec, dbSec, otherSec }
    },
  }
}

const perJobMs = (sec: number, n: number): number => (sec * 1000) / Math.max(1, n)

async function schedulerPart(): Promise<void> {
  const store = POSTGRES ? 'PostgreSQL' : 'embedded PGlite'
  console.log(`scheduler: ${JOBS} jobs through JobScheduler on ${store} (concurrency ${JOB_CONCURRENCY}), then ${PACED_JOBS} falling due at ${PACED_RATE}/s…`)
  const dataDir = mkdtempSync(join(tmpdir(), 'dialer-bench-'))
  let db: Database | undefined
  let scheduler: JobScheduler | undefined
  try {
    db = await openDatabase({ dataDir, logger: silent, databaseUrl: POSTGRES ? (await ensurePostgres()).url : undefined, poolSize: 10 })
    await migrate(db, silent)
    // Every statement the repository sends, counted: what a job costs in round trips.
    const pool = db.pool
    let statements = 0
    const counted = { query: ((...a: Parameters<typeof pool.query>) => { statements++; return pool.query(...a) }) as typeof pool.query }
    const jobs = new JobRepository(counted)
    const clock = new SettableClock()
    // The engine's lease and poll (config/config.ts JOB_LEASE, JOB_POLL defaults).
    scheduler = new JobScheduler({ jobs, nodeId: 'dialer-bench', clock, logger: silent, leaseMs: 30_000, pollMs: 1000 })
    scheduler.start()

    // Warm-up (JIT, the statements' first plans): a few hundred jobs through both paths.
    let warm = 0
    scheduler.handle('bench.warm', async () => { warm++ }, { concurrency: JOB_CONCURRENCY })
    for (let i = 0; i < 300; i++) await jobs.schedule({ kind: 'bench.warm', key: `w${i}`, dueAt: clock.now(), payload: { i } })
    scheduler.poke()
    await until(() => warm >= 300, 60_000)

    // 1. Scheduling: one schedule() after the other, as a service schedules its work.
    const payload = (i: number) => ({ campaignId: '6f1c6a4e-3c1b-4d0a-9b1e-2f0c7d1a9e55', targetId: `t-${i}`, tryCount: 1 })
    let st0 = statements
    const sm = cpuSplitMeter()
    const due = clock.now()
    for (let i = 0; i < JOBS; i++) await jobs.schedule({ kind: 'bench.burst', key: `b${i}`, dueAt: due, payload: payload(i) })
    const sched = sm.read()
    const schedStatements = statements - st0

    // 2. Running them: all due, a handler that returns at once.
    let ran = 0
    st0 = statements
    const rm = cpuSplitMeter()
    scheduler.handle('bench.burst', async () => { ran++ }, { concurrency: JOB_CONCURRENCY })
    await until(() => ran >= JOBS, 600_000)
    await until(async () => { const c = await jobs.counts('bench.burst'); return c.pending + c.running === 0 }, 60_000, 10)
    const run = rm.read()
    const runStatements = statements - st0

    // 2b. The same with the campaign dialer's concurrency: bigger claims, fewer of them.
    for (let i = 0; i < JOBS; i++) await jobs.schedule({ kind: 'bench.wide', key: `b${i}`, dueAt: due, payload: payload(i) })
    let ranWide = 0
    st0 = statements
    const wm = cpuSplitMeter()
    scheduler.handle('bench.wide', async () => { ranWide++ }, { concurrency: WIDE_CONCURRENCY })
    await until(() => ranWide >= JOBS, 600_000)
    await until(async () => { const c = await jobs.counts('bench.wide'); return c.pending + c.running === 0 }, 60_000, 10)
    const wide = wm.read()
    const wideStatements = statements - st0

    // 3. Paced: jobs due one after the other (a campaign's dials), scheduled ahead, an hour
    // from now in business time; the clock then jumps to just before the first is due.
    const lateness: number[] = []
    const startedBy: number[] = []
    const first = clock.now().getTime() + 3600_000
    for (let i = 0; i < PACED_JOBS; i++) {
      await jobs.schedule({ kind: 'bench.paced', key: `p${i}`, dueAt: new Date(first + Math.round((i * 1000) / PACED_RATE)), payload: payload(i) })
    }
    scheduler.handle('bench.paced', async (job: Job, ctx) => {
      const now = ctx.clock.now().getTime()
      lateness.push(now - job.dueAt.getTime())
      startedBy.push(now - first)
    }, { concurrency: JOB_CONCURRENCY })
    await sleep(300)
    st0 = statements
    const pm = cpuSplitMeter()
    clock.set(new Date(first - 200))
    await until(() => lateness.length >= PACED_JOBS, 600_000)
    await until(async () => { const c = await jobs.counts('bench.paced'); return c.pending + c.running === 0 }, 60_000, 10)
    const paced = pm.read()
    const pacedStatements = statements - st0

    const dbName = POSTGRES ? 'PostgreSQL server' : 'PGlite thread'
    const line = (what: string, c: CpuSplit, n: number, sql: number) =>
      `  ${what}: ${perJobMs(c.totalSec, n).toFixed(3)} ms CPU per job (main thread ${perJobMs(c.mainSec, n).toFixed(3)}, ${dbName} ${perJobMs(c.dbSec, n).toFixed(3)}, other threads ${perJobMs(c.otherSec, n).toFixed(3)}), ${(n / c.wallSec).toFixed(0)} jobs/s, ${(sql / n).toFixed(2)} SQL statements per job`
    console.log(line(`schedule() × ${JOBS}`, sched, JOBS, schedStatements))
    console.log(line(`run × ${JOBS} (claim, handler, finish)`, run, JOBS, runStatements))
    console.log(line(`run × ${JOBS} at concurrency ${WIDE_CONCURRENCY}`, wide, JOBS, wideStatements))
    const late = [...lateness].sort((a, b) => a - b)
    console.log(line(`paced × ${PACED_JOBS} at ${PACED_RATE}/s`, paced, PACED_JOBS, pacedStatements))
    console.log(`  start lateness (due → handler start, business clock): p50 ${percentile(late, 50)} ms, p99 ${percentile(late, 99)} ms, max ${late.at(-1)} ms`)

    const totalPerJob = perJobMs(sched.totalSec, JOBS) + perJobMs(run.totalSec, JOBS)
    figures.push(
      { id: fid('dialer.scheduler_cpu_ms_per_job'), label: `Scheduler CPU per job, scheduled and run (schedule() + claim + a handler that returns + finish; ${JOBS} jobs, ${POSTGRES ? 'this process and the PostgreSQL server' : 'this process with its PGlite thread'})`, value: totalPerJob, unit: 'ms', better: 'lower', target: TARGET_CPU_MS_PER_JOB },
      { id: fid('dialer.scheduler_engine_cpu_ms_per_job'), label: 'Scheduler CPU per job, engine side (the main thread: JobScheduler, the pg client; schedule + run)', value: perJobMs(sched.mainSec, JOBS) + perJobMs(run.mainSec, JOBS), unit: 'ms', better: 'lower' },
      { id: fid('dialer.scheduler_db_cpu_ms_per_job'), label: `Scheduler CPU per job, database side (${dbName}; schedule + run)`, value: perJobMs(sched.dbSec, JOBS) + perJobMs(run.dbSec, JOBS), unit: 'ms', better: 'lower' },
      { id: fid('dialer.scheduler_schedule_cpu_ms_per_job'), label: 'CPU per schedule() (one INSERT … ON CONFLICT, awaited one after the other), all sides', value: perJobMs(sched.totalSec, JOBS), unit: 'ms', better: 'lower' },
      { id: fid('dialer.scheduler_run_cpu_ms_per_job'), label: `CPU per job run (claim FOR UPDATE SKIP LOCKED, handler, finish; concurrency ${JOB_CONCURRENCY}), all sides`, value: perJobMs(run.totalSec, JOBS), unit: 'ms', better: 'lower' },
      { id: fid('dialer.scheduler_jobs_per_sec'), label: `Jobs run per second, all due at once (concurrency ${JOB_CONCURRENCY})`, value: JOBS / run.wallSec, unit: 'jobs/s', better: 'higher' },
      { id: fid('dialer.scheduler_run_cpu_ms_per_job_wide'), label: `CPU per job run at concurrency ${WIDE_CONCURRENCY} (the campaign dialer's), all sides`, value: perJobMs(wide.totalSec, JOBS), unit: 'ms', better: 'lower' },
      { id: fid('dialer.scheduler_jobs_per_sec_wide'), label: `Jobs run per second, all due at once (concurrency ${WIDE_CONCURRENCY})`, value: JOBS / wide.wallSec, unit: 'jobs/s', better: 'higher' },
      { id: fid('dialer.scheduler_schedules_per_sec'), label: 'Jobs scheduled per second (schedule() awaited one after the other)', value: JOBS / sched.wallSec, unit: 'jobs/s', better: 'higher' },
      { id: fid('dialer.scheduler_paced_cpu_ms_per_job'), label: `CPU per job falling due at ${PACED_RATE}/s (run only: the scheduler sleeping until each is due, then claim, handler, finish), all sides`, value: perJobMs(paced.totalSec, PACED_JOBS), unit: 'ms', better: 'lower' },
      { id: fid('dialer.scheduler_run_statements_per_job'), label: `SQL statements per job run, all due at once (claim, finish, the empty claim and nextDue between batches)`, value: runStatements / JOBS, unit: 'statements', better: 'lower' },
      { id: fid('dialer.scheduler_paced_statements_per_job'), label: `SQL statements per job falling due at ${PACED_RATE}/s`, value: pacedStatements / PACED_JOBS, unit: 'statements', better: 'lower' },
      { id: fid('dialer.scheduler_lateness_p50_ms'), label: `Start lateness p50 (due → handler start, ${PACED_JOBS} jobs due at ${PACED_RATE}/s)`, value: percentile(late, 50), unit: 'ms', better: 'lower' },
      { id: fid('dialer.scheduler_lateness_p99_ms'), label: 'Start lateness p99', value: percentile(late, 99), unit: 'ms', better: 'lower' },
    )
    plots.push({
      id: fid('dialer.scheduler_lateness'), title: `Job start lateness: due → handler start (${PACED_JOBS} jobs due at ${PACED_RATE}/s, ${store})`, kind: 'cdf',
      xLabel: 'ms after the job fell due', yLabel: 'share of jobs', series: [cdfFromSamples(store, late)],
    })
    const r3 = (c: CpuSplit) => ({ wallSec: c.wallSec, totalSec: c.totalSec, mainSec: c.mainSec, dbSec: c.dbSec, otherSec: c.otherSec })
    details.scheduler = {
      store, jobs: JOBS, concurrency: JOB_CONCURRENCY, pacedJobs: PACED_JOBS, pacedRate: PACED_RATE,
      schedule: { ...r3(sched), statements: schedStatements }, run: { ...r3(run), statements: runStatements }, runWide: { ...r3(wide), statements: wideStatements, concurrency: WIDE_CONCURRENCY }, paced: { ...r3(paced), statements: pacedStatements },
      lateness: { p50: percentile(late, 50), p90: percentile(late, 90), p99: percentile(late, 99), max: late.at(-1) },
    }
    if (totalPerJob > TARGET_CPU_MS_PER_JOB) notes.push(`scheduler: ${totalPerJob.toFixed(2)} ms of CPU per job on ${store} is over the ${TARGET_CPU_MS_PER_JOB} ms target (schedule ${perJobMs(sched.totalSec, JOBS).toFixed(2)} + run ${perJobMs(run.totalSec, JOBS).toFixed(2)})`)
  } finally {
    await scheduler?.stop()
    await db?.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

async function until(ok: () => boolean | Promise<boolean>, ms: number, everyMs = 5): Promise<void> {
  const end = Date.now() + ms
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s`)
    await sleep(everyMs)
  }
}

// ───────────────────────────────────────────────────────────── main

try {
  if (runs('scheduler')) await schedulerPart()
  notes.push(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at the end on ${cores} cores`)
} catch (err) {
  notes.push(`dialer stopped early: ${(err as Error).message.split('\n')[0]}`)
  console.error(err)
} finally {
  await postgres?.stop()
}

finishBench({
  bench: 'dialer',
  mode: args.mode,
  startedAt: startedAt.toISOString(),
  durationSec: (Date.now() - startedAt.getTime()) / 1000,
  figures, plots, notes, details,
}, args)
process.exit(0)
