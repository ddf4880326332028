//! Native microbenchmarks of the protocol core: filter parsing and planning, PATCH application
//! of Microsoft Entra ID's bodies, validation and rendering. `cargo bench` (or
//! `cargo bench --bench core -- patch` to run the cases whose name contains `patch`).
//!
//! No criterion, to keep dependencies light: each case runs for a warm-up, then in batches
//! sized to take ~50 ms, and reports the median batch's time per iteration (and the fastest).
//! Without `--bench` (as `cargo test --all-targets` runs it) each case runs once, as a smoke
//! test; `CORE_ITERS=n` runs it n times, for counting instructions, which unlike time does not
//! move with the machine's load: run the binary under
//! `valgrind --tool=cachegrind --cache-sim=no` with n = 1 and n = 201 and divide the
//! difference by 200. The bench profile inherits the release profile's `opt-level = "z"`
//! (what the wasm ships with); `CARGO_PROFILE_BENCH_OPT_LEVEL=3 cargo bench --bench core`
//! shows the same code at Rust's default optimisation for speed.

// A benchmark over fixed inputs: a failure to set one up should stop it loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use scim_edge::proto::filter;
use scim_edge::proto::patch;
use scim_edge::proto::projection::Projection;
use scim_edge::proto::resource;
use scim_edge::proto::schema::ResourceType;
use scim_edge::service::scim;
use scim_edge::store::query;
use scim_edge::store::sql::SqlValue;
use scim_edge::store::{parse_row, Row, Stored};
use serde_json::{json, Map, Value};
use std::hint::black_box;
use std::time::{Duration, Instant};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const BASE: &str = "https://scim.example.com/scim/v2";

/// The user the benchmark provisions (bench/bench.mjs `userBody`), as POST sends it.
fn user_body(i: usize) -> Value {
    let i = format!("{i:06}");
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": format!("00000000-0000-4000-8000-000000{i}"),
        "userName": format!("user{i}@contoso.com"),
        "active": true,
        "displayName": format!("User {i}"),
        "name": {"givenName": format!("Given{i}"), "familyName": format!("Family{i}"), "formatted": format!("Given{i} Family{i}")},
        "emails": [{"value": format!("user{i}@contoso.com"), "type": "work", "primary": true}],
        "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
        "addresses": [{"type": "work", "streetAddress": "1 Main St", "locality": "Seattle", "region": "WA", "postalCode": "98101", "country": "US", "primary": true}],
        "title": "Engineer",
        "preferredLanguage": "en-US",
        ENTERPRISE: {"employeeNumber": i, "department": "Engineering", "costCenter": "CC-100", "organization": "Contoso", "division": "Cloud"}
    })
}

/// A typical Entra ID user update (capitalised ops, filtered and URN paths, a string boolean).
fn entra_patch() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "Replace", "path": "displayName", "value": "Patched 1"},
            {"op": "Replace", "path": "name.givenName", "value": "G1"},
            {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "Dept 1"},
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0142"},
            {"op": "Replace", "path": "active", "value": "False"}
        ]
    })
}

/// Entra's path-less replace with dotted and URN keys.
fn entra_pathless_patch() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "value": {
            "name.givenName": "Entra", "name.familyName": "Patch",
            format!("{ENTERPRISE}:department"): "Finance", "active": "True"
        }}]
    })
}

fn entra_add_member() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Add", "path": "members", "value": [{"value": "5b7c9f1e-0a43-4c1b-9d5e-8f2a6c3b1d00"}]}]
    })
}

