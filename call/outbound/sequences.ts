import type { Logger } from 'pino'
import type { Store } from '../../store/index.ts'
import type { Call } from '../../store/calls.ts'
import type { Job } from '../../store/jobs.ts'
import type { JobContext, JobResult, JobScheduler, Clock } from '../../store/job-scheduler.ts'
import { SEQUENCE_STEP_JOB, stepRunKey, type Disposition, type Enrollment, type EnrollmentInput, type Sequence, type SequenceStep } from '../../store/sequences.ts'
import { CallControlError, type CallControl } from '../call-control.ts'
import { isOpen, nextOpening } from './operating-hours.ts'
import { callOutcome } from './call-outcome.ts'
import { bookedOn } from './booking.ts'

/**
 * Leadlock sequences on the durable job scheduler (issue 17). Each active
 * enrollment of an active sequence has one job (`sequence-step`, key = the
 * enrollment, due = `next_action_at`); a run does the enrollment's current
 * step and re-times the job to the next one (`delay_minutes` after this
 * step ended), so the steps run in order with their delays:
 *
 * - outside the sequence's `operating_hours` (read in the enrollment's own
 *   time zone when it has one) the job moves to the next opening;
 * - `wait` does nothing; `call` places a call through `CallControl.originate`
 *   with the sequence's agent and caller ID and holds the job until it ended;
 *   `voicemail_drop` is such a call whose answering machine gets `message`
 *   after the beep (the call's AMD override, `leave_message`: agent/amd.ts
 *   decides; a person who answers talks to the agent);
 * - a number on the do-not-call list ends the enrollment `opted_out` (also
 *   when the contact asked for it during a call: `add_to_do_not_call`);
 * - `max_attempts` dial attempts at most: call steps after that are skipped;
 * - `stop_on_booking`: a call marked as a booking (`bookedOn`: the agent's
 *   `mark_booked` tool, or any tool whose result is a JSON object with
 *   `booked: true`) ends the enrollment `booked`;
 * - after the last step it is `completed`.
 *
 * Every step leaves a disposition (`GET …/dispositions`). A re-run after a
 * lost node finds the step's call in `current_call_id` and settles from it
 * instead of dialing again.
 */

const RING_TIMEOUT_SEC = 30

export interface SequencesOptions {
  store: Store
  scheduler: JobScheduler
  clock: Clock
  control: () => CallControl | null
  log: Logger
  /** Whether another engine node still answers (a relay ping): a re-run waiting on a dead node's call gives it up. */
  nodeAlive?: ((nodeId: string) => Promise<boolean>) | undefined
}

export class Sequences {
  private readonly log: Logger
  constructor(private readonly o: SequencesOptions) {
    this.log = o.log.child({ component: 'sequences' })
  }

  start(): void {
    this.o.scheduler.handle(SEQUENCE_STEP_JOB, (job, ctx) => this.run(job, ctx), { concurrency: 50 })
  }

  get clock(): Clock {
    return this.o.clock
  }

  /** Enrolls a contact: the first step is due its `delay_minutes` from now (business time); null when it is already active in the sequence. */
  async enroll(seq: Sequence, input: EnrollmentInput): Promise<Enrollment | null> {
    const now = this.o.clock.now()
    const e = await this.o.store.sequences.enroll(seq, input, new Date(now.getTime() + (seq.steps[0]?.delay_minutes ?? 0) * 60_000))
    if (e) this.o.scheduler.poke()
    return e
  }

  async setActive(accountId: string, id: string, active: boolean): Promise<Sequence | null> {
    const s = await this.o.store.sequences.setActive(accountId, id, active, this.o.clock.now())
    if (s && active) this.o.scheduler.poke()
    return s
  }

