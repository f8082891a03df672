import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { invalidState } from './errors.ts'
import type { Outbox } from './outbox.ts'

export interface Recording {
  id: string
  accountId: string
  callId: string | null
  conferenceId: string | null
  status: 'recording' | 'ready' | 'failed'
  format: string
  durationMs: number | null
  sizeBytes: number | null
  createdAt: string
  updatedAt: string
}

interface Row {
  id: string; seq: string; account_id: string; call_id: string | null; conference_id: string | null; status: string; format: string
  path: string | null; duration_ms: number | null; size_bytes: string | null; created_at: Date; updated_at: Date
}
const toRecording = (r: Row): Recording => ({
  id: r.id, accountId: r.account_id, callId: r.call_id, conferenceId: r.conference_id, status: r.status as Recording['status'],
  format: r.format, durationMs: r.duration_ms, sizeBytes: r.size_bytes === null ? null : Number(r.size_bytes),
  createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

/** Recording metadata; the media recorder writes the file and reports it ready here. */
export class RecordingRepository {
  constructor(private readonly db: Queryable, private readonly outbox: Outbox) {}

  async start(input: { accountId: string; callId?: string | null; conferenceId?: string | null; format?: string; path: string }): Promise<Recording> {
    const { rows } = await this.db.query<Row>(
      'INSERT INTO recordings (id, account_id, call_id, conference_id, format, path) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *',
      [randomUUID(), input.accountId, input.callId ?? null, input.conferenceId ?? null, input.format ?? 'wav', input.path],
    )
    return toRecording(rows[0]!)
  }

  /** The file is complete: emits `call.recording.ready`. */
  markReady(id: string, info: { durationMs: number; sizeBytes: number }): Promise<Recording> {
    return this.outbox.transaction(async (c, emit) => {
      const { rows } = await c.query<Row>(
        `UPDATE recordings SET status = 'ready', duration_ms = $2, size_bytes = $3, updated_at = now() WHERE id = $1 RETURNING *`,
        [id, Math.round(info.durationMs), info.sizeBytes],
      )
      if (!rows[0]) throw invalidState(`recording ${id} does not exist`)
      const rec = toRecording(rows[0])
      await emit(rec.accountId, 'call.recording.ready', { recording: rec }, rec.callId)
      return rec
    })
  }

  async markFailed(id: string): Promise<void> {
    await this.db.query(`UPDATE recordings SET status = 'failed', updated_at = now() WHERE id = $1`, [id])
  }

  async get(accountId: string, id: string): Promise<Recording | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM recordings WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toRecording(rows[0]) : null
  }

  async path(accountId: string, id: string): Promise<string | null> {
    const { rows } = await this.db.query<{ path: string | null }>('SELECT path FROM recordings WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0]?.path ?? null
  }

  list(accountId: string, filter: { callId?: string | undefined }, page: PageRequest): Promise<Page<Recording>> {
    return pageQuery<Row, Recording>(this.db, {
      table: 'recordings', accountId, order: 'desc', page,
      ...(filter.callId ? { where: ['call_id = $2'], params: [filter.callId] } : {}),
    }, toRecording)
  }

  async listForCall(accountId: string, callId: string): Promise<Recording[]> {
    const { rows } = await this.db.query<Row>('SELECT * FROM recordings WHERE account_id = $1 AND call_id = $2 ORDER BY seq', [accountId, callId])
    return rows.map(toRecording)
  }

  /** Deletes the row; returns the file path for the caller to remove. */
  async delete(accountId: string, id: string): Promise<{ path: string | null } | null> {
    const { rows } = await this.db.query<{ path: string | null }>('DELETE FROM recordings WHERE account_id = $1 AND id = $2 RETURNING path', [accountId, id])
    return rows[0] ?? null
  }
}
