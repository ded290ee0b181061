//! The built-in schemas: core User and Group, the EnterpriseUser extension (RFC 7643 §4, §8.7.1)
//! and the discovery schemas (RFC 7643 §5–7, §8.7.2; RFC 9865 §3 for `pagination`; RFC 9967 §4
//! for `securityEvents`).

use super::{AttrType, AttributeDef, Mutability, Returned, Schema, Uniqueness};
use std::sync::OnceLock;

/// The core User schema URN.
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema URN.
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The EnterpriseUser extension URN.
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The Schema discovery schema URN.
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
/// The ResourceType discovery schema URN.
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
/// The ServiceProviderConfig discovery schema URN.
pub const SERVICE_PROVIDER_CONFIG: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";

use AttrType::{Binary, Boolean, Complex, DateTime, Integer, Reference, String as Str};

fn a(name: &str, ty: AttrType) -> AttributeDef {
    AttributeDef::new(name, ty)
}

impl AttributeDef {
    fn desc(mut self, d: &str) -> Self {
        self.description = d.to_string();
        self
    }
    fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    fn read_only(self) -> Self {
        self.mutability(Mutability::ReadOnly)
    }
    fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    fn unique(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }
    fn canonical(mut self, values: &[&str]) -> Self {
        self.canonical_values = values.iter().map(|s| s.to_string()).collect();
        self
    }
    fn refs(mut self, types: &[&str]) -> Self {
        self.reference_types = types.iter().map(|s| s.to_string()).collect();
        self
    }
    fn subs(mut self, subs: Vec<AttributeDef>) -> Self {
        self.sub_attributes = subs;
        self
    }
}

/// A multi-valued complex attribute of the usual `value`/`display`/`type`/`primary` shape.
fn multi_complex(name: &str, desc: &str, value: AttributeDef, types: &[&str]) -> AttributeDef {
    a(name, Complex).multi().desc(desc).subs(vec![
        value,
        a("display", Str).desc("A human-readable name, primarily used for display purposes."),
        a("type", Str)
            .desc("A label indicating the attribute's function.")
            .canonical(types),
        a("primary", Boolean)
            .desc("A Boolean value indicating the 'primary' or preferred attribute value."),
    ])
}

pub(super) fn common() -> &'static [AttributeDef] {
    static COMMON: OnceLock<Vec<AttributeDef>> = OnceLock::new();
    COMMON.get_or_init(|| {
        vec![
            a("id", Str)
                .desc("A unique identifier for a SCIM resource as defined by the service provider.")
                .exact()
                .read_only()
                .returned(Returned::Always)
                .unique(Uniqueness::Server),
            a("externalId", Str)
                .desc("A String that is an identifier for the resource as defined by the provisioning client.")
                .exact(),
            a("meta", Complex).desc("Resource metadata.").read_only().subs(vec![
                a("resourceType", Str).desc("The name of the resource type of the resource.").exact().read_only(),
                a("created", DateTime).desc("The DateTime that the resource was added to the service provider.").read_only(),
                a("lastModified", DateTime).desc("The most recent DateTime that the details of this resource were updated at the service provider.").read_only(),
                a("location", Reference).desc("The URI of the resource being returned.").refs(&["uri"]).read_only(),
                a("version", Str).desc("The version of the resource being returned.").exact().read_only(),
            ]),
        ]
    })
}

/// The common attributes of a type that does not host `externalId` (a store that cannot keep
/// it): `id` and `meta`.
pub(super) fn common_without_external_id() -> &'static [AttributeDef] {
    static COMMON: OnceLock<Vec<AttributeDef>> = OnceLock::new();
    COMMON.get_or_init(|| {
        common()
            .iter()
            .filter(|a| a.name != "externalId")
            .cloned()
            .collect()
    })
}

