//! A tenant's move when its directory lives in its Durable Object (`SCIM_STORAGE =
//! "durable-object"`): the export and import stay one stream, one checksum and one set of
//! counts, but each kind of record is read from and written to where it lives
//! (`store::moving::Plane`). The worker keeps the control plane's records in D1 (settings,
//! declared schemas, entitlement and role values, webhook endpoints, credentials) and hands
//! the directory's (resources, memberships, unique values, tombstones, tolerance counts, the
//! provisioning log) to the tenant's object through `service::relay`, one internal admin
//! path per store call ([`object`] answers them in the object, with the same store code).
//!
//! The import's position is the object's (`tenant_imports` there): the object holds nearly
//! every line, and its freeze is the one SCIM writes meet. D1 follows it, one chunk ahead at
//! most: each chunk is written to D1 first, then to the object, so the declarations reach
//! D1 (and, through the hop's digest check, the object) before any resource that needs
//! them. A chunk resent after D1 took it and the object did not is recognised by D1's
//! position (already at the chunk's end) and not written to D1 twice. D1's import ends
//! after the object's (the object verified the trailer, and took the push endpoints in the
//! same transaction); if that last step is lost, the next look at the import ends it and
//! says the import is done ([`target`]).

use crate::proto::error::{Result, ScimError};
use crate::service::admin_json::json_response;
use crate::service::ctx::{Ctx, Forward};
use crate::service::http::{Method, Request, Response};
use crate::store::moving::{encode_key, parse_key, Chunk, Freeze, Holds, ImportState, Key};
use crate::store::moving::{Plane, Snapshot, Target};
use crate::store::moving::{Spec, SPECS};
use crate::store::{Db, Row, Store};
use serde_json::{json, Map, Value};

/// Where the tenant's directory is for this request: in the database the handlers run over
/// (`d1`, or the object itself), or in the tenant's object, reached through `to`.
#[derive(Clone, Copy)]
pub enum Dir<'a> {
    Here,
    Object(&'a dyn Forward),
}

/// The header of an object's export page: the key of its last record.
const LAST_KEY: &str = "x-export-key";

impl<'a> Dir<'a> {
    pub fn of<D: Db>(ctx: &Ctx<'a, D>) -> Dir<'a> {
        match ctx.forward {
            Some(to) => Dir::Object(to),
            None => Dir::Here,
        }
    }

    /// What the database the handlers run over holds of the tenant.
    pub fn local(self) -> Holds {
        match self {
            Dir::Here => Holds::All,
            Dir::Object(_) => Holds::Only(Plane::Control),
        }
    }

    /// The object, if `spec`'s records are there.
    fn remote(self, spec: &Spec) -> Option<&'a dyn Forward> {
        match self {
            Dir::Object(to) if spec.plane == Plane::Directory => Some(to),
            _ => None,
        }
    }
}

/// Calls the tenant's object at `/admin/api/tenants/{t}/{what}` and reads its answer.
async fn call<D: Db>(
    ctx: &Ctx<'_, D>,
    to: &dyn Forward,
    tenant: &str,
    method: Method,
    what: &str,
    body: Option<Value>,
) -> Result<Response> {
    let path = format!("/admin/api/tenants/{tenant}/{what}");
    let mut req = Request::new(method, &path, "https://object.invalid");
    if let Some(b) = body {
        req = req
            .with_header("content-type", "application/json")
            .with_body(b.to_string());
    }
    let resp = crate::service::relay::read(ctx, to, tenant, &req).await?;
    if resp.status == 200 {
        Ok(resp)
    } else {
        // Its error, as the object put it (a 409 of a race, a 400 of a bad record).
        crate::service::relay::answer(resp).map(|_| Response::empty(200))
    }
}

fn state_json(s: &ImportState) -> Value {
    json!({"source": s.source, "lines": s.lines, "chain": s.chain, "counts": s.counts,
        "token": s.token, "started": s.started})
}

fn state_of(v: &Value) -> Option<ImportState> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Some(ImportState {
        source: text("source")?,
        lines: v.get("lines")?.as_i64()?,
        chain: text("chain")?,
        counts: v.get("counts")?.as_object()?.clone(),
        token: v.get("token")?.as_i64()?,
        started: text("started")?,
    })
}

/// Member `k` of an object's answer (`Null` when absent).
fn at<'v>(v: &'v Value, k: &str) -> &'v Value {
    v.get(k).unwrap_or(&Value::Null)
}

fn malformed(what: &str) -> ScimError {
    let mut e = ScimError::internal();
    e.cause = Some(format!("the tenant's object answered a malformed {what}"));
    e
}

