//! Setup links: how a vendor hands one tenant's provisioning set-up to the customer's IT admin
//! without being in the loop (WorkOS Admin Portal, Ory Polis setup links). The vendor creates a
//! link (admin API `POST /admin/api/tenants/{t}/setup-links`, CLI, console); the IT admin
//! opens it and gets a session in that browser (cookie `__Host-scim-setup`) for a page at
//! `/setup`: the tenant's Tenant URL, a SCIM token generated on demand (shown once), Entra
//! and Okta steps with the URL filled in, whether the IdP has connected, and the tenant's own
//! provisioning log. The same session approves Entra's "Authorize" button (`authorize`).
//!
//! A link is single-use to open: `GET /setup/{link}` shows a page whose button POSTs to open
//! it, because mail scanners fetch links before people do and would otherwise spend it. It
//! expires, and revoking it ends the session it started. Everything the page reads is scoped
//! to the session's tenant; state-changing requests need the session's CSRF token and a
//! same-origin `Origin`.

use crate::proto::error::{Result, ScimError};
use crate::proto::time;
use crate::service::admin_json::{error_json, json_response};
use crate::service::credentials::{self, Kind};
use crate::service::ctx::Ctx;
use crate::service::http::{Method, Request, Response};
use crate::service::tenant::{SCIM_PATH, TENANT_PREFIX};
use crate::store::onboarding::{self, NewSession, Session, SetupLink, Via};
use crate::store::tenancy::NewCredential;
use crate::store::{Db, Store};
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

/// Where the setup pages live.
pub const SETUP_PATH: &str = "/setup";
/// The session cookie: `__Host-` makes the browser insist on Secure, Path=/ and no Domain.
pub const COOKIE: &str = "__Host-scim-setup";
/// Prefixes of a setup link's secret and of a session's.
pub const LINK_PREFIX: &str = "scim_sl_";
const SESSION_PREFIX: &str = "scim_ss_";
/// How long a session lasts (a working day), and a link by default and at most.
pub const SESSION_TTL_SECS: i64 = 8 * 3600;
const DEFAULT_LINK_TTL_SECS: i64 = 7 * 86_400;
const MAX_LINK_TTL_SECS: i64 = 30 * 86_400;
/// The header the page sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

const SETUP_HTML: &str = include_str!("setup/setup.html");
const SETUP_JS: &str = include_str!("setup/setup.js");
const SETUP_CSS: &str = include_str!("setup/setup.css");

/// HTML-escapes a server value, so it is always text on a page (attributes included).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A server-rendered page with the setup stylesheet and no script: `body` is trusted markup
/// whose server values went through [`esc`]; `form_action` the CSP `form-action` sources.
pub fn page(status: u16, title: &str, body: &str, form_action: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/setup/setup.css\"></head>\
         <body><main>{body}</main></body></html>",
        esc(title)
    );
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; \
         form-action {form_action}; frame-ancestors 'none'"
    );
    let mut r = security(Response::empty(status), &csp)
        .with_header("content-type", "text/html; charset=utf-8")
        .with_header("cache-control", "no-store");
    r.body = html.into_bytes();
    r
}

/// `same-origin` referrers, not `no-referrer`: under `no-referrer` a browser sends
/// `Origin: null` with the pages' own form posts, and [`same_origin`] must see this origin.
fn security(resp: Response, csp: &str) -> Response {
    resp.with_header("content-security-policy", csp)
        .with_header("x-frame-options", "DENY")
        .with_header("x-content-type-options", "nosniff")
        .with_header("referrer-policy", "same-origin")
        .with_header("cross-origin-opener-policy", "same-origin")
}

/// The value of cookie `name` in the request's `Cookie` header.
pub fn cookie<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.header("cookie")?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// `Set-Cookie` for a session secret; `max_age` 0 deletes it. SameSite=Lax: the cookie must
/// come along when Entra's portal navigates the admin to the authorization endpoint (a
/// cross-site top-level GET), and never with a cross-site POST.
pub fn session_cookie(secret: &str, max_age: i64) -> String {
    format!("{COOKIE}={secret}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}")
}

/// The CSRF token of a session: an HMAC of a fixed label under the session's own secret, so
/// only a page that was given it (by a same-origin read) can send it, and nothing is stored.
pub fn csrf_token(session_secret: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(session_secret.as_bytes()) else {
        return String::new();
    };
    mac.update(b"scim-edge setup csrf");
    credentials::base64url(&mac.finalize().into_bytes())
}

