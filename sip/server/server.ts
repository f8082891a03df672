/**
 * The SIP server core: glues transports, the transaction layer, dialog state
 * and drachtio application connections together, doing what drachtio-server
 * does for its clients (completing requests and responses, dialogs, CANCEL,
 * PRACK, cdr events).
 */
import { randomUUID } from 'node:crypto'
import { isIP } from 'node:net'
import { lookup } from 'node:dns/promises'
import { networkInterfaces } from 'node:os'
import type { Logger } from 'pino'
import pino from 'pino'
import type { Registry } from 'prom-client'
import {
  SipMessage, SipParseError, parseMessage, makeResponse, validateRequest, validateResponse, parseNameAddr,
  parseUri, newBranch, splitList, randomToken, paramOf, bareHost, uriHost, formatParams, parseVia, formatVia, REASONS,
  type ParseLimits, DEFAULT_LIMITS,
} from './message.ts'
import { Transport, type Remote, type Inbound, type Protocol } from './transport.ts'
import { TransactionLayer, type ServerTransaction, type ClientTransaction, type Timers, DEFAULT_TIMERS } from './transaction-layer.ts'
import { DialogStore, dialogId, type Dialog } from './dialogs.ts'
import { ControlServer, AppConnection, formatMeta, stackTime, type ClientMessage } from './drachtio-protocol.ts'
import { createMetrics, type SipMetrics } from './metrics.ts'
import { SourceRateLimiter, NO_SOURCE_LIMITS, isOutOfDialogInvite, type SourceLimits } from './rate-limit.ts'
import { ProxyCore } from './proxy.ts'
import { InviteGate } from './invite-gate.ts'
import { OverloadGuard, type OverloadOptions } from './overload.ts'

export const SERVER_VERSION = 'v0.9.3-callplane'

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

const DIALOG_METHODS = new Set(['INVITE', 'SUBSCRIBE'])
const ALLOW = 'INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, PRACK, REGISTER, SUBSCRIBE, NOTIFY, REFER, MESSAGE, PUBLISH'
/** Headers the server owns when completing app messages; the app's copies are ignored. */
const CORE_HEADERS = new Set(['via', 'call-id', 'cseq', 'content-length', 'max-forwards', 'from', 'to', 'route', 'record-route'])

export class SipCore {
  readonly log: Logger
  readonly transport: Transport
  readonly tl: TransactionLayer
  readonly dialogs = new DialogStore()
  readonly control = new ControlServer()
  readonly metrics: SipMetrics
  readonly proxy: ProxyCore
  /** Per-source token buckets for new INVITEs and for other new requests (may be the same object). */
  private inviteLimiter: SourceRateLimiter
  private requestLimiter: SourceRateLimiter
  /** Per-source fairness of new INVITEs at the applications (on with the per-source limits). */
  private inviteGate?: InviteGate
  readonly overload: OverloadGuard
  private rr = 0
  /** Merged-request detection (§8.2.2.2): Call-ID|From tag|CSeq → server transaction key. */
  private inProgress = new Map<string, string>()
  /** Pending CANCELs from apps for INVITEs that have had no provisional yet (§9.1). */
  private deferredCancels = new Map<string, () => void>()
  readonly timers: Timers
  private readonly limits: ParseLimits
  private hostCache?: string

  constructor(readonly opts: CoreOptions) {
    this.log = opts.logger ?? pino({ level: 'silent' })
    this.timers = opts.timers ?? DEFAULT_TIMERS
    this.limits = opts.limits ?? DEFAULT_LIMITS
    this.transport = new Transport({ host: opts.sipHost, port: opts.sipPort, maxMessageBytes: this.limits.maxBytes, logger: this.log })
    this.metrics = createMetrics(opts.registry, { dialogs: () => this.dialogs.size, apps: () => this.authenticatedApps().length })
    this.tl = new TransactionLayer({
      send: (to, msg) => this.transport.send(to, msg.toBuffer()),
      onRetransmit: (kind, method) => this.metrics.retransmissions.inc({ kind, method }),
      onError: (err) => this.log.error({ err }, 'error in transaction timer'),
    }, this.timers)
    this.proxy = new ProxyCore(this)
    this.overload = new OverloadGuard(opts.overload)
    if (opts.maxTransactionsPerSourcePerSecond) {
      this.inviteLimiter = this.requestLimiter = new SourceRateLimiter(opts.maxTransactionsPerSourcePerSecond)
    } else {
      const l = opts.sourceLimits ?? NO_SOURCE_LIMITS
      this.inviteLimiter = new SourceRateLimiter(l.invitesPerSecond, Math.max(1, l.invitesPerSecond * l.burstSeconds))
      this.requestLimiter = new SourceRateLimiter(l.requestsPerSecond, Math.max(1, l.requestsPerSecond * l.burstSeconds))
    }
    if (this.inviteLimiter.enabled) this.inviteGate = new InviteGate()
    this.transport.on('message', (data, from, stream) => {
      try {
        this.onNetwork(data, from, stream)
      } catch (err) {
        // Never let one bad message take the process down.
        this.log.error({ err }, 'error handling sip message')
      }
    })
    this.control.on('connection', (app) => this.onAppConnection(app))
  }

  async start(): Promise<void> {
    await this.transport.listen()
    await this.control.listen(this.opts.controlHost, this.opts.controlPort)
  }

  async stop(): Promise<void> {
    this.inviteLimiter.close()
    this.requestLimiter.close()
    this.inviteGate?.close()
    this.overload.close()
    for (const d of [...this.dialogs.all()]) this.dialogs.remove(d)
    this.tl.shutdown()
    this.proxy.shutdown()
    await this.control.close()
    await this.transport.close()
  }

  authenticatedApps(): AppConnection[] {
    return [...this.control.apps].filter((a) => a.authenticated)
  }

  // ---- addressing -----------------------------------------------------------

  /** Host advertised in Via/Contact/Record-Route. */
  localHost(): string {
    if (this.opts.externalAddress) return this.opts.externalAddress
    const h = this.opts.sipHost
    if (h !== '0.0.0.0' && h !== '::') return h
    if (this.hostCache) return this.hostCache
    const v6 = h === '::'
    for (const list of Object.values(networkInterfaces())) {
      for (const i of list ?? []) {
        if (!i.internal && (i.family === 'IPv4' || v6)) { this.hostCache = i.address; return i.address }
      }
    }
    this.hostCache = '127.0.0.1'
    return this.hostCache
  }

  get port(): number { return this.transport.boundPort }

  hostport(): string { return `${uriHost(this.localHost())}:${this.port}` }

