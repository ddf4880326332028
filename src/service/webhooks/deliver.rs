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
use crate::proto::time;
use crate::proto::webhook::{self, EventType};
use crate::service::ctx::Config;
use crate::service::webhooks::crypto;
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
            for t in webhook::types_of(&c) {
                if webhook::wants(&filter, t) {
                    msgs.push(Queued {
                        endpoint: endpoint.clone(),
                        tenant: text(row, "tenant"),
                        seq: c.seq,
                        kind: t.name().to_string(),
                    });
                }
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
        store::mark_sent(db, &msgs, &advance, &time::format_millis(now_ms)).await?;
        total += msgs.len();
        if !full {
            break;
        }
    }
    Ok(total)
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
pub async fn deliver<D: Db, T: Transport>(
    db: &D,
    transport: &T,
    config: &Config,
    settings: &Settings,
    q: &Queued,
    now_ms: i64,
) -> Outcome {
    match try_deliver(db, transport, config, settings, q, now_ms).await {
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

async fn try_deliver<D: Db, T: Transport>(
    db: &D,
    transport: &T,
    config: &Config,
    settings: &Settings,
    q: &Queued,
    now_ms: i64,
) -> Result<Outcome> {
    let Some(kind) = EventType::from_name(&q.kind) else {
        return Ok(ack(Some(format!(
            "webhook message of unknown type '{}' dropped",
            q.kind
        ))));
    };
    let rt = if q.kind.starts_with("group.") {
        ResourceType::Group
    } else {
        ResourceType::User
    };
    // The seal key's secret comes from D1 only when CURSOR_SECRET is not set.
    let fresh = match config.cursor_secret {
        Some(_) => None,
        None => Some(crate::store::cursor::fresh_secret()?),
    };
    let from_d1 = fresh
        .as_deref()
        .map(|f| (crypto::DEPLOYMENT_SECRET_NAME, f));
    let found = store::for_delivery(db, q, rt, from_d1).await?;
    let Some(endpoint) = found.endpoint else {
        return Ok(ack(None)); // deleted: its log went with it
    };
    if store::int(&endpoint, "enabled") != 1 {
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
    let Some(event) = found.event else {
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
    let change = store::change_of(&event);
    let resource = render_resource(found.resource.as_ref(), &text(&endpoint, "scim_base"))?;
    let body = webhook::body(&change, kind, &q.tenant, resource);
    let body = serde_json::to_vec(&body).map_err(|_| ScimError::internal())?;
    let deploy = match &config.cursor_secret {
        Some(s) => s.clone(),
        None => found
            .deployment_secret
            .ok_or_else(|| ScimError::internal().with_cause("no deployment secret"))?,
    };
    let keys = signing_keys(deploy.as_bytes(), &endpoint, now_ms)?;
    let msg_id = webhook::event_id(change.seq, kind);
    let ts = now_ms.div_euclid(1000);
    let headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("user-agent".to_string(), "scim-edge-webhooks".to_string()),
        ("webhook-id".to_string(), msg_id.clone()),
        ("webhook-timestamp".to_string(), ts.to_string()),
        (
            "webhook-signature".to_string(),
            crypto::signature_header(&keys, &msg_id, ts, &body)?,
        ),
    ];
    let posted = transport
        .post(&text(&endpoint, "url"), &headers, &body)
        .await;
    record(db, settings, q, &posted, attempts, now_ms).await
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

/// The current key and, during a rotation's overlap, the previous one.
fn signing_keys(deploy: &[u8], endpoint: &Row, now_ms: i64) -> Result<Vec<Vec<u8>>> {
    let id = text(endpoint, "id");
    let mut keys = vec![crypto::open(deploy, &id, &text(endpoint, "secret"))?];
    let previous = endpoint.get("previous_secret").and_then(Value::as_str);
    let until = endpoint
        .get("previous_until")
        .and_then(Value::as_f64)
        .map_or(0, |v| v as i64);
    if let Some(p) = previous.filter(|_| until > now_ms) {
        keys.push(crypto::open(deploy, &id, p)?);
    }
    Ok(keys)
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
