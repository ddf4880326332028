//! The properties every fuzz target checks, shared by the cargo-fuzz targets in
//! `fuzz_targets/` and by the stable-toolchain replay in `tests/fuzz_replay.rs` (which runs
//! every committed corpus file and a bounded random-input loop under plain `cargo test`).
//!
//! Each check takes raw bytes, drives one parser or engine of the protocol core, and panics if
//! a property fails: besides "no panic, no stack overflow, no hang", every rejection must be a
//! SCIM 4xx (a 5xx would tell a client its valid-looking input broke the server) and every
//! acceptance must be internally consistent (canonical text re-parses to the same thing, SQL
//! placeholders match the bound parameters, a patched resource is a valid resource).

// A fuzz harness: panicking on a broken property is how it reports one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scim_edge::proto::error::ScimError;
use scim_edge::proto::patch::PatchRequest;
use scim_edge::proto::schema::{ResourceType, GROUP_SCHEMA, USER_SCHEMA};
use scim_edge::proto::tolerance::Tolerances;
use scim_edge::store::sql::MAX_PARAMS;
use serde_json::{json, Map, Value};

fn assert_client_error(e: &ScimError, what: &str) {
    assert!(
        (400..500).contains(&e.status),
        "{what}: an error for client input must be 4xx, got {e}"
    );
}

/// The first byte picks a resource type: `None` (root search), User or Group.
fn pick_rt(b: u8) -> Option<ResourceType> {
    match b % 3 {
        0 => None,
        1 => Some(ResourceType::User),
        _ => Some(ResourceType::Group),
    }
}

/// Filter text → `filter::parse` → `bind` → `query::where_sql`.
pub fn filter(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let rt = pick_rt(first);
    let text = String::from_utf8_lossy(rest);
    let parsed = match scim_edge::proto::filter::parse(&text) {
        Ok(f) => f,
        Err(e) => return assert_client_error(&e, "filter::parse"),
    };
    // The canonical text parses back to the same filter, unless canonicalisation (quoting,
    // parentheses, U+FFFD for invalid UTF-8) pushed it over the length or depth limit.
    let canonical = parsed.to_string();
    match scim_edge::proto::filter::parse(&canonical) {
        Ok(again) => assert_eq!(
            again.to_string(),
            canonical,
            "canonical text is a fixed point"
        ),
        Err(e) => assert!(
            canonical.len() > scim_edge::proto::filter::MAX_FILTER_BYTES
                || e.detail.contains("nests deeper"),
            "canonical filter {canonical:?} does not parse: {e}"
        ),
    }
    if let Err(e) = scim_edge::proto::filter::bind(&parsed, rt) {
        return assert_client_error(&e, "filter::bind");
    }
    let mut params = Vec::new();
    match scim_edge::store::query::where_sql(&parsed, rt, &mut params) {
        Ok(sql) => {
            assert_eq!(
                sql.matches('?').count(),
                params.len(),
                "every placeholder has a bound value: {sql}"
            );
            assert!(params.len() <= MAX_PARAMS, "D1's bound-parameter limit");
        }
        Err(e) => {
            assert_client_error(&e, "query::where_sql");
            assert!(
                params.is_empty(),
                "a failed plan leaves no parameters behind"
            );
        }
    }
}

/// Attribute-path text (`sortBy`, `attributes`) → `filter::parse_attr_path`, `sortBy` planning
/// and `attributes`/`excludedAttributes` parsing for the picked type.
pub fn attr_path(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match scim_edge::proto::filter::parse_attr_path(&text) {
        Ok(p) => {
            let canonical = p.to_string();
            let again = scim_edge::proto::filter::parse_attr_path(&canonical)
                .unwrap_or_else(|e| panic!("canonical path {canonical:?} does not parse: {e}"));
            assert_eq!(again.to_string(), canonical);
        }
        Err(e) => assert_client_error(&e, "filter::parse_attr_path"),
    }
    if let Err(e) = scim_edge::store::query::sort_sql(&text, pick_rt(first)) {
        assert_client_error(&e, "query::sort_sql");
    }
    // The same text as an `attributes` / `excludedAttributes` list.
    let (attrs, excluded) = if first & 4 == 0 {
        (Some(&*text), None)
    } else {
        (None, Some(&*text))
    };
    if let Err(e) = scim_edge::proto::projection::Projection::parse(attrs, excluded, pick_rt(first))
    {
        assert_client_error(&e, "projection::parse");
    }
}

