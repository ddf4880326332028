//! What every handler receives besides its request: the database, the deployment's
//! settings, the clock, and the isolate's caches and limiter. It lives apart from the
//! handlers so that each of them (SCIM, admin, OAuth, console) depends on it, not on another.

use crate::proto::error::Result;
use crate::service::http::{Request, Response};
use crate::store::Db;
use std::future::Future;
use std::pin::Pin;

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
    /// Tenants' directories live in their own Durable Objects (`SCIM_STORAGE =
    /// "durable-object"`) instead of D1; the admin API says so.
    pub durable_objects: bool,
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
    /// Where a tenant's directory lives when it is not in `db`: with `SCIM_STORAGE =
    /// "durable-object"`, the tenant's own object, which answers its SCIM requests
    /// (`service::handoff`). `None`: the directory is in `db`.
    pub forward: Option<&'a dyn Forward>,
    /// In a tenant's Durable Object: the settings this instance last wrote to its tenant
    /// row (`relay::adopt` skips rewriting them). `None` elsewhere.
    pub adopted: Option<&'a crate::service::adopted::Adopted>,
}

/// The boxed answer of a [`Forward`] (object-safe, no `Send`: one thread per isolate).
pub type Forwarded<'a> = Pin<Box<dyn Future<Output = Result<Response>> + 'a>>;

/// Hands an authenticated SCIM request to the store that holds `tenant`'s directory and
/// returns its answer: one hop per SCIM operation, whatever the operation costs there.
pub trait Forward {
    /// The whole answer (status, headers, body), for a caller that reads it.
    fn forward<'a>(&'a self, tenant: &'a str, req: Request) -> Forwarded<'a>;

    /// The answer for the client, which the service only hands on: the runtime may keep its
    /// body and headers (`Response::passed`, status set, no headers) instead of copying
    /// them into wasm and out again. An answer the service reads (`relay::STALE`) comes
    /// whole. By default the whole answer.
    fn relay<'a>(&'a self, tenant: &'a str, req: Request) -> Forwarded<'a> {
        self.forward(tenant, req)
    }
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
            forward: None,
            adopted: None,
        }
    }
}

/// Response header carrying the request's random id (see `ids::request_id`).
pub const REQUEST_ID_HEADER: &str = "x-request-id";
