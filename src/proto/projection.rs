//! `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5) and the `returned` characteristic
//! (RFC 7643 §2.4). The projection is resolved against the schema before any I/O so that the
//! store can skip work nobody asked for (e.g. loading 100k group members).

use crate::proto::error::{Result, ScimError};
use crate::proto::schema::{
    self, Attribute, Mutability, ResourceType, Returned, Schemas, TypeSchemas, TypeScope,
};
use serde_json::{Map, Value};

/// One attribute reference: `schema` is `None` for core/common attributes, else the
/// extension URN; names are canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AttrRef {
    schema: Option<String>,
    attr: String,
    sub: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    include: Vec<AttrRef>,
    exclude: Vec<AttrRef>,
    /// The tenant's schemas the names were resolved against; rendering applies them too.
    schemas: Schemas,
}

impl Projection {
    /// Parses the two comma-separated lists. For a root search (`rt == None`) a name must be
    /// known to at least one resource type.
    pub fn parse(
        attributes: Option<&str>,
        excluded: Option<&str>,
        scope: impl Into<TypeScope>,
    ) -> Result<Projection> {
        let scope: TypeScope = scope.into();
        let types: Vec<TypeSchemas> = match scope.only {
            Some(rt) => vec![scope.schemas.of(rt)],
            None => ResourceType::ALL.map(|rt| scope.schemas.of(rt)).to_vec(),
        };
        let parse_list = |list: Option<&str>| -> Result<Vec<AttrRef>> {
            let mut out = Vec::new();
            for raw in list
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                let resolved = types
                    .iter()
                    .find_map(|t| resolve(*t, raw))
                    .or_else(|| undeclared_ref(scope.schemas, raw))
                    .or_else(|| unknown_ref(&types, raw));
                out.push(resolved.ok_or_else(|| {
                    ScimError::invalid_value(format!(
                        "unknown attribute '{raw}' in attributes/excludedAttributes"
                    ))
                })?);
            }
            Ok(out)
        };
        Ok(Projection {
            include: parse_list(attributes)?,
            exclude: parse_list(excluded)?,
            schemas: scope.schemas,
        })
    }

    /// Whether the rendered resource will contain `attr` (a top-level core attribute name) —
    /// lets the store skip loading `members`/`groups`.
    pub fn wants(&self, rt: ResourceType, attr: &str) -> bool {
        let Some(def) = rt.core_schema().attr(attr) else {
            return false;
        };
        if def.returned == Returned::Never {
            return false;
        }
        if def.returned == Returned::Always {
            return true;
        }
        if !self.include.is_empty() {
            return self
                .include
                .iter()
                .any(|r| r.schema.is_none() && r.attr == def.name);
        }
        if def.returned == Returned::Request {
            return false;
        }
        !self
            .exclude
            .iter()
            .any(|r| r.schema.is_none() && r.attr == def.name && r.sub.is_none())
    }

    /// Whether this projection leaves every stored attribute of `rt` as it is, so a response
    /// may carry the stored `data` text verbatim (`resource::write_spliced`): nothing is
    /// asked for by name, only attributes that are not in `data` are excluded, and no stored
    /// attribute or sub-attribute is `returned: never` or `request` (the schemas have none
    /// today; this keeps the fast path honest if one is added).
    pub fn leaves_stored_data(&self, rt: ResourceType) -> bool {
        let not_stored = |r: &AttrRef| {
            r.schema.is_none() && matches!(r.attr.as_str(), "members" | "groups" | "meta" | "id")
        };
        self.include.is_empty()
            && self.exclude.iter().all(not_stored)
            && stored_returned_by_default(self.schemas.of(rt))
    }

    /// Whether `attributes` or `excludedAttributes` names the top-level core or common
    /// attribute `name` (or one of its sub-attributes).
    pub fn names(&self, name: &str) -> bool {
        self.include
            .iter()
            .chain(&self.exclude)
            .any(|r| r.schema.is_none() && r.attr == name)
    }

    /// Whether [`Projection::apply`] leaves the top-level core attribute `name` exactly as
    /// rendered: nothing is asked for by name (`attributes` would drop what it does not
    /// list), `name` is not excluded, and neither it nor a sub-attribute is hidden by its
    /// `returned` characteristic. Lets a renderer write it without building it as a value.
    pub fn keeps_whole(&self, rt: ResourceType, name: &str) -> bool {
        self.include.is_empty() && !self.names(name) && returned_whole(rt, name)
    }

    /// Applies the projection to a fully rendered resource in place.
    pub fn apply(&self, rt: ResourceType, resource: &mut Value) {
        let rt = self.schemas.of(rt);
        let Some(obj) = resource.as_object_mut() else {
            return;
        };
        let keys: Vec<String> = obj.keys().cloned().collect();
        for key in keys {
            if key == "schemas" {
                continue;
            }
            if let Some(ext) = rt.extension(&key) {
                let urn = Some(ext.id.clone());
                if let Some(Value::Object(inner)) = obj.get_mut(&key) {
                    self.filter_object(&urn, inner, |name| ext.attr(name));
                    if inner.is_empty() {
                        obj.remove(&key);
                    }
                }
                continue;
            }
            let def = rt
                .core_schema()
                .attr(&key)
                .or_else(|| schema::common_attr(&key));
            let Some(def) = def else {
                if schema::is_urn(&key) {
                    self.project_undeclared(obj, &key);
                } else {
                    self.project_unknown(obj, &key);
                }
                continue;
            };
            match self.decide(&None, def) {
                Decision::Drop => {
                    obj.remove(&key);
                }
                Decision::Keep => {}
                Decision::Subs(subs, keep) => {
                    if let Some(v) = obj.get_mut(&key) {
                        prune_subs(v, &subs, keep);
                    }
                }
            }
            let hidden = self.hidden_subs(&None, def);
            if let (false, Some(v)) = (hidden.is_empty(), obj.get_mut(&key)) {
                prune_subs(v, &hidden, false);
            }
        }
    }

    /// An undeclared extension (no schema: every attribute `returned: default`): kept,
    /// narrowed or dropped as `attributes` and `excludedAttributes` name it or its
    /// attributes, compared case-insensitively.
    fn project_undeclared(&self, obj: &mut Map<String, Value>, key: &str) {
        let whole = |r: &&AttrRef| {
            r.sub.is_none()
                && r.schema
                    .as_ref()
                    .is_some_and(|s| format!("{s}:{}", r.attr).eq_ignore_ascii_case(key))
        };
        let of_ext = |r: &&AttrRef| {
            r.schema
                .as_ref()
                .is_some_and(|s| s.eq_ignore_ascii_case(key))
        };
        let (refs, keep) = if self.include.is_empty() {
            if self.exclude.iter().any(|r| whole(&r)) {
                obj.remove(key);
                return;
            }
            (
                self.exclude.iter().filter(of_ext).collect::<Vec<_>>(),
                false,
            )
        } else {
            if self.include.iter().any(|r| whole(&r)) {
                return;
            }
            (self.include.iter().filter(of_ext).collect::<Vec<_>>(), true)
        };
        let Some(Value::Object(inner)) = obj.get_mut(key) else {
            return;
        };
        let names: Vec<String> = inner.keys().cloned().collect();
        for name in names {
            let named: Vec<&AttrRef> = refs
                .iter()
                .copied()
                .filter(|r| r.attr.eq_ignore_ascii_case(&name))
                .collect();
            project_schemaless(inner, &name, &named, keep);
        }
        if inner.is_empty() {
            obj.remove(key);
        }
    }

    /// An attribute at the core level that no schema defines (kept as the
    /// `unknownAttribute` tolerance; `returned: default`): kept, narrowed or dropped as the
    /// plain names in `attributes` and `excludedAttributes` say, compared case-insensitively.
    fn project_unknown(&self, obj: &mut Map<String, Value>, key: &str) {
        let (refs, keep) = if self.include.is_empty() {
            (&self.exclude, false)
        } else {
            (&self.include, true)
        };
        let named: Vec<&AttrRef> = refs
            .iter()
            .filter(|r| r.schema.is_none() && r.attr.eq_ignore_ascii_case(key))
            .collect();
        project_schemaless(obj, key, &named, keep);
    }

    fn filter_object(
        &self,
        urn: &Option<String>,
        inner: &mut Map<String, Value>,
        lookup: impl Fn(&str) -> Option<&'static Attribute>,
    ) {
        let keys: Vec<String> = inner.keys().cloned().collect();
        for key in keys {
            let Some(def) = lookup(&key) else { continue };
            match self.decide(urn, def) {
                Decision::Drop => {
                    inner.remove(&key);
                }
                Decision::Keep => {}
                Decision::Subs(subs, keep) => {
                    if let Some(v) = inner.get_mut(&key) {
                        prune_subs(v, &subs, keep);
                    }
                }
            }
            let hidden = self.hidden_subs(urn, def);
            if let (false, Some(v)) = (hidden.is_empty(), inner.get_mut(&key)) {
                prune_subs(v, &hidden, false);
            }
        }
    }

    /// Sub-attributes that must not appear: `returned: never`, and `returned: request` ones
    /// the client did not name explicitly (e.g. `attributes=members.display`).
    fn hidden_subs(&self, urn: &Option<String>, def: &Attribute) -> Vec<String> {
        def.sub_attributes
            .iter()
            .filter(|s| match s.returned {
                Returned::Never => true,
                Returned::Request => !self.include.iter().any(|r| {
                    &r.schema == urn
                        && r.attr == def.name
                        && r.sub.as_deref() == Some(s.name.as_str())
                }),
                _ => false,
            })
            .map(|s| s.name.clone())
            .collect()
    }

    fn decide(&self, urn: &Option<String>, def: &Attribute) -> Decision {
        if def.returned == Returned::Never {
            return Decision::Drop;
        }
        if def.returned == Returned::Always {
            return Decision::Keep;
        }
        let same = |r: &&AttrRef| &r.schema == urn && r.attr == def.name;
        if !self.include.is_empty() {
            let refs: Vec<&AttrRef> = self.include.iter().filter(same).collect();
            if refs.is_empty() {
                return Decision::Drop;
            }
            if refs.iter().any(|r| r.sub.is_none()) {
                return Decision::Keep;
            }
            let mut subs: Vec<String> = refs.iter().filter_map(|r| r.sub.clone()).collect();
            // Sub-attributes that are always returned stay (none in the core schemas today).
            subs.extend(
                def.sub_attributes
                    .iter()
                    .filter(|s| s.returned == Returned::Always)
                    .map(|s| s.name.clone()),
            );
            return Decision::Subs(subs, true);
        }
        if def.returned == Returned::Request {
            return Decision::Drop;
        }
        let refs: Vec<&AttrRef> = self.exclude.iter().filter(same).collect();
        if refs.iter().any(|r| r.sub.is_none()) {
            return Decision::Drop;
        }
        if refs.is_empty() {
            return Decision::Keep;
        }
        Decision::Subs(refs.iter().filter_map(|r| r.sub.clone()).collect(), false)
    }
}

