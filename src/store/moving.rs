//! Moving one tenant: the reads of an export and the writes of an import, as plain `Db`
//! batches, so the same code exports from and imports into any backend that runs the store
//! (D1 today, a tenant's own SQLite Durable Object next).
//!
//! An export is a sequence of records, one per stored row, each a flat JSON object whose
//! members are the row's columns (`{"record": "resource", "id": …, "data": "<stored text>", …}`).
//! SQLite builds each record's text itself (`json_object`), so a page costs no parse and no
//! re-serialisation here, and the stored `data` text travels as a JSON string, so it comes
//! back byte for byte (what keeps a moved resource's GET identical). Records come in the
//! order of [`SPECS`], which is also an order that satisfies every foreign key on import
//! (resources before the memberships and unique values that name them), and resources come
//! in rowid order, which the target reproduces by inserting them in that order: lists without
//! `sortBy` page in creation order, so they page identically after the move.
//!
//! What a record holds is checked before anything is written ([`Spec::check`]): each column
//! present with its type, nothing else. The import then inserts a chunk's records with one
//! statement per kind (`INSERT … SELECT … FROM json_each(?)`: the records as one JSON array
//! parameter, so a chunk of thousands of rows stays one round trip, far below D1's 100
//! bound parameters, and each statement far below its 100 KB of SQL text).

use crate::store::sql::{SqlValue, Stmt, LIMIT_PARAM};
use crate::store::{Db, Result, Row, Store, StoreError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

/// The type a column's value has in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Text,
    OptText,
    Int,
    OptInt,
    /// A JSON array (a computed member only).
    List,
}

/// How a kind of record is paged through on export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By rowid (tables with one); the page key is an integer.
    Rowid(&'static str),
    /// By two text columns (tables `WITHOUT ROWID`); the page key is the pair.
    Pair(&'static str, &'static str),
}

/// Where a kind of record lives when tenants' directories are in Durable Objects
/// (`SCIM_STORAGE = "durable-object"`): the control plane stays in D1, the directory and its
/// log are in the tenant's object. With `d1` both are in D1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    Control,
    Directory,
}

/// Which kinds of record one database holds for a tenant, and so reads, counts, checks for
/// emptiness and writes in a move: all of them (D1 with `d1`), or one plane (D1 and the
/// tenant's object with `durable-object`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    All,
    Only(Plane),
}

impl Holds {
    pub fn holds(self, spec: &Spec) -> bool {
        match self {
            Holds::All => true,
            Holds::Only(p) => spec.plane == p,
        }
    }
}

/// One kind of record: the table it comes from and goes to, and its columns.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The record's `record` member.
    pub record: &'static str,
    /// Where it lives with `durable-object`.
    pub plane: Plane,
    table: &'static str,
    columns: &'static [(&'static str, Col)],
    order: Order,
    /// Extra condition on the exported rows (never input-derived).
    filter: &'static str,
    /// Columns the import sets to an expression of the target instead of a record's value
    /// (over `target.t`, the tenant, and `j.value`, the record).
    derived: &'static [(&'static str, &'static str)],
    /// Members of the record that are no column: the export computes each with its SQL (over
    /// the row, named by the table's name), the import checks its type and reads it only in
    /// `derived` expressions.
    computed: &'static [(&'static str, Col, &'static str)],
    /// The import's `ON CONFLICT` clause, if a row may be there already.
    on_conflict: &'static str,
    /// A statement the import runs after inserting a chunk's records of this kind (the
    /// tenant, the records' JSON array, the chunk's guard).
    then: Option<fn(&str, &str, &Guard) -> Stmt>,
    /// What a record must name to be imported where the control plane's records are too
    /// (SQL over `target.t` and `j.value`), or "".
    with_control: &'static str,
}

use Col::{Int, List, OptInt, OptText, Text};
use Plane::{Control, Directory};

/// The tenant's own settings (one record, applied to the target tenant's row).
pub const TENANT: Spec = Spec {
    record: "tenant",
    plane: Control,
    table: "tenants",
    columns: &[
        ("name", Text),
        ("created", Text),
        ("strict_patch", Int),
        ("undeclared_extensions", Text),
        ("max_resources", OptInt),
        ("max_bytes", OptInt),
        ("deletion_days", OptInt),
        ("restore_on_create", Int),
    ],
    order: Order::Rowid("rowid"),
    filter: "",
    derived: &[],
    computed: &[],
    on_conflict: "",
    then: None,
    with_control: "",
};

