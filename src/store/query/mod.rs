//! Filter and sort push-down: a bound filter becomes one SQLite boolean expression over
//! `resources r`, with every literal a bound `?` parameter.
//!
//! The expression reads the same values the renderer shows, from where the store keeps them:
//! `id` and `meta.*` from columns, `userName`/`displayName`/`externalId` from their indexed
//! generated columns, other attributes with `json_extract(r.data, …)` at their canonical JSON
//! path, multi-valued attributes through `json_each`, and `Group.members` / `User.groups` from
//! the `members` table, and attributes no schema declares by name through `json_each`
//! (`undeclared`). Each construct mirrors one rule of `crate::proto::filter`'s evaluator; the
//! differential test in this module compares the two on random data and filters.
//!
//! Contract with the store, which the evaluator relies on too: values in `data` have the JSON
//! types the schema declares (`crate::proto::resource::validate` enforces it), dateTimes are stored in
//! `crate::proto::time::format_millis` form (true of `created`/`modified`; the current schemas keep no
//! other dateTime), `data` is serde_json's serialisation (which escapes only `"`, `\` and control
//! characters), and `members`/`groups` render as `crate::store` builds them (a member's
//! `display` is its displayName, else its userName; a user's groups have `type` "direct").
//! Structural deviations in `data` (non-object elements, a scalar where an array belongs) are
//! still handled identically by both back ends and never make the SQL fail.
//!
//! NULL handling: a leaf is NULL when its attribute is absent, and a WHERE clause (or an
//! `AND`/`OR` of such leaves) treats NULL as false, which is the intended answer. Only `NOT`
//! would turn "unknown" into "unknown" instead of "true", so it is emitted as
//! `NOT COALESCE(x, 0)`: `ne` and `not (...)` then match absent attributes, as in memory.

use crate::proto::error::ScimError;
use crate::proto::filter::{
    self, Container, Filter, Kind, Leaf, Lit, Loc, Node, Op, PosError, ResolvedAttr, Store,
};
use crate::proto::schema::{AttrType, ResourceType, TypeScope};
use crate::store::sql::{SqlValue, MAX_PARAMS};

/// Parameters left for the caller (tenant, paging) when a filter is planned.
pub const RESERVED_PARAMS: usize = 10;

/// SQL boolean expression for `filter` over the table alias `r` (table `resources`),
/// appending bound values to `params` in the order of the `?` placeholders it emits.
///
/// The caller adds `r.tenant = ?` and, for a typed endpoint, `r.type = '<rt>'`; for `rt = None`
/// (root search) the expression guards attributes that exist on one type only by `r.type`.
/// Fails with `400 invalidFilter` for filters that do not bind to the schema, or when
/// `params` would end up with more than `MAX_PARAMS - RESERVED_PARAMS` values.
pub fn where_sql(
    filter: &Filter,
    scope: impl Into<TypeScope>,
    params: &mut Vec<SqlValue>,
) -> Result<String, ScimError> {
    let bound = filter::bind(filter, scope)?;
    let start = params.len();
    let limit = MAX_PARAMS - RESERVED_PARAMS;
    let result = match emit(&bound.0, Scope::Row, params) {
        Ok(sql) if params.len() <= limit => return Ok(sql),
        Ok(_) => Err(ScimError::invalid_filter(format!(
            "the filter is too complex: it needs more than {limit} bound values"
        ))),
        Err(e) => Err(e),
    };
    params.truncate(start);
    result
}

