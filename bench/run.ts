/**
 * `npm run bench [-- --full] [--only a,b] [--skip a,b] [--list] [--timeout name=sec]`
 *
 * Runs every bench script (bench/{sip,media,agent,vad,api,cost,flow}-*.ts, bench/dialer.ts, that follow
 * the contract in bench/bench-result.ts) one after the other, each in its own
 * process group with a time bound, shows their progress, collects their
 * BenchResult JSON, adds machine info and writes
 *   bench/results/<timestamp>.json and .html, plus latest.json / latest.html.
 * A bench that fails, times out or does not exist yet is reported as such.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, hostname, loadavg, release, tmpdir, totalmem } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BenchResult } from './bench-result.ts'
import { buildComparisons, buildSummary, fmtNum, summaryLine, type BenchRunEntry, type MachineInfo, type RunReport } from './run-report.ts'
import { renderReportHtml } from './report-html.ts'
import { killAllEngines, startEngineProcess, type EngineProcess } from './engine-process.ts'

const BENCH_DIR = dirname(fileURLToPath(import.meta.url))
const ROOT = dirname(BENCH_DIR)
const RESULTS_DIR = join(BENCH_DIR, 'results')

/** What the issues ask to be measured; a category with no script is reported as missing. */
const CATEGORIES: { key: string; match: (name: string) => boolean; about: string; missing: string }[] = [
  {
    key: 'sip',
    match: (n) => n.startsWith('sip-') && !isReference(n),
    about: 'SIP call rate with zero failures, CPU per 1,000 calls, dialogs (issue 3) on the embedded sip/server',
    missing: 'no bench/sip-*.ts for Callplane yet (issue 3)',
  },
  {
    key: 'sip-reference',
    match: (n) => n.startsWith('sip-') && isReference(n),
    about: 'Kamailio as a stateful responder (tm), same INVITE/200/ACK/BYE ladder: the SIP reference',
    missing: 'no SIP reference bench (bench/sip-kamailio-reference.ts)',
  },
  {
    key: 'media',
    match: (n) => n.startsWith('media-') && !isReference(n),
    about: 'G.711 and Opus-transcoding media sessions per core at the pacing-jitter bound (issue 4)',
    missing: 'no bench/media-*.ts for Callplane yet (issue 4)',
  },
  {
    key: 'media-reference',
    match: (n) => n.startsWith('media-') && isReference(n),
    about: 'rtpengine userspace relay with the same G.711 packets: the media reference',
    missing: 'no media reference bench (bench/media-rtpengine-reference.ts)',
  },
  {
    key: 'agent',
    match: (n) => n.startsWith('agent-') || n.startsWith('vad-'),
    about: 'barge-in latency, engine-added turn latency, agent calls per core, VAD accuracy and cost (issue 8)',
    missing: 'no bench/agent-*.ts yet (issue 8)',
  },
  {
    key: 'api',
    match: (n) => n.startsWith('api-'),
    about: 'REST hot read routes: req/s and p99 with autocannon (issue 6)',
    missing: 'no bench/api-*.ts yet (issue 6)',
  },
  {
    key: 'cost',
    match: (n) => n.startsWith('cost-'),
    about: 'CPU and memory of the engine as concurrent calls grow (issue 7)',
    missing: 'no bench/cost-*.ts',
  },
  {
    key: 'flow',
    match: (n) => n.startsWith('flow-'),
    about: 'programmable calls: IVR calls per core, the verb interpreter\'s CPU per verb, a webhook app\'s response to its audio (issue 16)',
    missing: 'no bench/flow-*.ts yet (issue 16)',
  },
  {
    key: 'dialer',
    match: (n) => n.startsWith('dialer'),
    about: 'contact centre and outbound at scale: the job scheduler\'s CPU per job, a campaign\'s pacing accuracy, queue assignment latency (issue 17)',
    missing: 'no bench/dialer.ts yet (issue 17)',
  },
]

function isReference(name: string): boolean {
  return /reference|kamailio|rtpengine/.test(name)
}

