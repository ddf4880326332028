//! Soft deletion (migration 0025): tombstones, restores and the purge.
//!
//! A tenant on the `soft` policy (`tenants.deletion_days` set) keeps what a DELETE removes in
//! `tombstones`, and the memberships it had in `tombstone_members`; the resource row itself
//! goes, exactly as under `hard`. So nothing that reads `resources` (gets, filters, lists,
//! counts, `members`, `groups`, the unique indexes) needs to know tombstones exist, which is
//! what RFC 7644 §3.6 asks: a deleted resource is gone for SCIM, its `userName` free at once.
//!
//! The policy is read by the DELETE's own statements from the tenant row, in the delete's
//! batch, so the choice and the write are one atomic step and cost no extra round trip (in a
//! Durable Object the row is the object's mirror of D1's, see `service::relay`).
//!
//! A restore moves the tombstone back under its id and puts back the memberships whose other
//! side exists now; memberships with a side still tombstoned stay kept, so restoring the
//! other side later brings them back too. A group that regains a restored member gets a new
//! version and `lastModified`, as for any membership change.

use crate::proto::schema::ResourceType;
use crate::store::sql::{SqlValue, Stmt, LIMIT_PARAM};
use crate::store::{events, new_version, parse_row, type_literal, Db, Result, Store, StoreError};
use serde_json::{Map, Value};

/// The stored timestamp form of SQLite's clock, for statements that run without a request.
const NOW_SQL: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// A tenant's deletion policy as stored: `days` `None` is `hard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    pub days: Option<i64>,
    pub restore_on_create: bool,
}

/// A tombstone as the admin API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tombstone {
    pub rt: ResourceType,
    pub id: String,
    pub deleted: String,
    /// The resource's attributes when it was deleted (JSON object text).
    pub data: String,
    pub created: String,
}

/// Outcome of a restore.
#[derive(Debug, Clone, PartialEq)]
pub enum Restored {
    Done(crate::store::Stored),
    /// No tombstone of that type and id.
    NotFound,
}