  viaValue(protocol: Protocol, branch: string): string {
    return `SIP/2.0/${protocol.toUpperCase()} ${this.hostport()};branch=${branch};rport`
  }

  contactUri(protocol: Protocol, user?: string): string {
    return `sip:${user ? user + '@' : ''}${this.hostport()}${protocol === 'tcp' ? ';transport=tcp' : ''}`
  }

  recordRouteValue(protocol: Protocol): string {
    return `<sip:${this.hostport()};lr${protocol === 'tcp' ? ';transport=tcp' : ''}>`
  }

  /** True when a URI designates this server (used for Route processing, §16.4). */
  isLocalUri(uri: string): boolean {
    const u = parseUri(uri)
    if (!u) return false
    const host = bareHost(u.host)
    const port = u.port ?? 5060
    if (port !== this.port) return false
    return host === bareHost(this.localHost()) || host === this.opts.sipHost || host === '127.0.0.1' || host === 'localhost'
  }

  /** RFC 3263-lite: IP literal or A/AAAA lookup; port from URI or 5060; transport from the URI parameter. */
  async resolve(uri: string, hint?: Remote): Promise<Remote | undefined> {
    const na = uri.includes('<') ? parseNameAddr(uri)?.uri ?? uri : uri
    const u = parseUri(na)
    if (!u) return undefined
    const t = (u.params['transport'] ?? '').toLowerCase()
    // TLS and WebSocket transports are not implemented yet: refuse rather than downgrade a sips: target.
    if (u.scheme === 'sips' || t === 'tls' || t === 'ws' || t === 'wss' || t === 'sctp') return undefined
    const protocol: Protocol = t === 'tcp' ? 'tcp' : t === 'udp' ? 'udp' : (hint?.protocol ?? 'udp')
    let address = bareHost(u.host)
    const port = u.port ?? 5060
    if (!isIP(address)) {
      try { address = (await lookup(address)).address } catch { return undefined }
    }
    return { protocol, address, port }
  }

  send(to: Remote, msg: SipMessage): void {
    this.transport.send(to, msg.toBuffer())
  }

  // ---- network side ---------------------------------------------------------

  private onNetwork(data: Buffer, from: Inbound, stream: boolean): void {
    // Keep-alive CRLFs over UDP (RFC 5626 §4.4.1) are silently ignored.
    if (data.length <= 4 && data.toString('latin1').trim() === '') return
    // An over-limit source's new INVITEs are dropped before the full parse: under a flood the
    // parse is most of what refusing costs, and the cheaper each drop, the sooner the socket's
    // queue drains and other sources' requests are read (they wait behind the flood in it).
    if (!stream && this.inviteLimiter.enabled && !this.inviteLimiter.hasToken(from.address) && isOutOfDialogInvite(data)) {
      this.metrics.dropped.inc({ reason: 'rate-limit' })
      this.metrics.rateLimited.inc({ method: 'INVITE' })
      return
    }
    let msg: SipMessage
    try {
      msg = parseMessage(data, { stream, limits: this.limits })
    } catch (err) {
      this.metrics.parseErrors.inc()
      const partial = err instanceof SipParseError ? err.partial : undefined
      const reason = err instanceof Error ? err.message : 'Bad Request'
      this.log.debug({ reason, from }, 'malformed sip message')
      if (partial && partial.isRequest && partial.method !== 'ACK') this.rejectMalformed(partial, from, reason)
      else this.metrics.dropped.inc({ reason: 'malformed' })
      return
    }
    if (!msg.isRequest) return this.onResponse(msg, from)
    const bad = validateRequest(msg)
    if (bad) {
      this.metrics.parseErrors.inc()
      if (msg.method !== 'ACK') this.rejectMalformed(msg, from, bad)
      else this.metrics.dropped.inc({ reason: 'malformed' })
      return
    }
    this.onRequest(msg, from)
  }

  /** 400 (or 505) for a request we could read enough of to answer (§8.2, §21.4.1). */
  private rejectMalformed(req: SipMessage, from: Inbound, reason: string): void {
    // A response needs at least a Via to be routed and the core headers to be matched.
    // A response needs a Via and the core headers to be matched by the sender; an unparseable
    // Via (e.g. SIP/7.0) still lets us answer to the source address.
    const via = req.getAll('via')[0]
    if (!via || !req.has('call-id') || !req.has('from') || !req.has('to') || !req.has('cseq')) {
      this.metrics.dropped.inc({ reason: 'malformed' })
      return
    }
    const status = reason === 'Version Not Supported' ? 505 : 400
    const res = makeResponse(req, status, reason.replace(/[\r\n]/g, ' '), randomToken())
    this.send(this.responseDest(req, from), res)
    this.metrics.transactions.inc({ method: req.method.slice(0, 16), class: `${Math.floor(status / 100)}xx`, direction: 'in' })
  }

  /** §18.2.2 / RFC 3581 §4: where responses to a request go. */
  responseDest(req: SipMessage, from: Inbound | Remote): Remote {
    if (from.protocol !== 'udp') return { protocol: from.protocol, address: from.address, port: from.port }
    const via = req.topVia
    const useRport = via && 'rport' in via.params
    return { protocol: 'udp', address: from.address, port: useRport ? from.port : (via?.port ?? from.port) }
  }

  /** §18.2.1 + RFC 3581 §4: stamp received/rport on the top Via. */
  private stampVia(req: SipMessage, from: Inbound): void {
    const h = req.headers.find((x) => x.name === 'Via')
    if (!h) return
    const parts = splitList(h.value)
    const top = parseVia(parts[0] ?? '')
    if (!top) return
    let changed = false
    if (bareHost(top.host) !== from.address) { top.params['received'] = from.address; changed = true }
    if ('rport' in top.params) { top.params['rport'] = String(from.port); changed = true }
    if (!changed) return
    parts[0] = formatVia(top)
    h.value = parts.join(', ')
  }

