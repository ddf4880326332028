//! SQL for attributes no schema declares (`crate::proto::filter`'s `Node::Undeclared`).
//!
//! Their names are the client's spelling, so no fixed JSON path reaches them: the rows are
//! found by name with `json_each` and `COLLATE NOCASE`, and deeper levels are read through the
//! `fullkey` SQLite itself gives each row (quoted as its JSON path syntax requires), never
//! through a path built from the filter's text. Each rule mirrors the evaluator:
//! - elements (`e`): under every top-level member named like the URN that is an object (or at
//!   the top level, without URN), every member named like the attribute; an array's items, or
//!   the value itself: `json_each` over the array, else over the value's parent restricted to
//!   the value's own key;
//! - a comparison holds for a value of the literal's JSON type only (`e.type`), then compares
//!   as a case-insensitive string, a number or a boolean like a declared one;
//! - a sub-attribute (`s`): members of an object element named like it;
//! - `pr`: some leaf of the value neither null nor `""`, through `json_tree`.
//!
//! No index covers these reads (the names are the client's, so no expression index can be
//! declared for them): every resource of the tenant and type is read. A `LIKE` on the text
//! first ([`text_prefilter`]) spares the JSON parse of those that cannot match
//! (docs/PERFORMANCE.md gives the cost at 100k users).

use super::{internal, like_escape, typed_compare_sql};
use crate::proto::error::ScimError;
use crate::proto::filter::{Kind, Leaf, Lit, Loc, Node, Op, UndeclaredAttr};
use crate::store::sql::SqlValue;

/// What the stored text must contain for some element of `attr` to satisfy `cond`: the
/// attribute's name as a member name, and, when `cond` (or some of its top-level `and` terms)
/// is a positive string comparison, the literal. Both are `LIKE` tests on `r.data`, which fold
/// ASCII case as `COLLATE NOCASE` does and read the text without parsing it, so a resource
/// without them costs no JSON parse. The literal is used only when its characters are ones
/// serde_json writes as they are (not `"`, `\` or control characters), so that it appears in
/// the text exactly when it appears in the value.
pub(super) fn text_prefilter(
    attr: &UndeclaredAttr,
    cond: &Node,
    params: &mut Vec<SqlValue>,
) -> String {
    const LIKE: &str = "r.data LIKE ? ESCAPE '\\'";
    params.push(SqlValue::Text(format!("%\"{}\"%", like_escape(&attr.name))));
    let literal = |n: &Node| match n {
        Node::Cmp {
            leaf:
                Leaf {
                    kind: Kind::Str { .. },
                    loc: Loc::Loose(_),
                },
            op: Op::Eq | Op::Co | Op::Sw | Op::Ew,
            lit: Lit::Str(s),
        } if !s.is_empty() && !s.chars().any(|c| c < ' ' || c == '"' || c == '\\') => {
            Some(s.clone())
        }
        _ => None,
    };
    // Every such literal of an `and` must be there: the rarest one spares the most parses.
    let required: Vec<String> = match cond {
        Node::And(items) => items.iter().filter_map(literal).take(4).collect(),
        other => literal(other).into_iter().collect(),
    };
    let mut sql = LIKE.to_string();
    for s in required {
        params.push(SqlValue::Text(format!("%{}%", like_escape(&s))));
        sql.push_str(" AND ");
        sql.push_str(LIKE);
    }
    sql
}

/// `FROM … WHERE …` (open for more `AND` terms) yielding the elements `e` of `attr`, with the
/// names bound as parameters.
pub(super) fn elements_sql(attr: &UndeclaredAttr, params: &mut Vec<SqlValue>) -> String {
    const ELEMENTS: &str = "json_each(r.data, CASE a.type WHEN 'array' THEN a.fullkey \
                            ELSE a.path END) e";
    const OWN: &str = "(a.type = 'array' OR e.key = a.key)";
    match &attr.urn {
        Some(urn) => {
            params.push(SqlValue::Text(urn.clone()));
            params.push(SqlValue::Text(attr.name.clone()));
            format!(
                "json_each(r.data) u, json_each(r.data, u.fullkey) a, {ELEMENTS} \
                 WHERE u.key = ? COLLATE NOCASE AND u.type = 'object' \
                 AND a.key = ? COLLATE NOCASE AND {OWN}"
            )
        }
        None => {
            params.push(SqlValue::Text(attr.name.clone()));
            format!("json_each(r.data) a, {ELEMENTS} WHERE a.key = ? COLLATE NOCASE AND {OWN}")
        }
    }
}

