//! The reference in-memory evaluator: the semantics every backend is tested against.
//!
//! The rules are documented on the [`filter`](super) module.
//!
//! The evaluator works on resolved filters and, because lookups are case-insensitive, also on
//! unresolved ones that would resolve; it never panics and its recursion is bounded by the
//! filter's parenthesis nesting.

use super::Filter;
use super::resolve::{is_schemas, schemas_def};
use super::{CompValue, CompareOp};
use crate::path::AttrPath;
use crate::resource::{Resource, Version, parse_time};
use crate::schema::{AttrType, AttributeDef, ResourceTypeDef};
use serde_json::{Number, Value};
use std::cmp::Ordering;
use time::OffsetDateTime;

/// Whether `resource` matches a resolved `filter`.
pub fn matches(filter: &Filter, rt: &ResourceTypeDef, resource: &Resource) -> bool {
    eval(filter, &ResourceSubject { rt, resource })
}

/// Whether one value of a multi-valued/complex attribute `def` matches a value filter (the
/// inside of `emails[...]`). Paths in `filter` name sub-attributes of `def`
/// (case-insensitively); a nested value filter never matches.
pub fn matches_value(filter: &Filter, def: &AttributeDef, value: &Value) -> bool {
    eval(filter, &ValueSubject { def, value })
}

/// Compares two values of a (simple) attribute by its type and `caseExact`; `None` when they
/// are not comparable (wrong JSON types, unparsable timestamps, nulls). For a complex
/// attribute, compares the `value` sub-attributes when it has one.
pub fn compare_values(def: &AttributeDef, a: &Value, b: &Value) -> Option<Ordering> {
    match def.attr_type {
        AttrType::String | AttrType::Reference | AttrType::Binary => {
            Some(compare_str(a.as_str()?, b.as_str()?, is_exact(def)))
        }
        AttrType::DateTime => Some(parse_time(a.as_str()?)?.cmp(&parse_time(b.as_str()?)?)),
        AttrType::Integer | AttrType::Decimal => compare_numbers(a.as_number()?, b.as_number()?),
        AttrType::Boolean => Some(a.as_bool()?.cmp(&b.as_bool()?)),
        AttrType::Complex => {
            let v = def.sub_attribute("value")?;
            compare_values(v, a.get(&v.name)?, b.get(&v.name)?)
        }
    }
}

/// The thing a filter is evaluated against: a resource, or one value inside `attr[...]`.
trait Subject {
    /// Evaluates a `Compare`, `Present` or `ValuePath` node.
    fn leaf(&self, filter: &Filter) -> bool;
}

/// The logical connectives. The left spine of a chain is walked in a loop (`a or b or c …`
/// does not recurse); recursion only follows right operands and `not`, whose depth the
/// parser bounds.
fn eval(filter: &Filter, subject: &impl Subject) -> bool {
    let mut cur = filter;
    loop {
        match cur {
            Filter::Or(l, r) => {
                if eval(r, subject) {
                    return true;
                }
                cur = l;
            }
            Filter::And(l, r) => {
                if !eval(r, subject) {
                    return false;
                }
                cur = l;
            }
            Filter::Not(inner) => return !eval(inner, subject),
            leaf => return subject.leaf(leaf),
        }
    }
}

/// The values a path designates in one resource or value, before flattening.
enum Found<'a> {
    /// Nothing (absent, or not stored such as `meta.location`).
    Absent,
    /// A JSON value (an array is flattened into its elements).
    Json(&'a Value),
    /// The sub-attribute `sub` of the complex value(s) in `top`.
    Sub(&'a Value, &'a str),
    /// A server-maintained string (`id`, `meta.resourceType`).
    Str(&'a str),
    /// A server-maintained instant (`meta.created`, `meta.lastModified`).
    Time(OffsetDateTime),
    /// `meta.version`, as its ETag.
    Version(Version),
    /// `schemas`.
    Schemas,
    /// `meta` itself.
    Meta,
}

/// One candidate value to compare with.
#[derive(Clone, Copy)]
enum Cand<'a> {
    Json(&'a Value),
    Str(&'a str),
    Time(OffsetDateTime),
}

struct ResourceSubject<'a> {
    rt: &'a ResourceTypeDef,
    resource: &'a Resource,
}

impl ResourceSubject<'_> {
    /// The definition a path designates and where its values are.
    fn lookup(&self, path: &AttrPath) -> Option<(&AttributeDef, Found<'_>)> {
        if is_schemas(path) {
            return Some((schemas_def(), Found::Schemas));
        }
        let r = self.rt.resolve(path)?;
        let res = self.resource;
        let found = if r.is_core && std::ptr::eq(r.attr, common("id")?) {
            Found::Str(&res.id)
        } else if r.is_core && std::ptr::eq(r.attr, common("meta")?) {
            match r.sub.map(|s| s.name.as_str()) {
                None => Found::Meta,
                Some("created") => Found::Time(res.meta.created),
                Some("lastModified") => Found::Time(res.meta.last_modified),
                Some("version") => Found::Version(res.meta.version),
                Some("resourceType") => Found::Str(res.kind.name()),
                Some(_) => Found::Absent,
            }
        } else {
            let top = if r.is_core {
                res.attrs.get(&r.attr.name)
            } else {
                res.attrs
                    .get(r.schema)
                    .and_then(|ext| ext.get(&r.attr.name))
            };
            match (top, r.sub) {
                (None, _) => Found::Absent,
                (Some(top), Some(sub)) => Found::Sub(top, &sub.name),
                (Some(top), None) => Found::Json(top),
            }
        };
        Some((r.sub.unwrap_or(r.attr), found))
    }
}

