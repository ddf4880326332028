//! Filters over attributes no schema declares: an identity provider's custom extension
//! (`urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:CustomAttribute`)
//! or a name kept verbatim at the core level (an IdP mapping's `nickname2`), which an IT
//! admin expects to find users by as soon as the IdP sends it (issue 12).
//!
//! Without a schema there is no type to check a literal against, so the value's own JSON type
//! decides: a string literal compares with string values only (case-insensitively, as
//! `caseExact: false`), a number with numbers, a boolean with booleans; a value of another
//! type does not match (and so `ne` matches it, as it matches an absent attribute). Names and
//! URNs match case-insensitively because the stored spelling is the client's, and may differ
//! from the filter's; several stored spellings of one name are several values.
//!
//! The bound form is its own: [`Node::Undeclared`] holds the attribute's owned name instead of
//! a schema path, over the attribute's elements (an array's items, else the value itself),
//! with [`Loc::Loose`] leaves. Typed schema paths never take this route: only a path the
//! schema lookup (built-in and the tenant's declared schemas) calls unknown falls back here,
//! and only where writes would have kept the attribute: under a URN no built-in or declared
//! schema is, lies under or above, or at the core level under a name no core schema defines
//! (`crate::proto::resource`'s `keep_undeclared` and `keep_unknown`).

use super::{invalid, negate_if_ne, null_comparison, BindErr, Kind, Leaf, Lit, Loc, Node, Op};
use crate::proto::filter::{AttrPath, CompareOp, Comparison, Filter, Literal, PosError};
use crate::proto::schema::{self, TypeSchemas};

/// An attribute kept verbatim in `data` without a schema, as a filter names it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UndeclaredAttr {
    /// The extension URN it sits under, as the filter spells it; `None` for an attribute at
    /// the top level of the resource.
    pub urn: Option<String>,
    pub name: String,
}

/// The undeclared attribute a path the schema lookup did not know names for resources of
/// `ts`, where writes keep one: under a URN that no built-in or declared schema is, lies
/// under or above (`urn:…:enterprise:2.0:User:nope` stays unknown); or at the core level
/// (a plain name, or one qualified by the type's core URN) under a name no core schema of
/// any type defines (`members` on /Users stays unknown, as a write refuses it).
pub(crate) fn undeclared_attr(path: &AttrPath, ts: TypeSchemas) -> Option<UndeclaredAttr> {
    let core_level = |name: &str| {
        // `schemas` is rendered from the type and the stored URNs, never stored.
        let kept = !schema::is_core_name_anywhere(name)
            && !name.eq_ignore_ascii_case("schemas")
            && name != "$ref";
        kept.then(|| UndeclaredAttr {
            urn: None,
            name: name.to_string(),
        })
    };
    match &path.urn {
        None => core_level(&path.name),
        Some(urn) if urn.eq_ignore_ascii_case(&ts.core_schema().id) => core_level(&path.name),
        Some(urn) if ts.schemas().known_schema_above(urn).is_some() => None,
        Some(urn) => Some(UndeclaredAttr {
            urn: Some(urn.clone()),
            name: path.name.clone(),
        }),
    }
}

/// The fallback for a path the schema lookup did not know: the undeclared attribute, or the
/// lookup's own error.
pub(super) fn fallback(
    path: &AttrPath,
    ts: TypeSchemas,
    unknown: PosError,
) -> Result<UndeclaredAttr, BindErr> {
    undeclared_attr(path, ts).ok_or(BindErr::Unknown(unknown))
}

/// `attr[.sub] pr`.
pub(super) fn present(attr: UndeclaredAttr, path: &AttrPath) -> Node {
    any(attr, presence(path.sub.clone()))
}

/// `attr[.sub] op value`: some element (or its sub-attribute) compares; `ne` as `not eq`,
/// `eq null` as `not pr`.
pub(super) fn compare(attr: UndeclaredAttr, c: &Comparison) -> Result<Node, BindErr> {
    if c.value == Literal::Null {
        return null_comparison(present(attr, &c.path), c);
    }
    let cmp = loose_cmp(Loc::Loose(c.path.sub.clone()), c)?;
    Ok(negate_if_ne(any(attr, cmp), c.op))
}

