//! The OAuth 2.0 authorization code grant (RFC 6749 §4.1, PKCE per RFC 7636 when the client
//! sends a challenge) for Entra's "Authorize" button: gallery apps register an authorization
//! URL, a token URL, a client id and secret, and Entra's redirect URI
//! `https://portal.azure.com/TokenAuthorize`; the customer's admin clicks Authorize, approves
//! here, and Entra exchanges the code for an access token and a refresh token for the
//! Tenant URL.
//!
//! The client is an *application* of the deployment (admin API `/admin/api/oauth-apps`), the
//! same for every customer, as a gallery entry is; the tenant is the approver's: the setup
//! link's session ([`crate::service::setup`]) or the vendor's sign-in hand-off
//! ([`crate::service::handoff`]), never a parameter the client chooses. Without an approver the
//! endpoint shows a page that says how to get a setup link.
//!
//! - `GET /oauth/authorize`: validates the request; an unknown client or a redirect URI not
//!   registered for it (exact match) is a page, never a redirect (§4.1.2.1); every other error
//!   redirects with `error` and the untouched `state`. With a session: a consent page.
//! - `POST /oauth/authorize`: the consent form (session + CSRF token + same origin): a code
//!   (single use, [`CODE_TTL_SECS`]) or `error=access_denied`.
//! - `POST /oauth/token` (and `/t/{tenant}/oauth/token`, which also keeps the client
//!   credentials grant): `authorization_code` and `refresh_token` grants, errors per §5.2.
//!   Refresh tokens rotate on every use; presenting a used one again revokes the whole grant
//!   (its access and refresh tokens): reuse means the token was copied, and the legitimate
//!   holder re-authorizes. A second redemption of a code does the same (§4.1.2).
//!
//! Access tokens are `credentials` rows (kind `access`, parent the grant), so SCIM verifies,
//! caches and logs them like every token; the provisioning log names their grant.

use crate::proto::error::{Result, ScimError};
use crate::proto::time;
use crate::service::credentials::{self, Kind};
use crate::service::ctx::Ctx;
use crate::service::http::{with_query, Method, Request, Response};
use crate::service::oauth::{self, form_param, OAuthError};
use crate::service::ratelimit::{self, Decision};
use crate::service::setup::{self, esc};
pub use crate::service::tenant::{AUTHORIZE_PATH, DEPLOYMENT_TOKEN_PATH as TOKEN_PATH};
use crate::store::onboarding::{self, App, NewCode, NewRefresh, Session};
use crate::store::tenancy::NewCredential;
use crate::store::{Db, Store};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Lifetimes: codes 5 minutes (RFC 6749 §4.1.2 recommends at most 10), refresh tokens 90
/// days from their last rotation.
pub const CODE_TTL_SECS: i64 = 300;
pub const REFRESH_TTL_SECS: i64 = 90 * 86_400;
/// Entra's redirect URI for provisioning's Authorize button, the only one Microsoft documents
/// (the Amazon Business provisioning tutorial's authorization endpoints carry
/// `redirect_uri=https://portal.azure.com/TokenAuthorize`, for an Authorize clicked in the
/// Microsoft Entra admin center). An application created without `redirectUris` allows it; the allow-list is
/// exact-match, so an undocumented host is not added on a guess (a vendor who sees Entra use
/// another adds it with `PATCH /admin/api/oauth-apps/{id}`).
pub const ENTRA_REDIRECT_URIS: [&str; 1] = ["https://portal.azure.com/TokenAuthorize"];
const CODE_PREFIX: &str = "scim_ac_";
const REFRESH_PREFIX: &str = "scim_rt_";
const APP_SECRET_PREFIX: &str = "scim_as_";
/// The rate-limit keys' tenant part for the deployment-wide applications.
const APPS: &str = "*apps";

