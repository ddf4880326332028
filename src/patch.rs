//! PATCH (RFC 7644 §3.5.2) as a pure function: current stored `data` + request body → new
//! `data`, group member changes and an audit summary. Nothing here touches storage, so every
//! request shape Microsoft Entra ID and Okta send is pinned by a unit test below.
//!
//! All operations apply to a copy; the first failing operation fails the whole request, so a
//! PATCH is atomic by construction. The attributes the operations touched, and the required
//! ones, are re-validated afterwards; the others are stored data that passed validation when
//! written. So a PATCH can never store what a PUT would have rejected, which the tests and
//! the patch fuzz target check by validating every outcome as a whole resource.
//!
//! The request path patches the stored text ([`apply_text`]): only the attributes the
//! operations address are parsed, the rest is carried over verbatim.
//!
//! Group members never enter `data`: a group may have 100k members, so member operations are
//! returned as [`MemberOp`]s for the store to apply as row changes, without reading the list.
//!
//! Clients deviate from the RFC in well-known ways. With `strict == false` those deviations are
//! accepted and reported as [`Tolerance`]s; with `strict == true` each one is a 400 instead.

use crate::error::{Result, ScimError};
use crate::filter::{AttrPath as FilterPath, CompareOp, Filter, Literal};
use crate::resource::{self, member_ids, validate_attr};
use crate::schema::{
    common_attr, AttrType, Attribute, Mutability, ResourceType, Schema, PATCH_OP_SCHEMA,
};
pub use crate::tolerance::Tolerance;
use crate::tolerance::Tolerances;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Most operations one PATCH request may carry.
pub const MAX_OPERATIONS: usize = 1000;

/// What a PATCH request amounts to.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOutcome {
    /// The new stored `data`, validated like a PUT body.
    pub data: Map<String, Value>,
    /// Group member changes in request order (always empty for users).
    pub members: Vec<MemberOp>,
    /// Attributes whose stored value changed, by canonical name (`emails`,
    /// `urn:…:enterprise:2.0:User:department`, `members`), in the order first touched.
    pub changed: Vec<String>,
    /// Client quirks that were accepted (empty when `strict`).
    pub tolerances: Vec<Tolerance>,
}

/// A change to a group's member rows, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberOp {
    Add(Vec<String>),
    Remove(Vec<String>),
    RemoveAll,
    Replace(Vec<String>),
}

/// Applies a PATCH request body to a resource's stored `data`, parsed (the tests' and the
/// fuzz target's oracle for [`apply_text`], which the request path uses).
pub fn apply(
    rt: ResourceType,
    current: &Map<String, Value>,
    body: &Value,
    strict: bool,
) -> Result<PatchOutcome> {
    let (data, ctx) = run(rt, current.clone(), Unparsed::new(), body, strict)?;
    let changed = changed_names(&ctx, &data);
    Ok(PatchOutcome {
        data,
        members: ctx.members,
        changed,
        tolerances: ctx.tol.into_vec(),
    })
}

/// What a PATCH of stored JSON text amounts to ([`apply_text`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TextOutcome {
    /// The new stored `data` text; `None` when no attribute changed.
    pub data: Option<String>,
    /// The PATCH sets `active` to false.
    pub deactivating: bool,
    pub members: Vec<MemberOp>,
    pub changed: Vec<String>,
    pub tolerances: Vec<Tolerance>,
}

/// [`apply`] to the stored `data` text, as the request path holds it. Only the top-level
/// attributes the operations address are parsed; the others stay the text they are stored
/// as and go back into the new text verbatim. Entra's typical user PATCH addresses five of
/// some fifteen attributes, and parsing, copying and re-serialising the other ten was most
/// of its CPU. Same results as [`apply`] (the tests run every PATCH both ways).
pub fn apply_text(
    rt: ResourceType,
    stored: &str,
    body: &Value,
    strict: bool,
) -> Result<TextOutcome> {
    let unparsed: Unparsed<'_> = serde_json::from_str(stored).map_err(|_| {
        ScimError::internal().with_cause("stored data is not a JSON object".to_string())
    })?;
    let (data, ctx) = run(rt, Map::new(), unparsed, body, strict)?;
    let changed = changed_names(&ctx, &data);
    let text = if changed.iter().any(|n| n != "members") {
        Some(merged_text(&ctx.unparsed, &data)?)
    } else {
        None
    };
    Ok(TextOutcome {
        data: text,
        deactivating: data.get("active") == Some(&Value::Bool(false)),
        members: ctx.members,
        changed,
        tolerances: ctx.tol.into_vec(),
    })
}

/// Top-level stored attributes no operation has addressed, as their stored JSON text.
type Unparsed<'t> = BTreeMap<String, &'t RawValue>;

fn run<'t>(
    rt: ResourceType,
    mut data: Map<String, Value>,
    unparsed: Unparsed<'t>,
    body: &Value,
    strict: bool,
) -> Result<(Map<String, Value>, Ctx<'t>)> {
    let ops = operations(body)?;
    let mut ctx = Ctx {
        rt,
        tol: Tolerances::new(strict),
        members: Vec::new(),
        touched: Vec::new(),
        before: Vec::new(),
        unparsed,
    };
    for (i, raw) in ops.iter().enumerate() {
        apply_one(&mut ctx, &mut data, raw).map_err(|e| ScimError {
            detail: format!("Operations[{i}]: {}", e.detail),
            ..e
        })?;
    }
    // The required attributes are checked below whether touched or not.
    for attr in rt.core_schema().attributes.iter().filter(|a| a.required) {
        ctx.parse(&mut data, &attr.name)?;
    }
    resource::revalidate_touched(rt, &mut data, ctx.touched.iter().map(|t| (t.ext, t.attr)))?;
    Ok((data, ctx))
}

/// The stored text of `parsed` and `unparsed` together (their keys are disjoint), in the
/// key order serde_json writes a map in, so a full parse and write gives the same text.
fn merged_text(unparsed: &Unparsed<'_>, parsed: &Map<String, Value>) -> Result<String> {
    let mut out = Vec::with_capacity(
        unparsed.values().map(|r| r.get().len() + 24).sum::<usize>() + 256 * parsed.len(),
    );
    out.push(b'{');
    let mut a = unparsed.iter().peekable();
    let mut b = parsed.iter().peekable();
    let mut first = true;
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((ka, _)), Some((kb, _))) => ka < kb,
        };
        if !first {
            out.push(b',');
        }
        first = false;
        let fail = |_| ScimError::internal();
        if take_a {
            if let Some((k, v)) = a.next() {
                resource::write_str(&mut out, k)?;
                out.push(b':');
                out.extend_from_slice(v.get().as_bytes());
            }
        } else if let Some((k, v)) = b.next() {
            resource::write_str(&mut out, k)?;
            out.push(b':');
            serde_json::to_writer(&mut out, v).map_err(fail)?;
        }
    }
    out.push(b'}');
    String::from_utf8(out).map_err(|_| ScimError::internal())
}

// ---------------------------------------------------------------------------------------------
// Request structure

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

struct Ctx<'t> {
    rt: ResourceType,
    tol: Tolerances,
    members: Vec<MemberOp>,
    /// The top-level attributes operations addressed, in order, resolved against the schema
    /// (names are built only for the outcome's `changed`).
    touched: Vec<Touched>,
    /// The stored value of each `touched` attribute before the first operation on it.
    before: Vec<Option<Value>>,
    /// Stored attributes not parsed into the data yet ([`apply_text`]).
    unparsed: Unparsed<'t>,
}

impl Ctx<'_> {
    /// Parses the stored attribute `key` (a canonical top-level name or extension URN) into
    /// `data` if it is still unparsed; every operation does this before it reads or writes.
    fn parse(&mut self, data: &mut Map<String, Value>, key: &str) -> Result<()> {
        if let Some(raw) = self.unparsed.remove(key) {
            let v: Value = serde_json::from_str(raw.get()).map_err(|_| ScimError::internal())?;
            data.insert(key.to_string(), v);
        }
        Ok(())
    }

    /// Accepts a quirk, or in strict mode refuses it.
    fn tolerate(&mut self, t: Tolerance, detail: impl FnOnce() -> String) -> Result<()> {
        self.tol.tolerate(t, detail)
    }

    /// Records that an operation is about to write `attr` (of extension `ext`, or of the
    /// core schema) in `data`, keeping its value.
    fn touch(
        &mut self,
        data: &Map<String, Value>,
        ext: Option<&'static Schema>,
        attr: &'static Attribute,
    ) {
        let t = Touched { ext, attr };
        if !self.touched.contains(&t) {
            self.before.push(t.value_in(data).cloned());
            self.touched.push(t);
        }
    }
}

/// The single member of `obj` whose key matches `name` case-insensitively.
fn member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a Value>> {
    let mut found = None;
    for (k, v) in obj {
        if k.eq_ignore_ascii_case(name) {
            if found.is_some() {
                return Err(ScimError::invalid_syntax(format!(
                    "'{name}' appears more than once"
                )));
            }
            found = Some(v);
        }
    }
    Ok(found)
}

fn operations(body: &Value) -> Result<&Vec<Value>> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("a PATCH body must be a JSON object"))?;
    let schemas = member(obj, "schemas")?
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ScimError::invalid_syntax(format!(
                "'schemas' must be an array containing \"{PATCH_OP_SCHEMA}\""
            ))
        })?;
    if !schemas.iter().any(|s| {
        s.as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
    }) {
        return Err(ScimError::invalid_syntax(format!(
            "'schemas' must contain \"{PATCH_OP_SCHEMA}\""
        )));
    }
    let ops = member(obj, "Operations")?
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("'Operations' must be an array of operations"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("'Operations' must not be empty"));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_syntax(format!(
            "'Operations' has {} operations; the limit is {MAX_OPERATIONS}",
            ops.len()
        )));
    }
    Ok(ops)
}

fn apply_one(ctx: &mut Ctx, data: &mut Map<String, Value>, raw: &Value) -> Result<()> {
    let obj = raw
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("each operation must be a JSON object"))?;
    let op_name = member(obj, "op")?.and_then(Value::as_str).ok_or_else(|| {
        ScimError::invalid_syntax(
            "each operation needs an 'op' of \"add\", \"replace\" or \"remove\"",
        )
    })?;
    let op = match op_name.to_ascii_lowercase().as_str() {
        "add" => Op::Add,
        "replace" => Op::Replace,
        "remove" => Op::Remove,
        _ => {
            return Err(ScimError::invalid_syntax(format!(
                "unknown op \"{op_name}\"; expected \"add\", \"replace\" or \"remove\""
            )))
        }
    };
    if op_name.bytes().any(|b| b.is_ascii_uppercase()) {
        ctx.tolerate(Tolerance::CapitalizedOp, || {
            format!("op must be lowercase, not \"{op_name}\"")
        })?;
    }
    let path = match member(obj, "path")? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(ScimError::invalid_path("'path' must be a string")),
    };
    let value = member(obj, "value")?;
    if op != Op::Remove && value.is_none() {
        return Err(ScimError::invalid_syntax(format!(
            "\"{}\" needs a 'value'",
            op_name.to_ascii_lowercase()
        )));
    }
    match path {
        None => {
            if op == Op::Remove {
                return Err(ScimError::no_target("\"remove\" needs a 'path'"));
            }
            match value {
                Some(Value::Object(m)) => apply_object(ctx, data, op, m),
                _ => Err(ScimError::invalid_value(
                    "without a 'path', 'value' must be an object of attributes",
                )),
            }
        }
        Some(path) => match parse_path(ctx.rt, path)? {
            Target::Extension(ext) => apply_extension(ctx, data, op, ext, value),
            Target::Attr(p) => apply_path(ctx, data, op, &p, value),
        },
    }
}

/// Path-less add/replace: every key is applied as if it were the operation's path. Keys may
/// be dotted (`name.givenName`) or schema-qualified, as Entra sends them.
fn apply_object(
    ctx: &mut Ctx,
    data: &mut Map<String, Value>,
    op: Op,
    obj: &Map<String, Value>,
) -> Result<()> {
    for (key, v) in obj {
        if key.eq_ignore_ascii_case("schemas") {
            ctx.tolerate(Tolerance::ReadOnlyIgnored, || {
                "'schemas' cannot be patched".into()
            })?;
            continue;
        }
        match parse_path(ctx.rt, key)? {
            Target::Extension(ext) => apply_extension(ctx, data, op, ext, Some(v))?,
            Target::Attr(p) => {
                if p.is_read_only() {
                    let label = p.label();
                    ctx.tolerate(Tolerance::ReadOnlyIgnored, || {
                        format!("'{label}' is readOnly")
                    })?;
                    continue;
                }
                apply_path(ctx, data, op, &p, Some(v))?;
            }
        }
    }
    Ok(())
}

