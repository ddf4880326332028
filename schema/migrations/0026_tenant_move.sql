-- Moving a tenant between deployments or storage backends (issue 16, item 3): an export of
-- one tenant as NDJSON lines, imported elsewhere chunk by chunk (src/service/moving.rs).
--
-- `moving` freezes a tenant's directory while it moves. 'exporting': the first export page
-- set it, in the same transaction that counted what the export holds, so every later page
-- reads the same directory (reads stay served; SCIM writes are refused with a 503 until the
-- export is ended). 'importing': an import is under way; SCIM writes are refused until its
-- trailer verifies, so nothing an identity provider sends mixes with half a directory.
ALTER TABLE tenants ADD COLUMN moving TEXT CHECK (moving IN ('exporting', 'importing'));

-- The position of an import under way: the lines applied so far, the running checksum over
-- them, and the count of each record kind. `token` is fresh for every chunk: the chunk's
-- inserts are guarded by it, so a chunk applies entirely or (another chunk won the race for
-- the same position) not at all. `writing` is 1 only inside a chunk's own transaction: it
-- lets the import's inserts past the freeze below, and nothing else ever sees it set.
CREATE TABLE tenant_imports (
  tenant  TEXT    PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  source  TEXT    NOT NULL,
  lines   INTEGER NOT NULL,
  chain   TEXT    NOT NULL,
  counts  TEXT    NOT NULL CHECK (json_valid(counts)),
  token   INTEGER NOT NULL,
  writing INTEGER NOT NULL DEFAULT 0 CHECK (writing IN (0, 1)),
  started TEXT    NOT NULL
) WITHOUT ROWID;

-- The freeze, enforced inside every write's own transaction like the quotas (0009): a write
-- to a moving tenant aborts its whole batch with a message the store maps to a typed error.
-- Membership-only changes write the group's version too, so the UPDATE trigger covers them.
CREATE TRIGGER moving_insert BEFORE INSERT ON resources
WHEN (SELECT moving FROM tenants WHERE id = NEW.tenant) IS NOT NULL
 AND NOT EXISTS (SELECT 1 FROM tenant_imports WHERE tenant = NEW.tenant AND writing = 1)
BEGIN
  SELECT RAISE(ABORT, 'scim-edge tenant moving');
END;

CREATE TRIGGER moving_update BEFORE UPDATE ON resources
WHEN (SELECT moving FROM tenants WHERE id = NEW.tenant) IS NOT NULL
 AND NOT EXISTS (SELECT 1 FROM tenant_imports WHERE tenant = NEW.tenant AND writing = 1)
BEGIN
  SELECT RAISE(ABORT, 'scim-edge tenant moving');
END;

CREATE TRIGGER moving_delete BEFORE DELETE ON resources
WHEN (SELECT moving FROM tenants WHERE id = OLD.tenant) IS NOT NULL
 AND NOT EXISTS (SELECT 1 FROM tenant_imports WHERE tenant = OLD.tenant AND writing = 1)
BEGIN
  SELECT RAISE(ABORT, 'scim-edge tenant moving');
END;
