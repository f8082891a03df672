import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { StringEnum, patchOf } from '../schemas.ts'
import { Type } from '@sinclair/typebox'
import { IdParams, Nullable, PageQuery, Timestamp, crudResponses, errors } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'
import { isIP } from 'node:net'
import type { RegistrationView } from '../../store/outbound-registrations.ts'

const Transport = Type.Union([Type.Literal('udp'), Type.Literal('tcp'), Type.Literal('tls')])
const Host = Type.String({ pattern: '^[A-Za-z0-9.:\\[\\]-]{1,253}$', description: 'Carrier host name or IP' })
const Codec = StringEnum(['PCMU', 'PCMA', 'G722', 'opus', 'L16', 'telephone-event'] as const)
const Headers = Type.Record(Type.String({ pattern: '^[A-Za-z0-9-]{1,100}$' }), Type.String({ maxLength: 500 }), { maxProperties: 20 })
const Username = Type.String({ minLength: 1, maxLength: 128, pattern: '^[^\\s:@]+$' })
const Password = Type.String({ minLength: 1, maxLength: 256, description: 'Write-only' })

const Outbound = Type.Object({
  host: Host,
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
  transport: Type.Optional(Transport),
  username: Type.Optional(Username),
  password: Type.Optional(Password),
  register: Type.Optional(Type.Boolean({ description: 'Register to the carrier as a device' })),
  registerExpiresSec: Type.Optional(Type.Integer({ minimum: 60, maximum: 86_400 })),
  techPrefix: Type.Optional(Type.String({ pattern: '^[0-9*#+]{0,20}$' })),
  fromDomain: Type.Optional(Type.String({ maxLength: 253 })),
  headers: Type.Optional(Headers),
}, { additionalProperties: false })
const Inbound = Type.Object({
  allowedIps: Type.Optional(Type.Array(Type.String({ maxLength: 64, description: 'IP or CIDR' }), { maxItems: 100 })),
  username: Type.Optional(Nullable(Username)),
  password: Type.Optional(Password),
}, { additionalProperties: false })

export const TrunkCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  description: Type.Optional(Type.String({ maxLength: 1000 })),
  inbound: Type.Optional(Inbound),
  outbound: Type.Optional(Nullable(Outbound)),
  codecs: Type.Optional(Type.Array(Codec, { minItems: 1, maxItems: 6, uniqueItems: true })),
  concurrencyLimit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
}, { additionalProperties: false })
export const TrunkUpdate = patchOf(TrunkCreate, {
  overrides: { outbound: Nullable(Type.Partial(Outbound, { additionalProperties: false, description: 'Merged into the current outbound settings; null removes them' })) },
})

const { password: _p, ...OutboundPublicProps } = Outbound.properties
export const TrunkSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), name: Type.String(),
  description: Type.Optional(Type.String()), codecs: Type.Optional(Type.Array(Type.String())), concurrencyLimit: Type.Optional(Type.Integer()),
  inbound: Type.Object({ allowedIps: Type.Array(Type.String()), username: Nullable(Type.String()), realm: Nullable(Type.String()), hasPassword: Type.Boolean() }),
  outbound: Nullable(Type.Object({ ...OutboundPublicProps, hasPassword: Type.Boolean() })),
  createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'Trunk' })
const R = crudResponses(TrunkSchema)

export const TrunkRegistrationSchema = Type.Object({
  trunkId: Type.String({ format: 'uuid' }),
  enabled: Type.Boolean({ description: 'outbound.register: whether the trunk should be registered' }),
  state: StringEnum(['registering', 'registered', 'failed', 'unregistered', 'disabled'] as const, {
    description: 'registering: REGISTER sent or waiting for a node; registered: the carrier accepted it (until expiresAt); failed: the last attempt was refused or unanswered (see lastError, retried at nextAttemptAt with back-off); unregistered: not registered (lapsed without refresh, or released by a stopping node, until a node takes it over); disabled: the trunk does not register',
  }),
  healthy: Type.Boolean({ description: 'false when a registration that should be up is down: what turns the sip-bridge component of /health down' }),
  message: Type.String({ description: 'One line for a person: what is happening and what comes next' }),
  registrar: Nullable(Type.String({ description: 'Request-URI of the REGISTER (the carrier registrar)' })),
  aor: Nullable(Type.String({ description: 'Address-of-record registered (To/From)' })),
  expiresAt: Nullable(Timestamp),
  lastSuccessAt: Nullable(Timestamp),
  lastError: Nullable(Type.Object({
    status: Nullable(Type.Integer({ description: 'SIP status of the failure (403, 408, ...); null for a transport error' })),
    reason: Type.String({ description: 'Reason phrase or transport error' }),
    at: Nullable(Timestamp),
  }, { description: 'The most recent failure, kept after recovery (compare at with lastSuccessAt)' })),
  failures: Type.Integer({ description: 'Consecutive failures' }),
  nextAttemptAt: Nullable(Timestamp),
  node: Nullable(Type.String({ description: 'Engine node that owns the registration' })),
  since: Timestamp,
  updatedAt: Nullable(Timestamp),
}, { $id: 'TrunkRegistration' })

