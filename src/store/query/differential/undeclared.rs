//! The differential test over attributes no schema declares (issue 12): random users and
//! groups carrying an IdP's custom extension, a second vendor's, and core-level names kept
//! verbatim — mixed JSON types, arrays of scalars, complex values and arrays of them, names
//! and URNs stored in other spellings (sometimes two spellings in one resource), and a few
//! shapes validation would refuse — filtered and sorted by random filters in both back ends.

use super::*;

macro_rules! custom {
    ($attr:literal) => {
        concat!(
            "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:",
            $attr
        )
    };
}
macro_rules! vendor {
    ($attr:literal) => {
        concat!("urn:example:acme:2.0:Profile:", $attr)
    };
}

const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
const VENDOR: &str = "urn:example:acme:2.0:Profile";

const LOOSE_ATTRS: &[(&str, Ty)] = &[
    (custom!("CustomAttribute"), Ty::Loose),
    (custom!("costCenter"), Ty::Loose),
    (custom!("tags"), Ty::Loose),
    (custom!("flag"), Ty::Loose),
    (custom!("badge"), Ty::Loose),
    (custom!("badge.number"), Ty::Loose),
    (custom!("badge.value"), Ty::Loose),
    (custom!("devices"), Ty::Loose),
    (custom!("devices.type"), Ty::Loose),
    (custom!("devices.serial"), Ty::Loose),
    (custom!("devices.primary"), Ty::Loose),
    (custom!("nothing"), Ty::Loose),
    (vendor!("tags"), Ty::Loose),
    (vendor!("CustomAttribute"), Ty::Loose),
    ("shoeSize", Ty::Loose),
    ("hobbies", Ty::Loose),
    ("hobbies.type", Ty::Loose),
    // Typed attributes, so that undeclared and typed comparisons mix in one filter.
    ("userName", Ty::Str(Pool::UserName)),
    ("displayName", Ty::Str(Pool::Display)),
    ("externalId", Ty::Str(Pool::ExternalId)),
];

const LOOSE_SUBS: &[(&str, Ty)] = &[
    ("type", Ty::Loose),
    ("value", Ty::Loose),
    ("serial", Ty::Loose),
    ("primary", Ty::Loose),
    ("number", Ty::Loose),
];

const LOOSE_VALUE_PATHS: &[ValuePathSpec] = &[
    (custom!("devices"), LOOSE_SUBS),
    (custom!("badge"), LOOSE_SUBS),
    (custom!("tags"), LOOSE_SUBS),
    (vendor!("tags"), LOOSE_SUBS),
    ("hobbies", LOOSE_SUBS),
];

/// Includes what serde_json escapes in the stored text (`"`, `\`, control characters), which
/// the SQL's text pre-filter must not look for verbatim.
const STRINGS: [&str; 15] = [
    "Blue",
    "blue",
    "BLUE",
    "Laptop",
    "phone",
    "B-12",
    "émile",
    "Émile",
    "100%",
    "x_y",
    "",
    "日本",
    "say \"hi\"",
    "a\\b",
    "tab\tstop",
];
const NUMBERS: [f64; 6] = [0.5, 2.25, -1.5, 3.0, 7.0, 1e3];

impl Gen<'_> {
    /// A literal of a random JSON type, mostly values the world holds.
    pub(super) fn loose_literal(&mut self) -> String {
        match self.rng.below(10) {
            0..=4 => self.string_literal(Pool::Loose),
            5 | 6 => format!("{}", self.rng.below(12) as i64 - 3),
            7 => format!("{:?}", self.rng.pick(&NUMBERS)),
            _ => {
                let b = if self.rng.chance(50) { "true" } else { "false" };
                self.kw(b)
            }
        }
    }
}

/// The client's spelling of a name: usually as the filter generator writes it, sometimes not.
fn spell(rng: &mut XorShift, s: &str) -> String {
    if rng.chance(25) {
        flip_case(rng, s)
    } else {
        s.to_string()
    }
}

fn scalar(rng: &mut XorShift, w: &mut World) -> Value {
    match rng.below(10) {
        0..=4 => {
            let base = *rng.pick(&STRINGS);
            let s = spell(rng, base);
            w.remember(Pool::Loose, &s);
            json!(s)
        }
        5 | 6 => json!(rng.below(12) as i64 - 3),
        7 => json!(*rng.pick(&NUMBERS)),
        _ => json!(rng.chance(50)),
    }
}

fn complex(rng: &mut XorShift, w: &mut World) -> Value {
    let mut m = Map::new();
    for _ in 0..rng.below(4) {
        let (sub, _) = *rng.pick(LOOSE_SUBS);
        let v = if rng.chance(3) {
            json!({"deep": 1}) // deeper than validation allows
        } else {
            scalar(rng, w)
        };
        m.insert(spell(rng, sub), v);
    }
    Value::Object(m)
}

