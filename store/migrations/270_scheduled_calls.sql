-- Scheduled calls (Leadlock ScheduledCall): one outbound agent call at
-- `scheduled_for` (UTC), fired by the job scheduler (job kind
-- `scheduled-call`, key = id). pending → dialing → completed | failed |
-- cancelled. A callback an agent booked (schedule_callback) has is_callback,
-- previous_call_id and callback_context.
CREATE TABLE IF NOT EXISTS scheduled_calls (
  id                uuid PRIMARY KEY,
  seq               bigserial,
  account_id        uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  agent_id          uuid NOT NULL,
  to_phone_number   text NOT NULL,
  from_phone_number text NOT NULL,
  phone_number_id   uuid,
  contact_id        text,
  contact_name      text,
  scheduled_for     timestamptz NOT NULL,
  timezone          text NOT NULL DEFAULT 'UTC',
  status            text NOT NULL DEFAULT 'pending',
  is_callback       boolean NOT NULL DEFAULT false,
  previous_call_id  uuid,
  callback_context  text,
  call_id           uuid,
  attempts          integer NOT NULL DEFAULT 0,
  last_error        text,
  dialed_at         timestamptz,
  source            text NOT NULL DEFAULT 'api',
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS scheduled_calls_account_due ON scheduled_calls(account_id, scheduled_for, seq);
