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

/**
 * What scheduling an existing (kind, key) does: re-time it and replace its
 * payload, or, while it runs (a live lease), keep the run as it is and note
 * the new time and payload for when it ends. A new schedule also lifts a
 * pending cancel and starts its error count again.
 */
const UPSERT = `ON CONFLICT (kind, key) DO UPDATE SET
  due_at        = CASE WHEN jobs.lease_until > now() THEN jobs.due_at ELSE EXCLUDED.due_at END,
  payload       = CASE WHEN jobs.lease_until > now() THEN jobs.payload ELSE EXCLUDED.payload END,
  rerun_at      = CASE WHEN jobs.lease_until > now() THEN EXCLUDED.due_at END,
  rerun_payload = CASE WHEN jobs.lease_until > now() THEN EXCLUDED.payload END,
  cancel_requested = false,
  status = 'pending', errors = 0, updated_at = now()
RETURNING ${COLUMNS}`


export class JobRepository {
  private readonly scheduledListeners = new Set<(job: Job) => void>()

  constructor(private readonly db: Queryable) {}

  /** Told of every job scheduled through this repository (this node's scheduler wakes for it without polling). */
  onScheduled(fn: (job: Job) => void): () => void {
    this.scheduledListeners.add(fn)
    return () => this.scheduledListeners.delete(fn)
  }

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
       ${UPSERT}`,
      [randomUUID(), input.kind, input.key, input.accountId ?? null, input.dueAt, payload],
    )
    const job = toJob(rows[0]!)
    for (const fn of this.scheduledListeners) fn(job)
    return job
  }

  /**
   * schedule() for many jobs in one statement (a campaign arming thousands
   * of targets): the same rules per job, 500 rows per statement.
   */
  async scheduleMany(inputs: ScheduleInput[], q: Queryable = this.db): Promise<void> {
    // One row per (kind, key), the last one given: a statement may not change a row twice.
    const unique = [...new Map(inputs.map((j) => [`${j.kind}\u0000${j.key}`, j])).values()]
    for (let i = 0; i < unique.length; i += 500) {
      const chunk = unique.slice(i, i + 500)
      const { rows } = await q.query<JobRow>(
        `INSERT INTO jobs (id, kind, key, account_id, due_at, payload)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::timestamptz[], $6::jsonb[])
         ${UPSERT}`,
        [chunk.map(() => randomUUID()), chunk.map((j) => j.kind), chunk.map((j) => j.key), chunk.map((j) => j.accountId ?? null),
          chunk.map((j) => j.dueAt), chunk.map((j) => JSON.stringify(j.payload ?? {}))],
      )
      // One wake for the chunk: the soonest job.
      const soonest = rows.map(toJob).reduce<Job | null>((a, b) => (!a || b.dueAt < a.dueAt ? b : a), null)
      if (soonest) for (const fn of this.scheduledListeners) fn(soonest)
    }
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

  /**
   * cancel() for every job of a kind whose key starts with `prefix` (a
   * deleted campaign's dial jobs, keyed `<campaign>:<target>`), in one
   * statement; `q` runs it inside the caller's transaction. Returns how many.
   */
  async cancelPrefix(kind: string, prefix: string, q: Queryable = this.db): Promise<number> {
    const { rows } = await q.query<{ n: number }>(
      `WITH gone AS (DELETE FROM jobs WHERE kind = $1 AND starts_with(key, $2) AND (lease_until IS NULL OR lease_until <= now()) RETURNING 1),
            later AS (UPDATE jobs SET cancel_requested = true, rerun_at = NULL, rerun_payload = NULL, updated_at = now()
                       WHERE kind = $1 AND starts_with(key, $2) AND lease_until > now() RETURNING 1)
       SELECT ((SELECT count(*) FROM gone) + (SELECT count(*) FROM later))::int AS n`,
      [kind, prefix],
    )
    return rows[0]?.n ?? 0
  }

  async get(kind: string, key: string): Promise<Job | null> {
    const { rows } = await this.db.query<JobRow>(`SELECT ${COLUMNS} FROM jobs WHERE kind = $1 AND key = $2`, [kind, key])
    return rows[0] ? toJob(rows[0]) : null
  }

  /** How many jobs of a kind wait (due or not) and run; for /health and tests. */
  async counts(kind: string): Promise<{ pending: number; running: number }> {
    const { rows } = await this.db.query<{ pending: string; running: string }>(
      `SELECT count(*) FILTER (WHERE status = 'pending' AND (lease_until IS NULL OR lease_until <= now())) AS pending,
              count(*) FILTER (WHERE status = 'pending' AND lease_until > now()) AS running
         FROM jobs WHERE kind = $1`, [kind])
    const r = rows[0]!
    return { pending: Number(r.pending), running: Number(r.running) }
  }

  // The scheduler's side.

  /**
   * Leases up to `limit` due jobs of these kinds to `owner`, soonest first,
   * and says when the next job not taken falls due (so the scheduler needs
   * no second statement to know how long to sleep). SKIP LOCKED: rows
   * another node is claiming in this instant are left to it, so no job is
   * claimed twice and claimers never wait on each other.
   */
  async claim(opts: { owner: string; kinds: string[]; now: Date; limit: number; leaseMs: number }): Promise<{ jobs: Job[]; nextDue: Date | null }> {
    if (opts.limit <= 0 || opts.kinds.length === 0) return { jobs: [], nextDue: null }
    const { rows } = await this.db.query<JobRow & { next_due: Date | null }>(
      `WITH picked AS (SELECT id FROM jobs
                        WHERE kind = ANY($3::text[]) AND status = 'pending' AND due_at <= $4 AND (lease_until IS NULL OR lease_until <= now())
                        ORDER BY due_at LIMIT $5 FOR UPDATE SKIP LOCKED),
            claimed AS (UPDATE jobs j SET lease_owner = $1, lease_until = now() + ($2 || ' milliseconds')::interval, attempts = j.attempts + 1, updated_at = now()
                          FROM picked WHERE j.id = picked.id
                          RETURNING j.id, j.kind, j.key, j.account_id, j.due_at, j.payload, j.attempts, j.last_error),
            -- per kind, the first free row in jobs_due's order: an index walk that stops at once, not a scan of every pending job
            next AS (SELECT min(x.due_at) AS next_due FROM unnest($3::text[]) AS k(kind),
                       LATERAL (SELECT due_at FROM jobs
                                 WHERE jobs.kind = k.kind AND status = 'pending' AND (lease_until IS NULL OR lease_until <= now())
                                   AND id NOT IN (SELECT id FROM picked)
                                 ORDER BY due_at LIMIT 1) x)
       SELECT c.*, next.next_due FROM next LEFT JOIN claimed c ON true`,
      [opts.owner, String(opts.leaseMs), opts.kinds, opts.now, opts.limit],
    )
    const jobs = rows.filter((r) => r.id !== null).map(toJob).sort((a, b) => a.dueAt.getTime() - b.dueAt.getTime())
    return { jobs, nextDue: rows[0]?.next_due ?? null }
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
   * `error`: a failure, counted (`errors`) and kept (`last_error`), retried at runAt. A job is
   * never given up: work that keeps failing keeps being retried (the scheduler backs off to
   * 5 minutes) and shows in the log and its row, rather than being lost.
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
         updated_at = now()
        FROM mine WHERE j.id = mine.id AND NOT EXISTS (SELECT 1 FROM gone)`,
      [id, owner, outcome.runAt ?? null, failed, outcome.error ?? null],
    )
  }

  /**
   * Several runs that ended done, in one statement: each job goes, unless it
   * was re-timed during its run (then it stays, due at that time) — the
   * common path of finish(), batched by the scheduler.
   */
  async finishDone(owner: string, ids: string[]): Promise<void> {
    if (ids.length === 0) return
    await this.db.query(
      `WITH mine AS (SELECT id, rerun_at, cancel_requested FROM jobs WHERE id = ANY($1::uuid[]) AND lease_owner = $2 FOR UPDATE),
            gone AS (DELETE FROM jobs j USING mine WHERE j.id = mine.id AND (mine.cancel_requested OR mine.rerun_at IS NULL) RETURNING j.id)
       UPDATE jobs j SET due_at = j.rerun_at, payload = COALESCE(j.rerun_payload, j.payload), rerun_at = NULL, rerun_payload = NULL,
                         lease_owner = NULL, lease_until = NULL, errors = 0, attempts = 0, status = 'pending', updated_at = now()
         FROM mine WHERE j.id = mine.id AND NOT mine.cancel_requested AND mine.rerun_at IS NOT NULL`,
      [ids, owner],
    )
  }

  /** Hands leases back at once (a node shutting down): another node may run those jobs now instead of after their lease. */
  async release(owner: string, ids: string[], opts: { unstarted?: boolean } = {}): Promise<void> {
    if (ids.length === 0) return
    // unstarted: claimed but never handed to a handler (over a kind's concurrency), so the claim does not count as a run.
    await this.db.query(
      `UPDATE jobs SET lease_owner = NULL, lease_until = NULL, attempts = attempts - $3::int, updated_at = now() WHERE id = ANY($2::uuid[]) AND lease_owner = $1`,
      [owner, ids, opts.unstarted ? 1 : 0])
  }
}
