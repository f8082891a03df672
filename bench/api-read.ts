/**
 * API read-path benchmark (issue 6): `GET /v1/calls/:id` and
 * `GET /v1/calls?limit=50` on the embedded store (PGlite), the API server
 * pinned to one core (taskset -c 0) in a child process, the load generators
 * pinned to the other core when there is one.
 *
 *   tsx bench/api-read.ts [--quick|--full] [--postgres] [--out result.json]
 *
 * For each route: (1) the most it serves (autocannon, closed loop, 10
 * connections) and the API process's CPU per request; (2) a fixed offered
 * load of 2,000 req/s sent evenly (one request every 0.5 ms, open loop:
 * latency counts from when a request was due, so a stalled server cannot hide
 * its queue), where the target is p99 ≤ 10 ms; (3) for comparison, the same
 * rate through autocannon's own rate mode, which fires each connection's
 * per-second quota back to back at the top of every second and so measures a
 * burst, not a rate (see the notes in the result).
 *
 * Each route is measured twice: with `Accept-Encoding: gzip`, as browsers and
 * HTTP client libraries send it (figure ids `api.<route>_gzip.*`), and without
 * it (identity; the ids `api.<route>.*` keep the meaning they had before the
 * API compressed). The generator counts body bytes without decoding them and
 * records the Content-Encoding it got, so a run that asked for gzip and got
 * identity (or the reverse) shows in the result.
 *
 * On a shared box a p99 of a few ms is as much the box's as the server's, so
 * the fixed-rate window also reports, for the server and for the generator,
 * the share of time their threads were runnable but waiting for a CPU (Linux
 * schedstat) and their event-loop delay (p99, max), plus the server's GC pauses.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import { cpus, loadavg } from 'node:os'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { pinProcess } from './cpu-pinning.ts'
import { parseBenchArgs, percentile, type BenchFigure, type BenchResult, type PlotSpec } from './bench-result.ts'

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
  const { CallControlSlot } = await import('../call/call-control.ts')
  const { v1Routes } = await import('../control-api/routes/v1.ts')
  const logger = pino({ level: 'silent' })
  const dir = process.env.BENCH_DATA_DIR!
  const db = await openDatabase({ dataDir: dir, logger, ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : {}) })
  await migrate(db, logger)
  const { account } = await bootstrap(db, API_KEY, logger, { demo: false })
  // Counts the database round-trips the API makes (the read cache should keep them rare).
  let queries = 0
  const poolQuery = db.pool.query.bind(db.pool) as (...a: unknown[]) => unknown
  ;(db.pool as unknown as { query: (...a: unknown[]) => unknown }).query = (...a: unknown[]) => {
    queries++
    return poolQuery(...a)
  }
  const store = createStore(db, new SecretBox('bench'), logger)
  // A realistic history: 500 finished calls with a short transcript and timings.
  // The first 10 go through the repository (the real write path, events and
  // all); the rest are made in one statement, which keeps start-up short. The
  // copies get their own transcripts (4 turns of 6-15 words drawn at random from
  // a 200-word list): verbatim copies would make a page compress far better
  // (about 25x) than real call logs do, flattering the gzip figures.
  const words = 'the a to and of I you it is that in we for this on can my be have your with what not are do at yes no so but if just call about like here there one when time need would could help today thank please number appointment order account service check book next week monday tuesday friday morning afternoon evening price cost ticket delivery address street email phone back again right okay sure great perfect sorry wait moment name last first again problem issue working broken fixed send receive payment card invoice refund cancel change update confirm available open closed hours team manager support question answer information details later tomorrow yesterday minute second hour day month year new old small large first second third every each some many more less very really also still already never always maybe probably definitely exactly customer agent store online website app login password reset code message text voice line hold transfer speak talk listen understand explain repeat spell letter digit zero two three four five six seven eight nine ten twenty hundred dollar euro pound office home work city'.split(' ')
  let callId = ''
  for (let i = 0; i < 10; i++) {
    const c = await store.calls.create({ accountId: account.id, direction: i % 3 ? 'inbound' : 'outbound', from: `+4915112${String(i).padStart(6, '0')}`, to: '+4930123456', status: 'ringing' })
    await store.calls.markAnswered(c.id)
    for (let k = 0; k < 4; k++) await store.calls.appendTranscript(c.id, { role: k % 2 ? 'user' : 'assistant', text: `turn ${k} of call ${i}: some words spoken here`, offsetMs: k * 2000 })
    await store.calls.addTiming(c.id, { turn: 1, sttFinalMs: 150, llmFirstTokenMs: 200, ttsFirstAudioMs: 120, firstRtpOutMs: 20, totalMs: 490 })
    await store.calls.end(c.id, { status: 'completed', endedReason: 'customer-ended', hangupBy: 'caller' })
    if (i === 5) callId = c.id
  }
  // The subqueries refer to the outer row (s.n, k.k) so PostgreSQL runs them per row and turn, not once.
  await db.pool.query(
    `INSERT INTO calls (id, account_id, direction, status, from_number, to_number, ended_reason, hangup_by, transcript, timings, metadata,
        created_at, ringing_at, answered_at, ended_at, updated_at)
     SELECT gen_random_uuid(), account_id, direction, status, from_number, to_number, ended_reason, hangup_by,
        (SELECT jsonb_agg(jsonb_build_object('role', CASE WHEN k.k % 2 = 1 THEN 'user' ELSE 'assistant' END,
            'text', (SELECT string_agg(($1::text[])[1 + floor(random() * array_length($1::text[], 1))::int], ' ')
                     FROM generate_series(1, 6 + floor(random() * 10)::int + 0 * k.k + 0 * s.n)),
            'offsetMs', k.k * 2000) ORDER BY k.k)
         FROM generate_series(0, 3 + 0 * s.n) AS k(k)),
        timings, metadata, created_at, ringing_at, answered_at, ended_at, updated_at
     FROM calls CROSS JOIN generate_series(1, 49) AS s(n) ORDER BY seq LIMIT 490`,
    [words],
  )
  await db.pool.query('ANALYZE calls')
  const app = await buildApiServer({
    logger, registry: new Registry(), health: new HealthRegistry(), isDraining: () => false,
    registerRoutes: v1Routes({ store, callControl: new CallControlSlot(), allowInsecureWebhooks: true, rateLimit: false }),
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  process.stdout.write(`${JSON.stringify({ ready: true, port, callId })}\n`)
  // Why a slow request was slow: the event loop's own stalls (GC, long tasks)
  // show in its delay histogram; time this process's threads were runnable but
  // not running (another process had the core) shows in schedstat's run-queue wait.
  const loopDelay = monitorEventLoopDelay({ resolution: 1 })
  loopDelay.enable()
  const gc = { count: 0, totalMs: 0, maxMs: 0 }
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.count++
      gc.totalMs += e.duration
      gc.maxMs = Math.max(gc.maxMs, e.duration)
    }
  }).observe({ entryTypes: ['gc'] })
  process.on('message', (m) => {
    if (m !== 'cpu') return
    const stats: ServerStats = {
      cpu: process.cpuUsage(), queries, runQueueWaitMs: runQueueWaitMs(),
      loopDelayMs: { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 }, gc: { ...gc },
    }
    loopDelay.reset()
    Object.assign(gc, { count: 0, totalMs: 0, maxMs: 0 })
    process.send?.(stats)
  })
  process.on('SIGTERM', () => {
    void app.close().then(() => db.close()).finally(() => process.exit(0))
  })
}

interface Run { reqPerSec: number; p50: number; p90: number; p99: number; max: number; errors: number; non2xx: number; requests: number }

function cannon(url: string, opts: { connections: number; durationSec: number; rate?: number; acceptEncoding: string | null }): Promise<Run> {
  return new Promise((resolve, reject) => {
    autocannon({
      url, connections: opts.connections, duration: opts.durationSec, pipelining: 1,
      headers: { authorization: `Bearer ${API_KEY}`, ...(opts.acceptEncoding ? { 'accept-encoding': opts.acceptEncoding } : {}) },
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

interface ServerStats {
  cpu: NodeJS.CpuUsage
  queries: number
  /** Sum over the process's threads of the time spent waiting for a CPU (Linux /proc schedstat); NaN elsewhere. */
  runQueueWaitMs: number
  /** Event-loop delay since the previous sample. */
  loopDelayMs: { p99: number; max: number }
  /** Garbage collections on the main thread since the previous sample. */
  gc: { count: number; totalMs: number; maxMs: number }
}

