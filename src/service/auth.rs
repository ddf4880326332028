//! Bearer-token authentication against the tokens configured as Worker secrets.

/// Compares in time that depends only on the lengths, never on where the first difference
/// is, so response timing reveals nothing about a token's prefix.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    // Always walk the configured token in full, whatever the presented length.
    for (i, x) in b.iter().enumerate() {
        let y = a.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

/// The bearer credential of an `Authorization` header, if it has the Bearer scheme.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, rest) = h.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

/// Checks the presented token against every configured one (rotation keeps two alive).
/// Every configured token is compared even after a match, so the count of tokens that were
/// tried cannot be timed either.
pub fn token_matches(presented: &str, configured: &[String]) -> bool {
    let mut ok = false;
    for t in configured.iter().filter(|t| !t.is_empty()) {
        ok |= constant_time_eq(presented.as_bytes(), t.as_bytes());
    }
    ok
}

/// Splits the secret value(s) into tokens: commas or whitespace separate them, so a rotation
/// is `SCIM_TOKENS="new,old"` and then `SCIM_TOKENS="new"`.
pub fn parse_tokens(raw: &str) -> Vec<String> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer   abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(Some("abc")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn tokens_match_exactly() {
        let cfg = parse_tokens("new-token, old-token\n");
        assert_eq!(cfg, vec!["new-token", "old-token"]);
        assert!(token_matches("old-token", &cfg));
        assert!(token_matches("new-token", &cfg));
        assert!(!token_matches("new-toke", &cfg));
        assert!(!token_matches("new-tokenX", &cfg));
        assert!(!token_matches("", &cfg));
        assert!(!token_matches("x", &[]));
    }
}
