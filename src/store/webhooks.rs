//! Webhook endpoints and their delivery log (migration 0014). Every statement is scoped to a
//! tenant except the sweeper's, which serves all tenants of the deployment (as the retention
//! cron does).
//!
//! The outbox: an event row exists exactly when its change does (`store::events`). Per
//! endpoint, `webhooks.enqueued_seq` marks how far the events have been turned into queue
//! messages, and a delivery row's `sent` marks a (re)delivery whose message went out. Messages
//! are sent *before* either marker moves, so a crash in between sends again (at least once,
//! deduplicated by the consumer and by `webhook-id`) and never loses an event.

use crate::proto::schema::ResourceType;
use crate::proto::webhook::Change;
use crate::store::events::json_array;
use crate::store::sql::{SqlValue, Stmt, LIMIT_PARAM};
use crate::store::{Db, Result, Row, StoreError};
use serde_json::Value;

/// Most events one sweep reads (per page); a sweep reads a few pages at most.
pub const SWEEP_PAGE: i64 = 200;

/// An endpoint as created.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEndpoint<'a> {
    pub id: &'a str,
    pub url: &'a str,
    /// JSON array text of the event filter.
    pub events: &'a str,
    pub format: &'a str,
    pub scim_base: &'a str,
    pub sealed_secret: &'a str,
    pub now: &'a str,
}

/// The columns the admin API shows (never the sealed secrets).
const PUBLIC_COLUMNS: &str = "id, url, events, format, scim_base, enabled, disabled_reason, \
     disabled_at, failing_since, previous_until, enqueued_seq, created, modified";

fn one(res: Vec<Vec<Row>>, at: usize) -> Option<Row> {
    res.into_iter()
        .nth(at)
        .and_then(|rows| rows.into_iter().next())
}

/// Creates an endpoint; `false` if the tenant does not exist. It starts after the newest
/// event: an endpoint receives what happens from its creation on, not the past.
pub async fn create<D: Db>(db: &D, tenant: &str, e: &NewEndpoint<'_>) -> Result<bool> {
    let stmt = Stmt::new(
        "INSERT INTO webhooks (id, tenant, url, events, format, scim_base, secret, enqueued_seq, \
         created, modified) SELECT ?, t.id, ?, ?, ?, ?, ?, \
         (SELECT coalesce(max(seq), 0) FROM events), ?, ? FROM tenants t WHERE t.id = ? RETURNING id",
        vec![
            e.id.into(),
            e.url.into(),
            e.events.into(),
            e.format.into(),
            e.scim_base.into(),
            e.sealed_secret.into(),
            e.now.into(),
            e.now.into(),
            tenant.into(),
        ],
    );
    Ok(one(db.batch(vec![stmt]).await?, 0).is_some())
}

pub async fn list<D: Db>(db: &D, tenant: &str) -> Result<Vec<Row>> {
    let stmt = Stmt::new(
        format!("SELECT {PUBLIC_COLUMNS} FROM webhooks WHERE tenant = ? ORDER BY created, id"),
        vec![tenant.into()],
    );
    Ok(db.batch(vec![stmt]).await?.pop().unwrap_or_default())
}

pub async fn get<D: Db>(db: &D, tenant: &str, id: &str) -> Result<Option<Row>> {
    let stmt = Stmt::new(
        format!("SELECT {PUBLIC_COLUMNS} FROM webhooks WHERE tenant = ? AND id = ?"),
        vec![tenant.into(), id.into()],
    );
    Ok(one(db.batch(vec![stmt]).await?, 0))
}

/// A change of an endpoint's settings; `None` keeps a setting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointUpdate {
    pub url: Option<String>,
    pub events: Option<String>,
    /// Enabling clears the disabled reason and the failure run.
    pub enabled: Option<bool>,
}

