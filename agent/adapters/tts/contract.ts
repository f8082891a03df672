/**
 * The TTS contract (DESIGN.md "Agent adapters"), shaped after LiveKit
 * agents-js: synthesis streams PCM chunks at the engine's native rate and
 * takes an AbortSignal so barge-in can cancel it. A new vendor is one file in
 * this folder implementing `TtsAdapter`, registered in `../builtin.ts`.
 */
/** A chunk of mono 16-bit PCM at any rate (TTS engines have odd native rates, e.g. espeak-ng 22050 Hz). */
export interface PcmChunk {
  samples: Int16Array
  sampleRate: number
}

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
