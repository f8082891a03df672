/**
 * Registrations per second with digest auth (issue 7), side by side:
 *  - Callplane: the whole engine (main.ts in its own process: sip/server,
 *    sip/app registrar, bindings in PGlite), one extension created over the API;
 *  - Kamailio: auth (pv_www_authenticate) + registrar + usrloc in memory.
 * Both get the same sipp ladder of REGISTER → 401 → REGISTER with digest →
 * 200 (bench/scenarios/register-digest.xml); the highest rate with zero
 * failures and the CPU per registration are reported.
 *
 *   tsx bench/sip-register-rate.ts [--quick|--full] [--out file.json]
 */
import { fileURLToPath } from 'node:url'
import { finishBench, parseBenchArgs, type BenchFigure, type PlotSpec } from './bench-result.ts'
import { acquireEngineProcess, killAllEngines, type EngineProcess } from './engine-process.ts'
import { killAllKamailio, startKamailio } from './reference/kamailio.ts'
import { cpuMeter, exitWithParent } from './proc-stats.ts'
import { killLadderSipps, ladderPlots, runRateLadder, type LadderResult } from './sipp-rate-ladder.ts'
import { freePort } from '../test/harness/ports.ts'

const args = parseBenchArgs()
const quick = args.mode === 'quick'
const startedAt = new Date()
const budgetSec = Number(process.env.BENCH_BUDGET_SEC ?? (quick ? 85 : 500)) - 3
// Quick: 2 s steps and fewer rungs (about 15 s in all); --full climbs in 20 s steps.
const stepSec = quick ? 2 : 20
const cpRates = quick ? [25, 50, 100, 200] : [25, 50, 100, 150, 200, 300, 400, 600, 800]
const kamRates = quick ? [1000, 3000] : [250, 500, 1000, 1500, 2000, 3000, 4000, 6000]
const scenarioFile = fileURLToPath(new URL('./scenarios/register-digest.xml', import.meta.url))
const USER = 'u1000'
const PASSWORD = 'benchpw-u1000' // Kamailio's config derives "benchpw-<user>"

const abort = new AbortController()
const cleanup = () => {
  abort.abort()
  killLadderSipps()
  killAllKamailio()
  killAllEngines()
}
process.on('SIGINT', () => { cleanup(); process.exit(130) })
process.on('SIGTERM', () => { cleanup(); process.exit(143) })
process.on('exit', cleanup)
exitWithParent(cleanup)

const figures: BenchFigure[] = []
const notes: string[] = []
let plots: PlotSpec[] = []
const t0 = Date.now()
const ladderOpts = { scenarioFile, service: USER, sippArgs: ['-au', USER, '-ap', PASSWORD], stepSec, restMs: quick ? 500 : 1000, onProgress: (l: string) => console.log(`  ${l}`) }

// Kamailio first: it is quick and bounds the time left for the engine.
let kam: LadderResult | undefined
{
  const port = await freePort()
  const k = await startKamailio({ port, role: 'registrar' })
  console.log(`kamailio registrar pid ${k.pid} on 127.0.0.1:${port}; ladder ${kamRates.join(', ')} registrations/s`)
  try {
    kam = await runRateLadder({ ...ladderOpts, target: `127.0.0.1:${port}`, measure: [{ name: 'kamailio', pid: k.pid, tree: true }], rates: kamRates, budgetSec: quick ? 9 : budgetSec * 0.4 }, abort.signal)
  } finally {
    await k.stop()
  }
}

