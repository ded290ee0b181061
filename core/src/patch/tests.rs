//! Tests of the PATCH engine: the RFC 7644 §3.5.2 examples, the shapes Microsoft Entra ID and
//! Okta send, error cases, atomicity, membership deltas and properties over random input.

use super::*;
use crate::error::ScimType;
use crate::resource::{Meta, Version, now};
use crate::schema::ENTERPRISE_USER;
use serde_json::json;

const U1: &str = "2819c223-7f76-453a-919d-413861904646";
const U2: &str = "902c246b-6245-4190-8e05-00816be7344a";
const U3: &str = "08e1d05d-121c-4561-8b96-473d93df9210";

fn registry() -> Arc<SchemaRegistry> {
    Arc::new(SchemaRegistry::new())
}

fn resource(kind: ResourceKind, attrs: Value) -> Resource {
    let t = now();
    Resource {
        id: "r1".into(),
        kind,
        meta: Meta {
            created: t,
            last_modified: t,
            version: Version(3),
        },
        attrs: attrs.as_object().cloned().unwrap_or_default(),
    }
}

fn user(attrs: Value) -> Resource {
    resource(ResourceKind::User, attrs)
}

fn group(attrs: Value) -> Resource {
    resource(ResourceKind::Group, attrs)
}

fn body(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
}

fn parse(kind: ResourceKind, ops: Value) -> Result<PatchRequest, ScimError> {
    PatchRequest::parse(&body(ops), registry(), kind)
}

fn try_apply(r: &Resource, ops: Value) -> Result<PatchOutcome, ScimError> {
    parse(r.kind, ops)?.apply(r)
}

/// Applies and returns the resulting attributes as one JSON object.
fn applied(r: &Resource, ops: Value) -> Value {
    match try_apply(r, ops.clone()) {
        Ok(o) => Value::Object(o.attrs),
        Err(e) => panic!("{ops} failed: {e}"),
    }
}

/// The `scimType` of the error the operations fail with.
fn failure(r: &Resource, ops: Value) -> Option<ScimType> {
    match try_apply(r, ops.clone()) {
        Ok(o) => panic!("{ops} succeeded: {}", Value::Object(o.attrs)),
        Err(e) => {
            assert_eq!(e.status, 400, "{e}");
            e.scim_type
        }
    }
}

fn babs() -> Resource {
    user(json!({
        "userName": "bjensen",
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs Jensen",
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "addresses": [
            {"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
             "region": "CA", "postalCode": "91608", "country": "USA", "primary": true},
            {"type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood",
             "region": "CA", "postalCode": "91608", "country": "USA"}
        ],
        "x509Certificates": [{"value": "TXlPbGRDZXJ0"}, {"value": "TXlOZXdDZXJ0"}],
        "active": true
    }))
}

fn tour_guides() -> Resource {
    group(json!({
        "displayName": "Tour Guides",
        "members": [
            {"value": U1, "type": "User", "display": "Babs Jensen"},
            {"value": U2, "type": "User", "display": "Mandy Pepperidge"}
        ]
    }))
}

fn member_ids(attrs: &Value) -> Vec<&str> {
    attrs["members"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["value"].as_str()).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// RFC 7644 §3.5.2 examples
// ---------------------------------------------------------------------------------------------

#[test]
fn rfc_add_member_appends_without_storing_ref() {
    let g =
        group(json!({"displayName": "Tour Guides", "members": [{"value": U2, "type": "User"}]}));
    let out = applied(
        &g,
        json!([{"op": "add", "path": "members", "value": [{
            "display": "Babs Jensen",
            "$ref": format!("https://example.com/v2/Users/{U1}"),
            "value": U1
        }]}]),
    );
    assert_eq!(
        out["members"],
        json!([{"value": U2, "type": "User"}, {"display": "Babs Jensen", "value": U1}])
    );
}

#[test]
fn rfc_pathless_add_appends_emails_and_sets_nickname_case_insensitively() {
    let out = applied(
        &babs(),
        json!([{"op": "add", "value": {
            "emails": [{"value": "babs@jensen.org", "type": "home"},
                       {"value": "babs@example.net", "type": "other"}],
            "nickname": "Babs"
        }}]),
    );
    assert_eq!(out["nickName"], "Babs");
    assert!(out.get("nickname").is_none());
    // The home address was already there: no duplicate.
    assert_eq!(
        out["emails"],
        json!([
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"},
            {"value": "babs@example.net", "type": "other"}
        ])
    );
}

#[test]
fn rfc_replace_members_replaces_the_whole_list() {
    let out = applied(
        &tour_guides(),
        json!([{"op": "replace", "path": "members", "value": [
            {"display": "Babs Jensen", "$ref": format!("https://example.com/v2/Users/{U1}"), "value": U1},
            {"display": "James Smith", "$ref": format!("https://example.com/v2/Users/{U3}"), "value": U3}
        ]}]),
    );
    assert_eq!(
        out["members"],
        json!([{"display": "Babs Jensen", "value": U1}, {"display": "James Smith", "value": U3}])
    );
}

#[test]
fn rfc_replace_by_filter_replaces_the_matching_value() {
    let out = applied(
        &babs(),
        json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": {
            "type": "work", "streetAddress": "911 Universal City Plaza", "locality": "Hollywood",
            "region": "CA", "postalCode": "91608", "country": "US",
            "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US", "primary": true
        }}]),
    );
    assert_eq!(
        out["addresses"][0]["streetAddress"],
        "911 Universal City Plaza"
    );
    assert_eq!(out["addresses"][0]["country"], "US");
    assert_eq!(
        out["addresses"][0]["formatted"],
        "911 Universal City Plaza\nHollywood, CA 91608 US"
    );
    assert_eq!(out["addresses"][1], babs().attrs["addresses"][1]);
}

#[test]
fn rfc_replace_sub_attribute_by_filter_changes_only_that_sub_attribute() {
    let out = applied(
        &babs(),
        json!([{"op": "replace", "path": "addresses[type eq \"work\"].streetAddress",
                "value": "1010 Broadway Ave"}]),
    );
    let mut expected = babs().attrs["addresses"].clone();
    expected[0]["streetAddress"] = json!("1010 Broadway Ave");
    assert_eq!(out["addresses"], expected);
}

#[test]
fn rfc_pathless_replace_replaces_each_attribute() {
    let out = applied(
        &babs(),
        json!([{"op": "replace", "value": {
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                       {"value": "babs@jensen.org", "type": "home"}],
            "nickname": "Babs"
        }}]),
    );
    assert_eq!(out["nickName"], "Babs");
    assert_eq!(out["emails"], babs().attrs["emails"]);
    assert_eq!(out["userName"], "bjensen");
}

#[test]
fn rfc_remove_single_member_by_filter() {
    let out = applied(
        &tour_guides(),
        json!([{"op": "remove", "path": format!("members[value eq \"{U1}\"]")}]),
    );
    assert_eq!(member_ids(&out), [U2]);
}

#[test]
fn rfc_remove_all_members_unassigns_the_attribute() {
    let out = applied(&tour_guides(), json!([{"op": "remove", "path": "members"}]));
    assert!(out.get("members").is_none());
    assert_eq!(out["displayName"], "Tour Guides");
}

#[test]
fn rfc_remove_all_then_add_replaces_members() {
    let out = applied(
        &tour_guides(),
        json!([
            {"op": "remove", "path": "members"},
            {"op": "add", "path": "members", "value": [
                {"display": "Babs Jensen", "value": U1},
                {"display": "James Smith", "value": U3}
            ]}
        ]),
    );
    assert_eq!(member_ids(&out), [U1, U3]);
}

#[test]
fn rfc_remove_by_complex_filter() {
    let out = applied(
        &babs(),
        json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}]),
    );
    assert_eq!(
        out["emails"],
        json!([{"value": "babs@jensen.org", "type": "home"}])
    );
}

#[test]
fn rfc_remove_certificate_by_value() {
    let out = applied(
        &babs(),
        json!([{"op": "remove", "path": "x509Certificates[value eq \"TXlPbGRDZXJ0\"]"}]),
    );
    assert_eq!(out["x509Certificates"], json!([{"value": "TXlOZXdDZXJ0"}]));
}

