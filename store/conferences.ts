import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'

/** Telefon shape: friendly name, status init → in-progress → completed. */
export interface Conference {
  id: string
  accountId: string
  name: string
  status: 'init' | 'in-progress' | 'completed'
  maxParticipants: number
  record: boolean
  participantCount: number
  createdAt: string
  updatedAt: string
}

interface Row {
  id: string; seq: string; account_id: string; name: string; status: string; max_participants: number; record: boolean
  participants: string; created_at: Date; updated_at: Date
}
const toConf = (r: Row): Conference => ({
  id: r.id, accountId: r.account_id, name: r.name, status: r.status as Conference['status'], maxParticipants: r.max_participants,
  record: r.record, participantCount: Number(r.participants ?? 0), createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

const COLUMNS = `*, (SELECT count(*) FROM calls c WHERE c.conference_id = conferences.id AND c.status = 'in-progress') AS participants`

export class ConferenceRepository {
  constructor(private readonly db: Queryable) {}

  async create(accountId: string, input: { name: string; maxParticipants?: number; record?: boolean }): Promise<Conference> {
    const { rows } = await this.db.query<Row>(
      `INSERT INTO conferences (id, account_id, name, max_participants, record) VALUES ($1, $2, $3, $4, $5) RETURNING *, 0 AS participants`,
      [randomUUID(), accountId, input.name, input.maxParticipants ?? 250, input.record ?? false],
    )
    return toConf(rows[0]!)
  }

  async get(accountId: string, id: string): Promise<Conference | null> {
    const { rows } = await this.db.query<Row>(`SELECT ${COLUMNS} FROM conferences WHERE account_id = $1 AND id = $2`, [accountId, id])
    return rows[0] ? toConf(rows[0]) : null
  }

  list(accountId: string, page: PageRequest): Promise<Page<Conference>> {
    return pageQuery<Row, Conference>(this.db, { table: 'conferences', accountId, order: 'desc', page, columns: COLUMNS }, toConf)
  }

  async setStatus(id: string, status: Conference['status']): Promise<void> {
    await this.db.query('UPDATE conferences SET status = $2, updated_at = now() WHERE id = $1', [id, status])
  }

  async delete(accountId: string, id: string): Promise<boolean> {
    const { rowCount } = await this.db.query('DELETE FROM conferences WHERE account_id = $1 AND id = $2', [accountId, id])
    return (rowCount ?? 0) > 0
  }
}
