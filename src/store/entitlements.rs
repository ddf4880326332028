//! The entitlement and role values of a tenant (`entitlement_values`, migration 0013): what
//! the vendor defines through the admin API and Okta reads from `/Entitlements` and `/Roles`.
//!
//! Every request is a [`ValuesOp`], planned into statements by a pure function
//! ([`plan`]), executed in one round trip and read back by another ([`outcome`]): one async
//! path for all five operations keeps the wasm small, and the plans are tested without SQLite.
//! Every statement is scoped to the store's tenant and the op's kind.

use super::{int, Row, Store};
use crate::proto::entitlement::{Change, Definition, Field, Kind, Match, NewDefinition};
use crate::store::sql::{SqlValue, Stmt, LIMIT_PARAM};
use crate::store::{Db, Result, StoreError};
use serde_json::Value;

const COLUMNS: &str = "id, display_name, type, description, created, modified";
/// The largest integer a JavaScript number holds exactly.
const MAX_EXACT: i64 = (1 << 53) - 1;

/// One operation on a tenant's values of one kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValuesOp<'a> {
    /// A page ordered by id, from the 1-based `start_index`, of the values matching `filter`.
    List {
        filter: &'a [Match],
        start_index: i64,
        count: i64,
    },
    Get(&'a str),
    Create {
        id: &'a str,
        new: &'a NewDefinition,
        now: &'a str,
    },
    Update {
        id: &'a str,
        change: &'a Change,
        now: &'a str,
    },
    /// Users keep the assignments they hold.
    Delete(&'a str),
}

/// What an operation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValuesOutcome {
    /// A list: the page and how many values match in all.
    Page {
        total: i64,
        items: Vec<Definition>,
    },
    /// The value read, created or updated.
    One(Definition),
    Deleted,
    /// No value with the op's id.
    NoValue,
    /// The store's tenant does not exist (admin API only: SCIM callers are authenticated).
    NoTenant,
}

/// The statements of `op` for `tenant`'s values of `kind`. Only fixed column names enter the
/// SQL text; every value is bound.
pub fn plan(tenant: &str, kind: Kind, op: &ValuesOp<'_>) -> Vec<Stmt> {
    let scope = || -> Vec<SqlValue> { vec![tenant.into(), kind.name().into()] };
    let with = |mut p: Vec<SqlValue>, more: Vec<SqlValue>| {
        p.extend(more);
        p
    };
    let opt = |v: &Option<String>| v.as_deref().map_or(SqlValue::Null, SqlValue::from);
    let by_id = "WHERE tenant = ? AND kind = ? AND id = ?";
    match *op {
        ValuesOp::List {
            filter,
            start_index,
            count,
        } => {
            let mut params = scope();
            let cond = filter_sql(filter, &mut params);
            // Bound integers reach D1 as JavaScript numbers: the offset stays exact.
            let offset = start_index.clamp(1, MAX_EXACT) - 1;
            let page = vec![SqlValue::Int(count), SqlValue::Int(offset)];
            vec![
                Stmt::new("SELECT id FROM tenants WHERE id = ?", vec![tenant.into()]),
                Stmt::new(
                    format!("SELECT count(*) AS n FROM entitlement_values WHERE tenant = ? AND kind = ?{cond}"),
                    params.clone(),
                ),
                Stmt::new(
                    format!("SELECT {COLUMNS} FROM entitlement_values WHERE tenant = ? AND kind = ?{cond} ORDER BY id {LIMIT_PARAM} OFFSET ?"),
                    with(params, page),
                ),
            ]
        }
        ValuesOp::Get(id) => vec![Stmt::new(
            format!("SELECT {COLUMNS} FROM entitlement_values {by_id}"),
            with(scope(), vec![id.into()]),
        )],
        ValuesOp::Create { id, new, now } => vec![Stmt::new(
            format!("INSERT INTO entitlement_values (tenant, kind, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"),
            with(
                scope(),
                vec![
                    id.into(),
                    new.display_name.as_str().into(),
                    opt(&new.kind_type),
                    opt(&new.description),
                    now.into(),
                    now.into(),
                ],
            ),
        )],
        ValuesOp::Update { id, change, now } => {
            let mut sets = String::from("modified = ?");
            let mut params: Vec<SqlValue> = vec![now.into()];
            let fields = [
                ("display_name", change.display_name.as_ref().map(|n| Some(n.clone()))),
                ("type", change.kind_type.clone()),
                ("description", change.description.clone()),
            ];
            for (column, value) in fields {
                if let Some(v) = value {
                    sets.push_str(&format!(", {column} = ?"));
                    params.push(opt(&v));
                }
            }
            vec![Stmt::new(
                format!("UPDATE entitlement_values SET {sets} {by_id} RETURNING {COLUMNS}"),
                with(params, with(scope(), vec![id.into()])),
            )]
        }
        ValuesOp::Delete(id) => vec![Stmt::new(
            format!("DELETE FROM entitlement_values {by_id} RETURNING id"),
            with(scope(), vec![id.into()]),
        )],
    }
}

