//! PATCH paths resolved against the schema. The text is read by the filter module's grammar
//! ([`crate::proto::filter::parse_patch_path`]), so a path means in a PATCH what it means in a
//! filter; this module only looks the names up.

use crate::proto::error::{Result, ScimError};
use crate::proto::filter::{self, Filter};
use crate::proto::schema::{
    common_attr, AttrType, Attribute, Mutability, ResourceType, Schema, TypeSchemas,
};

/// What a `path` (or a path-less value's key) addresses.
pub(super) enum PathTarget {
    /// The path is an extension schema URN: the operation addresses all of its attributes.
    Extension(&'static Schema),
    Attr(AttrPath),
}

/// `[urn:…:]attr[[filter]][.sub]`, resolved against the schema.
pub(super) struct AttrPath {
    pub ext: Option<&'static Schema>,
    pub attr: &'static Attribute,
    /// The value filter between the brackets, parsed but not yet bound to the schema.
    pub filter: Option<Filter>,
    pub sub: Option<&'static Attribute>,
}

impl AttrPath {
    /// Canonical path for messages.
    pub fn label(&self) -> String {
        let mut s = match self.ext {
            Some(e) => format!("{}:{}", e.id, self.attr.name),
            None => self.attr.name.clone(),
        };
        if let Some(f) = &self.filter {
            s.push_str(&format!("[{f}]"));
        }
        if let Some(sub) = self.sub {
            s.push('.');
            s.push_str(&sub.name);
        }
        s
    }

    /// The attribute or the addressed sub-attribute has mutability `m`.
    pub fn has(&self, m: Mutability) -> bool {
        self.attr.mutability == m || self.sub.is_some_and(|s| s.mutability == m)
    }

    pub fn is_read_only(&self) -> bool {
        self.has(Mutability::ReadOnly)
    }

    pub fn is_members(&self, rt: TypeSchemas) -> bool {
        rt == ResourceType::Group && self.ext.is_none() && self.attr.name == "members"
    }
}

pub(super) fn read_only(p: &AttrPath) -> ScimError {
    ScimError::mutability(format!(
        "'{}' is readOnly and cannot be modified",
        p.label()
    ))
}

/// Resolves an operation's `path`, or a key of a path-less value (Entra's `name.givenName`
/// and `urn:…:User:department` keys are paths too).
pub(super) fn parse_path(rt: TypeSchemas, raw: &str) -> Result<PathTarget> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(ScimError::invalid_path("'path' must not be empty"));
    }
    // A bare schema URN reads as `urn:…:2.0` + attribute `User` to the grammar.
    if let Some(ext) = rt.extension(s) {
        return Ok(PathTarget::Extension(ext));
    }
    if rt.core_schema().id.eq_ignore_ascii_case(s) {
        return Err(ScimError::invalid_path(format!(
            "'{raw}' names a schema, not an attribute"
        )));
    }
    // The schema is looked up, not parsed: the grammar then reads a short path, not the URN.
    if let Some((ext, rest)) = strip_schema(rt, s) {
        return parse_in_schema(rt, ext, rest, raw).map(PathTarget::Attr);
    }
    let parsed = filter::parse_patch_path(s)?;
    if parsed.path.urn.is_some() {
        return Err(ScimError::invalid_path(format!(
            "'{raw}' does not name a schema of {} resources",
            rt.name()
        )));
    }
    resolve(rt, None, parsed, raw).map(PathTarget::Attr)
}

/// The schema of `rt` whose URN and a `:` start `s` (case-insensitively; the longest, so a
/// `…:User` never shadows a `…:User:Extension`): `None` for the core schema, and the rest.
fn strip_schema(rt: TypeSchemas, s: &str) -> Option<(Option<&'static Schema>, &str)> {
    let core = std::iter::once((rt.core_schema(), false));
    core.chain(rt.extensions().map(|e| (e, true)))
        .filter_map(|(schema, is_ext)| {
            let head = s.get(..schema.id.len())?;
            let rest = s.get(schema.id.len()..)?.strip_prefix(':')?;
            head.eq_ignore_ascii_case(&schema.id).then_some((
                schema.id.len(),
                is_ext.then_some(schema),
                rest,
            ))
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, ext, rest)| (ext, rest))
}

/// A path within one schema (`ext`, or the core one), without its URN.
fn parse_in_schema(
    rt: TypeSchemas,
    ext: Option<&'static Schema>,
    s: &str,
    raw: &str,
) -> Result<AttrPath> {
    let parsed = filter::parse_patch_path(s)?;
    if parsed.path.urn.is_some() {
        return Err(unknown(s, raw));
    }
    resolve(rt, ext, parsed, raw)
}

/// Resolves a key of an extension's object value: a path within extension `ext`.
pub(super) fn parse_in(rt: TypeSchemas, ext: &'static Schema, key: &str) -> Result<AttrPath> {
    parse_in_schema(rt, Some(ext), key, key)
}

fn unknown(name: &str, raw: &str) -> ScimError {
    ScimError::invalid_path(format!("unknown attribute '{name}' in path '{raw}'"))
}

fn resolve(
    rt: TypeSchemas,
    ext: Option<&'static Schema>,
    parsed: filter::PatchPath,
    raw: &str,
) -> Result<AttrPath> {
    let bad = |why: String| ScimError::invalid_path(format!("invalid path '{raw}': {why}"));
    let name = &parsed.path.name;
    let attr = match ext {
        Some(e) => e.attr(name),
        None => rt.core_schema().attr(name).or_else(|| common_attr(name)),
    }
    .ok_or_else(|| unknown(name, raw))?;
    if parsed.filter.is_some() && !attr.multi_valued {
        return Err(bad(format!(
            "'{}' is not multi-valued; only multi-valued attributes take a filter",
            attr.name
        )));
    }
    let sub = match parsed.path.sub.or(parsed.sub) {
        None => None,
        Some(_) if attr.kind != AttrType::Complex => {
            return Err(bad(format!("'{}' has no sub-attributes", attr.name)))
        }
        Some(sub_name) => Some(attr.sub(&sub_name).ok_or_else(|| {
            ScimError::invalid_path(format!(
                "unknown sub-attribute '{}.{sub_name}' in path '{raw}'",
                attr.name
            ))
        })?),
    };
    Ok(AttrPath {
        ext,
        attr,
        filter: parsed.filter,
        sub,
    })
}
