//! Getting events to the endpoints: the sweep that turns committed events into queue messages,
//! and the consumer that signs and POSTs one message's event.
//!
//! The sweep ([`sweep`]) runs after every successful write (in `waitUntil`, after the response
//! is sent) and on the per-minute cron; it sends first and marks afterwards
//! (`store::webhooks`), so a crash in between delays an event and never loses it. The queue
//! consumer ([`deliver`]) is at least once: a message whose delivery row says `delivered` is
//! acknowledged without sending again, and a failed attempt is retried by the queue with
//! exponential backoff (30 s doubling to the queue's 12 h maximum delay; with the consumer's
//! `max_retries = 20` that is about five days) before the message goes to the dead-letter
//! queue ([`dead_letter`]). An endpoint that has failed for [`DISABLE_AFTER_MS`] without a
//! single success is disabled, with the reason on the endpoint.
//!
//! The queue and HTTP are behind [`Outbox`] and [`Transport`] (the Workers bindings in
//! `crate::worker`), so all of this runs natively in the tests.

use crate::proto::error::{Result, ScimError};
use crate::proto::projection::Projection;
use crate::proto::schema::ResourceType;
use crate::proto::secevent;
use crate::proto::time;
use crate::proto::webhook::{self, EventType};
use crate::service::ctx::{Config, Forward};
use crate::service::http::{Method, Request, Response};
use crate::service::webhooks::{crypto, set};
use crate::store::webhooks::{self as store, AttemptRecord, Queued};
use crate::store::{parse_row, Db, Row};
use serde_json::Value;
use std::collections::BTreeMap;

/// An endpoint failing this long without a success is disabled (3 days).
pub const DISABLE_AFTER_MS: i64 = 3 * 86_400_000;
/// The first retry's delay when `WEBHOOK_RETRY_BASE_SECONDS` is not set.
pub const DEFAULT_RETRY_BASE_SECS: u32 = 30;
/// The longest delay a Queues retry takes (12 hours).
pub const MAX_RETRY_DELAY_SECS: u32 = 43_200;
/// At most this many sweep pages per run; the rest waits for the next run.
const MAX_SWEEP_PAGES: usize = 5;
/// Longest error text kept in the delivery log.
const MAX_ERROR_CHARS: usize = 300;

/// The queue producer.
#[allow(async_fn_in_trait)]
pub trait Outbox {
    /// Sends the messages (all, or fails).
    async fn send(&self, msgs: &[Queued]) -> std::result::Result<(), String>;
}

/// What an HTTP POST to an endpoint came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Posted {
    /// The response status, if a response came.
    pub status: Option<u16>,
    pub latency_ms: i64,
    /// Why there was no (usable) response.
    pub error: Option<String>,
}

/// HTTP to the endpoints: a POST, redirects not followed, with a time limit.
#[allow(async_fn_in_trait)]
pub trait Transport {
    async fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Posted;
}

/// Sends what is committed and not yet sent: new events for every enabled endpoint (as its
/// filter wants them) and requested redeliveries. Returns how many messages went out.
pub async fn sweep<D: Db, O: Outbox>(db: &D, outbox: &O, now_ms: i64) -> Result<usize> {
    sweep_in(db, None, outbox, now_ms).await
}

