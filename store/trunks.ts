import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { digestHa1, type SecretBox } from './secrets.ts'

export type SipTransport = 'udp' | 'tcp' | 'tls'

/** Where calls to the carrier go, and how the engine authenticates and registers there. */
export interface TrunkOutbound {
  host: string
  port?: number
  transport?: SipTransport
  username?: string
  /** Write-only: sealed at rest, never returned; `hasPassword` says whether one is set. */
  password?: string
  register?: boolean
  registerExpiresSec?: number
  techPrefix?: string
  fromDomain?: string
  headers?: Record<string, string>
}

export interface TrunkInbound {
  /** IPs or CIDRs calls from this carrier come from. */
  allowedIps?: string[]
  /** Digest credentials the carrier authenticates with (password write-only, stored as HA1); null removes them. */
  username?: string | null
  password?: string
}

export interface TrunkSpec {
  description?: string
  codecs?: string[]
  concurrencyLimit?: number
}

export interface Trunk extends TrunkSpec {
  id: string
  accountId: string
  name: string
  inbound: { allowedIps: string[]; username: string | null; realm: string | null; hasPassword: boolean }
  outbound: (Omit<TrunkOutbound, 'password'> & { hasPassword: boolean }) | null
  createdAt: string
  updatedAt: string
}

export interface TrunkInput extends TrunkSpec {
  name: string
  inbound?: TrunkInbound
  outbound?: TrunkOutbound | null
}

interface Row {
  id: string; seq: string; account_id: string; name: string
  spec: TrunkSpec & { outbound?: Omit<TrunkOutbound, 'password'> | null }
  inbound_ips: string[]; inbound_username: string | null; inbound_realm: string | null
  inbound_ha1_md5: string | null; inbound_ha1_sha256: string | null; outbound_password: string | null
  created_at: Date; updated_at: Date
}

const toTrunk = (r: Row): Trunk => {
  const { outbound, ...spec } = r.spec
  return {
    id: r.id, accountId: r.account_id, name: r.name, ...spec,
    inbound: { allowedIps: r.inbound_ips, username: r.inbound_username, realm: r.inbound_realm, hasPassword: !!r.inbound_ha1_md5 },
    outbound: outbound ? { ...outbound, hasPassword: !!r.outbound_password } : null,
    createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
  }
}

/** What the SIP app needs to place a call over, or register to, a trunk. */
export interface TrunkDialTarget {
  trunk: Trunk
  outbound: TrunkOutbound
}

/** What the SIP app needs to authenticate a carrier's INVITE. */
export interface TrunkInboundAuth {
  trunk: Trunk
  realm: string
  ha1Md5: string
  ha1Sha256: string
}

export class TrunkRepository {
  constructor(private readonly db: Queryable, private readonly secrets: SecretBox, private readonly realmFor: (accountId: string) => Promise<string>) {}

  private async columns(accountId: string, input: TrunkInput, cur?: Row) {
    const { name, inbound, outbound, ...spec } = input
    const { password: outPass, ...outboundPublic } = outbound ?? ({} as TrunkOutbound)
    let inUser = cur?.inbound_username ?? null
    let realm = cur?.inbound_realm ?? null
    let md5 = cur?.inbound_ha1_md5 ?? null
    let sha = cur?.inbound_ha1_sha256 ?? null
    if (inbound && 'username' in inbound) inUser = inbound.username ?? null
    if (inbound?.password !== undefined && inUser) {
      realm = await this.realmFor(accountId)
      const h = digestHa1(inUser, realm, inbound.password)
      md5 = h.md5
      sha = h.sha256
    }
    if (!inUser) md5 = sha = realm = null
    const outboundSpec = outbound === undefined ? (cur?.spec.outbound ?? null) : outbound === null ? null : outboundPublic
    let sealed = cur?.outbound_password ?? null
    if (outbound === null) sealed = null
    else if (outPass !== undefined) sealed = outPass === '' ? null : this.secrets.seal(outPass)
    const ips = inbound?.allowedIps ?? cur?.inbound_ips ?? []
    return { name, spec: { ...spec, outbound: outboundSpec }, ips, inUser, realm, md5, sha, sealed }
  }

