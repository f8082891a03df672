/**
 * The voice-agent runtime for one call (LiveKit agents-js `agent_activity.ts`
 * is the model): it wires the parts and owns the call's lifecycle.
 *
 *   frames, DTMF ──▶ turn-input.ts (VAD, turn-taker, barge-in, STT loop)
 *                        │ committed turns, digits; barge-in cancels
 *                        ▼
 *                    reply-generator.ts (chat history, LLM, tools, TTS) ──▶ playout.ts ──▶ port
 *   outbound with AMD: frames go to amd-phase.ts first
 *
 * What stays here: start (STT, greeting or AMD), the greeting and disclosure,
 * the mutual-silence and max-duration timers, and the end (hangup, summary,
 * result).
 */
import type { OutboundUrlPolicy } from '../config/outbound-url-policy.ts'
import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import type { AudioFrame } from '../audio/frame.ts'
import { silentLogger, type AgentCallResult, type AgentEndReason, type AgentEvents, type AgentLogger, type CallInfo } from './agent-events.ts'
import { AmdPhase } from './amd-phase.ts'
import { CallTimers } from './call-timers.ts'
import type { AgentConfig } from './config.ts'
import type { AgentMediaPort, Unsubscribe } from './media-port.ts'
import { Playout } from './playout.ts'
import { ReplyGenerator } from './reply-generator.ts'
import { summarizeCall } from './summary.ts'
import { substituteVariables } from './template-variables.ts'
import { ToolBox } from './tools.ts'
import { Transcript } from './transcript.ts'
import { TurnInput } from './turn-input.ts'
import { createVad } from './vad/choice.ts'
import type { Vad } from './vad/vad.ts'
import type { ChatMessage, LlmAdapter } from './adapters/llm/contract.ts'
import type { SttAdapter } from './adapters/stt/contract.ts'
import type { TtsAdapter } from './adapters/tts/contract.ts'


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
  /**
   * Continue an earlier conversation on the same call (`history()` of the
   * runtime that had it): the chat starts from it and nothing is said
   * first (no disclosure, no greeting): the caller goes on where they left off.
   */
  history?: readonly ChatMessage[]
}