/** Per-bench time bounds in seconds (the script also gets BENCH_BUDGET_SEC). */
const DEFAULT_TIMEOUT = { quick: 30, full: 300 }
// Quick bounds are a safety net a little above each script's own quick plan
// (the whole quick run aims at about 2 minutes on an idle 2-core box); the
// scripts that read BENCH_BUDGET_SEC also fit their ladders to it.
const TIMEOUTS: Record<string, { quick: number; full: number }> = {
  'sip-kamailio-reference': { quick: 25, full: 420 },
  'sip-call-rate': { quick: 45, full: 420 },
  'sip-register-rate': { quick: 30, full: 540 },
  // its own engine (limits on) and Kamailio + pike, one flood each (8 s quick, 30 s full) plus the tails
  'sip-flood': { quick: 90, full: 300 },
  'media-rtpengine-reference': { quick: 40, full: 360 },
  'media-sessions': { quick: 35, full: 330 },
  'api-read': { quick: 80, full: 420 },
  'media-hotpath': { quick: 30, full: 300 },
  'agent-latency': { quick: 120, full: 420 },
  'cost-growth': { quick: 40, full: 360 },
  // starts an engine of its own (MEDIA_WORKERS=2), so start-up counts against its bound
  'cost-growth-media-workers': { quick: 40, full: 390 },
  'vad-compare': { quick: 30, full: 180 },
  // interpreter in-process, verbs on live calls, a webhook app's latency, one IVR step (quick) or the ladder and a TTS step (full)
  'flow-ivr': { quick: 70, full: 480 },
  // its own engine on a throwaway PostgreSQL: start-up of both counts against its bound
  'flow-ivr-postgres': { quick: 90, full: 420 },
  // the scheduler in-process (PGlite start-up, three batches of jobs), then a campaign and a queue on the engine
  dialer: { quick: 180, full: 480 },
  'dialer-postgres': { quick: 120, full: 480 },
}
/**
 * Benches that rerun a discovered script with extra arguments, as entries of their own
 * (own name, bound, result and figures), only in the listed modes.
 */
const VARIANTS: { name: string; of: string; args: string[]; modes: ('quick' | 'full')[]; about: string }[] = [
  {
    name: 'cost-growth-media-workers', of: 'cost-growth', args: ['--media-workers', '2'], modes: ['full'],
    about: 'cost-growth with MEDIA_WORKERS=2 (call media and agents in two worker threads, on an engine of its own): the capacity curve next to the in-process one',
  },
  {
    name: 'flow-ivr-postgres', of: 'flow-ivr', args: ['--postgres', '--only', 'ivr'], modes: ['full'],
    about: 'flow-ivr\'s IVR ladder with the engine on a throwaway PostgreSQL instead of the embedded PGlite: the engine\'s own CPU per IVR call, and the database server\'s apart',
  },
  {
    name: 'dialer-postgres', of: 'dialer', args: ['--postgres', '--only', 'scheduler,pacing'], modes: ['full'],
    about: 'dialer\'s job scheduler overhead and campaign pacing on a throwaway PostgreSQL instead of the embedded PGlite: CPU per job with the engine\'s side and the database server\'s apart; calls per second at the callee',
  },
]

/** Whole-run bound: benches that would start after it are skipped (and reported). */
const TOTAL_BOUND = { quick: 600, full: 4500 }

interface Options {
  mode: 'quick' | 'full'
  only: string[]
  skip: string[]
  list: boolean
  timeouts: Record<string, number>
}

function parseArgs(argv: string[]): Options {
  const o: Options = { mode: argv.includes('--full') ? 'full' : 'quick', only: [], skip: [], list: argv.includes('--list'), timeouts: {} }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const next = () => argv[++i] ?? ''
    if (a === '--only') o.only.push(...next().split(',').filter(Boolean))
    else if (a.startsWith('--only=')) o.only.push(...a.slice(7).split(',').filter(Boolean))
    else if (a === '--skip') o.skip.push(...next().split(',').filter(Boolean))
    else if (a.startsWith('--skip=')) o.skip.push(...a.slice(7).split(',').filter(Boolean))
    else if (a === '--timeout') {
      const [k, v] = next().split('=')
      if (k && v) o.timeouts[k] = Number(v)
    } else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: npm run bench [-- --full] [--only name,...] [--skip name,...] [--timeout name=sec] [--list] [--render results.json]\n')
      process.exit(0)
    }
  }
  return o
}

