//! Webhook endpoints in the admin API (issue 13): a tenant's SaaS app is told of every change
//! by signed HTTP POSTs, delivered through a Cloudflare Queue ([`deliver`]).
//!
//! | Route (below `/admin/api/tenants/{t}`) | Methods |
//! |---|---|
//! | `/webhooks` | GET (list), POST `{url?, events?: ["*"] \| [types], format?: "json" \| "set", delivery?: "push" \| "poll"}` → 201 `{id, secret, …}` |
//! | `/webhooks/{id}` | GET, PATCH `{url?, events?, enabled?}`, DELETE |
//! | `/webhooks/{id}/rotate` | POST `{overlapSeconds?}` → `{id, secret, previousValidUntil}` |
//! | `/webhooks/{id}/deliveries` | GET `?status=&limit=`: the delivery log, newest first |
//! | `/webhooks/{id}/redeliver` | POST `{seq}` or `{from, to}` (RFC 3339) → `{queued}` |
//!
//! The secret (`whsec_…`) is in the response that creates or rotates it and nowhere else; the
//! store keeps it sealed ([`crypto`]). `format: "set"` endpoints receive RFC 9967 security
//! event tokens ([`set`]): pushed to their URL, or, created with `delivery: "poll"` and no
//! URL, polled by the receiver (RFC 8936).

pub mod crypto;
pub mod deliver;
pub mod set;

use crate::proto::error::{Result, ScimError};
use crate::proto::time;
use crate::proto::webhook;
use crate::service::ctx::Ctx;
use crate::service::http::{Method, Request, Response};
use crate::service::tenant::{SCIM_PATH, TENANT_PREFIX};
use crate::store::webhooks::{self as store, DeliveryQuery, EndpointUpdate, NewEndpoint, Queued};
use crate::store::{Db, Row, Store};
use serde_json::{json, Map, Value};

/// Default overlap of a rotation: both secrets sign for a day (as API tokens overlap).
const DEFAULT_OVERLAP_SECS: i64 = 86_400;
/// Longest rotation overlap accepted (30 days).
const MAX_OVERLAP_SECS: i64 = 30 * 86_400;
/// Most events one redelivery request queues.
const MAX_REDELIVER: i64 = 1000;

/// Answers `/tenants/{tenant}/webhooks/...` (`tail` is what follows `webhooks`).
pub async fn admin<D: Db>(
    ctx: &Ctx<'_, D>,
    tenant: &str,
    req: &Request,
    tail: &[&str],
) -> Result<Response> {
    let m = req.method;
    match tail {
        [] => match m {
            Method::Get => {
                let rows = store::list(ctx.db, tenant).await?;
                let items: Vec<Value> = rows.iter().map(render).collect();
                Ok(json_response(200, &json!({"webhooks": items})))
            }
            Method::Post => create(ctx, tenant, req).await,
            _ => Err(not_allowed("GET, POST")),
        },
        [id] => match m {
            Method::Get => store::get(ctx.db, tenant, id)
                .await?
                .map(|r| json_response(200, &render(&r)))
                .ok_or_else(|| no_endpoint(id)),
            Method::Patch => update(ctx, tenant, req, id).await,
            Method::Delete => match store::delete(ctx.db, tenant, id).await? {
                true => Ok(Response::empty(204)),
                false => Err(no_endpoint(id)),
            },
            _ => Err(not_allowed("GET, PATCH, DELETE")),
        },
        [id, "rotate"] => match m {
            Method::Post => rotate(ctx, tenant, req, id).await,
            _ => Err(not_allowed("POST")),
        },
        [id, "deliveries"] => match m {
            Method::Get => deliveries(ctx, tenant, req, id).await,
            _ => Err(not_allowed("GET")),
        },
        [id, "redeliver"] => match m {
            Method::Post => redeliver(ctx, tenant, req, id).await,
            _ => Err(not_allowed("POST")),
        },
        _ => Err(ScimError::not_found(
            "no such webhook resource; see webhooks, webhooks/{id}[/rotate|/deliveries|/redeliver]",
        )),
    }
}

/// A JSON answer with the admin API's headers (`service::admin` answers the same way).
fn json_response(status: u16, body: &Value) -> Response {
    let mut r = Response::json(status, body);
    r.headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
    r.with_header("content-type", "application/json; charset=utf-8")
        .with_header("cache-control", "no-store")
}

fn not_allowed(allowed: &str) -> ScimError {
    ScimError::method_not_allowed(format!("method not allowed here; allowed: {allowed}"))
}

fn no_endpoint(id: &str) -> ScimError {
    ScimError::not_found(format!("no webhook endpoint '{id}'"))
}