/// A validated authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    pub client_id: String,
    /// Where to send the answer: the one sent, or the application's only registered URI.
    pub redirect_uri: String,
    /// Whether the request named `redirect_uri` (then the token request must repeat it).
    pub redirect_given: bool,
    pub state: Option<String>,
    pub challenge: Option<String>,
    pub method: Option<String>,
}

/// Why an authorization request fails: shown on a page (the client or redirect URI cannot
/// be trusted), or sent back to the client's redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    Page(String),
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: String,
        state: Option<String>,
    },
}

fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    oauth::form_param(params, name)
}

fn repeated(params: &[(String, String)], name: &str) -> bool {
    params.iter().filter(|(k, _)| k == name).count() > 1
}

/// The client id an authorization request names, if it names exactly one.
pub fn client_id_of(params: &[(String, String)]) -> Option<&str> {
    if repeated(params, "client_id") {
        return None;
    }
    param(params, "client_id").filter(|id| oauth::looks_like_client_id(id))
}

/// Validates an authorization request against its application (`None`: unknown or
/// revoked), in the order RFC 6749 §4.1.2.1 asks: client and redirect URI first (a page),
/// then the rest (a redirect with the error).
pub fn validate(
    params: &[(String, String)],
    app: Option<&App>,
) -> std::result::Result<AuthRequest, AuthError> {
    let page = |m: &str| Err(AuthError::Page(m.to_string()));
    let Some(app) = app.filter(|a| a.revoked.is_none()) else {
        return page("The application that sent you here is not known to this service (unknown or revoked client_id). Ask its vendor.");
    };
    if repeated(params, "redirect_uri") {
        return page("The request names redirect_uri more than once.");
    }
    let (redirect_uri, given) = match param(params, "redirect_uri") {
        Some(uri) if app.redirect_uris.iter().any(|r| r == uri) => (uri.to_string(), true),
        Some(_) => return page("The redirect_uri of this request is not registered for the application, so you are not sent back to it."),
        None => match app.redirect_uris.as_slice() {
            [only] => (only.clone(), false),
            _ => return page("The request has no redirect_uri and the application registers several."),
        },
    };
    let state = param(params, "state").map(str::to_string);
    let fail = |error: &'static str, description: &str| {
        Err(AuthError::Redirect {
            redirect_uri: redirect_uri.clone(),
            error,
            description: description.to_string(),
            state: state.clone(),
        })
    };
    if let Some((k, _)) = params.iter().find(|(k, _)| repeated(params, k)) {
        return fail("invalid_request", &format!("parameter '{k}' is repeated"));
    }
    match param(params, "response_type") {
        None => return fail("invalid_request", "'response_type' is required"),
        Some("code") => {}
        Some(_) => {
            return fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            )
        }
    }
    let challenge = param(params, "code_challenge");
    let method = param(params, "code_challenge_method");
    let method = match (challenge, method) {
        (None, None) => None,
        (None, Some(_)) => {
            return fail(
                "invalid_request",
                "'code_challenge_method' without 'code_challenge'",
            )
        }
        (Some(c), m) if pkce_value_ok(c) => match m.unwrap_or("plain") {
            "S256" => Some("S256"),
            "plain" => Some("plain"),
            _ => {
                return fail(
                    "invalid_request",
                    "'code_challenge_method' must be S256 or plain",
                )
            }
        },
        (Some(_), _) => {
            return fail(
                "invalid_request",
                "'code_challenge' must be 43-128 characters of [A-Za-z0-9-._~]",
            )
        }
    };
    Ok(AuthRequest {
        client_id: app.id.clone(),
        redirect_uri,
        redirect_given: given,
        state,
        challenge: challenge.map(str::to_string),
        method: method.map(str::to_string),
    })
}

