import type { FastifyInstance } from 'fastify'
import { Counter, Registry, collectDefaultMetrics } from 'prom-client'
import type { Config } from './config/config.ts'
import type { Logger } from './config/logger.ts'
import { openDatabase, type Database } from './store/database.ts'
import { migrate } from './store/migrator.ts'
import { bootstrap, DEMO_NUMBER } from './store/bootstrap.ts'
import { reachableSipHost, sipUri, splitHostPort } from './config/reachable-address.ts'
import { createSipServer, type SipServer } from './sip/server/index.ts'
import { SrfConnection, type DrachtioTarget } from './sip/app/srf-connection.ts'
import { buildApiServer } from './control-api/app.ts'
import { HealthRegistry } from './control-api/health.ts'
import { join } from 'node:path'
import { createStore, type Store } from './store/index.ts'
import { SecretBox } from './store/secrets.ts'
import { v1Routes } from './control-api/routes/v1.ts'
import { CallControlSlot } from './call/call-control.ts'
import { OutboundUrlPolicy } from './config/outbound-url-policy.ts'
import { WebhookWorker } from './control-api/webhook-worker.ts'
import { SipApplication } from './sip/app/index.ts'
import { createApiCallControl } from './call/api-call-control.ts'
import { ScheduledCalls } from './call/outbound/scheduled-calls.ts'
import { Sequences } from './call/outbound/sequences.ts'
import { callControlAcrossNodes, serveRelayedCalls } from './call/remote-call-control.ts'
import { NodeRelay } from './store/node-relay.ts'
import type { MediaEngine } from './media/media-engine.ts'
import { RtpengineAnchor } from './media/rtpengine/anchor.ts'
import { startMediaPlane } from './call/plane/start-media-plane.ts'
import { createCallPrograms } from './call/flow/index.ts'
import { Acd } from './call/queues/acd.ts'
import { AgentPresence } from './call/queues/agent-presence.ts'
import type { WorkerMediaPlanes } from './call/plane/worker-planes.ts'
import { registerAgentMetrics } from './agent/metrics.ts'
import { JobScheduler, systemClock, type Clock } from './store/job-scheduler.ts'
import { CampaignDialer } from './call/outbound/campaign-dialer.ts'

/** What a started engine tells its operator: one line per listener. */
export interface EngineListeners {
  sip: string[]
  drachtio: string
  http: string
  database: string
  rtp: string
  /** `sip:1000@<reachable address>:<port>` while the demo number answers with an agent; null otherwise. */
  demo: string | null
}

/**
 * The composition root: builds every component from one Config, starts them
 * in dependency order (store → SIP server → SIP app → API), and tears them down
 * in reverse with a drain that ends live calls first.
 */
export interface EngineParts {
  config: Config
  logger: Logger
  registry: Registry
  db: Database
  /** Repositories, outbox and event bus. sip/app records calls through store.calls. */
  store: Store
  /** Null when the app drives an external drachtio-server (DRACHTIO_URL). */
  sipServer: SipServer | null
  srfConnection: SrfConnection
  sipApplication: SipApplication
  /** In-process media, or MEDIA_WORKERS worker threads each running a media plane. */
  media: MediaEngine | WorkerMediaPlanes
  /** The rtpengine ng client when RTPENGINE_NG anchors media; null otherwise. */
  rtpengine: RtpengineAnchor | null
  /** The API's seam to sip/app; answers 503 for actions nothing implements. */
  callControl: CallControlSlot
  api: FastifyInstance
  webhookWorker: WebhookWorker
  /** Durable jobs (store/job-scheduler.ts): campaigns, scheduled calls and sequences register their kinds on it. */
  scheduler: JobScheduler
  /** Business time for the scheduler and what it runs (tests move it). */
  clock: Clock
  listeners: EngineListeners
  /** Set only on the first start without BOOTSTRAP_API_KEY: printed once. */
  generatedApiKey: string | undefined
  /** The parts' stops in start-up order (shutdown unwinds them). */
  stops: StopOrder
}

