/**
 * Deepgram streaming STT over its documented WebSocket protocol
 * (wss://api.deepgram.com/v1/listen): binary linear16 audio up; `Results`
 * (interim and `is_final`, with `speech_final` at endpoints), `UtteranceEnd`,
 * `SpeechStarted` and `Metadata` down; `Finalize`, `KeepAlive` and
 * `CloseStream` control messages. Handshake failures are HTTP errors with a
 * JSON body; mid-stream failures are close frames such as 1011 "NET-0001".
 *
 * We speak the protocol with `ws` rather than the SDK's live client: the SDK
 * adds reconnect logic of its own that would hide disconnects from the
 * fallback chain, which must see them to switch vendors mid-call.
 */
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import type { AudioFrame } from '../../../audio/frame.ts'
import { Channel } from '../../channel.ts'
import { AdapterError } from '../adapter-error.ts'
import type { SttAdapter, SttEvent, SttStream, SttStreamOptions } from './contract.ts'

export interface DeepgramOptions {
  apiKey?: string
  /** ws(s)://host[:port]; default wss://api.deepgram.com */
  baseUrl?: string
  model?: string
  language?: string
  endpointingMs?: number
  utteranceEndMs?: number
  connectTimeoutMs?: number
}

interface DgResults {
  type: 'Results'
  is_final?: boolean
  speech_final?: boolean
  from_finalize?: boolean
  start?: number
  duration?: number
  channel?: { alternatives?: Array<{ transcript?: string; confidence?: number }> }
}

class DeepgramStream implements SttStream {
  private readonly out = new Channel<SttEvent>()
  private closing = false
  private keepAlive: NodeJS.Timeout
  private lastSend = performance.now()

  constructor(private readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) return
      let msg: { type?: string }
      try {
        msg = JSON.parse(data.toString()) as { type?: string }
      } catch {
        return
      }
      const at = performance.now()
      if (msg.type === 'Results') {
        const r = msg as DgResults
        const alt = r.channel?.alternatives?.[0]
        const text = alt?.transcript?.trim() ?? ''
        if (r.is_final) {
          if (text) this.out.push({ type: 'final', text, at, source: 'deepgram', ...(alt?.confidence !== undefined ? { confidence: alt.confidence } : {}) })
          if (r.speech_final || r.from_finalize) this.out.push({ type: 'end_of_utterance', at })
        } else if (text) this.out.push({ type: 'partial', text, at })
      } else if (msg.type === 'UtteranceEnd') {
        this.out.push({ type: 'end_of_utterance', at })
      }
    })
    ws.on('close', (code, reason) => {
      clearInterval(this.keepAlive)
      if (!this.closing && code !== 1000) {
        this.out.push({ type: 'error', error: new AdapterError(`deepgram: connection closed ${code} ${reason.toString()}`.trim(), 'deepgram', code), at: performance.now() })
      }
      this.out.close()
    })
    ws.on('error', () => {
      /* the close event that follows carries the code */
    })
    // Silence is still audio for us (frames flow continuously), but if the
    // port stops delivering, KeepAlive prevents the 10 s NET-0001 timeout.
    this.keepAlive = setInterval(() => {
      if (performance.now() - this.lastSend > 4000 && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'KeepAlive' }))
    }, 4000)
  }

  push(frame: AudioFrame): void {
    if (this.ws.readyState !== WebSocket.OPEN) return
    this.ws.send(Buffer.from(frame.samples.buffer, frame.samples.byteOffset, frame.samples.byteLength))
    this.lastSend = performance.now()
  }

  flush(): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: 'Finalize' }))
  }

  events(): AsyncIterable<SttEvent> {
    return this.out
  }

  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    clearInterval(this.keepAlive)
    if (this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: 'CloseStream' }))
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.ws.terminate()
          resolve()
        }, 1000)
        this.ws.once('close', () => {
          clearTimeout(t)
          resolve()
        })
      })
    } else this.ws.terminate()
    this.out.close()
  }
}

export class DeepgramStt implements SttAdapter {
  readonly name = 'deepgram'
  constructor(private readonly opts: DeepgramOptions = {}) {}

  async open(options: SttStreamOptions): Promise<SttStream> {
    const q = new URLSearchParams({
      model: this.opts.model ?? 'nova-3',
      encoding: 'linear16',
      sample_rate: String(options.sampleRate),
      channels: '1',
      interim_results: 'true',
      punctuate: 'true',
      smart_format: 'true',
      endpointing: String(this.opts.endpointingMs ?? 300),
      utterance_end_ms: String(this.opts.utteranceEndMs ?? 1000),
      vad_events: 'true',
    })
    const lang = options.language ?? this.opts.language
    if (lang) q.set('language', lang)
    for (const p of options.phrases ?? []) q.append('keyterm', p)
    const url = `${this.opts.baseUrl ?? 'wss://api.deepgram.com'}/v1/listen?${q.toString()}`
    const key = this.opts.apiKey ?? process.env.DEEPGRAM_API_KEY ?? ''
    const ws = new WebSocket(url, { headers: { Authorization: `Token ${key}` } })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.terminate()
        reject(new AdapterError('deepgram: connect timeout', this.name))
      }, this.opts.connectTimeoutMs ?? 5000)
      ws.once('open', () => {
        clearTimeout(timer)
        resolve()
      })
      ws.once('unexpected-response', (_req, res) => {
        let body = ''
        res.on('data', (d: Buffer) => (body += d.toString()))
        res.on('end', () => {
          clearTimeout(timer)
          ws.terminate()
          const dgError = res.headers['dg-error']
          reject(new AdapterError(`deepgram: handshake ${res.statusCode} ${dgError ?? ''} ${body}`.trim(), this.name, res.statusCode, (res.statusCode ?? 500) >= 500))
        })
      })
      ws.once('error', (err) => {
        clearTimeout(timer)
        reject(new AdapterError(`deepgram: ${err.message}`, this.name))
      })
    })
    options.signal?.addEventListener('abort', () => ws.terminate(), { once: true })
    return new DeepgramStream(ws)
  }
}
