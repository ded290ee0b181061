//! Identity-provider compatibility: the named tolerance rules of [`crate::normalize`], the PATCH
//! parser and the service, which of them a source enables, and which fired in a request.
//!
//! Every tolerance for a request shape RFC 7643/7644 do not allow is a [`Rule`] with a stable
//! snake_case name. A source enables a set of them ([`Rules`]); the code that applies a rule
//! records it in the request's [`Fired`] collector, which the server logs and counts.
//!
//! What RFC 7643/7644 themselves require is never a rule, so no preset can switch it off:
//! attribute names are case-insensitive (RFC 7643 §2.1), `null` is the same as absent
//! (RFC 7643 §2.5), readOnly values in a POST or PUT body are ignored (RFC 7644 §3.5.1), and
//! multi-valued attributes may carry several values of the same `type`.
//!
//! # Presets
//!
//! - `default` (what a source gets without `compat`): every rule that only accepts input an
//!   RFC-conforming client never sends and that loses no data, see [`Rules::DEFAULT`].
//! - `okta`: the same as `default`; Okta's requests need nothing more.
//! - `entra`: `default` plus unquoted filter values and JSON-encoded `roles` values
//!   ([`Rules::ENTRA`]).
//! - `strict`: no rule; only RFC-conforming requests are accepted.
//! - `all`: every rule, including those that drop data (`ignore_unknown_attributes`).
//!
//! A configured list is read in order, starting from `default`: a preset replaces the set, a
//! rule name adds that rule, and `-name` removes it (`["strict", "op_case"]`,
//! `["entra", "-roles_json_strings"]`). See [`Rules::from_names`].

use crate::error::ScimError;
use crate::filter::{Filter, ParseOptions};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

/// One named tolerance rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// PATCH `op` values in any case (`Add`, `Replace`, `Remove`); Entra ID capitalizes them.
    OpCase,
    /// Schema URNs in any case, in `schemas`, body keys and PATCH paths.
    UrnCase,
    /// `"True"` / `"false"` (any case) for boolean attributes and sub-attributes (`active`,
    /// `primary`); Entra ID sends booleans as strings.
    BooleanStrings,
    /// One value sent for a multi-valued attribute is taken as a one-element list.
    SingleValueLists,
    /// A one-element array sent for a single-valued complex attribute is taken as its value;
    /// Entra ID sends `"manager": [{"value": "…"}]`.
    SingleElementArrays,
    /// A string sent for a complex attribute with a `value` sub-attribute becomes
    /// `{"value": …}`: Entra ID's bare-string `manager`, bare member ids.
    BareStringValues,
    /// Keys that are paths rather than attribute names, in bodies and path-less PATCH values:
    /// dotted (`name.givenName`), URN-qualified
    /// (`urn:…:enterprise:2.0:User:employeeNumber`) and value paths
    /// (`emails[type eq "work"].value`), as Entra ID sends with `aadOptscim062020`.
    DottedKeys,
    /// `remove` of a multi-valued attribute with a `value` removes exactly the values given
    /// (Entra ID removes members this way). Without the rule such an operation is refused;
    /// it never removes every value.
    RemoveWithValue,
    /// ReadOnly keys (`id`, `meta`, `groups`, `schemas`) inside a path-less PATCH value are
    /// ignored; Okta resends `id` with every group rename.
    ReadOnlyInPatch,
    /// Unknown or malformed URNs in `schemas` (Entra ID's ADSCIM group URN, a malformed
    /// enterprise URN, OneLogin's SCIM 1.1 URNs) are ignored, as are keys and PATCH paths under
    /// schema URNs the source does not host; a `schemas` list without the core schema URN is
    /// accepted.
    LenientSchemas,
    /// A member's `displayName` is read as its `display` (Microsoft's reference collection).
    MemberDisplayName,
    /// `roles` values that are JSON-encoded objects (`"{\"id\":…,\"value\":\"Admin\"}"`), as
    /// Entra ID's app-role mappings send them, are decoded into `value` and `display`.
    RolesJsonStrings,
    /// Filter values without quotes (`externalId eq jyoung`), as Entra ID's documentation
    /// shows; tried only when the filter does not parse as RFC 7644 wrote it.
    UnquotedFilterValues,
    /// A value filter inside `attributes` (`emails[type eq "work"]`) is read as the attribute
    /// (`emails`): the response holds every value, a superset of what was asked for.
    AttributeFilters,
    /// Attributes and sub-attributes the schema does not define are dropped instead of
    /// refused. Drops data a client sent, so it is in no preset but `all`.
    IgnoreUnknownAttributes,
}

