//! Extension schemas a tenant declares (issue: every attribute an identity provider sends is
//! kept, served, filtered and patched). A declaration is an RFC 7643 §7 schema representation
//! plus the resource type it extends; once declared, its attributes are validated on every
//! write, served by `/Schemas` and `/ResourceTypes`, and filtered with their types.
//!
//! Validation, PATCH, projection and filters hold `&'static Attribute`s (the built-in schemas
//! are compiled in), so a declared schema must live as long as the isolate. [`intern`] bounds
//! what that costs: one copy per distinct set of declarations an isolate meets (a few KiB,
//! changed only by a vendor's admin action), never one per request.

use crate::proto::error::{Result, ScimError};
use crate::proto::schema::{
    self, AttrType, Attribute, Declared, DeclaredExtension, Mutability, ResourceType, Returned,
    Schema, Uniqueness, SCHEMA_SCHEMA,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Most attributes one declared schema may define (sub-attributes count once each).
pub const MAX_ATTRIBUTES: usize = 200;
/// Most extension schemas one tenant may declare.
pub const MAX_DECLARED: usize = 20;
/// Longest description or canonical value kept.
const MAX_TEXT: usize = 1024;

/// RFC 7643 §7 attribute representation as a client writes it: every characteristic but
/// `name` and `type` has the RFC's default, and an unknown member (a typo such as
/// `multivalued`) is refused rather than silently ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AttrDecl {
    name: String,
    #[serde(rename = "type")]
    kind: AttrType,
    #[serde(default)]
    multi_valued: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    case_exact: bool,
    #[serde(default)]
    canonical_values: Vec<String>,
    #[serde(default = "read_write")]
    mutability: Mutability,
    #[serde(default = "returned_default")]
    returned: Returned,
    #[serde(default)]
    uniqueness: Uniqueness,
    #[serde(default)]
    reference_types: Vec<String>,
    #[serde(default)]
    sub_attributes: Vec<AttrDecl>,
}

fn read_write() -> Mutability {
    Mutability::ReadWrite
}
fn returned_default() -> Returned {
    Returned::Default
}

/// RFC 7643 §7 schema representation; `schemas` and `meta` (present when the document was
/// copied from another server's `/Schemas`) are accepted and ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SchemaDecl {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    attributes: Vec<AttrDecl>,
    #[serde(default, rename = "schemas")]
    _schemas: Option<Value>,
    #[serde(default, rename = "meta")]
    _meta: Option<Value>,
}

/// Parses and checks one declaration. Everything that would make the schema unusable or
/// ambiguous is a `400 invalidValue` naming the attribute: a URN that is not one or belongs
/// to a built-in schema, names that are not ATTRNAMEs or repeat, sub-attributes on a
/// non-complex attribute or nested complex ones (RFC 7643 §2.3.8), and uniqueness where the
/// service could not enforce it.
pub fn parse(rt: ResourceType, required: bool, doc: &Value) -> Result<DeclaredExtension> {
    let decl: SchemaDecl = serde_json::from_value(doc.clone())
        .map_err(|e| ScimError::invalid_value(format!("the schema is not valid: {e}")))?;
    check_urn(&decl.id)?;
    if decl.attributes.is_empty() {
        return Err(invalid(
            &decl.id,
            "a schema must define at least one attribute",
        ));
    }
    let count: usize = decl
        .attributes
        .iter()
        .map(|a| 1 + a.sub_attributes.len())
        .sum();
    if count > MAX_ATTRIBUTES {
        return Err(invalid(
            &decl.id,
            format!(
                "a schema may define at most {MAX_ATTRIBUTES} attributes; this one has {count}"
            ),
        ));
    }
    let attributes = attributes(&decl.id, decl.attributes, false)?;
    let name = decl.name.unwrap_or_else(|| {
        schema::split_urn(&decl.id)
            .map_or("", |(_, n)| n)
            .to_string()
    });
    Ok(DeclaredExtension {
        rt,
        required,
        schema: Schema {
            name: bounded(&decl.id, name)?,
            description: decl.description.map(|d| bounded(&decl.id, d)).transpose()?,
            id: decl.id,
            attributes,
        },
    })
}

