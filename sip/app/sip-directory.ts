import { isIP } from 'node:net'
import type pg from 'pg'
import type { CalledNumberSource, ExtensionCredentialLookup, ExtensionIdentity, InboundTrunk } from './trunk-identifier.ts'
import type { DigestSecret } from './digest-auth.ts'

type Queryable = Pick<pg.Pool, 'query'>

/**
 * Read-side view of the control-plane tables that inbound routing needs on
 * every INVITE (trunk allow-lists and credentials, extension realms), cached
 * for a couple of seconds so a burst of calls costs one query.
 */
export class SipDirectory implements ExtensionCredentialLookup {
  private trunks: { at: number; list: InboundTrunk[] } | null = null
  private realms: { at: number; list: string[] } | null = null

  constructor(private readonly db: Queryable, private readonly ttlMs = 2_000) {}

  invalidate(): void {
    this.trunks = null
    this.realms = null
  }

  async inboundTrunks(): Promise<InboundTrunk[]> {
    if (this.trunks && Date.now() - this.trunks.at < this.ttlMs) return this.trunks.list
    const { rows } = await this.db.query<{
      id: string; account_id: string; name: string; spec: Record<string, unknown>; inbound_ips: string[]
      inbound_username: string | null; inbound_realm: string | null; inbound_ha1_md5: string | null; inbound_ha1_sha256: string | null
    }>('SELECT id, account_id, name, spec, inbound_ips, inbound_username, inbound_realm, inbound_ha1_md5, inbound_ha1_sha256 FROM trunks ORDER BY seq')
    const list = rows.map((r): InboundTrunk => {
      const spec = r.spec ?? {}
      const outbound = (spec.outbound ?? null) as { techPrefix?: string; register?: boolean; host?: string } | null
      const ips = [...(r.inbound_ips ?? [])]
      // A trunk registered to its carrier receives calls from the registrar's address (RFC 3261 §10.2).
      if (outbound?.register && outbound.host && isIP(outbound.host.replace(/^\[|\]$/g, '')) && !ips.includes(outbound.host)) ips.push(outbound.host)
      const t: InboundTrunk = {
        id: r.id, accountId: r.account_id, name: r.name, inboundIps: ips,
        calledNumberSource: (spec.calledNumberSource as CalledNumberSource | undefined) ?? 'request-uri',
        defaultCountry: (spec.country as string | undefined) ?? null,
        techPrefix: (spec.inboundTechPrefix as string | undefined) ?? outbound?.techPrefix ?? null,
        maxConcurrentCalls: (spec.concurrencyLimit as number | undefined) ?? null,
      }
      if (r.inbound_username && r.inbound_ha1_md5) {
        t.inboundAuth = { username: r.inbound_username, realm: r.inbound_realm ?? 'callplane', ha1Md5: r.inbound_ha1_md5, ha1Sha256: r.inbound_ha1_sha256 }
      }
      return t
    })
    this.trunks = { at: Date.now(), list }
    return list
  }

  private async extensionRealms(): Promise<string[]> {
    if (this.realms && Date.now() - this.realms.at < this.ttlMs) return this.realms.list
    const { rows } = await this.db.query<{ realm: string }>('SELECT DISTINCT realm FROM extensions')
    this.realms = { at: Date.now(), list: rows.map((r) => r.realm) }
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

  async find(username: string, realm: string): Promise<(ExtensionIdentity & DigestSecret) | null> {
    const { rows } = await this.db.query<{ id: string; account_id: string; extension: string; realm: string; ha1_md5: string; ha1_sha256: string }>(
      'SELECT id, account_id, extension, realm, ha1_md5, ha1_sha256 FROM extensions WHERE extension = $1 AND realm = $2 LIMIT 1', [username, realm])
    const r = rows[0]
    return r ? { id: r.id, accountId: r.account_id, username: r.extension, realm: r.realm, ha1Md5: r.ha1_md5, ha1Sha256: r.ha1_sha256 } : null
  }

  /** An extension of an account by its username ("201"): calls to extensions by number. */
  async extensionByUsername(accountId: string, username: string): Promise<{ id: string; username: string } | null> {
    const { rows } = await this.db.query<{ id: string; extension: string }>('SELECT id, extension FROM extensions WHERE account_id = $1 AND extension = $2', [accountId, username])
    return rows[0] ? { id: rows[0].id, username: rows[0].extension } : null
  }
}
