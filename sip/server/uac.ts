/**
 * The server as UAC on an application's behalf: requests the application sends (new, inside
 * a dialog, CANCEL) completed and sent through client transactions, and the network's
 * responses relayed back, with the UAC half of dialog state (§12.1.2, §13.2.2).
 */
import { randomUUID } from 'node:crypto'
import { SipMessage, parseNameAddr, newBranch, randomToken, paramOf, uriHost } from './message.ts'
import type { Inbound } from './transport.ts'
import { buildCancel, type ClientTransaction } from './transaction-layer.ts'
import { type DialogStore, type Dialog, DIALOG_METHODS, dialogId, stripTag, inDialogRequest } from './dialogs.ts'
import type { AppConnection } from './drachtio-protocol.ts'
import type { SipNetwork } from './sip-network.ts'
import { appHeaders, ackApp, deliverResponse, type CdrKind } from './drachtio-messages.ts'

export interface UacDeps {
  net: SipNetwork
  dialogs: DialogStore
  cdr(kind: CdrKind, source: 'network' | 'application', msg: SipMessage, extra?: string): void
}

export class UserAgentClient {
  private readonly net: SipNetwork
  private readonly dialogs: DialogStore
  /** Pending CANCELs from apps for INVITEs that have had no provisional yet (§9.1). */
  private readonly deferredCancels = new Map<string, () => void>()

  constructor(private readonly deps: UacDeps) {
    this.net = deps.net
    this.dialogs = deps.dialogs
  }

  /** An out-of-dialog request from the app (§8.1.1): we own Via, From tag, Call-ID, CSeq and the Contact default. */
  async newRequest(app: AppConnection, clientMsgId: string, appReq: SipMessage, routeUrl: string): Promise<void> {
    const address = this.net.address
    const method = appReq.method.toUpperCase()
    if (method === 'ACK') { app.respond(clientMsgId, 'NO|ACK outside a dialog'); return }
    // §8.1.2: the next hop is the first Route, else the Request-URI (the app may name one).
    const routes = appReq.getAll('route')
    const nextHop = routeUrl || (routes[0] ? parseNameAddr(routes[0])?.uri : undefined) || appReq.uri
    const dest = await address.resolve(nextHop)
    if (!dest) { app.respond(clientMsgId, `NO|unable to resolve ${nextHop}`); return }
    const p = dest.protocol
    const req = SipMessage.request(method, appReq.uri)
    req.add('Via', address.viaValue(p, newBranch()))
    req.add('Max-Forwards', appReq.get('max-forwards') ?? '70')
    for (const r of appReq.headers.filter((h) => h.name === 'Route')) req.add('Route', r.value)
    let from = appReq.get('from') ?? `<sip:${uriHost(address.localHost())}>`
    from = address.localize(from, p, false)
    if (!paramOf(from, 'tag')) from += `;tag=${randomToken()}`
    req.add('From', from)
    req.add('To', address.localize(appReq.get('to') ?? `<${appReq.uri}>`, p, false))
    req.add('Call-ID', appReq.get('call-id') ?? randomUUID())
    const cseqIn = appReq.get('cseq')
    const seq = cseqIn && /^\s*\d+/.test(cseqIn) ? parseInt(cseqIn, 10) : 1 + Math.floor(Math.random() * 1000)
    req.add('CSeq', `${seq} ${method}`)
    for (const h of appHeaders(appReq, p, address)) req.headers.push({ ...h })
    if ((method === 'INVITE' || method === 'SUBSCRIBE' || method === 'REFER') && !req.has('contact')) req.add('Contact', `<${address.contactUri(p)}>`)
    if (appReq.body.length && !req.has('content-type') && method === 'INVITE') req.add('Content-Type', 'application/sdp')
    req.body = appReq.body

    const creates = DIALOG_METHODS.has(method)
    const dlgIdHint = creates ? dialogId(req.callId, req.fromTag ?? '') : ''
    const txn = this.net.tl.createClient(req, dest, { onResponse: (res, rtx) => this.onResponse(app, txn, res, rtx) })
    txn.context['app'] = app
    txn.context['creates'] = creates
    txn.context['dialogId'] = dlgIdHint
    txn.start()
    if (method === 'INVITE') this.deps.cdr('attempt', 'application', req)
    ackApp(app, clientMsgId, req, dest, txn.id, '')
  }