interface Script {
  name: string
  path: string
  category: (typeof CATEGORIES)[number]
  /** Uses acquireEngineProcess(): the orchestrator shares one engine between such benches. */
  needsEngine: boolean
  /** First paragraph of the script's leading doc comment. */
  about?: string
  /** Extra arguments after --quick/--full and --out (VARIANTS). */
  args?: string[]
  /** Runs only in these modes (VARIANTS); every mode when absent. */
  modes?: ('quick' | 'full')[]
}

/** The first paragraph of a file's leading /** … *\/ comment, on one line. */
function docSummary(src: string): string | undefined {
  const m = /^\s*(?:#![^\n]*\n)?\s*\/\*\*([\s\S]*?)\*\//.exec(src)
  if (!m) return undefined
  const lines = m[1]!.split('\n').map((l) => l.replace(/^\s*\* ?/, '').trimEnd())
  const para: string[] = []
  for (const l of lines) {
    if (!l.trim()) {
      if (para.length) break
      continue
    }
    para.push(l.trim())
  }
  const text = para.join(' ').replace(/\s+/g, ' ')
  return text ? (text.length > 300 ? `${text.slice(0, 297)}…` : text) : undefined
}

/** bench/*.ts scripts that follow the contract (they parse --out via parseBenchArgs or finishBench). */
export function discover(): Script[] {
  const found: Script[] = []
  for (const f of readdirSync(BENCH_DIR).sort()) {
    if (!f.endsWith('.ts') || f.endsWith('.d.ts')) continue
    const name = f.slice(0, -3)
    const category = CATEGORIES.find((c) => c.match(name))
    if (!category) continue
    const src = readFileSync(join(BENCH_DIR, f), 'utf8')
    if (!/parseBenchArgs|finishBench|--out/.test(src)) continue // a helper module, not a bench script
    found.push({ name, path: join(BENCH_DIR, f), category, needsEngine: src.includes('acquireEngineProcess'), about: docSummary(src) })
  }
  for (const v of VARIANTS) {
    const base = found.find((s) => s.name === v.of)
    // own engine: a variant changes how the engine runs, so it never gets the shared one
    if (base) found.push({ ...base, name: v.name, args: v.args, modes: v.modes, about: v.about, needsEngine: false })
  }
  // benches that share the engine run last, together, so it is up only while they run
  const order = (s: Script) => (s.needsEngine ? 100 : 0) + CATEGORIES.indexOf(s.category)
  return found.sort((a, b) => order(a) - order(b) || a.name.localeCompare(b.name))
}

function tryExec(cmd: string, args: string[], pick: (out: string) => string | null = firstLine): string | null {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'pipe'] })
    return pick(out)
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string }
    const text = `${e.stdout ?? ''}${e.stderr ?? ''}`
    return text.trim() ? pick(text) : null
  }
}

function firstLine(s: string): string | null {
  const l = s.split('\n').map((x) => x.trim()).find(Boolean)
  return l ?? null
}

function pkgVersion(name: string): string | null {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return null
  }
}

export function machineInfo(): MachineInfo {
  const c = cpus()
  let os = process.platform as string
  try {
    os = /PRETTY_NAME="?([^"\n]+)"?/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os
  } catch { /* not linux */ }
  return {
    hostname: hostname(),
    cpuModel: c[0]?.model.trim() ?? 'unknown',
    cores: c.length,
    memoryGiB: totalmem() / 2 ** 30,
    kernel: release(),
    os,
    node: process.version,
    npm: tryExec('npm', ['-v']),
    tools: {
      sipp: tryExec('sipp', ['-v'], (s) => /SIPp v?([\w.\-]+)/.exec(s)?.[0] ?? null),
      kamailio: tryExec('/usr/sbin/kamailio', ['-v'], (s) => /version:\s*(.*)/.exec(s)?.[1]?.trim() ?? null),
      // rtpengine --version prints nothing when its stdin is not a terminal: ask dpkg
      rtpengine: existsSync('/usr/bin/rtpengine') ? tryExec('dpkg-query', ['-W', '-f', '${Version}', 'rtpengine-daemon']) ?? 'installed (version unknown)' : null,
      'drachtio-srf': pkgVersion('drachtio-srf'),
      'rtpengine-client': pkgVersion('rtpengine-client'),
      autocannon: pkgVersion('autocannon'),
    },
    loadAvgAtStart: loadavg(),
  }
}

