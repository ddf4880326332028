//! Webhooks through the whole service over real SQLite: endpoints in the admin API, the events
//! SCIM writes produce, the sweep that queues them, and the consumer's signing, retries,
//! deduplication and automatic disabling. The queue and HTTP are recording fakes here; the
//! e2e test (tests/e2e/webhooks.test.mjs) runs the real ones in workerd.

use crate::proto::schema::{GROUP_SCHEMA, USER_SCHEMA};
use crate::service::http::{Method, Response};
use crate::service::webhooks::crypto;
use crate::service::webhooks::deliver::{
    self, Outbox, Posted, Settings, Transport, Verdict, DISABLE_AFTER_MS,
};
use crate::store::webhooks::Queued;
use crate::testing::{block_on, Server};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use std::cell::RefCell;

const TOKEN: &str = "webhook-test-token";
const ADMIN: &str = "webhook-admin-token";
const HOOKS: &str = "/admin/api/tenants/default/webhooks";

#[derive(Default)]
struct Queue {
    sent: RefCell<Vec<Queued>>,
    fail: RefCell<bool>,
}

impl Outbox for Queue {
    async fn send(&self, msgs: &[Queued]) -> Result<(), String> {
        if *self.fail.borrow() {
            return Err("queue unavailable".into());
        }
        self.sent.borrow_mut().extend_from_slice(msgs);
        Ok(())
    }
}

