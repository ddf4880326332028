//! SCIM security events (RFC 9967) as pure functions: the Security Event Token (RFC 8417) a
//! provisioning-log row amounts to, and its JWS compact serialisation (RFC 7515), signed
//! HS256 with the endpoint's key.
//!
//! One change is one SET: RFC 9967 §2.1 puts every event URI arising from one state change of
//! one resource into one SET, so a PATCH that deactivates a user is `prov:patch:notice` and
//! `prov:deactivate` together. The payloads are the "notice" variants (`attributes`: the names
//! the request changed), built from the log row alone: the log keeps no request bodies, and a
//! "full" `data` read at delivery time would state a later version of the resource than the
//! event's. (A members-only PATCH could be `prov:patch:full` with the member ids the row keeps;
//! that was built and taken out again: 3 KB of wasm the budget did not have.)
//!
//! The feed is the tenant: a resource joins it when created and leaves it when deleted (both
//! say so, RFC 9967 §2.4.1, §2.4.4), so `feed:add` and `feed:remove` never occur and are not
//! advertised.

use crate::proto::error::{Result, ScimError};
use crate::proto::schema::ResourceType;
use crate::proto::webhook::Change;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

const PREFIX: &str = "urn:ietf:params:scim:event:prov:";
/// The event URIs this service issues (advertised in `ServiceProviderConfig`).
pub const EVENT_URIS: [&str; 6] = [
    "urn:ietf:params:scim:event:prov:create:notice",
    "urn:ietf:params:scim:event:prov:patch:notice",
    "urn:ietf:params:scim:event:prov:put:notice",
    "urn:ietf:params:scim:event:prov:delete",
    "urn:ietf:params:scim:event:prov:activate",
    "urn:ietf:params:scim:event:prov:deactivate",
];
/// The JWS `typ` of a SET (RFC 8417 §2.3) and, with `application/`, its media type (RFC 8935).
pub const TYP: &str = "secevent+jwt";

/// Where a SET goes and what it says about its origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<'a> {
    /// `iss`: the tenant's SCIM base URL.
    pub issuer: &'a str,
    /// `aud`: the push endpoint's URL, or the poll stream's.
    pub audience: &'a str,
    /// `iat`, seconds since the epoch.
    pub issued_at: i64,
    /// `txn`: the request id of the write, when the log has it.
    pub txn: Option<&'a str>,
    /// The resource's `externalId`, when known.
    pub external_id: Option<&'a str>,
}

/// `jti`: the change feed's sequence number, so a receiver can deduplicate, and resume from
/// the feed (`GET /admin/api/tenants/{t}/events?since=`), by it.
pub fn jti(seq: i64) -> String {
    format!("set_{seq}")
}

/// The change feed's sequence number of a `jti` made by [`jti`].
pub fn seq_of(jti: &str) -> Option<i64> {
    jti.strip_prefix("set_")?.parse().ok().filter(|s| *s > 0)
}

/// The `events` claim of change `c`: its event URIs and their payloads. Empty for a row that
/// names no resource type.
pub fn events(c: &Change) -> Map<String, Value> {
    let mut out = Map::new();
    // A purge changes nothing SCIM can see (the resource left the feed at its delete) and
    // RFC 9967 has no URI for it: no SET.
    if c.rt.is_none() || c.lifecycle == "purge" {
        return out;
    }
    let notice = || json!({ "attributes": c.attributes });
    let (name, payload) = match c.op.as_str() {
        "create" => ("create:notice", notice()),
        "delete" => ("delete", json!({})),
        "replace" => ("put:notice", notice()),
        _ => ("patch:notice", notice()),
    };
    out.insert(format!("{PREFIX}{name}"), payload);
    let status = match (c.deactivated, c.reactivated) {
        (true, _) => Some("deactivate"),
        (false, true) => Some("activate"),
        _ => None,
    };
    if let Some(s) = status {
        out.insert(format!("{PREFIX}{s}"), json!({}));
    }
    out
}

