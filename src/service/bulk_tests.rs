//! `POST /Bulk` through the whole request path, natively, on SQLite with the D1 migrations:
//! the RFC 7644 §3.7 examples, `bulkId` references in every place the RFC allows them,
//! circular references, `failOnErrors`, the limits, the provisioning log, and the round trips
//! of a 1,000-operation request.

use crate::proto::schema::{GROUP_SCHEMA, USER_SCHEMA};
use crate::service::ctx::{Config, Ctx};
use crate::service::handle;
use crate::service::http::{Method, Request, Response};
use crate::store::coalesce::{Coalescing, MAX_STATEMENTS_PER_TRIP};
use crate::testing::{block_on, SqliteDb};
use serde_json::{json, Value};

const TOKEN: &str = "bulk-test-token-0123456789";
const ORIGIN: &str = "https://scim.test";
const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

struct Harness {
    db: SqliteDb,
    config: Config,
    now_ms: i64,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            db: SqliteDb::new(),
            config: Config {
                tokens: vec![TOKEN.into()],
                ..Config::default()
            },
            now_ms: 1_700_000_000_000,
        }
    }

    /// Over the database the Worker uses: D1 wrapped so that a bulk wave shares round trips.
    fn send(&mut self, req: Request) -> Response {
        self.now_ms += 1000;
        let db = Coalescing::new(&self.db, MAX_STATEMENTS_PER_TRIP);
        let ctx = Ctx::new(&db, &self.config, self.now_ms);
        block_on(handle(&ctx, &req))
    }

    fn call(&mut self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut r = Request::new(method, &format!("/scim/v2{path}"), ORIGIN)
            .with_header("Authorization", &format!("Bearer {TOKEN}"));
        if let Some(b) = body {
            r = r
                .with_header("Content-Type", "application/scim+json")
                .with_body(b.to_string());
        }
        self.send(r)
    }

    /// POST /Bulk with `ops` (and `extra` members of the request); the BulkResponse.
    fn bulk(&mut self, ops: Value, extra: Value) -> Value {
        let mut body = json!({"schemas": [BULK], "Operations": ops});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let r = self.call(Method::Post, "/Bulk", Some(body));
        assert_eq!(r.status, 200, "{}", r.body_json());
        let v = r.body_json();
        assert_eq!(
            v["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:BulkResponse"])
        );
        v
    }

    fn count(&self, sql: &str) -> i64 {
        self.db.query(sql)[0]["n"].as_i64().expect("count")
    }
}

fn statuses(resp: &Value) -> Vec<String> {
    resp["Operations"]
        .as_array()
        .expect("Operations")
        .iter()
        .map(|o| {
            o["status"]
                .as_str()
                .expect("status is a string")
                .to_string()
        })
        .collect()
}

fn id_of(location: &Value) -> String {
    location
        .as_str()
        .and_then(|l| l.rsplit('/').next())
        .expect("location")
        .to_string()
}

