//! The service: what the worker does with a request, given a database. Routing by path to
//! the SCIM API ([`scim`]), the admin API ([`admin`]) and its console ([`console`]), and the
//! OAuth token endpoint ([`oauth`]); authentication and tenancy ([`auth`], [`tenant`],
//! [`credentials`]); rate limits ([`ratelimit`]). Runtime-agnostic: `crate::worker` adapts the
//! Workers runtime to [`handle`], and the native tests call it directly.

pub mod admin;
pub mod admin_json;
pub mod auth;
pub mod console;
pub mod credentials;
pub mod ctx;
pub mod declarations;
pub mod entitlements;
pub mod handoff;
pub mod http;
pub mod ids;
pub mod oauth;
pub mod profile;
pub mod ratelimit;
pub mod route;
pub mod scim;
pub mod tenant;
pub mod webhooks;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod entitlements_tests;
#[cfg(test)]
mod handoff_tests;
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
    resp.with_header(REQUEST_ID_HEADER, request_id)
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
            return Ok(crate::service::oauth::handle(ctx, req, &tenant).await)
        }
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
    scim::serve(
        ctx,
        req,
        url_tenant.as_deref(),
        &base_path,
        rest,
        request_id,
    )
    .await
}

/// Answers a SCIM request the worker authenticated and handed to a tenant's Durable Object
/// (`handoff`), against the object's database (`ctx.db`). The response carries no request id
/// header: the worker adds it, as to every response.
pub async fn handle_handed<D: Db>(ctx: &Ctx<'_, D>, req: &Request) -> Response {
    let Some(handoff) = handoff::Handoff::of(req) else {
        let mut e = ScimError::internal();
        e.cause = Some("a request reached a tenant's object without the worker's handoff".into());
        return error_response(e, &ids::request_id());
    };
    let rid = handoff.request_id.clone();
    match serve_handed(ctx, req, handoff).await {
        Ok(resp) => resp,
        Err(e) => error_response(e, &rid),
    }
}

async fn serve_handed<D: Db>(
    ctx: &Ctx<'_, D>,
    req: &Request,
    h: handoff::Handoff,
) -> Result<Response> {
    handoff::adopt(ctx, &h).await?;
    let tenant::Target::Scim {
        base_path, rest, ..
    } = tenant::target(&req.path)
    else {
        return Err(ScimError::not_found("not a SCIM path"));
    };
    scim::serve_authenticated(ctx, req, h.principal, &base_path, rest, &h.request_id).await
}