fn body(req: &Request) -> Result<Map<String, Value>> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match req.json_body()? {
        Value::Object(o) => Ok(o),
        _ => Err(ScimError::invalid_syntax("the body must be a JSON object")),
    }
}

fn reject_unknown(body: &Map<String, Value>, known: &[&str]) -> Result<()> {
    match body.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ScimError::invalid_value(format!(
            "unknown field '{k}'; expected one of: {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// The endpoint as the admin API shows it (never a secret).
fn render(row: &Row) -> Value {
    let text = |c: &str| row.get(c).cloned().unwrap_or(Value::Null);
    let ms = |c: &str| match row.get(c).and_then(|v| v.as_f64()) {
        Some(v) => Value::String(time::format_millis(v as i64)),
        None => Value::Null,
    };
    let events: Value = row
        .get("events")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_else(|| json!(["*"]));
    // Built from tables: one json! literal of the same object was 1.7 KB more wasm.
    let mut o = Map::new();
    for (key, col) in [
        ("id", "id"),
        ("url", "url"),
        ("format", "format"),
        ("disabledReason", "disabled_reason"),
        ("disabledAt", "disabled_at"),
        ("created", "created"),
        ("modified", "modified"),
    ] {
        o.insert(key.into(), text(col));
    }
    for (key, col) in [
        ("failingSince", "failing_since"),
        ("previousSecretValidUntil", "previous_until"),
    ] {
        o.insert(key.into(), ms(col));
    }
    o.insert("events".into(), events);
    o.insert(
        "enabled".into(),
        Value::Bool(store::int(row, "enabled") == 1),
    );
    let id = row.get("id").and_then(Value::as_str).unwrap_or_default();
    let base = row
        .get("scim_base")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let poll = row.get("url").and_then(Value::as_str) == Some("");
    let (delivery, poll_url) = match poll {
        true => ("poll", Value::String(set::poll_url(base, id))),
        false => ("push", Value::Null),
    };
    if poll {
        o.insert("url".into(), Value::Null);
    }
    o.insert("delivery".into(), Value::from(delivery));
    o.insert("pollUrl".into(), poll_url);
    Value::Object(o)
}

/// The deployment secret webhook signing keys are sealed under: `CURSOR_SECRET` when set,
/// else a random one generated once and kept in D1.
pub async fn deployment_secret<D: Db>(ctx: &Ctx<'_, D>) -> Result<String> {
    if let Some(s) = &ctx.config.cursor_secret {
        return Ok(s.clone());
    }
    let fresh = crate::store::cursor::fresh_secret()?;
    Ok(Store::new(ctx.db, "")
        .deployment_secret(crypto::DEPLOYMENT_SECRET_NAME, &fresh)
        .await?)
}

fn url_of(ctx: &Ctx<'_, impl Db>, body: &Map<String, Value>) -> Result<Option<String>> {
    match body.get("url") {
        None => Ok(None),
        Some(Value::String(u)) => {
            webhook::validate_url(u, ctx.config.webhook_loopback_http)?;
            Ok(Some(u.clone()))
        }
        Some(_) => Err(ScimError::invalid_value("'url' must be a string")),
    }
}

fn events_of(body: &Map<String, Value>) -> Result<Option<String>> {
    body.get("events")
        .map(|v| webhook::parse_filter(v).map(|f| json!(f).to_string()))
        .transpose()
}

/// The `format` and `delivery` of a new endpoint: `json` or `set`; a `set` endpoint without a
/// URL is an RFC 8936 poll stream (`delivery: "poll"`).
fn format_of(b: &Map<String, Value>) -> Result<(&'static str, bool)> {
    let format = match b.get("format").filter(|v| !v.is_null()).map(Value::as_str) {
        None | Some(Some("json")) => "json",
        Some(Some("set")) => "set",
        Some(_) => {
            return Err(ScimError::invalid_value(
                "'format' must be \"json\" or \"set\"",
            ))
        }
    };
    match b.get("delivery").map(Value::as_str) {
        None | Some(Some("push")) => Ok((format, false)),
        Some(Some("poll")) if format == "set" => Ok((format, true)),
        Some(_) => Err(ScimError::invalid_value(
            "'delivery' must be \"push\", or \"poll\" with format \"set\" (RFC 8936)",
        )),
    }
}

async fn create<D: Db>(ctx: &Ctx<'_, D>, tenant: &str, req: &Request) -> Result<Response> {
    let b = body(req)?;
    reject_unknown(&b, &["url", "events", "format", "delivery"])?;
    let (format, poll) = format_of(&b)?;
    let url = match (url_of(ctx, &b)?, poll) {
        (Some(u), false) => u,
        (None, true) => String::new(),
        (None, false) => return Err(ScimError::invalid_value("'url' is required")),
        (Some(_), true) => {
            return Err(ScimError::invalid_value(
                "a poll stream has no 'url': the receiver polls it",
            ))
        }
    };
    let events = events_of(&b)?.unwrap_or_else(|| "[\"*\"]".into());
    if poll && events != "[\"*\"]" {
        return Err(ScimError::invalid_value(
            "a poll stream serves every change; 'events' must be [\"*\"]",
        ));
    }
    let id = crate::service::ids::new_id()
        .map(|u| format!("wh_{}", u.replace('-', "")))
        .ok_or_else(ScimError::internal)?;
    let key = crypto::new_key()?;
    let sealed = crypto::seal(deployment_secret(ctx).await?.as_bytes(), &id, &key)?;
    let now = time::format_millis(ctx.now_ms);
    let scim_base = format!("{}{TENANT_PREFIX}{tenant}{SCIM_PATH}", req.origin);
    let e = NewEndpoint {
        id: &id,
        url: &url,
        events: &events,
        format,
        scim_base: &scim_base,
        sealed_secret: &sealed,
        now: &now,
    };
    if !store::create(ctx.db, tenant, &e).await? {
        return Err(ScimError::not_found(format!("no tenant '{tenant}'")));
    }
    let row = store::get(ctx.db, tenant, &id)
        .await?
        .ok_or_else(ScimError::internal)?;
    let mut out = render(&row);
    if let Value::Object(o) = &mut out {
        o.insert("secret".into(), Value::String(crypto::secret_text(&key)));
        if format == "set" {
            o.insert("keyId".into(), json!(crate::proto::secevent::key_id(&key)));
        }
    }
    Ok(json_response(201, &out))
}

async fn update<D: Db>(
    ctx: &Ctx<'_, D>,
    tenant: &str,
    req: &Request,
    id: &str,
) -> Result<Response> {
    let b = body(req)?;
    reject_unknown(&b, &["url", "events", "enabled"])?;
    let enabled = match b.get("enabled") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(v)) => Some(*v),
        Some(_) => return Err(ScimError::invalid_value("'enabled' must be true or false")),
    };
    let u = EndpointUpdate {
        url: url_of(ctx, &b)?,
        events: events_of(&b)?,
        enabled,
    };
    let now = time::format_millis(ctx.now_ms);
    store::update(ctx.db, tenant, id, &u, &now)
        .await?
        .map(|r| json_response(200, &render(&r)))
        .ok_or_else(|| no_endpoint(id))
}

async fn rotate<D: Db>(
    ctx: &Ctx<'_, D>,
    tenant: &str,
    req: &Request,
    id: &str,
) -> Result<Response> {
    let b = body(req)?;
    reject_unknown(&b, &["overlapSeconds"])?;
    let overlap = match b.get("overlapSeconds") {
        None | Some(Value::Null) => DEFAULT_OVERLAP_SECS,
        Some(v) => v
            .as_i64()
            .filter(|n| (0..=MAX_OVERLAP_SECS).contains(n))
            .ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "'overlapSeconds' must be a whole number of seconds from 0 to {MAX_OVERLAP_SECS}"
                ))
            })?,
    };
    let key = crypto::new_key()?;
    let sealed = crypto::seal(deployment_secret(ctx).await?.as_bytes(), id, &key)?;
    let until = ctx.now_ms + overlap * 1000;
    let now = time::format_millis(ctx.now_ms);
    if !store::rotate(ctx.db, tenant, id, &sealed, until, &now).await? {
        return Err(no_endpoint(id));
    }
    Ok(json_response(
        200,
        &json!({
            "id": id,
            "secret": crypto::secret_text(&key),
            "keyId": crate::proto::secevent::key_id(&key),
            "previousSecretValidUntil": time::format_millis(until),
        }),
    ))
}

