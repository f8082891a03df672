import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxRequestProvider } from '../schemas.ts'
import { Type, type Static } from '@sinclair/typebox'
import { PhoneNumberOrSipUri, IdParams, Metadata, PageQuery, StringEnum, Timestamp, crudResponses, patchOf, responseOf } from '../schemas.ts'
import { found, type RouteOptions } from '../deps.ts'
import { ApiError } from '../errors.ts'
import { adapterCatalog, rulePatternProblem, type AdapterKind } from '../../agent/index.ts'

const Adapter = (kind: string, providers: string) => Type.Object({
  provider: Type.String({ minLength: 1, maxLength: 64, description: `The ${kind} provider: ${providers}. Any other name is refused (400) with the list of providers there are.` }),
  model: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'The provider\'s model (deepgram, openai, elevenlabs); refused for a provider without a model choice' })),
  voice: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'TTS voice (espeak-ng voice name, OpenAI voice, ElevenLabs voice id); refused for a provider without voices' })),
  options: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Provider options, passed to the adapter. An option the provider does not read is refused (400) with the ones it does' })),
}, { additionalProperties: false })

const VARIABLES = 'Dynamic variables: `{{name}}` is replaced when the call starts, from the call\'s `metadata` (POST /v1/calls), then the agent\'s `metadata`, then the built-ins `{{from}}`, `{{to}}`, `{{callId}}`, `{{direction}}`, `{{agentName}}`; an unknown name becomes empty text.'
const Spec = {
  prompt: Type.Optional(Type.String({ maxLength: 50_000, description: `System prompt for the LLM (the scripted offline model follows \`rules\` instead). ${VARIABLES}` })),
  greeting: Type.Optional(Type.String({ maxLength: 2000, description: `First thing the agent says (see aiSpeaksFirst). ${VARIABLES}` })),
  greetingOutbound: Type.Optional(Type.String({ maxLength: 2000, description: `Outbound calls (POST /v1/calls with this agent): said instead of \`greeting\` (Leadlock greeting_outbound). ${VARIABLES}` })),
  language: Type.Optional(Type.String({ pattern: '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$', description: 'BCP-47, e.g. en-US: the TTS language (espeak-ng voice when `voice` is unset) and the cloud STT language. The offline STT (pocketsphinx) recognises English only, so another language needs a cloud `stt`' })),
  voice: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'TTS voice for every line the agent speaks (espeak-ng voice, OpenAI voice, ElevenLabs voice id); `tts.voice` wins when both are set' })),
  stt: Type.Optional(Adapter('speech-to-text', 'pocketsphinx (default, offline), deepgram')),
  llm: Type.Optional(Adapter('language model', 'scripted (default, offline, follows `rules`), openai (any OpenAI-compatible server through options.baseURL)')),
  tts: Type.Optional(Adapter('text-to-speech', 'espeak (default, offline), openai, elevenlabs')),
  tools: Type.Optional(Type.Array(Type.String({ format: 'uuid' }), { maxItems: 20, uniqueItems: true, description: 'Tool ids' })),
  bargeIn: Type.Optional(Type.Object({
    enabled: Type.Optional(Type.Boolean({ description: 'Whether the caller can interrupt the agent (default true); false: the agent always finishes its line' })),
    minSpeechMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 5000, description: 'Caller speech needed before an interruption stands (default 300 ms); shorter bursts are false alarms' })),
    minWords: Type.Optional(Type.Integer({ minimum: 0, maximum: 20, description: 'Words the STT must hear before an interruption stands (default 0: speech alone decides)' })),
    resumeAfterMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000, description: 'After a false alarm, how long the caller must stay quiet before the paused agent speech resumes where it stopped (default 0: at once, once the burst has ended)' })),
  }, { additionalProperties: false, description: 'Interruptions: the agent\'s audio pauses on the next packet when the caller speaks; this policy decides whether the interruption stands' })),
  aiSpeaksFirst: Type.Optional(Type.Boolean({ description: 'Speak the greeting as soon as the call is answered (default true); false waits for the caller' })),
  aiSpeaksFirstOutbound: Type.Optional(Type.Boolean({ description: 'Outbound calls: speak first (default: aiSpeaksFirst). Leadlock ai_speaks_first_outbound' })),
  greetingInterruptible: Type.Optional(Type.Boolean({ description: 'Whether the caller can barge in on the greeting (default true)' })),
  expectedPhrases: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 500, description: 'Phrases callers are expected to say: the offline STT builds its grammar from them (and from the rules), cloud STT gets them as keyword hints' })),
  vad: Type.Optional(StringEnum(['webrtc', 'energy', 'silero'] as const, { description: 'Inbound voice activity detector: webrtc (default; energy gate + WebRTC VAD), energy (cheapest), silero (most accurate in noise, ~50× the CPU, slower onset)' })),
  vadSettings: Type.Optional(Type.Object({
    threshold: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'Sensitivity, higher = less sensitive (Leadlock vad_threshold; default 0.5). Moves the detector\'s energy gate (±10 dB) and aggressiveness: at 1, quiet speech does not start a turn or interrupt' })),
    silenceMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 5000, description: 'Caller silence that ends a turn (Leadlock vad_silence_duration_ms; default 500): the agent answers no sooner' })),
    prefixPaddingMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 2000, description: 'Audio before the detected speech onset that belongs to the caller\'s turn (Leadlock vad_prefix_padding_ms; default 0): the turn\'s transcript start moves back by this much, and a recognition of those first syllables is kept' })),
  }, { additionalProperties: false, description: 'Endpointing and detector settings for whichever `vad` runs' })),
  amd: Type.Optional(Type.Object({
    onMachine: StringEnum(['hangup', 'leave_message', 'continue'] as const, { description: 'Outbound calls: what to do when an answering machine answers' }),
    message: Type.Optional(Type.String({ maxLength: 2000, description: 'leave_message: what to say after the beep (default: the greeting)' })),
    endOfGreetingSilenceMs: Type.Optional(Type.Integer({ minimum: 200, maximum: 10_000 })),
    maxWaitMs: Type.Optional(Type.Integer({ minimum: 1000, maximum: 120_000 })),
  }, { additionalProperties: false })),
  silenceTimeoutSec: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600, description: 'After this much mutual silence the agent asks "Are you still there?"; after as much again it hangs up (endedReason silence-timed-out). Default 120' })),
  maxDurationSec: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400, description: 'The agent hangs up after this long (endedReason exceeded-max-duration). Default 1800' })),
  transferTargets: Type.Optional(Type.Array(Type.Object({
    name: Type.String({ minLength: 1, maxLength: 100, description: 'What rules (`transferTo`) and the LLM\'s transfer_call tool call the target' }),
    destination: PhoneNumberOrSipUri('Where the call goes'),
    description: Type.Optional(Type.String({ maxLength: 500, description: 'When to transfer here: given to the LLM with the transfer_call tool' })),
    whisper: Type.Optional(Type.String({ minLength: 1, maxLength: 1000, description: `Said to the target when it answers, before the caller is connected (the call is then bridged through the engine rather than REFERred). ${VARIABLES}` })),
  }, { additionalProperties: false }), { maxItems: 20 })),
  recording: Type.Optional(Type.Object({
    enabled: Type.Boolean({ description: 'Record every call of this agent (both parties, WAV) from the moment it is answered; the recording is listed on the call and in /v1/recordings, and call.recording.ready is sent when the call ends' }),
    format: Type.Optional(Type.Literal('wav')),
    disclosure: Type.Optional(Type.String({ minLength: 1, maxLength: 1000, description: `Said first on every call, before the greeting and not interruptible (e.g. "This call is recorded."). ${VARIABLES}` })),
  }, { additionalProperties: false })),
  summary: Type.Optional(Type.Object({
    enabled: Type.Boolean({ description: 'At the end of the call the agent\'s LLM writes a summary: stored on the call (`summary`) and sent as call.summary' }),
    prompt: Type.Optional(Type.String({ maxLength: 5000, description: 'System prompt for the summary (default: two sentences). The scripted offline model summarises the same fixed way whatever the prompt' })),
  }, { additionalProperties: false })),
  websocket: Type.Optional(Type.Object({
    url: Type.String({ format: 'uri', pattern: '^wss?://' }),
    encapsulation: Type.Optional(Type.Union([Type.Literal('twilio'), Type.Literal('raw')])),
  }, { additionalProperties: false })),
  rules: Type.Optional(Type.Array(Type.Object({
    match: Type.String({ minLength: 1, maxLength: 500, description: 'Case-insensitive regular expression on the caller\'s words, in RE2 syntax (matched in linear time: no backreferences or lookaround; such a pattern is refused with 400)' }),
    reply: Type.Optional(Type.String({ maxLength: 2000 })),
    tool: Type.Optional(Type.String({ maxLength: 64 })),
    args: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    transferTo: Type.Optional(Type.String({ maxLength: 100 })),
    hangup: Type.Optional(Type.Boolean()),
  }, { additionalProperties: false }), { maxItems: 200 })),
  builtinTools: Type.Optional(Type.Array(StringEnum(['add_to_do_not_call', 'schedule_callback', 'mark_booked'] as const), {
    uniqueItems: true, maxItems: 3,
    description: 'Built-in tools the LLM may call besides end_call, transfer_call and send_dtmf (always there): '
      + 'add_to_do_not_call {reason?} puts the other party\'s number on the account\'s do-not-call list (/v1/do-not-call) when they ask not to be called; '
      + 'schedule_callback {when, reason?, timezone?} books a scheduled call (/v1/scheduled-calls) back to them with this agent (`when`: ISO 8601, "in N minutes/hours/days", "today/tomorrow at HH[:MM] [am|pm]"), whose greeting and prompt can use {{callback_context}}; '
      + 'mark_booked {details?} marks the call as a booking (a sequence with stop_on_booking stops there)',
  })),
  metadata: Type.Optional(Metadata),
}
const AgentType = Type.Union([Type.Literal('pipeline'), Type.Literal('websocket')], { default: 'pipeline' })