/// Whether the core attribute `name` of `rt` and each of its sub-attributes are returned by
/// default. The core schemas are static, so the answers for the related lists (`groups`,
/// `members`), which rendering asks once per resource, are looked up once: the per-row
/// lookup (a case-insensitive scan of the core attributes) was 3 % of a list page's
/// rendering instructions natively.
fn returned_whole(rt: ResourceType, name: &str) -> bool {
    let lookup =
        |rt: ResourceType, name: &str| rt.core_schema().attr(name).is_some_and(returned_by_default);
    static RELATED: std::sync::OnceLock<[bool; 2]> = std::sync::OnceLock::new();
    let related = || {
        *RELATED.get_or_init(|| {
            [
                lookup(ResourceType::User, "groups"),
                lookup(ResourceType::Group, "members"),
            ]
        })
    };
    match (rt, name) {
        (ResourceType::User, "groups") => related()[0],
        (ResourceType::Group, "members") => related()[1],
        _ => lookup(rt, name),
    }
}

/// Whether every attribute and sub-attribute `data` can hold for `rt` is returned by
/// default. A property of the schemas, worked out once rather than for every rendered
/// resource.
fn stored_returned_by_default(ts: TypeSchemas) -> bool {
    static BY_TYPE: std::sync::OnceLock<[bool; 2]> = std::sync::OnceLock::new();
    fn by_default(mut attrs: impl Iterator<Item = &'static Attribute>) -> bool {
        attrs.all(returned_by_default)
    }
    let builtin = BY_TYPE
        .get_or_init(|| ResourceType::ALL.map(|rt| by_default(stored_attributes(rt.into()))));
    let builtin = match ts.rt {
        ResourceType::User => builtin[0],
        ResourceType::Group => builtin[1],
    };
    // Declared extensions may hide attributes; they are few, so they are checked each time.
    builtin
        && by_default(stored(
            ts.declared().flat_map(|d| d.schema.attributes.iter()),
        ))
}

