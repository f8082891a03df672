import type { AgentConfigInput, HttpToolConfig } from '../agent/index.ts'
import { patternPhrases, stringValues } from '../agent/index.ts'
import type { Agent } from '../store/agents.ts'
import type { CallTool } from '../store/tools.ts'

/**
 * A stored agent (the API's shape) as the agent runtime's configuration for
 * one call: its adapters, rules, tools and the call's `{{name}}` variables.
 * Agent calls, a flow's `ai_talk`, and prompts spoken with an agent's voice
 * all start from it.
 */

/** What a call contributes to an agent's `{{name}}` variables. */
interface CallVariablesSource {
  callId: string
  from: string
  to: string
  direction: 'inbound' | 'outbound'
  metadata?: Record<string, unknown>
}

/**
 * The `{{name}}` values of one call: the call's metadata (POST /v1/calls)
 * wins over the agent's, and the built-ins (from, to, callId, direction,
 * agentName) win over both, so they always mean what the docs say.
 */
function callVariables(a: Agent, call: CallVariablesSource): Record<string, string> {
  return {
    ...stringValues(a.metadata),
    ...stringValues(call.metadata),
    from: call.from, to: call.to, callId: call.callId, direction: call.direction, agentName: a.name,
  }
}

/**
 * The stored agent (API shape) as the runtime's configuration, with the
 * agent's tools as the call loads them (store ToolRepository.forCall: enabled,
 * in the agent's account, with their signing secrets).
 *
 * `rules` drive the scripted model whether `llm` names it or is unset (the
 * demo sets both), and their plain-word patterns join `expectedPhrases`, so
 * the offline STT grammar hears what the rules listen for whatever the LLM.
 * With `call`, the call's `{{name}}` variables too.
 */
export function agentConfigFrom(a: Agent, tools: CallTool[] = [], call?: CallVariablesSource): AgentConfigInput {
  const adapter = (r: { provider: string; model?: string; voice?: string; options?: Record<string, unknown> } | undefined): { provider: string; options: Record<string, unknown> } | undefined =>
    r ? { provider: r.provider, options: { ...(r.options ?? {}), ...(r.model ? { model: r.model } : {}), ...(r.voice ? { voice: r.voice } : {}) } } : undefined
  const llm = a.llm ? adapter(a.llm)! : a.rules ? { provider: 'scripted', options: {} } : undefined
  if (llm?.provider === 'scripted' && a.rules) llm.options = { ...llm.options, rules: a.rules }
  const rulePhrases = (a.rules ?? []).flatMap((r) => patternPhrases(r.match))
  const expectedPhrases = [...(a.expectedPhrases ?? []), ...rulePhrases]
  const cfg: Record<string, unknown> = {
    id: a.id, name: a.name, type: a.type,
    ...(a.prompt ? { systemPrompt: a.prompt } : {}),
    ...(a.greeting ? { greeting: a.greeting } : {}),
    ...(a.language ? { language: a.language } : {}),
    ...(a.voice ? { voice: a.voice } : {}),
    ...(a.stt ? { stt: adapter(a.stt) } : {}),
    ...(a.tts ? { tts: adapter(a.tts) } : {}),
    ...(llm ? { llm } : {}),
    ...(tools.length ? { tools: tools.map(httpToolFrom) } : {}),
    ...(a.websocket ? { websocket: { url: a.websocket.url, ...(a.websocket.encapsulation ? { encapsulation: a.websocket.encapsulation } : {}) } } : {}),
    ...(a.transferTargets ? { transferTargets: a.transferTargets } : {}),
    ...(a.maxDurationSec ? { maxCallDurationMinutes: a.maxDurationSec / 60 } : {}),
    ...(a.silenceTimeoutSec ? { maxSilenceSeconds: a.silenceTimeoutSec } : {}),
    ...(a.summary ? { summary: a.summary.enabled, ...(a.summary.prompt ? { summaryPrompt: a.summary.prompt } : {}) } : {}),
    ...(a.aiSpeaksFirst !== undefined ? { aiSpeaksFirst: a.aiSpeaksFirst } : {}),
    ...(a.greetingInterruptible !== undefined ? { greetingInterruptible: a.greetingInterruptible } : {}),
    ...(expectedPhrases.length ? { expectedPhrases } : {}),
    ...(a.vad ? { vad: a.vad } : {}),
    ...(a.amd ? { amd: a.amd } : {}),
    ...(a.bargeIn ? { bargeIn: a.bargeIn } : {}),
    ...(a.greetingOutbound ? { greetingOutbound: a.greetingOutbound } : {}),
    ...(a.aiSpeaksFirstOutbound !== undefined ? { aiSpeaksFirstOutbound: a.aiSpeaksFirstOutbound } : {}),
    ...(a.recording?.enabled && a.recording.disclosure ? { disclosure: a.recording.disclosure } : {}),
    ...(a.vadSettings?.threshold !== undefined ? { vadThreshold: a.vadSettings.threshold } : {}),
    ...(a.vadSettings?.silenceMs !== undefined ? { vadSilenceDurationMs: a.vadSettings.silenceMs } : {}),
    ...(a.vadSettings?.prefixPaddingMs !== undefined ? { vadPrefixPaddingMs: a.vadSettings.prefixPaddingMs } : {}),
    ...(call ? { variables: callVariables(a, call) } : {}),
  }
  return cfg as AgentConfigInput
}

/** A stored tool (API shape) as the runtime's HTTP tool. */
function httpToolFrom(t: CallTool): HttpToolConfig {
  return {
    name: t.name, description: t.description, url: t.url, method: t.method, timeoutMs: t.timeoutMs, speakDuringExecution: t.speakDuringExecution,
    ...(t.headers ? { headers: t.headers } : {}),
    ...(t.inputSchema ? { inputSchema: t.inputSchema as HttpToolConfig['inputSchema'] } : {}),
    ...(t.secret ? { signingSecret: t.secret } : {}),
  }
}
