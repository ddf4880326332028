//! The thin Workers binding layer: converts workerd requests to `http::Request`, runs the
//! handler with D1 behind the `Db` trait, and converts the answer back. No protocol logic.

use crate::proto::error::ScimError;
use crate::service;
use crate::service::ctx::{Config, Ctx, REQUEST_ID_HEADER};
use crate::service::http::{self, Method};
use crate::service::ratelimit::{Check, Decision, RateLimiter};
use crate::store::sql::{SqlValue, Stmt};
use crate::store::{Db, DbError, Row};
use std::cell::Cell;
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;
use worker::js_sys::{Array, Function, Object, Promise, Reflect};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys;
use worker::{console_error, console_log, event, Context, D1Database, Env};

mod durable;
mod raw;
mod webhooks;

/// D1 behind the `Db` trait. Counts round trips (one per `batch` call) and their wall time,
/// reported in a `Server-Timing` header when the `SCIM_DEBUG_TIMING` var is `1`.
/// Inside a tenant's Durable Object it is that object's SQLite instead: one `Db` type in the
/// wasm, because every generic handler is compiled again for each (a second type cost 107 KB).
struct D1(Sql, RoundTrips);

enum Sql {
    D1(D1Database),
    Object(durable::ObjectDb),
}

impl D1 {
    fn new(db: D1Database) -> D1 {
        D1(Sql::D1(db), RoundTrips::default())
    }
}

#[derive(Default)]
struct RoundTrips {
    count: Cell<u32>,
    ms: Cell<f64>,
}

impl RoundTrips {
    /// `d1;desc="2 round trips";dur=1.0`: the count in `desc`, their summed wall time in `dur`.
    fn server_timing(&self) -> String {
        let n = self.count.get();
        let unit = if n == 1 { "round trip" } else { "round trips" };
        format!("d1;desc=\"{n} {unit}\";dur={:.1}", self.ms.get())
    }

    /// Inside a tenant's object: `do-sql;desc="2 transactions";dur=0.1`, the object's own
    /// SQLite transactions (in its process: no network round trip, unlike D1's).
    fn object_timing(&self) -> String {
        let n = self.count.get();
        let unit = if n == 1 {
            "transaction"
        } else {
            "transactions"
        };
        format!("do-sql;desc=\"{n} {unit}\";dur={:.1}", self.ms.get())
    }

    /// Adds the wall time since `started` (ms since the epoch).
    fn add_ms(&self, started: u64) {
        let took = worker::Date::now().as_millis().saturating_sub(started);
        self.ms.set(self.ms.get() + took as f64);
    }
}

/// The dev flag: off unless the Worker var `SCIM_DEBUG_TIMING` is `1` (never set in production).
fn debug_timing(env: &Env) -> bool {
    env.var("SCIM_DEBUG_TIMING")
        .is_ok_and(|v| v.to_string().trim() == "1")
}

/// What the deployment's vars and secrets say, read from `env` once per isolate: they are
/// fixed for a deployment version, and an isolate runs one version (a new deployment or a
/// changed secret starts new isolates). Reading them cost every request a dozen crossings
/// into JS (`config` alone reads nine), on the worker and in the object alike.
struct Settings {
    config: Config,
    /// `SCIM_DEBUG_TIMING` is `1`.
    timing: bool,
    /// The rate-limiting bindings' period (`RATE_LIMIT_PERIOD`, see [`BindingLimiter`]).
    rate_limit_period_secs: u32,
    /// The `SCIM_STORAGE` var as set (`durable::backend` parses it).
    storage: Option<String>,
}

thread_local! {
    /// One isolate, one thread: filled by the isolate's first request, kept for its lifetime.
    static SETTINGS: std::cell::OnceCell<&'static Settings> = const { std::cell::OnceCell::new() };
}

/// The isolate's [`Settings`], read from `env` by its first request.
fn settings(env: &Env) -> &'static Settings {
    SETTINGS.with(|cell| {
        *cell.get_or_init(|| {
            let rate_limit_period_secs = env
                .var("RATE_LIMIT_PERIOD")
                .ok()
                .and_then(|v| v.to_string().trim().parse::<u32>().ok())
                .filter(|p| *p > 0)
                .unwrap_or(60);
            Box::leak(Box::new(Settings {
                config: config(env),
                timing: debug_timing(env),
                rate_limit_period_secs,
                storage: env.var("SCIM_STORAGE").ok().map(|v| v.to_string()),
            }))
        })
    })
}

