//! SCIM schema definitions (RFC 7643 §7). The JSON under `schema/scim/` is the single source:
//! it is served by `/Schemas` and drives validation, projection and filter typing, so what the
//! service advertises and what it enforces cannot drift apart.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::OnceLock;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const SP_CONFIG_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

// `schema/scim/*.json` as build.rs embeds them: the same documents without indentation.
const USER_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/user.json"));
const GROUP_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/group.json"));
const ENTERPRISE_USER_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/enterprise_user.json"));

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Reference,
    Binary,
    Complex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

/// RFC 7643 §2.4 `uniqueness`. The service enforces `server` (and `global`, which for a
/// tenant's identity provider means the same: the tenant is the service provider it sees)
/// on `userName`, group `displayName` and declared singular string attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Uniqueness {
    #[default]
    None,
    Server,
    Global,
}

impl Uniqueness {
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// An attribute definition (RFC 7643 §7). Serialised, it is the attribute's representation
/// in `/Schemas`: declared schemas are served from what is enforced, never from what was sent.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: AttrType,
    #[serde(default)]
    pub multi_valued: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub case_exact: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canonical_values: Vec<String>,
    pub mutability: Mutability,
    pub returned: Returned,
    #[serde(default)]
    pub uniqueness: Uniqueness,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_attributes: Vec<Attribute>,
}

impl Attribute {
    pub fn sub(&self, name: &str) -> Option<&Attribute> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    fn common(
        name: &str,
        kind: AttrType,
        case_exact: bool,
        mutability: Mutability,
        returned: Returned,
    ) -> Attribute {
        Attribute {
            name: name.into(),
            kind,
            multi_valued: false,
            required: false,
            case_exact,
            mutability,
            returned,
            sub_attributes: Vec::new(),
            uniqueness: Uniqueness::None,
            description: None,
            canonical_values: Vec::new(),
            reference_types: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Schema {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub attributes: Vec<Attribute>,
}

impl Schema {
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    User,
    Group,
}

impl ResourceType {
    pub const ALL: [ResourceType; 2] = [ResourceType::User, ResourceType::Group];

    pub fn name(self) -> &'static str {
        match self {
            ResourceType::User => "User",
            ResourceType::Group => "Group",
        }
    }
    pub fn endpoint(self) -> &'static str {
        match self {
            ResourceType::User => "Users",
            ResourceType::Group => "Groups",
        }
    }
    pub fn from_name(s: &str) -> Option<ResourceType> {
        ResourceType::ALL
            .into_iter()
            .find(|rt| rt.name().eq_ignore_ascii_case(s))
    }
    pub fn from_endpoint(s: &str) -> Option<ResourceType> {
        ResourceType::ALL
            .into_iter()
            .find(|rt| rt.endpoint().eq_ignore_ascii_case(s))
    }
    pub fn core_schema(self) -> &'static Schema {
        let r = registry();
        match self {
            ResourceType::User => &r.user,
            ResourceType::Group => &r.group,
        }
    }
    pub fn extensions(self) -> &'static [Schema] {
        let r = registry();
        match self {
            ResourceType::User => std::slice::from_ref(&r.enterprise_user),
            ResourceType::Group => &[],
        }
    }
    pub fn extension(self, urn: &str) -> Option<&'static Schema> {
        self.extensions()
            .iter()
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }
    /// The attribute a group member or a list is best displayed by.
    pub fn display_attr(self) -> &'static str {
        match self {
            ResourceType::User => "displayName",
            ResourceType::Group => "displayName",
        }
    }
}

/// The schemas one tenant's resources follow: the built-in ones plus the extension schemas
/// the tenant declared ([`crate::proto::declared`]). Cheap to copy; every lookup that may
/// meet an extension goes through it, so a declared extension is validated, patched,
/// projected and filtered exactly like the enterprise extension.
#[derive(Debug, Clone, Copy, Default)]
pub struct Schemas {
    declared: Option<&'static Declared>,
    /// The tenant's `extensions: reject` setting: attributes under a URN it has not declared
    /// are refused instead of kept verbatim.
    pub reject_undeclared: bool,
}

