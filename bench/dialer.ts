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
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { openDatabase, type Database } from '../store/database.ts'
import { migrate } from '../store/migrator.ts'
import { JobRepository, type Job } from '../store/jobs.ts'
import { JobScheduler, SettableClock } from '../store/job-scheduler.ts'
import { finishBench, parseBenchArgs, percentile, type BenchFigure, type PlotSpec } from './bench-result.ts'
import { acquireEngineProcess, killAllEngines, startEngineProcess, type EngineProcess } from './engine-process.ts'
import { cpuMeter, exitWithParent, threadSharesMeter } from './proc-stats.ts'
import { cdfFromSamples } from './svg-plot.ts'
import { startPostgres, type ThrowawayPostgres } from '../test/harness/postgres.ts'
import { freePort } from '../test/harness/ports.ts'
import { runSipp, waitListening } from '../test/harness/sipp.ts'
import { sleep, waitFor } from '../test/harness/wait.ts'
import { sippUas } from '../test/sip/app/sipp-util.ts'
import { calleeScenario, callerScenario, concurrency, parseCalleeLog, type CalleeCall } from './dialer-scenarios.ts'

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
/** The orchestrator's bound for this script (BENCH_BUDGET_SEC), else the mode's: parts that would not fit are skipped and noted. */
const budgetSec = Number(process.env.BENCH_BUDGET_SEC ?? (quick ? 175 : 475)) - 3
const elapsed = (): number => (Date.now() - startedAt.getTime()) / 1000
const fits = (part: string, needSec: number): boolean => {
  if (elapsed() + needSec <= budgetSec) return true
  notes.push(`${part}: not run, the time budget (${budgetSec + 3} s) would be exceeded (${elapsed().toFixed(0)} s spent, ~${needSec.toFixed(0)} s needed)`)
  return false
}

/** The issue's targets. */
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

/** Pacing: the campaign's configured calls per second, how long it is measured, its contacts. */
const CPS = Number(argOf('--cps') ?? (quick ? 20 : 50))
const PACING_WINDOW_SEC = quick ? 20 : 60
const CONTACTS = quick ? Math.ceil(CPS * PACING_WINDOW_SEC * 1.5) : 10_000
/** How long the UAS holds each answered call before its BYE: answer and hang up quickly. */
const PACING_HOLD_MS = 1000
/** The ceiling of the pacing campaign: well above cps × a call's length, so pacing alone sets the rate. */
const PACING_CEILING = Math.ceil(CPS * 4)
/** The ceiling phase: calls held longer than the ceiling allows at this rate, so the ceiling binds. */
const CEILING = quick ? 15 : 40
const CEILING_HOLD_MS = 3000
const CEILING_WINDOW_SEC = quick ? 8 : 20
/** Queue: contact agents (one sipp callee, a user each), how long each holds a caller, callers in line at once, the window. */
const AGENTS = quick ? 4 : 8
const AGENT_HOLD_MS = 1500
const CALLERS_UP = AGENTS * 3
const QUEUE_WINDOW_SEC = quick ? 15 : 60
/** The numbers the campaigns dial (New York 212-555-xxxx, fictional), routed to the UAS by a carrier route. */
const DIAL_PREFIX = '+1212555'

