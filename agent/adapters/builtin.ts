/**
 * Registers the providers that ship with the engine. Imported once by
 * `agent/index.ts`; a deployment can register more before creating agents.
 */
import type { JsonValue } from './json.ts'
import { registerLlm, registerStt, registerTts, type AdapterOptions } from './registry.ts'
import { ScriptedLlm, type ScriptedRule } from './llm/scripted.ts'
import { PocketsphinxStt } from './stt/pocketsphinx.ts'
import { EspeakTts } from './tts/espeak.ts'
import { StubStt } from './stt/stub.ts'
import { StubLlm } from './llm/stub.ts'
import { StubTts } from './tts/stub.ts'
import { LazyLlm, LazyStt, LazyTts } from './lazy.ts'
// Cloud vendors are imported when an agent using them is created (see lazy.ts):
// their SDKs cost seconds of module load that engines without them must not pay.
const loadOpenAiLlm = () => import('./llm/openai.ts')
const loadDeepgramStt = () => import('./stt/deepgram.ts')
const loadOpenAiTts = () => import('./tts/openai.ts')
const loadElevenLabsTts = () => import('./tts/elevenlabs.ts')

export function str(o: AdapterOptions, k: string): string | undefined {
  const v = o[k]
  return typeof v === 'string' ? v : undefined
}
export function num(o: AdapterOptions, k: string): number | undefined {
  const v = o[k]
  return typeof v === 'number' ? v : undefined
}
export function bool(o: AdapterOptions, k: string): boolean | undefined {
  const v = o[k]
  return typeof v === 'boolean' ? v : undefined
}
export function strList(o: AdapterOptions, k: string): string[] | undefined {
  const v = o[k]
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined
}

type JsonObject = { [key: string]: JsonValue }

/**
 * The stored agent's rule shape (control-api / store `ScriptRule`):
 * `{ match: regex, reply?, tool?: name, args?, transferTo?, hangup? }`, as the
 * scripted model's rule. Recognised by its `match` key. With a `tool`, the
 * reply is said once the tool has answered, `{result}` / `{result.field}`
 * standing for its result (the tool's `speakDuringExecution` line covers the wait);
 * without a reply the result itself is said.
 */
function fromStoredRule(r: JsonObject): ScriptedRule {
  const args = r.args
  const reply = typeof r.reply === 'string' ? r.reply : undefined
  return {
    id: String(r.match),
    pattern: String(r.match),
    ...(reply !== undefined ? (typeof r.tool === 'string' ? { afterTool: reply } : { reply }) : {}),
    ...(typeof r.tool === 'string' ? { tool: { name: r.tool, ...(args && typeof args === 'object' && !Array.isArray(args) ? { arguments: args } : {}) } } : {}),
    ...(typeof r.transferTo === 'string' ? { transferTo: r.transferTo } : {}),
    ...(r.hangup === true ? { endCall: true } : {}),
  }
}

function asRules(v: JsonValue | undefined): ScriptedRule[] {
  // Rules come from stored JSON (the agent record); shape-checked loosely: unknown keys are ignored.
  if (!Array.isArray(v)) return []
  return v
    .filter((r): r is JsonObject => !!r && typeof r === 'object' && !Array.isArray(r))
    .map((r) => (typeof r.match === 'string' ? fromStoredRule(r) : (r as unknown as ScriptedRule)))
}

