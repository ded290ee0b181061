//! Building the claims of a SCIM event SET (RFC 9967 over RFC 8417) for one write.
//!
//! One SET per write and receiver: `iss`, `iat`, `jti`, `aud`, `txn` (the same for every
//! receiver of the write: source, resource type, id and resulting version), `sub_id`
//! (`format: scim`, the relative `uri`, `id`, `externalId`) and `events` with the provisioning
//! event — `prov:create`, `prov:put`, `prov:patch` (each `:full` with `data`, or `:notice` with
//! `attributes`, and the `version`), or `prov:delete` — plus `prov:activate` /
//! `prov:deactivate` when a user's `active` turned true / false in the same write (RFC 9967
//! §2.1: events of one SET arise from the same state change).
//!
//! Secrets never leave: `password` is removed from `data`, and PATCH operations that touch it
//! are dropped from a `patch:full` payload (the attribute name still appears in `attributes`).

use scimd_core::hooks::{Operation, WriteRecord};
use scimd_core::resource::{Resource, format_time};
use scimd_core::schema::ResourceKind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The event URI prefix of RFC 9967 provisioning events.
pub const PROV: &str = "urn:ietf:params:scim:event:prov";
/// `prov:create:full`.
pub const CREATE_FULL: &str = "urn:ietf:params:scim:event:prov:create:full";
/// `prov:create:notice`.
pub const CREATE_NOTICE: &str = "urn:ietf:params:scim:event:prov:create:notice";
/// `prov:put:full`.
pub const PUT_FULL: &str = "urn:ietf:params:scim:event:prov:put:full";
/// `prov:put:notice`.
pub const PUT_NOTICE: &str = "urn:ietf:params:scim:event:prov:put:notice";
/// `prov:patch:full`.
pub const PATCH_FULL: &str = "urn:ietf:params:scim:event:prov:patch:full";
/// `prov:patch:notice`.
pub const PATCH_NOTICE: &str = "urn:ietf:params:scim:event:prov:patch:notice";
/// `prov:delete`.
pub const DELETE: &str = "urn:ietf:params:scim:event:prov:delete";
/// `prov:activate`.
pub const ACTIVATE: &str = "urn:ietf:params:scim:event:prov:activate";
/// `prov:deactivate`.
pub const DEACTIVATE: &str = "urn:ietf:params:scim:event:prov:deactivate";

/// Attributes whose values never appear in an event.
const SECRET: &[&str] = &["password"];

fn is_secret(name: &str) -> bool {
    SECRET.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// Whether events carry the resource (`full`) or only the names of changed attributes
/// (`notice`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventMode {
    /// `…:full` events with a `data` payload.
    #[default]
    Full,
    /// `…:notice` events with an `attributes` payload.
    Notice,
}

/// Who issues the SET and for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressing {
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
}

