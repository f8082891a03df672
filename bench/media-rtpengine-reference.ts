/**
 * Media reference: rtpengine's userspace relay (--table=-1) carrying N
 * bidirectional G.711 sessions (offer/answer over ng), driven by the same RTP
 * load generator the Callplane media bench uses (bench/rtp-load-generator.ts,
 * a separate process, one pacing loop, 20 ms packets both ways). For each N:
 * loss, engine-added jitter (p99 of the RFC 3550 transit difference), and
 * rtpengine's CPU. Reports the most sessions with zero loss and p99 jitter
 * ≤ 2 ms, and CPU/memory per session.
 *
 *   tsx bench/media-rtpengine-reference.ts [--quick|--full] [--out file.json]
 */
import { finishBench, parseBenchArgs, type BenchFigure, type PlotSpec } from './bench-result.ts'
import { cpuMeter, memoryKiB, exitWithParent } from './proc-stats.ts'
import { g711Sdp, killAllRtpengine, sdpAudioPort, startRtpengine, type RunningRtpengine } from './reference/rtpengine.ts'
import { cdfSeries, histSeries, killRtpLoadGenerators, startRtpLoadGenerator, type RtpLoadStats, type RtpStreamSpec } from './rtp-load-generator.ts'
import { freePort } from '../test/harness/ports.ts'

const args = parseBenchArgs()
const quick = args.mode === 'quick'
const startedAt = new Date()
const budgetSec = Number(process.env.BENCH_BUDGET_SEC ?? (quick ? 35 : 350)) - 3
const ladder = quick ? [50, 100, 200, 400, 700, 1000, 1400] : [50, 100, 200, 400, 600, 800, 1000, 1250, 1500, 2000, 2500, 3000]
const stepSec = quick ? 3 : 15
const JITTER_BOUND_MS = 2
const SOCKETS_PER_SIDE = 8

const cleanup = () => {
  killRtpLoadGenerators()
  killAllRtpengine()
}
process.on('SIGINT', () => { cleanup(); process.exit(130) })
process.on('SIGTERM', () => { cleanup(); process.exit(143) })
process.on('exit', cleanup)
exitWithParent(cleanup)

interface Step {
  sessions: number
  ok: boolean
  reason?: string
  setupSec: number
  rtpengineCoreShare: number
  rtpengineCpuUsPerSessionSec: number
  memoryKiB: number
  stats: Omit<RtpLoadStats, 'hist'>
  hist: RtpLoadStats['hist']
}

const notes: string[] = []
const figures: BenchFigure[] = []
const plots: PlotSpec[] = []
const steps: Step[] = []
const t0 = Date.now()

const gen = await startRtpLoadGenerator()
const ports = await gen.open(SOCKETS_PER_SIDE * 2)
const ngPort = await freePort()
const rtpe: RunningRtpengine = await startRtpengine({ ngPort, portMin: 40000, portMax: 59999 })
console.log(`rtpengine pid ${rtpe.pid} (ng 127.0.0.1:${ngPort}), generator pid ${gen.pid}; ladder ${ladder.join(', ')} sessions, ${stepSec} s per step, budget ${budgetSec} s`)
const baseMem = memoryKiB(rtpe.pid)
const streams: RtpStreamSpec[] = []
let sessions = 0

async function addSessions(target: number): Promise<void> {
  const todo: number[] = []
  for (let i = sessions; i < target; i++) todo.push(i)
  const worker = async () => {
    for (let i = todo.shift(); i !== undefined; i = todo.shift()) {
      const a = i % SOCKETS_PER_SIDE
      const b = SOCKETS_PER_SIDE + (i % SOCKETS_PER_SIDE)
      const callId = `bench-${i}-${startedAt.getTime()}`
      const offer = await rtpe.offer(callId, `a${i}`, g711Sdp(ports[a]!))
      const answer = await rtpe.answer(callId, `a${i}`, `b${i}`, g711Sdp(ports[b]!))
      const toB = sdpAudioPort(offer.sdp!) // where B sends (rtpengine's port facing B)
      const toA = sdpAudioPort(answer.sdp!) // where A sends
      streams.push({ ssrc: (0x10000000 + 2 * i) >>> 0, socket: a, host: '127.0.0.1', port: toA })
      streams.push({ ssrc: (0x10000000 + 2 * i + 1) >>> 0, socket: b, host: '127.0.0.1', port: toB })
    }
  }
  await Promise.all(Array.from({ length: 16 }, worker))
  sessions = target
}

