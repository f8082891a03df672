/**
 * OpenAI TTS (`/v1/audio/speech`) via the official SDK, `response_format: "pcm"`
 * = raw 24 kHz 16-bit LE mono, streamed as it is generated.
 */
import OpenAI from 'openai'
import { AdapterError } from '../adapter-error.ts'
import type { TtsAdapter, TtsRequest, TtsStream } from './contract.ts'
import { HttpPcmStream, iterateWebStream } from './pcm-stream.ts'

export interface OpenAiTtsOptions {
  apiKey?: string
  baseURL?: string
  model?: string
  voice?: string
  speed?: number
  instructions?: string
}

export class OpenAiTts implements TtsAdapter {
  readonly name = 'openai-tts'
  private readonly client: OpenAI
  constructor(private readonly opts: OpenAiTtsOptions = {}) {
    this.client = new OpenAI({ apiKey: opts.apiKey ?? process.env.OPENAI_API_KEY ?? 'not-needed-for-local-servers', ...(opts.baseURL ? { baseURL: opts.baseURL } : {}), maxRetries: 0 })
  }

  synthesize(request: TtsRequest): TtsStream {
    return new HttpPcmStream(
      this.name,
      24000,
      request.signal,
      async () => {
        const res = await this.client.audio.speech.create(
          {
            model: this.opts.model ?? 'gpt-4o-mini-tts',
            voice: request.voice ?? this.opts.voice ?? 'alloy',
            input: request.text,
            response_format: 'pcm',
            ...(this.opts.speed ? { speed: this.opts.speed } : {}),
            ...(this.opts.instructions ? { instructions: this.opts.instructions } : {}),
          },
          { signal: request.signal },
        )
        if (!res.body) throw new AdapterError('openai-tts: no body', this.name)
        return iterateWebStream(res.body as ReadableStream<Uint8Array>)
      },
      (err) => (err instanceof OpenAI.APIError ? new AdapterError(`openai-tts: ${err.status ?? ''} ${err.message}`, this.name, err.status) : err instanceof Error ? err : new Error(String(err))),
    )
  }
}
