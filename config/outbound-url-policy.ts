import { lookup } from 'node:dns/promises'
import { BlockList, isIP } from 'node:net'

/**
 * Which URLs the engine may fetch on a tenant's behalf (API `play` URLs,
 * agents' HTTP tools). A tenant must not be able to make the engine reach
 * its own network: loopback services, the cloud metadata endpoint
 * (169.254.169.254), RFC 1918 neighbours. In the embedded (laptop) mode
 * those are exactly what a developer points at, so the policy is relaxed there.
 *
 * Host names are resolved and every address checked, so a public name that
 * resolves to a private address is refused too. (A name that re-resolves
 * differently between this check and the fetch, DNS rebinding, is not covered.)
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

export class OutboundUrlPolicy {
  private readonly resolve: (host: string) => Promise<string[]>
  constructor(private readonly opts: OutboundUrlPolicyOptions) {
    this.resolve = opts.resolve ?? (async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address))
  }

  get allowsPrivate(): boolean {
    return this.opts.allowPrivate
  }

  /** Resolves when `url` may be fetched; rejects with OutboundUrlRefused otherwise. */
  async check(url: string): Promise<void> {
    let u: URL
    try { u = new URL(url) } catch { throw new OutboundUrlRefused(url, 'not a URL') }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new OutboundUrlRefused(url, `scheme ${u.protocol} is not http(s)`)
    if (this.opts.allowPrivate) return
    const host = u.hostname.replace(/^\[|\]$/g, '')
    let addresses: string[]
    if (isIP(host)) addresses = [host]
    else {
      try { addresses = await this.resolve(host) } catch (err) { throw new OutboundUrlRefused(url, `cannot resolve ${host} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`) }
    }
    const blocked = addresses.find(isNonPublicAddress)
    if (blocked !== undefined) throw new OutboundUrlRefused(url, `${host} resolves to the non-public address ${blocked}`)
  }
}
