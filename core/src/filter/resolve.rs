//! Resolution of filter paths against a resource type, with type checks.
//!
//! Resolution turns a parsed filter into the form every backend receives:
//!
//! - every path in canonical spelling, the URN kept only for extension attributes;
//! - a comparison on a complex attribute without a sub-attribute (`emails co "@x"`,
//!   `members eq "id"`, `manager eq "id"`) rewritten to its `value` sub-attribute, so that
//!   backends only ever compare simple attributes;
//! - inside `attr[...]`, paths are the canonical names of `attr`'s sub-attributes;
//! - every comparison type-checked against the attribute (RFC 7644 §3.4.2.2): wrong operators
//!   or values of the wrong JSON type are `invalidFilter`, as are unknown attributes.
//!
//! The one name outside the schemas is `schemas` (used by an RFC 7644 example): a multi-valued,
//! case-insensitive string holding the core schema URN and the URN of every extension the
//! resource carries.

use super::{CompValue, CompareOp, Filter};
use crate::error::ScimError;
use crate::path::AttrPath;
use crate::resource::parse_time;
use crate::schema::{AttrType, AttributeDef, ResourceTypeDef, Returned};
use std::sync::OnceLock;

/// The name of the `schemas` pseudo-attribute.
pub(super) const SCHEMAS: &str = "schemas";

/// The definition used for `schemas`.
pub(super) fn schemas_def() -> &'static AttributeDef {
    static DEF: OnceLock<AttributeDef> = OnceLock::new();
    DEF.get_or_init(|| {
        let mut d = AttributeDef::new(SCHEMAS, AttrType::String);
        d.multi_valued = true;
        d.description = "The schema URNs of the resource.".into();
        d
    })
}

/// Whether `path` is the bare `schemas` pseudo-attribute.
pub(super) fn is_schemas(path: &AttrPath) -> bool {
    path.urn.is_none() && path.sub.is_none() && path.name.eq_ignore_ascii_case(SCHEMAS)
}

/// Where paths are resolved: at the top of the resource, or inside `attr[...]`.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Resource(&'a ResourceTypeDef),
    Values {
        attr: &'a AttributeDef,
        path: &'a AttrPath,
    },
}

/// A resolved path: its canonical form, the definition it designates, and, for a top-level
/// path without sub-attribute, the attribute (for the complex → `value` rewrite).
struct Target<'a> {
    path: AttrPath,
    def: &'a AttributeDef,
}

impl Filter {
    /// Resolves every path against a resource type: canonical spelling, URN kept only for
    /// extension attributes, and type checks (e.g. `gt` on a boolean is `invalidFilter`).
    ///
    /// The result is what backends receive: paths in canonical spelling; a comparison on a
    /// complex attribute without sub-attribute (`emails co "@x"`, `members eq "id"`,
    /// `manager eq "id"`) rewritten to its `value` sub-attribute; inside `attr[...]`, the
    /// canonical names of `attr`'s sub-attributes. Resolving a resolved filter changes nothing.
    ///
    /// Every failure is `invalidFilter`:
    /// - unknown attributes, sub-attributes or schema URNs — rejected rather than treated as
    ///   never matching, so that a client filtering on an attribute this server does not have
    ///   learns it;
    /// - attributes that are never returned (`password`): a filter on them would be an oracle
    ///   for their value;
    /// - `gt`/`ge`/`lt`/`le` on booleans and binary (RFC 7644 §3.4.2.2), `co`/`sw`/`ew` on
    ///   anything but strings and references, any comparison on a complex attribute without a
    ///   `value` sub-attribute, any operator but `eq`/`ne` with `null`;
    /// - a value of the wrong JSON type: strings for string, reference, binary and dateTime
    ///   (an RFC 3339 timestamp), `true`/`false` for booleans, whole numbers for integers,
    ///   numbers for decimals;
    /// - a value filter on a non-complex attribute or on a sub-attribute, a nested value
    ///   filter, or a path inside `attr[...]` that is not a single sub-attribute name.
    pub fn resolve(&self, rt: &ResourceTypeDef) -> Result<Filter, ScimError> {
        resolve_node(self, Scope::Resource(rt))
    }
}