/// Whether `a` and each of its sub-attributes are returned by default.
fn returned_by_default(a: &Attribute) -> bool {
    std::iter::once(a)
        .chain(&a.sub_attributes)
        .all(|a| matches!(a.returned, Returned::Default | Returned::Always))
}

/// The attributes `data` can hold: what validation keeps (not readOnly, not writeOnly), minus
/// `members`, which lives in its own table.
fn stored_attributes(rt: TypeSchemas) -> impl Iterator<Item = &'static Attribute> {
    stored(
        rt.core_schema()
            .attributes
            .iter()
            .chain(rt.extensions().flat_map(|e| &e.attributes)),
    )
}

fn stored(
    attrs: impl Iterator<Item = &'static Attribute>,
) -> impl Iterator<Item = &'static Attribute> {
    attrs.filter(|a| {
        !matches!(a.mutability, Mutability::ReadOnly | Mutability::WriteOnly) && a.name != "members"
    })
}

/// One attribute without a schema in `container` (every such attribute is `returned:
/// default`), given the references that name it: with `keep` (an `attributes` list) it stays
/// whole, narrowed to the named sub-attributes, or goes; otherwise (`excludedAttributes`) it
/// goes whole, loses the named sub-attributes, or stays. A value narrowed to nothing goes.
fn project_schemaless(
    container: &mut Map<String, Value>,
    name: &str,
    named: &[&AttrRef],
    keep: bool,
) {
    let subs: Vec<String> = named.iter().filter_map(|r| r.sub.clone()).collect();
    let whole_attr = named.iter().any(|r| r.sub.is_none());
    match (keep, whole_attr, subs.is_empty()) {
        (true, true, _) | (false, false, true) => {}
        (true, false, true) | (false, true, _) => {
            container.remove(name);
        }
        (_, false, false) => {
            if let Some(v) = container.get_mut(name) {
                prune_subs(v, &subs, keep);
                let emptied = match v {
                    Value::Object(o) => o.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    _ => false,
                };
                if emptied {
                    container.remove(name);
                }
            }
        }
    }
}

