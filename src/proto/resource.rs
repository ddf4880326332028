//! Validation of resources clients send and rendering of stored ones.
//!
//! Incoming JSON is checked against the schema registry and rewritten into the stored shape:
//! canonical attribute names, extension attributes under their schema URN, readOnly and
//! writeOnly attributes dropped (RFC 7643 §2.2: the server ignores readOnly values sent by
//! clients), null and empty values removed (RFC 7643 §2.5: unassigned). Group members are
//! split off because they live in their own table.

use crate::proto::error::{Result, ScimError};
use crate::proto::projection::Projection;
use crate::proto::schema::{
    is_attr_name, is_core_name_anywhere, is_urn, split_urn, AttrType, Attribute, Mutability,
    ResourceType, Schema, Schemas, TypeSchemas,
};
use crate::proto::time;
use crate::proto::tolerance::{Tolerance, Tolerances};
use serde_json::{json, Map, Value};

/// Longest string value accepted. Long enough for any real attribute (an X.509 certificate is
/// a few KiB); short enough that one value cannot fill a row.
pub const MAX_STRING_LEN: usize = 64 * 1024;
/// Most values one multi-valued attribute may hold (members excluded: they are rows).
pub const MAX_MULTI_VALUES: usize = 1000;

/// A validated resource ready to store.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Validated {
    /// Client attributes in stored shape (see module doc).
    pub data: Map<String, Value>,
    /// `Group.members[].value`, de-duplicated, in the order given; `None` if not sent.
    pub members: Option<Vec<String>>,
}

/// Validates a full resource representation (POST, PUT), refusing every client quirk: the
/// strict form of [`validate_with`].
pub fn validate(rt: impl Into<TypeSchemas>, body: &Value) -> Result<Validated> {
    validate_with(rt, body, &mut Tolerances::strict())
}

/// Validates a full resource representation (POST, PUT). The quirks identity providers show
/// in full representations (`"active": "True"`, a schema URI that carries no attributes) are
/// accepted into `tol`, or refused when it is strict.
pub fn validate_with(
    ts: impl Into<TypeSchemas>,
    body: &Value,
    tol: &mut Tolerances,
) -> Result<Validated> {
    let ts: TypeSchemas = ts.into();
    let rt = ts.rt;
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the resource must be a JSON object"))?;
    check_schemas(ts, obj, tol)?;
    check_duplicate_keys(body)?;
    let mut out = Validated::default();
    let core = rt.core_schema();
    // Canonical names already sent: `title` and `urn:…:User:title` name one attribute.
    let mut claimed = std::collections::HashSet::new();
    let mut claim = claimer(&mut claimed);
    for (key, value) in obj {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if key.eq_ignore_ascii_case("id") || key.eq_ignore_ascii_case("meta") {
            continue; // readOnly common attributes: ignored on input
        }
        if key.eq_ignore_ascii_case("externalId") {
            claim("externalId".into())?;
            if let Some(v) = external_id(value)? {
                out.data.insert("externalId".into(), v);
            }
            continue;
        }
        if rt == ResourceType::Group && key.eq_ignore_ascii_case("members") {
            out.members = Some(member_ids(value)?);
            continue;
        }
        if let Some(ext) = ts.extension(key) {
            declared_extension(ext, value, &mut out.data, &mut claim, tol)?;
            continue;
        }
        // Fully qualified core attribute (`urn:...:core:2.0:User:userName`) or extension
        // attribute (`urn:...:enterprise:2.0:User:department`) at the top level.
        if let Some((urn, attr_name)) = split_urn(key) {
            if urn.eq_ignore_ascii_case(&core.id) {
                let Some(attr) = core.attr(attr_name) else {
                    keep_unknown(key, attr_name, value, &mut out.data, &mut claim, tol)?;
                    continue;
                };
                claim(attr.name.clone())?;
                if let Some(v) = validate_attr_with(attr, value, &attr.name, tol)? {
                    out.data.insert(attr.name.clone(), v);
                }
                continue;
            }
            if let Some(ext) = ts.extension(urn) {
                let attr = ext.attr(attr_name).ok_or_else(|| unknown_attribute(key))?;
                claim(format!("{}:{}", ext.id, attr.name))?;
                if let Some(v) =
                    validate_attr_with(attr, value, &format!("{}:{}", ext.id, attr.name), tol)?
                {
                    let entry = out
                        .data
                        .entry(ext.id.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(m) = entry {
                        m.insert(attr.name.clone(), v);
                    }
                }
                continue;
            }
        }
        if is_urn(key) {
            keep_undeclared(ts.schemas(), obj, key, value, &mut out.data, &mut claim)?;
            continue;
        }
        let Some(attr) = core.attr(key) else {
            keep_unknown(key, key, value, &mut out.data, &mut claim, tol)?;
            continue;
        };
        claim(attr.name.clone())?;
        if let Some(v) = validate_attr_with(attr, value, &attr.name, tol)? {
            out.data.insert(attr.name.clone(), v);
        }
    }
    check_required(ts, &out.data)?;
    Ok(out)
}

/// A declared extension's object (`"urn:…:enterprise:2.0:User": {...}`), validated against
/// its schema into `data` under its canonical URN.
fn declared_extension(
    ext: &Schema,
    value: &Value,
    data: &mut Map<String, Value>,
    claim: &mut impl FnMut(String) -> Result<()>,
    tol: &mut Tolerances,
) -> Result<()> {
    let ext_obj = match value {
        Value::Object(m) => m,
        Value::Null => return Ok(()),
        other => return Err(type_error(&ext.id, "an object", other)),
    };
    let mut ext_data = Map::new();
    for (k, v) in ext_obj {
        let attr = ext
            .attr(k)
            .ok_or_else(|| unknown_attribute(&format!("{}:{k}", ext.id)))?;
        let path = format!("{}:{}", ext.id, attr.name);
        claim(path.clone())?;
        if let Some(v) = validate_attr_with(attr, v, &path, tol)? {
            ext_data.insert(attr.name.clone(), v);
        }
    }
    if !ext_data.is_empty() {
        data.insert(ext.id.clone(), Value::Object(ext_data));
    }
    Ok(())
}

/// Checks a value stored under a declared extension's URN against the extension, as a write
/// would (identity-provider quirks accepted): used when an extension is declared over data
/// that was kept verbatim, to report what no longer fits without changing it. Answers the value as a write would store it (normalised: dateTimes in one form, string
/// booleans as booleans), so the caller can also tell a value that fits but is stored
/// differently.
pub fn check_extension(ext: &Schema, value: &Value) -> Result<Value> {
    let mut data = Map::new();
    let mut claimed = std::collections::HashSet::new();
    let mut claim = claimer(&mut claimed);
    let mut tol = Tolerances::lenient();
    declared_extension(ext, value, &mut data, &mut claim, &mut tol)?;
    let stored = data
        .remove(&ext.id)
        .unwrap_or_else(|| Value::Object(Map::new()));
    match &stored {
        Value::Object(m) => check_required_in(ext, m, &ext.id)?,
        _ => check_required_in(ext, &Map::new(), &ext.id)?,
    }
    Ok(stored)
}

/// Keeps a key under a schema URN the resource type does not define: an undeclared
/// extension (Entra's `urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User`,
/// Okta's and vendors' own). Identity providers send what an IT admin mapped, and losing it
/// would break every later update, so it is stored verbatim under its URN and returned with
/// the URN in `schemas`. The key is either the URN with an object of attributes, or
/// `urn:attr`. Which one is decided by `schemas`: a key listed there is an extension; a key
/// whose prefix is listed is an attribute; otherwise an object value is an extension.
fn keep_undeclared(
    schemas: Schemas,
    body: &Map<String, Value>,
    key: &str,
    value: &Value,
    data: &mut Map<String, Value>,
    claim: &mut impl FnMut(String) -> Result<()>,
) -> Result<()> {
    let listed = |urn: &str| listed_schema(body, urn);
    let qualified = split_urn(key).filter(|(urn, _)| listed(urn).is_some());
    let (urn, attrs): (String, Vec<(&str, &Value)>) = match (listed(key), qualified, value) {
        (Some(urn), _, Value::Object(m)) => (urn, m.iter().map(|(k, v)| (k.as_str(), v)).collect()),
        (None, None, Value::Object(m)) => (
            key.to_string(),
            m.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        ),
        (Some(_), _, Value::Null) | (None, None, Value::Null) => return Ok(()),
        (Some(urn), _, other) => return Err(type_error(&urn, "an object of attributes", other)),
        (None, Some((urn, attr)), v) => (
            listed(urn).unwrap_or_else(|| urn.to_string()),
            vec![(attr, v)],
        ),
        (None, None, _) => match split_urn(key) {
            Some((urn, attr)) => (urn.to_string(), vec![(attr, value)]),
            None => return Err(unknown_attribute(key)),
        },
    };
    check_undeclared_urn(&urn)?;
    if let Some(known) = schemas.known_schema_above(&urn) {
        // `urn:…:enterprise:2.0:User:cim:costCenter` names an attribute `cim` the enterprise
        // schema does not have, not an extension of its own.
        return Err(ScimError::invalid_syntax(format!(
            "unknown attribute '{key}': schema \"{known}\" defines no such attribute"
        )));
    }
    if schemas.reject_undeclared {
        return Err(undeclared_refused(&urn));
    }
    // One extension, however its URN's case varies between keys: the first spelling stays.
    let urn = data
        .keys()
        .find(|k| k.eq_ignore_ascii_case(&urn))
        .cloned()
        .unwrap_or(urn);
    for (name, v) in attrs {
        let path = format!("{urn}:{name}");
        check_attr_name(&path, name)?;
        claim(path.clone())?;
        let Some(v) = undeclared_value(&path, v, 0)? else {
            continue;
        };
        let entry = data
            .entry(urn.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(name.to_string(), v);
        }
    }
    Ok(())
}

/// The tenant's `extensions: reject` setting refuses what would otherwise be kept.
pub(crate) fn undeclared_refused(urn: &str) -> ScimError {
    ScimError::invalid_syntax(format!(
        "schema \"{urn}\" is not declared for this tenant, which refuses undeclared \
         extensions: declare it, or set the tenant's extensions to keep"
    ))
}

/// Keeps an attribute at the core level that no schema defines (`nickname2`, or qualified
/// `urn:…:core:2.0:User:nickname2`; `key` is as sent, `name` the attribute): an IT admin's
/// mapping mistake in the identity provider, which refusing would turn into a failure of
/// every user the mapping touches. It is stored verbatim at `data[name]`, within SCIM's data
/// model like an undeclared extension's attribute, and recorded as
/// [`Tolerance::UnknownAttribute`]; a strict tenant gets the 400 instead. A name that some
/// core schema or the common attributes define (`members` sent to `/Users`) is an attribute
/// sent to the wrong resource type, not a new one, and stays refused. Names are ATTRNAMEs,
/// so a kept one can never read as an extension URN.
fn keep_unknown(
    key: &str,
    name: &str,
    value: &Value,
    data: &mut Map<String, Value>,
    claim: &mut impl FnMut(String) -> Result<()>,
    tol: &mut Tolerances,
) -> Result<()> {
    if is_core_name_anywhere(name) || name == "$ref" {
        return Err(unknown_attribute(key));
    }
    tol.tolerate(Tolerance::UnknownAttribute, || {
        format!("unknown attribute '{key}'")
    })?;
    check_attr_name(key, name)?;
    claim(name.to_string())?;
    if let Some(v) = undeclared_value(name, value, 0)? {
        data.insert(name.to_string(), v);
    }
    Ok(())
}

/// The spelling `schemas` gives `urn` (compared case-insensitively), if it lists it.
fn listed_schema(body: &Map<String, Value>, urn: &str) -> Option<String> {
    let schemas = body
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .and_then(|(_, v)| v.as_array())?;
    schemas
        .iter()
        .filter_map(Value::as_str)
        .find(|s| s.eq_ignore_ascii_case(urn))
        .map(str::to_string)
}

/// An undeclared schema URN becomes a member name of the stored data and a `schemas` entry:
/// it must be a URN with a name after its last colon and nothing that needs escaping, so the
/// rendering can list it without parsing the stored text.
pub(crate) fn check_undeclared_urn(urn: &str) -> Result<()> {
    let ok = urn.len() <= 512
        && split_urn(urn).is_some_and(|(_, last)| !last.is_empty())
        && urn
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if ok {
        Ok(())
    } else {
        Err(ScimError::invalid_syntax(format!(
            "'{}' is not a usable schema URN",
            urn.chars().take(80).collect::<String>()
        )))
    }
}

/// RFC 7643 §2.1 ATTRNAME (`ALPHA *(nameChar)`, nameChar `-`, `_`, digit, letter), or `$ref`.
pub(crate) fn check_attr_name(path: &str, name: &str) -> Result<()> {
    if name == "$ref" || is_attr_name(name) {
        Ok(())
    } else {
        Err(ScimError::invalid_syntax(format!(
            "'{path}' is not a valid attribute name (RFC 7643 §2.1: a letter, then letters, digits, '-' or '_')"
        )))
    }
}

/// An undeclared attribute's value, kept as sent within SCIM's data model: a string, number
/// or boolean, a complex value of those, or an array of either (`depth` counts the levels).
/// Nulls and empty values are unassigned, as for declared attributes.
pub(crate) fn undeclared_value(path: &str, value: &Value, depth: u8) -> Result<Option<Value>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => {
            check_string(path, s)?;
            Ok(Some(value.clone()))
        }
        Value::Bool(_) | Value::Number(_) => Ok(Some(value.clone())),
        Value::Array(items) if depth == 0 || depth == 1 && !items.iter().any(Value::is_array) => {
            check_value_count(path, items)?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if item.is_array() {
                    return Err(nested_too_deep(path));
                }
                out.extend(undeclared_value(path, item, depth + 1)?);
            }
            Ok((!out.is_empty()).then_some(Value::Array(out)))
        }
        Value::Object(m) if depth <= 1 => {
            let mut out = Map::new();
            for (k, v) in m {
                let sub = format!("{path}.{k}");
                check_attr_name(&sub, k)?;
                if v.is_object() || v.is_array() {
                    return Err(nested_too_deep(&sub));
                }
                if let Some(v) = undeclared_value(&sub, v, 2)? {
                    out.insert(k.clone(), v);
                }
            }
            Ok((!out.is_empty()).then_some(Value::Object(out)))
        }
        _ => Err(nested_too_deep(path)),
    }
}

