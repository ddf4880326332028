//! Moving a tenant (export → import) through the admin API, natively against SQLite with the
//! production migrations: what the target serves afterwards is what the source served, and
//! every bad chunk is refused with nothing stored. `tests/e2e/tenant_move.test.mjs` moves a
//! tenant between two workers with their own D1.

use crate::proto::schema::{GROUP_SCHEMA, USER_SCHEMA};
use crate::service::http::{Method, Request, Response};
use crate::testing::Server;
use serde_json::{json, Value};

const ADMIN: &str = "admin-token-0123456789abcdef";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn admin(s: &mut Server, method: Method, path: &str, body: Option<Value>) -> Response {
    s.call(method, &format!("/admin/api{path}"), ADMIN, body)
}

fn tenant_with_token(s: &mut Server, id: &str) -> String {
    let r = admin(s, Method::Post, "/tenants", Some(json!({"id": id})));
    assert_eq!(r.status, 201, "{}", text(&r));
    let r = admin(
        s,
        Method::Post,
        &format!("/tenants/{id}/tokens"),
        Some(json!({})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    r.body_json()["token"].as_str().unwrap().to_string()
}

/// A directory with what a move must keep: users with multi-valued attributes, an
/// extension, a manager, updated versions, groups with user and group members, a deleted
/// user, an IdP quirk counted, a role value, and the provisioning log of it all.
fn populate(s: &mut Server, token: &str, users: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..users {
        let r = s.call(
            Method::Post,
            "/scim/v2/Users",
            token,
            Some(json!({
                "schemas": [USER_SCHEMA, ENTERPRISE],
                "userName": format!("user{i}@example.com"),
                "externalId": format!("ext-{i}"),
                "name": {"givenName": format!("Given{i}"), "familyName": "Fam"},
                "emails": [{"value": format!("user{i}@example.com"), "type": "work", "primary": true}],
                "active": true,
                ENTERPRISE: {"employeeNumber": format!("{i}"), "department": "Ünïcode \"dept\""},
            })),
        );
        assert_eq!(r.status, 201, "{}", text(&r));
        ids.push(r.body_json()["id"].as_str().unwrap().to_string());
    }
    // Entra's capitalised op and "False": a tolerance counted, a version changed.
    let r = s.call(
        Method::Patch,
        &format!("/scim/v2/Users/{}", ids[1]),
        token,
        Some(json!({"schemas": [PATCH_OP], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]})),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let r = s.call(
        Method::Post,
        "/scim/v2/Groups",
        token,
        Some(json!({
            "schemas": [GROUP_SCHEMA], "displayName": "Engineering",
            "members": [{"value": ids[0]}, {"value": ids[1]}, {"value": ids[2]}],
        })),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let eng = r.body_json()["id"].as_str().unwrap().to_string();
    let r = s.call(Method::Post, "/scim/v2/Groups", token, Some(json!({
        "schemas": [GROUP_SCHEMA], "displayName": "All", "members": [{"value": eng}, {"value": ids[3]}],
    })));
    assert_eq!(r.status, 201, "{}", text(&r));
    let r = s.call(
        Method::Delete,
        &format!("/scim/v2/Users/{}", ids[4]),
        token,
        None,
    );
    assert_eq!(r.status, 204);
    ids.remove(4);
    let r = admin(
        s,
        Method::Post,
        "/tenants/src/roles",
        Some(json!({"id": "admin", "displayName": "Admin"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    ids
}

/// Follows an export's pages; answers the file and how many pages it took.
fn export_all(s: &mut Server, tenant: &str, query: &str) -> (String, usize) {
    let mut file = String::new();
    let mut pages = 0;
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            None => format!("/tenants/{tenant}/export?{query}"),
            Some(a) => format!("/tenants/{tenant}/export?{query}&after={a}"),
        };
        let r = admin(s, Method::Get, &path, None);
        assert_eq!(r.status, 200, "{}", text(&r));
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("application/x-ndjson"));
        file.push_str(&text(&r));
        pages += 1;
        match r.header(super::moving::NEXT_HEADER) {
            Some(next) => after = Some(next.to_string()),
            None => return (file, pages),
        }
    }
}

fn send_chunk(s: &mut Server, tenant: &str, line: usize, body: &str) -> Response {
    let req = Request::new(
        Method::Post,
        &format!("/admin/api/tenants/{tenant}/import?line={line}"),
        "https://scim.test",
    )
    .with_header("authorization", &format!("Bearer {ADMIN}"))
    .with_header("content-type", "application/x-ndjson")
    .with_body(body.to_string());
    s.send(req)
}

/// Sends `file` in chunks of `per` lines; answers every response.
fn import_all(s: &mut Server, tenant: &str, file: &str, per: usize) -> Vec<Response> {
    let lines: Vec<&str> = file.lines().collect();
    let mut out = Vec::new();
    for (i, chunk) in lines.chunks(per).enumerate() {
        let r = send_chunk(s, tenant, i * per, &(chunk.join("\n") + "\n"));
        let stop = r.status != 200;
        out.push(r);
        if stop {
            break;
        }
    }
    out
}

fn count(s: &Server, sql: &str) -> i64 {
    s.db.query(sql)[0]["n"].as_i64().unwrap()
}

/// Every GET a client may make of the directory: bodies and ETags must be identical.
fn views(ids: &[String]) -> Vec<String> {
    let mut v = vec![
        "/scim/v2/Users?count=1000".to_string(),
        "/scim/v2/Groups?count=1000".into(),
        "/scim/v2/Users?startIndex=2&count=2".into(),
        "/scim/v2/Users?filter=userName%20eq%20%22user2%40example.com%22".into(),
        "/scim/v2/Users?filter=emails%5Btype%20eq%20%22work%22%5D.value%20eq%20%22user3%40example.com%22".into(),
        "/scim/v2/Users?filter=externalId%20eq%20%22ext-5%22".into(),
        "/scim/v2/Users?sortBy=meta.lastModified&sortOrder=descending".into(),
        "/scim/v2/Users?filter=active%20eq%20false&attributes=userName,groups".into(),
        "/scim/v2/Groups?filter=displayName%20eq%20%22engineering%22".into(),
        "/scim/v2/Roles".into(),
    ];
    for id in ids {
        v.push(format!("/scim/v2/Users/{id}"));
    }
    v
}

/// Every view's status, body and ETag as `token`'s tenant sees it.
fn snapshot(
    s: &mut Server,
    token: &str,
    ids: &[String],
) -> Vec<(String, u16, String, Option<String>)> {
    let groups = s
        .call(Method::Get, "/scim/v2/Groups", token, None)
        .body_json();
    let mut paths = views(ids);
    for g in groups["Resources"].as_array().unwrap() {
        paths.push(format!("/scim/v2/Groups/{}", g["id"].as_str().unwrap()));
    }
    paths
        .into_iter()
        .map(|p| {
            let r = s.call(Method::Get, &p, token, None);
            assert_eq!(r.status, 200, "{p}: {}", text(&r));
            (p, r.status, text(&r), r.header("etag").map(str::to_string))
        })
        .collect()
}

/// The provisioning log as the admin API shows it, less the sequence numbers (the target
/// numbers the events it receives in its own sequence, in the same order).
fn log(s: &mut Server, tenant: &str) -> Vec<Value> {
    let r = admin(
        s,
        Method::Get,
        &format!("/tenants/{tenant}/events?limit=1000"),
        None,
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let mut events = r.body_json()["events"].as_array().unwrap().clone();
    for e in &mut events {
        e.as_object_mut().unwrap().remove("seq");
    }
    events
}

#[test]
fn a_tenant_moved_into_another_tenant_serves_byte_identical_responses() {
    let mut s = Server::new(&[], Some(ADMIN));
    let src = tenant_with_token(&mut s, "src");
    let ids = populate(&mut s, &src, 12);
    // Small pages, so the export crosses page boundaries inside and between kinds.
    let (file, pages) = export_all(&mut s, "src", "limit=4&credentials=false");
    assert!(pages > 5, "{pages} pages");
    let lines: Vec<&str> = file.lines().collect();
    let header: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(header["format"], "scim-edge-tenant/1");
    assert_eq!(header["counts"]["resource"], 13);
    assert_eq!(header["counts"]["credential"], 0);
    let trailer: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(trailer["record"], "trailer");
    assert_eq!(trailer["lines"], lines.len() - 1);
    assert_eq!(trailer["counts"], header["counts"]);

    let exported_log = log(&mut s, "src");
    // Frozen while it moves: reads served, writes refused with a 503 to retry.
    assert_eq!(
        s.call(
            Method::Get,
            &format!("/scim/v2/Users/{}", ids[0]),
            &src,
            None
        )
        .status,
        200
    );
    let r = s.call(
        Method::Post,
        "/scim/v2/Users",
        &src,
        Some(json!({"schemas": [USER_SCHEMA], "userName": "late"})),
    );
    assert_eq!(r.status, 503, "{}", text(&r));
    assert_eq!(r.header("retry-after"), Some("60"));
    let r = s.call(Method::Patch, "/scim/v2/Groups/x", &src, Some(json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": ids[5]}]}]})));
    assert_ne!(r.status, 200);

    let r = admin(&mut s, Method::Post, "/tenants", Some(json!({"id": "dst"})));
    assert_eq!(r.status, 201);
    for r in import_all(&mut s, "dst", &file, 5) {
        assert_eq!(r.status, 200, "{}", text(&r));
    }
    let r = admin(&mut s, Method::Get, "/tenants/dst/import", None);
    assert_eq!(r.status, 404, "the import is over");
    let r = admin(&mut s, Method::Post, "/tenants/dst/tokens", Some(json!({})));
    let dst = r.body_json()["token"].as_str().unwrap().to_string();

    let before = snapshot(&mut s, &src, &ids);
    let after = snapshot(&mut s, &dst, &ids);
    assert_eq!(before.len(), after.len());
    for (x, y) in before.iter().zip(&after) {
        assert_eq!(x, y);
    }
    // A user's groups still render (derived from the moved memberships).
    assert!(after
        .iter()
        .any(|(p, _, body, _)| p.ends_with(&ids[0]) && body.contains("Engineering")));
    // The log as it was when the export froze the tenant (the refused writes came later).
    assert_eq!(exported_log, log(&mut s, "dst"));
    assert_eq!(exported_log.len(), 16);
    let tolerances = |s: &mut Server, t: &str| {
        admin(s, Method::Get, &format!("/tenants/{t}/tolerances"), None).body_json()
    };
    assert_eq!(tolerances(&mut s, "src"), tolerances(&mut s, "dst"));
    // The target is writable at once, keeping uniqueness: userName clashes as before.
    let r = s.call(
        Method::Post,
        "/scim/v2/Users",
        &dst,
        Some(json!({"schemas": [USER_SCHEMA], "userName": "USER2@example.com"})),
    );
    assert_eq!(r.status, 409, "{}", text(&r));
    let r = s.call(
        Method::Post,
        "/scim/v2/Users",
        &dst,
        Some(json!({"schemas": [USER_SCHEMA], "userName": "new"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    // The source stays frozen until the export is ended.
    let r = s.call(
        Method::Post,
        "/scim/v2/Users",
        &src,
        Some(json!({"schemas": [USER_SCHEMA], "userName": "new"})),
    );
    assert_eq!(r.status, 503);
    assert_eq!(
        admin(&mut s, Method::Delete, "/tenants/src/export", None).status,
        200
    );
    let r = s.call(
        Method::Post,
        "/scim/v2/Users",
        &src,
        Some(json!({"schemas": [USER_SCHEMA], "userName": "new"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
}
