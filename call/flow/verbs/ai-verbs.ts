import { Type } from '@sinclair/typebox'
import { summarizeTranscript } from '../../../agent/index.ts'
import type { TranscriptEntry } from '../../../store/calls.ts'
import { agentConfigFrom } from '../../agent-config.ts'
import { defineVerb, untilAborted, type VerbContext } from '../verb.ts'
import { FlowAppError } from '../webhook-app.ts'

/**
 * The verbs that bring in AI: `ai_talk` (an agent talks with the caller,
 * then the flow goes on), `ai_summary` (the call so far in a few
 * sentences), `amd` (answering-machine detection).
 */

const AgentId = Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description: 'An agent of this account (/v1/agents)' })

export const aiTalk = defineVerb({
  type: 'ai_talk',
  summary: 'Hand the call to an AI agent (/v1/agents) until it ends (its end_call/goodbye, duration, silence); then the flow goes on, '
    + 'with ${callplane.ai_talk.reason}. A transfer by the agent hands the call to its target: the flow waits for the call\'s end',
  option: Type.Object({
    agent_id: Type.Optional(AgentId),
    ai_id: Type.Optional({ ...AgentId, description: 'VoipBin\'s name for agent_id' }),
    duration: Type.Optional(Type.Integer({ minimum: 1, maximum: 14_400, description: 'Seconds; the agent\'s part ends after this long (after its maxDurationMessage, if it has one) and the flow goes on' })),
    resume: Type.Optional(Type.Boolean({ default: false, description: 'Continue this agent\'s earlier conversation on this call (its chat history; no second greeting) instead of starting over. Pipeline agents only: a websocket agent fails the flow' })),
    language: Type.Optional(Type.String({ minLength: 2, maxLength: 35, description: 'BCP 47; overrides the agent\'s language (its STT and TTS) for this talk' })),
  }, { additionalProperties: false }),
  check: (o) => ((o.agent_id === undefined) === (o.ai_id === undefined) ? ['agent_id: give agent_id (or VoipBin\'s ai_id), one of them'] : []),
  run: async (ctx, o) => {
    const agentId = (o.agent_id ?? o.ai_id)!
    if (!(await ctx.services.store.agents.get(ctx.call.accountId, agentId))) throw new FlowAppError(`ai_talk: agent ${agentId} does not exist in this account`)
    ctx.vars.set('callplane.ai_talk.agent_id', agentId)
    ctx.vars.set('callplane.aicall.ai_id', agentId)
    if (o.language) ctx.vars.set('callplane.aicall.language', o.language)
    const r = await ctx.need('agentTalk')(ctx.call, {
      agentId, ...(o.duration ? { maxDurationMs: o.duration * 1000 } : {}), ...(o.resume ? { resume: true } : {}), ...(o.language ? { language: o.language } : {}),
    })
    ctx.vars.set('callplane.ai_talk.reason', r.reason)
    ctx.vars.set('callplane.ai_talk.transfer_target', r.transferTarget ?? '')
    if (r.reason === 'error') ctx.log.warn({ agentId, error: r.error }, 'ai_talk: the agent failed; the flow goes on')
    if (r.reason === 'transfer') {
      // The caller now talks to the transfer target and this call's media is gone:
      // going on (or ending the flow, which hangs up) would cut the transfer off.
      await untilAborted(ctx.signal)
      return { outcome: 'transferred' }
    }
    return { outcome: r.reason }
  },
})

/** The call's transcript as the summary reads it: the caller's lines and what the call said to it (the agent's, the flow's prompts). */
function conversationText(entries: readonly TranscriptEntry[]): string {
  return entries
    .filter((e) => e.text.trim() && (e.role === 'user' || e.role === 'assistant' || (e.role === 'system' && (e.source === 'prompt' || e.source === 'api-say'))))
    .map((e) => `${e.role === 'user' ? 'Caller' : 'Agent'}: ${e.text.trim()}${e.interrupted ? ' [interrupted]' : ''}`)
    .join('\n')
}

