-- Programmable calls: stored flows (VoipBin FlowManagerFlow), their runs on
-- calls (activeflows: what ran, when, with what outcome) and the program a
-- call runs once answered (a flow, an inline action list or a webhook app).
CREATE TABLE IF NOT EXISTS flows (
  id                  uuid PRIMARY KEY,
  seq                 bigserial,
  account_id          uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name                text NOT NULL,
  detail              text NOT NULL DEFAULT '',
  actions             jsonb NOT NULL,
  on_complete_flow_id uuid,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS flows_account ON flows(account_id, seq DESC);

CREATE TABLE IF NOT EXISTS activeflows (
  id               uuid PRIMARY KEY,
  seq              bigserial,
  account_id       uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  call_id          uuid REFERENCES calls(id) ON DELETE CASCADE,
  flow_id          uuid,
  reference_type   text NOT NULL DEFAULT 'call',
  status           text NOT NULL DEFAULT 'running',
  current_action   jsonb,
  executed_actions jsonb NOT NULL DEFAULT '[]',
  variables        jsonb NOT NULL DEFAULT '{}',
  error            text,
  node_id          text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  ended_at         timestamptz
);
CREATE INDEX IF NOT EXISTS activeflows_account ON activeflows(account_id, seq DESC);
CREATE INDEX IF NOT EXISTS activeflows_call ON activeflows(call_id);

ALTER TABLE calls ADD COLUMN IF NOT EXISTS program jsonb;
