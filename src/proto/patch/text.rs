//! The stored-text path: a PATCH applied to the stored `data` text, parsing only the
//! attributes the operations address and carrying the others over verbatim.

use super::request::PatchRequest;
use super::TextOutcome;
use crate::proto::error::{Result, ScimError};
use crate::proto::resource;
use crate::proto::tolerance::Tolerances;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Top-level stored attributes no operation has addressed, as their stored JSON text.
pub(super) type Unparsed<'t> = BTreeMap<String, &'t RawValue>;

impl PatchRequest {
    /// [`PatchRequest::apply`] to the stored `data` text, as the request path holds it. Only
    /// the top-level attributes the operations address are parsed; the others stay the text
    /// they are stored as and go back into the new text verbatim. Entra's typical user PATCH
    /// addresses five of some fifteen attributes, and parsing, copying and re-serialising the
    /// other ten was most of its CPU. Same results as [`PatchRequest::apply`] (the tests run
    /// every PATCH both ways).
    pub fn apply_text(&self, stored: &str, tol: Tolerances) -> Result<TextOutcome> {
        let unparsed: Unparsed<'_> = serde_json::from_str(stored).map_err(|_| {
            ScimError::internal().with_cause("stored data is not a JSON object".to_string())
        })?;
        let (data, ctx) = self.run(Map::new(), unparsed, tol)?;
        let changed = ctx.changed_names(&data);
        let text = if changed.iter().any(|n| n != "members") {
            Some(merged_text(&ctx.unparsed, &data)?)
        } else {
            None
        };
        Ok(TextOutcome {
            data: text,
            deactivating: data.get("active") == Some(&Value::Bool(false)),
            reactivating: data.get("active") == Some(&Value::Bool(true)),
            members: ctx.members,
            changed,
            tolerances: ctx.tol.into_vec(),
        })
    }
}

/// The stored text of `parsed` and `unparsed` together (their keys are disjoint), in the
/// key order serde_json writes a map in, so a full parse and write gives the same text.
fn merged_text(unparsed: &Unparsed<'_>, parsed: &Map<String, Value>) -> Result<String> {
    let mut out = Vec::with_capacity(
        unparsed.values().map(|r| r.get().len() + 24).sum::<usize>() + 256 * parsed.len(),
    );
    out.push(b'{');
    let mut a = unparsed.iter().peekable();
    let mut b = parsed.iter().peekable();
    let mut first = true;
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((ka, _)), Some((kb, _))) => ka < kb,
        };
        if !first {
            out.push(b',');
        }
        first = false;
        let fail = |_| ScimError::internal();
        if take_a {
            if let Some((k, v)) = a.next() {
                resource::write_str(&mut out, k)?;
                out.push(b':');
                out.extend_from_slice(v.get().as_bytes());
            }
        } else if let Some((k, v)) = b.next() {
            resource::write_str(&mut out, k)?;
            out.push(b':');
            serde_json::to_writer(&mut out, v).map_err(fail)?;
        }
    }
    out.push(b'}');
    String::from_utf8(out).map_err(|_| ScimError::internal())
}
