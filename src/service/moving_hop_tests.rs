//! A tenant's move between the two backends, natively: a deployment on D1 (`testing::Server`)
//! and one whose tenants' directories are in their own objects (`relay_tests::H`, the
//! worker's service over D1 handing the directory to one SQLite database per tenant through
//! `service::relay`). The tenant goes D1 → objects → D1, and every GET, list, ETag and the
//! log stay byte for byte what they were; the object backend's export is, record for record,
//! the D1 backend's. `tests/e2e/tenant_move.test.mjs` does the same in workerd.

use super::relay_tests::{ADMIN, H};
use crate::proto::schema::{GROUP_SCHEMA, USER_SCHEMA};
use crate::service::http::{Method, Request, Response};
use crate::testing::Server;
use serde_json::{json, Value};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A deployment the tests send requests to.
trait Deployment {
    fn send(&mut self, req: Request) -> Response;

    /// The deployment's D1.
    fn d1(&self) -> &crate::testing::SqliteDb;

    fn call(&mut self, method: Method, path: &str, token: &str, body: Option<Value>) -> Response {
        let mut req = Request::new(method, path, "https://scim.test")
            .with_header("authorization", &format!("Bearer {token}"));
        if let Some(b) = body {
            req = req
                .with_header("content-type", "application/json")
                .with_body(b.to_string());
        }
        self.send(req)
    }

    fn admin(&mut self, method: Method, path: &str, body: Option<Value>) -> Response {
        self.call(method, &format!("/admin/api{path}"), ADMIN, body)
    }
}

impl Deployment for Server {
    fn send(&mut self, req: Request) -> Response {
        Server::send(self, req)
    }

    fn d1(&self) -> &crate::testing::SqliteDb {
        &self.db
    }
}

impl Deployment for H {
    fn send(&mut self, req: Request) -> Response {
        H::send(self, req)
    }

