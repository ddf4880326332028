//! The service: what the worker does with a request, given a database. Routing by path to
//! the SCIM API ([`scim`]), the admin API ([`admin`]) and its console ([`console`]), and the
//! OAuth token endpoint ([`oauth`]); the authorization code grant behind Entra's Authorize
//! button ([`authorize`], approved through [`setup`] links or the vendor's sign-in,
//! [`handoff`]); authentication and tenancy ([`auth`], [`tenant`],
//! [`credentials`]); rate limits ([`ratelimit`]). Runtime-agnostic: `crate::worker` adapts the
//! Workers runtime to [`handle`], and the native tests call it directly.

pub mod admin;
pub mod admin_json;
pub mod auth;
pub mod authorize;
pub mod console;
pub mod credentials;
pub mod ctx;
pub mod declarations;
pub mod entitlements;
pub mod handoff;
pub mod http;
pub mod ids;
pub mod moving;
pub mod oauth;
pub mod profile;
pub mod ratelimit;
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
mod entitlements_tests;
#[cfg(test)]
mod moving_tests;
#[cfg(test)]
mod onboarding_tests;
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
        Err(mut e) => {
            e.detail = format!("{} (request id {request_id})", e.detail);
            let cause = e.cause.take();
            Response::error(&e).with_notes(cause)
        }
    };
    resp.with_header(REQUEST_ID_HEADER, request_id)
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
