/**
 * Stateful proxy for drachtio's `proxy` command (Request#proxy / Srf#proxyRequest),
 * RFC 3261 §16: serial or parallel forking, Record-Route, best-response
 * selection (§16.7), CANCEL of pending branches, and forwarding of in-dialog
 * requests that carry our Record-Route.
 */
import { SipMessage, makeResponse, newBranch, parseNameAddr, parseVia, splitList, bareHost } from './message.ts'
import type { Logger } from 'pino'
import { buildCancel, type ServerTransaction, type ClientTransaction, type TransactionLayer } from './transaction-layer.ts'
import type { Inbound, Remote } from './transport.ts'
import type { SipAddressing } from './addressing.ts'
import type { SipMetrics } from './metrics.ts'
import { formatMeta, stackTime, type AppConnection, type ClientMessage } from './drachtio-protocol.ts'

/**
 * What the proxy needs from the network side (sip-network.ts implements it): transactions,
 * addressing and the three ways out. Declared here so the proxy does not import the server.
 */
export interface ProxyNetwork {
  readonly log: Logger
  readonly metrics: Pick<SipMetrics, 'dropped'>
  readonly tl: TransactionLayer
  readonly address: Pick<SipAddressing, 'resolve' | 'viaValue' | 'recordRouteValue' | 'isLocalUri' | 'responseDest'>
  send(to: Remote, msg: SipMessage): void
  respondStateless(req: SipMessage, from: Inbound | Remote, status: number, reason?: string): void
  respondTxn(txn: ServerTransaction, res: SipMessage): void
}

interface Branch { target: string; txn?: ClientTransaction; final?: SipMessage; timers: NodeJS.Timeout[]; canceled: boolean }

interface ProxyContext {
  app: AppConnection
  clientMsgId: string
  server: ServerTransaction
  recordRoute: boolean
  parallel: boolean
  followRedirects: boolean
  provisionalTimeout: number
  finalTimeout: number
  targets: string[]
  next: number
  branches: Branch[]
  extraHeaders: { name: string; value: string }[]
  done: boolean
  answered: boolean
}

function parseDuration(s: string): number {
  const m = /^(\d+)(ms|s)?$/.exec(s.trim())
  if (!m) return 0
  return m[2] === 's' || !m[2] ? Number(m[1]) * (m[2] ? 1000 : 1) : Number(m[1])
}

/** §16.7 step 6: prefer 6xx, then the lowest response class; within 4xx prefer 401/407 challenges. */
function best(responses: SipMessage[]): SipMessage | undefined {
  let chosen: SipMessage | undefined
  for (const r of responses) {
    if (!chosen) { chosen = r; continue }
    const cc = Math.floor(chosen.status / 100)
    const rc = Math.floor(r.status / 100)
    if (cc === 6) continue
    if (rc === 6 || rc < cc) chosen = r
  }
  return chosen
}

/** Where a response goes after popping our Via (§18.2.2 with RFC 3581). */
function viaDest(via: string, protocol: Remote['protocol']): Remote | undefined {
  const v = parseVia(via)
  if (!v) return undefined
  const address = v.params['received'] ?? bareHost(v.host)
  const rport = v.params['rport']
  const port = rport ? Number(rport) : (v.port ?? 5060)
  return { protocol: v.transport === 'TCP' ? 'tcp' : protocol, address, port }
}

export class ProxyCore {
  constructor(private readonly net: ProxyNetwork) {}

  shutdown(): void { /* transactions are torn down by the transaction layer */ }