export class Engine {
  private draining = false
  private stopped = false
  readonly config: Config
  readonly logger: Logger
  readonly registry: Registry
  readonly db: Database
  readonly store: Store
  readonly sipServer: SipServer | null
  readonly srfConnection: SrfConnection
  readonly sipApplication: SipApplication
  readonly media: MediaEngine | WorkerMediaPlanes
  readonly rtpengine: RtpengineAnchor | null
  readonly callControl: CallControlSlot
  readonly api: FastifyInstance
  readonly webhookWorker: WebhookWorker
  readonly scheduler: JobScheduler
  readonly clock: Clock
  readonly listeners: EngineListeners
  readonly generatedApiKey: string | undefined
  private readonly stops: StopOrder

  private constructor(parts: EngineParts) {
    this.config = parts.config
    this.logger = parts.logger
    this.registry = parts.registry
    this.db = parts.db
    this.store = parts.store
    this.sipServer = parts.sipServer
    this.srfConnection = parts.srfConnection
    this.sipApplication = parts.sipApplication
    this.media = parts.media
    this.rtpengine = parts.rtpengine
    this.callControl = parts.callControl
    this.api = parts.api
    this.webhookWorker = parts.webhookWorker
    this.scheduler = parts.scheduler
    this.clock = parts.clock
    this.listeners = parts.listeners
    this.generatedApiKey = parts.generatedApiKey
    this.stops = parts.stops
  }

  /** `opts.clock`: the scheduler's business time (tests pass a SettableClock); real time by default. */
  static async start(config: Config, logger: Logger, opts: { clock?: Clock } = {}): Promise<Engine> {
    const registry = new Registry()
    collectDefaultMetrics({ register: registry })
    const health = new HealthRegistry()
    // Start-up order, declared once: each part's stop is pushed as it starts; a failed start and shutdown() both unwind it in reverse.
    const stops = new StopOrder()
    try {
      const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger: logger.child({ component: 'store' }) })
      stops.push('store', () => db.close())
      await migrate(db, logger.child({ component: 'store' }))
      const boot = await bootstrap(db, config.bootstrapApiKey, logger.child({ component: 'store' }))
      health.register('store', async () => ({ status: (await db.ping()) ? 'up' : 'down', detail: { mode: db.mode } }))
      const store = createStore(db, SecretBox.fromEnvOrFile(config.secretsKey, join(config.dataDir, 'secrets.key')), logger.child({ component: 'store' }))
      await store.outbox.start()
      stops.push('outbox', () => store.outbox.stop())
      const callControl = new CallControlSlot()
      // Created now so the parts below register their job kinds; it starts claiming once the engine is up.
      const clock = opts.clock ?? systemClock
      const scheduler = new JobScheduler({
        jobs: store.jobs, nodeId: config.nodeId, clock, logger, leaseMs: config.jobLeaseMs, pollMs: config.jobPollMs, registry,
      })

      let sipServer: SipServer | null = null
      let target: DrachtioTarget
      if (config.drachtioUrl) {
        target = { ...splitHostPort(config.drachtioUrl), secret: config.drachtioSecret }
      } else {
        sipServer = createSipServer({
          sipHost: config.sipHost,
          sipPort: config.sipPort,
          ...(config.sipExternalAddress ? { externalAddress: config.sipExternalAddress } : {}),
          controlHost: '127.0.0.1',
          controlPort: config.drachtioPort,
          secret: config.drachtioSecret,
          sourceLimits: { invitesPerSecond: config.sipInviteRatePerSource, requestsPerSecond: config.sipRequestRatePerSource, burstSeconds: config.sipRateBurstSec },
          logger: logger.child({ component: 'sip-server' }),
          registry,
        })
        await sipServer.start()
        const server = sipServer
        stops.push('sip-server', () => server.stop())
        target = { host: '127.0.0.1', port: splitHostPort(sipServer.addresses.control).port, secret: config.drachtioSecret }
        health.register('sip-server', () => ({ status: 'up', detail: { ...server.addresses, connectedApps: server.connectedApps } }))
      }

