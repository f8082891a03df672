import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'
import { invalidReference, invalidState } from './errors.ts'
import type { StoredAction } from './flows.ts'
import type { JobRepository } from './jobs.ts'
import { toCampaigncall, type Campaigncall, type CampaigncallRow } from './campaigncalls.ts'
import { toOutplan, type Outplan, type OutplanRow } from './outplans.ts'
import type { OutdialTarget } from './outdials.ts'

/** The dialer's job kind (call/outbound/campaign-dialer.ts), one job per target keyed `<campaign>:<target>`: a deleted campaign's jobs go with it. */
export const CAMPAIGN_DIAL_JOB = 'campaign.dial'

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

/** What a dial job run needs, read in one statement (CampaignRepository.dialContext). */
export interface DialContext {
  campaign: Campaign
  progress: CampaignTarget | null
  target: Pick<OutdialTarget, 'id' | 'destinations' | 'timezone'> | null
  /** The target's attempt not done yet (an earlier run left it: its node died or stopped). */
  open: Campaigncall | null
  /** Which of the target's destinations are on the account's do-not-call list now. */
  listed: Set<string>
}

/**
 * What CampaignRepository.reserveDials did. `gone`: requests whose contact
 * was deleted; `reserved`: the attempts made, each with how many ms from now
 * its slot starts (negative: a late slot, dial at once).
 */
export type DialReservations =
  | { kind: 'stopped' }
  | { kind: 'missing'; reason: string }
  /** At max_concurrent_calls: nothing reserved. */
  | { kind: 'full'; gone: string[]; reserved: [] | Reserved[] }
  /** The next slot starts in inMs, beyond the horizon: nothing reserved. */
  | { kind: 'later'; inMs: number; gone: string[]; reserved: [] | Reserved[] }
  | { kind: 'reserved'; gone: string[]; reserved: Reserved[]; gapMs: number; campaign: Campaign; outplan: Outplan }

export interface Reserved { cc: Campaigncall; inMs: number }

export interface DialRequest {
  campaignId: string
  targetId: string
  destination: string
  destinationIndex: number
  tryCount: number
  nodeId: string
}

type Transaction = <T>(fn: (q: Queryable) => Promise<T>) => Promise<T>

