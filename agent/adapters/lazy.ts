/**
 * Adapters whose implementation module is imported on first need. The cloud
 * vendors' SDKs (openai, @elevenlabs/elevenlabs-js) cost seconds of module
 * load; an engine whose agents never use them must not pay for them at start.
 *
 * The factory in `builtin.ts` creates one of these when an agent is built and
 * starts the import right away, so by the time the first request comes (the
 * greeting, a turn) the module is usually loaded; the methods await it anyway.
 */
import type { SttAdapter, SttStream, SttStreamOptions } from './stt/contract.ts'
import type { LlmAdapter, LlmChunk, LlmRequest } from './llm/contract.ts'
import type { PcmChunk, TtsAdapter, TtsRequest, TtsStream } from './tts/contract.ts'

class LazyValue<T> {
  private promise: Promise<T> | undefined
  constructor(private readonly load: () => Promise<T>) {}

  get(): Promise<T> {
    this.promise ??= this.load()
    return this.promise
  }

  /** Start loading now; a failure surfaces on the first real use, not as an unhandled rejection. */
  warm(): void {
    this.get().catch(() => {})
  }
}

export class LazyLlm implements LlmAdapter {
  private readonly inner: LazyValue<LlmAdapter>
  constructor(
    readonly name: string,
    load: () => Promise<LlmAdapter>,
  ) {
    this.inner = new LazyValue(load)
    this.inner.warm()
  }

  async *chat(request: LlmRequest): AsyncIterable<LlmChunk> {
    const adapter = await this.inner.get()
    yield* adapter.chat(request)
  }
}

export class LazyStt implements SttAdapter {
  private readonly inner: LazyValue<SttAdapter>
  constructor(
    readonly name: string,
    load: () => Promise<SttAdapter>,
  ) {
    this.inner = new LazyValue(load)
    this.inner.warm()
  }

  async open(options: SttStreamOptions): Promise<SttStream> {
    return (await this.inner.get()).open(options)
  }
}

/**
 * A TtsStream whose real stream exists once the module is loaded. Synthesis
 * starts then, not when iteration begins: the runtime relies on adapters
 * starting eagerly so sentence n+1 is synthesized while sentence n plays.
 */
class LazyTtsStream implements TtsStream {
  private stream: TtsStream | undefined
  private readonly ready: Promise<TtsStream>

  constructor(adapter: Promise<TtsAdapter>, request: TtsRequest) {
    this.ready = adapter.then((a) => (this.stream = a.synthesize(request)))
    // Surfaced when iterated; a stream abandoned before iteration must not crash the process.
    this.ready.catch(() => {})
  }

  get ttfbMs(): number | undefined {
    return this.stream?.ttfbMs
  }

  async *[Symbol.asyncIterator](): AsyncIterator<PcmChunk> {
    yield* await this.ready
  }
}

export class LazyTts implements TtsAdapter {
  private readonly inner: LazyValue<TtsAdapter>
  constructor(
    readonly name: string,
    load: () => Promise<TtsAdapter>,
  ) {
    this.inner = new LazyValue(load)
    this.inner.warm()
  }

  synthesize(request: TtsRequest): TtsStream {
    return new LazyTtsStream(this.inner.get(), request)
  }
}
