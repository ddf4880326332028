//! `POST /Bulk` (RFC 7644 §3.7). The request is parsed and checked whole before anything
//! runs ([`crate::proto::bulk`]: envelope, every operation's shape, `bulkId` references,
//! circular ones). Then it runs in waves ([`BulkRequest::next_wave`]); each operation of a
//! wave runs as its single request would ([`scim::run_write`]: the same validation against the
//! tenant's schemas, uniqueness, provisioning-log event in the write's own batch, failure
//! record), all of a wave concurrently ([`Db::drive`]): over the Worker's
//! [`crate::store::coalesce::Coalescing`] database the wave's batches share D1 round trips,
//! and a 1,000-user request takes about five round trips, not 1,000.

use crate::proto::bulk::{
    self, BulkMethod, BulkRequest, Operation, State, Step, BULK_RESPONSE_SCHEMA,
};
use crate::proto::error::{Result, ScimError};
use crate::proto::time;
use crate::service::ctx::Ctx;
use crate::service::http::{path_segments, Method, Request, Response};
use crate::service::profile::TenantProfile;
use crate::service::route::{Route, WriteOp};
use crate::service::scim;
use crate::store::events::AuditNote;
use crate::store::{Db, Store};
use serde_json::{json, Map, Value};

/// Whether `rest` (the path below the SCIM base) addresses the bulk endpoint.
pub(crate) fn addressed(rest: &str) -> bool {
    path_segments(rest)
        .first()
        .is_some_and(|s| s.eq_ignore_ascii_case("Bulk"))
}

/// Answers `POST /Bulk` for `principal`, authenticated and within its rate limit like every
/// SCIM request ([`scim::admit`]); the whole request counts once against the rate limit.
pub(crate) async fn serve<D: Db>(
    ctx: &Ctx<'_, D>,
    req: &Request,
    principal: crate::service::tenant::Principal,
    base_path: &str,
    rest: &str,
    request_id: &str,
) -> Result<Response> {
    if path_segments(rest).len() != 1 {
        return Err(ScimError::not_found(format!("no resource at '{rest}'")));
    }
    if req.method != Method::Post {
        return Err(ScimError::method_not_allowed(
            "method not allowed here; allowed: POST",
        ));
    }
    let mut request = BulkRequest::parse(&req.json_body()?)?;
    let store = Store::new(ctx.db, principal.tenant.clone());
    let profile = crate::service::profile::load(ctx.profiles, &store, ctx.now_ms).await?;
    let job = Job {
        ctx,
        tenant: principal.tenant,
        credential: principal.credential_id,
        profile,
        base: format!("{}{base_path}", req.origin),
        request_id,
    };
    job.precheck(&mut request);
    let results = job.run(&request).await;
    Ok(Response::json(200, &bulk_response(&request, results)))
}

/// What every operation of one bulk request shares.
struct Job<'a, 'c, D: Db> {
    ctx: &'a Ctx<'c, D>,
    tenant: String,
    credential: Option<String>,
    profile: TenantProfile,
    base: String,
    request_id: &'a str,
}

/// One operation's answer.
#[derive(Debug)]
struct OpResult {
    status: u16,
    location: Option<String>,
    version: Option<String>,
    /// The created or addressed resource's id (a POST's is what its `bulkId` stands for).
    id: Option<String>,
    error: Option<ScimError>,
}

/// An operation ready to run: its single request, or the error it is refused with.
enum Prepared {
    Run {
        req: Request,
        route: Route,
    },
    /// With the write it would have been, if it names one: recorded as that write's failure.
    Refuse(ScimError, Option<Logged>),
}

/// A refused write as the provisioning log names it.
struct Logged {
    op: &'static str,
    rt: crate::proto::schema::ResourceType,
    id: Option<String>,
}

/// Most operations of one all-or-nothing wave (`failOnErrors`): about 1,000 statements, one
/// modest D1 batch.
const MAX_ATOMIC_WAVE: usize = 400;

/// Where a bulk request stands: each operation's state and answer, the ids POSTs created.
struct Progress {
    state: Vec<State>,
    results: Vec<Option<OpResult>>,
    /// The id each POST created, by operation index (`bulkId`s map to indexes).
    created: Vec<Option<String>>,
    errors: usize,
    /// How many POSTs the next all-or-nothing wave may hold: halved after one failed (the
    /// failing POST is then found in a few tries), doubled after one applied.
    atomic_size: usize,
}