/// SQL expression to `ORDER BY` for a `sortBy` attribute path, with the collation matching
/// the attribute's `caseExact` (`COLLATE NOCASE` for case-insensitive strings). Multi-valued
/// attributes sort by the primary element's value, else the first element's (RFC 7644
/// §3.4.2.3); members and groups by their smallest value. Resources without a value yield
/// NULL (SQLite sorts NULL first when ascending). Unknown or unsortable paths are
/// `400 invalidValue`.
pub fn sort_sql(sort_by: &str, scope: impl Into<TypeScope>) -> Result<SortOrder, ScimError> {
    let scope: TypeScope = scope.into();
    let rt = scope.only;
    let invalid = |e: PosError| {
        ScimError::invalid_value(format!(
            "invalid sortBy '{sort_by}' at position {}: {}",
            e.pos, e.msg
        ))
    };
    let path = filter::parser_attr_path(sort_by).map_err(invalid)?;
    let types: Vec<ResourceType> = match rt {
        Some(rt) => vec![rt],
        None => ResourceType::ALL.to_vec(),
    };
    let mut per_type = Vec::new();
    let mut first_err = None;
    for t in types {
        let ts = scope.schemas.of(t);
        match filter::resolve_for_sort(&path, ts) {
            Ok(r) => per_type.push((t, sort_expr(&r, t)?)),
            Err((unknown, e)) => {
                if !unknown {
                    return Err(invalid(e));
                }
                // An attribute kept without a schema: its values sort by JSON type (numbers
                // and booleans as 0/1, then strings case-insensitively).
                match filter::undeclared_attr(&path, ts) {
                    Some(attr) => {
                        let expr = undeclared::sort_expr(&attr, path.sub.as_deref())?;
                        per_type.push((t, (expr, true, None)));
                    }
                    None => {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
    }
    let Some((_, (first_expr, nocase, first_column))) = per_type.first().cloned() else {
        return Err(invalid(
            first_err.unwrap_or_else(|| PosError::new(1, "unknown attribute")),
        ));
    };
    let (expr, column) = if rt.is_some()
        || (per_type.len() == ResourceType::ALL.len()
            && per_type.iter().all(|(_, e)| e.0 == first_expr))
    {
        (first_expr, first_column)
    } else {
        let arms: String = per_type
            .iter()
            .map(|(t, (e, _, _))| format!(" WHEN '{}' THEN {e}", t.name()))
            .collect();
        (format!("(CASE r.type{arms} END)"), None)
    };
    let expr = if nocase {
        format!("{expr} COLLATE NOCASE")
    } else {
        expr
    };
    Ok(SortOrder {
        expr,
        column,
        nocase,
    })
}

/// A planned `sortBy`: the SQL expression to order by, and what it is in typed terms, so the
/// store chooses its paging strategy without reading SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortOrder {
    /// The `ORDER BY` expression, with `COLLATE NOCASE` when `nocase`.
    pub expr: String,
    /// The column the expression is, exactly; `None` for a value read from `data`.
    pub column: Option<Column>,
    /// Compared case-insensitively.
    pub nocase: bool,
}

/// The sort key of a resolved path, whether it sorts case-insensitively, and the column it
/// is when it is one.
fn sort_expr(
    r: &ResolvedAttr,
    rt: ResourceType,
) -> Result<(String, bool, Option<Column>), ScimError> {
    let top = r.attr;
    let leaf = match (top.kind, r.sub, top.multi_valued) {
        (AttrType::Complex, Some(sub), _) => Some(sub),
        // RFC 7644 §3.4.2.3 sorts multi-valued attributes by their `value`.
        (AttrType::Complex, None, true) => top.sub("value"),
        (AttrType::Complex, None, false) => None,
        _ => Some(top),
    };
    let Some(leaf) = leaf else {
        let path = r.json_path().join(".");
        return Err(ScimError::invalid_value(format!(
            "cannot sort by '{path}': it is complex; name a sub-attribute"
        )));
    };
    let nocase = matches!(Kind::of(leaf), Kind::Str { case_exact: false });
    if top.multi_valued {
        let elem = match top.kind {
            AttrType::Complex => Loc::Elem(Some(leaf.name.as_str())),
            _ => Loc::Elem(None),
        };
        return Ok((
            first_value_sql(&r.container(rt), elem, nocase)?,
            nocase,
            None,
        ));
    }
    let path = r.json_path();
    let column = column(&path).or_else(|| indexed_column(&path));
    Ok((value_expr(&Loc::Path(path), Scope::Row)?, nocase, column))
}

/// The value of `elem` in the primary element of a multi-valued attribute, else in its first
/// element that has one; for members and groups (which have no order), the smallest.
fn first_value_sql(container: &Container, elem: Loc, nocase: bool) -> Result<String, ScimError> {
    let scope = Scope::Elem(container.store);
    let v = value_expr(&elem, scope)?;
    if container.store != Store::Data {
        let collate = if nocase { " COLLATE NOCASE" } else { "" };
        let rows = member_rows(container.store, elem != Loc::Elem(Some("value")));
        return Ok(format!(
            "(SELECT {v} FROM {rows} AND {v} IS NOT NULL ORDER BY {v}{collate} LIMIT 1)"
        ));
    }
    // `IS 1` is 0, never NULL, for `primary: false` and for no `primary` alike, so both keep
    // their array order (`= 1 DESC` put false before unflagged elements).
    let primary = value_expr(&Loc::Elem(Some("primary")), scope)?;
    Ok(format!(
        "(SELECT {v} FROM json_each(r.data, {}) e WHERE {v} IS NOT NULL \
         ORDER BY ({primary} IS 1) DESC, e.id LIMIT 1)",
        json_path(&container.path)?
    ))
}

/// Where an expression is evaluated: on the resource row, or on one element of a
/// multi-valued attribute (`e` from `json_each`, or `m`/`x` from `members`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Row,
    Elem(Store),
}

/// A bound tree the planner cannot express is a defect, not a client error; `_why` documents
/// the broken invariant at the call site.
fn internal(_why: &str) -> ScimError {
    ScimError::internal()
}

fn emit(node: &Node, scope: Scope, params: &mut Vec<SqlValue>) -> Result<String, ScimError> {
    let all =
        |items: &[Node], sep: &str, params: &mut Vec<SqlValue>| -> Result<String, ScimError> {
            let parts = items
                .iter()
                .map(|n| emit(n, scope, params))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(format!("({})", parts.join(sep)))
        };
    match node {
        Node::Const(b) => Ok(if *b { "1" } else { "0" }.to_string()),
        Node::Cmp { leaf, op, lit } => match &leaf.loc {
            Loc::Loose(sub) => undeclared::compare_sql(sub.as_deref(), leaf.kind, *op, lit, params),
            _ => compare_sql(leaf, *op, lit, scope, params),
        },
        Node::Present(leaf) => match &leaf.loc {
            Loc::Loose(sub) => Ok(undeclared::present_sql(sub.as_deref(), params)),
            _ => present_sql(leaf, scope),
        },
        Node::Any { container, cond } => {
            // The index pre-filter's `?` comes first in the SQL text, so its value is bound
            // before the condition's.
            let indexed = indexed_value(container, cond);
            if let Some((_, value)) = &indexed {
                params.push(SqlValue::Text(value.clone()));
            }
            let inner = emit(cond, Scope::Elem(container.store), params)?;
            let exists = any_sql(container, &inner, needs_join(cond))?;
            Ok(match indexed {
                Some((attr, _)) => format!(
                    "(r.rowid IN (SELECT v.rid FROM value_index v WHERE v.attr = '{attr}' \
                     AND v.value = ? COLLATE NOCASE) AND {exists})"
                ),
                None => exists,
            })
        }
        Node::Not(inner) => Ok(format!("NOT COALESCE({}, 0)", emit(inner, scope, params)?)),
        Node::And(items) => all(items, " AND ", params),
        Node::Or(items) => all(items, " OR ", params),
        Node::OfType(rt, inner) => Ok(format!(
            "(r.type = '{}' AND {})",
            rt.name(),
            emit(inner, scope, params)?
        )),
        Node::Undeclared { attr, cond } => {
            // The text pre-filter's `?`s come first, then the element rows', then the
            // condition's.
            let text = undeclared::text_prefilter(attr, cond, params);
            let rows = undeclared::elements_sql(attr, params);
            let inner = emit(cond, scope, params)?;
            Ok(format!(
                "({text} AND EXISTS (SELECT 1 FROM {rows} AND {inner}))"
            ))
        }
    }
}

/// Multi-valued attributes whose element `value`s the `value_index` table (migration 0004)
/// holds. Must match the list in its triggers.
const VALUE_INDEXED: [&str; 5] = ["emails", "phoneNumbers", "ims", "entitlements", "roles"];

/// For `attr[… value eq "x" …]` on an indexed attribute, where `value eq "x"` is the condition
/// or one of its top-level `and` terms: the attribute and the literal. Every match of the
/// condition has an element whose value equals the literal case-insensitively, so
/// `value_index` narrows candidates without changing the result.
fn indexed_value(container: &Container, cond: &Node) -> Option<(&'static str, String)> {
    let attr = match (container.store, container.path.as_slice()) {
        (Store::Data, [attr]) if VALUE_INDEXED.contains(attr) => *attr,
        _ => return None,
    };
    let value_eq = |n: &Node| match n {
        Node::Cmp {
            leaf,
            op: Op::Eq,
            lit: Lit::Str(v),
        } if leaf.loc == Loc::Elem(Some("value")) => Some(v.clone()),
        _ => None,
    };
    let value = match cond {
        Node::And(items) => items.iter().find_map(value_eq),
        other => value_eq(other),
    }?;
    Some((attr, value))
}

/// Columns holding what the renderer shows at these paths (never stored in `data`).
/// A column of `resources` that holds an attribute's value: read instead of `data` where
/// one exists, and named to the store as a sort key (it knows which of them its indexes
/// cover) instead of as SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Id,
    Created,
    Modified,
    ResourceType,
    /// Generated columns equal to `json_extract(r.data, '$.<name>')`, read instead of `data`
    /// so that equality uses their indexes (`(tenant, user_name COLLATE NOCASE)`,
    /// `(tenant, type, display_name COLLATE NOCASE)`, `(tenant, type, external_id)`).
    UserName,
    DisplayName,
    ExternalId,
}

impl Column {
    pub fn sql(self) -> &'static str {
        match self {
            Column::Id => "r.id",
            Column::Created => "r.created",
            Column::Modified => "r.modified",
            Column::ResourceType => "r.type",
            Column::UserName => "r.user_name",
            Column::DisplayName => "r.display_name",
            Column::ExternalId => "r.external_id",
        }
    }
}

