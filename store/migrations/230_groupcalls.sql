-- Groupcalls (VoipBin CallManagerGroupcall): several destinations dialled
-- together (ring_all) or one after another (linear); the first to answer
-- wins and the others are hung up (answer_method hangup_others). A flow's
-- `connect` is one too, with master_call_id the flow's call.
CREATE TABLE IF NOT EXISTS groupcalls (
  id             uuid PRIMARY KEY,
  seq            bigserial,
  account_id     uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  status         text NOT NULL DEFAULT 'progressing',
  source         jsonb NOT NULL,
  destinations   jsonb NOT NULL,
  flow_id        uuid,
  actions        jsonb,
  ring_method    text NOT NULL,
  answer_method  text NOT NULL,
  timeout_ms     integer NOT NULL,
  master_call_id uuid,
  answer_call_id uuid,
  call_ids       jsonb NOT NULL DEFAULT '[]',
  dial_index     integer NOT NULL DEFAULT 0,
  call_count     integer NOT NULL DEFAULT 0,
  outcome        text,
  node_id        text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  ended_at       timestamptz
);
CREATE INDEX IF NOT EXISTS groupcalls_account ON groupcalls(account_id, seq DESC);
CREATE INDEX IF NOT EXISTS groupcalls_live ON groupcalls(node_id) WHERE status <> 'hangup';
