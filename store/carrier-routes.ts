import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { invalidReference } from './errors.ts'

/**
 * A carrier route: outbound destinations starting with `prefix` go out over
 * `trunkId`, lowest priority first (the API's `/v1/routes`, the `routes` table).
 */
export interface CarrierRoute {
  id: string
  accountId: string
  name: string
  description: string | null
  /** Leading digits of the E.164 destination ("+49", "+1415"), or "*" for all. */
  prefix: string
  trunkId: string
  priority: number
  enabled: boolean
  createdAt: string
  updatedAt: string
}

export interface CarrierRouteInput {
  name: string
  description?: string | null
  prefix: string
  trunkId: string
  priority?: number
  enabled?: boolean
}

interface Row { id: string; seq: string; account_id: string; name: string; spec: { description?: string | null }; prefix: string; trunk_id: string; priority: number; enabled: boolean; created_at: Date; updated_at: Date }
const toCarrierRoute = (r: Row): CarrierRoute => ({
  id: r.id, accountId: r.account_id, name: r.name, description: r.spec.description ?? null, prefix: r.prefix, trunkId: r.trunk_id,
  priority: r.priority, enabled: r.enabled, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

export class CarrierRouteRepository {
  constructor(private readonly db: Queryable) {}

  private async checkTrunk(accountId: string, trunkId: string | undefined): Promise<void> {
    if (!trunkId) return
    const { rowCount } = await this.db.query('SELECT 1 FROM trunks WHERE account_id = $1 AND id = $2', [accountId, trunkId])
    if (!rowCount) throw invalidReference('trunkId', 'trunk')
  }

  async create(accountId: string, input: CarrierRouteInput): Promise<CarrierRoute> {
    await this.checkTrunk(accountId, input.trunkId)
    const { rows } = await this.db.query<Row>(
      'INSERT INTO routes (id, account_id, name, spec, prefix, trunk_id, priority, enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *',
      [randomUUID(), accountId, input.name, JSON.stringify({ description: input.description ?? null }), input.prefix, input.trunkId, input.priority ?? 100, input.enabled ?? true],
    )
    return toCarrierRoute(rows[0]!)
  }

  async get(accountId: string, id: string): Promise<CarrierRoute | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM routes WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toCarrierRoute(rows[0]) : null
  }

  list(accountId: string, page: PageRequest): Promise<Page<CarrierRoute>> {
    return pageQuery<Row, CarrierRoute>(this.db, { table: 'routes', accountId, order: 'asc', page }, toCarrierRoute)
  }

  async update(accountId: string, id: string, patch: Partial<CarrierRouteInput>): Promise<CarrierRoute | null> {
    const cur = await this.get(accountId, id)
    if (!cur) return null
    await this.checkTrunk(accountId, patch.trunkId)
    const m = { ...cur, ...patch }
    const { rows } = await this.db.query<Row>(
      `UPDATE routes SET name = $3, spec = $4, prefix = $5, trunk_id = $6, priority = $7, enabled = $8, updated_at = now()
       WHERE account_id = $1 AND id = $2 RETURNING *`,
      [accountId, id, m.name, JSON.stringify({ description: m.description ?? null }), m.prefix, m.trunkId, m.priority, m.enabled],
    )
    return rows[0] ? toCarrierRoute(rows[0]) : null
  }

  async delete(accountId: string, id: string): Promise<boolean> {
    const { rowCount } = await this.db.query('DELETE FROM routes WHERE account_id = $1 AND id = $2', [accountId, id])
    return (rowCount ?? 0) > 0
  }

  /**
   * The failover list for an outbound destination: enabled carrier routes whose prefix
   * matches, longest prefix first, then by priority. Try them in order.
   */
  async candidates(accountId: string, destination: string): Promise<CarrierRoute[]> {
    const { rows } = await this.db.query<Row>(
      `SELECT * FROM routes WHERE account_id = $1 AND enabled AND (prefix = '*' OR starts_with($2, prefix))
       ORDER BY CASE WHEN prefix = '*' THEN 0 ELSE length(prefix) END DESC, priority ASC, seq ASC`,
      [accountId, destination],
    )
    return rows.map(toCarrierRoute)
  }
}
