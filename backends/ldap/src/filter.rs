//! SCIM filter → RFC 4515 LDAP filter.
//!
//! The whole AST is translated. Every translated node is a *superset* of what the core's
//! reference evaluator ([`scimd_core::filter::matches`]) selects, and carries whether it is
//! also *exact*. LDAP matching rules differ from SCIM's in ways no translation can remove
//! (RFC 4518 insignificant-space handling, Unicode folding, attributes without an ordering
//! rule), so string comparisons are supersets and the backend re-checks candidates with the
//! core evaluator; exact nodes (ids, `active`, memberships, presence) need no re-check. A
//! `not` over an inexact node widens to "everything" rather than guess, which keeps results
//! correct at the cost of a scan bounded by `max_scan`.
//!
//! Attributes the mapping cannot store make the filter fail with `invalidFilter`
//! ([`BackendError::UnsupportedFilter`]). Values are escaped (RFC 4515 §3), so a value such as
//! `*)(uid=*` is compared literally.

use crate::config::{ActiveConfig, IdSource};
use crate::mapping::{AttrMap, DirectoryMap, ObjectMap};
use scimd_core::BackendError;
use scimd_core::filter::{CompValue, CompareOp, Filter, matches_value};
use scimd_core::path::AttrPath;
use scimd_core::schema::{ResourceKind, ResourceTypeDef};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt::Write as _;

/// An LDAP filter under construction, with constant folding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LFilter {
    /// Matches every entry.
    True,
    /// Matches no entry.
    False,
    /// A complete filter item, e.g. `(uid=bjensen)`.
    Item(String),
    /// `(&...)`.
    And(Vec<LFilter>),
    /// `(|...)`.
    Or(Vec<LFilter>),
    /// `(!...)`.
    Not(Box<LFilter>),
}

impl LFilter {
    fn and(parts: Vec<LFilter>) -> LFilter {
        let mut out = Vec::new();
        for p in parts {
            match p {
                LFilter::True => {}
                LFilter::False => return LFilter::False,
                LFilter::And(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => LFilter::True,
            1 => out.pop().unwrap_or(LFilter::True),
            _ => LFilter::And(out),
        }
    }

    fn or(parts: Vec<LFilter>) -> LFilter {
        let mut out = Vec::new();
        for p in parts {
            match p {
                LFilter::False => {}
                LFilter::True => return LFilter::True,
                LFilter::Or(inner) => out.extend(inner),
                other => out.push(other),
            }
        }
        match out.len() {
            0 => LFilter::False,
            1 => out.pop().unwrap_or(LFilter::False),
            _ => LFilter::Or(out),
        }
    }

    fn not(inner: LFilter) -> LFilter {
        match inner {
            LFilter::True => LFilter::False,
            LFilter::False => LFilter::True,
            LFilter::Not(x) => *x,
            other => LFilter::Not(Box::new(other)),
        }
    }

    /// The RFC 4515 string. `True`/`False` become `(objectClass=*)` and its negation, which
    /// every directory understands (unlike RFC 4526's `(&)`/`(|)`).
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.render_into(&mut s);
        s
    }

    fn render_into(&self, out: &mut String) {
        match self {
            LFilter::True => out.push_str("(objectClass=*)"),
            LFilter::False => out.push_str("(!(objectClass=*))"),
            LFilter::Item(s) => out.push_str(s),
            LFilter::And(v) | LFilter::Or(v) => {
                out.push_str(if matches!(self, LFilter::And(_)) {
                    "(&"
                } else {
                    "(|"
                });
                for p in v {
                    p.render_into(out);
                }
                out.push(')');
            }
            LFilter::Not(x) => {
                out.push_str("(!");
                x.render_into(out);
                out.push(')');
            }
        }
    }
}

/// Escapes an assertion value (RFC 4515 §3): `*`, `(`, `)`, `\`, NUL, and — to keep filters
/// printable in logs — every other control character.
pub(crate) fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '*' | '(' | ')' | '\\' => {
                let _ = write!(out, "\\{:02x}", c as u32);
            }
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{b:02x}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Escapes raw bytes (binary assertion values such as `objectGUID`).
pub(crate) fn escape_bytes(v: &[u8]) -> String {
    let mut out = String::with_capacity(v.len() * 3);
    for b in v {
        let _ = write!(out, "\\{b:02x}");
    }
    out
}

fn eq_item(attr: &str, value: &str) -> LFilter {
    LFilter::Item(format!("({attr}={})", escape_value(value)))
}

fn present(attr: &str) -> LFilter {
    LFilter::Item(format!("({attr}=*)"))
}

/// A translated node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Translated {
    /// A filter selecting a superset of the matching entries.
    pub filter: LFilter,
    /// Whether it selects exactly the matching entries.
    pub exact: bool,
}

impl Translated {
    fn exact(filter: LFilter) -> Self {
        Translated {
            filter,
            exact: true,
        }
    }
    fn superset(filter: LFilter) -> Self {
        Translated {
            filter,
            exact: false,
        }
    }
    fn everything() -> Self {
        Translated::superset(LFilter::True)
    }
}