fn resolve_node(filter: &Filter, scope: Scope<'_>) -> Result<Filter, ScimError> {
    match filter {
        Filter::And(..) | Filter::Or(..) => {
            // A flat chain is walked in a loop (see the parser): recursion only where the text
            // nests.
            let mut spine = Vec::new();
            let mut cur = filter;
            loop {
                match cur {
                    Filter::And(l, r) => {
                        spine.push((true, r));
                        cur = l;
                    }
                    Filter::Or(l, r) => {
                        spine.push((false, r));
                        cur = l;
                    }
                    _ => break,
                }
            }
            let mut acc = resolve_node(cur, scope)?;
            for (is_and, r) in spine.into_iter().rev() {
                let r = Box::new(resolve_node(r, scope)?);
                acc = if is_and {
                    Filter::And(Box::new(acc), r)
                } else {
                    Filter::Or(Box::new(acc), r)
                };
            }
            Ok(acc)
        }
        Filter::Not(inner) => Ok(Filter::Not(Box::new(resolve_node(inner, scope)?))),
        Filter::Present(path) => Ok(Filter::Present(resolve_path(path, scope)?.path)),
        Filter::Compare { path, op, value } => {
            let mut target = resolve_path(path, scope)?;
            if target.def.attr_type == AttrType::Complex {
                let Some(v) = target.def.sub_attribute("value") else {
                    return Err(ScimError::invalid_filter(format!(
                        "{} is a complex attribute without a value sub-attribute; compare one \
                         of its sub-attributes",
                        target.path
                    )));
                };
                target.path.sub = Some(v.name.clone());
                target.def = v;
            }
            check_comparison(&target.path, target.def, *op, value)?;
            Ok(Filter::Compare {
                path: target.path,
                op: *op,
                value: value.clone(),
            })
        }
        Filter::ValuePath {
            path,
            filter: inner,
        } => {
            let Scope::Resource(_) = scope else {
                return Err(ScimError::invalid_filter(
                    "value filters cannot be nested inside a value filter",
                ));
            };
            if path.sub.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "a value filter applies to an attribute, not to the sub-attribute {path}"
                )));
            }
            let target = resolve_path(path, scope)?;
            if target.def.attr_type != AttrType::Complex {
                return Err(ScimError::invalid_filter(format!(
                    "{} is not a complex attribute, so it cannot have a value filter [...]",
                    target.path
                )));
            }
            let inner = resolve_node(
                inner,
                Scope::Values {
                    attr: target.def,
                    path: &target.path,
                },
            )?;
            Ok(Filter::ValuePath {
                path: target.path,
                filter: Box::new(inner),
            })
        }
    }
}

fn resolve_path<'a>(path: &AttrPath, scope: Scope<'a>) -> Result<Target<'a>, ScimError> {
    let target = match scope {
        Scope::Resource(_) if is_schemas(path) => Target {
            path: AttrPath::new(SCHEMAS),
            def: schemas_def(),
        },
        Scope::Resource(rt) => {
            let Some(r) = rt.resolve(path) else {
                return Err(unknown(rt, path));
            };
            Target {
                path: r.canonical_path(),
                def: r.sub.unwrap_or(r.attr),
            }
        }
        Scope::Values { attr, path: outer } => {
            if path.urn.is_some() || path.sub.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "inside {outer}[...], a path names one sub-attribute of {outer}; {path} is \
                     not one"
                )));
            }
            let Some(sub) = attr.sub_attribute(&path.name) else {
                return Err(ScimError::invalid_filter(format!(
                    "{outer} has no sub-attribute {:?}",
                    path.name
                )));
            };
            Target {
                path: AttrPath::new(sub.name.clone()),
                def: sub,
            }
        }
    };
    if target.def.returned == Returned::Never {
        return Err(ScimError::invalid_filter(format!(
            "{} is never returned and cannot be used in a filter",
            target.path
        )));
    }
    Ok(target)
}

/// The error for a path that does not resolve, saying which part is unknown.
fn unknown(rt: &ResourceTypeDef, path: &AttrPath) -> ScimError {
    if let Some(urn) = &path.urn
        && rt.schema_by_urn(urn).is_none()
    {
        return ScimError::invalid_filter(format!(
            "unknown schema {urn:?} in filter path {path} (resource type {})",
            rt.kind.name()
        ));
    }
    if let Some(sub) = &path.sub
        && let Some(parent) = rt.resolve(&path.parent())
    {
        return ScimError::invalid_filter(format!(
            "{} has no sub-attribute {sub:?}",
            parent.canonical_path()
        ));
    }
    ScimError::invalid_filter(format!(
        "unknown attribute {path} in filter (resource type {})",
        rt.kind.name()
    ))
}

