import { loadConfig, ConfigError, type Config } from './config/config.ts'
import { createRootLogger } from './config/logger.ts'

/** `make start` / `npm start`: the whole engine in one process, embedded defaults. */
async function main(): Promise<void> {
  let config: Config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`callplane: invalid configuration: ${err.message}\n`)
      process.exit(2)
    }
    throw err
  }
  const logger = createRootLogger(config.logLevel)
  // The engine's module graph takes seconds to load; a bad value should not wait for it.
  const { Engine } = await import('./engine.ts')
  let engine: Awaited<ReturnType<typeof Engine.start>>
  try {
    engine = await Engine.start(config, logger)
  } catch (err) {
    logger.fatal({ err }, 'start-up failed')
    process.stderr.write(`callplane: start-up failed: ${(err as Error).message}\n`)
    process.exit(1)
  }
  const l = engine.listeners
  const out = process.stdout
  out.write('\nCallplane is up\n')
  if (l.demo) out.write(`\n  Try it: call ${l.demo} from any softphone (the demo agent answers)\n\n`)
  out.write(`  SIP         ${l.sip.join('  ')}\n`)
  out.write(`  drachtio    ${l.drachtio} (control socket)\n`)
  out.write(`  HTTP API    ${l.http}   (open it in a browser; docs ${l.http}/docs, health /health, metrics /metrics)\n`)
  out.write(`  RTP ports   ${l.rtp}\n`)
  out.write(`  database    ${l.database}\n`)
  if (engine.generatedApiKey) {
    out.write(`\n  Admin API key (shown once, stored hashed): ${engine.generatedApiKey}\n`)
  }
  out.write('\n')

  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutdown requested')
    const hardStop = setTimeout(() => {
      logger.error('drain timed out; exiting')
      process.exit(1)
    }, config.shutdownTimeoutSec * 1000)
    hardStop.unref()
    engine.shutdown().then(() => {
      logger.flush()
      process.exit(0)
    }, (err: unknown) => {
      logger.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

void main()