/// Applies `u`; the endpoint as it is now, or `None` if there is no such endpoint.
pub async fn update<D: Db>(
    db: &D,
    tenant: &str,
    id: &str,
    u: &EndpointUpdate,
    now: &str,
) -> Result<Option<Row>> {
    let mut sets = vec!["modified = ?".to_string()];
    let mut params: Vec<SqlValue> = vec![now.into()];
    if let Some(url) = &u.url {
        sets.push("url = ?".into());
        params.push(url.as_str().into());
    }
    if let Some(events) = &u.events {
        sets.push("events = ?".into());
        params.push(events.as_str().into());
    }
    match u.enabled {
        Some(true) => sets.push(
            "enabled = 1, disabled_reason = NULL, disabled_at = NULL, failing_since = NULL".into(),
        ),
        Some(false) => {
            sets.push(
                "enabled = 0, disabled_reason = coalesce(disabled_reason, 'disabled by an administrator'), \
                 disabled_at = coalesce(disabled_at, ?)"
                    .into(),
            );
            params.push(now.into());
        }
        None => {}
    }
    params.extend([tenant.into(), id.into()]);
    let stmt = Stmt::new(
        format!(
            "UPDATE webhooks SET {} WHERE tenant = ? AND id = ? RETURNING {PUBLIC_COLUMNS}",
            sets.join(", ")
        ),
        params,
    );
    Ok(one(db.batch(vec![stmt]).await?, 0))
}

/// Deletes an endpoint and its delivery log; `false` if there was none.
pub async fn delete<D: Db>(db: &D, tenant: &str, id: &str) -> Result<bool> {
    let stmt = Stmt::new(
        "DELETE FROM webhooks WHERE tenant = ? AND id = ? RETURNING id",
        vec![tenant.into(), id.into()],
    );
    Ok(one(db.batch(vec![stmt]).await?, 0).is_some())
}

/// Makes `sealed` the signing secret; the current one keeps signing until `previous_until`
/// (ms). `false` if there is no such endpoint.
pub async fn rotate<D: Db>(
    db: &D,
    tenant: &str,
    id: &str,
    sealed: &str,
    previous_until: i64,
    now: &str,
) -> Result<bool> {
    let stmt = Stmt::new(
        "UPDATE webhooks SET previous_secret = secret, previous_until = ?, secret = ?, modified = ? \
         WHERE tenant = ? AND id = ? RETURNING id",
        vec![
            SqlValue::Int(previous_until),
            sealed.into(),
            now.into(),
            tenant.into(),
            id.into(),
        ],
    );
    Ok(one(db.batch(vec![stmt]).await?, 0).is_some())
}

/// Filters of the delivery log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryQuery {
    pub status: Option<String>,
    pub limit: i64,
}

/// The endpoint's delivery log, newest first; `None` if there is no such endpoint.
pub async fn deliveries<D: Db>(
    db: &D,
    tenant: &str,
    id: &str,
    q: &DeliveryQuery,
) -> Result<Option<Vec<Row>>> {
    let res = db
        .batch(vec![
            Stmt::new(
                "SELECT id FROM webhooks WHERE tenant = ? AND id = ?",
                vec![tenant.into(), id.into()],
            ),
            log_stmt(tenant, id, q),
        ])
        .await?;
    let exists = res.first().is_some_and(|r| !r.is_empty());
    Ok(exists.then(|| res.into_iter().nth(1).unwrap_or_default()))
}

/// The delivery log of endpoint `id`, whether or not this database has the endpoint's row: a
/// tenant's object keeps the log of a poll stream it may not have a copy of yet (no poll
/// before), and the worker has checked D1 for the stream.
pub async fn delivery_log<D: Db>(
    db: &D,
    tenant: &str,
    id: &str,
    q: &DeliveryQuery,
) -> Result<Vec<Row>> {
    Ok(one_list(db.batch(vec![log_stmt(tenant, id, q)]).await?))
}

fn one_list(res: Vec<Vec<Row>>) -> Vec<Row> {
    res.into_iter().next().unwrap_or_default()
}

/// The delivery log's rows of endpoint `id` that `q` asks for, newest first.
fn log_stmt(tenant: &str, id: &str, q: &DeliveryQuery) -> Stmt {
    let mut sql = String::from(
        "SELECT seq, type, status, attempts, last_status, latency_ms, last_error, last_attempt, \
         queued FROM webhook_deliveries WHERE tenant = ? AND endpoint = ?",
    );
    let mut params: Vec<SqlValue> = vec![tenant.into(), id.into()];
    if let Some(s) = &q.status {
        sql.push_str(" AND status = ?");
        params.push(s.as_str().into());
    }
    sql.push_str(&format!(" ORDER BY queued DESC, seq DESC {LIMIT_PARAM}"));
    params.push(SqlValue::Int(q.limit.clamp(1, 1000)));
    Stmt::new(sql, params)
}