  private onRequest(req: SipMessage, from: Inbound): void {
    this.stampVia(req, from)
    const method = req.method
    if (method === 'ACK') return this.onAck(req, from)
    const existing = this.tl.matchServer(req)
    if (existing) {
      this.overload.noteRetransmission(Date.now() - existing.createdAt, this.timers.T1)
      existing.onRetransmission()
      return
    }
    if (method === 'CANCEL') return this.onCancel(req, from)

    // §8.2.2.2 merged requests: same From tag, Call-ID and CSeq as one in progress, different branch.
    const toTag = req.toTag
    if (!toTag) {
      const mk = `${req.callId}|${req.fromTag ?? ''}|${req.get('cseq')}`
      const k = this.inProgress.get(mk)
      if (k !== undefined) {
        this.respondStateless(req, from, 482, 'Loop Detected')
        return
      }
    }

    // Requests record-routed through our proxy carry our URI in Route (§16.4).
    const routes = req.getAll('route')
    const firstRoute = routes[0] ? parseNameAddr(routes[0])?.uri : undefined
    if (toTag) {
      const d = this.dialogs.match(req.callId, toTag, req.fromTag ?? '')
      if (d) return this.onInDialogRequest(req, from, d)
      if (firstRoute && this.isLocalUri(firstRoute)) { this.proxy.forwardInDialog(req, from); return }
      if (this.proxy.matchesProxiedDialog(req)) { this.proxy.forwardInDialog(req, from); return }
      // A stateless 481 costs as much to send as the request did: limited like new requests, so
      // a flood of made-up dialogs is not reflected at line rate.
      if (!this.requestLimiter.allow(from.address)) { this.metrics.dropped.inc({ reason: 'rate-limit' }); return }
      this.respondStateless(req, from, 481)
      return
    }
    if (firstRoute && this.isLocalUri(firstRoute) && routes.length > 1) {
      // A pre-loaded route set through us towards someone else: strip ourselves and forward.
      this.proxy.forwardInDialog(req, from)
      return
    }

    // Per-source limit on new out-of-dialog transactions, checked before any transaction state
    // exists; in-dialog requests (BYE) and retransmissions (matched above) still pass so admitted
    // calls can end. The excess is dropped, not answered: a 503 would cost a datagram per
    // datagram, and the flooder retransmits into the same empty bucket.
    const limiter = method === 'INVITE' ? this.inviteLimiter : this.requestLimiter
    if (!limiter.allow(from.address)) {
      this.metrics.dropped.inc({ reason: 'rate-limit' })
      this.metrics.rateLimited.inc({ method: method === 'INVITE' || method === 'REGISTER' || method === 'OPTIONS' ? method : 'other' })
      return
    }
    // §8.2.2.1: a Request-URI scheme the server cannot handle gets 416. tel: (RFC 3966) is
    // passed on: applications may route telephone numbers (drachtio-server does the same).
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(req.uri)?.[1]?.toLowerCase()
    if (scheme !== 'sip' && scheme !== 'sips' && scheme !== 'tel') {
      this.respondStateless(req, from, 416, 'Unsupported URI Scheme')
      return
    }
    if (method !== 'OPTIONS' && this.overload.shouldShed(limiter.isLight(from.address))) {
      // §21.5.4: refuse new work cheaply while saturated; in-dialog requests above still flow.
      const res = makeResponse(req, 503, 'Service Unavailable', randomToken())
      res.add('Retry-After', '1')
      this.send(this.responseDest(req, from), res)
      this.metrics.dropped.inc({ reason: 'overload' })
      return
    }
    const txn = this.tl.createServer(req, this.responseDest(req, from))
    if (!txn) return
    this.trackInProgress(req, txn)
    txn.toTag = randomToken()
    txn.context['from'] = from
    if (method === 'INVITE') txn.respond(makeResponse(req, 100)) // §17.2.1: 100 Trying at once

    const app = this.pickApp(method)
    if (!app) {
      if (method === 'OPTIONS') {
        // Trunk keep-alives are answered even with no application routing OPTIONS.
        const res = makeResponse(req, 200, 'OK', txn.toTag)
        res.add('Allow', ALLOW)
        res.add('Accept', 'application/sdp')
        this.respondTxn(txn, res)
      } else {
        const res = makeResponse(req, 503, 'Service Unavailable', txn.toTag)
        this.respondTxn(txn, res)
      }
      return
    }
    txn.context['app'] = app
    if (method === 'INVITE') {
      this.overload.pendingInvites++
      txn.context['pending'] = true
      this.cdr('attempt', 'network', req)
    }
    this.guardUnanswered(txn)
    this.log.debug({ callId: req.callId, method, app: app.id }, 'request delivered to application')
    if (method === 'INVITE' && this.inviteGate) {
      const gate = this.inviteGate
      const admitted = gate.submit(txn.id, from.address, () => {
        if (txn.state === 'proceeding') this.deliver(app, req, from, txn.id, '')
        else gate.release(txn.id)
      })
      if (!admitted) {
        // The source already has a full queue of INVITEs waiting on the application.
        this.metrics.dropped.inc({ reason: 'rate-limit' })
        this.metrics.rateLimited.inc({ method: 'INVITE' })
        txn.terminate()
      }
      return
    }
    this.deliver(app, req, from, txn.id, '')
  }

  /**
   * An application that never answers must not pin a transaction (and an early
   * dialog) forever: INVITE gets 408 after Timer C (§16.6 step 11: > 3 min),
   * other methods once their client has given up (64*T1, §17.1.2.2).
   */
  private guardUnanswered(txn: ServerTransaction): void {
    const ms = txn.isInvite ? 180_000 : 64 * this.timers.T1
    txn.after(ms, () => {
      if (txn.state !== 'proceeding' && txn.state !== 'trying') return
      this.log.warn({ callId: txn.request.callId, method: txn.request.method }, 'application did not answer; 408')
      const early = txn.isInvite ? this.dialogs.get(dialogId(txn.request.callId, txn.request.fromTag ?? '')) : undefined
      if (early && early.state === 'early') this.dialogs.remove(early)
      this.respondTxn(txn, makeResponse(txn.request, 408, 'Request Timeout', txn.toTag))
    })
  }

  private trackInProgress(req: SipMessage, txn: ServerTransaction): void {
    const mk = `${req.callId}|${req.fromTag ?? ''}|${req.get('cseq')}`
    this.inProgress.set(mk, txn.key)
    txn.onTerminated = () => {
      this.inProgress.delete(mk)
      this.clearPending(txn)
    }
  }

  respondStateless(req: SipMessage, from: Inbound | Remote, status: number, reason?: string): void {
    const res = makeResponse(req, status, reason, randomToken())
    this.send(this.responseDest(req, from), res)
    this.metrics.transactions.inc({ method: req.method, class: `${Math.floor(status / 100)}xx`, direction: 'in' })
  }

  /** The INVITE no longer waits for its application (final sent or transaction gone). */
  private clearPending(txn: ServerTransaction): void {
    if (txn.context['pending']) { txn.context['pending'] = false; this.overload.pendingInvites-- }
    this.inviteGate?.release(txn.id)
  }

  /** Sends a response through a server transaction and counts finals. */
  respondTxn(txn: ServerTransaction, res: SipMessage): void {
    if (res.status >= 200) this.clearPending(txn)
    txn.respond(res)
    if (res.status >= 200) this.metrics.transactions.inc({ method: txn.request.method, class: `${Math.floor(res.status / 100)}xx`, direction: 'in' })
  }

