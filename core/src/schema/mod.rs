//! The schema model (RFC 7643 §2, §7): attribute characteristics, schemas, resource types and
//! the per-source registry that resolves attribute paths case-insensitively.
//!
//! `/Schemas` and `/ResourceTypes` are rendered from this model ([`Schema::to_json`],
//! [`ResourceTypeDef::to_json`]); custom extension schemas are read from JSON with
//! [`Schema::from_json`] and added with [`SchemaRegistry::add_extension`]. A store that cannot
//! hold every attribute serves a registry [narrowed](SchemaRegistry::narrowed) to what it can.

mod builtin;

pub use builtin::{
    ENTERPRISE_USER, GROUP, RESOURCE_TYPE_SCHEMA, SCHEMA_SCHEMA, SERVICE_PROVIDER_CONFIG, USER,
    discovery_schemas,
};

use crate::error::ScimError;
use crate::path::AttrPath;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The data type of an attribute (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttrType {
    /// A sequence of characters.
    String,
    /// `true` or `false`.
    Boolean,
    /// A real number.
    Decimal,
    /// A whole number.
    Integer,
    /// An `xsd:dateTime` (RFC 3339) instant; compared as time, not as text.
    DateTime,
    /// Base64-encoded bytes; always case-exact.
    Binary,
    /// A URI of a resource; always case-exact.
    Reference,
    /// A set of sub-attributes.
    Complex,
}

impl AttrType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

/// Whether and how an attribute may be modified (RFC 7643 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    /// Set by the service provider; client input is ignored.
    ReadOnly,
    /// May be updated and read at any time.
    #[default]
    ReadWrite,
    /// May be set once (on create, or when it has no value); a change afterwards is an error.
    Immutable,
    /// May be set but is never returned (e.g. `password`).
    WriteOnly,
}

/// When an attribute is returned in a response (RFC 7643 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    /// Always returned, whatever `attributes`/`excludedAttributes` say.
    Always,
    /// Never returned.
    Never,
    /// Returned unless excluded, or unless `attributes` names other attributes.
    #[default]
    Default,
    /// Returned only when named in `attributes`.
    Request,
}

/// How unique an attribute's value must be (RFC 7643 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Uniqueness {
    /// No uniqueness.
    #[default]
    None,
    /// Unique within the service provider's current set of resources (here: per source).
    Server,
    /// Globally unique.
    Global,
}

/// One attribute definition with every characteristic of RFC 7643 §2.2 and §7.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeDef {
    /// The attribute's name, in its canonical spelling.
    pub name: String,
    /// The data type.
    #[serde(rename = "type")]
    pub attr_type: AttrType,
    /// Whether the attribute holds a list of values.
    #[serde(default)]
    pub multi_valued: bool,
    /// Human-readable description.
    #[serde(default)]
    pub description: String,
    /// Whether a value is required on create and replace.
    #[serde(default)]
    pub required: bool,
    /// Whether string comparison respects case.
    #[serde(default)]
    pub case_exact: bool,
    /// Mutability characteristic.
    #[serde(default)]
    pub mutability: Mutability,
    /// Returned characteristic.
    #[serde(default)]
    pub returned: Returned,
    /// Uniqueness characteristic.
    #[serde(default)]
    pub uniqueness: Uniqueness,
    /// Suggested values (e.g. `work`, `home`); advisory, never enforced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canonical_values: Vec<String>,
    /// For references: the resource types that may be referenced (`User`, `Group`, `external`, `uri`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_types: Vec<String>,
    /// For complex attributes: the sub-attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_attributes: Vec<AttributeDef>,
}

impl AttributeDef {
    /// A single-valued, optional, readWrite attribute of the given type with RFC defaults.
    pub fn new(name: &str, attr_type: AttrType) -> Self {
        AttributeDef {
            name: name.to_string(),
            attr_type,
            multi_valued: false,
            description: String::new(),
            required: false,
            case_exact: matches!(attr_type, AttrType::Binary | AttrType::Reference),
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: Vec::new(),
            reference_types: Vec::new(),
            sub_attributes: Vec::new(),
        }
    }