/// Whether endpoint `id` of `tenant` is an RFC 8936 poll stream (a `set` endpoint without a
/// URL); `None` when there is no such endpoint.
pub async fn is_stream<D: Db>(db: &D, tenant: &str, id: &str) -> Result<Option<bool>> {
    let stmt = Stmt::new(
        "SELECT url = '' AS stream FROM webhooks WHERE tenant = ? AND id = ?",
        vec![tenant.into(), id.into()],
    );
    Ok(one_list(db.batch(vec![stmt]).await?)
        .first()
        .map(|r| r.get("stream").and_then(Value::as_i64) == Some(1)))
}

const CHANGE_COLUMNS: &str = "e.seq, e.time, e.op, e.resource_type, e.resource_id, e.attributes, \
     e.deactivated, e.reactivated, e.members_added, e.members_removed, e.lifecycle";

/// A provisioning-log row as a [`Change`].
pub fn change_of(row: &Row) -> Change {
    let text = |c: &str| {
        row.get(c)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Change {
        seq: int(row, "seq"),
        time: text("time"),
        op: text("op"),
        rt: row
            .get("resource_type")
            .and_then(Value::as_str)
            .and_then(ResourceType::from_name),
        resource_id: text("resource_id"),
        attributes: json_array(row, "attributes"),
        deactivated: int(row, "deactivated") == 1,
        reactivated: int(row, "reactivated") == 1,
        members_added: json_array(row, "members_added"),
        members_removed: json_array(row, "members_removed"),
        lifecycle: text("lifecycle"),
    }
}

pub fn int(row: &Row, col: &str) -> i64 {
    row.get(col)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
        .unwrap_or(0)
}

/// What a sweep finds to send: events past each enabled endpoint's `enqueued_seq` (with the
/// endpoint's id, tenant and filter), and requested redeliveries not yet sent.
pub struct Pending {
    pub events: Vec<Row>,
    pub unsent: Vec<Row>,
}

/// One round trip: the next page of unsent events of every enabled endpoint, and up to
/// `SWEEP_PAGE` unsent delivery rows.
pub async fn pending<D: Db>(db: &D) -> Result<Pending> {
    let events = Stmt::new(
        format!(
            "SELECT w.id AS endpoint, w.tenant AS tenant, w.events AS filter, w.format AS format, \
             {CHANGE_COLUMNS} FROM webhooks w JOIN events e ON e.tenant = w.tenant \
             AND e.seq > w.enqueued_seq WHERE w.enabled = 1 AND w.url <> '' \
             AND e.outcome = 'success' ORDER BY e.seq {LIMIT_PARAM}"
        ),
        vec![SqlValue::Int(SWEEP_PAGE)],
    );
    let unsent = Stmt::new(
        format!(
            "SELECT d.endpoint, d.tenant, d.seq, d.type FROM webhook_deliveries d \
             JOIN webhooks w ON w.id = d.endpoint WHERE d.sent = 0 AND w.enabled = 1 AND w.url <> '' \
             {LIMIT_PARAM}"
        ),
        vec![SqlValue::Int(SWEEP_PAGE)],
    );
    let mut res = db.batch(vec![events, unsent]).await?.into_iter();
    Ok(Pending {
        events: res.next().unwrap_or_default(),
        unsent: res.next().unwrap_or_default(),
    })
}

/// One queued delivery: endpoint, tenant, event seq, event type name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Queued {
    pub endpoint: String,
    pub tenant: String,
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: String,
}

