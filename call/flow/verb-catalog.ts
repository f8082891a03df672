import { FormatRegistry, Type, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import type { Verb, VerbCatalog } from './verb.ts'
import { isNoTarget, withIds, type FlowAction } from './flow-action.ts'
import { LOGIC_VERBS } from './verbs/logic-verbs.ts'
import { CALL_VERBS } from './verbs/call-verbs.ts'
import { AUDIO_VERBS } from './verbs/audio-verbs.ts'
import { RECORD_VERBS } from './verbs/record-verbs.ts'
import { APP_VERBS } from './verbs/app-verbs.ts'
import { DIAL_VERBS } from './verbs/dial-verbs.ts'
import { AI_VERBS } from './verbs/ai-verbs.ts'
import { QUEUE_VERBS } from './verbs/queue-verbs.ts'

/**
 * Every verb a flow, a webhook app or the REST API can run, by type, with
 * its option schema compiled once. The one place an action list is checked
 * before it is stored or run: unknown verbs, bad options and jump targets
 * that point nowhere are reported naming the action and the field.
 */

// TypeBox's compiler knows no string formats by itself; the API's (ajv's) are registered for the ones verbs use.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
if (!FormatRegistry.Has('uuid')) FormatRegistry.Set('uuid', (v) => UUID.test(v))
if (!FormatRegistry.Has('uri')) FormatRegistry.Set('uri', (v) => { try { new URL(v); return true } catch { return false } })

const ALL: Verb[] = [...CALL_VERBS, ...AUDIO_VERBS, ...RECORD_VERBS, ...LOGIC_VERBS, ...APP_VERBS, ...DIAL_VERBS, ...AI_VERBS, ...QUEUE_VERBS] as Verb[]

const VERBS = new Map<string, { verb: Verb; check: TypeCheck<TSchema> }>()

/** Adds verbs (the dial verbs register from their own module). A type is registered once. */
export function registerVerbs(verbs: Verb[]): void {
  for (const v of verbs) {
    if (VERBS.has(v.type)) throw new Error(`verb ${v.type} is registered twice`)
    VERBS.set(v.type, { verb: v, check: TypeCompiler.Compile(v.option) })
  }
}
registerVerbs(ALL)

export function verbOf(type: string): Verb | undefined {
  return VERBS.get(type)?.verb
}

export function verbTypes(): string[] {
  return [...VERBS.keys()].sort()
}

/** At most this many actions in one list (a flow, an app's answer, a REST list). */
export const MAX_ACTIONS = 500

const Envelope = TypeCompiler.Compile(Type.Object({
  id: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9_.:\\-]+$' })),
  next_id: Type.Optional(Type.String({ maxLength: 100 })),
  type: Type.String({ minLength: 1, maxLength: 64 }),
  option: Type.Optional(Type.Object({})),
  tm_execute: Type.Optional(Type.String()),
}, { additionalProperties: false }))

export type ActionsCheck = { ok: true; actions: FlowAction[] } | { ok: false; problems: string[] }

/**
 * Checks an action list and gives every action an id. Problems read
 * `actions[2] (id menu) option/target_ids/1: …`, so a client sees which
 * action and which field. `extraTargets` are ids outside the list a jump
 * may name (none today).
 */
export function checkActions(input: unknown): ActionsCheck {
  if (!Array.isArray(input)) return { ok: false, problems: ['actions: must be an array'] }
  if (input.length > MAX_ACTIONS) return { ok: false, problems: [`actions: at most ${MAX_ACTIONS} actions`] }
  const problems: string[] = []
  const seen = new Set<string>()
  input.forEach((raw, i) => {
    const where = `actions[${i}]${raw && typeof raw === 'object' && typeof (raw as { id?: unknown }).id === 'string' ? ` (id ${(raw as { id: string }).id})` : ''}`
    if (!Envelope.Check(raw)) {
      const e = Envelope.Errors(raw).First()
      problems.push(`${where}${e?.path ? ` ${e.path.slice(1)}` : ''}: ${e?.message ?? 'invalid action'}`)
      return
    }
    const a = raw as { id?: string; type: string; option?: Record<string, unknown> }
    if (a.id) {
      if (seen.has(a.id)) problems.push(`${where} id: duplicate id ${a.id}`)
      seen.add(a.id)
    }
    const entry = VERBS.get(a.type)
    if (!entry) {
      problems.push(`${where} type: unknown verb '${a.type}' (known: ${verbTypes().join(', ')})`)
      return
    }
    const option = a.option ?? {}
    if (!entry.check.Check(option)) {
      for (const e of [...entry.check.Errors(option)].slice(0, 3)) problems.push(`${where} option${e.path || ''}: ${e.message}`)
      return
    }
    for (const p of entry.verb.check?.(option as never, CATALOG) ?? []) problems.push(`${where} option/${p}`)
  })
  if (problems.length) return { ok: false, problems }
  const actions = withIds(input as never)
  const ids = new Set(actions.map((a) => a.id))
  actions.forEach((a, i) => {
    const where = `actions[${i}] (id ${a.id})`
    if (!isNoTarget(a.next_id) && !ids.has(a.next_id!)) problems.push(`${where} next_id: no action has id ${a.next_id}`)
    for (const t of VERBS.get(a.type)!.verb.targets?.((a.option ?? {}) as never) ?? []) {
      if (!ids.has(t)) problems.push(`${where} option: target ${t} is not an action id in this list`)
    }
  })
  return problems.length ? { ok: false, problems } : { ok: true, actions }
}

/** What verbs' checks get to check the action lists nested in their options. */
const CATALOG: VerbCatalog = { checkActions }

/** Each verb's option schema, for the OpenAPI components. */
export function verbOptionSchemas(): Record<string, TSchema> {
  return Object.fromEntries(verbTypes().map((t) => [t, VERBS.get(t)!.verb.option]))
}
