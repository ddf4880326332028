//! List pages as a plan: [`plan`] turns a [`ListQuery`] into the statements of one round trip
//! (pure, so every paging strategy is tested without SQLite), [`read`] turns their rows into a
//! [`ListPage`].
//!
//! Resources without a sort value come last in either direction; rowid breaks ties, so the
//! order is total and index and cursor paging agree on it.

use super::{
    int, parse_owned_row, related_sql, type_literal, ListPage, ListQuery, Result, Row, StoreError,
    COLUMNS,
};
use crate::proto::schema::ResourceType;
use crate::store::cursor::Position;
use crate::store::sql::{SqlValue, Stmt, LIMIT_PARAM, MAX_PARAMS};
use serde_json::Value;

/// The statements of one list page.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPlan {
    /// The count (unless inline), then the page (unless `count` is 0).
    pub stmts: Vec<Stmt>,
    /// The page statement carries the total as `_total`; there is no count statement.
    pub inline_total: bool,
}

/// The `WHERE` clause shared by the count and the page, and its parameters.
struct Scope {
    where_clause: String,
    params: Vec<SqlValue>,
    count_sql: String,
}

fn scope(tenant: &str, q: &ListQuery) -> Scope {
    let type_cond = match q.rt {
        Some(rt) => format!(" AND r.type = {}", type_literal(rt)),
        None => String::new(),
    };
    let filter = match &q.where_sql {
        Some(w) => format!(" AND ({w})"),
        None => String::new(),
    };
    let mut params: Vec<SqlValue> = vec![tenant.into()];
    params.extend(q.params.iter().cloned());
    let where_clause = format!("WHERE r.tenant = ?{type_cond}{filter}");
    let count_sql = format!("SELECT count(*) AS n FROM resources r {where_clause}");
    Scope {
        where_clause,
        params,
        count_sql,
    }
}

/// Plans one page. A first page — every lookup Entra and Okta make, and the first page of an
/// unfiltered list — carries its total in the page statement itself, as an uncorrelated
/// scalar subquery SQLite evaluates once: one statement instead of two, which D1 then runs
/// without a batch's transaction and hands back as arrays (`raw()`), not one object per row.
/// An empty first page means a total of 0. Later pages, and filters whose parameters would
/// not fit twice, count separately.
pub fn plan(tenant: &str, q: &ListQuery) -> ListPlan {
    let sc = scope(tenant, q);
    let fits = q.where_sql.is_none() || sc.params.len() * 2 + 2 <= MAX_PARAMS;
    let inline_total =
        q.count > 0 && q.after.is_none() && (q.cursor_mode || q.start_index == 1) && fits;
    let mut stmts = Vec::new();
    if !inline_total {
        let (sql, params) = total(tenant, q, &sc);
        stmts.push(Stmt::new(sql, params));
    }
    if q.count > 0 {
        stmts.push(page_stmt(tenant, q, sc, inline_total));
    }
    ListPlan {
        stmts,
        inline_total,
    }
}

/// The total's query (one row, `n`) and its parameters.
fn total(tenant: &str, q: &ListQuery, sc: &Scope) -> (String, Vec<SqlValue>) {
    match (&q.where_sql, q.rt) {
        // Unfiltered: the trigger-maintained counter (migration 0006), not a scan.
        (None, Some(rt)) => (
            format!(
                "SELECT coalesce((SELECT n FROM resource_counts WHERE tenant = ? AND type = {}), 0) AS n",
                type_literal(rt)
            ),
            vec![tenant.into()],
        ),
        (None, None) => (
            "SELECT coalesce(sum(n), 0) AS n FROM resource_counts WHERE tenant = ?".to_string(),
            vec![tenant.into()],
        ),
        (Some(_), _) => (sc.count_sql.clone(), sc.params.clone()),
    }
}

/// The related list (`members`/`groups`) column, if wanted.
fn related_column(q: &ListQuery) -> String {
    match (q.rt, q.with_related) {
        (Some(rt), true) => format!(", {}", related_sql(rt)),
        // Root searches span types: pick the related list by each row's type.
        (None, true) => format!(
            ", CASE r.type WHEN 'Group' THEN {} ELSE {} END AS related",
            strip_alias(related_sql(ResourceType::Group)),
            strip_alias(related_sql(ResourceType::User))
        ),
        _ => String::new(),
    }
}

