import type { Logger } from 'pino'
import type { Store } from '../../store/index.ts'
import { isFinal, type Call } from '../../store/calls.ts'
import type { Job } from '../../store/jobs.ts'
import type { JobContext, JobResult, JobScheduler } from '../../store/job-scheduler.ts'
import { CAMPAIGN_DIAL_JOB, type Campaign, type CampaignStatus } from '../../store/campaigns.ts'
import type { Campaigncall, CampaigncallOutcome } from '../../store/campaigncalls.ts'
import type { Outplan } from '../../store/outplans.ts'
import type { Emit } from '../../store/outbox.ts'
import type { Queryable } from '../../store/common.ts'
import { CallControlError, type CallControl, type OriginateRequest } from '../call-control.ts'
import { isOpen, nextOpening } from './operating-hours.ts'
import { DO_NOT_CALL_CODE } from './do-not-call.ts'
import { campaignProgram } from './campaign-program.ts'
import { CampaignPacer } from './campaign-pacer.ts'
import { callOutcome } from './call-outcome.ts'

/**
 * The campaign dialer, on the durable job scheduler: one job per campaign
 * target (`campaign.dial`, key `<campaign>:<target>`), due when its next
 * attempt is. A run of the job:
 *
 * 1. reads what it needs in one statement (CampaignRepository.dialContext:
 *    the campaign, the target's progress, its destinations and zone, its
 *    open attempt, its do-not-call entries);
 * 2. settles an attempt an earlier run left open (its node died, or stopped):
 *    the attempt's call (by `call_id`, else by the call's metadata) is
 *    followed to its end instead of dialled again (a call whose node is gone,
 *    `nodeAlive`, is settled `node-lost`); one never placed is withdrawn;
 * 3. drops the job when the campaign is not `run` (pause/stop: `run` re-arms
 *    every target from `campaign_targets`, due one pacing gap apart), and
 *    re-times itself to the next opening outside operating hours (the
 *    contact's zone when known) and to the target's own due time;
 * 4. skips destinations on the do-not-call list (every one listed: the
 *    target is done, outcome `dnc-skipped`, never dialled);
 * 5. waits its turn at this node's pacer of the campaign (campaign-pacer.ts),
 *    which reserves the attempt just before its slot in one transaction on
 *    the campaign row (still `run`, its agent or flow and outplan still
 *    there — else it pauses with a `status_reason` —, fewer open attempts
 *    than `max_concurrent_calls`, the shared pacing slot `next_dial_at`, the
 *    campaigncall `dialing`) and hands it over at the slot; jobs that
 *    cannot dial yet wait there, none comes back to find its slot taken;
 * 6. originates (metadata `campaignId`, `campaigncallId`) and holds the job
 *    while the call rings and talks, so a node killed mid-call releases it
 *    by lease expiry and the next run settles it;
 * 7. settles: the outcome gives the result; busy / no-answer / failed /
 *    machine are tried again after the outplan's delay for that outcome
 *    (the job re-timed) while attempts are left; otherwise the target is
 *    done, and a campaign with `end_handle` stop and nothing left stops.
 *
 * The node's dial job concurrency follows its campaigns: at least each
 * one's max_concurrent_calls plus its waiting room (never under the
 * configured base, 200), so a ceiling of 1000 is honoured by one node.
 *
 * Business time (`ctx.clock`) decides operating hours and retry times, so
 * tests move it; pacing is real time.
 */

export { CAMPAIGN_DIAL_JOB }

/** Outcomes that get another attempt (when the outplan has attempts left). */
const RETRIED: ReadonlySet<CampaigncallOutcome> = new Set(['busy', 'no-answer', 'failed', 'machine'])

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
   * then given up only when it was never answered, 30 s past its dial timeout (call-outcome.ts).
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

/** Armed targets fall due this much faster than the pace, and ARM_LEAD_MS early. */
const ARM_RATE = 1.1
const ARM_LEAD_MS = 2000
/** Dial jobs a node runs at once when its campaigns need fewer. */
const DEFAULT_CONCURRENCY = 200
/** A campaign none of whose jobs ran here for this long is forgotten (its pacer and its share of the concurrency). */
const PACER_IDLE_MS = 60_000
/** Waiting room per campaign the node's dial job concurrency adds to its ceiling (two seconds of its pace, at least 10). */
const waitersBound = (c: Pick<Campaign, 'callsPerSecond'>): number => Math.max(10, Math.ceil(2 * c.callsPerSecond))