impl Rule {
    /// Every rule, in documentation order.
    pub const ALL: [Rule; 15] = [
        Rule::OpCase,
        Rule::UrnCase,
        Rule::BooleanStrings,
        Rule::SingleValueLists,
        Rule::SingleElementArrays,
        Rule::BareStringValues,
        Rule::DottedKeys,
        Rule::RemoveWithValue,
        Rule::ReadOnlyInPatch,
        Rule::LenientSchemas,
        Rule::MemberDisplayName,
        Rule::RolesJsonStrings,
        Rule::UnquotedFilterValues,
        Rule::AttributeFilters,
        Rule::IgnoreUnknownAttributes,
    ];

    /// The configuration and log name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::OpCase => "op_case",
            Rule::UrnCase => "urn_case",
            Rule::BooleanStrings => "boolean_strings",
            Rule::SingleValueLists => "single_value_lists",
            Rule::SingleElementArrays => "single_element_arrays",
            Rule::BareStringValues => "bare_string_values",
            Rule::DottedKeys => "dotted_keys",
            Rule::RemoveWithValue => "remove_with_value",
            Rule::ReadOnlyInPatch => "read_only_in_patch",
            Rule::LenientSchemas => "lenient_schemas",
            Rule::MemberDisplayName => "member_display_name",
            Rule::RolesJsonStrings => "roles_json_strings",
            Rule::UnquotedFilterValues => "unquoted_filter_values",
            Rule::AttributeFilters => "attribute_filters",
            Rule::IgnoreUnknownAttributes => "ignore_unknown_attributes",
        }
    }

    /// A rule by its name (exact, snake_case).
    pub fn parse(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == name)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The set of rules a source enables. [`Rules::default`] is [`Rules::DEFAULT`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rules {
    bits: u32,
}

const fn set(rules: &[Rule]) -> Rules {
    let mut bits = 0;
    let mut i = 0;
    while i < rules.len() {
        bits |= 1 << (rules[i] as u32);
        i += 1;
    }
    Rules { bits }
}

impl Rules {
    /// No rule: only RFC-conforming requests are accepted.
    pub const STRICT: Rules = Rules { bits: 0 };
    /// Every rule that a conforming client can never trigger and that loses no data.
    pub const DEFAULT: Rules = set(&[
        Rule::OpCase,
        Rule::UrnCase,
        Rule::BooleanStrings,
        Rule::SingleValueLists,
        Rule::SingleElementArrays,
        Rule::BareStringValues,
        Rule::DottedKeys,
        Rule::RemoveWithValue,
        Rule::ReadOnlyInPatch,
        Rule::LenientSchemas,
        Rule::MemberDisplayName,
    ]);
    /// Okta: the defaults.
    pub const OKTA: Rules = Rules::DEFAULT;
    /// Microsoft Entra ID: the defaults, unquoted filter values and JSON-encoded roles.
    pub const ENTRA: Rules = Rules {
        bits: Rules::DEFAULT.bits | set(&[Rule::UnquotedFilterValues, Rule::RolesJsonStrings]).bits,
    };
    /// Every rule.
    pub const ALL: Rules = set(&Rule::ALL);

    /// The preset names [`Rules::preset`] knows.
    pub const PRESETS: [&'static str; 5] = ["default", "okta", "entra", "strict", "all"];

    /// A preset by name.
    pub fn preset(name: &str) -> Option<Rules> {
        match name {
            "default" => Some(Rules::DEFAULT),
            "okta" => Some(Rules::OKTA),
            "entra" => Some(Rules::ENTRA),
            "strict" => Some(Rules::STRICT),
            "all" => Some(Rules::ALL),
            _ => None,
        }
    }

    /// Reads a configured list (see the module docs): starting from [`Rules::DEFAULT`], a
    /// preset replaces the set, a rule name adds the rule, `-name` removes it. An unknown name
    /// is an error naming it and the valid names.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Rules, String> {
        let mut rules = Rules::DEFAULT;
        for raw in names {
            let name = raw.trim();
            if let Some(preset) = Rules::preset(name) {
                rules = preset;
            } else if let Some(rule) = Rule::parse(name) {
                rules = rules.with(rule);
            } else if let Some(rule) = name.strip_prefix('-').and_then(Rule::parse) {
                rules = rules.without(rule);
            } else {
                let known: Vec<&str> = Rules::PRESETS
                    .into_iter()
                    .chain(Rule::ALL.iter().map(|r| r.name()))
                    .collect();
                return Err(format!(
                    "unknown compat rule or preset {raw:?} (known: {}; prefix a rule with - to \
                     remove it)",
                    known.join(", ")
                ));
            }
        }
        Ok(rules)
    }

    /// Whether `rule` is enabled.
    pub fn enabled(self, rule: Rule) -> bool {
        self.bits & rule.bit() != 0
    }

    /// The same set with `rule` enabled.
    pub fn with(self, rule: Rule) -> Rules {
        Rules {
            bits: self.bits | rule.bit(),
        }
    }

    /// The same set with `rule` disabled.
    pub fn without(self, rule: Rule) -> Rules {
        Rules {
            bits: self.bits & !rule.bit(),
        }
    }

    /// The enabled rules, in documentation order.
    pub fn iter(self) -> impl Iterator<Item = Rule> {
        Rule::ALL.into_iter().filter(move |r| self.enabled(*r))
    }
}

impl Default for Rules {
    fn default() -> Self {
        Rules::DEFAULT
    }
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Rule::name)).finish()
    }
}

