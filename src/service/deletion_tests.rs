//! Deletion policies through the whole service over real SQLite (issue 18 item 2): what a
//! DELETE leaves under `hard` and `soft`, the tombstone's invisibility to SCIM (RFC 7644
//! §3.6), restores by the admin API and by `restoreOnCreate`, Entra's delete-then-recreate,
//! bulk DELETE, the purge, and what the provisioning log records.

use crate::service::http::{Method, Response};
use crate::testing::{block_on, Server};
use serde_json::{json, Value};

const TOKEN: &str = "deletion-test-token-0123456789";
const ADMIN: &str = "deletion-admin-token";
const TENANT: &str = "/admin/api/tenants/default";
const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

struct H {
    s: Server,
}

fn new(deletion: Option<Value>) -> H {
    let mut h = H {
        s: Server::new(&[TOKEN], Some(ADMIN)),
    };
    if let Some(d) = deletion {
        let r = h.admin(Method::Patch, TENANT, Some(json!({ "deletion": d })));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    h
}

impl H {
    fn admin(&mut self, m: Method, path: &str, body: Option<Value>) -> Response {
        self.s.call(m, path, ADMIN, body)
    }
    fn scim(&mut self, m: Method, path: &str, body: Option<Value>) -> Response {
        self.s.call(m, &format!("/scim/v2{path}"), TOKEN, body)
    }
    /// Entra's user POST (docs/ENTRA.md): userName, externalId (objectId), active.
    fn user(&mut self, name: &str, external_id: &str) -> String {
        let r = self.scim(
            Method::Post,
            "/Users",
            Some(
                json!({"schemas": [USER], "userName": name, "externalId": external_id,
                "active": true, "displayName": name}),
            ),
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.body_json()["id"].as_str().unwrap().to_string()
    }
    fn group(&mut self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        let r = self.scim(
            Method::Post,
            "/Groups",
            Some(json!({"schemas": [GROUP], "displayName": name, "members": members})),
        );
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        r.body_json()["id"].as_str().unwrap().to_string()
    }
    fn get(&mut self, path: &str) -> Response {
        self.scim(Method::Get, path, None)
    }
    fn tombstones(&mut self) -> Vec<Value> {
        let r = self.admin(Method::Get, &format!("{TENANT}/tombstones"), None);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.body_json()["tombstones"].as_array().unwrap().clone()
    }
    fn restore(&mut self, id: &str) -> Response {
        self.admin(
            Method::Post,
            &format!("{TENANT}/tombstones/{id}/restore"),
            None,
        )
    }
    fn member_ids(&mut self, group: &str) -> Vec<String> {
        let g = self.get(&format!("/Groups/{group}")).body_json();
        let mut ids: Vec<String> = g["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| m["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }
    /// The provisioning log's successful rows: (op, resource id, lifecycle).
    fn log(&mut self) -> Vec<(String, String, Option<String>)> {
        self.s
            .db
            .query("SELECT op, resource_id, lifecycle FROM events WHERE outcome = 'success' ORDER BY seq")
            .iter()
            .map(|r| {
                (
                    r["op"].as_str().unwrap().to_string(),
                    r["resource_id"].as_str().unwrap_or_default().to_string(),
                    r["lifecycle"].as_str().map(str::to_string),
                )
            })
            .collect()
    }
}

fn soft() -> Option<Value> {
    Some(json!({"policy": "soft", "days": 30}))
}

#[test]
fn hard_is_the_default_and_keeps_nothing() {
    let mut h = new(None);
    let t = h.admin(Method::Get, TENANT, None).body_json();
    assert_eq!(
        t["deletion"],
        json!({"policy": "hard", "restoreOnCreate": false})
    );
    let u = h.user("ada@contoso.com", "ext-ada");
    assert_eq!(
        h.scim(Method::Delete, &format!("/Users/{u}"), None).status,
        204
    );
    assert!(h.tombstones().is_empty());
    assert_eq!(h.restore(&u).status, 404);
    assert_eq!(h.log().last().unwrap(), &("delete".into(), u, None));
}

#[test]
fn a_soft_deleted_user_is_gone_for_scim_and_its_names_are_free() {
    let mut h = new(soft());
    let u = h.user("ada@contoso.com", "ext-ada");
    let other = h.user("bob@contoso.com", "ext-bob");
    let g = h.group("Engineering", &[&u, &other]);
    assert_eq!(
        h.scim(Method::Delete, &format!("/Users/{u}"), None).status,
        204
    );

    let path = format!("/Users/{u}");
    assert_eq!(h.get(&path).status, 404);
    let put = json!({"schemas": [USER], "userName": "ada@contoso.com"});
    assert_eq!(h.scim(Method::Put, &path, Some(put)).status, 404);
    let patch = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": false}]});
    assert_eq!(h.scim(Method::Patch, &path, Some(patch)).status, 404);
    assert_eq!(h.scim(Method::Delete, &path, None).status, 404);
    let list = h.get("/Users").body_json();
    assert_eq!(list["totalResults"], json!(1));
    let found = h
        .get("/Users?filter=userName%20eq%20%22ada%40contoso.com%22")
        .body_json();
    assert_eq!(found["totalResults"], json!(0));
    let by_ext = h
        .get("/Users?filter=externalId%20eq%20%22ext-ada%22")
        .body_json();
    assert_eq!(by_ext["totalResults"], json!(0));
    assert_eq!(h.member_ids(&g), vec![other.clone()]);

    // The tombstone keeps the user and its membership, for the admin API.
    let t = h.tombstones();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0]["id"], json!(u));
    assert_eq!(t[0]["userName"], json!("ada@contoso.com"));
    assert_eq!(t[0]["externalId"], json!("ext-ada"));
    let kept =
        h.s.db
            .query("SELECT group_id, member_id FROM tombstone_members");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["group_id"], json!(g));

    // userName (case-insensitively unique) is free at once: a new user under a new id.
    let again = h.user("ADA@contoso.com", "ext-ada-2");
    assert_ne!(again, u);
    assert_eq!(
        h.log()
            .iter()
            .filter(|l| l.2.as_deref() == Some("soft"))
            .count(),
        1
    );
}

