import { randomUUID } from 'node:crypto'

/**
 * One step of a flow, VoipBin's `FlowManagerAction`: `type` names the verb,
 * `option` its settings (shape per verb, verbs/), `id` the target of
 * goto/branch/condition jumps and `next_id` an explicit successor. Flows,
 * webhook apps and the REST verb lists all arrive in this shape.
 */
export interface FlowAction {
  id: string
  /** The action to run after this one; empty or the nil UUID = the next in the list (VoipBin). */
  next_id?: string
  type: string
  option?: Record<string, unknown>
}

/** What a client sends: `id` is optional (VoipBin: generated when omitted). */
export interface FlowActionInput {
  id?: string
  next_id?: string
  type: string
  option?: Record<string, unknown>
}

export const NIL_UUID = '00000000-0000-0000-0000-000000000000'

/** A `next_id`/target that means "nothing": absent, empty or VoipBin's nil UUID. */
export function isNoTarget(id: string | undefined | null): boolean {
  return !id || id === NIL_UUID
}

/** Gives every action an id (kept when given), so executed actions and jumps can name them. */
export function withIds(actions: readonly FlowActionInput[]): FlowAction[] {
  return actions.map((a) => ({
    id: a.id && a.id !== NIL_UUID ? a.id : randomUUID(),
    type: a.type,
    ...(isNoTarget(a.next_id) ? {} : { next_id: a.next_id! }),
    ...(a.option !== undefined ? { option: a.option } : {}),
  }))
}
