//! PATCH of undeclared extensions: attributes kept verbatim under a schema URN the resource
//! type does not define (`crate::proto::resource` keeps them on POST and PUT). Entra updates
//! an IT admin's custom attribute with
//! `{"op": "Replace", "path": "urn:…:CustomExtensionName:2.0:User:CustomAttribute", "value": "x"}`
//! or a path-less `{"urn:…:CustomExtensionName:2.0:User:CustomAttribute": "x"}`; a path may
//! also name the extension itself (`urn:…:CustomExtensionName:2.0:User`) or a sub-attribute of
//! a complex value (`urn:…:User:badge.id`).
//!
//! With no schema, `urn:a:B:c` reads two ways: attribute `c` of extension `urn:a:B`, or the
//! extension `urn:a:B:c`. The stored resource decides ([`Addressed::resolve`]): a stored
//! extension of either name wins; otherwise an object value under a path ending in the
//! resource type's name (`…:2.0:User`) is the extension, anything else an attribute.
//!
//! Attributes at the core level that no schema defines (`nickname2`, kept on POST and PUT as
//! the `unknownAttribute` tolerance) are patched by the same rules, with the resource's data
//! as their container: `nickname2`, `badge.id`, or a path-less `{"nickname2": "x"}`.

use super::Op;
use crate::proto::error::{Result, ScimError};
use crate::proto::resource::{check_attr_name, check_undeclared_urn, undeclared_value};
use crate::proto::schema::{
    is_attr_name, is_core_name_anywhere, is_urn, split_urn, Schemas, TypeSchemas,
};
use crate::proto::tolerance::{Tolerance, Tolerances};
use serde_json::{Map, Value};

/// An operation on an undeclared extension, checked as far as the request alone allows.
#[derive(Debug, Clone)]
pub(crate) struct UndeclaredChange {
    pub path: UndeclaredPath,
    pub op: Op,
    /// The value of `add`/`replace` (`None`: null, which removes).
    pub value: Option<Value>,
}

/// `urn:…:Ext[:attr[.sub]]`, split at its last `:` (and at a `.` after it).
#[derive(Debug, Clone)]
pub(crate) struct UndeclaredPath {
    /// The whole path, as an extension URN.
    pub full: String,
    /// Before the last `:`: the extension, when the path names an attribute (empty for an
    /// attribute at the core level that no schema defines).
    pub prefix: String,
    /// After the last `:`, before any `.`.
    pub last: String,
    /// After the `.`, when the path names a sub-attribute.
    pub sub: Option<String>,
}

/// What a path turned out to address, against the stored data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Addressed {
    /// The whole extension, by its stored (or new) key.
    Extension(String),
    /// An attribute (and maybe its sub-attribute) of the extension stored under `urn`.
    Attr {
        urn: String,
        name: String,
        sub: Option<String>,
    },
}

/// Whether `s` is a path into an undeclared extension: a URN under no schema this service
/// defines. Paths into declared schemas keep their own grammar and errors.
pub(crate) fn is_undeclared(schemas: Schemas, s: &str) -> bool {
    crate::proto::schema::is_urn(s) && schemas.known_schema_above(without_sub(s)).is_none()
}

/// The path without a `.sub` or `[filter]` after its last segment. URNs hold dots (`2.0`),
/// so only the part after the last `:` is cut, and at a dot only when that part is an
/// attribute name (which starts with a letter), not a version.
fn without_sub(s: &str) -> &str {
    let last = s.rfind(':').map_or(0, |i| i + 1);
    let tail = s.get(last..).unwrap_or_default();
    let at = if tail.starts_with(|c: char| c.is_ascii_alphabetic()) {
        tail.find(['.', '['])
    } else {
        tail.find('[')
    };
    s.get(..at.map_or(s.len(), |i| last + i)).unwrap_or(s)
}

