/**
 * Transaction layer, RFC 3261 §17 with the RFC 6026 "Accepted" states.
 *
 * Server transactions absorb request retransmissions and retransmit their last
 * response; client transactions retransmit requests over UDP and time out with a
 * locally generated 408. Timers A–K (and L/M from RFC 6026) follow the RFC
 * names so the code can be read against the state diagrams.
 */
import { randomUUID } from 'node:crypto'
import { SipMessage, makeResponse, MAGIC_COOKIE } from './message.ts'
import type { Remote } from './transport.ts'

export interface Timers { T1: number; T2: number; T4: number }
export const DEFAULT_TIMERS: Timers = { T1: 500, T2: 4000, T4: 5000 }

export interface TxnHooks {
  send(to: Remote, msg: SipMessage): void
  onRetransmit?(kind: 'request' | 'response', method: string): void
  /** Errors thrown by timer-driven work; a timer must never take the process down. */
  onError?(err: unknown): void
}

type ServerState = 'trying' | 'proceeding' | 'completed' | 'confirmed' | 'accepted' | 'terminated'
type ClientState = 'calling' | 'trying' | 'proceeding' | 'completed' | 'accepted' | 'terminated'

/** §17.2.3: branch + sent-by + method (ACK matches the INVITE). RFC 2543 peers fall back to header matching. */
export function serverKey(req: SipMessage, methodOverride?: string): string | undefined {
  const via = req.topVia
  if (!via) return undefined
  const method = methodOverride ?? (req.method === 'ACK' ? 'INVITE' : req.method)
  const branch = via.params['branch']
  if (branch && branch.startsWith(MAGIC_COOKIE)) return `${branch}|${via.host}:${via.port ?? ''}|${method}`
  // §17.2.3 fallback for RFC 2543 requests (no magic cookie).
  return `2543|${req.callId}|${req.fromTag ?? ''}|${req.cseq.seq}|${method}|${via.raw}`
}

/** §17.1.3: branch of the top Via + CSeq method. */
export function clientKey(branch: string, method: string): string { return `${branch}|${method}` }

export class ServerTransaction {
  readonly id = randomUUID()
  readonly createdAt = Date.now()
  state: ServerState
  lastResponse?: SipMessage
  private timers: NodeJS.Timeout[] = []
  /** Local To tag chosen for this request's responses (kept stable across provisionals and final). */
  toTag?: string
  /** Set by the owner: called when the transaction ends (for bookkeeping). */
  onTerminated?: () => void
  /** Called when Timer H fires (no ACK for a non-2xx final). */
  onAckTimeout?: () => void
  /** Free-form slot for the core (e.g. which app owns it, proxy context). */
  context: Record<string, unknown> = {}

  constructor(
    private readonly layer: TransactionLayer,
    readonly key: string,
    readonly request: SipMessage,
    readonly remote: Remote,
  ) {
    this.state = request.method === 'INVITE' ? 'proceeding' : 'trying'
  }

  get isInvite(): boolean { return this.request.method === 'INVITE' }
  get reliable(): boolean { return this.remote.protocol !== 'udp' }

  /** Sends a response through the transaction, driving its state machine. */
  respond(res: SipMessage): void {
    if (this.state === 'terminated' || this.state === 'confirmed') return
    if (this.state === 'completed') return // final already sent; retransmissions go via onRetransmission
    const T = this.layer.timers
    if (this.state === 'accepted') {
      // RFC 6026 §7.1: 2xx retransmissions from the TU pass through in Accepted.
      if (res.status >= 200 && res.status < 300) this.layer.hooks.send(this.remote, res)
      return
    }
    this.lastResponse = res
    this.layer.hooks.send(this.remote, res)
    if (res.status < 200) {
      if (this.state === 'trying') this.state = 'proceeding'
      return
    }
    if (this.isInvite) {
      if (res.status < 300) {
        // RFC 6026: Accepted, Timer L absorbs INVITE retransmissions. The 2xx itself is
        // retransmitted by the UA core (dialog), so the transaction need not keep it.
        this.state = 'accepted'
        this.lastResponse = undefined
        this.after(64 * T.T1, () => this.terminate())
      } else {
        this.state = 'completed'
        this.layer.indexNon2xx(this, res)
        if (!this.reliable) this.retransmitG(T.T1)
        // Timer H: give up waiting for the ACK.
        this.after(64 * T.T1, () => { this.onAckTimeout?.(); this.terminate() })
      }
    } else {
      this.state = 'completed'
      // Timer J
      if (this.reliable) this.terminate()
      else this.after(64 * T.T1, () => this.terminate())
    }
  }

