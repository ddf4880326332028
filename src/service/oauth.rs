//! The OAuth 2.0 client credentials grant (RFC 6749 §4.4) at `POST /t/{tenant}/oauth/token`,
//! as Microsoft Entra ID's "OAuth2 client credentials grant" authentication method and other
//! identity providers use it: the client sends its id and secret (HTTP Basic, RFC 6749
//! §2.3.1, or in the form body) and gets a short-lived bearer token for the tenant's SCIM API.
//! Errors are RFC 6749 §5.2 JSON bodies.
//!
//! The client id is the id of a `client` credential; its secret is stored hashed like every
//! token. Access tokens are stored hashed too (kind `access`, linked to their client), so they
//! are verified and cached exactly like bearer tokens and die with their client.

use crate::proto::time;
use crate::service::credentials::{self, Kind};
use crate::service::ctx::Ctx;
use crate::service::http::{parse_query, Method, Request, Response};
use crate::service::ratelimit::{self, Decision};
use crate::store::tenancy::NewCredential;
use crate::store::{Db, Store};
use serde_json::{json, Value};

/// Lifetime of an access token (capped at the client's own expiry).
pub const ACCESS_TOKEN_TTL_SECS: i64 = 3600;
/// Largest token request body read.
const MAX_FORM_BYTES: usize = 8 * 1024;

/// An RFC 6749 §5.2 error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub(crate) fn new(
        status: u16,
        error: &'static str,
        description: impl Into<String>,
    ) -> OAuthError {
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }
    pub(crate) fn invalid_request(d: impl Into<String>) -> OAuthError {
        OAuthError::new(400, "invalid_request", d)
    }
    /// 401 with `WWW-Authenticate` (required when the client tried HTTP Basic; allowed always).
    pub(crate) fn invalid_client(d: impl Into<String>) -> OAuthError {
        OAuthError::new(401, "invalid_client", d)
    }

    pub fn response(&self) -> Response {
        let mut r = json_response(
            self.status,
            &json!({"error": self.error, "error_description": self.description}),
        );
        if self.status == 401 {
            r = r.with_header("www-authenticate", "Basic realm=\"scim-oauth\"");
        }
        r
    }
}

pub(crate) fn json_response(status: u16, body: &Value) -> Response {
    let mut r = Response::json(status, body);
    r.headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
    r.with_header("content-type", "application/json;charset=UTF-8")
        .with_header("cache-control", "no-store")
        .with_header("pragma", "no-cache")
}

/// A parsed, well-formed token request: which client, with which secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub client_id: String,
    pub client_secret: String,
}

/// Validates the request's shape (RFC 6749 §3.2, §4.4.2, §2.3.1) without touching storage.
pub fn parse_token_request(req: &Request) -> Result<TokenRequest, OAuthError> {
    let form = parse_form(req)?;
    match form_param(&form, "grant_type") {
        None => return Err(OAuthError::invalid_request("'grant_type' is required")),
        Some("client_credentials") => {}
        Some(other) => {
            return Err(OAuthError::new(
                400,
                "unsupported_grant_type",
                format!("grant type '{other}' is not supported; use client_credentials"),
            ))
        }
    }
    let (client_id, client_secret) = client_auth(req, &form)?;
    Ok(TokenRequest {
        client_id,
        client_secret,
    })
}

/// The token request's form parameters (RFC 6749 §3.2): POST, form-encoded, bounded, UTF-8,
/// no parameter repeated.
pub(crate) fn parse_form(req: &Request) -> Result<Vec<(String, String)>, OAuthError> {
    if req.method != Method::Post {
        return Err(OAuthError::new(
            405,
            "invalid_request",
            "the token endpoint accepts POST only",
        ));
    }
    let media = req
        .header("content-type")
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    if media.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the request body must be application/x-www-form-urlencoded",
        ));
    }
    if req.body.len() > MAX_FORM_BYTES {
        return Err(OAuthError::invalid_request("the request body is too large"));
    }
    let body = std::str::from_utf8(&req.body)
        .map_err(|_| OAuthError::invalid_request("the request body is not UTF-8"))?;
    let form = parse_query(body);
    let mut seen: Vec<&str> = Vec::new();
    for (k, _) in &form {
        if seen.contains(&k.as_str()) {
            return Err(OAuthError::invalid_request(format!(
                "parameter '{k}' is repeated"
            )));
        }
        seen.push(k);
    }
    Ok(form)
}

/// A form parameter; an empty value counts as absent (RFC 6749 §3.1).
pub(crate) fn form_param<'f>(form: &'f [(String, String)], name: &str) -> Option<&'f str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The client's id and secret (RFC 6749 §2.3.1): HTTP Basic or the body, never both.
pub(crate) fn client_auth(
    req: &Request,
    form: &[(String, String)],
) -> Result<(String, String), OAuthError> {
    let basic = basic_credentials(req.header("authorization"))?;
    let in_body = (
        form_param(form, "client_id"),
        form_param(form, "client_secret"),
    );
    match (basic, in_body) {
        (Some(_), (_, Some(_))) => Err(OAuthError::invalid_request(
            "send the client credentials either with HTTP Basic or in the body, not both",
        )),
        (Some((id, secret)), (body_id, None)) => {
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request(
                    "'client_id' differs from the HTTP Basic user",
                ));
            }
            Ok((id, secret))
        }
        (None, (Some(id), Some(secret))) => Ok((id.to_string(), secret.to_string())),
        (None, _) => Err(OAuthError::invalid_client(
            "client authentication required: HTTP Basic, or client_id and client_secret in the body",
        )),
    }
}

