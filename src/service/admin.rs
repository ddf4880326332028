//! The admin API under `/admin/api`: tenants and their credentials, for the SaaS vendor's own
//! console or the `scripts/admin.mjs` CLI. JSON in and out; errors are
//! `{"error": "<code>", "message": "<what went wrong>"}`. Guarded by the `ADMIN_TOKEN` secret
//! alone: SCIM tokens are refused here, and the admin token is refused by the SCIM API.
//!
//! | Route | Methods |
//! |---|---|
//! | `/tenants` | GET (list), POST `{id, name?, strictPatch?, quota?}` |
//! | `/tenants/{t}` | GET (with `usage`), PATCH `{name?, strictPatch?, extensions?: "keep"\|"reject", quota?, deletion?}` |
//! | `/tenants/{t}/tokens` | GET (list, no secrets), POST `{type?: "bearer"\|"oauth_client", label?, expiresIn?\|expiresAt?}` |
//! | `/tenants/{t}/tokens/{id}` | GET, DELETE (revoke; `?chain=true`: with its successors) |
//! | `/tenants/{t}/tokens/{id}/rotate` | POST `{overlapSeconds?, label?, expiresIn?\|expiresAt?}` |
//! | `/tenants/{t}/Users[/{id}]`, `/tenants/{t}/Groups[/{id}]` | GET: the SCIM list/get as the tenant (read-only, for the console) |
//! | `/tenants/{t}/setup-links[/{id}]` | GET, POST `{label?, expiresIn?}` (answers the link's `url` once); `/{id}`: DELETE (revoke, ending its session) — src/service/setup.rs |
//! | `/oauth-apps[/{id}]` | the deployment's OAuth apps for the authorization code grant: GET, POST `{name, redirectUris?}` (answers `clientSecret` once); `/{id}`: GET, PATCH `{redirectUris}`, DELETE (revokes its grants and tokens) — src/service/authorize.rs |
//! | `/tenants/{t}/tolerances` | GET `{tolerances: [{name, count, lastSeen}]}` |
//! | `/tenants/{t}/schemas` | GET: the tenant's declared extension schemas |
//! | `/tenants/{t}/schemas/{urn}` | GET, PUT `{resourceType, required?, schema}` (declare; answers with a check of the data already stored under the URN), DELETE (stored data stays, undeclared again) |
//! | `/tenants/{t}/entitlements[/{id}]`, `/tenants/{t}/roles[/{id}]` | Okta's entitlement and role values: GET, POST `{id?, displayName, type?, description?}`; `/{id}`: GET, PATCH, DELETE (src/service/entitlements.rs) |
//! | `/tenants/{t}/tombstones[/{id}/restore]` | the soft deletion policy's tombstones: GET (list), POST `…/restore` (src/service/deletion.rs) |
//! | `/tenants/{t}/webhooks[/…]` | webhook endpoints and their delivery log (`service::webhooks`) |
//! | `/tenants/{t}/export` | GET `?after=&limit=&credentials=`: the tenant as NDJSON pages (freezes its writes); DELETE: end the freeze (`service::moving`) |
//! | `/tenants/{t}/import` | POST `?line=` an NDJSON chunk; GET: where it stands; DELETE: undo it (`service::moving`) |
//!
//! `quota` is `{"resources"?: n | null, "bytes"?: n | null}`: the most resources and bytes of
//! resource data the tenant may store (`null`: unlimited; a limit not named keeps its value,
//! by default 1,000,000 resources and 1 GiB). A SCIM write past a limit answers 507 and stores
//! nothing.
//!
//! A secret (`token`, or `clientSecret` of an OAuth client) is in the response that issues it
//! and nowhere else, ever: only its SHA-256 is stored.
//!
//! Revoking a credential also revokes its predecessors (the credentials it replaced by
//! rotation, still working during their overlap) and every access token any of them
//! obtained; `?chain=true` revokes its successors too, i.e. the whole rotation chain. The
//! answer lists the other credentials it revoked in `alsoRevoked`. An OAuth client's access
//! tokens end with it: at its revocation, and at the end of its overlap when it is rotated.

