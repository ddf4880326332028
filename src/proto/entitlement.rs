//! Okta Entitlement Management ("Build a SCIM 2.0 server with entitlements",
//! developer.okta.com/docs/guides/scim-with-entitlements): the `Entitlement` and `Role`
//! resource types. A vendor defines their values per tenant; Okta discovers the types through
//! `/ResourceTypes`, reads every value from their endpoints, and then assigns values to users
//! through the User's own `entitlements` and `roles` (`value` = a value's `id`).
//!
//! Pure shapes only: the two kinds, the admin API's input checked before any I/O, the SCIM
//! representation, the discovery documents and the filters these read-only endpoints answer.

use crate::proto::error::{Result, ScimError};
use crate::proto::filter::{self, CompareOp, Filter, Literal};
use crate::proto::schema::RESOURCE_TYPE_SCHEMA;
use serde_json::{json, Map, Value};

/// Okta's core schema of an entitlement value. Okta knows it, so `/Schemas` does not serve it
/// (Okta asks `/Schemas` only for extensions it does not know).
pub const ENTITLEMENT_SCHEMA: &str = "urn:okta:scim:schemas:core:1.0:Entitlement";
/// Okta's core schema of a role value.
pub const ROLE_SCHEMA: &str = "urn:okta:scim:schemas:core:1.0:Role";

/// Longest id, in characters: ids travel in URLs and in every user's assignments.
pub const MAX_ID_CHARS: usize = 200;
/// Longest `displayName` and `type`, in characters (Okta shows them in its Governance tab).
pub const MAX_NAME_CHARS: usize = 256;
/// Longest `description`, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2048;

/// Which of Okta's two entitlement resource types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Entitlement,
    Role,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Entitlement, Kind::Role];

    /// The resource type's `id` and `name`, and the stored `kind`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Entitlement => "Entitlement",
            Kind::Role => "Role",
        }
    }

    /// The endpoint below the SCIM base, without the slash.
    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::Entitlement => "Entitlements",
            Kind::Role => "Roles",
        }
    }

    pub fn schema(self) -> &'static str {
        match self {
            Kind::Entitlement => ENTITLEMENT_SCHEMA,
            Kind::Role => ROLE_SCHEMA,
        }
    }

    /// The lower-case word for messages (`no role 'x'`).
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Entitlement => "entitlement",
            Kind::Role => "role",
        }
    }

    /// `Entitlements` / `Roles`, case-insensitively like every SCIM endpoint here.
    pub fn from_endpoint(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.endpoint().eq_ignore_ascii_case(s))
    }

    pub fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
    }
}

/// One value as the vendor defined it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub id: String,
    pub display_name: String,
    /// The entitlement's category as Okta shows it (the guide's `"type": "License"`); users'
    /// `entitlements[].type` carry the same word.
    pub kind_type: Option<String>,
    pub description: Option<String>,
    pub created: String,
    pub modified: String,
}

/// A value to create, checked. `id: None` asks for a generated one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDefinition {
    pub id: Option<String>,
    pub display_name: String,
    pub kind_type: Option<String>,
    pub description: Option<String>,
}

/// A partial update, checked: `None` keeps a field; `Some(None)` clears an optional one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    pub display_name: Option<String>,
    pub kind_type: Option<Option<String>>,
    pub description: Option<Option<String>>,
}

const CREATE_FIELDS: [&str; 4] = ["id", "displayName", "type", "description"];
const CHANGE_FIELDS: [&str; 3] = ["displayName", "type", "description"];

fn reject_unknown(body: &Map<String, Value>, known: &[&str]) -> Result<()> {
    match body.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ScimError::invalid_value(format!(
            "unknown field '{k}'; expected one of: {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A text field: a string of 1 to `max` characters without control characters, surrounding
/// whitespace removed; `null` or absent is `None`.
fn text(body: &Map<String, Value>, name: &str, max: usize) -> Result<Option<String>> {
    let s = match body.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim(),
        Some(_) => {
            return Err(ScimError::invalid_value(format!(
                "'{name}' must be a string"
            )))
        }
    };
    let n = s.chars().count();
    if n == 0 || n > max || s.chars().any(char::is_control) {
        return Err(ScimError::invalid_value(format!(
            "'{name}' must be 1 to {max} characters without control characters"
        )));
    }
    Ok(Some(s.to_string()))
}

/// Checks a vendor-chosen id. Ids appear in `/Roles/{id}` and as the `value` of every
/// assignment, so only characters that need no escaping in a URL path are allowed.
pub fn check_id(id: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "-._~:@+=".contains(c);
    let n = id.chars().count();
    if n == 0 || n > MAX_ID_CHARS || !id.chars().all(ok_char) {
        return Err(ScimError::invalid_value(format!(
            "'id' must be 1 to {MAX_ID_CHARS} characters of A-Z, a-z, 0-9 and - . _ ~ : @ + =; \
             leave it out to have one generated"
        )));
    }
    Ok(())
}

/// Parses the admin API's create body `{id?, displayName, type?, description?}`.
pub fn parse_new(body: &Map<String, Value>) -> Result<NewDefinition> {
    reject_unknown(body, &CREATE_FIELDS)?;
    let id = match body.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            check_id(s)?;
            Some(s.clone())
        }
        Some(_) => return Err(ScimError::invalid_value("'id' must be a string")),
    };
    let display_name = text(body, "displayName", MAX_NAME_CHARS)?
        .ok_or_else(|| ScimError::invalid_value("'displayName' is required"))?;
    Ok(NewDefinition {
        id,
        display_name,
        kind_type: text(body, "type", MAX_NAME_CHARS)?,
        description: text(body, "description", MAX_DESCRIPTION_CHARS)?,
    })
}

