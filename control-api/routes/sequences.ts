import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { E164Number, IdParams, Nullable, PageQuery, StringEnum, Timestamp, errors, pageOf } from '../schemas.ts'
import { found, type ApiDeps, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'
import { isE164 } from '../phone-number.ts'
import { ENROLLMENT_STATUSES, type Enrollment, type Sequence, type SequenceStep } from '../../store/sequences.ts'
import type { Sequences } from '../../call/outbound/sequences.ts'
import { checkOperatingHours, OperatingHoursSchema } from '../../call/outbound/operating-hours.ts'
import { resolveCallerId } from '../../call/outbound/caller-id.ts'
import { isTimeZone } from '../../call/time-zones.ts'

/**
 * /v1/sequences (Leadlock sequences, issue 17): steps an AI agent works
 * through for each enrolled contact (`call`, `wait`, `voicemail_drop`, each
 * `delay_minutes` after the previous one), inside `operating_hours`.
 * Created inactive: `POST /:id/activate` starts it (`deactivate` pauses it;
 * delete only when inactive). Enrollments: one by one, or CSV rows (Leadlock
 * CSVImportRequest, a per-row error report); `GET …/stats`. Events
 * `sequence_enrollment.created`, `sequence_enrollment.ended`.
 * How each step runs: call/outbound/sequences.ts.
 */

const StepSchema = Type.Object({
  type: Type.String({ description: 'call (the agent calls the contact), wait (nothing: only the delay), voicemail_drop (a call whose answering machine gets `message` after the beep; a person who answers talks to the agent). `text` is refused: this engine has no SMS channel' }),
  delay_minutes: Type.Integer({ minimum: 0, maximum: 525_600, description: 'Minutes after the previous step ended (after enrollment for the first step) before this one runs' }),
  message: Type.Optional(Type.String({ minLength: 1, maxLength: 2000, description: 'voicemail_drop only (required there): what the machine records; {{name}} variables as in the agent\'s lines' })),
  config: Type.Optional(Type.Object({
    ring_timeout_sec: Type.Optional(Type.Integer({ minimum: 5, maximum: 120, description: 'How long the call rings (default 30)' })),
  }, { additionalProperties: false, description: 'call and voicemail_drop steps' })),
}, { additionalProperties: false })

const Fields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  description: Type.String({ maxLength: 2000 }),
  agent_id: Type.String({ format: 'uuid', description: 'The AI agent that places and handles the calls' }),
  phone_number_id: Type.String({ format: 'uuid', description: 'Caller ID: one of the account\'s numbers (default: the agent\'s number)' }),
  from: Type.String({ minLength: 2, maxLength: 16, description: 'Caller ID as a number string the account owns (instead of phone_number_id)' }),
  steps: Type.Array(StepSchema, { minItems: 1, maxItems: 50 }),
  max_attempts: Type.Integer({ minimum: 1, maximum: 100, description: 'Dial attempts per enrollment at most (default 6); later call steps are skipped' }),
  stop_on_booking: Type.Boolean({ description: 'End an enrollment `booked` after a call marked as a booking: the agent\'s mark_booked built-in tool, or any tool whose result is a JSON object with booked: true (default true)' }),
  operating_hours: OperatingHoursSchema,
}
const SequenceCreate = Type.Object({
  name: Fields.name, description: Type.Optional(Fields.description), agent_id: Fields.agent_id, phone_number_id: Type.Optional(Fields.phone_number_id),
  from: Type.Optional(Fields.from), steps: Fields.steps, max_attempts: Type.Optional({ ...Fields.max_attempts, default: 6 }),
  stop_on_booking: Type.Optional({ ...Fields.stop_on_booking, default: true }), operating_hours: Type.Optional(Nullable(Fields.operating_hours)),
}, { additionalProperties: false })
const SequenceUpdate = Type.Object({
  name: Type.Optional(Fields.name), description: Type.Optional(Nullable(Fields.description)), agent_id: Type.Optional(Fields.agent_id),
  phone_number_id: Type.Optional(Fields.phone_number_id), from: Type.Optional(Fields.from), steps: Type.Optional(Fields.steps),
  max_attempts: Type.Optional(Fields.max_attempts), stop_on_booking: Type.Optional(Fields.stop_on_booking),
  operating_hours: Type.Optional(Nullable(Fields.operating_hours)),
}, { additionalProperties: false, minProperties: 1 })