/// An operation whose path (or path-less key) is an extension schema URN itself.
fn apply_extension(
    ctx: &mut Ctx,
    data: &mut Map<String, Value>,
    op: Op,
    ext: &'static Schema,
    value: Option<&Value>,
) -> Result<()> {
    ctx.parse(data, &ext.id)?;
    for attr in &ext.attributes {
        ctx.touch(data, Some(ext), attr);
    }
    let value = value.filter(|v| !v.is_null());
    match (op, value) {
        (Op::Remove, v) => {
            if v.is_some() {
                ctx.tolerate(Tolerance::RemoveValueIgnored, || {
                    "\"remove\" takes no 'value'".into()
                })?;
            }
            data.remove(&ext.id);
            Ok(())
        }
        (Op::Replace, None) => {
            data.remove(&ext.id);
            Ok(())
        }
        (Op::Add, None) => Ok(()),
        (_, Some(Value::Object(m))) => {
            for (key, v) in m {
                if key.eq_ignore_ascii_case("schemas") {
                    // Some clients serialise the extension as a whole resource model.
                    ctx.tolerate(Tolerance::ReadOnlyIgnored, || {
                        "'schemas' cannot be patched".into()
                    })?;
                    continue;
                }
                let p = parse_attr_path(ctx.rt, Some(ext), key, key)?;
                if p.is_read_only() {
                    return Err(read_only(&p));
                }
                apply_path(ctx, data, op, &p, Some(v))?;
            }
            Ok(())
        }
        (_, Some(_)) => Err(ScimError::invalid_value(format!(
            "'{}' must be an object",
            ext.id
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Paths

enum Target {
    /// The path is an extension schema URN: the operation addresses all of its attributes.
    Extension(&'static Schema),
    Attr(AttrPath),
}

/// `[urn:…:]attr[[filter]][.sub]`, resolved against the schema.
struct AttrPath {
    ext: Option<&'static Schema>,
    attr: &'static Attribute,
    /// The value filter between the brackets, as sent.
    filter: Option<String>,
    sub: Option<&'static Attribute>,
}

impl AttrPath {
    /// Canonical top-level name, as reported in `changed`.
    fn name(&self) -> String {
        match self.ext {
            Some(e) => format!("{}:{}", e.id, self.attr.name),
            None => self.attr.name.clone(),
        }
    }

    /// Canonical path for messages.
    fn label(&self) -> String {
        let mut s = self.name();
        if let Some(f) = &self.filter {
            s.push('[');
            s.push_str(f);
            s.push(']');
        }
        if let Some(sub) = self.sub {
            s.push('.');
            s.push_str(&sub.name);
        }
        s
    }

    fn is_read_only(&self) -> bool {
        self.attr.mutability == Mutability::ReadOnly
            || self
                .sub
                .is_some_and(|s| s.mutability == Mutability::ReadOnly)
    }

    fn is_members(&self, rt: ResourceType) -> bool {
        rt == ResourceType::Group && self.ext.is_none() && self.attr.name == "members"
    }
}

fn read_only(p: &AttrPath) -> ScimError {
    ScimError::mutability(format!(
        "'{}' is readOnly and cannot be modified",
        p.label()
    ))
}

/// `Some(rest)` if `s` starts with schema `id` (case-insensitively): `Some(None)` when `s` is
/// exactly the URN, `Some(Some(attr_path))` when followed by `:`.
fn strip_schema<'a>(s: &'a str, id: &str) -> Option<Option<&'a str>> {
    let head = s.get(..id.len())?;
    if !head.eq_ignore_ascii_case(id) {
        return None;
    }
    let rest = s.get(id.len()..)?;
    if rest.is_empty() {
        return Some(None);
    }
    rest.strip_prefix(':').map(Some)
}

fn parse_path(rt: ResourceType, raw: &str) -> Result<Target> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(ScimError::invalid_path("'path' must not be empty"));
    }
    if !s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        return parse_attr_path(rt, None, s, raw).map(Target::Attr);
    }
    // Longest schema id first, so a hypothetical `…:User` never shadows `…:User:Extension`.
    let core = rt.core_schema();
    let mut schemas: Vec<(&'static Schema, bool)> = vec![(core, false)];
    schemas.extend(rt.extensions().iter().map(|e| (e, true)));
    schemas.sort_by_key(|(s, _)| std::cmp::Reverse(s.id.len()));
    for (schema, is_ext) in schemas {
        match strip_schema(s, &schema.id) {
            None => continue,
            Some(None) if is_ext => return Ok(Target::Extension(schema)),
            Some(None) => {
                return Err(ScimError::invalid_path(format!(
                    "'{raw}' names a schema, not an attribute"
                )))
            }
            Some(Some(rest)) => {
                return parse_attr_path(rt, is_ext.then_some(schema), rest, raw).map(Target::Attr);
            }
        }
    }
    Err(ScimError::invalid_path(format!(
        "'{raw}' does not name a schema of {} resources",
        rt.name()
    )))
}

/// Parses `attr[[filter]][.sub]` within the core schema (`ext == None`) or an extension.
fn parse_attr_path(
    rt: ResourceType,
    ext: Option<&'static Schema>,
    s: &str,
    raw: &str,
) -> Result<AttrPath> {
    let bad = |why: &str| ScimError::invalid_path(format!("invalid path '{raw}': {why}"));
    let end = s.find(['.', '[']).unwrap_or(s.len());
    let (name, mut rest) = s.split_at(end);
    if name.is_empty() {
        return Err(bad("an attribute name is expected"));
    }
    let attr = match ext {
        Some(e) => e.attr(name),
        None => rt.core_schema().attr(name).or_else(|| common_attr(name)),
    }
    .ok_or_else(|| {
        ScimError::invalid_path(format!("unknown attribute '{name}' in path '{raw}'"))
    })?;
    let mut filter = None;
    if let Some(after) = rest.strip_prefix('[') {
        let close = closing_bracket(after).ok_or_else(|| bad("unterminated '['"))?;
        let inner = after.get(..close).unwrap_or_default().trim();
        if inner.is_empty() {
            return Err(bad("empty filter"));
        }
        if !attr.multi_valued {
            return Err(bad(&format!(
                "'{}' is not multi-valued; only multi-valued attributes take a filter",
                attr.name
            )));
        }
        filter = Some(inner.to_string());
        rest = after.get(close + 1..).unwrap_or_default();
    }
    let mut sub = None;
    if !rest.is_empty() {
        let sub_name = rest
            .strip_prefix('.')
            .ok_or_else(|| bad("expected '.' or the end after ']'"))?;
        if attr.kind != AttrType::Complex {
            return Err(bad(&format!("'{}' has no sub-attributes", attr.name)));
        }
        sub = Some(attr.sub(sub_name).ok_or_else(|| {
            ScimError::invalid_path(format!(
                "unknown sub-attribute '{}.{sub_name}' in path '{raw}'",
                attr.name
            ))
        })?);
    }
    Ok(AttrPath {
        ext,
        attr,
        filter,
        sub,
    })
}

/// Index of the `]` closing a value filter, skipping quoted strings; a nested `[` is refused.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            ']' => return Some(i),
            '[' => return None,
            _ => {}
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Applying one path

fn apply_path(
    ctx: &mut Ctx,
    data: &mut Map<String, Value>,
    op: Op,
    p: &AttrPath,
    value: Option<&Value>,
) -> Result<()> {
    if p.is_members(ctx.rt) {
        return members_op(ctx, op, p, value);
    }
    if p.is_read_only() {
        return Err(read_only(p));
    }
    let immutable = p.attr.mutability == Mutability::Immutable
        || p.sub.is_some_and(|s| s.mutability == Mutability::Immutable);
    if immutable && op != Op::Add {
        return Err(ScimError::mutability(format!(
            "'{}' is immutable",
            p.label()
        )));
    }
    let write_only = p.attr.mutability == Mutability::WriteOnly
        || p.sub.is_some_and(|s| s.mutability == Mutability::WriteOnly);
    if write_only {
        // Never stored (e.g. password): type-checked, then dropped as on POST and PUT.
        if let Some(v) = value.filter(|_| op != Op::Remove) {
            let target = p.sub.unwrap_or(p.attr);
            let v = coerce(ctx, target, v, &p.label())?;
            validate_attr(target, &v, &p.label())?;
        }
        return Ok(());
    }
    ctx.parse(data, p.ext.map_or(&p.attr.name, |e| &e.id))?;
    ctx.touch(data, p.ext, p.attr);
    match p.ext {
        None => apply_in(ctx, data, op, p, value),
        Some(ext) => {
            let mut container = match data.remove(&ext.id) {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            let result = apply_in(ctx, &mut container, op, p, value);
            if !container.is_empty() {
                data.insert(ext.id.clone(), Value::Object(container));
            }
            result
        }
    }
}

/// Applies one operation inside the map that holds `p.attr` (the data, or an extension's map).
fn apply_in(
    ctx: &mut Ctx,
    c: &mut Map<String, Value>,
    op: Op,
    p: &AttrPath,
    value: Option<&Value>,
) -> Result<()> {
    let key = p.attr.name.clone();
    let label = p.label();
    let value_given = value.filter(|v| !v.is_null());

    // Entra clears the manager with an empty id.
    if is_manager(p.attr) && op != Op::Remove && p.filter.is_none() {
        let blank = |v: &Value| v.as_str().is_some_and(|s| s.trim().is_empty());
        let empty = match (p.sub, value) {
            (Some(s), Some(v)) => s.name == "value" && blank(v),
            (None, Some(Value::Object(m))) => m
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("value") && blank(v)),
            (None, Some(v)) => blank(v),
            _ => false,
        };
        if empty {
            ctx.tolerate(Tolerance::EmptyManager, || {
                format!("'{label}' must not be empty; remove the manager instead")
            })?;
            c.remove(&key);
            return Ok(());
        }
    }

    match (&p.filter, p.sub, op) {
        // Whole attribute.
        (None, None, Op::Remove) => {
            if let Some(v) = value_given {
                if p.attr.multi_valued {
                    ctx.tolerate(Tolerance::RemoveByValue, || {
                        format!("\"remove\" of '{label}' takes no 'value'; use a filter")
                    })?;
                    let listed = coerce(ctx, p.attr, v, &label)?;
                    let mut arr = take_array(c, &key);
                    remove_listed(p.attr, &mut arr, &listed, &label)?;
                    put_array(c, key, arr);
                    return Ok(());
                }
                ctx.tolerate(Tolerance::RemoveValueIgnored, || {
                    format!("\"remove\" of '{label}' takes no 'value'")
                })?;
            }
            c.remove(&key);
        }
        (None, None, _) => {
            let v = coerce(ctx, p.attr, value.unwrap_or(&Value::Null), &label)?;
            if v.is_null() {
                if op == Op::Replace {
                    c.remove(&key);
                }
                return Ok(());
            }
            if p.attr.multi_valued {
                let mut v = v;
                settle_given_primary(&mut v);
                let items = match validate_attr(p.attr, &v, &label)? {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                let mut arr = take_array(c, &key);
                if op == Op::Replace {
                    arr.clear();
                }
                let mut touched = Vec::new();
                for item in items {
                    match arr.iter().position(|x| *x == item) {
                        Some(i) => touched.push(i),
                        None => {
                            arr.push(item);
                            touched.push(arr.len() - 1);
                        }
                    }
                }
                settle_primary(&mut arr, &touched);
                put_array(c, key, arr);
            } else if p.attr.kind == AttrType::Complex {
                // RFC 7644 §3.5.2.1/§3.5.2.3: sub-attributes not given are left unchanged.
                let validated = validate_attr(p.attr, &v, &label)?;
                let mut obj = take_object(c, &key);
                if let Value::Object(given) = &v {
                    for (k, x) in given {
                        if let (true, Some(sub)) = (x.is_null(), p.attr.sub(k)) {
                            obj.remove(&sub.name);
                        }
                    }
                }
                if let Some(Value::Object(new)) = validated {
                    obj.extend(new);
                }
                put_object(c, key, obj);
            } else {
                match validate_attr(p.attr, &v, &label)? {
                    Some(x) => {
                        c.insert(key, x);
                    }
                    None => {
                        c.remove(&key);
                    }
                }
            }
        }
        // Sub-attribute of every value (single complex, or all values of a multi-valued one).
        (None, Some(sub), _) => {
            if op == Op::Remove && value_given.is_some() {
                ctx.tolerate(Tolerance::RemoveValueIgnored, || {
                    format!("\"remove\" of '{label}' takes no 'value'")
                })?;
            }
            let new = match op {
                Op::Remove => SubChange::Unset,
                _ => sub_change(ctx, sub, value, op, &label)?,
            };
            if p.attr.multi_valued {
                let mut arr = take_array(c, &key);
                let mut touched = Vec::new();
                if arr.is_empty() {
                    if let SubChange::Set(x) = &new {
                        let mut elem = Map::new();
                        elem.insert(sub.name.clone(), x.clone());
                        arr.push(validated_element(p.attr, Value::Object(elem), &label)?);
                        touched.push(0);
                    }
                } else {
                    for (i, elem) in arr.iter_mut().enumerate() {
                        new.apply_to(elem, sub);
                        touched.push(i);
                    }
                }
                drop_empty(&mut arr);
                settle_primary(&mut arr, &touched);
                put_array(c, key, arr);
            } else {
                let mut elem = Value::Object(take_object(c, &key));
                new.apply_to(&mut elem, sub);
                if let Value::Object(obj) = elem {
                    put_object(c, key, obj);
                }
            }
        }
        // Filtered values of a multi-valued attribute.
        (Some(filter), sub, _) => {
            let f = ElementFilter::new(ctx.rt, p, filter)?;
            let mut arr = take_array(c, &key);
            let hits: Vec<usize> = arr
                .iter()
                .enumerate()
                .filter(|(_, e)| f.matches(e))
                .map(|(i, _)| i)
                .collect();
            let mut touched = Vec::new();
            match (op, sub) {
                (Op::Remove, sub) => {
                    if value_given.is_some() {
                        ctx.tolerate(Tolerance::RemoveValueIgnored, || {
                            format!("\"remove\" of '{label}' takes no 'value'")
                        })?;
                    }
                    match sub {
                        None => {
                            let mut i = 0;
                            arr.retain(|_| {
                                i += 1;
                                !hits.contains(&(i - 1))
                            });
                        }
                        Some(sub) => {
                            for &i in &hits {
                                if let Some(elem) = arr.get_mut(i) {
                                    SubChange::Unset.apply_to(elem, sub);
                                }
                            }
                            drop_empty(&mut arr);
                        }
                    }
                }
                (_, None) => {
                    let v = coerce_one(ctx, p.attr, value.unwrap_or(&Value::Null), &label)?;
                    if v.is_null() {
                        if op == Op::Replace {
                            let mut i = 0;
                            arr.retain(|_| {
                                i += 1;
                                !hits.contains(&(i - 1))
                            });
                        }
                    } else if op == Op::Replace {
                        // §3.5.2.3: all matching values are replaced.
                        if hits.is_empty() {
                            return Err(ScimError::no_target(format!(
                                "no value matches '{label}'"
                            )));
                        }
                        let elem = validated_element(p.attr, v, &label)?;
                        for &i in &hits {
                            if let Some(slot) = arr.get_mut(i) {
                                *slot = elem.clone();
                                touched.push(i);
                            }
                        }
                    } else if hits.is_empty() {
                        let template = f.template(p.attr).ok_or_else(|| {
                            ScimError::no_target(format!("no value matches '{label}'"))
                        })?;
                        let mut elem = template;
                        if let Value::Object(given) = validated_element(p.attr, v, &label)? {
                            elem.extend(given);
                        }
                        arr.push(validated_element(p.attr, Value::Object(elem), &label)?);
                        touched.push(arr.len() - 1);
                    } else {
                        let given = validated_element(p.attr, v, &label)?;
                        for &i in &hits {
                            if let (Some(Value::Object(slot)), Value::Object(g)) =
                                (arr.get_mut(i), &given)
                            {
                                slot.extend(g.iter().map(|(k, x)| (k.clone(), x.clone())));
                                touched.push(i);
                            }
                        }
                    }
                }
                (_, Some(sub)) => {
                    let new = sub_change(ctx, sub, value, op, &label)?;
                    if hits.is_empty() {
                        if let SubChange::Set(x) = new {
                            let template = f.template(p.attr).ok_or_else(|| {
                                ScimError::no_target(format!("no value matches '{label}'"))
                            })?;
                            if op == Op::Replace {
                                ctx.tolerate(Tolerance::ReplaceCreatesElement, || {
                                    format!("no value matches '{label}'")
                                })?;
                            }
                            let mut elem = template;
                            elem.insert(sub.name.clone(), x);
                            arr.push(validated_element(p.attr, Value::Object(elem), &label)?);
                            touched.push(arr.len() - 1);
                        }
                    } else {
                        for &i in &hits {
                            if let Some(elem) = arr.get_mut(i) {
                                new.apply_to(elem, sub);
                                touched.push(i);
                            }
                        }
                        drop_empty(&mut arr);
                    }
                }
            }
            settle_primary(&mut arr, &touched);
            put_array(c, key, arr);
        }
    }
    manager_cleanup(ctx, c, p)
}

/// A manager without an id is no manager.
fn manager_cleanup(ctx: &mut Ctx, c: &mut Map<String, Value>, p: &AttrPath) -> Result<()> {
    if !is_manager(p.attr) {
        return Ok(());
    }
    let empty_id = matches!(c.get(&p.attr.name).and_then(|m| m.get("value")), Some(Value::String(s)) if s.trim().is_empty());
    if empty_id {
        ctx.tolerate(Tolerance::EmptyManager, || {
            "'manager.value' must not be empty; remove the manager instead".into()
        })?;
        c.remove(&p.attr.name);
    }
    Ok(())
}

/// What an operation does to one sub-attribute of a value.
enum SubChange {
    Set(Value),
    Unset,
    Keep,
}

impl SubChange {
    fn apply_to(&self, elem: &mut Value, sub: &Attribute) {
        if !elem.is_object() {
            *elem = Value::Object(Map::new());
        }
        if let Value::Object(obj) = elem {
            match self {
                SubChange::Set(x) => {
                    obj.insert(sub.name.clone(), x.clone());
                }
                SubChange::Unset => {
                    obj.remove(&sub.name);
                }
                SubChange::Keep => {}
            }
        }
    }
}

fn sub_change(
    ctx: &mut Ctx,
    sub: &Attribute,
    value: Option<&Value>,
    op: Op,
    label: &str,
) -> Result<SubChange> {
    let v = coerce(ctx, sub, value.unwrap_or(&Value::Null), label)?;
    if v.is_null() {
        return Ok(if op == Op::Replace {
            SubChange::Unset
        } else {
            SubChange::Keep
        });
    }
    Ok(match validate_attr(sub, &v, label)? {
        Some(x) => SubChange::Set(x),
        None => SubChange::Unset,
    })
}

/// One value of a multi-valued attribute, validated and canonicalised.
fn validated_element(attr: &Attribute, v: Value, label: &str) -> Result<Value> {
    match validate_attr(attr, &Value::Array(vec![v]), label)? {
        Some(Value::Array(mut a)) if a.len() == 1 => Ok(a.remove(0)),
        _ => Err(ScimError::invalid_value(format!(
            "'{label}' needs a non-empty value"
        ))),
    }
}

/// `remove` with a value list (a tolerance): drops the values that agree with a listed one on
/// every sub-attribute the listed one gives.
fn remove_listed(
    attr: &Attribute,
    arr: &mut Vec<Value>,
    listed: &Value,
    label: &str,
) -> Result<()> {
    let listed = match validate_attr(attr, listed, label)? {
        Some(Value::Array(a)) => a,
        _ => return Ok(()),
    };
    arr.retain(|elem| !listed.iter().any(|l| agrees(attr, elem, l)));
    Ok(())
}

fn agrees(attr: &Attribute, elem: &Value, listed: &Value) -> bool {
    match (elem, listed) {
        (Value::Object(e), Value::Object(l)) => l.iter().all(|(k, lv)| {
            let case_exact = attr.sub(k).is_none_or(|s| s.case_exact);
            e.get(k).is_some_and(|ev| same_value(ev, lv, case_exact))
        }),
        (e, l) => same_value(e, l, attr.case_exact),
    }
}

fn same_value(a: &Value, b: &Value, case_exact: bool) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) if !case_exact => x.to_lowercase() == y.to_lowercase(),
        _ => a == b,
    }
}

