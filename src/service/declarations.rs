//! Admin API for a tenant's declared extension schemas (`/admin/api/tenants/{t}/schemas`).
//!
//! Declaring is an upsert by URN. The answer reports how the data already kept verbatim
//! under that URN fits the declaration: nothing stored is changed or dropped, so a
//! declaration that does not fit what an identity provider sends loses nothing and says
//! which resources disagree. Deleting a declaration makes the URN undeclared again; its data
//! stays and is served as sent.

use crate::proto::declared;
use crate::proto::error::{Result, ScimError};
use crate::proto::resource;
use crate::proto::schema::{ResourceType, Schema};
use crate::proto::time;
use crate::service::admin_json::{
    body, json_response, no_tenant, not_allowed, opt_bool, reject_unknown,
};
use crate::service::ctx::Ctx;
use crate::service::http::{Method, Request, Response};
use crate::store::schemas::Declaration;
use crate::store::{Db, Store};
use serde_json::{json, Value};

/// Stored resources checked against a new declaration; beyond this the report says so.
const CHECK_LIMIT: i64 = 10_000;
/// A kept value that fits but is stored in another form than a write would store it (a
/// dateTime with an offset, `"True"` for a boolean): filters read it as stored until the
/// resource is written again.
const NOT_NORMAL: &str = "fits the declaration, but is stored in another form than a write \
     would store it (e.g. a dateTime with an offset); filters compare it as stored until the \
     resource is written again";
/// Conflicts listed in the report.
const MAX_CONFLICTS: usize = 100;

pub async fn route<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
    tail: &[&str],
) -> Result<Response> {
    match (req.method, tail) {
        (Method::Get, []) => list(store).await,
        (_, []) => Err(not_allowed("GET")),
        (Method::Get, [urn]) => get(store, urn).await,
        (Method::Put, [urn]) => put(ctx, store, req, urn).await,
        (Method::Delete, [urn]) => delete(ctx, store, urn).await,
        (_, [_]) => Err(not_allowed("GET, PUT, DELETE")),
        _ => Err(ScimError::not_found("no such schema route")),
    }
}

fn declaration_json(d: &Declaration) -> Value {
    let schema: Value = serde_json::from_str(&d.document).unwrap_or(Value::Null);
    json!({
        "resourceType": d.rt.name(),
        "required": d.required,
        "schema": schema,
        "created": d.created,
        "modified": d.modified,
    })
}

async fn list<D: Db>(store: &Store<'_, D>) -> Result<Response> {
    if store.tenant_record().await?.is_none() {
        return Err(no_tenant(store));
    }
    let all: Vec<Value> = store
        .declarations()
        .await?
        .iter()
        .map(declaration_json)
        .collect();
    Ok(json_response(200, &json!({ "schemas": all })))
}

async fn get<D: Db>(store: &Store<'_, D>, urn: &str) -> Result<Response> {
    store
        .declarations()
        .await?
        .iter()
        .find(|d| d.id.eq_ignore_ascii_case(urn))
        .map(|d| json_response(200, &declaration_json(d)))
        .ok_or_else(|| ScimError::not_found(format!("no declared schema '{urn}'")))
}

async fn put<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
    urn: &str,
) -> Result<Response> {
    let body = body(req)?;
    reject_unknown(&body, &["resourceType", "required", "schema"])?;
    let rt = match body.get("resourceType").and_then(Value::as_str) {
        Some(name) => ResourceType::from_name(name).ok_or_else(|| {
            ScimError::invalid_value(format!(
                "'resourceType' must be \"User\" or \"Group\", not \"{name}\""
            ))
        })?,
        None => {
            return Err(ScimError::invalid_value(
                "'resourceType' (\"User\" or \"Group\") is required",
            ))
        }
    };
    let required = opt_bool(&body, "required")?.unwrap_or(false);
    let doc = body.get("schema").ok_or_else(|| {
        ScimError::invalid_value("'schema' (an RFC 7643 §7 schema representation) is required")
    })?;
    let ext = declared::parse(rt, required, doc)?;
    if !ext.schema.id.eq_ignore_ascii_case(urn) {
        return Err(ScimError::invalid_value(format!(
            "the schema's id \"{}\" differs from the URN in the path \"{urn}\"",
            ext.schema.id
        )));
    }
    if store.tenant_record().await?.is_none() {
        return Err(no_tenant(store));
    }
    check_siblings(&store.declarations().await?, &ext.schema.id)?;
    let now = time::format_millis(ctx.now_ms);
    let document = declared::representation(&ext).to_string();
    let (decl, created) = store
        .put_declaration(&ext.schema.id, rt, required, &document, &now)
        .await?;
    ctx.profiles.invalidate(store.tenant());
    let report = match ctx.forward {
        // The tenant's data is in its object: it checks it, with its copy made D1's.
        Some(to) => {
            let (v, _) = crate::service::relay::declare(ctx, to, store, Some(&decl.id)).await?;
            v.get("stored").cloned().unwrap_or(Value::Null)
        }
        None => check_and_reindex(store, rt, &ext).await?,
    };
    let mut out = declaration_json(&decl);
    if let Some(obj) = out.as_object_mut() {
        obj.insert("stored".into(), report);
    }
    Ok(json_response(if created { 201 } else { 200 }, &out))
}

