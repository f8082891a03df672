import type { Logger } from 'pino'
import type { Store } from '../../store/index.ts'
import { isFinal, type Call } from '../../store/calls.ts'
import type { Job } from '../../store/jobs.ts'
import type { JobContext, JobResult, JobScheduler } from '../../store/job-scheduler.ts'
import type { Campaign, CampaignStatus } from '../../store/campaigns.ts'
import type { Campaigncall, CampaigncallOutcome } from '../../store/campaigncalls.ts'
import type { OutdialTarget } from '../../store/outdials.ts'
import type { Outplan } from '../../store/outplans.ts'
import type { Emit } from '../../store/outbox.ts'
import type { Queryable } from '../../store/common.ts'
import { CallControlError, type CallControl, type OriginateRequest } from '../call-control.ts'
import { isOpen, nextOpening } from './operating-hours.ts'
import { DO_NOT_CALL_CODE } from './do-not-call.ts'
import { campaignProgram } from './campaign-program.ts'

/**
 * The campaign dialer, on the durable job scheduler: one job per campaign
 * target (`campaign.dial`, key `<campaign>:<target>`), due when its next
 * attempt is. A run of the job:
 *
 * 1. settles an attempt an earlier run left open (its node died, or stopped):
 *    the attempt's call (by `call_id`, else by the call's metadata) is
 *    followed to its end instead of dialled again (a call whose node is gone,
 *    `nodeAlive`, is settled `node-lost`); one never placed is withdrawn;
 * 2. drops the job when the campaign is not `run` (pause/stop: `run` re-arms
 *    every target from `campaign_targets`), pauses the campaign with a
 *    `status_reason` when its agent, flow or outplan is gone, and re-times
 *    itself to the next opening outside operating hours (the contact's zone
 *    when known) and to the target's own due time;
 * 3. skips destinations on the do-not-call list (every one listed: the
 *    target is done, outcome `dnc-skipped`, never dialled);
 * 4. reserves the attempt in one transaction on the campaign row: still
 *    `run`, fewer open attempts than `max_concurrent_calls` (else it comes
 *    back in about a second), the next pacing slot (`next_dial_at`, real
 *    time, shared by every node) when it starts within SLOT_HORIZON_MS
 *    (else the job comes back at the slot: nothing is reserved far ahead),
 *    the campaigncall row (`dialing`);
 * 5. waits for its slot, originates (metadata `campaignId`, `campaigncallId`)
 *    and holds the job while the call rings and talks, so a node killed
 *    mid-call releases it by lease expiry and the next run settles it;
 * 6. settles: the outcome gives the result; busy / no-answer / failed /
 *    machine are tried again after the outplan's delay for that outcome
 *    (the job re-timed) while attempts are left; otherwise the target is
 *    done, and a campaign with `end_handle` stop and nothing left stops.
 *
 * Business time (`ctx.clock`) decides operating hours and retry times, so
 * tests move it; pacing is real time.
 */

export const CAMPAIGN_DIAL_JOB = 'campaign.dial'

/** Outcomes that get another attempt (when the outplan has attempts left). */
const RETRIED: ReadonlySet<CampaigncallOutcome> = new Set(['busy', 'no-answer', 'failed', 'machine'])
/** Re-look when the campaign has max_concurrent_calls attempts open: about this long, spread. */
const FULL_RETRY_MS = 700
/** A pacing slot is taken (and waited for, holding the attempt) only when it starts within this; one further off: the job comes back then. */
const SLOT_HORIZON_MS = 2000
/** A call followed to its end is also re-read this often (a missed event on a restarted bus). */
const FOLLOW_POLL_MS = 5000
/** A call another node placed and never answered, still not final this long after its dial timeout: its node is gone. */
const NODE_LOST_GRACE_MS = 30_000

export interface CampaignDialerOptions {
  store: Store
  control: () => CallControl | null
  scheduler: JobScheduler
  log: Logger
  /** Dial jobs this node runs at once, all campaigns together (each holds its call): at least the largest max_concurrent_calls. */
  concurrency?: number | undefined
  /**
   * Whether another engine node still answers (store/node-relay.ts ping; several nodes on
   * one PostgreSQL). Absent on a single node: an attempt whose call another node placed is
   * then given up only when it was never answered, dial timeout + NODE_LOST_GRACE_MS after it.
   */
  nodeAlive?: ((nodeId: string) => Promise<boolean>) | undefined
}

interface DialPayload { campaignId: string; targetId: string }

export const dialJobKey = (campaignId: string, targetId: string): string => `${campaignId}:${targetId}`

