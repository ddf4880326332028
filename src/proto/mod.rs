//! The protocol: SCIM 2.0 (RFC 7643/7644) as pure functions. Schemas ([`schema`]), filters
//! with their attribute paths ([`filter`]), PATCH requests parsed into typed operations and
//! applied ([`patch`]), resource validation and rendering ([`resource`]), projection
//! (`attributes`/`excludedAttributes`, [`projection`]), the identity-provider quirks tolerated
//! ([`tolerance`]), dateTimes ([`time`]), extension schemas a tenant declares ([`declared`]),
//! Okta's entitlement and role resources ([`entitlement`]), webhook events ([`webhook`]), SCIM
//! security event tokens ([`secevent`]) and
//! the SCIM error type ([`error`]). No I/O, no async, no SQL: everything here is tested
//! natively and fuzzed.

pub mod bulk;
pub mod declared;
pub mod entitlement;
pub mod error;
pub mod filter;
pub mod patch;
pub mod projection;
pub mod resource;
pub mod schema;
pub mod secevent;
pub mod time;
pub mod tolerance;
pub mod webhook;
