//! The no-I/O ceiling: the cheapest answer a Rust worker built like scim-edge can give.

use worker::{event, Context, Env, Request, Response, Result};

const BODY: &str = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"ceiling"}"#;

#[event(fetch)]
async fn fetch(_req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    let mut resp = Response::ok(BODY)?;
    resp.headers_mut()
        .set("content-type", "application/scim+json; charset=utf-8")?;
    Ok(resp)
}
