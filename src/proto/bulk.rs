//! RFC 7644 §3.7 bulk requests as pure data: the request parsed and checked as a whole
//! before anything runs, the `bulkId` references each operation makes, the circular ones,
//! and the order the operations run in (waves of operations that may share one database
//! round trip). Executing an operation is the service's business; this module only decides
//! what may run when, so every rule here is tested without a database.

use crate::proto::error::{Result, ScimError};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
/// Most operations in one request, advertised as `bulk.maxOperations`: a 1,000-operation
/// request runs in a handful of D1 round trips (docs/PERFORMANCE.md), far inside a Worker's
/// subrequest budget and its CPU time.
pub const MAX_OPERATIONS: usize = 1000;
/// How a value refers to the resource another operation of the request creates.
pub const BULK_ID_PREFIX: &str = "bulkId:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkMethod {
    Post,
    Put,
    Patch,
    Delete,
}

impl BulkMethod {
    fn parse(s: &str) -> Option<BulkMethod> {
        match s.to_ascii_uppercase().as_str() {
            "POST" => Some(BulkMethod::Post),
            "PUT" => Some(BulkMethod::Put),
            "PATCH" => Some(BulkMethod::Patch),
            "DELETE" => Some(BulkMethod::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BulkMethod::Post => "POST",
            BulkMethod::Put => "PUT",
            BulkMethod::Patch => "PATCH",
            BulkMethod::Delete => "DELETE",
        }
    }
}

/// One entry of `Operations`, as sent. An operation that cannot run carries the error it is
/// answered with (`invalid`) and is never executed; the others run as their single request.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// `None` only for an invalid operation whose method is missing or unknown.
    pub method: Option<BulkMethod>,
    pub bulk_id: Option<String>,
    pub path: Option<String>,
    /// The resource version the client expects (sent as `If-Match` by the single request).
    pub version: Option<String>,
    pub data: Option<Value>,
    /// The `bulkId`s the path and data reference, each once, in order of appearance.
    pub refs: Vec<String>,
    pub invalid: Option<ScimError>,
    /// Set on an operation this service added: the PATCH that adds the members a group's
    /// POST (the operation at this index) left out to break a circular reference. Its
    /// outcome is reported as that POST's.
    pub completes: Option<usize>,
}

impl Operation {
    /// Needs a read before its write (PATCH; PUT naming a version): its write is planned from
    /// what the read returned, so it never shares a wave with single-trip writes.
    fn reads_first(&self) -> bool {
        match self.method {
            Some(BulkMethod::Patch) => true,
            Some(BulkMethod::Put) => self.version.is_some(),
            _ => false,
        }
    }

    /// The resource the operation addresses (`None` for POST), as written in its path.
    fn target(&self) -> Option<String> {
        match self.method {
            Some(BulkMethod::Post) | None => None,
            Some(_) => self
                .path
                .as_deref()
                .map(|p| p.trim_matches('/').to_ascii_lowercase()),
        }
    }
}

/// A parsed `BulkRequest`.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkRequest {
    /// Errors after which processing stops (RFC 7644 §3.7.3); `None`: never stop.
    pub fail_on_errors: Option<usize>,
    pub operations: Vec<Operation>,
    /// `bulkId` → the index of the POST that defines it.
    pub creators: HashMap<String, usize>,
}

/// Case-insensitive member of a JSON object (attribute names are, RFC 7643 §2.1).
fn member<'v>(obj: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

