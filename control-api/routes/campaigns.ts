import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { IdParams, Nullable, PageQuery, StringEnum, Timestamp, crudResponses, errors, pageOf, patchOf } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'
import { FlowActionSchema, checkedActions } from './flows.ts'
import { MAX_ACTIONS } from '../../call/flow/index.ts'
import { OperatingHoursSchema, checkOperatingHours } from '../../call/outbound/operating-hours.ts'
import type { Campaign, CampaignInput, CampaignStats, CampaignStatus } from '../../store/campaigns.ts'
import { CAMPAIGNCALL_OUTCOMES, type Campaigncall } from '../../store/campaigncalls.ts'
import type { StoredAction } from '../../store/flows.ts'

/**
 * /v1/campaigns (VoipBin CampaignManagerCampaign) and /v1/campaigncalls
 * (CampaignManagerCampaigncall, one per dial attempt). A campaign dials the
 * targets of its outdial with its outplan; an answered call runs the AI
 * agent (`type` call, `agent_id`) or the flow (`type` flow, `flow_id` or
 * `actions`). Dialling happens within `operating_hours` (the contact's own
 * time zone when it has one), at most `calls_per_second` and
 * `max_concurrent_calls`, with the `amd` behaviour on answering machines.
 * `status` run|pause|stop is set with POST (or PUT) /v1/campaigns/:id/status;
 * a new campaign is `stop`. Scope: calls:write (it places calls), calls:read to look.
 */

const Uuid = (description: string) => Type.String({ format: 'uuid', description })

const AmdSchema = Type.Object({
  enabled: Type.Optional(Type.Boolean({ description: 'Default true. false: no detection on the campaign\'s calls (even if the agent has its own amd)' })),
  behavior: Type.Optional(StringEnum(['hangup', 'static_message', 'agent_decides'] as const, {
    description: 'Leadlock amd_voicemail_behavior (default hangup). hangup: a machine is hung up on (outcome machine, tried again per the outplan); static_message: the message is said after the beep, then hang up (outcome voicemail, a success); agent_decides: the agent (or the flow, reading ${callplane.amd.result}) goes on',
  })),
  message: Type.Optional(Type.String({ minLength: 1, maxLength: 2000, description: 'static_message: what is left on the voicemail' })),
}, { additionalProperties: false, description: 'Answering-machine detection on the campaign\'s calls' })

export const CampaignCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  detail: Type.Optional(Type.String({ maxLength: 2000 })),
  type: StringEnum(['call', 'flow'] as const, { description: 'call: an AI agent (agent_id) talks to whoever answers; flow: the call runs flow_id or actions' }),
  agent_id: Type.Optional(Uuid('type call: the AI agent (/v1/agents)')),
  flow_id: Type.Optional(Uuid('type flow: the stored flow (/v1/flows)')),
  actions: Type.Optional(Type.Array(FlowActionSchema, { minItems: 1, maxItems: MAX_ACTIONS, description: 'type flow: inline actions instead of flow_id' })),
  outplan_id: Uuid('How to dial (/v1/outplans)'),
  outdial_id: Uuid('Whom to dial (/v1/outdials)'),
  operating_hours: Type.Optional(Nullable(OperatingHoursSchema)),
  calls_per_second: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 100, default: 1, description: 'Pacing: new calls per second, across every engine node' })),
  max_concurrent_calls: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 10, description: 'Attempts ringing or on a call at once, across every node (each node runs as many dial jobs as its campaigns\' ceilings need)' })),
  end_handle: Type.Optional(StringEnum(['stop', 'continue'] as const, { default: 'stop', description: 'When every target is done: stop (status stop, reason finished) or continue (keep running: targets added later are dialled)' })),
  amd: Type.Optional(Nullable(AmdSchema)),
}, { additionalProperties: false })
const CampaignUpdate = patchOf(CampaignCreate, { nullClears: true })

