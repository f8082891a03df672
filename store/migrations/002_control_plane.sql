-- Control-plane resources. Every row carries account_id and every API query is
-- scoped by it. `seq` is a monotonic cursor for pagination (created order).
-- Secrets never appear in clear: SIP passwords for registrars are kept as HA1
-- (MD5 and SHA-256, RFC 2617/8760), and secrets the engine must replay
-- (carrier outbound passwords, webhook signing secrets) are AES-256-GCM sealed.

ALTER TABLE accounts ADD COLUMN operator boolean NOT NULL DEFAULT false;
ALTER TABLE accounts ADD COLUMN seq bigserial;
UPDATE accounts SET operator = true WHERE id = (SELECT id FROM accounts ORDER BY created_at, id LIMIT 1);
ALTER TABLE api_keys ADD COLUMN seq bigserial;

CREATE TABLE settings (
  key   text PRIMARY KEY,
  value jsonb NOT NULL
);

CREATE TABLE agents (
  id          uuid PRIMARY KEY,
  seq         bigserial,
  account_id  uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name        text NOT NULL,
  type        text NOT NULL DEFAULT 'pipeline',
  spec        jsonb NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_account ON agents(account_id, seq);

CREATE TABLE trunks (
  id                  uuid PRIMARY KEY,
  seq                 bigserial,
  account_id          uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name                text NOT NULL,
  spec                jsonb NOT NULL DEFAULT '{}',
  inbound_ips         text[] NOT NULL DEFAULT '{}',
  inbound_username    text,
  inbound_realm       text,
  inbound_ha1_md5     text,
  inbound_ha1_sha256  text,
  outbound_password   text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trunks_account ON trunks(account_id, seq);

CREATE TABLE numbers (
  id          uuid PRIMARY KEY,
  seq         bigserial,
  account_id  uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  number      text NOT NULL UNIQUE,
  name        text,
  trunk_id    uuid REFERENCES trunks(id) ON DELETE SET NULL,
  target      jsonb NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX numbers_account ON numbers(account_id, seq);

CREATE TABLE routes (
  id          uuid PRIMARY KEY,
  seq         bigserial,
  account_id  uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name        text NOT NULL,
  spec        jsonb NOT NULL DEFAULT '{}',
  prefix      text NOT NULL,
  trunk_id    uuid NOT NULL REFERENCES trunks(id) ON DELETE CASCADE,
  priority    integer NOT NULL DEFAULT 100,
  enabled     boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routes_account ON routes(account_id, seq);

CREATE TABLE extensions (
  id           uuid PRIMARY KEY,
  seq          bigserial,
  account_id   uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  extension    text NOT NULL,
  name         text,
  spec         jsonb NOT NULL DEFAULT '{}',
  realm        text NOT NULL,
  ha1_md5      text NOT NULL,
  ha1_sha256   text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (account_id, extension)
);
CREATE INDEX extensions_account ON extensions(account_id, seq);

CREATE TABLE tools (
  id          uuid PRIMARY KEY,
  seq         bigserial,
  account_id  uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name        text NOT NULL,
  spec        jsonb NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (account_id, name)
);
CREATE INDEX tools_account ON tools(account_id, seq);

CREATE TABLE webhooks (
  id                 uuid PRIMARY KEY,
  seq                bigserial,
  account_id         uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  url                text NOT NULL,
  events             text[] NOT NULL,
  description        text,
  secret_sealed      text NOT NULL,
  enabled            boolean NOT NULL DEFAULT true,
  failure_count      integer NOT NULL DEFAULT 0,
  last_delivered_at  timestamptz,
  last_failed_at     timestamptz,
  disabled_reason    text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_account ON webhooks(account_id, seq);

CREATE TABLE calls (
  id             uuid PRIMARY KEY,
  seq            bigserial,
  account_id     uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  direction      text NOT NULL,
  status         text NOT NULL,
  from_number    text NOT NULL,
  to_number      text NOT NULL,
  agent_id       uuid,
  number_id      uuid,
  trunk_id       uuid,
  extension_id   uuid,
  conference_id  uuid,
  sip_call_id    text,
  node_id        text,
  ended_reason   text,
  hangup_by      text,
  summary        text,
  transcript     jsonb NOT NULL DEFAULT '[]',
  timings        jsonb NOT NULL DEFAULT '[]',
  quality        jsonb,
  metadata       jsonb NOT NULL DEFAULT '{}',
  created_at     timestamptz NOT NULL DEFAULT now(),
  ringing_at     timestamptz,
  answered_at    timestamptz,
  ended_at       timestamptz,
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calls_account ON calls(account_id, seq DESC);
CREATE INDEX calls_account_status ON calls(account_id, status, seq DESC);
CREATE INDEX calls_sip_call_id ON calls(sip_call_id);

CREATE TABLE recordings (
  id             uuid PRIMARY KEY,
  seq            bigserial,
  account_id     uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  call_id        uuid REFERENCES calls(id) ON DELETE SET NULL,
  conference_id  uuid,
  status         text NOT NULL DEFAULT 'recording',
  format         text NOT NULL DEFAULT 'wav',
  path           text,
  duration_ms    integer,
  size_bytes     bigint,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recordings_account ON recordings(account_id, seq DESC);

CREATE TABLE conferences (
  id                uuid PRIMARY KEY,
  seq               bigserial,
  account_id        uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name              text NOT NULL,
  status            text NOT NULL DEFAULT 'init',
  max_participants  integer NOT NULL DEFAULT 250,
  record            boolean NOT NULL DEFAULT false,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conferences_account ON conferences(account_id, seq DESC);

-- The outbox: every event, written in the transaction of the state change.
CREATE TABLE events (
  id          uuid PRIMARY KEY,
  seq         bigserial,
  account_id  uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  type        text NOT NULL,
  call_id     uuid,
  data        jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_account ON events(account_id, seq);

-- One row per (event, subscribed webhook), also written in that transaction,
-- so deliveries survive restarts. A claim is a lease (locked_until) so that a
-- node dying mid-delivery leaves the row to be picked up again.
CREATE TABLE webhook_deliveries (
  id               uuid PRIMARY KEY,
  seq              bigserial,
  account_id       uuid NOT NULL,
  webhook_id       uuid NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
  event_id         uuid NOT NULL REFERENCES events(id) ON DELETE CASCADE,
  status           text NOT NULL DEFAULT 'pending',
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  locked_until     timestamptz,
  last_error       text,
  last_status      integer,
  delivered_at     timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries(webhook_id);