/// The column of a common attribute (`id`, `meta.*`).
fn column(path: &[&str]) -> Option<Column> {
    match path {
        ["id"] => Some(Column::Id),
        ["meta", "created"] => Some(Column::Created),
        ["meta", "lastModified"] => Some(Column::Modified),
        ["meta", "resourceType"] => Some(Column::ResourceType),
        _ => None,
    }
}

/// The generated column of a core attribute, if it has one.
fn indexed_column(path: &[&str]) -> Option<Column> {
    match path {
        ["userName"] => Some(Column::UserName),
        ["displayName"] => Some(Column::DisplayName),
        ["externalId"] => Some(Column::ExternalId),
        _ => None,
    }
}

/// A JSON path as an SQL string literal, e.g. `'$."urn:…:User".manager.value'`. Segments come
/// from the schema, never from the filter text; anything that could break out of the
/// literal is refused anyway.
fn json_path(segments: &[&str]) -> Result<String, ScimError> {
    let mut out = String::from("'$");
    for seg in segments {
        if seg.is_empty()
            || seg
                .chars()
                .any(|c| matches!(c, '\'' | '"' | '\\') || c.is_control())
        {
            return Err(internal("unquotable JSON path segment"));
        }
        let plain = seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if plain {
            out.push('.');
            out.push_str(seg);
        } else {
            out.push_str(".\"");
            out.push_str(seg);
            out.push('"');
        }
    }
    out.push('\'');
    Ok(out)
}

