//! Tenants, credentials, the admin API, the OAuth token endpoint and rate limiting through the
//! full request path, natively against SQLite with the production migrations. The same
//! behaviour runs again in workerd by `tests/e2e/tenancy*.test.mjs`.

use crate::proto::schema::{GROUP_SCHEMA, USER_SCHEMA};
use crate::service::credentials::TokenCache;
use crate::service::ctx::{Config, Ctx};
use crate::service::handle;
use crate::service::http::{Method, Request, Response};
use crate::service::ratelimit::{FixedWindow, RateLimiter, Unlimited};
use crate::testing::{block_on, SqliteDb};
use serde_json::{json, Value};

const ENV_TOKEN: &str = "env-token-0123456789abcdef";
const ADMIN: &str = "admin-token-0123456789abcdef";
const ORIGIN: &str = "https://scim.test";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

struct H {
    db: SqliteDb,
    config: Config,
    /// One isolate's cache; tests make a second `TokenCache` to play another isolate.
    cache: TokenCache,
    limiter: Box<dyn RateLimiter>,
    now_ms: i64,
}

impl H {
    fn new() -> H {
        H {
            db: SqliteDb::new(),
            config: Config {
                tokens: vec![ENV_TOKEN.into()],
                admin_token: Some(ADMIN.into()),
                ..Config::default()
            },
            cache: TokenCache::default(),
            limiter: Box::new(Unlimited),
            now_ms: 1_700_000_000_000,
        }
    }

    fn send_with(&mut self, cache: Option<&TokenCache>, req: Request) -> Response {
        self.now_ms += 10;
        let ctx = Ctx {
            db: &self.db,
            config: &self.config,
            now_ms: self.now_ms,
            tokens: cache.unwrap_or(&self.cache),
            limiter: self.limiter.as_ref(),
            profiles: crate::service::profile::isolate_cache(),
            forward: None,
            adopted: None,
        };
        block_on(handle(&ctx, &req))
    }

    fn send(&mut self, req: Request) -> Response {
        self.send_with(None, req)
    }

    fn request(method: Method, path: &str, token: &str, body: Option<&Value>) -> Request {
        let mut r = Request::new(method, path, ORIGIN)
            .with_header("Authorization", &format!("Bearer {token}"));
        if let Some(b) = body {
            r = r
                .with_header("Content-Type", "application/json")
                .with_body(b.to_string());
        }
        r
    }

    fn admin(&mut self, method: Method, path: &str, body: Option<Value>) -> Response {
        let req = H::request(method, &format!("/admin/api{path}"), ADMIN, body.as_ref());
        self.send(req)
    }

    fn scim(&mut self, method: Method, path: &str, token: &str, body: Option<Value>) -> Response {
        let req = H::request(method, path, token, body.as_ref());
        self.send(req)
    }

    fn create_tenant(&mut self, id: &str) {
        let r = self.admin(Method::Post, "/tenants", Some(json!({"id": id})));
        assert_eq!(r.status, 201, "{}", text(&r));
    }

    /// Issues a bearer token; returns (credential id, secret).
    fn issue(&mut self, tenant: &str, body: Value) -> (String, String) {
        let r = self.admin(
            Method::Post,
            &format!("/tenants/{tenant}/tokens"),
            Some(body),
        );
        assert_eq!(r.status, 201, "{}", text(&r));
        let b = r.body_json();
        (
            b["id"].as_str().unwrap().to_string(),
            b["token"]
                .as_str()
                .or(b["clientSecret"].as_str())
                .unwrap()
                .to_string(),
        )
    }

    fn create_user(&mut self, token: &str, user_name: &str) -> String {
        let r = self.scim(
            Method::Post,
            "/scim/v2/Users",
            token,
            Some(json!({"schemas": [USER_SCHEMA], "userName": user_name})),
        );
        assert_eq!(r.status, 201, "{}", text(&r));
        r.body_json()["id"].as_str().unwrap().to_string()
    }