    fn d1(&self) -> &crate::testing::SqliteDb {
        &self.d1
    }
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn ok(r: Response, status: u16) -> Value {
    assert_eq!(r.status, status, "{} {:?}", text(&r), r.notes);
    r.body_json()
}

/// A tenant with what a move must carry: users, groups of users and of a group, a changed
/// version, a tolerance counted, a soft-deleted user (a tombstone and its membership), a
/// role value (the control plane), and the log of it all.
fn populate(d: &mut impl Deployment) -> (String, Vec<String>) {
    ok(
        d.admin(
            Method::Post,
            "/tenants",
            Some(json!({"id": "acme", "name": "Acme"})),
        ),
        201,
    );
    let token = ok(
        d.admin(Method::Post, "/tenants/acme/tokens", Some(json!({}))),
        201,
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    let soft = json!({"deletion": {"policy": "soft", "days": 30}});
    ok(d.admin(Method::Patch, "/tenants/acme", Some(soft)), 200);
    let mut ids = Vec::new();
    for i in 0..9 {
        let user = json!({"schemas": [USER_SCHEMA], "userName": format!("u{i}@example.com"),
            "externalId": format!("ext-{i}"), "name": {"givenName": format!("G{i}"), "familyName": "Émile \"F\""},
            "emails": [{"value": format!("u{i}@example.com"), "type": "work"}]});
        let v = ok(
            d.call(Method::Post, "/t/acme/scim/v2/Users", &token, Some(user)),
            201,
        );
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let patch = json!({"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    ok(
        d.call(
            Method::Patch,
            &format!("/t/acme/scim/v2/Users/{}", ids[1]),
            &token,
            Some(patch),
        ),
        200,
    );
    let members: Vec<Value> = ids[..4].iter().map(|id| json!({"value": id})).collect();
    let g = json!({"schemas": [GROUP_SCHEMA], "displayName": "Eng", "members": members});
    let eng = ok(
        d.call(Method::Post, "/t/acme/scim/v2/Groups", &token, Some(g)),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let g = json!({"schemas": [GROUP_SCHEMA], "displayName": "All", "members": [{"value": eng}, {"value": ids[5]}]});
    ok(
        d.call(Method::Post, "/t/acme/scim/v2/Groups", &token, Some(g)),
        201,
    );
    let r = d.call(
        Method::Delete,
        &format!("/t/acme/scim/v2/Users/{}", ids[3]),
        &token,
        None,
    );
    assert_eq!(r.status, 204, "{}", text(&r));
    ids.remove(3);
    let role = json!({"id": "admin", "displayName": "Admin"});
    ok(
        d.admin(Method::Post, "/tenants/acme/roles", Some(role)),
        201,
    );
    (token, ids)
}

fn export_all(d: &mut impl Deployment, query: &str) -> String {
    let mut file = String::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            None => format!("/tenants/acme/export?{query}"),
            Some(a) => format!("/tenants/acme/export?{query}&after={a}"),
        };
        let r = d.admin(Method::Get, &path, None);
        assert_eq!(r.status, 200, "{}", text(&r));
        file.push_str(&text(&r));
        match r.header(super::moving::NEXT_HEADER) {
            Some(next) => after = Some(next.to_string()),
            None => return file,
        }
    }
}

fn import_all(d: &mut impl Deployment, file: &str, per: usize) -> Value {
    let lines: Vec<&str> = file.lines().collect();
    let mut last = Value::Null;
    for (i, chunk) in lines.chunks(per).enumerate() {
        let req = Request::new(
            Method::Post,
            &format!("/admin/api/tenants/acme/import?line={}", i * per),
            "https://scim.test",
        )
        .with_header("authorization", &format!("Bearer {ADMIN}"))
        .with_body(chunk.join("\n") + "\n");
        last = ok(d.send(req), 200);
    }
    last
}

/// Every view the IdP reads, with its ETag, and the log without its sequence numbers (nor
/// its `nextSince`, one of them).
fn views(d: &mut impl Deployment, token: &str, ids: &[String]) -> Vec<View> {
    let groups = ok(
        d.call(Method::Get, "/t/acme/scim/v2/Groups", token, None),
        200,
    );
    let mut paths: Vec<String> = [
        "/Users?count=100",
        "/Groups",
        "/Users?startIndex=2&count=3",
        "/Users?filter=userName%20eq%20%22U2%40example.com%22",
        "/Users?filter=active%20eq%20false",
        "/Users?sortBy=userName&sortOrder=descending",
        "/Roles",
    ]
    .iter()
    .map(|p| format!("/t/acme/scim/v2{p}"))
    .collect();
    paths.extend(ids.iter().map(|id| format!("/t/acme/scim/v2/Users/{id}")));
    for g in groups["Resources"].as_array().unwrap() {
        paths.push(format!(
            "/t/acme/scim/v2/Groups/{}",
            g["id"].as_str().unwrap()
        ));
    }
    let mut out: Vec<_> = paths
        .into_iter()
        .map(|p| {
            let r = d.call(Method::Get, &p, token, None);
            assert_eq!(r.status, 200, "{p}: {}", text(&r));
            (p, text(&r), r.header("etag").map(str::to_string))
        })
        .collect();
    for p in ["/events?limit=1000&outcome=success", "/tombstones"] {
        let mut v = ok(
            d.admin(Method::Get, &format!("/tenants/acme{p}"), None),
            200,
        );
        for e in v["events"].as_array_mut().into_iter().flatten() {
            e.as_object_mut().unwrap().remove("seq");
        }
        // The target numbers the moved log after the source's newest event.
        if let Some(o) = v.as_object_mut() {
            o.remove("nextSince");
        }
        out.push((p.to_string(), v.to_string(), None));
    }
    out
}

type View = (String, String, Option<String>);

/// Each view as it was, one by one (a difference names its path).
fn same(got: &[View], want: &[View]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.0, w.0);
        assert_eq!(g.1, w.1, "{}", w.0);
        assert_eq!(g.2, w.2, "{}", w.0);
    }
}

/// The records of an export, without its header (the time it was made) and trailer (whose
/// checksum chains the header).
fn records(file: &str) -> Vec<&str> {
    let lines: Vec<&str> = file.lines().collect();
    lines[1..lines.len() - 1].to_vec()
}

#[test]
fn a_tenant_moves_from_d1_into_its_object_and_back_with_byte_identical_responses() {
    let mut d1 = Server::new(&[], Some(ADMIN));
    let (token, ids) = populate(&mut d1);
    let before = views(&mut d1, &token, &ids);
    let file = export_all(&mut d1, "limit=3");
    let header: Value = serde_json::from_str(file.lines().next().unwrap()).unwrap();
    assert_eq!(header["counts"]["resource"], 10);
    assert_eq!(header["counts"]["tombstone"], 1);
    assert_eq!(header["counts"]["tombstone_member"], 1);
    assert_eq!(header["counts"]["entitlement"], 1);
    assert_eq!(header["counts"]["credential"], 1);

    // Into a deployment whose tenants live in objects: the directory lands in the object,
    // the control plane in D1, and the moved token reads the same bytes.
    let mut objects = H::new();
    let done = import_all(&mut objects, &file, 7);
    assert_eq!(done["done"], true, "{done}");
    let obj = objects.objects.db("acme");
    let n = |rows: Vec<crate::store::Row>| rows[0]["n"].as_i64().unwrap();
    assert_eq!(n(obj.query("SELECT count(*) AS n FROM resources")), 10);
    assert_eq!(n(obj.query("SELECT count(*) AS n FROM tombstones")), 1);
    assert_eq!(
        n(objects.d1.query("SELECT count(*) AS n FROM resources")),
        0
    );
    assert_eq!(n(objects.d1.query("SELECT count(*) AS n FROM events")), 0);
    assert_eq!(
        n(objects
            .d1
            .query("SELECT count(*) AS n FROM entitlement_values")),
        1
    );
    assert_eq!(
        n(obj.query("SELECT count(*) AS n FROM entitlement_values")),
        0
    );
    assert_eq!(n(obj.query("SELECT count(*) AS n FROM tenant_imports")), 0);
    assert_eq!(
        n(objects.d1.query("SELECT count(*) AS n FROM tenant_imports")),
        0
    );
    same(&views(&mut objects, &token, &ids), &before);

    // The object's store calls are reachable only through the hop, not by an admin's request.
    for path in ["export/freeze", "import/apply", "import/abort"] {
        let r = objects.admin(Method::Post, &format!("/tenants/acme/{path}"), None);
        assert_eq!(r.status, 404, "{path}: {}", text(&r));
    }
    // Out of the object: the same records, in the same order, as D1's export.
    let again = export_all(&mut objects, "limit=4");
    // (But when the token was last used: the reads above used it.)
    let used = |file: &str| -> Vec<Value> {
        records(file)
            .iter()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("last_used");
                v
            })
            .collect()
    };
    assert_eq!(records(&again).len(), records(&file).len());
    assert_eq!(used(&again), used(&file));
    // The object's directory is frozen for SCIM writes, not reads.
    let late = json!({"schemas": [USER_SCHEMA], "userName": "late"});
    let r = objects.call(
        Method::Post,
        "/t/acme/scim/v2/Users",
        &token,
        Some(late.clone()),
    );
    assert_eq!(r.status, 503, "{}", text(&r));
    same(&views(&mut objects, &token, &ids), &before);

    // And back into another D1 deployment.
    let mut back = Server::new(&[], Some(ADMIN));
    assert_eq!(import_all(&mut back, &again, 5)["done"], true);
    same(&views(&mut back, &token, &ids), &before);
    // Ending the export thaws the object tenant.
    ok(
        objects.admin(Method::Delete, "/tenants/acme/export", None),
        200,
    );
    ok(
        objects.call(Method::Post, "/t/acme/scim/v2/Users", &token, Some(late)),
        201,
    );
    // The moved tombstone is the object's: listed (above) and restored there.
    let gone = ok(
        objects.admin(Method::Get, "/tenants/acme/tombstones", None),
        200,
    );
    let id = gone["tombstones"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/tenants/acme/tombstones/{id}/restore");
    ok(objects.admin(Method::Post, &path, None), 200);
    let user = ok(
        objects.call(
            Method::Get,
            &format!("/t/acme/scim/v2/Users/{id}"),
            &token,
            None,
        ),
        200,
    );
    assert_eq!(user["userName"], "u3@example.com");
    assert_eq!(n(obj.query("SELECT count(*) AS n FROM tombstones")), 0);
}

