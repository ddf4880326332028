//! What a tenant's own database (a SQLite-backed Durable Object, `SCIM_STORAGE =
//! "durable-object"`) needs besides the statements every store runs: the schema, migrated
//! inside the object from the same files D1 applies, and a mirror of the tenant's settings
//! and quota, whose source of truth stays in D1 (the control plane). The declared schemas'
//! copy is kept by `service::relay` and `service::declarations` (its `tenant_schemas` rows).
//!
//! The object holds one tenant, yet runs the D1 schema unchanged: every row still carries its
//! tenant and every statement still names it, so the store's SQL is the same on both backends
//! and a tenant can later move between them row for row.

use crate::store::sql::{SqlValue, Stmt};
use crate::store::tenancy::Quota;
use crate::store::{Db, Result, Row};
use serde_json::Value;

/// A migration file as build.rs wrote it.
macro_rules! migration {
    ($file:literal) => {
        include_str!(concat!(env!("OUT_DIR"), "/", $file))
    };
}

/// The migration files, numbered as their names are (0010, 0015-0018, 0020 and 0021 were never used), compiled in so an
/// object migrates itself on first use without anything from outside. They come without
/// their comment lines (build.rs): the same statements, in fewer bytes of wasm.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, migration!("0001_init.sql")),
    (2, migration!("0002_patch_tolerances.sql")),
    (3, migration!("0003_credentials.sql")),
    (4, migration!("0004_value_index.sql")),
    (5, migration!("0005_events.sql")),
    (6, migration!("0006_resource_counts.sql")),
    (7, migration!("0007_list_order_index.sql")),
    (8, migration!("0008_sort_indexes.sql")),
    (9, migration!("0009_quotas.sql")),
    (11, migration!("0011_deployment_secrets.sql")),
    (12, migration!("0012_declared_schemas.sql")),
    (13, migration!("0013_entitlement_values.sql")),
    (14, migration!("0014_webhooks.sql")),
    (19, migration!("0019_oauth_code_setup_links.sql")),
    (22, migration!("0022_event_external_id.sql")),
    (25, migration!("0025_deletion_policies.sql")),
    (26, migration!("0026_tenant_move.sql")),
    (27, migration!("0027_value_index_only_on_change.sql")),
];

/// The object's record of applied migrations (D1 keeps its own in `d1_migrations`, which
/// wrangler writes; an object has no wrangler, so it keeps this one).
pub const VERSION_TABLE_SQL: &str =
    "CREATE TABLE IF NOT EXISTS schema_versions (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)";

/// The highest applied version (0 for a new object).
pub const CURRENT_VERSION_SQL: &str =
    "SELECT coalesce(max(version), 0) AS version FROM schema_versions";

/// The migrations after `current`, in order, each with the statement recording it: the
/// caller runs each pair in one transaction, so a migration is applied exactly when it is
/// recorded. Every statement of every file is applied; none is D1-specific. Migration 0001's
/// `default` tenant row is applied too: harmless in another tenant's object (nothing refers
/// to it) and the tenant row itself in the `default` tenant's object.
pub fn pending(current: i64, now: &str) -> Vec<(&'static str, Stmt)> {
    MIGRATIONS
        .iter()
        .filter(|(v, _)| *v > current)
        .map(|(v, sql)| {
            let record = Stmt::new(
                "INSERT INTO schema_versions (version, applied) VALUES (?, ?)",
                vec![SqlValue::Int(*v), now.into()],
            );
            (*sql, record)
        })
        .collect()
}

/// Makes the object's `tenants` row say what D1 says of the tenant's SCIM settings, quota
/// and deletion policy (the rows of `resources` need the row; PATCH reads `strict_patch` from
/// it, a DELETE `deletion_days`; the quota triggers of migration 0009 read the limits). It
/// writes only when something differs, so the usual request changes nothing.
pub fn mirror_tenant_stmt(
    tenant: &str,
    strict: bool,
    reject_undeclared: bool,
    quota: Quota,
    deletion: crate::store::tombstones::Policy,
) -> Stmt {
    let limit = |v: Option<i64>| v.map_or(SqlValue::Null, SqlValue::Int);
    Stmt::new(
        "INSERT INTO tenants (id, name, strict_patch, undeclared_extensions, max_resources, \
         max_bytes, deletion_days, restore_on_create) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET strict_patch = excluded.strict_patch, \
         undeclared_extensions = excluded.undeclared_extensions, \
         max_resources = excluded.max_resources, max_bytes = excluded.max_bytes, \
         deletion_days = excluded.deletion_days, restore_on_create = excluded.restore_on_create \
         WHERE strict_patch <> excluded.strict_patch \
         OR undeclared_extensions <> excluded.undeclared_extensions \
         OR max_resources IS NOT excluded.max_resources OR max_bytes IS NOT excluded.max_bytes \
         OR deletion_days IS NOT excluded.deletion_days \
         OR restore_on_create <> excluded.restore_on_create",
        vec![
            tenant.into(),
            tenant.into(),
            SqlValue::Int(i64::from(strict)),
            if reject_undeclared { "reject" } else { "keep" }.into(),
            limit(quota.resources),
            limit(quota.bytes),
            deletion.days.map_or(SqlValue::Null, SqlValue::Int),
            SqlValue::Int(i64::from(deletion.restore_on_create)),
        ],
    )
}

