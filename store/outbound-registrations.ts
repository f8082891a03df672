import type { Queryable } from './common.ts'
import type { TrunkOutbound } from './trunks.ts'

/**
 * Trunks registering to their carrier as a device (RFC 3261 §10.2, client
 * side): the status the owning node writes after every REGISTER, and the read
 * model the API (`GET /v1/trunks/:id/registration`) and /health show. Any node
 * reads it; one node at a time owns each trunk through a lease it renews.
 */

/** What the owning node last wrote. */
export type OutboundRegistrationStatus = 'registering' | 'registered' | 'failed' | 'unregistered'
/** What the API shows: the written status, `unregistered` once a registration lapsed, `disabled` when the trunk does not register. */
export type RegistrationState = OutboundRegistrationStatus | 'disabled'

export interface OutboundRegistrationRecord {
  trunkId: string
  accountId: string
  status: OutboundRegistrationStatus
  expiresAt: Date | null
  /** Status code of the last final response (success or failure). */
  lastStatus: number | null
  /** Reason phrase (or transport error) of the last failure; kept after recovery. */
  lastError: string | null
  lastErrorStatus: number | null
  lastErrorAt: Date | null
  lastSuccessAt: Date | null
  failures: number
  nextAttemptAt: Date | null
  nodeId: string | null
  stateSince: Date
  leaseExpiresAt: Date | null
  updatedAt: Date
}

/** One attempt's outcome, as the owning node reports it. */
export interface RegistrationOutcome {
  trunkId: string
  accountId: string
  nodeId: string
  status: OutboundRegistrationStatus
  expiresAt: Date | null
  lastStatus: number | null
  /** Set on a failed attempt. */
  error?: { status: number | null; reason: string } | null
  /** Set on a successful attempt (a 2xx to a REGISTER). */
  success?: boolean
  failures: number
  nextAttemptAt: Date | null
}

export interface RegistrationView {
  trunkId: string
  accountId: string
  trunk: string
  /** The trunk's `outbound.register`. */
  enabled: boolean
  state: RegistrationState
  /** Whether a registration that should be up is down (what /health reports). */
  down: boolean
  /** One line for a person: what is happening and what comes next. */
  message: string
  registrar: string | null
  aor: string | null
  expiresAt: Date | null
  lastSuccessAt: Date | null
  lastError: { status: number | null; reason: string; at: Date | null } | null
  failures: number
  nextAttemptAt: Date | null
  node: string | null
  since: Date
  updatedAt: Date | null
}

/** The carrier's registrar as a SIP URI (RFC 3261 §10.2: the Request-URI of the REGISTER). */
export function registrarUri(out: Pick<TrunkOutbound, 'host' | 'port' | 'transport'>): string {
  const host = out.host.includes(':') && !out.host.startsWith('[') ? `[${out.host}]` : out.host
  return `sip:${host}${out.port ? `:${out.port}` : ''}${out.transport && out.transport !== 'udp' ? `;transport=${out.transport}` : ''}`
}

/** The address-of-record the trunk registers (RFC 3261 §10.2.1: To and From of the REGISTER). */
export function registrationAor(out: Pick<TrunkOutbound, 'host' | 'username' | 'fromDomain'>, trunkName: string): string {
  const host = out.host.includes(':') && !out.host.startsWith('[') ? `[${out.host}]` : out.host
  return `${out.username ?? trunkName}@${out.fromDomain ?? host}`
}

/** A trunk that registers but has no status row yet is pending this long before /health calls it down. */
const PENDING_GRACE_MS = 60_000

interface Row {
  trunk_id: string; account_id: string; status: string; expires_at: Date | null; last_status: number | null; last_error: string | null
  last_error_status: number | null; last_error_at: Date | null; last_success_at: Date | null
  failures: number; next_attempt_at: Date | null; node_id: string | null; state_since: Date; lease_expires_at: Date | null; updated_at: Date
}

const toRecord = (r: Row): OutboundRegistrationRecord => ({
  trunkId: r.trunk_id, accountId: r.account_id, status: r.status as OutboundRegistrationStatus, expiresAt: r.expires_at,
  lastStatus: r.last_status, lastError: r.last_error, lastErrorStatus: r.last_error_status, lastErrorAt: r.last_error_at, lastSuccessAt: r.last_success_at,
  failures: r.failures, nextAttemptAt: r.next_attempt_at, nodeId: r.node_id, stateSince: r.state_since, leaseExpiresAt: r.lease_expires_at, updatedAt: r.updated_at,
})

interface TrunkRow { id: string; account_id: string; name: string; outbound: TrunkOutbound | null; trunk_updated_at: Date }

