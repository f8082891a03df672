import { lookup } from 'node:dns/promises'
import type { LookupAddress } from 'node:dns'
import { BlockList, isIP, type LookupFunction } from 'node:net'
import { Agent, EnvHttpProxyAgent, buildConnector, fetch as undiciFetch, type Dispatcher, type RequestInit as UndiciRequestInit, type Response as UndiciResponse } from 'undici'

/**
 * Which URLs the engine may fetch on a tenant's behalf (API `play` URLs,
 * agents' HTTP tools). A tenant must not be able to make the engine reach
 * its own network: loopback services, the cloud metadata endpoint
 * (169.254.169.254), RFC 1918 neighbours. In the embedded (laptop) mode
 * those are exactly what a developer points at, so the policy is relaxed there.
 *
 * Host names are resolved and every address checked, so a public name that
 * resolves to a private address is refused too.
 *
 * `check()` is the early answer (the API turns it into a 422 before any media
 * work). It alone would leave a DNS-rebinding gap: the name is resolved again
 * when the fetch connects and may then answer 127.0.0.1. `fetch()` closes it:
 * its undici dispatcher resolves through the same resolver at connect time,
 * refuses the connection if any answer is non-public, and connects to exactly
 * the address it approved. Redirects are followed by the same dispatcher, so
 * every hop is checked the same way (literal-IP hops included, which never
 * reach a resolver).
 *
 * Behind an operator's HTTP(S)_PROXY the proxy resolves and connects, so
 * connect-time pinning cannot apply to proxied requests: there every hop
 * (redirects are followed here, not by undici) gets check() before it is
 * sent, and a name that rebinds between our lookup and the proxy's is the
 * proxy's to refuse (deny private ranges there). NO_PROXY hosts still go
 * direct through the pinned connector.
 */
export class OutboundUrlRefused extends Error {
  constructor(readonly url: string, reason: string) {
    super(`${url} is not allowed: ${reason}`)
    this.name = 'OutboundUrlRefused'
  }
}

export interface OutboundUrlPolicyOptions {
  /** Allow loopback, private, link-local and other non-public addresses. */
  allowPrivate: boolean
  /** Resolver, replaceable for tests; defaults to the system resolver (getaddrinfo). */
  resolve?: (host: string) => Promise<string[]>
  /**
   * Origins (`http://media.internal:8080`) exempt from the address check, for
   * an operator's own internal servers. Exact origin match: a redirect from
   * one of them to any other private origin is still refused.
   */
  allowOrigins?: string[]
  /**
   * Forward proxy for outbound fetches. Default: the conventional
   * HTTP_PROXY / HTTPS_PROXY / NO_PROXY variables (either case); `false`
   * ignores them.
   */
  proxy?: { http?: string; https?: string; noProxy?: string } | false
}

/** Redirect hops followed when fetching through a proxy (undici's own limit is 20; tenants' media needs few). */
const MAX_PROXIED_REDIRECTS = 5

function proxyFromEnv(): { http?: string; https?: string; noProxy?: string } | null {
  const env = process.env
  const http = env.http_proxy ?? env.HTTP_PROXY
  const https = env.https_proxy ?? env.HTTPS_PROXY
  if (!http && !https) return null
  const noProxy = env.no_proxy ?? env.NO_PROXY
  return { ...(http ? { http } : {}), ...(https ? { https } : {}), ...(noProxy ? { noProxy } : {}) }
}

const NON_PUBLIC = new BlockList()
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network" (RFC 1122 §3.2.1.3)
  ['10.0.0.0', 8], ['172.16.0.0', 12], ['192.168.0.0', 16], // RFC 1918
  ['100.64.0.0', 10], // carrier-grade NAT (RFC 6598)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, where cloud metadata services live (RFC 3927)
  ['192.0.0.0', 24], ['198.18.0.0', 15], // IETF protocol assignments, benchmarking
  ['224.0.0.0', 4], ['240.0.0.0', 4], // multicast, reserved
] as const) NON_PUBLIC.addSubnet(net, prefix, 'ipv4')
for (const [net, prefix] of [
  ['::', 128], ['::1', 128], // unspecified, loopback
  ['fc00::', 7], // unique local (RFC 4193)
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const) NON_PUBLIC.addSubnet(net, prefix, 'ipv6')

/** True for addresses a tenant must not reach from the engine. */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address)
  if (family === 4) return NON_PUBLIC.check(address, 'ipv4')
  if (family === 6) {
    // IPv4-mapped IPv6 (::ffff:a.b.c.d) reaches the IPv4 address.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
    if (mapped) return NON_PUBLIC.check(mapped[1]!, 'ipv4')
    return NON_PUBLIC.check(address, 'ipv6')
  }
  return true
}

