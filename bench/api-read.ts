/**
 * API read-path benchmark (issue 6): autocannon against `GET /v1/calls/:id`
 * and `GET /v1/calls?limit=50` on the embedded store (PGlite), the API
 * server pinned to one core (taskset) in a child process.
 *
 *   tsx bench/api-read.ts [--quick|--full] [--out result.json]
 *
 * For each route: (1) the most it serves (closed loop, 10 connections) with
 * req/s and latency percentiles; (2) a fixed offered load of 2,000 req/s,
 * where the target is p99 ≤ 10 ms. Prints a summary and writes a BenchResult.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { parseBenchArgs, type BenchFigure, type BenchResult } from './bench-result.ts'

const SELF = fileURLToPath(import.meta.url)
const API_KEY = 'cp_bench_api_read_key_0123456789'

/** Child mode: serve the API over a seeded embedded store, print {port, callId} and wait. */
async function serve(): Promise<void> {
  const { pino } = await import('pino')
  const { Registry } = await import('prom-client')
  const { openDatabase } = await import('../store/database.ts')
  const { migrate } = await import('../store/migrator.ts')
  const { bootstrap } = await import('../store/bootstrap.ts')
  const { createStore } = await import('../store/index.ts')
  const { SecretBox } = await import('../store/secrets.ts')
  const { buildApiServer } = await import('../control-api/app.ts')
  const { HealthRegistry } = await import('../control-api/health.ts')
  const { CallControlSlot } = await import('../control-api/call-control.ts')
  const { v1Routes } = await import('../control-api/routes/v1.ts')
  const logger = pino({ level: 'silent' })
  const dir = process.env.BENCH_DATA_DIR!
  const db = await openDatabase({ dataDir: dir, logger, ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : {}) })
  await migrate(db, logger)
  const { account } = await bootstrap(db, API_KEY, logger, { demo: false })
  const store = createStore(db, new SecretBox('bench'), logger)
  // A realistic history: 500 finished calls with a short transcript and timings.
  let callId = ''
  for (let i = 0; i < 500; i++) {
    const c = await store.calls.create({ accountId: account.id, direction: i % 3 ? 'inbound' : 'outbound', from: `+4915112${String(i).padStart(6, '0')}`, to: '+4930123456', status: 'ringing' })
    await store.calls.markAnswered(c.id)
    for (let k = 0; k < 4; k++) await store.calls.appendTranscript(c.id, { role: k % 2 ? 'user' : 'assistant', text: `turn ${k} of call ${i}: some words spoken here`, offsetMs: k * 2000 })
    await store.calls.addTiming(c.id, { turn: 1, sttFinalMs: 150, llmFirstTokenMs: 200, ttsFirstAudioMs: 120, firstRtpOutMs: 20, totalMs: 490 })
    await store.calls.end(c.id, { status: 'completed', endedReason: 'customer-ended', hangupBy: 'caller' })
    callId = c.id
  }
  const app = await buildApiServer({
    logger, registry: new Registry(), health: new HealthRegistry(), isDraining: () => false,
    registerRoutes: v1Routes({ store, callControl: new CallControlSlot(), allowInsecureWebhooks: true, rateLimit: false }),
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  process.stdout.write(`${JSON.stringify({ ready: true, port, callId })}\n`)
  process.on('message', (m) => {
    if (m === 'cpu') process.send?.({ cpu: process.cpuUsage() })
  })
  process.on('SIGTERM', () => {
    void app.close().then(() => db.close()).finally(() => process.exit(0))
  })
}

interface Run { reqPerSec: number; p50: number; p90: number; p99: number; max: number; errors: number; non2xx: number; requests: number }

function cannon(url: string, opts: { connections: number; durationSec: number; rate?: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    autocannon({
      url, connections: opts.connections, duration: opts.durationSec, pipelining: 1,
      headers: { authorization: `Bearer ${API_KEY}` },
      ...(opts.rate ? { overallRate: opts.rate } : {}),
    }, (err, r) => {
      if (err) return reject(err)
      resolve({
        reqPerSec: r.requests.average, p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max,
        errors: r.errors + r.timeouts, non2xx: r.non2xx, requests: r.requests.total,
      })
    })
  })
}

function cpuOf(child: ChildProcess): Promise<NodeJS.CpuUsage> {
  return new Promise((resolve) => {
    const on = (m: unknown) => {
      if (m && typeof m === 'object' && 'cpu' in m) {
        child.off('message', on)
        resolve((m as { cpu: NodeJS.CpuUsage }).cpu)
      }
    }
    child.on('message', on)
    child.send('cpu')
  })
}

