//! SCIM security events (RFC 9967) for `format: "set"` endpoints: the signed token of one
//! change, pushed by the queue consumer (RFC 8935, `deliver`), and the RFC 8936 poll
//! endpoint of a stream that has no URL.
//!
//! Keys: HS256 (RFC 7518 §3.2) with the endpoint's own secret: a SET is a JWT signed with
//! any JWS algorithm the parties agree on, a shared key needs nothing published, and the
//! receiver already holds it. Each token names its key in `kid`
//! ([`secevent::key_id`]); during a rotation's overlap the *previous* key signs, so a receiver
//! keeps verifying until it has added the new secret, and must have it when the overlap ends.
//!
//! Polling: `POST {scim base}/Events/{stream}` with the tenant's SCIM bearer token (issue the
//! SaaS app a token of its own, so it can be rotated and revoked apart from the identity
//! provider's). The body is RFC 8936's `{maxEvents, returnImmediately, ack, setErrs}`; the
//! answer `{sets, moreAvailable}` holds the oldest events neither acknowledged nor reported,
//! so a SET not acknowledged is served again by the next poll. Acknowledgements and reported
//! errors are the stream's delivery log (`delivered`, `dead`); the stream's floor
//! (`webhooks.enqueued_seq`) moves past what needs no more serving. A stream serves every
//! change: filtering by event type is the push endpoints' (it would keep the floor from moving
//! in SQL, and cost the wasm a second round trip's code).

use crate::proto::error::{Result, ScimError};
use crate::proto::secevent::{self, Envelope};
use crate::proto::time;
use crate::proto::webhook;
use crate::service::ctx::{Config, Ctx};
use crate::service::http::{Request, Response};
use crate::service::webhooks::crypto;
use crate::store::webhooks::{self as store, PollRequest};
use crate::store::{Db, Row};
use serde_json::{json, Map, Value};

/// The delivery-log type (and queue message kind) of a SET: one per change.
pub const KIND: &str = "set";
/// Most SETs one poll answers (also when `maxEvents` asks for more).
pub const MAX_POLL_EVENTS: usize = 100;
/// Longest error text kept from a receiver's `setErrs`.
const MAX_ERR_CHARS: usize = 300;

