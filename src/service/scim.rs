//! Routing and handlers. Each handler follows parse → validate → plan → execute → render:
//! everything that can be rejected is rejected before the first D1 round trip.

use crate::proto::error::{Result, ScimError};
use crate::proto::projection::Projection;
use crate::proto::resource::{self, location, Validated};
use crate::proto::schema::{
    self, ResourceType, Schemas, TypeSchemas, TypeScope, LIST_RESPONSE_SCHEMA,
    SEARCH_REQUEST_SCHEMA, SP_CONFIG_SCHEMA,
};
use crate::proto::time;
use crate::service::ctx::Ctx;
use crate::service::entitlements;
use crate::service::http::{path_segments, Request, Response};
use crate::service::ids;
use crate::service::profile::TenantProfile;
use crate::service::route::Route;
use crate::store::cursor;
use crate::store::tombstones::Restored;
use crate::store::{Db, ListQuery, MemberChange, NewData, Store, Stored, Update, Write};
use serde_json::{json, Map, Value};

/// Where the SCIM API lives; Entra's Tenant URL is `<origin>/scim/v2`.
pub const BASE_PATH: &str = "/scim/v2";
/// Largest request body accepted (advertised as `bulk.maxPayloadSize`).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest page; advertised as `filter.maxResults`.
pub const MAX_PAGE_SIZE: i64 = 1000;
pub const DEFAULT_PAGE_SIZE: i64 = 100;
/// Largest `startIndex` that is read; a larger one is past any possible result (D1 holds
/// far fewer rows) and answers an empty page without reading any. It is also where a
/// JavaScript number stops being exact, and D1 receives every bound integer as one: its
/// `OFFSET` never leaves the range in which that is harmless.
pub const MAX_START_INDEX: i64 = (1 << 53) - 1;
/// How often a write retries after losing an optimistic-concurrency race (no If-Match sent).
const WRITE_RETRIES: usize = 4;

/// Answers a SCIM request of `principal` (authenticated and within its rate limit,
/// [`admit`]; `rest` is the path below `base_path`, the tenant's SCIM base) by its route.
/// Writes are recorded in the provisioning log: successes by the store in the write's own
/// batch, failures by [`run_write`].
pub(crate) async fn serve<D: Db>(
    ctx: &Ctx<'_, D>,
    req: &Request,
    principal: crate::service::tenant::Principal,
    base_path: &str,
    rest: &str,
    request_id: &str,
) -> Result<Response> {
    let segments = path_segments(rest);
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let route = Route::parse(req.method, &segs)?;
    if let Some(to) = ctx
        .forward
        .filter(|_| crate::service::relay::in_directory(&route))
    {
        let stream = match &route {
            Route::Events(stream) => Some(stream.as_str()),
            _ => None,
        };
        return crate::service::relay::forward(ctx, to, req, principal, request_id, stream).await;
    }
    let base = format!("{}{base_path}", req.origin);
    let store = Store::new(ctx.db, principal.tenant.clone());
    // Users, Groups and discovery depend on the tenant's schemas; the rest does not.
    let profile = match route {
        Route::ServiceProviderConfig | Route::Entitlements(..) | Route::Events(_) => {
            TenantProfile::default()
        }
        _ => crate::service::profile::load(ctx.profiles, &store, ctx.now_ms).await?,
    };
    if route.write().is_none() {
        return dispatch(ctx, &store, profile, req, &route, &base).await;
    }
    let credential = principal.credential_id.clone();
    run_write(
        ctx, &store, profile, credential, req, &route, &base, request_id,
    )
    .await
}

/// What every SCIM request passes before it is routed: the bearer token (the tenant comes
/// from the credential; a tenant named in the URL must be the same one), the tenant's rate
/// limit and the body size limit. `Ok(Err(response))` is the `429` to answer.
pub(crate) async fn admit<D: Db>(
    ctx: &Ctx<'_, D>,
    req: &Request,
    url_tenant: Option<&str>,
) -> Result<std::result::Result<crate::service::tenant::Principal, Response>> {
    let principal = crate::service::tenant::authenticate(ctx, req, url_tenant).await?;
    let key = crate::service::ratelimit::tenant_key(&principal.tenant);
    if let crate::service::ratelimit::Decision::Limited { retry_after_secs } =
        ctx.limiter.check(&key, ctx.now_ms).await
    {
        return Ok(Err(crate::service::ratelimit::too_many_requests(
            retry_after_secs,
        )));
    }
    if req.body.len() > MAX_BODY_BYTES {
        return Err(ScimError::payload_too_large(format!(
            "the request body is {} bytes; the limit (maxPayloadSize) is {MAX_BODY_BYTES}",
            req.body.len()
        )));
    }
    Ok(Ok(principal))
}

