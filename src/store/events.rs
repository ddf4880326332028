//! The provisioning log and change feed.
//!
//! Successful writes are recorded by the store inside the write's own batch (see
//! `store::AuditNote`), guarded by the same condition as the write, so an event exists exactly
//! when its change does. Failed write requests are recorded here afterwards, in a batch of
//! their own (a round trip spent only on the failure path). The admin API reads the log with
//! filters and pages it by `seq`, which makes it a change feed: `since=<last seq seen>`
//! returns every later event once, in commit order.

use crate::proto::error::{Result, ScimError};
use crate::proto::schema::ResourceType;
use crate::proto::time;
use crate::store::sql::{SqlValue, Stmt, LIMIT_PARAM};
use crate::store::{Db, Row};
use serde_json::{json, Value};

/// Most events one page of the feed returns.
pub const MAX_PAGE: i64 = 1000;
const DEFAULT_PAGE: i64 = 100;
/// Days of log kept when `LOG_RETENTION_DAYS` is not set.
pub const DEFAULT_RETENTION_DAYS: i64 = 90;
/// Longest error detail kept for a failed request.
const MAX_DETAIL_CHARS: usize = 500;

/// What the log records of a write request, besides tenant, time and outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditNote {
    /// `create`, `replace`, `patch` or `delete`.
    pub op: &'static str,
    pub credential: Option<String>,
    pub request_id: String,
    /// Canonical names of the attributes the request changed.
    pub attributes: Vec<String>,
    /// When the request was made (stored timestamp form).
    pub time: String,
}

/// An SQL expression with its parameters, evaluated by the event's INSERT.
pub type Expr = (String, Vec<SqlValue>);

/// What the event row derives from the state the write starts from (its INSERT runs first in
/// the write's batch): whether it deactivated or reactivated a user, and which member ids it
/// added to or removed from a group (JSON arrays, NULL for none). Webhooks map these to their
/// event types (`proto::webhook`), so nothing needs reading back after the commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub deactivated: Expr,
    pub reactivated: Expr,
    pub members_added: Expr,
    pub members_removed: Expr,
    /// `lifecycle` (migration 0025): 'soft' for a delete that kept a tombstone, 'restore' for
    /// a create that brought one back; NULL otherwise.
    pub lifecycle: Expr,
}

impl Default for Derived {
    fn default() -> Self {
        Derived {
            deactivated: ("0".into(), Vec::new()),
            reactivated: ("0".into(), Vec::new()),
            members_added: ("NULL".into(), Vec::new()),
            members_removed: ("NULL".into(), Vec::new()),
            lifecycle: ("NULL".into(), Vec::new()),
        }
    }
}

/// `INSERT INTO events …` for a successful write. `guard` is an SQL condition (with its
/// params) that holds exactly when the write applies.
pub fn success_stmt(
    tenant: &str,
    rt: ResourceType,
    id: &str,
    note: &AuditNote,
    derived: Derived,
    guard: Option<(&str, Vec<SqlValue>)>,
) -> Stmt {
    let status: i64 = match note.op {
        "create" => 201,
        "delete" => 204,
        _ => 200,
    };
    let mut params: Vec<SqlValue> = vec![
        tenant.into(),
        note.time.as_str().into(),
        note.op.into(),
        rt.name().into(),
        id.into(),
        note.credential
            .clone()
            .map_or(SqlValue::Null, SqlValue::Text),
        json!(note.attributes).to_string().into(),
    ];
    let mut exprs = Vec::with_capacity(6);
    for (sql, p) in [
        derived.deactivated,
        derived.reactivated,
        derived.members_added,
        derived.members_removed,
        derived.lifecycle,
    ] {
        exprs.push(sql);
        params.extend(p);
    }
    // A delete keeps the externalId the resource had (a security event names it; migration
    // 0022); read before the delete, as the event is written before the change.
    if note.op == "delete" {
        exprs.push("(SELECT external_id FROM resources WHERE tenant = ? AND id = ?)".into());
        params.extend([tenant.into(), id.into()]);
    } else {
        exprs.push("NULL".into());
    }
    params.extend([SqlValue::Int(status), note.request_id.as_str().into()]);
    let mut sql = format!(
        "INSERT INTO events (tenant, time, op, resource_type, resource_id, credential, attributes, \
         deactivated, reactivated, members_added, members_removed, lifecycle, external_id, outcome, \
         status, request_id) SELECT ?, ?, ?, ?, ?, ?, ?, {}, 'success', ?, ?",
        exprs.join(", ")
    );
    if let Some((cond, p)) = guard {
        sql.push_str(&format!(" WHERE {cond}"));
        params.extend(p);
    }
    Stmt::new(sql, params)
}

