import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { StoreError, invalidState } from './errors.ts'
import type { JobRepository } from './jobs.ts'
import type { Emit, Outbox } from './outbox.ts'

/**
 * Leadlock sequences and their enrollments (issue 17). A sequence is a list
 * of steps an agent works through per enrolled contact; each active
 * enrollment of an active sequence has one job (kind `sequence-step`, key =
 * enrollment id, due = `next_action_at`) that `call/outbound/sequences.ts`
 * runs. Enrolling, activating, cancelling and the steps' progress re-time
 * or cancel that job in the same transaction; an enrollment's start and end
 * emit `sequence_enrollment.created` / `sequence_enrollment.ended`.
 */

export const SEQUENCE_STEP_JOB = 'sequence-step'
/** The call metadata `sequence_step_run` of a step's call: which enrollment's which step placed it (findPlacedCall). */
export const stepRunKey = (enrollmentId: string, step: number): string => `${enrollmentId}:${step}`

export interface SequenceStep {
  type: 'call' | 'wait' | 'voicemail_drop'
  delay_minutes: number
  message?: string | undefined
  config?: { ring_timeout_sec?: number | undefined } | undefined
}

export interface OperatingHoursValue { start: string; end: string; days: number[]; timezone: string }

export interface Sequence {
  id: string
  accountId: string
  name: string
  description: string | null
  agentId: string
  phoneNumberId: string | null
  fromPhoneNumber: string
  steps: SequenceStep[]
  maxAttempts: number
  stopOnBooking: boolean
  operatingHours: OperatingHoursValue | null
  isActive: boolean
  createdAt: string
  updatedAt: string
}

export interface SequenceInput {
  name: string
  description?: string | null | undefined
  agentId: string
  phoneNumberId: string | null
  fromPhoneNumber: string
  steps: SequenceStep[]
  maxAttempts?: number | undefined
  stopOnBooking?: boolean | undefined
  operatingHours?: OperatingHoursValue | null | undefined
}

export const ENROLLMENT_STATUSES = ['active', 'completed', 'booked', 'cancelled', 'opted_out'] as const
export type EnrollmentStatus = (typeof ENROLLMENT_STATUSES)[number]

export interface Disposition {
  step: number
  type: SequenceStep['type']
  at: string
  callId: string | null
  /** answered, voicemail, machine, busy, no-answer, failed, do_not_call, booked */
  outcome: string
  detail?: string | undefined
}

export interface Enrollment {
  id: string
  accountId: string
  sequenceId: string
  contactPhone: string
  contactName: string | null
  contactEmail: string | null
  contactId: string | null
  timezone: string | null
  currentStep: number
  status: EnrollmentStatus
  nextActionAt: string | null
  totalCalls: number
  totalAttempts: number
  lastCallOutcome: string | null
  currentCallId: string | null
  dispositions: Disposition[]
  enrolledVia: string
  enrolledAt: string
  completedAt: string | null
  createdAt: string
  updatedAt: string
}

export interface EnrollmentInput {
  contactPhone: string
  contactName?: string | null | undefined
  contactEmail?: string | null | undefined
  contactId?: string | null | undefined
  timezone?: string | null | undefined
  enrolledVia?: string | undefined
}

