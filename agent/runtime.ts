/**
 * The voice-agent runtime for one call: frames in from an AgentMediaPort,
 * VAD + endpointing, STT → LLM → TTS, audio out through the playout queue,
 * packet-level barge-in, tools, transcript and per-turn timings.
 *
 * Everything latency-relevant happens synchronously in the frame callback
 * (VAD, barge-in pause); everything slow (adapters, tools) is async and
 * cancellable through one AbortController per reply.
 */
import type { OutboundUrlPolicy } from '../config/outbound-url-policy.ts'
import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import type { AudioFrame } from '../audio/frame.ts'
import { BargeIn } from './barge-in.ts'
import type { AgentConfig } from './config.ts'
import type { AgentMediaPort, Unsubscribe } from './media-port.ts'
import { Playout, heardText, type Segment } from './playout.ts'
import { SentenceSplitter } from './sentences.ts'
import { ToolBox, type ToolOutcome } from './tools.ts'
import { Transcript, type BargeInRecord, type TranscriptEntry, type TurnMarks, type TurnTiming } from './transcript.ts'
import { TurnTaker } from './vad/turn-taker.ts'
import type { Vad } from './vad/vad.ts'
import { createVad } from './vad/choice.ts'
import { Channel } from './channel.ts'
import { agentMetricSinks } from './metrics.ts'
import { AnsweringMachineDetector, MessageCue, type AmdResult } from './amd.ts'
import { substituteVariables } from './template-variables.ts'
import { isAbortError } from './adapters/adapter-error.ts'
import type { SttAdapter, SttStream } from './adapters/stt/contract.ts'
import type { ChatMessage, LlmAdapter, ToolCall } from './adapters/llm/contract.ts'
import type { TtsAdapter } from './adapters/tts/contract.ts'

/** Said when a tool failed (error, timeout, refused URL) and the model had nothing to say about it. */
export const TOOL_APOLOGY = "Sorry, I couldn't get that information right now."

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

export interface AgentLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

const silentLogger: AgentLogger = { info() {}, warn() {}, error() {} }

export interface CallInfo {
  id: string
  from?: string
  to?: string
  direction?: 'inbound' | 'outbound'
}

export interface AgentRuntimeOptions {
  config: AgentConfig
  port: AgentMediaPort
  stt: SttAdapter
  llm: LlmAdapter
  tts: TtsAdapter
  tools?: ToolBox
  call?: CallInfo
  vad?: Vad
  log?: AgentLogger
  /** Checked before each HTTP tool request (config/outbound-url-policy.ts). */
  urlPolicy?: OutboundUrlPolicy
  /** How long to wait for STT after end of speech before giving up on the turn. */
  finalTimeoutMs?: number
  /** After the final timeout, how long a late STT final is still accepted for the turn. */
  lateFinalGraceMs?: number
  /** DTMF digits arriving within this window are sent to the LLM together. */
  dtmfInterDigitMs?: number
  maxToolRounds?: number
  /** Bound on the end-of-call summary request (it runs after the hangup, so only the record waits). */
  summaryTimeoutMs?: number
}

export type AgentEndReason = 'end_call' | 'transfer' | 'max-duration' | 'max-silence' | 'remote-hangup' | 'stopped' | 'error' | 'machine-detected' | 'voicemail-left'

export interface AgentCallResult {
  reason: AgentEndReason
  transcript: ReturnType<Transcript['toJSON']>
  summary?: string
  transferTarget?: string
  /** Outbound calls with AMD: what answered. */
  amd?: AmdResult
}

export interface SpeechUpdate { role: 'user' | 'assistant'; status: 'started' | 'stopped' }

export interface ToolCallEvent {
  call: ToolCall
  outcome: ToolOutcome
}

interface AgentEvents {
  transcript: [TranscriptEntry]
  turn: [TurnTiming]
  barge_in: [BargeInRecord]
  tool_call: [ToolCallEvent]
  /** Caller (VAD) or agent (first / last reply frame) started or stopped speaking: `call.speech_update`. */
  speech: [SpeechUpdate]
  stt_final: [{ text: string; source?: string }]
  amd: [AmdResult]
  ended: [AgentCallResult]
  error: [Error]
}

