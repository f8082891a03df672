import type { Logger } from 'pino'
import type { Store } from '../../store/index.ts'
import { isFinal, type Call } from '../../store/calls.ts'
import type { ContactAgent } from '../../store/contact-agents.ts'
import type { DialAddress } from '../../store/groupcalls.ts'
import type { CallplaneEvent } from '../../store/outbox.ts'
import type { Queue } from '../../store/queues.ts'
import type { OfferResult, Queuecall, QueuecallEndReason } from '../../store/queuecalls.ts'
import type { CallControl } from '../call-control.ts'
import type { DialResult, DialTarget, GroupDial, LegResult } from '../group-dialer.ts'
import { resolveTargets, startGroupcall } from '../groupcalls.ts'

/**
 * The ACD: the callers waiting in queues on this node (the `queue_join`
 * verb's sessions) and the offers to contact agents.
 *
 * A caller's session lives where its call and flow run, because the agent's
 * leg must be bridged there. Offering takes agents with one atomic claim in
 * the store (`queuecalls.offer`: FOR UPDATE SKIP LOCKED), so nodes never
 * offer one agent twice; then the agent's addresses ring through GroupDial
 * (groupcalls.ts: the agent's ring_method, or every claimed agent at once for
 * ring-all), first answer wins. Unanswered → the agent is released, counted
 * as missed and skipped for this caller, and the next is offered. Answered →
 * `onAnswer` (the verb stops the wait flow), bridge, `service` until either
 * side hangs up, service_timeout passes or the queuecall is kicked.
 *
 * Dispatch runs when a caller joins, when an offer ends, and the moment an
 * agent becomes `available` (`contact_agent.status_changed` on the bus, from
 * any node); a slow sweep (SWEEP_MS) is only a safety net for changes that
 * announce nothing (an agent's tags edited).
 */

/** The safety-net dispatch while callers wait here. */
const SWEEP_MS = 2000
/** A caller every matching agent has missed may be offered to them again after this long. */
const RETRY_SKIPPED_MS = 3000
/**
 * Backstops for a caller in service whose agent leg's end is never seen (its
 * hang-up relayed to a node that is down, a lost event): after ending the
 * service from our side, the queuecall ends anyway this long after; and while
 * in service, the leg's record is read this often (an ended leg ends it).
 */
const SERVICE_END_GRACE_MS = 5000
const SERVICE_LEG_CHECK_MS = 30_000

export type QueueOutcome = { status: 'done' | 'abandoned'; endReason: QueuecallEndReason; queuecall: Queuecall | null; agentCallId: string | null; serviceAgentId: string | null }

export interface JoinRequest {
  call: Call
  queue: Queue
  control: CallControl
  log: Logger
  /** The verb's run: aborted when the caller hangs up or the run is stopped. */
  signal: AbortSignal
  /** Called when an agent answered, before the bridge: the caller must stop hearing the wait flow. */
  onAnswer(): Promise<void>
}

export interface AcdOptions {
  store: Store
  nodeId: string
  logger: Logger
}

export class Acd {
  private readonly sessions = new Map<string, QueueSession>()
  private readonly unsubscribe: () => void
  private readonly log: Logger
  private dispatching = false
  /** Agents freed by a queuecall ending here, while that transaction runs (endQueuecall). */
  private readonly handingOver = new Set<string>()
  private again = false
  private sweep: NodeJS.Timeout | null = null
  private closed = false

  constructor(readonly o: AcdOptions) {
    this.log = o.logger.child({ component: 'acd' })
    this.unsubscribe = o.store.bus.subscribe((e) => this.onEvent(e))
  }

  close(): void {
    this.closed = true
    this.unsubscribe()
    if (this.sweep) clearInterval(this.sweep)
    this.sweep = null
  }

  /** Callers waiting or talking here. */
  get size(): number { return this.sessions.size }

  /** A caller enters the queue (`queue.joined`); the session's `outcome` resolves when it leaves it. */
  async join(r: JoinRequest): Promise<QueueSession> {
    const qc = await this.o.store.queuecalls.join({ accountId: r.call.accountId, queueId: r.queue.id, callId: r.call.id, nodeId: this.o.nodeId })
    const s = new QueueSession(this, r, qc, r.log.child({ queuecallId: qc.id, queueId: r.queue.id }))
    this.sessions.set(qc.id, s)
    void s.outcome.finally(() => {
      this.sessions.delete(qc.id)
      if (!this.sessions.size && this.sweep) { clearInterval(this.sweep); this.sweep = null }
    })
    if (!this.sweep && !this.closed) {
      this.sweep = setInterval(() => this.dispatchSoon(), SWEEP_MS)
      this.sweep.unref()
    }
    s.start()
    this.dispatchSoon()
    return s
  }

