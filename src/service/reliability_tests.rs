//! Faults and races, natively: a failing database answers 500 with a SCIM Error that leaks
//! nothing and the next request is served; a batch that fails part-way leaves nothing
//! half-done; membership-only PATCHes and PUTs without If-Match cannot lose a race.
//! `tests/e2e/faults.test.mjs` and `tests/e2e/concurrency.test.mjs` repeat this in workerd.

use crate::proto::schema::{GROUP_SCHEMA, PATCH_OP_SCHEMA, USER_SCHEMA};
use crate::service::ctx::{Config, Ctx};
use crate::service::handle;
use crate::service::http::{Method, Request, Response};
use crate::store::sql::Stmt;
use crate::store::{Db, DbError, MemberChange, NewData, Row, Store, Update, Write};
use crate::testing::{block_on, SqliteDb};
use serde_json::{json, Value};
use std::cell::RefCell;

const TOKEN: &str = "reliability-token-0123456789";
/// What a database error says; none of it may reach a client.
const SECRET_DETAIL: &str = "D1_ERROR: SQLITE_IOERR on shard 7f3a (internal detail)";

/// SQLite that fails every batch containing a statement whose SQL contains `fail_on`.
struct FaultyDb {
    inner: SqliteDb,
    fail_on: RefCell<Option<&'static str>>,
}

impl Db for FaultyDb {
    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<Vec<Row>>, DbError> {
        if let Some(pat) = *self.fail_on.borrow() {
            if stmts.iter().any(|s| s.sql.contains(pat)) {
                return Err(DbError::from_message(SECRET_DETAIL));
            }
        }
        self.inner.batch(stmts).await
    }
}

struct H {
    db: FaultyDb,
    config: Config,
    now_ms: i64,
}

impl H {
    fn new() -> H {
        H {
            db: FaultyDb {
                inner: SqliteDb::new(),
                fail_on: RefCell::new(None),
            },
            config: Config {
                tokens: vec![TOKEN.into()],
                ..Config::default()
            },
            now_ms: 1_700_000_000_000,
        }
    }

    fn call(&mut self, method: Method, path: &str, body: Option<Value>) -> Response {
        self.call_with(method, path, body, &[])
    }

    fn call_with(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        self.now_ms += 1000;
        let mut req = Request::new(method, &format!("/scim/v2{path}"), "https://scim.test")
            .with_header("Authorization", &format!("Bearer {TOKEN}"));
        for (k, v) in headers {
            req = req.with_header(k, v);
        }
        if let Some(b) = body {
            req = req
                .with_header("Content-Type", "application/scim+json")
                .with_body(b.to_string());
        }
        let ctx = Ctx::new(&self.db, &self.config, self.now_ms);
        block_on(handle(&ctx, &req))
    }

    fn create(&mut self, path: &str, body: Value) -> String {
        let r = self.call(Method::Post, path, Some(body));
        assert_eq!(r.status, 201, "{}", r.body_json());
        r.body_json()["id"].as_str().expect("id").to_string()
    }

    fn user(&mut self, name: &str) -> String {
        self.create(
            "/Users",
            json!({"schemas": [USER_SCHEMA], "userName": name}),
        )
    }

    fn rows(&self, sql: &str) -> Vec<Row> {
        self.db.inner.query(sql)
    }

    /// Everything stored, for before/after comparisons.
    fn snapshot(&self) -> (Vec<Row>, Vec<Row>) {
        (
            self.rows("SELECT id, data, modified, version FROM resources ORDER BY id"),
            self.rows("SELECT group_id, member_id FROM members ORDER BY group_id, member_id"),
        )
    }
}

fn patch_ops(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
}

/// A 500 that is a SCIM Error, names the request id, and says nothing about the cause.
fn assert_opaque_500(r: &Response) {
    let body = r.body_json();
    assert_eq!(r.status, 500, "{body}");
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(body["status"], "500");
    assert!(body.get("scimType").is_none());
    let text = String::from_utf8_lossy(&r.body);
    for leak in [
        "SQLITE",
        "D1_ERROR",
        "shard",
        "internal detail",
        "RAISE",
        "fault",
    ] {
        assert!(!text.contains(leak), "'{leak}' leaked: {text}");
    }
    let rid = r.header("x-request-id").expect("request id");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains(rid)));
    // The cause goes to the operator's log (the glue prints notes), not to the client.
    assert!(
        r.notes.iter().any(|n| n.starts_with("database: ")),
        "{:?}",
        r.notes
    );
}

