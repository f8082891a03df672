/**
 * Agent type `websocket` (bring your own bot): the call's audio is streamed to
 * the user's URL in the Twilio Media Streams message format, and audio the bot
 * sends back is played to the caller, so bot frameworks that already speak
 * Twilio (Pipecat, LiveKit, Vocode, ...) connect unchanged.
 *
 * Engine → bot: connected, start, media (inbound μ-law 8 kHz, 20 ms), dtmf,
 * mark (echo once the audio before it has played), stop.
 * Bot → engine: media (outbound μ-law 8 kHz), mark, clear (barge-in: drop
 * everything queued; pending marks are echoed, as Twilio does).
 *
 * Barge-in is the bot's decision here (it sends `clear`); we only make `clear`
 * take effect on the next media tick.
 *
 * With `encapsulation: 'raw'` there is no JSON at all: each binary message is
 * 20 ms of 16-bit little-endian PCM at 8 kHz, both ways (as the API's
 * `/v1/calls/:id/stream?encapsulation=raw`).
 */
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import type { OutboundUrlPolicy } from '../config/outbound-url-policy.ts'
import type { AudioFrame } from '../audio/frame.ts'
import { decodeL16le, encodeL16le } from '../codecs/l16.ts'
import { TWILIO_SAMPLE_RATE, TwilioStreamWriter, parseTwilioMessage } from '../media/twilio-media-streams.ts'
import type { AgentConfig } from './config.ts'
import type { AgentMediaPort, Unsubscribe } from './media-port.ts'
import { Playout, type Segment } from './playout.ts'
import { StreamResampler } from '../codecs/stream-resampler.ts'
import type { AgentCallResult, AgentEndReason, AgentLogger, CallInfo } from './agent-events.ts'
import { Transcript } from './transcript.ts'

interface WsAgentEvents {
  ended: [AgentCallResult]
  error: [Error]
  mark: [string]
}

const toBuffer = (d: WebSocket.RawData): Buffer => (Buffer.isBuffer(d) ? d : Array.isArray(d) ? Buffer.concat(d) : Buffer.from(d))

const sid = (prefix: string): string => prefix + randomBytes(16).toString('hex')

export class WebsocketAgent extends EventEmitter<WsAgentEvents> {
  readonly transcript: Transcript
  readonly playout: Playout
  private readonly t0 = performance.now()
  private readonly twilio = new TwilioStreamWriter((json) => this.send(json), { epoch: this.t0 })
  readonly streamSid = this.twilio.streamSid
  private ws: WebSocket | undefined
  private unsubs: Unsubscribe[] = []
  private toBot: StreamResampler | undefined
  private fromBot: StreamResampler | undefined
  private current: Segment | undefined
  private ended = false
  private readonly raw: boolean
  private resolveDone!: (r: AgentCallResult) => void
  readonly done: Promise<AgentCallResult>

  constructor(
    private readonly config: AgentConfig,
    private readonly port: AgentMediaPort,
    private readonly call: CallInfo = { id: 'call' },
    private readonly log?: AgentLogger,
    /** The bot's URL is a tenant's: checked like any outbound URL (ws→http, wss→https). */
    private readonly urlPolicy?: OutboundUrlPolicy,
  ) {
    super()
    this.on('error', () => {})
    this.transcript = new Transcript(this.t0)
    this.playout = new Playout(port.sampleRate)
    this.done = new Promise((r) => (this.resolveDone = r))
    this.raw = config.websocket?.encapsulation === 'raw'
    if (port.sampleRate !== TWILIO_SAMPLE_RATE) {
      this.toBot = new StreamResampler(port.sampleRate, TWILIO_SAMPLE_RATE)
      this.fromBot = new StreamResampler(TWILIO_SAMPLE_RATE, port.sampleRate)
    }
  }

