import type { FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { IdParams, Nullable, PageQuery, StringEnum, Timestamp, crudResponses, errors, patchOf } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'
import type { DialAddress } from '../../store/groupcalls.ts'
import type { ContactAgent, ContactAgentPatch, SettableStatus } from '../../store/contact-agents.ts'
import { DialAddressSchema } from '../../call/dial-address.ts'
import { resolveAgentAddresses } from '../../call/queues/agent-addresses.ts'

/**
 * /v1/contact-agents (VoipBin AgentManagerAgent): the humans queues offer
 * callers to. Not AI agents (/v1/agents). Their `status` is derived
 * (store/contact-agents.ts STATUS_RULE): `ringing` while a queue offers them
 * a call, what the API set (`away`, `offline`), `offline` while none of their
 * extensions is registered, `busy` while they are on any call, else
 * `available`. Scope agents:manage.
 */

export const TagIds = Type.Array(Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9_.:\\-]+$' }), {
  maxItems: 50, uniqueItems: true, description: 'Labels (e.g. "sales", "es", a tag UUID) matching agents to queues: a queue offers its callers to agents that carry all of its tag_ids',
})
const Settable = StringEnum(['available', 'away', 'busy', 'offline'] as const, {
  description: 'available: may be offered calls; away / offline: never offered (whatever else); busy: not offered until set otherwise',
})
const StatusEnum = StringEnum(['available', 'busy', 'away', 'offline', 'ringing'] as const)

const ContactAgentCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  detail: Type.Optional(Type.String({ maxLength: 2000 })),
  addresses: Type.Array(DialAddressSchema, { minItems: 1, maxItems: 10, description: 'Where the agent is rung (VoipBin CommonAddress): extension (target = its id, or target_name = its username), tel (+E.164 over the carrier routes), sip (a URI). agent is refused' }),
  tag_ids: Type.Optional(TagIds),
  ring_method: Type.Optional(StringEnum(['ringall', 'linear'] as const, { default: 'ringall', description: 'ringall: all the agent\'s addresses ring at once; linear: one after another, each for the queue\'s ring_timeout' })),
  status: Type.Optional(Settable),
}, { additionalProperties: false })
const ContactAgentUpdate = patchOf(ContactAgentCreate)

const ContactAgentSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), name: Type.String(), detail: Type.String(),
  addresses: Type.Array(DialAddressSchema), tag_ids: Type.Array(Type.String()), ring_method: Type.String(),
  status: StatusEnum,
  set_status: Type.String({ description: 'What the API set last; status returns to it once the agent is registered and off calls' }),
  status_since: Timestamp,
  current_queuecall_id: Nullable(Type.String({ description: 'The queuecall ringing the agent now' })),
  last_offered_at: Nullable(Timestamp),
  last_offer_result: Nullable(Type.String({ description: 'How the last offer ended: answered, no-answer, busy, failed, canceled' })),
  missed_count: Type.Integer({ description: 'Offers the agent did not take (rang out, refused, could not be reached)' }),
  createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'ContactAgent' })

const R = crudResponses(ContactAgentSchema)
const invalid = (problems: string[]) => new ApiError(400, 'validation_failed', `invalid body: ${problems.join('; ')}`,
  problems.map((p) => ({ path: `/${p.split(':')[0]}`, message: p })))

export const contactAgentRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.contactAgents
  const config = { scope: 'agents:manage' as const }
  const tags = ['contact-agents']

  const presenceOf = async (accountId: string, addresses: DialAddress[]) => {
    const r = await resolveAgentAddresses(deps.store, accountId, addresses)
    if ('problems' in r) throw invalid(r.problems)
    return r.keys
  }

  app.get('/contact-agents', {
    config,
    schema: {
      tags, summary: 'List contact agents, newest first',
      querystring: Type.Object({ ...PageQuery.properties, status: Type.Optional(StatusEnum), tag_id: Type.Optional(Type.String({ maxLength: 100, description: 'Agents carrying this tag' })) }, { additionalProperties: false }),
      response: R.list,
    },
  }, async (req) => {
    const { limit, cursor, status, tag_id } = req.query
    return repo.list(req.auth.accountId, { status, tagId: tag_id }, { limit, cursor })
  })

  app.post('/contact-agents', { config, schema: { tags, summary: 'Create a contact agent (a human queues offer callers to)', body: ContactAgentCreate, response: R.created } },
    async (req, reply) => {
      const b = req.body
      const addresses = b.addresses as DialAddress[]
      const presence = await presenceOf(req.auth.accountId, addresses)
      const agent = await repo.create(req.auth.accountId, {
        name: b.name, detail: b.detail ?? '', addresses, tagIds: b.tag_ids ?? [], ringMethod: b.ring_method ?? 'ringall', setStatus: b.status ?? 'available', presence,
      })
      return reply.code(201).send(agent)
    })

  app.get('/contact-agents/:id', { config, schema: { tags, summary: 'Get a contact agent (its status now)', params: IdParams, response: R.one } },
    async (req) => found(await repo.get(req.auth.accountId, req.params.id), 'contact agent', req.params.id))

  app.patch('/contact-agents/:id', { config, schema: { tags, summary: 'Update a contact agent (status here is what the API sets: available, away, busy, offline)', params: IdParams, body: ContactAgentUpdate, response: R.updated } },
    async (req) => {
      const b = req.body
      const patch: ContactAgentPatch = {
        ...(b.name !== undefined ? { name: b.name } : {}), ...(b.detail !== undefined ? { detail: b.detail } : {}),
        ...(b.tag_ids !== undefined ? { tagIds: b.tag_ids } : {}), ...(b.ring_method !== undefined ? { ringMethod: b.ring_method } : {}),
        ...(b.status !== undefined ? { setStatus: b.status } : {}),
      }
      if (b.addresses !== undefined) {
        patch.addresses = b.addresses as DialAddress[]
        patch.presence = await presenceOf(req.auth.accountId, patch.addresses)
      }
      return found(await repo.update(req.auth.accountId, req.params.id, patch), 'contact agent', req.params.id)
    })

  const setStatus = async (accountId: string, id: string, status: SettableStatus): Promise<ContactAgent> =>
    found(await repo.update(accountId, id, { setStatus: status }), 'contact agent', id)
  const StatusBody = Type.Object({ status: Settable }, { additionalProperties: false })
  app.put('/contact-agents/:id/status', { config, schema: { tags, summary: 'Set a contact agent\'s status (VoipBin PUT /agents/{id}/status): available, away, busy, offline', params: IdParams, body: StatusBody, response: { 200: ContactAgentSchema, ...errors(404) } } },
    async (req) => setStatus(req.auth.accountId, req.params.id, req.body.status))
  app.post('/contact-agents/:id/status', { config, schema: { tags, summary: 'Set a contact agent\'s status (same as PUT)', params: IdParams, body: StatusBody, response: { 200: ContactAgentSchema, ...errors(404) } } },
    async (req) => setStatus(req.auth.accountId, req.params.id, req.body.status))

  app.delete('/contact-agents/:id', { config, schema: { tags, summary: 'Delete a contact agent (a call it is talking on goes on)', params: IdParams, response: R.deleted } },
    async (req, reply) => {
      found((await repo.remove(req.auth.accountId, req.params.id)) || null, 'contact agent', req.params.id)
      return reply.code(204).send(null)
    })
}