#[test]
fn an_import_into_an_object_tenant_refuses_a_bad_chunk_resumes_and_aborts() {
    let mut d1 = Server::new(&[], Some(ADMIN));
    let (_, _) = populate(&mut d1);
    let file = export_all(&mut d1, "credentials=false");
    let lines: Vec<&str> = file.lines().collect();
    let mut objects = H::new();
    let send = |d: &mut H, line: usize, body: String| {
        let req = Request::new(
            Method::Post,
            &format!("/admin/api/tenants/acme/import?line={line}"),
            "https://scim.test",
        )
        .with_header("authorization", &format!("Bearer {ADMIN}"))
        .with_body(body);
        d.send(req)
    };
    // The first 20 lines (header, tenant, the role, resources): D1 and the object take theirs.
    let r = send(&mut objects, 0, lines[..20].join("\n"));
    assert_eq!(ok(r, 200)["lines"], 20);
    let status = ok(
        objects.admin(Method::Get, "/tenants/acme/import", None),
        200,
    );
    assert_eq!(status["lines"], 20);
    // A resent chunk from the wrong place is refused; the object's directory is frozen.
    let r = send(&mut objects, 0, lines[..20].join("\n"));
    assert_eq!(r.status, 409, "{}", text(&r));
    // A damaged trailer: refused, nothing more stored.
    let mut rest: Vec<String> = lines[20..].iter().map(|l| l.to_string()).collect();
    let last = rest.len() - 1;
    rest[last] = rest[last].replace("\"sha256\":\"", "\"sha256\":\"0");
    let r = send(&mut objects, 20, rest.join("\n"));
    assert_eq!(r.status, 400, "{}", text(&r));
    let obj = objects.objects.db("acme");
    let n = |rows: Vec<crate::store::Row>| rows[0]["n"].as_i64().unwrap();
    // The first chunk's resources are in the object; the refused chunk's events are not.
    assert_eq!(n(obj.query("SELECT count(*) AS n FROM resources")), 10);
    assert_eq!(n(obj.query("SELECT count(*) AS n FROM events")), 0);
    // Aborted: both sides emptied, and the import can start again.
    let v = ok(
        objects.admin(Method::Delete, "/tenants/acme/import", None),
        200,
    );
    assert_eq!(v["aborted"], true, "{v}");
    assert_eq!(n(obj.query("SELECT count(*) AS n FROM resources")), 0);
    assert_eq!(
        n(objects
            .d1
            .query("SELECT count(*) AS n FROM entitlement_values")),
        0
    );
    assert_eq!(import_all(&mut objects, &file, 1000)["done"], true);
    assert_eq!(n(obj.query("SELECT count(*) AS n FROM resources")), 10);
}

