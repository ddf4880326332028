//! The single-query ceiling: `GET /<anything>?id=<resource id>` runs exactly one D1 point query
//! (the primary-key lookup scim-edge's GET by id makes, without its correlated subquery) and
//! answers the stored `data`. No auth, no rendering: what is left is the runtime and one round
//! trip, which is what a SCIM GET by id can at best approach.

use serde_json::{Map, Value};
use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let url = req.url()?;
    let id = url
        .query_pairs()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let db = env.d1("DB")?;
    let row = db
        .prepare("SELECT id, data FROM resources WHERE tenant = ?1 AND id = ?2")
        .bind(&["default".into(), id.into()])?
        .first::<Map<String, Value>>(None)
        .await?;
    let mut resp = match row
        .as_ref()
        .and_then(|r| r.get("data"))
        .and_then(Value::as_str)
    {
        Some(data) => Response::ok(data)?,
        None => Response::error("not found", 404)?,
    };
    resp.headers_mut()
        .set("content-type", "application/scim+json; charset=utf-8")?;
    Ok(resp)
}