/// How the stored data fits a new declaration of its URN ([`check_stored`]), with the count
/// of duplicate values its unique attributes found (their index rebuilt).
async fn check_and_reindex<D: Db>(
    store: &Store<'_, D>,
    rt: ResourceType,
    ext: &crate::proto::schema::DeclaredExtension,
) -> Result<Value> {
    let mut report = check_stored(store, rt, &ext.schema).await?;
    let unique = crate::store::unique::unique_attrs_of(ext);
    let duplicates = store.reindex_unique(rt, &ext.schema.id, &unique).await?;
    if let Some(obj) = report.as_object_mut() {
        obj.insert("duplicateValues".into(), json!(duplicates));
    }
    Ok(report)
}

/// A tenant's Durable Object receives D1's declarations (`relay::declare`): it replaces its
/// copy in one batch and rebuilds the unique values of every URN whose declaration is new,
/// changed or gone, then, for `check` (the URN an admin just declared), answers how its
/// stored data fits, as [`put`] does for data in D1: `{"stored": report}`.
pub async fn mirror<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    body: &serde_json::Map<String, Value>,
) -> Result<Value> {
    let new: Vec<Declaration> = body
        .get("declarations")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .map(crate::service::relay::declaration_of)
                .collect()
        })
        .unwrap_or(Some(Vec::new()))
        .ok_or_else(|| ScimError::invalid_value("a declaration the worker sent is malformed"))?;
    let check = body.get("check").and_then(Value::as_str);
    let old = store.declarations().await?;
    store.replace_declarations(&new).await?;
    ctx.profiles.invalidate(store.tenant());
    let same = |a: &Declaration, b: &Declaration| {
        a.id.eq_ignore_ascii_case(&b.id) && a.rt == b.rt && a.document == b.document
    };
    let mut report = Value::Null;
    for d in &new {
        let is_check = check.is_some_and(|c| c.eq_ignore_ascii_case(&d.id));
        if !is_check && old.iter().any(|o| same(o, d)) {
            continue;
        }
        let doc: Value = serde_json::from_str(&d.document).unwrap_or(Value::Null);
        let Ok(ext) = declared::parse(d.rt, d.required, &doc) else {
            continue;
        };
        if is_check {
            report = check_and_reindex(store, d.rt, &ext).await?;
        } else {
            let unique = crate::store::unique::unique_attrs_of(&ext);
            store.reindex_unique(d.rt, &d.id, &unique).await?;
        }
    }
    for gone in old
        .iter()
        .filter(|o| !new.iter().any(|d| d.id.eq_ignore_ascii_case(&o.id)))
    {
        store.reindex_unique(gone.rt, &gone.id, &[]).await?;
    }
    Ok(json!({ "stored": report }))
}

/// A tenant declares at most [`declared::MAX_DECLARED`] schemas, none inside another's
/// namespace (`urn:a:Ext` and `urn:a:Ext:sub` would read the same keys two ways).
fn check_siblings(existing: &[Declaration], urn: &str) -> Result<()> {
    let others: Vec<&Declaration> = existing
        .iter()
        .filter(|d| !d.id.eq_ignore_ascii_case(urn))
        .collect();
    if others.len() >= declared::MAX_DECLARED {
        return Err(ScimError::new(
            409,
            None,
            format!(
                "a tenant declares at most {} schemas",
                declared::MAX_DECLARED
            ),
        ));
    }
    let under = |outer: &str, inner: &str| {
        inner.len() > outer.len()
            && inner
                .get(..outer.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(outer))
            && inner.as_bytes().get(outer.len()) == Some(&b':')
    };
    match others
        .iter()
        .find(|d| under(&d.id, urn) || under(urn, &d.id))
    {
        Some(d) => Err(ScimError::new(
            409,
            None,
            format!("\"{urn}\" overlaps the declared schema \"{}\"", d.id),
        )),
        None => Ok(()),
    }
}

/// How the data kept under the URN fits the declaration: resources checked, the first
/// conflicts with their reason, and whether every stored resource was checked.
async fn check_stored<D: Db>(
    store: &Store<'_, D>,
    rt: ResourceType,
    ext: &Schema,
) -> Result<Value> {
    let rows = store.stored_under(rt, &ext.id, CHECK_LIMIT + 1).await?;
    let complete = rows.len() as i64 <= CHECK_LIMIT;
    let mut conflicts = Vec::new();
    let mut conflicting = 0usize;
    for (id, text) in rows.iter().take(CHECK_LIMIT as usize) {
        let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let detail = match resource::check_extension(ext, &value) {
            Err(e) => e.detail,
            Ok(normal) if normal != value => NOT_NORMAL.to_string(),
            Ok(_) => continue,
        };
        conflicting += 1;
        if conflicts.len() < MAX_CONFLICTS {
            conflicts.push(json!({"id": id, "detail": detail}));
        }
    }
    Ok(json!({
        "checked": rows.len().min(CHECK_LIMIT as usize),
        "conflicting": conflicting,
        "conflicts": conflicts,
        "complete": complete,
    }))
}

async fn delete<D: Db>(ctx: &Ctx<'_, D>, store: &Store<'_, D>, urn: &str) -> Result<Response> {
    let Some(decl) = store
        .declarations()
        .await?
        .into_iter()
        .find(|d| d.id.eq_ignore_ascii_case(urn))
    else {
        return Err(ScimError::not_found(format!("no declared schema '{urn}'")));
    };
    store.delete_declaration(&decl.id).await?;
    ctx.profiles.invalidate(store.tenant());
    match ctx.forward {
        Some(to) => {
            crate::service::relay::declare(ctx, to, store, None).await?;
        }
        None => {
            store.reindex_unique(decl.rt, &decl.id, &[]).await?;
        }
    }
    Ok(Response::empty(204))
}