  /** Offers waiting callers to free agents now (coalesced: one pass at a time, another right after if asked meanwhile). */
  dispatchSoon(): void {
    if (this.closed) return
    if (this.dispatching) { this.again = true; return }
    this.dispatching = true
    void (async () => {
      try {
        do {
          this.again = false
          await this.dispatch()
        } while (this.again)
      } catch (err) {
        this.log.warn({ err }, 'queue dispatch failed')
      } finally {
        this.dispatching = false
      }
    })()
  }

  private async dispatch(): Promise<void> {
    // Oldest caller first; once a queue found nobody free, its younger callers need not ask (nor once a claim
    // left no other free agent with the queue's tags). A caller that found nobody only because the free agents
    // had missed it (its skipped_agent_ids) says nothing about the younger ones: they may be offered those
    // agents (else one agent who keeps missing the oldest caller would leave every other caller of the queue
    // waiting while that agent sits free).
    const waiting = [...this.sessions.values()].filter((s) => s.state === 'waiting').sort((a, b) => a.joinedAt - b.joinedAt)
    const exhausted = new Set<string>()
    for (const s of waiting) {
      if (exhausted.has(s.queue.id) || s.state !== 'waiting') continue
      const skipped = s.queuecall.skipped_agent_ids.length > 0
      const r = await s.tryOffer()
      if (r === 'none' ? !skipped : r === 'last') exhausted.add(s.queue.id)
    }
  }

  /**
   * The caller `from` is leaving (its queuecall ends, `end` in the store):
   * the agent who served it is freed in that same transaction and, once
   * available, claimed for the oldest caller waiting here whose queue it
   * serves (`handOverTo`), without waiting for presence to see its leg end
   * and announce it. Other nodes still hear `contact_agent.status_changed`.
   */
  async endQueuecall(from: QueueSession, status: 'done' | 'abandoned', endReason: QueuecallEndReason): Promise<Queuecall | null> {
    let to: QueueSession | null = null
    const freedId = from.serviceAgent
    if (freedId) this.handingOver.add(freedId)
    try {
      const r = await this.o.store.queuecalls.end(from.id, status, endReason, (agent) => {
        to = this.handOverTo(agent)
        if (!to) return null
        to.state = 'claiming'
        return { qcId: to.id, tagIds: to.queue.tag_ids, routingMethod: to.queue.routing_method }
      })
      const next = to as QueueSession | null
      // Ended by someone else meanwhile: presence left this agent to us (accountsEndOf), recompute it on its own.
      if (!r.queuecall && freedId) void this.o.store.contactAgents.refresh(from.queuecall.accountId, freedId)
        .catch((e: unknown) => this.log.warn({ err: e }, 'contact agent presence could not be updated'))
      if (next && r.handedOver?.agents.length) {
        next.take(r.handedOver.agents)
      } else {
        if (next?.state === 'claiming') next.state = 'waiting'
        if (freedId) this.dispatchSoon()
      }
      return r.queuecall
    } catch (err) {
      const next = to as QueueSession | null
      if (next?.state === 'claiming') next.state = 'waiting'
      // Presence left this agent to us (accountsEndOf): recompute it on its own.
      if (freedId) {
        void this.o.store.contactAgents.refresh(from.queuecall.accountId, freedId)
          .catch((e: unknown) => this.log.warn({ err: e }, 'contact agent presence could not be updated'))
        this.dispatchSoon()
      }
      throw err
    } finally {
      if (freedId) this.handingOver.delete(freedId)
    }
  }

  /**
   * Whether the end of this agent leg is this node's to account for: the leg
   * of a caller in service here, whose queuecall's end recomputes the agent
   * (endQueuecall). Asked by presence as the leg's end is announced.
   */
  accountsEndOf(callId: string): boolean {
    for (const s of this.sessions.values()) if (s.state === 'service' && s.agentCallId === callId) return true
    return false
  }

