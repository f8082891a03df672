-- Indexes for the call read paths (issue 6). Every GET /v1/calls filter reads
-- (account_id, <filter>, seq DESC) in page order, so a filtered page stops after
-- `limit` rows instead of walking the account's whole history.

-- GET /v1/calls/:id lists the call's recordings: by call, not by scanning the account's.
CREATE INDEX IF NOT EXISTS recordings_call ON recordings(call_id, seq) WHERE call_id IS NOT NULL;

-- ?agentId=
CREATE INDEX IF NOT EXISTS calls_account_agent ON calls(account_id, agent_id, seq DESC) WHERE agent_id IS NOT NULL;

-- ?number= matches either side: two indexes the planner ORs together.
CREATE INDEX IF NOT EXISTS calls_account_from ON calls(account_id, from_number, seq DESC);
CREATE INDEX IF NOT EXISTS calls_account_to ON calls(account_id, to_number, seq DESC);

-- ?direction=
CREATE INDEX IF NOT EXISTS calls_account_direction ON calls(account_id, direction, seq DESC);

-- Live calls (drain, restart recovery) without reading every finished call.
CREATE INDEX IF NOT EXISTS calls_live ON calls(seq) WHERE status IN ('queued', 'ringing', 'in-progress');
