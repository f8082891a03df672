import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig, type Config } from '../../config/config.ts'
import { createRootLogger } from '../../config/logger.ts'
import { Engine } from '../../engine.ts'
import { SettableClock } from '../../store/job-scheduler.ts'
import { freePort, freeUdpRange } from './ports.ts'
import { seedPgliteDataDir } from './pglite-template.ts'

export interface Stack {
  engine: Engine
  config: Config
  /** http://127.0.0.1:PORT */
  baseUrl: string
  sipPort: number
  apiKey: string
  /** The scheduler's business time: set it to run due jobs (a campaign's retry, a scheduled call) without waiting. */
  clock: SettableClock
  stop(): Promise<void>
}

/**
 * The whole engine in-process on free ports with a fresh PGlite directory:
 * what `make start` runs, shrunk for a test. `env` overrides any variable.
 */
export async function startStack(env: Record<string, string> = {}): Promise<Stack> {
  const dataDir = mkdtempSync(join(tmpdir(), 'callplane-test-'))
  if (!env.DATABASE_URL) await seedPgliteDataDir(dataDir)
  const sipPort = await freePort()
  const rtp = await freeUdpRange(40)
  const apiKey = env.BOOTSTRAP_API_KEY ?? `test-admin-${Math.random().toString(36).slice(2)}`
  const config = loadConfig({
    SIP_HOST: '127.0.0.1',
    SIP_PORT: String(sipPort),
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: '0',
    DRACHTIO_PORT: '0',
    RTP_PORT_MIN: String(rtp.min),
    RTP_PORT_MAX: String(rtp.max),
    DATA_DIR: dataDir,
    BOOTSTRAP_API_KEY: apiKey,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    // test/call/media-workers.test.ts reruns whole suites with media in worker threads.
    ...(process.env.MEDIA_WORKERS ? { MEDIA_WORKERS: process.env.MEDIA_WORKERS } : {}),
    ...env,
  })
  const clock = new SettableClock()
  const engine = await Engine.start(config, createRootLogger(config.logLevel, false), { clock })
  return {
    engine, config, sipPort, apiKey, clock,
    baseUrl: engine.listeners.http,
    async stop() {
      await engine.shutdown()
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
