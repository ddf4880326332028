//! Webhook events as pure functions: which event types a provisioning-log row amounts to, the
//! JSON body a receiver gets, and the checks on an endpoint's settings. The log row (the
//! outbox, `store::events`) records what a write did; this module decides what the SaaS app is
//! told of it, so the mapping is tested without a database or a queue.

use crate::proto::error::{Result, ScimError};
use crate::proto::schema::ResourceType;
use serde_json::{json, Value};

/// The event types of the `json` format (issue 13), in the order a row produces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    UserCreated,
    UserUpdated,
    UserDeactivated,
    UserReactivated,
    UserDeleted,
    GroupCreated,
    GroupUpdated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    UserRestored,
    UserPurged,
    GroupRestored,
    GroupPurged,
}

impl EventType {
    pub const ALL: [EventType; 14] = [
        EventType::UserCreated,
        EventType::UserUpdated,
        EventType::UserDeactivated,
        EventType::UserReactivated,
        EventType::UserDeleted,
        EventType::GroupCreated,
        EventType::GroupUpdated,
        EventType::GroupDeleted,
        EventType::GroupMemberAdded,
        EventType::GroupMemberRemoved,
        EventType::UserRestored,
        EventType::UserPurged,
        EventType::GroupRestored,
        EventType::GroupPurged,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventType::UserCreated => "user.created",
            EventType::UserUpdated => "user.updated",
            EventType::UserDeactivated => "user.deactivated",
            EventType::UserReactivated => "user.reactivated",
            EventType::UserDeleted => "user.deleted",
            EventType::GroupCreated => "group.created",
            EventType::GroupUpdated => "group.updated",
            EventType::GroupDeleted => "group.deleted",
            EventType::GroupMemberAdded => "group.member_added",
            EventType::GroupMemberRemoved => "group.member_removed",
            EventType::UserRestored => "user.restored",
            EventType::UserPurged => "user.purged",
            EventType::GroupRestored => "group.restored",
            EventType::GroupPurged => "group.purged",
        }
    }

    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether the body carries the resource as GET returns it (else only ids).
    pub fn carries_resource(self) -> bool {
        !matches!(
            self,
            EventType::UserDeleted
                | EventType::GroupDeleted
                | EventType::UserPurged
                | EventType::GroupPurged
                | EventType::GroupMemberAdded
                | EventType::GroupMemberRemoved
        )
    }
}

/// What a successful provisioning-log row says about its change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Change {
    /// The change feed's sequence number.
    pub seq: i64,
    /// When the change was made (RFC 3339, as stored).
    pub time: String,
    /// `create`, `replace`, `patch` or `delete`.
    pub op: String,
    pub rt: Option<ResourceType>,
    pub resource_id: String,
    /// Canonical names of the attributes the request changed.
    pub attributes: Vec<String>,
    pub deactivated: bool,
    pub reactivated: bool,
    pub members_added: Vec<String>,
    pub members_removed: Vec<String>,
    /// `soft` (a delete that kept a tombstone), `restore` (a create that brought one back),
    /// `purge` (the tombstone's end); empty otherwise (migration 0025).
    pub lifecycle: String,
}

/// The event types a change amounts to: one, except a group write that changed members and
/// maybe other attributes too (each is its own event, with its own id).
pub fn types_of(c: &Change) -> Vec<EventType> {
    use EventType as E;
    match (c.rt, c.lifecycle.as_str()) {
        (Some(ResourceType::User), "restore") => return vec![E::UserRestored],
        (Some(ResourceType::User), "purge") => return vec![E::UserPurged],
        (Some(ResourceType::Group), "restore") => return vec![E::GroupRestored],
        (Some(ResourceType::Group), "purge") => return vec![E::GroupPurged],
        _ => {}
    }
    match (c.rt, c.op.as_str()) {
        (Some(ResourceType::User), "create") => vec![E::UserCreated],
        (Some(ResourceType::User), "delete") => vec![E::UserDeleted],
        (Some(ResourceType::User), _) if c.deactivated => vec![E::UserDeactivated],
        (Some(ResourceType::User), _) if c.reactivated => vec![E::UserReactivated],
        (Some(ResourceType::User), _) => vec![E::UserUpdated],
        (Some(ResourceType::Group), "create") => vec![E::GroupCreated],
        (Some(ResourceType::Group), "delete") => vec![E::GroupDeleted],
        (Some(ResourceType::Group), _) => {
            let mut out = Vec::new();
            let members_only = c.attributes.iter().all(|a| a == "members");
            let member_events = !c.members_added.is_empty() || !c.members_removed.is_empty();
            if !members_only || !member_events {
                out.push(E::GroupUpdated);
            }
            if !c.members_added.is_empty() {
                out.push(E::GroupMemberAdded);
            }
            if !c.members_removed.is_empty() {
                out.push(E::GroupMemberRemoved);
            }
            out
        }
        (None, _) => Vec::new(),
    }
}

