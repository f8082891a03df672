import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { StringEnum, patchOf } from '../schemas.ts'
import { Type } from '@sinclair/typebox'
import { EVENT_TYPES } from '../../store/outbox.ts'
import { WEBHOOK_STATUSES } from '../../store/webhooks.ts'
import { IdParams, Nullable, PageQuery, Timestamp, crudResponses, errors } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'
import { requireHttps } from '../tenant-url.ts'

export const EventTypeSchema = StringEnum(EVENT_TYPES)
const Url = Type.String({ format: 'uri', pattern: '^https?://', maxLength: 2000, description: 'HTTPS URL receiving the POSTs (plain http only in the embedded mode)' })
const Events = Type.Array(EventTypeSchema, { minItems: 1, maxItems: EVENT_TYPES.length, description: 'Event types to subscribe to' })

export const WebhookCreate = Type.Object({
  url: Url, events: Events, description: Type.Optional(Nullable(Type.String({ maxLength: 500 }))),
  enabled: Type.Optional(Type.Boolean({
    description: 'POST: false creates it disabled (no deliveries are queued until it is enabled). Default true. ' +
      'PATCH: true makes a disabled webhook start afresh (failureCount 0, failingSince/disabledAt/disabledReason cleared) and every pending delivery, ' +
      'including the events queued while the engine had it disabled, is sent now, once each; on an enabled webhook it retries its pending deliveries now. ' +
      'false: no more attempts, and no events are queued for it until it is enabled again.',
  })),
}, { additionalProperties: false })
export const WebhookUpdate = patchOf(WebhookCreate)
const WebhookFields = {
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), url: Type.String(), events: Type.Array(Type.String()),
  description: Nullable(Type.String()),
  enabled: Type.Boolean({ description: 'Whether deliveries are attempted. Set false by you, or by the engine after the webhook failed continuously for WEBHOOK_DISABLE_AFTER (default 5 days).' }),
  status: StringEnum(WEBHOOK_STATUSES, {
    description: 'active: delivering. failing: every attempt since failingSince failed; events keep being queued and retried (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, then every 10 h by default) ' +
      'and all of them go out as soon as one attempt succeeds. disabled: no attempts; if the engine disabled it (disabledReason set) its events are still queued and are delivered when you PATCH enabled: true.',
  }),
  failureCount: Type.Integer({ description: 'Consecutive failed attempts; 0 after a success or re-enabling' }),
  failingSince: Nullable(Type.String({ format: 'date-time', description: 'Start of the current run of failed attempts; the webhook is disabled when it reaches WEBHOOK_DISABLE_AFTER' })),
  lastDeliveredAt: Nullable(Timestamp), lastFailedAt: Nullable(Timestamp),
  lastError: Nullable(Type.String({ description: 'Why the last failed attempt failed (HTTP status, timeout, connection error)' })),
  disabledAt: Nullable(Type.String({ format: 'date-time', description: 'When the webhook was disabled (by you or the engine)' })),
  disabledReason: Nullable(Type.String({ description: 'Set when the engine disabled the webhook; null when you did' })),
  createdAt: Timestamp, updatedAt: Timestamp,
}
export const WebhookSchema = Type.Object(WebhookFields, { $id: 'Webhook' })
const WebhookCreated = Type.Object({ ...WebhookFields, secret: Type.String({ description: 'Standard Webhooks signing secret (whsec_…), shown only here' }) })
const R = crudResponses(WebhookSchema)

/** /v1/webhooks (Fonella shape, Standard Webhooks signatures, at most 10). Scope webhooks:manage. */
export const webhookRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.webhooks
  const config = { scope: 'webhooks:manage' as const }
  const tags = ['webhooks']
  const checkUrl = (url: string | undefined) => { if (url) requireHttps(deps, url, 'url') }
  app.get('/webhooks', { config, schema: { tags, summary: 'List webhooks', querystring: PageQuery, response: R.list } },
    async (req) => repo.list(req.auth.accountId, req.query))
  app.post('/webhooks', { config, schema: { tags, summary: 'Create a webhook; the signing secret is returned once', body: WebhookCreate, response: { 201: WebhookCreated, ...errors(409) } } },
    async (req, reply) => {
      checkUrl(req.body.url)
      const { webhook, secret } = await repo.create(req.auth.accountId, req.body)
      return reply.code(201).send({ ...webhook, secret })
    })
  app.get('/webhooks/:id', { config, schema: { tags, summary: 'Get a webhook', params: IdParams, response: R.one } },
    async (req) => found(await repo.get(req.auth.accountId, req.params.id), 'webhook', req.params.id))
  app.get('/webhooks/:id/deliveries', {
    config, schema: {
      tags, summary: 'Delivery counts by status',
      description: 'pending: queued or waiting for a retry (or for the webhook to be enabled); delivered: accepted with a 2xx; failed: given up after the retry schedule while the endpoint accepted other events.',
      params: IdParams, response: { 200: Type.Record(Type.String(), Type.Integer()), ...errors(404) },
    },
  }, async (req) => {
    found(await repo.get(req.auth.accountId, req.params.id), 'webhook', req.params.id)
    return repo.deliveryStats(req.auth.accountId, req.params.id)
  })
  app.patch('/webhooks/:id', { config, schema: { tags, summary: 'Update a webhook; re-enabling resets failureCount and sends its backlog', params: IdParams, body: WebhookUpdate, response: R.updated } },
    async (req) => {
      checkUrl(req.body.url)
      return found(await repo.update(req.auth.accountId, req.params.id, req.body as never), 'webhook', req.params.id)
    })
  app.delete('/webhooks/:id', { config, schema: { tags, summary: 'Delete a webhook', params: IdParams, response: R.deleted } }, async (req, reply) => {
    found((await repo.delete(req.auth.accountId, req.params.id)) || null, 'webhook', req.params.id)
    return reply.code(204).send(null)
  })
}
