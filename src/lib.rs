//! scim-edge: a SCIM 2.0 service provider (RFC 7643/7644) for Cloudflare Workers and D1.
//!
//! # Layout
//!
//! Four layers, each a folder, each depending only on the ones before it (the architecture
//! test, `tests/architecture.rs`, fails the build otherwise):
//!
//! | layer | what | may use |
//! |---|---|---|
//! | [`proto`] | SCIM as pure functions: schemas, filters, PATCH, validation, rendering, projection | nothing else |
//! | [`store`] | the `Db` trait, every SQL statement, tenant scoping, filter and sort push-down, the provisioning log, tenancy and credentials | `proto` |
//! | [`service`] | routing, handlers for SCIM, admin, OAuth (client credentials; the authorization code grant and its setup links), the console, authentication, rate limits | `proto`, `store` |
//! | `worker` | the only code that touches the `worker` crate: D1, the tenants' Durable Objects (`SCIM_STORAGE`), secrets, rate-limit bindings, the event handlers | all |
//!
//! Everything but `worker` compiles natively, so `cargo test` runs the whole service against
//! the same SQLite engine D1 runs, with the same migrations.
//!
//! # One request
//!
//! Entra deactivates a user: `PATCH /scim/v2/Users/{id}` with
//! `{"Operations": [{"op": "Replace", "path": "active", "value": "False"}]}`.
//!
//! 1. `worker` turns the Workers request into a [`service::http::Request`] (the body read to
//!    its end, at most 1 MiB kept) and calls [`service::handle`].
//! 2. [`service::handle`] gives it a request id and routes it by path ([`service::tenant::target`]);
//!    [`service::scim::admit`] authenticates the bearer token (one D1 statement, then the
//!    isolate's cache) and applies the tenant's rate limit; [`service::scim::serve`] picks
//!    the PATCH handler.
//! 3. **Parse and validate**: [`proto::patch::PatchRequest::parse`] turns the body into typed
//!    operations: paths resolved against [`proto::schema`], `"Replace"` and `"False"` accepted
//!    as [`proto::tolerance`]s. A malformed body is refused here, before any I/O.
//! 4. **Read**: [`store::Store::get_for_patch`] reads the stored resource and the tenant's strict
//!    setting in one statement; a strict tenant now gets the 400 the quirk deserves.
//! 5. **Apply**: [`proto::patch::apply_text`] applies the operations to the stored JSON text,
//!    parsing only the attributes they address, and re-validates what they touched.
//! 6. **Plan and execute**: [`store::Store::update`] writes the new text conditioned on the
//!    version read, the provisioning-log event and the tolerance counts, in one atomic batch.
//! 7. **Render**: [`service::scim`] splices the stored text into the response
//!    ([`proto::resource::write_spliced`]); errors become RFC 7644 §3.12 bodies in one place.

pub mod proto;
pub mod service;
pub mod store;

#[cfg(test)]
mod testing;

#[cfg(target_arch = "wasm32")]
mod worker;

/// Whether PATCH is advertised in `ServiceProviderConfig`.
pub const PATCH_SUPPORTED: bool = true;