#[test]
fn a_restore_brings_back_the_id_the_attributes_and_the_memberships() {
    let mut h = new(soft());
    let u = h.user("ada@contoso.com", "ext-ada");
    let g = h.group("Engineering", &[&u]);
    let before = h.get(&format!("/Users/{u}")).body_json();
    let g_version = h.get(&format!("/Groups/{g}")).body_json()["meta"]["version"].clone();
    assert_eq!(
        h.scim(Method::Delete, &format!("/Users/{u}"), None).status,
        204
    );
    assert!(h.member_ids(&g).is_empty());

    // The userName taken meanwhile: 409, and nothing changes.
    let taker = h.user("ada@contoso.com", "someone-else");
    let r = h.restore(&u);
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(h.tombstones().len(), 1);
    assert_eq!(h.get(&format!("/Users/{u}")).status, 404);

    assert_eq!(
        h.scim(Method::Delete, &format!("/Users/{taker}"), None)
            .status,
        204
    );
    let r = h.restore(&u);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.body_json()["id"], json!(u));
    let after = h.get(&format!("/Users/{u}")).body_json();
    assert_eq!(after["userName"], before["userName"]);
    assert_eq!(after["externalId"], json!("ext-ada"));
    assert_eq!(after["meta"]["created"], before["meta"]["created"]);
    assert_ne!(after["meta"]["version"], before["meta"]["version"]);
    assert_eq!(after["groups"][0]["value"], json!(g));
    assert_eq!(h.member_ids(&g), vec![u.clone()]);
    let g_after = h.get(&format!("/Groups/{g}")).body_json();
    assert_ne!(
        g_after["meta"]["version"], g_version,
        "the group's members changed"
    );
    // Only the taker's tombstone is left; the restored one's kept rows are gone.
    let left: Vec<Value> = h.tombstones().iter().map(|t| t["id"].clone()).collect();
    assert_eq!(left, vec![json!(taker)]);
    assert!(h.s.db.query("SELECT 1 FROM tombstone_members").is_empty());
    assert_eq!(
        h.log().last().unwrap(),
        &("create".into(), u, Some("restore".into()))
    );
    assert_eq!(h.restore("no-such-id").status, 404);
}

#[test]
fn memberships_between_two_tombstones_come_back_in_either_order() {
    for group_first in [true, false] {
        let mut h = new(soft());
        let u = h.user("ada@contoso.com", "ext-ada");
        let g = h.group("Engineering", &[&u]);
        // The group goes first: the user's DELETE then has no member row left to keep.
        assert_eq!(
            h.scim(Method::Delete, &format!("/Groups/{g}"), None).status,
            204
        );
        assert_eq!(
            h.scim(Method::Delete, &format!("/Users/{u}"), None).status,
            204
        );
        let (first, second) = if group_first { (&g, &u) } else { (&u, &g) };
        assert_eq!(h.restore(first).status, 200);
        assert_eq!(h.restore(second).status, 200);
        assert_eq!(
            h.member_ids(&g),
            vec![u.clone()],
            "group first: {group_first}"
        );
        let user = h.get(&format!("/Users/{u}")).body_json();
        assert_eq!(user["groups"][0]["value"], json!(g));
    }
}

