-- The per-account do-not-call list: numbers (E.164) the engine never dials
-- on the account's behalf (POST /v1/calls, scheduled calls, sequences,
-- campaigns, any CallControl.originate). `source` says who listed it
-- (api, agent: the add_to_do_not_call tool, campaign, ...), `call_id` the
-- call in which an agent listed it.
CREATE TABLE IF NOT EXISTS do_not_call (
  id         uuid PRIMARY KEY,
  seq        bigserial,
  account_id uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  number     text NOT NULL,
  reason     text,
  source     text NOT NULL DEFAULT 'api',
  call_id    uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (account_id, number)
);
CREATE INDEX IF NOT EXISTS do_not_call_account ON do_not_call(account_id, seq);
