//! The entitlement and role values of a tenant (`entitlement_values`, migration 0013): what
//! the vendor defines through the admin API and Okta reads from `/Entitlements` and `/Roles`.
//! Every statement is scoped to the store's tenant and kind; each method is one round trip.

use super::{int, Row, Store};
use crate::proto::entitlement::{Change, Definition, Field, Kind, Match};
use crate::store::sql::{SqlValue, Stmt};
use crate::store::{Db, Result, StoreError};
use serde_json::Value;

const COLUMNS: &str = "id, display_name, type, description, created, modified";

/// One page of values and how many match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionPage {
    pub total: i64,
    pub items: Vec<Definition>,
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

/// The conditions of a filter, as SQL over fixed column names with bound values: `id`
/// byte-wise, the names case-insensitively (ASCII, as every other caseExact-false compare).
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
    fn scope(&self, kind: Kind) -> Vec<SqlValue> {
        vec![self.tenant.as_str().into(), kind.name().into()]
    }

    /// A page of the tenant's values of `kind` matching `filter`, ordered by id, from the
    /// 1-based `start_index`, with the total count; `None` if the tenant does not exist.
    pub async fn definitions(
        &self,
        kind: Kind,
        filter: &[Match],
        start_index: i64,
        count: i64,
    ) -> Result<Option<DefinitionPage>> {
        let mut params = self.scope(kind);
        let cond = filter_sql(filter, &mut params);
        let mut page_params = params.clone();
        page_params.push(SqlValue::Int(count));
        page_params.push(SqlValue::Int(start_index.saturating_sub(1)));
        let res = self
            .run(vec![
                Stmt::new(
                    "SELECT id FROM tenants WHERE id = ?",
                    vec![self.tenant.as_str().into()],
                ),
                Stmt::new(
                    format!(
                        "SELECT count(*) AS n FROM entitlement_values \
                         WHERE tenant = ? AND kind = ?{cond}"
                    ),
                    params,
                ),
                Stmt::new(
                    format!(
                        "SELECT {COLUMNS} FROM entitlement_values WHERE tenant = ? AND kind = ?{cond} \
                         ORDER BY id LIMIT ? OFFSET ?"
                    ),
                    page_params,
                ),
            ])
            .await?;
        let mut res = res.into_iter();
        if res.next().is_none_or(|rows| rows.is_empty()) {
            return Ok(None);
        }
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
        Ok(Some(DefinitionPage { total, items }))
    }

    /// One value by id.
    pub async fn definition(&self, kind: Kind, id: &str) -> Result<Option<Definition>> {
        let mut params = self.scope(kind);
        params.push(id.into());
        let res = self
            .run(vec![Stmt::new(
                format!(
                    "SELECT {COLUMNS} FROM entitlement_values WHERE tenant = ? AND kind = ? AND id = ?"
                ),
                params,
            )])
            .await?;
        first(res).map(|r| definition(&r)).transpose()
    }

    /// Creates a value. A missing tenant is `StoreError::MissingReference`; a taken id
    /// `StoreError::Unique(Constraint::DefinitionId)`.
    pub async fn create_definition(
        &self,
        kind: Kind,
        id: &str,
        d: &crate::proto::entitlement::NewDefinition,
        now: &str,
    ) -> Result<Definition> {
        let opt = |v: &Option<String>| v.as_deref().map_or(SqlValue::Null, SqlValue::from);
        let mut params = self.scope(kind);
        params.extend([
            id.into(),
            d.display_name.as_str().into(),
            opt(&d.kind_type),
            opt(&d.description),
            now.into(),
            now.into(),
        ]);
        let res = self
            .run(vec![Stmt::new(
                format!(
                    "INSERT INTO entitlement_values (tenant, kind, {COLUMNS}) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
                ),
                params,
            )])
            .await?;
        first(res)
            .map(|r| definition(&r))
            .ok_or(StoreError::Corrupt("created entitlement value"))?
    }

    /// Applies `change` to a value; `None` if there is no such value.
    pub async fn update_definition(
        &self,
        kind: Kind,
        id: &str,
        change: &Change,
        now: &str,
    ) -> Result<Option<Definition>> {
        let mut sets = vec!["modified = ?"];
        let mut params: Vec<SqlValue> = vec![now.into()];
        let opt = |v: &Option<String>| v.as_deref().map_or(SqlValue::Null, SqlValue::from);
        if let Some(name) = &change.display_name {
            sets.push("display_name = ?");
            params.push(name.as_str().into());
        }
        if let Some(t) = &change.kind_type {
            sets.push("type = ?");
            params.push(opt(t));
        }
        if let Some(desc) = &change.description {
            sets.push("description = ?");
            params.push(opt(desc));
        }
        params.extend(self.scope(kind));
        params.push(id.into());
        let res = self
            .run(vec![Stmt::new(
                format!(
                    "UPDATE entitlement_values SET {} WHERE tenant = ? AND kind = ? AND id = ? \
                     RETURNING {COLUMNS}",
                    sets.join(", ")
                ),
                params,
            )])
            .await?;
        first(res).map(|r| definition(&r)).transpose()
    }

    /// Deletes a value; whether it existed. Users keep the assignments they hold.
    pub async fn delete_definition(&self, kind: Kind, id: &str) -> Result<bool> {
        let mut params = self.scope(kind);
        params.push(id.into());
        let res = self
            .run(vec![Stmt::new(
                "DELETE FROM entitlement_values WHERE tenant = ? AND kind = ? AND id = ? RETURNING id",
                params,
            )])
            .await?;
        Ok(first(res).is_some())
    }

    /// The kinds the tenant has at least one value of: what `/ResourceTypes` advertises.
    pub async fn defined_kinds(&self) -> Result<Vec<Kind>> {
        let exists = |k: Kind| {
            format!(
                "EXISTS (SELECT 1 FROM entitlement_values WHERE tenant = ? AND kind = '{}') AS \"{}\"",
                k.name(),
                k.name()
            )
        };
        let columns: Vec<String> = Kind::ALL.iter().map(|k| exists(*k)).collect();
        let res = self
            .run(vec![Stmt::new(
                format!("SELECT {}", columns.join(", ")),
                Kind::ALL
                    .iter()
                    .map(|_| self.tenant.as_str().into())
                    .collect(),
            )])
            .await?;
        let row = first(res).unwrap_or_default();
        Ok(Kind::ALL
            .into_iter()
            .filter(|k| int(row.get(k.name())).unwrap_or(0) == 1)
            .collect())
    }
}

/// The first row of the first statement.
fn first(res: Vec<Vec<Row>>) -> Option<Row> {
    res.into_iter().next()?.into_iter().next()
}
