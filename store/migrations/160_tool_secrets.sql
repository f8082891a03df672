-- Custom HTTP tools sign their requests (Standard Webhooks) with a per-tool
-- secret, sealed like webhook secrets (store/secrets.ts). Tools created before
-- this migration have none and send unsigned requests until they are re-created.
ALTER TABLE tools ADD COLUMN IF NOT EXISTS secret_sealed text;
