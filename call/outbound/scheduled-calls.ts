import type { Logger } from 'pino'
import type { Store } from '../../store/index.ts'
import type { Job } from '../../store/jobs.ts'
import type { Clock, JobContext, JobResult, JobScheduler } from '../../store/job-scheduler.ts'
import { SCHEDULED_CALL_JOB, type ScheduledCall, type ScheduledCallInput, type ScheduledCallPatch } from '../../store/scheduled-calls.ts'
import { invalidField, invalidReference } from '../../store/errors.ts'
import { CallControlError, type CallControl } from '../call-control.ts'
import { isTimeZone } from '../time-zones.ts'
import { callOutcome, failureOf } from './call-outcome.ts'
import { resolveCallerId } from './caller-id.ts'
import { parseCallbackTime } from './callback-time.ts'
import { dialledNumber } from './do-not-call.ts'
import type { AgentOutreach, CallbackRequest } from './agent-outreach.ts'

/**
 * Scheduled calls and AI callbacks (Leadlock §2.5, issue 17), on the durable
 * job scheduler: each pending call is a job (kind `scheduled-call`, key =
 * its id, due = `scheduled_for`). The job dials through
 * `CallControl.originate` with the call's agent and holds its lease until the
 * call ended (pending → dialing → completed | failed); a re-run after a
 * lost node finds the row `dialing` with its call and settles from that call
 * instead of dialing again.
 *
 * The callback's agent gets `{{callback_context}}`, `{{previous_call_summary}}`,
 * `{{contact_name}}`, `{{contact_id}}` and `{{scheduled_call_id}}` as call metadata (so as
 * `{{name}}` variables of its greeting and prompt).
 *
 * It is also the main thread's `AgentOutreach`: the do-not-call and
 * schedule_callback host tools of agents on live calls land here.
 */

/** How long a scheduled call rings. */
const RING_TIMEOUT_SEC = 30
/** Retry without a time: Leadlock's "5 minutes from now". */
export const RETRY_DELAY_MS = 5 * 60_000
/** How far ahead an agent may book a callback: a model's "in 9999 days" is not a promise anyone keeps. */
export const MAX_CALLBACK_AHEAD_MS = 90 * 86_400_000
/**
 * Callbacks one call may book in all. Booking again while this call's
 * callback is still pending moves that one ("make it 11 instead"), so a
 * model that calls the tool in a loop (or is talked into it) cannot line up
 * a stack of calls to the same person.
 */
export const MAX_CALLBACKS_PER_CALL = 3

export interface ScheduledCallsOptions {
  store: Store
  scheduler: JobScheduler
  clock: Clock
  control: () => CallControl | null
  log: Logger
  /** Whether another engine node still answers (a relay ping; several nodes on one PostgreSQL): a re-run waiting on a dead node's call gives it up. */
  nodeAlive?: ((nodeId: string) => Promise<boolean>) | undefined
}

export interface ScheduledCallCreate {
  agentId: string
  toPhoneNumber: string
  scheduledFor: Date
  timezone: string
  phoneNumberId?: string | undefined
  from?: string | undefined
  contactId?: string | undefined
  contactName?: string | undefined
  isCallback?: boolean | undefined
  previousCallId?: string | undefined
  callbackContext?: string | undefined
}

export class ScheduledCalls implements AgentOutreach {
  private readonly log: Logger
  constructor(private readonly o: ScheduledCallsOptions) {
    this.log = o.log.child({ component: 'scheduled-calls' })
  }

  /** Registers the job kind (before or after the scheduler starts). */
  start(): void {
    this.o.scheduler.handle(SCHEDULED_CALL_JOB, (job, ctx) => this.run(job, ctx), { concurrency: 50 })
  }

  get clock(): Clock {
    return this.o.clock
  }

  /** POST /v1/scheduled-calls: references checked (400 naming the field), caller ID resolved. */
  async create(accountId: string, b: ScheduledCallCreate, source: ScheduledCall['source'] = 'api'): Promise<ScheduledCall> {
    const { store } = this.o
    if (!(await store.agents.get(accountId, b.agentId))) throw invalidReference('agent_id', 'agent')
    if (!isTimeZone(b.timezone)) throw invalidField('timezone', `unknown time zone ${b.timezone}`)
    if (b.previousCallId && !(await store.calls.get(accountId, b.previousCallId))) throw invalidReference('previous_call_id', 'call')
    const caller = await resolveCallerId(store, accountId, b.agentId, { phoneNumberId: b.phoneNumberId, from: b.from })
    const input: ScheduledCallInput = {
      agentId: b.agentId, toPhoneNumber: b.toPhoneNumber, fromPhoneNumber: caller.from, phoneNumberId: caller.phoneNumberId,
      contactId: b.contactId ?? null, contactName: b.contactName ?? null, scheduledFor: b.scheduledFor, timezone: b.timezone,
      isCallback: b.isCallback ?? false, previousCallId: b.previousCallId ?? null, callbackContext: b.callbackContext ?? null, source,
    }
    const sc = await store.scheduledCalls.create(accountId, input)
    this.pokeIfDue(sc)
    return sc
  }