/** The call's outcome as the campaign counts it. */
export function outcomeOf(call: Pick<Call, 'status' | 'endedReason'>): CampaigncallOutcome {
  switch (call.status) {
    case 'completed':
    case 'in-progress':
      if (call.endedReason === 'machine-detected') return 'machine'
      if (call.endedReason === 'voicemail-left') return 'voicemail'
      return 'answered'
    case 'busy': return 'busy'
    case 'no-answer': return 'no-answer'
    case 'canceled': return call.endedReason === 'no-answer' ? 'no-answer' : 'failed'
    default: return 'failed'
  }
}

const delayFor = (outplan: Outplan, outcome: CampaigncallOutcome): number => {
  const d = outplan.retryDelays
  const own = outcome === 'busy' ? d.busy : outcome === 'no-answer' ? d.no_answer : outcome === 'machine' ? d.machine : d.failed
  return own ?? outplan.tryIntervalMs
}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  if (ms <= 0 || signal.aborted) { resolve(); return }
  const done = () => { clearTimeout(timer); signal.removeEventListener('abort', done); resolve() }
  const timer = setTimeout(done, ms)
  signal.addEventListener('abort', done, { once: true })
})

/** What campaign events carry. */
export const campaignEventData = (c: Campaign) => ({
  campaign: { id: c.id, name: c.name, type: c.type, status: c.status, status_reason: c.statusReason, outdial_id: c.outdialId, outplan_id: c.outplanId },
})
const campaigncallEventData = (cc: Campaigncall) => ({
  campaigncall: {
    id: cc.id, campaign_id: cc.campaignId, outdial_target_id: cc.outdialTargetId, call_id: cc.callId, destination: cc.destination,
    try_count: cc.tryCount, status: cc.status, result: cc.result, outcome: cc.outcome,
  },
})

const STATUS_EVENTS = { run: 'campaign.started', pause: 'campaign.paused', stop: 'campaign.stopped' } as const

export class CampaignDialer {
  private readonly log: Logger

  constructor(private readonly o: CampaignDialerOptions) {
    this.log = o.log.child({ component: 'campaigns' })
  }

  private get store(): Store { return this.o.store }

  /** Registers the dial job's handler (the scheduler may already run). */
  start(): void {
    this.o.scheduler.handle(CAMPAIGN_DIAL_JOB, (job, ctx) => this.run(job, ctx), { concurrency: this.o.concurrency ?? 200 })
  }

  /**
   * Sets a campaign's status (POST /v1/campaigns/:id/status) with its event:
   * `run` seeds the targets the campaign has not seen and arms a job for
   * every target not done (due at its next try); `pause` and `stop` stop new
   * dials (calls under way go on; their jobs settle them).
   */
  async setStatus(c: Campaign, status: CampaignStatus, reason: string | null = null): Promise<Campaign> {
    const now = this.o.scheduler.clock.now()
    const after = await this.store.outbox.transaction(async (q, emit) => {
      const s = await this.store.campaigns.setStatus(c.id, status, reason, q)
      if (!s) return null
      if (s.before.status !== status) await emit(c.accountId, STATUS_EVENTS[status], campaignEventData(s.after))
      if (status === 'run') await this.arm(s.after, now, q)
      return s.after
    })
    if (!after) return c
    if (status === 'run') {
      this.o.scheduler.poke()
      // A campaign with nothing to dial (an empty outdial) is over at once when it should stop at the end.
      await this.stopIfFinished(after.id)
    }
    return (await this.store.campaigns.getById(c.id)) ?? after
  }

  /** New targets on an outdial: campaigns running on it dial them too. */
  async targetsAdded(outdialId: string): Promise<void> {
    const now = this.o.scheduler.clock.now()
    for (const c of await this.store.campaigns.runningOn(outdialId)) {
      await this.store.db.transaction((q) => this.arm(c, now, q))
    }
    this.o.scheduler.poke()
  }

  /** A running campaign's pace or hours changed: its waiting jobs look again now (each re-times itself). */
  async rearm(campaignId: string): Promise<void> {
    const c = await this.store.campaigns.getById(campaignId)
    if (!c || c.status !== 'run') return
    const now = this.o.scheduler.clock.now()
    await this.store.db.transaction((q) => this.arm(c, now, q))
    this.o.scheduler.poke()
  }

  private async arm(c: Campaign, now: Date, q: Queryable): Promise<void> {
    await this.store.campaigns.seedTargets(c, now, q)
    const targets = await this.store.campaigns.pendingTargets(c.id, q)
    await this.store.jobs.scheduleMany(targets.map((t) => ({
      kind: CAMPAIGN_DIAL_JOB, key: dialJobKey(c.id, t.targetId), accountId: c.accountId,
      dueAt: t.nextTryAt > now ? t.nextTryAt : now, payload: { campaignId: c.id, targetId: t.targetId } satisfies DialPayload,
    })), q)
  }

