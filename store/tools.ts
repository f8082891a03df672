import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { conflict, limitExceeded } from './errors.ts'

export const MAX_TOOLS_PER_ACCOUNT = 20

/** A custom HTTP tool the agent calls during a live call (Fonella shape). */
export interface ToolSpec {
  description: string
  url: string
  method: 'GET' | 'POST'
  headers?: Record<string, string>
  inputSchema?: Record<string, unknown>
  timeoutMs?: number
  enabled: boolean
}

export interface Tool extends ToolSpec {
  id: string
  accountId: string
  name: string
  createdAt: string
  updatedAt: string
}

export type ToolInput = Omit<ToolSpec, 'method' | 'enabled'> & { name: string; method?: 'GET' | 'POST'; enabled?: boolean }

interface Row { id: string; seq: string; account_id: string; name: string; spec: ToolSpec; created_at: Date; updated_at: Date }
const toTool = (r: Row): Tool => ({
  id: r.id, accountId: r.account_id, name: r.name, ...r.spec, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

export class ToolRepository {
  constructor(private readonly db: Queryable) {}

  async create(accountId: string, input: ToolInput): Promise<Tool> {
    const { rows: [n] } = await this.db.query<{ n: string }>('SELECT count(*) AS n FROM tools WHERE account_id = $1', [accountId])
    if (Number(n!.n) >= MAX_TOOLS_PER_ACCOUNT) throw limitExceeded('tools', MAX_TOOLS_PER_ACCOUNT)
    const { name, ...rest } = input
    const spec: ToolSpec = { method: 'POST', enabled: true, ...rest }
    try {
      const { rows } = await this.db.query<Row>(
        'INSERT INTO tools (id, account_id, name, spec) VALUES ($1, $2, $3, $4) RETURNING *',
        [randomUUID(), accountId, name, JSON.stringify(spec)],
      )
      return toTool(rows[0]!)
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw conflict(`a tool named ${name} already exists`, { field: 'name' })
      throw err
    }
  }

  async get(accountId: string, id: string): Promise<Tool | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM tools WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toTool(rows[0]) : null
  }

  /** For the agent runtime: the tools an agent lists, in the agent's account. */
  async getMany(accountId: string, ids: string[]): Promise<Tool[]> {
    if (!ids.length) return []
    const { rows } = await this.db.query<Row>('SELECT * FROM tools WHERE account_id = $1 AND id = ANY($2::uuid[]) ORDER BY seq', [accountId, ids])
    return rows.map(toTool)
  }

  list(accountId: string, page: PageRequest): Promise<Page<Tool>> {
    return pageQuery<Row, Tool>(this.db, { table: 'tools', accountId, order: 'asc', page }, toTool)
  }

  async update(accountId: string, id: string, patch: Partial<ToolInput>): Promise<Tool | null> {
    const cur = await this.get(accountId, id)
    if (!cur) return null
    const { id: _i, accountId: _a, createdAt: _c, updatedAt: _u, name, ...spec } = { ...cur, ...patch } as Tool
    try {
      const { rows } = await this.db.query<Row>(
        'UPDATE tools SET name = $3, spec = $4, updated_at = now() WHERE account_id = $1 AND id = $2 RETURNING *',
        [accountId, id, name, JSON.stringify(spec)],
      )
      return rows[0] ? toTool(rows[0]) : null
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw conflict(`a tool named ${name} already exists`, { field: 'name' })
      throw err
    }
  }

  async delete(accountId: string, id: string): Promise<boolean> {
    const { rowCount } = await this.db.query('DELETE FROM tools WHERE account_id = $1 AND id = $2', [accountId, id])
    return (rowCount ?? 0) > 0
  }
}
