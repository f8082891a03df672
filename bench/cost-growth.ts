/**
 * Cost growth (issue 7): CPU and memory of the whole engine (main.ts in its
 * own process, embedded defaults) as concurrent calls grow — 100, 200, 400,
 * … until calls fail or the engine saturates — plotted as a capacity curve.
 * Calls are plain sipp calls (bench/scenarios/uac-plain.xml: INVITE → 200 →
 * ACK → hold → BYE) to a number the bench creates over the API, answered by
 * an agent on the stub adapters (greeting, STT, LLM and TTS in-process), so
 * the curve is the engine's own cost per call: SIP, media, the agent runtime,
 * the store. sipp echoes the engine's RTP back (-rtp_echo), so media flows
 * both ways for every held call (and the echoed greeting reaches the agent's
 * VAD and STT). The demo number 1000 (pocketsphinx and espeak-ng processes
 * per call) costs far more per call: BENCH_COST_NUMBER=1000 measures that.
 *
 *   tsx bench/cost-growth.ts [--quick|--full] [--out file.json] [--media-workers N]
 *   BENCH_COST_NUMBER=1000  call an existing number instead
 *   BENCH_MEDIA_WORKERS=N   same as --media-workers N
 *
 * --media-workers N (N > 0) starts an engine of its own with MEDIA_WORKERS=N
 * (call media, agent runtimes and media actions in N worker threads; SIP and
 * the API stay on the main thread, the store on its PGlite thread), never the orchestrator's shared
 * one, and suffixes every figure id with `.media_workers_N` so the curve lands
 * next to the in-process one. Saturation is then any engine thread (main or a
 * worker) at 0.9 of a core, or the whole process at 0.9 of all cores.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { finishBench, parseBenchArgs, type BenchFigure, type PlotSpec } from './bench-result.ts'
import { acquireEngineProcess, killAllEngines, startEngineProcess, type EngineProcess } from './engine-process.ts'
import { cpuMeter, memoryKiB, exitWithParent, threadSharesMeter } from './proc-stats.ts'
import { parseSippStat } from './sipp-rate-ladder.ts'
import { freePort } from '../test/harness/ports.ts'

const args = parseBenchArgs()
/**
 * MEDIA_WORKERS of the engine under test: --media-workers N (or --media-workers=N),
 * else BENCH_MEDIA_WORKERS, else 0 (media on the engine's main thread). A bad value
 * stops the bench with a usage error rather than measuring the wrong engine.
 */
function parseMediaWorkers(argv = process.argv.slice(2)): number {
  let raw: string | undefined = process.env.BENCH_MEDIA_WORKERS
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--media-workers') raw = argv[i + 1]
    else if (argv[i]!.startsWith('--media-workers=')) raw = argv[i]!.slice('--media-workers='.length)
  }
  if (raw === undefined || raw === '') return 0
  const n = Number(raw)
  // the engine's own bound for MEDIA_WORKERS is 1..64 (config/config.ts)
  if (!Number.isInteger(n) || n < 0 || n > 64) {
    process.stderr.write(`cost-growth: --media-workers wants an integer 0..64, got ${JSON.stringify(raw)}\n`)
    process.exit(2)
  }
  return n
}
const mediaWorkers = parseMediaWorkers()
/** Figure and plot ids of a MEDIA_WORKERS run differ, so both curves sit side by side in one report. */
const fid = (id: string) => (mediaWorkers > 0 ? `${id}.media_workers_${mediaWorkers}` : id)
/** How the engine ran its media, for labels and plot series. */
const modeTag = mediaWorkers > 0 ? `MEDIA_WORKERS=${mediaWorkers}` : 'media in-process'
const quick = args.mode === 'quick'
const startedAt = new Date()
// Under the orchestrator the budget runs from this script's start; run alone, from when
// the engine is up (its start-up on a loaded box can take half the quick budget).
const budgetSec = Number(process.env.BENCH_BUDGET_SEC ?? (quick ? 40 : 300)) - 3
let budgetFrom = startedAt.getTime()
const BENCH_NUMBER = '1990'
const number = process.env.BENCH_COST_NUMBER ?? BENCH_NUMBER
const ladder = quick ? [100, 200, 400, 800] : [100, 200, 400, 800, 1600, 3200]
/**
 * New calls per second while a step ramps up (sipp -r): slow enough that call
 * set-up (a store transaction and an agent start per call) does not pile up
 * on a loaded box and time out — the steady cost of held calls is the point.
 */