enum Decision {
    Keep,
    Drop,
    /// Keep (`true`) or drop (`false`) only the listed sub-attributes.
    Subs(Vec<String>, bool),
}

fn prune_subs(v: &mut Value, subs: &[String], keep: bool) {
    let prune = |o: &mut Map<String, Value>| o.retain(|k, _| subs.iter().any(|s| s == k) == keep);
    match v {
        Value::Object(o) => prune(o),
        Value::Array(items) => {
            for item in items.iter_mut() {
                if let Value::Object(o) = item {
                    prune(o);
                }
            }
            items.retain(|i| !matches!(i, Value::Object(o) if o.is_empty()));
        }
        _ => {}
    }
}

/// A reference into an undeclared extension (`urn:…:Ext:attr[.sub]`, or the extension's URN
/// itself, which reads as attribute `Ext` of `urn:…` and is matched whole in
/// [`Projection::project_undeclared`]). URNs of the schemas this service defines are left to
/// [`resolve`], so their unknown names stay errors.
fn undeclared_ref(schemas: Schemas, raw: &str) -> Option<AttrRef> {
    let (urn, tail) = schema::split_urn(raw)?;
    if schemas.known_schema_above(urn).is_some() || schemas.known_schema_above(raw).is_some() {
        return None;
    }
    let (attr, sub) = match tail.split_once('.') {
        Some((a, s)) if a.starts_with(|c: char| c.is_ascii_alphabetic()) => (a, Some(s)),
        _ => (tail, None),
    };
    Some(AttrRef {
        schema: Some(urn.to_string()),
        attr: attr.to_string(),
        sub: sub.map(str::to_string),
    })
}

