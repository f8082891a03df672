import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import type { Queryable } from './common.ts'
import { DEFAULT_LIMIT, MAX_LIMIT } from './common.ts'
import { invalidCursor, invalidState } from './errors.ts'
import type { JobRepository } from './jobs.ts'
import type { Emit, EventType, Outbox } from './outbox.ts'

/**
 * Scheduled calls (Leadlock ScheduledCall, issue 17): one outbound agent
 * call at `scheduledFor`. Every change that moves its due time re-times its
 * job (kind `scheduled-call`, key = id) in the same transaction, so the
 * scheduler and the row never disagree; every status change emits its
 * `scheduled_call.*` event with it. `call/outbound/scheduled-calls.ts` runs
 * the job (pending → dialing → completed | failed).
 */

export const SCHEDULED_CALL_JOB = 'scheduled-call'
export const SCHEDULED_CALL_STATUSES = ['pending', 'dialing', 'completed', 'failed', 'cancelled'] as const
export type ScheduledCallStatus = (typeof SCHEDULED_CALL_STATUSES)[number]

export interface ScheduledCall {
  id: string
  accountId: string
  agentId: string
  toPhoneNumber: string
  fromPhoneNumber: string
  phoneNumberId: string | null
  contactId: string | null
  contactName: string | null
  scheduledFor: string
  timezone: string
  status: ScheduledCallStatus
  isCallback: boolean
  previousCallId: string | null
  callbackContext: string | null
  callId: string | null
  attempts: number
  lastError: string | null
  dialedAt: string | null
  /** `api` (POST /v1/scheduled-calls) or `ai_function` (an agent's schedule_callback). */
  source: 'api' | 'ai_function'
  createdAt: string
  updatedAt: string
}

export interface ScheduledCallInput {
  agentId: string
  toPhoneNumber: string
  fromPhoneNumber: string
  phoneNumberId: string | null
  contactId?: string | null | undefined
  contactName?: string | null | undefined
  scheduledFor: Date
  timezone: string
  isCallback?: boolean | undefined
  previousCallId?: string | null | undefined
  callbackContext?: string | null | undefined
  source?: ScheduledCall['source'] | undefined
}

export interface ScheduledCallPatch {
  scheduledFor?: Date | undefined
  timezone?: string | undefined
  contactName?: string | null | undefined
  callbackContext?: string | null | undefined
}

export interface ScheduledCallFilter {
  status?: ScheduledCallStatus | undefined
  agentId?: string | undefined
  startDate?: Date | undefined
  endDate?: Date | undefined
}

