/**
 * The network side of the server: bytes in from the transports, parsed and validated, matched
 * to transactions (RFC 3261 §17), admitted or refused (per-source limits, overload), and
 * handed to the transaction user (§17: the "TU", here the drachtio application side) as
 * ACKs, CANCELs, in-dialog or routed requests, new requests with a server transaction,
 * and responses that no client transaction claims. Everything that leaves goes through
 * `send`, `respondStateless` or `respondTxn`.
 */
import type { Logger } from 'pino'
import {
  type SipMessage, SipParseError, parseMessage, makeResponse, validateRequest, validateResponse,
  randomToken, type ParseLimits,
} from './message.ts'
import { Transport, type Remote, type Inbound } from './transport.ts'
import { TransactionLayer, type ServerTransaction, type Timers } from './transaction-layer.ts'
import { SipAddressing } from './addressing.ts'
import type { SipMetrics } from './metrics.ts'
import { SourceRateLimiter, NO_SOURCE_LIMITS, isOutOfDialogInvite, type SourceLimits } from './rate-limit.ts'
import { OverloadGuard, type OverloadOptions } from './overload.ts'

export interface NetworkOptions {
  sipHost: string
  sipPort: number
  externalAddress?: string
  logger: Logger
  metrics: SipMetrics
  timers: Timers
  limits: ParseLimits
  /** One limit for every new transaction per source (older option; `sourceLimits` splits INVITE from the rest). */
  maxTransactionsPerSourcePerSecond?: number
  sourceLimits?: SourceLimits
  overload?: OverloadOptions
}

/** What the network side hands upwards (§17: the transaction user). */
export interface TransactionUser {
  /**
   * An ACK no INVITE server transaction absorbed: the ACK for a 2xx is the TU's (§13.3.1.4,
   * §17.2.1). `accepted` says it matched an INVITE transaction in the Accepted state (RFC 6026).
   */
  onAck(ack: SipMessage, from: Inbound, accepted: boolean): void
  /** §9.2: a CANCEL that matched an INVITE server transaction; the CANCEL itself is answered already. */
  onCancel(cancel: SipMessage, from: Inbound, invite: ServerTransaction): void
  /**
   * A request carrying a To tag (§12.2.2) or a Route through us (§16.4), before any admission
   * check: true when a dialog or the proxy took it. A To-tagged request nobody takes gets 481.
   */
  onRoutedRequest(req: SipMessage, from: Inbound): boolean
  /** A new out-of-dialog request that passed admission, with its server transaction (100 Trying sent for INVITE). */
  onNewRequest(txn: ServerTransaction, from: Inbound): void
  /** A response no client transaction matched (a retransmitted 2xx, §13.2.2.4); true when handled. */
  onStrayResponse(res: SipMessage): boolean
  /** A server transaction no longer waits on the TU: its final response went out or it ended. */
  onTransactionDone(txn: ServerTransaction): void
}

export class SipNetwork {
  readonly log: Logger
  readonly transport: Transport
  readonly tl: TransactionLayer
  readonly address: SipAddressing
  readonly metrics: SipMetrics
  readonly overload: OverloadGuard
  readonly timers: Timers
  readonly limits: ParseLimits
  /** Per-source token buckets for new INVITEs and for other new requests (may be the same object). */
  private readonly inviteLimiter: SourceRateLimiter
  private readonly requestLimiter: SourceRateLimiter
  /** Merged-request detection (§8.2.2.2): Call-ID|From tag|CSeq → server transaction key. */
  private readonly inProgress = new Map<string, string>()
  private tu!: TransactionUser

  constructor(opts: NetworkOptions) {
    this.log = opts.logger
    this.timers = opts.timers
    this.limits = opts.limits
    this.metrics = opts.metrics
    this.transport = new Transport({ host: opts.sipHost, port: opts.sipPort, maxMessageBytes: this.limits.maxBytes, logger: this.log })
    this.address = new SipAddressing({ sipHost: opts.sipHost, externalAddress: opts.externalAddress, port: () => this.transport.boundPort })
    this.tl = new TransactionLayer({
      send: (to, msg) => this.transport.send(to, msg.toBuffer()),
      onRetransmit: (kind, method) => this.metrics.retransmissions.inc({ kind, method }),
      onError: (err) => this.log.error({ err }, 'error in transaction timer'),
    }, this.timers)
    this.overload = new OverloadGuard(opts.overload)
    if (opts.maxTransactionsPerSourcePerSecond) {
      this.inviteLimiter = this.requestLimiter = new SourceRateLimiter(opts.maxTransactionsPerSourcePerSecond)
    } else {
      const l = opts.sourceLimits ?? NO_SOURCE_LIMITS
      this.inviteLimiter = new SourceRateLimiter(l.invitesPerSecond, Math.max(1, l.invitesPerSecond * l.burstSeconds))
      this.requestLimiter = new SourceRateLimiter(l.requestsPerSecond, Math.max(1, l.requestsPerSecond * l.burstSeconds))
    }
    this.transport.on('message', (data, from, stream) => {
      try {
        this.onMessage(data, from, stream)
      } catch (err) {
        // Never let one bad message take the process down.
        this.log.error({ err }, 'error handling sip message')
      }
    })
  }

  /** True when new requests are limited per source (the application side then also queues INVITEs per source). */
  get limitsSources(): boolean { return this.inviteLimiter.enabled }

  /** Set once, before `listen`: where requests and stray responses go. */
  attach(tu: TransactionUser): void { this.tu = tu }

  async listen(): Promise<void> { await this.transport.listen() }

  /** Stops admission bookkeeping (limiters, overload sampling); `tl.shutdown` and `close` follow. */
  stopAdmission(): void {
    this.inviteLimiter.close()
    this.requestLimiter.close()
    this.overload.close()
  }