  private retransmitG(interval: number): void {
    this.after(interval, () => {
      if (this.state !== 'completed' || !this.lastResponse) return
      this.layer.hooks.onRetransmit?.('response', this.request.method)
      this.layer.hooks.send(this.remote, this.lastResponse)
      this.retransmitG(Math.min(2 * interval, this.layer.timers.T2))
    })
  }

  /** A retransmitted request arrived: resend the last response (§17.2.1, §17.2.2). */
  onRetransmission(): void {
    if (this.state === 'accepted') return // RFC 6026: absorbed; the TU retransmits 2xx itself
    if (this.lastResponse && (this.state === 'proceeding' || this.state === 'completed')) {
      this.layer.hooks.onRetransmit?.('response', this.request.method)
      this.layer.hooks.send(this.remote, this.lastResponse)
    }
  }

  /** ACK for a non-2xx final response (§17.2.1): Completed → Confirmed, Timer I. */
  onAck(): void {
    if (this.state !== 'completed') return
    this.state = 'confirmed'
    this.clearTimers()
    if (this.reliable) this.terminate()
    else this.after(this.layer.timers.T4, () => this.terminate())
  }

  after(ms: number, fn: () => void): void {
    this.timers.push(setTimeout(() => this.layer.guard(fn), ms))
  }

  private clearTimers(): void {
    for (const t of this.timers) clearTimeout(t)
    this.timers = []
  }

  terminate(): void {
    if (this.state === 'terminated') return
    this.state = 'terminated'
    this.clearTimers()
    this.layer.removeServer(this)
    this.onTerminated?.()
  }
}

export interface ClientHandlers {
  /** Every response, including locally generated 408 on timeout. `retransmission` marks repeated 2xx (RFC 6026 Accepted). */
  onResponse(res: SipMessage, retransmission: boolean): void
}

export class ClientTransaction {
  readonly id = randomUUID()
  state: ClientState
  private timers: NodeJS.Timeout[] = []
  ack?: SipMessage
  context: Record<string, unknown> = {}
  gotProvisional = false
  lastFinal?: SipMessage

  constructor(
    private readonly layer: TransactionLayer,
    readonly key: string,
    readonly request: SipMessage,
    readonly dest: Remote,
    private readonly handlers: ClientHandlers,
  ) {
    this.state = request.method === 'INVITE' ? 'calling' : 'trying'
  }

  get isInvite(): boolean { return this.request.method === 'INVITE' }
  get reliable(): boolean { return this.dest.protocol !== 'udp' }

  start(): void {
    const T = this.layer.timers
    const wire = this.request
    this.layer.hooks.send(this.dest, wire)
    if (!this.reliable) this.retransmit(T.T1) // Timer A / Timer E
    // Timer B / Timer F
    this.after(64 * T.T1, () => {
      if (this.state === 'calling' || this.state === 'trying' || this.state === 'proceeding') {
        this.terminate()
        this.handlers.onResponse(makeResponse(this.request, 408, 'Request Timeout'), false)
      }
    })
  }

  private retransmit(interval: number): void {
    this.after(interval, () => {
      const s = this.state
      if (s !== 'calling' && s !== 'trying' && s !== 'proceeding') return
      if (this.isInvite && s === 'proceeding') return // Timer A stops on a provisional
      this.layer.hooks.onRetransmit?.('request', this.request.method)
      this.layer.hooks.send(this.dest, this.request)
      // Timer E: in Proceeding it fires every T2 (§17.1.2.2).
      const next = this.isInvite ? 2 * interval : (s === 'proceeding' ? this.layer.timers.T2 : Math.min(2 * interval, this.layer.timers.T2))
      this.retransmit(next)
    })
  }