interface SeqRow {
  id: string; seq: string; account_id: string; name: string; description: string | null; agent_id: string; phone_number_id: string | null
  from_phone_number: string; steps: SequenceStep[]; max_attempts: number; stop_on_booking: boolean; operating_hours: OperatingHoursValue | null
  is_active: boolean; created_at: Date; updated_at: Date
}
const toSequence = (r: SeqRow): Sequence => ({
  id: r.id, accountId: r.account_id, name: r.name, description: r.description, agentId: r.agent_id, phoneNumberId: r.phone_number_id,
  fromPhoneNumber: r.from_phone_number, steps: r.steps, maxAttempts: r.max_attempts, stopOnBooking: r.stop_on_booking,
  operatingHours: r.operating_hours, isActive: r.is_active, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

interface EnrRow {
  id: string; seq: string; account_id: string; sequence_id: string; contact_phone: string; contact_name: string | null; contact_email: string | null
  contact_id: string | null; timezone: string | null; current_step: number; status: string; next_action_at: Date | null; total_calls: number
  total_attempts: number; last_call_outcome: string | null; current_call_id: string | null; dispositions: Disposition[]; enrolled_via: string
  enrolled_at: Date; completed_at: Date | null; created_at: Date; updated_at: Date
}
const toEnrollment = (r: EnrRow): Enrollment => ({
  id: r.id, accountId: r.account_id, sequenceId: r.sequence_id, contactPhone: r.contact_phone, contactName: r.contact_name,
  contactEmail: r.contact_email, contactId: r.contact_id, timezone: r.timezone, currentStep: r.current_step, status: r.status as EnrollmentStatus,
  nextActionAt: r.next_action_at ? r.next_action_at.toISOString() : null, totalCalls: r.total_calls, totalAttempts: r.total_attempts,
  lastCallOutcome: r.last_call_outcome, currentCallId: r.current_call_id, dispositions: r.dispositions ?? [], enrolledVia: r.enrolled_via,
  enrolledAt: r.enrolled_at.toISOString(), completedAt: r.completed_at ? r.completed_at.toISOString() : null,
  createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

export interface SequenceStats {
  enrolled_count: number
  active_count: number
  completed_count: number
  booked_count: number
  cancelled_count: number
  opted_out_count: number
  booking_rate: number
}

export class SequenceRepository {
  constructor(private readonly db: Queryable, private readonly outbox: Outbox, private readonly jobs: JobRepository) {}

  private schedule(c: Queryable, e: EnrRow) {
    return this.jobs.schedule({ kind: SEQUENCE_STEP_JOB, key: e.id, accountId: e.account_id, dueAt: e.next_action_at! }, c)
  }

  private ended(emit: Emit, r: EnrRow) {
    return emit(r.account_id, 'sequence_enrollment.ended', { enrollment: toEnrollment(r) })
  }

  async create(accountId: string, input: SequenceInput): Promise<Sequence> {
    const { rows } = await this.db.query<SeqRow>(
      `INSERT INTO sequences (id, account_id, name, description, agent_id, phone_number_id, from_phone_number, steps, max_attempts, stop_on_booking, operating_hours)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *`,
      [randomUUID(), accountId, input.name, input.description ?? null, input.agentId, input.phoneNumberId, input.fromPhoneNumber,
        JSON.stringify(input.steps), input.maxAttempts ?? 6, input.stopOnBooking ?? true, input.operatingHours ? JSON.stringify(input.operatingHours) : null],
    )
    return toSequence(rows[0]!)
  }

  async get(accountId: string, id: string): Promise<Sequence | null> {
    const { rows } = await this.db.query<SeqRow>('SELECT * FROM sequences WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toSequence(rows[0]) : null
  }

  async getById(id: string): Promise<Sequence | null> {
    const { rows } = await this.db.query<SeqRow>('SELECT * FROM sequences WHERE id = $1', [id])
    return rows[0] ? toSequence(rows[0]) : null
  }

  list(accountId: string, filter: { isActive?: boolean | undefined }, page: PageRequest): Promise<Page<Sequence>> {
    const where: string[] = []
    const params: unknown[] = []
    if (filter.isActive !== undefined) { params.push(filter.isActive); where.push(`is_active = $${params.length + 1}`) }
    return pageQuery<SeqRow, Sequence>(this.db, { table: 'sequences', accountId, order: 'asc', page, where, params }, toSequence)
  }

  /** The fields given replace the stored ones (`null` clears description / operating_hours). */
  async update(accountId: string, id: string, patch: Partial<SequenceInput>): Promise<Sequence | null> {
    const cur = await this.get(accountId, id)
    if (!cur) return null
    const m = { ...cur, ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) } as Sequence
    const { rows } = await this.db.query<SeqRow>(
      `UPDATE sequences SET name = $3, description = $4, agent_id = $5, phone_number_id = $6, from_phone_number = $7, steps = $8, max_attempts = $9,
         stop_on_booking = $10, operating_hours = $11, updated_at = now() WHERE account_id = $1 AND id = $2 RETURNING *`,
      [accountId, id, m.name, m.description ?? null, m.agentId, m.phoneNumberId, m.fromPhoneNumber, JSON.stringify(m.steps), m.maxAttempts,
        m.stopOnBooking, m.operatingHours ? JSON.stringify(m.operatingHours) : null],
    )
    return rows[0] ? toSequence(rows[0]) : null
  }

  /** Only an inactive sequence (409 otherwise); its enrollments go with it. */
  async delete(accountId: string, id: string): Promise<boolean> {
    return this.outbox.transaction(async (c) => {
      const { rows } = await c.query<SeqRow>('SELECT * FROM sequences WHERE account_id = $1 AND id = $2 FOR UPDATE', [accountId, id])
      if (!rows[0]) return false
      if (rows[0].is_active) throw invalidState(`sequence ${id} is active: deactivate it first`)
      const enr = await c.query<{ id: string }>(`SELECT id FROM sequence_enrollments WHERE sequence_id = $1 AND status = 'active'`, [id])
      for (const e of enr.rows) await this.jobs.cancel(SEQUENCE_STEP_JOB, e.id, c)
      await c.query('DELETE FROM sequences WHERE id = $1', [id])
      return true
    })
  }

  /**
   * Activates (every active enrollment's job is armed at its next action,
   * not before `now`) or deactivates (their jobs go; next_action_at is kept).
   */
  async setActive(accountId: string, id: string, active: boolean, now: Date): Promise<Sequence | null> {
    return this.outbox.transaction(async (c) => {
      const { rows } = await c.query<SeqRow>('UPDATE sequences SET is_active = $3, updated_at = now() WHERE account_id = $1 AND id = $2 RETURNING *', [accountId, id, active])
      if (!rows[0]) return null
      const enr = await c.query<EnrRow>(
        `UPDATE sequence_enrollments SET next_action_at = GREATEST(COALESCE(next_action_at, $2), $2), updated_at = now()
         WHERE sequence_id = $1 AND status = 'active' RETURNING *`, [id, now])
      for (const e of enr.rows) {
        if (active) await this.schedule(c, e)
        else await this.jobs.cancel(SEQUENCE_STEP_JOB, e.id, c)
      }
      return toSequence(rows[0])
    })
  }

  /**
   * Enrolls a contact: its first step due `firstAt`; the job is armed when the
   * sequence is active. Null when the contact is already active in it: the
   * check and the insert hold the sequence's row, so two requests enrolling
   * the same contact at once (or a CSV and a POST) make one enrollment.
   * Throws not_found when the sequence was deleted meanwhile.
   */
  async enroll(seq: Sequence, input: EnrollmentInput, firstAt: Date): Promise<Enrollment | null> {
    return this.outbox.transaction(async (c, emit) => {
      const active = await c.query<{ is_active: boolean }>('SELECT is_active FROM sequences WHERE id = $1 FOR UPDATE', [seq.id])
      if (!active.rows[0]) throw new StoreError(404, 'not_found', `sequence ${seq.id} not found`)
      const dup = await c.query(`SELECT 1 FROM sequence_enrollments WHERE sequence_id = $1 AND contact_phone = $2 AND status = 'active'`, [seq.id, input.contactPhone])
      if (dup.rows.length) return null
      const { rows } = await c.query<EnrRow>(
        `INSERT INTO sequence_enrollments (id, account_id, sequence_id, contact_phone, contact_name, contact_email, contact_id, timezone, next_action_at, enrolled_via)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *`,
        [randomUUID(), seq.accountId, seq.id, input.contactPhone, input.contactName ?? null, input.contactEmail ?? null, input.contactId ?? null,
          input.timezone ?? null, firstAt, input.enrolledVia ?? 'api'],
      )
      if (active.rows[0].is_active) await this.schedule(c, rows[0]!)
      await emit(seq.accountId, 'sequence_enrollment.created', { enrollment: toEnrollment(rows[0]!) })
      return toEnrollment(rows[0]!)
    })
  }

  async getEnrollment(accountId: string, sequenceId: string, id: string): Promise<Enrollment | null> {
    const { rows } = await this.db.query<EnrRow>('SELECT * FROM sequence_enrollments WHERE account_id = $1 AND sequence_id = $2 AND id = $3', [accountId, sequenceId, id])
    return rows[0] ? toEnrollment(rows[0]) : null
  }

  async enrollmentById(id: string): Promise<Enrollment | null> {
    const { rows } = await this.db.query<EnrRow>('SELECT * FROM sequence_enrollments WHERE id = $1', [id])
    return rows[0] ? toEnrollment(rows[0]) : null
  }

  listEnrollments(accountId: string, sequenceId: string, filter: { status?: EnrollmentStatus | undefined }, page: PageRequest): Promise<Page<Enrollment>> {
    const params: unknown[] = [sequenceId]
    const where = ['sequence_id = $2']
    if (filter.status) { params.push(filter.status); where.push(`status = $${params.length + 1}`) }
    return pageQuery<EnrRow, Enrollment>(this.db, { table: 'sequence_enrollments', accountId, order: 'asc', page, where, params }, toEnrollment)
  }

  /** active → cancelled; its job goes. */
  async cancelEnrollment(accountId: string, sequenceId: string, id: string): Promise<Enrollment | null> {
    return this.outbox.transaction(async (c, emit) => {
      const { rows } = await c.query<EnrRow>(
        `UPDATE sequence_enrollments SET status = 'cancelled', next_action_at = NULL, completed_at = now(), updated_at = now()
         WHERE account_id = $1 AND sequence_id = $2 AND id = $3 AND status = 'active' RETURNING *`, [accountId, sequenceId, id])
      if (!rows[0]) {
        const cur = await c.query<{ status: string }>('SELECT status FROM sequence_enrollments WHERE account_id = $1 AND sequence_id = $2 AND id = $3', [accountId, sequenceId, id])
        if (cur.rows[0]) throw invalidState(`enrollment ${id} is ${cur.rows[0].status}: only an active one can be cancelled`)
        return null
      }
      await this.jobs.cancel(SEQUENCE_STEP_JOB, id, c)
      await this.ended(emit, rows[0])
      return toEnrollment(rows[0])
    })
  }

  /**
   * The call this step placed whose id was not noted (its node stopped between
   * placing it and startAttempt), by its metadata `sequence_step_run`;
   * calls_sequence_step_run (migration 271) serves it.
   */
  async findPlacedCall(enrollmentId: string, step: number): Promise<string | null> {
    const { rows } = await this.db.query<{ id: string }>(
      `SELECT id FROM calls WHERE metadata ? 'sequence_step_run' AND (metadata->>'sequence_step_run') = $1 ORDER BY created_at DESC LIMIT 1`,
      [stepRunKey(enrollmentId, step)])
    return rows[0]?.id ?? null
  }

  /** The step's call is placed: kept before the job waits on it (a re-run settles it, never dials again). */
  async startAttempt(id: string, callId: string): Promise<void> {
    await this.db.query(
      `UPDATE sequence_enrollments SET current_call_id = $2, total_attempts = total_attempts + 1, updated_at = now() WHERE id = $1`, [id, callId])
  }

  /**
   * A step is over: its disposition logged, counters moved. `next`: the step
   * that comes and when (the job is re-timed by the caller's JobResult), or
   * the enrollment's end status.
   */
  async finishStep(id: string, d: Disposition, o: { answered: boolean; dialled: boolean; next: { step: number; at: Date } | { status: Exclude<EnrollmentStatus, 'active'> } }): Promise<Enrollment | null> {
    return this.outbox.transaction(async (c: pg.PoolClient, emit) => {
      const ending = 'status' in o.next
      const { rows } = await c.query<EnrRow>(
        `UPDATE sequence_enrollments SET dispositions = dispositions || $2::jsonb, current_call_id = NULL,
           total_calls = total_calls + $3, last_call_outcome = CASE WHEN $4::boolean THEN $5 ELSE last_call_outcome END,
           current_step = COALESCE($6::integer, current_step), next_action_at = $7, status = $8, completed_at = CASE WHEN $8 = 'active' THEN NULL ELSE now() END, updated_at = now()
         WHERE id = $1 AND status = 'active' RETURNING *`,
        [id, JSON.stringify([d]), o.answered ? 1 : 0, o.dialled, d.outcome, 'step' in o.next ? o.next.step : null, 'at' in o.next ? o.next.at : null,
          ending ? (o.next as { status: string }).status : 'active'],
      )
      if (!rows[0]) return null
      if (ending) await this.ended(emit, rows[0])
      return toEnrollment(rows[0])
    })
  }

  /** Outside operating hours: the next action moves to the next opening. */
  async retime(id: string, at: Date): Promise<void> {
    await this.db.query(`UPDATE sequence_enrollments SET next_action_at = $2, updated_at = now() WHERE id = $1 AND status = 'active'`, [id, at])
  }

  async stats(sequenceId: string): Promise<SequenceStats> {
    const { rows } = await this.db.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM sequence_enrollments WHERE sequence_id = $1 GROUP BY status', [sequenceId])
    const by = Object.fromEntries(rows.map((r) => [r.status, Number(r.n)])) as Record<string, number>
    const enrolled = rows.reduce((a, r) => a + Number(r.n), 0)
    return {
      enrolled_count: enrolled, active_count: by.active ?? 0, completed_count: by.completed ?? 0, booked_count: by.booked ?? 0,
      cancelled_count: by.cancelled ?? 0, opted_out_count: by.opted_out ?? 0, booking_rate: enrolled ? (by.booked ?? 0) / enrolled : 0,
    }
  }
}