/** The API's and /health's view of one trunk's registration at `now`. */
export function registrationView(t: TrunkRow, rec: OutboundRegistrationRecord | null, now = new Date()): RegistrationView {
  const out = t.outbound
  const enabled = out?.register === true
  const lastError = rec?.lastError ? { status: rec.lastErrorStatus, reason: rec.lastError, at: rec.lastErrorAt } : null
  const errorText = lastError ? `${lastError.status ?? ''} ${lastError.reason}`.trim() : 'an error'
  const lapsed = rec?.status === 'registered' && rec.expiresAt !== null && rec.expiresAt.getTime() <= now.getTime()
  let state: RegistrationState
  let message: string
  let since = rec?.stateSince ?? t.trunk_updated_at
  if (!enabled) {
    state = 'disabled'
    message = out ? 'the trunk does not register (outbound.register is off)' : 'the trunk has no outbound settings'
  } else if (!rec) {
    state = 'registering'
    message = 'waiting for a node to pick the trunk up'
  } else if (lapsed) {
    state = 'unregistered'
    since = rec.expiresAt!
    message = `the registration lapsed at ${rec.expiresAt!.toISOString()} without a refresh (its node${rec.nodeId ? ` ${rec.nodeId}` : ''} stopped refreshing)`
  } else {
    state = rec.status
    const next = rec.nextAttemptAt ? `; next attempt at ${rec.nextAttemptAt.toISOString()}` : ''
    message = state === 'registered' ? `registered until ${rec.expiresAt?.toISOString() ?? '?'}${next.replace('attempt', 'refresh')}`
      : state === 'failed' ? `the registrar answered ${errorText} (${rec.failures} failure${rec.failures === 1 ? '' : 's'} in a row)${next}`
        : state === 'registering' ? 'REGISTER sent, waiting for the registrar'
          : 'not registered (the owning node unregistered it); another node takes it over on its next scan'
  }
  const pendingTooLong = state === 'registering' && now.getTime() - since.getTime() > PENDING_GRACE_MS
  return {
    trunkId: t.id, accountId: t.account_id, trunk: t.name, enabled, state,
    down: enabled && (state === 'failed' || state === 'unregistered' || pendingTooLong),
    message,
    registrar: out ? registrarUri(out) : null,
    aor: out ? registrationAor(out, t.name) : null,
    expiresAt: state === 'registered' ? rec?.expiresAt ?? null : null,
    lastSuccessAt: rec?.lastSuccessAt ?? null,
    lastError,
    failures: rec?.failures ?? 0,
    nextAttemptAt: enabled ? rec?.nextAttemptAt ?? null : null,
    node: rec?.nodeId ?? null,
    since,
    updatedAt: rec?.updatedAt ?? null,
  }
}

// r.* first: the trunk's own columns (account_id) win where both tables have one.
const VIEW_SELECT = `SELECT r.*, t.id, t.account_id, t.name, t.spec->'outbound' AS outbound, t.updated_at AS trunk_updated_at
  FROM trunks t LEFT JOIN sip_outbound_registrations r ON r.trunk_id = t.id`

export class OutboundRegistrationRepository {
  constructor(private readonly db: Queryable) {}

  async get(trunkId: string): Promise<OutboundRegistrationRecord | null> {
    const { rows } = await this.db.query<Row>('SELECT * FROM sip_outbound_registrations WHERE trunk_id = $1', [trunkId])
    return rows[0] ? toRecord(rows[0]) : null
  }