/// The message id (`webhook-id`, and the body's `id`): the change feed's sequence number and
/// the type, so a redelivery has the same id and receivers can deduplicate by it.
pub fn event_id(seq: i64, t: EventType) -> String {
    event_id_named(seq, t.name())
}

/// [`event_id`] from a type's name as stored.
pub fn event_id_named(seq: i64, type_name: &str) -> String {
    format!("evt_{seq}_{type_name}")
}

/// The JSON body of event `t` of change `c`. `resource` is the resource as GET returns it now
/// (`None` when it is gone or the type carries only ids).
pub fn body(c: &Change, t: EventType, tenant: &str, resource: Option<Value>) -> Value {
    let data = match (t, resource) {
        (EventType::GroupMemberAdded, _) => {
            json!({"id": c.resource_id, "members": c.members_added})
        }
        (EventType::GroupMemberRemoved, _) => {
            json!({"id": c.resource_id, "members": c.members_removed})
        }
        (t, Some(r)) if t.carries_resource() => r,
        // A delete under the soft policy: the app may keep the record for a restore.
        _ if c.lifecycle == "soft" => json!({"id": c.resource_id, "restorable": true}),
        _ => json!({"id": c.resource_id}),
    };
    json!({
        "id": event_id(c.seq, t),
        "type": t.name(),
        "tenant": tenant,
        "occurred_at": c.time,
        "seq": c.seq,
        "data": data,
        "changed": c.attributes,
    })
}

/// An endpoint's `events` filter: `["*"]` or a list of type names.
pub fn parse_filter(v: &Value) -> Result<Vec<String>> {
    let Some(items) = v.as_array() else {
        return Err(ScimError::invalid_value(
            "'events' must be an array: [\"*\"] or event type names",
        ));
    };
    if items.is_empty() {
        return Err(ScimError::invalid_value(
            "'events' must name at least one event type, or \"*\"",
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item.as_str() {
            Some(s) if s == "*" || EventType::from_name(s).is_some() => {
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_string());
                }
            }
            _ => {
                let names: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
                return Err(ScimError::invalid_value(format!(
                    "unknown event type {item}; expected \"*\" or one of: {}",
                    names.join(", ")
                )));
            }
        }
    }
    Ok(out)
}

/// Whether an endpoint with `filter` wants events of type `t`.
pub fn wants(filter: &[String], t: EventType) -> bool {
    filter.iter().any(|f| f == "*" || f == t.name())
}

/// Longest webhook URL accepted.
const MAX_URL_CHARS: usize = 2048;