const StatsSchema = Type.Object({
  targets: Type.Integer({ description: 'Targets on the outdial' }),
  targets_done: Type.Integer({ description: 'Targets with no attempt left (reached, out of attempts, skipped)' }),
  campaigncalls: Type.Integer({ description: 'Attempts made (do-not-call skips included)' }),
  in_progress: Type.Integer({ description: 'Attempts dialling or on a call now' }),
  outcomes: Type.Record(Type.String(), Type.Integer(), { description: `Finished attempts by outcome: ${CAMPAIGNCALL_OUTCOMES.join(', ')}` }),
})
const CampaignSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }),
  name: Type.String(), detail: Type.String(), type: Type.String(),
  agent_id: Nullable(Type.String()), flow_id: Nullable(Type.String()), actions: Nullable(Type.Array(FlowActionSchema)),
  outplan_id: Type.String(), outdial_id: Type.String(), operating_hours: Nullable(OperatingHoursSchema),
  calls_per_second: Type.Number(), max_concurrent_calls: Type.Integer(), end_handle: Type.String(),
  amd: Nullable(Type.Object({ enabled: Type.Boolean(), behavior: Type.String(), message: Type.Optional(Type.String()) })),
  status: StringEnum(['run', 'pause', 'stop'] as const),
  status_reason: Nullable(Type.String({ description: 'Why the engine changed the status: finished, or what is missing (a deleted agent or flow)' })),
  stats: Type.Optional(StatsSchema),
  createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'Campaign' })

const CampaigncallSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }),
  campaign_id: Type.String(), outplan_id: Type.String(), outdial_id: Type.String(), outdial_target_id: Type.String(),
  call_id: Nullable(Type.String({ description: 'The call placed (absent while dialling, and for do-not-call skips)' })),
  reference_type: Type.String({ description: 'VoipBin: call' }), reference_id: Nullable(Type.String({ description: 'VoipBin\'s name for call_id' })),
  source: Type.String(), destination: Type.String(), destination_index: Type.Integer(), try_count: Type.Integer({ description: 'Which attempt at the target (1 = first)' }),
  status: StringEnum(['dialing', 'progressing', 'done'] as const),
  result: StringEnum(['', 'success', 'fail'] as const),
  outcome: Nullable(StringEnum(CAMPAIGNCALL_OUTCOMES, { description: 'answered / voicemail (success); busy, no-answer, failed, machine (tried again while attempts are left); dnc-skipped (never dialled); node-lost (the engine node holding the call died: settled by another node; tried again only if it was never answered)' })),
  nodeId: Nullable(Type.String()), createdAt: Timestamp, updatedAt: Timestamp, endedAt: Nullable(Timestamp),
}, { $id: 'Campaigncall' })

const toApi = (c: Campaign, stats?: CampaignStats): Static<typeof CampaignSchema> => ({
  id: c.id, accountId: c.accountId, name: c.name, detail: c.detail, type: c.type, agent_id: c.agentId, flow_id: c.flowId, actions: c.actions,
  outplan_id: c.outplanId, outdial_id: c.outdialId, operating_hours: c.operatingHours, calls_per_second: c.callsPerSecond,
  max_concurrent_calls: c.maxConcurrentCalls, end_handle: c.endHandle,
  amd: c.amd ? { enabled: c.amd.enabled, behavior: c.amd.behavior, ...(c.amd.message ? { message: c.amd.message } : {}) } : null,
  status: c.status, status_reason: c.statusReason,
  ...(stats ? { stats: { targets: stats.targets, targets_done: stats.targetsDone, campaigncalls: stats.attempts, in_progress: stats.inProgress, outcomes: stats.outcomes } } : {}),
  createdAt: c.createdAt, updatedAt: c.updatedAt,
})
const toCampaigncall = (cc: Campaigncall): Static<typeof CampaigncallSchema> => ({
  id: cc.id, accountId: cc.accountId, campaign_id: cc.campaignId, outplan_id: cc.outplanId, outdial_id: cc.outdialId, outdial_target_id: cc.outdialTargetId,
  call_id: cc.callId, reference_type: 'call', reference_id: cc.callId, source: cc.source, destination: cc.destination, destination_index: cc.destinationIndex,
  try_count: cc.tryCount, status: cc.status, result: cc.result, outcome: cc.outcome, nodeId: cc.nodeId, createdAt: cc.createdAt, updatedAt: cc.updatedAt, endedAt: cc.endedAt,
})

type Body = Partial<Static<typeof CampaignCreate>>

