/**
 * Media fork to a WebSocket, both directions.
 *
 * Formats:
 * - 'l16': binary frames of 20 ms little-endian PCM16 at 8 or 16 kHz;
 * - 'pcmu': binary frames of 160 µ-law bytes (8 kHz);
 * - 'twilio': the Twilio Media Streams JSON protocol (connected, start,
 *   media with base64 µ-law, mark, clear, stop), so existing bot frameworks
 *   connect unchanged.
 *
 * Inbound (caller) audio is sent; with tracks 'both' the Twilio format also
 * sends the outbound track, raw formats send caller+agent mixed.
 * Bidirectional: audio the server sends back is queued on the session
 * (Twilio 'media', or raw binary in the fork's format); Twilio 'clear'
 * flushes it (barge-in) and 'mark' is echoed back once playback reaches it.
 *
 * A PCMU call forked as µ-law is not transcoded: G.711 decode→encode is the
 * identity on µ-law codes, so the bytes on the socket equal the RTP payload.
 */
import WebSocket from 'ws'
import { decodeUlaw, encodeUlaw } from '../codecs/g711.ts'
import { encodeL16le, pcmFromL16le } from '../codecs/l16.ts'
import type { AudioFrame, DuplexFrameSink, FrameSource, SampleRate } from '../audio/frame.ts'
import { StreamResampler } from '../codecs/stream-resampler.ts'
import { TwilioStreamWriter, parseTwilioMessage } from './twilio-media-streams.ts'

export type ForkFormat = 'l16' | 'pcmu' | 'twilio'

export interface ForkOptions {
  url: string
  format: ForkFormat
  /** L16 only: 8000 or 16000 (default 8000). */
  sampleRate?: 8000 | 16000
  tracks?: 'inbound' | 'outbound' | 'both'
  /** Play audio the server sends back into the call. */
  bidirectional?: boolean
  /** Twilio 'start' metadata. */
  callSid?: string
  customParameters?: Record<string, string>
  headers?: Record<string, string>
}

/** The subset of MediaSession the fork drives. */
export interface ForkTarget {
  readonly id: string
  codecSampleRate(): SampleRate
  enqueue(pcm: Int16Array, sampleRate: SampleRate): void
  endEnqueue(): void
  flush(): void
  play(source: FrameSource): Promise<unknown>
}

/** Zero-length source used as a playback position marker. */
class MarkerSource implements FrameSource {
  readonly sampleRate: SampleRate = 8000
  readonly ended = true
  nextFrame(): Int16Array | null { return null }
}

export interface ForkStats { framesSent: number; framesDropped: number; bytesSent: number; messagesReceived: number; marksEchoed: number }

export class WebSocketFork implements DuplexFrameSink {
  private readonly twilio = new TwilioStreamWriter((json) => this.sendText(json), { numberConnected: true })
  readonly streamSid = this.twilio.streamSid
  private readonly ws: WebSocket
  private readonly opts: Required<Pick<ForkOptions, 'format' | 'tracks' | 'bidirectional'>> & ForkOptions
  private readonly target: ForkTarget
  private readonly rate: SampleRate
  private inAdapter: StreamResampler | null = null
  private outAdapter: StreamResampler | null = null
  private readonly mixBuf: Int16Array
  private pendingOut: Int16Array | null = null
  private closed = false
  readonly stats: ForkStats = { framesSent: 0, framesDropped: 0, bytesSent: 0, messagesReceived: 0, marksEchoed: 0 }
  readonly opened: Promise<void>

