import type { Queryable } from './common.ts'

/** A trunk as inbound identification needs it: its allow-list, its digest credentials and its spec. */
export interface InboundTrunkRecord {
  id: string
  accountId: string
  name: string
  spec: Record<string, unknown>
  inboundIps: string[]
  inboundUsername: string | null
  inboundRealm: string | null
  inboundHa1Md5: string | null
  inboundHa1Sha256: string | null
}

/** An extension's digest identity (HA1 hashes, never the password). */
export interface ExtensionDigestRecord {
  id: string
  accountId: string
  username: string
  realm: string
  ha1Md5: string
  ha1Sha256: string
}

/**
 * The lookups SIP signalling makes across accounts on every INVITE and
 * REGISTER: trunks by address or credentials, extensions by username and
 * realm, caller IDs. Read-only; the control API's repositories write these
 * tables (trunks.ts, extensions.ts).
 */
export class SipDirectoryRepository {
  constructor(private readonly db: Queryable) {}

  /** Every trunk, oldest first (the order identification tries them in). */
  async inboundTrunks(): Promise<InboundTrunkRecord[]> {
    const { rows } = await this.db.query<{
      id: string; account_id: string; name: string; spec: Record<string, unknown>; inbound_ips: string[]
      inbound_username: string | null; inbound_realm: string | null; inbound_ha1_md5: string | null; inbound_ha1_sha256: string | null
    }>('SELECT id, account_id, name, spec, inbound_ips, inbound_username, inbound_realm, inbound_ha1_md5, inbound_ha1_sha256 FROM trunks ORDER BY seq')
    return rows.map((r) => ({
      id: r.id, accountId: r.account_id, name: r.name, spec: r.spec ?? {}, inboundIps: r.inbound_ips ?? [],
      inboundUsername: r.inbound_username, inboundRealm: r.inbound_realm, inboundHa1Md5: r.inbound_ha1_md5, inboundHa1Sha256: r.inbound_ha1_sha256,
    }))
  }

  /** The realms extensions live in (one per account that has extensions). */
  async extensionRealms(): Promise<string[]> {
    const { rows } = await this.db.query<{ realm: string }>('SELECT DISTINCT realm FROM extensions')
    return rows.map((r) => r.realm)
  }

  async extensionDigest(username: string, realm: string): Promise<ExtensionDigestRecord | null> {
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

  /** An extension's username by id; null when it is gone. */
  async extensionUsername(extensionId: string): Promise<string | null> {
    const { rows } = await this.db.query<{ extension: string }>('SELECT extension FROM extensions WHERE id = $1', [extensionId])
    return rows[0]?.extension ?? null
  }

  /** The caller ID an extension presents when it calls out, if it has one. */
  async extensionCallerId(extensionId: string): Promise<string | null> {
    const { rows } = await this.db.query<{ cid: string | null }>(`SELECT spec->>'callerId' AS cid FROM extensions WHERE id = $1`, [extensionId])
    return rows[0]?.cid ?? null
  }

  /** Whether one of the account's extensions is `from` by username, or presents `from`/`e164` as its caller ID. */
  async extensionOwnsCallerId(accountId: string, from: string, e164: string): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `SELECT 1 FROM extensions WHERE account_id = $1 AND (extension = $2 OR spec->>'callerId' = $2 OR spec->>'callerId' = $3)`, [accountId, from, e164])
    return (rowCount ?? 0) > 0
  }
}
