//! The thin Workers binding layer: converts workerd requests to `http::Request`, runs the
//! handler with D1 behind the `Db` trait, and converts the answer back. No protocol logic.

use crate::api::{self, Config, Ctx};
use crate::error::ScimError;
use crate::http::{self, Method};
use crate::sql::{SqlValue, Stmt};
use crate::store::{Db, DbError, Row};
use wasm_bindgen::JsValue;
use worker::{console_error, console_log, event, Context, D1Database, Env, Headers};

struct D1(D1Database);

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
        let mut prepared = Vec::with_capacity(stmts.len());
        for s in &stmts {
            let params: Vec<JsValue> = s.params.iter().map(bind).collect();
            let p = self
                .0
                .prepare(&s.sql)
                .bind(&params)
                .map_err(|e| DbError::from_message(&e.to_string()))?;
            prepared.push(p);
        }
        let results = if prepared.len() == 1 {
            // A single statement needs no transaction wrapper: `all()` is one round trip too.
            let only = prepared.remove(0);
            vec![only
                .all()
                .await
                .map_err(|e| DbError::from_message(&e.to_string()))?]
        } else {
            self.0
                .batch(prepared)
                .await
                .map_err(|e| DbError::from_message(&e.to_string()))?
        };
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
}

fn config(env: &Env) -> Config {
    let mut tokens = Vec::new();
    for name in ["SCIM_TOKEN", "SCIM_TOKENS"] {
        if let Ok(secret) = env.secret(name) {
            tokens.extend(crate::auth::parse_tokens(&secret.to_string()));
        }
    }
    Config { tokens }
}

async fn to_request(mut req: worker::Request) -> worker::Result<http::Request> {
    let url = req.url()?;
    let origin = url.origin().ascii_serialization();
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let mut out = http::Request::new(
        Method::parse(req.method().as_ref()),
        &path_and_query,
        &origin,
    );
    for (k, v) in req.headers().entries() {
        out = out.with_header(&k, &v);
    }
    // Refuse to buffer bodies far beyond the limit when the client says how large they are.
    let declared = out
        .header("content-length")
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > api::MAX_BODY_BYTES) {
        out.body = vec![0; api::MAX_BODY_BYTES + 1];
        return Ok(out);
    }
    out.body = req.bytes().await.unwrap_or_default();
    Ok(out)
}

fn to_response(resp: http::Response) -> worker::Result<worker::Response> {
    let headers = Headers::new();
    for (k, v) in &resp.headers {
        headers.append(k, v)?;
    }
    let out = if resp.body.is_empty() {
        worker::Response::empty()?
    } else {
        worker::Response::from_bytes(resp.body)?
    };
    Ok(out.with_status(resp.status).with_headers(headers))
}

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: worker::Request, env: Env, _ctx: Context) -> worker::Result<worker::Response> {
    let request = to_request(req).await?;
    let db = match env.d1("DB") {
        Ok(db) => D1(db),
        Err(e) => {
            console_error!("D1 binding 'DB' missing: {e}");
            return to_response(http::Response::error(&ScimError::internal()));
        }
    };
    let config = config(&env);
    let ctx = Ctx {
        db: &db,
        config: &config,
        now_ms: js_sys_now(),
    };
    let response = api::handle(&ctx, &request).await;
    for note in &response.notes {
        console_log!(
            "{} {}: {note}",
            crate::api::method_label(request.method),
            request.path
        );
    }
    if response.status == 500 {
        console_error!(
            "{} {} -> {}",
            crate::api::method_label(request.method),
            request.path,
            response.status
        );
    }
    to_response(response)
}

fn js_sys_now() -> i64 {
    worker::Date::now().as_millis() as i64
}
