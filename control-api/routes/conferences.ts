import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { Type } from '@sinclair/typebox'
import { isFinal } from '../../store/calls.ts'
import { IdParams, PageQuery, Timestamp, errors, pageOf } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'
import { controlOrUnavailable, mapControlError } from '../call-control-access.ts'

export const ConferenceSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), name: Type.String(),
  status: Type.Union([Type.Literal('init'), Type.Literal('in-progress'), Type.Literal('completed')]),
  maxParticipants: Type.Integer(), record: Type.Boolean(), participantCount: Type.Integer(), createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'Conference' })
const ConferenceCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200, description: 'Friendly name' }),
  maxParticipants: Type.Optional(Type.Integer({ minimum: 2, maximum: 250 })),
  record: Type.Optional(Type.Boolean({ description: 'Record the mixed conference from its first participant on: a recording resource (conferenceId set), call.recording.ready when the room empties' })),
}, { additionalProperties: false })
const ParticipantParams = Type.Object({ id: Type.String({ format: 'uuid' }), callId: Type.String({ format: 'uuid' }) })
const Accepted = Type.Object({ status: Type.Literal('accepted') }, { additionalProperties: true })

/** /v1/conferences (Telefon shape): rooms, join/kick live calls, record. */
export const conferenceRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.conferences
  const read = { scope: 'calls:read' as const }
  const write = { scope: 'calls:write' as const }
  const tags = ['conferences']
  app.get('/conferences', { config: read, schema: { tags, summary: 'List conferences', querystring: PageQuery, response: { 200: pageOf(ConferenceSchema), ...errors() } } },
    async (req) => repo.list(req.auth.accountId, req.query))
  app.post('/conferences', { config: write, schema: { tags, summary: 'Create a conference room', body: ConferenceCreate, response: { 201: ConferenceSchema, ...errors() } } },
    async (req, reply) => reply.code(201).send(await repo.create(req.auth.accountId, req.body)))
  app.get('/conferences/:id', { config: read, schema: { tags, summary: 'Get a conference', params: IdParams, response: { 200: ConferenceSchema, ...errors(404) } } },
    async (req) => found(await repo.get(req.auth.accountId, req.params.id), 'conference', req.params.id))
  app.delete('/conferences/:id', { config: write, schema: { tags, summary: 'Delete a conference', params: IdParams, response: { 204: Type.Null(), ...errors(404) } } },
    async (req, reply) => {
      found((await repo.delete(req.auth.accountId, req.params.id)) || null, 'conference', req.params.id)
      return reply.code(204).send(null)
    })
  app.post('/conferences/:id/participants', {
    config: write,
    schema: { tags, summary: 'Move a live call into the conference', params: IdParams,
      body: Type.Object({ callId: Type.String({ format: 'uuid' }), muted: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      response: { 202: Accepted, ...errors(404, 409, 422, 501, 503) } },
  }, async (req, reply) => {
    const conf = found(await repo.get(req.auth.accountId, req.params.id), 'conference', req.params.id)
    const call = found(await deps.store.calls.get(req.auth.accountId, req.body.callId), 'call', req.body.callId)
    if (isFinal(call.status)) throw new ApiError(409, 'call_not_active', `call ${call.id} has ended (${call.status})`)
    if (conf.status === 'completed') throw new ApiError(409, 'invalid_state', `conference ${conf.id} is completed`)
    if (conf.participantCount >= conf.maxParticipants) throw new ApiError(409, 'conference_full', `conference ${conf.id} has ${conf.maxParticipants} participants already`)
    const cc = controlOrUnavailable(deps, 'conferenceJoin')
    const r = await cc.conferenceJoin!(call, conf.id, { muted: req.body.muted }).catch(mapControlError)
    return reply.code(202).send({ ...r, status: 'accepted' })
  })
  app.delete('/conferences/:id/participants/:callId', {
    config: write, schema: { tags, summary: 'Remove a call from the conference', params: ParticipantParams, response: { 202: Accepted, ...errors(404, 409, 501, 503) } },
  }, async (req, reply) => {
    found(await repo.get(req.auth.accountId, req.params.id), 'conference', req.params.id)
    const call = found(await deps.store.calls.get(req.auth.accountId, req.params.callId), 'call', req.params.callId)
    if (call.conferenceId !== req.params.id) throw new ApiError(404, 'not_found', `call ${call.id} is not in conference ${req.params.id}`)
    const cc = controlOrUnavailable(deps, 'conferenceKick')
    const r = await cc.conferenceKick!(call, req.params.id).catch(mapControlError)
    return reply.code(202).send({ ...r, status: 'accepted' })
  })
  app.post('/conferences/:id/record', {
    config: write,
    schema: { tags, summary: 'Start or stop recording the conference', params: IdParams,
      body: Type.Object({ enabled: Type.Boolean() }, { additionalProperties: false }), response: { 202: Accepted, ...errors(404, 409, 501, 503) } },
  }, async (req, reply) => {
    found(await repo.get(req.auth.accountId, req.params.id), 'conference', req.params.id)
    const cc = controlOrUnavailable(deps, 'conferenceRecord')
    const r = await cc.conferenceRecord!(req.params.id, req.auth.accountId, req.body.enabled).catch(mapControlError)
    return reply.code(202).send({ ...r, status: 'accepted' })
  })
}
