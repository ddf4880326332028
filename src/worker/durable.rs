//! The Durable Object storage backend (`SCIM_STORAGE = "durable-object"`): one SQLite-backed
//! object per tenant (`TenantStore`, named by the tenant id), holding that tenant's directory.
//! The worker authenticates and hands the SCIM request on ([`Objects`], one hop); the object
//! answers it with the service's own handlers over [`ObjectDb`] (`service::handoff`).
//!
//! Each `Db::batch` of two or more statements runs in one `transactionSync`, which workers-rs
//! 0.8.7 does not bind (bound here): SQL `BEGIN` is refused inside an object, and a failed
//! statement does not undo the statements before it on its own. A closure that throws rolls
//! the transaction back. A batch of one statement needs none: SQLite runs it atomically.

use super::raw;
use super::{bind, js_sys_now};
use crate::proto::error::ScimError;
use crate::service::ctx::{Ctx, Forward, Forwarded};
use crate::service::http;
use crate::service::webhooks::deliver;
use crate::store::sql::Stmt;
use crate::store::{DbError, Row};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{Function, Promise, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys;
use worker::{console_error, console_log, Env, State};

/// The binding of the `TenantStore` namespace in wrangler.toml.
pub(super) const BINDING: &str = "TENANT_STORE";

#[wasm_bindgen]
extern "C" {
    /// `DurableObjectStorage`, seen through the one method this module needs of it.
    type SyncStorage;

    /// Runs `f` in a transaction: committed when it returns, rolled back when it throws.
    #[wasm_bindgen(method, catch, js_name = transactionSync)]
    fn transaction_sync(this: &SyncStorage, f: &Function) -> Result<JsValue, JsValue>;

    /// A Durable Object stub, for its `fetch` with web_sys's Request.
    type ObjectStub;

    #[wasm_bindgen(method)]
    fn fetch(this: &ObjectStub, req: &web_sys::Request) -> Promise;
}

/// Which backend holds tenants' directories, from the `SCIM_STORAGE` var: `Ok(None)` for D1
/// (unset, empty or `d1`), the object namespace for `durable-object`. Any other value is an
/// error: serving from D1 what an operator meant to put in objects would split a directory.
pub(super) fn backend(env: &Env) -> Result<Option<Objects>, String> {
    Ok(namespace(env)?.map(Objects::new))
}

/// [`backend`]'s namespace binding (`None` for D1), which `super::Bindings` keeps.
pub(super) fn namespace(env: &Env) -> Result<Option<worker::ObjectNamespace>, String> {
    match super::settings(env).storage.as_deref().map(str::trim) {
        None | Some("" | "d1") => Ok(None),
        Some("durable-object") => env
            .durable_object(BINDING)
            .map(Some)
            .map_err(|e| format!("SCIM_STORAGE is durable-object but {BINDING} is missing: {e}")),
        Some(other) => Err(format!(
            "SCIM_STORAGE is '{other}'; it must be 'd1' or 'durable-object'"
        )),
    }
}

/// The worker's side of the hop: the namespace of tenants' objects.
pub(super) struct Objects {
    ns: worker::ObjectNamespace,
    /// Requests handed to objects, for `Server-Timing` with `SCIM_DEBUG_TIMING` (the
    /// benchmark counts hops per SCIM operation, as it counts D1 round trips).
    hops: Cell<u32>,
}

impl Forward for Objects {
    fn forward<'a>(&'a self, tenant: &'a str, req: http::Request) -> Forwarded<'a> {
        Box::pin(async move {
            let resp = self.send(tenant, req).await.map_err(failed)?;
            whole(resp).await.map_err(failed)
        })
    }

    /// The object's answer stays a JS `Response` ([`raw::response`] sends its body and
    /// headers on as they are): the worker reads nothing of it but its status, and whether
    /// it is the stale answer the service acts on.
    fn relay<'a>(&'a self, tenant: &'a str, req: http::Request) -> Forwarded<'a> {
        Box::pin(async move {
            let resp = self.send(tenant, req).await.map_err(failed)?;
            let stale = resp.headers().has(crate::service::relay::STALE);
            if stale.map_err(|e| failed(worker::Error::from(e)))? {
                return whole(resp).await.map_err(failed);
            }
            let status = resp.status();
            Ok(http::Response::passed(status, http::Passed(Rc::new(resp))))
        })
    }
}

/// The error a failed hop answers (500, its cause logged).
fn failed(e: impl std::fmt::Display) -> ScimError {
    let mut err = ScimError::internal();
    err.cause = Some(format!("the tenant's durable object failed: {e}"));
    err
}

/// An object's answer copied into wasm, for the service to read.
async fn whole(resp: web_sys::Response) -> worker::Result<http::Response> {
    let mut answer = http::Response::empty(resp.status());
    answer.headers = worker::Headers(resp.headers()).entries().collect();
    answer.body = Uint8Array::new(&JsFuture::from(resp.array_buffer()?).await?).to_vec();
    Ok(answer)
}

impl Objects {
    pub(super) fn new(ns: worker::ObjectNamespace) -> Objects {
        Objects {
            ns,
            hops: Cell::new(0),
        }
    }

    /// `do;desc="1 hop"`: how many requests went to tenants' objects.
    pub(super) fn server_timing(&self) -> String {
        let n = self.hops.get();
        let unit = if n == 1 { "hop" } else { "hops" };
        format!("do;desc=\"{n} {unit}\"")
    }

    async fn send(&self, tenant: &str, req: http::Request) -> worker::Result<web_sys::Response> {
        let stub: ObjectStub = self.ns.id_from_name(tenant)?.get_stub()?.into_rpc();
        self.hops.set(self.hops.get() + 1);
        // web_sys's Request and Response, not worker's: those convert Cloudflare `cf` options
        // and stream bodies the hop never uses, which costs wasm size for nothing.
        let headers = web_sys::Headers::new()?;
        for (k, v) in &req.headers {
            headers.append(k, v)?;
        }
        let init = web_sys::RequestInit::new();
        init.set_method(crate::service::route::method_label(req.method));
        init.set_headers(&headers);
        if !req.body.is_empty() {
            init.set_body(&Uint8Array::from(req.body.as_slice()));
        }
        let url = format!("{}{}", req.origin, req.path_and_query());
        let out = web_sys::Request::new_with_str_and_init(&url, &init)?;
        Ok(JsFuture::from(stub.fetch(&out)).await?.dyn_into()?)
    }
}

/// A tenant's directory: the object's own SQLite (the `Db` is `super::D1`, see there).
pub(super) struct ObjectDb {
    storage: worker::Storage,
}

impl ObjectDb {
    /// Runs `work` in one transaction; its error, or the runtime's, rolls everything back.
    fn in_transaction<T: 'static>(
        &self,
        work: impl FnOnce(&worker::SqlStorage) -> Result<T, DbError> + 'static,
    ) -> Result<T, DbError> {
        let sql = self.storage.sql();
        let out: Rc<RefCell<Option<Result<T, DbError>>>> = Rc::default();
        let slot = out.clone();
        let f = Closure::once_into_js(move || -> Result<JsValue, JsValue> {
            let r = work(&sql);
            let failed = r.is_err();
            *slot.borrow_mut() = Some(r);
            if failed {
                Err(JsValue::from_str("rolled back"))
            } else {
                Ok(JsValue::UNDEFINED)
            }
        });
        let storage: &SyncStorage = self.storage.as_raw().unchecked_ref();
        let thrown = storage.transaction_sync(f.unchecked_ref()).err();
        let result = out.borrow_mut().take();
        match (result, thrown) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), None) => Ok(v),
            (_, thrown) => Err(DbError::Other(format!(
                "the transaction did not commit: {thrown:?}"
            ))),
        }
    }
}

