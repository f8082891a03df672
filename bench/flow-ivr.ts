/**
 * Programmable calls (issue 16): IVR calls per core with sipp driving real
 * SIP calls to a stored flow (gather: a menu and one RFC 4733 digit, branch,
 * the branch's line, hang up) and echoing the engine's RTP; the verb
 * interpreter's own CPU per verb (in-process FlowRun, and on a live call
 * with its activeflow writes to the store); and how soon a webhook app's
 * verbs start playing after its response. Targets: ≥ 500 concurrent IVR
 * calls per core, ≤ 0.2 ms of CPU per verb, ≤ 5 ms from the app's response
 * to its audio.
 *
 *   tsx bench/flow-ivr.ts [--quick|--full] [--out file.json] [--only verbs,live,ivr,app]
 *                         [--dtmf rtp|info] [--no-wire] [--profile] [--postgres] [--ladder 100,250,…]
 *
 * Parts (each can be run alone with --only):
 * - verbs: call/flow/flow-run.ts FlowRun in this process, on a CallControl
 *   whose media methods resolve at once: CPU µs per verb for the logic verbs
 *   (variable_set, condition_variable, branch, goto with loop_count) and for
 *   the IVR's own verbs, with the state serialised as the store would.
 * - live: the same logic loop (8,000 verbs) as a flow on a live SIP call,
 *   against a flow that only hangs up: the engine's extra CPU per verb,
 *   activeflow writes to the store included.
 * - app: a webhook app (a local HTTP server) answers each call with `play`
 *   (a WAV) or `talk` (espeak-ng) and a hangup; a UDP socket of this process
 *   is the caller's RTP: response written → first audible packet, and how
 *   many silent 20 ms packets the engine sent meanwhile.
 * - ivr: the concurrency ladder (100, 250, … calls held at once by sipp
 *   instances added step by step; -rtp_echo sends the engine's audio back;
 *   the digit comes from sipp's RFC 4733 pcap, or SIP INFO with --dtmf info).
 *   Per step: calls ok/failed, engine CPU (all threads, its main thread),
 *   CPU per call, late media ticks (/metrics), egress pacing on the wire
 *   (tcpdump; --no-wire skips it); after the ladder, the endedReason of every
 *   call a step's window saw start (its flow reached the sales branch or not)
 *   and how long after its answer its first verb started. Menus are WAV files
 *   under the engine's media directory (TTS kept out); one step with
 *   espeak-ng `talk` prompts follows when the budget allows.
 *
 * The engine is the orchestrator's shared one (bench/run.ts), else one of
 * its own. --profile starts one with --cpu-prof (the profiles' paths are
 * printed); --postgres one on a throwaway PostgreSQL (test/harness/postgres.ts)
 * instead of the embedded PGlite, its server's CPU reported apart and every
 * figure id suffixed `.postgres`.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createSocket, type Socket } from 'node:dgram'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { pathToFileURL } from 'node:url'
import pino from 'pino'
import { FlowRun } from '../call/flow/flow-run.ts'
import { withIds, type FlowActionInput } from '../call/flow/flow-action.ts'
import { checkActions } from '../call/flow/verb-catalog.ts'
import type { FlowServices } from '../call/flow/flow-services.ts'
import type { CallControl } from '../call/call-control.ts'
import type { Call } from '../store/calls.ts'
import { ULAW_DECODE } from '../codecs/g711.ts'
import { encodeWav } from '../media/wav.ts'
import { finishBench, parseBenchArgs, percentile, type BenchFigure, type PlotSpec } from './bench-result.ts'
import { acquireEngineProcess, killAllEngines, startEngineProcess, type EngineProcess } from './engine-process.ts'
import { cpuMeter, exitWithParent, reapedChildrenSeconds, threadSharesMeter } from './proc-stats.ts'
import { parseSippStat } from './sipp-rate-ladder.ts'
import { histogramFromSamples } from './svg-plot.ts'
import { startWireCapture, type WirePacingStats } from './wire-pacing.ts'
import { freePort } from '../test/harness/ports.ts'
import { startPostgres, type ThrowawayPostgres } from '../test/harness/postgres.ts'
import { sleep } from '../test/harness/wait.ts'
import { callerRequest, callerScenario as callerScenarioOf, dtmfRelay, sdp } from '../test/harness/sipp-scenarios.ts'

const args = parseBenchArgs()
const argv = process.argv.slice(2)
const argOf = (name: string): string | undefined => {
  const i = argv.indexOf(name)
  if (i >= 0) return argv[i + 1]
  return argv.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1)
}
const PARTS = ['verbs', 'live', 'ivr', 'app'] as const
type Part = (typeof PARTS)[number]
const only = (argOf('--only') ?? '').split(',').filter(Boolean)
if (only.some((p) => !PARTS.includes(p as Part))) {
  process.stderr.write(`flow-ivr: --only takes ${PARTS.join(', ')}\n`)
  process.exit(2)
}
const runs = (p: Part): boolean => only.length === 0 || only.includes(p)
const DTMF: 'rtp' | 'info' = argOf('--dtmf') === 'info' ? 'info' : 'rtp'
const WIRE = !argv.includes('--no-wire')
const PROFILE = argv.includes('--profile')
/** --postgres: the engine on a throwaway PostgreSQL instead of the embedded PGlite; figure ids get `.postgres`. */
const POSTGRES = argv.includes('--postgres')
const fid = (id: string): string => (POSTGRES ? `${id}.postgres` : id)
const quick = args.mode === 'quick'
const startedAt = new Date()
const budgetSec = Number(process.env.BENCH_BUDGET_SEC ?? (quick ? 60 : 420)) - 3
let budgetFrom = startedAt.getTime()
const elapsed = (): number => (Date.now() - budgetFrom) / 1000
const cores = cpus().length

/** The issue's targets. */
const TARGET_CALLS_PER_CORE = 500
const TARGET_US_PER_VERB = 200
const TARGET_APP_MS = 5

/** The IVR's audio: a menu prompt, then the sales line (WAV files, so TTS stays out of the ladder). */
const PROMPT_MS = 4000
const LINE_MS = 2000
/** The caller presses 1 this long after its ACK: once the menu is over, as a caller who listened to it. */
const DIGIT_AFTER_MS = PROMPT_MS + 500
/** gather waits this long for the digit once the menu is over. */
const DIGIT_WAIT_MS = 8000
/** One IVR call, answer to BYE, if nothing is late: menu + the caller's pause + digit (~0.2 s) + line. */
const CALL_SEC = (DIGIT_AFTER_MS + 200 + LINE_MS) / 1000
/** Verbs each IVR call runs: gather, branch, play (or talk), hangup. */
const IVR_VERBS = 4
// 2 RTP ports a call: the engine this bench starts has 4,000 (2,000 calls, the full ladder's top; a free range of 8,000 is often not found on a box running tests).
const LADDER = argOf('--ladder')?.split(',').map(Number).filter((n) => n > 0) ?? (quick ? [100] : [100, 150, 200, 300, 500, 750, 1000, 1500, 2000])
/** Seconds every call of a step is up while it is measured. */
const WINDOW_SEC = quick ? 3 : 10
/** Any engine thread at this share of a core = saturated (its event loop cannot take more). */
const SATURATED_THREAD = 0.9
const DTMF_PCAP = '/usr/share/sip-tester/dtmf_2833_1.pcap'
/** Calls per kind (play, talk) in the webhook-app latency part. */
const APP_CALLS = quick ? 12 : 60
/** The logic loop: 8 verbs, 1,000 times through (goto loop_count 999), then a hangup. */
const LOOP_BODY = 8
const LOOP_TIMES = 1000
const LOOP_VERBS = LOOP_BODY * LOOP_TIMES