impl PartialEq for Schemas {
    /// The same declaration set (interned, so compared by identity) and the same setting.
    fn eq(&self, other: &Schemas) -> bool {
        let same_set = match (self.declared, other.declared) {
            (Some(a), Some(b)) => std::ptr::eq(a, b),
            (None, None) => true,
            _ => false,
        };
        same_set && self.reject_undeclared == other.reject_undeclared
    }
}

impl Schemas {
    /// The built-in schemas only: a tenant that declared nothing.
    pub const BUILTIN: Schemas = Schemas {
        declared: None,
        reject_undeclared: false,
    };

    pub fn new(declared: Option<&'static Declared>, reject_undeclared: bool) -> Schemas {
        Schemas {
            declared,
            reject_undeclared,
        }
    }

    /// The schemas of one resource type.
    pub fn of(self, rt: ResourceType) -> TypeSchemas {
        TypeSchemas { rt, all: self }
    }

    /// The tenant's declared extensions, with their resource types.
    pub fn declared(self) -> &'static [DeclaredExtension] {
        self.declared.map_or(&[], |d| d.extensions.as_slice())
    }

    /// A schema (built-in or declared, for any resource type) that `urn` is, lies under, or
    /// is a prefix of: such a URN is never an undeclared extension (its names belong to that
    /// schema).
    pub fn known_schema_above(self, urn: &str) -> Option<&'static str> {
        known_schema_above(urn).or_else(|| {
            self.declared()
                .iter()
                .map(|d| d.schema.id.as_str())
                .find(|id| urn_under(id, urn) || urn_under(urn, id))
        })
    }
}

/// One resource type's schemas as one tenant sees them.
#[derive(Debug, Clone, Copy)]
pub struct TypeSchemas {
    pub rt: ResourceType,
    all: Schemas,
}

impl From<ResourceType> for TypeSchemas {
    /// The built-in schemas of `rt`.
    fn from(rt: ResourceType) -> TypeSchemas {
        Schemas::BUILTIN.of(rt)
    }
}

impl PartialEq<ResourceType> for TypeSchemas {
    fn eq(&self, other: &ResourceType) -> bool {
        self.rt == *other
    }
}

impl TypeSchemas {
    pub fn name(self) -> &'static str {
        self.rt.name()
    }

    pub fn core_schema(self) -> &'static Schema {
        self.rt.core_schema()
    }

    /// Built-in extensions first, then the tenant's declared ones for this type.
    pub fn extensions(self) -> impl Iterator<Item = &'static Schema> {
        let rt = self.rt;
        rt.extensions()
            .iter()
            .chain(self.declared().map(|d| &d.schema))
    }

    pub fn extension(self, urn: &str) -> Option<&'static Schema> {
        self.extensions().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// The tenant's view of every type.
    pub fn schemas(self) -> Schemas {
        self.all
    }

    /// The declared extensions of this type (with their `required` flag).
    pub fn declared(self) -> impl Iterator<Item = &'static DeclaredExtension> {
        let rt = self.rt;
        self.schemas().declared().iter().filter(move |d| d.rt == rt)
    }
}

/// The resource types a request addresses as one tenant sees them: one type (its endpoint)
/// or, for a root search, every type.
#[derive(Debug, Clone, Copy)]
pub struct TypeScope {
    pub only: Option<ResourceType>,
    pub schemas: Schemas,
}

impl From<Option<ResourceType>> for TypeScope {
    /// The built-in schemas.
    fn from(only: Option<ResourceType>) -> TypeScope {
        TypeScope {
            only,
            schemas: Schemas::BUILTIN,
        }
    }
}

impl From<ResourceType> for TypeScope {
    fn from(rt: ResourceType) -> TypeScope {
        TypeScope::from(Some(rt))
    }
}

impl From<TypeSchemas> for TypeScope {
    fn from(ts: TypeSchemas) -> TypeScope {
        TypeScope {
            only: Some(ts.rt),
            schemas: ts.all,
        }
    }
}

/// A tenant's declared extension schemas, parsed once and shared (see
/// [`crate::proto::declared::intern`]).
#[derive(Debug, Default)]
pub struct Declared {
    pub extensions: Vec<DeclaredExtension>,
}

