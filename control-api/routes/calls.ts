import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { Type, type TSchema } from '@sinclair/typebox'
import { CALL_STATUSES, isFinal, type Call } from '../../store/calls.ts'
import { PhoneNumberOrSipUri, IdParams, Metadata, Nullable, PageQuery, StringEnum, Timestamp, errors, pageOf } from '../schemas.ts'
import { found, type ApiDeps, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'
import { EncodedBody, sendEncoded } from '../encoded-body.ts'
import { controlOrUnavailable, mapControlError } from '../call-control-access.ts'
import { checkTenantUrl } from '../tenant-url.ts'
import { CallControlError, PLAY_TONES, type CallControl, type PlayRequest, type PlayTone } from '../../call/call-control.ts'
import { RecordingSchema } from './recordings.ts'
import { ActiveflowSchema, FlowActionSchema, checkQueueRefs, checkedActions } from './flows.ts'
import { MAX_ACTIONS } from '../../call/flow/index.ts'
import type { CallProgram } from '../../store/calls.ts'
import { DO_NOT_CALL_CODE } from '../../call/outbound/do-not-call.ts'
import { CallStatusCallbackFields, StatusCallbackSchema, statusCallbackOf } from '../status-callback-input.ts'

const Status = StringEnum(CALL_STATUSES)
const Direction = Type.Union([Type.Literal('inbound'), Type.Literal('outbound')])
const Party = PhoneNumberOrSipUri('Party')

const CallFields = {
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), direction: Direction, status: Status,
  from: Type.String(), to: Type.String(), agentId: Nullable(Type.String()), numberId: Nullable(Type.String()), trunkId: Nullable(Type.String()),
  extensionId: Nullable(Type.String()), conferenceId: Nullable(Type.String()), sipCallId: Nullable(Type.String()), nodeId: Nullable(Type.String()),
  endedReason: Nullable(Type.String()), hangupBy: Nullable(Type.String()), summary: Nullable(Type.String()),
  transcript: Type.Array(Type.Object({
    role: Type.String(), text: Type.String(), offsetMs: Type.Optional(Type.Number()), final: Type.Optional(Type.Boolean()),
    startMs: Type.Optional(Type.Number()), endMs: Type.Optional(Type.Number()),
    interrupted: Type.Optional(Type.Boolean({ description: 'Cut short by the caller (barge-in): text is what was played out before the interruption' })),
    source: Type.Optional(Type.String({ description: 'Where the line came from: the STT engine, "dtmf", "api-say" (POST /v1/calls/{id}/say)' })),
    tool: Type.Optional(Type.Object({ name: Type.String(), ok: Type.Boolean(), durationMs: Type.Number() })),
  })),
  timings: Type.Array(Type.Record(Type.String(), Type.Unknown())),
  quality: Nullable(Type.Record(Type.String(), Type.Unknown(), {
    description: 'Media quality from RTP/RTCP (jitterMs, lossPct, rttMs, mos, packetsIn, packetsOut, ...): updated every few seconds while the call runs, final once it ended; null until media flows',
  })),
  metadata: Type.Record(Type.String(), Type.Unknown()),
  createdAt: Timestamp, ringingAt: Nullable(Timestamp), answeredAt: Nullable(Timestamp), endedAt: Nullable(Timestamp),
  duration: Nullable(Type.Integer({ description: 'Seconds from answer to end' })), updatedAt: Timestamp,
  statusCallback: StatusCallbackSchema,
}
export const CallSchema = Type.Object(CallFields, { $id: 'Call' })
const CallDetail = Type.Object({
  ...CallFields, recordings: Type.Array(RecordingSchema),
  activeflows: Type.Array(ActiveflowSchema, { description: 'The flows, webhook-app verbs and API verb lists that ran on the call: each executed action with start, end and outcome, the variables, and the error of a failed app' }),
})

const CallListQuery = Type.Object({
  ...PageQuery.properties,
  status: Type.Optional(Status),
  direction: Type.Optional(Direction),
  number: Type.Optional(Type.String({ maxLength: 320, description: 'Matches from or to' })),
  agentId: Type.Optional(Type.String({ format: 'uuid' })),
  after: Type.Optional(Type.String({ format: 'date-time', description: 'Created at or after' })),
  before: Type.Optional(Type.String({ format: 'date-time', description: 'Created before' })),
}, { additionalProperties: false })

