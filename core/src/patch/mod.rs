//! PATCH (RFC 7644 §3.5.2): parsing `PatchOp` bodies, applying them atomically against the
//! schema, and deriving the membership delta of a Group PATCH.
//!
//! - [`PatchRequest::parse`] checks the message, resolves every path against the resource type
//!   (canonical spelling, value filters resolved against the attribute's sub-attributes),
//!   canonicalizes every value with [`crate::normalize::normalize_value`] and expands path-less
//!   `add`/`replace` values into one pathed operation per attribute. After parsing, every
//!   operation has a path.
//! - [`PatchRequest::apply`] runs the operations in order on a copy of the resource
//!   (RFC 7644 §3.5.2.1–3), then validates the result; any error leaves the resource as it was.
//! - [`PatchRequest::membership_delta`] splits a Group PATCH into the operations on other
//!   attributes and the member insertions/removals a backend can apply as rows.
//!
//! Choices where the RFC leaves room, in one place:
//! - At most [`MAX_OPERATIONS`] operations per request; more is `invalidSyntax` (the request
//!   body does not conform to what this server accepts; `tooMany` is defined for filters).
//! - A syntax error inside a value filter (`emails[type eq]`) is `invalidFilter`, which RFC 7644
//!   Table 9 lists for PATCH path filters; every other malformed or unknown path is
//!   `invalidPath`, including unknown keys of a path-less value object.
//! - `add` with a value filter that matches nothing creates a new value when the filter
//!   determines one (`emails[type eq "work"].value` creates `{"type": "work", "value": …}`),
//!   as Microsoft Entra ID expects; a filter that does not (`type ew "ork"`) is `noTarget`.
//!   `replace` with a filter that matches nothing is `noTarget` (RFC 7644 §3.5.2.3).
//! - `remove` with a `value` on a multi-valued attribute without filter removes the values
//!   given (Entra ID's `{"op": "remove", "path": "members", "value": [{"value": "id"}]}`,
//!   rule `remove_with_value`), never the whole attribute; without the rule it is refused.
//!   Complex values match when every sub-attribute given equals.
//! - Requests outside RFC 7644 that identity providers send are accepted only under the
//!   source's [`crate::compat`] rules ([`PatchRequest::parse_with`]).
//! - A `null` value (RFC 7643 §2.5: unassigned) in `add` or `replace` of a single-valued
//!   attribute or sub-attribute unassigns it; `add` of `null` or `[]` to a multi-valued
//!   attribute adds nothing, `replace` with them clears it.
//! - Values of a multi-valued attribute are the same value when they are equal under the
//!   attribute's comparison rules (`caseExact`, instants for dateTime, numbers by value); Group
//!   members are the same when their `value` (member id) is.

mod apply;
mod delta;
mod parse;
#[cfg(test)]
mod tests;

use crate::compat::{Fired, Rules};
use crate::error::ScimError;
use crate::filter::Filter;
use crate::path::{AttrPath, starts_with_urn};
use crate::resource::Resource;
use crate::schema::{ResourceKind, SchemaRegistry};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;

/// The PatchOp message schema URN.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The most operations one PATCH request may carry. Real clients send a handful (Entra ID
/// batches a few member changes, Okta one or two); the bound keeps hostile bodies cheap.
pub const MAX_OPERATIONS: usize = 1000;

/// `add`, `remove` or `replace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    /// `add`.
    Add,
    /// `remove`.
    Remove,
    /// `replace`.
    Replace,
}

impl PatchOpKind {
    /// The wire spelling (`add`, `remove`, `replace`).
    pub fn as_str(self) -> &'static str {
        match self {
            PatchOpKind::Add => "add",
            PatchOpKind::Remove => "remove",
            PatchOpKind::Replace => "replace",
        }
    }

    /// Parses an operation name case-insensitively (Entra ID sends `Add`, `Replace`).
    pub fn parse(s: &str) -> Option<PatchOpKind> {
        [PatchOpKind::Add, PatchOpKind::Remove, PatchOpKind::Replace]
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
}