/// One POST a receiver got.
#[derive(Debug, Clone)]
struct Got {
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Records every POST and answers the scripted statuses (200 once they run out).
#[derive(Default)]
struct Receiver {
    got: RefCell<Vec<Got>>,
    script: RefCell<Vec<u16>>,
}

impl Transport for Receiver {
    async fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Posted {
        self.got.borrow_mut().push(Got {
            url: url.into(),
            headers: headers.to_vec(),
            body: body.to_vec(),
        });
        let mut script = self.script.borrow_mut();
        let status = if script.is_empty() {
            200
        } else {
            script.remove(0)
        };
        Posted {
            status: Some(status),
            latency_ms: 3,
            error: None,
        }
    }
}

struct H {
    s: Server,
    queue: Queue,
    rx: Receiver,
}

fn new() -> H {
    H {
        s: Server::new(&[TOKEN], Some(ADMIN)),
        queue: Queue::default(),
        rx: Receiver::default(),
    }
}

impl H {
    fn admin(&mut self, m: Method, path: &str, body: Option<Value>) -> Response {
        self.s.call(m, path, ADMIN, body)
    }
    fn scim(&mut self, m: Method, path: &str, body: Option<Value>) -> Response {
        self.s.call(m, &format!("/scim/v2{path}"), TOKEN, body)
    }
    /// Creates an endpoint; its id and the key bytes of its secret.
    fn endpoint(&mut self, body: Value) -> (String, Vec<u8>) {
        let r = self.admin(Method::Post, HOOKS, Some(body));
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let b = r.body_json();
        let secret = b["secret"].as_str().unwrap();
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        (b["id"].as_str().unwrap().to_string(), key)
    }
    /// Sweeps; the messages it queued.
    fn sweep(&mut self) -> Vec<Queued> {
        let before = self.queue.sent.borrow().len();
        block_on(deliver::sweep(&self.s.db, &self.queue, self.s.now_ms)).unwrap();
        self.queue.sent.borrow()[before..].to_vec()
    }
    fn deliver(&mut self, q: &Queued, settings: &Settings) -> Verdict {
        block_on(deliver::deliver(
            &self.s.db,
            &self.rx,
            None,
            &self.s.config,
            settings,
            q,
            self.s.now_ms,
        ))
        .verdict
    }
    /// Sweeps and delivers everything queued once; the bodies received.
    fn flush(&mut self) -> Vec<Value> {
        let before = self.rx.got.borrow().len();
        for q in self.sweep() {
            assert_eq!(self.deliver(&q, &Settings::default()), Verdict::Ack);
        }
        self.rx.got.borrow()[before..]
            .iter()
            .map(Got::json)
            .collect()
    }
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn types(bodies: &[Value]) -> Vec<&str> {
    bodies.iter().map(|b| b["type"].as_str().unwrap()).collect()
}

#[test]
fn endpoints_are_created_with_a_secret_shown_once_and_managed_without_it() {
    let mut h = new();
    let r = h.admin(
        Method::Post,
        HOOKS,
        Some(json!({"url": "https://app.example.com/hooks", "events": ["user.created"]})),
    );
    assert_eq!(r.status, 201);
    let b = r.body_json();
    let id = b["id"].as_str().unwrap().to_string();
    assert!(b["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(b["events"], json!(["user.created"]));
    assert_eq!(b["enabled"], json!(true));
    let secret = b["secret"].as_str().unwrap().to_string();
    // Never again: not in get or list, and not stored as given.
    let got = h.admin(Method::Get, &format!("{HOOKS}/{id}"), None);
    assert_eq!(got.status, 200);
    assert!(got.body_json().get("secret").is_none());
    let list = h.admin(Method::Get, HOOKS, None).body_json();
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
    assert!(!String::from_utf8_lossy(&h.admin(Method::Get, HOOKS, None).body).contains("whsec_"));
    let stored = h.s.db.query("SELECT secret FROM webhooks");
    let key_b64 = secret.strip_prefix("whsec_").unwrap();
    assert!(!stored[0]["secret"].as_str().unwrap().contains(key_b64));

    let r = h.admin(
        Method::Patch,
        &format!("{HOOKS}/{id}"),
        Some(json!({"url": "https://other.example.com/h", "events": ["*"], "enabled": false})),
    );
    assert_eq!(r.status, 200);
    let b = r.body_json();
    assert_eq!(b["url"], json!("https://other.example.com/h"));
    assert_eq!(b["enabled"], json!(false));
    assert_eq!(b["disabledReason"], json!("disabled by an administrator"));
    let b = h
        .admin(
            Method::Patch,
            &format!("{HOOKS}/{id}"),
            Some(json!({"enabled": true})),
        )
        .body_json();
    assert_eq!(
        (b["enabled"].clone(), b["disabledReason"].clone()),
        (json!(true), Value::Null)
    );

    assert_eq!(
        h.admin(Method::Delete, &format!("{HOOKS}/{id}"), None)
            .status,
        204
    );
    assert_eq!(
        h.admin(Method::Get, &format!("{HOOKS}/{id}"), None).status,
        404
    );
    assert_eq!(
        h.admin(Method::Delete, &format!("{HOOKS}/{id}"), None)
            .status,
        404
    );
    // An unknown tenant, and the SCIM token, are refused.
    let r = h.admin(
        Method::Post,
        "/admin/api/tenants/nope/webhooks",
        Some(json!({"url": "https://a.example.com"})),
    );
    assert_eq!(r.status, 404);
    let r = h.s.call(Method::Get, HOOKS, TOKEN, None);
    assert_eq!(r.status, 401);
}

#[test]
fn bad_endpoint_settings_are_clear_400s() {
    let mut h = new();
    for (body, says) in [
        (json!({}), "'url' is required"),
        (
            json!({"url": "http://app.example.com/h"}),
            "must use https://",
        ),
        (json!({"url": "http://127.0.0.1:9/h"}), "must use https://"),
        (
            json!({"url": "https://u:p@app.example.com/h"}),
            "credentials",
        ),
        (json!({"url": 5}), "'url' must be a string"),
        (
            json!({"url": "https://a.example.com", "events": ["user.made"]}),
            "unknown event type",
        ),
        (
            json!({"url": "https://a.example.com", "events": []}),
            "at least one",
        ),
        (
            json!({"url": "https://a.example.com", "format": "xml"}),
            "'format'",
        ),
        (
            json!({"url": "https://a.example.com", "format": "set", "delivery": "poll"}),
            "has no 'url'",
        ),
        (json!({"delivery": "poll"}), "'delivery'"),
        (json!({"format": "set"}), "'url' is required"),
        (
            json!({"url": "https://a.example.com", "secret": "x"}),
            "unknown field 'secret'",
        ),
    ] {
        let r = h.admin(Method::Post, HOOKS, Some(body.clone()));
        assert_eq!(r.status, 400, "{body}");
        let msg = r.body_json()["message"].as_str().unwrap().to_string();
        assert!(msg.contains(says), "{body}: {msg}");
    }
    assert_eq!(
        h.s.db.query("SELECT count(*) AS n FROM webhooks")[0]["n"],
        json!(0)
    );
    // Loopback http only with the development switch.
    h.s.config.webhook_loopback_http = true;
    h.endpoint(json!({"url": "http://127.0.0.1:9/h"}));
    let r = h.admin(
        Method::Post,
        HOOKS,
        Some(json!({"url": "http://example.com/h"})),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn every_event_type_arrives_signed_with_the_resource_or_its_ids() {
    let mut h = new();
    let (endpoint, key) = h.endpoint(json!({"url": "https://app.example.com/hooks"}));
    // Events from before the endpoint existed are not sent.
    let r = h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "early"})),
    );
    assert_eq!(r.status, 201);
    let early = r.body_json()["id"].as_str().unwrap().to_string();
    h.s.db
        .query("UPDATE webhooks SET enqueued_seq = (SELECT max(seq) FROM events)");

    let r = h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "ada", "active": true, "password": "hunter2"})),
    );
    let user = r.body_json()["id"].as_str().unwrap().to_string();
    let got = h.flush();
    assert_eq!(types(&got), ["user.created"]);
    let b = &got[0];
    assert_eq!(b["data"]["userName"], json!("ada"));
    assert_eq!(b["data"]["id"], json!(user));
    assert_eq!(b["tenant"], json!("default"));
    assert!(b["data"].get("password").is_none());
    assert!(!String::from_utf8_lossy(&h.rx.got.borrow()[0].body).contains("hunter2"));
    assert_eq!(
        b["data"]["meta"]["location"],
        json!(format!("https://scim.test/t/default/scim/v2/Users/{user}"))
    );
    let seq = b["seq"].as_i64().unwrap();
    assert_eq!(b["id"], json!(format!("evt_{seq}_user.created")));
    // The signature verifies over id.timestamp.body with the secret's key.
    let g = h.rx.got.borrow()[0].clone();
    assert_eq!(g.url, "https://app.example.com/hooks");
    assert_eq!(g.header("webhook-id"), b["id"].as_str().unwrap());
    let ts: i64 = g.header("webhook-timestamp").parse().unwrap();
    assert_eq!(ts, h.s.now_ms / 1000);
    assert_eq!(
        g.header("webhook-signature"),
        crypto::sign(&key, g.header("webhook-id"), ts, &g.body).unwrap()
    );

    let ops = |v: &str| patch(json!([{"op": "Replace", "path": "active", "value": v}]));
    h.scim(Method::Patch, &format!("/Users/{user}"), Some(ops("False")));
    let got = h.flush();
    assert_eq!(types(&got), ["user.deactivated"]);
    assert_eq!(got[0]["changed"], json!(["active"]));
    assert_eq!(got[0]["data"]["active"], json!(false));
    h.scim(Method::Patch, &format!("/Users/{user}"), Some(ops("True")));
    assert_eq!(types(&h.flush()), ["user.reactivated"]);
    h.scim(
        Method::Patch,
        &format!("/Users/{user}"),
        Some(patch(
            json!([{"op": "replace", "path": "displayName", "value": "Ada"}]),
        )),
    );
    let got = h.flush();
    assert_eq!(types(&got), ["user.updated"]);
    assert_eq!(got[0]["changed"], json!(["displayName"]));
    // A PUT that deactivates is a deactivation too.
    let r = h.scim(
        Method::Put,
        &format!("/Users/{user}"),
        Some(json!({"schemas": [USER_SCHEMA], "userName": "ada", "active": false})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(types(&h.flush()), ["user.deactivated"]);

    let r = h.scim(
        Method::Post,
        "/Groups",
        Some(
            json!({"schemas": [GROUP_SCHEMA], "displayName": "eng", "members": [{"value": user}]}),
        ),
    );
    let group = r.body_json()["id"].as_str().unwrap().to_string();
    let got = h.flush();
    assert_eq!(types(&got), ["group.created"]);
    assert_eq!(got[0]["data"]["members"][0]["value"], json!(user));
    let r = h.scim(
        Method::Patch,
        &format!("/Groups/{group}"),
        Some(patch(json!([
            {"op": "add", "path": "members", "value": [{"value": early}, {"value": user}]},
        ]))),
    );
    assert!(r.status < 300, "{}", String::from_utf8_lossy(&r.body));
    let got = h.flush();
    assert_eq!(types(&got), ["group.member_added"]);
    // Only the member that was not one already.
    assert_eq!(got[0]["data"], json!({"id": group, "members": [early]}));
    h.scim(
        Method::Patch,
        &format!("/Groups/{group}"),
        Some(patch(json!([
            {"op": "remove", "path": format!("members[value eq \"{user}\"]")},
            {"op": "replace", "path": "displayName", "value": "engineering"},
        ]))),
    );
    let got = h.flush();
    assert_eq!(types(&got), ["group.updated", "group.member_removed"]);
    assert_eq!(got[1]["data"], json!({"id": group, "members": [user]}));
    assert_eq!(got[0]["data"]["displayName"], json!("engineering"));
    // PUT replaces the member list: one added, one removed.
    h.scim(Method::Put, &format!("/Groups/{group}"), Some(json!({"schemas": [GROUP_SCHEMA], "displayName": "engineering", "members": [{"value": user}]})));
    let got = h.flush();
    assert_eq!(
        types(&got),
        [
            "group.updated",
            "group.member_added",
            "group.member_removed"
        ]
    );
    assert_eq!(got[1]["data"]["members"], json!([user]));
    assert_eq!(got[2]["data"]["members"], json!([early]));

    h.scim(Method::Delete, &format!("/Groups/{group}"), None);
    h.scim(Method::Delete, &format!("/Users/{user}"), None);
    let got = h.flush();
    assert_eq!(types(&got), ["group.deleted", "user.deleted"]);
    assert_eq!(got[1]["data"], json!({"id": user}));
    // Failed writes send nothing.
    let r = h.scim(Method::Delete, &format!("/Users/{user}"), None);
    assert_eq!(r.status, 404);
    assert!(h.flush().is_empty());
    // Everything is in the delivery log as delivered.
    let log = h
        .admin(Method::Get, &format!("{HOOKS}/{endpoint}/deliveries"), None)
        .body_json();
    let rows = log["deliveries"].as_array().unwrap();
    assert_eq!(rows.len(), 14);
    assert!(rows
        .iter()
        .all(|r| r["status"] == json!("delivered") && r["attempts"] == json!(1)));
}

#[test]
fn a_filter_limits_what_an_endpoint_gets() {
    let mut h = new();
    h.endpoint(json!({"url": "https://a.example.com/h", "events": ["user.deactivated"]}));
    let r = h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "f"})),
    );
    let id = r.body_json()["id"].as_str().unwrap().to_string();
    assert!(h.flush().is_empty());
    h.scim(
        Method::Patch,
        &format!("/Users/{id}"),
        Some(patch(
            json!([{"op": "replace", "path": "active", "value": false}]),
        )),
    );
    assert_eq!(types(&h.flush()), ["user.deactivated"]);
}