/// What translation needs besides the filter.
pub(crate) struct Context<'a> {
    /// The resource type's mapping.
    pub map: &'a ObjectMap,
    /// Directory-wide settings.
    pub dir: &'a DirectoryMap,
    /// The resource type's schema.
    pub rt: &'a ResourceTypeDef,
    /// Ids named by `members.value`, `groups.value` and reference comparisons, resolved to
    /// DNs (`None`: no such entry).
    pub refs: &'a HashMap<String, Option<String>>,
    /// Lossless mode: stored attributes may also live in the JSON copy (`json_attr`), which
    /// can hold more than the mapped LDAP attributes (other email types, `primary`,
    /// unmapped attributes), so their comparisons are widened with a substring test on it.
    pub json_attr: Option<&'a str>,
}

/// Ids a filter compares relation or reference attributes with (to resolve to DNs first).
pub(crate) fn referenced_ids(f: &Filter, map: &ObjectMap) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(f, None::<&AttrPath>)];
    while let Some((node, parent)) = stack.pop() {
        match node {
            Filter::And(a, b) | Filter::Or(a, b) => {
                stack.push((a, parent));
                stack.push((b, parent));
            }
            Filter::Not(a) => stack.push((a, parent)),
            Filter::ValuePath { path, filter } => stack.push((filter, Some(path))),
            Filter::Present(_) => {}
            Filter::Compare {
                path,
                op: CompareOp::Eq | CompareOp::Ne,
                value: CompValue::Str(s),
            } => {
                let full = match parent {
                    Some(p) => AttrPath {
                        urn: p.urn.clone(),
                        name: p.name.clone(),
                        sub: Some(path.name.clone()),
                    },
                    None => path.clone(),
                };
                if is_relation_value(&full) || reference_mappings(map, &full).next().is_some() {
                    out.push(s.clone());
                }
            }
            Filter::Compare { .. } => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

fn is_relation_value(p: &AttrPath) -> bool {
    p.urn.is_none()
        && (p.name == "members" || p.name == "groups")
        && p.sub.as_deref() == Some("value")
}

fn reference_mappings<'a>(
    map: &'a ObjectMap,
    p: &'a AttrPath,
) -> impl Iterator<Item = &'a AttrMap> {
    map.attrs
        .iter()
        .filter(move |m| m.reference && same_path(&m.scim.path(), p))
}

fn same_path(a: &AttrPath, b: &AttrPath) -> bool {
    a.name.eq_ignore_ascii_case(&b.name)
        && match (&a.sub, &b.sub) {
            (None, None) => true,
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
            _ => false,
        }
        && match (&a.urn, &b.urn) {
            (None, None) => true,
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
            _ => false,
        }
}

/// Whether evaluating `f` in memory needs `members` (groups) or `groups` (users) loaded.
pub(crate) fn needs_relations(f: &Filter) -> bool {
    let mut stack = vec![f];
    while let Some(node) = stack.pop() {
        match node {
            Filter::And(a, b) | Filter::Or(a, b) => {
                stack.push(a);
                stack.push(b);
            }
            Filter::Not(a) => stack.push(a),
            Filter::ValuePath { path, .. }
            | Filter::Present(path)
            | Filter::Compare { path, .. } => {
                if path.urn.is_none() && (path.name == "members" || path.name == "groups") {
                    return true;
                }
            }
        }
    }
    false
}

/// Translates a resolved filter.
pub(crate) fn translate(f: &Filter, cx: &Context<'_>) -> Result<Translated, BackendError> {
    match f {
        Filter::And(..) | Filter::Or(..) => {
            let is_and = matches!(f, Filter::And(..));
            // Chains (`a or b or c ...`) nest on the left; walk that spine in a loop so a long
            // chain does not recurse once per operand.
            let mut operands = Vec::new();
            let mut cur = f;
            loop {
                match (cur, is_and) {
                    (Filter::And(l, r), true) | (Filter::Or(l, r), false) => {
                        operands.push(r.as_ref());
                        cur = l;
                    }
                    _ => {
                        operands.push(cur);
                        break;
                    }
                }
            }
            operands.reverse();
            let mut parts = Vec::with_capacity(operands.len());
            let mut exact = true;
            for o in operands {
                let t = translate(o, cx)?;
                exact &= t.exact;
                parts.push(t.filter);
            }
            let filter = if is_and {
                LFilter::and(parts)
            } else {
                LFilter::or(parts)
            };
            Ok(Translated { filter, exact })
        }
        Filter::Not(inner) => {
            let t = translate(inner, cx)?;
            Ok(if t.exact {
                Translated::exact(LFilter::not(t.filter))
            } else {
                Translated::everything()
            })
        }
        leaf => match cx.json_attr {
            Some(json) if is_stored_leaf(leaf, cx) && !directory_decides(leaf, cx) => {
                // The mapped translation (when there is one) or the JSON copy.
                let mapped = match strict_leaf(leaf, cx) {
                    Ok(t) => t.filter,
                    Err(BackendError::UnsupportedFilter(_)) => LFilter::False,
                    Err(e) => return Err(e),
                };
                Ok(Translated::superset(LFilter::or(vec![
                    mapped,
                    json_superset(leaf, json, cx, None, 0),
                ])))
            }
            Some(_) => {
                // Metadata lives in the JSON copy in lossless mode; ids, `active` and
                // relations come from the entry, but `active` may be absent from the copy.
                let t = strict_leaf(leaf, cx)?;
                Ok(if leaf_is(leaf, "meta") {
                    Translated::everything()
                } else if leaf_is(leaf, "active") {
                    // The copy may leave `active` out while the directory says unlocked:
                    // only `eq true`/`eq false` stay supersets.
                    match leaf {
                        Filter::Compare {
                            op: CompareOp::Eq,
                            value: CompValue::Bool(_),
                            ..
                        } => Translated::superset(t.filter),
                        _ => Translated::everything(),
                    }
                } else {
                    t
                })
            }
            None => strict_leaf(leaf, cx),
        },
    }
}