const figures: BenchFigure[] = []
const plots: PlotSpec[] = []
const notes: string[] = []
const details: Record<string, unknown> = { dtmf: DTMF, promptMs: PROMPT_MS, lineMs: LINE_MS, callSec: CALL_SEC }

const live = new Set<ChildProcess>()
const cleanup = () => {
  for (const c of live) c.kill('SIGKILL')
  killAllEngines()
}
process.on('SIGINT', () => { cleanup(); process.exit(130) })
process.on('SIGTERM', () => { cleanup(); process.exit(143) })
process.on('exit', cleanup)
exitWithParent(cleanup)

// ───────────────────────────────────────────────────────────── the interpreter alone

/** A flow that loops over logic verbs only: every verb reads or writes variables and jumps or falls through. */
function logicLoop(end: FlowActionInput): FlowActionInput[] {
  return [
    { id: 'top', type: 'variable_set', option: { key: 'x', value: 'v${callplane.goto.loop.count}' } },
    { type: 'condition_variable', option: { variable: 'x', condition: '!=', value_string: '', false_target_id: 'end' } },
    { type: 'branch', option: { variable: 'x', target_ids: { never: 'end' } } },
    { type: 'variable_set', option: { key: 'y', value: '${x}-${callplane.call.id}' } },
    { type: 'condition_variable', option: { variable: 'y', value_type: 'length', condition: '>', value_length: 0, false_target_id: 'end' } },
    { type: 'branch', option: { variable: 'y', target_ids: { never: 'end' } } },
    { type: 'variable_set', option: { key: 'z', value: 'looped' } },
    { id: 'loop', type: 'goto', option: { target_id: 'top', loop_count: LOOP_TIMES - 1 } },
    { ...end, id: 'end' },
  ]
}

/**
 * The IVR of the ladder: gather says or plays the menu and takes one digit
 * (typed ahead during the menu too, as callers do), branch, the sales line
 * (play or talk), hangup. `menu` is the gather's prompt: {stream_urls} or {text}.
 */
function ivrFlow(menu: Record<string, unknown>, line: FlowActionInput): FlowActionInput[] {
  return [
    { id: 'menu', type: 'gather', option: { ...menu, max_digits: 1, timeout: DIGIT_WAIT_MS } },
    { id: 'route', type: 'branch', option: { target_ids: { 1: 'sales', 2: 'support' }, default_target_id: 'nodigit' } },
    { ...line, id: 'sales' },
    { id: 'bye', type: 'hangup', option: { reason: 'ivr-sales' } },
    { id: 'support', type: 'hangup', option: { reason: 'ivr-support' } },
    { id: 'nodigit', type: 'hangup', option: { reason: 'ivr-nodigit' } },
  ]
}

interface InterpreterFigure { usPerVerb: number; verbs: number; saves: number; runs: number; lastRun: FlowRun | null }

/**
 * FlowRun on a CallControl whose media methods resolve at once, with a save
 * that serialises the state as ActiveflowRepository.save does (JSON) and
 * answers after one turn of the event loop, as a store round trip does.
 */
async function interpreterCost(actions: FlowActionInput[], runsCount: number, verbsPerRun: number): Promise<InterpreterFigure> {
  const call = { id: 'bench-call', accountId: 'bench', direction: 'inbound', status: 'in-progress', from: '+14155550100', to: '+14155550199' } as Call
  const control: CallControl = {
    prompt: async () => ({ result: 'done' }),
    listen: async () => ({ reason: 'max-digits', digits: '1' }),
    hangup: async () => {},
  }
  const log = pino({ level: 'silent' })
  const services = {} as FlowServices // logic and IVR verbs reach no service
  let saves = 0
  const save = async (s: unknown) => { saves++; JSON.stringify(s); await new Promise((r) => setImmediate(r)) }
  const checked = withIds(actions)
  let lastRun: FlowRun | null = null
  const one = async (i: number) => {
    const run = new FlowRun({ id: `run-${i}`, call, actions: checked, flowId: null, control, services, log, save })
    const end = await run.run()
    if (end.reason !== 'hung-up' && end.reason !== 'completed' && end.reason !== 'stopped') throw new Error(`the bench flow ended ${end.reason}: ${end.error}`)
    lastRun = run
  }
  for (let i = 0; i < Math.min(3, runsCount); i++) await one(i) // warm-up (JIT)
  saves = 0
  const c0 = process.cpuUsage()
  for (let i = 0; i < runsCount; i++) await one(i)
  const c = process.cpuUsage(c0)
  const verbs = runsCount * verbsPerRun
  return { usPerVerb: (c.user + c.system) / verbs, verbs, saves, runs: runsCount, lastRun }
}

async function verbsPart(): Promise<void> {
  console.log('verbs: the interpreter alone (FlowRun in this process, media methods that resolve at once)…')
  const logic = await interpreterCost(logicLoop({ type: 'stop' }), quick ? 10 : 40, LOOP_VERBS + 1)
  const ivr = ivrFlow({ stream_urls: ['file:///bench/prompt.wav'] }, { type: 'play', option: { stream_urls: ['file:///bench/line.wav'] } })
  const ivrCost = await interpreterCost(ivr, quick ? 5000 : 20000, IVR_VERBS)
  // One state write of a long run: the executed list at its cap (500 entries), copied and
  // serialised as the store's save does. A run writes at most once per write-behind window
  // (call/flow/flow-run.ts), so this is the most a verb that waits can add.
  const full = logic.lastRun!
  const entries = full.state().executedActions.length
  const writes = quick ? 300 : 1000
  const w0 = process.cpuUsage()
  for (let i = 0; i < writes; i++) JSON.stringify(full.state())
  const w = process.cpuUsage(w0)
  const writeUs = (w.user + w.system) / writes
  // A webhook app's answer is checked (schema, ids, targets) before it runs: per action.
  const appAnswer = [{ type: 'play', option: { stream_urls: ['file:///bench/blip.wav'] } }, { type: 'hangup', option: { reason: 'app-done' } }]
  const n = quick ? 20000 : 100000
  const c0 = process.cpuUsage()
  for (let i = 0; i < n; i++) checkActions(appAnswer)
  const c = process.cpuUsage(c0)
  const checkUs = (c.user + c.system) / (n * appAnswer.length)
  console.log(`  logic verbs: ${logic.usPerVerb.toFixed(2)} µs CPU per verb (${logic.verbs} verbs, ${logic.saves} state writes); IVR verbs (gather, branch, play, hangup; a FlowRun per call): ${ivrCost.usPerVerb.toFixed(2)} µs per verb`)
  console.log(`  one state write with ${entries} executed entries: ${writeUs.toFixed(0)} µs; checking an app's answer: ${checkUs.toFixed(2)} µs per action`)
  figures.push(
    { id: fid('flow.interpreter_us_per_verb'), label: `Interpreter CPU per verb, logic verbs (variable_set, condition_variable, branch, goto; FlowRun in-process, state serialised per store round trip; ${logic.verbs} verbs)`, value: logic.usPerVerb, unit: 'µs', better: 'lower', target: TARGET_US_PER_VERB },
    { id: fid('flow.interpreter_us_per_ivr_verb'), label: 'Interpreter CPU per verb of the IVR (gather, branch, play, hangup; media resolved at once; a FlowRun per call, its state writes included)', value: ivrCost.usPerVerb, unit: 'µs', better: 'lower', target: TARGET_US_PER_VERB },
    { id: fid('flow.state_write_us_at_cap'), label: `One activeflow state write of a long run, this process's part (${entries} executed entries copied and serialised; the store's own work comes on top; call/flow spaces a long run's writes 1 s apart)`, value: writeUs, unit: 'µs', better: 'lower' },
    { id: fid('flow.check_actions_us_per_action'), label: 'Checking a webhook app\'s answer (schema, ids, targets), per action', value: checkUs, unit: 'µs', better: 'lower' },
  )
  const strip = (f: InterpreterFigure) => ({ usPerVerb: f.usPerVerb, verbs: f.verbs, saves: f.saves, runs: f.runs })
  details.verbs = { logic: strip(logic), ivr: strip(ivrCost), stateWriteUs: writeUs, stateWriteEntries: entries, checkActionsUsPerAction: checkUs }
}