/// Runs the write `route` as its single request does: the tenant's unique attributes kept,
/// the success recorded by the store in the write's own batch, a failure recorded here.
/// `POST /Bulk` runs each of its operations through this same function.
#[allow(clippy::too_many_arguments)] // the request's parts, each needed by the write
pub(crate) async fn run_write<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    profile: TenantProfile,
    credential: Option<String>,
    req: &Request,
    route: &Route,
    base: &str,
    request_id: &str,
) -> Result<Response> {
    let Some(write) = route.write() else {
        return dispatch(ctx, store, profile, req, route, base).await;
    };
    let store = Store::new(ctx.db, store.tenant()).with_unique(crate::store::unique::unique_attrs(
        profile.schemas.of(write.rt),
    ));
    let store = store.audited(crate::store::events::AuditNote {
        op: write.op,
        credential,
        request_id: request_id.to_string(),
        attributes: Vec::new(),
        time: time::format_millis(ctx.now_ms),
    });
    let result = dispatch(ctx, &store, profile, req, route, base).await;
    if let (Err(e), Some(note)) = (&result, store.audit_note()) {
        crate::store::events::record_failure(ctx.db, store.tenant(), write.rt, write.id, note, e)
            .await;
    }
    result
}

/// Runs the handler of `route`.
async fn dispatch<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    profile: TenantProfile,
    req: &Request,
    route: &Route,
    base: &str,
) -> Result<Response> {
    let schemas = profile.schemas;
    match route {
        Route::ServiceProviderConfig => Ok(Response::json(200, &service_provider_config(base))),
        Route::ResourceTypes(name) => {
            reject_discovery_filter(req)?;
            let extra = entitlements::resource_types(store, base).await?;
            resource_types(schemas, name.as_deref(), base, extra)
        }
        Route::Schemas(urn) => schemas_endpoint(req, schemas, urn.as_deref(), base),
        Route::Entitlements(kind, id) => {
            let page = page_bounds(
                int_param("startIndex", req.query_param("startIndex"))?,
                int_param("count", req.query_param("count"))?,
            );
            entitlements::read(store, req, *kind, id.as_deref(), page, base).await
        }
        Route::Search(rt) => search(ctx, store, req, scope(schemas, *rt), base).await,
        Route::List(rt) => list(ctx, store, req, schemas.of(*rt), base).await,
        Route::Create(rt) => create(ctx, store, profile, req, *rt, base).await,
        Route::Get(rt, id) => get(store, req, schemas.of(*rt), id, base).await,
        Route::Replace(rt, id) => replace(ctx, store, profile, req, *rt, id, base).await,
        Route::Patch(rt, id) => patch(ctx, store, req, schemas.of(*rt), id, base).await,
        Route::Delete(rt, id) => delete(store, req, *rt, id).await,
        Route::Events(stream) => {
            crate::service::webhooks::set::poll(ctx, store.tenant(), req, stream).await
        }
    }
}

fn scope(schemas: Schemas, only: Option<ResourceType>) -> TypeScope {
    TypeScope { only, schemas }
}

/// `GET /ResourceTypes[/{name}]`, listing the tenant's declared extensions (Okta discovers
/// custom attributes this way); `extra`: the tenant's entitlement resource types.
fn resource_types(
    schemas: Schemas,
    name: Option<&str>,
    base: &str,
    extra: Vec<Value>,
) -> Result<Response> {
    let mut docs: Vec<Value> = ResourceType::ALL
        .iter()
        .map(|rt| schema::resource_type_document(schemas.of(*rt), base))
        .collect();
    docs.extend(extra);
    match name {
        None => Ok(list_response(docs)),
        Some(name) => docs
            .into_iter()
            .find(|d| {
                d["id"]
                    .as_str()
                    .is_some_and(|id| id.eq_ignore_ascii_case(name))
            })
            .map(|d| Response::json(200, &d))
            .ok_or_else(|| ScimError::not_found(format!("no resource type '{name}'"))),
    }
}

/// `GET /Schemas[/{urn}]`: the built-in schemas and the tenant's declared ones.
fn schemas_endpoint(
    req: &Request,
    schemas: Schemas,
    urn: Option<&str>,
    base: &str,
) -> Result<Response> {
    reject_discovery_filter(req)?;
    let mut docs = schema::schema_documents(base);
    docs.extend(
        schemas
            .declared()
            .iter()
            .map(|d| crate::proto::declared::document(d, base)),
    );
    match urn {
        None => Ok(list_response(docs)),
        Some(urn) => docs
            .into_iter()
            .find(|d| {
                d["id"]
                    .as_str()
                    .is_some_and(|id| id.eq_ignore_ascii_case(urn))
            })
            .map(|d| Response::json(200, &d))
            .ok_or_else(|| ScimError::not_found(format!("no schema '{urn}'"))),
    }
}

