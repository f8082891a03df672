import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import type { Outbox } from './outbox.ts'

/**
 * The per-account do-not-call list (issue 17): E.164 numbers the engine
 * never dials on the account's behalf. `call/api-call-control.ts` refuses an
 * originate to a listed number (so POST /v1/calls, groupcalls, flows'
 * dials, scheduled calls and sequences all stop there); campaigns ask
 * `listed` for a whole batch before they dial. Adding and removing emit
 * `do_not_call.added` / `do_not_call.removed`.
 */

export interface DoNotCallEntry {
  id: string
  accountId: string
  number: string
  reason: string | null
  /** Who listed it: `api`, `agent` (the add_to_do_not_call tool), `campaign`, `sequence`, ... */
  source: string
  /** The call in which an agent listed it. */
  callId: string | null
  createdAt: string
}

export interface DoNotCallAdd {
  reason?: string | null | undefined
  source?: string | undefined
  callId?: string | null | undefined
}

interface Row { id: string; seq: string; account_id: string; number: string; reason: string | null; source: string; call_id: string | null; created_at: Date }
const toEntry = (r: Row): DoNotCallEntry => ({
  id: r.id, accountId: r.account_id, number: r.number, reason: r.reason, source: r.source, callId: r.call_id, createdAt: r.created_at.toISOString(),
})
const eventData = (e: DoNotCallEntry) => ({ id: e.id, number: e.number, reason: e.reason, source: e.source, callId: e.callId })

export class DoNotCallRepository {
  constructor(private readonly db: Queryable, private readonly outbox: Outbox) {}

  /**
   * Lists `number` (already E.164: callers validate). Adding a number that is
   * already listed keeps the first entry (its reason and source) and emits
   * nothing; `created` says which happened.
   */
  async add(accountId: string, number: string, opts: DoNotCallAdd = {}): Promise<DoNotCallEntry & { created: boolean }> {
    return this.outbox.transaction(async (c, emit) => {
      const { rows } = await c.query<Row & { inserted: boolean }>(
        `INSERT INTO do_not_call (id, account_id, number, reason, source, call_id) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (account_id, number) DO UPDATE SET number = do_not_call.number
         RETURNING *, (xmax = 0) AS inserted`,
        [randomUUID(), accountId, number, opts.reason ?? null, opts.source ?? 'api', opts.callId ?? null],
      )
      const entry = toEntry(rows[0]!)
      const created = rows[0]!.inserted === true
      if (created) await emit(accountId, 'do_not_call.added', eventData(entry), entry.callId)
      return { ...entry, created }
    })
  }

  /** Takes `number` off the list; false when it was not on it. */
  async remove(accountId: string, number: string): Promise<boolean> {
    return this.outbox.transaction(async (c, emit) => {
      const { rows } = await c.query<Row>('DELETE FROM do_not_call WHERE account_id = $1 AND number = $2 RETURNING *', [accountId, number])
      if (!rows[0]) return false
      await emit(accountId, 'do_not_call.removed', eventData(toEntry(rows[0])), null)
      return true
    })
  }

  async get(accountId: string, number: string): Promise<DoNotCallEntry | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM do_not_call WHERE account_id = $1 AND number = $2', [accountId, number])
    return rows[0] ? toEntry(rows[0]) : null
  }

  /** Which of `numbers` are listed (one query for a whole batch). */
  async listed(accountId: string, numbers: string[]): Promise<Set<string>> {
    if (numbers.length === 0) return new Set()
    const { rows } = await this.db.query<{ number: string }>(
      'SELECT number FROM do_not_call WHERE account_id = $1 AND number = ANY($2::text[])', [accountId, [...new Set(numbers)]])
    return new Set(rows.map((r) => r.number))
  }

  /** Oldest first. */
  list(accountId: string, page: PageRequest): Promise<Page<DoNotCallEntry>> {
    return pageQuery<Row, DoNotCallEntry>(this.db, { table: 'do_not_call', accountId, order: 'asc', page }, toEntry)
  }
}
