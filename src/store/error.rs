//! What can go wrong in the store, in the store's own terms.
//!
//! The database reports failures as text (SQLite's messages, passed through by D1 and
//! rusqlite alike). [`DbError::from_message`] reads that text once, at the `Db` boundary, into
//! a kind and the failed constraint's columns; the store turns it into a [`StoreError`] that
//! names the constraint by what it protects. Callers match on kinds, never on messages or HTTP
//! statuses; the service maps each kind to its SCIM error in one place.

use crate::proto::error::ScimError;

/// A failure of one `Db::batch`, classified from the engine's message.
#[derive(Debug, Clone, PartialEq)]
pub enum DbError {
    /// A UNIQUE constraint failed; the columns it covers, as SQLite lists them
    /// (`resources.tenant, resources.user_name`).
    Unique(String),
    /// A FOREIGN KEY constraint failed (e.g. a group member that does not exist).
    ForeignKey,
    /// A tenant quota refused the write (the triggers of migration 0009).
    Quota(Quota),
    /// The tenant is being exported or imported: its directory is frozen (migration 0026).
    Moving,
    /// Anything else; the engine's message, for operators.
    Other(String),
}

/// Which per-tenant limit a write would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    Resources,
    Bytes,
}

/// What the quota triggers raise (migration 0009): a message of ours, not SQLite's.
const QUOTA_MESSAGE: &str = "scim-edge quota exceeded: ";
const UNIQUE_MESSAGE: &str = "UNIQUE constraint failed: ";
/// What the freeze triggers raise (migration 0026).
const MOVING_MESSAGE: &str = "scim-edge tenant moving";

impl DbError {
    /// Classifies an engine error message; D1 and rusqlite both pass SQLite's text through
    /// (D1 wraps it: `D1_ERROR: UNIQUE constraint failed: t.a, t.b: SQLITE_CONSTRAINT`).
    pub fn from_message(msg: &str) -> DbError {
        if let Some(at) = msg.find(UNIQUE_MESSAGE) {
            let rest = msg.get(at + UNIQUE_MESSAGE.len()..).unwrap_or_default();
            let columns = rest.split(": ").next().unwrap_or_default().trim();
            DbError::Unique(columns.to_string())
        } else if msg.contains("FOREIGN KEY constraint failed") {
            DbError::ForeignKey
        } else if msg.contains(MOVING_MESSAGE) {
            DbError::Moving
        } else if let Some(at) = msg.find(QUOTA_MESSAGE) {
            match msg.get(at + QUOTA_MESSAGE.len()..) {
                Some(rest) if rest.starts_with("resources") => DbError::Quota(Quota::Resources),
                Some(rest) if rest.starts_with("bytes") => DbError::Quota(Quota::Bytes),
                _ => DbError::Other(msg.to_string()),
            }
        } else {
            DbError::Other(msg.to_string())
        }
    }
}

/// A uniqueness rule of the schema, by what it protects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// `resources_user_name`: userName per tenant, case-insensitively.
    UserName,
    /// `resources_group_name`: a Group's displayName per tenant, case-insensitively.
    GroupDisplayName,
    /// The primary key of `resources`.
    ResourceId,
    /// The primary key of `tenants`.
    TenantId,
    /// `unique_values`: a declared attribute with `uniqueness: server` (migration 0012).
    DeclaredUnique,
    /// The primary key of `entitlement_values`: a value's id per tenant and kind.
    DefinitionId,
    /// Any other; the columns as SQLite named them.
    Other(String),
}

impl Constraint {
    /// The constraint a UNIQUE failure names, from its column list.
    pub fn from_columns(columns: &str) -> Constraint {
        match columns {
            "resources.tenant, resources.user_name" => Constraint::UserName,
            "resources.tenant, resources.display_name" => Constraint::GroupDisplayName,
            "resources.tenant, resources.id" => Constraint::ResourceId,
            "tenants.id" => Constraint::TenantId,
            "unique_values.tenant, unique_values.attr, unique_values.value" => {
                Constraint::DeclaredUnique
            }
            "entitlement_values.tenant, entitlement_values.kind, entitlement_values.id" => {
                Constraint::DefinitionId
            }
            other => Constraint::Other(other.to_string()),
        }
    }
}

/// A tenant's storage limits (`None`: unlimited) and its usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaUsage {
    pub max_resources: Option<i64>,
    pub max_bytes: Option<i64>,
    pub resources: i64,
    pub bytes: i64,
}

/// What went wrong in a store call.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreError {
    /// A unique index refused the write.
    Unique(Constraint),
    /// A row the write references does not exist (a FOREIGN KEY failed), e.g. the tenant.
    MissingReference,
    /// Group member ids that do not exist in the tenant.
    MissingMembers(Vec<String>),
    /// A tenant quota refused the write; the limits and usage when they could be read.
    Quota(Quota, Option<QuotaUsage>),
    /// The tenant is moving (an export or import is under way): writes wait until it ends.
    Moving,
    /// A stored row or value did not have the shape the store writes (which column).
    Corrupt(&'static str),
    /// The database or the platform failed; the message is for operators only.
    Database(String),
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> StoreError {
        match e {
            DbError::Unique(columns) => StoreError::Unique(Constraint::from_columns(&columns)),
            DbError::ForeignKey => StoreError::MissingReference,
            DbError::Quota(q) => StoreError::Quota(q, None),
            DbError::Moving => StoreError::Moving,
            DbError::Other(msg) => StoreError::Database(msg),
        }
    }
}

