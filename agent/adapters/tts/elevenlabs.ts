/**
 * ElevenLabs streaming TTS via the official SDK (`textToSpeech.stream`, i.e.
 * POST /v1/text-to-speech/{voice_id}/stream), asking for raw PCM at the rate
 * closest to the call (`pcm_16000` by default; `pcm_8000` … `pcm_44100`).
 */
import { ElevenLabs, ElevenLabsClient, ElevenLabsError } from '@elevenlabs/elevenlabs-js'
import { AdapterError } from '../adapter-error.ts'
import type { TtsAdapter, TtsRequest, TtsStream } from './contract.ts'
import { HttpPcmStream, iterateWebStream } from './pcm-stream.ts'

export interface ElevenLabsTtsOptions {
  apiKey?: string
  baseUrl?: string
  voiceId?: string
  modelId?: string
  sampleRate?: 8000 | 16000 | 22050 | 24000 | 44100
  stability?: number
  speed?: number
  optimizeStreamingLatency?: number
}

export class ElevenLabsTts implements TtsAdapter {
  readonly name = 'elevenlabs'
  private readonly client: ElevenLabsClient
  constructor(private readonly opts: ElevenLabsTtsOptions = {}) {
    this.client = new ElevenLabsClient({
      ...(opts.apiKey ? { apiKey: opts.apiKey } : {}),
      ...(opts.baseUrl ? { baseUrl: opts.baseUrl } : {}),
      maxRetries: 0,
    })
  }

  synthesize(request: TtsRequest): TtsStream {
    const rate = this.opts.sampleRate ?? 16000
    return new HttpPcmStream(
      this.name,
      rate,
      request.signal,
      async () => {
        const body = await this.client.textToSpeech.stream(
          request.voice ?? this.opts.voiceId ?? 'JBFqnCBsd6RMkjVDRZzb',
          {
            text: request.text,
            modelId: this.opts.modelId ?? 'eleven_flash_v2_5',
            outputFormat: `pcm_${rate}` as ElevenLabs.TextToSpeechStreamRequestOutputFormat,
            ...(this.opts.optimizeStreamingLatency !== undefined ? { optimizeStreamingLatency: this.opts.optimizeStreamingLatency } : {}),
            ...(this.opts.stability !== undefined || this.opts.speed !== undefined
              ? { voiceSettings: { ...(this.opts.stability !== undefined ? { stability: this.opts.stability } : {}), ...(this.opts.speed !== undefined ? { speed: this.opts.speed } : {}) } }
              : {}),
          },
          { abortSignal: request.signal },
        )
        return iterateWebStream(body)
      },
      (err) =>
        err instanceof ElevenLabsError
          ? new AdapterError(`elevenlabs: ${err.statusCode ?? ''} ${JSON.stringify(err.body ?? err.message)}`, this.name, err.statusCode)
          : err instanceof Error
            ? err
            : new Error(String(err)),
    )
  }
}
