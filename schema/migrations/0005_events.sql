-- The provisioning log: one row per write request (create, replace, patch, delete), written in
-- the same atomic batch as the change it records, and for failed requests a row with the
-- status and error detail (never request bodies or secrets). `seq` only ever grows and is
-- never reused (AUTOINCREMENT), and D1 commits one write at a time, so a reader paging by
-- `seq > ?` sees every event exactly once: it is the change feed's cursor.
CREATE TABLE events (
  seq           INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant        TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  time          TEXT    NOT NULL,
  op            TEXT    NOT NULL CHECK (op IN ('create', 'replace', 'patch', 'delete')),
  resource_type TEXT    NOT NULL,
  resource_id   TEXT,
  -- the credential's id; NULL for a token configured as a Worker secret
  credential    TEXT,
  -- JSON array of the attribute names the request changed
  attributes    TEXT    NOT NULL DEFAULT '[]',
  -- the write set `active` to false on a user that was not already inactive
  deactivated   INTEGER NOT NULL DEFAULT 0,
  outcome       TEXT    NOT NULL CHECK (outcome IN ('success', 'failure')),
  status        INTEGER NOT NULL,
  request_id    TEXT,
  detail        TEXT
);
CREATE INDEX events_by_tenant ON events (tenant, seq);
CREATE INDEX events_by_time ON events (tenant, time);
