/**
 * SIP reference: Kamailio as a stateful responder (tm: t_newtran + t_reply 200
 * with SDP for INVITE, ACK absorbed, 200 for BYE) under the same sipp rate
 * ladder the Callplane SIP bench uses (bench/sipp-rate-ladder.ts).
 *
 *   tsx bench/sip-kamailio-reference.ts [--quick|--full] [--out file.json]
 */
import { finishBench, parseBenchArgs, type BenchFigure, type BenchResult } from './bench-result.ts'
import { killAllKamailio, startKamailio } from './reference/kamailio.ts'
import { killLadderSipps, ladderPlots, runRateLadder } from './sipp-rate-ladder.ts'
import { exitWithParent } from './proc-stats.ts'
import { freePort } from '../test/harness/ports.ts'

const args = parseBenchArgs()
const startedAt = new Date()
const budgetSec = Number(process.env.BENCH_BUDGET_SEC ?? (args.mode === 'quick' ? 35 : 400))
const quick = args.mode === 'quick'
// Quick: 2 s steps like bench/sip-call-rate.ts, starting at Callplane's 1,000 calls/s target
// (the lower rungs always pass on Kamailio and only cost time).
const rates = quick ? [1000, 2000, 3000, 4000, 6000] : [200, 400, 800, 1200, 1600, 2000, 2500, 3000, 4000, 5000, 6000, 8000]
const stepSec = quick ? 2 : 30

const abort = new AbortController()
const cleanup = () => {
  abort.abort()
  killLadderSipps()
  killAllKamailio()
}
process.on('SIGINT', () => { cleanup(); process.exit(130) })
process.on('SIGTERM', () => { cleanup(); process.exit(143) })
process.on('exit', cleanup)
exitWithParent(cleanup)

const notes: string[] = []
const figures: BenchFigure[] = []
let details: unknown
let plots: BenchResult['plots'] = []
const port = await freePort()
console.log(`starting kamailio on 127.0.0.1:${port}`)
const kam = await startKamailio({ port })
try {
  console.log(`kamailio pid ${kam.pid}; ladder ${rates.join(', ')} calls/s, ${stepSec} s per step, budget ${budgetSec} s`)
  const ladder = await runRateLadder({
    target: `127.0.0.1:${port}`,
    measure: [{ name: 'kamailio', pid: kam.pid, tree: true }],
    rates, stepSec, budgetSec: budgetSec - 3, restMs: quick ? 500 : 1000,
    onProgress: (l) => console.log(`  ${l}`),
  }, abort.signal)
  const best = ladder.best
  figures.push({
    id: 'ref.kamailio.sip.max_cps_zero_failures',
    label: 'Kamailio: highest call rate with zero failed calls',
    value: ladder.maxSustainedCps, unit: 'calls/s', better: 'higher',
    engine: 'kamailio',
    referenceFor: ['sip.max_cps_zero_failures', 'sip.call_rate.max_cps', 'sip.max_cps', 'sip.callplane.max_cps_zero_failures'],
  })
  if (best) {
    const cpu = best.cpu.kamailio!
    figures.push({
      id: 'ref.kamailio.sip.cpu_sec_per_1000_calls',
      label: `Kamailio: CPU seconds per 1,000 calls (all processes, at ${best.offeredCps} calls/s)`,
      value: cpu.cpuMsPerCall, unit: 's/1000 calls', better: 'lower',
      engine: 'kamailio',
      referenceFor: ['sip.cpu_sec_per_1000_calls', 'sip.server_cpu_sec_per_1000_calls', 'sip.callplane.cpu_sec_per_1000_calls'],
    })
    figures.push({
      id: 'ref.kamailio.sip.memory_mib',
      label: 'Kamailio: memory (PSS of all processes, incl. 256 MB shm reserved lazily)',
      value: best.memoryKiB.kamailio! / 1024, unit: 'MiB', better: 'lower', engine: 'kamailio',
    })
    if (best.sippCoreShare > 0.85) notes.push(`sipp used ${(best.sippCoreShare * 100).toFixed(0)}% of a core at ${best.offeredCps} calls/s: the load generator, not Kamailio, may be the limit`)
  } else {
    notes.push('no ladder step passed: Kamailio did not sustain even the lowest rate with zero failures')
  }
  const last = ladder.steps[ladder.steps.length - 1]
  notes.push(`ladder stopped by ${ladder.stoppedBy}${last && !last.ok ? ` at ${last.offeredCps} calls/s (${last.reason})` : ''}; ${stepSec} s per step${quick ? ' (quick mode: the issue asks for 30 s steps, run --full)' : ''}`)
  notes.push(`Kamailio ${kam.pid}: children=${Math.max(2, (await import('node:os')).cpus().length)} UDP workers, tm stateful replies, no dialog module (no dialog state kept)`)
  plots = ladderPlots('sip.kamailio', [{ label: 'Kamailio', result: ladder, cpuOf: 'kamailio' }])
  details = { port, rates, stepSec, steps: ladder.steps, stoppedBy: ladder.stoppedBy }
} finally {
  await kam.stop()
}

finishBench({
  bench: 'sip-kamailio-reference',
  mode: args.mode,
  startedAt: startedAt.toISOString(),
  durationSec: (Date.now() - startedAt.getTime()) / 1000,
  figures, plots, details, notes,
}, args)
process.exit(0)
