//! Canonicalization and validation of incoming resources (RFC 7643 §2–§4, RFC 7644 §3.3 and
//! §3.5.1).
//!
//! [`prepare`] turns a POST or PUT body into the canonical attributes of [`Resource::attrs`];
//! [`normalize_value`] does the same for one attribute's value (PATCH operation values);
//! [`validate`] re-checks canonical attributes after a PATCH.
//!
//! # Rules
//!
//! **Names.** Attribute and sub-attribute names match case-insensitively (RFC 7643 §2.1) and are
//! rewritten to their canonical spelling; schema URNs do too under the rule `urn_case`. A
//! top-level key is a plain name (`userName`) or an extension URN whose value is the
//! extension's object; under `dotted_keys` it may also be a URN-qualified name
//! (`urn:ietf:params:scim:schemas:core:2.0:User:userName`,
//! `urn:…:enterprise:2.0:User:employeeNumber`) or a dotted sub-attribute (`name.givenName`,
//! merged into `name`). Extension attributes
//! are stored under their URN whichever way they were sent; a plain name that only an extension
//! defines resolves to that extension (RFC 7644 §3.10 allows unambiguous names). The same
//! attribute sent twice (`userName` and `USERNAME`) is `invalidSyntax`.
//!
//! **`schemas`.** Required on create and replace (RFC 7643 §3): it must be an array of strings
//! that includes the resource type's core schema, else `invalidSyntax`. Under `lenient_schemas`
//! URNs the source does not host are ignored and a list without the core URN is accepted
//! (unless it names another resource type's core schema). The server recomputes `schemas` on
//! output anyway, so an extension missing from `schemas` is not an error.
//!
//! **Unknown attributes.** An attribute or sub-attribute that the core schema or a registered
//! extension does not define is rejected with `invalidSyntax` naming it (it is usually a typo,
//! and silently dropping data is worse) unless the source enables `ignore_unknown_attributes`.
//! A key under an *unregistered* URN — an extension object or a URN-qualified attribute of a
//! schema this source does not host — is ignored under `lenient_schemas`: identity providers
//! routinely send their own extensions.
//!
//! **Absent values.** `null`, empty arrays and complex values left without sub-attributes are
//! unassigned (RFC 7643 §2.5) and are not stored.
//!
//! **Types** (RFC 7643 §2.3): string, reference = JSON string; boolean = JSON boolean;
//! integer = a JSON number without fraction or exponent that fits 64 bits; decimal = any JSON
//! number; dateTime = an RFC 3339 string; binary = a base64 string (RFC 4648 §4, padding
//! optional); complex = a JSON object of known sub-attributes (one level only, so recursion is
//! bounded by the schema). Multi-valued attributes are JSON arrays; a single value sent for a
//! multi-valued attribute is wrapped into a one-element array (rule `single_value_lists`).
//! A single-valued attribute given an array is `invalidValue` (a one-element array for a complex
//! one is its value under `single_element_arrays`). Values are stored exactly as sent:
//! no trimming, no case folding.
//!
//! **Required** attributes and sub-attributes must have a value (an empty string counts as none)
//! on create and replace and after a PATCH, else `invalidValue`. readOnly attributes are not
//! client-required (`id`). A required extension must be present.
//!
//! **Mutability** (RFC 7643 §2.2, RFC 7644 §3.5.1):
//! - readOnly input (`id`, `meta`, `groups`, `manager.displayName`, …) is dropped.
//! - immutable: on replace (and after a PATCH), a value different from the stored one is
//!   `mutability`; a value may be set when none was stored. On PUT, an immutable attribute the
//!   client did not send keeps its stored value (it cannot be changed, so omitting it cannot
//!   clear it); after a PATCH, removing it is `mutability`. Immutable sub-attributes are checked
//!   inside single-valued complex attributes; inside multi-valued ones (`members.value`) each
//!   element is its own value that may be added or removed, so no comparison applies.
//! - writeOnly (`password`) values are stored; the projection never returns them.
//! - PUT replaces every readWrite attribute: attributes not sent are cleared, except readOnly
//!   ones (the server keeps the stored values) and writeOnly ones — a client can never read a
//!   password, so a PUT built from a GET never contains it, and clearing it would silently
//!   lock the user out (RFC 7644 §3.5.1 leaves omitted values to the service provider).
//!
//! **Multi-valued attributes** carry at most one `primary: true` value (RFC 7643 §2.4), else
//! `invalidValue`.
//!
//! **Group members** are `{value, type?, display?}`: `value` is required, `$ref` is dropped (it is
//! derived on output), `type` must be `User` or `Group` in any case and is stored in that
//! spelling, and a member listed twice is stored once (membership is a set).
//!
//! **Identity-provider quirks** are the named [`Rules`] of [`crate::compat`]; the `_with`
//! functions take the source's rules and record the rules applied in a [`Fired`] collector.
//! Here: `boolean_strings` (`"False"`), `single_value_lists` (one value for a multi-valued
//! attribute), `single_element_arrays` (`"manager": [{…}]`), `bare_string_values`
//! (`"manager": "26118915"`, bare member ids), `dotted_keys`, `urn_case`, `lenient_schemas`,
//! `member_display_name` (a member's `displayName` read as `display`), `roles_json_strings` and
//! `ignore_unknown_attributes`.
//!
//! **Bounded work.** Normalization is a single pass over the body with recursion at most two
//! levels deep (attribute → sub-attribute), so the work is linear in the body size, which the
//! server bounds. Arrays have no separate limit: a group may legitimately have many members.

use crate::error::ScimError;
use crate::path::{AttrPath, starts_with_urn};
use crate::resource::{Resource, parse_time};
use crate::schema::{AttrType, AttributeDef, Mutability, ResourceKind, ResourceTypeDef};
use base64::Engine as _;
use serde_json::{Map, Value};
use std::collections::HashSet;

use crate::compat::tolerate;
pub use crate::compat::{Fired, Rule, Rules};

/// What an incoming resource body is for.
#[derive(Debug, Clone, Copy)]
pub enum WriteMode<'a> {
    /// POST: a new resource.
    Create,
    /// PUT: replaces `old`.
    Replace(&'a Resource),
}

/// Turns a client body into canonical, validated attributes (see [`Resource::attrs`]) with the
/// default [`Rules`].
pub fn prepare(
    rt: &ResourceTypeDef,
    body: &Value,
    mode: WriteMode<'_>,
) -> Result<Map<String, Value>, ScimError> {
    prepare_with(rt, body, mode, &Rules::default(), &Fired::new())
}

/// [`prepare`] with explicit [`Rules`]; the rules applied are recorded in `fired`.
pub fn prepare_with(
    rt: &ResourceTypeDef,
    body: &Value,
    mode: WriteMode<'_>,
    rules: &Rules,
    fired: &Fired,
) -> Result<Map<String, Value>, ScimError> {
    let out = canonicalize_with(rt, body, mode, rules, fired)?;
    check_required(rt, &out)?;
    if let WriteMode::Replace(old) = mode {
        check_immutable(rt, &out, &old.attrs, false)?;
    }
    Ok(out)
}

/// The first half of [`prepare_with`]: names canonicalized, types checked, readOnly input
/// dropped and (on replace) unreplaceable values kept, but required and immutable attributes
/// not yet checked. Map-phase hooks run on this, so they can supply a required attribute the
/// client left out; [`prepare_with`] on the hooks' result then checks everything.
pub fn canonicalize_with(
    rt: &ResourceTypeDef,
    body: &Value,
    mode: WriteMode<'_>,
    rules: &Rules,
    fired: &Fired,
) -> Result<Map<String, Value>, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("The request body must be a JSON object"))?;
    let cx = Cx {
        rules,
        fired,
        purpose: Purpose::Input,
    };
    let mut raw = RawAttrs::new(rt, &cx);
    let mut saw_schemas = false;
    for (key, value) in obj {
        if key.eq_ignore_ascii_case("schemas") {
            check_schemas(rt, value, &cx)?;
            saw_schemas = true;
            continue;
        }
        raw.add_top_level(key, value)?;
    }
    if !saw_schemas {
        return Err(ScimError::invalid_syntax(format!(
            "\"schemas\" is required and must include {}",
            rt.schema.id
        )));
    }
    let mut out = raw.normalize()?;
    if let WriteMode::Replace(old) = mode {
        keep_unreplaceable(rt, &mut out, &old.attrs);
    }
    Ok(out)
}

/// Validates canonical attributes after a change (required, types, one primary, mutability
/// against `old`).
///
/// `attrs` is what a PATCH produced: canonical names, readOnly attributes such as `groups` may
/// be present. Unknown attributes, wrong types, more than one primary value, missing required
/// attributes and changed or removed immutable attributes are errors. No tolerance rule
/// applies: the attributes are canonical already.
pub fn validate(
    rt: &ResourceTypeDef,
    attrs: &Map<String, Value>,
    old: Option<&Resource>,
) -> Result<(), ScimError> {
    let fired = Fired::new();
    let cx = Cx {
        rules: &Rules::STRICT,
        fired: &fired,
        purpose: Purpose::Check,
    };
    let mut raw = RawAttrs::new(rt, &cx);
    for (key, value) in attrs {
        raw.add_top_level(key, value)?;
    }
    let checked = raw.normalize()?;
    check_required(rt, &checked)?;
    if let Some(old) = old {
        check_immutable(rt, &checked, &old.attrs, true)?;
    }
    Ok(())
}

/// Canonicalizes and type-checks one value for an attribute (used by PATCH for operation
/// values): sub-attribute names rewritten to canonical spelling, readOnly sub-attributes
/// dropped, types checked. `def` is the attribute the value is for; `whole_list` says whether
/// `value` is the attribute's whole (multi-valued) value or one element of it.
///
/// Returns `Value::Null` when the value is unassigned (`null`, an empty array, a complex value
/// without sub-attributes). A readOnly `def` is `mutability` (RFC 7644 §3.5.2: clients must not
/// modify readOnly attributes); callers that ignore readOnly keys skip them before calling.
/// Group `members` values get the member rules of the module docs.
pub fn normalize_value(
    rt: &ResourceTypeDef,
    def: &AttributeDef,
    value: &Value,
    whole_list: bool,
) -> Result<Value, ScimError> {
    normalize_value_with(rt, def, value, whole_list, &Rules::default(), &Fired::new())
}