  private pickApp(method: string): AppConnection | undefined {
    const candidates = this.authenticatedApps().filter((a) => a.routesVerb(method))
    if (candidates.length === 0) return undefined
    this.rr = (this.rr + 1) % candidates.length
    return candidates[this.rr]
  }

  /** `sip|network|<meta>|<txnId>|<dialogId>|<local addr>|<local port>` + message, as drachtio-agent parses it. */
  deliver(app: AppConnection, msg: SipMessage, from: Inbound | Remote, txnId: string, dlgId: string): void {
    const raw = msg.toString()
    // receivedOn: a wildcard bind does not tell us the datagram's destination, so advertise ours.
    const la = 'localAddress' in from && from.localAddress !== '0.0.0.0' && from.localAddress !== '::' ? from.localAddress : this.localHost()
    const local = `${la}|${'localPort' in from ? from.localPort : this.port}`
    const meta = formatMeta({ source: 'network', length: Buffer.byteLength(raw), protocol: from.protocol, address: from.address, port: from.port, time: stackTime() })
    app.send(`sip|${meta}|${txnId}|${dlgId}|${local}\r\n${raw}`)
  }

  private onAck(ack: SipMessage, from: Inbound): void {
    // ACK for a non-2xx final is part of the INVITE transaction (§17.2.1).
    const txn = this.tl.matchAck(ack)
    if (txn && txn.state !== 'accepted') { txn.onAck(); return }
    const toTag = ack.toTag
    const d = toTag ? this.dialogs.match(ack.callId, toTag, ack.fromTag ?? '') : undefined
    if (d) {
      const seq = ack.cseq.seq
      if (d.pending2xx && d.pending2xx.seq === seq) {
        clearTimeout(d.pending2xx.timer)
        clearTimeout(d.pending2xx.giveUp)
        d.pending2xx = undefined
        const app = this.appById(d.appId)
        if (app) this.deliver(app, ack, from, randomUUID(), d.id)
      }
      // Retransmitted ACKs (no pending 2xx) are absorbed.
      return
    }
    if (txn) return
    // ACK for a 2xx that went through our proxy travels end to end (§16.7 / §16.4).
    this.proxy.forwardAck(ack, from)
  }

  private onCancel(cancel: SipMessage, from: Inbound): void {
    const inviteTxn = this.tl.matchCancelTarget(cancel)
    if (!inviteTxn) {
      this.respondStateless(cancel, from, 481)
      return
    }
    // §9.2: answer the CANCEL itself, then 487 the INVITE if still pending.
    const ctxn = this.tl.createServer(cancel, this.responseDest(cancel, from))
    if (ctxn) this.respondTxn(ctxn, makeResponse(cancel, 200, 'OK', inviteTxn.toTag))
    if (inviteTxn.context['proxy']) { this.proxy.onCancel(inviteTxn, cancel); return }
    if (inviteTxn.state !== 'proceeding') return
    // An INVITE still queued behind its source's others (invite-gate.ts) was never delivered.
    const unseen = this.inviteGate?.isQueued(inviteTxn.id) ?? false
    this.respondTxn(inviteTxn, makeResponse(inviteTxn.request, 487, 'Request Terminated', inviteTxn.toTag))
    const early = this.dialogs.get(dialogId(inviteTxn.request.callId, inviteTxn.request.fromTag ?? ''))
    if (early && early.state === 'early') this.dialogs.remove(early)
    this.cdr('stop', 'network', cancel, 'call-canceled')
    const app = inviteTxn.context['app'] as AppConnection | undefined
    if (app && !unseen) this.deliver(app, cancel, from, inviteTxn.id, '')
  }

  private onInDialogRequest(req: SipMessage, from: Inbound, d: Dialog): void {
    const app = this.appById(d.appId)
    const seq = req.cseq.seq
    // §12.2.2: lower CSeq than the last seen is out of order.
    if (d.remoteSeq >= 0 && seq < d.remoteSeq && req.method !== 'PRACK') {
      this.respondStateless(req, from, 500, 'Out Of Order')
      return
    }
    if (seq > d.remoteSeq) d.remoteSeq = seq
    const txn = this.tl.createServer(req, this.responseDest(req, from))
    if (!txn) return
    txn.toTag = d.localTag
    txn.context['dialog'] = d
    txn.context['from'] = from
    if (req.method === 'INVITE') txn.respond(makeResponse(req, 100))
    if (req.method === 'INVITE' || req.method === 'UPDATE' || req.method === 'SUBSCRIBE' || req.method === 'NOTIFY') {
      // Target refresh (§12.2.2); applied now since we pass it on unconditionally.
      const c = req.getAll('contact')[0]
      const uri = c ? parseNameAddr(c)?.uri : undefined
      if (uri) d.remoteTarget = uri
    }
    if (req.method === 'PRACK') {
      // RFC 3262 §4: stop retransmitting the matching reliable provisional; answer it here.
      const rack = /^\s*(\d+)\s+(\d+)\s+(\S+)/.exec(req.get('rack') ?? '')
      const p = rack ? d.pendingReliable.get(Number(rack[1])) : undefined
      if (rack && p) {
        clearTimeout(p.timer)
        clearTimeout(p.giveUp)
        d.pendingReliable.delete(Number(rack[1]))
        this.respondTxn(txn, makeResponse(req, 200, 'OK', d.localTag))
      } else {
        this.respondTxn(txn, makeResponse(req, 481, undefined, d.localTag))
        return
      }
    }
    if (!app) {
      if (req.method !== 'PRACK') this.respondTxn(txn, makeResponse(req, 481, undefined, d.localTag))
      if (req.method === 'BYE') this.dialogs.remove(d)
      return
    }
    txn.context['app'] = app
    if (req.method === 'BYE') this.cdr('stop', 'network', req, 'normal-release')
    if (req.method !== 'PRACK') this.guardUnanswered(txn)
    this.log.debug({ callId: req.callId, method: req.method, dialog: d.id }, 'in-dialog request delivered to application')
    this.deliver(app, req, from, txn.id, d.id)
  }

  private onResponse(res: SipMessage, from: Inbound): void {
    if (validateResponse(res)) { this.metrics.dropped.inc({ reason: 'malformed' }); return }
    const txn = this.tl.matchClient(res)
    if (txn) {
      txn.context['lastFrom'] = from
      txn.receive(res)
      return
    }
    // A 2xx retransmitted after the INVITE client transaction ended: re-ACK (§13.2.2.4).
    if (res.cseq.method === 'INVITE' && res.status >= 200 && res.status < 300) {
      const d = this.dialogs.get(dialogId(res.callId, res.fromTag ?? ''))
      if (d?.lastAck && d.lastAck.seq === res.cseq.seq) { this.send(d.lastAck.dest, d.lastAck.msg); return }
      if (this.proxy.forwardStrayResponse(res)) return
    }
    this.metrics.dropped.inc({ reason: 'no-transaction' })
  }

