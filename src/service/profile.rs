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
use crate::store::tenancy::Quota;
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
    /// The storage limits, which a tenant's Durable Object enforces (`service::relay`).
    pub quota: Quota,
    /// A digest of the declarations (0 when there are none): a tenant's Durable Object
    /// validates with its own copy of them and compares this to know the copy is current
    /// without receiving the declarations with every request (`service::relay`).
    pub declared: u128,
    /// What a DELETE does and whether a POST may restore a tombstone by `externalId`.
    pub deletion: crate::store::tombstones::Policy,
}

#[derive(Default)]
pub struct ProfileCache {
    entries: RefCell<HashMap<String, (i64, TenantProfile)>>,
}

impl ProfileCache {
    /// The cached profile of `tenant`, if it is younger than [`TTL_MS`].
    pub fn fresh(&self, tenant: &str, now_ms: i64) -> Option<TenantProfile> {
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
    static OBJECT_CACHE: &'static ProfileCache = Box::leak(Box::default());
}

/// The cache of this isolate (one per thread natively).
pub fn isolate_cache() -> &'static ProfileCache {
    ISOLATE_CACHE.with(|c| *c)
}

/// The cache tenants' Durable Objects use. Apart from the worker's: an object and the worker
/// can share an isolate, and an object's profile (read from its own copy) refreshed on every
/// request would otherwise keep the worker from ever reading D1's again.
pub fn object_cache() -> &'static ProfileCache {
    OBJECT_CACHE.with(|c| *c)
}

/// The tenant's profile, from the cache or from one D1 statement.
pub async fn load<D: Db>(
    cache: &ProfileCache,
    store: &Store<'_, D>,
    now_ms: i64,
) -> crate::proto::error::Result<TenantProfile> {
    if let Some(p) = cache.fresh(store.tenant(), now_ms) {
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
    let mut hash = 0;
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
        hash = digest(&key);
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
        quota: stored.quota,
        declared: hash,
        deletion: stored.deletion,
    }
}

/// The first 128 bits of the SHA-256 of `key`: a change of the declarations changes it.
fn digest(key: &str) -> u128 {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(hash.get(..16).unwrap_or(&[0; 16]));
    u128::from_be_bytes(first)
}
