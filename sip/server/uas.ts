/**
 * The server as UAS on an application's behalf: requests from the network delivered to the
 * application that owns them (new requests, in-dialog requests, CANCEL, ACK for 2xx), and the
 * application's responses completed and sent (dialog creation, reliable provisionals, 2xx
 * retransmission until ACK). drachtio-server's division of work: the application decides,
 * the server keeps the RFC 3261 state.
 */
import { randomUUID } from 'node:crypto'
import { type SipMessage, makeResponse, parseNameAddr, paramOf, newBranch, REASONS } from './message.ts'
import type { Inbound } from './transport.ts'
import type { ServerTransaction } from './transaction-layer.ts'
import { type DialogStore, type Dialog, DIALOG_METHODS, dialogId, stripTag, inDialogRequest } from './dialogs.ts'
import type { AppConnection } from './drachtio-protocol.ts'
import type { InviteGate } from './invite-gate.ts'
import type { SipNetwork } from './sip-network.ts'
import { appHeaders, ackApp, deliverRequest, deliverUnsolicited, type CdrKind } from './drachtio-messages.ts'

export interface UasDeps {
  net: SipNetwork
  dialogs: DialogStore
  /** Per-source fairness of new INVITEs at the applications (on with the per-source limits). */
  inviteGate?: InviteGate
  appById(id: string): AppConnection | undefined
  cdr(kind: CdrKind, source: 'network' | 'application', msg: SipMessage, extra?: string): void
}

export class UserAgentServer {
  private readonly net: SipNetwork
  private readonly dialogs: DialogStore
  private readonly inviteGate?: InviteGate

  constructor(private readonly deps: UasDeps) {
    this.net = deps.net
    this.dialogs = deps.dialogs
    this.inviteGate = deps.inviteGate
  }

  // ---- requests from the network --------------------------------------------

  /** Hands a new request to `app`; INVITEs count as pending on the application until answered. */
  deliverNew(app: AppConnection, txn: ServerTransaction, from: Inbound): void {
    const req = txn.request
    const method = req.method
    txn.context['app'] = app
    if (method === 'INVITE') {
      this.net.overload.pendingInvites++
      txn.context['pending'] = true
      this.deps.cdr('attempt', 'network', req)
    }
    this.guardUnanswered(txn)
    this.net.log.debug({ callId: req.callId, method, app: app.id }, 'request delivered to application')
    if (method === 'INVITE' && this.inviteGate) {
      const gate = this.inviteGate
      const admitted = gate.submit(txn.id, from.address, () => {
        if (txn.state === 'proceeding') deliverRequest(app, req, from, txn.id, '', this.net.address)
        else gate.release(txn.id)
      })
      if (!admitted) {
        // The source already has a full queue of INVITEs waiting on the application.
        this.net.metrics.dropped.inc({ reason: 'rate-limit' })
        this.net.metrics.rateLimited.inc({ method: 'INVITE' })
        txn.terminate()
      }
      return
    }
    deliverRequest(app, req, from, txn.id, '', this.net.address)
  }

  /**
   * An application that never answers must not pin a transaction (and an early
   * dialog) forever: INVITE gets 408 after Timer C (§16.6 step 11: > 3 min),
   * other methods once their client has given up (64*T1, §17.1.2.2).
   */
  private guardUnanswered(txn: ServerTransaction): void {
    const ms = txn.isInvite ? 180_000 : 64 * this.net.timers.T1
    txn.after(ms, () => {
      if (txn.state !== 'proceeding' && txn.state !== 'trying') return
      this.net.log.warn({ callId: txn.request.callId, method: txn.request.method }, 'application did not answer; 408')
      const early = txn.isInvite ? this.dialogs.get(dialogId(txn.request.callId, txn.request.fromTag ?? '')) : undefined
      if (early && early.state === 'early') this.dialogs.remove(early)
      this.net.respondTxn(txn, makeResponse(txn.request, 408, 'Request Timeout', txn.toTag))
    })
  }

  /** The INVITE no longer waits for its application (final sent or transaction gone). */
  clearPending(txn: ServerTransaction): void {
    if (txn.context['pending']) { txn.context['pending'] = false; this.net.overload.pendingInvites-- }
    this.inviteGate?.release(txn.id)
  }