#[test]
fn a_chunk_the_object_lost_is_resent_and_d1_catches_up_when_its_last_step_was_lost() {
    let mut d1 = Server::new(&[], Some(ADMIN));
    let (token, ids) = populate(&mut d1);
    let before = views(&mut d1, &token, &ids);
    let file = export_all(&mut d1, "");
    let lines: Vec<&str> = file.lines().collect();
    let mut objects = H::new();
    let send = |d: &mut H, line: usize, body: String| {
        let req = Request::new(
            Method::Post,
            &format!("/admin/api/tenants/acme/import?line={line}"),
            "https://scim.test",
        )
        .with_header("authorization", &format!("Bearer {ADMIN}"))
        .with_body(body);
        d.send(req)
    };
    ok(send(&mut objects, 0, lines[..20].join("\n")), 200);
    // The object loses the chunk (as if its part had failed after D1's committed): D1 is
    // ahead, the object's position says line 0.
    objects.objects.dbs.borrow_mut().remove("acme");
    let status = ok(
        objects.admin(Method::Get, "/tenants/acme/import", None),
        404,
    );
    assert_eq!(status["error"], "not_found", "{status}");
    let n = |rows: Vec<crate::store::Row>| rows[0]["n"].as_i64().unwrap();
    assert_eq!(
        n(objects.d1.query("SELECT lines AS n FROM tenant_imports")),
        20
    );
    // Sent again: only the object's part is written (D1's role value is not doubled).
    ok(send(&mut objects, 0, lines[..20].join("\n")), 200);
    let done = ok(send(&mut objects, 20, lines[20..].join("\n")), 200);
    assert_eq!(done["done"], true, "{done}");
    assert_eq!(
        n(objects
            .d1
            .query("SELECT count(*) AS n FROM entitlement_values")),
        1
    );
    assert_eq!(
        n(objects.d1.query("SELECT count(*) AS n FROM tenant_imports")),
        0
    );
    same(&views(&mut objects, &token, &ids), &before);
    // D1's last step lost (its import still marked under way): the next look ends it and
    // says the import is done; the one after finds none.
    objects.d1.query(
        "INSERT INTO tenant_imports (tenant, source, lines, chain, counts, token, started) \
         VALUES ('acme', 'acme', 1, '', '{}', 1, '')",
    );
    objects
        .d1
        .query("UPDATE tenants SET moving = 'importing' WHERE id = 'acme'");
    let status = ok(
        objects.admin(Method::Get, "/tenants/acme/import", None),
        200,
    );
    assert_eq!(status["done"], true, "{status}");
    ok(
        objects.admin(Method::Get, "/tenants/acme/import", None),
        404,
    );
    assert_eq!(
        n(objects.d1.query("SELECT count(*) AS n FROM tenant_imports")),
        0
    );
    let moving = objects
        .d1
        .query("SELECT moving FROM tenants WHERE id = 'acme'");
    assert_eq!(moving[0]["moving"], Value::Null);
}

