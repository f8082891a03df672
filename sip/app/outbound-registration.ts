import type Srf from 'drachtio-srf'
import type { Logger } from 'pino'
import type { Store } from '../../store/index.ts'
import type { TrunkDialTarget } from '../../store/trunks.ts'
import { registrarUri, registrationAor, type OutboundRegistrationRecord, type RegistrationOutcome, type RegistrationView } from '../../store/outbound-registrations.ts'

/**
 * Trunks that register to their carrier as a device (RFC 3261 §10.2, the
 * client side): REGISTER with digest credentials (drachtio-srf answers the
 * 401/407), refresh before expiry, exponential back-off after failures,
 * unregister (Expires: 0) when the trunk stops registering or the node stops.
 *
 * Across nodes: one node owns each trunk through a lease in PostgreSQL
 * (store.outboundRegistrations), renewed on every scan; when a node dies its
 * leases lapse and another node's next scan takes the trunks over. The owner
 * writes every attempt's outcome there, so the API and /health on any node
 * show the same state.
 */

export interface OutboundRegistrationsOptions {
  srf: Srf
  store: Store
  logger: Logger
  nodeId: string
  localHost: () => string
  /** First retry delay after a failure; doubles up to maxBackoffMs. */
  backoffMs?: number
  maxBackoffMs?: number
  /** How often the set of registering trunks is re-read and the leases renewed. */
  rescanMs?: number
  /** How long a node holds a trunk without renewing (default 3 scans, at least 30 s). */
  leaseMs?: number
  /**
   * How long to wait for a final response. The SIP stack answers 408 itself
   * after Timer F (64×T1 = 32 s, RFC 3261 §17.1.2.2); this only guards against a stack that never does.
   */
  responseTimeoutMs?: number
}

/** When to refresh a registration that lasts `expiresSec`: halfway for short ones, 60 s early otherwise. */
export function refreshDelaySec(expiresSec: number): number {
  return expiresSec <= 120 ? Math.max(1, Math.floor(expiresSec / 2)) : expiresSec - 60
}

/** Back-off after `failures` consecutive failures. */
export function backoffDelayMs(failures: number, base: number, max: number): number {
  return Math.min(max, base * 2 ** Math.max(0, failures - 1))
}

interface Entry {
  trunkId: string
  timer: NodeJS.Timeout | null
  failures: number
  callId: string
  cseq: number
  expiresSec: number
  running: boolean
  /** The trunk's updatedAt when last read: an edit (new password, host) retries at once. */
  trunkVersion: string
}

/** The "SIP bridge" part of /health: every registration that should be up, across nodes. */
export interface BridgeHealth {
  status: 'up' | 'down'
  detail: Record<string, unknown>
}

export class OutboundRegistrations {
  private readonly entries = new Map<string, Entry>()
  private scanTimer: NodeJS.Timeout | null = null
  private stopped = true
  private readonly log: Logger

  constructor(private readonly opts: OutboundRegistrationsOptions) {
    this.log = opts.logger
  }

  private get repo() { return this.opts.store.outboundRegistrations }
  private get leaseMs(): number { return this.opts.leaseMs ?? Math.max(30_000, 3 * (this.opts.rescanMs ?? 10_000)) }

