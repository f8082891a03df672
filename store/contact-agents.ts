import { randomUUID } from 'node:crypto'
import { pageQuery, iso, type Page, type PageRequest, type Queryable } from './common.ts'
import type { DialAddress } from './groupcalls.ts'
import type { Emit, Outbox } from './outbox.ts'

/**
 * Contact agents (VoipBin AgentManagerAgent): the humans a queue offers its
 * callers to. Not AI agents (agents.ts).
 *
 * Their `status` is derived, never written by hand: STATUS_RULE below is the
 * one place the rules live, and every change that may move it (the API's
 * status, a registration, a call starting or ending, an offer) recomputes it
 * in the same transaction and announces `contact_agent.status_changed` when
 * it moved. `set_status` keeps what the API set, so an agent that goes
 * offline (unregistered) or busy (on a call) comes back to it.
 */

export type ContactAgentStatus = 'available' | 'busy' | 'away' | 'offline' | 'ringing'
export type SettableStatus = Exclude<ContactAgentStatus, 'ringing'>
export type AgentRingMethod = 'ringall' | 'linear'

/** The API's and the events' shape (VoipBin field names). */
export interface ContactAgent {
  id: string
  accountId: string
  name: string
  detail: string
  addresses: DialAddress[]
  tag_ids: string[]
  ring_method: AgentRingMethod
  status: ContactAgentStatus
  /** What the API set last (available, away, busy, offline); `status` returns to it. */
  set_status: SettableStatus
  /** When `status` last changed (longest-idle routing orders by it). */
  status_since: string
  /** The queuecall being offered to the agent now (status ringing). */
  current_queuecall_id: string | null
  last_offered_at: string | null
  /** How the last offer ended: answered, no-answer, busy, failed, canceled. */
  last_offer_result: string | null
  /** Offers the agent did not take (no answer, busy/rejected, failed). */
  missed_count: number
  createdAt: string
  updatedAt: string
}

/** What identifies the agent in registrations and calls, from its addresses (call/queues resolves them). */
export interface PresenceKeys {
  /** The extensions it is reached on. */
  extensionIds: string[]
  /** Call parties that are the agent: `ext:<username>` and `<username>`, numbers, SIP URIs. */
  dialKeys: string[]
  /** It has an address that is not an extension (a number, a URI): registration does not make it offline. */
  reachableOtherwise: boolean
}

export interface ContactAgentInput {
  name: string
  detail?: string
  addresses: DialAddress[]
  tagIds?: string[]
  ringMethod?: AgentRingMethod
  setStatus?: SettableStatus
  presence: PresenceKeys
}

export type ContactAgentPatch = Partial<Omit<ContactAgentInput, 'presence'>> & { presence?: PresenceKeys }

/** Live call statuses: a call in one of them makes its agent busy. */
const LIVE = `('queued', 'ringing', 'in-progress')`

/**
 * The status rules, first match wins:
 * 1. offered a queue's call now → `ringing`;
 * 2. set `away` or `offline` by the API → that;
 * 3. reached only on extensions and none of them registered → `offline`;
 * 4. set `busy`, or a party of a live call (its extension, number or URI; ringing, offered by a queue or not) → `busy`;
 * 5. else `available`.
 */
export const STATUS_RULE = `CASE
  WHEN a.offered_queuecall_id IS NOT NULL THEN 'ringing'
  WHEN a.set_status IN ('away', 'offline') THEN a.set_status
  WHEN cardinality(a.extension_ids) > 0 AND NOT a.reachable_otherwise AND NOT EXISTS (
    SELECT 1 FROM sip_registrations r WHERE r.extension_id = ANY(a.extension_ids) AND r.expires_at > now()) THEN 'offline'
  WHEN a.set_status = 'busy' OR ${ON_CALL('a')} THEN 'busy'
  ELSE 'available'
END`

/**
 * True when the agent (table alias `a`) is a party of a live call: one
 * EXISTS per way a call names it, each answered by its partial index on live
 * calls (migration 251), so the cost is a few index probes per agent, not a
 * scan of the account's live calls (one OR over them could use no index).
 */
function ON_CALL(a: string): string {
  return `(EXISTS (SELECT 1 FROM calls c WHERE c.account_id = ${a}.account_id AND c.to_number = ANY(${a}.dial_keys) AND c.status IN ${LIVE})
    OR EXISTS (SELECT 1 FROM calls c WHERE c.account_id = ${a}.account_id AND c.from_number = ANY(${a}.dial_keys) AND c.direction = 'inbound' AND c.status IN ${LIVE})
    OR EXISTS (SELECT 1 FROM calls c WHERE c.extension_id = ANY(${a}.extension_ids) AND c.account_id = ${a}.account_id AND c.status IN ${LIVE}))`
}

