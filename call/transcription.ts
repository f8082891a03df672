import type { Logger } from 'pino'
import type { AudioFrame, DuplexFrameSink, FrameSink } from '../audio/frame.ts'
import type { SttStream } from '../agent/index.ts'
import { SpeechDetector } from '../agent/vad/speech-detector.ts'
import type { Call } from '../store/calls.ts'
import type { LiveMedia } from './live-media.ts'
import type { MediaStore } from './plane/media-store.ts'

/**
 * Live transcription of a call without a conversation (VoipBin
 * transcribe_start/stop): the caller's audio (`in`), what the call is sent
 * (`out`), or each of them in its own STT stream (`both`). Every final
 * result is stored as a transcript line (`source: 'transcribe'`, role `user`
 * for the caller, `assistant` for what we send), which emits `call.transcript`.
 *
 * A SpeechDetector per direction tells the STT when a talk spurt ended, so
 * engines that need a nudge to finalise (pocketsphinx) deliver the line then,
 * as they do in an agent's turns.
 */
export type TranscribeDirection = 'in' | 'out' | 'both'

interface Track {
  role: 'user' | 'assistant'
  stt: SttStream
  vad: SpeechDetector
  /** Speech heard since the last final: stop() waits for its line. */
  pending: boolean
  /** Told of the next final (stop() waiting for the last words). */
  onFinal: (() => void) | null
}

/** How long stop() waits for the line of speech still being recognised (a slow STT on a busy node). */
const LAST_LINE_WAIT_MS = 4000

export class CallTranscription {
  private readonly tracks: Track[] = []
  private readonly sink: FrameSink
  private closed = false

  private constructor(
    private readonly live: LiveMedia,
    private readonly call: Pick<Call, 'id' | 'answeredAt'>,
    readonly direction: TranscribeDirection,
    private readonly store: Pick<MediaStore, 'calls'>,
    private readonly log: Logger,
  ) {
    const inbound = this.direction !== 'out'
    const outbound = this.direction !== 'in'
    const onFrame = inbound ? (f: AudioFrame) => this.feed('user', f) : () => {}
    // Only a sink with onOutboundFrame (a DuplexFrameSink) gets what the session sends.
    const duplex: DuplexFrameSink = { onFrame, onOutboundFrame: (f: AudioFrame) => this.feed('assistant', f) }
    this.sink = outbound ? duplex : { onFrame }
  }

  /** Opens one STT stream per direction and attaches to the call's audio. */
  static async start(o: {
    live: LiveMedia; call: Pick<Call, 'id' | 'answeredAt'>; direction: TranscribeDirection; store: Pick<MediaStore, 'calls'>; log: Logger
    openStt: () => Promise<SttStream>
  }): Promise<CallTranscription> {
    const t = new CallTranscription(o.live, o.call, o.direction, o.store, o.log)
    const roles: Array<'user' | 'assistant'> = o.direction === 'both' ? ['user', 'assistant'] : [o.direction === 'in' ? 'user' : 'assistant']
    try {
      for (const role of roles) {
        const stt = await o.openStt()
        const vad = new SpeechDetector()
        const track: Track = { role, stt, vad, pending: false, onFinal: null }
        vad.on('speechStart', () => { track.pending = true })
        vad.on('speechEnd', () => stt.flush())
        t.tracks.push(track)
        void t.read(track)
      }
    } catch (err) {
      await t.stop()
      throw err
    }
    if (!o.live.session.isClosed) o.live.session.addSink(t.sink)
    return t
  }

  private feed(role: 'user' | 'assistant', f: AudioFrame): void {
    for (const t of this.tracks) {
      if (t.role !== role) continue
      t.stt.push(f)
      t.vad.onFrame(f)
    }
  }

  private async read(track: Track): Promise<void> {
    const { role, stt } = track
    try {
      for await (const ev of stt.events()) {
        if (ev.type === 'error') { this.log.warn({ err: ev.error.message, role }, 'transcription: speech recognition error'); continue }
        if (ev.type !== 'final') continue
        track.pending = false
        track.onFinal?.()
        if (!ev.text.trim()) continue
        void this.store.calls.appendTranscript(this.call.id, {
          role, text: ev.text.trim(), final: true, source: 'transcribe',
          ...(this.call.answeredAt ? { offsetMs: Math.max(0, Date.now() - Date.parse(this.call.answeredAt)) } : {}),
        }).catch((err: unknown) => this.log.warn({ err }, 'transcription: line could not be stored'))
      }
    } catch (err) {
      if (!this.closed) this.log.warn({ err: (err as Error).message, role }, 'transcription: speech recognition failed')
    }
  }

  /**
   * Detaches and closes the STT streams (transcribe off, or the call's end).
   * Words said before the stop are still written: a track that heard speech
   * with no final yet is flushed and given LAST_LINE_WAIT_MS for its line.
   */
  async stop(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (!this.live.session.isClosed) this.live.session.removeSink(this.sink)
    for (const t of this.tracks) t.vad.removeAllListeners()
    await Promise.all(this.tracks.filter((t) => t.pending).map((t) => new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, LAST_LINE_WAIT_MS)
      t.onFinal = () => { clearTimeout(timer); resolve() }
      t.stt.flush()
    })))
    await Promise.all(this.tracks.map((t) => t.stt.close().catch(() => {})))
  }
}
