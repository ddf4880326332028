//! Per-tenant rate limiting. The counting is done by a [`RateLimiter`]: in production the
//! Workers rate-limiting binding (`RATE_LIMITER` in wrangler.toml, keyed by tenant, and
//! `AUTH_ATTEMPT_LIMITER` for the token endpoint's attempts and failures), natively
//! [`FixedWindow`]. The binding only counts: every call charges its key and answers whether
//! the key is over its limit (there is no "peek"), per Cloudflare location and approximately
//! (a burst may pass a few requests over). The keys are chosen with that in mind. Beyond the limit a request gets 429 with `Retry-After` and a SCIM error
//! body, which Entra ID answers by pausing and retrying only the refused requests.

use crate::proto::error::ScimError;
use crate::service::http::Response;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

/// The boxed future a limiter answers with (object-safe, no `Send`: one thread per isolate).
pub type Check<'a> = Pin<Box<dyn Future<Output = Decision> + 'a>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused; the client may retry after this many seconds.
    Limited {
        retry_after_secs: u32,
    },
}

/// Counts one request against `key` and says whether it may proceed.
pub trait RateLimiter {
    fn check<'a>(&'a self, key: &'a str, now_ms: i64) -> Check<'a>;

    /// Counts one authentication attempt (or failure) against `key`, in a budget meant to be
    /// much smaller than a tenant's request budget. In production a binding of its own
    /// (`AUTH_ATTEMPT_LIMITER`); by default, and natively, the same counter as [`check`].
    ///
    /// [`check`]: RateLimiter::check
    fn check_attempt<'a>(&'a self, key: &'a str, now_ms: i64) -> Check<'a> {
        self.check(key, now_ms)
    }
}

/// No limit (no binding configured).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unlimited;

impl RateLimiter for Unlimited {
    fn check<'a>(&'a self, _key: &'a str, _now_ms: i64) -> Check<'a> {
        Box::pin(async { Decision::Allow })
    }
}

/// The key a tenant's SCIM requests are counted under (after authentication, so requests
/// with a wrong token cannot use up a tenant's budget).
pub fn tenant_key(tenant: &str) -> String {
    format!("tenant:{tenant}")
}

/// The budget of one OAuth client at its tenant's token endpoint, charged only once its secret
/// has verified: nobody without the secret can spend it, so flooding the public endpoint
/// cannot lock the client out. Kept apart from [`tenant_key`], so neither starves the other.
pub fn oauth_client_key(tenant: &str, client_id: &str) -> String {
    format!("oauth:{tenant}:{client_id}")
}

/// Token requests from one source naming one client id, charged (with
/// [`RateLimiter::check_attempt`]) before the database is asked: a source that keeps trying
/// one client id is refused without a D1 round trip, and only that source for that id. The
/// real client, calling from its own address, has a key of its own.
pub fn oauth_attempt_key(tenant: &str, source: &str, client_id: &str) -> String {
    format!("oauth-try:{tenant}:{source}:{client_id}")
}

/// Failed token requests from one source, whatever client id they named (so rotating made-up
/// ids does not escape the limit). Charged only after a failure and only ever turns a failure
/// into 429: a request that authenticates never consults it, so a client behind a shared
/// address (a NAT, an IdP's egress) is not refused for someone else's failures there.
pub fn oauth_failure_key(tenant: &str, source: &str) -> String {
    format!("oauth-fail:{tenant}:{source}")
}

/// Where a request came from, as a rate-limit key part: the `CF-Connecting-IP` address that
/// Cloudflare's edge sets (a client cannot forge it there), IPv6 reduced to its /64 (one
/// subscriber's usual allocation, so cycling addresses within it does not help), IPv4-mapped
/// IPv6 as IPv4. Without the header (not behind Cloudflare: local development) every request
/// is `unknown`: other headers (`X-Forwarded-For`) are the client's to forge.
pub fn source(cf_connecting_ip: Option<&str>) -> String {
    use std::net::IpAddr;
    match cf_connecting_ip.and_then(|h| h.trim().parse::<IpAddr>().ok()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "unknown".to_string(),
    }
}

