-- Outbound campaigns (VoipBin campaign-manager + outdial-manager): an outplan
-- (how to dial: caller ID, ring timeout, attempts, retry delays), an outdial
-- (a contact list) with its targets, a campaign working one outdial with one
-- outplan, its per-target progress and one campaigncall per dial attempt.
CREATE TABLE IF NOT EXISTS outplans (
  id              uuid PRIMARY KEY,
  seq             bigserial,
  account_id      uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name            text NOT NULL,
  detail          text NOT NULL DEFAULT '',
  source          jsonb NOT NULL,
  dial_timeout_ms integer NOT NULL,
  try_interval_ms integer NOT NULL,
  retry_delays    jsonb NOT NULL DEFAULT '{}',
  max_attempts    integer NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS outplans_account ON outplans(account_id, seq);

CREATE TABLE IF NOT EXISTS outdials (
  id         uuid PRIMARY KEY,
  seq        bigserial,
  account_id uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name       text NOT NULL,
  detail     text NOT NULL DEFAULT '',
  data       text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS outdials_account ON outdials(account_id, seq);

CREATE TABLE IF NOT EXISTS outdial_targets (
  id           uuid PRIMARY KEY,
  seq          bigserial,
  account_id   uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  outdial_id   uuid NOT NULL REFERENCES outdials(id) ON DELETE CASCADE,
  name         text NOT NULL DEFAULT '',
  detail       text NOT NULL DEFAULT '',
  data         text NOT NULL DEFAULT '',
  destinations jsonb NOT NULL,
  timezone     text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS outdial_targets_outdial ON outdial_targets(outdial_id, seq);

CREATE TABLE IF NOT EXISTS campaigns (
  id                   uuid PRIMARY KEY,
  seq                  bigserial,
  account_id           uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name                 text NOT NULL,
  detail               text NOT NULL DEFAULT '',
  type                 text NOT NULL,
  agent_id             uuid,
  flow_id              uuid,
  actions              jsonb,
  outplan_id           uuid NOT NULL REFERENCES outplans(id),
  outdial_id           uuid NOT NULL REFERENCES outdials(id),
  operating_hours      jsonb,
  calls_per_second     double precision NOT NULL,
  max_concurrent_calls integer NOT NULL,
  end_handle           text NOT NULL,
  amd                  jsonb,
  status               text NOT NULL DEFAULT 'stop',
  status_reason        text,
  -- The pacing slot: the next dial may start at this (real) time; taken atomically by any node.
  next_dial_at         timestamptz NOT NULL DEFAULT now(),
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS campaigns_account ON campaigns(account_id, seq);
CREATE INDEX IF NOT EXISTS campaigns_outdial ON campaigns(outdial_id);

-- One row per (campaign, target) once the campaign ran: attempts made, when the next is due, done.
CREATE TABLE IF NOT EXISTS campaign_targets (
  campaign_id uuid NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
  target_id   uuid NOT NULL REFERENCES outdial_targets(id) ON DELETE CASCADE,
  account_id  uuid NOT NULL,
  try_count   integer NOT NULL DEFAULT 0,
  next_try_at timestamptz NOT NULL,
  status      text NOT NULL DEFAULT 'idle',
  outcome     text,
  PRIMARY KEY (campaign_id, target_id)
);

CREATE TABLE IF NOT EXISTS campaigncalls (
  id                uuid PRIMARY KEY,
  seq               bigserial,
  account_id        uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  campaign_id       uuid NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
  outplan_id        uuid NOT NULL,
  outdial_id        uuid NOT NULL,
  outdial_target_id uuid NOT NULL,
  call_id           uuid,
  source            text NOT NULL,
  destination       text NOT NULL,
  destination_index integer NOT NULL,
  try_count         integer NOT NULL,
  status            text NOT NULL,
  result            text NOT NULL DEFAULT '',
  outcome           text,
  node_id           text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  ended_at          timestamptz,
  UNIQUE (campaign_id, outdial_target_id, try_count)
);
CREATE INDEX IF NOT EXISTS campaigncalls_account ON campaigncalls(account_id, seq);
CREATE INDEX IF NOT EXISTS campaigncalls_campaign ON campaigncalls(campaign_id, seq);
CREATE INDEX IF NOT EXISTS campaigncalls_open ON campaigncalls(campaign_id) WHERE status <> 'done';
