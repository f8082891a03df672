import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import { encodeCursor, decodeCursor, DEFAULT_LIMIT, MAX_LIMIT, type Page, type PageRequest } from './common.ts'
import { conflict } from './errors.ts'
import { ApiKeyRepository } from './api-keys.ts'

export interface Account {
  id: string
  name: string
  sipDomain: string | null
  /** The embedded default account: its admin keys manage other accounts. */
  operator: boolean
  createdAt: Date
  updatedAt: Date
}

interface AccountRow { id: string; seq?: string; name: string; sip_domain: string | null; operator?: boolean; created_at: Date; updated_at: Date }
const toAccount = (r: AccountRow): Account => ({ id: r.id, name: r.name, sipDomain: r.sip_domain, operator: r.operator ?? false, createdAt: r.created_at, updatedAt: r.updated_at })

type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>

export class AccountRepository {
  constructor(
    private readonly db: Queryable,
    /** Runs `fn` in one transaction; only createWithAdminKey needs it. */
    private readonly transaction?: <T>(fn: (c: Queryable) => Promise<T>) => Promise<T>,
  ) {}

  /** A new account and its first admin key, both or neither (POST /v1/accounts). */
  async createWithAdminKey(name: string, sipDomain: string | null = null): Promise<{ account: Account; key: Awaited<ReturnType<ApiKeyRepository['create']>> }> {
    if (!this.transaction) throw new Error('AccountRepository was built without a transaction runner')
    return this.transaction(async (c) => {
      const account = await new AccountRepository(c).create(name, sipDomain)
      const key = await new ApiKeyRepository(c).create(account.id, 'initial admin', ['admin'], null)
      return { account, key }
    })
  }

  async create(name: string, sipDomain: string | null = null): Promise<Account> {
    try {
      const { rows } = await this.db.query<AccountRow>(
        'INSERT INTO accounts (id, name, sip_domain) VALUES ($1, $2, $3) RETURNING *',
        [randomUUID(), name, sipDomain],
      )
      return toAccount(rows[0]!)
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw conflict(`sipDomain ${sipDomain} is taken`, { field: 'sipDomain' })
      throw err
    }
  }

  async setOperator(id: string): Promise<void> {
    await this.db.query('UPDATE accounts SET operator = true WHERE id = $1', [id])
  }

  async list(page: PageRequest): Promise<Page<Account>> {
    const limit = Math.min(Math.max(page.limit ?? DEFAULT_LIMIT, 1), MAX_LIMIT)
    const params: unknown[] = []
    let where = ''
    if (page.cursor) {
      params.push(decodeCursor(page.cursor))
      where = 'WHERE seq > $1'
    }
    params.push(limit + 1)
    const { rows } = await this.db.query<AccountRow & { seq: string }>(`SELECT * FROM accounts ${where} ORDER BY seq LIMIT $${params.length}`, params)
    const more = rows.length > limit
    const slice = more ? rows.slice(0, limit) : rows
    return { data: slice.map(toAccount), nextCursor: more ? encodeCursor(slice[slice.length - 1]!.seq) : null }
  }

  async update(id: string, patch: { name?: string; sipDomain?: string | null }): Promise<Account | null> {
    try {
      const { rows } = await this.db.query<AccountRow>(
        `UPDATE accounts SET name = COALESCE($2, name), sip_domain = CASE WHEN $3::boolean THEN $4 ELSE sip_domain END, updated_at = now()
         WHERE id = $1 RETURNING *`,
        [id, patch.name ?? null, patch.sipDomain !== undefined, patch.sipDomain ?? null],
      )
      return rows[0] ? toAccount(rows[0]) : null
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw conflict(`sipDomain ${patch.sipDomain} is taken`, { field: 'sipDomain' })
      throw err
    }
  }

  async delete(id: string): Promise<boolean> {
    const { rowCount } = await this.db.query('DELETE FROM accounts WHERE id = $1 AND NOT operator', [id])
    return (rowCount ?? 0) > 0
  }

  /** The SIP digest realm for an account's credentials: its SIP domain, else a stable default. */
  async realm(id: string): Promise<string> {
    const a = await this.get(id)
    return a?.sipDomain ?? 'callplane'
  }

  async get(id: string): Promise<Account | null> {
    const { rows } = await this.db.query<AccountRow>('SELECT * FROM accounts WHERE id = $1', [id])
    return rows[0] ? toAccount(rows[0]) : null
  }

  /** The oldest account: the embedded default one. */
  async first(): Promise<Account | null> {
    const { rows } = await this.db.query<AccountRow>('SELECT * FROM accounts ORDER BY created_at, id LIMIT 1')
    return rows[0] ? toAccount(rows[0]) : null
  }
}