#[test]
fn a_failing_receiver_is_retried_with_backoff_logged_and_deduplicated() {
    let mut h = new();
    let (endpoint, _) = h.endpoint(json!({"url": "https://a.example.com/h"}));
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "r"})),
    );
    let q = h.sweep().pop().unwrap();
    *h.rx.script.borrow_mut() = vec![500, 503];
    let s = Settings::default();
    assert_eq!(h.deliver(&q, &s), Verdict::Retry { delay_secs: 30 });
    assert_eq!(h.deliver(&q, &s), Verdict::Retry { delay_secs: 60 });
    let log = h
        .admin(Method::Get, &format!("{HOOKS}/{endpoint}/deliveries"), None)
        .body_json();
    let row = &log["deliveries"][0];
    assert_eq!(row["status"], json!("retrying"));
    assert_eq!(row["attempts"], json!(2));
    assert_eq!(row["lastStatus"], json!(503));
    assert_eq!(row["lastError"], json!("the endpoint answered 503"));
    assert_eq!(row["latencyMs"], json!(3));
    let ep = h
        .admin(Method::Get, &format!("{HOOKS}/{endpoint}"), None)
        .body_json();
    assert!(ep["failingSince"].is_string());
    assert_eq!(h.deliver(&q, &s), Verdict::Ack);
    let row = &h
        .admin(Method::Get, &format!("{HOOKS}/{endpoint}/deliveries"), None)
        .body_json()["deliveries"][0];
    assert_eq!(
        (row["status"].clone(), row["attempts"].clone()),
        (json!("delivered"), json!(3))
    );
    let ep = h
        .admin(Method::Get, &format!("{HOOKS}/{endpoint}"), None)
        .body_json();
    assert_eq!(ep["failingSince"], Value::Null);
    // A duplicate message (at least once) is acknowledged without a second POST.
    assert_eq!(h.deliver(&q, &s), Verdict::Ack);
    assert_eq!(h.rx.got.borrow().len(), 3);
    // Each attempt carried the same id (receivers deduplicate by it).
    let ids: Vec<String> =
        h.rx.got
            .borrow()
            .iter()
            .map(|g| g.header("webhook-id").to_string())
            .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    // Backoff doubles up to the queue's 12 h maximum.
    assert_eq!(s.delay(1), 30);
    assert_eq!(s.delay(5), 480);
    assert_eq!(s.delay(12), 43_200);
    assert_eq!(s.delay(40), 43_200);
}