const rate = 100
/** Seconds all calls of a step are up while CPU is measured. */
const windowSec = quick ? 2 : 10
/** After the ramp, how long the engine may take to have every call answered before the window starts. */
const setupSlackSec = quick ? 4 : 10
const cores = cpus().length
const SCENARIO = fileURLToPath(new URL('./scenarios/uac-plain.xml', import.meta.url))
/**
 * Any engine thread at this share of a core = saturated: the main event loop
 * (SIP, API, store client, and media too when MEDIA_WORKERS=0), a media worker's
 * event loop or the PGlite store thread; each is one thread, so it saturates
 * long before the process uses all cores.
 */
const SATURATED_THREAD = 0.9

const live = new Set<ReturnType<typeof spawn>>()
const cleanup = () => {
  for (const c of live) c.kill('SIGKILL')
  killAllEngines()
}
process.on('SIGINT', () => { cleanup(); process.exit(130) })
process.on('SIGTERM', () => { cleanup(); process.exit(143) })
process.on('exit', cleanup)
exitWithParent(cleanup)

interface SippDone { code: number | null; successful: number; failed: number; firstError: string }
interface SippRun {
  pid: number
  done: Promise<SippDone>
  /** sipp's own count of calls in progress (its stat file, written every second). */
  current(): number
}

function sippCalls(port: number, calls: number, cps: number, holdMs: number, mediaPort: number): SippRun {
  const dir = mkdtempSync(join(tmpdir(), 'sipp-cost-'))
  const stat = join(dir, 'stat.csv')
  const child = spawn('sipp', [
    '-sf', SCENARIO, `127.0.0.1:${port}`, '-s', number,
    '-i', '127.0.0.1', '-p', '0', '-m', String(calls), '-r', String(cps), '-l', String(calls),
    '-d', String(holdMs), '-recv_timeout', '15000', '-timeout', `${Math.ceil(holdMs / 1000 + calls / cps + 20)}s`,
    '-mp', String(mediaPort), '-rtp_echo',
    '-nostdin', '-trace_stat', '-stf', stat, '-fd', '1', '-trace_err',
  ], { cwd: dir, stdio: ['ignore', 'ignore', 'ignore'] })
  live.add(child)
  const done = new Promise<SippDone>((resolve) => {
    child.on('close', (code) => {
      live.delete(child)
      const s = parseSippStat(stat)
      const errFile = readdirSync(dir).find((f) => f.includes('errors'))
      let firstError = ''
      if (errFile) {
        const text = readFileSync(join(dir, errFile), 'utf8')
        firstError = /(Aborting call[^\n]*|received '[^\n]*|receive timeout[^\n]*|Unexpected[^\n]*)/.exec(text)?.[1] ?? text.split('\n').slice(1, 3).join(' ')
        firstError = firstError.replace(/\s*without label to jump to.*$/s, '').replace(/\s*: aborting call.*$/s, '')
      }
      rmSync(dir, { recursive: true, force: true })
      resolve({ code, successful: s.successful, failed: s.failed, firstError: firstError.slice(0, 120) })
    })
  })
  const current = () => {
    if (!existsSync(stat)) return 0
    const lines = readFileSync(stat, 'utf8').trim().split('\n')
    if (lines.length < 2) return 0
    const head = lines[0]!.split(';')
    return Number(lines.at(-1)!.split(';')[head.indexOf('CurrentCall')] ?? 0) || 0
  }
  return { pid: child.pid!, done, current }
}

/** The engine's own count of live calls (callplane_active_calls on /metrics), or NaN. */
async function activeCalls(e: EngineProcess): Promise<number> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${e.httpPort}/metrics`, { signal: AbortSignal.timeout(3000) })).text()
    const m = /^callplane_active_calls(?:\{[^}]*\})?\s+([\d.]+)/m.exec(text)
    return m ? Number(m[1]) : NaN
  } catch {
    return NaN
  }
}

/** The stub-adapter agent and its number (409 = already there, on an engine shared by the orchestrator). */
async function createBenchAgent(e: EngineProcess): Promise<void> {
  const api = (path: string, body: unknown) => fetch(`http://127.0.0.1:${e.httpPort}/v1${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${e.apiKey}` }, body: JSON.stringify(body),
  })
  const agent = await api('/agents', {
    name: 'cost-growth bench', type: 'pipeline', greeting: 'Hello, this is the cost bench.', language: 'en-US',
    stt: { provider: 'stub', options: { text: 'hello' } }, llm: { provider: 'stub', options: { reply: 'I hear you.' } }, tts: { provider: 'stub' },
    bargeIn: { enabled: true, minSpeechMs: 300, minWords: 0 }, silenceTimeoutSec: 600, maxDurationSec: 3600,
  })
  if (agent.status !== 201) throw new Error(`creating the bench agent answered ${agent.status}: ${(await agent.text()).slice(0, 300)}`)
  const { id } = (await agent.json()) as { id: string }
  const num = await api('/numbers', { number: BENCH_NUMBER, name: 'cost-growth bench', target: { type: 'agent', id } })
  if (num.status !== 201 && num.status !== 409) throw new Error(`creating number ${BENCH_NUMBER} answered ${num.status}: ${(await num.text()).slice(0, 300)}`)
  if (num.status === 409) notes.push(`number ${BENCH_NUMBER} already existed on the shared engine: its agent was kept`)
}

