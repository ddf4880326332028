//! SCIM 2.0 service provider (RFC 7643/7644) for Cloudflare Workers and D1.
//!
//! Everything but `worker_glue` is plain Rust that compiles natively, so the protocol core
//! (parsing, validation, SQL planning, rendering) is tested with `cargo test` against the
//! same SQLite engine that D1 runs. Requests flow parse → validate → plan → execute → render.

pub mod error;
pub mod filter;
pub mod http;
pub mod ids;
pub mod query;
pub mod schema;
pub mod sql;
pub mod time;