/// Whether a state-changing request comes from a page of this origin: `Origin` (which
/// browsers send with every POST) must be this origin, and `Sec-Fetch-Site`, when sent,
/// same-origin. Non-browser clients send neither and have no cookie to abuse.
pub fn same_origin(req: &Request) -> bool {
    let origin_ok = req.header("origin").is_none_or(|o| o == req.origin);
    let site_ok = req
        .header("sec-fetch-site")
        .is_none_or(|s| s == "same-origin" || s == "none");
    origin_ok && site_ok
}

/// The request's live session, with its secret (for the CSRF token).
pub async fn current<D: Db>(ctx: &Ctx<'_, D>, req: &Request) -> Result<Option<(Session, String)>> {
    let Some(secret) = cookie(req, COOKIE).filter(|s| s.starts_with(SESSION_PREFIX)) else {
        return Ok(None);
    };
    if !credentials::looks_issued(secret) {
        return Ok(None);
    }
    let now = time::format_millis(ctx.now_ms);
    let s = onboarding::session(ctx.db, &credentials::hash(secret), &now).await?;
    Ok(s.map(|s| (s, secret.to_string())))
}

/// A new session secret with its id and hash.
fn new_session_secret() -> Result<(String, String, String)> {
    match (
        credentials::generate_prefixed(SESSION_PREFIX),
        crate::service::ids::new_id(),
    ) {
        (Some(secret), Some(id)) => {
            let hash = credentials::hash(&secret);
            Ok((secret, id, hash))
        }
        _ => Err(ScimError::internal()),
    }
}

/// Starts a session for an administrator the vendor's sign-in vouched for; answers the
/// `Set-Cookie` value, or `None` if the tenant does not exist.
pub async fn start_vendor_session<D: Db>(
    ctx: &Ctx<'_, D>,
    tenant: &str,
    subject: &str,
) -> Result<Option<String>> {
    let (secret, id, hash) = new_session_secret()?;
    let now = time::format_millis(ctx.now_ms);
    let expires = time::format_millis(ctx.now_ms + SESSION_TTL_SECS * 1000);
    let s = NewSession {
        id: &id,
        hash: &hash,
        tenant,
        approver: subject,
        via: Via::Vendor,
        created: &now,
        expires: &expires,
    };
    let started = onboarding::insert_session(ctx.db, &s).await?;
    Ok(started.map(|_| session_cookie(&secret, SESSION_TTL_SECS)))
}

/// Everything under `/setup`.
pub async fn handle<D: Db>(ctx: &Ctx<'_, D>, req: &Request, rest: &str) -> Response {
    let (csp, asset) = (crate::service::console::CSP, static_asset(rest));
    if let Some((body, ty)) = asset {
        if !matches!(req.method, Method::Get | Method::Head) {
            return error_json(&ScimError::method_not_allowed("allowed: GET, HEAD"));
        }
        let mut r = security(Response::empty(200), csp)
            .with_header("content-type", ty)
            .with_header("cache-control", "no-cache");
        if req.method == Method::Get {
            r.body = body.as_bytes().to_vec();
        }
        return r;
    }
    let result = match rest.trim_start_matches('/') {
        link if link.starts_with(LINK_PREFIX) => open(ctx, req, link).await,
        api if api.starts_with("api/") => api_route(ctx, req, api).await,
        _ => Err(ScimError::not_found("no setup page here")),
    };
    match result {
        Ok(r) => r,
        Err(e) if rest.starts_with("/api/") => error_json(&e),
        Err(e) => page(
            e.status,
            "Setup",
            &format!("<h1>Setup</h1><p>{}</p>", esc(&e.detail)),
            "'none'",
        ),
    }
}

fn static_asset(rest: &str) -> Option<(&'static str, &'static str)> {
    match rest {
        "" | "/" => Some((SETUP_HTML, "text/html; charset=utf-8")),
        "/setup.js" => Some((SETUP_JS, "text/javascript; charset=utf-8")),
        "/setup.css" => Some((SETUP_CSS, "text/css; charset=utf-8")),
        _ => None,
    }
}