fn strict_leaf(f: &Filter, cx: &Context<'_>) -> Result<Translated, BackendError> {
    match f {
        Filter::Present(path) => present_path(path, cx),
        Filter::Compare { path, op, value } => compare(path, *op, value, cx),
        Filter::ValuePath { path, filter } => value_path(path, filter, cx),
        other => translate(other, cx),
    }
}

fn leaf_path(f: &Filter) -> Option<&AttrPath> {
    match f {
        Filter::Present(p)
        | Filter::Compare { path: p, .. }
        | Filter::ValuePath { path: p, .. } => Some(p),
        _ => None,
    }
}

fn leaf_is(f: &Filter, name: &str) -> bool {
    leaf_path(f).is_some_and(|p| p.urn.is_none() && p.name == name)
}

/// Whether, in lossless mode, the directory's attribute alone decides a leaf: for a
/// single-valued attribute (or a sub-attribute of one) that is mapped, the resource's value is
/// the directory's whenever the directory has one (the copy wins only while both agree), so
/// the mapped filter is already a superset and the JSON copy need not be searched — which
/// keeps `userName eq` an indexed lookup.
fn directory_decides(f: &Filter, cx: &Context<'_>) -> bool {
    let Some(p) = leaf_path(f) else {
        return false;
    };
    if matches!(f, Filter::ValuePath { .. }) {
        return false;
    }
    let Some(r) = cx.rt.resolve(p) else {
        return false;
    };
    if r.attr.multi_valued {
        return false;
    }
    let maps = mappings_for(cx.map, p);
    !maps.is_empty()
        && maps.iter().all(|m| {
            !m.reference
                && !m.ascii_only
                && m.scim.type_eq.is_none()
                && m.scim.sub == p.sub
                && m.scim.value_type == scimd_core::schema::AttrType::String
        })
}

/// Whether a leaf compares a stored attribute (as opposed to `id`, `meta`, `schemas`,
/// `active` or the membership relations, which come from the entry itself).
fn is_stored_leaf(f: &Filter, cx: &Context<'_>) -> bool {
    let Some(p) = leaf_path(f) else {
        return false;
    };
    if p.urn.is_some() {
        return true;
    }
    let relation = (p.name == "members" && cx.map.kind == ResourceKind::Group)
        || (p.name == "groups" && cx.map.kind == ResourceKind::User);
    !(relation || ["id", "meta", "schemas", "active"].contains(&p.name.as_str()))
}

/// Whether the compared attribute holds text that the JSON copy stores verbatim (not
/// dateTime, numbers or booleans, whose JSON spelling may differ from the filter's).
fn is_textual(path: &AttrPath, parent: Option<&AttrPath>, cx: &Context<'_>) -> bool {
    let full = match parent {
        Some(p) => AttrPath {
            urn: p.urn.clone(),
            name: p.name.clone(),
            sub: Some(path.name.clone()),
        },
        None => path.clone(),
    };
    let Some(r) = cx.rt.resolve(&full) else {
        return false;
    };
    let def = r.target();
    let def = if def.attr_type == scimd_core::schema::AttrType::Complex {
        match def.sub_attribute("value") {
            Some(v) => v,
            None => return false,
        }
    } else {
        def
    };
    matches!(
        def.attr_type,
        scimd_core::schema::AttrType::String | scimd_core::schema::AttrType::Reference
    )
}

/// Whether a filter value can be looked for in the JSON copy with a case-insensitive LDAP
/// substring match and be sure to find every value the core would match: printable ASCII
/// (ASCII case folding is the same on both sides) without leading, trailing or repeated
/// spaces (which LDAP's insignificant-space handling would treat differently).
fn json_safe(v: &str) -> bool {
    !v.is_empty()
        && v.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !v.starts_with(' ')
        && !v.ends_with(' ')
        && !v.contains("  ")
}

/// A substring filter on the JSON copy that every resource matching `f` satisfies. `parent`
/// is the attribute of an enclosing value path.
fn json_superset(
    f: &Filter,
    json: &str,
    cx: &Context<'_>,
    parent: Option<&AttrPath>,
    depth: usize,
) -> LFilter {
    if depth > scimd_core::filter::MAX_DEPTH * 4 {
        return LFilter::True;
    }
    let key = |name: &str| {
        let quoted = serde_json::Value::String(name.to_string()).to_string();
        LFilter::Item(format!("({json}=*{}:*)", escape_value(&quoted)))
    };
    match f {
        Filter::And(a, b) => LFilter::and(vec![
            json_superset(a, json, cx, parent, depth + 1),
            json_superset(b, json, cx, parent, depth + 1),
        ]),
        Filter::Or(a, b) => LFilter::or(vec![
            json_superset(a, json, cx, parent, depth + 1),
            json_superset(b, json, cx, parent, depth + 1),
        ]),
        Filter::Not(_) => LFilter::True,
        Filter::Present(p) => key(p.sub.as_deref().unwrap_or(&p.name)),
        Filter::ValuePath { path, filter } => LFilter::and(vec![
            key(&path.name),
            json_superset(filter, json, cx, Some(path), depth + 1),
        ]),
        Filter::Compare {
            path,
            op: CompareOp::Eq | CompareOp::Co | CompareOp::Sw | CompareOp::Ew,
            value: CompValue::Str(v),
        } if json_safe(v) && is_textual(path, parent, cx) => {
            let encoded = serde_json::Value::String(v.clone()).to_string();
            let inner = encoded
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(&encoded);
            LFilter::Item(format!("({json}=*{}*)", escape_value(inner)))
        }
        Filter::Compare { .. } => LFilter::True,
    }
}

