-- Issue 16: Telefon's status_callback on calls and numbers. Every status change
-- of such a call is sent to the URL, signed with the account signing secret,
-- in order, through the webhook delivery machinery: the call gets a delivery
-- target of its own in `webhooks` (kind 'status_callback', call_id set), a
-- lane that sends one delivery at a time, oldest first, and is hidden from
-- /v1/webhooks. The target is removed once the call has ended and every one of
-- its deliveries is settled.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS status_callback text;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS status_callback_method text;
ALTER TABLE numbers ADD COLUMN IF NOT EXISTS status_callback text;
ALTER TABLE numbers ADD COLUMN IF NOT EXISTS status_callback_method text;

ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'webhook';
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS call_id uuid REFERENCES calls(id) ON DELETE CASCADE;
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS method text NOT NULL DEFAULT 'POST';
-- A status callback target signs with the account signing secret (read when it sends, so a rotation applies to retries).
ALTER TABLE webhooks ALTER COLUMN secret_sealed DROP NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS webhooks_call ON webhooks(call_id) WHERE call_id IS NOT NULL;
