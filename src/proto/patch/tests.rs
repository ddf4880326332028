use super::*;
use crate::proto::error::Result;
use crate::proto::resource;
use crate::proto::schema::ENTERPRISE_USER_SCHEMA as ENT;
use crate::proto::schema::{ResourceType, PATCH_OP_SCHEMA};
use serde_json::json;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

const U: ResourceType = ResourceType::User;
const G: ResourceType = ResourceType::Group;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn body(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
}

fn user() -> Map<String, Value> {
    obj(json!({
        "userName": "bjensen@example.com",
        "active": true,
        "displayName": "Babs",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}]
    }))
}

fn group() -> Map<String, Value> {
    obj(json!({"displayName": "Engineering", "externalId": "e-1"}))
}

/// Re-validates the patched data as a whole resource, exactly as a PUT of it would be.
fn revalidate(rt: ResourceType, data: Map<String, Value>) -> Result<Map<String, Value>> {
    let mut schemas = vec![Value::String(rt.core_schema().id.clone())];
    for ext in rt.extensions() {
        if data.contains_key(&ext.id) {
            schemas.push(Value::String(ext.id.clone()));
        }
    }
    let mut body = data;
    body.insert("schemas".into(), Value::Array(schemas));
    // Attributes no schema defines are stored as a lenient tenant's PUT would keep them.
    let mut tol = crate::proto::tolerance::Tolerances::lenient();
    let v = resource::validate_with(rt, &Value::Object(body), &mut tol)?;
    for t in tol.fired() {
        assert_eq!(
            *t,
            Tolerance::UnknownAttribute,
            "stored data needs no other quirk"
        );
    }
    Ok(v.data)
}

/// Stored attributes by canonical name, extension attributes as `urn:…:attr`.
fn flatten(rt: ResourceType, data: &Map<String, Value>) -> BTreeMap<String, &Value> {
    let mut out = BTreeMap::new();
    for (k, v) in data {
        let urn = match rt.extension(k) {
            Some(ext) => Some(ext.id.as_str()),
            // Undeclared extensions are named attribute by attribute too.
            None if k.starts_with("urn:") => Some(k.as_str()),
            None => None,
        };
        match (urn, v) {
            (Some(urn), Value::Object(m)) => {
                for (sk, sv) in m {
                    out.insert(format!("{urn}:{sk}"), sv);
                }
            }
            _ => {
                out.insert(k.clone(), v);
            }
        }
    }
    out
}

/// Checks an outcome against the whole-resource definitions that `apply` shortcuts:
/// re-validating everything changes nothing, and `changed` names exactly the attributes
/// that differ (in any order; `members` aside).
fn check_outcome(rt: ResourceType, before: &Map<String, Value>, o: &PatchOutcome) {
    let again = revalidate(rt, o.data.clone()).expect("outcome re-validates");
    assert_eq!(again, o.data, "outcome is in stored shape");
    let (old, new) = (flatten(rt, before), flatten(rt, &o.data));
    let mut differing: Vec<&String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .collect();
    differing.sort();
    differing.dedup();
    let mut reported: Vec<&String> = o.changed.iter().filter(|n| *n != "members").collect();
    reported.sort();
    assert_eq!(reported, differing, "changed names what differs");
}

/// `apply_text` on the stored text of `current` agrees with `apply` on its parsed form:
/// the same text a full write would store (or none when nothing changed), the same
/// changes, member operations and tolerances, the same errors.
fn check_text_path(
    rt: ResourceType,
    current: &Map<String, Value>,
    body: &Value,
    strict: bool,
    full: &Result<PatchOutcome>,
) {
    let stored = serde_json::to_string(current).expect("serialises");
    match (full, apply_text(rt, &stored, body, strict)) {
        (Ok(o), Ok(t)) => {
            let data_changed = o.changed.iter().any(|n| n != "members");
            let expected =
                data_changed.then(|| serde_json::to_string(&o.data).expect("serialises"));
            assert_eq!(t.data, expected, "{body}");
            assert_eq!(t.changed, o.changed, "{body}");
            assert_eq!(t.members, o.members, "{body}");
            assert_eq!(t.tolerances, o.tolerances, "{body}");
            let inactive = o.data.get("active") == Some(&Value::Bool(false));
            if t.deactivating {
                assert!(inactive, "{body}");
            }
            if inactive && o.changed.iter().any(|n| n == "active") {
                assert!(t.deactivating, "{body}");
            }
        }
        (Err(a), Err(b)) => {
            assert_eq!((a.status, a.scim_type), (b.status, b.scim_type), "{body}");
            assert_eq!(a.detail, b.detail, "{body}");
        }
        (a, b) => panic!("{body}: apply gave {a:?}, apply_text gave {b:?}"),
    }
}

fn ok(rt: ResourceType, data: &Map<String, Value>, body: &Value) -> PatchOutcome {
    let result = apply(rt, data, body, false);
    check_text_path(rt, data, body, false, &result);
    match result {
        Ok(o) => {
            // The handler checks the member changes before the read, from the request alone.
            let mut tol = crate::proto::tolerance::Tolerances::lenient();
            let req = PatchRequest::parse(rt, body, &mut tol).expect("parses");
            assert_eq!(req.member_ops(), o.members, "{body}");
            // Whatever PATCH produces, a PUT of it would have been accepted.
            check_outcome(rt, data, &o);
            o
        }
        Err(e) => panic!("{body}: {e}"),
    }
}

fn fails(
    rt: ResourceType,
    data: &Map<String, Value>,
    body: &Value,
    strict: bool,
) -> (u16, &'static str) {
    let result = apply(rt, data, body, strict);
    check_text_path(rt, data, body, strict, &result);
    match result {
        Ok(o) => panic!("{body} succeeded: {:?}", o.data),
        Err(e) => (e.status, e.scim_type.map(|t| t.as_str()).unwrap_or("")),
    }
}

// --- Microsoft Entra ID, shapes from "Known issues and resolutions with SCIM 2.0 protocol
// compliance" and the SCIM endpoint tutorial (learn.microsoft.com).

#[test]
fn entra_disable_user_without_flag() {
    let b = body(json!([{"op": "Replace", "path": "active", "value": "False"}]));
    let o = ok(U, &user(), &b);
    assert_eq!(o.data["active"], false);
    assert_eq!(o.changed, vec!["active"]);
    assert_eq!(
        o.tolerances,
        vec![Tolerance::CapitalizedOp, Tolerance::BooleanString]
    );
    let b = body(json!([{"op": "Replace", "path": "active", "value": "TRUE"}]));
    let mut inactive = user();
    inactive.insert("active".into(), json!(false));
    assert_eq!(ok(U, &inactive, &b).data["active"], true);
}

#[test]
fn entra_disable_user_with_flag() {
    let b = json!({"Operations": [{"op": "replace", "path": "active", "value": false}],
        "schemas": [PATCH_OP_SCHEMA]});
    for strict in [false, true] {
        let o = apply(U, &user(), &b, strict).expect("compliant");
        assert_eq!(o.data["active"], false);
        assert!(o.tolerances.is_empty());
    }
}

#[test]
fn entra_add_single_value_string_attribute() {
    let without = body(json!([{"op": "Add", "path": "nickName", "value": "Babs"}]));
    let with = body(json!([{"op": "add", "path": "nickName", "value": "Babs"}]));
    let o = ok(U, &user(), &without);
    assert_eq!(o.data["nickName"], "Babs");
    assert_eq!(o.tolerances, vec![Tolerance::CapitalizedOp]);
    let o = apply(U, &user(), &with, true).expect("compliant");
    assert_eq!(o.data["nickName"], "Babs");
    assert_eq!(o.changed, vec!["nickName"]);
}