/// Every kind of record after the tenant's, in export (and foreign-key) order.
pub const SPECS: [Spec; 12] = [
    Spec {
        record: "schema",
        plane: Control,
        table: "tenant_schemas",
        columns: &[
            ("id", Text),
            ("resource_type", Text),
            ("required", Int),
            ("document", Text),
            ("created", Text),
            ("modified", Text),
        ],
        order: Order::Rowid("rowid"),
        filter: "",
        derived: &[],
        computed: &[],
        on_conflict: "",
        then: None,
        with_control: "",
    },
    Spec {
        record: "entitlement",
        plane: Control,
        table: "entitlement_values",
        columns: &[
            ("kind", Text),
            ("id", Text),
            ("display_name", Text),
            ("type", OptText),
            ("description", OptText),
            ("created", Text),
            ("modified", Text),
        ],
        order: Order::Pair("kind", "id"),
        filter: "",
        derived: &[],
        computed: &[],
        on_conflict: "",
        then: None,
        with_control: "",
    },
    Spec {
        record: "tolerance",
        plane: Directory,
        table: "tolerance_counts",
        columns: &[("name", Text), ("count", Int), ("last_seen", Text)],
        order: Order::Pair("name", "name"),
        filter: "",
        derived: &[],
        computed: &[],
        on_conflict: "",
        then: None,
        with_control: "",
    },
    Spec {
        record: "resource",
        plane: Directory,
        table: "resources",
        columns: &[
            ("id", Text),
            ("type", Text),
            ("data", Text),
            ("created", Text),
            ("modified", Text),
            ("version", Int),
        ],
        order: Order::Rowid("rowid"),
        filter: "",
        derived: &[],
        computed: &[],
        on_conflict: "",
        then: None,
        with_control: "",
    },
    Spec {
        record: "unique",
        plane: Directory,
        table: "unique_values",
        columns: &[("attr", Text), ("value", Text), ("resource_id", Text)],
        order: Order::Rowid("rowid"),
        filter: "",
        derived: &[],
        computed: &[],
        on_conflict: "",
        then: None,
        with_control: "",
    },
    Spec {
        record: "member",
        plane: Directory,
        table: "members",
        columns: &[("group_id", Text), ("member_id", Text)],
        order: Order::Pair("group_id", "member_id"),
        filter: "",
        derived: &[],
        computed: &[],
        on_conflict: "",
        then: None,
        with_control: "",
    },
    // The soft deletion policy's tombstones (migration 0025) and the memberships they had:
    // the tenant's data, restorable on the target as on the source.
    Spec {
        record: "tombstone",
        plane: Directory,
        table: "tombstones",
        columns: &[
            ("id", Text),
            ("type", Text),
            ("data", Text),
            ("created", Text),
            ("modified", Text),
            ("version", Int),
            ("deleted", Text),
        ],
        order: Order::Rowid("rowid"),
        filter: "",
        derived: &[],
        computed: &[],
        on_conflict: "",
        then: None,
        with_control: "",
    },
    Spec {
        record: "tombstone_member",
        plane: Directory,
        table: "tombstone_members",
        columns: &[("group_id", Text), ("member_id", Text)],
        order: Order::Pair("group_id", "member_id"),
        filter: "",
        derived: &[],
        computed: &[],
        on_conflict: "",
        then: None,
        with_control: "",
    },
    Spec {
        record: "event",
        plane: Directory,
        table: "events",
        columns: &[
            ("time", Text),
            ("op", Text),
            ("resource_type", Text),
            ("resource_id", OptText),
            ("credential", OptText),
            ("attributes", Text),
            ("deactivated", Int),
            ("reactivated", Int),
            ("outcome", Text),
            ("status", Int),
            ("request_id", OptText),
            ("detail", OptText),
            ("members_added", OptText),
            ("members_removed", OptText),
            ("external_id", OptText),
            ("lifecycle", OptText),
        ],
        order: Order::Rowid("seq"),
        filter: "",
        derived: &[],
        computed: &[],
        on_conflict: "",
        then: None,
        with_control: "",
    },
    // Endpoints keep their sealed signing keys (never a key in clear); the sweep starts past
    // every imported event, so the history is not delivered a second time.
    Spec {
        record: "webhook",
        plane: Control,
        table: "webhooks",
        columns: &[
            ("id", Text),
            ("url", Text),
            ("events", Text),
            ("format", Text),
            ("scim_base", Text),
            ("secret", Text),
            ("previous_secret", OptText),
            ("previous_until", OptInt),
            ("enabled", Int),
            ("disabled_reason", OptText),
            ("disabled_at", OptText),
            ("failing_since", OptInt),
            ("created", Text),
            ("modified", Text),
        ],
        order: Order::Rowid("rowid"),
        filter: "",
        derived: &[("enqueued_seq", ENDPOINT_START)],
        computed: &[],
        on_conflict: "",
        then: None,
        with_control: "",
    },
    // Where each RFC 8936 poll stream stands (read where the stream's floor and delivery log
    // are: D1, or the tenant's object): see [`STREAM_FLOOR`].
    Spec {
        record: "stream",
        plane: Directory,
        table: "webhooks",
        columns: &[("id", Text), ("created", Text), ("modified", Text)],
        order: Order::Rowid("rowid"),
        filter: " AND url = '' AND format = 'set'",
        derived: &[
            ("url", "''"),
            ("format", "'set'"),
            ("scim_base", "''"),
            ("secret", "''"),
            ("enqueued_seq", STREAM_START),
        ],
        computed: &[("floor", Int, STREAM_FLOOR), ("marks", List, STREAM_MARKS)],
        on_conflict: " ON CONFLICT (id) DO UPDATE SET enqueued_seq = excluded.enqueued_seq \
                      WHERE webhooks.tenant = excluded.tenant AND webhooks.url = ''",
        then: Some(stream_marks_stmt),
        // A stream the control plane has (the `webhook` record before it): an object may
        // keep its copy of a stream deleted since, which moves no further than its object.
        with_control: "EXISTS (SELECT 1 FROM webhooks w WHERE w.tenant = target.t \
                       AND w.id = json_extract(j.value, '$.id') AND w.url = '')",
    },
    // SCIM bearer tokens and OAuth clients, as their SHA-256 hashes (the secrets were never
    // stored). Access tokens are short-lived and re-obtained with the client's secret.
    Spec {
        record: "credential",
        plane: Control,
        table: "credentials",
        columns: &[
            ("id", Text),
            ("kind", Text),
            ("hash", Text),
            ("label", Text),
            ("created", Text),
            ("expires", OptText),
            ("last_used", OptText),
            ("revoked", OptText),
            ("replaced_by", OptText),
        ],
        order: Order::Rowid("rowid"),
        filter: " AND kind IN ('bearer', 'client')",
        derived: &[],
        computed: &[],
        on_conflict: "",
        then: None,
        with_control: "",
    },
];

