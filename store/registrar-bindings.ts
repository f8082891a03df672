import { randomBytes, randomUUID } from 'node:crypto'
import type { Queryable } from './common.ts'
import type { Emit, Outbox } from './outbox.ts'

/**
 * The registrar's tables (migrations/100_sip_registrar.sql): bindings, one
 * row per (AOR, Contact), RFC 3261 §10.3, and the digest nonce key. Expired
 * rows are ignored by every read and swept periodically.
 */

export interface Binding {
  id: string
  accountId: string
  extensionId: string | null
  aor: string
  username: string
  contact: string
  /** Where the REGISTER really came from: "udp:1.2.3.4:5060" (RFC 3581). */
  received: string | null
  transport: string
  callId: string
  cseq: number
  q: number | null
  instanceId: string | null
  userAgent: string | null
  nodeId: string | null
  expiresAt: Date
}

interface Row {
  id: string; account_id: string; extension_id: string | null; aor: string; username: string; contact: string; received: string | null
  transport: string; call_id: string; cseq: number; q: number | null; instance_id: string | null; user_agent: string | null
  node_id: string | null; expires_at: Date
}

const toBinding = (r: Row): Binding => ({
  id: r.id, accountId: r.account_id, extensionId: r.extension_id, aor: r.aor, username: r.username, contact: r.contact,
  received: r.received, transport: r.transport, callId: r.call_id, cseq: r.cseq, q: r.q, instanceId: r.instance_id,
  userAgent: r.user_agent, nodeId: r.node_id, expiresAt: r.expires_at,
})

/** What a REGISTER writes: a binding without its id, with optional extras and a lifetime instead of an expiry time. */
export type UpsertBinding = Omit<Binding, 'id' | 'q' | 'instanceId' | 'userAgent' | 'nodeId' | 'expiresAt'>
  & Partial<Pick<Binding, 'q' | 'instanceId' | 'userAgent' | 'nodeId'>>
  & { expiresSec: number }

export class RegistrarBindingRepository {
  constructor(private readonly db: Queryable, private readonly outbox: Outbox) {}

  /**
   * Runs `fn` in one transaction with the bindings as seen inside it and the
   * outbox's `emit`, so a binding change and its registration.changed event
   * commit together.
   */
  transaction<T>(fn: (bindings: RegistrarBindingRepository, emit: Emit) => Promise<T>): Promise<T> {
    return this.outbox.transaction((c, emit) => fn(new RegistrarBindingRepository(c, this.outbox), emit))
  }

  /** Live bindings of an AOR, highest q first (RFC 3261 §16.6 ordering). */
  async list(aor: string): Promise<Binding[]> {
    const { rows } = await this.db.query<Row>(
      'SELECT * FROM sip_registrations WHERE aor = $1 AND expires_at > now() ORDER BY q DESC NULLS LAST, updated_at DESC', [aor])
    return rows.map(toBinding)
  }

  async listByExtension(extensionId: string): Promise<Binding[]> {
    const { rows } = await this.db.query<Row>(
      'SELECT * FROM sip_registrations WHERE extension_id = $1 AND expires_at > now() ORDER BY q DESC NULLS LAST, updated_at DESC', [extensionId])
    return rows.map(toBinding)
  }

  async listByNode(nodeId: string): Promise<Binding[]> {
    const { rows } = await this.db.query<Row>('SELECT * FROM sip_registrations WHERE node_id = $1 AND expires_at > now()', [nodeId])
    return rows.map(toBinding)
  }

  async get(aor: string, contact: string): Promise<Binding | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM sip_registrations WHERE aor = $1 AND contact = $2 AND expires_at > now()', [aor, contact])
    return rows[0] ? toBinding(rows[0]) : null
  }

  async upsert(b: UpsertBinding): Promise<Binding> {
    const { rows } = await this.db.query<Row>(
      `INSERT INTO sip_registrations (id, account_id, extension_id, aor, username, contact, received, transport, call_id, cseq, q,
          instance_id, user_agent, node_id, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, now() + make_interval(secs => $15))
       ON CONFLICT (aor, contact) DO UPDATE SET account_id = EXCLUDED.account_id, extension_id = EXCLUDED.extension_id,
          received = EXCLUDED.received, transport = EXCLUDED.transport, call_id = EXCLUDED.call_id, cseq = EXCLUDED.cseq,
          q = EXCLUDED.q, instance_id = EXCLUDED.instance_id, user_agent = EXCLUDED.user_agent, node_id = EXCLUDED.node_id,
          expires_at = EXCLUDED.expires_at, updated_at = now()
       RETURNING *`,
      [randomUUID(), b.accountId, b.extensionId, b.aor, b.username, b.contact, b.received, b.transport, b.callId, b.cseq,
        b.q ?? null, b.instanceId ?? null, b.userAgent ?? null, b.nodeId ?? null, b.expiresSec],
    )
    return toBinding(rows[0]!)
  }

  async remove(aor: string, contact: string): Promise<boolean> {
    const { rowCount } = await this.db.query('DELETE FROM sip_registrations WHERE aor = $1 AND contact = $2', [aor, contact])
    return (rowCount ?? 0) > 0
  }

  async removeAll(aor: string): Promise<number> {
    const { rowCount } = await this.db.query('DELETE FROM sip_registrations WHERE aor = $1', [aor])
    return rowCount ?? 0
  }

  /** Deletes expired bindings; returns the AORs that lost one (for registration.changed). */
  async sweep(): Promise<Array<{ aor: string; accountId: string; extensionId: string | null }>> {
    const { rows } = await this.db.query<{ aor: string; account_id: string; extension_id: string | null }>(
      'DELETE FROM sip_registrations WHERE expires_at <= now() RETURNING aor, account_id, extension_id')
    return rows.map((r) => ({ aor: r.aor, accountId: r.account_id, extensionId: r.extension_id }))
  }

  /** The shared digest nonce key (sip_secrets): created by the first node, read by the others. */
  async nonceSecret(): Promise<Buffer> {
    await this.db.query(`INSERT INTO sip_secrets (name, value) VALUES ('digest-nonce', $1) ON CONFLICT (name) DO NOTHING`,
      [randomBytes(32).toString('base64')])
    const { rows } = await this.db.query<{ value: string }>(`SELECT value FROM sip_secrets WHERE name = 'digest-nonce'`)
    return Buffer.from(rows[0]!.value, 'base64')
  }
}
