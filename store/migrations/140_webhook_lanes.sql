-- Webhooks lose nothing (issue 14). A failing endpoint keeps its events queued
-- and is disabled only after failing continuously for days (WEBHOOK_DISABLE_AFTER),
-- not after 20 failed attempts; deliveries are claimed per endpoint (lanes) so a
-- slow endpoint cannot hold up the others.

-- Start of the current run of failed attempts (NULL once an attempt succeeds):
-- the disable clock, and what the API shows as `failingSince`.
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS failing_since timestamptz;
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS disabled_at timestamptz;
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS last_error text;

-- When the delivery was last attempted: a delivery whose retries are used up is
-- given up only if the endpoint accepted something else since that attempt.
ALTER TABLE webhook_deliveries ADD COLUMN IF NOT EXISTS last_attempt_at timestamptz;

-- One lane per endpoint: its due deliveries in order, and its in-flight leases.
CREATE INDEX IF NOT EXISTS webhook_deliveries_lane ON webhook_deliveries(webhook_id, next_attempt_at, seq) WHERE status = 'pending';

-- The old rule disabled a webhook at its 20th consecutive failed attempt and then
-- queued nothing for it. Those webhooks come back as failing since their last
-- failure, under the new rule (they are disabled again only if they keep failing).
UPDATE webhooks SET enabled = true, failing_since = COALESCE(last_failed_at, now()), disabled_reason = NULL
 WHERE NOT enabled AND disabled_reason = 'too many consecutive failures';
UPDATE webhooks SET disabled_at = updated_at WHERE NOT enabled AND disabled_at IS NULL;
