import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { Type } from '@sinclair/typebox'
import { IdParams, Nullable, PageQuery, Timestamp, crudResponses, patchOf } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'

export const CarrierRouteCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  description: Type.Optional(Nullable(Type.String({ maxLength: 1000 }))),
  prefix: Type.String({ pattern: '^(\\*|\\+?[0-9]{1,15})$', description: 'Destination prefix (+49, +1415) or * for all' }),
  trunkId: Type.String({ format: 'uuid' }),
  priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000, description: 'Lower is tried first' })),
  enabled: Type.Optional(Type.Boolean()),
}, { additionalProperties: false })
export const CarrierRouteUpdate = patchOf(CarrierRouteCreate)
export const CarrierRouteSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), name: Type.String(), description: Nullable(Type.String()),
  prefix: Type.String(), trunkId: Type.String(), priority: Type.Integer(), enabled: Type.Boolean(), createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'CarrierRoute' })
const R = crudResponses(CarrierRouteSchema)

/**
 * /v1/routes: carrier routes, the account's outbound routing over its trunks
 * with failover (longest prefix, then priority). The path keeps its short
 * name for clients; the schemas and the OpenAPI tag say "carrier route".
 * Scope numbers:manage.
 */
export const carrierRouteRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.carrierRoutes
  const config = { scope: 'numbers:manage' as const }
  const tags = ['carrier-routes']
  app.get('/routes', { config, schema: { tags, summary: 'List carrier routes (outbound routing over trunks)', querystring: PageQuery, response: R.list } },
    async (req) => repo.list(req.auth.accountId, req.query))
  app.post('/routes', { config, schema: { tags, summary: 'Create a carrier route', body: CarrierRouteCreate, response: R.created } },
    async (req, reply) => reply.code(201).send(await repo.create(req.auth.accountId, req.body)))
  app.get('/routes/:id', { config, schema: { tags, summary: 'Get a carrier route', params: IdParams, response: R.one } },
    async (req) => found(await repo.get(req.auth.accountId, req.params.id), 'route', req.params.id))
  app.patch('/routes/:id', { config, schema: { tags, summary: 'Update a carrier route', params: IdParams, body: CarrierRouteUpdate, response: R.updated } },
    async (req) => found(await repo.update(req.auth.accountId, req.params.id, req.body), 'route', req.params.id))
  app.delete('/routes/:id', { config, schema: { tags, summary: 'Delete a carrier route', params: IdParams, response: R.deleted } }, async (req, reply) => {
    found((await repo.delete(req.auth.accountId, req.params.id)) || null, 'route', req.params.id)
    return reply.code(204).send(null)
  })
}