/// RFC 7644 §4: discovery endpoints do not filter; a filter is answered with 403.
fn reject_discovery_filter(req: &Request) -> Result<()> {
    if req.query_param("filter").is_some() {
        return Err(ScimError::new(
            403,
            None,
            "filtering is not supported on discovery endpoints",
        ));
    }
    Ok(())
}

fn list_response(resources: Vec<Value>) -> Response {
    Response::json(
        200,
        &json!({
            "schemas": [LIST_RESPONSE_SCHEMA],
            "totalResults": resources.len(),
            "itemsPerPage": resources.len(),
            "startIndex": 1,
            "Resources": resources,
        }),
    )
}

/// `ServiceProviderConfig` as JSON text with `$NAME` placeholders: a `json!` literal of it
/// compiled to 4.8 KB of wasm, this is its bytes and a parse (the parser is there anyway).
/// `securityEvents`: RFC 9967 §4, the SETs this service issues (pushed, or polled at
/// `/Events/{stream}`); no asynchronous requests.
const SP_CONFIG_TEMPLATE: &str = r#"{"schemas":["$SCHEMA"],
"documentationUri":"https://datatracker.ietf.org/doc/html/rfc7644",
"patch":{"supported":$PATCH},
"bulk":{"supported":true,"maxOperations":$MAX_OPS,"maxPayloadSize":$MAX_BODY},
"filter":{"supported":true,"maxResults":$MAX_PAGE},
"changePassword":{"supported":false},
"sort":{"supported":true},
"pagination":{"cursor":true,"index":true,"defaultPaginationMethod":"index",
"defaultPageSize":$DEFAULT_PAGE,"maxPageSize":$MAX_PAGE},
"etag":{"supported":true},
"securityEvents":{"asyncRequest":"none","eventUris":$EVENT_URIS},
"authenticationSchemes":[{"type":"oauthbearertoken","name":"OAuth Bearer Token",
"description":"Authentication with a bearer token issued for this SCIM endpoint",
"specUri":"https://www.rfc-editor.org/info/rfc6750","primary":true}],
"meta":{"resourceType":"ServiceProviderConfig","location":$LOCATION}}"#;

pub fn service_provider_config(base: &str) -> Value {
    let location = Value::String(format!("{base}/ServiceProviderConfig"));
    let text = SP_CONFIG_TEMPLATE
        .replace("$SCHEMA", SP_CONFIG_SCHEMA)
        .replace("$PATCH", &crate::PATCH_SUPPORTED.to_string())
        .replace("$MAX_BODY", &MAX_BODY_BYTES.to_string())
        .replace("$MAX_OPS", &crate::proto::bulk::MAX_OPERATIONS.to_string())
        .replace("$MAX_PAGE", &MAX_PAGE_SIZE.to_string())
        .replace("$DEFAULT_PAGE", &DEFAULT_PAGE_SIZE.to_string())
        .replace(
            "$EVENT_URIS",
            &json!(crate::proto::secevent::EVENT_URIS).to_string(),
        )
        .replace("$LOCATION", &location.to_string());
    serde_json::from_str(&text).unwrap_or_default()
}

fn resource_response(
    status: u16,
    stored: Stored,
    projection: &Projection,
    base: &str,
) -> Result<Response> {
    let mut body = Vec::with_capacity(stored.data.len() + 512);
    write_resource(&mut body, &stored, projection, base)?;
    let mut resp = Response::json_bytes(status, body).with_header("etag", stored.meta.etag());
    if status == 201 {
        resp = resp.with_header("location", location(base, stored.rt, &stored.id));
    }
    Ok(resp)
}

/// Appends a stored resource's JSON, as `projection` shapes it. The usual case — no
/// `attributes`, at most `excludedAttributes=members` — splices the stored text in without
/// parsing it; only projections that reach into the stored attributes parse them.
pub fn write_resource(
    out: &mut Vec<u8>,
    s: &Stored,
    projection: &Projection,
    base: &str,
) -> Result<()> {
    if projection.leaves_stored_data(s.rt) {
        return resource::write_spliced(
            out,
            s.rt,
            &s.id,
            &s.data,
            &s.meta,
            s.related.as_deref(),
            base,
            projection,
        );
    }
    let mut v = resource::render_owned(
        s.rt,
        &s.id,
        s.attributes()?,
        &s.meta,
        s.related.as_deref(),
        base,
    );
    projection.apply(s.rt, &mut v);
    serde_json::to_writer(out, &v).map_err(|_| ScimError::internal())
}