fn unsupported(path: &AttrPath) -> BackendError {
    BackendError::UnsupportedFilter(format!(
        "the attribute {path} is not stored in this directory and cannot be filtered on"
    ))
}

/// Mappings whose SCIM path (ignoring type selectors) is `path`; for a path without
/// sub-attribute, every mapping of the attribute's sub-attributes too.
fn mappings_for<'a>(map: &'a ObjectMap, path: &'a AttrPath) -> Vec<&'a AttrMap> {
    map.attrs
        .iter()
        .filter(|m| {
            let p = m.scim.path();
            let urn_eq = match (&p.urn, &path.urn) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            };
            urn_eq
                && p.name.eq_ignore_ascii_case(&path.name)
                && match (&path.sub, &p.sub) {
                    (None, _) => true,
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    (Some(_), None) => false,
                }
        })
        .collect()
}

fn is_common(path: &AttrPath, name: &str) -> bool {
    path.urn.is_none() && path.name == name
}

fn present_path(path: &AttrPath, cx: &Context<'_>) -> Result<Translated, BackendError> {
    if is_common(path, "id") || is_common(path, "meta") && path.sub.is_none() {
        return Ok(Translated::exact(LFilter::True));
    }
    if is_common(path, "meta") || path.name == "schemas" && path.urn.is_none() {
        return Ok(Translated::everything());
    }
    if path.urn.is_none() && path.name == "active" && cx.map.kind == ResourceKind::User {
        return match &cx.map.active {
            // `active` is always reported for users.
            Some(_) => Ok(Translated::exact(LFilter::True)),
            None => Err(unsupported(path)),
        };
    }
    if path.urn.is_none() && path.name == "members" && cx.map.kind == ResourceKind::Group {
        let attr = cx.map.member_attr.as_deref().unwrap_or("member");
        // The empty-group placeholder may linger next to real members: re-check in memory.
        return Ok(Translated::superset(present(attr)));
    }
    if path.urn.is_none() && path.name == "groups" && cx.map.kind == ResourceKind::User {
        return Ok(match (&cx.map.member_of, path.sub.as_deref()) {
            (Some(m), None | Some("value")) => Translated::superset(present(m)),
            _ => Translated::everything(),
        });
    }
    let maps = mappings_for(cx.map, path);
    if maps.is_empty() {
        return Err(unsupported(path));
    }
    let mut parts = Vec::new();
    let mut exact = true;
    for m in maps {
        parts.push(present(&m.ldap));
        // A hidden fallback value, a value that does not convert to the SCIM type or a DN
        // that no longer resolves is present in LDAP but absent in SCIM.
        exact &= m.fallback.is_none()
            && !m.reference
            && matches!(
                m.scim.value_type,
                scimd_core::schema::AttrType::String | scimd_core::schema::AttrType::Reference
            );
    }
    Ok(Translated {
        filter: LFilter::or(parts),
        exact,
    })
}

fn compare(
    path: &AttrPath,
    op: CompareOp,
    value: &CompValue,
    cx: &Context<'_>,
) -> Result<Translated, BackendError> {
    if op == CompareOp::Ne {
        // `ne` is the complement of `eq` (core semantics), including absent attributes.
        let eq = compare(path, CompareOp::Eq, value, cx)?;
        return Ok(if eq.exact {
            Translated::exact(LFilter::not(eq.filter))
        } else {
            Translated::everything()
        });
    }
    if let CompValue::Null = value {
        // `eq null` means "not present".
        let p = present_path(path, cx)?;
        return Ok(if op == CompareOp::Eq && p.exact {
            Translated::exact(LFilter::not(p.filter))
        } else {
            Translated::everything()
        });
    }
    if is_common(path, "id") {
        return Ok(compare_id(op, value, cx.dir));
    }
    if is_common(path, "meta") {
        return Ok(match path.sub.as_deref() {
            Some("created") => time_range(&cx.dir.created_attr, op, value),
            Some("lastModified") => time_range(&cx.dir.modified_attr, op, value),
            _ => Translated::everything(),
        });
    }
    if path.urn.is_none() && path.name == "schemas" {
        return Ok(Translated::everything());
    }
    if path.urn.is_none() && path.name == "active" && cx.map.kind == ResourceKind::User {
        let Some(active) = &cx.map.active else {
            return Err(unsupported(path));
        };
        return Ok(match (op, value) {
            (CompareOp::Eq, CompValue::Bool(b)) => Translated::exact(active_filter(active, *b)),
            // Booleans only compare with eq/ne; anything else never matches.
            _ => Translated::exact(LFilter::False),
        });
    }
    if path.urn.is_none() && path.name == "password" {
        return Err(unsupported(path));
    }
    if is_relation_value(path)
        || (path.urn.is_none()
            && (path.name == "members" || path.name == "groups")
            && path.sub.is_none())
    {
        return Ok(relation_compare(path, op, value, cx));
    }
    if path.urn.is_none() && (path.name == "members" || path.name == "groups") {
        // display, type, $ref of a relation: derived, compared in memory.
        return Ok(Translated::everything());
    }
    // A comparison of a complex attribute without sub-attribute compares its `value`.
    let path = match (&path.sub, cx.rt.resolve(path)) {
        (None, Some(r)) if r.attr.attr_type == scimd_core::schema::AttrType::Complex => AttrPath {
            sub: Some("value".into()),
            ..path.clone()
        },
        _ => path.clone(),
    };
    if path.sub.as_deref() == Some("type") {
        return typed_constant(&path, op, value, cx);
    }
    let maps = mappings_for(cx.map, &path);
    if maps.is_empty() {
        return Err(unsupported(&path));
    }
    let mut parts = Vec::new();
    for m in maps {
        parts.push(attr_compare(m, op, value, cx));
    }
    Ok(Translated::superset(LFilter::or(parts)))
}

