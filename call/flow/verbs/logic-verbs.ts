import { Type } from '@sinclair/typebox'
import { defineVerb, sleepFor } from '../verb.ts'
import { isTimeZone, zonedParts } from '../../time-zones.ts'

/**
 * The verbs that steer the flow itself: jumps, branches, conditions,
 * variables, pauses and the end. They touch no media.
 */

const ActionId = Type.String({ minLength: 1, maxLength: 100, description: 'The id of an action in the same list' })

export const sleep = defineVerb({
  type: 'sleep', summary: 'Wait, doing nothing',
  option: Type.Object({ duration: Type.Integer({ minimum: 0, maximum: 3_600_000, description: 'Milliseconds' }) }, { additionalProperties: false }),
  run: async (ctx, o) => { await sleepFor(o.duration, ctx.signal) },
})

export const stop = defineVerb({
  type: 'stop', summary: 'End the flow here (the call is hung up, as at the end of any flow)',
  option: Type.Object({}, { additionalProperties: false }),
  run: async () => ({ stop: true, outcome: 'stopped' }),
})

export const goto = defineVerb({
  type: 'goto', summary: 'Jump to an action; with loop_count, at most that many times, then go on',
  option: Type.Object({
    target_id: ActionId,
    loop_count: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000, description: 'Jumps allowed before the goto falls through (0: unlimited)' })),
  }, { additionalProperties: false }),
  targets: (o) => [o.target_id],
  run: async (ctx, o, action) => {
    const key = `callplane.goto.${action.id}.count`
    const done = Number(ctx.vars.get(key) ?? 0)
    if (o.loop_count && done >= o.loop_count) return { outcome: 'loops-exhausted' }
    ctx.vars.set(key, done + 1)
    return { goto: o.target_id, outcome: 'jumped' }
  },
})

export const branch = defineVerb({
  type: 'branch', summary: 'Jump by a variable\'s value (default: the digits received)',
  option: Type.Object({
    variable: Type.Optional(Type.String({ minLength: 1, maxLength: 200, default: 'callplane.call.digits', description: 'Variable name, without ${} (voipbin.* names work too)' })),
    target_ids: Type.Record(Type.String({ maxLength: 200 }), ActionId, { description: 'Value → action id; values compare case-insensitively, trimmed' }),
    default_target_id: Type.Optional(ActionId),
  }, { additionalProperties: false }),
  targets: (o) => [...Object.values(o.target_ids), ...(o.default_target_id ? [o.default_target_id] : [])],
  run: async (ctx, o) => {
    const value = (ctx.vars.get(o.variable ?? 'callplane.call.digits') ?? '').trim().toLowerCase()
    for (const [k, target] of Object.entries(o.target_ids)) {
      if (k.trim().toLowerCase() === value) return { goto: target, outcome: `matched:${k}` }
    }
    if (o.default_target_id) return { goto: o.default_target_id, outcome: 'default' }
    return { outcome: 'no-match' }
  },
})

const Comparison = Type.Union(['==', '!=', '>', '>=', '<', '<='].map((c) => Type.Literal(c)))
type ComparisonOp = '==' | '!=' | '>' | '>=' | '<' | '<='

function compare(a: number | string, op: ComparisonOp, b: number | string): boolean {
  switch (op) {
    case '==': return a === b
    case '!=': return a !== b
    case '>': return a > b
    case '>=': return a >= b
    case '<': return a < b
    case '<=': return a <= b
  }
}

export const conditionVariable = defineVerb({
  type: 'condition_variable', summary: 'Go on when a variable compares true, else jump to false_target_id',
  option: Type.Object({
    variable: Type.String({ minLength: 1, maxLength: 200 }),
    condition: Type.Optional(Comparison),
    value_type: Type.Optional(Type.Union([Type.Literal('string'), Type.Literal('number'), Type.Literal('length')], { default: 'string' })),
    value_string: Type.Optional(Type.String({ maxLength: 1000 })),
    value_number: Type.Optional(Type.Number()),
    value_length: Type.Optional(Type.Integer({ minimum: 0 })),
    false_target_id: ActionId,
  }, { additionalProperties: false }),
  targets: (o) => [o.false_target_id],
  check: (o) => {
    const t = o.value_type ?? 'string'
    const field = t === 'string' ? 'value_string' : t === 'number' ? 'value_number' : 'value_length'
    return o[field] === undefined ? [`${field}: required when value_type is ${t}`] : []
  },
  run: async (ctx, o) => {
    const raw = ctx.vars.get(o.variable) ?? ''
    const op = (o.condition ?? '==') as ComparisonOp
    const t = o.value_type ?? 'string'
    const ok = t === 'number' ? compare(Number(raw), op, o.value_number!)
      : t === 'length' ? compare(raw.length, op, o.value_length!)
        : compare(raw, op, o.value_string!)
    return ok ? { outcome: 'true' } : { goto: o.false_target_id, outcome: 'false' }
  },
})

export const conditionDatetime = defineVerb({
  type: 'condition_datetime', summary: 'Go on when the time matches (e.g. opening hours), else jump to false_target_id',
  option: Type.Object({
    condition: Type.Optional(Comparison),
    minute: Type.Optional(Type.Integer({ minimum: -1, maximum: 59, default: -1, description: '-1: any' })),
    hour: Type.Optional(Type.Integer({ minimum: -1, maximum: 23, default: -1, description: '-1: any' })),
    day: Type.Optional(Type.Integer({ minimum: -1, maximum: 31, default: -1, description: '-1: any' })),
    month: Type.Optional(Type.Integer({ minimum: 0, maximum: 12, default: 0, description: '0: any' })),
    weekdays: Type.Optional(Type.Array(Type.Integer({ minimum: 0, maximum: 6 }), { maxItems: 7, description: '0 = Sunday … 6 = Saturday; empty: any' })),
    timezone: Type.Optional(Type.String({ maxLength: 64, default: 'UTC', description: 'IANA time zone the fields are in (VoipBin: UTC)' })),
    false_target_id: ActionId,
  }, { additionalProperties: false }),
  targets: (o) => [o.false_target_id],
  check: (o) => (o.timezone && !isTimeZone(o.timezone) ? [`timezone: unknown time zone ${o.timezone}`] : []),
  run: async (ctx, o) => {
    const now = zonedParts(o.timezone ?? 'UTC', new Date())
    const op = (o.condition ?? '==') as ComparisonOp
    // Each set field compares "now" against it with the condition (VoipBin: e.g. hour >= 9).
    const checks: boolean[] = []
    if (o.minute !== undefined && o.minute >= 0) checks.push(compare(now.minute, op, o.minute))
    if (o.hour !== undefined && o.hour >= 0) checks.push(compare(now.hour, op, o.hour))
    if (o.day !== undefined && o.day >= 0) checks.push(compare(now.day, op, o.day))
    if (o.month !== undefined && o.month > 0) checks.push(compare(now.month, op, o.month))
    if (o.weekdays?.length) checks.push(o.weekdays.includes(now.weekday))
    return checks.every(Boolean) ? { outcome: 'true' } : { goto: o.false_target_id, outcome: 'false' }
  },
})

export const variableSet = defineVerb({
  type: 'variable_set', summary: 'Set a variable (the value may use ${other} variables)',
  option: Type.Object({
    key: Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9_.\\-]+$' }),
    value: Type.String({ maxLength: 10_000 }),
  }, { additionalProperties: false }),
  run: async (ctx, o) => { ctx.vars.set(o.key, o.value) },
})

export const LOGIC_VERBS = [sleep, stop, goto, branch, conditionVariable, conditionDatetime, variableSet]