export class CampaignRepository {
  constructor(private readonly db: Queryable, private readonly jobs: JobRepository, private readonly transaction: Transaction) {}

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
    // Its dial jobs go in the same transaction (a stopped campaign's jobs would otherwise each run once more to drop themselves).
    const gone = await this.transaction(async (q) => {
      const { rowCount } = await q.query(`DELETE FROM campaigns WHERE account_id = $1 AND id = $2 AND status <> 'run'`, [accountId, id])
      if (rowCount) await this.jobs.cancelPrefix(CAMPAIGN_DIAL_JOB, `${id}:`, q)
      return (rowCount ?? 0) > 0
    })
    if (gone) return true
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
      // (Re)started: the pace starts now, not caught up from before the pause (late slots are caught up only while it runs).
      `UPDATE campaigns SET status = $2, status_reason = $3, updated_at = now(),
         next_dial_at = CASE WHEN $2 = 'run' AND status <> 'run' THEN GREATEST(next_dial_at, now()) ELSE next_dial_at END
       WHERE id = $1 RETURNING *`, [id, status, reason])
    return { before, after: toCampaign(after[0]!) }
  }

  /**
   * Everything a dial job run reads, in one statement: the campaign, the
   * target's progress, its destinations and zone, its open attempt and
   * which destinations are on the do-not-call list. Null when the campaign
   * is gone.
   */
  async dialContext(campaignId: string, targetId: string): Promise<DialContext | null> {
    const { rows } = await this.db.query<Row & {
      t_try_count: number | null; t_next_try_at: Date | null; t_status: string | null; t_outcome: string | null
      t_found: boolean; t_destinations: string[] | null; t_timezone: string | null; t_open: CampaigncallRow | null; t_listed: string[]
    }>(
      `SELECT c.*, ct.try_count AS t_try_count, ct.next_try_at AS t_next_try_at, ct.status AS t_status, ct.outcome AS t_outcome,
              t.id IS NOT NULL AS t_found, t.destinations AS t_destinations, t.timezone AS t_timezone,
              (SELECT row_to_json(cc) FROM campaigncalls cc
                WHERE cc.campaign_id = c.id AND cc.outdial_target_id = $2 AND cc.status <> 'done' ORDER BY cc.try_count DESC LIMIT 1) AS t_open,
              COALESCE((SELECT json_agg(d.number) FROM do_not_call d
                WHERE d.account_id = c.account_id AND d.number IN (SELECT jsonb_array_elements_text(t.destinations))), '[]'::json) AS t_listed
         FROM campaigns c
         LEFT JOIN campaign_targets ct ON ct.campaign_id = c.id AND ct.target_id = $2
         LEFT JOIN outdial_targets t ON t.id = $2
        WHERE c.id = $1`, [campaignId, targetId])
    const r = rows[0]
    if (!r) return null
    return {
      campaign: toCampaign(r),
      progress: r.t_status === null ? null : {
        campaignId, targetId, tryCount: r.t_try_count!, nextTryAt: r.t_next_try_at!, status: r.t_status as CampaignTarget['status'], outcome: r.t_outcome,
      },
      target: r.t_found ? { id: targetId, destinations: r.t_destinations ?? [], timezone: r.t_timezone } : null,
      open: r.t_open ? toCampaigncall(r.t_open) : null,
      listed: new Set(r.t_listed),
    }
  }

  /**
   * Reserves dial attempts for these requests (in their order), in one
   * transaction on the campaign row (every node's reservations queue on its
   * lock): the campaign still runs, its agent or flow and outplan exist, the
   * target is still there, fewer attempts are open than
   * max_concurrent_calls, and the pacing slots (`next_dial_at`, then one
   * gap after another, 1/calls_per_second, real time) start within
   * `horizonMs`; the slots are taken, the campaigncalls created (dialing)
   * and the targets marked. Slots may lie a little in the past (at most five
   * gaps, ≤ 250 ms: a stall of the node or the database): dials that came
   * late are caught up instead of lost, so the rate over a minute is the
   * configured one; a campaign (re)started begins at now (setStatus). Requests not reserved
   * (beyond the horizon or the ceiling) are left as they were.
   */
  async reserveDials(reqs: DialRequest[], horizonMs: number): Promise<DialReservations> {
    if (reqs.length === 0) return { kind: 'later', inMs: 0, gone: [], reserved: [] }
    const campaignId = reqs[0]!.campaignId
    return this.transaction(async (q) => {
      // The lock first, alone: the statement after it reads with a snapshot that sees every reservation committed before it.
      const { rows: locked } = await q.query<{ status: string }>('SELECT status FROM campaigns WHERE id = $1 FOR UPDATE', [campaignId])
      if (!locked[0] || locked[0].status !== 'run') return { kind: 'stopped' }
      const { rows } = await q.query<{
        missing: string | null; open: number; max_concurrent_calls: number; gap_ms: number; first_in_ms: number
        reserved: Array<{ cc: CampaigncallRow; in_ms: number }> | null; gone: string[] | null; outplan: OutplanRow | null; campaign: Row
      }>(
        `WITH c AS (SELECT * FROM campaigns WHERE id = $1),
              op AS (SELECT o.* FROM outplans o, c WHERE o.id = c.outplan_id),
              info AS (SELECT c.id, c.account_id, c.outplan_id, c.outdial_id, c.max_concurrent_calls,
                 CASE WHEN c.type = 'call' AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = c.agent_id AND a.account_id = c.account_id)
                        THEN 'agent ' || COALESCE(c.agent_id::text, '(none)') || ' was deleted'
                      WHEN c.type = 'flow' AND c.flow_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM flows f WHERE f.id = c.flow_id AND f.account_id = c.account_id)
                        THEN 'flow ' || c.flow_id || ' was deleted'
                      WHEN NOT EXISTS (SELECT 1 FROM op) THEN 'outplan ' || c.outplan_id || ' was deleted' END AS missing,
                 (SELECT count(*) FROM campaigncalls WHERE campaign_id = $1 AND status <> 'done')::int AS open,
                 GREATEST(c.next_dial_at, clock_timestamp() - make_interval(secs => LEAST(5.0 / c.calls_per_second, 0.25))) AS at,
                 make_interval(secs => 1.0 / c.calls_per_second) AS gap, 1000.0 / c.calls_per_second AS gap_ms FROM c),
              req AS (SELECT * FROM unnest($2::uuid[], $3::text[], $4::int[], $5::int[], $6::uuid[]) WITH ORDINALITY AS r(target_id, destination, destination_index, try_count, id, ord)),
              present AS (SELECT req.*, row_number() OVER (ORDER BY req.ord) AS n FROM req
                           WHERE EXISTS (SELECT 1 FROM campaign_targets ct WHERE ct.campaign_id = $1 AND ct.target_id = req.target_id)),
              go AS (SELECT present.*, info.at + (present.n - 1) * info.gap AS slot_at FROM present, info
                      WHERE info.missing IS NULL AND present.n <= info.max_concurrent_calls - info.open
                        AND info.at + (present.n - 1) * info.gap <= clock_timestamp() + make_interval(secs => $7::float8 / 1000)),
              took AS (UPDATE campaigns SET next_dial_at = (SELECT max(slot_at) FROM go) + info.gap FROM info
                        WHERE campaigns.id = $1 AND EXISTS (SELECT 1 FROM go) RETURNING 1),
              cc AS (INSERT INTO campaigncalls (id, account_id, campaign_id, outplan_id, outdial_id, outdial_target_id, source, destination,
                       destination_index, try_count, status, node_id)
                     SELECT go.id, info.account_id, $1, info.outplan_id, info.outdial_id, go.target_id, (SELECT source->>'target' FROM op),
                            go.destination, go.destination_index, go.try_count, 'dialing', $8 FROM go, info RETURNING *),
              mark AS (UPDATE campaign_targets ct SET status = 'dialing', try_count = go.try_count FROM go
                        WHERE ct.campaign_id = $1 AND ct.target_id = go.target_id RETURNING 1)
         SELECT info.missing, info.open, info.max_concurrent_calls, info.gap_ms::float8 AS gap_ms,
                (EXTRACT(EPOCH FROM (info.at - clock_timestamp())) * 1000)::float8 AS first_in_ms,
                (SELECT json_agg(json_build_object('cc', row_to_json(cc), 'in_ms', EXTRACT(EPOCH FROM (go.slot_at - clock_timestamp())) * 1000) ORDER BY go.ord)
                   FROM cc JOIN go ON go.id = cc.id) AS reserved,
                (SELECT json_agg(req.target_id) FROM req WHERE NOT EXISTS (SELECT 1 FROM present WHERE present.ord = req.ord)) AS gone,
                (SELECT row_to_json(op) FROM op) AS outplan, (SELECT row_to_json(c) FROM c) AS campaign
           FROM info`,
        [campaignId, reqs.map((r) => r.targetId), reqs.map((r) => r.destination), reqs.map((r) => r.destinationIndex), reqs.map((r) => r.tryCount),
          reqs.map(() => randomUUID()), horizonMs, reqs[0]!.nodeId])
      const x = rows[0]
      if (!x) return { kind: 'stopped' }
      if (x.missing) return { kind: 'missing', reason: x.missing }
      const gone = x.gone ?? []
      const reserved = (x.reserved ?? []).map((r) => ({ cc: toCampaigncall(r.cc), inMs: Number(r.in_ms) }))
      if (reserved.length === 0) {
        return x.open >= x.max_concurrent_calls ? { kind: 'full', gone, reserved } : { kind: 'later', inMs: Number(x.first_in_ms), gone, reserved }
      }
      const c = x.campaign
      const campaign = toCampaign({ ...c, created_at: new Date(c.created_at), updated_at: new Date(c.updated_at) })
      return { kind: 'reserved', gone, reserved, gapMs: Number(x.gap_ms), campaign, outplan: toOutplan(x.outplan!) }
    })
  }

  /**
   * A paused or stopped campaign's dial jobs that nobody runs and that have
   * no attempt to settle (inside the status change's transaction; `run`
   * re-arms every target). Running jobs end by themselves; a job whose node
   * died (its lease expired, not released) stays to settle that node's call.
   */
  async dropIdleDialJobs(campaignId: string, q: Queryable = this.db): Promise<number> {
    const { rowCount } = await q.query(
      `DELETE FROM jobs j WHERE j.kind = $2 AND starts_with(j.key, $3) AND j.lease_until IS NULL
          AND NOT EXISTS (SELECT 1 FROM campaigncalls cc WHERE cc.campaign_id = $1 AND cc.outdial_target_id = (j.payload->>'targetId')::uuid AND cc.status <> 'done')`,
      [campaignId, CAMPAIGN_DIAL_JOB, `${campaignId}:`])
    return rowCount ?? 0
  }

  /** end_handle stop: whether the campaign runs, should stop at the end, and has nothing left to work (one statement, stops at the first target left). */
  async finished(id: string): Promise<boolean> {
    const { rows } = await this.db.query<{ finished: boolean }>(
      `SELECT c.status = 'run' AND c.end_handle = 'stop' AND NOT (CASE
                WHEN EXISTS (SELECT 1 FROM campaign_targets WHERE campaign_id = c.id AND status <> 'done') THEN true
                ELSE EXISTS (SELECT 1 FROM outdial_targets t WHERE t.outdial_id = c.outdial_id
                               AND NOT EXISTS (SELECT 1 FROM campaign_targets ct WHERE ct.campaign_id = c.id AND ct.target_id = t.id)) END) AS finished
         FROM campaigns c WHERE c.id = $1`, [id])
    return rows[0]?.finished ?? false
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