/// The superset filter of one mapped attribute compared with a value.
fn attr_compare(m: &AttrMap, op: CompareOp, value: &CompValue, cx: &Context<'_>) -> LFilter {
    let text = match value {
        CompValue::Str(s) => s.clone(),
        CompValue::Num(n) => n.to_string(),
        CompValue::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        CompValue::Null => return present(&m.ldap),
    };
    if m.reference {
        return match (op, cx.refs.get(&text)) {
            (CompareOp::Eq, Some(Some(dn))) => eq_item(&m.ldap, dn),
            (CompareOp::Eq, _) => LFilter::False,
            _ => present(&m.ldap),
        };
    }
    if text.is_empty() {
        return present(&m.ldap);
    }
    let v = escape_value(&text);
    let a = &m.ldap;
    match (m.matching, op) {
        (crate::config::Matching::Presence, _)
        | (crate::config::Matching::Equality, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) => {
            return present(a);
        }
        _ => {}
    }
    match op {
        CompareOp::Eq => LFilter::Item(format!("({a}={v})")),
        CompareOp::Co => LFilter::Item(format!("({a}=*{v}*)")),
        CompareOp::Sw => LFilter::Item(format!("({a}={v}*)")),
        CompareOp::Ew => LFilter::Item(format!("({a}=*{v})")),
        // Many directory attributes (uid, cn, mail) have no ordering rule, under which `>=`
        // is undefined and matches nothing: presence is the safe superset.
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le | CompareOp::Ne => present(a),
    }
}

/// `type` sub-attributes are the constants of typed mappings (`emails[type eq "work"]`).
fn typed_constant(
    path: &AttrPath,
    op: CompareOp,
    value: &CompValue,
    cx: &Context<'_>,
) -> Result<Translated, BackendError> {
    let parent = path.parent();
    let maps = mappings_for(cx.map, &parent);
    if maps.is_empty() {
        return Err(unsupported(path));
    }
    let Some(def) = cx.rt.resolve(&parent).map(|r| r.attr) else {
        return Err(unsupported(path));
    };
    let inner = Filter::Compare {
        path: AttrPath::new("type"),
        op,
        value: value.clone(),
    };
    let mut parts = Vec::new();
    let mut exact = true;
    for m in maps {
        match &m.scim.type_eq {
            Some(t) => {
                let mut el = Map::new();
                el.insert("type".into(), Value::String(t.clone()));
                if matches_value(&inner, def, &Value::Object(el)) {
                    parts.push(present(&m.ldap));
                    exact &= m.fallback.is_none() && !m.reference;
                }
            }
            None => {
                // Untyped mappings store elements without a type: `type` never matches there.
            }
        }
    }
    Ok(Translated {
        filter: LFilter::or(parts),
        exact,
    })
}

fn relation_compare(
    path: &AttrPath,
    op: CompareOp,
    value: &CompValue,
    cx: &Context<'_>,
) -> Translated {
    let attr = match (path.name.as_str(), cx.map.kind) {
        ("members", ResourceKind::Group) => cx.map.member_attr.as_deref(),
        ("groups", ResourceKind::User) => cx.map.member_of.as_deref(),
        _ => None,
    };
    let (Some(attr), CompareOp::Eq, CompValue::Str(id)) = (attr, op, value) else {
        return Translated::everything();
    };
    if !is_canonical_id(id, cx.dir) {
        // Ids are compared exactly and stored canonically: nothing else can match.
        return Translated::exact(LFilter::False);
    }
    match cx.refs.get(id) {
        Some(Some(dn)) => Translated::exact(eq_item(attr, dn)),
        Some(None) => Translated::exact(LFilter::False),
        None => Translated::everything(),
    }
}

