/**
 * SIP flood (issue 14): legitimate calls' failures and setup p99 from a second source while
 * one source floods INVITEs at the highest rate sipp reaches here, side by side:
 *  - Callplane: the whole engine (main.ts in its own process, per-source limits at their
 *    defaults: SIP_INVITE_RATE_PER_SOURCE=20, burst 2 s, 16 INVITEs per source at the application); the legitimate calls come from a
 *    PBX trunk (created over the API, inbound allowed from 127.0.0.2) to a number whose target
 *    is a SIP URI: the engine bridges each call to a sipp UAS (B2BUA: routing, call record,
 *    media anchoring); the flood goes to a number nobody has (99999);
 *  - Kamailio: the tm responder behind pike (20 requests/s per source, the same budget),
 *    flood INVITEs to 99999 answered 404, legitimate INVITEs answered 200.
 * Flood: sipp from 127.0.0.1, bench/scenarios/invite-flood.xml (INVITE, any final → ACK with
 * a new branch; a dropped INVITE is retransmitted until -recv_timeout 2 s). Legitimate:
 * sipp's uac from 127.0.0.2 at 5 calls/s (INVITE → 200 → ACK → 300 ms → BYE); the setup time
 * is INVITE → 200 (sipp -trace_rtt). Target: 0 failed legitimate calls, setup p99 < 200 ms.
 *
 *   tsx bench/sip-flood.ts [--quick|--full] [--out file.json]
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { finishBench, parseBenchArgs, type BenchFigure, type PlotSpec } from './bench-result.ts'
import { killAllEngines, startEngineProcess } from './engine-process.ts'
import { killAllKamailio, startKamailio } from './reference/kamailio.ts'
import { cpuMeter, exitWithParent } from './proc-stats.ts'
import { parseSippStat } from './sipp-rate-ladder.ts'
import { freePort } from '../test/harness/ports.ts'

const args = parseBenchArgs()
const quick = args.mode === 'quick'
const startedAt = new Date()
const floodSec = quick ? 8 : 30
const floodRate = Number(process.env.BENCH_FLOOD_CPS ?? (quick ? 3000 : 5000))
const legitRate = 5
const FLOOD_SCENARIO = fileURLToPath(new URL('./scenarios/invite-flood.xml', import.meta.url))

const sipps = new Set<ChildProcess>()
const cleanup = (): void => {
  for (const c of sipps) c.kill('SIGKILL')
  killAllEngines()
  killAllKamailio()
}
process.on('SIGINT', () => { cleanup(); process.exit(130) })
process.on('SIGTERM', () => { cleanup(); process.exit(143) })
process.on('exit', cleanup)
exitWithParent(cleanup)

function sipp(argv: string[]): { dir: string; done: Promise<number | null> } {
  const dir = mkdtempSync(join(tmpdir(), 'sipp-flood-'))
  const child = spawn('sipp', [...argv, '-nostdin', '-trace_stat', '-stf', join(dir, 'stat.csv'), '-fd', '1'], { cwd: dir, stdio: 'ignore' })
  sipps.add(child)
  return { dir, done: new Promise((resolve) => child.on('close', (code) => { sipps.delete(child); resolve(code) })) }
}

/** Per-call INVITE → 200 times from sipp's -trace_rtt file (ms). */
function setupTimes(dir: string): number[] {
  const f = readdirSync(dir).find((n) => n.endsWith('_rtt.csv'))
  if (!f) return []
  return readFileSync(join(dir, f), 'utf8').trim().split('\n').slice(1)
    .map((l) => Number(l.split(';')[1])).filter((x) => Number.isFinite(x))
}

const pct = (xs: number[], p: number): number => {
  if (!xs.length) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}

interface Trial {
  engine: string
  legitPlaced: number
  legitOk: number
  legitFailed: number
  setupMs: number[]
  p50: number
  p99: number
  max: number
  floodOfferedCps: number
  floodSentCps: number
  floodAnswered: number
  targetCoreShare: number
}

