-- The durable job scheduler (DESIGN.md "Cluster model"): work due at a time
-- (a campaign's next dial, a scheduled call, a sequence step), claimed by
-- one node at a time with a lease (FOR UPDATE SKIP LOCKED). A node that dies
-- mid-job leaves its lease to expire, and another node runs the job again.
-- A job is (kind, key) unique: scheduling it again re-times it.
CREATE TABLE IF NOT EXISTS jobs (
  id               uuid PRIMARY KEY,
  kind             text NOT NULL,
  key              text NOT NULL,
  account_id       uuid REFERENCES accounts(id) ON DELETE CASCADE,
  -- 'pending' (waiting or running: a live lease means running) or 'failed' (gave up after repeated errors)
  status           text NOT NULL DEFAULT 'pending',
  due_at           timestamptz NOT NULL,
  payload          jsonb NOT NULL DEFAULT '{}',
  attempts         integer NOT NULL DEFAULT 0,
  errors           integer NOT NULL DEFAULT 0,
  last_error       text,
  lease_owner      text,
  lease_until      timestamptz,
  -- schedule() or cancel() while the job runs: applied when that run ends
  rerun_at         timestamptz,
  rerun_payload    jsonb,
  cancel_requested boolean NOT NULL DEFAULT false,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (kind, key)
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(kind, due_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS jobs_leases ON jobs(lease_owner) WHERE lease_owner IS NOT NULL;