const SequenceSchema = Type.Object({
  id: Type.String(), account_id: Type.String(), name: Type.String(), description: Nullable(Type.String()), agent_id: Type.String(),
  agent_name: Nullable(Type.String()), phone_number_id: Nullable(Type.String()), phone_number: Type.String(), steps: Type.Array(StepSchema),
  max_attempts: Type.Integer(), stop_on_booking: Type.Boolean(), operating_hours: Nullable(Fields.operating_hours), is_active: Type.Boolean(),
  created_at: Timestamp, updated_at: Timestamp,
}, { $id: 'Sequence' })

const EnrollmentCreate = Type.Object({
  contact_phone: E164Number('The contact'),
  contact_name: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Given to the agent as {{contact_name}}' })),
  contact_email: Type.Optional(Type.String({ format: 'email', maxLength: 320 })),
  contact_id: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  timezone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'The contact\'s IANA time zone: operating hours are read in it' })),
}, { additionalProperties: false })

const DispositionSchema = Type.Object({
  step: Type.Integer(), type: Type.String(), at: Timestamp, call_id: Nullable(Type.String()),
  outcome: Type.String({ description: 'answered, voicemail, machine, busy, no-answer, failed, canceled, waited, skipped, do_not_call, opted_out, booked' }),
  detail: Type.Optional(Type.String()),
})
const EnrollmentSchema = Type.Object({
  id: Type.String(), account_id: Type.String(), sequence_id: Type.String(), contact_phone: Type.String(), contact_name: Nullable(Type.String()),
  contact_email: Nullable(Type.String()), contact_id: Nullable(Type.String()), timezone: Nullable(Type.String()),
  current_step: Type.Integer({ description: 'Index of the step to run next' }), status: StringEnum(ENROLLMENT_STATUSES),
  next_action_at: Nullable(Timestamp), total_calls: Type.Integer({ description: 'Calls answered' }), total_attempts: Type.Integer({ description: 'Calls placed' }),
  last_call_outcome: Nullable(Type.String()), current_call_id: Nullable(Type.String()), enrolled_via: Type.String(), enrolled_at: Timestamp,
  completed_at: Nullable(Timestamp), created_at: Timestamp, updated_at: Timestamp,
}, { $id: 'SequenceEnrollment' })

const CsvImport = Type.Object({
  rows: Type.Array(Type.Record(Type.String(), Type.Unknown()), { minItems: 1, maxItems: 10_000, description: 'Parsed CSV rows (column → value)' }),
  field_mapping: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'CSV column → enrollment field (contact_phone, contact_name, contact_email, contact_id, timezone); without it the columns are named as the fields' })),
}, { additionalProperties: false })
const CsvResult = Type.Object({
  enrolled: Type.Integer(), skipped: Type.Integer({ description: 'Rows whose contact is already active in the sequence' }),
  errors: Type.Array(Type.Object({ row: Type.Integer({ description: '1-based row of `rows`' }), field: Type.String(), message: Type.String() })),
})
const StatsSchema = Type.Object({
  enrolled_count: Type.Integer(), active_count: Type.Integer(), completed_count: Type.Integer(), booked_count: Type.Integer(),
  cancelled_count: Type.Integer(), opted_out_count: Type.Integer(), booking_rate: Type.Number(),
})
const EnrollmentParams = Type.Object({ id: Type.String({ format: 'uuid' }), enrollment_id: Type.String({ format: 'uuid' }) })
const ENROLL_FIELDS = ['contact_phone', 'contact_name', 'contact_email', 'contact_id', 'timezone'] as const
/** A CSV cell's longest text per field: what POST …/enrollments allows for one contact. */
const CELL_MAX: Record<string, number> = { contact_phone: 32, contact_name: 200, contact_email: 320, contact_id: 200, timezone: 64 }

const invalid = (field: string, message: string) => new ApiError(400, 'validation_failed', `invalid body: ${field}: ${message}`, { field })

/** Steps as stored: `text` refused (no SMS channel), `message` only (and always) on voicemail_drop. */
function checkSteps(steps: Array<Static<typeof StepSchema>>): SequenceStep[] {
  return steps.map((s, i) => {
    const f = `steps/${i}`
    if (s.type === 'text') throw invalid(`${f}/type`, 'text steps need an SMS channel, which this engine does not have (call, wait, voicemail_drop)')
    if (s.type !== 'call' && s.type !== 'wait' && s.type !== 'voicemail_drop') throw invalid(`${f}/type`, `${s.type} is not a step type (call, wait, voicemail_drop)`)
    if (s.type === 'voicemail_drop' && !s.message) throw invalid(`${f}/message`, 'a voicemail_drop step needs the message to leave')
    if (s.type !== 'voicemail_drop' && s.message !== undefined) throw invalid(`${f}/message`, `only voicemail_drop steps leave a message (this is ${s.type})`)
    if (s.type === 'wait' && s.config !== undefined) throw invalid(`${f}/config`, 'a wait step places no call')
    return { type: s.type, delay_minutes: s.delay_minutes, ...(s.message ? { message: s.message } : {}), ...(s.config ? { config: s.config } : {}) }
  })
}

