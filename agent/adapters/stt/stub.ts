/**
 * Zero-latency stub STT for load tests and the benchmark: it isolates what
 * the engine itself adds (frame handling, VAD, queueing, scheduling).
 * Registered as provider "stub".
 */
import { performance } from 'node:perf_hooks'
import type { AudioFrame } from '../../../audio/frame.ts'
import { Channel } from '../../channel.ts'
import type { SttAdapter, SttEvent, SttStream, SttStreamOptions } from './contract.ts'

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