/// At most [`MAX_MULTI_VALUES`] values in one multi-valued attribute.
fn check_value_count(path: &str, items: &[Value]) -> Result<()> {
    if items.len() > MAX_MULTI_VALUES {
        return Err(ScimError::invalid_value(format!(
            "'{path}' has {} values; the limit is {MAX_MULTI_VALUES}",
            items.len()
        )));
    }
    Ok(())
}

fn nested_too_deep(path: &str) -> ScimError {
    ScimError::invalid_value(format!(
        "'{path}' nests deeper than SCIM's data model allows (an attribute holds simple values, \
         a complex value of simple sub-attributes, or an array of either)"
    ))
}

/// `externalId` (RFC 7643 §3.1): a string; empty means unassigned.
fn external_id(value: &Value) -> Result<Option<Value>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => {
            check_string("externalId", s)?;
            Ok((!s.is_empty()).then(|| value.clone()))
        }
        other => Err(type_error("externalId", "a string", other)),
    }
}

/// Re-validates in place the top-level attributes a PATCH touched (each with the extension
/// schema it belongs to, `None` for the core schema), then the required ones. Everything else in `data` is stored
/// data that passed [`validate`] when it was written and that the PATCH left as it was, so
/// checking it again could only repeat that verdict: a one-attribute PATCH pays for one
/// attribute. Together this accepts and produces exactly what [`validate`] would for the
/// whole resource (the PATCH tests assert that on every outcome).
pub fn revalidate_touched<'a>(
    rt: ResourceType,
    data: &mut Map<String, Value>,
    touched: impl IntoIterator<Item = (Option<&'a Schema>, &'a Attribute)>,
) -> Result<()> {
    let mut extensions: Vec<&Schema> = Vec::new();
    for (ext, attr) in touched {
        match ext {
            Some(ext) => {
                if !extensions.iter().any(|e| std::ptr::eq(*e, ext)) {
                    extensions.push(ext);
                }
                let Some(Value::Object(container)) = data.get_mut(&ext.id) else {
                    continue;
                };
                revalidate_in(attr, container, &format!("{}:{}", ext.id, attr.name))?;
                if container.is_empty() {
                    data.remove(&ext.id);
                }
            }
            None if attr.name == "externalId" => {
                let v = match data.get("externalId") {
                    Some(v) => external_id(v)?,
                    None => continue,
                };
                match v {
                    Some(v) => data.insert("externalId".into(), v),
                    None => data.remove("externalId"),
                };
            }
            None => revalidate_in(attr, data, &attr.name)?,
        }
    }
    // Required attributes of what the PATCH touched: data stored before an extension was
    // declared is reported when it is declared, and must not block unrelated PATCHes.
    for ext in extensions {
        if let Some(Value::Object(m)) = data.get(&ext.id) {
            check_required_in(ext, m, &ext.id)?;
        }
    }
    check_required_in(rt.core_schema(), data, "")
}

fn revalidate_in(attr: &Attribute, container: &mut Map<String, Value>, path: &str) -> Result<()> {
    let Some(v) = container.get(&attr.name) else {
        return Ok(());
    };
    check_duplicate_keys(v)?;
    match validate_attr(attr, v, path)? {
        Some(v) => container.insert(attr.name.clone(), v),
        None => container.remove(&attr.name),
    };
    Ok(())
}

