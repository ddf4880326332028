//! The Durable Object backend's hop, natively: the worker's service over one SQLite database
//! (D1, the control plane) hands directory requests to a second service per tenant, each over
//! its own SQLite database (the tenant's object), through `service::relay` exactly as the
//! worker glue does. tests/e2e/durable_object.test.mjs runs the same in workerd.

use crate::proto::schema::{GROUP_SCHEMA, USER_SCHEMA};
use crate::service::ctx::{Config, Ctx, Forward, Forwarded};
use crate::service::handle;
use crate::service::http::{Method, Passed, Request, Response};
use crate::service::webhooks::deliver::{self, Outbox, Posted, Settings, Transport, Verdict};
use crate::store::webhooks::Queued;
use crate::testing::{block_on, SqliteDb};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

const TOKEN: &str = "default-token-0123456789";
pub(super) const ADMIN: &str = "admin-token-0123456789";
const ORIGIN: &str = "https://scim.test";

/// One database per tenant, created (and migrated) on first use, as objects are.
#[derive(Default)]
pub(super) struct Objects {
    pub(super) dbs: RefCell<HashMap<String, Rc<SqliteDb>>>,
    config: Config,
    now_ms: Cell<i64>,
    hops: Cell<usize>,
    /// Answers handed on to the client without being read (`Forward::relay`).
    passed: Cell<usize>,
    /// The last request an object received, to see what the worker sent.
    last: RefCell<Option<Request>>,
    /// Each tenant's object instance's `relay::Adopted` (dropped to restart the instance).
    pub(super) adopted: RefCell<HashMap<String, Rc<crate::service::adopted::Adopted>>>,
}

impl Objects {
    pub(super) fn db(&self, tenant: &str) -> Rc<SqliteDb> {
        self.dbs
            .borrow_mut()
            .entry(tenant.to_string())
            .or_insert_with(|| Rc::new(SqliteDb::new()))
            .clone()
    }
}

impl Forward for Objects {
    fn forward<'a>(&'a self, tenant: &'a str, req: Request) -> Forwarded<'a> {
        Box::pin(async move {
            self.hops.set(self.hops.get() + 1);
            let db = self.db(tenant);
            let adopted = self
                .adopted
                .borrow_mut()
                .entry(tenant.to_string())
                .or_default()
                .clone();
            let ctx = Ctx {
                adopted: Some(&adopted),
                ..Ctx::new(db.as_ref(), &self.config, self.now_ms.get())
            };
            // As the object's glue (src/worker/durable.rs) routes them.
            let resp = match deliver::serve_object_read(db.as_ref(), &req).await {
                Some(answer) => answer,
                None => crate::service::handle_handed(&ctx, &req).await,
            };
            *self.last.borrow_mut() = Some(req);
            Ok(resp)
        })
    }

    /// As the worker's glue does: the answer stays the object's (`H::send` opens it as
    /// `worker::raw::response` does), except the stale answer, which the service reads.
    fn relay<'a>(&'a self, tenant: &'a str, req: Request) -> Forwarded<'a> {
        Box::pin(async move {
            let resp = self.forward(tenant, req).await?;
            if resp.header(crate::service::relay::STALE).is_some() {
                return Ok(resp);
            }
            self.passed.set(self.passed.get() + 1);
            let status = resp.status;
            Ok(Response::passed(status, Passed(Rc::new(resp))))
        })
    }
}

/// What the client gets of `resp`: a passed-on object's answer with the headers the
/// service added after its own (as `worker::raw::response` sends it), else `resp` itself.
fn opened(resp: Response) -> Response {
    let Some(passed) = &resp.passed else {
        return resp;
    };
    let mut answer = passed
        .0
        .downcast_ref::<Response>()
        .expect("only the fake Forward passes answers")
        .clone();
    assert_eq!(answer.status, resp.status, "the status the service saw");
    assert!(
        resp.body.is_empty(),
        "a passed answer's body is the object's"
    );
    answer.headers.extend(resp.headers);
    answer
}

/// The worker over D1 with its tenants' objects (also `moving_hop_tests`).
pub(super) struct H {
    pub(super) d1: SqliteDb,
    config: Config,
    pub(super) objects: Objects,
    pub(super) now_ms: i64,
}

impl H {
    pub(super) fn new() -> H {
        H {
            d1: SqliteDb::new(),
            config: Config {
                tokens: vec![TOKEN.into()],
                admin_token: Some(ADMIN.into()),
                durable_objects: true,
                ..Config::default()
            },
            objects: Objects::default(),
            now_ms: 1_700_000_000_000,
        }
    }

    pub(super) fn send(&mut self, req: Request) -> Response {
        self.now_ms += 1000;
        self.objects.now_ms.set(self.now_ms);
        let mut ctx = Ctx::new(&self.d1, &self.config, self.now_ms);
        ctx.forward = Some(&self.objects);
        opened(block_on(handle(&ctx, &req)))
    }

    fn call(&mut self, method: Method, path: &str, token: &str, body: Option<Value>) -> Response {
        let mut r = Request::new(method, path, ORIGIN)
            .with_header("authorization", &format!("Bearer {token}"));
        if let Some(b) = body {
            r = r
                .with_header("content-type", "application/scim+json")
                .with_body(b.to_string());
        }
        self.send(r)
    }

    fn scim(&mut self, method: Method, path: &str, body: Option<Value>) -> Response {
        self.call(method, &format!("/scim/v2{path}"), TOKEN, body)
    }