fn projection_of(req: &Request, ts: TypeSchemas) -> Result<Projection> {
    Projection::parse(
        req.query_param("attributes"),
        req.query_param("excludedAttributes"),
        ts,
    )
}

/// Parses `If-Match` / `If-None-Match` into the versions they name. `None` means "*".
fn etag_versions(header: &str) -> Option<Vec<i64>> {
    let mut out = Vec::new();
    for tag in header.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if tag == "*" {
            return None;
        }
        let inner = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"');
        if let Ok(v) = inner.parse::<i64>() {
            out.push(v);
        } else {
            out.push(-1); // can never match a stored version
        }
    }
    Some(out)
}

/// The version an `If-Match` demands: `Ok(None)` if absent or `*`.
fn if_match(req: &Request, current: Option<i64>) -> Result<Option<i64>> {
    let Some(h) = req.header("if-match") else {
        return Ok(None);
    };
    match etag_versions(h) {
        None => Ok(None),
        Some(versions) => match current {
            Some(cur) if versions.contains(&cur) => Ok(Some(cur)),
            Some(_) => Err(ScimError::precondition_failed(
                "the resource has changed since the version named in If-Match; fetch it again",
            )),
            // Without a read (DELETE), the first named version is the condition.
            None => Ok(Some(versions.first().copied().unwrap_or(-1))),
        },
    }
}

async fn get<D: Db>(
    store: &Store<'_, D>,
    req: &Request,
    ts: TypeSchemas,
    id: &str,
    base: &str,
) -> Result<Response> {
    let rt = ts.rt;
    let projection = projection_of(req, ts)?;
    let related = projection.wants(rt, related_attr(rt));
    let stored = store
        .get(rt, id, related)
        .await?
        .ok_or_else(|| not_found(rt, id))?;
    if let Some(h) = req.header("if-none-match") {
        let fresh = match etag_versions(h) {
            None => true,
            Some(v) => v.contains(&stored.meta.version),
        };
        if fresh {
            return Ok(Response::empty(304).with_header("etag", stored.meta.etag()));
        }
    }
    resource_response(200, stored, &projection, base)
}

/// `GET /Users` (`id` `None`) or `GET /Users/{id}` and the same for Groups, with the query
/// parameters of `req`, as `store`'s tenant: the admin console's read-only directory view
/// goes through exactly the SCIM code path.
pub(crate) async fn read<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
    rt: ResourceType,
    id: Option<&str>,
    base: &str,
) -> Result<Response> {
    let profile = crate::service::profile::load(ctx.profiles, store, ctx.now_ms).await?;
    let ts = profile.schemas.of(rt);
    match id {
        None => list(ctx, store, req, ts, base).await,
        Some(id) => get(store, req, ts, id, base).await,
    }
}

fn related_attr(rt: ResourceType) -> &'static str {
    match rt {
        ResourceType::User => "groups",
        ResourceType::Group => "members",
    }
}

fn not_found(rt: ResourceType, id: &str) -> ScimError {
    ScimError::not_found(format!("{} '{id}' not found", rt.name()))
}

async fn create<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    profile: TenantProfile,
    req: &Request,
    rt: ResourceType,
    base: &str,
) -> Result<Response> {
    let projection = projection_of(req, profile.schemas.of(rt))?;
    let body = req.json_body()?;
    let (Validated { data, members }, tolerances) = validate_full(profile, rt, &body)?;
    let id = ids::new_id().ok_or_else(ScimError::internal)?;
    let now = time::format_millis(ctx.now_ms);
    let members = members.unwrap_or_default();
    let store = store.changing(attribute_names(&data, !members.is_empty()));
    let restored = match profile.deletion.restore_on_create {
        true => restore_on_create(&store, rt, &data, &members, &now, &tolerances).await?,
        false => None,
    };
    let stored = match restored {
        Some(stored) => stored,
        None => {
            store
                .create(rt, &id, &data, &members, &now, &tolerances)
                .await?
        }
    };
    Ok(resource_response(201, stored, &projection, base)?.with_notes(tolerated(&tolerances)))
}

