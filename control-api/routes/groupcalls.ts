import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { IdParams, Nullable, PageQuery, Timestamp, errors, pageOf } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'
import type { Groupcall, DialAddress } from '../../store/groupcalls.ts'
import { CallControlError } from '../../call/call-control.ts'
import { addressProblems, DialAddressSchema, expandAgentAddresses, SourceAddressSchema } from '../../call/dial-address.ts'
import { hangupGroupcall, resolveTargets, startGroupcall } from '../../call/groupcalls.ts'
import { MAX_ACTIONS } from '../../call/flow/index.ts'
import { FlowActionSchema, checkedActions } from './flows.ts'
import { controlOrUnavailable } from '../call-control-access.ts'

/**
 * /v1/groupcalls (VoipBin CallManagerGroupcall): destinations dialled at
 * once (ring_all) or in turn (linear); the first to answer runs the flow or
 * actions, the others are hung up (answer_method hangup_others). A flow's
 * `connect` is listed here too, with master_call_id its call.
 */

const GroupcallCreate = Type.Object({
  source: SourceAddressSchema,
  destinations: Type.Array(DialAddressSchema, { minItems: 1, maxItems: 20 }),
  flow_id: Type.Optional(Type.String({ format: 'uuid', description: 'The stored flow the answered call runs' })),
  actions: Type.Optional(Type.Array(FlowActionSchema, { minItems: 1, maxItems: MAX_ACTIONS, description: 'Inline actions the answered call runs (instead of flow_id)' })),
  ring_method: Type.Optional(Type.Union([Type.Literal(''), Type.Literal('ring_all'), Type.Literal('linear')], { default: 'ring_all', description: 'ring_all (or empty): all at once; linear: one after another, each for `timeout`' })),
  answer_method: Type.Optional(Type.Union([Type.Literal(''), Type.Literal('hangup_others')], { default: 'hangup_others', description: 'hangup_others (or empty): the first answer wins, the other legs are hung up' })),
  timeout: Type.Optional(Type.Integer({ minimum: 1000, maximum: 600_000, default: 30_000, description: 'Milliseconds: ring_all: how long all ring; linear: how long each rings' })),
}, { additionalProperties: false })

const GroupcallSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  accountId: Type.String({ format: 'uuid' }),
  status: Type.Union([Type.Literal('progressing'), Type.Literal('hangingup'), Type.Literal('hangup')], { description: 'progressing while it dials and while the answered call lives; hangingup once asked to end; hangup when all its calls ended' }),
  source: SourceAddressSchema,
  destinations: Type.Array(DialAddressSchema),
  flow_id: Nullable(Type.String()),
  actions: Nullable(Type.Array(FlowActionSchema)),
  ring_method: Type.String(),
  answer_method: Type.String(),
  timeout: Type.Integer({ description: 'Milliseconds' }),
  master_call_id: Nullable(Type.String({ description: 'The flow call a connect dialled for' })),
  answer_call_id: Nullable(Type.String({ description: 'The call that answered' })),
  call_ids: Type.Array(Type.String(), { description: 'Every leg placed, in order' }),
  dial_index: Type.Integer({ description: 'The destination being dialled (linear)' }),
  call_count: Type.Integer({ description: 'Legs still ringing' }),
  outcome: Nullable(Type.Union(['answered', 'no-answer', 'busy', 'failed', 'canceled'].map((s) => Type.Literal(s)), { description: 'How the dial ended' })),
  nodeId: Nullable(Type.String()),
  createdAt: Timestamp, updatedAt: Timestamp, endedAt: Nullable(Timestamp),
}, { $id: 'Groupcall' })

const toApi = (g: Groupcall): Static<typeof GroupcallSchema> => ({
  id: g.id, accountId: g.accountId, status: g.status, source: g.source as Static<typeof SourceAddressSchema>, destinations: g.destinations,
  flow_id: g.flowId, actions: g.actions, ring_method: g.ringMethod, answer_method: g.answerMethod, timeout: g.timeoutMs,
  master_call_id: g.masterCallId, answer_call_id: g.answerCallId, call_ids: g.callIds, dial_index: g.dialIndex, call_count: g.callCount,
  outcome: g.outcome, nodeId: g.nodeId, createdAt: g.createdAt, updatedAt: g.updatedAt, endedAt: g.endedAt,
})

