//! The OpenAPI document. poem-openapi describes the operations, parameters, headers, responses
//! and the bearer scheme; the resource schemas are generated here from the sources' schema
//! registries (so custom extensions appear) and merged into `components/schemas`.

use super::api::{GroupsApi, ServiceApi, UsersApi};
use crate::app::App;
use poem_openapi::{ExtraHeader, OpenApiService};
use scimd_core::schema::{AttrType, AttributeDef, Mutability, ResourceKind, Returned, Schema};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The API as one poem-openapi service.
pub type Apis = (UsersApi, GroupsApi, ServiceApi);

/// The poem-openapi service (routes and the generated base document).
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (UsersApi, GroupsApi, ServiceApi),
        "scimd",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "SCIM 2.0 (RFC 7643, RFC 7644) service provider. Every source (tenant) is served at \
             `/scim/{source}/v2` and, for IdPs configured for authentik's SCIM source, also at \
             `/source/scim/{source}/v2`. Requests need a bearer token of that source. Bodies are \
             `application/scim+json` (`application/json` is accepted); every error is a SCIM \
             Error with `status` as a string.",
    )
    .extra_request_header::<Option<String>, _>(ExtraHeader::new("X-Request-Id").description(
        "Correlates the request in scimd's logs; echoed in the response when well-formed \
         (1-128 of A-Z a-z 0-9 - _ . :), else a new id is generated.",
    ))
    .extra_response_header::<String, _>(
        ExtraHeader::new("X-Request-Id").description("The request id used in scimd's logs."),
    )
}

/// The complete document: the generated one with schemas from the registries.
pub fn document(app: &App) -> Value {
    let base = service().spec();
    let mut doc: Value = serde_json::from_str(&base).unwrap_or_else(|_| json!({}));
    if let Some(obj) = doc.as_object_mut() {
        let components = obj
            .entry("components")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(components) = components {
            let schemas = components.entry("schemas").or_insert_with(|| json!({}));
            if let Some(schemas) = schemas.as_object_mut() {
                for (name, schema) in component_schemas(app) {
                    schemas.insert(name, schema);
                }
            }
        }
    }
    doc
}

/// Swagger UI for the document, with its assets embedded (no CDN).
pub fn swagger_html(doc: &Value) -> String {
    let svc = service();
    let generated = svc.spec();
    let html = svc.swagger_ui_html();
    html.replacen(&generated, &doc.to_string(), 1)
}

/// The extensions of a resource type over every source (by URN, first definition wins).
fn extensions(app: &App, kind: ResourceKind) -> Vec<(Arc<Schema>, bool)> {
    let mut seen = BTreeMap::new();
    for source in app.sources.values() {
        for ext in &source.service.registry().resource_type(kind).extensions {
            seen.entry(ext.schema.id.clone())
                .or_insert_with(|| (ext.schema.clone(), ext.required));
        }
    }
    seen.into_values().collect()
}

fn component_schemas(app: &App) -> Vec<(String, Value)> {
    let first = app.sources.values().next();
    let mut out = Vec::new();
    for kind in ResourceKind::ALL {
        let core = first.map(|s| s.service.registry().resource_type(kind).schema.clone());
        let Some(core) = core else { continue };
        out.push((
            kind.name().to_string(),
            resource_schema(kind, &core, &extensions(app, kind)),
        ));
    }
    out.extend(message_schemas());
    out
}

/// The JSON Schema of an attribute.
fn attribute_schema(a: &AttributeDef) -> Value {
    let mut s = match a.attr_type {
        AttrType::String => json!({"type": "string"}),
        AttrType::Boolean => json!({"type": "boolean"}),
        AttrType::Decimal => json!({"type": "number"}),
        AttrType::Integer => json!({"type": "integer", "format": "int64"}),
        AttrType::DateTime => json!({"type": "string", "format": "date-time"}),
        AttrType::Binary => json!({"type": "string", "format": "byte"}),
        AttrType::Reference => json!({"type": "string", "format": "uri-reference"}),
        AttrType::Complex => object_schema(&a.sub_attributes),
    };
    if let Some(m) = s.as_object_mut() {
        if !a.description.is_empty() {
            m.insert("description".into(), a.description.clone().into());
        }
        if !a.canonical_values.is_empty() && a.attr_type == AttrType::String {
            m.insert("x-scim-canonicalValues".into(), json!(a.canonical_values));
        }
        match a.mutability {
            Mutability::ReadOnly => {
                m.insert("readOnly".into(), true.into());
            }
            Mutability::WriteOnly => {
                m.insert("writeOnly".into(), true.into());
            }
            _ => {}
        }
        m.insert(
            "x-scim-mutability".into(),
            serde_json::to_value(a.mutability).unwrap_or(Value::Null),
        );
        if a.returned != Returned::Default {
            m.insert(
                "x-scim-returned".into(),
                serde_json::to_value(a.returned).unwrap_or(Value::Null),
            );
        }
    }
    if a.multi_valued {
        json!({"type": "array", "items": s})
    } else {
        s
    }
}