  /** One run of a target's dial job. */
  async run(job: Job, ctx: JobContext): Promise<JobResult> {
    const { campaignId, targetId } = job.payload as unknown as DialPayload
    const store = this.store
    const c = await store.campaigns.getById(campaignId)
    if (!c) return
    const log = this.log.child({ campaignId, targetId })

    // First an attempt an earlier run left open, whatever became of the target since: an open
    // attempt holds one of the campaign's max_concurrent_calls until it is settled.
    const open = await store.campaigncalls.open(campaignId, targetId)
    if (open) {
      const callId = open.callId ?? await store.campaigncalls.findPlacedCall(open.id)
      if (callId) {
        log.info({ campaigncallId: open.id, callId, jobAttempts: job.attempts }, 'settling an attempt an earlier run left open')
        return this.follow(c, open, callId, ctx)
      }
      await this.withdraw(open)
    }
    const progress = await store.campaigns.target(campaignId, targetId)
    const target = await store.outdials.targetById(targetId)
    if (!progress || progress.status === 'done' || !target) return
    if (c.status !== 'run') return

    const now = ctx.clock.now()
    if (progress.nextTryAt > now) return { runAt: progress.nextTryAt }
    const missing = await this.missingPart(c)
    if (missing) {
      log.warn({ reason: missing }, 'campaign paused: it would dial into nothing')
      await this.pauseFor(c, missing)
      return
    }
    if (c.operatingHours && !isOpen(c.operatingHours, now, target.timezone)) return { runAt: nextOpening(c.operatingHours, now, target.timezone) }
    const outplan = (await store.outplans.get(c.accountId, c.outplanId))!
    const attempt = progress.tryCount + 1

    // The destinations in turn, attempt after attempt; listed ones are skipped.
    const n = target.destinations.length
    const listed = await store.doNotCall.listed(c.accountId, target.destinations)
    const order = Array.from({ length: n }, (_, i) => (attempt - 1 + i) % n)
    const index = order.find((i) => !listed.has(target.destinations[i]!))
    const base = {
      accountId: c.accountId, campaignId, outplanId: c.outplanId, outdialId: c.outdialId, outdialTargetId: targetId,
      source: outplan.source.target, tryCount: attempt, nodeId: ctx.nodeId,
    }
    if (index === undefined) {
      await store.outbox.transaction(async (q, emit) => {
        const cc = await store.campaigncalls.create({ ...base, destination: target.destinations[(attempt - 1) % n]!, destinationIndex: (attempt - 1) % n, status: 'dialing' }, q)
        const done = await store.campaigncalls.finish(cc.id, 'fail', 'dnc-skipped', q)
        await emit(c.accountId, 'campaigncall.ended', campaigncallEventData(done!))
        await store.campaigns.markTarget(campaignId, targetId, { status: 'done', tryCount: attempt, outcome: 'dnc-skipped' }, q)
      })
      log.info({ destinations: target.destinations }, 'every destination is on the do-not-call list: skipped')
      await this.stopIfFinished(campaignId)
      return
    }
    const destination = target.destinations[index]!

    const reserved = await store.db.transaction(async (q) => {
      const locked = await store.campaigns.lockForDial(campaignId, q)
      if (!locked || locked.status !== 'run') return { kind: 'stopped' as const }
      if (await store.campaigns.openAttempts(campaignId, q) >= locked.maxConcurrentCalls) return { kind: 'full' as const }
      const { waitMs, taken } = await store.campaigns.takePacingSlot(campaignId, q, SLOT_HORIZON_MS)
      if (!taken) return { kind: 'later' as const, waitMs }
      const cc = await store.campaigncalls.create({ ...base, destination, destinationIndex: index, status: 'dialing' }, q)
      await store.campaigns.markTarget(campaignId, targetId, { status: 'dialing', tryCount: attempt }, q)
      return { kind: 'reserved' as const, cc, waitMs }
    })
    if (reserved.kind === 'stopped') return
    if (reserved.kind === 'full') return { runAt: new Date(ctx.clock.now().getTime() + FULL_RETRY_MS * (0.5 + Math.random())) }
    if (reserved.kind === 'later') return { runAt: new Date(ctx.clock.now().getTime() + reserved.waitMs) }
    const { cc } = reserved
    await sleep(reserved.waitMs, ctx.signal)
    const fresh = await store.campaigns.getById(campaignId)
    if (ctx.signal.aborted || !fresh || fresh.status !== 'run' || !(await store.outdials.targetById(targetId))) {
      // Paused, the contact deleted (or this node stops) before its slot: not dialled, as if never reserved.
      await this.withdraw(cc)
      return ctx.signal.aborted ? { runAt: ctx.clock.now() } : undefined
    }

    const control = this.o.control()
    let call: Call
    try {
      if (!control?.originate) throw new CallControlError('unavailable', 'this node cannot place calls')
      const req: OriginateRequest = {
        accountId: c.accountId, from: outplan.source.target, to: destination, timeoutSec: outplan.dialTimeoutMs / 1000, record: false,
        metadata: { campaignId, campaigncallId: cc.id, outdialTargetId: targetId },
        ...campaignProgram(fresh),
      }
      call = await control.originate(req)
    } catch (err) {
      const dnc = err instanceof CallControlError && (err.details as { code?: string } | undefined)?.code === DO_NOT_CALL_CODE
      log.warn({ err, destination }, dnc ? 'listed on the do-not-call list meanwhile: skipped' : 'the campaign call could not be placed')
      return this.settle(fresh, cc, dnc ? 'dnc-skipped' : 'failed', ctx)
    }
    await store.outbox.transaction(async (q, emit) => {
      await store.campaigncalls.placed(cc.id, call.id, q)
      await emit(c.accountId, 'campaigncall.created', campaigncallEventData({ ...cc, callId: call.id, status: 'progressing' }), call.id)
    })
    return this.follow(fresh, { ...cc, callId: call.id, status: 'progressing' }, call.id, ctx)
  }