/// Freezes the tenant for an export where its directory is, and counts that part.
pub async fn freeze<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    dir: Dir<'_>,
    credentials: bool,
) -> Result<Freeze> {
    let local = store.freeze_for_export(credentials, dir.local()).await?;
    let (Dir::Object(to), Freeze::Frozen(mut snap)) = (dir, local.clone()) else {
        return Ok(local);
    };
    let q = format!("export/freeze?credentials={credentials}");
    let resp = call(ctx, to, store.tenant(), Method::Post, &q, None).await?;
    let v = resp.body_json();
    match v.get("state").and_then(Value::as_str) {
        Some("frozen") => {}
        Some("importing") => return Ok(Freeze::Importing),
        _ => return Err(malformed("freeze")),
    }
    snap.until = v.get("until").and_then(Value::as_i64).unwrap_or(0);
    for (spec, (_, n)) in SPECS.iter().zip(snap.counts.iter_mut()) {
        if spec.plane == Plane::Directory {
            *n = at(at(&v, "counts"), spec.record)
                .as_i64()
                .ok_or_else(|| malformed("count"))?;
        }
    }
    Ok(Freeze::Frozen(snap))
}

/// Up to `limit` records of kind `SPECS[kind]` after `after`: their lines and the last key.
pub async fn page<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    dir: Dir<'_>,
    kind: usize,
    after: Option<&Key>,
    until: i64,
    limit: i64,
) -> Result<Option<(Vec<String>, Option<Key>)>> {
    let spec = SPECS.get(kind).ok_or_else(ScimError::internal)?;
    let Some(to) = dir.remote(spec) else {
        let rows = store.export_page(spec, after, until, limit).await?;
        return Ok(rows.map(|rows| {
            let last = rows.last().map(|(k, _)| k.clone());
            (rows.into_iter().map(|(_, line)| line).collect(), last)
        }));
    };
    let q = format!(
        "export/page?kind={kind}&after={}&until={until}&limit={limit}",
        encode_key(after)
    );
    let resp = match call(ctx, to, store.tenant(), Method::Get, &q, None).await {
        Err(e) if e.status == 409 => return Ok(None),
        r => r?,
    };
    let last = resp
        .header(LAST_KEY)
        .and_then(parse_key)
        .ok_or_else(|| malformed("page key"))?;
    let body = String::from_utf8(resp.body).map_err(|_| malformed("page"))?;
    let lines = body.lines().map(str::to_string).collect();
    Ok(Some((lines, last)))
}

/// Ends an export's freeze wherever it is; `false` if there was none.
pub async fn end_export<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    dir: Dir<'_>,
) -> Result<bool> {
    let here = store.end_export().await?;
    let Dir::Object(to) = dir else {
        return Ok(here);
    };
    if store.tenant_record().await?.is_none() {
        return Ok(here);
    }
    let resp = call(ctx, to, store.tenant(), Method::Delete, "export/end", None).await?;
    Ok(here || at(&resp.body_json(), "ended") == &json!(true))
}

/// The object's side of the import's target (empty for a tenant D1 does not have yet: an
/// object is only reached for a tenant D1 has).
async fn object_target<D: Db>(
    ctx: &Ctx<'_, D>,
    to: &dyn Forward,
    store: &Store<'_, D>,
    exists: bool,
) -> Result<Target> {
    if !exists {
        return Ok(Target {
            exists: false,
            has_data: false,
            import: None,
            finished: None,
        });
    }
    let v = call(ctx, to, store.tenant(), Method::Get, "import/target", None)
        .await?
        .body_json();
    Ok(Target {
        exists: true,
        has_data: at(&v, "hasData")
            .as_bool()
            .ok_or_else(|| malformed("target"))?,
        import: match at(&v, "import") {
            Value::Null => None,
            s => Some(state_of(s).ok_or_else(|| malformed("import state"))?),
        },
        finished: None,
    })
}

/// The import's target as a whole: its position (the object's, when it holds the
/// directory) and whether it holds anything the import did not bring.
pub async fn target<D: Db>(ctx: &Ctx<'_, D>, store: &Store<'_, D>, dir: Dir<'_>) -> Result<Target> {
    let here = store.import_target(dir.local()).await?;
    let Dir::Object(to) = dir else {
        return Ok(here);
    };
    let there = object_target(ctx, to, store, here.exists).await?;
    if there.import.is_none() && there.has_data && here.import.is_some() {
        // The object finished the import; D1 did not hear of it (the end of the last
        // chunk's request was lost): D1's side ends now, and this look says it is done.
        store.finish_import().await?;
        return Ok(Target {
            exists: true,
            has_data: true,
            import: None,
            finished: here.import,
        });
    }
    Ok(Target {
        exists: here.exists,
        // D1's records of an import under way are the import's own.
        has_data: there.has_data || (here.has_data && here.import.is_none()),
        import: there.import,
        finished: None,
    })
}

