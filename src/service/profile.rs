//! A tenant's profile: its strictness, what it does with undeclared extensions, and the
//! extension schemas it declared, as SCIM validation needs them. Kept in isolate memory like
//! verified tokens, so a request is validated against the tenant's schemas before its first
//! D1 round trip; a miss costs one statement ([`crate::store::Store::profile`]).
//!
//! An admin change clears the entry in the isolate that made it; other isolates see it
//! within [`TTL_MS`].

use crate::proto::declared;
use crate::proto::schema::{Declared, Schemas};
use crate::store::schemas::Profile;
use crate::store::{Db, Store};
use std::cell::RefCell;
use std::collections::HashMap;

/// How long a profile is used without reading it again.
pub const TTL_MS: i64 = 30_000;
/// Tenants kept per isolate; beyond that, stale entries go first, then all.
const MAX_ENTRIES: usize = 10_000;

/// What validation knows about one tenant.
#[derive(Debug, Clone, Copy, Default)]
pub struct TenantProfile {
    /// PATCH and full representations follow RFC 7644 literally (no tolerances).
    pub strict: bool,
    pub schemas: Schemas,
    /// What a DELETE does and whether a POST may restore a tombstone by `externalId`.
    pub deletion: crate::store::tombstones::Policy,
}

#[derive(Default)]
pub struct ProfileCache {
    entries: RefCell<HashMap<String, (i64, TenantProfile)>>,
}

impl ProfileCache {
    fn get(&self, tenant: &str, now_ms: i64) -> Option<TenantProfile> {
        let entries = self.entries.borrow();
        let (at, profile) = entries.get(tenant)?;
        (now_ms >= *at && now_ms - at < TTL_MS).then_some(*profile)
    }

    fn put(&self, tenant: &str, profile: TenantProfile, now_ms: i64) {
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| now_ms - *at < TTL_MS);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(tenant.to_string(), (now_ms, profile));
    }

    /// Forgets `tenant`'s profile after an admin change, so this isolate uses the new one.
    pub fn invalidate(&self, tenant: &str) {
        self.entries.borrow_mut().remove(tenant);
    }
}

thread_local! {
    static ISOLATE_CACHE: &'static ProfileCache = Box::leak(Box::default());
}

/// The cache of this isolate (one per thread natively).
pub fn isolate_cache() -> &'static ProfileCache {
    ISOLATE_CACHE.with(|c| *c)
}

/// The tenant's profile, from the cache or from one D1 statement.
pub async fn load<D: Db>(
    cache: &ProfileCache,
    store: &Store<'_, D>,
    now_ms: i64,
) -> crate::proto::error::Result<TenantProfile> {
    if let Some(p) = cache.get(store.tenant(), now_ms) {
        return Ok(p);
    }
    let stored = store.profile().await?;
    let profile = of(store.tenant(), &stored);
    cache.put(store.tenant(), profile, now_ms);
    Ok(profile)
}

/// Caches a profile read along with something else (token verification reads it in the
/// same batch).
pub fn remember(cache: &ProfileCache, tenant: &str, stored: &Profile, now_ms: i64) {
    cache.put(tenant, of(tenant, stored), now_ms);
}

/// Parses the stored declarations into the shared schema set. A stored declaration the
/// current parser refuses (one written by an older, laxer version) is left out: its data
/// stays stored and is served as undeclared, rather than every request of the tenant failing.
pub fn of(tenant: &str, stored: &Profile) -> TenantProfile {
    let schemas = if stored.declarations.is_empty() {
        Schemas::new(None, stored.reject_undeclared)
    } else {
        let key: String = std::iter::once(tenant)
            .chain(stored.declarations.iter().flat_map(|d| {
                [
                    d.rt.name(),
                    if d.required { "1" } else { "0" },
                    d.document.as_str(),
                ]
            }))
            .collect::<Vec<_>>()
            .join("\n");
        let set = declared::intern(&key, || Declared {
            extensions: stored
                .declarations
                .iter()
                .filter_map(|d| {
                    let doc = serde_json::from_str(&d.document).ok()?;
                    declared::parse(d.rt, d.required, &doc).ok()
                })
                .collect(),
        });
        Schemas::new(Some(set), stored.reject_undeclared)
    };
    TenantProfile {
        strict: stored.strict,
        schemas,
        deletion: stored.deletion,
    }
}