/// The events a poll stream serves (`store::webhooks::poll`), as the `stream` record counts
/// them: its position is told in these, since the target numbers moved events in its own
/// sequence (`seq` is not in the file). The import writes them in their order, and the
/// target's tenant gets no other such event while it imports (its writes are frozen; a
/// refused write logs a failure, which is not one).
const SERVED: &str = "e.outcome = 'success' AND e.lifecycle IS NOT 'purge'";

/// A moved endpoint's start on the target: a push endpoint after every moved event (the
/// source delivered them); a poll stream from its creation on, as a stream new to an object
/// starts (`store::object::mirror_stream_stmts`), unless its `stream` record says where it
/// stands (a file from a source without them, or a stream its object never served).
const ENDPOINT_START: &str = "CASE WHEN json_extract(j.value, '$.url') = '' \
     THEN (SELECT coalesce(max(seq), 0) FROM events WHERE tenant = target.t \
     AND time < json_extract(j.value, '$.created')) \
     ELSE (SELECT coalesce(max(seq), 0) FROM events WHERE tenant = target.t) END";

/// A stream's floor on export: how many of the served events it has behind it (acknowledged
/// or reported, or older than the stream).
const STREAM_FLOOR: &str = "(SELECT count(*) FROM events e WHERE e.tenant = webhooks.tenant \
     AND e.seq <= webhooks.enqueued_seq AND e.outcome = 'success' \
     AND e.lifecycle IS NOT 'purge')";

/// A stream's marks above its floor on export, as the JSON array text of `[n, status,
/// error, time]`: the `n`th served event after the floor was acknowledged (`delivered`) or
/// reported (`dead`) then. One pass over the events above the floor.
const STREAM_MARKS: &str = "(SELECT json_group_array(json_array(n.n, d.status, d.last_error, \
     d.last_attempt)) FROM (SELECT e.seq, row_number() OVER (ORDER BY e.seq) AS n FROM events e \
     WHERE e.tenant = webhooks.tenant AND e.seq > webhooks.enqueued_seq AND e.outcome = 'success' \
     AND e.lifecycle IS NOT 'purge') n JOIN webhook_deliveries d ON d.endpoint = webhooks.id \
     AND d.seq = n.seq AND d.type = 'set' AND d.status IN ('delivered', 'dead'))";

/// A stream's floor on import: the target's own `seq` of the `floor`th served event.
const STREAM_START: &str = "CASE WHEN json_extract(j.value, '$.floor') > 0 THEN coalesce(\
     (SELECT n.seq FROM (SELECT e.seq, row_number() OVER (ORDER BY e.seq) AS n FROM events e \
     WHERE e.tenant = target.t AND e.outcome = 'success' AND e.lifecycle IS NOT 'purge') n \
     WHERE n.n = json_extract(j.value, '$.floor')), \
     (SELECT coalesce(max(seq), 0) FROM events WHERE tenant = target.t)) ELSE 0 END";

/// The import's statement for the `stream` records' marks: each becomes the stream's
/// delivery-log row of the target's event at the same place among the served events (one
/// numbering of the tenant's events for the chunk, not one per mark), so what the receiver
/// acknowledged before the move is not served again.
fn stream_marks_stmt(tenant: &str, json_array: &str, guard: &Guard) -> Stmt {
    let mut params: Vec<SqlValue> = vec![tenant.into(), tenant.into(), json_array.into()];
    params.extend(guard.params());
    Stmt::new(
        format!(
            "WITH n AS (SELECT e.seq, row_number() OVER (ORDER BY e.seq) AS n FROM events e \
             WHERE e.tenant = ? AND {SERVED}) \
             INSERT INTO webhook_deliveries (endpoint, seq, type, tenant, status, attempts, \
             last_error, last_attempt, queued, sent) \
             SELECT w.id, n.seq, 'set', w.tenant, json_extract(m.value, '$[1]'), 1, \
             json_extract(m.value, '$[2]'), json_extract(m.value, '$[3]'), \
             coalesce(json_extract(m.value, '$[3]'), w.modified), 1 \
             FROM (SELECT ? AS t) target, json_each(?) s \
             JOIN webhooks w ON w.id = json_extract(s.value, '$.id') AND w.tenant = target.t \
             AND w.url = '' \
             JOIN json_each(json_extract(s.value, '$.marks')) m \
             JOIN n ON n.n = json_extract(s.value, '$.floor') + json_extract(m.value, '$[0]') \
             WHERE json_extract(m.value, '$[1]') IN ('delivered', 'dead') AND {} \
             ON CONFLICT (endpoint, seq, type) DO NOTHING",
            guard.sql()
        ),
        params,
    )
}