  async start(): Promise<void> {
    this.stopped = false
    await this.scan()
    this.scanTimer = setInterval(() => { void this.scan().catch((err: unknown) => this.log.warn({ err }, 'outbound registration scan failed')) }, this.opts.rescanMs ?? 10_000)
    this.scanTimer.unref()
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.scanTimer) clearInterval(this.scanTimer)
    const entries = [...this.entries.values()]
    this.entries.clear()
    // Unregister (RFC 3261 §10.2.2) so the carrier stops sending calls to a node that is gone, and free the trunk for another node.
    await Promise.allSettled(entries.map((e) => this.letGo(e)))
  }

  status(trunkId: string): Promise<OutboundRegistrationRecord | null> {
    return this.repo.get(trunkId)
  }

  /** Registrations that should be up and are not make the component (and /health) down. */
  async health(): Promise<BridgeHealth> {
    const views = await this.repo.enabledViews()
    const down = views.filter((v) => v.down)
    return {
      status: down.length ? 'down' : 'up',
      detail: {
        registrations: views.length,
        registered: views.filter((v) => v.state === 'registered').length,
        // Ids and SIP outcome only: /health is unauthenticated.
        down: down.map((v) => ({ trunkId: v.trunkId, state: v.state, lastError: v.lastError ? { status: v.lastError.status, reason: v.lastError.reason } : null })),
      },
    }
  }

  /** Renews this node's leases, picks up trunks that started registering and lets go of those that stopped. */
  async scan(): Promise<void> {
    if (this.stopped) return
    const held = await this.repo.renew(this.opts.nodeId, this.leaseMs)
    const targets = await this.opts.store.trunks.listRegistering()
    const byId = new Map(targets.map((t) => [t.trunk.id, t]))
    for (const [id, e] of this.entries) {
      if (!held.has(id)) {
        // Another node took the trunk over (our lease lapsed, e.g. the database was out of reach): stop quietly.
        if (e.timer) clearTimeout(e.timer)
        this.entries.delete(id)
        this.log.warn({ trunkId: id }, 'outbound registration taken over by another node')
      } else if (!byId.has(id)) {
        this.entries.delete(id)
        await this.letGo(e)
      }
    }
    for (const t of targets) {
      const cur = this.entries.get(t.trunk.id)
      if (cur) {
        if (cur.trunkVersion !== t.trunk.updatedAt) {
          // The trunk was edited: try the new settings now rather than after the back-off.
          cur.trunkVersion = t.trunk.updatedAt
          cur.failures = 0
          this.schedule(cur, 0)
        }
        continue
      }
      if (!(await this.repo.claim(t.trunk.id, t.trunk.accountId, this.opts.nodeId, this.leaseMs))) continue
      const e: Entry = {
        trunkId: t.trunk.id, timer: null, failures: 0, callId: `${Math.random().toString(36).slice(2)}-${t.trunk.id}`, cseq: 0,
        expiresSec: t.outbound.registerExpiresSec ?? 3600, running: false, trunkVersion: t.trunk.updatedAt,
      }
      this.entries.set(t.trunk.id, e)
      this.schedule(e, 0)
    }
  }

  /** Unregisters (best effort) and releases the trunk: status `unregistered`, free for any node. */
  private async letGo(e: Entry): Promise<void> {
    if (e.timer) clearTimeout(e.timer)
    const t = await this.opts.store.trunks.dialTarget(e.trunkId).catch(() => null)
    if (t) await this.send(t, e, 0, 2_000).catch(() => {})
    const { released, previous } = await this.repo.release(e.trunkId, this.opts.nodeId)
    if (released && t && previous !== 'unregistered') {
      await this.announce(t, { status: 'unregistered', previous, expiresAt: null, lastStatus: null, lastError: null, nextAttemptAt: null })
    }
  }

  private schedule(e: Entry, delayMs: number): void {
    if (this.stopped) return
    if (e.timer) clearTimeout(e.timer)
    e.timer = setTimeout(() => { void this.refresh(e) }, delayMs)
    e.timer.unref()
  }

  private async refresh(e: Entry): Promise<void> {
    if (this.stopped || e.running) return
    e.running = true
    try {
      const t = await this.opts.store.trunks.dialTarget(e.trunkId)
      if (!t) {
        this.entries.delete(e.trunkId)
        return
      }
      // Registering was turned off: the next scan unregisters and releases it.
      if (!t.outbound.register) return
      e.expiresSec = t.outbound.registerExpiresSec ?? 3600
      const res = await this.send(t, e, e.expiresSec)
      if (this.stopped || this.entries.get(e.trunkId) !== e) return
      if (res.status >= 200 && res.status < 300) {
        const granted = grantedExpires(res, e.expiresSec)
        e.failures = 0
        await this.save(t, {
          status: 'registered', expiresAt: new Date(Date.now() + granted * 1000), lastStatus: res.status, success: true, failures: 0,
          nextAttemptAt: new Date(Date.now() + refreshDelaySec(granted) * 1000),
        })
        this.log.info({ trunk: t.trunk.name, expires: granted }, 'registered to carrier')
        this.schedule(e, refreshDelaySec(granted) * 1000)
      } else {
        await this.failed(t, e, res.status, res.reason || `SIP ${res.status}`)
      }
    } catch (err) {
      const t = await this.opts.store.trunks.dialTarget(e.trunkId).catch(() => null)
      if (t && !this.stopped && this.entries.get(e.trunkId) === e) await this.failed(t, e, null, (err as Error).message).catch(() => {})
    } finally {
      e.running = false
    }
  }

  private async failed(t: TrunkDialTarget, e: Entry, status: number | null, reason: string): Promise<void> {
    e.failures++
    const delay = backoffDelayMs(e.failures, this.opts.backoffMs ?? 5_000, this.opts.maxBackoffMs ?? 30 * 60_000)
    this.log.warn({ trunk: t.trunk.name, status, reason, retryInMs: delay }, 'carrier registration failed')
    await this.save(t, { status: 'failed', expiresAt: null, lastStatus: status, error: { status, reason }, failures: e.failures, nextAttemptAt: new Date(Date.now() + delay) })
    this.schedule(e, delay)
  }

  private async save(t: TrunkDialTarget, s: Omit<RegistrationOutcome, 'trunkId' | 'accountId' | 'nodeId'>): Promise<void> {
    const { saved, previous } = await this.repo.record({ trunkId: t.trunk.id, accountId: t.trunk.accountId, nodeId: this.opts.nodeId, ...s })
    if (saved && previous !== s.status) {
      await this.announce(t, { status: s.status, previous, expiresAt: s.expiresAt, lastStatus: s.lastStatus, lastError: s.error ?? null, nextAttemptAt: s.nextAttemptAt })
    }
  }

  /** registration.changed for a trunk: every change of state, with what the API shows. */
  private async announce(t: TrunkDialTarget, c: { status: RegistrationView['state']; previous: string | null; expiresAt: Date | null; lastStatus: number | null; lastError: { status: number | null; reason: string } | null; nextAttemptAt: Date | null }): Promise<void> {
    await this.opts.store.outbox.emit(t.trunk.accountId, 'registration.changed', {
      trunkId: t.trunk.id, trunk: t.trunk.name, registrar: registrarUri(t.outbound), aor: registrationAor(t.outbound, t.trunk.name),
      status: c.status, previous: c.previous, expiresAt: c.expiresAt?.toISOString() ?? null, lastStatus: c.lastStatus, lastError: c.lastError,
      nextAttemptAt: c.nextAttemptAt?.toISOString() ?? null,
    })
  }

  private send(t: TrunkDialTarget, e: Entry, expires: number, timeoutMs = this.opts.responseTimeoutMs ?? 35_000): Promise<Srf.SrfResponse> {
    const out = t.outbound
    const registrar = registrarUri(out)
    const aor = registrationAor(out, t.trunk.name)
    e.cseq++
    return new Promise((resolve, reject) => {
      const opts = {
        method: 'REGISTER',
        headers: {
          From: `<sip:${aor}>`, To: `<sip:${aor}>`,
          Contact: `<sip:${aor.slice(0, aor.lastIndexOf('@'))}@${this.opts.localHost()}>`, Expires: String(expires),
          'Call-ID': e.callId,
        },
        ...(out.username && out.password ? { auth: { username: out.username, password: out.password } } : {}),
      }
      const timer = setTimeout(() => reject(new Error('no response from registrar')), timeoutMs)
      // srf.request(uri, opts, callback): the typings only know the 4-argument form.
      const request = this.opts.srf.request.bind(this.opts.srf) as unknown as (uri: string, o: object, cb: (err: unknown, req: Srf.SrfRequest) => void) => void
      request(registrar, opts, (err: unknown, req: Srf.SrfRequest) => {
        if (err) {
          clearTimeout(timer)
          reject(err instanceof Error ? err : new Error(String(err)))
          return
        }
        req.on('response', (res?: Srf.SrfResponse) => {
          if (!res || res.status < 200) return
          clearTimeout(timer)
          resolve(res)
        })
      })
    })
  }
}

/** The expiry the registrar granted: our Contact's expires param, else Expires (RFC 3261 §10.2.4). */
function grantedExpires(res: Srf.SrfResponse, asked: number): number {
  try {
    if (res.has('Contact')) {
      const contacts = res.getParsedHeader('Contact')
      const e = contacts.map((c) => Number(c.params?.expires)).find((n) => Number.isFinite(n) && n > 0)
      if (e) return e
    }
  } catch { /* unparsable Contact */ }
  const h = Number(res.get('Expires'))
  return Number.isFinite(h) && h > 0 ? h : asked
}
