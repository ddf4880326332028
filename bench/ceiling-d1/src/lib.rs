//! The single-query ceiling: `GET /<anything>?id=<resource id>` runs exactly one D1 point query
//! (the primary-key lookup scim-edge's GET by id makes, without its correlated subquery) and
//! answers the stored `data`. No auth, no rendering: what is left is the runtime and one round
//! trip, which is what a SCIM GET by id can at best approach.
//!
//! The page floor: `GET /<anything>/page` runs the one statement a first list page of 100
//! users needs (the rows in scim-edge's order, each with its groups as the store's correlated
//! subquery builds them) and answers the stored texts as a JSON array, the groups unrendered.
//! What a list page costs beyond it is scim-edge's own; what it costs beyond the point query
//! is moving 100 rows through D1, which no worker avoids.

use serde_json::{Map, Value};
use worker::js_sys::Array;
use worker::wasm_bindgen::JsCast;
use worker::{event, Context, D1Database, Env, Request, Response, Result};

/// The page statement, as `store::list` writes a first page of Users (its inline total too).
const PAGE: &str = "SELECT r.id, r.type, r.data, r.created, r.modified, r.version, \
    (SELECT json_group_array(json_array(x.id, x.type, x.display_name)) \
     FROM members m JOIN resources x ON x.tenant = m.tenant AND x.id = m.group_id \
     WHERE m.tenant = r.tenant AND m.member_id = r.id) AS related, \
    r.rowid AS _rowid, NULL AS _sort, \
    (SELECT coalesce((SELECT n FROM resource_counts WHERE tenant = ?1 AND type = 'User'), 0)) AS _total \
    FROM resources r WHERE r.tenant = ?1 AND r.type = 'User' \
    ORDER BY r.rowid LIMIT CAST(?2 AS INTEGER) OFFSET ?3";

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let url = req.url()?;
    let db = env.d1("DB")?;
    let mut resp = if url.path().ends_with("/page") {
        page(&db).await?
    } else {
        let id = url
            .query_pairs()
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        point(&db, id).await?
    };
    resp.headers_mut()
        .set("content-type", "application/scim+json; charset=utf-8")?;
    Ok(resp)
}

async fn point(db: &D1Database, id: String) -> Result<Response> {
    let row = db
        .prepare("SELECT id, data FROM resources WHERE tenant = ?1 AND id = ?2")
        .bind(&["default".into(), id.into()])?
        .first::<Map<String, Value>>(None)
        .await?;
    match row
        .as_ref()
        .and_then(|r| r.get("data"))
        .and_then(Value::as_str)
    {
        Some(data) => Response::ok(data),
        None => Response::error("not found", 404),
    }
}

/// Every cell crosses into wasm as scim-edge's rows do (`raw()`, one string per text cell);
/// the body is the rows' `data` texts joined into an array.
async fn page(db: &D1Database) -> Result<Response> {
    let rows = db
        .prepare(PAGE)
        .bind(&["default".into(), 100.into(), 0.into()])?
        .raw_js_value()
        .await?;
    let mut body = String::from("[");
    for (i, row) in rows.iter().enumerate() {
        let cells: Array = row.clone().dyn_into()?;
        let texts: Vec<Option<String>> = cells.iter().map(|c| c.as_string()).collect();
        let data = texts.into_iter().nth(2).flatten();
        if i > 0 {
            body.push(',');
        }
        body.push_str(data.as_deref().unwrap_or("null"));
    }
    body.push(']');
    Response::ok(body)
}
