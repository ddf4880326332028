-- The customer's IT admin connects without the vendor (issue 17): setup links and their
-- browser sessions, and the OAuth 2.0 authorization code grant (RFC 6749 §4.1) behind Entra's
-- "Authorize" button. Every secret here (app secrets, codes, refresh tokens, link and session
-- tokens) is stored only as its SHA-256 (hex), like issued tokens (0003_credentials.sql).
-- Times use the stored RFC 3339 shape, so they compare as instants by string order.

-- OAuth applications of the deployment: the client id and secret a vendor submits to an IdP's
-- app gallery. Deployment-wide, not per tenant: the gallery entry is one for every customer,
-- and the tenant is chosen by whoever approves, never by the client.
CREATE TABLE oauth_apps (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  secret_hash   TEXT NOT NULL UNIQUE CHECK (length(secret_hash) = 64),
  -- JSON array of absolute URIs, compared exactly (RFC 6749 §3.1.2.2 / RFC 9700 §4.1.3)
  redirect_uris TEXT NOT NULL,
  created       TEXT NOT NULL,
  revoked       TEXT
);

-- One approval: an administrator of `tenant` let `app` provision into it. The access tokens
-- it yields are `credentials` rows (kind 'access', parent_id = this id), so the SCIM API
-- verifies and caches them like every token; its refresh tokens are below.
CREATE TABLE oauth_grants (
  id       TEXT PRIMARY KEY,
  tenant   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  app      TEXT NOT NULL REFERENCES oauth_apps (id) ON DELETE CASCADE,
  -- who approved: the setup link's id, or the subject of the vendor's assertion
  approver TEXT NOT NULL,
  via      TEXT NOT NULL CHECK (via IN ('setup_link', 'vendor')),
  created  TEXT NOT NULL,
  revoked  TEXT
);
CREATE INDEX oauth_grants_by_app ON oauth_grants (app);

-- Authorization codes: single use, short-lived. `grant_id` is chosen when the code is issued
-- and the grant row written when it is redeemed; a second redemption revokes that grant
-- (RFC 6749 §4.1.2). `redeemed_by` names the access token of the redemption that won.
CREATE TABLE oauth_codes (
  hash           TEXT PRIMARY KEY CHECK (length(hash) = 64),
  grant_id       TEXT NOT NULL,
  tenant         TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  app            TEXT NOT NULL REFERENCES oauth_apps (id) ON DELETE CASCADE,
  -- as sent in the authorization request (NULL: not sent, the single registered one used)
  redirect_uri   TEXT,
  code_challenge TEXT,
  challenge_method TEXT CHECK (challenge_method IN ('S256', 'plain')),
  approver       TEXT NOT NULL,
  via            TEXT NOT NULL,
  created        TEXT NOT NULL,
  expires        TEXT NOT NULL,
  used           TEXT,
  redeemed_by    TEXT
) WITHOUT ROWID;

-- Refresh tokens rotate on use: `used` and `replaced_by` are set when one is exchanged, and
-- presenting it again revokes its grant (reuse means it was copied).
CREATE TABLE oauth_refresh_tokens (
  hash        TEXT PRIMARY KEY CHECK (length(hash) = 64),
  grant_id    TEXT NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
  tenant      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  created     TEXT NOT NULL,
  expires     TEXT NOT NULL,
  used        TEXT,
  replaced_by TEXT
) WITHOUT ROWID;
CREATE INDEX oauth_refresh_by_grant ON oauth_refresh_tokens (grant_id);

-- Setup links a vendor sends to a customer's IT admin: single use to open, expiring,
-- revocable. Opening one starts a session (below) in that browser.
CREATE TABLE setup_links (
  id       TEXT PRIMARY KEY,
  tenant   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  hash     TEXT NOT NULL UNIQUE CHECK (length(hash) = 64),
  label    TEXT NOT NULL DEFAULT '',
  created  TEXT NOT NULL,
  expires  TEXT NOT NULL,
  opened   TEXT,
  -- the session the opening started
  session  TEXT,
  revoked  TEXT
);
CREATE INDEX setup_links_by_tenant ON setup_links (tenant, created);

-- Browser sessions of a tenant's administrator (cookie `__Host-scim-setup`): from a setup
-- link, or from the vendor's sign-in hand-off. They approve authorization requests.
CREATE TABLE setup_sessions (
  id       TEXT PRIMARY KEY,
  hash     TEXT NOT NULL UNIQUE CHECK (length(hash) = 64),
  tenant   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  -- the setup link's id, or the vendor assertion's subject
  approver TEXT NOT NULL,
  via      TEXT NOT NULL CHECK (via IN ('setup_link', 'vendor')),
  created  TEXT NOT NULL,
  expires  TEXT NOT NULL,
  revoked  TEXT
);
