//! The hop from the worker to a tenant's own Durable Object (`SCIM_STORAGE =
//! "durable-object"`): one hop per SCIM operation, after which every statement the operation
//! needs runs where the tenant's SQLite lives.
//!
//! The worker keeps what is the control plane's: it authenticates the token (D1 and the
//! isolate's cache), applies the rate limit and the body limit, refuses a path or method that
//! names nothing, and reads the tenant's settings (the profile cache). Discovery and the
//! vendor-defined `/Entitlements` and `/Roles` are answered by the worker too: nothing in them
//! is the tenant's directory. The directory's routes are handed on ([`in_directory`]) with
//! who was authenticated and the settings in headers that only the worker sets: it drops any
//! a client sent ([`Relayed::request`]), and an object is reachable only through its binding.
//! The object answers them with the same handlers over its own database
//! (`service::handle_handed`).

use crate::proto::error::{Result, ScimError};
use crate::service::ctx::{Ctx, Forward};
use crate::service::http::{Request, Response};
use crate::service::route::Route;
use crate::service::tenant::Principal;
use crate::store::schemas::Profile;
use crate::store::tombstones::Policy;
use crate::store::{Db, Store, StoreError};

/// Every header of the hop starts with this; the worker never forwards a client's.
const PREFIX: &str = "x-scim-edge-";
const TENANT: &str = "x-scim-edge-tenant";
const CREDENTIAL: &str = "x-scim-edge-credential";
const REQUEST_ID: &str = "x-scim-edge-request-id";
/// `strict=0|1; extensions=keep|reject; deletion=hard|<days>; restore=0|1`: the tenant's
/// settings as D1 holds them.
const SETTINGS: &str = "x-scim-edge-settings";

/// Whether `route` reads or writes the tenant's directory (and so goes to its object).
pub fn in_directory(route: &Route) -> bool {
    matches!(
        route,
        Route::Search(_)
            | Route::List(_)
            | Route::Create(_)
            | Route::Get(..)
            | Route::Replace(..)
            | Route::Patch(..)
            | Route::Delete(..)
    )
}

/// What the worker established about a request before handing it on.
#[derive(Debug, Clone, PartialEq)]
pub struct Relayed {
    pub principal: Principal,
    pub request_id: String,
    pub strict: bool,
    pub reject_undeclared: bool,
    pub deletion: Policy,
}

impl Relayed {
    /// `req` as the object receives it: the client's headers of the hop dropped, ours added.
    pub fn request(&self, req: &Request) -> Request {
        let mut out = req.clone();
        out.headers.retain(|(k, _)| !k.starts_with(PREFIX));
        let settings = format!(
            "strict={}; extensions={}; deletion={}; restore={}",
            u8::from(self.strict),
            if self.reject_undeclared {
                "reject"
            } else {
                "keep"
            },
            self.deletion
                .days
                .map_or_else(|| "hard".to_string(), |d| d.to_string()),
            u8::from(self.deletion.restore_on_create),
        );
        out = out
            .with_header(TENANT, &self.principal.tenant)
            .with_header(REQUEST_ID, &self.request_id)
            .with_header(SETTINGS, &settings);
        if let Some(c) = &self.principal.credential_id {
            out = out.with_header(CREDENTIAL, c);
        }
        out
    }

    /// What the worker established, read back in the object; `None` if it is not all there.
    pub fn of(req: &Request) -> Option<Relayed> {
        let settings = req.header(SETTINGS)?;
        let setting = |name: &str| {
            settings
                .split(';')
                .filter_map(|kv| kv.trim().split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
        };
        Some(Relayed {
            principal: Principal {
                tenant: req.header(TENANT)?.to_string(),
                credential_id: req.header(CREDENTIAL).map(str::to_string),
            },
            request_id: req.header(REQUEST_ID)?.to_string(),
            strict: setting("strict")? == "1",
            reject_undeclared: setting("extensions")? == "reject",
            deletion: Policy {
                days: match setting("deletion")? {
                    "hard" => None,
                    days => Some(days.parse().ok()?),
                },
                restore_on_create: setting("restore")? == "1",
            },
        })
    }
}

/// The worker's side: reads the tenant's settings (cached) and hands the request to `to`.
pub async fn forward<D: Db>(
    ctx: &Ctx<'_, D>,
    to: &dyn Forward,
    req: &Request,
    principal: Principal,
    request_id: &str,
) -> Result<Response> {
    let store = Store::new(ctx.db, principal.tenant.clone());
    let profile = crate::service::profile::load(ctx.profiles, &store, ctx.now_ms).await?;
    if !profile.schemas.declared().is_empty() {
        // Refused rather than served unvalidated: the object does not hold the declarations.
        return Err(ScimError::not_implemented(
            "this tenant declares extension schemas, which the durable-object storage backend \
             does not serve yet; use SCIM_STORAGE = \"d1\" for it",
        ));
    }
    let relayed = Relayed {
        principal,
        request_id: request_id.to_string(),
        strict: profile.strict,
        reject_undeclared: profile.schemas.reject_undeclared,
        deletion: profile.deletion,
    };
    to.forward(&relayed.principal.tenant, relayed.request(req))
        .await
}

/// The object's side, before the handlers run: makes the object's tenant row say what the
/// worker read from D1, and validates with those settings without reading them again.
pub async fn adopt<D: Db>(ctx: &Ctx<'_, D>, h: &Relayed) -> Result<()> {
    let tenant = h.principal.tenant.as_str();
    let mirror =
        crate::store::object::mirror_tenant_stmt(tenant, h.strict, h.reject_undeclared, h.deletion);
    ctx.db.batch(vec![mirror]).await.map_err(StoreError::from)?;
    let profile = Profile {
        strict: h.strict,
        reject_undeclared: h.reject_undeclared,
        deletion: h.deletion,
        declarations: Vec::new(),
    };
    crate::service::profile::remember(ctx.profiles, tenant, &profile, ctx.now_ms);
    Ok(())
}