let done = false
export function registerBuiltinAdapters(): void {
  if (done) return
  done = true
  registerStt('pocketsphinx', (o) => {
    const phrases = strList(o, 'phrases')
    const fb = bool(o, 'lmFallback')
    const lvl = num(o, 'bandFillLevel')
    return new PocketsphinxStt({ ...(phrases ? { phrases } : {}), ...(fb !== undefined ? { lmFallback: fb } : {}), ...(lvl !== undefined ? { bandFillLevel: lvl } : {}) })
  }, { model: false, voice: false, options: ['phrases', 'lmFallback', 'bandFillLevel'] })
  registerTts('espeak', (o, agent) => {
    const voice = str(o, 'voice') ?? agent.voice ?? agent.language
    const speed = num(o, 'speed')
    return new EspeakTts({ ...(voice ? { voice } : {}), ...(speed !== undefined ? { speed } : {}) })
  }, { model: false, voice: true, options: ['voice', 'speed'] })
  registerStt('deepgram', (o, agent) => {
    const lang = str(o, 'language') ?? agent.language
    const apiKey = str(o, 'apiKey')
    const baseUrl = str(o, 'baseUrl')
    const model = str(o, 'model')
    const endpointingMs = num(o, 'endpointingMs')
    return new LazyStt('deepgram', async () => new (await loadDeepgramStt()).DeepgramStt({ ...(lang ? { language: lang } : {}), ...(apiKey ? { apiKey } : {}), ...(baseUrl ? { baseUrl } : {}), ...(model ? { model } : {}), ...(endpointingMs !== undefined ? { endpointingMs } : {}) }))
  }, { model: true, voice: false, options: ['language', 'apiKey', 'baseUrl', 'model', 'endpointingMs'] })
  registerLlm('openai', (o, agent) => {
    const apiKey = str(o, 'apiKey')
    const baseURL = str(o, 'baseURL') ?? str(o, 'baseUrl')
    const temperature = num(o, 'temperature') ?? agent.temperature
    const maxTokens = num(o, 'maxTokens')
    const timeoutMs = num(o, 'timeoutMs')
    return new LazyLlm('openai', async () => new (await loadOpenAiLlm()).OpenAiLlm({ model: str(o, 'model') ?? 'gpt-4o-mini', ...(apiKey ? { apiKey } : {}), ...(baseURL ? { baseURL } : {}), ...(temperature !== undefined ? { temperature } : {}), ...(maxTokens !== undefined ? { maxTokens } : {}), ...(timeoutMs !== undefined ? { timeoutMs } : {}) }))
  }, { model: true, voice: false, options: ['apiKey', 'baseURL', 'baseUrl', 'model', 'temperature', 'maxTokens', 'timeoutMs'] })
  registerTts('openai', (o, agent) => {
    const apiKey = str(o, 'apiKey')
    const baseURL = str(o, 'baseURL') ?? str(o, 'baseUrl')
    const model = str(o, 'model')
    const voice = str(o, 'voice') ?? agent.voice
    return new LazyTts('openai-tts', async () => new (await loadOpenAiTts()).OpenAiTts({ ...(apiKey ? { apiKey } : {}), ...(baseURL ? { baseURL } : {}), ...(model ? { model } : {}), ...(voice ? { voice } : {}) }))
  }, { model: true, voice: true, options: ['apiKey', 'baseURL', 'baseUrl', 'model', 'voice'] })
  registerTts('elevenlabs', (o, agent) => {
    const apiKey = str(o, 'apiKey')
    const baseUrl = str(o, 'baseUrl')
    // The API's `voice` / `model` arrive as options `voice` / `model` (agentConfigFrom).
    const voiceId = str(o, 'voiceId') ?? str(o, 'voice') ?? agent.voice
    const modelId = str(o, 'modelId') ?? str(o, 'model')
    const rate = num(o, 'sampleRate')
    const sampleRate = rate === 8000 || rate === 16000 || rate === 22050 || rate === 24000 || rate === 44100 ? rate : undefined
    return new LazyTts('elevenlabs', async () => new (await loadElevenLabsTts()).ElevenLabsTts({ ...(apiKey ? { apiKey } : {}), ...(baseUrl ? { baseUrl } : {}), ...(voiceId ? { voiceId } : {}), ...(modelId ? { modelId } : {}), ...(sampleRate ? { sampleRate } : {}) }))
  }, { model: true, voice: true, options: ['apiKey', 'baseUrl', 'voiceId', 'voice', 'modelId', 'model', 'sampleRate'] })
  registerStt('stub', (o) => new StubStt(str(o, 'text')), { model: false, voice: false, options: ['text'] })
  registerLlm('stub', (o) => new StubLlm(str(o, 'reply')), { model: false, voice: false, options: ['reply'] })
  registerTts('stub', (o) => new StubTts(num(o, 'msPerChar')), { model: false, voice: false, options: ['msPerChar'] })
  registerLlm('scripted', (o) => {
    const fallback = str(o, 'fallback')
    const d = num(o, 'firstTokenDelayMs')
    return new ScriptedLlm({ rules: asRules(o.rules), ...(fallback ? { fallback } : {}), ...(d !== undefined ? { firstTokenDelayMs: d } : {}) })
  }, { model: false, voice: false, options: ['rules', 'fallback', 'firstTokenDelayMs'] })
}