#[test]
fn rfc_path_forms_resolve_to_canonical_paths() {
    let req = parse(
        ResourceKind::User,
        json!([
            {"op": "replace", "path": "NAME.FAMILYNAME", "value": "x"},
            {"op": "remove", "path": "Addresses[TYPE eq \"work\"]"},
            {"op": "remove", "path": "emails[type eq \"work\"].Display"},
            {"op": "replace", "path":
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:Manager.Value",
             "value": "x"}
        ]),
    )
    .unwrap();
    let paths: Vec<String> = req
        .ops
        .iter()
        .map(|o| o.path.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "name.familyName",
            "addresses[type eq \"work\"]",
            "emails[type eq \"work\"].display",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        ]
    );
    let req = parse(
        ResourceKind::Group,
        json!([{"op": "remove", "path": format!("members[value eq \"{U1}\"].display")}]),
    )
    .unwrap();
    let path = req.ops[0].path.as_ref().unwrap();
    assert_eq!(path.sub.as_deref(), Some("display"));
    assert!(path.filter.is_some());
}

#[test]
fn rfc_member_display_name_example_is_not_a_member_sub_attribute() {
    // RFC 7644 §3.5.2 writes `members[...].displayName`, which RFC 7643 §4.2 does not define.
    let g = tour_guides();
    let err = failure(
        &g,
        json!([{"op": "remove", "path": format!("members[value eq \"{U1}\"].displayName")}]),
    );
    assert_eq!(err, Some(ScimType::InvalidPath));
}

// ---------------------------------------------------------------------------------------------
// Add, replace and remove semantics
// ---------------------------------------------------------------------------------------------

#[test]
fn add_to_single_valued_attribute_replaces_it() {
    let out = applied(
        &babs(),
        json!([{"op": "add", "path": "displayName", "value": "Barbara J."}]),
    );
    assert_eq!(out["displayName"], "Barbara J.");
}

#[test]
fn add_and_replace_of_complex_attribute_merge_sub_attributes() {
    for op in ["add", "replace"] {
        let out = applied(
            &babs(),
            json!([{"op": op, "path": "name", "value": {"givenName": "Babs", "middleName": "Q"}}]),
        );
        assert_eq!(
            out["name"],
            json!({"familyName": "Jensen", "givenName": "Babs", "middleName": "Q"}),
            "{op}"
        );
    }
}

#[test]
fn merge_values_may_name_only_some_sub_attributes() {
    let mut r = babs();
    r.attrs
        .insert(ENTERPRISE_USER.into(), json!({"manager": {"value": U2}}));
    let out = applied(
        &r,
        json!([{"op": "replace", "path": format!("{ENTERPRISE_USER}:manager"),
                "value": {"$REF": format!("../Users/{U2}"), "displayName": "ignored, readOnly"}}]),
    );
    assert_eq!(
        out[ENTERPRISE_USER]["manager"],
        json!({"value": U2, "$ref": format!("../Users/{U2}")})
    );
    // Without a stored value, the merged manager lacks its required `value`.
    assert_eq!(
        failure(
            &babs(),
            json!([{"op": "add", "path": format!("{ENTERPRISE_USER}:manager"),
                    "value": {"$ref": format!("../Users/{U2}")}}])
        ),
        Some(ScimType::InvalidValue)
    );
    let out = applied(
        &tour_guides(),
        json!([{"op": "add", "path": format!("members[value eq \"{U1}\"]"),
                "value": {"display": "Barbara", "TYPE": "user"}}]),
    );
    assert_eq!(
        out["members"][0],
        json!({"value": U1, "type": "User", "display": "Barbara"})
    );
}