/// After the messages for `sent` went out: records them in the delivery log as sent and moves
/// each endpoint's `enqueued_seq` to `advance` (endpoint, seq). One round trip.
pub async fn mark_sent<D: Db>(
    db: &D,
    sent: &[Queued],
    advance: &[(String, i64)],
    now: &str,
) -> Result<()> {
    let list = serde_json::to_string(sent).map_err(|_| StoreError::Corrupt("queued"))?;
    let mut stmts = vec![Stmt::new(
        "INSERT INTO webhook_deliveries (endpoint, seq, type, tenant, status, queued, sent) \
         SELECT json_extract(j.value, '$.endpoint'), json_extract(j.value, '$.seq'), \
         json_extract(j.value, '$.type'), json_extract(j.value, '$.tenant'), 'queued', ?, 1 \
         FROM json_each(?) j WHERE EXISTS (SELECT 1 FROM webhooks w \
         WHERE w.id = json_extract(j.value, '$.endpoint')) \
         ON CONFLICT (endpoint, seq, type) DO UPDATE SET sent = 1",
        vec![now.into(), list.into()],
    )];
    for (endpoint, seq) in advance {
        stmts.push(Stmt::new(
            "UPDATE webhooks SET enqueued_seq = max(enqueued_seq, ?) WHERE id = ?",
            vec![SqlValue::Int(*seq), endpoint.as_str().into()],
        ));
    }
    db.batch(stmts).await?;
    Ok(())
}

/// The tenant a Durable Object holds: its mirrored row (`store::object`), which sorts before
/// migration 0001's `default` row unless it is the `default` tenant's own object.
pub async fn object_tenant<D: Db>(db: &D) -> Result<Option<String>> {
    let stmt = Stmt::new(
        "SELECT id FROM tenants ORDER BY id = 'default', id LIMIT 1",
        vec![],
    );
    Ok(one(db.batch(vec![stmt]).await?, 0)
        .and_then(|r| r.get("id").and_then(Value::as_str).map(str::to_string)))
}

/// The tenant's push endpoints, as an object's sweep routes events by them (read from D1, the
/// control plane: endpoints are created and changed through the admin API there).
pub async fn push_endpoints<D: Db>(db: &D, tenant: &str) -> Result<Vec<Row>> {
    let stmt = Stmt::new(
        "SELECT id, url, events, format, enabled, created FROM webhooks \
         WHERE tenant = ? AND url <> ''",
        vec![tenant.into()],
    );
    Ok(db.batch(vec![stmt]).await?.pop().unwrap_or_default())
}

/// Makes an object's own `webhooks` rows the tenant's push endpoints (`endpoints` as
/// [`push_endpoints`] read them), so [`pending`] and [`mark_sent`] run there unchanged against
/// the object's events. Only the routing is copied, never a secret: the consumer signs with
/// D1's. An endpoint new to the object starts after the object's events older than its
/// creation, as [`create`] starts it after D1's. The object's copies of poll streams (`url`
/// empty: `store::object::mirror_stream_stmts`) are not push endpoints and are left alone:
/// their floor and delivery log are the object's own.
pub async fn mirror_endpoints<D: Db>(db: &D, tenant: &str, endpoints: &[Row]) -> Result<()> {
    let list = serde_json::to_string(endpoints).map_err(|_| StoreError::Corrupt("endpoints"))?;
    let floor = "(SELECT coalesce(max(e.seq), 0) FROM events e WHERE e.tenant = ? \
                 AND e.time < json_extract(j.value, '$.created'))";
    let upsert = mirror_stmt(tenant, &list, floor, "", "true");
    let gone = Stmt::new(
        "DELETE FROM webhooks WHERE tenant = ? AND url <> '' AND id NOT IN \
         (SELECT json_extract(value, '$.id') FROM json_each(?))",
        vec![tenant.into(), list.into()],
    );
    db.batch(vec![upsert, gone]).await?;
    Ok(())
}

/// Makes an object's copies of a moved tenant's push endpoints start after every event the
/// object holds, when an import into it completes (its writes still frozen, so every event
/// there is an imported one). A moved endpoint keeps its `created`, older than the moved log,
/// so [`mirror_endpoints`]' floor would send that history, which the source delivered, a
/// second time; an import into D1 starts its endpoints after D1's events the same way
/// (`store::moving`'s derived `enqueued_seq`). A copy the object has already keeps its floor
/// if that is further on. The statement runs in the import's last chunk's own transaction,
/// only if `cond` (SQL, with `cond_params`) holds: the hand-over and the end of the freeze
/// are one write, so neither happens without the other.
pub fn moved_endpoints_stmt(
    tenant: &str,
    endpoints: &[Row],
    cond: &str,
    cond_params: Vec<SqlValue>,
) -> Result<Stmt> {
    let list = serde_json::to_string(endpoints).map_err(|_| StoreError::Corrupt("endpoints"))?;
    let floor = "(SELECT coalesce(max(e.seq), 0) FROM events e WHERE e.tenant = ?)";
    let keep = ", enqueued_seq = max(webhooks.enqueued_seq, excluded.enqueued_seq)";
    let mut stmt = mirror_stmt(tenant, &list, floor, keep, cond);
    stmt.params.extend(cond_params);
    Ok(stmt)
}

