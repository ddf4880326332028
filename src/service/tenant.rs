//! Tenants: who a request acts for and where each tenant's endpoints live.
//!
//! The tenant always comes from the credential. A URL may name it too
//! (`/t/{tenant}/scim/v2/...`); then both must agree, or the request is refused before any
//! data is touched. `/scim/v2/...` serves the credential's own tenant, so a single-customer
//! deployment (env-secret tokens, tenant `default`) keeps its short URL.

use crate::proto::error::{Result, ScimError};
use crate::service::auth;
use crate::service::credentials;
use crate::service::ctx::Ctx;
use crate::service::http::Request;
use crate::store::{tenancy, Db};

/// The tenant of the tokens configured as Worker secrets (`SCIM_TOKEN`, `SCIM_TOKENS`).
pub const DEFAULT_TENANT: &str = "default";
/// Where the SCIM API lives for the credential's tenant.
pub const SCIM_PATH: &str = "/scim/v2";
/// Prefix of tenant-named URLs: `/t/{tenant}/scim/v2`, `/t/{tenant}/oauth/token`.
pub const TENANT_PREFIX: &str = "/t/";
/// The OAuth 2.0 token endpoint below a tenant's prefix.
pub const OAUTH_TOKEN_PATH: &str = "/oauth/token";
/// The admin API.
pub const ADMIN_PATH: &str = "/admin/api";
/// The deployment's OAuth authorization endpoint and its token endpoint for the
/// authorization code and refresh grants (`service::authorize`).
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
pub const DEPLOYMENT_TOKEN_PATH: &str = "/oauth/token";

/// Which part of the service a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// The SCIM API. `tenant` is the one the URL names, if any; `base_path` is what
    /// `meta.location` is built on; `rest` starts with `/` or is empty.
    Scim {
        tenant: Option<String>,
        base_path: String,
        rest: &'a str,
    },
    /// `POST /t/{tenant}/oauth/token`.
    OAuthToken {
        tenant: String,
    },
    /// `/admin/api/...`; `rest` starts with `/` or is empty.
    Admin {
        rest: &'a str,
    },
    /// `/oauth/authorize`, `/oauth/token`, `/oauth/vendor-return`: the authorization code
    /// grant, for the deployment (the approver picks the tenant).
    OAuth {
        path: &'a str,
    },
    /// The IT admin's setup pages, `/setup[/...]`; `rest` starts with `/` or is empty.
    Setup {
        rest: &'a str,
    },
    NotFound,
}

/// Resolves a request path (not yet percent-decoded) to the part of the service it addresses.
pub fn target(path: &str) -> Target<'_> {
    if let Some(rest) = under(path, SCIM_PATH) {
        return Target::Scim {
            tenant: None,
            base_path: SCIM_PATH.to_string(),
            rest,
        };
    }
    if let Some(rest) = under(path, ADMIN_PATH) {
        return Target::Admin { rest };
    }
    if let Some(rest) = under(path, "/setup") {
        return Target::Setup { rest };
    }
    if path.starts_with("/oauth/") {
        return Target::OAuth { path };
    }
    let Some(after) = path.strip_prefix(TENANT_PREFIX) else {
        return Target::NotFound;
    };
    let (raw_tenant, tail) = after.split_at(after.find('/').unwrap_or(after.len()));
    let tenant = crate::service::http::percent_decode(raw_tenant);
    if !valid_id(&tenant) {
        return Target::NotFound;
    }
    if let Some(rest) = under(tail, SCIM_PATH) {
        return Target::Scim {
            base_path: format!("{TENANT_PREFIX}{tenant}{SCIM_PATH}"),
            tenant: Some(tenant),
            rest,
        };
    }
    if tail == OAUTH_TOKEN_PATH {
        return Target::OAuthToken { tenant };
    }
    Target::NotFound
}

/// `path` below `prefix` at a segment boundary: `/scim/v2`, `/scim/v2/Users`, not `/scim/v2x`.
fn under<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// Tenant ids appear in URLs and logs: 1–63 characters of lower-case letters, digits and
/// hyphens, starting with a letter or digit (a DNS label, so it also fits a subdomain).
pub fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Who an authenticated SCIM request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    /// The issued credential, or `None` for a token configured as a Worker secret.
    pub credential_id: Option<String>,
}