/// Records a failed write request. Best effort: a failure to log never changes the answer.
pub async fn record_failure<D: Db>(
    db: &D,
    tenant: &str,
    rt: ResourceType,
    id: Option<&str>,
    note: &AuditNote,
    err: &ScimError,
) {
    let detail: String = err.detail.chars().take(MAX_DETAIL_CHARS).collect();
    let stmt = Stmt::new(
        "INSERT INTO events (tenant, time, op, resource_type, resource_id, credential, attributes, \
         outcome, status, request_id, detail) VALUES (?, ?, ?, ?, ?, ?, '[]', 'failure', ?, ?, ?)",
        vec![
            tenant.into(),
            note.time.as_str().into(),
            note.op.into(),
            rt.name().into(),
            id.map_or(SqlValue::Null, SqlValue::from),
            note.credential.clone().map_or(SqlValue::Null, SqlValue::Text),
            SqlValue::Int(i64::from(err.status)),
            note.request_id.as_str().into(),
            detail.into(),
        ],
    );
    let _ = db.batch(vec![stmt]).await;
}

/// The OAuth grant credential `c` came from: `authorization_code` for an access token of an
/// approval (migration 0019), `client_credentials` for one a client obtained, NULL for a
/// bearer token. Read, not stored, so events keep their shape.
macro_rules! grant_of_credential {
    () => {
        "CASE WHEN c.kind <> 'access' THEN NULL \
         WHEN EXISTS (SELECT 1 FROM oauth_grants g WHERE g.id = c.parent_id) \
         THEN 'authorization_code' ELSE 'client_credentials' END"
    };
}

/// The grant of an event's credential (NULL for a Worker secret, which has no row).
const GRANT_SQL: &str = concat!(
    "(SELECT ",
    grant_of_credential!(),
    " FROM credentials c WHERE c.id = events.credential AND c.tenant = events.tenant)"
);

/// The grants of `tenant`'s credentials `ids` (those with one), by credential id: for the
/// log of a tenant kept in a Durable Object, whose events are there and whose credentials
/// are in D1. One round trip.
pub async fn grants<D: Db>(
    db: &D,
    tenant: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>> {
    let list = serde_json::to_string(ids).map_err(|_| ScimError::internal())?;
    let stmt = Stmt::new(
        concat!(
            "SELECT c.id AS id, ",
            grant_of_credential!(),
            " AS via_grant FROM credentials c WHERE c.tenant = ? \
             AND c.id IN (SELECT value FROM json_each(?))"
        ),
        vec![tenant.into(), list.into()],
    );
    let rows = db
        .batch(vec![stmt])
        .await
        .map_err(crate::store::StoreError::from)?
        .into_iter()
        .next()
        .unwrap_or_default();
    Ok(rows
        .iter()
        .filter_map(|r| {
            let id = r.get("id")?.as_str()?;
            let grant = r.get("via_grant")?.as_str()?;
            Some((id.to_string(), grant.to_string()))
        })
        .collect())
}

/// Filters of `GET /admin/api/tenants/{t}/events`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    pub since: i64,
    pub limit: i64,
    pub op: Option<String>,
    pub outcome: Option<String>,
    pub rt: Option<ResourceType>,
    pub resource: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl EventQuery {
    /// Reads the admin API's query parameters (`param` looks one up by name; the store knows
    /// nothing of HTTP).
    pub fn parse<'q>(param: impl Fn(&str) -> Option<&'q str>) -> Result<EventQuery> {
        let int = |name: &str| -> Result<Option<i64>> {
            param(name)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<i64>().map_err(|_| {
                        ScimError::invalid_value(format!("'{name}' must be an integer"))
                    })
                })
                .transpose()
        };
        let instant = |name: &str| -> Result<Option<String>> {
            param(name)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    time::normalize(s).ok_or_else(|| {
                        ScimError::invalid_value(format!("'{name}' must be an RFC 3339 date-time"))
                    })
                })
                .transpose()
        };
        let one_of = |name: &str, allowed: &[&str]| -> Result<Option<String>> {
            match param(name).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(v) if allowed.contains(&v) => Ok(Some(v.to_string())),
                Some(v) => Err(ScimError::invalid_value(format!(
                    "'{name}' must be one of {}, not '{v}'",
                    allowed.join(", ")
                ))),
            }
        };
        let rt = match param("type").filter(|s| !s.is_empty()) {
            None => None,
            Some(t) => Some(
                ResourceType::from_name(t)
                    .ok_or_else(|| ScimError::invalid_value("'type' must be User or Group"))?,
            ),
        };
        Ok(EventQuery {
            since: int("since")?.unwrap_or(0).max(0),
            limit: int("limit")?.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE),
            op: one_of("op", &["create", "replace", "patch", "delete"])?,
            outcome: one_of("outcome", &["success", "failure"])?,
            rt,
            resource: param("resource")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            from: instant("from")?,
            to: instant("to")?,
        })
    }

    pub fn stmt(&self, tenant: &str) -> Stmt {
        let mut sql = format!(
            "SELECT seq, time, op, resource_type, resource_id, credential, attributes, deactivated, \
             reactivated, members_added, members_removed, lifecycle, outcome, status, request_id, \
             detail, {GRANT_SQL} AS via_grant FROM events WHERE tenant = ? AND seq > ?",
        );
        let mut params: Vec<SqlValue> = vec![tenant.into(), SqlValue::Int(self.since)];
        let mut add = |cond: &str, v: SqlValue| {
            sql.push_str(cond);
            params.push(v);
        };
        if let Some(v) = &self.op {
            add(" AND op = ?", v.as_str().into());
        }
        if let Some(v) = &self.outcome {
            add(" AND outcome = ?", v.as_str().into());
        }
        if let Some(rt) = self.rt {
            add(" AND resource_type = ?", rt.name().into());
        }
        if let Some(v) = &self.resource {
            add(" AND resource_id = ?", v.as_str().into());
        }
        if let Some(v) = &self.from {
            add(" AND time >= ?", v.as_str().into());
        }
        if let Some(v) = &self.to {
            add(" AND time < ?", v.as_str().into());
        }
        sql.push_str(&format!(" ORDER BY seq {LIMIT_PARAM}"));
        params.push(SqlValue::Int(self.limit));
        Stmt::new(sql, params)
    }
}

