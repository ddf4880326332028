//! SCIM 2.0 service provider (RFC 7643/7644) for Cloudflare Workers and D1.
//!
//! Everything but `worker_glue` is plain Rust that compiles natively, so the protocol core
//! (parsing, validation, SQL planning, rendering) is tested with `cargo test` against the
//! same SQLite engine that D1 runs. Requests flow parse → validate → plan → execute → render.

pub mod admin;
pub mod api;
pub mod audit;
pub mod auth;
pub mod console;
pub mod credentials;
pub mod cursor;
pub mod error;
pub mod filter;
pub mod http;
pub mod ids;
pub mod oauth;
pub mod patch;
pub mod projection;
pub mod query;
pub mod ratelimit;
pub mod resource;
pub mod schema;
pub mod sql;
pub mod store;
pub mod tenant;
pub mod time;
pub mod tolerance;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod reliability_tests;
#[cfg(test)]
mod tenancy_tests;
#[cfg(test)]
mod testing;

#[cfg(target_arch = "wasm32")]
mod worker_glue;

/// Whether PATCH is advertised in `ServiceProviderConfig`.
pub const PATCH_SUPPORTED: bool = true;