export const OriginateBody = Type.Object({
  to: Party,
  from: Party,
  agentId: Type.Optional(Type.String({ format: 'uuid', description: 'Agent that handles the call once answered' })),
  trunkId: Type.Optional(Type.String({ format: 'uuid', description: 'Force a trunk (else the carrier routes decide)' })),
  timeout: Type.Optional(Type.Integer({ minimum: 5, maximum: 600, default: 30, description: 'Seconds to wait for answer' })),
  record: Type.Optional(Type.Boolean({ default: false, description: 'Record the call from answer to hangup (both parties mixed): a recording on the call, call.recording.ready when it ends' })),
  metadata: Type.Optional(Metadata),
  flowId: Type.Optional(Type.String({ format: 'uuid', description: 'A stored flow (/v1/flows) the call runs once answered' })),
  actions: Type.Optional(Type.Array(FlowActionSchema, { maxItems: MAX_ACTIONS, description: 'Verbs the call runs once answered (VoipBin FlowManagerAction list), instead of a stored flow' })),
  url: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 2000, description: 'Telefon: a webhook app asked for the verbs on answer (POSTed the call, signed with the account signing secret; https unless insecure webhooks are allowed)' })),
  method: Type.Optional(Type.Union([Type.Literal('POST'), Type.Literal('GET')], { description: 'How url is asked (default POST)' })),
  ...CallStatusCallbackFields,
}, { additionalProperties: false })

/** The one program a POST /v1/calls names (agentId, flowId, actions and url exclude each other). */
function programOf(b: { agentId?: string | undefined; flowId?: string | undefined; actions?: unknown[] | undefined; url?: string | undefined; method?: 'POST' | 'GET' | undefined }): CallProgram | undefined {
  const given = (['agentId', 'flowId', 'actions', 'url'] as const).filter((k) => b[k] !== undefined)
  if (given.length > 1) throw new ApiError(400, 'validation_failed', `invalid body: give one of agentId, flowId, actions and url, not ${given.join(' and ')}`)
  if (b.method !== undefined && b.url === undefined) throw new ApiError(400, 'validation_failed', 'invalid body: method goes with url')
  if (b.flowId) return { flowId: b.flowId }
  if (b.actions) return { actions: checkedActions(b.actions) }
  if (b.url) return { url: b.url, method: b.method ?? 'POST' }
  return undefined
}

const RunActionsBody = Type.Object({
  actions: Type.Array(FlowActionSchema, { minItems: 1, maxItems: MAX_ACTIONS }),
  mode: Type.Optional(Type.Union([Type.Literal('queue'), Type.Literal('interrupt')], {
    default: 'queue', description: 'With a flow running on the call: queue runs them after its current verb, interrupt stops the current verb\'s audio and drops the rest of the flow. Without one they run at once either way.',
  })),
}, { additionalProperties: false })

const ActionAccepted = Type.Object({ callId: Type.String(), action: Type.String(), status: Type.Literal('accepted') }, { additionalProperties: true })
/**
 * VoipBin's mute directions, seen from the call: `in` = the call cannot hear
 * incoming audio (what the engine, its agent, a bridge or a conference sends
 * it); `out` = the call's audio is not sent to others (the agent, a bridged
 * call or conference hear silence from it, recordings too); `both` = both.
 */
const MuteDirection = Type.Union([Type.Literal('in'), Type.Literal('out'), Type.Literal('both')], {
  default: 'both',
  description: 'in: the call cannot hear incoming audio; out: the call\'s audio is not sent to others (agent, bridged call, conference); both: silence both ways',
})

const MUTE_DESCRIPTION = 'Directions as VoipBin documents them, seen from the call: `in` = the call cannot hear incoming audio (the agent, '
  + 'prompts, a bridged call or conference go silent for it); `out` = the call\'s audio is not sent to others (the agent, a bridged call, '
  + 'a conference and recordings get silence from it); `both` = silence both ways (the default). Unmute takes the same directions.'