/// One statement's rows, read as arrays (`raw()`) with the column names once: `to_array()`
/// hands over one JS object per row, which serde-wasm-bindgen then takes apart key by key
/// (as D1's `all()` did, see `super::raw_rows`); a list page of 100 paid most for that.
fn exec(sql: &worker::SqlStorage, s: &Stmt) -> Result<Vec<Row>, DbError> {
    let params: Vec<JsValue> = s.params.iter().map(bind).collect();
    let cursor = sql
        .exec_raw(&s.sql, params)
        .map_err(|e| DbError::from_message(&e.to_string()))?;
    let names = cursor.column_names();
    let mut out = Vec::new();
    for row in cursor.raw() {
        let cells = row.map_err(|e| DbError::Other(e.to_string()))?;
        let mut map = Row::new();
        for (name, cell) in names.iter().zip(cells) {
            map.insert(name.clone(), cell_value(cell)?);
        }
        out.push(map);
    }
    Ok(out)
}

/// A SQLite value as `to_array()` rows read through serde-wasm-bindgen gave it: text,
/// integers as integers, other numbers as floats, null. No statement of the store reads a
/// blob; one would be an error here rather than a silent null.
fn cell_value(cell: worker::SqlStorageValue) -> Result<serde_json::Value, DbError> {
    use serde_json::Value;
    use worker::SqlStorageValue as V;
    Ok(match cell {
        V::Null => Value::Null,
        V::Boolean(b) => Value::Bool(b),
        V::Integer(i) => Value::from(i),
        V::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        V::String(s) => Value::String(s),
        V::Blob(_) => {
            return Err(DbError::Other(
                "the object returned a blob, which no statement reads".into(),
            ))
        }
    })
}