export interface ContactAgentRow {
  id: string; seq: string; account_id: string; name: string; detail: string; addresses: DialAddress[]; tag_ids: string[]; ring_method: string
  set_status: string; status: string; status_since: Date; offered_queuecall_id: string | null; extension_ids: string[]; dial_keys: string[]
  reachable_otherwise: boolean; last_offered_at: Date | null; last_offer_result: string | null; missed_count: number; created_at: Date; updated_at: Date
}
export const toContactAgent = (r: ContactAgentRow): ContactAgent => ({
  id: r.id, accountId: r.account_id, name: r.name, detail: r.detail, addresses: r.addresses, tag_ids: r.tag_ids, ring_method: r.ring_method as AgentRingMethod,
  status: r.status as ContactAgentStatus, set_status: r.set_status as SettableStatus, status_since: r.status_since.toISOString(),
  current_queuecall_id: r.offered_queuecall_id, last_offered_at: iso(r.last_offered_at), last_offer_result: r.last_offer_result, missed_count: r.missed_count,
  createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
})

/**
 * Recomputes the status of the agents `where` selects (SQL over alias `a`,
 * parameters from $1), inside the caller's transaction; announces each that
 * moved. Returns them all, as they are now.
 */
export async function refreshStatuses(c: Queryable, emit: Emit, where: string, params: unknown[]): Promise<ContactAgent[]> {
  const { rows } = await c.query<ContactAgentRow & { prev_status: string }>(
    `WITH prev AS (SELECT a.id, a.status FROM contact_agents a WHERE ${where} ORDER BY a.id FOR UPDATE)
     UPDATE contact_agents a SET status = ${STATUS_RULE},
       status_since = CASE WHEN (${STATUS_RULE}) <> a.status THEN now() ELSE a.status_since END
     FROM prev WHERE a.id = prev.id
     RETURNING a.*, prev.status AS prev_status`, params)
  const out: ContactAgent[] = []
  for (const r of rows) {
    const agent = toContactAgent(r)
    if (r.prev_status !== r.status) await emit(agent.accountId, 'contact_agent.status_changed', { contact_agent: agent, previous_status: r.prev_status })
    out.push(agent)
  }
  return out
}

export class ContactAgentRepository {
  constructor(private readonly db: Queryable, private readonly outbox: Outbox) {}

  async create(accountId: string, input: ContactAgentInput): Promise<ContactAgent> {
    const id = randomUUID()
    return this.outbox.transaction(async (c, emit) => {
      await c.query(
        `INSERT INTO contact_agents (id, account_id, name, detail, addresses, tag_ids, ring_method, set_status, extension_ids, dial_keys, reachable_otherwise, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'offline')`,
        [id, accountId, input.name, input.detail ?? '', JSON.stringify(input.addresses), input.tagIds ?? [], input.ringMethod ?? 'ringall',
          input.setStatus ?? 'available', input.presence.extensionIds, input.presence.dialKeys, input.presence.reachableOtherwise],
      )
      // A new agent comes in from `offline`: one that is available at once is announced (and wakes the queues).
      const [agent] = await refreshStatuses(c, emit, 'a.id = $1', [id])
      await emit(accountId, 'contact_agent.created', { contact_agent: agent })
      return agent!
    })
  }

  async get(accountId: string, id: string): Promise<ContactAgent | null> {
    const { rows } = await this.db.query<ContactAgentRow>('SELECT * FROM contact_agents WHERE account_id = $1 AND id = $2', [accountId, id])
    return rows[0] ? toContactAgent(rows[0]) : null
  }

  /** Newest first. `tagId`: agents that carry it. */
  list(accountId: string, filter: { status?: ContactAgentStatus | undefined; tagId?: string | undefined }, page: PageRequest): Promise<Page<ContactAgent>> {
    const where: string[] = []
    const params: unknown[] = []
    if (filter.status) { params.push(filter.status); where.push(`status = $${params.length + 1}`) }
    if (filter.tagId) { params.push(filter.tagId); where.push(`$${params.length + 1} = ANY(tag_ids)`) }
    return pageQuery<ContactAgentRow, ContactAgent>(this.db, { table: 'contact_agents', accountId, order: 'desc', page, where, params }, toContactAgent)
  }