export const aiSummary = defineVerb({
  type: 'ai_summary',
  summary: 'Summarise the call so far (an agent\'s LLM and summary prompt) into ${callplane.ai_summary.content} and the call\'s summary (call.summary)',
  option: Type.Object({
    agent_id: Type.Optional({ ...AgentId, description: 'Whose LLM and summary.prompt write it; default: the agent that last talked on the call, else the offline model' }),
  }, { additionalProperties: false }),
  run: async (ctx: VerbContext, o) => {
    const call = await ctx.refresh()
    const agentId = o.agent_id ?? call.agentId
    const rec = agentId ? await ctx.services.store.agents.get(call.accountId, agentId) : null
    if (o.agent_id && !rec) throw new FlowAppError(`ai_summary: agent ${o.agent_id} does not exist in this account`)
    ctx.vars.set('callplane.ai_summary.reference_type', 'call')
    ctx.vars.set('callplane.ai_summary.reference_id', call.id)
    const text = conversationText(call.transcript)
    let summary: string | undefined
    if (text) {
      try {
        summary = await summarizeTranscript(rec ? agentConfigFrom(rec) : { name: 'ai-summary' }, text)
      } catch (err) {
        ctx.log.warn({ err: (err as Error).message }, 'ai_summary: the summary could not be written')
        ctx.vars.set('callplane.ai_summary.content', '')
        return { outcome: 'failed' }
      }
    }
    ctx.vars.set('callplane.ai_summary.content', summary ?? '')
    if (!summary) return { outcome: 'empty' }
    await ctx.services.store.calls.setSummary(call.id, summary)
    return { outcome: 'summarized' }
  },
})

export const amd = defineVerb({
  type: 'amd',
  summary: 'Answering-machine detection on the call\'s audio: ${callplane.amd.result} is human, machine or unknown (${callplane.amd.cause} says why); '
    + 'a machine with machine_handle hangup is hung up (endedReason machine-detected)',
  option: Type.Object({
    machine_handle: Type.Optional(Type.Union([Type.Literal('hangup'), Type.Literal('continue')], { default: 'continue', description: 'What a machine gets: hung up, or the flow goes on' })),
    async: Type.Optional(Type.Boolean({ default: false, description: 'Detect in the background: the flow goes on at once; the variables are set (and a machine hung up) when the verdict comes' })),
    wait_for_beep: Type.Optional(Type.Boolean({ default: false, description: 'On a machine (machine_handle continue): the verb ends only once its greeting is over (the beep, or silence after it), so what the flow says next is recorded: a voicemail drop. ${callplane.amd.cue} says which (beep, silence, timeout)' })),
  }, { additionalProperties: false }),
  check: (o) => (o.wait_for_beep && o.machine_handle === 'hangup' ? ['wait_for_beep: only with machine_handle continue (a machine hung up leaves no message)'] : []),
  run: async (ctx, o) => {
    const detect = ctx.need('detectMachine')
    const hangup = o.machine_handle === 'hangup' ? ctx.need('hangup') : null
    ctx.vars.set('callplane.amd.result', '')
    const verdict = detect(ctx.call, o.wait_for_beep ? { waitForBeep: true } : undefined).then(async (r) => {
      if (r.result === 'stopped' || r.result === 'ended') return r
      ctx.vars.set('callplane.amd.result', r.result)
      ctx.vars.set('callplane.amd.cause', r.cause ?? '')
      if (r.cue) ctx.vars.set('callplane.amd.cue', r.cue)
      ctx.log.info({ result: r.result, cause: r.cause, decidedAfterMs: r.decidedAfterMs }, 'amd verdict')
      if (r.result === 'machine' && hangup) await hangup(ctx.call, { endedReason: 'machine-detected', by: 'system' })
      return r
    })
    if (o.async) {
      verdict.catch((err: unknown) => ctx.log.warn({ err }, 'amd failed'))
      return { outcome: 'started' }
    }
    const r = await verdict
    if (r.result === 'machine' && hangup) return { stop: true, outcome: 'machine-hung-up' }
    return { outcome: r.result }
  },
})

export const AI_VERBS = [aiTalk, aiSummary, amd]
