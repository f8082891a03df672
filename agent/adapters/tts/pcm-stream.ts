/**
 * Shared plumbing for HTTP TTS vendors that stream raw 16-bit LE PCM: turns a
 * byte stream into PcmChunks (carrying odd bytes across chunk boundaries),
 * measures time-to-first-byte, and maps errors to AdapterError.
 */
import { performance } from 'node:perf_hooks'
import { Channel } from '../../channel.ts'
import { AdapterError } from '../adapter-error.ts'
import type { PcmChunk, TtsStream } from './contract.ts'

export class HttpPcmStream implements TtsStream {
  ttfbMs: number | undefined
  private readonly out = new Channel<PcmChunk>()

  constructor(
    adapter: string,
    sampleRate: number,
    signal: AbortSignal,
    open: () => Promise<AsyncIterable<Uint8Array>>,
    mapError: (err: unknown) => Error,
  ) {
    const started = performance.now()
    void (async () => {
      let carry: Buffer = Buffer.alloc(0)
      let bytes = 0
      try {
        const body = await open()
        for await (const part of body) {
          if (signal.aborted) break
          const buf: Buffer = carry.length ? Buffer.concat([carry, Buffer.from(part)]) : Buffer.from(part)
          const even = buf.length & ~1
          carry = buf.subarray(even)
          if (even === 0) continue
          const samples = new Int16Array(even / 2)
          for (let i = 0; i < samples.length; i++) samples[i] = buf.readInt16LE(i * 2)
          bytes += even
          this.ttfbMs ??= performance.now() - started
          this.out.push({ samples, sampleRate })
        }
        if (!signal.aborted && bytes === 0) throw new AdapterError(`${adapter}: empty audio response`, adapter)
        this.out.close()
      } catch (err) {
        if (signal.aborted) this.out.close()
        else this.out.close(mapError(err))
      }
    })()
  }

  [Symbol.asyncIterator](): AsyncIterator<PcmChunk> {
    return this.out[Symbol.asyncIterator]()
  }
}

/** Web ReadableStream → async iterable (Node's web streams are async-iterable at runtime, not in every lib typing). */
export async function* iterateWebStream(stream: ReadableStream<Uint8Array>): AsyncIterable<Uint8Array> {
  const reader = stream.getReader()
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      if (value) yield value
    }
  } finally {
    reader.releaseLock()
  }
}
