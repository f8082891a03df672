import type { Logger } from 'pino'
import type { Call } from '../store/calls.ts'
import type { TtsAdapter } from '../agent/index.ts'
import { PcmQueueSource } from '../media/playback.ts'
import type { PlaybackResult } from '../media/session/media-session.ts'
import { StreamResampler } from '../codecs/stream-resampler.ts'
import type { LiveMedia } from './live-media.ts'
import type { MediaStore } from './plane/media-store.ts'

/**
 * One line of synthesised speech on a call: the TTS stream (the call's agent's
 * adapter, or espeak-ng) resampled to the call's codec rate and played as a
 * foreground source through the call's OutputArbiter, so it starts while the
 * rest is still being synthesised. Once the line is over it goes into the
 * call's transcript as far as the caller heard it: all of it, or the share of
 * its words that matches the share of its audio played before it was cut
 * (barge-in, a digit, interrupt, the hangup). The API's `say` and the
 * `prompt` primitive both speak through here.
 */
export interface SpokenLineOptions {
  live: LiveMedia
  call: Pick<Call, 'id' | 'answeredAt'>
  tts: TtsAdapter
  text: string
  voice?: string | undefined
  language?: string | undefined
  store: Pick<MediaStore, 'calls'>
  /** The transcript entry's `source` ("api-say", "prompt"). */
  source: string
  log: Logger
}

export class SpokenLine {
  /** How the line's playback ended (OutputArbiter.play): 'done', 'flushed' when cut, 'closed' with the call. */
  readonly played: Promise<PlaybackResult>
  private readonly src: PcmQueueSource
  private readonly ac = new AbortController()
  /** Samples handed to the call so far, and how many of them had been played when cut (null: not cut). */
  private queued = 0
  private heardSamples: number | null = null
  private synthesized = false

  constructor(private readonly o: SpokenLineOptions) {
    const rate = o.live.session.codecSampleRate()
    this.src = new PcmQueueSource(rate)
    const startedAt = Date.now()
    this.played = o.live.output.play(this.src)
    void this.played.then((r) => {
      this.ac.abort()
      this.transcribe(r, startedAt)
    })
    void this.synthesize(rate)
  }

  /** Stops the line now (what was played so far is what the transcript keeps). */
  cut(): void {
    if (this.heardSamples !== null) return
    this.heardSamples = this.queued - this.src.buffered
    this.ac.abort()
    this.o.live.output.stop(this.src)
  }

  private async synthesize(rate: PcmQueueSource['sampleRate']): Promise<void> {
    const { o, ac, src } = this
    try {
      const stream = o.tts.synthesize({ text: o.text, signal: ac.signal, ...(o.voice ? { voice: o.voice } : {}), ...(o.language ? { language: o.language } : {}) })
      let rs: StreamResampler | undefined
      for await (const chunk of stream) {
        if (ac.signal.aborted) break
        rs ??= new StreamResampler(chunk.sampleRate, rate)
        const pcm = rs.process(chunk.samples)
        this.queued += pcm.length
        src.push(pcm)
      }
      if (rs && !ac.signal.aborted) {
        const tail = rs.flush()
        this.queued += tail.length
        src.push(tail)
      }
      if (!ac.signal.aborted) this.synthesized = true
    } catch (err) {
      if (!ac.signal.aborted) o.log.warn({ err: (err as Error).message }, 'speech synthesis failed')
    } finally {
      src.end()
    }
  }

  private transcribe(r: PlaybackResult, startedAt: number): void {
    const { o, queued, src } = this
    const cut = this.heardSamples ?? (r === 'done' ? null : queued - src.buffered)
    const interrupted = cut !== null && (!this.synthesized || cut < queued)
    const text = interrupted ? heardWords(o.text, queued > 0 ? cut / queued : 0) : o.text
    if (!text && !interrupted) return
    void o.store.calls.appendTranscript(o.call.id, {
      role: o.live.ctx.agentId ? 'assistant' : 'system', text, source: o.source, interrupted,
      ...(o.call.answeredAt ? { offsetMs: startedAt - Date.parse(o.call.answeredAt) } : {}),
    }).catch((err: unknown) => o.log.warn({ err }, 'transcript entry could not be stored'))
  }
}

/** The first `share` of a line's words: what was heard of a prompt cut after that share of its audio. */
function heardWords(text: string, share: number): string {
  const words = text.split(/\s+/).filter((w) => w.length > 0)
  return words.slice(0, Math.floor(words.length * Math.max(0, Math.min(1, share)))).join(' ')
}