use crate::proto::entitlement;
use crate::proto::error::{Result, ScimError};
use crate::proto::time;
use crate::service::admin_json::{
    body, json_response, no_tenant, not_allowed, opt_bool, opt_string, reject_unknown,
};
use crate::service::auth;
use crate::service::credentials::{self, Kind};
use crate::service::ctx::{Config, Ctx};
use crate::service::http::{path_segments, Method, Request, Response};
use crate::service::tenant::{self, OAUTH_TOKEN_PATH, SCIM_PATH, TENANT_PREFIX};
use crate::store::tenancy::{self, CredentialRecord, NewCredential, TenantChange, TenantRecord};
use crate::store::{Db, Store};
use serde_json::{json, Map, Value};

/// Default overlap of a rotation: old and new both work for a day.
pub const DEFAULT_OVERLAP_SECS: i64 = 86_400;
/// Longest rotation overlap (90 days) and longest lifetime (`expiresIn`, 10 years) accepted.
const MAX_OVERLAP_SECS: i64 = 90 * 86_400;
const MAX_LIFETIME_SECS: i64 = 10 * 365 * 86_400;
const MAX_LABEL_CHARS: usize = 200;

pub async fn handle<D: Db>(ctx: &Ctx<'_, D>, req: &Request, rest: &str) -> Response {
    match route(ctx, req, rest).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

/// Admin errors: the status, a stable code and the message.
pub fn error_response(e: &ScimError) -> Response {
    let mut r = crate::service::admin_json::error_json(e);
    if e.status == 401 {
        r = r.with_header("www-authenticate", "Bearer realm=\"scim-admin\"");
    }
    r
}

fn authenticate(ctx: &Ctx<'_, impl Db>, req: &Request) -> Result<()> {
    let Some(admin) = ctx.config.admin_token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(ScimError::new(
            403,
            None,
            "the admin API is disabled: set the ADMIN_TOKEN secret to enable it",
        ));
    };
    let presented = auth::bearer(req.header("authorization"))
        .ok_or_else(|| ScimError::unauthorized("send 'Authorization: Bearer <ADMIN_TOKEN>'"))?;
    if auth::constant_time_eq(presented.as_bytes(), admin.as_bytes()) {
        Ok(())
    } else {
        Err(ScimError::unauthorized(
            "not the admin token (SCIM tokens are not accepted by the admin API)",
        ))
    }
}

async fn route<D: Db>(ctx: &Ctx<'_, D>, req: &Request, rest: &str) -> Result<Response> {
    authenticate(ctx, req)?;
    routed(ctx, req, rest).await
}