/// [`normalize_value`] with explicit [`Rules`]; the rules applied are recorded in `fired`.
pub fn normalize_value_with(
    rt: &ResourceTypeDef,
    def: &AttributeDef,
    value: &Value,
    whole_list: bool,
    rules: &Rules,
    fired: &Fired,
) -> Result<Value, ScimError> {
    if def.mutability == Mutability::ReadOnly {
        return Err(ScimError::mutability(format!(
            "Attribute {} is readOnly",
            def.name
        )));
    }
    let cx = Cx {
        rules,
        fired,
        purpose: Purpose::Input,
    };
    let kind = ValueKind::of(rt, def);
    let out = if def.multi_valued && !whole_list {
        if value.is_array() {
            return Err(ScimError::invalid_value(format!(
                "A single value of {} was expected, not an array",
                def.name
            )));
        }
        cx.element(def, value, &def.name, kind, 0)?
    } else {
        cx.attribute(def, value, &def.name, kind, 0)?
    };
    Ok(out.unwrap_or(Value::Null))
}

// ---------------------------------------------------------------------------------------------
// Key resolution: where a body key belongs.
// ---------------------------------------------------------------------------------------------

/// Which part of the canonical attributes an attribute lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// `id`, `externalId` (when the type hosts it), `meta`.
    Common,
    /// The core schema: stored at the top level.
    Core,
    /// Extension `i`: stored under its URN.
    Ext(usize),
}

impl Scope {
    fn defs(self, rt: &ResourceTypeDef) -> &[AttributeDef] {
        match self {
            Scope::Common => rt.common_attributes(),
            Scope::Core => &rt.schema.attributes,
            Scope::Ext(i) => rt
                .extensions
                .get(i)
                .map(|e| e.schema.attributes.as_slice())
                .unwrap_or(&[]),
        }
    }

    fn find(self, rt: &ResourceTypeDef, name: &str) -> Option<usize> {
        self.defs(rt)
            .iter()
            .position(|a| a.name.eq_ignore_ascii_case(name))
    }

    fn ext_urn(self, rt: &ResourceTypeDef) -> Option<&str> {
        match self {
            Scope::Ext(i) => rt.extensions.get(i).map(|e| e.schema.id.as_str()),
            _ => None,
        }
    }

    fn order(self) -> usize {
        match self {
            Scope::Common => 0,
            Scope::Core => 1,
            Scope::Ext(i) => 2 + i,
        }
    }
}

/// Every top-level attribute of a resource type with its scope, in canonical order.
fn top_level_defs(rt: &ResourceTypeDef) -> impl Iterator<Item = (Scope, &AttributeDef)> {
    let common = rt.common_attributes().iter().map(|d| (Scope::Common, d));
    let core = rt.schema.attributes.iter().map(|d| (Scope::Core, d));
    let ext = rt
        .extensions
        .iter()
        .enumerate()
        .flat_map(|(i, e)| e.schema.attributes.iter().map(move |d| (Scope::Ext(i), d)));
    common.chain(core).chain(ext)
}

/// The stored value of a top-level attribute in canonical attributes.
fn lookup<'m>(
    rt: &ResourceTypeDef,
    scope: Scope,
    attrs: &'m Map<String, Value>,
    name: &str,
) -> Option<&'m Value> {
    let v = match scope {
        Scope::Common | Scope::Core => attrs.get(name),
        Scope::Ext(i) => attrs
            .get(&rt.extensions.get(i)?.schema.id)?
            .as_object()?
            .get(name),
    }?;
    (!v.is_null()).then_some(v)
}

/// An attribute's name for error details: URN-qualified for extension attributes.
fn display(rt: &ResourceTypeDef, scope: Scope, name: &str) -> String {
    match scope.ext_urn(rt) {
        Some(urn) => format!("{urn}:{name}"),
        None => name.to_string(),
    }
}

/// Where a key of a body belongs.
enum Target {
    /// The value is an object of the attributes of this scope (a schema URN key). `exact`
    /// says whether the URN was spelled as the schema defines it.
    Object { scope: Scope, exact: bool },
    /// The value is for attribute `idx` of `scope`, or its sub-attribute `sub`. `urn` is
    /// `Some(exact)` when the key was URN-qualified.
    Attr {
        scope: Scope,
        idx: usize,
        sub: Option<String>,
        urn: Option<bool>,
    },
    /// A key under a URN this source does not host.
    Ignored,
}

fn unknown(key: &str) -> ScimError {
    ScimError::invalid_syntax(format!("Unknown attribute {key:?}"))
}

/// Resolves `name` or `name.sub` (no URN) within one scope (or, for `Core`, common + core +
/// unambiguous extension names).
fn resolve_name(rt: &ResourceTypeDef, scope: Scope, key: &str) -> Result<Target, ScimError> {
    let path = AttrPath::parse(key).map_err(|_| unknown(key))?;
    if path.urn.is_some() {
        return Err(unknown(key));
    }
    let candidates: Vec<Scope> = match scope {
        Scope::Core => {
            let mut v = vec![Scope::Common, Scope::Core];
            v.extend((0..rt.extensions.len()).map(Scope::Ext));
            v
        }
        s => vec![s],
    };
    for s in candidates {
        if let Some(idx) = s.find(rt, &path.name) {
            return Ok(Target::Attr {
                scope: s,
                idx,
                sub: path.sub,
                urn: None,
            });
        }
    }
    Err(unknown(key))
}

