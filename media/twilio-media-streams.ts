/**
 * The Twilio Media Streams message format, both directions
 * (https://www.twilio.com/docs/voice/media-streams/websocket-messages): JSON
 * text messages; audio is base64 µ-law at 8 kHz mono, 20 ms per `media`.
 *
 * Three places speak it, and all go through this module so the wire stays one
 * format: the media fork (media/fork.ts, we dial out to a URL), the call's
 * stream route (call/media-stream.ts, the client dialled us) and the
 * websocket agent (agent/websocket-agent.ts, a bring-your-own bot).
 *
 * Engine → client: connected, start, media, dtmf, mark (echo), stop.
 * Client → engine: media, mark, clear.
 */
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { decodeUlaw, encodeUlaw } from '../codecs/g711.ts'

/** The only audio format the protocol carries. */
export const TWILIO_SAMPLE_RATE = 8000
const MEDIA_FORMAT = { encoding: 'audio/x-mulaw', sampleRate: TWILIO_SAMPLE_RATE, channels: 1 } as const

export type TwilioTrack = 'inbound' | 'outbound'

/** A stream SID: `MZ` and 32 hex digits, as Twilio's. */
function newStreamSid(): string {
  return `MZ${randomBytes(16).toString('hex')}`
}

export interface TwilioStreamWriterOptions {
  streamSid?: string
  /**
   * Twilio leaves `sequenceNumber` off `connected` and numbers from `start`
   * (the websocket agent does the same). The fork and the stream route
   * document "every message has a sequenceNumber", so they number
   * `connected` too.
   */
  numberConnected?: boolean
  /** performance.now() that `media.timestamp` counts from; default: when `start` is sent. */
  epoch?: number
}

export interface TwilioStart {
  accountSid: string
  callSid: string
  tracks: readonly TwilioTrack[]
  customParameters: Record<string, string>
}

/**
 * Builds the engine's messages and hands each, serialised, to `send`. It
 * numbers them (`sequenceNumber`) and the media chunks of each track, and
 * stamps `media.timestamp` in milliseconds since the stream started.
 */
export class TwilioStreamWriter {
  readonly streamSid: string
  private seq = 0
  private readonly chunks = { inbound: 0, outbound: 0 }
  private epoch: number | undefined
  private readonly numberConnected: boolean
  private ulaw = Buffer.alloc(TWILIO_SAMPLE_RATE / 50)

  constructor(
    private readonly send: (json: string) => void,
    opts: TwilioStreamWriterOptions = {},
  ) {
    this.streamSid = opts.streamSid ?? newStreamSid()
    this.numberConnected = opts.numberConnected ?? false
    this.epoch = opts.epoch
  }

  connected(): void {
    const msg = { event: 'connected', protocol: 'Call', version: '1.0.0' }
    this.send(JSON.stringify(this.numberConnected ? { ...msg, sequenceNumber: this.next() } : msg))
  }

  start(start: TwilioStart): void {
    this.epoch ??= performance.now()
    this.emit('start', {
      start: { accountSid: start.accountSid, streamSid: this.streamSid, callSid: start.callSid, tracks: start.tracks, customParameters: start.customParameters, mediaFormat: MEDIA_FORMAT },
    })
  }

  /** One `media` message of 8 kHz PCM, µ-law encoded. */
  media(track: TwilioTrack, pcm: Int16Array): void {
    if (this.ulaw.length < pcm.length) this.ulaw = Buffer.alloc(pcm.length)
    encodeUlaw(pcm, this.ulaw)
    const timestamp = String(Math.round(performance.now() - (this.epoch ?? performance.now())))
    this.emit('media', { media: { track, chunk: String(++this.chunks[track]), timestamp, payload: this.ulaw.toString('base64', 0, pcm.length) } })
  }

  /** A digit the caller pressed (Twilio names the track `inbound_track` here). */
  dtmf(digit: string): void {
    this.emit('dtmf', { dtmf: { track: 'inbound_track', digit } })
  }

  /** Echo of a client's mark: the audio queued before it has played. */
  mark(name: string): void {
    this.emit('mark', { mark: { name } })
  }

  stop(stop: { callSid: string; accountSid?: string }): void {
    this.emit('stop', { stop })
  }

  private next(): string {
    return String(++this.seq)
  }

  private emit(event: string, body: Record<string, unknown>): void {
    this.send(JSON.stringify({ event, sequenceNumber: this.next(), streamSid: this.streamSid, ...body }))
  }
}

/** What a client may send. `other`: valid JSON that is none of these (or a media without a string payload). */
export type TwilioClientMessage =
  | { event: 'media'; pcm: Int16Array }
  | { event: 'mark'; name: string | undefined }
  | { event: 'clear' }
  | { event: 'other' }

/** Parses one text message from a client; undefined when it is not a JSON object. */
export function parseTwilioMessage(text: string): TwilioClientMessage | undefined {
  let m: unknown
  try {
    m = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof m !== 'object' || m === null) return undefined
  const msg = m as { event?: unknown; media?: { payload?: unknown }; mark?: { name?: unknown } }
  switch (msg.event) {
    case 'media': {
      const payload = msg.media?.payload
      if (typeof payload !== 'string') return { event: 'other' }
      const ulaw = Buffer.from(payload, 'base64')
      const pcm = new Int16Array(ulaw.length)
      decodeUlaw(ulaw, pcm)
      return { event: 'media', pcm }
    }
    case 'mark': {
      const name = msg.mark?.name
      return { event: 'mark', name: typeof name === 'string' ? name : undefined }
    }
    case 'clear':
      return { event: 'clear' }
    default:
      return { event: 'other' }
  }
}
