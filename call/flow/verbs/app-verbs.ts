import { Type } from '@sinclair/typebox'
import { defineVerb, sleepFor, untilAborted } from '../verb.ts'
import { withIds } from '../flow-action.ts'
import { FlowAppError } from '../webhook-app.ts'

/** The verbs that reach outside the call: fetch (webhook apps), fetch_flow, webhook_send, conference_join. */

const HttpUrl = Type.String({ minLength: 1, maxLength: 2000, pattern: '^https?://' })

export const fetchVerb = defineVerb({
  type: 'fetch', summary: 'Ask a webhook app for the next verbs: POSTs the call and variables to event_url and runs the actions it returns instead of the rest',
  option: Type.Object({
    event_url: HttpUrl,
    event_method: Type.Optional(Type.Union([Type.Literal('POST'), Type.Literal('GET')], { default: 'POST' })),
  }, { additionalProperties: false }),
  run: async (ctx, o, action) => {
    const actions = await ctx.services.app.fetchActions(ctx, { url: o.event_url, method: o.event_method ?? 'POST', event: 'fetch', actionId: action.id })
    return { replace: actions, outcome: `fetched:${actions.length}` }
  },
})

export const fetchFlow = defineVerb({
  type: 'fetch_flow', summary: 'Run a stored flow\'s actions instead of the rest',
  option: Type.Object({ flow_id: Type.String({ format: 'uuid' }) }, { additionalProperties: false }),
  run: async (ctx, o) => {
    const flow = await ctx.services.store.flows.get(ctx.call.accountId, o.flow_id)
    if (!flow) throw new FlowAppError(`fetch_flow: flow ${o.flow_id} does not exist in this account`)
    return { replace: withIds(flow.actions), outcome: `flow:${flow.id}` }
  },
})

/** Requests an async webhook_send may leave open per run (keyed by the run's variables, one object per run). */
const MAX_ASYNC_SENDS = 10
const inFlight = new WeakMap<object, number>()

export const webhookSend = defineVerb({
  type: 'webhook_send', summary: 'Send an HTTP request (signed); with sync the flow waits and ${callplane.webhook.status_code} / ${callplane.webhook.body} are set',
  option: Type.Object({
    uri: HttpUrl,
    method: Type.Optional(Type.Union(['POST', 'GET', 'PUT', 'DELETE'].map((m) => Type.Literal(m)), { default: 'POST' })),
    data_type: Type.Optional(Type.String({ maxLength: 100, default: 'application/json', description: 'Content-Type of data' })),
    data: Type.Optional(Type.String({ maxLength: 100_000, description: 'The body (${variables} substituted); default: the call and variables as JSON' })),
    sync: Type.Optional(Type.Boolean({ default: false })),
  }, { additionalProperties: false }),
  check: (o) => ((o.method === 'GET' || o.method === 'DELETE') && (o.data !== undefined || o.data_type !== undefined) ? [`data: a ${o.method} sends no body (data and data_type are for POST and PUT)`] : []),
  run: async (ctx, o) => {
    const send = ctx.services.app.send(ctx, { url: o.uri, method: (o.method ?? 'POST') as 'POST', contentType: o.data_type ?? 'application/json', ...(o.data !== undefined ? { body: o.data } : {}) })
    if (!o.sync) {
      // Fire and forget, but a run in a loop may not open requests without bound: past the cap it waits for this one.
      const n = inFlight.get(ctx.vars) ?? 0
      inFlight.set(ctx.vars, n + 1)
      const settled = send.catch((err: unknown) => { ctx.log.warn({ err: (err as Error).message, uri: o.uri }, 'webhook_send failed') })
        .finally(() => inFlight.set(ctx.vars, (inFlight.get(ctx.vars) ?? 1) - 1))
      if (n + 1 >= MAX_ASYNC_SENDS) await settled
      return { outcome: 'sent' }
    }
    const r = await send.catch((err: unknown) => ({ status: 0, body: (err as Error).message }))
    ctx.vars.set('callplane.webhook.status_code', r.status)
    ctx.vars.set('callplane.webhook.body', r.body)
    // A JSON object answer also sets its top-level fields as variables (VoipBin sets status_code and body).
    try {
      const parsed: unknown = JSON.parse(r.body)
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
        for (const [k, v] of Object.entries(parsed as Record<string, unknown>).slice(0, 100)) {
          if (/^[A-Za-z0-9_.\-]{1,100}$/.test(k) && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) ctx.vars.set(k, v)
        }
      }
    } catch { /* not JSON: body alone */ }
    return { outcome: `status:${r.status}` }
  },
})

/** How often a call in a conference is checked for having left it. */
const LEFT_ROOM_CHECK_MS = 1000

export const conferenceJoin = defineVerb({
  type: 'conference_join', summary: 'Put the call into a conference; the flow waits there until the call ends',
  option: Type.Object({
    conference_id: Type.String({ format: 'uuid' }),
    muted: Type.Optional(Type.Boolean({ default: false })),
  }, { additionalProperties: false }),
  run: async (ctx, o) => {
    const conf = await ctx.services.store.conferences.get(ctx.call.accountId, o.conference_id)
    if (!conf) throw new FlowAppError(`conference_join: conference ${o.conference_id} does not exist in this account`)
    await ctx.need('conferenceJoin')(ctx.call, o.conference_id, { muted: o.muted ?? false })
    ctx.vars.set('callplane.conference.id', o.conference_id)
    // VoipBin forks the flow into the conference: the flow resumes when the call leaves the room (kicked,
    // moved by the API) and ends with the call. Leaving is seen on the call record (its conferenceId), which
    // whichever media worker or node mixes the room keeps, checked once a second.
    for (;;) {
      if (await Promise.race([untilAborted(ctx.signal), sleepFor(LEFT_ROOM_CHECK_MS, ctx.signal).then(() => 'tick' as const)]) === 'aborted') return { outcome: 'ended' }
      const now = await ctx.refresh()
      if (now.conferenceId !== o.conference_id) return { outcome: 'left' }
    }
  },
})

export const APP_VERBS = [fetchVerb, fetchFlow, webhookSend, conferenceJoin]
