//! Differential test: the SQL from `where_sql`, run by the SQLite that D1 runs, must select
//! exactly the resources that `filter::matches` accepts on their rendered JSON — for thousands
//! of random filters over random users and groups in two tenants.
//! Sorted lists (`sort_sql` paged by `Store::list`, with and without random filters) must
//! return them in the order a sort in Rust over the rendered JSON gives.
//!
//! Ids are shared across tenants and differ only in case within one, so a membership subquery
//! that forgot `m.tenant = r.tenant`, or an id compared case-insensitively, shows up as a
//! mismatch.

use super::tests::{open_db, query_ids};
use super::*;
use crate::proto::filter::tests::XorShift;
use crate::proto::schema::ENTERPRISE_USER_SCHEMA;
use crate::proto::time;
use rusqlite::Connection;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

const TENANTS: [&str; 2] = ["default", "t2"];
const USERS_PER_TENANT: usize = 150;
const GROUPS_PER_TENANT: usize = 20;

/// Value pools the filter generator draws literals from, so that filters hit real data.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pool {
    UserName,
    Display,
    Given,
    Family,
    Title,
    ExternalId,
    Id,
    Email,
    EmailType,
    Phone,
    Department,
    EmployeeNumber,
    GroupName,
    ResourceType,
    Direct,
    /// Strings stored in undeclared attributes (`undeclared.rs`).
    Loose,
    /// Strings stored in a declared extension (`declared.rs`).
    Declared,
}
const POOLS: usize = 17;

struct Resource {
    tenant: &'static str,
    id: String,
    rt: ResourceType,
    data: Map<String, Value>,
    created: String,
    modified: String,
    /// As the API shows it; filled in once the world is complete.
    rendered: Value,
}

struct World {
    resources: Vec<Resource>,
    /// (tenant, group_id, member_id)
    members: Vec<(&'static str, String, String)>,
    pools: Vec<Vec<String>>,
    stamps: Vec<i64>,
}

impl World {
    fn remember(&mut self, pool: Pool, v: &str) {
        self.pools[pool as usize].push(v.to_string());
    }

    fn find(&self, tenant: &str, id: &str) -> Option<&Resource> {
        self.resources
            .iter()
            .find(|r| r.tenant == tenant && r.id == id)
    }