async function trial(engine: string, target: string, pid: number, legitService: string, floodCps = floodRate): Promise<Trial> {
  const meter = cpuMeter(pid, true)
  const calls = floodCps * floodSec
  const flood = floodCps === 0 ? undefined : sipp(['-sf', FLOOD_SCENARIO, target, '-s', '99999', '-i', '127.0.0.1', '-p', '0', '-m', String(calls), '-r', String(floodCps),
    '-l', String(floodCps * 4), '-recv_timeout', '2000', '-timeout', `${floodSec + 6}s`])
  if (flood) await new Promise((r) => setTimeout(r, 1000))
  const legitCalls = legitRate * (floodSec - 2)
  const legit = sipp(['-sn', 'uac', target, '-s', legitService, '-i', '127.0.0.2', '-p', '0', '-m', String(legitCalls), '-r', String(legitRate),
    '-d', '300', '-recv_timeout', '10000', '-trace_rtt', '-rtt_freq', '1', '-timeout', `${floodSec + 20}s`])
  await legit.done
  await flood?.done
  const cpu = meter.read()
  const ls = parseSippStat(join(legit.dir, 'stat.csv'))
  const fs = flood ? parseSippStat(join(flood.dir, 'stat.csv')) : { elapsedSec: 0, successful: 0 }
  let outgoing = 0
  if (flood) {
    const head = readFileSync(join(flood.dir, 'stat.csv'), 'utf8').trim().split('\n')
    const cols = head[0]!.split(';')
    outgoing = Number(head[head.length - 1]!.split(';')[cols.indexOf('OutgoingCall(C)')] ?? 0)
  }
  const times = setupTimes(legit.dir)
  const t: Trial = {
    engine, legitPlaced: legitCalls, legitOk: ls.successful, legitFailed: legitCalls - ls.successful,
    setupMs: times, p50: pct(times, 50), p99: pct(times, 99), max: Math.max(...times),
    floodOfferedCps: floodCps, floodSentCps: fs.elapsedSec > 0 ? outgoing / Math.min(fs.elapsedSec, floodSec) : 0,
    floodAnswered: fs.successful, targetCoreShare: cpu.coreShare,
  }
  console.log(`  ${engine}${floodCps ? '' : ' (no flood)'}: legitimate ${t.legitOk}/${legitCalls} ok, setup p50 ${t.p50.toFixed(1)} ms p99 ${t.p99.toFixed(1)} ms max ${t.max.toFixed(1)} ms; ` +
    `flood ${t.floodSentCps.toFixed(0)} calls/s sent (${floodCps} offered), ${t.floodAnswered} answered; ${engine} used ${(cpu.coreShare * 100).toFixed(0)}% of a core`)
  return t
}

const notes: string[] = []
const figures: BenchFigure[] = []
const plots: PlotSpec[] = []
const trials: Trial[] = []
/** The same legitimate load with no flood (full mode, or BENCH_FLOOD_BASELINE=1). */
const baselines: Trial[] = []

