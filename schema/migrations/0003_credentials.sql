-- Issued credentials of every tenant: SCIM bearer tokens, OAuth 2.0 clients and the access
-- tokens those clients obtained. Only the SHA-256 of a secret is stored (hex, `hash`); the
-- secret itself is shown once, when it is issued. Times use the stored RFC 3339 shape
-- (YYYY-MM-DDTHH:MM:SS.mmmZ), so they compare as instants by string order.
CREATE TABLE credentials (
  id          TEXT PRIMARY KEY,
  tenant      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  kind        TEXT NOT NULL CHECK (kind IN ('bearer', 'client', 'access')),
  hash        TEXT NOT NULL UNIQUE CHECK (length(hash) = 64),
  label       TEXT NOT NULL DEFAULT '',
  created     TEXT NOT NULL,
  expires     TEXT,
  last_used   TEXT,
  revoked     TEXT,
  -- rotation: the credential that replaced this one
  replaced_by TEXT,
  -- access tokens: the client that obtained them (revoking the client revokes them)
  parent_id   TEXT
);
CREATE INDEX credentials_by_tenant ON credentials (tenant, kind, created);
CREATE INDEX credentials_by_parent ON credentials (tenant, parent_id) WHERE parent_id IS NOT NULL;