interface Row {
  id: string; seq: string; account_id: string; agent_id: string; to_phone_number: string; from_phone_number: string; phone_number_id: string | null
  contact_id: string | null; contact_name: string | null; scheduled_for: Date; timezone: string; status: string; is_callback: boolean
  previous_call_id: string | null; callback_context: string | null; call_id: string | null; attempts: number; last_error: string | null
  dialed_at: Date | null; source: string; created_at: Date; updated_at: Date
}
const toScheduledCall = (r: Row): ScheduledCall => ({
  id: r.id, accountId: r.account_id, agentId: r.agent_id, toPhoneNumber: r.to_phone_number, fromPhoneNumber: r.from_phone_number,
  phoneNumberId: r.phone_number_id, contactId: r.contact_id, contactName: r.contact_name, scheduledFor: r.scheduled_for.toISOString(),
  timezone: r.timezone, status: r.status as ScheduledCallStatus, isCallback: r.is_callback, previousCallId: r.previous_call_id,
  callbackContext: r.callback_context, callId: r.call_id, attempts: r.attempts, lastError: r.last_error,
  dialedAt: r.dialed_at ? r.dialed_at.toISOString() : null, source: r.source as ScheduledCall['source'],
  createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

/** Soonest first: the cursor is the last row's (scheduled_for, seq). */
const encodeCursor = (r: Row) => Buffer.from(`t:${r.scheduled_for.getTime()}:${r.seq}`).toString('base64url')
function decodeCursor(cursor: string): { at: Date; seq: string } {
  const m = /^t:(-?\d{1,16}):(\d{1,19})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'))
  if (!m) throw invalidCursor()
  return { at: new Date(Number(m[1])), seq: m[2]! }
}

export class ScheduledCallRepository {
  constructor(private readonly db: Queryable, private readonly outbox: Outbox, private readonly jobs: JobRepository) {}

  private async change(
    accountId: string | null, id: string, allowed: readonly ScheduledCallStatus[],
    fn: (c: pg.PoolClient, emit: Emit, cur: ScheduledCall) => Promise<Row | null>,
  ): Promise<ScheduledCall | null> {
    return this.outbox.transaction(async (c, emit) => {
      const { rows } = await c.query<Row>(
        `SELECT * FROM scheduled_calls WHERE id = $1 ${accountId ? 'AND account_id = $2' : ''} FOR UPDATE`, accountId ? [id, accountId] : [id])
      if (!rows[0]) return null
      const cur = toScheduledCall(rows[0])
      if (!allowed.includes(cur.status)) {
        throw invalidState(`scheduled call ${id} is ${cur.status}: only a ${allowed.join(' or ')} one can be changed so`, { status: cur.status })
      }
      const next = await fn(c, emit, cur)
      return next ? toScheduledCall(next) : cur
    })
  }

  private emitFor(emit: Emit, r: Row, type: EventType) {
    const sc = toScheduledCall(r)
    return emit(sc.accountId, type, { scheduledCall: sc }, sc.callId)
  }

  private schedule(c: Queryable, r: Row) {
    return this.jobs.schedule({ kind: SCHEDULED_CALL_JOB, key: r.id, accountId: r.account_id, dueAt: r.scheduled_for }, c)
  }

  /** Stores a pending call and its job; emits `scheduled_call.created`. */
  async create(accountId: string, input: ScheduledCallInput): Promise<ScheduledCall> {
    return this.outbox.transaction(async (c, emit) => {
      const { rows } = await c.query<Row>(
        `INSERT INTO scheduled_calls (id, account_id, agent_id, to_phone_number, from_phone_number, phone_number_id, contact_id, contact_name,
           scheduled_for, timezone, is_callback, previous_call_id, callback_context, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING *`,
        [randomUUID(), accountId, input.agentId, input.toPhoneNumber, input.fromPhoneNumber, input.phoneNumberId, input.contactId ?? null,
          input.contactName ?? null, input.scheduledFor, input.timezone, input.isCallback ?? false, input.previousCallId ?? null,
          input.callbackContext ?? null, input.source ?? 'api'],
      )
      await this.schedule(c, rows[0]!)
      await this.emitFor(emit, rows[0]!, 'scheduled_call.created')
      return toScheduledCall(rows[0]!)
    })
  }

  async get(accountId: string, id: string): Promise<ScheduledCall | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM scheduled_calls WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toScheduledCall(rows[0]) : null
  }

  /** For the job: the row whatever the account. */
  async getById(id: string): Promise<ScheduledCall | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM scheduled_calls WHERE id = $1', [id])
    return rows[0] ? toScheduledCall(rows[0]) : null
  }

  /** Soonest first (Leadlock); `startDate`/`endDate` bound `scheduled_for` (inclusive). */
  async list(accountId: string, filter: ScheduledCallFilter, page: { limit?: number | undefined; cursor?: string | undefined }): Promise<{ data: ScheduledCall[]; nextCursor: string | null }> {
    const limit = Math.min(Math.max(page.limit ?? DEFAULT_LIMIT, 1), MAX_LIMIT)
    const params: unknown[] = [accountId]
    const where = ['account_id = $1']
    const add = (sql: string, v: unknown) => { params.push(v); where.push(sql.replace('?', `$${params.length}`)) }
    if (filter.status) add('status = ?', filter.status)
    if (filter.agentId) add('agent_id = ?', filter.agentId)
    if (filter.startDate) add('scheduled_for >= ?', filter.startDate)
    if (filter.endDate) add('scheduled_for <= ?', filter.endDate)
    if (page.cursor) {
      const cur = decodeCursor(page.cursor)
      params.push(cur.at, cur.seq)
      where.push(`(scheduled_for, seq) > ($${params.length - 1}, $${params.length})`)
    }
    params.push(limit + 1)
    const { rows } = await this.db.query<Row>(
      `SELECT * FROM scheduled_calls WHERE ${where.join(' AND ')} ORDER BY scheduled_for, seq LIMIT $${params.length}`, params)
    const more = rows.length > limit
    const slice = more ? rows.slice(0, limit) : rows
    return { data: slice.map(toScheduledCall), nextCursor: more ? encodeCursor(slice[slice.length - 1]!) : null }
  }

  /** The callbacks an agent booked during `previousCallId` (schedule_callback), newest first. */
  async callbacksOf(accountId: string, previousCallId: string): Promise<ScheduledCall[]> {
    const { rows } = await this.db.query<Row>(
      `SELECT * FROM scheduled_calls WHERE account_id = $1 AND previous_call_id = $2 AND source = 'ai_function' ORDER BY seq DESC`, [accountId, previousCallId])
    return rows.map(toScheduledCall)
  }

  /** Only while pending (else 409); a new `scheduledFor` re-times the job. */
  update(accountId: string, id: string, patch: ScheduledCallPatch): Promise<ScheduledCall | null> {
    return this.change(accountId, id, ['pending'], async (c, emit) => {
      const { rows } = await c.query<Row>(
        `UPDATE scheduled_calls SET scheduled_for = COALESCE($2, scheduled_for), timezone = COALESCE($3, timezone),
           contact_name = CASE WHEN $4::boolean THEN $5 ELSE contact_name END,
           callback_context = CASE WHEN $6::boolean THEN $7 ELSE callback_context END, updated_at = now() WHERE id = $1 RETURNING *`,
        [id, patch.scheduledFor ?? null, patch.timezone ?? null, patch.contactName !== undefined, patch.contactName ?? null,
          patch.callbackContext !== undefined, patch.callbackContext ?? null])
      await this.schedule(c, rows[0]!)
      await this.emitFor(emit, rows[0]!, 'scheduled_call.updated')
      return rows[0]!
    })
  }

  /** pending → cancelled; its job goes. */
  cancel(accountId: string, id: string): Promise<ScheduledCall | null> {
    return this.change(accountId, id, ['pending'], async (c, emit) => {
      const { rows } = await c.query<Row>(`UPDATE scheduled_calls SET status = 'cancelled', updated_at = now() WHERE id = $1 RETURNING *`, [id])
      await this.jobs.cancel(SCHEDULED_CALL_JOB, id, c)
      await this.emitFor(emit, rows[0]!, 'scheduled_call.cancelled')
      return rows[0]!
    })
  }

  /** failed or cancelled → pending again at `at` (its call and error kept until it dials again). */
  retry(accountId: string, id: string, at: Date): Promise<ScheduledCall | null> {
    return this.change(accountId, id, ['failed', 'cancelled'], async (c, emit) => {
      const { rows } = await c.query<Row>(
        `UPDATE scheduled_calls SET status = 'pending', scheduled_for = $2, updated_at = now() WHERE id = $1 RETURNING *`, [id, at])
      await this.schedule(c, rows[0]!)
      await this.emitFor(emit, rows[0]!, 'scheduled_call.updated')
      return rows[0]!
    })
  }

  /** A pending call due now (`now`: the business clock). */
  trigger(accountId: string, id: string, now: Date): Promise<ScheduledCall | null> {
    return this.change(accountId, id, ['pending'], async (c) => {
      const { rows } = await c.query<Row>(`UPDATE scheduled_calls SET scheduled_for = $2, updated_at = now() WHERE id = $1 RETURNING *`, [id, now])
      await this.schedule(c, rows[0]!)
      return rows[0]!
    })
  }

  /** Removes it (not while dialing: 409); its job goes. */
  async delete(accountId: string, id: string): Promise<boolean> {
    try {
      const gone = await this.change(accountId, id, ['pending', 'completed', 'failed', 'cancelled'], async (c) => {
        await c.query('DELETE FROM scheduled_calls WHERE id = $1', [id])
        await this.jobs.cancel(SCHEDULED_CALL_JOB, id, c)
        return null
      })
      return gone !== null
    } catch (err) {
      if ((err as { code?: string }).code === 'invalid_state') throw invalidState(`scheduled call ${id} is dialing: cancel is not possible now, delete it once it ended`)
      throw err
    }
  }

  /**
   * The job's claim: pending → dialing, one attempt more; null when it is no
   * longer pending and due at `now` (cancelled, deleted, or PATCHed to a later
   * time while the job was about to dial: its re-timed job dials then).
   */
  async markDialing(id: string, now: Date): Promise<ScheduledCall | null> {
    return this.outbox.transaction(async (c, emit) => {
      const { rows } = await c.query<Row>(
        `UPDATE scheduled_calls SET status = 'dialing', attempts = attempts + 1, dialed_at = now(), last_error = NULL, call_id = NULL, updated_at = now()
         WHERE id = $1 AND status = 'pending' AND scheduled_for <= $2 RETURNING *`, [id, now])
      if (!rows[0]) return null
      await this.emitFor(emit, rows[0], 'scheduled_call.dialing')
      return toScheduledCall(rows[0])
    })
  }

  /**
   * The call this attempt placed, found by its metadata (`scheduled_call_id`,
   * placed since the attempt began): its node stopped between placing it and
   * `setCall`. calls_scheduled_call (migration 271) serves it.
   */
  async findPlacedCall(id: string): Promise<string | null> {
    const { rows } = await this.db.query<{ id: string }>(
      `SELECT c.id FROM calls c JOIN scheduled_calls s ON s.id = $1::uuid
        WHERE c.metadata ? 'scheduled_call_id' AND (c.metadata->>'scheduled_call_id') = $2::text AND c.created_at >= s.dialed_at
        ORDER BY c.created_at DESC LIMIT 1`, [id, id])
    return rows[0]?.id ?? null
  }

  /** The call placed for it (kept before the job waits on it: a re-run settles this call instead of dialing again). */
  async setCall(id: string, callId: string): Promise<void> {
    await this.db.query('UPDATE scheduled_calls SET call_id = $2, updated_at = now() WHERE id = $1', [id, callId])
  }

  /**
   * Its outcome: `completed` (the call was answered) or `failed` with why.
   * From `dialing`, or from `pending` when it could not be dialled at all
   * (the agent is gone, the number is on the do-not-call list).
   */
  async settle(id: string, status: 'completed' | 'failed', lastError: string | null): Promise<ScheduledCall | null> {
    return this.outbox.transaction(async (c, emit) => {
      const { rows } = await c.query<Row>(
        `UPDATE scheduled_calls SET status = $2, last_error = $3, updated_at = now() WHERE id = $1 AND status IN ('pending', 'dialing') RETURNING *`,
        [id, status, lastError])
      if (!rows[0]) return null
      await this.emitFor(emit, rows[0], status === 'completed' ? 'scheduled_call.completed' : 'scheduled_call.failed')
      return toScheduledCall(rows[0])
    })
  }
}