  async close(): Promise<void> { await this.transport.close() }

  get port(): number { return this.transport.boundPort }

  send(to: Remote, msg: SipMessage): void {
    this.transport.send(to, msg.toBuffer())
  }

  /** A response outside any transaction (§8.2: refusals before a transaction exists, §12.2.2 481). */
  respondStateless(req: SipMessage, from: Inbound | Remote, status: number, reason?: string): void {
    const res = makeResponse(req, status, reason, randomToken())
    this.send(this.address.responseDest(req, from), res)
    this.metrics.transactions.inc({ method: req.method, class: `${Math.floor(status / 100)}xx`, direction: 'in' })
  }

  /** Sends a response through a server transaction and counts finals. */
  respondTxn(txn: ServerTransaction, res: SipMessage): void {
    if (res.status >= 200) this.tu.onTransactionDone(txn)
    txn.respond(res)
    if (res.status >= 200) this.metrics.transactions.inc({ method: txn.request.method, class: `${Math.floor(res.status / 100)}xx`, direction: 'in' })
  }

  // ---- ingress --------------------------------------------------------------

  private onMessage(data: Buffer, from: Inbound, stream: boolean): void {
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
      // §17.1.1.3: an ACK is never answered.
      if (msg.method !== 'ACK') this.rejectMalformed(msg, from, bad)
      else this.metrics.dropped.inc({ reason: 'malformed' })
      return
    }
    this.onRequest(msg, from)
  }

  /** 400 (or 505) for a request we could read enough of to answer (§8.2, §21.4.1). */
  private rejectMalformed(req: SipMessage, from: Inbound, reason: string): void {
    // A response needs a Via and the core headers to be matched by the sender; an unparseable
    // Via (e.g. SIP/7.0) still lets us answer to the source address.
    const via = req.getAll('via')[0]
    if (!via || !req.has('call-id') || !req.has('from') || !req.has('to') || !req.has('cseq')) {
      this.metrics.dropped.inc({ reason: 'malformed' })
      return
    }
    const status = reason === 'Version Not Supported' ? 505 : 400
    const res = makeResponse(req, status, reason.replace(/[\r\n]/g, ' '), randomToken())
    this.send(this.address.responseDest(req, from), res)
    this.metrics.transactions.inc({ method: req.method.slice(0, 16), class: `${Math.floor(status / 100)}xx`, direction: 'in' })
  }

  private onRequest(req: SipMessage, from: Inbound): void {
    this.address.stampVia(req, from)
    const method = req.method
    if (method === 'ACK') {
      // ACK for a non-2xx final is part of the INVITE transaction (§17.2.1).
      const txn = this.tl.matchAck(req)
      if (txn && txn.state !== 'accepted') { txn.onAck(); return }
      this.tu.onAck(req, from, txn !== undefined)
      return
    }
    // §17.2.3: a retransmission is absorbed by its server transaction.
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

    // In-dialog requests (BYE) and requests routed through our proxy pass before any limit, so
    // admitted calls can end.
    if (this.tu.onRoutedRequest(req, from)) return
    if (toTag) {
      // §12.2.2: no dialog for it. A stateless 481 costs as much to send as the request did:
      // limited like new requests, so a flood of made-up dialogs is not reflected at line rate.
      if (!this.requestLimiter.allow(from.address)) { this.metrics.dropped.inc({ reason: 'rate-limit' }); return }
      this.respondStateless(req, from, 481)
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
      this.send(this.address.responseDest(req, from), res)
      this.metrics.dropped.inc({ reason: 'overload' })
      return
    }
    const txn = this.tl.createServer(req, this.address.responseDest(req, from))
    if (!txn) return
    this.trackInProgress(req, txn)
    txn.context['from'] = from
    if (method === 'INVITE') txn.respond(makeResponse(req, 100)) // §17.2.1: 100 Trying at once
    this.tu.onNewRequest(txn, from)
  }

  private trackInProgress(req: SipMessage, txn: ServerTransaction): void {
    const mk = `${req.callId}|${req.fromTag ?? ''}|${req.get('cseq')}`
    this.inProgress.set(mk, txn.key)
    txn.onTerminated = () => {
      this.inProgress.delete(mk)
      this.tu.onTransactionDone(txn)
    }
  }

  private onCancel(cancel: SipMessage, from: Inbound): void {
    const inviteTxn = this.tl.matchCancelTarget(cancel)
    if (!inviteTxn) {
      this.respondStateless(cancel, from, 481)
      return
    }
    // §9.2: the CANCEL is answered hop by hop with 200, whoever owns the INVITE (UAS or proxy, §16.10).
    const ctxn = this.tl.createServer(cancel, this.address.responseDest(cancel, from))
    if (ctxn) this.respondTxn(ctxn, makeResponse(cancel, 200, 'OK', inviteTxn.toTag))
    this.tu.onCancel(cancel, from, inviteTxn)
  }

  private onResponse(res: SipMessage, from: Inbound): void {
    if (validateResponse(res)) { this.metrics.dropped.inc({ reason: 'malformed' }); return }
    // §17.1.3: matched by the top Via's branch and the CSeq method.
    const txn = this.tl.matchClient(res)
    if (txn) {
      txn.context['lastFrom'] = from
      txn.receive(res)
      return
    }
    // A 2xx retransmitted after the INVITE client transaction ended is the TU's (§13.2.2.4).
    if (res.cseq.method === 'INVITE' && res.status >= 200 && res.status < 300 && this.tu.onStrayResponse(res)) return
    this.metrics.dropped.inc({ reason: 'no-transaction' })
  }
}

