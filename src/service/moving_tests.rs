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
    // Membership-only PATCHes and DELETEs too (they would bypass a check on data alone).
    let groups = s
        .call(Method::Get, "/scim/v2/Groups", &src, None)
        .body_json();
    let group = groups["Resources"][0]["id"].as_str().unwrap().to_string();
    let add = json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": ids[5]}]}]});
    let r = s.call(
        Method::Patch,
        &format!("/scim/v2/Groups/{group}"),
        &src,
        Some(add),
    );
    assert_eq!(r.status, 503, "{}", text(&r));
    let r = s.call(
        Method::Delete,
        &format!("/scim/v2/Users/{}", ids[6]),
        &src,
        None,
    );
    assert_eq!(r.status, 503, "{}", text(&r));

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

/// A source with data, exported; and an empty target tenant `dst` in the same database.
fn exported(users: usize) -> (Server, String, Vec<String>) {
    let mut s = Server::new(&[], Some(ADMIN));
    let src = tenant_with_token(&mut s, "src");
    populate(&mut s, &src, users);
    let (file, _) = export_all(&mut s, "src", "credentials=false");
    let r = admin(&mut s, Method::Post, "/tenants", Some(json!({"id": "dst"})));
    assert_eq!(r.status, 201);
    let lines = file.lines().map(str::to_string).collect();
    (s, src, lines)
}

/// Nothing of an import is stored in `dst` (settings, rows, position, freeze).
fn assert_dst_untouched(s: &Server) {
    for table in [
        "resources",
        "members",
        "events",
        "tolerance_counts",
        "entitlement_values",
        "tenant_imports",
    ] {
        assert_eq!(
            count(
                s,
                &format!("SELECT count(*) AS n FROM {table} WHERE tenant = 'dst'")
            ),
            0,
            "{table}"
        );
    }
    let t =
        s.db.query("SELECT name, moving FROM tenants WHERE id = 'dst'");
    assert_eq!(t[0]["name"], "dst");
    assert_eq!(t[0]["moving"], Value::Null);
}

fn join(lines: &[String]) -> String {
    lines.join("\n") + "\n"
}

#[test]
fn a_wrong_format_version_or_a_damaged_first_chunk_is_refused_with_nothing_stored() {
    let (mut s, _, lines) = exported(6);
    let mut v2 = lines.clone();
    v2[0] = v2[0].replace("scim-edge-tenant/1", "scim-edge-tenant/2");
    let r = send_chunk(&mut s, "dst", 0, &join(&v2));
    assert_eq!(r.status, 400, "{}", text(&r));
    assert!(text(&r).contains("scim-edge-tenant/2"), "{}", text(&r));
    assert_dst_untouched(&s);
    // A record that is not the export's shape, anywhere in the chunk: nothing before it
    // is stored either.
    let mut odd = lines.clone();
    odd[5] = odd[5].replacen("{", "{\"extra\":1,", 1);
    let r = send_chunk(&mut s, "dst", 0, &join(&odd));
    assert_eq!(r.status, 400, "{}", text(&r));
    assert!(text(&r).contains("line 6"), "{}", text(&r));
    assert_dst_untouched(&s);
    // Without its header, the file is not an export.
    let r = send_chunk(&mut s, "dst", 0, &join(&lines[1..]));
    assert_eq!(r.status, 400);
    assert_dst_untouched(&s);
}

#[test]
fn a_target_holding_data_is_refused_with_409_and_left_as_it_was() {
    let (mut s, _, lines) = exported(6);
    let r = admin(&mut s, Method::Post, "/tenants/dst/tokens", Some(json!({})));
    let dst = r.body_json()["token"].as_str().unwrap().to_string();
    let r = s.call(
        Method::Post,
        "/scim/v2/Users",
        &dst,
        Some(json!({"schemas": [USER_SCHEMA], "userName": "here@example.com"})),
    );
    assert_eq!(r.status, 201);
    let r = send_chunk(&mut s, "dst", 0, &join(&lines));
    assert_eq!(r.status, 409, "{}", text(&r));
    assert!(text(&r).contains("already holds data"));
    assert_eq!(
        count(
            &s,
            "SELECT count(*) AS n FROM resources WHERE tenant = 'dst'"
        ),
        1
    );
    assert_eq!(count(&s, "SELECT count(*) AS n FROM tenant_imports"), 0);
    // Tokens count as data too: the import brings the tenant's own.
    let (mut s, _, lines) = exported(6);
    admin(&mut s, Method::Post, "/tenants/dst/tokens", Some(json!({})));
    assert_eq!(send_chunk(&mut s, "dst", 0, &join(&lines)).status, 409);
}