const iso = (d: Date | null): string | null => d?.toISOString() ?? null
function registrationBody(v: RegistrationView) {
  return {
    trunkId: v.trunkId, enabled: v.enabled, state: v.state, healthy: !v.down, message: v.message, registrar: v.registrar, aor: v.aor,
    expiresAt: iso(v.expiresAt), lastSuccessAt: iso(v.lastSuccessAt),
    lastError: v.lastError ? { status: v.lastError.status, reason: v.lastError.reason, at: iso(v.lastError.at) } : null,
    failures: v.failures, nextAttemptAt: iso(v.nextAttemptAt), node: v.node, since: v.since.toISOString(), updatedAt: iso(v.updatedAt),
  }
}

function validIpOrCidr(s: string): boolean {
  const [ip, bits, extra] = s.split('/')
  if (extra !== undefined || !ip) return false
  const v = isIP(ip)
  if (!v) return false
  if (bits === undefined) return true
  const n = Number(bits)
  return /^\d{1,3}$/.test(bits) && n <= (v === 4 ? 32 : 128)
}

function check(body: { inbound?: { allowedIps?: string[]; username?: string | null; password?: string } }): void {
  for (const [i, ip] of (body.inbound?.allowedIps ?? []).entries()) {
    if (!validIpOrCidr(ip)) throw new ApiError(400, 'validation_failed', `invalid body: /inbound/allowedIps/${i} "${ip}" is not an IP address or CIDR`, [{ path: `/inbound/allowedIps/${i}` }])
  }
  if (body.inbound?.password !== undefined && !body.inbound.username) {
    throw new ApiError(400, 'validation_failed', 'invalid body: /inbound/password needs /inbound/username', [{ path: '/inbound/username' }])
  }
}

/** /v1/trunks: carrier SIP trunks (inbound IPs/credentials, outbound target, registration). Scope numbers:manage. */
export const trunkRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.trunks
  const config = { scope: 'numbers:manage' as const }
  const tags = ['trunks']
  app.get('/trunks', { config, schema: { tags, summary: 'List trunks', querystring: PageQuery, response: R.list } },
    async (req) => repo.list(req.auth.accountId, req.query))
  app.post('/trunks', { config, schema: { tags, summary: 'Create a trunk (passwords are write-only)', body: TrunkCreate, response: R.created } },
    async (req, reply) => {
      check(req.body)
      return reply.code(201).send(await repo.create(req.auth.accountId, req.body))
    })
  app.get('/trunks/:id', { config, schema: { tags, summary: 'Get a trunk', params: IdParams, response: R.one } },
    async (req) => found(await repo.get(req.auth.accountId, req.params.id), 'trunk', req.params.id))
  app.patch('/trunks/:id', { config, schema: { tags, summary: 'Update a trunk', params: IdParams, body: TrunkUpdate, response: R.updated } },
    async (req) => {
      check(req.body)
      const cur = found(await repo.get(req.auth.accountId, req.params.id), 'trunk', req.params.id)
      if (req.body.outbound && !req.body.outbound.host && !cur.outbound) {
        throw new ApiError(400, 'validation_failed', 'invalid body: /outbound/host is required (the trunk has no outbound settings yet)', [{ path: '/outbound/host' }])
      }
      return found(await repo.update(req.auth.accountId, req.params.id, req.body as never), 'trunk', req.params.id)
    })
  app.get('/trunks/:id/registration', {
    config,
    schema: { tags, summary: 'Registration status of a trunk that registers to its carrier (state, last error, expiry, next attempt)', params: IdParams, response: { 200: TrunkRegistrationSchema, ...errors(404) } },
  }, async (req) => registrationBody(found(await deps.store.outboundRegistrations.view(req.auth.accountId, req.params.id), 'trunk', req.params.id)))
  app.delete('/trunks/:id', { config, schema: { tags, summary: 'Delete a trunk', params: IdParams, response: R.deleted } }, async (req, reply) => {
    found((await repo.delete(req.auth.accountId, req.params.id)) || null, 'trunk', req.params.id)
    return reply.code(204).send(null)
  })
}