/// Writes a planned chunk: D1's part, then the object's (see the module's doc). `false`:
/// the import moved on meanwhile.
pub async fn apply<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    dir: Dir<'_>,
    chunk: &Chunk,
) -> Result<bool> {
    let Dir::Object(to) = dir else {
        return Ok(store.apply_chunk(chunk, Holds::All, &[]).await?);
    };
    let first = chunk.from.as_ref().map_or(0, |s| s.lines);
    let here = store.import_target(dir.local()).await?.import;
    let d1_from = match here {
        Some(s) if s.lines == first => Some(Some(s)),
        // Taken already by D1 (a resent chunk): only the object's part is left.
        Some(s) if s.lines == chunk.to.lines => None,
        None if first == 0 => Some(None),
        _ => return Ok(false),
    };
    if let Some(from) = d1_from {
        // D1 finishes after the object, which is the import's position.
        let mine = Chunk {
            from,
            finish: false,
            ..chunk.clone()
        };
        if !store.apply_chunk(&mine, dir.local(), &[]).await? {
            return Ok(false);
        }
    }
    // The last chunk carries the push endpoints, for the object to start them after the
    // moved log in the chunk's own transaction (`Store::apply_chunk`): if it fails, the
    // object is still importing at the chunk's start, and sending it again completes both.
    let endpoints = if chunk.finish {
        store.moved_endpoints().await?
    } else {
        Vec::new()
    };
    let body = chunk_body(chunk, &endpoints);
    if body.len() > crate::service::scim::MAX_BODY_BYTES {
        return Err(ScimError::new(
            413,
            None,
            "the chunk's records for the tenant's object exceed the 1 MiB a request may carry \
             there: send smaller chunks (the CLI sends at most 900 KiB)",
        ));
    }
    let path = format!("/admin/api/tenants/{}/import/apply", store.tenant());
    let req = Request::new(Method::Post, &path, "https://object.invalid").with_body(body);
    let resp = crate::service::relay::read(ctx, to, store.tenant(), &req).await?;
    let resp = if resp.status == 200 {
        resp
    } else {
        crate::service::relay::answer(resp).map(|_| Response::empty(200))?
    };
    let applied = at(&resp.body_json(), "applied") == &json!(true);
    if applied && chunk.finish {
        store.finish_import().await?;
    }
    Ok(applied)
}

/// The object's part of a chunk as the hop carries it: a line of JSON (the positions, and
/// which kinds follow), then each kind's records as the JSON array text the chunk holds, one
/// per line. Not one JSON document: its strings would escape every record's quotes again,
/// and a chunk near 1 MiB would no longer fit the hop's own 1 MiB request limit. (Records
/// hold no raw newline: JSON escapes it.) The tenant's settings are not sent: the object's
/// come from D1 with every hop. The last chunk's line of JSON also holds the tenant's push
/// `endpoints` (D1's rows, without secrets).
fn chunk_body(c: &Chunk, endpoints: &[Row]) -> String {
    let mine: Vec<&(usize, String)> = c
        .records
        .iter()
        .filter(|(i, _)| SPECS.get(*i).is_some_and(|s| s.plane == Plane::Directory))
        .collect();
    let kinds: Vec<usize> = mine.iter().map(|(i, _)| *i).collect();
    let meta = json!({"from": c.from.as_ref().map(state_json), "to": state_json(&c.to),
        "finish": c.finish, "sequence": c.sequence, "kinds": kinds, "endpoints": endpoints});
    let mut body = meta.to_string();
    for (_, array) in mine {
        body.push('\n');
        body.push_str(array);
    }
    body
}

