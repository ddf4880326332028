//! What a SCIM request asks for, parsed once from its method and path (RFC 7644 §3.2): the
//! handlers, the provisioning log (which requests are writes) and the errors for paths and
//! methods that exist nowhere all read the same [`Route`].

use crate::proto::entitlement::Kind;
use crate::proto::error::{Result, ScimError};
use crate::proto::schema::ResourceType;
use crate::service::http::Method;

/// A SCIM endpoint and the operation on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    ServiceProviderConfig,
    /// `/ResourceTypes` or `/ResourceTypes/{name}`.
    ResourceTypes(Option<String>),
    /// `/Schemas` or `/Schemas/{urn}`.
    Schemas(Option<String>),
    /// `POST /.search` (`None`) or `POST /{endpoint}/.search`.
    Search(Option<ResourceType>),
    List(ResourceType),
    Create(ResourceType),
    Get(ResourceType, String),
    Replace(ResourceType, String),
    Patch(ResourceType, String),
    Delete(ResourceType, String),
    /// `GET /Entitlements[/{id}]`, `GET /Roles[/{id}]`: read-only (src/service/entitlements.rs).
    Entitlements(Kind, Option<String>),
    /// `POST /Events/{stream}`: an RFC 8936 security event poll (src/service/webhooks/set.rs).
    Events(String),
}

/// A write, as the provisioning log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOp<'r> {
    pub op: &'static str,
    pub rt: ResourceType,
    pub id: Option<&'r str>,
}

impl Route {
    /// The route for `method` on the percent-decoded path `segments` below the SCIM base;
    /// 404 for a path that names nothing, 405 for a method the path does not take, 501 for
    /// `/Me`, which this service provider does not offer. `/Bulk` never gets here: it is
    /// served by `service::bulk`, which runs each of its operations through a `Route`.
    pub fn parse(method: Method, segments: &[&str]) -> Result<Route> {
        let is = |seg: &str, name: &str| seg.eq_ignore_ascii_case(name);
        match segments {
            [] => Err(ScimError::not_found(
                "nothing here; see /ServiceProviderConfig, /ResourceTypes, /Schemas, /Users, /Groups",
            )),
            [first] if is(first, "ServiceProviderConfig") => {
                only(method, &[Method::Get]).map(|()| Route::ServiceProviderConfig)
            }
            [first, tail @ ..] if is(first, "ResourceTypes") => {
                only(method, &[Method::Get])?;
                match tail {
                    [] => Ok(Route::ResourceTypes(None)),
                    [name] => Ok(Route::ResourceTypes(Some(name.to_string()))),
                    _ => Err(ScimError::not_found("no such resource type")),
                }
            }
            [first, tail @ ..] if is(first, "Schemas") => {
                only(method, &[Method::Get])?;
                match tail {
                    [] => Ok(Route::Schemas(None)),
                    [urn] => Ok(Route::Schemas(Some(urn.to_string()))),
                    _ => Err(ScimError::not_found("no such schema")),
                }
            }
            [".search"] => only(method, &[Method::Post]).map(|()| Route::Search(None)),
            [first, stream] if is(first, "Events") => {
                only(method, &[Method::Post]).map(|()| Route::Events(stream.to_string()))
            }
            [first, ..] if is(first, "Me") => Err(ScimError::not_implemented(
                format!("/{first} is not supported by this service provider"),
            )),
            [endpoint, tail @ ..] if Kind::from_endpoint(endpoint).is_some() => {
                entitlement_route(method, endpoint, tail)
            }
            [endpoint, tail @ ..] => {
                let rt = ResourceType::from_endpoint(endpoint)
                    .ok_or_else(|| ScimError::not_found(format!("no endpoint '/{endpoint}'")))?;
                resource_route(method, rt, tail)
            }
        }
    }

    /// The write this route is, if it is one: what the provisioning log records, for
    /// failures as for successes.
    pub fn write(&self) -> Option<WriteOp<'_>> {
        let (op, rt, id) = match self {
            Route::Create(rt) => ("create", *rt, None),
            Route::Replace(rt, id) => ("replace", *rt, Some(id.as_str())),
            Route::Patch(rt, id) => ("patch", *rt, Some(id.as_str())),
            Route::Delete(rt, id) => ("delete", *rt, Some(id.as_str())),
            _ => return None,
        };
        Some(WriteOp { op, rt, id })
    }
}

/// Routes below `/Users` or `/Groups`.
fn resource_route(method: Method, rt: ResourceType, tail: &[&str]) -> Result<Route> {
    match tail {
        [] => match method {
            Method::Get => Ok(Route::List(rt)),
            Method::Post => Ok(Route::Create(rt)),
            _ => Err(not_allowed(&[Method::Get, Method::Post])),
        },
        [".search"] => only(method, &[Method::Post]).map(|()| Route::Search(Some(rt))),
        [id] => {
            let id = id.to_string();
            match method {
                Method::Get => Ok(Route::Get(rt, id)),
                Method::Put => Ok(Route::Replace(rt, id)),
                Method::Patch => Ok(Route::Patch(rt, id)),
                Method::Delete => Ok(Route::Delete(rt, id)),
                _ => Err(not_allowed(&[
                    Method::Get,
                    Method::Put,
                    Method::Patch,
                    Method::Delete,
                ])),
            }
        }
        _ => Err(ScimError::not_found(format!(
            "no resource at '/{}/{}'",
            rt.endpoint(),
            tail.join("/")
        ))),
    }
}