/// `schemas` must be present and name the resource's core schema. Extension URNs used as keys
/// but missing from `schemas` are tolerated silently: the stored resource lists them anyway,
/// and rejecting would lose the client's data. A URI the resource type does not have is a
/// [`Tolerance::SchemaWithoutAttributes`] when no key of the body is under it (Entra's ADSCIM
/// group URI): dropping it loses nothing. A URI the body carries attributes under is an
/// undeclared extension, kept (see [`keep_undeclared`]).
fn check_schemas(rt: TypeSchemas, obj: &Map<String, Value>, tol: &mut Tolerances) -> Result<()> {
    let schemas = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .map(|(_, v)| v)
        .ok_or_else(|| {
            ScimError::invalid_syntax(format!(
                "'schemas' is required and must include \"{}\"",
                rt.core_schema().id
            ))
        })?;
    let list = schemas
        .as_array()
        .ok_or_else(|| ScimError::invalid_syntax("'schemas' must be an array of schema URNs"))?;
    let mut has_core = false;
    for s in list {
        let s = s
            .as_str()
            .ok_or_else(|| ScimError::invalid_syntax("'schemas' must contain only strings"))?;
        if s.eq_ignore_ascii_case(&rt.core_schema().id) {
            has_core = true;
        } else if rt.extension(s).is_none() && !carries_attributes(obj, s) {
            tol.tolerate(Tolerance::SchemaWithoutAttributes, || {
                format!(
                    "schema \"{s}\" is not supported for {} resources",
                    rt.rt.name()
                )
            })?;
        }
    }
    if !has_core {
        return Err(ScimError::invalid_syntax(format!(
            "'schemas' must include \"{}\"",
            rt.core_schema().id
        )));
    }
    Ok(())
}

/// Whether a key of the resource is the schema URI `urn` itself or an attribute under it
/// (`urn:attr`), compared case-insensitively as schema URIs are.
fn carries_attributes(obj: &Map<String, Value>, urn: &str) -> bool {
    obj.keys().any(|k| {
        k.get(..urn.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(urn))
            && matches!(k.as_bytes().get(urn.len()), None | Some(b':'))
    })
}

/// Required attributes of the core schema, and of each declared extension the resource
/// carries (or must carry: `required` in the resource type's `schemaExtensions`).
fn check_required(ts: TypeSchemas, data: &Map<String, Value>) -> Result<()> {
    check_required_in(ts.core_schema(), data, "")?;
    for ext in ts.declared() {
        match data.get(&ext.schema.id) {
            Some(Value::Object(m)) => check_required_in(&ext.schema, m, &ext.schema.id)?,
            _ if ext.required => {
                return Err(ScimError::invalid_value(format!(
                    "extension \"{}\" is required for {} resources",
                    ext.schema.id,
                    ts.rt.name()
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_required_in(schema: &Schema, data: &Map<String, Value>, prefix: &str) -> Result<()> {
    for attr in schema.attributes.iter().filter(|a| a.required) {
        let present = matches!(data.get(&attr.name), Some(Value::String(s)) if !s.trim().is_empty())
            || matches!(data.get(&attr.name), Some(v) if !v.is_string());
        if !present {
            let sep = if prefix.is_empty() { "" } else { ":" };
            return Err(ScimError::invalid_value(format!(
                "'{prefix}{sep}{}' is required and must not be empty",
                attr.name
            )));
        }
    }
    Ok(())
}

/// Claims canonical attribute names as a body sends them: a second claim of one name, in any
/// case or qualification, is the body naming an attribute twice.
fn claimer(
    claimed: &mut std::collections::HashSet<String>,
) -> impl FnMut(String) -> Result<()> + '_ {
    |name: String| {
        if claimed.insert(name.to_ascii_lowercase()) {
            Ok(())
        } else {
            Err(duplicate(&name))
        }
    }
}

fn duplicate(name: &str) -> ScimError {
    ScimError::invalid_syntax(format!(
        "attribute '{name}' appears more than once (names are case-insensitive)"
    ))
}

/// Keys of one object that differ only in case name the same attribute; which one won would
/// depend on key order, so they are refused anywhere in the body (`name.givenName` and
/// `name.GIVENNAME`, a member's `value` and `Value`). Depth is bounded by serde_json's
/// recursion limit.
fn check_duplicate_keys(v: &Value) -> Result<()> {
    match v {
        Value::Object(m) => {
            let keys: Vec<&String> = m.keys().collect();
            if keys.len() <= 32 {
                for (i, a) in keys.iter().enumerate() {
                    if keys.iter().take(i).any(|b| b.eq_ignore_ascii_case(a)) {
                        return Err(duplicate(a));
                    }
                }
            } else {
                let mut seen = std::collections::HashSet::with_capacity(keys.len());
                for k in &keys {
                    if !seen.insert(k.to_ascii_lowercase()) {
                        return Err(duplicate(k));
                    }
                }
            }
            m.values().try_for_each(check_duplicate_keys)
        }
        Value::Array(items) => items.iter().try_for_each(check_duplicate_keys),
        _ => Ok(()),
    }
}

fn unknown_attribute(name: &str) -> ScimError {
    ScimError::invalid_syntax(format!("unknown attribute '{name}'"))
}

fn type_error(path: &str, expected: &str, got: &Value) -> ScimError {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    ScimError::invalid_value(format!("'{path}' must be {expected}, not {kind}"))
}

fn check_string(path: &str, s: &str) -> Result<()> {
    if s.len() > MAX_STRING_LEN {
        return Err(ScimError::invalid_value(format!(
            "'{path}' is {} bytes long; the limit is {MAX_STRING_LEN}",
            s.len()
        )));
    }
    if s.contains('\0') {
        return Err(ScimError::invalid_value(format!(
            "'{path}' contains a NUL character"
        )));
    }
    Ok(())
}

/// URI schemes a reference may use (RFC 7643 §2.3.7: `external` and `uri` references, and
/// resource references, which are http(s) URLs or relative). Anything else — `javascript:`,
/// `data:`, `vbscript:`, `file:` — has no business in a directory and becomes script the
/// moment the SaaS app renders `profileUrl` or `photos.value` as a link.
const REFERENCE_SCHEMES: [&str; 3] = ["http", "https", "urn"];

/// A reference must be an absolute URI with an allowed scheme or a relative reference
/// (RFC 3986 §4.1). Control characters and surrounding white space are refused outright:
/// browsers strip them (`" java\tscript:..."` runs as `javascript:`), so they could smuggle
/// a scheme past the check.
fn check_reference(path: &str, s: &str) -> Result<()> {
    if s.chars().any(char::is_control) || s.trim() != s {
        return Err(ScimError::invalid_value(format!(
            "'{path}' must be a URI without control characters or surrounding white space"
        )));
    }
    let Some(scheme) = uri_scheme(s) else {
        return Ok(()); // a relative reference
    };
    if REFERENCE_SCHEMES
        .iter()
        .any(|ok| scheme.eq_ignore_ascii_case(ok))
    {
        return Ok(());
    }
    Err(ScimError::invalid_value(format!(
        "'{path}' must be an http, https or urn URI or a relative reference, not a '{scheme}:' URI"
    )))
}

/// The scheme of an absolute URI (RFC 3986 §3.1: a letter, then letters, digits, `+`, `-`,
/// `.`, up to the first `:`); `None` for a relative reference, where a `/`, `?` or `#`
/// comes first.
fn uri_scheme(s: &str) -> Option<&str> {
    let end = s.find([':', '/', '?', '#'])?;
    let scheme = s.get(..end)?;
    let ok = s.as_bytes().get(end) == Some(&b':')
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    ok.then_some(scheme)
}

/// Validates one attribute value. `Ok(None)` means "store nothing": unassigned, readOnly or
/// writeOnly. Quirks are refused: PATCH coerces the values it is sent before it validates.
pub fn validate_attr(attr: &Attribute, value: &Value, path: &str) -> Result<Option<Value>> {
    validate_attr_with(attr, value, path, &mut Tolerances::strict())
}

/// [`validate_attr`] that accepts the quirks of full representations into `tol`.
fn validate_attr_with(
    attr: &Attribute,
    value: &Value,
    path: &str,
    tol: &mut Tolerances,
) -> Result<Option<Value>> {
    if value.is_null() {
        return Ok(None);
    }
    if attr.multi_valued {
        let items = value
            .as_array()
            .ok_or_else(|| type_error(path, "an array", value))?;
        check_value_count(path, items)?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(v) = validate_single(attr, item, path, tol)? {
                out.push(v);
            }
        }
        let primaries = out
            .iter()
            .filter(|v| v.get("primary") == Some(&Value::Bool(true)))
            .count();
        if primaries > 1 {
            return Err(ScimError::invalid_value(format!(
                "'{path}' has {primaries} values marked primary; at most one may be"
            )));
        }
        if attr.mutability == Mutability::ReadOnly
            || attr.mutability == Mutability::WriteOnly
            || out.is_empty()
        {
            return Ok(None);
        }
        return Ok(Some(Value::Array(out)));
    }
    let v = validate_single(attr, value, path, tol)?;
    if attr.mutability == Mutability::ReadOnly || attr.mutability == Mutability::WriteOnly {
        return Ok(None);
    }
    Ok(v)
}

fn validate_single(
    attr: &Attribute,
    value: &Value,
    path: &str,
    tol: &mut Tolerances,
) -> Result<Option<Value>> {
    match attr.kind {
        AttrType::Complex => {
            let obj = value
                .as_object()
                .ok_or_else(|| type_error(path, "an object", value))?;
            let mut out = Map::new();
            // One buffer for every sub-attribute's path (only error messages read it).
            let mut sub_path = String::with_capacity(path.len() + 24);
            for (k, v) in obj {
                let sub = attr
                    .sub(k)
                    .ok_or_else(|| unknown_attribute(&format!("{path}.{k}")))?;
                sub_path.clear();
                sub_path.push_str(path);
                sub_path.push('.');
                sub_path.push_str(&sub.name);
                if let Some(v) = validate_attr_with(sub, v, &sub_path, tol)? {
                    out.insert(sub.name.clone(), v);
                }
            }
            Ok(if out.is_empty() {
                None
            } else {
                Some(Value::Object(out))
            })
        }
        AttrType::String => {
            let s = value
                .as_str()
                .ok_or_else(|| type_error(path, "a string", value))?;
            check_string(path, s)?;
            Ok(Some(value.clone()))
        }
        AttrType::Reference => {
            let s = value
                .as_str()
                .ok_or_else(|| type_error(path, "a URI string", value))?;
            check_string(path, s)?;
            check_reference(path, s)?;
            Ok(Some(value.clone()))
        }
        AttrType::Binary => {
            let s = value
                .as_str()
                .ok_or_else(|| type_error(path, "a base64 string", value))?;
            check_string(path, s)?;
            let ok = s.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_' | b'\r' | b'\n')
            });
            if !ok {
                return Err(ScimError::invalid_value(format!(
                    "'{path}' must be base64-encoded"
                )));
            }
            Ok(Some(value.clone()))
        }
        AttrType::Boolean => match value {
            Value::Bool(_) => Ok(Some(value.clone())),
            Value::String(s)
                if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
            {
                tol.tolerate(Tolerance::BooleanString, || {
                    format!("'{path}' must be a JSON boolean, not the string \"{s}\"")
                })?;
                Ok(Some(Value::Bool(s.eq_ignore_ascii_case("true"))))
            }
            other => Err(type_error(path, "a boolean", other)),
        },
        AttrType::Integer => match value.as_i64() {
            Some(_) => Ok(Some(value.clone())),
            None => Err(type_error(path, "an integer", value)),
        },
        AttrType::Decimal => match value {
            Value::Number(_) => Ok(Some(value.clone())),
            other => Err(type_error(path, "a number", other)),
        },
        AttrType::DateTime => {
            let s = value
                .as_str()
                .ok_or_else(|| type_error(path, "an RFC 3339 date-time string", value))?;
            let norm = time::normalize(s).ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "'{path}' must be an RFC 3339 date-time, not \"{s}\""
                ))
            })?;
            Ok(Some(Value::String(norm)))
        }
    }
}