fn value_path(
    path: &AttrPath,
    inner: &Filter,
    cx: &Context<'_>,
) -> Result<Translated, BackendError> {
    if is_common(path, "meta") {
        return Ok(Translated::everything());
    }
    if path.urn.is_none() && (path.name == "members" || path.name == "groups") {
        // `members[value eq "id"]` is the only exact form; anything else is re-checked.
        if let Filter::Compare {
            path: sub,
            op,
            value,
        } = inner
            && sub.name.eq_ignore_ascii_case("value")
            && sub.sub.is_none()
        {
            let full = AttrPath {
                urn: None,
                name: path.name.clone(),
                sub: Some("value".into()),
            };
            return Ok(relation_compare(&full, *op, value, cx));
        }
        return Ok(Translated::everything());
    }
    let maps = mappings_for(cx.map, path);
    if maps.is_empty() {
        return Err(unsupported(path));
    }
    // One group per type selector: the element's type is that constant, its sub-attributes
    // the group's mappings.
    let mut groups: Vec<Option<&str>> = Vec::new();
    for m in &maps {
        let t = m.scim.type_eq.as_deref();
        if !groups.contains(&t) {
            groups.push(t);
        }
    }
    let mut parts = Vec::new();
    for t in groups {
        parts.push(element_filter(path, inner, t, cx, 0)?);
    }
    Ok(Translated::superset(LFilter::or(parts)))
}

/// The superset filter of "an element of `path` with type `ty` matches `inner`".
fn element_filter(
    path: &AttrPath,
    inner: &Filter,
    ty: Option<&str>,
    cx: &Context<'_>,
    depth: usize,
) -> Result<LFilter, BackendError> {
    // The parser bounds nesting; this is a second, local guard.
    if depth > scimd_core::filter::MAX_DEPTH * 4 {
        return Ok(LFilter::True);
    }
    Ok(match inner {
        Filter::And(a, b) => LFilter::and(vec![
            element_filter(path, a, ty, cx, depth + 1)?,
            element_filter(path, b, ty, cx, depth + 1)?,
        ]),
        Filter::Or(a, b) => LFilter::or(vec![
            element_filter(path, a, ty, cx, depth + 1)?,
            element_filter(path, b, ty, cx, depth + 1)?,
        ]),
        // "some element does not match" is not the negation of anything LDAP can express.
        Filter::Not(_) => element_presence(path, ty, cx),
        Filter::ValuePath { .. } => LFilter::False,
        Filter::Present(sub) | Filter::Compare { path: sub, .. } => {
            let full = AttrPath {
                urn: path.urn.clone(),
                name: path.name.clone(),
                sub: Some(sub.name.clone()),
            };
            if sub.name.eq_ignore_ascii_case("type") {
                let Some(def) = cx.rt.resolve(path).map(|r| r.attr) else {
                    return Err(unsupported(&full));
                };
                let mut el = Map::new();
                if let Some(t) = ty {
                    el.insert("type".into(), Value::String(t.to_string()));
                }
                let leaf = match inner {
                    Filter::Present(_) => Filter::Present(AttrPath::new("type")),
                    other => other.clone(),
                };
                return Ok(if matches_value(&leaf, def, &Value::Object(el)) {
                    element_presence(path, ty, cx)
                } else {
                    LFilter::False
                });
            }
            let maps: Vec<&AttrMap> = mappings_for(cx.map, &full)
                .into_iter()
                .filter(|m| m.scim.type_eq.as_deref() == ty)
                .collect();
            if maps.is_empty() {
                if mappings_for(cx.map, &full).is_empty() {
                    return Err(unsupported(&full));
                }
                // The sub-attribute is stored for other types only.
                return Ok(match inner {
                    Filter::Compare {
                        op: CompareOp::Ne, ..
                    } => element_presence(path, ty, cx),
                    _ => LFilter::False,
                });
            }
            let parts = maps
                .into_iter()
                .map(|m| match inner {
                    Filter::Present(_) => present(&m.ldap),
                    Filter::Compare {
                        op: CompareOp::Ne, ..
                    } => element_presence(path, ty, cx),
                    Filter::Compare { op, value, .. } => attr_compare(m, *op, value, cx),
                    _ => LFilter::True,
                })
                .collect();
            LFilter::or(parts)
        }
    })
}

/// "`path` has an element of type `ty`".
fn element_presence(path: &AttrPath, ty: Option<&str>, cx: &Context<'_>) -> LFilter {
    LFilter::or(
        mappings_for(cx.map, path)
            .into_iter()
            .filter(|m| m.scim.type_eq.as_deref() == ty)
            .map(|m| present(&m.ldap))
            .collect(),
    )
}

/// The LDAP filter of `active eq b`.
pub(crate) fn active_filter(a: &ActiveConfig, active: bool) -> LFilter {
    let inactive = match a {
        ActiveConfig::LockAttribute { attribute, .. } => present(attribute),
        ActiveConfig::Flag {
            attribute,
            inactive_value,
        } => eq_item(attribute, inactive_value),
        // LDAP_MATCHING_RULE_BIT_AND (Active Directory).
        ActiveConfig::Bitmask { attribute, bit, .. } => {
            LFilter::Item(format!("({attribute}:1.2.840.113556.1.4.803:={bit})"))
        }
    };
    if active {
        LFilter::not(inactive)
    } else {
        inactive
    }
}

/// Whether `id` is in the canonical form the backend reports ids in.
pub(crate) fn is_canonical_id(id: &str, dir: &DirectoryMap) -> bool {
    match dir.id {
        IdSource::EntryUuid | IdSource::ObjectGuid => is_lower_uuid(id),
    }
}

