-- Extension schemas a tenant declares (RFC 7643 §7 representations). Declared attributes are
-- validated on every write, served by /Schemas and /ResourceTypes for that tenant only, and
-- filtered with their types. `document` is the representation as the service parsed and
-- normalised it (every characteristic explicit), so what is served is what is enforced.
CREATE TABLE tenant_schemas (
  tenant        TEXT    NOT NULL REFERENCES tenants (id),
  id            TEXT    NOT NULL COLLATE NOCASE,
  resource_type TEXT    NOT NULL CHECK (resource_type IN ('User', 'Group')),
  required      INTEGER NOT NULL DEFAULT 0 CHECK (required IN (0, 1)),
  document      TEXT    NOT NULL CHECK (json_valid(document) AND json_type(document) = 'object'),
  created       TEXT    NOT NULL,
  modified      TEXT    NOT NULL,
  PRIMARY KEY (tenant, id)
);

-- What a write does with attributes under an extension URN the tenant has not declared:
-- keep them verbatim (the default: nothing an identity provider sends is lost) or refuse the
-- request with a 400 that names the URN.
ALTER TABLE tenants ADD COLUMN undeclared_extensions TEXT NOT NULL DEFAULT 'keep'
  CHECK (undeclared_extensions IN ('keep', 'reject'));

-- Values of declared attributes with `uniqueness: server` (or `global`), one row per value,
-- written in the same batch as the resource: the primary key makes a duplicate fail the
-- whole batch, as the userName index does. `value` is lowercased unless the attribute is
-- caseExact. Rows go with their resource.
CREATE TABLE unique_values (
  tenant      TEXT NOT NULL,
  attr        TEXT NOT NULL,
  value       TEXT NOT NULL,
  resource_id TEXT NOT NULL,
  PRIMARY KEY (tenant, attr, value)
);
CREATE INDEX unique_values_resource ON unique_values (tenant, resource_id);
CREATE TRIGGER unique_values_delete AFTER DELETE ON resources BEGIN
  DELETE FROM unique_values WHERE tenant = OLD.tenant AND resource_id = OLD.id;
END;
