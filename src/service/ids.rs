//! Resource identifiers: random UUIDv4 strings. Unguessable ids keep one tenant from probing
//! another's resources and carry no ordering an attacker could exploit.

/// Returns a new lowercase UUIDv4, or `None` if the platform's randomness source failed.
pub fn new_id() -> Option<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).ok()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// A request id for support: 16 random lowercase hex digits (64 bits). Sent as `x-request-id`
/// on every response, quoted in error details and in the operator's log lines, so one request
/// can be found from what a client (or an IdP's provisioning log) shows. Carries no data.
pub fn request_id() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return "0000000000000000".into();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_random_hex() {
        let a = super::request_id();
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, super::request_id());
    }

    #[test]
    fn ids_are_unique_v4_uuids() {
        let a = super::new_id().expect("random");
        let b = super::new_id().expect("random");
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }
}
