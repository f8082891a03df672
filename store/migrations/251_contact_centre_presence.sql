-- Contact agents' "on a call" test (store/contact-agents.ts ON_CALL) runs for
-- each agent whose status is recomputed and for each candidate of a queue's
-- claim: an index per way a live call names a party keeps it to index probes
-- instead of a scan of the account's live calls. Partial: only live calls are
-- in them, so they stay as small as the calls in progress.
CREATE INDEX IF NOT EXISTS calls_live_to ON calls(account_id, to_number) WHERE status IN ('queued', 'ringing', 'in-progress');
CREATE INDEX IF NOT EXISTS calls_live_from ON calls(account_id, from_number) WHERE status IN ('queued', 'ringing', 'in-progress') AND direction = 'inbound';
CREATE INDEX IF NOT EXISTS calls_live_extension ON calls(extension_id) WHERE status IN ('queued', 'ringing', 'in-progress') AND extension_id IS NOT NULL;
