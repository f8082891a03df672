import { randomUUID } from 'node:crypto'
import type { Queryable } from './common.ts'

/**
 * Durable jobs (migration 240_jobs.sql): what the JobScheduler
 * (job-scheduler.ts) claims and runs. A job is unique by (kind, key), so the
 * owner of a piece of work (a campaign target, a scheduled call) schedules it
 * under its own id and can re-time or cancel it later.
 *
 * Two clocks meet here on purpose. Due times are business time, compared with
 * the `now` the scheduler passes (its Clock, which tests move). Leases are
 * real time, from the database's `now()`: they say whether a node is still
 * alive, and every node agrees on the database's clock.
 */
export interface Job {
  id: string
  kind: string
  key: string
  accountId: string | null
  dueAt: Date
  payload: Record<string, unknown>
  /** Runs started, this one included: more than 1 means an earlier run may have done part of the work (a node died, or it threw). */
  attempts: number
  lastError: string | null
}

export interface ScheduleInput {
  kind: string
  key: string
  accountId?: string | null | undefined
  dueAt: Date
  payload?: Record<string, unknown> | undefined
}

interface JobRow {
  id: string; kind: string; key: string; account_id: string | null; due_at: Date; payload: Record<string, unknown>
  attempts: number; last_error: string | null
}

const COLUMNS = 'id, kind, key, account_id, due_at, payload, attempts, last_error'

const toJob = (r: JobRow): Job => ({
  id: r.id, kind: r.kind, key: r.key, accountId: r.account_id, dueAt: r.due_at, payload: r.payload ?? {}, attempts: r.attempts, lastError: r.last_error,
})

/** Errors in a row before a job is given up (status failed, kept for inspection). */
export const MAX_JOB_ERRORS = 8

export class JobRepository {
  constructor(private readonly db: Queryable) {}

  /**
   * Creates the (kind, key) job, or re-times it and replaces its payload.
   * A job running right now is not disturbed: the new time and payload apply
   * when that run ends (whatever the run itself asked for). `q` runs it
   * inside the caller's transaction, with the state change it belongs to.
   */
  async schedule(input: ScheduleInput, q: Queryable = this.db): Promise<Job> {
    const payload = JSON.stringify(input.payload ?? {})
    const { rows } = await q.query<JobRow>(
      `INSERT INTO jobs (id, kind, key, account_id, due_at, payload) VALUES ($1, $2, $3, $4, $5, $6::jsonb)
       ON CONFLICT (kind, key) DO UPDATE SET
         due_at        = CASE WHEN jobs.lease_until > now() THEN jobs.due_at ELSE EXCLUDED.due_at END,
         payload       = CASE WHEN jobs.lease_until > now() THEN jobs.payload ELSE EXCLUDED.payload END,
         rerun_at      = CASE WHEN jobs.lease_until > now() THEN EXCLUDED.due_at END,
         rerun_payload = CASE WHEN jobs.lease_until > now() THEN EXCLUDED.payload END,
         cancel_requested = false,
         status = 'pending', errors = 0, updated_at = now()
       RETURNING ${COLUMNS}`,
      [randomUUID(), input.kind, input.key, input.accountId ?? null, input.dueAt, payload],
    )
    return toJob(rows[0]!)
  }

  /**
   * Removes the job so it never runs again. A running job finishes its run
   * and is removed after it (its handler should also see its own state
   * changed). True when the job existed.
   */
  async cancel(kind: string, key: string, q: Queryable = this.db): Promise<boolean> {
    const { rows } = await q.query<{ running: boolean }>(
      `WITH gone AS (DELETE FROM jobs WHERE kind = $1 AND key = $2 AND (lease_until IS NULL OR lease_until <= now()) RETURNING false AS running),
            later AS (UPDATE jobs SET cancel_requested = true, rerun_at = NULL, rerun_payload = NULL, updated_at = now()
                       WHERE kind = $1 AND key = $2 AND lease_until > now() RETURNING true AS running)
       SELECT running FROM gone UNION ALL SELECT running FROM later`,
      [kind, key],
    )
    return rows.length > 0
  }

  async get(kind: string, key: string): Promise<Job | null> {
    const { rows } = await this.db.query<JobRow>(`SELECT ${COLUMNS} FROM jobs WHERE kind = $1 AND key = $2`, [kind, key])
    return rows[0] ? toJob(rows[0]) : null
  }

  /** How many jobs of a kind wait (due or not) and run; for /health and tests. */
  async counts(kind: string): Promise<{ pending: number; running: number; failed: number }> {
    const { rows } = await this.db.query<{ pending: string; running: string; failed: string }>(
      `SELECT count(*) FILTER (WHERE status = 'pending' AND (lease_until IS NULL OR lease_until <= now())) AS pending,
              count(*) FILTER (WHERE status = 'pending' AND lease_until > now()) AS running,
              count(*) FILTER (WHERE status = 'failed') AS failed
         FROM jobs WHERE kind = $1`, [kind])
    const r = rows[0]!
    return { pending: Number(r.pending), running: Number(r.running), failed: Number(r.failed) }
  }