#[test]
fn entra_replace_multiple_attributes_without_flag() {
    let b = body(json!([
        {"op": "Replace", "path": "displayName", "value": "Pvlo"},
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "TestBcwqnm@test.microsoft.com"},
        {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
        {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
        {"op": "Replace", "path": "externalId", "value": "Eqpj"},
        {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "Eqpj"}
    ]));
    let o = ok(U, &user(), &b);
    assert_eq!(o.data["displayName"], "Pvlo");
    assert_eq!(
        o.data["emails"],
        json!([{"value": "TestBcwqnm@test.microsoft.com", "type": "work", "primary": true}])
    );
    assert_eq!(
        o.data["name"],
        json!({"givenName": "Gtfd", "familyName": "Pkqf"})
    );
    assert_eq!(o.data["externalId"], "Eqpj");
    assert_eq!(o.data[ENT], json!({"employeeNumber": "Eqpj"}));
    assert_eq!(
        o.changed,
        vec![
            "displayName",
            "emails",
            "name",
            "externalId",
            &format!("{ENT}:employeeNumber")
        ]
    );
    assert_eq!(o.tolerances, vec![Tolerance::CapitalizedOp]);
}

#[test]
fn entra_replace_multiple_attributes_with_flag() {
    let b = body(json!([
        {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "TestMhvaes@test.microsoft.com"},
        {"op": "replace", "value": {
            "displayName": "Bjfe",
            "name.givenName": "Kkom",
            "name.familyName": "Unua",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq"
        }}
    ]));
    let o = apply(U, &user(), &b, true).expect("compliant");
    assert_eq!(
        o.data["emails"][0]["value"],
        "TestMhvaes@test.microsoft.com"
    );
    assert_eq!(o.data["displayName"], "Bjfe");
    assert_eq!(
        o.data["name"],
        json!({"givenName": "Kkom", "familyName": "Unua"})
    );
    assert_eq!(o.data[ENT]["employeeNumber"], "Aklq");
    assert!(o.tolerances.is_empty());
}

#[test]
fn entra_mixed_request_from_the_field() {
    let b = body(json!([
        {"op": "Replace", "path": "displayName", "value": "Ryan Leenay"},
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "x@y"},
        {"op": "Replace", "value": {
            "name.givenName": "A",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "D",
            "active": "False"
        }}
    ]));
    let mut current = user();
    current.remove("emails");
    let o = ok(U, &current, &b);
    assert_eq!(o.data["displayName"], "Ryan Leenay");
    assert_eq!(o.data["emails"], json!([{"type": "work", "value": "x@y"}]));
    assert_eq!(
        o.data["name"],
        json!({"givenName": "A", "familyName": "Jensen"})
    );
    assert_eq!(o.data[ENT], json!({"department": "D"}));
    assert_eq!(o.data["active"], false);
    assert_eq!(
        o.tolerances,
        vec![Tolerance::CapitalizedOp, Tolerance::BooleanString]
    );
    // Keys of a path-less value apply in key order (serde_json maps are sorted).
    assert_eq!(
        o.changed,
        vec![
            "displayName",
            "emails",
            "active",
            "name",
            &format!("{ENT}:department")
        ]
    );
}

#[test]
fn entra_tutorial_update_user_multi_valued_and_single_valued() {
    let b = body(json!([
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
    ]));
    let o = ok(U, &user(), &b);
    assert_eq!(
        o.data["emails"][0],
        json!({"value": "updatedEmail@microsoft.com", "type": "work", "primary": true})
    );
    assert_eq!(o.data["name"]["familyName"], "updatedFamilyName");
    let b = body(
        json!([{"op": "Replace", "path": "userName", "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}]),
    );
    assert_eq!(
        ok(U, &user(), &b).data["userName"],
        "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    );
}

#[test]
fn work_email_and_address_are_created_when_missing() {
    let mut current = user();
    current.insert(
        "emails".into(),
        json!([{"value": "home@x", "type": "home"}]),
    );
    // add: RFC-wise fine, no tolerance.
    let b = body(json!([
        {"op": "add", "path": "emails[type eq \"work\"].value", "value": "work@x"},
        {"op": "add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"},
        {"op": "add", "path": "addresses[type eq \"work\"].locality", "value": "Springfield"},
        {"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"}
    ]));
    let o = apply(U, &current, &b, true).expect("add creates");
    assert_eq!(
        o.data["emails"],
        json!([{"value": "home@x", "type": "home"}, {"value": "work@x", "type": "work"}])
    );
    assert_eq!(
        o.data["addresses"],
        json!([{"type": "work", "streetAddress": "1 Main St", "locality": "Springfield"}])
    );
    assert_eq!(
        o.data["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555"}])
    );
    assert!(o.tolerances.is_empty());
    // replace: Entra relies on it; a tolerance.
    let b = body(
        json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "work@x"}]),
    );
    let o = ok(U, &current, &b);
    assert_eq!(
        o.data["emails"][1],
        json!({"value": "work@x", "type": "work"})
    );
    assert_eq!(o.tolerances, vec![Tolerance::ReplaceCreatesElement]);
    assert_eq!(fails(U, &current, &b, true), (400, "noTarget"));
}

