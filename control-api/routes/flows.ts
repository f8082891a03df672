import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { Type } from '@sinclair/typebox'
import { IdParams, Nullable, PageQuery, Timestamp, crudResponses, errors, pageOf, patchOf } from '../schemas.ts'
import { found, type ApiDeps, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'
import { controlOrUnavailable, mapControlError } from '../call-control-access.ts'
import { isFinal } from '../../store/calls.ts'
import { MAX_ACTIONS, checkActions, verbTypes, type FlowAction } from '../../call/flow/index.ts'

/**
 * One action as the API documents it (VoipBin FlowManagerAction). The body
 * schema stays loose on purpose: call/flow's checkActions checks each
 * action against its verb's option schema and answers 400 naming the
 * action and the field, which a generic schema error cannot.
 */
const verbList = verbTypes()
export const FlowActionSchema = Type.Object({
  id: Type.Optional(Type.String({ maxLength: 100, description: 'Set it when a goto/branch/condition targets this action (letters, digits, _ . : -); generated otherwise' })),
  next_id: Type.Optional(Type.String({ maxLength: 100, description: 'The action to run next (default: the next in the list)' })),
  type: Type.String({ maxLength: 64, description: `The verb: ${verbList.join(', ')}. Each verb's options are in the components as FlowVerbOption_<type>.` }),
  option: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'The verb\'s options (FlowVerbOption_<type>); ${name} in a string is replaced by the variable' })),
}, { additionalProperties: true, $id: 'FlowAction' })
const Actions = Type.Array(FlowActionSchema, { maxItems: MAX_ACTIONS })

export const FlowCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  detail: Type.Optional(Type.String({ maxLength: 2000 })),
  actions: Actions,
  on_complete_flow_id: Type.Optional(Nullable(Type.String({ format: 'uuid', description: 'A flow to run when this one runs out of actions' }))),
}, { additionalProperties: false })
export const FlowUpdate = patchOf(FlowCreate)
export const FlowSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), name: Type.String(), detail: Type.String(),
  actions: Type.Array(FlowActionSchema), on_complete_flow_id: Nullable(Type.String()), createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'Flow' })

const Executed = Type.Object({ id: Type.String(), type: Type.String(), startedAt: Timestamp, endedAt: Type.Optional(Timestamp), outcome: Type.Optional(Type.String()) })
export const ActiveflowSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), callId: Nullable(Type.String()), flowId: Nullable(Type.String()),
  referenceType: Type.String({ description: 'call: the call\'s program; api: verbs run by POST /v1/calls/{id}/actions' }),
  status: Type.Union([Type.Literal('running'), Type.Literal('ended')]),
  currentAction: Nullable(Type.Object({ id: Type.String(), type: Type.String() })),
  executedActions: Type.Array(Executed, { description: 'What ran, newest last: verb, start, end and outcome' }),
  variables: Type.Record(Type.String(), Type.String()),
  error: Nullable(Type.String({ description: 'Why the run failed (app-error)' })),
  nodeId: Nullable(Type.String()), createdAt: Timestamp, updatedAt: Timestamp, endedAt: Nullable(Timestamp),
}, { $id: 'Activeflow' })

const R = crudResponses(FlowSchema)

/** The stored form of checked actions, or a 400 that names each bad action and field. */
export function checkedActions(input: unknown, field = 'actions'): FlowAction[] {
  const r = checkActions(input)
  if (!r.ok) {
    throw new ApiError(400, 'validation_failed', `invalid body: ${r.problems.map((p) => p.replace(/^actions/, field)).join('; ')}`,
      r.problems.map((p) => ({ path: `/${field}`, message: p })))
  }
  return r.actions
}

/**
 * Queues the list's `queue_join`s name must be the account's: a flow that
 * would send callers to no queue is refused when it is stored (400 naming
 * the action), not when a caller reaches it. A `${variable}` queue_id is
 * checked when it runs.
 */
export async function checkQueueRefs(store: ApiDeps['store'], accountId: string, actions: Array<{ type: string; option?: Record<string, unknown> }>, field = 'actions'): Promise<void> {
  const problems: string[] = []
  for (const [i, a] of actions.entries()) {
    const id = a.type === 'queue_join' ? a.option?.queue_id : undefined
    if (typeof id !== 'string' || id.includes('${')) continue
    if (!(await store.queues.get(accountId, id))) problems.push(`${field}[${i}] option/queue_id: no queue ${id} in this account`)
  }
  if (problems.length) throw new ApiError(400, 'invalid_reference', `invalid body: ${problems.join('; ')}`, problems.map((p) => ({ path: `/${field}`, message: p })))
}

type FlowBody = { name?: string; detail?: string; actions?: unknown[]; on_complete_flow_id?: string | null }
const toInput = (b: FlowBody) => ({
  ...(b.name !== undefined ? { name: b.name } : {}), ...(b.detail !== undefined ? { detail: b.detail } : {}),
  ...(b.actions !== undefined ? { actions: checkedActions(b.actions) } : {}),
  ...(b.on_complete_flow_id !== undefined ? { onCompleteFlowId: b.on_complete_flow_id } : {}),
})
const toApi = <T extends { onCompleteFlowId: string | null }>(f: T) => {
  const { onCompleteFlowId, ...rest } = f
  return { ...rest, on_complete_flow_id: onCompleteFlowId }
}

