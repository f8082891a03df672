import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { Type } from '@sinclair/typebox'
import { IdParams, PageQuery, Timestamp, crudResponses } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'

const Method = Type.Union([Type.Literal('GET'), Type.Literal('POST')])
const Fields = {
  description: Type.String({ minLength: 1, maxLength: 2000, description: 'Tells the AI when to use this tool' }),
  url: Type.String({ format: 'uri', pattern: '^https?://', maxLength: 2000, description: 'Endpoint called when the tool is invoked' }),
  method: Method,
  headers: Type.Record(Type.String({ pattern: '^[A-Za-z0-9-]{1,100}$' }), Type.String({ maxLength: 2000 }), { maxProperties: 20 }),
  inputSchema: Type.Record(Type.String(), Type.Unknown(), { description: 'JSON Schema of the arguments the AI extracts' }),
  timeoutMs: Type.Integer({ minimum: 100, maximum: 30_000 }),
  enabled: Type.Boolean(),
}
const Name = Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_]{0,63}$', description: 'Machine-readable name (camelCase, no spaces)' })

export const ToolCreate = Type.Object({
  name: Name, description: Fields.description, url: Fields.url, method: Type.Optional(Method), headers: Type.Optional(Fields.headers),
  inputSchema: Type.Optional(Fields.inputSchema), timeoutMs: Type.Optional(Fields.timeoutMs), enabled: Type.Optional(Fields.enabled),
}, { additionalProperties: false })
export const ToolUpdate = Type.Partial(ToolCreate, { additionalProperties: false, minProperties: 1 })
export const ToolSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), name: Type.String(), description: Type.String(), url: Type.String(),
  method: Method, headers: Type.Optional(Fields.headers), inputSchema: Type.Optional(Fields.inputSchema), timeoutMs: Type.Optional(Type.Integer()),
  enabled: Type.Boolean(), createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'Tool' })
const R = crudResponses(ToolSchema)

/** /v1/tools: custom HTTP tools agents call during live calls (at most 20). Scope tools:manage. */
export const toolRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.tools
  const config = { scope: 'tools:manage' as const }
  const tags = ['tools']
  app.get('/tools', { config, schema: { tags, summary: 'List tools', querystring: PageQuery, response: R.list } },
    async (req) => repo.list(req.auth.accountId, req.query))
  app.post('/tools', { config, schema: { tags, summary: 'Create a tool', body: ToolCreate, response: R.created } },
    async (req, reply) => reply.code(201).send(await repo.create(req.auth.accountId, req.body)))
  app.get('/tools/:id', { config, schema: { tags, summary: 'Get a tool', params: IdParams, response: R.one } },
    async (req) => found(await repo.get(req.auth.accountId, req.params.id), 'tool', req.params.id))
  app.patch('/tools/:id', { config, schema: { tags, summary: 'Update a tool', params: IdParams, body: ToolUpdate, response: R.updated } },
    async (req) => found(await repo.update(req.auth.accountId, req.params.id, req.body), 'tool', req.params.id))
  app.delete('/tools/:id', { config, schema: { tags, summary: 'Delete a tool', params: IdParams, response: R.deleted } }, async (req, reply) => {
    found((await repo.delete(req.auth.accountId, req.params.id)) || null, 'tool', req.params.id)
    return reply.code(204).send(null)
  })
}