/// The admin API for a caller known to be the admin: by its token, or the worker handing a
/// read of a tenant's directory to its object ([`handed`]).
async fn routed<D: Db>(ctx: &Ctx<'_, D>, req: &Request, rest: &str) -> Result<Response> {
    let segments = path_segments(rest);
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let m = req.method;
    if let (
        Some(to),
        ["tenants", t, "Users" | "Groups" | "tolerances" | "events" | "tombstones", ..],
    ) = (ctx.forward, segs.as_slice())
    {
        // The tenant's directory (its log and its tombstones too) is in its object.
        let store = tenant_store(ctx, t)?;
        let resp = crate::service::relay::read(ctx, to, store.tenant(), req).await?;
        return match segs.as_slice() {
            [_, _, "events"] => with_grants(ctx, store.tenant(), resp).await,
            _ => Ok(resp),
        };
    }
    match segs.as_slice() {
        ["tenants"] => match m {
            Method::Get => list_tenants(ctx, req).await,
            Method::Post => create_tenant(ctx, req).await,
            _ => Err(not_allowed("GET, POST")),
        },
        ["tenants", t] => {
            let store = tenant_store(ctx, t)?;
            match m {
                Method::Get => get_tenant(ctx, &store, req).await,
                Method::Patch => patch_tenant(ctx, &store, req).await,
                _ => Err(not_allowed("GET, PATCH")),
            }
        }
        ["tenants", t, "tokens"] => {
            let store = tenant_store(ctx, t)?;
            match m {
                Method::Get => list_tokens(ctx, &store).await,
                Method::Post => issue_token(ctx, &store, req).await,
                _ => Err(not_allowed("GET, POST")),
            }
        }
        ["tenants", t, "tokens", id] => {
            let store = tenant_store(ctx, t)?;
            match m {
                Method::Get => get_token(ctx, &store, id).await,
                Method::Delete => revoke_token(ctx, &store, req, id).await,
                _ => Err(not_allowed("GET, DELETE")),
            }
        }
        ["tenants", t, "tokens", id, "rotate"] => {
            let store = tenant_store(ctx, t)?;
            match m {
                Method::Post => rotate_token(ctx, &store, req, id).await,
                _ => Err(not_allowed("POST")),
            }
        }
        // The console's read-only views of a tenant (src/service/console.rs).
        ["tenants", t, view @ ("Users" | "Groups" | "tolerances"), tail @ ..] => {
            let store = tenant_store(ctx, t)?;
            match m {
                Method::Get => crate::service::console::api(ctx, &store, req, view, tail).await,
                _ => Err(not_allowed("GET")),
            }
        }
        // Okta entitlement and role values (src/service/entitlements.rs).
        ["tenants", t, list @ ("entitlements" | "roles"), tail @ ..] => {
            let store = tenant_store(ctx, t)?;
            entitlement_values(ctx, &store, req, list, tail).await
        }
        // Webhook endpoints and their delivery log (src/service/webhooks).
        ["tenants", t, "webhooks", tail @ ..] => {
            webhooks(ctx, &tenant_store(ctx, t)?, req, tail).await
        }
        // Declared extension schemas (src/service/declarations.rs).
        ["tenants", t, "schemas", tail @ ..] => {
            let store = tenant_store(ctx, t)?;
            crate::service::declarations::route(ctx, &store, req, tail).await
        }
        // Moving the tenant to another deployment or backend (src/service/moving.rs).
        ["tenants", t, what @ ("export" | "import")] => {
            let store = tenant_store(ctx, t)?;
            crate::service::moving::route(ctx, &store, req, what).await
        }
        // Tombstones of the soft deletion policy (src/service/deletion.rs).
        ["tenants", t, "tombstones", tail @ ..] => {
            let store = tenant_store(ctx, t)?;
            crate::service::deletion::route(ctx, &store, req, tail).await
        }
        // The provisioning log and change feed (src/store/events.rs).
        ["tenants", t, "events", tail @ ..] => {
            let store = tenant_store(ctx, t)?;
            events(ctx, &store, req, tail).await
        }
        _ => onboarding(ctx, req, segs.as_slice()).await,
    }
}

/// `/tenants/{t}/webhooks/…` (src/service/webhooks). A poll stream's acknowledgements are
/// kept by the object that serves its polls, so its delivery log is read there; push
/// deliveries are logged in D1 on either backend.
async fn webhooks<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
    tail: &[&str],
) -> Result<Response> {
    if let (Some(to), [id, "deliveries"]) = (ctx.forward, tail) {
        if crate::service::webhooks::is_stream(ctx, store.tenant(), id).await? {
            return crate::service::relay::read(ctx, to, store.tenant(), req).await;
        }
    }
    crate::service::webhooks::admin(ctx, store.tenant(), req, tail).await
}

/// Whether an admin path handed to a tenant's object brings it the declarations
/// (`relay::declare`).
pub fn declares(rest: &str) -> bool {
    let segments = path_segments(rest);
    matches!(segments.as_slice(), [a, _, b] if a.as_str() == "tenants" && b.as_str() == "schemas")
}