    /// Looks up a sub-attribute by name, case-insensitively.
    pub fn sub_attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The JSON representation used by `/Schemas` (RFC 7643 §7).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("type".into(), json!(self.attr_type.as_str()));
        m.insert("multiValued".into(), json!(self.multi_valued));
        m.insert("description".into(), json!(self.description));
        m.insert("required".into(), json!(self.required));
        if !self.canonical_values.is_empty() {
            m.insert("canonicalValues".into(), json!(self.canonical_values));
        }
        if self.attr_type != AttrType::Complex {
            m.insert("caseExact".into(), json!(self.case_exact));
        }
        m.insert(
            "mutability".into(),
            serde_json::to_value(self.mutability).unwrap_or(Value::Null),
        );
        m.insert(
            "returned".into(),
            serde_json::to_value(self.returned).unwrap_or(Value::Null),
        );
        if self.attr_type != AttrType::Complex {
            m.insert(
                "uniqueness".into(),
                serde_json::to_value(self.uniqueness).unwrap_or(Value::Null),
            );
        }
        if !self.reference_types.is_empty() {
            m.insert("referenceTypes".into(), json!(self.reference_types));
        }
        if !self.sub_attributes.is_empty() {
            m.insert(
                "subAttributes".into(),
                Value::Array(
                    self.sub_attributes
                        .iter()
                        .map(AttributeDef::to_json)
                        .collect(),
                ),
            );
        }
        Value::Object(m)
    }
}

/// A schema: a URN and its attributes (RFC 7643 §7).
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// The schema URN, e.g. `urn:ietf:params:scim:schemas:core:2.0:User`.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Human-readable description.
    pub description: String,
    /// Top-level attributes.
    pub attributes: Vec<AttributeDef>,
}

impl Schema {
    /// Looks up a top-level attribute by name, case-insensitively.
    pub fn attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The `/Schemas/{id}` representation. `location` is the absolute base URL of the source
    /// (e.g. `https://host/scim/default/v2`), or empty for relative locations.
    pub fn to_json(&self, location: &str) -> Value {
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self.attributes.iter().map(AttributeDef::to_json).collect::<Vec<_>>(),
            "meta": {
                "resourceType": "Schema",
                "location": format!("{location}/Schemas/{}", self.id),
            }
        })
    }

    /// Reads a schema from its RFC 7643 §7 JSON representation (as `/Schemas` returns it),
    /// e.g. a custom extension supplied by an operator. Missing characteristics take the RFC
    /// defaults; unknown keys are ignored.
    pub fn from_json(value: &Value) -> Result<Schema, ScimError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("a schema must be a JSON object"))?;
        let id = obj
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| s.to_ascii_lowercase().starts_with("urn:"))
            .ok_or_else(|| ScimError::invalid_syntax("a schema needs an \"id\" that is a URN"))?
            .to_string();
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let description = obj
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let attributes: Vec<AttributeDef> = match obj.get("attributes") {
            Some(a) => serde_json::from_value(a.clone()).map_err(|e| {
                ScimError::invalid_syntax(format!("schema {id}: invalid attributes: {e}"))
            })?,
            None => Vec::new(),
        };
        check_names(&id, &attributes, 0)?;
        Ok(Schema {
            id,
            name,
            description,
            attributes,
        })
    }
}

fn check_names(schema: &str, attrs: &[AttributeDef], depth: usize) -> Result<(), ScimError> {
    for (i, a) in attrs.iter().enumerate() {
        let valid = a
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && a.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$');
        if !valid {
            return Err(ScimError::invalid_syntax(format!(
                "schema {schema}: invalid attribute name {:?}",
                a.name
            )));
        }
        if attrs[..i]
            .iter()
            .any(|b| b.name.eq_ignore_ascii_case(&a.name))
        {
            return Err(ScimError::invalid_syntax(format!(
                "schema {schema}: duplicate attribute {}",
                a.name
            )));
        }
        if depth > 0 && !a.sub_attributes.is_empty() {
            return Err(ScimError::invalid_syntax(format!(
                "schema {schema}: sub-attribute {} cannot have sub-attributes",
                a.name
            )));
        }
        if a.attr_type == AttrType::Complex && a.sub_attributes.is_empty() {
            return Err(ScimError::invalid_syntax(format!(
                "schema {schema}: complex attribute {} needs subAttributes",
                a.name
            )));
        }
        check_names(schema, &a.sub_attributes, depth + 1)?;
    }
    Ok(())
}

