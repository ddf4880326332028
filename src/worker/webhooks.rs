//! The Workers side of webhooks: the `WEBHOOKS` queue producer, `fetch` to the endpoints, the
//! queue consumer (and the dead-letter queue's), and the sweep run after writes and by cron.
//! The decisions are all in `service::webhooks::deliver`.

use super::{config, js_sys_now, D1};
use crate::service::webhooks::deliver::{self, Outbox, Posted, Settings, Transport, Verdict};
use crate::store::webhooks::Queued;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{Uint8Array, JSON};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys;
use worker::{console_error, console_log, Env, MessageExt, QueueRetryOptionsBuilder, RawMessage};

/// The producer binding (wrangler.toml `[[queues.producers]]`).
pub const QUEUE_BINDING: &str = "WEBHOOKS";
/// How long a receiver may take to answer, in ms.
const POST_TIMEOUT_MS: u32 = 10_000;
/// Most messages one `sendBatch` takes.
const SEND_BATCH_MAX: usize = 100;

struct QueueOutbox(worker::Queue);

impl Outbox for QueueOutbox {
    async fn send(&self, msgs: &[Queued]) -> Result<(), String> {
        for chunk in msgs.chunks(SEND_BATCH_MAX) {
            self.0
                .send_batch(chunk.to_vec())
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

struct Fetcher;

impl Fetcher {
    /// The POST through `web_sys` directly: `worker::Fetch` with a `worker::RequestInit`
    /// links the serialiser of every `cf` request option, about 100 KB of wasm.
    async fn send(url: &str, headers: &[(String, String)], body: &[u8]) -> Result<u16, JsValue> {
        let h = web_sys::Headers::new()?;
        for (k, v) in headers {
            h.set(k, v)?;
        }
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_headers(&h);
        init.set_body(&Uint8Array::from(body));
        // A redirect is an answer, not followed: it could lead to another host.
        init.set_redirect(web_sys::RequestRedirect::Manual);
        init.set_signal(Some(&web_sys::AbortSignal::timeout_with_u32(
            POST_TIMEOUT_MS,
        )));
        let global: web_sys::WorkerGlobalScope = worker::js_sys::global().unchecked_into();
        let resp: web_sys::Response = JsFuture::from(global.fetch_with_str_and_init(url, &init))
            .await?
            .dyn_into()?;
        // The answer's body is not needed: cancelled unread, whatever its size.
        if let Some(b) = resp.body() {
            let _ = b.cancel();
        }
        Ok(resp.status())
    }
}

impl Transport for Fetcher {
    async fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Posted {
        let started = js_sys_now();
        let result = Fetcher::send(url, headers, body).await;
        let latency_ms = js_sys_now() - started;
        match result {
            Ok(status) if (300..400).contains(&status) => Posted {
                status: Some(status),
                latency_ms,
                error: Some(format!(
                    "the endpoint answered {status}: redirects are not followed"
                )),
            },
            Ok(status) => Posted {
                status: Some(status),
                latency_ms,
                error: None,
            },
            Err(e) => Posted {
                status: None,
                latency_ms,
                error: Some(format!(
                    "no answer: {}",
                    e.as_string()
                        .or_else(|| e
                            .dyn_ref::<worker::js_sys::Error>()
                            .map(|e| e.message().into()))
                        .unwrap_or_else(|| "the request failed".into())
                )),
            },
        }
    }
}

/// Whether the deployment has the webhook queue (`WEBHOOKS`). Without it a write has nothing
/// to sweep, and the request need not hand the runtime a `waitUntil` task that returns at
/// once: the task (a promise around a Rust future, then the binding's lookup and type check)
/// was about a tenth of a D1 DELETE's profile (docs/PERFORMANCE.md).
pub fn configured(env: &Env) -> bool {
    worker::js_sys::Reflect::get(env, &wasm_bindgen::JsValue::from_str(QUEUE_BINDING))
        .is_ok_and(|b| !b.is_undefined())
}

/// Sends what is committed and not yet queued (see `deliver::sweep`), once per isolate at a
/// time. Without the queue binding (a deployment without webhooks) there is nothing to do.
pub async fn sweep(env: &Env, why: &str) {
    let now = js_sys_now();
    let running = SWEEP_STARTED.get();
    if running.is_some_and(|t| now - t < SWEEP_STALE_MS) {
        // Coalesced: the running sweep goes round once more and sends this write's events.
        SWEEP_AGAIN.set(true);
        return;
    }
    SWEEP_STARTED.set(Some(now));
    let _done = SweepDone;
    for _ in 0..MAX_SWEEP_ROUNDS {
        SWEEP_AGAIN.set(false);
        sweep_once(env, why).await;
        if !SWEEP_AGAIN.get() {
            break;
        }
    }
}

thread_local! {
    /// When this isolate's running sweep began, if one runs.
    static SWEEP_STARTED: Cell<Option<i64>> = const { Cell::new(None) };
    /// A write committed while the sweep ran (after it may have read the events).
    static SWEEP_AGAIN: Cell<bool> = const { Cell::new(false) };
}

/// A burst of writes (an IdP's initial sync) starts one sweep per write; within an isolate
/// they coalesce into the running one, which goes round again, at most this many times (the
/// cron sweeps whatever is left).
const MAX_SWEEP_ROUNDS: usize = 8;
/// A sweep that began this long ago is taken for abandoned (its request's `waitUntil` ended
/// without dropping it), so it cannot block later sweeps for the isolate's life.
const SWEEP_STALE_MS: i64 = 60_000;

/// Marks the sweep finished however its future ends (completed or dropped).
struct SweepDone;

impl Drop for SweepDone {
    fn drop(&mut self) {
        SWEEP_STARTED.set(None);
    }
}

async fn sweep_once(env: &Env, why: &str) {
    let Ok(queue) = env.queue(QUEUE_BINDING) else {
        return;
    };
    let Ok(db) = env.d1("DB") else {
        console_error!("webhooks sweep ({why}): D1 binding 'DB' missing");
        return;
    };
    let db = D1::new(db);
    if let Err(e) = deliver::sweep(&db, &QueueOutbox(queue), js_sys_now()).await {
        console_error!(
            "webhooks sweep ({why}) failed: {} {}",
            e.detail,
            e.cause.unwrap_or_default()
        );
    }
}

/// A tenant object's sweep (its alarm): its events to the queue, D1's delivery log marked.
/// How many messages went out (none without a queue binding: a deployment without
/// webhooks), or why it failed.
pub async fn sweep_object(object: &D1, env: &Env) -> Result<usize, String> {
    let Ok(queue) = env.queue(QUEUE_BINDING) else {
        return Ok(0);
    };
    let control = D1::new(env.d1("DB").map_err(|e| e.to_string())?);
    deliver::sweep_object(object, &control, &QueueOutbox(queue), js_sys_now())
        .await
        .map_err(|e| format!("{} {}", e.detail, e.cause.unwrap_or_default()))
}

fn settings(env: &Env) -> Settings {
    let mut s = Settings::default();
    if let Some(base) = env
        .var("WEBHOOK_RETRY_BASE_SECONDS")
        .ok()
        .and_then(|v| v.to_string().trim().parse::<u32>().ok())
        .filter(|b| *b > 0)
    {
        s.retry_base_secs = base;
    }
    s
}

fn body_of(m: &RawMessage) -> Option<Queued> {
    let text = JSON::stringify(&m.body()).ok()?.as_string()?;
    serde_json::from_str(&text).ok()
}

/// Runs `futs` concurrently (on this one thread) and returns their outputs in order. A batch
/// has at most `max_batch_size` (10) messages, so polling all pending ones on each wake is
/// cheap; `futures_util::future::join_all` (which also links `FuturesOrdered` for long lists)
/// cost 4.8 KB more wasm than this.
async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut outs: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futs.iter_mut().zip(outs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outs.into_iter().flatten().collect()
}

/// The consumer of the webhook queue and of its dead-letter queue (its name ends in `-dlq`).
/// `directory`: the tenants' objects, when their events and resources are kept there.
pub async fn consume(
    batch: worker::MessageBatch<Queued>,
    env: Env,
    directory: Option<&dyn crate::service::ctx::Forward>,
) -> worker::Result<()> {
    let db = D1::new(env.d1("DB")?);
    let dead = batch.queue().ends_with("-dlq");
    let config = config(&env);
    let settings = settings(&env);
    let mut work = Vec::new();
    for m in batch.raw_iter() {
        match body_of(&m) {
            Some(q) => work.push((m, q)),
            None => {
                console_error!("webhook queue: a message that is not a delivery was dropped");
                m.ack();
            }
        }
    }
    if dead {
        for (m, q) in &work {
            match deliver::dead_letter(&db, q, js_sys_now()).await {
                Ok(()) => m.ack(),
                Err(_) => m.retry(),
            }
        }
        return Ok(());
    }
    // Concurrently: one slow endpoint does not hold up the rest of the batch.
    let outcomes = join_all(
        work.iter()
            .map(|(_, q)| {
                deliver::deliver(
                    &db,
                    &Fetcher,
                    directory,
                    &config,
                    &settings,
                    q,
                    js_sys_now(),
                )
            })
            .collect(),
    )
    .await;
    for ((m, _), out) in work.iter().zip(outcomes) {
        if let Some(note) = out.note {
            console_log!("{note}");
        }
        match out.verdict {
            Verdict::Ack => m.ack(),
            Verdict::Retry { delay_secs } => m.retry_with_options(
                &QueueRetryOptionsBuilder::new()
                    .with_delay_seconds(delay_secs)
                    .build(),
            ),
        }
    }
    Ok(())
}