/// `restoreOnCreate`: a POST whose `externalId` matches a tombstone of its type brings that
/// resource back under its old id with the POST's attributes, so the app keeps its history
/// (the answer is still `201`: the resource is created, as far as the client knows). One
/// read more than a plain create, paid only by tenants with the setting and POSTs with an
/// `externalId`. `None`: nothing to restore (or it went meanwhile): create as usual.
async fn restore_on_create<D: Db>(
    store: &Store<'_, D>,
    rt: ResourceType,
    data: &Map<String, Value>,
    members: &[String],
    now: &str,
    tolerances: &[&str],
) -> Result<Option<Stored>> {
    let Some(external_id) = data.get("externalId").and_then(Value::as_str) else {
        return Ok(None);
    };
    let Some(old) = store.tombstone_by_external_id(rt, external_id).await? else {
        return Ok(None);
    };
    match store
        .restore(rt, &old, Some(data), members, now, tolerances)
        .await?
    {
        Restored::Done(stored) => Ok(Some(stored)),
        Restored::NotFound => Ok(None),
    }
}

/// The checks a write makes before its first round trip (the body, its validation against
/// the tenant's schemas, a PATCH parsed whole), without running it. `POST /Bulk` runs them
/// for every operation before any operation writes; the handler runs them again.
pub(crate) fn precheck(profile: TenantProfile, req: &Request, route: &Route) -> Result<()> {
    match route {
        Route::Create(rt) | Route::Replace(rt, _) => {
            validate_full(profile, *rt, &req.json_body()?).map(|_| ())
        }
        Route::Patch(rt, id) => {
            let body = req.json_body()?;
            let mut parsed = crate::proto::tolerance::Tolerances::lenient();
            let request = crate::proto::patch::PatchRequest::parse(
                profile.schemas.of(*rt),
                &body,
                &mut parsed,
            )?;
            member_changes(id, request.member_ops()).map(|_| ())
        }
        _ => Ok(()),
    }
}

/// Validates a POST or PUT body against the tenant's schemas, accepting identity-provider
/// quirks unless the tenant is strict (a strict tenant gets the error the strict validation
/// gives). Both come with the tenant's profile: no round trip.
fn validate_full(
    profile: TenantProfile,
    rt: ResourceType,
    body: &Value,
) -> Result<(Validated, Vec<&'static str>)> {
    let ts = profile.schemas.of(rt);
    if profile.strict {
        return resource::validate(ts, body).map(|v| (v, Vec::new()));
    }
    let mut tol = crate::proto::tolerance::Tolerances::lenient();
    let validated = resource::validate_with(ts, body, &mut tol)?;
    Ok((validated, tol.names()))
}

/// Log notes naming the tolerated quirks.
fn tolerated<'t>(names: &'t [&'static str]) -> impl Iterator<Item = String> + 't {
    names.iter().map(|t| format!("tolerated {t}"))
}

async fn replace<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    profile: TenantProfile,
    req: &Request,
    rt: ResourceType,
    id: &str,
    base: &str,
) -> Result<Response> {
    let projection = projection_of(req, profile.schemas.of(rt))?;
    let body = req.json_body()?;
    let (Validated { data, members }, tolerances) = validate_full(profile, rt, &body)?;
    let mut changes = Vec::new();
    let store = store.changing(attribute_names(&data, rt == ResourceType::Group));
    if rt == ResourceType::Group {
        // PUT replaces: members not sent are cleared (RFC 7644 §3.5.1).
        changes.push(MemberChange::RemoveAll);
        if let Some(m) = members.filter(|m| !m.is_empty()) {
            if m.iter().any(|m| m == id) {
                return Err(ScimError::invalid_value(
                    "a group cannot be a member of itself",
                ));
            }
            changes.push(MemberChange::Add(m));
        }
    }
    let now = time::format_millis(ctx.now_ms);
    let with_related = projection.wants(rt, related_attr(rt));
    // A PUT replaces everything, so without If-Match it depends on nothing it could read: one
    // unconditional write (last writer wins; concurrent PUTs never answer 409). With If-Match
    // the named version is read and checked, then written conditionally.
    let expected = match req.header("if-match") {
        None => None,
        Some(_) => {
            let current = store
                .get(rt, id, false)
                .await?
                .ok_or_else(|| not_found(rt, id))?;
            if_match(req, Some(current.meta.version))?
        }
    };
    let update = Update {
        rt,
        id,
        expected,
        data: Some(NewData::Attributes(&data)),
        members: &changes,
        now: &now,
        with_related,
        tolerances: &tolerances,
    };
    match store.update(&update).await? {
        Write::Done(stored) => {
            Ok(resource_response(200, stored, &projection, base)?
                .with_notes(tolerated(&tolerances)))
        }
        Write::NotFound => Err(not_found(rt, id)),
        Write::Conflict => Err(concurrent_change()),
    }
}