    fn snapshot(&self) -> Vec<crate::store::Row> {
        let mut rows = self
            .db
            .query("SELECT tenant, id, type, data, version FROM resources ORDER BY tenant, id");
        rows.extend(
            self.db
                .query("SELECT tenant, group_id, member_id FROM members ORDER BY 1, 2, 3"),
        );
        rows
    }
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn token_form(client_id: &str, secret: &str) -> String {
    format!("grant_type=client_credentials&client_id={client_id}&client_secret={secret}")
}

fn oauth(h: &mut H, tenant: &str, body: &str, auth: Option<&str>) -> Response {
    let mut r = Request::new(Method::Post, &format!("/t/{tenant}/oauth/token"), ORIGIN)
        .with_header("Content-Type", "application/x-www-form-urlencoded")
        .with_body(body.to_string());
    if let Some(a) = auth {
        r = r.with_header("Authorization", a);
    }
    h.send(r)
}

#[test]
fn issued_tokens_act_for_their_tenant_only_and_are_stored_hashed() {
    let mut h = H::new();
    h.create_tenant("acme");
    let r = h.admin(
        Method::Post,
        "/tenants/acme/tokens",
        Some(json!({"label": "Entra"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let issued = r.body_json();
    let token = issued["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("scim_"));
    assert_eq!(issued["label"], "Entra");
    assert_eq!(issued["status"], "active");
    assert_eq!(issued["scimUrl"], "https://scim.test/t/acme/scim/v2");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // Only the hash is stored.
    let stored = h.db.query("SELECT * FROM credentials");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["hash"], crate::service::credentials::hash(&token));
    assert!(!stored
        .iter()
        .any(|row| row.values().any(|v| v == &json!(token))));

    let id = h.create_user(&token, "alice@acme.test");
    let row = h.db.query("SELECT tenant FROM resources");
    assert_eq!(row[0]["tenant"], "acme");
    // Both URL shapes work; locations follow the URL used.
    let r = h.scim(
        Method::Get,
        &format!("/t/acme/scim/v2/Users/{id}"),
        &token,
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body_json()["meta"]["location"],
        format!("https://scim.test/t/acme/scim/v2/Users/{id}")
    );
    // The env token is tenant `default` and sees nothing of acme.
    let r = h.scim(Method::Get, "/scim/v2/Users", ENV_TOKEN, None);
    assert_eq!(r.body_json()["totalResults"], 0);
    let r = h.scim(Method::Get, "/t/default/scim/v2/Users", ENV_TOKEN, None);
    assert_eq!(r.status, 200);
    // A URL naming another tenant than the token's is refused before any read.
    for (path, token) in [
        ("/t/acme/scim/v2/Users", ENV_TOKEN),
        ("/t/default/scim/v2/Users", token.as_str()),
        ("/t/globex/scim/v2/Users", token.as_str()),
    ] {
        let r = h.scim(Method::Get, path, token, None);
        assert_eq!(r.status, 401, "{path}: {}", text(&r));
        assert_eq!(r.body_json()["status"], "401");
    }
    // Listing shows no secret and no hash.
    let r = h.admin(Method::Get, "/tenants/acme/tokens", None);
    assert_eq!(r.status, 200);
    let list = r.body_json();
    assert_eq!(list["tokens"].as_array().unwrap().len(), 1);
    let t = &list["tokens"][0];
    assert!(t.get("token").is_none() && t.get("hash").is_none());
    assert_eq!(t["type"], "bearer");
    assert!(t["lastUsed"].is_string(), "use is recorded: {t}");
    assert!(!list.to_string().contains(&token[5..]));
}

#[test]
fn a_verified_token_costs_no_round_trip_until_the_ttl_and_records_use_once_per_ttl() {
    let mut h = H::new();
    h.create_tenant("acme");
    let (_, token) = h.issue("acme", json!({}));
    let trips = |h: &mut H, path: &str| {
        let before = h.db.round_trips.get();
        let r = h.scim(Method::Get, path, &token, None);
        assert_eq!(r.status, 200, "{}", text(&r));
        h.db.round_trips.get() - before
    };
    assert_eq!(
        trips(&mut h, "/scim/v2/Users"),
        2,
        "verification, then the read"
    );
    let first_use = h.db.query("SELECT last_used FROM credentials")[0]["last_used"].clone();
    assert_eq!(trips(&mut h, "/scim/v2/Users"), 1, "cached: the read alone");
    assert_eq!(
        trips(&mut h, "/scim/v2/Users?filter=userName+eq+%22x%22"),
        1
    );
    assert_eq!(
        h.db.query("SELECT last_used FROM credentials")[0]["last_used"],
        first_use,
        "last-used is not written per request"
    );
    h.now_ms += crate::service::credentials::CACHE_TTL_MS;
    assert_eq!(
        trips(&mut h, "/scim/v2/Users"),
        2,
        "re-verified after the TTL"
    );
    assert_ne!(
        h.db.query("SELECT last_used FROM credentials")[0]["last_used"],
        first_use
    );
    // Env tokens and garbage never touch D1 for authentication.
    let before = h.db.round_trips.get();
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", "nope", None).status,
        401
    );
    assert_eq!(
        h.scim(
            Method::Get,
            "/scim/v2/ServiceProviderConfig",
            ENV_TOKEN,
            None
        )
        .status,
        200
    );
    assert_eq!(h.db.round_trips.get(), before);
}

#[test]
fn isolation_matrix_tenant_a_cannot_read_or_change_tenant_b() {
    let mut h = H::new();
    h.create_tenant("a");
    h.create_tenant("b");
    let (_, ta) = h.issue("a", json!({}));
    let (_, tb) = h.issue("b", json!({}));
    let bu = h.create_user(&tb, "bob@b.test");
    let r = h.scim(
        Method::Post,
        "/scim/v2/Groups",
        &tb,
        Some(
            json!({"schemas": [GROUP_SCHEMA], "displayName": "B team", "members": [{"value": bu}]}),
        ),
    );
    assert_eq!(r.status, 201);
    let bg = r.body_json()["id"].as_str().unwrap().to_string();
    // A has a user too, whose id A may try to add to B's group.
    let au = h.create_user(&ta, "alice@a.test");
    let before = h.snapshot();

    let user = json!({"schemas": [USER_SCHEMA], "userName": "bob@b.test", "displayName": "x"});
    let group =
        json!({"schemas": [GROUP_SCHEMA], "displayName": "B team", "members": [{"value": au}]});
    let patch = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "pwned"}]});
    // A's token under its own tenant's URLs finds nothing of B's (404); naming B's tenant in
    // the URL is refused outright (401).
    for (prefix, token, want) in [
        ("/scim/v2", &ta, 404),
        ("/t/a/scim/v2", &ta, 404),
        ("/t/b/scim/v2", &ta, 401),
    ] {
        for (rt, id, body) in [("Users", &bu, &user), ("Groups", &bg, &group)] {
            for (m, b) in [
                (Method::Get, None),
                (Method::Put, Some(body.clone())),
                (Method::Patch, Some(patch.clone())),
                (Method::Delete, None),
            ] {
                let path = format!("{prefix}/{rt}/{id}");
                let r = h.scim(m, &path, token, b);
                assert_eq!(r.status, want, "{m:?} {path}: {}", text(&r));
                assert!(!text(&r).contains("bob@b.test"), "{m:?} {path} leaked data");
            }
        }
        // Lists and searches see only the caller's tenant (or nothing, when refused).
        for path in [
            "/Users",
            "/Groups",
            "/Users?filter=userName+eq+%22bob@b.test%22",
        ] {
            let r = h.scim(Method::Get, &format!("{prefix}{path}"), token, None);
            assert!(
                !text(&r).contains("bob@b.test") && !text(&r).contains(&bg),
                "{prefix}{path}"
            );
        }
        let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName sw \"bob\""});
        for path in ["/.search", "/Users/.search"] {
            let r = h.scim(
                Method::Post,
                &format!("{prefix}{path}"),
                token,
                Some(search.clone()),
            );
            assert!(
                !text(&r).contains("bob@b.test"),
                "{prefix}{path}: {}",
                text(&r)
            );
        }
    }
    // Creating in A with B's member id fails (the member does not exist in A).
    let r = h.scim(
        Method::Post,
        "/scim/v2/Groups",
        &ta,
        Some(
            json!({"schemas": [GROUP_SCHEMA], "displayName": "A team", "members": [{"value": bu}]}),
        ),
    );
    assert_eq!(r.status, 400, "{}", text(&r));
    // A's POST of B's userName succeeds in A: uniqueness is per tenant.
    let r = h.scim(Method::Post, "/scim/v2/Users", &ta, Some(user.clone()));
    assert_eq!(r.status, 201);
    let now = h.snapshot();
    let b_rows = |rows: &[crate::store::Row]| -> Vec<crate::store::Row> {
        rows.iter()
            .filter(|r| r.get("tenant") == Some(&json!("b")))
            .cloned()
            .collect()
    };
    assert_eq!(b_rows(&now), b_rows(&before), "nothing of tenant b changed");
}

