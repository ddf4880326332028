//! The differential test over an extension a tenant declared (issue 12): typed attributes the
//! built-in schemas do not have — integers and decimals (no core attribute is numeric), a
//! case-exact string, dateTimes, booleans, a multi-valued string, a multi-valued complex
//! attribute and a single complex one — stored as validation stores them, filtered by random
//! filters through the tenant's schemas in both back ends.

use super::*;
use crate::proto::declared;
use crate::proto::schema::{Declared, Schemas};

macro_rules! custom {
    ($attr:literal) => {
        concat!(
            "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:",
            $attr
        )
    };
}

const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";

fn schemas() -> Schemas {
    let doc = json!({
        "id": CUSTOM,
        "attributes": [
            {"name": "CustomAttribute", "type": "string"},
            {"name": "code", "type": "string", "caseExact": true},
            {"name": "level", "type": "integer"},
            {"name": "score", "type": "decimal"},
            {"name": "flag", "type": "boolean"},
            {"name": "hired", "type": "dateTime"},
            {"name": "tags", "type": "string", "multiValued": true},
            {"name": "devices", "type": "complex", "multiValued": true, "subAttributes": [
                {"name": "type", "type": "string"},
                {"name": "serial", "type": "string", "caseExact": true},
                {"name": "primary", "type": "boolean"},
                {"name": "count", "type": "integer"}
            ]},
            {"name": "badge", "type": "complex", "subAttributes": [
                {"name": "number", "type": "integer"},
                {"name": "label", "type": "string"}
            ]}
        ]
    });
    let ext = declared::parse(ResourceType::User, false, &doc).expect("a valid declaration");
    let set = declared::intern("differential: declared", || Declared {
        extensions: vec![ext],
    });
    Schemas::new(Some(set), false)
}

const ATTRS: &[(&str, Ty)] = &[
    (custom!("CustomAttribute"), Ty::Str(Pool::Declared)),
    (custom!("code"), Ty::Str(Pool::Declared)),
    (custom!("level"), Ty::Num),
    (custom!("score"), Ty::Num),
    (custom!("flag"), Ty::Bool),
    (custom!("hired"), Ty::Date),
    (custom!("tags"), Ty::Multi(Pool::Declared)),
    (custom!("devices"), Ty::Complex),
    (custom!("devices.type"), Ty::Str(Pool::Declared)),
    (custom!("devices.count"), Ty::Num),
    (custom!("badge"), Ty::Complex),
    (custom!("badge.number"), Ty::Num),
    (custom!("badge.label"), Ty::Str(Pool::Declared)),
    // Unqualified: resolved to the extension, as the only schema that defines them.
    ("level", Ty::Num),
    ("hired", Ty::Date),
    ("userName", Ty::Str(Pool::UserName)),
    ("title", Ty::Str(Pool::Title)),
];

const DEVICE_SUBS: &[(&str, Ty)] = &[
    ("type", Ty::Str(Pool::Declared)),
    ("serial", Ty::Str(Pool::Declared)),
    ("primary", Ty::Bool),
    ("count", Ty::Num),
];
const BADGE_SUBS: &[(&str, Ty)] = &[("number", Ty::Num), ("label", Ty::Str(Pool::Declared))];
const VALUE_PATHS: &[ValuePathSpec] = &[
    (custom!("devices"), DEVICE_SUBS),
    (custom!("badge"), BADGE_SUBS),
];

const WORDS: [&str; 10] = [
    "Blue", "blue", "BLUE", "Laptop", "phone", "B-12", "b-12", "émile", "Émile", "100%",
];
const DECIMALS: [f64; 6] = [-1.5, 0.0, 0.25, 2.5, 3.0, 1e3];

impl Gen<'_> {
    /// Numbers near the stored ones, integral or not, negative now and then.
    pub(super) fn number_literal(&mut self) -> String {
        match self.rng.below(4) {
            0 => format!("{:?}", self.rng.pick(&DECIMALS)),
            1 => format!("{}.5", self.rng.below(20) as i64 - 5),
            _ => format!("{}", self.rng.below(26) as i64 - 5),
        }
    }
}

fn word(rng: &mut XorShift, w: &mut World) -> Value {
    let s = rng.pick(&WORDS).to_string();
    w.remember(Pool::Declared, &s);
    json!(s)
}

/// A value of the declared extension, in the form validation stores (dateTimes normalised).
fn extension(rng: &mut XorShift, w: &mut World) -> Value {
    let mut ext = Map::new();
    let mut maybe = |rng: &mut XorShift, name: &str, v: Value| {
        if rng.chance(70) {
            ext.insert(name.into(), v);
        }
    };
    let v = word(rng, w);
    maybe(rng, "CustomAttribute", v);
    let v = word(rng, w);
    maybe(rng, "code", v);
    let level = json!(rng.below(20) as i64 - 5);
    maybe(rng, "level", level);
    let score = if rng.chance(50) {
        json!(*rng.pick(&DECIMALS))
    } else {
        json!(rng.below(6))
    };
    maybe(rng, "score", score);
    let flag = json!(rng.chance(50));
    maybe(rng, "flag", flag);
    let millis = random_millis(rng);
    w.stamps.push(millis);
    maybe(rng, "hired", json!(time::format_millis(millis)));
    let tags: Vec<Value> = (0..1 + rng.below(3)).map(|_| word(rng, w)).collect();
    maybe(rng, "tags", Value::Array(tags));
    let devices: Vec<Value> = (0..1 + rng.below(3))
        .map(|_| {
            let mut d = Map::new();
            d.insert("type".into(), word(rng, w));
            if rng.chance(60) {
                d.insert("serial".into(), word(rng, w));
            }
            if rng.chance(50) {
                d.insert("primary".into(), json!(rng.chance(50)));
            }
            if rng.chance(60) {
                d.insert("count".into(), json!(rng.below(5)));
            }
            Value::Object(d)
        })
        .collect();
    maybe(rng, "devices", Value::Array(devices));
    let badge = json!({"number": rng.below(30) as i64 - 10, "label": word(rng, w)});
    maybe(rng, "badge", badge);
    Value::Object(ext)
}

fn world(seed: u64) -> World {
    let mut rng = XorShift::new(seed);
    let mut w = build_world(&mut rng);
    let users: Vec<usize> = (0..w.resources.len())
        .filter(|&i| w.resources[i].rt == ResourceType::User)
        .collect();
    for i in users {
        if rng.chance(75) {
            let ext = extension(&mut rng, &mut w);
            w.resources[i].data.insert(CUSTOM.into(), ext);
        }
    }
    render_all(&mut w);
    w
}

#[test]
fn sql_and_memory_agree_on_declared_extension_attributes() {
    let world = world(0xDEC_1A2E);
    let conn = open_db();
    load(&conn, &world);
    let schemas = schemas();
    let mut rng = XorShift::new(0x7E_2026);
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    for (rt, count) in [(Some(ResourceType::User), 1500), (None, 300)] {
        let mut gen = Gen {
            rng: &mut rng,
            world: &world,
            attrs: ATTRS.to_vec(),
            value_paths: VALUE_PATHS.to_vec(),
        };
        let filters: Vec<String> = (0..count).map(|_| gen.filter(0)).collect();
        let scope = TypeScope { only: rt, schemas };
        for (k, input) in filters.iter().enumerate() {
            let tenant = TENANTS[k % TENANTS.len()];
            failures.extend(check(&conn, &world, input, scope, tenant, &mut stats));
        }
    }
    stats.assert_agreement("declared", &failures, 1500);
}
