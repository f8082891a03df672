/**
 * Public entry point of the agent module: what sip/app calls to put an agent on a call.
 *
 *   const agent = createAgent({ config: agentRecord, port, call: { id, from, to } })
 *   await agent.start()
 *   const result = await agent.done   // { reason, transcript, summary? }
 */
import type { OutboundUrlPolicy } from '../config/outbound-url-policy.ts'
import { registerBuiltinAdapters } from './adapters/builtin.ts'
import { createLlm, createStt, createTts, providerFields, providers } from './adapters/registry.ts'
import type { FallbackOptions } from './adapters/fallback-chain.ts'
import type { TtsAdapter } from './adapters/tts/contract.ts'
import type { SttAdapter } from './adapters/stt/contract.ts'
import type { ChatMessage } from './adapters/llm/contract.ts'
import { resolveAgentConfig, type AgentConfig, type AgentConfigInput } from './config.ts'
import type { AgentMediaPort } from './media-port.ts'
import { AgentRuntime } from './runtime.ts'
import { summarizeCall } from './summary.ts'
import type { AgentCallResult, AgentLogger, CallInfo } from './agent-events.ts'
import { WebsocketAgent } from './websocket-agent.ts'
import { ToolBox, type HostTools } from './tools.ts'

export interface CreateAgentOptions {
  config: AgentConfig | AgentConfigInput
  port: AgentMediaPort
  call?: CallInfo
  log?: AgentLogger
  fallback?: FallbackOptions
  /** Checked before each HTTP tool request; unset allows any URL. */
  urlPolicy?: OutboundUrlPolicy
  /** A pipeline agent continues this chat history (AgentRuntime.history()) instead of starting over. */
  history?: readonly ChatMessage[]
  /** The host tools (agent/tools.ts) the engine carries out for this call: each one given is offered to the LLM. */
  hostTools?: HostTools
}

/** What the SIP app holds for a call, whichever agent type it is. */
export interface CallAgent {
  start(): Promise<void>
  stop(): Promise<AgentCallResult>
  readonly done: Promise<AgentCallResult>
}

/** Pipeline agent (STT→LLM→TTS in the engine). */
export function createAgent(opts: CreateAgentOptions): AgentRuntime {
  registerBuiltinAdapters()
  const config = resolveAgentConfig(opts.config)
  return new AgentRuntime({
    config,
    port: opts.port,
    stt: createStt(config.stt, config, opts.fallback),
    llm: createLlm(config.llm, config, opts.fallback),
    tts: createTts(config.tts, config, opts.fallback),
    ...(opts.call ? { call: opts.call } : {}),
    ...(opts.log ? { log: opts.log } : {}),
    ...(opts.urlPolicy ? { urlPolicy: opts.urlPolicy } : {}),
    ...(opts.history ? { history: opts.history } : {}),
    ...(opts.hostTools ? { tools: new ToolBox(config.tools, config.toolsEnabled, config.transferTargets, opts.hostTools) } : {}),
  })
}

/**
 * The TTS an agent with this config speaks with (the offline default when the
 * config names none): for prompts spoken outside a conversation, e.g. the
 * API's `say` on a call.
 */
export function createAgentTts(input: AgentConfig | AgentConfigInput): TtsAdapter {
  registerBuiltinAdapters()
  const config = resolveAgentConfig(input)
  return createTts(config.tts, config)
}

/**
 * The STT an agent with this config listens with (the offline default,
 * pocketsphinx, when the config names none): for speech heard outside a
 * conversation, e.g. a flow's gather or live transcription on a call.
 */
export function createAgentStt(input: AgentConfig | AgentConfigInput): SttAdapter {
  registerBuiltinAdapters()
  const config = resolveAgentConfig(input)
  return createStt(config.stt, config)
}

/**
 * The summary agents write at the end of a call (summary.ts), with this
 * config's LLM and `summaryPrompt`, over a transcript as "Caller: …" /
 * "Agent: …" lines: for a summary asked for mid-call (a flow's `ai_summary`).
 */
export function summarizeTranscript(input: AgentConfig | AgentConfigInput, transcriptText: string, timeoutMs = 10_000): Promise<string | undefined> {
  registerBuiltinAdapters()
  const config = resolveAgentConfig(input)
  return summarizeCall(createLlm(config.llm, config), transcriptText, config.summaryPrompt, timeoutMs)
}

/** Any agent type: `pipeline` → AgentRuntime, `websocket` → WebsocketAgent (Twilio Media Streams). */
export function createCallAgent(opts: CreateAgentOptions): CallAgent {
  const config = resolveAgentConfig(opts.config)
  if (config.type === 'websocket') return new WebsocketAgent(config, opts.port, opts.call, opts.log, opts.urlPolicy)
  return createAgent({ ...opts, config })
}

export { AgentRuntime } from './runtime.ts'
export { WebsocketAgent } from './websocket-agent.ts'
export type { AgentCallResult, AgentEndReason, CallInfo, AgentLogger, ToolCallEvent } from './agent-events.ts'
export { resolveAgentConfig } from './config.ts'
export type { AgentConfig, AgentConfigInput, AdapterSpec, BargeInPolicy } from './config.ts'
export type { AgentMediaPort } from './media-port.ts'
export { registerLlm, registerStt, registerTts, providers, providerFields, type ProviderFields, type AdapterKind } from './adapters/registry.ts'
export { substituteVariables, stringValues } from './template-variables.ts'

/** The providers there are (built-ins registered first), for validating agents before any call. */
export function adapterCatalog(): { providers: ReturnType<typeof providers>; fields: typeof providerFields } {
  registerBuiltinAdapters()
  return { providers: providers(), fields: providerFields }
}
export type * from './adapters/adapter-error.ts'
export type * from './adapters/json.ts'
export type * from './adapters/stt/contract.ts'
export type * from './adapters/llm/contract.ts'
export type * from './adapters/tts/contract.ts'
export type { HttpToolConfig, TransferTarget, BuiltinToolName, HostToolName, HostToolRun, HostTools } from './tools.ts'
export { HOST_TOOL_NAMES } from './tools.ts'
export { patternPhrases } from './adapters/llm/scripted.ts'
export { rulePatternProblem } from './adapters/llm/rule-pattern.ts'
export { registerAgentMetrics, addAgentMetricSink, type AgentMetrics, type TurnStage } from './metrics.ts'