#[test]
fn an_endpoint_failing_for_days_is_disabled_with_the_reason() {
    let mut h = new();
    let (endpoint, _) = h.endpoint(json!({"url": "https://a.example.com/h"}));
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "d"})),
    );
    let q = h.sweep().pop().unwrap();
    *h.rx.script.borrow_mut() = vec![500; 10];
    let s = Settings::default();
    assert!(matches!(h.deliver(&q, &s), Verdict::Retry { .. }));
    h.s.now_ms += DISABLE_AFTER_MS - 60_000;
    assert!(matches!(h.deliver(&q, &s), Verdict::Retry { .. }));
    h.s.now_ms += 120_000;
    assert_eq!(h.deliver(&q, &s), Verdict::Ack);
    let ep = h
        .admin(Method::Get, &format!("{HOOKS}/{endpoint}"), None)
        .body_json();
    assert_eq!(ep["enabled"], json!(false));
    assert!(
        ep["disabledReason"]
            .as_str()
            .unwrap()
            .contains("failed for 3 days"),
        "{ep}"
    );
    // A disabled endpoint is sent nothing more; its messages are logged dead.
    let sent = h.rx.got.borrow().len();
    assert_eq!(h.deliver(&q, &s), Verdict::Ack);
    assert_eq!(h.rx.got.borrow().len(), sent);
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "d2"})),
    );
    assert!(h.sweep().is_empty());
    let row = &h
        .admin(Method::Get, &format!("{HOOKS}/{endpoint}/deliveries"), None)
        .body_json()["deliveries"][0];
    assert_eq!(row["status"], json!("dead"));
    assert_eq!(row["lastError"], json!("endpoint disabled"));
    // Enabled again, it gets what happened while it was disabled (nothing was queued then).
    h.rx.script.borrow_mut().clear();
    let r = h.admin(
        Method::Patch,
        &format!("{HOOKS}/{endpoint}"),
        Some(json!({"enabled": true})),
    );
    assert_eq!(r.body_json()["disabledReason"], Value::Null);
    let names: Vec<String> = h
        .flush()
        .iter()
        .map(|b| b["data"]["userName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["d2"]);
}

#[test]
fn with_cursor_secret_set_the_signing_keys_are_sealed_under_it() {
    let mut h = new();
    h.s.config.cursor_secret = Some("operator-chosen-secret".into());
    let (_, key) = h.endpoint(json!({"url": "https://a.example.com/h"}));
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "cs"})),
    );
    assert_eq!(types(&h.flush()), ["user.created"]);
    let g = h.rx.got.borrow()[0].clone();
    let ts: i64 = g.header("webhook-timestamp").parse().unwrap();
    assert_eq!(
        g.header("webhook-signature"),
        crypto::sign(&key, g.header("webhook-id"), ts, &g.body).unwrap()
    );
    // No D1 secret was made, and each delivery read nothing it does not need.
    let n =
        h.s.db
            .query("SELECT count(*) AS n FROM deployment_secrets WHERE name = 'webhooks'");
    assert_eq!(n[0]["n"], json!(0));
    // A changed CURSOR_SECRET cannot open the stored keys: the delivery is retried (and the
    // operator told), never sent unsigned or signed with something else.
    h.s.config.cursor_secret = Some("another".into());
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "cs2"})),
    );
    let q = h.sweep().pop().unwrap();
    let out = block_on(deliver::deliver(
        &h.s.db,
        &h.rx,
        None,
        &h.s.config,
        &Settings::default(),
        &q,
        h.s.now_ms,
    ));
    assert!(matches!(out.verdict, Verdict::Retry { .. }));
    assert!(out.note.unwrap().contains("CURSOR_SECRET"));
    assert_eq!(h.rx.got.borrow().len(), 1);
}

#[test]
fn a_failed_enqueue_loses_nothing_and_a_lost_mark_only_repeats() {
    let mut h = new();
    h.endpoint(json!({"url": "https://a.example.com/h"}));
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "s1"})),
    );
    *h.queue.fail.borrow_mut() = true;
    assert!(block_on(deliver::sweep(&h.s.db, &h.queue, h.s.now_ms)).is_err());
    *h.queue.fail.borrow_mut() = false;
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "s2"})),
    );
    let got = h.flush();
    let names: Vec<&str> = got
        .iter()
        .map(|b| b["data"]["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["s1", "s2"]);
    // Sent but not marked (a crash in between): sent again, delivered once.
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "s3"})),
    );
    let first = h.sweep();
    h.s.db
        .query("UPDATE webhooks SET enqueued_seq = enqueued_seq - 1");
    h.s.db
        .query("DELETE FROM webhook_deliveries WHERE attempts = 0");
    let again = h.sweep();
    assert_eq!(first, again);
    let before = h.rx.got.borrow().len();
    for q in first.iter().chain(&again) {
        assert_eq!(h.deliver(q, &Settings::default()), Verdict::Ack);
    }
    assert_eq!(h.rx.got.borrow().len(), before + 1);
    assert!(h.sweep().is_empty());
}

