import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Call } from '../../store/calls.ts'
import type { ExecutedAction, ActiveflowState } from '../../store/flows.ts'
import { CallControlError, type CallControl } from '../call-control.ts'
import { isNoTarget, type FlowAction } from './flow-action.ts'
import { FlowVariables } from './variables.ts'
import type { FlowServices } from './flow-services.ts'
import type { VerbContext, VerbOutcome } from './verb.ts'
import { verbOf } from './verb-catalog.ts'
import { FlowAppError } from './webhook-app.ts'

/**
 * One run of actions on one call (VoipBin's activeflow): the interpreter.
 * It executes the actions in order (or by `next_id` and the jumps verbs
 * return), substitutes `${variables}` into each option just before the verb
 * runs, and keeps the executed list the call record shows. State is written
 * to the store coalesced (at most one write in flight, the newest state
 * next), so the interpreter's own cost per verb stays far below the verb's.
 */

/** A run that jumps more than this many times without a verb that waits is a loop: it ends with an error. */
const MAX_STEPS = 10_000
/**
 * How long a state change waits before it is written, so the burst a verb's
 * end makes (its outcome, the jumps and conditions after it, the next verb's
 * start) is one store write: an IVR call (prompt, digits, branch, line,
 * hangup) writes 5 times instead of 10. A write carries the whole executed
 * list, so a long run waits longer between writes: WRITE_BEHIND_MS per
 * WRITE_BEHIND_ENTRIES entries (1 s at the 500-entry cap), and its writes
 * cost about as much per second as a short run's (bench/flow-ivr.ts measured
 * ~0.85 ms of engine CPU for one write at the cap, the embedded store
 * included). GET shows the state at most that old; the run's end is written
 * at once.
 */
const WRITE_BEHIND_MS = 100
const WRITE_BEHIND_ENTRIES = 50
/** A run follows at most this many on_complete_flow_id links. */
const MAX_CHAINED_FLOWS = 100
/** The executed list keeps the newest this many entries. */
const MAX_EXECUTED = 500

/**
 * Why a run ended: it ran out of actions, a `stop` verb, a `hangup` verb,
 * the API stopped it (`cancelled`), its call ended, or a verb failed.
 */
export type RunEnd = { reason: 'completed' | 'stopped' | 'hung-up' | 'cancelled' | 'call-ended' | 'error'; error?: string }

export interface FlowRunOptions {
  id: string
  call: Call
  actions: FlowAction[]
  flowId: string | null
  /** The flow to run when these actions run out (VoipBin on_complete_flow_id). */
  onCompleteFlowId?: string | null
  control: CallControl
  services: FlowServices
  log: Logger
  variables?: Record<string, string>
  /** Persists the state (ActiveflowRepository.save); failures are logged, the run goes on. */
  save: (s: ActiveflowState) => Promise<void>
}

export class FlowRun implements VerbContext {
  readonly runId: string
  readonly vars: FlowVariables
  readonly control: CallControl
  readonly services: FlowServices
  readonly log: Logger
  private abort = new AbortController()
  /** Actions from the API that replace the rest of the run (POST /v1/calls/:id/actions, mode interrupt). */
  private replacement: FlowAction[] | null = null
  private actions: FlowAction[]
  private index = new Map<string, number>()
  private executed: ExecutedAction[] = []
  private current: FlowAction | null = null
  private status: 'running' | 'ended' = 'running'
  private error: string | null = null
  private callRecord: Call
  private flowId: string | null
  private onComplete: string | null
  private writing: Promise<void> | null = null
  private dirty = false
  /** Ends the write-behind wait of the pending write (the run ended: write now). */
  private flushNow: (() => void) | null = null
  /** Actions queued by the API to run after the current one (POST /v1/calls/:id/actions, mode queue). */
  private queued: FlowAction[] = []
  private endReason: RunEnd['reason'] | null = null

  constructor(private readonly o: FlowRunOptions) {
    this.runId = o.id
    this.callRecord = o.call
    this.actions = o.actions
    this.flowId = o.flowId
    this.onComplete = o.onCompleteFlowId ?? null
    this.control = o.control
    this.services = o.services
    this.log = o.log.child({ activeflowId: o.id })
    this.vars = new FlowVariables({
      'callplane.call.id': o.call.id, 'callplane.call.source.target': o.call.from, 'callplane.call.destination.target': o.call.to,
      'callplane.call.direction': o.call.direction, 'callplane.activeflow.id': o.id, ...(o.flowId ? { 'callplane.activeflow.flow_id': o.flowId } : {}),
      ...(o.variables ?? {}),
    })
    this.reindex()
  }

  get call(): Call { return this.callRecord }
  get signal(): AbortSignal { return this.abort.signal }
  get ended(): boolean { return this.status === 'ended' }

  need<K extends keyof CallControl>(method: K): NonNullable<CallControl[K]> {
    const fn = this.control[method]
    if (typeof fn !== 'function') throw new CallControlError('unavailable', `this engine cannot ${String(method)} (no media plane for it)`)
    return fn as NonNullable<CallControl[K]>
  }

  async refresh(): Promise<Call> {
    const c = await this.services.store.calls.getById(this.callRecord.id)
    if (c) this.callRecord = c
    return this.callRecord
  }

  /** Stops the run: the current verb's wait ends (its media is interrupted by the caller of stop). */
  stop(reason: 'cancelled' | 'call-ended'): void {
    this.endReason ??= reason
    this.abort.abort()
  }

