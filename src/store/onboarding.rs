//! SQL for the IT admin's own way in (migration 0019): setup links and the sessions they
//! start, the deployment's OAuth applications, and the authorization code grant's codes,
//! grants and refresh tokens.
//!
//! Lookups by a secret's hash are cross-tenant by nature, like `tenancy::verify_token`: the
//! secret is what tells the tenant. Everything else is scoped to a tenant or names the
//! deployment-wide application it acts on. Every state change that must happen at most once
//! (opening a link, redeeming a code, rotating a refresh token) is one conditional `UPDATE`
//! whose marker (a fresh id) the following statements of the same batch require, so two
//! racing requests can never both win.

use super::Store;
use crate::store::sql::{SqlValue, Stmt};
use crate::store::tenancy::NewCredential;
use crate::store::{Db, Result, Row, StoreError};
use serde_json::Value;

/// How a session's administrator proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    SetupLink,
    Vendor,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::SetupLink => "setup_link",
            Via::Vendor => "vendor",
        }
    }
    fn parse(s: &str) -> Option<Via> {
        match s {
            "setup_link" => Some(Via::SetupLink),
            "vendor" => Some(Via::Vendor),
            _ => None,
        }
    }
}

/// A live administrator session: whom it acts for and who approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub tenant: String,
    pub approver: String,
    pub via: Via,
    pub expires: String,
}

/// A session to start; `hash` is the SHA-256 of the cookie's secret.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub hash: &'a str,
    pub tenant: &'a str,
    pub approver: &'a str,
    pub via: Via,
    pub created: &'a str,
    pub expires: &'a str,
}

/// A setup link as the admin API shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupLink {
    pub id: String,
    pub tenant: String,
    pub label: String,
    pub created: String,
    pub expires: String,
    pub opened: Option<String>,
    pub revoked: Option<String>,
}

/// An OAuth application of the deployment (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub created: String,
    pub revoked: Option<String>,
}

/// An authorization code to store.
#[derive(Debug, Clone)]
pub struct NewCode<'a> {
    pub hash: &'a str,
    pub grant_id: &'a str,
    pub tenant: &'a str,
    pub app: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub challenge: Option<&'a str>,
    pub method: Option<&'a str>,
    pub approver: &'a str,
    pub via: Via,
    pub created: &'a str,
    pub expires: &'a str,
}

/// A stored authorization code, as the token endpoint checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    pub grant_id: String,
    pub tenant: String,
    pub app: String,
    pub redirect_uri: Option<String>,
    pub challenge: Option<String>,
    pub method: Option<String>,
    pub expires: String,
    pub used: bool,
}

/// A stored refresh token, as the token endpoint checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    pub grant_id: String,
    pub tenant: String,
    pub app: String,
    pub expires: String,
    pub used: bool,
    pub grant_revoked: bool,
}

/// A refresh token to store: hash and expiry.
#[derive(Debug, Clone, Copy)]
pub struct NewRefresh<'a> {
    pub hash: &'a str,
    pub expires: &'a str,
}

fn text(row: &Row, col: &str) -> Result<String> {
    row.get(col)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or(StoreError::Corrupt("onboarding row"))
}

fn opt_text(row: &Row, col: &str) -> Option<String> {
    row.get(col).and_then(Value::as_str).map(str::to_string)
}

fn opt(v: Option<&str>) -> SqlValue {
    v.map_or(SqlValue::Null, SqlValue::from)
}

async fn run<D: Db>(db: &D, stmts: Vec<Stmt>) -> Result<Vec<Vec<Row>>> {
    Ok(db.batch(stmts).await?)
}

fn first(res: &[Vec<Row>], i: usize) -> Option<&Row> {
    res.get(i).and_then(|rows| rows.first())
}