#[test]
fn a_rotation_signs_with_both_secrets_until_the_overlap_ends() {
    let mut h = new();
    let (endpoint, old) = h.endpoint(json!({"url": "https://a.example.com/h"}));
    let r = h.admin(
        Method::Post,
        &format!("{HOOKS}/{endpoint}/rotate"),
        Some(json!({"overlapSeconds": 3600})),
    );
    assert_eq!(r.status, 200);
    let new_key = STANDARD
        .decode(
            r.body_json()["secret"]
                .as_str()
                .unwrap()
                .strip_prefix("whsec_")
                .unwrap(),
        )
        .unwrap();
    assert_ne!(new_key, old);
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "rot"})),
    );
    h.flush();
    let g = h.rx.got.borrow().last().unwrap().clone();
    let ts: i64 = g.header("webhook-timestamp").parse().unwrap();
    let id = g.header("webhook-id");
    let expect = format!(
        "{} {}",
        crypto::sign(&new_key, id, ts, &g.body).unwrap(),
        crypto::sign(&old, id, ts, &g.body).unwrap()
    );
    assert_eq!(g.header("webhook-signature"), expect);
    // After the overlap: the new secret only.
    h.s.now_ms += 3_600_000;
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "rot2"})),
    );
    h.flush();
    let g = h.rx.got.borrow().last().unwrap().clone();
    let ts: i64 = g.header("webhook-timestamp").parse().unwrap();
    assert_eq!(
        g.header("webhook-signature"),
        crypto::sign(&new_key, g.header("webhook-id"), ts, &g.body).unwrap()
    );
    let r = h.admin(
        Method::Post,
        &format!("{HOOKS}/{endpoint}/rotate"),
        Some(json!({"overlapSeconds": -1})),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn redelivery_sends_one_event_or_a_time_range_again() {
    let mut h = new();
    let (endpoint, _) = h.endpoint(json!({"url": "https://a.example.com/h"}));
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "a1"})),
    );
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "a2"})),
    );
    let got = h.flush();
    let seq = got[0]["seq"].as_i64().unwrap();
    let path = format!("{HOOKS}/{endpoint}/redeliver");
    let r = h.admin(Method::Post, &path, Some(json!({"seq": seq})));
    assert_eq!((r.status, r.body_json()["queued"].clone()), (202, json!(1)));
    let again = h.flush();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["id"], got[0]["id"]);
    let r = h.admin(
        Method::Post,
        &path,
        Some(json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"})),
    );
    assert_eq!(r.body_json()["queued"], json!(2));
    assert_eq!(h.flush().len(), 2);
    for bad in [
        json!({}),
        json!({"seq": "x"}),
        json!({"from": "yesterday"}),
        json!({"all": true}),
    ] {
        assert_eq!(
            h.admin(Method::Post, &path, Some(bad.clone())).status,
            400,
            "{bad}"
        );
    }
    assert_eq!(
        h.admin(
            Method::Post,
            &format!("{HOOKS}/wh_nope/redeliver"),
            Some(json!({"seq": 1}))
        )
        .status,
        404
    );
}

#[test]
fn webhooks_cost_a_scim_write_no_round_trip() {
    let mut h = new();
    let body = |n: &str| json!({"schemas": [USER_SCHEMA], "userName": n});
    // The tenant's profile is read once per isolate and TTL (crate::service::profile).
    h.scim(Method::Get, "/Schemas", None);
    let before = h.s.db.round_trips.get();
    h.scim(Method::Post, "/Users", Some(body("w1")));
    let without = h.s.db.round_trips.get() - before;
    h.endpoint(json!({"url": "https://a.example.com/h"}));
    let before = h.s.db.round_trips.get();
    h.scim(Method::Post, "/Users", Some(body("w2")));
    assert_eq!(h.s.db.round_trips.get() - before, without);
}

#[test]
fn a_dead_lettered_message_is_logged_dead_keeping_its_last_answer() {
    let mut h = new();
    let (endpoint, _) = h.endpoint(json!({"url": "https://a.example.com/h"}));
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "dl"})),
    );
    let q = h.sweep().pop().unwrap();
    *h.rx.script.borrow_mut() = vec![502];
    assert!(matches!(
        h.deliver(&q, &Settings::default()),
        Verdict::Retry { .. }
    ));
    block_on(deliver::dead_letter(&h.s.db, &q, h.s.now_ms)).unwrap();
    let log = h
        .admin(Method::Get, &format!("{HOOKS}/{endpoint}/deliveries"), None)
        .body_json();
    let row = &log["deliveries"][0];
    assert_eq!(row["status"], json!("dead"));
    assert_eq!(row["attempts"], json!(1));
    assert_eq!(row["lastStatus"], json!(502));
    assert_eq!(
        row["lastError"],
        json!("out of retries: moved to the dead-letter queue")
    );
    let dead = h
        .admin(
            Method::Get,
            &format!("{HOOKS}/{endpoint}/deliveries?status=dead"),
            None,
        )
        .body_json();
    assert_eq!(dead["deliveries"].as_array().unwrap().len(), 1);
    let r = h.admin(
        Method::Get,
        &format!("{HOOKS}/{endpoint}/deliveries?status=lost"),
        None,
    );
    assert_eq!(r.status, 400);
}

// ---- RFC 9967 security event tokens (`format: "set"`) ----

/// Checks an HS256 JWS compact token with `key` as any JWT library would; its header and
/// claims.
fn verify_set(token: &str, key: &[u8]) -> (Value, Value) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, Mac};
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap())
        .expect("signed with this key");
    let part = |i: usize| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[i]).unwrap()).unwrap()
    };
    (part(0), part(1))
}

const PROV: &str = "urn:ietf:params:scim:event:prov:";

impl H {
    /// Sweeps and delivers everything queued once; the POSTs received.
    fn flush_raw(&mut self) -> Vec<Got> {
        let before = self.rx.got.borrow().len();
        for q in self.sweep() {
            assert_eq!(self.deliver(&q, &Settings::default()), Verdict::Ack);
        }
        self.rx.got.borrow()[before..].to_vec()
    }
    fn poll(&mut self, stream: &str, body: Value) -> Response {
        self.s.call(
            Method::Post,
            &format!("/scim/v2/Events/{stream}"),
            TOKEN,
            Some(body),
        )
    }
}