fn int(row: &Row, col: &str) -> i64 {
    row.get(col)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
        .unwrap_or(0)
}

/// A JSON-array text column as a list (empty when NULL).
pub fn json_array(row: &Row, col: &str) -> Vec<String> {
    row.get(col)
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// One stored event as the admin API shows it.
pub fn render_event(row: &Row) -> Value {
    let attributes: Value = row
        .get("attributes")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_else(|| json!([]));
    json!({
        "seq": int(row, "seq"),
        "time": row.get("time"),
        "op": row.get("op"),
        "resourceType": row.get("resource_type"),
        "resourceId": row.get("resource_id"),
        "credential": row.get("credential"),
        "grant": row.get("via_grant"),
        "attributes": attributes,
        "deactivated": int(row, "deactivated") == 1,
        "reactivated": int(row, "reactivated") == 1,
        "membersAdded": json_array(row, "members_added"),
        "membersRemoved": json_array(row, "members_removed"),
        "lifecycle": row.get("lifecycle"),
        "outcome": row.get("outcome"),
        "status": int(row, "status"),
        "requestId": row.get("request_id"),
        "detail": row.get("detail"),
    })
}

/// Reads one page of the feed: `{"events": [...], "nextSince": <last seq or since>}`.
pub async fn list<D: Db>(db: &D, tenant: &str, q: &EventQuery) -> Result<Value> {
    let rows = db
        .batch(vec![q.stmt(tenant)])
        .await
        .map_err(|_| ScimError::internal())?
        .pop()
        .unwrap_or_default();
    let next = rows.last().map_or(q.since, |r| int(r, "seq"));
    let events: Vec<Value> = rows.iter().map(render_event).collect();
    Ok(json!({"events": events, "nextSince": next}))
}

/// Per-day counts for the console's chart: `{"days": [{"day", "create", "update",
/// "deactivate", "delete", "failure"}]}`, oldest first, over the last `days` days.
pub async fn summary<D: Db>(db: &D, tenant: &str, now_ms: i64, days: i64) -> Result<Value> {
    let days = days.clamp(1, 366);
    let from = time::format_millis(now_ms - (days - 1) * 86_400_000);
    let stmt = Stmt::new(
        "SELECT substr(time, 1, 10) AS day, \
         sum(outcome = 'success' AND op = 'create') AS creates, \
         sum(outcome = 'success' AND op IN ('replace', 'patch') AND deactivated = 0) AS updates, \
         sum(outcome = 'success' AND deactivated = 1) AS deactivations, \
         sum(outcome = 'success' AND op = 'delete' AND lifecycle IS NOT 'purge') AS deletes, \
         sum(outcome = 'failure') AS failures \
         FROM events WHERE tenant = ? AND time >= ? GROUP BY day ORDER BY day",
        vec![
            tenant.into(),
            format!("{}T00:00:00.000Z", &from[..10]).into(),
        ],
    );
    let rows = db
        .batch(vec![stmt])
        .await
        .map_err(|_| ScimError::internal())?
        .pop()
        .unwrap_or_default();
    let out: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "day": r.get("day"),
                "create": int(r, "creates"),
                "update": int(r, "updates"),
                "deactivate": int(r, "deactivations"),
                "delete": int(r, "deletes"),
                "failure": int(r, "failures"),
            })
        })
        .collect();
    Ok(json!({"days": out}))
}

/// Deletes events older than `retention_days` (all tenants); run by the scheduled handler.
pub fn prune_stmt(now_ms: i64, retention_days: i64) -> Stmt {
    let cutoff = time::format_millis(now_ms - retention_days.max(1) * 86_400_000);
    Stmt::new("DELETE FROM events WHERE time < ?", vec![cutoff.into()])
}

/// The retention setting (`LOG_RETENTION_DAYS`), defaulting when absent or not a positive number.
pub fn retention_days(raw: Option<&str>) -> i64 {
    raw.and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|d| *d > 0)
        .unwrap_or(DEFAULT_RETENTION_DAYS)
}
