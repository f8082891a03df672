import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { Type } from '@sinclair/typebox'
import { PhoneNumber, IdParams, Nullable, PageQuery, Timestamp, crudResponses, patchOf } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'

const Ext = Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$', description: 'SIP username, e.g. 201' })
export const ExtensionCreate = Type.Object({
  extension: Ext,
  password: Type.String({ minLength: 8, maxLength: 256, description: 'Write-only; stored as digest HA1' }),
  name: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
  description: Type.Optional(Nullable(Type.String({ maxLength: 1000 }))),
  callerId: Type.Optional(Nullable(PhoneNumber('Caller id presented on calls from this extension'))),
}, { additionalProperties: false })
export const ExtensionUpdate = patchOf(ExtensionCreate)
export const ExtensionSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), extension: Type.String(), name: Nullable(Type.String()),
  description: Nullable(Type.String()), callerId: Nullable(Type.String()), realm: Type.String(), createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'Extension' })
const R = crudResponses(ExtensionSchema)

/** /v1/extensions: SIP users that register to the engine. Scope numbers:manage. */
export const extensionRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.extensions
  const config = { scope: 'numbers:manage' as const }
  const tags = ['extensions']
  app.get('/extensions', { config, schema: { tags, summary: 'List extensions', querystring: PageQuery, response: R.list } },
    async (req) => repo.list(req.auth.accountId, req.query))
  app.post('/extensions', { config, schema: { tags, summary: 'Create an extension', body: ExtensionCreate, response: R.created } },
    async (req, reply) => reply.code(201).send(await repo.create(req.auth.accountId, req.body)))
  app.get('/extensions/:id', { config, schema: { tags, summary: 'Get an extension', params: IdParams, response: R.one } },
    async (req) => found(await repo.get(req.auth.accountId, req.params.id), 'extension', req.params.id))
  app.patch('/extensions/:id', { config, schema: { tags, summary: 'Update an extension (renaming needs a new password)', params: IdParams, body: ExtensionUpdate, response: R.updated } },
    async (req) => {
      if (req.body.extension !== undefined && req.body.password === undefined) {
        throw new ApiError(400, 'validation_failed', 'invalid body: changing /extension needs /password too (the stored digest binds the username)', [{ path: '/password' }])
      }
      return found(await repo.update(req.auth.accountId, req.params.id, req.body), 'extension', req.params.id)
    })
  app.delete('/extensions/:id', { config, schema: { tags, summary: 'Delete an extension', params: IdParams, response: R.deleted } }, async (req, reply) => {
    found((await repo.delete(req.auth.accountId, req.params.id)) || null, 'extension', req.params.id)
    return reply.code(204).send(null)
  })
}