/// The JSON types (`json_each`'s `type`) a literal of this kind compares with.
fn type_guard(row: &str, kind: Kind) -> Result<String, ScimError> {
    let types = match kind {
        Kind::Str { .. } => "'text'",
        Kind::Num => "'integer', 'real'",
        Kind::Bool => "'true', 'false'",
        Kind::DateTime | Kind::Complex => {
            return Err(internal("undeclared values compare as JSON scalars"))
        }
    };
    Ok(format!("{row}.type IN ({types})"))
}

/// A comparison on the element (`sub` = `None`) or on its members named `sub`.
pub(super) fn compare_sql(
    sub: Option<&str>,
    kind: Kind,
    op: Op,
    lit: &Lit,
    params: &mut Vec<SqlValue>,
) -> Result<String, ScimError> {
    let Some(sub) = sub else {
        let guard = type_guard("e", kind)?;
        return Ok(format!(
            "({guard} AND {})",
            typed_compare_sql("e.atom", kind, op, lit, params)?
        ));
    };
    params.push(SqlValue::Text(sub.to_string()));
    let guard = type_guard("s", kind)?;
    let cmp = typed_compare_sql("s.atom", kind, op, lit, params)?;
    Ok(format!(
        "(e.type = 'object' AND EXISTS (SELECT 1 FROM json_each(r.data, e.fullkey) s \
         WHERE s.key = ? COLLATE NOCASE AND {guard} AND {cmp}))"
    ))
}

/// `pr` on the element, or on its members named `sub`.
pub(super) fn present_sql(sub: Option<&str>, params: &mut Vec<SqlValue>) -> String {
    let tree = |row: &str| {
        format!("EXISTS (SELECT 1 FROM json_tree(r.data, {row}.fullkey) t WHERE t.atom <> '')")
    };
    let Some(sub) = sub else {
        return tree("e");
    };
    params.push(SqlValue::Text(sub.to_string()));
    format!(
        "(e.type = 'object' AND EXISTS (SELECT 1 FROM json_each(r.data, e.fullkey) s \
         WHERE s.key = ? COLLATE NOCASE AND {}))",
        tree("s")
    )
}

/// The sort key of an undeclared attribute (or of its sub-attribute): the first scalar value
/// under a matching name, in stored order; NULL for none, or for an array or object (the
/// attribute is then not the singular value sorting needs). A `sortBy` binds no parameters,
/// so the names are SQL literals, limited to the characters the filter grammar allows in a
/// path (`crate::proto::filter`'s parser): nothing that could leave the literal.
pub(super) fn sort_expr(attr: &UndeclaredAttr, sub: Option<&str>) -> Result<String, ScimError> {
    let name = literal(&attr.name)?;
    let (mut from, mut cond) = match &attr.urn {
        Some(urn) => (
            "json_each(r.data) u, json_each(r.data, u.fullkey) a".to_string(),
            format!(
                "u.key = {} COLLATE NOCASE AND u.type = 'object' AND a.key = {name} COLLATE NOCASE",
                literal(urn)?
            ),
        ),
        None => (
            "json_each(r.data) a".to_string(),
            format!("a.key = {name} COLLATE NOCASE"),
        ),
    };
    let value = match sub {
        None => "a.atom",
        Some(sub) => {
            from.push_str(", json_each(r.data, a.fullkey) s");
            cond.push_str(&format!(
                " AND a.type = 'object' AND s.key = {} COLLATE NOCASE",
                literal(sub)?
            ));
            "s.atom"
        }
    };
    Ok(format!(
        "(SELECT {value} FROM {from} WHERE {cond} AND {value} IS NOT NULL LIMIT 1)"
    ))
}

fn literal(s: &str) -> Result<String, ScimError> {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$' | ':' | '.'));
    if plain {
        Ok(format!("'{s}'"))
    } else {
        Err(ScimError::invalid_value(format!(
            "cannot sort by '{s}': not an attribute name"
        )))
    }
}