#[test]
fn a_database_error_is_an_opaque_500_and_the_next_request_is_served() {
    let mut h = H::new();
    let id = h.user("fault.reader@contoso.com");
    for (method, path, body, fail_on) in [
        (Method::Get, format!("/Users/{id}"), None, "SELECT"),
        (
            Method::Get,
            "/Users?filter=userName+pr".to_string(),
            None,
            "count(*)",
        ),
        (
            Method::Post,
            "/Users".to_string(),
            Some(json!({"schemas": [USER_SCHEMA], "userName": "fault.new"})),
            "INSERT INTO resources",
        ),
        (
            Method::Put,
            format!("/Users/{id}"),
            Some(json!({"schemas": [USER_SCHEMA], "userName": "fault.put"})),
            "UPDATE resources",
        ),
        (
            Method::Patch,
            format!("/Users/{id}"),
            Some(patch_ops(
                json!([{"op": "add", "path": "title", "value": "x"}]),
            )),
            "UPDATE resources",
        ),
        (
            Method::Delete,
            format!("/Users/{id}"),
            None,
            "DELETE FROM resources",
        ),
    ] {
        let before = h.snapshot();
        *h.db.fail_on.borrow_mut() = Some(fail_on);
        let r = h.call(method, &path, body);
        assert_opaque_500(&r);
        *h.db.fail_on.borrow_mut() = None;
        assert_eq!(h.snapshot(), before, "{path}: nothing changed");
        let next = h.call(Method::Get, &format!("/Users/{id}"), None);
        assert_eq!(next.status, 200, "the next request is served normally");
    }
}

/// Installs a trigger that fails any insert of `member_id` into `members`, as a stand-in for
/// a database failure in the middle of a batch.
fn fail_member_inserts(h: &H, member_id: &str) {
    h.rows(&format!(
        "CREATE TRIGGER injected_fault BEFORE INSERT ON members WHEN NEW.member_id = '{member_id}' \
         BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
    ));
}

#[test]
fn a_batch_whose_later_statement_fails_rolls_back_the_earlier_ones() {
    let mut h = H::new();
    let a = h.user("a@contoso.com");
    let b = h.user("b@contoso.com");
    let poison = h.user("poison@contoso.com");
    let g = h.create(
        "/Groups",
        json!({"schemas": [GROUP_SCHEMA], "displayName": "Atomic", "members": [{"value": a}, {"value": b}]}),
    );
    fail_member_inserts(&h, &poison);
    let before = h.snapshot();

    // PATCH: the rename (statement 1) applies before the member insert (statement 2) fails.
    let r = h.call(
        Method::Patch,
        &format!("/Groups/{g}"),
        Some(patch_ops(json!([
            {"op": "replace", "path": "displayName", "value": "Renamed"},
            {"op": "add", "path": "members", "value": [{"value": poison}]}
        ]))),
    );
    assert_opaque_500(&r);
    assert_eq!(
        h.snapshot(),
        before,
        "the rename was rolled back with the insert"
    );

    // PUT of a group: "remove all members" runs before the failing insert; the members stay.
    let r = h.call(
        Method::Put,
        &format!("/Groups/{g}"),
        Some(json!({"schemas": [GROUP_SCHEMA], "displayName": "Atomic", "members": [{"value": poison}]})),
    );
    assert_opaque_500(&r);
    assert_eq!(h.snapshot(), before, "no member was removed");

    // POST of a group: the resource row is inserted before the failing member insert.
    let r = h.call(
        Method::Post,
        "/Groups",
        Some(json!({"schemas": [GROUP_SCHEMA], "displayName": "Half", "members": [{"value": a}, {"value": poison}]})),
    );
    assert_opaque_500(&r);
    assert_eq!(h.snapshot(), before, "no group without its members");

    // The same requests without the poisoned member go through.
    let r = h.call(
        Method::Patch,
        &format!("/Groups/{g}"),
        Some(patch_ops(
            json!([{"op": "replace", "path": "displayName", "value": "Renamed"}]),
        )),
    );
    assert_eq!(r.status, 204);
}

