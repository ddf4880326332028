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
//!
//! The object validates with the tenant's declared extension schemas from its own copy of
//! them (its `tenant_schemas` rows). The hop carries a digest of the declarations D1 holds
//! (32 hex digits, not the declarations: they can be tens of KB, on every request); an
//! object whose copy differs answers [`STALE`] without running anything, and the worker
//! sends it D1's declarations ([`declare`]) and the request again. An admin declaring or
//! removing a schema sends them at once, and the object checks its own data against them.
//!
//! The admin API's reads of a tenant's directory (its provisioning log and change feed,
//! tolerance counts, usage, the console's Users and Groups, the soft deletion policy's
//! tombstones, a poll stream's delivery log) and a tombstone's restore go the same way
//! ([`read`]): the worker checks the admin token and that the tenant exists in D1, then
//! hands the admin path itself to the object, which answers it with the same handlers
//! (`admin::handed`); the log's grants are D1's ([`fill_grants`]). The object purges its
//! own tombstones ([`purge`]).

use crate::proto::error::{Result, ScimError};
use crate::service::adopted::Mirrored;
use crate::service::ctx::{Ctx, Forward};
use crate::service::http::{Method, Request, Response};
use crate::service::profile::TenantProfile;
use crate::service::route::Route;
use crate::service::tenant::Principal;
use crate::store::schemas::Declaration;
use crate::store::tenancy::Quota;
use crate::store::tombstones::Policy;
use crate::store::{Db, Store, StoreError};
use serde_json::{json, Value};

/// Every header of the hop starts with this; the worker never forwards a client's.
const PREFIX: &str = "x-scim-edge-";
const TENANT: &str = "x-scim-edge-tenant";
const CREDENTIAL: &str = "x-scim-edge-credential";
const REQUEST_ID: &str = "x-scim-edge-request-id";
/// `strict=0|1; extensions=keep|reject; resources=<n>|none; bytes=<n>|none;
/// schemas=<digest>; deletion=hard|<days>; restore=0|1`: the tenant's settings as D1 holds them.
const SETTINGS: &str = "x-scim-edge-settings";
/// A poll of an RFC 8936 stream: the stream's row in D1, as JSON (`store::object::stream`).
const STREAM: &str = "x-scim-edge-stream";
/// With [`STREAM`], when the seal key comes from D1: its deployment secret.
const DEPLOYMENT_SECRET: &str = "x-scim-edge-deployment-secret";
/// On an object's answer: its copy of the declarations is not the one the hop named, and it
/// ran nothing.
pub const STALE: &str = "x-scim-edge-stale";