/// `GET /setup/{link}`: a page with a button; `POST`: opens the link (once) and starts the
/// session, then sends the browser to `/setup` without the secret in its address bar.
async fn open<D: Db>(ctx: &Ctx<'_, D>, req: &Request, link: &str) -> Result<Response> {
    let gone = || {
        page(
            410,
            "Setup link",
            "<h1>This setup link cannot be opened</h1><p>It has expired, was revoked, or was \
             already opened (a link opens once). Ask your application's vendor for a new \
             setup link.</p>",
            "'none'",
        )
    };
    if !credentials::looks_issued(link) {
        return Ok(gone());
    }
    match req.method {
        Method::Get | Method::Head => Ok(page(
            200,
            "Set up provisioning",
            "<h1>Set up provisioning</h1><p>This link opens once, in this browser. \
             Continue to set up provisioning from your identity provider.</p>\
             <form method=\"post\"><button type=\"submit\">Continue</button></form>",
            "'self'",
        )),
        Method::Post => {
            if !same_origin(req) {
                return Err(ScimError::new(403, None, "cross-site request refused"));
            }
            let (secret, id, hash) = new_session_secret()?;
            let now = time::format_millis(ctx.now_ms);
            let expires = time::format_millis(ctx.now_ms + SESSION_TTL_SECS * 1000);
            let s = NewSession {
                id: &id,
                hash: &hash,
                tenant: "",
                approver: "",
                via: Via::SetupLink,
                created: &now,
                expires: &expires,
            };
            match onboarding::open_link(ctx.db, &credentials::hash(link), &s).await? {
                Some(_) => Ok(Response::empty(303)
                    .with_header("location", SETUP_PATH)
                    .with_header("set-cookie", session_cookie(&secret, SESSION_TTL_SECS))
                    .with_header("cache-control", "no-store")
                    .with_header("referrer-policy", "no-referrer")),
                None => Ok(gone()),
            }
        }
        _ => Err(ScimError::method_not_allowed("allowed: GET, POST")),
    }
}

/// `/setup/api/...`: the page's data, for the session's tenant only.
async fn api_route<D: Db>(ctx: &Ctx<'_, D>, req: &Request, path: &str) -> Result<Response> {
    let (session, secret) = current(ctx, req).await?.ok_or_else(|| {
        ScimError::unauthorized("no setup session: open the setup link your vendor sent you")
    })?;
    let store = Store::new(ctx.db, &session.tenant);
    let scim_url = format!("{}{TENANT_PREFIX}{}{SCIM_PATH}", req.origin, session.tenant);
    match (req.method, path) {
        (Method::Get, "api/session") => {
            let t = store.tenant_record().await?;
            Ok(json_response(
                200,
                &json!({
                    "tenant": session.tenant,
                    "name": t.map(|t| t.name),
                    "scimUrl": scim_url,
                    "csrf": csrf_token(&secret),
                    "via": session.via.as_str(),
                    "expires": session.expires,
                }),
            ))
        }
        (Method::Post, "api/token") => {
            check_csrf(req, &secret)?;
            issue_token(ctx, &store, &scim_url).await
        }
        (Method::Get, "api/status") => {
            let seen = store.last_authenticated().await?;
            Ok(json_response(
                200,
                &json!({"connected": seen.is_some(), "lastSeen": seen}),
            ))
        }
        (Method::Get, "api/events") => {
            let q = crate::store::events::EventQuery::parse(|name| match name {
                "since" | "limit" => req.query_param(name),
                _ => None,
            })?;
            let page = match ctx.forward {
                // The log is in the tenant's object (`SCIM_STORAGE = "durable-object"`).
                Some(to) => {
                    let path = format!("events?since={}&limit={}", q.since, q.limit);
                    let mut page = crate::service::relay::read_json(
                        ctx,
                        to,
                        &session.tenant,
                        &req.origin,
                        &path,
                    )
                    .await?;
                    crate::service::relay::fill_grants(ctx, &session.tenant, &mut page).await?;
                    page
                }
                None => crate::store::events::list(ctx.db, &session.tenant, &q).await?,
            };
            Ok(json_response(200, &page))
        }
        (_, "api/session" | "api/token" | "api/status" | "api/events") => {
            Err(ScimError::method_not_allowed("method not allowed here"))
        }
        _ => Err(ScimError::not_found("no setup API here")),
    }
}

fn check_csrf(req: &Request, secret: &str) -> Result<()> {
    let sent = req.header(CSRF_HEADER).unwrap_or("");
    let want = csrf_token(secret);
    if !same_origin(req)
        || !crate::service::auth::constant_time_eq(sent.as_bytes(), want.as_bytes())
    {
        return Err(ScimError::new(
            403,
            None,
            "missing or wrong CSRF token, or a cross-site request",
        ));
    }
    Ok(())
}