async fn deliveries<D: Db>(
    ctx: &Ctx<'_, D>,
    tenant: &str,
    req: &Request,
    id: &str,
) -> Result<Response> {
    let rows = store::deliveries(ctx.db, tenant, id, &delivery_query(req)?)
        .await?
        .ok_or_else(|| no_endpoint(id))?;
    Ok(deliveries_response(&rows))
}

/// `GET /tenants/{tenant}/webhooks/{id}/deliveries` of a poll stream, answered by the
/// tenant's Durable Object, which keeps the stream's acknowledgements (`admin::handed`); the
/// worker checked D1 for the stream before handing the path on.
pub async fn stream_deliveries<D: Db>(
    ctx: &Ctx<'_, D>,
    tenant: &str,
    req: &Request,
    id: &str,
) -> Result<Response> {
    let rows = store::delivery_log(ctx.db, tenant, id, &delivery_query(req)?).await?;
    Ok(deliveries_response(&rows))
}

/// Whether `id` is a poll stream of `tenant` (whose delivery log a tenant's object keeps when
/// tenants' directories are in objects); 404 when there is no such endpoint.
pub async fn is_stream<D: Db>(ctx: &Ctx<'_, D>, tenant: &str, id: &str) -> Result<bool> {
    store::is_stream(ctx.db, tenant, id)
        .await?
        .ok_or_else(|| no_endpoint(id))
}