/// The row D1 hands back for a stored user (what `store::parse_row` reads).
fn stored_row(i: usize) -> Row {
    let validated = resource::validate(ResourceType::User, &user_body(i)).expect("valid user");
    let mut row = Map::new();
    row.insert(
        "id".into(),
        json!(format!("2f1d7c9a-3b4e-4f60-8a1b-{i:012}")),
    );
    row.insert("type".into(), json!("User"));
    row.insert(
        "data".into(),
        json!(serde_json::to_string(&validated.data).unwrap()),
    );
    row.insert("created".into(), json!("2026-05-01T12:00:00.000Z"));
    row.insert("modified".into(), json!("2026-05-01T12:00:00.000Z"));
    row.insert("version".into(), json!(4503599627370497i64));
    row.insert(
        "related".into(),
        json!("[[\"6a1c3e5f-7b9d-4f2a-8c4e-6a8b0c2d4e6f\",\"Group\",\"Group 000000\"]]"),
    );
    row
}

struct Runner {
    filter: Option<String>,
    smoke: bool,
    results: Vec<(String, f64)>,
    ran: usize,
}

impl Runner {
    fn case<T>(&mut self, name: &str, mut f: impl FnMut() -> T) {
        if self.filter.as_deref().is_some_and(|p| !name.contains(p)) {
            return;
        }
        self.ran += 1;
        if self.smoke {
            let n: u64 = std::env::var("CORE_ITERS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            for _ in 0..n {
                black_box(f());
            }
            return;
        }
        // Warm up and size a batch to ~50 ms.
        let start = Instant::now();
        let mut n: u64 = 0;
        while start.elapsed() < Duration::from_millis(200) {
            black_box(f());
            n += 1;
        }
        let per = start.elapsed().as_secs_f64() / n as f64;
        let batch = ((0.05 / per) as u64).max(1);
        let mut samples = Vec::new();
        for _ in 0..9 {
            let t = Instant::now();
            for _ in 0..batch {
                black_box(f());
            }
            samples.push(t.elapsed().as_secs_f64() / batch as f64);
        }
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let median = samples[samples.len() / 2];
        println!(
            "{name:<58} {:>10} /iter (best {})",
            human(median),
            human(samples[0])
        );
        self.results.push((name.to_string(), median));
    }
}