// ───────────────────────────────────────────────────────────── the engine, its API and media

let engine: (EngineProcess & { shared: boolean }) | undefined
let api: Api | undefined
let profileDir: string | undefined
let postgres: ThrowawayPostgres | undefined
/** The PostgreSQL server's postmaster (its backends are its children). */
let postgresPid: number | undefined

class Api {
  constructor(private readonly e: EngineProcess) {}
  async req(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const r = await fetch(`http://127.0.0.1:${this.e.httpPort}${path}`, {
      method, headers: { authorization: `Bearer ${this.e.apiKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }), signal: AbortSignal.timeout(15_000),
    })
    const text = await r.text()
    let parsed: Record<string, unknown> = {}
    try { parsed = JSON.parse(text) as Record<string, unknown> } catch { parsed = { text } }
    return { status: r.status, body: parsed }
  }
  async create(path: string, body: unknown): Promise<Record<string, unknown>> {
    const r = await this.req('POST', path, body)
    if (r.status !== 201) throw new Error(`POST ${path} answered ${r.status}: ${JSON.stringify(r.body).slice(0, 400)}`)
    return r.body
  }
  /** A flow and a number that runs it; the number is returned. */
  async flowNumber(name: string, actions: FlowActionInput[]): Promise<string> {
    const flow = await this.create('/v1/flows', { name, actions })
    return this.number({ type: 'flow', id: flow.id })
  }
  async number(target: Record<string, unknown>): Promise<string> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const number = `+1415555${String(Math.floor(Math.random() * 10000)).padStart(4, '0')}`
      const r = await this.req('POST', '/v1/numbers', { number, name: 'flow-ivr bench', target })
      if (r.status === 201) return number
      if (r.status !== 409) throw new Error(`POST /v1/numbers answered ${r.status}: ${JSON.stringify(r.body).slice(0, 400)}`)
    }
    throw new Error('no free bench number after 20 tries')
  }
  /** Every call to or from `number`, newest first (paged through). */
  async callsOf(number: string, max = 20_000): Promise<Array<{ id: string; status: string; endedReason: string | null }>> {
    const out: Array<{ id: string; status: string; endedReason: string | null }> = []
    let cursor: string | null = null
    do {
      const r = await this.req('GET', `/v1/calls?number=${encodeURIComponent(number)}&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)
      if (r.status !== 200) break
      out.push(...(r.body.data as typeof out))
      cursor = r.body.nextCursor as string | null
    } while (cursor && out.length < max)
    return out
  }
  /** Every call created in [after, before) (ISO times), whatever its number. */
  async callsBetween(after: string, before: string, max = 20_000): Promise<Array<{ id: string; status: string; endedReason: string | null }>> {
    const out: Array<{ id: string; status: string; endedReason: string | null }> = []
    let cursor: string | null = null
    do {
      const r = await this.req('GET', `/v1/calls?after=${encodeURIComponent(after)}&before=${encodeURIComponent(before)}&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)
      if (r.status !== 200) break
      out.push(...(r.body.data as typeof out))
      cursor = r.body.nextCursor as string | null
    } while (cursor && out.length < max)
    return out
  }
  async metrics(): Promise<Record<string, number>> {
    try {
      const text = await (await fetch(`http://127.0.0.1:${this.e.httpPort}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
      const out: Record<string, number> = {}
      for (const m of text.matchAll(/^(callplane_[a-z_]+)(\{[^}]*\})?\s+([\d.eE+-]+)$/gm)) out[`${m[1]}${m[2] ?? ''}`] = Number(m[3])
      return out
    } catch {
      return {}
    }
  }
}

/** Where the flows' WAV files live: the engine's media root (file://), else served over HTTP by this process. */
interface MediaFiles { prompt: string; line: string; blip: string; how: string }

function tone(ms: number, freqs: number[], amplitude = 0.25): Int16Array {
  const n = Math.round((ms / 1000) * 8000)
  const out = new Int16Array(n)
  for (let i = 0; i < n; i++) {
    let v = 0
    for (const f of freqs) v += Math.sin((2 * Math.PI * f * i) / 8000)
    // 5 ms fade-out only: the first sample is loud, so the first audible packet is the clip's first
    const fade = Math.min(1, (n - i) / 40)
    out[i] = Math.round((v / freqs.length) * amplitude * 32767 * fade)
  }
  return out
}

let mediaServer: Server | undefined
async function mediaFiles(e: EngineProcess): Promise<MediaFiles> {
  const wavs = { prompt: encodeWav(tone(PROMPT_MS, [440, 660]), 8000), line: encodeWav(tone(LINE_MS, [523, 784]), 8000), blip: encodeWav(tone(400, [1000]), 8000) }
  if (e.dataDir && existsSync(e.dataDir)) {
    const dir = join(e.dataDir, 'media', 'flow-ivr-bench')
    mkdirSync(dir, { recursive: true })
    const out: Record<string, string> = {}
    for (const [k, v] of Object.entries(wavs)) {
      writeFileSync(join(dir, `${k}.wav`), v)
      out[k] = pathToFileURL(join(dir, `${k}.wav`)).href
    }
    return { prompt: out.prompt!, line: out.line!, blip: out.blip!, how: 'file:// under the engine\'s media directory' }
  }
  // An engine whose DATA_DIR this process does not know: the same WAVs over HTTP from here.
  mediaServer = createServer((req, res) => {
    const k = /\/(\w+)\.wav$/.exec(req.url ?? '')?.[1] as keyof typeof wavs | undefined
    if (!k || !wavs[k]) { res.writeHead(404); res.end(); return }
    res.writeHead(200, { 'content-type': 'audio/wav' })
    res.end(wavs[k])
  })
  await new Promise<void>((r) => mediaServer!.listen(0, '127.0.0.1', () => r()))
  const base = `http://127.0.0.1:${(mediaServer.address() as AddressInfo).port}`
  notes.push('the engine\'s DATA_DIR was unknown: the WAV prompts were fetched over HTTP from the bench (a fetch per play)')
  return { prompt: `${base}/prompt.wav`, line: `${base}/line.wav`, blip: `${base}/blip.wav`, how: 'http:// from the bench' }
}

// ───────────────────────────────────────────────────────────── sipp

/**
 * The caller's scenario: INVITE (PCMU and telephone-event on `mediaPort`,
 * sipp's own media port with -rtp_echo, or a socket of this process), ACK
 * through the Record-Route set (RFC 3261 §12.1.2), then after `digitAfterMs`
 * digit 1 as RFC 4733 packets from sipp's pcap or as SIP INFO
 * (application/dtmf-relay), and the engine's BYE answered.
 */
function callerScenario(o: { mediaPort: string; from: string; digitAfterMs?: number; dtmf?: 'rtp' | 'info'; byeTimeoutMs: number }): string {
  const from = `<sip:${o.from}@[local_ip]:[local_port]>`
  const digit = o.digitAfterMs === undefined ? '' : `
  <pause milliseconds="${o.digitAfterMs}"/>${o.dtmf === 'info'
    ? callerRequest({ method: 'INFO', from, contact: from, cseq: 2, body: dtmfRelay('1') })
    : `
  <nop><action><exec play_pcap_audio="${DTMF_PCAP}"/></action></nop>`}`
  return callerScenarioOf({
    name: 'flow-ivr caller', from, contact: from, afterAck: digit, byeTimeoutMs: o.byeTimeoutMs,
    sdp: sdp({ port: o.mediaPort, origin: 'caller', telephoneEvent: true, ptime: true }),
  })
}

interface SippCounts { successful: number; failed: number; current: number; created: number }
interface Sipp {
  pid: number
  number: string
  done: Promise<SippCounts & { code: number | null; firstError: string }>
  /** sipp's counters now (its stat file, written every second). */
  counts(): SippCounts
  /** Soft stop: no new calls, the ones up run to their end (the 'q' key on sipp's control socket). */
  quit(): void
}

async function startSipp(o: { scenario: string; number: string; limit: number; rate: number; calls: number; echo: boolean; timeoutSec: number }): Promise<Sipp> {
  const dir = mkdtempSync(join(tmpdir(), 'sipp-flow-ivr-'))
  const file = join(dir, 'scenario.xml')
  writeFileSync(file, o.scenario)
  const stat = join(dir, 'stat.csv')
  const controlPort = await freePort()
  const mediaPort = await freePort()
  const child = spawn('sipp', [
    '-sf', file, `127.0.0.1:${engine!.sipPort}`, '-s', o.number,
    '-i', '127.0.0.1', '-p', '0', '-cp', String(controlPort),
    '-m', String(o.calls), '-r', String(o.rate), '-l', String(o.limit),
    '-recv_timeout', '30000', '-timeout', `${o.timeoutSec}s`,
    ...(o.echo ? ['-mp', String(mediaPort), '-rtp_echo'] : []),
    '-nostdin', '-trace_stat', '-stf', stat, '-fd', '1', '-trace_err',
  ], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
  live.add(child)
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000) })
  const counts = (): SippCounts => {
    if (!existsSync(stat)) return { successful: 0, failed: 0, current: 0, created: 0 }
    const lines = readFileSync(stat, 'utf8').trim().split('\n')
    if (lines.length < 2) return { successful: 0, failed: 0, current: 0, created: 0 }
    const head = lines[0]!.split(';')
    const last = lines.at(-1)!.split(';')
    const col = (n: string) => Number(last[head.indexOf(n)] ?? 0) || 0
    return { successful: col('SuccessfulCall(C)'), failed: col('FailedCall(C)'), current: col('CurrentCall'), created: col('TotalCallCreated') }
  }
  const done = new Promise<SippCounts & { code: number | null; firstError: string }>((resolve) => {
    child.on('close', (code) => {
      live.delete(child)
      const s = parseSippStat(stat)
      const errFile = readdirSync(dir).find((f) => f.includes('errors'))
      let firstError = ''
      if (errFile) {
        const text = readFileSync(join(dir, errFile), 'utf8')
        firstError = /(Aborting call[^\n]*|received '[^\n]*|receive timeout[^\n]*|Unexpected[^\n]*|[^\n]*timed out[^\n]*)/.exec(text)?.[1] ?? text.split('\n').slice(1, 3).join(' ')
      }
      if (!firstError && code !== 0 && stderr.trim()) firstError = stderr.trim().split('\n').slice(-2).join(' ')
      rmSync(dir, { recursive: true, force: true })
      resolve({ code, successful: s.successful, failed: s.failed, current: 0, created: s.successful + s.failed, firstError: firstError.slice(0, 200) })
    })
  })
  const quit = () => {
    const s = createSocket('udp4')
    s.send('q', controlPort, '127.0.0.1', () => s.close())
  }
  return { pid: child.pid!, number: o.number, done, counts, quit }
}

