import { Type, type Static } from '@sinclair/typebox'
import type { Call, CallProgram } from '../../../store/calls.ts'
import type { DialAddress } from '../../../store/groupcalls.ts'
import type { StoredAction } from '../../../store/flows.ts'
import { isFinal } from '../../../store/calls.ts'
import { addressProblems, DialAddressSchema, expandAgentAddresses, SourceAddressSchema } from '../../dial-address.ts'
import { resolveTargets, startGroupcall } from '../../groupcalls.ts'
import { defineVerb, untilAborted, type VerbContext } from '../verb.ts'
import { FlowAppError } from '../webhook-app.ts'

/**
 * The verbs that dial: `connect` (ring one or several destinations, bridge
 * the first to answer to this call, wait while they talk) and `call` (new
 * independent calls that run their own flow). Both ring through
 * call/groupcalls.ts and call/group-dialer.ts, as POST /v1/groupcalls does.
 */

const Destinations = Type.Array(DialAddressSchema, { minItems: 1, maxItems: 20, description: 'VoipBin CommonAddress objects: tel, extension, sip, agent (a contact agent: its addresses)' })
const RingMethod = Type.Union([Type.Literal(''), Type.Literal('ring_all'), Type.Literal('linear')], {
  default: 'ring_all', description: 'ring_all (or empty): every destination rings at once, the first to answer wins and the others are canceled; linear: one after another, each for `timeout`',
})
const Timeout = Type.Integer({ minimum: 1000, maximum: 600_000, default: 30_000, description: 'Milliseconds: ring_all: how long they all ring; linear: how long each rings' })

function destinationProblems(destinations: DialAddress[]): string[] {
  return destinations.flatMap((d, i) => addressProblems(d, `destinations/${i}`))
}

/** The caller ID of the new legs: the option's, else the flow's call's own `from` (the caller on an inbound call, our number on an outbound one). */
function sourceOf(ctx: VerbContext, source: { target: string } | undefined): DialAddress {
  return { type: 'tel', target: source?.target ?? ctx.call.from }
}

const ConnectOption = Type.Object({
  source: Type.Optional(SourceAddressSchema),
  destinations: Destinations,
  early_media: Type.Optional(Type.Boolean({
    default: false,
    description: 'true: the caller hears a ringback tone while the destinations ring (the flow\'s call is already answered, so a carrier\'s own early media is not relayed; the engine\'s ringback stands in for it); false: silence until the bridge',
  })),
  relay_reason: Type.Optional(Type.Boolean({ default: false, description: 'true: when the callee hangs up, this call is hung up too, with the callee\'s endedReason (the flow ends); false: the flow goes on' })),
  ring_method: Type.Optional(RingMethod),
  timeout: Type.Optional(Timeout),
}, { additionalProperties: false })

export const connect = defineVerb({
  type: 'connect',
  summary: 'Dial destinations (numbers, extensions, SIP URIs) and bridge the first to answer to this call; the flow waits while they talk, then goes on. ${callplane.connect.status}: answered, no-answer, busy, failed or canceled',
  option: ConnectOption,
  check: (o) => destinationProblems(o.destinations),
  run: async (ctx, o: Static<typeof ConnectOption>) => {
    const store = ctx.services.store
    const call = ctx.call
    for (const k of ['status', 'call_id', 'groupcall_id', 'ended_reason', 'error']) ctx.vars.set(`callplane.connect.${k}`, null)
    const destinations = await expandAgentAddresses(store, call.accountId, o.destinations as DialAddress[])
    const targets = await resolveTargets(store, call.accountId, destinations)
    const { record, dial } = await startGroupcall({ store, control: ctx.control, log: ctx.log, nodeId: ctx.services.nodeId }, {
      accountId: call.accountId, source: sourceOf(ctx, o.source), destinations, targets, ringMethod: o.ring_method === 'linear' ? 'linear' : 'ring_all',
      timeoutMs: o.timeout ?? 30_000, masterCallId: call.id, signal: ctx.signal, abortedAnswerReason: 'connect-ended',
    })
    ctx.vars.set('callplane.connect.groupcall_id', record.id)
    // Ringback while they ring; interrupt() ends it (and nothing else runs on the call meanwhile).
    const ringback = o.early_media && ctx.control.prompt && (await dial.placed)
    if (ringback) void ctx.control.prompt!(call, { tone: { tone: 'ringback', durationMs: (o.timeout ?? 30_000) * (o.ring_method === 'linear' ? destinations.length : 1) } }).catch(() => { /* no media: silence */ })
    // A leg whose end never reaches the bus must not hold the run: its stop or its call's end goes first.
    const r = await Promise.race([dial.result, untilAborted(ctx.signal)])
    // The dial's own abort handler (the same signal) has hung up or canceled its legs.
    if (r === 'aborted') return { outcome: 'stopped' }
    if (ringback) await ctx.control.interrupt?.(call).catch(() => { /* ended */ })
    ctx.vars.set('callplane.connect.status', r.status)
    if (!r.answered) {
      if (r.error) ctx.vars.set('callplane.connect.error', r.error.message)
      return { outcome: r.status }
    }
    const leg = r.answered
    ctx.vars.set('callplane.connect.call_id', leg.id)
    try {
      await ctx.need('bridge')(call, leg)
    } catch (err) {
      ctx.log.warn({ err, legId: leg.id }, 'connect: the answered leg could not be bridged')
      dial.abort('bridge-failed')
      ctx.vars.set('callplane.connect.status', 'failed')
      ctx.vars.set('callplane.connect.error', `bridge: ${err instanceof Error ? err.message : String(err)}`)
      return { outcome: 'bridge-failed' }
    }
    // The two talk until the callee hangs up (the flow goes on) or this call ends / the run stops (the dial's
    // abort signal then hangs up the callee).
    const end = await Promise.race([dial.legEnded(leg.id), untilAborted(ctx.signal)])
    if (end === 'aborted') return { outcome: 'answered' }
    ctx.vars.set('callplane.connect.ended_reason', end.endedReason)
    if (o.relay_reason) {
      const self = await ctx.refresh()
      if (!isFinal(self.status)) await ctx.need('hangup')(self, { endedReason: end.endedReason ?? 'callee-hangup', by: 'system' })
      return { stop: true, outcome: 'answered' }
    }
    return { outcome: 'answered' }
  },
})

