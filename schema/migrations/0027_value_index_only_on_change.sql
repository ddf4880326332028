-- The value index (0004) is rebuilt by an UPDATE of `data` only when one of the indexed
-- multi-valued attributes changed. Entra's and Okta's routine PATCHes change names,
-- departments and `active`, rarely emails or phone numbers, and deleting and re-inserting
-- every index row of the user was a third of such an UPDATE's cost in SQLite (native
-- measurement in docs/PERFORMANCE.md). The condition compares the five attributes' values as
-- SQLite's minified JSON: equal text means equal values, so the rows of the old `data` are
-- exactly the rows of the new one; any difference, even of key order, rebuilds them.
DROP TRIGGER value_index_update;
CREATE TRIGGER value_index_update AFTER UPDATE OF data ON resources
WHEN json_extract(OLD.data, '$.emails', '$.phoneNumbers', '$.ims', '$.entitlements', '$.roles')
  IS NOT json_extract(NEW.data, '$.emails', '$.phoneNumbers', '$.ims', '$.entitlements', '$.roles')
BEGIN
  DELETE FROM value_index WHERE rid = OLD.rowid;
  INSERT INTO value_index (rid, attr, value)
  SELECT NEW.rowid, a.key, json_extract(e.value, '$.value')
  FROM json_each(NEW.data) a, json_each(a.value) e
  WHERE a.key IN ('emails', 'phoneNumbers', 'ims', 'entitlements', 'roles')
    AND a.type = 'array' AND e.type = 'object' AND json_type(e.value, '$.value') = 'text';
END;