/// `json_each`'s element as a JSON object, NULL for any other element (so that a malformed
/// element never reaches `json_extract` as text it would fail to parse).
const ELEM_OBJECT: &str = "CASE e.type WHEN 'object' THEN e.value END";

/// The SQL value of a leaf.
fn value_expr(loc: &Loc, scope: Scope) -> Result<String, ScimError> {
    match (loc, scope) {
        (Loc::Path(path), _) => {
            if let Some(col) = column(path).or_else(|| indexed_column(path)) {
                return Ok(col.sql().to_string());
            }
            if path.first() == Some(&"meta") {
                return Err(internal("meta sub-attribute without a column"));
            }
            Ok(format!("json_extract(r.data, {})", json_path(path)?))
        }
        (Loc::Elem(Some(sub)), Scope::Elem(Store::Data)) => Ok(format!(
            "json_extract({ELEM_OBJECT}, {})",
            json_path(&[sub])?
        )),
        (Loc::Elem(None), Scope::Elem(Store::Data)) => Ok("e.atom".to_string()),
        (Loc::Elem(Some(sub)), Scope::Elem(store)) => member_field(store, sub).map(str::to_string),
        _ => Err(internal("element leaf outside an element scope")),
    }
}

/// `members` / `groups` sub-attributes, as `crate::store` renders them: a member's display is
/// its displayName, else its userName; a user's groups are direct memberships.
fn member_field(store: Store, sub: &str) -> Result<&'static str, ScimError> {
    match (store, sub) {
        (Store::Members, "value") => Ok("m.member_id"),
        (Store::Members, "display") => Ok("coalesce(x.display_name, x.user_name)"),
        (Store::Members, "type") => Ok("x.type"),
        (Store::Groups, "value") => Ok("m.group_id"),
        (Store::Groups, "display") => Ok("x.display_name"),
        (Store::Groups, "type") => Ok("'direct'"),
        _ => Err(internal("unknown member field")),
    }
}