/// The longest schema URN of the resource type that is `key` or a `:`-prefix of it (compared
/// case-insensitively): its scope, its length and whether `key` spells it exactly.
fn hosted_urn(rt: &ResourceTypeDef, key: &str) -> Option<(Scope, usize, bool)> {
    let mut best: Option<(Scope, usize, bool)> = None;
    let schemas = std::iter::once((Scope::Core, rt.schema.id.as_str())).chain(
        rt.extensions
            .iter()
            .enumerate()
            .map(|(i, e)| (Scope::Ext(i), e.schema.id.as_str())),
    );
    for (scope, urn) in schemas {
        let Some(head) = key.get(..urn.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(urn) {
            continue;
        }
        let rest = &key[urn.len()..];
        if (rest.is_empty() || rest.starts_with(':'))
            && best.is_none_or(|(_, len, _)| urn.len() > len)
        {
            best = Some((scope, urn.len(), head == urn));
        }
    }
    best
}

/// Whether `key` starts with a URN that is none of the resource type's schemas (an extension
/// the source does not host, or a malformed URN).
pub(crate) fn is_foreign_urn(rt: &ResourceTypeDef, key: &str) -> bool {
    starts_with_urn(key) && hosted_urn(rt, key).is_none()
}

/// Whether a URN-qualified `key` spells its schema URN exactly (`None` when no hosted schema
/// URN prefixes it).
pub(crate) fn urn_spelled_exactly(rt: &ResourceTypeDef, key: &str) -> Option<bool> {
    hosted_urn(rt, key).map(|(_, _, exact)| exact)
}

/// Resolves a top-level key of a body.
fn resolve_key(rt: &ResourceTypeDef, key: &str) -> Result<Target, ScimError> {
    if !starts_with_urn(key) {
        return resolve_name(rt, Scope::Core, key);
    }
    let Some((scope, len, exact)) = hosted_urn(rt, key) else {
        return Ok(Target::Ignored);
    };
    let rest = &key[len..];
    if rest.is_empty() {
        return Ok(Target::Object { scope, exact });
    }
    let name = &rest[1..];
    let with_urn = |t: Target| match t {
        Target::Attr {
            scope, idx, sub, ..
        } => Target::Attr {
            scope,
            idx,
            sub,
            urn: Some(exact),
        },
        other => other,
    };
    match scope {
        Scope::Core => {
            let path = AttrPath::parse(name).map_err(|_| unknown(key))?;
            for s in [Scope::Common, Scope::Core] {
                if let Some(idx) = s.find(rt, &path.name) {
                    return Ok(Target::Attr {
                        scope: s,
                        idx,
                        sub: path.sub,
                        urn: Some(exact),
                    });
                }
            }
            Err(unknown(key))
        }
        s => resolve_name(rt, s, name)
            .map(with_urn)
            .map_err(|_| unknown(key)),
    }
}

/// Checks `schemas`: an array of strings that includes the core schema URN; every URN must be
/// one of the resource type's schemas. Rules: `urn_case` (another spelling of a known URN),
/// `lenient_schemas` (unknown URNs, or no core URN).
fn check_schemas(rt: &ResourceTypeDef, value: &Value, cx: &Cx<'_>) -> Result<(), ScimError> {
    let list = value
        .as_array()
        .ok_or_else(|| ScimError::invalid_syntax("\"schemas\" must be an array of strings"))?;
    let mut has_core = false;
    for v in list {
        let s = v
            .as_str()
            .ok_or_else(|| ScimError::invalid_syntax("\"schemas\" must be an array of strings"))?;
        let known = std::iter::once(rt.schema.id.as_str())
            .chain(rt.extensions.iter().map(|e| e.schema.id.as_str()))
            .find(|urn| urn.eq_ignore_ascii_case(s));
        match known {
            Some(urn) if urn == s || cx.tolerate(Rule::UrnCase) => {
                has_core |= urn == rt.schema.id;
            }
            Some(urn) => {
                return Err(ScimError::invalid_syntax(format!(
                    "\"schemas\" lists {s:?}; the schema is spelled {urn}"
                )));
            }
            None if cx.tolerate(Rule::LenientSchemas) => {}
            None => {
                return Err(ScimError::invalid_syntax(format!(
                    "\"schemas\" lists {s:?}, which is not a schema of {} resources",
                    rt.kind.name()
                )));
            }
        }
    }
    // Another resource type's core schema means the body was sent to the wrong endpoint.
    let other_core = list.iter().filter_map(Value::as_str).any(|s| {
        ResourceKind::ALL
            .into_iter()
            .any(|k| k != rt.kind && s.eq_ignore_ascii_case(k.core_schema()))
    });
    if has_core || (!other_core && cx.tolerate(Rule::LenientSchemas)) {
        Ok(())
    } else {
        Err(ScimError::invalid_syntax(format!(
            "\"schemas\" must include {}",
            rt.schema.id
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Collecting the keys of a body per attribute, then normalizing each attribute once.
// ---------------------------------------------------------------------------------------------

/// The raw input for one attribute: its whole value and/or dotted sub-attribute keys.
struct RawEntry {
    scope: Scope,
    idx: usize,
    whole: Option<Value>,
    subs: Vec<(String, Value)>,
}

/// The keys of a body grouped by the attribute they address, in canonical order.
struct RawAttrs<'a> {
    rt: &'a ResourceTypeDef,
    cx: &'a Cx<'a>,
    entries: std::collections::BTreeMap<(usize, usize), RawEntry>,
}

impl<'a> RawAttrs<'a> {
    fn new(rt: &'a ResourceTypeDef, cx: &'a Cx<'a>) -> Self {
        RawAttrs {
            rt,
            cx,
            entries: Default::default(),
        }
    }

    /// An unknown key: dropped under `ignore_unknown_attributes`, else the error.
    fn unknown_key(&self, e: ScimError) -> Result<(), ScimError> {
        if self.cx.tolerate(Rule::IgnoreUnknownAttributes) {
            Ok(())
        } else {
            Err(e)
        }
    }

    /// A key that is a path rather than an attribute name needs `dotted_keys`.
    fn path_key(&self, key: &str) -> Result<(), ScimError> {
        if self.cx.tolerate(Rule::DottedKeys) {
            Ok(())
        } else {
            Err(ScimError::invalid_syntax(format!(
                "{key:?} is a path, not an attribute name; send the attribute's value (sub-attributes and extension attributes nest inside their parent)"
            )))
        }
    }

    fn urn_spelling(&self, key: &str, exact: bool) -> Result<(), ScimError> {
        if exact || self.cx.tolerate(Rule::UrnCase) {
            Ok(())
        } else {
            Err(ScimError::invalid_syntax(format!(
                "{key:?} does not spell its schema URN as the schema defines it"
            )))
        }
    }

    fn add_top_level(&mut self, key: &str, value: &Value) -> Result<(), ScimError> {
        let target = match resolve_key(self.rt, key) {
            Ok(t) => t,
            Err(e) => return self.unknown_key(e),
        };
        match target {
            Target::Ignored => {
                // Stored attributes may hold an extension the source no longer hosts; they are
                // kept as they are, as before it was removed.
                if self.cx.purpose == Purpose::Check || self.cx.tolerate(Rule::LenientSchemas) {
                    Ok(())
                } else {
                    Err(ScimError::invalid_syntax(format!(
                        "{key:?} is not under a schema of {} resources",
                        self.rt.kind.name()
                    )))
                }
            }
            Target::Attr {
                scope,
                idx,
                sub,
                urn,
            } => {
                if let Some(exact) = urn {
                    self.urn_spelling(key, exact)?;
                    self.path_key(key)?;
                } else if sub.is_some() {
                    self.path_key(key)?;
                }
                self.add(scope, idx, sub, value)
            }
            Target::Object { scope, exact } => {
                self.urn_spelling(key, exact)?;
                if scope == Scope::Core {
                    // The core schema's attributes belong at the top level.
                    self.path_key(key)?;
                }
                let obj = match value {
                    Value::Null => return Ok(()),
                    Value::Object(o) => o,
                    _ => {
                        return Err(ScimError::invalid_syntax(format!(
                            "{key} must be a JSON object of the schema's attributes"
                        )));
                    }
                };
                for (k, v) in obj {
                    if k.eq_ignore_ascii_case("schemas") {
                        continue;
                    }
                    match resolve_name(self.rt, scope, k) {
                        Ok(Target::Attr {
                            scope, idx, sub, ..
                        }) => {
                            if sub.is_some() {
                                self.path_key(&format!("{key}:{k}"))?;
                            }
                            self.add(scope, idx, sub, v)?
                        }
                        _ => self.unknown_key(unknown(&format!("{key}:{k}")))?,
                    }
                }
                Ok(())
            }
        }
    }

    fn add(
        &mut self,
        scope: Scope,
        idx: usize,
        sub: Option<String>,
        value: &Value,
    ) -> Result<(), ScimError> {
        let rt = self.rt;
        let entry = self
            .entries
            .entry((scope.order(), idx))
            .or_insert_with(|| RawEntry {
                scope,
                idx,
                whole: None,
                subs: Vec::new(),
            });
        match sub {
            None if entry.whole.is_some() => {
                let name = scope.defs(rt).get(idx).map(|d| d.name.as_str());
                Err(ScimError::invalid_syntax(format!(
                    "Attribute {} is given more than once",
                    display(rt, scope, name.unwrap_or_default())
                )))
            }
            None => {
                entry.whole = Some(value.clone());
                Ok(())
            }
            Some(sub) => {
                entry.subs.push((sub, value.clone()));
                Ok(())
            }
        }
    }

    /// Normalizes every collected attribute into canonical attributes.
    fn normalize(self) -> Result<Map<String, Value>, ScimError> {
        let rt = self.rt;
        let cx = self.cx;
        let mut out = Map::new();
        let mut exts: Vec<Map<String, Value>> = vec![Map::new(); rt.extensions.len()];
        for entry in self.entries.into_values() {
            let Some(def) = entry.scope.defs(rt).get(entry.idx) else {
                continue;
            };
            if def.mutability == Mutability::ReadOnly && cx.purpose == Purpose::Input {
                continue;
            }
            let path = display(rt, entry.scope, &def.name);
            let raw = merge_dotted(def, &path, entry.whole, entry.subs)?;
            let kind = if entry.scope == Scope::Core {
                ValueKind::of(rt, def)
            } else {
                ValueKind::Plain
            };
            let Some(v) = cx.attribute(def, &raw, &path, kind, 0)? else {
                continue;
            };
            match entry.scope {
                Scope::Common | Scope::Core => {
                    out.insert(def.name.clone(), v);
                }
                Scope::Ext(i) => {
                    if let Some(m) = exts.get_mut(i) {
                        m.insert(def.name.clone(), v);
                    }
                }
            }
        }
        for (ext, m) in rt.extensions.iter().zip(exts) {
            if !m.is_empty() {
                out.insert(ext.schema.id.clone(), Value::Object(m));
            }
        }
        Ok(out)
    }
}

/// Merges dotted keys (`name.givenName`) into the attribute's object value.
fn merge_dotted(
    def: &AttributeDef,
    path: &str,
    whole: Option<Value>,
    subs: Vec<(String, Value)>,
) -> Result<Value, ScimError> {
    if subs.is_empty() {
        return Ok(whole.unwrap_or(Value::Null));
    }
    if def.attr_type != AttrType::Complex || def.multi_valued {
        let sub = subs.first().map(|(s, _)| s.as_str()).unwrap_or_default();
        return Err(ScimError::invalid_syntax(format!(
            "{path}.{sub} cannot be set on its own: {path} is {}",
            if def.multi_valued {
                "multi-valued"
            } else {
                "not complex"
            }
        )));
    }
    let mut obj = match whole {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(ScimError::invalid_value(format!(
                "{path} must be a complex value (a JSON object)"
            )));
        }
    };
    for (sub, v) in subs {
        if obj.keys().any(|k| k.eq_ignore_ascii_case(&sub)) {
            return Err(ScimError::invalid_syntax(format!(
                "Attribute {path}.{sub} is given more than once"
            )));
        }
        obj.insert(sub, v);
    }
    Ok(Value::Object(obj))
}

// ---------------------------------------------------------------------------------------------
// Values.
// ---------------------------------------------------------------------------------------------

/// Why values are being normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Client input: readOnly values are dropped, quirk rules apply.
    Input,
    /// Stored canonical attributes being re-checked: readOnly values are kept.
    Check,
}

/// Attributes whose values get rules of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    /// Any other attribute.
    Plain,
    /// Group `members`.
    Members,
    /// User `roles`.
    Roles,
}

impl ValueKind {
    /// The kind of a core attribute of `rt`.
    fn of(rt: &ResourceTypeDef, def: &AttributeDef) -> ValueKind {
        let is = |name: &str| {
            rt.schema
                .attribute(name)
                .is_some_and(|m| std::ptr::eq(m, def) || m == def)
        };
        match rt.kind {
            ResourceKind::Group if is("members") => ValueKind::Members,
            ResourceKind::User if is("roles") => ValueKind::Roles,
            _ => ValueKind::Plain,
        }
    }
}

/// The normalization context.
struct Cx<'a> {
    rules: &'a Rules,
    fired: &'a Fired,
    purpose: Purpose,
}

impl Cx<'_> {
    /// Applies `rule` if the source enables it (recording it), else says no.
    fn tolerate(&self, rule: Rule) -> bool {
        tolerate(self.rules, self.fired, rule)
    }

    /// Normalizes an attribute's whole value. `None` means unassigned.
    fn attribute(
        &self,
        def: &AttributeDef,
        value: &Value,
        path: &str,
        kind: ValueKind,
        depth: usize,
    ) -> Result<Option<Value>, ScimError> {
        if value.is_null() {
            return Ok(None);
        }
        if !def.multi_valued {
            if let Value::Array(items) = value {
                if let [one] = items.as_slice()
                    && def.attr_type == AttrType::Complex
                    && self.tolerate(Rule::SingleElementArrays)
                {
                    return self.element(def, one, path, kind, depth);
                }
                return Err(ScimError::invalid_value(format!(
                    "{path} is single-valued; an array was given"
                )));
            }
            return self.element(def, value, path, kind, depth);
        }
        let single;
        let items: &[Value] = match value {
            Value::Array(a) => a,
            other if self.tolerate(Rule::SingleValueLists) => {
                single = [other.clone()];
                &single
            }
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "{path} is multi-valued and must be an array"
                )));
            }
        };
        let mut out = Vec::with_capacity(items.len());
        let mut primaries = 0usize;
        let mut seen_members: HashSet<String> = HashSet::new();
        for item in items {
            if item.is_array() {
                return Err(ScimError::invalid_value(format!(
                    "{path} must be an array of values, not of arrays"
                )));
            }
            let Some(v) = self.element(def, item, path, kind, depth)? else {
                continue;
            };
            if v.get("primary") == Some(&Value::Bool(true)) {
                primaries += 1;
                if primaries > 1 {
                    return Err(ScimError::invalid_value(format!(
                        "{path} has more than one value with \"primary\": true"
                    )));
                }
            }
            if kind == ValueKind::Members {
                let id = v.get("value").and_then(Value::as_str).unwrap_or_default();
                if !seen_members.insert(id.to_string()) {
                    continue;
                }
            }
            out.push(v);
        }
        Ok((!out.is_empty()).then_some(Value::Array(out)))
    }

    /// Normalizes one value (one element of a multi-valued attribute).
    fn element(
        &self,
        def: &AttributeDef,
        value: &Value,
        path: &str,
        kind: ValueKind,
        depth: usize,
    ) -> Result<Option<Value>, ScimError> {
        if value.is_null() {
            Ok(None)
        } else if def.attr_type == AttrType::Complex {
            let decoded;
            let value = match decode_role(kind, value) {
                Some(d) if self.tolerate(Rule::RolesJsonStrings) => {
                    decoded = d;
                    &decoded
                }
                _ => value,
            };
            self.complex(def, value, path, kind, depth)
        } else {
            self.scalar(def, value, path).map(Some)
        }
    }

    fn complex(
        &self,
        def: &AttributeDef,
        value: &Value,
        path: &str,
        kind: ValueKind,
        depth: usize,
    ) -> Result<Option<Value>, ScimError> {
        if depth > 0 {
            // Schemas allow one level of sub-attributes; this bounds the recursion.
            return Err(ScimError::invalid_value(format!(
                "{path}: complex values cannot be nested"
            )));
        }
        let members = kind == ValueKind::Members;
        let bare;
        let obj = match value {
            Value::Object(o) => o,
            Value::String(s)
                if def.sub_attribute("value").is_some()
                    && self.tolerate(Rule::BareStringValues) =>
            {
                bare = Map::from_iter([("value".to_string(), Value::String(s.clone()))]);
                &bare
            }
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "{path} must be a complex value (a JSON object)"
                )));
            }
        };
        let mut out = Map::new();
        for (k, v) in obj {
            let sub = match def.sub_attribute(k) {
                Some(sub) => sub,
                None if members && k.eq_ignore_ascii_case("displayName") => {
                    if !self.tolerate(Rule::MemberDisplayName) {
                        return Err(unknown(&format!("{path}.{k}")));
                    }
                    // An explicit `display` wins over the alias.
                    if obj.keys().any(|k| k.eq_ignore_ascii_case("display")) {
                        continue;
                    }
                    match def.sub_attribute("display") {
                        Some(sub) => sub,
                        None => continue,
                    }
                }
                None if self.tolerate(Rule::IgnoreUnknownAttributes) => continue,
                None => return Err(unknown(&format!("{path}.{k}"))),
            };
            if members && sub.name == "$ref" {
                // Derived from `value` and `type` on output.
                continue;
            }
            if sub.mutability == Mutability::ReadOnly && self.purpose == Purpose::Input {
                continue;
            }
            if out.contains_key(&sub.name) {
                return Err(ScimError::invalid_syntax(format!(
                    "Attribute {path}.{} is given more than once",
                    sub.name
                )));
            }
            let sub_path = format!("{path}.{}", sub.name);
            let Some(mut nv) = self.attribute(sub, v, &sub_path, ValueKind::Plain, depth + 1)?
            else {
                continue;
            };
            if members && sub.name == "type" {
                nv = member_type(&nv, &sub_path)?;
            }
            out.insert(sub.name.clone(), nv);
        }
        if out.is_empty() {
            return Ok(None);
        }
        for sub in &def.sub_attributes {
            let exempt = sub.mutability == Mutability::ReadOnly && self.purpose == Purpose::Input;
            // A member is nothing without the id it refers to, whatever the schema says.
            let required = sub.required || (members && sub.name == "value");
            if required && !exempt && out.get(&sub.name).is_none_or(is_empty_string) {
                return Err(ScimError::invalid_value(format!(
                    "{path}.{} is required",
                    sub.name
                )));
            }
        }
        Ok(Some(Value::Object(out)))
    }

    fn scalar(&self, def: &AttributeDef, value: &Value, path: &str) -> Result<Value, ScimError> {
        let ok = match (def.attr_type, value) {
            (AttrType::String | AttrType::Reference, Value::String(_)) => true,
            (AttrType::Boolean, Value::Bool(_)) => true,
            (AttrType::Boolean, Value::String(s))
                if (s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false"))
                    && self.tolerate(Rule::BooleanStrings) =>
            {
                return Ok(Value::Bool(s.eq_ignore_ascii_case("true")));
            }
            (AttrType::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (AttrType::Decimal, Value::Number(_)) => true,
            (AttrType::DateTime, Value::String(s)) => parse_time(s).is_some(),
            (AttrType::Binary, Value::String(s)) => is_base64(s),
            _ => false,
        };
        if ok {
            Ok(value.clone())
        } else {
            Err(ScimError::invalid_value(format!(
                "{path} must be {}",
                expected(def.attr_type)
            )))
        }
    }
}

/// A `roles` value carrying a JSON-encoded object, as Entra ID's app-role mappings send it
/// (`{"value": "{\"id\":\"…\",\"value\":\"Admin\",\"displayName\":\"Admin\"}"}` or the
/// encoded object itself), decoded into `value` and `display` (the outer `type`, `primary` and
/// `display` are kept). `None` when the value is not of that shape.
fn decode_role(kind: ValueKind, value: &Value) -> Option<Value> {
    if kind != ValueKind::Roles {
        return None;
    }
    let parse = |s: &str| -> Option<Map<String, Value>> {
        if !s.trim_start().starts_with('{') {
            return None;
        }
        match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(o)) => Some(o),
            _ => None,
        }
    };
    let (mut outer, inner) = match value {
        Value::String(s) => (Map::new(), parse(s)?),
        Value::Object(o) => {
            let s = o
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("value"))
                .and_then(|(_, v)| v.as_str())?;
            let inner = parse(s)?;
            let mut outer = o.clone();
            outer.retain(|k, _| !k.eq_ignore_ascii_case("value"));
            (outer, inner)
        }
        _ => return None,
    };
    let get = |name: &str| {
        inner
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let role_value = get("value").and_then(text)?;
    outer.insert("value".into(), Value::String(role_value));
    let has_display = outer.keys().any(|k| k.eq_ignore_ascii_case("display"));
    if !has_display && let Some(d) = get("displayName").or_else(|| get("display")).and_then(text) {
        outer.insert("display".into(), Value::String(d));
    }
    Some(Value::Object(outer))
}

