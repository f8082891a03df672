-- Contact centre (VoipBin agent/queue/queuecall): human contact agents, ACD
-- queues, and the callers in them. Agent status is derived (store/contact-agents.ts
-- STATUS_RULE) from what the API set, registration, live calls and offers.
CREATE TABLE IF NOT EXISTS contact_agents (
  id                   uuid PRIMARY KEY,
  seq                  bigserial,
  account_id           uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name                 text NOT NULL,
  detail               text NOT NULL DEFAULT '',
  addresses            jsonb NOT NULL,
  tag_ids              text[] NOT NULL DEFAULT '{}',
  ring_method          text NOT NULL DEFAULT 'ringall',
  -- what the API set: available, away, busy, offline
  set_status           text NOT NULL DEFAULT 'available',
  -- derived: ringing, away/offline (set), offline (no extension registered), busy, available
  status               text NOT NULL DEFAULT 'available',
  status_since         timestamptz NOT NULL DEFAULT now(),
  -- the queuecall it is being offered now (status ringing)
  offered_queuecall_id uuid,
  -- presence keys: the extensions it is reached on, and the call parties that are it
  extension_ids        uuid[] NOT NULL DEFAULT '{}',
  dial_keys            text[] NOT NULL DEFAULT '{}',
  reachable_otherwise  boolean NOT NULL DEFAULT false,
  last_offered_at      timestamptz,
  last_offer_result    text,
  missed_count         integer NOT NULL DEFAULT 0,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS contact_agents_account ON contact_agents(account_id, seq DESC);
CREATE INDEX IF NOT EXISTS contact_agents_available ON contact_agents(account_id, status);
CREATE INDEX IF NOT EXISTS contact_agents_extensions ON contact_agents USING gin (extension_ids);
CREATE INDEX IF NOT EXISTS contact_agents_dial_keys ON contact_agents USING gin (dial_keys);

CREATE TABLE IF NOT EXISTS queues (
  id                     uuid PRIMARY KEY,
  seq                    bigserial,
  account_id             uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name                   text NOT NULL,
  detail                 text NOT NULL DEFAULT '',
  routing_method         text NOT NULL DEFAULT 'random',
  tag_ids                text[] NOT NULL DEFAULT '{}',
  wait_flow_id           uuid,
  timeout_flow_id        uuid,
  wait_timeout           integer NOT NULL DEFAULT 0,
  service_timeout        integer NOT NULL DEFAULT 0,
  ring_timeout           integer NOT NULL DEFAULT 20000,
  total_incoming_count   bigint NOT NULL DEFAULT 0,
  total_serviced_count   bigint NOT NULL DEFAULT 0,
  total_abandoned_count  bigint NOT NULL DEFAULT 0,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS queues_account ON queues(account_id, seq DESC);

CREATE TABLE IF NOT EXISTS queuecalls (
  id                uuid PRIMARY KEY,
  seq               bigserial,
  account_id        uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  queue_id          uuid NOT NULL,
  reference_type    text NOT NULL DEFAULT 'call',
  reference_id      uuid NOT NULL,
  status            text NOT NULL DEFAULT 'initiating',
  end_reason        text,
  service_agent_id  uuid,
  offered_agent_ids uuid[] NOT NULL DEFAULT '{}',
  skipped_agent_ids uuid[] NOT NULL DEFAULT '{}',
  node_id           text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  tm_service        timestamptz,
  tm_end            timestamptz,
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS queuecalls_account ON queuecalls(account_id, seq DESC);
CREATE INDEX IF NOT EXISTS queuecalls_queue_live ON queuecalls(queue_id, status) WHERE status NOT IN ('done', 'abandoned');
CREATE INDEX IF NOT EXISTS queuecalls_reference ON queuecalls(reference_id);
CREATE INDEX IF NOT EXISTS queuecalls_node_live ON queuecalls(node_id) WHERE status NOT IN ('done', 'abandoned');
