//! The service: what the worker does with a request, given a database. Routing by path to
//! the SCIM API ([`scim`]), the admin API ([`admin`]) and its console ([`console`]), and the
//! OAuth token endpoint ([`oauth`]); the authorization code grant behind Entra's Authorize
//! button ([`authorize`], approved through [`setup`] links or the vendor's sign-in,
//! [`handoff`]); a tenant's directory in its own Durable Object ([`relay`]); authentication and tenancy ([`auth`], [`tenant`],
//! [`credentials`]); rate limits ([`ratelimit`]). Runtime-agnostic: `crate::worker` adapts the
//! Workers runtime to [`handle`], and the native tests call it directly.

pub mod admin;
pub mod admin_json;
pub mod adopted;
pub mod auth;
pub mod authorize;
pub mod bulk;
pub mod console;
pub mod credentials;
pub mod ctx;
pub mod declarations;
pub mod deletion;
pub mod entitlements;
pub mod handoff;
pub mod http;
pub mod ids;
pub mod moving;
pub mod moving_hop;
pub mod oauth;
pub mod profile;
pub mod ratelimit;
pub mod relay;
pub mod route;
pub mod scim;
pub mod setup;
pub mod tenant;
pub mod webhooks;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod bulk_tests;
#[cfg(test)]
mod deletion_tests;
#[cfg(test)]
mod entitlements_tests;
#[cfg(test)]
mod moving_hop_tests;
#[cfg(test)]
mod moving_tests;
#[cfg(test)]
mod onboarding_tests;
#[cfg(test)]
mod relay_tests;
#[cfg(test)]
mod reliability_tests;
#[cfg(test)]
mod tenancy_tests;
#[cfg(test)]
mod webhooks_tests;

use crate::proto::error::{Result, ScimError};
use crate::store::Db;
use ctx::{Ctx, REQUEST_ID_HEADER};
use http::{Request, Response};

/// Answers one request. Every response carries `x-request-id`; error details quote it too,
/// because identity providers show the error body (not the headers) in their provisioning
/// logs. No response carries CORS headers: SCIM is server-to-server, so a browser preflight
/// (OPTIONS without credentials) is answered 401 and never approved.
pub async fn handle<D: Db>(ctx: &Ctx<'_, D>, req: &Request) -> Response {
    let request_id = ids::request_id();
    let resp = match route(ctx, req, &request_id).await {
        Ok(resp) => resp,
        Err(e) => error_response(e, &request_id),
    };
    // Set, not appended: an answer a tenant's object gave whole (an admin read of its
    // directory) already carries the object's id for the hop.
    resp.set_header(REQUEST_ID_HEADER, request_id)
}

/// The RFC 7644 §3.12 body of `e`, quoting the request id; its cause goes to the log.
fn error_response(mut e: ScimError, request_id: &str) -> Response {
    e.detail = format!("{} (request id {request_id})", e.detail);
    let cause = e.cause.take();
    Response::error(&e).with_notes(cause)
}

async fn route<D: Db>(ctx: &Ctx<'_, D>, req: &Request, request_id: &str) -> Result<Response> {
    use crate::service::tenant::Target;
    let (url_tenant, base_path, rest) = match crate::service::tenant::target(&req.path) {
        Target::Scim {
            tenant,
            base_path,
            rest,
        } => (tenant, base_path, rest),
        Target::Admin { rest } => return Ok(crate::service::admin::handle(ctx, req, rest).await),
        Target::OAuthToken { tenant } => {
            return Ok(crate::service::authorize::token(ctx, req, Some(&tenant)).await)
        }
        Target::OAuth { path } => {
            let resp = match path {
                tenant::AUTHORIZE_PATH => authorize::authorize(ctx, req).await,
                tenant::DEPLOYMENT_TOKEN_PATH => authorize::token(ctx, req, None).await,
                handoff::RETURN_PATH => handoff::finish(ctx, req).await,
                _ => {
                    return Err(ScimError::not_found(format!(
                        "no OAuth endpoint at '{path}'"
                    )))
                }
            };
            return Ok(resp);
        }
        Target::Setup { rest } => return Ok(setup::handle(ctx, req, rest).await),
        Target::NotFound => {
            // The admin console's static files (`/admin`, `/admin/console.js`, ...).
            if let Some(resp) = crate::service::console::asset(req) {
                return Ok(resp);
            }
            return Err(ScimError::not_found(format!(
                "no resource at '{}'; the SCIM API is under {}",
                req.path,
                scim::BASE_PATH
            )));
        }
    };
    // Every SCIM request, bulk or not, is authenticated and rate-limited here, once.
    let principal = match scim::admit(ctx, req, url_tenant.as_deref()).await? {
        Ok(principal) => principal,
        Err(limited) => return Ok(limited),
    };
    if bulk::addressed(rest) {
        // A bulk request is the directory's as a whole: one hop, then its operations run
        // where the tenant's data is.
        if let Some(to) = ctx.forward {
            return relay::forward(ctx, to, req, principal, request_id, None).await;
        }
        return bulk::serve(ctx, req, principal, &base_path, rest, request_id).await;
    }
    scim::serve(ctx, req, principal, &base_path, rest, request_id).await
}

/// Answers a request the worker authenticated and handed to a tenant's Durable Object
/// (`relay`), against the object's database (`ctx.db`): a SCIM request, or an admin call
/// about the tenant's directory (`admin::handed`). The response carries no request id
/// header: the worker adds it, as to every response.
pub async fn handle_handed<D: Db>(ctx: &Ctx<'_, D>, req: &Request) -> Response {
    // The object's profiles come from its own copy, cached apart from the worker's.
    let ctx = &Ctx {
        profiles: profile::object_cache(),
        ..*ctx
    };
    let Some(relayed) = relay::Relayed::of(req) else {
        let mut e = ScimError::internal();
        e.cause = Some("a request reached a tenant's object without the worker's relay".into());
        return error_response(e, &ids::request_id());
    };
    let rid = relayed.request_id.clone();
    let resp = match serve_handed(ctx, req, relayed).await {
        Ok(resp) => resp,
        Err(e) => error_response(e, &rid),
    };
    // The worker's own id for the request: with it on the answer, the worker can send the
    // object's answer on as it is instead of copying it to add the header.
    resp.set_header(REQUEST_ID_HEADER, rid)
}

async fn serve_handed<D: Db>(
    ctx: &Ctx<'_, D>,
    req: &Request,
    h: relay::Relayed,
) -> Result<Response> {
    let target = tenant::target(&req.path);
    // Only the call that brings the declarations may find the object's copy stale.
    let brings_declarations = matches!(&target, tenant::Target::Admin { rest }
        if req.method == http::Method::Post && admin::declares(rest));
    if !relay::adopt(ctx, &h, !brings_declarations).await? {
        return Ok(relay::stale());
    }
    match target {
        tenant::Target::Scim {
            base_path, rest, ..
        } => {
            if bulk::addressed(rest) {
                return bulk::serve(ctx, req, h.principal, &base_path, rest, &h.request_id).await;
            }
            scim::serve(ctx, req, h.principal, &base_path, rest, &h.request_id).await
        }
        tenant::Target::Admin { rest } => {
            let resp = admin::handed(ctx, req, rest, &h.principal.tenant).await;
            // It may have rewritten the tenant row (an import): the next request mirrors it.
            if let Some(a) = ctx.adopted {
                a.clear();
            }
            Ok(resp.unwrap_or_else(|e| admin::error_response(&e)))
        }
        _ => Err(ScimError::not_found("not a SCIM path")),
    }
}