/// `attr[valFilter]`: one element satisfies the whole of `valFilter`, whose names are the
/// element's sub-attributes. (`attr[f].sub op v` arrives here as `attr[f and sub op v]`.)
pub(super) fn value_path(
    attr: UndeclaredAttr,
    path: &AttrPath,
    filter: &Filter,
) -> Result<Node, BindErr> {
    Ok(any(attr, elem(filter, path)?))
}

fn any(attr: UndeclaredAttr, cond: Node) -> Node {
    Node::Undeclared {
        attr,
        cond: Box::new(cond),
    }
}

fn presence(sub: Option<String>) -> Node {
    Node::Present(Leaf {
        kind: Kind::Complex,
        loc: Loc::Loose(sub),
    })
}

fn elem(f: &Filter, parent: &AttrPath) -> Result<Node, BindErr> {
    let all = |items: &[Filter]| {
        items
            .iter()
            .map(|i| elem(i, parent))
            .collect::<Result<Vec<_>, _>>()
    };
    match f {
        Filter::Not(inner) => Ok(Node::Not(Box::new(elem(inner, parent)?))),
        Filter::And(items) => Ok(Node::And(all(items)?)),
        Filter::Or(items) => Ok(Node::Or(all(items)?)),
        Filter::Present(p) => Ok(presence(Some(sub_name(p, parent)?))),
        Filter::Compare(c) => {
            let sub = sub_name(&c.path, parent)?;
            if c.value == Literal::Null {
                return null_comparison(presence(Some(sub)), c);
            }
            Ok(negate_if_ne(loose_cmp(Loc::Loose(Some(sub)), c)?, c.op))
        }
        Filter::ValuePath { path, .. } => Err(invalid(path.pos, "value filters cannot be nested")),
    }
}

/// A name inside `parent[...]`: a plain sub-attribute name.
fn sub_name(p: &AttrPath, parent: &AttrPath) -> Result<String, BindErr> {
    if p.urn.is_some() || p.sub.is_some() {
        return Err(invalid(
            p.pos,
            format!("inside '{parent}[...]' name a sub-attribute of '{parent}', not '{p}'"),
        ));
    }
    Ok(p.name.clone())
}