fn session_row(row: &Row) -> Result<Session> {
    Ok(Session {
        id: text(row, "id")?,
        tenant: text(row, "tenant")?,
        approver: text(row, "approver")?,
        via: Via::parse(&text(row, "via")?).ok_or(StoreError::Corrupt("session via"))?,
        expires: text(row, "expires")?,
    })
}

fn link_row(row: &Row) -> Result<SetupLink> {
    Ok(SetupLink {
        id: text(row, "id")?,
        tenant: text(row, "tenant")?,
        label: text(row, "label")?,
        created: text(row, "created")?,
        expires: text(row, "expires")?,
        opened: opt_text(row, "opened"),
        revoked: opt_text(row, "revoked"),
    })
}

fn app_row(row: &Row) -> Result<App> {
    let uris: Vec<String> = serde_json::from_str(&text(row, "redirect_uris")?)
        .map_err(|_| StoreError::Corrupt("redirect uris"))?;
    Ok(App {
        id: text(row, "id")?,
        name: text(row, "name")?,
        redirect_uris: uris,
        created: text(row, "created")?,
        revoked: opt_text(row, "revoked"),
    })
}

const LINK_COLUMNS: &str = "id, tenant, label, created, expires, opened, revoked";
const SESSION_COLUMNS: &str = "id, tenant, approver, via, expires";
const APP_COLUMNS: &str = "id, name, redirect_uris, created, revoked";

/// The live session whose cookie secret hashes to `hash` (cross-tenant: the cookie tells).
pub async fn session<D: Db>(db: &D, hash: &str, now: &str) -> Result<Option<Session>> {
    let stmt = Stmt::new(
        format!(
            "SELECT {SESSION_COLUMNS} FROM setup_sessions WHERE hash = ? AND revoked IS NULL \
             AND expires > ?"
        ),
        vec![hash.into(), now.into()],
    );
    let res = run(db, vec![stmt]).await?;
    first(&res, 0).map(session_row).transpose()
}

/// Starts a session for an existing tenant (the vendor hand-off); `None` if there is none.
pub async fn insert_session<D: Db>(db: &D, s: &NewSession<'_>) -> Result<Option<Session>> {
    let stmt = Stmt::new(
        format!(
            "INSERT INTO setup_sessions (id, hash, tenant, approver, via, created, expires) \
             SELECT ?, ?, id, ?, ?, ?, ? FROM tenants WHERE id = ? RETURNING {SESSION_COLUMNS}"
        ),
        vec![
            s.id.into(),
            s.hash.into(),
            s.approver.into(),
            s.via.as_str().into(),
            s.created.into(),
            s.expires.into(),
            s.tenant.into(),
        ],
    );
    let res = run(db, vec![stmt]).await?;
    first(&res, 0).map(session_row).transpose()
}

/// Opens a setup link by the hash of its secret: only a live link never opened before, and
/// only once even when two browsers race (the link records the session it started, and the
/// session is inserted only for that mark). `s.tenant` and `s.approver` are ignored: both
/// come from the link. `None` if the link is unknown, expired, revoked or already opened.
pub async fn open_link<D: Db>(
    db: &D,
    link_hash: &str,
    s: &NewSession<'_>,
) -> Result<Option<Session>> {
    let now = s.created;
    let stmts = vec![
        Stmt::new(
            "UPDATE setup_links SET opened = ?, session = ? WHERE hash = ? AND opened IS NULL \
             AND revoked IS NULL AND expires > ?",
            vec![now.into(), s.id.into(), link_hash.into(), now.into()],
        ),
        Stmt::new(
            format!(
                "INSERT INTO setup_sessions (id, hash, tenant, approver, via, created, expires) \
                 SELECT ?, ?, tenant, id, 'setup_link', ?, ? FROM setup_links \
                 WHERE hash = ? AND session = ? RETURNING {SESSION_COLUMNS}"
            ),
            vec![
                s.id.into(),
                s.hash.into(),
                now.into(),
                s.expires.into(),
                link_hash.into(),
                s.id.into(),
            ],
        ),
    ];
    let res = run(db, stmts).await?;
    first(&res, 1).map(session_row).transpose()
}