  // ---- application side -----------------------------------------------------

  appById(id: string): AppConnection | undefined {
    for (const a of this.control.apps) if (a.id === id) return a
    return undefined
  }

  private onAppConnection(app: AppConnection): void {
    app.on('message', (m) => {
      try {
        this.onAppMessage(app, m)
      } catch (err) {
        this.log.error({ err }, 'error handling application message')
        app.respond(m.msgId, `NO|${String((err as Error).message ?? err).replace(/[|\r\n]/g, ' ')}`)
      }
    })
    app.on('close', () => {
      this.log.debug({ app: app.id }, 'application disconnected')
      // Requests the app will never answer now: fail them rather than let them time out.
      for (const txn of [...this.tl.serverTransactions()]) {
        if (txn.context['app'] !== app || (txn.state !== 'proceeding' && txn.state !== 'trying')) continue
        if (txn.context['proxy']) continue
        this.respondTxn(txn, makeResponse(txn.request, 503, 'Service Unavailable', txn.toTag))
      }
    })
  }

  private onAppMessage(app: AppConnection, m: ClientMessage): void {
    if (m.type === 'authenticate') {
      if (m.args[0] === this.opts.secret) {
        app.authenticated = true
        app.tags = (m.args[1] ?? '').split(',').filter(Boolean)
        const hp = this.hostport()
        app.respond(m.msgId, `OK|udp/${hp},tcp/${hp}|${SERVER_VERSION}|udp/${hp},tcp/${hp}`)
      } else {
        app.respond(m.msgId, 'NO|incorrect secret')
        app.close()
      }
      return
    }
    if (!app.authenticated) { app.close(); return }
    switch (m.type) {
      case 'ping':
        app.respond(m.msgId, 'OK')
        return
      case 'route':
        if (m.args[0]) app.routes.add(m.args[0].toLowerCase())
        app.respond(m.msgId, 'OK')
        return
      case 'remove_route':
        if (m.args[0]) app.routes.delete(m.args[0].toLowerCase())
        app.respond(m.msgId, 'OK')
        return
      case 'sip':
        this.onAppSip(app, m)
        return
      case 'proxy':
        this.proxy.onAppProxy(app, m)
        return
      default:
        app.respond(m.msgId, 'NO|Unknown message type')
    }
  }

  private onAppSip(app: AppConnection, m: ClientMessage): void {
    if (!m.sip) { app.respond(m.msgId, 'NO|missing sip message'); return }
    let msg: SipMessage
    try {
      msg = parseMessage(Buffer.from(m.sip, 'utf8'), { ignoreContentLength: true, limits: { ...this.limits, maxBytes: 4 * 1024 * 1024 } })
    } catch (err) {
      app.respond(m.msgId, `NO|invalid sip message: ${(err as Error).message}`)
      return
    }
    const txnId = m.args[0] ?? ''
    const dlgId = m.args[1] ?? ''
    const routeUrl = m.args[2] ?? ''
    if (!msg.isRequest) {
      if (!txnId) { app.respond(m.msgId, 'NO|transaction id missing'); return }
      this.appResponse(app, m.msgId, txnId, msg)
      return
    }
    const fail = (err: unknown): void => {
      // async paths must never leave a rejection unhandled (it would end the process)
      this.log.error({ err }, 'error sending application request')
      app.respond(m.msgId, `NO|${String((err as Error)?.message ?? err).replace(/[|\r\n]/g, ' ')}`)
    }
    if (dlgId) { this.appInDialogRequest(app, m.msgId, dlgId, msg).catch(fail); return }
    if (txnId) {
      if (msg.method === 'CANCEL') { this.appCancel(app, m.msgId, txnId, msg); return }
      app.respond(m.msgId, 'NO|only CANCEL may be sent within a transaction')
      return
    }
    // drachtio-server: a request carrying the Call-ID of an existing dialog is sent inside it.
    const callId = msg.get('call-id')
    const existing = callId ? this.dialogs.findByCallId(callId) : undefined
    if (existing && existing.state === 'confirmed' && existing.appId === app.id && msg.method !== 'ACK') {
      this.appInDialogRequest(app, m.msgId, existing.id, msg).catch(fail)
      return
    }
    this.appNewRequest(app, m.msgId, msg, routeUrl).catch(fail)
  }

  private ackApp(app: AppConnection, clientMsgId: string, sent: SipMessage, to: Remote, txnId: string, dlgId: string): void {
    const raw = sent.toString()
    const meta = formatMeta({ source: 'application', length: Buffer.byteLength(raw), protocol: to.protocol, address: to.address, port: to.port, time: stackTime() })
    app.respond(clientMsgId, `OK|${meta}|${txnId}|${dlgId}`, raw)
  }

  /** Replaces `localhost` in app-supplied addresses with ours, as drachtio-server does. */
  private fixLocalhost(value: string, protocol: Protocol, withPort: boolean): string {
    if (!/localhost/i.test(value)) return value
    return value.replace(/(sips?:(?:[^@<>;]*@)?)localhost(?![\w.-])(?::\d+)?/gi, (_m, pre: string) =>
      `${pre}${withPort ? this.hostport() : uriHost(this.localHost())}${withPort && protocol === 'tcp' && !/transport=/i.test(value) ? ';transport=tcp' : ''}`)
  }

  /** App-supplied headers that are not owned by the core, in order. */
  private appHeaders(msg: SipMessage, protocol: Protocol): { name: string; value: string }[] {
    return msg.headers
      .filter((h) => !CORE_HEADERS.has(h.name.toLowerCase()))
      .map((h) => (h.name === 'Contact' ? { name: h.name, value: this.fixLocalhost(h.value, protocol, true) } : h))
  }

  // -- responses from the app (UAS side) --

