/**
 * Embedded SIP server speaking the drachtio wire protocol, so drachtio-srf
 * applications run on it unmodified. Imports nothing from the rest of the repo.
 */
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import { SipCore } from './server.ts'
import type { Timers } from './transaction-layer.ts'
import { DEFAULT_OVERLOAD, type OverloadOptions } from './overload.ts'
import type { SourceLimits } from './rate-limit.ts'

export { NO_SOURCE_LIMITS, type SourceLimits } from './rate-limit.ts'

export interface SipServerOptions {
  sipHost: string
  sipPort: number
  externalAddress?: string
  controlHost?: string
  controlPort: number
  secret: string
  logger?: Logger
  registry?: Registry
  /** One limit for all new transactions per source; prefer `sourceLimits`. */
  maxTransactionsPerSourcePerSecond?: number
  /** Per-source limits on new out-of-dialog requests (default: none; the engine sets them from config). */
  sourceLimits?: SourceLimits
  /** RFC 3261 timer base values (ms); tests may shorten them. */
  timers?: Timers
  /** Overload thresholds (see overload.ts). */
  overload?: Partial<OverloadOptions>
}

export interface SipServer {
  start(): Promise<void>
  stop(): Promise<void>
  readonly addresses: { udp: string[]; tcp: string[]; control: string }
  readonly connectedApps: number
}

export function createSipServer(opts: SipServerOptions): SipServer {
  const core = new SipCore({
    sipHost: opts.sipHost,
    sipPort: opts.sipPort,
    externalAddress: opts.externalAddress,
    controlHost: opts.controlHost ?? '127.0.0.1',
    controlPort: opts.controlPort,
    secret: opts.secret,
    logger: opts.logger,
    registry: opts.registry,
    maxTransactionsPerSourcePerSecond: opts.maxTransactionsPerSourcePerSecond,
    sourceLimits: opts.sourceLimits,
    timers: opts.timers,
    overload: { ...DEFAULT_OVERLOAD, ...opts.overload },
  })
  let started = false
  return {
    async start() {
      await core.start()
      started = true
    },
    async stop() {
      if (!started) return
      started = false
      await core.stop()
    },
    get addresses() {
      const host = opts.controlHost ?? '127.0.0.1'
      return {
        udp: started ? [core.transport.udpAddress] : [],
        tcp: started ? [core.transport.tcpAddress] : [],
        control: `${host.includes(':') ? `[${host}]` : host}:${core.control.port}`,
      }
    },
    get connectedApps() {
      return core.authenticatedApps().length
    },
  }
}