/// Reads an undeclared path; value filters are refused (there is no schema to type them).
/// Every refusal is `invalidPath`: it is the path that cannot be used.
pub(crate) fn parse_path(schemas: Schemas, raw: &str) -> Result<UndeclaredPath> {
    read_path(schemas, raw).map_err(|e| ScimError::invalid_path(e.detail))
}

fn read_path(schemas: Schemas, raw: &str) -> Result<UndeclaredPath> {
    let s = raw.trim();
    if s.contains('[') {
        return Err(ScimError::invalid_path(format!(
            "'{raw}': value filters need a declared schema; this extension is undeclared"
        )));
    }
    check_undeclared_urn(without_sub(s))?;
    let (prefix, tail) = split_urn(s).ok_or_else(|| {
        ScimError::invalid_path(format!("'{raw}' is not a schema URN or attribute path"))
    })?;
    // Both readings must be usable: the prefix as the extension of an attribute, the whole
    // as an extension of its own (POST refuses the same keys).
    check_undeclared_urn(prefix)?;
    if let Some(known) = schemas.known_schema_above(prefix) {
        return Err(ScimError::invalid_path(format!(
            "'{raw}' lies in the namespace of schema \"{known}\", which defines no such attribute"
        )));
    }
    if schemas.reject_undeclared {
        return Err(crate::proto::resource::undeclared_refused(without_sub(s)));
    }
    let (last, sub) = match tail.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (tail, None),
    };
    check_attr_name(s, last)?;
    if let Some(sub) = sub {
        check_attr_name(s, sub)?;
    }
    Ok(UndeclaredPath {
        full: s.to_string(),
        prefix: prefix.to_string(),
        last: last.to_string(),
        sub: sub.map(str::to_string),
    })
}

/// Parses one operation on an undeclared path: the value is checked against SCIM's data
/// model (as on POST), loosely enough to fit either reading of the path.
pub(crate) fn parse_change(
    schemas: Schemas,
    raw: &str,
    op: Op,
    value: Option<&Value>,
) -> Result<UndeclaredChange> {
    let path = parse_path(schemas, raw)?;
    let value = match (op, value) {
        (Op::Remove, _) | (_, None) | (_, Some(Value::Null)) => None,
        (_, Some(Value::Object(m))) if path.sub.is_none() => {
            // An extension's attributes, or a complex attribute's sub-attributes.
            let mut out = Map::new();
            for (k, v) in m {
                let at = format!("{}:{k}", path.full);
                check_attr_name(&at, k)?;
                if let Some(v) = undeclared_value(&at, v, 0)? {
                    out.insert(k.clone(), v);
                }
            }
            Some(Value::Object(out))
        }
        (_, Some(v)) => {
            let depth = if path.sub.is_some() { 2 } else { 0 };
            undeclared_value(&path.full, v, depth)?
        }
    };
    Ok(UndeclaredChange { path, op, value })
}

/// Whether a path (or a path-less key) addresses an attribute at the core level that no
/// schema defines: `nickname2`, `badge.id`, `tags[value eq "a"]`, or the same qualified by
/// the core schema URN of `rt`. Only the name before any `.` or `[` is looked at, so paths
/// into defined attributes (and a name that any core schema or the common attributes
/// define, such as `members` sent for a User) keep their own grammar and errors.
pub(crate) fn is_unknown_core(rt: TypeSchemas, raw: &str) -> bool {
    let s = without_core_urn(rt, raw.trim());
    let head = s.split(['.', '[']).next().unwrap_or(s).trim_end();
    !is_urn(s) && !head.is_empty() && !is_core_name_anywhere(head)
}

/// `s` without a leading `urn:…:core:2.0:User:` (the core schema of `rt`, any case).
fn without_core_urn(rt: TypeSchemas, s: &str) -> &str {
    let urn = &rt.core_schema().id;
    let rest = s
        .get(..urn.len())
        .filter(|head| head.eq_ignore_ascii_case(urn))
        .and_then(|_| s.get(urn.len()..)?.strip_prefix(':'));
    rest.unwrap_or(s)
}

