//! The store: every SQL statement the service runs, scoped to one tenant.
//!
//! `Store` holds the tenant and adds it to every statement itself, so no handler can forget
//! the tenant condition. Each public method is one D1 round trip (`Db::batch` runs its
//! statements in one atomic call), which is what the performance targets count.
//!
//! Writes use optimistic concurrency: every write stores a fresh random `version` and is
//! conditioned on the version it read, so two concurrent read-modify-writes can never both
//! apply (the loser sees no row change and retries or answers 412). Because versions are random
//! rather than incremented, "the row now has the version I wrote" proves that *this* write
//! applied, which guards the membership statements that follow in the same batch.
//!
//! Writes that depend on nothing they read skip the version condition (`Update::expected` is
//! `None`) and so can never lose a race: a PUT without If-Match replaces the whole resource,
//! and a PATCH that only adds or removes group members touches member rows (whose inserts
//! and deletes commute with everything but each other, and are atomic per batch) and leaves
//! `data` as stored. Both still write a fresh version, so ETags change and the guard works.

use crate::store::cursor::Position;
pub use crate::store::events::AuditNote;
pub use error::{Constraint, DbError, Quota, QuotaUsage, Result, StoreError};

pub mod coalesce;
pub mod cursor;
pub mod entitlements;
pub mod error;
pub mod events;
mod list;
#[cfg(test)]
mod list_order_tests;
pub mod moving;
pub mod object;
pub mod onboarding;
pub mod query;
pub mod schemas;
pub mod sql;
pub mod tenancy;
pub mod tolerances;
pub mod tombstones;
#[cfg(test)]
mod undeclared_cost_tests;
pub mod unique;
pub mod webhooks;
use crate::proto::resource::{Meta, Related};
use crate::proto::schema::ResourceType;
use crate::store::sql::{SqlValue, Stmt};
use serde_json::{Map, Value};

pub type Row = Map<String, Value>;

/// The database as the service needs it: one call, one round trip, all-or-nothing.
#[allow(async_fn_in_trait)] // single-threaded runtimes (workerd, tests): no Send bound wanted
pub trait Db {
    /// Executes `stmts` in order inside one transaction and returns each statement's rows.
    async fn batch(&self, stmts: Vec<Stmt>) -> std::result::Result<Vec<Vec<Row>>, DbError>;

    /// Runs `tasks` (each doing its own `batch` calls) to completion, outputs in task order.
    /// A database that merges concurrent batches into shared round trips
    /// ([`coalesce::Coalescing`], what the Worker uses) runs them together; any other runs
    /// them one after the other. `None`: a task that could not finish.
    async fn drive<F: std::future::Future>(&self, tasks: Vec<F>) -> Vec<Option<F::Output>> {
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            out.push(Some(task.await));
        }
        out
    }

    /// Runs `tasks` all or nothing: `Some` (outputs in task order) when the batches they
    /// made went to the database as one merged batch that applied; `None` when that batch
    /// failed, so nothing of it applied (the tasks saw errors, their outputs are dropped),
    /// or when the database cannot merge batches (then nothing ran).
    async fn drive_atomic<F: std::future::Future>(
        &self,
        tasks: Vec<F>,
    ) -> Option<Vec<Option<F::Output>>> {
        drop(tasks);
        None
    }
}

/// A resource as read from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub rt: ResourceType,
    pub id: String,
    /// The stored attributes as the `data` column holds them: JSON object text. Responses
    /// carry it verbatim (`resource::write_spliced`); only what must look inside (PATCH,
    /// `attributes=` projections) parses it, with [`Stored::attributes`].
    pub data: String,
    pub meta: Meta,
    /// Group members or user groups; `None` when not loaded.
    pub related: Option<Vec<Related>>,
}

impl Stored {
    /// The stored attributes, parsed.
    pub fn attributes(&self) -> Result<Map<String, Value>> {
        serde_json::from_str(&self.data).map_err(|_| StoreError::Corrupt("data"))
    }
}

/// Outcome of a conditional write.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Done(Stored),
    /// The row's version was not the expected one (a concurrent write won, or If-Match failed).
    Conflict,
    NotFound,
}

/// Membership changes, applied as row inserts and deletes.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    Add(Vec<String>),
    Remove(Vec<String>),
    RemoveAll,
}

pub struct Store<'a, D: Db> {
    db: &'a D,
    tenant: String,
    /// When set, `create`/`update`/`delete` record a provisioning-log event in the same batch.
    audit: Option<AuditNote>,
    /// Declared attributes whose values are unique in the tenant: `create` and `update` keep
    /// their rows in `unique_values` in the same batch (see [`unique`]).
    unique: Vec<unique::UniqueAttr>,
}

