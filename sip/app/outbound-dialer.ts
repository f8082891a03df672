import type Srf from 'drachtio-srf'
import type { Logger } from 'pino'
import type { Store } from '../../store/index.ts'
import type { TrunkOutbound } from '../../store/trunks.ts'
import { shouldFailover, failureStatus, type AttemptOutcome } from './carrier-route-plan.ts'
import { isE164, toE164 } from './number-normalizer.ts'
import type { ConcurrencyLimiter, Lease } from './concurrency-limiter.ts'
import type { Registrar } from './registrar.ts'
import type { SipDirectory } from './sip-directory.ts'

/**
 * Where an outbound leg goes, and placing it: per-account carrier routes
 * (prefix, priority) over trunks, failing over on 408/5xx/6xx/timeout and never on
 * busy, no-answer or cancel (carrier-route-plan.ts); extensions through their
 * registered contacts; SIP URIs directly.
 */

export interface DialAttempt {
  kind: 'trunk' | 'extension' | 'sip'
  /** Request-URI. */
  uri: string
  /** Send via this address instead of the Request-URI host (NAT: the registered source). */
  proxy?: string
  auth?: { username: string; password: string }
  headers: Record<string, string>
  trunkId?: string
  trunkName?: string
  concurrencyLimit?: number | null
  extensionId?: string
  codecs?: string[]
}

export class DialError extends Error {
  constructor(readonly code: 'no-route' | 'caller-id-not-owned' | 'not-registered' | 'invalid-destination' | 'limit', message: string) {
    super(message)
    this.name = 'DialError'
  }
}

export interface DialerOptions {
  store: Store
  directory: SipDirectory
  registrar: Registrar
  limiter: ConcurrencyLimiter
  logger: Logger
  /** Give up on a carrier that sends no provisional response within this time (then fail over). */
  attemptTimeoutMs?: number
  /** Our SIP host for From headers when a trunk sets no fromDomain. */
  localHost?: () => string
}

export type AttemptResult =
  | { ok: true; dialog: Srf.Dialog; attempt: DialAttempt; lease: Lease | null }
  | { ok: false; outcome: AttemptOutcome; attempt: DialAttempt | null }

/** A trunk's Request-URI for a number: tech prefix, host, port, transport. */
export function trunkUri(out: TrunkOutbound, number: string): string {
  const user = `${out.techPrefix ?? ''}${number}`
  const host = out.host.includes(':') && !out.host.startsWith('[') ? `[${out.host}]` : out.host
  const transport = out.transport && out.transport !== 'udp' ? `;transport=${out.transport}` : ''
  return `sip:${user}@${host}${out.port ? `:${out.port}` : ''}${transport}`
}

/** "udp:1.2.3.4:5060" (registrar's received) → "sip:1.2.3.4:5060;transport=udp". */
export function receivedToProxy(received: string | null): string | undefined {
  if (!received) return undefined
  const m = /^(udp|tcp|tls|ws|wss):(.+):(\d+)$/.exec(received)
  if (!m) return undefined
  const host = m[2]!.includes(':') && !m[2]!.startsWith('[') ? `[${m[2]}]` : m[2]
  return `sip:${host}:${m[3]};transport=${m[1]}`
}

export class OutboundDialer {
  private readonly log: Logger
  constructor(private readonly opts: DialerOptions) {
    this.log = opts.logger
  }

  /** Whether `from` is a caller ID the account owns: one of its numbers or extensions' caller IDs. */
  async ownsCallerId(accountId: string, from: string): Promise<boolean> {
    const e164 = toE164(from) ?? from
    const n = (await this.opts.store.numbers.findByNumber(e164)) ?? (await this.opts.store.numbers.findByNumber(from))
    if (n) return n.accountId === accountId
    return this.opts.store.sipDirectory.extensionOwnsCallerId(accountId, from, e164)
  }