  receive(res: SipMessage): void {
    const T = this.layer.timers
    const s = this.state
    if (s === 'terminated') return
    if (res.status < 200) {
      if (s === 'calling' || s === 'trying' || s === 'proceeding') {
        this.state = 'proceeding'
        this.gotProvisional = true
        this.handlers.onResponse(res, false)
      }
      return
    }
    if (this.isInvite) {
      if (res.status < 300) {
        if (s === 'accepted') { this.handlers.onResponse(res, true); return }
        if (s === 'completed') return
        // RFC 6026 §7.2: Accepted, Timer M.
        this.state = 'accepted'
        this.lastFinal = res
        this.clearTimers()
        this.after(64 * T.T1, () => this.terminate())
        this.handlers.onResponse(res, false)
        return
      }
      if (s === 'completed') {
        // retransmitted final: resend the ACK (§17.1.1.2)
        if (this.ack) this.layer.hooks.send(this.dest, this.ack)
        return
      }
      if (s === 'accepted') return
      this.state = 'completed'
      this.lastFinal = res
      this.clearTimers()
      this.ack = buildNon2xxAck(this.request, res)
      this.layer.hooks.send(this.dest, this.ack)
      // Timer D
      if (this.reliable) this.terminate()
      else this.after(32_000 > 64 * T.T1 ? 64 * T.T1 : 32_000, () => this.terminate())
      this.handlers.onResponse(res, false)
      return
    }
    if (s === 'completed') return
    this.state = 'completed'
    this.lastFinal = res
    this.clearTimers()
    // Timer K
    if (this.reliable) this.terminate()
    else this.after(T.T4, () => this.terminate())
    this.handlers.onResponse(res, false)
  }

  after(ms: number, fn: () => void): void {
    this.timers.push(setTimeout(() => this.layer.guard(fn), ms))
  }

  private clearTimers(): void {
    for (const t of this.timers) clearTimeout(t)
    this.timers = []
  }

  terminate(): void {
    if (this.state === 'terminated') return
    this.state = 'terminated'
    this.clearTimers()
    this.layer.removeClient(this)
  }
}

/** §17.1.1.3: ACK for a non-2xx response shares the INVITE's branch, Request-URI, Route and Call-ID. */
export function buildNon2xxAck(invite: SipMessage, res: SipMessage): SipMessage {
  const ack = SipMessage.request('ACK', invite.uri)
  const topVia = invite.getAll('via')[0]
  if (topVia) ack.add('Via', topVia)
  for (const h of invite.headers) {
    if (h.name === 'From' || h.name === 'Call-ID' || h.name === 'Route' || h.name === 'Max-Forwards') ack.add(h.name, h.value)
  }
  ack.add('To', res.get('to') ?? invite.get('to') ?? '')
  ack.add('CSeq', `${invite.cseq.seq} ACK`)
  return ack
}

/**
 * §9.1: a CANCEL for a pending INVITE client transaction: the INVITE's
 * Request-URI, top Via (so its branch), Route set, From, To, Call-ID and
 * CSeq number, with the method CANCEL.
 */
export function buildCancel(invite: SipMessage): SipMessage {
  const cancel = SipMessage.request('CANCEL', invite.uri)
  cancel.add('Via', invite.getAll('via')[0]!)
  cancel.add('Max-Forwards', '70')
  for (const h of invite.headers) if (h.name === 'Route') cancel.add('Route', h.value)
  cancel.add('From', invite.get('from')!)
  cancel.add('To', invite.get('to')!)
  cancel.add('Call-ID', invite.callId)
  cancel.add('CSeq', `${invite.cseq.seq} CANCEL`)
  return cancel
}

export class TransactionLayer {
  private server = new Map<string, ServerTransaction>()
  private client = new Map<string, ClientTransaction>()
  private serversById = new Map<string, ServerTransaction>()
  private clientsById = new Map<string, ClientTransaction>()