fn uris(claims: &Value) -> Vec<String> {
    claims["events"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn set_endpoints_get_one_signed_set_per_change_pushed_per_rfc_8935() {
    let mut h = new();
    let url = "https://app.example.com/secevents";
    let (endpoint, key) = h.endpoint(json!({"url": url, "format": "set"}));
    let created = h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "ada", "externalId": "ext-ada"})),
    );
    let uid = created.body_json()["id"].as_str().unwrap().to_string();
    let rid = created.header("x-request-id").unwrap().to_string();
    let off = patch(json!([{"op": "replace", "path": "active", "value": false}]));
    assert_eq!(
        h.scim(Method::Patch, &format!("/Users/{uid}"), Some(off))
            .status,
        200
    );
    let g = h.scim(
        Method::Post,
        "/Groups",
        Some(json!({"schemas": [GROUP_SCHEMA], "displayName": "Ops"})),
    );
    let gid = g.body_json()["id"].as_str().unwrap().to_string();
    let add = patch(json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]));
    assert_eq!(
        h.scim(Method::Patch, &format!("/Groups/{gid}"), Some(add))
            .status,
        204
    );
    let mut got = h.flush_raw();
    assert_eq!(
        h.scim(Method::Delete, &format!("/Users/{uid}"), None)
            .status,
        204
    );
    // The resource is gone: the externalId the delete recorded (RFC 9967 §2.1).
    got.extend(h.flush_raw());
    assert_eq!(got.len(), 5, "one SET per change");
    let seqs: Vec<i64> =
        h.s.db
            .query("SELECT seq FROM events ORDER BY seq")
            .iter()
            .map(|r| r["seq"].as_i64().unwrap())
            .collect();
    let mut all = Vec::new();
    for (g, seq) in got.iter().zip(&seqs) {
        assert_eq!(g.url, url);
        assert_eq!(g.header("content-type"), "application/secevent+jwt");
        assert_eq!(g.header("accept"), "application/json");
        assert!(g.headers.iter().all(|(k, _)| !k.starts_with("webhook-")));
        let (header, claims) = verify_set(std::str::from_utf8(&g.body).unwrap(), &key);
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["typ"], "secevent+jwt");
        assert_eq!(header["kid"], crate::proto::secevent::key_id(&key));
        assert_eq!(claims["iss"], "https://scim.test/t/default/scim/v2");
        assert_eq!(claims["aud"], url);
        assert_eq!(claims["jti"], format!("set_{seq}"));
        assert!(claims["iat"].as_i64().unwrap() <= h.s.now_ms / 1000);
        assert!(claims["toe"].as_i64().unwrap() <= claims["iat"].as_i64().unwrap());
        assert!(claims.get("sub").is_none());
        all.push(claims);
    }
    let c = &all[0];
    assert_eq!(uris(c), [format!("{PROV}create:notice")]);
    assert_eq!(c["txn"], rid);
    assert_eq!(
        c["sub_id"],
        json!({"format": "scim", "uri": format!("/Users/{uid}"), "id": uid, "externalId": "ext-ada"})
    );
    assert!(c["events"][format!("{PROV}create:notice")]["attributes"]
        .as_array()
        .unwrap()
        .contains(&json!("userName")));
    assert_eq!(
        uris(&all[1]),
        [format!("{PROV}deactivate"), format!("{PROV}patch:notice")]
    );
    assert_eq!(
        all[1]["events"][format!("{PROV}patch:notice")],
        json!({"attributes": ["active"]})
    );
    assert_eq!(uris(&all[2]), [format!("{PROV}create:notice")]);
    assert_eq!(all[2]["sub_id"]["uri"], format!("/Groups/{gid}"));
    assert_eq!(all[3]["sub_id"]["uri"], format!("/Groups/{gid}"));
    assert_eq!(
        all[3]["events"],
        json!({format!("{PROV}patch:notice"): {"attributes": ["members"]}})
    );
    assert_eq!(uris(&all[4]), [format!("{PROV}delete")]);
    let sub = json!({"format": "scim", "uri": format!("/Users/{uid}"), "id": uid, "externalId": "ext-ada"});
    assert_eq!(all[1]["sub_id"], sub);
    assert_eq!(all[4]["sub_id"], sub);
    assert_eq!(all[4]["events"][format!("{PROV}delete")], json!({}));
    // Every URI issued is advertised (RFC 9967 §4), and only SETs are.
    let spc = h
        .scim(Method::Get, "/ServiceProviderConfig", None)
        .body_json();
    assert_eq!(spc["securityEvents"]["asyncRequest"], "none");
    let advertised = spc["securityEvents"]["eventUris"]
        .as_array()
        .unwrap()
        .clone();
    for u in all.iter().flat_map(uris) {
        assert!(advertised.contains(&json!(u)), "{u}");
    }
    // The delivery log names the SETs by their jti.
    let log = h
        .admin(Method::Get, &format!("{HOOKS}/{endpoint}/deliveries"), None)
        .body_json();
    let ids: Vec<&str> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.contains(&format!("set_{}", seqs[0]).as_str()));
}