/// Parses one operation on an attribute at the core level that no schema defines (see
/// [`is_unknown_core`]): the `unknownAttribute` tolerance, refused for a strict collector
/// with the `invalidPath` an unknown path has always had; then the name (an ATTRNAME, with
/// at most one sub-attribute) and the value, checked against SCIM's data model as on POST.
/// Value filters are refused as on undeclared extensions: no schema types them.
pub(crate) fn parse_unknown_change(
    rt: TypeSchemas,
    raw: &str,
    op: Op,
    value: Option<&Value>,
    tol: &mut Tolerances,
) -> Result<UndeclaredChange> {
    let s = without_core_urn(rt, raw.trim());
    let (head, rest) = match s.find(['.', '[']) {
        Some(i) => (s.get(..i).unwrap_or(s), s.get(i..).unwrap_or_default()),
        None => (s, ""),
    };
    tol.tolerate(Tolerance::UnknownAttribute, || {
        format!("unknown attribute '{head}' in path '{raw}'")
    })
    .map_err(|e| ScimError::invalid_path(e.detail))?;
    if rest.starts_with('[') {
        return Err(ScimError::invalid_path(format!(
            "'{raw}': value filters need a declared schema; '{head}' is an attribute no schema defines"
        )));
    }
    let sub = rest.strip_prefix('.');
    let names_ok = is_attr_name(head) && sub.is_none_or(is_attr_name);
    if !names_ok {
        return Err(ScimError::invalid_path(format!(
            "invalid path '{raw}': expected an attribute name (RFC 7643 §2.1: a letter, then \
             letters, digits, '-' or '_') and at most one sub-attribute"
        )));
    }
    let value = match (op, value) {
        (Op::Remove, _) | (_, None) | (_, Some(Value::Null)) => None,
        (_, Some(v)) => {
            let depth = if sub.is_some() { 2 } else { 0 };
            undeclared_value(s, v, depth)?
        }
    };
    let path = UndeclaredPath {
        full: s.to_string(),
        prefix: String::new(),
        last: head.to_string(),
        sub: sub.map(str::to_string),
    };
    Ok(UndeclaredChange { path, op, value })
}

/// The stored key matching `name` case-insensitively, if any.
pub(crate) fn stored_key<'d>(keys: impl Iterator<Item = &'d String>, name: &str) -> Option<String> {
    let mut keys = keys;
    keys.find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

impl Addressed {
    /// What `p` addresses, given the stored top-level keys (`stored` looks one up).
    pub fn resolve(
        rt: TypeSchemas,
        p: &UndeclaredPath,
        value: Option<&Value>,
        stored: impl Fn(&str) -> Option<String>,
    ) -> Addressed {
        let attr = |urn: String| Addressed::Attr {
            urn,
            name: p.last.clone(),
            sub: p.sub.clone(),
        };
        if p.sub.is_some() {
            return attr(stored(&p.prefix).unwrap_or_else(|| p.prefix.clone()));
        }
        if let Some(key) = stored(&p.full) {
            return Addressed::Extension(key);
        }
        if let Some(key) = stored(&p.prefix) {
            return attr(key);
        }
        let names_type = p.last.eq_ignore_ascii_case(rt.name());
        if names_type && value.is_none_or(Value::is_object) {
            Addressed::Extension(p.full.clone())
        } else {
            attr(p.prefix.clone())
        }
    }
}

/// Applies `c` to the extension object `ext` (the stored value under its URN, or a new
/// empty one), as `addressed` says.
pub(crate) fn apply(
    ext: &mut Map<String, Value>,
    c: &UndeclaredChange,
    addressed: &Addressed,
) -> Result<()> {
    match addressed {
        Addressed::Extension(urn) => match (&c.op, &c.value) {
            (Op::Remove, _) | (Op::Replace, None) => ext.clear(),
            (_, None) => {}
            (_, Some(Value::Object(attrs))) => {
                for (k, v) in attrs {
                    let existing = ext.keys().find(|e| e.eq_ignore_ascii_case(k)).cloned();
                    ext.insert(existing.unwrap_or_else(|| k.clone()), v.clone());
                }
            }
            (_, Some(_)) => {
                return Err(ScimError::invalid_value(format!(
                    "'{urn}' names an extension: its value must be an object of attributes"
                )))
            }
        },
        Addressed::Attr { urn, name, sub } => {
            apply_attr(ext, &format!("{urn}:{name}"), name, sub.as_deref(), c)?;
        }
    }
    Ok(())
}

/// Applies `c` to attribute `name` (or its sub-attribute `sub`) of `container`: an
/// undeclared extension's object, or the resource's data for an attribute at the core level
/// that no schema defines. The stored spelling of `name` stays; `label` names it in errors.
pub(crate) fn apply_attr(
    container: &mut Map<String, Value>,
    label: &str,
    name: &str,
    sub: Option<&str>,
    c: &UndeclaredChange,
) -> Result<()> {
    if let (None, Some(v @ Value::Object(_))) = (sub, &c.value) {
        // A complex value: its sub-attributes must be simple.
        undeclared_value(label, v, 0)?;
    }
    let key = container
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string());
    match sub {
        None => set_or_remove(container, key, c),
        Some(sub) => apply_sub(container, key, sub, c)?,
    }
    Ok(())
}

