//! `/ServiceProviderConfig`, `/ResourceTypes` and `/Schemas` (RFC 7644 §4), rendered from the
//! source's schema registry, its backend's capabilities, its hooks (RFC 9967 `securityEvents`)
//! and the configured limits.

use crate::app::{App, Source};
use scimd_core::ScimError;
use scimd_core::schema::{ResourceKind, SERVICE_PROVIDER_CONFIG};
use scimd_core::service::LIST_RESPONSE_SCHEMA;
use serde_json::{Value, json};

/// The ServiceProviderConfig of a source.
pub fn service_provider_config(app: &App, source: &Source, base: &str, docs: &str) -> Value {
    let caps = source.service.backend().capabilities();
    let mut spc = json!({
        "schemas": [SERVICE_PROVIDER_CONFIG],
        "documentationUri": docs,
        "patch": {"supported": true},
        "bulk": {
            "supported": true,
            "maxOperations": app.config.bulk.max_operations,
            "maxPayloadSize": app.config.bulk.max_payload_size,
        },
        "filter": {"supported": caps.filter, "maxResults": source.service.paging().max_page_size},
        "changePassword": {"supported": caps.change_password},
        "sort": {"supported": caps.sort},
        "etag": {"supported": caps.etag},
        // RFC 9865 §4: how the source pages.
        "pagination": source.service.paging().service_provider_config(source.service.cursor_paging()),
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A bearer token issued by scimd for this source (scimd token create).",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "documentationUri": docs,
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    });
    // RFC 9967 §4: present only when the source emits events. Requests always complete
    // synchronously.
    let event_uris = source.service.hooks().event_uris();
    if !event_uris.is_empty()
        && let Some(obj) = spc.as_object_mut()
    {
        obj.insert(
            "securityEvents".into(),
            json!({"asyncRequest": "none", "eventUris": event_uris}),
        );
    }
    spc
}

fn list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// `/ResourceTypes`.
pub fn resource_types(source: &Source, base: &str) -> Value {
    let reg = source.service.registry();
    list(
        ResourceKind::ALL
            .iter()
            .map(|k| reg.resource_type(*k).to_json(base))
            .collect(),
    )
}

/// `/ResourceTypes/{id}`.
pub fn resource_type(source: &Source, base: &str, id: &str) -> Result<Value, ScimError> {
    let kind = ResourceKind::ALL
        .into_iter()
        .find(|k| k.name() == id)
        .ok_or_else(|| ScimError::not_found(format!("Resource type {id} not found")))?;
    Ok(source.service.registry().resource_type(kind).to_json(base))
}

/// `/Schemas`.
pub fn schemas(source: &Source, base: &str) -> Value {
    list(
        source
            .service
            .registry()
            .schemas()
            .into_iter()
            .map(|s| s.to_json(base))
            .collect(),
    )
}

/// `/Schemas/{urn}`.
pub fn schema(source: &Source, base: &str, id: &str) -> Result<Value, ScimError> {
    source
        .service
        .registry()
        .schema(id)
        .map(|s| s.to_json(base))
        .ok_or_else(|| ScimError::not_found(format!("Schema {id} not found")))
}