/// A resource's columns, as read from the row `$outer` (`r` in a SELECT, the table itself in an
/// UPDATE's RETURNING, which SQLite does not let name an alias).
macro_rules! resource_columns {
    ($outer:literal) => {
        concat!(
            $outer,
            ".id, ",
            $outer,
            ".type, ",
            $outer,
            ".data, ",
            $outer,
            ".created, ",
            $outer,
            ".modified, ",
            $outer,
            ".version"
        )
    };
}

const COLUMNS: &str = resource_columns!("r");

/// Correlated subquery listing a resource's related resources as a JSON array of
/// `[id, type, display]`: a group's members, or a user's (direct) groups. `$outer` names the
/// resource's row: `r` in a SELECT, the table itself in an UPDATE's RETURNING (which SQLite
/// does not let name an alias).
macro_rules! related_subquery {
    (Group, $outer:literal) => {
        concat!(
            "(SELECT json_group_array(json_array(x.id, x.type, coalesce(x.display_name, x.user_name))) \
             FROM members m JOIN resources x ON x.tenant = m.tenant AND x.id = m.member_id \
             WHERE m.tenant = ", $outer, ".tenant AND m.group_id = ", $outer, ".id) AS related"
        )
    };
    (User, $outer:literal) => {
        concat!(
            "(SELECT json_group_array(json_array(x.id, x.type, x.display_name)) \
             FROM members m JOIN resources x ON x.tenant = m.tenant AND x.id = m.group_id \
             WHERE m.tenant = ", $outer, ".tenant AND m.member_id = ", $outer, ".id) AS related"
        )
    };
}

/// [`related_subquery`] of a row read as `r`.
fn related_sql(rt: ResourceType) -> &'static str {
    match rt {
        ResourceType::Group => related_subquery!(Group, "r"),
        ResourceType::User => related_subquery!(User, "r"),
    }
}

/// The row an UPDATE wrote and, if `with_related`, its [`related_subquery`].
fn returning_sql(rt: ResourceType, with_related: bool) -> &'static str {
    match (rt, with_related) {
        (_, false) => resource_columns!("resources"),
        (ResourceType::Group, true) => concat!(
            resource_columns!("resources"),
            ", ",
            related_subquery!(Group, "resources")
        ),
        (ResourceType::User, true) => concat!(
            resource_columns!("resources"),
            ", ",
            related_subquery!(User, "resources")
        ),
    }
}

/// `'User'` / `'Group'` as an SQL literal. Inlined (never input-derived) so SQLite can use the
/// partial unique index on group names.
fn type_literal(rt: ResourceType) -> &'static str {
    match rt {
        ResourceType::User => "'User'",
        ResourceType::Group => "'Group'",
    }
}

/// A new random version: positive and below 2^53 so it survives JavaScript numbers in D1.
pub fn new_version() -> Result<i64> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| StoreError::Database(format!("getrandom: {e}")))?;
    Ok((u64::from_le_bytes(b) >> 12) as i64 | 1)
}

pub fn select_sql(rt: ResourceType, with_related: bool) -> String {
    let related = if with_related {
        format!(", {}", related_sql(rt))
    } else {
        String::new()
    };
    format!("SELECT {COLUMNS}{related} FROM resources r")
}

impl<'a, D: Db> Store<'a, D> {
    pub fn new(db: &'a D, tenant: impl Into<String>) -> Self {
        Store {
            db,
            tenant: tenant.into(),
            audit: None,
            unique: Vec::new(),
        }
    }