/// `8-4-4-4-12` lower-case hex.
pub(crate) fn is_lower_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

/// The LDAP filter selecting the entry with SCIM id `id` (`False` when `id` cannot be one).
pub(crate) fn id_filter(id: &str, dir: &DirectoryMap) -> LFilter {
    if !is_lower_uuid(id) {
        return LFilter::False;
    }
    match dir.id {
        IdSource::EntryUuid => eq_item("entryUUID", id),
        IdSource::ObjectGuid => match guid_bytes(id) {
            Some(bytes) => LFilter::Item(format!("(objectGUID={})", escape_bytes(&bytes))),
            None => LFilter::False,
        },
    }
}

fn compare_id(op: CompareOp, value: &CompValue, dir: &DirectoryMap) -> Translated {
    match (op, value) {
        (CompareOp::Eq, CompValue::Str(s)) => Translated::exact(id_filter(s, dir)),
        (CompareOp::Eq, _) => Translated::exact(LFilter::False),
        _ => Translated::everything(),
    }
}

/// `meta.created`/`meta.lastModified` against a generalized-time attribute: whole seconds
/// around the instant (the attributes have one-second resolution), re-checked in memory.
fn time_range(attr: &str, op: CompareOp, value: &CompValue) -> Translated {
    let CompValue::Str(s) = value else {
        return Translated::exact(LFilter::False);
    };
    let Some(t) = scimd_core::resource::parse_time(s) else {
        return Translated::exact(LFilter::False);
    };
    let t = t.to_offset(time::UtcOffset::UTC);
    let floor = generalized_time(t.unix_timestamp());
    let ceil = generalized_time(t.unix_timestamp() + i64::from(t.nanosecond() > 0));
    let (Some(floor), Some(ceil)) = (floor, ceil) else {
        return Translated::everything();
    };
    let ge = LFilter::Item(format!("({attr}>={floor})"));
    let le = LFilter::Item(format!("({attr}<={ceil})"));
    Translated::superset(match op {
        CompareOp::Gt | CompareOp::Ge => ge,
        CompareOp::Lt | CompareOp::Le => le,
        CompareOp::Eq => LFilter::and(vec![ge, le]),
        _ => present(attr),
    })
}