/// RFC 7644 §3.4.2.2 type rules for `path op value`, `def` being a simple attribute.
fn check_comparison(
    path: &AttrPath,
    def: &AttributeDef,
    op: CompareOp,
    value: &CompValue,
) -> Result<(), ScimError> {
    let ty = def.attr_type.as_str();
    let op_s = op.as_str();
    if *value == CompValue::Null {
        // `eq null` / `ne null` mean "absent" / "present" (RFC 7643 §2.5: null and unassigned
        // are the same state); no other operator has a meaning for null.
        return if matches!(op, CompareOp::Eq | CompareOp::Ne) {
            Ok(())
        } else {
            Err(ScimError::invalid_filter(format!(
                "{path} {op_s} null: null can only be compared with eq or ne"
            )))
        };
    }
    let op_ok = match def.attr_type {
        AttrType::String | AttrType::Reference => true,
        // RFC 7644 §3.4.2.2: gt/ge/lt/le on boolean or binary SHALL fail with invalidFilter.
        // Substrings of base64 text are not substrings of the bytes, so co/sw/ew are refused
        // on binary too; they are string operators.
        AttrType::Boolean | AttrType::Binary => matches!(op, CompareOp::Eq | CompareOp::Ne),
        AttrType::Integer | AttrType::Decimal | AttrType::DateTime => !op.is_substring(),
        AttrType::Complex => false,
    };
    if !op_ok {
        return Err(ScimError::invalid_filter(format!(
            "the operator {op_s} is not supported on {path}, which is of type {ty}"
        )));
    }
    let value_ok = match (def.attr_type, value) {
        (AttrType::String | AttrType::Reference | AttrType::Binary, CompValue::Str(_)) => true,
        (AttrType::DateTime, CompValue::Str(s)) => {
            if parse_time(s).is_none() {
                return Err(ScimError::invalid_filter(format!(
                    "{path} is a dateTime; {s:?} is not an RFC 3339 timestamp \
                     (e.g. \"2011-05-13T04:42:34Z\")"
                )));
            }
            true
        }
        (AttrType::Boolean, CompValue::Bool(_)) => true,
        (AttrType::Integer, CompValue::Num(n)) => n.is_i64() || n.is_u64(),
        (AttrType::Decimal, CompValue::Num(_)) => true,
        _ => false,
    };
    if !value_ok {
        let expected = match def.attr_type {
            AttrType::String | AttrType::Reference => "a string in double quotes",
            AttrType::Binary => "a base64 string in double quotes",
            AttrType::DateTime => "an RFC 3339 timestamp in double quotes",
            AttrType::Boolean => "true or false",
            AttrType::Integer => "a whole number",
            AttrType::Decimal => "a number",
            AttrType::Complex => "a sub-attribute",
        };
        return Err(ScimError::invalid_filter(format!(
            "{path} is of type {ty}; compare it with {expected}, not {value}"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::fixtures::{ACME, groups, registry, users};
    use super::*;
    use crate::error::ScimType;
    use crate::schema::ENTERPRISE_USER;

    fn resolved(rt: &ResourceTypeDef, text: &str) -> String {
        match Filter::parse(text).unwrap().resolve(rt) {
            Ok(f) => f.to_string(),
            Err(e) => panic!("{text:?} did not resolve: {e}"),
        }
    }

    /// The error detail when `text` fails to resolve (and that it is invalidFilter).
    fn rejected(rt: &ResourceTypeDef, text: &str) -> String {
        match Filter::parse(text).unwrap().resolve(rt) {
            Ok(f) => panic!("{text:?} resolved to {f}"),
            Err(e) => {
                assert_eq!(
                    (e.status, e.scim_type),
                    (400, Some(ScimType::InvalidFilter)),
                    "{text:?}"
                );
                e.detail
            }
        }
    }

    #[test]
    fn paths_get_their_canonical_spelling() {
        let reg = registry();
        let u = users(&reg);
        for (input, canonical) in [
            (r#"USERNAME Eq "x""#, r#"userName eq "x""#),
            (r#"NAME.FAMILYNAME co "x""#, r#"name.familyName co "x""#),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
                r#"userName sw "J""#,
            ),
            (
                r#"URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:NAME.givenname pr"#,
                "name.givenName pr",
            ),
            (r#"ID eq "x""#, r#"id eq "x""#),
            (
                r#"Meta.LastModified gt "2011-05-13T04:42:34Z""#,
                r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            ),
            (r#"externalid eq "x""#, r#"externalId eq "x""#),
            (
                r#"EMAILS[TYPE eq "work" and Value co "@example.com"]"#,
                r#"emails[type eq "work" and value co "@example.com"]"#,
            ),
            (r#"schemas eq "urn:x""#, r#"schemas eq "urn:x""#),
            (
                r#"not (title pr) or USERTYPE eq "Employee" and nickname pr"#,
                r#"not (title pr) or userType eq "Employee" and nickName pr"#,
            ),
        ] {
            assert_eq!(resolved(u, input), canonical, "{input}");
        }
    }

    #[test]
    fn extension_paths_keep_their_canonical_urn() {
        let reg = registry();
        let u = users(&reg);
        assert_eq!(
            resolved(u, r#"employeeNumber eq "701984""#),
            format!(r#"{ENTERPRISE_USER}:employeeNumber eq "701984""#)
        );
        assert_eq!(
            resolved(
                u,
                r#"urn:IETF:params:scim:schemas:extension:ENTERPRISE:2.0:user:Manager.Value eq "x""#
            ),
            format!(r#"{ENTERPRISE_USER}:manager.value eq "x""#)
        );
        assert_eq!(
            resolved(u, r#"sites[CODE eq "HQ" and floor gt 2]"#),
            format!(r#"{ACME}:sites[code eq "HQ" and floor gt 2]"#)
        );
    }

    #[test]
    fn comparing_a_complex_attribute_compares_its_value() {
        let reg = registry();
        let u = users(&reg);
        assert_eq!(
            resolved(u, r#"emails co "@example.com""#),
            r#"emails.value co "@example.com""#
        );
        assert_eq!(
            resolved(u, r#"manager eq "26118915""#),
            format!(r#"{ENTERPRISE_USER}:manager.value eq "26118915""#)
        );
        assert_eq!(
            resolved(groups(&reg), r#"Members eq "2819c223""#),
            r#"members.value eq "2819c223""#
        );
        // Presence of the complex attribute itself is kept as is.
        assert_eq!(resolved(u, "emails pr"), "emails pr");
        assert_eq!(resolved(u, "name pr"), "name pr");
        // Without a `value` sub-attribute there is nothing to compare.
        let d = rejected(u, r#"name eq "Babs""#);
        assert!(d.contains("name") && d.contains("value"), "{d}");
        assert!(rejected(u, r#"meta eq "x""#).contains("meta"));
        assert!(rejected(u, r#"sites eq "x""#).contains("sites"));
    }

    #[test]
    fn unknown_attributes_are_rejected_by_name() {
        let reg = registry();
        let u = users(&reg);
        assert!(rejected(u, r#"bogus eq "x""#).contains("bogus"));
        assert!(rejected(u, "bogus pr").contains("bogus"));
        let d = rejected(u, r#"name.nickName eq "x""#);
        assert!(d.contains("name") && d.contains("nickName"), "{d}");
        let d = rejected(u, r#"urn:example:unknown:1.0:User:userName eq "x""#);
        assert!(d.contains("urn:example:unknown:1.0:User"), "{d}");
        // Group attributes do not resolve on users, and the other way round.
        assert!(rejected(u, r#"members eq "x""#).contains("members"));
        assert!(rejected(groups(&reg), r#"userName eq "x""#).contains("userName"));
        assert!(rejected(u, r#"emails[bogus eq "x"]"#).contains("bogus"));
        assert!(rejected(u, r#"bogus[type eq "x"]"#).contains("bogus"));
    }

    #[test]
    fn value_filters_need_a_complex_attribute_and_single_names_inside() {
        let reg = registry();
        let u = users(&reg);
        assert!(rejected(u, r#"userName[value eq "x"]"#).contains("not a complex"));
        assert!(rejected(u, r#"tags[value eq "x"]"#).contains("not a complex"));
        assert!(rejected(u, r#"emails[value.x eq "x"]"#).contains("value.x"));
        assert!(rejected(u, r#"emails[emails.type eq "work"]"#).contains("emails.type"));
        assert!(
            rejected(
                u,
                r#"emails[urn:ietf:params:scim:schemas:core:2.0:User:type eq "work"]"#
            )
            .contains("sub-attribute")
        );
        // A single-valued complex attribute may carry a value filter too.
        assert_eq!(
            resolved(u, r#"name[givenName eq "Barbara"]"#),
            r#"name[givenName eq "Barbara"]"#
        );
        // Trees the parser never builds are still refused.
        let nested = Filter::ValuePath {
            path: AttrPath::new("emails"),
            filter: Box::new(Filter::ValuePath {
                path: AttrPath::new("type"),
                filter: Box::new(Filter::Present(AttrPath::new("value"))),
            }),
        };
        assert!(nested.resolve(u).is_err());
        let with_sub = Filter::ValuePath {
            path: AttrPath::with_sub("emails", "value"),
            filter: Box::new(Filter::Present(AttrPath::new("type"))),
        };
        assert!(with_sub.resolve(u).is_err());
    }

    #[test]
    fn ordering_operators_are_refused_on_booleans_and_binary() {
        let reg = registry();
        let u = users(&reg);
        for op in ["gt", "ge", "lt", "le"] {
            let d = rejected(u, &format!("active {op} true"));
            assert!(d.contains(op) && d.contains("boolean"), "{d}");
            let d = rejected(u, &format!(r#"x509Certificates.value {op} "AA==""#));
            assert!(d.contains("binary"), "{d}");
        }
        assert_eq!(resolved(u, "active eq true"), "active eq true");
        assert_eq!(resolved(u, "active ne false"), "active ne false");
        assert_eq!(
            resolved(u, r#"photoHash eq "q83vEjRWeJA=""#),
            format!(r#"{ACME}:photoHash eq "q83vEjRWeJA=""#)
        );
    }

    #[test]
    fn substring_operators_need_string_like_attributes() {
        let reg = registry();
        let u = users(&reg);
        for op in ["co", "sw", "ew"] {
            for bad in [
                "active {op} true".to_string(),
                r#"meta.created {op} "2011""#.to_string(),
                "badgeNumber {op} 4".to_string(),
                "salary {op} 4".to_string(),
                r#"photoHash {op} "q8""#.to_string(),
            ] {
                let text = bad.replace("{op}", op);
                assert!(rejected(u, &text).contains(op), "{text}");
            }
            assert!(resolved(u, &format!(r#"userName {op} "j""#)).contains(op));
            assert!(resolved(u, &format!(r#"profileUrl {op} "https""#)).contains(op));
        }
    }

    #[test]
    fn values_of_the_wrong_type_are_rejected() {
        let reg = registry();
        let u = users(&reg);
        for (text, hint) in [
            (r#"active eq "yes""#, "true or false"),
            (r#"active eq 1"#, "true or false"),
            (r#"meta.created gt 5"#, "timestamp"),
            (r#"meta.created gt "yesterday""#, "RFC 3339"),
            (r#"meta.lastModified ge "2011-05-13""#, "RFC 3339"),
            (r#"userName eq 5"#, "string"),
            (r#"userName eq true"#, "string"),
            (r#"badgeNumber eq "42""#, "whole number"),
            (r#"badgeNumber gt 4.5"#, "whole number"),
            (r#"salary lt "100""#, "number"),
            (r#"photoHash eq 7"#, "base64"),
        ] {
            let d = rejected(u, text);
            assert!(d.contains(hint), "{text}: {d}");
        }
        assert!(resolved(u, "salary gt 4").contains("salary gt 4"));
        assert!(resolved(u, "badgeNumber ge -3").contains("badgeNumber ge -3"));
        assert!(
            resolved(u, r#"meta.created gt "2011-05-13T04:42:34.5+02:00""#).contains("created")
        );
    }

    #[test]
    fn null_compares_only_with_eq_and_ne() {
        let reg = registry();
        let u = users(&reg);
        assert_eq!(resolved(u, "title eq null"), "title eq null");
        assert_eq!(resolved(u, "active ne null"), "active ne null");
        assert_eq!(resolved(u, "emails ne null"), "emails.value ne null");
        for op in ["gt", "co", "sw"] {
            assert!(rejected(u, &format!("title {op} null")).contains("null"));
        }
    }

    #[test]
    fn never_returned_attributes_cannot_be_filtered() {
        let reg = registry();
        let u = users(&reg);
        assert!(rejected(u, r#"password eq "secret""#).contains("password"));
        assert!(rejected(u, "password pr").contains("password"));
    }
}