  onAppProxy(app: AppConnection, m: ClientMessage): void {
    const [txnId = '', remain = '', , follow = '', mode = '', prov = '', fin = '', ...dests] = m.args
    const server = this.net.tl.serverById(txnId)
    if (!server || (server.state !== 'proceeding' && server.state !== 'trying')) {
      app.respond(m.msgId, 'NO|transaction not found')
      return
    }
    const targets = dests.filter(Boolean)
    if (targets.length === 0) { app.respond(m.msgId, 'NO|no destination'); return }
    const mf = server.request.get('max-forwards')
    if (mf !== undefined && Number(mf) <= 0) {
      // §16.3 step 3: no hops left.
      this.net.respondTxn(server, makeResponse(server.request, 483, 'Too Many Hops', server.toTag))
      app.respond(m.msgId, 'NO|too many hops')
      return
    }
    let extra: { name: string; value: string }[] = []
    if (m.sip) {
      try {
        const parsed = SipMessageFromApp(m.sip)
        extra = parsed.headers.filter((h) => !['via', 'call-id', 'cseq', 'content-length', 'from', 'to', 'max-forwards'].includes(h.name.toLowerCase()))
      } catch { /* headers are optional */ }
    }
    const ctx: ProxyContext = {
      app, clientMsgId: m.msgId, server, recordRoute: remain === 'remainInDialog', parallel: mode === 'simultaneous',
      followRedirects: follow === 'followRedirects', provisionalTimeout: parseDuration(prov), finalTimeout: parseDuration(fin),
      targets, next: 0, branches: [], extraHeaders: extra, done: false, answered: false,
    }
    server.context['proxy'] = ctx
    if (ctx.parallel) while (ctx.next < ctx.targets.length) this.startBranch(ctx)
    else this.startBranch(ctx)
  }

  private startBranch(ctx: ProxyContext): void {
    const target = ctx.targets[ctx.next++]!
    const branch: Branch = { target, timers: [], canceled: false }
    ctx.branches.push(branch)
    const orig = ctx.server.request
    const req = orig.clone()
    req.uri = target
    // §16.6 step 3: decrement Max-Forwards.
    req.set('Max-Forwards', String(Math.max(0, Number(orig.get('max-forwards') ?? '70') - 1)))
    for (const h of ctx.extraHeaders) req.set(h.name, h.value)
    this.net.address.resolve(target).then((dest) => {
      if (ctx.done || branch.canceled) return
      if (!dest) {
        branch.final = makeResponse(orig, 502, 'Bad Gateway')
        this.onBranchDone(ctx)
        return
      }
      if (ctx.recordRoute) req.prepend('Record-Route', this.net.address.recordRouteValue(dest.protocol))
      req.prepend('Via', this.net.address.viaValue(dest.protocol, newBranch()))
      const txn = this.net.tl.createClient(req, dest, { onResponse: (res) => this.onBranchResponse(ctx, branch, res) })
      branch.txn = txn
      txn.start()
      if (ctx.provisionalTimeout) {
        branch.timers.push(setTimeout(() => this.net.tl.guard(() => { if (!txn.gotProvisional) this.cancelBranch(branch, true, ctx) }), ctx.provisionalTimeout))
      }
      if (ctx.finalTimeout) {
        branch.timers.push(setTimeout(() => this.net.tl.guard(() => { if (!branch.final) this.cancelBranch(branch, true, ctx) }), ctx.finalTimeout))
      }
    }).catch((err: unknown) => this.net.log.error({ err }, 'proxy branch failed'))
  }

  private report(ctx: ProxyContext, res: SipMessage, from: Remote, txnId: string): void {
    const raw = res.toString()
    const meta = formatMeta({ source: 'network', length: Buffer.byteLength(raw), protocol: from.protocol, address: from.address, port: from.port, time: stackTime() })
    ctx.app.respond(ctx.clientMsgId, `OK|${meta}|${txnId}||continue`, raw)
  }

  private upstream(res: SipMessage): SipMessage {
    const out = res.clone()
    out.removeFirst('Via') // §16.7 step 3: remove our Via
    return out
  }

