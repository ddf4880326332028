-- Okta Entitlement Management: the entitlement and role values a vendor defines per tenant
-- (admin API, src/service/entitlements.rs), which Okta reads from /Entitlements and /Roles
-- and then assigns to users through their `entitlements` and `roles`. A value's id is the
-- `value` Okta sends back in those assignments, so it is unique per tenant and kind only.
-- Deleting a value leaves the users that hold it as they are: assignments are the users'
-- own attributes (RFC 7643 §4.1.2), not references into this table.
CREATE TABLE entitlement_values (
  tenant       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  kind         TEXT NOT NULL CHECK (kind IN ('Entitlement', 'Role')),
  id           TEXT NOT NULL,
  display_name TEXT NOT NULL,
  type         TEXT,
  description  TEXT,
  created      TEXT NOT NULL,
  modified     TEXT NOT NULL,
  PRIMARY KEY (tenant, kind, id)
) WITHOUT ROWID;
