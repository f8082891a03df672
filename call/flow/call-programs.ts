import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { Store } from '../../store/index.ts'
import { isFinal, type Call, type CallProgram } from '../../store/calls.ts'
import type { CallplaneEvent } from '../../store/outbox.ts'
import { CallControlError, type CallControl } from '../call-control.ts'
import type { FlowAction } from './flow-action.ts'
import { withIds } from './flow-action.ts'
import { checkActions } from './verb-catalog.ts'
import { FlowRun, type RunEnd } from './flow-run.ts'
import type { WebhookApp } from './webhook-app.ts'
import type { FlowServices, ForkParent, ForkedRun } from './flow-services.ts'
import type { Acd } from '../queues/acd.ts'

/**
 * Which program a call runs, and the runs themselves on this node. sip/app
 * calls `start()` once a call is answered (an inbound call to a number
 * whose target is a flow or a webhook app; an outbound call placed with
 * `flowId`, `actions` or `url`); the API runs verb lists on live calls
 * (`runOnCall`) and stops runs. A run that is the call's program hangs the
 * call up when it runs out of actions, as VoipBin and jambonz do; an app
 * that fails ends the call with `app-error` after a short apology.
 */

/** Said before an `app-error` hangup, so the caller is not left in silence. */
export const APP_ERROR_PROMPT = 'Sorry, this number is not working right now. Goodbye.'

export interface CallProgramsOptions {
  store: Store
  control: () => CallControl | null
  app: WebhookApp
  logger: Logger
  nodeId: string
  /** The queues' ACD on this node, for `queue_join`. */
  acd?: Acd | undefined
  /** Releases what the programs hold beyond their runs (the webhook apps' connection pool). */
  onClose?: () => Promise<void>
}

interface LiveRun { run: FlowRun; callId: string; program: boolean; done: Promise<RunEnd> }

export class CallPrograms {
  private readonly byCall = new Map<string, LiveRun>()
  private readonly byId = new Map<string, LiveRun>()
  /** Calls between start() and their run's registration → whether their end was announced meanwhile. */
  private readonly starting = new Map<string, boolean>()
  /** The same calls → their start, so a verb list the API posts meanwhile waits to join the program's run. */
  private readonly startups = new Map<string, Promise<void>>()
  private readonly log: Logger
  private readonly unsubscribe: () => void
  private readonly services: FlowServices

  constructor(private readonly o: CallProgramsOptions) {
    this.log = o.logger.child({ component: 'call-programs' })
    this.services = {
      store: o.store, app: o.app, nodeId: o.nodeId, acd: o.acd,
      fork: (parent, actions, variables) => this.fork(parent, actions, variables),
    }
    // A call that ends stops its run at once (its media waits also end on their own).
    this.unsubscribe = o.store.bus.subscribe((e: CallplaneEvent) => {
      if ((e.type !== 'call.ended' && e.type !== 'call.failed') || !e.callId) return
      const live = this.byCall.get(e.callId)
      if (live) live.run.stop('call-ended')
      else if (this.starting.has(e.callId)) this.starting.set(e.callId, true)
    })
  }

  async close(): Promise<void> {
    this.unsubscribe()
    for (const r of this.byCall.values()) r.run.stop('call-ended')
    await this.o.onClose?.()
  }

  /** Runs on this node. */
  get size(): number { return this.byCall.size }

  /** The run going on a call here, if any. */
  runOf(callId: string): FlowRun | undefined {
    return this.byCall.get(callId)?.run
  }

  /**
   * sip/app's hook: the call was answered and has a program (its own, or its
   * number's). Never throws: a program that cannot start ends the call with
   * app-error.
   */
  start(callId: string): void {
    void this.startProgram(callId).catch(async (err: unknown) => {
      this.log.error({ err, callId }, 'call program failed to start')
      // The caller must not be left in silence: the apology and app-error, as for an app that fails.
      const call = await this.o.store.calls.getById(callId).catch(() => null)
      if (call?.status === 'in-progress') await this.appError(call, `the program could not start: ${(err as Error).message}`).catch(() => { /* ended meanwhile */ })
    })
  }

  /** The program of a call: its own (POST /v1/calls), else its number's target. */
  async programOf(call: Call): Promise<CallProgram | null> {
    const own = await this.o.store.calls.program(call.id)
    if (own) return own
    if (!call.numberId) return null
    const n = await this.o.store.numbers.get(call.accountId, call.numberId)
    const t = n?.target
    if (t?.type === 'flow' && t.id) return { flowId: t.id }
    if (t?.type === 'app' && t.url) return { url: t.url, method: t.method ?? 'POST' }
    return null
  }