/// The claims of a SET (RFC 8417 §2.2, RFC 9967 §2), serialised in this order.
#[derive(Debug, Serialize)]
pub struct Claims<'a> {
    pub iss: &'a str,
    pub aud: &'a str,
    pub iat: i64,
    pub jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toe: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txn: Option<&'a str>,
    pub sub_id: SubId<'a>,
    pub events: Map<String, Value>,
}

/// RFC 9967 §2.1's subject: `format: "scim"`, the `uri` below the SCIM base, and the ids.
#[derive(Debug, Serialize)]
pub struct SubId<'a> {
    pub format: &'static str,
    pub uri: String,
    pub id: &'a str,
    #[serde(rename = "externalId", skip_serializing_if = "Option::is_none")]
    pub external_id: Option<&'a str>,
}

/// The claims of the SET for change `c`: `sub_id` in the SCIM format (never `sub`), `toe` the
/// change's time, `txn` its request.
pub fn claims<'a>(c: &'a Change, env: &Envelope<'a>) -> Claims<'a> {
    let endpoint = c.rt.map_or("", ResourceType::endpoint);
    Claims {
        iss: env.issuer,
        aud: env.audience,
        iat: env.issued_at,
        jti: jti(c.seq),
        toe: crate::proto::time::parse_rfc3339(&c.time).map(|ms| ms.div_euclid(1000)),
        txn: env.txn.filter(|t| !t.is_empty()),
        sub_id: SubId {
            format: "scim",
            uri: format!("/{endpoint}/{}", c.resource_id),
            id: &c.resource_id,
            external_id: env.external_id,
        },
        events: events(c),
    }
}

/// The key id (`kid`) of an HS256 key: base64url of the first 12 bytes of its SHA-256, so a
/// receiver holding two secrets during a rotation can tell which one signed, and compute the
/// id from the secret itself.
pub fn key_id(key: &[u8]) -> String {
    let digest = Sha256::digest(key);
    let head: Vec<u8> = digest.iter().take(12).copied().collect();
    URL_SAFE_NO_PAD.encode(head)
}