/// RFC 7644 §3.7.2: a user and a group that contains it, the group first (a forward
/// reference): the service orders them by their references, and the member is the user.
#[test]
fn rfc_3_7_2_bulk_id_reference_in_any_order() {
    let mut h = Harness::new();
    let resp = h.bulk(
        json!([
            {"method": "POST", "path": "/Groups", "bulkId": "ytrewq",
             "data": {"schemas": [GROUP_SCHEMA], "displayName": "Tour Guides",
                      "members": [{"type": "User", "value": "bulkId:qwerty"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "qwerty",
             "data": {"schemas": [USER_SCHEMA], "userName": "Alice"}}
        ]),
        json!({}),
    );
    assert_eq!(statuses(&resp), ["201", "201"]);
    let ops = &resp["Operations"];
    assert_eq!(ops[0]["bulkId"], "ytrewq");
    assert_eq!(ops[0]["method"], "POST");
    let user_id = id_of(&ops[1]["location"]);
    let group_id = id_of(&ops[0]["location"]);
    assert!(ops[1]["location"]
        .as_str()
        .unwrap()
        .starts_with("https://scim.test/scim/v2/Users/"));
    assert!(ops[1]["version"].as_str().unwrap().starts_with("W/\""));
    let group = h
        .call(Method::Get, &format!("/Groups/{group_id}"), None)
        .body_json();
    assert_eq!(group["members"][0]["value"], user_id.as_str());
    assert_eq!(group["members"].as_array().map(Vec::len), Some(1));
}

/// RFC 7644 §3.7.3's request: create, replace (with version), patch and delete one user,
/// the later operations addressing it by `bulkId` in their paths.
#[test]
fn rfc_3_7_3_create_replace_patch_delete() {
    let mut h = Harness::new();
    let resp = h.bulk(
        json!([
            {"method": "POST", "path": "/Users", "bulkId": "qwerty",
             "data": {"schemas": [USER_SCHEMA], "userName": "Alice"}},
            {"method": "PUT", "path": "/Users/bulkId:qwerty",
             "data": {"schemas": [USER_SCHEMA], "id": "bulkId:qwerty", "userName": "Bob"}},
            {"method": "PATCH", "path": "/Users/bulkId:qwerty",
             "data": {"schemas": [PATCH_OP], "Operations": [
                 {"op": "replace", "path": "displayName", "value": "Bobby"}]}},
        ]),
        json!({}),
    );
    assert_eq!(statuses(&resp), ["201", "200", "200"]);
    let ops = &resp["Operations"];
    let id = id_of(&ops[0]["location"]);
    assert_eq!(ops[1]["location"], ops[0]["location"]);
    assert_ne!(ops[1]["version"], ops[0]["version"]);
    let user = h.call(Method::Get, &format!("/Users/{id}"), None);
    assert_eq!(user.body_json()["userName"], "Bob");
    assert_eq!(user.body_json()["displayName"], "Bobby");
    // A version is the If-Match of the single request: a stale one is 412, the current works.
    let current = ops[2]["version"].clone();
    let resp = h.bulk(
        json!([
            {"method": "DELETE", "path": format!("/Users/{id}"), "version": "W/\"1\""},
            {"method": "DELETE", "path": format!("/Users/{id}"), "version": current},
        ]),
        json!({}),
    );
    assert_eq!(statuses(&resp), ["412", "204"]);
    assert_eq!(resp["Operations"][0]["response"]["status"], "412");
    assert_eq!(
        resp["Operations"][0]["location"],
        format!("https://scim.test/scim/v2/Users/{id}")
    );
    assert_eq!(
        h.call(Method::Get, &format!("/Users/{id}"), None).status,
        404
    );
}

/// RFC 7644 §3.7.1: groups that contain each other through `bulkId`s are resolved (each
/// created, then the members added); a cycle that members do not make (a group containing
/// itself) is answered 409 with nothing of it written, while the rest of the request runs.
#[test]
fn rfc_3_7_1_circular_references_are_resolved_or_409() {
    let mut h = Harness::new();
    let resp = h.bulk(
        json!([
            {"method": "POST", "path": "/Groups", "bulkId": "qwerty",
             "data": {"schemas": [GROUP_SCHEMA], "displayName": "Group A",
                      "members": [{"type": "Group", "value": "bulkId:ytrewq"}]}},
            {"method": "POST", "path": "/Groups", "bulkId": "ytrewq",
             "data": {"schemas": [GROUP_SCHEMA], "displayName": "Group B",
                      "members": [{"type": "Group", "value": "bulkId:qwerty"}]}},
            {"method": "POST", "path": "/Groups", "bulkId": "self",
             "data": {"schemas": [GROUP_SCHEMA], "displayName": "Self",
                      "members": [{"type": "Group", "value": "bulkId:self"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "u",
             "data": {"schemas": [USER_SCHEMA], "userName": "carol"}},
        ]),
        json!({}),
    );
    assert_eq!(statuses(&resp), ["201", "201", "409", "201"]);
    assert_eq!(resp["Operations"].as_array().map(Vec::len), Some(4));
    let a = id_of(&resp["Operations"][0]["location"]);
    let b = id_of(&resp["Operations"][1]["location"]);
    let group_a = h.call(Method::Get, &format!("/Groups/{a}"), None);
    assert_eq!(group_a.body_json()["members"][0]["value"], b.as_str());
    // The version reported is the group's final one, after its members were added.
    assert_eq!(
        group_a.header("etag"),
        resp["Operations"][0]["version"].as_str()
    );
    let group_b = h
        .call(Method::Get, &format!("/Groups/{b}"), None)
        .body_json();
    assert_eq!(group_b["members"][0]["value"], a.as_str());
    assert_eq!(resp["Operations"][2]["response"]["status"], "409");
    assert!(resp["Operations"][2].get("location").is_none());
    assert_eq!(
        h.count("SELECT count(*) AS n FROM resources WHERE display_name = 'Self'"),
        0
    );
}

/// `failOnErrors: 1` (RFC 7644 §3.7.3's second example): processing stops at the first
/// error; the operations after it are neither run nor answered.
#[test]
fn fail_on_errors_stops_after_that_many_errors() {
    let mut h = Harness::new();
    h.call(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "taken"})),
    );
    let ops = json!([
        {"method": "POST", "path": "/Users", "bulkId": "a",
         "data": {"schemas": [USER_SCHEMA], "userName": "first"}},
        {"method": "POST", "path": "/Users", "bulkId": "b",
         "data": {"schemas": [USER_SCHEMA], "userName": "taken"}},
        {"method": "POST", "path": "/Users", "bulkId": "c",
         "data": {"schemas": [USER_SCHEMA], "userName": "never"}},
    ]);
    let resp = h.bulk(ops.clone(), json!({"failOnErrors": 1}));
    assert_eq!(statuses(&resp), ["201", "409"]);
    assert_eq!(resp["Operations"][1]["response"]["scimType"], "uniqueness");
    assert_eq!(
        h.count("SELECT count(*) AS n FROM resources WHERE user_name = 'never'"),
        0
    );
    // failOnErrors: 2 ends at the second error, whatever waves the operations ran in.
    let user = |b: &str, name: &str| {
        json!({"method": "POST", "path": "/Users", "bulkId": b,
               "data": {"schemas": [USER_SCHEMA], "userName": name}})
    };
    let ops = json!([
        user("d1", "taken"),
        user("k1", "kept1"),
        user("k2", "kept2"),
        user("d2", "taken"),
        user("n", "never2"),
    ]);
    let resp = h.bulk(ops, json!({"failOnErrors": 2}));
    assert_eq!(statuses(&resp), ["409", "201", "201", "409"]);
    assert_eq!(
        h.count("SELECT count(*) AS n FROM resources WHERE user_name = 'never2'"),
        0
    );
    // Without failOnErrors every operation runs and partial failures are reported.
    let ops = json!([
        {"method": "POST", "path": "/Users", "bulkId": "b",
         "data": {"schemas": [USER_SCHEMA], "userName": "taken"}},
        {"method": "POST", "path": "/Users", "bulkId": "c",
         "data": {"schemas": [USER_SCHEMA], "userName": "never"}},
    ]);
    let resp = h.bulk(ops, json!({}));
    assert_eq!(statuses(&resp), ["409", "201"]);
}

/// Each operation is validated by its single request's code: the same status, scimType and
/// detail as the single request, and refused operations (malformed, unknown bulkId, a
/// failed creator) do not stop the others.
#[test]
fn operations_fail_alone_with_their_single_request_errors() {
    let mut h = Harness::new();
    let bad_user = json!({"schemas": [USER_SCHEMA], "userName": 42});
    let single = h.call(Method::Post, "/Users", Some(bad_user.clone()));
    let resp = h.bulk(
        json!([
            {"method": "POST", "path": "/Users", "bulkId": "bad", "data": bad_user},
            {"method": "POST", "path": "/Users", "data": {"schemas": [USER_SCHEMA], "userName": "nobulkid"}},
            {"method": "PATCH", "path": "/Groups/bulkId:nowhere", "data": {"schemas": [PATCH_OP], "Operations": []}},
            {"method": "POST", "path": "/Groups", "bulkId": "g",
             "data": {"schemas": [GROUP_SCHEMA], "displayName": "G",
                      "members": [{"value": "bulkId:bad"}]}},
            {"method": "GET", "path": "/Users"},
            // Not a write: answered as its single request would be (405).
            {"method": "POST", "path": "/Schemas", "bulkId": "s", "data": {}},
            {"method": "DELETE", "path": "/Users/does-not-exist"},
            {"method": "POST", "path": "/Users", "bulkId": "ok",
             "data": {"schemas": [USER_SCHEMA], "userName": "fine"}},
        ]),
        json!({}),
    );
    assert_eq!(
        statuses(&resp),
        ["400", "400", "400", "409", "400", "405", "404", "201"]
    );
    let first = &resp["Operations"][0]["response"];
    let single = single.body_json();
    assert_eq!(first["scimType"], single["scimType"]);
    let strip = |d: &Value| {
        d.as_str()
            .unwrap()
            .split(" (request id")
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(strip(&first["detail"]), strip(&single["detail"]));
    assert_eq!(
        resp["Operations"][2]["response"]["scimType"],
        "invalidValue"
    );
    assert_eq!(resp["Operations"][4]["method"], "");
}

/// Every operation is in the provisioning log as its single request would be: successes
/// with the bulk request's id, failures too.
#[test]
fn operations_are_audited_like_single_requests() {
    let mut h = Harness::new();
    let resp = h.bulk(
        json!([
            {"method": "POST", "path": "/Users", "bulkId": "u",
             "data": {"schemas": [USER_SCHEMA], "userName": "audited"}},
            {"method": "PATCH", "path": "/Users/bulkId:u",
             "data": {"schemas": [PATCH_OP], "Operations": [
                 {"op": "replace", "path": "active", "value": false}]}},
            {"method": "DELETE", "path": "/Groups/missing"},
            {"method": "POST", "path": "/Users", "bulkId": "x", "data": {"schemas": [USER_SCHEMA]}},
        ]),
        json!({}),
    );
    assert_eq!(statuses(&resp), ["201", "200", "404", "400"]);
    let rows = h.db.query(
        "SELECT op, resource_type, outcome, status, deactivated, request_id FROM events ORDER BY seq",
    );
    let summary: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["op"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
                r["status"].as_i64().unwrap(),
            )
        })
        .collect();
    let want = |op: &str, outcome: &str, status: i64| (op.to_string(), outcome.to_string(), status);
    for row in [
        want("create", "success", 201),
        want("patch", "success", 200),
        want("delete", "failure", 404),
        want("create", "failure", 400),
    ] {
        assert!(summary.contains(&row), "{row:?} not in {summary:?}");
    }
    assert_eq!(rows.len(), 4);
    let ids: std::collections::HashSet<&str> = rows
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one request id for the whole bulk request");
    assert!(rows
        .iter()
        .any(|r| r["op"] == "patch" && r["deactivated"] == 1));
}

/// `bulkId:` inside PATCH values and PATCH filter paths (RFC 7644 §3.7.2).
#[test]
fn bulk_ids_in_patch_values_and_paths() {
    let mut h = Harness::new();
    let g = h.call(
        Method::Post,
        "/Groups",
        Some(json!({"schemas": [GROUP_SCHEMA], "displayName": "Existing"})),
    );
    let gid = g.body_json()["id"].as_str().unwrap().to_string();
    let resp = h.bulk(
        json!([
            {"method": "PATCH", "path": format!("/Groups/{gid}"),
             "data": {"schemas": [PATCH_OP], "Operations": [
                 {"op": "add", "path": "members", "value": [{"value": "bulkId:u1"}, {"value": "bulkId:u2"}]}]}},
            {"method": "POST", "path": "/Users", "bulkId": "u1",
             "data": {"schemas": [USER_SCHEMA], "userName": "one"}},
            {"method": "POST", "path": "/Users", "bulkId": "u2",
             "data": {"schemas": [USER_SCHEMA], "userName": "two",
                      "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "bulkId:u1"}}}},
            {"method": "PATCH", "path": format!("/Groups/{gid}"),
             "data": {"schemas": [PATCH_OP], "Operations": [
                 {"op": "remove", "path": "members[value eq \"bulkId:u1\"]"}]}},
        ]),
        json!({}),
    );
    assert_eq!(statuses(&resp), ["204", "201", "201", "204"]);
    let u2 = id_of(&resp["Operations"][2]["location"]);
    let u1 = id_of(&resp["Operations"][1]["location"]);
    let group = h
        .call(Method::Get, &format!("/Groups/{gid}"), None)
        .body_json();
    let members: Vec<&str> = group["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(members, [u2.as_str()]);
    let user = h
        .call(Method::Get, &format!("/Users/{u2}"), None)
        .body_json();
    assert_eq!(
        user["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]["value"],
        u1.as_str()
    );
}

/// The limits are advertised and enforced: over maxOperations is 413 before anything runs;
/// an envelope error is 400 and writes nothing.
#[test]
fn limits_are_advertised_and_enforced() {
    let mut h = Harness::new();
    let spc = h
        .call(Method::Get, "/ServiceProviderConfig", None)
        .body_json();
    assert_eq!(spc["bulk"]["supported"], true);
    assert_eq!(spc["bulk"]["maxOperations"], 1000);
    assert_eq!(spc["bulk"]["maxPayloadSize"], 1_048_576);
    let op = json!({"method": "DELETE", "path": "/Users/x"});
    let ops: Vec<Value> = (0..1001).map(|_| op.clone()).collect();
    let r = h.call(
        Method::Post,
        "/Bulk",
        Some(json!({"schemas": [BULK], "Operations": ops})),
    );
    assert_eq!(r.status, 413, "{}", r.body_json());
    assert_eq!(r.body_json()["status"], "413");
    assert_eq!(h.count("SELECT count(*) AS n FROM events"), 0);
    let big = "x".repeat(1_048_577);
    let r = h.send(
        Request::new(Method::Post, "/scim/v2/Bulk", ORIGIN)
            .with_header("Authorization", &format!("Bearer {TOKEN}"))
            .with_body(big),
    );
    assert_eq!(r.status, 413);
    for (body, status) in [
        (json!({"Operations": []}), 400),
        (json!({"schemas": [BULK], "Operations": {}}), 400),
        (
            json!({"schemas": [BULK], "Operations": [], "failOnErrors": 0}),
            400,
        ),
    ] {
        let r = h.call(Method::Post, "/Bulk", Some(body));
        assert_eq!(r.status, status, "{}", r.body_json());
    }
    assert_eq!(h.call(Method::Get, "/Bulk", None).status, 405);
    let r = h.send(Request::new(Method::Post, "/scim/v2/Bulk", ORIGIN));
    assert_eq!(r.status, 401);
    assert_eq!(h.count("SELECT count(*) AS n FROM resources"), 0);
}

/// 1,000 operations (999 users and a group of all of them, referenced by bulkId) run in a
/// handful of round trips, far inside D1's per-invocation limits.
#[test]
fn a_thousand_operations_take_a_few_round_trips() {
    let mut h = Harness::new();
    h.call(Method::Get, "/Schemas", None); // the tenant's profile, read once per isolate
    let mut ops: Vec<Value> = (0..999)
        .map(|i| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"),
                   "data": {"schemas": [USER_SCHEMA], "userName": format!("user{i}@example.com"),
                            "emails": [{"value": format!("user{i}@example.com"), "primary": true}]}})
        })
        .collect();
    let members: Vec<Value> = (0..999)
        .map(|i| json!({"value": format!("bulkId:u{i}")}))
        .collect();
    ops.insert(
        0,
        json!({"method": "POST", "path": "/Groups", "bulkId": "all",
               "data": {"schemas": [GROUP_SCHEMA], "displayName": "Everyone", "members": members}}),
    );
    let before = h.db.round_trips.get();
    let resp = h.bulk(Value::Array(ops), json!({}));
    let trips = h.db.round_trips.get() - before;
    assert!(statuses(&resp).iter().all(|s| s == "201"));
    assert_eq!(
        h.count("SELECT count(*) AS n FROM resources WHERE type = 'User'"),
        999
    );
    assert_eq!(h.count("SELECT count(*) AS n FROM members"), 999);
    assert_eq!(
        h.count("SELECT count(*) AS n FROM events WHERE outcome = 'success'"),
        1000
    );
    // 999 users are two statements each (event, insert): four round trips of at most 500
    // statements, then the group.
    assert!(trips <= 6, "{trips} round trips");
    eprintln!("1,000-operation bulk request: {trips} round trips");
}

/// Every operation is validated before any operation writes: an invalid group that waits
/// for a user it references is refused (and logged) before the user is created.
#[test]
fn validation_precedes_the_first_write() {
    let mut h = Harness::new();
    let resp = h.bulk(
        json!([
            {"method": "POST", "path": "/Groups", "bulkId": "g",
             "data": {"schemas": [GROUP_SCHEMA], "members": [{"value": "bulkId:u"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "u",
             "data": {"schemas": [USER_SCHEMA], "userName": "first"}},
        ]),
        json!({}),
    );
    assert_eq!(statuses(&resp), ["400", "201"]);
    let order: Vec<String> =
        h.db.query("SELECT resource_type || ':' || outcome AS e FROM events ORDER BY seq")
            .iter()
            .map(|r| r["e"].as_str().unwrap().to_string())
            .collect();
    assert_eq!(order, ["Group:failure", "User:success"]);
}

/// Over a database that does not merge batches (`Db::drive`'s default), the same request
/// gives the same answers, one operation's round trips after the other.
#[test]
fn without_coalescing_operations_run_one_after_the_other() {
    let mut server = crate::testing::Server::new(&[TOKEN], None);
    let ops: Vec<Value> = (0..3)
        .map(|i| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"),
                   "data": {"schemas": [USER_SCHEMA], "userName": format!("plain{i}")}})
        })
        .collect();
    server.call(Method::Get, "/scim/v2/Schemas", TOKEN, None);
    let before = server.db.round_trips.get();
    let r = server.call(
        Method::Post,
        "/scim/v2/Bulk",
        TOKEN,
        Some(json!({"schemas": [BULK], "Operations": ops})),
    );
    assert_eq!(statuses(&r.body_json()), ["201", "201", "201"]);
    assert_eq!(server.db.round_trips.get() - before, 3);
}

/// `failOnErrors: 1` over 999 valid POSTs: all-or-nothing waves keep it to a few round trips;
/// one clash among them costs a handful more and still ends the request exactly there.
#[test]
fn fail_on_errors_one_with_many_posts_takes_few_round_trips() {
    let mut h = Harness::new();
    h.call(Method::Get, "/Schemas", None);
    let ops = |prefix: &str, clash_at: Option<usize>| -> Value {
        (0..999)
            .map(|i| {
                let name = match clash_at {
                    Some(c) if i == c => format!("{prefix}0"),
                    _ => format!("{prefix}{i}"),
                };
                json!({"method": "POST", "path": "/Users", "bulkId": format!("b{i}"),
                       "data": {"schemas": [USER_SCHEMA], "userName": name}})
            })
            .collect()
    };
    let before = h.db.round_trips.get();
    let resp = h.bulk(ops("f", None), json!({"failOnErrors": 1}));
    let trips = h.db.round_trips.get() - before;
    assert_eq!(statuses(&resp).len(), 999);
    assert!(statuses(&resp).iter().all(|s| s == "201"));
    assert!(trips <= 4, "{trips} round trips");
    let before = h.db.round_trips.get();
    let resp = h.bulk(ops("g", Some(700)), json!({"failOnErrors": 1}));
    let trips = h.db.round_trips.get() - before;
    let got = statuses(&resp);
    assert_eq!(got.len(), 701, "answered up to and including the error");
    assert_eq!(got[700], "409");
    assert!(got[..700].iter().all(|s| s == "201"));
    assert_eq!(
        h.count("SELECT count(*) AS n FROM resources WHERE user_name LIKE 'g%'"),
        700
    );
    assert_eq!(
        h.count("SELECT count(*) AS n FROM events WHERE outcome = 'failure'"),
        1,
        "the all-or-nothing attempts leave no trace in the provisioning log"
    );
    assert!(trips <= 40, "{trips} round trips");
    eprintln!("failOnErrors 1, 999 POSTs with a clash at 700: {trips} round trips");
}
