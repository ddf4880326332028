//! Application: typed operations applied to a copy of the stored data, one small function per
//! target kind. Only what depends on the stored values is decided here.

use super::coerce::{is_manager, validated_element};
use super::element::ElementFilter;
use super::request::{
    at_op, AttrChange, Change, ExtensionChange, FilteredChange, PatchRequest, SetValue, Target,
};
use super::text::Unparsed;
use super::undeclared::{self, Addressed, UndeclaredChange};
use super::{MemberOp, PatchOutcome, SubChange};
use crate::proto::error::{Result, ScimError};
use crate::proto::resource;
use crate::proto::schema::{Attribute, ResourceType, Schema, TypeSchemas};
use crate::proto::tolerance::{Tolerance, Tolerances};
use serde_json::{Map, Value};

impl PatchRequest {
    /// Applies the request to a resource's parsed `data` (the tests' and the fuzz target's
    /// oracle for [`PatchRequest::apply_text`], which the request path uses). `tol` goes on
    /// collecting the quirks that only the stored values reveal.
    pub fn apply(&self, current: &Map<String, Value>, tol: Tolerances) -> Result<PatchOutcome> {
        let (data, ctx) = self.run(current.clone(), Unparsed::new(), tol)?;
        let changed = ctx.changed_names(&data);
        Ok(PatchOutcome {
            data,
            members: ctx.members,
            changed,
            tolerances: ctx.tol.into_vec(),
        })
    }

    /// Applies every operation, then re-validates what they touched and the required
    /// attributes.
    pub(super) fn run<'t>(
        &self,
        mut data: Map<String, Value>,
        unparsed: Unparsed<'t>,
        tol: Tolerances,
    ) -> Result<(Map<String, Value>, Ctx<'t>)> {
        let rt = self.rt;
        let mut ctx = Ctx {
            rt,
            tol,
            members: Vec::new(),
            touched: Vec::new(),
            before: Vec::new(),
            undeclared_before: Vec::new(),
            unknown_before: Vec::new(),
            unparsed,
        };
        for op in &self.ops {
            apply_target(&mut ctx, &mut data, &op.target).map_err(|e| at_op(op.index, e))?;
        }
        // The required attributes are checked below whether touched or not.
        for attr in rt.core_schema().attributes.iter().filter(|a| a.required) {
            ctx.parse(&mut data, &attr.name)?;
        }
        resource::revalidate_touched(
            rt.rt,
            &mut data,
            ctx.touched.iter().map(|t| (t.ext, t.attr)),
        )?;
        Ok((data, ctx))
    }
}

/// The state of one application.
pub(super) struct Ctx<'t> {
    rt: TypeSchemas,
    pub tol: Tolerances,
    pub members: Vec<MemberOp>,
    /// The top-level attributes operations addressed, in order, resolved against the schema
    /// (names are built only for the outcome's `changed`).
    touched: Vec<Touched>,
    /// The stored value of each `touched` attribute before the first operation on it.
    before: Vec<Option<Value>>,
    /// Undeclared extensions operations addressed, by stored key, with their value before.
    undeclared_before: Vec<(String, Option<Value>)>,
    /// Attributes at the core level that no schema defines that operations addressed, by
    /// stored key, with their value before.
    unknown_before: Vec<(String, Option<Value>)>,
    /// Stored attributes not parsed into the data yet ([`PatchRequest::apply_text`]).
    pub unparsed: Unparsed<'t>,
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

    /// The touched attributes whose value differs. Only touched attributes can differ:
    /// operations write nothing else, and [`resource::revalidate_touched`] rewrites nothing
    /// else (the tests check this against a full comparison on every outcome).
    pub fn changed_names(&self, after: &Map<String, Value>) -> Vec<String> {
        self.touched
            .iter()
            .zip(&self.before)
            .filter(|(t, before)| {
                if t.ext.is_none() && t.attr.name == "members" && self.rt == ResourceType::Group {
                    !self.members.is_empty()
                } else {
                    before.as_ref() != t.value_in(after)
                }
            })
            .map(|(t, _)| t.name())
            .chain(self.undeclared_changes(after))
            .chain(
                self.unknown_before
                    .iter()
                    .filter(|(key, before)| before.as_ref() != after.get(key))
                    .map(|(key, _)| key.clone()),
            )
            .collect()
    }

    /// `urn:…:attr` for each attribute of an undeclared extension whose value changed.
    fn undeclared_changes<'a>(
        &'a self,
        after: &'a Map<String, Value>,
    ) -> impl Iterator<Item = String> + 'a {
        self.undeclared_before
            .iter()
            .flat_map(move |(urn, before)| {
                let attrs = |v: Option<&'a Value>| v.and_then(Value::as_object);
                let (b, a) = (attrs(before.as_ref()), attrs(after.get(urn)));
                let mut names: Vec<&String> =
                    b.into_iter().chain(a).flat_map(|m| m.keys()).collect();
                names.sort();
                names.dedup();
                names
                    .into_iter()
                    .filter(move |n| b.and_then(|m| m.get(*n)) != a.and_then(|m| m.get(*n)))
                    .map(move |n| format!("{urn}:{n}"))
                    .collect::<Vec<_>>()
            })
    }
}

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