/// Whether a condition over member rows reads the related resource (`x`).
fn needs_join(node: &Node) -> bool {
    let reads_x = |leaf: &Leaf| matches!(leaf.loc, Loc::Elem(Some(s)) if s != "value");
    match node {
        Node::Cmp { leaf, .. } | Node::Present(leaf) => reads_x(leaf),
        Node::Any { cond, .. } => needs_join(cond),
        Node::Not(n) | Node::OfType(_, n) => needs_join(n),
        Node::Undeclared { .. } => false,
        Node::And(items) | Node::Or(items) => items.iter().any(needs_join),
        Node::Const(_) => false,
    }
}

/// `FROM … WHERE …` over the member rows of the current resource, `x` being the related
/// resource when `join` is set.
fn member_rows(store: Store, join: bool) -> String {
    let (own, other) = match store {
        Store::Groups => ("member_id", "group_id"),
        _ => ("group_id", "member_id"),
    };
    let join = if join {
        format!(" JOIN resources x ON x.tenant = m.tenant AND x.id = m.{other}")
    } else {
        String::new()
    };
    format!("members m{join} WHERE m.tenant = r.tenant AND m.{own} = r.id")
}

fn any_sql(container: &Container, cond: &str, join: bool) -> Result<String, ScimError> {
    match container.store {
        Store::Data => Ok(format!(
            "EXISTS (SELECT 1 FROM json_each(r.data, {}) e WHERE {cond})",
            json_path(&container.path)?
        )),
        store => Ok(format!(
            "EXISTS (SELECT 1 FROM {} AND {cond})",
            member_rows(store, join)
        )),
    }
}

/// `pr`: a leaf (recursively) holding something other than null or `""`.
fn present_sql(leaf: &Leaf, scope: Scope) -> Result<String, ScimError> {
    let tree = |json: &str, path: &str| {
        format!("EXISTS (SELECT 1 FROM json_tree({json}, {path}) t WHERE t.atom <> '')")
    };
    match (&leaf.loc, scope) {
        (Loc::Path(path), _) => match column(path) {
            Some(col) => Ok(format!("{} <> ''", col.sql())),
            None if path.first() == Some(&"meta") => {
                Err(internal("meta sub-attribute without a column"))
            }
            None => Ok(tree("r.data", &json_path(path)?)),
        },
        (Loc::Elem(Some(sub)), Scope::Elem(Store::Data)) => {
            Ok(tree(ELEM_OBJECT, &json_path(&[sub])?))
        }
        (Loc::Elem(None), Scope::Elem(Store::Data)) => Ok("e.atom <> ''".to_string()),
        (Loc::Elem(Some(sub)), Scope::Elem(store)) => {
            Ok(format!("{} <> ''", member_field(store, sub)?))
        }
        _ => Err(internal("element leaf outside an element scope")),
    }
}