  /** §13.3.1.4: the ACK for our 2xx ends its retransmission and goes to the app; true when a dialog took it. */
  onAck(ack: SipMessage, from: Inbound): boolean {
    const toTag = ack.toTag
    const d = toTag ? this.dialogs.match(ack.callId, toTag, ack.fromTag ?? '') : undefined
    if (!d) return false
    const seq = ack.cseq.seq
    if (d.pending2xx && d.pending2xx.seq === seq) {
      clearTimeout(d.pending2xx.timer)
      clearTimeout(d.pending2xx.giveUp)
      d.pending2xx = undefined
      const app = this.deps.appById(d.appId)
      if (app) deliverRequest(app, ack, from, randomUUID(), d.id, this.net.address)
    }
    // Retransmitted ACKs (no pending 2xx) are absorbed.
    return true
  }

  /** §9.2: a CANCEL for an INVITE still pending at the application: 487 it and tell the app. */
  onCancel(cancel: SipMessage, from: Inbound, inviteTxn: ServerTransaction): void {
    if (inviteTxn.state !== 'proceeding') return
    // An INVITE still queued behind its source's others (invite-gate.ts) was never delivered.
    const unseen = this.inviteGate?.isQueued(inviteTxn.id) ?? false
    this.net.respondTxn(inviteTxn, makeResponse(inviteTxn.request, 487, 'Request Terminated', inviteTxn.toTag))
    const early = this.dialogs.get(dialogId(inviteTxn.request.callId, inviteTxn.request.fromTag ?? ''))
    if (early && early.state === 'early') this.dialogs.remove(early)
    this.deps.cdr('stop', 'network', cancel, 'call-canceled')
    const app = inviteTxn.context['app'] as AppConnection | undefined
    if (app && !unseen) deliverRequest(app, cancel, from, inviteTxn.id, '', this.net.address)
  }