/// The rules that fired while one request was handled. Shared by reference between the parts
/// of the request (it is `Sync`, so it may be held across `.await`); each rule is recorded
/// once however often it fired.
#[derive(Default)]
pub struct Fired {
    bits: AtomicU32,
}

impl Fired {
    /// An empty collector.
    pub fn new() -> Self {
        Fired::default()
    }

    /// Records that `rule` was applied.
    pub fn fire(&self, rule: Rule) {
        self.bits.fetch_or(rule.bit(), Ordering::Relaxed);
    }

    /// Whether `rule` fired.
    pub fn contains(&self, rule: Rule) -> bool {
        self.bits.load(Ordering::Relaxed) & rule.bit() != 0
    }

    /// Whether no rule fired.
    pub fn is_empty(&self) -> bool {
        self.bits.load(Ordering::Relaxed) == 0
    }

    /// The rules that fired, in documentation order.
    pub fn rules(&self) -> Vec<Rule> {
        let bits = self.bits.load(Ordering::Relaxed);
        Rule::ALL
            .into_iter()
            .filter(|r| bits & r.bit() != 0)
            .collect()
    }

    /// The rules that fired, emptying the collector.
    pub fn take(&self) -> Vec<Rule> {
        let bits = self.bits.swap(0, Ordering::Relaxed);
        Rule::ALL
            .into_iter()
            .filter(|r| bits & r.bit() != 0)
            .collect()
    }
}

impl fmt::Debug for Fired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.rules().into_iter().map(Rule::name))
            .finish()
    }
}

/// Applies `rule` when a source enables it: records it in `fired` and returns true; returns
/// false (the caller refuses the input) when the rule is off.
pub(crate) fn tolerate(rules: &Rules, fired: &Fired, rule: Rule) -> bool {
    if rules.enabled(rule) {
        fired.fire(rule);
        true
    } else {
        false
    }
}