#[test]
fn entra_manager_as_bare_id() {
    let b = body(json!([{"op": "Add",
        "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        "value": "2819c223-7f76-453a-919d-413861904646"}]));
    let o = ok(U, &user(), &b);
    assert_eq!(
        o.data[ENT]["manager"],
        json!({"value": "2819c223-7f76-453a-919d-413861904646"})
    );
    assert_eq!(
        o.tolerances,
        vec![Tolerance::CapitalizedOp, Tolerance::ManagerString]
    );
    assert_eq!(o.changed, vec![format!("{ENT}:manager")]);
    // The same, path-less, and under the extension object.
    for v in [
        json!({format!("{ENT}:manager"): "m-2"}),
        json!({ENT: {"manager": "m-2"}}),
    ] {
        let b = body(json!([{"op": "replace", "value": v}]));
        assert_eq!(
            ok(U, &user(), &b).data[ENT]["manager"],
            json!({"value": "m-2"})
        );
    }
    // The RFC shape needs no tolerance.
    let b = body(
        json!([{"op": "replace", "path": format!("{ENT}:manager"), "value": {"value": "m-3"}}]),
    );
    let o = apply(U, &user(), &b, true).expect("compliant");
    assert_eq!(o.data[ENT]["manager"], json!({"value": "m-3"}));
    let b =
        body(json!([{"op": "replace", "path": format!("{ENT}:manager.value"), "value": "m-4"}]));
    assert_eq!(
        apply(U, &user(), &b, true).expect("compliant").data[ENT]["manager"],
        json!({"value": "m-4"})
    );
}

fn managed() -> Map<String, Value> {
    let mut u = user();
    u.insert(
        ENT.into(),
        json!({"department": "Eng", "manager": {"value": "m-1"}}),
    );
    u
}

/// A user with attributes no schema defines, as a lenient tenant's POST stores them.
fn unknown_kept() -> Map<String, Value> {
    let mut u = user();
    u.insert("Nickname2".into(), json!("Babs"));
    u.insert("badge".into(), json!({"id": "7", "since": "2020"}));
    u.insert("tags".into(), json!(["a"]));
    u
}

#[test]
fn unknown_core_attributes_are_kept() {
    let tolerated = |o: &PatchOutcome| o.tolerances == [Tolerance::UnknownAttribute];
    // By path: add, replace (any case; the stored spelling stays), remove.
    let b = body(json!([{"op": "add", "path": "nickname3", "value": "B"}]));
    let o = ok(U, &user(), &b);
    assert_eq!(o.data["nickname3"], "B");
    assert_eq!(o.changed, ["nickname3"]);
    assert!(tolerated(&o), "{:?}", o.tolerances);
    let b = body(json!([{"op": "replace", "path": "NICKNAME2", "value": "Bee"}]));
    let o = ok(U, &unknown_kept(), &b);
    assert_eq!(o.data["Nickname2"], "Bee");
    assert!(!o.data.contains_key("NICKNAME2"));
    assert_eq!(o.changed, ["Nickname2"]);
    let b = body(json!([{"op": "remove", "path": "nickname2"}]));
    let o = ok(U, &unknown_kept(), &b);
    assert!(!o.data.contains_key("Nickname2"));
    // Sub-attributes of a complex value; the value goes with its last sub-attribute.
    let b = body(json!([{"op": "replace", "path": "badge.id", "value": "8"}]));
    assert_eq!(
        ok(U, &unknown_kept(), &b).data["badge"],
        json!({"id": "8", "since": "2020"})
    );
    let b = body(json!([
        {"op": "remove", "path": "badge.id"},
        {"op": "remove", "path": "Badge.since"}
    ]));
    assert!(!ok(U, &unknown_kept(), &b).data.contains_key("badge"));
    // `add` to an array appends what is not there yet; `replace` replaces it.
    let b = body(json!([{"op": "add", "path": "tags", "value": ["a", "b"]}]));
    assert_eq!(ok(U, &unknown_kept(), &b).data["tags"], json!(["a", "b"]));
    let b = body(json!([{"op": "replace", "path": "tags", "value": ["c"]}]));
    assert_eq!(ok(U, &unknown_kept(), &b).data["tags"], json!(["c"]));
    // Path-less keys (Entra's and Okta's form), plain, dotted or qualified by the core URN.
    let b = body(json!([{"op": "Replace", "value": {
        "title": "T", "costCentre": "42", "badge.id": "9",
        "urn:ietf:params:scim:schemas:core:2.0:User:shoeSize": 44
    }}]));
    let o = ok(U, &unknown_kept(), &b);
    assert_eq!(
        (
            &o.data["costCentre"],
            &o.data["badge"]["id"],
            &o.data["shoeSize"]
        ),
        (&json!("42"), &json!("9"), &json!(44))
    );
    assert_eq!(
        o.tolerances,
        [Tolerance::CapitalizedOp, Tolerance::UnknownAttribute]
    );
    // Groups keep theirs the same way.
    let b = body(json!([{"op": "add", "path": "owner", "value": {"value": "u1"}}]));
    assert_eq!(ok(G, &group(), &b).data["owner"], json!({"value": "u1"}));
    // Within SCIM's data model and the value count, whatever the operation.
    let many: Vec<Value> = (0..resource::MAX_MULTI_VALUES).map(|i| json!(i)).collect();
    let b = body(json!([{"op": "add", "path": "tags", "value": many}]));
    assert_eq!(fails(U, &unknown_kept(), &b, false), (400, "invalidValue"));
    for (path, value) in [
        ("tags", json!([[1]])),
        ("badge", json!({"a": {"b": 1}})),
        ("badge.id", json!({"x": 1})),
    ] {
        let b = body(json!([{"op": "add", "path": path, "value": value}]));
        assert_eq!(fails(U, &user(), &b, false), (400, "invalidValue"), "{b}");
    }
    let b = body(json!([{"op": "add", "path": "tags.x", "value": "1"}]));
    assert_eq!(fails(U, &unknown_kept(), &b, false), (400, "invalidPath"));
    // A name another resource type's core schema defines is not unknown: same errors as ever.
    let b = body(json!([{"op": "add", "path": "userName", "value": "x"}]));
    assert_eq!(fails(G, &group(), &b, false), (400, "invalidPath"));
    let b = body(json!([{"op": "add", "value": {"members": [{"value": "x"}]}}]));
    assert_eq!(fails(U, &user(), &b, false), (400, "invalidPath"));
}

#[test]
fn entra_manager_removal() {
    let b = body(
        json!([{"op": "Remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}]),
    );
    let o = ok(U, &managed(), &b);
    assert_eq!(o.data[ENT], json!({"department": "Eng"}));
    assert_eq!(o.changed, vec![format!("{ENT}:manager")]);
    // Removing the last extension attribute removes the extension.
    let mut only_manager = user();
    only_manager.insert(ENT.into(), json!({"manager": {"value": "m-1"}}));
    let o = ok(U, &only_manager, &b);
    assert!(!o.data.contains_key(ENT));
    // Removing it again is not an error.
    assert_eq!(ok(U, &o.data, &b).data, o.data);
}

#[test]
fn manager_cleared_by_empty_values() {
    let path = format!("{ENT}:manager");
    let cases = [
        (json!({"op": "Replace", "path": path, "value": ""}), true),
        (
            json!({"op": "replace", "path": path, "value": {"value": ""}}),
            true,
        ),
        (
            json!({"op": "replace", "path": format!("{path}.value"), "value": ""}),
            true,
        ),
        (json!({"op": "replace", "value": {path.clone(): ""}}), true),
        (json!({"op": "Add", "path": path, "value": ""}), true),
        (
            json!({"op": "add", "path": path, "value": {"value": " "}}),
            true,
        ),
        (json!({"op": "replace", "path": path, "value": null}), false),
        (
            json!({"op": "replace", "value": {ENT: {"manager": null}}}),
            false,
        ),
    ];
    for (op, tolerated) in cases {
        let b = body(json!([op]));
        let o = ok(U, &managed(), &b);
        assert_eq!(o.data[ENT], json!({"department": "Eng"}), "{b}");
        assert_eq!(
            o.tolerances.contains(&Tolerance::EmptyManager),
            tolerated,
            "{b}"
        );
        if tolerated {
            assert_eq!(fails(U, &managed(), &b, true).0, 400, "{b}");
        } else {
            apply(U, &managed(), &b, true).expect("null clears in strict mode too");
        }
    }
}

#[test]
fn entra_group_rename() {
    let b = body(
        json!([{"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]),
    );
    let o = ok(G, &group(), &b);
    assert_eq!(
        o.data["displayName"],
        "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    );
    assert!(o.members.is_empty());
    assert_eq!(o.changed, vec!["displayName"]);
}

#[test]
fn entra_group_add_members() {
    let b = body(
        json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}]),
    );
    let o = ok(G, &group(), &b);
    assert_eq!(
        o.members,
        vec![MemberOp::Add(vec!["f648f8d5ea4e4cd38e9c".into()])]
    );
    assert_eq!(o.data, group());
    assert_eq!(o.changed, vec!["members"]);
    let b = body(json!([{"op": "add", "path": "members", "value": [
        {"value": "u1"}, {"value": "u2", "type": "User"}, {"value": "g1", "type": "Group", "display": "Nested"}, {"value": "u1"}
    ]}]));
    let o = apply(G, &group(), &b, true).expect("compliant");
    assert_eq!(
        o.members,
        vec![MemberOp::Add(vec!["u1".into(), "u2".into(), "g1".into()])]
    );
}

#[test]
fn entra_group_remove_member_without_flag() {
    let b = body(json!([{"op": "Remove", "path": "members", "value": [{"value": "u1091"}]}]));
    let o = ok(G, &group(), &b);
    assert_eq!(o.members, vec![MemberOp::Remove(vec!["u1091".into()])]);
    assert_eq!(
        o.tolerances,
        vec![Tolerance::CapitalizedOp, Tolerance::RemoveByValue]
    );
    // Entra's tutorial variant with "$ref": null.
    let b = body(
        json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}]),
    );
    assert_eq!(
        ok(G, &group(), &b).members,
        vec![MemberOp::Remove(vec!["f648f8d5ea4e4cd38e9c".into()])]
    );
}

#[test]
fn entra_group_remove_member_with_flag() {
    let b = body(
        json!([{"op": "remove", "path": "members[value eq \"7f4bc1a3-285e-48ae-8202-5accb43efb0e\"]"}]),
    );
    let o = apply(G, &group(), &b, true).expect("compliant");
    assert_eq!(
        o.members,
        vec![MemberOp::Remove(vec![
            "7f4bc1a3-285e-48ae-8202-5accb43efb0e".into()
        ])]
    );
    assert!(o.tolerances.is_empty());
}

// --- Okta, shapes from Okta's SCIM 2.0 provisioning reference.

#[test]
fn okta_deactivate_user() {
    let b = body(json!([{"op": "replace", "value": {"active": false}}]));
    let o = apply(U, &user(), &b, true).expect("compliant");
    assert_eq!(o.data["active"], false);
    assert_eq!(o.changed, vec!["active"]);
}

#[test]
fn okta_group_rename_sends_the_id() {
    let b = body(
        json!([{"op": "replace", "value": {"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b", "displayName": "Test SCIMv2"}}]),
    );
    let o = ok(G, &group(), &b);
    assert_eq!(o.data["displayName"], "Test SCIMv2");
    assert!(!o.data.contains_key("id"));
    assert_eq!(o.tolerances, vec![Tolerance::ReadOnlyIgnored]);
    assert_eq!(fails(G, &group(), &b, true), (400, "mutability"));
}

#[test]
fn okta_group_membership_changes_keep_request_order() {
    let b = body(json!([
        {"op": "remove", "path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"]"},
        {"op": "add", "path": "members", "value": [
            {"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"},
            {"value": "89bb1940-b905-4575-9e7f-6f887cfb368e", "display": "test.user@okta.local"}
        ]}
    ]));
    let o = apply(G, &group(), &b, true).expect("compliant");
    assert_eq!(
        o.members,
        vec![
            MemberOp::Remove(vec!["89bb1940-b905-4575-9e7f-6f887cfb368e".into()]),
            MemberOp::Add(vec![
                "23a35c27-23d3-4c03-b4c5-6443c09e7173".into(),
                "89bb1940-b905-4575-9e7f-6f887cfb368e".into()
            ]),
        ]
    );
}

#[test]
fn okta_replace_members() {
    let b = body(
        json!([{"op": "replace", "path": "members", "value": [{"value": "u1", "display": "a"}, {"value": "u2"}]}]),
    );
    let o = apply(G, &group(), &b, true).expect("compliant");
    assert_eq!(
        o.members,
        vec![MemberOp::Replace(vec!["u1".into(), "u2".into()])]
    );
    let b = body(json!([{"op": "replace", "path": "members", "value": []}]));
    assert_eq!(ok(G, &group(), &b).members, vec![MemberOp::Replace(vec![])]);
    // Path-less, together with a rename.
    let b = body(
        json!([{"op": "replace", "value": {"displayName": "New", "members": [{"value": "u3"}]}}]),
    );
    let o = ok(G, &group(), &b);
    assert_eq!(o.data["displayName"], "New");
    assert_eq!(o.members, vec![MemberOp::Replace(vec!["u3".into()])]);
    assert_eq!(o.changed, vec!["displayName", "members"]);
    let b = body(json!([{"op": "add", "value": {"members": [{"value": "u4"}]}}]));
    assert_eq!(
        ok(G, &group(), &b).members,
        vec![MemberOp::Add(vec!["u4".into()])]
    );
}

#[test]
fn okta_password_sync_is_accepted_but_never_stored() {
    let b = body(json!([{"op": "replace", "value": {"password": "t1meMa$heen"}}]));
    let o = apply(U, &user(), &b, true).expect("compliant");
    assert_eq!(o.data, user());
    assert!(o.changed.is_empty());
    let b = body(json!([{"op": "replace", "path": "password", "value": 5}]));
    assert_eq!(fails(U, &user(), &b, false), (400, "invalidValue"));
}

// --- Members beyond the client shapes above.

#[test]
fn member_removal_forms() {
    let b = body(
        json!([{"op": "remove", "path": "members[value eq \"a\" or value eq \"b\" or (value eq \"a\")]"}]),
    );
    assert_eq!(
        ok(G, &group(), &b).members,
        vec![MemberOp::Remove(vec!["a".into(), "b".into()])]
    );
    let b = body(json!([{"op": "remove", "path": "members"}]));
    assert_eq!(
        apply(G, &group(), &b, true).expect("compliant").members,
        vec![MemberOp::RemoveAll]
    );
    let b = body(
        json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:core:2.0:Group:Members[VALUE EQ \"x\"]"}]),
    );
    assert_eq!(
        ok(G, &group(), &b).members,
        vec![MemberOp::Remove(vec!["x".into()])]
    );
    let b = body(json!([{"op": "replace", "path": "members", "value": null}]));
    assert_eq!(ok(G, &group(), &b).members, vec![MemberOp::Replace(vec![])]);
}

#[test]
fn member_errors() {
    let cases = [
        (
            json!({"op": "remove", "path": "members[display eq \"x\"]"}),
            "invalidFilter",
        ),
        (
            json!({"op": "remove", "path": "members[value eq \"x\" and type eq \"User\"]"}),
            "invalidFilter",
        ),
        (
            json!({"op": "remove", "path": "members[value co \"x\"]"}),
            "invalidFilter",
        ),
        (
            json!({"op": "remove", "path": "members[value eq 5]"}),
            "invalidFilter",
        ),
        (
            json!({"op": "remove", "path": "members[value eq \"\"]"}),
            "invalidValue",
        ),
        (
            json!({"op": "remove", "path": "members[value eq \"x\""}),
            "invalidPath",
        ),
        (
            json!({"op": "remove", "path": "members[value eq]"}),
            "invalidFilter",
        ),
        (
            json!({"op": "replace", "path": "members[value eq \"x\"].value", "value": "y"}),
            "mutability",
        ),
        (
            json!({"op": "add", "path": "members.display", "value": "y"}),
            "mutability",
        ),
        (
            json!({"op": "replace", "path": "members[value eq \"x\"]", "value": {"value": "y"}}),
            "invalidPath",
        ),
        (
            json!({"op": "add", "path": "members", "value": "u1"}),
            "invalidValue",
        ),
        (
            json!({"op": "add", "path": "members", "value": [{"display": "x"}]}),
            "invalidValue",
        ),
        (
            json!({"op": "add", "path": "members", "value": [{"value": ""}]}),
            "invalidValue",
        ),
        (
            json!({"op": "add", "path": "members", "value": [{"value": 7}]}),
            "invalidValue",
        ),
        (
            json!({"op": "add", "path": "members", "value": [{"value": "u", "type": "Device"}]}),
            "invalidValue",
        ),
        (
            json!({"op": "add", "path": "members", "value": [{"value": "u", "nope": 1}]}),
            "invalidSyntax",
        ),
    ];
    for (op, scim_type) in cases {
        let b = body(json!([op]));
        assert_eq!(fails(G, &group(), &b, false), (400, scim_type), "{b}");
    }
}

#[test]
fn members_is_not_a_user_attribute() {
    let b = body(json!([{"op": "add", "path": "members", "value": [{"value": "x"}]}]));
    assert_eq!(fails(U, &user(), &b, false), (400, "invalidPath"));
}

// --- RFC semantics.

#[test]
fn multi_valued_add_appends_and_dedupes() {
    let b = body(json!([{"op": "add", "path": "emails", "value": [
        {"value": "bjensen@example.com", "type": "work", "primary": true},
        {"value": "babs@home", "type": "home"}
    ]}]));
    let o = apply(U, &user(), &b, true).expect("compliant");
    assert_eq!(o.data["emails"].as_array().map(Vec::len), Some(2));
    assert_eq!(o.data["emails"][1]["value"], "babs@home");
    // Nothing new: nothing changed.
    let o = ok(U, &o.data, &b);
    assert_eq!(o.data["emails"].as_array().map(Vec::len), Some(2));
    assert!(o.changed.is_empty());
}

#[test]
fn a_new_primary_clears_the_old_one() {
    let b = body(
        json!([{"op": "add", "path": "emails", "value": [{"value": "new@x", "type": "other", "primary": true}]}]),
    );
    let o = apply(U, &user(), &b, true).expect("compliant");
    assert_eq!(o.data["emails"][0]["primary"], false);
    assert_eq!(o.data["emails"][1]["primary"], true);
    // Setting primary on an earlier value by filter: the one set wins, not the last one.
    let b =
        body(json!([{"op": "replace", "path": "emails[type eq \"work\"].primary", "value": true}]));
    let o2 = apply(U, &o.data, &b, true).expect("compliant");
    assert_eq!(o2.data["emails"][0]["primary"], true);
    assert_eq!(o2.data["emails"][1]["primary"], false);
    // Two primaries in one replace: the last given wins.
    let b = body(json!([{"op": "replace", "path": "emails", "value": [
        {"value": "a@x", "primary": true}, {"value": "b@x", "primary": true}
    ]}]));
    let o3 = ok(U, &user(), &b);
    assert_eq!(
        o3.data["emails"],
        json!([{"value": "a@x", "primary": false}, {"value": "b@x", "primary": true}])
    );
}

#[test]
fn complex_add_and_replace_merge_sub_attributes() {
    for op in ["add", "replace"] {
        let b = body(
            json!([{"op": op, "path": "name", "value": {"middleName": "J", "givenName": null}}]),
        );
        let o = apply(U, &user(), &b, true).expect("compliant");
        assert_eq!(
            o.data["name"],
            json!({"familyName": "Jensen", "middleName": "J"}),
            "{op}"
        );
    }
    let b = body(json!([{"op": "replace", "path": "name", "value": null}]));
    assert!(!ok(U, &user(), &b).data.contains_key("name"));
    let b = body(json!([{"op": "replace", "path": "name.familyName", "value": null}]));
    assert_eq!(
        ok(U, &user(), &b).data["name"],
        json!({"givenName": "Barbara"})
    );
}

#[test]
fn replace_multi_valued_replaces_the_list() {
    let b = body(json!([{"op": "replace", "path": "emails", "value": [{"value": "only@x"}]}]));
    assert_eq!(
        ok(U, &user(), &b).data["emails"],
        json!([{"value": "only@x"}])
    );
    let b = body(json!([{"op": "replace", "path": "emails", "value": []}]));
    assert!(!ok(U, &user(), &b).data.contains_key("emails"));
}

#[test]
fn filtered_replace_and_add_without_sub_attribute() {
    let mut current = user();
    current.insert(
        "emails".into(),
        json!([{"value": "w@x", "type": "work"}, {"value": "h@x", "type": "home", "display": "H"}]),
    );
    let b = body(
        json!([{"op": "replace", "path": "emails[type eq \"home\"]", "value": {"value": "h2@x", "type": "home"}}]),
    );
    assert_eq!(
        ok(U, &current, &b).data["emails"][1],
        json!({"value": "h2@x", "type": "home"})
    );
    let b = body(
        json!([{"op": "add", "path": "emails[type eq \"home\"]", "value": {"primary": true}}]),
    );
    assert_eq!(
        ok(U, &current, &b).data["emails"][1],
        json!({"value": "h@x", "type": "home", "display": "H", "primary": true})
    );
    let b = body(
        json!([{"op": "add", "path": "emails[type eq \"other\"]", "value": {"value": "o@x"}}]),
    );
    assert_eq!(
        ok(U, &current, &b).data["emails"][2],
        json!({"value": "o@x", "type": "other"})
    );
    let b = body(
        json!([{"op": "replace", "path": "emails[type eq \"other\"]", "value": {"value": "o@x"}}]),
    );
    assert_eq!(fails(U, &current, &b, false), (400, "noTarget"));
}

#[test]
fn remove_forms_are_idempotent() {
    let mut current = user();
    current.insert(
        "emails".into(),
        json!([{"value": "w@x", "type": "work", "display": "W"}, {"value": "h@x", "type": "home"}]),
    );
    let cases = [
        (
            "emails[type eq \"home\"]",
            json!([{"value": "w@x", "type": "work", "display": "W"}]),
        ),
        (
            "emails[type eq \"work\"].display",
            json!([{"value": "w@x", "type": "work"}, {"value": "h@x", "type": "home"}]),
        ),
        (
            "emails[value eq \"W@X\"]",
            json!([{"value": "h@x", "type": "home"}]),
        ),
        (
            "emails.display",
            json!([{"value": "w@x", "type": "work"}, {"value": "h@x", "type": "home"}]),
        ),
        ("emails[type eq \"nope\"]", current["emails"].clone()),
    ];
    for (path, expected) in cases {
        let b = body(json!([{"op": "remove", "path": path}]));
        let o = apply(U, &current, &b, true).expect(path);
        assert_eq!(o.data["emails"], expected, "{path}");
        let again = apply(U, &o.data, &b, true).expect(path);
        assert_eq!(again.data, o.data, "{path} twice");
    }
    let with_ext = {
        let mut m = managed();
        m.insert("emails".into(), current["emails"].clone());
        m
    };
    let dept = format!("{ENT}:department");
    let cases = [
        ("emails", None),
        ("nickName", Some("nickName")),
        ("name.middleName", Some("name")),
        ("name.givenName", Some("name")),
        ("addresses[type eq \"work\"]", Some("addresses")),
        ("addresses[type eq \"work\"].region", Some("addresses")),
        (dept.as_str(), None),
        (ENT, None),
    ];
    for (path, unchanged) in cases {
        let b = body(json!([{"op": "remove", "path": path}]));
        let o = apply(U, &with_ext, &b, true).expect(path);
        if let Some(key) = unchanged {
            if path != "name.givenName" {
                assert_eq!(o.data.get(key), with_ext.get(key), "{path}");
            }
        }
        assert_eq!(
            apply(U, &o.data, &b, true).expect(path).data,
            o.data,
            "{path} twice"
        );
    }
    let b = body(json!([{"op": "remove", "path": "name.givenName"}]));
    assert_eq!(
        ok(U, &with_ext, &b).data["name"],
        json!({"familyName": "Jensen"})
    );
    let b = body(json!([{"op": "remove", "path": dept}]));
    assert_eq!(
        ok(U, &with_ext, &b).data[ENT],
        json!({"manager": {"value": "m-1"}})
    );
    let b = body(json!([{"op": "remove", "path": "emails"}]));
    assert!(!ok(U, &with_ext, &b).data.contains_key("emails"));
    // Removing every email's only sub-attribute removes the emails.
    let b = body(json!([{"op": "remove", "path": "emails[type eq \"x\" or type pr]"}]));
    assert!(!ok(U, &current, &b).data.contains_key("emails"));
}

#[test]
fn names_are_case_insensitive_and_canonicalised() {
    let b = body(json!([
        {"op": "replace", "path": "UserName", "value": "x@y"},
        {"op": "replace", "path": "EMAILS[TYPE EQ \"WORK\"].VALUE", "value": "w@y"},
        {"op": "add", "path": "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:Department", "value": "D"},
        {"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:User:Name.GivenName", "value": "G"},
        {"op": "replace", "value": {"DisplayName": "Dee", "NAME.familyname": "F"}},
        {"op": "add", "path": "Emails", "value": [{"Value": "n@y", "Type": "other"}]}
    ]));
    let o = apply(U, &user(), &b, true).expect("compliant");
    assert_eq!(o.data["userName"], "x@y");
    assert_eq!(o.data["emails"][0]["value"], "w@y");
    assert_eq!(
        o.data["emails"][1],
        json!({"value": "n@y", "type": "other"})
    );
    assert_eq!(o.data[ENT]["department"], "D");
    assert_eq!(o.data["name"], json!({"givenName": "G", "familyName": "F"}));
    assert_eq!(o.data["displayName"], "Dee");
    let keys: Vec<&String> = o.data.keys().collect();
    assert_eq!(
        keys,
        ["active", "displayName", "emails", "name", ENT, "userName"]
    );
}

#[test]
fn body_keys_in_any_case_and_order() {
    let b = json!({"operations": [{"OP": "add", "Path": "title", "VALUE": "CTO"}], "SCHEMAS": [PATCH_OP_SCHEMA.to_uppercase()]});
    assert_eq!(
        apply(U, &user(), &b, true).expect("compliant").data["title"],
        "CTO"
    );
}

#[test]
fn extension_urn_as_path_or_key() {
    let b = body(
        json!([{"op": "add", "path": ENT, "value": {"department": "Ops", "costCenter": "42"}}]),
    );
    let o = apply(U, &managed(), &b, true).expect("compliant");
    assert_eq!(
        o.data[ENT],
        json!({"department": "Ops", "costCenter": "42", "manager": {"value": "m-1"}})
    );
    let b = body(
        json!([{"op": "replace", "value": {ENT: {"division": "R&D", "manager": {"value": "m-9"}}}}]),
    );
    let o = apply(U, &managed(), &b, true).expect("compliant");
    assert_eq!(
        o.data[ENT],
        json!({"department": "Eng", "division": "R&D", "manager": {"value": "m-9"}})
    );
    let b = body(json!([{"op": "remove", "path": ENT}]));
    let o = apply(U, &managed(), &b, true).expect("compliant");
    assert!(!o.data.contains_key(ENT));
    assert_eq!(
        o.changed,
        vec![format!("{ENT}:department"), format!("{ENT}:manager")]
    );
}

#[test]
fn atomic_on_failure() {
    let b = body(json!([
        {"op": "replace", "path": "displayName", "value": "changed"},
        {"op": "replace", "path": "active", "value": 5}
    ]));
    let e = apply(U, &user(), &b, false).unwrap_err();
    assert_eq!(
        (e.status, e.scim_type),
        (400, Some(crate::proto::error::ScimType::InvalidValue))
    );
    assert!(e.detail.starts_with("Operations[1]: "), "{}", e.detail);
}

#[test]
fn error_paths() {
    let u = user();
    let op = |o: Value| body(json!([o]));
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!([]), 400, "invalidSyntax"),
        (
            json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]}),
            400,
            "invalidSyntax",
        ),
        (
            json!({"schemas": PATCH_OP_SCHEMA, "Operations": [{"op": "add", "path": "title", "value": "x"}]}),
            400,
            "invalidSyntax",
        ),
        (
            json!({"schemas": ["urn:x"], "Operations": [{"op": "add", "path": "title", "value": "x"}]}),
            400,
            "invalidSyntax",
        ),
        (json!({"schemas": [PATCH_OP_SCHEMA]}), 400, "invalidSyntax"),
        (body(json!([])), 400, "invalidSyntax"),
        (body(json!({"op": "add"})), 400, "invalidSyntax"),
        (
            body(Value::Array(vec![
                json!({"op": "add", "path": "title", "value": "x"});
                MAX_OPERATIONS + 1
            ])),
            400,
            "invalidSyntax",
        ),
        (
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [], "operations": [{"op": "add", "path": "title", "value": "x"}]}),
            400,
            "invalidSyntax",
        ),
        (op(json!("add")), 400, "invalidSyntax"),
        (
            op(json!({"path": "title", "value": "x"})),
            400,
            "invalidSyntax",
        ),
        (
            op(json!({"op": "move", "path": "title", "value": "x"})),
            400,
            "invalidSyntax",
        ),
        (
            op(json!({"op": 1, "path": "title", "value": "x"})),
            400,
            "invalidSyntax",
        ),
        (
            op(json!({"op": "add", "OP": "add", "path": "title", "value": "x"})),
            400,
            "invalidSyntax",
        ),
        (
            op(json!({"op": "add", "path": "title"})),
            400,
            "invalidSyntax",
        ),
        (
            op(json!({"op": "replace", "path": "title"})),
            400,
            "invalidSyntax",
        ),
        (
            op(json!({"op": "add", "path": 7, "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": "", "value": "x"})),
            400,
            "invalidPath",
        ),
        // An attribute no schema defines is kept (see `unknown_core_attributes_are_kept`),
        // within SCIM's data model and by paths it can have.
        (
            op(json!({"op": "add", "path": "nope[value eq \"x\"]", "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": "nope.a.b", "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": "nope", "value": {"a": {"b": 1}}})),
            400,
            "invalidValue",
        ),
        (
            op(json!({"op": "add", "path": "name.nope", "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": "name.", "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": ".name", "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": "title.x", "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": "name.givenName.x", "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": "emails[type eq \"work\"", "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": "emails[type eq \"work\"]value", "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": "emails[]", "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": "emails[type eq \"a\"][x]", "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": "emails[type[x] eq \"a\"]", "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": "title[value eq \"x\"]", "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": "urn:x:y:ti tle", "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(
                json!({"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:User", "value": {}}),
            ),
            400,
            "invalidPath",
        ),
        (
            op(
                json!({"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:Group:displayName", "value": "x"}),
            ),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": format!("{ENT}:nope"), "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": format!("{ENT}.department"), "value": "x"})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "value": {"no pe": 1}})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": ENT, "value": {"nope": 1}})),
            400,
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": "emails[type eq]", "value": "x"})),
            400,
            "invalidFilter",
        ),
        (
            op(json!({"op": "add", "path": "emails[nope eq \"x\"].value", "value": "x"})),
            400,
            "invalidFilter",
        ),
        (
            op(json!({"op": "replace", "path": "id", "value": "x"})),
            400,
            "mutability",
        ),
        (
            op(json!({"op": "remove", "path": "meta"})),
            400,
            "mutability",
        ),
        (
            op(
                json!({"op": "replace", "path": "meta.lastModified", "value": "2020-01-01T00:00:00Z"}),
            ),
            400,
            "mutability",
        ),
        (
            op(json!({"op": "add", "path": "groups", "value": [{"value": "g"}]})),
            400,
            "mutability",
        ),
        (
            op(json!({"op": "remove", "path": "groups[value eq \"g\"]"})),
            400,
            "mutability",
        ),
        (
            op(
                json!({"op": "replace", "path": format!("{ENT}:manager.displayName"), "value": "Boss"}),
            ),
            400,
            "mutability",
        ),
        (
            op(json!({"op": "replace", "path": ENT, "value": {"manager.displayName": "Boss"}})),
            400,
            "mutability",
        ),
        (op(json!({"op": "remove"})), 400, "noTarget"),
        (
            op(json!({"op": "remove", "value": {"title": "x"}})),
            400,
            "noTarget",
        ),
        (
            op(
                json!({"op": "replace", "path": "emails[value co \"nobody\"].type", "value": "work"}),
            ),
            400,
            "noTarget",
        ),
        (
            op(
                json!({"op": "replace", "path": "emails[type eq \"a\" or type eq \"b\"].value", "value": "v"}),
            ),
            400,
            "noTarget",
        ),
        (
            op(json!({"op": "add", "path": "emails[value sw \"z\"].type", "value": "work"})),
            400,
            "noTarget",
        ),
        (
            op(json!({"op": "replace", "path": "active", "value": 5})),
            400,
            "invalidValue",
        ),
        (
            op(json!({"op": "replace", "path": "active", "value": "yes"})),
            400,
            "invalidValue",
        ),
        (
            op(json!({"op": "replace", "value": {"active": [true]}})),
            400,
            "invalidValue",
        ),
        (
            op(json!({"op": "replace", "path": "userName", "value": ""})),
            400,
            "invalidValue",
        ),
        (
            op(json!({"op": "replace", "path": "userName", "value": null})),
            400,
            "invalidValue",
        ),
        (
            op(json!({"op": "remove", "path": "userName"})),
            400,
            "invalidValue",
        ),
        (
            op(json!({"op": "add", "path": "name", "value": "Barbara"})),
            400,
            "invalidValue",
        ),
        (
            op(json!({"op": "add", "path": "name", "value": {"first": "B"}})),
            400,
            "invalidSyntax",
        ),
        (
            op(json!({"op": "add", "path": "emails", "value": [{"value": 5}]})),
            400,
            "invalidValue",
        ),
        (
            op(json!({"op": "add", "path": "emails", "value": ["a@b"]})),
            400,
            "invalidValue",
        ),
        (
            op(json!({"op": "add", "path": "emails[type eq \"work\"].value", "value": {"x": 1}})),
            400,
            "invalidValue",
        ),
        (
            op(json!({"op": "add", "path": "emails[primary eq \"yes\"].value", "value": "a@b"})),
            400,
            "invalidFilter",
        ),
        (
            op(
                json!({"op": "add", "path": "x509Certificates", "value": [{"value": "not base64!"}]}),
            ),
            400,
            "invalidValue",
        ),
        (
            op(json!({"op": "add", "path": "displayName", "value": "a\u{0}b"})),
            400,
            "invalidValue",
        ),
        (
            op(json!({"op": "add", "value": "title"})),
            400,
            "invalidValue",
        ),
        (op(json!({"op": "add", "value": null})), 400, "invalidValue"),
        (
            op(json!({"op": "add", "path": ENT, "value": "x"})),
            400,
            "invalidValue",
        ),
        (
            op(
                json!({"op": "add", "path": "emails", "value": vec![json!({"value": "a@b"}); resource::MAX_MULTI_VALUES + 1]}),
            ),
            400,
            "invalidValue",
        ),
    ];
    for (b, status, scim_type) in cases {
        assert_eq!(fails(U, &u, &b, false), (status, scim_type), "{b}");
    }
    // A strict tenant refuses an attribute no schema defines, by path or path-less key.
    for b in [
        op(json!({"op": "add", "path": "nope", "value": "x"})),
        op(json!({"op": "add", "value": {"nope": 1}})),
    ] {
        assert_eq!(fails(U, &u, &b, true), (400, "invalidPath"), "{b}");
    }
    let b = body(json!([{"op": "remove", "path": "displayName"}]));
    assert_eq!(fails(G, &group(), &b, false), (400, "invalidValue"));
}

