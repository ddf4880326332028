use super::*;
use crate::proto::error::ScimType;
use crate::proto::filter::parse;
use rusqlite::Connection;
use std::collections::BTreeSet;

/// An in-memory database with the production migration applied, as D1 runs it.
pub(super) fn open_db() -> Connection {
    let conn = Connection::open_in_memory().expect("in-memory sqlite");
    conn.execute_batch("PRAGMA foreign_keys = ON;")
        .expect("pragma");
    for m in crate::testing::migrations() {
        conn.execute_batch(m).expect("migration");
    }
    conn
}

pub(super) fn to_sql(v: &SqlValue) -> rusqlite::types::Value {
    match v {
        SqlValue::Null => rusqlite::types::Value::Null,
        SqlValue::Int(i) => rusqlite::types::Value::Integer(*i),
        SqlValue::Real(f) => rusqlite::types::Value::Real(*f),
        SqlValue::Text(s) => rusqlite::types::Value::Text(s.clone()),
    }
}

/// Ids returned by `sql` (first column).
pub(super) fn query_ids(
    conn: &Connection,
    sql: &str,
    params: &[SqlValue],
) -> Result<BTreeSet<String>, String> {
    let mut stmt = conn.prepare(sql).map_err(|e| format!("{e}: {sql}"))?;
    let rows = stmt
        .query_map(
            rusqlite::params_from_iter(params.iter().map(to_sql)),
            |row| row.get::<_, String>(0),
        )
        .map_err(|e| format!("{e}: {sql}"))?;
    rows.collect::<Result<BTreeSet<_>, _>>()
        .map_err(|e| format!("{e}: {sql}"))
}

fn plan(input: &str, rt: Option<ResourceType>) -> (String, Vec<SqlValue>) {
    let f = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
    let mut params = Vec::new();
    let sql = where_sql(&f, rt, &mut params).unwrap_or_else(|e| panic!("{input}: {e}"));
    (sql, params)
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_string())
}

const USER: Option<ResourceType> = Some(ResourceType::User);
const GROUP: Option<ResourceType> = Some(ResourceType::Group);

#[test]
fn indexed_attributes_use_their_columns() {
    assert_eq!(
        plan("USERNAME eq \"Bob\"", USER),
        ("r.user_name = ? COLLATE NOCASE".into(), vec![text("Bob")])
    );
    assert_eq!(
        plan("displayName eq \"B\"", GROUP),
        ("r.display_name = ? COLLATE NOCASE".into(), vec![text("B")])
    );
    assert_eq!(
        plan("externalId eq \"e\"", USER),
        ("r.external_id = ?".into(), vec![text("e")])
    );
    assert_eq!(
        plan("id eq \"x\"", None),
        ("r.id = ?".into(), vec![text("x")])
    );
    assert_eq!(
        plan("meta.lastModified gt \"2024-01-01T01:00:00+01:00\"", USER),
        (
            "r.modified > ?".into(),
            vec![text("2024-01-01T00:00:00.000Z")]
        )
    );
    assert_eq!(
        plan("meta.resourceType eq \"User\"", None),
        ("r.type = ?".into(), vec![text("User")])
    );
}

