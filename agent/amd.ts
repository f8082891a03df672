/**
 * Answering-machine detection for outbound calls, by energy and cadence (the
 * classic Asterisk AMD heuristics): a person answers with a short greeting
 * ("Hello?") and then waits; a machine plays a long greeting, or many words
 * in a row, or nothing at all for a while.
 *
 * Feed inbound frames from answer; the detector decides within `totalMs`.
 */
import { FRAME_MS, type AudioFrame } from '../media/frame.ts'
import { EnergyVad, type Vad } from './vad.ts'

export type AmdVerdict = 'human' | 'machine' | 'unknown'

export interface AmdResult {
  verdict: AmdVerdict
  /** Why, in the Asterisk vocabulary: INITIALSILENCE, LONGGREETING, MAXWORDS, HUMAN, TOOLONG. */
  cause: string
  decidedAfterMs: number
}

export interface AmdOptions {
  /** Silence before any speech longer than this → machine (or dead air). */
  initialSilenceMs?: number
  /** A greeting (one talk spurt run) longer than this → machine. */
  greetingMs?: number
  /** Silence after a short greeting that means a human is waiting. */
  afterGreetingSilenceMs?: number
  /** More talk spurts than this → machine reading a message. */
  maxWords?: number
  /** Gap that separates two "words" (spurts). */
  betweenWordsSilenceMs?: number
  minWordMs?: number
  totalMs?: number
}

export class AnsweringMachineDetector {
  private readonly o: Required<AmdOptions>
  private elapsed = 0
  private speech = false
  private spurtMs = 0
  private greetingMs = 0
  private silenceMs = 0
  private words = 0
  private heardSpeech = false
  private result: AmdResult | undefined

  constructor(
    opts: AmdOptions = {},
    private readonly vad: Vad = new EnergyVad(),
  ) {
    this.o = {
      initialSilenceMs: opts.initialSilenceMs ?? 2500,
      greetingMs: opts.greetingMs ?? 1500,
      afterGreetingSilenceMs: opts.afterGreetingSilenceMs ?? 800,
      maxWords: opts.maxWords ?? 5,
      betweenWordsSilenceMs: opts.betweenWordsSilenceMs ?? 50,
      minWordMs: opts.minWordMs ?? 100,
      totalMs: opts.totalMs ?? 5000,
    }
  }

  get done(): AmdResult | undefined {
    return this.result
  }

  process(frame: AudioFrame): AmdResult | undefined {
    if (this.result) return this.result
    this.elapsed += FRAME_MS
    const voiced = this.vad.process(frame).speech
    if (voiced) {
      if (!this.speech && this.silenceMs >= this.o.betweenWordsSilenceMs) this.spurtMs = 0
      this.speech = true
      this.silenceMs = 0
      this.spurtMs += FRAME_MS
      this.greetingMs += FRAME_MS
      if (this.spurtMs === this.o.minWordMs) {
        this.words++
        this.heardSpeech = true
      }
      if (this.greetingMs > this.o.greetingMs) return this.decide('machine', 'LONGGREETING')
      if (this.words > this.o.maxWords) return this.decide('machine', 'MAXWORDS')
    } else {
      this.speech = false
      this.silenceMs += FRAME_MS
      if (!this.heardSpeech && this.silenceMs >= this.o.initialSilenceMs) return this.decide('machine', 'INITIALSILENCE')
      if (this.heardSpeech && this.silenceMs >= this.o.afterGreetingSilenceMs) return this.decide('human', 'HUMAN')
    }
    if (this.elapsed >= this.o.totalMs) return this.decide('unknown', 'TOOLONG')
    return undefined
  }

  private decide(verdict: AmdVerdict, cause: string): AmdResult {
    this.result = { verdict, cause, decidedAfterMs: this.elapsed }
    return this.result
  }
}