/// The upsert of an object's copies of push endpoints (`list`, JSON of [`push_endpoints`]'
/// rows), if `cond` holds (SQL; its parameters follow the statement's): a new copy's
/// `enqueued_seq` is `floor` (SQL taking the tenant as its one parameter); a copy there
/// already takes the routing, and `on_conflict` (more assignments).
fn mirror_stmt(tenant: &str, list: &str, floor: &str, on_conflict: &str, cond: &str) -> Stmt {
    Stmt::new(
        format!(
            "INSERT INTO webhooks (id, tenant, url, events, format, scim_base, secret, enabled, \
             enqueued_seq, created, modified) \
             SELECT json_extract(j.value, '$.id'), ?, json_extract(j.value, '$.url'), \
             json_extract(j.value, '$.events'), json_extract(j.value, '$.format'), '', '', \
             json_extract(j.value, '$.enabled'), {floor}, \
             json_extract(j.value, '$.created'), json_extract(j.value, '$.created') \
             FROM json_each(?) j WHERE {cond} ON CONFLICT (id) DO UPDATE SET url = excluded.url, \
             events = excluded.events, format = excluded.format, enabled = excluded.enabled\
             {on_conflict}"
        ),
        vec![tenant.into(), tenant.into(), list.into()],
    )
}

/// The events of `tenant` to redeliver: one by `seq`, or those in `[from, to)`.
pub async fn events_between<D: Db>(
    db: &D,
    tenant: &str,
    seq: Option<i64>,
    from: Option<&str>,
    to: Option<&str>,
    limit: i64,
) -> Result<Vec<Row>> {
    let mut sql = format!(
        "SELECT {CHANGE_COLUMNS} FROM events e WHERE e.tenant = ? AND e.outcome = 'success'"
    );
    let mut params: Vec<SqlValue> = vec![tenant.into()];
    if let Some(s) = seq {
        sql.push_str(" AND e.seq = ?");
        params.push(SqlValue::Int(s));
    }
    if let Some(f) = from {
        sql.push_str(" AND e.time >= ?");
        params.push(f.into());
    }
    if let Some(t) = to {
        sql.push_str(" AND e.time < ?");
        params.push(t.into());
    }
    sql.push_str(&format!(" ORDER BY e.seq {LIMIT_PARAM}"));
    params.push(SqlValue::Int(limit));
    Ok(db
        .batch(vec![Stmt::new(sql, params)])
        .await?
        .pop()
        .unwrap_or_default())
}

/// Requests redelivery of `items` (all of one endpoint): their rows go back to `queued`,
/// unsent; the next sweep (run right after the request) sends them.
pub async fn request_redelivery<D: Db>(db: &D, items: &[Queued], now: &str) -> Result<()> {
    let list = serde_json::to_string(items).map_err(|_| StoreError::Corrupt("queued"))?;
    db.batch(vec![Stmt::new(
        "INSERT INTO webhook_deliveries (endpoint, seq, type, tenant, status, queued, sent) \
         SELECT json_extract(j.value, '$.endpoint'), json_extract(j.value, '$.seq'), \
         json_extract(j.value, '$.type'), json_extract(j.value, '$.tenant'), 'queued', ?, 0 \
         FROM json_each(?) j WHERE true \
         ON CONFLICT (endpoint, seq, type) DO UPDATE SET status = 'queued', sent = 0, queued = excluded.queued",
        vec![now.into(), list.into()],
    )])
    .await?;
    Ok(())
}

/// Everything one delivery attempt needs, read in one round trip: the endpoint (with its
/// sealed secrets), the event, the delivery row, the resource as GET shows it (with its
/// members or groups), and the deployment secret the secrets are sealed under.
pub struct ForDelivery {
    pub endpoint: Option<Row>,
    pub event: Option<Row>,
    pub delivery: Option<Row>,
    pub resource: Option<Row>,
    pub deployment_secret: Option<String>,
}

