/**
 * The STT contract (DESIGN.md "Agent adapters"), shaped after LiveKit
 * agents-js: a stream per call that takes inbound frames and yields
 * transcription events. Nothing here knows about RTP or SIP. A new vendor is
 * one file in this folder implementing `SttAdapter`, registered in
 * `../builtin.ts`.
 */
import type { AudioFrame } from '../../../audio/frame.ts'

export type SttEvent =
  | { type: 'partial'; text: string; at: number }
  | {
      type: 'final'
      text: string
      /** 0..1 when the engine reports it. */
      confidence?: number
      /** performance.now() when the engine delivered the result. */
      at: number
      /** Which engine/mode produced it (e.g. "grammar", "lm-fallback"); useful in transcripts. */
      source?: string
      /**
       * performance.now() when the engine closed the utterance, if earlier than
       * `at` (a second decoding pass): lets the runtime drop results for audio
       * that ended before the caller's current turn began.
       */
      utteranceEndAt?: number
    }
  | { type: 'end_of_utterance'; at: number }
  | { type: 'error'; error: Error; at: number }

export interface SttStreamOptions {
  /** Rate of the frames that will be pushed. */
  sampleRate: number
  language?: string
  /** Phrases the agent expects (IVR-style grammar hint; cloud engines use them as keywords). */
  phrases?: string[]
  signal?: AbortSignal
}

export interface SttStream {
  /** Push one inbound frame. Must not block; the frame buffer is reused by the caller, so copy. */
  push(frame: AudioFrame): void
  /** The turn-taker saw end of speech: finalize whatever is pending as soon as possible. */
  flush(): void
  /** Transcription events in order. Ends when the stream is closed. */
  events(): AsyncIterable<SttEvent>
  close(): Promise<void>
}

export interface SttAdapter {
  readonly name: string
  open(options: SttStreamOptions): Promise<SttStream>
}