  /** The oldest caller waiting here that `agent` may take: its queue's tags are the agent's, and it has not missed it. */
  private handOverTo(agent: ContactAgent): QueueSession | null {
    let best: QueueSession | null = null
    for (const s of this.sessions.values()) {
      if (s.state !== 'waiting' || s.queuecall.accountId !== agent.accountId) continue
      if (!s.queue.tag_ids.every((t) => agent.tag_ids.includes(t)) || s.queuecall.skipped_agent_ids.includes(agent.id)) continue
      if (!best || s.joinedAt < best.joinedAt) best = s
    }
    return best
  }

  private onEvent(e: CallplaneEvent): void {
    if (!this.sessions.size) return
    if (e.type === 'contact_agent.status_changed') {
      const agent = (e.data as { contact_agent?: ContactAgent }).contact_agent
      // An agent being handed over here (endQueuecall) is dispatched by that, in its transaction.
      if (agent?.status === 'available' && !this.handingOver.has(agent.id)) this.dispatchSoon()
    } else if (e.type === 'queue.kicked') {
      const qc = (e.data as { queuecall?: Queuecall }).queuecall
      if (qc) this.sessions.get(qc.id)?.kick()
    }
  }
}

/** `claiming`: agents are being claimed for it (a dispatch's claim or a hand-over); it is not offered twice. */
type SessionState = 'waiting' | 'claiming' | 'offering' | 'service' | 'ended'

export class QueueSession {
  state: SessionState = 'waiting'
  readonly joinedAt = Date.now()
  readonly outcome: Promise<QueueOutcome>
  private settle!: (o: QueueOutcome) => void
  private offerAbort: AbortController | null = null
  private dial: GroupDial | null = null
  private agentCall: Call | null = null
  private serviceAgentId: string | null = null
  private timers: NodeJS.Timeout[] = []
  private lastMissAt = 0
  private ending: QueuecallEndReason | null = null

  constructor(private readonly acd: Acd, private readonly r: JoinRequest, public queuecall: Queuecall, private readonly log: Logger) {
    this.outcome = new Promise((resolve) => { this.settle = resolve })
  }

  get queue(): Queue { return this.r.queue }
  /** The agent talking with this caller (or who did). */
  get serviceAgent(): string | null { return this.serviceAgentId }
  /** Its leg. */
  get agentCallId(): string | null { return this.agentCall?.id ?? null }
  get id(): string { return this.queuecall.id }

  start(): void {
    const onAbort = () => void this.callerGone()
    if (this.r.signal.aborted) { onAbort(); return }
    this.r.signal.addEventListener('abort', onAbort, { once: true })
    void this.outcome.finally(() => this.r.signal.removeEventListener('abort', onAbort))
    if (this.queue.wait_timeout > 0) this.timers.push(setTimeout(() => this.waitTimedOut(), this.queue.wait_timeout))
  }

  /**
   * One atomic claim of agents for this caller: `none` when none was free,
   * `last` when it took the last free agent with its queue's tags, else `claimed`.
   */
  async tryOffer(): Promise<'none' | 'claimed' | 'last'> {
    if (this.state !== 'waiting') return 'claimed'
    const store = this.acd.o.store
    this.state = 'claiming'
    let claim
    try {
      claim = await store.queuecalls.claim(this.id, { tagIds: this.queue.tag_ids, routingMethod: this.queue.routing_method })
    } finally {
      if (this.state === 'claiming' && !claim?.agents.length) this.state = 'waiting'
    }
    if (!claim.agents.length) {
      // Everyone free has missed this caller already: after a pause, they may be offered it again.
      if (this.state === 'waiting' && this.queuecall.skipped_agent_ids.length && Date.now() - this.lastMissAt >= RETRY_SKIPPED_MS) {
        await store.queuecalls.resetSkipped(this.id)
        this.queuecall = { ...this.queuecall, skipped_agent_ids: [] }
        this.acd.dispatchSoon()
      }
      return 'none'
    }
    this.take(claim.agents)
    return claim.more ? 'claimed' : 'last'
  }