/// The page statement.
fn page_stmt(tenant: &str, q: &ListQuery, sc: Scope, inline_total: bool) -> Stmt {
    let dir = if q.descending { "DESC" } else { "ASC" };
    let sort_expr = q.order.as_ref().map(|o| format!("({})", o.expr));
    let key = q
        .order
        .as_ref()
        .map(|o| SortKey::of(o, q.rt))
        .unwrap_or_default();
    // Unfiltered pages walk an index on the sort key (see `order_clause`).
    let walk = q.where_sql.is_none();
    let (total_col, mut params) = if inline_total {
        let (sql, mut p) = total(tenant, q, &sc);
        p.extend(sc.params);
        (format!(", ({sql}) AS _total"), p)
    } else {
        (String::new(), sc.params)
    };
    let mut page_where = sc.where_clause.clone();
    let mut missing_where = None;
    if let Some(pos) = &q.after {
        let keyset = keyset(q, pos, sort_expr.as_deref(), key, walk, &mut params);
        if keyset.missing_too {
            missing_where = sort_expr
                .as_ref()
                .map(|e| format!("{} AND {e} IS NULL", sc.where_clause));
        }
        page_where.push_str(&format!(" AND {}", keyset.condition));
    }
    let related = related_column(q);
    let sort_col = sort_expr.as_deref().unwrap_or("NULL");
    let select = |filter: &str| {
        format!(
            "SELECT {COLUMNS}{related}, r.rowid AS _rowid, {sort_col} AS _sort{total_col} \
             FROM resources r {filter}"
        )
    };
    let mut sql = select(&page_where);
    match &missing_where {
        Some(missing) => {
            // Only continuations get here, so there is no inline total (each arm would
            // evaluate it). The second arm binds the WHERE clause's values again.
            params.extend(std::iter::once(SqlValue::from(tenant)).chain(q.params.iter().cloned()));
            let collate = if key.nocase { " COLLATE NOCASE" } else { "" };
            sql.push_str(&format!(
                " UNION ALL {} ORDER BY _sort{collate} {dir} NULLS LAST, _rowid {dir}",
                select(missing)
            ));
        }
        None => {
            sql.push(' ');
            sql.push_str(&order_clause(sort_expr.as_deref(), dir, walk));
        }
    }
    sql.push(' ');
    sql.push_str(&limit(q, &mut params));
    Stmt::new(sql, params)
}

/// Unfiltered pages spell the order as an index on the sort key holds it,
/// `e NULLS LAST, rowid` (SQLite reads `ASC NULLS LAST` off an ascending index in two passes,
/// the values and then the missing ones), so a page of 100 reads about 100 index entries
/// instead of sorting the whole type. Filtered pages spell the same order as
/// `e IS NULL, e, rowid`, which no index serves: walking the sort index and testing every
/// resource against a selective filter (`externalId eq`) would visit the whole tenant, where
/// the filter's own index finds the few matches to sort. (Without ANALYZE statistics SQLite
/// picks the walk whenever it can.)
fn order_clause(sort_expr: Option<&str>, dir: &str, walk: bool) -> String {
    match sort_expr {
        Some(e) if walk => format!("ORDER BY {e} {dir} NULLS LAST, r.rowid {dir}"),
        Some(e) => format!("ORDER BY {e} IS NULL, {e} {dir}, r.rowid {dir}"),
        None => "ORDER BY r.rowid ASC".to_string(),
    }
}

/// Where a cursor page continues.
struct Keyset {
    condition: String,
    /// The page is the resources after the position that have a value, then (a second index
    /// walk, merged) all that lack one.
    missing_too: bool,
}

fn keyset(
    q: &ListQuery,
    pos: &Position,
    sort_expr: Option<&str>,
    key: SortKey,
    walk: bool,
    params: &mut Vec<SqlValue>,
) -> Keyset {
    let op = if q.descending { "<" } else { ">" };
    let (condition, missing_too) = match (sort_expr, pos.null) {
        (None, _) => {
            params.push(SqlValue::Int(pos.rowid));
            ("r.rowid > ?".to_string(), false)
        }
        (Some(e), true) => {
            params.push(SqlValue::Int(pos.rowid));
            (format!("{e} IS NULL AND r.rowid {op} ?"), false)
        }
        (Some(e), false) => {
            params.extend([
                pos.value_param(),
                pos.value_param(),
                SqlValue::Int(pos.rowid),
            ]);
            if walk && (key.never_null || key.indexed) {
                // A range the index can seek to; the missing values come after every value,
                // so they all follow the position.
                (
                    format!("{e} {op}= ? AND ({e} {op} ? OR r.rowid {op} ?)"),
                    !key.never_null,
                )
            } else {
                (
                    format!("({e} IS NULL OR {e} {op} ? OR ({e} = ? AND r.rowid {op} ?))"),
                    false,
                )
            }
        }
    };
    Keyset {
        condition,
        missing_too,
    }
}