/// `add` to an array appends (RFC 7644 §3.5.2.1); anything else sets or removes.
fn set_or_remove(ext: &mut Map<String, Value>, key: String, c: &UndeclaredChange) {
    match (&c.op, &c.value, ext.get_mut(&key)) {
        (Op::Add, Some(Value::Array(new)), Some(Value::Array(old))) => {
            for v in new {
                if !old.contains(v) {
                    old.push(v.clone());
                }
            }
        }
        (Op::Remove, _, _) | (_, None, _) => {
            ext.remove(&key);
        }
        (_, Some(v), _) => {
            ext.insert(key, v.clone());
        }
    }
}

fn apply_sub(
    ext: &mut Map<String, Value>,
    key: String,
    sub: &str,
    c: &UndeclaredChange,
) -> Result<()> {
    let entry = ext
        .entry(key.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(complex) = entry else {
        return Err(ScimError::invalid_path(format!(
            "'{}' is not a complex value, so it has no sub-attribute '{sub}'",
            key
        )));
    };
    let sub_key = complex
        .keys()
        .find(|k| k.eq_ignore_ascii_case(sub))
        .cloned()
        .unwrap_or_else(|| sub.to_string());
    match (&c.op, &c.value) {
        (Op::Remove, _) | (_, None) => {
            complex.remove(&sub_key);
        }
        (_, Some(v)) => {
            complex.insert(sub_key, v.clone());
        }
    }
    if complex.is_empty() {
        ext.remove(&key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::schema::ResourceType;
    use serde_json::json;

    const EXT: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

    fn resolve(path: &str, value: Option<Value>, stored: &[&str]) -> Addressed {
        let p = parse_path(Schemas::BUILTIN, path).unwrap();
        Addressed::resolve(ResourceType::User.into(), &p, value.as_ref(), |n| {
            stored
                .iter()
                .find(|k| k.eq_ignore_ascii_case(n))
                .map(|k| k.to_string())
        })
    }

    #[test]
    fn paths_resolve_against_what_is_stored() {
        let attr = |urn: &str, name: &str, sub: Option<&str>| Addressed::Attr {
            urn: urn.into(),
            name: name.into(),
            sub: sub.map(Into::into),
        };
        let custom = format!("{EXT}:CustomAttribute");
        assert_eq!(
            resolve(&custom, Some(json!("x")), &[]),
            attr(EXT, "CustomAttribute", None)
        );
        assert_eq!(
            resolve(EXT, Some(json!({"a": 1})), &[]),
            Addressed::Extension(EXT.into())
        );
        assert_eq!(resolve(EXT, None, &[EXT]), Addressed::Extension(EXT.into()));
        // A stored extension of the prefix makes the last segment its attribute.
        assert_eq!(
            resolve("urn:v:ext:User", Some(json!({"a": 1})), &["urn:v:ext"]),
            attr("urn:v:ext", "User", None)
        );
        assert_eq!(
            resolve(
                &format!("{}:badge.id", EXT.to_uppercase()),
                Some(json!("7")),
                &[EXT]
            ),
            attr(EXT, "badge", Some("id"))
        );
        assert_eq!(
            resolve("urn:v:ext:badge", Some(json!({"id": "7"})), &[]),
            attr("urn:v:ext", "badge", None)
        );
    }

    #[test]
    fn bad_paths_and_values_are_refused_before_any_read() {
        for (path, value) in [
            (format!("{EXT}:tags[value eq \"a\"]"), json!("x")),
            (format!("{EXT}:bad name"), json!("x")),
            (format!("{EXT}:a.b.c"), json!("x")),
            (format!("{EXT}:a"), json!({"b": {"c": {"d": 1}}})),
            (format!("{EXT}:a.b"), json!({"c": 1})),
            ("urn:".to_string(), json!("x")),
            ("urn:a:b::manager".to_string(), json!("x")),
            ("urn:ietf:params:scnager".to_string(), json!("x")),
        ] {
            assert!(
                parse_change(Schemas::BUILTIN, &path, Op::Replace, Some(&value)).is_err(),
                "{path} {value}"
            );
        }
        assert!(is_undeclared(Schemas::BUILTIN, EXT));
        assert!(!is_undeclared(
            Schemas::BUILTIN,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:cim"
        ));
        assert!(!is_undeclared(Schemas::BUILTIN, "title"));
        // Above a defined schema, or under it past a dot: that schema's names, not an extension.
        assert!(!is_undeclared(
            Schemas::BUILTIN,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0"
        ));
        assert!(!is_undeclared(
            Schemas::BUILTIN,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.x"
        ));
    }

    #[test]
    fn changes_apply_to_the_extension_object() {
        let mut ext = Map::new();
        let run = |ext: &mut Map<String, Value>, path: &str, op: Op, v: Option<Value>| {
            let c = parse_change(Schemas::BUILTIN, path, op, v.as_ref()).unwrap();
            let stored: Vec<String> = vec![EXT.to_string()];
            let a = Addressed::resolve(ResourceType::User.into(), &c.path, c.value.as_ref(), |n| {
                stored.iter().find(|k| k.eq_ignore_ascii_case(n)).cloned()
            });
            apply(ext, &c, &a).unwrap();
        };
        run(
            &mut ext,
            &format!("{EXT}:CustomAttribute"),
            Op::Add,
            Some(json!("x")),
        );
        run(
            &mut ext,
            &format!("{EXT}:customattribute"),
            Op::Replace,
            Some(json!("y")),
        );
        run(
            &mut ext,
            &format!("{EXT}:Tags"),
            Op::Add,
            Some(json!(["a"])),
        );
        run(
            &mut ext,
            &format!("{EXT}:Tags"),
            Op::Add,
            Some(json!(["a", "b"])),
        );
        run(
            &mut ext,
            &format!("{EXT}:Badge.id"),
            Op::Add,
            Some(json!("7")),
        );
        assert_eq!(
            Value::Object(ext.clone()),
            json!({"CustomAttribute": "y", "Tags": ["a", "b"], "Badge": {"id": "7"}})
        );
        run(&mut ext, &format!("{EXT}:Badge.id"), Op::Remove, None);
        run(&mut ext, &format!("{EXT}:Tags"), Op::Replace, None);
        assert_eq!(Value::Object(ext.clone()), json!({"CustomAttribute": "y"}));
        run(&mut ext, EXT, Op::Add, Some(json!({"Level": 2})));
        assert_eq!(
            Value::Object(ext.clone()),
            json!({"CustomAttribute": "y", "Level": 2})
        );
        run(&mut ext, EXT, Op::Remove, None);
        assert!(ext.is_empty());
    }
}