  /** Holds the job until the attempt's call ends, then settles it; a stop of this node leaves it for the next run. */
  private async follow(c: Campaign, cc: Campaigncall, callId: string, ctx: JobContext): Promise<JobResult> {
    if (!cc.callId) {
      // Found by its metadata: its node died between placing it and noting it. Announced now.
      await this.store.outbox.transaction(async (q, emit) => {
        await this.store.campaigncalls.placed(cc.id, callId, q)
        await emit(c.accountId, 'campaigncall.created', campaigncallEventData({ ...cc, callId, status: 'progressing' }), callId)
      })
      cc = { ...cc, callId, status: 'progressing' }
    }
    const dialTimeoutMs = (await this.store.outplans.get(c.accountId, c.outplanId))?.dialTimeoutMs ?? 60_000
    const end = await this.callEnd(callId, ctx, dialTimeoutMs)
    if (!end) return { runAt: ctx.clock.now() }
    if (end.lost) {
      this.log.warn({ campaignId: c.id, campaigncallId: cc.id, callId, nodeId: end.call.nodeId, answered: !!end.call.answeredAt }, 'the node holding the campaign call is gone: attempt settled as node-lost')
      // Never answered: the contact was not reached, another attempt may follow; answered: reached, not called again.
      return this.settle(c, cc, 'node-lost', ctx, { retry: !end.call.answeredAt })
    }
    return this.settle(c, cc, outcomeOf(end.call), ctx)
  }

  /** The attempt's result; another attempt after the outcome's delay while attempts are left, else the target is done. */
  private async settle(c: Campaign, cc: Campaigncall, outcome: CampaigncallOutcome, ctx: JobContext, o: { retry?: boolean } = {}): Promise<JobResult> {
    const store = this.store
    const outplan = await store.outplans.get(c.accountId, c.outplanId)
    const retry = outplan !== null && (o.retry ?? RETRIED.has(outcome)) && cc.tryCount < outplan.maxAttempts
    const nextAt = retry ? new Date(ctx.clock.now().getTime() + delayFor(outplan, outcome)) : null
    const result = outcome === 'answered' || outcome === 'voicemail' ? 'success' : 'fail'
    await store.outbox.transaction(async (q, emit) => {
      const done = await store.campaigncalls.finish(cc.id, result, outcome, q)
      if (done) await emit(c.accountId, 'campaigncall.ended', campaigncallEventData(done), done.callId)
      await store.campaigns.markTarget(c.id, cc.outdialTargetId, nextAt
        ? { status: 'idle', tryCount: cc.tryCount, nextTryAt: nextAt, outcome }
        : { status: 'done', tryCount: cc.tryCount, outcome }, q)
    })
    this.log.info({ campaignId: c.id, campaigncallId: cc.id, callId: cc.callId, outcome, tryCount: cc.tryCount, retryAt: nextAt }, 'campaign attempt settled')
    if (nextAt) return { runAt: nextAt }
    await this.stopIfFinished(c.id)
  }

