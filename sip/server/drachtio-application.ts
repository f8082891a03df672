/**
 * The application side of the server: the connected drachtio-srf applications (authenticate,
 * route, ping, sip, proxy commands), which application gets a request from the network
 * (round robin among those routing its method; in-dialog requests go to the dialog's owner),
 * and the transaction user (§17) the network side hands requests and stray responses to.
 * The SIP work is done by uas.ts (requests from the network), uac.ts (requests from the
 * applications) and proxy.ts (§16, the `proxy` command).
 */
import { type SipMessage, parseMessage, makeResponse, parseNameAddr, randomToken } from './message.ts'
import type { Inbound } from './transport.ts'
import type { ServerTransaction } from './transaction-layer.ts'
import { DialogStore } from './dialogs.ts'
import { ControlServer, type AppConnection, type ClientMessage } from './drachtio-protocol.ts'
import { sendCdr, type CdrKind } from './drachtio-messages.ts'
import type { SipNetwork, TransactionUser } from './sip-network.ts'
import { ProxyCore } from './proxy.ts'
import { InviteGate } from './invite-gate.ts'
import { UserAgentServer } from './uas.ts'
import { UserAgentClient } from './uac.ts'

export const SERVER_VERSION = 'v0.9.3-callplane'

/** What the server answers OPTIONS with when no application routes it (§11.2). */
const ALLOW = 'INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, PRACK, REGISTER, SUBSCRIBE, NOTIFY, REFER, MESSAGE, PUBLISH'

export class DrachtioApplications implements TransactionUser {
  readonly control = new ControlServer()
  readonly dialogs = new DialogStore()
  readonly proxy: ProxyCore
  /** Per-source fairness of new INVITEs at the applications (on with the per-source limits). */
  readonly inviteGate?: InviteGate
  private readonly uas: UserAgentServer
  private readonly uac: UserAgentClient
  private rr = 0

  constructor(private readonly net: SipNetwork, private readonly secret: string) {
    this.proxy = new ProxyCore(net)
    if (net.limitsSources) this.inviteGate = new InviteGate()
    const cdr = (kind: CdrKind, source: 'network' | 'application', msg: SipMessage, extra?: string): void =>
      sendCdr(this.authenticatedApps(), kind, source, msg, extra)
    this.uas = new UserAgentServer({ net, dialogs: this.dialogs, inviteGate: this.inviteGate, appById: (id) => this.appById(id), cdr })
    this.uac = new UserAgentClient({ net, dialogs: this.dialogs, cdr })
    this.control.on('connection', (app) => this.onAppConnection(app))
  }

  authenticatedApps(): AppConnection[] {
    return [...this.control.apps].filter((a) => a.authenticated)
  }

  appById(id: string): AppConnection | undefined {
    for (const a of this.control.apps) if (a.id === id) return a
    return undefined
  }

  /** Ends every dialog (their retransmission timers) on shutdown. */
  dropDialogs(): void {
    for (const d of [...this.dialogs.all()]) this.dialogs.remove(d)
  }

  private pickApp(method: string): AppConnection | undefined {
    const candidates = this.authenticatedApps().filter((a) => a.routesVerb(method))
    if (candidates.length === 0) return undefined
    this.rr = (this.rr + 1) % candidates.length
    return candidates[this.rr]
  }

  // ---- from the network (TransactionUser) -----------------------------------

  onAck(ack: SipMessage, from: Inbound, accepted: boolean): void {
    if (this.uas.onAck(ack, from)) return
    if (accepted) return
    // ACK for a 2xx that went through our proxy travels end to end (§16.7 / §16.4).
    this.proxy.forwardAck(ack, from)
  }

  onCancel(cancel: SipMessage, from: Inbound, invite: ServerTransaction): void {
    if (invite.context['proxy']) { this.proxy.onCancel(invite, cancel); return }
    this.uas.onCancel(cancel, from, invite)
  }

  onRoutedRequest(req: SipMessage, from: Inbound): boolean {
    // Requests record-routed through our proxy carry our URI in Route (§16.4).
    const routes = req.getAll('route')
    const firstRoute = routes[0] ? parseNameAddr(routes[0])?.uri : undefined
    const toTag = req.toTag
    if (toTag) {
      const d = this.dialogs.match(req.callId, toTag, req.fromTag ?? '')
      if (d) { this.uas.onInDialogRequest(req, from, d); return true }
      if (firstRoute && this.net.address.isLocalUri(firstRoute)) { this.proxy.forwardInDialog(req, from); return true }
      if (this.proxy.matchesProxiedDialog(req)) { this.proxy.forwardInDialog(req, from); return true }
      return false
    }
    if (firstRoute && this.net.address.isLocalUri(firstRoute) && routes.length > 1) {
      // A pre-loaded route set through us towards someone else: strip ourselves and forward.
      this.proxy.forwardInDialog(req, from)
      return true
    }
    return false
  }