try {
  for (const n of ladder) {
    const elapsed = (Date.now() - t0) / 1000
    if (elapsed + stepSec + 4 > budgetSec) {
      notes.push(`time budget reached before ${n} sessions`)
      break
    }
    const s0 = Date.now()
    await addSessions(n)
    const setupSec = (Date.now() - s0) / 1000
    const meter = cpuMeter(rtpe.pid)
    const stats = await gen.run({ streams, durationMs: stepSec * 1000, expectRelayed: true, drainMs: 400 })
    const cpu = meter.read()
    const mem = memoryKiB(rtpe.pid)
    const p99 = stats.transitJitterMs?.p99 ?? NaN
    let reason: string | undefined
    if (stats.lost > 0) reason = `${stats.lost} packets lost (${(stats.lossRatio * 100).toFixed(3)}%)`
    else if (!(p99 <= JITTER_BOUND_MS)) reason = `p99 jitter ${p99.toFixed(2)} ms > ${JITTER_BOUND_MS} ms`
    else if (stats.unsent > 0) reason = `generator fell behind (${stats.unsent} packets unsent)`
    const { hist, ...rest } = stats
    const step: Step = {
      sessions: n, ok: reason === undefined, reason, setupSec,
      rtpengineCoreShare: cpu.coreShare,
      rtpengineCpuUsPerSessionSec: (cpu.cpuSec / cpu.wallSec / n) * 1e6,
      memoryKiB: mem, stats: rest, hist,
    }
    steps.push(step)
    console.log(`  ${n} sessions (${2 * n} streams, ${(2 * n * 50).toLocaleString()} pkt/s): lost ${stats.lost}, jitter p99 ${p99.toFixed(2)} ms (inter-arrival p99 ${stats.interArrivalDevMs?.p99.toFixed(2)} ms), rtpengine ${(cpu.coreShare * 100).toFixed(0)}% of a core, generator ${(stats.generatorCoreShare * 100).toFixed(0)}% (late p99 ${stats.senderLateMs.p99.toFixed(2)} ms) → ${step.ok ? 'PASS' : `FAIL (${reason})`}`)
    // Climb until packets are lost (or the generator cannot keep up): a step that fails on
    // jitter alone does not stop the ladder, so the curve shows where loss starts too.
    if (stats.lost > 0 || stats.unsent > 0) break
  }
} finally {
  await rtpe.stop()
  await gen.close()
}

const best = steps.filter((s) => s.ok).at(-1)
const last = steps.at(-1)
const zeroLoss = steps.filter((s) => s.stats.lost === 0 && s.stats.unsent === 0).at(-1)
figures.push({
  id: 'ref.rtpengine.media.g711.max_sessions',
  label: 'rtpengine: most G.711 relay sessions with 0 loss and p99 jitter ≤ 2 ms (this box, generator included)',
  value: best?.sessions ?? 0, unit: 'sessions', better: 'higher', engine: 'rtpengine',
  referenceFor: ['media.g711.max_sessions', 'media.g711_max_sessions'],
})
figures.push({
  id: 'ref.rtpengine.media.g711.max_sessions_zero_loss',
  label: 'rtpengine: most G.711 relay sessions with 0 loss (any jitter)',
  value: zeroLoss?.sessions ?? 0, unit: 'sessions', better: 'higher', engine: 'rtpengine',
  referenceFor: ['media.g711.max_sessions_zero_loss'],
})
if (best) {
  const perCore = best.rtpengineCoreShare > 0 ? best.sessions / best.rtpengineCoreShare : NaN
  figures.push({
    id: 'ref.rtpengine.media.g711.sessions_per_core',
    label: `rtpengine: G.711 sessions per core (extrapolated from ${best.sessions} sessions at ${(best.rtpengineCoreShare * 100).toFixed(0)}% of a core)`,
    value: perCore, unit: 'sessions/core', better: 'higher', engine: 'rtpengine',
    referenceFor: ['media.g711.sessions_per_core', 'media.g711_sessions_per_core', 'media.sessions_per_core.g711'],
  })
  figures.push({
    id: 'ref.rtpengine.media.g711.cpu_us_per_session_sec',
    label: 'rtpengine: CPU per session (µs of CPU per second of call, 2 × 50 pkt/s)',
    value: best.rtpengineCpuUsPerSessionSec, unit: 'µs/s', better: 'lower', engine: 'rtpengine',
    referenceFor: ['media.g711.cpu_us_per_session_sec'],
  })
  figures.push({
    id: 'ref.rtpengine.media.g711.memory_kb_per_session',
    label: 'rtpengine: memory per session (PSS growth / sessions)',
    value: Math.max(0, (best.memoryKiB - baseMem) / best.sessions) * 1.024, unit: 'KB', better: 'lower', engine: 'rtpengine',
    referenceFor: ['media.g711.memory_kb_per_session', 'media.memory_kb_per_session'],
  })
  figures.push({
    id: 'ref.rtpengine.media.g711.jitter_p99_ms',
    label: `rtpengine: p99 relay jitter at ${best.sessions} sessions`,
    value: best.stats.transitJitterMs?.p99 ?? NaN, unit: 'ms', better: 'lower', engine: 'rtpengine',
  })
  const genMax = Math.max(...steps.map((s) => s.stats.generatorCoreShare))
  if (genMax > 0.8) notes.push(`the load generator reached ${(genMax * 100).toFixed(0)}% of a core: at the top of the ladder the generator (same box) is a limit as much as rtpengine`)
}
for (const st of steps) {
  if (!st.ok) notes.push(`${st.sessions} sessions failed: ${st.reason}`)
  if (st.stats.senderLateMs.p99 > JITTER_BOUND_MS) notes.push(`at ${st.sessions} sessions the generator itself sent late (p99 ${st.stats.senderLateMs.p99.toFixed(1)} ms behind schedule, ${(st.stats.generatorCoreShare * 100).toFixed(0)}% of a core): the machine, not only rtpengine, limits this step`)
}
if (last && !last.ok) notes.push(`ladder stopped at ${last.sessions} sessions`)
else if (last) notes.push(`every step passed up to ${last.sessions} sessions (the ladder or the time budget ended first)`)
notes.push(`rtpengine ${'userspace'} relay (--table=-1, no kernel forwarding), ${stepSec} s per step${quick ? ' (quick; --full uses 15 s steps and a longer ladder)' : ''}; jitter = |transit(i) − transit(i−1)| with send time stamped in the payload by the generator, so the generator's own pacing is excluded`)

