import type { FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { E164Number, Nullable, PageQuery, Timestamp, errors, pageOf } from '../schemas.ts'
import { notFoundError, type RouteOptions } from '../deps.ts'
import type { DoNotCallEntry } from '../../store/do-not-call.ts'

/**
 * /v1/do-not-call: the account's do-not-call list. A listed number is never
 * dialled on the account's behalf: POST /v1/calls answers 403 `do_not_call`,
 * scheduled calls and sequence steps end `failed`/skip with `do_not_call`,
 * campaigns skip it, and every other originate (groupcalls, a flow's
 * connect/call) is refused (422 `rejected`, details.code `do_not_call`).
 * Agents with the `add_to_do_not_call` built-in tool list the caller
 * themselves. Events `do_not_call.added`, `do_not_call.removed`.
 */

const DncEntrySchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  accountId: Type.String({ format: 'uuid' }),
  number: Type.String({ description: 'E.164' }),
  reason: Nullable(Type.String()),
  source: Type.String({ description: 'Who listed it: api, agent (the add_to_do_not_call tool during a call), campaign, sequence' }),
  callId: Nullable(Type.String({ description: 'The call in which an agent listed it' })),
  createdAt: Timestamp,
}, { $id: 'DoNotCallEntry' })

const DncAdd = Type.Object({
  number: E164Number('The number never to dial'),
  reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500, description: 'Why (e.g. "asked not to be called")' })),
}, { additionalProperties: false })

const NumberParams = Type.Object({ number: E164Number('A listed number (URL-encoded: %2B for +)') })

const DncCheck = Type.Object({
  number: Type.String(),
  listed: Type.Boolean(),
  entry: Nullable(DncEntrySchema),
})

const toApi = (e: DoNotCallEntry) => ({ id: e.id, accountId: e.accountId, number: e.number, reason: e.reason, source: e.source, callId: e.callId, createdAt: e.createdAt })

export const doNotCallRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.doNotCall
  const tags = ['do-not-call']
  const read = { scope: 'calls:read' as const }
  const write = { scope: 'calls:write' as const }

  app.post('/do-not-call', {
    config: write,
    schema: { tags, summary: 'Put a number on the do-not-call list (201; 200 with the existing entry when it was already listed)', body: DncAdd, response: { 200: DncEntrySchema, 201: DncEntrySchema, ...errors() } },
  }, async (req, reply) => {
    const { created, ...entry } = await repo.add(req.auth.accountId, req.body.number, { reason: req.body.reason ?? null, source: 'api' })
    return reply.code(created ? 201 : 200).send(toApi(entry))
  })

  app.get('/do-not-call', {
    config: read,
    schema: { tags, summary: 'List the do-not-call list, oldest first', querystring: Type.Object(PageQuery.properties, { additionalProperties: false }), response: { 200: pageOf(DncEntrySchema), ...errors() } },
  }, async (req) => {
    const page = await repo.list(req.auth.accountId, req.query)
    return { ...page, data: page.data.map(toApi) }
  })

  app.get('/do-not-call/:number', {
    config: read,
    schema: { tags, summary: 'Is this number on the list? (200 either way: `listed`)', params: NumberParams, response: { 200: DncCheck, ...errors() } },
  }, async (req) => {
    const entry = await repo.get(req.auth.accountId, req.params.number)
    return { number: req.params.number, listed: entry !== null, entry: entry ? toApi(entry) : null }
  })

  app.delete('/do-not-call/:number', {
    config: write,
    schema: { tags, summary: 'Take a number off the list', params: NumberParams, response: { 204: Type.Null(), ...errors(404) } },
  }, async (req, reply) => {
    if (!(await repo.remove(req.auth.accountId, req.params.number))) throw notFoundError('do-not-call entry', req.params.number)
    return reply.code(204).send(null)
  })
}