const silent = pino({ level: 'silent' })
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
    // 1b. The same jobs through scheduleMany(), as a campaign arms its targets: 500 rows per statement.
    st0 = statements
    const bm = cpuSplitMeter()
    await jobs.scheduleMany(Array.from({ length: JOBS }, (_, i) => ({ kind: 'bench.bulk', key: `b${i}`, dueAt: due, payload: payload(i) })))
    const bulk = bm.read()
    const bulkStatements = statements - st0

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
    console.log(line(`scheduleMany() × ${JOBS}`, bulk, JOBS, bulkStatements))
    console.log(line(`run × ${JOBS} (claim, handler, finish)`, run, JOBS, runStatements))
    console.log(line(`run × ${JOBS} at concurrency ${WIDE_CONCURRENCY}`, wide, JOBS, wideStatements))
    const late = [...lateness].sort((a, b) => a - b)
    console.log(line(`paced × ${PACED_JOBS} at ${PACED_RATE}/s`, paced, PACED_JOBS, pacedStatements))
    console.log(`  start lateness (due → handler start, business clock): p50 ${percentile(late, 50)} ms, p99 ${percentile(late, 99)} ms, max ${late.at(-1)} ms`)

    const totalPerJob = perJobMs(sched.totalSec, JOBS) + perJobMs(run.totalSec, JOBS)
    // The campaign dialer's path: its targets armed with scheduleMany(), run at its concurrency.
    const campaignPerJob = perJobMs(bulk.totalSec, JOBS) + perJobMs(wide.totalSec, JOBS)
    figures.push(
      { id: fid('dialer.scheduler_cpu_ms_per_job'), label: `Scheduler CPU per job as a campaign uses it, scheduled and run (scheduleMany() + claim at concurrency ${WIDE_CONCURRENCY} + a handler that returns + batched finish; ${JOBS} jobs, ${POSTGRES ? 'this process and the PostgreSQL server' : 'this process with its PGlite thread'})`, value: campaignPerJob, unit: 'ms', better: 'lower', target: TARGET_CPU_MS_PER_JOB },
      { id: fid('dialer.scheduler_cpu_ms_per_job_one_by_one'), label: `Scheduler CPU per job, one schedule() each and run at concurrency ${JOB_CONCURRENCY} (a service scheduling its work one job at a time)`, value: totalPerJob, unit: 'ms', better: 'lower' },
      { id: fid('dialer.scheduler_schedule_many_cpu_ms_per_job'), label: 'CPU per job scheduled with scheduleMany() (500 rows per statement), all sides', value: perJobMs(bulk.totalSec, JOBS), unit: 'ms', better: 'lower' },
      { id: fid('dialer.scheduler_engine_cpu_ms_per_job'), label: 'Scheduler CPU per job, engine side (the main thread: JobScheduler, the pg client; schedule + run)', value: perJobMs(sched.mainSec, JOBS) + perJobMs(run.mainSec, JOBS), unit: 'ms', better: 'lower' },
      { id: fid('dialer.scheduler_db_cpu_ms_per_job'), label: `Scheduler CPU per job, database side (${dbName}; schedule + run)`, value: perJobMs(sched.dbSec, JOBS) + perJobMs(run.dbSec, JOBS), unit: 'ms', better: 'lower' },
      { id: fid('dialer.scheduler_schedule_cpu_ms_per_job'), label: 'CPU per schedule() (one INSERT … ON CONFLICT, awaited one after the other), all sides', value: perJobMs(sched.totalSec, JOBS), unit: 'ms', better: 'lower' },
      { id: fid('dialer.scheduler_run_cpu_ms_per_job'), label: `CPU per job run (claim FOR UPDATE SKIP LOCKED, handler, finish; concurrency ${JOB_CONCURRENCY}), all sides`, value: perJobMs(run.totalSec, JOBS), unit: 'ms', better: 'lower' },
      { id: fid('dialer.scheduler_jobs_per_sec'), label: `Jobs run per second, all due at once (concurrency ${JOB_CONCURRENCY})`, value: JOBS / run.wallSec, unit: 'jobs/s', better: 'higher' },
      { id: fid('dialer.scheduler_run_cpu_ms_per_job_wide'), label: `CPU per job run at concurrency ${WIDE_CONCURRENCY} (the campaign dialer's), all sides`, value: perJobMs(wide.totalSec, JOBS), unit: 'ms', better: 'lower' },
      { id: fid('dialer.scheduler_jobs_per_sec_wide'), label: `Jobs run per second, all due at once (concurrency ${WIDE_CONCURRENCY})`, value: JOBS / wide.wallSec, unit: 'jobs/s', better: 'higher' },
      { id: fid('dialer.scheduler_schedules_per_sec'), label: 'Jobs scheduled per second (schedule() awaited one after the other)', value: JOBS / sched.wallSec, unit: 'jobs/s', better: 'higher' },
      { id: fid('dialer.scheduler_paced_cpu_ms_per_job'), label: `CPU per job falling due at ${PACED_RATE}/s (run only: the scheduler sleeping until each is due, then claim, handler, finish), all sides`, value: perJobMs(paced.totalSec, PACED_JOBS), unit: 'ms', better: 'lower' },
      { id: fid('dialer.scheduler_run_statements_per_job'), label: `SQL statements per job run, all due at once (claims with the next due time, batched finishes)`, value: runStatements / JOBS, unit: 'statements', better: 'lower' },
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
    if (campaignPerJob > TARGET_CPU_MS_PER_JOB) notes.push(`scheduler: ${campaignPerJob.toFixed(2)} ms of CPU per job on ${store} (the campaign path) is over the ${TARGET_CPU_MS_PER_JOB} ms target`)
    if (totalPerJob > TARGET_CPU_MS_PER_JOB) notes.push(`scheduler: one schedule() per job at concurrency ${JOB_CONCURRENCY} costs ${totalPerJob.toFixed(2)} ms per job on ${store} (schedule ${perJobMs(sched.totalSec, JOBS).toFixed(2)} + run ${perJobMs(run.totalSec, JOBS).toFixed(2)}): a service scheduling one job at a time pays the INSERT's round trip; the campaigns use scheduleMany`)
  } finally {
    await scheduler?.stop()
    await db?.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

async function until(ok: () => boolean | Promise<boolean>, ms: number, everyMs = 5): Promise<void> {
  await waitFor(ok, ms, `${ms / 1000} s`, everyMs)
}


// ───────────────────────────────────────────────────────────── the engine and its API

let engine: (EngineProcess & { shared: boolean }) | undefined

async function ensureEngine(): Promise<EngineProcess & { shared: boolean }> {
  if (engine) return engine
  if (POSTGRES) {
    const pg = await ensurePostgres()
    engine = { ...(await startEngineProcess({ rtpPorts: 2000, timeoutMs: 90_000, env: { DATABASE_URL: pg.url } })), shared: false }
  } else {
    engine = await acquireEngineProcess({ rtpPorts: 2000, timeoutMs: 90_000 })
  }
  console.log(`engine pid ${engine.pid} up${engine.shared ? ' (shared by the orchestrator)' : ` in ${engine.startupSec.toFixed(1)} s`} (SIP 127.0.0.1:${engine.sipPort})`)
  return engine
}

interface Reply { status: number; body: Record<string, unknown> }

function restOf(e: EngineProcess) {
  const req = async (method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Reply> => {
    const r = await fetch(`http://127.0.0.1:${e.httpPort}${path}`, {
      method, signal: AbortSignal.timeout(60_000),
      headers: { authorization: `Bearer ${e.apiKey}`, ...(body === undefined ? {} : { 'content-type': contentType }) },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    })
    const text = await r.text()
    let parsed: Record<string, unknown> = {}
    try { parsed = JSON.parse(text) as Record<string, unknown> } catch { parsed = { text } }
    return { status: r.status, body: parsed }
  }
  const create = async (path: string, body: unknown): Promise<Record<string, unknown>> => {
    const r = await req('POST', path, body)
    if (r.status !== 201 && r.status !== 200) throw new Error(`POST ${path} answered ${r.status}: ${JSON.stringify(r.body).slice(0, 400)}`)
    return r.body
  }
  /** True when the engine serves the route (a list answers 200; an unknown route 404). */
  const has = async (path: string): Promise<boolean> => (await req('GET', `${path}?limit=1`)).status === 200
  /** Every callplane_* series of /metrics, keyed `name{labels}`. */
  const metrics = async (): Promise<Record<string, number>> => {
    try {
      const text = await (await fetch(`http://127.0.0.1:${e.httpPort}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
      const out: Record<string, number> = {}
      for (const m of text.matchAll(/^(callplane_[a-z_]+)(\{[^}]*\})?\s+([\d.eE+-]+)$/gm)) out[`${m[1]}${m[2] ?? ''}`] = Number(m[3])
      return out
    } catch {
      return {}
    }
  }
  const metric = async (name: string): Promise<number> => (await metrics())[name] ?? NaN
  /** Every item of a cursor list. */
  const all = async (path: string, max = 50_000): Promise<Record<string, unknown>[]> => {
    const out: Record<string, unknown>[] = []
    let cursor: string | null = null
    do {
      const r = await req('GET', `${path}${path.includes('?') ? '&' : '?'}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)
      if (r.status !== 200) break
      out.push(...(r.body.data as Record<string, unknown>[]))
      cursor = r.body.nextCursor as string | null
    } while (cursor && out.length < max)
    return out
  }
  return { req, create, has, metric, metrics, all }
}
type Rest = ReturnType<typeof restOf>

/** A number of the account (the campaigns' caller ID). */
async function ownNumber(rest: Rest): Promise<string> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const number = `+1415555${String(Math.floor(Math.random() * 10000)).padStart(4, '0')}`
    const r = await rest.req('POST', '/v1/numbers', { number, name: 'dialer bench caller ID', target: { type: 'none' } })
    if (r.status === 201) return number
    if (r.status !== 409) throw new Error(`POST /v1/numbers answered ${r.status}: ${JSON.stringify(r.body).slice(0, 400)}`)
  }
  throw new Error('no free bench number after 20 tries')
}

// ───────────────────────────────────────────────────────────── pacing: a campaign against the callee

interface OpenSample { at: number; dialing: number; progressing: number }

interface CampaignRun {
  label: string
  cps: number
  ceiling: number
  holdMs: number
  windowSec: number
  contacts: number
  importSec: number
  calls: CalleeCall[]
  /** The window measured: from the first INVITE, windowSec long. */
  from: number
  invitesInWindow: number
  achievedCps: number
  errorPct: number
  perSecond: number[]
  maxUpAtCallee: number
  maxActiveEngine: number
  /** The campaign's own count of attempts dialling or on a call (stats.in_progress), sampled every ~200 ms. */
  maxInProgress: number
  /** Open attempts sampled every ~0.3 s: reserved (dialing) and placed (progressing), ≤ 100 each. */
  open: OpenSample[]
  outcomes: Record<string, number>
  calleeFailed: number
  engineCpu: { cpuSec: number; coreShare: number }
  /** The engine's main thread and its busiest other thread (the embedded store's PGlite), share of a core. */
  mainThreadShare: number
  busiestOtherThreadShare: number
  /** campaign.dial job runs by outcome during the window (the scheduler's callplane_jobs_total). */
  jobRuns: Record<string, number>
  /** After the stop: how long until no dial job ran any more (s), and how many ran meanwhile. */
  drainSec: number
  drainRuns: number
}

/**
 * One campaign: a contact list of `contacts` numbers (CSV import), an outplan
 * (one attempt, our number as caller ID), a flow campaign whose answered calls
 * wait (the callee hangs up after holdMs), run until `windowSec` after the
 * first INVITE reached the callee, then stopped; the calls under way end.
 */
async function runCampaign(rest: Rest, o: { label: string; cps: number; ceiling: number; holdMs: number; windowSec: number; contacts: number; source: string }): Promise<CampaignRun> {
  const e = engine!
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'dialer-callee-'))
  const scenario = join(dir, 'callee.xml')
  writeFileSync(scenario, calleeScenario(o.holdMs))
  const lifeMs = (o.windowSec + 90) * 1000 + o.contacts * 5
  const callee = sippUas(scenario, port, { timeoutMs: lifeMs, calls: 10_000_000, args: ['-recv_timeout', String(o.holdMs + 30_000)] })
  try {
    await waitListening(port)
    const trunk = await rest.create('/v1/trunks', { name: `dialer bench carrier (${o.label})`, outbound: { host: '127.0.0.1', port } })
    const route = await rest.create('/v1/routes', { name: `dialer bench ${o.label}`, prefix: DIAL_PREFIX, trunkId: trunk.id, priority: 0 })
    const outplan = await rest.create('/v1/outplans', { name: `dialer bench ${o.label}`, source: { type: 'tel', target: o.source }, dial_timeout: 10_000, max_attempts: 1 })
    const outdial = await rest.create('/v1/outdials', { name: `dialer bench ${o.label}` })
    const csv = ['name,destination', ...Array.from({ length: o.contacts }, (_, i) => `contact ${i},${DIAL_PREFIX}${String(i % 10_000).padStart(4, '0')}`)].join('\n')
    const t0 = Date.now()
    const imp = await rest.req('POST', `/v1/outdials/${outdial.id as string}/targets/csv`, csv, 'text/csv')
    const importSec = (Date.now() - t0) / 1000
    if (imp.status >= 300 || Number(imp.body.imported) !== o.contacts) throw new Error(`the CSV import of ${o.contacts} contacts answered ${imp.status}: ${JSON.stringify(imp.body).slice(0, 300)}`)
    const campaign = await rest.create('/v1/campaigns', {
      name: `dialer bench ${o.label}`, type: 'flow', actions: [{ type: 'sleep', option: { duration: o.holdMs + 20_000 } }],
      outplan_id: outplan.id, outdial_id: outdial.id, calls_per_second: o.cps, max_concurrent_calls: o.ceiling, end_handle: 'stop',
    })
    const id = campaign.id as string
    console.log(`  ${o.label}: ${o.contacts} contacts imported in ${importSec.toFixed(1)} s; campaign ${id} at ${o.cps} calls/s, ceiling ${o.ceiling}, callee holds ${o.holdMs} ms…`)
    const cpu = cpuMeter(e.pid, true)
    const threads = threadSharesMeter(e.pid, true)
    const m0 = await rest.metrics()
    let maxActive = 0
    let maxInProgress = 0
    const started = Date.now()
    const run = await rest.req('POST', `/v1/campaigns/${id}/status`, { status: 'run' })
    if (run.status >= 300) throw new Error(`starting the campaign answered ${run.status}: ${JSON.stringify(run.body).slice(0, 300)}`)
    // The window runs from the first INVITE; the engine's gauge is sampled meanwhile.
    const end = started + (o.windowSec + 5) * 1000
    const open: OpenSample[] = []
    while (Date.now() < end) {
      const a = await rest.metric('callplane_active_calls')
      if (Number.isFinite(a)) maxActive = Math.max(maxActive, a)
      const st = (await rest.req('GET', `/v1/campaigns/${id}`)).body.stats as { in_progress?: number } | undefined
      maxInProgress = Math.max(maxInProgress, st?.in_progress ?? 0)
      // Open attempts by state: reserved and waiting for their pacing slot (dialing), or placed (progressing).
      const count = async (status: string) => ((await rest.req('GET', `/v1/campaigncalls?campaign_id=${id}&status=${status}&limit=100`)).body.data as unknown[] | undefined)?.length ?? 0
      open.push({ at: Date.now(), dialing: await count('dialing'), progressing: await count('progressing') })
      await sleep(300)
    }
    const engineCpu = cpu.read()
    const { threads: ts } = threads.read()
    const m1 = await rest.metrics()
    // The dial jobs' runs by outcome meanwhile: `again` is a run that comes back later (outside hours, a retry); a job waiting for its slot or the ceiling waits at the campaign's pacer instead.
    const jobRuns: Record<string, number> = {}
    for (const [k, v] of Object.entries(m1)) {
      const m = /^callplane_jobs_total\{.*kind="campaign\.dial".*outcome="(\w+)"/.exec(k) ?? /^callplane_jobs_total\{.*outcome="(\w+)".*kind="campaign\.dial"/.exec(k)
      if (m) jobRuns[m[1]!] = v - (m0[k] ?? 0)
    }
    const mainThreadShare = ts.find((t) => t.tid === e.pid)?.share ?? 0
    const busiestOtherThreadShare = ts.find((t) => t.tid !== e.pid)?.share ?? 0
    await rest.req('POST', `/v1/campaigns/${id}/status`, { status: 'stop' })
    const stoppedAt = Date.now()
    // The calls under way end by themselves (the callee's BYE).
    await sleep(o.holdMs + 3000)
    // A stop drops the campaign's idle dial jobs; the ones running (waiting at the pacer, following a call) end by themselves.
    // Wait until they are gone, so the next part does not measure them (bounded; how long it took is reported).
    const dialRuns = async () => Object.entries(await rest.metrics()).filter(([k]) => k.startsWith('callplane_jobs_total{') && k.includes('kind="campaign.dial"')).reduce((a, [, v]) => a + v, 0)
    let last = await dialRuns()
    let still = 0
    const drainDeadline = Date.now() + (quick ? 30_000 : 150_000)
    while (still < 4 && Date.now() < drainDeadline) {
      await sleep(500)
      const now = await dialRuns()
      still = now === last ? still + 1 : 0
      last = now
    }
    const drainSec = (Date.now() - stoppedAt) / 1000 - 2
    const drainRuns = last - (Object.entries(m1).filter(([k]) => k.startsWith('callplane_jobs_total{') && k.includes('kind="campaign.dial"')).reduce((a, [, v]) => a + v, 0))
    const records = await rest.all(`/v1/campaigncalls?campaign_id=${id}`)
    const outcomes: Record<string, number> = {}
    for (const r of records) {
      const k = String(r.outcome ?? r.status ?? 'unknown')
      outcomes[k] = (outcomes[k] ?? 0) + 1
    }
    await rest.req('DELETE', `/v1/routes/${route.id as string}`)
    callee.kill()
    const res = await callee.done
    const calls = parseCalleeLog(res.log)
    const from = calls[0]?.inviteAt ?? started
    const windowEnd = from + o.windowSec * 1000
    const inWindow = calls.filter((c) => c.inviteAt < windowEnd)
    const perSecond = Array.from({ length: o.windowSec }, (_, i) => inWindow.filter((c) => Math.floor((c.inviteAt - from) / 1000) === i).length)
    const achievedCps = inWindow.length / o.windowSec
    const conc = concurrency(calls, Date.now())
    return {
      label: o.label, cps: o.cps, ceiling: o.ceiling, holdMs: o.holdMs, windowSec: o.windowSec, contacts: o.contacts, importSec,
      calls, from, invitesInWindow: inWindow.length, achievedCps, errorPct: (100 * (achievedCps - o.cps)) / o.cps, perSecond,
      maxUpAtCallee: conc.max, maxActiveEngine: maxActive, maxInProgress, open, outcomes, calleeFailed: res.failed,
      engineCpu: { cpuSec: engineCpu.cpuSec, coreShare: engineCpu.coreShare }, mainThreadShare, busiestOtherThreadShare, jobRuns, drainSec, drainRuns,
    }
  } finally {
    callee.kill()
    rmSync(dir, { recursive: true, force: true })
  }
}

async function pacingPart(): Promise<void> {
  const e = await ensureEngine()
  const rest = restOf(e)
  const missing = []
  for (const path of ['/v1/outplans', '/v1/outdials', '/v1/campaigns', '/v1/campaigncalls']) if (!(await rest.has(path))) missing.push(path)
  if (missing.length) {
    notes.push(`pacing: not measured: the engine does not serve ${missing.join(', ')} yet (the campaign dialer, issue 17)`)
    console.log(`pacing: skipped, ${missing.join(', ')} not on this engine`)
    return
  }
  if (!fits('pacing', PACING_WINDOW_SEC + PACING_HOLD_MS / 1000 + 20)) return
  const source = await ownNumber(rest)
  console.log(`pacing: a campaign of ${CONTACTS} contacts at ${CPS} calls/s, measured over ${PACING_WINDOW_SEC} s at a sipp callee; then a ceiling of ${CEILING} with calls held ${CEILING_HOLD_MS / 1000} s…`)
  const pace = await runCampaign(rest, { label: 'pacing', cps: CPS, ceiling: PACING_CEILING, holdMs: PACING_HOLD_MS, windowSec: PACING_WINDOW_SEC, contacts: CONTACTS, source })
  const failed = Object.entries(pace.outcomes).filter(([k]) => k !== 'answered').reduce((a, [, n]) => a + n, 0)
  console.log(`  pacing: ${pace.invitesInWindow} INVITEs in ${pace.windowSec} s = ${pace.achievedCps.toFixed(2)} calls/s (${pace.errorPct >= 0 ? '+' : ''}${pace.errorPct.toFixed(2)} %); per second min ${Math.min(...pace.perSecond)}, max ${Math.max(...pace.perSecond)}; most up at the callee ${pace.maxUpAtCallee} (ceiling ${pace.ceiling}), engine gauge ${pace.maxActiveEngine}, campaign in_progress ${pace.maxInProgress}; outcomes ${JSON.stringify(pace.outcomes)}; callee failures ${pace.calleeFailed}; engine ${(pace.engineCpu.coreShare * 100).toFixed(0)}% of a core (main thread ${(pace.mainThreadShare * 100).toFixed(0)}%, busiest other ${(pace.busiestOtherThreadShare * 100).toFixed(0)}%); dial job runs ${JSON.stringify(pace.jobRuns)}`)
  figures.push(
    { id: fid('dialer.pacing_error_pct'), label: `Pacing error: achieved vs configured calls per second (${CPS}/s configured, INVITEs at the callee over ${PACING_WINDOW_SEC} s from the first)`, value: Math.abs(pace.errorPct), unit: '%', better: 'lower', target: TARGET_PACING_PCT },
    { id: fid('dialer.pacing_achieved_cps'), label: `Achieved calls per second (configured ${CPS})`, value: pace.achievedCps, unit: 'calls/s', better: 'higher' },
    { id: fid('dialer.pacing_failed_calls'), label: `Campaign calls that did not end answered (of ${Object.values(pace.outcomes).reduce((a, n) => a + n, 0)} campaigncalls)`, value: failed, unit: 'calls', better: 'lower' },
    { id: fid('dialer.pacing_engine_cpu_ms_per_call'), label: `Engine CPU per campaign call (dial, answer, a flow that waits, the callee's BYE; at ${CPS}/s)`, value: (pace.engineCpu.cpuSec * 1000) / Math.max(1, pace.calls.length), unit: 'ms', better: 'lower' },
    { id: fid('dialer.csv_import_contacts_per_sec'), label: `Contacts imported per second (POST /v1/outdials/:id/targets/csv, ${CONTACTS} rows)`, value: CONTACTS / pace.importSec, unit: 'contacts/s', better: 'higher' },
  )
  const ceil = fits('pacing (ceiling run)', CEILING_WINDOW_SEC + CEILING_HOLD_MS / 1000 + 15)
    ? await runCampaign(rest, { label: 'ceiling', cps: CPS, ceiling: CEILING, holdMs: CEILING_HOLD_MS, windowSec: CEILING_WINDOW_SEC, contacts: Math.ceil(CPS * CEILING_WINDOW_SEC * 1.5), source })
    : undefined
  console.log(`  after the stop, ${pace.drainRuns} dial job runs took ${pace.drainSec.toFixed(1)} s to end (the stop drops idle jobs; the ones running end by themselves)`)
  figures.push({ id: fid('dialer.stopped_campaign_drain_sec'), label: `A stopped campaign's leftover dial jobs: seconds until the last ran (${pace.drainRuns} runs after the stop, ${CONTACTS} contacts)`, value: pace.drainSec, unit: 's', better: 'lower' })
  if (ceil) {
    console.log(`  ceiling: most up at the callee ${ceil.maxUpAtCallee} (ceiling ${CEILING}), engine gauge ${ceil.maxActiveEngine}, campaign in_progress ${ceil.maxInProgress}; ${ceil.achievedCps.toFixed(2)} calls/s (the ceiling allows ~${(CEILING / (CEILING_HOLD_MS / 1000)).toFixed(1)}); outcomes ${JSON.stringify(ceil.outcomes)}; engine ${(ceil.engineCpu.coreShare * 100).toFixed(0)}% of a core (main thread ${(ceil.mainThreadShare * 100).toFixed(0)}%, busiest other ${(ceil.busiestOtherThreadShare * 100).toFixed(0)}%); dial job runs ${JSON.stringify(ceil.jobRuns)}`)
    if (ceil.calls.length === 0) notes.push(`pacing (ceiling run): no call reached the callee in ${CEILING_WINDOW_SEC} s (dial job runs ${JSON.stringify(ceil.jobRuns)})`)
    else figures.push(
      { id: fid('dialer.ceiling_max_concurrent'), label: `Most campaign calls up at once at the callee with max_concurrent_calls ${CEILING} (calls held ${CEILING_HOLD_MS / 1000} s at ${CPS}/s: the ceiling binds)`, value: ceil.maxUpAtCallee, unit: 'calls', better: 'lower', target: CEILING },
      { id: fid('dialer.ceiling_achieved_cps'), label: `Calls per second with the ceiling binding (${CEILING} ÷ ${CEILING_HOLD_MS / 1000} s ≈ ${(CEILING / (CEILING_HOLD_MS / 1000)).toFixed(1)} allowed)`, value: ceil.achievedCps, unit: 'calls/s', better: 'higher' },
    )
  }
  const runsDone = ceil ? [pace, ceil] : [pace]
  plots.push({
    id: fid('dialer.pacing_rate'), title: `Campaign INVITEs per second at the callee (configured ${CPS}/s${ceil ? `; the ceiling run: ${CEILING} calls held ${CEILING_HOLD_MS / 1000} s` : ''})`, kind: 'line',
    xLabel: 'second since the first INVITE', yLabel: 'INVITEs in that second',
    series: runsDone.map((r) => ({ label: `${r.label} (${r.cps}/s, max_concurrent_calls ${r.ceiling}, calls held ${r.holdMs / 1000} s)`, x: r.perSecond.map((_, i) => i), y: r.perSecond })),
    marks: [{ axis: 'y', value: CPS * 1.05, label: '+5 %' }, { axis: 'y', value: CPS * 0.95, label: '−5 %' }],
  })
  for (const r of runsDone) {
    const cc = concurrency(r.calls, Date.now())
    plots.push({
      id: fid(`dialer.${r.label}_open_attempts`), title: `${r.label === 'pacing' ? `Pacing run (${CPS}/s)` : `Ceiling run (${CEILING} calls held ${CEILING_HOLD_MS / 1000} s)`}: the campaign's open attempts and the calls up at the callee`, kind: 'line',
      xLabel: 's since the first INVITE', yLabel: 'attempts / calls',
      series: [
        { label: 'reserved, waiting for a pacing slot (dialing)', x: r.open.map((o) => (o.at - r.from) / 1000), y: r.open.map((o) => o.dialing) },
        { label: 'placed (progressing)', x: r.open.map((o) => (o.at - r.from) / 1000), y: r.open.map((o) => o.progressing) },
        { label: 'up at the callee (INVITE → end)', x: cc.at.map((t) => (t - r.from) / 1000), y: cc.up },
      ],
      marks: [{ axis: 'y', value: r.ceiling, label: 'max_concurrent_calls' }],
    })
  }
  const strip = (r: CampaignRun) => ({ ...r, calls: undefined, callsAtCallee: r.calls.length, open: r.open.map((o) => [o.at - r.from, o.dialing, o.progressing]) })
  details.pacing = { pacing: strip(pace), ...(ceil ? { ceiling: strip(ceil) } : {}) }
  if (Math.abs(pace.errorPct) > TARGET_PACING_PCT) {
    notes.push(`pacing: ${pace.achievedCps.toFixed(1)} calls/s reached the callee for ${CPS} configured (${pace.errorPct.toFixed(1)} %); the campaign's open attempts reached ${pace.maxInProgress} (max_concurrent_calls ${pace.ceiling}) while at most ${pace.maxUpAtCallee} calls were up at the callee (attempts placed but not yet noted, or ended but not yet settled, count against the ceiling); INVITEs per second ${Math.min(...pace.perSecond)}–${Math.max(...pace.perSecond)}; dial job runs in the window ${JSON.stringify(pace.jobRuns)}`)
  }
}


// ───────────────────────────────────────────────────────────── queue: an agent free → the caller bridged

interface Queuecall { id: string; status: string; service_agent_id: string | null; tm_service: string | null; createdAt: string; end_reason: string | null }

/**
 * Callers wait in a queue (a flow: queue_join, hangup) placed by sipp with
 * CALLERS_UP calls up at once; AGENTS contact agents are users of one sipp
 * callee that answers at once and hangs up after AGENT_HOLD_MS. The agents
 * start away; each is set available over the API (sample: the request sent →
 * the queuecall's tm_service, the answer); after that every agent's hang-up
 * frees it for the next caller in line (sample: its BYE sent → the next
 * queuecall it answered). Also: → the next INVITE at the agent's phone.
 */
async function queuePart(): Promise<void> {
  const e = await ensureEngine()
  const rest = restOf(e)
  const missing = []
  for (const path of ['/v1/contact-agents', '/v1/queues', '/v1/queuecalls']) if (!(await rest.has(path))) missing.push(path)
  if (missing.length) {
    notes.push(`queue: not measured: the engine does not serve ${missing.join(', ')} yet (the ACD queues, issue 17)`)
    console.log(`queue: skipped, ${missing.join(', ')} not on this engine`)
    return
  }
  if (!fits('queue', QUEUE_WINDOW_SEC + AGENTS * 0.5 + 20)) return
  console.log(`queue: ${AGENTS} contact agents (a sipp callee answering at once, hanging up after ${AGENT_HOLD_MS} ms), ${CALLERS_UP} callers up at once, ${QUEUE_WINDOW_SEC} s…`)
  const dir = mkdtempSync(join(tmpdir(), 'dialer-queue-'))
  const port = await freePort()
  writeFileSync(join(dir, 'agent.xml'), calleeScenario(AGENT_HOLD_MS))
  writeFileSync(join(dir, 'caller.xml'), callerScenario(QUEUE_WINDOW_SEC * 1000 + 60_000))
  const lifeMs = (QUEUE_WINDOW_SEC + 60) * 1000
  const phones = sippUas(join(dir, 'agent.xml'), port, { timeoutMs: lifeMs, calls: 10_000_000, args: ['-recv_timeout', String(AGENT_HOLD_MS + 30_000)] })
  let callers: ReturnType<typeof runSipp> | undefined
  try {
    await waitListening(port)
    const tag = `dialer-bench-${Math.random().toString(36).slice(2, 8)}`
    const agents: Array<{ id: string; user: string }> = []
    for (let i = 0; i < AGENTS; i++) {
      const user = `agent${i}`
      const a = await rest.create('/v1/contact-agents', { name: `dialer bench ${user}`, addresses: [{ type: 'sip', target: `sip:${user}@127.0.0.1:${port}` }], tag_ids: [tag], status: 'away' })
      agents.push({ id: a.id as string, user })
    }
    const queue = await rest.create('/v1/queues', { name: 'dialer bench', routing_method: 'longest-idle', tag_ids: [tag], ring_timeout: 10_000 })
    const flow = await rest.create('/v1/flows', { name: 'dialer bench: queue', actions: [{ type: 'queue_join', option: { queue_id: queue.id } }, { type: 'hangup' }] })
    let number = ''
    for (let attempt = 0; attempt < 20 && !number; attempt++) {
      const n = `+1415555${String(Math.floor(Math.random() * 10000)).padStart(4, '0')}`
      if ((await rest.req('POST', '/v1/numbers', { number: n, name: 'dialer bench queue', target: { type: 'flow', id: flow.id } })).status === 201) number = n
    }
    if (!number) throw new Error('no free number for the queue')
    callers = runSipp({
      scenario: join(dir, 'caller.xml'), remote: `127.0.0.1:${e.sipPort}`, service: number, calls: 10_000_000, rate: CALLERS_UP,
      args: ['-l', String(CALLERS_UP), '-recv_timeout', String(QUEUE_WINDOW_SEC * 1000 + 60_000)], timeoutMs: lifeMs,
    })
    // Wait until every caller is in line (no agent is available yet).
    const inLine = async () => ((await rest.req('GET', `/v1/queues/${queue.id as string}`)).body.wait_queuecall_ids as unknown[] | undefined)?.length ?? 0
    const lineDeadline = Date.now() + 20_000
    while ((await inLine()) < CALLERS_UP && Date.now() < lineDeadline) await sleep(200)
    const waiting = await inLine()
    // 1. Agents set available over the API, one at a time.
    const setAt = new Map<string, number>()
    for (const a of agents) {
      setAt.set(a.id, Date.now())
      const r = await rest.req('PUT', `/v1/contact-agents/${a.id}/status`, { status: 'available' })
      if (r.status !== 200) throw new Error(`setting ${a.user} available answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`)
      await sleep(400)
    }
    const windowStart = Date.now()
    const cpu = cpuMeter(e.pid, true)
    await sleep(QUEUE_WINDOW_SEC * 1000)
    const engineCpu = cpu.read()
    const windowEnd = Date.now()
    // Stop: no agent takes another caller, the callers go.
    for (const a of agents) await rest.req('PUT', `/v1/contact-agents/${a.id}/status`, { status: 'away' })
    callers.kill()
    await sleep(AGENT_HOLD_MS + 1500)
    phones.kill()
    const calls = parseCalleeLog((await phones.done).log)
    const qcs = (await rest.all(`/v1/queuecalls?queue_id=${queue.id as string}`)) as unknown as Queuecall[]
    const served = qcs.filter((q) => q.service_agent_id && q.tm_service).map((q) => ({ ...q, at: Date.parse(q.tm_service!) }))

    const apiToAnswer: number[] = []
    const apiToInvite: number[] = []
    const freeToAnswer: number[] = []
    const freeToInvite: number[] = []
    for (const a of agents) {
      const mine = served.filter((q) => q.service_agent_id === a.id).sort((x, y) => x.at - y.at)
      const phone = calls.filter((c) => c.user === a.user)
      const t0 = setAt.get(a.id)!
      const firstAnswer = mine.find((q) => q.at >= t0)
      if (firstAnswer) apiToAnswer.push(firstAnswer.at - t0)
      const firstInvite = phone.find((c) => c.inviteAt >= t0)
      if (firstInvite) apiToInvite.push(firstInvite.inviteAt - t0)
      // Every hang-up inside the window frees the agent for the next caller in line.
      for (const c of phone) {
        if (c.hangupAt === undefined || c.hangupAt < windowStart - 5000 || c.hangupAt > windowEnd) continue
        const next = mine.find((q) => q.at >= c.hangupAt!)
        if (next) freeToAnswer.push(next.at - c.hangupAt)
        const inv = phone.find((x) => x.inviteAt >= c.hangupAt!)
        if (inv) freeToInvite.push(inv.inviteAt - c.hangupAt)
      }
    }
    const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b)
    const fa = sorted(freeToAnswer)
    const fi = sorted(freeToInvite)
    const aa = sorted(apiToAnswer)
    const ai = sorted(apiToInvite)
    const abandoned = qcs.filter((q) => q.status === 'abandoned').length
    const res = await callers.done
    console.log(`  ${waiting} callers were in line when the agents were set available; ${served.length} callers answered by an agent, ${abandoned} abandoned (the window's end included); agent phone: ${calls.length} calls; engine ${(engineCpu.coreShare * 100).toFixed(0)}% of a core`)
    console.log(`  agent hung up → next caller answered (tm_service): p50 ${percentile(fa, 50).toFixed(1)} ms, p99 ${percentile(fa, 99).toFixed(1)} ms, max ${(fa.at(-1) ?? NaN).toFixed(1)} ms (${fa.length}); → next INVITE at the agent's phone p50 ${percentile(fi, 50).toFixed(1)} ms, p99 ${percentile(fi, 99).toFixed(1)} ms`)
    console.log(`  agent set available over the API → answered: p50 ${percentile(aa, 50).toFixed(1)} ms, max ${(aa.at(-1) ?? NaN).toFixed(1)} ms (${aa.length}); → INVITE p50 ${percentile(ai, 50).toFixed(1)} ms`)
    if (fa.length) {
      figures.push(
        { id: fid('dialer.queue_assign_p99_ms'), label: `Queue assignment: an agent's hang-up (its BYE sent) → the next caller in line answered by it (queuecall tm_service), p99 (${fa.length} hand-overs, ${AGENTS} agents, ${CALLERS_UP} callers up)`, value: percentile(fa, 99), unit: 'ms', better: 'lower', target: TARGET_QUEUE_P99_MS },
        { id: fid('dialer.queue_assign_p50_ms'), label: 'Queue assignment: agent free → caller answered, p50', value: percentile(fa, 50), unit: 'ms', better: 'lower' },
        { id: fid('dialer.queue_offer_p99_ms'), label: 'Queue offer: agent free → the INVITE at the agent\'s phone, p99 (the ACD\'s decision and the dial, without the answer)', value: percentile(fi, 99), unit: 'ms', better: 'lower' },
      )
    }
    if (aa.length) figures.push({ id: fid('dialer.queue_api_available_to_answer_max_ms'), label: `Agent set available (PUT /v1/contact-agents/:id/status sent) → a waiting caller answered by it, max of ${aa.length}`, value: aa.at(-1)!, unit: 'ms', better: 'lower' })
    figures.push({ id: fid('dialer.queue_engine_cpu_ms_per_caller'), label: `Engine CPU per caller served (caller in, queue_join, agent dialled, bridge, both hang-ups; ${AGENTS} agents)`, value: (engineCpu.cpuSec * 1000) / Math.max(1, served.filter((q) => q.at >= windowStart && q.at <= windowEnd).length), unit: 'ms', better: 'lower' })
    plots.push({
      id: fid('dialer.queue_assign'), title: `Queue assignment latency: an agent free → the next caller answered (${AGENTS} agents)`, kind: 'cdf',
      xLabel: 'ms', yLabel: 'share of hand-overs',
      series: [cdfFromSamples('agent hung up → caller answered (tm_service)', fa), cdfFromSamples('agent hung up → INVITE at its phone', fi), cdfFromSamples('set available (API) → answered', aa)],
      marks: [{ axis: 'x', value: TARGET_QUEUE_P99_MS, label: 'p99 target' }],
    })
    details.queue = {
      agents: AGENTS, agentHoldMs: AGENT_HOLD_MS, callersUp: CALLERS_UP, windowSec: QUEUE_WINDOW_SEC, waitingAtStart: waiting,
      served: served.length, abandoned, agentPhoneCalls: calls.length, callerSipp: { successful: res.successful, failed: res.failed },
      freeToAnswerMs: fa, freeToInviteMs: fi, apiToAnswerMs: aa, apiToInviteMs: ai, engineCpu,
    }
    if (!fa.length) notes.push(`queue: no hand-over was seen (${served.length} callers answered, ${calls.length} calls at the agents' phone)`)
  } finally {
    callers?.kill()
    phones.kill()
    rmSync(dir, { recursive: true, force: true })
  }
}

// ───────────────────────────────────────────────────────────── main

try {
  // Each part on its own: one that fails is noted and the next still runs.
  for (const [part, fn] of [['scheduler', schedulerPart], ['pacing', pacingPart], ['queue', queuePart]] as const) {
    if (!runs(part)) continue
    try {
      await fn()
    } catch (err) {
      notes.push(`${part}: stopped early: ${(err as Error).message.split('\n')[0]}`)
      console.error(err)
    }
  }
  notes.push(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at the end on ${cores} cores`)
} finally {
  if (engine && !engine.shared) await engine.stop()
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
