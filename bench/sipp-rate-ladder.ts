import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { PlotSpec } from './bench-result.ts'
import { cpuSeconds, memoryKiB } from './proc-stats.ts'

/**
 * A sipp call-rate ladder, reusable for any SIP responder: for each offered
 * rate, sipp's built-in `uac` scenario (INVITE → 100/180 optional → 200 →
 * ACK → BYE → 200) places rate × stepSec calls at `target`; the step passes
 * when every call succeeded (no failures, no timeouts) at close to the offered
 * rate. CPU of the measured processes (e.g. the SIP server and the app) is
 * read from /proc before and after each step. The ladder stops at the first
 * failing step or when its time budget is spent.
 */
export interface MeasuredProcess {
  name: string
  pid: number
  /** Count the process and all its descendants (forked workers). */
  tree?: boolean
}

export interface LadderOptions {
  /** host:port of the responder under test. */
  target: string
  measure: MeasuredProcess[]
  /** Offered call rates (calls/s), ascending. */
  rates: number[]
  /** Length of each step in seconds (calls = rate × stepSec). */
  stepSec: number
  /** Stop climbing when the next step would not fit into this many seconds from the start. */
  budgetSec?: number
  transport?: 'u1' | 't1'
  /** Per-message receive timeout: a call that waits longer fails (default 4000 ms). */
  recvTimeoutMs?: number
  /** Pause (call hold) in the scenario, ms (sipp -d, default 0). */
  holdMs?: number
  /** The achieved rate must reach this share of the offered rate (default 0.9). */
  minRateShare?: number
  /** Number of failing steps before stopping (default 1). */
  maxFailedSteps?: number
  /** Rest between steps so the responder can expire its transactions (default 1000 ms). */
  restMs?: number
  sippArgs?: string[]
  /** A sipp XML scenario instead of the built-in `uac` (e.g. REGISTER with digest). */
  scenarioFile?: string
  /** sipp -inf injection CSV (users, passwords). */
  injectionFile?: string
  /** Request-URI user (sipp -s). */
  service?: string
  onProgress?: (line: string) => void
}

export interface LadderStep {
  offeredCps: number
  planned: number
  successful: number
  failed: number
  retransmissions: number
  elapsedSec: number
  achievedCps: number
  ok: boolean
  /** Why the step failed, when it did. */
  reason?: string
  /** Average INVITE→200 response time seen by sipp, ms (when reported). */
  responseTimeMs?: number
  /** Per measured process: CPU seconds over the step, share of one core, ms of CPU per call. */
  cpu: Record<string, { cpuSec: number; coreShare: number; cpuMsPerCall: number }>
  /** sipp's own CPU share of one core (the load generator's headroom). */
  sippCoreShare: number
  memoryKiB: Record<string, number>
}

export interface LadderResult {
  steps: LadderStep[]
  /** Highest offered rate that passed (0 when none did). */
  maxSustainedCps: number
  /** The step at maxSustainedCps. */
  best?: LadderStep
  /** CPU seconds per 1,000 calls per measured process at the best step. */
  cpuSecPer1000Calls: Record<string, number>
  stoppedBy: 'failure' | 'budget' | 'end-of-ladder' | 'aborted'
}

const live = new Set<ChildProcess>()
/** Kills any sipp the ladder started (call on SIGINT/exit). */
export function killLadderSipps(): void {
  for (const c of live) c.kill('SIGKILL')
  live.clear()
}

export async function runRateLadder(opts: LadderOptions, signal?: AbortSignal): Promise<LadderResult> {
  const start = Date.now()
  const steps: LadderStep[] = []
  const log = opts.onProgress ?? (() => {})
  let failedSteps = 0
  let stoppedBy: LadderResult['stoppedBy'] = 'end-of-ladder'
  for (const rate of opts.rates) {
    if (signal?.aborted) {
      stoppedBy = 'aborted'
      break
    }
    const elapsed = (Date.now() - start) / 1000
    if (opts.budgetSec !== undefined && elapsed + opts.stepSec * 1.2 + 3 > opts.budgetSec) {
      stoppedBy = 'budget'
      log(`budget of ${opts.budgetSec} s reached before ${rate} calls/s`)
      break
    }
    const step = await runStep(rate, opts, signal)
    steps.push(step)
    const cpu = Object.entries(step.cpu).map(([k, v]) => `${k} ${(v.coreShare * 100).toFixed(0)}% (${v.cpuMsPerCall.toFixed(3)} ms/call)`).join(', ')
    log(`${rate} calls/s offered: ${step.successful}/${step.planned} ok, ${step.failed} failed, ${step.achievedCps.toFixed(0)} calls/s achieved, ${step.retransmissions} retrans; cpu ${cpu}; sipp ${(step.sippCoreShare * 100).toFixed(0)}% → ${step.ok ? 'PASS' : `FAIL (${step.reason})`}`)
    if (!step.ok && ++failedSteps >= (opts.maxFailedSteps ?? 1)) {
      stoppedBy = 'failure'
      break
    }
    await new Promise((r) => setTimeout(r, opts.restMs ?? 1000))
  }
  const passing = steps.filter((s) => s.ok)
  const best = passing.reduce<LadderStep | undefined>((a, s) => (!a || s.offeredCps > a.offeredCps ? s : a), undefined)
  const cpuSecPer1000Calls: Record<string, number> = {}
  if (best) for (const [k, v] of Object.entries(best.cpu)) cpuSecPer1000Calls[k] = v.cpuMsPerCall
  return { steps, maxSustainedCps: best?.offeredCps ?? 0, best, cpuSecPer1000Calls, stoppedBy }
}

