-- Webhooks (issue 13): signed event delivery to the SaaS app through a Cloudflare Queue.
--
-- The provisioning log is the outbox: its row is written in the same batch as the change, so
-- an event exists exactly when its change does. What a webhook needs beyond what the log kept
-- (a reactivation, the member ids a group change added or removed) is computed by the same
-- INSERT, from the state the batch starts from.
ALTER TABLE events ADD COLUMN reactivated INTEGER NOT NULL DEFAULT 0;
-- JSON arrays of member ids the write added to / removed from a group; NULL when none.
ALTER TABLE events ADD COLUMN members_added TEXT;
ALTER TABLE events ADD COLUMN members_removed TEXT;

-- A tenant's webhook endpoints. `secret` is the signing key sealed (XChaCha20-Poly1305) under
-- a key derived from the deployment secret (CURSOR_SECRET, else deployment_secrets 'webhooks');
-- it must be usable to sign, so it cannot be stored hashed. During a rotation the previous key
-- signs too, until `previous_until` (ms since the epoch).
-- `enqueued_seq`: every event with seq <= it has been sent to the queue for this endpoint (the
-- sweeper's high-water mark; it starts at the newest event when the endpoint is created).
-- `failing_since` (ms): when the current run of failed attempts began; NULL after a success.
CREATE TABLE webhooks (
  id              TEXT    PRIMARY KEY,
  tenant          TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  url             TEXT    NOT NULL,
  events          TEXT    NOT NULL DEFAULT '["*"]',
  format          TEXT    NOT NULL DEFAULT 'json' CHECK (format IN ('json', 'set')),
  scim_base       TEXT    NOT NULL,
  secret          TEXT    NOT NULL,
  previous_secret TEXT,
  previous_until  INTEGER,
  enabled         INTEGER NOT NULL DEFAULT 1,
  disabled_reason TEXT,
  disabled_at     TEXT,
  failing_since   INTEGER,
  enqueued_seq    INTEGER NOT NULL DEFAULT 0,
  created         TEXT    NOT NULL,
  modified        TEXT    NOT NULL
);
CREATE INDEX webhooks_by_tenant ON webhooks (tenant);

-- The delivery log: one row per endpoint, event and event type (a group PATCH can be both a
-- member_added and a member_removed), written when the message is queued and updated by
-- every attempt. `status`: queued, retrying, delivered, dead (out of attempts, the endpoint
-- disabled, or the event pruned). `sent` is the enqueued marker: 0 while a (re)delivery is
-- requested and its queue message not yet sent; the sweeper sends what is still 0.
CREATE TABLE webhook_deliveries (
  endpoint     TEXT    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  seq          INTEGER NOT NULL,
  type         TEXT    NOT NULL,
  tenant       TEXT    NOT NULL,
  status       TEXT    NOT NULL CHECK (status IN ('queued', 'retrying', 'delivered', 'dead')),
  attempts     INTEGER NOT NULL DEFAULT 0,
  last_status  INTEGER,
  latency_ms   INTEGER,
  last_error   TEXT,
  last_attempt TEXT,
  queued       TEXT    NOT NULL,
  sent         INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (endpoint, seq, type)
) WITHOUT ROWID;
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (endpoint, queued);
CREATE INDEX webhook_deliveries_unsent ON webhook_deliveries (endpoint) WHERE sent = 0;
