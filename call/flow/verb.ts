import type { Static, TSchema } from '@sinclair/typebox'
import type { Logger } from 'pino'
import type { Call } from '../../store/calls.ts'
import type { CallControl } from '../call-control.ts'
import type { FlowAction } from './flow-action.ts'
import type { FlowVariables } from './variables.ts'
import type { FlowServices } from './flow-services.ts'

/**
 * One verb: its option schema (the one TypeBox schema validation, the
 * OpenAPI document and the interpreter share) and how it runs on a call.
 * Verbs act on the call only through CallControl, so the same verb works on
 * the main thread's media plane and in MEDIA_WORKERS.
 */
export interface Verb<S extends TSchema = TSchema> {
  type: string
  summary: string
  option: S
  /** Action ids the option points at (goto, branch, conditions): they must exist in the same list. */
  targets?(option: Static<S>): string[]
  /**
   * Checks the schema cannot express (e.g. exactly one of two fields); returns
   * `field: problem` strings. `catalog` checks an action list nested in the
   * option (the `call` verb's actions) without the verb importing the catalog.
   */
  check?(option: Static<S>, catalog: VerbCatalog): string[]
  run(ctx: VerbContext, option: Static<S>, action: FlowAction): Promise<VerbOutcome | void>
}

/** The catalog as a verb's check sees it (verb-catalog.ts). */
export interface VerbCatalog {
  checkActions(input: unknown): { ok: true } | { ok: false; problems: string[] }
}

/** What a verb tells the interpreter to do next; nothing = the action's successor. */
export interface VerbOutcome {
  /** Jump to this action id. */
  goto?: string
  /** End the flow here (the call stays up only if the verb says so, e.g. `stop` of an API list). */
  stop?: boolean
  /** Run these actions instead of the rest of the flow (fetch, a webhook app's answer). */
  replace?: FlowAction[]
  /** One word for the call record's executed list (e.g. `digit`, `timeout`, `answered`). */
  outcome?: string
}

export interface VerbContext {
  readonly runId: string
  readonly vars: FlowVariables
  /** The call's record as the run last read it (status, from, to, account). */
  readonly call: Call
  /** The call's actions (media and signalling), whichever node or worker thread holds its media. */
  readonly control: CallControl
  readonly services: FlowServices
  readonly log: Logger
  /** Aborted when the run stops (API stop, a newer action list) or the call ends. */
  readonly signal: AbortSignal
  /** The CallControl method, or a CallControlError 'unavailable' when this engine has none. */
  need<K extends keyof CallControl>(method: K): NonNullable<CallControl[K]>
  /** Reads the call record again (a status that may have changed). */
  refresh(): Promise<Call>
}

export function defineVerb<S extends TSchema>(v: Verb<S>): Verb<S> {
  return v
}

/** A verb's wait that ends early when the run is aborted. */
export function sleepFor(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const t = setTimeout(done, ms)
    function done(): void {
      clearTimeout(t)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}

/** Resolves when the run is aborted (stopped, interrupted, or its call ended): what a verb that waits on something else races. */
export function untilAborted(signal: AbortSignal): Promise<'aborted'> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve('aborted')
    signal.addEventListener('abort', () => resolve('aborted'), { once: true })
  })
}