impl ObjectDb {
    /// `Db::batch`: every statement in one transaction. A batch of one statement (most
    /// reads) runs without `transactionSync`: SQLite runs a statement, its triggers included,
    /// atomically by itself, and the crossing into the runtime's transaction and back was a
    /// third of a GET's time in this function (docs/PERFORMANCE.md, 2026-12-02).
    pub(super) fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<Vec<Row>>, DbError> {
        if let [one] = stmts.as_slice() {
            return Ok(vec![exec(&self.storage.sql(), one)?]);
        }
        self.in_transaction(move |sql| stmts.iter().map(|s| exec(sql, s)).collect())
    }
}

/// Applies the migrations the object has not applied yet, each in its own transaction with
/// the row recording it (`store::object`).
fn migrate(db: &ObjectDb) -> Result<(), DbError> {
    use crate::store::object::{pending, CURRENT_VERSION_SQL, VERSION_TABLE_SQL};
    let current = db.in_transaction(|sql| {
        exec(sql, &Stmt::new(VERSION_TABLE_SQL, vec![]))?;
        let rows = exec(sql, &Stmt::new(CURRENT_VERSION_SQL, vec![]))?;
        Ok(rows
            .first()
            .and_then(|r| r.get("version"))
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0) as i64)
    })?;
    let now = crate::proto::time::format_millis(js_sys_now());
    for (file, record) in pending(current, &now) {
        db.in_transaction(move |sql| {
            sql.exec(file, None)
                .map_err(|e| DbError::Other(format!("migration: {e}")))?;
            exec(sql, &record).map(|_| ())
        })?;
    }
    Ok(())
}