/** Places one call at a time with sipp and waits for its end (the engine's BYE). */
async function oneCall(number: string, timeoutSec = 30): Promise<SippCounts & { code: number | null; firstError: string }> {
  const s = await startSipp({ scenario: callerScenario({ mediaPort: '[media_port]', from: 'bench', byeTimeoutMs: timeoutSec * 1000 }), number, limit: 1, rate: 1, calls: 1, echo: true, timeoutSec: timeoutSec + 5 })
  return s.done
}

// ───────────────────────────────────────────────────────────── live: verbs on a live call

async function livePart(): Promise<void> {
  const e = engine!
  console.log('live: the logic loop as a flow on live SIP calls, against a flow that only hangs up…')
  const loopNumber = await api!.flowNumber('flow-ivr bench: verb loop', logicLoop({ type: 'hangup', option: { reason: 'verbs-done' } }))
  const baseNumber = await api!.flowNumber('flow-ivr bench: hangup only', [{ id: 'end', type: 'hangup', option: { reason: 'verbs-done' } }])
  const pairs = quick ? 3 : 8
  const loopCpu: number[] = []
  const baseCpu: number[] = []
  let failed = 0
  await oneCall(baseNumber) // warm-up
  await oneCall(loopNumber)
  for (let i = 0; i < pairs; i++) {
    for (const [number, into] of [[loopNumber, loopCpu], [baseNumber, baseCpu]] as const) {
      const m = cpuMeter(e.pid, true)
      const r = await oneCall(number)
      // The call's end (BYE) comes before the run's last state write: give it a moment.
      await sleep(150)
      into.push(m.read().cpuSec)
      if (r.successful !== 1) failed++
    }
  }
  const calls = await api!.callsOf(loopNumber)
  const completed = calls.filter((c) => c.endedReason === 'verbs-done').length
  const med = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50)
  const extraMs = (med(loopCpu) - med(baseCpu)) * 1000
  const usPerVerb = (extraMs * 1000) / LOOP_VERBS
  console.log(`  ${LOOP_VERBS} verbs per call: engine CPU ${(med(loopCpu) * 1000).toFixed(0)} ms per loop call vs ${(med(baseCpu) * 1000).toFixed(0)} ms per hangup-only call (medians of ${pairs}) → ${usPerVerb.toFixed(2)} µs per verb; ${completed}/${calls.length} loop flows ran to their hangup, ${failed} sipp calls failed`)
  figures.push({ id: fid('flow.live_us_per_verb'), label: `Engine CPU per verb on a live call (logic loop of ${LOOP_VERBS} verbs minus a hangup-only flow; activeflow writes to the embedded store included; /proc CPU ticks are 10 ms)`, value: usPerVerb, unit: 'µs', better: 'lower', target: TARGET_US_PER_VERB })
  if (completed < calls.length || failed) notes.push(`live: ${calls.length - completed} of ${calls.length} loop flows did not end with their hangup, ${failed} sipp calls failed`)
  details.live = { loopCpuSec: loopCpu, baseCpuSec: baseCpu, usPerVerb, completed, calls: calls.length, failed }
}

// ───────────────────────────────────────────────────────────── ivr: the concurrency ladder