async function runStep(rate: number, opts: LadderOptions, signal?: AbortSignal): Promise<LadderStep> {
  const dir = mkdtempSync(join(tmpdir(), 'sipp-ladder-'))
  const planned = Math.max(1, Math.round(rate * opts.stepSec))
  const recvTimeout = opts.recvTimeoutMs ?? 4000
  const hold = opts.holdMs ?? 0
  const stat = join(dir, 'stat.csv')
  const args = [
    ...(opts.scenarioFile ? ['-sf', opts.scenarioFile] : ['-sn', 'uac']), opts.target,
    ...(opts.injectionFile ? ['-inf', opts.injectionFile] : []),
    ...(opts.service ? ['-s', opts.service] : []),
    '-i', '127.0.0.1', '-p', '0', '-t', opts.transport ?? 'u1',
    '-m', String(planned), '-r', String(rate), '-rp', '1000',
    '-l', String(Math.max(100, Math.ceil(rate * (hold / 1000 + 2) * 2))),
    '-d', String(hold),
    '-recv_timeout', String(recvTimeout),
    '-timeout', `${Math.ceil(opts.stepSec * 2 + recvTimeout / 1000 + 10)}s`,
    '-nostdin', '-trace_stat', '-stf', stat, '-fd', '1',
    '-trace_err', '-error_file', join(dir, 'errors.log'),
    ...(opts.sippArgs ?? []),
  ]
  const before = opts.measure.map((m) => cpuSeconds(m.pid, m.tree))
  const t0 = process.hrtime.bigint()
  const child = spawn('sipp', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
  live.add(child)
  let sippCpu = 0
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000) })
  // sample sipp's CPU while it runs (it is gone from /proc once it exits)
  const sampler = setInterval(() => {
    if (child.pid) {
      const c = cpuSeconds(child.pid)
      if (c > 0) sippCpu = c
    }
  }, 250)
  const hardKill = setTimeout(() => child.kill('SIGKILL'), (opts.stepSec * 2 + recvTimeout / 1000 + 20) * 1000)
  const onAbort = () => child.kill('SIGKILL')
  signal?.addEventListener('abort', onAbort)
  const code = await new Promise<number | null>((resolve) => {
    child.on('close', (c) => resolve(c))
    child.on('error', () => resolve(-1))
  })
  signal?.removeEventListener('abort', onAbort)
  clearInterval(sampler)
  clearTimeout(hardKill)
  live.delete(child)
  const wall = Number(process.hrtime.bigint() - t0) / 1e9
  const after = opts.measure.map((m) => cpuSeconds(m.pid, m.tree))
  const memory: Record<string, number> = {}
  for (const m of opts.measure) memory[m.name] = memoryKiB(m.pid, m.tree)
  const s = parseSippStat(stat)
  const errors = summarizeSippErrors(join(dir, 'errors.log'))
  rmSync(dir, { recursive: true, force: true })
  // sipp's ElapsedTime column has whole seconds only: use our own clock (adds sipp's ~0.1 s start-up)
  const elapsedSec = wall
  const calls = s.successful + s.failed
  const cpu: LadderStep['cpu'] = {}
  opts.measure.forEach((m, i) => {
    const cpuSec = after[i]! - before[i]!
    cpu[m.name] = { cpuSec, coreShare: cpuSec / wall, cpuMsPerCall: calls > 0 ? (cpuSec / calls) * 1000 : NaN }
  })
  // sipp's elapsed time ends when the last call ends: take the mean call length off, so a
  // short step is not penalised for its tail, while a server that falls behind still shows
  const achievedCps = s.successful / Math.max(opts.stepSec * 0.95, elapsedSec - 0.1 - (s.callLengthSec ?? 0))
  const minShare = opts.minRateShare ?? 0.9
  let reason: string | undefined
  if (code === -1) reason = 'sipp could not start'
  else if (!s.found) reason = `sipp wrote no statistics (exit ${code}): ${stderr.trim().split('\n').pop() ?? ''}`
  else if (s.failed > 0) reason = `${s.failed} failed calls${errors ? `: ${errors}` : ''}`
  else if (s.successful < planned) reason = `${planned - s.successful} calls not completed`
  else if (achievedCps < rate * minShare) reason = `achieved ${achievedCps.toFixed(0)} calls/s < ${(minShare * 100).toFixed(0)}% of offered`
  return {
    offeredCps: rate, planned, successful: s.successful, failed: s.failed, retransmissions: s.retransmissions,
    elapsedSec, achievedCps, ok: reason === undefined, reason, responseTimeMs: s.responseTimeMs,
    cpu, sippCoreShare: sippCpu / wall, memoryKiB: memory,
  }
}

