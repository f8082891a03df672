import { hostname } from 'node:os'
import type { Logger } from 'pino'
import type { Store } from '../../store/index.ts'
import type { SrfConnection } from './srf-connection.ts'
import { DigestAuthenticator, type DigestAlgorithm, type LockoutPolicy } from './digest-auth.ts'
import { Registrar } from './registrar.ts'
import { SipDirectory } from './sip-directory.ts'
import { TrunkIdentifier } from './trunk-identifier.ts'
import { ConcurrencyLimiter } from './concurrency-limiter.ts'
import { OutboundDialer } from './outbound-dialer.ts'
import { InboundRouter } from './inbound-router.ts'
import { ActiveCalls } from './call-session.ts'
import { SipCallSignalling, type CallSignalling } from './call-signalling.ts'
import { finishStaleCalls } from './call-records.ts'
import { OutboundRegistrations, type OutboundRegistrationsOptions } from './outbound-registration.ts'
import { RegistrarKeepalive } from './registrar-keepalive.ts'
import type { CallProgramHost, MediaBinder } from './media-binding.ts'

export type { CallSignalling, OriginateInput } from './call-signalling.ts'
export { CallControlError } from './call-control-error.ts'
export type { MediaBinder, MediaLeg, CallContext, CallProgramHost } from './media-binding.ts'
export type { TransferRequest, TransferResult } from './transfer.ts'

export interface SipApplicationOptions {
  store: Store
  logger: Logger
  /** Stable across restarts of this node, so its stale calls are found again (default NODE_ID or the hostname). */
  nodeId?: string
  lockout?: Partial<LockoutPolicy>
  /**
   * Digest algorithms offered in challenges, in order. Default MD5 only:
   * baresip 1.x / libre reject a challenge set containing SHA-256 (ENOSYS) and
   * sipp 3.6 cannot answer it. ['SHA-256', 'MD5'] offers both (RFC 8760).
   * Responses are verified for whichever algorithm the client used among these.
   */
  digestAlgorithms?: DigestAlgorithm[]
  nonceTtlMs?: number
  accountCallLimit?: number | null
  ringTimeoutMs?: number
  /** How long a carrier may stay silent (no 1xx) before we fail over. */
  attemptTimeoutMs?: number
  registrar?: { minExpiresSec?: number; maxExpiresSec?: number; defaultExpiresSec?: number }
  /** Outbound registrations (trunks registering to carriers). Default true. */
  outboundRegistrations?: boolean
  /** Retry, scan, lease and response timing of outbound registrations (defaults in outbound-registration.ts). */
  outboundRegistrationTiming?: Pick<OutboundRegistrationsOptions, 'backoffMs' | 'maxBackoffMs' | 'rescanMs' | 'leaseMs' | 'responseTimeoutMs'>
  /** Expired bindings are swept at this interval. */
  sweepIntervalMs?: number
  /** OPTIONS keep-alive to registered contacts (NAT pinholes, liveness); null disables. */
  keepalive?: { intervalMs?: number; probeTimeoutMs?: number; maxMisses?: number } | null
}

/**
 * The telephony application on top of SrfConnection: registrar, inbound routing,
 * outbound dialing, call control, outbound registrations and call-record
 * recovery, all over the shared PostgreSQL store.
 */
export class SipApplication {
  readonly active = new ActiveCalls()
  readonly limiter = new ConcurrencyLimiter()
  readonly directory: SipDirectory
  readonly digest: DigestAuthenticator
  readonly registrar: Registrar
  readonly dialer: OutboundDialer
  readonly router: InboundRouter
  readonly calls: CallSignalling
  readonly outboundRegistrations: OutboundRegistrations
  readonly nodeId: string
  readonly keepalive: RegistrarKeepalive
  private binder: MediaBinder | null = null
  private programs: CallProgramHost | null = null
  private sweepTimer: NodeJS.Timeout | null = null
  private readonly log: Logger