#[test]
fn revoked_tokens_fail_at_once_here_and_within_the_ttl_elsewhere() {
    let mut h = H::new();
    h.create_tenant("acme");
    let (id, token) = h.issue("acme", json!({"label": "to revoke"}));
    let other_isolate = TokenCache::default();
    let get = |h: &mut H, cache: Option<&TokenCache>| {
        let req = H::request(Method::Get, "/scim/v2/Users", &token, None);
        h.send_with(cache, req).status
    };
    assert_eq!(get(&mut h, None), 200);
    assert_eq!(get(&mut h, Some(&other_isolate)), 200);
    let r = h.admin(Method::Delete, &format!("/tenants/acme/tokens/{id}"), None);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.body_json()["status"], "revoked");
    assert_eq!(
        get(&mut h, None),
        401,
        "immediate in the isolate that revoked it"
    );
    assert_eq!(
        get(&mut h, Some(&other_isolate)),
        200,
        "still cached elsewhere"
    );
    h.now_ms += crate::service::credentials::CACHE_TTL_MS;
    assert_eq!(get(&mut h, Some(&other_isolate)), 401, "gone after the TTL");
    // Revoking again is idempotent; unknown ids and other tenants' ids are 404.
    let again = h.admin(Method::Delete, &format!("/tenants/acme/tokens/{id}"), None);
    assert_eq!(again.status, 200);
    assert_eq!(again.body_json()["revoked"], r.body_json()["revoked"]);
    h.create_tenant("other");
    assert_eq!(
        h.admin(Method::Delete, &format!("/tenants/other/tokens/{id}"), None)
            .status,
        404
    );
    assert_eq!(
        h.admin(Method::Delete, "/tenants/acme/tokens/nope", None)
            .status,
        404
    );
    assert_eq!(
        h.admin(Method::Get, "/tenants/nope/tokens", None).status,
        404
    );
}

#[test]
fn expired_tokens_are_refused_even_from_the_cache() {
    let mut h = H::new();
    h.create_tenant("acme");
    let (_, token) = h.issue("acme", json!({"expiresIn": 5}));
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", &token, None).status,
        200
    );
    h.now_ms += 5_000;
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", &token, None).status,
        401
    );
    let fresh = TokenCache::default();
    let req = H::request(Method::Get, "/scim/v2/Users", &token, None);
    assert_eq!(h.send_with(Some(&fresh), req).status, 401);
    let list = h
        .admin(Method::Get, "/tenants/acme/tokens", None)
        .body_json();
    assert_eq!(list["tokens"][0]["status"], "expired");
    // Expiry must be in the future and well-formed.
    for bad in [
        json!({"expiresIn": -1}),
        json!({"expiresAt": "2001-01-01T00:00:00Z"}),
        json!({"expiresAt": "soon"}),
        json!({"expiresIn": 5, "expiresAt": "2099-01-01T00:00:00Z"}),
    ] {
        let r = h.admin(Method::Post, "/tenants/acme/tokens", Some(bad.clone()));
        assert_eq!(r.status, 400, "{bad}: {}", text(&r));
        assert_eq!(r.body_json()["error"], "invalid_request");
        assert!(r.body_json()["message"].is_string());
    }
}

#[test]
fn rotation_keeps_both_tokens_working_for_the_overlap() {
    let mut h = H::new();
    h.create_tenant("acme");
    let (old_id, old) = h.issue("acme", json!({"label": "Entra prod"}));
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", &old, None).status,
        200
    );
    let r = h.admin(
        Method::Post,
        &format!("/tenants/acme/tokens/{old_id}/rotate"),
        Some(json!({"overlapSeconds": 60})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let b = r.body_json();
    let new = b["token"].as_str().unwrap().to_string();
    assert_eq!(b["label"], "Entra prod", "the label carries over");
    assert_eq!(b["previous"]["id"], old_id.as_str());
    assert_eq!(b["previous"]["replacedBy"], b["id"]);
    assert!(b["previous"]["expires"].is_string());
    assert!(b["previous"].get("token").is_none());
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", &old, None).status,
        200,
        "overlap"
    );
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", &new, None).status,
        200
    );
    // Rotating the old one again is refused; the new one can be rotated later.
    let again = h.admin(
        Method::Post,
        &format!("/tenants/acme/tokens/{old_id}/rotate"),
        None,
    );
    assert_eq!(again.status, 409, "{}", text(&again));
    h.now_ms += 60_000;
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", &old, None).status,
        401,
        "after the overlap"
    );
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", &new, None).status,
        200
    );
    // Overlap 0: the old token stops at once.
    let new_id = b["id"].as_str().unwrap();
    let r = h.admin(
        Method::Post,
        &format!("/tenants/acme/tokens/{new_id}/rotate"),
        Some(json!({"overlapSeconds": 0, "label": "renamed"})),
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.body_json()["label"], "renamed");
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", &new, None).status,
        401
    );
    let newest = r.body_json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", &newest, None).status,
        200
    );
}

#[test]
fn admin_api_and_scim_api_refuse_each_others_tokens() {
    let mut h = H::new();
    h.create_tenant("acme");
    let (_, issued) = h.issue("acme", json!({}));
    for token in [ENV_TOKEN, issued.as_str(), "", "wrong"] {
        let r = h.send(H::request(Method::Get, "/admin/api/tenants", token, None));
        assert_eq!(r.status, 401, "{token}");
        assert_eq!(r.body_json()["error"], "unauthorized");
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
    }
    let r = h.send(Request::new(Method::Get, "/admin/api/tenants", ORIGIN));
    assert_eq!(r.status, 401);
    for path in [
        "/scim/v2/Users",
        "/t/acme/scim/v2/Users",
        "/t/default/scim/v2/Users",
    ] {
        let r = h.scim(Method::Get, path, ADMIN, None);
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(
            r.body_json()["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:Error"
        );
    }
    // Even if the admin token is also configured as a SCIM token.
    h.config.tokens.push(ADMIN.into());
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", ADMIN, None).status,
        401
    );
    // Without ADMIN_TOKEN the admin API is off.
    h.config.admin_token = None;
    let r = h.admin(Method::Get, "/tenants", None);
    assert_eq!(r.status, 403);
    assert!(r.body_json()["message"]
        .as_str()
        .unwrap()
        .contains("ADMIN_TOKEN"));
}