#[test]
fn entra_bare_string_manager_becomes_a_manager_value() {
    let out = applied(
        &babs(),
        json!([{"op": "Add", "value": {
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": U2}}]),
    );
    assert_eq!(out[ENTERPRISE_USER]["manager"], json!({"value": U2}));
}

#[test]
fn replace_of_missing_attribute_adds_it() {
    let out = applied(
        &babs(),
        json!([
            {"op": "replace", "path": "title", "value": "Tour Guide"},
            {"op": "replace", "path": "phoneNumbers", "value": [{"value": "555-1234"}]},
            {"op": "replace", "path": "name.honorificPrefix", "value": "Ms."}
        ]),
    );
    assert_eq!(out["title"], "Tour Guide");
    assert_eq!(out["phoneNumbers"], json!([{"value": "555-1234"}]));
    assert_eq!(out["name"]["honorificPrefix"], "Ms.");
    assert_eq!(out["name"]["familyName"], "Jensen");
}

#[test]
fn add_of_existing_value_changes_nothing() {
    let r = babs();
    let o = try_apply(
        &r,
        json!([{"op": "add", "path": "emails", "value": [{"value": "babs@jensen.org", "type": "home"}]}]),
    )
    .unwrap();
    assert!(!o.changed);
    assert_eq!(o.attrs, r.attrs);
}

#[test]
fn add_compares_values_by_the_attributes_case_rules() {
    // emails.value is case-insensitive: the same address in capitals is already there.
    let r = babs();
    let o = try_apply(
        &r,
        json!([{"op": "add", "path": "emails", "value": {"value": "BABS@JENSEN.ORG", "type": "HOME"}}]),
    )
    .unwrap();
    assert!(!o.changed);
    // Member ids are case-exact: a differently cased id is another member.
    let g = tour_guides();
    let out = applied(
        &g,
        json!([{"op": "add", "path": "members", "value": [{"value": U1.to_uppercase()}]}]),
    );
    assert_eq!(member_ids(&out).len(), 3);
}

#[test]
fn add_of_present_member_keeps_it_as_it_is() {
    let g = tour_guides();
    let o = try_apply(
        &g,
        json!([{"op": "add", "path": "members", "value": [{"value": U1, "display": "Someone else"}]}]),
    )
    .unwrap();
    assert!(!o.changed);
    assert_eq!(o.attrs["members"][0]["display"], "Babs Jensen");
}

#[test]
fn add_of_single_value_to_multi_valued_attribute_appends_it() {
    let out = applied(
        &babs(),
        json!([{"op": "add", "path": "phoneNumbers", "value": {"value": "555-0000", "type": "work"}}]),
    );
    assert_eq!(
        out["phoneNumbers"],
        json!([{"value": "555-0000", "type": "work"}])
    );
}

#[test]
fn add_with_filter_sets_sub_attribute_on_matching_values() {
    let out = applied(
        &babs(),
        json!([{"op": "add", "path": "emails[type eq \"home\"].display", "value": "Home mail"}]),
    );
    assert_eq!(out["emails"][1]["display"], "Home mail");
    assert!(out["emails"][0].get("display").is_none());
}

#[test]
fn add_with_filter_that_matches_nothing_creates_the_value_it_describes() {
    let out = applied(
        &babs(),
        json!([{"op": "add", "path": "addresses[type eq \"other\"].formatted", "value": "Columbus"}]),
    );
    assert_eq!(
        out["addresses"][2],
        json!({"type": "other", "formatted": "Columbus"})
    );
    let u = user(json!({"userName": "x"}));
    let out = applied(
        &u,
        json!([{"op": "add", "path": "emails[type eq \"work\" and primary eq true]",
                "value": {"value": "x@example.com"}}]),
    );
    assert_eq!(
        out["emails"],
        json!([{"type": "work", "primary": true, "value": "x@example.com"}])
    );
}

#[test]
fn add_with_filter_that_describes_no_value_is_no_target() {
    let u = user(json!({"userName": "x"}));
    for path in [
        "emails[type ne \"work\"].value",
        "emails[type eq \"work\" or type eq \"home\"].value",
        "emails[value sw \"x\"].display",
        "emails[type eq \"work\" and type eq \"home\"].value",
    ] {
        let err = failure(
            &u,
            json!([{"op": "add", "path": path, "value": "x@example.com"}]),
        );
        assert_eq!(err, Some(ScimType::NoTarget), "{path}");
    }
}

#[test]
fn replace_with_filter_that_matches_nothing_is_no_target() {
    for path in [
        "emails[type eq \"other\"]",
        "emails[type eq \"other\"].value",
    ] {
        let value = if path.ends_with(".value") {
            json!("x@example.com")
        } else {
            json!({"value": "x@example.com", "type": "other"})
        };
        let err = failure(
            &babs(),
            json!([{"op": "replace", "path": path, "value": value}]),
        );
        assert_eq!(err, Some(ScimType::NoTarget), "{path}");
    }
}

#[test]
fn remove_of_missing_value_or_attribute_succeeds_unchanged() {
    let g = tour_guides();
    for path in [
        "members[value eq \"not-a-member\"]".to_string(),
        format!("members[value eq \"{U3}\"]"),
    ] {
        let o = try_apply(&g, json!([{"op": "remove", "path": path}])).unwrap();
        assert!(!o.changed);
        assert_eq!(o.attrs, g.attrs);
    }
    let r = babs();
    for path in ["title", "phoneNumbers", "name.middleName", ENTERPRISE_USER] {
        let o = try_apply(&r, json!([{"op": "remove", "path": path}])).unwrap();
        assert!(!o.changed, "{path}");
    }
}

#[test]
fn remove_of_last_value_unassigns_the_attribute() {
    let out = applied(
        &babs(),
        json!([{"op": "remove", "path": "x509Certificates[value eq \"TXlPbGRDZXJ0\"]"},
               {"op": "remove", "path": "x509Certificates[value eq \"TXlOZXdDZXJ0\"]"}]),
    );
    assert!(out.get("x509Certificates").is_none());
}

#[test]
fn remove_of_sub_attribute_keeps_the_rest() {
    let out = applied(
        &babs(),
        json!([{"op": "remove", "path": "name.givenName"},
               {"op": "remove", "path": "addresses[type eq \"home\"].streetAddress"}]),
    );
    assert_eq!(out["name"], json!({"familyName": "Jensen"}));
    assert!(out["addresses"][1].get("streetAddress").is_none());
    assert_eq!(out["addresses"][1]["locality"], "Hollywood");
}

#[test]
fn remove_of_every_sub_attribute_unassigns_the_complex_attribute() {
    let out = applied(
        &babs(),
        json!([{"op": "remove", "path": "name.givenName"},
               {"op": "remove", "path": "name.familyName"}]),
    );
    assert!(out.get("name").is_none());
}

#[test]
fn remove_of_required_attribute_is_mutability() {
    assert_eq!(
        failure(&babs(), json!([{"op": "remove", "path": "userName"}])),
        Some(ScimType::Mutability)
    );
    assert_eq!(
        failure(
            &tour_guides(),
            json!([{"op": "remove", "path": "displayName"}])
        ),
        Some(ScimType::Mutability)
    );
    let mut r = babs();
    r.attrs
        .insert(ENTERPRISE_USER.into(), json!({"manager": {"value": U2}}));
    assert_eq!(
        failure(
            &r,
            json!([{"op": "remove", "path": format!("{ENTERPRISE_USER}:manager.value")}])
        ),
        Some(ScimType::Mutability)
    );
}

#[test]
fn unassigning_a_required_sub_attribute_by_null_is_mutability() {
    let mut r = babs();
    r.attrs
        .insert(ENTERPRISE_USER.into(), json!({"manager": {"value": U2}}));
    assert_eq!(
        failure(
            &r,
            json!([{"op": "replace", "path": format!("{ENTERPRISE_USER}:manager"),
                    "value": {"value": null}}])
        ),
        Some(ScimType::Mutability)
    );
}

#[test]
fn large_group_member_changes_stay_linear() {
    let members: Vec<Value> = (0..100_000)
        .map(|i| json!({"value": format!("user-{i}"), "type": "User"}))
        .collect();
    let g = group(json!({"displayName": "All", "members": members}));
    let started = std::time::Instant::now();
    let out = applied(
        &g,
        json!([{"op": "add", "path": "members", "value": [{"value": "user-5"}, {"value": "new"}]},
               {"op": "remove", "path": "members", "value": [{"value": "user-7"}]},
               {"op": "remove", "path": "members[value eq \"user-9\" or value eq \"user-11\"]"}]),
    );
    let ids = member_ids(&out);
    assert_eq!(ids.len(), 100_000 - 3 + 1);
    assert_eq!(ids.last(), Some(&"new"));
    assert!(!ids.contains(&"user-7") && !ids.contains(&"user-9"));
    // Quadratic work would take minutes here; linear work takes well under a second even
    // unoptimized on a busy machine.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn null_value_unassigns_a_single_valued_attribute() {
    let out = applied(
        &babs(),
        json!([{"op": "replace", "path": "displayName", "value": null},
               {"op": "replace", "value": {"active": null}}]),
    );
    assert!(out.get("displayName").is_none());
    assert!(out.get("active").is_none());
}

#[test]
fn remove_with_value_removes_only_the_values_given() {
    let out = applied(
        &babs(),
        json!([{"op": "remove", "path": "emails", "value": [{"value": "babs@jensen.org"}]}]),
    );
    assert_eq!(
        out["emails"],
        json!([{"value": "bjensen@example.com", "type": "work", "primary": true}])
    );
}

#[test]
fn filter_strings_may_contain_brackets() {
    let r =
        user(json!({"userName": "x", "emails": [{"value": "a]b@example.com", "type": "work"}]}));
    let out = applied(
        &r,
        json!([{"op": "replace", "path": "emails[value eq \"a]b@example.com\"].type", "value": "home"}]),
    );
    assert_eq!(out["emails"][0]["type"], "home");
    let out = applied(
        &r,
        json!([{"op": "remove", "path": "emails[value eq \"a]b@example.com\" and type eq \"w\\\"]\"]"}]),
    );
    assert_eq!(out["emails"], r.attrs["emails"]);
}

#[test]
fn urn_qualified_paths_reach_core_and_extension_attributes() {
    let out = applied(
        &babs(),
        json!([
            {"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:displayName", "value": "B"},
            {"op": "add", "path": format!("{ENTERPRISE_USER}:employeeNumber"), "value": "701984"},
            {"op": "replace", "path": format!("{ENTERPRISE_USER}:manager.value"), "value": U2},
            {"op": "replace", "path":
                "urn:ietf:params:scim:schemas:core:2.0:User:emails[type eq \"work\"].value",
             "value": "b@example.com"}
        ]),
    );
    assert_eq!(out["displayName"], "B");
    assert_eq!(
        out[ENTERPRISE_USER],
        json!({"employeeNumber": "701984", "manager": {"value": U2}})
    );
    assert_eq!(out["emails"][0]["value"], "b@example.com");
}

#[test]
fn extension_urn_path_targets_the_whole_extension() {
    let mut r = babs();
    r.attrs.insert(
        ENTERPRISE_USER.into(),
        json!({"employeeNumber": "1", "department": "Tours"}),
    );
    let out = applied(
        &r,
        json!([{"op": "add", "path": ENTERPRISE_USER.to_uppercase(),
                "value": {"DEPARTMENT": "Rides", "costCenter": "4130"}}]),
    );
    assert_eq!(
        out[ENTERPRISE_USER],
        json!({"employeeNumber": "1", "department": "Rides", "costCenter": "4130"})
    );
    let out = applied(&r, json!([{"op": "remove", "path": ENTERPRISE_USER}]));
    assert!(out.get(ENTERPRISE_USER).is_none());
    assert_eq!(out["userName"], "bjensen");
}

#[test]
fn extension_left_empty_is_removed() {
    let mut r = babs();
    r.attrs
        .insert(ENTERPRISE_USER.into(), json!({"employeeNumber": "1"}));
    let out = applied(&r, json!([{"op": "remove", "path": "employeeNumber"}]));
    assert!(out.get(ENTERPRISE_USER).is_none());
}

#[test]
fn setting_primary_clears_the_other_primary_values() {
    let out = applied(
        &babs(),
        json!([{"op": "add", "path": "emails", "value": [
            {"value": "new@example.com", "type": "other", "primary": true}
        ]}]),
    );
    assert_eq!(out["emails"][0]["primary"], false);
    assert_eq!(out["emails"][2]["primary"], true);
    let out = applied(
        &babs(),
        json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]),
    );
    assert_eq!(out["emails"][0]["primary"], false);
    assert_eq!(out["emails"][1]["primary"], true);
}

#[test]
fn two_primary_values_in_one_list_are_invalid() {
    let err = failure(
        &babs(),
        json!([{"op": "replace", "path": "emails", "value": [
            {"value": "a@example.com", "primary": true},
            {"value": "b@example.com", "primary": true}
        ]}]),
    );
    assert_eq!(err, Some(ScimType::InvalidValue));
}

#[test]
fn write_only_password_may_be_replaced() {
    let out = applied(
        &babs(),
        json!([{"op": "replace", "path": "password", "value": "t1meMa$heen"}]),
    );
    assert_eq!(out["password"], "t1meMa$heen");
}

#[test]
fn values_are_canonicalized_and_type_checked() {
    let out = applied(
        &babs(),
        json!([{"op": "replace", "path": "NAME", "value": {"GIVENNAME": "B"}}]),
    );
    assert_eq!(out["name"]["givenName"], "B");
    assert_eq!(
        failure(
            &babs(),
            json!([{"op": "replace", "path": "active", "value": 3}])
        ),
        Some(ScimType::InvalidValue)
    );
    assert!(
        try_apply(
            &babs(),
            json!([{"op": "add", "path": "name", "value": {"bogus": 1}}])
        )
        .is_err()
    );
}

#[test]
fn unchanged_result_reports_not_changed() {
    let r = babs();
    let o = try_apply(
        &r,
        json!([{"op": "replace", "path": "displayName", "value": "Babs Jensen"},
               {"op": "replace", "path": "name", "value": {"givenName": "Barbara"}}]),
    )
    .unwrap();
    assert!(!o.changed);
    let o = try_apply(
        &r,
        json!([{"op": "replace", "path": "displayName", "value": "X"},
               {"op": "replace", "path": "displayName", "value": "Babs Jensen"}]),
    )
    .unwrap();
    assert!(!o.changed);
}

// ---------------------------------------------------------------------------------------------
// Mutability
// ---------------------------------------------------------------------------------------------

#[test]
fn explicit_path_to_read_only_attribute_is_mutability() {
    for (op, path) in [
        ("replace", "id"),
        ("replace", "meta.created"),
        ("add", "groups"),
        ("remove", "groups"),
        (
            "replace",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName",
        ),
    ] {
        let err = parse(
            ResourceKind::User,
            json!([{"op": op, "path": path, "value": "x"}]),
        )
        .expect_err(path);
        assert_eq!(err.scim_type, Some(ScimType::Mutability), "{op} {path}");
    }
}

#[test]
fn read_only_keys_in_pathless_values_are_ignored() {
    let out = applied(
        &babs(),
        json!([{"op": "replace", "value": {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "something-else",
            "meta": {"resourceType": "User"},
            "groups": [{"value": "g1"}],
            "active": false
        }}]),
    );
    assert_eq!(out["active"], false);
    for k in ["id", "meta", "schemas", "groups"] {
        assert!(out.get(k).is_none(), "{k}");
    }
}

#[test]
fn changing_an_immutable_sub_attribute_in_place_is_mutability() {
    let err = failure(
        &tour_guides(),
        json!([{"op": "replace", "path": format!("members[value eq \"{U1}\"]"),
                "value": {"value": U3, "type": "User"}}]),
    );
    assert_eq!(err, Some(ScimType::Mutability));
    // The display name is readWrite.
    let out = applied(
        &tour_guides(),
        json!([{"op": "replace", "path": format!("members[value eq \"{U1}\"].display"),
                "value": "Barbara"}]),
    );
    assert_eq!(
        out["members"][0],
        json!({"value": U1, "type": "User", "display": "Barbara"})
    );
}

const ACME: &str = "urn:example:params:scim:schemas:extension:acme:2.0:User";

/// A registry with a custom User extension: an immutable badge number, multi-valued complex
/// sites with case-exact codes, and multi-valued simple tags.
fn acme_registry() -> Arc<SchemaRegistry> {
    let schema = crate::schema::Schema::from_json(&json!({
        "id": ACME,
        "name": "AcmeUser",
        "attributes": [
            {"name": "badge", "type": "integer", "mutability": "immutable"},
            {"name": "sites", "type": "complex", "multiValued": true, "subAttributes": [
                {"name": "code", "type": "string", "caseExact": true},
                {"name": "primary", "type": "boolean"}
            ]},
            {"name": "tags", "type": "string", "multiValued": true}
        ]
    }))
    .unwrap();
    let mut reg = SchemaRegistry::new();
    reg.add_extension(ResourceKind::User, schema, false)
        .unwrap();
    Arc::new(reg)
}

fn acme_apply(r: &Resource, ops: Value) -> Result<PatchOutcome, ScimError> {
    PatchRequest::parse(&body(ops), acme_registry(), ResourceKind::User)?.apply(r)
}

#[test]
fn immutable_attribute_may_be_set_once_but_not_changed_or_removed() {
    let r = user(json!({"userName": "x"}));
    let set = acme_apply(&r, json!([{"op": "add", "path": "badge", "value": 7}])).unwrap();
    assert_eq!(set.attrs[ACME], json!({"badge": 7}));
    let r = user(json!({"userName": "x", ACME: {"badge": 7}}));
    let same = acme_apply(&r, json!([{"op": "replace", "path": "badge", "value": 7}])).unwrap();
    assert!(!same.changed);
    for op in [
        json!({"op": "replace", "path": "badge", "value": 8}),
        json!({"op": "remove", "path": format!("{ACME}:badge")}),
        json!({"op": "remove", "path": ACME}),
    ] {
        let err = acme_apply(&r, json!([op])).unwrap_err();
        assert_eq!(err.scim_type, Some(ScimType::Mutability), "{op}");
    }
}

#[test]
fn value_filters_work_on_urn_qualified_extension_attributes() {
    let r = user(json!({"userName": "x", ACME: {"sites": [
        {"code": "a", "primary": true}, {"code": "b"}]}}));
    let out = acme_apply(
        &r,
        json!([{"op": "replace", "path": format!("{ACME}:sites[code eq \"b\"].primary"), "value": true}]),
    )
    .unwrap();
    assert_eq!(
        out.attrs[ACME]["sites"],
        json!([{"code": "a", "primary": false}, {"code": "b", "primary": true}])
    );
    // Codes are case-exact: "A" is not "a".
    let err = acme_apply(
        &r,
        json!([{"op": "replace", "path": "sites[code eq \"A\"].primary", "value": true}]),
    )
    .unwrap_err();
    assert_eq!(err.scim_type, Some(ScimType::NoTarget));
    let out = acme_apply(
        &r,
        json!([{"op": "add", "path": "sites", "value": [{"code": "A"}, {"code": "a", "primary": true}]}]),
    )
    .unwrap();
    assert_eq!(
        out.attrs[ACME]["sites"],
        json!([{"code": "a", "primary": true}, {"code": "b"}, {"code": "A"}])
    );
}

#[test]
fn multi_valued_simple_attributes_add_and_remove_values() {
    let r = user(json!({"userName": "x", ACME: {"tags": ["red"]}}));
    let out = acme_apply(
        &r,
        json!([{"op": "add", "path": "tags", "value": ["RED", "blue", "Blue"]}]),
    )
    .unwrap();
    // Tags are case-insensitive strings.
    assert_eq!(out.attrs[ACME]["tags"], json!(["red", "blue"]));
    let out = acme_apply(
        &r,
        json!([{"op": "add", "path": "tags", "value": "green"},
               {"op": "remove", "path": "tags", "value": ["Red"]}]),
    )
    .unwrap();
    assert_eq!(out.attrs[ACME]["tags"], json!(["green"]));
}

// ---------------------------------------------------------------------------------------------
// Message errors
// ---------------------------------------------------------------------------------------------

fn parse_error(b: Value) -> Option<ScimType> {
    PatchRequest::parse(&b, registry(), ResourceKind::User)
        .expect_err("should fail")
        .scim_type
}

#[test]
fn message_needs_the_patch_op_schema() {
    let ops = json!([{"op": "replace", "path": "active", "value": false}]);
    for schemas in [
        json!([]),
        json!(["urn:ietf:params:scim:schemas:core:2.0:User"]),
        json!(null),
    ] {
        assert_eq!(
            parse_error(json!({"schemas": schemas, "Operations": ops})),
            Some(ScimType::InvalidSyntax)
        );
    }
    assert_eq!(
        parse_error(json!({"Operations": ops})),
        Some(ScimType::InvalidSyntax)
    );
    let upper = json!({"schemas": [PATCH_OP_SCHEMA.to_uppercase()], "operations": ops});
    assert!(PatchRequest::parse(&upper, registry(), ResourceKind::User).is_ok());
}

#[test]
fn message_needs_one_to_max_operations() {
    let s = json!([PATCH_OP_SCHEMA]);
    assert_eq!(
        parse_error(json!({"schemas": s})),
        Some(ScimType::InvalidSyntax)
    );
    assert_eq!(
        parse_error(json!({"schemas": s, "Operations": []})),
        Some(ScimType::InvalidSyntax)
    );
    assert_eq!(
        parse_error(json!({"schemas": s, "Operations": {"op": "add"}})),
        Some(ScimType::InvalidSyntax)
    );
    let op = json!({"op": "replace", "path": "active", "value": false});
    let many = vec![op.clone(); MAX_OPERATIONS + 1];
    assert_eq!(
        parse_error(json!({"schemas": s, "Operations": many})),
        Some(ScimType::InvalidSyntax)
    );
    let most = vec![op; MAX_OPERATIONS];
    assert!(
        PatchRequest::parse(
            &json!({"schemas": s, "Operations": most}),
            registry(),
            ResourceKind::User
        )
        .is_ok()
    );
}

#[test]
fn operation_errors_carry_the_right_scim_type() {
    let cases = [
        (
            json!({"op": "move", "path": "active", "value": false}),
            ScimType::InvalidSyntax,
        ),
        (
            json!({"path": "active", "value": false}),
            ScimType::InvalidSyntax,
        ),
        (json!("add"), ScimType::InvalidSyntax),
        (json!({"op": "remove"}), ScimType::NoTarget),
        (json!({"op": "remove", "path": ""}), ScimType::NoTarget),
        (
            json!({"op": "add", "path": "title"}),
            ScimType::InvalidSyntax,
        ),
        (json!({"op": "replace"}), ScimType::InvalidSyntax),
        (
            json!({"op": "replace", "value": "not an object"}),
            ScimType::InvalidSyntax,
        ),
        (
            json!({"op": "replace", "path": "bogus", "value": 1}),
            ScimType::InvalidPath,
        ),
        (
            json!({"op": "replace", "path": "name.bogus", "value": 1}),
            ScimType::InvalidPath,
        ),
        (
            json!({"op": "replace", "path": "members", "value": []}),
            ScimType::InvalidPath,
        ),
        (
            json!({"op": "replace", "value": {"bogus": 1}}),
            ScimType::InvalidPath,
        ),
        (
            json!({"op": "replace", "path": 7, "value": 1}),
            ScimType::InvalidPath,
        ),
        (
            json!({"op": "remove", "path": "emails[type eq \"work\""}),
            ScimType::InvalidPath,
        ),
        (
            json!({"op": "remove", "path": "emails]"}),
            ScimType::InvalidPath,
        ),
        (
            json!({"op": "remove", "path": "emails[type eq \"a\"]x"}),
            ScimType::InvalidPath,
        ),
        (
            json!({"op": "remove", "path": "emails[type eq \"a\"].bogus"}),
            ScimType::InvalidPath,
        ),
        (
            json!({"op": "remove", "path": "emails.value[type eq \"a\"]"}),
            ScimType::InvalidPath,
        ),
        (
            json!({"op": "remove", "path": "emails[type[x] eq \"a\"]"}),
            ScimType::InvalidPath,
        ),
        (
            json!({"op": "remove", "path": "name[givenName eq \"a\"]"}),
            ScimType::InvalidPath,
        ),
        (
            json!({"op": "remove", "path": "urn:ietf:params:scim:schemas:core:2.0:User"}),
            ScimType::InvalidPath,
        ),
        (
            json!({"op": "remove", "path": "emails[type eq]"}),
            ScimType::InvalidFilter,
        ),
        (
            json!({"op": "remove", "path": "emails[bogus eq \"x\"]"}),
            ScimType::InvalidFilter,
        ),
    ];
    for (op, expected) in cases {
        assert_eq!(
            parse_error(json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [op]})),
            Some(expected),
            "{op}"
        );
    }
}

