//! Cursor paging (RFC 9865). A cursor is the keyset position of the last resource on a page
//! (its sort value and rowid) plus a fingerprint of the query it belongs to, so pages stay
//! stable while resources are created or deleted between requests, cursors never expire, and
//! a cursor replayed against a different query is refused with `invalidCursor`.

use crate::error::{Result, ScimError, ScimType};
use crate::sql::SqlValue;
use serde_json::{json, Value};

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    /// The sort value was NULL (such resources sort last).
    pub null: bool,
    pub value: Value,
    pub rowid: i64,
}

impl Position {
    /// The sort value as a bound SQL parameter.
    pub fn value_param(&self) -> SqlValue {
        match &self.value {
            Value::String(s) => SqlValue::Text(s.clone()),
            Value::Bool(b) => SqlValue::Int(i64::from(*b)),
            Value::Number(n) => match n.as_i64() {
                Some(i) => SqlValue::Int(i),
                None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
            },
            _ => SqlValue::Null,
        }
    }
}

/// FNV-1a over the parts that define a result order; cheap, stable across isolates.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

pub fn encode(fp: &str, pos: &Position) -> String {
    let doc = json!({"f": fp, "n": pos.null, "v": pos.value, "i": pos.rowid});
    base64url_encode(doc.to_string().as_bytes())
}

/// Decodes a cursor issued for the query with fingerprint `fp`.
pub fn decode(fp: &str, cursor: &str) -> Result<Position> {
    let invalid = || {
        ScimError::bad_request(
            ScimType::InvalidCursor,
            format!("cursor '{}' is not valid", truncate(cursor)),
        )
    };
    let bytes = base64url_decode(cursor).ok_or_else(invalid)?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if doc["f"].as_str() != Some(fp) {
        return Err(ScimError::bad_request(
            ScimType::InvalidCursor,
            "the cursor belongs to a different query (filter, sortBy or sortOrder changed)",
        ));
    }
    Ok(Position {
        null: doc["n"].as_bool().ok_or_else(invalid)?,
        value: doc.get("v").cloned().unwrap_or(Value::Null),
        rowid: doc["i"].as_i64().ok_or_else(invalid)?,
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() > 4096 || s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips() {
        for s in [
            "",
            "a",
            "ab",
            "abc",
            "abcd",
            "{\"f\":\"x\"}",
            "\u{e9}\u{1F600}",
        ] {
            assert_eq!(
                base64url_decode(&base64url_encode(s.as_bytes())).as_deref(),
                Some(s.as_bytes())
            );
        }
        assert_eq!(base64url_encode(b"\xfb\xff"), "-_8");
        assert!(base64url_decode("a").is_none());
        assert!(base64url_decode("a+b/").is_none());
    }

    #[test]
    fn cursors_are_bound_to_their_query() {
        let fp = fingerprint(&["User", "userName sw \"a\"", "userName", "asc"]);
        let pos = Position {
            null: false,
            value: json!("alice"),
            rowid: 42,
        };
        let c = encode(&fp, &pos);
        assert_eq!(decode(&fp, &c), Ok(pos));
        let other = fingerprint(&["User", "userName sw \"b\"", "userName", "asc"]);
        assert_eq!(
            decode(&other, &c).unwrap_err().scim_type,
            Some(ScimType::InvalidCursor)
        );
        for junk in ["", "!!!!", "e30", &"A".repeat(5000)] {
            assert_eq!(
                decode(&fp, junk).unwrap_err().scim_type,
                Some(ScimType::InvalidCursor),
                "{junk}"
            );
        }
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
    }
}