  /**
   * Takes a trunk for `nodeId` when nobody holds it, it is ours already, or
   * its owner's lease lapsed (that node died or lost the database).
   */
  async claim(trunkId: string, accountId: string, nodeId: string, leaseMs: number): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `INSERT INTO sip_outbound_registrations (trunk_id, account_id, status, node_id, lease_expires_at)
       VALUES ($1, $2, 'registering', $3, now() + $4 * interval '1 millisecond')
       ON CONFLICT (trunk_id) DO UPDATE SET node_id = $3, lease_expires_at = EXCLUDED.lease_expires_at, updated_at = now()
         WHERE sip_outbound_registrations.node_id IS NULL OR sip_outbound_registrations.node_id = $3
            OR sip_outbound_registrations.lease_expires_at IS NULL OR sip_outbound_registrations.lease_expires_at < now()`,
      [trunkId, accountId, nodeId, leaseMs])
    return (rowCount ?? 0) > 0
  }

  /** Extends `nodeId`'s leases; returns the trunks it still holds (another node may have taken one over). */
  async renew(nodeId: string, leaseMs: number): Promise<Set<string>> {
    const { rows } = await this.db.query<{ trunk_id: string }>(
      `UPDATE sip_outbound_registrations SET lease_expires_at = now() + $2 * interval '1 millisecond'
       WHERE node_id = $1 RETURNING trunk_id`, [nodeId, leaseMs])
    return new Set(rows.map((r) => r.trunk_id))
  }

  /**
   * Writes one attempt's outcome if `nodeId` still owns the trunk. Returns the
   * status before (null when there was no row) and whether it was written.
   */
  async record(o: RegistrationOutcome): Promise<{ saved: boolean; previous: OutboundRegistrationStatus | null }> {
    const { rows } = await this.db.query<{ previous: string | null }>(
      `WITH prev AS (SELECT status FROM sip_outbound_registrations WHERE trunk_id = $1)
       INSERT INTO sip_outbound_registrations AS r (trunk_id, account_id, status, expires_at, last_status, last_error, last_error_status, last_error_at,
           last_success_at, failures, next_attempt_at, node_id, state_since)
       VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $6::text IS NULL THEN NULL ELSE now() END,
           CASE WHEN $8::boolean THEN now() ELSE NULL END, $9, $10, $11, now())
       ON CONFLICT (trunk_id) DO UPDATE SET
         state_since = CASE WHEN r.status = EXCLUDED.status THEN r.state_since ELSE now() END,
         status = EXCLUDED.status, expires_at = EXCLUDED.expires_at, last_status = EXCLUDED.last_status,
         last_error = COALESCE(EXCLUDED.last_error, r.last_error),
         last_error_status = CASE WHEN EXCLUDED.last_error IS NULL THEN r.last_error_status ELSE EXCLUDED.last_error_status END,
         last_error_at = COALESCE(EXCLUDED.last_error_at, r.last_error_at),
         last_success_at = COALESCE(EXCLUDED.last_success_at, r.last_success_at),
         failures = EXCLUDED.failures, next_attempt_at = EXCLUDED.next_attempt_at, node_id = EXCLUDED.node_id, updated_at = now()
         WHERE r.node_id IS NULL OR r.node_id = EXCLUDED.node_id
       RETURNING (SELECT status FROM prev) AS previous`,
      [o.trunkId, o.accountId, o.status, o.expiresAt, o.lastStatus, o.error?.reason ?? null, o.error?.status ?? null, o.success === true,
        o.failures, o.nextAttemptAt, o.nodeId],
    )
    if (!rows[0]) return { saved: false, previous: null }
    return { saved: true, previous: (rows[0].previous as OutboundRegistrationStatus | null) ?? null }
  }

  /** The owner lets go (shutdown, or the trunk stopped registering): `unregistered`, free for any node. */
  async release(trunkId: string, nodeId: string): Promise<{ released: boolean; previous: OutboundRegistrationStatus | null }> {
    const { rows } = await this.db.query<{ previous: string }>(
      `WITH prev AS (SELECT status FROM sip_outbound_registrations WHERE trunk_id = $1)
       UPDATE sip_outbound_registrations SET status = 'unregistered', expires_at = NULL, next_attempt_at = NULL, node_id = NULL,
         lease_expires_at = NULL, failures = 0, state_since = CASE WHEN status = 'unregistered' THEN state_since ELSE now() END, updated_at = now()
       WHERE trunk_id = $1 AND node_id = $2 RETURNING (SELECT status FROM prev) AS previous`, [trunkId, nodeId])
    return rows[0] ? { released: true, previous: rows[0].previous as OutboundRegistrationStatus } : { released: false, previous: null }
  }

  /** One trunk of one account (null: no such trunk in that account). */
  async view(accountId: string, trunkId: string, now = new Date()): Promise<RegistrationView | null> {
    const { rows } = await this.db.query<TrunkRow & Partial<Row>>(`${VIEW_SELECT} WHERE t.account_id = $1 AND t.id = $2`, [accountId, trunkId])
    const r = rows[0]
    return r ? registrationView(r, r.trunk_id ? toRecord(r as Row) : null, now) : null
  }

  /** Every trunk that should be registered, across accounts and nodes (for /health). */
  async enabledViews(now = new Date()): Promise<RegistrationView[]> {
    const { rows } = await this.db.query<TrunkRow & Partial<Row>>(
      `${VIEW_SELECT} WHERE (t.spec->'outbound'->>'register')::boolean IS TRUE ORDER BY t.seq`)
    return rows.map((r) => registrationView(r, r.trunk_id ? toRecord(r as Row) : null, now))
  }
}
