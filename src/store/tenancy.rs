//! SQL for tenants and their credentials. Everything but two functions goes through `Store`
//! and so is scoped to its tenant like every resource statement. The exceptions are
//! cross-tenant by nature and say so: [`verify_token`] (a presented token is what *tells* the
//! tenant) and [`list_tenants`] (the admin API's tenant list).

use super::{int, Store};
use crate::store::schemas::{profile_of, profile_stmt, Profile};
use crate::store::sql::{SqlValue, Stmt};
use crate::store::{Db, Result, Row, StoreError};
use serde_json::Value;

/// What a stored credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A long-lived SCIM bearer token (pasted into the IdP as "Secret Token").
    Bearer,
    /// An OAuth 2.0 client (id + secret), usable only at the token endpoint.
    Client,
    /// A short-lived bearer token issued by the token endpoint to a client.
    Access,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bearer => "bearer",
            Kind::Client => "client",
            Kind::Access => "access",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "bearer" => Some(Kind::Bearer),
            "client" => Some(Kind::Client),
            "access" => Some(Kind::Access),
            _ => None,
        }
    }

    /// The secret's prefix: every kind starts with `TOKEN_PREFIX` (`crate::service::credentials`), the rest tells them apart.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Bearer => "scim_",
            Kind::Client => "scim_cs_",
            Kind::Access => "scim_at_",
        }
    }

    /// Whether a credential of this kind authenticates SCIM requests.
    pub fn is_scim(self) -> bool {
        matches!(self, Kind::Bearer | Kind::Access)
    }
}

/// A credential that was found valid: which tenant it belongs to and until when.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub tenant: String,
    pub credential_id: String,
    pub kind: Kind,
    /// Absolute expiry in ms since the epoch, if the credential expires.
    pub expires_ms: Option<i64>,
}

impl Verified {
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_ms.is_some_and(|e| now_ms >= e)
    }
}

/// A tenant as the admin API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRecord {
    pub id: String,
    pub name: String,
    pub created: String,
    pub strict_patch: bool,
    /// Attributes under undeclared extension URNs are refused (`extensions: reject`) rather
    /// than kept verbatim.
    pub reject_undeclared: bool,
    /// Storage limits (`None`: unlimited), enforced by triggers in every write's transaction.
    pub quota: Quota,
    /// What a DELETE does (`store::tombstones`).
    pub deletion: crate::store::tombstones::Policy,
}

/// What an admin PATCH of a tenant changes; `None` keeps a setting.
#[derive(Debug, Clone, Copy, Default)]
pub struct TenantChange<'a> {
    pub name: Option<&'a str>,
    pub strict_patch: Option<bool>,
    pub reject_undeclared: Option<bool>,
    pub quota: (LimitChange, LimitChange),
    /// `Some(None)`: the `hard` policy; `Some(Some(n))`: `soft`, tombstones kept `n` days.
    pub deletion_days: LimitChange,
    pub restore_on_create: Option<bool>,
}

/// A tenant's storage limits (defined with the profile, which carries them).
pub use crate::store::schemas::Quota;

/// A change to one limit: `None` keeps it, `Some(None)` lifts it, `Some(Some(n))` sets it.
pub type LimitChange = Option<Option<i64>>;

/// A stored credential, never with its secret (only the hash is stored, and never read back).
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialRecord {
    pub id: String,
    pub tenant: String,
    pub kind: Kind,
    pub label: String,
    pub created: String,
    pub expires: Option<String>,
    pub last_used: Option<String>,
    pub revoked: Option<String>,
    pub replaced_by: Option<String>,
    pub parent_id: Option<String>,
}

/// What a revocation ended: the credential asked for, the other credentials of its rotation
/// chain (oldest first), and the ids of everything revoked, access tokens included (for the
/// isolate's token cache).
#[derive(Debug, Clone, PartialEq)]
pub struct Revoked {
    pub credential: CredentialRecord,
    pub chain: Vec<CredentialRecord>,
    pub ids: Vec<String>,
}