#[test]
fn admin_api_manages_tenants_with_clear_errors() {
    let mut h = H::new();
    h.create_tenant("acme");
    let r = h.admin(Method::Post, "/tenants", Some(json!({"id": "acme"})));
    assert_eq!(r.status, 409);
    assert_eq!(r.body_json()["error"], "conflict");
    for bad in [
        json!({}),
        json!({"id": "Bad Id"}),
        json!({"id": "x", "extra": 1}),
        json!({"id": 7}),
    ] {
        let r = h.admin(Method::Post, "/tenants", Some(bad.clone()));
        assert_eq!(r.status, 400, "{bad}");
    }
    let r = h.admin(
        Method::Post,
        "/tenants",
        Some(json!({"id": "globex", "name": "Globex", "strictPatch": true})),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        r.body_json()["tokenEndpoint"],
        "https://scim.test/t/globex/oauth/token"
    );
    let list = h.admin(Method::Get, "/tenants", None).body_json();
    let ids: Vec<&str> = list["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "default", "globex"]);
    let r = h.admin(
        Method::Patch,
        "/tenants/acme",
        Some(json!({"strictPatch": true})),
    );
    assert_eq!(r.body_json()["strictPatch"], true);
    assert_eq!(
        h.db.query("SELECT strict_patch FROM tenants WHERE id = 'acme'")[0]["strict_patch"],
        1
    );
    assert_eq!(h.admin(Method::Get, "/tenants/nope", None).status, 404);
    assert_eq!(h.admin(Method::Put, "/tenants/acme", None).status, 405);
    assert_eq!(h.admin(Method::Get, "/nothing", None).status, 404);
    let r = h.admin(Method::Post, "/tenants/nope/tokens", Some(json!({})));
    assert_eq!(r.status, 404);
    assert_eq!(
        h.db.query("SELECT count(*) AS n FROM credentials")[0]["n"],
        0
    );
    let r = h.admin(
        Method::Post,
        "/tenants/acme/tokens",
        Some(json!({"type": "magic"})),
    );
    assert_eq!(r.status, 400);
    let r = h.send(
        H::request(Method::Post, "/admin/api/tenants", ADMIN, None)
            .with_header("Content-Type", "application/json")
            .with_body("{nope"),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.body_json()["error"], "invalid_request");
}

#[test]
fn oauth_client_credentials_grant() {
    let mut h = H::new();
    h.create_tenant("acme");
    h.create_tenant("globex");
    let r = h.admin(
        Method::Post,
        "/tenants/acme/tokens",
        Some(json!({"type": "oauth_client", "label": "Entra"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let c = r.body_json();
    let (client_id, secret) = (
        c["clientId"].as_str().unwrap().to_string(),
        c["clientSecret"].as_str().unwrap().to_string(),
    );
    assert_eq!(c["tokenEndpoint"], "https://scim.test/t/acme/oauth/token");
    assert!(c.get("token").is_none());
    // The client secret is not a SCIM token.
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", &secret, None).status,
        401
    );

    let r = oauth(&mut h, "acme", &token_form(&client_id, &secret), None);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = r.body_json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let access = body["access_token"].as_str().unwrap().to_string();
    let uid = h.create_user(&access, "oauth@acme.test");
    assert_eq!(
        h.scim(
            Method::Get,
            &format!("/t/acme/scim/v2/Users/{uid}"),
            &access,
            None
        )
        .status,
        200
    );
    assert_eq!(
        h.scim(Method::Get, "/t/globex/scim/v2/Users", &access, None)
            .status,
        401
    );
    // HTTP Basic works too.
    let basic = crate::service::credentials::base64url(format!("{client_id}:{secret}").as_bytes());
    let r = oauth(
        &mut h,
        "acme",
        "grant_type=client_credentials",
        Some(&format!("Basic {basic}")),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    // Wrong secret, wrong tenant, unknown client: invalid_client.
    let wrong = format!("{}x", &secret[..secret.len() - 1]);
    for (tenant, form) in [
        ("acme", token_form(&client_id, &wrong)),
        ("globex", token_form(&client_id, &secret)),
        ("acme", token_form("nope", &secret)),
    ] {
        let r = oauth(&mut h, tenant, &form, None);
        assert_eq!(r.status, 401, "{tenant} {form}");
        assert_eq!(r.body_json()["error"], "invalid_client");
        assert!(r.header("www-authenticate").is_some());
    }
    // The code grant is served here too (src/service/authorize.rs); other grants are not.
    let r = oauth(
        &mut h,
        "acme",
        "grant_type=password&username=a&password=b",
        None,
    );
    assert_eq!(
        (r.status, r.body_json()["error"].clone()),
        (400, json!("unsupported_grant_type"))
    );
    // Access tokens are not listed; the client shows its last use.
    let list = h
        .admin(Method::Get, "/tenants/acme/tokens", None)
        .body_json();
    assert_eq!(list["tokens"].as_array().unwrap().len(), 1);
    assert_eq!(list["tokens"][0]["type"], "oauth_client");
    assert!(list["tokens"][0]["lastUsed"].is_string());
    // Access tokens expire.
    h.now_ms += 3_600_000;
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", &access, None).status,
        401
    );
    // Revoking the client revokes its access tokens and stops new ones.
    let fresh = oauth(&mut h, "acme", &token_form(&client_id, &secret), None).body_json();
    let fresh = fresh["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", &fresh, None).status,
        200
    );
    let n_access =
        h.db.query("SELECT count(*) AS n FROM credentials WHERE kind = 'access'")[0]["n"].clone();
    assert_eq!(
        n_access, 1,
        "the two expired access tokens went when the new one was issued"
    );
    assert_eq!(
        h.admin(
            Method::Delete,
            &format!("/tenants/acme/tokens/{client_id}"),
            None
        )
        .status,
        200
    );
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", &fresh, None).status,
        401
    );
    let r = oauth(&mut h, "acme", &token_form(&client_id, &secret), None);
    assert_eq!(r.status, 401);
}

#[test]
fn rate_limit_answers_429_per_tenant_with_retry_after() {
    let mut h = H::new();
    h.create_tenant("acme");
    let (_, token) = h.issue("acme", json!({}));
    h.limiter = Box::new(FixedWindow::new(3, 60));
    h.now_ms = 1_700_000_040_000; // the start of a minute
    for _ in 0..3 {
        assert_eq!(
            h.scim(Method::Get, "/scim/v2/Users", &token, None).status,
            200
        );
    }
    let r = h.scim(Method::Get, "/scim/v2/Users", &token, None);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(r.body_json()["status"], "429");
    assert_eq!(
        r.body_json()["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    let before = h.snapshot();
    let r = h.scim(
        Method::Post,
        "/scim/v2/Users",
        &token,
        Some(json!({"schemas": [USER_SCHEMA], "userName": "x"})),
    );
    assert_eq!(r.status, 429);
    assert_eq!(h.snapshot(), before, "a refused write changes nothing");
    // Another tenant has its own budget; the admin API is not limited.
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", ENV_TOKEN, None)
            .status,
        200
    );
    assert_eq!(h.admin(Method::Get, "/tenants", None).status, 200);
    // Unauthenticated requests are refused before they count.
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", "nope", None).status,
        401
    );
    h.now_ms += 60_000;
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", &token, None).status,
        200
    );
}

#[test]
fn flooding_the_token_endpoint_does_not_starve_the_tenants_scim_budget() {
    let mut h = H::new();
    h.create_tenant("acme");
    let (_, token) = h.issue("acme", json!({}));
    h.limiter = Box::new(FixedWindow::new(2, 60));
    h.now_ms = 1_700_000_040_000;
    let garbage = token_form(
        "nope",
        "scim_cs_0000000000000000000000000000000000000000000",
    );
    for _ in 0..2 {
        assert_eq!(oauth(&mut h, "acme", &garbage, None).status, 401);
    }
    let r = oauth(&mut h, "acme", &garbage, None);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(r.body_json()["error"], "temporarily_unavailable");
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", &token, None).status,
        200
    );
}

