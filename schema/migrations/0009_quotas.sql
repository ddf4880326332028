-- Per-tenant storage quotas. One database serves every tenant of a deployment, so without a
-- limit one tenant (or one leaked token) can fill it for all: ~1 MB a request at 1,200
-- requests a minute. NULL means unlimited; the admin API changes both per tenant.
ALTER TABLE tenants ADD COLUMN max_resources INTEGER DEFAULT 1000000
  CHECK (max_resources IS NULL OR max_resources >= 0);
ALTER TABLE tenants ADD COLUMN max_bytes INTEGER DEFAULT 1073741824
  CHECK (max_bytes IS NULL OR max_bytes >= 0);

-- Bytes of stored resource data per tenant and type, kept by triggers next to the resource
-- count (0006), so the quota check reads two rows instead of summing a tenant's data.
ALTER TABLE resource_counts ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE resource_counts SET bytes = coalesce((
  SELECT sum(length(CAST(r.data AS BLOB))) FROM resources r
  WHERE r.tenant = resource_counts.tenant AND r.type = resource_counts.type), 0);

DROP TRIGGER resource_counts_insert;
CREATE TRIGGER resource_counts_insert AFTER INSERT ON resources BEGIN
  INSERT INTO resource_counts (tenant, type, n, bytes)
  VALUES (NEW.tenant, NEW.type, 1, length(CAST(NEW.data AS BLOB)))
  ON CONFLICT (tenant, type) DO UPDATE SET n = n + 1, bytes = bytes + excluded.bytes;
END;

DROP TRIGGER resource_counts_delete;
CREATE TRIGGER resource_counts_delete AFTER DELETE ON resources BEGIN
  UPDATE resource_counts SET n = n - 1, bytes = bytes - length(CAST(OLD.data AS BLOB))
  WHERE tenant = OLD.tenant AND type = OLD.type;
END;

-- Only writes that set `data` fire this: membership-only changes never do.
CREATE TRIGGER resource_counts_update AFTER UPDATE OF data ON resources
WHEN length(CAST(NEW.data AS BLOB)) <> length(CAST(OLD.data AS BLOB)) BEGIN
  UPDATE resource_counts
  SET bytes = bytes + length(CAST(NEW.data AS BLOB)) - length(CAST(OLD.data AS BLOB))
  WHERE tenant = NEW.tenant AND type = NEW.type;
END;

-- The quotas, enforced inside the write's own transaction: a write past a limit aborts its
-- whole batch (nothing stored half-way, no event), with a message the store maps to a
-- typed error. Raising a limit takes effect at the next write.
CREATE TRIGGER quota_resources BEFORE INSERT ON resources
WHEN (SELECT max_resources FROM tenants WHERE id = NEW.tenant) <=
     coalesce((SELECT sum(n) FROM resource_counts WHERE tenant = NEW.tenant), 0)
BEGIN
  SELECT RAISE(ABORT, 'scim-edge quota exceeded: resources');
END;

CREATE TRIGGER quota_bytes_insert BEFORE INSERT ON resources
WHEN (SELECT max_bytes FROM tenants WHERE id = NEW.tenant) <
     coalesce((SELECT sum(bytes) FROM resource_counts WHERE tenant = NEW.tenant), 0)
     + length(CAST(NEW.data AS BLOB))
BEGIN
  SELECT RAISE(ABORT, 'scim-edge quota exceeded: bytes');
END;

CREATE TRIGGER quota_bytes_update BEFORE UPDATE OF data ON resources
WHEN length(CAST(NEW.data AS BLOB)) > length(CAST(OLD.data AS BLOB))
 AND (SELECT max_bytes FROM tenants WHERE id = NEW.tenant) <
     coalesce((SELECT sum(bytes) FROM resource_counts WHERE tenant = NEW.tenant), 0)
     + length(CAST(NEW.data AS BLOB)) - length(CAST(OLD.data AS BLOB))
BEGIN
  SELECT RAISE(ABORT, 'scim-edge quota exceeded: bytes');
END;