fn loose_value(rng: &mut XorShift, w: &mut World) -> Value {
    match rng.below(12) {
        0..=5 => scalar(rng, w),
        6 | 7 => Value::Array((0..rng.below(4)).map(|_| scalar(rng, w)).collect()),
        8 => complex(rng, w),
        9 | 10 => Value::Array((0..rng.below(4)).map(|_| complex(rng, w)).collect()),
        _ => json!([[scalar(rng, w)], complex(rng, w), scalar(rng, w)]),
    }
}

/// An extension object: some of the attributes, in the client's spellings.
fn extension(rng: &mut XorShift, w: &mut World) -> Value {
    const NAMES: [&str; 6] = [
        "CustomAttribute",
        "costCenter",
        "tags",
        "flag",
        "badge",
        "devices",
    ];
    let mut m = Map::new();
    for name in NAMES {
        if rng.chance(45) {
            m.insert(spell(rng, name), loose_value(rng, w));
        }
        if rng.chance(5) {
            m.insert(flip_case(rng, name), loose_value(rng, w));
        }
    }
    Value::Object(m)
}

/// Adds undeclared attributes to most users and some groups.
fn add_undeclared(rng: &mut XorShift, w: &mut World) {
    for k in 0..w.resources.len() {
        let share = match w.resources.get(k).map(|r| r.rt) {
            Some(ResourceType::User) => 80,
            _ => 30,
        };
        let mut add = Map::new();
        if rng.chance(share) {
            add.insert(spell(rng, CUSTOM), extension(rng, w));
        }
        if rng.chance(5) {
            add.insert(flip_case(rng, CUSTOM), extension(rng, w));
        }
        if rng.chance(3) {
            add.insert(flip_case(rng, CUSTOM), json!("not an object"));
        }
        if rng.chance(25) {
            add.insert(spell(rng, VENDOR), extension(rng, w));
        }
        for name in ["shoeSize", "hobbies"] {
            if rng.chance(share / 2) {
                add.insert(spell(rng, name), loose_value(rng, w));
            }
        }
        if let Some(r) = w.resources.get_mut(k) {
            r.data.extend(add);
        }
    }
    render_all(w);
}

fn world(seed: u64) -> World {
    let mut rng = XorShift::new(seed);
    let mut w = build_world(&mut rng);
    add_undeclared(&mut rng, &mut w);
    w
}

#[test]
fn sql_and_memory_agree_on_undeclared_attributes() {
    let world = world(0x0DD_2026);
    let conn = open_db();
    load(&conn, &world);
    let mut rng = XorShift::new(0xF11_7E25);
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    for (rt, count) in [
        (Some(ResourceType::User), 1500),
        (Some(ResourceType::Group), 200),
        (None, 300),
    ] {
        let mut gen = Gen {
            rng: &mut rng,
            world: &world,
            attrs: LOOSE_ATTRS.to_vec(),
            value_paths: LOOSE_VALUE_PATHS.to_vec(),
        };
        let filters: Vec<String> = (0..count).map(|_| gen.filter(0)).collect();
        for (k, input) in filters.iter().enumerate() {
            let tenant = TENANTS[k % TENANTS.len()];
            failures.extend(check(&conn, &world, input, rt, tenant, &mut stats));
        }
    }
    let fixed = [
        concat!(custom!("CustomAttribute"), " eq \"blue\""),
        concat!(custom!("CUSTOMATTRIBUTE"), " ne \"blue\""),
        concat!(custom!("costCenter"), " gt 2"),
        concat!(custom!("costCenter"), " le 2.25"),
        concat!(custom!("costCenter"), " eq \"3\""),
        concat!(custom!("flag"), " eq true"),
        concat!(custom!("flag"), " ne false"),
        concat!(custom!("tags"), " eq \"laptop\""),
        concat!(custom!("tags"), " co \"%\""),
        concat!(custom!("tags"), " sw \"_\""),
        concat!(custom!("tags"), " pr"),
        concat!(custom!("tags"), " eq null"),
        concat!(custom!("badge"), " pr"),
        concat!(custom!("badge.number"), " pr"),
        concat!(custom!("badge.deep"), " pr"),
        concat!(
            custom!("devices"),
            "[type eq \"phone\" and primary eq true]"
        ),
        concat!(custom!("devices"), "[type eq \"phone\"].serial ew \"2\""),
        concat!(custom!("devices"), "[not (value pr)]"),
        concat!(custom!("devices.value"), " lt \"b\""),
        concat!(custom!("nothing"), " eq null"),
        "shoeSize gt \"A\"",
        "shoeSize ge 0",
        "hobbies[type pr]",
        "not (hobbies pr) and userName pr",
    ];
    for input in fixed {
        for rt in [Some(ResourceType::User), None] {
            failures.extend(check(&conn, &world, input, rt, "default", &mut stats));
        }
    }
    stats.assert_agreement("undeclared", &failures, 1400);
}