/// One declared extension schema and the resource type it extends.
#[derive(Debug, Clone)]
pub struct DeclaredExtension {
    pub rt: ResourceType,
    /// Whether every resource of the type must carry it (`schemaExtensions[].required`).
    pub required: bool,
    pub schema: Schema,
}

/// Attributes common to every resource (RFC 7643 §3.1). They are not part of any schema's
/// `attributes` list, yet filters, sorting and projection address them like any other.
pub fn common_attr(name: &str) -> Option<&'static Attribute> {
    registry()
        .common
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
}

pub struct Registry {
    pub user: Schema,
    pub group: Schema,
    pub enterprise_user: Schema,
    pub common: Vec<Attribute>,
    raw: Vec<Value>,
}

// The schema files are compiled in and covered by tests: a parse failure is a build defect
// that every test would show, never something a request can cause.
#[allow(clippy::expect_used)]
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        // The schema files are compiled in and covered by tests, so a failure here is a build
        // defect, not input-derived.
        let parse = |s: &str| -> (Schema, Value) {
            let raw: Value = serde_json::from_str(s).expect("embedded schema JSON is valid");
            let schema: Schema =
                serde_json::from_value(raw.clone()).expect("embedded schema matches the model");
            (schema, raw)
        };
        let (user, user_raw) = parse(USER_JSON);
        let (group, group_raw) = parse(GROUP_JSON);
        let (enterprise_user, ent_raw) = parse(ENTERPRISE_USER_JSON);
        let meta = Attribute {
            sub_attributes: vec![
                Attribute::common(
                    "resourceType",
                    AttrType::String,
                    true,
                    Mutability::ReadOnly,
                    Returned::Default,
                ),
                Attribute::common(
                    "created",
                    AttrType::DateTime,
                    false,
                    Mutability::ReadOnly,
                    Returned::Default,
                ),
                Attribute::common(
                    "lastModified",
                    AttrType::DateTime,
                    false,
                    Mutability::ReadOnly,
                    Returned::Default,
                ),
                Attribute::common(
                    "location",
                    AttrType::Reference,
                    true,
                    Mutability::ReadOnly,
                    Returned::Default,
                ),
                Attribute::common(
                    "version",
                    AttrType::String,
                    true,
                    Mutability::ReadOnly,
                    Returned::Default,
                ),
            ],
            ..Attribute::common(
                "meta",
                AttrType::Complex,
                false,
                Mutability::ReadOnly,
                Returned::Default,
            )
        };
        let common = vec![
            Attribute::common(
                "id",
                AttrType::String,
                true,
                Mutability::ReadOnly,
                Returned::Always,
            ),
            Attribute::common(
                "externalId",
                AttrType::String,
                true,
                Mutability::ReadWrite,
                Returned::Default,
            ),
            meta,
        ];
        Registry {
            user,
            group,
            enterprise_user,
            common,
            raw: vec![user_raw, group_raw, ent_raw],
        }
    })
}

/// Schema representations as served by `/Schemas`, with `meta` added.
pub fn schema_documents(base: &str) -> Vec<Value> {
    registry()
        .raw
        .iter()
        .map(|raw| {
            let mut doc = raw.clone();
            let id = raw["id"].as_str().unwrap_or_default().to_string();
            if let Some(obj) = doc.as_object_mut() {
                obj.insert("schemas".into(), json!([SCHEMA_SCHEMA]));
                obj.insert(
                    "meta".into(),
                    json!({"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")}),
                );
            }
            doc
        })
        .collect()
}

pub fn resource_type_document(ts: impl Into<TypeSchemas>, base: &str) -> Value {
    let ts: TypeSchemas = ts.into();
    let rt = ts.rt;
    let extensions: Vec<Value> = rt
        .extensions()
        .iter()
        .map(|s| json!({"schema": s.id, "required": false}))
        .chain(
            ts.declared()
                .map(|d| json!({"schema": d.schema.id, "required": d.required})),
        )
        .collect();
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": rt.name(),
        "name": rt.name(),
        "endpoint": format!("/{}", rt.endpoint()),
        "description": match rt { ResourceType::User => "User Account", ResourceType::Group => "Group" },
        "schema": rt.core_schema().id,
        "schemaExtensions": extensions,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", rt.name())}
    })
}