/// Where an export page starts within a kind of record: after this key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Int(i64),
    Pair(String, String),
}

/// A page key as text (`-`, `i<rowid>`, or `p<a>~<b>` in base64url): in the export's
/// position, and between the worker and a tenant's object (`service::moving_hop`).
pub fn encode_key(k: Option<&Key>) -> String {
    match k {
        None => "-".to_string(),
        Some(Key::Int(i)) => format!("i{i}"),
        Some(Key::Pair(a, b)) => {
            format!(
                "p{}~{}",
                URL_SAFE_NO_PAD.encode(a),
                URL_SAFE_NO_PAD.encode(b)
            )
        }
    }
}

/// The inverse of [`encode_key`]; `None` if `k` is not one.
pub fn parse_key(k: &str) -> Option<Option<Key>> {
    let text =
        |b: &str| -> Option<String> { String::from_utf8(URL_SAFE_NO_PAD.decode(b).ok()?).ok() };
    Some(match k {
        "-" => None,
        k if k.starts_with('i') => Some(Key::Int(k.get(1..)?.parse().ok()?)),
        k => {
            let (a, b) = k.strip_prefix('p')?.split_once('~')?;
            Some(Key::Pair(text(a)?, text(b)?))
        }
    })
}

/// The spec of a record kind, by its `record` name.
pub fn spec(record: &str) -> Option<(usize, &'static Spec)> {
    SPECS.iter().enumerate().find(|(_, s)| s.record == record)
}

impl Spec {
    /// Checks that `rec` holds exactly this kind's columns with their types (and `record`).
    pub fn check(&self, rec: &Map<String, Value>) -> std::result::Result<(), String> {
        let computed = self.computed.iter().map(|(n, c, _)| (n, c));
        for (name, col) in self.columns.iter().map(|(n, c)| (n, c)).chain(computed) {
            let v = rec.get(*name).unwrap_or(&Value::Null);
            let ok = match col {
                Text => v.is_string(),
                OptText => v.is_string() || v.is_null(),
                Int => v.is_i64(),
                OptInt => v.is_i64() || v.is_null(),
                List => v.is_array(),
            };
            if !ok {
                return Err(format!(
                    "'{name}' of a {} record must be {}",
                    self.record,
                    match col {
                        Text => "a string",
                        OptText => "a string or null",
                        Int => "an integer",
                        OptInt => "an integer or null",
                        List => "an array",
                    }
                ));
            }
        }
        let known = |k: &str| {
            k == "record"
                || self.columns.iter().any(|(n, _)| *n == k)
                || self.computed.iter().any(|(n, _, _)| *n == k)
        };
        match rec.keys().find(|k| !known(k)) {
            Some(k) => Err(format!("a {} record has no member '{k}'", self.record)),
            None => Ok(()),
        }
    }

    /// `json_object('record', '<kind>', 'c', c, …)`: the record's text, built by SQLite.
    fn line_sql(&self) -> String {
        let mut s = format!("json_object('record', '{}'", self.record);
        for (name, _) in self.columns {
            s.push_str(&format!(", '{name}', {name}"));
        }
        for (name, _, sql) in self.computed {
            s.push_str(&format!(", '{name}', {sql}"));
        }
        s.push(')');
        s
    }

    fn key_sql(&self) -> String {
        match self.order {
            Order::Rowid(c) => format!("{c} AS k1"),
            Order::Pair(a, b) => format!("{a} AS k1, {b} AS k2"),
        }
    }

    /// One export page of this kind: up to `limit` records after `after`, `until` bounding
    /// the rowid (the events a frozen export counted).
    fn page_stmt(&self, tenant: &str, after: Option<&Key>, until: i64, limit: i64) -> Stmt {
        let mut params: Vec<SqlValue> = vec![tenant.into()];
        let mut cond = String::new();
        match (self.order, after) {
            (Order::Rowid(c), Some(Key::Int(k))) => {
                cond = format!(" AND {c} > ?");
                params.push(SqlValue::Int(*k));
            }
            (Order::Pair(a, b), Some(Key::Pair(x, y))) => {
                cond = format!(" AND ({a}, {b}) > (?, ?)");
                params.push(x.as_str().into());
                params.push(y.as_str().into());
            }
            _ => {}
        }
        if let Order::Rowid(c) = self.order {
            cond.push_str(&format!(" AND {c} <= ?"));
            params.push(SqlValue::Int(until));
        }
        let order = match self.order {
            Order::Rowid(c) => c.to_string(),
            Order::Pair(a, b) => format!("{a}, {b}"),
        };
        params.push(SqlValue::Int(limit));
        Stmt::new(
            format!(
                "SELECT {}, {} AS line FROM {} WHERE tenant = ?{cond}{} ORDER BY {order} {LIMIT_PARAM}",
                self.key_sql(),
                self.line_sql(),
                self.table,
                self.filter,
            ),
            params,
        )
    }

