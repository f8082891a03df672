import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { Type, type Static } from '@sinclair/typebox'
import { IdParams, Metadata, Nullable, PageQuery, StringEnum, Timestamp, crudResponses } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'

const Adapter = Type.Object({
  provider: Type.String({ minLength: 1, maxLength: 64, description: 'e.g. pocketsphinx, deepgram, scripted, openai, espeak, elevenlabs' }),
  model: Type.Optional(Type.String({ maxLength: 200 })),
  voice: Type.Optional(Type.String({ maxLength: 200 })),
  options: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
}, { additionalProperties: false })

const Spec = {
  prompt: Type.Optional(Type.String({ maxLength: 50_000 })),
  greeting: Type.Optional(Type.String({ maxLength: 2000, description: 'First thing the agent says' })),
  language: Type.Optional(Type.String({ pattern: '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$', description: 'BCP-47, e.g. en-US' })),
  voice: Type.Optional(Type.String({ maxLength: 200 })),
  stt: Type.Optional(Adapter),
  llm: Type.Optional(Adapter),
  tts: Type.Optional(Adapter),
  tools: Type.Optional(Type.Array(Type.String({ format: 'uuid' }), { maxItems: 20, uniqueItems: true, description: 'Tool ids' })),
  bargeIn: Type.Optional(Type.Object({
    enabled: Type.Optional(Type.Boolean()),
    minSpeechMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 5000 })),
    minWords: Type.Optional(Type.Integer({ minimum: 0, maximum: 20 })),
    resumeAfterMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
  }, { additionalProperties: false })),
  aiSpeaksFirst: Type.Optional(Type.Boolean({ description: 'Speak the greeting as soon as the call is answered (default true); false waits for the caller' })),
  greetingInterruptible: Type.Optional(Type.Boolean({ description: 'Whether the caller can barge in on the greeting' })),
  expectedPhrases: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 500, description: 'Phrases callers are expected to say: the offline STT builds its grammar from them (and from the rules), cloud STT gets them as keyword hints' })),
  vad: Type.Optional(StringEnum(['webrtc', 'energy', 'silero'] as const, { description: 'Inbound voice activity detector: webrtc (default; energy gate + WebRTC VAD), energy (cheapest), silero (most accurate in noise, ~50× the CPU, slower onset)' })),
  amd: Type.Optional(Type.Object({
    onMachine: StringEnum(['hangup', 'leave_message', 'continue'] as const, { description: 'Outbound calls: what to do when an answering machine answers' }),
    message: Type.Optional(Type.String({ maxLength: 2000, description: 'leave_message: what to say after the beep (default: the greeting)' })),
    endOfGreetingSilenceMs: Type.Optional(Type.Integer({ minimum: 200, maximum: 10_000 })),
    maxWaitMs: Type.Optional(Type.Integer({ minimum: 1000, maximum: 120_000 })),
  }, { additionalProperties: false })),
  silenceTimeoutSec: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
  maxDurationSec: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
  transferTargets: Type.Optional(Type.Array(Type.Object({
    name: Type.String({ minLength: 1, maxLength: 100 }),
    destination: Type.String({ minLength: 1, maxLength: 300, description: 'E.164 number or SIP URI' }),
    description: Type.Optional(Type.String({ maxLength: 500 })),
  }, { additionalProperties: false }), { maxItems: 20 })),
  recording: Type.Optional(Type.Object({ enabled: Type.Boolean(), format: Type.Optional(Type.Literal('wav')) }, { additionalProperties: false })),
  summary: Type.Optional(Type.Object({ enabled: Type.Boolean(), prompt: Type.Optional(Type.String({ maxLength: 5000 })) }, { additionalProperties: false })),
  websocket: Type.Optional(Type.Object({
    url: Type.String({ format: 'uri', pattern: '^wss?://' }),
    encapsulation: Type.Optional(Type.Union([Type.Literal('twilio'), Type.Literal('raw')])),
  }, { additionalProperties: false })),
  rules: Type.Optional(Type.Array(Type.Object({
    match: Type.String({ minLength: 1, maxLength: 500, description: 'Case-insensitive regular expression on the caller\'s words' }),
    reply: Type.Optional(Type.String({ maxLength: 2000 })),
    tool: Type.Optional(Type.String({ maxLength: 64 })),
    args: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    transferTo: Type.Optional(Type.String({ maxLength: 100 })),
    hangup: Type.Optional(Type.Boolean()),
  }, { additionalProperties: false }), { maxItems: 200 })),
  metadata: Type.Optional(Metadata),
}
const AgentType = Type.Union([Type.Literal('pipeline'), Type.Literal('websocket')])

export const AgentCreate = Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }), type: Type.Optional(AgentType), ...Spec }, { additionalProperties: false })
const nullableSpec = Object.fromEntries(Object.entries(Spec).map(([k, v]) => [k, Type.Optional(Nullable(Type.Required(v as never)))]))
export const AgentUpdate = Type.Object({ name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })), type: Type.Optional(AgentType), ...nullableSpec }, { additionalProperties: false, minProperties: 1 })
export const AgentSchema = Type.Object({
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), name: Type.String(), type: AgentType, ...Spec,
  createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'Agent' })

const R = crudResponses(AgentSchema)

function checkAgent(body: Partial<Static<typeof AgentCreate>>): void {
  for (const [i, rule] of (body.rules ?? []).entries()) {
    try {
      new RegExp(rule.match, 'i')
    } catch (err) {
      throw new ApiError(400, 'validation_failed', `invalid body: /rules/${i}/match is not a valid regular expression: ${(err as Error).message}`, [{ path: `/rules/${i}/match` }])
    }
  }
}

/** /v1/agents: the AI agents numbers point at. Scope agents:manage. */
export const agentRoutes: FastifyPluginAsync<RouteOptions> = async (base, { deps }) => {
  const app = base.withTypeProvider<TypeBoxRequestProvider>()
  const repo = deps.store.agents
  const config = { scope: 'agents:manage' as const }
  const tags = ['agents']

  app.get('/agents', { config, schema: { tags, summary: 'List agents', querystring: PageQuery, response: R.list } },
    async (req) => repo.list(req.auth.accountId, req.query))
  app.post('/agents', { config, schema: { tags, summary: 'Create an agent', body: AgentCreate, response: R.created } }, async (req, reply) => {
    checkAgent(req.body)
    return reply.code(201).send(await repo.create(req.auth.accountId, req.body))
  })
  app.get('/agents/:id', { config, schema: { tags, summary: 'Get an agent', params: IdParams, response: R.one } },
    async (req) => found(await repo.get(req.auth.accountId, req.params.id), 'agent', req.params.id))
  app.patch('/agents/:id', { config, schema: { tags, summary: 'Update an agent (null removes a field)', params: IdParams, body: AgentUpdate, response: R.updated } }, async (req) => {
    checkAgent(req.body as Partial<Static<typeof AgentCreate>>)
    return found(await repo.update(req.auth.accountId, req.params.id, req.body as never), 'agent', req.params.id)
  })
  app.delete('/agents/:id', { config, schema: { tags, summary: 'Delete an agent', params: IdParams, response: R.deleted } }, async (req, reply) => {
    found((await repo.delete(req.auth.accountId, req.params.id)) || null, 'agent', req.params.id)
    return reply.code(204).send(null)
  })
}