  async trigger(accountId: string, id: string): Promise<ScheduledCall | null> {
    const sc = await this.o.store.scheduledCalls.trigger(accountId, id, this.o.clock.now())
    if (sc) this.o.scheduler.poke()
    return sc
  }

  async retry(accountId: string, id: string, at: Date | undefined): Promise<ScheduledCall | null> {
    const sc = await this.o.store.scheduledCalls.retry(accountId, id, at ?? new Date(this.o.clock.now().getTime() + RETRY_DELAY_MS))
    if (sc) this.pokeIfDue(sc)
    return sc
  }

  async update(accountId: string, id: string, patch: ScheduledCallPatch): Promise<ScheduledCall | null> {
    if (patch.timezone !== undefined && !isTimeZone(patch.timezone)) throw invalidField('timezone', `unknown time zone ${patch.timezone}`)
    const sc = await this.o.store.scheduledCalls.update(accountId, id, patch)
    if (sc) this.pokeIfDue(sc)
    return sc
  }

  private pokeIfDue(sc: ScheduledCall): void {
    if (new Date(sc.scheduledFor).getTime() <= this.o.clock.now().getTime()) this.o.scheduler.poke()
  }

  // ------------------------------------------------------------ AgentOutreach

  async addToDoNotCall(req: { accountId: string; callId: string; number: string; reason: string | null }): Promise<{ number: string; created: boolean }> {
    const e = await this.o.store.doNotCall.add(req.accountId, req.number, { reason: req.reason ?? 'asked during a call', source: 'agent', callId: req.callId })
    return { number: e.number, created: e.created }
  }