fn take_array(c: &mut Map<String, Value>, key: &str) -> Vec<Value> {
    match c.remove(key) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    }
}

fn put_array(c: &mut Map<String, Value>, key: String, arr: Vec<Value>) {
    if !arr.is_empty() {
        c.insert(key, Value::Array(arr));
    }
}

fn take_object(c: &mut Map<String, Value>, key: &str) -> Map<String, Value> {
    match c.remove(key) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn put_object(c: &mut Map<String, Value>, key: String, obj: Map<String, Value>) {
    if !obj.is_empty() {
        c.insert(key, Value::Object(obj));
    }
}

fn drop_empty(arr: &mut Vec<Value>) {
    arr.retain(|e| !matches!(e, Value::Object(o) if o.is_empty()) && !e.is_null());
}

/// RFC 7643 §2.4: at most one value may be primary. When an operation makes a second one
/// primary, the value it set last wins and the others are set to `false`.
fn settle_primary(arr: &mut [Value], touched: &[usize]) {
    let primaries: Vec<usize> = arr
        .iter()
        .enumerate()
        .filter(|(_, e)| e.get("primary") == Some(&Value::Bool(true)))
        .map(|(i, _)| i)
        .collect();
    if primaries.len() <= 1 {
        return;
    }
    let winner = touched
        .iter()
        .rev()
        .copied()
        .find(|i| primaries.contains(i))
        .or(primaries.last().copied());
    for i in primaries {
        if Some(i) != winner {
            if let Some(Value::Object(o)) = arr.get_mut(i) {
                o.insert("primary".into(), Value::Bool(false));
            }
        }
    }
}

/// Several values given as primary in one array: the last one given wins, before validation
/// (which would refuse two primaries) sees them.
fn settle_given_primary(v: &mut Value) {
    let Value::Array(items) = v else { return };
    let is_primary = |e: &Value| {
        e.as_object().is_some_and(|o| {
            o.iter()
                .any(|(k, x)| k.eq_ignore_ascii_case("primary") && *x == Value::Bool(true))
        })
    };
    let Some(last) = items.iter().rposition(is_primary) else {
        return;
    };
    for (i, e) in items.iter_mut().enumerate() {
        if i == last {
            continue;
        }
        if let Value::Object(o) = e {
            for (k, x) in o.iter_mut() {
                if k.eq_ignore_ascii_case("primary") && *x == Value::Bool(true) {
                    *x = Value::Bool(false);
                }
            }
        }
    }
}

fn is_manager(attr: &Attribute) -> bool {
    attr.name == "manager" && attr.kind == AttrType::Complex && !attr.multi_valued
}

// ---------------------------------------------------------------------------------------------
// Value coercions (tolerances)

/// Rewrites a client value into the shape `attr` expects, accepting the known quirks.
fn coerce(ctx: &mut Ctx, attr: &Attribute, value: &Value, label: &str) -> Result<Value> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    if !attr.multi_valued {
        return coerce_one(ctx, attr, value, label);
    }
    match value {
        Value::Array(items) => items
            .iter()
            .map(|i| coerce_one(ctx, attr, i, label))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array),
        other => {
            ctx.tolerate(Tolerance::SingleValueAsArray, || {
                format!("'{label}' is multi-valued; send an array")
            })?;
            Ok(Value::Array(vec![coerce_one(ctx, attr, other, label)?]))
        }
    }
}