#[test]
fn strict_mode_refuses_every_tolerance() {
    let path = format!("{ENT}:manager");
    type Case = (
        ResourceType,
        Map<String, Value>,
        Value,
        Tolerance,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            U,
            user(),
            json!({"op": "Replace", "path": "title", "value": "x"}),
            Tolerance::CapitalizedOp,
            "invalidSyntax",
        ),
        (
            U,
            user(),
            json!({"op": "replace", "path": "active", "value": "false"}),
            Tolerance::BooleanString,
            "invalidValue",
        ),
        (
            U,
            user(),
            json!({"op": "replace", "path": "emails[type eq \"work\"].primary", "value": "True"}),
            Tolerance::BooleanString,
            "invalidValue",
        ),
        (
            U,
            user(),
            json!({"op": "add", "path": path, "value": "m-1"}),
            Tolerance::ManagerString,
            "invalidValue",
        ),
        (
            U,
            managed(),
            json!({"op": "replace", "path": path, "value": ""}),
            Tolerance::EmptyManager,
            "invalidValue",
        ),
        (
            U,
            managed(),
            json!({"op": "replace", "path": path, "value": {"value": ""}}),
            Tolerance::EmptyManager,
            "invalidValue",
        ),
        (
            U,
            managed(),
            json!({"op": "replace", "path": format!("{path}.value"), "value": ""}),
            Tolerance::EmptyManager,
            "invalidValue",
        ),
        (
            U,
            user(),
            json!({"op": "add", "path": "emails", "value": {"value": "x@y"}}),
            Tolerance::SingleValueAsArray,
            "invalidValue",
        ),
        (
            G,
            group(),
            json!({"op": "add", "path": "members", "value": {"value": "u1"}}),
            Tolerance::SingleValueAsArray,
            "invalidValue",
        ),
        (
            U,
            user(),
            json!({"op": "replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "1"}),
            Tolerance::ReplaceCreatesElement,
            "noTarget",
        ),
        (
            G,
            group(),
            json!({"op": "remove", "path": "members", "value": [{"value": "u1"}]}),
            Tolerance::RemoveByValue,
            "invalidSyntax",
        ),
        (
            U,
            user(),
            json!({"op": "remove", "path": "emails", "value": [{"value": "BJENSEN@example.com"}]}),
            Tolerance::RemoveByValue,
            "invalidSyntax",
        ),
        (
            U,
            managed(),
            json!({"op": "remove", "path": path, "value": [{"value": "m-1"}]}),
            Tolerance::RemoveValueIgnored,
            "invalidSyntax",
        ),
        (
            G,
            group(),
            json!({"op": "remove", "path": "members[value eq \"u1\"]", "value": [{"value": "u1"}]}),
            Tolerance::RemoveValueIgnored,
            "invalidSyntax",
        ),
        (
            G,
            group(),
            json!({"op": "replace", "value": {"id": "g1", "displayName": "x"}}),
            Tolerance::ReadOnlyIgnored,
            "mutability",
        ),
        (
            U,
            user(),
            json!({"op": "add", "path": "nickname2", "value": "x"}),
            Tolerance::UnknownAttribute,
            "invalidPath",
        ),
        (
            U,
            unknown_kept(),
            json!({"op": "replace", "path": "badge.id", "value": "8"}),
            Tolerance::UnknownAttribute,
            "invalidPath",
        ),
        (
            G,
            group(),
            json!({"op": "replace", "value": {"costCentre": "42"}}),
            Tolerance::UnknownAttribute,
            "invalidPath",
        ),
        (
            U,
            user(),
            json!({"op": "replace", "value": {"schemas": ["x"], "meta": {}, "groups": [], "title": "t"}}),
            Tolerance::ReadOnlyIgnored,
            "mutability",
        ),
    ];
    let mut seen = Vec::new();
    for (rt, data, op, tolerance, scim_type) in cases {
        let b = body(json!([op]));
        let o = ok(rt, &data, &b);
        assert!(o.tolerances.contains(&tolerance), "{b}: {:?}", o.tolerances);
        assert_eq!(fails(rt, &data, &b, true), (400, scim_type), "{b}");
        seen.push(tolerance);
    }
    // Every quirk a PATCH can show: a schema URI without attributes belongs to POST and PUT.
    for t in Tolerance::ALL
        .into_iter()
        .filter(|t| *t != Tolerance::SchemaWithoutAttributes)
    {
        assert!(seen.contains(&t), "{} untested", t.as_str());
    }
}

#[test]
fn tolerated_values_land_as_intended() {
    let b = body(
        json!([{"op": "remove", "path": "emails", "value": [{"value": "BJENSEN@example.com"}]}]),
    );
    assert!(!ok(U, &user(), &b).data.contains_key("emails"));
    let b = body(json!([{"op": "add", "path": "emails", "value": {"value": "x@y"}}]));
    assert_eq!(
        ok(U, &user(), &b).data["emails"][1],
        json!({"value": "x@y"})
    );
    let b = body(
        json!([{"op": "replace", "value": {"schemas": ["x"], "meta": {}, "groups": [], "title": "t"}}]),
    );
    let o = ok(U, &user(), &b);
    assert_eq!(o.data["title"], "t");
    assert!(!o.data.contains_key("groups") && !o.data.contains_key("meta"));
    let names: Vec<&str> = Tolerance::ALL.iter().map(|t| t.as_str()).collect();
    assert!(names.iter().all(|n| !n.is_empty()));
}

/// A tiny deterministic generator: no crates, reproducible failures.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    fn chance(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
}

