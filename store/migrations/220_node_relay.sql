-- Messages between engine nodes (store/node-relay.ts) that do not fit in one
-- NOTIFY payload (PostgreSQL limits it to 8000 bytes): the notification
-- carries the row's id, the receiver reads and deletes the row. Transient,
-- hence UNLOGGED: a crash loses only messages whose sender has timed out anyway.
CREATE UNLOGGED TABLE IF NOT EXISTS node_relay_messages (
  id uuid PRIMARY KEY,
  body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