#[test]
fn a_set_endpoint_keeps_its_filter_retries_and_redelivery() {
    let mut h = new();
    let (endpoint, key) = h.endpoint(json!({
        "url": "https://app.example.com/s", "format": "set", "events": ["user.deactivated"]
    }));
    let u = h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "bo"})),
    );
    let uid = u.body_json()["id"].as_str().unwrap().to_string();
    let off = patch(json!([{"op": "replace", "path": "active", "value": false}]));
    h.scim(Method::Patch, &format!("/Users/{uid}"), Some(off));
    let queued = h.sweep();
    assert_eq!(queued.len(), 1, "only the deactivation is wanted");
    assert_eq!(queued[0].kind, "set");
    *h.rx.script.borrow_mut() = vec![500];
    let settings = Settings::default();
    assert!(matches!(
        h.deliver(&queued[0], &settings),
        Verdict::Retry { .. }
    ));
    assert_eq!(h.deliver(&queued[0], &settings), Verdict::Ack);
    // A duplicate message is not sent again.
    assert_eq!(h.deliver(&queued[0], &settings), Verdict::Ack);
    let got = h.rx.got.borrow().clone();
    assert_eq!(got.len(), 2);
    let (_, first) = verify_set(std::str::from_utf8(&got[0].body).unwrap(), &key);
    let (_, second) = verify_set(std::str::from_utf8(&got[1].body).unwrap(), &key);
    assert_eq!(first["jti"], second["jti"], "a retry keeps the jti");
    let r = h.admin(
        Method::Post,
        &format!("{HOOKS}/{endpoint}/redeliver"),
        Some(json!({"seq": queued[0].seq})),
    );
    assert_eq!(r.body_json()["queued"], json!(1));
    let again = h.sweep();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].kind, "set");
}

#[test]
fn during_a_rotation_the_previous_key_signs_a_set_named_by_its_kid() {
    let mut h = new();
    let (endpoint, old) = h.endpoint(json!({"url": "https://a.example.com/s", "format": "set"}));
    let r = h.admin(
        Method::Post,
        &format!("{HOOKS}/{endpoint}/rotate"),
        Some(json!({"overlapSeconds": 3600})),
    );
    let b = r.body_json();
    let new_key = STANDARD
        .decode(
            b["secret"]
                .as_str()
                .unwrap()
                .strip_prefix("whsec_")
                .unwrap(),
        )
        .unwrap();
    assert_eq!(b["keyId"], crate::proto::secevent::key_id(&new_key));
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "r1"})),
    );
    let g = h.flush_raw().pop().unwrap();
    let (header, _) = verify_set(std::str::from_utf8(&g.body).unwrap(), &old);
    assert_eq!(header["kid"], crate::proto::secevent::key_id(&old));
    h.s.now_ms += 3_600_000;
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "r2"})),
    );
    let g = h.flush_raw().pop().unwrap();
    let (header, _) = verify_set(std::str::from_utf8(&g.body).unwrap(), &new_key);
    assert_eq!(header["kid"], crate::proto::secevent::key_id(&new_key));
}

#[test]
fn a_poll_stream_serves_unacknowledged_sets_until_acknowledged() {
    let mut h = new();
    let r = h.admin(
        Method::Post,
        HOOKS,
        Some(json!({"format": "set", "delivery": "poll"})),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let b = r.body_json();
    let stream = b["id"].as_str().unwrap().to_string();
    assert_eq!(b["delivery"], "poll");
    assert_eq!(b["url"], Value::Null);
    let poll_url = format!("https://scim.test/t/default/scim/v2/Events/{stream}");
    assert_eq!(b["pollUrl"], poll_url);
    let key = STANDARD
        .decode(
            b["secret"]
                .as_str()
                .unwrap()
                .strip_prefix("whsec_")
                .unwrap(),
        )
        .unwrap();
    for n in 0..3 {
        h.scim(
            Method::Post,
            "/Users",
            Some(json!({"schemas": [USER_SCHEMA], "userName": format!("p{n}")})),
        );
    }
    assert!(h.sweep().is_empty(), "a poll stream is never queued");
    let r = h.poll(&stream, json!({"maxEvents": 2, "returnImmediately": true}));
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let b = r.body_json();
    assert_eq!(b["moreAvailable"], json!(true));
    let sets = b["sets"].as_object().unwrap().clone();
    assert_eq!(sets.len(), 2);
    for (jti, token) in &sets {
        let (_, claims) = verify_set(token.as_str().unwrap(), &key);
        assert_eq!(&claims["jti"], jti);
        assert_eq!(claims["aud"], poll_url);
        assert_eq!(claims["iss"], "https://scim.test/t/default/scim/v2");
        assert_eq!(uris(&claims), [format!("{PROV}create:notice")]);
    }
    let jtis: Vec<String> = sets.keys().cloned().collect();
    // Not acknowledged: served again.
    let again = h.poll(&stream, json!({"maxEvents": 2})).body_json();
    assert_eq!(again["sets"].as_object().unwrap().len(), 2);
    // Acknowledge one, report an error on the other: the third comes next.
    let b = h
        .poll(
            &stream,
            json!({"ack": [jtis[0]], "setErrs": {jtis[1].clone(): {"err": "invalid_audience", "description": "not us"}}}),
        )
        .body_json();
    let rest: Vec<&String> = b["sets"].as_object().unwrap().keys().collect();
    assert_eq!(rest.len(), 1);
    assert!(!jtis.contains(rest[0]));
    assert_eq!(b["moreAvailable"], json!(false));
    let b = h.poll(&stream, json!({"ack": [rest[0]]})).body_json();
    assert_eq!(b, json!({"sets": {}, "moreAvailable": false}));
    // The delivery log holds the acknowledgements and the reported error.
    let log = h
        .admin(Method::Get, &format!("{HOOKS}/{stream}/deliveries"), None)
        .body_json();
    let dead: Vec<&Value> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "dead")
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["eventId"], jtis[1].as_str());
    assert!(dead[0]["lastError"]
        .as_str()
        .unwrap()
        .contains("invalid_audience"));
    // New events after the floor moved.
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "p9"})),
    );
    let b = h.poll(&stream, json!({})).body_json();
    assert_eq!(b["sets"].as_object().unwrap().len(), 1);
}

