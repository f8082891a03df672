import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { Type } from '@sinclair/typebox'
import { IdParams, PageQuery, Timestamp, crudResponses, errors, patchOf } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'

const Method = Type.Union([Type.Literal('GET'), Type.Literal('POST')])
const Fields = {
  description: Type.String({ minLength: 1, maxLength: 2000, description: 'Tells the AI when to use this tool' }),
  url: Type.String({ format: 'uri', pattern: '^https?://', maxLength: 2000, description: 'Endpoint called when the tool is invoked' }),
  method: Method,
  headers: Type.Record(Type.String({ pattern: '^[A-Za-z0-9-]{1,100}$' }), Type.String({ maxLength: 2000 }), { maxProperties: 20 }),
  inputSchema: Type.Record(Type.String(), Type.Unknown(), { description: 'JSON Schema of the arguments the AI extracts' }),
  timeoutMs: Type.Integer({ minimum: 1000, maximum: 30_000, description: 'How long the call waits for the tool\'s answer (ms, 1000–30000, default 5000); after that the caller hears an apology' }),
  speakDuringExecution: Type.Union([Type.Boolean(), Type.String({ minLength: 1, maxLength: 500 })], {
    description: 'What the caller hears while the request runs (Leadlock speak_during_execution): true (default) says the agent\'s filler line ("One moment please."), a string says that line, false stays silent',
  }),
  enabled: Type.Boolean({ description: 'false: agents do not load the tool into their calls' }),
}
const Name = Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_]{0,63}$', description: 'Machine-readable name (camelCase, no spaces)' })

export const ToolCreate = Type.Object({
  name: Name, description: Fields.description, url: Fields.url, method: Type.Optional(Method), headers: Type.Optional(Fields.headers),
  inputSchema: Type.Optional(Fields.inputSchema), timeoutMs: Type.Optional(Fields.timeoutMs), speakDuringExecution: Type.Optional(Fields.speakDuringExecution),
  enabled: Type.Optional(Fields.enabled),
}, { additionalProperties: false })
export const ToolUpdate = patchOf(ToolCreate)
export const ToolSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), name: Type.String(), description: Type.String(), url: Type.String(),
  method: Method, headers: Type.Optional(Fields.headers), inputSchema: Type.Optional(Fields.inputSchema), timeoutMs: Type.Integer(),
  speakDuringExecution: Fields.speakDuringExecution, enabled: Type.Boolean(), createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'Tool' })
const ToolCreated = Type.Object({
  ...ToolSchema.properties,
  secret: Type.String({ description: 'Standard Webhooks signing secret (whsec_…) of the tool\'s requests, shown only here' }),
})
const R = crudResponses(ToolSchema)

/**
 * /v1/tools: custom HTTP tools agents call during live calls (at most 20;
 * attached through an agent's `tools` id list). Scope tools:manage.
 *
 * The request (POST, JSON; GET puts the arguments in the query string):
 * `{ "tool": name, "arguments": {...}, "call": { "id", "from", "to", "agentId" } }`,
 * signed as Standard Webhooks are (headers `webhook-id`, `webhook-timestamp`,
 * `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, with the
 * secret returned when the tool is created; a GET signs its URL). The answer is
 * JSON `{ "result": "..." }`: the agent speaks it (a scripted rule's `reply`
 * may place it with `{result}`), an LLM gets it as the tool message.
 */
export const toolRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.tools
  const config = { scope: 'tools:manage' as const }
  const tags = ['tools']
  app.get('/tools', { config, schema: { tags, summary: 'List tools', querystring: PageQuery, response: R.list } },
    async (req) => repo.list(req.auth.accountId, req.query))
  app.post('/tools', { config, schema: { tags, summary: 'Create a tool; its signing secret is returned once', body: ToolCreate, response: { 201: ToolCreated, ...errors(409) } } },
    async (req, reply) => {
      const { tool, secret } = await repo.create(req.auth.accountId, req.body)
      return reply.code(201).send({ ...tool, secret })
    })
  app.get('/tools/:id', { config, schema: { tags, summary: 'Get a tool', params: IdParams, response: R.one } },
    async (req) => found(await repo.get(req.auth.accountId, req.params.id), 'tool', req.params.id))
  app.patch('/tools/:id', { config, schema: { tags, summary: 'Update a tool', params: IdParams, body: ToolUpdate, response: R.updated } },
    async (req) => found(await repo.update(req.auth.accountId, req.params.id, req.body), 'tool', req.params.id))
  app.delete('/tools/:id', { config, schema: { tags, summary: 'Delete a tool', params: IdParams, response: R.deleted } }, async (req, reply) => {
    found((await repo.delete(req.auth.accountId, req.params.id)) || null, 'tool', req.params.id)
    return reply.code(204).send(null)
  })
}
