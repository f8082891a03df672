/**
 * Addressing: which address this server advertises, where a message goes and over which
 * transport. Pure decisions over URIs, Vias and the bound address; the network side
 * (sip-network.ts) and the application side both ask here, nobody else computes an address.
 */
import { isIP } from 'node:net'
import { lookup } from 'node:dns/promises'
import { networkInterfaces } from 'node:os'
import { type SipMessage, parseNameAddr, parseUri, splitList, bareHost, uriHost, parseVia, formatVia } from './message.ts'
import type { Remote, Inbound, Protocol } from './transport.ts'
import type { Dialog } from './dialogs.ts'

export interface AddressingOptions {
  /** The bind address (may be a wildcard). */
  sipHost: string
  /** Advertised instead of the bind address (NAT, containers). */
  externalAddress?: string
  /** The bound SIP port (known once the transport listens). */
  port: () => number
}

export class SipAddressing {
  private hostCache?: string

  constructor(private readonly opts: AddressingOptions) {}

  /** Host advertised in Via/Contact/Record-Route. */
  localHost(): string {
    if (this.opts.externalAddress) return this.opts.externalAddress
    const h = this.opts.sipHost
    if (h !== '0.0.0.0' && h !== '::') return h
    if (this.hostCache) return this.hostCache
    // A wildcard bind advertises the first external interface address.
    const v6 = h === '::'
    for (const list of Object.values(networkInterfaces())) {
      for (const i of list ?? []) {
        if (!i.internal && (i.family === 'IPv4' || v6)) { this.hostCache = i.address; return i.address }
      }
    }
    this.hostCache = '127.0.0.1'
    return this.hostCache
  }

  get port(): number { return this.opts.port() }

  hostport(): string { return `${uriHost(this.localHost())}:${this.port}` }

  /** §18.1.1 / RFC 3581 §3: our Via, asking for rport so responses come back through NATs. */
  viaValue(protocol: Protocol, branch: string): string {
    return `SIP/2.0/${protocol.toUpperCase()} ${this.hostport()};branch=${branch};rport`
  }

  contactUri(protocol: Protocol, user?: string): string {
    return `sip:${user ? user + '@' : ''}${this.hostport()}${protocol === 'tcp' ? ';transport=tcp' : ''}`
  }

  /** §16.6 step 4: a loose-routing (lr) Record-Route to this server. */
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

  /** Replaces `localhost` in app-supplied addresses with ours, as drachtio-server does. */
  localize(value: string, protocol: Protocol, withPort: boolean): string {
    if (!/localhost/i.test(value)) return value
    return value.replace(/(sips?:(?:[^@<>;]*@)?)localhost(?![\w.-])(?::\d+)?/gi, (_m, pre: string) =>
      `${pre}${withPort ? this.hostport() : uriHost(this.localHost())}${withPort && protocol === 'tcp' && !/transport=/i.test(value) ? ';transport=tcp' : ''}`)
  }

  /**
   * RFC 3263-lite (§8.1.2 next hop): IP literal or A/AAAA lookup; port from URI or 5060;
   * transport from the URI parameter, else the hint's (the peer's) transport, else UDP.
   */
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

  /** §12.2.1.1: an in-dialog request goes to the first route, else to the remote target. */
  async dialogDestination(d: Dialog): Promise<Remote | undefined> {
    const first = d.routeSet[0]
    const nextHop = first ? parseNameAddr(first)?.uri ?? d.remoteTarget : d.remoteTarget
    const dest = await this.resolve(nextHop, d.peer)
    if (!dest) return undefined
    // Reuse the peer's TCP connection when the target is the same host (§18.2.1 connection reuse).
    if (dest.protocol === 'tcp' && d.peer.protocol === 'tcp' && dest.address === d.peer.address) return d.peer
    return dest
  }

  /** §18.2.2 / RFC 3581 §4: where responses to a request go. */
  responseDest(req: SipMessage, from: Inbound | Remote): Remote {
    if (from.protocol !== 'udp') return { protocol: from.protocol, address: from.address, port: from.port }
    const via = req.topVia
    const useRport = via && 'rport' in via.params
    return { protocol: 'udp', address: from.address, port: useRport ? from.port : (via?.port ?? from.port) }
  }

  /** §18.2.1 + RFC 3581 §4: stamp received/rport on the top Via. */
  stampVia(req: SipMessage, from: Inbound): void {
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
}
