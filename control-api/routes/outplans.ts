import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { IdParams, PageQuery, Timestamp, crudResponses, patchOf } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'
import { SourceAddressSchema } from '../../call/dial-address.ts'
import type { Outplan, OutplanInput } from '../../store/outplans.ts'

/**
 * /v1/outplans (VoipBin CampaignManagerOutplan): how a campaign dials. The
 * caller ID (`source`), the ring timeout (`dial_timeout`, ms), how many
 * attempts a contact gets in all (`max_attempts`, the first included;
 * VoipBin's max_try_count, one number for all of a contact's destinations,
 * which are tried in turn), and the wait before the next attempt after each
 * unsuccessful outcome (`retry_delays`, ms; `try_interval` for any not given).
 */

const Ms = (description: string, min: number, max: number) => Type.Integer({ minimum: min, maximum: max, description })

export const OutplanCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  detail: Type.Optional(Type.String({ maxLength: 2000 })),
  source: SourceAddressSchema,
  dial_timeout: Type.Optional({ ...Ms('Milliseconds a destination rings before the attempt counts as no-answer', 1000, 600_000), default: 30_000 }),
  try_interval: Type.Optional({ ...Ms('Milliseconds before the next attempt when retry_delays names none for the outcome', 0, 30 * 86_400_000), default: 60_000 }),
  max_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 50, default: 1, description: 'Attempts per contact in all (the first included); busy, no-answer, failed and machine outcomes are tried again until this many' })),
  retry_delays: Type.Optional(Type.Object({
    busy: Type.Optional(Ms('After busy', 0, 30 * 86_400_000)),
    no_answer: Type.Optional(Ms('After no answer (rang out)', 0, 30 * 86_400_000)),
    failed: Type.Optional(Ms('After a failed call (no route, carrier error)', 0, 30 * 86_400_000)),
    machine: Type.Optional(Ms('After an answering machine was hung up on', 0, 30 * 86_400_000)),
  }, { additionalProperties: false, description: 'Milliseconds before the next attempt, per outcome' })),
}, { additionalProperties: false })
const OutplanUpdate = patchOf(OutplanCreate)

const OutplanSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }),
  ...OutplanCreate.properties,
  detail: Type.String(), dial_timeout: Type.Integer(), try_interval: Type.Integer(), max_attempts: Type.Integer(),
  retry_delays: Type.Object({ busy: Type.Integer(), no_answer: Type.Integer(), failed: Type.Integer(), machine: Type.Integer() }, { description: 'The delay each outcome gets (try_interval filled in)' }),
  createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'Outplan' })

const toApi = (o: Outplan): Static<typeof OutplanSchema> => ({
  id: o.id, accountId: o.accountId, name: o.name, detail: o.detail, source: o.source, dial_timeout: o.dialTimeoutMs, try_interval: o.tryIntervalMs,
  max_attempts: o.maxAttempts,
  retry_delays: {
    busy: o.retryDelays.busy ?? o.tryIntervalMs, no_answer: o.retryDelays.no_answer ?? o.tryIntervalMs,
    failed: o.retryDelays.failed ?? o.tryIntervalMs, machine: o.retryDelays.machine ?? o.tryIntervalMs,
  },
  createdAt: o.createdAt, updatedAt: o.updatedAt,
})

type Body = Partial<Static<typeof OutplanCreate>>
const toInput = (b: Body): Partial<OutplanInput> => ({
  ...(b.name !== undefined ? { name: b.name } : {}), ...(b.detail !== undefined ? { detail: b.detail } : {}),
  ...(b.source !== undefined ? { source: b.source } : {}), ...(b.dial_timeout !== undefined ? { dialTimeoutMs: b.dial_timeout } : {}),
  ...(b.try_interval !== undefined ? { tryIntervalMs: b.try_interval } : {}), ...(b.max_attempts !== undefined ? { maxAttempts: b.max_attempts } : {}),
  ...(b.retry_delays !== undefined ? { retryDelays: b.retry_delays } : {}),
})

const R = crudResponses(OutplanSchema)

/** Every campaign call would be refused (caller_id_not_owned) with a caller ID that is not the account's: 400 now, naming the field. */
async function checkSource(store: RouteOptions['deps']['store'], accountId: string, source: { target: string } | undefined): Promise<void> {
  if (!source) return
  const n = await store.numbers.findByNumber(source.target)
  const owned = n ? n.accountId === accountId : await store.sipDirectory.extensionOwnsCallerId(accountId, source.target, source.target)
  if (!owned) {
    throw new ApiError(400, 'validation_failed', `invalid body: source/target: ${source.target} is not a number of this account (POST /v1/numbers first)`,
      [{ path: '/source/target', message: 'not a number of this account' }])
  }
}

export const outplanRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.outplans
  const tags = ['campaigns']
  const read = { scope: 'calls:read' as const }
  const write = { scope: 'calls:write' as const }

  app.get('/outplans', { config: read, schema: { tags, summary: 'List outplans', querystring: PageQuery, response: R.list } }, async (req) => {
    const page = await repo.list(req.auth.accountId, req.query)
    return { ...page, data: page.data.map(toApi) }
  })
  app.post('/outplans', { config: write, schema: { tags, summary: 'Create an outplan: caller ID, ring timeout, attempts and retry delays of a campaign', body: OutplanCreate, response: R.created } },
    async (req, reply) => {
      const b = req.body
      await checkSource(deps.store, req.auth.accountId, b.source)
      const input: OutplanInput = { name: b.name, source: b.source, dialTimeoutMs: b.dial_timeout ?? 30_000, tryIntervalMs: b.try_interval ?? 60_000, maxAttempts: b.max_attempts ?? 1, ...toInput(b) }
      return reply.code(201).send(toApi(await repo.create(req.auth.accountId, input)))
    })
  app.get('/outplans/:id', { config: read, schema: { tags, summary: 'Get an outplan', params: IdParams, response: R.one } },
    async (req) => toApi(found(await repo.get(req.auth.accountId, req.params.id), 'outplan', req.params.id)))
  app.patch('/outplans/:id', { config: write, schema: { tags, summary: 'Update an outplan (running campaigns use the change from their next attempt)', params: IdParams, body: OutplanUpdate, response: R.updated } },
    async (req) => {
      await checkSource(deps.store, req.auth.accountId, (req.body as Body).source)
      return toApi(found(await repo.update(req.auth.accountId, req.params.id, toInput(req.body as Body)), 'outplan', req.params.id))
    })
  app.delete('/outplans/:id', { config: write, schema: { tags, summary: 'Delete an outplan (409 while a campaign uses it)', params: IdParams, response: R.deleted } }, async (req, reply) => {
    found((await repo.delete(req.auth.accountId, req.params.id)) || null, 'outplan', req.params.id)
    return reply.code(204).send(null)
  })
}
