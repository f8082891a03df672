import { decodeUlaw, encodeUlaw } from '../codecs/g711.ts'
import { decodeL16le, encodeL16le } from '../codecs/l16.ts'
import type { AudioFrame, FrameSink, FrameSource, SampleRate } from '../audio/frame.ts'
import { StreamResampler } from '../codecs/stream-resampler.ts'
import type { MediaSession, SessionDtmfEvent } from '../media/session/media-session.ts'
import { PcmQueueSource } from '../media/playback.ts'
import { TWILIO_SAMPLE_RATE, TwilioStreamWriter, parseTwilioMessage } from '../media/twilio-media-streams.ts'
import type { OutputArbiter } from '../media/session/output-arbiter.ts'

/**
 * A live call's media on a WebSocket the API accepted
 * (`GET /v1/calls/:id/stream`), both directions. media/fork.ts dials out to a
 * URL; here the client dialled us, so the same encapsulations are produced on
 * a socket we only `send` to:
 * - 'twilio': Twilio Media Streams JSON (connected, start, media with base64
 *   µ-law 8 kHz, dtmf, mark echo, clear, stop);
 * - 'raw' / 'l16': binary little-endian PCM16, 20 ms per message, 8 kHz;
 * - 'pcmu': binary µ-law, 160 bytes per message.
 * Caller audio goes to the client; what the client sends is queued on the
 * session and heard by the caller.
 */
export type StreamEncapsulation = 'twilio' | 'raw' | 'l16' | 'pcmu'
export const STREAM_ENCAPSULATIONS: readonly StreamEncapsulation[] = ['twilio', 'raw', 'l16', 'pcmu']

const RATE: SampleRate = TWILIO_SAMPLE_RATE

/**
 * The client's audio run: over as soon as it is drained, so a bot that went
 * quiet does not hold the call's output (the next message starts a new run).
 */
class ClientAudio extends PcmQueueSource {
  override get ended(): boolean { return this.buffered === 0 }
}

/** Zero-length source queued behind the client's audio: resolves when playback reaches it. */
class MarkerSource implements FrameSource {
  readonly sampleRate: SampleRate = RATE
  readonly ended = true
  nextFrame(): Int16Array | null { return null }
}

export interface CallStreamStats { framesSent: number; messagesReceived: number; badMessages: number; samplesQueued: number }

export class CallMediaStream implements FrameSink {
  private readonly twilio = new TwilioStreamWriter((json) => this.send(json), { numberConnected: true, epoch: performance.now() })
  readonly streamSid = this.twilio.streamSid
  readonly stats: CallStreamStats = { framesSent: 0, messagesReceived: 0, badMessages: 0, samplesQueued: 0 }
  private adapter: StreamResampler | null = null
  private closed = false
  /** The client's current audio run; sealed by a mark, emptied by clear. */
  private incoming: ClientAudio | null = null
  private readonly onDtmf = (e: SessionDtmfEvent) => {
    if (this.format === 'twilio') this.twilio.dtmf(e.digit)
  }

  constructor(
    private readonly session: MediaSession,
    private readonly output: OutputArbiter,
    private readonly format: StreamEncapsulation,
    private readonly send: (msg: string | Buffer) => void,
    private readonly callSid: string,
  ) {}

  start(): void {
    if (this.format === 'twilio') {
      this.twilio.connected()
      this.twilio.start({ accountSid: 'ACcallplane', callSid: this.callSid, tracks: ['inbound'], customParameters: {} })
    }
    this.session.addSink(this)
    this.session.on('dtmf', this.onDtmf)
  }

  onFrame(frame: AudioFrame): void {
    if (this.closed) return
    let pcm = frame.samples
    if (frame.sampleRate !== RATE) {
      this.adapter ??= new StreamResampler(frame.sampleRate, RATE)
      pcm = this.adapter.processFrame(pcm)
    }
    if (this.format === 'twilio') {
      this.twilio.media('inbound', pcm)
    } else {
      const raw = this.format === 'raw' || this.format === 'l16'
      const b = Buffer.allocUnsafe(raw ? pcm.length * 2 : pcm.length)
      if (raw) encodeL16le(pcm, b)
      else encodeUlaw(pcm, b)
      this.send(b)
    }
    this.stats.framesSent++
  }

  /** A message from the client. Malformed input is counted and dropped. */
  onMessage(msg: Buffer | string): void {
    if (this.closed || this.session.isClosed) return
    this.stats.messagesReceived++
    if (typeof msg !== 'string') {
      if (this.format === 'raw' || this.format === 'l16') {
        if (msg.length % 2 !== 0) { this.stats.badMessages++; return }
        const pcm = new Int16Array(msg.length >> 1)
        decodeL16le(msg, pcm)
        this.queue(pcm)
      } else if (this.format === 'pcmu') {
        const pcm = new Int16Array(msg.length)
        decodeUlaw(msg, pcm)
        this.queue(pcm)
      } else {
        this.stats.badMessages++
      }
      return
    }
    if (this.format !== 'twilio') { this.stats.badMessages++; return }
    const m = parseTwilioMessage(msg)
    if (m?.event === 'media') {
      this.queue(m.pcm)
    } else if (m?.event === 'clear') {
      // Barge-in from the bot: drop what it sent, not the rest of the call's audio.
      this.incoming?.clear()
      this.incoming?.end()
      this.incoming = null
    } else if (m?.event === 'mark' && m.name !== undefined) {
      const name = m.name
      // Seal the current audio run so the marker plays after it.
      this.incoming?.end()
      this.incoming = null
      void this.output.play(new MarkerSource()).then((r) => {
        if (r === 'closed' || this.closed) return
        this.twilio.mark(name)
      })
    } else {
      this.stats.badMessages++
    }
  }

  private queue(pcm: Int16Array): void {
    if (pcm.length === 0) return
    this.stats.samplesQueued += pcm.length
    if (!this.incoming || this.incoming.buffered === 0) {
      this.incoming = new ClientAudio(RATE)
      void this.output.play(this.incoming)
    }
    this.incoming.push(pcm)
  }

  /** Detaches from the session; `stop` tells a Twilio client the stream ended. */
  close(): void {
    if (this.closed) return
    if (this.format === 'twilio') this.twilio.stop({ callSid: this.callSid })
    this.closed = true
    this.incoming?.end()
    this.session.removeSink(this)
    this.session.off('dtmf', this.onDtmf)
  }
}