/// The admin API's reads of a tenant's directory, and its tombstones' restores, answered by
/// the tenant's Durable Object for the worker, which checked the admin token and handed it
/// the path (`relay::read`): the same handlers over the object's database, and a poll
/// stream's delivery log. Also the object's internal calls: `usage` (for the tenant view),
/// `schemas` (D1's declarations, `relay::declare`), and a move's `export/…` and `import/…`
/// store calls (`moving_hop::object`), which only this path reaches: the worker's own admin
/// routes know `export` and `import` without a fourth segment.
pub async fn handed<D: Db>(
    ctx: &Ctx<'_, D>,
    req: &Request,
    rest: &str,
    tenant: &str,
) -> Result<Response> {
    let segments = path_segments(rest);
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let store = Store::new(ctx.db, tenant);
    let m = req.method;
    match segs.as_slice() {
        ["tenants", t, ..] if *t != tenant => Err(ScimError::new(
            403,
            None,
            "this object holds another tenant",
        )),
        // The same handlers as the worker's admin API, over the object's database.
        ["tenants", _, "Users" | "Groups" | "tolerances" | "events" | "tombstones", ..] => {
            routed(ctx, req, rest).await
        }
        ["tenants", _, "webhooks", id, "deliveries"] if m == Method::Get => {
            crate::service::webhooks::stream_deliveries(ctx, tenant, req, id).await
        }
        // The store calls of a move, for the worker's side of it (src/service/moving_hop.rs).
        ["tenants", _, "export" | "import", op] => {
            crate::service::moving_hop::object(&store, req, op).await
        }
        ["tenants", _, "usage"] if m == Method::Get => {
            let usage = store
                .quota_usage()
                .await?
                .ok_or_else(|| no_tenant(&store))?;
            let v = json!({"resources": usage.resources, "bytes": usage.bytes});
            Ok(json_response(200, &v))
        }
        ["tenants", _, "schemas"] if m == Method::Post => {
            let v = crate::service::declarations::mirror(ctx, &store, &body(req)?).await?;
            Ok(json_response(200, &v))
        }
        _ => Err(ScimError::not_found("not an object's admin path")),
    }
}

/// Setup links for a tenant's IT admin and the deployment's OAuth applications for the
/// authorization code grant (src/service/setup.rs, src/service/authorize.rs).
async fn onboarding<D: Db>(ctx: &Ctx<'_, D>, req: &Request, segs: &[&str]) -> Result<Response> {
    let (status, v) = match segs {
        ["tenants", t, "setup-links", tail @ ..] => {
            let store = tenant_store(ctx, t)?;
            crate::service::setup::admin(ctx, &store, req, &body(req)?, tail).await?
        }
        ["oauth-apps", tail @ ..] => {
            crate::service::authorize::admin(ctx, req, &body(req)?, tail).await?
        }
        _ => {
            return Err(ScimError::not_found(format!(
                "no admin resource at '{}'; see /admin/api/tenants",
                req.path
            )))
        }
    };
    Ok(json_response(status, &v))
}

fn tenant_store<'a, D: Db>(ctx: &Ctx<'a, D>, id: &str) -> Result<Store<'a, D>> {
    if !tenant::valid_id(id) {
        return Err(ScimError::not_found(format!("no tenant '{id}'")));
    }
    Ok(Store::new(ctx.db, id))
}

fn opt_seconds(body: &Map<String, Value>, name: &str, max: i64) -> Result<Option<i64>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if (0..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ScimError::invalid_value(format!(
                "'{name}' must be a whole number of seconds from 0 to {max}"
            ))),
        },
    }
}

fn label(body: &Map<String, Value>) -> Result<String> {
    let l = opt_string(body, "label")?.unwrap_or("").trim();
    if l.chars().count() > MAX_LABEL_CHARS || l.chars().any(char::is_control) {
        return Err(ScimError::invalid_value(format!(
            "'label' must be at most {MAX_LABEL_CHARS} characters, without control characters"
        )));
    }
    Ok(l.to_string())
}