fn check_urn(urn: &str) -> Result<()> {
    let usable = urn.len() <= 512
        && schema::split_urn(urn).is_some_and(|(_, last)| !last.is_empty())
        && urn
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if !usable {
        return Err(ScimError::invalid_value(format!(
            "schema id '{}' is not a usable URN (urn:…, printable ASCII, no quotes)",
            urn.chars().take(80).collect::<String>()
        )));
    }
    if let Some(known) = schema::known_schema_above(urn) {
        return Err(ScimError::invalid_value(format!(
            "schema id '{urn}' overlaps the built-in schema \"{known}\""
        )));
    }
    Ok(())
}

fn attributes(path: &str, decls: Vec<AttrDecl>, nested: bool) -> Result<Vec<Attribute>> {
    let mut out: Vec<Attribute> = Vec::with_capacity(decls.len());
    for d in decls {
        let here = format!("{path}:{}", d.name);
        if !schema::is_attr_name(&d.name) {
            return Err(invalid(
                &here,
                "is not an ATTRNAME (RFC 7643 §2.1: a letter, then letters, digits, '-' or '_')",
            ));
        }
        if out.iter().any(|a| a.name.eq_ignore_ascii_case(&d.name)) {
            return Err(invalid(
                &here,
                "is defined twice (names are case-insensitive)",
            ));
        }
        out.push(attribute(&here, d, nested)?);
    }
    Ok(out)
}

fn attribute(here: &str, d: AttrDecl, nested: bool) -> Result<Attribute> {
    match (d.kind, nested, d.sub_attributes.is_empty()) {
        (AttrType::Complex, true, _) => {
            return Err(invalid(
                here,
                "a sub-attribute cannot be complex (RFC 7643 §2.3.8)",
            ))
        }
        (AttrType::Complex, false, true) => {
            return Err(invalid(here, "a complex attribute needs subAttributes"))
        }
        (kind, _, false) if kind != AttrType::Complex => {
            return Err(invalid(here, "only a complex attribute has subAttributes"))
        }
        _ => {}
    }
    if !d.reference_types.is_empty() && d.kind != AttrType::Reference {
        return Err(invalid(
            here,
            "only a reference attribute has referenceTypes",
        ));
    }
    let enforceable =
        !nested && !d.multi_valued && matches!(d.kind, AttrType::String | AttrType::Reference);
    if d.uniqueness != Uniqueness::None && !enforceable {
        return Err(invalid(
            here,
            "uniqueness is enforced for singular top-level string or reference attributes only",
        ));
    }
    if d.canonical_values.len() > 100 {
        return Err(invalid(here, "at most 100 canonicalValues"));
    }
    let canonical_values = d
        .canonical_values
        .into_iter()
        .map(|v| bounded(here, v))
        .collect::<Result<Vec<_>>>()?;
    Ok(Attribute {
        sub_attributes: attributes(here, d.sub_attributes, true)?,
        description: d.description.map(|v| bounded(here, v)).transpose()?,
        canonical_values,
        reference_types: d.reference_types,
        name: d.name,
        kind: d.kind,
        multi_valued: d.multi_valued,
        required: d.required,
        case_exact: d.case_exact,
        mutability: d.mutability,
        returned: d.returned,
        uniqueness: d.uniqueness,
    })
}

fn bounded(here: &str, text: String) -> Result<String> {
    if text.len() > MAX_TEXT {
        return Err(invalid(here, format!("text longer than {MAX_TEXT} bytes")));
    }
    Ok(text)
}

fn invalid(here: &str, why: impl std::fmt::Display) -> ScimError {
    ScimError::invalid_value(format!("'{here}': {why}"))
}

/// The representation `/Schemas` serves for a declared schema: generated from the parsed
/// definition, so it states every characteristic the service enforces.
pub fn document(ext: &DeclaredExtension, base: &str) -> Value {
    let mut doc = representation(ext);
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("schemas".into(), json!([SCHEMA_SCHEMA]));
        obj.insert(
            "meta".into(),
            json!({"resourceType": "Schema", "location": format!("{base}/Schemas/{}", ext.schema.id)}),
        );
    }
    doc
}

/// The normalised representation (what is stored): `id`, `name`, `description` and every
/// attribute with all its characteristics.
pub fn representation(ext: &DeclaredExtension) -> Value {
    let s = &ext.schema;
    let mut doc = json!({"id": s.id, "name": s.name, "attributes": s.attributes});
    if let (Some(d), Some(obj)) = (&s.description, doc.as_object_mut()) {
        obj.insert("description".into(), Value::String(d.clone()));
    }
    doc
}

