/**
 * TTS fallback chain (`../fallback-chain.ts`). The switch is clean only if the
 * failure happens before the first byte; after that the next adapter restarts
 * the same sentence (the caller may hear a repeat).
 */
import { performance } from 'node:perf_hooks'
import { Channel } from '../../channel.ts'
import { AdapterError } from '../adapter-error.ts'
import { Health, nextWithin, type FallbackOptions } from '../fallback-chain.ts'
import type { PcmChunk, TtsAdapter, TtsRequest, TtsStream } from './contract.ts'

class FallbackTtsStream implements TtsStream {
  ttfbMs: number | undefined
  private readonly out = new Channel<PcmChunk>()
  constructor(owner: FallbackTts, request: TtsRequest) {
    const started = performance.now()
    void (async () => {
      const order = owner.health.order(owner.chain.length)
      let lastError: unknown
      for (let k = 0; k < order.length; k++) {
        const i = order[k]!
        const adapter = owner.chain[i]!
        const ac = new AbortController()
        const it = adapter.synthesize({ ...request, signal: AbortSignal.any([request.signal, ac.signal]) })[Symbol.asyncIterator]()
        let first = true
        try {
          for (;;) {
            const r = await nextWithin(it, first ? (owner.opts.firstChunkTimeoutMs ?? 3000) : (owner.opts.stallTimeoutMs ?? 5000))
            if (r.done) {
              this.out.close()
              return
            }
            if (first) this.ttfbMs = performance.now() - started
            first = false
            this.out.push(r.value)
          }
        } catch (err) {
          ac.abort()
          if (request.signal.aborted) {
            this.out.close()
            return
          }
          lastError = err
          owner.health.fail(i)
          const next = order[k + 1]
          if (next !== undefined) owner.opts.onSwitch?.('tts', adapter.name, owner.chain[next]!.name, (err as Error).message)
        }
      }
      this.out.close(lastError instanceof Error ? lastError : new AdapterError('all TTS adapters failed', owner.name))
    })()
  }
  [Symbol.asyncIterator](): AsyncIterator<PcmChunk> {
    return this.out[Symbol.asyncIterator]()
  }
}

export class FallbackTts implements TtsAdapter {
  readonly name: string
  readonly health: Health
  constructor(
    readonly chain: TtsAdapter[],
    readonly opts: FallbackOptions = {},
  ) {
    this.name = `fallback(${chain.map((c) => c.name).join(',')})`
    this.health = new Health(opts.cooldownMs ?? 30000)
  }
  synthesize(request: TtsRequest): TtsStream {
    return new FallbackTtsStream(this, request)
  }
}
