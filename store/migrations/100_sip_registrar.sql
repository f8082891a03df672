-- SIP signalling tables: registrar bindings and the digest nonce key (store/registrar-bindings.ts), outbound registrations (store/outbound-registrations.ts).
--
-- Registrar bindings, RFC 3261 §10.3: one row per (address-of-record, contact),
-- with the Call-ID/CSeq of the REGISTER that last refreshed it and the source
-- address it came from (RFC 3581 received/rport), so calls reach phones behind
-- NAT. Shared by every engine node: any node can route to any registered phone.
CREATE TABLE IF NOT EXISTS sip_registrations (
  id            uuid PRIMARY KEY,
  account_id    uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  extension_id  uuid REFERENCES extensions(id) ON DELETE CASCADE,
  aor           text NOT NULL,
  username      text NOT NULL,
  contact       text NOT NULL,
  received      text,
  transport     text NOT NULL DEFAULT 'udp',
  call_id       text NOT NULL,
  cseq          integer NOT NULL,
  q             real,
  instance_id   text,
  user_agent    text,
  node_id       text,
  expires_at    timestamptz NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (aor, contact)
);
CREATE INDEX IF NOT EXISTS sip_registrations_ext ON sip_registrations(extension_id, expires_at);
CREATE INDEX IF NOT EXISTS sip_registrations_expiry ON sip_registrations(expires_at);

-- Outbound registrations: a trunk registering to its carrier as a device.
CREATE TABLE IF NOT EXISTS sip_outbound_registrations (
  trunk_id         uuid PRIMARY KEY REFERENCES trunks(id) ON DELETE CASCADE,
  account_id       uuid NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  status           text NOT NULL,
  expires_at       timestamptz,
  last_status      integer,
  last_error       text,
  failures         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz,
  node_id          text,
  updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Secrets shared by all nodes of the SIP app (the digest nonce HMAC key).
CREATE TABLE IF NOT EXISTS sip_secrets (
  name        text PRIMARY KEY,
  value       text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
