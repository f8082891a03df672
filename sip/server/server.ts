/**
 * The server: the network side (sip-network.ts: transports, parsing, transactions, admission)
 * wired to the application side (drachtio-application.ts: the drachtio-srf clients and the
 * UAS/UAC/proxy work done for them), with one set of metrics, and start-up/teardown order.
 */
import type { Logger } from 'pino'
import pino from 'pino'
import type { Registry } from 'prom-client'
import { type ParseLimits, DEFAULT_LIMITS } from './message.ts'
import type { Transport } from './transport.ts'
import { type Timers, DEFAULT_TIMERS } from './transaction-layer.ts'
import type { AppConnection, ControlServer } from './drachtio-protocol.ts'
import { createMetrics, type SipMetrics } from './metrics.ts'
import type { SourceLimits } from './rate-limit.ts'
import type { OverloadOptions } from './overload.ts'
import { SipNetwork } from './sip-network.ts'
import { DrachtioApplications } from './drachtio-application.ts'


export interface CoreOptions {
  sipHost: string
  sipPort: number
  externalAddress?: string
  controlHost: string
  controlPort: number
  secret: string
  logger?: Logger
  registry?: Registry
  /** One limit for every new transaction per source (older option; `sourceLimits` splits INVITE from the rest). */
  maxTransactionsPerSourcePerSecond?: number
  sourceLimits?: SourceLimits
  timers?: Timers
  limits?: ParseLimits
  overload?: OverloadOptions
}

export class SipCore {
  readonly log: Logger
  readonly metrics: SipMetrics
  readonly network: SipNetwork
  readonly apps: DrachtioApplications

  constructor(readonly opts: CoreOptions) {
    this.log = opts.logger ?? pino({ level: 'silent' })
    this.metrics = createMetrics(opts.registry, { dialogs: () => this.apps.dialogs.size, apps: () => this.apps.authenticatedApps().length })
    this.network = new SipNetwork({
      sipHost: opts.sipHost,
      sipPort: opts.sipPort,
      externalAddress: opts.externalAddress,
      logger: this.log,
      metrics: this.metrics,
      timers: opts.timers ?? DEFAULT_TIMERS,
      limits: opts.limits ?? DEFAULT_LIMITS,
      maxTransactionsPerSourcePerSecond: opts.maxTransactionsPerSourcePerSecond,
      sourceLimits: opts.sourceLimits,
      overload: opts.overload,
    })
    this.apps = new DrachtioApplications(this.network, opts.secret)
    this.network.attach(this.apps)
  }

  get transport(): Transport { return this.network.transport }
  get control(): ControlServer { return this.apps.control }

  authenticatedApps(): AppConnection[] { return this.apps.authenticatedApps() }

  async start(): Promise<void> {
    await this.network.listen()
    await this.apps.control.listen(this.opts.controlHost, this.opts.controlPort)
  }

  async stop(): Promise<void> {
    this.network.stopAdmission()
    this.apps.inviteGate?.close()
    this.apps.dropDialogs()
    this.network.tl.shutdown()
    this.apps.proxy.shutdown()
    await this.apps.control.close()
    await this.network.close()
  }
}