impl BulkRequest {
    /// Parses and checks the whole request: the envelope errors answer the request (`400`,
    /// or `413` past [`MAX_OPERATIONS`], RFC 7644 §3.7.4); an operation's own errors answer
    /// only that operation, as do references to unknown `bulkId`s and circular ones.
    pub fn parse(body: &Value) -> Result<BulkRequest> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("the bulk request must be a JSON object"))?;
        let schemas_ok = member(obj, "schemas")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|s| s.as_str() == Some(BULK_REQUEST_SCHEMA)));
        if !schemas_ok {
            return Err(ScimError::invalid_syntax(format!(
                "'schemas' must be [\"{BULK_REQUEST_SCHEMA}\"]"
            )));
        }
        let fail_on_errors = match member(obj, "failOnErrors") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                _ => {
                    return Err(ScimError::invalid_value(
                        "'failOnErrors' must be an integer of at least 1",
                    ))
                }
            },
        };
        let ops = member(obj, "Operations")
            .and_then(Value::as_array)
            .ok_or_else(|| ScimError::invalid_syntax("'Operations' must be an array"))?;
        if ops.len() > MAX_OPERATIONS {
            return Err(ScimError::payload_too_large(format!(
                "the bulk request has {} operations; maxOperations is {MAX_OPERATIONS}",
                ops.len()
            )));
        }
        let mut operations: Vec<Operation> = ops.iter().map(parse_operation).collect();
        let creators = define_bulk_ids(&mut operations);
        check_references(&mut operations, &creators);
        let follow_ups = break_cycles(&mut operations, &creators);
        for i in circular(&operations, &creators) {
            if let Some(op) = operations.get_mut(i) {
                op.invalid.get_or_insert_with(|| {
                    ScimError::new(
                        409,
                        None,
                        "the operation is part of, or depends on, a circular bulkId reference \
                         that cannot be resolved (only group members can be added afterwards)",
                    )
                });
            }
        }
        // A POST refused after all keeps its members in its own (refused) request.
        let kept: Vec<Operation> = follow_ups
            .into_iter()
            .filter(|f| {
                f.completes
                    .and_then(|i| operations.get(i))
                    .is_some_and(|o| o.invalid.is_none())
            })
            .collect();
        operations.extend(kept);
        Ok(BulkRequest {
            fail_on_errors,
            operations,
            creators,
        })
    }

    /// The creating operations `op` depends on.
    fn creators_of(&self, op: &Operation) -> Vec<usize> {
        op.refs
            .iter()
            .filter_map(|r| self.creators.get(r).copied())
            .collect()
    }
}

fn parse_operation(v: &Value) -> Operation {
    let mut op = Operation {
        method: None,
        bulk_id: None,
        path: None,
        version: None,
        data: None,
        refs: Vec::new(),
        invalid: None,
        completes: None,
    };
    let Some(obj) = v.as_object() else {
        op.invalid = Some(ScimError::invalid_syntax(
            "an operation must be a JSON object",
        ));
        return op;
    };
    let string = |name: &str| {
        member(obj, name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    op.method = string("method").as_deref().and_then(BulkMethod::parse);
    op.bulk_id = string("bulkId");
    op.path = string("path");
    op.version = string("version");
    op.data = member(obj, "data").filter(|d| !d.is_null()).cloned();
    op.invalid = check_operation(&op).err();
    if let Some(path) = &op.path {
        collect_path_ref(path, &mut op.refs);
    }
    if let Some(data) = &op.data {
        collect_refs(data, &mut op.refs);
    }
    op
}

fn check_operation(op: &Operation) -> Result<()> {
    let method = op.method.ok_or_else(|| {
        ScimError::invalid_value("'method' must be one of POST, PUT, PATCH and DELETE")
    })?;
    let path = op
        .path
        .as_deref()
        .ok_or_else(|| ScimError::invalid_syntax("'path' is required"))?;
    if !path.starts_with('/') {
        return Err(ScimError::invalid_path(
            "'path' must be relative to the SCIM base, e.g. /Users or /Users/{id}",
        ));
    }
    if method == BulkMethod::Post && op.bulk_id.as_deref().is_none_or(str::is_empty) {
        return Err(ScimError::invalid_syntax(
            "'bulkId' is required for POST (RFC 7644 §3.7)",
        ));
    }
    let needs_data = method != BulkMethod::Delete;
    if needs_data && !op.data.as_ref().is_some_and(Value::is_object) {
        return Err(ScimError::invalid_syntax(format!(
            "'data' must be a JSON object for {}",
            method.as_str()
        )));
    }
    Ok(())
}

/// `bulkId:x` as the id segment of a path (`/Groups/bulkId:x`).
fn collect_path_ref(path: &str, refs: &mut Vec<String>) {
    for seg in path.split('/') {
        push_ref(seg, refs);
    }
}

fn push_ref(s: &str, refs: &mut Vec<String>) {
    if let Some(id) = s.strip_prefix(BULK_ID_PREFIX) {
        if !id.is_empty() && !refs.iter().any(|r| r == id) {
            refs.push(id.to_string());
        }
    }
}

/// Every `bulkId:` reference in `v`: a string value (`members[].value`, `manager.value`, a
/// PATCH value) or a quoted value inside a PATCH filter path (`members[value eq "bulkId:x"]`).
fn collect_refs(v: &Value, refs: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            push_ref(s, refs);
            for quoted in s.split('"').skip(1).step_by(2) {
                push_ref(quoted, refs);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, refs)),
        Value::Object(obj) => obj.values().for_each(|i| collect_refs(i, refs)),
        _ => {}
    }
}