/// A push endpoint moved with its tenant into a deployment whose directories are in objects
/// keeps its `created`, older than the moved log: the object's sweep must still start after
/// every imported event (the source delivered them), and send what is written after the move.
#[test]
fn a_moved_endpoint_gets_only_what_is_written_after_a_move_into_an_object() {
    use super::relay_tests::Queue;
    use crate::service::webhooks::deliver;
    use crate::testing::block_on;
    let mut d1 = Server::new(&[], Some(ADMIN));
    let (token, _) = populate(&mut d1);
    let hook = json!({"url": "https://app.example/hook"});
    let id = ok(
        d1.admin(Method::Post, "/tenants/acme/webhooks", Some(hook)),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    // An endpoint older than the tenant's log (created before its first event).
    d1.db
        .query("UPDATE webhooks SET created = '2000-01-01T00:00:00.000Z'");
    let file = export_all(&mut d1, "");
    let mut objects = H::new();
    let done = import_all(&mut objects, &file, 7);
    assert_eq!(done["done"], true, "{done}");
    let sweep = |h: &H| {
        let queue = Queue::default();
        let object = h.objects.db("acme");
        block_on(deliver::sweep_object(
            object.as_ref(),
            &h.d1,
            &queue,
            h.now_ms,
        ))
        .unwrap();
        queue.0.into_inner()
    };
    let moved = sweep(&objects);
    assert!(moved.is_empty(), "moved events swept again: {moved:?}");
    let user = json!({"schemas": [USER_SCHEMA], "userName": "after@example.com"});
    let r = objects.call(Method::Post, "/t/acme/scim/v2/Users", &token, Some(user));
    assert_eq!(r.status, 201, "{}", text(&r));
    let sent = sweep(&objects);
    let got: Vec<(&str, &str, &str)> = sent
        .iter()
        .map(|q| (q.tenant.as_str(), q.endpoint.as_str(), q.kind.as_str()))
        .collect();
    assert_eq!(got, vec![("acme", id.as_str(), "user.created")]);
    assert!(sweep(&objects).is_empty());
}

/// A poll of stream `stream` of `acme`: the resource ids its SETs name (read from each SET's
/// claims; the signature is checked by the poll tests) and their `jti`s, oldest first.
fn poll(d: &mut impl Deployment, token: &str, stream: &str, body: Value) -> Vec<(String, String)> {
    use base64::Engine as _;
    let path = format!("/t/acme/scim/v2/Events/{stream}");
    let b = ok(d.call(Method::Post, &path, token, Some(body)), 200);
    let mut got: Vec<(i64, String, String)> = b["sets"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(jti, set)| {
            let payload = set.as_str().unwrap().split('.').nth(1).unwrap();
            let claims: Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .unwrap(),
            )
            .unwrap();
            let seq = crate::proto::secevent::seq_of(jti).unwrap();
            let claims = claims.to_string();
            let id = claims
                .split("/Users/")
                .nth(1)
                .map(|rest| rest.split('"').next().unwrap().to_string())
                .unwrap_or(claims);
            (seq, id, jti.clone())
        })
        .collect();
    got.sort();
    got.into_iter().map(|(_, id, jti)| (id, jti)).collect()
}

fn ids_of(sets: &[(String, String)]) -> Vec<&str> {
    sets.iter().map(|(id, _)| id.as_str()).collect()
}