interface Step {
  calls: number
  ok: boolean
  reason?: string
  /** Calls the engine had live at the window's start and end (fewest). */
  upEngine: number
  rampSec: number
  /** New calls per second during the window (sipp's TotalCallCreated). */
  cps: number
  engineCoreShare: number
  mainThreadShare: number
  busiestOtherThreadShare: number
  /** espeak-ng processes the engine ran (reaped children), share of a core; counted in engineCoreShare. */
  childrenShare: number
  sippCoreShare: number
  /** The PostgreSQL server's processes (--postgres), share of a core; not in engineCoreShare. */
  postgresCoreShare: number
  /** Calls that ended ok / failed during the window (sipp's counters). */
  okInWindow: number
  failedInWindow: number
  /** Engine CPU ms per IVR call: the window's CPU over the calls that started in it (steady state). */
  cpuMsPerCall: number
  lateTicks: number
  ticks: number
  wire: WirePacingStats | null
  /** The window, for reading what the flows of the calls created in it did. */
  windowFrom: string
  windowTo: string
  /** Calls created in the window by their endedReason, read after the ladder. */
  flows?: Record<string, number>
  flowsCompleted?: number
  flowsTotal?: number
  /** Answer → the flow's first verb started (call record times, ms), over a sample of the window's calls. */
  programStartMs?: number[]
}

/**
 * Concurrent IVR calls, step by step: each step starts one more sipp for the
 * calls it adds (-l holds them there: a call that ends is replaced), waits
 * until the engine holds them, then measures for WINDOW_SEC with every
 * earlier sipp still running. After the last step every sipp stops placing
 * calls, the calls run out, and the calls each window saw start are read
 * back for their endedReason.
 */
async function ladder(kind: 'wav' | 'tts', levels: number[], media: MediaFiles): Promise<Step[]> {
  const e = engine!
  const menu = kind === 'wav' ? { stream_urls: [media.prompt] } : { text: 'Welcome. For sales, press one.' }
  const line: FlowActionInput = kind === 'wav'
    ? { type: 'play', option: { stream_urls: [media.line] } }
    : { type: 'talk', option: { text: 'Connecting you to sales. Goodbye.' } }
  const flowId = (await api!.create('/v1/flows', { name: `flow-ivr bench (${kind})`, actions: ivrFlow(menu, line) })).id
  const steps: Step[] = []
  const sipps: Sipp[] = []
  const byeTimeoutMs = Math.round((DIGIT_AFTER_MS + DIGIT_WAIT_MS + LINE_MS) * 1.5 + 5000)
  let prev = 0
  for (const n of levels) {
    const delta = n - prev
    // ramp: a step's calls reach their number within one call length, then the limit holds them there
    const rate = Math.max(1, Math.ceil((delta / CALL_SEC) * 1.15))
    const stepSec = CALL_SEC * 1.2 + 1 + WINDOW_SEC + 1
    // what the run still needs after this step: the last calls' end, and reading their records
    if (elapsed() + stepSec + CALL_SEC + 8 > budgetSec) {
      notes.push(`ivr (${kind}): the time budget (${budgetSec + 3} s) was reached before ${n} calls`)
      break
    }
    const number = await api!.number({ type: 'flow', id: flowId })
    const sipp = await startSipp({
      scenario: callerScenario({ mediaPort: '[media_port]', from: `+1415555${String(1000 + sipps.length).slice(-4)}`, digitAfterMs: DIGIT_AFTER_MS, dtmf: DTMF, byeTimeoutMs }),
      number, limit: delta, rate, calls: 10_000_000, echo: true, timeoutSec: 3600,
    })
    sipps.push(sipp)
    // Wait until the engine holds (nearly) every call of the step.
    const t0 = Date.now()
    const rampDeadline = t0 + (CALL_SEC * 1.6 + 4) * 1000
    let up = 0
    await sleep(Math.min(CALL_SEC * 1000, 1000 * delta / rate))
    do {
      up = (await api!.metrics()).callplane_active_calls ?? 0
      if (up >= 0.97 * n) break
      await sleep(250)
    } while (Date.now() < rampDeadline)
    const rampSec = (Date.now() - t0) / 1000
    const before = sipps.map((s) => s.counts())
    const m0 = await api!.metrics()
    const cap = WIRE && e.rtpPorts ? await startWireCapture(e.rtpPorts.min, e.rtpPorts.max) : null
    const windowFrom = new Date().toISOString()
    const capFrom = Date.now()
    // Reaped children count: the espeak-ng process each talk line runs is the engine's work.
    const cpu = cpuMeter(e.pid, true, true)
    const kids0 = reapedChildrenSeconds(e.pid)
    const threads = threadSharesMeter(e.pid, true)
    const gens = sipps.map((s) => cpuMeter(s.pid))
    const pgCpu = postgresPid ? cpuMeter(postgresPid, true, true) : null
    await sleep(WINDOW_SEC * 1000)
    const postgresCoreShare = pgCpu?.read().coreShare ?? 0
    const c = cpu.read()
    const kidsSec = reapedChildrenSeconds(e.pid) - kids0
    const windowTo = new Date().toISOString()
    const { threads: ts } = threads.read()
    const sippShare = gens.reduce((a, g) => a + g.read().coreShare, 0)
    const m1 = await api!.metrics()
    const after = sipps.map((s) => s.counts())
    const wire = cap ? await cap.stop(capFrom) : null
    const upEnd = m1.callplane_active_calls ?? 0
    const mainId = `${e.pid}/${e.pid}`
    const mainThreadShare = ts.find((x) => x.id === mainId)?.share ?? 0
    const busiestOtherThreadShare = ts.filter((x) => x.id !== mainId)[0]?.share ?? 0
    const sum = (f: (a: SippCounts, b: SippCounts) => number) => after.reduce((acc, a, i) => acc + f(a, before[i]!), 0)
    const okInWindow = sum((a, b) => a.successful - b.successful)
    const failedInWindow = sum((a, b) => a.failed - b.failed)
    const createdInWindow = sum((a, b) => a.created - b.created)
    const failedTotal = after.reduce((a, s) => a + s.failed, 0)
    const engineCpuSec = c.cpuSec
    const engineShare = engineCpuSec / c.wallSec
    const lateTicks = (m1.callplane_media_scheduler_late_ticks ?? 0) - (m0.callplane_media_scheduler_late_ticks ?? 0)
    const step: Step = {
      calls: n, ok: true, upEngine: Math.min(up, upEnd), rampSec, cps: createdInWindow / c.wallSec, engineCoreShare: engineShare, mainThreadShare, busiestOtherThreadShare,
      childrenShare: kidsSec / c.wallSec, sippCoreShare: sippShare, postgresCoreShare, okInWindow, failedInWindow, cpuMsPerCall: createdInWindow ? (engineCpuSec * 1000) / createdInWindow : NaN,
      lateTicks, ticks: Math.round(c.wallSec * 50), wire, windowFrom, windowTo,
    }
    if (failedTotal > 0) step.reason = `${failedTotal} calls failed so far`
    else if (step.upEngine < 0.9 * n) step.reason = `the engine held only ${step.upEngine} of ${n} calls (call set-up could not keep up with ${rate + (steps.at(-1)?.cps ?? 0) | 0} new calls/s)`
    else if (mainThreadShare >= SATURATED_THREAD) step.reason = `engine main thread at ${(mainThreadShare * 100).toFixed(0)}% of a core (saturated)`
    else if (busiestOtherThreadShare >= SATURATED_THREAD) step.reason = `an engine thread (the store's PGlite or a helper) at ${(busiestOtherThreadShare * 100).toFixed(0)}% of a core (saturated)`
    else if (engineShare + sippShare + postgresCoreShare >= 0.92 * cores) step.reason = `the box is full: engine ${(engineShare * 100).toFixed(0)}% + sipp ${(sippShare * 100).toFixed(0)}%${postgresPid ? ` + PostgreSQL ${(postgresCoreShare * 100).toFixed(0)}%` : ''} of ${cores} cores`
    step.ok = !step.reason
    steps.push(step)
    console.log(`  ${kind} ${n} calls (${step.upEngine} live, ramp ${rampSec.toFixed(1)} s, ${step.cps.toFixed(1)} new calls/s): engine ${(engineShare * 100).toFixed(0)}% of a core (main thread ${(mainThreadShare * 100).toFixed(0)}%, busiest other ${(busiestOtherThreadShare * 100).toFixed(0)}%${kidsSec > 0 ? `, espeak-ng ${(step.childrenShare * 100).toFixed(0)}%` : ''}), ${step.cpuMsPerCall.toFixed(1)} ms CPU per call, ${postgresPid ? `PostgreSQL ${(postgresCoreShare * 100).toFixed(0)}%, ` : ''}sipp ${(sippShare * 100).toFixed(0)}%; window: ${okInWindow} calls ended ok, ${failedInWindow} failed; late ticks ${lateTicks}/${step.ticks}; wire pacing p99 ${wire ? `${wire.p99.toFixed(2)} ms` : 'n/a'} → ${step.ok ? 'ok' : `STOP (${step.reason})`}`)
    prev = n
    if (!step.ok) break
  }
  // Let every call run to its end, then read what each window's flows did.
  for (const s of sipps) s.quit()
  const ends = await Promise.all(sipps.map((s) => Promise.race([s.done, sleep(byeTimeoutMs + 15_000).then(() => null)])))
  for (const [i, r] of ends.entries()) {
    if (r && r.failed > 0) notes.push(`ivr (${kind}) sipp of step ${i + 1}: ${r.failed} failed calls${r.firstError ? ` (${r.firstError})` : ''}`)
  }
  for (const step of steps) {
    if (elapsed() > budgetSec + 2) { notes.push(`ivr (${kind}): not every window's flows were read (time budget)`); break }
    const flows: Record<string, number> = {}
    const calls = await api!.callsBetween(step.windowFrom, step.windowTo)
    for (const c of calls) {
      const r = c.endedReason ?? `status:${c.status}`
      flows[r] = (flows[r] ?? 0) + 1
    }
    step.flows = flows
    step.flowsTotal = calls.length
    step.flowsCompleted = flows['ivr-sales'] ?? 0
    // A flow that did not reach the sales branch is a failed IVR call, whatever SIP said.
    if (step.ok && step.flowsCompleted < step.flowsTotal) {
      step.ok = false
      step.reason = `${step.flowsTotal - step.flowsCompleted} of ${step.flowsTotal} calls started in the window did not reach the sales branch (${Object.entries(flows).map(([k, v]) => `${k} ${v}`).join(', ')})`
    }
    // How long after its answer each call's flow started (the answer's store writes, the program's reads, the activeflow's insert).
    const starts: number[] = []
    for (const c of calls.slice(0, 40)) {
      const d = (await api!.req('GET', `/v1/calls/${c.id}`)).body as { answeredAt?: string | null; activeflows?: Array<{ executedActions: Array<{ startedAt: string }> }> }
      const first = d.activeflows?.[0]?.executedActions[0]?.startedAt
      if (d.answeredAt && first) starts.push(Date.parse(first) - Date.parse(d.answeredAt))
    }
    step.programStartMs = starts.sort((a, b) => a - b)
    console.log(`  ${kind} ${step.calls}: flows of the ${calls.length} calls started in the window by endedReason: ${Object.entries(flows).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}; answer → first verb p50 ${percentile(starts, 50)} ms, p95 ${percentile(starts, 95)} ms (${starts.length} calls)`)
  }
  details[`ivr_${kind}`] = { steps, sipps: ends.map((r) => r && { successful: r.successful, failed: r.failed, firstError: r.firstError }) }
  return steps
}