/// Canonical names of the attributes a full representation sets, for the provisioning log:
/// extension attributes as `urn:…:attr`, plus `members` when a group's members are written.
fn attribute_names(data: &Map<String, Value>, members: bool) -> Vec<String> {
    let mut names = Vec::new();
    for (k, v) in data {
        match v {
            Value::Object(inner) if k.starts_with("urn:") => {
                names.extend(inner.keys().map(|a| format!("{k}:{a}")))
            }
            _ => names.push(k.clone()),
        }
    }
    if members {
        names.push("members".into());
    }
    names
}

fn concurrent_change() -> ScimError {
    ScimError::precondition_failed("the resource was modified concurrently; fetch it again")
}

fn still_contended() -> ScimError {
    ScimError::new(
        409,
        None,
        "the resource is being modified concurrently; retry the request",
    )
}

/// PATCH (RFC 7644 §3.5.2). Users answer 200 with the resource. Groups answer 204 unless the
/// client asks for attributes: echoing a 100k-member list on every membership change would
/// cost more than the change itself, and RFC 7644 allows 204.
async fn patch<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
    ts: TypeSchemas,
    id: &str,
    base: &str,
) -> Result<Response> {
    let rt = ts.rt;
    let projection = projection_of(req, ts)?;
    let body = req.json_body()?;
    // Parsed whole before the read, leniently: whether the tenant is strict comes with the
    // stored resource. A malformed PATCH then costs one round trip (the failure log).
    let mut parsed = crate::proto::tolerance::Tolerances::lenient();
    let request = crate::proto::patch::PatchRequest::parse(ts, &body, &mut parsed)?;
    let changes = member_changes(id, request.member_ops())?;
    let now = time::format_millis(ctx.now_ms);
    let wants_body = rt == ResourceType::User
        || req.query_param("attributes").is_some()
        || req.query_param("excludedAttributes").is_some();
    let with_related = wants_body && projection.wants(rt, related_attr(rt));
    for _ in 0..WRITE_RETRIES {
        let (current, strict) = store
            .get_for_patch(rt, id)
            .await?
            .ok_or_else(|| not_found(rt, id))?;
        let conditional = if_match(req, Some(current.meta.version))?;
        let collector = request.tolerances_for(&body, &parsed, strict)?;
        let outcome = request.apply_text(&current.data, collector)?;
        let tolerances: Vec<&'static str> = outcome.tolerances.iter().map(|t| t.as_str()).collect();
        // A PATCH that leaves `data` as it was (e.g. Entra's one-member adds and removes)
        // depends on nothing it read: its member rows are written unconditionally, so any
        // number of concurrent membership changes all apply, with no retry. Anything that
        // changes `data`, or names a version in If-Match, stays a conditional write.
        let data_changed = outcome.data.is_some();
        let update = Update {
            rt,
            id,
            expected: (data_changed || conditional.is_some()).then_some(current.meta.version),
            data: outcome.data.as_deref().map(|text| NewData::Text {
                text,
                deactivating: outcome.deactivating,
                reactivating: outcome.reactivating,
            }),
            members: &changes,
            now: &now,
            with_related,
            tolerances: &tolerances,
        };
        match store
            .changing(outcome.changed.clone())
            .update(&update)
            .await?
        {
            Write::Done(stored) => {
                let resp = if wants_body {
                    resource_response(200, stored, &projection, base)?
                } else {
                    Response::empty(204).with_header("etag", stored.meta.etag())
                };
                return Ok(resp.with_notes(tolerated(&tolerances)));
            }
            Write::NotFound => return Err(not_found(rt, id)),
            Write::Conflict if conditional.is_some() => return Err(concurrent_change()),
            Write::Conflict => continue,
        }
    }
    Err(still_contended())
}

fn member_changes(
    group_id: &str,
    ops: Vec<crate::proto::patch::MemberOp>,
) -> Result<Vec<MemberChange>> {
    use crate::proto::patch::MemberOp;
    let mut out = Vec::new();
    for op in ops {
        let ids_of = |op: &MemberOp| match op {
            MemberOp::Add(ids) | MemberOp::Replace(ids) => ids.clone(),
            _ => Vec::new(),
        };
        if ids_of(&op).iter().any(|m| m == group_id) {
            return Err(ScimError::invalid_value(
                "a group cannot be a member of itself",
            ));
        }
        match op {
            MemberOp::Add(ids) => out.push(MemberChange::Add(ids)),
            MemberOp::Remove(ids) => out.push(MemberChange::Remove(ids)),
            MemberOp::RemoveAll => out.push(MemberChange::RemoveAll),
            MemberOp::Replace(ids) => {
                out.push(MemberChange::RemoveAll);
                if !ids.is_empty() {
                    out.push(MemberChange::Add(ids));
                }
            }
        }
    }
    Ok(out)
}

