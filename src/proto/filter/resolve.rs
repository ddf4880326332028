//! Resolution of attribute paths against the schema, and binding of a parsed [`Filter`] into
//! the typed tree ([`Node`]) that both the in-memory evaluator and the SQL planner consume.
//!
//! Binding is where every semantic decision is taken: which attribute a path names, where its
//! values live, how literals are typed, `ne` as `not eq`, `eq null` as `not pr`, the `value`
//! shorthand for multi-valued complex attributes, and the per-type guards of root searches.
//! The back ends only translate.

mod undeclared;
use super::{AttrPath, CompareOp, Comparison, Filter, Literal, PosError};
use crate::proto::error::ScimError;
use crate::proto::schema::{
    self, AttrType, Attribute, ResourceType, Returned, Schemas, TypeSchemas, TypeScope,
};
use crate::proto::time;
pub(crate) use undeclared::{undeclared_attr, UndeclaredAttr};

/// An attribute path resolved against the schema.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedAttr {
    /// Set when the attribute belongs to a schema extension: its values sit under this URN key.
    pub extension: Option<&'static str>,
    /// The top-level attribute.
    pub attr: &'static Attribute,
    /// The sub-attribute, when the path names one.
    pub sub: Option<&'static Attribute>,
    /// The only resource type the path is defined for; `None` when it means the same thing on
    /// every type considered (the common attributes `id`, `externalId`, `meta`, or e.g.
    /// `displayName` in a root search).
    pub owner: Option<ResourceType>,
    common: bool,
}

impl ResolvedAttr {
    /// The attribute whose type and case sensitivity apply: the sub-attribute if named.
    pub fn leaf(&self) -> &'static Attribute {
        self.sub.unwrap_or(self.attr)
    }

    /// Canonical location in a rendered resource (and in the stored `data`, for attributes
    /// stored there): `["urn:…:enterprise:2.0:User", "manager", "value"]`.
    pub fn json_path(&self) -> Vec<&'static str> {
        let mut p: Vec<&'static str> = self.extension.into_iter().collect();
        p.push(self.attr.name.as_str());
        if let Some(sub) = self.sub {
            p.push(sub.name.as_str());
        }
        p
    }

    fn is_meta(&self) -> bool {
        self.common && self.attr.name == "meta"
    }

    /// Where the values of a multi-valued attribute are stored.
    fn store(&self, rt: ResourceType) -> Store {
        match (rt, self.extension, self.attr.name.as_str()) {
            (ResourceType::Group, None, "members") => Store::Members,
            (ResourceType::User, None, "groups") => Store::Groups,
            _ => Store::Data,
        }
    }

    /// The multi-valued attribute as a container of elements, for resources of type `rt`.
    pub(crate) fn container(&self, rt: ResourceType) -> Container {
        let mut path: Vec<&'static str> = self.extension.into_iter().collect();
        path.push(self.attr.name.as_str());
        Container {
            path,
            store: self.store(rt),
        }
    }

    /// Same location and same comparison rules: a root search may then treat both as one.
    fn same_meaning(&self, other: &ResolvedAttr) -> bool {
        let same = |a: &Attribute, b: &Attribute| {
            a.kind == b.kind && a.case_exact == b.case_exact && a.multi_valued == b.multi_valued
        };
        self.json_path() == other.json_path()
            && same(self.attr, other.attr)
            && same(self.leaf(), other.leaf())
    }
}

/// Resolves `path` for resource type `rt`, or for a root search over every type (`None`).
/// Names are matched case-insensitively; a path without URN is looked up among the common
/// attributes, then the core schema, then (if unambiguous) the extensions.
/// Unknown attributes are `400 invalidFilter` naming the path.
pub fn resolve(path: &AttrPath, scope: impl Into<TypeScope>) -> Result<ResolvedAttr, ScimError> {
    resolve_any(path, scope.into()).map_err(|e| e.into_pos().into_filter_error())
}

