//! The IT admin's way in, through the full request path natively: setup links and their
//! sessions, the authorization code grant with PKCE and rotating refresh tokens, every
//! RFC 6749 §4.1.2.1 / §5.2 error, the cross-tenant guarantees, and the vendor hand-off.
//! `tests/e2e/oauth_code.test.mjs` and `setup_link.test.mjs` run the same in workerd.

use crate::service::http::{Method, Request, Response};
use crate::testing::Server;
use serde_json::{json, Value};

const ADMIN: &str = "admin-onboarding-test-0123456789";
const ORIGIN: &str = "https://scim.test";
const ENTRA: &str = "https://portal.azure.com/TokenAuthorize";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn admin(h: &mut Server, m: Method, path: &str, body: Option<Value>) -> Response {
    h.call(m, &format!("/admin/api{path}"), ADMIN, body)
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// A query parameter of a `Location`.
fn loc_param(r: &Response, name: &str) -> Option<String> {
    let loc = r.header("location")?;
    let q = loc.split_once('?')?.1;
    crate::service::http::parse_query(q)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Tenants `acme` and `globex`, and an OAuth app with Entra's defaults: (client id, secret).
fn setup() -> (Server, String, String) {
    let mut h = Server::new(&[], Some(ADMIN));
    for t in ["acme", "globex"] {
        let r = admin(
            &mut h,
            Method::Post,
            "/tenants",
            Some(json!({"id": t, "name": format!("{t} Corp")})),
        );
        assert_eq!(r.status, 201);
    }
    let r = admin(
        &mut h,
        Method::Post,
        "/oauth-apps",
        Some(json!({"name": "Contoso <HR>"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let app = r.body_json();
    assert_eq!(app["redirectUris"], json!([ENTRA]));
    assert_eq!(app["authorizationUrl"], format!("{ORIGIN}/oauth/authorize"));
    assert_eq!(app["tokenUrl"], format!("{ORIGIN}/oauth/token"));
    let id = app["clientId"].as_str().unwrap().to_string();
    let secret = app["clientSecret"].as_str().unwrap().to_string();
    (h, id, secret)
}

/// Creates and opens a setup link of `tenant`: the session cookie (`name=value`).
fn session(h: &mut Server, tenant: &str) -> String {
    let r = admin(
        h,
        Method::Post,
        &format!("/tenants/{tenant}/setup-links"),
        Some(json!({"label": "IT"})),
    );
    assert_eq!(r.status, 201, "{}", text(&r));
    let url = r.body_json()["url"].as_str().unwrap().to_string();
    let path = url.strip_prefix(ORIGIN).unwrap().to_string();
    let get = h.send(Request::new(Method::Get, &path, ORIGIN));
    assert_eq!(get.status, 200);
    assert!(
        get.header("set-cookie").is_none(),
        "a GET does not spend the link"
    );
    let post = h.send(Request::new(Method::Post, &path, ORIGIN).with_header("origin", ORIGIN));
    assert_eq!(post.status, 303, "{}", text(&post));
    assert_eq!(post.header("location"), Some("/setup"));
    let cookie = post.header("set-cookie").unwrap();
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(cookie.starts_with("__Host-scim-setup="));
    cookie.split(';').next().unwrap().to_string()
}

fn csrf(h: &mut Server, cookie: &str) -> String {
    let r = h.send(
        Request::new(Method::Get, "/setup/api/session", ORIGIN).with_header("cookie", cookie),
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    r.body_json()["csrf"].as_str().unwrap().to_string()
}

fn authorize_query(client: &str, extra: &str) -> String {
    format!(
        "/oauth/authorize?response_type=code&client_id={client}&redirect_uri={}&state=st%20%26x{extra}",
        crate::service::http::form_encode(ENTRA)
    )
}

/// Approves on the consent page: the code.
fn approve(h: &mut Server, cookie: &str, client: &str) -> String {
    let q = authorize_query(
        client,
        &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"),
    );
    let page = h.send(Request::new(Method::Get, &q, ORIGIN).with_header("cookie", cookie));
    assert_eq!(page.status, 200, "{}", text(&page));
    let token = csrf(h, cookie);
    let form = format!(
        "{}&csrf={token}&decision=approve",
        q.split_once('?').unwrap().1
    );
    let r = h.send(
        Request::new(Method::Post, "/oauth/authorize", ORIGIN)
            .with_header("cookie", cookie)
            .with_header("origin", ORIGIN)
            .with_header("content-type", "application/x-www-form-urlencoded")
            .with_body(form),
    );
    assert_eq!(r.status, 303, "{}", text(&r));
    assert!(r
        .header("location")
        .unwrap()
        .starts_with(&format!("{ENTRA}?code=")));
    assert_eq!(
        loc_param(&r, "state").as_deref(),
        Some("st &x"),
        "state untouched"
    );
    loc_param(&r, "code").unwrap()
}

fn token_at(h: &mut Server, path: &str, client: &str, secret: &str, form: &str) -> Response {
    h.send(
        Request::new(Method::Post, path, ORIGIN)
            .with_header("content-type", "application/x-www-form-urlencoded")
            .with_body(format!("{form}&client_id={client}&client_secret={secret}")),
    )
}

fn exchange(h: &mut Server, client: &str, secret: &str, code: &str) -> Response {
    let form = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
        crate::service::http::form_encode(ENTRA)
    );
    token_at(h, "/oauth/token", client, secret, &form)
}

fn refresh(h: &mut Server, client: &str, secret: &str, rt: &str) -> Response {
    token_at(
        h,
        "/oauth/token",
        client,
        secret,
        &format!("grant_type=refresh_token&refresh_token={rt}"),
    )
}

fn oauth_error(r: &Response) -> (u16, String) {
    (
        r.status,
        r.body_json()["error"].as_str().unwrap_or("").to_string(),
    )
}

fn scim(h: &mut Server, tenant: &str, token: &str) -> u16 {
    h.call(
        Method::Get,
        &format!("/t/{tenant}/scim/v2/Users"),
        token,
        None,
    )
    .status
}

#[test]
fn the_whole_authorize_flow_with_rotating_refresh_tokens() {
    let (mut h, client, secret) = setup();
    let cookie = session(&mut h, "acme");
    let code = approve(&mut h, &cookie, &client);
    let r = exchange(&mut h, &client, &secret, &code);
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let t = r.body_json();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    let access = t["access_token"].as_str().unwrap().to_string();
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(scim(&mut h, "acme", &access), 200);
    assert_eq!(
        scim(&mut h, "globex", &access),
        401,
        "the approver's tenant only"
    );
    // A write with it is logged with its grant.
    let w = h.call(
        Method::Post,
        "/t/acme/scim/v2/Users",
        &access,
        Some(json!({"schemas": [crate::proto::schema::USER_SCHEMA], "userName": "a@acme.test"})),
    );
    assert_eq!(w.status, 201);
    let log = admin(&mut h, Method::Get, "/tenants/acme/events", None).body_json();
    assert_eq!(log["events"][0]["grant"], "authorization_code", "{log}");
    // Refresh rotates: new tokens work, the old refresh token is refused.
    let r2 = refresh(&mut h, &client, &secret, &rt);
    assert_eq!(r2.status, 200, "{}", text(&r2));
    let access2 = r2.body_json()["access_token"].as_str().unwrap().to_string();
    let rt2 = r2.body_json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rt2, rt);
    assert_eq!(scim(&mut h, "acme", &access2), 200);
    let reuse = refresh(&mut h, &client, &secret, &rt);
    assert_eq!(oauth_error(&reuse), (400, "invalid_grant".into()));
    // Reuse revoked the whole grant: the newest tokens are dead too.
    assert_eq!(scim(&mut h, "acme", &access2), 401);
    assert_eq!(scim(&mut h, "acme", &access), 401);
    assert_eq!(
        oauth_error(&refresh(&mut h, &client, &secret, &rt2)).1,
        "invalid_grant"
    );
    // Only hashes are stored.
    let rows = h.db.query("SELECT * FROM oauth_refresh_tokens");
    assert_eq!(rows.len(), 2);
    let dump = format!("{:?}{:?}", rows, h.db.query("SELECT * FROM oauth_codes"));
    assert!(!dump.contains(&rt) && !dump.contains(&rt2) && !dump.contains(&code));
}

#[test]
fn a_code_is_single_use_and_its_reuse_revokes_the_tokens() {
    let (mut h, client, secret) = setup();
    let cookie = session(&mut h, "acme");
    let code = approve(&mut h, &cookie, &client);
    let first = exchange(&mut h, &client, &secret, &code);
    assert_eq!(first.status, 200);
    let access = first.body_json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let rt = first.body_json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let again = exchange(&mut h, &client, &secret, &code);
    assert_eq!(oauth_error(&again), (400, "invalid_grant".into()));
    assert_eq!(
        scim(&mut h, "acme", &access),
        401,
        "RFC 6749 §4.1.2: tokens of a reused code are revoked"
    );
    assert_eq!(
        oauth_error(&refresh(&mut h, &client, &secret, &rt)).1,
        "invalid_grant"
    );
}

#[test]
fn an_approval_for_one_tenant_never_yields_a_token_for_another() {
    let (mut h, client, secret) = setup();
    let acme = session(&mut h, "acme");
    let code = approve(&mut h, &acme, &client);
    // At globex's token endpoint the code is refused, and stays usable where it belongs.
    let form = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
        crate::service::http::form_encode(ENTRA)
    );
    let r = token_at(&mut h, "/t/globex/oauth/token", &client, &secret, &form);
    assert_eq!(oauth_error(&r), (400, "invalid_grant".into()));
    let r = token_at(&mut h, "/t/acme/oauth/token", &client, &secret, &form);
    assert_eq!(r.status, 200, "{}", text(&r));
    let access = r.body_json()["access_token"].as_str().unwrap().to_string();
    let rt = r.body_json()["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(scim(&mut h, "globex", &access), 401);
    let stored =
        h.db.query("SELECT tenant FROM credentials WHERE kind = 'access'");
    assert_eq!(
        stored,
        vec![json!({"tenant": "acme"}).as_object().unwrap().clone()]
    );
    let r = token_at(
        &mut h,
        "/t/globex/oauth/token",
        &client,
        &secret,
        &format!("grant_type=refresh_token&refresh_token={rt}"),
    );
    assert_eq!(oauth_error(&r).1, "invalid_grant");
    // A tenant named by the client is ignored: the session decides.
    let q = format!("{}&tenant=globex", authorize_query(&client, ""));
    let page = h.send(Request::new(Method::Get, &q, ORIGIN).with_header("cookie", &acme));
    assert!(text(&page).contains("acme Corp") && !text(&page).contains("globex"));
}

#[test]
fn authorization_errors_redirect_only_to_registered_uris() {
    let (mut h, client, _) = setup();
    let cookie = session(&mut h, "acme");
    let get = |h: &mut Server, q: &str| {
        h.send(Request::new(Method::Get, q, ORIGIN).with_header("cookie", &cookie))
    };
    let two = admin(
        &mut h,
        Method::Post,
        "/oauth-apps",
        Some(json!({"name": "Two URIs", "redirectUris": [ENTRA, "https://app.example/cb"]})),
    );
    assert_eq!(two.status, 201, "{}", text(&two));
    let two = two.body_json()["clientId"].as_str().unwrap().to_string();
    // With one registered redirect URI, the request may leave it out (RFC 6749 §3.1.2.3).
    let one = get(
        &mut h,
        &format!("/oauth/authorize?response_type=code&client_id={client}"),
    );
    assert_eq!(one.status, 200, "{}", text(&one));
    // Unknown client, unregistered or missing (two registered) redirect URI: a page, no redirect.
    for q in [
        "/oauth/authorize?response_type=code&client_id=0b6f1c52-9d0e-4c43-8f4f-8d1c1e2a7b10&redirect_uri=https%3A%2F%2Fportal.azure.com%2FTokenAuthorize".to_string(),
        format!("/oauth/authorize?response_type=code&client_id={client}&redirect_uri=https%3A%2F%2Fevil.test%2Fcb"),
        format!("/oauth/authorize?response_type=code&client_id={client}&redirect_uri=https%3A%2F%2Fportal.azure.com%2FTokenAuthorize%2F"),
        format!("/oauth/authorize?response_type=code&client_id={two}"),
        "/oauth/authorize?response_type=code".to_string(),
    ] {
        let r = get(&mut h, &q);
        assert_eq!(r.status, 400, "{q}");
        assert!(r.header("location").is_none(), "{q}");
        assert!(r.header("content-security-policy").unwrap().contains("frame-ancestors 'none'"));
    }
    // Everything else: a redirect with the error and the state.
    for (extra, error) in [
        ("&response_type=token", "invalid_request"), // repeated
        ("&code_challenge=short", "invalid_request"),
        (
            &*format!("&code_challenge={CHALLENGE}&code_challenge_method=S512"),
            "invalid_request",
        ),
        ("&code_challenge_method=S256", "invalid_request"),
    ] {
        let r = get(&mut h, &authorize_query(&client, extra));
        assert_eq!(r.status, 302, "{extra}");
        assert!(r.header("location").unwrap().starts_with(ENTRA));
        assert_eq!(loc_param(&r, "error").as_deref(), Some(error), "{extra}");
        assert_eq!(loc_param(&r, "state").as_deref(), Some("st &x"));
    }
    let q = authorize_query(&client, "").replace("response_type=code", "response_type=token");
    let r = get(&mut h, &q);
    assert_eq!(
        loc_param(&r, "error").as_deref(),
        Some("unsupported_response_type")
    );
    let q = authorize_query(&client, "").replace("response_type=code&", "");
    assert_eq!(
        loc_param(&get(&mut h, &q), "error").as_deref(),
        Some("invalid_request")
    );
}

#[test]
fn the_consent_post_needs_the_session_its_csrf_token_and_this_origin() {
    let (mut h, client, _) = setup();
    let cookie = session(&mut h, "acme");
    let token = csrf(&mut h, &cookie);
    let q = authorize_query(&client, "");
    let form = |extra: &str| format!("{}{extra}", q.split_once('?').unwrap().1);
    let post = |h: &mut Server, body: String, cookie: Option<&str>, origin: &str| {
        let mut r = Request::new(Method::Post, "/oauth/authorize", ORIGIN)
            .with_header("origin", origin)
            .with_header("content-type", "application/x-www-form-urlencoded")
            .with_body(body);
        if let Some(c) = cookie {
            r = r.with_header("cookie", c);
        }
        h.send(r)
    };
    let r = post(&mut h, form("&decision=approve"), Some(&cookie), ORIGIN);
    assert_eq!(r.status, 403, "no CSRF token");
    assert!(r.header("location").is_none());
    let r = post(
        &mut h,
        form("&decision=approve&csrf=AAAA"),
        Some(&cookie),
        ORIGIN,
    );
    assert_eq!(r.status, 403, "a wrong CSRF token");
    let r = post(
        &mut h,
        form(&format!("&decision=approve&csrf={token}")),
        Some(&cookie),
        "https://evil.test",
    );
    assert_eq!(r.status, 403, "another origin");
    let r = post(
        &mut h,
        form(&format!("&decision=approve&csrf={token}")),
        None,
        ORIGIN,
    );
    assert_eq!(
        r.status, 403,
        "no session: the page saying how to get a setup link"
    );
    assert!(text(&r).contains("setup link"));
    let r = post(
        &mut h,
        form(&format!("&decision=deny&csrf={token}")),
        Some(&cookie),
        ORIGIN,
    );
    assert_eq!(r.status, 303);
    assert_eq!(loc_param(&r, "error").as_deref(), Some("access_denied"));
    assert_eq!(loc_param(&r, "state").as_deref(), Some("st &x"));
    assert_eq!(h.db.query("SELECT * FROM oauth_codes").len(), 0);
}

#[test]
fn without_an_approver_the_endpoint_explains_and_never_guesses() {
    let (mut h, client, _) = setup();
    let r = h.send(Request::new(
        Method::Get,
        &authorize_query(&client, ""),
        ORIGIN,
    ));
    assert_eq!(r.status, 403);
    let body = text(&r);
    assert!(
        body.contains("setup link") && !body.contains("<form"),
        "{body}"
    );
    assert!(r.header("location").is_none());
}

#[test]
fn the_consent_page_shows_server_values_as_text_under_a_strict_policy() {
    let (mut h, client, _) = setup();
    let cookie = session(&mut h, "acme");
    let q = authorize_query(&client, "").replace(
        "state=st%20%26x",
        "state=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    );
    let r = h.send(Request::new(Method::Get, &q, ORIGIN).with_header("cookie", &cookie));
    assert_eq!(r.status, 200);
    let body = text(&r);
    assert!(!body.contains("<script"), "{body}");
    assert!(body.contains("&quot;&gt;&lt;script&gt;"));
    assert!(body.contains("Contoso &lt;HR&gt;"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains(&format!("form-action 'self' {ENTRA};")),
        "{csp}"
    );
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

#[test]
fn token_endpoint_errors_follow_rfc_6749_section_5_2() {
    let (mut h, client, secret) = setup();
    let cookie = session(&mut h, "acme");
    let other = admin(
        &mut h,
        Method::Post,
        "/oauth-apps",
        Some(json!({"name": "Other"})),
    )
    .body_json();
    let (other_id, other_secret) = (
        other["clientId"].as_str().unwrap().to_string(),
        other["clientSecret"].as_str().unwrap().to_string(),
    );
    let code = approve(&mut h, &cookie, &client);
    let enc = crate::service::http::form_encode(ENTRA);
    let cases = [
        (client.clone(), "scim_as_wrongwrongwrongwrongwrongwrongwrongwrongwrong".to_string(), format!("grant_type=authorization_code&code={code}&redirect_uri={enc}&code_verifier={VERIFIER}"), 401, "invalid_client"),
        (other_id, other_secret, format!("grant_type=authorization_code&code={code}&redirect_uri={enc}&code_verifier={VERIFIER}"), 400, "invalid_grant"),
        (client.clone(), secret.clone(), format!("grant_type=authorization_code&code={code}&redirect_uri={enc}"), 400, "invalid_grant"),
        (client.clone(), secret.clone(), format!("grant_type=authorization_code&code={code}&redirect_uri={enc}&code_verifier={}", "a".repeat(43)), 400, "invalid_grant"),
        (client.clone(), secret.clone(), format!("grant_type=authorization_code&code={code}&code_verifier={VERIFIER}"), 400, "invalid_grant"),
        (client.clone(), secret.clone(), format!("grant_type=authorization_code&code=scim_ac_{}&redirect_uri={enc}", "x".repeat(43)), 400, "invalid_grant"),
        (client.clone(), secret.clone(), "grant_type=authorization_code".to_string(), 400, "invalid_request"),
        (client.clone(), secret.clone(), "grant_type=refresh_token".to_string(), 400, "invalid_request"),
        (client.clone(), secret.clone(), "grant_type=password".to_string(), 400, "unsupported_grant_type"),
        (client.clone(), secret.clone(), "grant_type=client_credentials".to_string(), 400, "unsupported_grant_type"),
    ];
    for (id, s, form, status, error) in cases {
        let r = token_at(&mut h, "/oauth/token", &id, &s, &form);
        assert_eq!(
            oauth_error(&r),
            (status, error.to_string()),
            "{form}: {}",
            text(&r)
        );
    }
    // None of those spent the code; it expires after five minutes.
    h.now_ms += 301_000;
    let r = exchange(&mut h, &client, &secret, &code);
    assert_eq!(oauth_error(&r), (400, "invalid_grant".into()));
}

#[test]
fn revoking_the_app_ends_its_tokens() {
    let (mut h, client, secret) = setup();
    let cookie = session(&mut h, "acme");
    let code = approve(&mut h, &cookie, &client);
    let t = exchange(&mut h, &client, &secret, &code).body_json();
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(scim(&mut h, "acme", access), 200);
    let r = admin(
        &mut h,
        Method::Delete,
        &format!("/oauth-apps/{client}"),
        None,
    );
    assert_eq!(r.body_json()["status"], "revoked");
    assert_eq!(scim(&mut h, "acme", access), 401);
    let r = refresh(
        &mut h,
        &client,
        &secret,
        t["refresh_token"].as_str().unwrap(),
    );
    assert_eq!(oauth_error(&r), (401, "invalid_client".into()));
    let r = h.send(
        Request::new(Method::Get, &authorize_query(&client, ""), ORIGIN)
            .with_header("cookie", &cookie),
    );
    assert_eq!(r.status, 400, "a revoked client gets a page");
}

#[test]
fn redirect_uris_are_validated_and_replaced_exactly() {
    let (mut h, client, _) = setup();
    for bad in [
        json!(["http://evil.test/cb"]),
        json!(["https://a.test/cb#x"]),
        json!(["https://a.test/c b"]),
        json!([]),
        json!("https://a.test"),
    ] {
        let r = admin(
            &mut h,
            Method::Patch,
            &format!("/oauth-apps/{client}"),
            Some(json!({"redirectUris": bad})),
        );
        assert_eq!(r.status, 400, "{bad}");
    }
    let r = admin(
        &mut h,
        Method::Patch,
        &format!("/oauth-apps/{client}"),
        Some(json!({"redirectUris": ["http://127.0.0.1:9/cb"]})),
    );
    assert_eq!(
        r.body_json()["redirectUris"],
        json!(["http://127.0.0.1:9/cb"])
    );
    let cookie = session(&mut h, "acme");
    // Entra's URI is no longer registered: a page, not a redirect; with the only one, implicit.
    let r = h.send(
        Request::new(Method::Get, &authorize_query(&client, ""), ORIGIN)
            .with_header("cookie", &cookie),
    );
    assert_eq!(r.status, 400);
    let q = format!("/oauth/authorize?response_type=code&client_id={client}");
    let r = h.send(Request::new(Method::Get, &q, ORIGIN).with_header("cookie", &cookie));
    assert_eq!(r.status, 200);
    assert!(text(&r).contains("http://127.0.0.1:9/cb"));
}

#[test]
fn a_setup_link_opens_once_expires_and_can_be_revoked() {
    let mut h = Server::new(&[], Some(ADMIN));
    admin(
        &mut h,
        Method::Post,
        "/tenants",
        Some(json!({"id": "acme"})),
    );
    let create = |h: &mut Server, body: Value| {
        let r = admin(h, Method::Post, "/tenants/acme/setup-links", Some(body));
        assert_eq!(r.status, 201, "{}", text(&r));
        let v = r.body_json();
        (
            v["id"].as_str().unwrap().to_string(),
            v["url"]
                .as_str()
                .unwrap()
                .strip_prefix(ORIGIN)
                .unwrap()
                .to_string(),
        )
    };
    let open = |h: &mut Server, path: &str| {
        h.send(Request::new(Method::Post, path, ORIGIN).with_header("origin", ORIGIN))
    };
    let (_, once) = create(&mut h, json!({}));
    assert_eq!(open(&mut h, &once).status, 303);
    assert_eq!(open(&mut h, &once).status, 410, "single use");
    let (_, short) = create(&mut h, json!({"expiresIn": 60}));
    h.now_ms += 61_000;
    assert_eq!(open(&mut h, &short).status, 410, "expired");
    let (id, revoked) = create(&mut h, json!({}));
    let r = admin(
        &mut h,
        Method::Delete,
        &format!("/tenants/acme/setup-links/{id}"),
        None,
    );
    assert_eq!(r.body_json()["status"], "revoked");
    assert_eq!(open(&mut h, &revoked).status, 410);
    // Revoking an opened link ends its session.
    let (id, path) = create(&mut h, json!({}));
    let cookie = open(&mut h, &path)
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let s = |h: &mut Server| {
        h.send(
            Request::new(Method::Get, "/setup/api/session", ORIGIN).with_header("cookie", &cookie),
        )
        .status
    };
    assert_eq!(s(&mut h), 200);
    admin(
        &mut h,
        Method::Delete,
        &format!("/tenants/acme/setup-links/{id}"),
        None,
    );
    assert_eq!(s(&mut h), 401);
    // A cross-site POST cannot open a link (login CSRF).
    let (_, path) = create(&mut h, json!({}));
    let r = h
        .send(Request::new(Method::Post, &path, ORIGIN).with_header("origin", "https://evil.test"));
    assert_eq!(r.status, 403);
    let list = admin(&mut h, Method::Get, "/tenants/acme/setup-links", None).body_json();
    let statuses: Vec<&str> = list["setupLinks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 5);
    assert!(
        list.to_string().find("scim_sl_").is_none(),
        "no secret in the list"
    );
    assert_eq!(
        admin(
            &mut h,
            Method::Post,
            "/tenants/acme/setup-links",
            Some(json!({"expiresIn": 10}))
        )
        .status,
        400
    );
    assert_eq!(
        admin(&mut h, Method::Post, "/tenants/nope/setup-links", None).status,
        404
    );
}

#[test]
fn the_setup_page_api_acts_for_its_tenant_only() {
    let (mut h, _, _) = setup();
    let cookie = session(&mut h, "acme");
    let globex = admin(&mut h, Method::Post, "/tenants/globex/tokens", None).body_json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    h.call(
        Method::Post,
        "/t/globex/scim/v2/Users",
        &globex,
        Some(json!({"schemas": [crate::proto::schema::USER_SCHEMA], "userName": "g@globex.test"})),
    );
    let get = |h: &mut Server, p: &str| {
        h.send(Request::new(Method::Get, p, ORIGIN).with_header("cookie", &cookie))
    };
    let s = get(&mut h, "/setup/api/session").body_json();
    assert_eq!(s["tenant"], "acme");
    assert_eq!(s["scimUrl"], format!("{ORIGIN}/t/acme/scim/v2"));
    assert_eq!(
        get(&mut h, "/setup/api/status").body_json()["connected"],
        false
    );
    assert_eq!(
        get(&mut h, "/setup/api/events").body_json()["events"],
        json!([]),
        "not globex's log"
    );
    // Generating a token needs the CSRF token.
    let post = |h: &mut Server, csrf: Option<&str>| {
        let mut r = Request::new(Method::Post, "/setup/api/token", ORIGIN)
            .with_header("cookie", &cookie)
            .with_header("origin", ORIGIN);
        if let Some(c) = csrf {
            r = r.with_header("x-csrf-token", c);
        }
        h.send(r)
    };
    assert_eq!(post(&mut h, None).status, 403);
    let csrf = s["csrf"].as_str().unwrap().to_string();
    let r = post(&mut h, Some(&csrf));
    assert_eq!(r.status, 201);
    let token = r.body_json()["token"].as_str().unwrap().to_string();
    assert_eq!(scim(&mut h, "acme", &token), 200);
    assert_eq!(scim(&mut h, "globex", &token), 401);
    let st = get(&mut h, "/setup/api/status").body_json();
    assert_eq!(st["connected"], true, "{st}");
    h.call(
        Method::Post,
        "/t/acme/scim/v2/Users",
        &token,
        Some(json!({"schemas": [crate::proto::schema::USER_SCHEMA], "userName": "a@acme.test"})),
    );
    let log = get(&mut h, "/setup/api/events").body_json();
    assert_eq!(log["events"].as_array().unwrap().len(), 1);
    assert_eq!(log["events"][0]["op"], "create");
    // Without a session: 401; a forged cookie: 401.
    let r = h.send(Request::new(Method::Get, "/setup/api/session", ORIGIN));
    assert_eq!(r.status, 401);
    let r = h.send(
        Request::new(Method::Get, "/setup/api/session", ORIGIN).with_header(
            "cookie",
            &format!("__Host-scim-setup=scim_ss_{}", "A".repeat(43)),
        ),
    );
    assert_eq!(r.status, 401);
    // The page itself has no inline code.
    let page = h.send(Request::new(Method::Get, "/setup", ORIGIN));
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-security-policy"),
        Some(crate::service::console::CSP)
    );
    let html = text(&page);
    for tag in html.split("<script").skip(1) {
        assert!(tag.trim_start().starts_with("src="), "inline script");
    }
    assert!(!html.contains(" style=") && !html.contains(" onclick"));
}

/// A vendor assertion as the vendor's sign-in would make it.
fn assertion(secret: &str, claims: Value) -> String {
    use hmac::{Hmac, Mac};
    let payload = crate::service::credentials::base64url(claims.to_string().as_bytes());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(payload.as_bytes());
    format!(
        "{payload}.{}",
        crate::service::credentials::base64url(&mac.finalize().into_bytes())
    )
}

#[test]
fn vendor_assertions_are_checked_for_signature_audience_expiry_and_nonce() {
    use crate::service::handoff::verify;
    let aud = "https://scim.test/oauth/vendor-return";
    let good = json!({"tenant": "acme", "sub": "admin@acme.test", "aud": aud, "exp": 1_000_100, "nonce": "n1"});
    let a = assertion("s3cret", good.clone());
    let ok = verify("s3cret", &a, aud, "n1", 1_000_000).unwrap();
    assert_eq!(
        (ok.tenant.as_str(), ok.subject.as_str()),
        ("acme", "admin@acme.test")
    );
    assert_eq!(
        verify("other", &a, aud, "n1", 1_000_000),
        Err("bad signature")
    );
    assert_eq!(
        verify(
            "s3cret",
            &a,
            "https://x.test/oauth/vendor-return",
            "n1",
            1_000_000
        ),
        Err("wrong audience")
    );
    assert_eq!(verify("s3cret", &a, aud, "n1", 1_000_100), Err("expired"));
    assert_eq!(
        verify("s3cret", &a, aud, "n2", 1_000_000)
            .unwrap_err()
            .split(' ')
            .next(),
        Some("wrong")
    );
    assert!(verify("s3cret", &a, aud, "", 1_000_000).is_err());
    let far = assertion(
        "s3cret",
        json!({"tenant": "acme", "sub": "x", "aud": aud, "exp": 1_000_000 + 3600, "nonce": "n1"}),
    );
    assert_eq!(
        verify("s3cret", &far, aud, "n1", 1_000_000),
        Err("expiry too far ahead")
    );
    let tampered = a.replacen('e', "f", 1);
    assert!(verify("s3cret", &tampered, aud, "n1", 1_000_000).is_err());
    let bad_tenant = assertion(
        "s3cret",
        json!({"tenant": "ACME", "sub": "x", "aud": aud, "exp": 1_000_100, "nonce": "n1"}),
    );
    assert_eq!(
        verify("s3cret", &bad_tenant, aud, "n1", 1_000_000),
        Err("bad tenant")
    );
}

#[test]
fn the_vendor_sign_in_approves_for_the_tenant_it_names() {
    let (mut h, client, secret) = setup();
    h.config.vendor_signin_url = Some("https://app.vendor.test/sso?from=scim".into());
    h.config.approver_secret = Some("approver-secret-0123456789".into());
    let q = authorize_query(&client, "");
    let r = h.send(Request::new(Method::Get, &q, ORIGIN));
    assert_eq!(r.status, 302);
    let loc = r.header("location").unwrap().to_string();
    assert!(loc.starts_with("https://app.vendor.test/sso?from=scim&return_to=https%3A%2F%2Fscim.test%2Foauth%2Fvendor-return&nonce="), "{loc}");
    let nonce = loc_param(&r, "nonce").unwrap();
    let handoff = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(handoff.starts_with("__Host-scim-handoff="));
    let exp = h.now_ms / 1000 + 120;
    let claims = json!({"tenant": "globex", "sub": "it@globex.test", "aud": "https://scim.test/oauth/vendor-return", "exp": exp, "nonce": nonce});
    let a = assertion("approver-secret-0123456789", claims.clone());
    // Without the browser's nonce cookie the assertion is refused.
    let r = h.send(Request::new(
        Method::Get,
        &format!("/oauth/vendor-return?assertion={a}"),
        ORIGIN,
    ));
    assert_eq!(r.status, 403);
    let r = h.send(
        Request::new(
            Method::Get,
            &format!("/oauth/vendor-return?assertion={a}"),
            ORIGIN,
        )
        .with_header("cookie", &handoff),
    );
    assert_eq!(r.status, 303, "{}", text(&r));
    assert!(r
        .header("location")
        .unwrap()
        .starts_with("/oauth/authorize?response_type=code&client_id="));
    let session = r
        .headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("__Host-scim-setup="))
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = h.send(
        Request::new(Method::Get, r.header("location").unwrap(), ORIGIN)
            .with_header("cookie", &session),
    );
    assert_eq!(page.status, 200);
    assert!(text(&page).contains("globex Corp") && text(&page).contains("vendor"));
    let code = approve(&mut h, &session, &client);
    let t = exchange(&mut h, &client, &secret, &code).body_json();
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(scim(&mut h, "globex", access), 200);
    assert_eq!(scim(&mut h, "acme", access), 401);
    let grant = h.db.query("SELECT approver, via FROM oauth_grants");
    assert_eq!(grant[0]["approver"], "it@globex.test");
    assert_eq!(grant[0]["via"], "vendor");
}
