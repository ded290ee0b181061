//! Attribute paths: `userName`, `name.givenName`,
//! `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.

use crate::error::ScimError;
use std::fmt;

/// Longest attribute path accepted, in bytes. Real paths are far shorter; the bound keeps
/// hostile input cheap.
pub const MAX_PATH_LEN: usize = 512;

/// An attribute path (RFC 7644 §3.10 `attrPath`): an optional schema URN, an attribute name and
/// an optional sub-attribute name. Names keep the spelling they were given until resolved against
/// a schema ([`crate::schema::Resolved::canonical_path`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// The schema URN prefix, when the path was URN-qualified.
    pub urn: Option<String>,
    /// The attribute name.
    pub name: String,
    /// The sub-attribute name.
    pub sub: Option<String>,
}

impl AttrPath {
    /// A path to a top-level attribute of the core schema.
    pub fn new(name: impl Into<String>) -> Self {
        AttrPath {
            urn: None,
            name: name.into(),
            sub: None,
        }
    }

    /// A path to a sub-attribute of a core-schema attribute.
    pub fn with_sub(name: impl Into<String>, sub: impl Into<String>) -> Self {
        AttrPath {
            urn: None,
            name: name.into(),
            sub: Some(sub.into()),
        }
    }

    /// Parses an attribute path. URN-qualified paths split at the last `:`; the remainder is
    /// `attr` or `attr.sub`. Names must match RFC 7643 §2.1 `ATTRNAME` (or be `$ref`).
    pub fn parse(s: &str) -> Result<AttrPath, ScimError> {
        if s.len() > MAX_PATH_LEN {
            return Err(ScimError::invalid_path("attribute path is too long"));
        }
        let (urn, rest) = if starts_with_urn(s) {
            match s.rfind(':') {
                Some(i) => (Some(&s[..i]), &s[i + 1..]),
                None => (None, s),
            }
        } else {
            (None, s)
        };
        let (name, sub) = match rest.split_once('.') {
            Some((n, sub)) => (n, Some(sub)),
            None => (rest, None),
        };
        if !is_attr_name(name) || !sub.is_none_or(is_attr_name) {
            return Err(ScimError::invalid_path(format!(
                "invalid attribute path {s:?}"
            )));
        }
        Ok(AttrPath {
            urn: urn.map(str::to_string),
            name: name.to_string(),
            sub: sub.map(str::to_string),
        })
    }

    /// The same path without its sub-attribute.
    pub fn parent(&self) -> AttrPath {
        AttrPath {
            urn: self.urn.clone(),
            name: self.name.clone(),
            sub: None,
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// Whether `s` starts with `urn:` in any case.
pub fn starts_with_urn(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
}

/// RFC 7643 §2.1: `ATTRNAME = ALPHA *(nameChar)`, `nameChar = "-" / "_" / DIGIT / ALPHA`;
/// `$ref` is the one reserved name with a `$`.
pub fn is_attr_name(s: &str) -> bool {
    if s.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_simple_sub_and_urn_paths() {
        let p = AttrPath::parse("name.givenName").unwrap();
        assert_eq!(
            (p.urn, p.name.as_str(), p.sub.as_deref()),
            (None, "name", Some("givenName"))
        );
        let p = AttrPath::parse(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        )
        .unwrap();
        assert_eq!(
            p.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(
            (p.name.as_str(), p.sub.as_deref()),
            ("manager", Some("value"))
        );
        assert_eq!(
            AttrPath::parse("members.$ref").unwrap().sub.as_deref(),
            Some("$ref")
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "userName",
            "name.givenName",
            "urn:ietf:params:scim:schemas:core:2.0:User:userName",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        ] {
            assert_eq!(AttrPath::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn rejects_malformed_paths() {
        for s in [
            "",
            "1abc",
            "a b",
            "name.",
            ".x",
            "a.b.c",
            "urn:x:",
            "emails[type",
            "a\"b",
        ] {
            assert!(AttrPath::parse(s).is_err(), "{s:?}");
        }
        assert!(AttrPath::parse(&"a".repeat(MAX_PATH_LEN + 1)).is_err());
    }
}