impl<D: Db> Job<'_, '_, D> {
    /// Runs the waves until every operation is answered or `failOnErrors` errors stop the
    /// request; operations never reached have no result.
    async fn run(&self, request: &BulkRequest) -> Vec<Option<OpResult>> {
        let n = request.operations.len();
        let mut p = Progress {
            state: vec![State::Pending; n],
            results: (0..n).map(|_| None).collect(),
            created: vec![None; n],
            errors: 0,
            atomic_size: MAX_ATOMIC_WAVE,
        };
        let limit = request.fail_on_errors;
        loop {
            let max_steps = limit.map_or(usize::MAX, |l| l.saturating_sub(p.errors).max(1));
            if limit.is_some() && self.run_atomic(request, &mut p, max_steps).await {
                continue;
            }
            let wave = request.next_wave(&p.state, max_steps);
            if wave.is_empty() {
                break;
            }
            let prepared: Vec<(usize, Prepared)> = wave
                .iter()
                .filter_map(|step| self.prepare(request, step, &p.created))
                .collect();
            let tasks: Vec<_> = prepared.iter().map(|(_, p)| self.execute(p)).collect();
            let outputs = self.ctx.db.drive(tasks).await;
            self.record(request, &mut p, &prepared, outputs);
            if limit.is_some_and(|l| p.errors >= l) {
                break;
            }
        }
        p.results
    }

    /// Under `failOnErrors`, runs the POSTs at the head of the next wave (more than
    /// `max_steps` of them, up to [`MAX_ATOMIC_WAVE`]) as one all-or-nothing batch
    /// ([`Db::drive_atomic`]). Validated already, a POST can then fail only in the database,
    /// so if the batch applied none failed, and if it failed none applied and they run again
    /// in ordinary waves. Whether it answered operations.
    async fn run_atomic(&self, request: &BulkRequest, p: &mut Progress, max_steps: usize) -> bool {
        let is_post = |i: usize| {
            request
                .operations
                .get(i)
                .is_some_and(|o| o.method == Some(BulkMethod::Post) && o.completes.is_none())
        };
        let wave: Vec<Step> = request
            .next_wave(&p.state, p.atomic_size)
            .into_iter()
            .take_while(|s| matches!(s, Step::Run(i) if is_post(*i)))
            .collect();
        if wave.len() <= max_steps {
            return false;
        }
        let prepared: Vec<(usize, Prepared)> = wave
            .iter()
            .filter_map(|step| self.prepare(request, step, &p.created))
            .collect();
        let tasks: Vec<_> = prepared.iter().map(|(_, p)| self.execute(p)).collect();
        match self.ctx.db.drive_atomic(tasks).await {
            Some(outputs) => {
                p.atomic_size = p.atomic_size.saturating_mul(2).min(MAX_ATOMIC_WAVE);
                self.record(request, p, &prepared, outputs);
                true
            }
            None => {
                p.atomic_size = wave.len() / 2;
                false
            }
        }
    }

    /// Takes the answers of a wave's operations, in order.
    fn record(
        &self,
        request: &BulkRequest,
        p: &mut Progress,
        prepared: &[(usize, Prepared)],
        outputs: Vec<Option<Result<Response>>>,
    ) {
        for ((i, prep), out) in prepared.iter().zip(outputs) {
            let op = request.operations.get(*i);
            let result = self.result_of(op, prep, out);
            let ok = result.error.is_none();
            if ok && op.is_some_and(|o| o.method == Some(BulkMethod::Post)) {
                if let Some(slot) = p.created.get_mut(*i) {
                    slot.clone_from(&result.id);
                }
            }
            p.errors += usize::from(!ok);
            if let Some(s) = p.state.get_mut(*i) {
                *s = if ok { State::Succeeded } else { State::Failed };
            }
            let into = op.and_then(|o| o.completes).unwrap_or(*i);
            if let Some(r) = p.results.get_mut(into) {
                *r = Some(match r.take() {
                    Some(created) if into != *i => completed(created, result),
                    _ => result,
                });
            }
        }
    }

