//! Identity-provider quirks the service accepts, and the collector that accepts or refuses them.
//!
//! Clients deviate from RFC 7643/7644 in well-known ways (Entra's `"active": "False"`, its
//! ADSCIM schema URI on groups, Okta's group `id` in a rename). Refusing them would fail every
//! provisioning cycle of every tenant whose IdP does it, so by default each is accepted,
//! rewritten to what the RFC means, and reported: the store counts it per tenant
//! (`tolerance_counts`, the console's tolerances view) and the response log line names it.
//! A strict tenant gets the 400 the RFC calls for instead, with the same detail.

use crate::proto::error::{Result, ScimError, ScimType};

/// Non-RFC client behaviour accepted when not in strict mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tolerance {
    /// `"op": "Add"` / `"Replace"` / `"Remove"` (Entra without `aadOptscim062020`).
    CapitalizedOp,
    /// `"True"` / `"False"` strings for booleans (Entra: `"active": "False"`).
    BooleanString,
    /// Enterprise `manager` sent as a bare id string instead of `{"value": id}` (Entra).
    ManagerString,
    /// `manager` set to `""` or `{"value": ""}`, taken as "no manager".
    EmptyManager,
    /// A single value where a multi-valued attribute expects an array; wrapped.
    SingleValueAsArray,
    /// `replace` on `attr[type eq "x"].sub` with no match created the element (Entra).
    ReplaceCreatesElement,
    /// `remove` with a `value` list removed only the listed values (Entra without
    /// `aadOptscim062020`: `{"op":"Remove","path":"members","value":[{"value":id}]}`).
    RemoveByValue,
    /// `remove` carried a `value` that has no meaning for its path; ignored.
    RemoveValueIgnored,
    /// A path-less `add`/`replace` value carried `id`, `meta`, `schemas` or another readOnly
    /// attribute (Okta sends the group `id` when renaming); ignored.
    ReadOnlyIgnored,
    /// `schemas` named a URI this resource type does not have and the body carries no
    /// attribute under it (Entra's group create lists
    /// `http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group`); nothing
    /// is lost by leaving it out of the stored resource.
    SchemaWithoutAttributes,
    /// A top-level attribute no schema defines (`nickname2`, an IT admin's mapping mistake in
    /// Entra or Okta), kept verbatim at the core level like an undeclared extension's
    /// attribute: refusing it would fail every user the mapping touches, and dropping it
    /// would lose what the admin meant to send.
    UnknownAttribute,
}

impl Tolerance {
    pub const ALL: [Tolerance; 11] = [
        Tolerance::CapitalizedOp,
        Tolerance::BooleanString,
        Tolerance::ManagerString,
        Tolerance::EmptyManager,
        Tolerance::SingleValueAsArray,
        Tolerance::ReplaceCreatesElement,
        Tolerance::RemoveByValue,
        Tolerance::RemoveValueIgnored,
        Tolerance::ReadOnlyIgnored,
        Tolerance::SchemaWithoutAttributes,
        Tolerance::UnknownAttribute,
    ];

    /// The name counted per tenant and shown in the console.
    pub fn as_str(self) -> &'static str {
        match self {
            Tolerance::CapitalizedOp => "capitalizedOp",
            Tolerance::BooleanString => "booleanString",
            Tolerance::ManagerString => "managerString",
            Tolerance::EmptyManager => "emptyManager",
            Tolerance::SingleValueAsArray => "singleValueAsArray",
            Tolerance::ReplaceCreatesElement => "replaceCreatesElement",
            Tolerance::RemoveByValue => "removeByValue",
            Tolerance::RemoveValueIgnored => "removeValueIgnored",
            Tolerance::ReadOnlyIgnored => "readOnlyIgnored",
            Tolerance::SchemaWithoutAttributes => "schemaWithoutAttributes",
            Tolerance::UnknownAttribute => "unknownAttribute",
        }
    }

    /// The error strict mode answers with instead. An unknown attribute is `invalidSyntax` in
    /// a resource body; PATCH reports it as the `invalidPath` its path is.
    fn strict_type(self) -> ScimType {
        match self {
            Tolerance::CapitalizedOp
            | Tolerance::RemoveByValue
            | Tolerance::RemoveValueIgnored
            | Tolerance::SchemaWithoutAttributes
            | Tolerance::UnknownAttribute => ScimType::InvalidSyntax,
            Tolerance::BooleanString
            | Tolerance::ManagerString
            | Tolerance::EmptyManager
            | Tolerance::SingleValueAsArray => ScimType::InvalidValue,
            Tolerance::ReplaceCreatesElement => ScimType::NoTarget,
            Tolerance::ReadOnlyIgnored => ScimType::Mutability,
        }
    }
}

/// The quirks one request showed, or (strict) the first one as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tolerances {
    strict: bool,
    fired: Vec<Tolerance>,
}

impl Tolerances {
    /// Accepts quirks and records them.
    pub fn lenient() -> Self {
        Tolerances::default()
    }

    /// Refuses every quirk with the RFC's 400.
    pub fn strict() -> Self {
        Tolerances::new(true)
    }

    /// `strict()` or `lenient()`.
    pub fn new(strict: bool) -> Self {
        Tolerances {
            strict,
            fired: Vec::new(),
        }
    }

    /// Accepts a quirk, or in strict mode refuses it with `detail`.
    pub fn tolerate(&mut self, t: Tolerance, detail: impl FnOnce() -> String) -> Result<()> {
        if self.strict {
            return Err(ScimError::bad_request(t.strict_type(), detail()));
        }
        if !self.fired.contains(&t) {
            self.fired.push(t);
        }
        Ok(())
    }

    /// The quirks accepted so far, each once, in the order first seen.
    pub fn fired(&self) -> &[Tolerance] {
        &self.fired
    }

    pub fn into_vec(self) -> Vec<Tolerance> {
        self.fired
    }

    /// The names of the accepted quirks, as the store counts them.
    pub fn names(&self) -> Vec<&'static str> {
        self.fired.iter().map(|t| t.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_records_each_once_and_strict_refuses() {
        let mut t = Tolerances::lenient();
        t.tolerate(Tolerance::BooleanString, || "x".into()).unwrap();
        t.tolerate(Tolerance::CapitalizedOp, || "x".into()).unwrap();
        t.tolerate(Tolerance::BooleanString, || "x".into()).unwrap();
        assert_eq!(t.names(), vec!["booleanString", "capitalizedOp"]);

        let mut s = Tolerances::strict();
        let e = s
            .tolerate(Tolerance::SchemaWithoutAttributes, || "why".into())
            .unwrap_err();
        assert_eq!((e.status, e.detail.as_str()), (400, "why"));
        assert!(s.fired().is_empty());
    }

    #[test]
    fn names_are_distinct() {
        let mut names: Vec<&str> = Tolerance::ALL.iter().map(|t| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Tolerance::ALL.len());
    }
}