#[test]
fn error_detail_names_the_failing_operation() {
    let err = parse(
        ResourceKind::User,
        json!([{"op": "add", "path": "title", "value": "x"}, {"op": "add", "path": "bogus", "value": 1}]),
    )
    .unwrap_err();
    assert!(err.detail.starts_with("Operations[1]:"), "{}", err.detail);
}

#[test]
fn operation_keys_and_names_match_case_insensitively() {
    let out = applied(
        &babs(),
        json!([{"OP": "Replace", "Path": "ACTIVE", "Value": false},
               {"op": "ADD", "path": "title", "value": "Guide"}]),
    );
    assert_eq!(out["active"], false);
    assert_eq!(out["title"], "Guide");
}

// ---------------------------------------------------------------------------------------------
// Atomicity
// ---------------------------------------------------------------------------------------------

#[test]
fn failing_second_operation_leaves_the_resource_unchanged() {
    let r = babs();
    let before = r.clone();
    let err = try_apply(
        &r,
        json!([
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "replace", "path": "emails[type eq \"other\"].value", "value": "x@example.com"},
            {"op": "replace", "path": "title", "value": "Never applied"}
        ]),
    )
    .unwrap_err();
    assert_eq!(err.scim_type, Some(ScimType::NoTarget));
    assert!(err.detail.starts_with("Operations[1]:"), "{}", err.detail);
    assert_eq!(r, before);
}