  constructor(target: ForkTarget, options: ForkOptions) {
    this.target = target
    this.opts = { tracks: 'inbound', bidirectional: false, ...options }
    this.rate = this.opts.format === 'l16' ? (this.opts.sampleRate ?? 8000) : 8000
    this.mixBuf = new Int16Array(this.rate / 50)
    this.ws = new WebSocket(options.url, { headers: options.headers })
    this.ws.binaryType = 'nodebuffer'
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => { this.onOpen(); resolve() })
      this.ws.once('error', (err) => reject(err))
    })
    this.opened.catch(() => { /* surfaced through `opened` */ })
    this.ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary))
    this.ws.on('close', () => { this.closed = true })
  }

  private onOpen(): void {
    if (this.opts.format !== 'twilio') return
    this.twilio.connected()
    this.twilio.start({
      accountSid: 'ACcallplane',
      callSid: this.opts.callSid ?? this.target.id,
      tracks: this.opts.tracks === 'both' ? ['inbound', 'outbound'] : [this.opts.tracks],
      customParameters: this.opts.customParameters ?? {},
    })
  }

  private sendText(msg: string): void {
    this.ws.send(msg)
    this.stats.bytesSent += msg.length
  }

  private toForkRate(frame: AudioFrame, outbound: boolean): Int16Array {
    if (frame.sampleRate === this.rate) return frame.samples
    if (outbound) {
      this.outAdapter ??= new StreamResampler(frame.sampleRate, this.rate)
      return this.outAdapter.processFrame(frame.samples)
    }
    this.inAdapter ??= new StreamResampler(frame.sampleRate, this.rate)
    return this.inAdapter.processFrame(frame.samples)
  }

  onFrame(frame: AudioFrame): void {
    if (this.opts.tracks === 'outbound') return
    const pcm = this.toForkRate(frame, false)
    if (this.opts.tracks === 'both' && this.opts.format !== 'twilio') {
      // Raw formats carry one channel: mix caller with the last agent frame.
      const out = this.pendingOut
      for (let i = 0; i < this.mixBuf.length; i++) {
        const v = pcm[i]! + (out ? out[i]! : 0)
        this.mixBuf[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v
      }
      this.pendingOut = null
      this.sendAudio(this.mixBuf, 'inbound')
      return
    }
    this.sendAudio(pcm, 'inbound')
  }

  onOutboundFrame(frame: AudioFrame): void {
    if (this.opts.tracks === 'inbound') return
    const pcm = this.toForkRate(frame, true)
    if (this.opts.format !== 'twilio' && this.opts.tracks === 'both') {
      this.pendingOut = Int16Array.from(pcm)
      return
    }
    this.sendAudio(pcm, 'outbound')
  }

  private sendAudio(pcm: Int16Array, track: 'inbound' | 'outbound'): void {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) { this.stats.framesDropped++; return }
    if (this.opts.format === 'twilio') {
      this.twilio.media(track, pcm)
    } else {
      const b = Buffer.allocUnsafe(this.opts.format === 'l16' ? pcm.length * 2 : pcm.length)
      if (this.opts.format === 'l16') encodeL16le(pcm, b)
      else encodeUlaw(pcm, b)
      this.ws.send(b)
      this.stats.bytesSent += b.length
    }
    this.stats.framesSent++
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    this.stats.messagesReceived++
    if (!this.opts.bidirectional) return
    if (isBinary) {
      if (this.opts.format === 'l16') {
        this.target.enqueue(pcmFromL16le(data), this.rate)
      } else if (this.opts.format === 'pcmu') {
        const pcm = new Int16Array(data.length)
        decodeUlaw(data, pcm)
        this.target.enqueue(pcm, 8000)
      }
      return
    }
    const msg = parseTwilioMessage(data.toString('utf8'))
    if (msg?.event === 'media' && msg.pcm.length > 0) {
      this.target.enqueue(msg.pcm, 8000)
    } else if (msg?.event === 'clear') {
      this.target.flush()
    } else if (msg?.event === 'mark' && msg.name) {
      const name = msg.name
      // Close the current stream so the marker queues behind its audio.
      this.target.endEnqueue()
      void this.target.play(new MarkerSource()).then((r) => {
        if (r === 'closed' || this.closed) return
        this.stats.marksEchoed++
        this.twilio.mark(name)
      })
    }
  }

  /** Twilio 'dtmf' message for a digit the caller pressed (raw formats carry no events). */
  onDtmf(digit: string): void {
    if (this.opts.format !== 'twilio' || this.closed || this.ws.readyState !== WebSocket.OPEN) return
    this.twilio.dtmf(digit)
  }

  private readonly closeHandlers: (() => void)[] = []
  /** Runs `fn` once the fork is closed (used to detach listeners). */
  onClose(fn: () => void): void { this.closeHandlers.push(fn) }

  /** Sends Twilio 'stop' and closes the socket. */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) {
      if (this.opts.format === 'twilio') this.twilio.stop({ callSid: this.opts.callSid ?? this.target.id })
      await new Promise<void>((resolve) => { this.ws.once('close', () => resolve()); this.ws.close(1000) ; setTimeout(resolve, 1000).unref() })
    } else {
      this.ws.terminate()
    }
    this.closed = true
    for (const fn of this.closeHandlers.splice(0)) fn()
  }
}