/// The expiry a body asks for (`expiresIn` seconds or an RFC 3339 `expiresAt`), as a stored
/// timestamp; `None` for a credential that does not expire.
fn expiry(ctx: &Ctx<'_, impl Db>, body: &Map<String, Value>) -> Result<Option<String>> {
    let within = opt_seconds(body, "expiresIn", MAX_LIFETIME_SECS)?;
    let at = opt_string(body, "expiresAt")?;
    let ms = match (within, at) {
        (Some(_), Some(_)) => {
            return Err(ScimError::invalid_value(
                "send either 'expiresIn' or 'expiresAt', not both",
            ))
        }
        (Some(secs), None) => Some(ctx.now_ms + secs * 1000),
        (None, Some(at)) => Some(time::parse_rfc3339(at).ok_or_else(|| {
            ScimError::invalid_value("'expiresAt' must be an RFC 3339 date-time")
        })?),
        (None, None) => None,
    };
    match ms {
        Some(ms) if ms <= ctx.now_ms => {
            Err(ScimError::invalid_value("the expiry must be in the future"))
        }
        other => Ok(other.map(time::format_millis)),
    }
}

fn tenant_urls(origin: &str, id: &str) -> (String, String) {
    (
        format!("{origin}{TENANT_PREFIX}{id}{SCIM_PATH}"),
        format!("{origin}{TENANT_PREFIX}{id}{OAUTH_TOKEN_PATH}"),
    )
}

/// Where a tenant's directory lives: the deployment's `SCIM_STORAGE`, the same for every
/// tenant of it.
fn storage(config: &Config) -> &'static str {
    if config.durable_objects {
        "durable-object"
    } else {
        "d1"
    }
}

fn tenant_json(t: &TenantRecord, origin: &str, config: &Config) -> Value {
    let (scim, token) = tenant_urls(origin, &t.id);
    json!({
        "storage": storage(config),
        "id": t.id,
        "name": t.name,
        "created": t.created,
        "strictPatch": t.strict_patch,
        "extensions": if t.reject_undeclared { "reject" } else { "keep" },
        "quota": {"resources": t.quota.resources, "bytes": t.quota.bytes},
        "deletion": crate::service::deletion::policy_json(t.deletion),
        "scimUrl": scim,
        "tokenEndpoint": token,
    })
}

fn type_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Client => "oauth_client",
        Kind::Bearer | Kind::Access => "bearer",
    }
}

fn status(c: &CredentialRecord, now: &str) -> &'static str {
    if c.revoked.is_some() {
        "revoked"
    } else if c.expires.as_deref().is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    }
}

fn credential_json(c: &CredentialRecord, now: &str) -> Value {
    json!({
        "id": c.id,
        "tenant": c.tenant,
        "type": type_name(c.kind),
        "label": c.label,
        "created": c.created,
        "expires": c.expires,
        "lastUsed": c.last_used,
        "revoked": c.revoked,
        "replacedBy": c.replaced_by,
        "status": status(c, now),
    })
}

/// A credential with its secret, for the one response that issues it.
fn issued_json(c: &CredentialRecord, secret: &str, origin: &str, now: &str) -> Value {
    let mut v = credential_json(c, now);
    let (scim, token_endpoint) = tenant_urls(origin, &c.tenant);
    if let Some(o) = v.as_object_mut() {
        o.insert("scimUrl".into(), json!(scim));
        if c.kind == Kind::Client {
            o.insert("clientId".into(), json!(c.id));
            o.insert("clientSecret".into(), json!(secret));
            o.insert("tokenEndpoint".into(), json!(token_endpoint));
        } else {
            o.insert("token".into(), json!(secret));
        }
        o.insert(
            "notice".into(),
            json!("the secret is shown only in this response; only its hash is stored"),
        );
    }
    v
}