function gitInfo(): RunReport['git'] {
  const g = (args: string[]) => {
    try {
      return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    } catch {
      return null
    }
  }
  const status = g(['status', '--porcelain', '--untracked-files=no'])
  return { commit: g(['rev-parse', 'HEAD']), branch: g(['rev-parse', '--abbrev-ref', 'HEAD']), dirty: status === null ? null : status.length > 0 }
}

let current: ChildProcess | undefined
let interrupted = false

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(-child.pid, signal) // the whole process group: the bench and whatever it spawned
  } catch {
    try { child.kill(signal) } catch { /* gone */ }
  }
}

async function runOne(s: Script, mode: 'quick' | 'full', timeoutSec: number, index: number, total: number, sharedEngine?: EngineProcess): Promise<BenchRunEntry> {
  const tmp = mkdtempSync(join(tmpdir(), 'callplane-bench-'))
  const out = join(tmp, 'result.json')
  const started = Date.now()
  const tag = `[${index}/${total} ${s.name}]`
  process.stdout.write(`\n${tag} starting (${mode}, bound ${timeoutSec} s)\n`)
  const child = spawn(process.execPath, ['--import', 'tsx', s.path, `--${mode}`, '--out', out, ...(s.args ?? [])], {
    cwd: ROOT,
    detached: true, // own process group, so a timeout kills its sipp/daemons too
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env, BENCH_BUDGET_SEC: String(Math.max(5, timeoutSec - 5)), BENCH_MODE: mode, FORCE_COLOR: '0',
      ...(sharedEngine ? { BENCH_ENGINE: JSON.stringify({ pid: sharedEngine.pid, sipPort: sharedEngine.sipPort, httpPort: sharedEngine.httpPort, apiKey: sharedEngine.apiKey, startupSec: sharedEngine.startupSec, dataDir: sharedEngine.dataDir, rtpPorts: sharedEngine.rtpPorts }) } : {}),
    },
  })
  current = child
  const tail: string[] = []
  const onData = (prefix: string) => {
    let buf = ''
    return (d: Buffer) => {
      buf += d.toString()
      let i: number
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        tail.push(line)
        if (tail.length > 60) tail.shift()
        if (line.length < 2000) process.stdout.write(`  ${prefix}${line}\n`)
      }
    }
  }
  child.stdout!.on('data', onData(''))
  child.stderr!.on('data', onData('! '))
  let timedOut = false
  const heartbeat = setInterval(() => {
    process.stdout.write(`${tag} … ${((Date.now() - started) / 1000).toFixed(0)} s / ${timeoutSec} s\n`)
  }, 15_000)
  const timer = setTimeout(() => {
    timedOut = true
    clearInterval(heartbeat)
    process.stdout.write(`${tag} time bound reached, stopping it\n`)
    killGroup(child, 'SIGTERM')
    setTimeout(() => killGroup(child, 'SIGKILL'), 3000).unref()
  }, timeoutSec * 1000)
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }))
    child.on('error', () => resolve({ code: -1, signal: null }))
  })
  clearTimeout(timer)
  clearInterval(heartbeat)
  killGroup(child, 'SIGKILL') // leftovers in its group, if any
  current = undefined
  const durationSec = (Date.now() - started) / 1000
  let result: BenchResult | undefined
  let parseError: string | undefined
  if (existsSync(out)) {
    try {
      const r = JSON.parse(readFileSync(out, 'utf8')) as BenchResult
      if (!Array.isArray(r.figures)) throw new Error('no figures array')
      r.plots ??= []
      result = r
    } catch (err) {
      parseError = `result JSON unreadable: ${(err as Error).message}`
    }
  }
  rmSync(tmp, { recursive: true, force: true })
  const entry: BenchRunEntry = {
    name: s.name, script: relative(ROOT, s.path), about: s.about ?? s.category.about,
    status: 'ok', exitCode: code, signal, durationSec, timeoutSec, result,
  }
  if (interrupted) {
    entry.status = 'failed'
    entry.error = 'interrupted (SIGINT)'
  } else if (timedOut) {
    entry.status = 'timeout'
    entry.error = `did not finish within ${timeoutSec} s${result ? ' (a partial result was written)' : ''}`
  } else if (code !== 0) {
    entry.status = 'failed'
    entry.error = `exited with ${code === null ? `signal ${signal}` : `code ${code}`}${result ? ' (a result was written anyway)' : ''}`
  } else if (!result) {
    entry.status = 'no-result'
    entry.error = parseError ?? 'exited 0 without writing a result'
  }
  if (entry.status !== 'ok') entry.logTail = tail.join('\n')
  process.stdout.write(`${tag} ${entry.status} in ${durationSec.toFixed(1)} s${entry.error ? `: ${entry.error}` : ''}\n`)
  return entry
}

