/**
 * Cost growth: CPU and memory of the whole engine (main.ts in its own
 * process, embedded defaults) as concurrent calls grow — 50, 100, 200, 400, …
 * until calls fail or the engine saturates. Calls come from sipp
 * (bench/scenarios/uac-auth.xml: INVITE authenticated as an extension created
 * over the API), held open with -d, with sipp echoing the engine's RTP back
 * (-rtp_echo) so media flows both ways.
 *
 *   tsx bench/cost-growth.ts [--quick|--full] [--out file.json]
 *   BENCH_COST_NUMBER=1000  the number called (default: the demo agent, 1000)
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { finishBench, parseBenchArgs, type BenchFigure, type PlotSpec } from './bench-result.ts'
import { acquireEngineProcess, killAllEngines, type EngineProcess } from './engine-process.ts'
import { cpuMeter, memoryKiB, exitWithParent } from './proc-stats.ts'
import { parseSippStat } from './sipp-rate-ladder.ts'
import { freePort } from '../test/harness/ports.ts'

const args = parseBenchArgs()
const quick = args.mode === 'quick'
const startedAt = new Date()
const budgetSec = Number(process.env.BENCH_BUDGET_SEC ?? (quick ? 55 : 300)) - 3
const number = process.env.BENCH_COST_NUMBER ?? '1000'
const ladder = quick ? [50, 100, 200] : [100, 200, 400, 800, 1600, 3200]
const rate = quick ? 100 : 200
const windowSec = quick ? 3 : 10
const cores = cpus().length
// Calls authenticate as an extension created over the API (an unknown source is challenged 407).
const SCENARIO = fileURLToPath(new URL('./scenarios/uac-auth.xml', import.meta.url))
const CALLER = 'u2000'
const CALLER_PASSWORD = 'benchpw-u2000'

const live = new Set<ReturnType<typeof spawn>>()
const cleanup = () => {
  for (const c of live) c.kill('SIGKILL')
  killAllEngines()
}
process.on('SIGINT', () => { cleanup(); process.exit(130) })
process.on('SIGTERM', () => { cleanup(); process.exit(143) })
process.on('exit', cleanup)
exitWithParent(cleanup)

interface SippRun {
  done: Promise<{ code: number | null; successful: number; failed: number; firstError: string }>
  kill(): void
}

function sippCalls(port: number, calls: number, cps: number, holdMs: number, mediaPort: number): SippRun {
  const dir = mkdtempSync(join(tmpdir(), 'sipp-cost-'))
  const stat = join(dir, 'stat.csv')
  const child = spawn('sipp', [
    '-sf', SCENARIO, `127.0.0.1:${port}`, '-s', number, '-key', 'caller', CALLER, '-au', CALLER, '-ap', CALLER_PASSWORD,
    '-i', '127.0.0.1', '-p', '0', '-m', String(calls), '-r', String(cps), '-l', String(calls),
    '-d', String(holdMs), '-recv_timeout', '8000', '-timeout', `${Math.ceil(holdMs / 1000 + calls / cps + 20)}s`,
    '-mp', String(mediaPort), '-rtp_echo',
    '-nostdin', '-trace_stat', '-stf', stat, '-fd', '1', '-trace_err',
  ], { cwd: dir, stdio: ['ignore', 'ignore', 'ignore'] })
  live.add(child)
  const done = new Promise<{ code: number | null; successful: number; failed: number; firstError: string }>((resolve) => {
    child.on('close', (code) => {
      live.delete(child)
      const s = parseSippStat(stat)
      const errFile = readdirSync(dir).find((f) => f.includes('errors'))
      let firstError = ''
      if (errFile) {
        const text = readFileSync(join(dir, errFile), 'utf8')
        firstError = /(Aborting call[^\n]*|received '[^\n]*|receive timeout[^\n]*)/.exec(text)?.[1] ?? text.split('\n').slice(1, 3).join(' ')
      }
      rmSync(dir, { recursive: true, force: true })
      resolve({ code, successful: s.successful, failed: s.failed, firstError: firstError.slice(0, 200) })
    })
  })
  return { done, kill: () => child.kill('SIGKILL') }
}

interface Step {
  calls: number
  ok: boolean
  reason?: string
  engineCoreShare: number
  memoryMiB: number
  successful: number
  failed: number
}

const figures: BenchFigure[] = []
const plots: PlotSpec[] = []
const notes: string[] = []
const steps: Step[] = []
let engine: (EngineProcess & { shared: boolean }) | undefined
let idleMiB = NaN
try {
  console.log('starting the engine (main.ts) in its own process…')
  engine = await acquireEngineProcess({ rtpPorts: quick ? 1000 : 8000 })
  console.log(`engine pid ${engine.pid} up in ${engine.startupSec.toFixed(1)} s (SIP 127.0.0.1:${engine.sipPort})`)
  await new Promise((r) => setTimeout(r, 1500))
  const idle = cpuMeter(engine.pid, true)
  await new Promise((r) => setTimeout(r, 2000))
  const idleCpu = idle.read()
  idleMiB = memoryKiB(engine.pid, true) / 1024
  figures.push({ id: 'cost.engine_startup_sec', label: `Engine start-up time (embedded PGlite, migrations, SIP, API)${engine.shared ? ', started by the orchestrator' : ''}`, value: engine.startupSec, unit: 's', better: 'lower' })
  figures.push({ id: 'cost.idle_memory_mib', label: 'Engine memory when idle (PSS)', value: idleMiB, unit: 'MiB', better: 'lower' })
  figures.push({ id: 'cost.idle_cpu_pct', label: 'Engine CPU when idle', value: idleCpu.coreShare * 100, unit: '% of a core', better: 'lower' })
  console.log(`idle: ${idleMiB.toFixed(0)} MiB, ${(idleCpu.coreShare * 100).toFixed(1)}% of a core`)

  const ext = await fetch(`http://127.0.0.1:${engine.httpPort}/v1/extensions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${engine.apiKey}` },
    body: JSON.stringify({ extension: CALLER, password: CALLER_PASSWORD }),
  })
  if (![200, 201, 409].includes(ext.status)) notes.push(`creating extension ${CALLER} answered ${ext.status}: ${(await ext.text()).slice(0, 200)}`)

  // Does it take calls at all?
  const mediaPort = await freePort()
  const probe = await sippCalls(engine.sipPort, 1, 1, 1500, mediaPort).done
  if (probe.successful < 1) {
    notes.push(`the engine does not complete a call to sip:${number} yet (${probe.firstError || `sipp exit ${probe.code}`}); cost growth under calls not measured — only start-up and idle figures`)
    console.log(`probe call failed: ${probe.firstError}`)
  } else {
    for (const n of ladder) {
      const ramp = n / rate
      const stepSec = 2 * ramp + windowSec + 3
      if ((Date.now() - startedAt.getTime()) / 1000 + stepSec + 2 > budgetSec) {
        notes.push(`time budget reached before ${n} calls`)
        break
      }
      const hold = Math.ceil((ramp + 1 + windowSec + 0.5) * 1000)
      const run = sippCalls(engine.sipPort, n, rate, hold, mediaPort)
      await new Promise((r) => setTimeout(r, (ramp + 1) * 1000))
      const m = cpuMeter(engine.pid, true)
      await new Promise((r) => setTimeout(r, windowSec * 1000))
      const cpu = m.read()
      const memMiB = memoryKiB(engine.pid, true) / 1024
      const res = await run.done
      let reason: string | undefined
      if (res.failed > 0 || res.successful < n) reason = `${n - res.successful} of ${n} calls failed${res.firstError ? `: ${res.firstError}` : ''}`
      else if (cpu.coreShare > 0.9 * cores) reason = `engine CPU at ${(cpu.coreShare * 100).toFixed(0)}% (saturated)`
      steps.push({ calls: n, ok: !reason, reason, engineCoreShare: cpu.coreShare, memoryMiB: memMiB, successful: res.successful, failed: res.failed })
      console.log(`  ${n} concurrent calls: engine ${(cpu.coreShare * 100).toFixed(0)}% of a core, ${memMiB.toFixed(0)} MiB, ${res.successful}/${n} ok → ${reason ? `STOP (${reason})` : 'ok'}`)
      if (reason) break
      await new Promise((r) => setTimeout(r, 1000))
    }
    const best = steps.filter((s) => s.ok).at(-1)
    figures.push({ id: 'cost.max_concurrent_calls', label: 'Most concurrent calls held with no failure and CPU < 90% (this ladder)', value: best?.calls ?? 0, unit: 'calls', better: 'higher' })
    if (best) {
      figures.push({ id: 'cost.cpu_pct_per_call', label: `Engine CPU per concurrent call (at ${best.calls} calls)`, value: (best.engineCoreShare * 100) / best.calls, unit: '% of a core', better: 'lower' })
      figures.push({ id: 'cost.memory_kb_per_call', label: `Engine memory per concurrent call (PSS growth over idle, at ${best.calls} calls)`, value: Math.max(0, ((best.memoryMiB - idleMiB) * 1024 * 1.024) / best.calls), unit: 'KB', better: 'lower' })
    }
    const xs = steps.map((s) => s.calls)
    plots.push({ id: 'cost.cpu', title: 'Engine CPU as concurrent calls grow', kind: 'line', xLabel: 'concurrent calls', yLabel: '% of one core', series: [{ label: 'engine (all threads)', x: [0, ...xs], y: [idleCpu.coreShare * 100, ...steps.map((s) => s.engineCoreShare * 100)] }], marks: [{ axis: 'y', value: cores * 100, label: `${cores} cores` }] })
    plots.push({ id: 'cost.memory', title: 'Engine memory as concurrent calls grow', kind: 'line', xLabel: 'concurrent calls', yLabel: 'MiB (PSS)', series: [{ label: 'engine', x: [0, ...xs], y: [idleMiB, ...steps.map((s) => s.memoryMiB)] }] })
    notes.push(`calls: sipp (uac-auth.xml, authenticated as extension ${CALLER}) to sip:${number}, ${rate} calls/s ramp, held ${windowSec} s while CPU is measured; sipp echoes RTP (-rtp_echo)`)
  }
} catch (err) {
  notes.push(`engine could not be measured: ${(err as Error).message.split('\n')[0]}`)
  console.error(err)
} finally {
  await engine?.stop()
}

finishBench({
  bench: 'cost-growth',
  mode: args.mode,
  startedAt: startedAt.toISOString(),
  durationSec: (Date.now() - startedAt.getTime()) / 1000,
  figures, plots, notes,
  details: { number, ladder, rate, windowSec, idleMiB, steps },
}, args)
process.exit(0)