console.log(`Callplane: starting the engine (main.ts) with the default per-source limits…`)
// startEngineProcess turns the limits off for capacity benches; this bench measures them at their defaults.
const cp = await startEngineProcess({ rtpPorts: 2000, timeoutMs: 90_000, env: { SIP_INVITE_RATE_PER_SOURCE: process.env.BENCH_FLOOD_INVITE_RATE ?? '20', SIP_REQUEST_RATE_PER_SOURCE: '200', SIP_RATE_BURST: '2' } })
let limited = 0
const uasPort = await freePort()
const uas = sipp(['-sn', 'uas', '-i', '127.0.0.1', '-p', String(uasPort), '-m', '100000'])
const LEGIT_NUMBER = '+14155550100'
try {
  const api = async (path: string, body: unknown): Promise<{ id: string }> => {
    const r = await fetch(`http://127.0.0.1:${cp.httpPort}${path}`, { method: 'POST', headers: { authorization: `Bearer ${cp.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    if (r.status !== 201) throw new Error(`${path}: ${r.status} ${await r.text()}`)
    return await r.json() as { id: string }
  }
  const trunk = await api('/v1/trunks', { name: 'legitimate PBX', inbound: { allowedIps: ['127.0.0.2'] } })
  await api('/v1/numbers', { number: LEGIT_NUMBER, trunkId: trunk.id, target: { type: 'sip', uri: `sip:legit@127.0.0.1:${uasPort}` } })
  console.log(`engine pid ${cp.pid} up in ${cp.startupSec.toFixed(1)} s; flood ${floodRate} calls/s for ${floodSec} s from 127.0.0.1, ${legitRate} calls/s from 127.0.0.2`)
  if (process.env.BENCH_FLOOD_BASELINE || !quick) baselines.push(await trial('callplane', `127.0.0.1:${cp.sipPort}`, cp.pid, LEGIT_NUMBER, 0))
  trials.push(await trial('callplane', `127.0.0.1:${cp.sipPort}`, cp.pid, LEGIT_NUMBER))
  const m = await (await fetch(`http://127.0.0.1:${cp.httpPort}/metrics`)).text()
  limited = Number(/sip_server_rate_limited_total\{method="INVITE"\} (\d+)/.exec(m)?.[1] ?? 0)
  console.log(`  /metrics: sip_server_rate_limited_total{method="INVITE"} ${limited}`)
} finally {
  await cp.stop()
  for (const c of sipps) c.kill('SIGKILL')
  await uas.done
}

const kport = await freePort()
let kam: Awaited<ReturnType<typeof startKamailio>> | undefined
try {
  kam = await startKamailio({ port: kport, role: 'flood', pikePerSecond: 20 })
  console.log(`Kamailio pid ${kam.pid} (pike, 20 requests/s per source)`)
  trials.push(await trial('kamailio', `127.0.0.1:${kport}`, kam.pid, '1000'))
} catch (err) {
  notes.push(`Kamailio reference not run: ${(err as Error).message.split('\n')[0]}`)
} finally {
  await kam?.stop()
}

const c = trials.find((x) => x.engine === 'callplane')
const k = trials.find((x) => x.engine === 'kamailio')
if (c) {
  figures.push({
    id: 'sip.flood.legit_failed_calls', label: `Failed legitimate calls (5 calls/s from a second source) during a ${c.floodSentCps.toFixed(0)} calls/s INVITE flood`,
    value: c.legitFailed, unit: 'calls', better: 'lower', target: 0,
    ...(k ? { reference: { engine: 'kamailio', value: k.legitFailed } } : {}),
  })
  figures.push({
    id: 'sip.flood.legit_setup_p99_ms', label: 'Legitimate calls: setup time p99 (INVITE → 200) during the flood',
    value: c.p99, unit: 'ms', better: 'lower', target: 200,
    ...(k ? { reference: { engine: 'kamailio', value: k.p99 } } : {}),
  })
  figures.push({ id: 'sip.flood.flood_cps', label: 'Flood rate sipp reached (one source, 127.0.0.1)', value: c.floodSentCps, unit: 'calls/s', better: 'higher' })
  figures.push({ id: 'sip.flood.rate_limited_invites', label: 'Flood INVITEs dropped by the per-source limit (sip_server_rate_limited_total)', value: limited, unit: 'requests', better: 'higher' })
  figures.push({ id: 'sip.flood.engine_core_share', label: 'Engine CPU during the flood (share of one core)', value: c.targetCoreShare, unit: 'cores', better: 'lower',
    ...(k ? { reference: { engine: 'kamailio', value: k.targetCoreShare } } : {}) })
  plots.push({
    id: 'sip.flood.setup_cdf', title: 'Legitimate call setup time during a single-source INVITE flood', kind: 'cdf',
    xLabel: 'INVITE → 200 (ms)', yLabel: 'share of calls',
    series: trials.map((t) => {
      const s = [...t.setupMs].sort((a, b) => a - b)
      return { label: t.engine === 'callplane' ? 'Callplane' : 'Kamailio + pike', x: s, y: s.map((_, i) => (i + 1) / s.length) }
    }),
    marks: [{ axis: 'x', value: 200, label: 'target p99 200 ms' }],
  })
}
notes.push(`flood: ${floodRate} calls/s offered for ${floodSec} s from 127.0.0.1 (bench/scenarios/invite-flood.xml, -recv_timeout 2 s); legitimate: ${legitRate} calls/s from 127.0.0.2 for ${floodSec - 2} s`)
notes.push('sipp, the engine and Kamailio share this machine\'s cores: the flood rate is what sipp reached here, and the flood generator competes with the engine for CPU')
notes.push('Callplane bridges each legitimate call to a sipp UAS (trunk identification, number lookup, call record, media anchoring, INVITE out and 200 back); Kamailio answers it with a bare 200 (tm): Callplane\'s setup time includes a second SIP leg and its call set-up work')

finishBench({
  bench: 'sip-flood', mode: args.mode, startedAt: startedAt.toISOString(), durationSec: (Date.now() - startedAt.getTime()) / 1000,
  figures, plots, details: { flood: trials.map(({ setupMs: _s, ...t }) => t), baseline: baselines.map(({ setupMs: _s, ...t }) => t) }, notes,
}, args)
process.exit(0)
