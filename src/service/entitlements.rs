//! Okta Entitlement Management: the vendor defines a tenant's entitlement and role values
//! through the admin API, and Okta reads them from `GET /Entitlements[/{id}]` and
//! `GET /Roles[/{id}]` (src/proto/entitlement.rs has the shapes). Okta then assigns them to
//! users through the User's `entitlements` and `roles`, which `/Users` stores like any
//! other attribute: nothing here is consulted on a user write.
//!
//! A resource type is listed in `/ResourceTypes` only for a tenant that has defined at least
//! one value of its kind: Okta reads every advertised endpoint (its entitlement test expects
//! values there), and clients that do not know these types (Microsoft Entra ID, conformance
//! suites) see discovery as before. Their schemas are not in `/Schemas`: Okta knows its own
//! URNs and asks `/Schemas` only for extensions it does not know (the guide's note).
//!
//! Admin API, below `/admin/api/tenants/{t}`:
//!
//! | Route | Methods |
//! |---|---|
//! | `/entitlements`, `/roles` | GET `{Resources: [...], totalResults}` (`startIndex`, `count`), POST `{id?, displayName, type?, description?}` |
//! | `/entitlements/{id}`, `/roles/{id}` | GET, PATCH `{displayName?, type?, description?}` (`null` clears), DELETE |
//!
//! Values are answered as Okta reads them (the SCIM representation, `meta.location` under the
//! tenant's SCIM URL), so the vendor sees exactly what Okta will.

use crate::proto::entitlement::{self, Kind};
use crate::proto::error::{Result, ScimError};
use crate::proto::schema::LIST_RESPONSE_SCHEMA;
use crate::service::http::{Method, Request, Response};
use crate::service::tenant::{SCIM_PATH, TENANT_PREFIX};
use crate::store::{Db, Store, StoreError};
use serde_json::{json, Map, Value};

/// Most values one admin list returns (they are read whole by the vendor's tooling).
pub const MAX_ADMIN_PAGE: i64 = 10_000;

/// The `/ResourceTypes` entries of the kinds `store`'s tenant has values of; one round trip.
pub async fn resource_types<D: Db>(store: &Store<'_, D>, base: &str) -> Result<Vec<Value>> {
    let kinds = store.defined_kinds().await?;
    Ok(kinds
        .into_iter()
        .map(|k| entitlement::resource_type_document(k, base))
        .collect())
}

/// `GET /Entitlements`, `GET /Roles` (`id` `None`) or one value by id. `page` is the
/// `startIndex` and `count` as the SCIM list reads them.
pub async fn read<D: Db>(
    store: &Store<'_, D>,
    req: &Request,
    kind: Kind,
    id: Option<&str>,
    page: (i64, i64),
    base: &str,
) -> Result<Response> {
    if let Some(id) = id {
        let d = store
            .definition(kind, id)
            .await?
            .ok_or_else(|| not_found(kind, id))?;
        return Ok(Response::json(200, &entitlement::to_scim(kind, &d, base)));
    }
    if req.query_param("cursor").is_some() {
        return Err(ScimError::invalid_value(format!(
            "/{} pages by startIndex and count only, not by cursor",
            kind.endpoint()
        )));
    }
    let filter = match req.query_param("filter").filter(|f| !f.trim().is_empty()) {
        Some(f) => entitlement::parse_filter(kind, f)?,
        None => Vec::new(),
    };
    let (start_index, count) = page;
    let found = store
        .definitions(kind, &filter, start_index, count)
        .await?
        .ok_or_else(ScimError::internal)?;
    let resources: Vec<Value> = found
        .items
        .iter()
        .map(|d| entitlement::to_scim(kind, d, base))
        .collect();
    Ok(Response::json(
        200,
        &json!({
            "schemas": [LIST_RESPONSE_SCHEMA],
            "totalResults": found.total,
            "itemsPerPage": resources.len(),
            "startIndex": start_index,
            "Resources": resources,
        }),
    ))
}

