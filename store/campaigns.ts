import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { invalidReference, invalidState } from './errors.ts'
import type { StoredAction } from './flows.ts'

/**
 * Campaigns (VoipBin CampaignManagerCampaign): an outdial worked with an
 * outplan, each answered call running an AI agent (`type` call) or a flow
 * (`type` flow), within operating hours, paced (`calls_per_second`, one
 * slot at a time taken atomically by any node: `next_dial_at`) and capped
 * (`max_concurrent_calls`: attempts not yet done). Its progress per target
 * (`campaign_targets`: attempts made, when the next is due, done) is what
 * the dialer (call/outbound/campaign-dialer.ts) re-arms its jobs from.
 */

export type CampaignType = 'call' | 'flow'
export type CampaignStatus = 'run' | 'pause' | 'stop'
export type CampaignEndHandle = 'stop' | 'continue'
export type AmdBehavior = 'hangup' | 'static_message' | 'agent_decides'
export interface CampaignAmd { enabled: boolean; behavior: AmdBehavior; message?: string | undefined }
/** call/outbound/operating-hours.ts OperatingHours, as stored. */
export interface StoredOperatingHours { start: string; end: string; days: number[]; timezone: string }

export interface Campaign {
  id: string
  accountId: string
  name: string
  detail: string
  type: CampaignType
  agentId: string | null
  flowId: string | null
  actions: StoredAction[] | null
  outplanId: string
  outdialId: string
  operatingHours: StoredOperatingHours | null
  callsPerSecond: number
  maxConcurrentCalls: number
  endHandle: CampaignEndHandle
  amd: CampaignAmd | null
  status: CampaignStatus
  statusReason: string | null
  createdAt: string
  updatedAt: string
}

export interface CampaignInput {
  name: string
  detail?: string | undefined
  type: CampaignType
  agentId?: string | null | undefined
  flowId?: string | null | undefined
  actions?: StoredAction[] | null | undefined
  outplanId: string
  outdialId: string
  operatingHours?: StoredOperatingHours | null | undefined
  callsPerSecond: number
  maxConcurrentCalls: number
  endHandle: CampaignEndHandle
  amd?: CampaignAmd | null | undefined
}

/** Counts over the campaign's targets and attempts (GET /v1/campaigns/:id `stats`). */
export interface CampaignStats {
  targets: number
  targetsDone: number
  attempts: number
  inProgress: number
  outcomes: Record<string, number>
}

export interface CampaignTarget {
  campaignId: string
  targetId: string
  tryCount: number
  nextTryAt: Date
  status: 'idle' | 'dialing' | 'done'
  outcome: string | null
}

interface Row {
  id: string; seq: string; account_id: string; name: string; detail: string; type: string; agent_id: string | null; flow_id: string | null
  actions: StoredAction[] | null; outplan_id: string; outdial_id: string; operating_hours: StoredOperatingHours | null; calls_per_second: number
  max_concurrent_calls: number; end_handle: string; amd: CampaignAmd | null; status: string; status_reason: string | null; created_at: Date; updated_at: Date
}
const toCampaign = (r: Row): Campaign => ({
  id: r.id, accountId: r.account_id, name: r.name, detail: r.detail, type: r.type as CampaignType, agentId: r.agent_id, flowId: r.flow_id,
  actions: r.actions, outplanId: r.outplan_id, outdialId: r.outdial_id, operatingHours: r.operating_hours, callsPerSecond: Number(r.calls_per_second),
  maxConcurrentCalls: r.max_concurrent_calls, endHandle: r.end_handle as CampaignEndHandle, amd: r.amd, status: r.status as CampaignStatus,
  statusReason: r.status_reason, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

interface TargetRow { campaign_id: string; target_id: string; try_count: number; next_try_at: Date; status: string; outcome: string | null }
const toTarget = (r: TargetRow): CampaignTarget => ({
  campaignId: r.campaign_id, targetId: r.target_id, tryCount: r.try_count, nextTryAt: r.next_try_at, status: r.status as CampaignTarget['status'], outcome: r.outcome,
})

const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v))

