//! Moving a tenant to another deployment or storage backend: `/admin/api/tenants/{t}/export`
//! and `/admin/api/tenants/{t}/import` (the CLI's `tenant export` and `tenant import`).
//!
//! The export is NDJSON, one record per line: a header (format, tenant, what it holds), the
//! tenant's settings, its records in the order of `store::moving::SPECS`, and a trailer
//! with the counts and a checksum. It is served in pages the client follows: each page's
//! `x-export-next` header is the position of the next, and the last page ends with the
//! trailer; the pages concatenated are the export. No page holds more than `limit` records
//! (1,000 by default), so a page costs the same memory and CPU at 100 or 100,000 users, and
//! a request never nears Workers' limits (128 MB, CPU time, subrequests: a page makes at most
//! a dozen D1 queries). The first page freezes the tenant (SCIM writes answer 503, reads are
//! served) in the transaction that counts its rows, so every page reads the same directory;
//! `DELETE …/export` ends the freeze.
//!
//! The checksum is a chain of SHA-256 over the lines before the trailer (`c₀` 32 zero bytes,
//! `cᵢ = SHA-256(cᵢ₋₁ ‖ lineᵢ)`, the line's UTF-8 without its newline; the trailer's `sha256`
//! is the last one in hex). A chain rather than one digest of the whole file because a
//! digest's state cannot be carried from page to page, or from chunk to chunk on import,
//! while a 32-byte link can: in the export's position and in the import's stored state.
//!
//! The import takes the file in chunks of whole lines (each request body at most 1 MiB),
//! `?line=` naming the first line of the chunk; it answers the next line to send, and
//! `GET …/import` tells where an interrupted import stands. Every chunk is checked whole
//! before anything is written (record shapes, order, the position, and at the end the
//! trailer), then written in one transaction: a bad chunk stores nothing. The target must
//! hold nothing (409 otherwise); it is frozen like an exporting tenant until the trailer
//! verifies, and `DELETE …/import` undoes an import that cannot finish.

use crate::proto::error::{Result, ScimError};
use crate::proto::time;
use crate::service::admin_json::{json_response, no_tenant, not_allowed};
use crate::service::ctx::Ctx;
use crate::service::http::{Method, Request, Response};
use crate::service::moving_hop::{self as hop, Dir};
use crate::store::moving::{self, encode_key, parse_key, Chunk, ImportState, Key, Spec, SPECS};
use crate::store::moving::{Freeze, TENANT};
use crate::store::{Db, Store};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The export format's name and version, in the header; an import refuses any other.
pub const FORMAT: &str = "scim-edge-tenant/1";
/// Records per export page unless `limit` says otherwise, and the most it may say.
const DEFAULT_PAGE: i64 = 1000;
const MAX_PAGE: i64 = 5000;
/// Resources and events an abort deletes per request.
const ABORT_BATCH: i64 = 5000;
/// The header naming the next export page.
pub const NEXT_HEADER: &str = "x-export-next";

/// `/tenants/{t}/export` and `/tenants/{t}/import`.
pub async fn route<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    req: &Request,
    what: &str,
) -> Result<Response> {
    let dir = Dir::of(ctx);
    match (what, req.method) {
        ("export", Method::Get) => export(ctx, store, dir, req).await,
        ("export", Method::Delete) => match hop::end_export(ctx, store, dir).await? {
            true => Ok(json_response(
                200,
                &json!({"tenant": store.tenant(), "frozen": false}),
            )),
            false => Err(ScimError::not_found(
                "the tenant is not frozen for an export",
            )),
        },
        ("export", _) => Err(not_allowed("GET, DELETE")),
        ("import", Method::Post) => import(ctx, store, dir, req).await,
        ("import", Method::Get) => {
            let target = hop::target(ctx, store, dir).await?;
            match (target.import, target.finished) {
                (Some(s), _) => Ok(json_response(200, &state_json(store.tenant(), &s, false))),
                // Its last chunk's answer was lost, and this look ended it: done.
                (None, Some(s)) => Ok(json_response(200, &state_json(store.tenant(), &s, true))),
                (None, None) => Err(ScimError::not_found("no import under way for this tenant")),
            }
        }
        ("import", Method::Delete) => match hop::abort(ctx, store, dir, ABORT_BATCH).await? {
            Some(left) => Ok(json_response(
                200,
                &json!({"tenant": store.tenant(), "remaining": left, "aborted": left == 0}),
            )),
            None => Err(ScimError::not_found("no import under way for this tenant")),
        },
        _ => Err(not_allowed("POST, GET, DELETE")),
    }
}