/// Coerces one value (an element, for a multi-valued attribute).
fn coerce_one(ctx: &mut Ctx, attr: &Attribute, value: &Value, label: &str) -> Result<Value> {
    match (attr.kind, value) {
        (AttrType::Boolean, Value::String(s)) => {
            let b = if s.eq_ignore_ascii_case("true") {
                true
            } else if s.eq_ignore_ascii_case("false") {
                false
            } else {
                return Ok(value.clone());
            };
            ctx.tolerate(Tolerance::BooleanString, || {
                format!("'{label}' must be a JSON boolean, not the string \"{s}\"")
            })?;
            Ok(Value::Bool(b))
        }
        (AttrType::Complex, Value::String(s)) if is_manager(attr) => {
            if s.trim().is_empty() {
                ctx.tolerate(Tolerance::EmptyManager, || {
                    format!("'{label}' must be an object, not an empty string")
                })?;
                return Ok(Value::Null);
            }
            ctx.tolerate(Tolerance::ManagerString, || {
                format!("'{label}' must be an object like {{\"value\": \"<id>\"}}")
            })?;
            let mut m = Map::new();
            m.insert("value".into(), value.clone());
            Ok(Value::Object(m))
        }
        (AttrType::Complex, Value::Object(obj)) => {
            if is_manager(attr) {
                let empty_id = obj.iter().any(|(k, v)| {
                    k.eq_ignore_ascii_case("value")
                        && v.as_str().is_some_and(|s| s.trim().is_empty())
                });
                if empty_id {
                    ctx.tolerate(Tolerance::EmptyManager, || {
                        format!("'{label}.value' must not be empty")
                    })?;
                    return Ok(Value::Null);
                }
            }
            let mut out = Map::new();
            for (k, v) in obj {
                let v = match attr.sub(k) {
                    Some(sub) => coerce(ctx, sub, v, &format!("{label}.{}", sub.name))?,
                    None => v.clone(),
                };
                out.insert(k.clone(), v);
            }
            Ok(Value::Object(out))
        }
        _ => Ok(value.clone()),
    }
}

// ---------------------------------------------------------------------------------------------
// Group members

fn members_op(ctx: &mut Ctx, op: Op, p: &AttrPath, value: Option<&Value>) -> Result<()> {
    if let Some(sub) = p.sub {
        return Err(ScimError::mutability(format!(
            "'members.{}' cannot be modified; add or remove members instead",
            sub.name
        )));
    }
    ctx.touch(&Map::new(), None, p.attr);
    let value = value.filter(|v| !v.is_null());
    let member_op = match (op, &p.filter) {
        (Op::Remove, Some(filter)) => {
            if value.is_some() {
                ctx.tolerate(Tolerance::RemoveValueIgnored, || "\"remove\" with a filter takes no 'value'".into())?;
            }
            MemberOp::Remove(member_filter_ids(filter)?)
        }
        (Op::Remove, None) => match value {
            None => MemberOp::RemoveAll,
            Some(v) => {
                ctx.tolerate(Tolerance::RemoveByValue, || {
                    "\"remove\" of 'members' takes no 'value' (it would remove every member); use members[value eq \"<id>\"]"
                        .into()
                })?;
                MemberOp::Remove(member_list(ctx, v)?)
            }
        },
        (Op::Add, None) => match value {
            None => return Ok(()),
            Some(v) => MemberOp::Add(member_list(ctx, v)?),
        },
        (Op::Replace, None) => MemberOp::Replace(match value {
            None => Vec::new(),
            Some(v) => member_list(ctx, v)?,
        }),
        (_, Some(_)) => {
            return Err(ScimError::invalid_path(
                "a filter on 'members' is only supported by \"remove\"; use \"add\" or \"replace\" with path 'members'",
            ))
        }
    };
    match &member_op {
        MemberOp::Add(ids) | MemberOp::Remove(ids) if ids.is_empty() => {}
        _ => ctx.members.push(member_op),
    }
    Ok(())
}

fn member_list(ctx: &mut Ctx, v: &Value) -> Result<Vec<String>> {
    if v.is_object() {
        ctx.tolerate(Tolerance::SingleValueAsArray, || {
            "'members' is multi-valued; send an array".into()
        })?;
        return member_ids(&Value::Array(vec![v.clone()]));
    }
    member_ids(v)
}

/// `members[value eq "a" or value eq "b"]` → the ids. Nothing else can be evaluated without
/// reading the member list, so anything else is refused.
fn member_filter_ids(inner: &str) -> Result<Vec<String>> {
    let refuse = || {
        ScimError::invalid_filter(format!(
            "unsupported member filter '{inner}': only value eq \"<id>\", optionally joined by or, is supported"
        ))
    };
    let filter = value_filter("members", inner)?;
    let mut ids = Vec::new();
    if !eq_ids(&filter, &mut ids) {
        return Err(refuse());
    }
    let mut unique: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if id.is_empty() {
            return Err(ScimError::invalid_value("member ids must not be empty"));
        }
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    Ok(unique)
}

fn eq_ids(f: &Filter, out: &mut Vec<String>) -> bool {
    match f {
        Filter::Compare(c) if is_plain(&c.path, "value") && c.op == CompareOp::Eq => match &c.value
        {
            Literal::String(id) => {
                out.push(id.clone());
                true
            }
            _ => false,
        },
        Filter::Or(terms) => terms.iter().all(|t| eq_ids(t, out)),
        _ => false,
    }
}

/// A filter path naming sub-attribute `name` of the filtered attribute, unqualified.
fn is_plain(p: &FilterPath, name: &str) -> bool {
    p.urn.is_none() && p.sub.is_none() && p.name.eq_ignore_ascii_case(name)
}

