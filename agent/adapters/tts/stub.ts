/**
 * Zero-latency stub TTS for load tests and the benchmark: it isolates what
 * the engine itself adds (frame handling, VAD, queueing, scheduling).
 * Registered as provider "stub".
 */
import type { PcmChunk, TtsAdapter, TtsRequest, TtsStream } from './contract.ts'

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