fn compare_sql(
    leaf: &Leaf,
    op: Op,
    lit: &Lit,
    scope: Scope,
    params: &mut Vec<SqlValue>,
) -> Result<String, ScimError> {
    let x = value_expr(&leaf.loc, scope)?;
    typed_compare_sql(&x, leaf.kind, op, lit, params)
}

/// `x op lit` for a value `x` of the leaf's kind.
fn typed_compare_sql(
    x: &str,
    kind: Kind,
    op: Op,
    lit: &Lit,
    params: &mut Vec<SqlValue>,
) -> Result<String, ScimError> {
    let sym = match op {
        Op::Eq => "=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Co | Op::Sw | Op::Ew => "",
    };
    let substring = sym.is_empty();
    match (kind, lit) {
        (Kind::Str { case_exact }, Lit::Str(s)) => {
            Ok(string_sql(x, case_exact, op, sym, s, params))
        }
        (Kind::Bool, Lit::Bool(b)) if op == Op::Eq => {
            // json_extract yields JSON true/false as 1/0.
            params.push(SqlValue::Int(i64::from(*b)));
            Ok(format!("{x} = ?"))
        }
        (Kind::Num, Lit::Int(i)) if !substring => {
            params.push(SqlValue::Int(*i));
            Ok(format!("{x} {sym} ?"))
        }
        (Kind::Num, Lit::Real(f)) if !substring => {
            params.push(SqlValue::Real(*f));
            Ok(format!("{x} {sym} ?"))
        }
        // Stored instants share one fixed format, so text order is time order.
        (Kind::DateTime, Lit::Instant { text, .. }) if !substring => {
            params.push(SqlValue::Text(text.clone()));
            Ok(format!("{x} {sym} ?"))
        }
        _ => Err(internal("comparison the binder should have refused")),
    }
}

/// String comparisons. `LIKE` folds ASCII case, so it serves `caseExact: false` only;
/// case-exact substring tests use `instr`/`substr`, which compare characters exactly.
fn string_sql(
    x: &str,
    case_exact: bool,
    op: Op,
    sym: &str,
    s: &str,
    params: &mut Vec<SqlValue>,
) -> String {
    let text = |v: &str| SqlValue::Text(v.to_string());
    if !case_exact {
        let pattern = match op {
            Op::Co => format!("%{}%", like_escape(s)),
            Op::Sw => format!("{}%", like_escape(s)),
            Op::Ew => format!("%{}", like_escape(s)),
            _ => {
                params.push(text(s));
                return format!("{x} {sym} ? COLLATE NOCASE");
            }
        };
        params.push(SqlValue::Text(pattern));
        return format!("{x} LIKE ? ESCAPE '\\'");
    }
    match op {
        Op::Co => {
            params.push(text(s));
            format!("instr({x}, ?) > 0")
        }
        // The first occurrence is at the start exactly when the value starts with `s`.
        Op::Sw => {
            params.push(text(s));
            format!("instr({x}, ?) = 1")
        }
        // `substr(x, -0)` is not the empty suffix, and every string ends with "".
        Op::Ew if s.is_empty() => {
            params.push(text(s));
            format!("instr({x}, ?) > 0")
        }
        Op::Ew => {
            let chars = i64::try_from(s.chars().count()).unwrap_or(i64::MAX);
            params.push(SqlValue::Int(chars));
            params.push(text(s));
            format!("substr({x}, -?) = ?")
        }
        _ => {
            params.push(text(s));
            format!("{x} {sym} ?")
        }
    }
}

/// Escapes `LIKE` wildcards for `ESCAPE '\'`.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

mod undeclared;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod differential;