/// The store's results.
pub type Result<T> = std::result::Result<T, StoreError>;

/// The SCIM error for each store failure: the one mapping (RFC 7644 §3.12 statuses and
/// `scimType`s) from what the store says went wrong to what the client is told.
impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> ScimError {
        match e {
            StoreError::Unique(c) => ScimError::uniqueness(match c {
                Constraint::UserName => "a User with this userName already exists (userName is unique, case-insensitively)".to_string(),
                Constraint::GroupDisplayName => "a Group with this displayName already exists (displayName is unique, case-insensitively)".to_string(),
                Constraint::ResourceId => "a resource with this id already exists".to_string(),
                Constraint::TenantId => "a tenant with this id already exists".to_string(),
                Constraint::DeclaredUnique => "another resource has the same value of an attribute the tenant declared unique (uniqueness: server)".to_string(),
                Constraint::DefinitionId => "a value with this id already exists; update it, or choose another id".to_string(),
                Constraint::Other(_) => "it conflicts with an existing one".to_string(),
            }),
            StoreError::MissingReference => {
                ScimError::invalid_value("a referenced resource does not exist")
            }
            StoreError::MissingMembers(ids) => {
                ScimError::invalid_value(format!("members not found: {}", ids.join(", ")))
            }
            StoreError::Quota(q, usage) => ScimError::quota_exceeded(quota_detail(q, usage)),
            // 503 (RFC 7231 §6.6.4): the condition is temporary, and identity providers retry
            // 5xx answers later, so provisioning resumes by itself once the move ends.
            StoreError::Moving => ScimError::new(
                503,
                None,
                "the tenant's directory is being moved (export or import under way); reads \
                 are served, writes are refused until the move ends: retry later",
            ),
            StoreError::Corrupt(what) => {
                ScimError::internal().with_cause(format!("stored {what} has an unexpected shape"))
            }
            // SQLite/D1 messages name tables and constraints, never bound values: safe to log.
            StoreError::Database(msg) => ScimError::internal().with_cause(format!("database: {msg}")),
        }
    }
}

fn quota_detail(q: Quota, usage: Option<QuotaUsage>) -> String {
    let what = match (q, usage) {
        (Quota::Resources, Some(u)) => format!(
            "{} resources stored, the limit is {}",
            u.resources,
            u.max_resources.unwrap_or_default()
        ),
        (Quota::Bytes, Some(u)) => format!(
            "{} bytes of resource data stored, the limit is {}",
            u.bytes,
            u.max_bytes.unwrap_or_default()
        ),
        (Quota::Resources, None) => "the resource limit is reached".into(),
        (Quota::Bytes, None) => "the storage limit is reached".into(),
    };
    format!(
        "the tenant's storage quota does not allow this write ({what}); nothing was stored. \
         The service's administrator can raise the quota"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_messages_are_classified_once() {
        let d1 = "D1_ERROR: UNIQUE constraint failed: resources.tenant, resources.user_name: SQLITE_CONSTRAINT";
        assert_eq!(
            StoreError::from(DbError::from_message(d1)),
            StoreError::Unique(Constraint::UserName)
        );
        let native = "UNIQUE constraint failed: resources.tenant, resources.display_name";
        assert_eq!(
            StoreError::from(DbError::from_message(native)),
            StoreError::Unique(Constraint::GroupDisplayName)
        );
        assert_eq!(
            DbError::from_message("UNIQUE constraint failed: tenants.id"),
            DbError::Unique("tenants.id".into())
        );
        assert_eq!(
            DbError::from_message("FOREIGN KEY constraint failed"),
            DbError::ForeignKey
        );
        assert_eq!(
            DbError::from_message("D1_ERROR: scim-edge quota exceeded: bytes: SQLITE_CONSTRAINT"),
            DbError::Quota(Quota::Bytes)
        );
        assert_eq!(
            DbError::from_message("D1_ERROR: scim-edge tenant moving: SQLITE_CONSTRAINT"),
            DbError::Moving
        );
        assert!(matches!(
            DbError::from_message("no such table: x"),
            DbError::Other(_)
        ));
    }

    #[test]
    fn every_kind_maps_to_one_scim_error() {
        let cases = [
            (StoreError::Unique(Constraint::UserName), 409),
            (StoreError::Unique(Constraint::Other("x".into())), 409),
            (StoreError::MissingReference, 400),
            (StoreError::MissingMembers(vec!["a".into()]), 400),
            (StoreError::Quota(Quota::Resources, None), 507),
            (StoreError::Moving, 503),
            (StoreError::Corrupt("data"), 500),
            (StoreError::Database("boom".into()), 500),
        ];
        for (e, status) in cases {
            assert_eq!(ScimError::from(e.clone()).status, status, "{e:?}");
        }
    }
}