let cp: LadderResult | undefined
let idleShare = 0
let engine: (EngineProcess & { shared: boolean }) | undefined
try {
  console.log('starting the engine (main.ts) in its own process…')
  engine = await acquireEngineProcess({ rtpPorts: 100 })
  console.log(`engine pid ${engine.pid} up in ${engine.startupSec.toFixed(1)} s; creating extension ${USER}`)
  const r = await fetch(`http://127.0.0.1:${engine.httpPort}/v1/extensions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${engine.apiKey}` },
    body: JSON.stringify({ extension: USER, password: PASSWORD }),
  })
  if (r.status !== 201 && r.status !== 200 && r.status !== 409) throw new Error(`POST /v1/extensions → ${r.status} ${await r.text()}`)
  const idle = cpuMeter(engine.pid, true)
  await new Promise((res) => setTimeout(res, 1500))
  idleShare = idle.read().coreShare
  const left = budgetSec - (Date.now() - t0) / 1000
  cp = await runRateLadder({ ...ladderOpts, target: `127.0.0.1:${engine.sipPort}`, measure: [{ name: 'engine', pid: engine.pid, tree: true }], rates: cpRates, budgetSec: left - 3 }, abort.signal)
} catch (err) {
  notes.push(`Callplane registrar not measured: ${(err as Error).message.split('\n')[0]}`)
  console.error(err)
} finally {
  await engine?.stop()
}

const kamCpu = kam?.best?.cpu.kamailio
if (cp) {
  const cpCpu = cp.best?.cpu.engine
  figures.push({
    id: 'sip.register_per_sec_digest', label: 'Callplane: REGISTER with digest auth per second, zero failures (whole engine, bindings in PGlite)',
    value: cp.maxSustainedCps, unit: 'reg/s', better: 'higher',
    reference: kam ? { engine: 'kamailio', value: kam.maxSustainedCps } : undefined,
  })
  if (cpCpu) {
    const best = cp.best!
    // the engine's idle background work (outbox, timers) is not the registrations' cost
    const net = ((cpCpu.coreShare - idleShare) * 1000) / Math.max(1, best.achievedCps)
    figures.push({
      id: 'sip.register_cpu_ms', label: `Callplane: engine CPU per registration, net of its idle CPU (at ${best.offeredCps}/s)`,
      value: Math.max(0, net), unit: 'ms', better: 'lower',
      reference: kamCpu ? { engine: 'kamailio', value: kamCpu.cpuMsPerCall } : undefined,
    })
  }
  const last = cp.steps.at(-1)
  notes.push(`Callplane ladder stopped by ${cp.stoppedBy}${last && !last.ok ? ` at ${last.offeredCps}/s (${last.reason})` : ''}`)
}
if (kam) {
  figures.push({ id: 'ref.kamailio.sip.register_per_sec_digest', label: 'Kamailio: REGISTER with digest auth per second, zero failures (usrloc in memory)', value: kam.maxSustainedCps, unit: 'reg/s', better: 'higher', engine: 'kamailio' })
  if (kamCpu) figures.push({ id: 'ref.kamailio.sip.register_cpu_ms', label: `Kamailio: CPU per registration (at ${kam.best!.offeredCps}/s)`, value: kamCpu.cpuMsPerCall, unit: 'ms', better: 'lower', engine: 'kamailio' })
  const last = kam.steps.at(-1)
  notes.push(`Kamailio ladder stopped by ${kam.stoppedBy}${last && !last.ok ? ` at ${last.offeredCps}/s (${last.reason})` : ''}`)
}
notes.push(`one user (${USER}) re-registering the same contact: each registration is REGISTER → 401 → REGISTER with digest → 200; ${stepSec} s per step. Kamailio keeps bindings in memory, Callplane writes them to PostgreSQL (PGlite), so this compares different durability`)
plots = ladderPlots('sip.register', [
  ...(cp ? [{ label: 'Callplane registrar', result: cp, cpuOf: 'engine' }] : []),
  ...(kam ? [{ label: 'Kamailio registrar', result: kam, cpuOf: 'kamailio' }] : []),
], { what: 'REGISTER with digest auth', unit: 'reg/s', compareKey: null })

finishBench({
  bench: 'sip-register-rate',
  mode: args.mode,
  startedAt: startedAt.toISOString(),
  durationSec: (Date.now() - startedAt.getTime()) / 1000,
  figures, plots, notes,
  details: { stepSec, callplane: cp?.steps, kamailio: kam?.steps },
}, args)
process.exit(0)