async fn list_tenants<D: Db>(ctx: &Ctx<'_, D>, req: &Request) -> Result<Response> {
    let tenants = tenancy::list_tenants(ctx.db).await?;
    let list: Vec<Value> = tenants
        .iter()
        .map(|t| tenant_json(t, &req.origin, ctx.config))
        .collect();
    Ok(json_response(200, &json!({ "tenants": list })))
}

async fn create_tenant<D: Db>(ctx: &Ctx<'_, D>, req: &Request) -> Result<Response> {
    let body = body(req)?;
    reject_unknown(&body, &["id", "name", "strictPatch", "quota"])?;
    let id =
        opt_string(&body, "id")?.ok_or_else(|| ScimError::invalid_value("'id' is required"))?;
    if !tenant::valid_id(id) {
        return Err(ScimError::invalid_value(
            "'id' must be 1-63 lower-case letters, digits or hyphens, starting with a letter or digit",
        ));
    }
    let name = opt_string(&body, "name")?.unwrap_or(id);
    let strict = opt_bool(&body, "strictPatch")?.unwrap_or(false);
    let quota = quota_change(&body)?;
    let now = time::format_millis(ctx.now_ms);
    let t = Store::new(ctx.db, id)
        .create_tenant(name, strict, quota, &now)
        .await?;
    Ok(json_response(
        201,
        &tenant_json(&t, &req.origin, ctx.config),
    ))
}

async fn get_tenant<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
) -> Result<Response> {
    let t = store
        .tenant_record()
        .await?
        .ok_or_else(|| no_tenant(store))?;
    let usage = match ctx.forward {
        Some(to) => {
            crate::service::relay::read_json(ctx, to, store.tenant(), &req.origin, "usage").await?
        }
        None => {
            let usage = store.quota_usage().await?.ok_or_else(|| no_tenant(store))?;
            json!({"resources": usage.resources, "bytes": usage.bytes})
        }
    };
    let mut v = tenant_json(&t, &req.origin, ctx.config);
    if let Some(o) = v.as_object_mut() {
        o.insert("usage".into(), usage);
    }
    Ok(json_response(200, &v))
}

/// The `quota` member of a tenant create or update: each limit a whole number ≥ 0, or
/// `null` for unlimited; a limit not named is left as it is.
fn quota_change(body: &Map<String, Value>) -> Result<(tenancy::LimitChange, tenancy::LimitChange)> {
    let quota = match body.get("quota") {
        None => return Ok((None, None)),
        Some(Value::Object(q)) => q,
        Some(_) => {
            return Err(ScimError::invalid_value(
                "'quota' must be an object like {\"resources\": 10000, \"bytes\": null}",
            ))
        }
    };
    reject_unknown(quota, &["resources", "bytes"])?;
    let limit = |name: &str| -> Result<tenancy::LimitChange> {
        match quota.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => match v.as_i64() {
                Some(n) if n >= 0 => Ok(Some(Some(n))),
                _ => Err(ScimError::invalid_value(format!(
                    "'quota.{name}' must be a whole number from 0, or null for no limit"
                ))),
            },
        }
    };
    Ok((limit("resources")?, limit("bytes")?))
}

async fn patch_tenant<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
) -> Result<Response> {
    let body = body(req)?;
    reject_unknown(
        &body,
        &["name", "strictPatch", "extensions", "quota", "deletion"],
    )?;
    let (deletion_days, restore_on_create) = crate::service::deletion::policy_change(&body)?;
    let reject_undeclared = match opt_string(&body, "extensions")? {
        None => None,
        Some("keep") => Some(false),
        Some("reject") => Some(true),
        Some(other) => {
            return Err(ScimError::invalid_value(format!(
                "'extensions' must be \"keep\" or \"reject\", not \"{other}\""
            )))
        }
    };
    let change = TenantChange {
        name: opt_string(&body, "name")?,
        strict_patch: opt_bool(&body, "strictPatch")?,
        reject_undeclared,
        quota: quota_change(&body)?,
        deletion_days,
        restore_on_create,
    };
    let t = store
        .update_tenant(change)
        .await?
        .ok_or_else(|| no_tenant(store))?;
    // This isolate validates with the new settings at once; others within the profile TTL.
    ctx.profiles.invalidate(store.tenant());
    Ok(json_response(
        200,
        &tenant_json(&t, &req.origin, ctx.config),
    ))
}

