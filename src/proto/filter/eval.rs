//! In-memory evaluation of a bound filter over a rendered resource.
//!
//! Every rule here mirrors one SQLite construct in `crate::store::query`, and the differential test
//! there checks the pair on random data and filters:
//! - case-insensitive strings: ASCII folding only, like `COLLATE NOCASE` and `LIKE`;
//! - elements of a multi-valued attribute: exactly the rows `json_each` yields (an array's
//!   items, an object's member values, or a lone scalar itself);
//! - presence: some leaf that is neither null nor `""`, like
//!   `EXISTS (SELECT 1 FROM json_tree(..) t WHERE t.atom <> '')`.

use super::{Kind, Leaf, Lit, Loc, Node, Op, UndeclaredAttr};
use crate::proto::time;
use serde_json::{Number, Value};
use std::cmp::Ordering;

pub(crate) fn eval(node: &Node, resource: &Value) -> bool {
    eval_in(node, resource, None)
}

fn eval_in(node: &Node, res: &Value, elem: Option<&Value>) -> bool {
    match node {
        Node::Const(b) => *b,
        Node::Cmp { leaf, op, lit } => match &leaf.loc {
            Loc::Loose(sub) => loose_values(elem, sub.as_deref())
                .into_iter()
                .any(|v| compare(leaf.kind, *op, lit, v)),
            _ => value(leaf, res, elem).is_some_and(|v| compare(leaf.kind, *op, lit, v)),
        },
        Node::Present(leaf) => match &leaf.loc {
            Loc::Loose(sub) => loose_values(elem, sub.as_deref())
                .into_iter()
                .any(non_empty),
            Loc::Elem(None) => elem.is_some_and(|e| is_scalar(e) && non_empty(e)),
            _ => value(leaf, res, elem).is_some_and(non_empty),
        },
        Node::Any { container, cond } => elements(lookup(res, &container.path))
            .into_iter()
            .any(|e| eval_in(cond, res, Some(e))),
        Node::Not(inner) => !eval_in(inner, res, elem),
        Node::And(items) => items.iter().all(|n| eval_in(n, res, elem)),
        Node::Or(items) => items.iter().any(|n| eval_in(n, res, elem)),
        Node::OfType(rt, inner) => {
            let ty = lookup(res, &["meta", "resourceType"]).and_then(Value::as_str);
            ty == Some(rt.name()) && eval_in(inner, res, elem)
        }
        Node::Undeclared { attr, cond } => undeclared_elements(res, attr)
            .into_iter()
            .any(|e| eval_in(cond, res, Some(e))),
    }
}

/// The elements of an undeclared attribute, as `crate::store::query`'s `json_each` rows give
/// them: under every member of the resource whose name is the URN (ASCII case folded, as
/// `COLLATE NOCASE`) and that is an object, or at the top level; every member whose name is
/// the attribute's; an array's items, or the value itself.
fn undeclared_elements<'a>(res: &'a Value, attr: &UndeclaredAttr) -> Vec<&'a Value> {
    let holders: Vec<&serde_json::Map<String, Value>> = match (&attr.urn, res.as_object()) {
        (_, None) => Vec::new(),
        (None, Some(top)) => vec![top],
        (Some(urn), Some(top)) => top
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(urn))
            .filter_map(|(_, v)| v.as_object())
            .collect(),
    };
    let mut out = Vec::new();
    for (_, v) in holders
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.eq_ignore_ascii_case(&attr.name))
    {
        match v {
            Value::Array(items) => out.extend(items),
            other => out.push(other),
        }
    }
    out
}

/// What a `Loc::Loose` leaf reads in an element: the element, or its members named `sub`.
fn loose_values<'a>(elem: Option<&'a Value>, sub: Option<&str>) -> Vec<&'a Value> {
    match (elem, sub) {
        (None, _) => Vec::new(),
        (Some(e), None) => vec![e],
        (Some(e), Some(sub)) => e
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.eq_ignore_ascii_case(sub))
            .map(|(_, v)| v)
            .collect(),
    }
}

fn lookup<'a>(res: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(res, |v, key| v.as_object()?.get(*key))
}

