import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { Type } from '@sinclair/typebox'
import { PhoneNumber, IdParams, Nullable, PageQuery, Timestamp, crudResponses, patchOf } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'

const NumberString = PhoneNumber('The number callers dial')
const Target = Type.Object({
  type: Type.Union([Type.Literal('agent'), Type.Literal('extension'), Type.Literal('sip'), Type.Literal('conference'), Type.Literal('none')]),
  id: Type.Optional(Type.String({ format: 'uuid', description: 'agent, extension or conference id' })),
  uri: Type.Optional(Type.String({ pattern: '^sips?:', maxLength: 500, description: 'for type sip' })),
}, { additionalProperties: false })

export const NumberCreate = Type.Object({
  number: NumberString, name: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
  trunkId: Type.Optional(Nullable(Type.String({ format: 'uuid' }))), target: Type.Optional(Target),
}, { additionalProperties: false })
export const NumberUpdate = patchOf(NumberCreate)
export const NumberSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), number: Type.String(), name: Nullable(Type.String()),
  trunkId: Nullable(Type.String()), target: Target, createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'PhoneNumber' })
const R = crudResponses(NumberSchema)

/** /v1/numbers: DIDs and internal numbers, each pointing at an agent, extension, SIP URI or conference. Scope numbers:manage. */
export const numberRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.numbers
  const config = { scope: 'numbers:manage' as const }
  const tags = ['numbers']
  app.get('/numbers', { config, schema: { tags, summary: 'List numbers', querystring: PageQuery, response: R.list } },
    async (req) => repo.list(req.auth.accountId, req.query))
  app.post('/numbers', { config, schema: { tags, summary: 'Provision a number', body: NumberCreate, response: R.created } },
    async (req, reply) => reply.code(201).send(await repo.create(req.auth.accountId, req.body)))
  app.get('/numbers/:id', { config, schema: { tags, summary: 'Get a number', params: IdParams, response: R.one } },
    async (req) => found(await repo.get(req.auth.accountId, req.params.id), 'number', req.params.id))
  app.patch('/numbers/:id', { config, schema: { tags, summary: 'Update a number', params: IdParams, body: NumberUpdate, response: R.updated } },
    async (req) => found(await repo.update(req.auth.accountId, req.params.id, req.body), 'number', req.params.id))
  app.delete('/numbers/:id', { config, schema: { tags, summary: 'Release a number', params: IdParams, response: R.deleted } }, async (req, reply) => {
    found((await repo.delete(req.auth.accountId, req.params.id)) || null, 'number', req.params.id)
    return reply.code(204).send(null)
  })
}
