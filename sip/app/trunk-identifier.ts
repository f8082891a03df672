import { CidrList } from './cidr.ts'
import type { DigestAuthenticator, DigestSecret } from './digest-auth.ts'

/**
 * Who sent an INVITE: a carrier trunk recognised by source address
 * (IP/CIDR allow-list), a trunk or an extension that proved its identity with
 * digest (RFC 3261 §22.3, 407 Proxy-Authenticate), or nobody (403).
 */

export type CalledNumberSource = 'request-uri' | 'to' | 'diversion' | 'p-called-party-id'

export interface InboundTrunk {
  id: string
  accountId: string
  name: string
  /** IPs / CIDR blocks allowed to send calls. Empty: any source (then credentials are required). */
  inboundIps: string[]
  /** Digest credentials the carrier must present (HA1 only, never the password). */
  inboundAuth?: { username: string; realm: string } & DigestSecret
  calledNumberSource?: CalledNumberSource
  /** ISO country for national-format numbers from this carrier. */
  defaultCountry?: string | null
  /** Prefix the carrier prepends to the called number, removed before lookup. */
  techPrefix?: string | null
  maxConcurrentCalls?: number | null
}

/** An extension (registered phone / PBX user) identified by digest. */
export interface ExtensionIdentity {
  id: string
  accountId: string
  username: string
  realm: string
}

export type Identification =
  | { kind: 'trunk'; trunk: InboundTrunk; via: 'ip' | 'digest' }
  | { kind: 'extension'; extension: ExtensionIdentity }
  | { kind: 'challenge'; realm: string; headers: string[] }
  | { kind: 'reject'; status: 403; reason: string; retryAfterSec?: number }

export interface ExtensionCredentialLookup {
  /** Realms (account SIP domains) that have extensions. */
  realmFor(requestHost: string): Promise<string | null> | string | null
  find(username: string, realm: string): Promise<(ExtensionIdentity & DigestSecret) | null> | (ExtensionIdentity & DigestSecret) | null
}

export interface IdentifyInput {
  source: string
  method: string
  /** Proxy-Authorization header (RFC 3261 §22.3). */
  proxyAuthorization?: string | undefined
  /** Host of the Request-URI: picks the account realm for extensions. */
  requestHost: string
}

export class TrunkIdentifier {
  private compiled: Array<{ trunk: InboundTrunk; ips: CidrList }> = []

  constructor(private readonly digest: DigestAuthenticator, trunks: InboundTrunk[] = [], private readonly extensions?: ExtensionCredentialLookup) {
    this.setTrunks(trunks)
  }

  setTrunks(trunks: InboundTrunk[]): void {
    this.compiled = trunks.map((trunk) => ({ trunk, ips: new CidrList(trunk.inboundIps) }))
  }

  /** Trunks whose allow-list contains `ip`, most specific block first. */
  matchIp(ip: string): InboundTrunk[] {
    return this.compiled
      .map(({ trunk, ips }) => ({ trunk, block: ips.match(ip) }))
      .filter((m) => m.block !== null)
      .sort((a, b) => b.block!.bits - a.block!.bits)
      .map((m) => m.trunk)
  }

  async identify(input: IdentifyInput): Promise<Identification> {
    const byIp = this.matchIp(input.source)
    const open = byIp.find((t) => !t.inboundAuth)
    if (open) return { kind: 'trunk', trunk: open, via: 'ip' }

    // Candidates for digest: IP-matched trunks that also need credentials, else
    // credential-only trunks (no allow-list), plus extensions of the target domain.
    const trunkCandidates = byIp.length
      ? byIp.filter((t) => t.inboundAuth)
      : this.compiled.filter(({ trunk, ips }) => ips.empty && trunk.inboundAuth).map((c) => c.trunk)
    const extRealm = byIp.length ? null : (await this.extensions?.realmFor(input.requestHost)) ?? null
    if (!trunkCandidates.length && !extRealm) return { kind: 'reject', status: 403, reason: 'Unknown source' }

    // An extension's account domain wins the realm when the request targets it.
    const realm = extRealm ?? trunkCandidates[0]!.inboundAuth!.realm
    const result = await this.digest.verify({
      method: input.method,
      header: input.proxyAuthorization,
      realm,
      source: input.source,
      lookup: async (username, r) => {
        const t = trunkCandidates.find((c) => c.inboundAuth!.username === username && c.inboundAuth!.realm === r)
        if (t) return t.inboundAuth!
        return (await this.extensions?.find(username, r)) ?? null
      },
    })
    if (result.ok) {
      const t = trunkCandidates.find((c) => c.inboundAuth!.username === result.username && c.inboundAuth!.realm === realm)
      if (t) return { kind: 'trunk', trunk: t, via: 'digest' }
      const ext = await this.extensions?.find(result.username, realm)
      if (ext) return { kind: 'extension', extension: { id: ext.id, accountId: ext.accountId, username: ext.username, realm: ext.realm } }
      return { kind: 'reject', status: 403, reason: 'Unknown identity' }
    }
    switch (result.reason) {
      case 'missing':
      case 'realm':
        return { kind: 'challenge', realm, headers: this.digest.challenge(realm) }
      case 'stale':
        return { kind: 'challenge', realm, headers: this.digest.challenge(realm, true) }
      case 'locked':
        return { kind: 'reject', status: 403, reason: 'Locked out', ...(result.retryAfterSec ? { retryAfterSec: result.retryAfterSec } : {}) }
      default:
        return { kind: 'reject', status: 403, reason: 'Bad credentials' }
    }
  }
}