fn text(row: &Row, col: &str) -> String {
    row.get(col)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The queue messages (their kinds) change `c` makes for an endpoint with `filter`: one per
/// wanted event type for `json`, one SET for `set` if the filter wants any of its types.
pub fn kinds(c: &webhook::Change, filter: &[String], set: bool) -> Vec<String> {
    let mut types = webhook::types_of(c)
        .into_iter()
        .filter(|t| webhook::wants(filter, *t));
    if set && crate::proto::secevent::events(c).is_empty() {
        return Vec::new();
    }
    if set {
        types.next().map(|_| KIND.to_string()).into_iter().collect()
    } else {
        types.map(|t| t.name().to_string()).collect()
    }
}

/// A fresh value to create the D1 deployment secret with, when the seal key comes from D1
/// (no `CURSOR_SECRET`).
pub fn fresh_deploy(config: &Config) -> Result<Option<String>> {
    match config.cursor_secret {
        Some(_) => Ok(None),
        None => Ok(Some(crate::store::cursor::fresh_secret()?)),
    }
}

/// The endpoint's current key and, during a rotation's overlap, the previous one (last),
/// opened with `CURSOR_SECRET` or else the deployment secret read from D1.
pub fn signing_keys(
    config: &Config,
    from_d1: Option<&str>,
    endpoint: &Row,
    now_ms: i64,
) -> Result<Vec<Vec<u8>>> {
    let deploy = config
        .cursor_secret
        .as_deref()
        .or(from_d1)
        .ok_or_else(|| ScimError::internal().with_cause("no deployment secret"))?
        .as_bytes();
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

/// The SET of log row `event` for `endpoint`, signed with the previous key during a
/// rotation's overlap and with the current one otherwise.
pub fn token(
    endpoint: &Row,
    event: &Row,
    audience: &str,
    keys: &[Vec<u8>],
    now_ms: i64,
) -> Result<String> {
    let issuer = text(endpoint, "scim_base");
    let env = Envelope {
        issuer: &issuer,
        audience,
        issued_at: now_ms.div_euclid(1000),
        txn: event.get("request_id").and_then(Value::as_str),
        external_id: event.get("external_id").and_then(Value::as_str),
    };
    let key = keys.last().ok_or_else(ScimError::internal)?;
    let change = store::change_of(event);
    secevent::sign(&secevent::claims(&change, &env), key)
}

/// The poll URL of stream `id` below the tenant's SCIM base.
pub fn poll_url(scim_base: &str, id: &str) -> String {
    format!("{scim_base}/Events/{id}")
}

/// An RFC 8936 poll request, checked before any I/O: how many SETs to answer, and what the
/// receiver says of those it got (see `store::webhooks::PollRequest::marks`).
#[derive(Debug, Default, PartialEq)]
struct Poll {
    max_events: usize,
    marks: Vec<Value>,
}

fn mark(seq: i64, status: &str, error: Value) -> Value {
    Value::Array(vec![Value::from(seq), Value::from(status), error])
}

/// Reads the poll body. Members other than RFC 8936's, and `jti`s this service did not issue,
/// are ignored: acknowledging something unknown changes nothing.
fn parse(req: &Request) -> Result<Poll> {
    let body = match req.body.iter().all(u8::is_ascii_whitespace) {
        true => Value::Null,
        false => req.json_body()?,
    };
    let max_events = match body.get("maxEvents") {
        None => MAX_POLL_EVENTS,
        Some(v) => v
            .as_u64()
            .map(|n| usize::try_from(n).map_or(MAX_POLL_EVENTS, |n| n.min(MAX_POLL_EVENTS)))
            .ok_or_else(|| {
                ScimError::invalid_value("'maxEvents' must be a non-negative integer (RFC 8936)")
            })?,
    };
    let mut marks = Vec::new();
    let acks = body.get("ack").and_then(Value::as_array);
    for jti in acks.into_iter().flatten().filter_map(Value::as_str) {
        marks.extend(secevent::seq_of(jti).map(|s| mark(s, "delivered", Value::Null)));
    }
    let errs = body.get("setErrs").and_then(Value::as_object);
    for (jti, e) in errs.into_iter().flatten() {
        let field = |f: &str| e.get(f).and_then(Value::as_str).unwrap_or_default();
        let note = format!(
            "the receiver reported {}: {}",
            field("err"),
            field("description")
        );
        let note: String = note.chars().take(MAX_ERR_CHARS).collect();
        marks.extend(secevent::seq_of(jti).map(|s| mark(s, "dead", Value::String(note))));
    }
    Ok(Poll { max_events, marks })
}

/// `POST {scim base}/Events/{stream}`: records the acknowledgements and errors, then answers
/// the next SETs. Long polls are answered at once (as if they timed out with what there is).
pub async fn poll<D: Db>(
    ctx: &Ctx<'_, D>,
    tenant: &str,
    req: &Request,
    stream: &str,
) -> Result<Response> {
    let p = parse(req)?;
    let fresh = fresh_deploy(ctx.config)?;
    let from_d1 = fresh
        .as_deref()
        .map(|f| (crypto::DEPLOYMENT_SECRET_NAME, f));
    let now = time::format_millis(ctx.now_ms);
    let marks = Value::Array(p.marks).to_string();
    let q = PollRequest {
        tenant,
        stream,
        marks: &marks,
        limit: p.max_events as i64 + 1,
        now: &now,
    };
    let read = store::poll(ctx.db, &q, from_d1).await?;
    let endpoint = read
        .endpoint
        .filter(|e| text(e, "url").is_empty())
        .ok_or_else(|| ScimError::not_found(format!("no security event stream '{stream}'")))?;
    if store::int(&endpoint, "enabled") != 1 {
        return Err(ScimError::new(
            403,
            None,
            "this security event stream is disabled",
        ));
    }
    let keys = signing_keys(
        ctx.config,
        read.deployment_secret.as_deref(),
        &endpoint,
        ctx.now_ms,
    )?;
    let audience = poll_url(&text(&endpoint, "scim_base"), stream);
    let mut sets = Map::new();
    for row in read.events.iter().take(p.max_events) {
        let t = token(&endpoint, row, &audience, &keys, ctx.now_ms)?;
        sets.insert(secevent::jti(store::int(row, "seq")), Value::String(t));
    }
    let more = read.events.len() > p.max_events;
    let mut r = Response::json(200, &json!({"sets": sets, "moreAvailable": more}));
    r.headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
    Ok(r.with_header("content-type", "application/json")
        .with_header("cache-control", "no-store"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str) -> Request {
        let mut r = Request::new(
            crate::service::http::Method::Post,
            "/scim/v2/Events/x",
            "https://e.com",
        );
        r.body = body.as_bytes().to_vec();
        r.with_header("content-type", "application/json")
    }

    #[test]
    fn poll_bodies_are_read_as_rfc_8936_says() {
        let p = parse(&req(
            r#"{"maxEvents": 5, "returnImmediately": true, "ack": ["set_3", "evt_9", "set_x"],
                "setErrs": {"set_4": {"err": "invalid_issuer", "description": "who?"}}}"#,
        ))
        .unwrap();
        assert_eq!(p.max_events, 5);
        assert_eq!(
            p.marks,
            [
                json!([3, "delivered", null]),
                json!([4, "dead", "the receiver reported invalid_issuer: who?"])
            ]
        );
        assert_eq!(parse(&req("")).unwrap().max_events, MAX_POLL_EVENTS);
        assert_eq!(
            parse(&req(r#"{"maxEvents": 100000}"#)).unwrap().max_events,
            MAX_POLL_EVENTS
        );
        assert_eq!(parse(&req(r#"{"maxEvents": 0}"#)).unwrap().max_events, 0);
        // Unknown members and what is not a jti are ignored.
        let p = parse(&req(
            r#"{"ack": ["set_2", 7], "sets": {}, "returnImmediately": 1}"#,
        ));
        assert_eq!(p.unwrap().marks, [json!([2, "delivered", null])]);
        for bad in [r#"{"maxEvents": -1}"#, r#"{"maxEvents": "5"}"#, "[1"] {
            assert_eq!(parse(&req(bad)).unwrap_err().status, 400, "{bad}");
        }
    }
}
