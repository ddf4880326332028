//! Issued credentials: generation, hashing and the isolate-local cache of verified tokens.
//!
//! A token is 32 random bytes, base64url-encoded behind a recognisable prefix (`scim_`), so it
//! can be found by secret scanners and told apart from anything else at a glance. Only its
//! SHA-256 is stored: a random 256-bit secret cannot be guessed from its hash, so no slow KDF
//! is needed, and verification is a lookup of the hash (no secret is ever compared in SQL).
//!
//! Verified tokens are cached in isolate memory for [`CACHE_TTL_MS`], so a request with a
//! recently seen token needs no D1 round trip for authentication. A revocation therefore takes
//! effect within that TTL in every isolate (at once in the isolate that served it), and
//! `last_used` is written only when a token is (re)verified, i.e. at most once per TTL per
//! isolate, by the same statement that verifies it.

pub use crate::store::tenancy::{Kind, Verified};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;

/// Every issued secret starts with this.
pub const TOKEN_PREFIX: &str = "scim_";
/// How long a verified token is trusted without asking D1 again.
pub const CACHE_TTL_MS: i64 = 30_000;
/// Most cached tokens per isolate; beyond it the oldest entries are dropped.
pub const CACHE_MAX_ENTRIES: usize = 1024;
/// Random bytes per secret (256 bits).
pub const SECRET_BYTES: usize = 32;
/// Longest presented token that is worth hashing and looking up.
const MAX_TOKEN_LEN: usize = 128;

/// A new secret of `kind`, or `None` if the platform's randomness source failed.
pub fn generate(kind: Kind) -> Option<String> {
    generate_prefixed(kind.prefix())
}

/// A new secret behind `prefix` (which starts with [`TOKEN_PREFIX`]), for secrets that are not
/// credentials (authorization codes, refresh tokens, setup links); `None` if randomness failed.
pub fn generate_prefixed(prefix: &str) -> Option<String> {
    let mut b = [0u8; SECRET_BYTES];
    getrandom::fill(&mut b).ok()?;
    Some(format!("{prefix}{}", base64url(&b)))
}

/// Lower-case hex SHA-256 of a secret: what the database stores and is searched by.
pub fn hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        // Infallible: a String grows as needed.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Whether `token` could be one this service issued. Anything else is refused without a
/// database lookup, so arbitrary garbage never costs a round trip.
pub fn looks_issued(token: &str) -> bool {
    token.len() <= MAX_TOKEN_LEN
        && token.len() > TOKEN_PREFIX.len() + 32
        && token.starts_with(TOKEN_PREFIX)
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Unpadded base64url (RFC 4648 §5).
pub fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Base64 (RFC 4648 §4, as HTTP Basic uses), padding optional; the URL-safe alphabet (§5) is
/// accepted too, as clients that encode with it exist. `None` if malformed.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::{alphabet, Engine as _};
    const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
    let s = s.trim();
    STANDARD.decode(s).or_else(|_| URL_SAFE.decode(s)).ok()
}

#[derive(Debug, Clone)]
struct Entry {
    verified: Verified,
    cached_at: i64,
}

/// Token hash → verified credential, kept for [`CACHE_TTL_MS`] and at most
/// [`CACHE_MAX_ENTRIES`] entries. Interior mutability: the Workers runtime (and the native
/// tests) run one request at a time per thread, and the cache lives as long as the isolate.
#[derive(Debug)]
pub struct TokenCache {
    entries: RefCell<HashMap<String, Entry>>,
    ttl_ms: i64,
    max_entries: usize,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new(CACHE_TTL_MS, CACHE_MAX_ENTRIES)
    }
}

impl TokenCache {
    pub fn new(ttl_ms: i64, max_entries: usize) -> TokenCache {
        TokenCache {
            entries: RefCell::new(HashMap::new()),
            ttl_ms,
            max_entries: max_entries.max(1),
        }
    }

    /// The cached verification of `hash`, if it is younger than the TTL and the credential has
    /// not expired meanwhile. Stale or expired entries are dropped.
    pub fn get(&self, hash: &str, now_ms: i64) -> Option<Verified> {
        let mut entries = self.entries.borrow_mut();
        let fresh = entries.get(hash).and_then(|e| {
            let young = now_ms >= e.cached_at && now_ms - e.cached_at < self.ttl_ms;
            (young && !e.verified.expired(now_ms)).then(|| e.verified.clone())
        });
        if fresh.is_none() {
            entries.remove(hash);
        }
        fresh
    }

