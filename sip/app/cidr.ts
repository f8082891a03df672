import { isIP } from 'node:net'

/**
 * IPv4/IPv6 addresses and CIDR blocks (RFC 4632, RFC 4291 §2.3) for trunk
 * allow-lists. IPv4-mapped IPv6 sources (::ffff:a.b.c.d, what a dual-stack
 * socket reports) match IPv4 blocks.
 */

export interface Cidr {
  family: 4 | 6
  base: bigint
  bits: number
  text: string
}

function v4ToBig(ip: string): bigint {
  return ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n)
}

function v6ToBig(ip: string): bigint {
  let s = ip
  const pct = s.indexOf('%')
  if (pct >= 0) s = s.slice(0, pct)
  // Embedded IPv4 tail (::ffff:1.2.3.4).
  const lastColon = s.lastIndexOf(':')
  const tail = s.slice(lastColon + 1)
  if (tail.includes('.')) {
    const v4 = v4ToBig(tail)
    s = `${s.slice(0, lastColon + 1)}${((v4 >> 16n) & 0xffffn).toString(16)}:${(v4 & 0xffffn).toString(16)}`
  }
  const [head, rest] = s.split('::') as [string, string | undefined]
  const h = head ? head.split(':') : []
  const r = rest !== undefined && rest !== '' ? rest.split(':') : []
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - r.length).fill('0'), ...r]
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n)
}

/** Canonical form of an address: IPv4-mapped IPv6 becomes plain IPv4; brackets dropped. */
export function normalizeIp(ip: string): string {
  const s = ip.replace(/^\[|\]$/g, '')
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(s)
  return m ? m[1]! : s
}

/** Parses "a.b.c.d", "a.b.c.d/n", "2001:db8::/32"; null when invalid. */
export function parseCidr(text: string): Cidr | null {
  const [addrRaw, lenRaw] = text.trim().split('/') as [string, string | undefined]
  const addr = normalizeIp(addrRaw)
  const fam = isIP(addr)
  if (fam !== 4 && fam !== 6) return null
  const max = fam === 4 ? 32 : 128
  const bits = lenRaw === undefined ? max : Number(lenRaw)
  if (!Number.isInteger(bits) || bits < 0 || bits > max || (lenRaw !== undefined && !/^\d+$/.test(lenRaw))) return null
  const value = fam === 4 ? v4ToBig(addr) : v6ToBig(addr)
  const mask = bits === 0 ? 0n : ((1n << BigInt(bits)) - 1n) << BigInt(max - bits)
  return { family: fam, base: value & mask, bits, text: text.trim() }
}

export function cidrContains(cidr: Cidr, ip: string): boolean {
  const addr = normalizeIp(ip)
  const fam = isIP(addr)
  if (fam !== cidr.family) return false
  const max = fam === 4 ? 32 : 128
  const value = fam === 4 ? v4ToBig(addr) : v6ToBig(addr)
  const mask = cidr.bits === 0 ? 0n : ((1n << BigInt(cidr.bits)) - 1n) << BigInt(max - cidr.bits)
  return (value & mask) === cidr.base
}

/** A compiled allow-list. Invalid entries are reported, never silently widened. */
export class CidrList {
  readonly blocks: Cidr[] = []
  readonly invalid: string[] = []

  constructor(entries: Iterable<string>) {
    for (const e of entries) {
      const c = parseCidr(e)
      if (c) this.blocks.push(c)
      else this.invalid.push(e)
    }
  }

  get empty(): boolean {
    return this.blocks.length === 0
  }

  /** The most specific block containing `ip`, or null. */
  match(ip: string): Cidr | null {
    let best: Cidr | null = null
    for (const b of this.blocks) if (cidrContains(b, ip) && (!best || b.bits > best.bits)) best = b
    return best
  }
}