/// One tenant's directory. Only the worker reaches it (through its binding), with requests
/// it authenticated.
///
/// Its webhook outbox: the events rows a write commits here are sent to the `WEBHOOKS` queue
/// by the object's alarm (`service::webhooks::deliver::sweep_object`), which every write
/// arms before it runs. The alarm is storage like the rows: set in the same output-gated
/// flush as the write, it exists whenever the write does, and alarms run at least once, so a
/// crash between commit and enqueue delays events and never loses them. The request pays no
/// extra hop (setting the alarm is the object's own storage); the sweep runs after the
/// response, and a failed one arms the alarm again. A write that finds the alarm this
/// instance armed still pending (`alarm_armed`) does not set it again: the pending alarm runs
/// after the write commits and sweeps its events too.
///
/// The class is exported by hand rather than by workers-rs's `#[durable_object]`, whose
/// `fetch` converts the runtime's `Request` into a `worker::Request` (reading its `cf` object)
/// and the answer through a `worker::Response`: here both stay the runtime's own ([`raw`]).
#[wasm_bindgen]
pub struct TenantStore {
    state: State,
    env: Env,
    /// The schema is current for this instance's lifetime once checked.
    migrated: Cell<bool>,
    /// When this instance last dropped provisioning-log events older than the retention.
    pruned_ms: Cell<i64>,
    /// When this instance last purged tombstones past the tenant's days.
    purged_ms: Cell<i64>,
    /// The settings this instance last mirrored into its tenant row (`relay::adopt`).
    adopted: crate::service::adopted::Adopted,
    /// This instance set the alarm to "now" and its `alarm` has not started since: the alarm
    /// is stored and pending, so a write need not await another `setAlarm` (a storage call per
    /// write; the profile in docs/PERFORMANCE.md). Cleared when the alarm starts, so a write
    /// during or after a sweep arms it again; false in a new instance, which cannot know.
    alarm_armed: Cell<bool>,
}

/// How often a live object prunes its provisioning log (the D1 backend's daily cron).
const PRUNE_EVERY_MS: i64 = 86_400_000;

impl TenantStore {
    /// The object's database, migrated on first use in this instance; `None` (logged) if
    /// migrating failed.
    fn database(&self) -> Option<ObjectDb> {
        let object = ObjectDb {
            storage: self.state.storage(),
        };
        if !self.migrated.get() {
            if let Err(e) = migrate(&object) {
                console_error!("tenant object: migrating failed: {e:?}");
                return None;
            }
            self.migrated.set(true);
        }
        Some(object)
    }

    /// The retention of the daily cron (`LOG_RETENTION_DAYS`), applied by the object itself
    /// on its first request after it starts and then daily: the cron cannot reach every
    /// object (one subrequest each, thousands of tenants), and an object that gets no
    /// requests adds no events. One indexed DELETE (`events_by_time`), outside the request's
    /// transaction.
    fn prune(&self, object: &ObjectDb, now: i64) {
        if now - self.pruned_ms.get() < PRUNE_EVERY_MS {
            return;
        }
        self.pruned_ms.set(now);
        let raw = self
            .env
            .var("LOG_RETENTION_DAYS")
            .ok()
            .map(|v| v.to_string());
        let days = crate::store::events::retention_days(raw.as_deref());
        if let Err(e) = object.batch(vec![crate::store::events::prune_stmt(now, days)]) {
            console_error!("tenant object: pruning the provisioning log failed: {e:?}");
        }
    }

    /// Arms the alarm for now, unless this instance armed it and it has not run yet.
    async fn arm_alarm(&self) -> worker::Result<()> {
        if self.alarm_armed.get() {
            return Ok(());
        }
        self.state.storage().set_alarm(0).await?;
        self.alarm_armed.set(true);
        Ok(())
    }

    /// The daily purge of tombstones (`relay::purge`), on the same schedule as [`Self::prune`]
    /// but with the request: the policy it uses is the one the worker sent with it. An object
    /// that gets no requests keeps its tombstones until its next one (see docs/DEPLOY.md).
    async fn purge<D: crate::store::Db>(&self, ctx: &Ctx<'_, D>, req: &http::Request) {
        if ctx.now_ms - self.purged_ms.get() < PRUNE_EVERY_MS {
            return;
        }
        // A purge logs events (`user.purged`, ...) in the object's outbox: its alarm sends
        // them, armed first as for any write.
        if let Err(e) = self.arm_alarm().await {
            console_error!("tenant object: arming the alarm before a purge failed: {e:?}");
            return;
        }
        match crate::service::relay::purge(ctx, req).await {
            Ok(true) => self.purged_ms.set(ctx.now_ms),
            Ok(false) => {}
            Err(e) => {
                // Tried again tomorrow, as the cron's purge is.
                self.purged_ms.set(ctx.now_ms);
                console_error!("tenant object: purging tombstones failed: {e:?}");
            }
        }
    }
}

