import { randomUUID } from 'node:crypto'
import { pageQuery, type Page, type PageRequest, type Queryable } from './common.ts'

/**
 * Campaigncalls (VoipBin CampaignManagerCampaigncall): one per dial attempt
 * of a campaign's target (`try_count` 1, 2, ...; unique per campaign, target
 * and try, so a job that runs again after its node died finds its attempt
 * instead of making a second one). `status` dialing (reserved, not yet
 * placed) → progressing (its call placed: `call_id`) → done, with `result`
 * success|fail and the `outcome` that decided it.
 */

export type CampaigncallStatus = 'dialing' | 'progressing' | 'done'
export type CampaigncallResult = '' | 'success' | 'fail'
/** How an attempt ended. */
/** `node-lost`: the node that placed the call died and its record never ended (another node settled the attempt). */
export const CAMPAIGNCALL_OUTCOMES = ['answered', 'voicemail', 'busy', 'no-answer', 'failed', 'machine', 'dnc-skipped', 'node-lost'] as const
export type CampaigncallOutcome = (typeof CAMPAIGNCALL_OUTCOMES)[number]

export interface Campaigncall {
  id: string
  accountId: string
  campaignId: string
  outplanId: string
  outdialId: string
  outdialTargetId: string
  callId: string | null
  source: string
  destination: string
  destinationIndex: number
  tryCount: number
  status: CampaigncallStatus
  result: CampaigncallResult
  outcome: CampaigncallOutcome | null
  nodeId: string | null
  createdAt: string
  updatedAt: string
  endedAt: string | null
}

export interface CampaigncallInput {
  accountId: string
  campaignId: string
  outplanId: string
  outdialId: string
  outdialTargetId: string
  source: string
  destination: string
  destinationIndex: number
  tryCount: number
  status: CampaigncallStatus
  nodeId: string | null
}

export interface CampaigncallRow {
  id: string; seq: string; account_id: string; campaign_id: string; outplan_id: string; outdial_id: string; outdial_target_id: string
  call_id: string | null; source: string; destination: string; destination_index: number; try_count: number; status: string; result: string
  outcome: string | null; node_id: string | null; created_at: Date; updated_at: Date; ended_at: Date | null
}
type Row = CampaigncallRow
/** A row as read, or as row_to_json gives it (timestamps as text: reads merged into one statement return attempts so). */
type RowOrJson = Omit<Row, 'created_at' | 'updated_at' | 'ended_at'> & { created_at: Date | string; updated_at: Date | string; ended_at: Date | string | null }
export const toCampaigncall = (r: RowOrJson): Campaigncall => ({
  id: r.id, accountId: r.account_id, campaignId: r.campaign_id, outplanId: r.outplan_id, outdialId: r.outdial_id, outdialTargetId: r.outdial_target_id,
  callId: r.call_id, source: r.source, destination: r.destination, destinationIndex: r.destination_index, tryCount: r.try_count,
  status: r.status as CampaigncallStatus, result: r.result as CampaigncallResult, outcome: r.outcome as CampaigncallOutcome | null, nodeId: r.node_id,
  createdAt: new Date(r.created_at).toISOString(), updatedAt: new Date(r.updated_at).toISOString(), endedAt: r.ended_at ? new Date(r.ended_at).toISOString() : null,
})

export class CampaigncallRepository {
  constructor(private readonly db: Queryable) {}

  async create(input: CampaigncallInput, q: Queryable = this.db): Promise<Campaigncall> {
    const { rows } = await q.query<Row>(
      `INSERT INTO campaigncalls (id, account_id, campaign_id, outplan_id, outdial_id, outdial_target_id, source, destination, destination_index,
         try_count, status, node_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *`,
      [randomUUID(), input.accountId, input.campaignId, input.outplanId, input.outdialId, input.outdialTargetId, input.source, input.destination,
        input.destinationIndex, input.tryCount, input.status, input.nodeId],
    )
    return toCampaigncall(rows[0]!)
  }

  async get(accountId: string, id: string): Promise<Campaigncall | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM campaigncalls WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toCampaigncall(rows[0]) : null
  }

  /** Newest first. */
  list(accountId: string, filter: { campaignId?: string | undefined; status?: CampaigncallStatus | undefined; outdialTargetId?: string | undefined }, page: PageRequest): Promise<Page<Campaigncall>> {
    const where: string[] = []
    const params: unknown[] = []
    const add = (col: string, v: unknown) => { params.push(v); where.push(`${col} = $${params.length + 1}`) }
    if (filter.campaignId) add('campaign_id', filter.campaignId)
    if (filter.status) add('status', filter.status)
    if (filter.outdialTargetId) add('outdial_target_id', filter.outdialTargetId)
    return pageQuery<Row, Campaigncall>(this.db, { table: 'campaigncalls', accountId, order: 'desc', page, where, params }, toCampaigncall)
  }

  /** Its call is placed. */
  async placed(id: string, callId: string, q: Queryable = this.db): Promise<void> {
    await q.query(`UPDATE campaigncalls SET call_id = $2, status = 'progressing', updated_at = now() WHERE id = $1`, [id, callId])
  }

  /** The call an attempt placed whose id was not written (its node died between originate and `placed`): found by its metadata. */
  async findPlacedCall(id: string): Promise<string | null> {
    // calls_campaigncall (migration 261) serves this: no scan of every call.
    const { rows } = await this.db.query<{ id: string }>(`SELECT id FROM calls WHERE metadata ? 'campaigncallId' AND (metadata->>'campaigncallId') = $1 LIMIT 1`, [id])
    return rows[0]?.id ?? null
  }

  /** Ends the attempt (once: null when it was already done). */
  async finish(id: string, result: Exclude<CampaigncallResult, ''>, outcome: CampaigncallOutcome, q: Queryable = this.db): Promise<Campaigncall | null> {
    const { rows } = await q.query<Row>(
      `UPDATE campaigncalls SET status = 'done', result = $2, outcome = $3, ended_at = now(), updated_at = now()
       WHERE id = $1 AND status <> 'done' RETURNING *`, [id, result, outcome])
    return rows[0] ? toCampaigncall(rows[0]) : null
  }

  /** An attempt reserved but never placed (the campaign was paused meanwhile): it goes, as if never made. */
  async withdraw(id: string, q: Queryable = this.db): Promise<void> {
    await q.query(`DELETE FROM campaigncalls WHERE id = $1 AND status = 'dialing' AND call_id IS NULL`, [id])
  }
}
