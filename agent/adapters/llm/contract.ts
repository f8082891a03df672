/**
 * The LLM contract (DESIGN.md "Agent adapters"), shaped after LiveKit
 * agents-js: a chat request streams text and tool calls, and takes an
 * AbortSignal so barge-in can cancel it. A new vendor is one file in this
 * folder implementing `LlmAdapter`, registered in `../builtin.ts`.
 */
import type { JsonSchema } from '../json.ts'

export interface ToolCall {
  id: string
  name: string
  /** JSON text, as produced by the model. */
  arguments: string
}

export type ChatMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string; toolCalls?: ToolCall[] }
  | { role: 'tool'; toolCallId: string; name: string; content: string }

/** A tool as the LLM sees it (JSON Schema parameters, OpenAI function-calling shape). */
export interface ToolDefinition {
  name: string
  description: string
  parameters: JsonSchema
}

export interface LlmRequest {
  messages: ChatMessage[]
  tools: ToolDefinition[]
  temperature?: number
  signal: AbortSignal
  /**
   * Why the runtime asks: a conversational `reply` (default) or the end-of-call
   * `summary` (transcript in, prose out, no tools). Real models just follow the
   * prompt; the scripted model needs to know.
   */
  purpose?: 'reply' | 'summary'
}

export type LlmChunk =
  | { type: 'text'; text: string }
  | { type: 'tool_call'; call: ToolCall }
  | { type: 'done'; finishReason: string }

export interface LlmAdapter {
  readonly name: string
  chat(request: LlmRequest): AsyncIterable<LlmChunk>
  /** Phrases the model's rules listen for (scripted model): feeds the STT grammar. */
  expectedPhrases?(): string[]
}