pub(super) fn user_schema() -> Schema {
    let email_types = ["work", "home", "other"];
    Schema {
        id: USER.into(),
        name: "User".into(),
        description: "User Account".into(),
        attributes: vec![
            a("userName", Str)
                .desc("Unique identifier for the User, typically used by the user to directly authenticate to the service provider.")
                .required()
                .unique(Uniqueness::Server),
            a("name", Complex).desc("The components of the user's real name.").subs(vec![
                a("formatted", Str).desc("The full name, including all middle names, titles, and suffixes as appropriate, formatted for display."),
                a("familyName", Str).desc("The family name of the User, or last name."),
                a("givenName", Str).desc("The given name of the User, or first name."),
                a("middleName", Str).desc("The middle name(s) of the User."),
                a("honorificPrefix", Str).desc("The honorific prefix(es) of the User, or title in most Western languages."),
                a("honorificSuffix", Str).desc("The honorific suffix(es) of the User, or suffix in most Western languages."),
            ]),
            a("displayName", Str).desc("The name of the User, suitable for display to end-users."),
            a("nickName", Str).desc("The casual way to address the user in real life."),
            a("profileUrl", Reference).desc("A fully qualified URL pointing to a page representing the User's online profile.").refs(&["external"]),
            a("title", Str).desc("The user's title, such as \"Vice President.\""),
            a("userType", Str).desc("Used to identify the relationship between the organization and the user."),
            a("preferredLanguage", Str).desc("Indicates the User's preferred written or spoken language."),
            a("locale", Str).desc("Used to indicate the User's default location for purposes of localizing items."),
            a("timezone", Str).desc("The User's time zone in the 'Olson' time zone database format."),
            a("active", Boolean).desc("A Boolean value indicating the User's administrative status."),
            a("password", Str)
                .desc("The User's cleartext password. Never returned.")
                .mutability(Mutability::WriteOnly)
                .returned(Returned::Never),
            multi_complex("emails", "Email addresses for the user.",
                a("value", Str).desc("Email addresses for the user."), &email_types),
            multi_complex("phoneNumbers", "Phone numbers for the User.",
                a("value", Str).desc("Phone number of the User."),
                &["work", "home", "mobile", "fax", "pager", "other"]),
            multi_complex("ims", "Instant messaging addresses for the User.",
                a("value", Str).desc("Instant messaging address for the User."),
                &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
            multi_complex("photos", "URLs of photos of the User.",
                a("value", Reference).desc("URL of a photo of the User.").refs(&["external"]),
                &["photo", "thumbnail"]),
            a("addresses", Complex).multi().desc("A physical mailing address for this User.").subs(vec![
                a("formatted", Str).desc("The full mailing address, formatted for display or use with a mailing label."),
                a("streetAddress", Str).desc("The full street address component."),
                a("locality", Str).desc("The city or locality component."),
                a("region", Str).desc("The state or region component."),
                a("postalCode", Str).desc("The zip code or postal code component."),
                a("country", Str).desc("The country name component."),
                a("type", Str).desc("A label indicating the attribute's function.").canonical(&email_types),
                a("primary", Boolean).desc("A Boolean value indicating the 'primary' or preferred address."),
            ]),
            a("groups", Complex).multi().read_only()
                .desc("A list of groups to which the user belongs, either through direct membership or through nested groups.")
                .subs(vec![
                    a("value", Str).desc("The identifier of the User's group.").read_only(),
                    a("$ref", Reference).desc("The URI of the corresponding 'Group' resource.").refs(&["User", "Group"]).read_only(),
                    a("display", Str).desc("A human-readable name, primarily used for display purposes.").read_only(),
                    a("type", Str).desc("A label indicating the attribute's function.").canonical(&["direct", "indirect"]).read_only(),
                ]),
            multi_complex("entitlements", "A list of entitlements for the User.",
                a("value", Str).desc("The value of an entitlement."), &[]),
            multi_complex("roles", "A list of roles for the User.",
                a("value", Str).desc("The value of a role."), &[]),
            multi_complex("x509Certificates", "A list of certificates issued to the User.",
                a("value", Binary).desc("The value of an X.509 certificate."), &[]),
        ],
    }
}

pub(super) fn group_schema() -> Schema {
    Schema {
        id: GROUP.into(),
        name: "Group".into(),
        description: "Group".into(),
        attributes: vec![
            a("displayName", Str)
                .desc("A human-readable name for the Group.")
                .required(),
            a("members", Complex).multi().desc("A list of members of the Group.").subs(vec![
                a("value", Str).desc("Identifier of the member of this Group.").exact().mutability(Mutability::Immutable),
                a("$ref", Reference).desc("The URI corresponding to a SCIM resource that is a member of this Group.")
                    .refs(&["User", "Group"]).mutability(Mutability::Immutable),
                a("type", Str).desc("A label indicating the type of resource, e.g., 'User' or 'Group'.")
                    .canonical(&["User", "Group"]).mutability(Mutability::Immutable),
                a("display", Str).desc("A human-readable name for the member."),
            ]),
        ],
    }
}

pub(super) fn enterprise_user_schema() -> Schema {
    Schema {
        id: ENTERPRISE_USER.into(),
        name: "EnterpriseUser".into(),
        description: "Enterprise User".into(),
        attributes: vec![
            a("employeeNumber", Str).desc("Numeric or alphanumeric identifier assigned to a person, typically based on order of hire or association with an organization."),
            a("costCenter", Str).desc("Identifies the name of a cost center."),
            a("organization", Str).desc("Identifies the name of an organization."),
            a("division", Str).desc("Identifies the name of a division."),
            a("department", Str).desc("Identifies the name of a department."),
            a("manager", Complex).desc("The User's manager.").subs(vec![
                a("value", Str).desc("The id of the SCIM resource representing the User's manager.").required(),
                a("$ref", Reference).desc("The URI of the SCIM resource representing the User's manager.").refs(&["User"]),
                a("displayName", Str).desc("The displayName of the User's manager.").read_only(),
            ]),
        ],
    }
}

/// The discovery schemas (`ServiceProviderConfig`, `ResourceType`, `Schema`), served at
/// `/Schemas` after the resource schemas.
pub fn discovery_schemas() -> &'static [Schema] {
    static DISCOVERY: OnceLock<Vec<Schema>> = OnceLock::new();
    DISCOVERY.get_or_init(|| {
        let ro = |n: &str, t| a(n, t).read_only();
        let supported = |n: &str, d: &str, extra: Vec<AttributeDef>| {
            let mut subs = vec![ro("supported", Boolean).required()];
            subs.extend(extra);
            ro(n, Complex).desc(d).required().subs(subs)
        };
        vec![
            Schema {
                id: SERVICE_PROVIDER_CONFIG.into(),
                name: "Service Provider Configuration".into(),
                description: "Schema for representing the service provider's configuration".into(),
                attributes: vec![
                    ro("documentationUri", Reference).refs(&["external"]).desc("An HTTP-addressable URL pointing to the service provider's human-consumable help documentation."),
                    supported("patch", "A complex type that specifies PATCH configuration options.", vec![]),
                    supported("bulk", "A complex type that specifies bulk configuration options.", vec![
                        ro("maxOperations", Integer).required().desc("An integer value specifying the maximum number of operations."),
                        ro("maxPayloadSize", Integer).required().desc("An integer value specifying the maximum payload size in bytes."),
                    ]),
                    supported("filter", "A complex type that specifies FILTER options.", vec![
                        ro("maxResults", Integer).required().desc("An integer value specifying the maximum number of resources returned in a response."),
                    ]),
                    supported("changePassword", "A complex type that specifies configuration options related to changing a password.", vec![]),
                    supported("sort", "A complex type that specifies sort result options.", vec![]),
                    supported("etag", "A complex type that specifies ETag configuration options.", vec![]),
                    ro("pagination", Complex).desc("Pagination options (RFC 9865).").subs(vec![
                        ro("cursor", Boolean).desc("Whether cursor-based pagination is supported."),
                        ro("index", Boolean).desc("Whether index-based pagination is supported."),
                        ro("defaultPaginationMethod", Str).canonical(&["cursor", "index"]).desc("The pagination method used when a client does not choose one."),
                        ro("defaultPageSize", Integer).desc("The page size used when a client gives no count."),
                        ro("maxPageSize", Integer).desc("The largest page size the service provider returns."),
                        ro("cursorTimeout", Integer).desc("Seconds a cursor stays valid."),
                    ]),
                    ro("securityEvents", Complex).desc("Security Event capabilities (RFC 9967); absent when the service provider emits no events.").subs(vec![
                        ro("asyncRequest", Str).canonical(&["none", "long", "request"]).desc("Whether requests may complete asynchronously: none, long (at the server's discretion) or request (when the client asks)."),
                        ro("eventUris", Str).multi().desc("The SET event URIs the service provider can generate and deliver."),
                    ]),
                    ro("authenticationSchemes", Complex).multi().required().desc("A multi-valued complex type that specifies supported authentication scheme properties.").subs(vec![
                        ro("type", Str).required().canonical(&["oauth", "oauth2", "oauthbearertoken", "httpbasic", "httpdigest"]).desc("The authentication scheme."),
                        ro("name", Str).required().desc("The common authentication scheme name."),
                        ro("description", Str).required().desc("A description of the authentication scheme."),
                        ro("specUri", Reference).refs(&["external"]).desc("An HTTP-addressable URL pointing to the authentication scheme's specification."),
                        ro("documentationUri", Reference).refs(&["external"]).desc("An HTTP-addressable URL pointing to the authentication scheme's usage documentation."),
                        ro("primary", Boolean).desc("Whether this is the preferred authentication scheme."),
                    ]),
                ],
            },
            Schema {
                id: RESOURCE_TYPE_SCHEMA.into(),
                name: "ResourceType".into(),
                description: "Specifies the schema that describes a SCIM resource type".into(),
                attributes: vec![
                    ro("id", Str).desc("The resource type's server unique id."),
                    ro("name", Str).required().desc("The resource type name."),
                    ro("description", Str).desc("The resource type's human-readable description."),
                    ro("endpoint", Reference).required().refs(&["uri"]).desc("The resource type's HTTP-addressable endpoint relative to the Base URL."),
                    ro("schema", Reference).required().exact().refs(&["uri"]).desc("The resource type's primary/base schema URI."),
                    ro("schemaExtensions", Complex).multi().desc("A list of URIs of the resource type's schema extensions.").subs(vec![
                        ro("schema", Reference).required().exact().refs(&["uri"]).desc("The URI of a schema extension."),
                        ro("required", Boolean).required().desc("Whether resources of this type must include this extension."),
                    ]),
                ],
            },
            Schema {
                id: SCHEMA_SCHEMA.into(),
                name: "Schema".into(),
                description: "Specifies the schema attribute".into(),
                attributes: vec![
                    ro("id", Str).required().desc("The unique URI of the schema."),
                    ro("name", Str).desc("The schema's human-readable name."),
                    ro("description", Str).desc("The schema's human-readable description."),
                    ro("attributes", Complex).multi().required().desc("A complex attribute that includes the attributes of a schema.").subs(
                        ["name", "type", "description", "mutability", "returned", "uniqueness"]
                            .into_iter()
                            .map(|n| ro(n, Str))
                            .chain(["multiValued", "required", "caseExact"].into_iter().map(|n| ro(n, Boolean)))
                            .chain(["canonicalValues", "referenceTypes"].into_iter().map(|n| ro(n, Str).multi()))
                            .chain([ro("subAttributes", Complex).multi().desc("Sub-attributes, described like attributes.")])
                            .collect(),
                    ),
                ],
            },
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_provider_config_defines_security_events_of_rfc_9967() {
        let spc = discovery_schemas()
            .iter()
            .find(|s| s.id == SERVICE_PROVIDER_CONFIG)
            .unwrap_or_else(|| panic!("no ServiceProviderConfig schema"));
        let attr = spc
            .attributes
            .iter()
            .find(|a| a.name == "securityEvents")
            .unwrap_or_else(|| panic!("no securityEvents"));
        assert!(!attr.required, "absent when no events are emitted");
        assert_eq!(attr.mutability, Mutability::ReadOnly);
        let subs: Vec<(&str, bool)> = attr
            .sub_attributes
            .iter()
            .map(|a| (a.name.as_str(), a.multi_valued))
            .collect();
        assert_eq!(subs, [("asyncRequest", false), ("eventUris", true)]);
        assert_eq!(
            attr.sub_attributes[0].canonical_values,
            ["none", "long", "request"]
        );
    }
}
