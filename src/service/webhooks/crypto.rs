//! Webhook secrets and signatures, per the Standard Webhooks specification
//! (<https://www.standardwebhooks.com/>): the secret is `whsec_` + base64 of 32 random key
//! bytes; a message is signed as base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}"))
//! and sent as `webhook-signature: v1,<signature>` (several, space-separated, during a
//! rotation), so receivers verify with the `standardwebhooks` packages as they are.
//!
//! The key must be usable to sign, so it cannot be stored hashed like API tokens: it is sealed
//! (XChaCha20-Poly1305, the cipher the list cursors use) under a key derived from the
//! deployment secret with its own label, with the endpoint id as associated data, so a sealed
//! secret copied to another endpoint does not open.

use crate::proto::error::{Result, ScimError};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};

/// The name of the D1 deployment secret used when `CURSOR_SECRET` is not set.
pub const DEPLOYMENT_SECRET_NAME: &str = "webhooks";
const SEAL_LABEL: &[u8] = b"scim-edge webhook secret key v1";
const NONCE_LEN: usize = 24;
/// The prefix Standard Webhooks gives secrets.
pub const SECRET_PREFIX: &str = "whsec_";

fn hmac(key: &[u8], parts: &[&[u8]]) -> Result<[u8; 32]> {
    // HMAC takes keys of any length, so this never fails.
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).map_err(|_| ScimError::internal())?;
    for p in parts {
        mac.update(p);
    }
    Ok(mac.finalize().into_bytes().into())
}

fn cipher(deployment_secret: &[u8]) -> Result<XChaCha20Poly1305> {
    let key = hmac(deployment_secret, &[SEAL_LABEL])?;
    XChaCha20Poly1305::new_from_slice(&key).map_err(|_| ScimError::internal())
}

/// 32 fresh random key bytes.
pub fn new_key() -> Result<[u8; 32]> {
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).map_err(|_| ScimError::internal())?;
    Ok(k)
}

/// The secret as shown (once) to the administrator.
pub fn secret_text(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// Seals `key` for endpoint `endpoint_id`: base64url(nonce || ciphertext).
pub fn seal(deployment_secret: &[u8], endpoint_id: &str, key: &[u8]) -> Result<String> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| ScimError::internal())?;
    let sealed = cipher(deployment_secret)?
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: key,
                aad: endpoint_id.as_bytes(),
            },
        )
        .map_err(|_| ScimError::internal())?;
    let mut out = nonce.to_vec();
    out.extend(sealed);
    Ok(URL_SAFE_NO_PAD.encode(out))
}

/// Opens what [`seal`] made for the same endpoint under the same deployment secret.
pub fn open(deployment_secret: &[u8], endpoint_id: &str, sealed: &str) -> Result<Vec<u8>> {
    let raw = URL_SAFE_NO_PAD
        .decode(sealed)
        .map_err(|_| ScimError::internal().with_cause("sealed webhook secret: not base64url"))?;
    let (nonce, ct) = raw
        .split_at_checked(NONCE_LEN)
        .ok_or_else(|| ScimError::internal().with_cause("sealed webhook secret: too short"))?;
    cipher(deployment_secret)?
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: endpoint_id.as_bytes(),
            },
        )
        .map_err(|_| {
            ScimError::internal()
                .with_cause("sealed webhook secret does not open (was CURSOR_SECRET changed?)")
        })
}

/// One `v1,<base64>` signature of a message.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String> {
    let ts = timestamp.to_string();
    let mac = hmac(key, &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body])?;
    Ok(format!("v1,{}", STANDARD.encode(mac)))
}

/// The `webhook-signature` header: one signature per key, space-separated.
pub fn signature_header(
    keys: &[Vec<u8>],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String> {
    let sigs: Result<Vec<String>> = keys
        .iter()
        .map(|k| sign(k, msg_id, timestamp, body))
        .collect();
    Ok(sigs?.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_reference_vector() {
        // The test vector of the Standard Webhooks reference libraries (README of
        // standard-webhooks/standard-webhooks, javascript/src/index.test.ts).
        let secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let key = STANDARD.decode(secret).unwrap();
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn sealed_secrets_open_only_for_their_endpoint_and_deployment() {
        let key = new_key().unwrap();
        let sealed = seal(b"deploy", "wh_1", &key).unwrap();
        assert_eq!(open(b"deploy", "wh_1", &sealed).unwrap(), key);
        assert!(open(b"deploy", "wh_2", &sealed).is_err());
        assert!(open(b"other", "wh_1", &sealed).is_err());
        assert!(open(b"deploy", "wh_1", "AAAA").is_err());
        assert!(!sealed.contains(&STANDARD.encode(key)));
        assert_ne!(seal(b"deploy", "wh_1", &key).unwrap(), sealed);
    }

    #[test]
    fn secrets_are_whsec_base64_and_headers_carry_one_signature_per_key() {
        let k = [7u8; 32];
        let text = secret_text(&k);
        assert_eq!(
            STANDARD
                .decode(text.strip_prefix("whsec_").unwrap())
                .unwrap(),
            k
        );
        let h = signature_header(&[k.to_vec(), vec![1; 32]], "id", 5, b"{}").unwrap();
        let parts: Vec<&str> = h.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&k, "id", 5, b"{}").unwrap());
        assert_ne!(parts[0], parts[1]);
    }
}
