import type { FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { IdParams, Nullable, PageQuery, StringEnum, Timestamp, crudResponses, errors, pageOf, patchOf } from '../schemas.ts'
import { found, type ApiDeps, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'
import type { QueueInput } from '../../store/queues.ts'
import { isFinal } from '../../store/calls.ts'
import type { Queuecall } from '../../store/queuecalls.ts'
import { TagIds } from './contact-agents.ts'

/**
 * /v1/queues (VoipBin QueueManagerQueue) and /v1/queuecalls (the callers in
 * them). A flow puts a caller in a queue with `queue_join {queue_id}`
 * (call/flow/verbs/queue-verbs.ts); call/queues/acd.ts offers it to contact
 * agents. Queues: scope agents:manage; queuecalls: calls:read, kick calls:write.
 */

const Ms = (what: string, max: number, dflt: number) => Type.Integer({ minimum: 0, maximum: max, default: dflt, description: `Milliseconds ${what}` })
const QueueCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  detail: Type.Optional(Type.String({ maxLength: 2000 })),
  routing_method: Type.Optional(StringEnum(['random', 'round-robin', 'longest-idle', 'ring-all'] as const, {
    default: 'random',
    description: 'Which available agent is offered a caller: random; round-robin (the one offered a call longest ago, so each in turn); longest-idle (the one available the longest); ring-all (every available agent at once, up to 20; the first to answer takes it)',
  })),
  tag_ids: Type.Optional({ ...TagIds, description: 'The queue offers its callers to contact agents that carry ALL of these (none: every agent of the account); at least one agent must match' }),
  wait_flow_id: Type.Optional(Nullable(Type.String({ format: 'uuid', description: 'The flow a caller hears while waiting, started again each time it ends (music, ${callplane.queuecall.position} announcements); none: silence' }))),
  timeout_flow_id: Type.Optional(Nullable(Type.String({ format: 'uuid', description: 'What runs instead of the rest of the caller\'s flow when wait_timeout passes; none: the caller\'s flow goes on after queue_join' }))),
  wait_timeout: Type.Optional(Ms('a caller waits for an agent before leaving the queue abandoned (0: no limit)', 86_400_000, 0)),
  service_timeout: Type.Optional(Ms('a caller may talk with an agent before the agent is hung up (0: no limit)', 86_400_000, 0)),
  ring_timeout: Type.Optional(Type.Integer({ minimum: 1000, maximum: 600_000, default: 20_000, description: 'Milliseconds an agent rings before the caller is offered to the next (linear agents: per address)' })),
}, { additionalProperties: false })
const QueueUpdate = patchOf(QueueCreate)

const QueueSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), name: Type.String(), detail: Type.String(),
  routing_method: Type.String(), tag_ids: Type.Array(Type.String()), wait_flow_id: Nullable(Type.String()), timeout_flow_id: Nullable(Type.String()),
  wait_timeout: Type.Integer(), service_timeout: Type.Integer(), ring_timeout: Type.Integer(),
  wait_queuecall_ids: Type.Array(Type.String(), { description: 'Callers waiting (or being offered), oldest first' }),
  service_queuecall_ids: Type.Array(Type.String(), { description: 'Callers talking with an agent' }),
  total_incoming_count: Type.Integer(), total_serviced_count: Type.Integer(), total_abandoned_count: Type.Integer(),
  createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'Queue' })

const QueuecallStatus = StringEnum(['initiating', 'waiting', 'connecting', 'kicking', 'service', 'done', 'abandoned'] as const)
const QueuecallSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), queue_id: Type.String({ format: 'uuid' }),
  reference_type: Type.Literal('call'), reference_id: Type.String({ format: 'uuid', description: 'The caller\'s call' }),
  status: QueuecallStatus,
  end_reason: Nullable(Type.String({ description: 'agent-hangup, caller-hangup, service-timeout, wait-timeout, kicked, flow-stopped, bridge-failed, node-restart' })),
  service_agent_id: Nullable(Type.String({ description: 'The contact agent who answered' })),
  offered_agent_ids: Type.Array(Type.String(), { description: 'Agents ringing for it now' }),
  skipped_agent_ids: Type.Array(Type.String(), { description: 'Agents that missed it: offered others first' }),
  duration_waiting: Type.Integer({ description: 'Milliseconds from joining to the answer (or the end, or now)' }),
  duration_service: Type.Integer({ description: 'Milliseconds with the agent' }),
  tm_service: Nullable(Timestamp), tm_end: Nullable(Timestamp), nodeId: Nullable(Type.String()), createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'Queuecall' })

const R = crudResponses(QueueSchema)
const bad = (field: string, message: string) => new ApiError(400, 'invalid_reference', `${field}: ${message}`, { field })

type QueueBody = { name?: string; detail?: string; routing_method?: QueueInput['routingMethod']; tag_ids?: string[]; wait_flow_id?: string | null; timeout_flow_id?: string | null; wait_timeout?: number; service_timeout?: number; ring_timeout?: number }

