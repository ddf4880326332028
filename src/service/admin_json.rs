//! The admin API's JSON conventions, shared by its handlers (`admin`, `declarations`,
//! `entitlements`, ...): bodies are JSON objects whose unknown members are refused, answers
//! are `application/json` and never cached.

use crate::proto::error::{Result, ScimError};
use crate::service::http::{Request, Response};
use crate::store::{Db, Store};
use serde_json::{Map, Value};

pub(crate) fn json_response(status: u16, body: &Value) -> Response {
    let mut r = Response::json(status, body);
    r.headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
    r.with_header("content-type", "application/json; charset=utf-8")
        .with_header("cache-control", "no-store")
}

/// An error as the admin and setup APIs answer it: the status, a stable `error` code (what
/// scripts branch on) and the message (for people).
pub(crate) fn error_json(e: &ScimError) -> Response {
    let code = match e.status {
        400 => "invalid_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        503 => "unavailable",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        _ => "internal_error",
    };
    json_response(
        e.status,
        &serde_json::json!({"error": code, "message": e.detail}),
    )
}

/// The request body as a JSON object; an empty body is an empty object.
pub(crate) fn body(req: &Request) -> Result<Map<String, Value>> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match req.json_body()? {
        Value::Object(o) => Ok(o),
        _ => Err(ScimError::invalid_syntax("the body must be a JSON object")),
    }
}

pub(crate) fn reject_unknown(body: &Map<String, Value>, known: &[&str]) -> Result<()> {
    match body.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ScimError::invalid_value(format!(
            "unknown field '{k}'; expected one of: {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

pub(crate) fn opt_string<'b>(body: &'b Map<String, Value>, name: &str) -> Result<Option<&'b str>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ScimError::invalid_value(format!(
            "'{name}' must be a string"
        ))),
    }
}

pub(crate) fn opt_bool(body: &Map<String, Value>, name: &str) -> Result<Option<bool>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ScimError::invalid_value(format!(
            "'{name}' must be true or false"
        ))),
    }
}

pub(crate) fn not_allowed(allowed: &str) -> ScimError {
    ScimError::method_not_allowed(format!("method not allowed here; allowed: {allowed}"))
}

pub(crate) fn no_tenant<D: Db>(store: &Store<'_, D>) -> ScimError {
    ScimError::not_found(format!("no tenant '{}'", store.tenant()))
}
