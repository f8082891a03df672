-- The deliveries leased right now, per endpoint: every claim counts them to keep
-- each lane within its in-flight limit. A settled delivery has no lease, so this
-- stays as small as what is in flight, however long an endpoint's backlog is.
CREATE INDEX IF NOT EXISTS webhook_deliveries_leased ON webhook_deliveries(webhook_id) WHERE status = 'pending' AND locked_until IS NOT NULL;