/** The whole campaign as it would be (a PATCH merged over the stored one), checked: 400 naming each bad field. */
function checkedInput(b: Body, prev: Campaign | null): CampaignInput {
  const pick = <K extends keyof Body, T>(k: K, stored: T): Exclude<Body[K], undefined> | T => (b[k] !== undefined ? b[k] as Exclude<Body[K], undefined> : stored)
  const type = pick('type', prev?.type)!
  const agentId = pick('agent_id', prev?.agentId ?? null)
  const flowId = pick('flow_id', prev?.flowId ?? null)
  const rawActions = pick('actions', prev?.actions ?? null)
  const amdIn = pick('amd', prev?.amd ?? null)
  const hours = pick('operating_hours', prev?.operatingHours ?? null)
  const problems: string[] = []
  if (type === 'call') {
    if (!agentId) problems.push('agent_id: type call needs the agent that talks')
    if (flowId) problems.push('flow_id: only with type flow')
    if (rawActions) problems.push('actions: only with type flow')
  } else {
    if (agentId) problems.push('agent_id: only with type call (a flow reaches an agent with ai_talk)')
    if (!flowId === !rawActions) problems.push('flow_id: type flow needs exactly one of flow_id and actions')
  }
  if (hours) problems.push(...checkOperatingHours(hours, 'operating_hours'))
  const amd = amdIn ? { enabled: amdIn.enabled ?? true, behavior: amdIn.behavior ?? 'hangup', ...(amdIn.message ? { message: amdIn.message } : {}) } : null
  if (amd?.behavior === 'static_message' && !amd.message) problems.push('amd.message: static_message needs the message to leave')
  if (amd && amd.behavior !== 'static_message' && amd.message) problems.push('amd.message: only with behavior static_message')
  if (problems.length) {
    throw new ApiError(400, 'validation_failed', `invalid body: ${problems.join('; ')}`, problems.map((p) => ({ path: `/${p.split(':')[0]!.replace(/\./g, '/')}`, message: p })))
  }
  const actions = rawActions ? (b.actions !== undefined ? checkedActions(rawActions) as StoredAction[] : rawActions as StoredAction[]) : null
  return {
    name: pick('name', prev?.name)!, detail: pick('detail', prev?.detail ?? ''), type,
    agentId: type === 'call' ? agentId : null, flowId: type === 'flow' ? flowId : null, actions: type === 'flow' ? actions : null,
    outplanId: pick('outplan_id', prev?.outplanId)!, outdialId: pick('outdial_id', prev?.outdialId)!,
    operatingHours: hours, callsPerSecond: pick('calls_per_second', prev?.callsPerSecond ?? 1), maxConcurrentCalls: pick('max_concurrent_calls', prev?.maxConcurrentCalls ?? 10),
    endHandle: pick('end_handle', prev?.endHandle ?? 'stop'), amd,
  }
}

const R = crudResponses(CampaignSchema)
const StatusBody = Type.Object({ status: StringEnum(['run', 'pause', 'stop'] as const, { description: 'run: dial (again); pause/stop: no new dials, calls under way go on' }) }, { additionalProperties: false })

