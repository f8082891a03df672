import type { Logger } from 'pino'
import type { OutboundUrlPolicy } from '../config/outbound-url-policy.ts'
import { AgentRuntime, type AgentCallResult, type AgentConfigInput, type ChatMessage } from '../agent/index.ts'
import type { Call } from '../store/calls.ts'
import type { MediaStore } from './plane/media-store.ts'
import type { LiveMedia } from './live-media.ts'
import type { CallActivities } from './call-activities.ts'
import type { AgentControl } from './agent-binder.ts'
import { CallControlError, type AgentTalkRequest, type AgentTalkResult } from './call-control.ts'
import { createAgentOnCall } from './call-agent.ts'

/**
 * A flow's `ai_talk`: a stored agent put on a call that is already up, for
 * as long as the agent has something to do with it. The agent is the one an
 * agent call would get (call-agent.ts: same port, tools, transcript, events),
 * with three differences:
 * - its hangup (end_call, max duration, max silence) does not hang up: it
 *   ends the talk, and the flow goes on;
 * - it does no answering-machine detection (the flow has its `amd` verb);
 * - `resume`: a later talk with the same agent on the same call continues
 *   its chat history instead of starting over (and does not greet again).
 *
 * While it talks the call record's `agentId` names it, as on an agent call.
 * interrupt() (a flow stopped, API actions that interrupt) stops it.
 */

export interface AgentTalksOptions {
  store: MediaStore
  log: Logger
  urlPolicy?: OutboundUrlPolicy | undefined
  /** The call's signalling (an agent's transfer). */
  control: () => AgentControl | null
  /** Starts the call's recording (agents with recording.enabled). */
  startRecording?: ((callId: string) => Promise<void>) | undefined
}

/** The agent's end reasons as a talk's (AgentTalkResult.reason). */
const TALK_REASONS: Partial<Record<AgentCallResult['reason'], AgentTalkResult['reason']>> = {
  end_call: 'end_call', 'max-duration': 'max-duration', 'max-silence': 'max-silence', stopped: 'stopped', 'remote-hangup': 'ended', error: 'error',
}

export class AgentTalks {
  /** Calls whose talk is being set up (before the agent is on live.agent). */
  private readonly starting = new Set<string>()
  /** Per call, per agent: the chat history a `resume` continues. Dropped with the call's media. */
  private readonly histories = new Map<string, Map<string, ChatMessage[]>>()

  constructor(private readonly o: AgentTalksOptions) {}

  async talk(live: LiveMedia, call: Call, req: AgentTalkRequest, activities: CallActivities): Promise<AgentTalkResult> {
    const callId = call.id
    if (live.agent || this.starting.has(callId)) throw new CallControlError('invalid_state', `call ${callId} already has an agent talking on it`)
    if (req.maxDurationMs !== undefined && !(Number.isFinite(req.maxDurationMs) && req.maxDurationMs > 0)) {
      throw new CallControlError('rejected', 'agentTalk: maxDurationMs must be a number of ms > 0')
    }
    this.starting.add(callId)
    try {
      return await this.run(live, call, req, activities)
    } finally {
      this.starting.delete(callId)
    }
  }

