-- Leadlock sequences (issue 17): a cadence of steps (call, wait,
-- voicemail_drop with delay_minutes) an AI agent works through for each
-- enrolled contact, inside operating hours. One job per enrollment (kind
-- `sequence-step`, key = enrollment id, due = next_action_at).
CREATE TABLE IF NOT EXISTS sequences (
  id                uuid PRIMARY KEY,
  seq               bigserial,
  account_id        uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name              text NOT NULL,
  description       text,
  agent_id          uuid NOT NULL,
  phone_number_id   uuid,
  from_phone_number text NOT NULL,
  steps             jsonb NOT NULL,
  max_attempts      integer NOT NULL DEFAULT 6,
  stop_on_booking   boolean NOT NULL DEFAULT true,
  operating_hours   jsonb,
  is_active         boolean NOT NULL DEFAULT false,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS sequences_account ON sequences(account_id, seq);

CREATE TABLE IF NOT EXISTS sequence_enrollments (
  id                uuid PRIMARY KEY,
  seq               bigserial,
  account_id        uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  sequence_id       uuid NOT NULL REFERENCES sequences(id) ON DELETE CASCADE,
  contact_phone     text NOT NULL,
  contact_name      text,
  contact_email     text,
  contact_id        text,
  timezone          text,
  current_step      integer NOT NULL DEFAULT 0,
  status            text NOT NULL DEFAULT 'active',
  next_action_at    timestamptz,
  total_calls       integer NOT NULL DEFAULT 0,
  total_attempts    integer NOT NULL DEFAULT 0,
  last_call_outcome text,
  current_call_id   uuid,
  dispositions      jsonb NOT NULL DEFAULT '[]',
  enrolled_via      text NOT NULL DEFAULT 'api',
  enrolled_at       timestamptz NOT NULL DEFAULT now(),
  completed_at      timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS sequence_enrollments_sequence ON sequence_enrollments(sequence_id, seq);
CREATE INDEX IF NOT EXISTS sequence_enrollments_active ON sequence_enrollments(sequence_id, contact_phone) WHERE status = 'active';
