/**
 * Zero-latency stub adapters for load tests and the benchmark: they isolate
 * what the engine itself adds (frame handling, VAD, queueing, scheduling).
 * Registered as provider "stub" for every kind.
 */
import { performance } from 'node:perf_hooks'
import type { AudioFrame } from '../../audio/frame.ts'
import { Channel } from '../channel.ts'
import type { LlmAdapter, LlmChunk, LlmRequest, PcmChunk, SttAdapter, SttEvent, SttStream, SttStreamOptions, TtsAdapter, TtsRequest, TtsStream } from './types.ts'

/** Emits `text` as a final as soon as the turn-taker flushes. */
export class StubStt implements SttAdapter {
  readonly name = 'stub'
  constructor(private readonly text = 'hello') {}
  async open(_o: SttStreamOptions): Promise<SttStream> {
    const out = new Channel<SttEvent>()
    const text = this.text
    return {
      push(_f: AudioFrame) {},
      flush() {
        const at = performance.now()
        out.push({ type: 'final', text, at, source: 'stub' })
        out.push({ type: 'end_of_utterance', at })
      },
      events: () => out,
      close: async () => out.close(),
    }
  }
}

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

/**
 * Returns a tone of ~60 ms per character at 16 kHz in 100 ms chunks, each made
 * when the consumer asks for it (like a vendor stream, not one big burst).
 */
export class StubTts implements TtsAdapter {
  readonly name = 'stub'
  constructor(private readonly msPerChar = 60) {}
  synthesize(r: TtsRequest): TtsStream {
    const total = Math.round((16000 * this.msPerChar * r.text.length) / 1000)
    async function* gen(): AsyncGenerator<PcmChunk> {
      for (let off = 0; off < total && !r.signal.aborted; off += 1600) {
        const n = Math.min(1600, total - off)
        const s = new Int16Array(n)
        for (let i = 0; i < n; i++) s[i] = Math.round(3000 * Math.sin(((off + i) * 2 * Math.PI * 220) / 16000))
        yield { samples: s, sampleRate: 16000 }
      }
    }
    const it = gen()
    return { ttfbMs: 0, [Symbol.asyncIterator]: () => it }
  }
}
