import { randomUUID } from 'node:crypto'
import type pg from 'pg'

export interface Account {
  id: string
  name: string
  sipDomain: string | null
  createdAt: Date
  updatedAt: Date
}

interface AccountRow { id: string; name: string; sip_domain: string | null; created_at: Date; updated_at: Date }
const toAccount = (r: AccountRow): Account => ({ id: r.id, name: r.name, sipDomain: r.sip_domain, createdAt: r.created_at, updatedAt: r.updated_at })

type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>

export class AccountRepository {
  constructor(private readonly db: Queryable) {}

  async create(name: string, sipDomain: string | null = null): Promise<Account> {
    const { rows } = await this.db.query<AccountRow>(
      'INSERT INTO accounts (id, name, sip_domain) VALUES ($1, $2, $3) RETURNING *',
      [randomUUID(), name, sipDomain],
    )
    return toAccount(rows[0]!)
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
