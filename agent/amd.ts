/**
 * Answering-machine detection for outbound calls, by energy and cadence (the
 * classic Asterisk AMD heuristics): a person answers with a short greeting
 * ("Hello?") and then waits; a machine plays a long greeting, or many words
 * in a row, or nothing at all for a while.
 *
 * Feed inbound frames from answer; the detector decides within `totalMs`.
 */
import { FRAME_MS, type AudioFrame } from '../audio/frame.ts'
import { EnergyVad } from './vad/energy.ts'
import type { Vad } from './vad/vad.ts'

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

/**
 * The voicemail beep: a steady pure tone (typically 400–2000 Hz, ≥ 150 ms).
 * A Goertzel bank over that range per 20 ms frame; a frame is "tonal" when one
 * bin holds most of the frame's energy, and a beep is a run of tonal frames on
 * the same bin (±1). Speech is never that pure for that long.
 */
export class BeepDetector {
  private readonly bins: Array<{ hz: number; coeff: number }> = []
  private runBin = -1
  private runMs = 0
  private inBeep = false

  constructor(
    sampleRate: number,
    private readonly minMs = 160,
    /** Share of the frame energy in the best bin for a frame to count as tonal. */
    private readonly purity = 0.6,
  ) {
    for (let hz = 400; hz <= 2000 && hz < sampleRate / 2; hz += 25) this.bins.push({ hz, coeff: 2 * Math.cos((2 * Math.PI * hz) / sampleRate) })
  }

  /** 'start' when a beep has lasted minMs, 'end' on the first frame after it, else undefined. */
  process(frame: AudioFrame): 'start' | 'end' | undefined {
    const s = frame.samples
    let energy = 0
    for (let i = 0; i < s.length; i++) energy += s[i]! * s[i]!
    let best = -1
    let bestPower = 0
    // Quiet frames are never tones (a level floor, about -50 dBFS).
    if (energy / s.length > 100 * 100) {
      for (let b = 0; b < this.bins.length; b++) {
        const c = this.bins[b]!.coeff
        let q1 = 0
        let q2 = 0
        for (let i = 0; i < s.length; i++) {
          const q0 = c * q1 - q2 + s[i]!
          q2 = q1
          q1 = q0
        }
        // |X(k)|² → share of energy: Parseval, a pure tone on bin k gives ≈ N/2 · energy.
        const power = (q1 * q1 + q2 * q2 - c * q1 * q2) / (s.length / 2)
        if (power > bestPower) {
          bestPower = power
          best = b
        }
      }
    }
    const tonal = best >= 0 && bestPower >= this.purity * energy
    if (tonal && this.runBin >= 0 && Math.abs(best - this.runBin) <= 1) this.runMs += FRAME_MS
    else if (tonal) {
      this.runBin = best
      this.runMs = FRAME_MS
    } else {
      this.runBin = -1
      this.runMs = 0
      if (this.inBeep) {
        this.inBeep = false
        return 'end'
      }
      return undefined
    }
    if (!this.inBeep && this.runMs >= this.minMs) {
      this.inBeep = true
      return 'start'
    }
    return undefined
  }

  /** Frequency of the current tone run, for logs. */
  get hz(): number | undefined {
    return this.runBin >= 0 ? this.bins[this.runBin]!.hz : undefined
  }
}

/**
 * After a "machine" verdict, when to start speaking a message: right after
 * the beep, or, for machines without one, after the greeting has been over
 * for `silenceMs`, or at the latest after `maxWaitMs`.
 */
export class MessageCue {
  private readonly beep: BeepDetector
  private readonly vad: Vad
  private quietMs = 0
  private elapsed = 0
  private heardSpeechSince = false

  constructor(
    sampleRate: number,
    private readonly o: { silenceMs?: number; maxWaitMs?: number } = {},
    vad: Vad = new EnergyVad(),
  ) {
    this.beep = new BeepDetector(sampleRate)
    this.vad = vad
  }

  process(frame: AudioFrame): 'beep' | 'silence' | 'timeout' | undefined {
    this.elapsed += FRAME_MS
    if (this.beep.process(frame) === 'end') return 'beep'
    const voiced = this.vad.process(frame).speech
    if (voiced) {
      this.quietMs = 0
      this.heardSpeechSince = true
    } else this.quietMs += FRAME_MS
    // A beep can follow a pause of its own; only a long silence after speech means "no beep coming".
    if (this.quietMs >= (this.o.silenceMs ?? 2500) && (this.heardSpeechSince || this.elapsed >= (this.o.silenceMs ?? 2500))) return 'silence'
    if (this.elapsed >= (this.o.maxWaitMs ?? 30000)) return 'timeout'
    return undefined
  }
}