/// RFC 7636 §4.1: a verifier (and a plain challenge) is 43-128 unreserved characters.
fn pkce_value_ok(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `verifier` answers the stored challenge (RFC 7636 §4.6).
pub fn pkce_matches(challenge: &str, method: &str, verifier: &str) -> bool {
    if !pkce_value_ok(verifier) {
        return false;
    }
    let derived = match method {
        "S256" => credentials::base64url(&Sha256::digest(verifier.as_bytes())),
        _ => verifier.to_string(),
    };
    crate::service::auth::constant_time_eq(derived.as_bytes(), challenge.as_bytes())
}

fn redirect(status: u16, location: String) -> Response {
    Response::empty(status)
        .with_header("location", location)
        .with_header("cache-control", "no-store")
        .with_header("referrer-policy", "no-referrer")
}

fn error_redirect(status: u16, e: AuthError) -> Response {
    match e {
        AuthError::Page(m) => setup::page(
            400,
            "Authorization request refused",
            &format!(
                "<h1>This authorization request cannot be completed</h1><p>{}</p>",
                esc(&m)
            ),
            "'none'",
        ),
        AuthError::Redirect {
            redirect_uri,
            error,
            description,
            state,
        } => {
            let mut p = vec![
                ("error", error),
                ("error_description", description.as_str()),
            ];
            if let Some(s) = &state {
                p.push(("state", s));
            }
            redirect(status, with_query(&redirect_uri, &p))
        }
    }
}

/// `GET` and `POST /oauth/authorize`.
pub async fn authorize<D: Db>(ctx: &Ctx<'_, D>, req: &Request) -> Response {
    let params = match req.method {
        Method::Get | Method::Head => req.query.clone(),
        Method::Post => crate::service::http::parse_query(&String::from_utf8_lossy(&req.body)),
        _ => {
            return setup::page(
                405,
                "Method not allowed",
                "<h1>Method not allowed</h1>",
                "'none'",
            )
            .with_header("allow", "GET, POST")
        }
    };
    match authorize_inner(ctx, req, &params).await {
        Ok(r) => r,
        Err(e) => setup::page(
            e.status,
            "Authorization",
            &format!("<h1>Authorization failed</h1><p>{}</p>", esc(&e.detail)),
            "'none'",
        ),
    }
}

async fn authorize_inner<D: Db>(
    ctx: &Ctx<'_, D>,
    req: &Request,
    params: &[(String, String)],
) -> Result<Response> {
    let app = match client_id_of(params) {
        Some(id) => onboarding::app(ctx.db, id).await?,
        None => None,
    };
    let post = req.method == Method::Post;
    let ar = match validate(params, app.as_ref()) {
        Ok(ar) => ar,
        Err(e) => return Ok(error_redirect(if post { 303 } else { 302 }, e)),
    };
    let Some((session, secret)) = setup::current(ctx, req).await? else {
        if let Some(r) = crate::service::handoff::start(ctx, req, params) {
            return Ok(r);
        }
        return Ok(no_approver());
    };
    if !post {
        let app_name = app.map(|a| a.name).unwrap_or_default();
        return consent(ctx, &session, &secret, &ar, &app_name).await;
    }
    let csrf = param(params, "csrf").unwrap_or("");
    let want = setup::csrf_token(&secret);
    if !setup::same_origin(req)
        || !crate::service::auth::constant_time_eq(csrf.as_bytes(), want.as_bytes())
    {
        return Err(ScimError::new(403, None, "The approval did not come from this service's consent page (missing or wrong CSRF token). Start again from your identity provider."));
    }
    if param(params, "decision") != Some("approve") {
        return Ok(error_redirect(
            303,
            AuthError::Redirect {
                redirect_uri: ar.redirect_uri,
                error: "access_denied",
                description: "the administrator denied the request".into(),
                state: ar.state,
            },
        ));
    }
    issue_code(ctx, &session, &ar).await
}

fn no_approver() -> Response {
    setup::page(
        403,
        "Approval needs a setup link",
        "<h1>Sign in for your organisation first</h1><p>Only an administrator of your \
         organisation's account can approve provisioning. Open the <strong>setup link</strong> \
         your application's vendor sent you (ask them for one if you have none): it signs you \
         in for your organisation in this browser. Then click <strong>Authorize</strong> in \
         your identity provider again.</p>",
        "'none'",
    )
}

/// The consent page: who asks, for which tenant, and two buttons. The form carries the
/// request as sent (so the POST re-validates it) and the session's CSRF token; its CSP lets
/// it post here and be redirected to the registered redirect URI only.
async fn consent<D: Db>(
    ctx: &Ctx<'_, D>,
    session: &Session,
    secret: &str,
    ar: &AuthRequest,
    app_name: &str,
) -> Result<Response> {
    let tenant = Store::new(ctx.db, &session.tenant).tenant_record().await?;
    let tenant_name = tenant.map_or_else(|| session.tenant.clone(), |t| t.name);
    let mut hidden = vec![
        ("response_type", "code".to_string()),
        ("client_id", ar.client_id.clone()),
        ("csrf", setup::csrf_token(secret)),
    ];
    let optional = [
        (
            "redirect_uri",
            ar.redirect_given.then(|| ar.redirect_uri.clone()),
        ),
        ("state", ar.state.clone()),
        ("code_challenge", ar.challenge.clone()),
        ("code_challenge_method", ar.method.clone()),
    ];
    hidden.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    let fields: String = hidden
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", esc(v)))
        .collect();
    let body = format!(
        "<h1>Allow <span id=\"app\">{app}</span> to provision into <span id=\"tenant\">{tenant}</span>?</h1>\
         <p><strong>{app}</strong> asks to create, update, deactivate and delete the users and \
         groups of <strong>{tenant}</strong> ({tid}) through SCIM, until you revoke it. You \
         are signed in for {tid} {via}.</p><p>After you answer you return to <code>{uri}</code>.</p>\
         <form method=\"post\" action=\"{AUTHORIZE_PATH}\">{fields}\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button></form>",
        app = esc(if app_name.is_empty() { &ar.client_id } else { app_name }),
        tenant = esc(&tenant_name),
        tid = esc(&session.tenant),
        via = match session.via {
            onboarding::Via::SetupLink => "through a setup link",
            onboarding::Via::Vendor => "through the vendor's sign-in",
        },
        uri = esc(&ar.redirect_uri),
    );
    // Registered URIs hold no spaces, quotes, commas or semicolons (`valid_redirect_uri`).
    let action = format!("'self' {}", ar.redirect_uri);
    Ok(setup::page(200, "Authorize provisioning", &body, &action))
}

async fn issue_code<D: Db>(
    ctx: &Ctx<'_, D>,
    session: &Session,
    ar: &AuthRequest,
) -> Result<Response> {
    let (Some(code), Some(grant_id)) = (
        credentials::generate_prefixed(CODE_PREFIX),
        crate::service::ids::new_id(),
    ) else {
        return Err(ScimError::internal());
    };
    let hash = credentials::hash(&code);
    let now = time::format_millis(ctx.now_ms);
    let expires = time::format_millis(ctx.now_ms + CODE_TTL_SECS * 1000);
    let new = NewCode {
        hash: &hash,
        grant_id: &grant_id,
        tenant: &session.tenant,
        app: &ar.client_id,
        redirect_uri: ar.redirect_given.then_some(ar.redirect_uri.as_str()),
        challenge: ar.challenge.as_deref(),
        method: ar.method.as_deref(),
        approver: &session.approver,
        via: session.via,
        created: &now,
        expires: &expires,
    };
    let store = Store::new(ctx.db, &session.tenant);
    if !store.insert_code(&new).await? {
        return Err(ScimError::not_found(
            "The application or your organisation's account no longer exists.",
        ));
    }
    let mut p = vec![("code", code.as_str())];
    if let Some(s) = &ar.state {
        p.push(("state", s));
    }
    Ok(redirect(303, with_query(&ar.redirect_uri, &p)))
}

/// `POST /oauth/token` (`url_tenant` `None`) and `POST /t/{tenant}/oauth/token`: the code
/// and refresh grants here; the client credentials grant stays with [`oauth::handle`] and
/// needs the tenant's URL.
pub async fn token<D: Db>(ctx: &Ctx<'_, D>, req: &Request, url_tenant: Option<&str>) -> Response {
    let form = match oauth::parse_form(req) {
        Ok(f) => f,
        Err(e) => return e.response(),
    };
    let grant = form_param(&form, "grant_type");
    let result = match (grant, url_tenant) {
        (Some("client_credentials"), Some(t)) => return oauth::handle(ctx, req, t).await,
        (Some("authorization_code" | "refresh_token"), _) => {
            match authenticate_app(ctx, req, &form).await {
                Ok(app) if grant == Some("refresh_token") => refresh(ctx, &form, &app, url_tenant).await,
                Ok(app) => exchange(ctx, &form, &app, url_tenant).await,
                Err(r) => return r,
            }
        }
        (None, _) => Err(OAuthError::invalid_request("'grant_type' is required")),
        (Some("client_credentials"), None) => Err(OAuthError::new(
            400,
            "unsupported_grant_type",
            "the client credentials grant is served at the tenant's token endpoint, /t/{tenant}/oauth/token",
        )),
        (Some(other), _) => Err(OAuthError::new(
            400,
            "unsupported_grant_type",
            format!("grant type '{other}' is not supported; use authorization_code, refresh_token or client_credentials"),
        )),
    };
    result.unwrap_or_else(|e| e.response())
}

/// Authenticates the application (RFC 6749 §3.2.1) with the same three budgets as the
/// client credentials grant: attempts per source and client id before D1, failures per
/// source, and the application's own once its secret verified.
async fn authenticate_app<D: Db>(
    ctx: &Ctx<'_, D>,
    req: &Request,
    form: &[(String, String)],
) -> std::result::Result<String, Response> {
    let (id, secret) = oauth::client_auth(req, form).map_err(|e| e.response())?;
    let source = ratelimit::source(req.header("cf-connecting-ip"));
    let failed = || async {
        let key = ratelimit::oauth_failure_key(APPS, &source);
        if let Decision::Limited { retry_after_secs } =
            ctx.limiter.check_attempt(&key, ctx.now_ms).await
        {
            return oauth::too_many(retry_after_secs, "too many failed token requests from here");
        }
        OAuthError::invalid_client("unknown client, wrong secret, or the client is revoked")
            .response()
    };
    let well_formed = secret.starts_with(APP_SECRET_PREFIX)
        && credentials::looks_issued(&secret)
        && oauth::looks_like_client_id(&id);
    if !well_formed {
        return Err(failed().await);
    }
    let attempt = ratelimit::oauth_attempt_key(APPS, &source, &id);
    if let Decision::Limited { retry_after_secs } =
        ctx.limiter.check_attempt(&attempt, ctx.now_ms).await
    {
        return Err(oauth::too_many(
            retry_after_secs,
            "too many token requests for this client from here",
        ));
    }
    match onboarding::app_is_valid(ctx.db, &id, &credentials::hash(&secret)).await {
        Ok(true) => {}
        Ok(false) => return Err(failed().await),
        Err(_) => return Err(oauth::server_error("the client could not be verified")),
    }
    let budget = ratelimit::oauth_client_key(APPS, &id);
    if let Decision::Limited { retry_after_secs } = ctx.limiter.check(&budget, ctx.now_ms).await {
        return Err(oauth::too_many(
            retry_after_secs,
            "too many token requests for this client",
        ));
    }
    Ok(id)
}

fn invalid_grant(d: &str) -> OAuthError {
    OAuthError::new(400, "invalid_grant", d)
}

/// Revokes a grant whose code or refresh token came back a second time, and forgets its
/// access tokens in this isolate's cache.
async fn revoke_reused<D: Db>(ctx: &Ctx<'_, D>, grant_id: &str) -> OAuthError {
    let now = time::format_millis(ctx.now_ms);
    if let Ok(revoked) = onboarding::revoke_grant(ctx.db, grant_id, &now).await {
        for (tenant, id) in revoked {
            ctx.tokens.forget(&tenant, &[id]);
        }
    }
    invalid_grant("this grant was already used; every token issued for the authorization is now revoked, so authorize again")
}

/// `grant_type=authorization_code` (RFC 6749 §4.1.3).
async fn exchange<D: Db>(
    ctx: &Ctx<'_, D>,
    form: &[(String, String)],
    app: &str,
    url_tenant: Option<&str>,
) -> std::result::Result<Response, OAuthError> {
    let code = form_param(form, "code")
        .ok_or_else(|| OAuthError::invalid_request("'code' is required"))?;
    let unknown = || invalid_grant("the code is unknown, expired, or was issued to another client");
    if !code.starts_with(CODE_PREFIX) || !credentials::looks_issued(code) {
        return Err(unknown());
    }
    let hash = credentials::hash(code);
    let stored = onboarding::code(ctx.db, &hash)
        .await
        .map_err(|_| OAuthError::new(500, "server_error", "the code could not be read"))?
        .ok_or_else(unknown)?;
    let now = time::format_millis(ctx.now_ms);
    if stored.app != app || stored.expires.as_str() <= now.as_str() {
        return Err(unknown());
    }
    if stored.used {
        return Err(revoke_reused(ctx, &stored.grant_id).await);
    }
    if url_tenant.is_some_and(|t| t != stored.tenant) {
        return Err(invalid_grant(
            "the code was approved for another tenant than this token endpoint's",
        ));
    }
    if stored.redirect_uri.as_deref() != form_param(form, "redirect_uri") {
        return Err(invalid_grant(
            "'redirect_uri' must be the one of the authorization request",
        ));
    }
    let verifier = form_param(form, "code_verifier");
    let pkce_ok = match (&stored.challenge, verifier) {
        (None, None) => true,
        (Some(c), Some(v)) => pkce_matches(c, stored.method.as_deref().unwrap_or("plain"), v),
        _ => false,
    };
    if !pkce_ok {
        return Err(invalid_grant(
            "'code_verifier' does not match the code challenge",
        ));
    }
    issue_tokens(ctx, app, Redeem::Code(&hash)).await
}

/// `grant_type=refresh_token` (RFC 6749 §6): the token rotates.
async fn refresh<D: Db>(
    ctx: &Ctx<'_, D>,
    form: &[(String, String)],
    app: &str,
    url_tenant: Option<&str>,
) -> std::result::Result<Response, OAuthError> {
    let token = form_param(form, "refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("'refresh_token' is required"))?;
    let unknown = || {
        invalid_grant(
            "the refresh token is unknown, expired, revoked, or was issued to another client",
        )
    };
    if !token.starts_with(REFRESH_PREFIX) || !credentials::looks_issued(token) {
        return Err(unknown());
    }
    let hash = credentials::hash(token);
    let stored = onboarding::refresh_token(ctx.db, &hash)
        .await
        .map_err(|_| OAuthError::new(500, "server_error", "the refresh token could not be read"))?
        .ok_or_else(unknown)?;
    let now = time::format_millis(ctx.now_ms);
    if stored.app != app {
        return Err(unknown());
    }
    if stored.used && !stored.grant_revoked {
        return Err(revoke_reused(ctx, &stored.grant_id).await);
    }
    if stored.used || stored.grant_revoked || stored.expires.as_str() <= now.as_str() {
        return Err(unknown());
    }
    if url_tenant.is_some_and(|t| t != stored.tenant) {
        return Err(invalid_grant(
            "the refresh token belongs to another tenant than this token endpoint's",
        ));
    }
    issue_tokens(ctx, app, Redeem::Refresh(&hash)).await
}

/// What new tokens are issued for: a code's hash, or the hash of the refresh token rotated.
enum Redeem<'a> {
    Code(&'a str),
    Refresh(&'a str),
}

/// Generates an access and a refresh token, stores them for `what` (the store answers the
/// tenant, or `None` if the code or refresh token lost a race) and answers RFC 6749 §5.1.
async fn issue_tokens<D: Db>(
    ctx: &Ctx<'_, D>,
    app: &str,
    what: Redeem<'_>,
) -> std::result::Result<Response, OAuthError> {
    let (Some(access), Some(refresh), Some(id)) = (
        credentials::generate(Kind::Access),
        credentials::generate_prefixed(REFRESH_PREFIX),
        crate::service::ids::new_id(),
    ) else {
        return Err(OAuthError::new(
            500,
            "server_error",
            "could not generate a token",
        ));
    };
    let now = time::format_millis(ctx.now_ms);
    let access_expires = time::format_millis(ctx.now_ms + oauth::ACCESS_TOKEN_TTL_SECS * 1000);
    let refresh_expires = time::format_millis(ctx.now_ms + REFRESH_TTL_SECS * 1000);
    let (access_hash, refresh_hash) = (credentials::hash(&access), credentials::hash(&refresh));
    let label = format!("authorization_code grant of OAuth app {app}");
    let new = NewCredential {
        id: &id,
        kind: Kind::Access,
        hash: &access_hash,
        label: &label,
        created: &now,
        expires: Some(&access_expires),
    };
    let r = NewRefresh {
        hash: &refresh_hash,
        expires: &refresh_expires,
    };
    let stored = match what {
        Redeem::Code(hash) => onboarding::redeem_code(ctx.db, hash, app, &new, r).await,
        Redeem::Refresh(hash) => onboarding::rotate_refresh(ctx.db, hash, &new, r).await,
    };
    match stored {
        Ok(Some(_tenant)) => Ok(oauth::json_response(
            200,
            &json!({
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": oauth::ACCESS_TOKEN_TTL_SECS,
                "refresh_token": refresh,
            }),
        )),
        Ok(None) => Err(invalid_grant("the grant was used or revoked meanwhile")),
        Err(_) => Err(OAuthError::new(
            500,
            "server_error",
            "the tokens could not be issued",
        )),
    }
}

/// Whether `uri` may be registered as a redirect URI: absolute `https` (or `http` on a
/// loopback host, RFC 8252 §7.3), no fragment (RFC 6749 §3.1.2), and none of the characters
/// that would end a CSP source or an attribute, since it goes into both.
pub fn valid_redirect_uri(uri: &str) -> bool {
    let https = uri
        .strip_prefix("https://")
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| {
            uri.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
    (https || loopback)
        && uri.len() <= 2000
        && !uri
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "#\"'<>\\;,`*".contains(c))
}

fn app_json(a: &App, origin: &str) -> Value {
    json!({
        "clientId": a.id,
        "name": a.name,
        "redirectUris": a.redirect_uris,
        "created": a.created,
        "revoked": a.revoked,
        "status": if a.revoked.is_some() { "revoked" } else { "active" },
        "authorizationUrl": format!("{origin}{AUTHORIZE_PATH}"),
        "tokenUrl": format!("{origin}{TOKEN_PATH}"),
    })
}

fn redirect_uris(body: &Map<String, Value>) -> Result<Option<Vec<String>>> {
    let Some(v) = body.get("redirectUris") else {
        return Ok(None);
    };
    let list = v
        .as_array()
        .filter(|l| !l.is_empty() && l.len() <= 20)
        .ok_or_else(|| {
            ScimError::invalid_value("'redirectUris' must be an array of 1 to 20 URIs")
        })?;
    let mut out: Vec<String> = Vec::new();
    for u in list {
        let u = u
            .as_str()
            .filter(|u| valid_redirect_uri(u))
            .ok_or_else(|| ScimError::invalid_value(format!(
                "redirect URI {u} is not an absolute https URI (http only on a loopback host) without fragment"
            )))?;
        if !out.iter().any(|o| o == u) {
            out.push(u.to_string());
        }
    }
    Ok(Some(out))
}

/// The admin API's `/oauth-apps[/{id}]`: GET (list), POST `{name, redirectUris?}` (answers
/// `clientSecret`, once); `/{id}`: GET, PATCH `{redirectUris}`, DELETE (revokes the
/// application, its grants and their tokens).
pub async fn admin<D: Db>(
    ctx: &Ctx<'_, D>,
    req: &Request,
    body: &Map<String, Value>,
    tail: &[&str],
) -> Result<(u16, Value)> {
    let now = time::format_millis(ctx.now_ms);
    let origin = req.origin.as_str();
    let missing = |id: &str| ScimError::not_found(format!("no OAuth app '{id}'"));
    let only = |known: &[&str]| match body.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ScimError::invalid_value(format!("unknown field '{k}'"))),
        None => Ok(()),
    };
    match (req.method, tail) {
        (Method::Get, []) => {
            let apps = onboarding::list_apps(ctx.db).await?;
            let list: Vec<Value> = apps.iter().map(|a| app_json(a, origin)).collect();
            Ok((200, json!({ "oauthApps": list })))
        }
        (Method::Post, []) => {
            only(&["name", "redirectUris"])?;
            let name = body
                .get("name")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|n| {
                    !n.is_empty() && n.chars().count() <= 200 && !n.chars().any(char::is_control)
                })
                .ok_or_else(|| {
                    ScimError::invalid_value("'name' is required: up to 200 characters")
                })?;
            let uris = redirect_uris(body)?
                .unwrap_or_else(|| ENTRA_REDIRECT_URIS.iter().map(|u| u.to_string()).collect());
            let (Some(secret), Some(id)) = (
                credentials::generate_prefixed(APP_SECRET_PREFIX),
                crate::service::ids::new_id(),
            ) else {
                return Err(ScimError::internal());
            };
            let app =
                onboarding::insert_app(ctx.db, &id, name, &credentials::hash(&secret), &uris, &now)
                    .await?;
            let mut v = app_json(&app, origin);
            if let Some(o) = v.as_object_mut() {
                o.insert("clientSecret".into(), json!(secret));
                o.insert(
                    "notice".into(),
                    json!("the secret is shown only in this response; only its hash is stored"),
                );
            }
            Ok((201, v))
        }
        (Method::Get, [id]) => {
            let app = onboarding::app(ctx.db, id)
                .await?
                .ok_or_else(|| missing(id))?;
            Ok((200, app_json(&app, origin)))
        }
        (Method::Patch, [id]) => {
            only(&["redirectUris"])?;
            let uris = redirect_uris(body)?
                .ok_or_else(|| ScimError::invalid_value("'redirectUris' is required"))?;
            let app = onboarding::set_redirect_uris(ctx.db, id, &uris)
                .await?
                .ok_or_else(|| missing(id))?;
            Ok((200, app_json(&app, origin)))
        }
        (Method::Delete, [id]) => {
            let (app, tokens) = onboarding::revoke_app(ctx.db, id, &now)
                .await?
                .ok_or_else(|| missing(id))?;
            for (tenant, token) in tokens {
                ctx.tokens.forget(&tenant, &[token]);
            }
            Ok((200, app_json(&app, origin)))
        }
        (_, []) => Err(ScimError::method_not_allowed("allowed: GET, POST")),
        (_, [_]) => Err(ScimError::method_not_allowed("allowed: GET, PATCH, DELETE")),
        _ => Err(ScimError::not_found("no such oauth-apps resource")),
    }
}