export class CampaignDialer {
  private readonly log: Logger
  private readonly pacers = new Map<string, CampaignPacer>()
  /** Per campaign: the dial jobs it may hold on this node (its ceiling plus its waiting room). */
  private readonly needs = new Map<string, number>()
  /** When a job of each campaign last ran here. */
  private readonly seen = new Map<string, number>()
  private lastSweep = Date.now()

  constructor(private readonly o: CampaignDialerOptions) {
    this.log = o.log.child({ component: 'campaigns' })
  }

  private get store(): Store { return this.o.store }

  /** Registers the dial job's handler (the scheduler may already run). */
  start(): void {
    this.o.scheduler.handle(CAMPAIGN_DIAL_JOB, (job, ctx) => this.run(job, ctx), { concurrency: this.o.concurrency ?? DEFAULT_CONCURRENCY })
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
      // Paused or stopped: its idle dial jobs go (`run` re-arms them), instead of each running once more to drop itself.
      if (status !== 'run') await this.store.campaigns.dropIdleDialJobs(c.id, q)
      if (s.before.status !== status) await emit(c.accountId, STATUS_EVENTS[status], campaignEventData(s.after))
      if (status === 'run') await this.arm(s.after, now, q)
      return s.after
    })
    if (!after) return c
    if (status === 'run') {
      this.o.scheduler.poke()
      // A campaign with nothing to dial (an empty outdial) is over at once when it should stop at the end.
      await this.stopIfFinished(after)
    } else {
      // Nobody waiting at this node's pacer dials now, nor the attempt it reserved for its next slot.
      this.pacers.get(c.id)?.halt()
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
    this.pacers.get(campaignId)?.wake()
  }

  private async arm(c: Campaign, now: Date, q: Queryable): Promise<void> {
    await this.store.campaigns.seedTargets(c, now, q)
    const targets = await this.store.campaigns.pendingTargets(c.id, q)
    // Targets due now fall due at the campaign's pace, a little faster (ARM_RATE) and ARM_LEAD_MS
    // ahead: a few seconds of dials wait at the pacer (a late job does not cost its slot), and
    // the rest wait in the jobs table instead of crowding the node (its concurrency bounds them).
    const gapMs = 1000 / c.callsPerSecond / ARM_RATE
    let i = 0
    await this.store.jobs.scheduleMany(targets.map((t) => ({
      kind: CAMPAIGN_DIAL_JOB, key: dialJobKey(c.id, t.targetId), accountId: c.accountId,
      dueAt: t.nextTryAt > now ? t.nextTryAt : new Date(now.getTime() + Math.max(0, (i++) * gapMs - ARM_LEAD_MS)), payload: { campaignId: c.id, targetId: t.targetId } satisfies DialPayload,
    })), q)
  }

  /** The pacer of a campaign on this node (created on first use; idle ones are forgotten); the dial jobs' concurrency follows what the pacers' campaigns need. */
  private pacerFor(c: Campaign): CampaignPacer {
    let p = this.pacers.get(c.id)
    if (!p) {
      p = new CampaignPacer(this.store.campaigns, (err) => this.log.warn({ err, campaignId: c.id }, 'a dial reservation failed; trying again'))
      this.pacers.set(c.id, p)
    }
    return p
  }

  /** A running campaign this node works: its share of the dial job concurrency (idle campaigns' shares are dropped after a while). */
  private noteNeed(c: Campaign): void {
    const now = Date.now()
    this.seen.set(c.id, now)
    const need = c.maxConcurrentCalls + waitersBound(c)
    if (this.needs.get(c.id) !== need) { this.needs.set(c.id, need); this.followNeeds() }
    if (now - this.lastSweep > PACER_IDLE_MS) {
      this.lastSweep = now
      for (const [id, at] of this.seen) {
        if (now - at <= PACER_IDLE_MS || (this.pacers.get(id)?.waiting ?? 0) > 0) continue
        this.seen.delete(id); this.needs.delete(id); this.pacers.delete(id)
      }
      this.followNeeds()
    }
  }

  /** Dial jobs this node runs at once: every campaign it works gets its ceiling plus its waiting room (never under the configured base). */
  private followNeeds(): void {
    let sum = 0
    for (const n of this.needs.values()) sum += n
    const want = Math.max(this.o.concurrency ?? DEFAULT_CONCURRENCY, sum)
    if (this.o.scheduler.concurrencyOf(CAMPAIGN_DIAL_JOB) !== want) this.o.scheduler.setConcurrency(CAMPAIGN_DIAL_JOB, want)
  }

  /** One run of a target's dial job. */
  async run(job: Job, ctx: JobContext): Promise<JobResult> {
    const { campaignId, targetId } = job.payload as unknown as DialPayload
    const store = this.store
    // Campaign, progress, contact, open attempt and do-not-call entries: one statement.
    let dc = await store.campaigns.dialContext(campaignId, targetId)
    if (!dc) return
    const log = this.log.child({ campaignId, targetId })

    // First an attempt an earlier run left open, whatever became of the target since: an open
    // attempt holds one of the campaign's max_concurrent_calls until it is settled.
    if (dc.open) {
      const open = dc.open
      const callId = open.callId ?? await store.campaigncalls.findPlacedCall(open.id)
      if (callId) {
        log.info({ campaigncallId: open.id, callId, jobAttempts: job.attempts }, 'settling an attempt an earlier run left open')
        return this.follow(dc.campaign, open, callId, ctx)
      }
      await this.withdraw(open)
      dc = await store.campaigns.dialContext(campaignId, targetId)
      if (!dc) return
    }
    const { campaign: c, progress, target } = dc
    if (!progress || progress.status === 'done' || !target) return
    if (c.status !== 'run') return
    this.noteNeed(c)

    const now = ctx.clock.now()
    if (progress.nextTryAt > now) return { runAt: progress.nextTryAt }
    if (c.operatingHours && !isOpen(c.operatingHours, now, target.timezone)) return { runAt: nextOpening(c.operatingHours, now, target.timezone) }
    const attempt = progress.tryCount + 1

    // The destinations in turn, attempt after attempt; listed ones are skipped.
    const n = target.destinations.length
    const listed = dc.listed
    const order = Array.from({ length: n }, (_, i) => (attempt - 1 + i) % n)
    const index = order.find((i) => !listed.has(target.destinations[i]!))
    if (index === undefined) {
      const outplan = await store.outplans.get(c.accountId, c.outplanId)
      if (!outplan) { await this.pauseFor(c, `outplan ${c.outplanId} was deleted`); return }
      await store.outbox.transaction(async (q, emit) => {
        const cc = await store.campaigncalls.create({
          accountId: c.accountId, campaignId, outplanId: c.outplanId, outdialId: c.outdialId, outdialTargetId: targetId,
          source: outplan.source.target, tryCount: attempt, nodeId: ctx.nodeId,
          destination: target.destinations[(attempt - 1) % n]!, destinationIndex: (attempt - 1) % n, status: 'dialing',
        }, q)
        const done = await store.campaigncalls.finish(cc.id, 'fail', 'dnc-skipped', q)
        await emit(c.accountId, 'campaigncall.ended', campaigncallEventData(done!))
        await store.campaigns.markTarget(campaignId, targetId, { status: 'done', tryCount: attempt, outcome: 'dnc-skipped' }, q)
      })
      log.info({ destinations: target.destinations }, 'every destination is on the do-not-call list: skipped')
      await this.stopIfFinished(c)
      return
    }
    const destination = target.destinations[index]!

    // Its turn at this node's pacer of the campaign, which reserves the attempt just before its slot.
    const pacer = this.pacerFor(c)
    const answer = await pacer.acquire({ campaignId, targetId, destination, destinationIndex: index, tryCount: attempt, nodeId: ctx.nodeId }, ctx.signal)
    switch (answer.kind) {
      case 'stopped': return ctx.signal.aborted ? { runAt: ctx.clock.now() } : undefined
      case 'gone': return
      case 'withdraw':
        // Paused on this node, the contact deleted, or this node stops before its slot: not dialled, as if never reserved.
        await this.withdraw(answer.cc)
        return ctx.signal.aborted ? { runAt: ctx.clock.now() } : undefined
      case 'missing':
        log.warn({ reason: answer.reason }, 'campaign paused: it would dial into nothing')
        await this.pauseFor(c, answer.reason)
        return
    }
    const { cc, campaign: fresh, outplan } = answer

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
      return this.settle(fresh, cc, dnc ? 'dnc-skipped' : 'failed', ctx, { outplan })
    }
    // Followed from now (its end may come while the attempt is noted).
    const end = this.callEnd(call.id, ctx, outplan.dialTimeoutMs, isFinal(call.status) ? call : null)
    await store.outbox.transaction(async (q, emit) => {
      await store.campaigncalls.placed(cc.id, call.id, q)
      await emit(c.accountId, 'campaigncall.created', campaigncallEventData({ ...cc, callId: call.id, status: 'progressing' }), call.id)
    })
    return this.followed(fresh, { ...cc, callId: call.id, status: 'progressing' }, call.id, ctx, await end, outplan)
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
    const outplan = await this.store.outplans.get(c.accountId, c.outplanId)
    const end = await this.callEnd(callId, ctx, outplan?.dialTimeoutMs ?? 60_000, 'check')
    return this.followed(c, cc, callId, ctx, end, outplan)
  }

  /** The attempt's call ended (or its node is gone, or this run was aborted: null): settled. */
  private async followed(c: Campaign, cc: Campaigncall, callId: string, ctx: JobContext, end: { call: Call; lost?: true } | null, outplan: Outplan | null): Promise<JobResult> {
    if (!end) return { runAt: ctx.clock.now() }
    if (end.lost) {
      this.log.warn({ campaignId: c.id, campaigncallId: cc.id, callId, nodeId: end.call.nodeId, answered: !!end.call.answeredAt }, 'the node holding the campaign call is gone: attempt settled as node-lost')
      // Never answered: the contact was not reached, another attempt may follow; answered: reached, not called again.
      return this.settle(c, cc, 'node-lost', ctx, { retry: !end.call.answeredAt, outplan })
    }
    return this.settle(c, cc, outcomeOf(end.call), ctx, { outplan })
  }

  /** The attempt's result; another attempt after the outcome's delay while attempts are left, else the target is done. */
  private async settle(c: Campaign, cc: Campaigncall, outcome: CampaigncallOutcome, ctx: JobContext, o: { retry?: boolean; outplan?: Outplan | null } = {}): Promise<JobResult> {
    const store = this.store
    const outplan = o.outplan !== undefined ? o.outplan : await store.outplans.get(c.accountId, c.outplanId)
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
    // One attempt fewer open: a pacer waiting at the ceiling looks again now.
    this.pacers.get(c.id)?.wake()
    this.log.debug({ campaignId: c.id, campaigncallId: cc.id, callId: cc.callId, outcome, tryCount: cc.tryCount, retryAt: nextAt }, 'campaign attempt settled')
    if (nextAt) return { runAt: nextAt }
    await this.stopIfFinished(c)
  }

  /** An attempt reserved but never placed: it goes, and the target is as before it. */
  private async withdraw(cc: Campaigncall): Promise<void> {
    await this.store.db.transaction(async (q) => {
      await this.store.campaigncalls.withdraw(cc.id, q)
      await this.store.campaigns.markTarget(cc.campaignId, cc.outdialTargetId, { status: 'idle', tryCount: cc.tryCount - 1 }, q)
    })
    this.pacers.get(cc.campaignId)?.wake()
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
  private async stopIfFinished(c: Pick<Campaign, 'id' | 'endHandle'>): Promise<void> {
    if (c.endHandle !== 'stop' || !(await this.store.campaigns.finished(c.id))) return
    this.log.info({ campaignId: c.id }, 'campaign finished: every target is done')
    await this.transition(c.id, 'stop', 'finished')
  }

  /**
   * The call's final record once it ended, or `lost` when the node holding it is gone
   * (call-outcome.ts: the one wait for a placed call's end); null when `ctx.signal` ends the wait first.
   */
  private async callEnd(callId: string, ctx: JobContext, dialTimeoutMs: number, first: 'check' | Call | null): Promise<{ call: Call; lost?: true } | null> {
    const end = await callOutcome(this.store, callId, ctx.signal, { nodeId: ctx.nodeId, ringTimeoutSec: dialTimeoutMs / 1000, nodeAlive: this.o.nodeAlive }, { first })
    if (!end) return null
    const { lost, ...call } = end
    return lost ? { call, lost } : { call }
  }
}
