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
use crate::store::entitlements::{ValuesOp, ValuesOutcome};
use crate::store::{Db, Store};
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
    let filter = match (id, req.query_param("filter")) {
        (None, _) if req.query_param("cursor").is_some() => {
            return Err(ScimError::invalid_value(format!(
                "/{} pages by startIndex and count only, not by cursor",
                kind.endpoint()
            )))
        }
        (None, Some(f)) if !f.trim().is_empty() => entitlement::parse_filter(kind, f)?,
        _ => Vec::new(),
    };
    let (start_index, count) = page;
    let op = match id {
        Some(id) => ValuesOp::Get(id),
        None => ValuesOp::List {
            filter: &filter,
            start_index,
            count,
        },
    };
    let render = |d: &entitlement::Definition| {
        let mut v = entitlement::to_scim(kind, d, base);
        let (attributes, excluded) = (
            req.query_param("attributes"),
            req.query_param("excludedAttributes"),
        );
        entitlement::project(kind, &mut v, attributes, excluded);
        v
    };
    match store.values(kind, op).await? {
        ValuesOutcome::One(d) => Ok(Response::json(200, &render(&d))),
        ValuesOutcome::Page { total, items } => {
            let resources: Vec<Value> = items.iter().map(render).collect();
            Ok(Response::json(
                200,
                &json!({
                    "schemas": [LIST_RESPONSE_SCHEMA],
                    "totalResults": total,
                    "itemsPerPage": resources.len(),
                    "startIndex": start_index,
                    "Resources": resources,
                }),
            ))
        }
        // The tenant was just authenticated: its row missing is the database's fault.
        ValuesOutcome::NoTenant => {
            Err(ScimError::internal().with_cause("the authenticated tenant has no row"))
        }
        ValuesOutcome::NoValue | ValuesOutcome::Deleted => Err(ScimError::not_found(format!(
            "{} '{}' not found",
            kind.name(),
            id.unwrap_or_default()
        ))),
    }
}

/// The admin routes below `/tenants/{t}/entitlements` or `/roles`: the status and JSON body
/// to answer, or the error. `body` is the request's JSON object (empty when none was sent).
/// Everything is checked before the one round trip.
pub async fn admin<D: Db>(
    store: &Store<'_, D>,
    req: &Request,
    body: &Map<String, Value>,
    kind: Kind,
    tail: &[&str],
    now: &str,
) -> Result<(u16, Value)> {
    // Assigned in the arms that need them, so each op borrows what it was parsed from.
    let (new, change, id);
    let op = match (req.method, tail) {
        (Method::Get, []) => {
            let (start_index, count) = admin_page(req)?;
            ValuesOp::List {
                filter: &[],
                start_index,
                count,
            }
        }
        (Method::Post, []) => {
            new = entitlement::parse_new(body)?;
            id = match &new.id {
                Some(id) => id.clone(),
                None => crate::service::ids::new_id().ok_or_else(ScimError::internal)?,
            };
            ValuesOp::Create {
                id: &id,
                new: &new,
                now,
            }
        }
        (_, []) => return Err(not_allowed("GET, POST")),
        (Method::Get, [id]) => ValuesOp::Get(id),
        (Method::Patch, [id]) => {
            change = entitlement::parse_change(body)?;
            ValuesOp::Update {
                id,
                change: &change,
                now,
            }
        }
        (Method::Delete, [id]) => ValuesOp::Delete(id),
        (_, [_]) => return Err(not_allowed("GET, PATCH, DELETE")),
        _ => {
            return Err(ScimError::not_found(format!(
                "no admin resource below '{}'",
                kind.endpoint().to_ascii_lowercase()
            )))
        }
    };
    let base = format!("{}{TENANT_PREFIX}{}{SCIM_PATH}", req.origin, store.tenant());
    let status = if req.method == Method::Post { 201 } else { 200 };
    match store.values(kind, op).await? {
        ValuesOutcome::One(d) => Ok((status, entitlement::to_scim(kind, &d, &base))),
        ValuesOutcome::Page { total, items } => {
            let items: Vec<Value> = items
                .iter()
                .map(|d| entitlement::to_scim(kind, d, &base))
                .collect();
            Ok((200, json!({"totalResults": total, "Resources": items})))
        }
        ValuesOutcome::Deleted => Ok((200, json!({"deleted": tail.first()}))),
        ValuesOutcome::NoValue => Err(ScimError::not_found(format!(
            "no {} '{}' in tenant '{}'",
            kind.noun(),
            tail.first().unwrap_or(&""),
            store.tenant()
        ))),
        ValuesOutcome::NoTenant => Err(ScimError::not_found(format!(
            "no tenant '{}'",
            store.tenant()
        ))),
    }
}

fn not_allowed(allowed: &str) -> ScimError {
    ScimError::method_not_allowed(format!("method not allowed here; allowed: {allowed}"))
}

/// `startIndex` and `count` of an admin list: all values by default, at most
/// [`MAX_ADMIN_PAGE`].
fn admin_page(req: &Request) -> Result<(i64, i64)> {
    let int = |name: &str, default: i64| -> Result<i64> {
        match req.query_param(name) {
            None => Ok(default),
            Some(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| ScimError::invalid_value(format!("'{name}' must be an integer"))),
        }
    };
    Ok((
        int("startIndex", 1)?.max(1),
        int("count", MAX_ADMIN_PAGE)?.clamp(0, MAX_ADMIN_PAGE),
    ))
}