#[test]
fn invalid_final_state_fails_the_whole_request() {
    // Each operation is fine alone; together they leave two primary emails.
    let r = babs();
    let err = try_apply(
        &r,
        json!([
            {"op": "replace", "path": "emails[type eq \"work\"].primary", "value": true},
            {"op": "replace", "path": "emails", "value": [
                {"value": "a@example.com", "primary": true}, {"value": "b@example.com", "primary": true}]}
        ]),
    )
    .unwrap_err();
    assert_eq!(err.scim_type, Some(ScimType::InvalidValue));
}

// ---------------------------------------------------------------------------------------------
// Microsoft Entra ID
// ---------------------------------------------------------------------------------------------

#[test]
fn entra_pathless_replace_deactivates() {
    let out = applied(
        &babs(),
        json!([{"op": "Replace", "value": {"active": false}}]),
    );
    assert_eq!(out["active"], false);
}

#[test]
fn entra_boolean_strings_become_booleans() {
    let out = applied(
        &babs(),
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
    );
    assert_eq!(out["active"], false);
}

#[test]
fn entra_pathless_dotted_and_urn_keys() {
    let out = applied(
        &babs(),
        json!([{"op": "Add", "value": {
            "name.givenName": "Babs",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": {"value": U2},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Tours",
            "externalId": "babs-ext"
        }}]),
    );
    assert_eq!(
        out["name"],
        json!({"familyName": "Jensen", "givenName": "Babs"})
    );
    assert_eq!(
        out[ENTERPRISE_USER],
        json!({"manager": {"value": U2}, "department": "Tours"})
    );
    assert_eq!(out["externalId"], "babs-ext");
}

#[test]
fn entra_pathless_extension_object_merges() {
    let mut r = babs();
    r.attrs.insert(
        ENTERPRISE_USER.into(),
        json!({"employeeNumber": "1", "department": "Tours"}),
    );
    let out = applied(
        &r,
        json!([{"op": "Replace", "value": {ENTERPRISE_USER: {"department": "Rides", "manager": {"value": U2}}}}]),
    );
    assert_eq!(
        out[ENTERPRISE_USER],
        json!({"employeeNumber": "1", "department": "Rides", "manager": {"value": U2}})
    );
}