pub(crate) fn resolve_any(path: &AttrPath, scope: TypeScope) -> Result<ResolvedAttr, BindErr> {
    let schemas = scope.schemas;
    let Some(rt) = scope.only else {
        let mut found = Vec::new();
        let mut first_err = None;
        for rt in ResourceType::ALL {
            match resolve_in(path, schemas.of(rt)) {
                Ok(r) => found.push(r),
                Err(e) => {
                    if first_err
                        .as_ref()
                        .is_none_or(|f: &BindErr| f.is_unknown() && !e.is_unknown())
                    {
                        first_err = Some(e);
                    }
                }
            }
        }
        let all_same = found
            .windows(2)
            .all(|w| matches!(w, [a, b] if a.same_meaning(b)));
        return match found.first() {
            Some(first) if found.len() == ResourceType::ALL.len() && all_same => Ok(ResolvedAttr {
                owner: None,
                ..*first
            }),
            Some(first) => Ok(*first),
            None => Err(first_err.unwrap_or_else(|| unknown(path))),
        };
    };
    resolve_in(path, schemas.of(rt))
}

fn unknown(path: &AttrPath) -> BindErr {
    BindErr::Unknown(PosError::new(
        path.pos,
        format!("unknown attribute '{path}'"),
    ))
}

fn resolve_in(path: &AttrPath, ts: TypeSchemas) -> Result<ResolvedAttr, BindErr> {
    let rt = ts.rt;
    let core = rt.core_schema();
    let lookup_core = |name: &str| -> Option<(&'static Attribute, bool)> {
        schema::common_attr(name)
            .map(|a| (a, true))
            .or_else(|| core.attr(name).map(|a| (a, false)))
    };
    let (attr, extension, common) = match &path.urn {
        Some(urn) if urn.eq_ignore_ascii_case(&core.id) => {
            let (a, common) = lookup_core(&path.name).ok_or_else(|| unknown(path))?;
            (a, None, common)
        }
        Some(urn) => {
            let ext = ts.extension(urn).ok_or_else(|| unknown(path))?;
            (
                ext.attr(&path.name).ok_or_else(|| unknown(path))?,
                Some(ext.id.as_str()),
                false,
            )
        }
        None => match lookup_core(&path.name) {
            Some((a, common)) => (a, None, common),
            None => {
                let mut hits = ts
                    .extensions()
                    .filter_map(|e| e.attr(&path.name).map(|a| (a, e)));
                match (hits.next(), hits.next()) {
                    (Some((a, ext)), None) => (a, Some(ext.id.as_str()), false),
                    _ => return Err(unknown(path)),
                }
            }
        },
    };
    let sub = match &path.sub {
        None => None,
        // The attribute exists, so a wrong sub-attribute is this type's error, not a sign that
        // the path belongs to another type.
        Some(s) => Some(
            attr.sub(s)
                .ok_or_else(|| BindErr::Invalid(unknown(path).into_pos()))?,
        ),
    };
    let owner = if common && path.urn.is_none() {
        None
    } else {
        Some(rt)
    };
    Ok(ResolvedAttr {
        extension,
        attr,
        sub,
        owner,
        common,
    })
}

/// Why a path did not bind. `Unknown` lets a root search read "not defined on this type" as
/// "false for resources of this type" instead of an error.
#[derive(Debug, Clone)]
pub(crate) enum BindErr {
    Unknown(PosError),
    Invalid(PosError),
}

impl BindErr {
    pub(crate) fn is_unknown(&self) -> bool {
        matches!(self, BindErr::Unknown(_))
    }
    pub(crate) fn into_pos(self) -> PosError {
        match self {
            BindErr::Unknown(e) | BindErr::Invalid(e) => e,
        }
    }
}

pub(super) fn invalid(pos: usize, msg: impl Into<String>) -> BindErr {
    BindErr::Invalid(PosError::new(pos, msg))
}

/// Attributes that can be named in a filter or `sortBy`: not write-only secrets (a filter on
/// `password` would be an oracle), and not values computed at render time from the request's
/// base URL (`$ref` of members/groups, `meta.location`) or formatted from a column
/// (`meta.version`).
pub(crate) fn check_usable(
    r: &ResolvedAttr,
    rt: ResourceType,
    path: &AttrPath,
) -> Result<(), BindErr> {
    let refused = r.attr.returned == Returned::Never
        || r.sub.is_some_and(|s| s.returned == Returned::Never)
        || (r.is_meta()
            && r.sub
                .is_some_and(|s| matches!(s.name.as_str(), "location" | "version")))
        || (r.store(rt) != Store::Data && r.sub.is_some_and(|s| s.name == "$ref"));
    if refused {
        return Err(invalid(
            path.pos,
            format!("the attribute '{path}' cannot be used in a filter or for sorting"),
        ));
    }
    Ok(())
}