fn new_user(d: &mut impl Deployment, token: &str, name: &str) -> String {
    let user = json!({"schemas": [USER_SCHEMA], "userName": name});
    ok(
        d.call(Method::Post, "/t/acme/scim/v2/Users", token, Some(user)),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A poll stream moved with its tenant continues where it was: on `src`, five users are
/// created after the stream; its receiver acknowledges the first two and the fourth (one
/// acknowledgement above the stream's floor) and leaves the third and fifth. On `dst` the
/// stream serves the third and the fifth (under the target's `jti`s), then what is written
/// there, and never the acknowledged ones.
fn a_poll_stream_continues_across_a_move(src: &mut impl Deployment, dst: &mut impl Deployment) {
    let (token, _) = populate(src);
    let stream = ok(
        src.admin(
            Method::Post,
            "/tenants/acme/webhooks",
            Some(json!({"format": "set", "delivery": "poll"})),
        ),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let users: Vec<String> = (0..5)
        .map(|i| new_user(src, &token, &format!("polled{i}@example.com")))
        .collect();
    let served = poll(src, &token, &stream, json!({"maxEvents": 10}));
    assert_eq!(
        ids_of(&served),
        users.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let ack = [&served[0].1, &served[1].1, &served[3].1];
    let rest = poll(src, &token, &stream, json!({"ack": ack, "maxEvents": 10}));
    assert_eq!(ids_of(&rest), [users[2].as_str(), users[4].as_str()]);

    let file = export_all(src, "limit=4");
    // The stream's key opens on the target: the deployments share their secret (as two
    // deployments sharing CURSOR_SECRET do).
    for row in src.d1().query("SELECT name, value FROM deployment_secrets") {
        dst.d1().query(&format!(
            "INSERT OR REPLACE INTO deployment_secrets (name, value) VALUES ('{}', '{}')",
            row["name"].as_str().unwrap(),
            row["value"].as_str().unwrap()
        ));
    }
    let done = import_all(dst, &file, 5);
    assert_eq!(done["done"], true, "{done}");
    // The receiver's first poll there repeats acknowledgements of the source's SETs (sent
    // before it was pointed at the target): the target numbers events after every one of
    // the source's, so they name none of its events and change nothing.
    let old_jtis: Vec<&String> = served.iter().map(|(_, j)| j).collect();
    let moved = poll(
        dst,
        &token,
        &stream,
        json!({"ack": old_jtis, "maxEvents": 10}),
    );
    assert_eq!(
        ids_of(&moved),
        [users[2].as_str(), users[4].as_str()],
        "the moved stream serves what was not acknowledged, and only that"
    );
    let old_seqs: Vec<i64> = served
        .iter()
        .map(|(_, j)| crate::proto::secevent::seq_of(j).unwrap())
        .collect();
    for (_, jti) in &moved {
        let seq = crate::proto::secevent::seq_of(jti).unwrap();
        assert!(
            old_seqs.iter().all(|old| seq > *old),
            "{jti} is not after the source's SETs {old_seqs:?}"
        );
    }
    let jtis: Vec<&String> = moved.iter().map(|(_, j)| j).collect();
    assert!(poll(dst, &token, &stream, json!({"ack": jtis})).is_empty());
    let after = new_user(dst, &token, "after@example.com");
    let new = poll(dst, &token, &stream, json!({}));
    assert_eq!(ids_of(&new), [after.as_str()]);
    let jtis: Vec<&String> = new.iter().map(|(_, j)| j).collect();
    assert!(poll(dst, &token, &stream, json!({"ack": jtis})).is_empty());
}

#[test]
fn a_poll_stream_moved_from_d1_into_an_object_continues_where_it_was() {
    a_poll_stream_continues_across_a_move(&mut Server::new(&[], Some(ADMIN)), &mut H::new());
}

#[test]
fn a_poll_stream_moved_from_an_object_into_d1_continues_where_it_was() {
    a_poll_stream_continues_across_a_move(&mut H::new(), &mut Server::new(&[], Some(ADMIN)));
}

#[test]
fn a_poll_stream_moved_between_d1_deployments_continues_where_it_was() {
    let mut dst = Server::new(&[], Some(ADMIN));
    // The target's sequence is not the source's: another tenant wrote there first.
    ok(
        dst.admin(Method::Post, "/tenants", Some(json!({"id": "other"}))),
        201,
    );
    let other = ok(
        dst.admin(Method::Post, "/tenants/other/tokens", Some(json!({}))),
        201,
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..3 {
        let user = json!({"schemas": [USER_SCHEMA], "userName": format!("o{i}@example.com")});
        ok(
            dst.call(Method::Post, "/t/other/scim/v2/Users", &other, Some(user)),
            201,
        );
    }
    a_poll_stream_continues_across_a_move(&mut Server::new(&[], Some(ADMIN)), &mut dst);
}

#[test]
fn a_poll_stream_moved_between_object_deployments_continues_where_it_was() {
    a_poll_stream_continues_across_a_move(&mut H::new(), &mut H::new());
}

/// The push endpoints' hand-over to the object at the end of an import into it fails (the
/// object's write of its copies, injected here by a trigger): nothing of the last chunk
/// stays in the object, the tenant stays frozen, and sending the last chunk again completes
/// the import with the hand-over: the moved history is not sent again, later writes are.
#[test]
fn a_failed_endpoint_hand_over_leaves_the_import_open_and_resending_its_last_chunk_completes_it() {
    use super::relay_tests::Queue;
    use crate::service::webhooks::deliver;
    use crate::testing::block_on;
    let mut d1 = Server::new(&[], Some(ADMIN));
    let (token, _) = populate(&mut d1);
    let hook = json!({"url": "https://app.example/hook"});
    let id = ok(
        d1.admin(Method::Post, "/tenants/acme/webhooks", Some(hook)),
        201,
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    d1.db
        .query("UPDATE webhooks SET created = '2000-01-01T00:00:00.000Z'");
    let file = export_all(&mut d1, "");
    let lines: Vec<&str> = file.lines().collect();
    let last = lines.len() - 6;
    let mut objects = H::new();
    let send = |d: &mut H, line: usize, body: String| {
        let req = Request::new(
            Method::Post,
            &format!("/admin/api/tenants/acme/import?line={line}"),
            "https://scim.test",
        )
        .with_header("authorization", &format!("Bearer {ADMIN}"))
        .with_body(body + "\n");
        d.send(req)
    };
    ok(send(&mut objects, 0, lines[..last].join("\n")), 200);
    let obj = objects.objects.db("acme");
    obj.query(
        "CREATE TRIGGER fail_hand_over BEFORE INSERT ON webhooks WHEN NEW.url <> '' \
         BEGIN SELECT RAISE(ABORT, 'injected: the hand-over failed'); END",
    );
    let r = send(&mut objects, last, lines[last..].join("\n"));
    assert!(r.status >= 500, "{} {}", r.status, text(&r));
    // Still importing where the last chunk starts: the tenant's writes wait.
    let status = ok(
        objects.admin(Method::Get, "/tenants/acme/import", None),
        200,
    );
    assert_eq!(status["lines"], last, "{status}");
    let user = json!({"schemas": [USER_SCHEMA], "userName": "early@example.com"});
    let r = objects.call(Method::Post, "/t/acme/scim/v2/Users", &token, Some(user));
    assert_eq!(r.status, 503, "{}", text(&r));
    obj.query("DROP TRIGGER fail_hand_over");
    let done = ok(send(&mut objects, last, lines[last..].join("\n")), 200);
    assert_eq!(done["done"], true, "{done}");
    let sweep = |h: &H| {
        let queue = Queue::default();
        let object = h.objects.db("acme");
        block_on(deliver::sweep_object(
            object.as_ref(),
            &h.d1,
            &queue,
            h.now_ms,
        ))
        .unwrap();
        queue.0.into_inner()
    };
    let moved = sweep(&objects);
    assert!(moved.is_empty(), "moved events swept again: {moved:?}");
    let user = json!({"schemas": [USER_SCHEMA], "userName": "after@example.com"});
    let r = objects.call(Method::Post, "/t/acme/scim/v2/Users", &token, Some(user));
    assert_eq!(r.status, 201, "{}", text(&r));
    let sent: Vec<(String, String)> = sweep(&objects)
        .into_iter()
        .map(|q| (q.endpoint, q.kind))
        .collect();
    assert_eq!(sent, vec![(id.clone(), "user.created".to_string())]);
}

/// The object completed the import but D1's side of its end was lost (the answer to the
/// last chunk never came): the client's next look at the import says it is done, and so
/// does sending the last chunk again; nothing is written twice.
#[test]
fn a_lost_answer_to_the_last_chunk_is_recovered_by_import_status_or_by_resending_it() {
    let mut d1 = Server::new(&[], Some(ADMIN));
    let (token, ids) = populate(&mut d1);
    let before = views(&mut d1, &token, &ids);
    let file = export_all(&mut d1, "");
    let lines: Vec<&str> = file.lines().collect();
    let last = lines.len() - 6;
    let mut objects = H::new();
    let send = |d: &mut H, line: usize, body: String| {
        let req = Request::new(
            Method::Post,
            &format!("/admin/api/tenants/acme/import?line={line}"),
            "https://scim.test",
        )
        .with_header("authorization", &format!("Bearer {ADMIN}"))
        .with_body(body + "\n");
        d.send(req)
    };
    ok(send(&mut objects, 0, lines[..last].join("\n")), 200);
    // D1 takes its part of the last chunk, the object all of it; D1's end is lost.
    let fail = "CREATE TRIGGER lose_the_end BEFORE DELETE ON tenant_imports \
                BEGIN SELECT RAISE(ABORT, 'injected: D1 lost the end'); END";
    objects.d1.query(fail);
    let r = send(&mut objects, last, lines[last..].join("\n"));
    assert!(r.status >= 500, "{} {}", r.status, text(&r));
    objects.d1.query("DROP TRIGGER lose_the_end");
    let lost = objects
        .d1
        .query("SELECT tenant, source, lines, chain, counts, token, started FROM tenant_imports");
    assert_eq!(lost.len(), 1);
    let row = &lost[0];
    for resend in [false, true] {
        if resend {
            let done = ok(send(&mut objects, last, lines[last..].join("\n")), 200);
            assert_eq!(done["done"], true, "{done}");
        } else {
            let status = ok(
                objects.admin(Method::Get, "/tenants/acme/import", None),
                200,
            );
            assert_eq!(status["done"], true, "{status}");
            // Put D1 back where the lost end left it, to try the other way.
            objects.d1.query(&format!(
                "INSERT INTO tenant_imports (tenant, source, lines, chain, counts, token, started) \
                 VALUES ('acme', 'acme', {}, '{}', '{}', {}, '{}')",
                row["lines"],
                row["chain"].as_str().unwrap(),
                row["counts"].as_str().unwrap(),
                row["token"],
                row["started"].as_str().unwrap()
            ));
            objects
                .d1
                .query("UPDATE tenants SET moving = 'importing' WHERE id = 'acme'");
        }
    }
    let n = |rows: Vec<crate::store::Row>| rows[0]["n"].as_i64().unwrap();
    assert_eq!(
        n(objects.d1.query("SELECT count(*) AS n FROM tenant_imports")),
        0
    );
    assert_eq!(
        n(objects
            .d1
            .query("SELECT count(*) AS n FROM entitlement_values")),
        1
    );
    // Once done, the import is gone: a third look finds none.
    ok(
        objects.admin(Method::Get, "/tenants/acme/import", None),
        404,
    );
    same(&views(&mut objects, &token, &ids), &before);
}

/// `file` as a source from before `stream` records wrote it: without them, nor their count
/// (the checksum and line count made again).
fn without_streams(file: &str) -> String {
    let mut lines: Vec<String> = file
        .lines()
        .filter(|l| !l.starts_with("{\"record\":\"stream\""))
        .map(str::to_string)
        .collect();
    let mut header: Value = serde_json::from_str(&lines[0]).unwrap();
    header["counts"].as_object_mut().unwrap().remove("stream");
    header.as_object_mut().unwrap().remove("sequence");
    lines[0] = header.to_string();
    let n = lines.len() - 1;
    let mut link = [0u8; 32];
    for l in &lines[..n] {
        link = super::moving::chain(&link, l);
    }
    let mut trailer: Value = serde_json::from_str(&lines[n]).unwrap();
    trailer["counts"].as_object_mut().unwrap().remove("stream");
    trailer["lines"] = json!(n);
    trailer["sha256"] = json!(link.iter().map(|b| format!("{b:02x}")).collect::<String>());
    lines[n] = trailer.to_string();
    lines.join("\n") + "\n"
}

/// An object keeps its copy of a stream deleted in D1 since; the export carries it (the
/// object's page cannot see D1), but an import into D1 does not make it a stream again. And
/// a file from before `stream` records imports, its streams serving from their creation on.
#[test]
fn a_deleted_streams_copy_is_not_revived_and_a_file_without_stream_records_still_imports() {
    let mut src = H::new();
    let (token, _) = populate(&mut src);
    let mut streams = Vec::new();
    for _ in 0..2 {
        let body = json!({"format": "set", "delivery": "poll"});
        let r = src.admin(Method::Post, "/tenants/acme/webhooks", Some(body));
        streams.push(ok(r, 201)["id"].as_str().unwrap().to_string());
    }
    let users: Vec<String> = (0..2)
        .map(|i| new_user(&mut src, &token, &format!("s{i}@example.com")))
        .collect();
    for s in &streams {
        let served = poll(&mut src, &token, s, json!({}));
        assert_eq!(ids_of(&served), [users[0].as_str(), users[1].as_str()]);
        let jtis: Vec<&String> = served.iter().map(|(_, j)| j).collect();
        assert!(poll(&mut src, &token, s, json!({"ack": jtis})).is_empty());
    }
    let r = src.admin(
        Method::Delete,
        &format!("/tenants/acme/webhooks/{}", streams[1]),
        None,
    );
    assert_eq!(r.status, 204, "{}", text(&r));
    let file = export_all(&mut src, "");
    let header: Value = serde_json::from_str(file.lines().next().unwrap()).unwrap();
    assert_eq!(header["counts"]["webhook"], 1, "{header}");
    assert_eq!(header["counts"]["stream"], 2, "{header}");
    let share = |src: &H, dst: &Server| {
        for row in src.d1.query("SELECT name, value FROM deployment_secrets") {
            dst.db.query(&format!(
                "INSERT OR REPLACE INTO deployment_secrets (name, value) VALUES ('{}', '{}')",
                row["name"].as_str().unwrap(),
                row["value"].as_str().unwrap()
            ));
        }
    };

    let mut dst = Server::new(&[], Some(ADMIN));
    share(&src, &dst);
    assert_eq!(import_all(&mut dst, &file, 6)["done"], true);
    let ids = dst.db.query("SELECT id FROM webhooks WHERE url = ''");
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(ids[0]["id"], json!(streams[0]));
    assert!(poll(&mut dst, &token, &streams[0], json!({})).is_empty());

    // Without the streams' positions: the stream serves from its creation on (again).
    let mut old = Server::new(&[], Some(ADMIN));
    share(&src, &old);
    assert_eq!(
        import_all(&mut old, &without_streams(&file), 6)["done"],
        true
    );
    let served = poll(&mut old, &token, &streams[0], json!({}));
    assert_eq!(ids_of(&served), [users[0].as_str(), users[1].as_str()]);
}
