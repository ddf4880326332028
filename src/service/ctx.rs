//! What every handler receives besides its request: the database, the deployment's
//! settings, the clock, and the isolate's caches and limiter. It lives apart from the
//! handlers so that each of them (SCIM, admin, OAuth, console) depends on it, not on another.

use crate::store::Db;

/// Per-deployment settings, read from the Worker environment by the glue layer.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Accepted bearer tokens (current and, during a rotation, the next or previous one).
    /// They act for tenant `default`; tokens issued through the admin API live in D1.
    pub tokens: Vec<String>,
    /// The admin API's token (`ADMIN_TOKEN`); the admin API is disabled without it.
    pub admin_token: Option<String>,
    /// The secret list cursors are sealed with (`CURSOR_SECRET`). Without it, a random one is
    /// generated once per deployment and kept in D1 (see `cursor_key`).
    pub cursor_secret: Option<String>,
    /// Webhook URLs may be plain `http://` to a loopback host (the `WEBHOOK_ALLOW_LOOPBACK_HTTP`
    /// var, set by `scripts/dev.sh` for local receivers; never in a deployment).
    pub webhook_loopback_http: bool,
    /// The vendor's sign-in page for approving OAuth authorization requests
    /// (`VENDOR_SIGNIN_URL`; see `service::handoff`). Unset: only setup links approve.
    pub vendor_signin_url: Option<String>,
    /// The secret the vendor's sign-in signs its assertions with (`APPROVER_SECRET`).
    pub approver_secret: Option<String>,
}

/// Everything a request needs besides its own data.
pub struct Ctx<'a, D: Db> {
    pub db: &'a D,
    pub config: &'a Config,
    /// Wall-clock time of the request in ms since the epoch (taken once, by the caller).
    pub now_ms: i64,
    /// Issued tokens verified recently, in isolate memory (`credentials::isolate_cache()`).
    pub tokens: &'a crate::service::credentials::TokenCache,
    /// Per-tenant rate limiting (the Workers rate-limiting binding in production).
    pub limiter: &'a dyn crate::service::ratelimit::RateLimiter,
    /// Tenant profiles (settings and declared schemas) read recently, in isolate memory.
    pub profiles: &'a crate::service::profile::ProfileCache,
}

impl<'a, D: Db> Ctx<'a, D> {
    /// A context with the isolate's token cache and no rate limit.
    pub fn new(db: &'a D, config: &'a Config, now_ms: i64) -> Self {
        Ctx {
            db,
            config,
            now_ms,
            tokens: crate::service::credentials::isolate_cache(),
            limiter: &crate::service::ratelimit::Unlimited,
            profiles: crate::service::profile::isolate_cache(),
        }
    }
}

/// Response header carrying the request's random id (see `ids::request_id`).
pub const REQUEST_ID_HEADER: &str = "x-request-id";