/// `members` of a Group as ids. Only `value` identifies a member; `display`, `$ref` and `type`
/// are derived from the member resource when rendering.
pub fn member_ids(value: &Value) -> Result<Vec<String>> {
    if value.is_null() {
        return Ok(Vec::new());
    }
    let items = value
        .as_array()
        .ok_or_else(|| type_error("members", "an array", value))?;
    let mut ids: Vec<String> = Vec::with_capacity(items.len());
    // Large groups arrive in one request (thousands of members): de-duplicate in O(n).
    let mut seen: std::collections::HashSet<String> =
        std::collections::HashSet::with_capacity(items.len());
    for item in items {
        let obj = item
            .as_object()
            .ok_or_else(|| type_error("members[]", "an object with a 'value'", item))?;
        let mut id = None;
        for (k, v) in obj {
            match k.to_ascii_lowercase().as_str() {
                "value" => {
                    let s = v
                        .as_str()
                        .ok_or_else(|| type_error("members.value", "a string", v))?;
                    check_string("members.value", s)?;
                    id = Some(s.to_string());
                }
                "type" => {
                    let ok = v
                        .as_str()
                        .is_some_and(|t| ResourceType::from_name(t).is_some());
                    if !ok && !v.is_null() {
                        return Err(ScimError::invalid_value(
                            "'members.type' must be \"User\" or \"Group\"",
                        ));
                    }
                }
                "display" | "$ref" => {}
                _ => return Err(unknown_attribute(&format!("members.{k}"))),
            }
        }
        let id = id
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ScimError::invalid_value("every member needs a non-empty 'value'"))?;
        if seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// What the store keeps of a resource besides `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub created: String,
    pub modified: String,
    pub version: i64,
}

impl Meta {
    /// Weak ETag (RFC 7644 §3.14): the version counter changes on every write.
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.version)
    }
}

/// A related resource as shown in `members` or `groups`.
#[derive(Debug, Clone, PartialEq)]
pub struct Related {
    pub id: String,
    pub rt: ResourceType,
    pub display: Option<String>,
}

/// Renders a stored resource in full; projection happens afterwards.
/// `related` is the group's members or the user's groups, when they were loaded.
pub fn render(
    rt: ResourceType,
    id: &str,
    data: &Map<String, Value>,
    meta: &Meta,
    related: Option<&[Related]>,
    base: &str,
) -> Value {
    render_owned(rt, id, data.clone(), meta, related, base)
}

/// [`render`] that takes `data` over instead of copying it.
pub fn render_owned(
    rt: ResourceType,
    id: &str,
    data: Map<String, Value>,
    meta: &Meta,
    related: Option<&[Related]>,
    base: &str,
) -> Value {
    let schemas = schemas_of(rt, &data);
    // `data` never holds `schemas`, `id`, `meta`, `members` or `groups` (validation drops
    // or splits them off).
    let mut out = data;
    out.insert("schemas".into(), schemas);
    out.insert("id".into(), Value::String(id.to_string()));
    out.extend(envelope_tail(rt, id, meta, related, base));
    Value::Object(out)
}

/// Writes the full rendering of a stored resource as JSON, with `data` — the stored
/// attributes' JSON object text, as the `data` column holds it — spliced in verbatim. Every
/// read and write answers with a stored resource; parsing its attributes only to serialise
/// them again was most of the CPU a GET or a list page cost. The caller has checked that
/// `projection` leaves the stored attributes alone (`Projection::leaves_stored_data`); it
/// is applied to the members built here (`members`/`groups`, `meta`) when it could change
/// them. Same members as [`render_owned`]; `schemas` and `id` come first.
#[allow(clippy::too_many_arguments)]
pub fn write_spliced(
    out: &mut Vec<u8>,
    rt: ResourceType,
    id: &str,
    data: &str,
    meta: &Meta,
    related: Option<&[Related]>,
    base: &str,
    projection: &Projection,
) -> Result<()> {
    let inner = object_inner(data).ok_or_else(|| {
        ScimError::internal().with_cause("stored data is not a JSON object".to_string())
    })?;
    out.extend_from_slice(b"{\"schemas\":[");
    write_str(out, &rt.core_schema().id)?;
    for urn in urn_member_names(data) {
        out.push(b',');
        write_str(out, urn)?;
    }
    out.extend_from_slice(b"],\"id\":");
    write_str(out, id)?;
    if !inner.trim().is_empty() {
        out.push(b',');
        out.extend_from_slice(inner.as_bytes());
    }
    let related = related.filter(|r| !r.is_empty());
    let tail_as_built = !projection.names("meta")
        && related.is_none_or(|_| projection.keeps_whole(rt, related_name(rt)));
    if tail_as_built {
        write_tail(out, rt, id, meta, related, base)?;
    } else {
        write_projected_tail(out, rt, id, meta, related, base, projection)?;
    }
    out.push(b'}');
    Ok(())
}

/// `members` for a group, `groups` for a user: where a resource's related resources go.
fn related_name(rt: ResourceType) -> &'static str {
    match rt {
        ResourceType::User => "groups",
        ResourceType::Group => "members",
    }
}

/// The members [`envelope_tail`] builds (`members`/`groups`, then `meta`), each preceded by
/// a comma, written directly: the same bytes serde_json writes for them (its maps sort their
/// keys, so the keys here come in that order), without the value tree. A list page of 100
/// users who are each in a group or two spent most of its rendering building and
/// serialising those trees (docs/PERFORMANCE.md, "The list page written directly").
fn write_tail(
    out: &mut Vec<u8>,
    rt: ResourceType,
    id: &str,
    meta: &Meta,
    related: Option<&[Related]>,
    base: &str,
) -> Result<()> {
    if let Some(related) = related {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(related_name(rt).as_bytes());
        out.extend_from_slice(b"\":[");
        for (i, r) in related.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"$ref\":");
            write_location(out, base, r.rt, &r.id)?;
            if let Some(d) = &r.display {
                out.extend_from_slice(b",\"display\":");
                write_str(out, d)?;
            }
            out.extend_from_slice(b",\"type\":");
            write_str(out, related_type(rt, r))?;
            out.extend_from_slice(b",\"value\":");
            write_str(out, &r.id)?;
            out.push(b'}');
        }
        out.push(b']');
    }
    out.extend_from_slice(b",\"meta\":{\"created\":");
    write_str(out, &meta.created)?;
    out.extend_from_slice(b",\"lastModified\":");
    write_str(out, &meta.modified)?;
    out.extend_from_slice(b",\"location\":");
    write_location(out, base, rt, id)?;
    out.extend_from_slice(b",\"resourceType\":");
    write_str(out, rt.name())?;
    out.extend_from_slice(b",\"version\":");
    write_etag(out, meta.version)?;
    out.push(b'}');
    Ok(())
}