fn common(name: &str) -> Option<&'static AttributeDef> {
    crate::schema::common_attribute(name)
}

impl Subject for ResourceSubject<'_> {
    fn leaf(&self, filter: &Filter) -> bool {
        match filter {
            Filter::Present(path) => self
                .lookup(path)
                .is_some_and(|(_, found)| is_present(&found)),
            Filter::Compare { path, op, value } => {
                // Whatever cannot be compared matches only `ne`, which keeps `x ne v` and
                // `not (x eq v)` equal everywhere.
                let Some((def, found)) = self.lookup(path) else {
                    return *op == CompareOp::Ne;
                };
                if def.attr_type == AttrType::Complex {
                    // `emails co "@x"`: the `value` sub-attribute (resolution rewrites this).
                    let Some(v) = def.sub_attribute("value") else {
                        return *op == CompareOp::Ne;
                    };
                    let found = match found {
                        Found::Json(top) => Found::Sub(top, &v.name),
                        _ => Found::Absent,
                    };
                    return compare_found(v, &found, *op, value, self);
                }
                compare_found(def, &found, *op, value, self)
            }
            Filter::ValuePath {
                path,
                filter: inner,
            } => {
                let Some((def, found)) = self.lookup(path) else {
                    return false;
                };
                if def.attr_type != AttrType::Complex {
                    return false;
                }
                match found {
                    Found::Json(top) => any_element(top, |v| matches_value(inner, def, v)),
                    Found::Meta => {
                        let mut meta = self.resource.meta_json("");
                        if let Some(m) = meta.as_object_mut() {
                            m.remove("location");
                        }
                        matches_value(inner, def, &meta)
                    }
                    _ => false,
                }
            }
            Filter::And(..) | Filter::Or(..) | Filter::Not(..) => eval(filter, self),
        }
    }
}

struct ValueSubject<'a> {
    def: &'a AttributeDef,
    value: &'a Value,
}

impl ValueSubject<'_> {
    fn lookup(&self, path: &AttrPath) -> Option<(&AttributeDef, Found<'_>)> {
        if path.urn.is_some() || path.sub.is_some() {
            return None;
        }
        let sub = self.def.sub_attribute(&path.name)?;
        let found = match self.value.get(&sub.name) {
            Some(v) => Found::Json(v),
            None => Found::Absent,
        };
        Some((sub, found))
    }
}

impl Subject for ValueSubject<'_> {
    fn leaf(&self, filter: &Filter) -> bool {
        match filter {
            Filter::Present(path) => self
                .lookup(path)
                .is_some_and(|(_, found)| is_present(&found)),
            Filter::Compare { path, op, value } => match self.lookup(path) {
                Some((def, found)) if def.attr_type != AttrType::Complex => {
                    compare_found(def, &found, *op, value, self)
                }
                _ => *op == CompareOp::Ne,
            },
            Filter::ValuePath { .. } => false,
            Filter::And(..) | Filter::Or(..) | Filter::Not(..) => eval(filter, self),
        }
    }
}

/// Calls `f` on each element of an array, or on the value itself; true when any call is.
fn any_element<'a>(v: &'a Value, mut f: impl FnMut(&'a Value) -> bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(f),
        Value::Null => false,
        other => f(other),
    }
}