/// A PATCH path (RFC 7644 §3.5.2 `PATH`): `attrPath`, or `valuePath` with an optional
/// sub-attribute: `emails[type eq "work"].value`.
///
/// A path that is only an extension schema URN targets the whole extension object; it is
/// represented with the URN as `attr.name` and no `attr.urn` (the URN is the key the extension
/// is stored under, see [`Resource::attrs`]); [`PatchPath::extension_urn`] recognizes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute (with a sub-attribute when there is no value filter).
    pub attr: AttrPath,
    /// The value filter (`[...]`), with paths relative to the attribute's values.
    pub filter: Option<Filter>,
    /// The sub-attribute after a value filter.
    pub sub: Option<String>,
}

impl PatchPath {
    /// A path to an attribute (or sub-attribute) without value filter.
    pub fn attr(attr: AttrPath) -> Self {
        PatchPath {
            attr,
            filter: None,
            sub: None,
        }
    }

    /// A path to a whole extension object, by its canonical URN.
    pub fn extension(urn: impl Into<String>) -> Self {
        PatchPath::attr(AttrPath {
            urn: None,
            name: urn.into(),
            sub: None,
        })
    }

    /// The extension URN when this path targets a whole extension object.
    pub fn extension_urn(&self) -> Option<&str> {
        (self.attr.urn.is_none() && starts_with_urn(&self.attr.name) && self.filter.is_none())
            .then_some(self.attr.name.as_str())
    }

    /// The sub-attribute this path ends in, whether written `attr.sub` or `attr[filter].sub`.
    pub fn sub_attribute(&self) -> Option<&str> {
        self.sub.as_deref().or(self.attr.sub.as_deref())
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    /// The operation.
    pub op: PatchOpKind,
    /// The target; `None` means the value is an object of attributes (add/replace only).
    /// [`PatchRequest::parse`] never produces `None`: it expands path-less values.
    pub path: Option<PatchPath>,
    /// The value (absent for most removes).
    pub value: Option<Value>,
}

/// A group member as stored: `value` is the member id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    /// The member's id.
    pub value: String,
    /// `User` or `Group`, when known.
    pub kind: Option<String>,
    /// The display name sent by the client.
    pub display: Option<String>,
}

impl Member {
    /// Reads a stored member object (`{"value", "type"?, "display"?}`); `None` without a
    /// string `value`.
    pub fn from_json(v: &Value) -> Option<Member> {
        let o = v.as_object()?;
        let value = o.get("value")?.as_str()?.to_string();
        let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Member {
            value,
            kind: text("type"),
            display: text("display"),
        })
    }

    /// The stored representation: `{"value", "type"?, "display"?}` (`$ref` is derived on
    /// output, never stored).
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("value".into(), Value::String(self.value.clone()));
        if let Some(k) = &self.kind {
            o.insert("type".into(), Value::String(k.clone()));
        }
        if let Some(d) = &self.display {
            o.insert("display".into(), Value::String(d.clone()));
        }
        Value::Object(o)
    }
}

/// The effect of a Group PATCH on `members`, as deltas a backend can apply without reading or
/// rewriting the member list. Applied in this order: `replace` (when set, the member list
/// becomes exactly this), then `remove`, then `add` (insert unless present).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MembershipDelta {
    /// The whole new member list, when an operation replaced it.
    pub replace: Option<Vec<Member>>,
    /// Member ids to remove (absent ones are ignored).
    pub remove: Vec<String>,
    /// Members to add (present ones are left as they are).
    pub add: Vec<Member>,
}

impl MembershipDelta {
    /// Whether the delta changes nothing.
    pub fn is_empty(&self) -> bool {
        self.replace.is_none() && self.remove.is_empty() && self.add.is_empty()
    }
}

/// The result of applying a patch to a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOutcome {
    /// The new canonical attributes (see [`Resource::attrs`]).
    pub attrs: Map<String, Value>,
    /// Whether anything changed (an unchanged resource keeps its version).
    pub changed: bool,
}

/// A parsed, schema-resolved PATCH request for one resource type. Self-contained: backends
/// apply it without further context.
#[derive(Debug, Clone)]
pub struct PatchRequest {
    /// The operations, in order, with canonical paths.
    pub ops: Vec<PatchOp>,
    registry: Arc<SchemaRegistry>,
    kind: ResourceKind,
}