fn object_schema(attrs: &[AttributeDef]) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for a in attrs {
        props.insert(a.name.clone(), attribute_schema(a));
        if a.required && a.mutability != Mutability::ReadOnly {
            required.push(Value::String(a.name.clone()));
        }
    }
    let mut s = json!({"type": "object", "properties": props});
    if !required.is_empty() {
        s["required"] = Value::Array(required);
    }
    s
}

fn resource_schema(kind: ResourceKind, core: &Schema, exts: &[(Arc<Schema>, bool)]) -> Value {
    let mut s = object_schema(&core.attributes);
    let mut schema_urns = vec![json!(core.id)];
    schema_urns.extend(exts.iter().map(|(e, _)| json!(e.id)));
    if let Some(props) = s["properties"].as_object_mut() {
        let mut common = Map::new();
        common.insert(
            "schemas".into(),
            json!({"type": "array", "items": {"type": "string", "enum": schema_urns}}),
        );
        common.insert("id".into(), json!({"type": "string", "readOnly": true}));
        common.insert(
            "externalId".into(),
            json!({"type": "string", "description": "An identifier of the resource in the provisioning client."}),
        );
        common.insert("meta".into(), json!({"$ref": "#/components/schemas/Meta"}));
        for (k, v) in std::mem::take(props) {
            common.insert(k, v);
        }
        for (ext, required) in exts {
            let mut e = object_schema(&ext.attributes);
            e["description"] = json!(format!(
                "Extension {}{}",
                if ext.name.is_empty() {
                    &ext.id
                } else {
                    &ext.name
                },
                if *required { " (required)" } else { "" }
            ));
            common.insert(ext.id.clone(), e);
        }
        *props = common;
    }
    s["description"] = json!(format!("A SCIM {} ({}).", kind.name(), core.id));
    s
}

