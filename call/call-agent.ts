import type { Logger } from 'pino'
import type { OutboundUrlPolicy } from '../config/outbound-url-policy.ts'
import { AgentRuntime, createCallAgent, type AgentConfigInput, type AgentMediaPort, type CallAgent, type ChatMessage } from '../agent/index.ts'
import type { Agent } from '../store/agents.ts'
import type { MediaStore } from './plane/media-store.ts'
import type { LiveMedia } from './live-media.ts'
import { agentConfigFrom } from './agent-config.ts'
import { hostToolsFor } from './outbound/agent-outreach.ts'

/**
 * One stored agent put on a live call's media: the AgentMediaPort over the
 * call's session and OutputArbiter, the agent's tools loaded for the call,
 * and what it reports (transcript lines, turn timings, tool calls, speech,
 * its summary) stored on the call record. Both ways an agent reaches a call
 * use it: an agent call on answer (agent-binder.ts), and a flow's `ai_talk`
 * on a call that is already up (agent-talks.ts). What the agent's own hangup
 * and transfer do is theirs to say.
 */

export interface CallAgentOptions {
  live: LiveMedia
  record: Agent
  store: MediaStore
  log: Logger
  urlPolicy?: OutboundUrlPolicy | undefined
  /** The agent's hangup (end_call, its timers): an agent call hangs up; `ai_talk` reports it to the flow. */
  hangup(reason: string): Promise<void>
  transfer(target: string, opts?: { whisper?: string }): Promise<void>
  /** The call ended from the outside: the agent ends too. */
  onEnded(listener: (reason: string) => void): () => void
  /** Starts the call's recording (agents with `recording.enabled`). */
  startRecording?: ((callId: string) => Promise<void>) | undefined
  /** Changes to the agent's configuration for this call (an `ai_talk`'s duration, language). */
  adjust?: ((cfg: AgentConfigInput) => AgentConfigInput) | undefined
  /** A pipeline agent continues this chat history. */
  history?: readonly ChatMessage[] | undefined
  /**
   * Whether the agent's caller-speech events are announced: not when the leg
   * already reports the caller's speech itself (a call without an agent of
   * its own watches it from answer).
   */
  announceCallerSpeech: boolean
  /** The leg is closing: loading the tools took too long, nothing starts. */
  isClosed(): boolean
}

export interface CallAgentHandle {
  agent: CallAgent
  /** Everything the agent reported so far is stored (its transcript lines, in order). */
  flushed(): Promise<void>
  /** The agent's end is stored: its summary (or known absent). */
  settled: Promise<void>
}

/**
 * Creates the agent on the call (not started: `agent.start()` is the
 * caller's, with its own answer to an agent that cannot start). Null when
 * the call ended meanwhile.
 */
export async function createAgentOnCall(o: CallAgentOptions): Promise<CallAgentHandle | null> {
  const { live, record: rec, store, log } = o
  const { ctx, session } = live
  const port: AgentMediaPort = {
    get sampleRate() { return session.codecSampleRate() },
    onFrame: (l) => { session.on('frame', l); return () => session.off('frame', l) },
    onDtmf: (l) => { const h = (e: { digit: string }) => l(e.digit); session.on('dtmf', h); return () => session.off('dtmf', h) },
    onEnded: (l) => o.onEnded(l),
    // The agent's Playout never ends; behind the OutputArbiter it yields to API prompts and MOH.
    play: (source) => { live.output.setAgent(source) },
    flush: () => session.flush(),
    sendDtmf: async (digits) => { session.sendDtmf(digits) },
    hangup: (reason) => o.hangup(reason),
    transfer: (target, opts) => o.transfer(target, opts),
  }
  if (rec.recording?.enabled && o.startRecording) {
    // Before the agent speaks, so the disclosure is on the recording too.
    await o.startRecording(ctx.callId).catch((err: unknown) => log.warn({ err }, 'agent recording could not start'))
  }
  // The agent's HTTP tools are loaded per call, so an edited or disabled tool applies to the next call.
  const tools = rec.tools?.length ? await store.tools.forCall(ctx.accountId, rec.tools) : []
  if (o.isClosed()) return null
  const base = agentConfigFrom(rec, tools, ctx)
  const config = o.adjust ? o.adjust(base) : base
  // The built-ins the agent opted into that the engine carries out (do-not-call, callbacks, bookings).
  const hostTools = hostToolsFor(rec.builtinTools, { accountId: ctx.accountId, callId: ctx.callId, agentId: rec.id, from: ctx.from, to: ctx.to, direction: ctx.direction }, store.outreach)
  const agent = createCallAgent({
    config, port, call: { id: ctx.callId, from: ctx.from, to: ctx.to, direction: ctx.direction }, log, ...(hostTools ? { hostTools } : {}),
    ...(o.urlPolicy ? { urlPolicy: o.urlPolicy } : {}), ...(o.history ? { history: o.history } : {}),
  })
  live.agent = agent
  const calls = store.calls
  // One after another, so the record keeps the agent's order and `flushed()` means all of them.
  let writes: Promise<unknown> = Promise.resolve()
  const write = (fn: () => Promise<unknown>) => { writes = writes.then(fn).catch(() => {}) }
  const announce = (type: 'call.tool_call' | 'call.speech_update', data: Record<string, unknown>) => {
    void calls.emit(ctx.callId, type, data).catch((err: unknown) => log.warn({ err, type }, 'call event could not be stored'))
  }
  let settled: Promise<void> = Promise.resolve()
  if (agent instanceof AgentRuntime) {
    agent.on('transcript', (e) => write(() => calls.appendTranscript(ctx.callId, e as never)))
    agent.on('turn', (tm) => { void calls.addTiming(ctx.callId, tm as never).catch(() => {}) })
    agent.on('tool_call', ({ call, outcome }) => {
      let args: unknown = call.arguments
      try { args = JSON.parse(call.arguments) } catch { /* the model's text as it was */ }
      announce('call.tool_call', {
        toolCallId: call.id, name: call.name, arguments: args, ok: outcome.ok,
        ...(outcome.ok ? { result: outcome.content } : { error: outcome.content }),
        ...(outcome.status !== undefined ? { status: outcome.status } : {}),
        durationMs: Math.round(outcome.durationMs),
      })
    })
    agent.on('speech', (e) => { if (e.role === 'assistant' || o.announceCallerSpeech) announce('call.speech_update', { role: e.role, status: e.status }) })
    settled = agent.done.then(async (r) => {
      if (r.summary) await calls.setSummary(ctx.callId, r.summary).catch((err: unknown) => log.warn({ err }, 'summary could not be stored'))
    })
  }
  return { agent, settled, flushed: () => writes.then(() => {}) }
}