// ---- The bound tree -------------------------------------------------------------------------

/// A resolved, type-checked filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Const(bool),
    /// `leaf op lit`; never `ne` (bound as `Not(eq)`).
    Cmp {
        leaf: Leaf,
        op: Op,
        lit: Lit,
    },
    /// The leaf holds a non-null, non-empty-string value somewhere (recursively).
    Present(Leaf),
    /// Some element of `container` satisfies `cond`, whose leaves are `Loc::Elem`.
    Any {
        container: Container,
        cond: Box<Node>,
    },
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    /// Only resources of this type can match (root searches over attributes of one type).
    OfType(ResourceType, Box<Node>),
    /// Some element of an attribute no schema declares satisfies `cond`, whose leaves are
    /// `Loc::Loose` (see `undeclared`).
    Undeclared {
        attr: UndeclaredAttr,
        cond: Box<Node>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// How values of a leaf compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str { case_exact: bool },
    Bool,
    Num,
    DateTime,
    Complex,
}

impl Kind {
    pub(crate) fn of(attr: &Attribute) -> Kind {
        match attr.kind {
            AttrType::String | AttrType::Reference => Kind::Str {
                case_exact: attr.case_exact,
            },
            // RFC 7643 §2.3.6: binary values are case-exact.
            AttrType::Binary => Kind::Str { case_exact: true },
            AttrType::Boolean => Kind::Bool,
            AttrType::Integer | AttrType::Decimal => Kind::Num,
            AttrType::DateTime => Kind::DateTime,
            AttrType::Complex => Kind::Complex,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Leaf {
    pub kind: Kind,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Loc {
    /// Canonical JSON path from the resource root.
    Path(Vec<&'static str>),
    /// A sub-attribute of the current element (`Some`), or the element itself (`None`, for
    /// multi-valued simple attributes).
    Elem(Option<&'static str>),
    /// In an element of an undeclared attribute: the element itself (`None`), or its members
    /// of that name matched case-insensitively (`Some`). Values compare only with literals of
    /// their own JSON type.
    Loose(Option<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Container {
    /// Canonical JSON path of the multi-valued attribute in a rendered resource.
    pub path: Vec<&'static str>,
    pub store: Store,
}

/// Where a multi-valued attribute's elements are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    /// A JSON array in `resources.data`.
    Data,
    /// `Group.members`: rows of `members` by `group_id`.
    Members,
    /// `User.groups`: rows of `members` by `member_id`.
    Groups,
}

/// A literal converted to the attribute's type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Bool(bool),
    Int(i64),
    Real(f64),
    /// A dateTime as milliseconds (for evaluation) and in the stored text form (for SQL).
    Instant {
        millis: i64,
        text: String,
    },
}

pub(crate) fn bind(filter: &Filter, scope: TypeScope) -> Result<Node, ScimError> {
    bind_node(filter, scope).map_err(|e| e.into_pos().into_filter_error())
}

fn bind_node(f: &Filter, scope: TypeScope) -> Result<Node, BindErr> {
    let all = |items: &[Filter]| {
        items
            .iter()
            .map(|i| bind_node(i, scope))
            .collect::<Result<Vec<_>, _>>()
    };
    match f {
        Filter::Not(inner) => Ok(Node::Not(Box::new(bind_node(inner, scope)?))),
        Filter::And(items) => Ok(Node::And(all(items)?)),
        Filter::Or(items) => Ok(Node::Or(all(items)?)),
        leaf => match scope.only {
            Some(rt) => bind_leaf(leaf, scope.schemas.of(rt)),
            None => bind_root_leaf(leaf, scope.schemas),
        },
    }
}

/// A root search binds each comparison once per resource type: where it means the same on
/// every type it is used as is; where it exists on one type only, it is guarded by that type
/// (so `userName pr` never matches a Group, and `groups` never reads a group's own
/// memberships).
fn bind_root_leaf(f: &Filter, schemas: Schemas) -> Result<Node, BindErr> {
    let mut bound = Vec::new();
    let mut first_err: Option<BindErr> = None;
    for rt in ResourceType::ALL {
        match bind_leaf(f, schemas.of(rt)) {
            Ok(n) => bound.push((rt, n)),
            Err(BindErr::Unknown(e)) => {
                first_err.get_or_insert(BindErr::Unknown(e));
            }
            Err(invalid) => return Err(invalid),
        }
    }
    if bound.is_empty() {
        return Err(first_err.unwrap_or_else(|| invalid(1, "the filter names no known attribute")));
    }
    let everywhere = bound.len() == ResourceType::ALL.len();
    if everywhere && bound.windows(2).all(|w| matches!(w, [a, b] if a.1 == b.1)) {
        return Ok(bound.swap_remove(0).1);
    }
    let mut guarded: Vec<Node> = bound
        .into_iter()
        .map(|(rt, n)| Node::OfType(rt, Box::new(n)))
        .collect();
    Ok(if guarded.len() == 1 {
        guarded.remove(0)
    } else {
        Node::Or(guarded)
    })
}

fn bind_leaf(f: &Filter, ts: TypeSchemas) -> Result<Node, BindErr> {
    let rt = ts.rt;
    match f {
        Filter::Compare(c) => {
            let r = match resolve_in(&c.path, ts) {
                Err(BindErr::Unknown(e)) => {
                    return undeclared::compare(undeclared::fallback(&c.path, ts, e)?, c)
                }
                r => r?,
            };
            check_usable(&r, rt, &c.path)?;
            if c.value == Literal::Null {
                return null_comparison(presence(&r, rt), c);
            }
            let (container, attr, loc) = comparable(&r, rt, c)?;
            let cmp = compare(attr, loc, c)?;
            let node = match container {
                Some(container) => Node::Any {
                    container,
                    cond: Box::new(cmp),
                },
                None => cmp,
            };
            Ok(negate_if_ne(node, c.op))
        }
        Filter::Present(path) => {
            let r = match resolve_in(path, ts) {
                Err(BindErr::Unknown(e)) => {
                    return Ok(undeclared::present(
                        undeclared::fallback(path, ts, e)?,
                        path,
                    ))
                }
                r => r?,
            };
            check_usable(&r, rt, path)?;
            Ok(presence(&r, rt))
        }
        Filter::ValuePath { path, filter } => bind_value_path(path, filter, ts),
        other => bind_node(other, ts.into()),
    }
}

pub(super) fn negate_if_ne(node: Node, op: CompareOp) -> Node {
    if op == CompareOp::Ne {
        Node::Not(Box::new(node))
    } else {
        node
    }
}

/// `attr eq null` is `not (attr pr)`, `attr ne null` is `attr pr`.
pub(super) fn null_comparison(present: Node, c: &Comparison) -> Result<Node, BindErr> {
    match c.op {
        CompareOp::Eq => Ok(Node::Not(Box::new(present))),
        CompareOp::Ne => Ok(present),
        op => Err(invalid(
            c.op_pos,
            format!(
                "null can only be compared with 'eq' or 'ne', not '{}'",
                op.as_str()
            ),
        )),
    }
}

/// The `pr` test for a resolved path.
fn presence(r: &ResolvedAttr, rt: ResourceType) -> Node {
    if r.attr.multi_valued {
        let container = r.container(rt);
        return match (r.sub, container.store) {
            (Some(sub), _) => Node::Any {
                container,
                cond: Box::new(Node::Present(Leaf {
                    kind: Kind::of(sub),
                    loc: Loc::Elem(Some(sub.name.as_str())),
                })),
            },
            // A member row always renders as a non-empty element.
            (None, Store::Members | Store::Groups) => Node::Any {
                container,
                cond: Box::new(Node::Const(true)),
            },
            (None, Store::Data) => Node::Present(Leaf {
                kind: Kind::of(r.attr),
                loc: Loc::Path(r.json_path()),
            }),
        };
    }
    if r.is_meta() && r.sub.is_none() {
        // Every rendered resource carries meta.
        return Node::Const(true);
    }
    Node::Present(Leaf {
        kind: Kind::of(r.leaf()),
        loc: Loc::Path(r.json_path()),
    })
}

/// The values an `attr op value` comparison reads: the container to search (multi-valued
/// attributes), the attribute whose type applies, and where its value sits.
fn comparable(
    r: &ResolvedAttr,
    rt: ResourceType,
    c: &Comparison,
) -> Result<(Option<Container>, &'static Attribute, Loc), BindErr> {
    let top = r.attr;
    let ordering = matches!(
        c.op,
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
    );
    if top.multi_valued {
        let container = Some(r.container(rt));
        if top.kind != AttrType::Complex {
            return Ok((container, top, Loc::Elem(None)));
        }
        let sub = match r.sub {
            Some(sub) => sub,
            None if ordering => {
                return Err(invalid(
                    c.op_pos,
                    format!(
                        "'{}' is complex: '{}' needs a sub-attribute, e.g. '{}.value'",
                        c.path,
                        c.op.as_str(),
                        c.path
                    ),
                ));
            }
            // RFC 7644 lets a multi-valued complex attribute stand for its `value`.
            None => top.sub("value").ok_or_else(|| {
                invalid(
                    c.path.pos,
                    format!(
                        "'{}' is complex and has no 'value': name a sub-attribute",
                        c.path
                    ),
                )
            })?,
        };
        return Ok((container, sub, Loc::Elem(Some(sub.name.as_str()))));
    }
    if top.kind == AttrType::Complex && r.sub.is_none() {
        let example = top
            .sub_attributes
            .first()
            .map(|s| format!(", e.g. '{}.{}'", c.path, s.name))
            .unwrap_or_default();
        return Err(invalid(
            c.path.pos,
            format!("'{}' is complex: name a sub-attribute{example}", c.path),
        ));
    }
    Ok((None, r.leaf(), Loc::Path(r.json_path())))
}

/// Type-checks `attr op value` and builds the comparison (`ne` as `eq`; the caller negates).
fn compare(attr: &Attribute, loc: Loc, c: &Comparison) -> Result<Node, BindErr> {
    let kind = Kind::of(attr);
    let op = match c.op {
        CompareOp::Eq | CompareOp::Ne => Op::Eq,
        CompareOp::Co => Op::Co,
        CompareOp::Sw => Op::Sw,
        CompareOp::Ew => Op::Ew,
        CompareOp::Gt => Op::Gt,
        CompareOp::Ge => Op::Ge,
        CompareOp::Lt => Op::Lt,
        CompareOp::Le => Op::Le,
    };
    let type_name = match attr.kind {
        AttrType::String => "string",
        AttrType::Boolean => "boolean",
        AttrType::Decimal => "decimal",
        AttrType::Integer => "integer",
        AttrType::DateTime => "dateTime",
        AttrType::Reference => "reference",
        AttrType::Binary => "binary",
        AttrType::Complex => "complex",
    };
    let substring = matches!(op, Op::Co | Op::Sw | Op::Ew);
    let ordering = matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le);
    let refused = match kind {
        Kind::Bool | Kind::Complex => op != Op::Eq,
        Kind::Num | Kind::DateTime => substring,
        Kind::Str { .. } => ordering && attr.kind == AttrType::Binary,
    };
    if refused {
        return Err(invalid(
            c.op_pos,
            format!(
                "'{}' cannot be used with the {type_name} attribute '{}'",
                c.op.as_str(),
                c.path
            ),
        ));
    }
    let wrong_value = |expected: &str| {
        invalid(
            c.value_pos,
            format!(
                "'{}' is a {type_name} attribute: expected {expected}, found {}",
                c.path, c.value
            ),
        )
    };
    let lit = match (kind, &c.value) {
        (Kind::Str { .. }, Literal::String(s)) => Lit::Str(s.clone()),
        (Kind::Str { .. }, _) => return Err(wrong_value("a string")),
        (Kind::Bool, Literal::Bool(b)) => Lit::Bool(*b),
        (Kind::Bool, _) => return Err(wrong_value("true or false")),
        (Kind::Num, Literal::Integer(i)) => Lit::Int(*i),
        (Kind::Num, Literal::Decimal(d)) => Lit::Real(*d),
        (Kind::Num, _) => return Err(wrong_value("a number")),
        (Kind::DateTime, Literal::String(s)) => match time::parse_rfc3339(s) {
            Some(millis) => Lit::Instant {
                millis,
                text: time::format_millis(millis),
            },
            None => {
                return Err(wrong_value(
                    "an RFC 3339 date-time such as \"2024-01-31T09:00:00Z\"",
                ))
            }
        },
        (Kind::DateTime, _) => return Err(wrong_value("an RFC 3339 date-time string")),
        (Kind::Complex, _) => return Err(wrong_value("a sub-attribute")),
    };
    Ok(Node::Cmp {
        leaf: Leaf { kind, loc },
        op,
        lit,
    })
}

/// `attr[valFilter]`. On a multi-valued attribute one element must satisfy `valFilter`; on a
/// single-valued complex attribute (`name[givenName eq "x"]`) it reads the sub-attributes.
fn bind_value_path(path: &AttrPath, filter: &Filter, ts: TypeSchemas) -> Result<Node, BindErr> {
    let rt = ts.rt;
    let r = match resolve_in(path, ts) {
        Err(BindErr::Unknown(e)) => {
            return undeclared::value_path(undeclared::fallback(path, ts, e)?, path, filter)
        }
        r => r?,
    };
    check_usable(&r, rt, path)?;
    if r.attr.kind != AttrType::Complex {
        return Err(invalid(
            path.pos,
            format!("'{path}' is not complex: a value filter '[...]' needs a complex attribute"),
        ));
    }
    let scope = ElemScope {
        parent: &r,
        rt,
        path,
    };
    let cond = bind_elem(filter, &scope)?;
    Ok(if r.attr.multi_valued {
        Node::Any {
            container: r.container(rt),
            cond: Box::new(cond),
        }
    } else {
        cond
    })
}

struct ElemScope<'a> {
    parent: &'a ResolvedAttr,
    rt: ResourceType,
    path: &'a AttrPath,
}

impl ElemScope<'_> {
    /// Resolves a name inside `parent[...]` to the parent with that sub-attribute.
    fn sub(&self, p: &AttrPath) -> Result<ResolvedAttr, BindErr> {
        if p.urn.is_some() || p.sub.is_some() {
            return Err(invalid(
                p.pos,
                format!(
                    "inside '{}[...]' name a sub-attribute of '{}', not '{p}'",
                    self.path, self.path
                ),
            ));
        }
        let sub = self.parent.attr.sub(&p.name).ok_or_else(|| {
            invalid(
                p.pos,
                format!("unknown attribute '{}.{}'", self.path, p.name),
            )
        })?;
        let r = ResolvedAttr {
            sub: Some(sub),
            ..*self.parent
        };
        // Reported as the full path, e.g. 'groups.$ref', at the sub-attribute's position.
        let full = AttrPath {
            sub: Some(p.name.clone()),
            pos: p.pos,
            ..self.path.clone()
        };
        check_usable(&r, self.rt, &full)?;
        Ok(r)
    }

    fn loc(&self, r: &ResolvedAttr) -> Loc {
        match r.sub {
            Some(sub) if self.parent.attr.multi_valued => Loc::Elem(Some(sub.name.as_str())),
            _ => Loc::Path(r.json_path()),
        }
    }
}

fn bind_elem(f: &Filter, scope: &ElemScope<'_>) -> Result<Node, BindErr> {
    let all = |items: &[Filter]| {
        items
            .iter()
            .map(|i| bind_elem(i, scope))
            .collect::<Result<Vec<_>, _>>()
    };
    match f {
        Filter::Not(inner) => Ok(Node::Not(Box::new(bind_elem(inner, scope)?))),
        Filter::And(items) => Ok(Node::And(all(items)?)),
        Filter::Or(items) => Ok(Node::Or(all(items)?)),
        Filter::Present(p) => {
            let r = scope.sub(p)?;
            Ok(Node::Present(Leaf {
                kind: Kind::of(r.leaf()),
                loc: scope.loc(&r),
            }))
        }
        Filter::Compare(c) => {
            let r = scope.sub(&c.path)?;
            let loc = scope.loc(&r);
            if c.value == Literal::Null {
                return null_comparison(
                    Node::Present(Leaf {
                        kind: Kind::of(r.leaf()),
                        loc,
                    }),
                    c,
                );
            }
            Ok(negate_if_ne(compare(r.leaf(), loc, c)?, c.op))
        }
        Filter::ValuePath { path, .. } => Err(invalid(path.pos, "value filters cannot be nested")),
    }
}