/// The delivery log's filters in the query: `status`, `limit`.
fn delivery_query(req: &Request) -> Result<DeliveryQuery> {
    let status = match req.query_param("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(s @ ("queued" | "retrying" | "delivered" | "dead")) => Some(s.to_string()),
        Some(s) => {
            return Err(ScimError::invalid_value(format!(
                "'status' must be one of queued, retrying, delivered, dead, not '{s}'"
            )))
        }
    };
    let limit = match req.query_param("limit").filter(|s| !s.is_empty()) {
        None => 100,
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| ScimError::invalid_value("'limit' must be an integer"))?,
    };
    Ok(DeliveryQuery { status, limit })
}

fn deliveries_response(rows: &[Row]) -> Response {
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "eventId": match r.get("type").and_then(Value::as_str).unwrap_or_default() {
                    set::KIND => crate::proto::secevent::jti(store::int(r, "seq")),
                    t => webhook::event_id_named(store::int(r, "seq"), t),
                },
                "seq": store::int(r, "seq"),
                "type": r.get("type"),
                "status": r.get("status"),
                "attempts": store::int(r, "attempts"),
                "lastStatus": r.get("last_status"),
                "latencyMs": r.get("latency_ms"),
                "lastError": r.get("last_error"),
                "lastAttempt": r.get("last_attempt"),
                "queued": r.get("queued"),
            })
        })
        .collect();
    json_response(200, &json!({"deliveries": items}))
}

/// The events a redelivery request names: `{seq}` or `{from, to}`.
fn redeliver_range(
    b: &Map<String, Value>,
) -> Result<(Option<i64>, Option<String>, Option<String>)> {
    reject_unknown(b, &["seq", "from", "to"])?;
    let instant = |name: &str| -> Result<Option<String>> {
        match b.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => time::normalize(s).map(Some).ok_or_else(|| {
                ScimError::invalid_value(format!("'{name}' must be an RFC 3339 date-time"))
            }),
            Some(_) => Err(ScimError::invalid_value(format!(
                "'{name}' must be an RFC 3339 date-time"
            ))),
        }
    };
    let seq = match b.get("seq") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .filter(|n| *n > 0)
                .ok_or_else(|| ScimError::invalid_value("'seq' must be a positive integer"))?,
        ),
    };
    let (from, to) = (instant("from")?, instant("to")?);
    if seq.is_none() && from.is_none() && to.is_none() {
        return Err(ScimError::invalid_value(
            "name the events to redeliver: {\"seq\": n} or {\"from\": t, \"to\": t}",
        ));
    }
    Ok((seq, from, to))
}

async fn redeliver<D: Db>(
    ctx: &Ctx<'_, D>,
    tenant: &str,
    req: &Request,
    id: &str,
) -> Result<Response> {
    let (seq, from, to) = redeliver_range(&body(req)?)?;
    let endpoint = store::get(ctx.db, tenant, id)
        .await?
        .ok_or_else(|| no_endpoint(id))?;
    let filter: Vec<String> = endpoint
        .get("events")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let between = deliver::Between {
        tenant: tenant.to_string(),
        seq,
        from,
        to,
        limit: MAX_REDELIVER,
    };
    // With SCIM_STORAGE = durable-object the tenant's events are in its object.
    let rows = deliver::events_in(ctx.db, ctx.forward, &between).await?;
    if endpoint.get("url").and_then(Value::as_str) == Some("") {
        return Err(ScimError::invalid_value(
            "a poll stream serves every event not yet acknowledged; there is nothing to redeliver",
        ));
    }
    let is_set = endpoint.get("format").and_then(Value::as_str) == Some(set::KIND);
    let items: Vec<Queued> = rows
        .iter()
        .flat_map(|r| {
            let c = store::change_of(r);
            set::kinds(&c, &filter, is_set)
                .into_iter()
                .map(move |kind| Queued {
                    endpoint: id.to_string(),
                    tenant: tenant.to_string(),
                    seq: c.seq,
                    kind,
                })
        })
        .collect();
    if !items.is_empty() {
        store::request_redelivery(ctx.db, &items, &time::format_millis(ctx.now_ms)).await?;
    }
    Ok(json_response(202, &json!({"queued": items.len()})))
}