/// Issues a SCIM bearer token for the session's tenant, shown once.
async fn issue_token<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    scim_url: &str,
) -> Result<Response> {
    let (Some(secret), Some(id)) = (
        credentials::generate(Kind::Bearer),
        crate::service::ids::new_id(),
    ) else {
        return Err(ScimError::internal());
    };
    let now = time::format_millis(ctx.now_ms);
    let hash = credentials::hash(&secret);
    let new = NewCredential {
        id: &id,
        kind: Kind::Bearer,
        hash: &hash,
        label: "generated on the setup page",
        created: &now,
        expires: None,
    };
    store
        .insert_credential(&new)
        .await?
        .ok_or_else(|| ScimError::not_found("the tenant no longer exists"))?;
    Ok(json_response(
        201,
        &json!({"id": id, "token": secret, "scimUrl": scim_url,
                "notice": "the secret is shown only in this response; only its hash is stored"}),
    ))
}

fn link_json(l: &SetupLink, now: &str) -> Value {
    let status = if l.revoked.is_some() {
        "revoked"
    } else if l.opened.is_some() {
        "opened"
    } else if l.expires.as_str() <= now {
        "expired"
    } else {
        "active"
    };
    json!({"id": l.id, "tenant": l.tenant, "label": l.label, "created": l.created,
           "expires": l.expires, "opened": l.opened, "revoked": l.revoked, "status": status})
}

/// The admin API's `/tenants/{t}/setup-links[/{id}]`: GET (list), POST `{label?,
/// expiresIn?}` (answers the `url`, once), `DELETE /{id}` (revoke, ending its session).
pub async fn admin<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
    body: &Map<String, Value>,
    tail: &[&str],
) -> Result<(u16, Value)> {
    let now = time::format_millis(ctx.now_ms);
    let no_tenant = || ScimError::not_found(format!("no tenant '{}'", store.tenant()));
    match (req.method, tail) {
        (Method::Get, []) => {
            let links = store.setup_links().await?.ok_or_else(no_tenant)?;
            let list: Vec<Value> = links.iter().map(|l| link_json(l, &now)).collect();
            Ok((200, json!({ "setupLinks": list })))
        }
        (Method::Post, []) => {
            let (label, ttl) = link_request(body)?;
            let (Some(secret), Some(id)) = (
                credentials::generate_prefixed(LINK_PREFIX),
                crate::service::ids::new_id(),
            ) else {
                return Err(ScimError::internal());
            };
            let expires = time::format_millis(ctx.now_ms + ttl * 1000);
            let link = store
                .insert_setup_link(&id, &credentials::hash(&secret), &label, &now, &expires)
                .await?
                .ok_or_else(no_tenant)?;
            let mut v = link_json(&link, &now);
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "url".into(),
                    json!(format!("{}{SETUP_PATH}/{secret}", req.origin)),
                );
                o.insert(
                    "notice".into(),
                    json!("the link is shown only in this response"),
                );
            }
            Ok((201, v))
        }
        (Method::Delete, [id]) => {
            let link = store
                .revoke_setup_link(id, &now)
                .await?
                .ok_or_else(|| ScimError::not_found(format!("no setup link '{id}'")))?;
            Ok((200, link_json(&link, &now)))
        }
        (_, []) => Err(ScimError::method_not_allowed("allowed: GET, POST")),
        (_, [_]) => Err(ScimError::method_not_allowed("allowed: DELETE")),
        _ => Err(ScimError::not_found("no such setup-links resource")),
    }
}

fn link_request(body: &Map<String, Value>) -> Result<(String, i64)> {
    if let Some(k) = body
        .keys()
        .find(|k| !["label", "expiresIn"].contains(&k.as_str()))
    {
        return Err(ScimError::invalid_value(format!(
            "unknown field '{k}'; expected label, expiresIn"
        )));
    }
    let label = match body.get("label") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.chars().count() <= 200 && !s.chars().any(char::is_control) => {
            s.trim().to_string()
        }
        Some(_) => {
            return Err(ScimError::invalid_value(
                "'label' must be a string of at most 200 characters",
            ))
        }
    };
    let ttl = match body.get("expiresIn") {
        None | Some(Value::Null) => DEFAULT_LINK_TTL_SECS,
        Some(v) => match v.as_i64() {
            Some(n) if (60..=MAX_LINK_TTL_SECS).contains(&n) => n,
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "'expiresIn' must be whole seconds from 60 to {MAX_LINK_TTL_SECS}"
                )))
            }
        },
    };
    Ok((label, ttl))
}