/// Routes below `/Entitlements` or `/Roles`. Their values are the vendor's to define (admin
/// API), so a SCIM write is `405` (RFC 9110 §15.5.6: the resource exists, the method is not
/// one it takes), not `501`, which RFC 7644 keeps for operations the service lacks entirely.
fn entitlement_route(method: Method, endpoint: &str, tail: &[&str]) -> Result<Route> {
    let kind = Kind::from_endpoint(endpoint)
        .ok_or_else(|| ScimError::not_found(format!("no endpoint '/{endpoint}'")))?;
    let id = match tail {
        [] => None,
        [id] if *id != ".search" => Some(id.to_string()),
        _ => {
            return Err(ScimError::not_found(format!(
                "no resource at '/{}/{}'",
                kind.endpoint(),
                tail.join("/")
            )))
        }
    };
    if method != Method::Get {
        return Err(ScimError::method_not_allowed(format!(
            "/{} is read-only: its values are defined by the application's vendor through \
             the admin API; allowed: GET",
            kind.endpoint()
        )));
    }
    Ok(Route::Entitlements(kind, id))
}

pub fn method_label(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
        Method::Other => "OTHER",
    }
}

fn not_allowed(allowed: &[Method]) -> ScimError {
    let names: Vec<&str> = allowed.iter().map(|m| method_label(*m)).collect();
    ScimError::method_not_allowed(format!(
        "method not allowed here; allowed: {}",
        names.join(", ")
    ))
}

fn only(method: Method, allowed: &[Method]) -> Result<()> {
    if allowed.contains(&method) {
        Ok(())
    } else {
        Err(not_allowed(allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ResourceType::{Group, User};

    fn route(method: Method, path: &str) -> Result<Route> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        Route::parse(method, &segs)
    }

    #[test]
    fn every_endpoint_and_method() {
        use Method::*;
        let id = || "2819c223".to_string();
        let cases = [
            (Get, "/ServiceProviderConfig", Route::ServiceProviderConfig),
            (Get, "/serviceproviderconfig", Route::ServiceProviderConfig),
            (Get, "/ResourceTypes", Route::ResourceTypes(None)),
            (
                Get,
                "/ResourceTypes/User",
                Route::ResourceTypes(Some("User".into())),
            ),
            (Get, "/Schemas", Route::Schemas(None)),
            (Post, "/.search", Route::Search(None)),
            (Post, "/Groups/.search", Route::Search(Some(Group))),
            (Get, "/Users", Route::List(User)),
            (Post, "/Users", Route::Create(User)),
            (Get, "/Users/2819c223", Route::Get(User, id())),
            (Put, "/Groups/2819c223", Route::Replace(Group, id())),
            (Patch, "/Users/2819c223", Route::Patch(User, id())),
            (Delete, "/Users/2819c223", Route::Delete(User, id())),
            (Get, "/Roles", Route::Entitlements(Kind::Role, None)),
            (
                Get,
                "/entitlements/e-1",
                Route::Entitlements(Kind::Entitlement, Some("e-1".into())),
            ),
        ];
        for (method, path, want) in cases {
            assert_eq!(route(method, path).unwrap(), want, "{path}");
        }
        let errors = [
            (Get, "/", 404),
            (Get, "/Nope", 404),
            (Get, "/Users/a/b", 404),
            (Get, "/Schemas/a/b", 404),
            (Delete, "/Users", 405),
            (Post, "/Users/x", 405),
            (Get, "/.search", 405),
            (Put, "/ServiceProviderConfig", 405),
            (Get, "/Me", 501),
            (Post, "/Roles", 405),
            (Put, "/Roles/r1", 405),
            (Patch, "/Entitlements/e1", 405),
            (Delete, "/Entitlements/e1", 405),
            (Post, "/Roles/.search", 404),
            (Get, "/Roles/a/b", 404),
        ];
        for (method, path, status) in errors {
            assert_eq!(route(method, path).unwrap_err().status, status, "{path}");
        }
    }

    #[test]
    fn writes_are_the_logged_operations() {
        let w = |m, p| {
            route(m, p)
                .unwrap()
                .write()
                .map(|w| (w.op, w.rt, w.id.map(str::to_string)))
        };
        assert_eq!(w(Method::Post, "/Users"), Some(("create", User, None)));
        assert_eq!(
            w(Method::Patch, "/Groups/g"),
            Some(("patch", Group, Some("g".into())))
        );
        assert_eq!(w(Method::Post, "/Users/.search"), None);
        assert_eq!(w(Method::Get, "/Users/u"), None);
        assert_eq!(w(Method::Get, "/Roles/r"), None);
    }
}
