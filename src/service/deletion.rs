//! Deletion policies in the admin API (issue 18 item 2): the tenant's `deletion` setting, its
//! tombstones, and restoring one.
//!
//! | Route | Methods |
//! |---|---|
//! | `/tenants/{t}` | PATCH `{"deletion": {"policy": "hard" \| "soft", "days"?: n, "restoreOnCreate"?: bool}}` |
//! | `/tenants/{t}/tombstones` | GET `?type=User\|Group&limit=` (newest first, at most 1,000) |
//! | `/tenants/{t}/tombstones/{id}/restore` | POST: the resource back under its id (`200`, SCIM JSON); `404` without such a tombstone; `409` if its `userName`/`displayName` is taken now |
//!
//! The store keeps the mechanics (`store::tombstones`); this module reads and renders. With
//! durable-object storage these routes run in the tenant's object, over its database (the
//! worker hands them on, `admin::handed`), and the object purges its own tombstones
//! (`relay::purge`).

use crate::proto::error::{Result, ScimError};
use crate::proto::projection::Projection;
use crate::proto::schema::ResourceType;
use crate::proto::time;
use crate::service::admin_json::{json_response, not_allowed, reject_unknown};
use crate::service::ctx::Ctx;
use crate::service::http::{Method, Request, Response};
use crate::service::tenant::{SCIM_PATH, TENANT_PREFIX};
use crate::store::events::AuditNote;
use crate::store::tenancy::LimitChange;
use crate::store::tombstones::{Policy, Restored, Tombstone};
use crate::store::{Db, Store};
use serde_json::{json, Map, Value};

/// Days a `soft` policy keeps tombstones when the PATCH names none: Entra's own soft-delete
/// window (a deleted user is restorable in Entra for 30 days).
pub const DEFAULT_DAYS: i64 = 30;
/// Longest retention accepted (ten years).
const MAX_DAYS: i64 = 3650;
const MAX_LIST: i64 = 1000;

/// The tenant JSON's `deletion` member.
pub fn policy_json(p: Policy) -> Value {
    match p.days {
        None => json!({"policy": "hard", "restoreOnCreate": p.restore_on_create}),
        Some(d) => json!({"policy": "soft", "days": d, "restoreOnCreate": p.restore_on_create}),
    }
}

/// The `deletion` member of a tenant PATCH: the days column's change and `restoreOnCreate`'s.
pub fn policy_change(body: &Map<String, Value>) -> Result<(LimitChange, Option<bool>)> {
    let d = match body.get("deletion") {
        None => return Ok((None, None)),
        Some(Value::Object(d)) => d,
        Some(_) => {
            return Err(ScimError::invalid_value(
                "'deletion' must be an object like {\"policy\": \"soft\", \"days\": 30}",
            ))
        }
    };
    reject_unknown(d, &["policy", "days", "restoreOnCreate"])?;
    let restore = crate::service::admin_json::opt_bool(d, "restoreOnCreate")?;
    let days = match d.get("days") {
        None => None,
        Some(v) => match v.as_i64() {
            Some(n) if (0..=MAX_DAYS).contains(&n) => Some(n),
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "'deletion.days' must be a whole number from 0 to {MAX_DAYS}"
                )))
            }
        },
    };
    let change = match (crate::service::admin_json::opt_string(d, "policy")?, days) {
        (Some("hard"), None) => Some(None),
        (Some("hard"), Some(_)) => {
            return Err(ScimError::invalid_value(
                "'deletion.days' applies to the \"soft\" policy only",
            ))
        }
        (Some("soft"), days) => Some(Some(days.unwrap_or(DEFAULT_DAYS))),
        (None, Some(n)) => Some(Some(n)),
        (None, None) => None,
        (Some(other), _) => {
            return Err(ScimError::invalid_value(format!(
                "'deletion.policy' must be \"hard\" or \"soft\", not \"{other}\""
            )))
        }
    };
    Ok((change, restore))
}

/// `/tenants/{t}/tombstones[/{id}/restore]`.
pub async fn route<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
    tail: &[&str],
) -> Result<Response> {
    match (tail, req.method) {
        ([], Method::Get) => list(store, req).await,
        ([], _) => Err(not_allowed("GET")),
        ([id, "restore"], Method::Post) => restore(ctx, store, req, id).await,
        ([_, "restore"], _) => Err(not_allowed("POST")),
        _ => Err(ScimError::not_found(format!(
            "no admin resource at '{}'; see /admin/api/tenants",
            req.path
        ))),
    }
}

async fn list<D: Db>(store: &Store<'_, D>, req: &Request) -> Result<Response> {
    let rt = match req.query_param("type").filter(|s| !s.is_empty()) {
        None => None,
        Some(t) => Some(ResourceType::from_name(t).ok_or_else(|| {
            ScimError::invalid_value(format!("'type' must be User or Group, not '{t}'"))
        })?),
    };
    let limit = match req.query_param("limit").filter(|s| !s.is_empty()) {
        None => MAX_LIST,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ScimError::invalid_value("'limit' must be a whole number"))?
            .min(MAX_LIST),
    };
    store
        .tenant_record()
        .await?
        .ok_or_else(|| crate::service::admin_json::no_tenant(store))?;
    let list: Vec<Value> = store
        .tombstones(rt, limit)
        .await?
        .iter()
        .map(tombstone_json)
        .collect();
    Ok(json_response(200, &json!({ "tombstones": list })))
}

fn tombstone_json(t: &Tombstone) -> Value {
    let data: Value = serde_json::from_str(&t.data).unwrap_or_else(|_| json!({}));
    let name = match t.rt {
        ResourceType::User => "userName",
        ResourceType::Group => "displayName",
    };
    json!({
        "id": t.id,
        "resourceType": t.rt.name(),
        name: data.get(name),
        "externalId": data.get("externalId"),
        "created": t.created,
        "deleted": t.deleted,
        "attributes": data,
    })
}

/// Restores one tombstone, recorded in the provisioning log (op `create`, lifecycle
/// `restore`, no credential: the admin did it) so webhooks and the feed say so.
async fn restore<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
    id: &str,
) -> Result<Response> {
    let missing = || ScimError::not_found(format!("no tombstone '{id}' in this tenant"));
    let rt = store.tombstone_type(id).await?.ok_or_else(missing)?;
    let profile = crate::service::profile::load(ctx.profiles, store, ctx.now_ms).await?;
    let now = time::format_millis(ctx.now_ms);
    let store = Store::new(ctx.db, store.tenant())
        .with_unique(crate::store::unique::unique_attrs(profile.schemas.of(rt)))
        .audited(AuditNote {
            op: "create",
            credential: None,
            request_id: crate::service::ids::request_id(),
            attributes: Vec::new(),
            time: now.clone(),
        });
    let stored = match store.restore(rt, id, None, &[], &now, &[]).await? {
        Restored::Done(s) => s,
        Restored::NotFound => return Err(missing()),
    };
    let base = format!("{}{TENANT_PREFIX}{}{SCIM_PATH}", req.origin, store.tenant());
    let mut out = Vec::new();
    crate::service::scim::write_resource(&mut out, &stored, &Projection::default(), &base)?;
    let body: Value = serde_json::from_slice(&out).map_err(|_| ScimError::internal())?;
    Ok(json_response(200, &body))
}
