-- Deletion policies per tenant (issue 18 item 2). A tenant's `deletion_days` NULL is the
-- `hard` policy (a DELETE removes the resource for good, as before); a number is `soft`: a
-- DELETE moves the resource to `tombstones`, kept that many days and then purged by the daily
-- cron. A tombstone is not in `resources`, so SCIM cannot see it (RFC 7644 §3.6: 404, absent
-- from filters, lists, counts and members) and its `userName`, group `displayName` and
-- declared unique values are free at once, with no query having to filter anything out.
ALTER TABLE tenants ADD COLUMN deletion_days INTEGER CHECK (deletion_days IS NULL OR deletion_days >= 0);
-- `restoreOnCreate`: a POST whose externalId matches a tombstone brings it back under its id.
ALTER TABLE tenants ADD COLUMN restore_on_create INTEGER NOT NULL DEFAULT 0;

-- The resource row as it was when deleted, and when.
CREATE TABLE tombstones (
  tenant       TEXT    NOT NULL,
  id           TEXT    NOT NULL,
  type         TEXT    NOT NULL CHECK (type IN ('User', 'Group')),
  data         TEXT    NOT NULL,
  created      TEXT    NOT NULL,
  modified     TEXT    NOT NULL,
  version      INTEGER NOT NULL,
  deleted      TEXT    NOT NULL,
  user_name    TEXT GENERATED ALWAYS AS (CASE type WHEN 'User' THEN json_extract(data, '$.userName') END) VIRTUAL,
  display_name TEXT GENERATED ALWAYS AS (json_extract(data, '$.displayName')) VIRTUAL,
  external_id  TEXT GENERATED ALWAYS AS (json_extract(data, '$.externalId')) VIRTUAL,
  PRIMARY KEY (tenant, id)
);
CREATE INDEX tombstones_external_id ON tombstones (tenant, type, external_id);
CREATE INDEX tombstones_by_time ON tombstones (tenant, deleted);

-- The memberships a tombstoned resource had (either side), kept without foreign keys so they
-- outlive the cascade of the DELETE; a restore puts back those whose other side exists.
CREATE TABLE tombstone_members (
  tenant    TEXT NOT NULL,
  group_id  TEXT NOT NULL,
  member_id TEXT NOT NULL,
  PRIMARY KEY (tenant, group_id, member_id)
) WITHOUT ROWID;
CREATE INDEX tombstone_members_by_member ON tombstone_members (tenant, member_id);

-- What a write did to a resource's lifecycle, beyond its `op`: 'soft' (a delete that kept a
-- tombstone), 'restore' (a create that brought a tombstone back), 'purge' (the cron removed
-- a tombstone; op 'delete'). NULL for everything else. A new column rather than new `op`
-- values: `op`'s CHECK cannot change without rebuilding the log.
ALTER TABLE events ADD COLUMN lifecycle TEXT;
