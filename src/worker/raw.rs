//! Requests and responses as the runtime's own JS objects, for the worker's fetch handler
//! and the tenant's object alike. workers-rs's `Request` reads the `cf` object and copies
//! method and URL on every conversion, and its `Response` builds its headers twice and then
//! a second JS response; a SCIM request needs none of that, and the profile of the object
//! hop (docs/PERFORMANCE.md) had both on every request, on each side of the hop.

use crate::proto::error::ScimError;
use crate::service::ctx::REQUEST_ID_HEADER;
use crate::service::http::{self, Method};
use crate::service::scim;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{Reflect, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{self, ReadableStreamDefaultReader};
use worker::worker_sys::ext::ResponseInitExt;

/// A request as the glue hands it on, or the answer when its body is too large to route.
enum Incoming {
    Request(http::Request),
    /// The body is over `scim::MAX_BODY_BYTES`: answered 413 on every path, before routing.
    TooLarge,
}

/// How much of a body the glue reads and throws away after the limit (or of a body on a
/// method that takes none). A body left unread or cancelled mid-stream makes workerd drop
/// the connection it came on; under `wrangler dev` that connection is shared with other
/// clients' requests, which then fail (`503 Your worker restarted mid-request`). Reading to
/// the end keeps the connection clean; past this much the client is abusive and the stream
/// is cancelled instead, so no upload can keep the isolate busy indefinitely.
const MAX_DRAIN_BYTES: usize = 16 * scim::MAX_BODY_BYTES;

/// The request as the service reads it, or (`Err`) the 413 answer when its body is over the
/// limit, given before routing on every path (the worker's and the tenant's object's alike).
pub(super) async fn request(
    req: &web_sys::Request,
) -> Result<Result<http::Request, web_sys::Response>, JsValue> {
    Ok(match read(req).await? {
        Incoming::Request(r) => Ok(r),
        Incoming::TooLarge => Err(response(too_large())?),
    })
}

/// Method, path, headers and (for POST, PUT and PATCH) the body up to the limit.
async fn read(req: &web_sys::Request) -> Result<Incoming, JsValue> {
    let (origin, path_and_query) = http::split_url(&req.url())
        .ok_or_else(|| JsValue::from_str("the runtime gave an unusable URL"))?;
    // The raw method: an unknown one (PROPFIND, PURGE, ...) must answer 405, not be a read.
    let mut out = http::Request::new(Method::parse(&req.method()), &path_and_query, &origin);
    for (k, v) in worker::Headers(req.headers()).entries() {
        out = out.with_header(&k, &v);
    }
    // With a declared length over the limit the body is never read: workerd knows how much
    // is left, and the connection stays clean (probed under `wrangler dev`).
    let declared = out
        .header("content-length")
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > scim::MAX_BODY_BYTES) {
        return Ok(Incoming::TooLarge);
    }
    // Only POST, PUT and PATCH take a body; any other body is read and dropped unseen.
    let keep = if matches!(out.method, Method::Post | Method::Put | Method::Patch) {
        scim::MAX_BODY_BYTES
    } else {
        0
    };
    match read_body(req, keep).await {
        Body::Kept(body) => out.body = body,
        Body::TooLarge => return Ok(Incoming::TooLarge),
    }
    Ok(Incoming::Request(out))
}

/// What `read_body` makes of a body.
enum Body {
    /// The whole body (empty when absent, unreadable, or not kept).
    Kept(Vec<u8>),
    /// More than the bytes kept arrived: the rest was read and dropped (see `MAX_DRAIN_BYTES`).
    TooLarge,
}

