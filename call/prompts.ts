import type { Logger } from 'pino'
import type { Call } from '../store/calls.ts'
import type { FrameSource } from '../audio/frame.ts'
import type { TtsAdapter } from '../agent/index.ts'
import { sourceFromSpec } from '../media/playback.ts'
import type { PlaybackResult } from '../media/session/media-session.ts'
import { CallControlError, PLAY_TONES, type PromptRequest, type PromptResult } from './call-control.ts'
import type { LiveMedia } from './live-media.ts'
import type { MediaStore } from './plane/media-store.ts'
import { loadPlaylist, toneSpec, type PromptAudioOptions } from './prompt-audio.ts'
import { SpokenLine } from './spoken-line.ts'

/**
 * One prompt of the `prompt` and `listen` primitives (a flow's talk, play,
 * beep, a gather's question): a line spoken by TTS, a list of files or URLs,
 * or a generated tone, played in the foreground of the call's OutputArbiter.
 *
 * Loading (synthesis set-up, fetching and decoding the files) is split from
 * starting, so a prompt that was interrupted or whose call ended while it
 * loaded never plays a frame. A running prompt ends when its audio is over
 * ('done'), or when stopped from outside with the result to report (a
 * digit, interrupt(), the call's end); the spoken line keeps in the
 * transcript what was heard of it.
 */
export interface PromptDeps {
  store: Pick<MediaStore, 'calls'>
  log: Logger
  audio: PromptAudioOptions
  /** The TTS the call speaks with (its agent's, else espeak-ng). */
  ttsFor(live: LiveMedia): Promise<TtsAdapter>
}

/** Refuses a prompt that is not exactly one well-formed say, play or tone ('rejected'). */
export function checkPromptRequest(req: PromptRequest, what = 'prompt'): void {
  const kinds = (['say', 'play', 'tone'] as const).filter((k) => req[k] !== undefined)
  if (kinds.length !== 1) throw new CallControlError('rejected', `${what}: exactly one of say, play and tone must be set (got ${kinds.join(', ') || 'none'})`)
  if (req.say && (typeof req.say.text !== 'string' || req.say.text.trim() === '')) throw new CallControlError('rejected', `${what}: say.text must be a non-empty string`)
  if (req.play) {
    if (!Array.isArray(req.play.urls) || req.play.urls.length === 0 || req.play.urls.some((u) => typeof u !== 'string' || u === '')) {
      throw new CallControlError('rejected', `${what}: play.urls must be a non-empty list of URLs`)
    }
    const loop = req.play.loop
    if (loop !== undefined && (!Number.isInteger(loop) || loop < 0)) throw new CallControlError('rejected', `${what}: play.loop must be an integer ≥ 0 (0: until stopped)`)
  }
  if (req.tone) {
    if (!(PLAY_TONES as readonly string[]).includes(req.tone.tone)) throw new CallControlError('rejected', `${what}: tone.tone must be one of ${PLAY_TONES.join(', ')}`)
    const d = req.tone.durationMs
    if (d !== undefined && (!Number.isFinite(d) || d <= 0)) throw new CallControlError('rejected', `${what}: tone.durationMs must be > 0`)
  }
}

/** A prompt loaded and ready to play on its call. */
export interface PreparedPrompt {
  start(): PromptRun
}

/**
 * Loads what the prompt plays (refusing an unloadable URL with 'rejected')
 * without playing anything yet. `req` must have passed checkPromptRequest.
 */
export async function preparePrompt(live: LiveMedia, call: Pick<Call, 'id' | 'answeredAt'>, req: PromptRequest, deps: PromptDeps): Promise<PreparedPrompt> {
  const rate = live.session.codecSampleRate()
  if (req.say) {
    const say = req.say
    const tts = await deps.ttsFor(live)
    return {
      start: () => {
        const line = new SpokenLine({ live, call, tts, text: say.text, voice: say.voice, language: say.language, store: deps.store, source: 'prompt', log: deps.log })
        return new PromptRun(line.played, () => line.cut())
      },
    }
  }
  const src: FrameSource = req.play
    ? await loadPlaylist(req.play.urls, req.play.loop ?? 1, rate, deps.audio, 'prompt')
    : await sourceFromSpec(toneSpec(req.tone!.tone, req.tone!.durationMs), rate)
  return { start: () => new PromptRun(live.output.play(src), () => live.output.stop(src)) }
}

/** A prompt playing (or queued behind other foreground audio) on its call. */
export class PromptRun {
  readonly done: Promise<PromptResult>
  private stoppedWith: PromptResult | null = null

  constructor(played: Promise<PlaybackResult>, private readonly cut: () => void) {
    this.done = played.then((r): PromptResult => {
      if (r === 'closed') return { result: 'ended' }
      if (r === 'done' && !this.stoppedWith) return { result: 'done' }
      return this.stoppedWith ?? { result: 'stopped' }
    })
  }

  get stopped(): boolean {
    return this.stoppedWith !== null
  }

  /** Ends the prompt now; `done` resolves with `result` (the first stop wins). */
  stop(result: PromptResult): void {
    if (this.stoppedWith) return
    this.stoppedWith = result
    this.cut()
  }
}