/// `deployment_secret` is the name of the D1 deployment secret and a fresh value to create it
/// with, when the seal key comes from D1 (not when `CURSOR_SECRET` is set). `rt`: the type of
/// the resource to read, if the body carries it (a SET does not).
/// `directory`: whether the tenant's events and resources are in `db` too (D1 storage); when
/// they are in the tenant's object, `event` and `resource` come back `None`, for
/// [`read_change`] there.
pub async fn for_delivery<D: Db>(
    db: &D,
    q: &Queued,
    rt: Option<ResourceType>,
    deployment_secret: Option<(&str, &str)>,
    directory: bool,
) -> Result<ForDelivery> {
    let t: SqlValue = q.tenant.as_str().into();
    let mut stmts = vec![
        Stmt::new(
            "SELECT id, url, format, scim_base, secret, previous_secret, previous_until, enabled \
             FROM webhooks WHERE tenant = ? AND id = ?",
            vec![t, q.endpoint.as_str().into()],
        ),
        Stmt::new(
            "SELECT status, attempts FROM webhook_deliveries WHERE endpoint = ? AND seq = ? AND type = ?",
            vec![
                q.endpoint.as_str().into(),
                SqlValue::Int(q.seq),
                q.kind.as_str().into(),
            ],
        ),
    ];
    let change_at = stmts.len();
    if directory {
        stmts.extend(change_stmts(q, rt));
    }
    let secret_at = stmts.len() + 1;
    stmts.extend(deployment_secret_stmts(deployment_secret));
    let res = db.batch(stmts).await?;
    let row = |i: usize| res.get(i).and_then(|r| r.first()).cloned();
    let (event, resource) = match directory {
        true => (row(change_at), rt.and_then(|_| row(change_at + 1))),
        false => (None, None),
    };
    Ok(ForDelivery {
        endpoint: row(0),
        event,
        delivery: row(1),
        resource,
        deployment_secret: secret_value(row(secret_at)),
    })
}

/// The event of `q` and, when `rt` is given, its resource as GET shows it.
fn change_stmts(q: &Queued, rt: Option<ResourceType>) -> Vec<Stmt> {
    let t: SqlValue = q.tenant.as_str().into();
    let mut stmts = vec![Stmt::new(
        format!("SELECT {SET_COLUMNS} FROM events e WHERE e.tenant = ? AND e.seq = ?"),
        vec![t.clone(), SqlValue::Int(q.seq)],
    )];
    if let Some(rt) = rt {
        let resource_sql = format!(
            "{} WHERE r.tenant = ? AND r.type = '{}' AND r.id = \
             (SELECT resource_id FROM events WHERE tenant = ? AND seq = ?)",
            crate::store::select_sql(rt, true),
            rt.name()
        );
        stmts.push(Stmt::new(
            resource_sql,
            vec![t.clone(), t, SqlValue::Int(q.seq)],
        ));
    }
    stmts
}

/// The event of `q` and its resource, read where the tenant's directory is (its object), for
/// a delivery whose endpoint and log are in D1. One round trip.
pub async fn read_change<D: Db>(
    db: &D,
    q: &Queued,
    rt: Option<ResourceType>,
) -> Result<(Option<Row>, Option<Row>)> {
    let mut res = db.batch(change_stmts(q, rt)).await?.into_iter();
    let event = res.next().and_then(|r| r.into_iter().next());
    let resource = res.next().and_then(|r| r.into_iter().next());
    Ok((event, resource))
}

/// Creates the D1 deployment secret if missing and reads it (two statements), when the seal
/// key comes from D1.
pub(crate) fn deployment_secret_stmts(deployment_secret: Option<(&str, &str)>) -> Vec<Stmt> {
    let Some((name, fresh)) = deployment_secret else {
        return Vec::new();
    };
    vec![
        Stmt::new(
            "INSERT OR IGNORE INTO deployment_secrets (name, value) VALUES (?, ?)",
            vec![name.into(), fresh.into()],
        ),
        Stmt::new(
            "SELECT value FROM deployment_secrets WHERE name = ?",
            vec![name.into()],
        ),
    ]
}

pub(crate) fn secret_value(row: Option<Row>) -> Option<String> {
    row.and_then(|r| r.get("value").and_then(Value::as_str).map(str::to_string))
}