/** The most frequent failure causes in a sipp error file, e.g. "403 Forbidden ×12, receive timeout ×3". */
export function summarizeSippErrors(file: string): string {
  if (!existsSync(file)) return ''
  const text = readFileSync(file, 'utf8').slice(0, 2_000_000)
  const counts = new Map<string, number>()
  for (const m of text.matchAll(/while expecting '[^']*' \(index \d+\), received 'SIP\/2\.0 (\d{3}[^\r\n']*)|(receive timeout)|(Max-UDP-Retrans|max retransmission)/gi)) {
    const key = m[1] ?? m[2] ?? m[3] ?? '?'
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, n]) => `${k.trim()} ×${n}`).join(', ')
}

interface SippStat {
  found: boolean
  successful: number
  failed: number
  retransmissions: number
  elapsedSec: number
  responseTimeMs?: number
  callLengthSec?: number
}

/** Reads the cumulative columns of sipp's -trace_stat CSV (last line). */
export function parseSippStat(file: string): SippStat {
  if (!existsSync(file)) return { found: false, successful: 0, failed: 0, retransmissions: 0, elapsedSec: 0 }
  const lines = readFileSync(file, 'utf8').trim().split('\n')
  if (lines.length < 2) return { found: false, successful: 0, failed: 0, retransmissions: 0, elapsedSec: 0 }
  const head = lines[0]!.split(';')
  const last = lines[lines.length - 1]!.split(';')
  const col = (name: string) => last[head.indexOf(name)] ?? ''
  const num = (name: string) => Number(col(name) || 0)
  return {
    found: true,
    successful: num('SuccessfulCall(C)'),
    failed: num('FailedCall(C)'),
    retransmissions: num('Retransmissions(C)'),
    elapsedSec: hms(col('ElapsedTime(C)')),
    responseTimeMs: head.includes('ResponseTime1(C)') ? hms(col('ResponseTime1(C)')) * 1000 : undefined,
    callLengthSec: head.includes('CallLength(C)') ? hms(col('CallLength(C)')) : undefined,
  }
}

/** sipp durations: "HH:MM:SS" or "HH:MM:SS:uuuuuu". */
function hms(v: string): number {
  const p = v.split(':').map(Number)
  if (p.length < 3 || p.some((x) => !Number.isFinite(x))) return 0
  return p[0]! * 3600 + p[1]! * 60 + p[2]! + (p.length > 3 ? p[3]! / 1e6 : 0)
}

/** Capacity curve and CPU-per-call plots for one or more ladders (e.g. Callplane and Kamailio). */
export function ladderPlots(
  idPrefix: string,
  ladders: { label: string; result: LadderResult; cpuOf: string }[],
  opts: { what?: string; unit?: string; compareKey?: string | null } = {},
): PlotSpec[] {
  const what = opts.what ?? 'SIP call rate'
  const unit = opts.unit ?? 'calls/s'
  const ck = opts.compareKey === undefined ? 'sip.ladder' : opts.compareKey
  return [
    {
      id: `${idPrefix}.capacity`,
      compareKey: ck ? `${ck}.capacity` : undefined,
      title: opts.what ? `${what}: achieved vs offered` : 'SIP call rate: achieved vs offered (sipp uac, INVITE/200/ACK/BYE)',
      kind: 'line',
      xLabel: `offered ${unit}`,
      yLabel: `completed ${unit} (0 failures = on the diagonal)`,
      series: [
        ...ladders.map((l) => ({
          label: `${l.label} achieved`,
          x: l.result.steps.map((s) => s.offeredCps),
          y: l.result.steps.map((s) => (s.failed > 0 || s.successful < s.planned ? s.achievedCps * (s.successful / Math.max(1, s.planned)) : s.achievedCps)),
        })),
        ...(ladders.length > 0 ? [{ label: 'offered (ideal)', x: ladders.flatMap((l) => l.result.steps.map((s) => s.offeredCps)), y: ladders.flatMap((l) => l.result.steps.map((s) => s.offeredCps)) }] : []),
      ],
    },
    {
      id: `${idPrefix}.failed`,
      compareKey: ck ? `${ck}.failed` : undefined,
      title: `${what}: failures per step`,
      kind: 'line',
      xLabel: `offered ${unit}`,
      yLabel: 'failed or incomplete',
      series: ladders.map((l) => ({ label: l.label, x: l.result.steps.map((s) => s.offeredCps), y: l.result.steps.map((s) => s.failed + Math.max(0, s.planned - s.successful - s.failed)) })),
    },
    {
      id: `${idPrefix}.cpu`,
      compareKey: ck ? `${ck}.cpu` : undefined,
      title: `${what}: responder CPU vs offered rate`,
      kind: 'line',
      xLabel: `offered ${unit}`,
      yLabel: 'CPU, % of one core',
      series: ladders.map((l) => ({ label: `${l.label} (${l.cpuOf})`, x: l.result.steps.map((s) => s.offeredCps), y: l.result.steps.map((s) => (s.cpu[l.cpuOf]?.coreShare ?? NaN) * 100) })),
    },
  ]
}
