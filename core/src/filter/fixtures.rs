//! Shared test data for the filter tests: a registry with a custom extension covering every
//! attribute type, and realistic users and groups.

use crate::resource::{Meta, Resource, Version, parse_time};
use crate::schema::{ResourceKind, ResourceTypeDef, Schema, SchemaRegistry};
use serde_json::{Map, Value, json};

/// The custom extension's URN (note the dotted version, like the RFC URNs).
pub const ACME: &str = "urn:example:params:scim:schemas:extension:acme:2.0:User";

/// The built-in registry plus the Acme extension on User: one attribute of every type.
pub fn registry() -> SchemaRegistry {
    let ext = json!({
        "id": ACME,
        "name": "AcmeUser",
        "attributes": [
            {"name": "badgeNumber", "type": "integer"},
            {"name": "salary", "type": "decimal"},
            {"name": "hired", "type": "dateTime"},
            {"name": "photoHash", "type": "binary"},
            {"name": "code", "type": "string", "caseExact": true},
            {"name": "tags", "type": "string", "multiValued": true},
            {"name": "homePage", "type": "reference", "referenceTypes": ["external"]},
            {"name": "contractor", "type": "boolean"},
            {"name": "sites", "type": "complex", "multiValued": true, "subAttributes": [
                {"name": "code", "type": "string", "caseExact": true},
                {"name": "floor", "type": "integer"},
                {"name": "opened", "type": "dateTime"}
            ]}
        ]
    });
    let mut reg = SchemaRegistry::new();
    let schema = Schema::from_json(&ext).expect("the Acme schema is valid");
    reg.add_extension(ResourceKind::User, schema, false)
        .expect("the Acme URN is free");
    reg
}

/// The User resource type of `reg`.
pub fn users(reg: &SchemaRegistry) -> &ResourceTypeDef {
    reg.resource_type(ResourceKind::User)
}

/// The Group resource type of `reg`.
pub fn groups(reg: &SchemaRegistry) -> &ResourceTypeDef {
    reg.resource_type(ResourceKind::Group)
}

/// A resource from canonical attributes.
pub fn resource(
    kind: ResourceKind,
    id: &str,
    created: &str,
    version: u64,
    attrs: Value,
) -> Resource {
    let created = parse_time(created).expect("test timestamps are RFC 3339");
    let attrs: Map<String, Value> = match attrs {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    Resource {
        id: id.to_string(),
        kind,
        meta: Meta {
            created,
            last_modified: created + time::Duration::days(1),
            version: Version(version),
        },
        attrs,
    }
}

/// Barbara Jensen, the RFC 7643 §8.2 user, with enterprise and Acme extension data.
pub fn bjensen() -> Resource {
    resource(
        ResourceKind::User,
        "2819c223-7f76-453a-919d-413861904646",
        "2010-01-23T04:56:22Z",
        3,
        json!({
            "externalId": "BJensen-Ext",
            "userName": "bjensen@example.com",
            "name": {
                "formatted": "Ms. Barbara J Jensen III",
                "familyName": "Jensen",
                "givenName": "Barbara"
            },
            "displayName": "Babs Jensen",
            "nickName": "Babs",
            "profileUrl": "https://login.example.com/bjensen",
            "title": "Tour Guide",
            "userType": "Employee",
            "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "phoneNumbers": [{"value": "555-555-8377", "type": "work"}],
            "ims": [{"value": "babs@jabber.example.org", "type": "xmpp"}],
            "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQA="}],
            "groups": [{"value": "e9e30dba-f08f-4109-8486-d5c6a331660a", "display": "Tour Guides"}],
            crate::schema::ENTERPRISE_USER: {
                "employeeNumber": "701984",
                "costCenter": "4130",
                "department": "Tour Operations",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
            },
            ACME: {
                "badgeNumber": 42,
                "salary": 1234.5,
                "hired": "2015-06-01T09:00:00+02:00",
                "photoHash": "q83vEjRWeJA=",
                "code": "AbC-1",
                "tags": ["Onboarding", "Zoë", "night-shift"],
                "homePage": "https://Example.com/Babs",
                "contractor": false,
                "sites": [
                    {"code": "HQ", "floor": 3, "opened": "2001-01-01T00:00:00Z"},
                    {"code": "lab", "floor": 12, "opened": "2019-03-01T00:00:00Z"}
                ]
            }
        }),
    )
}

/// A sparse user: only a userName, an empty title and empty lists.
pub fn sparse() -> Resource {
    resource(
        ResourceKind::User,
        "b1d1a8b8-0000-4000-8000-000000000001",
        "2020-02-29T12:00:00.5Z",
        1,
        json!({
            "userName": "ÉMILE.Zoë",
            "title": "",
            "emails": [],
            "name": {},
            "phoneNumbers": [{"value": "", "type": null}],
            "active": false
        }),
    )
}

/// The "Tour Guides" group with a user and a nested group as members.
pub fn tour_guides() -> Resource {
    resource(
        ResourceKind::Group,
        "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "2010-01-23T04:56:22Z",
        7,
        json!({
            "displayName": "Tour Guides",
            "members": [
                {"value": "2819c223-7f76-453a-919d-413861904646", "type": "User", "display": "Babs Jensen"},
                {"value": "902c246b-6245-4190-8e05-00816be7344a", "type": "Group", "display": "Mandy Pepperidge"}
            ]
        }),
    )
}