    /// The resource as `crate::proto::resource::render` shows it (with related resources loaded).
    fn render(&self, r: &Resource) -> Value {
        let mut out = r.data.clone();
        out.insert("schemas".into(), json!([r.rt.core_schema().id]));
        out.insert("id".into(), json!(r.id));
        let related: Vec<Value> = match r.rt {
            ResourceType::Group => self
                .members
                .iter()
                .filter(|(t, g, _)| *t == r.tenant && *g == r.id)
                .filter_map(|(t, _, m)| self.find(t, m))
                .map(|m| {
                    let display = m.data.get("displayName").or_else(|| m.data.get("userName"));
                    let mut e = json!({"value": m.id, "$ref": format!("https://h/{}", m.id), "type": m.rt.name()});
                    if let (Some(d), Some(obj)) = (display, e.as_object_mut()) {
                        obj.insert("display".into(), d.clone());
                    }
                    e
                })
                .collect(),
            ResourceType::User => self
                .members
                .iter()
                .filter(|(t, _, m)| *t == r.tenant && *m == r.id)
                .filter_map(|(t, g, _)| self.find(t, g))
                .map(|g| {
                    let mut e = json!({"value": g.id, "$ref": format!("https://h/{}", g.id), "type": "direct"});
                    if let (Some(d), Some(obj)) = (g.data.get("displayName"), e.as_object_mut()) {
                        obj.insert("display".into(), d.clone());
                    }
                    e
                })
                .collect(),
        };
        if !related.is_empty() {
            let key = if r.rt == ResourceType::Group {
                "members"
            } else {
                "groups"
            };
            out.insert(key.into(), Value::Array(related));
        }
        out.insert(
            "meta".into(),
            json!({"resourceType": r.rt.name(), "created": r.created, "lastModified": r.modified,
                   "location": format!("https://h/{}", r.id), "version": "W/\"1\""}),
        );
        Value::Object(out)
    }
}

fn flip_case(rng: &mut XorShift, s: &str) -> String {
    s.chars()
        .map(|c| {
            if rng.below(2) == 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// A random instant between 2014 and 2027.
fn random_millis(rng: &mut XorShift) -> i64 {
    1_388_534_400_000 + (rng.next_u64() % 410_000_000_000) as i64
}

fn build_world(rng: &mut XorShift) -> World {
    let mut w = World {
        resources: Vec::new(),
        members: Vec::new(),
        pools: vec![Vec::new(); POOLS],
        stamps: Vec::new(),
    };
    for t in ["User", "Group"] {
        w.remember(Pool::ResourceType, t);
    }
    w.remember(Pool::Direct, "direct");
    for tenant in TENANTS {
        let user_ids: Vec<String> = (0..USERS_PER_TENANT).map(user_id).collect();
        for (i, id) in user_ids.iter().enumerate() {
            let data = random_user(rng, &mut w, i, &user_ids);
            push_resource(rng, &mut w, tenant, id.clone(), ResourceType::User, data);
        }
        let group_ids: Vec<String> = (0..GROUPS_PER_TENANT)
            .map(|j| [format!("g-{j:02}"), format!("G-{j:02}")][j % 2].clone())
            .collect();
        for (j, id) in group_ids.iter().enumerate() {
            let data = random_group(rng, &mut w, j);
            push_resource(rng, &mut w, tenant, id.clone(), ResourceType::Group, data);
            let mut members = BTreeSet::new();
            for _ in 0..rng.below(14) {
                members.insert(rng.pick(&user_ids).clone());
            }
            if j > 0 && rng.chance(30) {
                members.insert(group_ids[rng.below(j)].clone());
            }
            for m in members {
                w.members.push((tenant, id.clone(), m));
            }
        }
    }
    render_all(&mut w);
    w
}

fn render_all(w: &mut World) {
    let rendered: Vec<Value> = w.resources.iter().map(|r| w.render(r)).collect();
    for (r, v) in w.resources.iter_mut().zip(rendered) {
        r.rendered = v;
    }
}

/// Users whose stored data breaks the schema's *structure* (the store never writes these, but
/// a bug or a manual fix-up could): elements that are not objects, an object, a scalar or null
/// where an array belongs, a string or array where an object belongs. The SQL must not fail on
/// them and must still agree with the evaluator. (Scalars of the wrong JSON type, such as a
/// number where a string belongs, are outside the contract: `resource::validate` rejects them,
/// and SQLite orders mixed types differently from JSON.)
fn add_malformed_users(rng: &mut XorShift, w: &mut World) {
    let shapes = [
        json!({"userName": "odd-1", "emails": ["plain@x.org", 5, null, true, [{"value": "deep@x.org"}], {"value": "ok@x.org"}]}),
        json!({"userName": "odd-2", "emails": {"work": {"value": "obj@x.org", "type": "work"}, "home": "str@x.org"}}),
        json!({"userName": "odd-3", "emails": "scalar@x.org", "phoneNumbers": [[]], "name": "just a string"}),
        json!({"userName": "odd-4", "emails": null, "name": ["Barbara"], "phoneNumbers": [{}, []]}),
        json!({"userName": "odd-5", ENTERPRISE_USER_SCHEMA: "not an object"}),
        json!({"userName": "odd-6", ENTERPRISE_USER_SCHEMA: {"manager": "u-000", "department": null}}),
    ];
    for (k, shape) in shapes.into_iter().enumerate() {
        if let Value::Object(data) = shape {
            push_resource(
                rng,
                w,
                "default",
                format!("odd-{k}"),
                ResourceType::User,
                data,
            );
        }
    }
}

/// Ids repeat across tenants and, within a tenant, some differ only by case.
fn user_id(i: usize) -> String {
    match i % 4 {
        0 => format!("u-{:03}", i / 2),
        1 => format!("U-{:03}", i / 2),
        2 => format!("usr_{i}"),
        _ => format!("{i:08x}-4b1d-8e2f-9a3c-5d6e7f8091a2"),
    }
}

fn push_resource(
    rng: &mut XorShift,
    w: &mut World,
    tenant: &'static str,
    id: String,
    rt: ResourceType,
    data: Map<String, Value>,
) {
    let created = random_millis(rng);
    let modified = created + (rng.next_u64() % 90_000_000_000) as i64;
    w.stamps.extend([created, modified]);
    w.remember(Pool::Id, &id);
    w.resources.push(Resource {
        tenant,
        id,
        rt,
        data,
        created: time::format_millis(created),
        modified: time::format_millis(modified),
        rendered: Value::Null,
    });
}

fn random_user(
    rng: &mut XorShift,
    w: &mut World,
    i: usize,
    user_ids: &[String],
) -> Map<String, Value> {
    const PREFIXES: [&str; 17] = [
        "bjensen",
        "Alice",
        "ALICE.Smith",
        "émile",
        "Émile",
        "ÆRØ",
        "zoë",
        "o'brien",
        "x%y",
        "under_score",
        "back\\slash",
        "quote\"d",
        "MixedCase",
        "ü",
        "Ü",
        "ßtraße",
        "日本",
    ];
    const DOMAINS: [&str; 5] = ["@example.com", "@EXAMPLE.com", "@Example.ORG", "", ".test"];
    const GIVEN: [&str; 8] = [
        "Barbara", "barbara", "BARBARA", "Émile", "émile", "Zoë", "Jo_hn", "100%",
    ];
    const FAMILY: [&str; 6] = ["Jensen", "jensen", "O'Brien", "Smith", "smith", "Ünal"];
    const TITLES: [&str; 5] = ["Engineer", "engineer", "Boss", "VP, Sales", "R&D lead"];
    const TYPES: [&str; 6] = ["work", "home", "other", "Work", "WORK", "mobile"];
    const DEPTS: [&str; 6] = ["Sales", "sales", "R&D", "Eng_1", "100%", "Ünits"];

    let mut d = Map::new();
    let user_name = format!("{}{i}{}", rng.pick(&PREFIXES), rng.pick(&DOMAINS));
    w.remember(Pool::UserName, &user_name);
    d.insert("userName".into(), json!(user_name));
    let given = *rng.pick(&GIVEN);
    let family = *rng.pick(&FAMILY);
    if rng.chance(75) {
        let mut name = Map::new();
        if rng.chance(80) {
            name.insert("givenName".into(), json!(given));
            w.remember(Pool::Given, given);
        }
        if rng.chance(70) {
            name.insert("familyName".into(), json!(family));
            w.remember(Pool::Family, family);
        }
        if rng.chance(30) {
            name.insert("formatted".into(), json!(format!("{given} {family}")));
        }
        d.insert("name".into(), Value::Object(name));
    } else if rng.chance(20) {
        // Shapes the store would normalise away; both back ends must still agree on them.
        d.insert(
            "name".into(),
            rng.pick(&[
                json!({}),
                json!({"givenName": null}),
                json!({"givenName": ""}),
            ])
            .clone(),
        );
    }
    if rng.chance(60) {
        let display = match rng.below(3) {
            0 => format!("{given} {family}"),
            1 => flip_case(rng, &format!("{family}, {given}")),
            _ => format!("{given}{i}"),
        };
        w.remember(Pool::Display, &display);
        d.insert("displayName".into(), json!(display));
    }
    if rng.chance(40) {
        let title = *rng.pick(&TITLES);
        w.remember(Pool::Title, title);
        d.insert("title".into(), json!(title));
    } else if rng.chance(5) {
        d.insert("title".into(), Value::Null);
    }
    if rng.chance(20) {
        d.insert("nickName".into(), json!(flip_case(rng, given)));
    }
    match rng.below(3) {
        0 => {
            d.insert("active".into(), json!(true));
        }
        1 => {
            d.insert("active".into(), json!(false));
        }
        _ => {}
    }
    let emails: Vec<Value> = (0..rng.below(4))
        .map(|_| random_email(rng, w, i, &TYPES))
        .collect();
    if !emails.is_empty() || rng.chance(5) {
        d.insert("emails".into(), Value::Array(emails));
    }
    let phones: Vec<Value> = (0..rng.below(3))
        .map(|k| {
            let value = format!("+1 555 01{:02}", (i + k) % 37);
            w.remember(Pool::Phone, &value);
            json!({"value": value, "type": rng.pick(&TYPES)})
        })
        .collect();
    if !phones.is_empty() {
        d.insert("phoneNumbers".into(), Value::Array(phones));
    }
    if rng.chance(70) {
        let ext = match rng.below(4) {
            0 => format!("ext-{i}"),
            1 => format!("EXT-{i}"),
            2 => format!("ext-{}", i % 10),
            _ => format!("é{}_%", i % 5),
        };
        w.remember(Pool::ExternalId, &ext);
        d.insert("externalId".into(), json!(ext));
    }
    if rng.chance(50) {
        let mut ent = Map::new();
        if rng.chance(70) {
            let dept = *rng.pick(&DEPTS);
            w.remember(Pool::Department, dept);
            ent.insert("department".into(), json!(dept));
        }
        if rng.chance(40) {
            let n = format!("{}", 1000 + i);
            w.remember(Pool::EmployeeNumber, &n);
            ent.insert("employeeNumber".into(), json!(n));
        }
        if rng.chance(40) {
            let mut manager = Map::new();
            manager.insert("value".into(), json!(rng.pick(user_ids)));
            if rng.chance(30) {
                manager.insert("displayName".into(), json!(format!("{given} {family}")));
            }
            ent.insert("manager".into(), Value::Object(manager));
        }
        d.insert(ENTERPRISE_USER_SCHEMA.into(), Value::Object(ent));
    }
    d
}

fn random_email(rng: &mut XorShift, w: &mut World, i: usize, types: &[&str]) -> Value {
    let mut e = Map::new();
    match rng.below(20) {
        0 => return json!({}),
        1 => {
            e.insert("value".into(), json!(""));
        }
        2..=17 => {
            let local = rng.pick(&[
                "bjensen", "BJensen", "babs", "émile", "x_y", "50%off", "a\\b",
            ]);
            let domain = rng.pick(&["example.com", "Example.COM", "jensen.org", "ünï.de"]);
            let value = format!("{local}{}@{domain}", i % 7);
            w.remember(Pool::Email, &value);
            e.insert("value".into(), json!(value));
        }
        _ => {}
    }
    if rng.chance(80) {
        let t = *rng.pick(types);
        w.remember(Pool::EmailType, t);
        e.insert("type".into(), json!(t));
    }
    match rng.below(10) {
        0..=2 => {
            e.insert("primary".into(), json!(true));
        }
        3 | 4 => {
            e.insert("primary".into(), json!(false));
        }
        _ => {}
    }
    if rng.chance(10) {
        e.insert("display".into(), json!(flip_case(rng, "Work Mail")));
    }
    Value::Object(e)
}

fn random_group(rng: &mut XorShift, w: &mut World, j: usize) -> Map<String, Value> {
    const NAMES: [&str; 8] = [
        "Admins",
        "admins-x",
        "Ädmins",
        "100% club",
        "under_score",
        "Sales",
        "R&D",
        "quote\"s",
    ];
    let mut d = Map::new();
    // Group names are unique per tenant (case-insensitively): the index suffix keeps them so.
    let name = format!("{}{j}", rng.pick(&NAMES));
    w.remember(Pool::GroupName, &name);
    d.insert("displayName".into(), json!(name));
    if rng.chance(50) {
        let ext = format!("grp-{}", j % 6);
        w.remember(Pool::ExternalId, &ext);
        d.insert("externalId".into(), json!(ext));
    }
    d
}

fn load(conn: &Connection, w: &World) {
    conn.execute("INSERT INTO tenants (id, name) VALUES ('t2', 'Second')", [])
        .expect("tenant");
    for r in &w.resources {
        conn.execute(
            "INSERT INTO resources (tenant, id, type, data, created, modified) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![r.tenant, r.id, r.rt.name(), Value::Object(r.data.clone()).to_string(), r.created, r.modified],
        )
        .unwrap_or_else(|e| panic!("insert {}: {e}", r.id));
    }
    for (t, g, m) in &w.members {
        conn.execute(
            "INSERT INTO members (tenant, group_id, member_id) VALUES (?1, ?2, ?3)",
            rusqlite::params![t, g, m],
        )
        .expect("member");
    }
}

// ---- random filters -------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Ty {
    Str(Pool),
    Bool,
    Date,
    /// A multi-valued complex attribute compared directly (its `value`).
    Multi(Pool),
    /// Complex: `pr`, `eq null`, `ne null` only.
    Complex,
    /// No schema declares it: literals of every JSON type, with every operator.
    Loose,
    /// A declared integer or decimal attribute (`declared.rs`).
    Num,
}

const USER_ATTRS: &[(&str, Ty)] = &[
    ("userName", Ty::Str(Pool::UserName)),
    (
        "urn:ietf:params:scim:schemas:core:2.0:User:userName",
        Ty::Str(Pool::UserName),
    ),
    ("displayName", Ty::Str(Pool::Display)),
    ("name.givenName", Ty::Str(Pool::Given)),
    ("name.familyName", Ty::Str(Pool::Family)),
    ("name.formatted", Ty::Str(Pool::Given)),
    ("name", Ty::Complex),
    ("title", Ty::Str(Pool::Title)),
    ("nickName", Ty::Str(Pool::Given)),
    ("externalId", Ty::Str(Pool::ExternalId)),
    ("id", Ty::Str(Pool::Id)),
    ("active", Ty::Bool),
    ("meta.created", Ty::Date),
    ("meta.lastModified", Ty::Date),
    ("meta.resourceType", Ty::Str(Pool::ResourceType)),
    ("emails", Ty::Multi(Pool::Email)),
    ("emails.value", Ty::Str(Pool::Email)),
    ("emails.type", Ty::Str(Pool::EmailType)),
    ("emails.primary", Ty::Bool),
    ("emails.display", Ty::Str(Pool::Display)),
    ("phoneNumbers", Ty::Multi(Pool::Phone)),
    ("phoneNumbers.type", Ty::Str(Pool::EmailType)),
    (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        Ty::Str(Pool::Department),
    ),
    ("department", Ty::Str(Pool::Department)),
    (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        Ty::Str(Pool::EmployeeNumber),
    ),
    (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        Ty::Str(Pool::Id),
    ),
    (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        Ty::Complex,
    ),
    ("groups", Ty::Multi(Pool::Id)),
    ("groups.value", Ty::Str(Pool::Id)),
    ("groups.display", Ty::Str(Pool::GroupName)),
    ("groups.type", Ty::Str(Pool::Direct)),
];

const GROUP_ATTRS: &[(&str, Ty)] = &[
    ("displayName", Ty::Str(Pool::GroupName)),
    (
        "urn:ietf:params:scim:schemas:core:2.0:Group:displayName",
        Ty::Str(Pool::GroupName),
    ),
    ("externalId", Ty::Str(Pool::ExternalId)),
    ("id", Ty::Str(Pool::Id)),
    ("meta.created", Ty::Date),
    ("meta.resourceType", Ty::Str(Pool::ResourceType)),
    ("members", Ty::Multi(Pool::Id)),
    ("members.value", Ty::Str(Pool::Id)),
    ("members.display", Ty::Str(Pool::Display)),
    ("members.type", Ty::Str(Pool::ResourceType)),
];

/// A value path's attribute (multi-valued or complex) and its sub-attributes.
type ValuePathSpec = (&'static str, &'static [(&'static str, Ty)]);

const USER_VALUE_PATHS: &[ValuePathSpec] = &[
    (
        "emails",
        &[
            ("value", Ty::Str(Pool::Email)),
            ("type", Ty::Str(Pool::EmailType)),
            ("primary", Ty::Bool),
            ("display", Ty::Str(Pool::Display)),
        ],
    ),
    (
        "phoneNumbers",
        &[
            ("value", Ty::Str(Pool::Phone)),
            ("type", Ty::Str(Pool::EmailType)),
        ],
    ),
    (
        "groups",
        &[
            ("value", Ty::Str(Pool::Id)),
            ("display", Ty::Str(Pool::GroupName)),
            ("type", Ty::Str(Pool::Direct)),
        ],
    ),
    (
        "name",
        &[
            ("givenName", Ty::Str(Pool::Given)),
            ("familyName", Ty::Str(Pool::Family)),
        ],
    ),
    ("meta", &[("created", Ty::Date), ("lastModified", Ty::Date)]),
];

const GROUP_VALUE_PATHS: &[ValuePathSpec] = &[
    (
        "members",
        &[
            ("value", Ty::Str(Pool::Id)),
            ("display", Ty::Str(Pool::UserName)),
            ("type", Ty::Str(Pool::ResourceType)),
        ],
    ),
    ("meta", &[("created", Ty::Date)]),
];

struct Gen<'a> {
    rng: &'a mut XorShift,
    world: &'a World,
    attrs: Vec<(&'static str, Ty)>,
    value_paths: Vec<ValuePathSpec>,
}

const SPECIALS: [&str; 18] = [
    "%",
    "_",
    "\\",
    "\"",
    "'",
    "a%b",
    "x_y",
    "",
    "É",
    "é",
    "ü",
    "@example.com",
    "EXAMPLE",
    "work",
    "100%",
    "R&D",
    "%_%",
    "日本",
];

impl Gen<'_> {
    fn kw(&mut self, k: &str) -> String {
        flip_case(self.rng, k)
    }

    fn filter(&mut self, depth: usize) -> String {
        let roll = if depth >= 3 { 0 } else { self.rng.below(100) };
        match roll {
            0..=49 => self.comparison(),
            50..=64 => format!(
                "{} {} {}",
                self.filter(depth + 1),
                self.kw("and"),
                self.filter(depth + 1)
            ),
            65..=76 => format!(
                "{} {} {}",
                self.filter(depth + 1),
                self.kw("or"),
                self.filter(depth + 1)
            ),
            77..=85 => {
                let space = if self.rng.chance(50) { " " } else { "" };
                format!("{}{space}({})", self.kw("not"), self.filter(depth + 1))
            }
            86..=90 => format!("({})", self.filter(depth + 1)),
            _ => self.value_path(),
        }
    }

    fn comparison(&mut self) -> String {
        let (path, ty) = *self.rng.pick(&self.attrs);
        let path = flip_case(self.rng, path);
        self.attr_exp(&path, ty)
    }

    fn value_path(&mut self) -> String {
        let (parent, subs) = *self.rng.pick(&self.value_paths);
        let parent = flip_case(self.rng, parent);
        let inner = self.value_filter(subs, 0);
        if self.rng.chance(25) {
            // Entra's form: `emails[type eq "work"].value eq "x"`.
            let (sub, ty) = *self.rng.pick(subs);
            let sub = flip_case(self.rng, sub);
            let tail = self.attr_exp(&sub, ty);
            return format!("{parent}[{inner}].{tail}");
        }
        format!("{parent}[{inner}]")
    }

    fn value_filter(&mut self, subs: &[(&'static str, Ty)], depth: usize) -> String {
        let roll = if depth >= 2 { 0 } else { self.rng.below(100) };
        match roll {
            0..=59 => {
                let (sub, ty) = *self.rng.pick(subs);
                let sub = flip_case(self.rng, sub);
                self.attr_exp(&sub, ty)
            }
            60..=74 => format!(
                "{} {} {}",
                self.value_filter(subs, depth + 1),
                self.kw("and"),
                self.value_filter(subs, depth + 1)
            ),
            75..=89 => format!(
                "{} {} {}",
                self.value_filter(subs, depth + 1),
                self.kw("or"),
                self.value_filter(subs, depth + 1)
            ),
            _ => format!(
                "{} ({})",
                self.kw("not"),
                self.value_filter(subs, depth + 1)
            ),
        }
    }

    fn attr_exp(&mut self, path: &str, ty: Ty) -> String {
        if self.rng.chance(4) {
            let op = if self.rng.chance(50) { "eq" } else { "ne" };
            return format!("{path} {} {}", self.kw(op), self.kw("null"));
        }
        let ops: &[&str] = match ty {
            Ty::Str(_) => &["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"],
            Ty::Bool => &["eq", "ne", "pr"],
            Ty::Date => &["eq", "ne", "gt", "ge", "lt", "le", "pr"],
            Ty::Multi(_) => &["eq", "ne", "co", "sw", "ew", "pr"],
            Ty::Complex => &["pr"],
            Ty::Loose => &["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"],
            Ty::Num => &["eq", "ne", "gt", "ge", "lt", "le", "pr"],
        };
        // Now and then an operator the type refuses: both back ends must reject it.
        let op = if self.rng.chance(2) {
            "gt"
        } else {
            *self.rng.pick(ops)
        };
        if op == "pr" {
            return format!("{path} {}", self.kw("pr"));
        }
        let value = match ty {
            Ty::Str(pool) | Ty::Multi(pool) => self.string_literal(pool),
            Ty::Bool => {
                let b = if self.rng.chance(50) { "true" } else { "false" };
                self.kw(b)
            }
            Ty::Date => self.date_literal(),
            Ty::Complex => "\"x\"".to_string(),
            Ty::Loose => self.loose_literal(),
            Ty::Num => self.number_literal(),
        };
        format!("{path} {} {value}", self.kw(op))
    }

    fn string_literal(&mut self, pool: Pool) -> String {
        let values = &self.world.pools[pool as usize];
        let base = if values.is_empty() {
            "x".to_string()
        } else {
            self.rng.pick(values).clone()
        };
        let chars: Vec<char> = base.chars().collect();
        let n = chars.len();
        let s: String = match self.rng.below(12) {
            0..=3 => base,
            4 | 5 => flip_case(self.rng, &base),
            6 => chars[..self.rng.below(n + 1)].iter().collect(),
            7 => chars[self.rng.below(n + 1)..].iter().collect(),
            8 => {
                let a = self.rng.below(n + 1);
                let b = a + self.rng.below(n - a + 1);
                chars[a..b].iter().collect()
            }
            9 => self.rng.pick(&SPECIALS).to_string(),
            10 => format!("{base}{}", self.rng.pick(&SPECIALS)),
            _ => {
                let mut c = chars.clone();
                if !c.is_empty() {
                    let at = self.rng.below(c.len());
                    c[at] = *self.rng.pick(&['a', 'Z', '%', '_', 'é', 'É', '.']);
                }
                c.into_iter().collect()
            }
        };
        self.json_string(&s)
    }

    /// JSON-encodes `s`, spelling some characters as `\u` escapes (surrogate pairs included).
    fn json_string(&mut self, s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '/' if self.rng.chance(50) => out.push_str("\\/"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c if self.rng.chance(8) => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{:04X}", u));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    fn date_literal(&mut self) -> String {
        let base = if self.rng.chance(80) {
            *self.rng.pick(&self.world.stamps)
        } else {
            random_millis(self.rng)
        };
        let millis = match self.rng.below(5) {
            0 => base - 1,
            1 => base + 1,
            _ => base,
        };
        let text = time::format_millis(millis);
        let text = match self.rng.below(4) {
            // The same instant at +02:00.
            0 => {
                let shifted = time::format_millis(millis + 2 * 3_600_000);
                format!("{}+02:00", &shifted[..shifted.len() - 1])
            }
            // Whole seconds only (a different instant unless the milliseconds were 0).
            1 => format!("{}Z", &text[..19]),
            _ => text,
        };
        format!("\"{text}\"")
    }
}

#[cfg(test)]
mod declared;
#[cfg(test)]
mod undeclared;

#[derive(Default)]
struct Stats {
    compared: usize,
    rejected: usize,
    partial: usize,
}

impl Stats {
    /// The back ends agreed, and the run meant something: at least `min` filters compared,
    /// a third of them selecting a proper subset, and some refused by both.
    fn assert_agreement(&self, name: &str, failures: &[String], min: usize) {
        eprintln!(
            "{name}: compared {}, selective {}, rejected {}",
            self.compared, self.partial, self.rejected
        );
        assert!(
            failures.is_empty(),
            "{} disagreements, first ones:\n{}",
            failures.len(),
            failures[..failures.len().min(8)].join("\n\n")
        );
        assert!(self.compared >= min, "compared {}", self.compared);
        assert!(
            self.partial * 100 >= self.compared * 35,
            "only {} of {} filters were selective",
            self.partial,
            self.compared
        );
        assert!(self.rejected > 0, "no filter was refused");
    }
}

/// Runs one filter in one tenant and scope; returns a description of any disagreement.
fn check(
    conn: &Connection,
    world: &World,
    input: &str,
    scope: impl Into<TypeScope>,
    tenant: &'static str,
    stats: &mut Stats,
) -> Option<String> {
    let scope: TypeScope = scope.into();
    let rt = scope.only;
    let filter = match crate::proto::filter::parse(input) {
        Ok(f) => f,
        Err(e) => return Some(format!("generated filter does not parse: {input}\n  {e}")),
    };
    let candidates: Vec<&Resource> = world
        .resources
        .iter()
        .filter(|r| r.tenant == tenant && rt.is_none_or(|t| r.rt == t))
        .collect();
    let mut params = vec![SqlValue::Text(tenant.to_string())];
    let where_clause = match where_sql(&filter, scope, &mut params) {
        Ok(w) => w,
        Err(e) => {
            stats.rejected += 1;
            let rejected_in_memory = crate::proto::filter::validate(&filter, scope).is_err();
            let matched_any = candidates
                .iter()
                .any(|r| crate::proto::filter::matches(&filter, scope, &r.rendered));
            return (e.scim_type != Some(crate::proto::error::ScimType::InvalidFilter)
                || !rejected_in_memory
                || matched_any)
                .then(|| format!("rejected inconsistently: {input}: {e}"));
        }
    };
    let type_cond = rt
        .map(|t| format!(" AND r.type = '{}'", t.name()))
        .unwrap_or_default();
    let sql =
        format!("SELECT r.id FROM resources r WHERE r.tenant = ?{type_cond} AND ({where_clause})");
    let from_sql = match query_ids(conn, &sql, &params) {
        Ok(ids) => ids,
        Err(e) => return Some(format!("SQL failed for {input}: {e}")),
    };
    let from_memory: BTreeSet<String> = candidates
        .iter()
        .filter(|r| crate::proto::filter::matches(&filter, scope, &r.rendered))
        .map(|r| r.id.clone())
        .collect();
    stats.compared += 1;
    if !from_sql.is_empty() && from_sql.len() < candidates.len() {
        stats.partial += 1;
    }
    (from_sql != from_memory).then(|| {
        format!(
            "MISMATCH ({rt:?}, tenant {tenant}) for filter: {input}\n  sql: {sql}\n  params: {params:?}\n  only SQL: {:?}\n  only memory: {:?}",
            from_sql.difference(&from_memory).collect::<Vec<_>>(),
            from_memory.difference(&from_sql).collect::<Vec<_>>()
        )
    })
}

/// What a root search (`/.search` across types) may filter on: both types' attributes and
/// value paths.
fn root_scope() -> (Vec<(&'static str, Ty)>, Vec<ValuePathSpec>) {
    let attrs = USER_ATTRS.iter().chain(GROUP_ATTRS).copied().collect();
    let paths = USER_VALUE_PATHS
        .iter()
        .chain(GROUP_VALUE_PATHS)
        .copied()
        .collect();
    (attrs, paths)
}

#[test]
fn sql_and_memory_agree_on_random_filters() {
    let mut rng = XorShift::new(0x5C1A_2026);
    let world = build_world(&mut rng);
    let conn = open_db();
    load(&conn, &world);

    let (root_attrs, root_paths) = root_scope();
    // (scope, attributes, value paths, number of filters)
    type Scope = (
        Option<ResourceType>,
        Vec<(&'static str, Ty)>,
        Vec<ValuePathSpec>,
        usize,
    );
    let scopes: [Scope; 3] = [
        (
            Some(ResourceType::User),
            USER_ATTRS.to_vec(),
            USER_VALUE_PATHS.to_vec(),
            2000,
        ),
        (
            Some(ResourceType::Group),
            GROUP_ATTRS.to_vec(),
            GROUP_VALUE_PATHS.to_vec(),
            400,
        ),
        (None, root_attrs, root_paths, 600),
    ];
    let mut failures = Vec::new();
    let mut stats = Stats::default();
    for (rt, attrs, value_paths, count) in scopes {
        let mut gen = Gen {
            rng: &mut rng,
            world: &world,
            attrs,
            value_paths,
        };
        let filters: Vec<String> = (0..count).map(|_| gen.filter(0)).collect();
        for (k, input) in filters.iter().enumerate() {
            let tenant = TENANTS[k % TENANTS.len()];
            if let Some(f) = check(&conn, &world, input, rt, tenant, &mut stats) {
                failures.push(f);
            }
        }
    }
    stats.assert_agreement("built-in schemas", &failures, 2700);
    assert!(stats.rejected < 300, "rejected {}", stats.rejected);
}

#[test]
fn fixed_cases_agree() {
    // Hand-picked filters at the edges of the semantics, over the same random world.
    let mut rng = XorShift::new(7);
    let mut world = build_world(&mut rng);
    add_malformed_users(&mut rng, &mut world);
    render_all(&mut world);
    let conn = open_db();
    load(&conn, &world);
    let user_cases = [
        "userName co \"%\"", "userName co \"_\"", "userName co \"\\\\\"", "userName sw \"É\"", "userName sw \"é\"",
        "userName co \"\\\"\"", "userName co \"'\"", "externalId ew \"_%\"", "externalId ew \"\"", "externalId sw \"\"",
        "externalId co \"É\"", "title eq \"\"", "title ne \"\"", "title pr", "not (title pr)", "title eq null", "name pr",
        "name.givenName pr", "emails pr", "emails.value pr", "emails[value pr]", "emails[not (value pr)]", "emails eq null",
        "emails.primary eq true", "emails[primary ne true]", "emails.primary ne true", "active ne true", "active eq false",
        "userName gt \"a\"", "userName le \"Z\"", "userName gt \"é\"", "displayName lt \"b\"", "id gt \"U\"", "id lt \"u\"",
        "groups pr", "not (groups pr)", "groups[display co \"%\"]", "groups.type eq \"DIRECT\"", "groups eq \"G-01\"",
        "groups.value eq \"g-01\"", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager pr",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"u-000\"",
        "meta.created pr", "meta pr", "meta.created ge \"2020-01-01T00:00:00Z\" and meta.lastModified lt \"2021-01-01T00:00:00+14:00\"",
        "emails[type eq \"work\"].value co \"@example.com\"", "phoneNumbers co \"555\"", "phoneNumbers ew \"01\"",
    ];
    let group_cases = [
        "members pr",
        "not (members pr)",
        "members eq \"u-000\"",
        "members eq \"U-000\"",
        "members.type eq \"group\"",
        "members[type eq \"User\" and display sw \"b\"]",
        "members.display pr",
        "members.display co \"%\"",
        "displayName co \"%\"",
    ];
    let root_cases = [
        "userName pr",
        "not (userName pr)",
        "members pr or groups pr",
        "displayName sw \"a\"",
        "meta.resourceType eq \"Group\"",
        "urn:ietf:params:scim:schemas:core:2.0:User:displayName pr",
        "not (groups.value eq \"g-01\")",
        "emails ne \"x\"",
    ];
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    for (cases, rt) in [
        (&user_cases[..], Some(ResourceType::User)),
        (&group_cases[..], Some(ResourceType::Group)),
        (&root_cases[..], None),
    ] {
        for input in cases {
            for tenant in TENANTS {
                failures.extend(check(&conn, &world, input, rt, tenant, &mut stats));
            }
        }
    }
    let mut gen = Gen {
        rng: &mut rng,
        world: &world,
        attrs: USER_ATTRS.to_vec(),
        value_paths: USER_VALUE_PATHS.to_vec(),
    };
    let random: Vec<String> = (0..300).map(|_| gen.filter(0)).collect();
    let fixed_rejected = stats.rejected;
    for input in &random {
        failures.extend(check(
            &conn,
            &world,
            input,
            Some(ResourceType::User),
            "default",
            &mut stats,
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(fixed_rejected, 0);
}

// ---- sort order -----------------------------------------------------------------------------

/// Sortable attributes per scope, with whether they compare case-insensitively (the schema's
/// `caseExact: false`; `id`, `externalId` and members' `value` are case-exact).
const USER_SORTS: &[(&str, bool)] = &[
    ("userName", true),
    ("displayName", true),
    ("name.familyName", true),
    ("name.givenName", true),
    ("title", true),
    ("nickName", true),
    ("externalId", false),
    ("id", false),
    ("meta.created", false),
    ("meta.lastModified", false),
    (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        true,
    ),
    (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        false,
    ),
    ("emails.value", true),
];
const GROUP_SORTS: &[(&str, bool)] = &[
    ("displayName", true),
    ("externalId", false),
    ("id", false),
    ("meta.created", false),
    ("meta.lastModified", false),
    ("members.value", false),
];
const ROOT_SORTS: &[(&str, bool)] = &[
    ("userName", true),
    ("displayName", true),
    ("title", true),
    ("externalId", false),
    ("id", false),
    ("meta.created", false),
    ("meta.lastModified", false),
];

/// The sort value RFC 7644 §3.4.2.3 gives a rendered resource: the attribute's value; for a
/// multi-valued attribute the primary element's, else the first element's that has one (for
/// members, which have no order, the smallest).
fn sort_value(rendered: &Value, path: &str) -> Option<String> {
    let (parent, attr) = match path.rsplit_once(':') {
        Some((urn, attr)) => (&rendered[urn], attr),
        None => (rendered, path),
    };
    let mut segments = attr.split('.');
    let top = &parent[segments.next()?];
    let sub = segments.next();
    match (top, sub) {
        (Value::Array(items), Some(sub)) => {
            let values = items
                .iter()
                .filter_map(|e| e[sub].as_str().map(|v| (e["primary"] == json!(true), v)));
            if path.starts_with("members") {
                values.map(|(_, v)| v.to_string()).min()
            } else {
                let values: Vec<(bool, &str)> = values.collect();
                let first = values.iter().find(|(p, _)| *p).or(values.first());
                first.map(|(_, v)| v.to_string())
            }
        }
        (v, Some(sub)) => v[sub].as_str().map(str::to_string),
        (v, None) => v.as_str().map(str::to_string),
    }
}

/// The whole list as `Store::list` pages it (startIndex/count, or cursors), in pages of `count`.
fn paged_ids(
    db: &crate::testing::SqliteDb,
    tenant: &str,
    q: &crate::store::ListQuery,
    cursor: bool,
) -> Result<Vec<String>, String> {
    use crate::testing::block_on;
    let store = crate::store::Store::new(db, tenant);
    let mut q = q.clone();
    q.cursor_mode = cursor;
    let mut out = Vec::new();
    for _ in 0..1000 {
        let page = block_on(store.list(&q)).map_err(|e| format!("{e:?}"))?;
        let n = page.items.len();
        out.extend(page.items.into_iter().map(|s| s.id));
        if cursor {
            match page.next {
                Some(next) => q.after = Some(next),
                None => return Ok(out),
            }
        } else if n == 0 {
            return Ok(out);
        } else {
            q.start_index += q.count;
        }
    }
    Err("paging did not end".into())
}

/// The world in the test harness's SQLite database, as `Store::list` reads it.
fn sqlite_db(world: &World) -> crate::testing::SqliteDb {
    use crate::testing::{block_on, SqliteDb};
    let db = SqliteDb::new();
    let mut stmts = vec![crate::store::sql::Stmt::new(
        "INSERT INTO tenants (id, name) VALUES ('t2', 'Second')",
        vec![],
    )];
    for r in &world.resources {
        stmts.push(crate::store::sql::Stmt::new(
            "INSERT INTO resources (tenant, id, type, data, created, modified) VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                r.tenant.into(),
                r.id.as_str().into(),
                r.rt.name().into(),
                Value::Object(r.data.clone()).to_string().into(),
                r.created.as_str().into(),
                r.modified.as_str().into(),
            ],
        ));
    }
    for (t, g, m) in &world.members {
        stmts.push(crate::store::sql::Stmt::new(
            "INSERT INTO members (tenant, group_id, member_id) VALUES (?, ?, ?)",
            vec![(*t).into(), g.as_str().into(), m.as_str().into()],
        ));
    }
    block_on(crate::store::Db::batch(&db, stmts)).expect("load");
    db
}

#[test]
fn sql_and_memory_agree_on_random_sorted_pages() {
    // Random sorted lists, with and without random filters, read page by page through
    // `Store::list` in both paging styles, against the filter evaluator and a sort in Rust:
    // resources with a value first (case-insensitive attributes folded as SQLite's NOCASE folds,
    // ASCII only), then those without; rowid breaks ties; descending reverses both but keeps
    // the missing values last.
    let mut rng = XorShift::new(0x50E7_2026);
    let world = build_world(&mut rng);
    let db = sqlite_db(&world);

    let (root_attrs, root_paths) = root_scope();
    type SortScope<'s> = (
        Option<ResourceType>,
        &'s [(&'static str, bool)],
        Vec<(&'static str, Ty)>,
        Vec<ValuePathSpec>,
    );
    let scopes: [SortScope; 3] = [
        (
            Some(ResourceType::User),
            USER_SORTS,
            USER_ATTRS.to_vec(),
            USER_VALUE_PATHS.to_vec(),
        ),
        (
            Some(ResourceType::Group),
            GROUP_SORTS,
            GROUP_ATTRS.to_vec(),
            GROUP_VALUE_PATHS.to_vec(),
        ),
        (None, ROOT_SORTS, root_attrs, root_paths),
    ];
    let mut failures = Vec::new();
    let (mut compared, mut filtered, mut with_missing) = (0, 0, 0);
    for (rt, sorts, attrs, value_paths) in scopes {
        for k in 0..70 {
            let (sort, nocase) = sorts[k % sorts.len()];
            let descending = rng.chance(50);
            let tenant = TENANTS[rng.below(TENANTS.len())];
            let filter = if rng.chance(40) {
                let mut gen = Gen {
                    rng: &mut rng,
                    world: &world,
                    attrs: attrs.clone(),
                    value_paths: value_paths.clone(),
                };
                Some(gen.filter(0))
            } else {
                None
            };
            let mut q = crate::store::ListQuery {
                rt,
                order: Some(sort_sql(sort, rt).unwrap_or_else(|e| panic!("{sort}: {e:?}"))),
                descending,
                start_index: 1,
                count: *rng.pick(&[3, 7, 16, 25, 40, 1000]),
                with_related: rng.chance(30),
                ..Default::default()
            };
            let parsed = match &filter {
                Some(f) => {
                    let parsed = crate::proto::filter::parse(f).expect("generated filters parse");
                    match where_sql(&parsed, rt, &mut q.params) {
                        Ok(w) => q.where_sql = Some(w),
                        Err(_) => continue, // refused filters are the other tests' business
                    }
                    Some(parsed)
                }
                None => None,
            };
            let mut rows: Vec<(Option<String>, usize, &Resource)> = world
                .resources
                .iter()
                .enumerate()
                .filter(|(_, r)| r.tenant == tenant && rt.is_none_or(|t| r.rt == t))
                .filter(|(_, r)| {
                    parsed
                        .as_ref()
                        .is_none_or(|f| crate::proto::filter::matches(f, rt, &r.rendered))
                })
                .map(|(rowid, r)| {
                    let v = sort_value(&r.rendered, sort);
                    (
                        v.map(|v| if nocase { v.to_ascii_lowercase() } else { v }),
                        rowid,
                        r,
                    )
                })
                .collect();
            rows.sort_by(|a, b| {
                let o = match (&a.0, &b.0) {
                    (Some(x), Some(y)) => x.as_bytes().cmp(y.as_bytes()).then(a.1.cmp(&b.1)),
                    (Some(_), None) => return std::cmp::Ordering::Less,
                    (None, Some(_)) => return std::cmp::Ordering::Greater,
                    (None, None) => a.1.cmp(&b.1),
                };
                if descending {
                    o.reverse()
                } else {
                    o
                }
            });
            let want: Vec<String> = rows.iter().map(|r| r.2.id.clone()).collect();
            compared += 1;
            filtered += usize::from(filter.is_some());
            with_missing += usize::from(
                rows.iter().any(|r| r.0.is_none()) && rows.iter().any(|r| r.0.is_some()),
            );
            for cursor in [false, true] {
                let got = paged_ids(&db, tenant, &q, cursor);
                if got.as_ref() != Ok(&want) {
                    failures.push(format!(
                        "MISMATCH ({rt:?}, tenant {tenant}) sortBy={sort} descending={descending} \
                         count={} cursor={cursor} filter={filter:?}\n  want: {want:?}\n  got:  {got:?}",
                        q.count
                    ));
                }
            }
        }
    }
    eprintln!(
        "compared {compared} sorted lists, {filtered} filtered, {with_missing} with missing values"
    );
    assert!(
        failures.is_empty(),
        "{} disagreements, first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(4)].join("\n\n")
    );
    assert!(
        compared >= 190 && filtered >= 50,
        "compared {compared}, filtered {filtered}"
    );
    assert!(
        with_missing >= 60,
        "only {with_missing} lists mixed present and missing values"
    );
}
