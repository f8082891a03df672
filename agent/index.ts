/**
 * Public entry point of the agent module: what sip/app calls to put an agent on a call.
 *
 *   const agent = createAgent({ config: agentRecord, port, call: { id, from, to } })
 *   await agent.start()
 *   const result = await agent.done   // { reason, transcript, summary? }
 */
import { registerBuiltinAdapters } from './adapters/builtin.ts'
import { createLlm, createStt, createTts } from './adapters/registry.ts'
import type { FallbackOptions } from './adapters/fallback.ts'
import { resolveAgentConfig, type AgentConfig, type AgentConfigInput } from './config.ts'
import type { AgentMediaPort } from './media-port.ts'
import { AgentRuntime, type AgentLogger, type CallInfo } from './runtime.ts'

export interface CreateAgentOptions {
  config: AgentConfig | AgentConfigInput
  port: AgentMediaPort
  call?: CallInfo
  log?: AgentLogger
  fallback?: FallbackOptions
}

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
  })
}

export { AgentRuntime } from './runtime.ts'
export type { AgentCallResult, AgentEndReason, CallInfo, AgentLogger, ToolCallEvent } from './runtime.ts'
export { resolveAgentConfig } from './config.ts'
export type { AgentConfig, AgentConfigInput, AdapterSpec, BargeInPolicy } from './config.ts'
export type { AgentMediaPort } from './media-port.ts'
export { registerLlm, registerStt, registerTts, providers } from './adapters/registry.ts'
export type * from './adapters/types.ts'
export type { HttpToolConfig, TransferTarget, BuiltinToolName } from './tools.ts'