const invalid = (problems: string[]) => new ApiError(400, 'validation_failed', `invalid body: ${problems.join('; ')}`,
  problems.map((p) => ({ path: `/${p.split(':')[0]}`, message: p })))

export const groupcallRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.groupcalls
  const tags = ['groupcalls']
  const read = { scope: 'calls:read' as const }
  const write = { scope: 'calls:write' as const }

  app.post('/groupcalls', {
    config: write,
    schema: { tags, summary: 'Dial several destinations; the first to answer runs the flow (or actions), the others are hung up', body: GroupcallCreate, response: { 201: GroupcallSchema, ...errors(409, 422, 503) } },
  }, async (req, reply) => {
    const b = req.body
    const accountId = req.auth.accountId
    const problems = (b.destinations as DialAddress[]).flatMap((d, i) => addressProblems(d, `destinations/${i}`))
    if ((b.flow_id === undefined) === (b.actions === undefined)) problems.push('flow_id: give exactly one of flow_id and actions')
    if (problems.length) throw invalid(problems)
    const actions = b.actions ? checkedActions(b.actions) : null
    if (b.flow_id && !(await deps.store.flows.get(accountId, b.flow_id))) throw new ApiError(400, 'invalid_reference', 'flow_id: no such flow in this account', { field: 'flow_id' })
    const destinations = await expandAgentAddresses(deps.store, accountId, b.destinations as DialAddress[])
    const targets = await resolveTargets(deps.store, accountId, destinations)
    const unresolved = targets.flatMap((t, i) => ('error' in t ? [`destinations/${i}: ${t.error}`] : []))
    if (unresolved.length) throw invalid(unresolved)
    const cc = controlOrUnavailable(deps, 'originate')
    const { record, dial } = await startGroupcall({ store: deps.store, control: cc, log: req.log, nodeId: null }, {
      accountId, source: b.source, destinations, targets, ringMethod: b.ring_method === 'linear' ? 'linear' : 'ring_all',
      timeoutMs: b.timeout ?? 30_000, program: b.flow_id ? { flowId: b.flow_id } : { actions: actions! },
    })
    if (!(await dial.placed)) {
      // Nothing could be dialled (caller ID not the account's, no route, not registered): the error of the
      // first destination, as POST /v1/calls answers it; the record stays, its outcome failed.
      const err = (await dial.result).error
      const details = { groupcallId: record.id }
      if (err instanceof CallControlError) throw new ApiError(err.statusCode, err.code, err.message, { ...(err.details as object | undefined), ...details })
      throw new ApiError(422, 'rejected', err?.message ?? 'no destination could be dialled', details)
    }
    return reply.code(201).send(toApi((await repo.get(accountId, record.id)) ?? record))
  })

  app.get('/groupcalls', {
    config: read,
    schema: {
      tags, summary: 'List groupcalls, newest first',
      querystring: Type.Object({ ...PageQuery.properties, status: Type.Optional(Type.Union([Type.Literal('progressing'), Type.Literal('hangingup'), Type.Literal('hangup')])), master_call_id: Type.Optional(Type.String({ format: 'uuid', description: 'The connects of one flow call' })) }, { additionalProperties: false }),
      response: { 200: pageOf(GroupcallSchema), ...errors() },
    },
  }, async (req) => {
    const { limit, cursor, status, master_call_id } = req.query
    const page = await repo.list(req.auth.accountId, { status, masterCallId: master_call_id }, { limit, cursor })
    return { ...page, data: page.data.map(toApi) }
  })

  app.get('/groupcalls/:id', { config: read, schema: { tags, summary: 'Get a groupcall: its legs, who answered, how it ended', params: IdParams, response: { 200: GroupcallSchema, ...errors(404) } } },
    async (req) => toApi(found(await repo.get(req.auth.accountId, req.params.id), 'groupcall', req.params.id)))

  app.post('/groupcalls/:id/hangup', { config: write, schema: { tags, summary: 'Hang up every call of the groupcall (ringing ones are canceled, the answered one too)', params: IdParams, response: { 200: GroupcallSchema, ...errors(404, 503) } } },
    async (req) => {
      const gc = found(await repo.get(req.auth.accountId, req.params.id), 'groupcall', req.params.id)
      const cc = controlOrUnavailable(deps, 'hangup')
      return toApi(await hangupGroupcall({ store: deps.store, control: cc }, gc))
    })
}
