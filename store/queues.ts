import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { conflict } from './errors.ts'
import type { Outbox } from './outbox.ts'

/**
 * ACD queues (VoipBin QueueManagerQueue): which contact agents take its
 * callers (`tag_ids`: an agent must carry all of them), in which order
 * (`routing_method`), what a waiting caller hears (`wait_flow_id`), how long
 * a caller waits and talks, and its counters. The callers in it are
 * queuecalls (queuecalls.ts); call/queues runs them.
 */

export type RoutingMethod = 'random' | 'round-robin' | 'longest-idle' | 'ring-all'

export interface Queue {
  id: string
  accountId: string
  name: string
  detail: string
  routing_method: RoutingMethod
  tag_ids: string[]
  wait_flow_id: string | null
  /** What runs instead of the rest of the caller's flow when wait_timeout passes (none: the flow goes on). */
  timeout_flow_id: string | null
  /** Milliseconds a caller waits for an agent (0: no limit). */
  wait_timeout: number
  /** Milliseconds a caller talks with an agent (0: no limit). */
  service_timeout: number
  /** Milliseconds one offer rings an agent before the next is tried. */
  ring_timeout: number
  wait_queuecall_ids: string[]
  service_queuecall_ids: string[]
  total_incoming_count: number
  total_serviced_count: number
  total_abandoned_count: number
  createdAt: string
  updatedAt: string
}

export interface QueueInput {
  name: string
  detail?: string | undefined
  routingMethod?: RoutingMethod | undefined
  tagIds?: string[] | undefined
  waitFlowId?: string | null | undefined
  timeoutFlowId?: string | null | undefined
  waitTimeout?: number | undefined
  serviceTimeout?: number | undefined
  ringTimeout?: number | undefined
}

interface Row {
  id: string; seq: string; account_id: string; name: string; detail: string; routing_method: string; tag_ids: string[]; wait_flow_id: string | null
  timeout_flow_id: string | null; wait_timeout: number; service_timeout: number; ring_timeout: number; total_incoming_count: string
  total_serviced_count: string; total_abandoned_count: string; created_at: Date; updated_at: Date
  wait_ids: string[] | null; service_ids: string[] | null
}
const toQueue = (r: Row): Queue => ({
  id: r.id, accountId: r.account_id, name: r.name, detail: r.detail, routing_method: r.routing_method as RoutingMethod, tag_ids: r.tag_ids,
  wait_flow_id: r.wait_flow_id, timeout_flow_id: r.timeout_flow_id, wait_timeout: r.wait_timeout, service_timeout: r.service_timeout,
  ring_timeout: r.ring_timeout, wait_queuecall_ids: r.wait_ids ?? [], service_queuecall_ids: r.service_ids ?? [],
  total_incoming_count: Number(r.total_incoming_count), total_serviced_count: Number(r.total_serviced_count),
  total_abandoned_count: Number(r.total_abandoned_count), createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

/** The queue's columns plus the callers waiting (waiting, connecting) and being served, oldest first. */
const WITH_IDS = `q.*,
  ARRAY(SELECT qc.id FROM queuecalls qc WHERE qc.queue_id = q.id AND qc.status IN ('initiating', 'waiting', 'connecting') ORDER BY qc.seq) AS wait_ids,
  ARRAY(SELECT qc.id FROM queuecalls qc WHERE qc.queue_id = q.id AND qc.status IN ('service', 'kicking') ORDER BY qc.seq) AS service_ids`

export class QueueRepository {
  constructor(private readonly db: Queryable, private readonly outbox: Outbox) {}

  async create(accountId: string, input: QueueInput): Promise<Queue> {
    const id = randomUUID()
    await this.db.query(
      `INSERT INTO queues (id, account_id, name, detail, routing_method, tag_ids, wait_flow_id, timeout_flow_id, wait_timeout, service_timeout, ring_timeout)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [id, accountId, input.name, input.detail ?? '', input.routingMethod ?? 'random', input.tagIds ?? [], input.waitFlowId ?? null,
        input.timeoutFlowId ?? null, input.waitTimeout ?? 0, input.serviceTimeout ?? 0, input.ringTimeout ?? 20_000],
    )
    return (await this.get(accountId, id))!
  }

  async get(accountId: string, id: string): Promise<Queue | null> {
    const { rows } = await this.db.query<Row>(`SELECT ${WITH_IDS} FROM queues q WHERE q.account_id = $1 AND q.id = $2`, [accountId, id])
    return rows[0] ? toQueue(rows[0]) : null
  }

  list(accountId: string, page: PageRequest): Promise<Page<Queue>> {
    return pageQuery<Row, Queue>(this.db, { table: 'queues q', accountId, order: 'desc', page, columns: WITH_IDS }, toQueue)
  }

  /** `null` clears wait_flow_id / timeout_flow_id; undefined leaves a field. */
  async update(accountId: string, id: string, p: Partial<QueueInput>): Promise<Queue | null> {
    const set = (v: unknown) => (v === undefined ? null : v)
    const { rowCount } = await this.db.query(
      `UPDATE queues SET name = COALESCE($3, name), detail = COALESCE($4, detail), routing_method = COALESCE($5, routing_method),
         tag_ids = COALESCE($6, tag_ids),
         wait_flow_id = CASE WHEN $7::boolean THEN $8::uuid ELSE wait_flow_id END,
         timeout_flow_id = CASE WHEN $9::boolean THEN $10::uuid ELSE timeout_flow_id END,
         wait_timeout = COALESCE($11, wait_timeout), service_timeout = COALESCE($12, service_timeout), ring_timeout = COALESCE($13, ring_timeout),
         updated_at = now()
       WHERE account_id = $1 AND id = $2`,
      [accountId, id, set(p.name), set(p.detail), set(p.routingMethod), set(p.tagIds), p.waitFlowId !== undefined, p.waitFlowId ?? null,
        p.timeoutFlowId !== undefined, p.timeoutFlowId ?? null, set(p.waitTimeout), set(p.serviceTimeout), set(p.ringTimeout)],
    )
    return rowCount ? this.get(accountId, id) : null
  }

  /**
   * Refused (409) while callers wait or talk in it: they would be left in a
   * queue that is gone. The queue's row is locked first, as a joining caller
   * (queuecalls.join) locks it, so a caller joining meanwhile is either seen
   * here or refused there.
   */
  async remove(accountId: string, id: string): Promise<boolean> {
    return this.outbox.transaction(async (c) => {
      const locked = await c.query('SELECT 1 FROM queues WHERE account_id = $1 AND id = $2 FOR UPDATE', [accountId, id])
      if (!locked.rowCount) return false
      const { rows } = await c.query<{ n: string }>(
        `SELECT count(*) AS n FROM queuecalls WHERE account_id = $1 AND queue_id = $2 AND status NOT IN ('done', 'abandoned')`, [accountId, id])
      if (Number(rows[0]!.n) > 0) throw conflict(`queue ${id} has ${rows[0]!.n} callers in it: kick them first`, { live: Number(rows[0]!.n) })
      const { rowCount } = await c.query('DELETE FROM queues WHERE account_id = $1 AND id = $2', [accountId, id])
      return (rowCount ?? 0) > 0
    })
  }
}