  async start(): Promise<void> {
    const target = this.config.websocket
    if (!target) throw new Error('websocket agent needs config.websocket.url')
    await this.urlPolicy?.check(target.url.replace(/^ws/i, 'http'))
    const ws = new WebSocket(target.url, { headers: target.headers ?? {} })
    this.ws = ws
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    ws.on('message', (data, isBinary) => {
      if (this.raw) {
        if (isBinary) this.onBotPcm(toBuffer(data))
      } else if (!isBinary) this.onBotMessage(data.toString())
    })
    ws.on('close', () => void this.end('end_call', true))
    ws.on('error', (err) => this.emit('error', err))
    this.twilio.connected()
    this.twilio.start({
      accountSid: sid('AC'),
      callSid: this.call.id,
      tracks: ['inbound'],
      customParameters: { ...(target.customParameters ?? {}), ...(this.call.from ? { from: this.call.from } : {}), ...(this.call.to ? { to: this.call.to } : {}) },
    })
    this.port.play(this.playout)
    this.unsubs.push(
      this.port.onFrame((f) => this.onFrame(f)),
      this.port.onDtmf((d) => this.twilio.dtmf(d)),
      this.port.onEnded(() => void this.end('remote-hangup', false)),
    )
  }

  async stop(): Promise<AgentCallResult> {
    await this.end('stopped', false)
    return this.done
  }

  private send(json: string): void {
    if (this.raw) return
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(json)
  }

  private onFrame(frame: AudioFrame): void {
    if (this.ended) return
    const pcm = this.toBot ? this.toBot.process(frame.samples) : frame.samples
    if (this.raw) {
      if (this.ws?.readyState !== WebSocket.OPEN) return
      const b = Buffer.allocUnsafe(pcm.length * 2)
      encodeL16le(pcm, b)
      this.ws.send(b)
      return
    }
    this.twilio.media('inbound', pcm)
  }

  /** raw: one message of 8 kHz PCM16LE; an odd length is malformed and dropped. */
  private onBotPcm(b: Buffer): void {
    if (b.length % 2 !== 0) return
    const pcm8 = new Int16Array(b.length >> 1)
    decodeL16le(b, pcm8)
    // Each message is its own segment: there are no marks to close one.
    const seg = this.playout.createSegment('')
    this.playout.enqueue(seg, this.fromBot ? this.fromBot.process(pcm8) : pcm8)
    this.playout.complete(seg)
  }

  private onBotMessage(text: string): void {
    const msg = parseTwilioMessage(text)
    switch (msg?.event) {
      case 'media': {
        const pcm8 = msg.pcm
        if (pcm8.length === 0) return
        this.current ??= this.playout.createSegment('')
        this.playout.enqueue(this.current, this.fromBot ? this.fromBot.process(pcm8) : pcm8)
        return
      }
      case 'mark': {
        const name = msg.name ?? ''
        const seg = this.current
        this.current = undefined
        const echo = (): void => {
          this.twilio.mark(name)
          this.emit('mark', name)
        }
        if (seg) {
          this.playout.complete(seg)
          void this.playout.whenDone(seg).then(echo)
        } else void this.playout.drained().then(echo)
        return
      }
      case 'clear': {
        this.playout.clear()
        this.port.flush()
        if (this.current) this.playout.complete(this.current)
        this.current = undefined
        return
      }
    }
  }

  private async end(reason: AgentEndReason, hangup: boolean): Promise<void> {
    if (this.ended) return
    this.ended = true
    for (const u of this.unsubs.splice(0)) u()
    this.playout.clear()
    this.twilio.stop({ accountSid: '', callSid: this.call.id })
    this.ws?.close(1000)
    if (hangup) await this.port.hangup(reason).catch(() => {})
    this.log?.info({ callId: this.call.id, reason }, 'websocket agent ended')
    const result: AgentCallResult = { reason, transcript: this.transcript.toJSON() }
    this.emit('ended', result)
    this.resolveDone(result)
  }
}