#[test]
fn the_store_rolls_back_a_failed_batch_at_the_sql_level() {
    let h = H::new();
    let db = &h.db.inner;
    let res = block_on(db.batch(vec![
        Stmt::new(
            "INSERT INTO resources (tenant, id, type, data, created, modified, version) \
             VALUES ('default', 'r1', 'User', '{\"userName\":\"r1\"}', 'c', 'm', 1)",
            vec![],
        ),
        // Violates the CHECK on `type`.
        Stmt::new(
            "INSERT INTO resources (tenant, id, type, data, created, modified, version) \
             VALUES ('default', 'r2', 'Device', '{}', 'c', 'm', 1)",
            vec![],
        ),
    ]));
    assert!(matches!(res, Err(DbError::Other(_))), "{res:?}");
    assert!(h
        .rows("SELECT id FROM resources WHERE id = 'r1'")
        .is_empty());
}

#[test]
fn membership_only_writes_cannot_lose_a_race_and_keep_concurrent_data_changes() {
    let mut h = H::new();
    let u1 = h.user("race1@contoso.com");
    let u2 = h.user("race2@contoso.com");
    let g = h.create(
        "/Groups",
        json!({"schemas": [GROUP_SCHEMA], "displayName": "Race"}),
    );
    let store = Store::new(&h.db, "default");
    let group = crate::proto::schema::ResourceType::Group;
    // Request A reads the group ...
    let stale = block_on(store.get(group, &g, false)).unwrap().unwrap();
    // ... request B renames it in between ...
    let stale_data = stale.attributes().unwrap();
    let mut renamed = stale_data.clone();
    renamed.insert("displayName".into(), json!("Race Renamed"));
    let b = Update {
        rt: group,
        id: &g,
        expected: Some(stale.meta.version),
        data: Some(NewData::Attributes(&renamed)),
        members: &[MemberChange::Add(vec![u1.clone()])],
        now: "2024-01-01T00:00:00.000Z",
        with_related: false,
        tolerances: &[],
    };
    let Write::Done(after_b) = block_on(store.update(&b)).unwrap() else {
        panic!("B applies")
    };
    // ... then A writes. A data change conditioned on the stale version loses ...
    let a_data = Update {
        data: Some(NewData::Attributes(&stale_data)),
        members: &[],
        ..b.clone()
    };
    assert_eq!(block_on(store.update(&a_data)).unwrap(), Write::Conflict);
    // ... but a membership-only change needs no condition and keeps B's rename.
    let adds = [MemberChange::Add(vec![u2.clone()])];
    let a_members = Update {
        expected: None,
        data: None,
        members: &adds,
        with_related: true,
        now: "2024-01-01T00:00:01.000Z",
        ..b.clone()
    };
    let Write::Done(after_a) = block_on(store.update(&a_members)).unwrap() else {
        panic!("A applies")
    };
    assert_eq!(after_a.attributes().unwrap()["displayName"], "Race Renamed");
    assert_ne!(after_a.meta.version, after_b.meta.version, "a new version");
    assert_eq!(after_a.meta.modified, "2024-01-01T00:00:01.000Z");
    let mut members: Vec<String> = after_a
        .related
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.id)
        .collect();
    members.sort();
    let mut want = vec![u1, u2];
    want.sort();
    assert_eq!(members, want);
    // On a deleted group an unconditional write is NotFound and adds nothing.
    block_on(store.delete(group, &g, None)).unwrap();
    assert_eq!(block_on(store.update(&a_members)).unwrap(), Write::NotFound);
    assert!(h.rows("SELECT 1 FROM members").is_empty());
}