  async scheduleCallback(req: CallbackRequest): Promise<{ ok: true; id: string; scheduledFor: string; moved?: boolean } | { ok: false; error: string }> {
    const now = this.o.clock.now()
    const at = parseCallbackTime(req.when, now, req.timezone ?? 'UTC')
    if (!(at instanceof Date)) return { ok: false, error: at.error }
    if (at.getTime() < now.getTime() - 60_000) return { ok: false, error: `${req.when} is in the past` }
    if (at.getTime() > now.getTime() + MAX_CALLBACK_AHEAD_MS) return { ok: false, error: `${req.when} is more than ${MAX_CALLBACK_AHEAD_MS / 86_400_000} days ahead: ask for a nearer time` }
    const to = dialledNumber(req.to) ?? (/^[0-9*#]{2,8}$/.test(req.to) ? req.to : null)
    if (!to) return { ok: false, error: `${req.to} is not a number a callback can dial` }
    if ((await this.o.store.doNotCall.listed(req.accountId, [to])).has(to)) return { ok: false, error: `${to} is on the do-not-call list` }
    const booked = await this.o.store.scheduledCalls.callbacksOf(req.accountId, req.previousCallId)
    const pending = booked.find((b) => b.status === 'pending')
    const timezone = req.timezone && isTimeZone(req.timezone) ? req.timezone : 'UTC'
    if (pending) {
      // One callback per call at a time: booking again moves it.
      try {
        const moved = await this.update(req.accountId, pending.id, { scheduledFor: at, timezone, ...(req.reason ? { callbackContext: req.reason } : {}) })
        if (moved) return { ok: true, id: moved.id, scheduledFor: moved.scheduledFor, moved: true }
      } catch { /* dialing meanwhile: counted below like any other */ }
    }
    if (booked.length >= MAX_CALLBACKS_PER_CALL) return { ok: false, error: `this call already booked ${booked.length} callbacks: no more` }
    // Call back from the number the caller reached (inbound) or was called from (outbound), else the agent's own.
    const own = await this.o.store.numbers.findInAccount(req.accountId, req.from)
    try {
      const sc = await this.create(req.accountId, {
        agentId: req.agentId, toPhoneNumber: to, scheduledFor: at, timezone,
        ...(own ? { phoneNumberId: own.id } : {}), isCallback: true, previousCallId: req.previousCallId,
        ...(req.reason ? { callbackContext: req.reason } : {}),
      }, 'ai_function')
      return { ok: true, id: sc.id, scheduledFor: sc.scheduledFor }
    } catch (err) {
      return { ok: false, error: (err as Error).message }
    }
  }

  // ------------------------------------------------------------ the job

  private async run(job: Job, ctx: JobContext): Promise<JobResult> {
    const { store } = this.o
    const sc = await store.scheduledCalls.getById(job.key)
    if (!sc) return
    const log = this.log.child({ scheduledCallId: sc.id })
    if (sc.status === 'dialing') {
      // A re-run: the previous run dialled (or was about to). Never dial twice: settle from its call,
      // found by its metadata when that run stopped between placing it and noting it.
      const callId = sc.callId ?? await store.scheduledCalls.findPlacedCall(sc.id)
      if (!callId) {
        await store.scheduledCalls.settle(sc.id, 'failed', 'the node placing the call stopped before it was placed')
        return
      }
      if (!sc.callId) await store.scheduledCalls.setCall(sc.id, callId)
      log.info({ callId, jobAttempts: job.attempts }, 'settling the call an earlier run placed')
      return this.settleFrom(sc, callId, ctx)
    }
    if (sc.status !== 'pending') return
    const due = new Date(sc.scheduledFor)
    if (due.getTime() > ctx.clock.now().getTime()) return { runAt: due }
    const agent = await store.agents.get(sc.accountId, sc.agentId)
    if (!agent) {
      await store.scheduledCalls.settle(sc.id, 'failed', `agent ${sc.agentId} no longer exists`)
      return
    }
    if ((await store.doNotCall.listed(sc.accountId, [sc.toPhoneNumber])).has(sc.toPhoneNumber)) {
      await store.scheduledCalls.settle(sc.id, 'failed', `do_not_call: ${sc.toPhoneNumber} is on the do-not-call list`)
      return
    }
    const control = this.o.control()
    if (!control?.originate) return { runAt: new Date(ctx.clock.now().getTime() + 5_000), error: 'call control is not available yet' }
    // Pending and due still (not cancelled, deleted or moved later since it was read): now dialing.
    const dialing = await store.scheduledCalls.markDialing(sc.id, ctx.clock.now())
    if (!dialing) return
    const metadata = await this.variablesOf(sc)
    let callId: string
    try {
      const call = await control.originate({
        accountId: sc.accountId, from: sc.fromPhoneNumber, to: sc.toPhoneNumber, agentId: sc.agentId, timeoutSec: RING_TIMEOUT_SEC, record: false, metadata,
      })
      callId = call.id
    } catch (err) {
      const msg = err instanceof CallControlError ? `${(err.details as { code?: string } | undefined)?.code ?? err.code}: ${err.message}` : (err as Error).message
      log.info({ err: msg }, 'scheduled call could not be placed')
      await store.scheduledCalls.settle(sc.id, 'failed', msg)
      return
    }
    await store.scheduledCalls.setCall(sc.id, callId)
    log.info({ callId }, 'scheduled call placed')
    return this.settleFrom(sc, callId, ctx)
  }

  private async settleFrom(sc: ScheduledCall, callId: string, ctx: JobContext): Promise<JobResult> {
    const call = await callOutcome(this.o.store, callId, ctx.signal, { nodeId: ctx.nodeId, ringTimeoutSec: RING_TIMEOUT_SEC, nodeAlive: this.o.nodeAlive })
    // The node is stopping: run again (here or elsewhere) and wait on the same call.
    if (!call) return { runAt: ctx.clock.now() }
    const failure = failureOf(call)
    await this.o.store.scheduledCalls.settle(sc.id, failure ? 'failed' : 'completed', failure)
  }

  /** The callback's `{{name}}` variables, as call metadata. */
  private async variablesOf(sc: ScheduledCall): Promise<Record<string, string>> {
    const previous = sc.previousCallId ? await this.o.store.calls.getById(sc.previousCallId) : null
    const summary = previous?.summary ?? null
    // An agent's booking holds only what it said the callback is for; the call's summary, written after it, completes it.
    const context = sc.source === 'ai_function' && summary
      ? [sc.callbackContext, `Previous call: ${summary}`].filter(Boolean).join('. ')
      : sc.callbackContext ?? summary ?? ''
    return {
      scheduled_call_id: sc.id,
      callback_context: context.slice(0, 2000),
      ...(summary ? { previous_call_summary: summary.slice(0, 2000) } : {}),
      ...(sc.previousCallId ? { previous_call_id: sc.previousCallId } : {}),
      ...(sc.contactName ? { contact_name: sc.contactName } : {}),
      ...(sc.contactId ? { contact_id: sc.contactId } : {}),
    }
  }
}
