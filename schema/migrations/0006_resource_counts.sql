-- Resources per tenant and type, kept by triggers in the same transaction as every insert and
-- delete, so an unfiltered list's totalResults is one row read instead of a scan of the
-- tenant's index (36 ms of CPU per page at 100,000 users before this).
CREATE TABLE resource_counts (
  tenant TEXT    NOT NULL,
  type   TEXT    NOT NULL,
  n      INTEGER NOT NULL,
  PRIMARY KEY (tenant, type)
) WITHOUT ROWID;

INSERT INTO resource_counts (tenant, type, n)
SELECT tenant, type, count(*) FROM resources GROUP BY tenant, type;

CREATE TRIGGER resource_counts_insert AFTER INSERT ON resources BEGIN
  INSERT INTO resource_counts (tenant, type, n) VALUES (NEW.tenant, NEW.type, 1)
  ON CONFLICT (tenant, type) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER resource_counts_delete AFTER DELETE ON resources BEGIN
  UPDATE resource_counts SET n = n - 1 WHERE tenant = OLD.tenant AND type = OLD.type;
END;