/// The next link of the checksum chain.
pub fn chain(prev: &[u8; 32], line: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(line.as_bytes());
    h.finalize().into()
}

fn hex(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Where an export stands between pages: carried by the client in `after`, as
/// `s.key.u.n.c,c,….h.cr` (strings of a key in base64url; no serde derive, which would cost
/// the wasm more than this does).
#[derive(Debug, Clone, PartialEq)]
struct Position {
    /// The kind of record being read (index into `SPECS`); `SPECS.len()`: the trailer.
    s: usize,
    /// The last record read of that kind.
    k: Option<Key>,
    /// The newest event exported.
    u: i64,
    /// Lines so far, records of each kind so far, and the checksum chain so far.
    n: i64,
    c: Vec<i64>,
    h: String,
    /// Whether credentials are exported.
    cr: bool,
}

impl Position {
    fn encode(&self) -> String {
        let key = encode_key(self.k.as_ref());
        let counts: Vec<String> = self.c.iter().map(i64::to_string).collect();
        format!(
            "{}.{key}.{}.{}.{}.{}.{}",
            self.s,
            self.u,
            self.n,
            counts.join(","),
            self.h,
            u8::from(self.cr)
        )
    }

    fn decode(s: &str) -> Result<Position> {
        Position::parse(s)
            .filter(|p| p.s <= SPECS.len() && p.c.len() == SPECS.len() && unhex(&p.h).is_some())
            .ok_or_else(|| {
                ScimError::invalid_value("'after' is not a position this export handed out")
            })
    }

    fn parse(s: &str) -> Option<Position> {
        let mut parts = s.split('.');
        let mut next = || parts.next();
        let section = next()?.parse().ok()?;
        let key = parse_key(next()?)?;
        let (u, n) = (next()?.parse().ok()?, next()?.parse().ok()?);
        let c = next()?
            .split(',')
            .map(|x| x.parse().ok())
            .collect::<Option<Vec<i64>>>()?;
        let h = next()?.to_string();
        let cr = next()? == "1";
        Some(Position {
            s: section,
            k: key,
            u,
            n,
            c,
            h,
            cr,
        })
    }
}

/// An export page under construction.
struct Page {
    pos: Position,
    link: [u8; 32],
    body: String,
}

impl Page {
    fn push(&mut self, line: &str, kind: Option<usize>) {
        self.link = chain(&self.link, line);
        self.body.push_str(line);
        self.body.push('\n');
        self.pos.n += 1;
        if let Some(c) = kind.and_then(|i| self.pos.c.get_mut(i)) {
            *c += 1;
        }
    }
}

fn kinds_json(counts: impl Iterator<Item = (&'static str, i64)>) -> Map<String, Value> {
    // Inserted one by one: collecting would build the map by sorting, a monomorph of the
    // sort for this type alone (5 KB of wasm).
    let mut m = Map::new();
    for (k, n) in counts {
        m.insert(k.to_string(), json!(n));
    }
    m
}

async fn export<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    dir: Dir<'_>,
    req: &Request,
) -> Result<Response> {
    let limit = match req.query_param("limit") {
        None => DEFAULT_PAGE,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ScimError::invalid_value(format!("'limit' must be from 1 to {MAX_PAGE}"))
            })?,
    };
    let credentials = match req.query_param("credentials") {
        None | Some("true") => true,
        Some("false") => false,
        Some(_) => {
            return Err(ScimError::invalid_value(
                "'credentials' must be true or false",
            ))
        }
    };
    let mut page = match req.query_param("after") {
        Some(after) => {
            let pos = Position::decode(after)?;
            let link = unhex(&pos.h).unwrap_or([0; 32]);
            Page {
                pos,
                link,
                body: String::new(),
            }
        }
        None => first_page(ctx, store, dir, credentials).await?,
    };
    let mut budget = limit;
    while budget > 0 {
        let Some(spec) = SPECS.get(page.pos.s) else {
            break;
        };
        if spec.record == "credential" && !page.pos.cr {
            page.pos.s += 1;
            continue;
        }
        let (lines, last) = hop::page(
            ctx,
            store,
            dir,
            page.pos.s,
            page.pos.k.as_ref(),
            page.pos.u,
            budget,
        )
        .await?
        .ok_or_else(|| {
            ScimError::new(
                409,
                None,
                "the tenant is no longer frozen for this export (it was ended, or the \
                     tenant is importing): start the export again",
            )
        })?;
        let full = lines.len() as i64 >= budget;
        budget -= lines.len() as i64;
        for line in &lines {
            page.push(line, Some(page.pos.s));
        }
        if last.is_some() {
            page.pos.k = last;
        }
        if !full {
            page.pos.s += 1;
            page.pos.k = None;
        }
    }
    page.pos.h = hex(&page.link);
    let mut resp = if page.pos.s >= SPECS.len() {
        let trailer = json!({
            "record": "trailer",
            "lines": page.pos.n,
            "counts": kinds_json(SPECS.iter().map(|s| s.record).zip(page.pos.c.iter().copied())),
            "sha256": page.pos.h,
        });
        page.body.push_str(&trailer.to_string());
        page.body.push('\n');
        Response::empty(200)
    } else {
        Response::empty(200).with_header(NEXT_HEADER, page.pos.encode())
    };
    resp.body = page.body.into_bytes();
    Ok(resp
        .with_header("content-type", "application/x-ndjson; charset=utf-8")
        .with_header("cache-control", "no-store"))
}