function runQueueWaitMs(): number {
  try {
    let ns = 0
    for (const task of readdirSync('/proc/self/task')) ns += Number(readFileSync(`/proc/self/task/${task}/schedstat`, 'utf8').split(' ')[1])
    return ns / 1e6
  } catch {
    return NaN
  }
}

function cpuOf(child: ChildProcess): Promise<NodeJS.CpuUsage & Omit<ServerStats, 'cpu'>> {
  return new Promise((resolve) => {
    const on = (m: unknown) => {
      if (m && typeof m === 'object' && 'cpu' in m) {
        child.off('message', on)
        const { cpu, ...rest } = m as ServerStats
        resolve({ ...cpu, ...rest })
      }
    }
    child.on('message', on)
    child.send('cpu')
  })
}

interface EvenRun extends Run {
  offered: number; sent: number; latencies: number[]; maxBacklog: number
  /** Mean response body size on the wire, and the Content-Encoding values seen (the run checks it got what it asked for). */
  bodyBytesPerResponse: number; contentEncodings: string[]
}

/**
 * Open-loop load at a fixed rate, spread evenly: request i is due at
 * t0 + i / rate and goes out on the first idle keep-alive connection (or
 * waits in a queue for one). Its latency runs from when it was due to the
 * last byte of the response, so time spent queued behind a slow server
 * counts (no coordinated omission). Plain sockets with one pre-built request
 * keep the generator's own cost small. Responses must carry Content-Length
 * (Fastify sends it for JSON).
 */