/// Parses the admin API's update body `{displayName?, type?, description?}`; `null` clears
/// `type` or `description`. The id never changes: users' assignments hold it.
pub fn parse_change(body: &Map<String, Value>) -> Result<Change> {
    if body.contains_key("id") {
        return Err(ScimError::mutability(
            "'id' cannot change: users' assignments refer to it; create a new value instead",
        ));
    }
    reject_unknown(body, &CHANGE_FIELDS)?;
    if body.get("displayName") == Some(&Value::Null) {
        return Err(ScimError::invalid_value("'displayName' cannot be removed"));
    }
    let optional = |name: &str, max: usize| -> Result<Option<Option<String>>> {
        match body.get(name) {
            None => Ok(None),
            Some(_) => text(body, name, max).map(Some),
        }
    };
    let change = Change {
        display_name: text(body, "displayName", MAX_NAME_CHARS)?,
        kind_type: optional("type", MAX_NAME_CHARS)?,
        description: optional("description", MAX_DESCRIPTION_CHARS)?,
    };
    if change == Change::default() {
        return Err(ScimError::invalid_value(
            "nothing to change; send displayName, type or description",
        ));
    }
    Ok(change)
}

/// The SCIM representation (the guide's `/Roles` example, with `meta`).
pub fn to_scim(kind: Kind, d: &Definition, base: &str) -> Value {
    let mut v = json!({
        "schemas": [kind.schema()],
        "id": d.id,
        "displayName": d.display_name,
    });
    if let Some(obj) = v.as_object_mut() {
        if let Some(t) = &d.kind_type {
            obj.insert("type".into(), json!(t));
        }
        if let Some(desc) = &d.description {
            obj.insert("description".into(), json!(desc));
        }
        obj.insert(
            "meta".into(),
            json!({
                "resourceType": kind.name(),
                "created": d.created,
                "lastModified": d.modified,
                "location": format!("{base}/{}/{}", kind.endpoint(), d.id),
            }),
        );
    }
    v
}

/// The `/ResourceTypes` entry, shaped as Okta's guide shows it (no `schemaExtensions`).
pub fn resource_type_document(kind: Kind, base: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": kind.name(),
        "name": kind.name(),
        "endpoint": format!("/{}", kind.endpoint()),
        "description": match kind {
            Kind::Entitlement => "Entitlements users of this application can be granted",
            Kind::Role => "Roles users of this application can be granted",
        },
        "schema": kind.schema(),
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", kind.name())}
    })
}

/// An attribute these endpoints filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Compared exactly (RFC 7643 §3.1: `id` is caseExact).
    Id,
    /// Compared case-insensitively, like a Group's `displayName`.
    DisplayName,
    /// Compared case-insensitively.
    Type,
}

/// One `attr eq "value"` condition of a filter; a filter is their conjunction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub field: Field,
    pub value: String,
}

/// Reads a `filter` for `/Entitlements` or `/Roles`: `id`, `displayName` or `type` compared
/// with `eq` to a string, several joined by `and`. Okta's guide sends no filter (it reads
/// every value); this is what a client looking one value up needs, and anything more is a
/// clear `400 invalidFilter` rather than a silently wrong page.
pub fn parse_filter(kind: Kind, input: &str) -> Result<Vec<Match>> {
    let parsed = filter::parse(input)?;
    let mut out = Vec::new();
    collect(kind, &parsed, &mut out)?;
    Ok(out)
}