  /** A request inside one of our dialogs (§12.2.1.1); an ACK for a 2xx goes out without a transaction (§13.2.2.4). */
  async inDialogRequest(app: AppConnection, clientMsgId: string, dlgId: string, appReq: SipMessage): Promise<void> {
    const d = this.dialogs.get(dlgId)
    const method = appReq.method.toUpperCase()
    if (!d || d.state === 'terminated') {
      // createUAC calls ack() for non-2xx finals too; that ACK was already sent by the transaction.
      app.respond(clientMsgId, 'NO|unable to find dialog')
      return
    }
    const address = this.net.address
    const dest = await address.dialogDestination(d)
    if (!dest) { app.respond(clientMsgId, 'NO|unable to resolve remote target'); return }
    const req = inDialogRequest(d, method)
    req.prepend('Via', address.viaValue(dest.protocol, newBranch()))
    for (const h of appHeaders(appReq, dest.protocol, address)) req.headers.push({ ...h })
    if (method === 'INVITE' && !req.has('contact')) req.add('Contact', `<${address.contactUri(dest.protocol)}>`)
    if (appReq.body.length && !req.has('content-type') && (method === 'INVITE' || method === 'ACK' || method === 'UPDATE' || method === 'PRACK')) req.add('Content-Type', 'application/sdp')
    req.body = appReq.body
    if (method === 'ACK') {
      // ACK for 2xx is sent by the UA core, outside any transaction (§13.2.2.4).
      this.net.send(dest, req)
      d.lastAck = { seq: req.cseq.seq, msg: req, dest }
      ackApp(app, clientMsgId, req, dest, randomUUID(), d.id)
      return
    }
    if (method === 'BYE') {
      this.deps.cdr('stop', 'application', req, 'normal-release')
      if (d.pending2xx) { clearTimeout(d.pending2xx.timer); clearTimeout(d.pending2xx.giveUp); d.pending2xx = undefined }
    }
    const txn = this.net.tl.createClient(req, dest, { onResponse: (res, rtx) => this.onResponse(app, txn, res, rtx) })
    txn.context['app'] = app
    txn.context['dialog'] = d
    txn.context['dialogId'] = d.id
    txn.start()
    ackApp(app, clientMsgId, req, dest, txn.id, d.id)
  }

  /** The app cancels an INVITE it sent (§9.1). */
  cancel(app: AppConnection, clientMsgId: string, txnId: string, appReq: SipMessage): void {
    const inv = this.net.tl.clientById(txnId)
    if (!inv || inv.request.method !== 'INVITE') { app.respond(clientMsgId, 'NO|unknown transaction'); return }
    if (inv.state !== 'calling' && inv.state !== 'proceeding') { app.respond(clientMsgId, 'NO|transaction already completed'); return }
    const invite = inv.request
    const cancel = buildCancel(invite)
    for (const h of appHeaders(appReq, inv.dest.protocol, this.net.address)) if (h.name !== 'Contact' && h.name !== 'Content-Type') cancel.headers.push({ ...h })
    const send = (): void => {
      const ct = this.net.tl.createClient(cancel, inv.dest, { onResponse: () => {} })
      ct.start()
    }
    // §9.1: a CANCEL must not be sent before a provisional response has arrived.
    if (inv.gotProvisional) send()
    else this.deferredCancels.set(inv.id, send)
    ackApp(app, clientMsgId, cancel, inv.dest, randomUUID(), '')
  }

  /** §13.2.2.4: a 2xx retransmitted after the INVITE transaction ended gets the same ACK again. */
  reAck(res: SipMessage): boolean {
    const d = this.dialogs.get(dialogId(res.callId, res.fromTag ?? ''))
    if (d?.lastAck && d.lastAck.seq === res.cseq.seq) { this.net.send(d.lastAck.dest, d.lastAck.msg); return true }
    return false
  }

  /** A response to an app request: UAC dialog state (§12.1.2 early/confirmed, §12.2.1.2 target refresh), then to the app. */
  private onResponse(app: AppConnection, txn: ClientTransaction, res: SipMessage, retransmission: boolean): void {
    const req = txn.request
    const method = req.method
    const status = res.status
    if (status >= 200) this.net.metrics.transactions.inc({ method, class: `${Math.floor(status / 100)}xx`, direction: 'out' })
    if (retransmission) {
      const d = this.dialogs.get(txn.context['dialogId'] as string ?? '')
      if (d?.lastAck && d.lastAck.seq === res.cseq.seq) this.net.send(d.lastAck.dest, d.lastAck.msg)
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
          if (method === 'INVITE') this.deps.cdr('start', 'network', res, 'uac')
        }
        outId = d.id
      } else if (status >= 300 && d && d.state === 'early') {
        this.dialogs.remove(d)
        if (method === 'INVITE') this.deps.cdr('stop', 'network', res, status === 487 ? 'call-canceled' : 'call-rejected')
      } else if (status >= 300 && method === 'INVITE') {
        this.deps.cdr('stop', 'network', res, status === 487 ? 'call-canceled' : 'call-rejected')
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
    deliverResponse(app, res, from, txn.id, outId)
  }
}
