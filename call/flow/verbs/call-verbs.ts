import { Type } from '@sinclair/typebox'
import { defineVerb } from '../verb.ts'

/** The verbs that act on the call as a whole: answer, hangup, beep, echo, mute. */

export const answer = defineVerb({
  type: 'answer', summary: 'Answer the call (calls that reach a flow are answered before it runs, so this only marks the point)',
  option: Type.Object({}, { additionalProperties: false }),
  run: async (ctx) => {
    // sip/app answers a call before handing it to its program (the media the verbs use needs the 200 OK);
    // on an outbound call the far end answered. Nothing is left to do but say so in the record.
    return { outcome: ctx.call.status === 'in-progress' ? 'answered' : ctx.call.status }
  },
})

export const hangup = defineVerb({
  type: 'hangup', summary: 'Hang up the call (ends the flow)',
  option: Type.Object({
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9_.\\-]+$', description: 'The call\'s endedReason (default: flow-hangup)' })),
  }, { additionalProperties: false }),
  run: async (ctx, o) => {
    await ctx.need('hangup')(ctx.call, { endedReason: o.reason ?? 'flow-hangup', by: 'system' })
    return { stop: true, outcome: 'hung-up' }
  },
})

export const beep = defineVerb({
  type: 'beep', summary: 'Play a short beep',
  option: Type.Object({}, { additionalProperties: false }),
  run: async (ctx) => {
    const r = await ctx.need('prompt')(ctx.call, { tone: { tone: 'beep' } })
    return { outcome: r.result }
  },
})

export const echo = defineVerb({
  type: 'echo', summary: 'Send the caller\'s own audio back to it (a line test)',
  option: Type.Object({ duration: Type.Integer({ minimum: 100, maximum: 600_000, description: 'Milliseconds' }) }, { additionalProperties: false }),
  run: async (ctx, o) => { await ctx.need('echo')(ctx.call, { durationMs: o.duration }) },
})

export const mute = defineVerb({
  type: 'mute', summary: 'Mute (or with unmute: true, unmute) the call in a direction',
  option: Type.Object({
    direction: Type.Optional(Type.Union([Type.Literal('in'), Type.Literal('out'), Type.Literal('both')], { default: 'both', description: 'As the call\'s mute action: in = it hears nothing, out = nothing it says reaches others' })),
    unmute: Type.Optional(Type.Boolean({ default: false })),
  }, { additionalProperties: false }),
  run: async (ctx, o) => {
    const direction = o.direction ?? 'both'
    if (o.unmute) await ctx.need('unmute')(ctx.call, { direction })
    else await ctx.need('mute')(ctx.call, { direction })
    return { outcome: o.unmute ? 'unmuted' : 'muted' }
  },
})

export const CALL_VERBS = [answer, hangup, beep, echo, mute]