impl<D: Db> Store<'_, D> {
    /// Stores a setup link of this tenant; `None` if the tenant does not exist.
    pub async fn insert_setup_link(
        &self,
        id: &str,
        hash: &str,
        label: &str,
        created: &str,
        expires: &str,
    ) -> Result<Option<SetupLink>> {
        let stmt = Stmt::new(
            format!(
                "INSERT INTO setup_links (id, tenant, hash, label, created, expires) \
                 SELECT ?, id, ?, ?, ?, ? FROM tenants WHERE id = ? RETURNING {LINK_COLUMNS}"
            ),
            vec![
                id.into(),
                hash.into(),
                label.into(),
                created.into(),
                expires.into(),
                self.tenant().into(),
            ],
        );
        let res = run(self.db, vec![stmt]).await?;
        first(&res, 0).map(link_row).transpose()
    }

    /// The tenant's setup links, newest first; `None` if the tenant does not exist.
    pub async fn setup_links(&self) -> Result<Option<Vec<SetupLink>>> {
        let stmts = vec![
            Stmt::new(
                "SELECT 1 AS present FROM tenants WHERE id = ?",
                vec![self.tenant().into()],
            ),
            Stmt::new(
                format!(
                    "SELECT {LINK_COLUMNS} FROM setup_links WHERE tenant = ? \
                     ORDER BY created DESC, id"
                ),
                vec![self.tenant().into()],
            ),
        ];
        let res = run(self.db, stmts).await?;
        if first(&res, 0).is_none() {
            return Ok(None);
        }
        let rows = res.get(1).map_or(&[][..], Vec::as_slice);
        rows.iter()
            .map(link_row)
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// Revokes a setup link and ends the session it started (idempotent: the first
    /// revocation time is kept); `None` if the tenant has no such link.
    pub async fn revoke_setup_link(&self, id: &str, now: &str) -> Result<Option<SetupLink>> {
        let stmts = vec![
            Stmt::new(
                format!(
                    "UPDATE setup_links SET revoked = coalesce(revoked, ?) WHERE tenant = ? \
                     AND id = ? RETURNING {LINK_COLUMNS}"
                ),
                vec![now.into(), self.tenant().into(), id.into()],
            ),
            Stmt::new(
                "UPDATE setup_sessions SET revoked = coalesce(revoked, ?) WHERE tenant = ? \
                 AND via = 'setup_link' AND approver = ?",
                vec![now.into(), self.tenant().into(), id.into()],
            ),
        ];
        let res = run(self.db, stmts).await?;
        first(&res, 0).map(link_row).transpose()
    }

    /// When a SCIM credential of this tenant was last seen authenticating a request, if ever:
    /// how the setup page tells that the identity provider has connected.
    pub async fn last_authenticated(&self) -> Result<Option<String>> {
        let stmt = Stmt::new(
            "SELECT max(last_used) AS seen FROM credentials WHERE tenant = ? \
             AND kind IN ('bearer', 'access')",
            vec![self.tenant().into()],
        );
        let res = run(self.db, vec![stmt]).await?;
        Ok(first(&res, 0).and_then(|r| opt_text(r, "seen")))
    }

    /// Stores an authorization code for this tenant, if the application is live.
    pub async fn insert_code(&self, c: &NewCode<'_>) -> Result<bool> {
        let stmt = Stmt::new(
            "INSERT INTO oauth_codes (hash, grant_id, tenant, app, redirect_uri, code_challenge, \
             challenge_method, approver, via, created, expires) \
             SELECT ?, ?, t.id, a.id, ?, ?, ?, ?, ?, ?, ? FROM tenants t, oauth_apps a \
             WHERE t.id = ? AND a.id = ? AND a.revoked IS NULL RETURNING hash",
            vec![
                c.hash.into(),
                c.grant_id.into(),
                opt(c.redirect_uri),
                opt(c.challenge),
                opt(c.method),
                c.approver.into(),
                c.via.as_str().into(),
                c.created.into(),
                c.expires.into(),
                self.tenant().into(),
                c.app.into(),
            ],
        );
        let res = run(self.db, vec![stmt]).await?;
        Ok(first(&res, 0).is_some())
    }
}