/// A chunk as [`chunk_body`] wrote it, and the push endpoints it carries.
fn chunk_of(body: &[u8]) -> Option<(Chunk, Vec<Row>)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut lines = text.split('\n');
    let v: Value = serde_json::from_str(lines.next()?).ok()?;
    let kinds = v.get("kinds")?.as_array()?;
    let mut records = Vec::with_capacity(kinds.len());
    for k in kinds {
        records.push((
            usize::try_from(k.as_u64()?).ok()?,
            lines.next()?.to_string(),
        ));
    }
    let endpoints = match v.get("endpoints") {
        None => Vec::new(),
        Some(e) => serde_json::from_value(e.clone()).ok()?,
    };
    let chunk = Chunk {
        from: match v.get("from")? {
            Value::Null => None,
            s => Some(state_of(s)?),
        },
        to: state_of(v.get("to")?)?,
        tenant_line: None,
        records,
        finish: v.get("finish")?.as_bool()?,
        sequence: v.get("sequence").and_then(Value::as_i64).unwrap_or(0),
    };
    Some((chunk, endpoints))
}

/// Undoes an import where it is, `limit` rows at a time: what is left, `None` if no import
/// was under way anywhere.
pub async fn abort<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    dir: Dir<'_>,
    limit: i64,
) -> Result<Option<i64>> {
    let here = store.abort_import(limit, dir.local()).await?;
    let Dir::Object(to) = dir else {
        return Ok(here);
    };
    if store.tenant_record().await?.is_none() {
        return Ok(here);
    }
    let q = format!("import/abort?limit={limit}");
    let v = call(ctx, to, store.tenant(), Method::Delete, &q, None)
        .await?
        .body_json();
    Ok(match (here, at(&v, "remaining").as_i64()) {
        (None, None) => None,
        (_, there) => Some(there.unwrap_or(0)),
    })
}

/// The object's side: the store calls above, over the object's own database, which holds
/// the tenant's directory (`Plane::Directory`). Reached only through the worker's hop.
pub async fn object<D: Db>(store: &Store<'_, D>, req: &Request, op: &str) -> Result<Response> {
    let holds = Holds::Only(Plane::Directory);
    let int = |k: &str| req.query_param(k).and_then(|v| v.parse::<i64>().ok());
    let v = match (req.method, op) {
        (Method::Post, "freeze") => {
            let credentials = req.query_param("credentials") == Some("true");
            match store.freeze_for_export(credentials, holds).await? {
                Freeze::Frozen(Snapshot { counts, until, .. }) => {
                    let counts: Map<String, Value> = counts
                        .into_iter()
                        .map(|(k, n)| (k.to_string(), json!(n)))
                        .collect();
                    json!({"state": "frozen", "until": until, "counts": counts})
                }
                Freeze::Importing => json!({"state": "importing"}),
                Freeze::NoTenant => json!({"state": "none"}),
            }
        }
        (Method::Get, "page") => return object_page(store, req).await,
        (Method::Delete, "end") => json!({"ended": store.end_export().await?}),
        (Method::Get, "target") => {
            let t = store.import_target(holds).await?;
            json!({"hasData": t.has_data, "import": t.import.as_ref().map(state_json)})
        }
        (Method::Post, "apply") => {
            let (chunk, endpoints) = chunk_of(&req.body)
                .ok_or_else(|| ScimError::invalid_value("a chunk the worker sent is malformed"))?;
            // Every event here is an imported one: the tenant is frozen until this chunk's
            // transaction ends it, and the endpoints start after them in that transaction.
            json!({"applied": store.apply_chunk(&chunk, holds, &endpoints).await?})
        }
        (Method::Delete, "abort") => {
            let limit = int("limit").unwrap_or(1).max(1);
            json!({"remaining": store.abort_import(limit, holds).await?})
        }
        _ => return Err(ScimError::not_found("not an object's move path")),
    };
    Ok(json_response(200, &v))
}

async fn object_page<D: Db>(store: &Store<'_, D>, req: &Request) -> Result<Response> {
    let bad = || ScimError::invalid_value("a page request the worker sent is malformed");
    let int = |k: &str| req.query_param(k).and_then(|v| v.parse::<i64>().ok());
    let spec = int("kind")
        .and_then(|k| SPECS.get(usize::try_from(k).ok()?))
        .ok_or_else(bad)?;
    let after = parse_key(req.query_param("after").unwrap_or("-")).ok_or_else(bad)?;
    let (until, limit) = (int("until").ok_or_else(bad)?, int("limit").ok_or_else(bad)?);
    let rows = store
        .export_page(spec, after.as_ref(), until, limit)
        .await?
        .ok_or_else(|| {
            ScimError::new(409, None, "the tenant's object is not frozen for an export")
        })?;
    let last = encode_key(rows.last().map(|(k, _)| k));
    let mut body = String::new();
    for (_, line) in &rows {
        body.push_str(line);
        body.push('\n');
    }
    let mut resp = Response::empty(200).with_header(LAST_KEY, last);
    resp.body = body.into_bytes();
    Ok(resp)
}
