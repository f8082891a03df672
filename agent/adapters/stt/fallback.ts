/** STT fallback chain (`../fallback-chain.ts`). */
import { performance } from 'node:perf_hooks'
import type { AudioFrame } from '../../../audio/frame.ts'
import { Channel } from '../../channel.ts'
import { AdapterError } from '../adapter-error.ts'
import type { FallbackOptions } from '../fallback-chain.ts'
import type { SttAdapter, SttEvent, SttStream, SttStreamOptions } from './contract.ts'

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
