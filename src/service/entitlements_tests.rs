//! Okta Entitlement Management through the full request path, natively against SQLite with
//! the production migrations: the admin API defines a tenant's entitlement and role values,
//! Okta discovers and reads them over SCIM, and assigns them to users. The same flow runs in
//! workerd by `tests/e2e/okta_entitlements.test.mjs`.

use crate::proto::entitlement::{ENTITLEMENT_SCHEMA, ROLE_SCHEMA};
use crate::proto::schema::{LIST_RESPONSE_SCHEMA, USER_SCHEMA};
use crate::service::http::{Method, Response};
use crate::testing::Server;
use serde_json::{json, Value};

const ADMIN: &str = "admin-token-0123456789abcdef";
const ENV_TOKEN: &str = "env-token-0123456789abcdef";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn server() -> Server {
    Server::new(&[ENV_TOKEN], Some(ADMIN))
}

fn admin(s: &mut Server, method: Method, path: &str, body: Option<Value>) -> Response {
    s.call(method, &format!("/admin/api{path}"), ADMIN, body)
}

fn ok(r: &Response, status: u16) -> Value {
    let body = r.body_json();
    assert_eq!(r.status, status, "{body}");
    body
}

/// A tenant with a bearer token; returns the token.
fn tenant(s: &mut Server, id: &str) -> String {
    ok(
        &admin(s, Method::Post, "/tenants", Some(json!({"id": id}))),
        201,
    );
    let r = admin(s, Method::Post, &format!("/tenants/{id}/tokens"), None);
    ok(&r, 201)["token"].as_str().unwrap().to_string()
}

fn define(s: &mut Server, tenant: &str, list: &str, body: Value) -> Value {
    let r = admin(
        s,
        Method::Post,
        &format!("/tenants/{tenant}/{list}"),
        Some(body),
    );
    ok(&r, 201)
}

fn scim(s: &mut Server, method: Method, path: &str, token: &str, body: Option<Value>) -> Response {
    s.call(method, &format!("/scim/v2{path}"), token, body)
}

