import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import type { StoredAction } from './flows.ts'

/**
 * Groupcalls (VoipBin's CallManagerGroupcall): destinations dialled together
 * or in turn, the first answer winning. `call/groupcalls.ts` drives one and
 * writes its progress here; the API reads it. A flow's `connect` is a
 * groupcall whose `masterCallId` is the flow's call.
 */

/** VoipBin's CommonAddress, the kinds a groupcall can dial. */
export interface DialAddress {
  type: 'tel' | 'extension' | 'sip' | 'agent'
  target?: string | undefined
  target_name?: string | undefined
}

export type GroupcallStatus = 'progressing' | 'hangingup' | 'hangup'
export type GroupcallOutcome = 'answered' | 'no-answer' | 'busy' | 'failed' | 'canceled'

export interface Groupcall {
  id: string
  accountId: string
  status: GroupcallStatus
  source: DialAddress
  destinations: DialAddress[]
  flowId: string | null
  actions: StoredAction[] | null
  ringMethod: 'ring_all' | 'linear'
  answerMethod: 'hangup_others'
  timeoutMs: number
  masterCallId: string | null
  answerCallId: string | null
  callIds: string[]
  /** The destination being dialled (linear); 0 for ring_all. */
  dialIndex: number
  /** Legs still ringing in the current dial. */
  callCount: number
  outcome: GroupcallOutcome | null
  nodeId: string | null
  createdAt: string
  updatedAt: string
  endedAt: string | null
}

export interface GroupcallInput {
  accountId: string
  source: DialAddress
  destinations: DialAddress[]
  flowId?: string | null
  actions?: StoredAction[] | null
  ringMethod: Groupcall['ringMethod']
  answerMethod: Groupcall['answerMethod']
  timeoutMs: number
  masterCallId?: string | null
  nodeId: string | null
  /** Chosen by the caller (its legs may be placed while the row is written); else a new one. */
  id?: string
}

export interface GroupcallProgress {
  callIds: string[]
  dialIndex: number
  callCount: number
  answerCallId: string | null
  nodeId: string | null
}

interface Row {
  id: string; seq: string; account_id: string; status: string; source: DialAddress; destinations: DialAddress[]; flow_id: string | null
  actions: StoredAction[] | null; ring_method: string; answer_method: string; timeout_ms: number; master_call_id: string | null
  answer_call_id: string | null; call_ids: string[]; dial_index: number; call_count: number; outcome: string | null; node_id: string | null
  created_at: Date; updated_at: Date; ended_at: Date | null
}
const toGroupcall = (r: Row): Groupcall => ({
  id: r.id, accountId: r.account_id, status: r.status as GroupcallStatus, source: r.source, destinations: r.destinations, flowId: r.flow_id,
  actions: r.actions, ringMethod: r.ring_method as Groupcall['ringMethod'], answerMethod: r.answer_method as Groupcall['answerMethod'],
  timeoutMs: r.timeout_ms, masterCallId: r.master_call_id, answerCallId: r.answer_call_id, callIds: r.call_ids, dialIndex: r.dial_index,
  callCount: r.call_count, outcome: r.outcome as GroupcallOutcome | null, nodeId: r.node_id,
  createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(), endedAt: r.ended_at ? r.ended_at.toISOString() : null,
})

export class GroupcallRepository {
  constructor(private readonly db: Queryable) {}

  async create(input: GroupcallInput): Promise<Groupcall> {
    const { rows } = await this.db.query<Row>(
      `INSERT INTO groupcalls (id, account_id, source, destinations, flow_id, actions, ring_method, answer_method, timeout_ms, master_call_id, node_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *`,
      [input.id ?? randomUUID(), input.accountId, JSON.stringify(input.source), JSON.stringify(input.destinations), input.flowId ?? null,
        input.actions ? JSON.stringify(input.actions) : null, input.ringMethod, input.answerMethod, input.timeoutMs, input.masterCallId ?? null, input.nodeId],
    )
    return toGroupcall(rows[0]!)
  }

  async get(accountId: string, id: string): Promise<Groupcall | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM groupcalls WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toGroupcall(rows[0]) : null
  }

  /** Newest first; `masterCallId` lists a call's connects. */
  list(accountId: string, filter: { status?: GroupcallStatus | undefined; masterCallId?: string | undefined }, page: PageRequest): Promise<Page<Groupcall>> {
    const where: string[] = []
    const params: unknown[] = []
    if (filter.status) { params.push(filter.status); where.push(`status = $${params.length + 1}`) }
    if (filter.masterCallId) { params.push(filter.masterCallId); where.push(`master_call_id = $${params.length + 1}`) }
    return pageQuery<Row, Groupcall>(this.db, { table: 'groupcalls', accountId, order: 'desc', page, where, params }, toGroupcall)
  }

  /** The dial's state now: legs placed, which destination, how many ring, who answered. */
  async progress(id: string, p: GroupcallProgress): Promise<void> {
    await this.db.query(
      `UPDATE groupcalls SET call_ids = $2, dial_index = $3, call_count = $4, answer_call_id = COALESCE($5, answer_call_id),
         node_id = COALESCE(node_id, $6), updated_at = now() WHERE id = $1`,
      [id, JSON.stringify(p.callIds), p.dialIndex, p.callCount, p.answerCallId, p.nodeId],
    )
  }

  /** The dial's result (who answered, or why nobody did); the groupcall stays `progressing` while an answered call lives. */
  async settle(id: string, outcome: GroupcallOutcome): Promise<void> {
    await this.db.query(`UPDATE groupcalls SET outcome = $2, call_count = 0, updated_at = now() WHERE id = $1`, [id, outcome])
  }

  /**
   * `hangingup` (asked to end: its calls are being hung up) or `hangup` (all
   * its calls ended). Never goes back from `hangup`; returns the record.
   */
  async setStatus(id: string, status: Exclude<GroupcallStatus, 'progressing'>): Promise<Groupcall | null> {
    const { rows } = await this.db.query<Row>(
      `UPDATE groupcalls SET status = $2, ended_at = CASE WHEN $2 = 'hangup' THEN COALESCE(ended_at, now()) ELSE ended_at END, updated_at = now()
       WHERE id = $1 AND status <> 'hangup' RETURNING *`,
      [id, status],
    )
    if (rows[0]) return toGroupcall(rows[0])
    const cur = await this.db.query<Row>('SELECT * FROM groupcalls WHERE id = $1', [id])
    return cur.rows[0] ? toGroupcall(cur.rows[0]) : null
  }

  /** Whether a hang-up was asked for (a linear dial checks before it dials the next destination). */
  async hangupRequested(id: string): Promise<boolean> {
    const { rows } = await this.db.query<{ status: string }>('SELECT status FROM groupcalls WHERE id = $1', [id])
    return rows[0]?.status !== 'progressing'
  }

  /** Groupcalls a dead or restarted node left live: their calls were finished with it. */
  async endStale(nodeId: string): Promise<number> {
    const { rowCount } = await this.db.query(
      `UPDATE groupcalls SET status = 'hangup', outcome = COALESCE(outcome, 'failed'), call_count = 0, ended_at = now(), updated_at = now()
       WHERE node_id = $1 AND status <> 'hangup'`, [nodeId])
    return rowCount ?? 0
  }
}
