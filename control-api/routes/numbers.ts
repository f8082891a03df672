import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { Type } from '@sinclair/typebox'
import { PhoneNumber, IdParams, Nullable, PageQuery, Timestamp, crudResponses, patchOf } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'
import { checkTenantUrl } from '../tenant-url.ts'
import { NumberStatusCallbackFields, StatusCallbackSchema, statusCallbackOf } from '../status-callback-input.ts'

const NumberString = PhoneNumber('The number callers dial')
const Target = Type.Object({
  type: Type.Union([Type.Literal('agent'), Type.Literal('extension'), Type.Literal('sip'), Type.Literal('conference'), Type.Literal('flow'), Type.Literal('app'), Type.Literal('none')], {
    description: 'agent: an AI agent answers; extension / sip: forwarded; conference: the caller joins the room; flow: answered and the stored flow (/v1/flows) runs; app: answered and the webhook app at `url` is asked for verbs (POSTed the call, signed with the account signing secret)',
  }),
  id: Type.Optional(Type.String({ format: 'uuid', description: 'agent, extension, conference or flow id' })),
  uri: Type.Optional(Type.String({ pattern: '^sips?:', maxLength: 500, description: 'for type sip' })),
  url: Type.Optional(Type.String({ pattern: '^https?://', maxLength: 2000, description: 'for type app: the webhook app\'s URL (https unless the engine allows insecure webhooks)' })),
  method: Type.Optional(Type.Union([Type.Literal('POST'), Type.Literal('GET')], { description: 'for type app: how the app is asked (default POST)' })),
}, { additionalProperties: false })

export const NumberCreate = Type.Object({
  number: NumberString, name: Type.Optional(Nullable(Type.String({ maxLength: 200 }))),
  trunkId: Type.Optional(Nullable(Type.String({ format: 'uuid' }))), target: Type.Optional(Target),
  ...NumberStatusCallbackFields,
}, { additionalProperties: false })
export const NumberUpdate = patchOf(NumberCreate)
export const NumberSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), number: Type.String(), name: Nullable(Type.String()),
  trunkId: Nullable(Type.String()), target: Target, createdAt: Timestamp, updatedAt: Timestamp,
  statusCallback: StatusCallbackSchema,
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
  // An app target's URL is checked like every tenant URL (https rule, outbound URL policy).
  const checkAppUrl = async (t: { type: string; url?: string | undefined } | undefined | null) => {
    if (t?.url) await checkTenantUrl(deps, t.url, 'target/url')
  }
  app.post('/numbers', { config, schema: { tags, summary: 'Provision a number', body: NumberCreate, response: R.created } },
    async (req, reply) => {
      await checkAppUrl(req.body.target)
      const statusCallback = await statusCallbackOf(deps, req.body)
      return reply.code(201).send(await repo.create(req.auth.accountId, { ...req.body, ...(statusCallback ? { statusCallback } : {}) }))
    })
  app.get('/numbers/:id', { config, schema: { tags, summary: 'Get a number', params: IdParams, response: R.one } },
    async (req) => found(await repo.get(req.auth.accountId, req.params.id), 'number', req.params.id))
  app.patch('/numbers/:id', { config, schema: { tags, summary: 'Update a number', params: IdParams, body: NumberUpdate, response: R.updated } },
    async (req) => {
      await checkAppUrl(req.body.target)
      const current = found(await repo.get(req.auth.accountId, req.params.id), 'number', req.params.id)
      const statusCallback = await statusCallbackOf(deps, req.body, current.statusCallback)
      return found(await repo.update(req.auth.accountId, req.params.id, { ...req.body, ...(statusCallback !== undefined ? { statusCallback } : {}) }), 'number', req.params.id)
    })
  app.delete('/numbers/:id', { config, schema: { tags, summary: 'Release a number', params: IdParams, response: R.deleted } }, async (req, reply) => {
    found((await repo.delete(req.auth.accountId, req.params.id)) || null, 'number', req.params.id)
    return reply.code(204).send(null)
  })
}