/**
 * /v1/flows (VoipBin's flows: `name`, `detail`, `actions[]`, `on_complete_flow_id`)
 * and /v1/activeflows (their runs on calls). Flows: scope flows:manage;
 * activeflows: calls:read to look, calls:write to stop.
 */
export const flowRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.flows
  const config = { scope: 'flows:manage' as const }
  const tags = ['flows']

  app.get('/flows', { config, schema: { tags, summary: 'List flows', querystring: PageQuery, response: R.list } },
    async (req) => {
      const page = await repo.list(req.auth.accountId, req.query)
      return { ...page, data: page.data.map(toApi) }
    })
  app.post('/flows', { config, schema: { tags, summary: 'Create a flow (its actions are checked: a bad one is a 400 naming the action and field)', body: FlowCreate, response: R.created } },
    async (req, reply) => {
      const actions = checkedActions(req.body.actions)
      await checkQueueRefs(deps.store, req.auth.accountId, actions)
      return reply.code(201).send(toApi(await repo.create(req.auth.accountId, { ...toInput(req.body), name: req.body.name, actions })))
    })
  app.get('/flows/:id', { config, schema: { tags, summary: 'Get a flow', params: IdParams, response: R.one } },
    async (req) => toApi(found(await repo.get(req.auth.accountId, req.params.id), 'flow', req.params.id)))
  app.put('/flows/:id', { config, schema: { tags, summary: 'Replace a flow (VoipBin PUT)', params: IdParams, body: FlowCreate, response: R.updated } },
    async (req) => {
      const input = toInput(req.body)
      if (input.actions) await checkQueueRefs(deps.store, req.auth.accountId, input.actions)
      return toApi(found(await repo.update(req.auth.accountId, req.params.id, { detail: '', onCompleteFlowId: null, ...input }), 'flow', req.params.id))
    })
  app.patch('/flows/:id', { config, schema: { tags, summary: 'Update a flow', params: IdParams, body: FlowUpdate, response: R.updated } },
    async (req) => {
      const input = toInput(req.body as FlowBody)
      if (input.actions) await checkQueueRefs(deps.store, req.auth.accountId, input.actions)
      return toApi(found(await repo.update(req.auth.accountId, req.params.id, input), 'flow', req.params.id))
    })
  app.delete('/flows/:id', { config, schema: { tags, summary: 'Delete a flow (calls already running it go on)', params: IdParams, response: R.deleted } }, async (req, reply) => {
    found((await repo.delete(req.auth.accountId, req.params.id)) || null, 'flow', req.params.id)
    return reply.code(204).send(null)
  })

  const runs = deps.store.activeflows
  const atags = ['activeflows']
  const live = (a: { id: string; status: string }) => {
    // A run going on this node: its state now, fresher than the last write.
    const state = a.status === 'running' ? deps.programs?.liveState(a.id) : null
    return state ? { ...a, ...state, error: state.error ?? null } : a
  }
  app.get('/activeflows', {
    config: { scope: 'calls:read' as const },
    schema: { tags: atags, summary: 'List flow runs, newest first', querystring: Type.Object({ ...PageQuery.properties, callId: Type.Optional(Type.String({ format: 'uuid' })), status: Type.Optional(Type.Union([Type.Literal('running'), Type.Literal('ended')])) }, { additionalProperties: false }), response: { 200: pageOf(ActiveflowSchema), ...errors() } },
  }, async (req) => {
    const { limit, cursor, ...filter } = req.query
    const page = await runs.list(req.auth.accountId, filter, { limit, cursor })
    return { ...page, data: page.data.map(live) }
  })
  app.get('/activeflows/:id', { config: { scope: 'calls:read' as const }, schema: { tags: atags, summary: 'Get a flow run: current action, executed actions, variables', params: IdParams, response: { 200: ActiveflowSchema, ...errors(404) } } },
    async (req) => live(found(await runs.get(req.auth.accountId, req.params.id), 'activeflow', req.params.id)))
  app.post('/activeflows/:id/stop', { config: { scope: 'calls:write' as const }, schema: { tags: atags, summary: 'Stop a flow run (the call stays up; hang it up with DELETE /v1/calls/{id})', params: IdParams, response: { 200: ActiveflowSchema, ...errors(404, 409) } } },
    async (req) => {
      const run = found(await runs.get(req.auth.accountId, req.params.id), 'activeflow', req.params.id)
      const call = run.callId ? await deps.store.calls.get(req.auth.accountId, run.callId) : null
      if (run.status === 'running' && call && !isFinal(call.status)) {
        // Stopped where it runs: this node, or the call's node through the relay.
        await controlOrUnavailable(deps, 'stopFlow').stopFlow!(call, { activeflowId: run.id }).catch(mapControlError)
      }
      return found(await runs.get(req.auth.accountId, req.params.id), 'activeflow', req.params.id)
    })
}