function evenRate(url: string, opts: { rate: number; durationSec: number; connections: number; warmupSec: number; acceptEncoding: string | null }): Promise<EvenRun> {
  const u = new URL(url)
  const ae = opts.acceptEncoding ? `Accept-Encoding: ${opts.acceptEncoding}\r\n` : ''
  const request = Buffer.from(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${API_KEY}\r\n${ae}\r\n`)
  const interval = 1000 / opts.rate
  const total = Math.round(opts.rate * opts.durationSec)
  const warm = Math.round(opts.rate * opts.warmupSec)
  const latencies: number[] = []
  let sent = 0
  let done = 0
  let errors = 0
  let non2xx = 0
  let maxBacklog = 0
  let bodyBytes = 0
  const encodings = new Set<string>()
  const backlog: number[] = [] // due times of requests waiting for a connection
  /** bodyLeft: body bytes still to come, -1 while reading the headers. */
  interface Conn { socket: Socket; due: number; idx: number; buf: Buffer; busy: boolean; bodyLeft: number; status: number }
  const idle: Conn[] = []
  let t0 = 0
  return new Promise((resolve, reject) => {
    let finished = false
    const finish = () => {
      if (finished) return
      finished = true
      clearTimeout(tickTimer)
      for (const c of conns) c.socket.destroy()
      const measured = latencies.slice().sort((a, b) => a - b)
      const wall = (performance.now() - t0) / 1000
      resolve({
        offered: opts.rate, sent, requests: done, reqPerSec: (done - warm) / Math.max(0.001, wall - opts.warmupSec),
        p50: percentile(measured, 50), p90: percentile(measured, 90), p99: percentile(measured, 99), max: measured.at(-1) ?? NaN,
        errors, non2xx, latencies: measured, maxBacklog,
        bodyBytesPerResponse: done ? bodyBytes / done : 0, contentEncodings: [...encodings],
      })
    }
    const dispatch = (c: Conn, due: number) => {
      c.busy = true
      c.due = due
      c.idx = sent++
      c.socket.write(request)
    }
    const onResponse = (c: Conn, status: number) => {
      const now = performance.now()
      done++
      if (status < 200 || status > 299) non2xx++
      else if (c.idx >= warm) latencies.push(now - c.due)
      c.busy = false
      const next = backlog.shift()
      if (next !== undefined) dispatch(c, next)
      else idle.push(c)
      if (done + errors >= total) finish()
    }
    const conns: Conn[] = []
    let opened = 0
    for (let i = 0; i < opts.connections; i++) {
      const c: Conn = { socket: connect({ host: u.hostname, port: Number(u.port) }), due: 0, idx: 0, buf: Buffer.alloc(0), busy: false, bodyLeft: -1, status: 0 }
      c.socket.setNoDelay(true)
      conns.push(c)
      c.socket.on('connect', () => {
        idle.push(c)
        if (++opened === opts.connections) start()
      })
      c.socket.on('error', (err) => {
        if (!t0) return reject(err)
        errors++
      })
      c.socket.on('close', () => {
        if (c.busy && !finished) {
          errors++
          if (done + errors >= total) finish()
        }
      })
      // Headers are gathered (they are small); the body is only counted, never copied,
      // so a 50 KB page costs the generator no more than a socket read.
      c.socket.on('data', (d: Buffer) => {
        let off = 0
        while (off < d.length) {
          if (c.bodyLeft < 0) {
            c.buf = c.buf.length ? Buffer.concat([c.buf, d.subarray(off)]) : d.subarray(off)
            off = d.length
            const head = c.buf.indexOf('\r\n\r\n')
            if (head < 0) return
            const headers = c.buf.subarray(0, head).toString('latin1')
            const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(headers)?.[1] ?? NaN)
            if (!Number.isFinite(len)) {
              errors++
              c.socket.destroy()
              return
            }
            c.status = Number(headers.slice(9, 12))
            c.bodyLeft = len
            bodyBytes += len
            // Bodies are counted, never decoded: the generator costs what reading the bytes costs.
            encodings.add(/\r\ncontent-encoding:\s*([^\r]+)/i.exec(headers)?.[1]?.trim() ?? 'identity')
            const rest = c.buf.subarray(head + 4)
            c.buf = Buffer.alloc(0)
            d = rest
            off = 0
          }
          const take = Math.min(c.bodyLeft, d.length - off)
          c.bodyLeft -= take
          off += take
          if (c.bodyLeft === 0) {
            c.bodyLeft = -1
            onResponse(c, c.status)
          }
        }
      })
    }
    let tickTimer: NodeJS.Timeout
    const tick = () => {
      const now = performance.now()
      // Everything due by now goes out (a timer tick is ~1 ms; the rate is 2 per ms).
      while (sent + backlog.length < total) {
        const due = t0 + (sent + backlog.length) * interval
        if (due > now) break
        const c = idle.pop()
        if (c) dispatch(c, due)
        else backlog.push(due)
      }
      if (backlog.length > maxBacklog) maxBacklog = backlog.length
      if (sent + backlog.length < total) tickTimer = setTimeout(tick, 0)
      else tickTimer = setTimeout(finish, 10_000) // stragglers: give up on them after 10 s
    }
    const start = () => {
      t0 = performance.now()
      tick()
    }
  })
}

/** Pins this process (all its threads) to one CPU, away from the server's; false when that is not possible. */
function pinSelf(cpu: number): boolean {
  return pinProcess(process.pid, String(cpu))
}

async function main(): Promise<void> {
  if (process.argv.includes('--serve')) return serve()
  const args = parseBenchArgs()
  const started = Date.now()
  const full = args.mode === 'full'
  // Quick: short windows (the figures settle within a few seconds at these rates); full: long ones.
  const dur = { warm: full ? 3 : 1, max: full ? 15 : 2, even: full ? 20 : 4, evenWarm: full ? 2 : 1, burst: full ? 10 : 2 }
  const dir = mkdtempSync(join(tmpdir(), 'cp-bench-api-'))
  const pinned = spawnSync('taskset', ['-c', '0', 'true']).status === 0
  // The generators (this process) go to the other core, so they do not take the server's.
  const driverPinned = pinned && cpus().length > 1 && pinSelf(1)
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
    console.log(`API server up (pid ${child.pid}${pinned ? ', pinned to CPU 0' : ''}; generators ${driverPinned ? 'pinned to CPU 1' : 'not pinned'}) after ${((Date.now() - started) / 1000).toFixed(1)} s`)
    const base = `http://127.0.0.1:${info.port}`
    // Each route twice: with `Accept-Encoding: gzip`, as browsers and HTTP client
    // libraries send it, and without (identity). The identity ids are the ones
    // earlier runs reported (their meaning is unchanged); the gzip ones are new.
    const routes = [
      { id: 'get_call', label: 'GET /v1/calls/:id', url: `${base}/v1/calls/${info.callId}` },
      { id: 'list_calls_50', label: 'GET /v1/calls?limit=50', url: `${base}/v1/calls?limit=50` },
    ].flatMap((r) => [
      { ...r, id: `${r.id}_gzip`, label: `${r.label} (gzip)`, acceptEncoding: 'gzip' as string | null },
      { ...r, label: `${r.label} (identity)`, acceptEncoding: null },
    ])
    const figures: BenchFigure[] = []
    const plots: PlotSpec[] = []
    const cdf: PlotSpec = { id: 'api.latency_cdf_2000', title: 'API latency at 2,000 req/s offered evenly (open loop)', kind: 'cdf', xLabel: 'latency (ms)', yLabel: 'share of requests', series: [], marks: [{ axis: 'x', value: 10, label: 'p99 target 10 ms' }] }
    const load = { start: loadavg() }
    const details: Record<string, unknown> = { serverPinnedToOneCore: pinned, generatorsPinnedToOtherCore: driverPinned, durationsSec: dur, load }
    const lines: string[] = []
    for (const r of routes) {
      // Warm-up (JIT, caches) by count, not time: a starved server must still have
      // compiled its hot paths before the measured windows start.
      // The identity run follows the gzip run of the same route (same handler, already hot): half the warm-up.
      await evenRate(r.url, { rate: 2000, durationSec: r.acceptEncoding ? dur.warm * 2 : dur.warm, connections: 32, warmupSec: 0, acceptEncoding: r.acceptEncoding })
      const cpu0 = await cpuOf(child)
      const max = await cannon(r.url, { connections: 10, durationSec: dur.max, acceptEncoding: r.acceptEncoding })
      const cpu1 = await cpuOf(child)
      const cpuMsPerReq = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / 1000 / Math.max(1, max.requests)
      const e0 = await cpuOf(child)
      const g0 = process.cpuUsage()
      const gWait0 = runQueueWaitMs()
      const gLoop = monitorEventLoopDelay({ resolution: 1 })
      gLoop.enable()
      const even = await evenRate(r.url, { rate: 2000, durationSec: dur.even, connections: 32, warmupSec: dur.evenWarm, acceptEncoding: r.acceptEncoding })
      const g1 = process.cpuUsage(g0)
      gLoop.disable()
      // The generator's own stalls add to the measured latency as much as the server's do.
      const generatorWaitShare = (runQueueWaitMs() - gWait0) / (dur.even * 1000)
      const generatorLoopDelayMs = { p99: gLoop.percentile(99) / 1e6, max: gLoop.max / 1e6 }
      const expected = r.acceptEncoding ?? 'identity'
      if (even.contentEncodings.some((e) => e !== expected)) console.warn(`${r.label}: asked for ${expected}, got ${even.contentEncodings.join(', ')}`)
      const e1 = await cpuOf(child)
      const generatorCoreShare = (g1.user + g1.system) / 1e6 / dur.even
      const evenCoreShare = (e1.user - e0.user + e1.system - e0.system) / 1e6 / dur.even
      const queriesPer1000 = ((e1.queries - e0.queries) * 1000) / Math.max(1, even.requests)
      // Share of the window the server's threads spent runnable but off-CPU (another process on its core).
      const waitShare = (e1.runQueueWaitMs - e0.runQueueWaitMs) / (dur.even * 1000)
      const burst = await cannon(r.url, { connections: 20, durationSec: dur.burst, rate: 2000, acceptEncoding: r.acceptEncoding })
      const { latencies, ...evenSummary } = even
      details[r.id] = { acceptEncoding: r.acceptEncoding ?? 'none (identity)', max, at2000even: { ...evenSummary, serverCoreShare: evenCoreShare, generatorCoreShare, dbQueriesPer1000Requests: queriesPer1000, serverRunQueueWaitShare: waitShare, serverLoopDelayMs: e1.loopDelayMs, serverGc: e1.gc, generatorRunQueueWaitShare: generatorWaitShare, generatorLoopDelayMs }, at2000autocannonRateMode: burst, serverCpuMsPerRequest: cpuMsPerReq }
      // CDF from at most ~200 points of the sorted latencies.
      const step = Math.max(1, Math.floor(latencies.length / 200))
      const xs: number[] = []
      const ys: number[] = []
      for (let i = 0; i < latencies.length; i += step) { xs.push(Number(latencies[i]!.toFixed(3))); ys.push((i + 1) / latencies.length) }
      if (latencies.length) { xs.push(Number(latencies.at(-1)!.toFixed(3))); ys.push(1) }
      cdf.series.push({ label: r.label, x: xs, y: ys })
      const met = even.p99 <= 10 && even.reqPerSec >= 1900 && even.errors + even.non2xx === 0
      figures.push(
        { id: `api.${r.id}.max_rps`, label: `${r.label}: max req/s (1 core, 10 conns)`, value: Math.round(max.reqPerSec), unit: 'req/s', better: 'higher', target: 2000 },
        { id: `api.${r.id}.cpu_ms_per_req`, label: `${r.label}: API process CPU per request (load-independent)`, value: Number(cpuMsPerReq.toFixed(3)), unit: 'ms', better: 'lower' },
        { id: `api.${r.id}.projected_rps_one_core`, label: `${r.label}: projected req/s on one idle core (1000 / CPU ms per request)`, value: Math.round(1000 / cpuMsPerReq), unit: 'req/s', better: 'higher', target: 2000 },
        { id: `api.${r.id}.p99_at_max`, label: `${r.label}: p99 at max load`, value: max.p99, unit: 'ms', better: 'lower' },
        { id: `api.${r.id}.rps_at_2000`, label: `${r.label}: served at 2,000 req/s offered evenly`, value: Math.round(even.reqPerSec), unit: 'req/s', better: 'higher', target: 2000 * 0.95 },
        { id: `api.${r.id}.p50_at_2000`, label: `${r.label}: p50 at 2,000 req/s offered evenly (open loop)`, value: Number(even.p50.toFixed(2)), unit: 'ms', better: 'lower' },
        { id: `api.${r.id}.p99_at_2000`, label: `${r.label}: p99 at 2,000 req/s offered evenly (open loop)`, value: Number(even.p99.toFixed(2)), unit: 'ms', better: 'lower', target: 10 },
        { id: `api.${r.id}.server_core_share_at_2000`, label: `${r.label}: API process CPU at 2,000 req/s`, value: Number((evenCoreShare * 100).toFixed(1)), unit: '% of a core', better: 'lower' },
        { id: `api.${r.id}.db_queries_per_1000_req`, label: `${r.label}: database queries per 1,000 requests at 2,000 req/s (read cache)`, value: Number(queriesPer1000.toFixed(2)), unit: 'queries', better: 'lower' },
        { id: `api.${r.id}.server_cpu_wait_at_2000`, label: `${r.label}: share of the 2,000 req/s window the API process's threads waited for a CPU (other load on its core)`, value: Number((waitShare * 100).toFixed(2)), unit: '%', better: 'lower' },
        { id: `api.${r.id}.body_bytes`, label: `${r.label}: response body on the wire (Content-Encoding: ${even.contentEncodings.join(', ')})`, value: Math.round(even.bodyBytesPerResponse), unit: 'bytes', better: 'lower' },
        { id: `api.${r.id}.p99_at_2000_autocannon_rate_mode`, label: `${r.label}: p99 at 2,000 req/s through autocannon's rate mode (per-second bursts; for comparison)`, value: burst.p99, unit: 'ms', better: 'lower' },
      )
      lines.push(`${r.label.padEnd(36)} API CPU ${cpuMsPerReq.toFixed(3)} ms/req (≈ ${Math.round(1000 / cpuMsPerReq)} req/s on an idle core) | max ${Math.round(max.reqPerSec)} req/s (p50 ${max.p50} ms, p99 ${max.p99} ms, errors ${max.errors + max.non2xx})`)
      lines.push(`${''.padEnd(36)} ${Math.round(even.bodyBytesPerResponse)} B/response (${even.contentEncodings.join(', ')}); at 2000 req/s even: ${Math.round(even.reqPerSec)} req/s, p50 ${even.p50.toFixed(2)} ms, p99 ${even.p99.toFixed(2)} ms, max ${even.max.toFixed(1)} ms, server ${(evenCoreShare * 100).toFixed(0)}% of a core (generator ${(generatorCoreShare * 100).toFixed(0)}%), ${queriesPer1000.toFixed(1)} DB queries/1000 req, server waited for a CPU ${(waitShare * 100).toFixed(1)}% of the time, loop delay p99 ${e1.loopDelayMs.p99.toFixed(1)} ms max ${e1.loopDelayMs.max.toFixed(1)} ms, GC ${e1.gc.count}× max ${e1.gc.maxMs.toFixed(1)} ms (generator: waited ${(generatorWaitShare * 100).toFixed(1)}%, loop delay p99 ${generatorLoopDelayMs.p99.toFixed(1)} ms max ${generatorLoopDelayMs.max.toFixed(1)} ms), errors ${even.errors + even.non2xx} (target p99 ≤ 10 ms) ${met ? 'MET' : 'NOT MET'} | autocannon rate mode: p99 ${burst.p99} ms`)
      console.log(lines.at(-2))
      console.log(lines.at(-1))
    }
    plots.push(cdf)
    Object.assign(load, { end: loadavg() })
    const result: BenchResult = {
      bench: pg ? 'api-read-postgres' : 'api-read', mode: args.mode, startedAt: new Date(started).toISOString(), durationSec: (Date.now() - started) / 1000,
      figures, plots, details,
      notes: [
        `${pg ? 'PostgreSQL 15 (throwaway local cluster, pool of 10)' : 'Embedded PGlite store (one backend connection)'}, 500 seeded calls with transcripts (4 turns of random words each, so a page compresses like a real call log: ~58 KB JSON, ~7.5 KB gzip); each route measured with Accept-Encoding: gzip and without (identity), reported separately; auth via the in-memory key cache; read cache at its default TTL; rate limit off.`,
        pinned ? `API server process pinned to CPU 0 with taskset; ${driverPinned ? 'autocannon and the even-rate generator pinned to CPU 1' : 'generators not pinned'}.` : 'taskset unavailable: server not pinned.',
        'Fixed-rate figures come from an open-loop generator sending one request every 0.5 ms over 32 keep-alive connections, latency counted from when each request was due. autocannon\'s rate mode (overallRate) instead lets each connection send its per-second quota back to back as soon as a second starts, then idle: a closed-loop burst whose p99 is queueing within the burst, and it corrects for coordinated omission with a 1 ms expected interval (ceil(1 / per-connection rate)), adding synthetic samples for every ms of a slow response. Its p99 is kept for comparison only.',
        `Load average ${load.start.map((x) => x.toFixed(2)).join(' ')} at start (2 cores shared with other work): wall-clock latency depends on that load; CPU ms per request (and the projection from it) does not.`,
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