/// Freezes the tenant and starts the export with its header and settings lines.
async fn first_page<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    dir: Dir<'_>,
    credentials: bool,
) -> Result<Page> {
    let snap = match hop::freeze(ctx, store, dir, credentials).await? {
        Freeze::Frozen(s) => s,
        Freeze::NoTenant => return Err(no_tenant(store)),
        Freeze::Importing => {
            return Err(ScimError::new(
                409,
                None,
                "the tenant is being imported; export it once the import has finished",
            ))
        }
    };
    let header = json!({
        "record": "header",
        "format": FORMAT,
        "tenant": store.tenant(),
        "exported": time::format_millis(ctx.now_ms),
        "credentials": credentials,
        "sequence": snap.until,
        "counts": kinds_json(snap.counts.iter().copied()),
    });
    let mut page = Page {
        pos: Position {
            s: 0,
            k: None,
            u: snap.until,
            n: 0,
            c: vec![0; SPECS.len()],
            h: String::new(),
            cr: credentials,
        },
        link: [0; 32],
        body: String::new(),
    };
    page.push(&header.to_string(), None);
    page.push(&snap.tenant_line, None);
    Ok(page)
}

fn state_json(tenant: &str, s: &ImportState, done: bool) -> Value {
    json!({
        "tenant": tenant,
        "source": s.source,
        "started": s.started,
        "lines": s.lines,
        "done": done,
        "counts": s.counts.get("seen").cloned().unwrap_or(Value::Null),
    })
}

/// One line of an import chunk, checked on its own.
#[derive(Debug)]
enum Line<'a> {
    Header {
        source: String,
        counts: Map<String, Value>,
        sequence: i64,
    },
    Tenant(&'a str),
    Record(usize, &'a str),
    Trailer {
        lines: i64,
        counts: Map<String, Value>,
        sha256: String,
    },
}

fn bad(at: i64, what: impl std::fmt::Display) -> ScimError {
    ScimError::invalid_value(format!("line {}: {what}", at + 1))
}

/// The counts of a header or trailer: a whole number for each kind of record, none for a
/// kind the file's source did not know yet (a file from before `stream` records): 0.
fn counts_of(v: &Map<String, Value>, at: i64) -> Result<Map<String, Value>> {
    let counts = v
        .get("counts")
        .and_then(Value::as_object)
        .ok_or_else(|| bad(at, "'counts' must be an object"))?;
    for s in SPECS.iter() {
        if !counts.get(s.record).is_none_or(Value::is_i64) {
            return Err(bad(at, format!("'counts.{}' must be an integer", s.record)));
        }
    }
    Ok(counts.clone())
}

fn parse_line(text: &str, at: i64) -> Result<Line<'_>> {
    // Parsed as a `Value` (the monomorph the service already has), then required an object.
    let v = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return Err(bad(at, "not a JSON object")),
        Err(e) => return Err(bad(at, format!("not a JSON object ({e})"))),
    };
    let record = v.get("record").and_then(Value::as_str).unwrap_or_default();
    match record {
        "header" => {
            let format = v.get("format").and_then(Value::as_str).unwrap_or_default();
            if format != FORMAT {
                return Err(bad(
                    at,
                    format!("the format is '{format}'; this deployment imports {FORMAT}"),
                ));
            }
            let source = v.get("tenant").and_then(Value::as_str).unwrap_or_default();
            let sequence = match v.get("sequence") {
                None => 0,
                Some(n) => n
                    .as_i64()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| bad(at, "'sequence' must be a non-negative integer"))?,
            };
            Ok(Line::Header {
                source: source.to_string(),
                counts: counts_of(&v, at)?,
                sequence,
            })
        }
        "tenant" => {
            TENANT.check(&v).map_err(|e| bad(at, e))?;
            Ok(Line::Tenant(text))
        }
        "trailer" => Ok(Line::Trailer {
            lines: v
                .get("lines")
                .and_then(Value::as_i64)
                .ok_or_else(|| bad(at, "'lines' must be an integer"))?,
            counts: counts_of(&v, at)?,
            sha256: v
                .get("sha256")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        }),
        kind => {
            let (i, spec) =
                moving::spec(kind).ok_or_else(|| bad(at, format!("unknown record '{kind}'")))?;
            spec.check(&v).map_err(|e| bad(at, e))?;
            check_record(spec, &v).map_err(|e| bad(at, e))?;
            Ok(Line::Record(i, text))
        }
    }
}