    /// Inserts the records in `json_array` (a JSON array of this kind's records) in array
    /// order, if `guard` holds.
    fn insert_stmt(&self, tenant: &str, json_array: String, guard: &Guard, holds: Holds) -> Stmt {
        let mut cols = String::from("tenant");
        let mut vals = String::from("target.t");
        for (name, _) in self.columns {
            cols.push_str(&format!(", {name}"));
            vals.push_str(&format!(", json_extract(j.value, '$.{name}')"));
        }
        for (name, expr) in self.derived {
            cols.push_str(&format!(", {name}"));
            vals.push_str(&format!(", {expr}"));
        }
        let mut params: Vec<SqlValue> = vec![tenant.into(), SqlValue::Text(json_array)];
        params.extend(guard.params());
        Stmt::new(
            format!(
                "INSERT INTO {} ({cols}) SELECT {vals} FROM (SELECT ? AS t) target, \
                 json_each(?) j WHERE {}{} ORDER BY j.key{}",
                self.table,
                guard.sql(),
                match (holds, self.with_control) {
                    (Holds::All, c) if !c.is_empty() => format!(" AND {c}"),
                    _ => String::new(),
                },
                self.on_conflict
            ),
            params,
        )
    }
}

/// What an export counted when it froze the tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The tenant record's text.
    pub tenant_line: String,
    /// How many records of each kind of [`SPECS`] the export will hold.
    pub counts: Vec<(&'static str, i64)>,
    /// The newest event of the tenant when it froze: later events (the refused writes'
    /// failures) are not exported.
    pub until: i64,
}

/// Where an import stands.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportState {
    pub source: String,
    pub lines: i64,
    pub chain: String,
    pub counts: Map<String, Value>,
    pub token: i64,
    pub started: String,
}

/// What the target tenant is, before an import's first chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub exists: bool,
    /// The tenant holds something already (resources, events, settings, credentials, …).
    pub has_data: bool,
    pub import: Option<ImportState>,
    /// The import that this look at the target found complete where the directory is and
    /// ended on the control plane's side too (its answer had been lost): the client is told
    /// it is done (`service::moving_hop::target`).
    pub finished: Option<ImportState>,
}

/// One chunk of an import, validated and planned by the service.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// The state the chunk continues (`None`: the first chunk, which starts the import).
    pub from: Option<ImportState>,
    /// The state after it.
    pub to: ImportState,
    /// The tenant record's text, if the chunk holds it.
    pub tenant_line: Option<String>,
    /// Per kind of [`SPECS`] (by index), the chunk's records as one JSON array text.
    pub records: Vec<(usize, String)>,
    /// The chunk ends the import (its trailer verified): the tenant is released.
    pub finish: bool,
    /// The source's newest event (its header's `sequence`; 0 if it does not say), when the
    /// chunk starts the import: the target numbers the moved events after it.
    pub sequence: i64,
}

/// The condition every insert of a chunk is guarded by: the import row now carries this
/// chunk's token, i.e. the chunk's first statement (the position check) applied.
struct Guard {
    tenant: String,
    token: i64,
}

impl Guard {
    fn sql(&self) -> &'static str {
        "EXISTS (SELECT 1 FROM tenant_imports WHERE tenant = ? AND token = ? AND writing = 1)"
    }
    fn params(&self) -> Vec<SqlValue> {
        vec![self.tenant.as_str().into(), SqlValue::Int(self.token)]
    }
}

fn int(row: &Row, name: &str) -> Result<i64> {
    row.get(name)
        .and_then(Value::as_i64)
        .ok_or(StoreError::Corrupt("tenant move row"))
}

fn text(row: &Row, name: &str) -> Result<String> {
    row.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or(StoreError::Corrupt("tenant move row"))
}

fn import_state(row: &Row) -> Result<ImportState> {
    let counts = match serde_json::from_str::<Value>(&text(row, "counts")?) {
        Ok(Value::Object(o)) => o,
        _ => return Err(StoreError::Corrupt("tenant_imports.counts")),
    };
    Ok(ImportState {
        source: text(row, "source")?,
        lines: int(row, "lines")?,
        chain: text(row, "chain")?,
        counts,
        token: int(row, "token")?,
        started: text(row, "started")?,
    })
}

/// Result of starting or resuming an export.
#[derive(Debug, Clone, PartialEq)]
pub enum Freeze {
    Frozen(Snapshot),
    NoTenant,
    /// The tenant is being imported: it has nothing whole to export yet.
    Importing,
}