/// The sort key SQLite gives an undeclared attribute's value: numbers (booleans as 0/1)
/// before text, text folded as `NOCASE` folds.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Key {
    Num(f64),
    Text(Vec<u8>),
}

/// The first scalar under a matching name, in stored order (`undeclared::sort_expr`).
fn loose_sort_key(rendered: &Value, path: &str) -> Option<Key> {
    let (holders, attr): (Vec<&Value>, &str) = match path.rsplit_once(':') {
        Some((urn, attr)) => (
            rendered
                .as_object()?
                .iter()
                .filter(|(k, v)| k.eq_ignore_ascii_case(urn) && v.is_object())
                .map(|(_, v)| v)
                .collect(),
            attr,
        ),
        None => (vec![rendered], path),
    };
    let (name, sub) = match attr.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (attr, None),
    };
    let named = |v: &'_ Value, n: &str| -> Vec<Value> {
        v.as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
            .collect()
    };
    let values: Vec<Value> = holders
        .into_iter()
        .flat_map(|h| named(h, name))
        .flat_map(|v| match sub {
            Some(sub) => named(&v, sub),
            None => vec![v],
        })
        .collect();
    values.into_iter().find_map(|v| match v {
        Value::String(s) => Some(Key::Text(s.to_ascii_lowercase().into_bytes())),
        Value::Number(n) => n.as_f64().map(Key::Num),
        Value::Bool(b) => Some(Key::Num(f64::from(u8::from(b)))),
        _ => None,
    })
}

/// The ids in the order `Store::list` must give them, and whether some have a sort value and
/// some do not.
fn reference_order(
    world: &World,
    tenant: &str,
    rt: Option<ResourceType>,
    parsed: Option<&crate::proto::filter::Filter>,
    sort: &str,
    descending: bool,
) -> (Vec<String>, bool) {
    let mut rows: Vec<(Option<Key>, usize, &Resource)> = world
        .resources
        .iter()
        .enumerate()
        .filter(|(_, r)| r.tenant == tenant && rt.is_none_or(|t| r.rt == t))
        .filter(|(_, r)| parsed.is_none_or(|f| crate::proto::filter::matches(f, rt, &r.rendered)))
        .map(|(rowid, r)| (loose_sort_key(&r.rendered, sort), rowid, r))
        .collect();
    rows.sort_by(|a, b| {
        let o = match (&a.0, &b.0) {
            (Some(x), Some(y)) => x
                .partial_cmp(y)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.1.cmp(&b.1)),
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
    let mixed = rows.iter().any(|r| r.0.is_none()) && rows.iter().any(|r| r.0.is_some());
    (want, mixed)
}

#[test]
fn sql_and_memory_agree_on_pages_sorted_by_undeclared_attributes() {
    let world = world(0x5027_2026);
    let db = sqlite_db(&world);
    let mut rng = XorShift::new(0xCAFE);
    let sorts = [
        custom!("CustomAttribute"),
        custom!("COSTCENTER"),
        custom!("flag"),
        custom!("badge.number"),
        custom!("tags"),
        vendor!("customAttribute"),
        "shoeSize",
        "hobbies.type",
    ];
    let mut failures = Vec::new();
    let (mut compared, mut with_missing) = (0, 0);
    for rt in [Some(ResourceType::User), Some(ResourceType::Group), None] {
        for k in 0..32 {
            let sort = sorts[k % sorts.len()];
            let descending = rng.chance(50);
            let tenant = TENANTS[rng.below(TENANTS.len())];
            let mut q = crate::store::ListQuery {
                rt,
                order: Some(sort_sql(sort, rt).unwrap_or_else(|e| panic!("{sort}: {e:?}"))),
                descending,
                start_index: 1,
                count: *rng.pick(&[3, 7, 25, 1000]),
                ..Default::default()
            };
            let filter = rng.chance(40).then(|| {
                let mut gen = Gen {
                    rng: &mut rng,
                    world: &world,
                    attrs: LOOSE_ATTRS.to_vec(),
                    value_paths: LOOSE_VALUE_PATHS.to_vec(),
                };
                gen.filter(1)
            });
            let parsed = match &filter {
                Some(f) => {
                    let parsed = crate::proto::filter::parse(f).expect("generated filters parse");
                    match where_sql(&parsed, rt, &mut q.params) {
                        Ok(w) => q.where_sql = Some(w),
                        Err(_) => continue,
                    }
                    Some(parsed)
                }
                None => None,
            };
            let (want, mixed) =
                reference_order(&world, tenant, rt, parsed.as_ref(), sort, descending);
            compared += 1;
            with_missing += usize::from(mixed);
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
    eprintln!("undeclared: compared {compared} sorted lists, {with_missing} with missing values");
    assert!(
        failures.is_empty(),
        "{} disagreements, first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(3)].join("\n\n")
    );
    assert!(
        compared >= 80 && with_missing >= 40,
        "{compared}, {with_missing}"
    );
}