  private onBranchResponse(ctx: ProxyContext, branch: Branch, res: SipMessage): void {
    const from = (branch.txn?.context['lastFrom'] as Inbound | undefined) ?? branch.txn?.dest
    if (from && res.status > 100) this.report(ctx, res, from, branch.txn?.id ?? '')
    if (res.status < 200) {
      // §16.7 step 5: forward provisionals other than 100 right away.
      if (res.status > 100 && !ctx.answered) ctx.server.respond(this.upstream(res))
      return
    }
    for (const t of branch.timers) clearTimeout(t)
    branch.final = res
    if (res.status < 300) {
      // §16.7 step 5: 2xx forwarded immediately; other branches canceled (§16.10).
      if (!ctx.answered || ctx.server.request.method === 'INVITE') {
        ctx.answered = true
        this.net.respondTxn(ctx.server, this.upstream(res))
      }
      for (const b of ctx.branches) if (b !== branch) this.cancelBranch(b, false, ctx)
      this.finish(ctx)
      return
    }
    if (res.status >= 600) for (const b of ctx.branches) if (b !== branch) this.cancelBranch(b, false, ctx)
    if (ctx.followRedirects && res.status >= 300 && res.status < 400) {
      for (const c of res.getAll('contact')) {
        const uri = parseNameAddr(c)?.uri
        if (uri) ctx.targets.push(uri)
      }
    }
    this.onBranchDone(ctx)
  }

  private onBranchDone(ctx: ProxyContext): void {
    if (ctx.done) return
    if (!ctx.parallel && ctx.next < ctx.targets.length && !ctx.branches.some((b) => b.final && b.final.status >= 600)) {
      this.startBranch(ctx)
      return
    }
    if (ctx.parallel && ctx.next < ctx.targets.length) { while (ctx.next < ctx.targets.length) this.startBranch(ctx); return }
    if (ctx.branches.some((b) => !b.final)) return
    const chosen = best(ctx.branches.map((b) => b.final!))
    if (chosen && !ctx.answered) {
      const up = this.upstream(chosen)
      if (!up.toTag && ctx.server.toTag) up.set('To', `${up.get('to')};tag=${ctx.server.toTag}`)
      this.net.respondTxn(ctx.server, up)
    }
    this.finish(ctx)
  }

  private finish(ctx: ProxyContext): void {
    if (ctx.done) return
    ctx.done = true
    for (const b of ctx.branches) for (const t of b.timers) clearTimeout(t)
    ctx.app.respond(ctx.clientMsgId, 'OK|done')
  }

  /** Sends CANCEL on a pending branch (§16.10); `timeout` synthesizes a 408 when the peer never answered. */
  private cancelBranch(b: Branch, timeout: boolean, ctx: ProxyContext): void {
    if (b.canceled || b.final || !b.txn) return
    b.canceled = true
    const inv = b.txn.request
    if (inv.method === 'INVITE' && b.txn.gotProvisional) {
      this.net.tl.createClient(buildCancel(inv), b.txn.dest, { onResponse: () => {} }).start()
    }
    if (timeout) {
      for (const t of b.timers) clearTimeout(t)
      if (!b.txn.gotProvisional) {
        b.final = makeResponse(inv, 408, 'Request Timeout')
        b.txn.terminate()
        this.onBranchDone(ctx)
      }
    }
  }

  /** Upstream CANCEL for a proxied INVITE: cancel all pending branches; their 487s flow back up. */
  onCancel(server: ServerTransaction, _cancel: SipMessage): void {
    const ctx = server.context['proxy'] as ProxyContext | undefined
    if (!ctx) return
    ctx.targets.length = ctx.next // no further serial targets
    for (const b of ctx.branches) this.cancelBranch(b, false, ctx)
    if (ctx.branches.every((b) => b.final || !b.txn?.gotProvisional)) {
      if (!ctx.answered && server.state === 'proceeding') {
        this.net.respondTxn(server, makeResponse(server.request, 487, 'Request Terminated', server.toTag))
        ctx.answered = true
      }
    }
  }

  matchesProxiedDialog(_req: SipMessage): boolean { return false }