/// The bindings a request reaches, read from `env` once per `env` object. Each lookup
/// through workers-rs is three crossings into JS and a string (it checks the binding's
/// constructor name), four bindings per request; a binding is fixed for the `env` it came
/// from. Whether an isolate's requests share one `env` is the runtime's business, so it is
/// checked (`Object.is`, one crossing): another `env` reads them again.
struct Bindings {
    env: JsValue,
    /// `DB`, or why it is missing.
    db: Result<JsValue, String>,
    /// `durable::namespace`.
    objects: Result<Option<worker::ObjectNamespace>, String>,
    /// `RATE_LIMITER` and `AUTH_ATTEMPT_LIMITER`, when bound (see [`BindingLimiter`]).
    rate: Option<worker::RateLimiter>,
    attempts: Option<worker::RateLimiter>,
}

thread_local! {
    /// The bindings of the last `env` a request came with (one thread per isolate).
    static BINDINGS: std::cell::RefCell<Option<std::rc::Rc<Bindings>>> =
        const { std::cell::RefCell::new(None) };
}

/// The [`Bindings`] of `env`, read on its first request.
fn bindings(env: &Env) -> std::rc::Rc<Bindings> {
    let raw: &JsValue = env.as_ref();
    let kept = BINDINGS.with(|b| b.borrow().clone());
    if let Some(kept) = kept.filter(|k| Object::is(&k.env, raw)) {
        return kept;
    }
    let fresh = std::rc::Rc::new(Bindings {
        env: raw.clone(),
        db: env.d1("DB").map(JsValue::from).map_err(|e| e.to_string()),
        objects: durable::namespace(env),
        rate: env.rate_limiter("RATE_LIMITER").ok(),
        attempts: env.rate_limiter("AUTH_ATTEMPT_LIMITER").ok(),
    });
    BINDINGS.with(|b| *b.borrow_mut() = Some(fresh.clone()));
    fresh
}

fn bind(v: &SqlValue) -> JsValue {
    match v {
        SqlValue::Null => JsValue::NULL,
        SqlValue::Int(i) => JsValue::from_f64(*i as f64),
        SqlValue::Real(f) => JsValue::from_f64(*f),
        SqlValue::Text(s) => JsValue::from_str(s),
    }
}

impl Db for D1 {
    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<Vec<Row>>, DbError> {
        match &self.0 {
            Sql::D1(db) => d1_batch(db, &self.1, stmts).await,
            Sql::Object(object) => {
                self.1.count.set(self.1.count.get() + 1);
                let started = worker::Date::now().as_millis();
                let out = object.batch(stmts);
                self.1.add_ms(started);
                out
            }
        }
    }
}

async fn d1_batch(
    db: &D1Database,
    trips: &RoundTrips,
    stmts: Vec<Stmt>,
) -> Result<Vec<Vec<Row>>, DbError> {
    let mut prepared = Vec::with_capacity(stmts.len());
    for s in &stmts {
        let params: Vec<JsValue> = s.params.iter().map(bind).collect();
        let p = db
            .prepare(&s.sql)
            .bind(&params)
            .map_err(|e| DbError::from_message(&e.to_string()))?;
        prepared.push(p);
    }
    trips.count.set(trips.count.get() + 1);
    let started = worker::Date::now().as_millis();
    if prepared.len() == 1 {
        // A single statement needs no transaction wrapper: `raw()` is one round trip too.
        let only = prepared.remove(0);
        let rows = raw_rows(&only).await;
        trips.add_ms(started);
        return Ok(vec![rows?]);
    }
    let results = db
        .batch(prepared)
        .await
        .map_err(|e| DbError::from_message(&e.to_string()))?;
    trips.add_ms(started);
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        if let Some(err) = r.error() {
            return Err(DbError::from_message(&err));
        }
        out.push(
            r.results::<Row>()
                .map_err(|e| DbError::Other(e.to_string()))?,
        );
    }
    Ok(out)
}