    /// The same store, enforcing the uniqueness of `attrs` in its writes.
    pub fn with_unique(mut self, attrs: Vec<unique::UniqueAttr>) -> Store<'a, D> {
        self.unique = attrs;
        self
    }

    /// The same store, recording the next write in the provisioning log as `note` says.
    pub fn audited(&self, note: AuditNote) -> Store<'a, D> {
        Store {
            db: self.db,
            tenant: self.tenant.clone(),
            audit: Some(note),
            unique: self.unique.clone(),
        }
    }

    /// The provisioning-log note of an audited store.
    pub fn audit_note(&self) -> Option<&AuditNote> {
        self.audit.as_ref()
    }

    /// The same store, with the changed attribute names recorded for the next write.
    pub fn changing(&self, attributes: Vec<String>) -> Store<'a, D> {
        let mut audit = self.audit.clone();
        if let Some(note) = audit.as_mut() {
            note.attributes = attributes;
        }
        Store {
            db: self.db,
            tenant: self.tenant.clone(),
            audit,
            unique: self.unique.clone(),
        }
    }

    /// The provisioning-log insert for a write of `rt`/`id`, if this store is audited. `guard`
    /// must be the write's own condition, evaluated before the write in the same batch, so
    /// the event exists exactly when the change does; `derived` says what else the row
    /// records of the change ([`Store::derived`]).
    fn audit_stmt(
        &self,
        rt: ResourceType,
        id: &str,
        derived: events::Derived,
        guard: Option<(String, Vec<SqlValue>)>,
    ) -> Option<Stmt> {
        let note = self.audit.as_ref()?;
        let guard = guard.as_ref().map(|(sql, p)| (sql.as_str(), p.clone()));
        Some(crate::store::events::success_stmt(
            &self.tenant,
            rt,
            id,
            note,
            derived,
            guard,
        ))
    }

    /// What the event of update `u` derives from the stored state before it: a user
    /// deactivated (the write sets `active` to false on a user that was not inactive already)
    /// or reactivated (`true` on one that was inactive), and a group's members added and
    /// removed (net of the changes in order, against the members it had).
    fn derived(&self, u: &Update<'_>) -> events::Derived {
        let mut d = events::Derived::default();
        let active = |cmp: &str| -> events::Expr {
            (
                format!(
                    "coalesce((SELECT json_extract(data, '$.active') FROM resources WHERE tenant = ? AND id = ?), 1) {cmp}"
                ),
                vec![self.tenant.as_str().into(), u.id.into()],
            )
        };
        if u.deactivating() {
            d.deactivated = active("<> 0");
        } else if u.reactivating() {
            d.reactivated = active("= 0");
        }
        let net = NetMembers::of(u.members);
        let current = "FROM members m WHERE m.tenant = ? AND m.group_id = ?";
        let here = || -> Vec<SqlValue> { vec![self.tenant.as_str().into(), u.id.into()] };
        if !net.adds.is_empty() {
            let mut p = vec![json_list(&net.adds).into()];
            p.extend(here());
            d.members_added = (
                format!(
                    "(SELECT nullif(json_group_array(j.value), '[]') FROM json_each(?) j \
                     WHERE NOT EXISTS (SELECT 1 {current} AND m.member_id = j.value))"
                ),
                p,
            );
        }
        let (cond, list) = if net.reset {
            ("NOT IN", &net.adds)
        } else {
            ("IN", &net.removes)
        };
        if net.reset || !net.removes.is_empty() {
            let mut p = here();
            p.push(json_list(list).into());
            d.members_removed = (
                format!(
                    "(SELECT nullif(json_group_array(m.member_id), '[]') {current} \
                     AND m.member_id {cond} (SELECT value FROM json_each(?)))"
                ),
                p,
            );
        }
        d
    }

    /// `EXISTS` condition matching the row a conditional write targets.
    fn target_exists(
        &self,
        rt: ResourceType,
        id: &str,
        expected: Option<i64>,
    ) -> (String, Vec<SqlValue>) {
        let mut params: Vec<SqlValue> = vec![self.tenant.as_str().into(), id.into()];
        let mut sql = format!(
            "EXISTS (SELECT 1 FROM resources WHERE tenant = ? AND type = {} AND id = ?",
            type_literal(rt)
        );
        if let Some(v) = expected {
            sql.push_str(" AND version = ?");
            params.push(SqlValue::Int(v));
        }
        sql.push(')');
        (sql, params)
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    async fn run(&self, stmts: Vec<Stmt>) -> Result<Vec<Vec<Row>>> {
        match self.db.batch(stmts).await {
            Ok(rows) => Ok(rows),
            // The limit and usage make the error actionable; read only after a refusal, so
            // the write path itself pays nothing for them.
            Err(DbError::Quota(q)) => Err(StoreError::Quota(
                q,
                self.quota_usage().await.ok().flatten(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The tenant's quotas and what it uses of them; `None` if the tenant does not exist.
    pub async fn quota_usage(&self) -> Result<Option<QuotaUsage>> {
        let res = self
            .db
            .batch(vec![Stmt::new(
                "SELECT max_resources, max_bytes, \
                 (SELECT coalesce(sum(n), 0) FROM resource_counts WHERE tenant = t.id) AS n, \
                 (SELECT coalesce(sum(bytes), 0) FROM resource_counts WHERE tenant = t.id) AS bytes \
                 FROM tenants t WHERE t.id = ?",
                vec![self.tenant.as_str().into()],
            )])
            .await?;
        Ok(res
            .first()
            .and_then(|rows| rows.first())
            .map(|r| QuotaUsage {
                max_resources: int(r.get("max_resources")),
                max_bytes: int(r.get("max_bytes")),
                resources: int(r.get("n")).unwrap_or(0),
                bytes: int(r.get("bytes")).unwrap_or(0),
            }))
    }

    fn get_stmt(&self, rt: ResourceType, id: &str, with_related: bool) -> Stmt {
        Stmt::new(
            format!(
                "{} WHERE r.tenant = ? AND r.type = {} AND r.id = ?",
                select_sql(rt, with_related),
                type_literal(rt)
            ),
            vec![self.tenant.as_str().into(), id.into()],
        )
    }

    /// One resource by id, with members/groups when `with_related`.
    pub async fn get(
        &self,
        rt: ResourceType,
        id: &str,
        with_related: bool,
    ) -> Result<Option<Stored>> {
        let mut res = self.run(vec![self.get_stmt(rt, id, with_related)]).await?;
        let rows = res.pop().unwrap_or_default();
        rows.first().map(|r| parse_row(r, with_related)).transpose()
    }

    /// The resource a PATCH starts from, with the tenant's `strict_patch` setting, in one read.
    pub async fn get_for_patch(
        &self,
        rt: ResourceType,
        id: &str,
    ) -> Result<Option<(Stored, bool)>> {
        let stmt = Stmt::new(
            format!(
                "SELECT {COLUMNS}, (SELECT strict_patch FROM tenants t WHERE t.id = r.tenant) AS strict \
                 FROM resources r WHERE r.tenant = ? AND r.type = {} AND r.id = ?",
                type_literal(rt)
            ),
            vec![self.tenant.as_str().into(), id.into()],
        );
        let mut res = self.run(vec![stmt]).await?;
        let rows = res.pop().unwrap_or_default();
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let strict = int(row.get("strict")).unwrap_or(0) == 1;
        Ok(Some((parse_row(row, false)?, strict)))
    }

    /// Counts each of `names` (tolerances a write showed) for the tenant, when `guard` (the
    /// write's own condition) holds; one statement for all of them: the names travel as one
    /// JSON array parameter.
    fn tolerance_stmt(
        &self,
        names: &[&str],
        now: &str,
        guard: Option<(&str, Vec<SqlValue>)>,
    ) -> Stmt {
        let names = serde_json::to_string(names).unwrap_or_else(|_| "[]".into());
        let mut params: Vec<SqlValue> = vec![self.tenant.as_str().into(), now.into(), names.into()];
        // `WHERE` even without a guard: SQLite cannot otherwise tell the upsert's ON CONFLICT
        // from a join constraint of the SELECT.
        let cond = match guard {
            Some((sql, p)) => {
                params.extend(p);
                format!(" WHERE {sql}")
            }
            None => " WHERE true".to_string(),
        };
        Stmt::new(
            format!(
                "INSERT INTO tolerance_counts (tenant, name, count, last_seen) \
                 SELECT ?, j.value, 1, ? FROM json_each(?) j{cond} \
                 ON CONFLICT (tenant, name) DO UPDATE SET count = count + 1, last_seen = excluded.last_seen"
            ),
            params,
        )
    }

    /// The tenant's strict setting: identity-provider quirks are refused rather than
    /// tolerated. Read only when a request showed one.
    pub async fn is_strict(&self) -> Result<bool> {
        let res = self
            .run(vec![Stmt::new(
                "SELECT strict_patch FROM tenants WHERE id = ?",
                vec![self.tenant.as_str().into()],
            )])
            .await?;
        let row = res.first().and_then(|rows| rows.first());
        Ok(row.is_some_and(|r| int(r.get("strict_patch")).unwrap_or(0) == 1))
    }

    /// Inserts a resource (and a group's members) and reads it back, in one round trip;
    /// `tolerances` are counted in the same batch.
    pub async fn create(
        &self,
        rt: ResourceType,
        id: &str,
        data: &Map<String, Value>,
        members: &[String],
        now: &str,
        tolerances: &[&str],
    ) -> Result<Stored> {
        let version = new_version()?;
        let data_text = serde_json::to_string(data).map_err(|_| StoreError::Corrupt("data"))?;
        // A new user belongs to no group yet: the INSERT itself returns the whole row, which
        // saves the read-back statement (a group reads back its members' display names).
        let returning = rt == ResourceType::User && members.is_empty();
        let mut stmts = vec![Stmt::new(
            if returning {
                "INSERT INTO resources (tenant, id, type, data, created, modified, version) VALUES (?, ?, ?, ?, ?, ?, ?) \
                 RETURNING id, type, data, created, modified, version"
            } else {
                "INSERT INTO resources (tenant, id, type, data, created, modified, version) VALUES (?, ?, ?, ?, ?, ?, ?)"
            },
            vec![
                self.tenant.as_str().into(),
                id.into(),
                rt.name().into(),
                data_text.into(),
                now.into(),
                now.into(),
                SqlValue::Int(version),
            ],
        )];
        if !members.is_empty() {
            stmts.push(self.add_members_stmt(id, members, None));
        }
        stmts.extend(self.unique_stmts(id, version, false));
        stmts.extend(self.audit_stmt(rt, id, events::Derived::default(), None));
        if !tolerances.is_empty() {
            stmts.push(self.tolerance_stmt(tolerances, now, None));
        }
        if !returning {
            stmts.push(self.get_stmt(rt, id, true));
        }
        let res = self.run(stmts).await;
        let res = match res {
            Err(StoreError::MissingReference) if !members.is_empty() => {
                return Err(self.explain_missing_members(members).await)
            }
            other => other?,
        };
        let rows = if returning { res.first() } else { res.last() }
            .cloned()
            .unwrap_or_default();
        rows.first()
            .map(|r| parse_row(r, true))
            .transpose()?
            .ok_or(StoreError::Corrupt("created row"))
    }

    /// Applies `u` if the row still has version `u.expected` (or unconditionally when it is
    /// `None`), and gets the result, in one round trip. Membership changes and tolerance
    /// counts are guarded by the new version, so they apply exactly when the resource update
    /// did; the batch is atomic, so nothing can slip in between.
    ///
    /// The UPDATE returns the row it wrote, `related` included: the answer is exactly what
    /// the batch stored, and no read-back statement follows. Only a group whose member rows
    /// this batch changes, read with its members, is read back after them. A row the UPDATE did not match is gone when
    /// the write was unconditional, and `Conflict` otherwise: the caller's retry reads again
    /// (and finds it gone), and an If-Match on a resource that no longer exists fails as
    /// RFC 7232 §3.1 says it does.
    pub async fn update(&self, u: &Update<'_>) -> Result<Write> {
        let version = new_version()?;
        let mut stmts: Vec<Stmt> = self
            .audit_stmt(
                u.rt,
                u.id,
                self.derived(u),
                Some(self.target_exists(u.rt, u.id, u.expected)),
            )
            .into_iter()
            .collect();
        // Index of the UPDATE's result in the batch.
        let update_at = stmts.len();
        stmts.push(self.update_stmt(u, version)?);
        if u.data.is_some() {
            stmts.extend(self.unique_stmts(u.id, version, true));
        }
        for change in u.members {
            stmts.push(self.member_change_stmt(u.id, change, version));
        }
        if !u.tolerances.is_empty() {
            let mut params = Vec::new();
            let g = self.version_guard(u.id, version, &mut params);
            stmts.push(self.tolerance_stmt(u.tolerances, u.now, Some((g, params))));
        }
        let read_back = u.with_related && !u.members.is_empty();
        if read_back {
            stmts.push(self.get_stmt(u.rt, u.id, true));
        }
        let res = match self.run(stmts).await {
            Err(StoreError::MissingReference) if u.adds_members() => {
                let added: Vec<String> = u
                    .members
                    .iter()
                    .filter_map(|m| match m {
                        MemberChange::Add(ids) => Some(ids.iter().cloned()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                return Err(self.explain_missing_members(&added).await);
            }
            other => other?,
        };
        if res.get(update_at).is_none_or(|rows| rows.is_empty()) {
            return Ok(match u.expected {
                Some(_) => Write::Conflict,
                None => Write::NotFound,
            });
        }
        let written = if read_back {
            res.last()
        } else {
            res.get(update_at)
        };
        let row = written
            .and_then(|rows| rows.first())
            .ok_or(StoreError::Corrupt("updated row"))?;
        Ok(Write::Done(parse_row(row, u.with_related)?))
    }

    /// A condition that holds exactly when the row has the version this batch writes: the
    /// statements after the UPDATE apply only if it did.
    fn version_guard(&self, id: &str, version: i64, params: &mut Vec<SqlValue>) -> &'static str {
        params.extend([
            self.tenant.as_str().into(),
            id.into(),
            SqlValue::Int(version),
        ]);
        "EXISTS (SELECT 1 FROM resources WHERE tenant = ? AND id = ? AND version = ?)"
    }

    /// The UPDATE of the resource row itself, conditioned on `u.expected` when set.
    fn update_stmt(&self, u: &Update<'_>, version: i64) -> Result<Stmt> {
        let mut params: Vec<SqlValue> = Vec::new();
        let set_data = match u.data {
            Some(NewData::Attributes(d)) => {
                params.push(
                    serde_json::to_string(d)
                        .map_err(|_| StoreError::Corrupt("data"))?
                        .into(),
                );
                "data = ?, "
            }
            Some(NewData::Text { text, .. }) => {
                params.push(text.into());
                "data = ?, "
            }
            None => "",
        };
        params.extend([
            u.now.into(),
            SqlValue::Int(version),
            self.tenant.as_str().into(),
            u.id.into(),
        ]);
        let condition = match u.expected {
            Some(v) => {
                params.push(SqlValue::Int(v));
                " AND version = ?"
            }
            None => "",
        };
        // The row as written, its groups or members as they are at this point of the batch
        // (the member rows it changes come after it: see `update`).
        let returning = returning_sql(u.rt, u.with_related && u.members.is_empty());
        Ok(Stmt::new(
            format!(
                "UPDATE resources SET {set_data}modified = ?, version = ? \
                 WHERE tenant = ? AND type = {} AND id = ?{condition} RETURNING {returning}",
                type_literal(u.rt)
            ),
            params,
        ))
    }

    /// One membership change of group `id`, guarded by the version the batch writes.
    fn member_change_stmt(&self, id: &str, change: &MemberChange, version: i64) -> Stmt {
        match change {
            MemberChange::Add(ids) => self.add_members_stmt(id, ids, Some(version)),
            MemberChange::Remove(ids) => {
                let mut params: Vec<SqlValue> = vec![
                    self.tenant.as_str().into(),
                    id.into(),
                    json_list(ids).into(),
                ];
                let g = self.version_guard(id, version, &mut params);
                Stmt::new(
                    format!(
                        "DELETE FROM members WHERE tenant = ? AND group_id = ? \
                         AND member_id IN (SELECT value FROM json_each(?)) AND {g}"
                    ),
                    params,
                )
            }
            MemberChange::RemoveAll => {
                let mut params: Vec<SqlValue> = vec![self.tenant.as_str().into(), id.into()];
                let g = self.version_guard(id, version, &mut params);
                Stmt::new(
                    format!("DELETE FROM members WHERE tenant = ? AND group_id = ? AND {g}"),
                    params,
                )
            }
        }
    }

    /// Deletes a resource (memberships go with it, by cascade), keeping a tombstone when the
    /// tenant's policy is `soft` ([`tombstones`]). `expected` makes it conditional (If-Match).
    pub async fn delete(&self, rt: ResourceType, id: &str, expected: Option<i64>) -> Result<Write> {
        let mut sql = format!(
            "DELETE FROM resources WHERE tenant = ? AND type = {} AND id = ?",
            type_literal(rt)
        );
        let mut params: Vec<SqlValue> = vec![self.tenant.as_str().into(), id.into()];
        if let Some(v) = expected {
            sql.push_str(" AND version = ?");
            params.push(SqlValue::Int(v));
        }
        sql.push_str(" RETURNING id");
        let derived = events::Derived {
            lifecycle: self.delete_lifecycle(),
            ..events::Derived::default()
        };
        let mut stmts: Vec<Stmt> = self
            .audit_stmt(rt, id, derived, Some(self.target_exists(rt, id, expected)))
            .into_iter()
            .collect();
        // Under the `soft` policy the row and its memberships are kept first (`tombstones`).
        stmts.extend(self.tombstone_stmts(rt, id, expected));
        let delete_at = stmts.len();
        stmts.push(Stmt::new(sql, params));
        if expected.is_some() {
            // Tells "gone" from "changed" without a second round trip.
            stmts.push(Stmt::new(
                format!(
                    "SELECT 1 AS present FROM resources WHERE tenant = ? AND type = {} AND id = ?",
                    type_literal(rt)
                ),
                vec![self.tenant.as_str().into(), id.into()],
            ));
        }
        let res = self.run(stmts).await?;
        let deleted = res.get(delete_at).is_some_and(|rows| !rows.is_empty());
        let still_there = res.get(delete_at + 1).is_some_and(|rows| !rows.is_empty());
        Ok(if deleted {
            Write::Done(Stored {
                rt,
                id: id.to_string(),
                data: "{}".into(),
                meta: Meta {
                    created: String::new(),
                    modified: String::new(),
                    version: 0,
                },
                related: None,
            })
        } else if still_there {
            Write::Conflict
        } else {
            Write::NotFound
        })
    }

    /// One page of a filtered list and the total count, in one round trip: planned by
    /// [`list::plan`] without touching the database, then run and read back.
    pub async fn list(&self, q: &ListQuery) -> Result<ListPage> {
        let plan = list::plan(&self.tenant, q);
        let res = self.run(plan.stmts).await?;
        list::read(res, q, plan.inline_total)
    }

    /// The deployment secret `name` (not a tenant's: the one table the store reads without a
    /// tenant), created as `fresh` if there is none yet. One round trip; `INSERT OR IGNORE`
    /// makes concurrent first uses agree on whichever was written first.
    pub async fn deployment_secret(&self, name: &str, fresh: &str) -> Result<String> {
        let res = self
            .run(vec![
                Stmt::new(
                    "INSERT OR IGNORE INTO deployment_secrets (name, value) VALUES (?, ?)",
                    vec![name.into(), fresh.into()],
                ),
                Stmt::new(
                    "SELECT value FROM deployment_secrets WHERE name = ?",
                    vec![name.into()],
                ),
            ])
            .await?;
        res.get(1)
            .and_then(|rows| rows.first())
            .and_then(|r| r.get("value"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(StoreError::Corrupt("deployment secret"))
    }

    fn add_members_stmt(&self, group_id: &str, ids: &[String], guard_version: Option<i64>) -> Stmt {
        let mut sql = String::from(
            "INSERT OR IGNORE INTO members (tenant, group_id, member_id) SELECT ?, ?, j.value FROM json_each(?) j",
        );
        let mut params: Vec<SqlValue> = vec![
            self.tenant.as_str().into(),
            group_id.into(),
            json_list(ids).into(),
        ];
        if let Some(v) = guard_version {
            sql.push_str(" WHERE EXISTS (SELECT 1 FROM resources WHERE tenant = ? AND id = ? AND version = ?)");
            params.extend([
                self.tenant.as_str().into(),
                group_id.into(),
                SqlValue::Int(v),
            ]);
        }
        Stmt::new(sql, params)
    }

    /// After a foreign-key failure, names the member ids that do not exist in this tenant.
    async fn explain_missing_members(&self, ids: &[String]) -> StoreError {
        let stmt = Stmt::new(
            "SELECT j.value AS id FROM json_each(?) j WHERE NOT EXISTS \
             (SELECT 1 FROM resources r WHERE r.tenant = ? AND r.id = j.value)",
            vec![json_list(ids).into(), self.tenant.as_str().into()],
        );
        match self.run(vec![stmt]).await {
            Ok(res) => {
                let missing: Vec<String> = res
                    .first()
                    .map(|rows| {
                        rows.iter()
                            .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                if missing.is_empty() {
                    StoreError::MissingReference
                } else {
                    StoreError::MissingMembers(missing)
                }
            }
            Err(e) => e,
        }
    }
}

/// A conditional write of one resource.
#[derive(Debug, Clone)]
pub struct Update<'x> {
    pub rt: ResourceType,
    pub id: &'x str,
    /// The version read before planning; the write applies only if it is still current.
    /// `None` makes the write unconditional, for writes that depend on nothing they read:
    /// a PUT without If-Match, or a PATCH that only changes a group's member rows.
    pub expected: Option<i64>,
    /// The new stored `data`; `None` keeps the stored one (a membership-only change still
    /// gets a new version and `lastModified`, because members are part of the resource).
    pub data: Option<NewData<'x>>,
    pub members: &'x [MemberChange],
    pub now: &'x str,
    /// The answer carries the group's members or the user's groups.
    pub with_related: bool,
    /// Names of the client quirks tolerated by this request, counted per tenant.
    pub tolerances: &'x [&'static str],
}

impl Update<'_> {
    /// The write sets `active` to false (the event says so if the resource was active).
    fn deactivating(&self) -> bool {
        match self.data {
            Some(NewData::Attributes(d)) => d.get("active") == Some(&Value::Bool(false)),
            Some(NewData::Text { deactivating, .. }) => deactivating,
            None => false,
        }
    }

    /// The write sets `active` to true (the event says so if the resource was inactive).
    fn reactivating(&self) -> bool {
        match self.data {
            Some(NewData::Attributes(d)) => d.get("active") == Some(&Value::Bool(true)),
            Some(NewData::Text { reactivating, .. }) => reactivating,
            None => false,
        }
    }

    fn adds_members(&self) -> bool {
        self.members
            .iter()
            .any(|m| matches!(m, MemberChange::Add(ids) if !ids.is_empty()))
    }
}

/// The new stored `data` of an [`Update`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NewData<'x> {
    /// Attributes to serialise (PUT).
    Attributes(&'x Map<String, Value>),
    /// The text to store, already written (PATCH, `patch::apply_text`), and whether the
    /// write sets `active` to false or to true.
    Text {
        text: &'x str,
        deactivating: bool,
        reactivating: bool,
    },
}

/// What a list request asks of the store, already planned.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub rt: Option<ResourceType>,
    pub where_sql: Option<String>,
    pub params: Vec<SqlValue>,
    pub order: Option<crate::store::query::SortOrder>,
    pub descending: bool,
    /// 1-based; ignored in cursor mode.
    pub start_index: i64,
    pub count: i64,
    pub with_related: bool,
    /// Cursor paging (RFC 9865): keyset instead of offset, and report where the page ended.
    pub cursor_mode: bool,
    /// Start after this position (cursor mode).
    pub after: Option<Position>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub total: i64,
    pub items: Vec<Stored>,
    /// Where the next page starts, if there is one (cursor mode only).
    pub next: Option<Position>,
}

/// The net effect of a list of membership changes applied in order: the final members are
/// `(reset ? {} : before - removes) + adds` (`adds` and `removes` are disjoint).
#[derive(Debug, Default, PartialEq)]
struct NetMembers {
    reset: bool,
    adds: Vec<String>,
    removes: Vec<String>,
}

impl NetMembers {
    fn of(changes: &[MemberChange]) -> NetMembers {
        let mut net = NetMembers::default();
        for change in changes {
            match change {
                MemberChange::Add(ids) => {
                    net.removes.retain(|r| !ids.contains(r));
                    for id in ids {
                        if !net.adds.contains(id) {
                            net.adds.push(id.clone());
                        }
                    }
                }
                MemberChange::Remove(ids) => {
                    net.adds.retain(|a| !ids.contains(a));
                    for id in ids {
                        if !net.removes.contains(id) {
                            net.removes.push(id.clone());
                        }
                    }
                }
                MemberChange::RemoveAll => {
                    net = NetMembers {
                        reset: true,
                        ..NetMembers::default()
                    };
                }
            }
        }
        net
    }
}

fn json_list(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// D1 hands numbers over as JavaScript doubles; rusqlite as integers. Accept both.
fn int(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

fn text<'r>(row: &'r Row, col: &str) -> Result<&'r str> {
    row.get(col)
        .and_then(Value::as_str)
        .ok_or(StoreError::Corrupt("row"))
}

pub fn parse_row(row: &Row, with_related: bool) -> Result<Stored> {
    let rt = ResourceType::from_name(text(row, "type")?).ok_or(StoreError::Corrupt("type"))?;
    let data = text(row, "data")?.to_string();
    let related = with_related.then(|| related_of(row)).transpose()?;
    Ok(Stored {
        rt,
        id: text(row, "id")?.to_string(),
        data,
        meta: Meta {
            created: text(row, "created")?.to_string(),
            modified: text(row, "modified")?.to_string(),
            version: int(row.get("version")).ok_or(StoreError::Corrupt("version"))?,
        },
        related,
    })
}

/// [`parse_row`] of a row that is not needed afterwards: its strings are moved, not copied.
/// A list page reads 100 rows; copying their texts, then freeing both copies, showed in its
/// profile (docs/PERFORMANCE.md, "The list page written directly").
pub fn parse_owned_row(mut row: Row, with_related: bool) -> Result<Stored> {
    let rt = ResourceType::from_name(text(&row, "type")?).ok_or(StoreError::Corrupt("type"))?;
    let related = with_related.then(|| related_of(&row)).transpose()?;
    let version = int(row.get("version")).ok_or(StoreError::Corrupt("version"))?;
    let mut take = |col: &str| match row.remove(col) {
        Some(Value::String(s)) => Ok(s),
        _ => Err(StoreError::Corrupt("row")),
    };
    Ok(Stored {
        rt,
        id: take("id")?,
        data: take("data")?,
        meta: Meta {
            created: take("created")?,
            modified: take("modified")?,
            version,
        },
        related,
    })
}

/// The `related` column (`related_sql`'s JSON array of `[id, type, display]`), ordered by
/// display name, then id.
fn related_of(row: &Row) -> Result<Vec<Related>> {
    let raw = row.get("related").and_then(Value::as_str).unwrap_or("[]");
    let list: Vec<(String, String, Option<String>)> =
        serde_json::from_str(raw).map_err(|_| StoreError::Corrupt("related"))?;
    let mut out: Vec<Related> = list
        .into_iter()
        .filter_map(|(id, ty, display)| {
            ResourceType::from_name(&ty).map(|rt| Related { id, rt, display })
        })
        .collect();
    out.sort_by(|a, b| a.display.cmp(&b.display).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}
