//! The Workers side of webhooks: the `WEBHOOKS` queue producer, `fetch` to the endpoints, the
//! queue consumer (and the dead-letter queue's), and the sweep run after writes and by cron.
//! The decisions are all in `service::webhooks::deliver`.

use super::{config, js_sys_now, RoundTrips, D1};
use crate::service::webhooks::deliver::{self, Outbox, Posted, Settings, Transport, Verdict};
use crate::store::webhooks::Queued;
use worker::js_sys::{Uint8Array, JSON};
use worker::{
    console_error, console_log, AbortSignal, Env, Fetch, Headers, MessageExt, Method,
    QueueRetryOptionsBuilder, RawMessage, Request, RequestInit, RequestRedirect, ResponseBody,
};

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
    async fn send(url: &str, headers: &[(String, String)], body: &[u8]) -> worker::Result<u16> {
        let h = Headers::new();
        for (k, v) in headers {
            h.set(k, v)?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(h)
            .with_body(Some(Uint8Array::from(body).into()))
            // A redirect is an answer, not followed: it could lead to another host.
            .with_redirect(RequestRedirect::Manual);
        let req = Request::new_with_init(url, &init)?;
        let signal = AbortSignal::from(worker::web_sys::AbortSignal::timeout_with_u32(
            POST_TIMEOUT_MS,
        ));
        let resp = Fetch::Request(req).send_with_signal(&signal).await?;
        // The answer's body is not needed: cancelled unread, whatever its size.
        if let ResponseBody::Stream(s) = resp.body() {
            let _ = s.cancel();
        }
        Ok(resp.status_code())
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
                error: Some(format!("no answer: {e}")),
            },
        }
    }
}

/// Sends what is committed and not yet queued (see `deliver::sweep`). Without the queue
/// binding (a deployment without webhooks) there is nothing to do.
pub async fn sweep(env: &Env, why: &str) {
    let Ok(queue) = env.queue(QUEUE_BINDING) else {
        return;
    };
    let Ok(db) = env.d1("DB") else {
        console_error!("webhooks sweep ({why}): D1 binding 'DB' missing");
        return;
    };
    let db = D1(db, RoundTrips::default());
    if let Err(e) = deliver::sweep(&db, &QueueOutbox(queue), js_sys_now()).await {
        console_error!(
            "webhooks sweep ({why}) failed: {} {}",
            e.detail,
            e.cause.unwrap_or_default()
        );
    }
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

/// The consumer of the webhook queue and of its dead-letter queue (its name ends in `-dlq`).
pub async fn consume(batch: worker::MessageBatch<Queued>, env: Env) -> worker::Result<()> {
    let db = D1(env.d1("DB")?, RoundTrips::default());
    let dead = batch.queue().ends_with("-dlq");
    let config = config(&env);
    let settings = settings(&env);
    for m in batch.raw_iter() {
        let Some(q) = body_of(&m) else {
            console_error!("webhook queue: a message that is not a delivery was dropped");
            m.ack();
            continue;
        };
        if dead {
            match deliver::dead_letter(&db, &q, js_sys_now()).await {
                Ok(()) => m.ack(),
                Err(_) => m.retry(),
            }
            continue;
        }
        let out = deliver::deliver(&db, &Fetcher, &config, &settings, &q, js_sys_now()).await;
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