#[test]
fn a_soft_deleted_group_frees_its_display_name_and_leaves_users_groups() {
    let mut h = new(soft());
    let u = h.user("ada@contoso.com", "ext-ada");
    let g = h.group("Engineering", &[&u]);
    assert_eq!(
        h.scim(Method::Delete, &format!("/Groups/{g}"), None).status,
        204
    );
    let user = h.get(&format!("/Users/{u}")).body_json();
    assert!(user.get("groups").is_none_or(|g| g == &json!([])), "{user}");
    assert_eq!(h.get("/Groups").body_json()["totalResults"], json!(0));
    let g2 = h.group("engineering", &[]);
    assert_eq!(h.restore(&g).status, 409);
    assert_eq!(
        h.scim(Method::Delete, &format!("/Groups/{g2}"), None)
            .status,
        204
    );
    assert_eq!(h.restore(&g).status, 200);
    assert_eq!(h.member_ids(&g), vec![u]);
}

#[test]
fn restore_on_create_brings_entras_recreated_user_back_under_its_id() {
    let mut h = new(Some(json!({"policy": "soft", "restoreOnCreate": true})));
    let t = h.admin(Method::Get, TENANT, None).body_json();
    assert_eq!(
        t["deletion"],
        json!({"policy": "soft", "days": 30, "restoreOnCreate": true})
    );
    let u = h.user("ada@contoso.com", "ext-ada");
    let g = h.group("Engineering", &[&u]);
    assert_eq!(
        h.scim(Method::Delete, &format!("/Users/{u}"), None).status,
        204
    );
    // Entra recreates with the same userName and externalId (objectId) and new attributes.
    let r = h.scim(
        Method::Post,
        "/Users",
        Some(
            json!({"schemas": [USER], "userName": "ada@contoso.com", "externalId": "ext-ada",
            "active": "True", "displayName": "Ada L."}),
        ),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let b = r.body_json();
    assert_eq!(b["id"], json!(u));
    assert_eq!(b["displayName"], json!("Ada L."));
    assert_eq!(b["active"], json!(true));
    // The quirk is counted as on any create.
    let counted =
        h.s.db
            .query("SELECT count FROM tolerance_counts WHERE name = 'booleanString'");
    assert_eq!(counted[0]["count"], json!(1));
    assert!(r
        .header("location")
        .unwrap()
        .ends_with(&format!("/Users/{u}")));
    assert_eq!(h.member_ids(&g), vec![u.clone()]);
    assert!(h.tombstones().is_empty());
    assert_eq!(
        h.log().last().unwrap(),
        &("create".into(), u.clone(), Some("restore".into()))
    );
    // Another externalId is a new user.
    let other = h.user("grace@contoso.com", "ext-grace");
    assert_ne!(other, u);
}

#[test]
fn entras_delete_then_recreate_works_under_every_policy() {
    let policies = [
        None,
        soft(),
        Some(json!({"policy": "soft", "days": 7, "restoreOnCreate": true})),
    ];
    for policy in policies {
        let mut h = new(policy.clone());
        let u = h.user("ada@contoso.com", "ext-ada");
        assert_eq!(
            h.scim(Method::Delete, &format!("/Users/{u}"), None).status,
            204
        );
        let again = h.user("ada@contoso.com", "ext-ada");
        let restoring = policy
            .as_ref()
            .is_some_and(|p| p["restoreOnCreate"] == json!(true));
        assert_eq!(again == u, restoring, "{policy:?}");
        let found = h
            .get("/Users?filter=externalId%20eq%20%22ext-ada%22")
            .body_json();
        assert_eq!(found["totalResults"], json!(1), "{policy:?}");
        assert_eq!(found["Resources"][0]["id"], json!(again));
    }
}

#[test]
fn a_bulk_delete_follows_the_policy() {
    let mut h = new(soft());
    let u = h.user("ada@contoso.com", "ext-ada");
    let r = h.scim(
        Method::Post,
        "/Bulk",
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [{"method": "DELETE", "path": format!("/Users/{u}")}]}),
        ),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.body_json()["Operations"][0]["status"], json!("204"));
    assert_eq!(h.get(&format!("/Users/{u}")).status, 404);
    assert_eq!(h.tombstones()[0]["id"], json!(u));
    assert_eq!(h.restore(&u).status, 200);
}