/// The two resource types scimd serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceKind {
    /// `urn:ietf:params:scim:schemas:core:2.0:User` at `/Users`.
    User,
    /// `urn:ietf:params:scim:schemas:core:2.0:Group` at `/Groups`.
    Group,
}

impl ResourceKind {
    /// Both kinds, in a stable order.
    pub const ALL: [ResourceKind; 2] = [ResourceKind::User, ResourceKind::Group];

    /// The resource type name (`User`, `Group`), also `meta.resourceType`.
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
        }
    }
    /// The endpoint path segment (`Users`, `Groups`).
    pub fn endpoint(self) -> &'static str {
        match self {
            ResourceKind::User => "Users",
            ResourceKind::Group => "Groups",
        }
    }
    /// The core schema URN.
    pub fn core_schema(self) -> &'static str {
        match self {
            ResourceKind::User => USER,
            ResourceKind::Group => GROUP,
        }
    }
    /// Parses a resource type name or endpoint, case-insensitively.
    pub fn parse(s: &str) -> Option<ResourceKind> {
        let s = s.trim_start_matches('/');
        ResourceKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s) || k.endpoint().eq_ignore_ascii_case(s))
    }
}

/// A schema extension of a resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct Extension {
    /// The extension schema.
    pub schema: Arc<Schema>,
    /// Whether every resource of the type must carry it.
    pub required: bool,
}

/// A resource type (RFC 7643 §6): its core schema, its extensions and the common attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceTypeDef {
    /// Which resource type this is.
    pub kind: ResourceKind,
    /// Human-readable description.
    pub description: String,
    /// The core schema.
    pub schema: Arc<Schema>,
    /// Extension schemas, in registration order.
    pub extensions: Vec<Extension>,
    /// Whether the type hosts the common attribute `externalId` (`id` and `meta` it always
    /// hosts). `false` only in a registry [narrowed](SchemaRegistry::narrowed) to a store that
    /// cannot keep it.
    pub external_id: bool,
}

impl ResourceTypeDef {
    /// The `/ResourceTypes/{name}` representation.
    pub fn to_json(&self, location: &str) -> Value {
        let name = self.kind.name();
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": name,
            "name": name,
            "endpoint": format!("/{}", self.kind.endpoint()),
            "description": self.description,
            "schema": self.schema.id,
            "schemaExtensions": self.extensions.iter().map(|e| json!({
                "schema": e.schema.id,
                "required": e.required,
            })).collect::<Vec<_>>(),
            "meta": {
                "resourceType": "ResourceType",
                "location": format!("{location}/ResourceTypes/{name}"),
            }
        })
    }

    /// The common attributes (RFC 7643 §3.1) this type hosts: `id`, `externalId` (unless
    /// narrowed away) and `meta`.
    pub fn common_attributes(&self) -> &'static [AttributeDef] {
        if self.external_id {
            common_attributes()
        } else {
            builtin::common_without_external_id()
        }
    }

    /// Looks up a common attribute this type hosts, case-insensitively.
    pub fn common_attribute(&self, name: &str) -> Option<&'static AttributeDef> {
        self.common_attributes()
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Finds an extension by URN, case-insensitively.
    pub fn extension(&self, urn: &str) -> Option<&Extension> {
        self.extensions
            .iter()
            .find(|e| e.schema.id.eq_ignore_ascii_case(urn))
    }

    /// Finds the core schema or an extension by URN, case-insensitively.
    pub fn schema_by_urn(&self, urn: &str) -> Option<&Arc<Schema>> {
        if self.schema.id.eq_ignore_ascii_case(urn) {
            Some(&self.schema)
        } else {
            self.extension(urn).map(|e| &e.schema)
        }
    }

    /// Every schema URN of this type: core first, then extensions.
    pub fn schema_urns(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.schema.id.as_str())
            .chain(self.extensions.iter().map(|e| e.schema.id.as_str()))
    }

    /// Resolves a path to its attribute definition.
    ///
    /// Resolution is case-insensitive. A path without URN is looked up among the common
    /// attributes the type hosts (`id`, `externalId`, `meta`), then the core schema, then — as RFC 7644 §3.10
    /// allows for unambiguous names — the extensions. A URN path must name the core schema or a
    /// registered extension.
    pub fn resolve(&self, path: &AttrPath) -> Option<Resolved<'_>> {
        let (schema, attr) = match &path.urn {
            Some(urn) => {
                let schema = self.schema_by_urn(urn)?;
                let attr = if schema.id == self.schema.id {
                    self.common_attribute(&path.name)
                        .or_else(|| schema.attribute(&path.name))?
                } else {
                    schema.attribute(&path.name)?
                };
                (schema, attr)
            }
            None => {
                if let Some(a) = self.common_attribute(&path.name) {
                    (&self.schema, a)
                } else if let Some(a) = self.schema.attribute(&path.name) {
                    (&self.schema, a)
                } else {
                    self.extensions
                        .iter()
                        .find_map(|e| e.schema.attribute(&path.name).map(|a| (&e.schema, a)))?
                }
            }
        };
        let sub = match &path.sub {
            Some(s) => Some(attr.sub_attribute(s)?),
            None => None,
        };
        Some(Resolved {
            schema: &schema.id,
            is_core: schema.id == self.schema.id,
            attr,
            sub,
        })
    }
}