  private constructor(readonly srfConnection: SrfConnection, private readonly opts: SipApplicationOptions, secret: Buffer) {
    const store = opts.store
    this.log = opts.logger
    this.nodeId = opts.nodeId ?? process.env.NODE_ID ?? hostname()
    const localHost = () => srfConnection.sipAddress ?? '127.0.0.1'
    this.digest = new DigestAuthenticator({ secret, algorithms: opts.digestAlgorithms ?? ['MD5'], ...(opts.lockout ? { lockout: opts.lockout } : {}), ...(opts.nonceTtlMs ? { nonceTtlMs: opts.nonceTtlMs } : {}) })
    this.directory = new SipDirectory(store.sipDirectory)
    this.registrar = new Registrar({ store, digest: this.digest, logger: this.log.child({ part: 'registrar' }), nodeId: this.nodeId, ...opts.registrar })
    const identifier = new TrunkIdentifier(this.digest, [], this.directory)
    this.dialer = new OutboundDialer({
      store, directory: this.directory, registrar: this.registrar, limiter: this.limiter, logger: this.log.child({ part: 'dialer' }), localHost,
      ...(opts.attemptTimeoutMs ? { attemptTimeoutMs: opts.attemptTimeoutMs } : {}),
    })
    const media = () => this.binder
    const programs = () => this.programs
    this.router = new InboundRouter({
      srf: srfConnection.srf, store, directory: this.directory, identifier, dialer: this.dialer, limiter: this.limiter, active: this.active, media, programs,
      logger: this.log.child({ part: 'inbound' }), nodeId: this.nodeId, accountCallLimit: opts.accountCallLimit ?? null,
      ...(opts.ringTimeoutMs ? { ringTimeoutMs: opts.ringTimeoutMs } : {}),
    })
    this.calls = new SipCallSignalling({
      srf: srfConnection.srf, store, dialer: this.dialer, active: this.active, media, programs, logger: this.log.child({ part: 'calls' }), nodeId: this.nodeId,
      localHost, accountCallLimit: opts.accountCallLimit ?? null, track: (id, d) => srfConnection.trackDialog(id, d),
    })
    this.keepalive = new RegistrarKeepalive({
      srf: srfConnection.srf, store, logger: this.log.child({ part: 'keepalive' }), nodeId: this.nodeId, localHost, ...(opts.keepalive ?? {}),
    })
    this.outboundRegistrations = new OutboundRegistrations({
      srf: srfConnection.srf, store, logger: this.log.child({ part: 'outbound-registration' }), nodeId: this.nodeId, localHost,
      ...opts.outboundRegistrationTiming,
    })
  }

  /** Builds the application, finishes call records a previous run left live, and installs it into `srfConnection`. */
  static async install(srfConnection: SrfConnection, opts: SipApplicationOptions): Promise<SipApplication> {
    const secret = await opts.store.registrarBindings.nonceSecret()
    const app = new SipApplication(srfConnection, opts, secret)
    await finishStaleCalls(opts.store.calls, app.nodeId, app.log)
    // Their groupcalls too: the dials died with the calls.
    await opts.store.groupcalls.endStale(app.nodeId)
    app.registrar.install(srfConnection.srf)
    srfConnection.setInviteHandler(app.router.handle)
    srfConnection.onDrain(() => app.drain())
    app.sweepTimer = setInterval(() => { app.registrar.sweep().catch((err: unknown) => app.log.warn({ err }, 'binding sweep failed')) }, opts.sweepIntervalMs ?? 30_000)
    app.sweepTimer.unref()
    if (opts.outboundRegistrations !== false) await app.outboundRegistrations.start()
    if (opts.keepalive !== null) app.keepalive.start()
    return app
  }

  /** The media engine (or agent runtime) that answers and offers SDP for calls we terminate. */
  setMediaBinder(binder: MediaBinder | null): void {
    this.binder = binder
  }

  /** Runs flows and webhook apps on answered calls (call/flow's CallPrograms). */
  setCallPrograms(host: CallProgramHost | null): void {
    this.programs = host
  }

  /** Ends every live call with a complete record (SIGTERM drain). */
  async drain(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer)
    this.sweepTimer = null
    this.keepalive.stop()
    await this.outboundRegistrations.stop()
    await Promise.allSettled(this.active.all().map((c) => c.hangup('system', 'node-shutdown')))
  }
}
