import type Srf from 'drachtio-srf'
import type { Logger } from 'pino'
import type { Store } from '../../store/index.ts'
import type { TrunkDialTarget } from '../../store/trunks.ts'
import type { OutboundRegistrationStore, OutboundRegistrationState } from './registrar-store.ts'

/**
 * Trunks that register to their carrier as a device (RFC 3261 §10.2, the
 * client side): REGISTER with digest credentials (drachtio-srf answers the
 * 401/407), refresh before expiry, exponential back-off after failures, the
 * status persisted for the API. Among several nodes one claims each trunk.
 */

export interface OutboundRegistrationsOptions {
  srf: Srf
  store: Store
  status: OutboundRegistrationStore
  logger: Logger
  nodeId: string
  localHost: () => string
  /** First retry delay after a failure; doubles up to maxBackoffMs. */
  backoffMs?: number
  maxBackoffMs?: number
  /** How often the set of registering trunks is re-read. */
  rescanMs?: number
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
}

export class OutboundRegistrations {
  private readonly entries = new Map<string, Entry>()
  private scanTimer: NodeJS.Timeout | null = null
  private stopped = true
  private readonly log: Logger

  constructor(private readonly opts: OutboundRegistrationsOptions) {
    this.log = opts.logger
  }

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
    const targets = await this.opts.store.trunks.listRegistering().catch(() => [] as TrunkDialTarget[])
    await Promise.allSettled([...this.entries.values()].map(async (e) => {
      if (e.timer) clearTimeout(e.timer)
      const t = targets.find((x) => x.trunk.id === e.trunkId)
      // Unregister (RFC 3261 §10.2.2) so the carrier stops sending calls to a node that is gone.
      if (t) await this.send(t, e, 0, 2_000).catch(() => {})
    }))
    this.entries.clear()
  }

  status(trunkId: string): Promise<OutboundRegistrationState | null> {
    return this.opts.status.get(trunkId)
  }

  /** Picks up trunks that started registering and drops those that stopped. */
  async scan(): Promise<void> {
    if (this.stopped) return
    const targets = await this.opts.store.trunks.listRegistering()
    const ids = new Set(targets.map((t) => t.trunk.id))
    for (const [id, e] of this.entries) {
      if (!ids.has(id)) {
        if (e.timer) clearTimeout(e.timer)
        this.entries.delete(id)
      }
    }
    for (const t of targets) {
      if (this.entries.has(t.trunk.id)) continue
      if (!(await this.claim(t))) continue
      const e: Entry = { trunkId: t.trunk.id, timer: null, failures: 0, callId: `${Math.random().toString(36).slice(2)}-${t.trunk.id}`, cseq: 0, expiresSec: t.outbound.registerExpiresSec ?? 3600, running: false }
      this.entries.set(t.trunk.id, e)
      this.schedule(e, 0)
    }
  }

  /** One node per trunk: take it when free, ours, or left stale by a dead node. */
  private async claim(t: TrunkDialTarget): Promise<boolean> {
    const { rowCount } = await this.opts.store.db.pool.query(
      `INSERT INTO sip_outbound_registrations (trunk_id, account_id, status, node_id) VALUES ($1, $2, 'registering', $3)
       ON CONFLICT (trunk_id) DO UPDATE SET node_id = $3, updated_at = now()
         WHERE sip_outbound_registrations.node_id IS NULL OR sip_outbound_registrations.node_id = $3
            OR sip_outbound_registrations.updated_at < now() - interval '10 minutes'`,
      [t.trunk.id, t.trunk.accountId, this.opts.nodeId])
    return (rowCount ?? 0) > 0
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
      if (!t || !t.outbound.register) {
        this.entries.delete(e.trunkId)
        return
      }
      e.expiresSec = t.outbound.registerExpiresSec ?? 3600
      const res = await this.send(t, e, e.expiresSec)
      if (res.status >= 200 && res.status < 300) {
        const granted = grantedExpires(res, e.expiresSec)
        e.failures = 0
        await this.save(t, { status: 'registered', expiresAt: new Date(Date.now() + granted * 1000), lastStatus: res.status, lastError: null, failures: 0, nextAttemptAt: new Date(Date.now() + refreshDelaySec(granted) * 1000) })
        this.log.info({ trunk: t.trunk.name, expires: granted }, 'registered to carrier')
        this.schedule(e, refreshDelaySec(granted) * 1000)
      } else {
        await this.failed(t, e, res.status, `${res.status} ${res.reason ?? ''}`.trim())
      }
    } catch (err) {
      const t = await this.opts.store.trunks.dialTarget(e.trunkId).catch(() => null)
      if (t) await this.failed(t, e, null, (err as Error).message)
    } finally {
      e.running = false
    }
  }

  private async failed(t: TrunkDialTarget, e: Entry, status: number | null, error: string): Promise<void> {
    e.failures++
    const delay = backoffDelayMs(e.failures, this.opts.backoffMs ?? 5_000, this.opts.maxBackoffMs ?? 30 * 60_000)
    this.log.warn({ trunk: t.trunk.name, status, error, retryInMs: delay }, 'carrier registration failed')
    await this.save(t, { status: 'failed', expiresAt: null, lastStatus: status, lastError: error, failures: e.failures, nextAttemptAt: new Date(Date.now() + delay) })
    this.schedule(e, delay)
  }

  private async save(t: TrunkDialTarget, s: Pick<OutboundRegistrationState, 'status' | 'expiresAt' | 'lastStatus' | 'lastError' | 'failures' | 'nextAttemptAt'>): Promise<void> {
    const prev = await this.opts.status.get(t.trunk.id)
    await this.opts.status.save({ trunkId: t.trunk.id, accountId: t.trunk.accountId, nodeId: this.opts.nodeId, ...s })
    if (prev?.status !== s.status) {
      await this.opts.store.outbox.transaction(async (_c, emit) => {
        await emit(t.trunk.accountId, 'registration.changed', { trunkId: t.trunk.id, trunk: t.trunk.name, status: s.status, expiresAt: s.expiresAt?.toISOString() ?? null, lastStatus: s.lastStatus, lastError: s.lastError })
      })
    }
  }

  private send(t: TrunkDialTarget, e: Entry, expires: number, timeoutMs = 40_000): Promise<Srf.SrfResponse> {
    const out = t.outbound
    const host = out.host.includes(':') && !out.host.startsWith('[') ? `[${out.host}]` : out.host
    const registrar = `sip:${host}${out.port ? `:${out.port}` : ''}${out.transport && out.transport !== 'udp' ? `;transport=${out.transport}` : ''}`
    const user = out.username ?? t.trunk.name
    const domain = out.fromDomain ?? host
    e.cseq++
    return new Promise((resolve, reject) => {
      const opts = {
        method: 'REGISTER',
        headers: {
          From: `<sip:${user}@${domain}>`, To: `<sip:${user}@${domain}>`,
          Contact: `<sip:${user}@${this.opts.localHost()}>`, Expires: String(expires),
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