  private appResponse(app: AppConnection, clientMsgId: string, txnId: string, appRes: SipMessage): void {
    const txn = this.tl.serverById(txnId)
    if (!txn || txn.state === 'terminated' || txn.state === 'completed' || txn.state === 'confirmed' ||
        (txn.state === 'accepted' && !(appRes.status >= 200 && appRes.status < 300))) {
      app.respond(clientMsgId, 'NO|transaction not found or already completed')
      return
    }
    const req = txn.request
    const status = appRes.status
    if (status > 100) this.inviteGate?.release(txn.id) // the application has looked at it
    // The app may pick the To tag itself (Response#send with a To header carrying a tag).
    const appTo = appRes.get('to')
    const appTag = paramOf(appTo, 'tag')
    if (appTag && !req.toTag) txn.toTag = appTag
    const res = makeResponse(req, status, appRes.reason || REASONS[status], txn.toTag)
    const protocol = txn.remote.protocol
    for (const h of this.appHeaders(appRes, protocol)) res.headers.push({ ...h })
    res.body = appRes.body
    const method = req.method
    let d: Dialog | undefined = txn.context['dialog'] as Dialog | undefined
    const creating = DIALOG_METHODS.has(method) && !req.toTag && status > 100 && status < 300
    if (creating) {
      // §12.1.1: echo Record-Route; provide a Contact.
      for (const rr of req.headers.filter((h) => h.name === 'Record-Route')) res.headers.push({ ...rr })
      if (!res.has('contact')) res.add('Contact', `<${this.contactUri(protocol)}>`)
      const id = dialogId(req.callId, req.fromTag ?? '')
      d = this.dialogs.get(id)
      if (!d) {
        const c = req.getAll('contact')[0]
        const from = txn.context['from'] as Inbound
        const fromNa = parseNameAddr(req.get('from')!)!
        const toNa = parseNameAddr(req.get('to')!)!
        d = {
          id, role: 'uas', callId: req.callId, localTag: txn.toTag!, remoteTag: req.fromTag ?? '',
          localUri: stripTag(req.get('to')!, toNa), remoteUri: stripTag(req.get('from')!, fromNa),
          localSeq: Math.floor(Math.random() * 10000), remoteSeq: req.cseq.seq,
          remoteTarget: (c ? parseNameAddr(c)?.uri : undefined) ?? fromNa.uri,
          routeSet: req.getAll('record-route'), peer: { protocol: from.protocol, address: from.address, port: from.port },
          appId: app.id, state: 'early', method, inviteSeq: req.cseq.seq, pendingReliable: new Map(), nextRSeq: 1 + Math.floor(Math.random() * 1000),
          createdAt: Date.now(),
        }
        this.dialogs.add(d)
      }
    } else if (method === 'INVITE' && !req.toTag && status >= 300) {
      const early = this.dialogs.get(dialogId(req.callId, req.fromTag ?? ''))
      if (early && early.state === 'early') this.dialogs.remove(early)
    }
    if (d && method === 'INVITE' && status > 100 && status < 200 && /100rel/i.test(res.get('require') ?? '')) {
      // RFC 3262 §3: reliable provisional; retransmit until PRACK.
      if (!res.has('rseq')) res.add('RSeq', String(d.nextRSeq++))
      this.startReliable(d, txn, res)
    }
    if (method === 'INVITE' && req.toTag === undefined && status >= 200) {
      const cause = status < 300 ? undefined : status === 487 ? 'call-canceled' : 'call-rejected'
      if (cause) this.cdr('stop', 'application', res, cause)
      else this.cdr('start', 'application', res, 'uas')
    }
    if (d && status >= 200 && status < 300 && (method === 'INVITE' || method === 'SUBSCRIBE')) {
      if (d.state === 'early') { d.state = 'confirmed'; d.connectedAt = Date.now() }
      if (method === 'INVITE') this.start2xxRetransmit(d, txn, res)
    }
    if (d && method === 'BYE' && status >= 200) this.dialogs.remove(d)
    this.respondTxn(txn, res)
    const dlgIdOut = d && status > 100 && !(status >= 300) ? d.id : ''
    this.ackApp(app, clientMsgId, res, txn.remote, txn.id, dlgIdOut)
  }

  private startReliable(d: Dialog, txn: ServerTransaction, res: SipMessage): void {
    const rseq = Number(res.get('rseq'))
    if (txn.reliable) {
      const giveUp = setTimeout(() => d.pendingReliable.delete(rseq), 64 * this.timers.T1)
      d.pendingReliable.set(rseq, { timer: giveUp, giveUp })
      return
    }
    let interval = this.timers.T1
    const entry = { timer: setTimeout(() => {}, 0), giveUp: setTimeout(() => {
      clearTimeout(entry.timer)
      d.pendingReliable.delete(rseq)
    }, 64 * this.timers.T1) }
    const tick = (): void => {
      if (!d.pendingReliable.has(rseq) || txn.state !== 'proceeding') return
      this.metrics.retransmissions.inc({ kind: 'response', method: 'INVITE' })
      this.send(txn.remote, res)
      interval = Math.min(2 * interval, this.timers.T2)
      entry.timer = setTimeout(() => this.tl.guard(tick), interval)
    }
    entry.timer = setTimeout(() => this.tl.guard(tick), interval)
    d.pendingReliable.set(rseq, entry)
  }

  /** §13.3.1.4: the UAS core retransmits 2xx until the ACK arrives; without it the session ends. */
  private start2xxRetransmit(d: Dialog, txn: ServerTransaction, res: SipMessage): void {
    if (d.pending2xx) { clearTimeout(d.pending2xx.timer); clearTimeout(d.pending2xx.giveUp) }
    let interval = this.timers.T1
    const seq = txn.request.cseq.seq
    const tick = (): void => {
      if (!d.pending2xx || d.state === 'terminated') return
      this.metrics.retransmissions.inc({ kind: 'response', method: 'INVITE' })
      txn.respond(res) // passes through in Accepted (RFC 6026)
      if (txn.state === 'terminated') this.send(txn.remote, res)
      interval = Math.min(2 * interval, this.timers.T2)
      d.pending2xx.timer = setTimeout(() => this.tl.guard(tick), interval)
    }
    const timer = setTimeout(() => this.tl.guard(tick), txn.reliable ? 64 * this.timers.T1 * 2 : interval)
    const giveUp = setTimeout(() => this.tl.guard(() => this.ackTimeout(d)), 64 * this.timers.T1)
    d.pending2xx = { res, timer, giveUp, seq }
  }

  /** No ACK for our 2xx: BYE the peer and tell the app with an unsolicited BYE, like drachtio-server. */
  private ackTimeout(d: Dialog): void {
    if (!d.pending2xx) return
    clearTimeout(d.pending2xx.timer)
    d.pending2xx = undefined
    this.log.info({ dialog: d.id }, 'no ACK for 2xx, tearing down dialog')
    const bye = this.buildInDialog(d, SipMessage.request('BYE', d.remoteTarget))
    // drachtio-server (SipDialogController::endRetransmitFinalResponse) sends this Reason
    // (RFC 3326); drachtio-srf's Dialog reads its text for the 'destroy' event's reason.
    bye.msg.add('Reason', 'SIP ;cause=200 ;text="ACK timeout"')
    this.resolveDialogDest(d).then((dest) => {
      if (!dest) return
      bye.msg.prepend('Via', this.viaValue(dest.protocol, newBranch()))
      this.tl.createClient(bye.msg, dest, { onResponse: () => {} }).start()
      const app = this.appById(d.appId)
      if (app) {
        const raw = bye.msg.toString()
        const meta = formatMeta({ source: 'application', length: Buffer.byteLength(raw), protocol: dest.protocol, address: dest.address, port: dest.port, time: stackTime() })
        app.send(`sip|${meta}|unsolicited|${d.id}\r\n${raw}`)
      }
      this.cdr('stop', 'application', bye.msg, 'ack-timeout')
      this.dialogs.remove(d)
    }).catch((err: unknown) => this.log.error({ err }, 'ack timeout teardown failed'))
  }