    pub fn put(&self, hash: &str, verified: Verified, now_ms: i64) {
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= self.max_entries && !entries.contains_key(hash) {
            let ttl = self.ttl_ms;
            entries.retain(|_, e| now_ms - e.cached_at < ttl && !e.verified.expired(now_ms));
            while entries.len() >= self.max_entries {
                let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.cached_at)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                entries.remove(&oldest);
            }
        }
        entries.insert(
            hash.to_string(),
            Entry {
                verified,
                cached_at: now_ms,
            },
        );
    }

    /// Drops every entry of the given credentials (and tokens obtained with them), so a
    /// revocation is immediate in the isolate that performed it.
    pub fn forget(&self, tenant: &str, credential_ids: &[String]) {
        self.entries.borrow_mut().retain(|_, e| {
            e.verified.tenant != tenant || !credential_ids.contains(&e.verified.credential_id)
        });
    }

    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

thread_local! {
    static ISOLATE_CACHE: &'static TokenCache = Box::leak(Box::default());
}

/// The cache of this isolate (one per thread natively): it lives as long as the isolate, so
/// verified tokens outlast the request that verified them.
pub fn isolate_cache() -> &'static TokenCache {
    ISOLATE_CACHE.with(|c| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(tenant: &str, id: &str, expires_ms: Option<i64>) -> Verified {
        Verified {
            tenant: tenant.into(),
            credential_id: id.into(),
            kind: Kind::Bearer,
            expires_ms,
        }
    }

    #[test]
    fn sha256_matches_the_standard_vectors() {
        assert_eq!(
            hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn generated_tokens_are_prefixed_random_and_recognised() {
        let a = generate(Kind::Bearer).unwrap();
        let b = generate(Kind::Bearer).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("scim_"));
        assert_eq!(
            a.len(),
            "scim_".len() + 43,
            "32 bytes are 43 base64url chars"
        );
        assert!(looks_issued(&a));
        let c = generate(Kind::Client).unwrap();
        assert!(c.starts_with("scim_cs_") && looks_issued(&c));
        let t = generate(Kind::Access).unwrap();
        assert!(t.starts_with("scim_at_") && looks_issued(&t));
        assert!(!looks_issued("scim_short"));
        assert!(!looks_issued(
            "some-env-token-0123456789-0123456789-0123456789"
        ));
        assert!(!looks_issued(&format!("{a}!")));
        assert!(!looks_issued(&format!("{a}{}", "x".repeat(100))));
    }

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64_decode("Zm9vYmE=").unwrap(), b"fooba");
        assert_eq!(base64_decode("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(base64_decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(base64_decode("Z"), None);
        assert_eq!(base64_decode("Zm9v!"), None);
    }

    #[test]
    fn cache_entries_live_for_the_ttl_only() {
        let cache = TokenCache::new(30_000, 10);
        cache.put("h", verified("a", "1", None), 1_000);
        assert_eq!(cache.get("h", 1_000).unwrap().tenant, "a");
        assert!(cache.get("h", 30_999).is_some());
        assert!(cache.get("h", 31_000).is_none(), "stale after the TTL");
        assert!(cache.is_empty(), "stale entries are dropped");
        assert!(cache.get("missing", 0).is_none());
    }

    #[test]
    fn cache_never_serves_an_expired_credential() {
        let cache = TokenCache::new(30_000, 10);
        cache.put("h", verified("a", "1", Some(5_000)), 1_000);
        assert!(cache.get("h", 4_999).is_some());
        assert!(cache.get("h", 5_000).is_none());
    }

    #[test]
    fn cache_is_bounded_and_drops_the_oldest() {
        let cache = TokenCache::new(30_000, 3);
        for i in 0..3 {
            cache.put(
                &format!("h{i}"),
                verified("a", &i.to_string(), None),
                1_000 + i,
            );
        }
        cache.put("h3", verified("a", "3", None), 2_000);
        assert_eq!(cache.len(), 3);
        assert!(cache.get("h0", 2_000).is_none(), "the oldest went first");
        assert!(cache.get("h3", 2_000).is_some());
        // Expired entries go before live ones.
        let cache = TokenCache::new(30_000, 2);
        cache.put("old", verified("a", "1", None), 0);
        cache.put("live", verified("a", "2", None), 29_000);
        cache.put("new", verified("a", "3", None), 31_000);
        assert!(cache.get("live", 31_000).is_some());
        assert!(cache.get("new", 31_000).is_some());
    }

    #[test]
    fn forgetting_credentials_is_scoped_to_their_tenant() {
        let cache = TokenCache::default();
        cache.put("x", verified("a", "1", None), 0);
        cache.put("y", verified("b", "1", None), 0);
        cache.put("z", verified("a", "2", None), 0);
        cache.forget("a", &["1".to_string()]);
        assert!(cache.get("x", 1).is_none());
        assert!(cache.get("y", 1).is_some());
        assert!(cache.get("z", 1).is_some());
    }
}