#[test]
fn entra_add_single_member() {
    let out = applied(
        &tour_guides(),
        json!([{"op": "Add", "path": "members", "value": [{"value": U3}]}]),
    );
    assert_eq!(member_ids(&out), [U1, U2, U3]);
}

#[test]
fn entra_remove_member_by_filter_and_by_value() {
    let out = applied(
        &tour_guides(),
        json!([{"op": "Remove", "path": format!("members[value eq \"{U1}\"]")}]),
    );
    assert_eq!(member_ids(&out), [U2]);
    let out = applied(
        &tour_guides(),
        json!([{"op": "Remove", "path": "members", "value": [{"value": U2}]}]),
    );
    assert_eq!(member_ids(&out), [U1]);
}

#[test]
fn entra_replace_work_email_value() {
    let out = applied(
        &babs(),
        json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
        ]),
    );
    assert_eq!(
        out["emails"][0],
        json!({"value": "updatedEmail@microsoft.com", "type": "work", "primary": true})
    );
    assert_eq!(out["name"]["familyName"], "updatedFamilyName");
}

#[test]
fn entra_add_work_email_value_creates_it_when_missing() {
    let u = user(json!({"userName": "x"}));
    let out = applied(
        &u,
        json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "x@example.com"}]),
    );
    assert_eq!(
        out["emails"],
        json!([{"type": "work", "value": "x@example.com"}])
    );
}

// ---------------------------------------------------------------------------------------------
// Okta
// ---------------------------------------------------------------------------------------------

#[test]
fn okta_group_rename_ignores_the_resent_id() {
    let out = applied(
        &tour_guides(),
        json!([{"op": "replace", "value": {"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
                                           "displayName": "Test SCIMv2"}}]),
    );
    assert_eq!(out["displayName"], "Test SCIMv2");
    assert!(out.get("id").is_none());
    assert_eq!(member_ids(&out), [U1, U2]);
}

#[test]
fn okta_remove_then_add_members() {
    let out = applied(
        &tour_guides(),
        json!([
            {"op": "remove", "path": format!("members[value eq \"{U1}\"]")},
            {"op": "add", "path": "members", "value": [{"value": U3, "display": "james@example.com"}]}
        ]),
    );
    assert_eq!(
        out["members"],
        json!([{"value": U2, "type": "User", "display": "Mandy Pepperidge"},
               {"value": U3, "display": "james@example.com"}])
    );
}

#[test]
fn okta_replace_active() {
    let out = applied(
        &babs(),
        json!([{"op": "replace", "value": {"active": false}}]),
    );
    assert_eq!(out["active"], false);
    let out = applied(
        &babs(),
        json!([{"op": "replace", "path": "active", "value": false}]),
    );
    assert_eq!(out["active"], false);
}

// ---------------------------------------------------------------------------------------------
// Membership deltas
// ---------------------------------------------------------------------------------------------

fn delta(ops: Value) -> Option<(PatchRequest, MembershipDelta)> {
    parse(ResourceKind::Group, ops).unwrap().membership_delta()
}

fn m(id: &str) -> Member {
    Member {
        value: id.into(),
        kind: None,
        display: None,
    }
}

#[test]
fn delta_of_add_and_filtered_remove() {
    let (rest, d) = delta(json!([
        {"op": "add", "path": "members", "value": [{"value": U1, "type": "User", "display": "Babs"}]},
        {"op": "remove", "path": format!("members[value eq \"{U2}\" or value eq \"{U3}\"]")}
    ]))
    .unwrap();
    assert!(rest.ops.is_empty());
    assert_eq!(
        d,
        MembershipDelta {
            replace: None,
            remove: vec![U2.into(), U3.into()],
            add: vec![Member {
                value: U1.into(),
                kind: Some("User".into()),
                display: Some("Babs".into())
            }],
        }
    );
}

#[test]
fn delta_of_remove_all_and_replace() {
    let (_, d) = delta(json!([{"op": "remove", "path": "members"}])).unwrap();
    assert_eq!(d.replace, Some(vec![]));
    let (_, d) = delta(json!([
        {"op": "remove", "path": "members"},
        {"op": "add", "path": "members", "value": [{"value": U1}, {"value": U2}]},
        {"op": "remove", "path": format!("members[value eq \"{U1}\"]")}
    ]))
    .unwrap();
    assert_eq!(
        d,
        MembershipDelta {
            replace: Some(vec![m(U2)]),
            remove: vec![],
            add: vec![]
        }
    );
    let (_, d) = delta(json!([
        {"op": "add", "path": "members", "value": [{"value": U3}]},
        {"op": "replace", "path": "members", "value": [{"value": U1}]}
    ]))
    .unwrap();
    assert_eq!(d.replace, Some(vec![m(U1)]));
    assert!(d.add.is_empty());
}

#[test]
fn delta_orders_add_and_remove_of_the_same_member() {
    let (_, d) = delta(json!([
        {"op": "add", "path": "members", "value": [{"value": U1}]},
        {"op": "remove", "path": format!("members[value eq \"{U1}\"]")}
    ]))
    .unwrap();
    assert_eq!((d.remove, d.add), (vec![U1.to_string()], vec![]));
    let (_, d) = delta(json!([
        {"op": "remove", "path": format!("members[value eq \"{U1}\"]")},
        {"op": "add", "path": "members", "value": [{"value": U1}]}
    ]))
    .unwrap();
    assert_eq!((d.remove, d.add), (vec![U1.to_string()], vec![m(U1)]));
}

#[test]
fn delta_of_remove_with_value_list() {
    let (_, d) = delta(
        json!([{"op": "Remove", "path": "members", "value": [{"value": U1}, {"value": U2}]}]),
    )
    .unwrap();
    assert_eq!(d.remove, vec![U1.to_string(), U2.to_string()]);
    assert!(d.replace.is_none());
}