/// A rotation: the old credential (now replaced, with its overlap as expiry), the new one,
/// and the ids of the old one's access tokens whose expiry was capped with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotated {
    pub old: CredentialRecord,
    pub new: CredentialRecord,
    pub capped: Vec<String>,
}

/// A credential to insert; `hash` is [`crate::service::credentials::hash`] of the secret.
#[derive(Debug, Clone)]
pub struct NewCredential<'x> {
    pub id: &'x str,
    pub kind: Kind,
    pub hash: &'x str,
    pub label: &'x str,
    pub created: &'x str,
    pub expires: Option<&'x str>,
}

const TENANT_COLUMNS: &str =
    "id, name, created, strict_patch, undeclared_extensions, max_resources, max_bytes, \
     deletion_days, restore_on_create";
const CREDENTIAL_COLUMNS: &str =
    "id, tenant, kind, label, created, expires, last_used, revoked, replaced_by, parent_id";

fn opt(v: Option<&str>) -> SqlValue {
    v.map_or(SqlValue::Null, SqlValue::from)
}

fn text(row: &Row, col: &str) -> Result<String> {
    row.get(col)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or(StoreError::Corrupt("credential or tenant row"))
}

fn opt_text(row: &Row, col: &str) -> Option<String> {
    row.get(col).and_then(Value::as_str).map(str::to_string)
}

fn tenant_row(row: &Row) -> Result<TenantRecord> {
    Ok(TenantRecord {
        id: text(row, "id")?,
        name: text(row, "name")?,
        created: text(row, "created")?,
        strict_patch: int(row.get("strict_patch")).unwrap_or(0) == 1,
        reject_undeclared: opt_text(row, "undeclared_extensions").as_deref() == Some("reject"),
        quota: Quota {
            resources: int(row.get("max_resources")),
            bytes: int(row.get("max_bytes")),
        },
        deletion: crate::store::tombstones::Policy {
            days: int(row.get("deletion_days")),
            restore_on_create: int(row.get("restore_on_create")) == Some(1),
        },
    })
}

fn credential_row(row: &Row) -> Result<CredentialRecord> {
    Ok(CredentialRecord {
        id: text(row, "id")?,
        tenant: text(row, "tenant")?,
        kind: Kind::parse(&text(row, "kind")?).ok_or(StoreError::Corrupt("credential kind"))?,
        label: text(row, "label")?,
        created: text(row, "created")?,
        expires: opt_text(row, "expires"),
        last_used: opt_text(row, "last_used"),
        revoked: opt_text(row, "revoked"),
        replaced_by: opt_text(row, "replaced_by"),
        parent_id: opt_text(row, "parent_id"),
    })
}

async fn run<D: Db>(db: &D, stmts: Vec<Stmt>) -> Result<Vec<Vec<Row>>> {
    Ok(db.batch(stmts).await?)
}

/// Verifies a SCIM credential by the hash of the presented token and records its use, in one
/// statement (one round trip): only a live bearer or access token matches. Cross-tenant by
/// design: the answer names the tenant. Client secrets never match here.
///
/// The tenant's profile (settings and declared schemas) comes in the same batch, so a request
/// with a token not yet cached still costs one round trip before its own work.
pub async fn verify_token<D: Db>(
    db: &D,
    hash: &str,
    now: &str,
) -> Result<Option<(Verified, Profile)>> {
    let stmt = Stmt::new(
        "UPDATE credentials SET last_used = ? WHERE hash = ? AND kind IN ('bearer', 'access') \
         AND revoked IS NULL AND (expires IS NULL OR expires > ?) \
         RETURNING id, tenant, kind, expires",
        vec![now.into(), hash.into(), now.into()],
    );
    let profile = profile_stmt(
        "(SELECT tenant FROM credentials WHERE hash = ?)",
        hash.into(),
    );
    let res = run(db, vec![stmt, profile]).await?;
    let Some(row) = res.first().and_then(|rows| rows.first()) else {
        return Ok(None);
    };
    let profile = profile_of(res.get(1).map_or(&[][..], Vec::as_slice))?;
    let expires = opt_text(row, "expires");
    let verified = Verified {
        tenant: text(row, "tenant")?,
        credential_id: text(row, "id")?,
        kind: Kind::parse(&text(row, "kind")?).ok_or(StoreError::Corrupt("credential kind"))?,
        expires_ms: match expires {
            Some(e) => Some(
                crate::proto::time::parse_rfc3339(&e)
                    .ok_or(StoreError::Corrupt("credential expiry"))?,
            ),
            None => None,
        },
    };
    Ok(Some((verified, profile)))
}