/// [`sweep`] over `db`'s events and endpoint cursors; the delivery log is in `log` when that
/// is another database (a tenant's object sweeping into D1's log), else in `db`.
async fn sweep_in<D: Db, O: Outbox>(
    db: &D,
    log: Option<&D>,
    outbox: &O,
    now_ms: i64,
) -> Result<usize> {
    let mut total = 0;
    for _ in 0..MAX_SWEEP_PAGES {
        let pending = store::pending(db).await?;
        let full = pending.events.len() as i64 >= store::SWEEP_PAGE
            || pending.unsent.len() as i64 >= store::SWEEP_PAGE;
        let mut msgs: Vec<Queued> = Vec::new();
        let mut advance: BTreeMap<String, i64> = BTreeMap::new();
        for row in &pending.events {
            let endpoint = text(row, "endpoint");
            let filter: Vec<String> = row
                .get("filter")
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default();
            let c = store::change_of(row);
            for kind in set::kinds(&c, &filter, text(row, "format") == set::KIND) {
                msgs.push(Queued {
                    endpoint: endpoint.clone(),
                    tenant: text(row, "tenant"),
                    seq: c.seq,
                    kind,
                });
            }
            let at = advance.entry(endpoint).or_insert(c.seq);
            *at = (*at).max(c.seq);
        }
        for row in &pending.unsent {
            msgs.push(Queued {
                endpoint: text(row, "endpoint"),
                tenant: text(row, "tenant"),
                seq: store::int(row, "seq"),
                kind: text(row, "type"),
            });
        }
        if msgs.is_empty() && advance.is_empty() {
            break;
        }
        if !msgs.is_empty() {
            outbox.send(&msgs).await.map_err(|e| {
                ScimError::internal().with_cause(format!("webhook queue send failed: {e}"))
            })?;
        }
        let advance: Vec<(String, i64)> = advance.into_iter().collect();
        let now = time::format_millis(now_ms);
        match log {
            None => store::mark_sent(db, &msgs, &advance, &now).await?,
            // The log first: a failure in between leaves the cursor behind, so the events
            // are sent again (at least once), never skipped.
            Some(log) => {
                store::mark_sent(log, &msgs, &[], &now).await?;
                store::mark_sent(db, &[], &advance, &now).await?;
            }
        }
        total += msgs.len();
        if !full {
            break;
        }
    }
    Ok(total)
}

/// The sweep of a tenant's Durable Object (`SCIM_STORAGE = "durable-object"`), run by the
/// object's alarm: `object` holds the tenant's events, `control` (D1) its endpoints and the
/// delivery log. The endpoints are read from D1 and mirrored into the object
/// (`store::webhooks::mirror_endpoints`), whose own cursors then say what is unsent; messages
/// go out before the cursors move, as in [`sweep`]. Returns how many messages went out and
/// whether more may be waiting (a full run: the alarm goes round again).
pub async fn sweep_object<D: Db, O: Outbox>(
    object: &D,
    control: &D,
    outbox: &O,
    now_ms: i64,
) -> Result<usize> {
    let Some(tenant) = store::object_tenant(object).await? else {
        return Ok(0);
    };
    let endpoints = store::push_endpoints(control, &tenant).await?;
    store::mirror_endpoints(object, &tenant, &endpoints).await?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    sweep_in(object, Some(control), outbox, now_ms).await
}

fn text(row: &Row, col: &str) -> String {
    row.get(col)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// What the consumer does with a message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Ack,
    Retry { delay_secs: u32 },
}

/// The consumer's settings (Worker vars).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub retry_base_secs: u32,
    pub disable_after_ms: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            retry_base_secs: DEFAULT_RETRY_BASE_SECS,
            disable_after_ms: DISABLE_AFTER_MS,
        }
    }
}

impl Settings {
    /// The delay before attempt `attempts + 1`: the base, doubled per attempt made, capped.
    pub fn delay(&self, attempts: i64) -> u32 {
        let doublings = attempts.saturating_sub(1).clamp(0, 20) as u32;
        self.retry_base_secs
            .saturating_mul(1u32 << doublings)
            .clamp(1, MAX_RETRY_DELAY_SECS)
    }
}

/// The outcome of one message, with a line for the operator's log when there is news.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub note: Option<String>,
}

