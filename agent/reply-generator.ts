/**
 * Reply generation for one call (LiveKit agents-js `generation.ts` is the
 * model): the chat history, one reply at a time through LLM → tools → speech,
 * sentences → TTS → playout, and what the caller heard of it in the
 * transcript. Everything here is async and cancellable through one
 * AbortController per reply; barge-in (turn-input.ts) cancels it.
 */
import { performance } from 'node:perf_hooks'
import type { AgentConfig } from './config.ts'
import type { AgentEndReason, AgentEvents, AgentLogger, CallInfo } from './agent-events.ts'
import type { EventEmitter } from 'node:events'
import type { AgentMediaPort } from './media-port.ts'
import { heardText, type Playout, type Segment } from './playout.ts'
import { SentenceSplitter } from './sentences.ts'
import type { ToolBox, ToolOutcome } from './tools.ts'
import type { Transcript, TurnMarks, TurnTiming } from './transcript.ts'
import { Channel } from './channel.ts'
import { agentMetricSinks } from './metrics.ts'
import type { OutboundUrlPolicy } from '../config/outbound-url-policy.ts'
import { isAbortError } from './adapters/adapter-error.ts'
import type { ChatMessage, LlmAdapter, ToolCall } from './adapters/llm/contract.ts'
import type { TtsAdapter } from './adapters/tts/contract.ts'

/** Said when a tool failed (error, timeout, refused URL) and the model had nothing to say about it. */
export const TOOL_APOLOGY = "Sorry, I couldn't get that information right now."

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** One reply in flight: its cancellation, its turn record and the segments it queued. */
export interface Reply {
  ac: AbortController
  turn: ReturnType<Transcript['beginTurn']>
  segments: Segment[]
  interruptible: boolean
  done?: Promise<void>
}

/** A reply from the model (to a caller's turn, DTMF) or a fixed line (greeting, prompts, voicemail). */
export type ReplyInput = { kind: 'llm'; trigger: TurnTiming['trigger']; marks: TurnMarks } | { kind: 'say'; text: string; trigger: TurnTiming['trigger']; interruptible: boolean }

/** A reply's generation so far, kept for the cleanup when it is cancelled midway. */
interface Progress {
  /** What the tools asked for (transfer, hang up, DTMF), done once the reply is spoken. */
  actions: NonNullable<ToolOutcome['action']>[]
  /** Tool calls the model made that have no result yet. */
  pendingCalls: ToolCall[]
  /** Text of the model's completed rounds. */
  spokenByLlm: string
}

/** What the generator needs from the runtime that owns the call. */
export interface ReplyHooks {
  isEnded(): boolean
  /** A tool asked to end or transfer the call (the runtime's end). */
  end(reason: AgentEndReason, hangup: boolean, detail?: string, transferTarget?: string): Promise<void>
  /** A reply starts: the mutual-silence timer stops. */
  replyStarted(): void
  /** A reply finished (spoken, cancelled or failed): the mutual-silence timer restarts. */
  replyFinished(): void
  /** `{{name}}` variables of this call. */
  fill(text: string): string
}

export interface ReplyGeneratorOptions {
  config: AgentConfig
  port: AgentMediaPort
  playout: Playout
  transcript: Transcript
  llm: LlmAdapter
  tts: TtsAdapter
  tools: ToolBox
  call: CallInfo
  log: AgentLogger
  events: EventEmitter<AgentEvents>
  hooks: ReplyHooks
  urlPolicy?: OutboundUrlPolicy | undefined
  maxToolRounds?: number | undefined
}

export class ReplyGenerator {
  private readonly o: ReplyGeneratorOptions
  private readonly config: AgentConfig
  private readonly playout: Playout
  private readonly events: EventEmitter<AgentEvents>
  private readonly messages: ChatMessage[] = []
  private reply: Reply | undefined
  private agentSpeaking = false

  constructor(o: ReplyGeneratorOptions) {
    this.o = o
    this.config = o.config
    this.playout = o.playout
    this.events = o.events
  }

  /** The reply being generated or spoken, if any. */
  get current(): Reply | undefined {
    return this.reply
  }

  /**
   * The system prompt opens the chat history; a conversation resumed on the
   * same call (a flow's second `ai_talk` with `resume`) starts from the
   * history it had instead, system prompt included.
   */
  begin(systemPrompt: string, history?: readonly ChatMessage[]): void {
    if (history?.length) this.messages.push(...history.map((m) => ({ ...m })))
    else this.messages.push({ role: 'system', content: systemPrompt })
  }

  /** A copy of the chat history so far (what a resumed conversation starts from). */
  history(): ChatMessage[] {
    return this.messages.map((m) => ({ ...m }))
  }