/// What the columns' types do not say: stored JSON columns hold JSON objects.
fn check_record(spec: &Spec, v: &Map<String, Value>) -> std::result::Result<(), String> {
    let json_column = match spec.record {
        "resource" => "data",
        "schema" => "document",
        _ => return Ok(()),
    };
    let text = v
        .get(json_column)
        .and_then(Value::as_str)
        .unwrap_or_default();
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(_)) => Ok(()),
        _ => Err(format!("'{json_column}' must be the text of a JSON object")),
    }
}

/// The lines of a chunk: `\n`-separated, the last one may end with `\n`, none empty.
fn split_lines(body: &[u8]) -> Result<Vec<&str>> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ScimError::invalid_syntax(format!("the chunk is not UTF-8 (byte {})", e.valid_up_to()))
    })?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    if text.is_empty() {
        return Err(ScimError::invalid_syntax("the chunk is empty"));
    }
    Ok(text.split('\n').collect())
}

fn count(counts: &Map<String, Value>, kind: &str) -> i64 {
    counts.get(kind).and_then(Value::as_i64).unwrap_or(0)
}

/// Plans a chunk from where the import stands: checks the lines' order and, at the
/// trailer, the counts and the checksum. Pure: nothing is written unless all of it holds.
fn plan(
    mut state: ImportState,
    from: Option<ImportState>,
    lines: &[(&str, Line<'_>)],
) -> Result<Chunk> {
    let mut link = unhex(&state.chain).ok_or_else(ScimError::internal)?;
    let mut expected = state
        .counts
        .get("expected")
        .and_then(Value::as_object)
        .cloned();
    let mut seen = state
        .counts
        .get("seen")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut at_kind = state.counts.get("at").and_then(Value::as_u64).unwrap_or(0) as usize;
    let mut arrays: Vec<Vec<&str>> = vec![Vec::new(); SPECS.len()];
    let mut tenant_line = None;
    let mut finish = false;
    for (i, (raw, line)) in lines.iter().enumerate() {
        let at = state.lines + i as i64;
        if finish {
            return Err(bad(at, "nothing may follow the trailer"));
        }
        match (at, line) {
            (0, Line::Header { source, counts, .. }) => {
                state.source = source.clone();
                expected = Some(counts.clone());
            }
            (0, _) => return Err(bad(at, "the first line must be the export's header")),
            (1, Line::Tenant(t)) => tenant_line = Some(t.to_string()),
            (1, _) => return Err(bad(at, "the second line must be the tenant record")),
            (_, Line::Record(kind, t)) => {
                if *kind < at_kind {
                    return Err(bad(at, "records are out of the export's order"));
                }
                at_kind = *kind;
                let name = SPECS.get(*kind).map_or("", |s| s.record);
                seen.insert(name.into(), json!(count(&seen, name) + 1));
                if let Some(a) = arrays.get_mut(*kind) {
                    a.push(t);
                }
            }
            (
                _,
                Line::Trailer {
                    lines,
                    counts,
                    sha256,
                },
            ) => {
                verify_trailer(at, *lines, counts, sha256, &link, &seen, expected.as_ref())?;
                finish = true;
                continue;
            }
            (_, Line::Header { .. } | Line::Tenant(_)) => {
                return Err(bad(
                    at,
                    "a header or tenant record in the middle of the export",
                ))
            }
        }
        link = chain(&link, raw);
    }
    let advanced = lines.len() as i64 - i64::from(finish);
    state.lines += advanced;
    state.chain = hex(&link);
    state.counts = Map::from_iter([
        (
            "expected".to_string(),
            expected.map_or(Value::Null, Value::Object),
        ),
        ("seen".to_string(), Value::Object(seen)),
        ("at".to_string(), json!(at_kind)),
    ]);
    state.token = crate::store::new_version()?;
    let records = arrays
        .iter()
        .enumerate()
        .filter(|(_, a)| !a.is_empty())
        .map(|(i, a)| (i, format!("[{}]", a.join(","))))
        .collect();
    Ok(Chunk {
        from,
        to: state,
        tenant_line,
        records,
        finish,
        sequence: header_sequence(lines),
    })
}

/// The header's `sequence`, if the chunk starts with the header (the first chunk).
fn header_sequence(lines: &[(&str, Line<'_>)]) -> i64 {
    match lines.first() {
        Some((_, Line::Header { sequence, .. })) => *sequence,
        _ => 0,
    }
}

fn verify_trailer(
    at: i64,
    lines: i64,
    counts: &Map<String, Value>,
    sha256: &str,
    link: &[u8; 32],
    seen: &Map<String, Value>,
    expected: Option<&Map<String, Value>>,
) -> Result<()> {
    if lines != at {
        return Err(bad(
            at,
            format!("the trailer counts {lines} lines before it; {at} arrived"),
        ));
    }
    for s in SPECS.iter() {
        let (said, got) = (count(counts, s.record), count(seen, s.record));
        let header = expected.map_or(said, |e| count(e, s.record));
        if said != got || header != got {
            return Err(bad(
                at,
                format!(
                    "{} {} records arrived; the header said {header} and the trailer {said}",
                    got, s.record
                ),
            ));
        }
    }
    if sha256 != hex(link) {
        return Err(bad(
            at,
            "the checksum does not match the lines received: the file is damaged",
        ));
    }
    Ok(())
}

/// The import a resent last chunk belongs to, if the look at the target just ended it (its
/// answer was lost after the directory's side completed, `hop::target`): the chunk starts
/// at or before where that import stood and ends with the trailer. Its answer is "done".
fn resent_last(
    target: &moving::Target,
    first: i64,
    lines: &[(&str, Line<'_>)],
) -> Option<ImportState> {
    let done = target.finished.as_ref()?;
    let ends = matches!(lines.last(), Some((_, Line::Trailer { .. })));
    (target.import.is_none() && ends && first <= done.lines).then(|| done.clone())
}

async fn import<D: Db>(
    ctx: &Ctx<'_, D>,
    store: &Store<'_, D>,
    dir: Dir<'_>,
    req: &Request,
) -> Result<Response> {
    let first = req
        .query_param("line")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l >= 0)
        .ok_or_else(|| {
            ScimError::invalid_value("'line' (the chunk's first line, from 0) is required")
        })?;
    let raw = split_lines(&req.body)?;
    let mut lines = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        lines.push((*text, parse_line(text, first + i as i64)?));
    }
    let target = hop::target(ctx, store, dir).await?;
    if let Some(done) = resent_last(&target, first, &lines) {
        return Ok(json_response(200, &state_json(store.tenant(), &done, true)));
    }
    let (from, state) = match (first, target.import) {
        (0, None) if target.has_data => {
            return Err(ScimError::new(
                409,
                None,
                format!(
                    "tenant '{}' already holds data; import only into an empty tenant",
                    store.tenant()
                ),
            ))
        }
        (0, None) => (
            None,
            ImportState {
                source: String::new(),
                lines: 0,
                chain: hex(&[0; 32]),
                counts: Map::new(),
                token: 0,
                started: time::format_millis(ctx.now_ms),
            },
        ),
        (_, Some(s)) if s.lines == first => (Some(s.clone()), s),
        (_, Some(s)) => {
            return Err(ScimError::new(
                409,
                None,
                format!(
                    "the import of this tenant is at line {}; send the chunk that starts there \
                     (or DELETE the import to start again)",
                    s.lines
                ),
            ))
        }
        (_, None) => {
            return Err(ScimError::new(
                409,
                None,
                "no import of this tenant is under way; start with line 0",
            ))
        }
    };
    let chunk = plan(state, from, &lines)?;
    if !hop::apply(ctx, store, dir, &chunk).await? {
        return Err(ScimError::new(
            409,
            None,
            "the import moved on meanwhile (another chunk applied, or the tenant received data); \
             GET the import for where it stands",
        ));
    }
    Ok(json_response(
        200,
        &state_json(store.tenant(), &chunk.to, chunk.finish),
    ))
}