/** `url` as an http(s) URL; rejects anything else with OutboundUrlRefused. */
function httpUrl(url: string): URL {
  let u: URL
  try { u = new URL(url) } catch { throw new OutboundUrlRefused(url, 'not a URL') }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new OutboundUrlRefused(url, `scheme ${u.protocol} is not http(s)`)
  return u
}

/** What `OutboundUrlPolicy.fetch` accepts: undici's RequestInit without a dispatcher of one's own. */
export type PolicyFetchInit = Omit<UndiciRequestInit, 'dispatcher'>

export class OutboundUrlPolicy {
  private readonly resolve: (host: string) => Promise<string[]>
  private agent: Dispatcher | undefined
  private readonly allowOrigins: Set<string>
  private readonly proxy: { http?: string; https?: string; noProxy?: string } | null
  constructor(private readonly opts: OutboundUrlPolicyOptions) {
    this.proxy = opts.proxy === false ? null : opts.proxy ?? proxyFromEnv()
    this.resolve = opts.resolve ?? (async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address))
    // Normalised through URL so 'HTTP://Host:80' and 'http://host' compare equal.
    this.allowOrigins = new Set((opts.allowOrigins ?? []).map((o) => new URL(o).origin))
  }

  get allowsPrivate(): boolean {
    return this.opts.allowPrivate
  }

  /** Resolves when `url` may be fetched; rejects with OutboundUrlRefused otherwise. */
  async check(url: string): Promise<void> {
    const u = httpUrl(url)
    if (this.opts.allowPrivate || this.allowOrigins.has(u.origin)) return
    await this.publicAddresses(u.hostname.replace(/^\[|\]$/g, ''), url)
  }

  /**
   * The host's addresses (a literal IP is its own), all public; otherwise
   * rejects with OutboundUrlRefused naming `where`. The one check behind both
   * check() and the connect-time lookup.
   */
  private async publicAddresses(host: string, where: string): Promise<string[]> {
    let addresses: string[]
    if (isIP(host)) addresses = [host]
    else {
      const unresolved = (why: string) => Object.assign(new OutboundUrlRefused(where, `cannot resolve ${host} (${why})`), { code: 'ENOTFOUND' })
      try { addresses = await this.resolve(host) } catch (err) { throw unresolved((err as NodeJS.ErrnoException).code ?? (err as Error).message) }
      if (addresses.length === 0) throw unresolved('no addresses')
    }
    const blocked = addresses.find(isNonPublicAddress)
    if (blocked !== undefined) throw new OutboundUrlRefused(where, `${host} resolves to the non-public address ${blocked}`)
    return addresses
  }

  /**
   * fetch() whose connections only ever go to addresses this policy approved
   * at connect time (see the class comment). A refusal, on the first hop or
   * on a redirect, rejects with OutboundUrlRefused rather than undici's
   * generic "fetch failed", so callers can tell policy from network trouble.
   */
  async fetch(url: string, init: PolicyFetchInit = {}): Promise<UndiciResponse> {
    const u = httpUrl(url)
    if (this.proxy) return this.fetchThroughProxy(u, init)
    try {
      return await undiciFetch(u, { ...init, dispatcher: this.dispatcher() })
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause
      if (cause instanceof OutboundUrlRefused) throw cause
      throw err
    }
  }

  /** The undici dispatcher `fetch()` uses; one per policy so connections are pooled. */
  dispatcher(): Dispatcher {
    if (!this.agent) {
      const connect = this.opts.allowPrivate ? {} : { connect: this.connector() }
      // The proxied agents make their own connections to the proxy; `connect` pins only the direct (NO_PROXY) ones.
      this.agent = this.proxy
        ? new EnvHttpProxyAgent({ ...connect, ...(this.proxy.http ? { httpProxy: this.proxy.http } : {}), ...(this.proxy.https ? { httpsProxy: this.proxy.https } : {}), ...(this.proxy.noProxy ? { noProxy: this.proxy.noProxy } : {}) })
        : new Agent(connect)
    }
    return this.agent
  }

  /** fetch() behind a proxy: check() on every hop, redirects followed here (see the class comment). */
  private async fetchThroughProxy(first: URL, init: PolicyFetchInit): Promise<UndiciResponse> {
    let url = first
    let hopInit: PolicyFetchInit = init
    for (let hop = 0; hop <= MAX_PROXIED_REDIRECTS; hop++) {
      await this.check(url.href)
      const res = await undiciFetch(url, { ...hopInit, redirect: 'manual', dispatcher: this.dispatcher() })
      const location = res.status >= 300 && res.status < 400 ? res.headers.get('location') : null
      if (!location || init.redirect === 'manual') return res
      await res.body?.cancel()
      if (init.redirect === 'error') throw new OutboundUrlRefused(url.href, `redirected to ${location} (redirect: 'error')`)
      url = httpUrl(new URL(location, url).href)
      // Fetch's rule (WHATWG Fetch §4.4): 303, and 301/302 after a POST, continue as a GET without a body.
      const method = (hopInit.method ?? 'GET').toUpperCase()
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
        const { body: _body, ...rest } = hopInit
        hopInit = { ...rest, method: method === 'HEAD' ? 'HEAD' : 'GET' }
      }
    }
    throw new OutboundUrlRefused(first.href, `more than ${MAX_PROXIED_REDIRECTS} redirects`)
  }

  /** Releases pooled connections (tests, shutdown). */
  async close(): Promise<void> {
    const a = this.agent
    this.agent = undefined
    await a?.close()
  }

  /**
   * A `lookup` for a connection the engine opens itself to `url` (a WebSocket
   * it dials): like fetch(), the connection only ever goes to addresses
   * approved at connect time. Undefined when none is needed (private
   * addresses allowed, an exempt origin). Call check() first: a literal IP
   * never reaches a lookup.
   */
  lookupFor(url: string): LookupFunction | undefined {
    if (this.opts.allowPrivate || this.allowOrigins.has(httpUrl(url).origin)) return undefined
    return this.pinnedLookup
  }

  /** The connect-time resolution behind fetch() and lookupFor(): every address public, or the connection fails. */
  private readonly pinnedLookup: LookupFunction = (hostname, options, callback) => {
    const host = hostname.replace(/^\[|\]$/g, '')
    this.publicAddresses(host, `host ${host}`).then((addresses) => {
      const all: LookupAddress[] = addresses.map((address) => ({ address, family: isIP(address) }))
      const wanted = options.family === 4 || options.family === 6 ? all.filter((a) => a.family === options.family) : all
      if (wanted.length === 0) throw Object.assign(new Error(`${host} has no IPv${options.family} address`), { code: 'ENOTFOUND' })
      // net.connect asks for every address when it races families
      // (autoSelectFamily, RFC 8305), else for one; all were approved above.
      if (options.all) callback(null, wanted)
      else callback(null, wanted[0]!.address, wanted[0]!.family)
    }).catch((err: unknown) => {
      // Anything else (no address in the family asked for) reads as a resolution failure too.
      const e = err as NodeJS.ErrnoException
      callback(e instanceof OutboundUrlRefused ? e : Object.assign(new OutboundUrlRefused(`host ${host}`, `cannot resolve ${host} (${e.code ?? e.message})`), { code: 'ENOTFOUND' }), '', 0)
    })
  }

  private connector(): buildConnector.connector {
    const base = buildConnector({ lookup: this.pinnedLookup })
    const exempt = buildConnector({})
    return (options, callback) => {
      if (this.allowOrigins.size > 0 && this.allowOrigins.has(originOf(options))) { exempt(options, callback); return }
      // A literal IP (first hop or a redirect's Location) never reaches a
      // resolver, so net.connect would skip the lookup: check it here.
      const host = options.hostname.replace(/^\[|\]$/g, '')
      if (isIP(host) && isNonPublicAddress(host)) {
        callback(new OutboundUrlRefused(`${options.protocol}//${options.hostname}`, `non-public address ${host}`), null)
        return
      }
      base(options, callback)
    }
  }
}

/** The origin a connector is asked to reach, normalised like URL.origin (default ports dropped). */
function originOf(o: { protocol: string; hostname: string; port: string }): string {
  const host = isIP(o.hostname) === 6 ? `[${o.hostname}]` : o.hostname
  return new URL(`${o.protocol}//${host}${o.port ? `:${o.port}` : ''}`).origin
}
