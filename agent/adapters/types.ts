/**
 * Adapter contracts for the agent pipeline (DESIGN.md "Agent adapters").
 *
 * Shaped after LiveKit agents-js: every adapter streams, every long operation
 * takes an AbortSignal so barge-in can cancel it, and nothing here knows about
 * RTP or SIP. A new vendor is one file that implements one of these interfaces
 * and registers a factory in `registry.ts`.
 */
import type { AudioFrame } from '../../audio/frame.ts'

/** A chunk of mono 16-bit PCM at any rate (TTS engines have odd native rates, e.g. espeak-ng 22050 Hz). */
export interface PcmChunk {
  samples: Int16Array
  sampleRate: number
}

// ---------------------------------------------------------------- STT

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

// ---------------------------------------------------------------- LLM

export interface ToolCall {
  id: string
  name: string
  /** JSON text, as produced by the model. */
  arguments: string
}

export type ChatMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string; toolCalls?: ToolCall[] }
  | { role: 'tool'; toolCallId: string; name: string; content: string }

/** A tool as the LLM sees it (JSON Schema parameters, OpenAI function-calling shape). */
export interface ToolDefinition {
  name: string
  description: string
  parameters: JsonSchema
}

export type JsonSchema = { [key: string]: JsonValue }
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

export interface LlmRequest {
  messages: ChatMessage[]
  tools: ToolDefinition[]
  temperature?: number
  signal: AbortSignal
  /**
   * Why the runtime asks: a conversational `reply` (default) or the end-of-call
   * `summary` (transcript in, prose out, no tools). Real models just follow the
   * prompt; the scripted model needs to know.
   */
  purpose?: 'reply' | 'summary'
}

export type LlmChunk =
  | { type: 'text'; text: string }
  | { type: 'tool_call'; call: ToolCall }
  | { type: 'done'; finishReason: string }

export interface LlmAdapter {
  readonly name: string
  chat(request: LlmRequest): AsyncIterable<LlmChunk>
  /** Phrases the model's rules listen for (scripted model): feeds the STT grammar. */
  expectedPhrases?(): string[]
}

// ---------------------------------------------------------------- TTS

export interface TtsRequest {
  text: string
  voice?: string
  language?: string
  signal: AbortSignal
}

export interface TtsStream extends AsyncIterable<PcmChunk> {
  /** ms from request to first PCM byte; undefined until the first chunk arrived. */
  readonly ttfbMs: number | undefined
}

export interface TtsAdapter {
  readonly name: string
  synthesize(request: TtsRequest): TtsStream
}

/** Thrown (or yielded as an error) by adapters when the vendor reports an error; carries the vendor status. */
export class AdapterError extends Error {
  constructor(
    message: string,
    readonly adapter: string,
    readonly status?: number,
    readonly retryable = true,
  ) {
    super(message)
    this.name = 'AdapterError'
  }
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.name === 'APIUserAbortError')
}