/// Parses `attr[inner]` with the filter module and returns the inner filter.
fn value_filter(attr: &str, inner: &str) -> Result<Filter> {
    match crate::filter::parse(&format!("{attr}[{inner}]"))? {
        Filter::ValuePath { filter, .. } => Ok(*filter),
        _ => Err(ScimError::invalid_filter(format!(
            "'{inner}' is not a value filter"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Value filters

/// A value filter of a multi-valued attribute, evaluated by the filter module against a
/// resource holding only the value under test.
struct ElementFilter {
    /// Extension URN holding the attribute, if any.
    ext: Option<String>,
    attr: String,
    inner: Filter,
    bound: crate::filter::Bound,
    rt: ResourceType,
}

impl ElementFilter {
    fn new(rt: ResourceType, p: &AttrPath, inner: &str) -> Result<ElementFilter> {
        // `emails[type eq "work"]` is itself a valid filter on the resource; evaluated against a
        // resource whose `emails` holds exactly one value, it tells whether that value matches.
        // `closing_bracket` guarantees `inner` has no unquoted bracket, so it cannot escape.
        let text = format!("{}[{inner}]", p.name());
        let parsed = crate::filter::parse(&text)?;
        let bound = crate::filter::bind(&parsed, Some(rt))?;
        let inner = match parsed {
            Filter::ValuePath { filter, .. } => *filter,
            _ => {
                return Err(ScimError::invalid_filter(format!(
                    "'{inner}' is not a value filter"
                )))
            }
        };
        Ok(ElementFilter {
            ext: p.ext.map(|e| e.id.clone()),
            attr: p.attr.name.clone(),
            inner,
            bound,
            rt,
        })
    }

    fn matches(&self, elem: &Value) -> bool {
        let mut holder = Map::new();
        holder.insert(self.attr.clone(), Value::Array(vec![elem.clone()]));
        let mut resource = Map::new();
        resource.insert(
            "schemas".into(),
            Value::Array(vec![Value::String(self.rt.core_schema().id.clone())]),
        );
        match &self.ext {
            Some(urn) => {
                resource.insert(urn.clone(), Value::Object(holder));
            }
            None => resource.extend(holder),
        }
        self.bound.matches(&Value::Object(resource))
    }

    /// The value an `add` (or tolerated `replace`) creates when nothing matches: possible only
    /// for `sub eq literal [and sub eq literal …]`, e.g. `emails[type eq "work"]`.
    fn template(&self, attr: &Attribute) -> Option<Map<String, Value>> {
        let mut out = Map::new();
        template_of(&self.inner, attr, &mut out).then_some(out)
    }
}

fn template_of(f: &Filter, attr: &Attribute, out: &mut Map<String, Value>) -> bool {
    match f {
        Filter::Compare(c)
            if c.op == CompareOp::Eq && c.path.urn.is_none() && c.path.sub.is_none() =>
        {
            let Some(sub) = attr.sub(&c.path.name) else {
                return false;
            };
            let lit = match &c.value {
                Literal::String(s) => Value::String(s.clone()),
                Literal::Integer(i) => Value::from(*i),
                Literal::Decimal(d) => match serde_json::Number::from_f64(*d) {
                    Some(n) => Value::Number(n),
                    None => return false,
                },
                Literal::Bool(b) => Value::Bool(*b),
                Literal::Null => return false,
            };
            match out.get(&sub.name) {
                Some(existing) if *existing != lit => false,
                _ => {
                    out.insert(sub.name.clone(), lit);
                    true
                }
            }
        }
        Filter::And(terms) => terms.iter().all(|t| template_of(t, attr, out)),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Result

/// A top-level attribute an operation addressed: an attribute of the core schema (or a
/// common one), or of extension `ext`.
#[derive(Debug, Clone, Copy)]
struct Touched {
    ext: Option<&'static Schema>,
    attr: &'static Attribute,
}

impl PartialEq for Touched {
    /// The schema registry is static: the same attribute is the same reference.
    fn eq(&self, other: &Touched) -> bool {
        std::ptr::eq(self.attr, other.attr)
            && match (self.ext, other.ext) {
                (None, None) => true,
                (Some(a), Some(b)) => std::ptr::eq(a, b),
                _ => false,
            }
    }
}

impl Touched {
    /// Canonical name, as reported in `changed` (`emails`, `urn:…:User:department`).
    fn name(&self) -> String {
        match self.ext {
            Some(e) => format!("{}:{}", e.id, self.attr.name),
            None => self.attr.name.clone(),
        }
    }

    fn value_in<'a>(&self, data: &'a Map<String, Value>) -> Option<&'a Value> {
        match self.ext {
            Some(e) => data.get(&e.id)?.get(&self.attr.name),
            None => data.get(&self.attr.name),
        }
    }
}

/// The touched attributes whose value differs. Only touched attributes can differ: operations
/// write nothing else, and [`resource::revalidate_touched`] rewrites nothing else (the tests
/// check this against a full comparison on every outcome).
fn changed_names(ctx: &Ctx, after: &Map<String, Value>) -> Vec<String> {
    ctx.touched
        .iter()
        .zip(&ctx.before)
        .filter(|(t, before)| {
            if t.ext.is_none() && t.attr.name == "members" && ctx.rt == ResourceType::Group {
                !ctx.members.is_empty()
            } else {
                before.as_ref() != t.value_in(after)
            }
        })
        .map(|(t, _)| t.name())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ENTERPRISE_USER_SCHEMA as ENT;
    use serde_json::json;
    use std::collections::BTreeMap;

    const U: ResourceType = ResourceType::User;
    const G: ResourceType = ResourceType::Group;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn body(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
    }

    fn user() -> Map<String, Value> {
        obj(json!({
            "userName": "bjensen@example.com",
            "active": true,
            "displayName": "Babs",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}]
        }))
    }

    fn group() -> Map<String, Value> {
        obj(json!({"displayName": "Engineering", "externalId": "e-1"}))
    }

    /// Re-validates the patched data as a whole resource, exactly as a PUT of it would be.
    fn revalidate(rt: ResourceType, data: Map<String, Value>) -> Result<Map<String, Value>> {
        let mut schemas = vec![Value::String(rt.core_schema().id.clone())];
        for ext in rt.extensions() {
            if data.contains_key(&ext.id) {
                schemas.push(Value::String(ext.id.clone()));
            }
        }
        let mut body = data;
        body.insert("schemas".into(), Value::Array(schemas));
        Ok(resource::validate(rt, &Value::Object(body))?.data)
    }

    /// Stored attributes by canonical name, extension attributes as `urn:…:attr`.
    fn flatten(rt: ResourceType, data: &Map<String, Value>) -> BTreeMap<String, &Value> {
        let mut out = BTreeMap::new();
        for (k, v) in data {
            match (rt.extension(k), v) {
                (Some(ext), Value::Object(m)) => {
                    for (sk, sv) in m {
                        out.insert(format!("{}:{sk}", ext.id), sv);
                    }
                }
                _ => {
                    out.insert(k.clone(), v);
                }
            }
        }
        out
    }

    /// Checks an outcome against the whole-resource definitions that `apply` shortcuts:
    /// re-validating everything changes nothing, and `changed` names exactly the attributes
    /// that differ (in any order; `members` aside).
    fn check_outcome(rt: ResourceType, before: &Map<String, Value>, o: &PatchOutcome) {
        let again = revalidate(rt, o.data.clone()).expect("outcome re-validates");
        assert_eq!(again, o.data, "outcome is in stored shape");
        let (old, new) = (flatten(rt, before), flatten(rt, &o.data));
        let mut differing: Vec<&String> = old
            .keys()
            .chain(new.keys())
            .filter(|k| old.get(*k) != new.get(*k))
            .collect();
        differing.sort();
        differing.dedup();
        let mut reported: Vec<&String> = o.changed.iter().filter(|n| *n != "members").collect();
        reported.sort();
        assert_eq!(reported, differing, "changed names what differs");
    }

    /// `apply_text` on the stored text of `current` agrees with `apply` on its parsed form:
    /// the same text a full write would store (or none when nothing changed), the same
    /// changes, member operations and tolerances, the same errors.
    fn check_text_path(
        rt: ResourceType,
        current: &Map<String, Value>,
        body: &Value,
        strict: bool,
        full: &Result<PatchOutcome>,
    ) {
        let stored = serde_json::to_string(current).expect("serialises");
        match (full, apply_text(rt, &stored, body, strict)) {
            (Ok(o), Ok(t)) => {
                let data_changed = o.changed.iter().any(|n| n != "members");
                let expected =
                    data_changed.then(|| serde_json::to_string(&o.data).expect("serialises"));
                assert_eq!(t.data, expected, "{body}");
                assert_eq!(t.changed, o.changed, "{body}");
                assert_eq!(t.members, o.members, "{body}");
                assert_eq!(t.tolerances, o.tolerances, "{body}");
                let inactive = o.data.get("active") == Some(&Value::Bool(false));
                if t.deactivating {
                    assert!(inactive, "{body}");
                }
                if inactive && o.changed.iter().any(|n| n == "active") {
                    assert!(t.deactivating, "{body}");
                }
            }
            (Err(a), Err(b)) => {
                assert_eq!((a.status, a.scim_type), (b.status, b.scim_type), "{body}");
                assert_eq!(a.detail, b.detail, "{body}");
            }
            (a, b) => panic!("{body}: apply gave {a:?}, apply_text gave {b:?}"),
        }
    }

    fn ok(rt: ResourceType, data: &Map<String, Value>, body: &Value) -> PatchOutcome {
        let result = apply(rt, data, body, false);
        check_text_path(rt, data, body, false, &result);
        match result {
            Ok(o) => {
                // Whatever PATCH produces, a PUT of it would have been accepted.
                check_outcome(rt, data, &o);
                o
            }
            Err(e) => panic!("{body}: {e}"),
        }
    }

    fn fails(
        rt: ResourceType,
        data: &Map<String, Value>,
        body: &Value,
        strict: bool,
    ) -> (u16, &'static str) {
        let result = apply(rt, data, body, strict);
        check_text_path(rt, data, body, strict, &result);
        match result {
            Ok(o) => panic!("{body} succeeded: {:?}", o.data),
            Err(e) => (e.status, e.scim_type.map(|t| t.as_str()).unwrap_or("")),
        }
    }

    // --- Microsoft Entra ID, shapes from "Known issues and resolutions with SCIM 2.0 protocol
    // compliance" and the SCIM endpoint tutorial (learn.microsoft.com).

    #[test]
    fn entra_disable_user_without_flag() {
        let b = body(json!([{"op": "Replace", "path": "active", "value": "False"}]));
        let o = ok(U, &user(), &b);
        assert_eq!(o.data["active"], false);
        assert_eq!(o.changed, vec!["active"]);
        assert_eq!(
            o.tolerances,
            vec![Tolerance::CapitalizedOp, Tolerance::BooleanString]
        );
        let b = body(json!([{"op": "Replace", "path": "active", "value": "TRUE"}]));
        let mut inactive = user();
        inactive.insert("active".into(), json!(false));
        assert_eq!(ok(U, &inactive, &b).data["active"], true);
    }

    #[test]
    fn entra_disable_user_with_flag() {
        let b = json!({"Operations": [{"op": "replace", "path": "active", "value": false}],
            "schemas": [PATCH_OP_SCHEMA]});
        for strict in [false, true] {
            let o = apply(U, &user(), &b, strict).expect("compliant");
            assert_eq!(o.data["active"], false);
            assert!(o.tolerances.is_empty());
        }
    }

    #[test]
    fn entra_add_single_value_string_attribute() {
        let without = body(json!([{"op": "Add", "path": "nickName", "value": "Babs"}]));
        let with = body(json!([{"op": "add", "path": "nickName", "value": "Babs"}]));
        let o = ok(U, &user(), &without);
        assert_eq!(o.data["nickName"], "Babs");
        assert_eq!(o.tolerances, vec![Tolerance::CapitalizedOp]);
        let o = apply(U, &user(), &with, true).expect("compliant");
        assert_eq!(o.data["nickName"], "Babs");
        assert_eq!(o.changed, vec!["nickName"]);
    }

    #[test]
    fn entra_replace_multiple_attributes_without_flag() {
        let b = body(json!([
            {"op": "Replace", "path": "displayName", "value": "Pvlo"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "TestBcwqnm@test.microsoft.com"},
            {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
            {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
            {"op": "Replace", "path": "externalId", "value": "Eqpj"},
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "Eqpj"}
        ]));
        let o = ok(U, &user(), &b);
        assert_eq!(o.data["displayName"], "Pvlo");
        assert_eq!(
            o.data["emails"],
            json!([{"value": "TestBcwqnm@test.microsoft.com", "type": "work", "primary": true}])
        );
        assert_eq!(
            o.data["name"],
            json!({"givenName": "Gtfd", "familyName": "Pkqf"})
        );
        assert_eq!(o.data["externalId"], "Eqpj");
        assert_eq!(o.data[ENT], json!({"employeeNumber": "Eqpj"}));
        assert_eq!(
            o.changed,
            vec![
                "displayName",
                "emails",
                "name",
                "externalId",
                &format!("{ENT}:employeeNumber")
            ]
        );
        assert_eq!(o.tolerances, vec![Tolerance::CapitalizedOp]);
    }

    #[test]
    fn entra_replace_multiple_attributes_with_flag() {
        let b = body(json!([
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "TestMhvaes@test.microsoft.com"},
            {"op": "replace", "value": {
                "displayName": "Bjfe",
                "name.givenName": "Kkom",
                "name.familyName": "Unua",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq"
            }}
        ]));
        let o = apply(U, &user(), &b, true).expect("compliant");
        assert_eq!(
            o.data["emails"][0]["value"],
            "TestMhvaes@test.microsoft.com"
        );
        assert_eq!(o.data["displayName"], "Bjfe");
        assert_eq!(
            o.data["name"],
            json!({"givenName": "Kkom", "familyName": "Unua"})
        );
        assert_eq!(o.data[ENT]["employeeNumber"], "Aklq");
        assert!(o.tolerances.is_empty());
    }

    #[test]
    fn entra_mixed_request_from_the_field() {
        let b = body(json!([
            {"op": "Replace", "path": "displayName", "value": "Ryan Leenay"},
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "x@y"},
            {"op": "Replace", "value": {
                "name.givenName": "A",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "D",
                "active": "False"
            }}
        ]));
        let mut current = user();
        current.remove("emails");
        let o = ok(U, &current, &b);
        assert_eq!(o.data["displayName"], "Ryan Leenay");
        assert_eq!(o.data["emails"], json!([{"type": "work", "value": "x@y"}]));
        assert_eq!(
            o.data["name"],
            json!({"givenName": "A", "familyName": "Jensen"})
        );
        assert_eq!(o.data[ENT], json!({"department": "D"}));
        assert_eq!(o.data["active"], false);
        assert_eq!(
            o.tolerances,
            vec![Tolerance::CapitalizedOp, Tolerance::BooleanString]
        );
        // Keys of a path-less value apply in key order (serde_json maps are sorted).
        assert_eq!(
            o.changed,
            vec![
                "displayName",
                "emails",
                "active",
                "name",
                &format!("{ENT}:department")
            ]
        );
    }

    #[test]
    fn entra_tutorial_update_user_multi_valued_and_single_valued() {
        let b = body(json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
        ]));
        let o = ok(U, &user(), &b);
        assert_eq!(
            o.data["emails"][0],
            json!({"value": "updatedEmail@microsoft.com", "type": "work", "primary": true})
        );
        assert_eq!(o.data["name"]["familyName"], "updatedFamilyName");
        let b = body(
            json!([{"op": "Replace", "path": "userName", "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}]),
        );
        assert_eq!(
            ok(U, &user(), &b).data["userName"],
            "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
        );
    }

    #[test]
    fn work_email_and_address_are_created_when_missing() {
        let mut current = user();
        current.insert(
            "emails".into(),
            json!([{"value": "home@x", "type": "home"}]),
        );
        // add: RFC-wise fine, no tolerance.
        let b = body(json!([
            {"op": "add", "path": "emails[type eq \"work\"].value", "value": "work@x"},
            {"op": "add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"},
            {"op": "add", "path": "addresses[type eq \"work\"].locality", "value": "Springfield"},
            {"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"}
        ]));
        let o = apply(U, &current, &b, true).expect("add creates");
        assert_eq!(
            o.data["emails"],
            json!([{"value": "home@x", "type": "home"}, {"value": "work@x", "type": "work"}])
        );
        assert_eq!(
            o.data["addresses"],
            json!([{"type": "work", "streetAddress": "1 Main St", "locality": "Springfield"}])
        );
        assert_eq!(
            o.data["phoneNumbers"],
            json!([{"type": "mobile", "value": "+1 555"}])
        );
        assert!(o.tolerances.is_empty());
        // replace: Entra relies on it; a tolerance.
        let b = body(
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "work@x"}]),
        );
        let o = ok(U, &current, &b);
        assert_eq!(
            o.data["emails"][1],
            json!({"value": "work@x", "type": "work"})
        );
        assert_eq!(o.tolerances, vec![Tolerance::ReplaceCreatesElement]);
        assert_eq!(fails(U, &current, &b, true), (400, "noTarget"));
    }

    #[test]
    fn entra_manager_as_bare_id() {
        let b = body(json!([{"op": "Add",
            "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "value": "2819c223-7f76-453a-919d-413861904646"}]));
        let o = ok(U, &user(), &b);
        assert_eq!(
            o.data[ENT]["manager"],
            json!({"value": "2819c223-7f76-453a-919d-413861904646"})
        );
        assert_eq!(
            o.tolerances,
            vec![Tolerance::CapitalizedOp, Tolerance::ManagerString]
        );
        assert_eq!(o.changed, vec![format!("{ENT}:manager")]);
        // The same, path-less, and under the extension object.
        for v in [
            json!({format!("{ENT}:manager"): "m-2"}),
            json!({ENT: {"manager": "m-2"}}),
        ] {
            let b = body(json!([{"op": "replace", "value": v}]));
            assert_eq!(
                ok(U, &user(), &b).data[ENT]["manager"],
                json!({"value": "m-2"})
            );
        }
        // The RFC shape needs no tolerance.
        let b = body(
            json!([{"op": "replace", "path": format!("{ENT}:manager"), "value": {"value": "m-3"}}]),
        );
        let o = apply(U, &user(), &b, true).expect("compliant");
        assert_eq!(o.data[ENT]["manager"], json!({"value": "m-3"}));
        let b = body(
            json!([{"op": "replace", "path": format!("{ENT}:manager.value"), "value": "m-4"}]),
        );
        assert_eq!(
            apply(U, &user(), &b, true).expect("compliant").data[ENT]["manager"],
            json!({"value": "m-4"})
        );
    }

    fn managed() -> Map<String, Value> {
        let mut u = user();
        u.insert(
            ENT.into(),
            json!({"department": "Eng", "manager": {"value": "m-1"}}),
        );
        u
    }

    #[test]
    fn entra_manager_removal() {
        let b = body(
            json!([{"op": "Remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}]),
        );
        let o = ok(U, &managed(), &b);
        assert_eq!(o.data[ENT], json!({"department": "Eng"}));
        assert_eq!(o.changed, vec![format!("{ENT}:manager")]);
        // Removing the last extension attribute removes the extension.
        let mut only_manager = user();
        only_manager.insert(ENT.into(), json!({"manager": {"value": "m-1"}}));
        let o = ok(U, &only_manager, &b);
        assert!(!o.data.contains_key(ENT));
        // Removing it again is not an error.
        assert_eq!(ok(U, &o.data, &b).data, o.data);
    }

    #[test]
    fn manager_cleared_by_empty_values() {
        let path = format!("{ENT}:manager");
        let cases = [
            (json!({"op": "Replace", "path": path, "value": ""}), true),
            (
                json!({"op": "replace", "path": path, "value": {"value": ""}}),
                true,
            ),
            (
                json!({"op": "replace", "path": format!("{path}.value"), "value": ""}),
                true,
            ),
            (json!({"op": "replace", "value": {path.clone(): ""}}), true),
            (json!({"op": "Add", "path": path, "value": ""}), true),
            (
                json!({"op": "add", "path": path, "value": {"value": " "}}),
                true,
            ),
            (json!({"op": "replace", "path": path, "value": null}), false),
            (
                json!({"op": "replace", "value": {ENT: {"manager": null}}}),
                false,
            ),
        ];
        for (op, tolerated) in cases {
            let b = body(json!([op]));
            let o = ok(U, &managed(), &b);
            assert_eq!(o.data[ENT], json!({"department": "Eng"}), "{b}");
            assert_eq!(
                o.tolerances.contains(&Tolerance::EmptyManager),
                tolerated,
                "{b}"
            );
            if tolerated {
                assert_eq!(fails(U, &managed(), &b, true).0, 400, "{b}");
            } else {
                apply(U, &managed(), &b, true).expect("null clears in strict mode too");
            }
        }
    }

    #[test]
    fn entra_group_rename() {
        let b = body(
            json!([{"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]),
        );
        let o = ok(G, &group(), &b);
        assert_eq!(
            o.data["displayName"],
            "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
        );
        assert!(o.members.is_empty());
        assert_eq!(o.changed, vec!["displayName"]);
    }

    #[test]
    fn entra_group_add_members() {
        let b = body(
            json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}]),
        );
        let o = ok(G, &group(), &b);
        assert_eq!(
            o.members,
            vec![MemberOp::Add(vec!["f648f8d5ea4e4cd38e9c".into()])]
        );
        assert_eq!(o.data, group());
        assert_eq!(o.changed, vec!["members"]);
        let b = body(json!([{"op": "add", "path": "members", "value": [
            {"value": "u1"}, {"value": "u2", "type": "User"}, {"value": "g1", "type": "Group", "display": "Nested"}, {"value": "u1"}
        ]}]));
        let o = apply(G, &group(), &b, true).expect("compliant");
        assert_eq!(
            o.members,
            vec![MemberOp::Add(vec!["u1".into(), "u2".into(), "g1".into()])]
        );
    }

    #[test]
    fn entra_group_remove_member_without_flag() {
        let b = body(json!([{"op": "Remove", "path": "members", "value": [{"value": "u1091"}]}]));
        let o = ok(G, &group(), &b);
        assert_eq!(o.members, vec![MemberOp::Remove(vec!["u1091".into()])]);
        assert_eq!(
            o.tolerances,
            vec![Tolerance::CapitalizedOp, Tolerance::RemoveByValue]
        );
        // Entra's tutorial variant with "$ref": null.
        let b = body(
            json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}]),
        );
        assert_eq!(
            ok(G, &group(), &b).members,
            vec![MemberOp::Remove(vec!["f648f8d5ea4e4cd38e9c".into()])]
        );
    }

    #[test]
    fn entra_group_remove_member_with_flag() {
        let b = body(
            json!([{"op": "remove", "path": "members[value eq \"7f4bc1a3-285e-48ae-8202-5accb43efb0e\"]"}]),
        );
        let o = apply(G, &group(), &b, true).expect("compliant");
        assert_eq!(
            o.members,
            vec![MemberOp::Remove(vec![
                "7f4bc1a3-285e-48ae-8202-5accb43efb0e".into()
            ])]
        );
        assert!(o.tolerances.is_empty());
    }

    // --- Okta, shapes from Okta's SCIM 2.0 provisioning reference.

    #[test]
    fn okta_deactivate_user() {
        let b = body(json!([{"op": "replace", "value": {"active": false}}]));
        let o = apply(U, &user(), &b, true).expect("compliant");
        assert_eq!(o.data["active"], false);
        assert_eq!(o.changed, vec!["active"]);
    }

    #[test]
    fn okta_group_rename_sends_the_id() {
        let b = body(
            json!([{"op": "replace", "value": {"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b", "displayName": "Test SCIMv2"}}]),
        );
        let o = ok(G, &group(), &b);
        assert_eq!(o.data["displayName"], "Test SCIMv2");
        assert!(!o.data.contains_key("id"));
        assert_eq!(o.tolerances, vec![Tolerance::ReadOnlyIgnored]);
        assert_eq!(fails(G, &group(), &b, true), (400, "mutability"));
    }

    #[test]
    fn okta_group_membership_changes_keep_request_order() {
        let b = body(json!([
            {"op": "remove", "path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"]"},
            {"op": "add", "path": "members", "value": [
                {"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"},
                {"value": "89bb1940-b905-4575-9e7f-6f887cfb368e", "display": "test.user@okta.local"}
            ]}
        ]));
        let o = apply(G, &group(), &b, true).expect("compliant");
        assert_eq!(
            o.members,
            vec![
                MemberOp::Remove(vec!["89bb1940-b905-4575-9e7f-6f887cfb368e".into()]),
                MemberOp::Add(vec![
                    "23a35c27-23d3-4c03-b4c5-6443c09e7173".into(),
                    "89bb1940-b905-4575-9e7f-6f887cfb368e".into()
                ]),
            ]
        );
    }

    #[test]
    fn okta_replace_members() {
        let b = body(
            json!([{"op": "replace", "path": "members", "value": [{"value": "u1", "display": "a"}, {"value": "u2"}]}]),
        );
        let o = apply(G, &group(), &b, true).expect("compliant");
        assert_eq!(
            o.members,
            vec![MemberOp::Replace(vec!["u1".into(), "u2".into()])]
        );
        let b = body(json!([{"op": "replace", "path": "members", "value": []}]));
        assert_eq!(ok(G, &group(), &b).members, vec![MemberOp::Replace(vec![])]);
        // Path-less, together with a rename.
        let b = body(
            json!([{"op": "replace", "value": {"displayName": "New", "members": [{"value": "u3"}]}}]),
        );
        let o = ok(G, &group(), &b);
        assert_eq!(o.data["displayName"], "New");
        assert_eq!(o.members, vec![MemberOp::Replace(vec!["u3".into()])]);
        assert_eq!(o.changed, vec!["displayName", "members"]);
        let b = body(json!([{"op": "add", "value": {"members": [{"value": "u4"}]}}]));
        assert_eq!(
            ok(G, &group(), &b).members,
            vec![MemberOp::Add(vec!["u4".into()])]
        );
    }

    #[test]
    fn okta_password_sync_is_accepted_but_never_stored() {
        let b = body(json!([{"op": "replace", "value": {"password": "t1meMa$heen"}}]));
        let o = apply(U, &user(), &b, true).expect("compliant");
        assert_eq!(o.data, user());
        assert!(o.changed.is_empty());
        let b = body(json!([{"op": "replace", "path": "password", "value": 5}]));
        assert_eq!(fails(U, &user(), &b, false), (400, "invalidValue"));
    }

    // --- Members beyond the client shapes above.

    #[test]
    fn member_removal_forms() {
        let b = body(
            json!([{"op": "remove", "path": "members[value eq \"a\" or value eq \"b\" or (value eq \"a\")]"}]),
        );
        assert_eq!(
            ok(G, &group(), &b).members,
            vec![MemberOp::Remove(vec!["a".into(), "b".into()])]
        );
        let b = body(json!([{"op": "remove", "path": "members"}]));
        assert_eq!(
            apply(G, &group(), &b, true).expect("compliant").members,
            vec![MemberOp::RemoveAll]
        );
        let b = body(
            json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:core:2.0:Group:Members[VALUE EQ \"x\"]"}]),
        );
        assert_eq!(
            ok(G, &group(), &b).members,
            vec![MemberOp::Remove(vec!["x".into()])]
        );
        let b = body(json!([{"op": "replace", "path": "members", "value": null}]));
        assert_eq!(ok(G, &group(), &b).members, vec![MemberOp::Replace(vec![])]);
    }

    #[test]
    fn member_errors() {
        let cases = [
            (
                json!({"op": "remove", "path": "members[display eq \"x\"]"}),
                "invalidFilter",
            ),
            (
                json!({"op": "remove", "path": "members[value eq \"x\" and type eq \"User\"]"}),
                "invalidFilter",
            ),
            (
                json!({"op": "remove", "path": "members[value co \"x\"]"}),
                "invalidFilter",
            ),
            (
                json!({"op": "remove", "path": "members[value eq 5]"}),
                "invalidFilter",
            ),
            (
                json!({"op": "remove", "path": "members[value eq \"\"]"}),
                "invalidValue",
            ),
            (
                json!({"op": "remove", "path": "members[value eq \"x\""}),
                "invalidPath",
            ),
            (
                json!({"op": "remove", "path": "members[value eq]"}),
                "invalidFilter",
            ),
            (
                json!({"op": "replace", "path": "members[value eq \"x\"].value", "value": "y"}),
                "mutability",
            ),
            (
                json!({"op": "add", "path": "members.display", "value": "y"}),
                "mutability",
            ),
            (
                json!({"op": "replace", "path": "members[value eq \"x\"]", "value": {"value": "y"}}),
                "invalidPath",
            ),
            (
                json!({"op": "add", "path": "members", "value": "u1"}),
                "invalidValue",
            ),
            (
                json!({"op": "add", "path": "members", "value": [{"display": "x"}]}),
                "invalidValue",
            ),
            (
                json!({"op": "add", "path": "members", "value": [{"value": ""}]}),
                "invalidValue",
            ),
            (
                json!({"op": "add", "path": "members", "value": [{"value": 7}]}),
                "invalidValue",
            ),
            (
                json!({"op": "add", "path": "members", "value": [{"value": "u", "type": "Device"}]}),
                "invalidValue",
            ),
            (
                json!({"op": "add", "path": "members", "value": [{"value": "u", "nope": 1}]}),
                "invalidSyntax",
            ),
        ];
        for (op, scim_type) in cases {
            let b = body(json!([op]));
            assert_eq!(fails(G, &group(), &b, false), (400, scim_type), "{b}");
        }
    }

    #[test]
    fn members_is_not_a_user_attribute() {
        let b = body(json!([{"op": "add", "path": "members", "value": [{"value": "x"}]}]));
        assert_eq!(fails(U, &user(), &b, false), (400, "invalidPath"));
    }

    // --- RFC semantics.

    #[test]
    fn multi_valued_add_appends_and_dedupes() {
        let b = body(json!([{"op": "add", "path": "emails", "value": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@home", "type": "home"}
        ]}]));
        let o = apply(U, &user(), &b, true).expect("compliant");
        assert_eq!(o.data["emails"].as_array().map(Vec::len), Some(2));
        assert_eq!(o.data["emails"][1]["value"], "babs@home");
        // Nothing new: nothing changed.
        let o = ok(U, &o.data, &b);
        assert_eq!(o.data["emails"].as_array().map(Vec::len), Some(2));
        assert!(o.changed.is_empty());
    }

    #[test]
    fn a_new_primary_clears_the_old_one() {
        let b = body(
            json!([{"op": "add", "path": "emails", "value": [{"value": "new@x", "type": "other", "primary": true}]}]),
        );
        let o = apply(U, &user(), &b, true).expect("compliant");
        assert_eq!(o.data["emails"][0]["primary"], false);
        assert_eq!(o.data["emails"][1]["primary"], true);
        // Setting primary on an earlier value by filter: the one set wins, not the last one.
        let b = body(
            json!([{"op": "replace", "path": "emails[type eq \"work\"].primary", "value": true}]),
        );
        let o2 = apply(U, &o.data, &b, true).expect("compliant");
        assert_eq!(o2.data["emails"][0]["primary"], true);
        assert_eq!(o2.data["emails"][1]["primary"], false);
        // Two primaries in one replace: the last given wins.
        let b = body(json!([{"op": "replace", "path": "emails", "value": [
            {"value": "a@x", "primary": true}, {"value": "b@x", "primary": true}
        ]}]));
        let o3 = ok(U, &user(), &b);
        assert_eq!(
            o3.data["emails"],
            json!([{"value": "a@x", "primary": false}, {"value": "b@x", "primary": true}])
        );
    }

    #[test]
    fn complex_add_and_replace_merge_sub_attributes() {
        for op in ["add", "replace"] {
            let b = body(
                json!([{"op": op, "path": "name", "value": {"middleName": "J", "givenName": null}}]),
            );
            let o = apply(U, &user(), &b, true).expect("compliant");
            assert_eq!(
                o.data["name"],
                json!({"familyName": "Jensen", "middleName": "J"}),
                "{op}"
            );
        }
        let b = body(json!([{"op": "replace", "path": "name", "value": null}]));
        assert!(!ok(U, &user(), &b).data.contains_key("name"));
        let b = body(json!([{"op": "replace", "path": "name.familyName", "value": null}]));
        assert_eq!(
            ok(U, &user(), &b).data["name"],
            json!({"givenName": "Barbara"})
        );
    }

    #[test]
    fn replace_multi_valued_replaces_the_list() {
        let b = body(json!([{"op": "replace", "path": "emails", "value": [{"value": "only@x"}]}]));
        assert_eq!(
            ok(U, &user(), &b).data["emails"],
            json!([{"value": "only@x"}])
        );
        let b = body(json!([{"op": "replace", "path": "emails", "value": []}]));
        assert!(!ok(U, &user(), &b).data.contains_key("emails"));
    }

    #[test]
    fn filtered_replace_and_add_without_sub_attribute() {
        let mut current = user();
        current.insert("emails".into(), json!([{"value": "w@x", "type": "work"}, {"value": "h@x", "type": "home", "display": "H"}]));
        let b = body(
            json!([{"op": "replace", "path": "emails[type eq \"home\"]", "value": {"value": "h2@x", "type": "home"}}]),
        );
        assert_eq!(
            ok(U, &current, &b).data["emails"][1],
            json!({"value": "h2@x", "type": "home"})
        );
        let b = body(
            json!([{"op": "add", "path": "emails[type eq \"home\"]", "value": {"primary": true}}]),
        );
        assert_eq!(
            ok(U, &current, &b).data["emails"][1],
            json!({"value": "h@x", "type": "home", "display": "H", "primary": true})
        );
        let b = body(
            json!([{"op": "add", "path": "emails[type eq \"other\"]", "value": {"value": "o@x"}}]),
        );
        assert_eq!(
            ok(U, &current, &b).data["emails"][2],
            json!({"value": "o@x", "type": "other"})
        );
        let b = body(
            json!([{"op": "replace", "path": "emails[type eq \"other\"]", "value": {"value": "o@x"}}]),
        );
        assert_eq!(fails(U, &current, &b, false), (400, "noTarget"));
    }

    #[test]
    fn remove_forms_are_idempotent() {
        let mut current = user();
        current.insert("emails".into(), json!([{"value": "w@x", "type": "work", "display": "W"}, {"value": "h@x", "type": "home"}]));
        let cases = [
            (
                "emails[type eq \"home\"]",
                json!([{"value": "w@x", "type": "work", "display": "W"}]),
            ),
            (
                "emails[type eq \"work\"].display",
                json!([{"value": "w@x", "type": "work"}, {"value": "h@x", "type": "home"}]),
            ),
            (
                "emails[value eq \"W@X\"]",
                json!([{"value": "h@x", "type": "home"}]),
            ),
            (
                "emails.display",
                json!([{"value": "w@x", "type": "work"}, {"value": "h@x", "type": "home"}]),
            ),
            ("emails[type eq \"nope\"]", current["emails"].clone()),
        ];
        for (path, expected) in cases {
            let b = body(json!([{"op": "remove", "path": path}]));
            let o = apply(U, &current, &b, true).expect(path);
            assert_eq!(o.data["emails"], expected, "{path}");
            let again = apply(U, &o.data, &b, true).expect(path);
            assert_eq!(again.data, o.data, "{path} twice");
        }
        let with_ext = {
            let mut m = managed();
            m.insert("emails".into(), current["emails"].clone());
            m
        };
        let dept = format!("{ENT}:department");
        let cases = [
            ("emails", None),
            ("nickName", Some("nickName")),
            ("name.middleName", Some("name")),
            ("name.givenName", Some("name")),
            ("addresses[type eq \"work\"]", Some("addresses")),
            ("addresses[type eq \"work\"].region", Some("addresses")),
            (dept.as_str(), None),
            (ENT, None),
        ];
        for (path, unchanged) in cases {
            let b = body(json!([{"op": "remove", "path": path}]));
            let o = apply(U, &with_ext, &b, true).expect(path);
            if let Some(key) = unchanged {
                if path != "name.givenName" {
                    assert_eq!(o.data.get(key), with_ext.get(key), "{path}");
                }
            }
            assert_eq!(
                apply(U, &o.data, &b, true).expect(path).data,
                o.data,
                "{path} twice"
            );
        }
        let b = body(json!([{"op": "remove", "path": "name.givenName"}]));
        assert_eq!(
            ok(U, &with_ext, &b).data["name"],
            json!({"familyName": "Jensen"})
        );
        let b = body(json!([{"op": "remove", "path": dept}]));
        assert_eq!(
            ok(U, &with_ext, &b).data[ENT],
            json!({"manager": {"value": "m-1"}})
        );
        let b = body(json!([{"op": "remove", "path": "emails"}]));
        assert!(!ok(U, &with_ext, &b).data.contains_key("emails"));
        // Removing every email's only sub-attribute removes the emails.
        let b = body(json!([{"op": "remove", "path": "emails[type eq \"x\" or type pr]"}]));
        assert!(!ok(U, &current, &b).data.contains_key("emails"));
    }

    #[test]
    fn names_are_case_insensitive_and_canonicalised() {
        let b = body(json!([
            {"op": "replace", "path": "UserName", "value": "x@y"},
            {"op": "replace", "path": "EMAILS[TYPE EQ \"WORK\"].VALUE", "value": "w@y"},
            {"op": "add", "path": "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:Department", "value": "D"},
            {"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:User:Name.GivenName", "value": "G"},
            {"op": "replace", "value": {"DisplayName": "Dee", "NAME.familyname": "F"}},
            {"op": "add", "path": "Emails", "value": [{"Value": "n@y", "Type": "other"}]}
        ]));
        let o = apply(U, &user(), &b, true).expect("compliant");
        assert_eq!(o.data["userName"], "x@y");
        assert_eq!(o.data["emails"][0]["value"], "w@y");
        assert_eq!(
            o.data["emails"][1],
            json!({"value": "n@y", "type": "other"})
        );
        assert_eq!(o.data[ENT]["department"], "D");
        assert_eq!(o.data["name"], json!({"givenName": "G", "familyName": "F"}));
        assert_eq!(o.data["displayName"], "Dee");
        let keys: Vec<&String> = o.data.keys().collect();
        assert_eq!(
            keys,
            ["active", "displayName", "emails", "name", ENT, "userName"]
        );
    }

    #[test]
    fn body_keys_in_any_case_and_order() {
        let b = json!({"operations": [{"OP": "add", "Path": "title", "VALUE": "CTO"}], "SCHEMAS": [PATCH_OP_SCHEMA.to_uppercase()]});
        assert_eq!(
            apply(U, &user(), &b, true).expect("compliant").data["title"],
            "CTO"
        );
    }

    #[test]
    fn extension_urn_as_path_or_key() {
        let b = body(
            json!([{"op": "add", "path": ENT, "value": {"department": "Ops", "costCenter": "42"}}]),
        );
        let o = apply(U, &managed(), &b, true).expect("compliant");
        assert_eq!(
            o.data[ENT],
            json!({"department": "Ops", "costCenter": "42", "manager": {"value": "m-1"}})
        );
        let b = body(
            json!([{"op": "replace", "value": {ENT: {"division": "R&D", "manager": {"value": "m-9"}}}}]),
        );
        let o = apply(U, &managed(), &b, true).expect("compliant");
        assert_eq!(
            o.data[ENT],
            json!({"department": "Eng", "division": "R&D", "manager": {"value": "m-9"}})
        );
        let b = body(json!([{"op": "remove", "path": ENT}]));
        let o = apply(U, &managed(), &b, true).expect("compliant");
        assert!(!o.data.contains_key(ENT));
        assert_eq!(
            o.changed,
            vec![format!("{ENT}:department"), format!("{ENT}:manager")]
        );
    }

    #[test]
    fn atomic_on_failure() {
        let b = body(json!([
            {"op": "replace", "path": "displayName", "value": "changed"},
            {"op": "replace", "path": "active", "value": 5}
        ]));
        let e = apply(U, &user(), &b, false).unwrap_err();
        assert_eq!(
            (e.status, e.scim_type),
            (400, Some(crate::error::ScimType::InvalidValue))
        );
        assert!(e.detail.starts_with("Operations[1]: "), "{}", e.detail);
    }

    #[test]
    fn error_paths() {
        let u = user();
        let op = |o: Value| body(json!([o]));
        let cases: Vec<(Value, u16, &str)> = vec![
            (json!([]), 400, "invalidSyntax"),
            (
                json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]}),
                400,
                "invalidSyntax",
            ),
            (
                json!({"schemas": PATCH_OP_SCHEMA, "Operations": [{"op": "add", "path": "title", "value": "x"}]}),
                400,
                "invalidSyntax",
            ),
            (
                json!({"schemas": ["urn:x"], "Operations": [{"op": "add", "path": "title", "value": "x"}]}),
                400,
                "invalidSyntax",
            ),
            (json!({"schemas": [PATCH_OP_SCHEMA]}), 400, "invalidSyntax"),
            (body(json!([])), 400, "invalidSyntax"),
            (body(json!({"op": "add"})), 400, "invalidSyntax"),
            (
                body(Value::Array(vec![
                    json!({"op": "add", "path": "title", "value": "x"});
                    MAX_OPERATIONS + 1
                ])),
                400,
                "invalidSyntax",
            ),
            (
                json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [], "operations": [{"op": "add", "path": "title", "value": "x"}]}),
                400,
                "invalidSyntax",
            ),
            (op(json!("add")), 400, "invalidSyntax"),
            (
                op(json!({"path": "title", "value": "x"})),
                400,
                "invalidSyntax",
            ),
            (
                op(json!({"op": "move", "path": "title", "value": "x"})),
                400,
                "invalidSyntax",
            ),
            (
                op(json!({"op": 1, "path": "title", "value": "x"})),
                400,
                "invalidSyntax",
            ),
            (
                op(json!({"op": "add", "OP": "add", "path": "title", "value": "x"})),
                400,
                "invalidSyntax",
            ),
            (
                op(json!({"op": "add", "path": "title"})),
                400,
                "invalidSyntax",
            ),
            (
                op(json!({"op": "replace", "path": "title"})),
                400,
                "invalidSyntax",
            ),
            (
                op(json!({"op": "add", "path": 7, "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": "", "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": "nope", "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": "name.nope", "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": "name.", "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": ".name", "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": "title.x", "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": "name.givenName.x", "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": "emails[type eq \"work\"", "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": "emails[type eq \"work\"]value", "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": "emails[]", "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": "emails[type eq \"a\"][x]", "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": "emails[type[x] eq \"a\"]", "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": "title[value eq \"x\"]", "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": "urn:x:y:title", "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(
                    json!({"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:User", "value": {}}),
                ),
                400,
                "invalidPath",
            ),
            (
                op(
                    json!({"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:Group:displayName", "value": "x"}),
                ),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": format!("{ENT}:nope"), "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": format!("{ENT}.department"), "value": "x"})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "value": {"nope": 1}})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": ENT, "value": {"nope": 1}})),
                400,
                "invalidPath",
            ),
            (
                op(json!({"op": "add", "path": "emails[type eq]", "value": "x"})),
                400,
                "invalidFilter",
            ),
            (
                op(json!({"op": "add", "path": "emails[nope eq \"x\"].value", "value": "x"})),
                400,
                "invalidFilter",
            ),
            (
                op(json!({"op": "replace", "path": "id", "value": "x"})),
                400,
                "mutability",
            ),
            (
                op(json!({"op": "remove", "path": "meta"})),
                400,
                "mutability",
            ),
            (
                op(
                    json!({"op": "replace", "path": "meta.lastModified", "value": "2020-01-01T00:00:00Z"}),
                ),
                400,
                "mutability",
            ),
            (
                op(json!({"op": "add", "path": "groups", "value": [{"value": "g"}]})),
                400,
                "mutability",
            ),
            (
                op(json!({"op": "remove", "path": "groups[value eq \"g\"]"})),
                400,
                "mutability",
            ),
            (
                op(
                    json!({"op": "replace", "path": format!("{ENT}:manager.displayName"), "value": "Boss"}),
                ),
                400,
                "mutability",
            ),
            (
                op(json!({"op": "replace", "path": ENT, "value": {"manager.displayName": "Boss"}})),
                400,
                "mutability",
            ),
            (op(json!({"op": "remove"})), 400, "noTarget"),
            (
                op(json!({"op": "remove", "value": {"title": "x"}})),
                400,
                "noTarget",
            ),
            (
                op(
                    json!({"op": "replace", "path": "emails[value co \"nobody\"].type", "value": "work"}),
                ),
                400,
                "noTarget",
            ),
            (
                op(
                    json!({"op": "replace", "path": "emails[type eq \"a\" or type eq \"b\"].value", "value": "v"}),
                ),
                400,
                "noTarget",
            ),
            (
                op(json!({"op": "add", "path": "emails[value sw \"z\"].type", "value": "work"})),
                400,
                "noTarget",
            ),
            (
                op(json!({"op": "replace", "path": "active", "value": 5})),
                400,
                "invalidValue",
            ),
            (
                op(json!({"op": "replace", "path": "active", "value": "yes"})),
                400,
                "invalidValue",
            ),
            (
                op(json!({"op": "replace", "value": {"active": [true]}})),
                400,
                "invalidValue",
            ),
            (
                op(json!({"op": "replace", "path": "userName", "value": ""})),
                400,
                "invalidValue",
            ),
            (
                op(json!({"op": "replace", "path": "userName", "value": null})),
                400,
                "invalidValue",
            ),
            (
                op(json!({"op": "remove", "path": "userName"})),
                400,
                "invalidValue",
            ),
            (
                op(json!({"op": "add", "path": "name", "value": "Barbara"})),
                400,
                "invalidValue",
            ),
            (
                op(json!({"op": "add", "path": "name", "value": {"first": "B"}})),
                400,
                "invalidSyntax",
            ),
            (
                op(json!({"op": "add", "path": "emails", "value": [{"value": 5}]})),
                400,
                "invalidValue",
            ),
            (
                op(json!({"op": "add", "path": "emails", "value": ["a@b"]})),
                400,
                "invalidValue",
            ),
            (
                op(
                    json!({"op": "add", "path": "emails[type eq \"work\"].value", "value": {"x": 1}}),
                ),
                400,
                "invalidValue",
            ),
            (
                op(
                    json!({"op": "add", "path": "emails[primary eq \"yes\"].value", "value": "a@b"}),
                ),
                400,
                "invalidFilter",
            ),
            (
                op(
                    json!({"op": "add", "path": "x509Certificates", "value": [{"value": "not base64!"}]}),
                ),
                400,
                "invalidValue",
            ),
            (
                op(json!({"op": "add", "path": "displayName", "value": "a\u{0}b"})),
                400,
                "invalidValue",
            ),
            (
                op(json!({"op": "add", "value": "title"})),
                400,
                "invalidValue",
            ),
            (op(json!({"op": "add", "value": null})), 400, "invalidValue"),
            (
                op(json!({"op": "add", "path": ENT, "value": "x"})),
                400,
                "invalidValue",
            ),
            (
                op(
                    json!({"op": "add", "path": "emails", "value": vec![json!({"value": "a@b"}); resource::MAX_MULTI_VALUES + 1]}),
                ),
                400,
                "invalidValue",
            ),
        ];
        for (b, status, scim_type) in cases {
            assert_eq!(fails(U, &u, &b, false), (status, scim_type), "{b}");
        }
        let b = body(json!([{"op": "remove", "path": "displayName"}]));
        assert_eq!(fails(G, &group(), &b, false), (400, "invalidValue"));
    }

    #[test]
    fn strict_mode_refuses_every_tolerance() {
        let path = format!("{ENT}:manager");
        type Case = (
            ResourceType,
            Map<String, Value>,
            Value,
            Tolerance,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                U,
                user(),
                json!({"op": "Replace", "path": "title", "value": "x"}),
                Tolerance::CapitalizedOp,
                "invalidSyntax",
            ),
            (
                U,
                user(),
                json!({"op": "replace", "path": "active", "value": "false"}),
                Tolerance::BooleanString,
                "invalidValue",
            ),
            (
                U,
                user(),
                json!({"op": "replace", "path": "emails[type eq \"work\"].primary", "value": "True"}),
                Tolerance::BooleanString,
                "invalidValue",
            ),
            (
                U,
                user(),
                json!({"op": "add", "path": path, "value": "m-1"}),
                Tolerance::ManagerString,
                "invalidValue",
            ),
            (
                U,
                managed(),
                json!({"op": "replace", "path": path, "value": ""}),
                Tolerance::EmptyManager,
                "invalidValue",
            ),
            (
                U,
                managed(),
                json!({"op": "replace", "path": path, "value": {"value": ""}}),
                Tolerance::EmptyManager,
                "invalidValue",
            ),
            (
                U,
                managed(),
                json!({"op": "replace", "path": format!("{path}.value"), "value": ""}),
                Tolerance::EmptyManager,
                "invalidValue",
            ),
            (
                U,
                user(),
                json!({"op": "add", "path": "emails", "value": {"value": "x@y"}}),
                Tolerance::SingleValueAsArray,
                "invalidValue",
            ),
            (
                G,
                group(),
                json!({"op": "add", "path": "members", "value": {"value": "u1"}}),
                Tolerance::SingleValueAsArray,
                "invalidValue",
            ),
            (
                U,
                user(),
                json!({"op": "replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "1"}),
                Tolerance::ReplaceCreatesElement,
                "noTarget",
            ),
            (
                G,
                group(),
                json!({"op": "remove", "path": "members", "value": [{"value": "u1"}]}),
                Tolerance::RemoveByValue,
                "invalidSyntax",
            ),
            (
                U,
                user(),
                json!({"op": "remove", "path": "emails", "value": [{"value": "BJENSEN@example.com"}]}),
                Tolerance::RemoveByValue,
                "invalidSyntax",
            ),
            (
                U,
                managed(),
                json!({"op": "remove", "path": path, "value": [{"value": "m-1"}]}),
                Tolerance::RemoveValueIgnored,
                "invalidSyntax",
            ),
            (
                G,
                group(),
                json!({"op": "remove", "path": "members[value eq \"u1\"]", "value": [{"value": "u1"}]}),
                Tolerance::RemoveValueIgnored,
                "invalidSyntax",
            ),
            (
                G,
                group(),
                json!({"op": "replace", "value": {"id": "g1", "displayName": "x"}}),
                Tolerance::ReadOnlyIgnored,
                "mutability",
            ),
            (
                U,
                user(),
                json!({"op": "replace", "value": {"schemas": ["x"], "meta": {}, "groups": [], "title": "t"}}),
                Tolerance::ReadOnlyIgnored,
                "mutability",
            ),
        ];
        let mut seen = Vec::new();
        for (rt, data, op, tolerance, scim_type) in cases {
            let b = body(json!([op]));
            let o = ok(rt, &data, &b);
            assert!(o.tolerances.contains(&tolerance), "{b}: {:?}", o.tolerances);
            assert_eq!(fails(rt, &data, &b, true), (400, scim_type), "{b}");
            seen.push(tolerance);
        }
        for t in Tolerance::ALL.into_iter().filter(|t| t.in_patch()) {
            assert!(seen.contains(&t), "{} untested", t.as_str());
        }
    }

    #[test]
    fn tolerated_values_land_as_intended() {
        let b = body(
            json!([{"op": "remove", "path": "emails", "value": [{"value": "BJENSEN@example.com"}]}]),
        );
        assert!(!ok(U, &user(), &b).data.contains_key("emails"));
        let b = body(json!([{"op": "add", "path": "emails", "value": {"value": "x@y"}}]));
        assert_eq!(
            ok(U, &user(), &b).data["emails"][1],
            json!({"value": "x@y"})
        );
        let b = body(
            json!([{"op": "replace", "value": {"schemas": ["x"], "meta": {}, "groups": [], "title": "t"}}]),
        );
        let o = ok(U, &user(), &b);
        assert_eq!(o.data["title"], "t");
        assert!(!o.data.contains_key("groups") && !o.data.contains_key("meta"));
        let names: Vec<&str> = Tolerance::ALL.iter().map(|t| t.as_str()).collect();
        assert!(names.iter().all(|n| !n.is_empty()));
    }

    /// A tiny deterministic generator: no crates, reproducible failures.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[(self.next() % items.len() as u64) as usize]
        }
        fn chance(&mut self, n: u64) -> bool {
            self.next().is_multiple_of(n)
        }
    }

    fn garbage_value(r: &mut Rng, depth: u32) -> Value {
        let scalars = [
            json!(null),
            json!(true),
            json!("False"),
            json!(""),
            json!("x@y"),
            json!(5),
            json!(-1.5),
            json!("u1"),
            json!("work"),
            json!("2020-01-01T00:00:00Z"),
            json!("\u{0}"),
            json!("ü[\"]"),
        ];
        if depth >= 3 || r.chance(2) {
            return r.pick(&scalars).clone();
        }
        let keys = [
            "value",
            "type",
            "primary",
            "display",
            "givenName",
            "manager",
            "members",
            "emails",
            "active",
            "userName",
            "displayName",
            ENT,
            "name.givenName",
            "id",
            "$ref",
            "Value",
            "x",
        ];
        if r.chance(2) {
            let n = r.next() % 4;
            Value::Array((0..n).map(|_| garbage_value(r, depth + 1)).collect())
        } else {
            let mut m = Map::new();
            for _ in 0..r.next() % 4 {
                let k = r.pick(&keys).to_string();
                m.insert(k, garbage_value(r, depth + 1));
            }
            Value::Object(m)
        }
    }

    fn garbage_path(r: &mut Rng) -> String {
        let heads = [
            "emails",
            "EMAILS",
            "name",
            "members",
            "groups",
            "id",
            "meta",
            "active",
            "userName",
            "displayName",
            "addresses",
            "x509Certificates",
            "roles",
            "urn:",
            ENT,
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "",
            " ",
            "[",
            "]",
            ".",
            "\"",
            "ü",
            "password",
            "externalId",
            "phoneNumbers",
            "nope",
        ];
        let tails = [
            "",
            ".value",
            ".type",
            ".primary",
            ".",
            "..",
            ":manager",
            ":manager.value",
            ":department",
            "[type eq \"work\"]",
            "[type eq \"work\"].value",
            "[value eq \"u1\" or value eq \"u2\"]",
            "[",
            "]",
            "[type eq \"work\"",
            "[\"]\"]",
            "[type eq \"a\\\"]\"]",
            "[primary eq true].display",
            "[not (type pr)]",
            "[value co \"x\" and (type eq \"w\" or type ne \"h\")]",
            "[type eq 5]",
            "[]",
            "[[",
            ".givenName",
            "ü",
        ];
        let mut s = r.pick(&heads).to_string();
        for _ in 0..r.next() % 3 {
            let t = *r.pick(&tails[..]);
            s.push_str(t);
        }
        s
    }

    #[test]
    fn randomized_garbage_never_panics() {
        let mut r = Rng(0x9E37_79B9_7F4A_7C15);
        let ops = ["add", "replace", "remove", "Add", "REPLACE", "move", ""];
        let mut accepted = 0;
        for i in 0..20_000 {
            let rt = if i % 3 == 0 { G } else { U };
            let mut current = if rt == G { group() } else { managed() };
            if rt == U && r.chance(3) {
                current.insert("emails".into(), json!([{"value": "a@x", "type": "work", "primary": true}, {"value": "b@x", "type": "home"}]));
            }
            let mut list = Vec::new();
            for _ in 0..1 + r.next() % 4 {
                let mut op = Map::new();
                if !r.chance(10) {
                    op.insert("op".into(), json!(r.pick(&ops)));
                }
                if !r.chance(4) {
                    op.insert(
                        "path".into(),
                        if r.chance(20) {
                            json!(3)
                        } else {
                            json!(garbage_path(&mut r))
                        },
                    );
                }
                if !r.chance(4) {
                    op.insert("value".into(), garbage_value(&mut r, 0));
                }
                list.push(if r.chance(50) {
                    json!("op")
                } else {
                    Value::Object(op)
                });
            }
            let b = body(Value::Array(list));
            for strict in [false, true] {
                let result = apply(rt, &current, &b, strict);
                check_text_path(rt, &current, &b, strict, &result);
                match result {
                    Ok(o) => {
                        accepted += 1;
                        check_outcome(rt, &current, &o);
                        if strict {
                            assert!(o.tolerances.is_empty(), "{b}");
                        }
                    }
                    Err(e) => assert_eq!(e.status, 400, "{b}: {e}"),
                }
            }
        }
        assert!(
            accepted > 100,
            "the generator should produce some valid requests ({accepted})"
        );
    }
}