export const campaignRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.campaigns
  const tags = ['campaigns']
  const read = { scope: 'calls:read' as const }
  const write = { scope: 'calls:write' as const }
  const withStats = async (c: Campaign) => toApi(c, await repo.stats(c))

  app.get('/campaigns', {
    config: read,
    schema: { tags, summary: 'List campaigns, newest first', querystring: Type.Object({ ...PageQuery.properties, status: Type.Optional(StringEnum(['run', 'pause', 'stop'] as const)) }, { additionalProperties: false }), response: R.list },
  }, async (req) => {
    const { limit, cursor, status } = req.query
    const page = await repo.list(req.auth.accountId, { status }, { limit, cursor })
    return { ...page, data: page.data.map((c) => toApi(c)) }
  })
  app.post('/campaigns', { config: write, schema: { tags, summary: 'Create a campaign (status stop: POST /v1/campaigns/{id}/status {"status":"run"} starts it)', body: CampaignCreate, response: R.created } },
    async (req, reply) => reply.code(201).send(await withStats(await repo.create(req.auth.accountId, checkedInput(req.body, null)))))
  app.get('/campaigns/:id', { config: read, schema: { tags, summary: 'Get a campaign with its stats', params: IdParams, response: R.one } },
    async (req) => withStats(found(await repo.get(req.auth.accountId, req.params.id), 'campaign', req.params.id)))
  app.patch('/campaigns/:id', { config: write, schema: { tags, summary: 'Update a campaign (pacing, hours and amd apply to the next dial)', params: IdParams, body: CampaignUpdate, response: R.updated } },
    async (req) => {
      const prev = found(await repo.get(req.auth.accountId, req.params.id), 'campaign', req.params.id)
      const b = req.body as Body & Record<string, unknown>
      // Its progress is per target of its outdial: another list would leave those targets armed and the new ones never seeded.
      if (b.outdial_id !== undefined && b.outdial_id !== prev.outdialId && await repo.hasRun(prev.id)) {
        throw new ApiError(409, 'invalid_state', 'outdial_id: a campaign that has run keeps its outdial (add targets to it, or create another campaign)', { field: 'outdial_id' })
      }
      // null clears an optional field (operating hours, amd): the merge reads it as "none".
      const merged = checkedInput(b, { ...prev, ...(b.operating_hours === null ? { operatingHours: null } : {}), ...(b.amd === null ? { amd: null } : {}) })
      const updated = found(await repo.update(req.auth.accountId, req.params.id, merged), 'campaign', req.params.id)
      // Jobs waiting for a slot of the old pace, or for the old hours' opening, look again.
      if (updated.callsPerSecond !== prev.callsPerSecond || JSON.stringify(updated.operatingHours) !== JSON.stringify(prev.operatingHours)) await deps.campaigns?.rearm(updated.id)
      return withStats(updated)
    })
  app.delete('/campaigns/:id', { config: write, schema: { tags, summary: 'Delete a campaign and its campaigncalls (409 while it runs)', params: IdParams, response: R.deleted } }, async (req, reply) => {
    found((await repo.delete(req.auth.accountId, req.params.id)) || null, 'campaign', req.params.id)
    return reply.code(204).send(null)
  })

  const setStatus = async (accountId: string, id: string, status: CampaignStatus) => {
    const c = found(await repo.get(accountId, id), 'campaign', id)
    const dialer = deps.campaigns
    if (!dialer) throw new ApiError(503, 'unavailable', 'the campaign dialer is not available on this node')
    if (status === 'run') {
      // Never run into nothing: what it would dial into must still exist.
      if (c.type === 'call' && !(c.agentId && await deps.store.agents.get(accountId, c.agentId))) throw new ApiError(400, 'invalid_reference', 'agent_id: the campaign\'s agent no longer exists; PATCH another', { field: 'agent_id' })
      if (c.type === 'flow' && c.flowId && !(await deps.store.flows.get(accountId, c.flowId))) throw new ApiError(400, 'invalid_reference', 'flow_id: the campaign\'s flow no longer exists; PATCH another', { field: 'flow_id' })
    }
    return withStats(await dialer.setStatus(c, status))
  }
  const statusSchema = { tags, summary: 'Set a campaign\'s status: run (dial; re-arms after pause/stop), pause or stop (no new dials; calls under way go on)', params: IdParams, body: StatusBody, response: { 200: CampaignSchema, ...errors(404, 503) } }
  app.post('/campaigns/:id/status', { config: write, schema: statusSchema }, async (req) => setStatus(req.auth.accountId, req.params.id, req.body.status))
  app.put('/campaigns/:id/status', { config: write, schema: { ...statusSchema, summary: 'VoipBin\'s form of POST /v1/campaigns/{id}/status' } }, async (req) => setStatus(req.auth.accountId, req.params.id, req.body.status))

  app.get('/campaigncalls', {
    config: read,
    schema: {
      tags, summary: 'List campaign attempts, newest first',
      querystring: Type.Object({
        ...PageQuery.properties, campaign_id: Type.Optional(Type.String({ format: 'uuid' })), outdial_target_id: Type.Optional(Type.String({ format: 'uuid' })),
        status: Type.Optional(StringEnum(['dialing', 'progressing', 'done'] as const)),
      }, { additionalProperties: false }),
      response: { 200: pageOf(CampaigncallSchema), ...errors() },
    },
  }, async (req) => {
    const { limit, cursor, campaign_id, outdial_target_id, status } = req.query
    const page = await deps.store.campaigncalls.list(req.auth.accountId, { campaignId: campaign_id, outdialTargetId: outdial_target_id, status }, { limit, cursor })
    return { ...page, data: page.data.map(toCampaigncall) }
  })
  app.get('/campaigncalls/:id', { config: read, schema: { tags, summary: 'Get a campaign attempt', params: IdParams, response: { 200: CampaigncallSchema, ...errors(404) } } },
    async (req) => toCampaigncall(found(await deps.store.campaigncalls.get(req.auth.accountId, req.params.id), 'campaigncall', req.params.id)))
}