    fn rows(&self, tenant: &str, sql: &str) -> Vec<crate::store::Row> {
        self.objects.db(tenant).query(sql)
    }
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn the_directory_lives_in_the_tenants_object_and_works_there() {
    let mut h = H::new();
    let user = json!({"schemas": [USER_SCHEMA], "userName": "ada@example.com",
        "emails": [{"value": "ada@example.com", "type": "work"}]});
    let r = h.scim(Method::Post, "/Users", Some(user));
    assert_eq!(r.status, 201, "{}", text(&r));
    let uid = r.body_json()["id"].as_str().unwrap().to_string();
    let r = h.scim(
        Method::Post,
        "/Groups",
        Some(json!({"schemas": [GROUP_SCHEMA], "displayName": "Eng"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let gid = r.body_json()["id"].as_str().unwrap().to_string();
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]});
    let r = h.scim(Method::Patch, &format!("/Groups/{gid}"), Some(add));
    assert!(r.status == 200 || r.status == 204, "{}", text(&r));
    let r = h.scim(
        Method::Get,
        "/Users?filter=emails%5Btype%20eq%20%22work%22%5D.value%20eq%20%22ada%40example.com%22",
        None,
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let page = r.body_json();
    assert_eq!(page["totalResults"], 1);
    assert_eq!(page["Resources"][0]["groups"][0]["value"], gid.as_str());
    // Everything is in the object; D1 holds none of it.
    assert_eq!(
        h.rows("default", "SELECT count(*) AS n FROM resources")[0]["n"],
        2
    );
    assert_eq!(
        h.rows("default", "SELECT count(*) AS n FROM members")[0]["n"],
        1
    );
    assert_eq!(h.d1.query("SELECT count(*) AS n FROM resources")[0]["n"], 0);
    // The provisioning log too, with the request id the client got.
    let events = h.rows("default", "SELECT op, request_id FROM events ORDER BY seq");
    assert_eq!(events.len(), 3);
    let r = h.scim(Method::Delete, &format!("/Users/{uid}"), None);
    assert_eq!(r.status, 204, "{}", text(&r));
    let rid = r.header("x-request-id").unwrap().to_string();
    let last = h.rows(
        "default",
        "SELECT op, request_id FROM events ORDER BY seq DESC LIMIT 1",
    );
    assert_eq!(last[0]["op"], "delete");
    assert_eq!(last[0]["request_id"], rid.as_str());
    assert_eq!(
        h.rows("default", "SELECT count(*) AS n FROM members")[0]["n"],
        0
    );
    assert_eq!(h.objects.hops.get(), 5, "one hop per SCIM operation");
    // Every answer went to the client as the object gave it, with the worker's request id.
    assert_eq!(h.objects.passed.get(), 5);
    assert!(r.passed.is_none() && r.header("x-request-id").is_some());
}

#[test]
fn tenants_are_isolated_in_their_own_objects() {
    let mut h = H::new();
    let r = h.call(
        Method::Post,
        "/admin/api/tenants",
        ADMIN,
        Some(json!({"id": "acme"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    assert_eq!(r.body_json()["storage"], "durable-object");
    let r = h.call(
        Method::Post,
        "/admin/api/tenants/acme/tokens",
        ADMIN,
        Some(json!({})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let acme = r.body_json()["token"].as_str().unwrap().to_string();
    let user = |name: &str| json!({"schemas": [USER_SCHEMA], "userName": name});
    let r = h.call(
        Method::Post,
        "/t/acme/scim/v2/Users",
        &acme,
        Some(user("same")),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let acme_id = r.body_json()["id"].as_str().unwrap().to_string();
    // The same userName in another tenant is no clash: another object.
    let r = h.scim(Method::Post, "/Users", Some(user("same")));
    assert_eq!(r.status, 201, "{}", text(&r));
    let r = h.scim(Method::Get, &format!("/Users/{acme_id}"), None);
    assert_eq!(r.status, 404, "{}", text(&r));
    assert_eq!(
        h.rows("acme", "SELECT tenant, id FROM resources"),
        vec![serde_json::from_value(json!({"tenant": "acme", "id": acme_id})).unwrap()]
    );
    assert_eq!(
        h.rows("default", "SELECT count(*) AS n FROM resources")[0]["n"],
        1
    );
    let r = h.call(Method::Get, "/admin/api/tenants/acme", ADMIN, None);
    assert_eq!(r.body_json()["storage"], "durable-object");
}

#[test]
fn a_clients_relay_headers_are_dropped_and_the_settings_come_from_d1() {
    let mut h = H::new();
    let r = h.call(
        Method::Post,
        "/admin/api/tenants",
        ADMIN,
        Some(json!({"id": "acme"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    // A client of `default` claims to be acme, strict, with someone else's credential.
    let req = Request::new(Method::Post, "/scim/v2/Users", ORIGIN)
        .with_header("authorization", &format!("Bearer {TOKEN}"))
        .with_header("content-type", "application/scim+json")
        .with_header("x-scim-edge-tenant", "acme")
        .with_header("x-scim-edge-credential", "forged")
        .with_header("x-scim-edge-settings", "strict=1; extensions=reject")
        .with_body(json!({"schemas": [USER_SCHEMA], "userName": "u"}).to_string());
    let r = h.send(req);
    assert_eq!(r.status, 201, "{}", text(&r));
    let seen = h.objects.last.borrow().clone().unwrap();
    let hop: Vec<_> = seen
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-scim-edge-"))
        .collect();
    assert_eq!(hop.len(), 3, "{hop:?}");
    assert_eq!(seen.header("x-scim-edge-tenant"), Some("default"));
    assert_eq!(seen.header("x-scim-edge-credential"), None);
    assert!(h.objects.dbs.borrow().get("acme").is_none());
    // Strictness set through the admin API (D1) reaches the object with the next request.
    let uid = r.body_json()["id"].as_str().unwrap().to_string();
    let quirk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    let r = h.scim(Method::Patch, &format!("/Users/{uid}"), Some(quirk.clone()));
    assert_eq!(r.status, 200, "{}", text(&r));
    h.d1.query("UPDATE tenants SET strict_patch = 1 WHERE id = 'default'");
    crate::service::profile::isolate_cache().invalidate("default");
    let r = h.scim(Method::Patch, &format!("/Users/{uid}"), Some(quirk));
    assert_eq!(r.status, 400, "{}", text(&r));
    let strict = h.rows(
        "default",
        "SELECT strict_patch FROM tenants WHERE id = 'default'",
    );
    assert_eq!(strict[0]["strict_patch"], 1);
}

#[test]
fn the_worker_answers_what_is_not_the_directory_without_a_hop() {
    let mut h = H::new();
    for path in [
        "/ServiceProviderConfig",
        "/Schemas",
        "/ResourceTypes",
        "/Roles",
        "/Nope",
    ] {
        let r = h.scim(Method::Get, path, None);
        assert!(r.status == 200 || r.status == 404, "{path}: {}", text(&r));
    }
    let r = h.scim(Method::Delete, "/Users", None);
    assert_eq!(r.status, 405);
    let r = h.call(Method::Get, "/scim/v2/Users", "wrong-token", None);
    assert_eq!(r.status, 401);
    assert_eq!(h.objects.hops.get(), 0);
    assert!(h.objects.dbs.borrow().is_empty());
}

#[test]
fn a_request_without_the_workers_relay_is_refused_by_the_object() {
    let db = SqliteDb::new();
    let config = Config::default();
    let ctx = Ctx::new(&db, &config, 1_700_000_000_000);
    let req = Request::new(Method::Get, "/scim/v2/Users", ORIGIN);
    let r = block_on(crate::service::handle_handed(&ctx, &req));
    assert_eq!(r.status, 500, "{}", text(&r));
}

/// The webhook queue, recording.
#[derive(Default)]
pub(super) struct Queue(pub(super) RefCell<Vec<Queued>>);

impl Outbox for Queue {
    async fn send(&self, msgs: &[Queued]) -> Result<(), String> {
        self.0.borrow_mut().extend_from_slice(msgs);
        Ok(())
    }
}

/// A receiver that takes everything; the bodies it got.
#[derive(Default)]
struct Receiver(RefCell<Vec<Value>>);

impl Transport for Receiver {
    async fn post(&self, _url: &str, _headers: &[(String, String)], body: &[u8]) -> Posted {
        self.0
            .borrow_mut()
            .push(serde_json::from_slice(body).unwrap());
        Posted {
            status: Some(204),
            latency_ms: 1,
            error: None,
        }
    }
}

impl H {
    fn endpoint(&mut self, body: Value) -> String {
        let r = self.call(
            Method::Post,
            "/admin/api/tenants/default/webhooks",
            ADMIN,
            Some(body),
        );
        assert_eq!(r.status, 201, "{}", text(&r));
        r.body_json()["id"].as_str().unwrap().to_string()
    }

    /// The object's alarm: its sweep into the queue.
    fn sweep_object(&self, queue: &Queue) -> Vec<Queued> {
        let before = queue.0.borrow().len();
        let object = self.objects.db("default");
        block_on(deliver::sweep_object(
            object.as_ref(),
            &self.d1,
            queue,
            self.now_ms,
        ))
        .unwrap();
        queue.0.borrow()[before..].to_vec()
    }

    /// The queue consumer in the worker: D1 for the endpoint and log, the object for the rest.
    fn deliver(&self, q: &Queued, rx: &Receiver) -> Verdict {
        let s = Settings::default();
        let config = &self.config;
        let objects: &dyn Forward = &self.objects;
        block_on(deliver::deliver(
            &self.d1,
            rx,
            Some(objects),
            config,
            &s,
            q,
            self.now_ms,
        ))
        .verdict
    }
}

#[test]
fn an_objects_events_reach_the_webhook_queue_through_its_own_sweep_and_are_delivered() {
    let mut h = H::new();
    let user = |n: &str| json!({"schemas": [USER_SCHEMA], "userName": n});
    // Before any endpoint: not sent to the endpoint created later.
    assert_eq!(
        h.scim(Method::Post, "/Users", Some(user("early"))).status,
        201
    );
    let queue = Queue::default();
    assert!(h.sweep_object(&queue).is_empty());
    let all = h.endpoint(json!({"url": "https://app.example/all"}));
    let created_only =
        h.endpoint(json!({"url": "https://app.example/c", "events": ["user.created"]}));
    let r = h.scim(Method::Post, "/Users", Some(user("ada")));
    assert_eq!(r.status, 201, "{}", text(&r));
    let uid = r.body_json()["id"].as_str().unwrap().to_string();
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]});
    assert_eq!(
        h.scim(Method::Patch, &format!("/Users/{uid}"), Some(off))
            .status,
        200
    );
    // The events are the object's; D1's own sweep has nothing of them.
    let d1_queue = Queue::default();
    block_on(deliver::sweep(&h.d1, &d1_queue, h.now_ms)).unwrap();
    assert!(d1_queue.0.borrow().is_empty());
    let sent = h.sweep_object(&queue);
    let mut got: Vec<(String, String)> = sent
        .iter()
        .map(|q| (q.endpoint.clone(), q.kind.clone()))
        .collect();
    got.sort();
    let mut want = vec![
        (all.clone(), "user.created".to_string()),
        (all.clone(), "user.deactivated".to_string()),
        (created_only.clone(), "user.created".to_string()),
    ];
    want.sort();
    assert_eq!(got, want);
    assert!(sent.iter().all(|q| q.tenant == "default"));
    // Sent once: the object's cursor moved; D1's delivery log has them queued.
    assert!(h.sweep_object(&queue).is_empty());
    let logged =
        h.d1.query("SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'queued'");
    assert_eq!(logged[0]["n"], 3);
    // The consumer reads the event and the user from the object, one hop per delivery.
    let rx = Receiver::default();
    let hops = h.objects.hops.get();
    for q in &sent {
        assert_eq!(h.deliver(q, &rx), Verdict::Ack);
    }
    assert_eq!(h.objects.hops.get() - hops, sent.len());
    let bodies = rx.0.borrow();
    let created = bodies.iter().find(|b| b["type"] == "user.created").unwrap();
    assert_eq!(created["data"]["id"], uid.as_str());
    assert_eq!(created["data"]["userName"], "ada");
    let delivered =
        h.d1.query("SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'delivered'");
    assert_eq!(delivered[0]["n"], 3);
    // A duplicate message is acknowledged from D1's log, without a hop or a POST.
    let hops = h.objects.hops.get();
    assert_eq!(h.deliver(&sent[0], &rx), Verdict::Ack);
    assert_eq!((h.objects.hops.get(), bodies.len()), (hops, 3));
    drop(bodies);
    // A redelivery finds the event in the object; D1's sweep sends it, as for a D1 tenant.
    let first = sent.iter().find(|q| q.endpoint == all).unwrap().clone();
    let r = h.call(
        Method::Post,
        &format!("/admin/api/tenants/default/webhooks/{all}/redeliver"),
        ADMIN,
        Some(json!({"seq": first.seq})),
    );
    assert_eq!(r.status, 202, "{}", text(&r));
    assert_eq!(r.body_json()["queued"], 1);
    block_on(deliver::sweep(&h.d1, &d1_queue, h.now_ms)).unwrap();
    assert_eq!(*d1_queue.0.borrow(), vec![first.clone()]);
    assert_eq!(h.deliver(&first, &rx), Verdict::Ack);
    assert_eq!(rx.0.borrow().len(), 4);
    // A deleted endpoint leaves the object's mirror; the rest keep their place.
    let r = h.call(
        Method::Delete,
        &format!("/admin/api/tenants/default/webhooks/{all}"),
        ADMIN,
        None,
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        h.scim(Method::Post, "/Users", Some(user("grace"))).status,
        201
    );
    let sent = h.sweep_object(&queue);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].endpoint.as_str(), sent[0].kind.as_str()),
        (created_only.as_str(), "user.created")
    );
    let mirrored = h.rows("default", "SELECT id, secret FROM webhooks");
    assert_eq!(mirrored.len(), 1);
    assert_eq!(
        mirrored[0]["secret"], "",
        "no secret is copied into an object"
    );
}

const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

fn declaration() -> Value {
    json!({"resourceType": "User", "schema": {"id": CUSTOM, "name": "Custom", "attributes": [
        {"name": "badge", "type": "integer"},
        {"name": "code", "type": "string", "uniqueness": "server"},
        {"name": "secret", "type": "string", "returned": "never"}
    ]}})
}

fn custom_user(name: &str, ext: Value) -> Value {
    json!({"schemas": [USER_SCHEMA, CUSTOM], "userName": name, CUSTOM: ext})
}

impl H {
    fn admin(&mut self, method: Method, path: &str, body: Option<Value>) -> Response {
        self.call(method, &format!("/admin/api{path}"), ADMIN, body)
    }
}

#[test]
fn declared_schemas_are_enforced_by_the_object_and_checked_against_its_data() {
    let mut h = H::new();
    // Kept verbatim before the declaration: a badge that is not an integer, a shared code.
    for (name, badge) in [("early1", json!("seven")), ("early2", json!(2))] {
        let r = h.scim(
            Method::Post,
            "/Users",
            Some(custom_user(name, json!({"badge": badge, "code": "DUP"}))),
        );
        assert_eq!(r.status, 201, "{}", text(&r));
    }
    let path = format!("/tenants/default/schemas/{CUSTOM}");
    let r = h.admin(Method::Put, &path, Some(declaration()));
    assert_eq!(r.status, 201, "{}", text(&r));
    // The object's data was checked (D1 holds none of it).
    let stored = &r.body_json()["stored"];
    assert_eq!(stored["checked"], 2, "{stored}");
    assert_eq!(stored["conflicting"], 1, "{stored}");
    assert_eq!(stored["duplicateValues"], 1, "{stored}");
    assert_eq!(
        h.rows("default", "SELECT count(*) AS n FROM tenant_schemas")[0]["n"],
        1
    );
    // Types, uniqueness (the object's unique_values), returned:never, typed filters.
    let r = h.scim(
        Method::Post,
        "/Users",
        Some(custom_user("bad", json!({"badge": "x"}))),
    );
    assert_eq!(r.status, 400, "{}", text(&r));
    let r = h.scim(
        Method::Post,
        "/Users",
        Some(custom_user(
            "c1",
            json!({"badge": 10, "code": "E1", "secret": "s"}),
        )),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    assert!(
        r.body_json()[CUSTOM].get("secret").is_none(),
        "{}",
        text(&r)
    );
    let r = h.scim(
        Method::Post,
        "/Users",
        Some(custom_user("c2", json!({"code": "e1"}))),
    );
    assert_eq!(r.status, 409, "{}", text(&r));
    let filter = format!("{CUSTOM}:badge%20eq%2010");
    let r = h.scim(Method::Get, &format!("/Users?filter={filter}"), None);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.body_json()["totalResults"], 1, "{}", text(&r));
    // Removed: the object's copy goes with it, and anything is kept again.
    let r = h.admin(Method::Delete, &path, None);
    assert_eq!(r.status, 204, "{}", text(&r));
    assert_eq!(
        h.rows("default", "SELECT count(*) AS n FROM tenant_schemas")[0]["n"],
        0
    );
    let r = h.scim(
        Method::Post,
        "/Users",
        Some(custom_user("free", json!({"badge": "x", "code": "E1"}))),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
}

#[test]
fn an_object_with_stale_declarations_gets_d1s_before_it_runs_anything() {
    let mut h = H::new();
    let r = h.admin(
        Method::Put,
        &format!("/tenants/default/schemas/{CUSTOM}"),
        Some(declaration()),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    // Another isolate's admin change reached D1 but not this object (its push failed).
    h.objects.db("default").query("DELETE FROM tenant_schemas");
    let hops = h.objects.hops.get();
    let passed = h.objects.passed.get();
    let r = h.scim(
        Method::Post,
        "/Users",
        Some(custom_user("bad", json!({"badge": "x"}))),
    );
    assert_eq!(
        r.status,
        400,
        "validated with D1's declarations: {}",
        text(&r)
    );
    assert_eq!(
        h.objects.hops.get() - hops,
        3,
        "refused, updated, run again"
    );
    assert_eq!(
        h.objects.passed.get() - passed,
        1,
        "the stale answer and the declarations were read, the answer passed on"
    );
    assert_eq!(
        h.rows("default", "SELECT count(*) AS n FROM tenant_schemas")[0]["n"],
        1
    );
    let events = h.rows("default", "SELECT count(*) AS n FROM events");
    assert_eq!(events[0]["n"], 1, "the refused attempt ran nothing");
    let hops = h.objects.hops.get();
    h.scim(Method::Get, "/Users", None);
    assert_eq!(h.objects.hops.get() - hops, 1);
}

#[test]
fn the_admin_quota_reaches_the_object() {
    let mut h = H::new();
    let r = h.admin(
        Method::Patch,
        "/tenants/default",
        Some(json!({"quota": {"resources": 1}})),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let user = |n: &str| json!({"schemas": [USER_SCHEMA], "userName": n});
    assert_eq!(
        h.scim(Method::Post, "/Users", Some(user("one"))).status,
        201
    );
    let r = h.scim(Method::Post, "/Users", Some(user("two")));
    assert_eq!(r.status, 507, "{}", text(&r));
    let quota = h.rows(
        "default",
        "SELECT max_resources, max_bytes FROM tenants WHERE id = 'default'",
    );
    assert_eq!(quota[0]["max_resources"], 1);
    let r = h.admin(
        Method::Patch,
        "/tenants/default",
        Some(json!({"quota": {"resources": null}})),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(
        h.scim(Method::Post, "/Users", Some(user("two"))).status,
        201
    );
}

#[test]
fn the_admin_api_reads_the_directory_and_its_log_from_the_object() {
    let mut h = H::new();
    let r = h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "ada", "active": "True"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let uid = r.body_json()["id"].as_str().unwrap().to_string();
    let r = h.scim(Method::Get, "/Users/nope", None);
    assert_eq!(r.status, 404);
    let passed = h.objects.passed.get();
    let r = h.admin(Method::Get, "/tenants/default/events", None);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(
        h.objects.passed.get(),
        passed,
        "the worker reads the log (its grants)"
    );
    let events = r.body_json()["events"].clone();
    assert_eq!(events.as_array().unwrap().len(), 1, "{events}");
    assert_eq!(events[0]["op"], "create");
    assert_eq!(events[0]["resourceId"], uid.as_str());
    let r = h.admin(Method::Get, "/tenants/default/events/summary?days=2", None);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.body_json()["days"][0]["create"], 1, "{}", text(&r));
    let r = h.admin(Method::Get, "/tenants/default/tolerances", None);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert!(text(&r).contains("\"count\":1"), "{}", text(&r));
    let r = h.admin(Method::Get, "/tenants/default/Users", None);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.body_json()["Resources"][0]["id"], uid.as_str());
    let r = h.admin(Method::Get, "/tenants/default", None);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.body_json()["usage"]["resources"], 1, "{}", text(&r));
    assert!(r.body_json()["usage"]["bytes"].as_i64().unwrap() > 0);
    // A tenant D1 does not have is 404, and no object is made for it.
    let r = h.admin(Method::Get, "/tenants/ghost/events", None);
    assert_eq!(r.status, 404, "{}", text(&r));
    assert!(h.objects.dbs.borrow().get("ghost").is_none());
    assert_eq!(h.d1.query("SELECT count(*) AS n FROM events")[0]["n"], 0);
}

/// Checks an HS256 SET's signature with `key`; its claims.
fn verified_claims(token: &str, key: &[u8]) -> Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let parts: Vec<&str> = token.split('.').collect();
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap())
        .expect("signed with the stream's key");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

#[test]
fn a_poll_stream_serves_the_objects_change_feed() {
    use base64::Engine as _;
    let mut h = H::new();
    // Before the stream: not served by it.
    let r = h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "before"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let r = h.admin(
        Method::Post,
        "/tenants/default/webhooks",
        Some(json!({"format": "set", "delivery": "poll"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let stream = r.body_json()["id"].as_str().unwrap().to_string();
    let secret = r.body_json()["secret"].as_str().unwrap().to_string();
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..3 {
        let user = json!({"schemas": [USER_SCHEMA], "userName": format!("p{n}")});
        let r = h.scim(Method::Post, "/Users", Some(user));
        ids.push(r.body_json()["id"].as_str().unwrap().to_string());
    }
    let path = format!("/Events/{stream}");
    let r = h.scim(Method::Post, &path, Some(json!({"maxEvents": 2})));
    assert_eq!(r.status, 200, "{}", text(&r));
    let b = r.body_json();
    assert_eq!(b["moreAvailable"], true, "{b}");
    let sets = b["sets"].as_object().unwrap().clone();
    assert_eq!(sets.len(), 2);
    let jtis: Vec<String> = sets.keys().cloned().collect();
    for token in sets.values() {
        let claims = verified_claims(token.as_str().unwrap(), &key);
        assert!(claims.to_string().contains(&ids[0]) || claims.to_string().contains(&ids[1]));
    }
    // Acknowledged: the next poll serves the third, and the object keeps the delivery log.
    let r = h.scim(Method::Post, &path, Some(json!({"ack": jtis})));
    let b = r.body_json();
    assert_eq!(b["sets"].as_object().unwrap().len(), 1, "{b}");
    assert_eq!(b["moreAvailable"], false);
    let acked = h.rows(
        "default",
        "SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'delivered'",
    );
    assert_eq!(acked[0]["n"], 2);
    assert_eq!(
        h.d1.query("SELECT count(*) AS n FROM webhook_deliveries")[0]["n"],
        0
    );
    // The admin API's delivery log of the stream is the object's.
    let log = format!("/tenants/default/webhooks/{stream}/deliveries");
    let r = h.admin(Method::Get, &log, None);
    assert_eq!(r.status, 200, "{}", text(&r));
    let items = r.body_json()["deliveries"].clone();
    let acked: Vec<&Value> = items
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "delivered")
        .collect();
    assert_eq!(acked.len(), 2, "{items}");
    let r = h.admin(
        Method::Get,
        "/tenants/default/webhooks/wh_nope/deliveries",
        None,
    );
    assert_eq!(r.status, 404, "{}", text(&r));
    // A stream D1 does not have is 404 before any hop; a disabled one is refused.
    let hops = h.objects.hops.get();
    let r = h.scim(Method::Post, "/Events/wh_nope", Some(json!({})));
    assert_eq!(r.status, 404, "{}", text(&r));
    assert_eq!(h.objects.hops.get(), hops);
    let r = h.admin(
        Method::Patch,
        &format!("/tenants/default/webhooks/{stream}"),
        Some(json!({"enabled": false})),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let r = h.scim(Method::Post, &path, Some(json!({})));
    assert_eq!(r.status, 403, "{}", text(&r));
}

/// The deletion policy set through the admin API (D1) reaches the tenant's object with the
/// next request: the object's DELETE keeps a tombstone there, and `restoreOnCreate` brings
/// Entra's recreated user back under its id.
#[test]
fn the_deletion_policy_reaches_the_object() {
    let mut h = H::new();
    let r = h.call(
        Method::Patch,
        "/admin/api/tenants/default",
        ADMIN,
        Some(json!({"deletion": {"policy": "soft", "days": 3, "restoreOnCreate": true}})),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let user = json!({"schemas": [USER_SCHEMA], "userName": "ada", "externalId": "ext-ada"});
    let r = h.scim(Method::Post, "/Users", Some(user.clone()));
    assert_eq!(r.status, 201, "{}", text(&r));
    let uid = r.body_json()["id"].as_str().unwrap().to_string();
    let r = h.scim(Method::Delete, &format!("/Users/{uid}"), None);
    assert_eq!(r.status, 204, "{}", text(&r));
    let kept = h.rows("default", "SELECT id FROM tombstones");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["id"], json!(uid));
    let r = h.scim(Method::Post, "/Users", Some(user));
    assert_eq!(r.status, 201, "{}", text(&r));
    assert_eq!(r.body_json()["id"], json!(uid));
    assert!(h.rows("default", "SELECT id FROM tombstones").is_empty());
}

/// The object's webhook sweep mirrors the tenant's push endpoints into its `webhooks` table,
/// where the copy of a poll stream (its floor, its acknowledgements) also lives: the sweep
/// must leave the stream's copy alone, and the stream keeps its place.
#[test]
fn an_objects_webhook_sweep_keeps_its_poll_streams_copy() {
    let mut h = H::new();
    let user = |n: &str| json!({"schemas": [USER_SCHEMA], "userName": n});
    let stream = h.endpoint(json!({"format": "set", "delivery": "poll"}));
    assert_eq!(h.scim(Method::Post, "/Users", Some(user("p0"))).status, 201);
    let path = format!("/Events/{stream}");
    let r = h.scim(Method::Post, &path, Some(json!({})));
    assert_eq!(r.status, 200, "{}", text(&r));
    let first: Vec<String> = r.body_json()["sets"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(first.len(), 1);
    let push = h.endpoint(json!({"url": "https://app.example/hook"}));
    assert_eq!(h.scim(Method::Post, "/Users", Some(user("p1"))).status, 201);
    let queue = Queue::default();
    let sent = h.sweep_object(&queue);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].endpoint, push);
    let copies = h.rows(
        "default",
        "SELECT id FROM webhooks WHERE url = '' ORDER BY id",
    );
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0]["id"], stream.as_str());
    // Acknowledged: the next poll serves p1's change only, from the kept floor.
    let r = h.scim(Method::Post, &path, Some(json!({"ack": first})));
    assert_eq!(r.status, 200, "{}", text(&r));
    let sets = r.body_json()["sets"].as_object().unwrap().clone();
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert!(!sets.contains_key(&first[0]));
    // Deleting the push endpoint takes only it out of the object.
    let r = h.call(
        Method::Delete,
        &format!("/admin/api/tenants/default/webhooks/{push}"),
        ADMIN,
        None,
    );
    assert_eq!(r.status, 204);
    assert!(h.sweep_object(&queue).is_empty());
    let left = h.rows("default", "SELECT id FROM webhooks");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], stream.as_str());
}

/// The object's log has each event's credential id; which OAuth grant the credential came
/// from is D1's to say (credentials are the control plane's), and the worker fills it in.
#[test]
fn the_objects_log_names_the_grant_of_each_events_token_from_d1() {
    let mut h = H::new();
    let r = h.admin(
        Method::Post,
        "/tenants/default/tokens",
        Some(json!({"type": "oauth_client", "label": "Entra"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let c = r.body_json();
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        c["clientId"].as_str().unwrap(),
        c["clientSecret"].as_str().unwrap()
    );
    let req = Request::new(Method::Post, "/t/default/oauth/token", ORIGIN)
        .with_header("Content-Type", "application/x-www-form-urlencoded")
        .with_body(form);
    let r = h.send(req);
    assert_eq!(r.status, 200, "{}", text(&r));
    let access = r.body_json()["access_token"].as_str().unwrap().to_string();
    let user = |n: &str| json!({"schemas": [USER_SCHEMA], "userName": n});
    let r = h.call(Method::Post, "/scim/v2/Users", &access, Some(user("oauth")));
    assert_eq!(r.status, 201, "{}", text(&r));
    assert_eq!(
        h.scim(Method::Post, "/Users", Some(user("env"))).status,
        201
    );
    let r = h.admin(Method::Get, "/tenants/default/events", None);
    assert_eq!(r.status, 200, "{}", text(&r));
    let events = r.body_json()["events"].clone();
    let grants: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["grant"])
        .collect();
    assert_eq!(
        grants,
        [&json!("client_credentials"), &Value::Null],
        "{events}"
    );
    assert!(events[0]["credential"].is_string(), "{events}");
}

/// The admin API's tombstone routes reach the object: the list is the object's, a restore
/// runs there (with its event in the object's log) and a clash there is the same 409.
#[test]
fn the_admin_api_lists_and_restores_the_objects_tombstones() {
    let mut h = H::new();
    let r = h.admin(
        Method::Patch,
        "/tenants/default",
        Some(json!({"deletion": {"policy": "soft", "days": 3}})),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let user = json!({"schemas": [USER_SCHEMA], "userName": "ada", "externalId": "ext-ada"});
    let r = h.scim(Method::Post, "/Users", Some(user));
    assert_eq!(r.status, 201, "{}", text(&r));
    let uid = r.body_json()["id"].as_str().unwrap().to_string();
    let r = h.scim(
        Method::Post,
        "/Groups",
        Some(json!({"schemas": [GROUP_SCHEMA], "displayName": "eng", "members": [{"value": uid}]})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let gid = r.body_json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        h.scim(Method::Delete, &format!("/Users/{uid}"), None)
            .status,
        204
    );

    let r = h.admin(Method::Get, "/tenants/default/tombstones?type=User", None);
    assert_eq!(r.status, 200, "{}", text(&r));
    let list = r.body_json()["tombstones"].clone();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["id"], json!(uid));
    assert_eq!(list[0]["userName"], "ada");
    assert_eq!(list[0]["externalId"], "ext-ada");
    assert!(
        h.d1.query("SELECT id FROM tombstones").is_empty(),
        "none in D1"
    );
    let r = h.admin(Method::Get, "/tenants/default/tombstones?type=Group", None);
    assert_eq!(r.body_json()["tombstones"], json!([]), "{}", text(&r));
    let r = h.admin(Method::Put, "/tenants/default/tombstones", None);
    assert_eq!(r.status, 405, "{}", text(&r));

    // Taken meanwhile: 409, and nothing changes in the object.
    let r = h.scim(
        Method::Post,
        "/Users",
        Some(json!({"schemas": [USER_SCHEMA], "userName": "ADA"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let taker = r.body_json()["id"].as_str().unwrap().to_string();
    let restore = format!("/tenants/default/tombstones/{uid}/restore");
    let r = h.admin(Method::Post, &restore, None);
    assert_eq!(r.status, 409, "{}", text(&r));
    assert_eq!(r.body_json()["error"], "conflict");
    assert_eq!(h.rows("default", "SELECT id FROM tombstones").len(), 1);
    assert_eq!(
        h.scim(Method::Delete, &format!("/Users/{taker}"), None)
            .status,
        204
    );

    let r = h.admin(Method::Post, &restore, None);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.body_json()["id"], json!(uid));
    assert_eq!(
        r.body_json()["meta"]["location"],
        json!(format!("{ORIGIN}/t/default/scim/v2/Users/{uid}"))
    );
    let r = h.scim(Method::Get, &format!("/Groups/{gid}"), None);
    assert_eq!(
        r.body_json()["members"][0]["value"],
        json!(uid),
        "{}",
        text(&r)
    );
    let sql = format!("SELECT op, lifecycle FROM events WHERE resource_id = '{uid}' ORDER BY seq");
    let log: Vec<(Value, Value)> = h
        .rows("default", &sql)
        .into_iter()
        .map(|e| (e["op"].clone(), e["lifecycle"].clone()))
        .collect();
    assert_eq!(
        log,
        vec![
            (json!("create"), Value::Null),
            (json!("delete"), json!("soft")),
            (json!("create"), json!("restore")),
        ]
    );
    let r = h.admin(Method::Post, &restore, None);
    assert_eq!(r.status, 404, "{}", text(&r));
    // The worker answers for a tenant D1 does not have, without making its object.
    let r = h.admin(Method::Get, "/tenants/ghost/tombstones", None);
    assert_eq!(r.status, 404, "{}", text(&r));
    assert!(h.objects.dbs.borrow().get("ghost").is_none());
}

/// The object's own purge (the cron cannot reach objects): tombstones past the days the
/// request's settings name go, with their kept memberships and a `purge` event each in the
/// object's log; younger ones stay. The settings of the request win over the object's row.
#[test]
fn the_object_purges_its_tombstones_with_the_policy_the_worker_sent() {
    use crate::service::relay::{purge, Relayed};
    let mut h = H::new();
    let r = h.admin(
        Method::Patch,
        "/tenants/default",
        Some(json!({"deletion": {"policy": "soft", "days": 3}})),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let mut ids = Vec::new();
    for name in ["old", "young"] {
        let r = h.scim(
            Method::Post,
            "/Users",
            Some(json!({"schemas": [USER_SCHEMA], "userName": name})),
        );
        assert_eq!(r.status, 201, "{}", text(&r));
        ids.push(r.body_json()["id"].as_str().unwrap().to_string());
    }
    let r = h.scim(
        Method::Post,
        "/Groups",
        Some(json!({"schemas": [GROUP_SCHEMA], "displayName": "eng", "members": [{"value": ids[0]}]})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    for id in &ids {
        assert_eq!(
            h.scim(Method::Delete, &format!("/Users/{id}"), None).status,
            204
        );
    }
    let four_days = crate::proto::time::format_millis(h.now_ms - 4 * 86_400_000);
    h.rows(
        "default",
        &format!(
            "UPDATE tombstones SET deleted = '{four_days}' WHERE id = '{}'",
            ids[0]
        ),
    );
    let sent = h
        .objects
        .last
        .borrow()
        .clone()
        .expect("a request reached the object");
    let relayed = Relayed::of(&sent).expect("the worker's settings");
    let db = h.objects.db("default");
    // A second after the last DELETE.
    let (config, now) = (h.objects.config.clone(), h.now_ms + 1000);
    let run = |days: Option<i64>| {
        let mut r = relayed.clone();
        r.deletion.days = days;
        let ctx = Ctx::new(db.as_ref(), &config, now);
        block_on(purge(&ctx, &r.request(&sent))).expect("purge")
    };
    let left = || -> Vec<Value> {
        db.query("SELECT id FROM tombstones ORDER BY deleted")
            .into_iter()
            .map(|r| r["id"].clone())
            .collect()
    };
    // The object's row says 3 days; the admin made it 5 since: the 4-day-old one stays.
    assert!(run(Some(5)));
    assert_eq!(left(), vec![json!(ids[0]), json!(ids[1])]);
    assert!(db
        .query("SELECT * FROM events WHERE lifecycle = 'purge'")
        .is_empty());
    assert_eq!(
        db.query("SELECT deletion_days AS d FROM tenants")[0]["d"],
        5
    );

    assert!(run(Some(3)));
    assert_eq!(left(), vec![json!(ids[1])]);
    let purged = db.query(
        "SELECT op, resource_id, resource_type, status FROM events WHERE lifecycle = 'purge'",
    );
    assert_eq!(
        purged,
        vec![
            json!({"op": "delete", "resource_id": ids[0], "resource_type": "User", "status": 204})
                .as_object()
                .cloned()
                .unwrap()
        ]
    );
    assert!(
        db.query("SELECT * FROM tombstone_members").is_empty(),
        "its membership went with it"
    );
    let r = h.admin(
        Method::Post,
        &format!("/tenants/default/tombstones/{}/restore", ids[0]),
        None,
    );
    assert_eq!(r.status, 404, "{}", text(&r));

    // Back on `hard`: every tombstone goes, as with the cron.
    assert!(run(None));
    assert!(left().is_empty());
    assert_eq!(
        db.query("SELECT * FROM events WHERE lifecycle = 'purge'")
            .len(),
        2
    );

    // Only a request the worker relayed can start a purge.
    let ctx = Ctx::new(db.as_ref(), &config, now);
    let bare = Request::new(Method::Get, "/scim/v2/Users", ORIGIN);
    assert!(!block_on(purge(&ctx, &bare)).expect("no purge"));
}

/// The object's transactions of a GET by id: the request's own, after the first request.
fn object_trips(h: &mut H, path: &str) -> usize {
    let db = h.objects.db("default");
    let before = db.round_trips.get();
    let r = h.scim(Method::Get, path, None);
    assert_eq!(r.status, 200, "{}", text(&r));
    db.round_trips.get() - before
}

#[test]
fn unchanged_settings_cost_the_object_no_transaction_and_a_change_still_reaches_it() {
    let mut h = H::new();
    let user = json!({"schemas": [USER_SCHEMA], "userName": "u"});
    let r = h.scim(Method::Post, "/Users", Some(user));
    assert_eq!(r.status, 201, "{}", text(&r));
    let path = format!("/Users/{}", r.body_json()["id"].as_str().unwrap());
    // The settings were mirrored by the POST: a GET is its one read.
    assert_eq!(object_trips(&mut h, &path), 1);
    assert_eq!(object_trips(&mut h, &path), 1);
    // A setting changed in D1 reaches the object's row with the next request (one more
    // transaction), after which reads are one transaction again.
    h.d1.query("UPDATE tenants SET strict_patch = 1 WHERE id = 'default'");
    crate::service::profile::isolate_cache().invalidate("default");
    assert_eq!(object_trips(&mut h, &path), 2);
    let row = |h: &H| {
        h.rows(
            "default",
            "SELECT strict_patch FROM tenants WHERE id = 'default'",
        )
    };
    assert_eq!(row(&h)[0]["strict_patch"], 1);
    assert_eq!(object_trips(&mut h, &path), 1);
    // A new instance of the object mirrors again, whatever the isolate's cache holds: its
    // row may have been written by an instance elsewhere.
    h.objects
        .db("default")
        .query("UPDATE tenants SET strict_patch = 0 WHERE id = 'default'");
    assert_eq!(
        object_trips(&mut h, &path),
        1,
        "the same instance trusts its own write"
    );
    h.objects.adopted.borrow_mut().clear();
    assert_eq!(object_trips(&mut h, &path), 2);
    assert_eq!(row(&h)[0]["strict_patch"], 1);
    // An admin call in the object (it may rewrite the row) makes the next request mirror.
    let r = h.admin(Method::Get, "/tenants/default/events", None);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(object_trips(&mut h, &path), 2);
    // After the profile cache's TTL the object reads its settings again.
    h.now_ms += crate::service::profile::TTL_MS;
    assert_eq!(object_trips(&mut h, &path), 2);
}