impl<D: Db> Store<'_, D> {
    /// Freezes the tenant's directory for an export and counts, in the same transaction,
    /// what the export will hold of the kinds this database `holds` (0 for the others).
    /// Freezing again (a restarted export) is harmless.
    pub async fn freeze_for_export(&self, with_credentials: bool, holds: Holds) -> Result<Freeze> {
        let t = self.tenant();
        let mut stmts = vec![
            Stmt::new(
                "UPDATE tenants SET moving = 'exporting' WHERE id = ? AND \
                 coalesce(moving, 'exporting') = 'exporting' RETURNING id",
                vec![t.into()],
            ),
            Stmt::new(
                format!(
                    "SELECT moving, {} AS line FROM tenants WHERE id = ?",
                    TENANT.line_sql()
                ),
                vec![t.into()],
            ),
            Stmt::new(
                "SELECT coalesce(max(seq), 0) AS until FROM events WHERE tenant = ?",
                vec![t.into()],
            ),
        ];
        for s in SPECS.iter() {
            stmts.push(Stmt::new(
                format!(
                    "SELECT count(*) AS n FROM {} WHERE tenant = ?{}",
                    s.table, s.filter
                ),
                vec![t.into()],
            ));
        }
        let res = self.db.batch(stmts).await?;
        let first = |i: usize| res.get(i).and_then(|rows| rows.first());
        let Some(tenant) = first(1) else {
            return Ok(Freeze::NoTenant);
        };
        if first(0).is_none() {
            return Ok(Freeze::Importing);
        }
        let until = first(2).map(|r| int(r, "until")).transpose()?.unwrap_or(0);
        let mut counts = Vec::new();
        for (i, s) in SPECS.iter().enumerate() {
            let n = match first(3 + i) {
                Some(r) => int(r, "n")?,
                None => 0,
            };
            // Every event counted has `seq <= until`: both were read in the freezing transaction.
            let n = if !holds.holds(s) || (s.record == "credential" && !with_credentials) {
                0
            } else {
                n
            };
            counts.push((s.record, n));
        }
        Ok(Freeze::Frozen(Snapshot {
            tenant_line: text(tenant, "line")?,
            counts,
            until,
        }))
    }

    /// Ends an export: SCIM writes are accepted again. `false` if the tenant was not
    /// frozen for one.
    pub async fn end_export(&self) -> Result<bool> {
        let res = self
            .db
            .batch(vec![Stmt::new(
                "UPDATE tenants SET moving = NULL WHERE id = ? AND moving = 'exporting' RETURNING id",
                vec![self.tenant().into()],
            )])
            .await?;
        Ok(res.first().is_some_and(|rows| !rows.is_empty()))
    }

    /// Up to `limit` records of kind `spec` after `after`: each its page key and its text.
    /// `None` if the tenant is no longer frozen for the export (its pages would not add up
    /// to one directory any more).
    pub async fn export_page(
        &self,
        spec: &Spec,
        after: Option<&Key>,
        until: i64,
        limit: i64,
    ) -> Result<Option<Vec<(Key, String)>>> {
        let until = if spec.record == "event" {
            until
        } else {
            i64::MAX >> 11
        };
        let res = self
            .db
            .batch(vec![
                Stmt::new(
                    "SELECT id FROM tenants WHERE id = ? AND moving = 'exporting'",
                    vec![self.tenant().into()],
                ),
                spec.page_stmt(self.tenant(), after, until, limit),
            ])
            .await?;
        let mut res = res.into_iter();
        if res.next().is_none_or(|rows| rows.is_empty()) {
            return Ok(None);
        }
        let rows = res.next().unwrap_or_default();
        rows.iter()
            .map(|r| {
                let key = match spec.order {
                    Order::Rowid(_) => Key::Int(int(r, "k1")?),
                    Order::Pair(..) => Key::Pair(text(r, "k1")?, text(r, "k2")?),
                };
                Ok((key, text(r, "line")?))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

/// `NOT EXISTS` over every table of `holds` a tenant's data lives in: the tenant holds
/// nothing there. (The object's copy of the declarations is not its data: D1's is.)
fn empty_sql(holds: Holds) -> String {
    SPECS
        .iter()
        .filter(|s| holds.holds(s))
        .map(|s| format!("NOT EXISTS (SELECT 1 FROM {} WHERE tenant = ?)", s.table))
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn empty_params(tenant: &str, holds: Holds) -> Vec<SqlValue> {
    vec![tenant.into(); SPECS.iter().filter(|s| holds.holds(s)).count()]
}

/// Makes the target number the moved events after `sequence`, the source's newest: a
/// row of that number is inserted and deleted (AUTOINCREMENT never reuses a number), unless
/// the target's events are numbered beyond it already. So a SET's `jti` (the event's number)
/// the source issued names no event of the tenant on the target: a receiver acknowledging
/// one there after the move acknowledges nothing, rather than another event.
fn sequence_stmts(tenant: &str, sequence: i64, guard: &Guard) -> Vec<Stmt> {
    let mut params: Vec<SqlValue> = vec![
        SqlValue::Int(sequence),
        tenant.into(),
        SqlValue::Int(sequence),
    ];
    params.extend(guard.params());
    let mut gone: Vec<SqlValue> = vec![SqlValue::Int(sequence), tenant.into()];
    gone.extend(guard.params());
    vec![
        Stmt::new(
            format!(
                "INSERT INTO events (seq, tenant, time, op, resource_type, outcome, status) \
                 SELECT ?, ?, '', 'create', '', 'failure', 0 \
                 WHERE ? > (SELECT coalesce(max(seq), 0) FROM events) AND {}",
                guard.sql()
            ),
            params,
        ),
        Stmt::new(
            format!(
                "DELETE FROM events WHERE seq = ? AND tenant = ? AND time = '' AND {}",
                guard.sql()
            ),
            gone,
        ),
    ]
}

/// Columns of `tenant_imports`, in the order [`state_params`] binds them.
const STATE_COLUMNS: &str = "source, lines, chain, counts, token, started";

fn state_params(s: &ImportState) -> Vec<SqlValue> {
    vec![
        s.source.as_str().into(),
        SqlValue::Int(s.lines),
        s.chain.as_str().into(),
        Value::Object(s.counts.clone()).to_string().into(),
        SqlValue::Int(s.token),
        s.started.as_str().into(),
    ]
}

impl<D: Db> Store<'_, D> {
    /// The target of an import: whether the tenant exists, holds data, or is importing.
    pub async fn import_target(&self, holds: Holds) -> Result<Target> {
        let t = self.tenant();
        let mut params: Vec<SqlValue> = vec![t.into()];
        params.extend(empty_params(t, holds));
        let res = self
            .db
            .batch(vec![
                Stmt::new(
                    format!(
                        "SELECT (SELECT count(*) FROM tenants WHERE id = ?) AS present, \
                         NOT ({}) AS has_data",
                        empty_sql(holds)
                    ),
                    params,
                ),
                Stmt::new(
                    format!("SELECT {STATE_COLUMNS} FROM tenant_imports WHERE tenant = ?"),
                    vec![t.into()],
                ),
            ])
            .await?;
        let first = |i: usize| res.get(i).and_then(|rows| rows.first());
        let row = first(0).ok_or(StoreError::Corrupt("import target"))?;
        Ok(Target {
            exists: int(row, "present")? > 0,
            has_data: int(row, "has_data")? != 0,
            import: first(1).map(import_state).transpose()?,
            finished: None,
        })
    }

    /// Applies one chunk of an import in one transaction: all of it, or nothing (`false`: the
    /// import is no longer where `chunk.from` says: another chunk applied meanwhile, or the
    /// target stopped being empty). Only the records of the kinds this database `holds` are
    /// written; the position and the tenant's settings always are. The last chunk into a
    /// tenant's object also hands it the tenant's push `endpoints` (D1's rows), in the same
    /// transaction (`webhooks::moved_endpoints_stmt`).
    pub async fn apply_chunk(
        &self,
        chunk: &Chunk,
        holds: Holds,
        endpoints: &[Row],
    ) -> Result<bool> {
        let t = self.tenant();
        let guard = Guard {
            tenant: t.to_string(),
            token: chunk.to.token,
        };
        let mut stmts = self.position_stmts(chunk, &guard, holds);
        if chunk.from.is_none() && spec("event").is_some_and(|(_, e)| holds.holds(e)) {
            stmts.extend(sequence_stmts(t, chunk.sequence, &guard));
        }
        if let Some(line) = &chunk.tenant_line {
            let mut sets = Vec::new();
            for (name, _) in TENANT.columns {
                sets.push(format!("{name} = json_extract(?, '$.{name}')"));
            }
            let mut params: Vec<SqlValue> = vec![line.as_str().into(); TENANT.columns.len()];
            params.push(t.into());
            params.extend(guard.params());
            stmts.push(Stmt::new(
                format!(
                    "UPDATE tenants SET {} WHERE id = ? AND {}",
                    sets.join(", "),
                    guard.sql()
                ),
                params,
            ));
        }
        for (i, array) in &chunk.records {
            if let Some(spec) = SPECS.get(*i).filter(|s| holds.holds(s)) {
                stmts.push(spec.insert_stmt(t, array.clone(), &guard, holds));
                stmts.extend(spec.then.map(|then| then(t, array, &guard)));
            }
        }
        if chunk.finish && !endpoints.is_empty() {
            stmts.push(crate::store::webhooks::moved_endpoints_stmt(
                t,
                endpoints,
                guard.sql(),
                guard.params(),
            )?);
        }
        let mut params = vec![t.into()];
        params.extend(guard.params());
        if chunk.finish {
            stmts.push(Stmt::new(
                format!(
                    "UPDATE tenants SET moving = NULL WHERE id = ? AND {}",
                    guard.sql()
                ),
                params,
            ));
        }
        let last = if chunk.finish {
            "DELETE FROM tenant_imports WHERE tenant = ? AND token = ? RETURNING token"
        } else {
            "UPDATE tenant_imports SET writing = 0 WHERE tenant = ? AND token = ? RETURNING token"
        };
        stmts.push(Stmt::new(last, guard.params()));
        let res = self.run_write(stmts).await?;
        Ok(res.last().is_some_and(|rows| !rows.is_empty()))
    }

    /// The statements that move the import from `chunk.from` to `chunk.to` (or start it),
    /// leaving `writing` set for the chunk's inserts.
    fn position_stmts(&self, chunk: &Chunk, guard: &Guard, holds: Holds) -> Vec<Stmt> {
        let t = self.tenant();
        let to = &chunk.to;
        match &chunk.from {
            None => {
                let mut params: Vec<SqlValue> = vec![t.into()];
                params.extend(state_params(to));
                params.push(t.into());
                params.extend(empty_params(t, holds));
                let mut moving = vec![t.into()];
                moving.extend(guard.params());
                vec![
                    Stmt::new(
                        "INSERT INTO tenants (id, name, created) VALUES (?, ?, ?) \
                         ON CONFLICT (id) DO NOTHING",
                        vec![t.into(), t.into(), to.started.as_str().into()],
                    ),
                    Stmt::new(
                        format!(
                            "INSERT INTO tenant_imports (tenant, {STATE_COLUMNS}, writing) \
                             SELECT ?, ?, ?, ?, ?, ?, ?, 1 WHERE NOT EXISTS \
                             (SELECT 1 FROM tenant_imports WHERE tenant = ?) AND {}",
                            empty_sql(holds)
                        ),
                        params,
                    ),
                    Stmt::new(
                        format!(
                            "UPDATE tenants SET moving = 'importing' WHERE id = ? AND {}",
                            guard.sql()
                        ),
                        moving,
                    ),
                ]
            }
            Some(from) => {
                let mut params = state_params(to);
                params.extend([
                    t.into(),
                    SqlValue::Int(from.token),
                    SqlValue::Int(from.lines),
                ]);
                vec![Stmt::new(
                    format!(
                        "UPDATE tenant_imports SET ({STATE_COLUMNS}, writing) = \
                         (?, ?, ?, ?, ?, ?, 1) WHERE tenant = ? AND token = ? AND lines = ?"
                    ),
                    params,
                )]
            }
        }
    }

    /// Runs a write batch, reading the limits after a quota refusal like every write.
    async fn run_write(&self, stmts: Vec<Stmt>) -> Result<Vec<Vec<Row>>> {
        match self.db.batch(stmts).await {
            Ok(rows) => Ok(rows),
            Err(crate::store::DbError::Quota(q)) => Err(StoreError::Quota(
                q,
                self.quota_usage().await.ok().flatten(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The tenant's push endpoints in this database (D1, the control plane), for the
    /// tenant's object at the end of an import into it ([`Store::apply_chunk`]).
    pub async fn moved_endpoints(&self) -> Result<Vec<Row>> {
        crate::store::webhooks::push_endpoints(self.db, self.tenant()).await
    }

    /// Ends an import whose records are all written (D1's part of an object tenant's import,
    /// once the object has verified the trailer): SCIM writes are accepted again.
    pub async fn finish_import(&self) -> Result<()> {
        let t = self.tenant();
        self.db
            .batch(vec![
                Stmt::new(
                    "UPDATE tenants SET moving = NULL WHERE id = ? AND moving = 'importing'",
                    vec![t.into()],
                ),
                Stmt::new(
                    "DELETE FROM tenant_imports WHERE tenant = ?",
                    vec![t.into()],
                ),
            ])
            .await?;
        Ok(())
    }

    /// Undoes an import under way, `limit` resources and events at a time (a 100k-user
    /// tenant takes several calls, each well inside a request's limits). Answers what is
    /// left; at 0 the tenant is empty and no longer importing. `None`: no import under way.
    /// Only the tables of the kinds this database `holds` are emptied.
    pub async fn abort_import(&self, limit: i64, holds: Holds) -> Result<Option<i64>> {
        let t = self.tenant();
        let gate = "EXISTS (SELECT 1 FROM tenant_imports WHERE tenant = ? AND writing = 1)";
        let left = "(SELECT count(*) FROM resources WHERE tenant = ?) + \
                    (SELECT count(*) FROM events WHERE tenant = ?)";
        let mut stmts = vec![
            Stmt::new(
                "UPDATE tenant_imports SET writing = 1 WHERE tenant = ? RETURNING token",
                vec![t.into()],
            ),
            Stmt::new(
                format!(
                    "DELETE FROM resources WHERE rowid IN (SELECT rowid FROM resources \
                     WHERE tenant = ? {LIMIT_PARAM}) AND {gate}"
                ),
                vec![t.into(), SqlValue::Int(limit), t.into()],
            ),
            Stmt::new(
                format!(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE tenant = ? \
                     {LIMIT_PARAM}) AND {gate}"
                ),
                vec![t.into(), SqlValue::Int(limit), t.into()],
            ),
        ];
        for s in SPECS
            .iter()
            .filter(|s| holds.holds(s) && !matches!(s.table, "resources" | "events"))
        {
            stmts.push(Stmt::new(
                format!("DELETE FROM {} WHERE tenant = ? AND {gate}", s.table),
                vec![t.into(), t.into()],
            ));
        }
        let done = format!("({left}) = 0");
        stmts.extend([
            Stmt::new(format!("SELECT {left} AS n"), vec![t.into(), t.into()]),
            Stmt::new(
                format!("UPDATE tenants SET moving = NULL WHERE id = ? AND {gate} AND {done}"),
                vec![t.into(), t.into(), t.into(), t.into()],
            ),
            Stmt::new(
                format!("DELETE FROM tenant_imports WHERE tenant = ? AND {done}"),
                vec![t.into(), t.into(), t.into()],
            ),
            Stmt::new(
                "UPDATE tenant_imports SET writing = 0 WHERE tenant = ?",
                vec![t.into()],
            ),
        ]);
        let res = self.db.batch(stmts).await?;
        if res.first().is_none_or(|rows| rows.is_empty()) {
            return Ok(None);
        }
        let n = res
            .get(res.len().saturating_sub(4))
            .and_then(|rows| rows.first())
            .map(|r| int(r, "n"))
            .transpose()?;
        Ok(Some(n.unwrap_or(0)))
    }
}
