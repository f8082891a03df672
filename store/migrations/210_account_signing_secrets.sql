-- Issue 16: each account's application signing secret (Standard Webhooks
-- `whsec_…`, AES-256-GCM sealed like the webhooks' secrets). Status callbacks
-- and webhook apps are signed with it; created on first use, rotated through
-- POST /v1/signing-secret/rotate.
CREATE TABLE IF NOT EXISTS account_signing_secrets (
  account_id     uuid PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
  secret_sealed  text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  rotated_at     timestamptz
);
