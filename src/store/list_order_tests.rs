//! Sorted list pages (`sortBy`): the order they return, and that SQLite reads it off an index
//! instead of sorting every matching resource first.

use super::{Db, DbError, ListPage, ListQuery, Row, Store};
use crate::proto::schema::ResourceType;
use crate::store::cursor::Position;
use crate::store::sql::Stmt;
use crate::testing::{block_on, SqliteDb};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::cmp::Ordering;

const USER: Option<ResourceType> = Some(ResourceType::User);
const GROUP: Option<ResourceType> = Some(ResourceType::Group);

/// A `Db` that records the query plan of every page statement (the one selecting `_rowid`)
/// before running the batch.
struct Planned {
    db: SqliteDb,
    plans: RefCell<Vec<(String, String)>>,
}

impl Planned {
    fn new() -> Planned {
        Planned {
            db: SqliteDb::new(),
            plans: RefCell::new(Vec::new()),
        }
    }

    /// The plan of the last page statement and its SQL.
    fn last_page_plan(&self) -> (String, String) {
        self.plans
            .borrow()
            .last()
            .cloned()
            .expect("a page statement ran")
    }
}

impl Db for Planned {
    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<Vec<Row>>, DbError> {
        for s in stmts.iter().filter(|s| s.sql.contains("AS _rowid")) {
            let explain = Stmt::new(format!("EXPLAIN QUERY PLAN {}", s.sql), s.params.clone());
            let rows = self.db.batch(vec![explain]).await?;
            let plan = rows[0]
                .iter()
                .filter_map(|r| r.get("detail").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("; ");
            self.plans.borrow_mut().push((s.sql.clone(), plan));
        }
        self.db.batch(stmts).await
    }
}

/// One seeded resource.
struct Seed {
    id: String,
    rt: ResourceType,
    data: serde_json::Map<String, Value>,
    created: String,
    modified: String,
}

fn insert(db: &impl Db, tenant: &str, seeds: &[Seed]) {
    let stmts = seeds
        .iter()
        .map(|s| {
            Stmt::new(
                "INSERT INTO resources (tenant, id, type, data, created, modified, version) \
                 VALUES (?, ?, ?, ?, ?, ?, 1)",
                vec![
                    tenant.into(),
                    s.id.as_str().into(),
                    s.rt.name().into(),
                    Value::Object(s.data.clone()).to_string().into(),
                    s.created.as_str().into(),
                    s.modified.as_str().into(),
                ],
            )
        })
        .collect();
    block_on(db.batch(stmts)).expect("seed");
}

fn query(
    rt: Option<ResourceType>,
    sort: &str,
    descending: bool,
    filter: Option<&str>,
) -> ListQuery {
    let mut q = ListQuery {
        rt,
        order: Some(crate::store::query::sort_sql(sort, rt).expect("sortable")),
        descending,
        start_index: 1,
        count: 2,
        ..ListQuery::default()
    };
    if let Some(f) = filter {
        let parsed = crate::proto::filter::parse(f).expect("filter parses");
        q.where_sql =
            Some(crate::store::query::where_sql(&parsed, rt, &mut q.params).expect("plans"));
    }
    q
}

fn list(db: &impl Db, q: &ListQuery) -> ListPage {
    block_on(Store::new(db, "default").list(q)).expect("list")
}

/// Every id of the list, read in pages of `q.count` by startIndex/count.
fn all_by_index(db: &impl Db, q: &ListQuery) -> Vec<String> {
    let mut q = q.clone();
    let mut out = Vec::new();
    loop {
        let page = list(db, &q);
        if page.items.is_empty() {
            assert_eq!(out.len() as i64, page.total, "every resource was listed");
            return out;
        }
        out.extend(page.items.into_iter().map(|s| s.id));
        q.start_index += q.count;
    }
}

/// Every id of the list, read in pages of `q.count` by cursor.
fn all_by_cursor(db: &impl Db, q: &ListQuery) -> Vec<String> {
    let mut q = q.clone();
    q.cursor_mode = true;
    q.after = None;
    let mut out = Vec::new();
    loop {
        let page = list(db, &q);
        out.extend(page.items.into_iter().map(|s| s.id));
        match page.next {
            Some(next) => q.after = Some(next),
            None => return out,
        }
    }
}

// ---- the order --------------------------------------------------------------------------------

fn stamp(n: u32) -> String {
    format!("2026-01-01T00:00:{:02}.{:03}Z", n / 1000, n % 1000)
}

/// Users and groups with and without each sort value, values differing only in case (ties
/// under NOCASE), non-ASCII values (NOCASE folds ASCII only), and equal timestamps.
fn order_world() -> Vec<Seed> {
    let display = [
        Some("alice"),
        None,
        Some("Alice"),
        Some("bob"),
        Some("ALICE"),
        None,
        Some("Émile"),
        Some("émile"),
        Some("Zed"),
        None,
        Some("bob"),
        Some("_under"),
        Some("a"),
        None,
    ];
    let external = [
        None,
        Some("E-1"),
        Some("e-1"),
        None,
        Some("E-1"),
        Some("x"),
        None,
        Some("É"),
        Some("e-2"),
        Some("x"),
        None,
        Some("A"),
        None,
        Some("a"),
    ];
    let user_names = [
        "mike", "Anna", "zoe", "Émile", "bert", "Carl", "anna2", "émile2", "_x", "Zz", "b",
        "ALBERT", "a", "yves",
    ];
    let titles = [
        "keep", "drop", "KEEP", "", "keep", "x", "Keep", "drop", "keep", "", "KEEP", "keep", "no",
        "keep",
    ];
    let mut seeds = Vec::new();
    for i in 0..user_names.len() {
        let mut data = serde_json::Map::new();
        data.insert("userName".into(), json!(user_names[i]));
        if let Some(d) = display[i] {
            data.insert("displayName".into(), json!(d));
        }
        if let Some(e) = external[i] {
            data.insert("externalId".into(), json!(e));
        }
        if !titles[i].is_empty() {
            data.insert("title".into(), json!(titles[i]));
        }
        seeds.push(Seed {
            // ids differing only in case sort by code point (id is caseExact)
            id: [format!("u{i:02}"), format!("U{i:02}"), format!("{i:02}-u")][i % 3].clone(),
            rt: ResourceType::User,
            data,
            created: stamp((i as u32 * 7) % 5),
            modified: stamp((i as u32 * 3) % 4),
        });
    }
    let groups: [(&str, Option<&str>); 5] = [
        ("Admins", Some("E-1")),
        ("admins2", None),
        ("Émile group", Some("g")),
        ("zeta", None),
        ("ALPHA", Some("e-1")),
    ];
    for (j, (name, ext)) in groups.iter().enumerate() {
        let mut data = serde_json::Map::new();
        data.insert("displayName".into(), json!(name));
        if let Some(e) = ext {
            data.insert("externalId".into(), json!(e));
        }
        seeds.push(Seed {
            id: format!("g{j}"),
            rt: ResourceType::Group,
            data,
            created: stamp(j as u32 % 2),
            modified: stamp(3),
        });
    }
    seeds
}

/// The RFC 7644 order, computed in Rust: resources with a value first, ordered by it
/// (ASCII case folded for case-insensitive attributes, as SQLite's NOCASE does), then those
/// without; rowid (insertion order) breaks ties; descending reverses all but the
/// missing-last rule.
fn reference(
    seeds: &[Seed],
    rt: Option<ResourceType>,
    sort: &str,
    descending: bool,
    keep: impl Fn(&Seed) -> bool,
) -> Vec<String> {
    let key = |s: &Seed| -> Option<String> {
        let v = match sort {
            "id" => Some(s.id.clone()),
            "meta.created" => Some(s.created.clone()),
            "meta.lastModified" => Some(s.modified.clone()),
            "userName" if s.rt == ResourceType::Group => None,
            attr => s.data.get(attr).and_then(Value::as_str).map(str::to_string),
        };
        let nocase = matches!(sort, "userName" | "displayName" | "title");
        v.map(|v| if nocase { v.to_ascii_lowercase() } else { v })
    };
    let mut rows: Vec<(Option<String>, usize, &Seed)> = seeds
        .iter()
        .enumerate()
        .filter(|(_, s)| rt.is_none_or(|t| s.rt == t) && keep(s))
        .map(|(rowid, s)| (key(s), rowid, s))
        .collect();
    rows.sort_by(|a, b| {
        let by_value = match (&a.0, &b.0) {
            (Some(x), Some(y)) => x.as_bytes().cmp(y.as_bytes()),
            (Some(_), None) => return Ordering::Less,
            (None, Some(_)) => return Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        let o = by_value.then(a.1.cmp(&b.1));
        if descending {
            o.reverse()
        } else {
            o
        }
    });
    rows.into_iter().map(|r| r.2.id.clone()).collect()
}

const SORTS: [&str; 7] = [
    "userName",
    "displayName",
    "externalId",
    "meta.lastModified",
    "meta.created",
    "id",
    "title",
];

#[test]
fn sorted_pages_follow_the_reference_order_in_both_paging_styles() {
    let db = SqliteDb::new();
    let seeds = order_world();
    insert(&db, "default", &seeds);
    // Another tenant's resources must never show up, whatever index a page walks.
    let other: Vec<Seed> = order_world()
        .into_iter()
        .map(|mut s| {
            s.id = format!("t2-{}", s.id);
            s
        })
        .collect();
    db.query("INSERT INTO tenants (id, name) VALUES ('t2', 'Second')");
    insert(&db, "t2", &other);
    let has_external_id = |s: &Seed| s.data.contains_key("externalId");
    let mut checked = 0;
    for rt in [USER, GROUP, None] {
        for sort in SORTS {
            if crate::store::query::sort_sql(sort, rt).is_err() {
                continue; // userName and title are not Group attributes
            }
            for descending in [false, true] {
                for filtered in [false, true] {
                    let filter = filtered.then_some("externalId pr");
                    let mut q = query(rt, sort, descending, filter);
                    let want = if filtered {
                        reference(&seeds, rt, sort, descending, has_external_id)
                    } else {
                        reference(&seeds, rt, sort, descending, |_| true)
                    };
                    let what =
                        format!("{rt:?} sortBy={sort} descending={descending} filter={filter:?}");
                    for count in [1, 2, 3] {
                        q.count = count;
                        assert_eq!(
                            all_by_index(&db, &q),
                            want,
                            "index paging, count {count}: {what}"
                        );
                        assert_eq!(
                            all_by_cursor(&db, &q),
                            want,
                            "cursor paging, count {count}: {what}"
                        );
                    }
                    // One page holding everything agrees too.
                    q.count = 1000;
                    let page = list(&db, &q);
                    let ids: Vec<String> = page.items.into_iter().map(|s| s.id).collect();
                    assert_eq!(ids, want, "{what}");
                    checked += 1;
                }
            }
        }
    }
    // Users and root searches: every key; groups have no userName or title.
    assert_eq!(checked, (7 + 5 + 7) * 4);
}

#[test]
fn a_cursor_positioned_on_a_missing_value_continues_with_the_missing_ones() {
    let db = SqliteDb::new();
    let seeds = order_world();
    insert(&db, "default", &seeds);
    for descending in [false, true] {
        let want = reference(&seeds, USER, "displayName", descending, |_| true);
        let mut q = query(USER, "displayName", descending, None);
        q.cursor_mode = true;
        q.count = 50;
        // The first resource without a displayName, in this order.
        let first_missing = want
            .iter()
            .position(|id| {
                seeds
                    .iter()
                    .any(|s| &s.id == id && !s.data.contains_key("displayName"))
            })
            .expect("some lack it");
        let rowid = |id: &str| {
            db.query(&format!(
                "SELECT rowid AS n FROM resources WHERE tenant = 'default' AND id = '{id}'"
            ))[0]["n"]
                .as_i64()
                .expect("rowid")
        };
        q.after = Some(Position {
            null: true,
            value: Value::Null,
            rowid: rowid(&want[first_missing]),
        });
        let ids: Vec<String> = list(&db, &q).items.into_iter().map(|s| s.id).collect();
        assert_eq!(ids, want[first_missing + 1..], "descending={descending}");
    }
}

// ---- the plan -------------------------------------------------------------------------------

fn assert_walks_an_index(db: &Planned, what: &str) {
    let (sql, plan) = db.last_page_plan();
    assert!(
        plan.contains("INDEX") && !plan.contains("TEMP B-TREE"),
        "{what}: {plan}\n{sql}"
    );
}

/// Many users (so that a sort would be costly) and a few groups, in random order of every
/// sort key.
fn seed_many(db: &impl Db, users: usize) {
    let n = users;
    block_on(db.batch(vec![Stmt::new(
        format!(
            "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {n}) \
             INSERT INTO resources (tenant, id, type, data, created, modified, version) \
             SELECT 'default', printf('%08x-user', (i * 2654435761) % 4294967296), 'User', \
               CASE i % 3 WHEN 0 THEN json_object('userName', 'user' || ((i * 7919) % 100003) || '@Example.com') \
               ELSE json_object('userName', 'user' || ((i * 7919) % 100003) || '@Example.com', \
                                'displayName', char(65 + i % 26) || 'name ' || (i % 1000), \
                                'externalId', 'ext-' || ((i * 31) % 100003)) END, \
               strftime('%Y-%m-%dT%H:%M:%fZ', 1700000000 + (i * 104729) % 100003, 'unixepoch'), \
               strftime('%Y-%m-%dT%H:%M:%fZ', 1700000000 + (i * 15485863) % 100003, 'unixepoch'), 1 \
             FROM seq"
        ),
        vec![],
    )]))
    .expect("seed users");
    block_on(db.batch(vec![Stmt::new(
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 21) \
         INSERT INTO resources (tenant, id, type, data, created, modified, version) \
         SELECT 'default', 'group-' || i, 'Group', json_object('displayName', 'Group ' || i), \
           '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 1 FROM seq",
        vec![],
    )]))
    .expect("seed groups");
}

#[test]
fn sorted_pages_are_read_off_an_index() {
    let db = Planned::new();
    seed_many(&db, 2000);
    let cases: [(Option<ResourceType>, &str); 7] = [
        (USER, "userName"),
        (USER, "displayName"),
        (GROUP, "displayName"),
        (USER, "externalId"),
        (GROUP, "externalId"),
        (USER, "meta.lastModified"),
        (GROUP, "meta.lastModified"),
    ];
    // Without statistics (as D1 starts) and with them (after `ANALYZE` / `PRAGMA optimize`).
    for (analyzed, (rt, sort)) in [false, true]
        .into_iter()
        .flat_map(|a| cases.map(|c| (a, c)))
    {
        if analyzed && sort == "userName" {
            db.db.query("ANALYZE");
        }
        for descending in [false, true] {
            let what = format!("{rt:?} sortBy={sort} descending={descending} analyzed={analyzed}");
            let mut q = query(rt, sort, descending, None);
            q.count = 100;
            // Index paging: the first page and a later one.
            list(&db, &q);
            assert_walks_an_index(&db, &format!("{what}, first page"));
            q.start_index = 301;
            list(&db, &q);
            assert_walks_an_index(&db, &format!("{what}, startIndex=301"));
            // Cursor paging: the first page and its continuation.
            q.cursor_mode = true;
            q.count = 3;
            let first = list(&db, &q);
            assert_walks_an_index(&db, &format!("{what}, first cursor page"));
            q.after = Some(first.next.expect("more pages"));
            list(&db, &q);
            assert_walks_an_index(&db, &format!("{what}, cursor continuation"));
            // ... starting at the position (a range seek), not at the first entry.
            let (sql, plan) = db.last_page_plan();
            let range = if descending { "<?)" } else { ">?)" };
            assert!(
                plan.contains(range),
                "{what}, cursor continuation: {plan}\n{sql}"
            );
            // Continuing among the resources that lack the value (their own index walk).
            q.after = Some(Position {
                null: true,
                value: Value::Null,
                rowid: 5,
            });
            let page = list(&db, &q);
            if sort.starts_with("meta.") || sort == "id" {
                // `IS NULL` on a NOT NULL column is false: SQLite reads nothing.
                assert!(page.items.is_empty(), "{what}");
            } else if analyzed {
                // With statistics SQLite may read the table in rowid order instead: in order
                // too (all sort values are NULL here), so no sort either way.
                let (sql, plan) = db.last_page_plan();
                assert!(!plan.contains("TEMP B-TREE"), "{what}: {plan}\n{sql}");
            } else {
                assert_walks_an_index(&db, &format!("{what}, cursor among missing values"));
            }
        }
    }
}

#[test]
fn filtered_sorted_pages_keep_using_the_filter_index() {
    // With a selective filter, walking the sort index would visit every resource; the filter's
    // own index must stay in charge (as before sorted pages were read off indexes).
    let db = Planned::new();
    seed_many(&db, 2000);
    for (filter, index) in [
        (
            "userName eq \"user7919@example.com\"",
            "resources_user_name",
        ),
        ("externalId eq \"ext-31\"", "resources_external_id"),
    ] {
        for sort in ["userName", "displayName", "meta.lastModified"] {
            for cursor in [false, true] {
                let mut q = query(USER, sort, true, Some(filter));
                assert_eq!(list(&db, &q).total, 1, "{filter}");
                // Pages that count separately, so the page statement has no count subquery.
                if cursor {
                    q.cursor_mode = true;
                    q.after = Some(Position {
                        null: false,
                        value: json!("zzz"),
                        rowid: 1_000_000,
                    });
                } else {
                    q.start_index = 2;
                }
                list(&db, &q);
                let (_, plan) = db.last_page_plan();
                assert!(
                    plan.contains(index) && !plan.contains("resources_by_type"),
                    "{filter} sortBy={sort}: {plan}"
                );
            }
        }
    }
}

/// Measurement, not a test of speed: `cargo test --release --lib sorted_page_timing --
/// --ignored --nocapture` seeds 100,000 users and prints the time of sorted pages of 100 and
/// their query plans, and what the sort index of migration 0008 adds to a create and an update.
#[test]
#[ignore]
fn sorted_page_timing() {
    let db = Planned::new();
    seed_many(&db, 100_000);
    let time = |q: &ListQuery| {
        let mut times = Vec::new();
        let mut page = None;
        for _ in 0..15 {
            let started = std::time::Instant::now();
            page = Some(block_on(Store::new(&db.db, "default").list(q)).expect("list"));
            times.push(started.elapsed());
        }
        times.sort();
        (times[times.len() / 2], page.expect("ran"))
    };
    let cases: [(Option<ResourceType>, &str, bool, Option<&str>); 10] = [
        (USER, "userName", false, None),
        (USER, "userName", true, None),
        (USER, "displayName", false, None),
        (USER, "displayName", true, None),
        (USER, "externalId", false, None),
        (USER, "meta.lastModified", true, None),
        (USER, "meta.created", false, None),
        (USER, "id", false, None),
        (
            USER,
            "userName",
            false,
            Some("userName eq \"user7919@example.com\""),
        ),
        (USER, "userName", false, Some("displayName sw \"A\"")),
    ];
    for (rt, sort, descending, filter) in cases {
        let mut q = query(rt, sort, descending, filter);
        q.count = 100;
        let (first, _) = time(&q);
        list(&db, &q);
        let (_, plan) = db.last_page_plan();
        q.cursor_mode = true;
        let (_, page) = time(&q);
        q.after = page.next;
        let (next, _) = time(&q);
        list(&db, &q);
        let (_, next_plan) = db.last_page_plan();
        let dir = if descending { "desc" } else { "asc" };
        println!(
            "sortBy={sort} {dir} filter={filter:?}: first page {first:?}, cursor continuation {next:?}\n  plan: {plan}\n  continuation plan: {next_plan}"
        );
    }
    let no_sort = ListQuery {
        rt: USER,
        start_index: 1,
        count: 100,
        ..ListQuery::default()
    };
    let (t, _) = time(&no_sort);
    println!("unsorted first page (reference): {t:?}");
    // What the sort index of migration 0008 costs a write: POST-shaped inserts and
    // PATCH-shaped updates at 100,000 users, alternating with a twin database without them.
    let without = SqliteDb::new();
    seed_many(&without, 100_000);
    without.query("DROP INDEX resources_by_modified");
    let dbs = [&db.db, &without];
    let mut creates = [Vec::new(), Vec::new()];
    let mut updates = [Vec::new(), Vec::new()];
    for i in 0..400 {
        for (k, d) in dbs.iter().enumerate() {
            let store = Store::new(*d, "default");
            let mut data = serde_json::Map::new();
            data.insert("userName".into(), json!(format!("new{i}@example.com")));
            data.insert("displayName".into(), json!(format!("New {i}")));
            data.insert("externalId".into(), json!(format!("new-ext-{i}")));
            let id = format!("new-{i}");
            let started = std::time::Instant::now();
            block_on(store.create(
                ResourceType::User,
                &id,
                &data,
                &[],
                "2026-02-01T00:00:00.000Z",
                &[],
            ))
            .expect("create");
            creates[k].push(started.elapsed());
            data.insert("title".into(), json!("changed"));
            let started = std::time::Instant::now();
            let written = block_on(store.update(&super::Update {
                rt: ResourceType::User,
                id: &id,
                expected: None,
                data: Some(super::NewData::Attributes(&data)),
                members: &[],
                now: "2026-02-02T00:00:00.000Z",
                with_related: false,
                tolerances: &[],
            }))
            .expect("update");
            assert!(matches!(written, super::Write::Done(_)));
            updates[k].push(started.elapsed());
        }
    }
    for v in creates.iter_mut().chain(updates.iter_mut()) {
        v.sort();
    }
    println!(
        "create one user at 100k: median {:?} with the 0008 index, {:?} without",
        creates[0][200], creates[1][200]
    );
    println!(
        "update one user at 100k: median {:?} with the 0008 index, {:?} without",
        updates[0][200], updates[1][200]
    );
}