/// Writes [`Meta::etag`] as a JSON string, `"W/\"<version>\""`, without building it: the
/// built string went through `format!` and then, its quotes failing the no-escape test,
/// through serde_json's escaping writer: 8 % of a list page's rendering instructions.
fn write_etag(out: &mut Vec<u8>, version: i64) -> Result<()> {
    out.extend_from_slice(b"\"W/\\\"");
    serde_json::to_writer(&mut *out, &version).map_err(|_| ScimError::internal())?;
    out.extend_from_slice(b"\\\"\"");
    Ok(())
}

/// The tail as values, shaped by a projection that names `meta` or the related list: rare,
/// so built as [`envelope_tail`] and projected like any rendered resource.
fn write_projected_tail(
    out: &mut Vec<u8>,
    rt: ResourceType,
    id: &str,
    meta: &Meta,
    related: Option<&[Related]>,
    base: &str,
    projection: &Projection,
) -> Result<()> {
    let mut tail = Value::Object(envelope_tail(rt, id, meta, related, base));
    projection.apply(rt, &mut tail);
    if let Value::Object(tail) = tail {
        for (k, v) in &tail {
            out.push(b',');
            write_str(out, k)?;
            out.push(b':');
            serde_json::to_writer(&mut *out, v).map_err(|_| ScimError::internal())?;
        }
    }
    Ok(())
}

/// A related entry's `type`: `direct` in a user's `groups` (no nested groups), the member's
/// resource type in a group's `members`.
fn related_type(rt: ResourceType, r: &Related) -> &'static str {
    match rt {
        ResourceType::User => "direct",
        ResourceType::Group => r.rt.name(),
    }
}

/// Writes [`location`] as a JSON string without building it: the percent-encoded id and the
/// endpoint never need escaping, so only `base` (from the request's URL) is checked.
fn write_location(out: &mut Vec<u8>, base: &str, rt: ResourceType, id: &str) -> Result<()> {
    if !needs_no_escape(base) {
        return write_str(out, &location(base, rt, id));
    }
    out.push(b'"');
    out.extend_from_slice(base.as_bytes());
    out.push(b'/');
    out.extend_from_slice(rt.endpoint().as_bytes());
    out.push(b'/');
    push_percent_encoded(out, id);
    out.push(b'"');
    Ok(())
}

/// Whether serde_json writes `s` as it is between quotes: no control character, quote or
/// backslash (its escape table has nothing else).
fn needs_no_escape(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// Writes `s` as a JSON string. Ids, timestamps, URNs and attribute names need no escaping;
/// checking that first is several times cheaper than serde_json's escaping writer, which
/// stays the path for anything else.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) -> Result<()> {
    if needs_no_escape(s) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return Ok(());
    }
    serde_json::to_writer(out, s).map_err(|_| ScimError::internal())
}

/// The text between the braces of a JSON object's text.
fn object_inner(text: &str) -> Option<&str> {
    text.trim().strip_prefix('{')?.strip_suffix('}')
}

/// The member names of stored data text that are schema URNs (extensions, declared or
/// not), in text order, without parsing it. Sound for any JSON text: a member name is a
/// string preceded by `{` or `,` and followed by `:`, which a string value never is (inside
/// a string a quote is escaped). Only top-level names can be URNs: sub-attribute names are
/// ATTRNAMEs (RFC 7643 §2.1), and URN keys hold no escapes (`check_undeclared_urn`).
fn urn_member_names(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    // A plain byte scan: `match_indices` and `eq_ignore_ascii_case` on every quote were a
    // fifth of a list page's rendering at the size-optimised build.
    let quotes = bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'"')
        .map(|(at, _)| at);
    quotes.filter_map(move |at| {
        // The cheap tests first: most strings in stored data do not start with `urn:`.
        let name_start = at + 1;
        let prefix = bytes.get(name_start..name_start + 4)?;
        if prefix.first().map(|b| b | 0x20) != Some(b'u') || !prefix.eq_ignore_ascii_case(b"urn:") {
            return None;
        }
        let before = text.get(..at)?.trim_end();
        if !(before.ends_with('{') || before.ends_with(',')) {
            return None;
        }
        let len = text.get(name_start..)?.find('"')?;
        let after = text.get(name_start + len + 1..)?.trim_start();
        let escaped = bytes.get(name_start + len - 1) == Some(&b'\\');
        (after.starts_with(':') && !escaped).then(|| text.get(name_start..name_start + len))?
    })
}

/// `schemas`: the core schema, then each extension URN the data holds (in key order, as the
/// spliced rendering lists them).
fn schemas_of(rt: ResourceType, data: &Map<String, Value>) -> Value {
    let mut schemas = vec![Value::String(rt.core_schema().id.clone())];
    schemas.extend(
        data.keys()
            .filter(|k| is_urn(k))
            .map(|k| Value::String(k.clone())),
    );
    Value::Array(schemas)
}

/// The rendered members that do not come from `data`: `members`/`groups` and `meta`.
fn envelope_tail(
    rt: ResourceType,
    id: &str,
    meta: &Meta,
    related: Option<&[Related]>,
    base: &str,
) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(related) = related {
        let key = related_name(rt);
        let list: Vec<Value> = related
            .iter()
            .map(|r| {
                let mut m = Map::new();
                m.insert("value".into(), Value::String(r.id.clone()));
                m.insert("$ref".into(), Value::String(location(base, r.rt, &r.id)));
                if let Some(d) = &r.display {
                    m.insert("display".into(), Value::String(d.clone()));
                }
                m.insert("type".into(), Value::String(related_type(rt, r).into()));
                Value::Object(m)
            })
            .collect();
        if !list.is_empty() {
            out.insert(key.into(), Value::Array(list));
        }
    }
    out.insert(
        "meta".into(),
        json!({
            "resourceType": rt.name(),
            "created": meta.created,
            "lastModified": meta.modified,
            "location": location(base, rt, id),
            "version": meta.etag(),
        }),
    );
    out
}

pub fn location(base: &str, rt: ResourceType, id: &str) -> String {
    format!("{base}/{}/{}", rt.endpoint(), percent_encode_segment(id))
}