/// A path resolved against a resource type.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    /// The URN of the schema that defines the attribute.
    pub schema: &'a str,
    /// Whether that schema is the core schema (attribute stored at the top level) or an
    /// extension (stored under its URN).
    pub is_core: bool,
    /// The top-level attribute.
    pub attr: &'a AttributeDef,
    /// The sub-attribute, when the path named one.
    pub sub: Option<&'a AttributeDef>,
}

impl Resolved<'_> {
    /// The definition the path finally designates (the sub-attribute when there is one).
    pub fn target(&self) -> &AttributeDef {
        self.sub.unwrap_or(self.attr)
    }

    /// The canonical path (canonical spelling; URN kept only for extension attributes).
    pub fn canonical_path(&self) -> AttrPath {
        AttrPath {
            urn: (!self.is_core).then(|| self.schema.to_string()),
            name: self.attr.name.clone(),
            sub: self.sub.map(|s| s.name.clone()),
        }
    }
}

/// The common attributes every resource has (RFC 7643 §3.1), not part of any schema's
/// `/Schemas` representation.
pub fn common_attributes() -> &'static [AttributeDef] {
    builtin::common()
}

/// Looks up a common attribute (`id`, `externalId`, `meta`) case-insensitively.
pub fn common_attribute(name: &str) -> Option<&'static AttributeDef> {
    common_attributes()
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
}

/// The schemas and resource types of one source. Cheap to clone (shared definitions).
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaRegistry {
    user: ResourceTypeDef,
    group: ResourceTypeDef,
}

impl Default for SchemaRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl SchemaRegistry {
    /// The built-in registry: core User with the EnterpriseUser extension, and core Group.
    pub fn new() -> Self {
        SchemaRegistry {
            user: ResourceTypeDef {
                kind: ResourceKind::User,
                description: "User Account".into(),
                schema: Arc::new(builtin::user_schema()),
                extensions: vec![Extension {
                    schema: Arc::new(builtin::enterprise_user_schema()),
                    required: false,
                }],
                external_id: true,
            },
            group: ResourceTypeDef {
                kind: ResourceKind::Group,
                description: "Group".into(),
                schema: Arc::new(builtin::group_schema()),
                extensions: Vec::new(),
                external_id: true,
            },
        }
    }

    /// The definition of a resource type.
    pub fn resource_type(&self, kind: ResourceKind) -> &ResourceTypeDef {
        match kind {
            ResourceKind::User => &self.user,
            ResourceKind::Group => &self.group,
        }
    }

