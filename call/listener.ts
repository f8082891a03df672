import type { Logger } from 'pino'
import type { AudioFrame, FrameSink } from '../audio/frame.ts'
import type { SttStream } from '../agent/index.ts'
import { SpeechDetector } from '../agent/vad/speech-detector.ts'
import type { SessionDtmfEvent } from '../media/session/media-session.ts'
import { CallControlError, type ListenRequest, type ListenResult } from './call-control.ts'
import type { LiveMedia } from './live-media.ts'
import { checkPromptRequest, type PreparedPrompt, type PromptRun } from './prompts.ts'

/**
 * The `listen` primitive: a gather (DTMF and/or speech after an optional
 * prompt), a digits_receive, or the end conditions of a recording (silence
 * after speech, an overall cap, a key). jambonz's gather is the model:
 *
 * - Digits come from the session's 'dtmf' event, RFC 4733 and SIP INFO alike,
 *   as the packet (or the INFO) arrives. Listening for them starts before the
 *   prompt loads, so digits typed during it count (type-ahead), and the first
 *   one stops the prompt.
 * - `max` digits end it ('max-digits'). The finish key ends it at once and is
 *   not part of `digits` ('finish-key'), even with fewer than `min` digits: the
 *   result says what was collected and the verb decides (jambonz does the same).
 * - After a digit the next must come within `interDigitTimeoutMs` (default
 *   `timeoutMs`); when it does not, the listen ends 'inter-digit-timeout' if
 *   at least `min` digits (default 1) were typed, else 'timeout'.
 * - Speech: the call's STT (its agent's adapter, else pocketsphinx with the
 *   hints as its grammar) hears the caller's frames; the caller starting to
 *   speak (the one SpeechDetector) stops the prompt (barge-in). The first final
 *   transcript once the caller has stopped speaking ends it ('speech'); a
 *   final that arrives while they still speak waits for the end of their speech,
 *   and finals up to then are joined. No final within FINAL_WAIT_MS (or
 *   `timeoutMs` if longer) of the end of speech: 'timeout'.
 * - `timeoutMs` runs from the end of the prompt until the first input (a
 *   digit, or caller speech when speech or `silenceMs` is on): 'timeout'.
 * - `silenceMs`: once the caller has spoken, this much silence ends it
 *   ('silence'). `maxDurationMs` caps it from the end of the prompt
 *   ('max-duration').
 * - interrupt() ends it 'stopped', the call's end 'ended' (with whatever was
 *   collected so far); the prompt, sinks, STT stream and timers go with it.
 */
export interface ListenDeps {
  log: Logger
  /** Loads the prompt (PromptRequest checked by checkListenRequest). */
  preparePrompt(): Promise<PreparedPrompt>
  /** Opens the call's STT with these phrases ('unavailable' when it cannot). */
  openStt(opts: { phrases: string[]; language?: string | undefined }): Promise<SttStream>
}

/** How long after the caller stops speaking a final transcript may still come (the agent runtime waits as long). */
export const FINAL_WAIT_MS = 2500
/** SpeechDetector reports the end of speech this long after the last voiced frame (its hangover). */
const SPEECH_END_LAG_MS = 300
const DTMF_KEYS = /^[0-9*#A-D]$/

/** Refuses a listen request that cannot mean anything ('rejected'). */
export function checkListenRequest(req: ListenRequest): void {
  const ms = (v: number | undefined, name: string, zero = true) => {
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!zero && v === 0))) throw new CallControlError('rejected', `listen: ${name} must be a number of ms ${zero ? '≥ 0' : '> 0'}`)
  }
  if (typeof req.timeoutMs !== 'number') throw new CallControlError('rejected', 'listen: timeoutMs is required')
  ms(req.timeoutMs, 'timeoutMs')
  ms(req.silenceMs, 'silenceMs', false)
  ms(req.maxDurationMs, 'maxDurationMs', false)
  const d = req.digits
  if (d) {
    if (!Number.isInteger(d.max) || d.max < 1) throw new CallControlError('rejected', 'listen: digits.max must be an integer ≥ 1')
    if (d.min !== undefined && (!Number.isInteger(d.min) || d.min < 1 || d.min > d.max)) throw new CallControlError('rejected', 'listen: digits.min must be an integer from 1 to digits.max')
    if (d.finishKey !== undefined && !DTMF_KEYS.test(d.finishKey)) throw new CallControlError('rejected', 'listen: digits.finishKey must be one DTMF key (0-9, *, #, A-D)')
    ms(d.interDigitTimeoutMs, 'digits.interDigitTimeoutMs', false)
  }
  if (req.speech?.hints !== undefined && (!Array.isArray(req.speech.hints) || req.speech.hints.some((h) => typeof h !== 'string'))) {
    throw new CallControlError('rejected', 'listen: speech.hints must be a list of strings')
  }
  if (req.prompt) checkPromptRequest(req.prompt, 'listen prompt')
}

export class Listening {
  readonly result: Promise<ListenResult>
  private resolve!: (r: ListenResult) => void
  private finished = false
  private digits = ''
  private heardInput = false
  private readonly finals: string[] = []
  private confidence: number | undefined
  private prompt: PromptRun | null = null
  private vad: SpeechDetector | null = null
  private stt: SttStream | null = null
  private readonly sttSink: FrameSink = { onFrame: (f: AudioFrame) => this.stt?.push(f) }
  private noInputTimer: NodeJS.Timeout | undefined
  private interDigitTimer: NodeJS.Timeout | undefined
  private silenceTimer: NodeJS.Timeout | undefined
  private maxTimer: NodeJS.Timeout | undefined
  private readonly onDtmf = (e: SessionDtmfEvent) => this.digit(e.digit)

