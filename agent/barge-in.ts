/**
 * Barge-in policy (DESIGN.md "Barge-in at the packet level").
 *
 * Two stages, so reaction is packet-fast but decisions are not trigger-happy:
 * 1. React: on speech onset while the agent is talking, the runtime pauses the
 *    playout (the next media tick sends nothing) and flushes the port — without
 *    waiting for STT. The latency (first voiced inbound frame → last agent
 *    frame out) is recorded here.
 * 2. Decide: the interruption stands once the caller has spoken `minSpeechMs`
 *    (and, if `minWords` > 0, STT has heard that many words); then the reply's
 *    LLM/TTS are aborted and the queued audio dropped. If the burst ends first
 *    it was a false alarm: the paused speech resumes where it stopped.
 */
import type { BargeInPolicy } from './config.ts'

export type BargeInVerdict = 'pending' | 'stands' | 'false-alarm'

export class BargeIn {
  private active = false
  private firstVoicedAt = 0
  private words = 0
  latencyMs = 0

  constructor(private readonly policy: BargeInPolicy) {}

  get pending(): boolean {
    return this.active
  }

  /** Caller speech started while the agent was speaking. */
  begin(firstVoicedAt: number, lastAgentFrameAt: number): number {
    this.active = true
    this.firstVoicedAt = firstVoicedAt
    this.words = 0
    this.latencyMs = Math.max(0, lastAgentFrameAt - firstVoicedAt)
    return this.latencyMs
  }

  addWords(text: string): void {
    this.words += text.split(/\s+/).filter(Boolean).length
  }

  /** While the caller keeps talking. */
  check(voicedMs: number): BargeInVerdict {
    if (!this.active) return 'pending'
    if (voicedMs >= this.policy.minSpeechMs && this.words >= this.policy.minWords) return this.settle('stands')
    return 'pending'
  }

  /**
   * Caller went quiet. If words are required and STT has not reported yet,
   * the decision waits (`pending`) for `finalWords()`.
   */
  end(voicedMs: number, awaitingStt: boolean): BargeInVerdict {
    if (!this.active) return 'pending'
    if (voicedMs < this.policy.minSpeechMs) return this.settle('false-alarm')
    if (this.words >= this.policy.minWords) return this.settle('stands')
    return awaitingStt ? 'pending' : this.settle('false-alarm')
  }

  /** STT delivered the final for the interrupting utterance. */
  finalWords(text: string): BargeInVerdict {
    if (!this.active) return 'pending'
    this.addWords(text)
    return this.words >= this.policy.minWords ? this.settle('stands') : this.settle('false-alarm')
  }

  get startedAt(): number {
    return this.firstVoicedAt
  }

  private settle(v: BargeInVerdict): BargeInVerdict {
    this.active = false
    return v
  }
}