async fn delete<D: Db>(
    store: &Store<'_, D>,
    req: &Request,
    rt: ResourceType,
    id: &str,
) -> Result<Response> {
    let expected = if_match(req, None)?;
    match store.delete(rt, id, expected).await? {
        Write::Done(_) => Ok(Response::empty(204)),
        Write::NotFound => Err(not_found(rt, id)),
        Write::Conflict => Err(ScimError::precondition_failed(
            "the resource has changed since the version named in If-Match",
        )),
    }
}

/// List parameters common to GET and POST /.search.
#[derive(Debug, Default)]
struct ListParams {
    filter: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<String>,
    excluded: Option<String>,
    /// RFC 9865: present (even empty) selects cursor paging.
    cursor: Option<String>,
}

fn int_param(name: &str, raw: Option<&str>) -> Result<Option<i64>> {
    use std::num::IntErrorKind::{NegOverflow, PosOverflow};
    match raw {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => s.trim().parse::<i64>().map(Some).map_err(|e| {
            let detail = match e.kind() {
                PosOverflow | NegOverflow => format!(
                    "'{name}' must be an integer of at most 64 bits, not \"{}\"",
                    truncate_param(s)
                ),
                _ => format!("'{name}' must be an integer, not \"{}\"", truncate_param(s)),
            };
            ScimError::invalid_value(detail)
        }),
    }
}

fn truncate_param(s: &str) -> String {
    s.chars().take(40).collect()
}

/// `startIndex` and `count` as read (RFC 7644 §3.4.2.4: below 1 is 1, a negative count is 0,
/// more than `MAX_PAGE_SIZE` is `MAX_PAGE_SIZE`), and how many resources to read: none when
/// the index is past `MAX_START_INDEX`, so every OFFSET and LIMIT the store binds is exact
/// as a JavaScript number. The index is answered as asked.
pub(crate) fn page_bounds(start_index: Option<i64>, count: Option<i64>) -> (i64, i64) {
    let start = start_index.unwrap_or(1).max(1);
    let count = count.unwrap_or(DEFAULT_PAGE_SIZE).clamp(0, MAX_PAGE_SIZE);
    let read = if start > MAX_START_INDEX { 0 } else { count };
    (start, read)
}

async fn list<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
    ts: TypeSchemas,
    base: &str,
) -> Result<Response> {
    let params = ListParams {
        filter: req.query_param("filter").map(str::to_string),
        sort_by: req.query_param("sortBy").map(str::to_string),
        sort_order: req.query_param("sortOrder").map(str::to_string),
        start_index: int_param("startIndex", req.query_param("startIndex"))?,
        count: int_param("count", req.query_param("count"))?,
        attributes: req.query_param("attributes").map(str::to_string),
        excluded: req.query_param("excludedAttributes").map(str::to_string),
        cursor: req.query_param("cursor").map(str::to_string),
    };
    run_list(ctx, store, params, ts.into(), base).await
}

async fn search<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
    scope: TypeScope,
    base: &str,
) -> Result<Response> {
    let body = req.json_body()?;
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the search request must be an object"))?;
    let get = |name: &str| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let schemas_ok = get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|s| s.as_str() == Some(SEARCH_REQUEST_SCHEMA)));
    if !schemas_ok {
        return Err(ScimError::invalid_syntax(format!(
            "'schemas' must be [\"{SEARCH_REQUEST_SCHEMA}\"]"
        )));
    }
    let string = |name: &str| -> Result<Option<String>> {
        match get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ScimError::invalid_value(format!(
                "'{name}' must be a string"
            ))),
        }
    };
    let list = |name: &str| -> Result<Option<String>> {
        match get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => {
                let names: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                names.map(|n| Some(n.join(","))).ok_or_else(|| {
                    ScimError::invalid_value(format!(
                        "'{name}' must be an array of attribute names"
                    ))
                })
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ScimError::invalid_value(format!(
                "'{name}' must be an array of attribute names"
            ))),
        }
    };
    let int = |name: &str| -> Result<Option<i64>> {
        match get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                ScimError::invalid_value(format!("'{name}' must be an integer of at most 64 bits"))
            }),
        }
    };
    let params = ListParams {
        filter: string("filter")?,
        sort_by: string("sortBy")?,
        sort_order: string("sortOrder")?,
        start_index: int("startIndex")?,
        count: int("count")?,
        attributes: list("attributes")?,
        excluded: list("excludedAttributes")?,
        cursor: string("cursor")?,
    };
    run_list(ctx, store, params, scope, base).await
}