fn message_schemas() -> Vec<(String, Value)> {
    let list_urn = scimd_core::service::LIST_RESPONSE_SCHEMA;
    vec![
        (
            "Meta".into(),
            json!({"type": "object", "readOnly": true, "properties": {
                "resourceType": {"type": "string"},
                "created": {"type": "string", "format": "date-time"},
                "lastModified": {"type": "string", "format": "date-time"},
                "location": {"type": "string", "format": "uri"},
                "version": {"type": "string", "description": "Weak entity tag, e.g. W/\"3\"."}
            }}),
        ),
        (
            "Error".into(),
            json!({"type": "object", "required": ["schemas", "status"], "properties": {
                "schemas": {"type": "array", "items": {"type": "string", "enum": [scimd_core::error::ERROR_SCHEMA]}},
                "status": {"type": "string", "description": "The HTTP status as a string."},
                "scimType": {"type": "string", "enum": ["invalidFilter", "tooMany", "uniqueness", "mutability", "invalidSyntax", "invalidPath", "noTarget", "invalidValue", "invalidVers", "sensitive", "invalidCursor", "expiredCursor", "invalidCount"]},
                "detail": {"type": "string"}
            }}),
        ),
        (
            "ListResponse".into(),
            json!({"type": "object", "required": ["schemas", "totalResults"], "properties": {
                "schemas": {"type": "array", "items": {"type": "string", "enum": [list_urn]}},
                "totalResults": {"type": "integer"},
                "startIndex": {"type": "integer"},
                "itemsPerPage": {"type": "integer"},
                "nextCursor": {"type": "string"},
                "previousCursor": {"type": "string"},
                "Resources": {"type": "array", "items": {"type": "object"}}
            }}),
        ),
        (
            "PatchOp".into(),
            json!({"type": "object", "required": ["schemas", "Operations"], "properties": {
                "schemas": {"type": "array", "items": {"type": "string", "enum": [scimd_core::patch::PATCH_OP_SCHEMA]}},
                "Operations": {"type": "array", "items": {"type": "object", "required": ["op"], "properties": {
                    "op": {"type": "string", "enum": ["add", "remove", "replace"]},
                    "path": {"type": "string", "example": "members[value eq \"2819c223\"]"},
                    "value": {}
                }}}
            }}),
        ),
        (
            "SearchRequest".into(),
            json!({"type": "object", "properties": {
                "schemas": {"type": "array", "items": {"type": "string", "enum": [scimd_core::service::SEARCH_REQUEST_SCHEMA]}},
                "attributes": {"type": "array", "items": {"type": "string"}},
                "excludedAttributes": {"type": "array", "items": {"type": "string"}},
                "filter": {"type": "string"},
                "sortBy": {"type": "string"},
                "sortOrder": {"type": "string", "enum": ["ascending", "descending"]},
                "startIndex": {"type": "integer"},
                "count": {"type": "integer"},
                "cursor": {"type": "string"}
            }}),
        ),
        (
            "BulkRequest".into(),
            json!({"type": "object", "required": ["schemas", "Operations"], "properties": {
                "schemas": {"type": "array", "items": {"type": "string", "enum": [crate::bulk::BULK_REQUEST_SCHEMA]}},
                "failOnErrors": {"type": "integer", "minimum": 1},
                "Operations": {"type": "array", "items": {"type": "object", "required": ["method", "path"], "properties": {
                    "method": {"type": "string", "enum": ["POST", "PUT", "PATCH", "DELETE"]},
                    "bulkId": {"type": "string"},
                    "version": {"type": "string"},
                    "path": {"type": "string", "example": "/Users"},
                    "data": {"type": "object", "description": "The resource or PatchOp; \"bulkId:<id>\" anywhere refers to a resource created in the same request."}
                }}}
            }}),
        ),
        (
            "BulkResponse".into(),
            json!({"type": "object", "properties": {
                "schemas": {"type": "array", "items": {"type": "string", "enum": [crate::bulk::BULK_RESPONSE_SCHEMA]}},
                "Operations": {"type": "array", "items": {"type": "object", "properties": {
                    "method": {"type": "string"},
                    "bulkId": {"type": "string"},
                    "version": {"type": "string"},
                    "location": {"type": "string"},
                    "status": {"type": "string"},
                    "response": {"$ref": "#/components/schemas/Error"}
                }}}
            }}),
        ),
        (
            "ServiceProviderConfig".into(),
            json!({"type": "object", "description": "RFC 7643 §5.", "properties": {
                "schemas": {"type": "array", "items": {"type": "string"}},
                "documentationUri": {"type": "string"},
                "patch": {"type": "object"}, "bulk": {"type": "object"}, "filter": {"type": "object"},
                "changePassword": {"type": "object"}, "sort": {"type": "object"}, "etag": {"type": "object"},
                "pagination": {"type": "object"},
                "authenticationSchemes": {"type": "array", "items": {"type": "object"}},
                "securityEvents": {"type": "object", "description": "RFC 9967 §4: present when the source emits events.", "properties": {
                    "asyncRequest": {"type": "string", "enum": ["none", "long", "request"]},
                    "eventUris": {"type": "array", "items": {"type": "string"}}
                }}
            }}),
        ),
        (
            "ResourceType".into(),
            json!({"type": "object", "description": "RFC 7643 §6.", "properties": {
                "schemas": {"type": "array", "items": {"type": "string"}},
                "id": {"type": "string"}, "name": {"type": "string"}, "endpoint": {"type": "string"},
                "description": {"type": "string"}, "schema": {"type": "string"},
                "schemaExtensions": {"type": "array", "items": {"type": "object", "properties": {
                    "schema": {"type": "string"}, "required": {"type": "boolean"}}}}
            }}),
        ),
        (
            "Schema".into(),
            json!({"type": "object", "description": "RFC 7643 §7.", "properties": {
                "schemas": {"type": "array", "items": {"type": "string"}},
                "id": {"type": "string"}, "name": {"type": "string"}, "description": {"type": "string"},
                "attributes": {"type": "array", "items": {"type": "object"}}
            }}),
        ),
    ]
}