export class AgentRuntime extends EventEmitter<AgentEvents> {
  readonly config: AgentConfig
  readonly transcript: Transcript
  readonly playout: Playout
  private readonly port: AgentMediaPort
  private readonly llm: LlmAdapter
  private readonly log: AgentLogger
  private readonly call: CallInfo
  private readonly opts: AgentRuntimeOptions
  private readonly timers = new CallTimers()
  private readonly input: TurnInput
  private readonly reply: ReplyGenerator
  private unsubs: Unsubscribe[] = []
  private silenceTimer: NodeJS.Timeout | undefined
  private silencePrompted = false
  /** Outbound AMD: frames go to the detector (then the message cue), not to the conversation. */
  private amd: AmdPhase | undefined
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
    this.llm = opts.llm
    this.log = opts.log ?? silentLogger
    this.call = opts.call ?? { id: 'call' }
    this.transcript = new Transcript(performance.now())
    this.playout = new Playout(opts.port.sampleRate, {
      onSegmentStart: (seg) => this.reply.onSegmentStart(seg),
      onSegmentEnd: () => this.armSilenceTimer(),
    })
    this.reply = new ReplyGenerator({
      config: this.config,
      port: this.port,
      playout: this.playout,
      transcript: this.transcript,
      llm: opts.llm,
      tts: opts.tts,
      tools: opts.tools ?? new ToolBox(opts.config.tools, opts.config.toolsEnabled, opts.config.transferTargets),
      call: this.call,
      log: this.log,
      events: this,
      urlPolicy: opts.urlPolicy,
      maxToolRounds: opts.maxToolRounds,
      hooks: {
        isEnded: () => this.ended,
        end: (reason, hangup, detail, transferTarget) => this.end(reason, hangup, detail, transferTarget),
        replyStarted: () => this.clearSilenceTimer(),
        replyFinished: () => this.armSilenceTimer(),
        fill: (text) => this.fill(text),
      },
    })
    this.input = new TurnInput({
      config: this.config,
      port: this.port,
      playout: this.playout,
      transcript: this.transcript,
      stt: opts.stt,
      vad: opts.vad ?? createVad(opts.config),
      timers: this.timers,
      events: this,
      log: this.log,
      callId: this.call.id,
      finalTimeoutMs: opts.finalTimeoutMs,
      lateFinalGraceMs: opts.lateFinalGraceMs,
      dtmfInterDigitMs: opts.dtmfInterDigitMs,
      hooks: {
        agentBusy: () => this.reply.busy(),
        canInterrupt: () => this.reply.canInterrupt(),
        cancelReply: () => this.reply.cancel(),
        callerActive: (speech) => {
          this.silencePrompted = false
          if (speech) this.clearSilenceTimer()
        },
        armSilenceTimer: () => this.armSilenceTimer(),
        userTurn: (text, marks) => this.reply.respondTo(text, marks),
        dtmf: (digits, at) => this.reply.respondToDtmf(digits, at),
      },
    })
    this.done = new Promise((resolve) => (this.resolveDone = resolve))
    // Listeners may be absent; an unhandled 'error' event must not crash the media worker.
    this.on('error', () => {})
  }

  // ------------------------------------------------------------------ lifecycle

  async start(): Promise<void> {
    await this.input.open([...this.config.expectedPhrases, ...(this.llm.expectedPhrases?.() ?? [])])
    this.port.play(this.playout)
    this.unsubs.push(
      this.port.onFrame((f) => this.onFrame(f)),
      this.port.onDtmf((d) => {
        if (!this.ended) this.input.onDtmf(d)
      }),
      this.port.onEnded((reason) => void this.end('remote-hangup', false, reason)),
    )
    this.reply.begin(this.fill(this.config.systemPrompt), this.opts.history)
    if (this.config.maxCallDurationMinutes > 0) {
      this.timers.set(this.config.maxCallDurationMinutes * 60000, () => void this.onMaxDuration())
    }
    if (this.config.amd && this.call.direction === 'outbound') {
      this.amd = new AmdPhase({
        policy: this.config.amd,
        defaultMessage: this.config.greetingOutbound ?? this.config.greeting ?? '',
        transcript: this.transcript,
        events: this,
        log: this.log,
        callId: this.call.id,
      })
      return
    }
    this.beginConversation()
  }

  /** Stop from the outside (API hangup, shutdown). Does not hang up the port. */
  async stop(): Promise<AgentCallResult> {
    await this.end('stopped', false)
    return this.done
  }

  /** The chat history so far (system prompt first), to resume this conversation later on the same call. */
  history(): ChatMessage[] {
    return this.reply.history()
  }

  /** `{{name}}` variables of this call (agent/template-variables.ts). */
  private fill(text: string): string {
    return this.config.variables ? substituteVariables(text, this.config.variables) : text
  }

  /**
   * What the agent says first: the disclosure (if any) first and in full,
   * then the greeting; on an outbound call `greetingOutbound` and
   * `aiSpeaksFirstOutbound` when set.
   */
  private beginConversation(): void {
    // A resumed conversation: the caller has heard the greeting already.
    if (this.opts.history?.length) return this.armSilenceTimer()
    const outbound = this.call.direction === 'outbound'
    const speaksFirst = outbound ? (this.config.aiSpeaksFirstOutbound ?? this.config.aiSpeaksFirst) : this.config.aiSpeaksFirst
    const greeting = outbound ? (this.config.greetingOutbound ?? this.config.greeting) : this.config.greeting
    const greet = (): void => {
      if (this.ended) return
      if (speaksFirst && greeting) this.reply.say(this.fill(greeting), 'greeting', this.config.greetingInterruptible)
      else this.armSilenceTimer()
    }
    if (!this.config.disclosure) return greet()
    const disclosure = this.reply.say(this.fill(this.config.disclosure), 'greeting', false)
    void disclosure?.done?.then(() => {
      // Something else (a DTMF reply, the caller's turn) took over: no greeting on top of it.
      if (this.reply.current === undefined || this.reply.current === disclosure) greet()
    })
  }

  private onFrame(frame: AudioFrame): void {
    if (this.ended) return
    this.input.measureClock(frame)
    if (this.amd?.active) return this.onAmdFrame(this.amd, frame)
    this.input.onFrame(frame)
  }

  private onAmdFrame(amd: AmdPhase, frame: AudioFrame): void {
    const step = amd.process(frame)
    if (step?.kind === 'converse') this.beginConversation()
    else if (step?.kind === 'hangup') void this.end('machine-detected', true)
    else if (step?.kind === 'leave_message') void this.leaveMessage(this.fill(step.text))
  }

  private async leaveMessage(text: string): Promise<void> {
    if (text) await this.reply.say(text, 'voicemail', false)?.done
    await this.end('voicemail-left', true)
  }

  // ------------------------------------------------------------------ timers, end

  private clearSilenceTimer(): void {
    this.timers.clear(this.silenceTimer)
    this.silenceTimer = undefined
  }

  /** Mutual silence: neither side speaking and nothing being generated. */
  private armSilenceTimer(): void {
    this.clearSilenceTimer()
    if (this.ended || this.config.maxSilenceSeconds <= 0) return
    this.silenceTimer = this.timers.set(this.config.maxSilenceSeconds * 1000, () => {
      this.silenceTimer = undefined
      if (this.reply.busy() || this.input.callerActive) return this.armSilenceTimer()
      if (!this.silencePrompted) {
        this.silencePrompted = true
        this.reply.say(this.config.silencePrompt, 'silence-prompt', true)
      } else void this.end('max-silence', true)
    })
  }

  private async onMaxDuration(): Promise<void> {
    if (this.ended) return
    if (this.config.maxDurationMessage) await this.reply.say(this.config.maxDurationMessage, 'silence-prompt', false)?.done
    await this.end('max-duration', true)
  }

  private async end(reason: AgentEndReason, hangup: boolean, detail?: string, transferTarget?: string): Promise<void> {
    if (this.ended) return
    this.ended = true
    this.input.stop()
    this.timers.clearAll()
    for (const u of this.unsubs.splice(0)) u()
    this.reply.abort()
    this.playout.clear()
    await this.input.close()
    // Hang up before summarizing: the caller must not sit in silence while the LLM writes prose.
    if (hangup) await this.port.hangup(reason).catch((err: unknown) => this.log.warn({ callId: this.call.id, err: (err as Error).message }, 'hangup failed'))
    let summary: string | undefined
    if (this.config.summary) {
      summary = await summarizeCall(this.llm, this.transcript.text(), this.config.summaryPrompt, this.opts.summaryTimeoutMs ?? 10000).catch((err: unknown) => {
        this.log.warn({ callId: this.call.id, err: (err as Error).message }, 'summary failed')
        return undefined
      })
    }
    this.log.info({ callId: this.call.id, reason, detail }, 'agent ended')
    const amd = this.amd?.result
    this.result = { reason, transcript: this.transcript.toJSON(), ...(summary ? { summary } : {}), ...(transferTarget ? { transferTarget } : {}), ...(amd ? { amd } : {}) }
    this.emit('ended', this.result)
    this.resolveDone(this.result)
  }
}
