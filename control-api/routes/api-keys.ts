import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { StringEnum } from '../schemas.ts'
import { Type } from '@sinclair/typebox'
import { SCOPES, type ApiKey, type Scope } from '../../store/api-keys.ts'
import { IdParams, Nullable, PageQuery, Timestamp, errors, pageOf } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'

export const ScopeSchema = StringEnum(SCOPES)
export const ApiKeyCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200, description: 'e.g. "CRM Integration"' }),
  scopes: Type.Optional(Type.Array(ScopeSchema, { minItems: 1, uniqueItems: true, description: 'Defaults to every scope except admin' })),
  expiresAt: Type.Optional(Type.String({ format: 'date-time', description: 'The key stops working at this time' })),
}, { additionalProperties: false })
const KeyFields = {
  id: Type.String({ format: 'uuid' }), name: Type.String(), prefix: Type.String({ description: 'First characters of the token' }),
  scopes: Type.Array(Type.String()), lastUsedAt: Nullable(Timestamp), createdAt: Timestamp, expiresAt: Nullable(Timestamp),
}
export const ApiKeySchema = Type.Object(KeyFields, { $id: 'ApiKey' })
export const ApiKeyCreated = Type.Object({ ...KeyFields, token: Type.String({ description: 'The full key, shown only here' }) })

export const publicKey = (k: ApiKey) => ({
  id: k.id, name: k.name, prefix: k.prefix, scopes: k.scopes, lastUsedAt: k.lastUsedAt?.toISOString() ?? null,
  createdAt: k.createdAt.toISOString(), expiresAt: k.expiresAt?.toISOString() ?? null,
})

export const DEFAULT_SCOPES: Scope[] = SCOPES.filter((s) => s !== 'admin')

export function parseExpiry(expiresAt: string | undefined): Date | null {
  if (!expiresAt) return null
  const d = new Date(expiresAt)
  if (d.getTime() <= Date.now()) throw new ApiError(400, 'validation_failed', 'invalid body: /expiresAt must be in the future', [{ path: '/expiresAt' }])
  return d
}

/** /v1/api-keys (Fonella shape: token shown once, prefix kept, at most 10 live keys). Scope admin. */
export const apiKeyRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.apiKeys
  const config = { scope: 'admin' as const }
  const tags = ['api-keys']
  app.get('/api-keys', { config, schema: { tags, summary: 'List live API keys (tokens are never returned)', querystring: PageQuery, response: { 200: pageOf(ApiKeySchema), ...errors() } } },
    async (req) => {
      const page = await repo.list(req.auth.accountId, req.query)
      return { data: page.data.map(publicKey), nextCursor: page.nextCursor }
    })
  app.post('/api-keys', { config, schema: { tags, summary: 'Create an API key; the token is returned once', body: ApiKeyCreate, response: { 201: ApiKeyCreated, ...errors(409) } } },
    async (req, reply) => {
      const { key, token } = await repo.createLimited(req.auth.accountId, req.body.name, req.body.scopes ?? DEFAULT_SCOPES, parseExpiry(req.body.expiresAt))
      return reply.code(201).send({ ...publicKey(key), token })
    })
  app.get('/api-keys/:id', { config, schema: { tags, summary: 'Get an API key', params: IdParams, response: { 200: ApiKeySchema, ...errors(404) } } },
    async (req) => publicKey(found(await repo.get(req.auth.accountId, req.params.id), 'API key', req.params.id)))
  app.delete('/api-keys/:id', { config, schema: { tags, summary: 'Revoke an API key', params: IdParams, response: { 204: Type.Null(), ...errors(404) } } },
    async (req, reply) => {
      found(await repo.revoke(req.auth.accountId, req.params.id), 'API key', req.params.id)
      deps.invalidateKey(req.params.id)
      return reply.code(204).send(null)
    })
}
