import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { conflict } from './errors.ts'

/**
 * Outdials (VoipBin OutdialManagerOutdial): contact lists a campaign works
 * through, and their targets (OutdialManagerOutdialtarget): a contact with up
 * to five destinations (E.164, checked by the API) tried in turn, attempt
 * after attempt, and its own time zone when known (operating hours are then
 * read in it).
 */

export interface Outdial {
  id: string
  accountId: string
  name: string
  detail: string
  data: string
  createdAt: string
  updatedAt: string
}

export interface OutdialInput { name: string; detail?: string | undefined; data?: string | undefined }

export interface OutdialTarget {
  id: string
  accountId: string
  outdialId: string
  name: string
  detail: string
  data: string
  destinations: string[]
  timezone: string | null
  createdAt: string
  updatedAt: string
}

export interface OutdialTargetInput {
  name?: string | undefined
  detail?: string | undefined
  data?: string | undefined
  destinations: string[]
  timezone?: string | null | undefined
}

interface OutdialRow { id: string; seq: string; account_id: string; name: string; detail: string; data: string; created_at: Date; updated_at: Date }
const toOutdial = (r: OutdialRow): Outdial => ({
  id: r.id, accountId: r.account_id, name: r.name, detail: r.detail, data: r.data, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

interface TargetRow {
  id: string; seq: string; account_id: string; outdial_id: string; name: string; detail: string; data: string; destinations: string[]
  timezone: string | null; created_at: Date; updated_at: Date
}
const toTarget = (r: TargetRow): OutdialTarget => ({
  id: r.id, accountId: r.account_id, outdialId: r.outdial_id, name: r.name, detail: r.detail, data: r.data, destinations: r.destinations,
  timezone: r.timezone, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

export class OutdialRepository {
  constructor(private readonly db: Queryable) {}

  async create(accountId: string, input: OutdialInput): Promise<Outdial> {
    const { rows } = await this.db.query<OutdialRow>(
      'INSERT INTO outdials (id, account_id, name, detail, data) VALUES ($1, $2, $3, $4, $5) RETURNING *',
      [randomUUID(), accountId, input.name, input.detail ?? '', input.data ?? ''],
    )
    return toOutdial(rows[0]!)
  }

  async get(accountId: string, id: string): Promise<Outdial | null> {
    const { rows } = await this.db.query<OutdialRow>('SELECT * FROM outdials WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toOutdial(rows[0]) : null
  }

  list(accountId: string, page: PageRequest): Promise<Page<Outdial>> {
    return pageQuery<OutdialRow, Outdial>(this.db, { table: 'outdials', accountId, order: 'desc', page }, toOutdial)
  }

  async update(accountId: string, id: string, input: Partial<OutdialInput>): Promise<Outdial | null> {
    const { rows } = await this.db.query<OutdialRow>(
      `UPDATE outdials SET name = COALESCE($3, name), detail = COALESCE($4, detail), data = COALESCE($5, data), updated_at = now()
       WHERE account_id = $1 AND id = $2 RETURNING *`,
      [accountId, id, input.name ?? null, input.detail ?? null, input.data ?? null],
    )
    return rows[0] ? toOutdial(rows[0]) : null
  }

  /** False when absent; 409 while a campaign uses it (its targets go with it). */
  async delete(accountId: string, id: string): Promise<boolean> {
    const used = await this.db.query('SELECT 1 FROM campaigns WHERE outdial_id = $1 LIMIT 1', [id])
    if (used.rowCount) throw conflict('outdial is used by a campaign: delete the campaign first', { outdialId: id })
    const { rowCount } = await this.db.query('DELETE FROM outdials WHERE account_id = $1 AND id = $2', [accountId, id])
    return (rowCount ?? 0) > 0
  }

  /** Adds targets in one statement (a CSV import's good rows), in the given order. */
  async addTargets(accountId: string, outdialId: string, targets: OutdialTargetInput[]): Promise<OutdialTarget[]> {
    if (!targets.length) return []
    const rows = targets.map((t) => ({ name: t.name ?? '', detail: t.detail ?? '', data: t.data ?? '', destinations: t.destinations, timezone: t.timezone ?? null }))
    const { rows: out } = await this.db.query<TargetRow>(
      `INSERT INTO outdial_targets (id, account_id, outdial_id, name, detail, data, destinations, timezone)
       SELECT gen_random_uuid(), $1, $2, x.value->>'name', x.value->>'detail', x.value->>'data', x.value->'destinations', x.value->>'timezone'
         FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS x(value, n) ORDER BY x.n
       RETURNING *`,
      [accountId, outdialId, JSON.stringify(rows)],
    )
    return out.sort((a, b) => Number(a.seq) - Number(b.seq)).map(toTarget)
  }

  async getTarget(accountId: string, outdialId: string, id: string): Promise<OutdialTarget | null> {
    const { rows } = await this.db.query<TargetRow>('SELECT * FROM outdial_targets WHERE account_id = $1 AND outdial_id = $2 AND id = $3', [accountId, outdialId, id])
    return rows[0] ? toTarget(rows[0]) : null
  }

  /** The dialer's look-up (any account: the job names the target). */
  async targetById(id: string): Promise<OutdialTarget | null> {
    const { rows } = await this.db.query<TargetRow>('SELECT * FROM outdial_targets WHERE id = $1', [id])
    return rows[0] ? toTarget(rows[0]) : null
  }

  /** Oldest first: the order they were added (and are dialled). */
  listTargets(accountId: string, outdialId: string, page: PageRequest): Promise<Page<OutdialTarget>> {
    return pageQuery<TargetRow, OutdialTarget>(this.db, { table: 'outdial_targets', accountId, order: 'asc', page, where: ['outdial_id = $2'], params: [outdialId] }, toTarget)
  }

  async deleteTarget(accountId: string, outdialId: string, id: string): Promise<boolean> {
    const { rowCount } = await this.db.query('DELETE FROM outdial_targets WHERE account_id = $1 AND outdial_id = $2 AND id = $3', [accountId, outdialId, id])
    return (rowCount ?? 0) > 0
  }
}
