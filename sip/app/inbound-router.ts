import Srf from 'drachtio-srf'
import type { Logger } from 'pino'
import type { Store } from '../../store/index.ts'
import type { PhoneNumber } from '../../store/numbers.ts'
import type { LiveCalls } from './srf-connection.ts'
import type { TrunkIdentifier, InboundTrunk, CalledNumberSource } from './trunk-identifier.ts'
import type { SipDirectory } from './sip-directory.ts'
import type { ConcurrencyLimiter, Lease } from './concurrency-limiter.ts'
import type { CallProgramHost, MediaBinder } from './media-binding.ts'
import { DialError, type DialAttempt, type OutboundDialer } from './outbound-dialer.ts'
import { failureStatus, shouldFailover, type AttemptOutcome } from './carrier-route-plan.ts'
import { normalizeDialled, userPart } from './number-normalizer.ts'
import { CallRecord } from './call-records.ts'
import { ActiveCall, type ActiveCalls } from './call-session.ts'

/**
 * New INVITEs: who is calling (trunk by IP or digest, extension by digest),
 * which number they called (Request-URI, To, Diversion or P-Called-Party-ID as
 * the trunk says), normalised to E.164, and where it goes: an agent (we answer
 * with a media session), an extension (its registered contacts), a SIP URI,
 * or out again over the account's carrier routes (an extension calling the PSTN).
 */

export interface InboundRouterOptions {
  srf: Srf
  store: Store
  directory: SipDirectory
  identifier: TrunkIdentifier
  dialer: OutboundDialer
  limiter: ConcurrencyLimiter
  active: ActiveCalls
  media: () => MediaBinder | null
  /** Runs flows and webhook apps on the calls to numbers that target them. */
  programs?: () => CallProgramHost | null
  logger: Logger
  nodeId: string
  /** Concurrent calls per account on this node (null: unlimited). */
  accountCallLimit?: number | null
  ringTimeoutMs?: number
}