/// Maps each POST's `bulkId` to its operation; a `bulkId` used twice makes the later POST
/// invalid (RFC 7644 §3.7: unique within the request).
fn define_bulk_ids(ops: &mut [Operation]) -> HashMap<String, usize> {
    let mut creators = HashMap::new();
    for (i, op) in ops.iter_mut().enumerate() {
        if op.method != Some(BulkMethod::Post) || op.invalid.is_some() {
            continue;
        }
        let Some(id) = op.bulk_id.clone() else {
            continue;
        };
        match creators.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => {
                op.invalid = Some(ScimError::invalid_value(format!(
                    "bulkId '{}' is used by an earlier operation of this request",
                    e.key()
                )));
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(i);
            }
        }
    }
    creators
}

fn check_references(ops: &mut [Operation], creators: &HashMap<String, usize>) {
    for op in ops.iter_mut().filter(|o| o.invalid.is_none()) {
        if let Some(unknown) = op.refs.iter().find(|r| !creators.contains_key(*r)) {
            op.invalid = Some(ScimError::invalid_value(format!(
                "'bulkId:{unknown}' is not the bulkId of a POST in this request"
            )));
        }
    }
}

/// Resolves circular references through group members (RFC 7644 §3.7.1: the service
/// provider MUST try): a group POST on or behind a cycle is created without the members that
/// reference other operations' `bulkId`s, and a PATCH adding them follows once those exist.
/// Returns those PATCHes; a cycle that members alone do not make stays, and is refused.
fn break_cycles(ops: &mut [Operation], creators: &HashMap<String, usize>) -> Vec<Operation> {
    let mut follow_ups = Vec::new();
    for i in circular(ops, creators) {
        let Some(op) = ops.get_mut(i) else { continue };
        let own = op.bulk_id.clone();
        let is_group_post = op.method == Some(BulkMethod::Post)
            && op
                .path
                .as_deref()
                .is_some_and(|p| p.trim_matches('/').eq_ignore_ascii_case("Groups"));
        let Some(own) = own.filter(|_| is_group_post && op.invalid.is_none()) else {
            continue;
        };
        let Some(members) = op
            .data
            .as_mut()
            .and_then(Value::as_object_mut)
            .and_then(|d| {
                d.iter_mut()
                    .find(|(k, _)| k.eq_ignore_ascii_case("members"))
            })
            .and_then(|(_, m)| m.as_array_mut())
        else {
            continue;
        };
        let refers_on = |m: &Value| {
            let mut refs = Vec::new();
            collect_refs(m, &mut refs);
            !refs.is_empty() && refs.iter().all(|r| *r != own)
        };
        let (later, now): (Vec<Value>, Vec<Value>) =
            std::mem::take(members).into_iter().partition(refers_on);
        *members = now;
        if later.is_empty() {
            continue;
        }
        op.refs.clear();
        if let Some(path) = &op.path {
            collect_path_ref(path, &mut op.refs);
        }
        if let Some(data) = &op.data {
            collect_refs(data, &mut op.refs);
        }
        let value = Value::Array(later);
        let mut refs = vec![own.clone()];
        collect_refs(&value, &mut refs);
        follow_ups.push(Operation {
            method: Some(BulkMethod::Patch),
            bulk_id: None,
            path: Some(format!("/Groups/{BULK_ID_PREFIX}{own}")),
            version: None,
            data: Some(serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": value}]
            })),
            refs,
            invalid: None,
            completes: Some(i),
        });
    }
    follow_ups
}