fn ids(list: &Value) -> Vec<&str> {
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

fn assert_scim_error(r: &Response, status: u16, scim_type: Option<&str>) {
    let body = r.body_json();
    assert_eq!(r.status, status, "{body}");
    assert_eq!(body["status"], status.to_string());
    assert_eq!(body["scimType"].as_str(), scim_type, "{body}");
}

#[test]
fn admin_api_defines_lists_updates_and_deletes_values() {
    let mut s = server();
    tenant(&mut s, "acme");
    let created = define(
        &mut s,
        "acme",
        "roles",
        json!({"id": "role-1", "displayName": "First Role", "description": "Reads"}),
    );
    assert_eq!(created["id"], "role-1");
    assert_eq!(created["displayName"], "First Role");
    assert_eq!(created["type"], Value::Null);
    let generated = define(
        &mut s,
        "acme",
        "roles",
        json!({"displayName": "Second Role"}),
    );
    let gen_id = generated["id"].as_str().unwrap().to_string();
    assert_eq!(gen_id.len(), 36, "a generated UUID: {gen_id}");
    assert_eq!(
        generated["meta"]["location"],
        format!("https://scim.test/t/acme/scim/v2/Roles/{gen_id}"),
        "the admin API shows a value as Okta reads it"
    );

    let r = admin(&mut s, Method::Get, "/tenants/acme/roles", None);
    let list = ok(&r, 200);
    assert_eq!(list["totalResults"], 2);
    let r = admin(
        &mut s,
        Method::Patch,
        "/tenants/acme/roles/role-1",
        Some(json!({"displayName": "Reader", "description": null, "type": "Role"})),
    );
    let updated = ok(&r, 200);
    assert_eq!(
        (
            &updated["displayName"],
            &updated["description"],
            &updated["type"]
        ),
        (&json!("Reader"), &Value::Null, &json!("Role"))
    );
    let stored = s.db.query(
        "SELECT tenant, kind, id, display_name, type, description FROM entitlement_values \
         WHERE id = 'role-1'",
    );
    assert_eq!(
        Value::Object(stored[0].clone()),
        json!({"tenant": "acme", "kind": "Role", "id": "role-1", "display_name": "Reader",
               "type": "Role", "description": null})
    );

    let r = admin(
        &mut s,
        Method::Delete,
        &format!("/tenants/acme/roles/{gen_id}"),
        None,
    );
    ok(&r, 200);
    let r = admin(
        &mut s,
        Method::Get,
        &format!("/tenants/acme/roles/{gen_id}"),
        None,
    );
    assert_eq!(ok(&r, 404)["error"], "not_found");
    let r = admin(
        &mut s,
        Method::Delete,
        &format!("/tenants/acme/roles/{gen_id}"),
        None,
    );
    ok(&r, 404);
    assert_eq!(
        s.db.query("SELECT count(*) AS n FROM entitlement_values")[0]["n"],
        1
    );
}

#[test]
fn admin_api_refuses_bad_input_with_clear_400s_and_conflicts() {
    let mut s = server();
    tenant(&mut s, "acme");
    define(
        &mut s,
        "acme",
        "entitlements",
        json!({"id": "e1", "displayName": "E"}),
    );
    let cases = [
        (
            Method::Post,
            "/tenants/acme/entitlements",
            json!({"displayName": ""}),
            400,
            "displayName",
        ),
        (
            Method::Post,
            "/tenants/acme/entitlements",
            json!({"id": "a b", "displayName": "A"}),
            400,
            "'id'",
        ),
        (
            Method::Post,
            "/tenants/acme/entitlements",
            json!({"displayName": "A", "value": 1}),
            400,
            "unknown field 'value'",
        ),
        (
            Method::Post,
            "/tenants/acme/entitlements",
            json!({"id": "e1", "displayName": "Again"}),
            409,
            "already exists",
        ),
        (
            Method::Patch,
            "/tenants/acme/entitlements/e1",
            json!({"id": "e2"}),
            400,
            "cannot change",
        ),
        (
            Method::Patch,
            "/tenants/acme/entitlements/nope",
            json!({"displayName": "X"}),
            404,
            "no entitlement 'nope'",
        ),
        (
            Method::Post,
            "/tenants/ghost/entitlements",
            json!({"displayName": "A"}),
            404,
            "no tenant 'ghost'",
        ),
        (
            Method::Put,
            "/tenants/acme/entitlements/e1",
            json!({"displayName": "A"}),
            405,
            "allowed",
        ),
    ];
    for (method, path, body, status, needle) in cases {
        let r = admin(&mut s, method, path, Some(body.clone()));
        let b = ok(&r, status);
        let msg = b["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{path} {body}: {msg}");
    }
    let r = admin(&mut s, Method::Get, "/tenants/ghost/roles", None);
    ok(&r, 404);
    let rows =
        s.db.query("SELECT id, display_name FROM entitlement_values");
    assert_eq!(rows.len(), 1, "nothing refused was stored: {rows:?}");
    assert_eq!(rows[0]["display_name"], "E");
    // A SCIM token is not an admin token.
    let token = tenant(&mut s, "other");
    let r = s.call(Method::Get, "/admin/api/tenants/acme/roles", &token, None);
    assert_eq!(r.status, 401);
}

#[test]
fn okta_discovers_and_pages_the_values() {
    let mut s = server();
    let token = tenant(&mut s, "acme");
    // Nothing defined: discovery is as before, and the endpoints answer empty lists.
    let r = scim(&mut s, Method::Get, "/ResourceTypes", &token, None);
    let names: Vec<Value> = ok(&r, 200)["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(names, [json!("User"), json!("Group")]);
    let r = scim(&mut s, Method::Get, "/Roles", &token, None);
    assert_eq!(ok(&r, 200)["totalResults"], 0);

    for (id, name) in [
        ("role-2", "Second Role"),
        ("role-1", "First Role"),
        ("role-3", "Third"),
    ] {
        define(
            &mut s,
            "acme",
            "roles",
            json!({"id": id, "displayName": name}),
        );
    }
    let r = scim(&mut s, Method::Get, "/ResourceTypes", &token, None);
    let rts = ok(&r, 200);
    assert_eq!(
        rts["totalResults"], 3,
        "Role only: no entitlement defined yet"
    );
    let role = &rts["Resources"][2];
    assert_eq!(
        (&role["id"], &role["endpoint"], &role["schema"]),
        (&json!("Role"), &json!("/Roles"), &json!(ROLE_SCHEMA))
    );
    let r = scim(&mut s, Method::Get, "/ResourceTypes/Role", &token, None);
    assert_eq!(ok(&r, 200)["endpoint"], "/Roles");
    let r = scim(
        &mut s,
        Method::Get,
        "/ResourceTypes/Entitlement",
        &token,
        None,
    );
    assert_scim_error(&r, 404, None);
    let r = scim(
        &mut s,
        Method::Get,
        &format!("/Schemas/{ROLE_SCHEMA}"),
        &token,
        None,
    );
    // Okta knows its own schemas and asks /Schemas only for extensions it does not know.
    assert_scim_error(&r, 404, None);

    // Okta's connection test: `?count=1&startIndex=1`.
    let r = scim(
        &mut s,
        Method::Get,
        "/Roles?count=1&startIndex=1",
        &token,
        None,
    );
    let page = ok(&r, 200);
    assert_eq!(page["schemas"], json!([LIST_RESPONSE_SCHEMA]));
    assert_eq!(
        (
            &page["totalResults"],
            &page["itemsPerPage"],
            &page["startIndex"]
        ),
        (&json!(3), &json!(1), &json!(1))
    );
    assert_eq!(
        page["Resources"][0],
        json!({"schemas": [ROLE_SCHEMA], "id": "role-1", "displayName": "First Role",
               "meta": {"resourceType": "Role", "created": page["Resources"][0]["meta"]["created"],
                        "lastModified": page["Resources"][0]["meta"]["lastModified"],
                        "location": "https://scim.test/scim/v2/Roles/role-1"}})
    );
    let r = scim(
        &mut s,
        Method::Get,
        "/Roles?startIndex=2&count=5",
        &token,
        None,
    );
    assert_eq!(ids(&ok(&r, 200)), ["role-2", "role-3"]);
    let r = scim(&mut s, Method::Get, "/Roles?startIndex=9", &token, None);
    let past = ok(&r, 200);
    assert_eq!((ids(&past).len(), &past["totalResults"]), (0, &json!(3)));
    let r = scim(
        &mut s,
        Method::Get,
        "/Roles?attributes=displayName&count=1",
        &token,
        None,
    );
    assert_eq!(
        ok(&r, 200)["Resources"][0],
        json!({"schemas": [ROLE_SCHEMA], "id": "role-1", "displayName": "First Role"})
    );
    let r = scim(&mut s, Method::Get, "/Roles/role-3", &token, None);
    assert_eq!(ok(&r, 200)["displayName"], "Third");
    let r = scim(&mut s, Method::Get, "/Roles/role-9", &token, None);
    assert_scim_error(&r, 404, None);
}

#[test]
fn filters_eq_on_id_display_name_and_type() {
    let mut s = server();
    let token = tenant(&mut s, "acme");
    define(
        &mut s,
        "acme",
        "entitlements",
        json!({"id": "lic-e3", "displayName": "E3", "type": "License"}),
    );
    define(
        &mut s,
        "acme",
        "entitlements",
        json!({"id": "lic-e5", "displayName": "E5", "type": "License"}),
    );
    define(
        &mut s,
        "acme",
        "entitlements",
        json!({"id": "prof-1", "displayName": "Profile 1", "type": "Profile"}),
    );
    let get = |s: &mut Server, filter: &str| {
        let q = filter.replace(' ', "+").replace('"', "%22");
        scim(
            s,
            Method::Get,
            &format!("/Entitlements?filter={q}"),
            &token,
            None,
        )
    };
    let r = get(&mut s, "type eq \"license\"");
    assert_eq!(
        ids(&ok(&r, 200)),
        ["lic-e3", "lic-e5"],
        "type is case-insensitive"
    );
    let r = get(&mut s, "displayName eq \"e5\" and type eq \"License\"");
    let one = ok(&r, 200);
    assert_eq!(
        (ids(&one), &one["totalResults"]),
        (vec!["lic-e5"], &json!(1))
    );
    assert_eq!(one["Resources"][0]["type"], "License");
    assert_eq!(one["Resources"][0]["schemas"], json!([ENTITLEMENT_SCHEMA]));
    let r = get(&mut s, "id eq \"PROF-1\"");
    assert_eq!(ok(&r, 200)["totalResults"], 0, "id is caseExact");
    let r = get(&mut s, "displayName co \"E\"");
    assert_scim_error(&r, 400, Some("invalidFilter"));
    let r = get(&mut s, "displayName eq");
    assert_scim_error(&r, 400, Some("invalidFilter"));
    let r = scim(&mut s, Method::Get, "/Entitlements?cursor=", &token, None);
    assert_scim_error(&r, 400, Some("invalidValue"));
}

#[test]
fn values_are_read_only_over_scim() {
    let mut s = server();
    let token = tenant(&mut s, "acme");
    define(
        &mut s,
        "acme",
        "roles",
        json!({"id": "r1", "displayName": "R"}),
    );
    let body = json!({"schemas": [ROLE_SCHEMA], "id": "r2", "displayName": "X"});
    for (method, path) in [
        (Method::Post, "/Roles"),
        (Method::Put, "/Roles/r1"),
        (Method::Patch, "/Roles/r1"),
        (Method::Delete, "/Roles/r1"),
        (Method::Post, "/Entitlements"),
    ] {
        let r = scim(&mut s, method, path, &token, Some(body.clone()));
        assert_scim_error(&r, 405, None);
    }
    let rows =
        s.db.query("SELECT id, display_name FROM entitlement_values");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["display_name"], "R");
    let events = s.db.query("SELECT count(*) AS n FROM events");
    assert_eq!(
        events[0]["n"], 0,
        "reads and refused routes are not provisioning writes"
    );
}

#[test]
fn tenants_see_only_their_own_values() {
    let mut s = server();
    let a = tenant(&mut s, "tenant-a");
    let b = tenant(&mut s, "tenant-b");
    define(
        &mut s,
        "tenant-a",
        "roles",
        json!({"id": "admin", "displayName": "A's admin"}),
    );
    define(
        &mut s,
        "tenant-a",
        "entitlements",
        json!({"id": "e", "displayName": "A's E"}),
    );
    // The same id in another tenant is another value.
    define(
        &mut s,
        "tenant-b",
        "roles",
        json!({"id": "admin", "displayName": "B's admin"}),
    );
    for prefix in ["/scim/v2", "/t/tenant-b/scim/v2"] {
        let r = s.call(Method::Get, &format!("{prefix}/Roles"), &b, None);
        let list = ok(&r, 200);
        assert_eq!(list["totalResults"], 1, "{prefix}");
        assert_eq!(list["Resources"][0]["displayName"], "B's admin");
        let r = s.call(Method::Get, &format!("{prefix}/Entitlements/e"), &b, None);
        assert_scim_error(&r, 404, None);
        let r = s.call(Method::Get, &format!("{prefix}/Entitlements"), &b, None);
        assert_eq!(ok(&r, 200)["totalResults"], 0);
        let r = s.call(Method::Get, &format!("{prefix}/ResourceTypes"), &b, None);
        let rts = ok(&r, 200);
        assert_eq!(rts["totalResults"], 3, "B advertises Role only: {rts}");
    }
    let r = s.call(Method::Get, "/t/tenant-a/scim/v2/ResourceTypes", &a, None);
    assert_eq!(ok(&r, 200)["totalResults"], 4);
    // B's token at A's URL is refused; the env token's default tenant has nothing.
    let r = s.call(Method::Get, "/t/tenant-a/scim/v2/Roles", &b, None);
    assert_scim_error(&r, 401, None);
    let r = s.call(Method::Get, "/scim/v2/Roles", ENV_TOKEN, None);
    assert_eq!(ok(&r, 200)["totalResults"], 0);
    // B deleting its admin role leaves A's.
    ok(
        &admin(
            &mut s,
            Method::Delete,
            "/tenants/tenant-b/roles/admin",
            None,
        ),
        200,
    );
    let r = s.call(Method::Get, "/scim/v2/Roles/admin", &a, None);
    assert_eq!(ok(&r, 200)["displayName"], "A's admin");
}

/// Okta assigns values through the User: a `PUT` of the whole user with `roles` (as Okta's
/// entitlements workshop shows it does), and `PATCH` add/remove on `roles`/`entitlements`.
#[test]
fn okta_assignment_shapes_are_stored_and_returned() {
    let mut s = server();
    let token = tenant(&mut s, "acme");
    define(
        &mut s,
        "acme",
        "roles",
        json!({"id": "role123", "displayName": "First Role"}),
    );
    let user = json!({"schemas": [USER_SCHEMA], "userName": "bjensen@example.com", "active": true,
                      "roles": [{"value": "role123", "display": "First Role"}]});
    let r = scim(&mut s, Method::Post, "/Users", &token, Some(user.clone()));
    let created = ok(&r, 201);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        created["roles"],
        json!([{"value": "role123", "display": "First Role"}])
    );

    let patch = json!({"schemas": [PATCH_OP], "Operations": [
        {"op": "add", "path": "entitlements", "value": [
            {"value": "entitlement123", "display": "First Entitlement", "type": "License"},
            {"value": "profile123", "display": "First Profile", "type": "Profile"}]},
        {"op": "add", "path": "roles", "value": [{"value": "role456", "display": "Second Role"}]},
    ]});
    let r = scim(
        &mut s,
        Method::Patch,
        &format!("/Users/{id}"),
        &token,
        Some(patch),
    );
    let patched = ok(&r, 200);
    assert_eq!(patched["roles"].as_array().unwrap().len(), 2, "{patched}");
    assert_eq!(patched["entitlements"][1]["type"], "Profile");

    let remove = json!({"schemas": [PATCH_OP], "Operations": [
        {"op": "remove", "path": "roles[value eq \"role123\"]"},
        {"op": "remove", "path": "entitlements[type eq \"Profile\"]"},
    ]});
    let r = scim(
        &mut s,
        Method::Patch,
        &format!("/Users/{id}"),
        &token,
        Some(remove),
    );
    ok(&r, 200);
    let r = scim(&mut s, Method::Get, &format!("/Users/{id}"), &token, None);
    let got = ok(&r, 200);
    assert_eq!(
        got["roles"],
        json!([{"value": "role456", "display": "Second Role"}])
    );
    assert_eq!(
        got["entitlements"],
        json!([{"value": "entitlement123", "display": "First Entitlement", "type": "License"}])
    );

    // Okta's PUT replaces the list with what the governance engine now grants.
    let mut put = user;
    put["roles"] = json!([{"value": "role789", "display": "Third Role"}]);
    let r = scim(
        &mut s,
        Method::Put,
        &format!("/Users/{id}"),
        &token,
        Some(put),
    );
    assert_eq!(
        ok(&r, 200)["roles"],
        json!([{"value": "role789", "display": "Third Role"}])
    );
    let r = scim(
        &mut s,
        Method::Get,
        "/Users?filter=roles.value+eq+%22role789%22",
        &token,
        None,
    );
    assert_eq!(ok(&r, 200)["totalResults"], 1);
}

