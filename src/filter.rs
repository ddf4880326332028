//! SCIM filter language (RFC 7644 §3.4.2.2). Placeholder until the query engine lands.