/** The one definition of an agent: POST takes it as is; PATCH and the response derive from it. */
export const AgentCreate = Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }), type: Type.Optional(AgentType), ...Spec }, { additionalProperties: false })
export const AgentUpdate = patchOf(AgentCreate, { nullClears: true, description: 'Fields to change; null removes an optional field (back to its default behaviour)' })
export const AgentSchema = responseOf(AgentCreate, {
  id: Type.String({ format: 'uuid' }), accountId: Type.String({ format: 'uuid' }), createdAt: Timestamp, updatedAt: Timestamp,
}, { $id: 'Agent' })

const R = crudResponses(AgentSchema)

type AdapterBody = { provider: string; model?: string | undefined; voice?: string | undefined; options?: Record<string, unknown> | undefined }

const refuse = (path: string, message: string): ApiError => new ApiError(400, 'validation_failed', `invalid body: ${path} ${message}`, [{ path }])

/**
 * A setting the provider would never read is refused rather than stored and
 * ignored: an unknown provider, `model`/`voice` on one without that choice,
 * an option it does not read (registry ProviderFields).
 */
function checkAdapter(kind: AdapterKind, a: AdapterBody | undefined): void {
  if (!a) return
  const { providers, fields } = adapterCatalog()
  const known = providers[kind]
  if (!known.includes(a.provider)) throw refuse(`/${kind}/provider`, `"${a.provider}" is not a ${kind} provider (there are: ${known.join(', ')})`)
  const reads = fields(kind, a.provider)
  if (!reads) return
  if (a.model !== undefined && !reads.model) throw refuse(`/${kind}/model`, `${a.provider} has no model choice`)
  if (a.voice !== undefined && !reads.voice) throw refuse(`/${kind}/voice`, `${a.provider} has no voices`)
  for (const k of Object.keys(a.options ?? {})) {
    if (!reads.options.includes(k)) throw refuse(`/${kind}/options/${k}`, `is not an option of ${a.provider} (it reads: ${reads.options.join(', ') || 'none'})`)
  }
}