#[test]
fn a_poll_needs_the_tenants_token_and_its_own_stream() {
    let mut h = new();
    let (push, _) = h.endpoint(json!({"url": "https://a.example.com/s", "format": "set"}));
    let r = h.admin(
        Method::Post,
        HOOKS,
        Some(json!({"format": "set", "delivery": "poll"})),
    );
    let stream = r.body_json()["id"].as_str().unwrap().to_string();
    let path = format!("/scim/v2/Events/{stream}");
    let filtered = json!({"format": "set", "delivery": "poll", "events": ["user.created"]});
    assert_eq!(h.admin(Method::Post, HOOKS, Some(filtered)).status, 400);
    assert_eq!(
        h.s.call(Method::Post, &path, "wrong", Some(json!({})))
            .status,
        401
    );
    assert_eq!(
        h.s.call(Method::Post, &path, ADMIN, Some(json!({}))).status,
        401
    );
    assert_eq!(
        h.poll(&push, json!({})).status,
        404,
        "a push endpoint is not polled"
    );
    assert_eq!(h.poll("wh_nope", json!({})).status, 404);
    assert_eq!(
        h.scim(Method::Get, &format!("/Events/{stream}"), None)
            .status,
        405
    );
    assert_eq!(h.poll(&stream, json!({"maxEvents": "1"})).status, 400);
    let r = h.admin(
        Method::Patch,
        &format!("{HOOKS}/{stream}"),
        Some(json!({"enabled": false})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(h.poll(&stream, json!({})).status, 403);
    let r = h.admin(
        Method::Post,
        &format!("{HOOKS}/{stream}/redeliver"),
        Some(json!({"seq": 1})),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn a_set_endpoint_failing_for_days_is_disabled_like_a_json_one() {
    let mut h = new();
    let (endpoint, _) = h.endpoint(json!({"url": "https://a.example.com/s", "format": "set"}));
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "sd"})),
    );
    let q = h.sweep().pop().unwrap();
    assert_eq!(q.kind, "set");
    *h.rx.script.borrow_mut() = vec![503; 10];
    let s = Settings::default();
    assert!(matches!(h.deliver(&q, &s), Verdict::Retry { .. }));
    h.s.now_ms += DISABLE_AFTER_MS + 60_000;
    assert_eq!(h.deliver(&q, &s), Verdict::Ack);
    let ep = h
        .admin(Method::Get, &format!("{HOOKS}/{endpoint}"), None)
        .body_json();
    assert_eq!(ep["enabled"], json!(false));
    assert!(ep["disabledReason"]
        .as_str()
        .unwrap()
        .contains("the endpoint answered 503"));
    h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "sd2"})),
    );
    assert!(h.sweep().is_empty());
}

// ---- deletion policies (issue 18 item 2) ----

#[test]
fn soft_delete_restore_and_purge_are_told_apart_in_json_and_set_events() {
    let mut h = new();
    let r = h.admin(
        Method::Patch,
        "/admin/api/tenants/default",
        Some(json!({"deletion": {"policy": "soft", "days": 1}})),
    );
    assert_eq!(r.status, 200);
    h.endpoint(json!({"url": "https://app.example.com/hooks"}));
    let (_, key) = h.endpoint(json!({"url": "https://app.example.com/sets", "format": "set"}));
    let r = h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "ada", "externalId": "ext-ada", "active": true})),
    );
    let uid = r.body_json()["id"].as_str().unwrap().to_string();
    let off = patch(json!([{"op": "replace", "path": "active", "value": false}]));
    assert_eq!(
        h.scim(Method::Patch, &format!("/Users/{uid}"), Some(off))
            .status,
        200
    );
    assert_eq!(
        h.scim(Method::Delete, &format!("/Users/{uid}"), None)
            .status,
        204
    );
    let restore = format!("/admin/api/tenants/default/tombstones/{uid}/restore");
    assert_eq!(h.admin(Method::Post, &restore, None).status, 200);
    // Delivered while the user exists: `data` is the resource as it is at delivery.
    let mut got = h.flush_raw();
    assert_eq!(
        h.scim(Method::Delete, &format!("/Users/{uid}"), None)
            .status,
        204
    );
    let later = crate::proto::time::format_millis(h.s.now_ms + 2 * 86_400_000);
    block_on(crate::store::Db::batch(
        &h.s.db,
        crate::store::tombstones::purge_stmts(&later),
    ))
    .unwrap();

    got.extend(h.flush_raw());
    let (json_bodies, sets): (Vec<&Got>, Vec<&Got>) =
        got.iter().partition(|g| g.url.ends_with("/hooks"));
    let bodies: Vec<Value> = json_bodies.iter().map(|g| g.json()).collect();
    assert_eq!(
        types(&bodies),
        [
            "user.created",
            "user.deactivated",
            "user.deleted",
            "user.restored",
            "user.deleted",
            "user.purged"
        ]
    );
    assert_eq!(bodies[2]["data"], json!({"id": uid, "restorable": true}));
    assert_eq!(bodies[3]["data"]["userName"], json!("ada"));
    assert_eq!(bodies[5]["data"], json!({"id": uid}));
    // SETs: the restore rejoins the feed as a create under the same id; a purge, which
    // changes nothing SCIM can see, sends none.
    let uris_of: Vec<Vec<String>> = sets
        .iter()
        .map(|g| uris(&verify_set(std::str::from_utf8(&g.body).unwrap(), &key).1))
        .collect();
    assert_eq!(
        uris_of,
        [
            vec![format!("{PROV}create:notice")],
            vec![format!("{PROV}deactivate"), format!("{PROV}patch:notice")],
            vec![format!("{PROV}delete")],
            vec![format!("{PROV}create:notice")],
            vec![format!("{PROV}delete")],
        ]
    );
}
