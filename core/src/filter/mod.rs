//! SCIM filters (RFC 7644 §3.4.2.2): the typed AST, its parser, its printer and the in-memory
//! evaluator that is the reference semantics every backend is tested against.
//!
//! - [`Filter::parse`] turns text into an AST (the full RFC grammar; [`Filter::parse_with`] and
//!   [`ParseOptions`] for client quirks), with hard limits on length ([`MAX_FILTER_LEN`]) and
//!   nesting ([`MAX_DEPTH`]); it runs in linear time, never recurses without bound and never
//!   panics. Every error is `invalidFilter` with the byte offset in its detail.
//! - `Display` prints the canonical text; `parse(print(ast)) == ast` for every AST the grammar
//!   can express, and print∘parse is the identity on canonical text.
//! - [`Filter::resolve`] checks a filter against a resource type and rewrites it into the form
//!   backends receive: canonical paths, complex comparisons on their `value` sub-attribute,
//!   every comparison type-checked.
//! - [`matches()`] evaluates a resolved filter against a resource, [`matches_value`] the inside
//!   of `attr[...]` against one value, and [`compare_values`] is the type-aware order that
//!   sorting uses too.
//!
//! Besides the schema attributes, filters may use `schemas` (as an RFC 7644 example does): a
//! multi-valued, case-insensitive string holding the core schema URN and the URN of each
//! extension the resource carries.
//!
//! # Evaluation semantics
//!
//! [`matches()`] is the reference; every backend must agree with it. RFC 7644 §3.4.2.2, with
//! the choices the RFC leaves open:
//!
//! - **Where values come from.** `id` and `meta.*` come from the resource record
//!   ([`Resource::id`](crate::resource::Resource::id),
//!   [`Resource::meta`](crate::resource::Resource::meta)): `meta.created` and
//!   `meta.lastModified` are instants, `meta.version` is the ETag string `W/"n"`,
//!   `meta.resourceType` the type name; `meta.location` is not stored and is treated as absent.
//!   `schemas` is described above. Everything else comes from
//!   [`Resource::attrs`](crate::resource::Resource::attrs).
//! - **Strings** compare case-insensitively unless the attribute is `caseExact` (binary and
//!   reference values always compare exactly). Case-insensitive means both sides are
//!   lower-cased character by character with Unicode's default, context-free lower-case
//!   mapping ([`char::to_lowercase`]); ASCII input takes a fast path without allocation.
//!   This is not full case folding: `ß` does not equal `SS`. Ordering (`gt`, …) is by code
//!   point of the (lower-cased) text.
//! - **dateTime** compares as instants, **integer/decimal** numerically, **boolean** only with
//!   `eq`/`ne`. A stored value of the wrong JSON type never compares (it matches neither `eq`
//!   nor `gt`, …).
//! - **Multi-valued** attributes (and sub-attributes of multi-valued complex attributes) match
//!   when any value matches.
//! - **`ne` is the complement of `eq`**: `x ne v` matches exactly the resources `not (x eq v)`
//!   matches — including those where `x` is absent, and for multi-valued `x`, those where no
//!   value equals `v`. Every other operator fails on an absent attribute.
//! - **`pr`** means present and non-empty: not null, not `""`, not `[]`, not `{}` (nor an array
//!   or object holding only such values).
//! - **`eq null`** matches when the attribute is not present (as `pr` defines it) and
//!   **`ne null`** when it is: RFC 7643 §2.5 makes null and unassigned the same state.
//! - A comparison on a complex attribute without sub-attribute compares its `value`
//!   sub-attribute ([`Filter::resolve`] rewrites it so); `attr[filter]` matches when one value
//!   of `attr` matches `filter`.
//!
//! Recursion in the printer, resolver and evaluator follows only the text's nesting: long flat
//! `and`/`or` chains are walked in loops.

mod eval;
#[cfg(test)]
mod fixtures;
mod parser;
#[cfg(test)]
mod proptests;
mod resolve;

pub use eval::{compare_values, fold_case, matches, matches_value};
pub use parser::ParseOptions;

use crate::path::AttrPath;
use std::fmt;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 8 * 1024;
/// Deepest nesting of parentheses, `not (…)` and value paths (`attr[…]`) accepted. A flat chain
/// of `and`/`or` does not nest (its length is bounded by [`MAX_FILTER_LEN`]).
pub const MAX_DEPTH: usize = 64;

/// A comparison operator (RFC 7644 §3.4.2.2, Table 3), `pr` excluded (see [`Filter::Present`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `eq`: equal.
    Eq,
    /// `ne`: not equal.
    Ne,
    /// `co`: contains.
    Co,
    /// `sw`: starts with.
    Sw,
    /// `ew`: ends with.
    Ew,
    /// `gt`: greater than.
    Gt,
    /// `ge`: greater than or equal.
    Ge,
    /// `lt`: less than.
    Lt,
    /// `le`: less than or equal.
    Le,
}

impl CompareOp {
    /// Every operator.
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    /// The canonical (lower-case) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// Parses an operator name case-insensitively.
    pub fn parse(s: &str) -> Option<CompareOp> {
        CompareOp::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(s))
    }

    /// Whether this is an ordering operator (`gt`, `ge`, `lt`, `le`).
    pub fn is_ordering(self) -> bool {
        matches!(
            self,
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        )
    }

    /// Whether this is a substring operator (`co`, `sw`, `ew`).
    pub fn is_substring(self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }
}

/// A comparison value (RFC 7644 §3.4.2.2 `compValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    /// A JSON string (escapes already decoded).
    Str(String),
    /// A JSON number, kept in its JSON form so integers and decimals both round-trip.
    Num(serde_json::Number),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // serde_json's string printer is JSON-exact, so the printer's escapes re-parse.
            CompValue::Str(s) => f.write_str(&serde_json::Value::String(s.clone()).to_string()),
            CompValue::Num(n) => write!(f, "{n}"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Null => f.write_str("null"),
        }
    }
}

/// A filter expression.
///
/// Inside [`Filter::ValuePath`], the inner filter's paths are relative to the multi-valued
/// attribute: `emails[type eq "work"]` has an inner `Compare` on path `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attrPath op compValue`.
    Compare {
        /// The attribute compared.
        path: AttrPath,
        /// The operator.
        op: CompareOp,
        /// The value compared with.
        value: CompValue,
    },
    /// `attrPath pr`: the attribute has a non-empty value.
    Present(AttrPath),
    /// `a and b`.
    And(Box<Filter>, Box<Filter>),
    /// `a or b`.
    Or(Box<Filter>, Box<Filter>),
    /// `not (a)`.
    Not(Box<Filter>),
    /// `attrPath[valFilter]`: some value of the multi-valued (or complex) attribute matches.
    ValuePath {
        /// The attribute whose values are filtered (no sub-attribute).
        path: AttrPath,
        /// The filter applied to each value.
        filter: Box<Filter>,
    },
}
