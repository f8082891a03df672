/**
 * The caller's side of one call (LiveKit agents-js `audio_recognition.ts` is
 * the model): inbound frames through the VAD and turn-taker, the barge-in
 * decision, the STT stream and its loop, the user turn from first voiced
 * frame to committed text, and DTMF digits gathered into one input.
 *
 * Everything latency-relevant happens synchronously in the frame callback
 * (VAD, barge-in pause): the playout is paused and the port flushed on the
 * frame that completes the onset, before STT has said anything.
 */
import { performance } from 'node:perf_hooks'
import type { EventEmitter } from 'node:events'
import type { AudioFrame } from '../audio/frame.ts'
import type { AgentEvents, AgentLogger } from './agent-events.ts'
import { BargeIn, type BargeInVerdict } from './barge-in.ts'
import type { CallTimers } from './call-timers.ts'
import type { AgentConfig } from './config.ts'
import type { AgentMediaPort } from './media-port.ts'
import { agentMetricSinks } from './metrics.ts'
import type { Playout } from './playout.ts'
import type { BargeInRecord, Transcript, TurnMarks } from './transcript.ts'
import { TurnTaker } from './vad/turn-taker.ts'
import type { Vad } from './vad/vad.ts'
import type { SttAdapter, SttStream } from './adapters/stt/contract.ts'

interface UserTurn {
  startedAt: number
  endOfSpeech?: number
  texts: string[]
  finalAt?: number
  source?: string
  awaitingFinal: boolean
  /** Burst that was a barge-in false alarm: its transcript is dropped. */
  discard: boolean
  timer?: NodeJS.Timeout
  abandonTimer?: NodeJS.Timeout
}

/** What turn input needs from the runtime and the reply side. */
export interface TurnInputHooks {
  /** The agent is talking (a reply in flight or audio queued). */
  agentBusy(): boolean
  /** The agent's current line may be interrupted. */
  canInterrupt(): boolean
  /** Barge-in stood (or DTMF cut in): cancel the reply. */
  cancelReply(): void
  /** The caller did something (spoke, keyed a digit): the silence prompt may be said again; `speech` also stops the silence timer. */
  callerActive(speech: boolean): void
  /** A turn ended or was given up: the mutual-silence timer restarts. */
  armSilenceTimer(): void
  /** The caller's turn is committed (already in the transcript). */
  userTurn(text: string, marks: TurnMarks): void
  /** DTMF digits gathered over the inter-digit window (already in the transcript). */
  dtmf(digits: string, at: number): void
}

export interface TurnInputOptions {
  config: AgentConfig
  port: AgentMediaPort
  playout: Playout
  transcript: Transcript
  stt: SttAdapter
  vad: Vad
  timers: CallTimers
  events: EventEmitter<AgentEvents>
  log: AgentLogger
  callId: string
  hooks: TurnInputHooks
  /** How long to wait for STT after end of speech before giving up on the turn. */
  finalTimeoutMs?: number | undefined
  /** After the final timeout, how long a late STT final is still accepted for the turn. */
  lateFinalGraceMs?: number | undefined
  /** DTMF digits arriving within this window are sent to the LLM together. */
  dtmfInterDigitMs?: number | undefined
}

export class TurnInput {
  private readonly o: TurnInputOptions
  private readonly config: AgentConfig
  private readonly hooks: TurnInputHooks
  private readonly events: EventEmitter<AgentEvents>
  private readonly turnTaker: TurnTaker
  private readonly bargeIn: BargeIn
  private stt: SttStream | undefined
  private userTurn: UserTurn | undefined
  private clockOffset: number | undefined
  /** A false alarm's paused speech waiting for `bargeIn.resumeAfterMs` of caller silence. */
  private resumeTimer: NodeJS.Timeout | undefined
  private dtmfBuffer = ''
  private dtmfTimer: NodeJS.Timeout | undefined
  private stopped = false

  constructor(o: TurnInputOptions) {
    this.o = o
    this.config = o.config
    this.hooks = o.hooks
    this.events = o.events
    this.turnTaker = new TurnTaker(o.vad, { onsetMs: o.config.bargeIn.onsetMs, silenceMs: o.config.vadSilenceDurationMs })
    this.bargeIn = new BargeIn(o.config.bargeIn)
  }

  /** The caller is talking, or has a turn waiting for its STT final. */
  get callerActive(): boolean {
    return this.turnTaker.inSpeech || this.userTurn !== undefined
  }

  /** Opens the STT stream (with the phrases the agent expects) and starts reading it. */
  async open(phrases: string[]): Promise<void> {
    this.stt = await this.o.stt.open({
      sampleRate: this.o.port.sampleRate,
      phrases,
      ...(this.config.language ? { language: this.config.language } : {}),
    })
    void this.sttLoop(this.stt)
  }