/// An update answers with the row its UPDATE wrote (RETURNING, groups or members included),
/// with no read-back statement, unless a group's member rows change after that UPDATE; and a
/// row the UPDATE missed is told apart without one.
#[test]
fn an_update_answers_with_the_row_it_wrote_and_reads_back_only_changed_members() {
    let mut h = H::new();
    let u = h.user("written@contoso.com");
    let u2 = h.user("written2@contoso.com");
    let g = h.create(
        "/Groups",
        json!({"schemas": [GROUP_SCHEMA], "displayName": "Written",
               "members": [{"value": u}]}),
    );
    let store = Store::new(&h.db, "default");
    let user = crate::proto::schema::ResourceType::User;
    let group = crate::proto::schema::ResourceType::Group;
    let before = block_on(store.get(user, &u, false)).unwrap().unwrap();
    let mut data = before.attributes().unwrap();
    data.insert("displayName".into(), json!("Written Anew"));
    let text = serde_json::to_string(&data).unwrap();
    let rename = Update {
        rt: user,
        id: &u,
        expected: Some(before.meta.version),
        data: Some(NewData::Text {
            text: &text,
            deactivating: false,
            reactivating: false,
        }),
        members: &[],
        now: "2024-02-02T00:00:00.000Z",
        with_related: true,
        tolerances: &[],
    };
    let statements = h.db.inner.statements.get();
    let Write::Done(after) = block_on(store.update(&rename)).unwrap() else {
        panic!("the rename applies")
    };
    assert_eq!(
        h.db.inner.statements.get() - statements,
        1,
        "the UPDATE alone"
    );
    let stored = block_on(store.get(user, &u, true)).unwrap().unwrap();
    assert_eq!(after, stored, "the answer is what is stored");
    assert_eq!(after.data, text);
    assert_eq!(after.meta.modified, "2024-02-02T00:00:00.000Z");
    assert_ne!(after.meta.version, before.meta.version);
    let groups: Vec<&str> = after
        .related
        .iter()
        .flatten()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(groups, [g.as_str()]);
    // The stale version now misses: a conflict, not a missing row.
    assert_eq!(block_on(store.update(&rename)).unwrap(), Write::Conflict);
    // A group's member change with its members wanted is read back after the member rows.
    let adds = [MemberChange::Add(vec![u2.clone()])];
    let add = Update {
        rt: group,
        id: &g,
        expected: None,
        data: None,
        members: &adds,
        ..rename.clone()
    };
    let Write::Done(grown) = block_on(store.update(&add)).unwrap() else {
        panic!("the add applies")
    };
    let mut members: Vec<String> = grown.related.unwrap().into_iter().map(|r| r.id).collect();
    members.sort();
    let mut want = vec![u.clone(), u2.clone()];
    want.sort();
    assert_eq!(members, want);
    assert_eq!(
        grown.data,
        block_on(store.get(group, &g, false)).unwrap().unwrap().data
    );
    // Without its members wanted, no read-back: the UPDATE and the member rows.
    let removes = [MemberChange::Remove(vec![u2.clone()])];
    let remove = Update {
        members: &removes,
        with_related: false,
        ..add.clone()
    };
    let statements = h.db.inner.statements.get();
    let Write::Done(shrunk) = block_on(store.update(&remove)).unwrap() else {
        panic!("the remove applies")
    };
    assert_eq!(h.db.inner.statements.get() - statements, 2);
    assert_eq!(shrunk.related, None);
    let stored = block_on(store.get(group, &g, false)).unwrap().unwrap();
    assert_eq!(shrunk, stored);
    // Gone: an unconditional write finds nothing; a conditional one is a conflict, which
    // the PATCH handler's retry turns into a 404 (and an If-Match into a 412).
    block_on(store.delete(user, &u, None)).unwrap();
    let again = Update {
        expected: Some(after.meta.version),
        ..rename.clone()
    };
    assert_eq!(block_on(store.update(&again)).unwrap(), Write::Conflict);
    let unconditional = Update {
        expected: None,
        ..rename.clone()
    };
    assert_eq!(
        block_on(store.update(&unconditional)).unwrap(),
        Write::NotFound
    );
    let r = h.call(
        Method::Patch,
        &format!("/Users/{u}"),
        Some(patch_ops(
            json!([{"op": "replace", "path": "displayName", "value": "x"}]),
        )),
    );
    assert_eq!(r.status, 404, "{}", r.body_json());
}

