//! SCIM filters (RFC 7644 §3.4.2.2): the typed AST, its parser, its printer and the in-memory
//! evaluator that is the reference semantics every backend is tested against.
//!
//! - [`Filter::parse`] turns text into an AST, with hard limits on length ([`MAX_FILTER_LEN`])
//!   and nesting ([`MAX_DEPTH`]); it never recurses without bound and never panics.
//! - `Display` prints the canonical text; `parse(print(ast)) == ast`.
//! - [`eval`] evaluates a (schema-resolved) filter against a resource.

mod eval;
#[cfg(test)]
mod fixtures;
mod parser;
#[cfg(test)]
mod proptests;
mod resolve;

pub use eval::{compare_values, matches, matches_value};
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