/** The called number as the trunk is configured to present it. */
export function calledNumber(req: Srf.SrfRequest, source: CalledNumberSource = 'request-uri'): string {
  const header = (name: string): string | null => {
    if (!req.has(name)) return null
    // Diversion (RFC 5806) may be a list: the last entry is the original called number.
    const parts = req.get(name).split(/,(?=\s*(?:"[^"]*"\s*)?<)/)
    return userPart(parts[source === 'diversion' ? parts.length - 1 : 0]!)
  }
  switch (source) {
    case 'to': return userPart(req.get('To'))
    case 'diversion': return header('Diversion') ?? userPart(req.uri)
    case 'p-called-party-id': return header('P-Called-Party-ID') ?? userPart(req.uri)
    default: return userPart(req.uri)
  }
}

/** Targets the engine answers itself: reachable without a trunk or an extension's credentials. */
const PUBLIC_TARGETS = new Set(['agent', 'conference', 'flow', 'app'])

export class InboundRouter {
  private readonly log: Logger

  constructor(private readonly opts: InboundRouterOptions) {
    this.log = opts.logger
  }

  /** The SrfConnection InviteHandler. */
  readonly handle = async (req: Srf.SrfRequest, res: Srf.SrfResponse, live: LiveCalls): Promise<void> => {
    const o = this.opts
    o.identifier.setTrunks(await o.directory.inboundTrunks())
    const reqUri = Srf.parseUri(req.uri)
    const idn = await o.identifier.identify({
      source: req.source_address,
      method: 'INVITE',
      proxyAuthorization: req.get('Proxy-Authorization') || undefined,
      requestHost: reqUri?.host ?? '',
    })
    if ((idn.kind === 'challenge' || idn.kind === 'reject') && !req.has('Proxy-Authorization')) {
      // A number with no trunk that the engine answers itself (an agent, a
      // room, a flow or webhook app: the embedded demo "call sip:1000@host",
      // a dial-in room, an IVR) is public: anyone may call it, it can only
      // reach what the number runs.
      const raw = userPart(req.uri)
      const number = await this.findNumber(normalizeDialled(raw), raw)
      if (number && !number.trunkId && PUBLIC_TARGETS.has(number.target.type)) {
        const lease = this.opts.limiter.tryAcquire([{ key: `account:${number.accountId}`, limit: this.opts.accountCallLimit }])
        if (!lease) {
          res.send(503, 'Too Many Calls', { headers: { 'Retry-After': '10' } })
          return
        }
        await this.toNumber(req, res, live, number, { accountId: number.accountId, from: normalizeDialled(userPart(req.get('From'))), trunkId: null, extensionId: null }, lease)
        return
      }
      if (!number && idn.kind === 'reject' && idn.reason === 'Unknown source') {
        // No number anywhere, and nothing this source could authenticate as
        // (no credential trunk, no extension domain): no identity would make
        // the call routable, so the answer is the number's absence (RFC 3261
        // §21.4.5), not 403. A number that exists behind a trunk's IP
        // allow-list still gets 403 below, and a source that may authenticate
        // (extensions dial out by routes) is still challenged.
        this.log.info({ source: req.source_address, called: raw }, 'no such number')
        res.send(404, 'Not Found', {})
        return
      }
    }
    if (idn.kind === 'challenge') {
      // RFC 3261 §22.3: a proxy-like UAS challenges with 407.
      res.send(407, 'Proxy Authentication Required', { headers: { 'Proxy-Authenticate': idn.headers } })
      return
    }
    if (idn.kind === 'reject') {
      this.log.info({ source: req.source_address, reason: idn.reason }, 'INVITE refused')
      res.send(403, idn.reason, idn.retryAfterSec ? { headers: { 'Retry-After': String(idn.retryAfterSec) } } : {})
      return
    }
    const from = userPart(req.get('From'))
    if (idn.kind === 'trunk') await this.fromTrunk(req, res, live, idn.trunk, from)
    else await this.fromExtension(req, res, live, idn.extension.accountId, idn.extension.id, idn.extension.username)
  }

  private async fromTrunk(req: Srf.SrfRequest, res: Srf.SrfResponse, live: LiveCalls, trunk: InboundTrunk, from: string): Promise<void> {
    const raw = calledNumber(req, trunk.calledNumberSource)
    const norm = { defaultCountry: trunk.defaultCountry ?? null, stripPrefix: trunk.techPrefix ?? null }
    const dialled = normalizeDialled(raw, norm)
    const number = await this.findNumber(dialled, raw)
    if (!number || number.accountId !== trunk.accountId) {
      this.log.info({ trunk: trunk.name, called: raw, normalized: dialled }, 'no such number')
      res.send(404, 'Not Found', {})
      return
    }
    const lease = this.opts.limiter.tryAcquire([
      { key: `trunk:${trunk.id}`, limit: trunk.maxConcurrentCalls },
      { key: `account:${trunk.accountId}`, limit: this.opts.accountCallLimit },
    ])
    if (!lease) {
      res.send(503, 'Too Many Calls', { headers: { 'Retry-After': '10' } })
      return
    }
    const callerE164 = normalizeDialled(from, norm)
    await this.toNumber(req, res, live, number, { accountId: trunk.accountId, from: callerE164, trunkId: trunk.id, extensionId: null }, lease)
  }

  private async findNumber(dialled: string, raw: string): Promise<PhoneNumber | null> {
    const numbers = this.opts.store.numbers
    return (await numbers.findByNumber(dialled)) ?? (dialled !== raw ? await numbers.findByNumber(raw) : null)
  }

  private async fromExtension(req: Srf.SrfRequest, res: Srf.SrfResponse, live: LiveCalls, accountId: string, extensionId: string, username: string): Promise<void> {
    const raw = userPart(req.uri)
    const lease = this.opts.limiter.tryAcquire([{ key: `account:${accountId}`, limit: this.opts.accountCallLimit }])
    if (!lease) {
      res.send(503, 'Too Many Calls', { headers: { 'Retry-After': '10' } })
      return
    }
    const ctx = { accountId, from: username, trunkId: null, extensionId }
    // Another extension by username, then one of the account's own numbers, then out over the carrier routes.
    const ext = await this.opts.directory.extensionByUsername(accountId, raw)
    if (ext) {
      await this.bridgeTo(req, res, live, { ...ctx, to: raw, agentId: null, numberId: null }, () => this.opts.dialer.plan(accountId, raw, username), lease)
      return
    }
    const dialled = normalizeDialled(raw)
    const number = await this.findNumber(dialled, raw)
    if (number && number.accountId === accountId) {
      await this.toNumber(req, res, live, number, ctx, lease)
      return
    }
    const callerId = (await this.callerIdOf(extensionId)) ?? username
    await this.bridgeTo(req, res, live, { ...ctx, to: dialled, agentId: null, numberId: null }, () => this.opts.dialer.plan(accountId, dialled, callerId), lease)
  }

  private async callerIdOf(extensionId: string): Promise<string | null> {
    return this.opts.store.sipDirectory.extensionCallerId(extensionId)
  }

  private async toNumber(req: Srf.SrfRequest, res: Srf.SrfResponse, live: LiveCalls, number: PhoneNumber,
    ctx: { accountId: string; from: string; trunkId: string | null; extensionId: string | null }, lease: Lease): Promise<void> {
    const t = number.target
    const base = { ...ctx, to: number.number, numberId: number.id }
    switch (t.type) {
      case 'agent':
        await this.answerWithAgent(req, res, live, { ...base, agentId: t.id ?? null }, lease)
        return
      case 'extension': {
        const accountId = ctx.accountId
        await this.bridgeTo(req, res, live, { ...base, agentId: null }, async () => {
          const extension = t.id ? await this.opts.store.sipDirectory.extensionUsername(t.id) : null
          if (extension === null) throw new DialError('invalid-destination', 'extension target is gone')
          return this.opts.dialer.plan(accountId, extension, ctx.from)
        }, lease)
        return
      }
      case 'sip':
        await this.bridgeTo(req, res, live, { ...base, agentId: null }, () => this.opts.dialer.plan(ctx.accountId, t.uri!, ctx.from), lease)
        return
      case 'conference': {
        // Dial-in conference: answered by the engine, then mixed into the room like an API join.
        const conf = t.id ? await this.opts.store.conferences.get(ctx.accountId, t.id) : null
        if (!conf) break
        if (conf.participantCount >= conf.maxParticipants) {
          lease.release()
          res.send(486, 'Busy Here', {})
          return
        }
        await this.answerWithAgent(req, res, live, { ...base, agentId: null }, lease, async (call) => {
          const binder = this.opts.media()
          try {
            if (!binder?.joinConference) throw new Error('the media engine has no conferences')
            await binder.joinConference(call.id, conf.id)
          } catch (err) {
            this.log.warn({ err, callId: call.id, conferenceId: conf.id }, 'caller could not join the conference')
            await call.hangup('system', 'conference-join-failed')
          }
        })
        return
      }
      case 'flow':
      case 'app':
        // Answered by the engine, then the flow (or what the app answers) runs on the call.
        await this.answerWithAgent(req, res, live, { ...base, agentId: null }, lease, async (call) => {
          const programs = this.opts.programs?.()
          if (programs) programs.start(call.id)
          else {
            this.log.warn({ callId: call.id }, 'no call program host on this node')
            await call.hangup('system', 'app-error')
          }
        })
        return
      default:
        break
    }
    lease.release()
    // RFC 3261 §21.4.18: the number exists but nothing answers it now (no target, or its conference is gone).
    res.send(480, 'Temporarily Unavailable', {})
  }

  private newCall(record: CallRecord): ActiveCall {
    const call = new ActiveCall(record, this.log, (c) => this.opts.active.remove(c))
    this.opts.active.add(call)
    return call
  }

  /** Agent target: answer with a media session bound to the agent (RFC 3264 answer to the caller's offer). */
  private async answerWithAgent(req: Srf.SrfRequest, res: Srf.SrfResponse, live: LiveCalls,
    c: { accountId: string; from: string; to: string; trunkId: string | null; extensionId: string | null; numberId: string; agentId: string | null }, lease: Lease,
    afterAnswer?: (call: ActiveCall) => Promise<void>): Promise<void> {
    const binder = this.opts.media()
    if (!binder) {
      lease.release()
      res.send(480, 'No Media Engine', {})
      return
    }
    const record = await CallRecord.create(this.opts.store.calls, {
      accountId: c.accountId, direction: 'inbound', from: c.from, to: c.to, status: 'ringing', agentId: c.agentId, numberId: c.numberId,
      trunkId: c.trunkId, extensionId: c.extensionId, sipCallId: req.get('Call-ID'), nodeId: this.opts.nodeId,
    }, this.log)
    const call = this.newCall(record)
    call.leases.push(lease)
    let canceled = false
    req.on('cancel', () => { canceled = true })
    let leg
    try {
      const fromTag = (req.getParsedHeader('From') as { params?: Record<string, string> }).params?.tag
      leg = await binder.answer({ callId: record.id, accountId: c.accountId, direction: 'inbound', agentId: c.agentId, from: c.from, to: c.to, sip: { callId: req.get('Call-ID'), ...(fromTag ? { fromTag } : {}) } }, req.body)
    } catch (err) {
      this.log.warn({ err, callId: record.id }, 'media answer failed')
      if (!res.finalResponseSent) res.send(488, 'Not Acceptable Here', {})
      await call.finish('failed', 'media-negotiation-failed', 'system', null)
      return
    }
    call.media = leg
    if (canceled) {
      await call.finish('canceled', 'caller-canceled', 'caller', null)
      return
    }
    let dialog: Srf.Dialog
    try {
      dialog = await this.opts.srf.createUAS(req, res, { localSdp: leg.localSdp })
    } catch (err) {
      await call.finish(canceled ? 'canceled' : 'failed', canceled ? 'caller-canceled' : 'answer-failed', canceled ? 'caller' : 'system', null)
      return
    }
    live.add(req.get('Call-ID'), dialog)
    call.watch(dialog, 'caller')
    call.serveMedia(dialog, leg)
    await record.answered()
    await afterAnswer?.(call)
  }

  /**
   * B2BUA towards an extension, a SIP URI or a carrier (RFC 3261 §6 "back-to-back
   * user agent"), with failover between attempts; the caller hears our final
   * answer only once every attempt is exhausted.
   */
  private async bridgeTo(req: Srf.SrfRequest, res: Srf.SrfResponse, live: LiveCalls,
    c: { accountId: string; from: string; to: string; trunkId: string | null; extensionId: string | null; numberId: string | null; agentId: string | null },
    plan: () => Promise<DialAttempt[]>, lease: Lease): Promise<void> {
    let attempts: DialAttempt[]
    try {
      attempts = await plan()
    } catch (err) {
      lease.release()
      if (err instanceof DialError) {
        const status = err.code === 'not-registered' ? 480 : err.code === 'no-route' ? 404 : 404
        res.send(status, err.message.slice(0, 60), {})
        return
      }
      throw err
    }
    const record = await CallRecord.create(this.opts.store.calls, {
      accountId: c.accountId, direction: 'inbound', from: c.from, to: c.to, status: 'ringing', agentId: c.agentId, numberId: c.numberId,
      trunkId: c.trunkId, extensionId: c.extensionId, sipCallId: req.get('Call-ID'), nodeId: this.opts.nodeId,
    }, this.log)
    const call = this.newCall(record)
    call.leases.push(lease)
    let canceled = false
    let cancelB: (() => void) | null = null
    req.on('cancel', () => { canceled = true; cancelB?.() })
    let outcome: AttemptOutcome = { kind: 'response', status: 480 }
    for (const a of attempts) {
      if (canceled) break
      const slot = a.trunkId ? this.opts.limiter.tryAcquire([{ key: `trunk:${a.trunkId}`, limit: a.concurrencyLimit }]) : null
      if (a.trunkId && !slot) { outcome = { kind: 'response', status: 503 }; continue }
      try {
        const b2b: Srf.CreateB2BUAOptions = { headers: a.headers, passFailure: false }
        if (a.proxy) b2b.proxy = a.proxy
        if (a.auth) b2b.auth = a.auth
        let uacReq: Srf.SrfRequest | null = null
        let ringTimer: NodeJS.Timeout | null = null
        let timedOut = false
        const { uas, uac } = await this.opts.srf.createB2BUA(req, res, a.uri, b2b, {
          cbRequest: (...args: unknown[]) => {
            uacReq = (args.length > 1 ? args[1] : args[0]) as Srf.SrfRequest
            cancelB = () => { try { uacReq?.cancel(() => {}) } catch { /* final */ } }
            if (this.opts.ringTimeoutMs) ringTimer = setTimeout(() => { timedOut = true; cancelB?.() }, this.opts.ringTimeoutMs)
          },
          cbProvisional: (r: { status: number }) => { if (r.status === 180 || r.status === 183) void record.ringing() },
        }).finally(() => { if (ringTimer) clearTimeout(ringTimer) }).catch((err: { status?: number }) => {
          if (timedOut) throw Object.assign(new Error('ring timeout'), { outcome: { kind: 'ring-timeout' } as AttemptOutcome })
          throw err
        })
        if (slot) call.leases.push(slot)
        live.add(req.get('Call-ID'), uas)
        call.watch(uas, 'caller')
        call.watch(uac, 'callee')
        call.bridge(uas, uac)
        if (a.trunkId) await record.attach({ trunkId: a.trunkId })
        await record.answered()
        return
      } catch (err) {
        slot?.release()
        const e = err as { status?: number; outcome?: AttemptOutcome }
        outcome = e.outcome ?? (canceled ? { kind: 'canceled' } : typeof e.status === 'number' ? (e.status === 408 ? { kind: 'timeout' } : { kind: 'response', status: e.status }) : { kind: 'timeout' })
        this.log.info({ callId: record.id, uri: a.uri, outcome }, 'B-leg attempt failed')
        if (!shouldFailover(outcome)) break
      }
    }
    const fin = failureStatus(canceled ? { kind: 'canceled' } : outcome)
    if (!res.finalResponseSent) {
      const status = outcome.kind === 'response' ? outcome.status : outcome.kind === 'ring-timeout' ? 480 : outcome.kind === 'canceled' ? 487 : 408
      // 5xx from a carrier becomes 503 towards the caller once failover is exhausted, 6xx passes through.
      res.send(status >= 500 && status < 600 ? 503 : status, {})
    }
    await call.finish(fin.status, fin.endedReason, canceled ? 'caller' : null, null)
  }
}