/// What a cursor is bound to: the tenant, and the resource type, filter and order of the query.
fn cursor_binding<'p>(
    tenant: &'p str,
    rt: Option<ResourceType>,
    p: &'p ListParams,
    sort_order: &'p str,
) -> cursor::Binding<'p> {
    cursor::Binding {
        tenant,
        resource_type: rt.map(ResourceType::name).unwrap_or("*"),
        filter: p.filter.as_deref().unwrap_or("").trim(),
        sort_by: p.sort_by.as_deref().unwrap_or("").trim(),
        sort_order,
    }
}

/// The key cursors are sealed with: from `CURSOR_SECRET` if set, else the deployment's random
/// secret in D1, generated on first use and read once per isolate.
async fn cursor_key<D: Db>(ctx: &Ctx<'_, D>, store: &Store<'_, D>) -> Result<cursor::Key> {
    if let Some(secret) = &ctx.config.cursor_secret {
        return cursor::Key::derive(secret.as_bytes());
    }
    if let Some(key) = cursor::isolate_key() {
        return Ok(key);
    }
    let fresh = cursor::fresh_secret()?;
    let secret = store.deployment_secret("cursor", &fresh).await?;
    let key = cursor::Key::derive(secret.as_bytes())?;
    cursor::remember_isolate_key(key);
    Ok(key)
}

async fn run_list<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    p: ListParams,
    scope: TypeScope,
    base: &str,
) -> Result<Response> {
    let rt = scope.only;
    let projection = Projection::parse(p.attributes.as_deref(), p.excluded.as_deref(), scope)?;
    let (start_index, count) = page_bounds(p.start_index, p.count);
    let mut query = ListQuery {
        rt,
        start_index,
        count,
        with_related: match rt {
            Some(rt) => projection.wants(rt, related_attr(rt)),
            None => ResourceType::ALL
                .iter()
                .any(|t| projection.wants(*t, related_attr(*t))),
        },
        ..ListQuery::default()
    };
    if let Some(f) = p.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        let filter = crate::proto::filter::parse(f)?;
        query.where_sql = Some(crate::store::query::where_sql(
            &filter,
            scope,
            &mut query.params,
        )?);
    }
    if let Some(s) = p.sort_by.as_deref().filter(|s| !s.trim().is_empty()) {
        query.order = Some(crate::store::query::sort_sql(s.trim(), scope)?);
    }
    let sort_order = p
        .sort_order
        .as_deref()
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    query.descending = match sort_order.as_str() {
        "" | "ascending" => false,
        "descending" => true,
        other => {
            return Err(ScimError::invalid_value(format!(
                "sortOrder must be 'ascending' or 'descending', not '{other}'"
            )))
        }
    };
    let binding = cursor_binding(store.tenant(), rt, &p, &sort_order);
    let mut key = None;
    if let Some(c) = p.cursor.as_deref() {
        if p.start_index.is_some() {
            return Err(ScimError::invalid_value(
                "use either 'cursor' or 'startIndex', not both (RFC 9865)",
            ));
        }
        query.cursor_mode = true;
        if !c.is_empty() {
            // Malformed cursors are refused before the key (perhaps a D1 read) is needed.
            let bytes = cursor::decode(c)?;
            let k = cursor_key(ctx, store).await?;
            query.after = Some(cursor::open(&k, &binding, c, &bytes)?);
            key = Some(k);
        }
    }
    let page = store.list(&query).await?;
    // The envelope is serialised as a map; the page's resources are written straight into
    // its `Resources` array, each spliced from its stored text.
    let mut head = Map::new();
    head.insert("schemas".into(), json!([LIST_RESPONSE_SCHEMA]));
    head.insert("totalResults".into(), json!(page.total));
    head.insert("itemsPerPage".into(), json!(page.items.len()));
    if query.cursor_mode {
        if let Some(next) = &page.next {
            let key = match key {
                Some(k) => k,
                None => cursor_key(ctx, store).await?,
            };
            head.insert(
                "nextCursor".into(),
                json!(cursor::seal(&key, &binding, next)?),
            );
        }
    } else {
        head.insert("startIndex".into(), json!(query.start_index));
    }
    let mut body = serde_json::to_vec(&Value::Object(head)).map_err(|_| ScimError::internal())?;
    body.pop(); // the closing '}'
    body.extend_from_slice(b",\"Resources\":[");
    for (i, s) in page.items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        write_resource(&mut body, s, &projection, base)?;
    }
    body.extend_from_slice(b"]}");
    Ok(Response::json_bytes(200, body))
}