/** Each call action: its body schema and how it reaches CallControl. */
interface ActionDef {
  path: string
  summary: string
  description?: string
  body?: TSchema
  method: keyof CallControl
  invoke: (cc: CallControl, call: Call, body: any, deps: ApiDeps, req: FastifyRequest) => Promise<Record<string, unknown> | void>
}

const ACTIONS: ActionDef[] = [
  { path: 'hangup', summary: 'Hang up', method: 'hangup', body: Type.Object({ reason: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false }),
    invoke: (cc, call, b) => cc.hangup!(call, { reason: b?.reason }) },
  { path: 'say', summary: 'Speak text into the call (TTS)', method: 'say',
    body: Type.Object({ text: Type.String({ minLength: 1, maxLength: 5000 }), voice: Type.Optional(Type.String({ maxLength: 200 })),
      language: Type.Optional(Type.String({ maxLength: 35 })), bargeIn: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
    invoke: (cc, call, b) => cc.say!(call, b) },
  { path: 'play', summary: 'Play an audio file (URL) or a generated tone into the call', method: 'play',
    body: Type.Object({
      url: Type.Optional(Type.String({ format: 'uri', pattern: '^(https?|file)://', description: 'WAV or MP3; file:// only under the media directory' })),
      tone: Type.Optional(StringEnum(PLAY_TONES, { description: 'A generated tone instead of a file' })),
      loop: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'Times to play the file' })),
      durationMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000, description: 'How long a tone plays (default: 250 ms for beep, 30 s for the cadenced tones)' })),
    }, { additionalProperties: false }),
    invoke: (cc, call, b) => cc.play!(call, playRequest(b)) },
  { path: 'dtmf', summary: 'Send DTMF digits (RFC 4733, or SIP INFO)', method: 'sendDtmf',
    body: Type.Object({ digits: Type.String({ pattern: '^[0-9A-Da-d*#,wW]{1,64}$' }), durationMs: Type.Optional(Type.Integer({ minimum: 40, maximum: 2000 })),
      method: Type.Optional(Type.Union([Type.Literal('rfc4733'), Type.Literal('info')])) }, { additionalProperties: false }),
    invoke: (cc, call, b) => cc.sendDtmf!(call, b) },
  { path: 'record/start', summary: 'Start recording', method: 'startRecording',
    body: Type.Object({ format: Type.Optional(Type.Literal('wav')), channels: Type.Optional(Type.Union([Type.Literal('mono'), Type.Literal('dual')])) }, { additionalProperties: false }),
    invoke: (cc, call, b) => cc.startRecording!(call, b ?? {}) },
  { path: 'record/stop', summary: 'Stop recording', method: 'stopRecording', invoke: (cc, call) => cc.stopRecording!(call) },
  { path: 'hold', summary: 'Put on hold (re-INVITE sendonly)', method: 'hold', invoke: (cc, call) => cc.hold!(call) },
  { path: 'unhold', summary: 'Take off hold', method: 'unhold', invoke: (cc, call) => cc.unhold!(call) },
  { path: 'mute', summary: 'Mute audio in a direction', method: 'mute', description: MUTE_DESCRIPTION,
    body: Type.Object({ direction: Type.Optional(MuteDirection) }, { additionalProperties: false }),
    invoke: (cc, call, b) => cc.mute!(call, { direction: b?.direction ?? 'both' }) },
  { path: 'unmute', summary: 'Unmute audio in a direction', method: 'unmute', description: MUTE_DESCRIPTION,
    body: Type.Object({ direction: Type.Optional(MuteDirection) }, { additionalProperties: false }),
    invoke: (cc, call, b) => cc.unmute!(call, { direction: b?.direction ?? 'both' }) },
  { path: 'transfer', summary: 'Transfer (REFER or re-dial) to a number or SIP URI', method: 'transfer',
    body: Type.Object({ to: Party, mode: Type.Optional(Type.Union([Type.Literal('blind'), Type.Literal('attended')])) }, { additionalProperties: false }),
    invoke: (cc, call, b) => cc.transfer!(call, b) },
  { path: 'bridge', summary: 'Bridge this call with another live call', method: 'bridge',
    body: Type.Object({ callId: Type.String({ format: 'uuid' }) }, { additionalProperties: false }),
    invoke: async (cc, call, b, deps, req) => {
      const other = found(await deps.store.calls.get(req.auth.accountId, b.callId), 'call', b.callId)
      if (other.id === call.id) throw new ApiError(400, 'validation_failed', 'invalid body: /callId must be another call')
      if (isFinal(other.status)) throw new ApiError(409, 'call_not_active', `call ${other.id} has ended (${other.status})`)
      return cc.bridge!(call, other)
    } },
]

