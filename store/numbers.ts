import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { conflict, invalidField, invalidReference } from './errors.ts'
import { toStatusCallback, type StatusCallback } from './status-callbacks.ts'

/** Where a call to the number goes. */
export interface NumberTarget {
  type: 'agent' | 'extension' | 'sip' | 'conference' | 'flow' | 'app' | 'none'
  /** agent, extension, conference or flow id. */
  id?: string
  /** For `sip`: the URI to forward to. */
  uri?: string
  /** For `app`: the webhook app asked for verbs on answer, and how. */
  url?: string
  method?: 'POST' | 'GET'
}

export interface PhoneNumber {
  id: string
  accountId: string
  /** E.164 (+4930…) or a short internal number such as `1000`. */
  number: string
  name: string | null
  trunkId: string | null
  target: NumberTarget
  createdAt: string
  updatedAt: string
  /** Telefon `status_callback`: every inbound call to the number reports its statuses there. */
  statusCallback: StatusCallback | null
}

export interface NumberInput {
  number: string
  name?: string | null
  trunkId?: string | null
  target?: NumberTarget
  statusCallback?: StatusCallback | null
}

interface Row {
  id: string; seq: string; account_id: string; number: string; name: string | null; trunk_id: string | null; target: NumberTarget; created_at: Date; updated_at: Date
  status_callback: string | null; status_callback_method: string | null
}
const toNumber = (r: Row): PhoneNumber => ({
  id: r.id, accountId: r.account_id, number: r.number, name: r.name, trunkId: r.trunk_id, target: r.target,
  createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
  statusCallback: toStatusCallback(r.status_callback, r.status_callback_method),
})

const TARGET_TABLE: Record<string, string> = { agent: 'agents', extension: 'extensions', conference: 'conferences', flow: 'flows' }

export class NumberRepository {
  constructor(private readonly db: Queryable) {}

  private async checkRefs(accountId: string, input: Partial<NumberInput>): Promise<void> {
    if (input.trunkId) {
      const { rowCount } = await this.db.query('SELECT 1 FROM trunks WHERE account_id = $1 AND id = $2', [accountId, input.trunkId])
      if (!rowCount) throw invalidReference('trunkId', 'trunk')
    }
    const t = input.target
    if (t && TARGET_TABLE[t.type]) {
      if (!t.id) throw invalidReference('target.id', t.type)
      const { rowCount } = await this.db.query(`SELECT 1 FROM ${TARGET_TABLE[t.type]} WHERE account_id = $1 AND id = $2`, [accountId, t.id])
      if (!rowCount) throw invalidReference('target.id', t.type)
    }
    if (t?.type === 'sip' && !t.uri) throw invalidReference('target.uri', 'SIP URI')
    if (t?.type === 'app' && !t.url) throw invalidReference('target.url', 'webhook app URL')
    // Fields of another target type would be kept and ignored: refuse them instead.
    if (t && t.type !== 'app' && (t.url !== undefined || t.method !== undefined)) throw invalidField('target.url', `only for app targets (this target is ${t.type})`)
    if (t && t.type !== 'sip' && t.uri !== undefined) throw invalidField('target.uri', `only for sip targets (this target is ${t.type})`)
    if (t && !TARGET_TABLE[t.type] && t.id !== undefined) throw invalidField('target.id', `not used by ${t.type} targets`)
  }

  private unique<T>(p: Promise<T>, number: string | undefined): Promise<T> {
    return p.catch((err: { code?: string }) => {
      if (err.code === '23505') throw conflict(`number ${number} is already provisioned`, { field: 'number' })
      throw err
    })
  }

  async create(accountId: string, input: NumberInput): Promise<PhoneNumber> {
    await this.checkRefs(accountId, input)
    const { rows } = await this.unique(this.db.query<Row>(
      `INSERT INTO numbers (id, account_id, number, name, trunk_id, target, status_callback, status_callback_method)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
      [randomUUID(), accountId, input.number, input.name ?? null, input.trunkId ?? null, JSON.stringify(input.target ?? { type: 'none' }),
        input.statusCallback?.url ?? null, input.statusCallback?.method ?? null],
    ), input.number)
    return toNumber(rows[0]!)
  }

  async get(accountId: string, id: string): Promise<PhoneNumber | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM numbers WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toNumber(rows[0]) : null
  }

  /** Inbound routing: the number a call is addressed to, whatever the account. */
  async findByNumber(number: string): Promise<PhoneNumber | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM numbers WHERE number = $1', [number])
    return rows[0] ? toNumber(rows[0]) : null
  }

  /** The account's number with this number string (a caller ID the account owns), or null. */
  async findInAccount(accountId: string, number: string): Promise<PhoneNumber | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM numbers WHERE account_id = $1 AND number = $2', [accountId, number])
    return rows[0] ? toNumber(rows[0]) : null
  }

  /** The agent's number (the first of the account's numbers routed to it): outbound work's default caller ID. */
  async firstForAgent(accountId: string, agentId: string): Promise<PhoneNumber | null> {
    const { rows } = await this.db.query<Row>(
      `SELECT * FROM numbers WHERE account_id = $1 AND target->>'type' = 'agent' AND target->>'id' = $2 ORDER BY seq LIMIT 1`, [accountId, agentId])
    return rows[0] ? toNumber(rows[0]) : null
  }

  list(accountId: string, page: PageRequest): Promise<Page<PhoneNumber>> {
    return pageQuery<Row, PhoneNumber>(this.db, { table: 'numbers', accountId, order: 'asc', page }, toNumber)
  }

  async update(accountId: string, id: string, patch: Partial<NumberInput>): Promise<PhoneNumber | null> {
    const cur = await this.get(accountId, id)
    if (!cur) return null
    await this.checkRefs(accountId, patch)
    const m = { ...cur, ...patch }
    const { rows } = await this.unique(this.db.query<Row>(
      `UPDATE numbers SET number = $3, name = $4, trunk_id = $5, target = $6, status_callback = $7, status_callback_method = $8, updated_at = now()
        WHERE account_id = $1 AND id = $2 RETURNING *`,
      [accountId, id, m.number, m.name ?? null, m.trunkId ?? null, JSON.stringify(m.target), m.statusCallback?.url ?? null, m.statusCallback?.method ?? null],
    ), m.number)
    return rows[0] ? toNumber(rows[0]) : null
  }

  async delete(accountId: string, id: string): Promise<boolean> {
    const { rowCount } = await this.db.query('DELETE FROM numbers WHERE account_id = $1 AND id = $2', [accountId, id])
    return (rowCount ?? 0) > 0
  }
}
