//! What a filter or sort on an undeclared attribute costs at 100,000 users (issue 12 item 6):
//! `cargo test --release --lib undeclared_filter_timing -- --ignored --nocapture` seeds
//! Entra-shaped users carrying a custom extension into SQLite with the D1 migrations, then
//! prints, per filter, the median time of a first page of 100 (with its total, one
//! statement, as `Store::list` plans it), the match count and the query plan. Measurement,
//! not a test of speed; docs/PERFORMANCE.md records the figures.

use super::{ListQuery, Store};
use crate::proto::schema::ResourceType;
use crate::store::sql::Stmt;
use crate::store::Db;
use crate::testing::{block_on, SqliteDb};
use serde_json::Value;

const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
const VENDOR: &str = "urn:example:acme:2.0:Profile";

/// 100,000 users shaped like the benchmark's Entra user (bench/bench.mjs), each with Entra's
/// custom extension (1,000 distinct values) and every tenth with a vendor extension holding a
/// multi-valued complex attribute.
fn seed(db: &SqliteDb, n: usize) {
    let sql = format!(
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {n}) \
         INSERT INTO resources (tenant, id, type, data, created, modified, version) \
         SELECT 'default', printf('%08x-user', (i * 2654435761) % 4294967296), 'User', \
           json_object('userName', 'user' || i || '@contoso.com', \
             'externalId', printf('00000000-0000-4000-8000-%012d', i), 'active', json('true'), \
             'displayName', 'User ' || i, 'title', 'Engineer ' || (i % 50), \
             'name', json_object('givenName', 'Given' || i, 'familyName', 'Family' || i), \
             'emails', json_array(json_object('value', 'user' || i || '@contoso.com', 'type', 'work', 'primary', json('true'))), \
             'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User', \
               json_object('employeeNumber', '' || i, 'department', 'Engineering', 'costCenter', 'CC-100'), \
             '{CUSTOM}', json_object('CustomAttribute', 'cv-' || (i % 1000), 'Level', i % 7), \
             '{VENDOR}', CASE WHEN i % 10 = 0 THEN json_object('devices', json_array( \
               json_object('type', 'laptop', 'serial', 'L-' || i), \
               json_object('type', 'phone', 'serial', 'P-' || (i % 5000)))) END), \
           strftime('%Y-%m-%dT%H:%M:%fZ', 1700000000 + i, 'unixepoch'), \
           strftime('%Y-%m-%dT%H:%M:%fZ', 1700000000 + i, 'unixepoch'), 1 \
         FROM seq"
    );
    block_on(db.batch(vec![Stmt::new(sql, vec![])])).expect("seed users");
}

fn page(filter: Option<&str>, sort: Option<&str>) -> ListQuery {
    let rt = Some(ResourceType::User);
    let mut q = ListQuery {
        rt,
        start_index: 1,
        count: 100,
        order: sort.map(|s| crate::store::query::sort_sql(s, rt).expect("sortable")),
        ..ListQuery::default()
    };
    if let Some(f) = filter {
        let parsed = crate::proto::filter::parse(f).expect("filter parses");
        q.where_sql =
            Some(crate::store::query::where_sql(&parsed, rt, &mut q.params).expect("plans"));
    }
    q
}

fn plan_of(db: &SqliteDb, q: &ListQuery) -> (usize, String) {
    let stmts = crate::store::list::plan("default", q).stmts;
    let last = stmts.last().expect("a page statement");
    let explain = Stmt::new(
        format!("EXPLAIN QUERY PLAN {}", last.sql),
        last.params.clone(),
    );
    let rows = block_on(db.batch(vec![explain])).expect("explain");
    let plan = rows
        .first()
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("detail").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("; ");
    (stmts.len(), plan)
}

#[test]
#[ignore]
fn undeclared_filter_timing() {
    let db = SqliteDb::new();
    let started = std::time::Instant::now();
    seed(&db, 100_000);
    println!("seeded 100,000 users in {:?}", started.elapsed());
    let bytes = db.query("SELECT avg(length(data)) AS n FROM resources");
    println!(
        "average data: {:?} bytes",
        bytes.first().and_then(|r| r.get("n"))
    );
    let c = CUSTOM;
    let v = VENDOR;
    let cases: Vec<(String, Option<String>)> = vec![
        ("userName eq \"user7919@contoso.com\"".into(), None),
        ("title eq \"Engineer 7\"".into(), None),
        (format!("{c}:CustomAttribute eq \"cv-777\""), None),
        (format!("{c}:customattribute eq \"no such value\""), None),
        (format!("{c}:Level gt 5"), None),
        (format!("{c}:CustomAttribute pr"), None),
        (
            format!("{v}:devices[type eq \"phone\" and serial eq \"P-77\"]"),
            None,
        ),
        (
            format!("{c}:CustomAttribute eq \"cv-777\" and userName sw \"user1\""),
            None,
        ),
        ("title pr".into(), Some(format!("{c}:CustomAttribute"))),
        (
            format!("{c}:Level eq 3"),
            Some(format!("{c}:CustomAttribute")),
        ),
    ];
    let store = Store::new(&db, "default");
    for (filter, sort) in cases {
        let q = page(Some(&filter), sort.as_deref());
        let mut times = Vec::new();
        let mut total = 0;
        for _ in 0..5 {
            let t = std::time::Instant::now();
            let p = block_on(store.list(&q)).expect("list");
            times.push(t.elapsed());
            total = p.total;
        }
        times.sort();
        let (statements, plan) = plan_of(&db, &q);
        println!(
            "filter={filter} sortBy={sort:?}: median {:?} (min {:?}), totalResults {total}, \
             {statements} statement(s)\n  plan: {plan}",
            times[times.len() / 2],
            times[0]
        );
    }
}