export class CampaignRepository {
  constructor(private readonly db: Queryable) {}

  /** 400 naming the field for a reference that is not the account's. */
  private async checkRefs(accountId: string, c: Partial<CampaignInput>): Promise<void> {
    const refs: Array<[string, string, string | null | undefined]> = [
      ['outplan_id', 'outplans', c.outplanId], ['outdial_id', 'outdials', c.outdialId], ['agent_id', 'agents', c.agentId], ['flow_id', 'flows', c.flowId],
    ]
    for (const [field, table, id] of refs) {
      if (!id) continue
      const { rowCount } = await this.db.query(`SELECT 1 FROM ${table} WHERE account_id = $1 AND id = $2`, [accountId, id])
      if (!rowCount) throw invalidReference(field, field.replace(/_id$/, ''))
    }
  }

  async create(accountId: string, input: CampaignInput): Promise<Campaign> {
    await this.checkRefs(accountId, input)
    const { rows } = await this.db.query<Row>(
      `INSERT INTO campaigns (id, account_id, name, detail, type, agent_id, flow_id, actions, outplan_id, outdial_id, operating_hours,
         calls_per_second, max_concurrent_calls, end_handle, amd)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING *`,
      [randomUUID(), accountId, input.name, input.detail ?? '', input.type, input.agentId ?? null, input.flowId ?? null, json(input.actions),
        input.outplanId, input.outdialId, json(input.operatingHours), input.callsPerSecond, input.maxConcurrentCalls, input.endHandle, json(input.amd)],
    )
    return toCampaign(rows[0]!)
  }