impl PatchRequest {
    /// Parses and resolves a PatchOp body (`{"schemas": [...PatchOp], "Operations": [...]}`)
    /// for a resource type.
    ///
    /// Errors: a missing PatchOp schema, a missing or empty `Operations`, more than
    /// [`MAX_OPERATIONS`], an unknown `op` or an `add`/`replace` without `value` are
    /// `invalidSyntax`; a `remove` without path is `noTarget`; an unknown attribute or a
    /// malformed path is `invalidPath` (a malformed value filter `invalidFilter`); an explicit
    /// path to a readOnly attribute is `mutability`; values of the wrong type fail as
    /// [`crate::normalize::normalize_value`] says. ReadOnly keys inside path-less values (`id`,
    /// `meta`, `schemas`, `groups`, as Okta resends them) are ignored.
    pub fn parse(
        body: &Value,
        registry: Arc<SchemaRegistry>,
        kind: ResourceKind,
    ) -> Result<PatchRequest, ScimError> {
        PatchRequest::parse_with(body, registry, kind, &Rules::default(), &Fired::new())
    }

    /// [`PatchRequest::parse`] with a source's tolerance [`Rules`]; the rules applied are
    /// recorded in `fired`. The rules that concern PATCH: `op_case`, `urn_case`,
    /// `dotted_keys` (path-less keys that are paths), `remove_with_value`,
    /// `read_only_in_patch`, `lenient_schemas` (paths and keys under schemas the source does
    /// not host are skipped), `unquoted_filter_values` (in path filters),
    /// `single_element_arrays`, and the value rules of [`crate::normalize`].
    pub fn parse_with(
        body: &Value,
        registry: Arc<SchemaRegistry>,
        kind: ResourceKind,
        rules: &Rules,
        fired: &Fired,
    ) -> Result<PatchRequest, ScimError> {
        let cx = parse::Ctx {
            rt: registry.resource_type(kind),
            rules,
            fired,
        };
        let ops = parse::parse_body(body, &cx)?;
        Ok(PatchRequest {
            ops,
            registry,
            kind,
        })
    }

    /// A request from already canonical operations (e.g. the rest of a
    /// [`PatchRequest::membership_delta`] split, or operations a hook built).
    pub fn from_ops(ops: Vec<PatchOp>, registry: Arc<SchemaRegistry>, kind: ResourceKind) -> Self {
        PatchRequest {
            ops,
            registry,
            kind,
        }
    }

    /// The resource type this patch applies to.
    pub fn kind(&self) -> ResourceKind {
        self.kind
    }

    /// The schema registry it was resolved against.
    pub fn registry(&self) -> &Arc<SchemaRegistry> {
        &self.registry
    }

    /// Applies every operation to `current` atomically: either all succeed and the result is
    /// validated, or an error is returned and nothing changes.
    pub fn apply(&self, current: &Resource) -> Result<PatchOutcome, ScimError> {
        apply::apply(self, current)
    }

    /// Splits a Group PATCH into the operations that do not touch `members` and the
    /// membership delta of those that do. Returns `None` when some member operation cannot be
    /// expressed as a delta (e.g. a filter on `display`), in which case the backend must apply
    /// the whole patch to the full resource.
    ///
    /// Member operations and the others target disjoint attributes, so taking the member
    /// operations out of the sequence never changes the result, however they interleave. What
    /// a delta expresses: `add members [..]`; `replace members [..]` (and `replace members`
    /// with `null`/`[]`); `remove members` (all); `remove members` with a value list;
    /// `remove members[value eq "x"]`, also `or`-ed (`value eq "a" or value eq "b"`). Anything
    /// else on `members` (other filters, `add`/`replace` with a filter, sub-attribute targets
    /// such as `members[value eq "x"].display`) gives `None`. For a User patch the delta is
    /// empty and every operation is kept.
    pub fn membership_delta(&self) -> Option<(PatchRequest, MembershipDelta)> {
        delta::split(self)
    }
}
