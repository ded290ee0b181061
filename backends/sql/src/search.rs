//! The search representation of a resource: what filters and sorting read in SQL.
//!
//! Comparing in SQL with the database's `lower()` would make case-insensitive matching depend on
//! the database (SQLite's `lower()` folds ASCII only; PostgreSQL's follows the server locale),
//! and comparing `dateTime` text would order `+02:00` offsets wrongly. So each write stores, next
//! to the canonical attributes, a copy in which every string of an attribute that is not
//! `caseExact` is case-folded in Rust (the same fold the filter's comparison value gets) and
//! every `dateTime` is rewritten to a fixed-width UTC form whose text order is time order.

use scimd_core::schema::{AttrType, AttributeDef, ResourceTypeDef, common_attribute};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Case-folds a string for comparisons of attributes that are not `caseExact`: the
/// evaluator's own per-character lower-casing, so that SQL and the reference agree.
pub(crate) fn fold(s: &str) -> String {
    scimd_core::filter::fold_case(s).into_owned()
}

/// Rewrites an RFC 3339 timestamp to `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` in UTC, so that text
/// order is time order. `None` when `s` is not a timestamp (or its year is outside 0..=9999).
pub(crate) fn normalize_datetime(s: &str) -> Option<String> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    datetime_key(t)
}

/// The fixed-width UTC text of a timestamp (see [`normalize_datetime`]).
pub(crate) fn datetime_key(t: OffsetDateTime) -> Option<String> {
    let t = t.to_offset(time::UtcOffset::UTC);
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    ))
}