/// HTTP Basic client credentials; RFC 6749 §2.3.1 form-encodes id and secret inside it.
fn basic_credentials(header: Option<&str>) -> Result<Option<(String, String)>, OAuthError> {
    let Some(h) = header.map(str::trim) else {
        return Ok(None);
    };
    let (scheme, rest) = h.split_once(char::is_whitespace).unwrap_or((h, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "the token endpoint accepts HTTP Basic client authentication only",
        ));
    }
    let decoded = credentials::base64_decode(rest)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| OAuthError::invalid_client("malformed HTTP Basic credentials"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| OAuthError::invalid_client("malformed HTTP Basic credentials"))?;
    let decode = |s: &str| crate::service::http::percent_decode(&s.replace('+', " "));
    Ok(Some((decode(id), decode(secret))))
}

/// The successful token response (RFC 6749 §5.1).
pub fn token_response(access_token: &str, expires_in: i64) -> Response {
    json_response(
        200,
        &json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": expires_in,
        }),
    )
}

/// `POST /t/{tenant}/oauth/token`.
///
/// Three budgets, so that nobody without a client's secret can lock that client out (tenant
/// ids are public): the attempts of one source for one client id, charged before D1 is asked
/// (a flood is refused without a round trip); the failures of one source, charged only after
/// a failure; and the client's own budget, charged only after its secret verified.
pub async fn handle<D: Db>(ctx: &Ctx<'_, D>, req: &Request, tenant: &str) -> Response {
    let parsed = match parse_token_request(req) {
        Ok(p) => p,
        Err(e) => return e.response(),
    };
    let source = ratelimit::source(req.header("cf-connecting-ip"));
    let well_formed = parsed.client_secret.starts_with(Kind::Client.prefix())
        && credentials::looks_issued(&parsed.client_secret)
        && looks_like_client_id(&parsed.client_id);
    if !well_formed {
        return failed(ctx, tenant, &source).await;
    }
    let attempt = ratelimit::oauth_attempt_key(tenant, &source, &parsed.client_id);
    if let Decision::Limited { retry_after_secs } =
        ctx.limiter.check_attempt(&attempt, ctx.now_ms).await
    {
        return too_many(
            retry_after_secs,
            "too many token requests for this client from here",
        );
    }
    let store = Store::new(ctx.db, tenant);
    let secret_hash = credentials::hash(&parsed.client_secret);
    let now = time::format_millis(ctx.now_ms);
    match store
        .client_is_valid(&parsed.client_id, &secret_hash, &now)
        .await
    {
        Ok(true) => {}
        Ok(false) => return failed(ctx, tenant, &source).await,
        Err(_) => return server_error("the client could not be verified"),
    }
    let budget = ratelimit::oauth_client_key(tenant, &parsed.client_id);
    if let Decision::Limited { retry_after_secs } = ctx.limiter.check(&budget, ctx.now_ms).await {
        return too_many(retry_after_secs, "too many token requests for this client");
    }
    issue(ctx, &store, &parsed.client_id, &secret_hash).await
}

/// Client ids are the lower-case UUIDs [`crate::service::ids::new_id`] makes; anything else names no
/// client and is refused without a database lookup.
pub(crate) fn looks_like_client_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => matches!(b, b'0'..=b'9' | b'a'..=b'f'),
        })
}

/// The answer to a failed client authentication: 401, or 429 once the source has failed
/// too often (which tells a flooding source to stop; it never affects a valid client).
async fn failed<D: Db>(ctx: &Ctx<'_, D>, tenant: &str, source: &str) -> Response {
    let key = ratelimit::oauth_failure_key(tenant, source);
    if let Decision::Limited { retry_after_secs } =
        ctx.limiter.check_attempt(&key, ctx.now_ms).await
    {
        return too_many(retry_after_secs, "too many failed token requests from here");
    }
    OAuthError::invalid_client("unknown client, wrong secret, or the client is revoked or expired")
        .response()
}

pub(crate) fn too_many(retry_after_secs: u32, description: &str) -> Response {
    OAuthError::new(429, "temporarily_unavailable", description)
        .response()
        .with_header("retry-after", retry_after_secs.to_string())
}

pub(crate) fn server_error(description: &str) -> Response {
    OAuthError::new(500, "server_error", description).response()
}