fn limit(q: &ListQuery, params: &mut Vec<SqlValue>) -> String {
    if q.cursor_mode {
        // One extra row tells whether a next page exists.
        params.push(SqlValue::Int(q.count + 1));
        LIMIT_PARAM.to_string()
    } else {
        params.push(SqlValue::Int(q.count));
        params.push(SqlValue::Int(q.start_index - 1));
        format!("{LIMIT_PARAM} OFFSET ?")
    }
}

/// The page the plan's statements returned.
pub fn read(mut res: Vec<Vec<Row>>, q: &ListQuery, inline_total: bool) -> Result<ListPage> {
    let (total, page_at) = if inline_total {
        let first = res.first().and_then(|rows| rows.first());
        (first.and_then(|r| int(r.get("_total"))).unwrap_or(0), 0)
    } else {
        let n = res
            .first()
            .and_then(|rows| rows.first())
            .and_then(|r| int(r.get("n")));
        (n.unwrap_or(0), 1)
    };
    let mut items = Vec::new();
    let mut next = None;
    if page_at < res.len() {
        let mut rows = res.swap_remove(page_at);
        let page = usize::try_from(q.count).unwrap_or(0);
        if q.cursor_mode && rows.len() > page {
            if let Some(last) = rows.get(page.saturating_sub(1)) {
                let value = last.get("_sort").cloned().unwrap_or(Value::Null);
                next = Some(Position {
                    null: value.is_null(),
                    value,
                    rowid: int(last.get("_rowid")).ok_or(StoreError::Corrupt("rowid"))?,
                });
            }
        }
        rows.truncate(page);
        items.reserve(rows.len());
        for row in rows {
            items.push(parse_owned_row(row, q.with_related)?);
        }
    }
    Ok(ListPage { total, items, next })
}

/// What the store knows about a list's sort key, from the column the planner names.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SortKey {
    /// Every resource of the listed type has a value: the columns are `NOT NULL`, and
    /// `resource::validate` refuses a User without userName or a Group without displayName.
    never_null: bool,
    /// An index holds the listed type's resources in this key's order, then rowid: the
    /// `(tenant, type, …)` indexes of migrations 0001 and 0008, `(tenant, user_name)` for
    /// userName, and the primary key `(tenant, id)` for a root search by id. `meta.created`
    /// and a typed `id` have none (see 0008): their pages sort.
    indexed: bool,
    /// Compared case-insensitively (`COLLATE NOCASE`).
    nocase: bool,
}

impl SortKey {
    fn of(order: &crate::store::query::SortOrder, rt: Option<ResourceType>) -> SortKey {
        use crate::store::query::Column;
        let typed = rt.is_some();
        let (never_null, indexed) = match (order.column, order.nocase) {
            (Some(Column::Id), _) => (true, !typed),
            (Some(Column::Created), _) => (true, false),
            (Some(Column::Modified), _) => (true, typed),
            (Some(Column::UserName), true) => {
                let users = rt == Some(ResourceType::User);
                (users, users)
            }
            (Some(Column::DisplayName), true) => (rt == Some(ResourceType::Group), typed),
            (Some(Column::ExternalId), false) => (false, typed),
            _ => (false, false),
        };
        SortKey {
            never_null,
            indexed,
            nocase: order.nocase,
        }
    }
}

