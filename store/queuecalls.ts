import { randomUUID } from 'node:crypto'
import { pageQuery, iso, type Page, type PageRequest, type Queryable } from './common.ts'
import { onCallCondition, refreshStatuses, toContactAgent, type ContactAgent, type ContactAgentRow } from './contact-agents.ts'
import { StoreError } from './errors.ts'
import type { Emit, Outbox } from './outbox.ts'
import type { RoutingMethod } from './queues.ts'

/**
 * Queuecalls (VoipBin QueueManagerQueuecall): one caller in one queue, and
 * every move of it with its event in one transaction:
 *
 *   waiting ─(agents claimed)─► connecting ─(an agent answered)─► service ─► done
 *      ▲                            │
 *      └──(nobody answered)─────────┘
 *   waiting/connecting ─(caller hung up, wait_timeout)─► abandoned
 *   any live ─(kick)─► kicking ─► done (end_reason kicked)
 *
 * Offering is the contended step: `offer` claims available agents with
 * `FOR UPDATE SKIP LOCKED`, so two nodes (or two callers) never offer one
 * agent two calls; the claimed agents are `ringing` until `answered` or
 * `offerEnded` releases them.
 */

export type QueuecallStatus = 'initiating' | 'waiting' | 'connecting' | 'kicking' | 'service' | 'done' | 'abandoned'
export const LIVE_QUEUECALL = ['initiating', 'waiting', 'connecting', 'kicking', 'service'] as const

/** Why a queuecall ended. */
export type QueuecallEndReason = 'agent-hangup' | 'caller-hangup' | 'service-timeout' | 'wait-timeout' | 'kicked' | 'flow-stopped' | 'bridge-failed' | 'node-restart'

export interface Queuecall {
  id: string
  accountId: string
  queue_id: string
  reference_type: 'call'
  /** The caller's call. */
  reference_id: string
  status: QueuecallStatus
  end_reason: QueuecallEndReason | null
  /** The agent who answered. */
  service_agent_id: string | null
  /** The agents ringing for it now. */
  offered_agent_ids: string[]
  /** Agents that did not answer it: not offered it again until every other was tried. */
  skipped_agent_ids: string[]
  /** Milliseconds from joining to the agent's answer (or to its end, or now). */
  duration_waiting: number
  /** Milliseconds with the agent (so far). */
  duration_service: number
  tm_service: string | null
  tm_end: string | null
  nodeId: string | null
  createdAt: string
  updatedAt: string
}

interface Row {
  id: string; seq: string; account_id: string; queue_id: string; reference_type: string; reference_id: string; status: string; end_reason: string | null
  service_agent_id: string | null; offered_agent_ids: string[]; skipped_agent_ids: string[]; node_id: string | null; created_at: Date
  tm_service: Date | null; tm_end: Date | null; updated_at: Date
}
const toQueuecall = (r: Row): Queuecall => {
  const now = Date.now()
  const joined = r.created_at.getTime()
  const served = r.tm_service?.getTime() ?? null
  const ended = r.tm_end?.getTime() ?? null
  return {
    id: r.id, accountId: r.account_id, queue_id: r.queue_id, reference_type: 'call', reference_id: r.reference_id, status: r.status as QueuecallStatus,
    end_reason: r.end_reason as QueuecallEndReason | null, service_agent_id: r.service_agent_id, offered_agent_ids: r.offered_agent_ids,
    skipped_agent_ids: r.skipped_agent_ids, duration_waiting: Math.max(0, (served ?? ended ?? now) - joined),
    duration_service: served === null ? 0 : Math.max(0, (ended ?? now) - served), tm_service: iso(r.tm_service), tm_end: iso(r.tm_end),
    nodeId: r.node_id, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
  }
}

/** The order each routing method offers available agents in (alias `a`). */
const ORDER: Record<RoutingMethod, string> = {
  random: 'random()',
  // The agent offered longest ago first: each in turn.
  'round-robin': 'a.last_offered_at ASC NULLS FIRST, a.seq',
  // The agent available the longest first.
  'longest-idle': 'a.status_since ASC, a.seq',
  'ring-all': 'a.seq',
}
/** ring-all rings at most this many agents at once. */
export const RING_ALL_MAX = 20