/// Delivers one queued event: reads what it needs in one round trip, signs, POSTs, records the
/// attempt (a second round trip) and says whether the queue should retry it.
/// `directory`: the tenants' objects, when their events and resources are there and not in
/// `db` (`SCIM_STORAGE = "durable-object"`).
pub async fn deliver<D: Db, T: Transport>(
    db: &D,
    transport: &T,
    directory: Option<&dyn Forward>,
    config: &Config,
    settings: &Settings,
    q: &Queued,
    now_ms: i64,
) -> Outcome {
    let how = How {
        transport,
        directory,
        config,
        settings,
    };
    match try_deliver(db, &how, q, now_ms).await {
        Ok(o) => o,
        // The database or the secret failed: nothing was recorded; the queue tries again.
        Err(e) => Outcome {
            verdict: Verdict::Retry {
                delay_secs: settings.delay(1),
            },
            note: Some(format!(
                "webhook {} event {}: {} {}",
                q.endpoint,
                q.seq,
                e.detail,
                e.cause.unwrap_or_default()
            )),
        },
    }
}

fn ack(note: Option<String>) -> Outcome {
    Outcome {
        verdict: Verdict::Ack,
        note,
    }
}

/// A delivery that will not be attempted: logged as `dead` with the reason.
async fn give_up<D: Db>(db: &D, q: &Queued, now_ms: i64, why: &str) -> Result<Outcome> {
    let rec = AttemptRecord {
        status: "dead",
        http_status: None,
        latency_ms: None,
        error: Some(why),
        success: false,
        attempted: false,
    };
    store::record_attempt(db, q, &rec, now_ms, i64::MIN, "").await?;
    Ok(ack(None))
}

/// What a delivery is made with, besides the database.
struct How<'a, T> {
    transport: &'a T,
    directory: Option<&'a dyn Forward>,
    config: &'a Config,
    settings: &'a Settings,
}

async fn try_deliver<D: Db, T: Transport>(
    db: &D,
    how: &How<'_, T>,
    q: &Queued,
    now_ms: i64,
) -> Result<Outcome> {
    let (config, settings) = (how.config, how.settings);
    let kind = EventType::from_name(&q.kind);
    let Ok(rt) = body_type(&q.kind) else {
        return Ok(ack(Some(format!(
            "webhook message of unknown type '{}' dropped",
            q.kind
        ))));
    };
    // The seal key's secret comes from D1 only when CURSOR_SECRET is not set.
    let fresh = set::fresh_deploy(config)?;
    let from_d1 = fresh
        .as_deref()
        .map(|f| (crypto::DEPLOYMENT_SECRET_NAME, f));
    let mut found = store::for_delivery(db, q, rt, from_d1, how.directory.is_none()).await?;
    let Some(endpoint) = &found.endpoint else {
        return Ok(ack(None)); // deleted: its log went with it
    };
    let url = text(endpoint, "url");
    if store::int(endpoint, "enabled") != 1 || url.is_empty() {
        return give_up(db, q, now_ms, "endpoint disabled").await;
    }
    if found
        .delivery
        .as_ref()
        .and_then(|d| d.get("status"))
        .and_then(Value::as_str)
        == Some("delivered")
    {
        return Ok(ack(None)); // a duplicate message: delivered already
    }
    if let Some(directory) = how.directory {
        // Only now, when it will be sent: one hop to the tenant's object.
        (found.event, found.resource) = change_from(directory, q).await?;
    }
    let Some(event) = &found.event else {
        return give_up(
            db,
            q,
            now_ms,
            "the event is no longer in the provisioning log",
        )
        .await;
    };
    let attempts = found
        .delivery
        .as_ref()
        .map_or(0, |d| store::int(d, "attempts"))
        + 1;
    let keys = set::signing_keys(config, found.deployment_secret.as_deref(), endpoint, now_ms)?;
    let (headers, body) = match kind {
        Some(kind) => json_message(&found, endpoint, event, kind, q, &keys, now_ms)?,
        None => set_message(endpoint, event, &url, &keys, now_ms)?,
    };
    let posted = how.transport.post(&url, &headers, &body).await;
    record(db, settings, q, &posted, attempts, now_ms).await
}

type Message = (Vec<(String, String)>, Vec<u8>);

