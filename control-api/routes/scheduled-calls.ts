import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { E164Number, IdParams, Nullable, StringEnum, Timestamp, errors, pageOf } from '../schemas.ts'
import { found, type ApiDeps, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'
import { SCHEDULED_CALL_STATUSES, type ScheduledCall } from '../../store/scheduled-calls.ts'
import type { ScheduledCalls } from '../../call/outbound/scheduled-calls.ts'
import { isTimeZone, zonedToInstant } from '../../call/time-zones.ts'

/**
 * /v1/scheduled-calls (Leadlock ScheduledCall): an outbound call by an AI
 * agent at a set time, dialled by the durable job scheduler. Agents book
 * callbacks themselves with the `schedule_callback` built-in tool
 * (`builtinTools` on the agent). Statuses pending → dialing → completed |
 * failed | cancelled; events `scheduled_call.created`, `.updated`,
 * `.dialing`, `.completed`, `.failed`, `.cancelled`.
 */

const Iso = (description: string) => Type.String({ format: 'date-time', description })
const ScheduledFor = Type.String({
  pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})?$',
  description: 'When to call, ISO 8601: with an offset or Z it is that instant; without one it is a wall-clock time in `timezone` (e.g. 2026-12-09T10:00 with America/New_York is 10 am there). Stored as UTC',
})
const TimeZone = Type.String({ minLength: 1, maxLength: 64, description: 'The contact\'s IANA time zone: a scheduled_for without an offset is read in it (unknown zones are refused)' })

/** scheduled_for as an instant: its own offset when it has one, else the wall clock in `timeZone` (400 naming the field otherwise). */
function instantOf(when: string, timeZone: string): Date {
  const m = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]+)?)?(Z|[+-][0-9]{2}:[0-9]{2})?$/.exec(when)
  const bad = (why: string) => new ApiError(400, 'validation_failed', `invalid body: scheduled_for: ${why}`, { field: 'scheduled_for' })
  if (!m) throw bad('not an ISO 8601 date-time')
  if (m[7]) {
    const t = Date.parse(when)
    if (Number.isNaN(t)) throw bad(`${when} is not a date-time`)
    return new Date(t)
  }
  if (!isTimeZone(timeZone)) throw new ApiError(400, 'validation_failed', `invalid body: timezone: unknown time zone ${timeZone}`, { field: 'timezone' })
  const [y, mo, d, h, mi] = [1, 2, 3, 4, 5].map((i) => Number(m[i]))
  const probe = new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!))
  if (probe.getUTCMonth() !== mo! - 1 || probe.getUTCDate() !== d! || h! > 23 || mi! > 59) throw bad(`${when} is not a date-time`)
  return zonedToInstant(timeZone, y!, mo!, d!, h!, mi!)
}
const ContactName = Type.String({ minLength: 1, maxLength: 200, description: 'Given to the agent as {{contact_name}}' })
const ScheduledCallCreate = Type.Object({
  agent_id: Type.String({ format: 'uuid', description: 'The AI agent that places and handles the call' }),
  to_phone_number: E164Number('Who is called'),
  scheduled_for: ScheduledFor,
  timezone: Type.Optional({ ...TimeZone, default: 'UTC' }),
  phone_number_id: Type.Optional(Type.String({ format: 'uuid', description: 'Caller ID: one of the account\'s numbers (default: the agent\'s number, the first number routed to it)' })),
  from: Type.Optional(Type.String({ minLength: 2, maxLength: 16, description: 'Caller ID as a number string the account owns (instead of phone_number_id)' })),
  contact_id: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Your CRM\'s id of the contact: given to the agent as {{contact_id}} (call metadata contact_id)' })),
  contact_name: Type.Optional(ContactName),
  is_callback: Type.Optional(Type.Boolean({ default: false, description: 'A return call: a label kept on the record for listing and reports (the dial is the same; what the agent says comes from callback_context and previous_call_id)' })),
  previous_call_id: Type.Optional(Type.String({ format: 'uuid', description: 'The call that asked for this one: its summary is given to the agent as {{previous_call_summary}}' })),
  previous_call_log_id: Type.Optional(Type.String({ format: 'uuid', description: 'Leadlock\'s name for previous_call_id' })),
  callback_context: Type.Optional(Type.String({ minLength: 1, maxLength: 2000, description: 'What the call is about: given to the agent as {{callback_context}} (its greeting and prompt can use it)' })),
}, { additionalProperties: false })