/// Checks a webhook URL: absolute `https://` with a host, no credentials, no fragment; plain
/// `http://` only to a loopback host and only when `allow_loopback_http` (local development:
/// the e2e receivers). The URL is kept as given.
pub fn validate_url(url: &str, allow_loopback_http: bool) -> Result<()> {
    let bad = |why: &str| Err(ScimError::invalid_value(format!("'url' {why}")));
    if url.len() > MAX_URL_CHARS {
        return bad(&format!("must be at most {MAX_URL_CHARS} characters"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("must not contain spaces or control characters");
    }
    let lower = url.to_ascii_lowercase();
    let (rest, https) = if let Some(r) = lower.strip_prefix("https://") {
        (r, true)
    } else if let Some(r) = lower.strip_prefix("http://") {
        (r, false)
    } else {
        return bad("must be an absolute https:// URL");
    };
    if url.contains('#') {
        return bad("must not have a fragment");
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.contains('@') {
        return bad("must not contain credentials (user:password@)");
    }
    let host = host_of(authority);
    if host.is_empty() {
        return bad("must name a host");
    }
    if !https {
        let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
        if !(allow_loopback_http && loopback) {
            return bad(
                "must use https:// (plain http:// is allowed only to 127.0.0.1 in local development)",
            );
        }
    }
    Ok(())
}

/// The host of an `authority` (`host[:port]`, `[v6][:port]`).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => authority.get(..=end).unwrap_or(""),
            None => "",
        };
    }
    authority.split(':').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(rt: ResourceType, op: &str) -> Change {
        Change {
            seq: 7,
            time: "2026-12-01T00:00:00.000Z".into(),
            op: op.into(),
            rt: Some(rt),
            resource_id: "r1".into(),
            ..Change::default()
        }
    }

    fn names(c: &Change) -> Vec<&'static str> {
        types_of(c).into_iter().map(EventType::name).collect()
    }

    #[test]
    fn user_changes_map_to_one_event_each() {
        use ResourceType::User;
        assert_eq!(names(&change(User, "create")), ["user.created"]);
        assert_eq!(names(&change(User, "delete")), ["user.deleted"]);
        assert_eq!(names(&change(User, "patch")), ["user.updated"]);
        assert_eq!(names(&change(User, "replace")), ["user.updated"]);
        let mut c = change(User, "patch");
        c.deactivated = true;
        assert_eq!(names(&c), ["user.deactivated"]);
        c.deactivated = false;
        c.reactivated = true;
        assert_eq!(names(&c), ["user.reactivated"]);
    }

    #[test]
    fn group_writes_split_member_changes_from_other_changes() {
        use ResourceType::Group;
        assert_eq!(names(&change(Group, "create")), ["group.created"]);
        assert_eq!(names(&change(Group, "delete")), ["group.deleted"]);
        let mut c = change(Group, "patch");
        c.attributes = vec!["members".into()];
        c.members_added = vec!["u1".into()];
        assert_eq!(names(&c), ["group.member_added"]);
        c.members_removed = vec!["u2".into()];
        assert_eq!(names(&c), ["group.member_added", "group.member_removed"]);
        c.attributes = vec!["displayName".into(), "members".into()];
        assert_eq!(
            names(&c),
            [
                "group.updated",
                "group.member_added",
                "group.member_removed"
            ]
        );
        // A members PATCH that changed nothing (already a member) is still an update.
        let mut c = change(Group, "patch");
        c.attributes = vec!["members".into()];
        assert_eq!(names(&c), ["group.updated"]);
    }

    #[test]
    fn bodies_carry_the_resource_or_the_ids() {
        let mut c = change(ResourceType::Group, "patch");
        c.attributes = vec!["members".into()];
        c.members_added = vec!["u1".into(), "u2".into()];
        let b = body(
            &c,
            EventType::GroupMemberAdded,
            "acme",
            Some(json!({"x": 1})),
        );
        assert_eq!(
            b,
            json!({
                "id": "evt_7_group.member_added", "type": "group.member_added",
                "tenant": "acme", "occurred_at": "2026-12-01T00:00:00.000Z", "seq": 7,
                "data": {"id": "r1", "members": ["u1", "u2"]}, "changed": ["members"]
            })
        );
        let c = change(ResourceType::User, "create");
        let r = json!({"id": "r1", "userName": "a"});
        assert_eq!(
            body(&c, EventType::UserCreated, "t", Some(r.clone()))["data"],
            r
        );
        // Gone by delivery time: the id only.
        assert_eq!(
            body(&c, EventType::UserCreated, "t", None)["data"],
            json!({"id": "r1"})
        );
        let d = change(ResourceType::User, "delete");
        assert_eq!(
            body(&d, EventType::UserDeleted, "t", Some(r))["data"],
            json!({"id": "r1"})
        );
    }

    #[test]
    fn filters_take_star_or_known_types() {
        assert_eq!(parse_filter(&json!(["*"])).unwrap(), ["*"]);
        let f = parse_filter(&json!(["user.created", "user.created", "group.deleted"])).unwrap();
        assert_eq!(f, ["user.created", "group.deleted"]);
        assert!(wants(&f, EventType::UserCreated));
        assert!(!wants(&f, EventType::UserUpdated));
        assert!(wants(&["*".to_string()], EventType::GroupMemberRemoved));
        for bad in [json!([]), json!("*"), json!(["user.create"]), json!([1])] {
            let e = parse_filter(&bad).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
        }
    }

    #[test]
    fn urls_must_be_https_except_loopback_in_development() {
        for ok in [
            "https://app.example.com/hooks",
            "https://app.example.com:8443/h?x=1",
            "HTTPS://EXAMPLE.COM",
        ] {
            assert!(validate_url(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example.com/hooks",
            "http://127.0.0.1:9000/h",
            "ftp://example.com",
            "example.com/h",
            "https://",
            "https:///path",
            "https://user:pw@example.com/",
            "https://example.com/#frag",
            "https://exa mple.com/",
            "",
        ] {
            let e = validate_url(bad, false).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
            assert!(e.detail.starts_with("'url'"), "{bad}: {}", e.detail);
        }
        assert!(validate_url("http://127.0.0.1:9000/h", true).is_ok());
        assert!(validate_url("http://localhost:9000/h", true).is_ok());
        assert!(validate_url("http://[::1]:9000/h", true).is_ok());
        assert!(validate_url("http://127.0.0.1.evil.com/h", true).is_err());
        assert!(validate_url("http://example.com/h", true).is_err());
        assert!(validate_url(&format!("https://e.com/{}", "a".repeat(2100)), false).is_err());
    }
}