#[test]
fn membership_only_patch_is_unconditional_and_data_patches_stay_conditional() {
    let mut h = H::new();
    let u = h.user("m@contoso.com");
    let g = h.create(
        "/Groups",
        json!({"schemas": [GROUP_SCHEMA], "displayName": "Cond"}),
    );
    let etag = |h: &mut H| {
        h.call(Method::Get, &format!("/Groups/{g}"), None)
            .header("etag")
            .map(str::to_string)
            .expect("etag")
    };
    let v0 = etag(&mut h);
    let add = patch_ops(json!([{"op": "add", "path": "members", "value": [{"value": u}]}]));
    let r = h.call(Method::Patch, &format!("/Groups/{g}"), Some(add.clone()));
    assert_eq!(r.status, 204);
    let v1 = etag(&mut h);
    assert_ne!(v0, v1, "membership changes change the ETag");
    assert_eq!(r.header("etag"), Some(v1.as_str()));
    // With a stale If-Match a membership-only PATCH is still refused.
    let r = h.call_with(
        Method::Patch,
        &format!("/Groups/{g}"),
        Some(add),
        &[("If-Match", &v0)],
    );
    assert_eq!(r.status, 412);
    // PUT with If-Match reads first (two round trips); without, it is one write.
    let before = h.db.inner.round_trips.get();
    let put = json!({"schemas": [GROUP_SCHEMA], "displayName": "Cond 2"});
    let r = h.call_with(
        Method::Put,
        &format!("/Groups/{g}"),
        Some(put.clone()),
        &[("If-Match", &v1)],
    );
    assert_eq!(r.status, 200, "{}", r.body_json());
    assert_eq!(h.db.inner.round_trips.get() - before, 2);
    let r = h.call_with(
        Method::Put,
        &format!("/Groups/{g}"),
        Some(put.clone()),
        &[("If-Match", &v1)],
    );
    assert_eq!(r.status, 412, "the version changed");
    let r = h.call(Method::Put, "/Groups/no-such-group", Some(put));
    assert_eq!(r.status, 404);
}

#[test]
fn every_response_has_a_request_id_that_errors_quote() {
    let mut h = H::new();
    let id = h.user("rid@contoso.com");
    let mut seen = std::collections::HashSet::new();
    for (method, path, body) in [
        (Method::Get, format!("/Users/{id}"), None),
        (Method::Get, "/ServiceProviderConfig".to_string(), None),
        (Method::Get, "/Users/missing".to_string(), None),
        (Method::Delete, "/Users".to_string(), None),
        (
            Method::Post,
            "/Users".to_string(),
            Some(json!({"userName": 1})),
        ),
        (Method::Options, "/Users".to_string(), None),
    ] {
        let r = h.call(method, &path, body);
        let rid = r.header("x-request-id").expect("x-request-id").to_string();
        assert_eq!(rid.len(), 16, "{path}");
        assert!(seen.insert(rid.clone()), "request ids are unique");
        if r.status >= 400 {
            let detail = r.body_json()["detail"].as_str().unwrap_or("").to_string();
            assert!(detail.ends_with(&format!("(request id {rid})")), "{detail}");
        }
        assert!(
            !r.headers
                .iter()
                .any(|(k, _)| k.starts_with("access-control-")),
            "no CORS headers"
        );
    }
}

#[test]
fn deeply_nested_json_is_a_clean_400() {
    let h = H::new();
    for body in [
        "[".repeat(10_000) + &"]".repeat(10_000),
        format!(
            "{{\"schemas\":[\"{USER_SCHEMA}\"],\"userName\":\"x\",\"emails\":{}{}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        ),
        "{\"a\":".repeat(10_000) + "1" + &"}".repeat(10_000),
    ] {
        let mut req = Request::new(Method::Post, "/scim/v2/Users", "https://scim.test")
            .with_header("Authorization", &format!("Bearer {TOKEN}"))
            .with_body(body);
        req = req.with_header("Content-Type", "application/scim+json");
        let ctx = Ctx::new(&h.db, &h.config, h.now_ms);
        let r = block_on(handle(&ctx, &req));
        assert_eq!(r.status, 400);
        assert_eq!(r.body_json()["scimType"], "invalidSyntax");
    }
    assert!(h.rows("SELECT 1 FROM resources").is_empty());
}
