//! The vendor's own sign-in as the approver of an authorization request: for customers whose
//! IT admins already have an account in the vendor's app, so they need no setup link.
//!
//! With `VENDOR_SIGNIN_URL` and `APPROVER_SECRET` set, an authorization request without a
//! session is sent to the vendor's sign-in with `return_to` (this deployment's
//! `/oauth/vendor-return`) and a `nonce`, and the request itself is kept in a short-lived
//! cookie. After the admin signs in, the vendor redirects to `return_to` with
//! `assertion=<payload>.<signature>`: the payload is base64url JSON
//! `{"tenant", "sub", "aud", "exp", "nonce"}`, the signature base64url HMAC-SHA256 of the
//! payload's base64url text under `APPROVER_SECRET`. The worker checks the signature, that
//! `aud` is its `return_to`, that `exp` (seconds since the epoch) has not passed and is at
//! most [`MAX_ASSERTION_SECS`] ahead, and that `nonce` is the one in this browser's cookie
//! (so an assertion cannot be planted into another browser); then it starts a session for
//! that tenant and resumes the authorization request, whose consent page names the tenant.

use crate::service::credentials;
use crate::service::ctx::Ctx;
use crate::service::http::{form_encode, parse_query, with_query, Request, Response};
use crate::service::setup::{self, esc};
use crate::service::tenant::AUTHORIZE_PATH;
use crate::store::Db;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Where the vendor sends the admin back.
pub const RETURN_PATH: &str = "/oauth/vendor-return";
/// Longest an assertion may live.
pub const MAX_ASSERTION_SECS: i64 = 300;
const COOKIE: &str = "__Host-scim-handoff";
const COOKIE_SECS: i64 = 600;

/// The vendor hand-off, if configured: a redirect to the vendor's sign-in that keeps the
/// authorization request `params` in a cookie. `None` without configuration.
pub fn start<D: Db>(
    ctx: &Ctx<'_, D>,
    req: &Request,
    params: &[(String, String)],
) -> Option<Response> {
    let url = ctx.config.vendor_signin_url.as_deref()?;
    ctx.config.approver_secret.as_deref()?;
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).ok()?;
    let nonce = credentials::base64url(&b);
    let query: Vec<String> = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "csrf" | "decision"))
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect();
    let kept = credentials::base64url(query.join("&").as_bytes());
    let return_to = format!("{}{RETURN_PATH}", req.origin);
    let location = with_query(url, &[("return_to", &return_to), ("nonce", &nonce)]);
    Some(
        Response::empty(302)
            .with_header("location", location)
            .with_header(
                "set-cookie",
                format!("{COOKIE}={nonce}.{kept}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={COOKIE_SECS}"),
            )
            .with_header("cache-control", "no-store"),
    )
}

/// What a verified assertion vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    pub tenant: String,
    pub subject: String,
}

/// Verifies an assertion (see the module documentation); the error says which check failed.
pub fn verify(
    secret: &str,
    assertion: &str,
    audience: &str,
    nonce: &str,
    now_secs: i64,
) -> Result<Approver, &'static str> {
    let (payload, sig) = assertion.split_once('.').ok_or("malformed assertion")?;
    let sig = credentials::base64_decode(sig).ok_or("malformed signature")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| "no key")?;
    mac.update(payload.as_bytes());
    mac.verify_slice(&sig).map_err(|_| "bad signature")?;
    let json = credentials::base64_decode(payload).ok_or("malformed payload")?;
    let v: serde_json::Value = serde_json::from_slice(&json).map_err(|_| "malformed payload")?;
    let s = |k: &str| v.get(k).and_then(serde_json::Value::as_str);
    if s("aud") != Some(audience) {
        return Err("wrong audience");
    }
    let exp = v
        .get("exp")
        .and_then(serde_json::Value::as_i64)
        .ok_or("no expiry")?;
    if exp <= now_secs {
        return Err("expired");
    }
    if exp > now_secs + MAX_ASSERTION_SECS {
        return Err("expiry too far ahead");
    }
    let sent = s("nonce").unwrap_or("");
    if nonce.is_empty()
        || !crate::service::auth::constant_time_eq(sent.as_bytes(), nonce.as_bytes())
    {
        return Err("wrong nonce (the sign-in started in another browser?)");
    }
    let tenant = s("tenant")
        .filter(|t| crate::service::tenant::valid_id(t))
        .ok_or("bad tenant")?;
    let subject = s("sub")
        .filter(|x| !x.is_empty() && x.chars().count() <= 200 && !x.chars().any(char::is_control))
        .ok_or("bad subject")?;
    Ok(Approver {
        tenant: tenant.to_string(),
        subject: subject.to_string(),
    })
}

/// `GET /oauth/vendor-return?assertion=...`.
pub async fn finish<D: Db>(ctx: &Ctx<'_, D>, req: &Request) -> Response {
    let refuse = |why: &str| {
        setup::page(
            403,
            "Sign-in refused",
            &format!(
                "<h1>The sign-in could not be used</h1><p>{}. Start again from your identity \
                 provider's Authorize button.</p>",
                esc(why)
            ),
            "'none'",
        )
    };
    let Some(secret) = ctx.config.approver_secret.as_deref() else {
        return refuse("The vendor sign-in is not configured");
    };
    let (nonce, kept) = setup::cookie(req, COOKIE)
        .and_then(|c| c.split_once('.'))
        .unwrap_or(("", ""));
    let assertion = req.query_param("assertion").unwrap_or("");
    let audience = format!("{}{RETURN_PATH}", req.origin);
    let approver = match verify(secret, assertion, &audience, nonce, ctx.now_ms / 1000) {
        Ok(a) => a,
        Err(why) => return refuse(why),
    };
    let query = credentials::base64_decode(kept)
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    // Re-encoded from parsed pairs: nothing but a query of the authorization endpoint.
    let params = parse_query(&query);
    let resume = with_query(
        AUTHORIZE_PATH,
        &params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    match setup::start_vendor_session(ctx, &approver.tenant, &approver.subject).await {
        Ok(Some(cookie)) => Response::empty(303)
            .with_header("location", resume)
            .with_header("set-cookie", cookie)
            .with_header(
                "set-cookie",
                format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"),
            )
            .with_header("cache-control", "no-store"),
        Ok(None) => refuse("The sign-in names an organisation this service does not know"),
        Err(_) => refuse("The session could not be started"),
    }
}