      const srfConnection = new SrfConnection({ target, logger: logger.child({ component: 'sip-app' }), registry })
      await srfConnection.start()
      stops.push('srf-connection', () => srfConnection.stop())
      // Registrar, routing, outbound calls, call control; finishes records a previous run left live.
      const sipApplication = await SipApplication.install(srfConnection, { store, nodeId: config.nodeId, logger: logger.child({ component: 'sip-app' }) })
      // The "SIP bridge" (Fonella's SIP bridge health): down while a trunk that should be registered to its carrier is not.
      health.register('sip-bridge', () => sipApplication.outboundRegistrations.health())
      // Opus legs decode and encode at 16 kHz: wideband is what the STT and
      // TTS adapters use, and it skips 48 kHz resampling plus libopus's
      // costlier fullband path (bench/media-hotpath.ts). RFC 7587 §4.1 keeps
      // the RTP clock at 48000 whatever the codec's internal rate.
      const engineOptions = {
        rtpPortMin: config.rtpPortMin, rtpPortMax: config.rtpPortMax,
        sessionDefaults: { opusSampleRate: 16000 as const },
        ...(config.sipExternalAddress ? { externalAddress: config.sipExternalAddress } : config.sipHost !== '0.0.0.0' ? { externalAddress: config.sipHost } : {}),
      }
      // Tenants' URLs (play, agent HTTP tools) may not reach this host's network,
      // except in the embedded mode, where local servers are the point.
      const allowPrivateUrls = db.mode === 'embedded'
      const recordingsDir = join(config.dataDir, 'recordings')
      const mediaRoots = [join(config.dataDir, 'media')]
      // Every agent runtime reports its turn waterfall and barge-in latency to /metrics.
      const agentMetrics = registerAgentMetrics(registry)
      stops.push('agent-metrics', async () => agentMetrics.unregister())
      const agentControl = {
        hangup: (id: string, reason?: string) => sipApplication.calls.hangup(id, 'agent', reason),
        // A whisper needs our media on the target first: bridge; else the caller's side is REFERred.
        transfer: async (id: string, to: string, opts?: { whisper?: string }) => { await sipApplication.calls.transfer(id, opts?.whisper ? { mode: 'bridge', to, whisper: opts.whisper } : { mode: 'blind', to }) },
      }
      const anchor = config.rtpengineNg ? new RtpengineAnchor({ ng: config.rtpengineNg }) : undefined
      if (anchor) {
        stops.push('rtpengine', async () => anchor.close())
        health.register('rtpengine', async () => ({ status: (await anchor.ping().catch(() => false)) ? 'up' : 'down', detail: { ng: config.rtpengineNg } }))
      }
      // Scheduled calls and AI callbacks (issue 17) on the scheduler; also what agents' host tools reach (MediaStore.outreach).
      // A re-run waiting on a call another node placed asks whether that node is still there (the relay, set up below, on PostgreSQL).
      const nodeAlive = db.mode === 'postgres' ? (nodeId: string) => (relay ? relay.ping(nodeId) : Promise.resolve(true)) : undefined
      const scheduledCalls = new ScheduledCalls({ store, scheduler, clock, control: () => callControl.current, log: logger, nodeAlive })
      scheduledCalls.start()
      const sequences = new Sequences({ store, scheduler, clock, control: () => callControl.current, log: logger, nodeAlive })
      sequences.start()
      const mediaPlane = await startMediaPlane({
        workers: config.mediaWorkers, engine: engineOptions, registry, store: { ...store, outreach: scheduledCalls }, logger: logger.child({ component: 'media' }), logLevel: config.logLevel,
        anchor, rtpengineNg: config.rtpengineNg, allowPrivateUrls, recordingsDir, mediaRoots, agentMetrics,
        isLocal: (id) => sipApplication.calls.isLocal(id),
        control: () => ({ ...agentControl, lost: (id, reason) => sipApplication.calls.hangup(id, 'system', reason) }),
      })
      stops.push('media', () => mediaPlane.stop())
      sipApplication.setMediaBinder(mediaPlane.binder)
      const localControl = createApiCallControl(sipApplication, mediaPlane.actions, () => callPrograms, store.doNotCall)
      let relay: NodeRelay | null = null
      if (db.mode === 'postgres') {
        // Several nodes may share this database: an action on a call another node holds is relayed there.
        relay = new NodeRelay(db, config.nodeId, logger.child({ component: 'node-relay' }), config.callRelayTimeoutMs)
        await relay.start(serveRelayedCalls(localControl, store.calls))
        const started = relay
        stops.push('node-relay', () => started.stop())
        callControl.install(callControlAcrossNodes(localControl, { nodeId: config.nodeId, relay }))
      } else {
        // Embedded PGlite serves one node: every live call is here.
        callControl.install(localControl)
      }
      // Contact centre: agents' presence (registrations, calls) and the queues' ACD for this node's callers.
      await store.queuecalls.endStale(sipApplication.nodeId).catch((err: unknown) => logger.warn({ err }, 'stale queuecalls could not be ended'))
      const acd = new Acd({ store, nodeId: sipApplication.nodeId, logger: logger.child({ component: 'queues' }) })
      const presence = new AgentPresence({ store, nodeId: sipApplication.nodeId, logger: logger.child({ component: 'queues' }), accountedEnd: (callId) => acd.accountsEndOf(callId) })
      stops.push('queues', async () => { acd.close(); presence.close() })
      // Flows, inline verbs and webhook apps on answered calls (call/flow).
      const callPrograms = createCallPrograms({
        store, control: () => callControl.current, logger: logger.child({ component: 'flows' }), nodeId: sipApplication.nodeId,
        appTimeoutMs: config.appTimeoutMs, allowPrivateUrls, acd,
      })
      stops.push('call-programs', () => callPrograms.close())
      // Runs a previous life of this node left `running` (kill -9) end now, as its call records did.
      await store.activeflows.endStale(sipApplication.nodeId).catch((err: unknown) => logger.warn({ err }, 'stale activeflows could not be ended'))
      sipApplication.setCallPrograms(callPrograms)
      // Outbound campaigns: one scheduler job per target attempt (call/outbound/campaign-dialer.ts).
      const nodes = relay
      const campaigns = new CampaignDialer({
        store, control: () => callControl.current, scheduler, log: logger,
        // A re-run after another node's lease expired asks whether that node is still there.
        ...(nodes ? { nodeAlive: (nodeId: string) => nodes.ping(nodeId) } : {}),
      })
      campaigns.start()
      health.register('media', () => mediaPlane.health())
      const media = mediaPlane.media
      health.register('sip-app', () => ({
        status: srfConnection.connected ? 'up' : 'down',
        detail: { drachtio: srfConnection.connectedHostport ?? `${target.host}:${target.port} (not connected)`, activeCalls: srfConnection.activeCalls },
      }))

