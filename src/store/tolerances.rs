//! How often each identity-provider tolerance fired for a tenant (`tolerance_counts`, written
//! by `Store::update` in the same batch as the write it belongs to), for the admin console.

use super::{int, Store};
use crate::store::sql::Stmt;
use crate::store::{Db, Result};
use serde_json::Value;

/// One tolerance of a tenant: its name (e.g. `op-case`), how often it fired, when last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToleranceCount {
    pub name: String,
    pub count: i64,
    pub last_seen: String,
}

impl<D: Db> Store<'_, D> {
    /// The tenant's tolerance counts, most frequent first; `None` if the tenant does not
    /// exist. One round trip.
    pub async fn tolerance_counts(&self) -> Result<Option<Vec<ToleranceCount>>> {
        let tenant = self.tenant.as_str();
        let res = self
            .run(vec![
                Stmt::new("SELECT id FROM tenants WHERE id = ?", vec![tenant.into()]),
                Stmt::new(
                    "SELECT name, count, last_seen FROM tolerance_counts WHERE tenant = ? \
                     ORDER BY count DESC, name",
                    vec![tenant.into()],
                ),
            ])
            .await?;
        if res.first().is_none_or(|rows| rows.is_empty()) {
            return Ok(None);
        }
        let text = |row: &super::Row, col: &str| {
            row.get(col)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let counts = res
            .get(1)
            .map(|rows| {
                rows.iter()
                    .map(|row| ToleranceCount {
                        name: text(row, "name"),
                        count: int(row.get("count")).unwrap_or(0),
                        last_seen: text(row, "last_seen"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(counts))
    }
}