async function ivrPart(media: MediaFiles): Promise<void> {
  console.log(`ivr: concurrent IVR calls (gather: menu WAV ${PROMPT_MS / 1000} s and one digit (${DTMF === 'rtp' ? 'RFC 4733 from sipp\'s pcap' : 'SIP INFO'}, ${DIGIT_AFTER_MS / 1000} s after the answer) → branch → play line ${LINE_MS / 1000} s → hangup; ~${CALL_SEC.toFixed(1)} s per call; sipp -rtp_echo)…`)
  const steps = await ladder('wav', LADDER, media)
  const best = steps.filter((s) => s.ok).at(-1)
  const stopStep = steps.find((s) => !s.ok)
  if (best) {
    const perCore = best.upEngine / best.engineCoreShare
    figures.push({ id: fid('flow.ivr_calls_per_core'), label: `Concurrent IVR calls per core: ${best.upEngine} calls held with zero failures, every flow to its branch, ÷ the ${best.engineCoreShare.toFixed(2)} cores the engine used (WAV prompts, ${CALL_SEC.toFixed(1)} s calls, ${best.cps.toFixed(0)} new calls/s)`, value: perCore, unit: 'calls/core', better: 'higher', target: TARGET_CALLS_PER_CORE })
    if (postgresPid) figures.push({ id: fid('flow.ivr_calls_per_core_with_store'), label: `Concurrent IVR calls per core, the PostgreSQL server's CPU counted too (${best.upEngine} calls ÷ ${(best.engineCoreShare + best.postgresCoreShare).toFixed(2)} cores)`, value: best.upEngine / (best.engineCoreShare + best.postgresCoreShare), unit: 'calls/core', better: 'higher' })
    figures.push({ id: fid('flow.ivr_max_concurrent_zero_failures'), label: `Most concurrent IVR calls held with zero failures and every flow to its branch (ladder ${LADDER.join(', ')})`, value: best.upEngine, unit: 'calls', better: 'higher' })
    figures.push({ id: fid('flow.ivr_cpu_ms_per_call'), label: `Engine CPU per IVR call (${IVR_VERBS} verbs, SIP, media both ways, the store; at ${best.calls} concurrent)`, value: best.cpuMsPerCall, unit: 'ms', better: 'lower' })
    if (best.programStartMs?.length) figures.push({ id: fid('flow.ivr_program_start_p95_ms'), label: `Answer → the flow's first verb started, p95 (call record times, ${best.programStartMs.length} calls at ${best.calls} concurrent)`, value: percentile(best.programStartMs, 95), unit: 'ms', better: 'lower' })
    figures.push({ id: fid('flow.ivr_cpu_pct_per_concurrent_call'), label: `Engine CPU per concurrent IVR call (at ${best.calls})`, value: (best.engineCoreShare * 100) / Math.max(1, best.upEngine), unit: '% of a core', better: 'lower' })
    if (best.wire) figures.push({ id: fid('flow.ivr_wire_pacing_p99_ms'), label: `Egress pacing deviation p99 on the wire at ${best.calls} IVR calls (tcpdump, ${best.wire.packets} packets)`, value: best.wire.p99, unit: 'ms', better: 'lower' })
    figures.push({ id: fid('flow.ivr_late_tick_pct'), label: `Media ticks started > 2 ms late at ${best.calls} IVR calls`, value: best.ticks ? (100 * best.lateTicks) / best.ticks : 0, unit: '%', better: 'lower' })
  } else {
    figures.push({ id: fid('flow.ivr_calls_per_core'), label: `Concurrent IVR calls per core (no step held with zero failures: ${stopStep?.reason ?? 'no step ran'})`, value: 0, unit: 'calls/core', better: 'higher', target: TARGET_CALLS_PER_CORE })
  }
  if (best) {
    // What the target asks of one call: 500 concurrent per core = one core-second per 500 call-seconds.
    const budgetMs = (1000 * CALL_SEC) / TARGET_CALLS_PER_CORE
    notes.push(`ivr: ≥ ${TARGET_CALLS_PER_CORE} concurrent ${CALL_SEC.toFixed(1)} s IVR calls per core leaves ${budgetMs.toFixed(1)} ms of engine CPU per call (SIP, the program, media both ways, the store); measured ${best.cpuMsPerCall.toFixed(1)} ms at ${best.calls} calls: the engine's main thread ${(best.mainThreadShare * 100).toFixed(0)}% of a core (SIP, API, media, the store's client), its busiest other thread ${(best.busiestOtherThreadShare * 100).toFixed(0)}%${POSTGRES ? '' : ' (the embedded store, PGlite)'}${best.programStartMs?.length ? `; answer → first verb p50 ${percentile(best.programStartMs, 50)} ms, p95 ${percentile(best.programStartMs, 95)} ms` : ''}`)
  }
  const flowsTotal = steps.reduce((a, s) => a + (s.flowsTotal ?? 0), 0)
  const flowsDone = steps.reduce((a, s) => a + (s.flowsCompleted ?? 0), 0)
  if (flowsTotal) figures.push({ id: fid('flow.ivr_flows_completed_pct'), label: `IVR flows that ran to the sales branch's hangup (${flowsDone} of the ${flowsTotal} calls started in the measured windows, endedReason ivr-sales)`, value: (100 * flowsDone) / flowsTotal, unit: '%', better: 'higher' })
  if (stopStep) notes.push(`ivr: the ladder stopped at ${stopStep.calls} calls: ${stopStep.reason}`)
  else if (steps.length === LADDER.length) notes.push(`ivr: the whole ladder (${LADDER.join(', ')}) held${quick ? ' (run --full for a longer ladder)' : ''}`)
  const xs = steps.map((s) => s.upEngine)
  plots.push({
    id: fid('flow.ivr_cpu'), title: 'Engine CPU as concurrent IVR calls grow (WAV prompts)', kind: 'line', xLabel: 'concurrent IVR calls (engine gauge)', yLabel: '% of one core',
    series: [
      { label: 'engine, all threads', x: xs, y: steps.map((s) => s.engineCoreShare * 100) },
      { label: 'engine main thread', x: xs, y: steps.map((s) => s.mainThreadShare * 100) },
      { label: 'busiest other engine thread (PGlite)', x: xs, y: steps.map((s) => s.busiestOtherThreadShare * 100) },
      { label: 'sipp (load generator, all instances)', x: xs, y: steps.map((s) => s.sippCoreShare * 100) },
    ],
    marks: [{ axis: 'y', value: SATURATED_THREAD * 100, label: 'a thread saturated' }],
  })
  // espeak-ng talk prompts: one step, when the budget allows (an espeak-ng process per line, its CPU counted).
  const ttsLevel = Math.max(10, Math.round(LADDER[0]! / 2))
  if (elapsed() + CALL_SEC * 3 + WINDOW_SEC + 15 < budgetSec) {
    console.log(`ivr: the same IVR with espeak-ng talk prompts, ${ttsLevel} calls…`)
    const [s] = await ladder('tts', [ttsLevel], media)
    if (s && s.ok) {
      figures.push({ id: fid('flow.ivr_tts_calls_per_core'), label: `Concurrent IVR calls per core with espeak-ng talk prompts (${s.upEngine} calls; the espeak-ng processes counted)`, value: s.upEngine / s.engineCoreShare, unit: 'calls/core', better: 'higher' })
      figures.push({ id: fid('flow.ivr_tts_cpu_ms_per_call'), label: `Engine CPU per IVR call with talk prompts (espeak-ng ${(s.childrenShare * 100).toFixed(0)}% of a core included, at ${s.calls})`, value: s.cpuMsPerCall, unit: 'ms', better: 'lower' })
    } else if (s) notes.push(`ivr (tts): ${s.calls} calls did not hold: ${s.reason}`)
  } else {
    notes.push('ivr: the espeak-ng talk variant was not run (time budget); run --full for it')
  }
}