/// Resolves the bearer token of a SCIM request to its tenant.
///
/// Tokens configured as Worker secrets act for [`DEFAULT_TENANT`] and are checked first, in
/// constant time, without I/O. A token with the issued prefix is looked up by its SHA-256:
/// from the isolate's cache when verified within the TTL, otherwise with one D1 statement that
/// also records its use. The admin token is never accepted, and a tenant named in the URL
/// must be the credential's (401 otherwise, before any data is read).
pub async fn authenticate<D: Db>(
    ctx: &Ctx<'_, D>,
    req: &Request,
    url_tenant: Option<&str>,
) -> Result<Principal> {
    let presented = auth::bearer(req.header("authorization")).ok_or_else(|| {
        ScimError::unauthorized("authentication required: send 'Authorization: Bearer <token>'")
    })?;
    let invalid = || ScimError::unauthorized("the bearer token is not valid");
    let admin = ctx.config.admin_token.as_deref().unwrap_or("");
    if !admin.is_empty() && auth::constant_time_eq(presented.as_bytes(), admin.as_bytes()) {
        return Err(ScimError::unauthorized(
            "the admin token is not accepted by the SCIM API; use a SCIM token",
        ));
    }
    let principal = if auth::token_matches(presented, &ctx.config.tokens) {
        Principal {
            tenant: DEFAULT_TENANT.to_string(),
            credential_id: None,
        }
    } else if credentials::looks_issued(presented) {
        let hash = credentials::hash(presented);
        let verified = match ctx.tokens.get(&hash, ctx.now_ms) {
            Some(v) => v,
            None => {
                let now = crate::proto::time::format_millis(ctx.now_ms);
                let (v, profile) = tenancy::verify_token(ctx.db, &hash, &now)
                    .await?
                    .ok_or_else(invalid)?;
                ctx.tokens.put(&hash, v.clone(), ctx.now_ms);
                crate::service::profile::remember(ctx.profiles, &v.tenant, &profile, ctx.now_ms);
                v
            }
        };
        Principal {
            tenant: verified.tenant,
            credential_id: Some(verified.credential_id),
        }
    } else {
        return Err(invalid());
    };
    if url_tenant.is_some_and(|t| t != principal.tenant) {
        return Err(ScimError::unauthorized(
            "the bearer token is not valid for this tenant",
        ));
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scim_paths_with_and_without_a_tenant() {
        assert_eq!(
            target("/scim/v2/Users"),
            Target::Scim {
                tenant: None,
                base_path: "/scim/v2".into(),
                rest: "/Users"
            }
        );
        assert_eq!(
            target("/scim/v2"),
            Target::Scim {
                tenant: None,
                base_path: "/scim/v2".into(),
                rest: ""
            }
        );
        assert_eq!(
            target("/t/acme-1/scim/v2/Groups/x"),
            Target::Scim {
                tenant: Some("acme-1".into()),
                base_path: "/t/acme-1/scim/v2".into(),
                rest: "/Groups/x"
            }
        );
        assert_eq!(target("/scim/v2x"), Target::NotFound);
        assert_eq!(target("/t/acme/scim/v3"), Target::NotFound);
        assert_eq!(target("/t/ACME/scim/v2"), Target::NotFound);
        assert_eq!(target("/t//scim/v2"), Target::NotFound);
        assert_eq!(target("/t/a%2Fb/scim/v2"), Target::NotFound);
        assert_eq!(target("/"), Target::NotFound);
    }

    #[test]
    fn oauth_and_admin_paths() {
        assert_eq!(
            target("/t/acme/oauth/token"),
            Target::OAuthToken {
                tenant: "acme".into()
            }
        );
        assert_eq!(target("/t/acme/oauth/token/x"), Target::NotFound);
        assert_eq!(
            target("/admin/api/tenants"),
            Target::Admin { rest: "/tenants" }
        );
        assert_eq!(target("/admin/apix"), Target::NotFound);
        assert_eq!(
            target("/oauth/authorize"),
            Target::OAuth {
                path: "/oauth/authorize"
            }
        );
        assert_eq!(target("/setup/x"), Target::Setup { rest: "/x" });
        assert_eq!(target("/setupx"), Target::NotFound);
    }

    #[test]
    fn tenant_ids_are_dns_labels() {
        for ok in ["default", "acme", "a", "0", "acme-eu-2", &"a".repeat(63)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "-a", "Acme", "a_b", "a.b", "a/b", "ä", &"a".repeat(64)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