/// A log row's columns a SET needs beyond the change: the request id (`txn`) and the
/// resource's `externalId`: its current one while it exists, else the one a delete recorded.
const SET_COLUMNS: &str = "e.seq, e.time, e.op, e.resource_type, e.resource_id, e.attributes, \
     e.deactivated, e.reactivated, e.members_added, e.members_removed, e.lifecycle, e.request_id, \
     coalesce((SELECT r.external_id FROM resources r WHERE r.tenant = e.tenant \
     AND r.id = e.resource_id), e.external_id) AS external_id";

/// What one poll of an RFC 8936 stream reads: the stream (a `set` endpoint without a URL,
/// with its sealed keys), the next unacknowledged events past its floor, and the deployment
/// secret.
pub struct PollRead {
    pub endpoint: Option<Row>,
    pub events: Vec<Row>,
    pub deployment_secret: Option<String>,
}

/// One poll of stream `stream` of `tenant`.
#[derive(Debug, Clone, PartialEq)]
pub struct PollRequest<'a> {
    pub tenant: &'a str,
    pub stream: &'a str,
    /// What the receiver says of SETs it got: a JSON array of `[seq, status, error]`, status
    /// `delivered` (acknowledged) or `dead` (reported in `setErrs`, with the error's text).
    pub marks: &'a str,
    /// Most events read.
    pub limit: i64,
    pub now: &'a str,
}

/// One poll, one round trip: records the receiver's acknowledgements and errors in the
/// stream's delivery log, moves its floor past them, then reads up to `limit` events past the
/// floor that are neither. Marks for events that are not the tenant's, or at or below the floor, are ignored.
pub async fn poll<D: Db>(
    db: &D,
    p: &PollRequest<'_>,
    deployment_secret: Option<(&str, &str)>,
) -> Result<PollRead> {
    let (t, s): (SqlValue, SqlValue) = (p.tenant.into(), p.stream.into());
    let mut stmts = vec![
        Stmt::new(
            "INSERT INTO webhook_deliveries (endpoint, seq, type, tenant, status, attempts, \
             last_error, last_attempt, queued, sent) \
             SELECT w.id, e.seq, 'set', w.tenant, json_extract(j.value, '$[1]'), 1, \
             json_extract(j.value, '$[2]'), ?, ?, 1 \
             FROM json_each(?) j JOIN webhooks w ON w.id = ? AND w.tenant = ? AND w.url = '' \
             JOIN events e ON e.tenant = w.tenant AND e.seq = json_extract(j.value, '$[0]') \
             AND e.seq > w.enqueued_seq WHERE true ON CONFLICT (endpoint, seq, type) DO UPDATE \
             SET status = excluded.status, last_error = excluded.last_error, \
             last_attempt = excluded.last_attempt",
            vec![p.now.into(), p.now.into(), p.marks.into(), s.clone(), t.clone()],
        ),
        // The floor moves up to the first event neither acknowledged nor reported (or the
        // newest event): everything below it needs no more serving.
        Stmt::new(
            "UPDATE webhooks SET enqueued_seq = coalesce((SELECT min(e.seq) - 1 FROM events e \
             WHERE e.tenant = webhooks.tenant AND e.seq > webhooks.enqueued_seq \
             AND e.outcome = 'success' AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
             WHERE d.endpoint = webhooks.id AND d.seq = e.seq AND d.type = 'set' \
             AND d.status IN ('delivered', 'dead'))), \
             (SELECT max(e.seq) FROM events e WHERE e.tenant = webhooks.tenant), enqueued_seq) \
             WHERE id = ? AND tenant = ? AND url = ''",
            vec![s.clone(), t.clone()],
        ),
        Stmt::new(
            "SELECT id, url, format, events, scim_base, secret, previous_secret, previous_until, \
             enabled, enqueued_seq FROM webhooks WHERE tenant = ? AND id = ? AND format = 'set'",
            vec![t.clone(), s.clone()],
        ),
        Stmt::new(
            format!(
                "SELECT {SET_COLUMNS} FROM events e JOIN webhooks w ON w.id = ? AND w.tenant = e.tenant \
                 AND w.url = '' WHERE e.tenant = ? AND e.seq > w.enqueued_seq AND e.outcome = 'success' \
                 AND e.lifecycle IS NOT 'purge' AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint = w.id \
                 AND d.seq = e.seq AND d.type = 'set' AND d.status IN ('delivered', 'dead')) \
                 ORDER BY e.seq {LIMIT_PARAM}"
            ),
            vec![s, t, SqlValue::Int(p.limit)],
        ),
    ];
    stmts.extend(deployment_secret_stmts(deployment_secret));
    let mut res = db.batch(stmts).await?.into_iter();
    let endpoint = res.nth(2).and_then(|r| r.into_iter().next());
    let events = res.next().unwrap_or_default();
    Ok(PollRead {
        endpoint,
        events,
        deployment_secret: secret_value(res.nth(1).and_then(|r| r.into_iter().next())),
    })
}