/// A reference to an attribute at the core level that no schema defines (`nickname2`,
/// `badge.id`, or qualified by a core schema URN of `types`), as stored data may hold it
/// (the `unknownAttribute` tolerance). Only ATTRNAMEs qualify, and never a name a core
/// schema or the common attributes define: `members` asked of Users stays an error.
fn unknown_ref(types: &[TypeSchemas], raw: &str) -> Option<AttrRef> {
    let path = types
        .iter()
        .find_map(|t| {
            let urn = &t.core_schema().id;
            let head = raw.get(..urn.len())?;
            let rest = raw.get(urn.len()..)?.strip_prefix(':')?;
            head.eq_ignore_ascii_case(urn).then_some(rest)
        })
        .unwrap_or(raw);
    let (attr, sub) = match path.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (path, None),
    };
    let ok = schema::is_attr_name(attr)
        && !schema::is_core_name_anywhere(attr)
        && sub.is_none_or(schema::is_attr_name);
    ok.then(|| AttrRef {
        schema: None,
        attr: attr.to_string(),
        sub: sub.map(str::to_string),
    })
}

/// Resolves `name`, `name.sub`, `urn:...:name[.sub]` to canonical names.
fn resolve(rt: TypeSchemas, raw: &str) -> Option<AttrRef> {
    let (schema_urn, path) = match crate::proto::schema::split_urn(raw) {
        // `urn:...:User:name.givenName` — split_urn splits at the last ':', which precedes the path.
        Some((urn, path)) => (Some(urn), path),
        None => (None, raw),
    };
    let (attr, sub) = match path.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (path, None),
    };
    let (schema_id, def): (Option<String>, &Attribute) = match schema_urn {
        Some(urn) if urn.eq_ignore_ascii_case(&rt.core_schema().id) => {
            (None, rt.core_schema().attr(attr)?)
        }
        Some(urn) => {
            let ext = rt.extension(urn)?;
            (Some(ext.id.clone()), ext.attr(attr)?)
        }
        None => (
            None,
            rt.core_schema()
                .attr(attr)
                .or_else(|| schema::common_attr(attr))?,
        ),
    };
    let sub = match sub {
        Some(s) => Some(def.sub(s)?.name.clone()),
        None => None,
    };
    Some(AttrRef {
        schema: schema_id,
        attr: def.name.clone(),
        sub,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::schema::ENTERPRISE_USER_SCHEMA;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "schemas": ["s"], "id": "1", "userName": "u", "displayName": "d",
            "name": {"givenName": "g", "familyName": "f"},
            "emails": [{"value": "e", "type": "work"}],
            ENTERPRISE_USER_SCHEMA: {"department": "x", "division": "y"},
            "meta": {"resourceType": "User"}
        })
    }

    #[test]
    fn attributes_keeps_listed_plus_always() {
        let p = Projection::parse(
            Some("userName,NAME.givenName"),
            None,
            Some(ResourceType::User),
        )
        .expect("ok");
        let mut r = sample();
        p.apply(ResourceType::User, &mut r);
        assert_eq!(
            r,
            json!({"schemas": ["s"], "id": "1", "userName": "u", "name": {"givenName": "g"}})
        );
    }

    #[test]
    fn excluded_drops_but_never_id() {
        let p = Projection::parse(
            None,
            Some(format!("emails,id,{ENTERPRISE_USER_SCHEMA}:division,meta").as_str()),
            Some(ResourceType::User),
        )
        .expect("ok");
        let mut r = sample();
        p.apply(ResourceType::User, &mut r);
        assert!(r.get("emails").is_none() && r.get("meta").is_none());
        assert_eq!(r["id"], "1");
        assert_eq!(r[ENTERPRISE_USER_SCHEMA], json!({"department": "x"}));
    }

    #[test]
    fn wants_tells_the_store_what_to_load() {
        let p = Projection::parse(None, Some("members"), Some(ResourceType::Group)).expect("ok");
        assert!(!p.wants(ResourceType::Group, "members"));
        let p =
            Projection::parse(Some("displayName"), None, Some(ResourceType::Group)).expect("ok");
        assert!(!p.wants(ResourceType::Group, "members"));
        assert!(Projection::default().wants(ResourceType::User, "groups"));
    }

    #[test]
    fn request_only_sub_attributes_need_naming() {
        let group = json!({"schemas": ["s"], "id": "g", "displayName": "G",
            "members": [{"value": "u", "display": "U", "type": "User"}]});
        let mut r = group.clone();
        Projection::default().apply(ResourceType::Group, &mut r);
        assert_eq!(r["members"], json!([{"value": "u", "type": "User"}]));
        let mut r = group.clone();
        Projection::parse(Some("members"), None, Some(ResourceType::Group))
            .expect("ok")
            .apply(ResourceType::Group, &mut r);
        assert_eq!(r["members"], json!([{"value": "u", "type": "User"}]));
        let mut r = group;
        Projection::parse(
            Some("members.value,members.display"),
            None,
            Some(ResourceType::Group),
        )
        .expect("ok")
        .apply(ResourceType::Group, &mut r);
        assert_eq!(r["members"], json!([{"value": "u", "display": "U"}]));
    }

    #[test]
    fn undeclared_extensions_are_projected_by_name() {
        const EXT: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
        let user = || {
            json!({"schemas": [], "id": "1", "userName": "a",
                   EXT: {"CustomAttribute": "x", "Badge": {"id": "7", "since": "2020"}, "Level": 3}})
        };
        let project = |attrs: Option<&str>, excluded: Option<&str>| {
            let p = Projection::parse(attrs, excluded, Some(ResourceType::User)).expect("parses");
            let mut v = user();
            p.apply(ResourceType::User, &mut v);
            v.get(EXT).cloned()
        };
        assert_eq!(project(Some("userName"), None), None);
        assert_eq!(project(Some(EXT), None), user().get(EXT).cloned());
        let lower = format!("{}:customattribute", EXT.to_lowercase());
        assert_eq!(
            project(Some(&lower), None),
            Some(json!({"CustomAttribute": "x"}))
        );
        assert_eq!(
            project(Some(&format!("{EXT}:Badge.id")), None),
            Some(json!({"Badge": {"id": "7"}}))
        );
        assert_eq!(project(None, Some(EXT)), None);
        assert_eq!(
            project(None, Some(&format!("{EXT}:Level,{EXT}:Badge.since"))),
            Some(json!({"CustomAttribute": "x", "Badge": {"id": "7"}}))
        );
        assert_eq!(project(None, None), user().get(EXT).cloned());
        // The defined schemas keep refusing names they do not have.
        let bad = format!("{ENTERPRISE_USER_SCHEMA}:nope");
        assert!(Projection::parse(Some(&bad), None, Some(ResourceType::User)).is_err());
    }

    #[test]
    fn names_no_resource_can_hold_are_rejected() {
        for bad in [
            "no pe",
            "1abc",
            "nope.a b",
            "$ref",
            "members",
            "name.nope",
            "urn:x",
        ] {
            let e = Projection::parse(Some(bad), None, Some(ResourceType::User)).unwrap_err();
            assert_eq!(
                (e.status, e.scim_type.map(|t| t.as_str())),
                (400, Some("invalidValue")),
                "{bad}"
            );
        }
        let e = Projection::parse(None, Some("userName"), Some(ResourceType::Group)).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(Projection::parse(Some("userName"), None, None).is_ok());
        assert!(Projection::parse(Some("members"), None, None).is_ok());
    }

    #[test]
    fn unknown_core_attributes_are_projected_by_name() {
        // Attributes no schema defines, kept as the `unknownAttribute` tolerance.
        let user = || {
            json!({"schemas": [], "id": "1", "userName": "a", "Nickname2": "B",
                   "badge": {"id": "7", "since": "2020"}, "tags": [{"v": 1, "w": 2}]})
        };
        let project = |attrs: Option<&str>, excluded: Option<&str>| {
            let p = Projection::parse(attrs, excluded, Some(ResourceType::User)).expect("parses");
            let mut v = user();
            p.apply(ResourceType::User, &mut v);
            v
        };
        assert_eq!(project(None, None), user());
        assert_eq!(
            project(Some("userName"), None),
            json!({"schemas": [], "id": "1", "userName": "a"})
        );
        assert_eq!(
            project(Some("nickname2,BADGE.id"), None),
            json!({"schemas": [], "id": "1", "Nickname2": "B", "badge": {"id": "7"}})
        );
        let qualified = "urn:ietf:params:scim:schemas:core:2.0:User:tags.v";
        assert_eq!(
            project(Some(qualified), None),
            json!({"schemas": [], "id": "1", "tags": [{"v": 1}]})
        );
        assert_eq!(
            project(None, Some("NICKNAME2,badge.since,tags.v,tags.w")),
            json!({"schemas": [], "id": "1", "userName": "a", "badge": {"id": "7"}})
        );
        // Excluding one does not take the spliced path: it is stored data.
        let p = Projection::parse(None, Some("nickname2"), Some(ResourceType::User)).expect("ok");
        assert!(!p.leaves_stored_data(ResourceType::User));
    }

    #[test]
    fn only_projections_that_leave_stored_attributes_alone_take_the_fast_path() {
        let u = Some(ResourceType::User);
        let g = Some(ResourceType::Group);
        let fast = |a: Option<&str>, e: Option<&str>, rt: Option<ResourceType>| {
            let rt_ = rt.unwrap_or(ResourceType::User);
            Projection::parse(a, e, rt)
                .expect("valid")
                .leaves_stored_data(rt_)
        };
        assert!(fast(None, None, u));
        assert!(fast(None, None, g));
        assert!(fast(None, Some("members"), g));
        assert!(fast(None, Some("groups,meta"), u));
        assert!(!fast(Some("userName"), None, u));
        assert!(!fast(Some("members"), None, g));
        assert!(!fast(None, Some("emails"), u));
        assert!(!fast(None, Some("name.givenName"), u));
        assert!(!fast(None, Some("externalId"), g));
        assert!(!fast(
            None,
            Some(&format!("{ENTERPRISE_USER_SCHEMA}:department")),
            u
        ));
    }
}