fn apply_target(ctx: &mut Ctx, data: &mut Map<String, Value>, target: &Target) -> Result<()> {
    match target {
        Target::Attr(a) => apply_attr(ctx, data, a),
        Target::Extension { ext, change } => apply_extension(ctx, data, ext, change),
        Target::Members { attr, change } => {
            ctx.touch(&Map::new(), None, attr);
            if let Some(change) = change {
                ctx.members.push(change.clone());
            }
            Ok(())
        }
        Target::PathLess(targets) => targets.iter().try_for_each(|t| apply_target(ctx, data, t)),
        Target::Dropped => Ok(()),
        Target::Undeclared(c) => apply_undeclared(ctx, data, c),
        Target::Unknown(c) => apply_unknown(ctx, data, c),
    }
}

/// An attribute at the core level that no schema defines, applied in the data itself under
/// its stored spelling (keys differing only in case are one attribute; the first spelling
/// stays), then checked whole again: an `add` to its array must stay within SCIM's data
/// model and the value count, as a PUT of the outcome would.
fn apply_unknown(ctx: &mut Ctx, data: &mut Map<String, Value>, c: &UndeclaredChange) -> Result<()> {
    let name = &c.path.last;
    let key = undeclared::stored_key(data.keys(), name)
        .or_else(|| undeclared::stored_key(ctx.unparsed.keys(), name))
        .unwrap_or_else(|| name.clone());
    ctx.parse(data, &key)?;
    if !ctx.unknown_before.iter().any(|(k, _)| *k == key) {
        ctx.unknown_before
            .push((key.clone(), data.get(&key).cloned()));
    }
    undeclared::apply_attr(data, &key, &key, c.path.sub.as_deref(), c)?;
    if let Some(v) = data.get(&key) {
        resource::undeclared_value(&key, v, 0)?;
    }
    Ok(())
}

/// An undeclared extension's attribute (or the extension): resolved against the stored keys,
/// then applied to its object, which is dropped once empty.
fn apply_undeclared(
    ctx: &mut Ctx,
    data: &mut Map<String, Value>,
    c: &UndeclaredChange,
) -> Result<()> {
    let stored = |name: &str| {
        undeclared::stored_key(data.keys(), name)
            .or_else(|| undeclared::stored_key(ctx.unparsed.keys(), name))
    };
    let addressed = Addressed::resolve(ctx.rt, &c.path, c.value.as_ref(), stored);
    let urn = match &addressed {
        Addressed::Extension(urn) | Addressed::Attr { urn, .. } => urn.clone(),
    };
    ctx.parse(data, &urn)?;
    if !ctx.undeclared_before.iter().any(|(k, _)| *k == urn) {
        ctx.undeclared_before
            .push((urn.clone(), data.get(&urn).cloned()));
    }
    let mut ext = match data.remove(&urn) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    undeclared::apply(&mut ext, c, &addressed)?;
    if !ext.is_empty() {
        data.insert(urn, Value::Object(ext));
    }
    Ok(())
}

/// An extension URN as the path: all of its attributes are touched.
fn apply_extension(
    ctx: &mut Ctx,
    data: &mut Map<String, Value>,
    ext: &'static Schema,
    change: &ExtensionChange,
) -> Result<()> {
    ctx.parse(data, &ext.id)?;
    for attr in &ext.attributes {
        ctx.touch(data, Some(ext), attr);
    }
    match change {
        ExtensionChange::Remove => {
            data.remove(&ext.id);
        }
        ExtensionChange::Keep => {}
        ExtensionChange::Attrs(targets) => {
            for t in targets {
                apply_target(ctx, data, t)?;
            }
        }
    }
    Ok(())
}