async fn list_tokens<D: Db>(ctx: &Ctx<'_, D>, store: &Store<'_, D>) -> Result<Response> {
    let creds = store.credentials().await?.ok_or_else(|| no_tenant(store))?;
    let now = time::format_millis(ctx.now_ms);
    let list: Vec<Value> = creds.iter().map(|c| credential_json(c, &now)).collect();
    Ok(json_response(200, &json!({ "tokens": list })))
}

async fn get_token<D: Db>(ctx: &Ctx<'_, D>, store: &Store<'_, D>, id: &str) -> Result<Response> {
    let c = store
        .credential(id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no token '{id}' in this tenant")))?;
    let now = time::format_millis(ctx.now_ms);
    Ok(json_response(200, &credential_json(&c, &now)))
}

async fn issue_token<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
) -> Result<Response> {
    let body = body(req)?;
    reject_unknown(&body, &["type", "label", "expiresIn", "expiresAt"])?;
    let kind = match opt_string(&body, "type")?.unwrap_or("bearer") {
        "bearer" => Kind::Bearer,
        "oauth_client" => Kind::Client,
        other => {
            return Err(ScimError::invalid_value(format!(
                "'type' must be \"bearer\" or \"oauth_client\", not \"{other}\""
            )))
        }
    };
    let label = label(&body)?;
    let expires = expiry(ctx, &body)?;
    let now = time::format_millis(ctx.now_ms);
    let (secret, id) = new_secret(kind)?;
    let hash = credentials::hash(&secret);
    let new = NewCredential {
        id: &id,
        kind,
        hash: &hash,
        label: &label,
        created: &now,
        expires: expires.as_deref(),
    };
    let c = store
        .insert_credential(&new)
        .await?
        .ok_or_else(|| no_tenant(store))?;
    Ok(json_response(
        201,
        &issued_json(&c, &secret, &req.origin, &now),
    ))
}

fn new_secret(kind: Kind) -> Result<(String, String)> {
    match (credentials::generate(kind), crate::service::ids::new_id()) {
        (Some(s), Some(id)) => Ok((s, id)),
        _ => Err(ScimError::internal()),
    }
}

/// Revocation ends the credential's predecessors too: a secret this one replaced is the same
/// integration's older secret, and an admin who revokes the newest expects nothing of it to
/// keep working through a rotation overlap. Its successors are ended only with `?chain=true`,
/// because revoking an old secret early, after rotating away from it, must keep the new one.
async fn revoke_token<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
    id: &str,
) -> Result<Response> {
    let successors = match req.query_param("chain") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ScimError::invalid_value("'chain' must be true or false")),
    };
    let now = time::format_millis(ctx.now_ms);
    let revoked = store
        .revoke_credential(id, &now, successors)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no token '{id}' in this tenant")))?;
    // Immediate in this isolate; other isolates stop accepting them within the cache TTL.
    ctx.tokens.forget(store.tenant(), &revoked.ids);
    let mut out = credential_json(&revoked.credential, &now);
    if let Some(o) = out.as_object_mut() {
        let chain: Vec<&str> = revoked.chain.iter().map(|c| c.id.as_str()).collect();
        o.insert("alsoRevoked".into(), json!(chain));
    }
    Ok(json_response(200, &out))
}