function timestamp(d: Date): string {
  return d.toISOString().replace(/[:]/g, '').replace(/\.\d+Z$/, 'Z')
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  const ri = argv.indexOf('--render')
  if (ri >= 0) {
    // re-render the HTML of an earlier run (e.g. after a report change): --render bench/results/X.json
    const file = argv[ri + 1] ?? join(RESULTS_DIR, 'latest.json')
    const run = JSON.parse(readFileSync(file, 'utf8')) as RunReport
    run.summary = buildSummary(run.benches)
    run.comparisons = buildComparisons(run.benches)
    const html = file.replace(/\.json$/, '.html')
    writeFileSync(html, renderReportHtml(run))
    process.stdout.write(`Report: ${relative(ROOT, html)}\n`)
    return
  }
  const opts = parseArgs(argv)
  let scripts = discover()
  const selected = (n: string) => (opts.only.length === 0 || opts.only.some((o) => n.includes(o))) && !opts.skip.some((o) => n.includes(o))
  if (opts.list) {
    for (const s of scripts) process.stdout.write(`${s.name.padEnd(28)} ${s.modes ? `(${s.modes.join('/')} only) ` : ''}${(s.about ?? s.category.about).slice(0, 110)}\n`)
    for (const c of CATEGORIES) if (!scripts.some((s) => s.category === c)) process.stdout.write(`${`(missing ${c.key})`.padEnd(28)} ${c.missing}\n`)
    return
  }
  const startedAt = new Date()
  const filtered = scripts.filter((s) => selected(s.name) && (!s.modes || s.modes.includes(opts.mode)))
  process.stdout.write(`Callplane bench, ${opts.mode} mode: ${filtered.length} bench script(s): ${filtered.map((s) => s.name).join(', ') || 'none'}\n`)
  const machine = machineInfo()
  process.stdout.write(`machine: ${machine.cpuModel} × ${machine.cores}, ${fmtNum(machine.memoryGiB)} GiB, ${machine.os}, kernel ${machine.kernel}, node ${machine.node}, load ${machine.loadAvgAtStart.map((x) => x.toFixed(2)).join(' ')}\n`)

  const benches: BenchRunEntry[] = []
  const notes: string[] = []
  if (machine.loadAvgAtStart[0]! > machine.cores * 0.5) notes.push(`load average at start was ${machine.loadAvgAtStart[0]!.toFixed(2)} on ${machine.cores} cores: other work was running, figures are noisy`)
  notes.push('Load generators (sipp, the RTP generator, autocannon) run on the same machine and share its cores with the engine under test; capacity figures are bounded by the box, not only by the engine.')

  const onSigint = () => {
    interrupted = true
    process.stdout.write('\nSIGINT: stopping the running bench and writing a partial report\n')
    killAllEngines()
    if (current) {
      killGroup(current, 'SIGTERM')
      const c = current
      setTimeout(() => killGroup(c, 'SIGKILL'), 2000).unref()
    }
  }
  process.on('SIGINT', onSigint)
  process.on('SIGTERM', onSigint)

  const bound = TOTAL_BOUND[opts.mode]
  const lastEngineUser = filtered.map((s) => s.needsEngine).lastIndexOf(true)
  let engine: EngineProcess | undefined
  let engineTried = false
  for (const [i, s] of filtered.entries()) {
    const elapsed = (Date.now() - startedAt.getTime()) / 1000
    if (interrupted || elapsed > bound) {
      benches.push({ name: s.name, script: relative(ROOT, s.path), about: s.about ?? s.category.about, status: 'skipped', durationSec: 0, error: interrupted ? 'interrupted before it started' : `the run's total bound (${bound} s) was reached` })
      continue
    }
    if (s.needsEngine && !engineTried) {
      engineTried = true
      process.stdout.write(`\nstarting one engine (main.ts) for the benches that share it: ${filtered.filter((x) => x.needsEngine).map((x) => x.name).join(', ')}\n`)
      try {
        engine = await startEngineProcess({ rtpPorts: opts.mode === 'quick' ? 2000 : 8000, timeoutMs: 90_000 })
        process.stdout.write(`engine pid ${engine.pid} up in ${engine.startupSec.toFixed(1)} s (SIP 127.0.0.1:${engine.sipPort}, HTTP ${engine.httpPort})\n`)
        notes.push(`one engine process (main.ts, embedded defaults) was started in ${engine.startupSec.toFixed(1)} s and shared by ${filtered.filter((x) => x.needsEngine).map((x) => x.name).join(', ')}`)
      } catch (err) {
        notes.push(`the shared engine did not start (${(err as Error).message.split('\n')[0]}); each bench tried its own`)
      }
    }
    const t = opts.timeouts[s.name] ?? TIMEOUTS[s.name]?.[opts.mode] ?? DEFAULT_TIMEOUT[opts.mode]
    benches.push(await runOne(s, opts.mode, t, i + 1, filtered.length, s.needsEngine ? engine : undefined))
    if (engine && i >= lastEngineUser) {
      await engine.stop()
      engine = undefined
    }
  }
  if (engine) await engine.stop()
  killAllEngines()
  for (const c of CATEGORIES) {
    if (!scripts.some((s) => s.category === c) && (opts.only.length === 0 || opts.only.some((o) => c.key.includes(o)))) {
      benches.push({ name: c.key, status: 'missing', about: c.about, durationSec: 0, error: c.missing })
    }
  }
  scripts = []

  const finishedAt = new Date()
  const report: RunReport = {
    kind: 'callplane-bench-run',
    schema: 1,
    mode: opts.mode,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationSec: (finishedAt.getTime() - startedAt.getTime()) / 1000,
    machine,
    git: gitInfo(),
    benches,
    summary: buildSummary(benches),
    comparisons: buildComparisons(benches),
    notes,
  }
  mkdirSync(RESULTS_DIR, { recursive: true })
  const base = join(RESULTS_DIR, timestamp(startedAt))
  writeFileSync(`${base}.json`, JSON.stringify(report, null, 2))
  writeFileSync(`${base}.html`, renderReportHtml(report))
  copyFileSync(`${base}.json`, join(RESULTS_DIR, 'latest.json'))
  copyFileSync(`${base}.html`, join(RESULTS_DIR, 'latest.html'))

  // Combined summary
  const line = '─'.repeat(78)
  process.stdout.write(`\n${line}\nCallplane bench summary (${report.mode}, ${fmtNum(report.durationSec)} s, ${machine.cores} cores, ${machine.cpuModel})\n${line}\n`)
  for (const b of benches) {
    process.stdout.write(`${b.status === 'ok' ? '✓' : '✗'} ${b.name} — ${b.status}${b.status === 'missing' ? '' : ` (${fmtNum(b.durationSec)} s)`}${b.error ? `: ${b.error}` : ''}\n`)
    for (const r of report.summary.filter((x) => x.bench === b.name)) process.stdout.write(`    ${summaryLine(r)}\n`)
    for (const n of b.result?.notes ?? []) process.stdout.write(`    note: ${n}\n`)
  }
  const withTarget = report.summary.filter((r) => r.target !== undefined)
  process.stdout.write(`${line}\ntargets met: ${withTarget.filter((r) => r.met).length}/${withTarget.length} · benches ok: ${benches.filter((b) => b.status === 'ok').length}/${benches.length}\n`)
  for (const n of notes) process.stdout.write(`note: ${n}\n`)
  process.stdout.write(`JSON:   ${relative(ROOT, base)}.json (also bench/results/latest.json)\nReport: ${relative(ROOT, base)}.html (also bench/results/latest.html)\n`)
  process.exitCode = interrupted ? 130 : 0
}

await main()