fn collect(kind: Kind, f: &Filter, out: &mut Vec<Match>) -> Result<()> {
    let unsupported = || {
        ScimError::invalid_filter(format!(
            "/{} supports only id, displayName and type compared with eq to a string, \
             joined by and (e.g. displayName eq \"Admin\")",
            kind.endpoint()
        ))
    };
    match f {
        Filter::And(parts) => parts.iter().try_for_each(|p| collect(kind, p, out)),
        Filter::Compare(c) if c.op == CompareOp::Eq && c.path.sub.is_none() => {
            let schema_ok = c
                .path
                .urn
                .as_deref()
                .is_none_or(|u| u.eq_ignore_ascii_case(kind.schema()));
            let field = match c.path.name.to_ascii_lowercase().as_str() {
                "id" => Field::Id,
                "displayname" => Field::DisplayName,
                "type" => Field::Type,
                _ => return Err(unsupported()),
            };
            match &c.value {
                Literal::String(s) if schema_ok => {
                    out.push(Match {
                        field,
                        value: s.clone(),
                    });
                    Ok(())
                }
                _ => Err(unsupported()),
            }
        }
        _ => Err(unsupported()),
    }
}

/// `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5) for a value with four attributes:
/// top-level names, plain or qualified by the kind's schema URN, case-insensitively; a
/// sub-attribute (`meta.created`) names its parent. `id` and `schemas` are always returned.
/// Names these resources do not have select nothing, as for any other resource.
pub fn project(kind: Kind, v: &mut Value, attributes: Option<&str>, excluded: Option<&str>) {
    let names = |list: &str| -> Vec<String> {
        list.split(',')
            .map(|n| {
                let n = n.trim();
                let n = match n.get(..kind.schema().len()) {
                    Some(urn) if urn.eq_ignore_ascii_case(kind.schema()) => {
                        n.get(kind.schema().len() + 1..).unwrap_or_default()
                    }
                    _ => n,
                };
                n.split('.').next().unwrap_or_default().to_ascii_lowercase()
            })
            .collect()
    };
    let Some(obj) = v.as_object_mut() else { return };
    let listed = |names: &[String], key: &str| names.iter().any(|n| n.eq_ignore_ascii_case(key));
    let always = |key: &str| key == "id" || key == "schemas";
    if let Some(list) = attributes.filter(|a| !a.trim().is_empty()) {
        let keep = names(list);
        obj.retain(|k, _| always(k) || listed(&keep, k));
    } else if let Some(list) = excluded.filter(|e| !e.trim().is_empty()) {
        let drop = names(list);
        obj.retain(|k, _| always(k) || !listed(&drop, k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn kinds_name_okta_s_resource_types() {
        assert_eq!(Kind::from_endpoint("roles"), Some(Kind::Role));
        assert_eq!(Kind::from_endpoint("Entitlements"), Some(Kind::Entitlement));
        assert_eq!(Kind::from_endpoint("Licenses"), None);
        assert_eq!(Kind::from_name("role"), Some(Kind::Role));
        let rt = resource_type_document(Kind::Role, "https://x/scim/v2");
        assert_eq!(rt["id"], "Role");
        assert_eq!(rt["endpoint"], "/Roles");
        assert_eq!(rt["schema"], "urn:okta:scim:schemas:core:1.0:Role");
        assert_eq!(
            rt["meta"]["location"],
            "https://x/scim/v2/ResourceTypes/Role"
        );
        let rt = resource_type_document(Kind::Entitlement, "https://x/scim/v2");
        assert_eq!(rt["schema"], "urn:okta:scim:schemas:core:1.0:Entitlement");
        assert_eq!(rt["endpoint"], "/Entitlements");
    }

    #[test]
    fn create_bodies_are_checked_before_any_write() {
        let ok = parse_new(&obj(
            json!({"id": "role-1", "displayName": " Admin ", "type": "Role"}),
        ))
        .unwrap();
        assert_eq!(ok.id.as_deref(), Some("role-1"));
        assert_eq!(ok.display_name, "Admin", "trimmed");
        assert_eq!(ok.kind_type.as_deref(), Some("Role"));
        assert_eq!(ok.description, None);
        let generated = parse_new(&obj(json!({"displayName": "Reader"}))).unwrap();
        assert_eq!(generated.id, None);
        let bad = [
            json!({}),
            json!({"displayName": ""}),
            json!({"displayName": "   "}),
            json!({"displayName": 5}),
            json!({"displayName": "a\nb"}),
            json!({"displayName": "x".repeat(MAX_NAME_CHARS + 1)}),
            json!({"displayName": "A", "id": "has space"}),
            json!({"displayName": "A", "id": "a/b"}),
            json!({"displayName": "A", "id": ""}),
            json!({"displayName": "A", "id": 7}),
            json!({"displayName": "A", "id": "é"}),
            json!({"displayName": "A", "id": "x".repeat(MAX_ID_CHARS + 1)}),
            json!({"displayName": "A", "value": "x"}),
            json!({"displayName": "A", "description": ["x"]}),
        ];
        for b in bad {
            let e = parse_new(&obj(b.clone())).unwrap_err();
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some(crate::proto::error::ScimType::InvalidValue)),
                "{b}"
            );
        }
        assert!(parse_new(&obj(json!({"displayName": "A", "id": "urn:app:role:1"}))).is_ok());
    }

    #[test]
    fn changes_keep_clear_or_refuse() {
        let c = parse_change(&obj(json!({"displayName": "B", "type": null}))).unwrap();
        assert_eq!(c.display_name.as_deref(), Some("B"));
        assert_eq!(c.kind_type, Some(None), "null clears");
        assert_eq!(c.description, None, "absent keeps");
        assert_eq!(
            parse_change(&obj(json!({"id": "x"}))).unwrap_err().status,
            400
        );
        assert!(parse_change(&obj(json!({}))).is_err(), "nothing to change");
        assert!(parse_change(&obj(json!({"displayName": null}))).is_err());
        assert!(parse_change(&obj(json!({"type": ""}))).is_err());
    }

    #[test]
    fn scim_shape_follows_okta_s_example() {
        let d = Definition {
            id: "role-1".into(),
            display_name: "First Role".into(),
            kind_type: None,
            description: Some("Can do things".into()),
            created: "2026-01-01T00:00:00.000Z".into(),
            modified: "2026-01-02T00:00:00.000Z".into(),
        };
        let v = to_scim(Kind::Role, &d, "https://x/scim/v2");
        assert_eq!(v["schemas"], json!([ROLE_SCHEMA]));
        assert_eq!(v["id"], "role-1");
        assert_eq!(v["displayName"], "First Role");
        assert_eq!(v["description"], "Can do things");
        assert!(v.get("type").is_none(), "absent, not null");
        assert_eq!(v["meta"]["resourceType"], "Role");
        assert_eq!(v["meta"]["location"], "https://x/scim/v2/Roles/role-1");
        assert_eq!(v["meta"]["lastModified"], "2026-01-02T00:00:00.000Z");
    }

    #[test]
    fn projection_keeps_id_and_schemas() {
        let d = Definition {
            id: "e1".into(),
            display_name: "E".into(),
            kind_type: Some("License".into()),
            description: Some("d".into()),
            created: "c".into(),
            modified: "m".into(),
        };
        let keys = |attributes: Option<&str>, excluded: Option<&str>| {
            let mut v = to_scim(Kind::Entitlement, &d, "https://x");
            project(Kind::Entitlement, &mut v, attributes, excluded);
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(Some("displayName"), None),
            ["displayName", "id", "schemas"]
        );
        assert_eq!(
            keys(
                Some("urn:okta:scim:schemas:core:1.0:Entitlement:TYPE, meta.created"),
                None
            ),
            ["id", "meta", "schemas", "type"]
        );
        assert_eq!(
            keys(None, Some("description,meta,id")),
            ["displayName", "id", "schemas", "type"]
        );
        assert_eq!(keys(None, None).len(), 6);
    }

    #[test]
    fn filters_are_eq_on_three_attributes_or_refused() {
        let m = parse_filter(Kind::Role, "displayName eq \"Admin\" and ID eq \"r1\"").unwrap();
        assert_eq!(
            m,
            vec![
                Match {
                    field: Field::DisplayName,
                    value: "Admin".into()
                },
                Match {
                    field: Field::Id,
                    value: "r1".into()
                },
            ]
        );
        let m = parse_filter(
            Kind::Entitlement,
            "urn:okta:scim:schemas:core:1.0:Entitlement:type eq \"License\"",
        )
        .unwrap();
        assert_eq!(
            m,
            vec![Match {
                field: Field::Type,
                value: "License".into()
            }]
        );
        for bad in [
            "displayName co \"Ad\"",
            "displayName eq \"A\" or id eq \"b\"",
            "not (id eq \"a\")",
            "description eq \"x\"",
            "id pr",
            "id eq 5",
            "urn:okta:scim:schemas:core:1.0:Role:id eq \"a\"",
            "displayName eq",
        ] {
            let e = parse_filter(Kind::Entitlement, bad).unwrap_err();
            assert_eq!(
                e.scim_type,
                Some(crate::proto::error::ScimType::InvalidFilter),
                "{bad}"
            );
        }
    }
}