  // -- requests from the app (UAC side) --

  private async appNewRequest(app: AppConnection, clientMsgId: string, appReq: SipMessage, routeUrl: string): Promise<void> {
    const method = appReq.method.toUpperCase()
    if (method === 'ACK') { app.respond(clientMsgId, 'NO|ACK outside a dialog'); return }
    const routes = appReq.getAll('route')
    const nextHop = routeUrl || (routes[0] ? parseNameAddr(routes[0])?.uri : undefined) || appReq.uri
    const dest = await this.resolve(nextHop)
    if (!dest) { app.respond(clientMsgId, `NO|unable to resolve ${nextHop}`); return }
    const p = dest.protocol
    const req = SipMessage.request(method, appReq.uri)
    req.add('Via', this.viaValue(p, newBranch()))
    req.add('Max-Forwards', appReq.get('max-forwards') ?? '70')
    for (const r of appReq.headers.filter((h) => h.name === 'Route')) req.add('Route', r.value)
    let from = appReq.get('from') ?? `<sip:${uriHost(this.localHost())}>`
    from = this.fixLocalhost(from, p, false)
    if (!paramOf(from, 'tag')) from += `;tag=${randomToken()}`
    req.add('From', from)
    req.add('To', this.fixLocalhost(appReq.get('to') ?? `<${appReq.uri}>`, p, false))
    req.add('Call-ID', appReq.get('call-id') ?? randomUUID())
    const cseqIn = appReq.get('cseq')
    const seq = cseqIn && /^\s*\d+/.test(cseqIn) ? parseInt(cseqIn, 10) : 1 + Math.floor(Math.random() * 1000)
    req.add('CSeq', `${seq} ${method}`)
    for (const h of this.appHeaders(appReq, p)) req.headers.push({ ...h })
    if ((method === 'INVITE' || method === 'SUBSCRIBE' || method === 'REFER') && !req.has('contact')) req.add('Contact', `<${this.contactUri(p)}>`)
    if (appReq.body.length && !req.has('content-type') && method === 'INVITE') req.add('Content-Type', 'application/sdp')
    req.body = appReq.body

    const creates = DIALOG_METHODS.has(method)
    const dlgIdHint = creates ? dialogId(req.callId, req.fromTag ?? '') : ''
    const txn = this.tl.createClient(req, dest, { onResponse: (res, rtx) => this.onUacResponse(app, txn, res, rtx) })
    txn.context['app'] = app
    txn.context['creates'] = creates
    txn.context['dialogId'] = dlgIdHint
    txn.start()
    if (method === 'INVITE') this.cdr('attempt', 'application', req)
    this.ackApp(app, clientMsgId, req, dest, txn.id, '')
  }

  private onUacResponse(app: AppConnection, txn: ClientTransaction, res: SipMessage, retransmission: boolean): void {
    const req = txn.request
    const method = req.method
    const status = res.status
    if (status >= 200) this.metrics.transactions.inc({ method, class: `${Math.floor(status / 100)}xx`, direction: 'out' })
    if (retransmission) {
      const d = this.dialogs.get(txn.context['dialogId'] as string ?? '')
      if (d?.lastAck && d.lastAck.seq === res.cseq.seq) this.send(d.lastAck.dest, d.lastAck.msg)
      return
    }
    if (status > 100) { const defer = this.deferredCancels.get(txn.id); if (defer) { this.deferredCancels.delete(txn.id); if (status < 200) defer() } }
    if (status >= 200) this.deferredCancels.delete(txn.id)
    let d = txn.context['dialog'] as Dialog | undefined
    let outId = d?.id ?? ''
    if (txn.context['creates']) {
      const id = txn.context['dialogId'] as string
      const remoteTag = res.toTag
      d = this.dialogs.get(id)
      if (status > 100 && status < 300 && remoteTag) {
        const c = res.getAll('contact')[0]
        const target = c ? parseNameAddr(c)?.uri : undefined
        const from = (txn.context['lastFrom'] as Inbound | undefined) ?? txn.dest
        if (!d) {
          d = {
            id, role: 'uac', callId: req.callId, localTag: req.fromTag ?? '', remoteTag,
            localUri: stripTag(req.get('from')!), remoteUri: stripTag(req.get('to')!),
            localSeq: req.cseq.seq, remoteSeq: -1, remoteTarget: target ?? req.uri,
            routeSet: res.getAll('record-route').reverse(), peer: { protocol: txn.dest.protocol, address: from.address, port: from.port },
            appId: app.id, state: 'early', method, inviteSeq: req.cseq.seq, pendingReliable: new Map(), nextRSeq: 1,
            createdAt: Date.now(),
          }
          this.dialogs.add(d)
        } else {
          if (d.remoteTag !== remoteTag) this.dialogs.setRemoteTag(d, remoteTag)
          if (target) d.remoteTarget = target
          const rr = res.getAll('record-route')
          if (rr.length && d.state === 'early') d.routeSet = rr.reverse()
        }
        if (status >= 200) {
          d.state = 'confirmed'
          d.connectedAt = Date.now()
          if (method === 'INVITE') this.cdr('start', 'network', res, 'uac')
        }
        outId = d.id
      } else if (status >= 300 && d && d.state === 'early') {
        this.dialogs.remove(d)
        if (method === 'INVITE') this.cdr('stop', 'network', res, status === 487 ? 'call-canceled' : 'call-rejected')
      } else if (status >= 300 && method === 'INVITE') {
        this.cdr('stop', 'network', res, status === 487 ? 'call-canceled' : 'call-rejected')
      } else if (status >= 200 && d) {
        outId = d.id
      }
      if (status >= 300 && !outId) outId = ''
    } else if (d) {
      if (method === 'INVITE' && status >= 200 && status < 300) {
        const c = res.getAll('contact')[0]
        const target = c ? parseNameAddr(c)?.uri : undefined
        if (target) d.remoteTarget = target
      }
      if (method === 'BYE' && status >= 200) this.dialogs.remove(d)
    }
    const from = (txn.context['lastFrom'] as Inbound | undefined) ?? txn.dest
    this.deliverResponse(app, res, from, txn.id, outId)
  }