// ───────────────────────────────────────────────────────────── app: webhook app latency

interface AppSample {
  kind: 'play' | 'talk'
  callId: string
  /** Response written → first audible packet here, ms (performance.now()). */
  ms: number
  /** Silent packets the engine sent between the response and the audio (one per 20 ms tick). */
  silentPackets: number
  /** Date.now() as the response was written, to compare with the call record's times. */
  respondedAt: number
  /** Response → the verb's startedAt in the call's activeflow (ms resolution). */
  verbStartMs?: number
}

async function appPart(media: MediaFiles): Promise<void> {
  console.log(`app: a webhook app answers with play (WAV) or talk (espeak-ng); ${APP_CALLS} calls each, response → first audible RTP packet…`)
  const SLOTS_PER_KIND = 2
  const kinds = ['play', 'talk'] as const
  /** One caller at a time per slot: its own RTP socket, its own caller id (how the app's request names the slot). */
  interface Slot { kind: 'play' | 'talk'; from: string; socket: Socket; port: number; pending: { at: number; wall: number; callId: string; silent: number } | null; calls: number }
  const slots: Slot[] = []
  const samples: AppSample[] = []
  for (const kind of kinds) {
    for (let i = 0; i < SLOTS_PER_KIND; i++) {
      const socket = createSocket('udp4')
      await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()))
      const slot: Slot = { kind, from: `+1415555020${slots.length}`, socket, port: socket.address().port, pending: null, calls: 0 }
      socket.on('message', (msg) => {
        const now = performance.now()
        const p = slot.pending
        if (!p || msg.length < 12 + 160 || (msg[1]! & 0x7f) !== 0) return
        let acc = 0
        for (let k = 12; k < msg.length; k++) { const v = ULAW_DECODE[msg[k]!]!; acc += v * v }
        const rms = Math.sqrt(acc / (msg.length - 12))
        if (rms < 300) { p.silent++; return }
        // Each slot's first call warms the path up (JIT, the WAV's first read, espeak-ng's first start): not counted.
        if (slot.calls++ > 0) samples.push({ kind: slot.kind, callId: p.callId, ms: now - p.at, silentPackets: p.silent, respondedAt: p.wall })
        slot.pending = null
      })
      slots.push(slot)
    }
  }
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString() })
    req.on('end', () => {
      let payload: { call?: { id?: string; from?: string } } = {}
      try { payload = JSON.parse(body) as typeof payload } catch { /* answered anyway */ }
      const slot = slots.find((s) => s.from === payload.call?.from)
      const verbs = slot?.kind === 'talk'
        ? [{ type: 'talk', option: { text: 'Hello from the app.' } }, { type: 'hangup', option: { reason: 'app-done' } }]
        : [{ type: 'play', option: { stream_urls: [media.blip] } }, { type: 'hangup', option: { reason: 'app-done' } }]
      const text = JSON.stringify(verbs)
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
      // The clock starts as the response is handed to the socket.
      if (slot) slot.pending = { at: performance.now(), wall: Date.now(), callId: payload.call?.id ?? '', silent: 0 }
      res.end(text)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  try {
    const numbers = { play: await api!.number({ type: 'app', url: `${base}/play`, method: 'POST' }), talk: await api!.number({ type: 'app', url: `${base}/talk`, method: 'POST' }) }
    const perSlot = Math.ceil(APP_CALLS / SLOTS_PER_KIND) + 1
    const runsP = slots.map((slot) => startSipp({
      scenario: callerScenario({ mediaPort: String(slot.port), from: slot.from, byeTimeoutMs: 20_000 }),
      number: numbers[slot.kind], limit: 1, rate: 20, calls: perSlot, echo: false, timeoutSec: Math.max(60, perSlot * 5),
    }))
    const ends = await Promise.all((await Promise.all(runsP)).map((s) => s.done))
    const failed = ends.reduce((a, r) => a + r.failed, 0)
    if (failed) notes.push(`app: ${failed} of ${ends.reduce((a, r) => a + r.successful + r.failed, 0)} webhook-app calls failed (${ends.find((r) => r.firstError)?.firstError ?? ''})`)
    // Response → the verb's start as the call record shows it (ISO times with ms, the same clock):
    // how much of the latency is the interpreter's before the media plane gets the prompt.
    for (const s of samples) {
      const r = await api!.req('GET', `/v1/calls/${s.callId}`)
      const run = (r.body.activeflows as Array<{ executedActions: Array<{ type: string; startedAt: string }> }> | undefined)?.[0]
      const verb = run?.executedActions.find((a) => a.type === s.kind)
      if (verb) s.verbStartMs = Date.parse(verb.startedAt) - s.respondedAt
    }
  } finally {
    server.closeAllConnections()
    server.close()
    for (const s of slots) s.socket.close()
  }
  for (const kind of kinds) {
    const xs = samples.filter((s) => s.kind === kind).map((s) => s.ms).sort((a, b) => a - b)
    const silent = samples.filter((s) => s.kind === kind).map((s) => s.silentPackets)
    const firstTick = silent.filter((n) => n === 0).length
    const verbStart = samples.filter((s) => s.kind === kind && s.verbStartMs !== undefined).map((s) => s.verbStartMs!).sort((a, b) => a - b)
    console.log(`  ${kind}: ${xs.length} calls, response → first audible packet p50 ${percentile(xs, 50).toFixed(1)} ms, p95 ${percentile(xs, 95).toFixed(1)} ms, max ${(xs.at(-1) ?? NaN).toFixed(1)} ms; the audio went out on the first 20 ms tick after the response in ${firstTick}/${xs.length} calls; response → ${kind} verb started (call record, ms clock) p50 ${percentile(verbStart, 50)} ms, p95 ${percentile(verbStart, 95)} ms`)
    if (!xs.length) continue
    figures.push({ id: fid(`flow.app_${kind}_latency_p50_ms`), label: `Webhook app ${kind === 'play' ? 'play (WAV file)' : 'talk (espeak-ng TTS, synthesis included)'}: response written → first audible RTP packet at the caller, p50 (${xs.length} calls)`, value: percentile(xs, 50), unit: 'ms', better: 'lower', target: TARGET_APP_MS })
    figures.push({ id: fid(`flow.app_${kind}_latency_p95_ms`), label: `Webhook app ${kind}: response → first audible RTP packet, p95`, value: percentile(xs, 95), unit: 'ms', better: 'lower', target: TARGET_APP_MS })
    if (verbStart.length) figures.push({ id: fid(`flow.app_${kind}_verb_start_p95_ms`), label: `Webhook app ${kind}: response written → the verb started (activeflow startedAt, 1 ms resolution), p95`, value: percentile(verbStart, 95), unit: 'ms', better: 'lower' })
    figures.push({ id: fid(`flow.app_${kind}_first_tick_pct`), label: `Webhook app ${kind}: calls whose audio went out on the first 20 ms media tick after the response (no silent packet in between)`, value: (100 * firstTick) / xs.length, unit: '%', better: 'higher' })
  }
  const play = samples.filter((s) => s.kind === 'play')
  if (play.length) {
    const firstTick = play.filter((s) => s.silentPackets === 0).length
    const vs = play.filter((s) => s.verbStartMs !== undefined).map((s) => s.verbStartMs!).sort((a, b) => a - b)
    notes.push(`app: the engine sends a packet every 20 ms (silence when nothing plays), so a prompt's audio leaves on the next media tick after it is queued: 0–20 ms, 10 ms on average, on top of the engine's work; ${firstTick} of ${play.length} play answers made the first tick after the response (none of the engine's silent packets in between), and the verb started ${percentile(vs, 50)} ms (p50) / ${percentile(vs, 95)} ms (p95) after the response. The ≤ ${TARGET_APP_MS} ms target needs the first frame of a prompt sent as it is queued when the call's output was idle (media/session: an off-tick send), not the interpreter`)
  }
  plots.push({
    id: fid('flow.app_latency'), title: 'Webhook app: response written → first audible RTP packet', kind: 'histogram', xLabel: 'ms', yLabel: 'calls',
    series: kinds.map((k) => histogramFromSamples(k, samples.filter((s) => s.kind === k).map((s) => s.ms), 20)),
    marks: [{ axis: 'x', value: TARGET_APP_MS, label: 'target' }],
  })
  details.app = { samples }
}

// ───────────────────────────────────────────────────────────── main

try {
  if (runs('verbs')) await verbsPart()
  if (runs('live') || runs('ivr') || runs('app')) {
    console.log(PROFILE || POSTGRES ? `starting an engine of its own${PROFILE ? ' with --cpu-prof' : ''}${POSTGRES ? ' on a throwaway PostgreSQL' : ''}…` : 'acquiring the engine (main.ts in its own process)…')
    if (POSTGRES) {
      postgres = await startPostgres()
      postgresPid = Number(readFileSync(join(postgres.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0])
      notes.push('store: a throwaway PostgreSQL 15 (test/harness/postgres.ts: fsync, full_page_writes and synchronous_commit off) instead of the embedded PGlite; its server processes\' CPU is reported apart from the engine\'s')
    }
    if (PROFILE || POSTGRES) {
      if (PROFILE) profileDir = mkdtempSync(join(tmpdir(), 'flow-ivr-prof-'))
      engine = { ...(await startEngineProcess({
        rtpPorts: quick ? 2000 : 4000, timeoutMs: 90_000,
        ...(profileDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] } : {}),
        ...(postgres ? { env: { DATABASE_URL: postgres.url } } : {}),
      })), shared: false }
    } else {
      engine = await acquireEngineProcess({ rtpPorts: quick ? 2000 : 4000, timeoutMs: 90_000 })
    }
    console.log(`engine pid ${engine.pid} up${engine.shared ? ' (shared by the orchestrator)' : ` in ${engine.startupSec.toFixed(1)} s`} (SIP 127.0.0.1:${engine.sipPort})`)
    // Run alone, the budget runs from when the engine is up; under the orchestrator, from this script's start (its bound does).
    if (!process.env.BENCH_BUDGET_SEC) budgetFrom = Date.now()
    api = new Api(engine)
    const media = await mediaFiles(engine)
    details.media = media.how
    if (runs('live')) await livePart()
    if (runs('app')) await appPart(media)
    if (runs('ivr')) await ivrPart(media)
  }
  notes.push(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at the end on ${cores} cores; sipp shares the cores with the engine`)
} catch (err) {
  notes.push(`flow-ivr stopped early: ${(err as Error).message.split('\n')[0]}`)
  console.error(err)
} finally {
  if (engine && !engine.shared) {
    await engine.stop()
    if (profileDir) {
      const prof = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'))
      console.log(`engine CPU profile: ${prof.map((f) => join(profileDir!, f)).join(', ') || 'none written'}`)
    }
  }
  mediaServer?.close()
  await postgres?.stop()
}

finishBench({
  bench: 'flow-ivr',
  mode: args.mode,
  startedAt: startedAt.toISOString(),
  durationSec: (Date.now() - startedAt.getTime()) / 1000,
  figures, plots, notes, details,
}, args)
process.exit(0)