      // Where a person dials the demo: the address other machines can reach (not 0.0.0.0), the port SIP really listens on.
      const sipHostPort = sipServer ? sipServer.addresses.udp[0]?.replace(/^udp:/, '') : srfConnection.sipAddress
      const listening = sipHostPort ? splitHostPort(sipHostPort) : null
      const sipListenPort = listening?.port || config.sipPort
      const sipListenHost = listening?.host ?? config.sipHost
      const demoHost = reachableSipHost({ externalAddress: config.sipExternalAddress, bindHost: sipServer ? config.sipHost : sipListenHost })
      const demoSipUri = async (): Promise<string | null> => {
        const n = await store.numbers.findByNumber(DEMO_NUMBER)
        return n?.target.type === 'agent' ? sipUri(DEMO_NUMBER, demoHost, sipListenPort) : null
      }

      // Status callbacks: checked when set (a refused address is a 400), fetched through the same policy.
      const tenantUrls = new OutboundUrlPolicy({ allowPrivate: allowPrivateUrls })
      stops.push('tenant-url-policy', () => tenantUrls.close())
      let engine: Engine | undefined
      const api = await buildApiServer({
        demoSipUri,
        logger: logger.child({ component: 'control-api' }),
        registry,
        health,
        isDraining: () => engine?.draining ?? false,
        registerRoutes: v1Routes({ store, callControl, programs: callPrograms, campaigns, allowInsecureWebhooks: db.mode === 'embedded', urlPolicy: tenantUrls, scheduledCalls, sequences }),
      })
      await api.listen({ host: config.httpHost, port: config.httpPort })
      stops.push('control-api', () => api.close())
      const webhookWorker = new WebhookWorker({
        store, logger: logger.child({ component: 'webhooks' }),
        retryScheduleMs: config.webhookRetrySchedule, disableAfterMs: config.webhookDisableAfterMs, urlPolicy: tenantUrls,
        deliveries: new Counter({ name: 'callplane_webhook_deliveries_total', help: 'Webhook delivery attempts by outcome', labelNames: ['outcome'] as const, registers: [registry] }),
      })
      webhookWorker.start()
      stops.push('webhooks', () => webhookWorker.stop())
      scheduler.start()
      stops.push('jobs', () => scheduler.stop())
      const httpAddr = api.server.address()
      const httpPort = typeof httpAddr === 'object' && httpAddr ? httpAddr.port : config.httpPort