/// Reads the rows `plan(op)` returned.
pub fn outcome(op: &ValuesOp<'_>, res: Vec<Vec<Row>>) -> Result<ValuesOutcome> {
    let mut res = res.into_iter();
    let first = res.next().unwrap_or_default();
    let one = |rows: Vec<Row>| match rows.first() {
        Some(row) => definition(row).map(ValuesOutcome::One),
        None => Ok(ValuesOutcome::NoValue),
    };
    match op {
        ValuesOp::List { .. } if first.is_empty() => Ok(ValuesOutcome::NoTenant),
        ValuesOp::List { .. } => {
            let total = res
                .next()
                .and_then(|rows| rows.first().and_then(|r| int(r.get("n"))))
                .unwrap_or(0);
            let items = res
                .next()
                .unwrap_or_default()
                .iter()
                .map(definition)
                .collect::<Result<Vec<_>>>()?;
            Ok(ValuesOutcome::Page { total, items })
        }
        ValuesOp::Delete(_) if first.is_empty() => Ok(ValuesOutcome::NoValue),
        ValuesOp::Delete(_) => Ok(ValuesOutcome::Deleted),
        ValuesOp::Create { .. } if first.is_empty() => Err(StoreError::Corrupt("created value")),
        ValuesOp::Get(_) | ValuesOp::Create { .. } | ValuesOp::Update { .. } => one(first),
    }
}

fn definition(row: &Row) -> Result<Definition> {
    let text = |col: &str| -> Result<String> {
        row.get(col)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(StoreError::Corrupt("entitlement value"))
    };
    let optional = |col: &str| row.get(col).and_then(Value::as_str).map(str::to_string);
    Ok(Definition {
        id: text("id")?,
        display_name: text("display_name")?,
        kind_type: optional("type"),
        description: optional("description"),
        created: text("created")?,
        modified: text("modified")?,
    })
}

/// The conditions of a filter: `id` byte-wise, the names case-insensitively (ASCII, as every
/// other caseExact-false comparison here).
fn filter_sql(filter: &[Match], params: &mut Vec<SqlValue>) -> String {
    let mut sql = String::new();
    for m in filter {
        sql.push_str(match m.field {
            Field::Id => " AND id = ?",
            Field::DisplayName => " AND display_name = ? COLLATE NOCASE",
            Field::Type => " AND type = ? COLLATE NOCASE",
        });
        params.push(m.value.as_str().into());
    }
    sql
}