/// Calls `f` on every candidate value of `found`; true as soon as one call is.
fn any_candidate(
    found: &Found<'_>,
    subject: &dyn HasSchemas,
    mut f: impl FnMut(Cand<'_>) -> bool,
) -> bool {
    match found {
        Found::Absent | Found::Meta => false,
        Found::Json(v) => any_element(v, |e| f(Cand::Json(e))),
        Found::Sub(top, sub) => any_element(top, |e| {
            e.get(*sub)
                .is_some_and(|s| any_element(s, |x| f(Cand::Json(x))))
        }),
        Found::Str(s) => f(Cand::Str(s)),
        Found::Time(t) => f(Cand::Time(*t)),
        Found::Version(v) => f(Cand::Str(&v.etag())),
        Found::Schemas => subject.schema_urns().any(|urn| f(Cand::Str(urn))),
    }
}

/// Where `schemas` comes from. Only a resource has one; inside `attr[...]` it is empty.
trait HasSchemas {
    fn schema_urns(&self) -> Box<dyn Iterator<Item = &str> + '_>;
}

impl HasSchemas for ResourceSubject<'_> {
    fn schema_urns(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        let attrs = &self.resource.attrs;
        Box::new(
            std::iter::once(self.rt.schema.id.as_str()).chain(
                self.rt
                    .extensions
                    .iter()
                    .map(|e| e.schema.id.as_str())
                    .filter(|urn| attrs.contains_key(*urn)),
            ),
        )
    }
}

impl HasSchemas for ValueSubject<'_> {
    fn schema_urns(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        Box::new(std::iter::empty())
    }
}

/// `pr`: present and non-empty.
fn is_present(found: &Found<'_>) -> bool {
    match found {
        Found::Absent => false,
        Found::Json(v) => json_present(v, 0),
        Found::Sub(top, sub) => {
            any_element(top, |e| e.get(*sub).is_some_and(|s| json_present(s, 0)))
        }
        Found::Str(s) => !s.is_empty(),
        Found::Time(_) | Found::Version(_) | Found::Schemas | Found::Meta => true,
    }
}

/// A JSON value is present when it is not null, `""`, or a container holding only such
/// values. Schemas nest at most two levels (array of objects); deeper containers count as
/// present when non-empty, which keeps this bounded on any input.
fn json_present(v: &Value, depth: u8) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) if depth < 2 => a.iter().any(|e| json_present(e, depth + 1)),
        Value::Object(o) if depth < 2 => o.values().any(|e| json_present(e, depth + 1)),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// `found op value` for a simple attribute `def`.
fn compare_found(
    def: &AttributeDef,
    found: &Found<'_>,
    op: CompareOp,
    value: &CompValue,
    subject: &dyn HasSchemas,
) -> bool {
    if *value == CompValue::Null {
        let present = is_present(found);
        return match op {
            CompareOp::Eq => !present,
            CompareOp::Ne => present,
            _ => false,
        };
    }
    if op == CompareOp::Ne {
        return !any_candidate(found, subject, |c| {
            compare_one(def, c, CompareOp::Eq, value)
        });
    }
    any_candidate(found, subject, |c| compare_one(def, c, op, value))
}

/// One candidate against the filter value. `op` is never `ne` here.
fn compare_one(def: &AttributeDef, cand: Cand<'_>, op: CompareOp, value: &CompValue) -> bool {
    match def.attr_type {
        AttrType::String | AttrType::Reference | AttrType::Binary => {
            let (Some(a), CompValue::Str(b)) = (cand_str(cand), value) else {
                return false;
            };
            let exact = is_exact(def);
            match op {
                CompareOp::Co => contains(a, b, exact),
                CompareOp::Sw => starts_with(a, b, exact),
                CompareOp::Ew => ends_with(a, b, exact),
                CompareOp::Eq => eq_str(a, b, exact),
                _ if def.attr_type == AttrType::Binary => false,
                _ => ordering_matches(op, compare_str(a, b, exact)),
            }
        }
        AttrType::DateTime => {
            let CompValue::Str(b) = value else {
                return false;
            };
            let a = match cand {
                Cand::Time(t) => Some(t),
                Cand::Json(Value::String(s)) => parse_time(s),
                Cand::Str(s) => parse_time(s),
                Cand::Json(_) => None,
            };
            match (a, parse_time(b)) {
                (Some(a), Some(b)) if !op.is_substring() => ordering_matches(op, a.cmp(&b)),
                _ => false,
            }
        }
        AttrType::Integer | AttrType::Decimal => match (cand, value) {
            (Cand::Json(Value::Number(a)), CompValue::Num(b)) if !op.is_substring() => {
                compare_numbers(a, b).is_some_and(|o| ordering_matches(op, o))
            }
            _ => false,
        },
        AttrType::Boolean => match (cand, value) {
            (Cand::Json(Value::Bool(a)), CompValue::Bool(b)) => op == CompareOp::Eq && a == b,
            _ => false,
        },
        AttrType::Complex => false,
    }
}

fn cand_str<'a>(c: Cand<'a>) -> Option<&'a str> {
    match c {
        Cand::Json(Value::String(s)) => Some(s),
        Cand::Str(s) => Some(s),
        _ => None,
    }
}

