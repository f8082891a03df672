-- Outbound registration status for the API and /health: the last success, the
-- last failure (kept after recovery, with its SIP status), since when the state
-- holds, and the owning node's lease (renewed on every scan; another node takes
-- the trunk over once it lapses).
ALTER TABLE sip_outbound_registrations
  ADD COLUMN IF NOT EXISTS last_success_at   timestamptz,
  ADD COLUMN IF NOT EXISTS last_error_status integer,
  ADD COLUMN IF NOT EXISTS last_error_at     timestamptz,
  ADD COLUMN IF NOT EXISTS state_since       timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN IF NOT EXISTS lease_expires_at  timestamptz;