fn expected(t: AttrType) -> &'static str {
    match t {
        AttrType::String => "a string",
        AttrType::Boolean => "a boolean",
        AttrType::Decimal => "a number",
        AttrType::Integer => "an integer",
        AttrType::DateTime => "an RFC 3339 dateTime string",
        AttrType::Binary => "a base64-encoded string",
        AttrType::Reference => "a reference (a string)",
        AttrType::Complex => "a complex value (a JSON object)",
    }
}

/// RFC 4648 §4 base64; padding optional (RFC 7643 §2.3.6 does not insist on it and clients
/// differ).
fn is_base64(s: &str) -> bool {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    ENGINE.decode(s).is_ok()
}

fn is_empty_string(v: &Value) -> bool {
    v.as_str().is_some_and(str::is_empty)
}

/// `members.type`: `User` or `Group` in any case, stored in that spelling.
fn member_type(v: &Value, path: &str) -> Result<Value, ScimError> {
    let s = v.as_str().unwrap_or_default();
    ResourceKind::ALL
        .into_iter()
        .find(|k| k.name().eq_ignore_ascii_case(s))
        .map(|k| Value::String(k.name().to_string()))
        .ok_or_else(|| {
            ScimError::invalid_value(format!("{path} must be \"User\" or \"Group\", not {v}"))
        })
}

// ---------------------------------------------------------------------------------------------
// Whole-resource rules: required, immutable, PUT carry-over.
// ---------------------------------------------------------------------------------------------

fn check_required(rt: &ResourceTypeDef, attrs: &Map<String, Value>) -> Result<(), ScimError> {
    for ext in &rt.extensions {
        if ext.required && !attrs.contains_key(&ext.schema.id) {
            return Err(ScimError::invalid_value(format!(
                "Extension {} is required",
                ext.schema.id
            )));
        }
    }
    for (scope, def) in top_level_defs(rt) {
        if !def.required || def.mutability == Mutability::ReadOnly || scope == Scope::Common {
            continue;
        }
        if let Some(urn) = scope.ext_urn(rt)
            && !attrs.contains_key(urn)
        {
            // An optional extension that is absent has no required attributes to check.
            continue;
        }
        if lookup(rt, scope, attrs, &def.name).is_none_or(is_empty_string) {
            return Err(ScimError::invalid_value(format!(
                "Attribute {} is required",
                display(rt, scope, &def.name)
            )));
        }
    }
    Ok(())
}