fn value<'a>(leaf: &Leaf, res: &'a Value, elem: Option<&'a Value>) -> Option<&'a Value> {
    match &leaf.loc {
        Loc::Path(path) => lookup(res, path),
        Loc::Elem(Some(sub)) => elem?.as_object()?.get(*sub),
        // `json_each(..).atom`: NULL for arrays and objects.
        Loc::Elem(None) => elem.filter(|e| is_scalar(e)),
        Loc::Loose(_) => None,
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

/// The rows `json_each` produces for a value.
fn elements(v: Option<&Value>) -> Vec<&Value> {
    match v {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Object(map)) => map.values().collect(),
        Some(scalar) => vec![scalar],
    }
}

/// RFC 7644 `pr`: a non-empty value, or a complex value with a non-empty node.
pub(crate) fn non_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
        Value::Array(items) => items.iter().any(non_empty),
        Value::Object(map) => map.values().any(non_empty),
    }
}

fn compare(kind: Kind, op: Op, lit: &Lit, v: &Value) -> bool {
    match (kind, lit, v) {
        (Kind::Str { case_exact }, Lit::Str(l), Value::String(s)) => {
            compare_str(case_exact, op, s, l)
        }
        (Kind::Bool, Lit::Bool(l), Value::Bool(b)) => op == Op::Eq && b == l,
        (Kind::Num, _, Value::Number(n)) => {
            compare_num(n, lit).is_some_and(|o| ordering_holds(op, o))
        }
        (Kind::DateTime, Lit::Instant { millis, .. }, Value::String(s)) => {
            time::parse_rfc3339(s).is_some_and(|m| ordering_holds(op, m.cmp(millis)))
        }
        _ => false,
    }
}

fn ordering_holds(op: Op, o: Ordering) -> bool {
    match op {
        Op::Eq => o == Ordering::Equal,
        Op::Gt => o == Ordering::Greater,
        Op::Ge => o != Ordering::Less,
        Op::Lt => o == Ordering::Less,
        Op::Le => o != Ordering::Greater,
        Op::Co | Op::Sw | Op::Ew => false,
    }
}

/// `caseExact: false` folds ASCII letters only, as SQLite's `NOCASE` and `LIKE` do; every
/// other character (including non-ASCII letters) must match exactly. Ordering is byte-wise
/// (UTF-8 byte order is code point order) after folding, as `NOCASE` compares.
fn compare_str(case_exact: bool, op: Op, s: &str, l: &str) -> bool {
    if case_exact {
        return match op {
            Op::Eq => s == l,
            Op::Co => s.contains(l),
            Op::Sw => s.starts_with(l),
            Op::Ew => s.ends_with(l),
            _ => ordering_holds(op, s.cmp(l)),
        };
    }
    match op {
        Op::Eq => s.eq_ignore_ascii_case(l),
        Op::Co => s.to_ascii_lowercase().contains(&l.to_ascii_lowercase()),
        Op::Sw => s.to_ascii_lowercase().starts_with(&l.to_ascii_lowercase()),
        Op::Ew => s.to_ascii_lowercase().ends_with(&l.to_ascii_lowercase()),
        _ => {
            let fold = |x: &str| {
                x.bytes()
                    .map(|b| b.to_ascii_lowercase())
                    .collect::<Vec<u8>>()
            };
            ordering_holds(op, fold(s).cmp(&fold(l)))
        }
    }
}

/// Numeric order as SQLite compares INTEGER and REAL: exactly, without rounding the integer.
fn compare_num(n: &Number, lit: &Lit) -> Option<Ordering> {
    match (n.as_i64(), lit) {
        (Some(a), Lit::Int(b)) => Some(a.cmp(b)),
        (Some(a), Lit::Real(b)) => cmp_int_real(a, *b),
        (None, Lit::Int(b)) => cmp_int_real(*b, n.as_f64()?).map(Ordering::reverse),
        (None, Lit::Real(b)) => n.as_f64()?.partial_cmp(b),
        _ => None,
    }
}

fn cmp_int_real(a: i64, b: f64) -> Option<Ordering> {
    if b.is_nan() {
        return None;
    }
    // 2^63: every i64 is below it, and every i64 is at or above -2^63.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if b >= TWO_63 {
        return Some(Ordering::Less);
    }
    if b < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let whole = b.trunc();
    // In range, so the cast is exact.
    match a.cmp(&(whole as i64)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(b - whole)),
        o => Some(o),
    }
}
