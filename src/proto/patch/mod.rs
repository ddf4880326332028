//! PATCH (RFC 7644 §3.5.2) as data, then as a pure function: the request body becomes a
//! typed [`PatchRequest`] before anything is read, and the request is applied to the stored
//! `data`, giving the new `data`, group member changes and an audit summary. Nothing here
//! touches storage, so every request shape Microsoft Entra ID and Okta send is pinned by a
//! unit test.
//!
//! The flow, and the module that holds each step:
//! 1. **parse** (`request`, `path`, `coerce`): [`PatchRequest::parse`] turns the body into
//!    typed operations. Paths and value filters are read by the filter module's attribute-path
//!    grammar and resolved against the schema; values are coerced (the tolerated client
//!    quirks) and validated wherever the target alone decides. Everything that can be refused
//!    without the stored resource is refused here, before the handler's first D1 round trip.
//! 2. **read**: the handler reads the stored resource (and the tenant's strictness).
//! 3. **apply** (`apply`, `element`): one small function per target kind (attribute,
//!    sub-attribute, filtered multi-valued values, members, path-less object) applies each
//!    operation to a copy; the first failing operation fails the whole request, so a PATCH is
//!    atomic by construction. What depends on the stored values (which elements a filter
//!    matches, whether a `replace` must create one) is decided here.
//! 4. **revalidate touched**: the attributes the operations touched, and the required ones,
//!    are re-validated; the others are stored data that passed validation when written. So a
//!    PATCH can never store what a PUT would have rejected, which the tests and the patch fuzz
//!    target check by validating every outcome as a whole resource.
//! 5. **text merge** (`text`): the request path patches the stored text
//!    ([`PatchRequest::apply_text`]): only the attributes the operations address are parsed,
//!    the rest is carried over verbatim. [`PatchRequest::apply`] on the parsed resource is the
//!    tests' and the fuzz target's oracle for it.
//!
//! Group members never enter `data`: a group may have 100k members, so member operations are
//! returned as [`MemberOp`]s for the store to apply as row changes, without reading the list.
//!
//! Clients deviate from the RFC in well-known ways. With a lenient [`Tolerances`] collector
//! those deviations are accepted and reported as [`Tolerance`]s; with a strict one each is a
//! 400 instead. Most are visible in the request alone and fire while parsing; the few that
//! depend on the stored values (`replaceCreatesElement`, a manager left without an id) fire
//! while applying, into the same collector.

mod apply;
mod coerce;
mod element;
mod path;
mod request;
mod text;
mod undeclared;

use crate::proto::error::Result;
use crate::proto::schema::TypeSchemas;
pub use crate::proto::tolerance::Tolerance;
use crate::proto::tolerance::Tolerances;
pub use request::PatchRequest;
use serde_json::{Map, Value};

/// Most operations one PATCH request may carry.
pub const MAX_OPERATIONS: usize = 1000;

/// What a PATCH request amounts to.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOutcome {
    /// The new stored `data`, validated like a PUT body.
    pub data: Map<String, Value>,
    /// Group member changes in request order (always empty for users).
    pub members: Vec<MemberOp>,
    /// Attributes whose stored value changed, by canonical name (`emails`,
    /// `urn:…:enterprise:2.0:User:department`, `members`), in the order first touched.
    pub changed: Vec<String>,
    /// Client quirks that were accepted (empty when `strict`).
    pub tolerances: Vec<Tolerance>,
}

/// What a PATCH of stored JSON text amounts to ([`PatchRequest::apply_text`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TextOutcome {
    /// The new stored `data` text; `None` when no attribute changed.
    pub data: Option<String>,
    /// The PATCH sets `active` to false.
    pub deactivating: bool,
    /// The PATCH sets `active` to true.
    pub reactivating: bool,
    pub members: Vec<MemberOp>,
    pub changed: Vec<String>,
    pub tolerances: Vec<Tolerance>,
}

/// A change to a group's member rows, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberOp {
    Add(Vec<String>),
    Remove(Vec<String>),
    RemoveAll,
    Replace(Vec<String>),
}

/// Parses and applies a PATCH body to a resource's parsed `data` in one go (the tests' and
/// the fuzz target's oracle for [`apply_text`]).
pub fn apply(
    rt: impl Into<TypeSchemas>,
    current: &Map<String, Value>,
    body: &Value,
    strict: bool,
) -> Result<PatchOutcome> {
    let mut tol = Tolerances::new(strict);
    PatchRequest::parse(rt, body, &mut tol)?.apply(current, tol)
}

/// Parses and applies a PATCH body to a resource's stored `data` text in one go
/// ([`PatchRequest::apply_text`]; same results as [`apply`]).
pub fn apply_text(
    rt: impl Into<TypeSchemas>,
    stored: &str,
    body: &Value,
    strict: bool,
) -> Result<TextOutcome> {
    let mut tol = Tolerances::new(strict);
    PatchRequest::parse(rt, body, &mut tol)?.apply_text(stored, tol)
}

/// A PATCH operation's `op`, case normalised (RFC 7644 §3.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Replace,
    Remove,
}

/// What an operation does to one sub-attribute of a value.
#[derive(Debug, Clone)]
pub(crate) enum SubChange {
    Set(Value),
    Unset,
    Keep,
}

#[cfg(test)]
mod tests;
