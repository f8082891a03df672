import { isIP } from 'node:net'
import type { SipDirectoryRepository } from '../../store/sip-directory.ts'
import type { CalledNumberSource, ExtensionCredentialLookup, ExtensionIdentity, InboundTrunk } from './trunk-identifier.ts'
import type { DigestSecret } from './digest-auth.ts'

/** The store lookups the directory is built from (store/sip-directory.ts). */
export type SipDirectorySource = Pick<SipDirectoryRepository, 'inboundTrunks' | 'extensionRealms' | 'extensionDigest' | 'extensionByUsername'>

/**
 * Read-side view of the control-plane tables that inbound routing needs on
 * every INVITE (trunk allow-lists and credentials, extension realms), cached
 * for a couple of seconds so a burst of calls costs one query.
 */
export class SipDirectory implements ExtensionCredentialLookup {
  private trunks: { at: number; list: InboundTrunk[] } | null = null
  private realms: { at: number; list: string[] } | null = null

  constructor(private readonly source: SipDirectorySource, private readonly ttlMs = 2_000) {}

  invalidate(): void {
    this.trunks = null
    this.realms = null
  }

  async inboundTrunks(): Promise<InboundTrunk[]> {
    if (this.trunks && Date.now() - this.trunks.at < this.ttlMs) return this.trunks.list
    const list = (await this.source.inboundTrunks()).map((r): InboundTrunk => {
      const spec = r.spec
      const outbound = (spec.outbound ?? null) as { techPrefix?: string; register?: boolean; host?: string } | null
      const ips = [...r.inboundIps]
      // A trunk registered to its carrier receives calls from the registrar's address (RFC 3261 §10.2).
      if (outbound?.register && outbound.host && isIP(outbound.host.replace(/^\[|\]$/g, '')) && !ips.includes(outbound.host)) ips.push(outbound.host)
      const t: InboundTrunk = {
        id: r.id, accountId: r.accountId, name: r.name, inboundIps: ips,
        calledNumberSource: (spec.calledNumberSource as CalledNumberSource | undefined) ?? 'request-uri',
        defaultCountry: (spec.country as string | undefined) ?? null,
        techPrefix: (spec.inboundTechPrefix as string | undefined) ?? outbound?.techPrefix ?? null,
        maxConcurrentCalls: (spec.concurrencyLimit as number | undefined) ?? null,
      }
      if (r.inboundUsername && r.inboundHa1Md5) {
        t.inboundAuth = { username: r.inboundUsername, realm: r.inboundRealm ?? 'callplane', ha1Md5: r.inboundHa1Md5, ha1Sha256: r.inboundHa1Sha256 }
      }
      return t
    })
    this.trunks = { at: Date.now(), list }
    return list
  }

  private async extensionRealms(): Promise<string[]> {
    if (this.realms && Date.now() - this.realms.at < this.ttlMs) return this.realms.list
    this.realms = { at: Date.now(), list: await this.source.extensionRealms() }
    return this.realms.list
  }

  /**
   * The account realm an extension's call should authenticate in: the
   * Request-URI's domain when it is one, else (a phone dialling our IP) the
   * only realm there is.
   */
  async realmFor(requestHost: string, fromHost?: string): Promise<string | null> {
    const realms = await this.extensionRealms()
    for (const h of [requestHost, fromHost]) if (h && realms.includes(h)) return h
    if (realms.length === 1 && (isIP(requestHost.replace(/^\[|\]$/g, '')) || !requestHost)) return realms[0]!
    return null
  }

  find(username: string, realm: string): Promise<(ExtensionIdentity & DigestSecret) | null> {
    return this.source.extensionDigest(username, realm)
  }

  /** An extension of an account by its username ("201"): calls to extensions by number. */
  extensionByUsername(accountId: string, username: string): Promise<{ id: string; username: string } | null> {
    return this.source.extensionByUsername(accountId, username)
  }
}
