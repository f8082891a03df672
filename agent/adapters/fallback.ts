/**
 * Fallback chains per adapter kind: when the primary vendor errors or stalls
 * past a deadline, the next one takes over mid-call without dropping the turn.
 * A failed adapter sits out a cool-down so later turns skip it straight away.
 *
 * Limits: LLM/TTS switch over cleanly only if the failure happens before the
 * first token/byte; after that the next adapter restarts the same request and
 * already-spoken text is not retracted (the caller may hear a repeat).
 */
import { performance } from 'node:perf_hooks'
import type { AudioFrame } from '../../audio/frame.ts'
import { Channel } from '../channel.ts'
import {
  AdapterError,
  isAbortError,
  type LlmAdapter,
  type LlmChunk,
  type LlmRequest,
  type PcmChunk,
  type SttAdapter,
  type SttEvent,
  type SttStream,
  type SttStreamOptions,
  type TtsAdapter,
  type TtsRequest,
  type TtsStream,
} from './types.ts'

export interface FallbackOptions {
  /** No first chunk within this → next adapter. */
  firstChunkTimeoutMs?: number
  /** Gap between chunks beyond this → next adapter. */
  stallTimeoutMs?: number
  /** How long a failed adapter is skipped. */
  cooldownMs?: number
  onSwitch?(kind: 'stt' | 'llm' | 'tts', from: string, to: string, reason: string): void
}

class Health {
  private until = new Map<number, number>()
  constructor(private readonly cooldownMs: number) {}
  order(n: number): number[] {
    const now = performance.now()
    const idx = [...Array(n).keys()]
    return [...idx.filter((i) => (this.until.get(i) ?? 0) <= now), ...idx.filter((i) => (this.until.get(i) ?? 0) > now)]
  }
  fail(i: number): void {
    this.until.set(i, performance.now() + this.cooldownMs)
  }
}

class StallError extends Error {
  constructor(ms: number) {
    super(`no data within ${ms} ms`)
    this.name = 'StallError'
  }
}

async function nextWithin<T>(it: AsyncIterator<T>, ms: number): Promise<IteratorResult<T>> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      it.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new StallError(ms)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

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

/**
 * STT: frames keep flowing; if the active stream errors (or fails to open),
 * the next adapter is opened and gets the following frames. The utterance in
 * flight at the moment of failure is re-sent from a short replay buffer.
 */
class FallbackSttStream implements SttStream {
  private readonly out = new Channel<SttEvent>()
  private current: SttStream | undefined
  private index = 0
  private replay: AudioFrame[] = []
  private closed = false
  private switching: Promise<void> | undefined

  constructor(
    private readonly owner: FallbackStt,
    private readonly options: SttStreamOptions,
  ) {}

  async start(): Promise<void> {
    await this.openFrom(0)
  }

  private async openFrom(start: number): Promise<void> {
    let lastError: unknown
    for (let i = start; i < this.owner.chain.length; i++) {
      try {
        const s = await this.owner.chain[i]!.open(this.options)
        this.current = s
        this.index = i
        void this.pump(s, i)
        return
      } catch (err) {
        lastError = err
      }
    }
    throw lastError instanceof Error ? lastError : new AdapterError('all STT adapters failed', this.owner.name)
  }

  private async pump(s: SttStream, i: number): Promise<void> {
    try {
      for await (const e of s.events()) {
        if (e.type === 'error') throw e.error
        if (e.type === 'final') this.replay = []
        this.out.push(e)
      }
    } catch (err) {
      if (this.closed || this.current !== s) return
      const next = i + 1
      if (next >= this.owner.chain.length) {
        this.out.push({ type: 'error', error: err as Error, at: performance.now() })
        return
      }
      this.owner.opts.onSwitch?.('stt', this.owner.chain[i]!.name, this.owner.chain[next]!.name, (err as Error).message)
      this.current = undefined
      void s.close().catch(() => {})
      this.switching = this.openFrom(next).then(
        () => {
          for (const f of this.replay) this.current?.push(f)
        },
        (e: unknown) => this.out.push({ type: 'error', error: e as Error, at: performance.now() }),
      )
    }
  }

  push(frame: AudioFrame): void {
    // Keep ~10 s so a switch can re-send the utterance in flight.
    this.replay.push({ ...frame, samples: frame.samples.slice() })
    if (this.replay.length > 500) this.replay.shift()
    this.current?.push(frame)
  }
  flush(): void {
    this.current?.flush()
  }
  events(): AsyncIterable<SttEvent> {
    return this.out
  }
  get activeIndex(): number {
    return this.index
  }
  async close(): Promise<void> {
    this.closed = true
    await this.switching
    await this.current?.close()
    this.out.close()
  }
}

export class FallbackStt implements SttAdapter {
  readonly name: string
  constructor(
    readonly chain: SttAdapter[],
    readonly opts: FallbackOptions = {},
  ) {
    this.name = `fallback(${chain.map((c) => c.name).join(',')})`
  }
  async open(options: SttStreamOptions): Promise<SttStream> {
    const s = new FallbackSttStream(this, options)
    await s.start()
    return s
  }
}