  private async run(live: LiveMedia, call: Call, req: AgentTalkRequest, activities: CallActivities): Promise<AgentTalkResult> {
    const callId = call.id
    const rec = await this.o.store.agents.get(call.accountId, req.agentId)
    if (!rec) throw new CallControlError('not_found', `agent ${req.agentId} not found in this account`)
    if (req.resume && rec.type === 'websocket') {
      throw new CallControlError('rejected', `agent ${rec.id} is a websocket agent: its bot keeps its own conversation, so it cannot be resumed (resume is for pipeline agents)`)
    }
    const log = this.o.log.child({ callId, agentId: rec.id, component: 'ai-talk' })
    const history = req.resume ? this.histories.get(callId)?.get(rec.id) : undefined

    let settle!: (r: AgentTalkResult) => void
    const outcome = new Promise<AgentTalkResult>((resolve) => { settle = resolve })
    let over = false
    const finish = (r: AgentTalkResult) => { if (!over) { over = true; settle(r) } }
    /** A transfer in progress: the call's media goes away during it, which is the transfer's doing, not an end. */
    let transferring: string | null = null
    const endListeners = new Set<(reason: string) => void>()
    let stopAgent: () => void = () => {}
    const unregister = activities.add(live, (why) => {
      if (why === 'ended') {
        for (const l of [...endListeners]) l('ended')
        if (!transferring) finish({ reason: 'ended' })
      } else {
        stopAgent()
        finish({ reason: 'stopped' })
      }
    })
    try {
      await this.o.store.calls.attach(callId, { agentId: rec.id }).catch((err: unknown) => log.warn({ err }, 'call record agentId could not be set'))
      const handle = await createAgentOnCall({
        live, record: rec, store: this.o.store, log, urlPolicy: this.o.urlPolicy, startRecording: this.o.startRecording,
        hangup: async (reason) => { finish({ reason: TALK_REASONS[reason as AgentCallResult['reason']] ?? 'end_call' }) },
        transfer: async (target, opts) => {
          const control = this.o.control()
          if (!control) throw new Error('transfers are not available on this node')
          transferring = target
          try {
            await control.transfer(callId, target, opts)
          } catch (err) {
            transferring = null
            if (over || live.session.isClosed) finish({ reason: 'ended' })
            throw err
          }
          finish({ reason: 'transfer', transferTarget: target })
        },
        onEnded: (l) => { endListeners.add(l); return () => { endListeners.delete(l) } },
        adjust: (cfg) => talkConfig(cfg, req),
        history,
        // A call without an agent of its own reports its caller's speech from its leg.
        announceCallerSpeech: false,
        isClosed: () => over || live.session.isClosed,
      })
      if (!handle) return await outcome
      const { agent } = handle
      stopAgent = () => { void agent.stop() }
      void agent.done.then((r) => {
        if (transferring) return
        finish(r.reason === 'transfer' ? { reason: 'transfer', ...(r.transferTarget ? { transferTarget: r.transferTarget } : {}) } : { reason: TALK_REASONS[r.reason] ?? 'end_call' })
      })
      if (over) stopAgent()
      else {
        try {
          await agent.start()
        } catch (err) {
          log.warn({ err: (err as Error).message, type: rec.type }, 'ai_talk: agent could not start')
          finish({ reason: 'error', error: (err as Error).message })
        }
      }
      const result = await outcome
      // Its hangup ended the talk: the runtime finishes its own end (summary) without holding the flow.
      stopAgent()
      if (live.agent === agent) live.agent = null
      live.output.setAgent(null)
      if (agent instanceof AgentRuntime) this.keepHistory(live, rec.id, agent.history())
      log.info({ reason: result.reason }, 'ai_talk ended')
      // What it said is on the record before the flow goes on (an ai_summary right after reads it).
      await handle.flushed()
      return result
    } finally {
      unregister()
    }
  }

  private keepHistory(live: LiveMedia, agentId: string, history: ChatMessage[]): void {
    const callId = live.ctx.callId
    let byAgent = this.histories.get(callId)
    if (!byAgent) {
      if (live.session.isClosed) return
      const created = new Map<string, ChatMessage[]>()
      this.histories.set(callId, (byAgent = created))
      live.onEnd(() => { if (this.histories.get(callId) === created) this.histories.delete(callId) })
    }
    byAgent.set(agentId, history)
  }
}

/**
 * The agent's configuration for a talk: no AMD (the flow has its own), the
 * talk's duration as its max duration when shorter than the agent's own,
 * and the talk's language.
 */
function talkConfig(cfg: AgentConfigInput, req: AgentTalkRequest): AgentConfigInput {
  const out: AgentConfigInput = { ...cfg }
  delete out.amd
  if (req.maxDurationMs !== undefined) {
    const minutes = req.maxDurationMs / 60_000
    out.maxCallDurationMinutes = Math.min(cfg.maxCallDurationMinutes ?? Infinity, minutes)
  }
  if (req.language) out.language = req.language
  return out
}
