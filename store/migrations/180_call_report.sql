-- The end-of-call report (`call.report`) is emitted once per call: the first
-- node to set report_at announces it, a repeat (or a racing node) finds it set.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS report_at timestamptz;
