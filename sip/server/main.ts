/**
 * Standalone entry: `npm run sip-server`. A drop-in for drachtio-server that
 * any drachtio-srf application can connect to.
 */
import pino from 'pino'
import { createSipServer } from './index.ts'

const logger = pino({ level: process.env.LOG_LEVEL ?? 'info' })
const server = createSipServer({
  sipHost: process.env.SIP_HOST ?? '0.0.0.0',
  sipPort: Number(process.env.SIP_PORT ?? 5060),
  externalAddress: process.env.SIP_EXTERNAL_ADDRESS || undefined,
  controlHost: process.env.DRACHTIO_HOST ?? '127.0.0.1',
  controlPort: Number(process.env.DRACHTIO_PORT ?? 9022),
  secret: process.env.DRACHTIO_SECRET ?? 'cymru',
  logger,
  maxTransactionsPerSourcePerSecond: process.env.SIP_MAX_TPS_PER_SOURCE ? Number(process.env.SIP_MAX_TPS_PER_SOURCE) : undefined,
  // Same variables and defaults as the engine (config/config.ts).
  sourceLimits: {
    invitesPerSecond: Number(process.env.SIP_INVITE_RATE_PER_SOURCE ?? 20),
    requestsPerSecond: Number(process.env.SIP_REQUEST_RATE_PER_SOURCE ?? 200),
    burstSeconds: Number(process.env.SIP_RATE_BURST ?? 2),
  },
})

await server.start()
const a = server.addresses
logger.info({ sip: [...a.udp, ...a.tcp], control: a.control }, 'sip server listening')
console.log(`sip-server listening on ${[...a.udp, ...a.tcp].join(' ')}; drachtio control on ${a.control}`)

let stopping = false
const shutdown = (): void => {
  if (stopping) return
  stopping = true
  server.stop().then(() => process.exit(0), () => process.exit(1))
}
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