/// A stored resource to patch: a full user, or a group.
fn current(rt: ResourceType) -> Map<String, Value> {
    let v = match rt {
        ResourceType::User => json!({
            "userName": "bjensen@example.com", "active": true, "displayName": "Babs",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "b@example.com", "type": "work", "primary": true},
                       {"value": "b@home.example", "type": "home"}],
            "phoneNumbers": [{"value": "+1 555", "type": "mobile"}],
            "addresses": [{"type": "work", "streetAddress": "1 Main St"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":
                {"department": "Eng", "manager": {"value": "m-1"}}
        }),
        ResourceType::Group => json!({"displayName": "Engineers", "externalId": "g-1"}),
    };
    v.as_object().cloned().unwrap_or_default()
}

fn with_schemas(rt: ResourceType, data: &Map<String, Value>) -> Value {
    let mut body = data.clone();
    let core = match rt {
        ResourceType::User => USER_SCHEMA,
        ResourceType::Group => GROUP_SCHEMA,
    };
    body.insert("schemas".into(), json!([core]));
    Value::Object(body)
}

/// The first byte picks the resource type (bit 0: Group) and flags; the rest is a JSON body.
fn typed_body(data: &[u8]) -> Option<(ResourceType, u8, Value)> {
    let (&first, rest) = data.split_first()?;
    let rt = if first & 1 == 0 {
        ResourceType::User
    } else {
        ResourceType::Group
    };
    Some((rt, first, serde_json::from_slice(rest).ok()?))
}