interface Reply {
  ac: AbortController
  turn: ReturnType<Transcript['beginTurn']>
  segments: Segment[]
  interruptible: boolean
  done?: Promise<void>
}

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

type ReplyInput = { kind: 'llm'; trigger: TurnTiming['trigger']; marks: TurnMarks } | { kind: 'say'; text: string; trigger: TurnTiming['trigger']; interruptible: boolean }

export class AgentRuntime extends EventEmitter<AgentEvents> {
  readonly config: AgentConfig
  readonly transcript: Transcript
  readonly playout: Playout
  private readonly port: AgentMediaPort
  private readonly sttAdapter: SttAdapter
  private readonly llm: LlmAdapter
  private readonly tts: TtsAdapter
  private readonly tools: ToolBox
  private readonly turnTaker: TurnTaker
  private readonly bargeIn: BargeIn
  private readonly log: AgentLogger
  private readonly call: CallInfo
  private readonly opts: AgentRuntimeOptions
  private readonly messages: ChatMessage[] = []
  private stt: SttStream | undefined
  private current: Reply | undefined
  private userTurn: UserTurn | undefined
  private unsubs: Unsubscribe[] = []
  private timers = new Set<NodeJS.Timeout>()
  private silenceTimer: NodeJS.Timeout | undefined
  private silencePrompted = false
  private dtmfBuffer = ''
  private dtmfTimer: NodeJS.Timeout | undefined
  private clockOffset: number | undefined
  /** Outbound AMD in progress: frames go to the detector (then the message cue), not to the conversation. */
  private amd: { phase: 'detect'; detector: AnsweringMachineDetector } | { phase: 'wait'; cue: MessageCue } | { phase: 'message' } | undefined
  private amdResult: AmdResult | undefined
  /** A false alarm's paused speech waiting for `bargeIn.resumeAfterMs` of caller silence. */
  private resumeTimer: NodeJS.Timeout | undefined
  private ended = false
  private result: AgentCallResult | undefined
  private resolveDone!: (r: AgentCallResult) => void
  /** Resolves when the agent has finished with the call. */
  readonly done: Promise<AgentCallResult>

  constructor(opts: AgentRuntimeOptions) {
    super()
    this.opts = opts
    this.config = opts.config
    this.port = opts.port
    this.sttAdapter = opts.stt
    this.llm = opts.llm
    this.tts = opts.tts
    this.tools = opts.tools ?? new ToolBox(opts.config.tools, opts.config.toolsEnabled, opts.config.transferTargets)
    this.log = opts.log ?? silentLogger
    this.call = opts.call ?? { id: 'call' }
    this.transcript = new Transcript(performance.now())
    this.turnTaker = new TurnTaker(opts.vad ?? createVad(opts.config), {
      onsetMs: opts.config.bargeIn.onsetMs,
      silenceMs: opts.config.vadSilenceDurationMs,
    })
    this.bargeIn = new BargeIn(opts.config.bargeIn)
    this.playout = new Playout(opts.port.sampleRate, {
      onSegmentStart: (seg) => this.onSegmentStart(seg),
      onSegmentEnd: () => this.armSilenceTimer(),
    })
    this.done = new Promise((resolve) => (this.resolveDone = resolve))
    // Listeners may be absent; an unhandled 'error' event must not crash the media worker.
    this.on('error', () => {})
  }

  // ------------------------------------------------------------------ lifecycle

  async start(): Promise<void> {
    const phrases = [...this.config.expectedPhrases, ...(this.llm.expectedPhrases?.() ?? [])]
    this.stt = await this.sttAdapter.open({
      sampleRate: this.port.sampleRate,
      phrases,
      ...(this.config.language ? { language: this.config.language } : {}),
    })
    void this.sttLoop(this.stt)
    this.port.play(this.playout)
    this.unsubs.push(
      this.port.onFrame((f) => this.onFrame(f)),
      this.port.onDtmf((d) => this.onDtmf(d)),
      this.port.onEnded((reason) => void this.end('remote-hangup', false, reason)),
    )
    this.messages.push({ role: 'system', content: this.fill(this.config.systemPrompt) })
    if (this.config.maxCallDurationMinutes > 0) {
      this.timer(this.config.maxCallDurationMinutes * 60000, () => void this.onMaxDuration())
    }
    if (this.config.amd && this.call.direction === 'outbound') {
      this.amd = { phase: 'detect', detector: new AnsweringMachineDetector(this.config.amd.detector) }
      return
    }
    this.beginConversation()
  }

