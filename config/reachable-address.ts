import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os'

/**
 * The address a person should dial to reach this engine over SIP (the start-up
 * banner's `call sip:1000@<address>:<port>`, the `/` page): the configured
 * external address, else the bind address, else, when bound to every
 * interface, the first non-loopback IPv4 interface (a softphone on another
 * machine cannot call 0.0.0.0 or 127.0.0.1), else loopback.
 */
export function reachableSipHost(o: {
  externalAddress?: string | undefined
  bindHost: string
  interfaces?: NodeJS.Dict<NetworkInterfaceInfo[]>
}): string {
  if (o.externalAddress) return o.externalAddress
  if (o.bindHost !== '0.0.0.0' && o.bindHost !== '::') return o.bindHost
  const all = Object.values(o.interfaces ?? networkInterfaces()).flatMap((list) => list ?? [])
  const v4 = all.find((i) => i.family === 'IPv4' && !i.internal)
  if (v4) return v4.address
  // Bound to :: with only IPv6 interfaces: a global or unique-local address (not link-local, which needs a zone).
  const v6 = o.bindHost === '::' ? all.find((i) => i.family === 'IPv6' && !i.internal && !i.address.startsWith('fe80')) : undefined
  return v6?.address ?? '127.0.0.1'
}

/** `sip:<user>@<host>:<port>` with an IPv6 host bracketed (RFC 3261 §19.1.1, RFC 2732). */
export function sipUri(user: string, host: string, port: number): string {
  return `sip:${user}@${host.includes(':') ? `[${host}]` : host}:${port}`
}

/** `host:port`, `[v6]:port` or `v6:port` (the last colon splits) → host without brackets, and the port (NaN when absent). */
export function splitHostPort(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':')
  if (i < 0) return { host: hostPort.replace(/^\[|\]$/g, ''), port: Number.NaN }
  return { host: hostPort.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(hostPort.slice(i + 1)) }
}