  constructor(readonly hooks: TxnHooks, readonly timers: Timers = DEFAULT_TIMERS) {}

  guard(fn: () => void): void {
    try { fn() } catch (err) { this.hooks.onError?.(err) }
  }

  get serverCount(): number { return this.server.size }
  get clientCount(): number { return this.client.size }

  matchServer(req: SipMessage): ServerTransaction | undefined {
    const key = serverKey(req)
    return key ? this.server.get(key) : undefined
  }

  /**
   * INVITE server transactions that sent a non-2xx final, by Call-ID, From tag, the To tag
   * of that response and CSeq number: the fields an ACK for it must repeat (§17.1.1.3).
   */
  private non2xx = new Map<string, ServerTransaction>()

  indexNon2xx(t: ServerTransaction, res: SipMessage): void {
    const k = `${t.request.callId}|${t.request.fromTag ?? ''}|${res.toTag ?? ''}|${t.request.cseq.seq}`
    this.non2xx.set(k, t)
    t.context['non2xxKey'] = k
  }

  /**
   * The INVITE server transaction an ACK for a non-2xx final belongs to (§17.2.1). Per
   * §17.1.1.3 that ACK carries the INVITE's branch and is matched by serverKey; some UAs
   * (sipp scenarios written with a fresh [branch], older stacks) send a new branch, and an
   * unmatched ACK leaves Timer G retransmitting the 4xx for 32 s: with a flood of challenged
   * INVITEs that is a retransmission storm. So when the branch does not match, the ACK is
   * matched by the dialog fields it repeats, including our To tag, which only the response
   * carried.
   */
  matchAck(ack: SipMessage): ServerTransaction | undefined {
    const byBranch = this.matchServer(ack)
    if (byBranch) return byBranch
    const toTag = ack.toTag
    if (!toTag) return undefined
    return this.non2xx.get(`${ack.callId}|${ack.fromTag ?? ''}|${toTag}|${ack.cseq.seq}`)
  }

  /** §9.2: the INVITE server transaction a CANCEL refers to. */
  matchCancelTarget(cancel: SipMessage): ServerTransaction | undefined {
    const key = serverKey(cancel, 'INVITE')
    return key ? this.server.get(key) : undefined
  }

  createServer(req: SipMessage, remote: Remote): ServerTransaction | undefined {
    const key = serverKey(req)
    if (!key) return undefined
    const t = new ServerTransaction(this, key, req, remote)
    this.server.set(key, t)
    this.serversById.set(t.id, t)
    return t
  }

  serverTransactions(): IterableIterator<ServerTransaction> { return this.server.values() }

  serverById(id: string): ServerTransaction | undefined { return this.serversById.get(id) }
  clientById(id: string): ClientTransaction | undefined { return this.clientsById.get(id) }

  matchClient(res: SipMessage): ClientTransaction | undefined {
    const via = res.topVia
    const branch = via?.params['branch']
    if (!branch) return undefined
    return this.client.get(clientKey(branch, res.cseq.method))
  }

  /** The request must already carry its top Via with a fresh branch. */
  createClient(req: SipMessage, dest: Remote, handlers: ClientHandlers): ClientTransaction {
    const branch = req.topVia?.params['branch'] ?? ''
    const key = clientKey(branch, req.method)
    const t = new ClientTransaction(this, key, req, dest, handlers)
    this.client.set(key, t)
    this.clientsById.set(t.id, t)
    return t
  }

  removeServer(t: ServerTransaction): void {
    if (this.server.get(t.key) === t) this.server.delete(t.key)
    const nk = t.context['non2xxKey'] as string | undefined
    if (nk !== undefined && this.non2xx.get(nk) === t) this.non2xx.delete(nk)
    this.serversById.delete(t.id)
  }

  removeClient(t: ClientTransaction): void {
    if (this.client.get(t.key) === t) this.client.delete(t.key)
    this.clientsById.delete(t.id)
  }

  shutdown(): void {
    for (const t of [...this.server.values()]) t.terminate()
    for (const t of [...this.client.values()]) t.terminate()
  }
}