/// `YYYYmmddHHMMSSZ` for a Unix time.
pub(crate) fn generalized_time(unix: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).ok()?;
    Some(format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// The 16 bytes of an AD GUID in its string form (first three groups little-endian).
pub(crate) fn guid_bytes(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut raw = [0u8; 16];
    for (i, slot) in raw.iter_mut().enumerate() {
        *slot = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    let mut out = raw;
    out[0..4].copy_from_slice(&[raw[3], raw[2], raw[1], raw[0]]);
    out[4..6].copy_from_slice(&[raw[5], raw[4]]);
    out[6..8].copy_from_slice(&[raw[7], raw[6]]);
    Some(out)
}

/// The string form of an AD GUID's 16 bytes.
pub(crate) fn guid_string(b: &[u8]) -> Option<String> {
    if b.len() != 16 {
        return None;
    }
    let mut s = String::with_capacity(36);
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    for (n, i) in order.iter().enumerate() {
        if matches!(n, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{:02x}", b[*i]);
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LdapConfig;
    use crate::mapping::Mapping;
    use scimd_core::schema::SchemaRegistry;

    fn setup() -> (Mapping, SchemaRegistry) {
        let reg = SchemaRegistry::new();
        let m = LdapConfig::new("ldap://x", "dc=example,dc=org")
            .build_mapping(&reg)
            .unwrap();
        (m, reg)
    }

    fn tr(filter: &str, kind: ResourceKind) -> Result<Translated, BackendError> {
        let (m, reg) = setup();
        let rt = reg.resource_type(kind);
        let f = Filter::parse(filter).unwrap().resolve(rt).unwrap();
        let mut refs = HashMap::new();
        refs.insert(
            "0f6c3c4a-1111-4111-8111-000000000001".to_string(),
            Some("uid=a,ou=people,dc=example,dc=org".to_string()),
        );
        let cx = Context {
            map: m.object(kind),
            dir: &m.dir,
            rt,
            refs: &refs,
            json_attr: None,
        };
        translate(&f, &cx)
    }

    fn user(filter: &str) -> (String, bool) {
        let t = tr(filter, ResourceKind::User).unwrap();
        (t.filter.render(), t.exact)
    }

    #[test]
    fn injection_looking_values_are_escaped() {
        assert_eq!(
            user(r#"userName eq "*)(uid=*""#).0,
            r"(uid=\2a\29\28uid=\2a)"
        );
        assert_eq!(user(r#"userName eq "a\\b""#).0, r"(uid=a\5cb)");
        assert_eq!(user("userName sw \"x\\u0000\"").0, r"(uid=x\00*)");
    }

    #[test]
    fn substring_and_ordering_operators_translate_to_supersets() {
        assert_eq!(user(r#"userName co "ab""#), ("(uid=*ab*)".into(), false));
        assert_eq!(user(r#"userName sw "ab""#).0, "(uid=ab*)");
        assert_eq!(user(r#"userName ew "ab""#).0, "(uid=*ab)");
        assert_eq!(user(r#"userName gt "m""#).0, "(uid=*)");
    }

    #[test]
    fn sub_attributes_and_typed_values_map_to_their_ldap_attributes() {
        assert_eq!(user(r#"name.givenName eq "Bo""#).0, "(givenName=Bo)");
        assert_eq!(
            user(r#"emails[type eq "work" and value co "@x"]"#).0,
            "(&(mail=*)(mail=*@x*))"
        );
        assert_eq!(user(r#"emails[type eq "home"]"#).0, "(!(objectClass=*))");
        assert_eq!(user(r#"emails.type eq "work""#), ("(mail=*)".into(), true));
        assert_eq!(
            user(r#"phoneNumbers.value eq "1""#).0,
            "(|(telephoneNumber=1)(mobile=1)(homePhone=1)(facsimileTelephoneNumber=*)(pager=1))"
        );
    }

    #[test]
    fn ids_active_and_memberships_are_exact() {
        let id = "0f6c3c4a-1111-4111-8111-000000000001";
        assert_eq!(
            user(&format!("id eq \"{id}\"")),
            (format!("(entryUUID={id})"), true)
        );
        assert_eq!(
            user(r#"id eq "NOT-AN-ID""#),
            ("(!(objectClass=*))".into(), true)
        );
        assert_eq!(
            user("active eq false"),
            ("(pwdAccountLockedTime=*)".into(), true)
        );
        assert_eq!(
            user("not (active eq false)"),
            ("(!(pwdAccountLockedTime=*))".into(), true)
        );
        let t = tr(&format!("members[value eq \"{id}\"]"), ResourceKind::Group).unwrap();
        assert_eq!(
            (t.filter.render(), t.exact),
            ("(member=uid=a,ou=people,dc=example,dc=org)".into(), true)
        );
        assert_eq!(
            user(&format!("groups.value eq \"{id}\"")),
            ("(memberOf=uid=a,ou=people,dc=example,dc=org)".into(), true)
        );
    }

    #[test]
    fn negation_of_an_inexact_node_widens_to_everything() {
        assert_eq!(
            user(r#"not (userName eq "x")"#),
            ("(objectClass=*)".into(), false)
        );
        assert_eq!(
            user(r#"userName ne "x""#),
            ("(objectClass=*)".into(), false)
        );
    }

    #[test]
    fn logical_operators_fold_constants() {
        assert_eq!(
            user(r#"userName eq "a" or emails[type eq "home"]"#).0,
            "(uid=a)"
        );
        assert_eq!(
            user(r#"userName eq "a" and title pr"#).0,
            "(&(uid=a)(title=*))"
        );
    }

    #[test]
    fn unmapped_attributes_are_unsupported_filters() {
        for f in [
            r#"nickName eq "x""#,
            r#"externalId eq "x""#,
            r#"emails.primary eq true"#,
        ] {
            assert!(
                matches!(
                    tr(f, ResourceKind::User),
                    Err(BackendError::UnsupportedFilter(_))
                ),
                "{f}"
            );
        }
    }

    #[test]
    fn long_or_chains_do_not_recurse_per_operand() {
        let f = (0..300)
            .map(|i| format!("userName eq \"u{i}\""))
            .collect::<Vec<_>>()
            .join(" or ");
        let (s, _) = user(&f);
        assert!(s.starts_with("(|(uid=u0)(uid=u1)"));
    }

    #[test]
    fn lossless_mode_widens_stored_attributes_with_the_json_copy() {
        let (m, reg) = setup();
        let rt = reg.resource_type(ResourceKind::User);
        let refs = HashMap::new();
        let cx = Context {
            map: m.object(ResourceKind::User),
            dir: &m.dir,
            rt,
            refs: &refs,
            json_attr: Some("scimdJson"),
        };
        let t = |s: &str| translate(&Filter::parse(s).unwrap().resolve(rt).unwrap(), &cx).unwrap();
        assert_eq!(
            t(r#"userName eq "bjensen""#).filter.render(),
            "(uid=bjensen)"
        );
        let r = t(r#"externalId eq "ext-(1)""#);
        assert_eq!(r.filter.render(), r"(scimdJson=*ext-\281\29*)");
        assert!(!r.exact);
        assert_eq!(
            t(r#"emails.value eq "a@x""#).filter.render(),
            "(|(mail=a@x)(scimdJson=*a@x*))"
        );
        assert_eq!(
            t(r#"nickName eq "two  spaces""#).filter.render(),
            "(objectClass=*)"
        );
        let id = t(r#"id eq "0f6c3c4a-1111-4111-8111-000000000001""#);
        assert!(id.exact);
        assert!(!t("active eq true").exact);
    }

    #[test]
    fn times_widen_to_whole_seconds() {
        assert_eq!(
            user(r#"meta.created gt "2024-01-02T03:04:05.5Z""#).0,
            "(createTimestamp>=20240102030405Z)"
        );
        assert_eq!(
            user(r#"meta.lastModified lt "2024-01-02T03:04:05.5Z""#).0,
            "(modifyTimestamp<=20240102030406Z)"
        );
    }

    #[test]
    fn guids_round_trip() {
        let s = "c4b3e1a2-5f6e-4d7c-8b9a-0a1b2c3d4e5f";
        let b = guid_bytes(s).unwrap();
        assert_eq!(b[0], 0xa2);
        assert_eq!(guid_string(&b).unwrap(), s);
    }
}