  /**
   * In-dialog request record-routed through us (§16.4, §16.6): pop our Route,
   * forward statefully to the next Route or the Request-URI, relay responses.
   */
  forwardInDialog(req: SipMessage, from: Inbound): void {
    const mf = Number(req.get('max-forwards') ?? '70')
    if (mf <= 0) { this.net.respondStateless(req, from, 483); return }
    const server = this.net.tl.createServer(req, this.net.address.responseDest(req, from))
    if (!server) return
    const out = req.clone()
    const routes = out.getAll('route')
    const first = routes[0] ? parseNameAddr(routes[0])?.uri : undefined
    if (first && this.net.address.isLocalUri(first)) out.removeFirst('Route')
    const nextRoute = out.getAll('route')[0]
    const nextHop = nextRoute ? parseNameAddr(nextRoute)?.uri ?? out.uri : out.uri
    out.set('Max-Forwards', String(mf - 1))
    this.net.address.resolve(nextHop).then((dest) => {
      if (!dest) { this.net.respondTxn(server, makeResponse(req, 502, 'Bad Gateway')); return }
      out.prepend('Via', this.net.address.viaValue(dest.protocol, newBranch()))
      if (out.method === 'ACK') { this.net.send(dest, out); return }
      const ct = this.net.tl.createClient(out, dest, {
        onResponse: (res) => {
          if (res.status === 100) return
          this.net.respondTxn(server, this.upstream(res))
        },
      })
      ct.start()
    }).catch((err: unknown) => this.net.log.error({ err }, 'in-dialog forward failed'))
  }

  /** ACK for a proxied 2xx: forwarded statelessly along its Route (§16.11). */
  forwardAck(ack: SipMessage, _from: Inbound): void {
    const routes = ack.getAll('route')
    const first = routes[0] ? parseNameAddr(routes[0])?.uri : undefined
    if (!first || !this.net.address.isLocalUri(first)) { this.net.metrics.dropped.inc({ reason: 'stray-ack' }); return }
    const out = ack.clone()
    out.removeFirst('Route')
    const nextRoute = out.getAll('route')[0]
    const nextHop = nextRoute ? parseNameAddr(nextRoute)?.uri ?? out.uri : out.uri
    const mf = Number(out.get('max-forwards') ?? '70')
    out.set('Max-Forwards', String(Math.max(0, mf - 1)))
    this.net.address.resolve(nextHop).then((dest) => {
      if (!dest) return
      // Stateless: the branch is derived from the incoming one so retransmissions map alike (§16.11).
      const inBranch = ack.topVia?.params['branch'] ?? ''
      out.prepend('Via', this.net.address.viaValue(dest.protocol, `z9hG4bKsl${Buffer.from(inBranch).toString('base64url').slice(0, 24)}`))
      this.net.send(dest, out)
    }).catch((err: unknown) => this.net.log.error({ err }, 'ACK forward failed'))
  }

  /** A 2xx retransmission for a proxied INVITE after the branch ended: forward along the Via path. */
  forwardStrayResponse(res: SipMessage): boolean {
    const vias = res.getAll('via')
    if (vias.length < 2) return false
    const top = parseVia(vias[0]!)
    if (!top || !this.net.address.isLocalUri(`sip:${top.host}:${top.port ?? 5060}`)) return false
    const out = res.clone()
    out.removeFirst('Via')
    const dest = viaDest(splitList(out.get('via') ?? '')[0] ?? '', 'udp')
    if (!dest) return false
    this.net.send(dest, out)
    return true
  }
}

function SipMessageFromApp(raw: string): SipMessage {
  const m = new SipMessage()
  const lines = raw.split('\r\n')
  lines.shift()
  for (const l of lines) {
    if (!l) break
    const i = l.indexOf(':')
    if (i > 0) m.add(l.slice(0, i).trim(), l.slice(i + 1).trim())
  }
  return m
}