/// The columns of an RFC 8936 stream (a `set` endpoint without a URL) its object keeps a
/// copy of: all but its state (`enqueued_seq`, the failure run), which the object owns.
const STREAM_COLUMNS: [&str; 12] = [
    "id",
    "tenant",
    "url",
    "events",
    "format",
    "scim_base",
    "secret",
    "previous_secret",
    "previous_until",
    "enabled",
    "created",
    "modified",
];

/// A poll of stream `stream` of `tenant`, in D1: the stream's row ([`STREAM_COLUMNS`]) and,
/// when the seal key comes from D1 (`fresh`, as `set::poll` passes it), the deployment
/// secret, which the object needs to open the stream's keys. `None`: no such stream.
pub async fn stream<D: Db>(
    db: &D,
    tenant: &str,
    stream: &str,
    fresh: Option<(&str, &str)>,
) -> Result<Option<(Row, Option<String>)>> {
    let mut stmts = vec![Stmt::new(
        format!(
            "SELECT {} FROM webhooks WHERE tenant = ? AND id = ? AND format = 'set' AND url = ''",
            STREAM_COLUMNS.join(", ")
        ),
        vec![tenant.into(), stream.into()],
    )];
    stmts.extend(crate::store::webhooks::deployment_secret_stmts(fresh));
    let mut res = db.batch(stmts).await?.into_iter();
    let Some(row) = res.next().and_then(|rows| rows.into_iter().next()) else {
        return Ok(None);
    };
    let secret =
        crate::store::webhooks::secret_value(res.nth(1).and_then(|r| r.into_iter().next()));
    Ok(Some((row, secret)))
}