/// Immutable attributes (and immutable sub-attributes of single-valued complex attributes)
/// must keep their stored values. With `removals`, dropping a stored value is a change too.
fn check_immutable(
    rt: &ResourceTypeDef,
    new: &Map<String, Value>,
    old: &Map<String, Value>,
    removals: bool,
) -> Result<(), ScimError> {
    let changed = |path: String| {
        ScimError::mutability(format!(
            "Attribute {path} is immutable and cannot be changed"
        ))
    };
    for (scope, def) in top_level_defs(rt) {
        let Some(o) = lookup(rt, scope, old, &def.name) else {
            continue;
        };
        let n = lookup(rt, scope, new, &def.name);
        if def.mutability == Mutability::Immutable {
            match n {
                Some(n) if values_equal(def, o, n) => {}
                None if !removals => {}
                _ => return Err(changed(display(rt, scope, &def.name))),
            }
            continue;
        }
        if def.attr_type != AttrType::Complex || def.multi_valued {
            continue;
        }
        for sub in &def.sub_attributes {
            if sub.mutability != Mutability::Immutable {
                continue;
            }
            let Some(os) = o.get(&sub.name).filter(|v| !v.is_null()) else {
                continue;
            };
            match n.and_then(|n| n.get(&sub.name)).filter(|v| !v.is_null()) {
                Some(ns) if values_equal(sub, os, ns) => {}
                None if !removals => {}
                _ => {
                    return Err(changed(format!(
                        "{}.{}",
                        display(rt, scope, &def.name),
                        sub.name
                    )));
                }
            }
        }
    }
    Ok(())
}