/// One statement's rows through D1's `raw({ columnNames: true })`: each row an array, the
/// column names once. `all()` hands over one JS object per row, which D1 builds and
/// serde-wasm-bindgen then takes apart key by key; a list page of 100 spent most of its
/// time there (docs/PERFORMANCE.md). workers-rs 0.8.7 binds `raw()` without its options.
async fn raw_rows(stmt: &worker::D1PreparedStatement) -> Result<Vec<Row>, DbError> {
    let failed = |e: JsValue| DbError::from_message(&worker::Error::from(e).to_string());
    let inner: &JsValue = stmt.inner().as_ref();
    let raw: Function = Reflect::get(inner, &JsValue::from_str("raw"))
        .and_then(|f| f.dyn_into())
        .map_err(failed)?;
    let options = Object::new();
    Reflect::set(&options, &JsValue::from_str("columnNames"), &JsValue::TRUE).map_err(failed)?;
    let promise: Promise = raw
        .call1(inner, &options)
        .and_then(|p| p.dyn_into())
        .map_err(failed)?;
    let rows: Array = JsFuture::from(promise)
        .await
        .and_then(|a| a.dyn_into())
        .map_err(failed)?;
    let mut rows = rows.iter();
    let Some(names) = rows.next() else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = Array::from(&names)
        .iter()
        .map(|n| n.as_string().unwrap_or_default())
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let cells = Array::from(&row);
        let mut map = Row::new();
        for (name, cell) in names.iter().zip(cells.iter()) {
            map.insert(name.clone(), cell_value(cell)?);
        }
        out.push(map);
    }
    Ok(out)
}

/// A D1 value as `all()` rows read through serde-wasm-bindgen gave it: text, integers as
/// integers (whole doubles in the safe range), other numbers as floats, null. No statement
/// of the store reads a blob; one would be an error here rather than a silent null.
fn cell_value(cell: JsValue) -> Result<serde_json::Value, DbError> {
    use serde_json::Value;
    if let Some(text) = cell.as_string() {
        return Ok(Value::String(text));
    }
    if let Some(n) = cell.as_f64() {
        const SAFE: f64 = 9_007_199_254_740_991.0;
        if n.fract() == 0.0 && n.abs() <= SAFE {
            return Ok(Value::from(n as i64));
        }
        return Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number));
    }
    if cell.is_null() || cell.is_undefined() {
        return Ok(Value::Null);
    }
    Err(DbError::Other(
        "D1 returned a value that is not text, a number or null".into(),
    ))
}

fn config(env: &Env) -> Config {
    let mut tokens = Vec::new();
    for name in ["SCIM_TOKEN", "SCIM_TOKENS"] {
        if let Ok(secret) = env.secret(name) {
            tokens.extend(crate::service::auth::parse_tokens(&secret.to_string()));
        }
    }
    let admin_token = env
        .secret("ADMIN_TOKEN")
        .ok()
        .map(|s| s.to_string().trim().to_string())
        .filter(|s| !s.is_empty());
    // Keys the sealed list cursors; unset, a random key is generated once and kept in D1.
    let cursor_secret = env
        .secret("CURSOR_SECRET")
        .ok()
        .map(|s| s.to_string().trim().to_string())
        .filter(|s| !s.is_empty());
    let setting = |name: &str| {
        env.secret(name)
            .map(|s| s.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    Config {
        tokens,
        admin_token,
        cursor_secret,
        webhook_loopback_http: env
            .var("WEBHOOK_ALLOW_LOOPBACK_HTTP")
            .is_ok_and(|v| v.to_string().trim() == "1"),
        vendor_signin_url: setting("VENDOR_SIGNIN_URL"),
        approver_secret: setting("APPROVER_SECRET"),
        durable_objects: env
            .var("SCIM_STORAGE")
            .is_ok_and(|v| v.to_string().trim() == "durable-object"),
    }
}

/// The Workers rate-limiting binding `RATE_LIMITER`, keyed by tenant; without the binding
/// there is no limit. The binding does not tell when its window ends, so `Retry-After` is its
/// whole period, from the `RATE_LIMIT_PERIOD` var (the binding's `period`: 10 or 60; default
/// 60). If the binding fails, the request is let through (and the failure logged).
/// `AUTH_ATTEMPT_LIMITER` (optional, same period) counts the token endpoint's attempts and
/// failures with a much smaller limit; without it they go to `RATE_LIMITER`.
struct BindingLimiter<'a> {
    binding: Option<&'a worker::RateLimiter>,
    attempts: Option<&'a worker::RateLimiter>,
    period_secs: u32,
}

impl BindingLimiter<'_> {
    async fn limit(&self, binding: Option<&worker::RateLimiter>, key: &str) -> Decision {
        let Some(binding) = binding else {
            return Decision::Allow;
        };
        match binding.limit(key.to_string()).await {
            Ok(outcome) if !outcome.success => Decision::Limited {
                retry_after_secs: self.period_secs,
            },
            Ok(_) => Decision::Allow,
            Err(e) => {
                console_error!("rate limiter binding failed: {e}");
                Decision::Allow
            }
        }
    }
}