const CallOption = Type.Object({
  source: Type.Optional(SourceAddressSchema),
  destinations: Destinations,
  flow_id: Type.Optional(Type.String({ format: 'uuid', description: 'The stored flow each new call runs once answered' })),
  actions: Type.Optional(Type.Array(Type.Object({}, { additionalProperties: true }), { minItems: 1, maxItems: 500, description: 'Inline actions each new call runs once answered (checked like a flow\'s; ${variables} in them are this flow\'s, substituted when this verb runs)' })),
  chained: Type.Optional(Type.Boolean({ default: false, description: 'true: the new calls are hung up (or canceled while ringing) when this call ends' })),
  timeout: Type.Optional(Type.Integer({ minimum: 1000, maximum: 600_000, default: 30_000, description: 'Milliseconds each new call rings before it ends no-answer' })),
}, { additionalProperties: false })

export const callVerb = defineVerb({
  type: 'call',
  summary: 'Place new calls, one per destination, each running flow_id or actions once answered; does not wait. ${callplane.calls.ids}: their call ids',
  option: CallOption,
  check: (o, catalog) => {
    const problems = destinationProblems(o.destinations as DialAddress[])
    if ((o.flow_id === undefined) === (o.actions === undefined)) problems.push('flow_id: give exactly one of flow_id and actions')
    if (o.actions) {
      const nested = catalog.checkActions(o.actions)
      if (!nested.ok) problems.push(...nested.problems.map((p) => p.replace(/^actions/, 'actions/')))
    }
    return problems
  },
  run: async (ctx, o: Static<typeof CallOption>) => {
    const store = ctx.services.store
    const call = ctx.call
    if (o.flow_id && !(await store.flows.get(call.accountId, o.flow_id))) throw new FlowAppError(`call: flow ${o.flow_id} does not exist in this account`)
    const program: CallProgram = o.flow_id ? { flowId: o.flow_id } : { actions: o.actions as StoredAction[] }
    const originate = ctx.need('originate')
    const targets = await resolveTargets(store, call.accountId, await expandAgentAddresses(store, call.accountId, o.destinations as DialAddress[]))
    const from = sourceOf(ctx, o.source).target!
    const placed: Call[] = []
    const errors: string[] = []
    for (const t of targets) {
      if ('error' in t) { errors.push(t.error); continue }
      try {
        placed.push(await originate({
          accountId: call.accountId, from, to: t.to, timeoutSec: (o.timeout ?? 30_000) / 1000, record: false, program, parentCallId: call.id,
          metadata: { masterCallId: call.id },
        }))
      } catch (err) {
        errors.push(`${t.to}: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
    ctx.vars.set('callplane.calls.ids', placed.map((c) => c.id).join(','))
    ctx.vars.set('callplane.calls.error', errors.length ? errors.join('; ') : null)
    if (o.chained && placed.length) chain(ctx, call, placed)
    return { outcome: errors.length ? `placed:${placed.length},failed:${errors.length}` : `placed:${placed.length}` }
  },
})

/**
 * `chained`: the new calls end with this one. Followed on the bus until this
 * call or all of them have ended, so it outlives the verb (and the run).
 */
function chain(ctx: VerbContext, master: Call, children: Call[]): void {
  const live = new Map(children.map((c) => [c.id, c]))
  const hangup = ctx.control.hangup
  const unsubscribe = ctx.services.store.bus.subscribe((e) => {
    if (e.type !== 'call.ended' && e.type !== 'call.failed') return
    if (e.callId === master.id) {
      unsubscribe()
      for (const c of live.values()) void hangup?.(c, { endedReason: 'chained-hangup', by: 'system' }).catch(() => { /* ended meanwhile */ })
      return
    }
    if (e.callId && live.delete(e.callId) && live.size === 0) unsubscribe()
  })
  // The master may have ended before the subscription (a hangup racing the verb).
  void ctx.refresh().then((m) => {
    if (!isFinal(m.status)) return
    unsubscribe()
    for (const c of live.values()) void hangup?.(c, { endedReason: 'chained-hangup', by: 'system' }).catch(() => { /* ended meanwhile */ })
  })
}

export const DIAL_VERBS = [connect, callVerb]
