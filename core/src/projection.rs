//! `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9) and the `returned`
//! characteristic (RFC 7643 §2.2).
//!
//! # Rules
//!
//! - Both parameters are comma-separated attribute paths in standard notation (RFC 7644 §3.10):
//!   spaces around names are trimmed, names match case-insensitively, may be URN-qualified
//!   (`urn:ietf:params:scim:schemas:core:2.0:User:userName`) or not, may name a sub-attribute
//!   (`name.givenName`, `emails.value`), and a schema URN alone names every attribute of that
//!   schema (the whole extension). Empty items (`a,,b`) are skipped, and a parameter without
//!   any name (`attributes=`) is treated as absent.
//! - A syntactically invalid item is `invalidValue`. A well-formed name that the resource type
//!   does not define is ignored: RFC 7644 is silent, identity providers send names of attributes
//!   other servers have, and ignoring an unknown name cannot expose anything.
//! - `returned: always` (`id`, and `schemas`) is in every response, whatever the parameters say;
//!   `never` (`password`) is in none. `default` attributes are returned unless excluded or unless
//!   `attributes` is given without naming them; `request` attributes only when `attributes`
//!   names them. The same rules apply to sub-attributes: `attributes=name.givenName` returns
//!   `name` with only `givenName`, `excludedAttributes=emails.type` drops `type` from every email.
//!   A `request` sub-attribute must be named itself (naming its parent is not enough).
//! - `meta` is an ordinary `default` attribute: returned unless excluded or `attributes` names
//!   others (then `attributes=meta.lastModified` works as expected).
//! - RFC 7644 §3.4.2.5 lets a client use one of the two parameters. When both are given, both
//!   apply: `attributes` selects, then `excludedAttributes` removes from that selection. This is
//!   the only reading under which neither parameter is silently ignored.
//! - Complex values left without sub-attributes, empty arrays and extension objects left empty
//!   are removed, and a removed extension's URN is dropped from `schemas`.
//! - [`Projection::load`] tells backends whether `members` (groups) and `groups` (users) will be
//!   in the response, so that they are not loaded needlessly.

use crate::error::ScimError;
use crate::path::{AttrPath, starts_with_urn};
use crate::query::Load;
use crate::schema::common_attribute;
use crate::schema::{AttrType, AttributeDef, ResourceKind, ResourceTypeDef, Returned};
use serde_json::{Map, Value};

/// One parsed item of `attributes` / `excludedAttributes`, in canonical spelling. `ext` is the
/// extension URN for extension attributes and `None` for core and common attributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Sel {
    /// A whole schema (a URN alone).
    Schema { ext: Option<String> },
    /// An attribute, or one of its sub-attributes.
    Attr {
        ext: Option<String>,
        name: String,
        sub: Option<String>,
    },
}

/// How a list of selections names one attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Named<'a> {
    /// Not at all.
    No,
    /// As a whole (or via its schema).
    Whole,
    /// Only some sub-attributes.
    Subs(Vec<&'a str>),
}

impl Named<'_> {
    fn sub(&self, name: &str) -> bool {
        match self {
            Named::No => false,
            Named::Whole => true,
            Named::Subs(s) => s.contains(&name),
        }
    }
    fn sub_explicitly(&self, name: &str) -> bool {
        matches!(self, Named::Subs(s) if s.contains(&name))
    }
}

fn named<'a>(list: &'a [Sel], ext: Option<&str>, name: &str) -> Named<'a> {
    let mut subs = Vec::new();
    for sel in list {
        match sel {
            Sel::Schema { ext: e } if e.as_deref() == ext => return Named::Whole,
            Sel::Attr {
                ext: e,
                name: n,
                sub,
            } if e.as_deref() == ext && n == name => match sub {
                None => return Named::Whole,
                Some(s) => subs.push(s.as_str()),
            },
            _ => {}
        }
    }
    if subs.is_empty() {
        Named::No
    } else {
        Named::Subs(subs)
    }
}

/// Which attributes a response contains.
///
/// `Projection::default()` is "no parameters": every `always` and `default` attribute.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Projection {
    /// `attributes`, when given.
    attributes: Option<Vec<Sel>>,
    /// `excludedAttributes`.
    excluded: Vec<Sel>,
    /// What backends must load, decided at parse time.
    load: Load,
}