/// Makes the object's copy of a stream D1's ([`stream`]'s row), keeping the object's floor
/// and delivery log; with the deployment secret D1 holds, when it comes from there.
pub fn mirror_stream_stmts(row: &Row, deployment_secret: Option<(&str, &str)>) -> Vec<Stmt> {
    let value = |c: &str| match row.get(c) {
        Some(Value::String(s)) => SqlValue::Text(s.clone()),
        Some(Value::Number(n)) => n.as_i64().map_or(SqlValue::Null, SqlValue::Int),
        _ => SqlValue::Null,
    };
    let update: Vec<String> = STREAM_COLUMNS
        .iter()
        .skip(2)
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    // A stream serves the changes from its creation on: a new copy's floor is the last
    // event before then (D1 sets it so when the stream is created, from D1's events).
    let mut params: Vec<SqlValue> = STREAM_COLUMNS.iter().map(|c| value(c)).collect();
    params.extend([value("tenant"), value("created")]);
    let mut stmts = vec![Stmt::new(
        format!(
            "INSERT INTO webhooks ({}, enqueued_seq) VALUES ({}, coalesce((SELECT max(seq) \
             FROM events WHERE tenant = ? AND time < ?), 0)) ON CONFLICT (id) DO UPDATE SET {}",
            STREAM_COLUMNS.join(", "),
            vec!["?"; STREAM_COLUMNS.len()].join(", "),
            update.join(", ")
        ),
        params,
    )];
    if let Some((name, secret)) = deployment_secret {
        stmts.push(Stmt::new(
            "INSERT INTO deployment_secrets (name, value) VALUES (?, ?) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE value <> excluded.value",
            vec![name.into(), secret.into()],
        ));
    }
    stmts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Db;
    use crate::testing::block_on;

    /// A bare SQLite database migrated the way an object migrates itself.
    fn migrated() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
        conn.execute_batch(VERSION_TABLE_SQL).unwrap();
        let current: i64 = conn
            .query_row(CURRENT_VERSION_SQL, [], |r| r.get(0))
            .unwrap();
        assert_eq!(current, 0);
        for (sql, record) in pending(current, "2026-01-01T00:00:00.000Z") {
            conn.execute_batch(sql).unwrap();
            let params: Vec<rusqlite::types::Value> = record
                .params
                .iter()
                .map(|p| match p {
                    SqlValue::Int(i) => rusqlite::types::Value::Integer(*i),
                    SqlValue::Text(s) => rusqlite::types::Value::Text(s.clone()),
                    _ => rusqlite::types::Value::Null,
                })
                .collect();
            conn.execute(&record.sql, rusqlite::params_from_iter(params))
                .unwrap();
        }
        conn
    }

    #[test]
    fn every_migration_file_is_listed_once_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/migrations");
        let mut files: Vec<i64> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| n[..4].parse().unwrap())
            .collect();
        files.sort();
        let listed: Vec<i64> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        assert_eq!(listed, files);
    }

    #[test]
    fn an_object_migrates_once_and_then_only_what_is_new() {
        let conn = migrated();
        let current: i64 = conn
            .query_row(CURRENT_VERSION_SQL, [], |r| r.get(0))
            .unwrap();
        let last = MIGRATIONS.last().map(|(v, _)| *v).unwrap();
        assert_eq!(current, last);
        assert!(pending(current, "x").is_empty());
        let after_12 = MIGRATIONS.iter().filter(|(v, _)| *v > 12).count();
        assert!(after_12 >= 2);
        assert_eq!(pending(12, "x").len(), after_12);
        // The schema is the one D1 has: a resource needs its tenant row.
        let err = conn
            .execute(
                "INSERT INTO resources (tenant, id, type, data, created, modified) \
                 VALUES ('acme', 'u1', 'User', '{}', 'a', 'a')",
                [],
            )
            .unwrap_err();
        assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
    }

    #[test]
    fn the_tenant_mirror_inserts_then_changes_only_what_differs() {
        let db = crate::testing::SqliteDb::new();
        let run = |s: Stmt| block_on(db.batch(vec![s])).unwrap();
        let quota = Quota {
            resources: Some(5),
            bytes: None,
        };
        run(mirror_tenant_stmt(
            "acme",
            false,
            false,
            Quota::default(),
            Default::default(),
        ));
        let row = |db: &crate::testing::SqliteDb| {
            db.query(
                "SELECT strict_patch, undeclared_extensions, max_resources, max_bytes \
                 FROM tenants WHERE id = 'acme'",
            )
        };
        assert_eq!(row(&db)[0]["strict_patch"], 0);
        assert_eq!(row(&db)[0]["max_resources"], serde_json::Value::Null);
        run(mirror_tenant_stmt(
            "acme",
            true,
            true,
            quota,
            Default::default(),
        ));
        assert_eq!(row(&db)[0]["strict_patch"], 1);
        assert_eq!(row(&db)[0]["undeclared_extensions"], "reject");
        assert_eq!(row(&db)[0]["max_resources"], 5);
        assert_eq!(row(&db)[0]["max_bytes"], serde_json::Value::Null);
        let changes = db.query("SELECT total_changes() AS n")[0]["n"].clone();
        run(mirror_tenant_stmt(
            "acme",
            true,
            true,
            quota,
            Default::default(),
        ));
        assert_eq!(db.query("SELECT total_changes() AS n")[0]["n"], changes);
    }

    /// The policy reaches the object's tenant row, where the DELETE's own statements read it:
    /// a store over the object's database keeps a tombstone exactly when the row says `soft`.
    #[test]
    fn the_mirrored_deletion_policy_decides_what_a_delete_keeps() {
        use crate::proto::schema::ResourceType::User;
        use crate::store::tombstones::Policy;
        use crate::store::{Store, Write};
        let db = crate::testing::SqliteDb::new();
        let soft = Policy {
            days: Some(7),
            restore_on_create: true,
        };
        block_on(db.batch(vec![mirror_tenant_stmt(
            "acme",
            false,
            false,
            Quota::default(),
            soft,
        )]))
        .unwrap();
        let row =
            db.query("SELECT deletion_days, restore_on_create FROM tenants WHERE id = 'acme'");
        assert_eq!(row[0]["deletion_days"], 7);
        assert_eq!(row[0]["restore_on_create"], 1);
        let store = Store::new(&db, "acme");
        let data = serde_json::json!({"userName": "ada"});
        let now = "2026-01-01T00:00:00.000Z";
        for (id, policy, kept) in [("u1", soft, 1), ("u2", Policy::default(), 0)] {
            block_on(db.batch(vec![mirror_tenant_stmt(
                "acme",
                false,
                false,
                Quota::default(),
                policy,
            )]))
            .unwrap();
            let data = data.as_object().unwrap();
            block_on(store.create(User, id, data, &[], now, &[])).unwrap();
            let deleted = block_on(store.delete(User, id, None)).unwrap();
            assert!(matches!(deleted, Write::Done(_)));
            let n = db.query(&format!(
                "SELECT count(*) AS n FROM tombstones WHERE id = '{id}'"
            ));
            assert_eq!(n[0]["n"], kept, "{id}");
        }
    }
}