  private deliverResponse(app: AppConnection, res: SipMessage, from: Inbound | Remote, txnId: string, dlgId: string): void {
    const raw = res.toString()
    const meta = formatMeta({ source: 'network', length: Buffer.byteLength(raw), protocol: from.protocol, address: from.address, port: from.port, time: stackTime() })
    app.send(`sip|${meta}|${txnId}|${dlgId}|\r\n${raw}`)
  }

  private appCancel(app: AppConnection, clientMsgId: string, txnId: string, appReq: SipMessage): void {
    const inv = this.tl.clientById(txnId)
    if (!inv || inv.request.method !== 'INVITE') { app.respond(clientMsgId, 'NO|unknown transaction'); return }
    if (inv.state !== 'calling' && inv.state !== 'proceeding') { app.respond(clientMsgId, 'NO|transaction already completed'); return }
    const invite = inv.request
    // §9.1: same Request-URI, Call-ID, To, From, Route, top Via (branch), CSeq number.
    const cancel = SipMessage.request('CANCEL', invite.uri)
    cancel.add('Via', invite.getAll('via')[0]!)
    cancel.add('Max-Forwards', '70')
    for (const h of invite.headers) if (h.name === 'Route') cancel.add('Route', h.value)
    cancel.add('From', invite.get('from')!)
    cancel.add('To', invite.get('to')!)
    cancel.add('Call-ID', invite.callId)
    cancel.add('CSeq', `${invite.cseq.seq} CANCEL`)
    for (const h of this.appHeaders(appReq, inv.dest.protocol)) if (h.name !== 'Contact' && h.name !== 'Content-Type') cancel.headers.push({ ...h })
    const send = (): void => {
      const ct = this.tl.createClient(cancel, inv.dest, { onResponse: () => {} })
      ct.start()
    }
    // §9.1: a CANCEL must not be sent before a provisional response has arrived.
    if (inv.gotProvisional) send()
    else this.deferredCancels.set(inv.id, send)
    this.ackApp(app, clientMsgId, cancel, inv.dest, randomUUID(), '')
  }

  /** Builds the dialog-owned part of an in-dialog request (§12.2.1.1). */
  buildInDialog(d: Dialog, appReq: SipMessage): { msg: SipMessage } {
    const method = appReq.method.toUpperCase()
    const req = SipMessage.request(method, d.remoteTarget)
    req.add('Max-Forwards', '70')
    for (const r of d.routeSet) req.add('Route', r)
    req.add('From', `${d.localUri};tag=${d.localTag}`)
    req.add('To', d.remoteTag ? `${d.remoteUri};tag=${d.remoteTag}` : d.remoteUri)
    req.add('Call-ID', d.callId)
    let seq: number
    if (method === 'ACK') seq = d.inviteSeq
    else { d.localSeq += 1; seq = d.localSeq }
    if (method === 'INVITE') d.inviteSeq = seq
    req.add('CSeq', `${seq} ${method}`)
    return { msg: req }
  }

  async resolveDialogDest(d: Dialog): Promise<Remote | undefined> {
    const first = d.routeSet[0]
    const nextHop = first ? parseNameAddr(first)?.uri ?? d.remoteTarget : d.remoteTarget
    const dest = await this.resolve(nextHop, d.peer)
    if (!dest) return undefined
    // Reuse the peer's TCP connection when the target is the same host (§18.2.1 connection reuse).
    if (dest.protocol === 'tcp' && d.peer.protocol === 'tcp' && dest.address === d.peer.address) return d.peer
    return dest
  }

  private async appInDialogRequest(app: AppConnection, clientMsgId: string, dlgId: string, appReq: SipMessage): Promise<void> {
    const d = this.dialogs.get(dlgId)
    const method = appReq.method.toUpperCase()
    if (!d || d.state === 'terminated') {
      // createUAC calls ack() for non-2xx finals too; that ACK was already sent by the transaction.
      app.respond(clientMsgId, 'NO|unable to find dialog')
      return
    }
    const dest = await this.resolveDialogDest(d)
    if (!dest) { app.respond(clientMsgId, 'NO|unable to resolve remote target'); return }
    const { msg: req } = this.buildInDialog(d, appReq)
    req.prepend('Via', this.viaValue(dest.protocol, newBranch()))
    for (const h of this.appHeaders(appReq, dest.protocol)) req.headers.push({ ...h })
    if (method === 'INVITE' && !req.has('contact')) req.add('Contact', `<${this.contactUri(dest.protocol)}>`)
    if (appReq.body.length && !req.has('content-type') && (method === 'INVITE' || method === 'ACK' || method === 'UPDATE' || method === 'PRACK')) req.add('Content-Type', 'application/sdp')
    req.body = appReq.body
    if (method === 'ACK') {
      // ACK for 2xx is sent by the UA core, outside any transaction (§13.2.2.4).
      this.send(dest, req)
      d.lastAck = { seq: req.cseq.seq, msg: req, dest }
      this.ackApp(app, clientMsgId, req, dest, randomUUID(), d.id)
      return
    }
    if (method === 'BYE') {
      this.cdr('stop', 'application', req, 'normal-release')
      if (d.pending2xx) { clearTimeout(d.pending2xx.timer); clearTimeout(d.pending2xx.giveUp); d.pending2xx = undefined }
    }
    const txn = this.tl.createClient(req, dest, { onResponse: (res, rtx) => this.onUacResponse(app, txn, res, rtx) })
    txn.context['app'] = app
    txn.context['dialog'] = d
    txn.context['dialogId'] = d.id
    txn.start()
    this.ackApp(app, clientMsgId, req, dest, txn.id, d.id)
  }

  // ---- cdr ------------------------------------------------------------------

  cdr(kind: 'attempt' | 'start' | 'stop', source: 'network' | 'application', msg: SipMessage, extra?: string): void {
    const verb = `cdr:${kind}`
    const apps = this.authenticatedApps().filter((a) => a.routes.has(verb))
    if (apps.length === 0) return
    const raw = msg.toString()
    const time = new Date().toISOString()
    for (const a of apps) a.send(`${verb}|${source}|${time}${extra !== undefined && kind !== 'attempt' ? '|' + extra : ''}\r\n${raw}`)
  }
}

function stripTag(value: string, na = parseNameAddr(value)): string {
  if (!na) return value
  const params = { ...na.params }
  delete params['tag']
  return `${na.display ? na.display + ' ' : ''}<${na.uri}>${formatParams(params)}`
}
