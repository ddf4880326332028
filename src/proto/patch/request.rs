//! Parsing: a PATCH body → typed operations, with every check that needs no stored data.

use super::coerce::{
    coerce, coerce_one, is_manager, settle_given_primary, sub_change, validated_element,
};
use super::element::{member_filter_ids, ElementFilter};
use super::path::{parse_in, parse_path, read_only, AttrPath, PathTarget};
use super::undeclared::{self, UndeclaredChange};
use super::{MemberOp, Op, SubChange, MAX_OPERATIONS};
use crate::proto::error::{Result, ScimError};
use crate::proto::resource::{member_ids, validate_attr};
use crate::proto::schema::{AttrType, Attribute, Mutability, Schema, TypeSchemas, PATCH_OP_SCHEMA};
use crate::proto::tolerance::{Tolerance, Tolerances};
use serde_json::{Map, Value};

/// A PATCH request body, parsed and checked against the schema of one resource type: what is
/// left to decide needs the stored resource. Parse it before reading anything, so a request
/// that cannot succeed costs no read.
#[derive(Debug, Clone)]
pub struct PatchRequest {
    pub(super) rt: TypeSchemas,
    pub(super) ops: Vec<Operation>,
}

#[derive(Debug, Clone)]
pub(super) struct Operation {
    /// Position in `Operations`, for error messages.
    pub index: usize,
    pub target: Target,
}

/// What one operation does, by the kind of thing it addresses.
#[derive(Debug, Clone)]
pub(super) enum Target {
    /// A core or extension attribute, one of its sub-attributes, or filtered values of it.
    Attr(AttrChange),
    /// An extension schema URN as the path: all of the extension's attributes.
    Extension {
        ext: &'static Schema,
        change: ExtensionChange,
    },
    /// A group's members: a row change for the store (`None`: nothing to do).
    Members {
        attr: &'static Attribute,
        change: Option<MemberOp>,
    },
    /// A path-less `add`/`replace`: each key of its value, in key order.
    PathLess(Vec<Target>),
    /// A writeOnly attribute (`password`): type-checked, then dropped as on POST and PUT.
    Dropped,
    /// An attribute of an extension the resource type does not define (kept verbatim).
    Undeclared(UndeclaredChange),
    /// An attribute at the core level that no schema defines (kept verbatim in the data).
    Unknown(UndeclaredChange),
}

#[derive(Debug, Clone)]
pub(super) enum ExtensionChange {
    Remove,
    Keep,
    /// The attributes named in the value, in key order.
    Attrs(Vec<Target>),
}

#[derive(Debug, Clone)]
pub(super) struct AttrChange {
    pub ext: Option<&'static Schema>,
    pub attr: &'static Attribute,
    /// Canonical path, for messages.
    pub label: String,
    pub change: Change,
}

#[derive(Debug, Clone)]
pub(super) enum Change {
    /// Entra clears the manager with an empty id.
    ClearManager,
    /// The whole attribute; `listed`: the tolerated `remove` of the values agreeing with these.
    Remove { listed: Option<Vec<Value>> },
    /// `add`/`replace` of the whole attribute.
    Set { replace: bool, value: SetValue },
    /// A sub-attribute of the single value or of every value.
    Sub {
        sub: &'static Attribute,
        change: SubChange,
    },
    /// The values a filter matches.
    Filtered {
        filter: Box<ElementFilter>,
        replace: bool,
        change: FilteredChange,
    },
}

/// A whole-attribute value, validated.
#[derive(Debug, Clone)]
pub(super) enum SetValue {
    Null,
    Multi(Vec<Value>),
    /// Sub-attributes given as null (removed), and the others (merged).
    Complex {
        nulls: Vec<String>,
        given: Map<String, Value>,
    },
    Single(Option<Value>),
}

