//! A tenant's declared extension schemas and the settings validation needs (migration 0012):
//! read together as the tenant's profile in one statement, so the SCIM layer learns all it
//! validates against in one round trip (and then from the isolate's cache).

use super::{int, Store};
use crate::proto::schema::ResourceType;
use crate::store::sql::{SqlValue, Stmt, LIMIT_PARAM};
use crate::store::{Db, Result, Row, StoreError};
use serde_json::Value;

/// One stored declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Declaration {
    /// The schema URN, as declared.
    pub id: String,
    pub rt: ResourceType,
    pub required: bool,
    /// The normalised RFC 7643 §7 representation (see `proto::declared::document`).
    pub document: String,
    pub created: String,
    pub modified: String,
}

/// What SCIM requests of one tenant are validated against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub strict: bool,
    pub reject_undeclared: bool,
    /// Read with the settings so that a tenant kept in a Durable Object, whose quota triggers
    /// run in the object, gets the limits D1 holds with the request that needs them.
    pub quota: Quota,
    pub deletion: crate::store::tombstones::Policy,
    pub declarations: Vec<Declaration>,
}

/// A tenant's storage limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quota {
    pub resources: Option<i64>,
    pub bytes: Option<i64>,
}

const DECL_COLUMNS: &str = "s.id, s.resource_type, s.required, s.document, s.created, s.modified";
/// The same columns unqualified, for `RETURNING` (which cannot name a table alias).
const DECL_NAMES: &str = "id, resource_type, required, document, created, modified";

fn text(row: &Row, col: &str) -> Result<String> {
    row.get(col)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or(StoreError::Corrupt("declared schema row"))
}

fn declaration(row: &Row) -> Result<Declaration> {
    Ok(Declaration {
        id: text(row, "id")?,
        rt: ResourceType::from_name(&text(row, "resource_type")?)
            .ok_or(StoreError::Corrupt("declared schema type"))?,
        required: int(row.get("required")) == Some(1),
        document: text(row, "document")?,
        created: text(row, "created")?,
        modified: text(row, "modified")?,
    })
}

/// The profile query for the tenant `tenant_expr` evaluates to (`?` bound to `param`, or a
/// subquery: token verification reads the profile in its own batch).
pub(crate) fn profile_stmt(tenant_expr: &str, param: SqlValue) -> Stmt {
    Stmt::new(
        format!(
            "SELECT t.strict_patch, t.undeclared_extensions, t.max_resources, t.max_bytes, \
             t.deletion_days, t.restore_on_create, \
             {DECL_COLUMNS} FROM tenants t \
             LEFT JOIN tenant_schemas s ON s.tenant = t.id WHERE t.id = {tenant_expr} ORDER BY s.id"
        ),
        vec![param],
    )
}

/// Reads [`profile_stmt`]'s rows.
pub(crate) fn profile_of(rows: &[Row]) -> Result<Profile> {
    let Some(first) = rows.first() else {
        return Ok(Profile::default());
    };
    let mut profile = Profile {
        strict: int(first.get("strict_patch")) == Some(1),
        reject_undeclared: first.get("undeclared_extensions").and_then(Value::as_str)
            == Some("reject"),
        quota: Quota {
            resources: int(first.get("max_resources")),
            bytes: int(first.get("max_bytes")),
        },
        deletion: crate::store::tombstones::Policy {
            days: int(first.get("deletion_days")),
            restore_on_create: int(first.get("restore_on_create")) == Some(1),
        },
        declarations: Vec::new(),
    };
    for row in rows
        .iter()
        .filter(|r| r.get("id").is_some_and(Value::is_string))
    {
        profile.declarations.push(declaration(row)?);
    }
    Ok(profile)
}

