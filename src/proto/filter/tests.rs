use super::*;
use crate::proto::error::ScimType;
use crate::proto::schema::{ResourceType, ENTERPRISE_USER_SCHEMA};
use serde_json::json;

/// Tiny deterministic PRNG (xorshift64*), so randomised tests reproduce without extra crates.
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub(crate) fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn canon(input: &str) -> String {
    match parse(input) {
        Ok(f) => f.to_string(),
        Err(e) => panic!("{input:?} should parse: {e}"),
    }
}

fn parse_err(input: &str) -> String {
    match parse(input) {
        Ok(f) => panic!("{input:?} should not parse, got {f}"),
        Err(e) => {
            assert_eq!(e.status, 400);
            assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));
            e.detail
        }
    }
}

fn bind_err(input: &str, rt: Option<ResourceType>) -> String {
    let f = parse(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"));
    match bind(&f, rt) {
        Ok(b) => panic!("{input:?} should not bind, got {b:?}"),
        Err(e) => {
            assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{input}");
            e.detail
        }
    }
}

const USER: Option<ResourceType> = Some(ResourceType::User);
const GROUP: Option<ResourceType> = Some(ResourceType::Group);

// ---- parsing --------------------------------------------------------------------------------

#[test]
fn parses_every_operator_case_insensitively() {
    for op in CompareOp::ALL {
        let upper = op.as_str().to_ascii_uppercase();
        assert_eq!(
            canon(&format!("userName {upper} \"x\"")),
            format!("userName {} \"x\"", op.as_str())
        );
    }
    assert_eq!(canon("title PR"), "title pr");
    assert_eq!(canon("title pr and title Pr"), "(title pr and title pr)");
}

#[test]
fn and_binds_tighter_than_or_and_not_tighter_than_both() {
    assert_eq!(
        canon("a eq 1 or b eq 2 and c eq 3"),
        "(a eq 1 or (b eq 2 and c eq 3))"
    );
    assert_eq!(
        canon("a eq 1 and b eq 2 or c eq 3"),
        "((a eq 1 and b eq 2) or c eq 3)"
    );
    assert_eq!(
        canon("a eq 1 AND b eq 2 AND c eq 3 OR d eq 4"),
        "((a eq 1 and b eq 2 and c eq 3) or d eq 4)"
    );
    assert_eq!(canon("not (a pr) and b pr"), "(not (a pr) and b pr)");
    assert_eq!(
        canon("NOT(a pr) or not  (b pr)"),
        "(not (a pr) or not (b pr))"
    );
    assert_eq!(
        canon("(a eq 1 or b eq 2) and c eq 3"),
        "((a eq 1 or b eq 2) and c eq 3)"
    );
    assert_eq!(canon("((((a pr))))"), "a pr");
    assert_eq!(
        canon("not (not (a pr and (b pr or c pr)))"),
        "not (not ((a pr and (b pr or c pr))))"
    );
    assert_eq!(canon("(a pr)and(b pr)"), "(a pr and b pr)");
    assert_eq!(canon("  a pr\t\nand\r b pr  "), "(a pr and b pr)");
}

#[test]
fn parses_attribute_paths_with_urns_and_sub_attributes() {
    let f =
        parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"m\"")
            .unwrap();
    let Filter::Compare(c) = &f else {
        panic!("{f:?}")
    };
    assert_eq!(c.path.urn.as_deref(), Some(ENTERPRISE_USER_SCHEMA));
    assert_eq!(c.path.name, "manager");
    assert_eq!(c.path.sub.as_deref(), Some("value"));
    assert_eq!((c.path.pos, c.op_pos), (1, 74));
    assert_eq!(
        canon("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName sw \"B\""),
        "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName sw \"B\""
    );
    assert_eq!(
        parse_attr_path("name.givenName").unwrap().sub.as_deref(),
        Some("givenName")
    );
    assert_eq!(
        parse_attr_path("members.$ref").unwrap().sub.as_deref(),
        Some("$ref")
    );
    assert!(parse_attr_path("name.givenName eq").is_err());
}