  /** Rings the agents claimed for this caller (by tryOffer, or handed over as another caller left). */
  take(agents: ContactAgent[]): void {
    const store = this.acd.o.store
    if (this.state !== 'claiming') {
      // Left the queue while the claim ran: give them back.
      void store.queuecalls.offerEnded(this.id, agents.map((a) => ({ agentId: a.id, result: 'canceled' as const })))
        .catch((err: unknown) => this.log.warn({ err }, 'claimed agents could not be given back'))
      return
    }
    this.state = 'offering'
    // Set before anything is awaited: a caller who leaves (hangs up, kicked, wait_timeout) while the agents'
    // addresses are resolved or their legs placed cancels them through it (finish → abort).
    const abort = new AbortController()
    this.offerAbort = abort
    void this.runOffer(agents, abort).catch(async (err: unknown) => {
      this.log.error({ err }, 'queue offer failed')
      // Whatever was placed (an answered leg with nobody to talk to included) is hung up.
      if (this.state === 'offering') abort.abort()
      await store.queuecalls.offerEnded(this.id, agents.map((a) => ({ agentId: a.id, result: 'failed' as const }))).catch(() => {})
      if (this.state === 'offering') {
        this.state = 'waiting'
        this.offerAbort = null
        this.dial = null
        this.lastMissAt = Date.now()
        this.acd.dispatchSoon()
      }
    })
  }

  private async runOffer(agents: ContactAgent[], abort: AbortController): Promise<void> {
    const store = this.acd.o.store
    const call = this.r.call
    const destinations: DialAddress[] = []
    const owners: string[] = []
    const targets: DialTarget[] = []
    for (const a of agents) {
      const t = await resolveTargets(store, call.accountId, a.addresses)
      t.forEach((x, i) => { targets.push(x); owners.push(a.id); destinations.push(a.addresses[i]!) })
    }
    // The caller left meanwhile: finish() released the agents; nothing is dialled.
    if (this.state !== 'offering' || abort.signal.aborted) return
    const ringMethod = agents.length === 1 && agents[0]!.ring_method === 'linear' ? 'linear' : 'ring_all'
    this.log.debug({ agents: agents.map((a) => a.id), ringMethod }, 'offering the caller')
    const { dial } = await startGroupcall({ store, control: this.r.control, log: this.log, nodeId: this.acd.o.nodeId }, {
      accountId: call.accountId, source: { type: 'tel', target: call.from }, destinations, targets, ringMethod,
      timeoutMs: this.queue.ring_timeout, masterCallId: call.id, signal: abort.signal, abortedAnswerReason: 'queue-ended',
      // Presence need not recompute an offered agent when its leg starts: `ringing` holds until the offer ends.
      legMetadata: { queuecallId: this.id },
    })
    this.dial = dial
    const r = await dial.result
    if (r.answered && this.state === 'offering') {
      await this.answered(r, owners, agents)
      return
    }
    // Nobody answered (or the caller left meanwhile: finish() released the agents).
    this.dial = null
    this.offerAbort = null
    if (this.state !== 'offering') return
    const results = agents.map((a) => ({ agentId: a.id, result: resultOf(r.legs.filter((l) => owners[l.index] === a.id)) }))
    const qc = await store.queuecalls.offerEnded(this.id, results)
    if (qc) this.queuecall = qc
    if (results.some((x) => x.result !== 'canceled')) this.lastMissAt = Date.now()
    this.log.info({ results }, 'no agent took the caller')
    if (this.state === 'offering') this.state = 'waiting'
    this.acd.dispatchSoon()
  }

  private async answered(r: DialResult, owners: string[], agents: ContactAgent[]): Promise<void> {
    const store = this.acd.o.store
    const leg = r.answered!
    const agentId = owners[r.legs.find((l) => l.callId === leg.id)?.index ?? -1] ?? agents[0]!.id
    const others = agents.filter((a) => a.id !== agentId).map((a) => ({ agentId: a.id, result: 'canceled' as const }))
    const qc = await store.queuecalls.answered(this.id, agentId, others, leg.id)
    if (!qc || this.state !== 'offering') {
      // Kicked or abandoned while the agent picked up: the agent's leg goes.
      this.offerAbort?.abort()
      return
    }
    this.queuecall = qc
    this.state = 'service'
    this.agentCall = leg
    this.serviceAgentId = agentId
    this.log.info({ agentId, agentCallId: leg.id }, 'an agent answered')
    for (const t of this.timers) clearTimeout(t)
    this.timers = []
    try {
      await this.r.onAnswer()
      const bridge = this.r.control.bridge
      if (!bridge) throw new Error('this engine cannot bridge calls')
      await bridge(this.r.call, leg)
    } catch (err) {
      this.log.warn({ err, agentCallId: leg.id }, 'the agent could not be bridged to the caller')
      this.offerAbort?.abort()
      await this.finish('done', 'bridge-failed')
      return
    }
    if (this.queue.service_timeout > 0) this.timers.push(setTimeout(() => this.endService('service-timeout'), this.queue.service_timeout))
    const check = setInterval(() => void this.checkLeg(leg.id), SERVICE_LEG_CHECK_MS)
    check.unref()
    this.timers.push(check)
    const dial = this.dial!
    await Promise.race([dial.legEnded(leg.id).catch(() => null), this.outcome])
    await this.finish('done', this.ending ?? 'agent-hangup')
  }