/// One attribute path, inside the data or inside its extension's object.
fn apply_attr(ctx: &mut Ctx, data: &mut Map<String, Value>, a: &AttrChange) -> Result<()> {
    ctx.parse(data, a.ext.map_or(&a.attr.name, |e| &e.id))?;
    ctx.touch(data, a.ext, a.attr);
    let Some(ext) = a.ext else {
        return apply_in(ctx, data, a);
    };
    let mut container = take_object(data, &ext.id);
    let result = apply_in(ctx, &mut container, a);
    put_object(data, ext.id.clone(), container);
    result
}

/// Applies one change inside the map that holds `a.attr` (the data, or an extension's map).
fn apply_in(ctx: &mut Ctx, c: &mut Map<String, Value>, a: &AttrChange) -> Result<()> {
    match &a.change {
        Change::ClearManager => {
            c.remove(&a.attr.name);
            return Ok(());
        }
        Change::Remove { listed } => remove_whole(c, a.attr, listed.as_deref()),
        Change::Set { replace, value } => set_whole(c, a.attr, *replace, value),
        Change::Sub { sub, change } => set_sub(c, a, sub, change)?,
        Change::Filtered {
            filter,
            replace,
            change,
        } => apply_filtered(ctx, c, a, filter, *replace, change)?,
    }
    manager_cleanup(ctx, c, a.attr)
}

/// `remove` of a whole attribute, or (tolerated) of the listed values of it.
fn remove_whole(c: &mut Map<String, Value>, attr: &Attribute, listed: Option<&[Value]>) {
    let key = &attr.name;
    let Some(listed) = listed else {
        c.remove(key);
        return;
    };
    let mut arr = take_array(c, key);
    arr.retain(|elem| !listed.iter().any(|l| agrees(attr, elem, l)));
    put_array(c, key.clone(), arr);
}

/// `add`/`replace` of a whole attribute.
fn set_whole(c: &mut Map<String, Value>, attr: &Attribute, replace: bool, value: &SetValue) {
    let key = attr.name.clone();
    match value {
        SetValue::Null => {
            if replace {
                c.remove(&key);
            }
        }
        SetValue::Multi(items) => {
            let mut arr = take_array(c, &key);
            if replace {
                arr.clear();
            }
            let mut touched = Vec::new();
            for item in items {
                match arr.iter().position(|x| x == item) {
                    Some(i) => touched.push(i),
                    None => {
                        arr.push(item.clone());
                        touched.push(arr.len() - 1);
                    }
                }
            }
            settle_primary(&mut arr, &touched);
            put_array(c, key, arr);
        }
        SetValue::Complex { nulls, given } => {
            let mut obj = take_object(c, &key);
            for n in nulls {
                obj.remove(n);
            }
            obj.extend(given.iter().map(|(k, x)| (k.clone(), x.clone())));
            put_object(c, key, obj);
        }
        SetValue::Single(Some(x)) => {
            c.insert(key, x.clone());
        }
        SetValue::Single(None) => {
            c.remove(&key);
        }
    }
}

/// A sub-attribute of the single complex value, or of every value of a multi-valued one.
fn set_sub(
    c: &mut Map<String, Value>,
    a: &AttrChange,
    sub: &Attribute,
    change: &SubChange,
) -> Result<()> {
    let key = a.attr.name.clone();
    if !a.attr.multi_valued {
        let mut elem = Value::Object(take_object(c, &key));
        change.apply_to(&mut elem, sub);
        if let Value::Object(obj) = elem {
            put_object(c, key, obj);
        }
        return Ok(());
    }
    let mut arr = take_array(c, &key);
    let mut touched = Vec::new();
    if arr.is_empty() {
        if let SubChange::Set(x) = change {
            let mut elem = Map::new();
            elem.insert(sub.name.clone(), x.clone());
            arr.push(validated_element(a.attr, Value::Object(elem), &a.label)?);
            touched.push(0);
        }
    } else {
        for (i, elem) in arr.iter_mut().enumerate() {
            change.apply_to(elem, sub);
            touched.push(i);
        }
    }
    drop_empty(&mut arr);
    settle_primary(&mut arr, &touched);
    put_array(c, key, arr);
    Ok(())
}