/// PATCH body (JSON text) → `patch::apply` on a stored user or group, strict or tolerant.
pub fn patch(data: &[u8]) {
    let Some((rt, flags, body)) = typed_body(data) else {
        return;
    };
    let strict = flags & 2 != 0;
    let stored = current(rt);
    let result = scim_edge::proto::patch::apply(rt, &stored, &body, strict);
    // The request path patches the stored text, parsing only what the operations address:
    // it must agree with the patch of the parsed resource.
    let text = serde_json::to_string(&stored).expect("stored data serialises");
    match (
        &result,
        scim_edge::proto::patch::apply_text(rt, &text, &body, strict),
    ) {
        (Ok(full), Ok(t)) => {
            let changed = full.changed.iter().any(|n| n != "members");
            let expected = changed.then(|| serde_json::to_string(&full.data).expect("serialises"));
            assert_eq!(t.data, expected, "apply_text stores what apply does");
            assert_eq!(
                t.changed, full.changed,
                "apply_text reports the same changes"
            );
            assert_eq!(
                t.members, full.members,
                "apply_text: the same member operations"
            );
        }
        (Err(a), Err(b)) => assert_eq!(a.status, b.status, "apply_text fails as apply does"),
        (a, b) => panic!("apply gave {a:?}, apply_text gave {b:?}"),
    }
    // The handler's flow: parsed leniently before the read, the tenant's strictness known
    // only after it. A body the lenient parse refuses is refused whatever the strictness
    // (a strict tenant may hear of another fault first); one it accepts must end exactly as
    // parsing and applying in one go does.
    let mut parsed = Tolerances::lenient();
    match PatchRequest::parse(rt, &body, &mut parsed) {
        Err(e) => {
            assert_client_error(&e, "PatchRequest::parse");
            assert!(
                result.is_err(),
                "the lenient parse refuses what apply accepts"
            );
        }
        Ok(req) => {
            let split = req
                .tolerances_for(&body, &parsed, strict)
                .and_then(|collector| req.apply_text(&text, collector));
            match (&result, split) {
                (Ok(full), Ok(t)) => {
                    assert_eq!(
                        t.changed, full.changed,
                        "parse, read, apply: the same changes"
                    );
                    assert_eq!(
                        t.tolerances, full.tolerances,
                        "parse, read, apply: the same quirks"
                    );
                }
                (Err(a), Err(b)) => assert_eq!(
                    (a.status, a.scim_type, &a.detail),
                    (b.status, b.scim_type, &b.detail),
                    "parse, read, apply fails as apply does"
                ),
                (a, b) => panic!("apply gave {a:?}, parse then apply gave {b:?}"),
            }
        }
    }
    match result {
        Ok(out) => {
            // A PATCH can never store what a PUT would reject: a strict tenant's PUT, or a
            // lenient one's that keeps attributes no schema defines and nothing else odd.
            let mut tol = Tolerances::new(strict);
            let v = scim_edge::proto::resource::validate_with(
                rt,
                &with_schemas(rt, &out.data),
                &mut tol,
            )
            .unwrap_or_else(|e| panic!("patched data is not a valid resource: {e}"));
            assert!(
                tol.fired()
                    .iter()
                    .all(|t| *t == scim_edge::proto::tolerance::Tolerance::UnknownAttribute),
                "stored data needs no quirk but kept unknown attributes: {:?}",
                tol.fired()
            );
            assert_eq!(
                v.data, out.data,
                "patched data is in stored (canonical) shape"
            );
            if rt == ResourceType::User {
                assert!(out.members.is_empty(), "users have no member operations");
            }
            if strict {
                assert!(out.tolerances.is_empty(), "strict mode tolerates nothing");
            }
        }
        Err(e) => assert_client_error(&e, "patch::apply"),
    }
}

/// Resource body (JSON text) → `resource::validate_with` (lenient) for a User or a Group;
/// the strict form refuses a subset of what it accepts.
pub fn resource(data: &[u8]) {
    let Some((rt, _, body)) = typed_body(data) else {
        return;
    };
    // Lenient, as for most tenants: quirks accepted, attributes no schema defines kept.
    let mut tol = Tolerances::lenient();
    match scim_edge::proto::resource::validate_with(rt, &body, &mut tol) {
        Ok(v) => {
            // Validation is idempotent: the stored shape validates to itself.
            let again = scim_edge::proto::resource::validate_with(
                rt,
                &with_schemas(rt, &v.data),
                &mut Tolerances::lenient(),
            )
            .unwrap_or_else(|e| panic!("validated data does not validate again: {e}"));
            assert_eq!(again.data, v.data, "validation is idempotent");
            if tol.fired().is_empty() {
                let strict = scim_edge::proto::resource::validate(rt, &body)
                    .unwrap_or_else(|e| panic!("strict refuses what needed no quirk: {e}"));
                assert_eq!(
                    strict.data, v.data,
                    "strict and lenient agree without quirks"
                );
            }
            assert!(!v.data.contains_key("schemas") && !v.data.contains_key("id"));
            if let Some(m) = &v.members {
                assert!(
                    m.iter().all(|id| !id.is_empty()),
                    "member ids are non-empty"
                );
            }
        }
        Err(e) => {
            assert_client_error(&e, "resource::validate");
            assert!(
                scim_edge::proto::resource::validate(rt, &body).is_err(),
                "strict accepts what lenient refuses"
            );
        }
    }
}

/// A fuzz target: arbitrary bytes in, a panic on a broken property.
pub type Target = fn(&[u8]);

/// The targets by name, for the replay test and the docs.
pub const TARGETS: [(&str, Target); 4] = [
    ("filter", filter),
    ("attr_path", attr_path),
    ("patch", patch),
    ("resource", resource),
];