  /** A reply is being generated or its audio is still queued. */
  busy(): boolean {
    return this.reply !== undefined || this.playout.hasAudio
  }

  canInterrupt(): boolean {
    if (!this.config.bargeIn.enabled) return false
    return this.reply?.interruptible ?? true
  }

  /** Barge-in (or DTMF): the current reply is cut off and its queued audio dropped. */
  cancel(): void {
    const r = this.reply
    this.reply = undefined
    if (r) {
      r.turn.interrupted = true
      r.ac.abort()
    }
    this.playout.clear()
  }

  /** The call ended: abort the reply in flight without marking it interrupted. */
  abort(): void {
    const r = this.reply
    this.reply = undefined
    r?.ac.abort()
  }

  /** A fixed line: the greeting, a prompt, the voicemail message. */
  say(text: string, trigger: TurnTiming['trigger'], interruptible: boolean): Reply | undefined {
    return this.start({ kind: 'say', text, trigger, interruptible })
  }

  /** The caller's committed turn: into the chat history, then the model answers. */
  respondTo(text: string, marks: TurnMarks): void {
    this.messages.push({ role: 'user', content: text })
    const input: ReplyInput = { kind: 'llm', trigger: 'speech', marks }
    const speaking = this.reply
    if (speaking && !this.canInterrupt()) {
      // Barge-in is off (or the line may not be interrupted): the caller was heard, and is
      // answered once the agent has finished its line, which a new reply would otherwise cut off.
      void speaking.done?.then(() => { if (!this.o.hooks.isEnded() && !this.reply) this.start(input) })
      return
    }
    this.start(input)
  }

  /** Digits the caller keyed, gathered over the inter-digit window. */
  respondToDtmf(digits: string, at: number): void {
    this.messages.push({ role: 'user', content: `DTMF: ${digits}` })
    this.start({ kind: 'llm', trigger: 'dtmf', marks: { endOfSpeech: at, finalTranscript: at } })
  }

  private start(input: ReplyInput): Reply | undefined {
    if (this.o.hooks.isEnded()) return undefined
    if (this.reply) this.cancel()
    this.o.hooks.replyStarted()
    const reply: Reply = {
      ac: new AbortController(),
      turn: this.o.transcript.beginTurn(input.trigger, input.kind === 'llm' ? input.marks : {}),
      segments: [],
      interruptible: input.kind === 'say' ? input.interruptible : true,
    }
    this.reply = reply
    reply.done = this.run(reply, input)
      .catch((err: unknown) => {
        if (!isAbortError(err) && !reply.ac.signal.aborted) {
          this.o.log.error({ callId: this.o.call.id, err: (err as Error).message }, 'reply failed')
          this.events.emit('error', err as Error)
        }
      })
      .finally(() => {
        if (this.reply === reply) this.reply = undefined
        const timing = this.o.transcript.timings()[reply.turn.turn - 1]!
        for (const m of agentMetricSinks()) m.observeTurn(timing)
        this.events.emit('turn', timing)
        this.o.hooks.replyFinished()
      })
    return reply
  }

  private async run(reply: Reply, input: ReplyInput): Promise<void> {
    const sentences = new Channel<string>()
    const speaker = this.speak(reply, sentences)
    const progress: Progress = { actions: [], pendingCalls: [], spokenByLlm: '' }
    const { signal } = reply.ac
    try {
      if (input.kind === 'say') {
        sentences.push(input.text)
        this.messages.push({ role: 'assistant', content: input.text })
      } else {
        await this.generate(reply, sentences, progress)
      }
      sentences.close()
      await speaker
      signal.throwIfAborted()
      // Spoken in full: from here on the reply is no longer "current", so ending
      // the call below does not mark it as interrupted.
      if (this.reply === reply) this.reply = undefined
      await this.perform(progress.actions)
    } finally {
      sentences.close()
      await speaker.catch(() => {})
      // Keep the chat history valid for the next turn: every tool call needs a result.
      for (const c of progress.pendingCalls) this.messages.push({ role: 'tool', toolCallId: c.id, name: c.name, content: 'ERROR: cancelled by caller interruption' })
      this.agentStoppedSpeaking()
      this.recordHeard(reply, input.kind === 'llm' && progress.spokenByLlm.length > 0)
    }
  }