impl<D: Db> Store<'_, D> {
    /// Runs `op` on the tenant's values of `kind`, in one round trip. A taken id on create is
    /// `StoreError::Unique(Constraint::DefinitionId)`.
    pub async fn values(&self, kind: Kind, op: ValuesOp<'_>) -> Result<ValuesOutcome> {
        match self.run(plan(&self.tenant, kind, &op)).await {
            Ok(res) => outcome(&op, res),
            // The tenant row is the only reference an insert has.
            Err(StoreError::MissingReference) => Ok(ValuesOutcome::NoTenant),
            Err(e) => Err(e),
        }
    }

    /// The kinds the tenant has at least one value of: what `/ResourceTypes` advertises.
    pub async fn defined_kinds(&self) -> Result<Vec<Kind>> {
        let res = self
            .run(vec![Stmt::new(
                "SELECT DISTINCT kind FROM entitlement_values WHERE tenant = ?",
                vec![self.tenant.as_str().into()],
            )])
            .await?;
        let rows = res.into_iter().next().unwrap_or_default();
        Ok(Kind::ALL
            .into_iter()
            .filter(|k| {
                rows.iter()
                    .any(|r| r.get("kind").and_then(Value::as_str) == Some(k.name()))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, SqliteDb};

    fn new(name: &str) -> NewDefinition {
        NewDefinition {
            id: None,
            display_name: name.into(),
            kind_type: Some("License".into()),
            description: None,
        }
    }

    #[test]
    fn plans_bind_every_value_and_scope_every_statement() {
        let filter = [Match {
            field: Field::DisplayName,
            value: "x' OR 1=1 --".into(),
        }];
        let op = ValuesOp::List {
            filter: &filter,
            start_index: 3,
            count: 2,
        };
        let stmts = plan("acme", Kind::Role, &op);
        assert_eq!(stmts.len(), 3);
        assert!(stmts.iter().all(|s| !s.sql.contains("OR 1=1")));
        assert_eq!(
            stmts[2].params,
            vec![
                "acme".into(),
                "Role".into(),
                "x' OR 1=1 --".into(),
                SqlValue::Int(2),
                SqlValue::Int(2)
            ],
            "OFFSET is startIndex - 1"
        );
        let change = Change {
            display_name: None,
            kind_type: Some(None),
            description: None,
        };
        let op = ValuesOp::Update {
            id: "r1",
            change: &change,
            now: "t",
        };
        let stmts = plan("acme", Kind::Role, &op);
        assert!(
            stmts[0].sql.contains("SET modified = ?, type = ? WHERE"),
            "{}",
            stmts[0].sql
        );
        assert_eq!(
            stmts[0].params,
            vec![
                "t".into(),
                SqlValue::Null,
                "acme".into(),
                "Role".into(),
                "r1".into()
            ]
        );
    }

    #[test]
    fn values_are_kept_per_tenant_and_kind() {
        let db = SqliteDb::new();
        db.query("INSERT INTO tenants (id, name) VALUES ('a', 'A'), ('b', 'B')");
        let a = Store::new(&db, "a");
        let b = Store::new(&db, "b");
        let run = |s: &Store<'_, SqliteDb>, kind, op| block_on(s.values(kind, op)).unwrap();
        let e3 = new("E3");
        let create = |id| ValuesOp::Create {
            id,
            new: &e3,
            now: "2026-01-01T00:00:00.000Z",
        };
        assert!(matches!(
            run(&a, Kind::Entitlement, create("x")),
            ValuesOutcome::One(_)
        ));
        assert!(
            matches!(run(&a, Kind::Role, create("x")), ValuesOutcome::One(_)),
            "same id, other kind"
        );
        assert!(
            matches!(
                run(&b, Kind::Entitlement, create("x")),
                ValuesOutcome::One(_)
            ),
            "same id, other tenant"
        );
        let taken = block_on(a.values(Kind::Entitlement, create("x"))).unwrap_err();
        assert_eq!(
            taken,
            StoreError::Unique(crate::store::Constraint::DefinitionId)
        );
        let ghost = Store::new(&db, "ghost");
        assert_eq!(
            run(&ghost, Kind::Role, create("y")),
            ValuesOutcome::NoTenant
        );
        let list = ValuesOp::List {
            filter: &[],
            start_index: 1,
            count: 10,
        };
        assert_eq!(run(&ghost, Kind::Role, list), ValuesOutcome::NoTenant);

        let change = Change {
            display_name: Some("B's E3".into()),
            ..Change::default()
        };
        let update = ValuesOp::Update {
            id: "x",
            change: &change,
            now: "2026-01-02T00:00:00.000Z",
        };
        let ValuesOutcome::One(d) = run(&b, Kind::Entitlement, update) else {
            panic!("updated")
        };
        assert_eq!(
            (d.display_name.as_str(), d.modified.as_str()),
            ("B's E3", "2026-01-02T00:00:00.000Z")
        );
        let ValuesOutcome::One(d) = run(&a, Kind::Entitlement, ValuesOp::Get("x")) else {
            panic!("read")
        };
        assert_eq!(d.display_name, "E3", "B's update left A's value alone");
        assert_eq!(
            run(&b, Kind::Role, ValuesOp::Delete("x")),
            ValuesOutcome::NoValue
        );
        assert_eq!(
            run(&a, Kind::Role, ValuesOp::Delete("x")),
            ValuesOutcome::Deleted
        );
        assert_eq!(
            block_on(a.defined_kinds()).unwrap(),
            vec![Kind::Entitlement]
        );
        assert_eq!(
            block_on(b.defined_kinds()).unwrap(),
            vec![Kind::Entitlement]
        );
        let ValuesOutcome::Page { total, items } = run(&a, Kind::Entitlement, list) else {
            panic!("page")
        };
        assert_eq!(
            (total, items.len(), items[0].kind_type.as_deref()),
            (1, 1, Some("License"))
        );
    }
}
