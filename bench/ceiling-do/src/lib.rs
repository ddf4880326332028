//! The Durable Object ceiling: `GET /<anything>?id=<resource id>` is handed to one
//! SQLite-backed Durable Object (`CeilingStore`, named `default`: one hop, as scim-edge's
//! `durable-object` backend makes per SCIM operation), which runs exactly one SQLite point query
//! (the primary-key lookup of a GET by id) and answers the stored `data`. No auth, no
//! rendering, no transaction: what is left is the runtime, the hop and one query, which is
//! what a SCIM GET by id on that backend can at best approach.
//!
//! The write ceiling: `POST /<anything>` INSERTs the request body as one `User` row into the
//! same `resources` table (so the same indexes and triggers: value index, counters, quotas)
//! and answers the stored row, in the object's implicit transaction. No validation, no
//! uniqueness rows, no event row: what is left of a SCIM POST is the hop and SQLite's own cost
//! of the row.

use serde_json::{Map, Value};
use wasm_bindgen::JsValue;
use worker::{
    durable_object, event, Context, DurableObject, Env, Request, Response,
    Result, State,
};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let stub = env
        .durable_object("CEILING_STORE")?
        .id_from_name("default")?
        .get_stub()?;
    stub.fetch_with_request(req).await
}

#[durable_object(fetch)]
pub struct CeilingStore {
    state: State,
}

impl DurableObject for CeilingStore {
    fn new(state: State, _env: Env) -> Self {
        CeilingStore { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if req.method() == worker::Method::Post {
            return self.write(req.text().await?);
        }
        let url = req.url()?;
        let id = url
            .query_pairs()
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let tenant = url
            .query_pairs()
            .find(|(k, _)| k == "tenant")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| "default".into());
        let rows = self
            .state
            .storage()
            .sql()
            .exec_raw(
                "SELECT id, data FROM resources WHERE tenant = ?1 AND id = ?2",
                vec![JsValue::from_str(&tenant), JsValue::from_str(&id)],
            )?
            .to_array::<Map<String, Value>>()?;
        let mut resp = match rows
            .first()
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
}

impl CeilingStore {
    /// One INSERT of `body` as a user row of the `default` tenant, answered with the row's
    /// `data` (201). A fresh id and version per row, from SQLite's own randomness.
    fn write(&self, body: String) -> Result<Response> {
        let now = "2026-12-01T00:00:00.000Z";
        let rows = self
            .state
            .storage()
            .sql()
            .exec_raw(
                "INSERT INTO resources (tenant, id, type, data, created, modified, version) \
                 VALUES ('default', lower(hex(randomblob(16))), 'User', ?1, ?2, ?2, abs(random() % 1000000000)) \
                 RETURNING id, data",
                vec![JsValue::from_str(&body), JsValue::from_str(now)],
            )?
            .to_array::<Map<String, Value>>()?;
        let data = rows
            .first()
            .and_then(|r| r.get("data"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut resp = Response::ok(data)?.with_status(201);
        resp.headers_mut()
            .set("content-type", "application/scim+json; charset=utf-8")?;
        Ok(resp)
    }
}