/// The comparison (`ne` as `eq`; the caller negates), typed by the literal.
fn loose_cmp(loc: Loc, c: &Comparison) -> Result<Node, BindErr> {
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
    let substring = matches!(op, Op::Co | Op::Sw | Op::Ew);
    let (kind, lit) = match &c.value {
        Literal::String(s) => (Kind::Str { case_exact: false }, Lit::Str(s.clone())),
        Literal::Integer(i) if !substring => (Kind::Num, Lit::Int(*i)),
        Literal::Decimal(d) if !substring => (Kind::Num, Lit::Real(*d)),
        Literal::Bool(b) if op == Op::Eq => (Kind::Bool, Lit::Bool(*b)),
        other => {
            let allowed = match other {
                Literal::Bool(_) => "'eq' and 'ne'",
                _ => "'eq', 'ne', 'gt', 'ge', 'lt' and 'le'",
            };
            return Err(invalid(
                c.op_pos,
                format!(
                    "'{}' cannot compare with {other}: '{}' has no declared type, so it \
                     compares by the literal's type, and {other} allows {allowed} only",
                    c.op.as_str(),
                    c.path
                ),
            ));
        }
    };
    Ok(Node::Cmp {
        leaf: Leaf { kind, loc },
        op,
        lit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::filter::{bind, matches, parse};
    use crate::proto::schema::{Declared, ResourceType, Schemas, TypeScope};
    use serde_json::{json, Value};

    const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

    /// A rendered user as Entra provisions it with custom attributes, stored in the client's
    /// spelling, plus a core-level name no schema defines.
    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", CUSTOM],
            "id": "u1",
            "userName": "bjensen@example.com",
            CUSTOM: {
                "CustomAttribute": "Blue",
                "costCenter": 4711,
                "ratio": 0.5,
                "vip": true,
                "tags": ["Alpha", "beta", 7],
                "badge": {"number": "B-12", "issued": 2019},
                "devices": [
                    {"type": "Laptop", "serial": "L-1"},
                    {"type": "phone", "serial": "P-9", "primary": true}
                ],
                "empty": ""
            },
            "shoeSize": "42",
            "meta": {"resourceType": "User"}
        })
    }

    fn t(filter: &str) -> bool {
        let f = parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        bind(&f, Some(ResourceType::User)).unwrap_or_else(|e| panic!("{filter}: {e}"));
        let on_users = matches(&f, Some(ResourceType::User), &user());
        assert_eq!(
            on_users,
            matches(&f, None, &user()),
            "root search: {filter}"
        );
        on_users
    }

    #[test]
    fn undeclared_attributes_compare_by_json_type_case_insensitively() {
        let c = CUSTOM;
        let lower = CUSTOM.to_ascii_lowercase();
        for yes in [
            format!("{c}:CustomAttribute eq \"blue\""),
            format!("{lower}:CUSTOMATTRIBUTE eq \"BLUE\""),
            format!("{c}:customAttribute ne \"red\""),
            format!("{c}:customAttribute co \"LU\""),
            format!("{c}:customAttribute sw \"bl\""),
            format!("{c}:customAttribute ew \"UE\""),
            format!("{c}:customAttribute gt \"a\""),
            format!("{c}:customAttribute le \"blue\""),
            format!("{c}:costCenter eq 4711"),
            format!("{c}:costCenter ge 4711.0"),
            format!("{c}:costCenter lt 5000"),
            format!("{c}:ratio gt 0"),
            format!("{c}:vip eq true"),
            format!("{c}:vip ne false"),
            // A value of another JSON type never equals, so `ne` holds.
            format!("{c}:costCenter ne \"4711\""),
            format!("{c}:vip ne \"true\""),
            format!("{c}:customAttribute pr"),
            format!("{c}:nothing eq null"),
            format!("{c}:empty eq null"),
            format!("{c}:customAttribute ne null"),
            format!("not ({c}:customAttribute eq \"red\")"),
            format!("{c}:customAttribute eq \"blue\" and {c}:vip eq true"),
            format!("{c}:customAttribute eq \"red\" or {c}:costCenter gt 10"),
            "shoeSize eq \"42\"".to_string(),
            "SHOESIZE pr".to_string(),
            "hatSize eq null".to_string(),
        ] {
            assert!(t(&yes), "{yes}");
        }
        for no in [
            format!("{c}:customAttribute eq \"blu\""),
            format!("{c}:costCenter eq \"4711\""),
            format!("{c}:costCenter co \"47\""),
            format!("{c}:vip eq 1"),
            format!("{c}:customAttribute gt 5"),
            format!("{c}:nothing pr"),
            format!("{c}:empty pr"),
            format!("{c}:customAttribute eq null"),
            format!("{c}:customAttribute ne \"BLUE\""),
            "urn:example:other:2.0:User:customAttribute eq \"blue\"".to_string(),
            "shoeSize eq 42".to_string(),
            "hatSize pr".to_string(),
        ] {
            assert!(!t(&no), "{no}");
        }
    }

    #[test]
    fn multi_valued_and_complex_undeclared_attributes() {
        let c = CUSTOM;
        for yes in [
            format!("{c}:tags eq \"ALPHA\""),
            format!("{c}:tags eq 7"),
            format!("{c}:tags sw \"be\""),
            format!("{c}:tags ne \"gamma\""),
            format!("{c}:tags pr"),
            format!("{c}:badge.number eq \"b-12\""),
            format!("{c}:badge.ISSUED lt 2020"),
            format!("{c}:badge pr"),
            format!("{c}:badge.number pr"),
            format!("{c}:devices.type eq \"phone\""),
            format!("{c}:devices[type eq \"PHONE\" and serial sw \"p\"]"),
            format!("{c}:devices[type eq \"laptop\"].serial eq \"L-1\""),
            format!("{c}:devices[primary eq true]"),
            format!("{c}:devices[not (primary pr)]"),
            format!("{c}:devices[primary eq null]"),
            format!("{c}:badge[number ew \"12\"]"),
        ] {
            assert!(t(&yes), "{yes}");
        }
        for no in [
            format!("{c}:tags eq \"gamma\""),
            format!("{c}:tags ne \"alpha\""),
            format!("{c}:badge eq \"B-12\""),
            format!("{c}:badge.nothing pr"),
            format!("{c}:devices[type eq \"laptop\" and serial eq \"P-9\"]"),
            format!("{c}:devices[type eq \"laptop\"].serial eq \"P-9\""),
            format!("{c}:tags[value eq \"alpha\"]"),
            format!("{c}:customAttribute.sub pr"),
        ] {
            assert!(!t(&no), "{no}");
        }
    }

    #[test]
    fn what_no_type_allows_is_refused_and_declared_names_stay_typed() {
        let c = CUSTOM;
        for (bad, why) in [
            (format!("{c}:vip gt true"), "'gt' cannot compare with true"),
            (format!("{c}:vip co false"), "allows 'eq' and 'ne' only"),
            (
                format!("{c}:costCenter sw 47"),
                "'sw' cannot compare with 47",
            ),
            (
                format!("{c}:devices[urn:x:y:type eq \"a\"]"),
                "name a sub-attribute",
            ),
            (
                format!("{c}:devices[type.x eq \"a\"]"),
                "name a sub-attribute",
            ),
            (format!("{c}:customAttribute lt null"), "null can only be"),
        ] {
            let f = parse(&bad).unwrap_or_else(|e| panic!("{bad}: {e}"));
            let e = bind(&f, Some(ResourceType::User)).unwrap_err();
            assert!(e.detail.contains(why), "{bad}: {}", e.detail);
        }
        // Binding does not depend on the resource type: a root search binds it once.
        let f = parse(&format!("{c}:customAttribute eq \"x\"")).unwrap();
        let root = bind(&f, None).unwrap();
        assert_eq!(root, bind(&f, Some(ResourceType::Group)).unwrap());
        assert!(matches!(root.0, Node::Undeclared { .. }));
        // Core names of another type stay unknown, as writes refuse them; a name only an
        // extension of another type defines is kept at the core level, so it is read there.
        for (typed, rt) in [
            ("userName eq \"x\"", ResourceType::Group),
            ("emails.value eq \"x\"", ResourceType::Group),
            ("members pr", ResourceType::User),
        ] {
            assert!(bind(&parse(typed).unwrap(), Some(rt)).is_err(), "{typed}");
        }
        let kept = bind(&parse("department pr").unwrap(), Some(ResourceType::Group)).unwrap();
        assert!(
            matches!(&kept.0, Node::Undeclared { attr, .. } if attr.urn.is_none()),
            "{kept:?}"
        );
    }

    #[test]
    fn core_level_names_under_the_core_urn_read_the_kept_attribute() {
        let core = "urn:ietf:params:scim:schemas:core:2.0:User";
        // Writes keep `urn:…:core:2.0:User:nickname2` at `data["nickname2"]`.
        assert!(t(&format!("{core}:SHOESIZE eq \"42\"")));
        let f = parse(&format!("{core}:shoeSize pr")).unwrap();
        assert!(
            bind(&f, Some(ResourceType::Group)).is_err(),
            "not a Group's core"
        );
        // A root search reads it on Users only.
        let group = json!({"shoeSize": "42", "meta": {"resourceType": "Group"}});
        assert!(!matches(&f, None, &group) && matches(&f, None, &user()));
    }

    #[test]
    fn a_tenants_declared_extension_binds_typed_and_its_unknown_names_stay_unknown() {
        let doc = json!({"id": CUSTOM, "name": "Custom", "attributes": [
            {"name": "costCenter", "type": "integer"}]});
        let declared = crate::proto::declared::parse(ResourceType::User, false, &doc).unwrap();
        let set = crate::proto::declared::intern("undeclared-filter-test", || Declared {
            extensions: vec![declared],
        });
        let scope = TypeScope {
            only: Some(ResourceType::User),
            schemas: Schemas::new(Some(set), false),
        };
        let typed = parse(&format!("{CUSTOM}:costCenter gt 4000")).unwrap();
        let bound = bind(&typed, scope).unwrap();
        assert!(!matches!(bound.0, Node::Undeclared { .. }), "{bound:?}");
        assert!(bound.matches(&user()));
        // Declared integer: a string literal is the type error it is for the enterprise schema.
        let e = bind(
            &parse(&format!("{CUSTOM}:costCenter eq \"x\"")).unwrap(),
            scope,
        );
        assert!(e.unwrap_err().detail.contains("expected a number"));
        for unknown in [
            format!("{CUSTOM}:CustomAttribute eq \"blue\""),
            format!("{CUSTOM}:costCenter:x pr"),
        ] {
            let e = bind(&parse(&unknown).unwrap(), scope).unwrap_err();
            assert!(
                e.detail.contains("unknown attribute"),
                "{unknown}: {}",
                e.detail
            );
        }
        // Without the declaration the same names are undeclared again.
        assert!(t(&format!("{CUSTOM}:CustomAttribute eq \"blue\"")));
    }
}