/// The shared copy of a tenant's declarations, parsed by the caller; `key` identifies the
/// set (the stored declarations' text and versions), so an isolate that reloads an unchanged
/// set every few seconds reuses one copy.
pub fn intern(key: &str, make: impl FnOnce() -> Declared) -> &'static Declared {
    static SETS: OnceLock<Mutex<HashMap<String, &'static Declared>>> = OnceLock::new();
    let mut sets = SETS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(found) = sets.get(key) {
        return found;
    }
    let made: &'static Declared = Box::leak(Box::new(make()));
    sets.insert(key.to_string(), made);
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entra_custom() -> Value {
        json!({
            "id": "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User",
            "name": "CustomExtension",
            "attributes": [
                {"name": "CustomAttribute", "type": "string"},
                {"name": "badgeNumber", "type": "string", "caseExact": true, "uniqueness": "server"},
                {"name": "hired", "type": "dateTime"},
                {"name": "clearances", "type": "complex", "multiValued": true,
                 "subAttributes": [{"name": "value", "type": "string"}, {"name": "level", "type": "integer"}]}
            ]
        })
    }

    #[test]
    fn a_declaration_takes_the_rfc_defaults_and_is_served_in_full() {
        let ext = parse(ResourceType::User, false, &entra_custom()).expect("valid");
        let attr = ext.schema.attr("customattribute").expect("declared");
        assert_eq!(attr.mutability, Mutability::ReadWrite);
        assert_eq!(attr.returned, Returned::Default);
        assert!(!attr.case_exact && !attr.multi_valued && !attr.required);
        let doc = document(&ext, "https://x/scim/v2");
        assert_eq!(doc["attributes"][0]["mutability"], "readWrite");
        assert_eq!(doc["attributes"][1]["uniqueness"], "server");
        assert_eq!(doc["attributes"][3]["subAttributes"][1]["type"], "integer");
        assert_eq!(
            doc["meta"]["location"],
            "https://x/scim/v2/Schemas/urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"
        );
    }

    #[test]
    fn unusable_declarations_are_refused_with_the_attribute_named() {
        let bad = |doc: Value, needle: &str| {
            let e = parse(ResourceType::User, false, &doc).expect_err("refused");
            assert_eq!(e.status, 400);
            assert!(e.detail.contains(needle), "{} lacks {needle}", e.detail);
        };
        let with = |attrs: Value| json!({"id": "urn:x:ext", "attributes": attrs});
        bad(
            with(json!([{"name": "a", "type": "text"}])),
            "unknown variant",
        );
        bad(
            with(json!([{"name": "a", "type": "string", "multivalued": true}])),
            "multivalued",
        );
        bad(
            with(json!([{"name": "1a", "type": "string"}])),
            "urn:x:ext:1a",
        );
        bad(
            with(json!([{"name": "a", "type": "string"}, {"name": "A", "type": "boolean"}])),
            "twice",
        );
        bad(
            with(json!([{"name": "c", "type": "complex"}])),
            "needs subAttributes",
        );
        bad(
            with(json!([{"name": "c", "type": "complex", "subAttributes": [
                {"name": "d", "type": "complex", "subAttributes": [{"name": "e", "type": "string"}]}]}])),
            "cannot be complex",
        );
        bad(
            with(
                json!([{"name": "s", "type": "string", "subAttributes": [{"name": "e", "type": "string"}]}]),
            ),
            "only a complex",
        );
        bad(
            with(
                json!([{"name": "m", "type": "string", "multiValued": true, "uniqueness": "server"}]),
            ),
            "uniqueness",
        );
        bad(with(json!([])), "at least one");
        bad(
            json!({"id": "not-a-urn", "attributes": [{"name": "a", "type": "string"}]}),
            "usable URN",
        );
        bad(
            json!({"id": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "attributes": [{"name": "a", "type": "string"}]}),
            "built-in",
        );
        bad(
            json!({"id": "urn:ietf:params:scim:schemas:core:2.0:User:ext", "attributes": [{"name": "a", "type": "string"}]}),
            "built-in",
        );
    }

    #[test]
    fn interning_reuses_one_copy_per_key() {
        let a = intern("test-key-1", Declared::default);
        let b = intern("test-key-1", || panic!("not rebuilt"));
        assert!(std::ptr::eq(a, b));
        let c = intern("test-key-2", Declared::default);
        assert!(!std::ptr::eq(a, c));
    }
}