async fn rotate_token<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
    id: &str,
) -> Result<Response> {
    let body = body(req)?;
    reject_unknown(
        &body,
        &["overlapSeconds", "label", "expiresIn", "expiresAt"],
    )?;
    let overlap =
        opt_seconds(&body, "overlapSeconds", MAX_OVERLAP_SECS)?.unwrap_or(DEFAULT_OVERLAP_SECS);
    let label = label(&body)?;
    let expires = expiry(ctx, &body)?;
    let now = time::format_millis(ctx.now_ms);
    let old = store
        .credential(id)
        .await?
        .ok_or_else(|| ScimError::not_found(format!("no token '{id}' in this tenant")))?;
    if status(&old, &now) != "active" {
        return Err(ScimError::new(
            409,
            None,
            format!(
                "token '{id}' is {}; issue a new one instead",
                status(&old, &now)
            ),
        ));
    }
    if let Some(next) = &old.replaced_by {
        return Err(ScimError::new(
            409,
            None,
            format!("token '{id}' was already rotated; it is replaced by '{next}'"),
        ));
    }
    let (secret, new_id) = new_secret(old.kind)?;
    let hash = credentials::hash(&secret);
    let new = NewCredential {
        id: &new_id,
        kind: old.kind,
        hash: &hash,
        label: &label,
        created: &now,
        expires: expires.as_deref(),
    };
    let old_expires = time::format_millis(ctx.now_ms + overlap * 1000);
    let rotated = store
        .rotate_credential(id, &new, &old_expires)
        .await?
        .ok_or_else(|| {
            ScimError::new(409, None, format!("token '{id}' changed meanwhile; retry"))
        })?;
    let (old, new) = (rotated.old, rotated.new);
    // The new expiry of the old token and of its access tokens must reach this isolate's
    // cache now, not after the TTL.
    let mut stale = rotated.capped;
    stale.push(old.id.clone());
    ctx.tokens.forget(store.tenant(), &stale);
    let mut out = issued_json(&new, &secret, &req.origin, &now);
    if let Some(o) = out.as_object_mut() {
        o.insert("previous".into(), credential_json(&old, &now));
    }
    Ok(json_response(201, &out))
}

/// `/tenants/{t}/events[/summary]`: the provisioning log and its per-day summary.
async fn events<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
    tail: &[&str],
) -> Result<Response> {
    match (req.method, tail) {
        (Method::Get, []) => {
            let q = crate::store::events::EventQuery::parse(|name| req.query_param(name))?;
            let page = crate::store::events::list(ctx.db, store.tenant(), &q).await?;
            Ok(json_response(200, &page))
        }
        (Method::Get, ["summary"]) => {
            let days = req
                .query_param("days")
                .map(|d| {
                    d.parse::<i64>()
                        .map_err(|_| ScimError::invalid_value("'days' must be an integer"))
                })
                .transpose()?
                .unwrap_or(30);
            let days =
                crate::store::events::summary(ctx.db, store.tenant(), ctx.now_ms, days).await?;
            Ok(json_response(200, &days))
        }
        (_, [] | ["summary"]) => Err(not_allowed("GET")),
        _ => Err(ScimError::not_found(
            "no such events view; see events and events/summary",
        )),
    }
}

/// An object's page of its provisioning log with each event's `grant` filled in from D1
/// (`relay::fill_grants`).
async fn with_grants<D: Db>(ctx: &Ctx<'_, D>, tenant: &str, resp: Response) -> Result<Response> {
    if resp.status != 200 {
        return Ok(resp);
    }
    let mut page = resp.body_json();
    if !crate::service::relay::fill_grants(ctx, tenant, &mut page).await? {
        return Ok(resp);
    }
    Ok(json_response(200, &page))
}

/// `/tenants/{t}/roles[/…]` and `/tenants/{t}/entitlements[/…]`.
async fn entitlement_values<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
    list: &str,
    tail: &[&str],
) -> Result<Response> {
    let kind = match list {
        "roles" => entitlement::Kind::Role,
        _ => entitlement::Kind::Entitlement,
    };
    let now = time::format_millis(ctx.now_ms);
    let (status, v) =
        crate::service::entitlements::admin(store, req, &body(req)?, kind, tail, &now).await?;
    Ok(json_response(status, &v))
}