  private async run(job: Job, ctx: JobContext): Promise<JobResult> {
    const { store } = this.o
    const e = await store.sequences.enrollmentById(job.key)
    if (!e || e.status !== 'active') return
    const seq = await store.sequences.getById(e.sequenceId)
    // Deactivated: activation arms the job again.
    if (!seq || !seq.isActive) return
    const step = seq.steps[e.currentStep]
    if (!step) {
      await store.sequences.finishStep(e.id, { step: e.currentStep, type: 'wait', at: ctx.clock.now().toISOString(), callId: null, outcome: 'completed' }, { answered: false, dialled: false, next: { status: 'completed' } })
      return
    }
    // A re-run: this step's call was placed already; settle from it. Also when the run that placed
    // it stopped before noting it (found by its metadata): never dial a step twice.
    if (e.currentCallId) return this.settleCall(seq, e, step, e.currentCallId, ctx)
    const placed = await store.sequences.findPlacedCall(e.id, e.currentStep)
    if (placed) {
      this.log.info({ enrollmentId: e.id, step: e.currentStep, callId: placed, jobAttempts: job.attempts }, 'settling the call an earlier run placed')
      await store.sequences.startAttempt(e.id, placed)
      return this.settleCall(seq, e, step, placed, ctx)
    }
    const now = ctx.clock.now()
    if (e.nextActionAt && new Date(e.nextActionAt).getTime() > now.getTime()) return { runAt: new Date(e.nextActionAt) }
    if (!isOpen(seq.operatingHours, now, e.timezone)) {
      const at = nextOpening(seq.operatingHours, now, e.timezone)
      await store.sequences.retime(e.id, at)
      return { runAt: at }
    }
    if (step.type === 'wait') return this.advance(seq, e, { step: e.currentStep, type: 'wait', at: now.toISOString(), callId: null, outcome: 'waited' }, false, false)
    if ((await store.doNotCall.listed(seq.accountId, [e.contactPhone])).has(e.contactPhone)) {
      await store.sequences.finishStep(e.id, { step: e.currentStep, type: step.type, at: now.toISOString(), callId: null, outcome: 'do_not_call' }, { answered: false, dialled: false, next: { status: 'opted_out' } })
      return
    }
    if (e.totalAttempts >= seq.maxAttempts) {
      return this.advance(seq, e, { step: e.currentStep, type: step.type, at: now.toISOString(), callId: null, outcome: 'skipped', detail: `max_attempts (${seq.maxAttempts}) reached` }, false, false)
    }
    if (!(await store.agents.get(seq.accountId, seq.agentId))) {
      return this.advance(seq, e, { step: e.currentStep, type: step.type, at: now.toISOString(), callId: null, outcome: 'failed', detail: `agent ${seq.agentId} no longer exists` }, false, false)
    }
    const control = this.o.control()
    if (!control?.originate) return { runAt: new Date(now.getTime() + 5_000), error: 'call control is not available yet' }
    let call: Call
    try {
      call = await control.originate({
        accountId: seq.accountId, from: seq.fromPhoneNumber, to: e.contactPhone, agentId: seq.agentId,
        timeoutSec: step.config?.ring_timeout_sec ?? RING_TIMEOUT_SEC, record: false,
        metadata: {
          sequence_id: seq.id, enrollment_id: e.id, sequence_step: String(e.currentStep), sequence_step_run: stepRunKey(e.id, e.currentStep),
          ...(e.contactName ? { contact_name: e.contactName } : {}), ...(e.contactId ? { contact_id: e.contactId } : {}),
        },
        ...(step.type === 'voicemail_drop' ? { amd: { enabled: true, onMachine: 'leave_message' as const, message: step.message ?? '' } } : {}),
      })
    } catch (err) {
      const detail = err instanceof CallControlError ? `${(err.details as { code?: string } | undefined)?.code ?? err.code}: ${err.message}` : (err as Error).message
      return this.advance(seq, e, { step: e.currentStep, type: step.type, at: now.toISOString(), callId: null, outcome: 'failed', detail }, false, true)
    }
    await store.sequences.startAttempt(e.id, call.id)
    this.log.info({ enrollmentId: e.id, step: e.currentStep, callId: call.id }, 'sequence call placed')
    return this.settleCall(seq, e, step, call.id, ctx)
  }

  private async settleCall(seq: Sequence, e: Enrollment, step: SequenceStep, callId: string, ctx: JobContext): Promise<JobResult> {
    const { store } = this.o
    const call = await callOutcome(store, callId, ctx.signal, { nodeId: ctx.nodeId, ringTimeoutSec: step.config?.ring_timeout_sec ?? RING_TIMEOUT_SEC, nodeAlive: this.o.nodeAlive })
    if (!call) return { runAt: ctx.clock.now() }
    const at = ctx.clock.now().toISOString()
    const answered = call.answeredAt !== null
    const outcome = call.lost ? 'node-lost' : !answered ? call.status
      : call.endedReason === 'voicemail-left' ? 'voicemail'
        : call.endedReason === 'machine-detected' ? 'machine' : 'answered'
    const d: Disposition = { step: e.currentStep, type: step.type, at, callId, outcome, ...(call.endedReason ? { detail: call.endedReason } : {}) }
    if (answered && (await store.doNotCall.listed(seq.accountId, [e.contactPhone])).has(e.contactPhone)) {
      await store.sequences.finishStep(e.id, { ...d, outcome: 'opted_out' }, { answered, dialled: true, next: { status: 'opted_out' } })
      return
    }
    if (answered && seq.stopOnBooking && bookedOn(call)) {
      await store.sequences.finishStep(e.id, { ...d, outcome: 'booked' }, { answered, dialled: true, next: { status: 'booked' } })
      return
    }
    return this.advance(seq, e, d, answered, true)
  }

  /** The step is done: on to the next (its delay from now), or the enrollment is completed. */
  private async advance(seq: Sequence, e: Enrollment, d: Disposition, answered: boolean, dialled: boolean): Promise<JobResult> {
    const nextStep = e.currentStep + 1
    const next = seq.steps[nextStep]
    if (!next) {
      await this.o.store.sequences.finishStep(e.id, d, { answered, dialled, next: { status: 'completed' } })
      return
    }
    const at = new Date(this.o.clock.now().getTime() + next.delay_minutes * 60_000)
    const done = await this.o.store.sequences.finishStep(e.id, d, { answered, dialled, next: { step: nextStep, at } })
    return done ? { runAt: at } : undefined
  }
}