impl Projection {
    /// Parses the comma-separated `attributes` and `excludedAttributes` parameters.
    pub fn parse(
        rt: &ResourceTypeDef,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Result<Projection, ScimError> {
        // `attributes=` with no names is no restriction, not "nothing but `id`".
        let attributes = attributes
            .filter(|s| s.split(',').any(|item| !item.trim().is_empty()))
            .map(|s| parse_list(rt, s))
            .transpose()?;
        let excluded = match excluded {
            Some(s) => parse_list(rt, s)?,
            None => Vec::new(),
        };
        let mut p = Projection {
            attributes,
            excluded,
            load: Load::ALL,
        };
        let returns = |name: &str| {
            rt.schema
                .attribute(name)
                .is_some_and(|def| p.may_return(None, def))
        };
        p.load = Load {
            members: rt.kind == ResourceKind::Group && returns("members"),
            groups: rt.kind == ResourceKind::User && returns("groups"),
        };
        Ok(p)
    }

    /// What the backend must load for this projection.
    pub fn load(&self) -> Load {
        self.load
    }

    /// Applies the projection to a full resource representation (as
    /// [`Resource::to_json`](crate::resource::Resource::to_json) renders it).
    pub fn apply(&self, rt: &ResourceTypeDef, resource: Value) -> Value {
        let Value::Object(input) = resource else {
            return resource;
        };
        let mut out = Map::with_capacity(input.len());
        let mut schemas = None;
        for (key, value) in input {
            if key == "schemas" {
                schemas = Some(value);
                // Keep its position; filled in below.
                out.insert(key, Value::Null);
                continue;
            }
            if let Some(ext) = rt.extension(&key) {
                let urn = ext.schema.id.as_str();
                let Value::Object(obj) = value else {
                    continue;
                };
                let mut kept = Map::new();
                for (k, v) in obj {
                    let def = ext.schema.attribute(&k);
                    if let Some(v) = self.project_attr(Some(urn), def, &k, v) {
                        kept.insert(k, v);
                    }
                }
                if !kept.is_empty() {
                    out.insert(key, Value::Object(kept));
                }
                continue;
            }
            let def = common_attribute(&key).or_else(|| rt.schema.attribute(&key));
            if let Some(v) = self.project_attr(None, def, &key, value) {
                out.insert(key, v);
            }
        }
        // An extension whose object was projected away leaves `schemas` too.
        let dropped: Vec<&str> = rt
            .extensions
            .iter()
            .map(|e| e.schema.id.as_str())
            .filter(|urn| !out.contains_key(*urn))
            .collect();
        match schemas {
            Some(Value::Array(list)) => {
                let list = list
                    .into_iter()
                    .filter(|urn| {
                        !urn.as_str()
                            .is_some_and(|u| dropped.iter().any(|d| d.eq_ignore_ascii_case(u)))
                    })
                    .collect();
                out.insert("schemas".into(), Value::Array(list));
            }
            Some(other) => {
                out.insert("schemas".into(), other);
            }
            None => {}
        }
        Value::Object(out)
    }

    /// Whether an attribute with a value would be (at least partly) returned.
    fn may_return(&self, ext: Option<&str>, def: &AttributeDef) -> bool {
        match def.returned {
            Returned::Never => false,
            Returned::Always => true,
            Returned::Default | Returned::Request => {
                let inc = match &self.attributes {
                    None if def.returned == Returned::Request => return false,
                    None => Named::Whole,
                    Some(list) => named(list, ext, &def.name),
                };
                inc != Named::No && named(&self.excluded, ext, &def.name) != Named::Whole
            }
        }
    }

    /// Projects one top-level attribute's value; `None` drops it. `def` is `None` for keys the
    /// schema does not define, which are treated as `default` attributes.
    fn project_attr(
        &self,
        ext: Option<&str>,
        def: Option<&AttributeDef>,
        name: &str,
        value: Value,
    ) -> Option<Value> {
        let name = def.map_or(name, |d| d.name.as_str());
        let returned = def.map_or(Returned::Default, |d| d.returned);
        let (inc, exc) = match returned {
            Returned::Never => return None,
            Returned::Always => (Named::Whole, named(&self.excluded, ext, name)),
            Returned::Default | Returned::Request => {
                let inc = match &self.attributes {
                    None if returned == Returned::Request => return None,
                    None => Named::Whole,
                    Some(list) => named(list, ext, name),
                };
                let exc = named(&self.excluded, ext, name);
                if inc == Named::No || exc == Named::Whole {
                    return None;
                }
                (inc, exc)
            }
        };
        match def {
            Some(def) if def.attr_type == AttrType::Complex => {
                project_complex(def, value, &inc, &exc)
            }
            _ => Some(value),
        }
    }
}

/// Filters the sub-attributes of a complex (possibly multi-valued) value.
fn project_complex(
    def: &AttributeDef,
    value: Value,
    inc: &Named<'_>,
    exc: &Named<'_>,
) -> Option<Value> {
    let filter = |obj: Map<String, Value>| -> Option<Value> {
        let kept: Map<String, Value> = obj
            .into_iter()
            .filter(|(k, _)| {
                let sub = def.sub_attribute(k);
                let canonical = sub.map_or(k.as_str(), |s| s.name.as_str());
                match sub.map_or(Returned::Default, |s| s.returned) {
                    Returned::Never => false,
                    Returned::Always => true,
                    Returned::Default => inc.sub(canonical) && !exc.sub_explicitly(canonical),
                    Returned::Request => {
                        inc.sub_explicitly(canonical) && !exc.sub_explicitly(canonical)
                    }
                }
            })
            .collect();
        (!kept.is_empty()).then_some(Value::Object(kept))
    };
    match value {
        Value::Object(obj) => filter(obj),
        Value::Array(items) => {
            let kept: Vec<Value> = items
                .into_iter()
                .filter_map(|v| match v {
                    Value::Object(obj) => filter(obj),
                    other => Some(other),
                })
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        other => Some(other),
    }
}

/// Parses one parameter's list.
fn parse_list(rt: &ResourceTypeDef, list: &str) -> Result<Vec<Sel>, ScimError> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(sel) = parse_item(rt, item)?
            && !out.contains(&sel)
        {
            out.push(sel);
        }
    }
    Ok(out)
}

