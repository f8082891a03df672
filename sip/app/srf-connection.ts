import Srf from 'drachtio-srf'
import type { Logger } from 'pino'
import { Gauge, Counter, type Registry } from 'prom-client'

/** The part of drachtio-srf's (untyped) WireProtocol that stop() must reach. */
interface WireProtocolRetry {
  closing: boolean
  reconnectVars?: { retryTimer: NodeJS.Timeout | null }
}

/**
 * Whether a dialog is still up. `connected` is drachtio-srf's own flag (set
 * false by destroy() and by a BYE from the far end) but is missing from its typings.
 */
function isConnected(dialog: Srf.Dialog): boolean {
  return (dialog as Srf.Dialog & { connected?: boolean }).connected !== false
}

/** Where the drachtio-srf app connects: the embedded server or a real drachtio-server. */
export interface DrachtioTarget {
  host: string
  port: number
  secret: string
}

/**
 * Decides what happens to a new INVITE once the app has accepted it for
 * processing (not draining). Later layers (routing, trunks, agents) plug in
 * here; the handler must answer `res` one way or another.
 */
export type InviteHandler = (req: Srf.SrfRequest, res: Srf.SrfResponse, calls: LiveCalls) => Promise<void>

/** The live dialogs this node owns, so a drain can end every one of them with BYE. */
export interface LiveCalls {
  add(callId: string, dialog: Srf.Dialog): void
  readonly size: number
}

export interface SrfConnectionOptions {
  target: DrachtioTarget
  logger: Logger
  registry: Registry
  /** How long start() waits for the first successful connect. */
  connectTimeoutMs?: number
}

/**
 * This node's connection to drachtio (the embedded sip/server or a real
 * drachtio-server) through drachtio-srf: connects and retries, keeps track of
 * the live dialogs (active-calls gauge, drain), refuses new calls with 503
 * while draining, and hands everything else to the installed InviteHandler
 * (SipApplication's inbound router). No telephony logic lives here.
 */
export class SrfConnection {
  readonly srf = new Srf()
  private connectedTo: string | null = null
  private draining = false
  private readonly dialogs = new Map<string, Srf.Dialog>()
  /** Map size at which add() next prunes ended dialogs: doubling keeps the prune amortised O(1) per call, not a scan of every dialog per INVITE. */
  private pruneAt = 1024
  private inviteHandler: InviteHandler
  private readonly log: Logger
  private readonly invites: Counter<'outcome'>
  private readonly liveCalls: LiveCalls
  private readonly drainHooks: Array<() => Promise<void>> = []

  constructor(private readonly opts: SrfConnectionOptions) {
    this.log = opts.logger
    // Until routing is installed there is nothing to reach: RFC 3261 §21.4.5.
    this.inviteHandler = async (_req, res) => { res.send(404, 'No Route', {}) }
    const self = this
    this.liveCalls = {
      add: (callId, dialog) => {
        // Prune here too, so ended dialogs do not pile up on a node nobody polls for /health or /metrics.
        if (self.dialogs.size >= self.pruneAt) self.pruneAt = Math.max(1024, 2 * self.liveDialogs())
        self.dialogs.set(callId, dialog)
        dialog.on('destroy', () => { if (self.dialogs.get(callId) === dialog) self.dialogs.delete(callId) })
      },
      get size() { return self.liveDialogs() },
    }
    new Gauge({
      name: 'callplane_active_calls', help: 'Calls with a confirmed or early dialog on this node', registers: [opts.registry],
      collect() { this.set(self.liveDialogs()) },
    })
    this.invites = new Counter({ name: 'callplane_sip_app_invites_total', help: 'New INVITEs seen by the app, by outcome', labelNames: ['outcome'], registers: [opts.registry] })

    this.srf.on('connect', (err: Error | null, hostport: string) => {
      if (err) return
      this.connectedTo = hostport
      this.log.info({ hostport }, 'connected to drachtio server')
    })
    // The agent reconnects by itself; we only track state for /health.
    this.srf.on('close' as 'disconnect', () => {
      if (this.connectedTo) this.log.warn('disconnected from drachtio server')
      this.connectedTo = null
    })
    this.srf.on('error', (err: Error) => this.log.warn({ err: err.message }, 'drachtio connection error'))

    this.srf.invite((req, res) => { void this.onInvite(req, res) })
  }