const ScheduledCallUpdate = Type.Object({
  scheduled_for: Type.Optional(ScheduledFor),
  timezone: Type.Optional(TimeZone),
  contact_name: Type.Optional(Nullable(ContactName)),
}, { additionalProperties: false, minProperties: 1, description: 'Only a pending call can be changed (409 otherwise); status changes go through /cancel and /retry' })

const ScheduledCallRetry = Type.Object({
  scheduled_for: Type.Optional(Iso('When to call again (default: 5 minutes from now)')),
}, { additionalProperties: false })

const Status = StringEnum(SCHEDULED_CALL_STATUSES)
const ScheduledCallSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  account_id: Type.String({ format: 'uuid' }),
  agent_id: Type.String(),
  agent_name: Nullable(Type.String()),
  phone_number_id: Nullable(Type.String()),
  from_phone_number: Type.String(),
  to_phone_number: Type.String(),
  contact_id: Nullable(Type.String()),
  contact_name: Nullable(Type.String()),
  scheduled_for: Timestamp,
  timezone: Type.String(),
  status: Status,
  is_callback: Type.Boolean(),
  previous_call_id: Nullable(Type.String()),
  previous_call_log_id: Nullable(Type.String({ description: 'Same as previous_call_id (Leadlock name)' })),
  callback_context: Nullable(Type.String()),
  call_id: Nullable(Type.String({ description: 'The call placed (GET /v1/calls/:id)' })),
  call_log_id: Nullable(Type.String({ description: 'Same as call_id (Leadlock name)' })),
  attempts: Type.Integer(),
  last_error: Nullable(Type.String()),
  dialed_at: Nullable(Timestamp),
  source: Type.String({ description: 'api, or ai_function (an agent\'s schedule_callback)' }),
  created_at: Timestamp,
  updated_at: Timestamp,
}, { $id: 'ScheduledCall' })

const ListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  cursor: Type.Optional(Type.String({ maxLength: 100 })),
  status: Type.Optional(Status),
  agent_id: Type.Optional(Type.String({ format: 'uuid' })),
  start_date: Type.Optional(Iso('scheduled_for at or after')),
  end_date: Type.Optional(Iso('scheduled_for at or before')),
}, { additionalProperties: false })

function service(deps: ApiDeps): ScheduledCalls {
  if (!deps.scheduledCalls) throw new ApiError(503, 'unavailable', 'scheduled calls are not available on this node')
  return deps.scheduledCalls
}