  constructor(private readonly live: LiveMedia, private readonly req: ListenRequest, private readonly deps: ListenDeps) {
    this.result = new Promise((r) => (this.resolve = r))
  }

  /** Starts listening; resolves once the prompt (if any) is playing. Throws CallControlError when it cannot start. */
  async start(): Promise<void> {
    const { live, req } = this
    if (req.digits) live.session.on('dtmf', this.onDtmf)
    try {
      if (req.speech) {
        const stt = await this.deps.openStt({ phrases: req.speech.hints ?? [], ...(req.speech.language ? { language: req.speech.language } : {}) })
        if (this.finished) { void stt.close().catch(() => {}); return }
        this.stt = stt
        void this.readStt(stt)
        live.session.addSink(this.sttSink)
      }
      if (req.speech || req.silenceMs !== undefined) {
        const vad = new SpeechDetector()
        vad.on('speechStart', () => this.speechStarted())
        vad.on('speechEnd', () => this.speechEnded())
        this.vad = vad
        live.session.addSink(vad)
      }
      const prepared = req.prompt ? await this.deps.preparePrompt() : null
      if (this.finished) return
      // Input typed while the prompt loaded stands for it (type-ahead): no prompt then.
      if (prepared && !this.heardInput) {
        const run = prepared.start()
        this.prompt = run
        void run.done.then(() => this.promptOver())
      } else {
        this.promptOver()
      }
    } catch (err) {
      // Already over (the call ended while the STT or the prompt loaded): `result` says so.
      if (this.finished) return
      this.finished = true
      this.cleanUp()
      throw err
    }
  }

  /** Ends the listen from outside (interrupt(): 'stopped'; the call's end: 'ended'). */
  stop(why: 'stopped' | 'ended'): void {
    this.finish(why)
  }

  private promptOver(): void {
    if (this.finished) return
    this.prompt = null
    if (this.req.maxDurationMs !== undefined) this.maxTimer = setTimeout(() => this.finish('max-duration'), this.req.maxDurationMs)
    if (!this.heardInput) this.noInputTimer = setTimeout(() => this.finish('timeout'), this.req.timeoutMs)
  }

  private input(): void {
    this.heardInput = true
    clearTimeout(this.noInputTimer)
    this.noInputTimer = undefined
  }

  private digit(d: string): void {
    const spec = this.req.digits
    if (this.finished || !spec) return
    this.input()
    this.prompt?.stop({ result: 'digit', digit: d })
    clearTimeout(this.interDigitTimer)
    if (spec.finishKey !== undefined && d === spec.finishKey) return this.finish('finish-key')
    this.digits += d
    if (this.digits.length >= spec.max) return this.finish('max-digits')
    const min = spec.min ?? 1
    this.interDigitTimer = setTimeout(() => this.finish(this.digits.length >= min ? 'inter-digit-timeout' : 'timeout'), spec.interDigitTimeoutMs ?? this.req.timeoutMs)
  }

  private speechStarted(): void {
    if (this.finished) return
    this.input()
    clearTimeout(this.silenceTimer)
    this.silenceTimer = undefined
    // Only speech that is listened for barges in (a recording's end-of-silence watch does not).
    if (this.req.speech) this.prompt?.stop({ result: 'stopped' })
  }

  private speechEnded(): void {
    if (this.finished) return
    if (this.req.silenceMs !== undefined) {
      this.silenceTimer = setTimeout(() => this.finish('silence'), Math.max(0, this.req.silenceMs - SPEECH_END_LAG_MS))
    }
    if (!this.req.speech) return
    this.stt?.flush()
    if (this.finals.length > 0) return this.finish('speech')
    // The final is still coming; if none does, the caller said nothing recognisable.
    clearTimeout(this.noInputTimer)
    this.noInputTimer = setTimeout(() => this.finish('timeout'), Math.max(FINAL_WAIT_MS, this.req.timeoutMs))
  }

  private async readStt(stt: SttStream): Promise<void> {
    try {
      for await (const ev of stt.events()) {
        if (this.finished) return
        if (ev.type === 'error') { this.deps.log.warn({ err: ev.error.message }, 'listen: speech recognition error'); continue }
        if (ev.type !== 'final' || !ev.text.trim()) continue
        this.finals.push(ev.text.trim())
        if (ev.confidence !== undefined) this.confidence = ev.confidence
        this.input()
        // A final while the caller still talks (a cloud engine endpointing early): the rest of the turn joins it.
        if (!this.vad?.speaking) this.finish('speech')
      }
    } catch (err) {
      if (!this.finished) this.deps.log.warn({ err: (err as Error).message }, 'listen: speech recognition failed')
    }
  }

  private finish(reason: ListenResult['reason']): void {
    if (this.finished) return
    this.finished = true
    this.cleanUp()
    const text = this.finals.join(' ')
    this.resolve({
      reason, digits: this.digits,
      ...(text ? { speech: { text, ...(this.confidence !== undefined ? { confidence: this.confidence } : {}) } } : {}),
    })
  }

  private cleanUp(): void {
    for (const t of [this.noInputTimer, this.interDigitTimer, this.silenceTimer, this.maxTimer]) clearTimeout(t)
    const { session } = this.live
    session.off('dtmf', this.onDtmf)
    if (!session.isClosed) {
      session.removeSink(this.sttSink)
      if (this.vad) session.removeSink(this.vad)
    }
    this.vad?.removeAllListeners()
    this.prompt?.stop({ result: 'stopped' })
    this.prompt = null
    const stt = this.stt
    this.stt = null
    if (stt) void stt.close().catch(() => {})
  }
}
