/**
 * The call's transcript and the per-turn timing waterfall (DESIGN.md: end of
 * speech → final transcript → first LLM token → first TTS audio → first reply
 * packet). All marks are performance.now() values; `toJSON()` reports them as
 * ms since the call started plus the deltas, which is what gets stored with
 * the call and exported as histograms.
 */
export type Role = 'user' | 'assistant' | 'tool' | 'system'

export interface TranscriptEntry {
  role: Role
  text: string
  /** ms since call start. */
  startMs: number
  endMs: number
  interrupted: boolean
  /** For tool entries: name, success. */
  tool?: { name: string; ok: boolean; durationMs: number }
  /** For user entries: where the text came from (STT engine/mode, "dtmf"). */
  source?: string
}

export interface TurnMarks {
  endOfSpeech?: number
  finalTranscript?: number
  firstLlmToken?: number
  firstTtsAudio?: number
  firstReplyFrame?: number
  lastReplyFrame?: number
}

export interface TurnTiming {
  turn: number
  trigger: 'speech' | 'dtmf' | 'greeting' | 'silence-prompt' | 'voicemail'
  /** Marks as ms since call start. */
  marks: TurnMarks
  /** The waterfall as deltas (ms). */
  sttMs?: number
  llmMs?: number
  ttsMs?: number
  playoutMs?: number
  /** end of speech → first reply frame: what the caller experiences. */
  totalMs?: number
  /** final transcript → first reply frame minus adapter time: the engine's own share. */
  engineMs?: number
  interrupted: boolean
}

export interface BargeInRecord {
  /** ms since call start of the first voiced inbound frame. */
  atMs: number
  /** First voiced inbound frame → last outbound agent frame (0 if output was already idle). */
  latencyMs: number
  /** Whether the policy let the interruption stand (false = resumed after a false alarm). */
  stood: boolean
}

export class Transcript {
  readonly entries: TranscriptEntry[] = []
  readonly turns: Array<{ turn: number; trigger: TurnTiming['trigger']; marks: TurnMarks; interrupted: boolean }> = []
  readonly bargeIns: BargeInRecord[] = []

  constructor(readonly startedAt: number) {}

  rel(t: number): number {
    return Math.round((t - this.startedAt) * 10) / 10
  }

  add(entry: Omit<TranscriptEntry, 'startMs' | 'endMs'> & { start: number; end: number }): TranscriptEntry {
    const e: TranscriptEntry = {
      role: entry.role,
      text: entry.text,
      startMs: this.rel(entry.start),
      endMs: this.rel(entry.end),
      interrupted: entry.interrupted,
      ...(entry.tool ? { tool: entry.tool } : {}),
      ...(entry.source ? { source: entry.source } : {}),
    }
    this.entries.push(e)
    return e
  }

  beginTurn(trigger: TurnTiming['trigger'], marks: TurnMarks = {}): { turn: number; trigger: TurnTiming['trigger']; marks: TurnMarks; interrupted: boolean } {
    const t = { turn: this.turns.length + 1, trigger, marks: { ...marks }, interrupted: false }
    this.turns.push(t)
    return t
  }

  timings(): TurnTiming[] {
    return this.turns.map((t) => {
      const m = t.marks
      const d = (a?: number, b?: number): number | undefined => (a !== undefined && b !== undefined ? Math.round((b - a) * 10) / 10 : undefined)
      const rel: TurnMarks = {}
      for (const [k, v] of Object.entries(m) as Array<[keyof TurnMarks, number | undefined]>) if (v !== undefined) rel[k] = this.rel(v)
      const llmMs = d(m.finalTranscript, m.firstLlmToken)
      const ttsMs = d(m.firstLlmToken ?? m.finalTranscript, m.firstTtsAudio)
      const fromFinal = d(m.finalTranscript, m.firstReplyFrame)
      const playoutMs = d(m.firstTtsAudio, m.firstReplyFrame)
      return {
        turn: t.turn,
        trigger: t.trigger,
        marks: rel,
        sttMs: d(m.endOfSpeech, m.finalTranscript),
        llmMs,
        ttsMs,
        playoutMs,
        totalMs: d(m.endOfSpeech, m.firstReplyFrame),
        engineMs: fromFinal !== undefined && llmMs !== undefined && ttsMs !== undefined ? Math.round((fromFinal - llmMs - ttsMs) * 10) / 10 : undefined,
        interrupted: t.interrupted,
      }
    })
  }

  /** Plain text, one line per entry, for summaries and logs. */
  text(): string {
    return this.entries
      .filter((e) => e.role === 'user' || e.role === 'assistant')
      .map((e) => `${e.role === 'user' ? 'Caller' : 'Agent'}: ${e.text}${e.interrupted ? ' [interrupted]' : ''}`)
      .join('\n')
  }

  toJSON(): { entries: TranscriptEntry[]; turns: TurnTiming[]; bargeIns: BargeInRecord[] } {
    return { entries: this.entries, turns: this.timings(), bargeIns: this.bargeIns }
  }
}
