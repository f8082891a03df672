import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { conflict } from './errors.ts'
import { digestHa1 } from './secrets.ts'

/** A SIP user that registers to the engine (a desk phone, a softphone, a PBX). */
export interface Extension {
  id: string
  accountId: string
  /** The SIP username, e.g. "201". */
  extension: string
  name: string | null
  description: string | null
  callerId: string | null
  /** The digest realm the HA1 was computed for (the account's SIP domain). */
  realm: string
  createdAt: string
  updatedAt: string
}

export interface ExtensionInput {
  extension: string
  /** Write-only: kept only as MD5 and SHA-256 HA1. */
  password: string
  name?: string | null
  description?: string | null
  callerId?: string | null
}

/** What the registrar needs to check a digest response. */
export interface ExtensionCredentials {
  extension: Extension
  realm: string
  ha1Md5: string
  ha1Sha256: string
}

interface Spec { description?: string | null; callerId?: string | null }
interface Row { id: string; seq: string; account_id: string; extension: string; name: string | null; spec: Spec; realm: string; ha1_md5: string; ha1_sha256: string; created_at: Date; updated_at: Date }
const toExt = (r: Row): Extension => ({
  id: r.id, accountId: r.account_id, extension: r.extension, name: r.name, description: r.spec.description ?? null, callerId: r.spec.callerId ?? null,
  realm: r.realm, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

export class ExtensionRepository {
  constructor(private readonly db: Queryable, private readonly realmFor: (accountId: string) => Promise<string>) {}

  private unique<T>(p: Promise<T>, ext: string | undefined): Promise<T> {
    return p.catch((err: { code?: string }) => {
      if (err.code === '23505') throw conflict(`extension ${ext} already exists`, { field: 'extension' })
      throw err
    })
  }

  async create(accountId: string, input: ExtensionInput): Promise<Extension> {
    const realm = await this.realmFor(accountId)
    const h = digestHa1(input.extension, realm, input.password)
    const { rows } = await this.unique(this.db.query<Row>(
      `INSERT INTO extensions (id, account_id, extension, name, spec, realm, ha1_md5, ha1_sha256)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
      [randomUUID(), accountId, input.extension, input.name ?? null, JSON.stringify({ description: input.description ?? null, callerId: input.callerId ?? null }), realm, h.md5, h.sha256],
    ), input.extension)
    return toExt(rows[0]!)
  }

  async get(accountId: string, id: string): Promise<Extension | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM extensions WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toExt(rows[0]) : null
  }

  list(accountId: string, page: PageRequest): Promise<Page<Extension>> {
    return pageQuery<Row, Extension>(this.db, { table: 'extensions', accountId, order: 'asc', page }, toExt)
  }

  /** Changing `extension` without `password` is refused by the caller: HA1 binds the username. */
  async update(accountId: string, id: string, patch: Partial<ExtensionInput>): Promise<Extension | null> {
    const { rows: [cur] } = await this.db.query<Row>('SELECT * FROM extensions WHERE account_id = $1 AND id = $2', [accountId, id])
    if (!cur) return null
    const ext = patch.extension ?? cur.extension
    let { realm, ha1_md5: md5, ha1_sha256: sha } = cur
    if (patch.password !== undefined) {
      realm = await this.realmFor(accountId)
      const h = digestHa1(ext, realm, patch.password)
      md5 = h.md5
      sha = h.sha256
    }
    const spec: Spec = { description: cur.spec.description ?? null, callerId: cur.spec.callerId ?? null }
    if (patch.description !== undefined) spec.description = patch.description
    if (patch.callerId !== undefined) spec.callerId = patch.callerId
    const name = patch.name !== undefined ? patch.name : cur.name
    const { rows } = await this.unique(this.db.query<Row>(
      `UPDATE extensions SET extension = $3, name = $4, spec = $5, realm = $6, ha1_md5 = $7, ha1_sha256 = $8, updated_at = now()
       WHERE account_id = $1 AND id = $2 RETURNING *`,
      [accountId, id, ext, name, JSON.stringify(spec), realm, md5, sha],
    ), ext)
    return rows[0] ? toExt(rows[0]) : null
  }

  async delete(accountId: string, id: string): Promise<boolean> {
    const { rowCount } = await this.db.query('DELETE FROM extensions WHERE account_id = $1 AND id = $2', [accountId, id])
    return (rowCount ?? 0) > 0
  }

  /**
   * Registrar lookup: the credentials for `username` in the account whose SIP
   * domain is `domain` (or, when only one account has that username, that one).
   */
  async findCredentials(username: string, domain?: string): Promise<ExtensionCredentials | null> {
    const { rows } = await this.db.query<Row>(
      domain
        ? `SELECT e.* FROM extensions e JOIN accounts a ON a.id = e.account_id WHERE e.extension = $1 AND (a.sip_domain = $2 OR e.realm = $2) LIMIT 1`
        : 'SELECT * FROM extensions WHERE extension = $1 ORDER BY seq LIMIT 2',
      domain ? [username, domain] : [username],
    )
    if (rows.length !== 1) return null
    const r = rows[0]!
    return { extension: toExt(r), realm: r.realm, ha1Md5: r.ha1_md5, ha1Sha256: r.ha1_sha256 }
  }
}