/// The answer to a refused request: 429, `Retry-After`, and an RFC 7644 §3.12 error body.
pub fn too_many_requests(retry_after_secs: u32) -> Response {
    let err = ScimError::new(
        429,
        None,
        format!("too many requests for this tenant; retry after {retry_after_secs} seconds"),
    );
    Response::error(&err).with_header("retry-after", retry_after_secs.to_string())
}

/// Fixed-window counter in memory: at most `limit` requests per key per `period_ms`, with the
/// windows aligned to the epoch like the Workers binding's. Used natively, and in the glue
/// only if no binding exists but a limit is configured.
#[derive(Debug)]
pub struct FixedWindow {
    limit: u32,
    period_ms: i64,
    state: RefCell<(i64, HashMap<String, u32>)>,
}

impl FixedWindow {
    pub fn new(limit: u32, period_secs: u32) -> FixedWindow {
        FixedWindow {
            limit,
            period_ms: i64::from(period_secs.max(1)) * 1000,
            state: RefCell::new((i64::MIN, HashMap::new())),
        }
    }

    pub fn decide(&self, key: &str, now_ms: i64) -> Decision {
        let window = now_ms.div_euclid(self.period_ms);
        let mut state = self.state.borrow_mut();
        if state.0 != window {
            *state = (window, HashMap::new());
        }
        let count = state.1.entry(key.to_string()).or_insert(0);
        if *count >= self.limit {
            let left_ms = (window + 1) * self.period_ms - now_ms;
            Decision::Limited {
                retry_after_secs: retry_after(left_ms),
            }
        } else {
            *count += 1;
            Decision::Allow
        }
    }
}

impl RateLimiter for FixedWindow {
    fn check<'a>(&'a self, key: &'a str, now_ms: i64) -> Check<'a> {
        let d = self.decide(key, now_ms);
        Box::pin(async move { d })
    }
}

/// Whole seconds until `left_ms` has passed, at least 1 (RFC 9110 §10.2.3: delay-seconds).
pub fn retry_after(left_ms: i64) -> u32 {
    u32::try_from((left_ms.max(1) + 999) / 1000).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::block_on;

    #[test]
    fn fixed_window_counts_per_key_and_resets() {
        let l = FixedWindow::new(2, 60);
        let t0 = 1_700_000_080_000; // 40 s into a minute
        assert_eq!(block_on(l.check("tenant:a", t0)), Decision::Allow);
        assert_eq!(block_on(l.check("tenant:a", t0 + 1)), Decision::Allow);
        assert_eq!(
            block_on(l.check("tenant:a", t0 + 2)),
            Decision::Limited {
                retry_after_secs: 20
            }
        );
        assert_eq!(
            block_on(l.check("tenant:b", t0 + 3)),
            Decision::Allow,
            "tenants are counted apart"
        );
        assert_eq!(block_on(l.check("tenant:a", t0 + 20_000)), Decision::Allow);
    }

    #[test]
    fn refusal_is_a_scim_error_with_retry_after() {
        let r = too_many_requests(7);
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("7"));
        let body = r.body_json();
        assert_eq!(body["status"], "429");
        assert_eq!(
            body["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:Error"
        );
        assert!(body.get("scimType").is_none());
        assert_eq!(retry_after(0), 1);
        assert_eq!(retry_after(1001), 2);
        assert_eq!(block_on(Unlimited.check("k", 0)), Decision::Allow);
    }

    #[test]
    fn sources_are_addresses_with_ipv6_by_its_64_prefix() {
        assert_eq!(source(Some("203.0.113.9")), "203.0.113.9");
        assert_eq!(source(Some(" 203.0.113.9 ")), "203.0.113.9");
        assert_eq!(source(Some("::ffff:203.0.113.9")), "203.0.113.9");
        assert_eq!(
            source(Some("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            source(Some("2001:db8:1:2::1")),
            source(Some("2001:db8:1:2:ffff::9")),
            "one /64 is one source"
        );
        assert_eq!(source(None), "unknown");
        assert_eq!(source(Some("203.0.113.9, 10.0.0.1")), "unknown");
        assert_eq!(source(Some("x".repeat(5000).as_str())), "unknown");
    }
}