  /**
   * LLM rounds with tools: text streams sentence by sentence into `sentences`
   * while the model writes; tool calls run between rounds (with a filler line
   * so the caller does not sit in dead air). `progress` is kept up to date
   * as it goes, so a cancelled reply still knows what it had said and which
   * tool calls are left without a result.
   */
  private async generate(reply: Reply, sentences: Channel<string>, progress: Progress): Promise<void> {
    const { signal } = reply.ac
    const { actions, pendingCalls } = progress
    const tools = this.o.tools.definitions()
    let fillerSaid = false
    let toolFailed = false
    let spokenAfterTools = ''
    for (let round = 0; round < (this.o.maxToolRounds ?? 4); round++) {
      const splitter = new SentenceSplitter()
      let text = ''
      const calls: ToolCall[] = []
      const stream = this.o.llm.chat({ messages: [...this.messages], tools, signal, ...(this.config.temperature !== undefined ? { temperature: this.config.temperature } : {}) })
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
      progress.spokenByLlm += text
      if (round > 0) spokenAfterTools += text
      this.messages.push({ role: 'assistant', content: text, ...(calls.length ? { toolCalls: calls } : {}) })
      if (calls.length === 0) break
      pendingCalls.push(...calls)
      let needsModel = false
      for (const call of calls) {
        const http = this.o.tools.get(call.name)
        // Leadlock speak_during_execution: the caller hears this while the request runs, not dead air.
        const filler = typeof http?.speakDuringExecution === 'string' ? http.speakDuringExecution : http && http.speakDuringExecution !== false ? this.config.toolFillerPhrase : ''
        if (filler && !text.trim() && !fillerSaid) {
          sentences.push(filler)
          fillerSaid = true
        }
        const info = this.o.call
        const urlPolicy = this.o.urlPolicy
        const outcome = await this.o.tools.execute(call, { callId: info.id, ...(info.from ? { from: info.from } : {}), ...(info.to ? { to: info.to } : {}), ...(this.config.id ? { agentId: this.config.id } : {}), ...(urlPolicy ? { urlPolicy } : {}), signal })
        pendingCalls.splice(pendingCalls.indexOf(call), 1)
        const now = performance.now()
        const entry = this.o.transcript.add({ role: 'tool', text: `${call.name}(${call.arguments}) → ${outcome.content}`, start: now - outcome.durationMs, end: now, interrupted: false, tool: { name: call.name, ok: outcome.ok, durationMs: Math.round(outcome.durationMs) } })
        this.events.emit('transcript', entry)
        this.events.emit('tool_call', { call, outcome })
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

  /** What the tools asked for once the reply was spoken in full: DTMF, then a transfer or the hangup. */
  private async perform(actions: NonNullable<ToolOutcome['action']>[]): Promise<void> {
    for (const a of actions) {
      if (a.kind === 'send_dtmf') await this.o.port.sendDtmf(a.digits)
    }
    const transfer = actions.find((a) => a.kind === 'transfer')
    if (transfer && transfer.kind === 'transfer') {
      await this.o.port.transfer(transfer.target, transfer.whisper ? { whisper: this.o.hooks.fill(transfer.whisper) } : {})
      void this.o.hooks.end('transfer', false, undefined, transfer.target)
    } else if (actions.some((a) => a.kind === 'end_call')) {
      void this.o.hooks.end('end_call', true)
    }
  }

  /** The reply's line in the transcript, as far as the caller heard it. */
  private recordHeard(reply: Reply, fromModel: boolean): void {
    const { signal } = reply.ac
    const played = reply.segments.filter((s) => s.firstFrameAt !== undefined)
    if (played.length === 0) return
    const interrupted = reply.segments.some((s) => s.interrupted) || signal.aborted
    const entry = this.o.transcript.add({
      role: 'assistant',
      // An interrupted line is stored as far as the caller heard it.
      text: played.map((s) => heardText(s)).filter((t) => t.length > 0).join(' '),
      start: played[0]!.firstFrameAt!,
      end: Math.max(...played.map((s) => s.lastFrameAt ?? s.firstFrameAt!)),
      interrupted,
    })
    this.events.emit('transcript', entry)
    if (signal.aborted && fromModel) {
      // Tell the model what the caller actually heard.
      this.messages.push({ role: 'system', content: `(Your last reply was interrupted after: "${entry.text}")` })
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
        streams.push({ seg, stream: this.o.tts.synthesize({ text, signal, ...(this.config.voice ? { voice: this.config.voice } : {}), ...(this.config.language ? { language: this.config.language } : {}) }) })
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
            this.o.log.warn({ callId: this.o.call.id, err: (err as Error).message }, 'tts failed')
            this.events.emit('error', err as Error)
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

  private agentStoppedSpeaking(): void {
    if (!this.agentSpeaking) return
    this.agentSpeaking = false
    this.events.emit('speech', { role: 'assistant', status: 'stopped' })
  }

  /** Playout callback: the first frame of a segment went out. */
  onSegmentStart(seg: Segment): void {
    if (!this.agentSpeaking) {
      this.agentSpeaking = true
      this.events.emit('speech', { role: 'assistant', status: 'started' })
    }
    const r = this.reply
    if (r && r.segments.includes(seg)) r.turn.marks.firstReplyFrame ??= seg.firstFrameAt
  }
}