  /**
   * New actions from the API: `interrupt` drops the rest of this run (the
   * caller interrupts the current verb's media), `queue` runs them after the
   * current verb, before the rest.
   */
  enqueue(actions: FlowAction[], mode: 'queue' | 'interrupt'): void {
    if (mode === 'queue') { this.queued.push(...actions); return }
    this.replacement = actions
    // The current verb's waits end now; the loop then starts the new list with a fresh signal.
    this.abort.abort()
  }

  private reindex(): void {
    this.index = new Map(this.actions.map((a, i) => [a.id, i]))
  }

  private replaceWith(actions: FlowAction[]): void {
    this.actions = actions
    this.reindex()
  }

  /** Runs to the end; resolves with why it ended. Never throws. */
  async run(): Promise<RunEnd> {
    let pos = 0
    let steps = 0
    let hops = 0
    let end: RunEnd = { reason: 'completed' }
    try {
      for (;;) {
        // A stop (API, the call's end) wins over a replacement list still pending.
        if (this.endReason !== null || (this.abort.signal.aborted && !this.replacement)) { end = { reason: this.endReason ?? 'cancelled' }; break }
        if (this.replacement) {
          if (this.abort.signal.aborted && this.endReason === null) this.abort = new AbortController()
          this.replaceWith(this.replacement)
          this.replacement = null
          pos = 0
        }
        if (this.queued.length) {
          // API actions queued behind the current verb go first, then a jump back to where the flow
          // was. The flow's actions all stay in the list, so its later jumps still find their targets.
          const resume = pos < this.actions.length ? [{ id: randomUUID(), type: 'goto', option: { target_id: this.actions[pos]!.id } }] : [{ id: randomUUID(), type: 'stop' }]
          this.replaceWith([...this.queued, ...resume, ...this.actions])
          this.queued = []
          pos = 0
        }
        if (pos >= this.actions.length) {
          if (!this.onComplete) break
          // on_complete_flow_id may chain flows in a cycle (or to an empty flow): bounded like jumps.
          if (++hops > MAX_CHAINED_FLOWS) throw new FlowAppError(`more than ${MAX_CHAINED_FLOWS} flows chained by on_complete_flow_id: they loop`)
          const next = await this.services.store.flows.get(this.callRecord.accountId, this.onComplete)
          this.onComplete = null
          if (!next) break
          this.flowId = next.id
          this.onComplete = next.onCompleteFlowId
          this.replaceWith(next.actions.map((a) => ({ ...a })))
          pos = 0
          continue
        }
        if (++steps > MAX_STEPS) throw new FlowAppError(`more than ${MAX_STEPS} actions ran: the flow loops without end (use goto loop_count)`)
        const action = this.actions[pos]!
        const out = await this.step(action)
        if (out?.stop) { end = { reason: action.type === 'hangup' ? 'hung-up' : 'stopped' }; break }
        if (out?.replace) { this.replaceWith(out.replace); pos = 0; continue }
        const target = out?.goto ?? (isNoTarget(action.next_id) ? undefined : action.next_id)
        if (target !== undefined) {
          const i = this.index.get(target)
          if (i === undefined) throw new FlowAppError(`action ${action.id} jumps to ${target}, which is not in the flow`)
          pos = i
        } else {
          pos++
        }
      }
    } catch (err) {
      end = this.abort.signal.aborted ? { reason: this.endReason ?? 'cancelled' } : { reason: 'error', error: errorText(err) }
    }
    this.current = null
    this.status = 'ended'
    if (end.error) this.error = end.error
    this.persist(true)
    await this.writing
    return end
  }

  private async step(action: FlowAction): Promise<VerbOutcome | void> {
    const verb = verbOf(action.type)
    if (!verb) throw new FlowAppError(`unknown verb ${action.type}`)
    const entry: ExecutedAction = { id: action.id, type: action.type, startedAt: new Date().toISOString() }
    this.current = action
    this.executed.push(entry)
    if (this.executed.length > MAX_EXECUTED) this.executed.shift()
    this.persist()
    try {
      const option = this.vars.substitute(action.option ?? {})
      const out = await verb.run(this, option as never, action)
      entry.outcome = this.abort.signal.aborted && !out?.stop ? 'stopped' : out?.outcome ?? 'done'
      return out
    } catch (err) {
      entry.outcome = `error: ${errorText(err)}`
      throw err
    } finally {
      entry.endedAt = new Date().toISOString()
      this.persist()
    }
  }

  state(): ActiveflowState {
    return {
      status: this.status,
      currentAction: this.current ? { id: this.current.id, type: this.current.type } : null,
      executedActions: this.executed.map((e) => ({ ...e })),
      variables: this.vars.toJSON(),
      ...(this.error ? { error: this.error } : {}),
    }
  }

  /**
   * Coalesced, write-behind state: a change is written WRITE_BEHIND_MS
   * (more for a long executed list) later, with whatever else changed meanwhile (one write in flight, one
   * more with the newest state if anything changed during it). A verb's end,
   * the jumps after it and the next verb's start are one write; the run's
   * end is written at once (`final`).
   */
  private persist(final = false): void {
    this.dirty = true
    if (final) this.flushNow?.()
    if (this.writing) return
    const loop = async (): Promise<void> => {
      if (!final) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, WRITE_BEHIND_MS * Math.max(1, Math.ceil(this.executed.length / WRITE_BEHIND_ENTRIES)))
          function done(): void { clearTimeout(t); resolve() }
          this.flushNow = done
        })
        this.flushNow = null
      }
      while (this.dirty) {
        this.dirty = false
        await this.o.save(this.state()).catch((err: unknown) => this.log.warn({ err }, 'activeflow state could not be stored'))
      }
      this.writing = null
    }
    this.writing = loop()
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