  // The scheduler's side.

  /**
   * Leases up to `limit` due jobs of one kind to `owner`. SKIP LOCKED: rows
   * another node is claiming in this instant are left to it, so no job is
   * claimed twice and claimers never wait on each other.
   */
  async claim(opts: { owner: string; kind: string; now: Date; limit: number; leaseMs: number }): Promise<Job[]> {
    if (opts.limit <= 0) return []
    const { rows } = await this.db.query<JobRow>(
      `UPDATE jobs j SET lease_owner = $1, lease_until = now() + ($2 || ' milliseconds')::interval, attempts = j.attempts + 1, updated_at = now()
        WHERE j.id IN (SELECT id FROM jobs
                        WHERE kind = $3 AND status = 'pending' AND due_at <= $4 AND (lease_until IS NULL OR lease_until <= now())
                        ORDER BY due_at LIMIT $5 FOR UPDATE SKIP LOCKED)
        RETURNING ${COLUMNS}`,
      [opts.owner, String(opts.leaseMs), opts.kind, opts.now, opts.limit],
    )
    return rows.map(toJob).sort((a, b) => a.dueAt.getTime() - b.dueAt.getTime())
  }

  /** Keeps the leases alive; returns the ids still held (a job missing from it was lost: cancelled, or taken after a stall). */
  async renew(owner: string, ids: string[], leaseMs: number): Promise<Set<string>> {
    if (ids.length === 0) return new Set()
    const { rows } = await this.db.query<{ id: string }>(
      `UPDATE jobs SET lease_until = now() + ($3 || ' milliseconds')::interval
        WHERE id = ANY($2::uuid[]) AND lease_owner = $1 AND NOT cancel_requested RETURNING id`,
      [owner, ids, String(leaseMs)],
    )
    return new Set(rows.map((r) => r.id))
  }

  /**
   * The run is over. Done: the job goes, unless schedule() re-timed it
   * meanwhile. `runAt`: it stays, due then (a schedule() meanwhile wins).
   * `error`: a failure counted towards MAX_JOB_ERRORS, retried at runAt.
   */
  async finish(owner: string, id: string, outcome: { runAt?: Date | undefined; error?: string | undefined }): Promise<void> {
    const failed = outcome.error !== undefined
    await this.db.query(
      `WITH mine AS (SELECT id, rerun_at, cancel_requested FROM jobs WHERE id = $1 AND lease_owner = $2 FOR UPDATE),
            gone AS (DELETE FROM jobs j USING mine
                      WHERE j.id = mine.id AND (mine.cancel_requested OR (mine.rerun_at IS NULL AND $3::timestamptz IS NULL))
                      RETURNING j.id)
       UPDATE jobs j SET
         due_at = COALESCE(j.rerun_at, $3::timestamptz), payload = COALESCE(j.rerun_payload, j.payload),
         rerun_at = NULL, rerun_payload = NULL, lease_owner = NULL, lease_until = NULL,
         errors = CASE WHEN $4 AND j.rerun_at IS NULL THEN j.errors + 1 ELSE 0 END,
         last_error = CASE WHEN $4 THEN $5 ELSE j.last_error END,
         -- a run that ended normally starts the count again: the next run is a first run, not a re-run
         attempts = CASE WHEN $4 THEN j.attempts ELSE 0 END,
         status = CASE WHEN $4 AND j.rerun_at IS NULL AND j.errors + 1 >= $6 THEN 'failed' ELSE 'pending' END,
         updated_at = now()
        FROM mine WHERE j.id = mine.id AND NOT EXISTS (SELECT 1 FROM gone)`,
      [id, owner, outcome.runAt ?? null, failed, outcome.error ?? null, MAX_JOB_ERRORS],
    )
  }

  /** Hands leases back at once (a node shutting down): another node may run those jobs now instead of after their lease. */
  async release(owner: string, ids: string[]): Promise<void> {
    if (ids.length === 0) return
    await this.db.query(`UPDATE jobs SET lease_owner = NULL, lease_until = NULL, updated_at = now() WHERE id = ANY($2::uuid[]) AND lease_owner = $1`, [owner, ids])
  }

  /** The earliest due time among jobs of these kinds nobody holds: how long the scheduler may sleep (expiring leases are found by its poll). */
  async nextDue(kinds: string[]): Promise<Date | null> {
    if (kinds.length === 0) return null
    const { rows } = await this.db.query<{ due: Date | null }>(
      `SELECT min(due_at) AS due FROM jobs WHERE kind = ANY($1::text[]) AND status = 'pending' AND (lease_until IS NULL OR lease_until <= now())`,
      [kinds],
    )
    return rows[0]?.due ?? null
  }
}