/// Reads the body to its end chunk by chunk, keeping at most `keep` bytes; the chunks past
/// that are never copied into wasm memory. A body that cannot be read (the client went away)
/// counts as empty.
async fn read_body(req: &web_sys::Request, keep: usize) -> Body {
    let Some(reader) = req.body().and_then(|s| {
        s.get_reader()
            .dyn_into::<ReadableStreamDefaultReader>()
            .ok()
    }) else {
        return Body::Kept(Vec::new());
    };
    let mut body = Vec::new();
    let mut seen = 0usize;
    loop {
        let chunk = match next_chunk(&reader).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(()) if keep > 0 && seen > keep => return Body::TooLarge,
            Err(()) => return Body::Kept(Vec::new()),
        };
        let len = chunk.length() as usize;
        seen = seen.saturating_add(len);
        if seen > MAX_DRAIN_BYTES {
            // Settles on its own; nothing waits for it.
            let _ = reader.cancel();
            return Body::TooLarge;
        }
        if seen <= keep {
            let at = body.len();
            body.resize(at + len, 0);
            if let Some(dst) = body.get_mut(at..) {
                chunk.copy_to(dst);
            }
        }
    }
    if keep > 0 && seen > keep {
        Body::TooLarge
    } else {
        Body::Kept(body)
    }
}

/// The next chunk of a body stream, `None` at its end, `Err` if the stream failed.
async fn next_chunk(reader: &ReadableStreamDefaultReader) -> Result<Option<Uint8Array>, ()> {
    let result = JsFuture::from(reader.read()).await.map_err(|_| ())?;
    let done = Reflect::get(&result, &JsValue::from_str("done")).map_err(|_| ())?;
    if done.as_bool() != Some(false) {
        return Ok(None);
    }
    Reflect::get(&result, &JsValue::from_str("value"))
        .ok()
        .and_then(|v| v.dyn_into::<Uint8Array>().ok())
        .map(Some)
        .ok_or(())
}

/// The service's answer as one JS `Response`: its headers, its body copied once.
pub(super) fn response(resp: http::Response) -> Result<web_sys::Response, JsValue> {
    if let Some(answer) = passed(&resp) {
        return pass_on(answer, &resp.headers);
    }
    let headers = web_sys::Headers::new()?;
    for (k, v) in &resp.headers {
        headers.append(k, v)?;
    }
    let mut init = web_sys::ResponseInit::new();
    init.set_status(resp.status);
    init.set_headers(&headers);
    // A body the service already encoded (the gzipped console files) goes out as it is;
    // otherwise the runtime would encode it again.
    if resp
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-encoding"))
    {
        init.encode_body("manual")?;
    }
    if resp.body.is_empty() {
        return web_sys::Response::new_with_opt_str_and_init(None, &init);
    }
    let body = Uint8Array::from(resp.body.as_slice());
    web_sys::Response::new_with_opt_buffer_source_and_init(Some(&body), &init)
}

/// The JS answer a tenant's object gave, if `Forward::relay` left it in the response.
fn passed(resp: &http::Response) -> Option<&web_sys::Response> {
    resp.passed.as_ref()?.0.downcast_ref::<web_sys::Response>()
}

/// A tenant's object's answer sent on as it came (`ctx::Forward::relay`): its body stream
/// and headers stay in JS. The worker's headers it does not already carry (`Server-Timing`;
/// the object sets the request id itself) are appended to a copy of its headers (a fetched
/// answer's own are immutable); with none to add, it is the worker's answer as it is.
fn pass_on(
    answer: &web_sys::Response,
    added: &[(String, String)],
) -> Result<web_sys::Response, JsValue> {
    let own = answer.headers();
    let mut missing = Vec::new();
    for (k, v) in added {
        if own.get(k)?.as_deref() != Some(v.as_str()) {
            missing.push((k, v));
        }
    }
    if missing.is_empty() {
        // The same JS object (`Clone` of the handle), not `Response.clone()`, which tees the body.
        return Ok(Clone::clone(answer));
    }
    let headers = web_sys::Headers::new_with_headers(&own)?;
    for (k, v) in missing {
        headers.append(k, v)?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(answer.status());
    init.set_headers(&headers);
    web_sys::Response::new_with_opt_readable_stream_and_init(answer.body().as_ref(), &init)
}

/// 413 for a body over the limit, answered by the glue before routing.
fn too_large() -> http::Response {
    let rid = crate::service::ids::request_id();
    let err = ScimError::payload_too_large(format!(
        "the request body is larger than the limit of {} bytes (request id {rid})",
        scim::MAX_BODY_BYTES
    ));
    http::Response::error(&err).with_header(REQUEST_ID_HEADER, rid)
}
