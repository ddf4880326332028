-- Initial schema. Every row carries its tenant from day one; for now the single tenant
-- 'default' serves every token configured as a Worker secret.


CREATE TABLE tenants (
  id      TEXT PRIMARY KEY,
  name    TEXT NOT NULL,
  created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO tenants (id, name) VALUES ('default', 'Default tenant');

-- One table for every resource type so that root searches and group members (users or
-- groups) need no UNION. `data` holds the resource's client-writable attributes with
-- canonical names; id, meta, schemas, User.groups and Group.members are never stored in it.
-- The looked-up attributes are generated columns, so they can never disagree with `data`.
CREATE TABLE resources (
  tenant       TEXT    NOT NULL REFERENCES tenants (id),
  id           TEXT    NOT NULL,
  type         TEXT    NOT NULL CHECK (type IN ('User', 'Group')),
  data         TEXT    NOT NULL CHECK (json_valid(data) AND json_type(data) = 'object'),
  created      TEXT    NOT NULL,
  modified     TEXT    NOT NULL,
  version      INTEGER NOT NULL DEFAULT 1,
  user_name    TEXT GENERATED ALWAYS AS (CASE type WHEN 'User' THEN json_extract(data, '$.userName') END) VIRTUAL,
  display_name TEXT GENERATED ALWAYS AS (json_extract(data, '$.displayName')) VIRTUAL,
  external_id  TEXT GENERATED ALWAYS AS (json_extract(data, '$.externalId')) VIRTUAL,
  PRIMARY KEY (tenant, id)
);

-- userName is unique per tenant, case-insensitively (RFC 7643 §4.1.1: caseExact false).
CREATE UNIQUE INDEX resources_user_name ON resources (tenant, user_name COLLATE NOCASE);
-- Group displayName is unique per tenant: Microsoft Entra ID matches groups by it.
CREATE UNIQUE INDEX resources_group_name ON resources (tenant, display_name COLLATE NOCASE) WHERE type = 'Group';
CREATE INDEX resources_display_name ON resources (tenant, type, display_name COLLATE NOCASE);
CREATE INDEX resources_external_id ON resources (tenant, type, external_id);

-- Group membership as rows: adding or removing one member never rewrites the member list.
-- Deleting either side removes the membership.
CREATE TABLE members (
  tenant    TEXT NOT NULL,
  group_id  TEXT NOT NULL,
  member_id TEXT NOT NULL,
  PRIMARY KEY (tenant, group_id, member_id),
  FOREIGN KEY (tenant, group_id)  REFERENCES resources (tenant, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant, member_id) REFERENCES resources (tenant, id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX members_by_member ON members (tenant, member_id);