fn garbage_value(r: &mut Rng, depth: u32) -> Value {
    let scalars = [
        json!(null),
        json!(true),
        json!("False"),
        json!(""),
        json!("x@y"),
        json!(5),
        json!(-1.5),
        json!("u1"),
        json!("work"),
        json!("2020-01-01T00:00:00Z"),
        json!("\u{0}"),
        json!("ü[\"]"),
    ];
    if depth >= 3 || r.chance(2) {
        return r.pick(&scalars).clone();
    }
    let keys = [
        "value",
        "type",
        "primary",
        "display",
        "givenName",
        "manager",
        "members",
        "emails",
        "active",
        "userName",
        "displayName",
        ENT,
        "name.givenName",
        "id",
        "$ref",
        "Value",
        "x",
    ];
    if r.chance(2) {
        let n = r.next() % 4;
        Value::Array((0..n).map(|_| garbage_value(r, depth + 1)).collect())
    } else {
        let mut m = Map::new();
        for _ in 0..r.next() % 4 {
            let k = r.pick(&keys).to_string();
            m.insert(k, garbage_value(r, depth + 1));
        }
        Value::Object(m)
    }
}

fn garbage_path(r: &mut Rng) -> String {
    let heads = [
        "emails",
        "EMAILS",
        "name",
        "members",
        "groups",
        "id",
        "meta",
        "active",
        "userName",
        "displayName",
        "addresses",
        "x509Certificates",
        "roles",
        "urn:",
        ENT,
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "",
        " ",
        "[",
        "]",
        ".",
        "\"",
        "ü",
        "password",
        "externalId",
        "phoneNumbers",
        "nope",
        "NOPE",
        "x",
    ];
    let tails = [
        "",
        ".value",
        ".type",
        ".primary",
        ".",
        "..",
        ":manager",
        ":manager.value",
        ":department",
        "[type eq \"work\"]",
        "[type eq \"work\"].value",
        "[value eq \"u1\" or value eq \"u2\"]",
        "[",
        "]",
        "[type eq \"work\"",
        "[\"]\"]",
        "[type eq \"a\\\"]\"]",
        "[primary eq true].display",
        "[not (type pr)]",
        "[value co \"x\" and (type eq \"w\" or type ne \"h\")]",
        "[type eq 5]",
        "[]",
        "[[",
        ".givenName",
        "ü",
    ];
    let mut s = r.pick(&heads).to_string();
    for _ in 0..r.next() % 3 {
        let t = *r.pick(&tails[..]);
        s.push_str(t);
    }
    s
}