/** A play body names exactly one of `url` and `tone`; `loop` goes with files, `durationMs` with tones. */
function playRequest(b: { url?: string; tone?: PlayTone; loop?: number; durationMs?: number }): PlayRequest {
  if ((b.url === undefined) === (b.tone === undefined)) throw new ApiError(400, 'validation_failed', 'invalid body: give exactly one of url and tone')
  if (b.tone !== undefined) {
    if (b.loop !== undefined) throw new ApiError(400, 'validation_failed', 'invalid body: loop applies to url, not tone (use durationMs)')
    return { tone: b.tone, durationMs: b.durationMs }
  }
  if (b.durationMs !== undefined) throw new ApiError(400, 'validation_failed', 'invalid body: durationMs applies to tone, not url (use loop)')
  return { url: b.url!, loop: b.loop }
}

/** /v1/calls: call records (calls:read) and live call control (calls:write). */
export const callRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const { calls } = deps.store
  const read = { scope: 'calls:read' as const }
  const write = { scope: 'calls:write' as const }
  const tags = ['calls']
  // Bodies are compressed up front only when the read cache will keep them (TTL 0 disables it).
  const cached = deps.readCache.ttlMs > 0

  const liveCall = async (accountId: string, id: string): Promise<Call> => {
    const call = found(await calls.get(accountId, id), 'call', id)
    if (isFinal(call.status)) throw new ApiError(409, 'call_not_active', `call ${id} has ended (${call.status})`, { status: call.status })
    return call
  }

  app.get('/calls', { config: read, schema: { tags, summary: 'List calls, newest first', querystring: CallListQuery, response: { 200: pageOf(CallSchema), ...errors() } } },
    async (req, reply) => {
      const { limit, cursor, ...filter } = req.query
      if (filter.after && filter.before && filter.after >= filter.before) throw new ApiError(400, 'validation_failed', 'invalid querystring: after must be earlier than before')
      // The cache keeps the page serialized by the response schema and gzip-encoded
      // (see EncodedBody), so a hit neither queries, serializes nor compresses.
      const body = await deps.readCache.get<EncodedBody>(`list?${JSON.stringify(req.query)}`, req.auth.accountId, null,
        async (previous) => EncodedBody.of(Buffer.from(reply.serialize(await calls.list(req.auth.accountId, filter, { limit, cursor })) as string), { eager: cached, previous }))
      return sendEncoded(req, reply, body)
    })
  app.get('/calls/:id', { config: read, schema: { tags, summary: 'Get a call with transcript, timings, quality and recordings', params: IdParams, response: { 200: CallDetail, ...errors(404) } } },
    async (req, reply) => {
      // Finished calls are cached briefly (see ReadCache); live ones are always read.
      const { body } = await deps.readCache.get<{ body: EncodedBody; final: boolean }>(`call/${req.params.id}`, req.auth.accountId, req.params.id,
        async (previous) => {
          const detail = { ...found(await calls.getDetail(req.auth.accountId, req.params.id), 'call', req.params.id), activeflows: await deps.store.activeflows.forCall(req.params.id) }
          const final = isFinal(detail.status)
          // Only a body that will be cached is compressed up front; a live call's is compressed if its one reader asks.
          return { body: await EncodedBody.of(Buffer.from(reply.serialize(detail) as string), { eager: cached && final, previous: previous?.body }), final }
        }, (d) => d.final)
      return sendEncoded(req, reply, body)
    })
  app.post('/calls', { config: write, schema: { tags, summary: 'Place an outbound call', body: OriginateBody, response: { 201: CallSchema, ...errors(409, 422, 503) } } },
    async (req, reply) => {
      const b = req.body
      if (b.agentId && !(await deps.store.agents.get(req.auth.accountId, b.agentId))) throw new ApiError(400, 'invalid_reference', 'agentId: no such agent in this account', { field: 'agentId' })
      if (b.trunkId && !(await deps.store.trunks.get(req.auth.accountId, b.trunkId))) throw new ApiError(400, 'invalid_reference', 'trunkId: no such trunk in this account', { field: 'trunkId' })
      const program = programOf(b)
      if (b.url !== undefined) await checkTenantUrl(deps, b.url, 'url')
      if (b.flowId && !(await deps.store.flows.get(req.auth.accountId, b.flowId))) throw new ApiError(400, 'invalid_reference', 'flowId: no such flow in this account', { field: 'flowId' })
      const statusCallback = await statusCallbackOf(deps, b)
      const cc = controlOrUnavailable(deps, 'originate')
      const call = await cc.originate!({
        accountId: req.auth.accountId, from: b.from, to: b.to, agentId: b.agentId, trunkId: b.trunkId,
        timeoutSec: b.timeout ?? 30, record: b.record ?? false, metadata: b.metadata, program,
        ...(statusCallback ? { statusCallback } : {}),
      }).catch((err: unknown) => {
        // A listed number is the account's own rule, not a dial that failed: 403 naming the list.
        if (err instanceof CallControlError && (err.details as { code?: string } | undefined)?.code === DO_NOT_CALL_CODE) {
          throw new ApiError(403, DO_NOT_CALL_CODE, `to: ${err.message}`, { field: 'to', ...(err.details as object) })
        }
        return mapControlError(err)
      })
      return reply.code(201).send(call)
    })
  app.delete('/calls/:id', { config: write, schema: { tags, summary: 'End a call (Telefon shape)', params: IdParams, response: { 204: Type.Null(), ...errors(404, 409, 503) } } },
    async (req, reply) => {
      const call = await liveCall(req.auth.accountId, req.params.id)
      const cc = controlOrUnavailable(deps, 'hangup')
      await cc.hangup!(call, { reason: 'api' }).catch(mapControlError)
      return reply.code(204).send(null)
    })

  app.post('/calls/:id/actions', {
    config: write,
    schema: { tags, summary: 'Run verbs on a live call (the flow verbs of /v1/flows)', params: IdParams, body: RunActionsBody,
      response: { 202: Type.Object({ callId: Type.String(), activeflowId: Type.String(), mode: Type.String() }), ...errors(404, 409, 503) } },
  }, async (req, reply) => {
    const call = await liveCall(req.auth.accountId, req.params.id)
    if (call.status !== 'in-progress') throw new ApiError(409, 'call_not_answered', `call ${call.id} is ${call.status}: verbs run on answered calls`)
    const actions = checkedActions(req.body.actions)
    await checkQueueRefs(deps.store, req.auth.accountId, actions)
    // Runs where the call's flows run (another node's through the relay).
    const r = await controlOrUnavailable(deps, 'runActions').runActions!(call, { actions, mode: req.body.mode ?? 'queue' }).catch(mapControlError)
    return reply.code(202).send({ callId: call.id, ...r })
  })

  for (const a of ACTIONS) {
    app.post(`/calls/:id/${a.path}`, {
      config: write,
      // Actions whose fields are all optional accept an empty body.
      preValidation: async (req) => {
        if (req.body === undefined || req.body === null) req.body = {}
      },
      schema: { tags, summary: a.summary, ...(a.description ? { description: a.description } : {}), params: IdParams, ...(a.body ? { body: a.body } : {}), response: { 202: ActionAccepted, ...errors(404, 409, 422, 501, 503) } },
    }, async (req, reply) => {
      const call = await liveCall(req.auth.accountId, req.params.id)
      const cc = controlOrUnavailable(deps, a.method)
      const result = await a.invoke(cc, call, req.body, deps, req).catch(mapControlError)
      return reply.code(202).send({ ...(result ?? {}), callId: call.id, action: a.path, status: 'accepted' })
    })
  }
}