  /** `{{name}}` variables of this call (agent/template-variables.ts). */
  private fill(text: string): string {
    return this.config.variables ? substituteVariables(text, this.config.variables) : text
  }

  /**
   * The disclosure (if any) first and in full, then the greeting: on an
   * outbound call `greetingOutbound` and `aiSpeaksFirstOutbound` when set.
   */
  private beginConversation(): void {
    const outbound = this.call.direction === 'outbound'
    const speaksFirst = outbound ? (this.config.aiSpeaksFirstOutbound ?? this.config.aiSpeaksFirst) : this.config.aiSpeaksFirst
    const greeting = outbound ? (this.config.greetingOutbound ?? this.config.greeting) : this.config.greeting
    const greet = (): void => {
      if (this.ended) return
      if (speaksFirst && greeting) {
        this.startReply({ kind: 'say', text: this.fill(greeting), trigger: 'greeting', interruptible: this.config.greetingInterruptible })
      } else this.armSilenceTimer()
    }
    if (!this.config.disclosure) return greet()
    this.startReply({ kind: 'say', text: this.fill(this.config.disclosure), trigger: 'greeting', interruptible: false })
    const disclosure = this.current
    void disclosure?.done?.then(() => {
      // Something else (a DTMF reply, the caller's turn) took over: no greeting on top of it.
      if (this.current === undefined || this.current === disclosure) greet()
    })
  }

  // ------------------------------------------------------------------ answering machine (outbound)

  private onAmdFrame(frame: AudioFrame): void {
    const policy = this.config.amd!
    const amd = this.amd!
    if (amd.phase === 'detect') {
      const r = amd.detector.process(frame)
      if (!r) return
      this.amdResult = r
      const now = performance.now()
      this.transcript.add({ role: 'system', text: `AMD: ${r.verdict} (${r.cause}) after ${r.decidedAfterMs} ms`, start: now - r.decidedAfterMs, end: now, interrupted: false, source: 'amd' })
      this.log.info({ callId: this.call.id, ...r }, 'answering machine detection')
      this.emit('amd', r)
      if (r.verdict !== 'machine' || policy.onMachine === 'continue') {
        // A person (or no verdict in time): the conversation starts now; their "Hello?" was the cue.
        this.amd = undefined
        this.beginConversation()
      } else if (policy.onMachine === 'hangup') {
        this.amd = undefined
        void this.end('machine-detected', true)
      } else {
        this.amd = { phase: 'wait', cue: new MessageCue(frame.sampleRate, { ...(policy.endOfGreetingSilenceMs !== undefined ? { silenceMs: policy.endOfGreetingSilenceMs } : {}), ...(policy.maxWaitMs !== undefined ? { maxWaitMs: policy.maxWaitMs } : {}) }) }
      }
      return
    }
    if (amd.phase === 'wait') {
      const cue = amd.cue.process(frame)
      if (!cue) return
      this.amd = { phase: 'message' }
      const now = performance.now()
      this.transcript.add({ role: 'system', text: `AMD: message cue ${cue}`, start: now, end: now, interrupted: false, source: 'amd' })
      this.log.info({ callId: this.call.id, cue }, 'leaving voicemail message')
      void this.leaveMessage(this.fill(policy.message ?? this.config.greetingOutbound ?? this.config.greeting ?? ''))
    }
    // phase 'message': the machine is recording; nothing it plays is a turn.
  }

  private async leaveMessage(text: string): Promise<void> {
    if (text) {
      this.startReply({ kind: 'say', text, trigger: 'voicemail', interruptible: false })
      await this.current?.done
    }
    await this.end('voicemail-left', true)
  }