/// Quotas through the admin API: defaults on create, set and lifted per tenant, usage shown,
/// enforced for that tenant's SCIM writes only, bad values refused.
#[test]
fn admin_api_sets_per_tenant_quotas() {
    let mut h = H::new();
    let r = h.admin(Method::Post, "/tenants", Some(json!({"id": "acme"})));
    assert_eq!(
        r.body_json()["quota"],
        json!({"resources": 1_000_000, "bytes": 1_073_741_824})
    );
    let r = h.admin(
        Method::Post,
        "/tenants",
        Some(json!({"id": "small", "quota": {"resources": 1, "bytes": null}})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    assert_eq!(
        r.body_json()["quota"],
        json!({"resources": 1, "bytes": null})
    );
    let (_, acme) = h.issue("acme", json!({}));
    let (_, small) = h.issue("small", json!({}));
    h.create_user(&small, "one@small.test");
    let r = h.scim(
        Method::Post,
        "/scim/v2/Users",
        &small,
        Some(json!({"schemas": [USER_SCHEMA], "userName": "two@small.test"})),
    );
    assert_eq!(r.status, 507, "{}", text(&r));
    h.create_user(&acme, "one@acme.test");
    h.create_user(&acme, "two@acme.test");

    let got = h.admin(Method::Get, "/tenants/small", None).body_json();
    assert_eq!(got["usage"]["resources"], 1);
    assert!(got["usage"]["bytes"].as_i64().is_some_and(|b| b > 0));
    let r = h.admin(
        Method::Patch,
        "/tenants/small",
        Some(json!({"quota": {"resources": 5}})),
    );
    assert_eq!(
        r.body_json()["quota"],
        json!({"resources": 5, "bytes": null})
    );
    h.create_user(&small, "two@small.test");
    let r = h.admin(
        Method::Patch,
        "/tenants/small",
        Some(json!({"name": "Small", "quota": {"resources": null}})),
    );
    assert_eq!(
        r.body_json()["quota"],
        json!({"resources": null, "bytes": null})
    );
    assert_eq!(r.body_json()["name"], "Small");
    for bad in [
        json!({"quota": 5}),
        json!({"quota": {"resources": -1}}),
        json!({"quota": {"resources": 1.5}}),
        json!({"quota": {"rows": 1}}),
        json!({"quota": {"bytes": "1GB"}}),
    ] {
        let r = h.admin(Method::Patch, "/tenants/small", Some(bad.clone()));
        assert_eq!(r.status, 400, "{bad}");
    }
}

/// A token request as it arrives through Cloudflare: from the address in `CF-Connecting-IP`.
fn oauth_from(h: &mut H, tenant: &str, body: &str, source: &str) -> Response {
    let r = Request::new(Method::Post, &format!("/t/{tenant}/oauth/token"), ORIGIN)
        .with_header("Content-Type", "application/x-www-form-urlencoded")
        .with_header("CF-Connecting-IP", source)
        .with_body(body.to_string());
    h.send(r)
}

#[test]
fn failed_token_requests_cannot_lock_the_real_client_out() {
    let mut h = H::new();
    h.create_tenant("acme");
    let (client_id, secret) = h.issue("acme", json!({"type": "oauth_client"}));
    h.limiter = Box::new(FixedWindow::new(3, 60));
    h.now_ms = 1_700_000_040_000; // the start of a minute: no window boundary in this test
    let attacker = "203.0.113.9";
    let wrong = format!("scim_cs_{}", "A".repeat(43));
    let nobody = "0b6f1c52-9d0e-4c43-8f4f-8d1c1e2a7b10";
    // A wrong secret for the real client id, then a client id that does not exist, then
    // one that is not even a client id: each is throttled at the attacker's source.
    for (form, what) in [
        (token_form(&client_id, &wrong), "wrong secret"),
        (token_form(nobody, &wrong), "unknown client"),
        (token_form("nobody", &wrong), "malformed client id"),
    ] {
        let statuses: Vec<u16> = (0..6)
            .map(|_| oauth_from(&mut h, "acme", &form, attacker).status)
            .collect();
        assert!(
            statuses.iter().all(|s| *s == 401 || *s == 429),
            "{what}: {statuses:?}"
        );
        assert_eq!(statuses[5], 429, "{what}: the attacker is throttled");
    }
    let r = oauth_from(&mut h, "acme", &token_form(&client_id, &wrong), attacker);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(r.body_json()["error"], "temporarily_unavailable");
    // The real client, from its own address, gets its token: the failures were never charged
    // to its budget.
    let r = oauth_from(
        &mut h,
        "acme",
        &token_form(&client_id, &secret),
        "198.51.100.7",
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let access = r.body_json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        h.scim(Method::Get, "/scim/v2/Users", &access, None).status,
        200
    );
    // Behind the attacker's own address (a shared egress) too: only failures with the
    // client's own id from that address are held against it there.
    let r = oauth_from(
        &mut h,
        "acme",
        &token_form(&client_id, &secret),
        "203.0.113.9",
    );
    assert_eq!(
        r.status, 429,
        "wrong-secret attempts with its id came from here"
    );
    // The client's own budget is per client, and is charged by its own token requests only.
    for _ in 0..2 {
        let r = oauth_from(
            &mut h,
            "acme",
            &token_form(&client_id, &secret),
            "198.51.100.7",
        );
        assert_eq!(r.status, 200, "{}", text(&r));
    }
    let r = oauth_from(
        &mut h,
        "acme",
        &token_form(&client_id, &secret),
        "198.51.100.7",
    );
    assert_eq!(
        r.status, 429,
        "its fourth token this minute is over its own budget"
    );
    assert_eq!(
        h.db.query("SELECT count(*) AS n FROM credentials WHERE kind = 'access'")[0]["n"],
        3,
        "a refused request stores no access token"
    );
    h.now_ms += 60_000;
    let r = oauth_from(
        &mut h,
        "acme",
        &token_form(&client_id, &secret),
        "203.0.113.9",
    );
    assert_eq!(r.status, 200, "the next window: {}", text(&r));
}

#[test]
fn access_tokens_end_when_their_client_is_rotated_past_its_overlap() {
    let mut h = H::new();
    h.create_tenant("acme");
    let (c1, s1) = h.issue("acme", json!({"type": "oauth_client"}));
    let get_token = |h: &mut H, id: &str, secret: &str| {
        let r = oauth(h, "acme", &token_form(id, secret), None);
        assert_eq!(r.status, 200, "{}", text(&r));
        r.body_json()["access_token"].as_str().unwrap().to_string()
    };
    let users = |h: &mut H, token: &str, cache: Option<&TokenCache>| {
        let req = H::request(Method::Get, "/scim/v2/Users", token, None);
        h.send_with(cache, req).status
    };
    let a1 = get_token(&mut h, &c1, &s1);
    assert_eq!(users(&mut h, &a1, None), 200, "verified and cached");
    let r = h.admin(
        Method::Post,
        &format!("/tenants/acme/tokens/{c1}/rotate"),
        Some(json!({"overlapSeconds": 0})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let (c2, s2) = (
        r.body_json()["id"].as_str().unwrap().to_string(),
        r.body_json()["clientSecret"].as_str().unwrap().to_string(),
    );
    assert_eq!(users(&mut h, &a1, None), 401, "at once in this isolate");
    assert_eq!(users(&mut h, &a1, Some(&TokenCache::default())), 401);
    // With an overlap, the old client's access tokens work as long as the old client does.
    let a2 = get_token(&mut h, &c2, &s2);
    let r = h.admin(
        Method::Post,
        &format!("/tenants/acme/tokens/{c2}/rotate"),
        Some(json!({"overlapSeconds": 60})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let s3 = r.body_json()["clientSecret"].as_str().unwrap().to_string();
    let c3 = r.body_json()["id"].as_str().unwrap().to_string();
    let a2_late = get_token(&mut h, &c2, &s2);
    assert_eq!(users(&mut h, &a2, None), 200, "during the overlap");
    assert_eq!(users(&mut h, &a2_late, None), 200);
    let a3 = get_token(&mut h, &c3, &s3);
    h.now_ms += 60_000;
    for token in [&a2, &a2_late] {
        assert_eq!(users(&mut h, token, None), 401, "the overlap is over");
        assert_eq!(users(&mut h, token, Some(&TokenCache::default())), 401);
    }
    assert_eq!(
        users(&mut h, &a3, None),
        200,
        "the new client's tokens live on"
    );
}

#[test]
fn revoking_a_rotated_credential_revokes_its_predecessors_and_on_request_its_successors() {
    let mut h = H::new();
    h.create_tenant("acme");
    // An OAuth client rotated with a day's overlap: both secrets and their tokens work.
    let (c1, s1) = h.issue("acme", json!({"type": "oauth_client"}));
    let r = h.admin(
        Method::Post,
        &format!("/tenants/acme/tokens/{c1}/rotate"),
        Some(json!({})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let c2 = r.body_json()["id"].as_str().unwrap().to_string();
    let s2 = r.body_json()["clientSecret"].as_str().unwrap().to_string();
    let a1 = oauth(&mut h, "acme", &token_form(&c1, &s1), None).body_json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let a2 = oauth(&mut h, "acme", &token_form(&c2, &s2), None).body_json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    for a in [&a1, &a2] {
        assert_eq!(h.scim(Method::Get, "/scim/v2/Users", a, None).status, 200);
    }
    // Revoking the newest ends the predecessor still in its overlap, and every access token.
    let r = h.admin(Method::Delete, &format!("/tenants/acme/tokens/{c2}"), None);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.body_json()["status"], "revoked");
    assert_eq!(r.body_json()["alsoRevoked"], json!([c1]));
    for a in [&a1, &a2] {
        assert_eq!(h.scim(Method::Get, "/scim/v2/Users", a, None).status, 401);
    }
    assert_eq!(
        oauth(&mut h, "acme", &token_form(&c1, &s1), None).status,
        401,
        "the predecessor's secret is dead too"
    );
    let listed = h
        .admin(Method::Get, "/tenants/acme/tokens", None)
        .body_json();
    for t in listed["tokens"].as_array().unwrap() {
        assert_eq!(t["status"], "revoked", "{t}");
    }
    // Bearer chain b1 -> b2 -> b3: revoking the oldest keeps its successors (that is how a
    // leaked old secret is ended early after a rotation); `chain=true` ends them all.
    let (b1, t1) = h.issue("acme", json!({"label": "chain"}));
    let rotate = |h: &mut H, id: &str| {
        let r = h.admin(
            Method::Post,
            &format!("/tenants/acme/tokens/{id}/rotate"),
            Some(json!({"overlapSeconds": 3600})),
        );
        assert_eq!(r.status, 201, "{}", text(&r));
        let b = r.body_json();
        (
            b["id"].as_str().unwrap().to_string(),
            b["token"].as_str().unwrap().to_string(),
        )
    };
    let (b2, t2) = rotate(&mut h, &b1);
    let (_b3, t3) = rotate(&mut h, &b2);
    let r = h.admin(Method::Delete, &format!("/tenants/acme/tokens/{b1}"), None);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.body_json()["alsoRevoked"], json!([]));
    let status = |h: &mut H, t: &str| h.scim(Method::Get, "/scim/v2/Users", t, None).status;
    assert_eq!(
        (
            status(&mut h, &t1),
            status(&mut h, &t2),
            status(&mut h, &t3)
        ),
        (401, 200, 200)
    );
    let r = h.admin(
        Method::Delete,
        &format!("/tenants/acme/tokens/{b2}?chain=true"),
        None,
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.body_json()["alsoRevoked"].as_array().unwrap().len(), 2);
    assert_eq!(
        (status(&mut h, &t2), status(&mut h, &t3)),
        (401, 401),
        "the successor went with it"
    );
    let r = h.admin(
        Method::Delete,
        &format!("/tenants/acme/tokens/{b2}?chain=maybe"),
        None,
    );
    assert_eq!(r.status, 400, "{}", text(&r));
}

const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

fn custom_schema() -> Value {
    json!({
        "resourceType": "User",
        "schema": {
            "id": CUSTOM,
            "name": "CustomExtension",
            "attributes": [
                {"name": "CustomAttribute", "type": "string"},
                {"name": "badge", "type": "integer"},
                {"name": "hired", "type": "dateTime"},
                {"name": "secret", "type": "string", "returned": "never"}
            ]
        }
    })
}

fn custom_user(user_name: &str, badge: Value) -> Value {
    json!({
        "schemas": [USER_SCHEMA, CUSTOM],
        "userName": user_name,
        CUSTOM: {"CustomAttribute": "blue", "badge": badge, "secret": "s3cret"}
    })
}

#[test]
fn declared_extensions_are_validated_served_filtered_and_per_tenant() {
    let mut h = H::new();
    h.create_tenant("a");
    h.create_tenant("b");
    let (_, ta) = h.issue("a", json!({}));
    let (_, tb) = h.issue("b", json!({}));
    // Tenant b kept a user's custom extension verbatim before anything was declared.
    let r = h.scim(
        Method::Post,
        "/scim/v2/Users",
        &tb,
        Some(custom_user("kept", json!("seven"))),
    );
    assert_eq!(r.status, 201, "{}", text(&r));

    let path = format!("/tenants/a/schemas/{CUSTOM}");
    let r = h.admin(Method::Put, &path, Some(custom_schema()));
    assert_eq!(r.status, 201, "{}", text(&r));
    let decl = r.body_json();
    assert_eq!(decl["stored"]["checked"], 0);
    assert_eq!(decl["schema"]["attributes"][1]["mutability"], "readWrite");
    assert_eq!(
        h.admin(Method::Put, &path, Some(custom_schema())).status,
        200
    );

    // Served for tenant a only.
    let schemas = h
        .scim(Method::Get, "/scim/v2/Schemas", &ta, None)
        .body_json();
    assert!(schemas.to_string().contains(CUSTOM));
    let r = h.scim(
        Method::Get,
        &format!("/scim/v2/Schemas/{CUSTOM}"),
        &ta,
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body_json()["attributes"][1]["type"], "integer");
    let rt = h
        .scim(Method::Get, "/scim/v2/ResourceTypes/User", &ta, None)
        .body_json();
    assert_eq!(rt["schemaExtensions"][1]["schema"], CUSTOM);
    assert!(!h
        .scim(Method::Get, "/scim/v2/Schemas", &tb, None)
        .body_json()
        .to_string()
        .contains(CUSTOM));
    assert_eq!(
        h.scim(
            Method::Get,
            &format!("/scim/v2/Schemas/{CUSTOM}"),
            &tb,
            None
        )
        .status,
        404
    );

    // Validated with its types in a; b keeps whatever is sent.
    let r = h.scim(
        Method::Post,
        "/scim/v2/Users",
        &ta,
        Some(custom_user("bad", json!("seven"))),
    );
    assert_eq!(r.status, 400, "{}", text(&r));
    assert_eq!(r.body_json()["scimType"], "invalidValue");
    assert!(text(&r).contains("badge"));
    let r = h.scim(
        Method::Post,
        "/scim/v2/Users",
        &ta,
        Some(custom_user("good", json!(7))),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let created = r.body_json();
    assert_eq!(created[CUSTOM]["badge"], 7);
    assert!(created[CUSTOM].get("secret").is_none(), "returned: never");
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(
        h.scim(
            Method::Post,
            "/scim/v2/Users",
            &tb,
            Some(custom_user("kept2", json!("x")))
        )
        .status,
        201
    );

    // Filtered with its type: badge is an integer, so `gt` compares numbers.
    let q = format!("/scim/v2/Users?filter={CUSTOM}:badge%20gt%205");
    let list = h.scim(Method::Get, &q, &ta, None).body_json();
    assert_eq!(list["totalResults"], 1, "{list}");
    let q = format!("/scim/v2/Users?filter={CUSTOM}:badge%20gt%20%22x%22");
    assert_eq!(
        h.scim(Method::Get, &q, &ta, None).body_json()["scimType"],
        "invalidFilter"
    );

    // PATCHed by URN path, validated.
    let patch = |path: &str, value: Value| json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": path, "value": value}]});
    let r = h.scim(
        Method::Patch,
        &format!("/scim/v2/Users/{id}"),
        &ta,
        Some(patch(&format!("{CUSTOM}:CustomAttribute"), json!("green"))),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.body_json()[CUSTOM]["CustomAttribute"], "green");
    let r = h.scim(
        Method::Patch,
        &format!("/scim/v2/Users/{id}"),
        &ta,
        Some(patch(&format!("{CUSTOM}:hired"), json!("yesterday"))),
    );
    assert_eq!(r.status, 400, "{}", text(&r));

    // Declaring over b's verbatim data reports what does not fit, and changes nothing.
    let r = h.admin(
        Method::Put,
        &format!("/tenants/b/schemas/{CUSTOM}"),
        Some(custom_schema()),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let stored = &r.body_json()["stored"];
    assert_eq!(stored["checked"], 2, "{stored}");
    assert_eq!(stored["conflicting"], 2, "{stored}");
    assert_eq!(stored["complete"], true);
    let kept = h.scim(
        Method::Get,
        "/scim/v2/Users?filter=userName%20eq%20%22kept%22",
        &tb,
        None,
    );
    assert_eq!(
        kept.body_json()["Resources"][0][CUSTOM]["badge"],
        "seven",
        "nothing lost"
    );

    // Undeclared again after DELETE; the data stays.
    assert_eq!(
        h.admin(
            Method::Delete,
            &format!("/tenants/b/schemas/{CUSTOM}"),
            None
        )
        .status,
        204
    );
    assert_eq!(
        h.admin(
            Method::Delete,
            &format!("/tenants/b/schemas/{CUSTOM}"),
            None
        )
        .status,
        404
    );
    let r = h.scim(
        Method::Post,
        "/scim/v2/Users",
        &tb,
        Some(custom_user("kept3", json!("x"))),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
}

#[test]
fn a_tenant_can_refuse_undeclared_extensions() {
    let mut h = H::new();
    h.create_tenant("r");
    let (_, t) = h.issue("r", json!({}));
    let r = h.admin(
        Method::Patch,
        "/tenants/r",
        Some(json!({"extensions": "reject"})),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.body_json()["extensions"], "reject");
    assert_eq!(
        h.admin(
            Method::Patch,
            "/tenants/r",
            Some(json!({"extensions": "drop"}))
        )
        .status,
        400
    );
    let r = h.scim(
        Method::Post,
        "/scim/v2/Users",
        &t,
        Some(custom_user("u", json!(1))),
    );
    assert_eq!(r.status, 400, "{}", text(&r));
    assert_eq!(r.body_json()["scimType"], "invalidSyntax");
    assert!(text(&r).contains(CUSTOM), "the URN is named: {}", text(&r));
    // Declared, the same body is accepted.
    let path = format!("/tenants/r/schemas/{CUSTOM}");
    assert_eq!(
        h.admin(Method::Put, &path, Some(custom_schema())).status,
        201
    );
    let r = h.scim(
        Method::Post,
        "/scim/v2/Users",
        &t,
        Some(custom_user("u", json!(1))),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let id = r.body_json()["id"].as_str().expect("id").to_string();
    // PATCH into another undeclared extension is refused too.
    let other = "urn:example:other:2.0:User:x";
    let body =
        json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": other, "value": "v"}]});
    let r = h.scim(
        Method::Patch,
        &format!("/scim/v2/Users/{id}"),
        &t,
        Some(body),
    );
    assert_eq!(r.status, 400, "{}", text(&r));
}

#[test]
fn bad_declarations_are_refused_and_store_nothing() {
    let mut h = H::new();
    h.create_tenant("d");
    let path = format!("/tenants/d/schemas/{CUSTOM}");
    let mut wrong_id = custom_schema();
    wrong_id["schema"]["id"] = json!("urn:example:elsewhere");
    for body in [
        json!({"resourceType": "Device", "schema": custom_schema()["schema"]}),
        json!({"schema": custom_schema()["schema"]}),
        json!({"resourceType": "User"}),
        json!({"resourceType": "User", "schema": {"id": CUSTOM, "attributes": [{"name": "x", "type": "str"}]}}),
        json!({"resourceType": "User", "schema": custom_schema()["schema"], "extra": 1}),
        wrong_id,
    ] {
        let r = h.admin(Method::Put, &path, Some(body.clone()));
        assert_eq!(r.status, 400, "{body}: {}", text(&r));
    }
    let r = h.admin(
        Method::Put,
        "/tenants/nope/schemas/urn:x:y",
        Some(json!({"resourceType": "User", "schema": {"id": "urn:x:y", "attributes": [{"name": "a", "type": "string"}]}})),
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        h.admin(Method::Get, "/tenants/d/schemas", None).body_json()["schemas"],
        json!([])
    );
    // One inside another's namespace is refused.
    assert_eq!(
        h.admin(Method::Put, &path, Some(custom_schema())).status,
        201
    );
    let inner = format!("{CUSTOM}:Sub");
    let r = h.admin(
        Method::Put,
        &format!("/tenants/d/schemas/{inner}"),
        Some(json!({"resourceType": "User", "schema": {"id": inner, "attributes": [{"name": "a", "type": "string"}]}})),
    );
    assert_eq!(r.status, 409, "{}", text(&r));
}

#[test]
fn declared_unique_attributes_are_unique_per_tenant_case_insensitively() {
    let mut h = H::new();
    h.create_tenant("u");
    h.create_tenant("v");
    let (_, t) = h.issue("u", json!({}));
    let (_, tv) = h.issue("v", json!({}));
    let user = |name: &str, code: &str| json!({"schemas": [USER_SCHEMA, CUSTOM], "userName": name, CUSTOM: {"employeeCode": code}});
    // Two users kept the same code before the declaration.
    for name in ["early1", "early2"] {
        let r = h.scim(Method::Post, "/scim/v2/Users", &t, Some(user(name, "DUP")));
        assert_eq!(r.status, 201, "{}", text(&r));
    }
    let mut decl = custom_schema();
    decl["schema"]["attributes"] =
        json!([{"name": "employeeCode", "type": "string", "uniqueness": "server"}]);
    let path = format!("/tenants/u/schemas/{CUSTOM}");
    let r = h.admin(Method::Put, &path, Some(decl.clone()));
    assert_eq!(r.status, 201, "{}", text(&r));
    assert_eq!(
        r.body_json()["stored"]["duplicateValues"],
        1,
        "{}",
        text(&r)
    );

    let r = h.scim(Method::Post, "/scim/v2/Users", &t, Some(user("a", "E1")));
    assert_eq!(r.status, 201, "{}", text(&r));
    let a = r.body_json()["id"].as_str().expect("id").to_string();
    let r = h.scim(Method::Post, "/scim/v2/Users", &t, Some(user("b", "e1")));
    assert_eq!(r.status, 409, "{}", text(&r));
    assert_eq!(r.body_json()["scimType"], "uniqueness");
    let r = h.scim(Method::Post, "/scim/v2/Users", &t, Some(user("b", "E2")));
    assert_eq!(r.status, 201, "{}", text(&r));
    let b = r.body_json()["id"].as_str().expect("id").to_string();
    // A PATCH into a taken value fails and changes nothing; freeing it lets another take it.
    let set = |code: &str| json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": format!("{CUSTOM}:employeeCode"), "value": code}]});
    let r = h.scim(
        Method::Patch,
        &format!("/scim/v2/Users/{b}"),
        &t,
        Some(set("E1")),
    );
    assert_eq!(r.status, 409, "{}", text(&r));
    let r = h.scim(
        Method::Patch,
        &format!("/scim/v2/Users/{a}"),
        &t,
        Some(set("E3")),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let r = h.scim(
        Method::Patch,
        &format!("/scim/v2/Users/{b}"),
        &t,
        Some(set("E1")),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(
        h.scim(Method::Delete, &format!("/scim/v2/Users/{b}"), &t, None)
            .status,
        204
    );
    let r = h.scim(Method::Post, "/scim/v2/Users", &t, Some(user("c", "E1")));
    assert_eq!(r.status, 201, "deleting frees the value: {}", text(&r));
    // Per tenant: v declares the same schema and may use the same value.
    let r = h.admin(
        Method::Put,
        &format!("/tenants/v/schemas/{CUSTOM}"),
        Some(decl),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let r = h.scim(Method::Post, "/scim/v2/Users", &tv, Some(user("a", "E1")));
    assert_eq!(r.status, 201, "{}", text(&r));
    // Without the declaration, the values are free again.
    assert_eq!(h.admin(Method::Delete, &path, None).status, 204);
    let r = h.scim(Method::Post, "/scim/v2/Users", &t, Some(user("d", "E3")));
    assert_eq!(r.status, 201, "{}", text(&r));
}

#[test]
fn declaring_reports_kept_values_that_fit_but_are_not_in_stored_form() {
    let mut h = H::new();
    h.create_tenant("n");
    let (_, t) = h.issue("n", json!({}));
    let body = |name: &str, hired: &str| json!({"schemas": [USER_SCHEMA, CUSTOM], "userName": name, CUSTOM: {"hired": hired}});
    let r = h.scim(
        Method::Post,
        "/scim/v2/Users",
        &t,
        Some(body("offset", "2026-01-05T10:00:00+01:00")),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let r = h.scim(
        Method::Post,
        "/scim/v2/Users",
        &t,
        Some(body("utc", "2026-01-05T09:00:00.000Z")),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let r = h.admin(
        Method::Put,
        &format!("/tenants/n/schemas/{CUSTOM}"),
        Some(custom_schema()),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let stored = &r.body_json()["stored"];
    assert_eq!(stored["checked"], 2, "{stored}");
    assert_eq!(stored["conflicting"], 1, "only the offset form: {stored}");
    assert!(stored["conflicts"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("another form"));
}

#[test]
fn bulk_operations_act_for_the_tokens_tenant_only() {
    let mut h = H::new();
    h.create_tenant("a");
    h.create_tenant("b");
    let (cred_a, ta) = h.issue("a", json!({}));
    let (_, tb) = h.issue("b", json!({}));
    let bu = h.create_user(&tb, "bob@b.test");
    let before = h.snapshot();
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "PUT", "path": format!("/Users/{bu}"), "data": {"schemas": [USER_SCHEMA], "userName": "x"}},
        {"method": "PATCH", "path": format!("/Users/{bu}"), "data": {"schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "active", "value": false}]}},
        {"method": "DELETE", "path": format!("/Users/{bu}")},
    ]});
    let r = h.scim(Method::Post, "/t/b/scim/v2/Bulk", &ta, Some(bulk.clone()));
    assert_eq!(r.status, 401, "{}", text(&r));
    let r = h.scim(Method::Post, "/t/a/scim/v2/Bulk", &ta, Some(bulk));
    assert_eq!(r.status, 200, "{}", text(&r));
    let statuses: Vec<Value> = r.body_json()["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("404"), json!("404"), json!("404")]);
    assert_eq!(h.snapshot(), before, "nothing of tenant b changed");
    let create = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "n", "data": {"schemas": [USER_SCHEMA], "userName": "bob@b.test"}},
    ]});
    let r = h.scim(Method::Post, "/scim/v2/Bulk", &ta, Some(create));
    assert_eq!(
        r.body_json()["Operations"][0]["status"],
        "201",
        "{}",
        text(&r)
    );
    let rows = h.db.query(
        "SELECT tenant, credential FROM events WHERE op = 'create' AND outcome = 'success' AND tenant = 'a'",
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["credential"], cred_a.as_str());
}
