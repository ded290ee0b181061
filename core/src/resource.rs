//! Stored resources, versions and their SCIM JSON representation.

use crate::schema::{ResourceKind, SchemaRegistry};
use serde_json::{Map, Value, json};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A resource version: monotonically increasing per resource, rendered as the weak ETag
/// `W/"<n>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u64);

impl Version {
    /// The first version of a new resource.
    pub const FIRST: Version = Version(1);

    /// The version after this one.
    pub fn next(self) -> Version {
        Version(self.0.saturating_add(1))
    }

    /// Parses an entity tag as sent in `If-Match`/`If-None-Match`: `W/"7"` or `"7"`.
    /// Returns `None` for tags scimd never issued (which therefore never match).
    pub fn from_etag(tag: &str) -> Option<Version> {
        let t = tag.trim();
        let t = t.strip_prefix("W/").unwrap_or(t);
        let t = t.strip_prefix('"')?.strip_suffix('"')?;
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok().map(Version)
    }

    /// The ETag header value.
    pub fn etag(self) -> String {
        format!("W/\"{}\"", self.0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.etag())
    }
}

/// Server-maintained metadata of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// When the resource was created.
    pub created: OffsetDateTime,
    /// When it was last modified.
    pub last_modified: OffsetDateTime,
    /// Its current version.
    pub version: Version,
}

/// A stored resource: identity, metadata and the canonical attributes.
///
/// `attrs` holds every attribute except `id`, `meta` and `schemas` (which the server maintains)
/// in canonical spelling: core-schema attributes at the top level (including `externalId`),
/// extension attributes as an object under the extension URN. For groups, `members` is the list
/// of `{value, type, display}` objects; for users, `groups` is derived by the backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The server-assigned, immutable id.
    pub id: String,
    /// The resource type.
    pub kind: ResourceKind,
    /// Metadata.
    pub meta: Meta,
    /// The canonical attributes.
    pub attrs: Map<String, Value>,
}

impl Resource {
    /// The full SCIM representation: `schemas`, `id`, the attributes, and `meta` with a
    /// `location` under `base_url` (the source's base, e.g. `https://h/scim/default/v2`).
    ///
    /// `schemas` lists the core schema and each registered extension the resource carries.
    /// No projection is applied here (see [`crate::projection`]).
    pub fn to_json(&self, registry: &SchemaRegistry, base_url: &str) -> Value {
        let rt = registry.resource_type(self.kind);
        let mut schemas = vec![Value::String(rt.schema.id.clone())];
        for ext in &rt.extensions {
            if self.attrs.contains_key(&ext.schema.id) {
                schemas.push(Value::String(ext.schema.id.clone()));
            }
        }
        let mut out = Map::with_capacity(self.attrs.len() + 3);
        out.insert("schemas".into(), Value::Array(schemas));
        out.insert("id".into(), Value::String(self.id.clone()));
        for (k, v) in &self.attrs {
            out.insert(k.clone(), v.clone());
        }
        out.insert("meta".into(), self.meta_json(base_url));
        Value::Object(out)
    }

    /// The `meta` object.
    pub fn meta_json(&self, base_url: &str) -> Value {
        json!({
            "resourceType": self.kind.name(),
            "created": format_time(self.meta.created),
            "lastModified": format_time(self.meta.last_modified),
            "location": self.location(base_url),
            "version": self.meta.version.etag(),
        })
    }

    /// The resource's URL under `base_url`.
    pub fn location(&self, base_url: &str) -> String {
        format!("{base_url}/{}/{}", self.kind.endpoint(), self.id)
    }
}

/// Formats a timestamp as RFC 3339 (`xsd:dateTime`), UTC, with the precision it has.
pub fn format_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Parses an `xsd:dateTime` (RFC 3339) timestamp.
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// The current time, truncated to microseconds so that every store (SQLite, PostgreSQL, LDAP)
/// round-trips it exactly.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_round_trip_and_reject_foreign_tags() {
        assert_eq!(Version::from_etag(&Version(42).etag()), Some(Version(42)));
        assert_eq!(Version::from_etag("\"7\""), Some(Version(7)));
        assert_eq!(Version::from_etag("W/\"abc\""), None);
        assert_eq!(Version::from_etag("7"), None);
        assert_eq!(Version::from_etag("W/\"99999999999999999999999\""), None);
    }

    #[test]
    fn json_lists_carried_extensions_and_meta() {
        let reg = SchemaRegistry::new();
        let t = now();
        let mut attrs = Map::new();
        attrs.insert("userName".into(), json!("bjensen"));
        attrs.insert(
            crate::schema::ENTERPRISE_USER.into(),
            json!({"department": "R&D"}),
        );
        let r = Resource {
            id: "abc".into(),
            kind: ResourceKind::User,
            meta: Meta {
                created: t,
                last_modified: t,
                version: Version(3),
            },
            attrs,
        };
        let j = r.to_json(&reg, "https://h/scim/s/v2");
        assert_eq!(
            j["schemas"],
            json!([crate::schema::USER, crate::schema::ENTERPRISE_USER])
        );
        assert_eq!(j["meta"]["location"], "https://h/scim/s/v2/Users/abc");
        assert_eq!(j["meta"]["version"], "W/\"3\"");
        assert_eq!(parse_time(j["meta"]["created"].as_str().unwrap()), Some(t));
    }
}