#[test]
fn parses_value_paths_and_entra_form() {
    assert_eq!(
        canon("emails[type eq \"work\" and value co \"@example.com\"]"),
        "emails[(type eq \"work\" and value co \"@example.com\")]"
    );
    assert_eq!(canon("members[value eq \"x\"]"), "members[value eq \"x\"]");
    assert_eq!(
        canon("emails[type eq \"work\"].value eq \"a@b\""),
        "emails[(type eq \"work\" and value eq \"a@b\")]"
    );
    assert_eq!(
        canon("emails[not (primary eq true)] or userName pr"),
        "(emails[not (primary eq true)] or userName pr)"
    );
    assert_eq!(
        canon("emails[type eq \"work\"].display pr"),
        "emails[(type eq \"work\" and display pr)]"
    );
    assert_eq!(
        canon("emails[(type eq \"a\") or type eq \"b\"]"),
        "emails[(type eq \"a\" or type eq \"b\")]"
    );
}

#[test]
fn parses_literals_and_json_escapes() {
    let value = |input: &str| match parse(input).unwrap() {
        Filter::Compare(c) => c.value,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        value(r#"a eq "q\" b\\ s\/ \b\f\n\r\t""#),
        Literal::String("q\" b\\ s/ \u{8}\u{c}\n\r\t".into())
    );
    assert_eq!(
        value(r#"a eq "\u00e9\u00C9 \uD83D\uDE00""#),
        Literal::String("éÉ 😀".into())
    );
    assert_eq!(
        value(r#"a eq "ünïcødé 😀""#),
        Literal::String("ünïcødé 😀".into())
    );
    assert_eq!(value(r#"a eq """#), Literal::String(String::new()));
    assert_eq!(value("a eq 42"), Literal::Integer(42));
    assert_eq!(value("a eq -0"), Literal::Integer(0));
    assert_eq!(value("a eq -7"), Literal::Integer(-7));
    assert_eq!(value("a eq 1.5"), Literal::Decimal(1.5));
    assert_eq!(value("a eq 2e3"), Literal::Decimal(2000.0));
    assert_eq!(value("a eq -1.25E-2"), Literal::Decimal(-0.0125));
    assert_eq!(value("a eq 99999999999999999999"), Literal::Decimal(1e20));
    assert_eq!(value("a eq true"), Literal::Bool(true));
    assert_eq!(value("a eq False"), Literal::Bool(false));
    assert_eq!(value("a eq NULL"), Literal::Null);
}

#[test]
fn display_round_trips() {
    for input in [
        r#"userName eq "a\"b\\c\u0001" and (emails[type eq "work"] or not (active eq false))"#,
        "x eq 1.0 or y ge -2.5e-7 or z lt 12",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department ne null",
    ] {
        let once = canon(input);
        assert_eq!(canon(&once), once);
    }
}

#[test]
fn errors_name_the_position_and_what_was_expected() {
    let cases: &[(&str, &str)] = &[
        ("", "position 1: the filter is empty"),
        ("   ", "position 4: the filter is empty"),
        ("userName", "position 9: expected a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after 'userName'"),
        ("userName   xx \"a\"", "position 12: expected a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after 'userName'"),
        ("userName = \"a\"", "position 10: expected a comparison operator"),
        ("userName eq", "position 12: expected a space and then a value"),
        ("userName eq ", "position 13: expected a value (a JSON string, number, true, false or null) after 'eq'"),
        ("userName eq bjensen", "position 13: expected a value (a JSON string, number, true, false or null) after 'eq'; strings must be in double quotes"),
        ("userName eq \"abc", "position 17: expected '\"' to end the string that starts at position 13"),
        ("userName eq \"a\\qb\"", "position 15: invalid escape '\\q'"),
        ("userName eq \"\\u12\"", "position 14: expected 4 hexadecimal digits after '\\u'"),
        ("userName eq \"\\uD83D\"", "position 20: expected a \\u escape with the low surrogate"),
        ("userName eq \"\\uDE00\"", "position 14: unpaired low surrogate"),
        ("userName eq \"\\uD83D\\u0041\"", "position 20: expected a low surrogate"),
        ("userName eq \"a\u{1}\"", "position 15: control characters in strings must be escaped"),
        ("userName eq \"\\u0000\"", "position 14: NUL characters are not allowed"),
        ("a eq 01", "position 6: numbers must not have leading zeros"),
        ("a eq 1.", "position 8: expected a digit after the decimal point"),
        ("a eq 1e", "position 8: expected a digit in the exponent"),
        ("a eq -", "position 7: expected a digit in the number"),
        ("a eq 1e999", "position 6: the number 1e999 is out of range"),
        ("a eq 1x", "position 7: expected a space, 'and', 'or', ')' or the end of the filter"),
        ("a eq \"x\"y", "position 9: expected a space, 'and', 'or', ')' or the end of the filter"),
        ("a pr b pr", "position 6: expected 'and', 'or' or the end of the filter"),
        ("a pr andy b pr", "position 6: expected 'and', 'or' or the end of the filter"),
        ("a pr and", "position 9: expected an attribute path, '(' or 'not' at the end of the filter"),
        ("a pr or )", "position 9: expected an attribute path, '(' or 'not', found ')'"),
        ("(a pr", "position 6: expected 'and', 'or' or ')' to close the '(' at position 1"),
        ("a pr)", "position 5: unexpected ')' without a matching '('"),
        ("a pr]", "position 5: unexpected ']' without a matching '['"),
        ("not a pr", "position 5: expected '(' after 'not'"),
        ("not", "position 4: expected '(' after 'not'"),
        ("emails[type eq \"w\"", "position 19: expected 'and', 'or' or ']' to close the '[' at position 7"),
        ("emails[type[value pr]]", "position 12: value filters cannot be nested"),
        ("emails[(type[value pr])]", "position 13: value filters cannot be nested"),
        ("name.givenName[x pr]", "position 15: expected a comparison operator"),
        ("emails[type pr].", "position 17: expected a sub-attribute name"),
        ("emails[type pr].value", "position 22: expected a comparison operator"),
        ("1abc pr", "position 1: expected an attribute name, found '1abc'"),
        ("name. pr", "position 6: expected a sub-attribute name after 'name.', found ''"),
        ("a.b.c pr", "position 4: an attribute path has at most one sub-attribute"),
        (":a pr", "position 1: expected a schema URN before ':'"),
        ("urn:x: pr", "position 7: expected an attribute name after the schema URN, found ''"),
        ("userName eq \"é\" and 💥 pr", "position 21: expected an attribute path, '(' or 'not', found '💥'"),
    ];
    for (input, expected) in cases {
        let detail = parse_err(input);
        assert!(
            detail.starts_with("invalid filter at "),
            "{input:?}: {detail}"
        );
        assert!(
            detail.contains(expected),
            "{input:?}: got {detail:?}, expected {expected:?}"
        );
    }
}

#[test]
fn limits_are_enforced_with_positions() {
    let long = format!("userName eq \"{}\"", "é".repeat(MAX_FILTER_BYTES));
    assert!(
        parse_err(&long).contains("position 2055: the filter is longer than 4096 bytes"),
        "{}",
        parse_err(&long)
    );
    let ok = format!("userName eq \"{}\"", "a".repeat(MAX_FILTER_BYTES - 14));
    assert_eq!(ok.len(), MAX_FILTER_BYTES);
    assert!(parse(&ok).is_ok());

    let nested = |n: usize| format!("{}a pr{}", "(".repeat(n), ")".repeat(n));
    assert!(parse(&nested(MAX_DEPTH)).is_ok());
    assert!(parse_err(&nested(MAX_DEPTH + 1))
        .contains("position 33: the filter nests deeper than 32 levels"));
    let nots = |n: usize| format!("{}a pr{}", "not (".repeat(n), ")".repeat(n));
    assert!(parse(&nots(MAX_DEPTH)).is_ok());
    assert!(parse_err(&nots(MAX_DEPTH + 1)).contains("nests deeper than 32 levels"));
    let brackets = format!(
        "{}emails[{}type pr{}]{}",
        "(".repeat(31),
        "(",
        ")",
        ")".repeat(31)
    );
    assert!(parse_err(&brackets).contains("position 39: the filter nests deeper"));

    let many = |n: usize| vec!["a pr"; n].join(" or ");
    assert!(parse(&many(MAX_COMPARISONS)).is_ok());
    assert!(parse_err(&many(MAX_COMPARISONS + 1))
        .contains("position 1601: the filter has more than 200 comparisons"));
    let entra = format!(
        "{} or emails[type pr].value pr",
        vec!["a pr"; MAX_COMPARISONS - 1].join(" or ")
    );
    assert!(parse_err(&entra).contains("more than 200 comparisons"));
}

#[test]
fn garbage_never_panics() {
    let mut rng = XorShift::new(0x5eed);
    let tokens = [
        "userName",
        "emails",
        "[",
        "]",
        "(",
        ")",
        "not",
        "and",
        "or",
        "eq",
        "pr",
        "co",
        " ",
        " ",
        "\"",
        "\"x\"",
        "\\",
        "\\u",
        "D83D",
        ".",
        ":",
        "urn:ietf:params:scim:schemas:core:2.0:User:",
        "1",
        "-",
        "e",
        "true",
        "null",
        "é",
        "😀",
        "\u{0}",
        "\t",
        "value",
        "type",
        "members",
        "$ref",
        "0x",
        "[]",
        "..",
        "::",
    ];
    for _ in 0..20_000 {
        let input: String = match rng.below(3) {
            0 => {
                let bytes: Vec<u8> = (0..rng.below(40)).map(|_| rng.below(256) as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            1 => (0..rng.below(16)).map(|_| *rng.pick(&tokens)).collect(),
            _ => {
                let base = "emails[type eq \"work\" and not (value co \"x\")].value sw \"a\" or (userName eq \"é\\u00e9\")";
                let mut chars: Vec<char> = base.chars().collect();
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(chars.len() + 1);
                    match rng.below(3) {
                        0 if at < chars.len() => {
                            chars.remove(at);
                        }
                        1 => chars.insert(
                            at,
                            *rng.pick(&['(', ')', '[', ']', '"', '\\', ' ', '.', 'é', '\u{0}']),
                        ),
                        _ => chars.truncate(at),
                    }
                }
                chars.into_iter().collect()
            }
        };
        if let Ok(f) = parse(&input) {
            // Whatever parses must survive every later stage too.
            for rt in [USER, GROUP, None] {
                let _ = matches(
                    &f,
                    rt,
                    &json!({"userName": "x", "emails": [{"value": "x"}]}),
                );
                let mut params = Vec::new();
                let _ = crate::store::query::where_sql(&f, rt, &mut params);
            }
            assert_eq!(
                parse(&f.to_string()).map(|g| g.to_string()).ok(),
                Some(f.to_string()),
                "{input:?}"
            );
        }
    }
}

// ---- resolution and type rules --------------------------------------------------------------

#[test]
fn resolves_core_extension_and_common_attributes() {
    let path = |s: &str| parse_attr_path(s).unwrap();
    let r = resolve(&path("NAME.GIVENNAME"), USER).unwrap();
    assert_eq!(r.json_path(), ["name", "givenName"]);
    assert_eq!(r.owner, USER);
    let r = resolve(
        &path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
        USER,
    )
    .unwrap();
    assert_eq!(r.json_path(), [ENTERPRISE_USER_SCHEMA, "manager", "value"]);
    assert!(r.leaf().case_exact);
    let r = resolve(
        &path("URN:IETF:params:scim:schemas:extension:enterprise:2.0:User:Department"),
        USER,
    )
    .unwrap();
    assert_eq!(r.json_path(), [ENTERPRISE_USER_SCHEMA, "department"]);
    let r = resolve(&path("department"), USER).unwrap();
    assert_eq!(r.extension, Some(ENTERPRISE_USER_SCHEMA));
    let r = resolve(
        &path("urn:ietf:params:scim:schemas:core:2.0:User:userName"),
        USER,
    )
    .unwrap();
    assert_eq!(r.json_path(), ["userName"]);
    let r = resolve(&path("meta.lastModified"), GROUP).unwrap();
    assert_eq!(
        (r.json_path(), r.leaf().kind, r.owner),
        (vec!["meta", "lastModified"], AttrType::DateTime, None)
    );
    assert_eq!(resolve(&path("id"), None).unwrap().owner, None);
    assert_eq!(resolve(&path("displayName"), None).unwrap().owner, None);
    assert_eq!(resolve(&path("userName"), None).unwrap().owner, USER);
    assert_eq!(resolve(&path("members.value"), None).unwrap().owner, GROUP);
    for (bad, rt) in [
        ("nope", USER),
        ("members", USER),
        ("userName", GROUP),
        ("name.nope", USER),
        ("nope", None),
        ("urn:ietf:params:scim:schemas:core:2.0:Group:userName", USER),
    ] {
        let e = resolve(&path(bad), rt).unwrap_err();
        assert!(
            e.detail.contains(&format!("unknown attribute '{bad}'")),
            "{bad}: {}",
            e.detail
        );
    }
}
use crate::proto::schema::AttrType;

#[test]
fn type_rules_are_enforced() {
    let cases: &[(&str, &str)] = &[
        (
            "active gt true",
            "position 8: 'gt' cannot be used with the boolean attribute 'active'",
        ),
        (
            "active co \"t\"",
            "'co' cannot be used with the boolean attribute 'active'",
        ),
        (
            "active eq \"true\"",
            "position 11: 'active' is a boolean attribute: expected true or false, found \"true\"",
        ),
        (
            "meta.created co \"2020\"",
            "'co' cannot be used with the dateTime attribute 'meta.created'",
        ),
        (
            "meta.created gt \"yesterday\"",
            "expected an RFC 3339 date-time",
        ),
        ("meta.created gt 5", "expected an RFC 3339 date-time string"),
        (
            "meta.lastModified ew \"Z\"",
            "'ew' cannot be used with the dateTime attribute",
        ),
        (
            "userName eq 5",
            "'userName' is a string attribute: expected a string, found 5",
        ),
        ("userName eq true", "expected a string"),
        (
            "name eq \"x\"",
            "position 1: 'name' is complex: name a sub-attribute, e.g. 'name.formatted'",
        ),
        ("name co \"x\"", "'name' is complex"),
        (
            "emails gt \"a\"",
            "'emails' is complex: 'gt' needs a sub-attribute, e.g. 'emails.value'",
        ),
        (
            "addresses eq \"x\"",
            "'addresses' is complex and has no 'value'",
        ),
        (
            "x509Certificates.value gt \"a\"",
            "'gt' cannot be used with the binary attribute",
        ),
        (
            "userName gt null",
            "null can only be compared with 'eq' or 'ne', not 'gt'",
        ),
        (
            "password eq \"secret\"",
            "the attribute 'password' cannot be used in a filter",
        ),
        (
            "meta.location sw \"https\"",
            "'meta.location' cannot be used",
        ),
        (
            "meta.version eq \"W/\\\"1\\\"\"",
            "'meta.version' cannot be used",
        ),
        ("groups.$ref pr", "'groups.$ref' cannot be used"),
        (
            "groups[$ref pr]",
            "position 8: the attribute 'groups.$ref' cannot be used",
        ),
        (
            "emails[emails.type eq \"work\"]",
            "inside 'emails[...]' name a sub-attribute of 'emails', not 'emails.type'",
        ),
        ("emails[nope eq \"x\"]", "unknown attribute 'emails.nope'"),
        (
            "emails[primary eq \"yes\"]",
            "'primary' is a boolean attribute",
        ),
        ("userName[value eq \"x\"]", "'userName' is not complex"),
        ("name[givenName gt 1]", "'givenName' is a string attribute"),
        // Names some schema defines stay typed: a type that lacks them refuses them.
        (
            "userName pr and members.value eq 1",
            "position 17: unknown attribute 'members.value'",
        ),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nope pr",
            "unknown attribute",
        ),
        (
            "urn:ietf:params:scim:schemas:core:2.0:Group:nope pr",
            "unknown attribute",
        ),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager:x pr",
            "unknown attribute",
        ),
        ("members pr", "unknown attribute 'members'"),
        ("schemas eq \"x\"", "unknown attribute 'schemas'"),
    ];
    for (input, expected) in cases {
        let detail = bind_err(input, USER);
        assert!(
            detail.contains(expected),
            "{input:?}: got {detail:?}, expected {expected:?}"
        );
    }
    assert!(bind_err("members[display gt 1]", GROUP).contains("'display' is a string attribute"));
    assert!(bind_err("members.$ref eq \"x\"", GROUP).contains("'members.$ref' cannot be used"));
    assert!(bind_err("groups pr", GROUP).contains("unknown attribute 'groups'"));
    assert!(bind_err("emails pr", GROUP).contains("unknown attribute 'emails'"));
    assert!(bind_err("members[nope pr]", None).contains("unknown attribute 'members.nope'"));
    assert!(bind_err("userName gt 1", None).contains("expected a string"));
    for ok in [
        "emails eq \"a@b\"",
        "emails co \"x\"",
        "emails ne \"x\"",
        "emails pr",
        "name pr",
        "name eq null",
        "meta pr",
        "meta.created gt \"2020-01-01T00:00:00+02:00\"",
        "active eq true",
        "active ne false",
        "x509Certificates.value co \"AB\"",
        "manager.value eq \"x\"",
        "name[givenName eq \"x\" and familyName pr]",
        "meta[created lt \"2030-01-01T00:00:00Z\"]",
        "groups[display co \"x\" and type eq \"direct\"]",
        "groups eq \"g1\"",
    ] {
        let f = parse(ok).unwrap();
        bind(&f, USER).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for ok in [
        "members eq \"u1\"",
        "members[type eq \"User\"]",
        "members.display sw \"a\"",
        "displayName eq \"x\"",
    ] {
        bind(&parse(ok).unwrap(), GROUP).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn root_searches_guard_type_specific_attributes() {
    let node = |s: &str| bind(&parse(s).unwrap(), None).unwrap().0;
    assert!(matches!(node("displayName eq \"x\""), Node::Cmp { .. }));
    assert!(matches!(node("id eq \"x\""), Node::Cmp { .. }));
    assert!(matches!(
        node("userName eq \"x\""),
        Node::OfType(ResourceType::User, _)
    ));
    assert!(matches!(
        node("members pr"),
        Node::OfType(ResourceType::Group, _)
    ));
    assert!(matches!(
        node("groups pr"),
        Node::OfType(ResourceType::User, _)
    ));
    assert!(matches!(
        node("urn:ietf:params:scim:schemas:core:2.0:Group:displayName pr"),
        Node::OfType(ResourceType::Group, _)
    ));
}

// ---- evaluation -------------------------------------------------------------------------------

fn user() -> Value {
    json!({
        "id": "u1",
        "userName": "BJensen@Example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "displayName": "Babs Ö",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "externalId": "E-1",
        ENTERPRISE_USER_SCHEMA: {"department": "R&D", "manager": {"value": "m1"}},
        "groups": [{"value": "g1", "display": "Admins", "type": "direct"}],
        "meta": {"resourceType": "User", "created": "2020-05-01T10:00:00.000Z", "lastModified": "2024-02-29T23:59:59.999Z"}
    })
}

#[test]
fn evaluates_comparisons_with_schema_semantics() {
    let u = user();
    let t = |s: &str| {
        let f = parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        validate(&f, USER).unwrap_or_else(|e| panic!("{s}: {e}"));
        matches(&f, USER, &u)
    };
    // caseExact false: ASCII folding only.
    assert!(t("userName eq \"bjensen@example.COM\""));
    assert!(t(
        "USERNAME sw \"bjen\" and username ew \".COM\" and userName co \"@EX\""
    ));
    assert!(t("displayName co \"Ö\"") && !t("displayName co \"ö\""));
    assert!(!t("displayName eq \"BABS ö\""));
    assert!(t("displayName eq \"BABS Ö\""));
    // caseExact true.
    assert!(t("externalId eq \"E-1\"") && !t("externalId eq \"e-1\""));
    assert!(t("id sw \"u\"") && !t("id sw \"U\""));
    assert!(t(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"m1\""
    ));
    assert!(!t(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"M1\""
    ));
    assert!(t(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"r&d\""
    ));
    // Ordering.
    assert!(t(
        "userName gt \"BJ\" and userName lt \"bk\" and userName ge \"bjensen@example.com\""
    ));
    assert!(t("name.familyName le \"jensen\""));
    // Booleans, dateTimes as instants.
    assert!(t("active eq true") && !t("active eq false") && t("active ne false"));
    assert!(t("meta.created eq \"2020-05-01T12:00:00+02:00\""));
    assert!(
        t("meta.created gt \"2020-05-01T09:59:59.999Z\"")
            && !t("meta.created gt \"2020-05-01T10:00:00Z\"")
    );
    assert!(t("meta.lastModified ge \"2024-02-29T23:59:59.9999Z\""));
    // Multi-valued: any value; `ne` = not any equal; shorthand `value`.
    assert!(
        t("emails.type eq \"home\"")
            && t("emails eq \"BABS@jensen.org\"")
            && t("emails co \"jensen.org\"")
    );
    assert!(!t("emails.type ne \"home\""));
    assert!(t("emails.type ne \"other\""));
    assert!(t("emails[type ne \"home\"]"));
    assert!(t("emails[type eq \"work\" and primary eq true]"));
    assert!(!t("emails[type eq \"home\" and primary eq true]"));
    assert!(t("emails[type eq \"home\"].value eq \"babs@jensen.org\""));
    assert!(!t("emails[type eq \"work\"].value eq \"babs@jensen.org\""));
    assert!(t(
        "groups[display eq \"admins\"] and groups.type eq \"direct\" and groups eq \"G1\""
    ));
    // Absent attributes: comparisons false, `ne` and `not` true.
    assert!(!t("title eq \"x\"") && t("title ne \"x\"") && t("not (title co \"\")"));
    assert!(!t("title pr") && t("title eq null") && t("userName ne null"));
    // Presence.
    assert!(t("name pr") && t("emails pr") && t("emails.primary pr") && t("meta pr") && t("id pr"));
    assert!(t("name[givenName sw \"b\" and not (middleName pr)]"));
    assert!(t("meta[created lt \"2021-01-01T00:00:00Z\"]"));
    assert!(t("urn:ietf:params:scim:schemas:core:2.0:User:userName pr"));
}

#[test]
fn presence_ignores_nulls_and_empty_values() {
    let f = |s: &str| parse(s).unwrap();
    let cases = [
        (json!({"title": ""}), "title pr", false),
        (json!({"title": null}), "title pr", false),
        (json!({"name": {}}), "name pr", false),
        (
            json!({"name": {"givenName": null, "familyName": ""}}),
            "name pr",
            false,
        ),
        (json!({"name": {"givenName": "x"}}), "name pr", true),
        (json!({"emails": []}), "emails pr", false),
        (json!({"emails": [{}]}), "emails pr", false),
        (json!({"emails": [{"primary": false}]}), "emails pr", true),
        (json!({"emails": [{"value": ""}]}), "emails.value pr", false),
        (json!({"active": false}), "active pr", true),
    ];
    for (res, filter, expected) in cases {
        assert_eq!(
            matches(&f(filter), USER, &res),
            expected,
            "{filter} over {res}"
        );
    }
}

#[test]
fn root_evaluation_checks_the_resource_type() {
    let group = json!({"id": "g", "displayName": "Admins", "meta": {"resourceType": "Group"},
        "members": [{"value": "u1", "type": "User", "display": "Babs"}]});
    let u = user();
    let t = |s: &str, r: &Value| matches(&parse(s).unwrap(), None, r);
    assert!(t("displayName sw \"a\"", &group) && t("displayName sw \"b\"", &u));
    assert!(t("members[type eq \"user\"]", &group) && !t("members pr", &u));
    assert!(!t("userName pr", &group) && t("not (userName pr)", &group));
    assert!(
        t("meta.resourceType eq \"Group\"", &group) && !t("meta.resourceType eq \"group\"", &group)
    );
}

#[test]
fn unbindable_filters_match_nothing() {
    assert!(!matches(&parse("members eq \"x\"").unwrap(), USER, &user()));
    assert!(!matches(
        &parse("not (members eq \"x\")").unwrap(),
        USER,
        &user()
    ));
}