#[derive(Debug, Clone)]
pub(super) enum FilteredChange {
    /// The matched values, or this sub-attribute of them.
    Remove(Option<&'static Attribute>),
    /// A whole value, validated (`None`: null given).
    Element(Option<Value>),
    Sub(&'static Attribute, SubChange),
}

impl PatchRequest {
    /// Parses a PATCH body for resource type `rt`. Client quirks go to `tol`: accepted and
    /// recorded when it is lenient, refused when it is strict.
    pub fn parse(
        rt: impl Into<TypeSchemas>,
        body: &Value,
        tol: &mut Tolerances,
    ) -> Result<PatchRequest> {
        let rt: TypeSchemas = rt.into();
        let raw = operations(body)?;
        let mut ops = Vec::with_capacity(raw.len());
        for (index, raw) in raw.iter().enumerate() {
            let target = parse_op(rt, tol, raw).map_err(|e| at_op(index, e))?;
            ops.push(Operation { index, target });
        }
        Ok(PatchRequest { rt, ops })
    }

    /// The collector to apply with, once the tenant's strictness is known (it comes with the
    /// stored resource, after parsing). `parsed` is what the lenient parse recorded; a strict
    /// tenant refuses a request that needed a tolerance, with the error a strict parse gives.
    pub fn tolerances_for(
        &self,
        body: &Value,
        parsed: &Tolerances,
        strict: bool,
    ) -> Result<Tolerances> {
        if !strict {
            return Ok(parsed.clone());
        }
        let mut refuse = Tolerances::strict();
        if let Some(&first) = parsed.fired().first() {
            PatchRequest::parse(self.rt, body, &mut refuse)?;
            // Not reached: the strict parse refuses what the lenient one tolerated.
            refuse.tolerate(first, || format!("{} is not accepted", first.as_str()))?;
        }
        Ok(refuse)
    }
}

impl PatchRequest {
    /// The group member changes the request makes, in the order applying it reports them
    /// ([`super::PatchOutcome::members`]): they depend on nothing stored, so the handler can
    /// check them (a group is never its own member) before reading the group.
    pub fn member_ops(&self) -> Vec<MemberOp> {
        fn collect(t: &Target, out: &mut Vec<MemberOp>) {
            match t {
                Target::Members {
                    change: Some(c), ..
                } => out.push(c.clone()),
                Target::PathLess(targets)
                | Target::Extension {
                    change: ExtensionChange::Attrs(targets),
                    ..
                } => targets.iter().for_each(|t| collect(t, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        self.ops.iter().for_each(|op| collect(&op.target, &mut out));
        out
    }
}

/// Prefixes an operation's error with its position.
pub(super) fn at_op(i: usize, e: ScimError) -> ScimError {
    ScimError {
        detail: format!("Operations[{i}]: {}", e.detail),
        ..e
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

/// The op's kind; Entra capitalises it (`Replace`).
fn op_kind(tol: &mut Tolerances, obj: &Map<String, Value>) -> Result<Op> {
    let op_name = member(obj, "op")?.and_then(Value::as_str).ok_or_else(|| {
        ScimError::invalid_syntax(
            "each operation needs an 'op' of \"add\", \"replace\" or \"remove\"",
        )
    })?;
    let op = [
        ("add", Op::Add),
        ("replace", Op::Replace),
        ("remove", Op::Remove),
    ]
    .into_iter()
    .find(|(name, _)| op_name.eq_ignore_ascii_case(name))
    .map(|(_, op)| op)
    .ok_or_else(|| {
        ScimError::invalid_syntax(format!(
            "unknown op \"{op_name}\"; expected \"add\", \"replace\" or \"remove\""
        ))
    })?;
    if op_name.bytes().any(|b| b.is_ascii_uppercase()) {
        tol.tolerate(Tolerance::CapitalizedOp, || {
            format!("op must be lowercase, not \"{op_name}\"")
        })?;
    }
    Ok(op)
}

fn parse_op(rt: TypeSchemas, tol: &mut Tolerances, raw: &Value) -> Result<Target> {
    let obj = raw
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("each operation must be a JSON object"))?;
    let op = op_kind(tol, obj)?;
    let path = match member(obj, "path")? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(ScimError::invalid_path("'path' must be a string")),
    };
    let value = member(obj, "value")?;
    if op != Op::Remove && value.is_none() {
        let name = if op == Op::Add { "add" } else { "replace" };
        return Err(ScimError::invalid_syntax(format!(
            "\"{name}\" needs a 'value'"
        )));
    }
    match path {
        None => {
            if op == Op::Remove {
                return Err(ScimError::no_target("\"remove\" needs a 'path'"));
            }
            match value {
                Some(Value::Object(m)) => parse_pathless(rt, tol, op, m),
                _ => Err(ScimError::invalid_value(
                    "without a 'path', 'value' must be an object of attributes",
                )),
            }
        }
        Some(path) if undeclared::is_undeclared(rt.schemas(), path.trim()) => Ok(
            Target::Undeclared(undeclared::parse_change(rt.schemas(), path, op, value)?),
        ),
        Some(path) if undeclared::is_unknown_core(rt, path) => Ok(Target::Unknown(
            undeclared::parse_unknown_change(rt, path, op, value, tol)?,
        )),
        Some(path) => match parse_path(rt, path)? {
            PathTarget::Extension(ext) => parse_extension(rt, tol, op, ext, value),
            PathTarget::Attr(p) => attr_target(rt, tol, op, p, value),
        },
    }
}

/// Path-less add/replace: every key is read as if it were the operation's path. Keys may
/// be dotted (`name.givenName`) or schema-qualified, as Entra sends them.
fn parse_pathless(
    rt: TypeSchemas,
    tol: &mut Tolerances,
    op: Op,
    obj: &Map<String, Value>,
) -> Result<Target> {
    let mut targets = Vec::with_capacity(obj.len());
    for (key, v) in obj {
        if key.eq_ignore_ascii_case("schemas") {
            tol.tolerate(Tolerance::ReadOnlyIgnored, || {
                "'schemas' cannot be patched".into()
            })?;
            continue;
        }
        if undeclared::is_undeclared(rt.schemas(), key) {
            targets.push(Target::Undeclared(undeclared::parse_change(
                rt.schemas(),
                key,
                op,
                Some(v),
            )?));
            continue;
        }
        if undeclared::is_unknown_core(rt, key) {
            let change = undeclared::parse_unknown_change(rt, key, op, Some(v), tol)?;
            targets.push(Target::Unknown(change));
            continue;
        }
        match parse_path(rt, key)? {
            PathTarget::Extension(ext) => {
                targets.push(parse_extension(rt, tol, op, ext, Some(v))?);
            }
            PathTarget::Attr(p) => {
                if p.is_read_only() {
                    let label = p.label();
                    tol.tolerate(Tolerance::ReadOnlyIgnored, || {
                        format!("'{label}' is readOnly")
                    })?;
                    continue;
                }
                targets.push(attr_target(rt, tol, op, p, Some(v))?);
            }
        }
    }
    Ok(Target::PathLess(targets))
}

/// An operation whose path (or path-less key) is an extension schema URN itself.
fn parse_extension(
    rt: TypeSchemas,
    tol: &mut Tolerances,
    op: Op,
    ext: &'static Schema,
    value: Option<&Value>,
) -> Result<Target> {
    let change = match (op, value.filter(|v| !v.is_null())) {
        (Op::Remove, v) => {
            if v.is_some() {
                tol.tolerate(Tolerance::RemoveValueIgnored, || {
                    "\"remove\" takes no 'value'".into()
                })?;
            }
            ExtensionChange::Remove
        }
        (Op::Replace, None) => ExtensionChange::Remove,
        (Op::Add, None) => ExtensionChange::Keep,
        (_, Some(Value::Object(m))) => {
            let mut targets = Vec::with_capacity(m.len());
            for (key, v) in m {
                if key.eq_ignore_ascii_case("schemas") {
                    // Some clients serialise the extension as a whole resource model.
                    tol.tolerate(Tolerance::ReadOnlyIgnored, || {
                        "'schemas' cannot be patched".into()
                    })?;
                    continue;
                }
                let p = parse_in(rt, ext, key)?;
                if p.is_read_only() {
                    return Err(read_only(&p));
                }
                targets.push(attr_target(rt, tol, op, p, Some(v))?);
            }
            ExtensionChange::Attrs(targets)
        }
        (_, Some(_)) => {
            return Err(ScimError::invalid_value(format!(
                "'{}' must be an object",
                ext.id
            )))
        }
    };
    Ok(Target::Extension { ext, change })
}

/// An operation on one attribute path: mutability first, then the value.
fn attr_target(
    rt: TypeSchemas,
    tol: &mut Tolerances,
    op: Op,
    p: AttrPath,
    value: Option<&Value>,
) -> Result<Target> {
    if p.is_members(rt) {
        return members_target(tol, op, &p, value);
    }
    if p.is_read_only() {
        return Err(read_only(&p));
    }
    let label = p.label();
    if p.has(Mutability::Immutable) && op != Op::Add {
        return Err(ScimError::mutability(format!("'{label}' is immutable")));
    }
    if p.has(Mutability::WriteOnly) {
        // Never stored (e.g. password): type-checked, then dropped as on POST and PUT.
        if let Some(v) = value.filter(|_| op != Op::Remove) {
            let target = p.sub.unwrap_or(p.attr);
            let v = coerce(tol, target, v, &label)?;
            validate_attr(target, &v, &label)?;
        }
        return Ok(Target::Dropped);
    }
    let (ext, attr) = (p.ext, p.attr);
    let change = change_of(rt, tol, op, p, value, &label)?;
    Ok(Target::Attr(AttrChange {
        ext,
        attr,
        label,
        change,
    }))
}

fn change_of(
    rt: TypeSchemas,
    tol: &mut Tolerances,
    op: Op,
    p: AttrPath,
    value: Option<&Value>,
    label: &str,
) -> Result<Change> {
    if clears_manager(tol, op, &p, value, label)? {
        return Ok(Change::ClearManager);
    }
    let given = value.filter(|v| !v.is_null());
    match (p.filter, p.sub) {
        (None, None) if op == Op::Remove => whole_remove(tol, p.attr, given, label),
        (None, None) => Ok(Change::Set {
            replace: op == Op::Replace,
            value: whole_value(tol, p.attr, value, label)?,
        }),
        (None, Some(sub)) => {
            if op == Op::Remove && given.is_some() {
                tol.tolerate(Tolerance::RemoveValueIgnored, || {
                    format!("\"remove\" of '{label}' takes no 'value'")
                })?;
            }
            let change = match op {
                Op::Remove => SubChange::Unset,
                _ => sub_change(tol, sub, value, op, label)?,
            };
            Ok(Change::Sub { sub, change })
        }
        (Some(f), sub) => {
            let filter = Box::new(ElementFilter::new(rt, p.ext, p.attr, f)?);
            let change = filtered_change(tol, op, p.attr, sub, value, label)?;
            Ok(Change::Filtered {
                filter,
                replace: op == Op::Replace,
                change,
            })
        }
    }
}

/// Entra clears the manager with an empty id (`""`, `{"value": ""}`, or `manager.value: ""`).
fn clears_manager(
    tol: &mut Tolerances,
    op: Op,
    p: &AttrPath,
    value: Option<&Value>,
    label: &str,
) -> Result<bool> {
    if !is_manager(p.attr) || op == Op::Remove || p.filter.is_some() {
        return Ok(false);
    }
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
        tol.tolerate(Tolerance::EmptyManager, || {
            format!("'{label}' must not be empty; remove the manager instead")
        })?;
    }
    Ok(empty)
}

fn whole_remove(
    tol: &mut Tolerances,
    attr: &Attribute,
    given: Option<&Value>,
    label: &str,
) -> Result<Change> {
    let Some(v) = given else {
        return Ok(Change::Remove { listed: None });
    };
    if !attr.multi_valued {
        tol.tolerate(Tolerance::RemoveValueIgnored, || {
            format!("\"remove\" of '{label}' takes no 'value'")
        })?;
        return Ok(Change::Remove { listed: None });
    }
    tol.tolerate(Tolerance::RemoveByValue, || {
        format!("\"remove\" of '{label}' takes no 'value'; use a filter")
    })?;
    let listed = coerce(tol, attr, v, label)?;
    let listed = match validate_attr(attr, &listed, label)? {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    Ok(Change::Remove {
        listed: Some(listed),
    })
}

fn whole_value(
    tol: &mut Tolerances,
    attr: &Attribute,
    value: Option<&Value>,
    label: &str,
) -> Result<SetValue> {
    let mut v = coerce(tol, attr, value.unwrap_or(&Value::Null), label)?;
    if v.is_null() {
        return Ok(SetValue::Null);
    }
    if attr.multi_valued {
        settle_given_primary(&mut v);
        return Ok(SetValue::Multi(match validate_attr(attr, &v, label)? {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        }));
    }
    if attr.kind != AttrType::Complex {
        return Ok(SetValue::Single(validate_attr(attr, &v, label)?));
    }
    // RFC 7644 §3.5.2.1/§3.5.2.3: sub-attributes not given are left unchanged.
    let given = match validate_attr(attr, &v, label)? {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let nulls = match &v {
        Value::Object(m) => m
            .iter()
            .filter(|(_, x)| x.is_null())
            .filter_map(|(k, _)| attr.sub(k))
            .map(|s| s.name.clone())
            .collect(),
        _ => Vec::new(),
    };
    Ok(SetValue::Complex { nulls, given })
}

fn filtered_change(
    tol: &mut Tolerances,
    op: Op,
    attr: &Attribute,
    sub: Option<&'static Attribute>,
    value: Option<&Value>,
    label: &str,
) -> Result<FilteredChange> {
    Ok(match (op, sub) {
        (Op::Remove, sub) => {
            if value.is_some_and(|v| !v.is_null()) {
                tol.tolerate(Tolerance::RemoveValueIgnored, || {
                    format!("\"remove\" of '{label}' takes no 'value'")
                })?;
            }
            FilteredChange::Remove(sub)
        }
        (_, None) => {
            let v = coerce_one(tol, attr, value.unwrap_or(&Value::Null), label)?;
            FilteredChange::Element(match v {
                Value::Null => None,
                v => Some(validated_element(attr, v, label)?),
            })
        }
        (_, Some(sub)) => FilteredChange::Sub(sub, sub_change(tol, sub, value, op, label)?),
    })
}

fn members_target(
    tol: &mut Tolerances,
    op: Op,
    p: &AttrPath,
    value: Option<&Value>,
) -> Result<Target> {
    if let Some(sub) = p.sub {
        return Err(ScimError::mutability(format!(
            "'members.{}' cannot be modified; add or remove members instead",
            sub.name
        )));
    }
    let value = value.filter(|v| !v.is_null());
    let change = match (op, &p.filter) {
        (Op::Remove, Some(filter)) => {
            if value.is_some() {
                tol.tolerate(Tolerance::RemoveValueIgnored, || "\"remove\" with a filter takes no 'value'".into())?;
            }
            MemberOp::Remove(member_filter_ids(filter)?)
        }
        (Op::Remove, None) => match value {
            None => MemberOp::RemoveAll,
            Some(v) => {
                tol.tolerate(Tolerance::RemoveByValue, || {
                    "\"remove\" of 'members' takes no 'value' (it would remove every member); use members[value eq \"<id>\"]"
                        .into()
                })?;
                MemberOp::Remove(member_list(tol, v)?)
            }
        },
        (Op::Add, None) => match value {
            None => MemberOp::Add(Vec::new()),
            Some(v) => MemberOp::Add(member_list(tol, v)?),
        },
        (Op::Replace, None) => MemberOp::Replace(match value {
            None => Vec::new(),
            Some(v) => member_list(tol, v)?,
        }),
        (_, Some(_)) => {
            return Err(ScimError::invalid_path(
                "a filter on 'members' is only supported by \"remove\"; use \"add\" or \"replace\" with path 'members'",
            ))
        }
    };
    let change = match &change {
        MemberOp::Add(ids) | MemberOp::Remove(ids) if ids.is_empty() => None,
        _ => Some(change),
    };
    Ok(Target::Members {
        attr: p.attr,
        change,
    })
}

fn member_list(tol: &mut Tolerances, v: &Value) -> Result<Vec<String>> {
    if v.is_object() {
        tol.tolerate(Tolerance::SingleValueAsArray, || {
            "'members' is multi-valued; send an array".into()
        })?;
        return member_ids(&Value::Array(vec![v.clone()]));
    }
    member_ids(v)
}