  /** The service's backstop: the agent's leg has ended without its end reaching this dial. */
  private async checkLeg(callId: string): Promise<void> {
    if (this.state !== 'service') return
    const leg = await this.acd.o.store.calls.getById(callId).catch(() => null)
    if (leg && isFinal(leg.status) && this.state === 'service') {
      this.log.warn({ agentCallId: callId }, 'the agent\'s leg ended unseen: the caller leaves service')
      await this.finish('done', this.ending ?? 'agent-hangup')
    }
  }

  /** Ends the talk from our side: the agent's leg is hung up; the caller's flow goes on. */
  private endService(reason: QueuecallEndReason): void {
    if (this.state !== 'service') return
    this.ending ??= reason
    this.dial?.abort('canceled', reason === 'caller-hangup' ? 'queue-ended' : reason)
    // The hang-up may never take (relayed to a node that is down): the queuecall does not stay in service for it.
    const grace = setTimeout(() => {
      if (this.state !== 'service') return
      this.log.warn({ agentCallId: this.agentCall?.id, reason }, 'the agent\'s leg did not end after the service did: the caller leaves service anyway')
      void this.finish('done', this.ending ?? reason)
    }, SERVICE_END_GRACE_MS)
    grace.unref()
    this.timers.push(grace)
  }

  /** The caller hung up or the flow was stopped. */
  private async callerGone(): Promise<void> {
    const now = await this.acd.o.store.calls.getById(this.r.call.id).catch(() => null)
    const reason: QueuecallEndReason = !now || isFinal(now.status) ? 'caller-hangup' : 'flow-stopped'
    if (this.state === 'service') { this.endService(reason); return }
    await this.finish('abandoned', reason)
  }

  private waitTimedOut(): void {
    if (this.state === 'waiting' || this.state === 'claiming' || this.state === 'offering') void this.finish('abandoned', 'wait-timeout')
  }

  /** queue.kicked reached this node: the caller leaves the queue (an agent talking with it is hung up). */
  kick(): void {
    if (this.state === 'service') { this.endService('kicked'); return }
    if (this.state !== 'ended') void this.finish('done', 'kicked')
  }

  private async finish(status: 'done' | 'abandoned', endReason: QueuecallEndReason): Promise<void> {
    if (this.state === 'ended') return
    this.state = 'ended'
    for (const t of this.timers) clearTimeout(t)
    this.timers = []
    // Ringing agents are canceled (a leg answered too late is hung up).
    this.offerAbort?.abort()
    let qc: Queuecall | null = null
    try {
      qc = await this.acd.endQueuecall(this, status, endReason)
    } catch (err) {
      this.log.error({ err }, 'the queuecall\'s end could not be stored')
    }
    this.log.info({ status: qc?.status ?? status, endReason }, 'the caller left the queue')
    this.dial?.close()
    // The store's word wins: a caller an agent had answered ends `done`, never `abandoned`.
    const final = qc?.status === 'done' || qc?.status === 'abandoned' ? qc.status : status
    this.settle({ status: final, endReason, queuecall: qc ?? this.queuecall, agentCallId: this.agentCall?.id ?? null, serviceAgentId: this.serviceAgentId })
  }
}

/** How one agent's legs of an unanswered offer went: rang out beats refused beats could not be placed. */
function resultOf(legs: LegResult[]): OfferResult {
  const seen = legs.map((l) => (l.endedReason === 'no-answer' || l.status === 'no-answer' ? 'no-answer' : l.status === 'busy' ? 'busy' : l.status === 'canceled' ? 'canceled' : 'failed'))
  for (const r of ['no-answer', 'busy', 'failed'] as const) if (seen.includes(r)) return r
  return 'canceled'
}