#[wasm_bindgen(
    wasm_bindgen_futures = worker::wasm_bindgen_futures,
    js_sys = worker::js_sys
)]
impl TenantStore {
    #[wasm_bindgen(constructor)]
    pub fn new(state: worker::worker_sys::DurableObjectState, env: Env) -> TenantStore {
        TenantStore {
            state: State::from(state),
            env,
            migrated: Cell::new(false),
            pruned_ms: Cell::new(0),
            purged_ms: Cell::new(0),
            adopted: crate::service::adopted::Adopted::default(),
            alarm_armed: Cell::new(false),
        }
    }

    /// A request the worker handed on (`Objects::send`).
    pub async fn fetch(&self, req: web_sys::Request) -> Result<web_sys::Response, JsValue> {
        match raw::request(&req).await? {
            Ok(request) => raw::response(self.answer(&request).await?),
            Err(too_large) => Ok(too_large),
        }
    }

    /// The webhook outbox's sweep (see the type's doc).
    pub async fn alarm(&self) -> Result<(), JsValue> {
        Ok(self.sweep().await?)
    }
}

impl TenantStore {
    /// The service's answer to a request, over this object's database.
    async fn answer(&self, request: &http::Request) -> worker::Result<http::Response> {
        let Some(object) = self.database() else {
            return Ok(http::Response::error(&ScimError::internal()));
        };
        self.prune(&object, js_sys_now());
        let d1 = super::D1(super::Sql::Object(object), super::RoundTrips::default());
        if let Some(answer) = deliver::serve_object_read(&d1, request).await {
            // The queue consumer or the admin API reading for webhooks (not a client).
            return Ok(answer);
        }
        if super::directory_events(request) {
            // Before the write, so the alarm is committed whenever the write is.
            self.arm_alarm().await?;
        }
        // The worker's own database type (see `super::D1`): one copy of the handlers.
        let db = crate::store::coalesce::Coalescing::new(
            &d1,
            crate::store::coalesce::MAX_STATEMENTS_PER_TRIP,
        );
        // The deployment's settings, read once per isolate (`super::settings`).
        let settings = super::settings(&self.env);
        let ctx = Ctx {
            adopted: Some(&self.adopted),
            ..Ctx::new(&db, &settings.config, js_sys_now())
        };
        self.purge(&ctx, request).await;
        // The timing below counts the request's own transactions, not the daily housekeeping
        // the first request of an instance runs before it.
        d1.1.count.set(0);
        d1.1.ms.set(0.0);
        let mut response = crate::service::handle_handed(&ctx, request).await;
        if settings.timing {
            response = response.with_header("server-timing", d1.1.object_timing());
        }
        // One line for all of a request's notes: a console call per note cost an Entra PATCH
        // (two tolerated quirks) a measurable share of its CPU (docs/PERFORMANCE.md).
        if !response.notes.is_empty() {
            let label = crate::service::route::method_label(request.method);
            let notes = response.notes.join("; ");
            console_log!("{label} {} (tenant object): {notes}", request.path);
        }
        Ok(response)
    }

    async fn sweep(&self) -> worker::Result<()> {
        // From here on a write must arm the alarm again: this run may have read the outbox
        // before that write's events are in it.
        self.alarm_armed.set(false);
        let Some(object) = self.database() else {
            self.state.storage().set_alarm(RETRY_MS).await?;
            return Ok(());
        };
        let d1 = super::D1(super::Sql::Object(object), super::RoundTrips::default());
        match super::webhooks::sweep_object(&d1, &self.env).await {
            Ok(0) => {}
            // Once more: a burst may have left more than one run sends.
            Ok(_) => self.arm_alarm().await?,
            Err(e) => {
                console_error!("tenant object: webhook sweep failed (again in a minute): {e}");
                self.state.storage().set_alarm(RETRY_MS).await?;
            }
        }
        Ok(())
    }
}

/// How long a failed webhook sweep waits before the alarm tries again (the D1 backend's cron
/// sweeps every minute too). Not the runtime's alarm retries: those stop after six.
const RETRY_MS: i64 = 60_000;
