//! Value filters of PATCH paths (`emails[type eq "work"]`), already parsed with the path:
//! bound to the schema for matching stored values, read as a template for the value an `add`
//! creates when nothing matches, or read as the member ids a group's `remove` names.

use crate::proto::error::{Result, ScimError};
use crate::proto::filter::{self, AttrPath as FilterPath, Bound, CompareOp, Filter, Literal};
use crate::proto::schema::{Attribute, Schema, TypeSchemas};
use serde_json::{Map, Value};

/// A value filter of a multi-valued attribute, evaluated by the filter module against a
/// resource holding only the value under test.
#[derive(Debug, Clone)]
pub(super) struct ElementFilter {
    /// Extension holding the attribute, if any.
    ext: Option<&'static Schema>,
    attr: &'static Attribute,
    inner: Filter,
    bound: Bound,
    rt: TypeSchemas,
}

impl ElementFilter {
    pub fn new(
        rt: TypeSchemas,
        ext: Option<&'static Schema>,
        attr: &'static Attribute,
        inner: Filter,
    ) -> Result<ElementFilter> {
        // `emails[type eq "work"]` is itself a valid filter on the resource; evaluated against a
        // resource whose `emails` holds exactly one value, it tells whether that value matches.
        let path = FilterPath {
            urn: ext.map(|e| e.id.clone()),
            name: attr.name.clone(),
            sub: None,
            pos: 1,
        };
        let whole = Filter::ValuePath {
            path,
            filter: Box::new(inner),
        };
        let bound = filter::bind(&whole, rt)?;
        let Filter::ValuePath { filter: inner, .. } = whole else {
            return Err(ScimError::internal());
        };
        Ok(ElementFilter {
            ext,
            attr,
            inner: *inner,
            bound,
            rt,
        })
    }

    pub fn matches(&self, elem: &Value) -> bool {
        let mut holder = Map::new();
        holder.insert(self.attr.name.clone(), Value::Array(vec![elem.clone()]));
        let mut resource = Map::new();
        resource.insert(
            "schemas".into(),
            Value::Array(vec![Value::String(self.rt.core_schema().id.clone())]),
        );
        match &self.ext {
            Some(ext) => {
                resource.insert(ext.id.clone(), Value::Object(holder));
            }
            None => resource.extend(holder),
        }
        self.bound.matches(&Value::Object(resource))
    }

    /// The value an `add` (or tolerated `replace`) creates when nothing matches: possible only
    /// for `sub eq literal [and sub eq literal …]`, e.g. `emails[type eq "work"]`.
    pub fn template(&self, attr: &Attribute) -> Option<Map<String, Value>> {
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

/// `members[value eq "a" or value eq "b"]` → the ids. Nothing else can be evaluated without
/// reading the member list, so anything else is refused.
pub(super) fn member_filter_ids(filter: &Filter) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    if !eq_ids(filter, &mut ids) {
        return Err(ScimError::invalid_filter(format!(
            "unsupported member filter '{filter}': only value eq \"<id>\", optionally joined by or, is supported"
        )));
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
