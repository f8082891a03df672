import type { HostToolName, HostTools } from '../../agent/index.ts'
import { dialledNumber } from './do-not-call.ts'

/**
 * The host tools an agent opts into (stored agent `builtinTools`, agent/tools.ts
 * holds their definitions) as one call carries them out:
 *
 * - `add_to_do_not_call {reason?}`: the other party's number (the caller of an
 *   inbound call, the callee of an outbound one) goes on the account's
 *   do-not-call list (source `agent`, the call's id kept).
 * - `schedule_callback {when, reason?, timezone?}`: a scheduled call back to that
 *   number with the same agent, `is_callback`, `previous_call_id` this call and
 *   `callback_context` the reason (the previous call's summary is added when
 *   the callback is dialled); caller ID: the number that was called (inbound)
 *   or that called (outbound). Booking again while this call's callback is
 *   pending moves it; at most MAX_CALLBACKS_PER_CALL per call, no further than
 *   MAX_CALLBACK_AHEAD_MS ahead (call/outbound/scheduled-calls.ts).
 * - `mark_booked {details?}`: nothing to store: the tool line in the call's
 *   transcript is the mark a sequence's `stop_on_booking` reads.
 *
 * What needs the store and the business clock happens on the main thread
 * (`AgentOutreach`, served to media workers over MediaStore's channel).
 */

export interface OutreachCallInfo {
  accountId: string
  callId: string
  agentId: string
  from: string
  to: string
  direction: 'inbound' | 'outbound'
}

export interface CallbackRequest {
  accountId: string
  agentId: string
  previousCallId: string
  to: string
  from: string
  when: string
  timezone: string | null
  reason: string | null
}

/** The main thread's side of the host tools (call/outbound/scheduled-calls.ts). Arguments and results are JSON. */
export interface AgentOutreach {
  addToDoNotCall(req: { accountId: string; callId: string; number: string; reason: string | null }): Promise<{ number: string; created: boolean }>
  scheduleCallback(req: CallbackRequest): Promise<{ ok: true; id: string; scheduledFor: string; moved?: boolean } | { ok: false; error: string }>
}

const text = (v: unknown): string | null => (typeof v === 'string' && v.trim() ? v.trim().slice(0, 2000) : null)

export function hostToolsFor(names: readonly HostToolName[] | undefined, call: OutreachCallInfo, outreach: AgentOutreach | undefined): HostTools | undefined {
  if (!names?.length) return undefined
  const party = call.direction === 'inbound' ? call.from : call.to
  const own = call.direction === 'inbound' ? call.to : call.from
  const tools: HostTools = {}
  const want = new Set(names)
  if (want.has('mark_booked')) tools.mark_booked = async () => ({ ok: true, content: 'The booking is recorded.' })
  if (!outreach) return tools
  if (want.has('add_to_do_not_call')) {
    tools.add_to_do_not_call = async (args) => {
      const number = dialledNumber(party)
      if (!number) return { ok: false, content: `ERROR: ${party} is not a phone number that can be put on the do-not-call list` }
      const r = await outreach.addToDoNotCall({ accountId: call.accountId, callId: call.callId, number, reason: text(args.reason) })
      return { ok: true, content: r.created ? `${number} is now on the do-not-call list: it will not be called again.` : `${number} was already on the do-not-call list.` }
    }
  }
  if (want.has('schedule_callback')) {
    tools.schedule_callback = async (args) => {
      const when = text(args.when)
      if (!when) return { ok: false, content: 'ERROR: schedule_callback needs `when`' }
      const r = await outreach.scheduleCallback({
        accountId: call.accountId, agentId: call.agentId, previousCallId: call.callId, to: party, from: own,
        when, timezone: text(args.timezone), reason: text(args.reason),
      })
      if (!r.ok) return { ok: false, content: `ERROR: ${r.error}` }
      return { ok: true, content: r.moved ? `The callback this call booked is moved to ${r.scheduledFor} (UTC).` : `Callback booked for ${r.scheduledFor} (UTC).` }
    }
  }
  return tools
}
