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
import type { AgentConfig } from './config.ts'
import type { AgentMediaPort, Unsubscribe } from './media-port.ts'
import { Playout, type Segment } from './playout.ts'
import { StreamResampler } from './resample.ts'
import type { AgentCallResult, AgentEndReason, AgentLogger, CallInfo } from './runtime.ts'
import { Transcript } from './transcript.ts'
import { ulawDecode, ulawEncode } from './ulaw.ts'

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
  readonly streamSid = sid('MZ')
  private ws: WebSocket | undefined
  private seq = 0
  private chunk = 0
  private readonly t0 = performance.now()
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
    if (port.sampleRate !== 8000) {
      this.toBot = new StreamResampler(port.sampleRate, 8000)
      this.fromBot = new StreamResampler(8000, port.sampleRate)
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
    this.send({ event: 'connected', protocol: 'Call', version: '1.0.0' })
    this.send({
      event: 'start',
      sequenceNumber: String(++this.seq),
      start: {
        accountSid: sid('AC'),
        streamSid: this.streamSid,
        callSid: this.call.id,
        tracks: ['inbound'],
        customParameters: { ...(target.customParameters ?? {}), ...(this.call.from ? { from: this.call.from } : {}), ...(this.call.to ? { to: this.call.to } : {}) },
        mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      },
      streamSid: this.streamSid,
    })
    this.port.play(this.playout)
    this.unsubs.push(
      this.port.onFrame((f) => this.onFrame(f)),
      this.port.onDtmf((d) =>
        this.send({ event: 'dtmf', streamSid: this.streamSid, sequenceNumber: String(++this.seq), dtmf: { track: 'inbound_track', digit: d } }),
      ),
      this.port.onEnded(() => void this.end('remote-hangup', false)),
    )
  }

  async stop(): Promise<AgentCallResult> {
    await this.end('stopped', false)
    return this.done
  }

  private send(msg: object): void {
    if (this.raw) return
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg))
  }

  private onFrame(frame: AudioFrame): void {
    if (this.ended) return
    const pcm = this.toBot ? this.toBot.process(frame.samples) : frame.samples
    if (this.raw) {
      if (this.ws?.readyState !== WebSocket.OPEN) return
      const b = Buffer.allocUnsafe(pcm.length * 2)
      for (let i = 0; i < pcm.length; i++) b.writeInt16LE(pcm[i]!, i * 2)
      this.ws.send(b)
      return
    }
    this.send({
      event: 'media',
      sequenceNumber: String(++this.seq),
      media: { track: 'inbound', chunk: String(++this.chunk), timestamp: String(Math.round(performance.now() - this.t0)), payload: Buffer.from(ulawEncode(pcm)).toString('base64') },
      streamSid: this.streamSid,
    })
  }

  /** raw: one message of 8 kHz PCM16LE; an odd length is malformed and dropped. */
  private onBotPcm(b: Buffer): void {
    if (b.length % 2 !== 0) return
    const pcm8 = new Int16Array(b.length >> 1)
    for (let i = 0; i < pcm8.length; i++) pcm8[i] = b.readInt16LE(i * 2)
    // Each message is its own segment: there are no marks to close one.
    const seg = this.playout.createSegment('')
    this.playout.enqueue(seg, this.fromBot ? this.fromBot.process(pcm8) : pcm8)
    this.playout.complete(seg)
  }

  private onBotMessage(text: string): void {
    let msg: { event?: string; media?: { payload?: string }; mark?: { name?: string } }
    try {
      msg = JSON.parse(text) as typeof msg
    } catch {
      return
    }
    switch (msg.event) {
      case 'media': {
        const payload = msg.media?.payload
        if (!payload) return
        const pcm8 = ulawDecode(Buffer.from(payload, 'base64'))
        this.current ??= this.playout.createSegment('')
        this.playout.enqueue(this.current, this.fromBot ? this.fromBot.process(pcm8) : pcm8)
        return
      }
      case 'mark': {
        const name = msg.mark?.name ?? ''
        const seg = this.current
        this.current = undefined
        const echo = (): void => {
          this.send({ event: 'mark', sequenceNumber: String(++this.seq), streamSid: this.streamSid, mark: { name } })
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
    this.send({ event: 'stop', sequenceNumber: String(++this.seq), streamSid: this.streamSid, stop: { accountSid: '', callSid: this.call.id } })
    this.ws?.close(1000)
    if (hangup) await this.port.hangup(reason).catch(() => {})
    this.log?.info({ callId: this.call.id, reason }, 'websocket agent ended')
    const result: AgentCallResult = { reason, transcript: this.transcript.toJSON() }
    this.emit('ended', result)
    this.resolveDone(result)
  }
}