#[test]
fn a_corrupted_chunk_stores_nothing_and_the_import_resumes_from_where_it_stands() {
    let (mut s, _, lines) = exported(8);
    let r = send_chunk(&mut s, "dst", 0, &join(&lines[..6]));
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.body_json()["lines"], 6);
    let stored = count(
        &s,
        "SELECT count(*) AS n FROM resources WHERE tenant = 'dst'",
    );
    assert!(stored > 0);
    // The next chunk with one line cut short (as a broken transfer leaves it).
    let mut broken = lines[6..12].to_vec();
    let cut = broken[3].len() / 2;
    broken[3].truncate(cut);
    let r = send_chunk(&mut s, "dst", 6, &join(&broken));
    assert_eq!(r.status, 400, "{}", text(&r));
    assert!(text(&r).contains("line 10"), "{}", text(&r));
    assert_eq!(
        count(
            &s,
            "SELECT count(*) AS n FROM resources WHERE tenant = 'dst'"
        ),
        stored
    );
    // Where it stands, and a chunk from anywhere else refused.
    let r = admin(&mut s, Method::Get, "/tenants/dst/import", None);
    assert_eq!(r.body_json()["lines"], 6);
    assert_eq!(
        send_chunk(&mut s, "dst", 7, &join(&lines[7..12])).status,
        409
    );
    assert_eq!(send_chunk(&mut s, "dst", 0, &join(&lines[..6])).status, 409);
    // While it imports, SCIM writes to the target wait (503), like an exporting source.
    let r = admin(&mut s, Method::Post, "/tenants/dst/tokens", Some(json!({})));
    let dst = r.body_json()["token"].as_str().unwrap().to_string();
    let r = s.call(
        Method::Post,
        "/scim/v2/Users",
        &dst,
        Some(json!({"schemas": [USER_SCHEMA], "userName": "early"})),
    );
    assert_eq!(r.status, 503, "{}", text(&r));
    // Resumed with the good lines, it completes.
    let r = send_chunk(&mut s, "dst", 6, &join(&lines[6..]));
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.body_json()["done"], true);
    assert_eq!(
        count(
            &s,
            "SELECT count(*) AS n FROM resources WHERE tenant = 'dst'"
        ),
        count(
            &s,
            "SELECT count(*) AS n FROM resources WHERE tenant = 'src'"
        )
    );
    let r = s.call(
        Method::Post,
        "/scim/v2/Users",
        &dst,
        Some(json!({"schemas": [USER_SCHEMA], "userName": "late"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
}

#[test]
fn a_bad_checksum_or_count_refuses_the_last_chunk_and_an_abort_empties_the_target() {
    let (mut s, _, lines) = exported(8);
    // Valid JSON, the right shape, one value changed: only the checksum can tell.
    let mut altered = lines.clone();
    let at = altered.iter().position(|l| l.contains("Given3")).unwrap();
    altered[at] = altered[at].replace("Given3", "Given9");
    let n = altered.len();
    let r = send_chunk(&mut s, "dst", 0, &join(&altered[..n - 3]));
    assert_eq!(r.status, 200, "{}", text(&r));
    let before = count(&s, "SELECT count(*) AS n FROM events WHERE tenant = 'dst'");
    let r = send_chunk(&mut s, "dst", n - 3, &join(&altered[n - 3..]));
    assert_eq!(r.status, 400, "{}", text(&r));
    assert!(text(&r).contains("checksum"), "{}", text(&r));
    // Nothing of the refused chunk (its records precede the trailer) was stored.
    assert_eq!(
        count(&s, "SELECT count(*) AS n FROM events WHERE tenant = 'dst'"),
        before
    );
    assert_eq!(
        admin(&mut s, Method::Get, "/tenants/dst/import", None).body_json()["lines"],
        n - 3
    );
    // A trailer whose counts disagree with what arrived is refused the same way.
    let mut recount = altered[n - 3..].to_vec();
    let last = recount.len() - 1;
    let mut trailer: Value = serde_json::from_str(&recount[last]).unwrap();
    trailer["counts"]["resource"] = json!(trailer["counts"]["resource"].as_i64().unwrap() + 1);
    recount[last] = trailer.to_string();
    let r = send_chunk(&mut s, "dst", n - 3, &join(&recount));
    assert_eq!(r.status, 400, "{}", text(&r));
    assert!(
        text(&r).contains("resource records arrived"),
        "{}",
        text(&r)
    );
    // Undone: the target is empty and accepts a good import again.
    let r = admin(&mut s, Method::Delete, "/tenants/dst/import", None);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.body_json()["remaining"], 0);
    assert_dst_untouched_but_settings(&s);
    for r in import_all(&mut s, "dst", &join(&lines), 7) {
        assert_eq!(r.status, 200, "{}", text(&r));
    }
    assert_eq!(
        admin(&mut s, Method::Delete, "/tenants/dst/import", None).status,
        404
    );
}

/// After an abort the rows are gone; the tenant row keeps the settings the import set.
fn assert_dst_untouched_but_settings(s: &Server) {
    for table in [
        "resources",
        "members",
        "events",
        "tolerance_counts",
        "entitlement_values",
        "tenant_imports",
        "value_index",
    ] {
        let sql = if table == "value_index" {
            "SELECT count(*) AS n FROM value_index v WHERE NOT EXISTS (SELECT 1 FROM resources r WHERE r.rowid = v.rid)".to_string()
        } else {
            format!("SELECT count(*) AS n FROM {table} WHERE tenant = 'dst'")
        };
        assert_eq!(count(s, &sql), 0, "{table}");
    }
    assert_eq!(
        s.db.query("SELECT moving FROM tenants WHERE id = 'dst'")[0]["moving"],
        Value::Null
    );
}

#[test]
fn a_move_between_deployments_keeps_tokens_and_webhook_endpoints_without_secrets_in_clear() {
    let mut a = Server::new(&[], Some(ADMIN));
    let token = tenant_with_token(&mut a, "acme");
    let r = admin(
        &mut a,
        Method::Post,
        "/tenants/acme/webhooks",
        Some(json!({"url": "https://app.example.com/hooks"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let secret = r.body_json()["secret"].as_str().unwrap().to_string();
    let r = a.call(
        Method::Post,
        "/scim/v2/Users",
        &token,
        Some(json!({"schemas": [USER_SCHEMA], "userName": "kim"})),
    );
    assert_eq!(r.status, 201);
    let (file, _) = export_all(&mut a, "acme", "limit=1000");
    assert!(
        !file.contains(&token) && !file.contains(&secret),
        "no secret in clear"
    );
    assert!(
        file.contains(&crate::service::credentials::hash(&token)),
        "the token's hash moves"
    );
    let mut b = Server::new(&[], Some(ADMIN));
    for r in import_all(&mut b, "acme", &file, 3) {
        assert_eq!(r.status, 200, "{}", text(&r));
    }
    // The identity provider's token works on the new deployment, reading the same directory.
    let (x, y) = (
        a.call(Method::Get, "/scim/v2/Users", &token, None),
        b.call(Method::Get, "/scim/v2/Users", &token, None),
    );
    assert_eq!(y.status, 200, "{}", text(&y));
    assert_eq!(text(&x), text(&y));
    let hooks = |s: &mut Server| admin(s, Method::Get, "/tenants/acme/webhooks", None).body_json();
    assert_eq!(hooks(&mut a), hooks(&mut b));
    // The sweep starts past the moved history: nothing is delivered twice.
    let floor =
        b.db.query("SELECT enqueued_seq AS n, (SELECT max(seq) FROM events) AS m FROM webhooks");
    assert_eq!(floor[0]["n"], floor[0]["m"]);
    // The tenant's settings moved with it.
    let t = |s: &mut Server| admin(s, Method::Get, "/tenants/acme", None).body_json();
    let (ta, tb) = (t(&mut a), t(&mut b));
    assert_eq!(ta["created"], tb["created"]);
    assert_eq!(ta["quota"], tb["quota"]);
}