/// A Standard Webhooks message: the JSON body and its signature headers.
fn json_message(
    found: &store::ForDelivery,
    endpoint: &Row,
    event: &Row,
    kind: EventType,
    q: &Queued,
    keys: &[Vec<u8>],
    now_ms: i64,
) -> Result<Message> {
    let change = store::change_of(event);
    let resource = render_resource(found.resource.as_ref(), &text(endpoint, "scim_base"))?;
    let body = webhook::body(&change, kind, &q.tenant, resource);
    let body = serde_json::to_vec(&body).map_err(|_| ScimError::internal())?;
    let msg_id = webhook::event_id(change.seq, kind);
    let ts = now_ms.div_euclid(1000);
    let headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("user-agent".to_string(), "scim-edge-webhooks".to_string()),
        ("webhook-id".to_string(), msg_id.clone()),
        ("webhook-timestamp".to_string(), ts.to_string()),
        (
            "webhook-signature".to_string(),
            crypto::signature_header(keys, &msg_id, ts, &body)?,
        ),
    ];
    Ok((headers, body))
}

/// An RFC 8935 push: the SET as the body, `application/secevent+jwt`.
fn set_message(
    endpoint: &Row,
    event: &Row,
    url: &str,
    keys: &[Vec<u8>],
    now_ms: i64,
) -> Result<Message> {
    let token = set::token(endpoint, event, url, keys, now_ms)?;
    let headers = vec![
        (
            "content-type".to_string(),
            format!("application/{}", secevent::TYP),
        ),
        ("accept".to_string(), "application/json".to_string()),
        ("user-agent".to_string(), "scim-edge-webhooks".to_string()),
    ];
    Ok((headers, token.into_bytes()))
}

/// The paths of the object's answers to the webhook reads ([`change_from`], [`events_in`]).
/// Not SCIM paths, so the worker never hands a client's request there
/// (`service::relay::in_directory`); only the queue consumer and the admin API ask.
pub const CHANGE_PATH: &str = "/__scim-edge/webhook-change";
pub const EVENTS_PATH: &str = "/__scim-edge/webhook-events";

/// The resource type a message's body carries (`None` for a SET, which carries none), or
/// `Err` for a type this version does not know.
fn body_type(kind: &str) -> std::result::Result<Option<ResourceType>, ()> {
    match (EventType::from_name(kind), kind) {
        (Some(_), k) if k.starts_with("group.") => Ok(Some(ResourceType::Group)),
        (Some(_), _) => Ok(Some(ResourceType::User)),
        (None, set::KIND) => Ok(None),
        (None, _) => Err(()),
    }
}

/// POSTs `body` to `path` of `tenant`'s object; its JSON answer.
async fn ask<B: serde::Serialize>(
    directory: &dyn Forward,
    tenant: &str,
    path: &str,
    body: &B,
) -> Result<Value> {
    let mut req = Request::new(Method::Post, path, "http://tenant.object");
    req.body = serde_json::to_vec(body).map_err(|_| ScimError::internal())?;
    let resp = directory.forward(tenant, req).await?;
    if resp.status != 200 {
        return Err(ScimError::internal().with_cause(format!(
            "the tenant's object answered {} to {path}",
            resp.status
        )));
    }
    serde_json::from_slice(&resp.body).map_err(|_| ScimError::internal())
}

fn take_row(v: &mut Value, key: &str) -> Option<Row> {
    match v.get_mut(key).map(Value::take) {
        Some(Value::Object(o)) => Some(o),
        _ => None,
    }
}

/// The event and resource of `q`, asked of the tenant's object.
async fn change_from(directory: &dyn Forward, q: &Queued) -> Result<(Option<Row>, Option<Row>)> {
    let mut v = ask(directory, &q.tenant, CHANGE_PATH, q).await?;
    Ok((take_row(&mut v, "event"), take_row(&mut v, "resource")))
}

/// The events a redelivery names: one by `seq`, or those in `[from, to)`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Between {
    pub tenant: String,
    pub seq: Option<i64>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: i64,
}