    /// Validates every operation as its single request would before anything is written:
    /// one that fails is refused with that error instead of running. `bulkId` references
    /// are still unresolved here, which changes nothing validation looks at (they stand
    /// where ids go, and any string is an id).
    fn precheck(&self, request: &mut BulkRequest) {
        for op in request
            .operations
            .iter_mut()
            .filter(|o| o.invalid.is_none())
        {
            let Some((method, path)) = op.method.zip(op.path.clone()) else {
                continue;
            };
            let segments = path_segments(&path);
            let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
            let Ok(route) = Route::parse(method_of(method), &segs) else {
                continue; // answered when the operation's turn comes, with the route's error
            };
            let req = self.single_request(op, &path, &|_| None);
            if let Err(e) = scim::precheck(self.profile, &req, &route) {
                op.invalid = Some(e);
            }
        }
    }

    /// The single request of `step`'s operation, with `bulkId` references replaced by the
    /// ids the referenced POSTs created.
    fn prepare(
        &self,
        request: &BulkRequest,
        step: &Step,
        created: &[Option<String>],
    ) -> Option<(usize, Prepared)> {
        let resolve = |b: &str| {
            let i = request.creators.get(b)?;
            created.get(*i).cloned().flatten()
        };
        let (i, refused) = match step {
            Step::Run(i) => (*i, None),
            Step::Refuse(i) => (*i, request.operations.get(*i)?.invalid.clone()),
            Step::MissingCreator(i, b) => (
                *i,
                Some(ScimError::new(
                    409,
                    None,
                    format!("the operation references bulkId '{b}', whose POST failed"),
                )),
            ),
        };
        let op = request.operations.get(i)?;
        let path = op
            .path
            .as_deref()
            .map(|p| bulk::substitute_path(p, &resolve));
        let route = match (op.method, path.as_deref()) {
            (Some(m), Some(p)) => {
                let segments = path_segments(p);
                let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
                Route::parse(method_of(m), &segs).and_then(|r| {
                    r.write().is_some().then_some(r).ok_or_else(|| {
                        ScimError::invalid_path(
                            "a bulk operation's path must be /Users, /Groups or one of their resources",
                        )
                    })
                })
            }
            _ => Err(ScimError::invalid_syntax(
                "'method' and 'path' are required",
            )),
        };
        let prepared = match (refused, route) {
            (None, Ok(route)) => Prepared::Run {
                req: self.single_request(op, path.as_deref().unwrap_or("/"), &resolve),
                route,
            },
            (Some(e), Ok(route)) => Prepared::Refuse(e, logged(&route)),
            (Some(e), Err(_)) | (None, Err(e)) => Prepared::Refuse(e, None),
        };
        Some((i, prepared))
    }

    fn single_request(
        &self,
        op: &Operation,
        path: &str,
        resolve: &dyn Fn(&str) -> Option<String>,
    ) -> Request {
        let method = op.method.map_or(Method::Other, method_of);
        let mut req = Request::new(method, path, "");
        if let Some(version) = &op.version {
            req = req.with_header("if-match", version);
        }
        if let Some(data) = &op.data {
            let mut data = data.clone();
            bulk::substitute(&mut data, resolve);
            req = req
                .with_header("content-type", "application/scim+json")
                .with_body(data.to_string());
        }
        req
    }

    /// Runs one prepared operation; a refused one that is a write is recorded in the
    /// provisioning log as its single request's failure would be.
    async fn execute(&self, prepared: &Prepared) -> Result<Response> {
        match prepared {
            Prepared::Run { req, route } => {
                let store = Store::new(self.ctx.db, self.tenant.as_str());
                scim::run_write(
                    self.ctx,
                    &store,
                    self.profile,
                    self.credential.clone(),
                    req,
                    route,
                    &self.base,
                    self.request_id,
                )
                .await
            }
            Prepared::Refuse(e, write) => {
                if let Some(Logged { op, rt, id }) = write {
                    let note = AuditNote {
                        op,
                        credential: self.credential.clone(),
                        request_id: self.request_id.to_string(),
                        attributes: Vec::new(),
                        time: time::format_millis(self.ctx.now_ms),
                    };
                    crate::store::events::record_failure(
                        self.ctx.db,
                        &self.tenant,
                        *rt,
                        id.as_deref(),
                        &note,
                        e,
                    )
                    .await;
                }
                Err(e.clone())
            }
        }
    }