  async get(accountId: string, id: string): Promise<Campaign | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM campaigns WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toCampaign(rows[0]) : null
  }

  /** The dialer's look-up (its job names the campaign). */
  async getById(id: string, q: Queryable = this.db): Promise<Campaign | null> {
    const { rows } = await q.query<Row>('SELECT * FROM campaigns WHERE id = $1', [id])
    return rows[0] ? toCampaign(rows[0]) : null
  }

  list(accountId: string, filter: { status?: CampaignStatus | undefined }, page: PageRequest): Promise<Page<Campaign>> {
    const where = filter.status ? ['status = $2'] : []
    return pageQuery<Row, Campaign>(this.db, { table: 'campaigns', accountId, order: 'desc', page, where, params: filter.status ? [filter.status] : [] }, toCampaign)
  }

  /** Running campaigns working this outdial (targets added to it are armed for them). */
  async runningOn(outdialId: string): Promise<Campaign[]> {
    const { rows } = await this.db.query<Row>(`SELECT * FROM campaigns WHERE outdial_id = $1 AND status = 'run'`, [outdialId])
    return rows.map(toCampaign)
  }

  /** Replaces the given fields (the route has merged and checked the whole campaign). */
  async update(accountId: string, id: string, input: CampaignInput): Promise<Campaign | null> {
    await this.checkRefs(accountId, input)
    const { rows } = await this.db.query<Row>(
      `UPDATE campaigns SET name = $3, detail = $4, type = $5, agent_id = $6, flow_id = $7, actions = $8, outplan_id = $9, outdial_id = $10,
         operating_hours = $11, calls_per_second = $12, max_concurrent_calls = $13, end_handle = $14, amd = $15, updated_at = now(),
         -- a new pace applies from the next slot, not after the old pace's gap
         next_dial_at = CASE WHEN calls_per_second <> $12 THEN LEAST(next_dial_at, now() + make_interval(secs => 1.0 / $12)) ELSE next_dial_at END
       WHERE account_id = $1 AND id = $2 RETURNING *`,
      [accountId, id, input.name, input.detail ?? '', input.type, input.agentId ?? null, input.flowId ?? null, json(input.actions),
        input.outplanId, input.outdialId, json(input.operatingHours), input.callsPerSecond, input.maxConcurrentCalls, input.endHandle, json(input.amd)],
    )
    return rows[0] ? toCampaign(rows[0]) : null
  }

  /** False when absent; 409 while it runs (pause or stop it first). */
  async delete(accountId: string, id: string): Promise<boolean> {
    // One statement: a `run` arriving between a status read and the delete cannot lose its campaign under a running dialer.
    const { rowCount } = await this.db.query(`DELETE FROM campaigns WHERE account_id = $1 AND id = $2 AND status <> 'run'`, [accountId, id])
    if (rowCount) return true
    const { rows } = await this.db.query<{ status: string }>('SELECT status FROM campaigns WHERE account_id = $1 AND id = $2', [accountId, id])
    if (!rows[0]) return false
    throw invalidState('campaign is running: stop it before deleting it', { campaignId: id })
  }

  /** Whether the campaign has run (its targets' progress exists): its outdial is then fixed. */
  async hasRun(id: string): Promise<boolean> {
    const { rowCount } = await this.db.query('SELECT 1 FROM campaign_targets WHERE campaign_id = $1 LIMIT 1', [id])
    return (rowCount ?? 0) > 0
  }

  /**
   * Sets the status (with `q`, inside the caller's transaction, which emits
   * the event). Returns the campaign before and after, or null when absent;
   * `from` limits the change to campaigns now in one of those statuses.
   */
  async setStatus(id: string, status: CampaignStatus, reason: string | null, q: Queryable, from?: CampaignStatus[]): Promise<{ before: Campaign; after: Campaign } | null> {
    const { rows } = await q.query<Row>('SELECT * FROM campaigns WHERE id = $1 FOR UPDATE', [id])
    if (!rows[0]) return null
    const before = toCampaign(rows[0])
    if (from && !from.includes(before.status)) return { before, after: before }
    const { rows: after } = await q.query<Row>(
      `UPDATE campaigns SET status = $2, status_reason = $3, updated_at = now() WHERE id = $1 RETURNING *`, [id, status, reason])
    return { before, after: toCampaign(after[0]!) }
  }

  /** The campaign row locked for a dial reservation (inside the caller's transaction). */
  async lockForDial(id: string, q: Queryable): Promise<Campaign | null> {
    const { rows } = await q.query<Row>('SELECT * FROM campaigns WHERE id = $1 FOR UPDATE', [id])
    return rows[0] ? toCampaign(rows[0]) : null
  }

  /** Attempts not done yet (dialing or on a call): what max_concurrent_calls caps. */
  async openAttempts(id: string, q: Queryable): Promise<number> {
    const { rows } = await q.query<{ n: string }>(`SELECT count(*) AS n FROM campaigncalls WHERE campaign_id = $1 AND status <> 'done'`, [id])
    return Number(rows[0]!.n)
  }

  /**
   * Takes the next pacing slot (1/calls_per_second apart, real time, shared
   * by every node through the row) when it starts within `maxWaitMs`:
   * returns how many ms from now it starts, and whether it was taken. A slot
   * further off is left alone, so a slow campaign holds no attempts (nor
   * leases) reserved far ahead, a pause needs no wait and a faster
   * calls_per_second applies from the next slot.
   */
  async takePacingSlot(id: string, q: Queryable, maxWaitMs: number): Promise<{ waitMs: number; taken: boolean }> {
    const { rows } = await q.query<{ wait_ms: number; taken: boolean }>(
      `WITH slot AS (SELECT GREATEST(next_dial_at, clock_timestamp()) AS at, make_interval(secs => 1.0 / calls_per_second) AS gap FROM campaigns WHERE id = $1),
            took AS (UPDATE campaigns SET next_dial_at = slot.at + slot.gap FROM slot
                      WHERE id = $1 AND slot.at <= clock_timestamp() + make_interval(secs => $2::float8 / 1000) RETURNING 1)
       SELECT GREATEST(0, EXTRACT(EPOCH FROM (slot.at - clock_timestamp())) * 1000)::float8 AS wait_ms, EXISTS (SELECT 1 FROM took) AS taken FROM slot`, [id, maxWaitMs])
    return rows[0] ? { waitMs: Number(rows[0].wait_ms), taken: rows[0].taken } : { waitMs: 0, taken: false }
  }

  // ---- per-target progress -------------------------------------------------

  /** Adds the outdial's targets the campaign has not seen yet, due at `dueAt`. Returns how many. */
  async seedTargets(c: Pick<Campaign, 'id' | 'accountId' | 'outdialId'>, dueAt: Date, q: Queryable = this.db): Promise<number> {
    const { rowCount } = await q.query(
      `INSERT INTO campaign_targets (campaign_id, target_id, account_id, next_try_at)
       SELECT $1, t.id, t.account_id, $3 FROM outdial_targets t WHERE t.outdial_id = $2
       ON CONFLICT DO NOTHING`, [c.id, c.outdialId, dueAt])
    return rowCount ?? 0
  }

  /** Targets not done, with when each is due (what `run` arms jobs for). */
  async pendingTargets(campaignId: string, q: Queryable = this.db): Promise<CampaignTarget[]> {
    const { rows } = await q.query<TargetRow>(`SELECT * FROM campaign_targets WHERE campaign_id = $1 AND status <> 'done'`, [campaignId])
    return rows.map(toTarget)
  }

  async target(campaignId: string, targetId: string, q: Queryable = this.db): Promise<CampaignTarget | null> {
    const { rows } = await q.query<TargetRow>('SELECT * FROM campaign_targets WHERE campaign_id = $1 AND target_id = $2', [campaignId, targetId])
    return rows[0] ? toTarget(rows[0]) : null
  }

  async markTarget(campaignId: string, targetId: string, m: { status: CampaignTarget['status']; tryCount?: number; nextTryAt?: Date; outcome?: string | null }, q: Queryable = this.db): Promise<void> {
    await q.query(
      `UPDATE campaign_targets SET status = $3, try_count = COALESCE($4, try_count), next_try_at = COALESCE($5, next_try_at),
         outcome = CASE WHEN $6::boolean THEN $7 ELSE outcome END
       WHERE campaign_id = $1 AND target_id = $2`,
      [campaignId, targetId, m.status, m.tryCount ?? null, m.nextTryAt ?? null, m.outcome !== undefined, m.outcome ?? null])
  }

  /** Targets still to work: not done here, plus outdial targets the campaign has not seeded yet. */
  async remaining(c: Pick<Campaign, 'id' | 'outdialId'>, q: Queryable = this.db): Promise<number> {
    const { rows } = await q.query<{ n: string }>(
      `SELECT (SELECT count(*) FROM campaign_targets WHERE campaign_id = $1 AND status <> 'done')
            + (SELECT count(*) FROM outdial_targets t WHERE t.outdial_id = $2
                 AND NOT EXISTS (SELECT 1 FROM campaign_targets ct WHERE ct.campaign_id = $1 AND ct.target_id = t.id)) AS n`,
      [c.id, c.outdialId])
    return Number(rows[0]!.n)
  }

  async stats(c: Pick<Campaign, 'id' | 'outdialId'>): Promise<CampaignStats> {
    const [targets, attempts] = await Promise.all([
      this.db.query<{ total: string; done: string }>(
        `SELECT (SELECT count(*) FROM outdial_targets WHERE outdial_id = $2) AS total,
                (SELECT count(*) FROM campaign_targets WHERE campaign_id = $1 AND status = 'done') AS done`, [c.id, c.outdialId]),
      this.db.query<{ outcome: string | null; status: string; n: string }>(
        'SELECT outcome, status, count(*) AS n FROM campaigncalls WHERE campaign_id = $1 GROUP BY outcome, status', [c.id]),
    ])
    const outcomes: Record<string, number> = {}
    let total = 0
    let inProgress = 0
    for (const r of attempts.rows) {
      const n = Number(r.n)
      total += n
      if (r.status !== 'done') inProgress += n
      else if (r.outcome) outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + n
    }
    return { targets: Number(targets.rows[0]!.total), targetsDone: Number(targets.rows[0]!.done), attempts: total, inProgress, outcomes }
  }
}