/// Whether the ordering `o` (attribute value vs. filter value) satisfies `op` (`eq` or an
/// ordering operator).
fn ordering_matches(op: CompareOp, o: Ordering) -> bool {
    match op {
        CompareOp::Eq => o == Ordering::Equal,
        CompareOp::Ne => o != Ordering::Equal,
        CompareOp::Gt => o == Ordering::Greater,
        CompareOp::Ge => o != Ordering::Less,
        CompareOp::Lt => o == Ordering::Less,
        CompareOp::Le => o != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

/// Binary and reference values are always case-exact (RFC 7643 §2.3.6, §2.3.7).
fn is_exact(def: &AttributeDef) -> bool {
    def.case_exact || matches!(def.attr_type, AttrType::Binary | AttrType::Reference)
}

/// The lower-casing behind every case-insensitive comparison of the evaluator: each character
/// through [`char::to_lowercase`] (context-free, unlike [`str::to_lowercase`], which treats a
/// final `Σ` specially). Index keys for case-insensitive attributes must be built with it, or
/// an index and the evaluator can disagree. Borrows when nothing changes.
pub fn fold_case(s: &str) -> std::borrow::Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(s.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(s)
        }
    } else if lower(s).eq(s.chars()) {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(lower_string(s))
    }
}

fn lower(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().flat_map(char::to_lowercase)
}

fn lower_string(s: &str) -> String {
    lower(s).collect()
}

/// Whether two strings are equal, case-insensitively unless `exact`.
fn eq_str(a: &str, b: &str, exact: bool) -> bool {
    if exact {
        a == b
    } else if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        lower(a).eq(lower(b))
    }
}

/// Orders two strings, case-insensitively unless `exact`.
fn compare_str(a: &str, b: &str, exact: bool) -> Ordering {
    if exact {
        a.cmp(b)
    } else if a.is_ascii() && b.is_ascii() {
        a.bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
    } else {
        lower(a).cmp(lower(b))
    }
}

fn starts_with(a: &str, prefix: &str, exact: bool) -> bool {
    if exact {
        a.starts_with(prefix)
    } else if a.is_ascii() && prefix.is_ascii() {
        a.len() >= prefix.len()
            && a.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    } else {
        let mut hay = lower(a);
        lower(prefix).all(|c| hay.next() == Some(c))
    }
}