  /** The call ended: nothing more is taken in; the STT stream closes. */
  stop(): void {
    this.stopped = true
  }

  async close(): Promise<void> {
    await this.stt?.close().catch(() => {})
  }

  /**
   * Frame times on our clock. audio/frame.ts says `receivedAt` is
   * performance.now() (the MediaSession's clock), but a port may stamp frames
   * with another monotonic clock (e.g. process.hrtime, time since boot): turn
   * marks, the late-final check and barge-in latency all compare frame times
   * with performance.now(), so the offset is measured on the first frame
   * (`measureClock`, called for every frame, AMD phase included).
   * Offsets under a second are delivery delay on the same clock, not skew.
   */
  measureClock(frame: AudioFrame): void {
    if (this.clockOffset !== undefined) return
    const off = performance.now() - frame.receivedAt
    this.clockOffset = Math.abs(off) < 1000 ? 0 : off
  }

  private frameTime(t: number): number {
    return t + (this.clockOffset ?? 0)
  }

  // ------------------------------------------------------------------ frames: VAD, turns, barge-in

  onFrame(frame: AudioFrame): void {
    this.stt?.push(frame)
    const ev = this.turnTaker.process(frame)
    if (ev) this.events.emit('speech', { role: 'user', status: ev.type === 'speech_start' ? 'started' : 'stopped' })
    if (ev?.type === 'speech_start') {
      this.hooks.callerActive(true)
      // The caller spoke again before a false alarm's speech resumed: it stays paused.
      this.clearResumeTimer()
      if (this.hooks.agentBusy() && this.hooks.canInterrupt()) {
        // Packet-level reaction: nothing more goes out from the next tick on.
        this.o.playout.pause()
        this.o.port.flush()
        this.bargeIn.begin(this.frameTime(ev.firstVoicedAt), this.o.playout.lastFrameAt)
        this.decideBargeIn(this.bargeIn.check(this.turnTaker.voicedMs))
      }
      if (!this.userTurn) {
        // Talking over a non-interruptible prompt (e.g. a mandatory disclosure) is not a turn.
        const discard = this.hooks.agentBusy() && !this.hooks.canInterrupt() && this.config.bargeIn.enabled
        // Prefix padding (Leadlock vad_prefix_padding_ms): audio just before the onset belongs to the turn,
        // so an STT final for a soft first syllable the VAD missed is not dropped as "before this turn".
        this.userTurn = { startedAt: this.frameTime(ev.firstVoicedAt) - this.config.vadPrefixPaddingMs, texts: [], awaitingFinal: false, discard }
      } else {
        // Caller resumed before STT delivered: same turn continues.
        this.o.timers.clear(this.userTurn.timer)
        this.o.timers.clear(this.userTurn.abandonTimer)
        this.userTurn.abandonTimer = undefined
        this.userTurn.awaitingFinal = false
      }
      return
    }
    if (ev?.type === 'speech_end') {
      const ut = this.userTurn ?? { startedAt: this.frameTime(ev.startedAt), texts: [], awaitingFinal: false, discard: false }
      this.userTurn = ut
      ut.endOfSpeech = this.frameTime(ev.lastVoicedAt) + 20
      if (this.bargeIn.pending) {
        const v = this.bargeIn.end(ev.voicedMs, this.config.bargeIn.minWords > 0)
        this.decideBargeIn(v)
      }
      this.stt?.flush()
      ut.awaitingFinal = true
      // The text may already be here (STT endpointed before our VAD did).
      if (this.coversSpeech(ut) && !this.bargeIn.pending) this.commitUserTurn()
      else ut.timer = this.o.timers.set(this.o.finalTimeoutMs ?? 2500, () => this.commitUserTurn())
      this.hooks.armSilenceTimer()
      return
    }
    if (this.bargeIn.pending && this.turnTaker.inSpeech) this.decideBargeIn(this.bargeIn.check(this.turnTaker.voicedMs))
  }

  private decideBargeIn(v: BargeInVerdict): void {
    if (v === 'pending') return
    const rec: BargeInRecord = { atMs: this.o.transcript.rel(this.bargeIn.startedAt), latencyMs: Math.round(this.bargeIn.latencyMs * 10) / 10, stood: v === 'stands' }
    this.o.transcript.bargeIns.push(rec)
    for (const m of agentMetricSinks()) m.observeBargeIn(rec)
    this.events.emit('barge_in', rec)
    if (v === 'stands') {
      this.o.log.info({ callId: this.o.callId, latencyMs: rec.latencyMs }, 'barge-in')
      this.hooks.cancelReply()
      return
    }
    // False alarm: resume the paused speech (after resumeAfterMs of silence) and forget the burst.
    if (this.userTurn) this.userTurn.discard = true
    if (!this.config.bargeIn.resumeAfterFalseAlarm) return this.hooks.cancelReply()
    const wait = this.config.bargeIn.resumeAfterMs
    if (wait <= 0) return this.o.playout.resume()
    this.clearResumeTimer()
    this.resumeTimer = this.o.timers.set(wait, () => {
      this.resumeTimer = undefined
      if (!this.turnTaker.inSpeech) this.o.playout.resume()
    })
  }