  setInviteHandler(handler: InviteHandler): void {
    this.inviteHandler = handler
  }

  get connected(): boolean {
    return this.connectedTo !== null
  }

  get connectedHostport(): string | null {
    return this.connectedTo
  }

  /**
   * Our SIP address ("host:port") as the server reported it on connect
   * ("udp/127.0.0.1:5060,tcp/..."): what goes into Contact and From headers.
   */
  get sipAddress(): string | null {
    if (!this.connectedTo) return null
    const first = this.connectedTo.split(',').map((s) => s.trim()).find((s) => s.startsWith('udp/')) ?? this.connectedTo.split(',')[0]!
    return first.replace(/^[a-z]+\//i, '')
  }

  /** Counts a dialog this node placed (outbound legs) among its live calls: metrics and drain. */
  trackDialog(callId: string, dialog: Srf.Dialog): void {
    this.liveCalls.add(callId, dialog)
  }

  /** Runs before the live dialogs are ended on drain (the call layer ends its calls with complete records). */
  onDrain(hook: () => Promise<void>): void {
    this.drainHooks.push(hook)
  }

  get activeCalls(): number {
    return this.liveDialogs()
  }

  /**
   * Drops the dialogs that have ended and counts the rest. drachtio-srf emits
   * 'destroy' only when the far end sends BYE; a dialog we end ourselves
   * (API or agent hangup, transfer, a failed leg) just turns `connected`
   * false once its BYE completes, so that is what decides.
   */
  private liveDialogs(): number {
    for (const [callId, dialog] of this.dialogs) {
      if (!isConnected(dialog)) this.dialogs.delete(callId)
    }
    return this.dialogs.size
  }

  get isDraining(): boolean {
    return this.draining
  }

  async start(): Promise<void> {
    const { host, port, secret } = this.opts.target
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`could not connect to drachtio at ${host}:${port}`)), this.opts.connectTimeoutMs ?? 10_000)
      this.srf.once('connect', (err: Error | null) => {
        clearTimeout(timer)
        if (err) reject(err)
        else resolve()
      })
      this.srf.connect({ host, port, secret })
    })
  }

  private async onInvite(req: Srf.SrfRequest, res: Srf.SrfResponse): Promise<void> {
    if (this.draining) {
      this.invites.inc({ outcome: 'refused_draining' })
      // RFC 3261 §21.5.4: the node is going away; another may take the call.
      res.send(503, 'Service Unavailable', { headers: { 'Retry-After': '5' } })
      return
    }
    this.invites.inc({ outcome: 'accepted' })
    try {
      await this.inviteHandler(req, res, this.liveCalls)
    } catch (err) {
      this.log.error({ err, callId: req.get('Call-ID') }, 'invite handler failed')
      if (!res.finalResponseSent) res.send(500, 'Server Internal Error', {})
    }
  }

  /** Stops taking calls and ends every live one with BYE. */
  async drain(): Promise<void> {
    this.draining = true
    for (const hook of this.drainHooks) await hook().catch((err: unknown) => this.log.warn({ err }, 'drain hook failed'))
    // Only dialogs still up: BYE to one already ended would wait for an answer that never comes.
    this.liveDialogs()
    const live = [...this.dialogs.entries()]
    await Promise.allSettled(live.map(async ([callId, dialog]) => {
      this.log.info({ callId }, 'ending call for shutdown')
      await dialog.destroy()
    }))
    this.dialogs.clear()
  }

  async stop(): Promise<void> {
    this.srf.removeAllListeners('connect')
    try { this.srf.disconnect() } catch { /* already closed */ }
    // With no live socket, drachtio-srf's disconnect() throws before it marks
    // the wire protocol as closing, so its reconnect timer would keep retrying
    // (and keep the process alive) forever. Stop it explicitly.
    const wp = (this.srf as unknown as { _app?: { client?: { wp?: WireProtocolRetry } } })._app?.client?.wp
    if (wp) {
      wp.closing = true
      if (wp.reconnectVars?.retryTimer) clearTimeout(wp.reconnectVars.retryTimer)
    }
    this.connectedTo = null
  }
}