impl<D: Db> Store<'_, D> {
    fn tenant_value(&self) -> SqlValue {
        self.tenant().into()
    }

    /// The tenant's settings and declarations in one statement (a tenant without a row gets
    /// the defaults).
    pub async fn profile(&self) -> Result<Profile> {
        let stmt = profile_stmt("?", self.tenant_value());
        let res = self.db.batch(vec![stmt]).await?;
        profile_of(&res.into_iter().next().unwrap_or_default())
    }

    /// The tenant's declarations, by URN.
    pub async fn declarations(&self) -> Result<Vec<Declaration>> {
        let stmt = Stmt::new(
            format!("SELECT {DECL_COLUMNS} FROM tenant_schemas s WHERE s.tenant = ? ORDER BY s.id"),
            vec![self.tenant_value()],
        );
        let res = self.db.batch(vec![stmt]).await?;
        res.into_iter()
            .next()
            .unwrap_or_default()
            .iter()
            .map(declaration)
            .collect()
    }

    /// Declares (or re-declares) one schema; `true` when it is new.
    pub async fn put_declaration(
        &self,
        id: &str,
        rt: ResourceType,
        required: bool,
        document: &str,
        now: &str,
    ) -> Result<(Declaration, bool)> {
        let stmt = Stmt::new(
            format!(
                "INSERT INTO tenant_schemas (tenant, id, resource_type, required, document, created, modified) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (tenant, id) DO UPDATE SET resource_type = excluded.resource_type, \
                 required = excluded.required, document = excluded.document, modified = excluded.modified \
                 RETURNING {DECL_NAMES}"
            ),
            vec![
                self.tenant_value(),
                id.into(),
                rt.name().into(),
                SqlValue::Int(i64::from(required)),
                document.into(),
                now.into(),
                now.into(),
            ],
        );
        let res = self.db.batch(vec![stmt]).await?;
        let row = res
            .first()
            .and_then(|rows| rows.first())
            .ok_or(StoreError::Corrupt("declared schema"))?;
        let decl = declaration(row)?;
        let created = decl.created == now && decl.modified == now;
        Ok((decl, created))
    }

    /// Makes the tenant's declarations exactly `all`, as stored elsewhere (a tenant's Durable
    /// Object keeps a copy of D1's), in one batch.
    pub async fn replace_declarations(&self, all: &[Declaration]) -> Result<()> {
        let mut stmts = vec![Stmt::new(
            "DELETE FROM tenant_schemas WHERE tenant = ?",
            vec![self.tenant_value()],
        )];
        stmts.extend(all.iter().map(|d| {
            Stmt::new(
                "INSERT INTO tenant_schemas (tenant, id, resource_type, required, document, \
                 created, modified) VALUES (?, ?, ?, ?, ?, ?, ?)",
                vec![
                    self.tenant_value(),
                    d.id.as_str().into(),
                    d.rt.name().into(),
                    SqlValue::Int(i64::from(d.required)),
                    d.document.as_str().into(),
                    d.created.as_str().into(),
                    d.modified.as_str().into(),
                ],
            )
        }));
        self.db.batch(stmts).await?;
        Ok(())
    }

    /// Removes a declaration; stored data under its URN stays (it is undeclared again).
    pub async fn delete_declaration(&self, id: &str) -> Result<bool> {
        let stmt = Stmt::new(
            "DELETE FROM tenant_schemas WHERE tenant = ? AND id = ? RETURNING id",
            vec![self.tenant_value(), id.into()],
        );
        let res = self.db.batch(vec![stmt]).await?;
        Ok(res.first().is_some_and(|rows| !rows.is_empty()))
    }

    /// The values stored under extension `urn` by resources of type `rt` (`[id, json]`, in id
    /// order, at most `limit`), for checking them against a new declaration.
    pub async fn stored_under(
        &self,
        rt: ResourceType,
        urn: &str,
        limit: i64,
    ) -> Result<Vec<(String, String)>> {
        // The stored key keeps the spelling the client sent; match it case-insensitively.
        let stmt = Stmt::new(
            format!(
                "SELECT r.id, j.value AS ext FROM resources r, json_each(r.data) j \
                 WHERE r.tenant = ? AND r.type = ? AND lower(j.key) = lower(?) \
                 ORDER BY r.id {LIMIT_PARAM}"
            ),
            vec![
                self.tenant_value(),
                rt.name().into(),
                urn.into(),
                SqlValue::Int(limit),
            ],
        );
        let res = self.db.batch(vec![stmt]).await?;
        res.into_iter()
            .next()
            .unwrap_or_default()
            .iter()
            .map(|row| {
                let ext = match row.get("ext") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => return Err(StoreError::Corrupt("stored extension")),
                };
                Ok((text(row, "id")?, ext))
            })
            .collect()
    }
}