/// The outcome of one attempt, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord<'a> {
    /// `delivered`, `retrying` or `dead`.
    pub status: &'a str,
    pub http_status: Option<u16>,
    pub latency_ms: Option<i64>,
    pub error: Option<&'a str>,
    /// Whether the endpoint was reached and answered 2xx (resets its failure run).
    pub success: bool,
    /// Whether this counts as an attempt (false when nothing was sent).
    pub attempted: bool,
}

/// Records an attempt, updates the endpoint's failure run, and disables the endpoint if the
/// run began at or before `disable_before` (ms). Returns whether this disabled it. One round
/// trip.
pub async fn record_attempt<D: Db>(
    db: &D,
    q: &Queued,
    a: &AttemptRecord<'_>,
    now_ms: i64,
    disable_before: i64,
    disabled_reason: &str,
) -> Result<bool> {
    let now = crate::proto::time::format_millis(now_ms);
    let status_param = a
        .http_status
        .map_or(SqlValue::Null, |s| SqlValue::Int(i64::from(s)));
    let latency = a.latency_ms.map_or(SqlValue::Null, SqlValue::Int);
    let error = a.error.map_or(SqlValue::Null, SqlValue::from);
    let add = i64::from(a.attempted);
    let mut stmts = vec![Stmt::new(
        "INSERT INTO webhook_deliveries (endpoint, seq, type, tenant, status, attempts, last_status, \
         latency_ms, last_error, last_attempt, queued, sent) \
         SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1 WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = ?) \
         ON CONFLICT (endpoint, seq, type) DO UPDATE SET status = excluded.status, \
         attempts = attempts + excluded.attempts, \
         last_status = coalesce(excluded.last_status, last_status), \
         latency_ms = coalesce(excluded.latency_ms, latency_ms), last_error = excluded.last_error, \
         last_attempt = excluded.last_attempt",
        vec![
            q.endpoint.as_str().into(),
            SqlValue::Int(q.seq),
            q.kind.as_str().into(),
            q.tenant.as_str().into(),
            a.status.into(),
            SqlValue::Int(add),
            status_param,
            latency,
            error,
            now.as_str().into(),
            now.as_str().into(),
            q.endpoint.as_str().into(),
        ],
    )];
    if a.attempted {
        stmts.push(if a.success {
            Stmt::new(
                "UPDATE webhooks SET failing_since = NULL WHERE id = ?",
                vec![q.endpoint.as_str().into()],
            )
        } else {
            Stmt::new(
                "UPDATE webhooks SET failing_since = coalesce(failing_since, ?) WHERE id = ?",
                vec![SqlValue::Int(now_ms), q.endpoint.as_str().into()],
            )
        });
    }
    stmts.push(Stmt::new(
        "UPDATE webhooks SET enabled = 0, disabled_reason = ?, disabled_at = ? \
         WHERE id = ? AND enabled = 1 AND failing_since IS NOT NULL AND failing_since <= ? RETURNING id",
        vec![
            disabled_reason.into(),
            now.as_str().into(),
            q.endpoint.as_str().into(),
            SqlValue::Int(disable_before),
        ],
    ));
    let res = db.batch(stmts).await?;
    Ok(res.last().is_some_and(|r| !r.is_empty()))
}

/// Deletes delivery-log rows queued before `cutoff` (all tenants; the retention cron).
pub fn prune_stmt(cutoff: &str) -> Stmt {
    Stmt::new(
        "DELETE FROM webhook_deliveries WHERE queued < ?",
        vec![cutoff.into()],
    )
}