async function main(): Promise<void> {
  if (process.argv.includes('--serve')) return serve()
  const args = parseBenchArgs()
  const started = Date.now()
  const dur = args.mode === 'full' ? 20 : 8
  const dir = mkdtempSync(join(tmpdir(), 'cp-bench-api-'))
  const pinned = spawnSync('taskset', ['-c', '0', 'true']).status === 0
  const cmd = pinned ? 'taskset' : process.execPath
  const cmdArgs = pinned ? ['-c', '0', process.execPath, '--import=tsx', SELF, '--serve'] : ['--import=tsx', SELF, '--serve']
  // --postgres: the same against a throwaway PostgreSQL 15 cluster instead of embedded PGlite.
  const pg = process.argv.includes('--postgres') ? await (await import('../test/harness/postgres.ts')).startPostgres() : null
  const child: ChildProcess = spawn(cmd, cmdArgs, { env: { ...process.env, BENCH_DATA_DIR: dir, ...(pg ? { DATABASE_URL: pg.url } : {}) }, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
  const cleanup = () => {
    child.kill('SIGTERM')
    rmSync(dir, { recursive: true, force: true })
    void pg?.stop()
  }
  try {
    const info = await new Promise<{ port: number; callId: string }>((resolve, reject) => {
      let buf = ''
      child.stdout!.on('data', (d) => {
        buf += d
        const line = buf.split('\n').find((l) => l.startsWith('{"ready"'))
        if (line) resolve(JSON.parse(line))
      })
      child.once('exit', (code) => reject(new Error(`API server exited (${code}) before it was ready`)))
      setTimeout(() => reject(new Error('API server not ready in 180 s')), 180_000).unref()
    })
    const base = `http://127.0.0.1:${info.port}`
    const routes = [
      { id: 'get_call', label: 'GET /v1/calls/:id', url: `${base}/v1/calls/${info.callId}` },
      { id: 'list_calls_50', label: 'GET /v1/calls?limit=50', url: `${base}/v1/calls?limit=50` },
    ]
    const figures: BenchFigure[] = []
    const details: Record<string, unknown> = { serverPinnedToOneCore: pinned, durationSec: dur }
    const lines: string[] = []
    for (const r of routes) {
      await cannon(r.url, { connections: 4, durationSec: 2 }) // warm-up
      const cpu0 = await cpuOf(child)
      const max = await cannon(r.url, { connections: 10, durationSec: dur })
      const cpu1 = await cpuOf(child)
      const cpuMsPerReq = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / 1000 / Math.max(1, max.requests)
      const fixed = await cannon(r.url, { connections: 20, durationSec: dur, rate: 2000 })
      details[r.id] = { max, at2000: fixed, serverCpuMsPerRequest: cpuMsPerReq }
      figures.push(
        { id: `api.${r.id}.max_rps`, label: `${r.label}: max req/s (1 core, 10 conns)`, value: Math.round(max.reqPerSec), unit: 'req/s', better: 'higher', target: 2000 },
        { id: `api.${r.id}.cpu_ms_per_req`, label: `${r.label}: API process CPU per request (load-independent)`, value: Number(cpuMsPerReq.toFixed(3)), unit: 'ms', better: 'lower' },
        { id: `api.${r.id}.projected_rps_one_core`, label: `${r.label}: projected req/s on one idle core (1000 / CPU ms per request)`, value: Math.round(1000 / cpuMsPerReq), unit: 'req/s', better: 'higher', target: 2000 },
        { id: `api.${r.id}.p99_at_max`, label: `${r.label}: p99 at max load`, value: max.p99, unit: 'ms', better: 'lower' },
        { id: `api.${r.id}.rps_at_2000`, label: `${r.label}: served at 2,000 req/s offered`, value: Math.round(fixed.reqPerSec), unit: 'req/s', better: 'higher', target: 2000 },
        { id: `api.${r.id}.p99_at_2000`, label: `${r.label}: p99 at 2,000 req/s offered`, value: fixed.p99, unit: 'ms', better: 'lower', target: 10 },
      )
      lines.push(`${r.label.padEnd(24)} API CPU ${cpuMsPerReq.toFixed(3)} ms/req (≈ ${Math.round(1000 / cpuMsPerReq)} req/s on an idle core) | max ${Math.round(max.reqPerSec)} req/s (p50 ${max.p50} ms, p99 ${max.p99} ms, errors ${max.errors + max.non2xx}) | at 2000 req/s offered: ${Math.round(fixed.reqPerSec)} req/s, p50 ${fixed.p50} ms, p99 ${fixed.p99} ms (target ≤ 10 ms) ${fixed.p99 <= 10 && fixed.reqPerSec >= 1900 ? 'MET' : 'NOT MET'}`)
    }
    const result: BenchResult = {
      bench: pg ? 'api-read-postgres' : 'api-read', mode: args.mode, startedAt: new Date(started).toISOString(), durationSec: (Date.now() - started) / 1000,
      figures, plots: [], details,
      notes: [
        `${pg ? 'PostgreSQL 15 (throwaway local cluster, pool of 10)' : 'Embedded PGlite store (one backend connection)'}, 500 seeded calls with transcripts; auth via the in-memory key cache; rate limit off.`,
        'The host was shared with other heavy test runs while measured: req/s and latency depend on that load; CPU ms per request (and the projection from it) does not.',
        pinned ? 'API server process pinned to CPU 0 with taskset; autocannon runs in another process.' : 'taskset unavailable: server not pinned.',
      ],
    }
    console.log('\napi-read summary')
    for (const l of lines) console.log(`  ${l}`)
    const json = JSON.stringify(result)
    if (args.out) (await import('node:fs')).writeFileSync(args.out, json)
    console.log(json)
  } finally {
    cleanup()
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