    /// Adds a custom extension schema to a resource type. Fails when the URN is already used
    /// by a schema of this registry.
    pub fn add_extension(
        &mut self,
        kind: ResourceKind,
        schema: Schema,
        required: bool,
    ) -> Result<(), ScimError> {
        if self.schema(&schema.id).is_some() {
            return Err(ScimError::invalid_syntax(format!(
                "schema {} is already registered",
                schema.id
            )));
        }
        let rt = match kind {
            ResourceKind::User => &mut self.user,
            ResourceKind::Group => &mut self.group,
        };
        rt.extensions.push(Extension {
            schema: Arc::new(schema),
            required,
        });
        Ok(())
    }

    /// Every schema served at `/Schemas`: the resource schemas and their extensions.
    pub fn schemas(&self) -> Vec<&Arc<Schema>> {
        let mut out = vec![&self.user.schema, &self.group.schema];
        out.extend(self.user.extensions.iter().map(|e| &e.schema));
        out.extend(self.group.extensions.iter().map(|e| &e.schema));
        out
    }

    /// Finds a schema by URN, case-insensitively.
    pub fn schema(&self, urn: &str) -> Option<&Arc<Schema>> {
        self.schemas()
            .into_iter()
            .find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// A copy in which resource type `kind` hosts only the attributes `keep` names — what a
    /// store that cannot hold everything (an LDAP directory without lossless mode) can keep.
    /// `/Schemas` and `/ResourceTypes` rendered from it list exactly that, and bodies, PATCH
    /// paths and filters naming anything else are refused as unknown attributes.
    ///
    /// A path naming an attribute (`name`, `members`) keeps it whole; a path naming a
    /// sub-attribute (`name.givenName`) keeps its parent with the named sub-attributes only,
    /// in schema order. `id` and `meta` are always kept, `externalId` only when named. The core
    /// schema is always kept, an extension only when one of its attributes is. Every
    /// characteristic of a kept attribute is unchanged, and the other resource type is left as
    /// it is. Fails when a path names nothing in this registry.
    pub fn narrowed(&self, kind: ResourceKind, keep: &[AttrPath]) -> Result<Self, ScimError> {
        let rt = self.resource_type(kind);
        // (schema URN, attribute, sub-attribute), canonical spellings; no sub = the whole one.
        let mut kept: BTreeSet<(&str, &str, Option<&str>)> = BTreeSet::new();
        let mut external_id = false;
        for path in keep {
            let r = rt.resolve(path).ok_or_else(|| {
                ScimError::invalid_syntax(format!(
                    "{}: cannot keep {path}: no such attribute",
                    kind.name()
                ))
            })?;
            if r.is_core && rt.common_attribute(&r.attr.name).is_some() {
                external_id |= r.attr.name == "externalId";
                continue;
            }
            kept.insert((r.schema, &r.attr.name, r.sub.map(|s| s.name.as_str())));
        }
        let narrow = |schema: &Schema| -> Schema {
            let attributes = schema
                .attributes
                .iter()
                .filter_map(|a| {
                    if kept.contains(&(schema.id.as_str(), a.name.as_str(), None)) {
                        return Some(a.clone());
                    }
                    let subs: Vec<AttributeDef> = a
                        .sub_attributes
                        .iter()
                        .filter(|s| {
                            kept.contains(&(
                                schema.id.as_str(),
                                a.name.as_str(),
                                Some(s.name.as_str()),
                            ))
                        })
                        .cloned()
                        .collect();
                    (!subs.is_empty()).then(|| AttributeDef {
                        sub_attributes: subs,
                        ..a.clone()
                    })
                })
                .collect();
            Schema {
                id: schema.id.clone(),
                name: schema.name.clone(),
                description: schema.description.clone(),
                attributes,
            }
        };
        let narrowed = ResourceTypeDef {
            kind,
            description: rt.description.clone(),
            schema: Arc::new(narrow(&rt.schema)),
            extensions: rt
                .extensions
                .iter()
                .map(|e| Extension {
                    schema: Arc::new(narrow(&e.schema)),
                    required: e.required,
                })
                .filter(|e| !e.schema.attributes.is_empty())
                .collect(),
            external_id: rt.external_id && external_id,
        };
        let mut out = self.clone();
        match kind {
            ResourceKind::User => out.user = narrowed,
            ResourceKind::Group => out.group = narrowed,
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_case_insensitively_to_canonical_spelling() {
        let reg = SchemaRegistry::new();
        let user = reg.resource_type(ResourceKind::User);
        let r = user.resolve(&AttrPath::parse("USERNAME").unwrap()).unwrap();
        assert_eq!(r.attr.name, "userName");
        let r = user
            .resolve(&AttrPath::parse("Name.GivenName").unwrap())
            .unwrap();
        assert_eq!(r.canonical_path().to_string(), "name.givenName");
    }

    #[test]
    fn resolves_urn_qualified_core_and_extension_paths() {
        let reg = SchemaRegistry::new();
        let user = reg.resource_type(ResourceKind::User);
        let r = user
            .resolve(
                &AttrPath::parse("urn:ietf:params:scim:schemas:core:2.0:User:userName").unwrap(),
            )
            .unwrap();
        assert!(r.is_core);
        assert_eq!(r.canonical_path().to_string(), "userName");
        let p = AttrPath::parse(
            "URN:ietf:params:scim:schemas:extension:enterprise:2.0:User:Manager.Value",
        )
        .unwrap();
        let r = user.resolve(&p).unwrap();
        assert!(!r.is_core);
        assert_eq!(
            r.canonical_path().to_string(),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
        );
        // An unambiguous extension attribute resolves without its URN.
        let r = user
            .resolve(&AttrPath::parse("employeeNumber").unwrap())
            .unwrap();
        assert_eq!(r.schema, ENTERPRISE_USER);
    }

    #[test]
    fn common_attributes_resolve_on_every_type() {
        let reg = SchemaRegistry::new();
        for kind in ResourceKind::ALL {
            let rt = reg.resource_type(kind);
            for p in ["id", "externalId", "meta.lastModified", "META.CREATED"] {
                assert!(
                    rt.resolve(&AttrPath::parse(p).unwrap()).is_some(),
                    "{p} on {kind:?}"
                );
            }
        }
    }

    #[test]
    fn unknown_attributes_do_not_resolve() {
        let reg = SchemaRegistry::new();
        let user = reg.resource_type(ResourceKind::User);
        assert!(
            user.resolve(&AttrPath::parse("nickname.foo").unwrap())
                .is_none()
        );
        assert!(user.resolve(&AttrPath::parse("bogus").unwrap()).is_none());
        assert!(
            user.resolve(&AttrPath::parse("urn:example:unknown:1.0:User:x").unwrap())
                .is_none()
        );
    }

    #[test]
    fn custom_extension_round_trips_through_json() {
        let ext = json!({
            "id": "urn:example:params:scim:schemas:extension:acme:2.0:User",
            "name": "AcmeUser",
            "attributes": [
                {"name": "badgeNumber", "type": "integer", "uniqueness": "server"},
                {"name": "sites", "type": "complex", "multiValued": true, "subAttributes": [
                    {"name": "code", "type": "string", "caseExact": true}
                ]}
            ]
        });
        let schema = Schema::from_json(&ext).unwrap();
        let mut reg = SchemaRegistry::new();
        reg.add_extension(ResourceKind::User, schema.clone(), false)
            .unwrap();
        let rendered = reg.schema(&schema.id).unwrap().to_json("");
        assert_eq!(Schema::from_json(&rendered).unwrap(), schema);
        let user = reg.resource_type(ResourceKind::User);
        let r = user
            .resolve(&AttrPath::parse("sites.CODE").unwrap())
            .unwrap();
        assert!(r.target().case_exact);
        assert!(
            reg.add_extension(ResourceKind::User, schema, false)
                .is_err()
        );
    }

    #[test]
    fn malformed_custom_schemas_are_rejected() {
        for bad in [
            json!({"name": "x"}),
            json!({"id": "not-a-urn"}),
            json!({"id": "urn:x:y", "attributes": [{"name": "a b", "type": "string"}]}),
            json!({"id": "urn:x:y", "attributes": [{"name": "a", "type": "strung"}]}),
            json!({"id": "urn:x:y", "attributes": [{"name": "a", "type": "complex"}]}),
            json!({"id": "urn:x:y", "attributes": [
                {"name": "a", "type": "string"}, {"name": "A", "type": "string"}]}),
        ] {
            assert!(Schema::from_json(&bad).is_err(), "{bad}");
        }
    }

    fn paths(list: &[&str]) -> Vec<AttrPath> {
        list.iter().map(|p| AttrPath::parse(p).unwrap()).collect()
    }

    fn names(schema: &Schema) -> Vec<&str> {
        schema.attributes.iter().map(|a| a.name.as_str()).collect()
    }

    #[test]
    fn narrowing_keeps_named_attributes_and_only_the_named_sub_attributes() {
        let reg = SchemaRegistry::new();
        let narrowed = reg
            .narrowed(
                ResourceKind::User,
                &paths(&[
                    "userName",
                    "EMAILS.value",
                    "emails.type",
                    "name.givenName",
                    "name.familyName",
                    "groups",
                    "active",
                ]),
            )
            .unwrap();
        let user = narrowed.schema(USER).unwrap();
        // Schema order, not the order of the paths.
        assert_eq!(
            names(user),
            ["userName", "name", "active", "emails", "groups"]
        );
        let name = user.attribute("name").unwrap();
        let subs: Vec<&str> = name
            .sub_attributes
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(subs, ["familyName", "givenName"]);
        let emails = user.attribute("emails").unwrap();
        assert!(emails.multi_valued);
        assert_eq!(emails.sub_attributes.len(), 2);
        // A whole attribute keeps every sub-attribute and characteristic.
        let full = reg.schema(USER).unwrap();
        assert_eq!(user.attribute("groups"), full.attribute("groups"));
        assert_eq!(user.attribute("userName"), full.attribute("userName"));
        let rt = narrowed.resource_type(ResourceKind::User);
        for unknown in [
            "nickName",
            "x509Certificates",
            "ims.value",
            "name.middleName",
            "emails.display",
        ] {
            assert!(
                rt.resolve(&AttrPath::parse(unknown).unwrap()).is_none(),
                "{unknown}"
            );
        }
        // Groups are untouched.
        assert_eq!(
            narrowed.resource_type(ResourceKind::Group),
            reg.resource_type(ResourceKind::Group)
        );
    }

    #[test]
    fn narrowing_always_keeps_id_and_meta_and_external_id_only_when_named() {
        let reg = SchemaRegistry::new();
        let without = reg
            .narrowed(ResourceKind::Group, &paths(&["displayName", "members"]))
            .unwrap();
        let rt = without.resource_type(ResourceKind::Group);
        assert!(!rt.external_id);
        for p in ["id", "meta.version", "displayName", "members.value"] {
            assert!(rt.resolve(&AttrPath::parse(p).unwrap()).is_some(), "{p}");
        }
        assert!(
            rt.resolve(&AttrPath::parse("externalId").unwrap())
                .is_none()
        );
        let common: Vec<&str> = rt
            .common_attributes()
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(common, ["id", "meta"]);
        let with = reg
            .narrowed(
                ResourceKind::Group,
                &paths(&["displayName", "externalId", "id"]),
            )
            .unwrap();
        let rt = with.resource_type(ResourceKind::Group);
        assert!(rt.external_id);
        assert!(
            rt.resolve(&AttrPath::parse("externalId").unwrap())
                .is_some()
        );
        assert_eq!(names(&rt.schema), ["displayName"]);
    }

    #[test]
    fn narrowing_drops_extensions_with_no_kept_attribute() {
        let reg = SchemaRegistry::new();
        let without = reg
            .narrowed(ResourceKind::User, &paths(&["userName"]))
            .unwrap();
        assert!(without.schema(ENTERPRISE_USER).is_none());
        let rt = without.resource_type(ResourceKind::User).to_json("");
        assert_eq!(rt["schemaExtensions"], json!([]));
        // An extension attribute kept with or without its URN keeps the extension.
        for keep in [
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            "manager.value",
        ] {
            let with = reg
                .narrowed(ResourceKind::User, &paths(&["userName", keep]))
                .unwrap();
            let ext = with.schema(ENTERPRISE_USER).unwrap();
            assert_eq!(names(ext), ["manager"]);
            let manager = ext.attribute("manager").unwrap();
            assert_eq!(manager.sub_attributes.len(), 1);
            assert!(manager.sub_attributes[0].required);
            let rt = with.resource_type(ResourceKind::User).to_json("");
            assert_eq!(rt["schemaExtensions"][0]["schema"], ENTERPRISE_USER);
        }
    }

    #[test]
    fn narrowing_to_an_unknown_path_fails() {
        let reg = SchemaRegistry::new();
        for bad in ["bogus", "name.nope", "urn:example:x:1.0:User:a"] {
            assert!(
                reg.narrowed(ResourceKind::User, &paths(&["userName", bad]))
                    .is_err(),
                "{bad}"
            );
        }
        // Group attributes are not User attributes.
        assert!(
            reg.narrowed(ResourceKind::User, &paths(&["members"]))
                .is_err()
        );
    }

    #[test]
    fn bodies_with_attributes_a_narrowed_type_does_not_host_are_refused() {
        use crate::normalize::{WriteMode, prepare};
        let reg = SchemaRegistry::new()
            .narrowed(
                ResourceKind::User,
                &paths(&["userName", "name.givenName", "emails.value"]),
            )
            .unwrap();
        let rt = reg.resource_type(ResourceKind::User);
        let ok = json!({"schemas": [USER], "userName": "b", "name": {"givenName": "B"}});
        assert!(prepare(rt, &ok, WriteMode::Create).is_ok());
        for extra in [
            json!({"nickName": "x"}),
            json!({"name": {"middleName": "x"}}),
            json!({"externalId": "x"}),
            json!({"emails": [{"value": "a@x", "display": "x"}]}),
        ] {
            let mut body = ok.clone();
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            let err = prepare(rt, &body, WriteMode::Create).unwrap_err();
            assert_eq!(err.status, 400, "{body}");
        }
        // A source that chose to drop them instead.
        use crate::compat::{Fired, Rule, Rules};
        let mut body = ok.clone();
        body["nickName"] = json!("x");
        body["name"]["middleName"] = json!("x");
        let fired = Fired::new();
        let rules = Rules::DEFAULT.with(Rule::IgnoreUnknownAttributes);
        let attrs =
            crate::normalize::prepare_with(rt, &body, WriteMode::Create, &rules, &fired).unwrap();
        assert!(!attrs.contains_key("nickName"));
        assert_eq!(attrs["name"], json!({"givenName": "B"}));
        assert!(fired.contains(Rule::IgnoreUnknownAttributes));
    }

    #[test]
    fn builtin_schemas_render_every_characteristic() {
        let reg = SchemaRegistry::new();
        let user = reg.schema(USER).unwrap().to_json("http://h/scim/s/v2");
        assert_eq!(
            user["meta"]["location"],
            format!("http://h/scim/s/v2/Schemas/{USER}")
        );
        let attrs = user["attributes"].as_array().unwrap();
        let user_name = attrs.iter().find(|a| a["name"] == "userName").unwrap();
        assert_eq!(user_name["uniqueness"], "server");
        assert_eq!(user_name["required"], true);
        let password = attrs.iter().find(|a| a["name"] == "password").unwrap();
        assert_eq!(password["mutability"], "writeOnly");
        assert_eq!(password["returned"], "never");
        let groups = attrs.iter().find(|a| a["name"] == "groups").unwrap();
        assert_eq!(groups["mutability"], "readOnly");
        let emails = attrs.iter().find(|a| a["name"] == "emails").unwrap();
        assert_eq!(emails["multiValued"], true);
        assert!(
            emails["subAttributes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["name"] == "primary")
        );
        let rt = reg.resource_type(ResourceKind::User).to_json("");
        assert_eq!(rt["schemaExtensions"][0]["schema"], ENTERPRISE_USER);
        assert_eq!(rt["endpoint"], "/Users");
    }
}