/// Creates an OAuth application.
pub async fn insert_app<D: Db>(
    db: &D,
    id: &str,
    name: &str,
    secret_hash: &str,
    redirect_uris: &[String],
    created: &str,
) -> Result<App> {
    let stmt = Stmt::new(
        format!(
            "INSERT INTO oauth_apps (id, name, secret_hash, redirect_uris, created) \
             VALUES (?, ?, ?, ?, ?) RETURNING {APP_COLUMNS}"
        ),
        vec![
            id.into(),
            name.into(),
            secret_hash.into(),
            serde_json::json!(redirect_uris).to_string().into(),
            created.into(),
        ],
    );
    let res = run(db, vec![stmt]).await?;
    first(&res, 0)
        .map(app_row)
        .ok_or(StoreError::Corrupt("created app"))?
}

/// Every OAuth application, oldest first.
pub async fn list_apps<D: Db>(db: &D) -> Result<Vec<App>> {
    let stmt = Stmt::new(
        format!("SELECT {APP_COLUMNS} FROM oauth_apps ORDER BY created, id"),
        vec![],
    );
    let res = run(db, vec![stmt]).await?;
    res.first()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(app_row)
        .collect()
}

/// One application, live or not.
pub async fn app<D: Db>(db: &D, id: &str) -> Result<Option<App>> {
    let stmt = Stmt::new(
        format!("SELECT {APP_COLUMNS} FROM oauth_apps WHERE id = ?"),
        vec![id.into()],
    );
    let res = run(db, vec![stmt]).await?;
    first(&res, 0).map(app_row).transpose()
}

/// Replaces an application's redirect URIs; `None` if there is no such application.
pub async fn set_redirect_uris<D: Db>(db: &D, id: &str, uris: &[String]) -> Result<Option<App>> {
    let stmt = Stmt::new(
        format!("UPDATE oauth_apps SET redirect_uris = ? WHERE id = ? RETURNING {APP_COLUMNS}"),
        vec![serde_json::json!(uris).to_string().into(), id.into()],
    );
    let res = run(db, vec![stmt]).await?;
    first(&res, 0).map(app_row).transpose()
}

