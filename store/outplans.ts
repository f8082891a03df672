import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { conflict } from './errors.ts'

/**
 * Outplans (VoipBin CampaignManagerOutplan): how a campaign dials, the
 * caller ID (`source`), the ring timeout (`dial_timeout`), how many attempts
 * a contact gets (`max_attempts`, VoipBin's max_try_count) and how long to wait
 * before the next attempt after each unsuccessful outcome (`retry_delays`,
 * `try_interval` where none is given).
 */

export interface OutplanSource { type: 'tel'; target: string }
/** Milliseconds before the next attempt, per outcome; absent = the outplan's try_interval. */
export interface RetryDelays { busy?: number; no_answer?: number; failed?: number; machine?: number }

export interface Outplan {
  id: string
  accountId: string
  name: string
  detail: string
  source: OutplanSource
  dialTimeoutMs: number
  tryIntervalMs: number
  retryDelays: RetryDelays
  maxAttempts: number
  createdAt: string
  updatedAt: string
}

export interface OutplanInput {
  name: string
  detail?: string | undefined
  source: OutplanSource
  dialTimeoutMs: number
  tryIntervalMs: number
  retryDelays?: RetryDelays | undefined
  maxAttempts: number
}

export interface OutplanRow {
  id: string; seq: string; account_id: string; name: string; detail: string; source: OutplanSource; dial_timeout_ms: number
  try_interval_ms: number; retry_delays: RetryDelays; max_attempts: number; created_at: Date; updated_at: Date
}
type Row = OutplanRow
/** A row as read, or as row_to_json gives it (timestamps as text: the campaign dialer's reservation returns its outplan so). */
export const toOutplan = (r: Omit<Row, 'created_at' | 'updated_at'> & { created_at: Date | string; updated_at: Date | string }): Outplan => ({
  id: r.id, accountId: r.account_id, name: r.name, detail: r.detail, source: r.source, dialTimeoutMs: r.dial_timeout_ms,
  tryIntervalMs: r.try_interval_ms, retryDelays: r.retry_delays, maxAttempts: r.max_attempts,
  createdAt: new Date(r.created_at).toISOString(), updatedAt: new Date(r.updated_at).toISOString(),
})

export class OutplanRepository {
  constructor(private readonly db: Queryable) {}

  async create(accountId: string, input: OutplanInput): Promise<Outplan> {
    const { rows } = await this.db.query<Row>(
      `INSERT INTO outplans (id, account_id, name, detail, source, dial_timeout_ms, try_interval_ms, retry_delays, max_attempts)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
      [randomUUID(), accountId, input.name, input.detail ?? '', JSON.stringify(input.source), input.dialTimeoutMs, input.tryIntervalMs,
        JSON.stringify(input.retryDelays ?? {}), input.maxAttempts],
    )
    return toOutplan(rows[0]!)
  }

  async get(accountId: string, id: string): Promise<Outplan | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM outplans WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toOutplan(rows[0]) : null
  }

  list(accountId: string, page: PageRequest): Promise<Page<Outplan>> {
    return pageQuery<Row, Outplan>(this.db, { table: 'outplans', accountId, order: 'desc', page }, toOutplan)
  }

  async update(accountId: string, id: string, input: Partial<OutplanInput>): Promise<Outplan | null> {
    const { rows } = await this.db.query<Row>(
      `UPDATE outplans SET name = COALESCE($3, name), detail = COALESCE($4, detail), source = COALESCE($5, source),
         dial_timeout_ms = COALESCE($6, dial_timeout_ms), try_interval_ms = COALESCE($7, try_interval_ms),
         retry_delays = COALESCE($8, retry_delays), max_attempts = COALESCE($9, max_attempts), updated_at = now()
       WHERE account_id = $1 AND id = $2 RETURNING *`,
      [accountId, id, input.name ?? null, input.detail ?? null, input.source ? JSON.stringify(input.source) : null, input.dialTimeoutMs ?? null,
        input.tryIntervalMs ?? null, input.retryDelays ? JSON.stringify(input.retryDelays) : null, input.maxAttempts ?? null],
    )
    return rows[0] ? toOutplan(rows[0]) : null
  }

  /** False when absent; 409 while a campaign uses it. */
  async delete(accountId: string, id: string): Promise<boolean> {
    const used = await this.db.query('SELECT 1 FROM campaigns WHERE outplan_id = $1 LIMIT 1', [id])
    if (used.rowCount) throw conflict('outplan is used by a campaign: delete the campaign first', { outplanId: id })
    const { rowCount } = await this.db.query('DELETE FROM outplans WHERE account_id = $1 AND id = $2', [accountId, id])
    return (rowCount ?? 0) > 0
  }
}