impl RateLimiter for BindingLimiter<'_> {
    fn check<'a>(&'a self, key: &'a str, _now_ms: i64) -> Check<'a> {
        Box::pin(self.limit(self.binding, key))
    }

    fn check_attempt<'a>(&'a self, key: &'a str, _now_ms: i64) -> Check<'a> {
        Box::pin(self.limit(self.attempts.or(self.binding), key))
    }
}

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// Takes and gives the runtime's own `Request` and `Response` ([`raw`]): the macro passes
/// them through unconverted.
#[event(fetch)]
async fn fetch(
    req: web_sys::Request,
    env: Env,
    worker_ctx: Context,
) -> worker::Result<web_sys::Response> {
    let request = match raw::request(&req).await? {
        Ok(request) => request,
        Err(too_large) => return Ok(too_large),
    };
    #[cfg(feature = "fault-injection")]
    #[allow(clippy::panic)] // the test-only build panics on purpose (tests/e2e/faults.test.mjs)
    if request.path == "/__fault/panic" {
        panic!("fault injection: panic on request");
    }
    let bound = bindings(&env);
    let d1 = match &bound.db {
        Ok(db) => D1::new(db.clone().unchecked_into()),
        Err(e) => {
            let rid = crate::service::ids::request_id();
            console_error!("{rid} D1 binding 'DB' missing: {e}");
            let resp = http::Response::error(&ScimError::internal());
            return Ok(raw::response(resp.with_header(REQUEST_ID_HEADER, rid))?);
        }
    };
    // Batches pass straight through, except in a bulk request's waves, which share round
    // trips; one database type for every request keeps one copy of the handlers in the wasm.
    let db = crate::store::coalesce::Coalescing::new(
        &d1,
        crate::store::coalesce::MAX_STATEMENTS_PER_TRIP,
    );
    // Where tenants' directories live (`SCIM_STORAGE`); D1 stays the control plane.
    let objects = match &bound.objects {
        Ok(ns) => ns.clone().map(durable::Objects::new),
        Err(e) => {
            let rid = crate::service::ids::request_id();
            console_error!("{rid} {e}");
            let resp = http::Response::error(&ScimError::internal());
            return Ok(raw::response(resp.with_header(REQUEST_ID_HEADER, rid))?);
        }
    };
    let settings = settings(&env);
    let limiter = BindingLimiter {
        binding: bound.rate.as_ref(),
        attempts: bound.attempts.as_ref(),
        period_secs: settings.rate_limit_period_secs,
    };
    let ctx = Ctx {
        db: &db,
        config: &settings.config,
        now_ms: js_sys_now(),
        // Lives as long as the isolate: verified tokens skip D1 for `credentials::CACHE_TTL_MS`.
        tokens: crate::service::credentials::isolate_cache(),
        limiter: &limiter,
        profiles: crate::service::profile::isolate_cache(),
        forward: objects
            .as_ref()
            .map(|o| o as &dyn crate::service::ctx::Forward),

        adopted: None,
    };
    let mut response = service::handle(&ctx, &request).await;
    if settings.timing {
        response = response.with_header("server-timing", d1.1.server_timing());
        if let Some(objects) = &objects {
            response = response.with_header("server-timing", objects.server_timing());
        }
    }
    // Log lines name the request id, method and path only: never headers (tokens), query
    // strings (filters hold userNames and emails) or bodies.
    let rid = response.header(REQUEST_ID_HEADER).unwrap_or("-");
    // One line for all of a request's notes, as in the tenant's object: a console call per
    // note was a measurable share of an Entra PATCH's CPU (docs/PERFORMANCE.md).
    if !response.notes.is_empty() {
        console_log!(
            "{rid} {} {}: {}",
            crate::service::route::method_label(request.method),
            request.path,
            response.notes.join("; ")
        );
    }
    if response.status >= 500 {
        console_error!(
            "{rid} {} {} -> {}",
            crate::service::route::method_label(request.method),
            request.path,
            response.status
        );
    }
    // A tenant's object sweeps its own events (its alarm); D1's sweep is for D1's events and
    // for redeliveries.
    let directory_write = objects.is_some() && directory_events(&request);
    if starts_webhooks(&request, &response) && !directory_write && webhooks::configured(&env) {
        // After the response: the write is committed; its events go to the queue now, and
        // the cron's sweep catches whatever this misses.
        worker_ctx.wait_until(async move { webhooks::sweep(&env, "after a write").await });
    }
    Ok(raw::response(response)?)
}