fn strip_alias(sql: &str) -> &str {
    sql.strip_suffix(" AS related").unwrap_or(sql)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::filter;
    use crate::store::query::{sort_sql, where_sql};

    fn query(rt: Option<ResourceType>, filter_text: Option<&str>, sort: Option<&str>) -> ListQuery {
        let mut q = ListQuery {
            rt,
            start_index: 1,
            count: 100,
            ..ListQuery::default()
        };
        if let Some(f) = filter_text {
            let f = filter::parse(f).unwrap();
            q.where_sql = Some(where_sql(&f, rt, &mut q.params).unwrap());
        }
        q.order = sort.map(|s| sort_sql(s, rt).unwrap());
        q
    }

    #[test]
    fn a_filtered_first_page_is_one_statement_with_its_total() {
        let q = query(Some(ResourceType::User), Some("userName eq \"a\""), None);
        let p = plan("t1", &q);
        assert!(p.inline_total);
        assert_eq!(p.stmts.len(), 1);
        assert!(p.stmts[0].sql.contains(") AS _total"), "{}", p.stmts[0].sql);
        // Tenant and filter value for the page, again for the total, then LIMIT and OFFSET.
        assert_eq!(p.stmts[0].params.len(), 2 * 2 + 2);
        assert_eq!(p.stmts[0].params[0], SqlValue::from("t1"));
    }

    #[test]
    fn a_page_statement_stays_prepared_when_bound_again() {
        // A bare `LIMIT ?` expires the statement on every binding (see `LIMIT_PARAM`).
        let db = crate::testing::SqliteDb::new();
        for cursor in [false, true] {
            let mut q = query(Some(ResourceType::User), Some("userName eq \"a\""), None);
            q.cursor_mode = cursor;
            let p = plan("t1", &q);
            let page = p.stmts.last().unwrap();
            assert_eq!(db.reprepares(page, 3), 0, "{}", page.sql);
            let bare = Stmt::new(
                page.sql.replace(LIMIT_PARAM, "LIMIT ?"),
                page.params.clone(),
            );
            assert!(
                db.reprepares(&bare, 3) > 0,
                "the bare spelling expires: {}",
                bare.sql
            );
        }
    }

    #[test]
    fn unfiltered_totals_come_from_the_counter() {
        // A first page: one statement, the counter as its inline total.
        let p = plan("t1", &query(Some(ResourceType::Group), None, None));
        assert!(p.inline_total);
        assert_eq!(p.stmts.len(), 1);
        let sql = &p.stmts[0].sql;
        assert!(sql.contains("FROM resource_counts"), "{sql}");
        assert!(sql.contains(") AS _total"), "{sql}");
        assert!(!sql.contains("count(*)"), "{sql}");
        // The counter's tenant, the page's tenant, then LIMIT and OFFSET.
        assert_eq!(p.stmts[0].params.len(), 4);
        // A later page counts separately, from the counter too.
        let mut q = query(Some(ResourceType::Group), None, None);
        q.start_index = 101;
        let p = plan("t1", &q);
        assert!(!p.inline_total);
        assert_eq!(p.stmts.len(), 2);
        assert!(
            p.stmts[0].sql.contains("FROM resource_counts"),
            "{}",
            p.stmts[0].sql
        );
        let mut q = query(None, None, None);
        q.count = 0;
        let p = plan("t1", &q);
        assert_eq!(p.stmts.len(), 1, "count=0 reads no page");
        assert!(!p.inline_total);
    }

    #[test]
    fn unfiltered_sorted_pages_walk_the_index_filtered_ones_sort() {
        let walk = plan(
            "t",
            &query(Some(ResourceType::User), None, Some("externalId")),
        );
        assert!(
            walk.stmts[0].sql.contains("NULLS LAST, r.rowid ASC"),
            "{}",
            walk.stmts[0].sql
        );
        let sorted = plan(
            "t",
            &query(
                Some(ResourceType::User),
                Some("title pr"),
                Some("externalId"),
            ),
        );
        assert!(
            sorted.stmts[0].sql.contains("IS NULL, (r.external_id) ASC"),
            "{}",
            sorted.stmts[0].sql
        );
    }

    #[test]
    fn a_cursor_continuation_of_a_nullable_indexed_key_merges_two_walks() {
        let mut q = query(Some(ResourceType::User), None, Some("externalId"));
        q.cursor_mode = true;
        q.after = Some(Position {
            null: false,
            value: Value::String("x".into()),
            rowid: 7,
        });
        let p = plan("t", &q);
        let page = &p.stmts[1].sql;
        assert!(page.contains(" UNION ALL "), "{page}");
        assert!(page.ends_with(LIMIT_PARAM), "{page}");
        assert_eq!(p.stmts[1].params.last(), Some(&SqlValue::Int(101)));
        // userName is never null for users: one range, no second walk.
        let mut q = query(Some(ResourceType::User), None, Some("userName"));
        q.cursor_mode = true;
        q.after = Some(Position {
            null: false,
            value: Value::String("x".into()),
            rowid: 7,
        });
        assert!(!plan("t", &q).stmts[1].sql.contains("UNION ALL"));
    }
}