/** The body as the store takes it, its references checked: flows in the account, some agent matching the tags. */
async function checkedInput(deps: ApiDeps, accountId: string, b: QueueBody): Promise<Partial<QueueInput>> {
  for (const field of ['wait_flow_id', 'timeout_flow_id'] as const) {
    const id = b[field]
    if (id && !(await deps.store.flows.get(accountId, id))) throw bad(field, `no flow ${id} in this account`)
  }
  if (b.tag_ids !== undefined && (await deps.store.contactAgents.countMatching(accountId, b.tag_ids)) === 0) {
    throw bad('tag_ids', b.tag_ids.length
      ? `no contact agent carries all of [${b.tag_ids.join(', ')}]: the queue could never offer a caller`
      : 'this account has no contact agents: create one first (/v1/contact-agents)')
  }
  return {
    ...(b.name !== undefined ? { name: b.name } : {}), ...(b.detail !== undefined ? { detail: b.detail } : {}),
    ...(b.routing_method !== undefined ? { routingMethod: b.routing_method } : {}), ...(b.tag_ids !== undefined ? { tagIds: b.tag_ids } : {}),
    ...(b.wait_flow_id !== undefined ? { waitFlowId: b.wait_flow_id } : {}), ...(b.timeout_flow_id !== undefined ? { timeoutFlowId: b.timeout_flow_id } : {}),
    ...(b.wait_timeout !== undefined ? { waitTimeout: b.wait_timeout } : {}), ...(b.service_timeout !== undefined ? { serviceTimeout: b.service_timeout } : {}),
    ...(b.ring_timeout !== undefined ? { ringTimeout: b.ring_timeout } : {}),
  }
}

export const queueRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.queues
  const config = { scope: 'agents:manage' as const }
  const tags = ['queues']

  app.get('/queues', { config, schema: { tags, summary: 'List queues, newest first', querystring: PageQuery, response: R.list } },
    async (req) => repo.list(req.auth.accountId, req.query))
  app.post('/queues', { config, schema: { tags, summary: 'Create an ACD queue (tag_ids must match at least one contact agent)', body: QueueCreate, response: R.created } },
    async (req, reply) => {
      const input = await checkedInput(deps, req.auth.accountId, { tag_ids: [], ...(req.body as QueueBody) })
      return reply.code(201).send(await repo.create(req.auth.accountId, { ...input, name: req.body.name }))
    })
  app.get('/queues/:id', { config, schema: { tags, summary: 'Get a queue: its callers and counters', params: IdParams, response: R.one } },
    async (req) => found(await repo.get(req.auth.accountId, req.params.id), 'queue', req.params.id))
  app.patch('/queues/:id', { config, schema: { tags, summary: 'Update a queue (callers already waiting keep the settings they joined with)', params: IdParams, body: QueueUpdate, response: R.updated } },
    async (req) => {
      found(await repo.get(req.auth.accountId, req.params.id), 'queue', req.params.id)
      const input = await checkedInput(deps, req.auth.accountId, req.body as QueueBody)
      return found(await repo.update(req.auth.accountId, req.params.id, input), 'queue', req.params.id)
    })
  app.delete('/queues/:id', { config, schema: { tags, summary: 'Delete a queue (409 while callers are in it)', params: IdParams, response: R.deleted } },
    async (req, reply) => {
      found((await repo.remove(req.auth.accountId, req.params.id)) || null, 'queue', req.params.id)
      return reply.code(204).send(null)
    })

  const calls = deps.store.queuecalls
  const read = { scope: 'calls:read' as const }
  const write = { scope: 'calls:write' as const }
  const qtags = ['queuecalls']
  app.get('/queuecalls', {
    config: read,
    schema: {
      tags: qtags, summary: 'List queuecalls (callers in queues), newest first',
      querystring: Type.Object({
        ...PageQuery.properties, queue_id: Type.Optional(Type.String({ format: 'uuid' })), status: Type.Optional(QueuecallStatus),
        reference_id: Type.Optional(Type.String({ format: 'uuid', description: 'The caller\'s call' })),
      }, { additionalProperties: false }),
      response: { 200: pageOf(QueuecallSchema), ...errors() },
    },
  }, async (req) => {
    const { limit, cursor, queue_id, status, reference_id } = req.query
    return calls.list(req.auth.accountId, { queueId: queue_id, status, referenceId: reference_id }, { limit, cursor })
  })
  app.get('/queuecalls/:id', { config: read, schema: { tags: qtags, summary: 'Get a queuecall', params: IdParams, response: { 200: QueuecallSchema, ...errors(404) } } },
    async (req) => found(await calls.get(req.auth.accountId, req.params.id), 'queuecall', req.params.id))

  /** Kicks a live queuecall: `kicking` now, `done` (end_reason kicked) once the node holding its caller let it go. */
  const kick = async (accountId: string, qc: Queuecall): Promise<Queuecall> => {
    if (qc.status === 'done' || qc.status === 'abandoned') throw new ApiError(409, 'invalid_state', `queuecall ${qc.id} has already ended (${qc.status})`)
    const kicked = (await calls.kick(accountId, qc.id)) ?? qc
    // A caller no node runs any more (its call ended with a node that died) is let go here.
    const call = await deps.store.calls.get(accountId, qc.reference_id)
    if (!call || isFinal(call.status)) return (await calls.finish(qc.id, 'done', 'kicked')) ?? kicked
    return kicked
  }
  app.post('/queuecalls/:id/kick', { config: write, schema: { tags: qtags, summary: 'Take a caller out of its queue (an agent talking with it is hung up); the caller\'s flow goes on', params: IdParams, response: { 200: QueuecallSchema, ...errors(404, 409) } } },
    async (req) => kick(req.auth.accountId, found(await calls.get(req.auth.accountId, req.params.id), 'queuecall', req.params.id)))
  app.post('/queuecalls/reference_id/:id/kick', { config: write, schema: { tags: qtags, summary: 'Kick the live queuecall of a call (by the call\'s id)', params: IdParams, response: { 200: QueuecallSchema, ...errors(404, 409) } } },
    async (req) => kick(req.auth.accountId, found(await calls.liveByReference(req.auth.accountId, req.params.id), 'live queuecall of call', req.params.id)))
}