/// The events `b` names, from `db`, or from the tenant's object when `directory` is given.
pub async fn events_in<D: Db>(
    db: &D,
    directory: Option<&dyn Forward>,
    b: &Between,
) -> Result<Vec<Row>> {
    let Some(directory) = directory else {
        let (from, to) = (b.from.as_deref(), b.to.as_deref());
        return Ok(store::events_between(db, &b.tenant, b.seq, from, to, b.limit).await?);
    };
    let mut v = ask(directory, &b.tenant, EVENTS_PATH, b).await?;
    let rows = match v.get_mut("events").map(Value::take) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    Ok(rows
        .into_iter()
        .filter_map(|r| match r {
            Value::Object(o) => Some(o),
            _ => None,
        })
        .collect())
}

/// The object's side of [`change_from`] and [`events_in`]: `None` for any other path.
pub async fn serve_object_read<D: Db>(db: &D, req: &Request) -> Option<Response> {
    let read = async {
        match req.path.as_str() {
            CHANGE_PATH => {
                let q: Queued = parse(&req.body)?;
                let rt = body_type(&q.kind).unwrap_or(None);
                let (event, resource) = store::read_change(db, &q, rt).await?;
                Ok(serde_json::json!({"event": event, "resource": resource}))
            }
            _ => {
                let b: Between = parse(&req.body)?;
                let events = events_in(db, None, &b).await?;
                Ok::<_, ScimError>(serde_json::json!({ "events": events }))
            }
        }
    };
    if req.path != CHANGE_PATH && req.path != EVENTS_PATH {
        return None;
    }
    Some(match read.await {
        Ok(v) => Response::json(200, &v),
        Err(e) => Response::error(&e),
    })
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|_| ScimError::invalid_syntax("not a webhook read"))
}

/// Records the attempt and decides: acknowledged when delivered, else retried later.
async fn record<D: Db>(
    db: &D,
    settings: &Settings,
    q: &Queued,
    posted: &Posted,
    attempts: i64,
    now_ms: i64,
) -> Result<Outcome> {
    let success = posted.status.is_some_and(|s| (200..300).contains(&s));
    let error: Option<String> = match (&posted.error, posted.status) {
        (Some(e), _) => Some(e.chars().take(MAX_ERROR_CHARS).collect()),
        (None, Some(s)) if !success => Some(format!("the endpoint answered {s}")),
        _ => None,
    };
    let rec = AttemptRecord {
        status: if success { "delivered" } else { "retrying" },
        http_status: posted.status,
        latency_ms: Some(posted.latency_ms),
        error: error.as_deref(),
        success,
        attempted: true,
    };
    let days = settings.disable_after_ms / 86_400_000;
    let reason = format!(
        "disabled automatically: every delivery failed for {days} days or more (last: {})",
        error.as_deref().unwrap_or("-")
    );
    let disabled = store::record_attempt(
        db,
        q,
        &rec,
        now_ms,
        now_ms - settings.disable_after_ms,
        &reason,
    )
    .await?;
    let note = disabled.then(|| format!("webhook endpoint {} {reason}", q.endpoint));
    Ok(Outcome {
        verdict: if success || disabled {
            Verdict::Ack
        } else {
            Verdict::Retry {
                delay_secs: settings.delay(attempts),
            }
        },
        note,
    })
}

/// The resource as GET returns it now, if it still exists.
fn render_resource(row: Option<&Row>, base: &str) -> Result<Option<Value>> {
    let Some(row) = row else { return Ok(None) };
    let stored = parse_row(row, true)?;
    let mut out = Vec::with_capacity(stored.data.len() + 256);
    crate::service::scim::write_resource(&mut out, &stored, &Projection::default(), base)?;
    serde_json::from_slice(&out)
        .map(Some)
        .map_err(|_| ScimError::internal())
}

/// A message that ran out of retries (the dead-letter queue's consumer): logged as `dead`.
pub async fn dead_letter<D: Db>(db: &D, q: &Queued, now_ms: i64) -> Result<()> {
    give_up(
        db,
        q,
        now_ms,
        "out of retries: moved to the dead-letter queue",
    )
    .await?;
    Ok(())
}