fn not_found(kind: Kind, id: &str) -> ScimError {
    ScimError::not_found(format!("{} '{id}' not found", kind.name()))
}

/// The admin routes below `/tenants/{t}/entitlements` or `/roles`: the status and JSON body
/// to answer, or the error. `body` is the request's JSON object (empty when none was sent).
pub async fn admin<D: Db>(
    store: &Store<'_, D>,
    req: &Request,
    body: &Map<String, Value>,
    kind: Kind,
    tail: &[&str],
    now: &str,
) -> Result<(u16, Value)> {
    let base = format!("{}{TENANT_PREFIX}{}{SCIM_PATH}", req.origin, store.tenant());
    let shown = |d: &entitlement::Definition| entitlement::to_scim(kind, d, &base);
    let no_value = |id: &str| {
        ScimError::not_found(format!(
            "no {} '{id}' in tenant '{}'",
            kind.noun(),
            store.tenant()
        ))
    };
    match (req.method, tail) {
        (Method::Get, []) => admin_list(store, req, kind, &base).await,
        (Method::Post, []) => admin_create(store, body, kind, now)
            .await
            .map(|d| (201, shown(&d))),
        (_, []) => Err(ScimError::method_not_allowed(
            "method not allowed here; allowed: GET, POST",
        )),
        (Method::Get, [id]) => match store.definition(kind, id).await? {
            Some(d) => Ok((200, shown(&d))),
            None => Err(no_value(id)),
        },
        (Method::Patch, [id]) => {
            let change = entitlement::parse_change(body)?;
            match store.update_definition(kind, id, &change, now).await? {
                Some(d) => Ok((200, shown(&d))),
                None => Err(no_value(id)),
            }
        }
        (Method::Delete, [id]) => match store.delete_definition(kind, id).await? {
            true => Ok((200, json!({"deleted": id}))),
            false => Err(no_value(id)),
        },
        (_, [_]) => Err(ScimError::method_not_allowed(
            "method not allowed here; allowed: GET, PATCH, DELETE",
        )),
        _ => Err(ScimError::not_found(format!(
            "no admin resource below '{}'",
            kind.endpoint().to_ascii_lowercase()
        ))),
    }
}

async fn admin_list<D: Db>(
    store: &Store<'_, D>,
    req: &Request,
    kind: Kind,
    base: &str,
) -> Result<(u16, Value)> {
    let int = |name: &str, default: i64| -> Result<i64> {
        match req.query_param(name) {
            None => Ok(default),
            Some(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| ScimError::invalid_value(format!("'{name}' must be an integer"))),
        }
    };
    let start_index = int("startIndex", 1)?.max(1);
    let count = int("count", MAX_ADMIN_PAGE)?.clamp(0, MAX_ADMIN_PAGE);
    let page = store
        .definitions(kind, &[], start_index, count)
        .await?
        .ok_or_else(|| no_tenant(store))?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|d| entitlement::to_scim(kind, d, base))
        .collect();
    Ok((
        200,
        json!({"totalResults": page.total, "startIndex": start_index, "Resources": items}),
    ))
}

async fn admin_create<D: Db>(
    store: &Store<'_, D>,
    body: &Map<String, Value>,
    kind: Kind,
    now: &str,
) -> Result<entitlement::Definition> {
    let new = entitlement::parse_new(body)?;
    let id = match &new.id {
        Some(id) => id.clone(),
        None => crate::service::ids::new_id().ok_or_else(ScimError::internal)?,
    };
    match store.create_definition(kind, &id, &new, now).await {
        Ok(d) => Ok(d),
        // The tenant row is the only reference an insert has.
        Err(StoreError::MissingReference) => Err(no_tenant(store)),
        Err(e) => Err(e.into()),
    }
}

fn no_tenant<D: Db>(store: &Store<'_, D>) -> ScimError {
    ScimError::not_found(format!("no tenant '{}'", store.tenant()))
}