impl<D: Db> Store<'_, D> {
    /// The statements a DELETE of `rt`/`id` runs before removing the row, which act only when
    /// the tenant is on the `soft` policy: the row copied to `tombstones`, then its member
    /// rows (both sides) to `tombstone_members`. `expected` is the DELETE's own If-Match.
    pub(super) fn tombstone_stmts(
        &self,
        rt: ResourceType,
        id: &str,
        expected: Option<i64>,
    ) -> Vec<Stmt> {
        let tenant: SqlValue = self.tenant().into();
        let deleted = self
            .audit_note()
            .map_or(SqlValue::Null, |n| n.time.as_str().into());
        let mut params = vec![deleted, tenant.clone(), id.into()];
        let mut cond = String::new();
        if let Some(v) = expected {
            cond.push_str(" AND r.version = ?");
            params.push(SqlValue::Int(v));
        }
        let copy = Stmt::new(
            format!(
                "INSERT OR REPLACE INTO tombstones (tenant, id, type, data, created, modified, version, deleted) \
                 SELECT r.tenant, r.id, r.type, r.data, r.created, r.modified, r.version, coalesce(?, {NOW_SQL}) \
                 FROM resources r JOIN tenants t ON t.id = r.tenant \
                 WHERE r.tenant = ? AND r.type = {} AND r.id = ?{cond} AND t.deletion_days IS NOT NULL",
                type_literal(rt)
            ),
            params,
        );
        // A live id has no tombstone (a restore removes it), so one now is the copy above.
        let members = Stmt::new(
            "INSERT OR IGNORE INTO tombstone_members (tenant, group_id, member_id) \
             SELECT m.tenant, m.group_id, m.member_id FROM members m \
             WHERE m.tenant = ? AND (m.group_id = ? OR m.member_id = ?) \
             AND EXISTS (SELECT 1 FROM tombstones WHERE tenant = ? AND id = ?)",
            vec![tenant.clone(), id.into(), id.into(), tenant, id.into()],
        );
        vec![copy, members]
    }

    /// The `lifecycle` of a DELETE's event: 'soft' when the tenant keeps tombstones.
    pub(super) fn delete_lifecycle(&self) -> events::Expr {
        (
            "(SELECT CASE WHEN deletion_days IS NULL THEN NULL ELSE 'soft' END FROM tenants WHERE id = ?)"
                .into(),
            vec![self.tenant().into()],
        )
    }

    /// The id of the most recently deleted tombstone of type `rt` with `external_id`.
    pub async fn tombstone_by_external_id(
        &self,
        rt: ResourceType,
        external_id: &str,
    ) -> Result<Option<String>> {
        let stmt = Stmt::new(
            format!(
                "SELECT id FROM tombstones WHERE tenant = ? AND type = {} AND external_id = ? \
                 ORDER BY deleted DESC, id LIMIT 1",
                type_literal(rt)
            ),
            vec![self.tenant().into(), external_id.into()],
        );
        let res = self.run(vec![stmt]).await?;
        Ok(res
            .first()
            .and_then(|rows| rows.first())
            .and_then(|r| r.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// The type of tombstone `id`, if there is one.
    pub async fn tombstone_type(&self, id: &str) -> Result<Option<ResourceType>> {
        let stmt = Stmt::new(
            "SELECT type FROM tombstones WHERE tenant = ? AND id = ?",
            vec![self.tenant().into(), id.into()],
        );
        let res = self.run(vec![stmt]).await?;
        Ok(res
            .first()
            .and_then(|rows| rows.first())
            .and_then(|r| r.get("type"))
            .and_then(Value::as_str)
            .and_then(ResourceType::from_name))
    }

    /// The tenant's tombstones, newest first: at most `limit`, of `rt` when given.
    pub async fn tombstones(&self, rt: Option<ResourceType>, limit: i64) -> Result<Vec<Tombstone>> {
        let mut sql = String::from(
            "SELECT id, type, data, created, deleted FROM tombstones WHERE tenant = ?",
        );
        if let Some(rt) = rt {
            sql.push_str(&format!(" AND type = {}", type_literal(rt)));
        }
        sql.push_str(&format!(" ORDER BY deleted DESC, id {LIMIT_PARAM}"));
        let res = self
            .run(vec![Stmt::new(
                sql,
                vec![self.tenant().into(), SqlValue::Int(limit)],
            )])
            .await?;
        let text = |r: &crate::store::Row, c: &str| {
            r.get(c)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or(StoreError::Corrupt("tombstone"))
        };
        res.first()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| {
                Ok(Tombstone {
                    rt: ResourceType::from_name(&text(r, "type")?)
                        .ok_or(StoreError::Corrupt("type"))?,
                    id: text(r, "id")?,
                    deleted: text(r, "deleted")?,
                    data: text(r, "data")?,
                    created: text(r, "created")?,
                })
            })
            .collect()
    }

    /// Brings tombstone `rt`/`id` back under its id, with its old attributes or with `data`
    /// (a POST under `restoreOnCreate`; then a group's members are `members`, not its old
    /// ones, and the POST's `tolerances` are counted), in one atomic batch: a `userName` or `displayName` taken meanwhile fails the
    /// batch with the unique error, and nothing changes. The event (op `create`, lifecycle
    /// `restore`) is written when this store is audited.
    pub async fn restore(
        &self,
        rt: ResourceType,
        id: &str,
        data: Option<&Map<String, Value>>,
        members: &[String],
        now: &str,
        tolerances: &[&str],
    ) -> Result<Restored> {
        let version = new_version()?;
        let text = data
            .map(serde_json::to_string)
            .transpose()
            .map_err(|_| StoreError::Corrupt("data"))?;
        let tenant: SqlValue = self.tenant().into();
        let guard = (
            format!(
                "EXISTS (SELECT 1 FROM tombstones WHERE tenant = ? AND type = {} AND id = ?)",
                type_literal(rt)
            ),
            vec![tenant.clone(), id.into()],
        );
        let derived = events::Derived {
            lifecycle: ("'restore'".into(), Vec::new()),
            ..events::Derived::default()
        };
        let mut stmts: Vec<Stmt> = self
            .audit_stmt(rt, id, derived, Some(guard))
            .into_iter()
            .collect();
        let insert_at = stmts.len();
        stmts.push(Stmt::new(
            format!(
                "INSERT INTO resources (tenant, id, type, data, created, modified, version) \
                 SELECT tenant, id, type, coalesce(?, data), created, ?, ? FROM tombstones \
                 WHERE tenant = ? AND type = {} AND id = ? RETURNING id",
                type_literal(rt)
            ),
            vec![
                text.map_or(SqlValue::Null, SqlValue::Text),
                now.into(),
                SqlValue::Int(version),
                tenant.clone(),
                id.into(),
            ],
        ));
        stmts.extend(self.restore_member_stmts(id, version, data.is_some(), now)?);
        if !members.is_empty() {
            stmts.push(self.add_members_stmt(id, members, Some(version)));
        }
        stmts.extend(self.unique_stmts(id, version, false));
        if !tolerances.is_empty() {
            let mut params = Vec::new();
            let g = self.version_guard(id, version, &mut params);
            stmts.push(self.tolerance_stmt(tolerances, now, Some((g, params))));
        }
        stmts.push(self.get_stmt(rt, id, true));
        let res = match self.run(stmts).await {
            Err(StoreError::MissingReference) if !members.is_empty() => {
                return Err(self.explain_missing_members(members).await)
            }
            other => other?,
        };
        if res.get(insert_at).is_none_or(|rows| rows.is_empty()) {
            return Ok(Restored::NotFound);
        }
        res.last()
            .and_then(|rows| rows.first())
            .map(|r| parse_row(r, true))
            .transpose()?
            .map(Restored::Done)
            .ok_or(StoreError::Corrupt("restored row"))
    }

    /// After the row of `id` is back (at `version`): its kept memberships whose other side
    /// exists go back to `members` (its own members only when `own_members`, i.e. not
    /// replaced by a POST), the groups that regained it get a new version, and the kept rows
    /// and the tombstone are dropped. Every statement is guarded by the restored row.
    fn restore_member_stmts(
        &self,
        id: &str,
        version: i64,
        replaced: bool,
        now: &str,
    ) -> Result<Vec<Stmt>> {
        let t: SqlValue = self.tenant().into();
        let live = "EXISTS (SELECT 1 FROM resources g WHERE g.tenant = tm.tenant AND g.id = tm.group_id) \
                    AND EXISTS (SELECT 1 FROM resources x WHERE x.tenant = tm.tenant AND x.id = tm.member_id)";
        let restored =
            "EXISTS (SELECT 1 FROM resources WHERE tenant = ? AND id = ? AND version = ?)";
        let own = if replaced { "" } else { " OR tm.group_id = ?" };
        let mut p = vec![t.clone(), id.into()];
        if !replaced {
            p.push(id.into());
        }
        p.extend([t.clone(), id.into(), SqlValue::Int(version)]);
        let back = Stmt::new(
            format!(
                "INSERT OR IGNORE INTO members (tenant, group_id, member_id) \
                 SELECT tm.tenant, tm.group_id, tm.member_id FROM tombstone_members tm \
                 WHERE tm.tenant = ? AND (tm.member_id = ?{own}) AND {live} AND {restored}"
            ),
            p,
        );
        let bump = Stmt::new(
            format!(
                "UPDATE resources SET version = ?, modified = ? WHERE tenant = ? AND type = 'Group' \
                 AND id <> ? AND id IN (SELECT tm.group_id FROM tombstone_members tm \
                 WHERE tm.tenant = ? AND tm.member_id = ? AND {live}) AND {restored}"
            ),
            vec![
                SqlValue::Int(new_version()?),
                now.into(),
                t.clone(),
                id.into(),
                t.clone(),
                id.into(),
                t.clone(),
                id.into(),
                SqlValue::Int(version),
            ],
        );
        let drop_kept = Stmt::new(
            format!(
                "DELETE FROM tombstone_members AS tm WHERE tm.tenant = ? \
                 AND (tm.group_id = ? OR tm.member_id = ?) AND {live} AND {restored}"
            ),
            vec![
                t.clone(),
                id.into(),
                id.into(),
                t.clone(),
                id.into(),
                SqlValue::Int(version),
            ],
        );
        let drop_tombstone = Stmt::new(
            format!("DELETE FROM tombstones WHERE tenant = ? AND id = ? AND {restored}"),
            vec![t.clone(), id.into(), t, id.into(), SqlValue::Int(version)],
        );
        Ok(vec![back, bump, drop_kept, drop_tombstone])
    }
}

/// The daily purge, all tenants at once: every tombstone older than its tenant's
/// `deletion_days` (all of a tenant back on `hard`) is removed with its kept memberships, and
/// a `purge` event recorded for each, in one batch. `now` is the stored timestamp form.
pub fn purge_stmts(now: &str) -> Vec<Stmt> {
    let due = "FROM tombstones z LEFT JOIN tenants n ON n.id = z.tenant \
               WHERE z.deleted < strftime('%Y-%m-%dT%H:%M:%fZ', ?, '-' || coalesce(n.deletion_days, 0) || ' days')";
    vec![
        Stmt::new(
            format!(
                "INSERT INTO events (tenant, time, op, resource_type, resource_id, attributes, \
                 external_id, lifecycle, outcome, status) \
                 SELECT z.tenant, ?, 'delete', z.type, z.id, '[]', z.external_id, 'purge', 'success', 204 {due}"
            ),
            vec![now.into(), now.into()],
        ),
        Stmt::new(
            format!(
                "DELETE FROM tombstone_members AS tm WHERE EXISTS (SELECT 1 {due} \
                 AND z.tenant = tm.tenant AND z.id IN (tm.group_id, tm.member_id))"
            ),
            vec![now.into()],
        ),
        Stmt::new(
            format!("DELETE FROM tombstones WHERE rowid IN (SELECT z.rowid {due})"),
            vec![now.into()],
        ),
    ]
}