  private async startProgram(callId: string): Promise<void> {
    // Calls whose program is being looked up, and whether their end was announced meanwhile.
    this.starting.set(callId, false)
    const launched = this.lookUpAndLaunch(callId)
    this.startups.set(callId, launched.catch(() => { /* reported by start() */ }))
    try {
      await launched
    } finally {
      this.starting.delete(callId)
      this.startups.delete(callId)
    }
  }

  private async lookUpAndLaunch(callId: string): Promise<void> {
    const call = await this.o.store.calls.getById(callId)
    if (!call) return
    const program = await this.programOf(call)
    if (!program) return
    let actions: FlowAction[]
    let flowId: string | null = null
    let onComplete: string | null = null
    if ('flowId' in program) {
      const flow = await this.o.store.flows.get(call.accountId, program.flowId)
      if (!flow) return this.failBeforeRun(call, `flow ${program.flowId} does not exist (deleted after the call was set up?)`)
      actions = withIds(flow.actions)
      flowId = flow.id
      onComplete = flow.onCompleteFlowId
    } else if ('actions' in program) {
      const checked = checkActions(program.actions)
      if (!checked.ok) return this.failBeforeRun(call, checked.problems.join('; '))
      actions = checked.actions
    } else {
      // A webhook app: its first answer is what a fetch of its URL returns.
      actions = withIds([{ type: 'fetch', option: { event_url: program.url, event_method: program.method } }])
    }
    const { id } = this.launch(call, actions, { flowId, onComplete, program: true, referenceType: 'call' })
    // A call.ended published while the program was being looked up found no run to stop; the bus noted it.
    if (this.starting.get(call.id) || isFinal(call.status)) this.byId.get(id)?.run.stop('call-ended')
  }

  private async failBeforeRun(call: Call, error: string): Promise<void> {
    const id = randomUUID()
    await this.o.store.activeflows.create({ id, accountId: call.accountId, callId: call.id, flowId: null, referenceType: 'call', nodeId: this.o.nodeId, variables: {} })
    await this.o.store.activeflows.save(id, { status: 'ended', currentAction: null, executedActions: [], variables: {}, error })
    await this.appError(call, error)
  }

  /**
   * Starts a run on the call, registered before anything is awaited so a
   * second list for the same call (the API's, racing the program's start)
   * joins it, queued, instead of playing over it.
   */
  private launch(call: Call, actions: FlowAction[], opts: { flowId: string | null; onComplete: string | null; program: boolean; referenceType: 'call' | 'api' }): { id: string; joined: boolean; created: Promise<unknown> } {
    const control = this.o.control()
    if (!control) throw new CallControlError('unavailable', 'call control is not available on this node yet')
    const going = this.byCall.get(call.id)
    if (going && !going.run.ended) {
      going.run.enqueue(actions, 'queue')
      going.program ||= opts.program
      return { id: going.run.runId, joined: true, created: Promise.resolve() }
    }
    const id = randomUUID()
    const run = new FlowRun({
      id, call, actions, flowId: opts.flowId, onCompleteFlowId: opts.onComplete, control, log: this.log.child({ callId: call.id }),
      services: this.services,
      save: (s) => this.o.store.activeflows.save(id, s),
    })
    const live: LiveRun = { run, callId: call.id, program: opts.program, done: Promise.resolve({ reason: 'completed' }) }
    this.byCall.set(call.id, live)
    this.byId.set(id, live)
    const forget = (): void => {
      // Only its own entry: a newer run on the call may have taken the slot.
      if (this.byCall.get(call.id) === live) this.byCall.delete(call.id)
      this.byId.delete(id)
    }
    // The row first: the run's state writes update it.
    const created = this.o.store.activeflows.create({ id, accountId: call.accountId, callId: call.id, flowId: opts.flowId, referenceType: opts.referenceType, nodeId: this.o.nodeId, variables: {} })
    live.done = created
      .then(() => run.run())
      .then(async (end) => {
        forget()
        // Never unhandled: a store that fails here must not take the process (and every call) down.
        await this.finish(live, end).catch((err: unknown) => this.log.error({ err, callId: call.id }, 'the end of a call program could not be handled'))
        return end
      }, (err: unknown) => {
        forget()
        this.log.error({ err, callId: call.id }, 'a call program could not run')
        return { reason: 'error', error: (err as Error).message } satisfies RunEnd
      })
    return { id, joined: false, created }
  }