/// Whether `route` reads or writes the tenant's directory (and so goes to its object).
pub fn in_directory(route: &Route) -> bool {
    matches!(
        route,
        Route::Search(_)
            | Route::Events(_)
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
    pub quota: Quota,
    /// `TenantProfile::declared` of D1's declarations.
    pub declared: u128,
    /// For a poll of an RFC 8936 stream: its row in D1 and the deployment secret.
    pub stream: Option<(crate::store::Row, Option<String>)>,
    pub deletion: Policy,
}

fn limit(v: Option<i64>) -> String {
    v.map_or_else(|| "none".to_string(), |n| n.to_string())
}

impl Relayed {
    pub fn new(principal: Principal, request_id: &str, profile: &TenantProfile) -> Relayed {
        Relayed {
            principal,
            request_id: request_id.to_string(),
            strict: profile.strict,
            reject_undeclared: profile.schemas.reject_undeclared,
            quota: profile.quota,
            declared: profile.declared,
            stream: None,
            deletion: profile.deletion,
        }
    }

    /// `req` as the object receives it: the client's headers of the hop dropped, ours added.
    pub fn request(&self, req: &Request) -> Request {
        let mut out = req.clone();
        out.headers.retain(|(k, _)| !k.starts_with(PREFIX));
        let settings = format!(
            "strict={}; extensions={}; resources={}; bytes={}; schemas={:x}; deletion={}; restore={}",
            u8::from(self.strict),
            if self.reject_undeclared {
                "reject"
            } else {
                "keep"
            },
            limit(self.quota.resources),
            limit(self.quota.bytes),
            self.declared,
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
        if let Some((row, secret)) = &self.stream {
            out = out.with_header(STREAM, &Value::Object(row.clone()).to_string());
            if let Some(s) = secret {
                out = out.with_header(DEPLOYMENT_SECRET, s);
            }
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
        let limit = |name: &str| match setting(name)? {
            "none" => Some(None),
            n => n.parse::<i64>().ok().map(Some),
        };
        Some(Relayed {
            principal: Principal {
                tenant: req.header(TENANT)?.to_string(),
                credential_id: req.header(CREDENTIAL).map(str::to_string),
            },
            request_id: req.header(REQUEST_ID)?.to_string(),
            strict: setting("strict")? == "1",
            reject_undeclared: setting("extensions")? == "reject",
            quota: Quota {
                resources: limit("resources")?,
                bytes: limit("bytes")?,
            },
            declared: u128::from_str_radix(setting("schemas")?, 16).ok()?,
            stream: match req.header(STREAM) {
                Some(row) => Some((
                    serde_json::from_str(row).ok()?,
                    req.header(DEPLOYMENT_SECRET).map(str::to_string),
                )),
                None => None,
            },
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
/// An object whose copy of the declarations is stale gets D1's, then the request again.
/// `stream`: the request polls that RFC 8936 stream, whose row the object gets with it.
/// The answer goes to the client as the object gave it (`Forward::relay`): nothing here
/// reads its body.
pub async fn forward<D: Db>(
    ctx: &Ctx<'_, D>,
    to: &dyn Forward,
    req: &Request,
    principal: Principal,
    request_id: &str,
    stream: Option<&str>,
) -> Result<Response> {
    let hop = Hop {
        principal,
        request_id,
        stream,
        whole: false,
    };
    hand(ctx, to, req, hop).await
}

/// How [`hand`] relays one request.
struct Hop<'r> {
    principal: Principal,
    request_id: &'r str,
    stream: Option<&'r str>,
    /// The caller reads the answer (`Forward::forward`), rather than handing it on.
    whole: bool,
}

/// [`forward`], with the answer whole or handed on as `hop` says.
async fn hand<D: Db>(
    ctx: &Ctx<'_, D>,
    to: &dyn Forward,
    req: &Request,
    hop: Hop<'_>,
) -> Result<Response> {
    let store = Store::new(ctx.db, hop.principal.tenant.clone());
    let profile = crate::service::profile::load(ctx.profiles, &store, ctx.now_ms).await?;
    let mut relayed = Relayed::new(hop.principal, hop.request_id, &profile);
    if let Some(id) = hop.stream {
        relayed.stream = Some(poll_stream(ctx, store.tenant(), id).await?);
    }
    let resp = send(to, store.tenant(), relayed.request(req), hop.whole).await?;
    if resp.header(STALE).is_none() {
        return Ok(resp);
    }
    // D1's declarations, read now (the cached digest may be the stale one), reach the object
    // before the request runs again.
    let profile = declare(ctx, to, &store, None).await?.1;
    let relayed = Relayed {
        stream: relayed.stream,
        ..Relayed::new(relayed.principal, hop.request_id, &profile)
    };
    let resp = send(to, store.tenant(), relayed.request(req), hop.whole).await?;
    if resp.header(STALE).is_some() {
        let mut e = ScimError::new(503, None, "the tenant's schemas changed meanwhile; retry");
        e.cause = Some("the object's declarations were still stale after an update".into());
        return Err(e);
    }
    Ok(resp)
}

/// One hop: the whole answer for a caller that reads it, else one to hand on.
async fn send(to: &dyn Forward, tenant: &str, req: Request, whole: bool) -> Result<Response> {
    if whole {
        to.forward(tenant, req).await
    } else {
        to.relay(tenant, req).await
    }
}

/// Hands an admin request about `tenant`'s directory to its object (the worker checked the
/// admin token); answers 404 for a tenant D1 does not have, without creating its object.
pub async fn read<D: Db>(
    ctx: &Ctx<'_, D>,
    to: &dyn Forward,
    tenant: &str,
    req: &Request,
) -> Result<Response> {
    let store = Store::new(ctx.db, tenant);
    if store.tenant_record().await?.is_none() {
        return Err(crate::service::admin_json::no_tenant(&store));
    }
    let principal = Principal {
        tenant: tenant.to_string(),
        credential_id: None,
    };
    let request_id = crate::service::ids::request_id();
    let hop = Hop {
        principal,
        request_id: &request_id,
        stream: None,
        // Its callers read the answer (`read_json`, the log's grants, a move's pages).
        whole: true,
    };
    hand(ctx, to, req, hop).await
}

/// The D1 row of the stream a poll names and the deployment secret its keys are sealed
/// with (when not `CURSOR_SECRET`): the object serves the poll from its own change feed, its
/// copy of the stream's row and its own delivery log (`set::poll`, unchanged).
async fn poll_stream<D: Db>(
    ctx: &Ctx<'_, D>,
    tenant: &str,
    id: &str,
) -> Result<(crate::store::Row, Option<String>)> {
    use crate::service::webhooks::{crypto, set};
    let fresh = set::fresh_deploy(ctx.config)?;
    let from_d1 = fresh
        .as_deref()
        .map(|f| (crypto::DEPLOYMENT_SECRET_NAME, f));
    crate::store::object::stream(ctx.db, tenant, id, from_d1)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no security event stream '{id}'")))
}

/// [`read`] of an admin path (`/admin/api/tenants/{tenant}/…`) that answers JSON, for a
/// caller that uses the value (usage in the tenant view, the setup page's log).
pub async fn read_json<D: Db>(
    ctx: &Ctx<'_, D>,
    to: &dyn Forward,
    tenant: &str,
    origin: &str,
    path_and_query: &str,
) -> Result<Value> {
    let path = format!("/admin/api/tenants/{tenant}/{path_and_query}");
    let resp = read(ctx, to, tenant, &Request::new(Method::Get, &path, origin)).await?;
    answer(resp)
}

/// Fills in the `grant` of each event of `page` (an object's page of `tenant`'s provisioning
/// log) from D1: the object has the events and their credential ids, D1 the credentials, and
/// so which OAuth grant each came from. One D1 round trip, only when the page names a
/// credential; whether it did.
pub async fn fill_grants<D: Db>(ctx: &Ctx<'_, D>, tenant: &str, page: &mut Value) -> Result<bool> {
    let Some(events) = page.get_mut("events").and_then(Value::as_array_mut) else {
        return Ok(false);
    };
    let credential = |e: &Value| {
        e.get("credential")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut ids: Vec<String> = events.iter().filter_map(credential).collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(false);
    }
    let grants = crate::store::events::grants(ctx.db, tenant, &ids).await?;
    for e in events.iter_mut() {
        let grant = credential(e).and_then(|c| grants.get(&c).cloned());
        if let (Some(g), Some(o)) = (grant, e.as_object_mut()) {
            o.insert("grant".into(), Value::String(g));
        }
    }
    Ok(true)
}

/// The JSON of an object's answer to an internal call, or its error.
pub fn answer(resp: Response) -> Result<Value> {
    let body = resp.body_json();
    if resp.status == 200 {
        return Ok(body);
    }
    let detail = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("the tenant's object failed");
    let mut e = ScimError::new(resp.status, None, detail);
    if resp.status >= 500 {
        e = ScimError::internal();
        e.cause = Some(format!(
            "the tenant's object answered {}: {body}",
            resp.status
        ));
    }
    Err(e)
}

/// One declaration as it crosses the hop: the stored text, so that the object's copy has
/// the digest D1's has.
fn declaration_json(d: &Declaration) -> Value {
    json!({"id": d.id, "resourceType": d.rt.name(), "required": d.required,
        "document": d.document, "created": d.created, "modified": d.modified})
}

/// Sends D1's declarations of `store`'s tenant to its object, which replaces its copy and
/// rebuilds the unique values of what changed; with `check`, the URN just declared, it also
/// answers how its stored data fits that declaration (`declarations::mirror`). Returns that
/// report and the profile D1 holds now (also cached).
pub async fn declare<D: Db>(
    ctx: &Ctx<'_, D>,
    to: &dyn Forward,
    store: &Store<'_, D>,
    check: Option<&str>,
) -> Result<(Value, TenantProfile)> {
    let stored = store.profile().await?;
    crate::service::profile::remember(ctx.profiles, store.tenant(), &stored, ctx.now_ms);
    let profile = crate::service::profile::of(store.tenant(), &stored);
    let all: Vec<Value> = stored.declarations.iter().map(declaration_json).collect();
    let body = json!({"declarations": all, "check": check});
    let principal = Principal {
        tenant: store.tenant().to_string(),
        credential_id: None,
    };
    let path = format!("/admin/api/tenants/{}/schemas", store.tenant());
    let req = Request::new(Method::Post, &path, "https://object.invalid")
        .with_header("content-type", "application/json")
        .with_body(body.to_string());
    let relayed = Relayed::new(principal, &crate::service::ids::request_id(), &profile);
    let resp = to.forward(store.tenant(), relayed.request(&req)).await?;
    Ok((answer(resp)?, profile))
}

/// Reads a declaration the worker sent (the inverse of [`declaration_json`]).
pub fn declaration_of(v: &Value) -> Option<Declaration> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Some(Declaration {
        id: text("id")?,
        rt: crate::proto::schema::ResourceType::from_name(v.get("resourceType")?.as_str()?)?,
        required: v.get("required")?.as_bool()?,
        document: text("document")?,
        created: text("created")?,
        modified: text("modified")?,
    })
}

/// The object's side, before the handlers run: makes the object's tenant row say what the
/// worker read from D1 and caches the profile to validate with (the object's own copy of the
/// declarations). `false`: that copy is not the one the worker named (and `check` is set):
/// nothing may run until the worker sends the current one. Costs no transaction when this
/// instance already wrote the same settings ([`Adopted`]).
pub async fn adopt<D: Db>(ctx: &Ctx<'_, D>, h: &Relayed, check: bool) -> Result<bool> {
    let tenant = h.principal.tenant.as_str();
    let settings = mirrored(h);
    if h.stream.is_none() && ctx.adopted.is_some_and(|a| a.holds(&settings)) {
        // This instance wrote these settings itself and its cached profile (from its own
        // copy) has the digest the hop names: the transaction would change and tell nothing.
        if let Some(p) = ctx.profiles.fresh(tenant, ctx.now_ms) {
            if p.declared == h.declared {
                return Ok(true);
            }
        }
    }
    let mirror = crate::store::object::mirror_tenant_stmt(
        tenant,
        h.strict,
        h.reject_undeclared,
        h.quota,
        h.deletion,
    );
    let read = crate::store::schemas::profile_stmt("?", tenant.into());
    let mut stmts = vec![mirror, read];
    if let Some((row, secret)) = &h.stream {
        let name = crate::service::webhooks::crypto::DEPLOYMENT_SECRET_NAME;
        let secret = secret.as_deref().map(|s| (name, s));
        stmts.extend(crate::store::object::mirror_stream_stmts(row, secret));
    }
    let rows = ctx.db.batch(stmts).await.map_err(StoreError::from)?;
    let stored = crate::store::schemas::profile_of(rows.get(1).map_or(&[][..], Vec::as_slice))?;
    let profile = crate::service::profile::of(tenant, &stored);
    if check && profile.declared != h.declared {
        return Ok(false);
    }
    crate::service::profile::remember(ctx.profiles, tenant, &stored, ctx.now_ms);
    if let Some(a) = ctx.adopted {
        a.remember(settings);
    }
    Ok(true)
}

/// The settings [`adopt`] writes to an object's tenant row, as the hop states them.
fn mirrored(h: &Relayed) -> Mirrored {
    Mirrored {
        tenant: h.principal.tenant.clone(),
        strict: h.strict,
        reject_undeclared: h.reject_undeclared,
        quota: h.quota,
        deletion: h.deletion,
        declared: h.declared,
    }
}

/// The object's purge of the tombstones past its tenant's `deletion.days`, each with a
/// `purge` event in the object's log (`tombstones::purge_stmts`, what the D1 backend's daily
/// cron runs over D1: the cron cannot reach every object). The object calls it on its first
/// request after it starts and then daily (`worker::durable`), before the request runs. Its
/// one batch first makes the object's tenant row say the policy the worker read from D1 for
/// `req`: the row may be days old, and a retention the admin lengthened since must hold.
/// `false`, and nothing run, for a request that did not come through the worker's relay.
pub async fn purge<D: Db>(ctx: &Ctx<'_, D>, req: &Request) -> Result<bool> {
    let Some(h) = Relayed::of(req) else {
        return Ok(false);
    };
    let mut stmts = vec![crate::store::object::mirror_tenant_stmt(
        &h.principal.tenant,
        h.strict,
        h.reject_undeclared,
        h.quota,
        h.deletion,
    )];
    let now = crate::proto::time::format_millis(ctx.now_ms);
    stmts.extend(crate::store::tombstones::purge_stmts(&now));
    ctx.db.batch(stmts).await.map_err(StoreError::from)?;
    Ok(true)
}

/// What an object answers when its declarations are stale.
pub fn stale() -> Response {
    Response::empty(409).with_header(STALE, "schemas")
}