fn ends_with(a: &str, suffix: &str, exact: bool) -> bool {
    if exact {
        a.ends_with(suffix)
    } else if a.is_ascii() && suffix.is_ascii() {
        a.len() >= suffix.len()
            && a.as_bytes()[a.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    } else {
        // One lower-cased character can expand to several, so a suffix may start inside an
        // expansion: compare the lower-cased strings.
        lower_string(a).ends_with(&lower_string(suffix))
    }
}

fn contains(a: &str, needle: &str, exact: bool) -> bool {
    if exact {
        a.contains(needle)
    } else if needle.is_empty() {
        true
    } else if a.is_ascii() && needle.is_ascii() {
        a.as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    } else {
        lower_string(a).contains(&lower_string(needle))
    }
}

/// Numeric order of two JSON numbers: exact for integers, by `f64` otherwise.
fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    fn int(n: &Number) -> Option<i128> {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    }
    match (int(a), int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::fixtures::{ACME, bjensen, groups, registry, sparse, tour_guides, users};
    use super::*;
    use crate::schema::SchemaRegistry;
    use serde_json::json;

    /// Parses, resolves against the resource's type and evaluates.
    fn eval_on(reg: &SchemaRegistry, r: &Resource, text: &str) -> bool {
        let rt = reg.resource_type(r.kind);
        let f = Filter::parse(text)
            .and_then(|f| f.resolve(rt))
            .unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let m = matches(&f, rt, r);
        // The reference semantics hold for the negation too.
        assert_eq!(matches(&Filter::Not(Box::new(f)), rt, r), !m, "{text}");
        m
    }

    /// Asserts which of `texts` match `r` (`true`) and which do not.
    fn check(r: &Resource, cases: &[(&str, bool)]) {
        let reg = registry();
        for (text, expected) in cases {
            assert_eq!(eval_on(&reg, r, text), *expected, "{text}");
        }
    }

    #[test]
    fn strings_compare_case_insensitively_unless_case_exact() {
        check(
            &bjensen(),
            &[
                (r#"userName eq "BJENSEN@example.COM""#, true),
                (r#"userName eq "bjensen""#, false),
                (r#"userName ne "BJENSEN@EXAMPLE.COM""#, false),
                (r#"userName ne "someone""#, true),
                // externalId and id are caseExact.
                (r#"externalId eq "BJensen-Ext""#, true),
                (r#"externalId eq "bjensen-ext""#, false),
                (r#"externalId co "Jensen""#, true),
                (r#"externalId co "jensen""#, false),
                (r#"id eq "2819C223-7F76-453A-919D-413861904646""#, false),
                (r#"id eq "2819c223-7f76-453a-919d-413861904646""#, true),
                // A caseExact extension attribute.
                (r#"code eq "AbC-1""#, true),
                (r#"code eq "abc-1""#, false),
                (r#"code sw "AbC""#, true),
                (r#"code sw "abc""#, false),
            ],
        );
    }

    #[test]
    fn substring_operators_follow_the_rfc_table() {
        check(
            &bjensen(),
            &[
                (r#"name.familyName co "ENS""#, true),
                (r#"name.familyName co "xyz""#, false),
                (r#"name.familyName co """#, true),
                (r#"name.familyName sw "jen""#, true),
                (r#"name.familyName sw "ens""#, false),
                (r#"name.familyName ew "SEN""#, true),
                (r#"name.familyName ew "jen""#, false),
                // sw/ew are satisfied by identical strings.
                (r#"name.familyName sw "jensen""#, true),
                (r#"name.familyName ew "Jensen""#, true),
                (r#"name.familyName co "Jensen and more""#, false),
                (r#"title co "o""#, true),
                (r#"nickName ew "abs""#, true),
            ],
        );
    }

    #[test]
    fn case_insensitive_comparison_is_unicode_aware() {
        check(
            &sparse(),
            &[
                (r#"userName eq "émile.zoë""#, true),
                (r#"userName eq "EMILE.ZOE""#, false),
                (r#"userName sw "éMI""#, true),
                (r#"userName ew "ZOË""#, true),
                (r#"userName co "LE.Z""#, true),
                (r#"userName gt "émile.zoa""#, true),
                (r#"userName lt "ÉMILE.ZP""#, true),
                (r#"userName lt "ÉMILE.ZOF""#, false),
            ],
        );
        let b = bjensen();
        check(
            &b,
            &[
                // Multi-valued simple extension attribute with a non-ASCII value.
                (r#"tags eq "ZOË""#, true),
                (r#"tags co "oë""#, true),
            ],
        );
        // Default lower-case mapping, not full case folding.
        let reg = registry();
        let mut r = sparse();
        r.attrs.insert("displayName".into(), json!("Straße"));
        assert!(!eval_on(&reg, &r, r#"displayName eq "STRASSE""#));
        assert!(eval_on(&reg, &r, r#"displayName eq "STRAẞE""#));
        // A lower-cased character that expands (İ → i + U+0307) still finds its suffix.
        r.attrs.insert("nickName".into(), json!("KİM"));
        assert!(eval_on(&reg, &r, "nickName ew \"\u{307}m\""));
        assert!(eval_on(&reg, &r, "nickName eq \"ki\u{307}m\""));
    }

    #[test]
    fn fold_case_agrees_with_case_insensitive_equality() {
        assert!(matches!(
            fold_case("bjensen"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(fold_case("BJensen"), "bjensen");
        assert_eq!(fold_case("ÉMILE.Zoë"), "émile.zoë");
        // Context-free: a final capital sigma lowers to σ, as in comparisons.
        assert_eq!(fold_case("ΟΔΟΣ"), "οδοσ");
        for (a, b) in [
            ("ΟΔΟΣ", "οδοσ"),
            ("KİM", "ki\u{307}m"),
            ("Straße", "STRAẞE"),
        ] {
            assert!(eq_str(a, b, false));
            assert_eq!(fold_case(a), fold_case(b));
        }
    }

    #[test]
    fn strings_order_lexicographically() {
        check(
            &bjensen(),
            &[
                (r#"userName gt "BJENSEN""#, true),
                (r#"userName gt "c""#, false),
                (r#"userName ge "bjensen@example.com""#, true),
                (r#"userName lt "C""#, true),
                (r#"userName le "bjensen@example.com""#, true),
                (r#"userName lt "bjensen@example.com""#, false),
            ],
        );
    }

    #[test]
    fn date_times_compare_as_instants() {
        // bjensen: created 2010-01-23T04:56:22Z, lastModified one day later.
        check(
            &bjensen(),
            &[
                (r#"meta.created eq "2010-01-23T04:56:22Z""#, true),
                (r#"meta.created eq "2010-01-23T05:56:22+01:00""#, true),
                (r#"meta.created eq "2010-01-23T04:56:22.000Z""#, true),
                (r#"meta.created gt "2010-01-23T04:56:21.999Z""#, true),
                (r#"meta.created gt "2010-01-23T04:56:22Z""#, false),
                (r#"meta.created ge "2010-01-23T04:56:22Z""#, true),
                (r#"meta.lastModified gt "2010-01-24T04:56:21Z""#, true),
                (r#"meta.lastModified lt "2011-05-13T04:42:34Z""#, true),
                (r#"meta.lastModified le "2010-01-24T04:56:22Z""#, true),
                (r#"meta.lastModified lt "2010-01-24T04:56:22Z""#, false),
                // Stored with an offset: 2015-06-01T07:00:00Z.
                (r#"hired eq "2015-06-01T07:00:00Z""#, true),
                (r#"hired lt "2015-06-01T08:00:00+00:00""#, true),
                (r#"hired gt "2015-06-01T08:00:00+02:00""#, true),
                (r#"sites.opened gt "2019-01-01T00:00:00Z""#, true),
                (r#"sites.opened lt "2000-01-01T00:00:00Z""#, false),
            ],
        );
    }

    #[test]
    fn numbers_compare_numerically() {
        check(
            &bjensen(),
            &[
                ("badgeNumber eq 42", true),
                ("badgeNumber ne 42", false),
                ("badgeNumber gt 41", true),
                ("badgeNumber gt 42", false),
                ("badgeNumber ge 42", true),
                ("badgeNumber lt 100", true),
                ("badgeNumber le -1", false),
                ("salary eq 1234.5", true),
                ("salary eq 1234.50", true),
                ("salary gt 1234", true),
                ("salary lt 1.2345e3", false),
                ("salary le 1.2345E3", true),
                ("salary gt 18446744073709551615", false),
                // Any value of a multi-valued complex attribute: floors 3 and 12.
                ("sites.floor gt 10", true),
                ("sites.floor lt 3", false),
            ],
        );
    }

    #[test]
    fn booleans_compare_with_eq_and_ne() {
        check(
            &bjensen(),
            &[
                ("active eq true", true),
                ("active eq false", false),
                ("active ne false", true),
                ("contractor eq false", true),
                ("emails.primary eq true", true),
            ],
        );
        check(
            &sparse(),
            &[("active eq false", true), ("active ne true", true)],
        );
    }

    #[test]
    fn references_and_binary_are_case_exact() {
        check(
            &bjensen(),
            &[
                (r#"profileUrl eq "https://login.example.com/bjensen""#, true),
                (
                    r#"profileUrl eq "HTTPS://login.example.com/bjensen""#,
                    false,
                ),
                (r#"profileUrl sw "https://login""#, true),
                (r#"homePage co "Example.com""#, true),
                (r#"homePage co "example.com""#, false),
                (r#"homePage gt "https://A""#, true),
                (r#"photoHash eq "q83vEjRWeJA=""#, true),
                (r#"photoHash eq "Q83VEJRWEJA=""#, false),
                (
                    r#"x509Certificates.value eq "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQA=""#,
                    true,
                ),
                (
                    r#"x509Certificates eq "miidqzccaqygawibagiceaawdqyjkozihvcnaqefbqa=""#,
                    false,
                ),
            ],
        );
    }

    #[test]
    fn multi_valued_attributes_match_when_any_value_does() {
        check(
            &bjensen(),
            &[
                (r#"emails co "jensen.org""#, true),
                (r#"emails.value co "example.com""#, true),
                (r#"emails.type eq "home""#, true),
                (r#"emails.type eq "other""#, false),
                // `ne` is the complement of `eq`: no value may equal.
                (r#"emails.type ne "home""#, false),
                (r#"emails.type ne "other""#, true),
                (r#"tags eq "night-shift""#, true),
                (r#"tags sw "onb""#, true),
                (r#"tags ne "onboarding""#, false),
                (
                    r#"groups.value eq "e9e30dba-f08f-4109-8486-d5c6a331660a""#,
                    true,
                ),
            ],
        );
    }

    #[test]
    fn value_filters_apply_to_one_value_at_a_time() {
        check(
            &bjensen(),
            &[
                (
                    r#"emails[type eq "work" and value co "@example.com"]"#,
                    true,
                ),
                (
                    r#"emails[type eq "home" and value co "@example.com"]"#,
                    false,
                ),
                // Across values the plain paths match where the value filter does not.
                (
                    r#"emails.type eq "home" and emails.value co "@example.com""#,
                    true,
                ),
                (r#"emails[type eq "home" or primary eq true]"#, true),
                (r#"emails[not (type eq "work")]"#, true),
                (r#"emails[not (type eq "work") and primary eq true]"#, false),
                (r#"emails[primary pr and type eq "work"]"#, true),
                (r#"ims[type eq "xmpp" and value co "@JABBER"]"#, true),
                (r#"sites[code eq "lab" and floor gt 10]"#, true),
                (r#"sites[code eq "HQ" and floor gt 10]"#, false),
                (r#"sites[code eq "hq"]"#, false),
                (
                    r#"name[givenName eq "barbara" and familyName sw "J"]"#,
                    true,
                ),
                (
                    r#"manager[value eq "26118915-6090-4610-87e4-49d8ca9f808d"]"#,
                    true,
                ),
                (
                    r#"meta[created lt "2011-01-01T00:00:00Z" and resourceType eq "User"]"#,
                    true,
                ),
                (r#"meta[location pr]"#, false),
                (r#"phoneNumbers[type eq "home"]"#, false),
                (r#"roles[value pr]"#, false),
            ],
        );
    }

    #[test]
    fn extension_attributes_are_read_under_their_urn() {
        check(
            &bjensen(),
            &[
                (r#"employeeNumber eq "701984""#, true),
                (
                    r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations""#,
                    true,
                ),
                (
                    r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
                    true,
                ),
                (r#"manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#, true),
                (r#"manager.displayName co "smith""#, true),
                (r#"division pr"#, false),
                (r#"division ne "x""#, true),
            ],
        );
        // A user without the extension.
        check(
            &sparse(),
            &[
                (r#"employeeNumber eq "701984""#, false),
                ("manager pr", false),
            ],
        );
    }

    #[test]
    fn id_and_meta_come_from_the_resource_record() {
        check(
            &bjensen(),
            &[
                (r#"meta.version eq "W/\"3\"""#, true),
                (r#"meta.version eq "W/\"4\"""#, false),
                (r#"meta.resourceType eq "User""#, true),
                (r#"meta.resourceType eq "user""#, false),
                (r#"meta.location pr"#, false),
                (r#"meta.location eq null"#, true),
                (r#"meta pr"#, true),
                (r#"meta.created pr"#, true),
                (r#"id pr"#, true),
                (r#"id sw "2819c223""#, true),
            ],
        );
        check(&tour_guides(), &[(r#"meta.resourceType eq "Group""#, true)]);
    }

    #[test]
    fn present_means_non_empty() {
        check(
            &sparse(),
            &[
                ("userName pr", true),
                ("title pr", false),
                ("emails pr", false),
                ("name pr", false),
                ("name.givenName pr", false),
                // Only empty values inside: not present.
                ("phoneNumbers pr", false),
                ("phoneNumbers.value pr", false),
                ("phoneNumbers.type pr", false),
                ("active pr", true),
                ("nickName pr", false),
            ],
        );
        check(
            &bjensen(),
            &[
                ("emails pr", true),
                ("name pr", true),
                ("emails.primary pr", true),
            ],
        );
    }

    #[test]
    fn null_means_absent() {
        check(
            &sparse(),
            &[
                ("title eq null", true),
                ("nickName eq null", true),
                ("emails eq null", true),
                ("userName eq null", false),
                ("userName ne null", true),
                ("title ne null", false),
                ("active ne null", true),
            ],
        );
    }

    #[test]
    fn ne_matches_absent_attributes() {
        check(
            &sparse(),
            &[
                (r#"nickName ne "Babs""#, true),
                (r#"nickName eq "Babs""#, false),
                (r#"not (nickName eq "Babs")"#, true),
                (r#"nickName gt "a""#, false),
                (r#"not (nickName gt "a")"#, true),
                (r#"emails.type ne "work""#, true),
            ],
        );
    }

    #[test]
    fn schemas_lists_the_extensions_a_resource_carries() {
        let ent = r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#;
        check(
            &bjensen(),
            &[
                (ent, true),
                (
                    r#"schemas eq "urn:ietf:params:scim:schemas:core:2.0:User""#,
                    true,
                ),
            ],
        );
        check(
            &sparse(),
            &[(ent, false), (r#"schemas co "core:2.0:user""#, true)],
        );
    }

    #[test]
    fn logic_follows_precedence() {
        check(
            &bjensen(),
            &[
                // and binds tighter: true or (false and false).
                (
                    r#"title pr or userType eq "Intern" and nickName eq "x""#,
                    true,
                ),
                // (true or false) and false.
                (
                    r#"(title pr or userType eq "Intern") and nickName eq "x""#,
                    false,
                ),
                (r#"title pr and userType eq "Employee""#, true),
                (r#"title pr and userType eq "Intern""#, false),
                (r#"userType eq "Intern" or userType eq "Employee""#, true),
                (r#"not (title pr) or userType eq "Employee""#, true),
                (r#"not (title pr or userType eq "Employee")"#, false),
                (r#"not (not (title pr))"#, true),
                (
                    r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
                    true,
                ),
                (
                    r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
                    false,
                ),
                (
                    r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
                    true,
                ),
            ],
        );
    }

    #[test]
    fn group_members_filter_by_value() {
        let reg = registry();
        let g = tour_guides();
        for (text, expected) in [
            (r#"members eq "2819c223-7f76-453a-919d-413861904646""#, true),
            (
                r#"members.value eq "2819C223-7F76-453A-919D-413861904646""#,
                false,
            ),
            (r#"members[type eq "group"]"#, true),
            (r#"members[type eq "Group" and display sw "mandy"]"#, true),
            (r#"members[type eq "User" and display sw "mandy"]"#, false),
            (r#"displayName eq "tour guides""#, true),
            ("members pr", true),
        ] {
            assert_eq!(eval_on(&reg, &g, text), expected, "{text}");
        }
        let _ = groups(&reg);
    }

    #[test]
    fn unresolved_filters_evaluate_like_resolved_ones() {
        let reg = registry();
        let u = users(&reg);
        let b = bjensen();
        for text in [
            r#"USERNAME eq "bjensen@example.com""#,
            r#"EMAILS co "jensen.org""#,
            r#"emails[TYPE eq "work"]"#,
            r#"Manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:EMPLOYEENUMBER eq "701984""#,
        ] {
            let f = Filter::parse(text).unwrap();
            assert!(matches(&f, u, &b), "{text}");
            assert!(matches(&f.resolve(u).unwrap(), u, &b), "{text}");
        }
    }

    #[test]
    fn matches_value_checks_one_element() {
        let reg = registry();
        let u = users(&reg);
        let emails = u.schema.attribute("emails").unwrap();
        let work = json!({"value": "bjensen@example.com", "type": "work", "primary": true});
        let f = Filter::parse(r#"Type eq "WORK" and primary eq true"#).unwrap();
        assert!(matches_value(&f, emails, &work));
        let f = Filter::parse(r#"type eq "home""#).unwrap();
        assert!(!matches_value(&f, emails, &work));
        assert!(!matches_value(
            &Filter::parse("display pr").unwrap(),
            emails,
            &work
        ));
        assert!(matches_value(
            &Filter::parse("display eq null").unwrap(),
            emails,
            &work
        ));
        // Not an object: nothing is present.
        assert!(!matches_value(
            &Filter::parse("value pr").unwrap(),
            emails,
            &json!("x")
        ));
    }

    #[test]
    fn values_of_the_wrong_stored_type_never_compare() {
        let reg = registry();
        let u = users(&reg);
        let mut r = sparse();
        r.attrs.insert("active".into(), json!("true"));
        r.attrs.insert(
            ACME.into(),
            json!({"badgeNumber": "42", "hired": "not a date"}),
        );
        for text in [
            "active eq true",
            "badgeNumber eq 42",
            r#"hired lt "2030-01-01T00:00:00Z""#,
        ] {
            let f = Filter::parse(text).unwrap().resolve(u).unwrap();
            assert!(!matches(&f, u, &r), "{text}");
        }
    }

    #[test]
    fn compare_values_orders_by_type() {
        let reg = registry();
        let u = users(&reg);
        let def = |p: &str| {
            u.resolve(&AttrPath::parse(p).unwrap())
                .map(|r| r.sub.unwrap_or(r.attr))
                .unwrap()
        };
        use Ordering::*;
        let cases = [
            ("userName", json!("alice"), json!("BOB"), Some(Less)),
            ("userName", json!("Émile"), json!("émile"), Some(Equal)),
            ("externalId", json!("a"), json!("B"), Some(Greater)),
            (
                "profileUrl",
                json!("https://A"),
                json!("https://a"),
                Some(Less),
            ),
            (
                "meta.created",
                json!("2020-01-01T01:00:00+01:00"),
                json!("2020-01-01T00:00:00Z"),
                Some(Equal),
            ),
            (
                "meta.created",
                json!("2020-01-01T00:00:00Z"),
                json!("bad"),
                None,
            ),
            ("badgeNumber", json!(9), json!(10), Some(Less)),
            ("salary", json!(2.5), json!(2), Some(Greater)),
            (
                "salary",
                json!(-1),
                json!(18446744073709551615u64),
                Some(Less),
            ),
            ("active", json!(false), json!(true), Some(Less)),
            ("active", json!(false), json!("true"), None),
            ("userName", json!("a"), Value::Null, None),
            (
                "emails",
                json!({"value": "A@x"}),
                json!({"value": "a@X"}),
                Some(Equal),
            ),
            (
                "name",
                json!({"givenName": "a"}),
                json!({"givenName": "b"}),
                None,
            ),
        ];
        for (path, a, b, expected) in cases {
            assert_eq!(
                compare_values(def(path), &a, &b),
                expected,
                "{path} {a} {b}"
            );
        }
    }

    #[test]
    fn evaluation_over_many_resources_is_fast() {
        let reg = registry();
        let u = users(&reg);
        let base = bjensen();
        let people: Vec<Resource> = (0..20_000)
            .map(|i| {
                let mut r = base.clone();
                r.id = format!("id-{i}");
                r.attrs
                    .insert("userName".into(), json!(format!("user{i}@example.com")));
                r
            })
            .collect();
        let f = Filter::parse(
            r#"userName sw "USER1" and emails[type eq "work" and value co "@EXAMPLE.com"] and meta.lastModified gt "2000-01-01T00:00:00Z""#,
        )
        .unwrap()
        .resolve(u)
        .unwrap();
        let started = std::time::Instant::now();
        let n = people.iter().filter(|r| matches(&f, u, r)).count();
        assert_eq!(n, 11_111);
        // Generous even for an unoptimised build on a busy machine; typical is far lower.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}