const xs = steps.map((s) => s.sessions)
plots.push({
  id: 'media.rtpengine.capacity', compareKey: 'media.g711.capacity', title: 'rtpengine relay: jitter and loss vs sessions', kind: 'line',
  xLabel: 'concurrent G.711 sessions (2 streams each)', yLabel: 'ms / % lost',
  series: [
    { label: 'rtpengine p99 relay jitter (ms)', x: xs, y: steps.map((s) => s.stats.transitJitterMs?.p99 ?? NaN) },
    { label: 'rtpengine p99 inter-arrival dev. (ms)', x: xs, y: steps.map((s) => s.stats.interArrivalDevMs?.p99 ?? NaN) },
    { label: 'rtpengine loss (%)', x: xs, y: steps.map((s) => s.stats.lossRatio * 100) },
  ],
  marks: [{ axis: 'y', value: JITTER_BOUND_MS, label: 'bound 2 ms' }],
})
plots.push({
  id: 'media.rtpengine.cpu', compareKey: 'media.g711.cpu', title: 'CPU vs sessions (rtpengine relay, RTP generator)', kind: 'line',
  xLabel: 'concurrent G.711 sessions', yLabel: '% of one core',
  series: [
    { label: 'rtpengine', x: xs, y: steps.map((s) => s.rtpengineCoreShare * 100) },
    { label: 'RTP generator (rtpengine run)', x: xs, y: steps.map((s) => s.stats.generatorCoreShare * 100) },
  ],
})
const shown = best ?? last
if (shown) {
  plots.push({
    id: 'media.rtpengine.jitter_hist', title: `rtpengine relay jitter at ${shown.sessions} sessions`, kind: 'histogram',
    xLabel: '|transit difference| (ms)', yLabel: '% of packets',
    series: [histSeries('rtpengine relay jitter', shown.hist.transit, shown.hist.binMs)],
  })
  plots.push({
    id: 'media.rtpengine.jitter_cdf', compareKey: 'media.g711.jitter_cdf', title: `Jitter CDF at ${shown.sessions} sessions`, kind: 'cdf',
    xLabel: 'ms', yLabel: '% of packets ≤ x',
    series: [cdfSeries('rtpengine relay jitter', shown.hist.transit, shown.hist.binMs), cdfSeries('rtpengine inter-arrival deviation', shown.hist.interArrival, shown.hist.binMs)],
    marks: [{ axis: 'x', value: JITTER_BOUND_MS, label: '2 ms' }],
  })
}

finishBench({
  bench: 'media-rtpengine-reference',
  mode: args.mode,
  startedAt: startedAt.toISOString(),
  durationSec: (Date.now() - startedAt.getTime()) / 1000,
  figures, plots, notes,
  details: { stepSec, ladder, socketsPerSide: SOCKETS_PER_SIDE, steps: steps.map(({ hist: _h, ...s }) => s) },
}, args)
process.exit(0)