  private clearResumeTimer(): void {
    this.o.timers.clear(this.resumeTimer)
    this.resumeTimer = undefined
  }

  // ------------------------------------------------------------------ STT

  private async sttLoop(stream: SttStream): Promise<void> {
    try {
      for await (const e of stream.events()) {
        if (this.stopped) return
        if (e.type === 'error') {
          this.o.log.warn({ callId: this.o.callId, err: e.error.message }, 'stt error')
          this.events.emit('error', e.error)
          continue
        }
        if (e.type === 'final') {
          if (!e.text.trim()) continue
          this.events.emit('stt_final', { text: e.text, ...(e.source ? { source: e.source } : {}) })
          // Our VAD owns turn boundaries: a final with no caller speech behind it
          // (decoder noise, or a late result for a turn already committed) is dropped.
          const ut = this.userTurn
          if (!ut) continue
          // A slow second pass finishing now may be about audio from before this turn.
          if (e.utteranceEndAt !== undefined && e.utteranceEndAt < ut.startedAt) continue
          ut.texts.push(e.text.trim())
          ut.finalAt = e.at
          if (e.source) ut.source = e.source
          if (this.bargeIn.pending) {
            if (this.turnTaker.inSpeech) {
              this.bargeIn.addWords(e.text)
              this.decideBargeIn(this.bargeIn.check(this.turnTaker.voicedMs))
            } else this.decideBargeIn(this.bargeIn.finalWords(e.text))
          }
          if (ut.awaitingFinal && !this.bargeIn.pending && this.coversSpeech(ut)) this.commitUserTurn()
        } else if (e.type === 'end_of_utterance') {
          const ut = this.userTurn
          if (ut?.awaitingFinal && !this.bargeIn.pending) this.commitUserTurn()
        }
      }
    } catch (err) {
      if (!this.stopped) this.events.emit('error', err as Error)
    }
  }

  /** A final that arrived after the last voiced frame covers everything the caller said. */
  private coversSpeech(ut: UserTurn): boolean {
    return ut.texts.length > 0 && ut.finalAt !== undefined && ut.endOfSpeech !== undefined && ut.finalAt >= ut.endOfSpeech
  }

  private commitUserTurn(): void {
    const ut = this.userTurn
    if (!ut || !ut.awaitingFinal) return
    this.o.timers.clear(ut.timer)
    if (this.bargeIn.pending) {
      // STT never confirmed enough words: treat as a false alarm (marks ut.discard).
      this.decideBargeIn(this.bargeIn.finalWords(''))
    }
    this.userTurn = undefined
    const text = ut.texts.join(' ').trim()
    if (ut.discard) return
    if (!text) {
      // STT is late (loaded box, slow vendor): keep the turn open so a late
      // final still gets answered, but give up eventually so a noise burst
      // that never yields text does not block the silence timer forever.
      if (!ut.abandonTimer) {
        this.userTurn = ut
        ut.abandonTimer = this.o.timers.set(this.o.lateFinalGraceMs ?? 10000, () => {
          if (this.userTurn === ut) this.userTurn = undefined
          this.hooks.armSilenceTimer()
        })
      }
      return
    }
    this.o.timers.clear(ut.abandonTimer)
    const now = performance.now()
    const entry = this.o.transcript.add({ role: 'user', text, start: ut.startedAt, end: ut.endOfSpeech ?? now, interrupted: false, ...(ut.source ? { source: ut.source } : {}) })
    this.events.emit('transcript', entry)
    this.hooks.userTurn(text, { endOfSpeech: ut.endOfSpeech ?? now, finalTranscript: ut.finalAt ?? now })
  }

  // ------------------------------------------------------------------ DTMF

  onDtmf(digit: string): void {
    this.hooks.callerActive(false)
    if (this.hooks.agentBusy() && this.hooks.canInterrupt()) this.hooks.cancelReply()
    this.dtmfBuffer += digit
    this.o.timers.clear(this.dtmfTimer)
    this.dtmfTimer = this.o.timers.set(this.o.dtmfInterDigitMs ?? 400, () => {
      const digits = this.dtmfBuffer
      this.dtmfBuffer = ''
      const now = performance.now()
      const entry = this.o.transcript.add({ role: 'user', text: `DTMF: ${digits}`, start: now, end: now, interrupted: false, source: 'dtmf' })
      this.events.emit('transcript', entry)
      this.hooks.dtmf(digits, now)
    })
  }
}
