import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { Type } from '@sinclair/typebox'
import type { Account } from '../../store/accounts.ts'
import { IdParams, Nullable, PageQuery, Timestamp, errors, pageOf, patchOf } from '../schemas.ts'
import { found, notFoundError, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'
import { ApiKeyCreated, publicKey } from './api-keys.ts'

const SipDomain = Type.String({ pattern: '^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$', maxLength: 253 })
export const AccountCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  sipDomain: Type.Optional(SipDomain),
}, { additionalProperties: false })
export const AccountUpdate = patchOf(AccountCreate, { nullClears: true })
export const AccountSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), name: Type.String(), sipDomain: Nullable(Type.String()), operator: Type.Boolean(),
  createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'Account' })

const show = (a: Account) => ({ ...a, createdAt: a.createdAt.toISOString(), updatedAt: a.updatedAt.toISOString() })

/**
 * /v1/accounts (scope admin). The operator account's admin keys manage every
 * account; any other admin key sees only its own account.
 */
export const accountRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const { accounts } = deps.store
  const config = { scope: 'admin' as const }
  const tags = ['accounts']
  const mustBeOperator = (operator: boolean) => {
    if (!operator) throw new ApiError(403, 'forbidden', 'only the operator account can manage other accounts')
  }
  const visible = (auth: { accountId: string; operator: boolean }, id: string) => {
    if (!auth.operator && auth.accountId !== id) throw notFoundError('account', id)
  }

  app.get('/accounts', { config, schema: { tags, summary: 'List accounts (operator: all; others: their own)', querystring: PageQuery, response: { 200: pageOf(AccountSchema), ...errors() } } },
    async (req) => {
      if (!req.auth.operator) return { data: [show(found(await accounts.get(req.auth.accountId), 'account', req.auth.accountId))], nextCursor: null }
      const page = await accounts.list(req.query)
      return { data: page.data.map(show), nextCursor: page.nextCursor }
    })
  app.post('/accounts', {
    config,
    schema: { tags, summary: 'Create an account with its first admin key (operator only)', body: AccountCreate, response: { 201: Type.Object({ account: AccountSchema, apiKey: ApiKeyCreated }), ...errors(409) } },
  }, async (req, reply) => {
    mustBeOperator(req.auth.operator)
    const created = await accounts.createWithAdminKey(req.body.name, req.body.sipDomain ?? null)
    return reply.code(201).send({ account: show(created.account), apiKey: { ...publicKey(created.key.key), token: created.key.token } })
  })
  app.get('/accounts/:id', { config, schema: { tags, summary: 'Get an account', params: IdParams, response: { 200: AccountSchema, ...errors(404) } } },
    async (req) => {
      visible(req.auth, req.params.id)
      return show(found(await accounts.get(req.params.id), 'account', req.params.id))
    })
  app.patch('/accounts/:id', { config, schema: { tags, summary: 'Update an account', params: IdParams, body: AccountUpdate, response: { 200: AccountSchema, ...errors(404, 409) } } },
    async (req) => {
      visible(req.auth, req.params.id)
      return show(found(await accounts.update(req.params.id, req.body), 'account', req.params.id))
    })
  app.delete('/accounts/:id', { config, schema: { tags, summary: 'Delete an account and everything it owns (operator only)', params: IdParams, response: { 204: Type.Null(), ...errors(404, 409) } } },
    async (req, reply) => {
      mustBeOperator(req.auth.operator)
      const acct = found(await accounts.get(req.params.id), 'account', req.params.id)
      if (acct.operator) throw new ApiError(409, 'conflict', 'the operator account cannot be deleted')
      await accounts.delete(req.params.id)
      deps.invalidateKey()
      return reply.code(204).send(null)
    })
}