  async create(accountId: string, input: TrunkInput): Promise<Trunk> {
    const c = await this.columns(accountId, input)
    const { rows } = await this.db.query<Row>(
      `INSERT INTO trunks (id, account_id, name, spec, inbound_ips, inbound_username, inbound_realm, inbound_ha1_md5, inbound_ha1_sha256, outbound_password)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *`,
      [randomUUID(), accountId, c.name, JSON.stringify(c.spec), c.ips, c.inUser, c.realm, c.md5, c.sha, c.sealed],
    )
    return toTrunk(rows[0]!)
  }

  private async row(accountId: string, id: string): Promise<Row | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM trunks WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ?? null
  }

  async get(accountId: string, id: string): Promise<Trunk | null> {
    const r = await this.row(accountId, id)
    return r ? toTrunk(r) : null
  }

  list(accountId: string, page: PageRequest): Promise<Page<Trunk>> {
    return pageQuery<Row, Trunk>(this.db, { table: 'trunks', accountId, order: 'asc', page }, toTrunk)
  }

  async update(accountId: string, id: string, patch: Partial<TrunkInput>): Promise<Trunk | null> {
    const cur = await this.row(accountId, id)
    if (!cur) return null
    const { outbound: _o, ...curSpec } = cur.spec
    const merged: TrunkInput = { ...curSpec, name: cur.name, ...patch }
    if (patch.outbound) merged.outbound = { ...(cur.spec.outbound ?? {}), ...patch.outbound }
    const c = await this.columns(accountId, merged, cur)
    const { rows } = await this.db.query<Row>(
      `UPDATE trunks SET name = $3, spec = $4, inbound_ips = $5, inbound_username = $6, inbound_realm = $7,
         inbound_ha1_md5 = $8, inbound_ha1_sha256 = $9, outbound_password = $10, updated_at = now()
       WHERE account_id = $1 AND id = $2 RETURNING *`,
      [accountId, id, c.name, JSON.stringify(c.spec), c.ips, c.inUser, c.realm, c.md5, c.sha, c.sealed],
    )
    return rows[0] ? toTrunk(rows[0]) : null
  }

  async delete(accountId: string, id: string): Promise<boolean> {
    const { rowCount } = await this.db.query('DELETE FROM trunks WHERE account_id = $1 AND id = $2', [accountId, id])
    return (rowCount ?? 0) > 0
  }

  /** For outbound calls and registration: the trunk with its outbound password opened. */
  async dialTarget(id: string): Promise<TrunkDialTarget | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM trunks WHERE id = $1', [id])
    const r = rows[0]
    if (!r?.spec.outbound) return null
    return { trunk: toTrunk(r), outbound: { ...r.spec.outbound, ...(r.outbound_password ? { password: this.secrets.open(r.outbound_password) } : {}) } }
  }

  /** Trunks that register to their carrier (the SIP app keeps those registrations alive). */
  async listRegistering(): Promise<TrunkDialTarget[]> {
    const { rows } = await this.db.query<Row>(`SELECT * FROM trunks WHERE (spec->'outbound'->>'register')::boolean IS TRUE ORDER BY seq`)
    return rows.map((r) => ({ trunk: toTrunk(r), outbound: { ...r.spec.outbound!, ...(r.outbound_password ? { password: this.secrets.open(r.outbound_password) } : {}) } }))
  }

  /** Trunks whose allowedIps contain `ip` (exact IPs or CIDRs), for inbound INVITEs. */
  async findByInboundIp(ip: string): Promise<Trunk[]> {
    const { rows } = await this.db.query<Row>(
      `SELECT t.* FROM trunks t WHERE EXISTS (
         SELECT 1 FROM unnest(t.inbound_ips) a WHERE $1::inet <<= a::inet) ORDER BY t.seq`,
      [ip],
    )
    return rows.map(toTrunk)
  }

  /** Trunks with inbound digest credentials for `username` (HA1 for the registrar/UAS challenge). */
  async findInboundAuth(username: string): Promise<TrunkInboundAuth[]> {
    const { rows } = await this.db.query<Row>('SELECT * FROM trunks WHERE inbound_username = $1 AND inbound_ha1_md5 IS NOT NULL ORDER BY seq', [username])
    return rows.map((r) => ({ trunk: toTrunk(r), realm: r.inbound_realm!, ha1Md5: r.inbound_ha1_md5!, ha1Sha256: r.inbound_ha1_sha256! }))
  }
}
