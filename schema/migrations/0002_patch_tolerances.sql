-- PATCH tolerance settings and accounting.
-- strict_patch = 1 makes a tenant's PATCH follow RFC 7644 literally: the identity-provider
-- quirks that are otherwise accepted (capitalised op names, "False" strings, ...) become 400s.
ALTER TABLE tenants ADD COLUMN strict_patch INTEGER NOT NULL DEFAULT 0 CHECK (strict_patch IN (0, 1));

-- How often each tolerance fired per tenant, updated in the same batch as the write it
-- belongs to, so the count never includes requests that did not apply.
CREATE TABLE tolerance_counts (
  tenant    TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name      TEXT    NOT NULL,
  count     INTEGER NOT NULL DEFAULT 0,
  last_seen TEXT    NOT NULL,
  PRIMARY KEY (tenant, name)
) WITHOUT ROWID;