  async update(accountId: string, id: string, patch: ContactAgentPatch): Promise<ContactAgent | null> {
    return this.outbox.transaction(async (c, emit) => {
      const { rowCount } = await c.query(
        `UPDATE contact_agents SET name = COALESCE($3, name), detail = COALESCE($4, detail), addresses = COALESCE($5, addresses),
           tag_ids = COALESCE($6, tag_ids), ring_method = COALESCE($7, ring_method), set_status = COALESCE($8, set_status),
           extension_ids = COALESCE($9, extension_ids), dial_keys = COALESCE($10, dial_keys), reachable_otherwise = COALESCE($11, reachable_otherwise),
           updated_at = now()
         WHERE account_id = $1 AND id = $2`,
        [accountId, id, patch.name ?? null, patch.detail ?? null, patch.addresses ? JSON.stringify(patch.addresses) : null, patch.tagIds ?? null,
          patch.ringMethod ?? null, patch.setStatus ?? null, patch.presence?.extensionIds ?? null, patch.presence?.dialKeys ?? null,
          patch.presence?.reachableOtherwise ?? null],
      )
      if (!rowCount) return null
      const [agent] = await refreshStatuses(c, emit, 'a.id = $1', [id])
      // `changed`: the fields the request set; `addresses` means its presence keys may have moved (agent-presence.ts).
      if (agent) await emit(accountId, 'contact_agent.updated', { contact_agent: agent, changed: changedFields(patch) })
      return agent ?? null
    })
  }

  async remove(accountId: string, id: string): Promise<boolean> {
    return this.outbox.transaction(async (c, emit) => {
      const { rows } = await c.query<ContactAgentRow>('DELETE FROM contact_agents WHERE account_id = $1 AND id = $2 RETURNING *', [accountId, id])
      if (!rows[0]) return false
      await emit(accountId, 'contact_agent.deleted', { contact_agent: toContactAgent(rows[0]) })
      return true
    })
  }

  /**
   * Every presence key of the account's agents (what agent-presence.ts
   * keeps in memory so a call no agent is a party of costs no query).
   */
  async presenceKeys(accountId: string): Promise<{ extensionIds: string[]; dialKeys: string[] }> {
    const { rows } = await this.db.query<{ extension_ids: string[] | null; dial_keys: string[] | null }>(
      `SELECT ARRAY(SELECT DISTINCT unnest(extension_ids) FROM contact_agents WHERE account_id = $1) AS extension_ids,
              ARRAY(SELECT DISTINCT unnest(dial_keys) FROM contact_agents WHERE account_id = $1) AS dial_keys`, [accountId])
    return { extensionIds: rows[0]?.extension_ids ?? [], dialKeys: rows[0]?.dial_keys ?? [] }
  }

  /** Recomputes one agent's status (announced if it moved). */
  async refresh(accountId: string, id: string): Promise<ContactAgent | null> {
    const [agent] = await this.outbox.transaction((c, emit) => refreshStatuses(c, emit, 'a.account_id = $1 AND a.id = $2', [accountId, id]))
    return agent ?? null
  }

  /** How many agents of the account carry every one of these tags (a queue with none to offer to is refused). */
  async countMatching(accountId: string, tagIds: string[]): Promise<number> {
    const { rows } = await this.db.query<{ n: string }>('SELECT count(*) AS n FROM contact_agents WHERE account_id = $1 AND tag_ids @> $2::text[]', [accountId, tagIds])
    return Number(rows[0]!.n)
  }

  /**
   * Presence moved for whatever matches: an extension (its registration
   * changed), or call parties (a call started or ended). Recomputes the
   * agents concerned; announces those whose status changed.
   */
  async presenceChanged(accountId: string, what: { extensionIds?: string[]; dialKeys?: string[] }, opts: { known?: boolean } = {}): Promise<ContactAgent[]> {
    const ext = what.extensionIds ?? []
    const keys = what.dialKeys ?? []
    if (!ext.length && !keys.length) return []
    // Most calls are no agent's: look before taking locks (unless the caller matched the keys to agents already).
    if (!opts.known) {
      const { rowCount } = await this.db.query(
        'SELECT 1 FROM contact_agents WHERE account_id = $1 AND (extension_ids && $2::uuid[] OR dial_keys && $3::text[]) LIMIT 1', [accountId, ext, keys])
      if (!rowCount) return []
    }
    return this.outbox.transaction((c, emit) =>
      refreshStatuses(c, emit, 'a.account_id = $1 AND (a.extension_ids && $2::uuid[] OR a.dial_keys && $3::text[])', [accountId, ext, keys]))
  }
}

const PATCH_FIELDS: Record<keyof ContactAgentPatch, string | null> = {
  name: 'name', detail: 'detail', addresses: 'addresses', tagIds: 'tag_ids', ringMethod: 'ring_method', setStatus: 'status', presence: null,
}
function changedFields(patch: ContactAgentPatch): string[] {
  return (Object.keys(patch) as Array<keyof ContactAgentPatch>).filter((k) => patch[k] !== undefined).flatMap((k) => PATCH_FIELDS[k] ?? [])
}

export { ON_CALL as onCallCondition }