#[test]
fn randomized_garbage_never_panics() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let ops = ["add", "replace", "remove", "Add", "REPLACE", "move", ""];
    let mut accepted = 0;
    for i in 0..20_000 {
        let rt = if i % 3 == 0 { G } else { U };
        let mut current = if rt == G { group() } else { managed() };
        if rt == U && r.chance(3) {
            current.insert("emails".into(), json!([{"value": "a@x", "type": "work", "primary": true}, {"value": "b@x", "type": "home"}]));
        }
        if r.chance(3) {
            // Attributes no schema defines, as a lenient tenant stores them.
            current.insert("Nope".into(), json!({"value": "v", "type": "t"}));
            current.insert("x".into(), json!(["a", 1]));
        }
        let mut list = Vec::new();
        for _ in 0..1 + r.next() % 4 {
            let mut op = Map::new();
            if !r.chance(10) {
                op.insert("op".into(), json!(r.pick(&ops)));
            }
            if !r.chance(4) {
                op.insert(
                    "path".into(),
                    if r.chance(20) {
                        json!(3)
                    } else {
                        json!(garbage_path(&mut r))
                    },
                );
            }
            if !r.chance(4) {
                op.insert("value".into(), garbage_value(&mut r, 0));
            }
            list.push(if r.chance(50) {
                json!("op")
            } else {
                Value::Object(op)
            });
        }
        let b = body(Value::Array(list));
        for strict in [false, true] {
            let result = apply(rt, &current, &b, strict);
            check_text_path(rt, &current, &b, strict, &result);
            match result {
                Ok(o) => {
                    accepted += 1;
                    check_outcome(rt, &current, &o);
                    let mut tol = crate::proto::tolerance::Tolerances::new(strict);
                    let req = PatchRequest::parse(rt, &b, &mut tol).expect("parses");
                    assert_eq!(req.member_ops(), o.members, "{b}");
                    if strict {
                        assert!(o.tolerances.is_empty(), "{b}");
                    }
                }
                Err(e) => assert_eq!(e.status, 400, "{b}: {e}"),
            }
        }
    }
    assert!(
        accepted > 100,
        "the generator should produce some valid requests ({accepted})"
    );
}