fn human(secs: f64) -> String {
    if secs < 1e-6 {
        format!("{:.0} ns", secs * 1e9)
    } else if secs < 1e-3 {
        format!("{:.2} µs", secs * 1e6)
    } else {
        format!("{:.2} ms", secs * 1e3)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: run each case once.
    let smoke = !args.iter().any(|a| a == "--bench");
    let filter = args.iter().find(|a| !a.starts_with("--")).cloned();
    let mut r = Runner {
        filter,
        smoke,
        results: Vec::new(),
        ran: 0,
    };

    // Filters.
    let eq = "userName eq \"user000123@contoso.com\"";
    let complex = "emails[type eq \"work\" and value co \"@contoso.com\"] and (active eq true or not (title pr)) and meta.lastModified gt \"2026-01-01T00:00:00Z\"";
    r.case("filter: parse userName eq", || filter::parse(eq).unwrap());
    r.case("filter: parse complex (value path, not, dateTime)", || {
        filter::parse(complex).unwrap()
    });
    r.case("filter: parse + plan SQL, userName eq", || {
        let f = filter::parse(eq).unwrap();
        let mut params: Vec<SqlValue> = Vec::new();
        query::where_sql(&f, Some(ResourceType::User), &mut params).unwrap()
    });
    r.case("filter: parse + plan SQL, complex", || {
        let f = filter::parse(complex).unwrap();
        let mut params: Vec<SqlValue> = Vec::new();
        query::where_sql(&f, Some(ResourceType::User), &mut params).unwrap()
    });

    // PATCH.
    let row = stored_row(123);
    let stored = parse_row(&row, false).unwrap();
    let stored_data = stored.attributes().unwrap();
    let body = entra_patch();
    let body_bytes = serde_json::to_vec(&body).unwrap();
    let pathless = entra_pathless_patch();
    r.case("patch: apply Entra user update (5 ops)", || {
        patch::apply(ResourceType::User, &stored_data, &body, false).unwrap()
    });
    r.case("patch: apply Entra user update to the stored text", || {
        patch::apply_text(ResourceType::User, &stored.data, &body, false).unwrap()
    });
    r.case("patch: apply Entra path-less replace", || {
        patch::apply(ResourceType::User, &stored_data, &pathless, false).unwrap()
    });
    let group: Map<String, Value> =
        serde_json::from_value(json!({"displayName": "Group 000000"})).unwrap();
    let add_member = entra_add_member();
    r.case("patch: apply Entra add-member to a group", || {
        patch::apply(ResourceType::Group, &group, &add_member, false).unwrap()
    });
    // The whole CPU path of a PATCH request minus I/O, as `api::patch` runs it: parse the body
    // and the stored row, apply to the stored text (writing the new text for the UPDATE),
    // then render the response from the row the same batch reads back (whose `data` is the
    // text just written).
    let none = Projection::default();
    r.case("patch: Entra PATCH end to end (parse+apply+render)", || {
        let body: Value = serde_json::from_slice(&body_bytes).unwrap();
        let current = parse_row(&row, false).unwrap();
        let out = patch::apply_text(ResourceType::User, &current.data, &body, false).unwrap();
        let written = Stored {
            data: out.data.unwrap(),
            ..current
        };
        let mut resp = Vec::new();
        scim::write_resource(&mut resp, &written, &none, BASE).unwrap();
        resp
    });

    r.case(
        "patch: same, parsing and re-serialising the whole resource",
        || {
            let body: Value = serde_json::from_slice(&body_bytes).unwrap();
            let current = parse_row(&row, false).unwrap();
            let out = patch::apply(
                ResourceType::User,
                &current.attributes().unwrap(),
                &body,
                false,
            )
            .unwrap();
            let written = Stored {
                data: serde_json::to_string(&out.data).unwrap(),
                ..current
            };
            let mut resp = Vec::new();
            scim::write_resource(&mut resp, &written, &none, BASE).unwrap();
            resp
        },
    );

    // Validation and rendering.
    let post = user_body(7);
    let post_bytes = serde_json::to_vec(&post).unwrap();
    r.case("post: parse + validate + serialise a user", || {
        let v: Value = serde_json::from_slice(&post_bytes).unwrap();
        let valid = resource::validate(ResourceType::User, &v).unwrap();
        serde_json::to_string(&valid.data).unwrap()
    });
    r.case(
        "render: GET by id from the D1 row (parse row + render)",
        || {
            let s = parse_row(&row, true).unwrap();
            let mut out = Vec::new();
            scim::write_resource(&mut out, &s, &none, BASE).unwrap();
            out
        },
    );
    let some = Projection::parse(
        Some("userName,emails,name.givenName"),
        None,
        Some(ResourceType::User),
    )
    .unwrap();
    r.case(
        "render: GET by id with attributes= (parse row and data, render, project)",
        || {
            let s = parse_row(&row, true).unwrap();
            let mut out = Vec::new();
            scim::write_resource(&mut out, &s, &some, BASE).unwrap();
            out
        },
    );
    let rows: Vec<Row> = (0..100).map(stored_row).collect();
    r.case("render: list page of 100 from D1 rows", || {
        // As `api::run_list` writes it: each resource straight into the body.
        let mut body = Vec::new();
        body.extend_from_slice(b"{\"totalResults\":1000,\"Resources\":[");
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            let s = parse_row(row, true).unwrap();
            scim::write_resource(&mut body, &s, &none, BASE).unwrap();
        }
        body.extend_from_slice(b"]}");
        body
    });

    if smoke {
        println!(
            "core benches: {} cases ran once (smoke test; `cargo bench` measures them)",
            r.ran
        );
    } else {
        if let Some((_, t)) = r
            .results
            .iter()
            .find(|(n, _)| n.starts_with("patch: Entra PATCH end to end"))
        {
            let ok = *t < 20e-6;
            println!(
                "\ntarget: Entra PATCH parse+apply+render < 20 µs: {} ({})",
                if ok { "met" } else { "MISSED" },
                human(*t)
            );
        }
    }
}
