/**
 * Zero-latency stub LLM for load tests and the benchmark: it isolates what
 * the engine itself adds (frame handling, VAD, queueing, scheduling).
 * Registered as provider "stub".
 */
import type { LlmAdapter, LlmChunk, LlmRequest } from './contract.ts'

export class StubLlm implements LlmAdapter {
  readonly name = 'stub'
  constructor(private readonly reply = 'Okay. This is a reply of moderate length so that the caller has something to interrupt.') {}
  async *chat(r: LlmRequest): AsyncIterable<LlmChunk> {
    for (const t of this.reply.match(/\S+\s*/g) ?? []) {
      r.signal.throwIfAborted()
      yield { type: 'text', text: t }
    }
    yield { type: 'done', finishReason: 'stop' }
  }
}