/// Whether a request may have committed something webhooks send: a write to the tenant's
/// directory ([`directory_events`]), or a redelivery requested through the admin API.
fn starts_webhooks(req: &http::Request, resp: &http::Response) -> bool {
    let redeliver = is_write(req) && req.path.ends_with("/redeliver");
    (200..300).contains(&resp.status) && (directory_events(req) || redeliver)
}

/// Whether a request may commit events in a tenant's directory (so, in its object, arm the
/// object's alarm): a write to the SCIM API, or a tombstone's restore through the admin API.
fn directory_events(req: &http::Request) -> bool {
    scim_write(req) || (is_write(req) && req.path.ends_with("/restore"))
}

/// Whether a request's method may change something.
fn is_write(req: &http::Request) -> bool {
    matches!(
        req.method,
        Method::Post | Method::Put | Method::Patch | Method::Delete
    )
}

/// Whether a request is a write to the SCIM API (one that may commit events).
fn scim_write(req: &http::Request) -> bool {
    is_write(req) && req.path.contains("/scim/v2/") && !req.path.ends_with("/.search")
}

/// The cron expression that makes a `fault-injection` build panic in its scheduled handler
/// (an e2e test shows the run fails visibly instead of hanging).
#[cfg(feature = "fault-injection")]
const FAULT_PANIC_CRON: &str = "0 0 31 2 *";

/// The per-minute cron: only the webhook sweep runs on it.
const SWEEP_CRON: &str = "* * * * *";

/// Every cron (wrangler.toml `[triggers]`) sends committed events the webhook queue has not
/// had yet (a crash between a write's commit and its enqueue). The daily one also drops
/// provisioning-log events and delivery-log rows older than `LOG_RETENTION_DAYS` (default
/// `store::events::DEFAULT_RETENTION_DAYS`).
#[event(queue)]
async fn queue(
    batch: worker::MessageBatch<crate::store::webhooks::Queued>,
    env: Env,
    _ctx: Context,
) -> worker::Result<()> {
    // With SCIM_STORAGE = durable-object the events and resources are in tenants' objects.
    let objects = durable::backend(&env).map_err(worker::Error::RustError)?;
    let directory = objects
        .as_ref()
        .map(|o| o as &dyn crate::service::ctx::Forward);
    webhooks::consume(batch, env, directory).await
}

#[event(scheduled)]
async fn scheduled(run: worker::ScheduledEvent, env: Env, _ctx: worker::ScheduleContext) {
    #[cfg(feature = "fault-injection")]
    #[allow(clippy::panic)]
    // the test-only build panics on purpose (tests/e2e/scheduled.test.mjs)
    if run.cron() == FAULT_PANIC_CRON {
        panic!("fault injection: panic in a scheduled run");
    }
    if run.cron() != SWEEP_CRON {
        daily(&env).await;
    }
    // After the daily work, so the purge's events go out in this run.
    webhooks::sweep(&env, "cron").await;
}

/// The daily run: the provisioning log pruned, then tombstones purged.
async fn daily(env: &Env) {
    let Ok(db) = env.d1("DB") else {
        console_error!("scheduled: D1 binding 'DB' missing");
        return;
    };
    let raw = env.var("LOG_RETENTION_DAYS").ok().map(|v| v.to_string());
    let days = crate::store::events::retention_days(raw.as_deref());
    let db = D1::new(db);
    let now = js_sys_now();
    let cutoff = crate::proto::time::format_millis(now - days * 86_400_000);
    if let Err(e) = db
        .batch(vec![
            crate::store::events::prune_stmt(now, days),
            crate::store::webhooks::prune_stmt(&cutoff),
        ])
        .await
    {
        console_error!("scheduled: pruning the provisioning log failed: {e:?}");
    }
    // Tombstones past their tenant's `deletion.days`, with a `purge` event each; its own
    // batch, so a failure here leaves the log pruned and the purge for tomorrow.
    let purge = crate::store::tombstones::purge_stmts(&crate::proto::time::format_millis(now));
    if let Err(e) = db.batch(purge).await {
        console_error!("scheduled: purging tombstones failed: {e:?}");
    }
}

fn js_sys_now() -> i64 {
    worker::Date::now().as_millis() as i64
}