function service(deps: ApiDeps): Sequences {
  if (!deps.sequences) throw new ApiError(503, 'unavailable', 'sequences are not available on this node')
  return deps.sequences
}

const toEnrollmentApi = (e: Enrollment): Static<typeof EnrollmentSchema> => ({
  id: e.id, account_id: e.accountId, sequence_id: e.sequenceId, contact_phone: e.contactPhone, contact_name: e.contactName, contact_email: e.contactEmail,
  contact_id: e.contactId, timezone: e.timezone, current_step: e.currentStep, status: e.status, next_action_at: e.nextActionAt, total_calls: e.totalCalls,
  total_attempts: e.totalAttempts, last_call_outcome: e.lastCallOutcome, current_call_id: e.currentCallId, enrolled_via: e.enrolledVia,
  enrolled_at: e.enrolledAt, completed_at: e.completedAt, created_at: e.createdAt, updated_at: e.updatedAt,
})

export const sequenceRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.sequences
  const tags = ['sequences']
  const read = { scope: 'calls:read' as const }
  const write = { scope: 'calls:write' as const }

  const toApi = async (s: Sequence): Promise<Static<typeof SequenceSchema>> => ({
    id: s.id, account_id: s.accountId, name: s.name, description: s.description, agent_id: s.agentId,
    agent_name: (await deps.store.agents.get(s.accountId, s.agentId))?.name ?? null, phone_number_id: s.phoneNumberId, phone_number: s.fromPhoneNumber,
    steps: s.steps, max_attempts: s.maxAttempts, stop_on_booking: s.stopOnBooking, operating_hours: s.operatingHours, is_active: s.isActive,
    created_at: s.createdAt, updated_at: s.updatedAt,
  })
  const sequence = async (accountId: string, id: string) => found(await repo.get(accountId, id), 'sequence', id)
  const checkHours = (h: unknown) => {
    if (h === undefined || h === null) return
    const problems = checkOperatingHours(h, 'operating_hours')
    if (problems.length) throw new ApiError(400, 'validation_failed', `invalid body: ${problems.join('; ')}`, { field: 'operating_hours', problems })
  }
  const agentOf = async (accountId: string, id: string) => {
    if (!(await deps.store.agents.get(accountId, id))) throw new ApiError(400, 'invalid_reference', 'agent_id: no such agent in this account', { field: 'agent_id' })
  }

  app.post('/sequences', { config: write, schema: { tags, summary: 'Create a sequence (inactive until activated)', body: SequenceCreate, response: { 201: SequenceSchema, ...errors() } } },
    async (req, reply) => {
      const b = req.body
      const steps = checkSteps(b.steps)
      checkHours(b.operating_hours)
      await agentOf(req.auth.accountId, b.agent_id)
      const caller = await resolveCallerId(deps.store, req.auth.accountId, b.agent_id, { phoneNumberId: b.phone_number_id, from: b.from })
      const s = await repo.create(req.auth.accountId, {
        name: b.name, description: b.description ?? null, agentId: b.agent_id, phoneNumberId: caller.phoneNumberId, fromPhoneNumber: caller.from, steps,
        maxAttempts: b.max_attempts ?? 6, stopOnBooking: b.stop_on_booking ?? true, operatingHours: b.operating_hours ?? null,
      })
      return reply.code(201).send(await toApi(s))
    })

  app.get('/sequences', {
    config: read,
    schema: { tags, summary: 'List sequences', querystring: Type.Object({ ...PageQuery.properties, is_active: Type.Optional(Type.Boolean()) }, { additionalProperties: false }), response: { 200: pageOf(SequenceSchema), ...errors() } },
  }, async (req) => {
    const page = await repo.list(req.auth.accountId, { isActive: req.query.is_active }, { limit: req.query.limit, cursor: req.query.cursor })
    return { data: await Promise.all(page.data.map(toApi)), nextCursor: page.nextCursor }
  })

  app.get('/sequences/:id', { config: read, schema: { tags, summary: 'Get a sequence', params: IdParams, response: { 200: SequenceSchema, ...errors(404) } } },
    async (req) => toApi(await sequence(req.auth.accountId, req.params.id)))

  app.patch('/sequences/:id', { config: write, schema: { tags, summary: 'Change a sequence (steps apply from the next step each enrollment runs)', params: IdParams, body: SequenceUpdate, response: { 200: SequenceSchema, ...errors(404) } } },
    async (req) => {
      const cur = await sequence(req.auth.accountId, req.params.id)
      const b = req.body
      const steps = b.steps ? checkSteps(b.steps) : undefined
      checkHours(b.operating_hours)
      if (b.agent_id) await agentOf(req.auth.accountId, b.agent_id)
      const agentId = b.agent_id ?? cur.agentId
      const caller = b.phone_number_id || b.from ? await resolveCallerId(deps.store, req.auth.accountId, agentId, { phoneNumberId: b.phone_number_id, from: b.from }) : undefined
      const s = await repo.update(req.auth.accountId, cur.id, {
        ...(b.name !== undefined ? { name: b.name } : {}), ...(b.description !== undefined ? { description: b.description } : {}),
        ...(b.agent_id ? { agentId: b.agent_id } : {}), ...(caller ? { phoneNumberId: caller.phoneNumberId, fromPhoneNumber: caller.from } : {}),
        ...(steps ? { steps } : {}), ...(b.max_attempts !== undefined ? { maxAttempts: b.max_attempts } : {}),
        ...(b.stop_on_booking !== undefined ? { stopOnBooking: b.stop_on_booking } : {}),
        ...(b.operating_hours !== undefined ? { operatingHours: b.operating_hours } : {}),
      })
      return toApi(found(s, 'sequence', cur.id))
    })

  app.delete('/sequences/:id', { config: write, schema: { tags, summary: 'Delete an inactive sequence and its enrollments (409 while active)', params: IdParams, response: { 204: Type.Null(), ...errors(404, 409) } } },
    async (req, reply) => {
      found((await repo.delete(req.auth.accountId, req.params.id)) || null, 'sequence', req.params.id)
      return reply.code(204).send(null)
    })

  for (const [path, active] of [['activate', true], ['deactivate', false]] as const) {
    app.post(`/sequences/:id/${path}`, { config: write, schema: { tags, summary: active ? 'Start working the enrollments' : 'Pause: no step runs until activated again', params: IdParams, response: { 200: SequenceSchema, ...errors(404, 503) } } },
      async (req) => toApi(found(await service(deps).setActive(req.auth.accountId, req.params.id, active), 'sequence', req.params.id)))
  }

  const enrollOne = async (s: Sequence, b: Partial<Record<(typeof ENROLL_FIELDS)[number], string>>, via: string) => {
    if (b.timezone !== undefined && !isTimeZone(b.timezone)) throw invalid('timezone', `unknown time zone ${b.timezone}`)
    return service(deps).enroll(s, {
      contactPhone: b.contact_phone!, contactName: b.contact_name ?? null, contactEmail: b.contact_email ?? null, contactId: b.contact_id ?? null,
      timezone: b.timezone ?? null, enrolledVia: via,
    })
  }

  app.post('/sequences/:id/enrollments', { config: write, schema: { tags, summary: 'Enroll a contact', params: IdParams, body: EnrollmentCreate, response: { 201: EnrollmentSchema, ...errors(404, 409, 503) } } },
    async (req, reply) => {
      const s = await sequence(req.auth.accountId, req.params.id)
      const e = await enrollOne(s, req.body, 'api')
      if (!e) throw new ApiError(409, 'conflict', `${req.body.contact_phone} is already enrolled in this sequence`, { field: 'contact_phone' })
      return reply.code(201).send(toEnrollmentApi(e))
    })

  app.post('/sequences/:id/enrollments/csv', {
    config: write,
    schema: { tags, summary: 'Enroll CSV rows: each good row is enrolled, each bad one reported (row, field, message)', params: IdParams, body: CsvImport, response: { 200: CsvResult, ...errors(404, 503) } },
  }, async (req) => {
    const s = await sequence(req.auth.accountId, req.params.id)
    const mapping = req.body.field_mapping ?? Object.fromEntries(ENROLL_FIELDS.map((f) => [f, f]))
    for (const [col, field] of Object.entries(mapping)) {
      if (!(ENROLL_FIELDS as readonly string[]).includes(field)) throw invalid(`field_mapping/${col}`, `${field} is not an enrollment field (${ENROLL_FIELDS.join(', ')})`)
    }
    if (!Object.values(mapping).includes('contact_phone')) throw invalid('field_mapping', 'no column is mapped to contact_phone')
    const out = { enrolled: 0, skipped: 0, errors: [] as Array<{ row: number; field: string; message: string }> }
    const seen = new Set<string>()
    for (const [i, row] of req.body.rows.entries()) {
      const v: Partial<Record<(typeof ENROLL_FIELDS)[number], string>> = {}
      const err = (field: string, message: string) => out.errors.push({ row: i + 1, field, message })
      let cellProblem = false
      for (const [col, field] of Object.entries(mapping)) {
        const raw = row[col]
        if (raw === undefined || raw === null || raw === '') continue
        // A CSV cell is text (a number is taken as its digits); an object would enroll "[object Object]".
        if (typeof raw !== 'string' && typeof raw !== 'number') { err(field, `column ${col}: a CSV cell is text, not ${Array.isArray(raw) ? 'an array' : typeof raw}`); cellProblem = true; break }
        const text = String(raw).trim()
        if (text.length > (CELL_MAX[field] ?? 200)) { err(field, `column ${col}: longer than ${CELL_MAX[field] ?? 200} characters`); cellProblem = true; break }
        v[field as (typeof ENROLL_FIELDS)[number]] = text
      }
      if (cellProblem) continue
      if (!v.contact_phone) { err('contact_phone', 'missing'); continue }
      if (!isE164(v.contact_phone)) { err('contact_phone', `${v.contact_phone} is not an E.164 number (+, country code and number)`); continue }
      if (v.timezone && !isTimeZone(v.timezone)) { err('timezone', `unknown time zone ${v.timezone}`); continue }
      if (v.contact_email && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(v.contact_email)) { err('contact_email', `${v.contact_email} is not an email address`); continue }
      if (seen.has(v.contact_phone)) { out.skipped++; continue }
      seen.add(v.contact_phone)
      if (await enrollOne(s, v, 'csv')) out.enrolled++
      else out.skipped++
    }
    return out
  })

  app.get('/sequences/:id/enrollments', {
    config: read,
    schema: { tags, summary: 'List a sequence\'s enrollments', params: IdParams, querystring: Type.Object({ ...PageQuery.properties, status: Type.Optional(StringEnum(ENROLLMENT_STATUSES)) }, { additionalProperties: false }), response: { 200: pageOf(EnrollmentSchema), ...errors(404) } },
  }, async (req) => {
    const s = await sequence(req.auth.accountId, req.params.id)
    const page = await repo.listEnrollments(req.auth.accountId, s.id, { status: req.query.status }, { limit: req.query.limit, cursor: req.query.cursor })
    return { data: page.data.map(toEnrollmentApi), nextCursor: page.nextCursor }
  })

  app.get('/sequences/:id/enrollments/:enrollment_id', { config: read, schema: { tags, summary: 'Get an enrollment', params: EnrollmentParams, response: { 200: EnrollmentSchema, ...errors(404) } } },
    async (req) => toEnrollmentApi(found(await repo.getEnrollment(req.auth.accountId, req.params.id, req.params.enrollment_id), 'enrollment', req.params.enrollment_id)))

  app.delete('/sequences/:id/enrollments/:enrollment_id', { config: write, schema: { tags, summary: 'Cancel an active enrollment', params: EnrollmentParams, response: { 204: Type.Null(), ...errors(404, 409) } } },
    async (req, reply) => {
      found(await repo.cancelEnrollment(req.auth.accountId, req.params.id, req.params.enrollment_id), 'enrollment', req.params.enrollment_id)
      return reply.code(204).send(null)
    })

  app.get('/sequences/:id/enrollments/:enrollment_id/dispositions', {
    config: read, schema: { tags, summary: 'What each step of the enrollment did', params: EnrollmentParams, response: { 200: Type.Object({ data: Type.Array(DispositionSchema) }), ...errors(404) } },
  }, async (req) => {
    const e = found(await repo.getEnrollment(req.auth.accountId, req.params.id, req.params.enrollment_id), 'enrollment', req.params.enrollment_id)
    return { data: e.dispositions.map((d) => ({ step: d.step, type: d.type, at: d.at, call_id: d.callId, outcome: d.outcome, ...(d.detail ? { detail: d.detail } : {}) })) }
  })

  app.get('/sequences/:id/stats', { config: read, schema: { tags, summary: 'Enrollment counts by status and the booking rate', params: IdParams, response: { 200: StatsSchema, ...errors(404) } } },
    async (req) => repo.stats((await sequence(req.auth.accountId, req.params.id)).id))
}
