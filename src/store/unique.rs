//! Uniqueness of declared attributes (`uniqueness: server`, migration 0012): each value is a
//! row of `unique_values`, rewritten in the batch that writes the resource, so a duplicate
//! fails the whole write as a duplicate `userName` does, and concurrent writers cannot both
//! win. The values are read from the row the batch just wrote, so what is enforced is
//! exactly what is stored.

use super::Store;
use crate::proto::schema::{DeclaredExtension, TypeSchemas, Uniqueness};
use crate::store::sql::{SqlValue, Stmt};
use crate::store::Db;

/// One attribute whose values are unique within the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueAttr {
    /// `urn:…:attr`, lowercased: the key of its rows.
    pub key: String,
    /// SQLite JSON path of the value in `data` (bound as a parameter, never spliced).
    pub path: String,
    pub case_exact: bool,
}

/// The unique attributes of a type's declared extensions.
pub fn unique_attrs(ts: TypeSchemas) -> Vec<UniqueAttr> {
    ts.declared().flat_map(unique_attrs_of).collect()
}

/// The unique attributes of one declared extension (validation guarantees their names and
/// URNs need no escaping in a JSON path: ATTRNAMEs, URNs without quotes).
pub fn unique_attrs_of(d: &DeclaredExtension) -> Vec<UniqueAttr> {
    d.schema
        .attributes
        .iter()
        .filter(|a| a.uniqueness != Uniqueness::None)
        .map(|a| UniqueAttr {
            key: format!("{}:{}", d.schema.id, a.name).to_ascii_lowercase(),
            path: format!("$.\"{}\".\"{}\"", d.schema.id, a.name),
            case_exact: a.case_exact,
        })
        .collect()
}

impl<D: Db> Store<'_, D> {
    /// Replaces resource `id`'s unique values by those of the row with `version` (the one the
    /// batch writes; nothing happens if the write did not apply).
    pub(super) fn unique_stmts(&self, id: &str, version: i64, replace: bool) -> Vec<Stmt> {
        if self.unique.is_empty() {
            return Vec::new();
        }
        let tenant: SqlValue = self.tenant().into();
        let mut stmts = Vec::new();
        if replace {
            stmts.push(Stmt::new(
                "DELETE FROM unique_values WHERE tenant = ? AND resource_id = ? AND EXISTS \
                 (SELECT 1 FROM resources WHERE tenant = ? AND id = ? AND version = ?)",
                vec![
                    tenant.clone(),
                    id.into(),
                    tenant.clone(),
                    id.into(),
                    SqlValue::Int(version),
                ],
            ));
        }
        for attr in &self.unique {
            stmts.push(Stmt::new(
                "INSERT INTO unique_values (tenant, attr, value, resource_id) \
                 SELECT tenant, ?, CASE ? WHEN 1 THEN v ELSE lower(v) END, id FROM \
                 (SELECT tenant, id, json_extract(data, ?) AS v FROM resources \
                  WHERE tenant = ? AND id = ? AND version = ?) WHERE typeof(v) = 'text'",
                vec![
                    attr.key.as_str().into(),
                    SqlValue::Int(i64::from(attr.case_exact)),
                    attr.path.as_str().into(),
                    tenant.clone(),
                    id.into(),
                    SqlValue::Int(version),
                ],
            ));
        }
        stmts
    }
}

impl<D: Db> Store<'_, D> {
    /// Rebuilds the unique values of extension `urn` after it is declared, re-declared or
    /// removed (`attrs`: its unique attributes now), in one batch. Returns how many stored
    /// values duplicate another's: they stay stored (nothing is lost) and the report says so;
    /// the first resource keeps the value, and a write of a later one that keeps it answers
    /// 409 until one of them changes.
    pub async fn reindex_unique(
        &self,
        rt: crate::proto::schema::ResourceType,
        urn: &str,
        attrs: &[UniqueAttr],
    ) -> crate::store::Result<i64> {
        let tenant: SqlValue = self.tenant().into();
        let prefix = format!("{}:", urn.to_ascii_lowercase());
        let mut stmts = vec![Stmt::new(
            "DELETE FROM unique_values WHERE tenant = ? AND substr(attr, 1, ?) = ?",
            vec![
                tenant.clone(),
                SqlValue::Int(prefix.len() as i64),
                prefix.as_str().into(),
            ],
        )];
        for attr in attrs {
            stmts.push(Stmt::new(
                "INSERT OR IGNORE INTO unique_values (tenant, attr, value, resource_id) \
                 SELECT tenant, ?, CASE ? WHEN 1 THEN v ELSE lower(v) END, id FROM \
                 (SELECT tenant, id, json_extract(data, ?) AS v FROM resources \
                  WHERE tenant = ? AND type = ?) WHERE typeof(v) = 'text'",
                vec![
                    attr.key.as_str().into(),
                    SqlValue::Int(i64::from(attr.case_exact)),
                    attr.path.as_str().into(),
                    tenant.clone(),
                    rt.name().into(),
                ],
            ));
        }
        let counted = stmts.len();
        for attr in attrs {
            stmts.push(Stmt::new(
                "SELECT (SELECT count(*) FROM resources WHERE tenant = ? AND type = ? \
                 AND typeof(json_extract(data, ?)) = 'text') - \
                 (SELECT count(*) FROM unique_values WHERE tenant = ? AND attr = ?) AS dup",
                vec![
                    tenant.clone(),
                    rt.name().into(),
                    attr.path.as_str().into(),
                    tenant.clone(),
                    attr.key.as_str().into(),
                ],
            ));
        }
        let res = self.db.batch(stmts).await?;
        Ok(res
            .iter()
            .skip(counted)
            .filter_map(|rows| rows.first())
            .filter_map(|row| super::int(row.get("dup")))
            .sum())
    }
}