#[test]
fn delta_keeps_non_member_operations_in_order() {
    let (rest, d) = delta(json!([
        {"op": "replace", "value": {"displayName": "New", "members": [{"value": U1}]}},
        {"op": "add", "path": "externalId", "value": "ext"}
    ]))
    .unwrap();
    let paths: Vec<String> = rest
        .ops
        .iter()
        .map(|o| o.path.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(paths, ["displayName", "externalId"]);
    assert_eq!(d.replace, Some(vec![m(U1)]));
    let out = rest.apply(&tour_guides()).unwrap();
    assert_eq!(out.attrs["displayName"], "New");
}

#[test]
fn delta_is_none_for_member_operations_it_cannot_express() {
    for op in [
        json!({"op": "remove", "path": "members[display eq \"Babs\"]"}),
        json!({"op": "remove", "path": format!("members[value eq \"{U1}\" and type eq \"User\"]")}),
        json!({"op": "remove", "path": format!("members[not (value eq \"{U1}\")]")}),
        json!({"op": "replace", "path": format!("members[value eq \"{U1}\"].display"), "value": "B"}),
        json!({"op": "add", "path": format!("members[value eq \"{U1}\"]"), "value": {"display": "B"}}),
        json!({"op": "remove", "path": "members.display"}),
    ] {
        assert!(delta(json!([op])).is_none(), "{op}");
    }
}

#[test]
fn delta_of_user_patch_is_empty() {
    let req = parse(
        ResourceKind::User,
        json!([{"op": "replace", "path": "active", "value": false}]),
    )
    .unwrap();
    let (rest, d) = req.membership_delta().unwrap();
    assert!(d.is_empty());
    assert_eq!(rest.ops, req.ops);
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn email() -> impl Strategy<Value = Value> {
        (
            prop::sample::select(vec!["a@x.org", "A@X.org", "b@x.org", "c]@x.org"]),
            prop::option::of(prop::sample::select(vec!["work", "home", "other"])),
            prop::option::of(any::<bool>()),
        )
            .prop_map(|(v, t, p)| {
                let mut o = Map::new();
                o.insert("value".into(), json!(v));
                if let Some(t) = t {
                    o.insert("type".into(), json!(t));
                }
                if let Some(p) = p {
                    o.insert("primary".into(), json!(p));
                }
                Value::Object(o)
            })
    }

    fn some_user() -> impl Strategy<Value = Resource> {
        (
            prop::option::of(prop::sample::select(vec!["Babs", "B"])),
            prop::collection::vec(email(), 0..4),
            prop::option::of(any::<bool>()),
            prop::option::of(prop::sample::select(vec!["1", "2"])),
        )
            .prop_map(|(given, emails, active, emp)| {
                let mut a = json!({"userName": "bjensen"});
                if let Some(g) = given {
                    a["name"] = json!({"givenName": g});
                }
                // At most one primary, as a stored resource has.
                let mut seen = false;
                let emails: Vec<Value> = emails
                    .into_iter()
                    .map(|mut e| {
                        if e["primary"] == true {
                            if seen {
                                e["primary"] = json!(false);
                            }
                            seen = true;
                        }
                        e
                    })
                    .collect();
                if !emails.is_empty() {
                    a["emails"] = Value::Array(emails);
                }
                if let Some(x) = active {
                    a["active"] = json!(x);
                }
                if let Some(e) = emp {
                    a[ENTERPRISE_USER] = json!({"employeeNumber": e});
                }
                user(a)
            })
    }

    fn some_op() -> impl Strategy<Value = Value> {
        let paths = vec![
            None,
            Some("emails"),
            Some("emails[type eq \"work\"]"),
            Some("emails[type eq \"work\"].value"),
            Some("emails[value eq \"c]@x.org\"].primary"),
            Some("emails[type eq \"home\" or primary eq true]"),
            Some("emails.type"),
            Some("name"),
            Some("name.givenName"),
            Some("userName"),
            Some("active"),
            Some("title"),
            Some("id"),
            Some("bogus"),
            Some("emails[type eq"),
            Some(ENTERPRISE_USER),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"),
        ];
        let values = vec![
            None,
            Some(json!(null)),
            Some(json!("x@x.org")),
            Some(json!(true)),
            Some(json!(7)),
            Some(json!([])),
            Some(json!({"value": "a@x.org", "type": "work", "primary": true})),
            Some(json!([{"value": "b@x.org", "type": "home"}, {"value": "B@x.org"}])),
            Some(json!({"givenName": "Q"})),
            Some(json!({"active": false, "title": "T", "id": "z"})),
            Some(json!({"employeeNumber": "3"})),
            Some(json!({"name.givenName": "R", ENTERPRISE_USER: {"division": "D"}})),
        ];
        (
            prop::sample::select(vec!["add", "Replace", "remove"]),
            prop::sample::select(paths),
            prop::sample::select(values),
        )
            .prop_map(|(op, path, value)| {
                let mut o = Map::new();
                o.insert("op".into(), json!(op));
                if let Some(p) = path {
                    o.insert("path".into(), json!(p));
                }
                if let Some(v) = value {
                    o.insert("value".into(), v);
                }
                Value::Object(o)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Random operation lists never panic; a successful result reports `changed` exactly
        /// when it differs, is deterministic and is valid; a failure leaves the input alone.
        #[test]
        fn random_patches_never_panic_and_report_changes_truthfully(
            r in some_user(),
            ops in prop::collection::vec(some_op(), 1..5),
        ) {
            let before = r.clone();
            let Ok(req) = parse(ResourceKind::User, Value::Array(ops)) else {
                return Ok(());
            };
            match req.apply(&r) {
                Ok(o) => {
                    prop_assert_eq!(o.changed, o.attrs != r.attrs);
                    prop_assert_eq!(&req.apply(&r).unwrap(), &o);
                    let rt = req.registry().resource_type(ResourceKind::User);
                    prop_assert!(crate::normalize::validate(rt, &o.attrs, Some(&r)).is_ok());
                    let primaries = o.attrs.get("emails").and_then(Value::as_array)
                        .map(|a| a.iter().filter(|e| e["primary"] == true).count())
                        .unwrap_or(0);
                    prop_assert!(primaries <= 1);
                }
                Err(e) => prop_assert_eq!(e.status, 400, "{}", e),
            }
            prop_assert_eq!(r, before);
        }

        /// Applying a membership delta (replace, then remove, then add-unless-present) to a
        /// member set gives the same members as applying the operations in sequence.
        #[test]
        fn membership_delta_matches_sequential_application(
            initial in prop::collection::btree_set(0u8..6, 0..5),
            ops in prop::collection::vec((0u8..5, prop::collection::vec(0u8..6, 0..3)), 1..6),
        ) {
            let id = |n: u8| format!("m{n}");
            let g = group(json!({
                "displayName": "G",
                "members": initial.iter().map(|&n| json!({"value": id(n)})).collect::<Vec<_>>(),
            }));
            let ops: Vec<Value> = ops.into_iter().map(|(kind, ids)| {
                let list: Vec<Value> = ids.iter().map(|&n| json!({"value": id(n), "display": format!("d{n}")})).collect();
                match kind {
                    0 => json!({"op": "add", "path": "members", "value": list}),
                    1 => json!({"op": "replace", "path": "members", "value": list}),
                    2 if ids.is_empty() => json!({"op": "remove", "path": "members"}),
                    2 => json!({"op": "remove", "path": "members", "value": list}),
                    3 if ids.is_empty() => json!({"op": "replace", "path": "displayName", "value": "H"}),
                    3 => {
                        let f: Vec<String> = ids.iter().map(|&n| format!("value eq \"{}\"", id(n))).collect();
                        json!({"op": "remove", "path": format!("members[{}]", f.join(" or "))})
                    }
                    _ => json!({"op": "replace", "value": {"displayName": "P", "members": list}}),
                }
            }).collect();
            let req = parse(ResourceKind::Group, Value::Array(ops)).unwrap();
            let sequential = req.apply(&g).unwrap();
            let (rest, d) = req.membership_delta().unwrap();

            // The delta, applied to a map id → stored member.
            let mut members: BTreeMap<String, Value> = g.attrs["members"].as_array().unwrap()
                .iter().map(|m| (m["value"].as_str().unwrap().to_string(), m.clone())).collect();
            if let Some(list) = &d.replace {
                members = list.iter().map(|m| (m.value.clone(), m.to_json())).collect();
            }
            for r in &d.remove {
                members.remove(r);
            }
            for a in &d.add {
                members.entry(a.value.clone()).or_insert_with(|| a.to_json());
            }
            let expected: BTreeMap<String, Value> = sequential.attrs.get("members")
                .and_then(Value::as_array).into_iter().flatten()
                .map(|m| (m["value"].as_str().unwrap().to_string(), m.clone())).collect();
            prop_assert_eq!(members, expected);

            // The rest changes the other attributes as the whole request does.
            let mut without = g.clone();
            without.attrs.shift_remove("members");
            let rest_out = rest.apply(&without).unwrap();
            prop_assert_eq!(rest_out.attrs.get("displayName"), sequential.attrs.get("displayName"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compatibility rules: each fires on the shape an identity provider sends, and `strict` refuses
// that shape.
// ---------------------------------------------------------------------------------------------

/// Parses with `rules`: the request (or error) and the rules that fired.
fn parse_under(
    rules: crate::compat::Rules,
    kind: ResourceKind,
    ops: Value,
) -> (Result<PatchRequest, ScimError>, Vec<crate::compat::Rule>) {
    let fired = crate::compat::Fired::new();
    let r = PatchRequest::parse_with(&body(ops), registry(), kind, &rules, &fired);
    (r, fired.rules())
}

/// Asserts `rule` fires under the defaults, the result applied to `r` is `expect` (checked by
/// `check`), and `strict` (and the defaults without the rule) refuse the operations with
/// `strict_error`.
fn rule_fires_and_strict_refuses(
    rule: crate::compat::Rule,
    r: &Resource,
    ops: Value,
    strict_error: ScimType,
) -> Value {
    use crate::compat::Rules;
    let (req, fired) = parse_under(Rules::DEFAULT.with(rule), r.kind, ops.clone());
    let req = req.unwrap_or_else(|e| panic!("{rule}: {e}"));
    assert!(fired.contains(&rule), "{rule} did not fire: {fired:?}");
    let out = Value::Object(req.apply(r).unwrap().attrs);
    for rules in [Rules::STRICT, Rules::DEFAULT.without(rule)] {
        let (strict, _) = parse_under(rules, r.kind, ops.clone());
        assert_eq!(
            strict.map(|_| ()).unwrap_err().scim_type,
            Some(strict_error),
            "{rule} off: {ops}"
        );
    }
    out
}

#[test]
fn op_case_accepts_capitalized_operation_names() {
    let out = rule_fires_and_strict_refuses(
        crate::compat::Rule::OpCase,
        &babs(),
        json!([{"op": "Replace", "path": "nickName", "value": "B"}]),
        ScimType::InvalidSyntax,
    );
    assert_eq!(out["nickName"], "B");
}

#[test]
fn boolean_strings_in_patch_values_become_booleans() {
    let out = rule_fires_and_strict_refuses(
        crate::compat::Rule::BooleanStrings,
        &babs(),
        json!([{"op": "replace", "path": "active", "value": "False"},
               {"op": "replace", "path": "emails[type eq \"home\"].primary", "value": "True"}]),
        ScimType::InvalidValue,
    );
    assert_eq!(out["active"], false);
    assert_eq!(out["emails"][1]["primary"], true);
    assert_eq!(out["emails"][0]["primary"], false);
}

#[test]
fn dotted_keys_in_pathless_values_address_sub_attributes_urns_and_value_paths() {
    // Entra ID with aadOptscim062020.
    let out = rule_fires_and_strict_refuses(
        crate::compat::Rule::DottedKeys,
        &babs(),
        json!([{"op": "replace", "value": {
            "displayName": "Bjfe",
            "name.givenName": "Kkom",
            "emails[type eq \"work\"].value": "kkom@example.com",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq"
        }}]),
        ScimType::InvalidPath,
    );
    assert_eq!(out["displayName"], "Bjfe");
    assert_eq!(out["name"]["givenName"], "Kkom");
    assert_eq!(out["name"]["familyName"], "Jensen");
    assert_eq!(out["emails"][0]["value"], "kkom@example.com");
    assert_eq!(out["emails"][1]["value"], "babs@jensen.org");
    assert_eq!(out[ENTERPRISE_USER]["employeeNumber"], "Aklq");
}

#[test]
fn remove_with_value_removes_exactly_those_members_or_is_refused() {
    let g = tour_guides();
    let before = member_ids(&Value::Object(g.attrs.clone())).len();
    let out = rule_fires_and_strict_refuses(
        crate::compat::Rule::RemoveWithValue,
        &g,
        json!([{"op": "Remove", "path": "members", "value": [{"value": U1, "$ref": null}]}]),
        // Capitalized `Remove` is refused first by `op_case` when strict; with the defaults
        // minus this rule, the value is refused as syntax too.
        ScimType::InvalidSyntax,
    );
    let after = member_ids(&out);
    assert_eq!(after.len(), before - 1);
    assert!(!after.contains(&U1));
    // Never all: the strict refusal leaves the members untouched, and a remove without value
    // is still the RFC's "remove all".
    let (r, _) = parse_under(
        crate::compat::Rules::STRICT,
        ResourceKind::Group,
        json!([{"op": "remove", "path": "members", "value": [{"value": U1}]}]),
    );
    assert_eq!(r.unwrap_err().scim_type, Some(ScimType::InvalidSyntax));
}

#[test]
fn read_only_keys_in_pathless_values_are_ignored_or_refused() {
    // Okta's group rename resends the id.
    let g = tour_guides();
    let out = rule_fires_and_strict_refuses(
        crate::compat::Rule::ReadOnlyInPatch,
        &g,
        json!([{"op": "replace", "value": {"id": "r1", "displayName": "Test SCIMv2"}}]),
        ScimType::Mutability,
    );
    assert_eq!(out["displayName"], "Test SCIMv2");
    assert_eq!(member_ids(&out), member_ids(&Value::Object(g.attrs)));
}

#[test]
fn single_element_arrays_unwrap_entra_manager_patches() {
    let out = rule_fires_and_strict_refuses(
        crate::compat::Rule::SingleElementArrays,
        &babs(),
        json!([{"op": "add", "path": "manager",
                "value": [{"$ref": "http://h/scim/Users/m1", "value": "m1"}]}]),
        ScimType::InvalidValue,
    );
    assert_eq!(out[ENTERPRISE_USER]["manager"]["value"], "m1");
}

#[test]
fn lenient_schemas_skips_paths_and_keys_of_unhosted_schemas() {
    let custom = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
    let r = babs();
    let out = rule_fires_and_strict_refuses(
        crate::compat::Rule::LenientSchemas,
        &r,
        json!([{"op": "replace", "path": format!("{custom}:tag"), "value": "701984"},
               {"op": "replace", "value": {"nickName": "N", custom: {"tag": "x"}}}]),
        ScimType::InvalidPath,
    );
    let mut expected = r.attrs.clone();
    expected.insert("nickName".into(), json!("N"));
    assert_eq!(out, Value::Object(expected));
}

#[test]
fn urn_case_accepts_other_spellings_in_paths() {
    let out = rule_fires_and_strict_refuses(
        crate::compat::Rule::UrnCase,
        &babs(),
        json!([{"op": "replace",
                "path": "urn:ietf:params:scim:schemas:extension:Enterprise:2.0:User:department",
                "value": "Tours"}]),
        ScimType::InvalidPath,
    );
    assert_eq!(out[ENTERPRISE_USER]["department"], "Tours");
}

#[test]
fn unquoted_filter_values_in_paths_need_the_rule() {
    let out = rule_fires_and_strict_refuses(
        crate::compat::Rule::UnquotedFilterValues,
        &babs(),
        json!([{"op": "replace", "path": "emails[type eq work].value", "value": "w@x"}]),
        ScimType::InvalidFilter,
    );
    assert_eq!(out["emails"][0]["value"], "w@x");
}

#[test]
fn member_display_name_and_bare_strings_in_member_patches() {
    let g = group(json!({"displayName": "g"}));
    let out = rule_fires_and_strict_refuses(
        crate::compat::Rule::MemberDisplayName,
        &g,
        json!([{"op": "add", "path": "members", "value": [{"displayName": "new User", "value": U1}]}]),
        ScimType::InvalidSyntax,
    );
    assert_eq!(
        out["members"],
        json!([{"value": U1, "display": "new User"}])
    );
    let out = rule_fires_and_strict_refuses(
        crate::compat::Rule::BareStringValues,
        &g,
        json!([{"op": "add", "path": "members", "value": U2}]),
        ScimType::InvalidValue,
    );
    assert_eq!(out["members"], json!([{"value": U2}]));
}

#[test]
fn conforming_patches_fire_no_rule() {
    let (r, fired) = parse_under(
        crate::compat::Rules::ALL,
        ResourceKind::Group,
        json!([{"op": "add", "path": "members", "value": [{"value": U1}]},
               {"op": "remove", "path": format!("members[value eq \"{U2}\"]")},
               {"op": "replace", "value": {"displayName": "x"}}]),
    );
    assert!(r.is_ok());
    assert!(fired.is_empty(), "{fired:?}");
}

#[test]
fn urn_case_accepts_another_spelling_of_the_patch_op_urn() {
    use crate::compat::{Fired, Rule, Rules};
    let b = json!({"schemas": ["URN:IETF:PARAMS:SCIM:API:MESSAGES:2.0:PATCHOP"],
        "Operations": [{"op": "replace", "path": "nickName", "value": "n"}]});
    let fired = Fired::new();
    assert!(
        PatchRequest::parse_with(&b, registry(), ResourceKind::User, &Rules::DEFAULT, &fired)
            .is_ok()
    );
    assert!(fired.contains(Rule::UrnCase));
    let e = PatchRequest::parse_with(
        &b,
        registry(),
        ResourceKind::User,
        &Rules::STRICT,
        &Fired::new(),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
}