  /** An attempt reserved but never placed: it goes, and the target is as before it. */
  private async withdraw(cc: Campaigncall): Promise<void> {
    await this.store.db.transaction(async (q) => {
      await this.store.campaigncalls.withdraw(cc.id, q)
      await this.store.campaigns.markTarget(cc.campaignId, cc.outdialTargetId, { status: 'idle', tryCount: cc.tryCount - 1 }, q)
    })
  }

  /** What the campaign would dial into that is gone (its agent, flow or outplan deleted), or null. */
  private async missingPart(c: Campaign): Promise<string | null> {
    if (c.type === 'call' && (!c.agentId || !(await this.store.agents.get(c.accountId, c.agentId)))) return `agent ${c.agentId} was deleted`
    if (c.type === 'flow' && c.flowId && !(await this.store.flows.get(c.accountId, c.flowId))) return `flow ${c.flowId} was deleted`
    if (!(await this.store.outplans.get(c.accountId, c.outplanId))) return `outplan ${c.outplanId} was deleted`
    return null
  }

  private async pauseFor(c: Campaign, reason: string): Promise<void> {
    await this.transition(c.id, 'pause', reason)
  }

  /** A status change from `run` only (the dialer's own: finished, something missing), with its event. */
  private async transition(id: string, status: CampaignStatus, reason: string): Promise<void> {
    await this.store.outbox.transaction(async (q, emit: Emit) => {
      const s = await this.store.campaigns.setStatus(id, status, reason, q, ['run'])
      if (s && s.before.status !== s.after.status) await emit(s.after.accountId, STATUS_EVENTS[status], campaignEventData(s.after))
    })
  }

  /** end_handle stop: a running campaign with no target left to work stops (`status_reason` finished). */
  private async stopIfFinished(campaignId: string): Promise<void> {
    const c = await this.store.campaigns.getById(campaignId)
    if (!c || c.status !== 'run' || c.endHandle !== 'stop') return
    if (await this.store.campaigns.remaining(c) > 0) return
    this.log.info({ campaignId }, 'campaign finished: every target is done')
    await this.transition(campaignId, 'stop', 'finished')
  }

  /**
   * The call's final record once it ended (its event on the bus, or a re-read), or `lost` when
   * the node holding it is gone (its record would never end: dead-node cleanup is not this
   * module's); null when `ctx.signal` ends the wait first.
   */
  private callEnd(callId: string, ctx: JobContext, dialTimeoutMs: number): Promise<{ call: Call; lost?: true } | null> {
    const { bus, calls } = this.store
    const { signal } = ctx
    return new Promise((resolve) => {
      let settled = false
      let probing = false
      const finish = (end: { call: Call; lost?: true } | null) => {
        if (settled) return
        settled = true
        unsubscribe()
        clearInterval(poll)
        signal.removeEventListener('abort', onAbort)
        resolve(end)
      }
      const check = () => {
        void calls.getById(callId).then(async (call) => {
          if (!call) finish({ call: { status: 'failed', endedReason: 'call-record-missing' } as Call })
          else if (isFinal(call.status)) finish({ call })
          else if (call.nodeId && call.nodeId !== ctx.nodeId && !probing) {
            // Placed by another node (this is a re-run after its lease expired): is that node still there?
            probing = true
            try {
              if (await this.ownerGone(call, dialTimeoutMs)) {
                const again = await calls.getById(callId)
                finish(again && isFinal(again.status) ? { call: again } : { call: again ?? call, lost: true })
              }
            } finally { probing = false }
          }
        }).catch((err: unknown) => this.log.warn({ err, callId }, 'campaign call could not be read'))
      }
      const unsubscribe = bus.subscribe((e) => {
        if (e.callId === callId && (e.type === 'call.ended' || e.type === 'call.failed')) check()
      })
      const poll = setInterval(check, FOLLOW_POLL_MS)
      const onAbort = () => finish(null)
      signal.addEventListener('abort', onAbort, { once: true })
      if (signal.aborted) finish(null)
      else check()
    })
  }

  /** Whether the node that placed this unfinished call is gone: it does not answer a ping; without a way to ask, a call never answered long after its dial timeout. */
  private async ownerGone(call: Call, dialTimeoutMs: number): Promise<boolean> {
    if (this.o.nodeAlive) return !(await this.o.nodeAlive(call.nodeId!))
    if (call.answeredAt) return false
    return Date.now() - Date.parse(call.createdAt) > dialTimeoutMs + NODE_LOST_GRACE_MS
  }
}
