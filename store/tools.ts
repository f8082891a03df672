import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { conflict, limitExceeded } from './errors.ts'
import type { SecretBox } from './secrets.ts'
import { generateSigningSecret } from './webhook-signature.ts'

export const MAX_TOOLS_PER_ACCOUNT = 20

/** A custom HTTP tool the agent calls during a live call (Fonella shape). */
export interface ToolSpec {
  description: string
  url: string
  method: 'GET' | 'POST'
  headers?: Record<string, string>
  inputSchema?: Record<string, unknown>
  /** 1000–30000, default 5000 (Leadlock `webhook_timeout_ms`). */
  timeoutMs: number
  /**
   * Leadlock `speak_during_execution`: true says the agent's filler line while
   * the request runs, a string says that line, false stays quiet.
   */
  speakDuringExecution: boolean | string
  /** false: the tool is not loaded into calls. */
  enabled: boolean
}

export interface Tool extends ToolSpec {
  id: string
  accountId: string
  name: string
  createdAt: string
  updatedAt: string
}

export type ToolInput = Omit<ToolSpec, 'method' | 'enabled' | 'timeoutMs' | 'speakDuringExecution'> & {
  name: string; method?: 'GET' | 'POST'; enabled?: boolean; timeoutMs?: number; speakDuringExecution?: boolean | string
}

/** A tool as a call loads it: with its signing secret in clear (never returned by the API after create). */
export interface CallTool extends Tool {
  /** Standard Webhooks secret (`whsec_…`); absent for tools created before secrets existed. */
  secret?: string
}

export const TOOL_DEFAULTS = { method: 'POST', enabled: true, timeoutMs: 5000, speakDuringExecution: true } as const

interface Row { id: string; seq: string; account_id: string; name: string; spec: Omit<ToolSpec, 'timeoutMs' | 'speakDuringExecution'> & Partial<ToolSpec>; secret_sealed: string | null; created_at: Date; updated_at: Date }
const toTool = (r: Row): Tool => ({
  id: r.id, accountId: r.account_id, name: r.name, ...TOOL_DEFAULTS, ...r.spec, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

export class ToolRepository {
  constructor(private readonly db: Queryable, private readonly secrets: SecretBox) {}

  /** The signing secret is generated here and returned once (as webhooks do). */
  async create(accountId: string, input: ToolInput): Promise<{ tool: Tool; secret: string }> {
    const { rows: [n] } = await this.db.query<{ n: string }>('SELECT count(*) AS n FROM tools WHERE account_id = $1', [accountId])
    if (Number(n!.n) >= MAX_TOOLS_PER_ACCOUNT) throw limitExceeded('tools', MAX_TOOLS_PER_ACCOUNT)
    const { name, ...rest } = input
    const spec: ToolSpec = { ...TOOL_DEFAULTS, ...rest }
    const secret = generateSigningSecret()
    try {
      const { rows } = await this.db.query<Row>(
        'INSERT INTO tools (id, account_id, name, spec, secret_sealed) VALUES ($1, $2, $3, $4, $5) RETURNING *',
        [randomUUID(), accountId, name, JSON.stringify(spec), this.secrets.seal(secret)],
      )
      return { tool: toTool(rows[0]!), secret }
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw conflict(`a tool named ${name} already exists`, { field: 'name' })
      throw err
    }
  }

  async get(accountId: string, id: string): Promise<Tool | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM tools WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toTool(rows[0]) : null
  }

  /** For the agent runtime: the enabled tools an agent lists, in the agent's account, with their secrets. */
  async forCall(accountId: string, ids: string[]): Promise<CallTool[]> {
    if (!ids.length) return []
    const { rows } = await this.db.query<Row>('SELECT * FROM tools WHERE account_id = $1 AND id = ANY($2::uuid[]) ORDER BY seq', [accountId, ids])
    return rows.map((r) => ({ ...toTool(r), ...(r.secret_sealed ? { secret: this.secrets.open(r.secret_sealed) } : {}) })).filter((t) => t.enabled)
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