#[test]
fn the_purge_ends_tombstones_after_their_tenants_days_with_an_event() {
    let mut h = new(Some(json!({"policy": "soft", "days": 2})));
    let u = h.user("ada@contoso.com", "ext-ada");
    let g = h.group("Engineering", &[&u]);
    assert_eq!(
        h.scim(Method::Delete, &format!("/Users/{u}"), None).status,
        204
    );
    let purge = |h: &mut H, days_later: i64| {
        let now = crate::proto::time::format_millis(h.s.now_ms + days_later * 86_400_000);
        block_on(crate::store::Db::batch(
            &h.s.db,
            crate::store::tombstones::purge_stmts(&now),
        ))
        .unwrap();
    };
    purge(&mut h, 1);
    assert_eq!(h.tombstones().len(), 1, "kept for 2 days");
    purge(&mut h, 3);
    assert!(h.tombstones().is_empty());
    assert!(h.s.db.query("SELECT 1 FROM tombstone_members").is_empty());
    assert_eq!(h.restore(&u).status, 404);
    assert_eq!(
        h.log().last().unwrap(),
        &("delete".into(), u, Some("purge".into()))
    );
    // A tenant back on `hard` has its tombstones purged by the next run.
    assert_eq!(
        h.scim(Method::Delete, &format!("/Groups/{g}"), None).status,
        204
    );
    let r = h.admin(
        Method::Patch,
        TENANT,
        Some(json!({"deletion": {"policy": "hard"}})),
    );
    assert_eq!(r.status, 200);
    purge(&mut h, 0);
    assert!(h.tombstones().is_empty());
}

#[test]
fn bad_policies_are_400s() {
    let mut h = new(None);
    for bad in [
        json!("soft"),
        json!({"policy": "archive"}),
        json!({"policy": "hard", "days": 3}),
        json!({"policy": "soft", "days": -1}),
        json!({"policy": "soft", "days": 1.5}),
        json!({"policy": "soft", "keep": 1}),
        json!({"restoreOnCreate": "yes"}),
    ] {
        let r = h.admin(Method::Patch, TENANT, Some(json!({ "deletion": bad })));
        assert_eq!(r.status, 400, "{bad}");
    }
    let t = h.admin(Method::Get, TENANT, None).body_json();
    assert_eq!(t["deletion"]["policy"], json!("hard"));
    assert_eq!(
        h.admin(Method::Delete, &format!("{TENANT}/tombstones"), None)
            .status,
        405
    );
}

#[test]
fn declared_unique_values_are_freed_by_a_soft_delete_and_checked_by_a_restore() {
    const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
    let mut h = new(soft());
    let decl = json!({"resourceType": "User", "schema": {"id": CUSTOM, "name": "Custom",
        "attributes": [{"name": "employeeCode", "type": "string", "uniqueness": "server"}]}});
    let r = h.admin(
        Method::Put,
        &format!("{TENANT}/schemas/{CUSTOM}"),
        Some(decl),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let user = |name: &str| json!({"schemas": [USER, CUSTOM], "userName": name, CUSTOM: {"employeeCode": "E1"}});
    let r = h.scim(Method::Post, "/Users", Some(user("a")));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let a = r.body_json()["id"].as_str().unwrap().to_string();
    assert_eq!(h.scim(Method::Post, "/Users", Some(user("b"))).status, 409);
    assert_eq!(
        h.scim(Method::Delete, &format!("/Users/{a}"), None).status,
        204
    );
    let r = h.scim(Method::Post, "/Users", Some(user("b")));
    assert_eq!(
        r.status,
        201,
        "the soft delete freed E1: {}",
        String::from_utf8_lossy(&r.body)
    );
    let b = r.body_json()["id"].as_str().unwrap().to_string();
    let r = h.restore(&a);
    assert_eq!(
        r.status,
        409,
        "E1 is b's now: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        h.scim(Method::Delete, &format!("/Users/{b}"), None).status,
        204
    );
    assert_eq!(h.restore(&a).status, 200);
    // Restored, a holds E1 again.
    assert_eq!(h.scim(Method::Post, "/Users", Some(user("c"))).status, 409);
}