/// The SCIM representation of a stored resource for `data`, without secrets and without
/// `meta.location` (the receiver knows the base URL).
pub fn representation(r: &Resource) -> Value {
    let mut out = Map::new();
    let mut schemas = vec![json!(r.kind.core_schema())];
    for (k, v) in &r.attrs {
        if k.len() > 4 && k[..4].eq_ignore_ascii_case("urn:") && v.is_object() {
            schemas.push(json!(k));
        }
    }
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), json!(r.id));
    for (k, v) in &r.attrs {
        if !is_secret(k) {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert(
        "meta".into(),
        json!({
            "resourceType": r.kind.name(),
            "created": format_time(r.meta.created),
            "lastModified": format_time(r.meta.last_modified),
            "version": r.meta.version.etag(),
        }),
    );
    Value::Object(out)
}

/// A PatchOp body without the operations that set a secret.
fn sanitized_patch(patch: &Value) -> Value {
    let mut p = patch.clone();
    let touches_secret = |op: &Value| {
        let path = op
            .get("path")
            .or_else(|| op.get("Path"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = path.rsplit(':').next().unwrap_or(path);
        let name = name.split(['.', '[']).next().unwrap_or(name);
        is_secret(name)
    };
    if let Some(ops) = p
        .as_object_mut()
        .and_then(|o| {
            let key = o
                .keys()
                .find(|k| k.eq_ignore_ascii_case("operations"))
                .cloned()?;
            o.get_mut(&key)
        })
        .and_then(Value::as_array_mut)
    {
        ops.retain(|op| !touches_secret(op));
        for op in ops.iter_mut() {
            if let Some(Value::Object(value)) = op.get_mut("value") {
                value.retain(|k, _| !is_secret(k));
            }
        }
    }
    p
}

/// Names of the attributes that differ (extension attributes as `urn:…:name`).
fn changed_attributes(old: Option<&Resource>, new: &Resource) -> Vec<String> {
    let empty = Map::new();
    let old = old.map_or(&empty, |r| &r.attrs);
    let mut out = Vec::new();
    for (k, v) in &new.attrs {
        let is_ext = k.len() > 4 && k[..4].eq_ignore_ascii_case("urn:");
        match (is_ext, v, old.get(k)) {
            (true, Value::Object(n), o) => {
                let o = o.and_then(Value::as_object).unwrap_or(&empty);
                for (sub, sv) in n {
                    if o.get(sub) != Some(sv) {
                        out.push(format!("{k}:{sub}"));
                    }
                }
                for sub in o.keys().filter(|s| !n.contains_key(*s)) {
                    out.push(format!("{k}:{sub}"));
                }
            }
            (_, v, o) if o != Some(v) => out.push(k.clone()),
            _ => {}
        }
    }
    for k in old.keys().filter(|k| !new.attrs.contains_key(*k)) {
        out.push(k.clone());
    }
    out
}

fn active(r: Option<&Resource>) -> Option<bool> {
    r.and_then(|r| r.attrs.get("active"))
        .and_then(Value::as_bool)
}

/// The `events` claim of a write.
pub fn events(record: &WriteRecord, mode: EventMode) -> Map<String, Value> {
    let mut events = Map::new();
    let op = record.context.operation;
    let (Some(new), true) = (record.new.as_ref(), op != Operation::Delete) else {
        events.insert(DELETE.into(), json!({}));
        return events;
    };
    let version = json!(new.meta.version.etag());
    let (uri, payload) = match (op, mode) {
        (Operation::Create, EventMode::Full) => (
            CREATE_FULL,
            json!({"data": representation(new), "version": version}),
        ),
        (Operation::Replace, EventMode::Full) => (
            PUT_FULL,
            json!({"data": representation(new), "version": version}),
        ),
        (Operation::Patch, EventMode::Full) => {
            let data = match &record.patch {
                Some(p) => sanitized_patch(p),
                None => representation(new),
            };
            (PATCH_FULL, json!({"data": data, "version": version}))
        }
        (op, EventMode::Notice) => {
            let uri = match op {
                Operation::Create => CREATE_NOTICE,
                Operation::Replace => PUT_NOTICE,
                _ => PATCH_NOTICE,
            };
            let attrs = changed_attributes(record.old.as_ref(), new);
            (uri, json!({"attributes": attrs, "version": version}))
        }
        (Operation::Delete, EventMode::Full) => (DELETE, json!({})),
    };
    events.insert(uri.into(), payload);
    if new.kind == ResourceKind::User {
        let (was, is) = (active(record.old.as_ref()), active(Some(new)));
        if is == Some(true) && was != Some(true) {
            events.insert(ACTIVATE.into(), json!({}));
        } else if is == Some(false) && was != Some(false) {
            events.insert(DEACTIVATE.into(), json!({}));
        }
    }
    events
}

/// The `txn` of a write: the same for every SET about it (RFC 9967 §2.2).
pub fn txn(record: &WriteRecord) -> String {
    let cx = &record.context;
    let id = cx.id.as_deref().unwrap_or("");
    match (&record.new, &record.old) {
        (Some(n), _) => format!("{}:{}:{id}:{}", cx.source, cx.kind.name(), n.meta.version.0),
        (None, Some(o)) => format!(
            "{}:{}:{id}:{}:deleted",
            cx.source,
            cx.kind.name(),
            o.meta.version.0
        ),
        (None, None) => format!("{}:{}:{id}", cx.source, cx.kind.name()),
    }
}

/// The claims of the SET about `record` for one receiver.
pub fn claims(
    record: &WriteRecord,
    mode: EventMode,
    to: &Addressing,
    jti: &str,
    iat: i64,
) -> Value {
    let cx = &record.context;
    let id = cx.id.clone().unwrap_or_default();
    let mut sub_id = Map::new();
    sub_id.insert("format".into(), json!("scim"));
    sub_id.insert("uri".into(), json!(format!("/{}/{id}", cx.kind.endpoint())));
    sub_id.insert("id".into(), json!(id));
    let external = record
        .new
        .as_ref()
        .or(record.old.as_ref())
        .and_then(|r| r.attrs.get("externalId"))
        .cloned();
    if let Some(e) = external {
        sub_id.insert("externalId".into(), e);
    }
    json!({
        "iss": to.issuer,
        "iat": iat,
        "jti": jti,
        "aud": to.audience,
        "txn": txn(record),
        "sub_id": sub_id,
        "events": events(record, mode),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimd_core::hooks::{HookContext, RequestInfo};
    use scimd_core::resource::{Meta, Version};

    fn res(kind: ResourceKind, version: u64, attrs: Value) -> Resource {
        let t = scimd_core::resource::now();
        Resource {
            id: "u1".into(),
            kind,
            meta: Meta {
                created: t,
                last_modified: t,
                version: Version(version),
            },
            attrs: attrs.as_object().cloned().unwrap(),
        }
    }

    fn record(op: Operation, old: Option<Value>, new: Option<Value>) -> WriteRecord {
        WriteRecord {
            context: HookContext::new(
                "s",
                ResourceKind::User,
                op,
                Some("u1".into()),
                &RequestInfo::default(),
            ),
            old: old.map(|a| res(ResourceKind::User, 1, a)),
            new: new.map(|a| res(ResourceKind::User, 2, a)),
            patch: None,
        }
    }

    const TO: fn() -> Addressing = || Addressing {
        issuer: "https://scim.example.com".into(),
        audience: "https://rcv.example.com".into(),
    };

    #[test]
    fn a_create_is_a_full_create_event_without_the_password_and_activates() {
        let r = record(
            Operation::Create,
            None,
            Some(json!({"userName": "a", "password": "p", "active": true, "externalId": "x1"})),
        );
        let c = claims(&r, EventMode::Full, &TO(), "j1", 1);
        assert_eq!(c["iss"], "https://scim.example.com");
        assert_eq!(c["aud"], "https://rcv.example.com");
        assert_eq!(
            c["sub_id"],
            json!({"format": "scim", "uri": "/Users/u1", "id": "u1", "externalId": "x1"})
        );
        assert!(c.get("sub").is_none());
        let ev = c["events"].as_object().unwrap();
        assert_eq!(ev.keys().collect::<Vec<_>>(), [CREATE_FULL, ACTIVATE]);
        let data = &ev[CREATE_FULL]["data"];
        assert_eq!(data["userName"], "a");
        assert_eq!(data["schemas"], json!([ResourceKind::User.core_schema()]));
        assert!(data.get("password").is_none());
        assert_eq!(ev[CREATE_FULL]["version"], "W/\"2\"");
        assert_eq!(c["txn"], "s:User:u1:2");
    }

    #[test]
    fn notice_events_list_changed_attributes_and_deactivation() {
        let r = record(
            Operation::Replace,
            Some(json!({"userName": "a", "active": true, "title": "x"})),
            Some(json!({"userName": "b", "active": false, "password": "new"})),
        );
        let ev = events(&r, EventMode::Notice);
        assert_eq!(ev.keys().collect::<Vec<_>>(), [PUT_NOTICE, DEACTIVATE]);
        assert_eq!(
            ev[PUT_NOTICE]["attributes"],
            json!(["userName", "active", "password", "title"])
        );
    }

    #[test]
    fn a_patch_event_carries_the_patch_without_secret_operations() {
        let mut r = record(
            Operation::Patch,
            Some(json!({"userName": "a"})),
            Some(json!({"userName": "b"})),
        );
        r.patch = Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "replace", "path": "userName", "value": "b"},
                {"op": "replace", "path": "password", "value": "s3cret"},
                {"op": "replace", "value": {"password": "s3cret", "displayName": "B"}}
            ]}),
        );
        let ev = events(&r, EventMode::Full);
        let data = &ev[PATCH_FULL]["data"];
        assert!(!data.to_string().contains("s3cret"), "{data}");
        assert_eq!(data["Operations"].as_array().map(Vec::len), Some(2));
        assert_eq!(data["Operations"][1]["value"], json!({"displayName": "B"}));
    }

    #[test]
    fn a_delete_is_a_bare_delete_event() {
        let r = record(Operation::Delete, Some(json!({"userName": "a"})), None);
        let c = claims(&r, EventMode::Full, &TO(), "j", 0);
        assert_eq!(c["events"], json!({DELETE: {}}));
        assert_eq!(c["txn"], "s:User:u1:1:deleted");
    }
}