export interface ClaimOptions { tagIds: string[]; routingMethod: RoutingMethod }
/** The agents claimed (none: []), and whether other available agents carrying the tags were left. */
export interface Claim { agents: ContactAgent[]; more: boolean }

/**
 * The claim, in one statement inside the caller's transaction: the waiting
 * queuecall's row locked, the agents picked (SKIP LOCKED, routing order) and
 * made `ringing`, the queuecall `connecting` with them; each claimed agent's
 * status change announced.
 */
async function claimAgents(c: Queryable, emit: Emit, qcId: string, o: ClaimOptions): Promise<Claim> {
  const { rows } = await c.query<ContactAgentRow & { more: boolean }>(
    `WITH qc AS (SELECT id, account_id, skipped_agent_ids FROM queuecalls WHERE id = $1 AND status = 'waiting' FOR UPDATE),
     picked AS (
       SELECT a.id FROM contact_agents a, qc
        WHERE a.account_id = qc.account_id AND a.status = 'available' AND a.tag_ids @> $2::text[] AND NOT (a.id = ANY(qc.skipped_agent_ids))
          AND NOT ${onCallCondition('a')}
        ORDER BY ${ORDER[o.routingMethod]} LIMIT $3
        FOR UPDATE OF a SKIP LOCKED),
     claimed AS (
       UPDATE contact_agents a SET offered_queuecall_id = $1, status = 'ringing', status_since = now(), last_offered_at = now(), updated_at = now()
         FROM picked WHERE a.id = picked.id
       RETURNING a.*),
     moved AS (
       UPDATE queuecalls q SET status = 'connecting', offered_agent_ids = (SELECT array_agg(id ORDER BY seq) FROM claimed), updated_at = now()
         FROM qc WHERE q.id = qc.id AND EXISTS (SELECT 1 FROM claimed) RETURNING q.id)
     SELECT claimed.*, EXISTS (
       SELECT 1 FROM contact_agents m, qc WHERE m.account_id = qc.account_id AND m.status = 'available' AND m.tag_ids @> $2::text[]
          AND NOT (m.id IN (SELECT id FROM picked))) AS more
       FROM claimed ORDER BY claimed.seq`,
    [qcId, o.tagIds, o.routingMethod === 'ring-all' ? RING_ALL_MAX : 1])
  const agents = rows.map(toContactAgent)
  for (const a of agents) await emit(a.accountId, 'contact_agent.status_changed', { contact_agent: a, previous_status: 'available' })
  return { agents, more: rows[0]?.more ?? false }
}

/** How an offer ended for one agent. */
export type OfferResult = 'answered' | 'no-answer' | 'busy' | 'failed' | 'canceled'
/** Results that count as the agent not taking the call (missed_count, skipped for this caller). */
const MISSED = new Set<OfferResult>(['no-answer', 'busy', 'failed'])

export class QueuecallRepository {
  constructor(private readonly db: Queryable, private readonly outbox: Outbox) {}