// --- Parsing before any read (the handler parses before its first D1 round trip).

#[test]
fn parse_refuses_everything_that_needs_no_stored_data() {
    use crate::proto::tolerance::Tolerances;
    let op = |o: Value| body(json!([o]));
    let refused: Vec<(Value, &str)> = vec![
        (json!({"schemas": [PATCH_OP_SCHEMA]}), "invalidSyntax"),
        (op(json!({"op": "move", "path": "title"})), "invalidSyntax"),
        (
            op(json!({"op": "add", "path": "nope[value eq \"x\"]", "value": "x"})),
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": "emails[type eq \"work\"", "value": "x"})),
            "invalidPath",
        ),
        (
            op(json!({"op": "add", "path": "emails[type eq]", "value": "x"})),
            "invalidFilter",
        ),
        (
            op(json!({"op": "add", "path": "emails[nope eq \"x\"].value", "value": "x"})),
            "invalidFilter",
        ),
        (
            op(json!({"op": "replace", "path": "meta.lastModified", "value": "x"})),
            "mutability",
        ),
        (
            op(json!({"op": "replace", "path": "active", "value": 5})),
            "invalidValue",
        ),
        (
            op(json!({"op": "add", "path": "emails", "value": [{"value": 5}]})),
            "invalidValue",
        ),
        (
            op(json!({"op": "add", "path": "emails[type eq \"work\"].value", "value": {"x": 1}})),
            "invalidValue",
        ),
        (
            op(json!({"op": "add", "path": ENT, "value": "x"})),
            "invalidValue",
        ),
        (op(json!({"op": "remove"})), "noTarget"),
    ];
    for (b, scim_type) in refused {
        let e = PatchRequest::parse(U, &b, &mut Tolerances::lenient()).unwrap_err();
        assert_eq!(
            (e.status, e.scim_type.map(|t| t.as_str())),
            (400, Some(scim_type)),
            "{b}"
        );
        // The same refusal as parse-and-apply gives.
        assert_eq!(fails(U, &user(), &b, false), (400, scim_type), "{b}");
    }
    // Whether a filter matches needs the stored values: parsed, refused when applied.
    let b =
        op(json!({"op": "replace", "path": "emails[value co \"nobody\"].type", "value": "work"}));
    let mut tol = Tolerances::lenient();
    let req = PatchRequest::parse(U, &b, &mut tol).expect("well-formed");
    let e = req.apply(&user(), tol).unwrap_err();
    assert_eq!(e.scim_type.map(|t| t.as_str()), Some("noTarget"));
}