/// Parses one item; `Ok(None)` for well-formed names the resource type does not define.
fn parse_item(rt: &ResourceTypeDef, item: &str) -> Result<Option<Sel>, ScimError> {
    if starts_with_urn(item) {
        if rt.schema.id.eq_ignore_ascii_case(item) {
            return Ok(Some(Sel::Schema { ext: None }));
        }
        if let Some(ext) = rt.extension(item) {
            return Ok(Some(Sel::Schema {
                ext: Some(ext.schema.id.clone()),
            }));
        }
    }
    let path = AttrPath::parse(item)
        .map_err(|_| ScimError::invalid_value(format!("{item:?} is not a valid attribute name")))?;
    let Some(resolved) = rt.resolve(&path) else {
        return Ok(None);
    };
    let canonical = resolved.canonical_path();
    Ok(Some(Sel::Attr {
        ext: canonical.urn,
        name: canonical.name,
        sub: canonical.sub,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::resource::{Meta, Resource, Version};
    use crate::schema::{ENTERPRISE_USER, GROUP, Schema, SchemaRegistry, USER};
    use serde_json::json;

    const BASE: &str = "https://h/scim/s/v2";

    fn user_json(reg: &SchemaRegistry) -> Value {
        let t = time::macros::datetime!(2025-01-01 00:00 UTC);
        let attrs = json!({
            "externalId": "x1",
            "userName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "displayName": "Babs",
            "password": "secret",
            "emails": [
                {"value": "b@example.com", "type": "work", "primary": true},
                {"value": "b@home.example", "type": "home"}
            ],
            "groups": [{"value": "g1", "display": "G"}],
            ENTERPRISE_USER: {"employeeNumber": "7", "manager": {"value": "m1"}}
        });
        Resource {
            id: "u1".into(),
            kind: ResourceKind::User,
            meta: Meta {
                created: t,
                last_modified: t,
                version: Version(2),
            },
            attrs: attrs.as_object().cloned().unwrap(),
        }
        .to_json(reg, BASE)
    }

    fn project(attributes: Option<&str>, excluded: Option<&str>) -> Value {
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        Projection::parse(rt, attributes, excluded)
            .unwrap()
            .apply(rt, user_json(&reg))
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    #[test]
    fn default_returns_default_and_always_but_never_never() {
        let v = project(None, None);
        assert_eq!(
            keys(&v),
            [
                "schemas",
                "id",
                "externalId",
                "userName",
                "name",
                "displayName",
                "emails",
                "groups",
                ENTERPRISE_USER,
                "meta"
            ]
        );
        assert_eq!(v["schemas"], json!([USER, ENTERPRISE_USER]));
    }

    #[test]
    fn attributes_returns_named_plus_always_only() {
        let v = project(Some("userName"), None);
        assert_eq!(keys(&v), ["schemas", "id", "userName"]);
        assert_eq!(v["schemas"], json!([USER]));
    }

    #[test]
    fn attributes_are_case_insensitive_trimmed_and_urn_qualified() {
        let v = project(
            Some(" USERNAME , urn:ietf:params:scim:schemas:core:2.0:User:displayname,,"),
            None,
        );
        assert_eq!(keys(&v), ["schemas", "id", "userName", "displayName"]);
    }

    #[test]
    fn attributes_sub_attribute_returns_only_that_sub_attribute() {
        let v = project(Some("name.givenName,emails.value"), None);
        assert_eq!(v["name"], json!({"givenName": "Barbara"}));
        assert_eq!(
            v["emails"],
            json!([{"value": "b@example.com"}, {"value": "b@home.example"}])
        );
        let v = project(Some("meta.lastModified"), None);
        assert_eq!(keys(&v["meta"]), ["lastModified"]);
    }

    #[test]
    fn password_is_never_returned_even_when_requested() {
        let v = project(Some("password,userName"), None);
        assert!(v.get("password").is_none());
        assert_eq!(v["userName"], "bjensen");
    }

    #[test]
    fn id_and_schemas_are_always_returned() {
        let v = project(None, Some("id,schemas,userName"));
        assert_eq!(v["id"], "u1");
        assert_eq!(v["schemas"], json!([USER, ENTERPRISE_USER]));
        assert!(v.get("userName").is_none());
    }

    #[test]
    fn excluded_attributes_remove_default_attributes_and_sub_attributes() {
        let v = project(None, Some("emails.type, meta, name"));
        assert!(v.get("meta").is_none());
        assert!(v.get("name").is_none());
        assert_eq!(
            v["emails"],
            json!([{"value": "b@example.com", "primary": true}, {"value": "b@home.example"}])
        );
        assert_eq!(v["userName"], "bjensen");
    }

    #[test]
    fn extension_urn_alone_selects_or_excludes_the_whole_extension() {
        let v = project(Some(ENTERPRISE_USER), None);
        assert_eq!(keys(&v), ["schemas", "id", ENTERPRISE_USER]);
        assert_eq!(
            v[ENTERPRISE_USER],
            json!({"employeeNumber": "7", "manager": {"value": "m1"}})
        );
        let v = project(
            None,
            Some("URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER"),
        );
        assert!(v.get(ENTERPRISE_USER).is_none());
        assert_eq!(v["schemas"], json!([USER]));
    }

    #[test]
    fn extension_attributes_project_per_sub_attribute() {
        let v = project(Some("employeeNumber"), None);
        assert_eq!(v[ENTERPRISE_USER], json!({"employeeNumber": "7"}));
        let v = project(
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
            None,
        );
        assert_eq!(v[ENTERPRISE_USER], json!({"manager": {"value": "m1"}}));
        // Removing the last extension attribute removes the extension and its URN.
        let v = project(None, Some("employeeNumber,manager"));
        assert!(v.get(ENTERPRISE_USER).is_none());
        assert_eq!(v["schemas"], json!([USER]));
    }

    #[test]
    fn unknown_names_are_ignored_and_malformed_ones_rejected() {
        let v = project(Some("userName,bogus,name.nope"), Some("alsoBogus"));
        assert_eq!(keys(&v), ["schemas", "id", "userName"]);
        let reg = SchemaRegistry::new();
        let rt = reg.resource_type(ResourceKind::User);
        let e = Projection::parse(rt, Some("emails[type eq \"work\"]"), None).unwrap_err();
        assert_eq!(e.scim_type.map(|t| t.as_str()), Some("invalidValue"));
    }

    #[test]
    fn empty_attributes_parameter_is_no_restriction() {
        assert_eq!(project(Some(" , "), None), project(None, None));
        assert_eq!(project(Some(""), Some("")), project(None, None));
    }

    #[test]
    fn both_parameters_apply_together() {
        let v = project(Some("emails,userName"), Some("emails.type,userName"));
        assert_eq!(keys(&v), ["schemas", "id", "emails"]);
        assert_eq!(
            v["emails"],
            json!([{"value": "b@example.com", "primary": true}, {"value": "b@home.example"}])
        );
    }

    fn request_registry() -> SchemaRegistry {
        let schema = Schema::from_json(&json!({
            "id": "urn:example:acme",
            "attributes": [
                {"name": "secretish", "type": "string", "returned": "request"},
                {"name": "tag", "type": "string", "returned": "always"},
                {"name": "badge", "type": "complex", "subAttributes": [
                    {"name": "number", "type": "string"},
                    {"name": "pin", "type": "string", "returned": "request"},
                    {"name": "hash", "type": "string", "returned": "never"}
                ]}
            ]
        }))
        .unwrap();
        let mut reg = SchemaRegistry::new();
        reg.add_extension(ResourceKind::User, schema, false)
            .unwrap();
        reg
    }

    fn acme_user(reg: &SchemaRegistry) -> Value {
        let mut v = user_json(reg);
        v["urn:example:acme"] = json!({"secretish": "s", "tag": "t",
            "badge": {"number": "1", "pin": "2", "hash": "3"}});
        v["schemas"] = json!([USER, ENTERPRISE_USER, "urn:example:acme"]);
        v
    }

    #[test]
    fn request_attributes_only_when_named() {
        let reg = request_registry();
        let rt = reg.resource_type(ResourceKind::User);
        let v = Projection::default().apply(rt, acme_user(&reg));
        assert_eq!(
            v["urn:example:acme"],
            json!({"tag": "t", "badge": {"number": "1"}})
        );
        let p = Projection::parse(rt, Some("secretish,badge.pin"), None).unwrap();
        let v = p.apply(rt, acme_user(&reg));
        assert_eq!(
            v["urn:example:acme"],
            json!({"secretish": "s", "tag": "t", "badge": {"pin": "2"}})
        );
        // Naming the parent returns its default sub-attributes, not the request ones.
        let p = Projection::parse(rt, Some("badge"), None).unwrap();
        let v = p.apply(rt, acme_user(&reg));
        assert_eq!(
            v["urn:example:acme"],
            json!({"tag": "t", "badge": {"number": "1"}})
        );
    }

    #[test]
    fn always_attributes_of_extensions_survive_exclusion() {
        let reg = request_registry();
        let rt = reg.resource_type(ResourceKind::User);
        let p = Projection::parse(rt, Some("userName"), Some("tag,urn:example:acme")).unwrap();
        let v = p.apply(rt, acme_user(&reg));
        assert_eq!(v["urn:example:acme"], json!({"tag": "t"}));
        assert_eq!(v["schemas"], json!([USER, "urn:example:acme"]));
    }

    #[test]
    fn load_skips_members_and_groups_the_response_will_not_contain() {
        let reg = SchemaRegistry::new();
        let group = reg.resource_type(ResourceKind::Group);
        let user = reg.resource_type(ResourceKind::User);
        let load = |rt, a, e| Projection::parse(rt, a, e).unwrap().load();
        assert!(load(group, None, None).members);
        assert!(!load(group, None, Some("members")).members);
        assert!(!load(group, Some("displayName"), None).members);
        assert!(load(group, Some("members.value"), None).members);
        assert!(load(group, None, Some("members.display")).members);
        assert!(load(group, Some(GROUP), None).members);
        assert!(load(user, None, None).groups);
        assert!(!load(user, None, Some("groups")).groups);
        assert!(!load(user, Some("userName"), None).groups);
        assert!(load(user, Some("groups.display"), None).groups);
        assert_eq!(Projection::default().load(), Load::ALL);
    }
}
