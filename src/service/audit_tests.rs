//! The provisioning log through the whole request path: every write leaves exactly one event
//! (in the write's own batch on success), failures are recorded, and the change feed pages
//! through them without skipping or repeating.

use crate::proto::schema::USER_SCHEMA;
use crate::service::ctx::Ctx;
use crate::service::handle;
use crate::service::http::{Method, Request, Response};
use crate::testing::{block_on, Server};
use serde_json::{json, Value};

const TOKEN: &str = "audit-test-token";
const ADMIN: &str = "audit-admin-token";

type H = Server;

fn new_server() -> H {
    Server::new(&[TOKEN], Some(ADMIN))
}

fn scim(h: &mut H, method: Method, path: &str, body: Option<Value>) -> Response {
    h.call(method, &format!("/scim/v2{path}"), TOKEN, body)
}

fn feed(h: &mut H, query: &str) -> Value {
    let r = h.call(
        Method::Get,
        &format!("/admin/api/tenants/default/events{query}"),
        ADMIN,
        None,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.body_json()
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

#[test]
fn every_write_leaves_one_event_in_its_own_round_trip() {
    let mut h = new_server();
    // The tenant's profile is read once per isolate and TTL (crate::service::profile).
    scim(&mut h, Method::Get, "/Schemas", None);
    let before = h.db.round_trips.get();
    let r = scim(
        &mut h,
        Method::Post,
        "/Users",
        Some(
            json!({"schemas": [USER_SCHEMA], "userName": "log.me", "active": true, "name": {"givenName": "L"}}),
        ),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        h.db.round_trips.get() - before,
        1,
        "the event is written in the create's batch"
    );
    let id = r.body_json()["id"].as_str().expect("id").to_string();
    let rid = r.header("x-request-id").expect("request id").to_string();

    let r = scim(
        &mut h,
        Method::Patch,
        &format!("/Users/{id}"),
        Some(patch(
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )),
    );
    assert_eq!(r.status, 200);
    let r = scim(
        &mut h,
        Method::Put,
        &format!("/Users/{id}"),
        Some(json!({"schemas": [USER_SCHEMA], "userName": "log.me", "active": false})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        scim(&mut h, Method::Delete, &format!("/Users/{id}"), None).status,
        204
    );
    assert_eq!(
        scim(
            &mut h,
            Method::Get,
            "/Users?filter=userName+eq+%22x%22",
            None
        )
        .status,
        200
    );

    let feed = feed(&mut h, "");
    let events = feed["events"].as_array().expect("events");
    let ops: Vec<&str> = events.iter().filter_map(|e| e["op"].as_str()).collect();
    assert_eq!(
        ops,
        ["create", "patch", "replace", "delete"],
        "reads are not logged"
    );
    assert!(events.iter().all(|e| e["outcome"] == "success"
        && e["resourceId"] == id.as_str()
        && e["resourceType"] == "User"));
    assert_eq!(
        events[0]["attributes"],
        json!(["active", "name", "userName"])
    );
    assert_eq!(events[0]["status"], 201);
    assert_eq!(events[0]["requestId"], rid.as_str());
    assert!(
        events[0]["credential"].is_null(),
        "a Worker-secret token has no credential id"
    );
    assert_eq!(events[1]["attributes"], json!(["active"]));
    assert_eq!(
        events[1]["deactivated"], true,
        "PATCH active False deactivates"
    );
    assert_eq!(
        events[2]["deactivated"], false,
        "already inactive: not a second deactivation"
    );
    assert_eq!(feed["nextSince"], events[3]["seq"]);
}

#[test]
fn failed_writes_are_recorded_without_bodies() {
    let mut h = new_server();
    let r = scim(
        &mut h,
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "dup", "password": "s3cret"})),
    );
    let id = r.body_json()["id"].as_str().expect("id").to_string();
    let r = scim(
        &mut h,
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "DUP", "password": "s3cret"})),
    );
    assert_eq!(r.status, 409);
    let r = scim(
        &mut h,
        Method::Patch,
        &format!("/Users/{id}"),
        Some(patch(
            json!([{"op": "replace", "path": "nope.a.b", "value": 1}]),
        )),
    );
    assert_eq!(r.status, 400);
    let r = h.call(
        Method::Put,
        &format!("/scim/v2/Users/{id}"),
        TOKEN,
        Some(json!({"schemas": [USER_SCHEMA], "userName": "x"})),
    );
    assert_eq!(r.status, 200);
    let r = scim(&mut h, Method::Delete, "/Users/ghost", None);
    assert_eq!(r.status, 404);

    let failures = feed(&mut h, "?outcome=failure");
    let events = failures["events"].as_array().expect("events");
    let got: Vec<(Value, Value)> = events
        .iter()
        .map(|e| (e["op"].clone(), e["status"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (json!("create"), json!(409)),
            (json!("patch"), json!(400)),
            (json!("delete"), json!(404))
        ]
    );
    assert_eq!(events[2]["resourceId"], "ghost");
    assert!(events[0]["detail"]
        .as_str()
        .unwrap_or("")
        .contains("already exists"));
    let all =
        h.db.query("SELECT group_concat(coalesce(detail, '') || attributes, ' ') AS t FROM events");
    assert!(
        !all[0]["t"].as_str().unwrap_or("").contains("s3cret"),
        "no request bodies or secrets in the log"
    );
    assert_eq!(
        feed(&mut h, "?outcome=success&op=replace")["events"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn the_change_feed_pages_every_event_exactly_once() {
    let mut h = new_server();
    let mut ids = Vec::new();
    for i in 0..12 {
        let r = scim(
            &mut h,
            Method::Post,
            "/Users",
            Some(json!({"schemas": [USER_SCHEMA], "userName": format!("feed{i}")})),
        );
        ids.push(r.body_json()["id"].as_str().expect("id").to_string());
    }
    let mut seen = Vec::new();
    let mut since = 0;
    let mut interleaved = false;
    loop {
        let page = feed(&mut h, &format!("?since={since}&limit=5"));
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            assert_eq!(page["nextSince"], since, "an empty page keeps the cursor");
            break;
        }
        seen.extend(events.iter().filter_map(|e| e["seq"].as_i64()));
        since = page["nextSince"].as_i64().expect("nextSince");
        if !interleaved {
            // Writes between pages appear on later pages, never before the cursor.
            interleaved = true;
            scim(&mut h, Method::Delete, &format!("/Users/{}", ids[0]), None);
            scim(
                &mut h,
                Method::Post,
                "/Users",
                Some(json!({"schemas": [USER_SCHEMA], "userName": "late"})),
            );
        }
    }
    let total = h.db.query("SELECT count(*) AS n FROM events")[0]["n"]
        .as_i64()
        .unwrap_or(0);
    assert_eq!(seen.len() as i64, total, "every event once");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in commit order: {seen:?}"
    );

    let only = feed(&mut h, &format!("?resource={}&type=User", ids[0]));
    assert_eq!(only["events"].as_array().map(Vec::len), Some(2));
    let r = h.call(
        Method::Get,
        "/admin/api/tenants/default/events?op=explode",
        ADMIN,
        None,
    );
    assert_eq!(r.status, 400);
    let r = h.call(
        Method::Get,
        "/admin/api/tenants/default/events",
        TOKEN,
        None,
    );
    assert_eq!(r.status, 401, "SCIM tokens cannot read the log");
}

#[test]
fn summary_counts_per_day_and_retention_prunes() {
    let mut h = new_server();
    let r = scim(
        &mut h,
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "s1", "active": true})),
    );
    let id = r.body_json()["id"].as_str().expect("id").to_string();
    scim(
        &mut h,
        Method::Patch,
        &format!("/Users/{id}"),
        Some(patch(
            json!([{"op": "replace", "path": "displayName", "value": "S"}]),
        )),
    );
    scim(
        &mut h,
        Method::Patch,
        &format!("/Users/{id}"),
        Some(patch(
            json!([{"op": "replace", "path": "active", "value": false}]),
        )),
    );
    scim(
        &mut h,
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "S1"})),
    );
    scim(&mut h, Method::Delete, &format!("/Users/{id}"), None);
    let r = h.call(
        Method::Get,
        "/admin/api/tenants/default/events/summary?days=7",
        ADMIN,
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body_json()["days"],
        json!([{"day": "2023-11-14", "create": 1, "update": 1, "deactivate": 1, "delete": 1, "failure": 1}])
    );
    let stmt = crate::store::events::prune_stmt(
        h.now_ms + 91 * 86_400_000,
        crate::store::events::retention_days(None),
    );
    block_on(crate::store::Db::batch(&h.db, vec![stmt])).expect("prune");
    assert_eq!(h.db.query("SELECT count(*) AS n FROM events")[0]["n"], 0);
    assert_eq!(crate::store::events::retention_days(Some("7")), 7);
    assert_eq!(
        crate::store::events::retention_days(Some("-1")),
        crate::store::events::DEFAULT_RETENTION_DAYS
    );
}

#[test]
fn a_write_that_loses_its_condition_logs_no_success() {
    let mut h = new_server();
    let r = scim(
        &mut h,
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "cond"})),
    );
    let id = r.body_json()["id"].as_str().expect("id").to_string();
    let req = Request::new(Method::Put, &format!("/scim/v2/Users/{id}"), "https://h")
        .with_header("authorization", &format!("Bearer {TOKEN}"))
        .with_header("if-match", "W/\"1\"")
        .with_body(json!({"schemas": [USER_SCHEMA], "userName": "cond2"}).to_string());
    let ctx = Ctx::new(&h.db, &h.config, h.now_ms);
    assert_eq!(block_on(handle(&ctx, &req)).status, 412);
    let events = feed(&mut h, "");
    let summary: Vec<(Value, Value)> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["op"].clone(), e["outcome"].clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (json!("create"), json!("success")),
            (json!("replace"), json!("failure"))
        ]
    );
}