  /** Stop from the outside (API hangup, shutdown). Does not hang up the port. */
  async stop(): Promise<AgentCallResult> {
    await this.end('stopped', false)
    return this.done
  }

  // ------------------------------------------------------------------ inbound path

  /**
   * Frame times on our clock. media/frame.ts says `receivedAt` is
   * performance.now() (the MediaSession's clock), but a port may stamp frames
   * with another monotonic clock (e.g. process.hrtime, time since boot): turn
   * marks, the late-final check and barge-in latency all compare frame times
   * with performance.now(), so the offset is measured on the first frame.
   * Offsets under a second are delivery delay on the same clock, not skew.
   */
  private frameTime(t: number): number {
    return t + (this.clockOffset ?? 0)
  }

  private onFrame(frame: AudioFrame): void {
    if (this.ended) return
    if (this.clockOffset === undefined) {
      const off = performance.now() - frame.receivedAt
      this.clockOffset = Math.abs(off) < 1000 ? 0 : off
    }
    if (this.amd) return this.onAmdFrame(frame)
    this.stt?.push(frame)
    const ev = this.turnTaker.process(frame)
    if (ev) this.emit('speech', { role: 'user', status: ev.type === 'speech_start' ? 'started' : 'stopped' })
    if (ev?.type === 'speech_start') {
      this.silencePrompted = false
      this.clearSilenceTimer()
      // The caller spoke again before a false alarm's speech resumed: it stays paused.
      this.clearResumeTimer()
      if (this.agentBusy() && this.canInterrupt()) {
        // Packet-level reaction: nothing more goes out from the next tick on.
        this.playout.pause()
        this.port.flush()
        this.bargeIn.begin(this.frameTime(ev.firstVoicedAt), this.playout.lastFrameAt)
        this.decideBargeIn(this.bargeIn.check(this.turnTaker.voicedMs))
      }
      if (!this.userTurn) {
        // Talking over a non-interruptible prompt (e.g. a mandatory disclosure) is not a turn.
        const discard = this.agentBusy() && !this.canInterrupt() && this.config.bargeIn.enabled
        // Prefix padding (Leadlock vad_prefix_padding_ms): audio just before the onset belongs to the turn,
        // so an STT final for a soft first syllable the VAD missed is not dropped as "before this turn".
        this.userTurn = { startedAt: this.frameTime(ev.firstVoicedAt) - this.config.vadPrefixPaddingMs, texts: [], awaitingFinal: false, discard }
      } else {
        // Caller resumed before STT delivered: same turn continues.
        if (this.userTurn.timer) clearTimeout(this.userTurn.timer)
        if (this.userTurn.abandonTimer) clearTimeout(this.userTurn.abandonTimer)
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
      else ut.timer = this.timer(this.opts.finalTimeoutMs ?? 2500, () => this.commitUserTurn())
      this.armSilenceTimer()
      return
    }
    if (this.bargeIn.pending && this.turnTaker.inSpeech) this.decideBargeIn(this.bargeIn.check(this.turnTaker.voicedMs))
  }

  private decideBargeIn(v: ReturnType<BargeIn['check']>): void {
    if (v === 'pending') return
    const rec: BargeInRecord = { atMs: this.transcript.rel(this.bargeIn.startedAt), latencyMs: Math.round(this.bargeIn.latencyMs * 10) / 10, stood: v === 'stands' }
    this.transcript.bargeIns.push(rec)
    for (const m of agentMetricSinks()) m.observeBargeIn(rec)
    this.emit('barge_in', rec)
    if (v === 'stands') {
      this.log.info({ callId: this.call.id, latencyMs: rec.latencyMs }, 'barge-in')
      this.cancelCurrent()
      return
    }
    // False alarm: resume the paused speech (after resumeAfterMs of silence) and forget the burst.
    if (this.userTurn) this.userTurn.discard = true
    if (!this.config.bargeIn.resumeAfterFalseAlarm) return this.cancelCurrent()
    const wait = this.config.bargeIn.resumeAfterMs
    if (wait <= 0) return this.playout.resume()
    this.clearResumeTimer()
    this.resumeTimer = this.timer(wait, () => {
      this.resumeTimer = undefined
      if (!this.turnTaker.inSpeech) this.playout.resume()
    })
  }

  private clearResumeTimer(): void {
    if (!this.resumeTimer) return
    clearTimeout(this.resumeTimer)
    this.timers.delete(this.resumeTimer)
    this.resumeTimer = undefined
  }

  private async sttLoop(stream: SttStream): Promise<void> {
    try {
      for await (const e of stream.events()) {
        if (this.ended) return
        if (e.type === 'error') {
          this.log.warn({ callId: this.call.id, err: e.error.message }, 'stt error')
          this.emit('error', e.error)
          continue
        }
        if (e.type === 'final') {
          if (!e.text.trim()) continue
          this.emit('stt_final', { text: e.text, ...(e.source ? { source: e.source } : {}) })
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
      if (!this.ended) this.emit('error', err as Error)
    }
  }

  /** A final that arrived after the last voiced frame covers everything the caller said. */
  private coversSpeech(ut: UserTurn): boolean {
    return ut.texts.length > 0 && ut.finalAt !== undefined && ut.endOfSpeech !== undefined && ut.finalAt >= ut.endOfSpeech
  }

  private commitUserTurn(): void {
    const ut = this.userTurn
    if (!ut || !ut.awaitingFinal) return
    if (ut.timer) clearTimeout(ut.timer)
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
        ut.abandonTimer = this.timer(this.opts.lateFinalGraceMs ?? 10000, () => {
          if (this.userTurn === ut) this.userTurn = undefined
          this.armSilenceTimer()
        })
      }
      return
    }
    if (ut.abandonTimer) clearTimeout(ut.abandonTimer)
    const now = performance.now()
    const entry = this.transcript.add({ role: 'user', text, start: ut.startedAt, end: ut.endOfSpeech ?? now, interrupted: false, ...(ut.source ? { source: ut.source } : {}) })
    this.emit('transcript', entry)
    this.messages.push({ role: 'user', content: text })
    const reply: ReplyInput = { kind: 'llm', trigger: 'speech', marks: { endOfSpeech: ut.endOfSpeech ?? now, finalTranscript: ut.finalAt ?? now } }
    const speaking = this.current
    if (speaking && !this.canInterrupt()) {
      // Barge-in is off (or the line may not be interrupted): the caller was heard, and is
      // answered once the agent has finished its line, which a new reply would otherwise cut off.
      void speaking.done?.then(() => { if (!this.ended && !this.current) this.startReply(reply) })
      return
    }
    this.startReply(reply)
  }

  private onDtmf(digit: string): void {
    if (this.ended) return
    this.silencePrompted = false
    if (this.agentBusy() && this.canInterrupt()) this.cancelCurrent()
    this.dtmfBuffer += digit
    if (this.dtmfTimer) clearTimeout(this.dtmfTimer)
    this.dtmfTimer = this.timer(this.opts.dtmfInterDigitMs ?? 400, () => {
      const digits = this.dtmfBuffer
      this.dtmfBuffer = ''
      const now = performance.now()
      const entry = this.transcript.add({ role: 'user', text: `DTMF: ${digits}`, start: now, end: now, interrupted: false, source: 'dtmf' })
      this.emit('transcript', entry)
      this.messages.push({ role: 'user', content: `DTMF: ${digits}` })
      this.startReply({ kind: 'llm', trigger: 'dtmf', marks: { endOfSpeech: now, finalTranscript: now } })
    })
  }

  // ------------------------------------------------------------------ replies

  private agentBusy(): boolean {
    return this.current !== undefined || this.playout.hasAudio
  }

  private canInterrupt(): boolean {
    if (!this.config.bargeIn.enabled) return false
    return this.current?.interruptible ?? true
  }

  private cancelCurrent(): void {
    const r = this.current
    this.current = undefined
    if (r) {
      r.turn.interrupted = true
      r.ac.abort()
    }
    this.playout.clear()
  }

  private startReply(input: ReplyInput): void {
    if (this.ended) return
    if (this.current) this.cancelCurrent()
    this.clearSilenceTimer()
    const reply: Reply = {
      ac: new AbortController(),
      turn: this.transcript.beginTurn(input.trigger, input.kind === 'llm' ? input.marks : {}),
      segments: [],
      interruptible: input.kind === 'say' ? input.interruptible : true,
    }
    this.current = reply
    reply.done = this.runReply(reply, input)
      .catch((err: unknown) => {
        if (!isAbortError(err) && !reply.ac.signal.aborted) {
          this.log.error({ callId: this.call.id, err: (err as Error).message }, 'reply failed')
          this.emit('error', err as Error)
        }
      })
      .finally(() => {
        if (this.current === reply) this.current = undefined
        const timing = this.transcript.timings()[reply.turn.turn - 1]!
        for (const m of agentMetricSinks()) m.observeTurn(timing)
        this.emit('turn', timing)
        this.armSilenceTimer()
      })
  }

  private async runReply(reply: Reply, input: ReplyInput): Promise<void> {
    const sentences = new Channel<string>()
    const speaker = this.speak(reply, sentences)
    const actions: NonNullable<ToolOutcome['action']>[] = []
    const { signal } = reply.ac
    let spokenByLlm = ''
    const pendingCalls: ToolCall[] = []
    try {
      if (input.kind === 'say') {
        sentences.push(input.text)
        this.messages.push({ role: 'assistant', content: input.text })
      } else {
        const tools = this.tools.definitions()
        let fillerSaid = false
        let toolFailed = false
        let spokenAfterTools = ''
        for (let round = 0; round < (this.opts.maxToolRounds ?? 4); round++) {
          const splitter = new SentenceSplitter()
          let text = ''
          const calls: ToolCall[] = []
          const stream = this.llm.chat({ messages: [...this.messages], tools, signal, ...(this.config.temperature !== undefined ? { temperature: this.config.temperature } : {}) })
          for await (const chunk of stream) {
            if (signal.aborted) break
            if (chunk.type === 'text') {
              reply.turn.marks.firstLlmToken ??= performance.now()
              text += chunk.text
              for (const s of splitter.push(chunk.text)) sentences.push(s)
            } else if (chunk.type === 'tool_call') {
              reply.turn.marks.firstLlmToken ??= performance.now()
              calls.push(chunk.call)
            }
          }
          signal.throwIfAborted()
          const rest = splitter.flush()
          if (rest) sentences.push(rest)
          spokenByLlm += text
          if (round > 0) spokenAfterTools += text
          this.messages.push({ role: 'assistant', content: text, ...(calls.length ? { toolCalls: calls } : {}) })
          if (calls.length === 0) break
          pendingCalls.push(...calls)
          let needsModel = false
          for (const call of calls) {
            const http = this.tools.get(call.name)
            // Leadlock speak_during_execution: the caller hears this while the request runs, not dead air.
            const filler = typeof http?.speakDuringExecution === 'string' ? http.speakDuringExecution : http && http.speakDuringExecution !== false ? this.config.toolFillerPhrase : ''
            if (filler && !text.trim() && !fillerSaid) {
              sentences.push(filler)
              fillerSaid = true
            }
            const outcome = await this.tools.execute(call, { callId: this.call.id, ...(this.call.from ? { from: this.call.from } : {}), ...(this.call.to ? { to: this.call.to } : {}), ...(this.config.id ? { agentId: this.config.id } : {}), ...(this.opts.urlPolicy ? { urlPolicy: this.opts.urlPolicy } : {}), signal })
            pendingCalls.splice(pendingCalls.indexOf(call), 1)
            const now = performance.now()
            const entry = this.transcript.add({ role: 'tool', text: `${call.name}(${call.arguments}) → ${outcome.content}`, start: now - outcome.durationMs, end: now, interrupted: false, tool: { name: call.name, ok: outcome.ok, durationMs: Math.round(outcome.durationMs) } })
            this.emit('transcript', entry)
            this.emit('tool_call', { call, outcome })
            this.messages.push({ role: 'tool', toolCallId: call.id, name: call.name, content: outcome.content })
            if (outcome.action) actions.push(outcome.action)
            else needsModel = true
            if (!outcome.ok && !outcome.action) toolFailed = true
            signal.throwIfAborted()
          }
          if (!needsModel) break
        }
        // A failed tool whose model then says nothing would leave the caller in dead air.
        if (toolFailed && !spokenAfterTools.trim()) sentences.push(TOOL_APOLOGY)
      }
      sentences.close()
      await speaker
      signal.throwIfAborted()
      // Spoken in full: from here on the reply is no longer "current", so ending
      // the call below does not mark it as interrupted.
      if (this.current === reply) this.current = undefined
      for (const a of actions) {
        if (a.kind === 'send_dtmf') await this.port.sendDtmf(a.digits)
      }
      const transfer = actions.find((a) => a.kind === 'transfer')
      if (transfer && transfer.kind === 'transfer') {
        await this.port.transfer(transfer.target, transfer.whisper ? { whisper: this.fill(transfer.whisper) } : {})
        void this.end('transfer', false, undefined, transfer.target)
      } else if (actions.some((a) => a.kind === 'end_call')) {
        void this.end('end_call', true)
      }
    } finally {
      sentences.close()
      await speaker.catch(() => {})
      // Keep the chat history valid for the next turn: every tool call needs a result.
      for (const c of pendingCalls) this.messages.push({ role: 'tool', toolCallId: c.id, name: c.name, content: 'ERROR: cancelled by caller interruption' })
      this.agentStoppedSpeaking()
      const played = reply.segments.filter((s) => s.firstFrameAt !== undefined)
      if (played.length > 0) {
        const interrupted = reply.segments.some((s) => s.interrupted) || signal.aborted
        const entry = this.transcript.add({
          role: 'assistant',
          // An interrupted line is stored as far as the caller heard it.
          text: played.map((s) => heardText(s)).filter((t) => t.length > 0).join(' '),
          start: played[0]!.firstFrameAt!,
          end: Math.max(...played.map((s) => s.lastFrameAt ?? s.firstFrameAt!)),
          interrupted,
        })
        this.emit('transcript', entry)
        if (signal.aborted && input.kind === 'llm' && spokenByLlm) {
          // Tell the model what the caller actually heard.
          this.messages.push({ role: 'system', content: `(Your last reply was interrupted after: "${entry.text}")` })
        }
      }
    }
  }

  /**
   * Sentences → TTS → resample → playout. Synthesis of each sentence starts as
   * soon as the sentence exists (adapters start eagerly and buffer), while
   * enqueueing stays in sentence order.
   */
  private async speak(reply: Reply, sentences: Channel<string>): Promise<void> {
    const { signal } = reply.ac
    const streams = new Channel<{ seg: Segment; stream: ReturnType<TtsAdapter['synthesize']> }>()
    const producer = (async () => {
      for await (const text of sentences) {
        if (signal.aborted) break
        const seg = this.playout.createSegment(text)
        reply.segments.push(seg)
        streams.push({ seg, stream: this.tts.synthesize({ text, signal, ...(this.config.voice ? { voice: this.config.voice } : {}), ...(this.config.language ? { language: this.config.language } : {}) }) })
      }
      streams.close()
    })()
    try {
      for await (const { seg, stream } of streams) {
        if (signal.aborted) break
        try {
          for await (const chunk of stream) {
            if (signal.aborted) break
            reply.turn.marks.firstTtsAudio ??= performance.now()
            // The playout resamples when a tick pulls the audio, so what a barge-in drops is never converted.
            this.playout.enqueue(seg, chunk.samples, chunk.sampleRate)
            // Buffered chunks resolve as microtasks: without a macrotask break a
            // fast TTS would hold the event loop and delay the media tick that
            // should send the first reply frame.
            await yieldToEventLoop()
          }
        } catch (err) {
          if (!isAbortError(err) && !signal.aborted) {
            this.log.warn({ callId: this.call.id, err: (err as Error).message }, 'tts failed')
            this.emit('error', err as Error)
          }
        } finally {
          this.playout.complete(seg)
        }
      }
      await producer
      if (!signal.aborted) await Promise.all(reply.segments.map((s) => this.playout.whenDone(s)))
    } finally {
      if (signal.aborted) for (const s of reply.segments) this.playout.abandon(s)
    }
  }

  private agentSpeaking = false

  private agentStoppedSpeaking(): void {
    if (!this.agentSpeaking) return
    this.agentSpeaking = false
    this.emit('speech', { role: 'assistant', status: 'stopped' })
  }

  private onSegmentStart(seg: Segment): void {
    if (!this.agentSpeaking) {
      this.agentSpeaking = true
      this.emit('speech', { role: 'assistant', status: 'started' })
    }
    const r = this.current
    if (r && r.segments.includes(seg)) r.turn.marks.firstReplyFrame ??= seg.firstFrameAt
  }

  // ------------------------------------------------------------------ timers, end

  private timer(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t)
      fn()
    }, ms)
    this.timers.add(t)
    return t
  }

  private clearSilenceTimer(): void {
    if (this.silenceTimer) {
      clearTimeout(this.silenceTimer)
      this.timers.delete(this.silenceTimer)
      this.silenceTimer = undefined
    }
  }

  /** Mutual silence: neither side speaking and nothing being generated. */
  private armSilenceTimer(): void {
    this.clearSilenceTimer()
    if (this.ended || this.config.maxSilenceSeconds <= 0) return
    this.silenceTimer = this.timer(this.config.maxSilenceSeconds * 1000, () => {
      this.silenceTimer = undefined
      if (this.agentBusy() || this.turnTaker.inSpeech || this.userTurn) return this.armSilenceTimer()
      if (!this.silencePrompted) {
        this.silencePrompted = true
        this.startReply({ kind: 'say', text: this.config.silencePrompt, trigger: 'silence-prompt', interruptible: true })
      } else void this.end('max-silence', true)
    })
  }

  private async onMaxDuration(): Promise<void> {
    if (this.ended) return
    if (this.config.maxDurationMessage) {
      this.startReply({ kind: 'say', text: this.config.maxDurationMessage, trigger: 'silence-prompt', interruptible: false })
      await this.current?.done
    }
    await this.end('max-duration', true)
  }

  private async end(reason: AgentEndReason, hangup: boolean, detail?: string, transferTarget?: string): Promise<void> {
    if (this.ended) return
    this.ended = true
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    for (const u of this.unsubs.splice(0)) u()
    const r = this.current
    this.current = undefined
    r?.ac.abort()
    this.playout.clear()
    await this.stt?.close().catch(() => {})
    // Hang up before summarizing: the caller must not sit in silence while the LLM writes prose.
    if (hangup) await this.port.hangup(reason).catch((err: unknown) => this.log.warn({ callId: this.call.id, err: (err as Error).message }, 'hangup failed'))
    let summary: string | undefined
    if (this.config.summary) {
      summary = await this.summarize().catch((err: unknown) => {
        this.log.warn({ callId: this.call.id, err: (err as Error).message }, 'summary failed')
        return undefined
      })
    }
    this.log.info({ callId: this.call.id, reason, detail }, 'agent ended')
    this.result = { reason, transcript: this.transcript.toJSON(), ...(summary ? { summary } : {}), ...(transferTarget ? { transferTarget } : {}), ...(this.amdResult ? { amd: this.amdResult } : {}) }
    this.emit('ended', this.result)
    this.resolveDone(this.result)
  }

  /** Optional call summary by the agent's own LLM, bounded in time. */
  private async summarize(): Promise<string | undefined> {
    const text = this.transcript.text()
    if (!text) return undefined
    const signal = AbortSignal.timeout(this.opts.summaryTimeoutMs ?? 10000)
    let out = ''
    for await (const c of this.llm.chat({
      messages: [
        { role: 'system', content: this.config.summaryPrompt ?? 'Summarize this phone call in two sentences.' },
        { role: 'user', content: text },
      ],
      tools: [],
      signal,
      purpose: 'summary',
    })) {
      if (c.type === 'text') out += c.text
    }
    return out.trim() || undefined
  }
}
