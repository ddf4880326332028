//! SQL statements as plain values: the planner builds them, the D1 binding (or rusqlite in
//! tests) executes them. Nothing input-derived is ever spliced into SQL text; it travels as a
//! bound parameter.

/// `LIMIT` over one bound value, for every statement whose limit is a parameter. SQLite's
/// planner reads the value bound to a bare `LIMIT ?`, so each binding of it, even to the same
/// value, expires the prepared statement and its next step prepares it again. A Durable
/// Object's `SqlStorage` keeps statements prepared between requests; the re-preparation made
/// a `userName eq` lookup cost about 70 µs of SQLite per execution instead of 15
/// (docs/PERFORMANCE.md, 2026-12-02). Under a cast the planner does not read the value, and
/// the number both backends bind (a JavaScript double) is read as the integer it is.
pub const LIMIT_PARAM: &str = "LIMIT CAST(? AS INTEGER)";

/// D1 refuses statements with more than 100 bound parameters; plans stay below it by passing
/// long lists as one JSON array parameter read back with `json_each`.
pub const MAX_PARAMS: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> Self {
        SqlValue::Text(s.to_string())
    }
}
impl From<String> for SqlValue {
    fn from(s: String) -> Self {
        SqlValue::Text(s)
    }
}
impl From<i64> for SqlValue {
    fn from(i: i64) -> Self {
        SqlValue::Int(i)
    }
}

/// One statement with anonymous `?` placeholders, bound in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub sql: String,
    pub params: Vec<SqlValue>,
}

impl Stmt {
    pub fn new(sql: impl Into<String>, params: Vec<SqlValue>) -> Stmt {
        Stmt {
            sql: sql.into(),
            params,
        }
    }
}