/**
 * The embedded store's thread: PGlite runs in a worker thread of its own
 * (store/database.ts), which /proc cannot tell from a media worker (every
 * thread is named "node"). Before any call is up, API reads keep only the main
 * thread and the store thread busy, so the busiest other thread then is the
 * store, if it stands out clearly (else undefined, and the report says so).
 */
async function findStoreThread(e: EngineProcess): Promise<number | undefined> {
  const t = threadSharesMeter(e.pid, true)
  // ~300 list reads (a second or two): enough 10 ms CPU ticks for the store thread to stand
  // out from V8's GC helpers. /v1/numbers and /v1/agents read the store; /v1/calls may not.
  for (let i = 0; i < 300; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${e.httpPort}/v1/${i % 2 ? 'agents' : 'numbers'}?limit=50`, { headers: { authorization: `Bearer ${e.apiKey}` }, signal: AbortSignal.timeout(3000) })
      await r.arrayBuffer()
    } catch { /* counted by the check below: no store work, no store thread found */ }
  }
  const { wallSec, threads } = t.read()
  const others = threads.filter((x) => x.tid !== e.pid)
  const [top, second] = others
  if (!top || top.share * wallSec < 0.05 || (second && top.share < 2 * second.share)) return undefined
  return top.tid
}

interface Step {
  calls: number
  ok: boolean
  reason?: string
  /** Calls up while measured: sipp's count and the engine's gauge. */
  upSipp: number
  /** Fewest calls the engine reported live at the start and end of the window. */
  upEngine: number
  /** Seconds after the ramp until the engine had (nearly) every call answered. */
  setupSec: number
  engineCoreShare: number
  /** Busiest engine thread, whichever it is. */
  busiestThreadShare: number
  /** The engine's main thread (pid = tid): SIP, API, the store's client (and media when in-process); PGlite runs in a thread of its own. */
  mainThreadShare: number
  /** The embedded store's thread (PGlite), when it was told apart (storeTid). */
  storeThreadShare: number
  /** The busiest thread besides main and store: a media worker when MEDIA_WORKERS > 0 (else V8/libuv helpers). */
  otherThreadShare: number
  /** The busiest few non-main threads (tid, % of a core), to tell workers from helpers. */
  otherThreads: { tid: number; pct: number }[]
  sippCoreShare: number
  memoryMiB: number
  successful: number
  failed: number
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const figures: BenchFigure[] = []
const plots: PlotSpec[] = []
const notes: string[] = []
const steps: Step[] = []
let engine: (EngineProcess & { shared: boolean }) | undefined
let idleMiB = NaN
let engineLog: string[] = []
/** tid of the engine's PGlite thread, if findStoreThread told it apart. */
let storeTid: number | undefined
try {
  console.log(`starting the engine (main.ts) in its own process (${modeTag})…`)
  // With workers, an engine of our own: the orchestrator's shared one runs MEDIA_WORKERS=0.
  engine = mediaWorkers > 0
    ? { ...(await startEngineProcess({ rtpPorts: quick ? 2000 : 8000, timeoutMs: 90_000, env: { MEDIA_WORKERS: String(mediaWorkers) } })), shared: false }
    : await acquireEngineProcess({ rtpPorts: quick ? 2000 : 8000 })
  console.log(`engine pid ${engine.pid} up in ${engine.startupSec.toFixed(1)} s (SIP 127.0.0.1:${engine.sipPort}, ${modeTag})`)
  if (!process.env.BENCH_BUDGET_SEC) budgetFrom = Date.now()
  await sleep(1000)
  const idle = cpuMeter(engine.pid, true)
  await sleep(quick ? 1500 : 3000)
  const idleCpu = idle.read()
  idleMiB = memoryKiB(engine.pid, true) / 1024
  const tagged = mediaWorkers > 0 ? `, ${modeTag}` : ''
  figures.push({ id: fid('cost.engine_startup_sec'), label: `Engine start-up time (embedded PGlite, migrations, SIP, API${tagged})${engine.shared ? ', started by the orchestrator' : ''}`, value: engine.startupSec, unit: 's', better: 'lower' })
  figures.push({ id: fid('cost.idle_memory_mib'), label: `Engine memory when idle (PSS${tagged})`, value: idleMiB, unit: 'MiB', better: 'lower' })
  figures.push({ id: fid('cost.idle_cpu_pct'), label: `Engine CPU when idle${mediaWorkers > 0 ? ` (${modeTag})` : ''}`, value: idleCpu.coreShare * 100, unit: '% of a core', better: 'lower' })
  console.log(`idle: ${idleMiB.toFixed(0)} MiB, ${(idleCpu.coreShare * 100).toFixed(1)}% of a core`)

  if (number === BENCH_NUMBER) await createBenchAgent(engine)
  storeTid = await findStoreThread(engine)
  if (storeTid === undefined) notes.push('the store (PGlite) thread did not stand out under API reads: its CPU counts in the busiest-other-thread figures')
  console.log(`store (PGlite) thread: ${storeTid ?? 'not told apart'}`)
  // Does it take calls at all? 20 short calls, which also warm the engine up (JIT,
  // agent start-up paths), so the first step does not measure compilation.
  const mediaPort = await freePort()
  const probe = await sippCalls(engine.sipPort, 20, 20, 1000, mediaPort).done
  if (probe.successful < 1) {
    notes.push(`the engine does not complete a plain call to sip:${number} (${probe.firstError || `sipp exit ${probe.code}`}); cost growth under calls not measured — only start-up and idle figures`)
    console.log(`probe call failed: ${probe.firstError}`)
  } else {
    for (const n of ladder) {
      const ramp = n / rate
      // ramp up, wait for the engine to answer them all, measure, then the same ramp again for the BYEs
      const stepSec = ramp + setupSlackSec + windowSec + 1 + ramp + 1
      if ((Date.now() - budgetFrom) / 1000 + stepSec > budgetSec) {
        notes.push(`time budget (${budgetSec + 3} s) reached before ${n} calls`)
        break
      }
      // Each call is held from its answer: long enough to cover a slow set-up and the window.
      const hold = Math.ceil((ramp + setupSlackSec + windowSec + 1) * 1000)
      const run = sippCalls(engine.sipPort, n, rate, hold, mediaPort)
      await sleep(ramp * 1000)
      const setupDeadline = Date.now() + setupSlackSec * 1000
      let upAtStart = await activeCalls(engine)
      while (!(upAtStart >= 0.98 * n) && Date.now() < setupDeadline) {
        await sleep(250)
        upAtStart = await activeCalls(engine)
      }
      const setupSec = (Date.now() - setupDeadline) / 1000 + setupSlackSec
      const m = cpuMeter(engine.pid, true)
      const t = threadSharesMeter(engine.pid, true)
      const g = cpuMeter(run.pid)
      await sleep(windowSec * 1000)
      const cpu = m.read()
      const { threads } = t.read()
      const mainId = `${engine.pid}/${engine.pid}`
      const mainThreadShare = threads.find((x) => x.id === mainId)?.share ?? 0
      const storeThreadShare = threads.find((x) => x.pid === engine!.pid && x.tid === storeTid)?.share ?? 0
      const others = threads.filter((x) => x.id !== mainId && !(x.pid === engine!.pid && x.tid === storeTid))
      const otherThreadShare = others[0]?.share ?? 0
      const busiestThreadShare = Math.max(mainThreadShare, storeThreadShare, otherThreadShare)
      const gen = g.read()
      const memMiB = memoryKiB(engine.pid, true) / 1024
      const upEngine = await activeCalls(engine)
      const upSipp = run.current()
      const res = await run.done
      const held = Number.isFinite(upAtStart) && Number.isFinite(upEngine) ? Math.min(upAtStart, upEngine) : n
      let reason: string | undefined
      if (res.failed > 0 || res.successful < n) reason = `${n - res.successful} of ${n} calls failed${res.firstError ? `: ${res.firstError}` : ''}`
      else if (held < 0.5 * n) reason = `the engine had only ${held} of ${n} calls answered ${setupSec.toFixed(1)} s after the ramp (set-up saturated)`
      else if (mainThreadShare >= SATURATED_THREAD) reason = `engine main thread (event loop${mediaWorkers > 0 ? ': SIP, API' : ''}) at ${(mainThreadShare * 100).toFixed(0)}% of a core (saturated)`
      else if (storeThreadShare >= SATURATED_THREAD) reason = `engine store thread (PGlite) at ${(storeThreadShare * 100).toFixed(0)}% of a core (saturated)`
      else if (otherThreadShare >= SATURATED_THREAD) reason = `engine thread ${others[0]!.tid} (${mediaWorkers > 0 ? 'a media worker' : 'not the event loop'}${storeTid === undefined ? ' or the store' : ''}) at ${(otherThreadShare * 100).toFixed(0)}% of a core (saturated)`
      else if (cpu.coreShare > 0.9 * cores) reason = `engine CPU at ${(cpu.coreShare * 100).toFixed(0)}% (all cores)`
      // Calls that fail while engine + sipp fill every core are the box saturating (the load
      // generator shares it), not an engine fault: say so next to the failure.
      if (reason && (res.failed > 0 || res.successful < n) && cpu.coreShare + gen.coreShare >= 0.9 * cores) {
        reason += ` (the box's ${cores} cores were full: engine ${(cpu.coreShare * 100).toFixed(0)}% + sipp ${(gen.coreShare * 100).toFixed(0)}%)`
      }
      steps.push({ calls: n, ok: !reason, reason, upSipp, upEngine: held, setupSec, engineCoreShare: cpu.coreShare, busiestThreadShare, mainThreadShare, storeThreadShare, otherThreadShare, otherThreads: others.slice(0, 4).map((x) => ({ tid: x.tid, pct: Number((x.share * 100).toFixed(1)) })), sippCoreShare: gen.coreShare, memoryMiB: memMiB, successful: res.successful, failed: res.failed })
      console.log(`  ${n} concurrent calls (${upSipp} up per sipp, ${held} live per the engine, all answered ${setupSec.toFixed(1)} s after the ramp): engine ${(cpu.coreShare * 100).toFixed(0)}% of a core (main thread ${(mainThreadShare * 100).toFixed(0)}%, store thread ${storeTid === undefined ? 'n/a' : `${(storeThreadShare * 100).toFixed(0)}%`}, busiest ${mediaWorkers > 0 ? 'worker' : 'other'} thread ${(otherThreadShare * 100).toFixed(0)}%), ${memMiB.toFixed(0)} MiB, sipp ${(gen.coreShare * 100).toFixed(0)}%, ${res.successful}/${n} ok → ${reason ? `STOP (${reason})` : 'ok'}`)
      if (reason) break
      await sleep(500)
    }
    const best = steps.filter((s) => s.ok).at(-1)
    const stop = steps.find((s) => !s.ok)
    const at = (n: number) => `${n} concurrent calls${mediaWorkers > 0 ? `, ${modeTag}` : ''}`
    figures.push({ id: fid('cost.max_concurrent_calls'), label: `Most calls held live (engine gauge) with no failure and every engine thread < ${SATURATED_THREAD * 100}% of a core${mediaWorkers > 0 ? ` (${modeTag})` : ''} (ladder ${ladder.join(', ')})`, value: best?.upEngine ?? 0, unit: 'calls', better: 'higher' })
    if (best) {
      figures.push({ id: fid('cost.cpu_pct_per_call'), label: `Engine CPU per live call (step of ${at(best.calls)}, ${best.upEngine} live)`, value: ((best.engineCoreShare - idleCpu.coreShare) * 100) / Math.max(1, best.upEngine), unit: '% of a core', better: 'lower' })
      figures.push({ id: fid('cost.memory_kb_per_call'), label: `Engine memory per live call (PSS growth over idle, step of ${at(best.calls)}, ${best.upEngine} live)`, value: Math.max(0, ((best.memoryMiB - idleMiB) * 1024 * 1.024) / Math.max(1, best.upEngine)), unit: 'KB', better: 'lower' })
      figures.push({ id: fid('cost.cpu_pct_at_max'), label: `Engine CPU at ${at(best.calls)}`, value: best.engineCoreShare * 100, unit: '% of a core', better: 'lower' })
      figures.push({ id: fid('cost.memory_mib_at_max'), label: `Engine memory at ${at(best.calls)} (PSS)`, value: best.memoryMiB, unit: 'MiB', better: 'lower' })
    }
    for (const s of steps) {
      const last = s.ok ? '' : ' (the step that stopped the ladder)'
      figures.push({ id: fid(`cost.cpu_pct_at_${s.calls}`), label: `Engine CPU at ${at(s.calls)} (${s.upEngine} live)${last}`, value: Number((s.engineCoreShare * 100).toFixed(1)), unit: '% of a core', better: 'lower' })
      figures.push({ id: fid(`cost.main_thread_pct_at_${s.calls}`), label: `Engine main thread CPU at ${at(s.calls)}${last}`, value: Number((s.mainThreadShare * 100).toFixed(1)), unit: '% of a core', better: 'lower' })
      if (storeTid !== undefined) figures.push({ id: fid(`cost.store_thread_pct_at_${s.calls}`), label: `Engine store thread (PGlite) CPU at ${at(s.calls)}${last}`, value: Number((s.storeThreadShare * 100).toFixed(1)), unit: '% of a core', better: 'lower' })
      if (mediaWorkers > 0) figures.push({ id: fid(`cost.worker_thread_pct_at_${s.calls}`), label: `Busiest media worker thread (busiest besides main${storeTid === undefined ? '' : ' and store'}) at ${at(s.calls)}${last}`, value: Number((s.otherThreadShare * 100).toFixed(1)), unit: '% of a core', better: 'lower' })
      figures.push({ id: fid(`cost.memory_mib_at_${s.calls}`), label: `Engine memory at ${at(s.calls)} (PSS)`, value: Number(s.memoryMiB.toFixed(1)), unit: 'MiB', better: 'lower' })
    }
    if (stop) notes.push(`stopped at ${stop.calls} calls: ${stop.reason}`)
    else if (steps.length === ladder.length) notes.push(`the whole ladder (${ladder.join(', ')}) held: saturation lies beyond ${ladder.at(-1)} calls${quick ? ' (run --full for a longer ladder)' : ''}`)
    // x = calls the engine itself reported live while measured (a loaded box answers a step's calls late)
    const xs = steps.map((s) => s.upEngine)
    // Series labels carry the mode and the plots a compareKey, so the orchestrator draws the
    // in-process and MEDIA_WORKERS curves in one plot when both ran (bench/run-report.ts).
    plots.push({
      id: fid('cost.cpu'), compareKey: 'cost.cpu', title: `Engine CPU as concurrent calls grow (capacity curve, ${modeTag})`, kind: 'line', xLabel: 'live calls (engine gauge)', yLabel: '% of one core',
      series: [
        { label: `${modeTag}: engine, all threads`, x: [0, ...xs], y: [idleCpu.coreShare * 100, ...steps.map((s) => s.engineCoreShare * 100)] },
        { label: `${modeTag}: main thread${mediaWorkers > 0 ? ' (SIP, API)' : ' (event loop)'}`, x: xs, y: steps.map((s) => s.mainThreadShare * 100) },
        ...(storeTid !== undefined ? [{ label: `${modeTag}: store thread (PGlite)`, x: xs, y: steps.map((s) => s.storeThreadShare * 100) }] : []),
        ...(mediaWorkers > 0 ? [{ label: `${modeTag}: busiest media worker thread`, x: xs, y: steps.map((s) => s.otherThreadShare * 100) }] : []),
        { label: `${modeTag}: sipp (load generator)`, x: xs, y: steps.map((s) => s.sippCoreShare * 100) },
      ],
      marks: [{ axis: 'y', value: SATURATED_THREAD * 100, label: 'a thread saturated' }, { axis: 'y', value: cores * 100, label: `${cores} cores` }],
    })
    plots.push({ id: fid('cost.memory'), compareKey: 'cost.memory', title: `Engine memory as concurrent calls grow (${modeTag})`, kind: 'line', xLabel: 'live calls (engine gauge)', yLabel: 'MiB (PSS)', series: [{ label: `${modeTag}: engine`, x: [0, ...xs], y: [idleMiB, ...steps.map((s) => s.memoryMiB)] }] })
    notes.push(`calls: sipp (uac-plain.xml) to sip:${number}${number === BENCH_NUMBER ? ' (an agent on the stub STT/LLM/TTS adapters)' : ''}, ramped at ${rate} calls/s, measured for ${windowSec} s once the engine reports them live (its callplane_active_calls gauge) while the engine's CPU (all threads, its main thread, its store (PGlite) thread and its busiest other thread, from /proc/<pid>/task) is measured; sipp echoes the engine's RTP (-rtp_echo)${mediaWorkers > 0 ? `; the engine ran MEDIA_WORKERS=${mediaWorkers} (its own process, not the orchestrator's shared engine)` : ''}`)
  }
  notes.push(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at the end on ${cores} cores; sipp shares the cores with the engine, and CPU shares are per process, so they hold under other load while the saturation point does not`)
} catch (err) {
  notes.push(`engine could not be measured: ${(err as Error).message.split('\n')[0]}`)
  console.error(err)
} finally {
  // The engine's own warnings and errors (it runs at LOG_LEVEL=warn): what a failed step looked like from inside.
  if (engine && !engine.shared) {
    engineLog = engine.log().split('\n').filter((l) => l.trim() && !/Callplane is up|^\s+(SIP|drachtio|HTTP API|RTP ports|database)\s/.test(l)).slice(-40)
    if (engineLog.length && steps.some((s) => !s.ok && !/saturated/.test(s.reason ?? ''))) {
      console.log(`engine log (last ${engineLog.length} lines at warn and above):\n${engineLog.map((l) => `  | ${l.slice(0, 400)}`).join('\n')}`)
    }
  }
  await engine?.stop()
}

finishBench({
  bench: mediaWorkers > 0 ? 'cost-growth-media-workers' : 'cost-growth',
  mode: args.mode,
  startedAt: startedAt.toISOString(),
  durationSec: (Date.now() - startedAt.getTime()) / 1000,
  figures, plots, notes,
  details: { number, mediaWorkers, storeTid, ladder, rate, windowSec, idleMiB, steps, engineLog },
}, args)
process.exit(0)