/// Whether a body key is a schema URN (or an attribute qualified by one).
pub fn is_urn(key: &str) -> bool {
    key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
}

/// A schema the service defines (for any resource type) that `urn` is, lies under, or is a
/// prefix of: such a URN is never an undeclared extension (its names belong to that schema).
pub fn known_schema_above(urn: &str) -> Option<&'static str> {
    ResourceType::ALL
        .iter()
        .flat_map(|rt| std::iter::once(rt.core_schema()).chain(rt.extensions()))
        .map(|schema| schema.id.as_str())
        .find(|id| urn_under(id, urn) || urn_under(urn, id))
}

/// Whether `inner` is `outer` or a name under it (`outer:…`), case-insensitively.
fn urn_under(outer: &str, inner: &str) -> bool {
    inner
        .get(..outer.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(outer))
        && matches!(inner.as_bytes().get(outer.len()), None | Some(b':'))
}

/// RFC 7643 §2.1 ATTRNAME: `ALPHA *(nameChar)`, nameChar `-`, `_`, digit, letter (at most
/// 128 characters here).
pub fn is_attr_name(name: &str) -> bool {
    name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `name` is an attribute of any resource type's core schema, a common attribute or
/// `schemas` (case-insensitively). Such a name is never an unknown attribute to keep: `members`
/// on a User or `userName` on a Group is a client error that keeping would hide, and it would
/// shadow the real attribute in filters and projections (a kept `schemas`, sent as
/// `urn:…:core:2.0:User:schemas`, would collide with the resource's own).
pub fn is_core_name_anywhere(name: &str) -> bool {
    name.eq_ignore_ascii_case("schemas")
        || common_attr(name).is_some()
        || ResourceType::ALL
            .iter()
            .any(|rt| rt.core_schema().attr(name).is_some())
}

/// Splits `urn:...:Schema:attr` into the schema URN and the attribute name.
pub fn split_urn(key: &str) -> Option<(&str, &str)> {
    if !key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        return None;
    }
    let idx = key.rfind(':')?;
    Some((&key[..idx], &key[idx + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_parse_and_cover_the_rfc_user() {
        let user = ResourceType::User.core_schema();
        assert_eq!(user.id, USER_SCHEMA);
        for name in [
            "userName",
            "name",
            "displayName",
            "nickName",
            "profileUrl",
            "title",
            "userType",
            "preferredLanguage",
            "locale",
            "timezone",
            "active",
            "password",
            "emails",
            "phoneNumbers",
            "ims",
            "photos",
            "addresses",
            "groups",
            "entitlements",
            "roles",
            "x509Certificates",
        ] {
            assert!(user.attr(name).is_some(), "missing {name}");
        }
        assert_eq!(
            user.attr("PASSWORD").map(|a| a.returned),
            Some(Returned::Never)
        );
        assert_eq!(
            user.attr("groups").map(|a| a.mutability),
            Some(Mutability::ReadOnly)
        );
        let ent = ResourceType::User
            .extension(ENTERPRISE_USER_SCHEMA)
            .expect("enterprise");
        assert!(ent.attr("manager").and_then(|m| m.sub("value")).is_some());
        assert!(ResourceType::Group.core_schema().attr("members").is_some());
        assert_eq!(
            common_attr("ID").map(|a| a.returned),
            Some(Returned::Always)
        );
    }

    #[test]
    fn served_documents_carry_meta() {
        let docs = schema_documents("https://x/scim/v2");
        assert_eq!(docs.len(), 3);
        assert_eq!(
            docs[0]["meta"]["location"],
            format!("https://x/scim/v2/Schemas/{USER_SCHEMA}")
        );
        let rt = resource_type_document(ResourceType::User, "https://x/scim/v2");
        assert_eq!(rt["schemaExtensions"][0]["schema"], ENTERPRISE_USER_SCHEMA);
    }
}