/// A path segment for `meta.location` and `$ref`: ids are chosen by the service, but an
/// `externalId`-derived or imported id could hold anything, and a location must stay one URL.
pub fn percent_encode_segment(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    push_percent_encoded(&mut out, s);
    // Only ASCII was pushed.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `s` percent-encoded as [`percent_encode_segment`] does; the usual id (a UUID)
/// needs nothing encoded and is copied whole.
fn push_percent_encoded(out: &mut Vec<u8>, s: &str) {
    let safe = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':');
    if s.bytes().all(safe) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    let hex = |n: u8| if n < 10 { b'0' + n } else { b'A' + n - 10 };
    for b in s.bytes() {
        if safe(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', hex(b >> 4), hex(b & 15)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::schema::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};

    fn user(extra: Value) -> Value {
        let mut v = json!({"schemas": [USER_SCHEMA], "userName": "bjensen"});
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    }

    #[test]
    fn canonicalises_names_and_keeps_every_entra_attribute() {
        let body = json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "USERNAME": "bjensen@example.com", "Active": true, "displayName": "Babs",
            "externalId": "e-1", "locale": "en-US",
            "name": {"GivenName": "Barbara", "familyName": "Jensen", "formatted": "Barbara Jensen"},
            "emails": [{"value": "b@example.com", "type": "work", "primary": true}],
            "phoneNumbers": [{"value": "+1 555", "type": "mobile"}],
            "roles": [{"value": "admin", "primary": false}],
            ENTERPRISE_USER_SCHEMA: {"Department": "Eng", "division": "R&D", "manager": {"value": "m-1"}},
            "id": "client-chosen", "meta": {"version": "x"}, "groups": [{"value": "g"}],
            "password": "secret"
        });
        let v = validate(ResourceType::User, &body).expect("valid");
        assert_eq!(v.data["userName"], "bjensen@example.com");
        assert_eq!(v.data["active"], true);
        assert_eq!(v.data["name"]["givenName"], "Barbara");
        assert_eq!(v.data["emails"][0]["type"], "work");
        assert_eq!(v.data["phoneNumbers"][0]["value"], "+1 555");
        assert_eq!(v.data["roles"][0]["value"], "admin");
        assert_eq!(v.data[ENTERPRISE_USER_SCHEMA]["department"], "Eng");
        assert_eq!(v.data[ENTERPRISE_USER_SCHEMA]["manager"]["value"], "m-1");
        for dropped in ["id", "meta", "groups", "password", "schemas"] {
            assert!(
                !v.data.contains_key(dropped),
                "{dropped} must not be stored"
            );
        }
    }

    #[test]
    fn qualified_attribute_keys_are_accepted() {
        let body = user(json!({
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Ops",
            "urn:ietf:params:scim:schemas:core:2.0:User:title": "CTO"
        }));
        let v = validate(ResourceType::User, &body).expect("valid");
        assert_eq!(v.data[ENTERPRISE_USER_SCHEMA]["department"], "Ops");
        assert_eq!(v.data["title"], "CTO");
    }

    #[test]
    fn rejects_bad_shapes_with_the_right_scim_type() {
        let cases = [
            (json!({"userName": "a"}), "invalidSyntax"),
            (json!({"schemas": "x", "userName": "a"}), "invalidSyntax"),
            (
                json!({"schemas": [GROUP_SCHEMA], "userName": "a"}),
                "invalidSyntax",
            ),
            (
                json!({"schemas": [USER_SCHEMA, "urn:x"], "userName": "a"}),
                "invalidSyntax",
            ),
            (user(json!({"nope": 1})), "invalidSyntax"),
            (user(json!({"name": {"first": "x"}})), "invalidSyntax"),
            (json!({"schemas": [USER_SCHEMA]}), "invalidValue"),
            (
                json!({"schemas": [USER_SCHEMA], "userName": "  "}),
                "invalidValue",
            ),
            (
                json!({"schemas": [USER_SCHEMA], "userName": 5}),
                "invalidValue",
            ),
            (user(json!({"active": "yes"})), "invalidValue"),
            (user(json!({"emails": {"value": "x"}})), "invalidValue"),
            (
                user(
                    json!({"emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}),
                ),
                "invalidValue",
            ),
            (user(json!({"name": "Barbara"})), "invalidValue"),
            (
                user(json!({"x509Certificates": [{"value": "not base64!"}]})),
                "invalidValue",
            ),
            (user(json!({"displayName": "a\u{0}b"})), "invalidValue"),
            (
                user(json!({"displayName": "x".repeat(MAX_STRING_LEN + 1)})),
                "invalidValue",
            ),
        ];
        for (body, scim_type) in cases {
            let err = validate(ResourceType::User, &body).expect_err(&body.to_string());
            assert_eq!(err.status, 400, "{body}");
            assert_eq!(
                err.scim_type.map(|t| t.as_str()),
                Some(scim_type),
                "{body}: {err}"
            );
        }
    }

    #[test]
    fn schema_uris_without_attributes_and_string_booleans_are_tolerated() {
        use crate::proto::tolerance::{Tolerance, Tolerances};
        const ADSCIM: &str =
            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";
        // Entra's documented group create.
        let group = json!({
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "Group1DisplayName",
            "members": [],
            "schemas": [GROUP_SCHEMA, ADSCIM],
        });
        let mut tol = Tolerances::lenient();
        let v = validate_with(ResourceType::Group, &group, &mut tol).expect("tolerated");
        assert_eq!(v.data["displayName"], "Group1DisplayName");
        assert_eq!(v.members, Some(vec![]));
        assert_eq!(tol.fired(), [Tolerance::SchemaWithoutAttributes]);
        let e = validate(ResourceType::Group, &group).expect_err("strict");
        assert_eq!(e.scim_type.map(|t| t.as_str()), Some("invalidSyntax"));
        assert!(e.detail.contains(ADSCIM), "{}", e.detail);

        let body = user(json!({
            "active": "True",
            "emails": [{"value": "a@x", "primary": "false"}],
        }));
        let mut tol = Tolerances::lenient();
        let v = validate_with(ResourceType::User, &body, &mut tol).expect("tolerated");
        assert_eq!(v.data["active"], true);
        assert_eq!(v.data["emails"][0]["primary"], false);
        assert_eq!(tol.fired(), [Tolerance::BooleanString]);
        let e = validate(ResourceType::User, &body).expect_err("strict");
        assert_eq!(e.scim_type.map(|t| t.as_str()), Some("invalidValue"));

        // Only "true"/"false" in any case; other strings stay type errors even when lenient.
        let mut tol = Tolerances::lenient();
        let e = validate_with(
            ResourceType::User,
            &user(json!({"active": "yes"})),
            &mut tol,
        );
        assert!(e.is_err() && tol.fired().is_empty());
        // A URI under which the body carries attributes is an undeclared extension, kept.
        let body =
            json!({"schemas": [USER_SCHEMA, "urn:x:Ext"], "userName": "a", "URN:X:EXT:attr": "v"});
        let mut tol = Tolerances::lenient();
        let v = validate_with(ResourceType::User, &body, &mut tol).expect("kept");
        assert_eq!(v.data["urn:x:Ext"], json!({"attr": "v"}));
        assert!(tol.fired().is_empty());
        // ...but one sharing only a prefix with a key is.
        let body =
            json!({"schemas": [USER_SCHEMA, "urn:x:Ext"], "userName": "a", "urn:x:Extra:a": "v"});
        assert!(!carries_attributes(
            body.as_object().expect("object"),
            "urn:x:Ext"
        ));
    }

    #[test]
    fn references_take_http_https_urn_or_relative_uris_only() {
        for ok in [
            "https://example.com/bjensen",
            "HTTP://example.com/p.jpg",
            "urn:example:photo:1",
            "/scim/v2/Users/2819c223",
            "Users/2819c223",
            "../photo.png?size=2#x",
            "path/with:colon",
        ] {
            let body = user(json!({"profileUrl": ok, "photos": [{"value": ok}]}));
            assert!(validate(ResourceType::User, &body).is_ok(), "{ok}");
        }
        for bad in [
            "javascript:alert(document.cookie)",
            "JavaScript:alert(1)",
            "data:text/html;base64,PHNjcmlwdD4=",
            "vbscript:msgbox",
            "file:///etc/passwd",
            " javascript:alert(1)",
            "java\tscript:alert(1)",
            "https://example.com/\n",
        ] {
            for body in [
                user(json!({"profileUrl": bad})),
                user(json!({"photos": [{"value": bad, "type": "photo"}]})),
            ] {
                let e = validate(ResourceType::User, &body).expect_err(bad);
                assert_eq!(
                    e.scim_type.map(|t| t.as_str()),
                    Some("invalidValue"),
                    "{bad}"
                );
            }
        }
        assert_eq!(uri_scheme("mailto:a@b"), Some("mailto"));
        assert_eq!(uri_scheme("a/b:c"), None);
        assert_eq!(uri_scheme("1http:x"), None);
    }

    #[test]
    fn undeclared_extensions_are_kept_verbatim() {
        const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
        // Entra: the extension object, listed in `schemas`.
        let body = json!({
            "schemas": [USER_SCHEMA, CUSTOM],
            "userName": "a",
            CUSTOM: {"CustomAttribute": "x", "Level": 3, "Flag": true, "Tags": ["a", "b"],
                     "Badge": {"id": "7", "since": "2020"}, "Empty": null},
        });
        let v = validate(ResourceType::User, &body).expect("kept");
        assert_eq!(
            v.data[CUSTOM],
            json!({"CustomAttribute": "x", "Level": 3, "Flag": true, "Tags": ["a", "b"],
                   "Badge": {"id": "7", "since": "2020"}})
        );
        // Qualified keys at the top level, with and without `schemas` listing the URN;
        // the URN is stored as `schemas` spells it.
        let body = json!({
            "schemas": [USER_SCHEMA, CUSTOM],
            "userName": "a",
            format!("{}:CustomAttribute", CUSTOM.to_uppercase()): "y",
            "urn:okta:custom:2.0:User:costCenter": "42",
        });
        let v = validate(ResourceType::User, &body).expect("kept");
        assert_eq!(v.data[CUSTOM], json!({"CustomAttribute": "y"}));
        assert_eq!(
            v.data["urn:okta:custom:2.0:User"],
            json!({"costCenter": "42"})
        );
        // Keys whose URNs differ only in case name one extension.
        let body = user(json!({"urn:v:Ext:a": "1", "URN:V:EXT:b": "2"}));
        let v = validate(ResourceType::User, &body).expect("kept");
        let exts: Vec<(&String, &Value)> = v.data.iter().filter(|(k, _)| is_urn(k)).collect();
        assert_eq!(exts.len(), 1, "{:?}", v.data);
        assert_eq!(exts[0].1, &json!({"a": "1", "b": "2"}));
        // An unlisted URN with an object value is an extension.
        let body = user(json!({"urn:vendor:ext:1.0": {"plan": "gold"}}));
        let v = validate(ResourceType::User, &body).expect("kept");
        assert_eq!(v.data["urn:vendor:ext:1.0"], json!({"plan": "gold"}));

        for (bad, scim_type) in [
            (json!({CUSTOM: "not an object"}), "invalidValue"),
            (json!({CUSTOM: {"has space": 1}}), "invalidSyntax"),
            (json!({CUSTOM: {"urn:x:y": 1}}), "invalidSyntax"),
            (
                json!({CUSTOM: {"deep": {"deeper": {"x": 1}}}}),
                "invalidValue",
            ),
            (json!({CUSTOM: {"deep": [[1]]}}), "invalidValue"),
            (json!({CUSTOM: {"a": "x", "A": "y"}}), "invalidSyntax"),
            (json!({CUSTOM: {"a": "\u{0}"}}), "invalidValue"),
            (json!({"urn:": "x"}), "invalidSyntax"),
            (json!({"urn:a\"b:c": {"d": 1}}), "invalidSyntax"),
            (
                json!({format!("{ENTERPRISE_USER_SCHEMA}:cim:costCenter"): "4"}),
                "invalidSyntax",
            ),
            (
                json!({format!("{USER_SCHEMA}:name:x"): "4"}),
                "invalidSyntax",
            ),
            (json!({GROUP_SCHEMA: {"displayName": "g"}}), "invalidSyntax"),
        ] {
            let mut b = user(json!({}));
            let obj = b.as_object_mut().expect("object");
            obj.insert("schemas".into(), json!([USER_SCHEMA, CUSTOM]));
            obj.extend(bad.as_object().expect("object").clone());
            let e = validate(ResourceType::User, &b).expect_err(&b.to_string());
            assert_eq!(e.scim_type.map(|t| t.as_str()), Some(scim_type), "{b}: {e}");
        }
        // The same attribute as an object member and as a qualified key is sent twice.
        let body = json!({"schemas": [USER_SCHEMA, CUSTOM], "userName": "a",
                          CUSTOM: {"x": "1"}, format!("{CUSTOM}:x"): "2"});
        assert!(validate(ResourceType::User, &body).is_err());
    }

    #[test]
    fn unknown_core_attributes_are_kept_as_a_tolerance() {
        use crate::proto::tolerance::{Tolerance, Tolerances};
        // An IT admin mapped attributes the core schema does not have.
        let body = user(json!({
            "nickname2": "Babs", "shoeSize": 44, "vip": true,
            "badge": {"id": "7", "since": "2020"}, "tags": ["a", "b"],
            "visits": [{"at": "x", "n": 1}], "empty": null, "none": [],
            format!("{USER_SCHEMA}:costCentre"): "42",
        }));
        let mut tol = Tolerances::lenient();
        let v = validate_with(ResourceType::User, &body, &mut tol).expect("kept");
        assert_eq!(tol.fired(), [Tolerance::UnknownAttribute]);
        for (name, value) in [
            ("nickname2", json!("Babs")),
            ("shoeSize", json!(44)),
            ("vip", json!(true)),
            ("badge", json!({"id": "7", "since": "2020"})),
            ("tags", json!(["a", "b"])),
            ("visits", json!([{"at": "x", "n": 1}])),
            ("costCentre", json!("42")),
        ] {
            assert_eq!(v.data.get(name), Some(&value), "{name}");
        }
        assert!(!v.data.contains_key("empty") && !v.data.contains_key("none"));
        // `schemas` qualified by the core URN is not an attribute to keep: it would collide
        // with the resource's own `schemas` (found by the resource fuzzer).
        let qualified = user(json!({format!("{USER_SCHEMA}:schemas"): [USER_SCHEMA]}));
        let e = validate_with(ResourceType::User, &qualified, &mut Tolerances::lenient())
            .expect_err("refused");
        assert_eq!(e.status, 400);
        // Groups too.
        let group = json!({"schemas": [GROUP_SCHEMA], "displayName": "G", "owner": "u1"});
        let mut tol = Tolerances::lenient();
        let v = validate_with(ResourceType::Group, &group, &mut tol).expect("kept");
        assert_eq!(v.data["owner"], "u1");
        // A strict tenant gets the 400 it always got.
        let e = validate(ResourceType::User, &body).expect_err("strict");
        assert_eq!(
            (e.status, e.scim_type.map(|t| t.as_str())),
            (400, Some("invalidSyntax"))
        );
        assert!(e.detail.contains("unknown attribute"), "{}", e.detail);

        // Still refused when lenient: names some core schema or the common attributes
        // define (another resource type's attribute), names that are no ATTRNAME, values
        // outside SCIM's data model, and one attribute sent twice.
        let group_attr = json!({"schemas": [GROUP_SCHEMA], "displayName": "G", "userName": "u"});
        let mut tol = Tolerances::lenient();
        let e = validate_with(ResourceType::Group, &group_attr, &mut tol).expect_err("defined");
        assert_eq!(e.detail, "unknown attribute 'userName'");
        for (extra, scim_type) in [
            (json!({"members": [{"value": "g"}]}), "invalidSyntax"),
            (json!({"Members": []}), "invalidSyntax"),
            (json!({"has space": 1}), "invalidSyntax"),
            (json!({"1st": 1}), "invalidSyntax"),
            (json!({"a.b": 1}), "invalidSyntax"),
            (json!({"$ref": "x"}), "invalidSyntax"),
            (json!({format!("{USER_SCHEMA}:a.b"): 1}), "invalidSyntax"),
            (json!({"deep": {"deeper": {"x": 1}}}), "invalidValue"),
            (json!({"deep": [[1]]}), "invalidValue"),
            (json!({"bad": {"has space": 1}}), "invalidSyntax"),
            (json!({"nul": "\u{0}"}), "invalidValue"),
            (json!({"foo": 1, "FOO": 2}), "invalidSyntax"),
            (
                json!({"foo": 1, format!("{USER_SCHEMA}:Foo"): 2}),
                "invalidSyntax",
            ),
        ] {
            let body = user(extra);
            let mut tol = Tolerances::lenient();
            let e =
                validate_with(ResourceType::User, &body, &mut tol).expect_err(&body.to_string());
            assert_eq!(
                e.scim_type.map(|t| t.as_str()),
                Some(scim_type),
                "{body}: {e}"
            );
        }
    }

    #[test]
    fn one_attribute_sent_twice_is_refused() {
        // Exposed by the e2e bad-input corpus: `displayName` and `DISPLAYNAME` in one body
        // was accepted and the stored value depended on key order.
        let qualified = format!("{USER_SCHEMA}:title");
        let ext_dept = format!("{ENTERPRISE_USER_SCHEMA}:department");
        let cases = [
            user(json!({"displayName": "a", "DISPLAYNAME": "b"})),
            user(json!({"USERNAME": "b"})),
            user(json!({"title": "a", qualified.clone(): "b"})),
            user(json!({ENTERPRISE_USER_SCHEMA: {"department": "a"}, ext_dept.clone(): "b"})),
            user(json!({ENTERPRISE_USER_SCHEMA: {"department": "a", "Department": "b"}})),
            user(json!({"name": {"givenName": "a", "givenname": "b"}})),
            user(json!({"externalId": "a", "EXTERNALID": null})),
            user(json!({"emails": [{"value": "a", "Value": "b"}]})),
            json!({"schemas": [GROUP_SCHEMA], "displayName": "g", "members": [], "Members": []}),
        ];
        for body in cases {
            let rt = if body["schemas"][0] == GROUP_SCHEMA {
                ResourceType::Group
            } else {
                ResourceType::User
            };
            let err = validate(rt, &body).expect_err(&body.to_string());
            assert_eq!(
                err.scim_type,
                Some(crate::proto::error::ScimType::InvalidSyntax),
                "{body}"
            );
        }
        // Different attributes that merely look alike are fine.
        let ok = user(json!({"name": {"givenName": "a", "familyName": "b"}, "title": "t"}));
        assert!(validate(ResourceType::User, &ok).is_ok());
    }

    #[test]
    fn nulls_and_empties_are_unassigned() {
        let v = validate(
            ResourceType::User,
            &user(json!({"displayName": null, "emails": [], "name": {"givenName": null}})),
        )
        .expect("valid");
        assert_eq!(v.data.len(), 1);
    }

    #[test]
    fn group_members_are_split_off_and_deduplicated() {
        let body = json!({"schemas": [GROUP_SCHEMA], "displayName": "Eng",
            "members": [{"value": "u1", "type": "User", "display": "x"}, {"value": "u2"}, {"value": "u1"}]});
        let v = validate(ResourceType::Group, &body).expect("valid");
        assert_eq!(v.members, Some(vec!["u1".to_string(), "u2".to_string()]));
        assert!(!v.data.contains_key("members"));
        let bad =
            json!({"schemas": [GROUP_SCHEMA], "displayName": "Eng", "members": [{"display": "x"}]});
        assert_eq!(validate(ResourceType::Group, &bad).unwrap_err().status, 400);
        let bad = json!({"schemas": [GROUP_SCHEMA], "displayName": "Eng", "members": [{"value": "u", "type": "Device"}]});
        assert_eq!(validate(ResourceType::Group, &bad).unwrap_err().status, 400);
    }

    #[test]
    fn renders_schemas_meta_and_related() {
        let mut data = Map::new();
        data.insert("userName".into(), json!("a"));
        data.insert(ENTERPRISE_USER_SCHEMA.into(), json!({"department": "x"}));
        let meta = Meta {
            created: "c".into(),
            modified: "m".into(),
            version: 3,
        };
        let groups = [Related {
            id: "g 1".into(),
            rt: ResourceType::Group,
            display: Some("G".into()),
        }];
        let r = render(
            ResourceType::User,
            "u1",
            &data,
            &meta,
            Some(&groups),
            "https://h/scim/v2",
        );
        assert_eq!(r["schemas"], json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]));
        assert_eq!(r["meta"]["location"], "https://h/scim/v2/Users/u1");
        assert_eq!(r["meta"]["version"], "W/\"3\"");
        assert_eq!(r["groups"][0]["$ref"], "https://h/scim/v2/Groups/g%201");
        assert_eq!(r["groups"][0]["type"], "direct");
    }

    /// The spliced rendering is the same resource as the parsed one, whatever the stored
    /// text holds: the extension or not, strings that imitate the URN key, escapes, no
    /// attributes at all, related resources with and without display names.
    #[test]
    fn spliced_rendering_equals_the_parsed_one() {
        let urn = ENTERPRISE_USER_SCHEMA;
        let users = [
            json!({"userName": "a"}),
            json!({}),
            json!({"userName": "a", urn: {"department": "x"}}),
            // The URN as a value, quoted inside a value, and as a value right before a colon.
            json!({"userName": urn, "displayName": format!("\"{urn}\":"), "title": format!("{urn}\":x")}),
            json!({"userName": "é \u{1F600} \\ \" \n", "emails": [{"value": "a@b", "type": "work", "primary": true}], urn: {"manager": {"value": "m"}}}),
            // Undeclared extensions, before and after the enterprise URN in key order.
            json!({"userName": "a", "urn:a:Custom": {"x": "urn:b:C"}, urn: {"department": "x"}, "urn:z:Custom": {"t": ["urn:y:Z"]}}),
        ];
        let groups = [
            json!({"displayName": "G"}),
            json!({"displayName": "G", "externalId": urn}),
            json!({"displayName": "G", "urn:vendor:group:ext": {"owner": "o"}}),
        ];
        let meta = Meta {
            created: "2026-01-01T00:00:00.000Z".into(),
            modified: "2026-01-02T00:00:00.000Z".into(),
            version: 42,
        };
        let related = [
            Related {
                id: "x1".into(),
                rt: ResourceType::User,
                display: Some("Babs \"B\"".into()),
            },
            Related {
                id: "x 2".into(),
                rt: ResourceType::Group,
                display: None,
            },
        ];
        let cases = users
            .iter()
            .map(|d| (ResourceType::User, d))
            .chain(groups.iter().map(|d| (ResourceType::Group, d)));
        let mut compared = 0;
        for (rt, data) in cases {
            let Value::Object(map) = data else {
                unreachable!()
            };
            let text = serde_json::to_string(map).expect("serialises");
            for rel in [None, Some(&[][..]), Some(&related[..])] {
                let related_name = match rt {
                    ResourceType::User => "groups",
                    ResourceType::Group => "members",
                };
                let both = format!("{related_name},meta");
                for excluded in [
                    None,
                    Some(related_name),
                    Some("meta"),
                    Some("meta.version"),
                    Some(both.as_str()),
                ] {
                    let projection = Projection::parse(None, excluded, Some(rt)).expect("valid");
                    assert!(projection.leaves_stored_data(rt));
                    let mut expected = render(rt, "id-1", map, &meta, rel, "https://h/v2");
                    projection.apply(rt, &mut expected);
                    let mut out = Vec::new();
                    write_spliced(
                        &mut out,
                        rt,
                        "id-1",
                        &text,
                        &meta,
                        rel,
                        "https://h/v2",
                        &projection,
                    )
                    .expect("renders");
                    let got: Value = serde_json::from_slice(&out)
                        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
                    assert_eq!(got, expected, "{text} {excluded:?}");
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 9 * 3 * 5);
        // Text that is not an object is an internal error, never a malformed response.
        let mut out = Vec::new();
        let e = write_spliced(
            &mut out,
            ResourceType::User,
            "i",
            "[1]",
            &meta,
            None,
            "b",
            &Projection::default(),
        )
        .expect_err("not an object");
        assert_eq!(e.status, 500);
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for s in [
            "",
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "2026-01-01T00:00:00.000Z",
            "W/\"42\"",
            "back\\slash",
            "tab\there",
            "nul\u{0}",
            "\u{7f} del",
            "é \u{1F600}",
            "line\nbreak",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s).expect("writes");
            assert_eq!(
                String::from_utf8(out).expect("utf-8"),
                serde_json::to_string(s).expect("serialises"),
                "{s:?}"
            );
        }
    }

    /// The version written as bytes is what serialising `Meta::etag()` writes, at the
    /// versions' edges (scim-edge's are positive and below 2^53; the rest are kept honest).
    #[test]
    fn the_written_etag_is_the_serialised_one() {
        for version in [
            0,
            1,
            4503599627370497,
            9007199254740991,
            i64::MAX,
            -1,
            i64::MIN,
        ] {
            let meta = Meta {
                created: String::new(),
                modified: String::new(),
                version,
            };
            let mut direct = Vec::new();
            write_etag(&mut direct, version).expect("writes");
            let serialised = serde_json::to_vec(&meta.etag()).expect("serialises");
            assert_eq!(direct, serialised, "{version}");
        }
    }

    /// The tail written directly is byte for byte what serialising the built values wrote
    /// (the path every response with related resources took before), for users and groups,
    /// with and without related entries, display names that need escaping, ids that need
    /// percent-encoding, and bases with and without characters JSON escapes; and a projection
    /// that names neither `meta` nor the related list keeps both whole.
    #[test]
    fn the_direct_tail_is_the_serialised_one_byte_for_byte() {
        let meta = Meta {
            created: "2026-01-01T00:00:00.000Z".into(),
            modified: "2026-01-02T00:00:00.000Z".into(),
            version: 4503599627370497,
        };
        let rel = |id: &str, rt, display: Option<&str>| Related {
            id: id.into(),
            rt,
            display: display.map(Into::into),
        };
        let related = [
            rel(
                "6a1c3e5f-7b9d-4f2a-8c4e-6a8b0c2d4e6f",
                ResourceType::Group,
                Some("All"),
            ),
            rel("x 2/é", ResourceType::User, None),
            rel(
                "q\"\\",
                ResourceType::Group,
                Some("Babs \"B\" \\ \n é \u{1F600}"),
            ),
        ];
        let mut compared = 0;
        for rt in ResourceType::ALL {
            let name = related_name(rt);
            for excluded in [None, Some("id")] {
                let projection = Projection::parse(None, excluded, Some(rt)).expect("valid");
                // A group's `members.display` is `returned: request` (RFC 7643 §8.7.1): a
                // group's members always take the values, and the projection hides it.
                assert_eq!(
                    projection.keeps_whole(rt, name),
                    rt == ResourceType::User,
                    "{excluded:?}"
                );
                for base in ["https://h/scim/v2", "https://h/t/a\"b\\c", ""] {
                    for id in ["u-1", "u 1%", "ü\"\n"] {
                        for rel in [None, Some(&related[..1]), Some(&related[..])] {
                            if rel.is_some() && rt == ResourceType::Group {
                                continue;
                            }
                            let mut direct = Vec::new();
                            write_tail(&mut direct, rt, id, &meta, rel, base).expect("writes");
                            let mut values = Vec::new();
                            write_projected_tail(
                                &mut values,
                                rt,
                                id,
                                &meta,
                                rel,
                                base,
                                &projection,
                            )
                            .expect("writes");
                            assert_eq!(
                                String::from_utf8(direct).expect("utf-8"),
                                String::from_utf8(values).expect("utf-8")
                            );
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 2 * 3 * 3 * 3 + 2 * 3 * 3);
        // Naming the related list, `meta`, or asking for attributes by name takes the values.
        for (attrs, excluded) in [
            (None, Some("groups")),
            (None, Some("groups.display")),
            (Some("userName"), None),
        ] {
            let p = Projection::parse(attrs, excluded, Some(ResourceType::User)).expect("valid");
            assert!(
                !p.keeps_whole(ResourceType::User, "groups"),
                "{attrs:?} {excluded:?}"
            );
        }
        assert!(!Projection::default().keeps_whole(ResourceType::User, "nosuch"));
    }

    #[test]
    fn percent_encoding_copies_plain_ids_and_encodes_the_rest() {
        // What `format!("%{b:02X}")` per unsafe byte gave.
        let reference = |s: &str| -> String {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        };
        for s in [
            "",
            "2f1d7c9a-3b4e-4f60-8a1b-000000000001",
            "a b/c?d#e%f",
            "é\u{1F600}\u{0}\u{7f}~:._-",
        ] {
            assert_eq!(percent_encode_segment(s), reference(s), "{s:?}");
        }
        assert_eq!(percent_encode_segment("a b/é"), "a%20b%2F%C3%A9");
    }

    #[test]
    fn urn_member_name_detection() {
        fn names(t: &str) -> Vec<&str> {
            urn_member_names(t).collect()
        }
        assert_eq!(names(r#"{"a":1,"urn:x:User":{"b":2}}"#), ["urn:x:User"]);
        assert_eq!(names(r#"{"urn:x:User":{}}"#), ["urn:x:User"]);
        assert_eq!(names("{\n  \"URN:x:User\" : {}\n}"), ["URN:x:User"]);
        assert_eq!(
            names(r#"{"urn:a:B":{"c":"urn:d:E"},"urn:x:User":{"b":["urn:y:Z", "w"]}}"#),
            ["urn:a:B", "urn:x:User"]
        );
        for none in [
            r#"{"a":"urn:x:User"}"#,
            r#"{"a":"\"urn:x:User\":"}"#,
            r#"{"a":"urn:x:User\":"}"#,
            r#"{"a":["urn:x:User","urn:y"]}"#,
            r#"{"a":"x,\"urn:x:User\":1"}"#,
            r#"{"urn"}"#,
            "",
        ] {
            assert!(names(none).is_empty(), "{none}");
        }
    }
}