/// Stores and answers a new access token for a client whose secret verified. The insert checks
/// the client again, so a client revoked since the check gets nothing.
async fn issue<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    client_id: &str,
    secret_hash: &str,
) -> Response {
    let (Some(token), Some(id)) = (
        credentials::generate(Kind::Access),
        crate::service::ids::new_id(),
    ) else {
        return server_error("could not generate a token");
    };
    let now = time::format_millis(ctx.now_ms);
    let expires_ms = ctx.now_ms + ACCESS_TOKEN_TTL_SECS * 1000;
    let expires = time::format_millis(expires_ms);
    let hash = credentials::hash(&token);
    let new = NewCredential {
        id: &id,
        kind: Kind::Access,
        hash: &hash,
        label: "",
        created: &now,
        expires: Some(&expires),
    };
    match store.issue_access_token(client_id, secret_hash, &new).await {
        Ok(Some(issued)) => {
            let until = issued
                .expires
                .as_deref()
                .and_then(time::parse_rfc3339)
                .unwrap_or(expires_ms);
            token_response(&token, ((until - ctx.now_ms) / 1000).max(0))
        }
        Ok(None) => {
            OAuthError::invalid_client("the client was revoked or expired meanwhile").response()
        }
        Err(_) => server_error("the token could not be issued"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Request {
        Request::new(Method::Post, "/t/acme/oauth/token", "https://h")
            .with_header("content-type", "application/x-www-form-urlencoded")
            .with_body(body)
    }

    #[test]
    fn body_credentials_are_accepted() {
        let r = parse_token_request(&form(
            "grant_type=client_credentials&client_id=abc&client_secret=s%2Bx&scope=scim",
        ))
        .unwrap();
        assert_eq!(r.client_id, "abc");
        assert_eq!(r.client_secret, "s+x");
    }

    #[test]
    fn basic_credentials_are_accepted_and_form_decoded() {
        // base64("my%20id:se%3Acret")
        let r = parse_token_request(
            &form("grant_type=client_credentials")
                .with_header("authorization", "Basic bXklMjBpZDpzZSUzQWNyZXQ="),
        )
        .unwrap();
        assert_eq!(r.client_id, "my id");
        assert_eq!(r.client_secret, "se:cret");
    }

    #[test]
    fn rfc6749_errors() {
        let err = |req: Request| parse_token_request(&req).unwrap_err();
        assert_eq!(
            err(form("client_id=a&client_secret=b")).error,
            "invalid_request"
        );
        let e = err(form("grant_type=password&username=a&password=b"));
        assert_eq!((e.status, e.error), (400, "unsupported_grant_type"));
        let e = err(form("grant_type=client_credentials"));
        assert_eq!((e.status, e.error), (401, "invalid_client"));
        let e = err(form("grant_type=client_credentials&client_id=a"));
        assert_eq!(e.error, "invalid_client");
        let e = err(form(
            "grant_type=client_credentials&grant_type=client_credentials",
        ));
        assert_eq!(e.error, "invalid_request");
        let e = err(form("grant_type=client_credentials&client_secret=x")
            .with_header("authorization", "Basic YTpi"));
        assert_eq!(e.error, "invalid_request", "two authentication methods");
        let e = err(form("grant_type=client_credentials").with_header("authorization", "Bearer x"));
        assert_eq!(e.error, "invalid_client");
        let e = err(form("grant_type=client_credentials").with_header("authorization", "Basic !!"));
        assert_eq!(e.error, "invalid_client");
        let json = Request::new(Method::Post, "/t/a/oauth/token", "https://h")
            .with_header("content-type", "application/json")
            .with_body("{}");
        assert_eq!(err(json).error, "invalid_request");
        let get = Request::new(Method::Get, "/t/a/oauth/token", "https://h");
        assert_eq!(err(get).status, 405);
    }

    #[test]
    fn client_ids_are_uuids() {
        assert!(looks_like_client_id("0b6f1c52-9d0e-4c43-8f4f-8d1c1e2a7b10"));
        assert!(looks_like_client_id(
            &crate::service::ids::new_id().unwrap()
        ));
        assert!(!looks_like_client_id("nobody"));
        assert!(!looks_like_client_id(
            "0B6F1C52-9D0E-4C43-8F4F-8D1C1E2A7B10"
        ));
        assert!(!looks_like_client_id(
            "0b6f1c52-9d0e-4c43-8f4f-8d1c1e2a7b1g"
        ));
        assert!(!looks_like_client_id(
            "0b6f1c52x9d0e-4c43-8f4f-8d1c1e2a7b10"
        ));
        assert!(!looks_like_client_id(
            "0b6f1c52-9d0e-4c43-8f4f-8d1c1e2a7b100"
        ));
    }

    #[test]
    fn error_and_success_bodies() {
        let r = OAuthError::invalid_client("nope").response();
        assert_eq!(r.status, 401);
        assert!(r.header("www-authenticate").is_some());
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(
            r.header("content-type"),
            Some("application/json;charset=UTF-8")
        );
        assert_eq!(r.body_json()["error"], "invalid_client");
        assert_eq!(r.body_json()["error_description"], "nope");
        let ok = token_response("scim_at_x", 3600);
        assert_eq!(ok.status, 200);
        assert_eq!(ok.body_json()["token_type"], "Bearer");
        assert_eq!(ok.body_json()["expires_in"], 3600);
        assert_eq!(ok.header("pragma"), Some("no-cache"));
    }
}
