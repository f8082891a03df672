import type { Logger } from 'pino'
import type { CallRepository, Call, CreateCallInput, EndCallInput, HangupBy } from '../../store/calls.ts'
import { canTransition, recoveryStep, type CallStatus } from './call-state.ts'

/**
 * One call's record, driven through the state machine of call-state.ts and
 * persisted (with its outbox event) at each step by the store's
 * CallRepository. Steps are idempotent and never throw into SIP handling: a
 * database hiccup is logged, the call goes on.
 */
export class CallRecord {
  private status: CallStatus
  private ending: Promise<void> | null = null

  constructor(private readonly repo: CallRepository, public call: Call, private readonly log: Logger) {
    this.status = call.status
  }

  get id(): string { return this.call.id }
  get currentStatus(): CallStatus { return this.status }
  get ended(): boolean { return this.ending !== null }

  static async create(repo: CallRepository, input: CreateCallInput, log: Logger): Promise<CallRecord> {
    const call = await repo.create(input)
    return new CallRecord(repo, call, log.child({ callId: call.id }))
  }

  async ringing(): Promise<void> {
    if (!canTransition(this.status, 'ringing') || this.ending) return
    this.status = 'ringing'
    await this.step(() => this.repo.markRinging(this.call.id))
  }

  /** `sipCallId`: an outbound leg's SIP Call-ID, stored with the answer (one statement less than attach). */
  async answered(sipCallId?: string): Promise<void> {
    if (!canTransition(this.status, 'in-progress') || this.ending) {
      if (sipCallId) await this.attach({ sipCallId })
      return
    }
    this.status = 'in-progress'
    await this.step(() => this.repo.markAnswered(this.call.id, sipCallId))
  }

  async attach(fields: { sipCallId?: string; trunkId?: string }): Promise<void> {
    await this.step(async () => { await this.repo.attach(this.call.id, fields); return this.call })
  }

  /**
   * The terminal step. An answered call can only complete (its endedReason says
   * how); an unanswered one takes the given failure status. Only the first end counts.
   */
  end(status: EndCallInput['status'], endedReason: string, hangupBy: HangupBy | null): Promise<void> {
    if (this.ending) return this.ending
    const final: EndCallInput['status'] = this.status === 'in-progress' ? 'completed' : status === 'completed' ? 'canceled' : status
    this.status = final
    this.ending = this.step(() => this.repo.end(this.call.id, { status: final, endedReason, hangupBy }))
    return this.ending
  }

  /** Emits `call.report` (once per call; the store guards it) after the end and what it carries are stored. */
  async report(): Promise<void> {
    await this.ending
    try {
      await this.repo.emitReport(this.call.id)
    } catch (err) {
      this.log.error({ err }, 'end-of-call report failed')
    }
  }

  private async step(fn: () => Promise<Call>): Promise<void> {
    try {
      this.call = await fn()
    } catch (err) {
      this.log.error({ err }, 'call record update failed')
    }
  }
}

/**
 * Restart recovery: calls this node owned when it died (kill -9, power loss)
 * are finished with endedReason "node-restart", so no record stays live forever.
 */
export async function finishStaleCalls(repo: CallRepository, nodeId: string, log: Logger): Promise<number> {
  const stale = await repo.listActive(nodeId)
  for (const c of stale) {
    const step = recoveryStep({ status: c.status, createdAt: new Date(c.createdAt) })
    if (!step) continue
    await repo.end(c.id, { status: step.to as EndCallInput['status'], endedReason: step.endedReason!, hangupBy: 'system' })
    // What the record holds is all there will be: the end-of-call report goes out now.
    await repo.emitReport(c.id).catch((err: unknown) => log.error({ err, callId: c.id }, 'end-of-call report failed'))
  }
  if (stale.length) log.warn({ count: stale.length, nodeId }, 'finished call records left live by a previous run')
  return stale.length
}