  /**
   * The ordered attempts for a destination: a SIP URI as is, an extension of
   * the account (by username) through its contacts, else an E.164 number over
   * the account's carrier routes.
   */
  async plan(accountId: string, to: string, fromNumber: string, onlyTrunkId?: string): Promise<DialAttempt[]> {
    const dest = to.trim()
    if (/^sips?:/i.test(dest)) return [{ kind: 'sip', uri: dest, headers: { From: `<sip:${fromNumber}@${this.localHost()}>` } }]
    const ext = await this.opts.directory.extensionByUsername(accountId, dest.replace(/^ext:/, ''))
    if (ext) {
      const contacts = await this.opts.registrar.contactsFor(ext.id)
      if (!contacts.length) throw new DialError('not-registered', `extension ${ext.username} is not registered`)
      return contacts.map((c) => {
        const proxy = receivedToProxy(c.received)
        return { kind: 'extension' as const, uri: c.contact, ...(proxy ? { proxy } : {}), extensionId: ext.id, headers: { From: `<sip:${fromNumber}@${this.localHost()}>` } }
      })
    }
    const number = isE164(dest) ? dest : toE164(dest)
    if (!number) throw new DialError('invalid-destination', `${to} is neither an E.164 number, a SIP URI nor an extension`)
    const routes = await this.opts.store.carrierRoutes.candidates(accountId, number)
    const attempts: DialAttempt[] = []
    const seen = new Set<string>()
    // An explicit trunk (API originate with trunkId) replaces the carrier routes.
    const trunkIds = onlyTrunkId ? [onlyTrunkId] : routes.map((r) => r.trunkId)
    for (const trunkId of trunkIds) {
      const r = { trunkId }
      if (seen.has(r.trunkId)) continue
      seen.add(r.trunkId)
      const t = await this.opts.store.trunks.dialTarget(r.trunkId)
      if (!t || t.trunk.accountId !== accountId) continue
      const out = t.outbound
      const headers: Record<string, string> = { ...(out.headers ?? {}), From: `<sip:${fromNumber}@${out.fromDomain ?? this.localHost()}>` }
      attempts.push({
        kind: 'trunk', uri: trunkUri(out, number), headers, trunkId: t.trunk.id, trunkName: t.trunk.name,
        concurrencyLimit: t.trunk.concurrencyLimit ?? null,
        ...(out.username && out.password ? { auth: { username: out.username, password: out.password } } : {}),
        ...(t.trunk.codecs ? { codecs: t.trunk.codecs } : {}),
      })
    }
    if (!attempts.length) throw new DialError('no-route', `no route for ${number}`)
    return attempts
  }

  private localHost(): string {
    return this.opts.localHost?.() ?? 'callplane.invalid'
  }

  /**
   * Places a UAC leg over the attempts in order with failover. `sdp` gives
   * the offer; `onRinging` fires on the first 180/183. `control.cancel()`
   * (set synchronously) aborts: the outcome is then `canceled`.
   */
  async dial(srf: Srf, attempts: DialAttempt[], offer: string, opts: {
    ringTimeoutMs?: number
    onRinging?: (res: Srf.SrfResponse) => void
    onAttempt?: (a: DialAttempt) => void
    control?: { cancel?: () => void }
    accountKey?: { key: string; limit: number | null | undefined }
  } = {}): Promise<AttemptResult> {
    let last: AttemptOutcome = { kind: 'response', status: 503 }
    let lastAttempt: DialAttempt | null = null
    let canceled = false
    let cancelCurrent: (() => void) | null = null
    if (opts.control) opts.control.cancel = () => { canceled = true; cancelCurrent?.() }
    for (const attempt of attempts) {
      if (canceled) return { ok: false, outcome: { kind: 'canceled' }, attempt: lastAttempt }
      const slots = [...(attempt.trunkId ? [{ key: `trunk:${attempt.trunkId}`, limit: attempt.concurrencyLimit }] : []), ...(opts.accountKey ? [opts.accountKey] : [])]
      const lease = this.opts.limiter.tryAcquire(slots)
      if (!lease) {
        this.log.info({ trunk: attempt.trunkName }, 'trunk at its concurrency limit, trying the next route')
        last = { kind: 'response', status: 503 }
        continue
      }
      lastAttempt = attempt
      opts.onAttempt?.(attempt)
      const res = await this.attempt(srf, attempt, offer, opts, (fn) => { cancelCurrent = fn }, () => canceled)
      cancelCurrent = null
      if (res.ok) return { ok: true, dialog: res.dialog, attempt, lease }
      lease.release()
      last = res.outcome
      this.log.info({ uri: attempt.uri, trunk: attempt.trunkName, outcome: last }, 'outbound attempt failed')
      if (!shouldFailover(last)) break
    }
    return { ok: false, outcome: canceled ? { kind: 'canceled' } : last, attempt: lastAttempt }
  }