    fn result_of(
        &self,
        op: Option<&Operation>,
        prepared: &Prepared,
        out: Option<Result<Response>>,
    ) -> OpResult {
        let path_location = match prepared {
            Prepared::Run { req, route } if !matches!(route, Route::Create(_)) => {
                Some(format!("{}{}", self.base, req.path))
            }
            _ => None,
        };
        let out = out.unwrap_or_else(|| Err(ScimError::internal()));
        match out {
            Ok(resp) => {
                let location = resp
                    .header("location")
                    .map(str::to_string)
                    .or(path_location);
                let id = match prepared {
                    Prepared::Run { route, .. } => written_id(route, location.as_deref()),
                    Prepared::Refuse(..) => None,
                };
                OpResult {
                    status: resp.status,
                    location,
                    version: resp.header("etag").map(str::to_string),
                    id,
                    error: None,
                }
            }
            Err(mut e) => {
                e.detail = format!("{} (request id {})", e.detail, self.request_id);
                let location =
                    path_location.filter(|_| op.and_then(|o| o.method) != Some(BulkMethod::Post));
                OpResult {
                    status: e.status,
                    location,
                    version: None,
                    id: None,
                    error: Some(e),
                }
            }
        }
    }
}

/// A group POST's answer once the PATCH adding its circular members ran: the final version,
/// or `409` (RFC 7644 §3.7.1) saying what exists and what failed.
fn completed(created: OpResult, patch: OpResult) -> OpResult {
    match patch.error {
        None => OpResult {
            version: patch.version.or(created.version),
            ..created
        },
        Some(e) => {
            let detail = format!(
                "the group was created at {}, but the members that made a circular bulkId \
                 reference could not be added: {}",
                created.location.as_deref().unwrap_or("?"),
                e.detail
            );
            OpResult {
                status: 409,
                error: Some(ScimError::new(409, None, detail)),
                ..created
            }
        }
    }
}

/// What the provisioning log names a refused write.
fn logged(route: &Route) -> Option<Logged> {
    let WriteOp { op, rt, id } = route.write()?;
    Some(Logged {
        op,
        rt,
        id: id.map(str::to_string),
    })
}

/// The id a successful write addressed: the path's, or a POST's from its location.
fn written_id(route: &Route, location: Option<&str>) -> Option<String> {
    match route {
        Route::Create(_) => location
            .and_then(|l| l.rsplit('/').next())
            .map(str::to_string),
        other => other.write().and_then(|w| w.id).map(str::to_string),
    }
}

fn method_of(m: BulkMethod) -> Method {
    match m {
        BulkMethod::Post => Method::Post,
        BulkMethod::Put => Method::Put,
        BulkMethod::Patch => Method::Patch,
        BulkMethod::Delete => Method::Delete,
    }
}

/// The BulkResponse (RFC 7644 §3.7.3): one entry per operation that was answered, in request
/// order; `status` as a string, as in the RFC's examples; `response` carries the error body.
fn bulk_response(request: &BulkRequest, results: Vec<Option<OpResult>>) -> Value {
    let ops: Vec<Value> = request
        .operations
        .iter()
        .zip(results)
        .filter(|(op, _)| op.completes.is_none())
        .filter_map(|(op, r)| r.map(|r| (op, r)))
        .map(|(op, r)| {
            let mut entry = Map::new();
            let method = op.method.map_or("", BulkMethod::as_str);
            entry.insert("method".into(), json!(method));
            if let Some(b) = &op.bulk_id {
                entry.insert("bulkId".into(), json!(b));
            }
            if let Some(l) = r.location {
                entry.insert("location".into(), json!(l));
            }
            if let Some(v) = r.version {
                entry.insert("version".into(), json!(v));
            }
            entry.insert("status".into(), json!(r.status.to_string()));
            if let Some(e) = r.error {
                entry.insert("response".into(), e.to_json());
            }
            Value::Object(entry)
        })
        .collect();
    json!({"schemas": [BULK_RESPONSE_SCHEMA], "Operations": ops})
}