  /** §12.2.2: a request inside one of our dialogs, for the application that owns the dialog. */
  onInDialogRequest(req: SipMessage, from: Inbound, d: Dialog): void {
    const app = this.deps.appById(d.appId)
    const seq = req.cseq.seq
    // §12.2.2: lower CSeq than the last seen is out of order.
    if (d.remoteSeq >= 0 && seq < d.remoteSeq && req.method !== 'PRACK') {
      this.net.respondStateless(req, from, 500, 'Out Of Order')
      return
    }
    if (seq > d.remoteSeq) d.remoteSeq = seq
    const txn = this.net.tl.createServer(req, this.net.address.responseDest(req, from))
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
        this.net.respondTxn(txn, makeResponse(req, 200, 'OK', d.localTag))
      } else {
        this.net.respondTxn(txn, makeResponse(req, 481, undefined, d.localTag))
        return
      }
    }
    if (!app) {
      if (req.method !== 'PRACK') this.net.respondTxn(txn, makeResponse(req, 481, undefined, d.localTag))
      if (req.method === 'BYE') this.dialogs.remove(d)
      return
    }
    txn.context['app'] = app
    if (req.method === 'BYE') this.deps.cdr('stop', 'network', req, 'normal-release')
    if (req.method !== 'PRACK') this.guardUnanswered(txn)
    this.net.log.debug({ callId: req.callId, method: req.method, dialog: d.id }, 'in-dialog request delivered to application')
    deliverRequest(app, req, from, txn.id, d.id, this.net.address)
  }

  // ---- responses from the application ---------------------------------------

  /** The app's response to a request we delivered: completed from the request (§8.2.6) and sent. */
  appResponse(app: AppConnection, clientMsgId: string, txnId: string, appRes: SipMessage): void {
    const txn = this.net.tl.serverById(txnId)
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
    for (const h of appHeaders(appRes, protocol, this.net.address)) res.headers.push({ ...h })
    res.body = appRes.body
    const method = req.method
    let d: Dialog | undefined = txn.context['dialog'] as Dialog | undefined
    const creating = DIALOG_METHODS.has(method) && !req.toTag && status > 100 && status < 300
    if (creating) {
      // §12.1.1: echo Record-Route; provide a Contact.
      for (const rr of req.headers.filter((h) => h.name === 'Record-Route')) res.headers.push({ ...rr })
      if (!res.has('contact')) res.add('Contact', `<${this.net.address.contactUri(protocol)}>`)
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
      if (cause) this.deps.cdr('stop', 'application', res, cause)
      else this.deps.cdr('start', 'application', res, 'uas')
    }
    if (d && status >= 200 && status < 300 && (method === 'INVITE' || method === 'SUBSCRIBE')) {
      if (d.state === 'early') { d.state = 'confirmed'; d.connectedAt = Date.now() }
      if (method === 'INVITE') this.start2xxRetransmit(d, txn, res)
    }
    if (d && method === 'BYE' && status >= 200) this.dialogs.remove(d)
    this.net.respondTxn(txn, res)
    const dlgIdOut = d && status > 100 && !(status >= 300) ? d.id : ''
    ackApp(app, clientMsgId, res, txn.remote, txn.id, dlgIdOut)
  }

  /** RFC 3262 §3: a reliable provisional is retransmitted (T1 doubling to T2) until its PRACK, for 64*T1. */
  private startReliable(d: Dialog, txn: ServerTransaction, res: SipMessage): void {
    const timers = this.net.timers
    const rseq = Number(res.get('rseq'))
    if (txn.reliable) {
      const giveUp = setTimeout(() => d.pendingReliable.delete(rseq), 64 * timers.T1)
      d.pendingReliable.set(rseq, { timer: giveUp, giveUp })
      return
    }
    let interval = timers.T1
    const entry = { timer: setTimeout(() => {}, 0), giveUp: setTimeout(() => {
      clearTimeout(entry.timer)
      d.pendingReliable.delete(rseq)
    }, 64 * timers.T1) }
    const tick = (): void => {
      if (!d.pendingReliable.has(rseq) || txn.state !== 'proceeding') return
      this.net.metrics.retransmissions.inc({ kind: 'response', method: 'INVITE' })
      this.net.send(txn.remote, res)
      interval = Math.min(2 * interval, timers.T2)
      entry.timer = setTimeout(() => this.net.tl.guard(tick), interval)
    }
    entry.timer = setTimeout(() => this.net.tl.guard(tick), interval)
    d.pendingReliable.set(rseq, entry)
  }

  /** §13.3.1.4: the UAS core retransmits 2xx until the ACK arrives; without it the session ends. */
  private start2xxRetransmit(d: Dialog, txn: ServerTransaction, res: SipMessage): void {
    const timers = this.net.timers
    if (d.pending2xx) { clearTimeout(d.pending2xx.timer); clearTimeout(d.pending2xx.giveUp) }
    let interval = timers.T1
    const seq = txn.request.cseq.seq
    const tick = (): void => {
      if (!d.pending2xx || d.state === 'terminated') return
      this.net.metrics.retransmissions.inc({ kind: 'response', method: 'INVITE' })
      txn.respond(res) // passes through in Accepted (RFC 6026)
      if (txn.state === 'terminated') this.net.send(txn.remote, res)
      interval = Math.min(2 * interval, timers.T2)
      d.pending2xx.timer = setTimeout(() => this.net.tl.guard(tick), interval)
    }
    const timer = setTimeout(() => this.net.tl.guard(tick), txn.reliable ? 64 * timers.T1 * 2 : interval)
    const giveUp = setTimeout(() => this.net.tl.guard(() => this.ackTimeout(d)), 64 * timers.T1)
    d.pending2xx = { res, timer, giveUp, seq }
  }

  /** No ACK for our 2xx (§13.3.1.4: "SHOULD ... terminate the dialog"): BYE the peer and tell the app with an unsolicited BYE, like drachtio-server. */
  private ackTimeout(d: Dialog): void {
    if (!d.pending2xx) return
    clearTimeout(d.pending2xx.timer)
    d.pending2xx = undefined
    this.net.log.info({ dialog: d.id }, 'no ACK for 2xx, tearing down dialog')
    const bye = inDialogRequest(d, 'BYE')
    // drachtio-server (SipDialogController::endRetransmitFinalResponse) sends this Reason
    // (RFC 3326); drachtio-srf's Dialog reads its text for the 'destroy' event's reason.
    bye.add('Reason', 'SIP ;cause=200 ;text="ACK timeout"')
    this.net.address.dialogDestination(d).then((dest) => {
      if (!dest) return
      bye.prepend('Via', this.net.address.viaValue(dest.protocol, newBranch()))
      this.net.tl.createClient(bye, dest, { onResponse: () => {} }).start()
      const app = this.deps.appById(d.appId)
      if (app) deliverUnsolicited(app, bye, dest, d.id)
      this.deps.cdr('stop', 'application', bye, 'ack-timeout')
      this.dialogs.remove(d)
    }).catch((err: unknown) => this.net.log.error({ err }, 'ack timeout teardown failed'))
  }
}