#[test]
fn quirks_fire_at_parse_and_strictness_can_come_later() {
    use crate::proto::tolerance::Tolerances;
    let b = body(json!([
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "1"}
    ]));
    let mut parsed = Tolerances::lenient();
    let req = PatchRequest::parse(U, &b, &mut parsed).expect("lenient");
    // Visible in the request: recorded while parsing; the missing phone only when applied.
    assert_eq!(
        parsed.fired(),
        &[Tolerance::CapitalizedOp, Tolerance::BooleanString]
    );
    let lenient = req
        .tolerances_for(&b, &parsed, false)
        .expect("lenient tenant");
    let o = req.apply(&user(), lenient).expect("applies");
    assert_eq!(
        o.tolerances,
        vec![
            Tolerance::CapitalizedOp,
            Tolerance::BooleanString,
            Tolerance::ReplaceCreatesElement
        ]
    );
    assert_eq!(o, apply(U, &user(), &b, false).expect("same as in one go"));
    // A strict tenant: the error a strict parse gives, before anything is applied.
    let e = req.tolerances_for(&b, &parsed, true).unwrap_err();
    let strict = apply(U, &user(), &b, true).unwrap_err();
    assert_eq!(
        (e.status, e.scim_type, e.detail),
        (strict.status, strict.scim_type, strict.detail)
    );
    // A compliant request passes a strict tenant; value-dependent quirks are refused on apply.
    let b = body(
        json!([{"op": "replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "1"}]),
    );
    let mut parsed = Tolerances::lenient();
    let req = PatchRequest::parse(U, &b, &mut parsed).expect("compliant");
    let strict = req
        .tolerances_for(&b, &parsed, true)
        .expect("nothing tolerated yet");
    let e = req.apply(&user(), strict).unwrap_err();
    assert_eq!(e.scim_type.map(|t| t.as_str()), Some("noTarget"));
}

#[test]
fn a_parsed_request_applies_again_the_same_way() {
    use crate::proto::tolerance::Tolerances;
    // The handler retries a conflicted write with the same parsed request.
    let b = body(json!([
        {"op": "add", "path": "emails[type eq \"home\" and primary eq true].value", "value": "h@x"},
        {"op": "replace", "value": {"name.givenName": "B", format!("{ENT}:department"): "D"}},
        {"op": "remove", "path": "emails[type eq \"work\"]"}
    ]));
    let mut tol = Tolerances::lenient();
    let req = PatchRequest::parse(U, &b, &mut tol).expect("parses");
    let stored = serde_json::to_string(&user()).expect("serialises");
    let first = req.apply_text(&stored, tol.clone()).expect("applies");
    let again = req.apply_text(&stored, tol).expect("applies");
    assert_eq!(first, again);
    assert_eq!(
        ok(U, &user(), &b).data["emails"],
        json!([{"value": "h@x", "type": "home", "primary": true}])
    );
}