/// Every tenant, for the admin API (cross-tenant by nature).
pub async fn list_tenants<D: Db>(db: &D) -> Result<Vec<TenantRecord>> {
    let res = run(
        db,
        vec![Stmt::new(
            format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id"),
            vec![],
        )],
    )
    .await?;
    res.first()
        .map(|rows| rows.iter().map(tenant_row).collect())
        .unwrap_or_else(|| Ok(Vec::new()))
}

impl<D: Db> Store<'_, D> {
    fn tenant_param(&self) -> SqlValue {
        self.tenant.as_str().into()
    }

    /// Creates this store's tenant; 409 if it exists.
    pub async fn create_tenant(
        &self,
        name: &str,
        strict_patch: bool,
        quota: (LimitChange, LimitChange),
        now: &str,
    ) -> Result<TenantRecord> {
        // An unnamed limit keeps the column's default (migration 0009).
        let mut columns = String::from("id, name, created, strict_patch");
        let mut params = vec![
            self.tenant_param(),
            name.into(),
            now.into(),
            SqlValue::Int(i64::from(strict_patch)),
        ];
        for (column, change) in [("max_resources", quota.0), ("max_bytes", quota.1)] {
            if let Some(limit) = change {
                columns.push_str(", ");
                columns.push_str(column);
                params.push(limit.map_or(SqlValue::Null, SqlValue::Int));
            }
        }
        let marks = vec!["?"; params.len()].join(", ");
        let stmt = Stmt::new(
            format!("INSERT INTO tenants ({columns}) VALUES ({marks}) RETURNING {TENANT_COLUMNS}"),
            params,
        );
        let res = run(self.db, vec![stmt]).await?;
        res.first()
            .and_then(|rows| rows.first())
            .map(tenant_row)
            .ok_or(StoreError::Corrupt("created tenant"))?
    }

    /// This store's tenant, if it exists.
    pub async fn tenant_record(&self) -> Result<Option<TenantRecord>> {
        let stmt = Stmt::new(
            format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?"),
            vec![self.tenant_param()],
        );
        let res = run(self.db, vec![stmt]).await?;
        res.first()
            .and_then(|rows| rows.first())
            .map(tenant_row)
            .transpose()
    }

    /// Changes the tenant's settings in one statement; `None` if it does not exist.
    pub async fn update_tenant(&self, change: TenantChange<'_>) -> Result<Option<TenantRecord>> {
        let mut sets = String::from(
            "name = coalesce(?, name), strict_patch = coalesce(?, strict_patch), \
             undeclared_extensions = coalesce(?, undeclared_extensions)",
        );
        let mut params = vec![
            opt(change.name),
            change
                .strict_patch
                .map_or(SqlValue::Null, |s| SqlValue::Int(i64::from(s))),
            opt(change
                .reject_undeclared
                .map(|r| if r { "reject" } else { "keep" })),
        ];
        if let Some(r) = change.restore_on_create {
            sets.push_str(", restore_on_create = ?");
            params.push(SqlValue::Int(i64::from(r)));
        }
        let quota = change.quota;
        let limits = [
            ("max_resources", quota.0),
            ("max_bytes", quota.1),
            ("deletion_days", change.deletion_days),
        ];
        for (column, change) in limits {
            if let Some(limit) = change {
                sets.push_str(&format!(", {column} = ?"));
                params.push(limit.map_or(SqlValue::Null, SqlValue::Int));
            }
        }
        params.push(self.tenant_param());
        let stmt = Stmt::new(
            format!("UPDATE tenants SET {sets} WHERE id = ? RETURNING {TENANT_COLUMNS}"),
            params,
        );
        let res = run(self.db, vec![stmt]).await?;
        res.first()
            .and_then(|rows| rows.first())
            .map(tenant_row)
            .transpose()
    }

    /// Stores a new credential of this tenant; `None` if the tenant does not exist.
    pub async fn insert_credential(
        &self,
        c: &NewCredential<'_>,
    ) -> Result<Option<CredentialRecord>> {
        let stmt = Stmt::new(
            format!(
                "INSERT INTO credentials (id, tenant, kind, hash, label, created, expires) \
                 SELECT ?, id, ?, ?, ?, ?, ? FROM tenants WHERE id = ? \
                 RETURNING {CREDENTIAL_COLUMNS}"
            ),
            vec![
                c.id.into(),
                c.kind.as_str().into(),
                c.hash.into(),
                c.label.into(),
                c.created.into(),
                opt(c.expires),
                self.tenant_param(),
            ],
        );
        let res = run(self.db, vec![stmt]).await?;
        res.first()
            .and_then(|rows| rows.first())
            .map(credential_row)
            .transpose()
    }

    /// The tenant's bearer tokens and OAuth clients (not the short-lived access tokens), oldest
    /// first; `None` if the tenant does not exist.
    pub async fn credentials(&self) -> Result<Option<Vec<CredentialRecord>>> {
        let stmts = vec![
            Stmt::new(
                "SELECT 1 AS present FROM tenants WHERE id = ?",
                vec![self.tenant_param()],
            ),
            Stmt::new(
                format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE tenant = ? \
                     AND kind IN ('bearer', 'client') ORDER BY created, id"
                ),
                vec![self.tenant_param()],
            ),
        ];
        let res = run(self.db, stmts).await?;
        if res.first().is_none_or(|rows| rows.is_empty()) {
            return Ok(None);
        }
        let rows = res.get(1).cloned().unwrap_or_default();
        rows.iter()
            .map(credential_row)
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// One bearer token or OAuth client of this tenant.
    pub async fn credential(&self, id: &str) -> Result<Option<CredentialRecord>> {
        let stmt = Stmt::new(
            format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE tenant = ? AND id = ? \
                 AND kind IN ('bearer', 'client')"
            ),
            vec![self.tenant_param(), id.into()],
        );
        let res = run(self.db, vec![stmt]).await?;
        res.first()
            .and_then(|rows| rows.first())
            .map(credential_row)
            .transpose()
    }

    /// Revokes a bearer token or OAuth client of this tenant with its predecessors (the
    /// credentials it replaced, still working during their rotation overlap), with
    /// `successors` also the credentials that replaced it, and every access token any of them
    /// obtained: one statement, so no predecessor or token outlives the revocation by even a
    /// round trip. Idempotent: the first revocation time is kept. `None` if there is no such
    /// credential.
    pub async fn revoke_credential(
        &self,
        id: &str,
        now: &str,
        successors: bool,
    ) -> Result<Option<Revoked>> {
        // The chain is walked by `replaced_by` links within this tenant; rotation makes them
        // acyclic (a credential is replaced once, by a newer one), and UNION stops any cycle.
        let stmt = Stmt::new(
            format!(
                "WITH RECURSIVE \
                 back(id) AS (SELECT ? UNION SELECT c.id FROM credentials c JOIN back \
                   ON c.replaced_by = back.id WHERE c.tenant = ? AND c.kind IN ('bearer', 'client')), \
                 fwd(id) AS (SELECT ? WHERE ? UNION SELECT c.replaced_by FROM credentials c \
                   JOIN fwd ON c.id = fwd.id WHERE c.tenant = ? AND c.replaced_by IS NOT NULL), \
                 chain(id) AS (SELECT id FROM back UNION SELECT id FROM fwd) \
                 UPDATE credentials SET revoked = coalesce(revoked, ?) WHERE tenant = ? \
                 AND (id IN (SELECT id FROM chain) AND kind IN ('bearer', 'client') \
                   OR parent_id IN (SELECT id FROM chain)) \
                 RETURNING {CREDENTIAL_COLUMNS}"
            ),
            vec![
                id.into(),
                self.tenant_param(),
                id.into(),
                SqlValue::Int(i64::from(successors)),
                self.tenant_param(),
                now.into(),
                self.tenant_param(),
            ],
        );
        let res = run(self.db, vec![stmt]).await?;
        let rows = res.into_iter().next().unwrap_or_default();
        let all = rows
            .iter()
            .map(credential_row)
            .collect::<Result<Vec<_>>>()?;
        let ids = all.iter().map(|c| c.id.clone()).collect();
        let Some(credential) = all.iter().find(|c| c.id == id).cloned() else {
            return Ok(None);
        };
        let mut chain: Vec<CredentialRecord> = all
            .into_iter()
            .filter(|c| c.id != id && c.kind != Kind::Access)
            .collect();
        chain.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
        Ok(Some(Revoked {
            credential,
            chain,
            ids,
        }))
    }

    /// Rotation in one round trip: the live, not yet replaced credential `old_id` (of `new`'s
    /// kind) gets `old_expires` as its expiry, unless it expires sooner, and is marked as
    /// replaced; the new credential, with the old one's label unless `new.label` is non-empty,
    /// is inserted only if that happened; and the access tokens the old one obtained get the
    /// same cap on their expiry, so none outlives the overlap (the same batch: no token is
    /// ever valid past its client's end). `None` if `old_id` could not be rotated.
    pub async fn rotate_credential(
        &self,
        old_id: &str,
        new: &NewCredential<'_>,
        old_expires: &str,
    ) -> Result<Option<Rotated>> {
        let now = new.created;
        let stmts = vec![
            Stmt::new(
                format!(
                    "UPDATE credentials SET replaced_by = ?, \
                     expires = CASE WHEN expires IS NULL OR expires > ? THEN ? ELSE expires END \
                     WHERE tenant = ? AND id = ? AND kind = ? AND revoked IS NULL \
                     AND replaced_by IS NULL AND (expires IS NULL OR expires > ?) \
                     RETURNING {CREDENTIAL_COLUMNS}"
                ),
                vec![
                    new.id.into(),
                    old_expires.into(),
                    old_expires.into(),
                    self.tenant_param(),
                    old_id.into(),
                    new.kind.as_str().into(),
                    now.into(),
                ],
            ),
            Stmt::new(
                format!(
                    "INSERT INTO credentials (id, tenant, kind, hash, label, created, expires) \
                     SELECT ?, tenant, kind, ?, CASE WHEN ? = '' THEN label ELSE ? END, ?, ? \
                     FROM credentials WHERE tenant = ? AND id = ? AND replaced_by = ? \
                     RETURNING {CREDENTIAL_COLUMNS}"
                ),
                vec![
                    new.id.into(),
                    new.hash.into(),
                    new.label.into(),
                    new.label.into(),
                    now.into(),
                    opt(new.expires),
                    self.tenant_param(),
                    old_id.into(),
                    new.id.into(),
                ],
            ),
            Stmt::new(
                "UPDATE credentials SET \
                 expires = CASE WHEN expires IS NULL OR expires > ? THEN ? ELSE expires END \
                 WHERE tenant = ? AND kind = 'access' AND parent_id = ? \
                 AND EXISTS (SELECT 1 FROM credentials WHERE tenant = ? AND id = ? AND replaced_by = ?) \
                 RETURNING id",
                vec![
                    old_expires.into(),
                    old_expires.into(),
                    self.tenant_param(),
                    old_id.into(),
                    self.tenant_param(),
                    old_id.into(),
                    new.id.into(),
                ],
            ),
        ];
        let res = run(self.db, stmts).await?;
        let first = |i: usize| res.get(i).and_then(|rows| rows.first());
        let (Some(old), Some(new)) = (first(0), first(1)) else {
            return Ok(None);
        };
        let capped = res
            .get(2)
            .map(|rows| rows.iter().map(|r| text(r, "id")).collect())
            .transpose()?
            .unwrap_or_default();
        Ok(Some(Rotated {
            old: credential_row(old)?,
            new: credential_row(new)?,
            capped,
        }))
    }

    /// Whether `client_id` is a live OAuth client of this tenant whose secret hashes to
    /// `secret_hash`: a read, so a failed token request never writes to the database.
    pub async fn client_is_valid(
        &self,
        client_id: &str,
        secret_hash: &str,
        now: &str,
    ) -> Result<bool> {
        let stmt = Stmt::new(
            "SELECT 1 AS ok FROM credentials WHERE tenant = ? AND id = ? AND kind = 'client' \
             AND hash = ? AND revoked IS NULL AND (expires IS NULL OR expires > ?)",
            vec![
                self.tenant_param(),
                client_id.into(),
                secret_hash.into(),
                now.into(),
            ],
        );
        let res = run(self.db, vec![stmt]).await?;
        Ok(res.first().is_some_and(|rows| !rows.is_empty()))
    }

    /// The OAuth 2.0 client credentials grant in one round trip: if `client_id` is a live
    /// client of this tenant whose secret hashes to `secret_hash`, stores the access token
    /// `token` (its expiry capped at the client's) and records the client's use. Expired access
    /// tokens of the tenant are deleted in the same batch. `None` if the client is not valid.
    pub async fn issue_access_token(
        &self,
        client_id: &str,
        secret_hash: &str,
        token: &NewCredential<'_>,
    ) -> Result<Option<CredentialRecord>> {
        let now = token.created;
        let expires = token
            .expires
            .ok_or(StoreError::Corrupt("access token expiry"))?;
        let stmts = vec![
            Stmt::new(
                "DELETE FROM credentials WHERE tenant = ? AND kind = 'access' AND expires <= ?",
                vec![self.tenant_param(), now.into()],
            ),
            Stmt::new(
                format!(
                    "INSERT INTO credentials (id, tenant, kind, hash, label, created, expires, parent_id) \
                     SELECT ?, c.tenant, 'access', ?, c.label, ?, \
                     CASE WHEN c.expires IS NOT NULL AND c.expires < ? THEN c.expires ELSE ? END, c.id \
                     FROM credentials c WHERE c.tenant = ? AND c.id = ? AND c.kind = 'client' \
                     AND c.hash = ? AND c.revoked IS NULL AND (c.expires IS NULL OR c.expires > ?) \
                     RETURNING {CREDENTIAL_COLUMNS}"
                ),
                vec![
                    token.id.into(),
                    token.hash.into(),
                    now.into(),
                    expires.into(),
                    expires.into(),
                    self.tenant_param(),
                    client_id.into(),
                    secret_hash.into(),
                    now.into(),
                ],
            ),
            Stmt::new(
                "UPDATE credentials SET last_used = ? WHERE tenant = ? AND id = ? \
                 AND EXISTS (SELECT 1 FROM credentials WHERE tenant = ? AND id = ? AND parent_id = ?)",
                vec![
                    now.into(),
                    self.tenant_param(),
                    client_id.into(),
                    self.tenant_param(),
                    token.id.into(),
                    client_id.into(),
                ],
            ),
        ];
        let res = run(self.db, stmts).await?;
        res.get(1)
            .and_then(|rows| rows.first())
            .map(credential_row)
            .transpose()
    }
}