/// Revokes an application with every grant it holds and every access token they yielded, in
/// one batch. Answers the application and the revoked access tokens as (tenant, id), for
/// the isolate's token cache; `None` if there is no such application.
pub async fn revoke_app<D: Db>(
    db: &D,
    id: &str,
    now: &str,
) -> Result<Option<(App, Vec<(String, String)>)>> {
    let stmts = vec![
        Stmt::new(
            format!(
                "UPDATE oauth_apps SET revoked = coalesce(revoked, ?) WHERE id = ? \
                 RETURNING {APP_COLUMNS}"
            ),
            vec![now.into(), id.into()],
        ),
        Stmt::new(
            "UPDATE oauth_grants SET revoked = coalesce(revoked, ?) WHERE app = ?",
            vec![now.into(), id.into()],
        ),
        Stmt::new(
            "UPDATE credentials SET revoked = coalesce(revoked, ?) WHERE kind = 'access' \
             AND parent_id IN (SELECT id FROM oauth_grants WHERE app = ?) RETURNING tenant, id",
            vec![now.into(), id.into()],
        ),
    ];
    let res = run(db, stmts).await?;
    let Some(app) = first(&res, 0).map(app_row).transpose()? else {
        return Ok(None);
    };
    let tokens = res
        .get(2)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|r| Ok((text(r, "tenant")?, text(r, "id")?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some((app, tokens)))
}

/// Whether `id` is a live application whose secret hashes to `secret_hash` (a read).
pub async fn app_is_valid<D: Db>(db: &D, id: &str, secret_hash: &str) -> Result<bool> {
    let stmt = Stmt::new(
        "SELECT 1 AS ok FROM oauth_apps WHERE id = ? AND secret_hash = ? AND revoked IS NULL",
        vec![id.into(), secret_hash.into()],
    );
    let res = run(db, vec![stmt]).await?;
    Ok(first(&res, 0).is_some())
}

/// The code whose secret hashes to `hash`, used or not (cross-tenant: the code tells).
pub async fn code<D: Db>(db: &D, hash: &str) -> Result<Option<Code>> {
    let stmt = Stmt::new(
        "SELECT grant_id, tenant, app, redirect_uri, code_challenge, challenge_method, expires, \
         used FROM oauth_codes WHERE hash = ?",
        vec![hash.into()],
    );
    let res = run(db, vec![stmt]).await?;
    first(&res, 0)
        .map(|r| {
            Ok(Code {
                grant_id: text(r, "grant_id")?,
                tenant: text(r, "tenant")?,
                app: text(r, "app")?,
                redirect_uri: opt_text(r, "redirect_uri"),
                challenge: opt_text(r, "code_challenge"),
                method: opt_text(r, "challenge_method"),
                expires: text(r, "expires")?,
                used: opt_text(r, "used").is_some(),
            })
        })
        .transpose()
}

/// The refresh token whose secret hashes to `hash`, with its grant's state.
pub async fn refresh_token<D: Db>(db: &D, hash: &str) -> Result<Option<Refresh>> {
    let stmt = Stmt::new(
        "SELECT r.grant_id, r.tenant, g.app, r.expires, r.used, g.revoked \
         FROM oauth_refresh_tokens r JOIN oauth_grants g ON g.id = r.grant_id WHERE r.hash = ?",
        vec![hash.into()],
    );
    let res = run(db, vec![stmt]).await?;
    first(&res, 0)
        .map(|r| {
            Ok(Refresh {
                grant_id: text(r, "grant_id")?,
                tenant: text(r, "tenant")?,
                app: text(r, "app")?,
                expires: text(r, "expires")?,
                used: opt_text(r, "used").is_some(),
                grant_revoked: opt_text(r, "revoked").is_some(),
            })
        })
        .transpose()
}

/// The statements that store an access token (`credentials`, kind `access`, parent the
/// grant) and a refresh token for the grant named by `source` (a `SELECT grant_id, tenant
/// FROM … WHERE …` with its params), both only if the source row exists.
fn token_stmts(
    source: &str,
    params: &[SqlValue],
    access: &NewCredential<'_>,
    refresh: NewRefresh<'_>,
) -> Vec<Stmt> {
    let mut a = vec![
        access.id.into(),
        access.hash.into(),
        access.label.into(),
        access.created.into(),
        opt(access.expires),
    ];
    a.extend_from_slice(params);
    let mut r = vec![
        refresh.hash.into(),
        access.created.into(),
        refresh.expires.into(),
    ];
    r.extend_from_slice(params);
    vec![
        Stmt::new(
            format!(
                "INSERT INTO credentials (id, tenant, kind, hash, label, created, expires, parent_id) \
                 SELECT ?, src.tenant, 'access', ?, ?, ?, ?, src.grant_id FROM ({source}) src \
                 RETURNING tenant"
            ),
            a,
        ),
        Stmt::new(
            format!(
                "INSERT INTO oauth_refresh_tokens (hash, grant_id, tenant, created, expires) \
                 SELECT ?, src.grant_id, src.tenant, ?, ? FROM ({source}) src"
            ),
            r,
        ),
    ]
}

/// Redeems a code for `app` in one batch: marks it used (only if unused, unexpired and the
/// application still live), writes its grant, an access token and a refresh token. Answers
/// the tenant they act for; `None` if another redemption won or the code died meanwhile.
pub async fn redeem_code<D: Db>(
    db: &D,
    hash: &str,
    app: &str,
    access: &NewCredential<'_>,
    refresh: NewRefresh<'_>,
) -> Result<Option<String>> {
    let now = access.created;
    let mut stmts = vec![
        Stmt::new(
            "UPDATE oauth_codes SET used = ?, redeemed_by = ? WHERE hash = ? AND app = ? \
             AND used IS NULL AND expires > ? \
             AND EXISTS (SELECT 1 FROM oauth_apps WHERE id = ? AND revoked IS NULL)",
            vec![
                now.into(),
                access.id.into(),
                hash.into(),
                app.into(),
                now.into(),
                app.into(),
            ],
        ),
        Stmt::new(
            "INSERT INTO oauth_grants (id, tenant, app, approver, via, created) \
             SELECT grant_id, tenant, app, approver, via, ? FROM oauth_codes \
             WHERE hash = ? AND redeemed_by = ?",
            vec![now.into(), hash.into(), access.id.into()],
        ),
    ];
    let source = "SELECT grant_id, tenant FROM oauth_codes WHERE hash = ? AND redeemed_by = ?";
    stmts.extend(token_stmts(
        source,
        &[hash.into(), access.id.into()],
        access,
        refresh,
    ));
    let res = run(db, stmts).await?;
    first(&res, 2).map(|r| text(r, "tenant")).transpose()
}

/// Rotates a refresh token in one batch: marks it used (only if unused, unexpired, its grant
/// and application live), and stores the new access and refresh tokens of its grant.
/// Answers the tenant; `None` if it could not be rotated (a racing rotation won).
pub async fn rotate_refresh<D: Db>(
    db: &D,
    hash: &str,
    access: &NewCredential<'_>,
    refresh: NewRefresh<'_>,
) -> Result<Option<String>> {
    let now = access.created;
    let mut stmts = vec![Stmt::new(
        "UPDATE oauth_refresh_tokens SET used = ?, replaced_by = ? WHERE hash = ? \
         AND used IS NULL AND expires > ? AND EXISTS (SELECT 1 FROM oauth_grants g \
         JOIN oauth_apps a ON a.id = g.app WHERE g.id = oauth_refresh_tokens.grant_id \
         AND g.revoked IS NULL AND a.revoked IS NULL)",
        vec![now.into(), refresh.hash.into(), hash.into(), now.into()],
    )];
    let source =
        "SELECT grant_id, tenant FROM oauth_refresh_tokens WHERE hash = ? AND replaced_by = ?";
    stmts.extend(token_stmts(
        source,
        &[hash.into(), refresh.hash.into()],
        access,
        refresh,
    ));
    let res = run(db, stmts).await?;
    first(&res, 1).map(|r| text(r, "tenant")).transpose()
}

/// Revokes a grant and every access token it yielded (its refresh tokens die with it: they
/// are checked against the grant). Answers the revoked access tokens as (tenant, id).
pub async fn revoke_grant<D: Db>(
    db: &D,
    grant_id: &str,
    now: &str,
) -> Result<Vec<(String, String)>> {
    let stmts = vec![
        Stmt::new(
            "UPDATE oauth_grants SET revoked = coalesce(revoked, ?) WHERE id = ?",
            vec![now.into(), grant_id.into()],
        ),
        Stmt::new(
            "UPDATE credentials SET revoked = coalesce(revoked, ?) WHERE kind = 'access' \
             AND parent_id = ? RETURNING tenant, id",
            vec![now.into(), grant_id.into()],
        ),
    ];
    let res = run(db, stmts).await?;
    res.get(1)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|r| Ok((text(r, "tenant")?, text(r, "id")?)))
        .collect()
}
