//! PLACEHOLDER (lead's compile shim; the PATCH engineer replaces this whole file).
use crate::error::ScimError;
use crate::schema::ResourceType;
use serde_json::{Map, Value};
pub enum MemberOp {
    Add(Vec<String>),
    Remove(Vec<String>),
    RemoveAll,
    Replace(Vec<String>),
}
pub struct PatchOutcome {
    pub data: Map<String, Value>,
    pub members: Vec<MemberOp>,
    pub changed: Vec<String>,
}
pub fn apply(
    _rt: ResourceType,
    _c: &Map<String, Value>,
    _b: &Value,
    _strict: bool,
) -> Result<PatchOutcome, ScimError> {
    Err(ScimError::not_implemented("PATCH pending"))
}