/// Operations on a `bulkId` cycle, or waiting on one: what remains after repeatedly
/// removing the operations whose creators are all removed already (Kahn's algorithm).
fn circular(ops: &[Operation], creators: &HashMap<String, usize>) -> Vec<usize> {
    let deps: Vec<Vec<usize>> = ops
        .iter()
        .map(|op| {
            op.refs
                .iter()
                .filter_map(|r| creators.get(r).copied())
                .collect()
        })
        .collect();
    let mut resolved = vec![false; ops.len()];
    loop {
        let mut progress = false;
        for (i, d) in deps.iter().enumerate() {
            let ready = d.iter().all(|c| resolved.get(*c).copied().unwrap_or(true));
            if let Some(r) = resolved.get_mut(i).filter(|r| !**r && ready) {
                *r = true;
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
    resolved
        .iter()
        .enumerate()
        .filter(|(_, r)| !**r)
        .map(|(i, _)| i)
        .collect()
}

/// Where an operation stands while the request runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Succeeded,
    Failed,
}

/// What to do next with one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Run it as its single request.
    Run(usize),
    /// Answer it with its own error without running it.
    Refuse(usize),
    /// Answer it `409`: the POST defining `bulkId` failed.
    MissingCreator(usize, String),
}

impl BulkRequest {
    /// The next wave: operations that may run together, in request order. An operation runs
    /// once every POST it references succeeded; one that waits keeps later operations on the
    /// same resource waiting too, so the client's order is kept wherever it matters. A wave
    /// holds either single-trip writes only or read-then-write operations only, never two
    /// operations on one resource, so running it equals running its operations one by one.
    /// At most `max_steps` steps: with `failOnErrors` n and k errors so far, n − k, so that
    /// even if every step fails the request ends exactly at its n-th error and nothing runs
    /// after it (`failOnErrors: 1` runs one operation at a time). Empty when nothing is
    /// pending.
    pub fn next_wave(&self, state: &[State], max_steps: usize) -> Vec<Step> {
        let mut wave = Vec::new();
        // Resources an earlier operation still waits to write, and those this wave writes.
        let mut waiting: HashSet<String> = HashSet::new();
        let mut in_wave: HashSet<String> = HashSet::new();
        let mut kind = None;
        for (i, op) in self.operations.iter().enumerate() {
            if state.get(i) != Some(&State::Pending) {
                continue;
            }
            let target = op.target();
            if op.invalid.is_some() {
                wave.push(Step::Refuse(i));
            } else if let Some(failed) = self.failed_creator(op, state) {
                wave.push(Step::MissingCreator(i, failed));
            } else if !self.ready(op, state) || target.as_ref().is_some_and(|t| waiting.contains(t))
            {
                // Waits for a POST it references (the RFC lets it move behind that POST);
                // later operations on its resource wait behind it.
                waiting.extend(target);
                continue;
            } else if target.as_ref().is_some_and(|t| in_wave.contains(t))
                || kind.is_some_and(|k| k != op.reads_first())
            {
                break;
            } else {
                kind = Some(op.reads_first());
                in_wave.extend(target);
                wave.push(Step::Run(i));
            }
            if wave.len() >= max_steps {
                break;
            }
        }
        wave
    }

    fn ready(&self, op: &Operation, state: &[State]) -> bool {
        self.creators_of(op)
            .iter()
            .all(|c| state.get(*c) == Some(&State::Succeeded))
    }

    fn failed_creator(&self, op: &Operation, state: &[State]) -> Option<String> {
        op.refs
            .iter()
            .find(|r| {
                self.creators
                    .get(*r)
                    .is_some_and(|c| state.get(*c) == Some(&State::Failed))
            })
            .cloned()
    }
}

/// `v` with every `bulkId:` reference replaced by the id `resolve` gives (the resource the
/// referenced POST created): whole string values, and quoted values in PATCH filter paths.
pub fn substitute(v: &mut Value, resolve: &dyn Fn(&str) -> Option<String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix(BULK_ID_PREFIX).and_then(resolve) {
                *s = id;
            } else if s.contains(BULK_ID_PREFIX) {
                *s = substitute_quoted(s, resolve);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| substitute(i, resolve)),
        Value::Object(obj) => obj.values_mut().for_each(|i| substitute(i, resolve)),
        _ => {}
    }
}