/// PUT: values a client cannot replace by omission survive it — readOnly attributes (kept by
/// the server), writeOnly ones (`password`) and immutable ones (including immutable
/// sub-attributes of single-valued complex attributes).
fn keep_unreplaceable(
    rt: &ResourceTypeDef,
    out: &mut Map<String, Value>,
    old: &Map<String, Value>,
) {
    for (scope, def) in top_level_defs(rt) {
        if scope == Scope::Common {
            continue;
        }
        let Some(o) = lookup(rt, scope, old, &def.name) else {
            continue;
        };
        let keep = matches!(
            def.mutability,
            Mutability::ReadOnly | Mutability::WriteOnly | Mutability::Immutable
        );
        let current = lookup(rt, scope, out, &def.name).cloned();
        let new_value = match current {
            None if keep => o.clone(),
            Some(Value::Object(mut n))
                if def.attr_type == AttrType::Complex && !def.multi_valued =>
            {
                let mut touched = false;
                for sub in &def.sub_attributes {
                    if sub.mutability == Mutability::Immutable
                        && !n.contains_key(&sub.name)
                        && let Some(os) = o.get(&sub.name)
                    {
                        n.insert(sub.name.clone(), os.clone());
                        touched = true;
                    }
                }
                if !touched {
                    continue;
                }
                Value::Object(n)
            }
            _ => continue,
        };
        match scope.ext_urn(rt) {
            None => {
                out.insert(def.name.clone(), new_value);
            }
            Some(urn) => {
                let ext = out
                    .entry(urn.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(m) = ext.as_object_mut() {
                    m.insert(def.name.clone(), new_value);
                }
            }
        }
    }
}

/// Whether two values of an attribute are the same value: strings per `caseExact`, dateTimes
/// as instants, numbers numerically, complex values per sub-attribute (ignoring readOnly
/// ones), multi-valued attributes as multisets.
pub fn values_equal(def: &AttributeDef, a: &Value, b: &Value) -> bool {
    if def.multi_valued
        && let (Value::Array(x), Value::Array(y)) = (a, b)
    {
        if x.len() != y.len() {
            return false;
        }
        // Multi-valued attributes are unordered; match as multisets, quadratic only for
        // small lists.
        if x.len() > 256 {
            return x.iter().zip(y).all(|(a, b)| element_equal(def, a, b));
        }
        let mut used = vec![false; y.len()];
        return x.iter().all(|a| {
            let hit = y
                .iter()
                .enumerate()
                .find(|(i, b)| !used[*i] && element_equal(def, a, b));
            match hit {
                Some((i, _)) => {
                    used[i] = true;
                    true
                }
                None => false,
            }
        });
    }
    element_equal(def, a, b)
}

fn element_equal(def: &AttributeDef, a: &Value, b: &Value) -> bool {
    match (def.attr_type, a, b) {
        (AttrType::Complex, Value::Object(x), Value::Object(y)) => {
            def.sub_attributes.iter().all(|sub| {
                if sub.mutability == Mutability::ReadOnly {
                    return true;
                }
                match (
                    x.get(&sub.name).filter(|v| !v.is_null()),
                    y.get(&sub.name).filter(|v| !v.is_null()),
                ) {
                    (None, None) => true,
                    (Some(p), Some(q)) if !sub.multi_valued => element_equal(sub, p, q),
                    (Some(p), Some(q)) => p == q,
                    _ => false,
                }
            })
        }
        (AttrType::String, Value::String(x), Value::String(y)) if !def.case_exact => {
            x == y || x.to_lowercase() == y.to_lowercase()
        }
        (AttrType::DateTime, Value::String(x), Value::String(y)) => {
            x == y || matches!((parse_time(x), parse_time(y)), (Some(p), Some(q)) if p == q)
        }
        (AttrType::Integer | AttrType::Decimal, Value::Number(x), Value::Number(y)) => {
            match (x.as_i64(), y.as_i64()) {
                (Some(p), Some(q)) => p == q,
                _ => x == y || x.as_f64() == y.as_f64(),
            }
        }
        _ => a == b,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::resource::{Meta, Version, now};
    use crate::schema::{ENTERPRISE_USER, GROUP, Schema, SchemaRegistry, USER};
    use serde_json::json;

    fn reg() -> SchemaRegistry {
        SchemaRegistry::new()
    }

    fn user(body: Value) -> Result<Map<String, Value>, ScimError> {
        let reg = reg();
        prepare(
            reg.resource_type(ResourceKind::User),
            &body,
            WriteMode::Create,
        )
    }

    fn group(body: Value) -> Result<Map<String, Value>, ScimError> {
        let reg = reg();
        prepare(
            reg.resource_type(ResourceKind::Group),
            &body,
            WriteMode::Create,
        )
    }

    fn stored(kind: ResourceKind, attrs: Value) -> Resource {
        let t = now();
        Resource {
            id: "1".into(),
            kind,
            meta: Meta {
                created: t,
                last_modified: t,
                version: Version(1),
            },
            attrs: attrs.as_object().cloned().unwrap(),
        }
    }

    fn err_type(r: Result<Map<String, Value>, ScimError>) -> &'static str {
        r.unwrap_err().scim_type.map(|t| t.as_str()).unwrap_or("")
    }

    #[test]
    fn names_and_urns_are_rewritten_to_canonical_spelling() {
        let out = user(json!({
            "SCHEMAS": ["URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER"],
            "USERNAME": "bjensen",
            "Name": {"GIVENNAME": "Barbara"},
            "EMAILS": [{"Value": "b@example.com", "TYPE": "work", "Primary": true}],
            "ExternalID": "x1",
            "urn:ietf:params:scim:schemas:extension:ENTERPRISE:2.0:User": {"EmployeeNumber": "7"}
        }))
        .unwrap();
        assert_eq!(
            Value::Object(out),
            json!({
                "externalId": "x1",
                "userName": "bjensen",
                "name": {"givenName": "Barbara"},
                "emails": [{"value": "b@example.com", "type": "work", "primary": true}],
                ENTERPRISE_USER: {"employeeNumber": "7"}
            })
        );
    }

    #[test]
    fn urn_qualified_and_dotted_keys_are_accepted() {
        let out = user(json!({
            "schemas": [USER],
            "urn:ietf:params:scim:schemas:core:2.0:User:userName": "bjensen",
            "name.givenName": "Barbara",
            "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName": "Jensen",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "R&D",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value": "m1",
        }))
        .unwrap();
        assert_eq!(out["userName"], "bjensen");
        assert_eq!(
            out["name"],
            json!({"givenName": "Barbara", "familyName": "Jensen"})
        );
        assert_eq!(
            out[ENTERPRISE_USER],
            json!({"department": "R&D", "manager": {"value": "m1"}})
        );
    }

    #[test]
    fn core_urn_object_and_urn_qualified_common_attributes_are_accepted() {
        let out = user(json!({
            "schemas": [USER],
            "URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER": {"userName": "a", "Name.GivenName": "B"},
            "urn:ietf:params:scim:schemas:core:2.0:User:EXTERNALID": "x",
            "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:Division": "d",
        }))
        .unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"externalId": "x", "userName": "a", "name": {"givenName": "B"},
                   ENTERPRISE_USER: {"division": "d"}})
        );
    }

    #[test]
    fn unambiguous_extension_names_move_under_their_urn() {
        let out = user(json!({"schemas": [USER], "userName": "a", "costCenter": "42"})).unwrap();
        assert_eq!(out[ENTERPRISE_USER], json!({"costCenter": "42"}));
        assert!(!out.contains_key("costCenter"));
    }

    #[test]
    fn same_attribute_twice_is_invalid_syntax() {
        let r = user(json!({"schemas": [USER], "userName": "a", "USERNAME": "b"}));
        assert_eq!(err_type(r), "invalidSyntax");
        let r = user(json!({"schemas": [USER], "userName": "a",
            "name": {"givenName": "x"}, "name.GivenName": "y"}));
        assert_eq!(err_type(r), "invalidSyntax");
    }

    #[test]
    fn dotted_keys_need_a_single_valued_complex_parent() {
        let r = user(json!({"schemas": [USER], "userName": "a", "emails.value": "a@b"}));
        assert_eq!(err_type(r), "invalidSyntax");
        let r = user(json!({"schemas": [USER], "userName": "a", "displayName.x": "y"}));
        assert_eq!(err_type(r), "invalidSyntax");
    }

    #[test]
    fn deeply_nested_input_is_rejected_without_recursing_into_it() {
        let mut deep = json!("leaf");
        for _ in 0..1000 {
            deep = json!({ "givenName": deep });
        }
        let r = user(json!({"schemas": [USER], "userName": "a", "name": deep}));
        assert_eq!(err_type(r), "invalidValue");
        let mut deep = json!(1);
        for _ in 0..1000 {
            deep = json!([deep]);
        }
        let r = user(json!({"schemas": [USER], "userName": "a", "emails": deep}));
        assert_eq!(err_type(r), "invalidValue");
    }

    #[test]
    fn schemas_is_required_and_must_include_the_core_schema() {
        assert_eq!(err_type(user(json!({"userName": "a"}))), "invalidSyntax");
        assert_eq!(
            err_type(user(json!({"schemas": [GROUP], "userName": "a"}))),
            "invalidSyntax"
        );
        assert_eq!(
            err_type(user(json!({"schemas": USER, "userName": "a"}))),
            "invalidSyntax"
        );
        assert_eq!(
            err_type(user(json!({"schemas": [USER, 3], "userName": "a"}))),
            "invalidSyntax"
        );
        // Unknown URNs in `schemas` are ignored.
        let out = user(json!({"schemas": [USER, "urn:example:other"], "userName": "a"})).unwrap();
        assert_eq!(Value::Object(out), json!({"userName": "a"}));
    }

    #[test]
    fn body_must_be_an_object() {
        assert_eq!(err_type(user(json!([1]))), "invalidSyntax");
    }

    #[test]
    fn unknown_attributes_are_rejected_with_their_name() {
        let e = user(json!({"schemas": [USER], "userName": "a", "nickname2": "x"})).unwrap_err();
        assert_eq!(e.scim_type.map(|t| t.as_str()), Some("invalidSyntax"));
        assert!(e.detail.contains("nickname2"), "{}", e.detail);
        let e =
            user(json!({"schemas": [USER], "userName": "a", "name": {"given": "x"}})).unwrap_err();
        assert!(e.detail.contains("name.given"), "{}", e.detail);
        let e = user(json!({"schemas": [USER], "userName": "a",
            ENTERPRISE_USER: {"bogus": 1}}))
        .unwrap_err();
        assert!(e.detail.contains("bogus"), "{}", e.detail);
    }

    #[test]
    fn unregistered_urn_keys_are_ignored() {
        let out = user(json!({
            "schemas": [USER, "urn:ietf:params:scim:schemas:extension:acme:2.0:User"],
            "userName": "a",
            "urn:ietf:params:scim:schemas:extension:acme:2.0:User": {"badge": 1},
            "urn:ietf:params:scim:schemas:extension:acme:2.0:User:badge": 1,
        }))
        .unwrap();
        assert_eq!(Value::Object(out), json!({"userName": "a"}));
    }

    #[test]
    fn nulls_and_empty_arrays_are_absent() {
        let out = user(
            json!({"schemas": [USER], "userName": "a", "displayName": null,
            "emails": [], "phoneNumbers": [null], "name": {"givenName": null}}),
        )
        .unwrap();
        assert_eq!(Value::Object(out), json!({"userName": "a"}));
    }

    #[test]
    fn read_only_input_is_dropped() {
        let out = user(json!({"schemas": [USER], "userName": "a", "id": "evil",
            "meta": {"version": "W/\"9\""}, "groups": [{"value": "g"}],
            ENTERPRISE_USER: {"manager": {"value": "m", "displayName": "Boss"}}}))
        .unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"userName": "a", ENTERPRISE_USER: {"manager": {"value": "m"}}})
        );
    }

    #[test]
    fn values_are_stored_exactly_as_sent() {
        let out = user(json!({"schemas": [USER], "userName": "  BJensen ",
            "emails": [{"value": "B@Example.COM", "type": "Work"}]}))
        .unwrap();
        assert_eq!(out["userName"], "  BJensen ");
        assert_eq!(
            out["emails"][0],
            json!({"value": "B@Example.COM", "type": "Work"})
        );
    }

    #[test]
    fn types_are_checked() {
        for (attr, bad) in [
            ("userName", json!(3)),
            ("active", json!("yes")),
            ("active", json!(1)),
            ("displayName", json!({"a": 1})),
            ("name", json!("Barbara")),
            ("profileUrl", json!(true)),
            ("displayName", json!(["a", "b"])),
        ] {
            let mut body = json!({"schemas": [USER], "userName": "a"});
            body[attr] = bad.clone();
            assert_eq!(err_type(user(body)), "invalidValue", "{attr}: {bad}");
        }
        let e = user(json!({"schemas": [USER], "userName": "a",
            "emails": [{"value": 5}]}))
        .unwrap_err();
        assert!(e.detail.contains("emails.value"), "{}", e.detail);
    }

    fn custom_registry() -> SchemaRegistry {
        let schema = Schema::from_json(&json!({
            "id": "urn:example:params:scim:schemas:extension:acme:2.0:User",
            "attributes": [
                {"name": "badge", "type": "integer"},
                {"name": "score", "type": "decimal"},
                {"name": "hired", "type": "dateTime"},
                {"name": "key", "type": "binary"},
                {"name": "tags", "type": "string", "multiValued": true},
                {"name": "site", "type": "string", "mutability": "immutable"},
                {"name": "clearance", "type": "string", "required": true},
                {"name": "audit", "type": "string", "mutability": "readOnly"},
            ]
        }))
        .unwrap();
        let mut reg = SchemaRegistry::new();
        reg.add_extension(ResourceKind::User, schema, false)
            .unwrap();
        reg
    }

    const ACME: &str = "urn:example:params:scim:schemas:extension:acme:2.0:User";

    fn acme(ext: Value) -> Result<Map<String, Value>, ScimError> {
        let reg = custom_registry();
        let mut body = json!({"schemas": [USER, ACME], "userName": "a"});
        body[ACME] = ext;
        prepare(
            reg.resource_type(ResourceKind::User),
            &body,
            WriteMode::Create,
        )
    }

    #[test]
    fn integer_decimal_datetime_and_binary_types() {
        let out = acme(json!({"clearance": "c", "badge": 12, "score": 1.5,
            "hired": "2024-01-02T03:04:05Z", "key": "aGVsbG8=", "tags": ["x"]}))
        .unwrap();
        assert_eq!(out[ACME]["badge"], 12);
        assert_eq!(out[ACME]["score"], 1.5);
        assert!(acme(json!({"clearance": "c", "score": 2})).is_ok());
        assert!(acme(json!({"clearance": "c", "key": "aGVsbG8"})).is_ok());
        for bad in [
            json!({"badge": 1.5}),
            json!({"badge": "12"}),
            json!({"score": "1.5"}),
            json!({"hired": "2024-01-02"}),
            json!({"hired": "yesterday"}),
            json!({"key": "not base64!"}),
            json!({"tags": [1]}),
            json!({"tags": [["x"]]}),
        ] {
            let mut ext = bad.clone();
            ext["clearance"] = json!("c");
            assert_eq!(err_type(acme(ext)), "invalidValue", "{bad}");
        }
    }

    /// Prepares a body of `kind` with `rules`: the result and the rules that fired.
    fn with_rules(
        kind: ResourceKind,
        rules: Rules,
        body: Value,
    ) -> (Result<Map<String, Value>, ScimError>, Vec<Rule>) {
        let reg = reg();
        let fired = Fired::new();
        let r = prepare_with(
            reg.resource_type(kind),
            &body,
            WriteMode::Create,
            &rules,
            &fired,
        );
        (r, fired.rules())
    }

    /// Asserts a rule fires under the defaults (or `rules`) and that `strict` refuses the body.
    fn fires_and_strict_refuses(
        kind: ResourceKind,
        rules: Rules,
        rule: Rule,
        body: Value,
    ) -> Map<String, Value> {
        let (ok, fired) = with_rules(kind, rules, body.clone());
        let ok = ok.unwrap_or_else(|e| panic!("{rule}: {}", e.detail));
        assert!(fired.contains(&rule), "{rule} did not fire: {fired:?}");
        let (strict, fired) = with_rules(kind, Rules::STRICT, body.clone());
        assert!(strict.is_err(), "strict accepted {body} for {rule}");
        assert!(fired.is_empty(), "{fired:?}");
        let (off, _) = with_rules(kind, rules.without(rule), body);
        assert!(off.is_err(), "{rule} switched off alone still accepts");
        ok
    }

    #[test]
    fn conforming_bodies_fire_no_rule() {
        let (r, fired) = with_rules(
            ResourceKind::User,
            Rules::ALL,
            json!({"schemas": [USER, ENTERPRISE_USER], "userName": "a", "active": true,
                "emails": [{"value": "a@b", "type": "work", "primary": true}],
                "name": {"givenName": "A"},
                ENTERPRISE_USER: {"manager": {"value": "m1"}}}),
        );
        assert!(r.is_ok());
        assert!(fired.is_empty(), "{fired:?}");
    }

    #[test]
    fn single_value_lists_wraps_one_value_for_a_multi_valued_attribute() {
        let out = fires_and_strict_refuses(
            ResourceKind::User,
            Rules::DEFAULT,
            Rule::SingleValueLists,
            json!({"schemas": [USER], "userName": "a", "emails": {"value": "a@b"}}),
        );
        assert_eq!(out["emails"], json!([{"value": "a@b"}]));
    }

    #[test]
    fn boolean_strings_become_booleans_in_any_case_also_as_primary() {
        let out = fires_and_strict_refuses(
            ResourceKind::User,
            Rules::DEFAULT,
            Rule::BooleanStrings,
            json!({"schemas": [USER], "userName": "a", "active": "False",
                "emails": [{"value": "a@b", "primary": "TRUE"}]}),
        );
        assert_eq!(out["active"], false);
        assert_eq!(out["emails"][0]["primary"], true);
        // Other strings stay errors, whatever the rules.
        let (r, _) = with_rules(
            ResourceKind::User,
            Rules::ALL,
            json!({"schemas": [USER], "userName": "a", "active": "yes"}),
        );
        assert!(r.is_err());
    }

    #[test]
    fn bare_string_values_make_manager_and_member_objects() {
        let out = fires_and_strict_refuses(
            ResourceKind::User,
            Rules::DEFAULT,
            Rule::BareStringValues,
            json!({"schemas": [USER], "userName": "a", ENTERPRISE_USER: {"manager": "m1"}}),
        );
        assert_eq!(out[ENTERPRISE_USER]["manager"], json!({"value": "m1"}));
        let out = fires_and_strict_refuses(
            ResourceKind::Group,
            Rules::DEFAULT,
            Rule::BareStringValues,
            json!({"schemas": [GROUP], "displayName": "g", "members": ["u1"]}),
        );
        assert_eq!(out["members"], json!([{"value": "u1"}]));
    }

    #[test]
    fn single_element_arrays_unwrap_a_single_valued_complex_value() {
        let out = fires_and_strict_refuses(
            ResourceKind::User,
            Rules::DEFAULT,
            Rule::SingleElementArrays,
            json!({"schemas": [USER], "userName": "a",
                ENTERPRISE_USER: {"manager": [{"value": "m1", "$ref": null}]}}),
        );
        assert_eq!(out[ENTERPRISE_USER]["manager"], json!({"value": "m1"}));
        // Two values for a single-valued attribute stay an error.
        let (r, _) = with_rules(
            ResourceKind::User,
            Rules::ALL,
            json!({"schemas": [USER], "userName": "a",
                ENTERPRISE_USER: {"manager": [{"value": "m1"}, {"value": "m2"}]}}),
        );
        assert!(r.is_err());
    }

    #[test]
    fn dotted_keys_accept_sub_attribute_and_urn_qualified_keys() {
        let out = fires_and_strict_refuses(
            ResourceKind::User,
            Rules::DEFAULT,
            Rule::DottedKeys,
            json!({"schemas": [USER], "userName": "a", "name.givenName": "B"}),
        );
        assert_eq!(out["name"], json!({"givenName": "B"}));
        let out = fires_and_strict_refuses(
            ResourceKind::User,
            Rules::DEFAULT,
            Rule::DottedKeys,
            json!({"schemas": [USER], "userName": "a",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "7"}),
        );
        assert_eq!(out[ENTERPRISE_USER]["employeeNumber"], "7");
        fires_and_strict_refuses(
            ResourceKind::User,
            Rules::DEFAULT,
            Rule::DottedKeys,
            json!({"schemas": [USER], "userName": "a",
                ENTERPRISE_USER: {"manager.value": "m1"}}),
        );
    }

    #[test]
    fn urn_case_accepts_other_spellings_of_known_urns() {
        let out = fires_and_strict_refuses(
            ResourceKind::User,
            Rules::DEFAULT,
            Rule::UrnCase,
            json!({"schemas": ["URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER"], "userName": "a",
                "urn:ietf:params:scim:schemas:extension:Enterprise:2.0:User":
                    {"department": "d"}}),
        );
        assert_eq!(out[ENTERPRISE_USER]["department"], "d");
    }

    #[test]
    fn attribute_names_are_case_insensitive_even_when_strict() {
        // RFC 7643 §2.1: not a tolerance, so no preset switches it off.
        let (r, fired) = with_rules(
            ResourceKind::User,
            Rules::STRICT,
            json!({"schemas": [USER], "UserName": "a", "NAME": {"GivenName": "B"}}),
        );
        let out = r.unwrap();
        assert_eq!(out["userName"], "a");
        assert_eq!(out["name"]["givenName"], "B");
        assert!(fired.is_empty());
    }

    #[test]
    fn lenient_schemas_ignores_unknown_and_malformed_urns() {
        // Entra ID's group URN, its malformed enterprise URN, OneLogin's SCIM 1.1 URN.
        fires_and_strict_refuses(
            ResourceKind::Group,
            Rules::DEFAULT,
            Rule::LenientSchemas,
            json!({"schemas": [GROUP,
                "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "displayName": "g"}),
        );
        fires_and_strict_refuses(
            ResourceKind::User,
            Rules::DEFAULT,
            Rule::LenientSchemas,
            json!({"schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],
                "userName": "a"}),
        );
        let out = fires_and_strict_refuses(
            ResourceKind::User,
            Rules::DEFAULT,
            Rule::LenientSchemas,
            json!({"schemas": ["urn:scim:schemas:core:1.0"], "userName": "a"}),
        );
        assert_eq!(out["userName"], "a");
        // Keys under a schema the source does not host.
        let out = fires_and_strict_refuses(
            ResourceKind::User,
            Rules::DEFAULT,
            Rule::LenientSchemas,
            json!({"schemas": [USER], "userName": "a",
                "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User":
                    {"tag": "x"}}),
        );
        assert_eq!(Value::Object(out), json!({"userName": "a"}));
    }

    #[test]
    fn member_display_name_is_read_as_display() {
        let out = fires_and_strict_refuses(
            ResourceKind::Group,
            Rules::DEFAULT,
            Rule::MemberDisplayName,
            json!({"schemas": [GROUP], "displayName": "g",
                "members": [{"value": "u1", "displayName": "new User"}]}),
        );
        assert_eq!(
            out["members"],
            json!([{"value": "u1", "display": "new User"}])
        );
        // An explicit display wins.
        let (r, _) = with_rules(
            ResourceKind::Group,
            Rules::DEFAULT,
            json!({"schemas": [GROUP], "displayName": "g",
                "members": [{"value": "u1", "displayName": "x", "display": "D"}]}),
        );
        assert_eq!(
            r.unwrap()["members"],
            json!([{"value": "u1", "display": "D"}])
        );
    }

    #[test]
    fn roles_json_strings_are_decoded_under_entra_only() {
        let body = json!({"schemas": [USER], "userName": "a", "roles": [
            {"primary": false, "type": "WindowsAzureActiveDirectoryRole",
             "value": "{\"id\":\"06b07648\",\"value\":\"25\",\"displayName\":\"Role1234\"}"},
            "{\"value\":\"Admin\",\"displayName\":\"Administrator\"}"]});
        let (r, fired) = with_rules(ResourceKind::User, Rules::ENTRA, body.clone());
        assert_eq!(
            r.unwrap()["roles"],
            json!([
                {"primary": false, "type": "WindowsAzureActiveDirectoryRole", "value": "25",
                 "display": "Role1234"},
                {"value": "Admin", "display": "Administrator"}
            ])
        );
        assert_eq!(fired, vec![Rule::RolesJsonStrings]);
        // By default the JSON text is a plain role value, and a bare string entry is refused.
        // By default the JSON text is a plain role value (a bare string entry becomes one by
        // `bare_string_values`); strict refuses the bare string.
        let (r, fired) = with_rules(ResourceKind::User, Rules::DEFAULT, body.clone());
        assert_eq!(
            r.unwrap()["roles"][1],
            json!({"value": "{\"value\":\"Admin\",\"displayName\":\"Administrator\"}"})
        );
        assert!(!fired.contains(&Rule::RolesJsonStrings));
        let (r, _) = with_rules(ResourceKind::User, Rules::STRICT, body);
        assert!(r.is_err());
        let plain = json!({"schemas": [USER], "userName": "a",
            "roles": [{"value": "{\"value\":\"x\"}"}]});
        let (r, _) = with_rules(ResourceKind::User, Rules::DEFAULT, plain);
        assert_eq!(r.unwrap()["roles"][0]["value"], "{\"value\":\"x\"}");
    }

    #[test]
    fn ignore_unknown_attributes_drops_what_the_schema_does_not_define() {
        let body = json!({"schemas": [USER], "userName": "a", "adreses": [{"country": "x"}],
            "name": {"givenName": "B", "nickname": "n"}});
        let (r, fired) = with_rules(ResourceKind::User, Rules::ALL, body.clone());
        assert_eq!(
            Value::Object(r.unwrap()),
            json!({"userName": "a", "name": {"givenName": "B"}})
        );
        assert_eq!(fired, vec![Rule::IgnoreUnknownAttributes]);
        for rules in [Rules::DEFAULT, Rules::ENTRA, Rules::STRICT] {
            let (r, _) = with_rules(ResourceKind::User, rules, body.clone());
            assert_eq!(
                r.unwrap_err().scim_type.map(|t| t.as_str()),
                Some("invalidSyntax")
            );
        }
        // A misspelled required attribute is still missing.
        let (r, _) = with_rules(
            ResourceKind::User,
            Rules::ALL,
            json!({"schemas": [USER], "userame": "a"}),
        );
        assert_eq!(
            r.unwrap_err().scim_type.map(|t| t.as_str()),
            Some("invalidValue")
        );
    }

    #[test]
    fn duplicate_types_and_nulls_are_kept_and_absent_whatever_the_rules() {
        // Two work emails are kept as sent; nulls are unassigned (RFC 7643 §2.5).
        let (r, fired) = with_rules(
            ResourceKind::User,
            Rules::STRICT,
            json!({"schemas": [USER], "userName": "a", "title": null, "addresses": null,
                "emails": [{"value": "a@b", "type": "work"}, {"value": "c@d", "type": "work"}]}),
        );
        let out = r.unwrap();
        assert_eq!(out["emails"].as_array().unwrap().len(), 2);
        assert!(out.get("title").is_none() && out.get("addresses").is_none());
        assert!(fired.is_empty());
    }

    #[test]
    fn required_attributes_must_have_a_value() {
        assert_eq!(err_type(user(json!({"schemas": [USER]}))), "invalidValue");
        assert_eq!(
            err_type(user(json!({"schemas": [USER], "userName": ""}))),
            "invalidValue"
        );
        assert_eq!(
            err_type(user(json!({"schemas": [USER], "userName": null}))),
            "invalidValue"
        );
        assert_eq!(err_type(group(json!({"schemas": [GROUP]}))), "invalidValue");
        // Required sub-attribute.
        let e = user(json!({"schemas": [USER], "userName": "a",
            ENTERPRISE_USER: {"manager": {"$ref": "../Users/m"}}}))
        .unwrap_err();
        assert!(e.detail.contains("manager.value"), "{}", e.detail);
        // Required attribute of a present extension.
        assert_eq!(err_type(acme(json!({"badge": 1}))), "invalidValue");
        // An absent optional extension has nothing required.
        let reg = custom_registry();
        let rt = reg.resource_type(ResourceKind::User);
        let body = json!({"schemas": [USER], "userName": "a"});
        assert!(prepare(rt, &body, WriteMode::Create).is_ok());
    }

    #[test]
    fn required_extension_must_be_present() {
        let schema = Schema::from_json(&json!({"id": "urn:x:req", "attributes": [
            {"name": "a", "type": "string"}]}))
        .unwrap();
        let mut reg = SchemaRegistry::new();
        reg.add_extension(ResourceKind::Group, schema, true)
            .unwrap();
        let rt = reg.resource_type(ResourceKind::Group);
        let body = json!({"schemas": [GROUP], "displayName": "g"});
        let e = prepare(rt, &body, WriteMode::Create).unwrap_err();
        assert!(e.detail.contains("urn:x:req"), "{}", e.detail);
        let body = json!({"schemas": [GROUP], "displayName": "g", "urn:x:req": {"a": "1"}});
        assert!(prepare(rt, &body, WriteMode::Create).is_ok());
    }

    #[test]
    fn at_most_one_primary_value() {
        let r = user(json!({"schemas": [USER], "userName": "a", "emails": [
            {"value": "a@b", "primary": true}, {"value": "c@d", "primary": true}]}));
        assert_eq!(err_type(r), "invalidValue");
        let out = user(json!({"schemas": [USER], "userName": "a", "emails": [
            {"value": "a@b", "primary": true}, {"value": "c@d", "primary": false}]}))
        .unwrap();
        assert_eq!(out["emails"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn group_members_are_canonicalized() {
        let out = group(json!({"schemas": [GROUP], "displayName": "g", "members": [
            {"value": "u1", "$ref": "https://h/Users/u1", "type": "user", "display": "U"},
            {"value": "g2", "type": "GROUP"},
            {"value": "u1"},
        ]}))
        .unwrap();
        assert_eq!(
            out["members"],
            json!([{"value": "u1", "type": "User", "display": "U"},
                   {"value": "g2", "type": "Group"}])
        );
        assert_eq!(
            err_type(group(json!({"schemas": [GROUP], "displayName": "g",
                "members": [{"value": "u1", "type": "Device"}]}))),
            "invalidValue"
        );
        assert_eq!(
            err_type(group(json!({"schemas": [GROUP], "displayName": "g",
                "members": [{"display": "no id"}]}))),
            "invalidValue"
        );
    }

    #[test]
    fn put_clears_unsent_attributes_but_keeps_read_only_and_password() {
        let reg = reg();
        let rt = reg.resource_type(ResourceKind::User);
        let old = stored(
            ResourceKind::User,
            json!({"userName": "a", "displayName": "A", "password": "secret",
                   "groups": [{"value": "g1"}]}),
        );
        let out = prepare(
            rt,
            &json!({"schemas": [USER], "userName": "a2", "nickName": "n"}),
            WriteMode::Replace(&old),
        )
        .unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"userName": "a2", "nickName": "n", "password": "secret",
                   "groups": [{"value": "g1"}]})
        );
        // A sent password replaces the stored one.
        let out = prepare(
            rt,
            &json!({"schemas": [USER], "userName": "a", "password": "new"}),
            WriteMode::Replace(&old),
        )
        .unwrap();
        assert_eq!(out["password"], "new");
    }

    #[test]
    fn immutable_attribute_cannot_change_on_put() {
        let reg = custom_registry();
        let rt = reg.resource_type(ResourceKind::User);
        let old = stored(
            ResourceKind::User,
            json!({"userName": "a", ACME: {"clearance": "c", "site": "Oslo", "audit": "x"}}),
        );
        let body = |site: Value| json!({"schemas": [USER], "userName": "a", ACME: {"clearance": "c", "site": site}});
        let e = prepare(rt, &body(json!("Bergen")), WriteMode::Replace(&old)).unwrap_err();
        assert_eq!(e.scim_type.map(|t| t.as_str()), Some("mutability"));
        assert!(e.detail.contains("site"), "{}", e.detail);
        // Same value (caseExact false) is not a change.
        let out = prepare(rt, &body(json!("OSLO")), WriteMode::Replace(&old)).unwrap();
        assert_eq!(out[ACME]["site"], "OSLO");
        // Omitted: the stored value is kept; so is the readOnly one.
        let out = prepare(rt, &body(Value::Null), WriteMode::Replace(&old)).unwrap();
        assert_eq!(
            out[ACME],
            json!({"clearance": "c", "site": "Oslo", "audit": "x"})
        );
        // Absent before: may be set.
        let old = stored(
            ResourceKind::User,
            json!({"userName": "a", ACME: {"clearance": "c"}}),
        );
        let out = prepare(rt, &body(json!("Bergen")), WriteMode::Replace(&old)).unwrap();
        assert_eq!(out[ACME]["site"], "Bergen");
    }

    #[test]
    fn normalize_value_canonicalizes_one_attribute() {
        let reg = reg();
        let rt = reg.resource_type(ResourceKind::User);
        let emails = rt.schema.attribute("emails").unwrap();
        let v = normalize_value(
            rt,
            emails,
            &json!([{"VALUE": "a@b", "Primary": "true"}]),
            true,
        )
        .unwrap();
        assert_eq!(v, json!([{"value": "a@b", "primary": true}]));
        let v = normalize_value(rt, emails, &json!({"Value": "a@b"}), false).unwrap();
        assert_eq!(v, json!({"value": "a@b"}));
        let v = normalize_value(rt, emails, &json!({"Value": "a@b"}), true).unwrap();
        assert_eq!(v, json!([{"value": "a@b"}]));
        assert!(normalize_value(rt, emails, &json!([{"value": "a"}]), false).is_err());
        assert_eq!(
            normalize_value(rt, emails, &json!([]), true).unwrap(),
            Value::Null
        );
        let given = rt
            .schema
            .attribute("name")
            .unwrap()
            .sub_attribute("givenName")
            .unwrap();
        assert_eq!(
            normalize_value(rt, given, &json!("B"), true).unwrap(),
            json!("B")
        );
        assert!(normalize_value(rt, given, &json!(1), true).is_err());
        let groups = rt.schema.attribute("groups").unwrap();
        let e = normalize_value(rt, groups, &json!([{"value": "g"}]), true).unwrap_err();
        assert_eq!(e.scim_type.map(|t| t.as_str()), Some("mutability"));
    }

    #[test]
    fn normalize_value_applies_member_rules() {
        let reg = reg();
        let rt = reg.resource_type(ResourceKind::Group);
        let members = rt.schema.attribute("members").unwrap();
        let v = normalize_value(
            rt,
            members,
            &json!([{"value": "u1", "type": "USER", "$ref": "x"}, {"value": "u1"}]),
            true,
        )
        .unwrap();
        assert_eq!(v, json!([{"value": "u1", "type": "User"}]));
    }

    #[test]
    fn validate_checks_canonical_attributes_after_patch() {
        let reg = custom_registry();
        let rt = reg.resource_type(ResourceKind::User);
        let ok = json!({"userName": "a", "groups": [{"value": "g", "display": "G"}],
            "emails": [{"value": "a@b", "primary": true}]});
        assert!(validate(rt, ok.as_object().unwrap(), None).is_ok());
        let missing = json!({"displayName": "x"});
        assert_eq!(
            validate(rt, missing.as_object().unwrap(), None)
                .unwrap_err()
                .scim_type
                .map(|t| t.as_str()),
            Some("invalidValue")
        );
        let two_primaries = json!({"userName": "a", "emails": [
            {"value": "a@b", "primary": true}, {"value": "c", "primary": true}]});
        assert!(validate(rt, two_primaries.as_object().unwrap(), None).is_err());
        let wrong_type = json!({"userName": "a", "active": "true"});
        assert!(validate(rt, wrong_type.as_object().unwrap(), None).is_err());
        let unknown = json!({"userName": "a", "bogus": 1});
        assert!(validate(rt, unknown.as_object().unwrap(), None).is_err());
    }

    #[test]
    fn validate_keeps_data_of_extensions_no_longer_hosted() {
        let reg = reg();
        let rt = reg.resource_type(ResourceKind::User);
        let attrs = json!({"userName": "a", "urn:example:gone:2.0:User": {"badge": 1}});
        assert!(validate(rt, attrs.as_object().unwrap(), None).is_ok());
    }

    #[test]
    fn validate_rejects_changing_or_removing_immutable_values() {
        let reg = custom_registry();
        let rt = reg.resource_type(ResourceKind::User);
        let old = stored(
            ResourceKind::User,
            json!({"userName": "a", ACME: {"clearance": "c", "site": "Oslo"}}),
        );
        let changed = json!({"userName": "a", ACME: {"clearance": "c", "site": "Bergen"}});
        let removed = json!({"userName": "a", ACME: {"clearance": "c"}});
        let same = json!({"userName": "b", ACME: {"clearance": "d", "site": "Oslo"}});
        for bad in [changed, removed] {
            let e = validate(rt, bad.as_object().unwrap(), Some(&old)).unwrap_err();
            assert_eq!(e.scim_type.map(|t| t.as_str()), Some("mutability"));
        }
        assert!(validate(rt, same.as_object().unwrap(), Some(&old)).is_ok());
        // Setting a previously absent immutable value is allowed.
        let old = stored(
            ResourceKind::User,
            json!({"userName": "a", ACME: {"clearance": "c"}}),
        );
        let set = json!({"userName": "a", ACME: {"clearance": "c", "site": "Oslo"}});
        assert!(validate(rt, set.as_object().unwrap(), Some(&old)).is_ok());
    }

    #[test]
    fn immutable_comparison_ignores_order_of_multi_valued_values() {
        let mut def = AttributeDef::new("tags", AttrType::String);
        def.multi_valued = true;
        assert!(values_equal(&def, &json!(["a", "B"]), &json!(["b", "A"])));
        assert!(!values_equal(&def, &json!(["a", "a"]), &json!(["a", "b"])));
        let dt = AttributeDef::new("t", AttrType::DateTime);
        assert!(values_equal(
            &dt,
            &json!("2024-01-01T00:00:00Z"),
            &json!("2024-01-01T01:00:00+01:00")
        ));
    }
}
