//! Value coercions: a client value rewritten into the shape its attribute expects, accepting
//! the known quirks (each a [`Tolerance`]), and validated. All of it depends on the target
//! attribute and the value only, so it runs while the request is parsed.

use super::{Op, SubChange};
use crate::proto::error::{Result, ScimError};
use crate::proto::resource::validate_attr;
use crate::proto::schema::{AttrType, Attribute};
use crate::proto::tolerance::{Tolerance, Tolerances};
use serde_json::{Map, Value};

/// Rewrites a client value into the shape `attr` expects, accepting the known quirks.
pub(super) fn coerce(
    tol: &mut Tolerances,
    attr: &Attribute,
    value: &Value,
    label: &str,
) -> Result<Value> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    if !attr.multi_valued {
        return coerce_one(tol, attr, value, label);
    }
    match value {
        Value::Array(items) => items
            .iter()
            .map(|i| coerce_one(tol, attr, i, label))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array),
        other => {
            tol.tolerate(Tolerance::SingleValueAsArray, || {
                format!("'{label}' is multi-valued; send an array")
            })?;
            Ok(Value::Array(vec![coerce_one(tol, attr, other, label)?]))
        }
    }
}

/// Coerces one value (an element, for a multi-valued attribute).
pub(super) fn coerce_one(
    tol: &mut Tolerances,
    attr: &Attribute,
    value: &Value,
    label: &str,
) -> Result<Value> {
    match (attr.kind, value) {
        (AttrType::Boolean, Value::String(s)) => {
            let b = if s.eq_ignore_ascii_case("true") {
                true
            } else if s.eq_ignore_ascii_case("false") {
                false
            } else {
                return Ok(value.clone());
            };
            tol.tolerate(Tolerance::BooleanString, || {
                format!("'{label}' must be a JSON boolean, not the string \"{s}\"")
            })?;
            Ok(Value::Bool(b))
        }
        (AttrType::Complex, Value::String(s)) if is_manager(attr) => {
            if s.trim().is_empty() {
                tol.tolerate(Tolerance::EmptyManager, || {
                    format!("'{label}' must be an object, not an empty string")
                })?;
                return Ok(Value::Null);
            }
            tol.tolerate(Tolerance::ManagerString, || {
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
                    tol.tolerate(Tolerance::EmptyManager, || {
                        format!("'{label}.value' must not be empty")
                    })?;
                    return Ok(Value::Null);
                }
            }
            let mut out = Map::new();
            for (k, v) in obj {
                let v = match attr.sub(k) {
                    Some(sub) => coerce(tol, sub, v, &format!("{label}.{}", sub.name))?,
                    None => v.clone(),
                };
                out.insert(k.clone(), v);
            }
            Ok(Value::Object(out))
        }
        _ => Ok(value.clone()),
    }
}

/// The change an `add` or `replace` of `value` makes to sub-attribute `sub` of a value.
pub(super) fn sub_change(
    tol: &mut Tolerances,
    sub: &Attribute,
    value: Option<&Value>,
    op: Op,
    label: &str,
) -> Result<SubChange> {
    let v = coerce(tol, sub, value.unwrap_or(&Value::Null), label)?;
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
pub(super) fn validated_element(attr: &Attribute, v: Value, label: &str) -> Result<Value> {
    match validate_attr(attr, &Value::Array(vec![v]), label)? {
        Some(Value::Array(mut a)) if a.len() == 1 => Ok(a.remove(0)),
        _ => Err(ScimError::invalid_value(format!(
            "'{label}' needs a non-empty value"
        ))),
    }
}

/// Several values given as primary in one array: the last one given wins, before validation
/// (which would refuse two primaries) sees them.
pub(super) fn settle_given_primary(v: &mut Value) {
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

pub(super) fn is_manager(attr: &Attribute) -> bool {
    attr.name == "manager" && attr.kind == AttrType::Complex && !attr.multi_valued
}
