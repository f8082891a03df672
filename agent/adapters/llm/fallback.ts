/**
 * LLM fallback chain (`../fallback-chain.ts`). The switch is clean only if the
 * failure happens before the first token; after that the next adapter
 * restarts the same request and already-spoken text is not retracted (the
 * caller may hear a repeat).
 */
import { AdapterError, isAbortError } from '../adapter-error.ts'
import { Health, StallError, nextWithin, type FallbackOptions } from '../fallback-chain.ts'
import type { LlmAdapter, LlmChunk, LlmRequest } from './contract.ts'

export class FallbackLlm implements LlmAdapter {
  readonly name: string
  private readonly health: Health
  constructor(
    private readonly chain: LlmAdapter[],
    private readonly opts: FallbackOptions = {},
  ) {
    this.name = `fallback(${chain.map((c) => c.name).join(',')})`
    this.health = new Health(opts.cooldownMs ?? 30000)
  }

  /** Union of the chain's phrases, so a scripted backup still shapes the STT grammar. */
  expectedPhrases(): string[] {
    return [...new Set(this.chain.flatMap((c) => c.expectedPhrases?.() ?? []))]
  }

  async *chat(request: LlmRequest): AsyncIterable<LlmChunk> {
    const order = this.health.order(this.chain.length)
    let lastError: unknown
    for (let k = 0; k < order.length; k++) {
      const i = order[k]!
      const adapter = this.chain[i]!
      const ac = new AbortController()
      const signal = AbortSignal.any([request.signal, ac.signal])
      const it = adapter.chat({ ...request, signal })[Symbol.asyncIterator]()
      let first = true
      try {
        for (;;) {
          const r = await nextWithin(it, first ? (this.opts.firstChunkTimeoutMs ?? 4000) : (this.opts.stallTimeoutMs ?? 8000))
          if (r.done) return
          first = false
          yield r.value
        }
      } catch (err) {
        ac.abort()
        void it.return?.()
        if (request.signal.aborted || (isAbortError(err) && !(err instanceof StallError))) throw err
        lastError = err
        this.health.fail(i)
        const next = order[k + 1]
        if (next !== undefined) this.opts.onSwitch?.('llm', adapter.name, this.chain[next]!.name, (err as Error).message)
      }
    }
    throw lastError instanceof Error ? lastError : new AdapterError('all LLM adapters failed', this.name)
  }
}