export const scheduledCallRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.scheduledCalls
  const tags = ['scheduled-calls']
  const read = { scope: 'calls:read' as const }
  const write = { scope: 'calls:write' as const }
  // Agent names per request (a list asks once per agent): a renamed agent shows its new name at once.
  const toApi = async (accountId: string, s: ScheduledCall, names = new Map<string, Promise<string | null>>()): Promise<Static<typeof ScheduledCallSchema>> => {
    if (!names.has(s.agentId)) names.set(s.agentId, deps.store.agents.get(accountId, s.agentId).then((a) => a?.name ?? null))
    const agentName = await names.get(s.agentId)!
    return {
      id: s.id, account_id: s.accountId, agent_id: s.agentId, agent_name: agentName, phone_number_id: s.phoneNumberId, from_phone_number: s.fromPhoneNumber,
      to_phone_number: s.toPhoneNumber, contact_id: s.contactId, contact_name: s.contactName, scheduled_for: s.scheduledFor, timezone: s.timezone,
      status: s.status, is_callback: s.isCallback, previous_call_id: s.previousCallId, previous_call_log_id: s.previousCallId,
      callback_context: s.callbackContext, call_id: s.callId, call_log_id: s.callId, attempts: s.attempts, last_error: s.lastError,
      dialed_at: s.dialedAt, source: s.source, created_at: s.createdAt, updated_at: s.updatedAt,
    }
  }
  const one = async (accountId: string, s: ScheduledCall | null, id: string) => toApi(accountId, found(s, 'scheduled call', id))

  app.post('/scheduled-calls', {
    config: write,
    schema: { tags, summary: 'Schedule an outbound agent call', body: ScheduledCallCreate, response: { 201: ScheduledCallSchema, ...errors(503) } },
  }, async (req, reply) => {
    const b = req.body
    if (b.previous_call_id && b.previous_call_log_id && b.previous_call_id !== b.previous_call_log_id) {
      throw new ApiError(400, 'validation_failed', 'invalid body: previous_call_log_id: differs from previous_call_id (they are one field: give one)', { field: 'previous_call_log_id' })
    }
    const previous = b.previous_call_id ?? b.previous_call_log_id
    const sc = await service(deps).create(req.auth.accountId, {
      agentId: b.agent_id, toPhoneNumber: b.to_phone_number, scheduledFor: instantOf(b.scheduled_for, b.timezone ?? 'UTC'), timezone: b.timezone ?? 'UTC',
      phoneNumberId: b.phone_number_id, from: b.from, contactId: b.contact_id, contactName: b.contact_name, isCallback: b.is_callback,
      previousCallId: previous, callbackContext: b.callback_context,
    })
    return reply.code(201).send(await toApi(req.auth.accountId, sc))
  })

  app.get('/scheduled-calls', {
    config: read,
    schema: { tags, summary: 'List scheduled calls, soonest first', querystring: ListQuery, response: { 200: pageOf(ScheduledCallSchema), ...errors() } },
  }, async (req) => {
    const q = req.query
    const start = q.start_date ? new Date(q.start_date) : undefined
    const end = q.end_date ? new Date(q.end_date) : undefined
    if (start && end && start > end) throw new ApiError(400, 'validation_failed', 'invalid querystring: start_date must not be after end_date', { field: 'start_date' })
    const page = await repo.list(req.auth.accountId, { status: q.status, agentId: q.agent_id, startDate: start, endDate: end }, { limit: q.limit, cursor: q.cursor })
    const names = new Map<string, Promise<string | null>>()
    return { data: await Promise.all(page.data.map((s) => toApi(req.auth.accountId, s, names))), nextCursor: page.nextCursor }
  })

  app.get('/scheduled-calls/:id', { config: read, schema: { tags, summary: 'Get a scheduled call', params: IdParams, response: { 200: ScheduledCallSchema, ...errors(404) } } },
    async (req) => one(req.auth.accountId, await repo.get(req.auth.accountId, req.params.id), req.params.id))

  app.patch('/scheduled-calls/:id', {
    config: write,
    schema: { tags, summary: 'Change a pending scheduled call (409 once it is dialing or over)', params: IdParams, body: ScheduledCallUpdate, response: { 200: ScheduledCallSchema, ...errors(404, 409) } },
  }, async (req) => {
    const b = req.body
    // A wall-clock scheduled_for is read in the zone given with it, else the call's own.
    const zone = b.timezone ?? (b.scheduled_for ? (await repo.get(req.auth.accountId, req.params.id))?.timezone : undefined) ?? 'UTC'
    const sc = await service(deps).update(req.auth.accountId, req.params.id, {
      scheduledFor: b.scheduled_for ? instantOf(b.scheduled_for, zone) : undefined, timezone: b.timezone, contactName: b.contact_name,
    })
    return one(req.auth.accountId, sc, req.params.id)
  })

  app.post('/scheduled-calls/:id/cancel', { config: write, schema: { tags, summary: 'Cancel a pending scheduled call', params: IdParams, response: { 200: ScheduledCallSchema, ...errors(404, 409) } } },
    async (req) => one(req.auth.accountId, await repo.cancel(req.auth.accountId, req.params.id), req.params.id))

  app.post('/scheduled-calls/:id/retry', {
    config: write,
    // An empty body is "retry in 5 minutes".
    preValidation: async (req) => { if (req.body === undefined || req.body === null) req.body = {} },
    schema: { tags, summary: 'Schedule a failed or cancelled call again (default: in 5 minutes)', params: IdParams, body: ScheduledCallRetry, response: { 200: ScheduledCallSchema, ...errors(404, 409) } },
  }, async (req) => {
    const at = req.body.scheduled_for ? new Date(req.body.scheduled_for) : undefined
    return one(req.auth.accountId, await service(deps).retry(req.auth.accountId, req.params.id, at), req.params.id)
  })

  app.post('/scheduled-calls/:id/trigger', { config: write, schema: { tags, summary: 'Dial a pending scheduled call now', params: IdParams, response: { 200: ScheduledCallSchema, ...errors(404, 409) } } },
    async (req) => one(req.auth.accountId, await service(deps).trigger(req.auth.accountId, req.params.id), req.params.id))

  app.delete('/scheduled-calls/:id', { config: write, schema: { tags, summary: 'Delete a scheduled call (409 while it is dialing)', params: IdParams, response: { 204: Type.Null(), ...errors(404, 409) } } },
    async (req, reply) => {
      if (!(await repo.delete(req.auth.accountId, req.params.id))) throw new ApiError(404, 'not_found', `scheduled call ${req.params.id} not found`)
      return reply.code(204).send(null)
    })
}