      const listeners: EngineListeners = {
        sip: sipServer ? [...sipServer.addresses.udp, ...sipServer.addresses.tcp] : [`via drachtio-server ${config.drachtioUrl}`],
        drachtio: sipServer ? sipServer.addresses.control : `${target.host}:${target.port}`,
        http: `http://${config.httpHost === '0.0.0.0' ? '127.0.0.1' : config.httpHost}:${httpPort}`,
        database: db.mode === 'embedded' ? `embedded PGlite in ${config.dataDir}/pgdata` : 'PostgreSQL (DATABASE_URL)',
        rtp: `${config.rtpPortMin}-${config.rtpPortMax}${config.rtpengineNg ? ` via rtpengine ${config.rtpengineNg}` : ''}`,
        demo: await demoSipUri().catch(() => null),
      }
      engine = new Engine({
        config, logger, registry, db, store, sipServer, srfConnection, sipApplication, media, rtpengine: anchor ?? null, callControl, api, webhookWorker, scheduler, clock, listeners,
        generatedApiKey: boot.generatedApiKey, stops,
      })
      return engine
    } catch (err) {
      await stops.unwind(logger)
      throw err
    }
  }

  get isDraining(): boolean {
    return this.draining
  }

  /**
   * SIGTERM path: refuse new calls (503), end live calls with BYE, then close
   * the API, the SIP side and finally the store so the last call records land.
   */
  async shutdown(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.draining = true
    const log = this.logger.child({ component: 'engine' })
    log.info({ activeCalls: this.srfConnection.activeCalls }, 'draining')
    // No new scheduled dials while the calls drain; runs in progress hand their jobs back.
    await this.scheduler.stop()
    await this.srfConnection.drain()
    await this.stops.unwind(log)
    log.info('stopped')
  }
}

/**
 * The engine's parts in the order they started, each with its stop. Unwinding
 * stops them newest first (webhooks, API, media, SIP app, SIP server, outbox,
 * store last, so the last call records land); a part that fails to stop is
 * logged and the rest still stop. Unwinding twice stops nothing twice.
 */
export class StopOrder {
  private readonly parts: Array<{ name: string; stop: () => Promise<void> }> = []

  push(name: string, stop: () => Promise<void>): void {
    this.parts.push({ name, stop })
  }

  async unwind(log: Pick<Logger, 'warn'>): Promise<void> {
    while (this.parts.length) {
      const part = this.parts.pop()!
      try {
        await part.stop()
      } catch (err) {
        log.warn({ err, part: part.name }, 'part failed to stop')
      }
    }
  }
}