/// The values of a multi-valued attribute that a filter matches.
fn apply_filtered(
    ctx: &mut Ctx,
    c: &mut Map<String, Value>,
    a: &AttrChange,
    f: &ElementFilter,
    replace: bool,
    change: &FilteredChange,
) -> Result<()> {
    let key = a.attr.name.clone();
    let mut arr = take_array(c, &key);
    let hits: Vec<usize> = arr
        .iter()
        .enumerate()
        .filter(|(_, e)| f.matches(e))
        .map(|(i, _)| i)
        .collect();
    let touched = match change {
        FilteredChange::Remove(None) => {
            remove_hits(&mut arr, &hits);
            Vec::new()
        }
        FilteredChange::Remove(Some(sub)) => {
            for &i in &hits {
                if let Some(elem) = arr.get_mut(i) {
                    SubChange::Unset.apply_to(elem, sub);
                }
            }
            drop_empty(&mut arr);
            Vec::new()
        }
        FilteredChange::Element(None) => {
            if replace {
                remove_hits(&mut arr, &hits);
            }
            Vec::new()
        }
        FilteredChange::Element(Some(v)) => put_element(a, f, &mut arr, &hits, replace, v)?,
        FilteredChange::Sub(sub, change) => {
            let put = SubPut {
                sub,
                change,
                replace,
            };
            put_filtered_sub(ctx, a, f, &mut arr, &hits, &put)?
        }
    };
    settle_primary(&mut arr, &touched);
    put_array(c, key, arr);
    Ok(())
}

fn remove_hits(arr: &mut Vec<Value>, hits: &[usize]) {
    let mut i = 0;
    arr.retain(|_| {
        i += 1;
        !hits.contains(&(i - 1))
    });
}

fn no_match(label: &str) -> ScimError {
    ScimError::no_target(format!("no value matches '{label}'"))
}

/// A whole value at a filter: `replace` replaces every match (RFC 7644 §3.5.2.3), `add`
/// merges into every match or, with none, creates the value the filter describes. Returns
/// the indices of the values written.
fn put_element(
    a: &AttrChange,
    f: &ElementFilter,
    arr: &mut Vec<Value>,
    hits: &[usize],
    replace: bool,
    v: &Value,
) -> Result<Vec<usize>> {
    let mut touched = Vec::new();
    if replace {
        if hits.is_empty() {
            return Err(no_match(&a.label));
        }
        for &i in hits {
            if let Some(slot) = arr.get_mut(i) {
                *slot = v.clone();
                touched.push(i);
            }
        }
    } else if hits.is_empty() {
        let mut elem = f.template(a.attr).ok_or_else(|| no_match(&a.label))?;
        if let Value::Object(given) = v {
            elem.extend(given.iter().map(|(k, x)| (k.clone(), x.clone())));
        }
        arr.push(validated_element(a.attr, Value::Object(elem), &a.label)?);
        touched.push(arr.len() - 1);
    } else {
        for &i in hits {
            if let (Some(Value::Object(slot)), Value::Object(g)) = (arr.get_mut(i), v) {
                slot.extend(g.iter().map(|(k, x)| (k.clone(), x.clone())));
                touched.push(i);
            }
        }
    }
    Ok(touched)
}

/// A sub-attribute change at a filter.
struct SubPut<'a> {
    sub: &'a Attribute,
    change: &'a SubChange,
    replace: bool,
}

/// A sub-attribute of every match or, with none, of a value created from the filter (for
/// `replace` a tolerance: Entra relies on it). Returns the indices of the values written.
fn put_filtered_sub(
    ctx: &mut Ctx,
    a: &AttrChange,
    f: &ElementFilter,
    arr: &mut Vec<Value>,
    hits: &[usize],
    put: &SubPut,
) -> Result<Vec<usize>> {
    let mut touched = Vec::new();
    if !hits.is_empty() {
        for &i in hits {
            if let Some(elem) = arr.get_mut(i) {
                put.change.apply_to(elem, put.sub);
                touched.push(i);
            }
        }
        drop_empty(arr);
        return Ok(touched);
    }
    let SubChange::Set(x) = put.change else {
        return Ok(touched);
    };
    let mut elem = f.template(a.attr).ok_or_else(|| no_match(&a.label))?;
    if put.replace {
        let label = &a.label;
        ctx.tol.tolerate(Tolerance::ReplaceCreatesElement, || {
            format!("no value matches '{label}'")
        })?;
    }
    elem.insert(put.sub.name.clone(), x.clone());
    arr.push(validated_element(a.attr, Value::Object(elem), &a.label)?);
    touched.push(arr.len() - 1);
    Ok(touched)
}

/// A manager without an id is no manager.
fn manager_cleanup(ctx: &mut Ctx, c: &mut Map<String, Value>, attr: &Attribute) -> Result<()> {
    if !is_manager(attr) {
        return Ok(());
    }
    let empty_id = matches!(c.get(&attr.name).and_then(|m| m.get("value")), Some(Value::String(s)) if s.trim().is_empty());
    if empty_id {
        ctx.tol.tolerate(Tolerance::EmptyManager, || {
            "'manager.value' must not be empty; remove the manager instead".into()
        })?;
        c.remove(&attr.name);
    }
    Ok(())
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
