//! Native test support: the `Db` trait over rusqlite with the bundled SQLite, initialised from
//! the same migration files D1 applies, plus a minimal executor for the async handlers.

use crate::store::sql::{SqlValue, Stmt};
use crate::store::{Db, DbError, Row};
use rusqlite::types::ValueRef;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// The migration files D1 applies, in order (the list lives with the Durable Object backend,
/// which applies it itself: `store::object::MIGRATIONS`).
pub fn migrations() -> impl Iterator<Item = &'static str> {
    crate::store::object::MIGRATIONS.iter().map(|(_, sql)| *sql)
}

pub struct SqliteDb {
    conn: RefCell<rusqlite::Connection>,
    /// Round trips made, i.e. `batch` calls; what the performance targets count.
    pub round_trips: Cell<usize>,
    /// Statements executed, across all round trips.
    pub statements: Cell<usize>,
}

impl SqliteDb {
    pub fn new() -> SqliteDb {
        let conn = rusqlite::Connection::open_in_memory().expect("in-memory sqlite");
        // D1 always enforces foreign keys.
        conn.execute_batch("PRAGMA foreign_keys = ON;")
            .expect("pragma");
        for m in migrations() {
            conn.execute_batch(m).expect("migration applies");
        }
        SqliteDb {
            conn: RefCell::new(conn),
            round_trips: Cell::new(0),
            statements: Cell::new(0),
        }
    }

    /// How often SQLite prepared `stmt` again while running it `times` times on one prepared
    /// statement, binding its parameters anew each time, as a Durable Object's statement
    /// cache does (`SQLITE_STMTSTATUS_REPREPARE`).
    pub fn reprepares(&self, stmt: &Stmt, times: usize) -> i32 {
        let conn = self.conn.borrow();
        let mut prepared = conn.prepare(&stmt.sql).expect("statement prepares");
        for _ in 0..times {
            let params = rusqlite::params_from_iter(stmt.params.iter().map(to_sql));
            let mut rows = prepared.query(params).expect("statement runs");
            while rows.next().expect("row").is_some() {}
        }
        prepared.get_status(rusqlite::StatementStatus::RePrepare)
    }

    pub fn query(&self, sql: &str) -> Vec<Row> {
        block_on(self.batch(vec![Stmt::new(sql, vec![])]))
            .expect("query")
            .remove(0)
    }
}

fn to_sql(v: &SqlValue) -> rusqlite::types::Value {
    match v {
        SqlValue::Null => rusqlite::types::Value::Null,
        SqlValue::Int(i) => d1_integer(*i),
        SqlValue::Real(f) => rusqlite::types::Value::Real(*f),
        SqlValue::Text(s) => rusqlite::types::Value::Text(s.clone()),
    }
}

/// What D1 binds for an integer parameter: the worker hands it over as a JavaScript double
/// (`worker::bind`), exact only up to 2^53, and a double outside the 64-bit range
/// (i64::MAX rounds up to 2^63) arrives as a REAL, which `LIMIT`/`OFFSET` refuse with
/// `datatype mismatch`. Native tests bind the same, so they see what the worker sees.
fn d1_integer(i: i64) -> rusqlite::types::Value {
    let f = i as f64;
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if (-TWO_63..TWO_63).contains(&f) {
        rusqlite::types::Value::Integer(f as i64)
    } else {
        rusqlite::types::Value::Real(f)
    }
}

impl Db for SqliteDb {
    async fn batch(&self, stmts: Vec<Stmt>) -> Result<Vec<Vec<Row>>, DbError> {
        self.round_trips.set(self.round_trips.get() + 1);
        self.statements.set(self.statements.get() + stmts.len());
        let mut conn = self.conn.borrow_mut();
        let tx = conn
            .transaction()
            .map_err(|e| DbError::from_message(&e.to_string()))?;
        let mut out = Vec::new();
        for s in &stmts {
            let mut prepared = tx
                .prepare(&s.sql)
                .map_err(|e| DbError::from_message(&e.to_string()))?;
            let names: Vec<String> = prepared
                .column_names()
                .iter()
                .map(|c| c.to_string())
                .collect();
            let params: Vec<rusqlite::types::Value> = s.params.iter().map(to_sql).collect();
            let mut rows = prepared
                .query(rusqlite::params_from_iter(params))
                .map_err(|e| DbError::from_message(&e.to_string()))?;
            let mut result = Vec::new();
            while let Some(row) = rows
                .next()
                .map_err(|e| DbError::from_message(&e.to_string()))?
            {
                let mut obj = Row::new();
                for (i, name) in names.iter().enumerate() {
                    let v = match row.get_ref(i).map_err(|e| DbError::Other(e.to_string()))? {
                        ValueRef::Null => Value::Null,
                        ValueRef::Integer(n) => Value::from(n),
                        ValueRef::Real(f) => Value::from(f),
                        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
                        ValueRef::Blob(_) => Value::Null,
                    };
                    obj.insert(name.clone(), v);
                }
                result.push(obj);
            }
            out.push(result);
        }
        tx.commit()
            .map_err(|e| DbError::from_message(&e.to_string()))?;
        Ok(out)
    }
}

/// Drives a future that never waits on anything external (rusqlite is synchronous).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// The whole service over an in-memory database: requests go through `api::handle` exactly as
/// the Worker runs them. The clock advances one second per request, so writes get distinct,
/// ordered timestamps.
pub struct Server {
    pub db: SqliteDb,
    pub config: crate::service::ctx::Config,
    pub now_ms: i64,
}

impl Server {
    /// `tokens` are the Worker-secret SCIM tokens; `admin` the ADMIN_TOKEN, if any.
    pub fn new(tokens: &[&str], admin: Option<&str>) -> Server {
        Server {
            db: SqliteDb::new(),
            config: crate::service::ctx::Config {
                tokens: tokens.iter().map(|t| t.to_string()).collect(),
                admin_token: admin.map(str::to_string),
                ..crate::service::ctx::Config::default()
            },
            now_ms: 1_700_000_000_000,
        }
    }

    pub fn send(&mut self, req: crate::service::http::Request) -> crate::service::http::Response {
        self.now_ms += 1000;
        let ctx = crate::service::ctx::Ctx::new(&self.db, &self.config, self.now_ms);
        block_on(crate::service::handle(&ctx, &req))
    }

    /// `method path` with a bearer token and, if given, a JSON body.
    pub fn call(
        &mut self,
        method: crate::service::http::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> crate::service::http::Response {
        let mut req = crate::service::http::Request::new(method, path, "https://scim.test")
            .with_header("authorization", &format!("Bearer {token}"));
        if let Some(b) = body {
            req = req
                .with_header("content-type", "application/scim+json")
                .with_body(b.to_string());
        }
        self.send(req)
    }
}