/// Builds the search document of canonical attributes (`members` and `groups` excluded: they
/// live in the membership table).
pub(crate) fn search_doc(rt: &ResourceTypeDef, attrs: &Map<String, Value>) -> Value {
    let mut out = Map::with_capacity(attrs.len());
    for (k, v) in attrs {
        if is_relation(rt, k) {
            continue;
        }
        if let Some(ext) = rt.extensions.iter().find(|e| e.schema.id == *k) {
            let folded = match v {
                Value::Object(m) => Value::Object(
                    m.iter()
                        .map(|(k2, v2)| {
                            let v2 = match ext.schema.attribute(k2) {
                                Some(def) => transform(def, v2),
                                None => v2.clone(),
                            };
                            (k2.clone(), v2)
                        })
                        .collect(),
                ),
                other => other.clone(),
            };
            out.insert(k.clone(), folded);
            continue;
        }
        let def = common_attribute(k).or_else(|| rt.schema.attribute(k));
        let v = match def {
            Some(def) => transform(def, v),
            None => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

/// Whether a top-level key is a relation kept outside the attributes (`members` of groups,
/// `groups` of users).
pub(crate) fn is_relation(rt: &ResourceTypeDef, key: &str) -> bool {
    use scimd_core::ResourceKind;
    match rt.kind {
        ResourceKind::Group => key == "members",
        ResourceKind::User => key == "groups",
    }
}

fn transform(def: &AttributeDef, v: &Value) -> Value {
    match v {
        Value::Array(items) if def.multi_valued => {
            Value::Array(items.iter().map(|i| transform_one(def, i)).collect())
        }
        other => transform_one(def, other),
    }
}

fn transform_one(def: &AttributeDef, v: &Value) -> Value {
    match (def.attr_type, v) {
        (AttrType::Complex, Value::Object(m)) => Value::Object(
            m.iter()
                .map(|(k, sv)| {
                    let sv = match def.sub_attribute(k) {
                        Some(sub) => transform(sub, sv),
                        None => sv.clone(),
                    };
                    (k.clone(), sv)
                })
                .collect(),
        ),
        (AttrType::DateTime, Value::String(s)) => {
            Value::String(normalize_datetime(s).unwrap_or_else(|| s.clone()))
        }
        (AttrType::String, Value::String(s)) if !crate::filter::is_exact(def) => {
            Value::String(fold(s))
        }
        _ => v.clone(),
    }
}

/// Bumped when [`search_doc`] changes how it derives the search copy, so that stored copies are
/// rebuilt.
const SEARCH_FORMAT: u32 = 1;

/// A fingerprint of everything [`search_doc`] reads of a resource type's schemas: the names,
/// types, plurality and `caseExact` of the core schema's attributes and of each extension's
/// (with their sub-attributes). Search copies built under another fingerprint may fold or
/// normalize differently (or not at all, for an extension that was not configured), so filters
/// could miss them until they are rebuilt.
pub(crate) fn fingerprint(rt: &ResourceTypeDef) -> String {
    use std::fmt::Write as _;
    fn describe(out: &mut String, def: &AttributeDef) {
        let _ = write!(
            out,
            "{}:{}{}{}",
            def.name,
            def.attr_type.as_str(),
            if def.multi_valued { "[]" } else { "" },
            if def.case_exact { "!" } else { "" }
        );
        if !def.sub_attributes.is_empty() {
            out.push('(');
            for sub in &def.sub_attributes {
                describe(out, sub);
                out.push(',');
            }
            out.push(')');
        }
        out.push(';');
    }
    let mut text = format!("v{SEARCH_FORMAT} {} {}\n", rt.kind.name(), rt.schema.id);
    for def in &rt.schema.attributes {
        describe(&mut text, def);
    }
    for ext in &rt.extensions {
        let _ = write!(text, "\n{}\n", ext.schema.id);
        for def in &ext.schema.attributes {
            describe(&mut text, def);
        }
    }
    // FNV-1a: a stable hash (the standard library's may change between releases), and
    // collisions are no attack surface here.
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("v{SEARCH_FORMAT}-{hash:016x}")
}

/// The indexed columns of a resource.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Columns {
    pub(crate) user_name_fold: Option<String>,
    pub(crate) external_id: Option<String>,
    pub(crate) display_name: Option<String>,
    pub(crate) display_name_fold: Option<String>,
    /// Folded `emails.value` of users.
    pub(crate) emails: Vec<String>,
}

/// Extracts the indexed columns from canonical attributes.
pub(crate) fn columns(rt: &ResourceTypeDef, attrs: &Map<String, Value>) -> Columns {
    use scimd_core::ResourceKind;
    let text = |k: &str| attrs.get(k).and_then(Value::as_str).map(str::to_string);
    let mut c = Columns {
        external_id: text("externalId"),
        display_name: text("displayName"),
        display_name_fold: text("displayName").map(|s| fold(&s)),
        ..Columns::default()
    };
    if rt.kind == ResourceKind::User {
        c.user_name_fold = text("userName").map(|s| fold(&s));
        if let Some(Value::Array(emails)) = attrs.get("emails") {
            c.emails = emails
                .iter()
                .filter_map(|e| e.get("value").and_then(Value::as_str))
                .map(fold)
                .collect();
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimd_core::{ResourceKind, SchemaRegistry};
    use serde_json::json;

    #[test]
    fn datetimes_normalize_to_utc_text_that_sorts_as_time() {
        let a = normalize_datetime("2024-01-01T10:00:00+02:00").unwrap();
        let b = normalize_datetime("2024-01-01T09:00:00.5Z").unwrap();
        assert_eq!(a, "2024-01-01T08:00:00.000000000Z");
        assert!(a < b);
        assert_eq!(normalize_datetime("yesterday"), None);
    }

    #[test]
    fn search_doc_folds_only_attributes_that_are_not_case_exact() {
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        let attrs = json!({
            "userName": "BJensen",
            "externalId": "ExT-1",
            "emails": [{"value": "B@Example.COM", "type": "Work", "primary": true}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "department": "R&D", "manager": {"value": "MGR-1"}
            },
            "groups": [{"value": "g"}]
        });
        let doc = search_doc(rt, attrs.as_object().unwrap());
        assert_eq!(doc["userName"], "bjensen");
        assert_eq!(doc["externalId"], "ExT-1");
        assert_eq!(doc["emails"][0]["value"], "b@example.com");
        assert_eq!(doc["emails"][0]["type"], "work");
        assert_eq!(doc["emails"][0]["primary"], true);
        let ext = &doc["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
        assert_eq!(ext["department"], "r&d");
        assert_eq!(ext["manager"]["value"], "mgr-1");
        assert!(doc.get("groups").is_none());
    }

    #[test]
    fn fingerprints_change_with_the_searchable_attributes() {
        let plain = SchemaRegistry::new();
        let user = plain.resource_type(ResourceKind::User);
        assert_eq!(fingerprint(user), fingerprint(user));
        assert_ne!(
            fingerprint(user),
            fingerprint(plain.resource_type(ResourceKind::Group))
        );
        let ext = |case_exact: bool| {
            let mut reg = SchemaRegistry::new();
            let schema = scimd_core::schema::Schema::from_json(&json!({
                "id": "urn:example:params:scim:schemas:extension:badge:2.0:User",
                "name": "Badge",
                "attributes": [{"name": "badge", "type": "string", "caseExact": case_exact}]
            }))
            .unwrap();
            reg.add_extension(ResourceKind::User, schema, false)
                .unwrap();
            fingerprint(reg.resource_type(ResourceKind::User))
        };
        assert_ne!(fingerprint(user), ext(false));
        assert_ne!(ext(false), ext(true));
        assert_eq!(ext(true), ext(true));
    }

    #[test]
    fn columns_hold_folded_user_name_and_emails() {
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        let attrs = json!({"userName": "Ünïcode", "emails": [{"value": "X@Y"}, {"type": "home"}]});
        let c = columns(rt, attrs.as_object().unwrap());
        assert_eq!(c.user_name_fold.as_deref(), Some("ünïcode"));
        assert_eq!(c.emails, vec!["x@y".to_string()]);
    }
}