#[test]
fn strings_follow_case_exactness() {
    assert_eq!(
        plan(r#"userName co "50%_\\x""#, USER),
        (
            "r.user_name LIKE ? ESCAPE '\\'".into(),
            vec![text("%50\\%\\_\\\\x%")]
        )
    );
    assert_eq!(plan("title sw \"a\"", USER).1, vec![text("a%")]);
    assert_eq!(plan("title ew \"a\"", USER).1, vec![text("%a")]);
    assert_eq!(
        plan("title ge \"a\"", USER).0,
        "json_extract(r.data, '$.title') >= ? COLLATE NOCASE"
    );
    assert_eq!(
        plan("externalId co \"E\"", USER).0,
        "instr(r.external_id, ?) > 0"
    );
    assert_eq!(
        plan("externalId sw \"E\"", USER).0,
        "instr(r.external_id, ?) = 1"
    );
    assert_eq!(
        plan("externalId ew \"é1\"", USER),
        (
            "substr(r.external_id, -?) = ?".into(),
            vec![SqlValue::Int(2), text("é1")]
        )
    );
    assert_eq!(
        plan("externalId ew \"\"", USER).0,
        "instr(r.external_id, ?) > 0"
    );
    assert_eq!(plan("externalId lt \"E\"", USER).0, "r.external_id < ?");
    assert_eq!(
        plan("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"m\"", USER).0,
        "json_extract(r.data, '$.\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\".manager.value') = ?"
    );
    assert_eq!(
        plan("active eq true", USER),
        (
            "json_extract(r.data, '$.active') = ?".into(),
            vec![SqlValue::Int(1)]
        )
    );
}

#[test]
fn multi_valued_and_member_attributes_use_exists() {
    let (sql, params) = plan("emails[type eq \"work\" and value co \"@x\"]", USER);
    assert_eq!(
        sql,
        "EXISTS (SELECT 1 FROM json_each(r.data, '$.emails') e WHERE \
         (json_extract(CASE e.type WHEN 'object' THEN e.value END, '$.type') = ? COLLATE NOCASE AND \
         json_extract(CASE e.type WHEN 'object' THEN e.value END, '$.value') LIKE ? ESCAPE '\\'))"
    );
    assert_eq!(params, vec![text("work"), text("%@x%")]);
    assert_eq!(
        plan("members[value eq \"u1\"]", GROUP).0,
        "EXISTS (SELECT 1 FROM members m WHERE m.tenant = r.tenant AND m.group_id = r.id AND m.member_id = ?)"
    );
    assert_eq!(
        plan("groups.display sw \"a\"", USER).0,
        "EXISTS (SELECT 1 FROM members m JOIN resources x ON x.tenant = m.tenant AND x.id = m.group_id \
         WHERE m.tenant = r.tenant AND m.member_id = r.id AND x.display_name LIKE ? ESCAPE '\\')"
    );
    assert_eq!(
        plan("emails.type ne \"work\"", USER).0,
        "NOT COALESCE(EXISTS (SELECT 1 FROM json_each(r.data, '$.emails') e WHERE \
         json_extract(CASE e.type WHEN 'object' THEN e.value END, '$.type') = ? COLLATE NOCASE), 0)"
    );
    assert_eq!(
        plan("userName pr", None).0,
        "(r.type = 'User' AND EXISTS (SELECT 1 FROM json_tree(r.data, '$.userName') t WHERE t.atom <> ''))"
    );
}

#[test]
fn input_never_reaches_the_sql_text() {
    let evil = r#"x' OR 1=1; DROP TABLE resources; --"#;
    let filter = format!(
        "userName eq {v} or emails[value co {v}] or members.display ew {v} or externalId ew {v}",
        v = serde_json::to_string(evil).unwrap()
    );
    for rt in [None, USER] {
        let f = parse(&filter.replace("members.display", "displayName")).unwrap();
        let mut params = vec![text("tenant")];
        let sql = where_sql(&f, rt, &mut params).unwrap();
        assert!(!sql.contains("DROP") && !sql.contains("1=1"), "{sql}");
        assert_eq!(params[0], text("tenant"), "caller's params come first");
        assert_eq!(sql.matches('?').count(), params.len() - 1);
    }
}

#[test]
fn too_many_params_is_invalid_filter_and_leaves_params_untouched() {
    let many = |n: usize| vec!["externalId ew \"x\""; n].join(" or ");
    let limit = MAX_PARAMS - RESERVED_PARAMS;
    let mut params = Vec::new();
    assert!(where_sql(&parse(&many(limit / 2)).unwrap(), USER, &mut params).is_ok());
    assert_eq!(params.len(), limit);
    let mut params = vec![text("t")];
    let err = where_sql(&parse(&many(limit / 2)).unwrap(), USER, &mut params).unwrap_err();
    assert_eq!(err.scim_type, Some(ScimType::InvalidFilter));
    assert!(err.detail.contains("too complex"), "{}", err.detail);
    assert_eq!(params, vec![text("t")]);
    let err = where_sql(&parse("members eq 1").unwrap(), USER, &mut params).unwrap_err();
    assert_eq!(
        (err.scim_type, params.len()),
        (Some(ScimType::InvalidFilter), 1)
    );
}

/// `EXPLAIN QUERY PLAN` detail lines.
fn query_plan(conn: &Connection, sql: &str, params: &[SqlValue]) -> String {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("explain");
    let rows = stmt
        .query_map(
            rusqlite::params_from_iter(params.iter().map(to_sql)),
            |row| row.get::<_, String>(3),
        )
        .expect("plan");
    rows.map(|r| r.expect("row")).collect::<Vec<_>>().join("\n")
}

#[test]
fn indexed_lookups_use_an_index() {
    let conn = open_db();
    let cases = [
        ("userName eq \"bjensen\"", USER, "resources_user_name"),
        ("externalId eq \"e1\"", USER, "resources_external_id"),
        ("displayName eq \"Babs\"", USER, "resources_display_name"),
        ("displayName eq \"Admins\"", GROUP, "resources_"),
        ("id eq \"u1\"", USER, "sqlite_autoindex_resources_1"),
        (
            "userName eq \"bjensen\" and active eq true",
            USER,
            "resources_user_name",
        ),
        (
            "externalId eq \"e1\" and (title pr or nickName pr)",
            USER,
            "resources_external_id",
        ),
        // Entra's email match and its shorthand forms use the value index (migration 0004).
        (
            "emails[type eq \"work\"].value eq \"b@example.com\"",
            USER,
            "value_index_lookup",
        ),
        (
            "emails.value eq \"b@example.com\"",
            USER,
            "value_index_lookup",
        ),
        ("emails eq \"b@example.com\"", USER, "value_index_lookup"),
        (
            "phoneNumbers[type eq \"mobile\" and value eq \"+1\"]",
            USER,
            "value_index_lookup",
        ),
    ];
    for (filter, rt, index) in cases {
        let (w, mut params) = plan(filter, rt);
        params.insert(0, text("default"));
        let type_cond = rt
            .map(|t| format!(" AND r.type = '{}'", t.name()))
            .unwrap_or_default();
        let sql = format!("SELECT r.id FROM resources r WHERE r.tenant = ?{type_cond} AND ({w})");
        let plan = query_plan(&conn, &sql, &params);
        let used = plan.contains(&format!("USING INDEX {index}"))
            || plan.contains(&format!("USING COVERING INDEX {index}"));
        assert!(used, "{filter}: {plan}");
        assert!(!plan.contains("SCAN r"), "{filter}: {plan}");
    }
    // Membership lookups go through the members primary key / by-member index.
    for (filter, rt) in [
        ("members[value eq \"u1\"]", GROUP),
        ("groups.value eq \"g1\"", USER),
    ] {
        let (w, mut params) = plan(filter, rt);
        params.insert(0, text("default"));
        let sql = format!("SELECT r.id FROM resources r WHERE r.tenant = ? AND ({w})");
        let plan = query_plan(&conn, &sql, &params);
        assert!(plan.contains("SEARCH m USING"), "{filter}: {plan}");
    }
}

#[test]
fn sort_expressions_follow_the_schema() {
    assert_eq!(
        sort_sql("userName", USER).unwrap().expr,
        "r.user_name COLLATE NOCASE"
    );
    assert_eq!(
        sort_sql("UserName", None).unwrap().expr,
        "(CASE r.type WHEN 'User' THEN r.user_name END) COLLATE NOCASE"
    );
    assert_eq!(
        sort_sql("displayName", None).unwrap().expr,
        "r.display_name COLLATE NOCASE"
    );
    assert_eq!(sort_sql("id", None).unwrap().expr, "r.id");
    assert_eq!(sort_sql("externalId", USER).unwrap().expr, "r.external_id");
    assert_eq!(sort_sql("meta.created", GROUP).unwrap().expr, "r.created");
    assert_eq!(
        sort_sql("name.familyName", USER).unwrap().expr,
        "json_extract(r.data, '$.name.familyName') COLLATE NOCASE"
    );
    assert_eq!(
        sort_sql("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", USER).unwrap().expr,
        "json_extract(r.data, '$.\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\".manager.value')"
    );
    assert!(sort_sql("emails", USER)
        .unwrap()
        .expr
        .starts_with("(SELECT json_extract("));
    // Names no schema defines are undeclared attributes, sorted by value; under a defined
    // schema's URN they stay unknown.
    assert!(sort_sql("nope", USER).unwrap().expr.starts_with(
        "(SELECT a.atom FROM json_each(r.data) a WHERE a.key = 'nope' COLLATE NOCASE"
    ));
    for (bad, rt) in [
        ("urn:ietf:params:scim:schemas:core:2.0:Group:nope", USER),
        (
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nope",
            USER,
        ),
        ("emails", GROUP),
        ("name", USER),
        ("password", USER),
        ("members", USER),
        ("meta.location", USER),
        ("addresses", USER),
        ("userName eq", USER),
        ("", USER),
        ("members.$ref", GROUP),
    ] {
        let err = sort_sql(bad, rt).unwrap_err();
        assert_eq!(
            err.scim_type,
            Some(ScimType::InvalidValue),
            "{bad}: {}",
            err.detail
        );
    }
}

#[test]
fn sorting_by_multi_valued_attributes_uses_the_primary_or_first_value() {
    let conn = open_db();
    let users = [
        (
            "u1",
            r#"{"userName":"a","emails":[{"value":"z@x"},{"value":"b@x","primary":true}]}"#,
        ),
        (
            "u2",
            r#"{"userName":"b","emails":[{"type":"work"},{"value":"C@x"},{"value":"a@x"}]}"#,
        ),
        ("u3", r#"{"userName":"c"}"#),
        (
            "u4",
            r#"{"userName":"d","emails":[{"value":"a@x","primary":false}]}"#,
        ),
    ];
    for (id, data) in users {
        conn.execute(
            "INSERT INTO resources (tenant, id, type, data, created, modified) VALUES ('default', ?1, 'User', ?2, 'c', 'm')",
            [id, data],
        )
        .expect("insert");
    }
    conn.execute_batch(
        "INSERT INTO resources (tenant, id, type, data, created, modified) VALUES ('default', 'g1', 'Group', '{\"displayName\":\"G\"}', 'c', 'm');
         INSERT INTO members VALUES ('default', 'g1', 'u3'), ('default', 'g1', 'u2');",
    )
    .expect("group");
    let order = |sort: &str, rt: Option<ResourceType>| -> Vec<String> {
        let key = sort_sql(sort, rt).unwrap().expr;
        let type_cond = rt
            .map(|t| format!(" AND r.type = '{}'", t.name()))
            .unwrap_or_default();
        let sql = format!("SELECT r.id FROM resources r WHERE r.tenant = 'default'{type_cond} ORDER BY {key} ASC, r.id");
        let mut stmt = conn.prepare(&sql).unwrap();
        let rows = stmt.query_map([], |row| row.get::<_, String>(0)).unwrap();
        rows.map(|r| r.unwrap()).collect()
    };
    // Keys: u1 → b@x (primary), u2 → C@x (first with a value), u3 → none, u4 → a@x.
    assert_eq!(order("emails.value", USER), ["u3", "u4", "u1", "u2"]);
    assert_eq!(order("emails", USER), ["u3", "u4", "u1", "u2"]);
    assert_eq!(order("groups.value", USER), ["u1", "u4", "u2", "u3"]);
    assert_eq!(order("members.value", GROUP), ["g1"]);
    assert_eq!(order("userName", None), ["g1", "u1", "u2", "u3", "u4"]);
}

#[test]
fn sort_orders_name_their_column_in_typed_terms() {
    use super::{Column, SortOrder};
    let col = |sort: &str, rt| sort_sql(sort, rt).map(|o: SortOrder| (o.column, o.nocase));
    assert_eq!(
        col("userName", USER).unwrap(),
        (Some(Column::UserName), true)
    );
    assert_eq!(
        col("displayName", None).unwrap(),
        (Some(Column::DisplayName), true)
    );
    assert_eq!(
        col("externalId", GROUP).unwrap(),
        (Some(Column::ExternalId), false)
    );
    assert_eq!(
        col("meta.lastModified", USER).unwrap(),
        (Some(Column::Modified), false)
    );
    assert_eq!(col("id", None).unwrap(), (Some(Column::Id), false));
    assert_eq!(col("title", USER).unwrap(), (None, true));
    assert_eq!(col("emails", USER).unwrap(), (None, true));
}

#[test]
fn undeclared_names_and_literals_are_bound_and_prefilter_the_text() {
    let (sql, params) = plan("urn:example:acme:2.0:Profile:Cost_Center eq \"a_b%\"", USER);
    assert_eq!(
        params,
        vec![
            text("%\"Cost\\_Center\"%"),
            text("%a\\_b\\%%"),
            text("urn:example:acme:2.0:Profile"),
            text("Cost_Center"),
            text("a_b%"),
        ]
    );
    assert!(!sql.contains("acme") && !sql.contains("Cost"), "{sql}");
    assert_eq!(sql.matches('?').count(), params.len());
    // A literal serde_json escapes in the text is not looked for there; `ne` is `not eq`.
    let (sql, params) = plan("shoeSize ne \"say \\\"hi\\\"\"", USER);
    assert_eq!(
        params,
        vec![text("%\"shoeSize\"%"), text("shoeSize"), text("say \"hi\"")]
    );
    assert!(sql.starts_with("NOT COALESCE("), "{sql}");
    // One element must satisfy the whole value filter: both literals are required.
    let (_, params) = plan(
        "urn:x:y:devices[type eq \"phone\" and serial eq \"P-7\" and not (a eq \"z\")]",
        USER,
    );
    assert_eq!(
        &params[..3],
        &[text("%\"devices\"%"), text("%phone%"), text("%P-7%")]
    );
}