/// The JWS compact serialisation of `claims`, signed HS256 (RFC 7515 §7.1, RFC 7518 §3.2):
/// `base64url(header) . base64url(claims) . base64url(HMAC-SHA256(key, the two joined))`.
/// The header is written as text: its values are fixed or base64url, nothing to escape.
pub fn sign(claims: &Claims<'_>, key: &[u8]) -> Result<String> {
    let header = format!(r#"{{"alg":"HS256","typ":"{TYP}","kid":"{}"}}"#, key_id(key));
    let body = serde_json::to_vec(claims).map_err(|_| ScimError::internal())?;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(body)
    );
    // HMAC takes keys of any length, so this never fails.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| ScimError::internal())?;
    mac.update(input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Ok(format!("{input}.{sig}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(rt: ResourceType, op: &str) -> Change {
        Change {
            seq: 42,
            time: "2026-12-01T00:00:05.250Z".into(),
            op: op.into(),
            rt: Some(rt),
            resource_id: "r1".into(),
            attributes: vec!["displayName".into()],
            ..Change::default()
        }
    }

    fn env() -> Envelope<'static> {
        Envelope {
            issuer: "https://scim.example.com/t/acme/scim/v2",
            audience: "https://app.example.com/events",
            issued_at: 1_764_547_300,
            txn: Some("0123456789abcdef"),
            external_id: None,
        }
    }

    fn uris(c: &Change) -> Vec<String> {
        events(c).keys().cloned().collect()
    }

    #[test]
    fn each_write_maps_to_its_rfc_9967_event_uris() {
        use ResourceType::{Group, User};
        let p = |s: &str| format!("{PREFIX}{s}");
        assert_eq!(uris(&change(User, "create")), [p("create:notice")]);
        assert_eq!(uris(&change(User, "replace")), [p("put:notice")]);
        assert_eq!(uris(&change(Group, "patch")), [p("patch:notice")]);
        assert_eq!(uris(&change(Group, "delete")), [p("delete")]);
        let mut c = change(User, "patch");
        c.attributes = vec!["active".into()];
        c.deactivated = true;
        assert_eq!(uris(&c), [p("deactivate"), p("patch:notice")]);
        c.deactivated = false;
        c.reactivated = true;
        c.op = "replace".into();
        assert_eq!(uris(&c), [p("activate"), p("put:notice")]);
        for u in uris(&c) {
            assert!(EVENT_URIS.contains(&u.as_str()), "{u} not advertised");
        }
        let mut none = change(User, "create");
        none.rt = None;
        assert!(events(&none).is_empty());
    }

    #[test]
    fn payloads_are_notices_with_the_changed_attributes() {
        let mut c = change(ResourceType::User, "patch");
        c.attributes = vec!["name.familyName".into(), "emails".into()];
        let e = events(&c);
        assert_eq!(
            e[&format!("{PREFIX}patch:notice")],
            json!({"attributes": ["name.familyName", "emails"]})
        );
        let d = events(&change(ResourceType::User, "delete"));
        assert_eq!(d[&format!("{PREFIX}delete")], json!({}));
    }

    #[test]
    fn a_members_patch_is_a_notice_naming_members() {
        let mut c = change(ResourceType::Group, "patch");
        c.attributes = vec!["members".into()];
        c.members_added = vec!["u1".into()];
        let e = events(&c);
        assert_eq!(
            e[&format!("{PREFIX}patch:notice")],
            json!({"attributes": ["members"]})
        );
        assert_eq!(e.len(), 1);
        c.op = "replace".into();
        assert_eq!(uris(&c), [format!("{PREFIX}put:notice")]);
    }

    #[test]
    fn claims_follow_rfc_8417_and_9967() {
        let mut e = env();
        e.external_id = Some("ext-1");
        let c = change(ResourceType::Group, "replace");
        let got = serde_json::to_value(claims(&c, &e)).unwrap();
        assert_eq!(
            got,
            json!({
                "iss": "https://scim.example.com/t/acme/scim/v2",
                "aud": "https://app.example.com/events",
                "iat": 1_764_547_300,
                "jti": "set_42",
                "toe": 1_796_083_205,
                "txn": "0123456789abcdef",
                "sub_id": {"format": "scim", "uri": "/Groups/r1", "id": "r1", "externalId": "ext-1"},
                "events": {format!("{PREFIX}put:notice"): {"attributes": ["displayName"]}}
            })
        );
        assert!(got.get("sub").is_none());
        let mut e = env();
        e.txn = None;
        let d = change(ResourceType::User, "delete");
        let got = serde_json::to_value(claims(&d, &e)).unwrap();
        assert!(got.get("txn").is_none());
        assert_eq!(got["sub_id"]["uri"], "/Users/r1");
        assert!(got["sub_id"].get("externalId").is_none());
        assert_eq!(seq_of(&jti(42)), Some(42));
        assert_eq!(seq_of("set_0"), None);
        assert_eq!(seq_of("evt_42"), None);
    }

    #[test]
    fn tokens_are_hs256_jws_compact_with_the_key_id() {
        let c = change(ResourceType::User, "create");
        let claims = claims(&c, &env());
        let key = [7u8; 32];
        let token = sign(&claims, &key).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            json!({"alg": "HS256", "typ": "secevent+jwt", "kid": key_id(&key)})
        );
        let body: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(body, serde_json::to_value(&claims).unwrap());
        assert_eq!(body["jti"], "set_42");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap())
            .unwrap();
        assert_ne!(key_id(&key), key_id(&[8u8; 32]));
        assert_eq!(key_id(&key).len(), 16);
    }
}