  /** What happens to the call when its run ends. */
  private async finish(live: LiveRun, end: RunEnd): Promise<void> {
    // A run that hung up, went with its call or was cancelled leaves nothing to do: no need to read the call.
    if (end.reason === 'hung-up' || end.reason === 'call-ended' || end.reason === 'cancelled') return
    const call = await this.o.store.calls.getById(live.callId)
    if (!call || call.status !== 'in-progress') return
    if (end.reason === 'error' && !live.program) {
      // Verbs the API ran on a call with its own life (an agent): the error is on the run, the call goes on.
      this.log.info({ callId: call.id, error: end.error }, 'API verb list failed')
      return
    }
    if (end.reason === 'error') {
      this.log.warn({ callId: call.id, error: end.error }, 'call program failed: app-error')
      await this.appError(call, end.error ?? 'error')
      return
    }
    // A program that ran out or said `stop` ends its call; one the API stopped leaves it up (the app goes on with it).
    if (live.program && (end.reason === 'completed' || end.reason === 'stopped')) {
      await this.o.control()?.hangup?.(call, { endedReason: 'flow-completed', by: 'system' }).catch(() => { /* ended meanwhile */ })
    }
  }

  /** The caller hears a short apology, then the call ends with endedReason app-error. */
  private async appError(call: Call, error: string): Promise<void> {
    const control = this.o.control()
    if (!control) return
    this.log.info({ callId: call.id, error }, 'ending the call: app-error')
    if (control.prompt) await control.prompt(call, { say: { text: APP_ERROR_PROMPT } }).catch(() => { /* no media: hang up anyway */ })
    await control.hangup?.(call, { endedReason: 'app-error', by: 'system' }).catch(() => { /* ended meanwhile */ })
  }

  /**
   * POST /v1/calls/:id/actions: a verb list on a live call. With a run going
   * here, `queue` puts them after its current verb and `interrupt` drops the
   * rest of it (the current verb's audio stops now); with none, a new run
   * starts that leaves the call up when it ends (the call may have an agent).
   */
  async runOnCall(call: Call, input: unknown, mode: 'queue' | 'interrupt'): Promise<{ activeflowId: string; mode: 'queue' | 'interrupt' | 'started' }> {
    const checked = checkActions(input)
    if (!checked.ok) throw new CallControlError('rejected', `invalid actions: ${checked.problems.join('; ')}`, { problems: checked.problems })
    // A program still being looked up (the call was just answered): `queue` means after it, so wait for its run.
    await this.startups.get(call.id)
    const live = this.byCall.get(call.id)
    if (live && !live.run.ended) {
      live.run.enqueue(checked.actions, mode)
      if (mode === 'interrupt') await this.o.control()?.interrupt?.(call).catch(() => { /* nothing was playing */ })
      return { activeflowId: live.run.runId, mode }
    }
    const r = this.launch(call, checked.actions, { flowId: null, onComplete: null, program: false, referenceType: 'api' })
    // The id answered is readable at once (GET /v1/activeflows/:id).
    await r.created.catch(() => { /* logged by the run */ })
    return { activeflowId: r.id, mode: r.joined ? 'queue' : 'started' }
  }

  /** POST /v1/activeflows/:id/stop: ends a run here; false when it does not run on this node. */
  async stop(activeflowId: string): Promise<boolean> {
    const live = this.byId.get(activeflowId)
    if (!live) return false
    live.run.stop('cancelled')
    const call = live.run.call
    await this.o.control()?.interrupt?.(call).catch(() => { /* nothing was playing */ })
    await live.done
    return true
  }

  /** FlowServices.fork: a run beside a verb on the same call (a queue's wait flow), not stored, stopped by its verb. */
  private fork(parent: ForkParent, actions: FlowAction[], variables: Record<string, string>): ForkedRun {
    const run = new FlowRun({
      id: randomUUID(), call: parent.call, actions, flowId: null, control: parent.control, services: this.services,
      log: parent.log.child({ forked: true }), variables, save: async () => { /* the forking verb is what the call shows */ },
    })
    const done = run.run()
    return { vars: run.vars, done, stop: () => run.stop('cancelled') }
  }

  /** The live state of a run here (fresher than the stored one), or null. */
  liveState(activeflowId: string): ReturnType<FlowRun['state']> | null {
    return this.byId.get(activeflowId)?.run.state() ?? null
  }
}
