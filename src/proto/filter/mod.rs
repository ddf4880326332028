//! SCIM filter language (RFC 7644 §3.4.2.2): parsing into a typed AST, resolution against the
//! schema, and in-memory evaluation.
//!
//! The pipeline is `parse` (text → [`Filter`], purely syntactic) → `bind` (schema resolution and
//! type checking → [`Bound`]) → either [`Bound::matches`] (in memory, over a rendered resource)
//! or `crate::store::query::where_sql` (one parameterised SQLite expression). Both back ends consume the
//! same `Bound` tree, so every decision about types, case folding, multi-valued attributes and
//! absent values is taken once, here; the differential test in `crate::store::query` holds the two
//! back ends to identical results.
//!
//! Semantics, chosen to be expressible exactly in SQLite:
//! - Strings with `caseExact: false` compare with ASCII-only case folding (SQLite's `NOCASE`
//!   collation and `LIKE`); non-ASCII letters are compared exactly. `caseExact: true` strings
//!   compare byte-wise. Ordering (`gt` …) is byte-wise after that folding.
//! - `ne` is exactly `not (eq)`: it matches when the attribute is absent, and on a multi-valued
//!   attribute when *no* value equals (`emails.type ne "work"` = no work email). Inside a value
//!   filter it applies per element (`emails[type ne "work"]` = some email that is not work).
//! - Multi-valued attributes match when any value matches. A multi-valued complex attribute
//!   compared without a sub-attribute means its `value` (`emails co "@x"` = `emails.value co "@x"`).
//! - `pr` is true when the value contains any non-null, non-empty-string leaf (RFC 7644: "a
//!   non-empty node for complex attributes"); `eq null` is `not pr`, `ne null` is `pr`.
//! - `dateTime` values compare as instants; literals must be RFC 3339.
//! - `emails[type eq "work"].value eq "x"` (Microsoft Entra ID's form) is read as
//!   `emails[type eq "work" and value eq "x"]`: one element must satisfy both.
//! - Attributes no schema declares (an IdP's custom extension, kept verbatim) compare by their
//!   JSON type, strings case-insensitively, names and URNs matched case-insensitively; see
//!   `resolve::undeclared`.

mod eval;
mod parser;
mod resolve;

use crate::proto::error::ScimError;
use crate::proto::schema::{TypeSchemas, TypeScope};
use serde_json::Value;
use std::fmt;

pub use resolve::{resolve, ResolvedAttr};
pub(crate) use resolve::{undeclared_attr, UndeclaredAttr};
pub(crate) use resolve::{Container, Kind, Leaf, Lit, Loc, Node, Op, Store};

/// Longest filter accepted, in bytes; bounds parse time and the size of the generated SQL.
pub const MAX_FILTER_BYTES: usize = 4096;
/// Deepest nesting of `(`, `not (` and `[` accepted; bounds recursion in every back end.
pub const MAX_DEPTH: usize = 32;
/// Most comparisons (`attr op value` or `attr pr`) in one filter.
pub const MAX_COMPARISONS: usize = 200;

/// A parsed filter. Attribute names are kept as written; they are matched case-insensitively
/// against the schema when the filter is bound.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attrPath op value`
    Compare(Comparison),
    /// `attrPath pr`
    Present(AttrPath),
    /// `attrPath[valFilter]`: attribute paths inside `filter` name sub-attributes of `path`,
    /// and one element of `path` must satisfy the whole of `filter`.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
    Not(Box<Filter>),
    /// Two or more operands.
    And(Vec<Filter>),
    /// Two or more operands.
    Or(Vec<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub path: AttrPath,
    pub op: CompareOp,
    pub value: Literal,
    /// 1-based character positions, for error messages raised after parsing.
    pub op_pos: usize,
    pub value_pos: usize,
}

/// `[URN ":"] name ["." sub]`, as written by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
    /// 1-based character position of the path in the input.
    pub pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }
}

/// A `compValue`: a JSON literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    /// A JSON number without fraction or exponent that fits in an `i64`.
    Integer(i64),
    /// Any other JSON number (always finite).
    Decimal(f64),
    Bool(bool),
    Null,
}

/// Parses a filter (RFC 7644 §3.4.2.2). Errors are `400 invalidFilter` naming the 1-based
/// character position and what was expected there.
pub fn parse(input: &str) -> Result<Filter, ScimError> {
    parser::parse_filter(input).map_err(|e| e.into_filter_error())
}