  async get(accountId: string, id: string): Promise<Queuecall | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM queuecalls WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toQueuecall(rows[0]) : null
  }

  async getById(id: string): Promise<Queuecall | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM queuecalls WHERE id = $1', [id])
    return rows[0] ? toQueuecall(rows[0]) : null
  }

  /** The call's live queuecall (the newest, if any). */
  async liveByReference(accountId: string, callId: string): Promise<Queuecall | null> {
    const { rows } = await this.db.query<Row>(
      `SELECT * FROM queuecalls WHERE account_id = $1 AND reference_id = $2 AND status NOT IN ('done', 'abandoned') ORDER BY seq DESC LIMIT 1`, [accountId, callId])
    return rows[0] ? toQueuecall(rows[0]) : null
  }

  list(accountId: string, filter: { queueId?: string | undefined; status?: QueuecallStatus | undefined; referenceId?: string | undefined }, page: PageRequest): Promise<Page<Queuecall>> {
    const where: string[] = []
    const params: unknown[] = []
    if (filter.queueId) { params.push(filter.queueId); where.push(`queue_id = $${params.length + 1}`) }
    if (filter.status) { params.push(filter.status); where.push(`status = $${params.length + 1}`) }
    if (filter.referenceId) { params.push(filter.referenceId); where.push(`reference_id = $${params.length + 1}`) }
    return pageQuery<Row, Queuecall>(this.db, { table: 'queuecalls', accountId, order: 'desc', page, where, params }, toQueuecall)
  }

  /** 1 + the callers of the same queue waiting since before it (its place in line). */
  async position(id: string): Promise<number> {
    const { rows } = await this.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM queuecalls o, queuecalls me WHERE me.id = $1 AND o.queue_id = me.queue_id AND o.seq < me.seq
         AND o.status IN ('initiating', 'waiting', 'connecting')`, [id])
    return Number(rows[0]?.n ?? 0) + 1
  }

  /** A caller enters the queue: `waiting`, the queue's incoming counter, `queue.joined`. */
  async join(input: { accountId: string; queueId: string; callId: string; nodeId: string | null }): Promise<Queuecall> {
    return this.outbox.transaction(async (c, emit) => {
      // The queue's row first: it locks the queue against a concurrent delete (QueueRepository.remove), which
      // then sees this caller; a queue deleted meanwhile is refused instead of leaving a caller in nothing.
      const counted = await c.query('UPDATE queues SET total_incoming_count = total_incoming_count + 1 WHERE account_id = $1 AND id = $2', [input.accountId, input.queueId])
      if (!counted.rowCount) throw new StoreError(404, 'not_found', `queue ${input.queueId} does not exist in this account`)
      const { rows } = await c.query<Row>(
        `INSERT INTO queuecalls (id, account_id, queue_id, reference_id, status, node_id) VALUES ($1, $2, $3, $4, 'waiting', $5) RETURNING *`,
        [randomUUID(), input.accountId, input.queueId, input.callId, input.nodeId])
      const qc = toQueuecall(rows[0]!)
      await emit(qc.accountId, 'queue.joined', { queuecall: qc }, qc.reference_id)
      return qc
    })
  }

  /**
   * Claims agents for a waiting queuecall, atomically across nodes: the
   * available agents of the account that carry all of `tagIds`, are on no
   * live call and were not skipped for this caller, in the routing method's
   * order (one, or up to RING_ALL_MAX for ring-all), locked with SKIP LOCKED
   * so a concurrent claim takes others. They become `ringing`, the
   * queuecall `connecting`. None (or the queuecall is no longer waiting): [].
   */
  async offer(qcId: string, o: ClaimOptions): Promise<ContactAgent[]> {
    return (await this.claim(qcId, o)).agents
  }

  /** `offer`, and whether other available agents with the tags are left (a hint: younger callers need not try when none). */
  claim(qcId: string, o: ClaimOptions): Promise<Claim> {
    return this.outbox.transaction((c, emit) => claimAgents(c, emit, qcId, o))
  }
  /**
   * The offer ended without an answer (or with one that came too late):
   * the agents are released (`results` says how it went for each; a missed
   * one is counted and skipped for this caller), and a queuecall still
   * `connecting` waits again. When every matching agent has been skipped,
   * the list starts over (`resetSkipped`).
   */
  async offerEnded(qcId: string, results: Array<{ agentId: string; result: OfferResult }>, opts: { resetSkipped?: boolean } = {}): Promise<Queuecall | null> {
    return this.outbox.transaction(async (c, emit) => {
      await this.release(c, emit, qcId, results)
      const missed = results.filter((r) => MISSED.has(r.result)).map((r) => r.agentId)
      const { rows } = await c.query<Row>(
        `UPDATE queuecalls SET status = CASE WHEN status = 'connecting' THEN 'waiting' ELSE status END, offered_agent_ids = '{}',
           skipped_agent_ids = CASE WHEN $3::boolean THEN '{}'::uuid[] ELSE (SELECT ARRAY(SELECT DISTINCT unnest(skipped_agent_ids || $2::uuid[]))) END,
           updated_at = now()
         WHERE id = $1 RETURNING *`, [qcId, missed, opts.resetSkipped ?? false])
      return rows[0] ? toQueuecall(rows[0]) : null
    })
  }

  /** Forgets the agents skipped for this caller (all were tried): the next offer may ring them again. */
  async resetSkipped(qcId: string): Promise<void> {
    await this.db.query(`UPDATE queuecalls SET skipped_agent_ids = '{}', updated_at = now() WHERE id = $1`, [qcId])
  }

  /**
   * An agent answered: the queuecall is in `service` with them (tm_service,
   * the queue's serviced counter, `queue.answered`), every offered agent is
   * released (the one who answered is now busy on the call). Null when the
   * queuecall had already left (abandoned, kicked): the caller of this
   * hangs the agent's leg up.
   */
  async answered(qcId: string, agentId: string, others: Array<{ agentId: string; result: OfferResult }>, agentCallId: string): Promise<Queuecall | null> {
    return this.outbox.transaction(async (c, emit) => {
      const { rows } = await c.query<Row>(
        `UPDATE queuecalls SET status = 'service', service_agent_id = $2, tm_service = now(), offered_agent_ids = '{}', updated_at = now()
          WHERE id = $1 AND status = 'connecting' RETURNING *`, [qcId, agentId])
      await this.release(c, emit, qcId, [{ agentId, result: 'answered' }, ...others])
      if (!rows[0]) return null
      const qc = toQueuecall(rows[0])
      await c.query('UPDATE queues SET total_serviced_count = total_serviced_count + 1 WHERE id = $1', [qc.queue_id])
      await emit(qc.accountId, 'queue.answered', { queuecall: qc, contact_agent_id: agentId, agent_call_id: agentCallId }, qc.reference_id)
      return qc
    })
  }

  /**
   * The queuecall leaves the queue: `abandoned` (the caller hung up or
   * wait_timeout passed before an agent answered; the abandoned counter,
   * `queue.abandoned`) or `done` (after service, or kicked; `queue.done`).
   * Agents still ringing for it are released. Once only: null if it had
   * already ended.
   */
  async finish(qcId: string, status: 'done' | 'abandoned', endReason: QueuecallEndReason): Promise<Queuecall | null> {
    return (await this.end(qcId, status, endReason)).queuecall
  }

  /**
   * `finish`, and the hand-over in the same transaction: the agent who
   * served the caller has its status recomputed (STATUS_RULE: `available`
   * once its leg has ended, announced) without waiting for presence to see
   * the leg's end, and when it is available `next(agent)` may name a waiting
   * queuecall to claim agents for at once (the same claim as `claim`, SKIP
   * LOCKED, routing order): one transaction from the agent's leg ending to
   * the next caller's offer.
   */
  async end(qcId: string, status: 'done' | 'abandoned', endReason: QueuecallEndReason, next?: (freed: ContactAgent) => ({ qcId: string } & ClaimOptions) | null): Promise<{ queuecall: Queuecall | null; handedOver: ({ qcId: string } & Claim) | null }> {
    return this.outbox.transaction(async (c, emit) => {
      // A caller an agent already answered is never abandoned (the caller hanging up, wait_timeout or a node
      // restart racing the answer): it was serviced, so it ends `done`, counted once.
      const { rows } = await c.query<Row>(
        `UPDATE queuecalls SET status = CASE WHEN tm_service IS NOT NULL THEN 'done' ELSE $2 END, end_reason = $3, tm_end = now(), offered_agent_ids = '{}', updated_at = now()
          WHERE id = $1 AND status NOT IN ('done', 'abandoned') RETURNING *`, [qcId, status, endReason])
      if (!rows[0]) return { queuecall: null, handedOver: null }
      const qc = toQueuecall(rows[0])
      await this.releaseAll(c, emit, qcId, 'canceled')
      if (qc.status === 'abandoned') await c.query('UPDATE queues SET total_abandoned_count = total_abandoned_count + 1 WHERE id = $1', [qc.queue_id])
      await emit(qc.accountId, qc.status === 'abandoned' ? 'queue.abandoned' : 'queue.done', { queuecall: qc }, qc.reference_id)
      let handedOver: ({ qcId: string } & Claim) | null = null
      if (qc.service_agent_id) {
        const [agent] = await refreshStatuses(c, emit, 'a.id = $1', [qc.service_agent_id])
        const to = agent?.status === 'available' && next ? next(agent) : null
        if (to) handedOver = { qcId: to.qcId, ...(await claimAgents(c, emit, to.qcId, to)) }
      }
      return { queuecall: qc, handedOver }
    })
  }

  /** POST /v1/queuecalls/:id/kick: a live queuecall becomes `kicking` (`queue.kicked`); the node running it ends it. */
  async kick(accountId: string, id: string): Promise<Queuecall | null> {
    return this.outbox.transaction(async (c, emit) => {
      const { rows } = await c.query<Row>(
        `UPDATE queuecalls SET status = 'kicking', updated_at = now() WHERE account_id = $1 AND id = $2 AND status NOT IN ('done', 'abandoned', 'kicking') RETURNING *`,
        [accountId, id])
      if (!rows[0]) return null
      const qc = toQueuecall(rows[0])
      await emit(qc.accountId, 'queue.kicked', { queuecall: qc }, qc.reference_id)
      return qc
    })
  }

  /**
   * Queuecalls a dead or restarted node left live: their calls ended with it
   * (each ends `abandoned`, or `done` if an agent had answered; its ringing
   * agents are released). Then the agents that calls ending with that node
   * left `busy` or `ringing`: the node's call records were finished before
   * anything followed presence (call/queues/agent-presence.ts), so their
   * status is recomputed here, and an offer for a queuecall that is no longer
   * live is dropped.
   */
  async endStale(nodeId: string): Promise<number> {
    const { rows } = await this.db.query<{ id: string }>(`SELECT id FROM queuecalls WHERE node_id = $1 AND status NOT IN ('done', 'abandoned')`, [nodeId])
    for (const r of rows) await this.finish(r.id, 'abandoned', 'node-restart')
    await this.outbox.transaction(async (c, emit) => {
      await c.query(
        `UPDATE contact_agents a SET offered_queuecall_id = NULL, updated_at = now()
          WHERE a.offered_queuecall_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM queuecalls q WHERE q.id = a.offered_queuecall_id AND q.status IN ('waiting', 'connecting'))`)
      await refreshStatuses(c, emit, `a.status IN ('busy', 'ringing')`, [])
    })
    return rows.length
  }

  private async release(c: Queryable, emit: Emit, qcId: string, results: Array<{ agentId: string; result: OfferResult }>): Promise<void> {
    if (!results.length) return
    const ids = results.map((r) => r.agentId)
    const res = results.map((r) => r.result)
    const missed = results.map((r) => MISSED.has(r.result))
    await c.query(
      `UPDATE contact_agents a SET offered_queuecall_id = NULL, last_offer_result = r.result, missed_count = a.missed_count + CASE WHEN r.missed THEN 1 ELSE 0 END, updated_at = now()
         FROM unnest($2::uuid[], $3::text[], $4::boolean[]) AS r(id, result, missed)
        WHERE a.id = r.id AND a.offered_queuecall_id = $1`, [qcId, ids, res, missed])
    await refreshStatuses(c, emit, 'a.id = ANY($1::uuid[])', [ids])
  }

  private async releaseAll(c: Queryable, emit: Emit, qcId: string, result: OfferResult): Promise<void> {
    const { rows } = await c.query<{ id: string }>('SELECT id FROM contact_agents WHERE offered_queuecall_id = $1', [qcId])
    await this.release(c, emit, qcId, rows.map((r) => ({ agentId: r.id, result })))
  }
}