fn substitute_quoted(s: &str, resolve: &dyn Fn(&str) -> Option<String>) -> String {
    s.split('"')
        .enumerate()
        .map(|(i, part)| {
            match part
                .strip_prefix(BULK_ID_PREFIX)
                .filter(|_| i % 2 == 1)
                .and_then(resolve)
            {
                Some(id) => id,
                None => part.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\"")
}

/// `path` with a `bulkId:` id segment replaced by the created resource's id.
pub fn substitute_path(path: &str, resolve: &dyn Fn(&str) -> Option<String>) -> String {
    path.split('/')
        .map(|seg| {
            seg.strip_prefix(BULK_ID_PREFIX)
                .and_then(resolve)
                .unwrap_or_else(|| seg.to_string())
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(ops: Value) -> BulkRequest {
        BulkRequest::parse(&json!({"schemas": [BULK_REQUEST_SCHEMA], "Operations": ops})).unwrap()
    }

    fn post(bulk_id: &str, data: Value) -> Value {
        json!({"method": "POST", "path": "/Groups", "bulkId": bulk_id, "data": data})
    }

    fn status(op: &Operation) -> Option<u16> {
        op.invalid.as_ref().map(|e| e.status)
    }

    #[test]
    fn references_are_found_in_paths_values_and_filter_paths() {
        let r = parse(json!([
            post("a", json!({"members": [{"value": "bulkId:u"}]})),
            {"method": "PATCH", "path": "/Groups/bulkId:a", "data": {"Operations": [
                {"op": "remove", "path": "members[value eq \"bulkId:u\"]"},
                {"op": "add", "value": {"manager": {"value": "bulkId:m"}}}]}},
            post("u", json!({})),
            post("m", json!({"displayName": "not bulkId:x"})),
        ]));
        let refs: Vec<Vec<String>> = r.operations.iter().map(|o| o.refs.clone()).collect();
        assert_eq!(refs[0], ["u"]);
        assert_eq!(refs[1], ["a", "u", "m"]);
        assert!(refs[2].is_empty() && refs[3].is_empty());
        assert!(r.operations.iter().all(|o| o.invalid.is_none()));
    }

    #[test]
    fn malformed_operations_are_refused_one_by_one() {
        let r = parse(json!([
            {"method": "POST", "path": "/Users", "data": {}},
            {"method": "GET", "path": "/Users"},
            {"method": "PUT", "path": "/Users/1"},
            {"method": "DELETE", "path": "Users/1"},
            post("dup", json!({})),
            post("dup", json!({})),
            {"method": "DELETE", "path": "/Users/bulkId:nobody"},
            {"method": "delete", "path": "/Users/1"},
            "not an object",
        ]));
        let got: Vec<Option<u16>> = r.operations.iter().map(status).collect();
        assert_eq!(
            got,
            [
                Some(400),
                Some(400),
                Some(400),
                Some(400),
                None,
                Some(400),
                Some(400),
                None,
                Some(400)
            ]
        );
        assert_eq!(r.creators.get("dup"), Some(&4));
    }

    #[test]
    fn envelope_errors_answer_the_request() {
        let body = |v: Value| BulkRequest::parse(&v).map(|_| ()).unwrap_err().status;
        assert_eq!(body(json!([])), 400);
        assert_eq!(body(json!({"Operations": []})), 400);
        let s = json!([BULK_REQUEST_SCHEMA]);
        assert_eq!(body(json!({"schemas": s, "Operations": "x"})), 400);
        assert_eq!(
            body(json!({"schemas": s, "Operations": [], "failOnErrors": -1})),
            400
        );
        assert_eq!(
            body(json!({"schemas": s, "Operations": [], "failOnErrors": 1.5})),
            400
        );
        let many: Vec<Value> = (0..=MAX_OPERATIONS).map(|_| json!({})).collect();
        assert_eq!(body(json!({"schemas": s, "Operations": many})), 413);
        let ok = BulkRequest::parse(&json!({"schemas": s, "operations": [], "FAILONERRORS": 2}));
        assert_eq!(ok.unwrap().fail_on_errors, Some(2));
    }

    #[test]
    fn circular_group_members_are_added_afterwards_other_cycles_are_409() {
        let user = |b: &str, manager: &str| {
            json!({"method": "POST", "path": "/Users", "bulkId": b, "data": {"userName": b,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":
                    {"manager": {"value": format!("bulkId:{manager}")}}}})
        };
        let r = parse(json!([
            post(
                "a",
                json!({"members": [{"value": "bulkId:b"}, {"value": "existing"}]})
            ),
            post("b", json!({"members": [{"value": "bulkId:a"}]})),
            post("self", json!({"members": [{"value": "bulkId:self"}]})),
            user("x", "y"),
            user("y", "x"),
            post("d", json!({"members": [{"value": "bulkId:e"}]})),
            post("e", json!({})),
        ]));
        let got: Vec<Option<u16>> = r.operations.iter().map(status).collect();
        assert_eq!(
            got,
            [
                None,
                None,
                Some(409),
                Some(409),
                Some(409),
                None,
                None,
                None,
                None
            ]
        );
        // Group a is created with its other member; a PATCH adds b once both exist.
        assert_eq!(
            r.operations[0].data.as_ref().unwrap()["members"],
            json!([{"value": "existing"}])
        );
        assert!(r.operations[0].refs.is_empty());
        let follow_up = &r.operations[7];
        assert_eq!(follow_up.completes, Some(0));
        assert_eq!(follow_up.method, Some(BulkMethod::Patch));
        assert_eq!(follow_up.path.as_deref(), Some("/Groups/bulkId:a"));
        assert_eq!(follow_up.refs, ["a", "b"]);
        assert_eq!(
            follow_up.data.as_ref().unwrap()["Operations"][0]["value"],
            json!([{"value": "bulkId:b"}])
        );
        assert_eq!(r.operations[8].completes, Some(1));
        // An acyclic reference is left as it is.
        assert_eq!(r.operations[5].refs, ["e"]);
    }

    fn run_all(r: &BulkRequest, max_steps: usize) -> Vec<Vec<Step>> {
        let mut state = vec![State::Pending; r.operations.len()];
        let mut waves = Vec::new();
        loop {
            let wave = r.next_wave(&state, max_steps);
            if wave.is_empty() {
                return waves;
            }
            for step in &wave {
                let (Step::Run(i) | Step::Refuse(i) | Step::MissingCreator(i, _)) = step;
                state[*i] = match step {
                    Step::Run(_) => State::Succeeded,
                    _ => State::Failed,
                };
            }
            waves.push(wave);
        }
    }

    #[test]
    fn waves_keep_the_clients_order_where_it_matters() {
        let patch =
            |path: &str| json!({"method": "PATCH", "path": path, "data": {"Operations": []}});
        let r = parse(json!([
            patch("/Groups/bulkId:g"),           // 0: waits for 2
            patch("/Groups/bulkId:g"),           // 1: behind 0 (same resource)
            post("g", json!({})),                // 2
            post("h", json!({})),                // 3
            patch("/Groups/x"),                  // 4
            patch("/Groups/x"),                  // 5: same resource as 4: a later wave
            {"method": "DELETE", "path": "/Groups/y"}, // 6
        ]));
        use Step::Run;
        assert_eq!(
            run_all(&r, usize::MAX),
            [
                vec![Run(2), Run(3)],
                // A second operation on a resource of the wave ends the wave there.
                vec![Run(0)],
                vec![Run(1), Run(4)],
                vec![Run(5)],
                // A single-trip write never shares a wave with read-then-write ones.
                vec![Run(6)],
            ]
        );
        let sequential = run_all(&r, 1);
        assert!(sequential.iter().all(|w| w.len() == 1));
        assert_eq!(sequential[0], [Run(2)]);
        assert_eq!(sequential.len(), 7);
    }

    #[test]
    fn a_failed_creator_fails_its_dependents() {
        let r = parse(json!([
            post("g", json!({})),
            {"method": "DELETE", "path": "/Groups/bulkId:g"},
        ]));
        let mut state = vec![State::Pending; 2];
        assert_eq!(r.next_wave(&state, usize::MAX), [Step::Run(0)]);
        state[0] = State::Failed;
        assert_eq!(
            r.next_wave(&state, usize::MAX),
            [Step::MissingCreator(1, "g".into())]
        );
    }

    #[test]
    fn substitution_replaces_references_only() {
        let ids = |b: &str| (b == "u").then(|| "id-1".to_string());
        let mut v = json!({"members": [{"value": "bulkId:u"}, {"value": "bulkId:other"}],
                           "path": "members[value eq \"bulkId:u\"]", "note": "bulkId:u!"});
        substitute(&mut v, &ids);
        assert_eq!(v["members"][0]["value"], "id-1");
        assert_eq!(v["members"][1]["value"], "bulkId:other");
        assert_eq!(v["path"], "members[value eq \"id-1\"]");
        assert_eq!(v["note"], "bulkId:u!");
        assert_eq!(substitute_path("/Users/bulkId:u", &ids), "/Users/id-1");
    }
}
