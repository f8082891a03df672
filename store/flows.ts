import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { invalidReference } from './errors.ts'

/**
 * Stored flows (VoipBin's FlowManagerFlow) and their runs on calls
 * (FlowManagerActiveflow). Action lists are checked by call/flow before they
 * get here; the store keeps them as given (ids filled in).
 */

/** One action as stored: VoipBin's FlowManagerAction. */
export interface StoredAction {
  id: string
  next_id?: string
  type: string
  option?: Record<string, unknown>
}

export interface Flow {
  id: string
  accountId: string
  name: string
  detail: string
  actions: StoredAction[]
  onCompleteFlowId: string | null
  createdAt: string
  updatedAt: string
}

export interface FlowInput {
  name: string
  detail?: string
  actions: StoredAction[]
  onCompleteFlowId?: string | null
}

interface FlowRow { id: string; seq: string; account_id: string; name: string; detail: string; actions: StoredAction[]; on_complete_flow_id: string | null; created_at: Date; updated_at: Date }
const toFlow = (r: FlowRow): Flow => ({
  id: r.id, accountId: r.account_id, name: r.name, detail: r.detail, actions: r.actions, onCompleteFlowId: r.on_complete_flow_id,
  createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

export class FlowRepository {
  constructor(private readonly db: Queryable) {}

  private async checkRefs(accountId: string, selfId: string | null, input: Partial<FlowInput>): Promise<void> {
    if (!input.onCompleteFlowId) return
    if (input.onCompleteFlowId === selfId) return
    const { rowCount } = await this.db.query('SELECT 1 FROM flows WHERE account_id = $1 AND id = $2', [accountId, input.onCompleteFlowId])
    if (!rowCount) throw invalidReference('on_complete_flow_id', 'flow')
  }

  async create(accountId: string, input: FlowInput): Promise<Flow> {
    await this.checkRefs(accountId, null, input)
    const { rows } = await this.db.query<FlowRow>(
      `INSERT INTO flows (id, account_id, name, detail, actions, on_complete_flow_id) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
      [randomUUID(), accountId, input.name, input.detail ?? '', JSON.stringify(input.actions), input.onCompleteFlowId ?? null],
    )
    return toFlow(rows[0]!)
  }

  async get(accountId: string, id: string): Promise<Flow | null> {
    const { rows } = await this.db.query<FlowRow>('SELECT * FROM flows WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toFlow(rows[0]) : null
  }

  list(accountId: string, page: PageRequest): Promise<Page<Flow>> {
    return pageQuery<FlowRow, Flow>(this.db, { table: 'flows', accountId, order: 'desc', page }, toFlow)
  }

  async update(accountId: string, id: string, input: Partial<FlowInput>): Promise<Flow | null> {
    await this.checkRefs(accountId, id, input)
    const { rows } = await this.db.query<FlowRow>(
      `UPDATE flows SET name = COALESCE($3, name), detail = COALESCE($4, detail), actions = COALESCE($5, actions),
         on_complete_flow_id = CASE WHEN $6::boolean THEN $7::uuid ELSE on_complete_flow_id END, updated_at = now()
       WHERE account_id = $1 AND id = $2 RETURNING *`,
      [accountId, id, input.name ?? null, input.detail ?? null, input.actions ? JSON.stringify(input.actions) : null,
        input.onCompleteFlowId !== undefined, input.onCompleteFlowId ?? null],
    )
    return rows[0] ? toFlow(rows[0]) : null
  }

  async delete(accountId: string, id: string): Promise<boolean> {
    const { rowCount } = await this.db.query('DELETE FROM flows WHERE account_id = $1 AND id = $2', [accountId, id])
    return (rowCount ?? 0) > 0
  }
}

/** One executed action of a run, as the call record shows it. */
export interface ExecutedAction {
  id: string
  type: string
  startedAt: string
  endedAt?: string
  /** What came of it: `done`, `digit`, `timeout`, `matched:1`, `answered`, `error: …` */
  outcome?: string
}

export type ActiveflowStatus = 'running' | 'ended'

export interface Activeflow {
  id: string
  accountId: string
  callId: string | null
  flowId: string | null
  referenceType: 'call' | 'api'
  status: ActiveflowStatus
  currentAction: { id: string; type: string } | null
  executedActions: ExecutedAction[]
  variables: Record<string, string>
  error: string | null
  nodeId: string | null
  createdAt: string
  updatedAt: string
  endedAt: string | null
}

export interface ActiveflowState {
  status: ActiveflowStatus
  currentAction: { id: string; type: string } | null
  executedActions: ExecutedAction[]
  variables: Record<string, string>
  error?: string | null
}

interface RunRow {
  id: string; seq: string; account_id: string; call_id: string | null; flow_id: string | null; reference_type: string; status: string
  current_action: Activeflow['currentAction']; executed_actions: ExecutedAction[]; variables: Record<string, string>; error: string | null
  node_id: string | null; created_at: Date; updated_at: Date; ended_at: Date | null
}
const toRun = (r: RunRow): Activeflow => ({
  id: r.id, accountId: r.account_id, callId: r.call_id, flowId: r.flow_id, referenceType: r.reference_type as Activeflow['referenceType'],
  status: r.status as ActiveflowStatus, currentAction: r.current_action, executedActions: r.executed_actions, variables: r.variables,
  error: r.error, nodeId: r.node_id, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(), endedAt: r.ended_at ? r.ended_at.toISOString() : null,
})

export class ActiveflowRepository {
  constructor(private readonly db: Queryable) {}

  async create(input: { id: string; accountId: string; callId: string; flowId: string | null; referenceType: 'call' | 'api'; nodeId: string | null; variables: Record<string, string> }): Promise<Activeflow> {
    const { rows } = await this.db.query<RunRow>(
      `INSERT INTO activeflows (id, account_id, call_id, flow_id, reference_type, node_id, variables) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
      [input.id, input.accountId, input.callId, input.flowId, input.referenceType, input.nodeId, JSON.stringify(input.variables)],
    )
    return toRun(rows[0]!)
  }

  /** The run's state as it is now; `ended` stamps ended_at once. */
  async save(id: string, s: ActiveflowState): Promise<void> {
    await this.db.query(
      `UPDATE activeflows SET status = $2, current_action = $3, executed_actions = $4, variables = $5, error = COALESCE($6, error),
         ended_at = CASE WHEN $2 = 'ended' THEN COALESCE(ended_at, now()) ELSE NULL END, updated_at = now() WHERE id = $1`,
      [id, s.status, s.currentAction ? JSON.stringify(s.currentAction) : null, JSON.stringify(s.executedActions), JSON.stringify(s.variables), s.error ?? null],
    )
  }

  async get(accountId: string, id: string): Promise<Activeflow | null> {
    const { rows } = await this.db.query<RunRow>('SELECT * FROM activeflows WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toRun(rows[0]) : null
  }

  list(accountId: string, filter: { callId?: string | undefined; status?: ActiveflowStatus | undefined }, page: PageRequest): Promise<Page<Activeflow>> {
    const where: string[] = []
    const params: unknown[] = []
    if (filter.callId) { params.push(filter.callId); where.push(`call_id = $${params.length + 1}`) }
    if (filter.status) { params.push(filter.status); where.push(`status = $${params.length + 1}`) }
    return pageQuery<RunRow, Activeflow>(this.db, { table: 'activeflows', accountId, order: 'desc', page, where, params }, toRun)
  }

  /** A call's runs, oldest first (GET /v1/calls/:id shows them). */
  async forCall(callId: string): Promise<Activeflow[]> {
    const { rows } = await this.db.query<RunRow>('SELECT * FROM activeflows WHERE call_id = $1 ORDER BY seq ASC LIMIT 50', [callId])
    return rows.map(toRun)
  }

  /** Runs a dead or restarted node left `running`: ended, so none stays running for ever. */
  async endStale(nodeId: string): Promise<number> {
    const { rowCount } = await this.db.query(
      `UPDATE activeflows SET status = 'ended', error = COALESCE(error, 'node-restart'), ended_at = now(), updated_at = now() WHERE node_id = $1 AND status = 'running'`, [nodeId])
    return rowCount ?? 0
  }
}