/// Parses a bare attribute path such as `name.givenName` or
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`
/// (for `sortBy`, `attributes`, …). Errors are `400 invalidFilter`.
pub fn parse_attr_path(input: &str) -> Result<AttrPath, ScimError> {
    parser::parse_attr_path(input).map_err(|e| e.into_filter_error())
}

/// A PATCH operation's `path`: `attrPath` or `valuePath ["." subAttr]` (RFC 7644 §3.5.2),
/// parsed by the filter grammar so that a path means the same in a filter and in a PATCH.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// `[URN ":"] name ["." sub]`.
    pub path: AttrPath,
    /// The value filter between `[` and `]`.
    pub filter: Option<Filter>,
    /// The sub-attribute after `].`.
    pub sub: Option<String>,
}

/// Parses a PATCH `path`. Malformed paths (brackets included) are `400 invalidPath`; a
/// malformed filter between the brackets is `400 invalidFilter`, as in a query.
pub fn parse_patch_path(input: &str) -> Result<PatchPath, ScimError> {
    parser::parse_patch_path(input).map_err(|(in_filter, e)| {
        if in_filter {
            e.into_filter_error()
        } else {
            ScimError::invalid_path(format!(
                "invalid path '{input}' at position {}: {}",
                e.pos, e.msg
            ))
        }
    })
}

/// `parse_attr_path` with the located error, for callers that report it differently
/// (`sortBy` failures are `invalidValue`).
pub(crate) fn parser_attr_path(input: &str) -> Result<AttrPath, PosError> {
    parser::parse_attr_path(input)
}

/// Resolves a `sortBy` path for one type, refusing what filters refuse too. The flag tells
/// whether the attribute is merely not defined for `rt`.
pub(crate) fn resolve_for_sort(
    path: &AttrPath,
    ts: TypeSchemas,
) -> Result<ResolvedAttr, (bool, PosError)> {
    let split = |e: resolve::BindErr| (e.is_unknown(), e.into_pos());
    let r = resolve::resolve_any(path, ts.into()).map_err(split)?;
    resolve::check_usable(&r, ts.rt, path).map_err(split)?;
    Ok(r)
}

/// A filter resolved against the schema for one resource type (or for a root search over all
/// types): every attribute located, every literal checked against the attribute's type.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound(pub(crate) Node);

/// Resolves and type-checks `filter` for `rt` (`None`: a root search spanning every type).
/// Unknown attributes (names a schema the service or the tenant defines would own, but does
/// not define) and operator/value combinations the attribute's type does not allow are
/// `400 invalidFilter`; other names are undeclared attributes (`resolve::undeclared`).
pub fn bind(filter: &Filter, scope: impl Into<TypeScope>) -> Result<Bound, ScimError> {
    resolve::bind(filter, scope.into()).map(Bound)
}

/// Checks that `filter` is valid for `scope` without evaluating it.
pub fn validate(filter: &Filter, scope: impl Into<TypeScope>) -> Result<(), ScimError> {
    bind(filter, scope).map(|_| ())
}

impl Bound {
    /// Evaluates the filter over a rendered resource (as `crate::proto::resource::render` shapes it:
    /// canonical attribute names, `id`, `meta`, `members`/`groups` arrays).
    pub fn matches(&self, resource: &Value) -> bool {
        eval::eval(&self.0, resource)
    }
}

/// Whether the rendered `resource` matches `filter`, with exactly the semantics of the SQL from
/// `crate::store::query::where_sql`. A filter that does not bind for `rt` matches nothing; call
/// [`validate`] first to report that to the client.
pub fn matches(filter: &Filter, scope: impl Into<TypeScope>, resource: &Value) -> bool {
    bind(filter, scope)
        .map(|b| b.matches(resource))
        .unwrap_or(false)
}

/// A failure located in the input, rendered into the client-facing detail by the caller so
/// that filters report `invalidFilter` and `sortBy` reports `invalidValue`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PosError {
    /// 1-based character position.
    pub pos: usize,
    pub msg: String,
}

impl PosError {
    pub(crate) fn new(pos: usize, msg: impl Into<String>) -> PosError {
        PosError {
            pos,
            msg: msg.into(),
        }
    }
    pub(crate) fn into_filter_error(self) -> ScimError {
        ScimError::invalid_filter(format!(
            "invalid filter at position {}: {}",
            self.pos, self.msg
        ))
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => match serde_json::to_string(s) {
                Ok(quoted) => f.write_str(&quoted),
                Err(_) => Err(fmt::Error),
            },
            Literal::Integer(i) => write!(f, "{i}"),
            // `{:?}` keeps a decimal point or exponent, so the text parses back as a Decimal.
            Literal::Decimal(d) => write!(f, "{d:?}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
        }
    }
}

/// Canonical text: lower-case keywords, every `and`/`or` group parenthesised. Parsing the
/// output yields an equal filter (positions aside).
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, items: &[Filter], kw: &str| -> fmt::Result {
            f.write_str("(")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    write!(f, " {kw} ")?;
                }
                write!(f, "{item}")?;
            }
            f.write_str(")")
        };
        match self {
            Filter::Compare(c) => write!(f, "{} {} {}", c.path, c.op.as_str(), c.value),
            Filter::Present(p) => write!(f, "{p} pr"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::And(items) => join(f, items, "and"),
            Filter::Or(items) => join(f, items, "or"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