  private attempt(srf: Srf, a: DialAttempt, offer: string, opts: { ringTimeoutMs?: number; onRinging?: (res: Srf.SrfResponse) => void },
    setCancel: (fn: () => void) => void, isCanceled: () => boolean,
  ): Promise<{ ok: true; dialog: Srf.Dialog } | { ok: false; outcome: AttemptOutcome }> {
    return new Promise((resolve) => {
      let why: 'ring-timeout' | 'timeout' | 'canceled' | null = null
      let uacReq: Srf.SrfRequest | null = null
      let provisional = false
      let settled = false
      const timers: NodeJS.Timeout[] = []
      const settle = (r: { ok: true; dialog: Srf.Dialog } | { ok: false; outcome: AttemptOutcome }) => {
        if (settled) return
        settled = true
        for (const t of timers) clearTimeout(t)
        resolve(r)
      }
      const cancel = (reason: 'ring-timeout' | 'timeout' | 'canceled') => {
        if (why) return
        why = reason
        try { uacReq?.cancel(() => {}) } catch { /* already final */ }
        // §9.1: a CANCEL waits for a provisional response; a carrier that sent
        // none may answer only when Timer B fires. Move on now: a late 200 is
        // hung up below, a late failure ignored.
        if (!provisional) settle({ ok: false, outcome: { kind: reason } })
      }
      setCancel(() => cancel('canceled'))
      const ua: Srf.CreateUACOptions = { localSdp: offer, headers: a.headers }
      if (a.proxy) ua.proxy = a.proxy
      if (a.auth) ua.auth = a.auth
      srf.createUAC(a.uri, ua, {
        cbRequest: (...args: unknown[]) => {
          // drachtio-srf calls cbRequest(err, req) internally; typings say (req).
          const req = (args.length > 1 ? args[1] : args[0]) as Srf.SrfRequest | undefined
          if (!req || args[0] instanceof Error) return
          uacReq = req
          if (isCanceled()) cancel('canceled')
          timers.push(setTimeout(() => { if (!provisional) cancel('timeout') }, this.opts.attemptTimeoutMs ?? 8_000))
          if (opts.ringTimeoutMs) timers.push(setTimeout(() => cancel('ring-timeout'), opts.ringTimeoutMs))
        },
        cbProvisional: (res: Srf.SrfResponse) => {
          provisional = true
          if (res.status === 180 || res.status === 183) opts.onRinging?.(res)
        },
      }).then((dialog) => {
        if (why || settled) {
          // Answered as we canceled (§9.1 race): hang up what we no longer want.
          dialog.destroy()
          settle({ ok: false, outcome: { kind: why ?? 'canceled' } })
          return
        }
        settle({ ok: true, dialog })
      }, (err: { status?: number }) => {
        if (why) settle({ ok: false, outcome: { kind: why } })
        else if (typeof err?.status === 'number') settle({ ok: false, outcome: err.status === 408 ? { kind: 'timeout' } : { kind: 'response', status: err.status } })
        else settle({ ok: false, outcome: { kind: 'timeout' } })
      })
    })
  }
}

export { failureStatus }