function checkAgent(body: Partial<Static<typeof AgentCreate>>): void {
  checkAdapter('stt', body.stt)
  checkAdapter('llm', body.llm)
  checkAdapter('tts', body.tts)
  // The offline recogniser has only its US English model (pocketsphinx-en-us).
  const stt = body.stt?.provider ?? 'pocketsphinx'
  if (body.language && !/^en(-|$)/i.test(body.language) && stt === 'pocketsphinx' && body.type !== 'websocket') {
    throw refuse('/language', `"${body.language}" cannot be recognised by the offline STT (pocketsphinx has English only): set stt.provider to deepgram`)
  }
  for (const [i, rule] of (body.rules ?? []).entries()) {
    const problem = rulePatternProblem(rule.match)
    if (problem) throw refuse(`/rules/${i}/match`, `(rule ${i + 1}, "${rule.match}") is not a usable pattern (RE2 syntax, matched in linear time): ${problem}`)
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
    // The agent as it would be after the patch must make sense, not the patch alone (e.g. `language` against the stored `stt`).
    const cur = found(await repo.get(req.auth.accountId, req.params.id), 'agent', req.params.id)
    const merged: Record<string, unknown> = { ...cur, ...req.body }
    for (const [k, v] of Object.entries(merged)) if (v === null) delete merged[k]
    checkAgent(merged as Partial<Static<typeof AgentCreate>>)
    return found(await repo.update(req.auth.accountId, req.params.id, req.body as never), 'agent', req.params.id)
  })
  app.delete('/agents/:id', { config, schema: { tags, summary: 'Delete an agent', params: IdParams, response: R.deleted } }, async (req, reply) => {
    found((await repo.delete(req.auth.accountId, req.params.id)) || null, 'agent', req.params.id)
    return reply.code(204).send(null)
  })
}
