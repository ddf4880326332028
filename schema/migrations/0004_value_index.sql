-- An index over the `value` of the multi-valued attributes identity providers match on
-- (Entra: `emails[type eq "work"].value eq "…"`), which live inside the `data` JSON where no
-- SQLite index reaches. Triggers keep it in step with `resources` inside every write's own
-- transaction, so no code path can forget it. Rows point at the resource by rowid; the query
-- planner uses the index to pick candidate rows, and the exact filter (tenant included) is
-- still evaluated on each candidate, so the index only ever narrows.
CREATE TABLE value_index (
  rid   INTEGER NOT NULL,
  attr  TEXT    NOT NULL,
  value TEXT    NOT NULL
);
CREATE INDEX value_index_lookup ON value_index (attr, value COLLATE NOCASE);
CREATE INDEX value_index_owner ON value_index (rid);

CREATE TRIGGER value_index_insert AFTER INSERT ON resources BEGIN
  INSERT INTO value_index (rid, attr, value)
  SELECT NEW.rowid, a.key, json_extract(e.value, '$.value')
  FROM json_each(NEW.data) a, json_each(a.value) e
  WHERE a.key IN ('emails', 'phoneNumbers', 'ims', 'entitlements', 'roles')
    AND a.type = 'array' AND e.type = 'object' AND json_type(e.value, '$.value') = 'text';
END;

CREATE TRIGGER value_index_update AFTER UPDATE OF data ON resources BEGIN
  DELETE FROM value_index WHERE rid = OLD.rowid;
  INSERT INTO value_index (rid, attr, value)
  SELECT NEW.rowid, a.key, json_extract(e.value, '$.value')
  FROM json_each(NEW.data) a, json_each(a.value) e
  WHERE a.key IN ('emails', 'phoneNumbers', 'ims', 'entitlements', 'roles')
    AND a.type = 'array' AND e.type = 'object' AND json_type(e.value, '$.value') = 'text';
END;

CREATE TRIGGER value_index_delete AFTER DELETE ON resources BEGIN
  DELETE FROM value_index WHERE rid = OLD.rowid;
END;