/// Parses a filter; under [`Rule::UnquotedFilterValues`], a filter that does not parse as
/// RFC 7644 writes it is tried again with bare words as string values.
pub(crate) fn parse_filter(rules: &Rules, fired: &Fired, text: &str) -> Result<Filter, ScimError> {
    match Filter::parse(text) {
        Err(e) if rules.enabled(Rule::UnquotedFilterValues) => {
            match Filter::parse_with(text, ParseOptions::strict().with_unquoted_values(true)) {
                Ok(f) => {
                    fired.fire(Rule::UnquotedFilterValues);
                    Ok(f)
                }
                Err(_) => Err(e),
            }
        }
        parsed => parsed,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_round_trip_and_are_unique() {
        let mut names: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
        for r in Rule::ALL {
            assert_eq!(Rule::parse(r.name()), Some(r));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Rule::ALL.len());
        assert!(Rule::ALL.len() <= 32, "Rules is a u32 bit set");
    }

    #[test]
    fn presets_contain_what_their_docs_say() {
        assert_eq!(Rules::STRICT.iter().count(), 0);
        assert_eq!(Rules::ALL.iter().count(), Rule::ALL.len());
        assert_eq!(Rules::OKTA, Rules::DEFAULT);
        assert!(!Rules::DEFAULT.enabled(Rule::UnquotedFilterValues));
        assert!(!Rules::DEFAULT.enabled(Rule::IgnoreUnknownAttributes));
        assert!(!Rules::DEFAULT.enabled(Rule::RolesJsonStrings));
        assert!(Rules::ENTRA.enabled(Rule::UnquotedFilterValues));
        assert!(Rules::ENTRA.enabled(Rule::RolesJsonStrings));
        assert!(Rules::ENTRA.enabled(Rule::BooleanStrings));
        assert!(!Rules::ENTRA.enabled(Rule::IgnoreUnknownAttributes));
        assert_eq!(Rules::default(), Rules::DEFAULT);
    }

    #[test]
    fn configured_lists_start_from_default_and_apply_in_order() {
        assert_eq!(Rules::from_names([]).unwrap(), Rules::DEFAULT);
        assert_eq!(Rules::from_names(["entra"]).unwrap(), Rules::ENTRA);
        let r = Rules::from_names(["strict", "op_case"]).unwrap();
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![Rule::OpCase]);
        let r = Rules::from_names(["entra", "-roles_json_strings"]).unwrap();
        assert!(!r.enabled(Rule::RolesJsonStrings));
        assert!(r.enabled(Rule::UnquotedFilterValues));
        let r = Rules::from_names(["attribute_filters"]).unwrap();
        assert_eq!(r, Rules::DEFAULT.with(Rule::AttributeFilters));
        let e = Rules::from_names(["entra", "bogus"]).unwrap_err();
        assert!(e.contains("\"bogus\"") && e.contains("op_case"), "{e}");
        assert!(Rules::from_names(["-nope"]).is_err());
    }

    #[test]
    fn fired_records_each_rule_once_and_take_empties_it() {
        let f = Fired::new();
        assert!(f.is_empty());
        f.fire(Rule::BooleanStrings);
        f.fire(Rule::OpCase);
        f.fire(Rule::BooleanStrings);
        assert!(f.contains(Rule::OpCase));
        assert_eq!(f.rules(), vec![Rule::OpCase, Rule::BooleanStrings]);
        assert_eq!(f.take(), vec![Rule::OpCase, Rule::BooleanStrings]);
        assert!(f.is_empty());
    }

    #[test]
    fn tolerate_fires_only_enabled_rules() {
        let f = Fired::new();
        assert!(!tolerate(&Rules::STRICT, &f, Rule::OpCase));
        assert!(f.is_empty());
        assert!(tolerate(&Rules::DEFAULT, &f, Rule::OpCase));
        assert!(f.contains(Rule::OpCase));
    }
}