/// Discovery and each read cost one D1 round trip beyond authentication (the ceiling a SCIM
/// read is held to); a refused filter costs none.
#[test]
fn reads_cost_one_round_trip() {
    let mut s = server();
    let token = tenant(&mut s, "acme");
    define(
        &mut s,
        "acme",
        "roles",
        json!({"id": "r1", "displayName": "R"}),
    );
    let cost = |s: &mut Server, path: &str| {
        let before = s.db.round_trips.get();
        let r = scim(s, Method::Get, path, &token, None);
        (r.status, s.db.round_trips.get() - before)
    };
    cost(&mut s, "/ServiceProviderConfig");
    // What a request pays before its handler runs (0 once the isolate cached the token).
    let (_, auth) = cost(&mut s, "/ServiceProviderConfig");
    assert_eq!(cost(&mut s, "/ResourceTypes"), (200, auth + 1));
    assert_eq!(cost(&mut s, "/Roles?startIndex=1&count=1"), (200, auth + 1));
    assert_eq!(cost(&mut s, "/Roles/r1"), (200, auth + 1));
    assert_eq!(
        cost(&mut s, "/Roles?filter=displayName+sw+%22R%22"),
        (400, auth)
    );
    assert_eq!(
        cost(&mut s, "/Schemas"),
        (200, auth),
        "/Schemas reads nothing"
    );
}
