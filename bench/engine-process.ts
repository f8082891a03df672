import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, freeUdpRange } from '../test/harness/ports.ts'

/**
 * The whole engine (main.ts, embedded defaults) in its own process on free
 * loopback ports, so benches can measure its CPU and memory from /proc apart
 * from the load generators. Killed by stop() (and by killAllEngines()).
 */
const ROOT = dirname(dirname(fileURLToPath(import.meta.url)))

export interface EngineProcess {
  pid: number
  sipPort: number
  httpPort: number
  apiKey: string
  startupSec: number
  /** The engine's DATA_DIR (its media root is DATA_DIR/media), when known. */
  dataDir?: string
  /** The engine's RTP port range (RTP_PORT_MIN..RTP_PORT_MAX), when known. */
  rtpPorts?: { min: number; max: number }
  log(): string
  stop(): Promise<void>
}

const running = new Set<ChildProcess>()
export function killAllEngines(): void {
  for (const c of running) c.kill('SIGKILL')
  running.clear()
}

export async function startEngineProcess(opts: { env?: Record<string, string>; rtpPorts?: number; timeoutMs?: number; /** Node options before the entry (e.g. --cpu-prof, which NODE_OPTIONS refuses). */ nodeArgs?: string[] } = {}): Promise<EngineProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'callplane-bench-engine-'))
  const sipPort = await freePort()
  const httpPort = await freePort()
  const drachtioPort = await freePort()
  const rtp = await freeUdpRange(Math.min(opts.rtpPorts ?? 2000, 9000))
  const apiKey = `bench-${Math.random().toString(36).slice(2)}`
  const t0 = Date.now()
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), '--import', 'tsx', join(ROOT, 'main.ts')], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      SIP_HOST: '127.0.0.1', SIP_PORT: String(sipPort),
      HTTP_HOST: '127.0.0.1', HTTP_PORT: String(httpPort),
      DRACHTIO_PORT: String(drachtioPort),
      RTP_PORT_MIN: String(rtp.min), RTP_PORT_MAX: String(rtp.max),
      DATA_DIR: dataDir, BOOTSTRAP_API_KEY: apiKey, LOG_LEVEL: 'warn',
      // Capacity benches load the engine from one loopback source, which the per-source
      // limits exist to stop; bench/sip-flood.ts starts its own engine with them on.
      SIP_INVITE_RATE_PER_SOURCE: '0', SIP_REQUEST_RATE_PER_SOURCE: '0',
      ...opts.env,
    },
  })
  running.add(child)
  let out = ''
  let up = false
  let exited = false
  const exitedP = new Promise<void>((resolve) => child.on('exit', () => { exited = true; resolve() }))
  const upP = new Promise<void>((resolve) => {
    const on = (d: Buffer) => {
      out = (out + d.toString()).slice(-16_000)
      if (!up && out.includes('Callplane is up')) {
        up = true
        resolve()
      }
    }
    child.stdout!.on('data', on)
    child.stderr!.on('data', on)
  })
  const stop = async () => {
    running.delete(child)
    if (!exited) {
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exitedP
      clearTimeout(t)
    }
    rmSync(dataDir, { recursive: true, force: true })
  }
  const timeout = opts.timeoutMs ?? 60_000
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeout).unref())
  const r = await Promise.race([upP.then(() => 'up' as const), exitedP.then(() => 'exit' as const), timer])
  if (r !== 'up') {
    await stop()
    throw new Error(`engine ${r === 'exit' ? 'exited' : `not up within ${timeout / 1000} s`} at start:\n${out.slice(-3000)}`)
  }
  return { pid: child.pid!, sipPort, httpPort, apiKey, startupSec: (Date.now() - t0) / 1000, dataDir, rtpPorts: { min: rtp.min, max: rtp.max }, log: () => out, stop }
}

export interface TsxProcess {
  pid: number
  log(): string
  stop(): Promise<void>
}

/**
 * Any TypeScript entry (sip/server/main.ts, a bench app) in its own process,
 * ready when `readyText` appears on its output. Killed by stop() or killAllEngines().
 */
export async function startTsxProcess(file: string, env: Record<string, string>, readyText: string, timeoutMs = 30_000): Promise<TsxProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, file)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  running.add(child)
  let out = ''
  let exited = false
  const exitedP = new Promise<void>((resolve) => child.on('exit', () => { exited = true; resolve() }))
  const readyP = new Promise<void>((resolve) => {
    let ready = false
    const on = (d: Buffer) => {
      out = (out + d.toString()).slice(-16_000)
      if (!ready && out.includes(readyText)) {
        ready = true
        resolve()
      }
    }
    child.stdout!.on('data', on)
    child.stderr!.on('data', on)
  })
  const stop = async () => {
    running.delete(child)
    if (!exited) {
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), 3000)
      await exitedP
      clearTimeout(t)
    }
  }
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref())
  const r = await Promise.race([readyP.then(() => 'up' as const), exitedP.then(() => 'exit' as const), timer])
  if (r !== 'up') {
    await stop()
    throw new Error(`${file} ${r === 'exit' ? 'exited' : `not ready within ${timeoutMs / 1000} s`}:\n${out.slice(-3000)}`)
  }
  return { pid: child.pid!, log: () => out, stop }
}

/**
 * The engine a bench should use: the one the orchestrator (bench/run.ts)
 * shares between benches through BENCH_ENGINE (started once, so each bench
 * does not pay the start-up again), else a fresh one of its own. stop() only
 * stops an engine this call started.
 */
export async function acquireEngineProcess(opts: Parameters<typeof startEngineProcess>[0] = {}): Promise<EngineProcess & { shared: boolean }> {
  const shared = process.env.BENCH_ENGINE
  if (shared) {
    const e = JSON.parse(shared) as Pick<EngineProcess, 'pid' | 'sipPort' | 'httpPort' | 'apiKey' | 'startupSec' | 'dataDir' | 'rtpPorts'>
    try {
      process.kill(e.pid, 0)
      return { ...e, shared: true, log: () => '', stop: async () => {} }
    } catch { /* gone: start our own */ }
  }
  return { ...(await startEngineProcess(opts)), shared: false }
}
