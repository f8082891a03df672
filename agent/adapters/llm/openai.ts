/**
 * OpenAI-compatible chat completions with streamed tool calls, via the
 * official `openai` SDK. The base URL makes it cover OpenAI, Groq, vLLM,
 * Ollama and llama.cpp server. Tool-call deltas arrive in fragments keyed by
 * `index` (id and name first, then argument pieces); they are assembled and
 * emitted once the stream says the call is complete.
 */
import OpenAI from 'openai'
import type { ChatCompletionMessageParam, ChatCompletionTool } from 'openai/resources/chat/completions'
import { AdapterError } from '../adapter-error.ts'
import type { ChatMessage, LlmAdapter, LlmChunk, LlmRequest, ToolDefinition } from './contract.ts'

export interface OpenAiLlmOptions {
  apiKey?: string
  baseURL?: string
  model: string
  temperature?: number
  maxTokens?: number
  /** SDK-level retries before the first byte (the fallback chain handles the rest). */
  maxRetries?: number
  timeoutMs?: number
}

export function toOpenAiMessages(messages: ChatMessage[]): ChatCompletionMessageParam[] {
  return messages.map((m): ChatCompletionMessageParam => {
    switch (m.role) {
      case 'system':
        return { role: 'system', content: m.content }
      case 'user':
        return { role: 'user', content: m.content }
      case 'assistant':
        return m.toolCalls?.length
          ? { role: 'assistant', content: m.content || null, tool_calls: m.toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })) }
          : { role: 'assistant', content: m.content }
      case 'tool':
        return { role: 'tool', tool_call_id: m.toolCallId, content: m.content }
    }
  })
}

function toOpenAiTools(tools: ToolDefinition[]): ChatCompletionTool[] {
  return tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } }))
}

export class OpenAiLlm implements LlmAdapter {
  readonly name = 'openai'
  private readonly client: OpenAI

  constructor(private readonly opts: OpenAiLlmOptions) {
    this.client = new OpenAI({
      apiKey: opts.apiKey ?? process.env.OPENAI_API_KEY ?? 'not-needed-for-local-servers',
      ...(opts.baseURL ? { baseURL: opts.baseURL } : {}),
      maxRetries: opts.maxRetries ?? 0,
      timeout: opts.timeoutMs ?? 30000,
    })
  }

  async *chat(request: LlmRequest): AsyncIterable<LlmChunk> {
    const temperature = request.temperature ?? this.opts.temperature
    let stream
    try {
      stream = await this.client.chat.completions.create(
        {
          model: this.opts.model,
          messages: toOpenAiMessages(request.messages),
          stream: true,
          ...(request.tools.length ? { tools: toOpenAiTools(request.tools) } : {}),
          ...(temperature !== undefined ? { temperature } : {}),
          ...(this.opts.maxTokens ? { max_tokens: this.opts.maxTokens } : {}),
        },
        { signal: request.signal },
      )
    } catch (err) {
      throw wrap(err)
    }
    const calls = new Map<number, { id: string; name: string; arguments: string }>()
    let finish: string | undefined
    try {
      for await (const chunk of stream) {
        const choice = chunk.choices[0]
        if (!choice) continue
        const d = choice.delta
        if (d?.content) yield { type: 'text', text: d.content }
        for (const tc of d?.tool_calls ?? []) {
          const cur = calls.get(tc.index) ?? { id: '', name: '', arguments: '' }
          if (tc.id) cur.id = tc.id
          if (tc.function?.name) cur.name += tc.function.name
          if (tc.function?.arguments) cur.arguments += tc.function.arguments
          calls.set(tc.index, cur)
        }
        if (choice.finish_reason) finish = choice.finish_reason
      }
    } catch (err) {
      throw wrap(err)
    }
    if (request.signal.aborted) return
    // A dropped connection can look like a normal end of stream to the SSE
    // reader; every conforming server sends a finish_reason, so its absence
    // means the reply is truncated.
    if (finish === undefined) throw new AdapterError('openai: stream ended without finish_reason (disconnected?)', this.name)
    if (finish === 'content_filter') throw new AdapterError('openai: content_filter', this.name, undefined, false)
    for (const [, c] of [...calls.entries()].sort((a, b) => a[0] - b[0])) {
      yield { type: 'tool_call', call: { id: c.id || `call_${c.name}`, name: c.name, arguments: c.arguments || '{}' } }
    }
    yield { type: 'done', finishReason: finish }
  }
}

function wrap(err: unknown): Error {
  if (err instanceof OpenAI.APIUserAbortError) return err
  if (err instanceof OpenAI.APIError) {
    return new AdapterError(`openai: ${err.status ?? ''} ${err.message}`.trim(), 'openai', err.status, err.status === undefined || err.status === 429 || err.status >= 500)
  }
  return err instanceof Error ? err : new Error(String(err))
}