  onNewRequest(txn: ServerTransaction, from: Inbound): void {
    const req = txn.request
    const method = req.method
    // §8.2.6.2: the UAS picks the To tag, kept for every response of this transaction.
    txn.toTag = randomToken()
    const app = this.pickApp(method)
    if (!app) {
      if (method === 'OPTIONS') {
        // Trunk keep-alives are answered even with no application routing OPTIONS.
        const res = makeResponse(req, 200, 'OK', txn.toTag)
        res.add('Allow', ALLOW)
        res.add('Accept', 'application/sdp')
        this.net.respondTxn(txn, res)
      } else {
        const res = makeResponse(req, 503, 'Service Unavailable', txn.toTag)
        this.net.respondTxn(txn, res)
      }
      return
    }
    this.uas.deliverNew(app, txn, from)
  }

  onStrayResponse(res: SipMessage): boolean {
    return this.uac.reAck(res) || this.proxy.forwardStrayResponse(res)
  }

  onTransactionDone(txn: ServerTransaction): void {
    this.uas.clearPending(txn)
  }

  // ---- from the applications ------------------------------------------------

  private onAppConnection(app: AppConnection): void {
    app.on('message', (m) => {
      try {
        this.onAppMessage(app, m)
      } catch (err) {
        this.net.log.error({ err }, 'error handling application message')
        app.respond(m.msgId, `NO|${String((err as Error).message ?? err).replace(/[|\r\n]/g, ' ')}`)
      }
    })
    app.on('close', () => {
      this.net.log.debug({ app: app.id }, 'application disconnected')
      // Requests the app will never answer now: fail them rather than let them time out.
      for (const txn of [...this.net.tl.serverTransactions()]) {
        if (txn.context['app'] !== app || (txn.state !== 'proceeding' && txn.state !== 'trying')) continue
        if (txn.context['proxy']) continue
        this.net.respondTxn(txn, makeResponse(txn.request, 503, 'Service Unavailable', txn.toTag))
      }
    })
  }

  private onAppMessage(app: AppConnection, m: ClientMessage): void {
    if (m.type === 'authenticate') {
      if (m.args[0] === this.secret) {
        app.authenticated = true
        app.tags = (m.args[1] ?? '').split(',').filter(Boolean)
        const hp = this.net.address.hostport()
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

  /** `sip|<txnId>|<dialogId>|<routeUrl>` + message: a response (UAS), or a request (UAC) new, in a dialog, or a CANCEL. */
  private onAppSip(app: AppConnection, m: ClientMessage): void {
    if (!m.sip) { app.respond(m.msgId, 'NO|missing sip message'); return }
    let msg: SipMessage
    try {
      msg = parseMessage(Buffer.from(m.sip, 'utf8'), { ignoreContentLength: true, limits: { ...this.net.limits, maxBytes: 4 * 1024 * 1024 } })
    } catch (err) {
      app.respond(m.msgId, `NO|invalid sip message: ${(err as Error).message}`)
      return
    }
    const txnId = m.args[0] ?? ''
    const dlgId = m.args[1] ?? ''
    const routeUrl = m.args[2] ?? ''
    if (!msg.isRequest) {
      if (!txnId) { app.respond(m.msgId, 'NO|transaction id missing'); return }
      this.uas.appResponse(app, m.msgId, txnId, msg)
      return
    }
    const fail = (err: unknown): void => {
      // async paths must never leave a rejection unhandled (it would end the process)
      this.net.log.error({ err }, 'error sending application request')
      app.respond(m.msgId, `NO|${String((err as Error)?.message ?? err).replace(/[|\r\n]/g, ' ')}`)
    }
    if (dlgId) { this.uac.inDialogRequest(app, m.msgId, dlgId, msg).catch(fail); return }
    if (txnId) {
      if (msg.method === 'CANCEL') { this.uac.cancel(app, m.msgId, txnId, msg); return }
      app.respond(m.msgId, 'NO|only CANCEL may be sent within a transaction')
      return
    }
    // drachtio-server: a request carrying the Call-ID of an existing dialog is sent inside it.
    const callId = msg.get('call-id')
    const existing = callId ? this.dialogs.findByCallId(callId) : undefined
    if (existing && existing.state === 'confirmed' && existing.appId === app.id && msg.method !== 'ACK') {
      this.uac.inDialogRequest(app, m.msgId, existing.id, msg).catch(fail)
      return
    }
    this.uac.newRequest(app, m.msgId, msg, routeUrl).catch(fail)
  }
}
