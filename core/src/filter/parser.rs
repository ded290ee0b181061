//! The filter parser and the canonical printer (RFC 7644 §3.4.2.2).
//!
//! The parser is a single left-to-right pass with one token of look-ahead: no backtracking, so
//! its time is linear in the input. Recursion happens only where the text nests (parentheses,
//! `not (…)`, `attr[…]`), and that nesting is capped at [`MAX_DEPTH`], so hostile input can
//! neither overflow the stack nor take long; the input length is capped at [`MAX_FILTER_LEN`].
//! A chain of `and`/`or` at one level is built in a loop and does not count as nesting.
//!
//! The printer writes the canonical text: lower-case keywords, single spaces, strings with JSON
//! escapes, parentheses only where precedence needs them and always after `not`.

use super::{CompValue, CompareOp, Filter, MAX_DEPTH, MAX_FILTER_LEN};
use crate::error::ScimError;
use crate::path::AttrPath;
use std::fmt;

/// Options of [`Filter::parse_with`]. The default is the strict RFC 7644 grammar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseOptions {
    /// Accept a bare word as a string value (`externalId eq jyoung`), as some clients send.
    /// Bare `true`, `false`, `null` and JSON numbers keep their JSON meaning.
    pub unquoted_values: bool,
}

impl ParseOptions {
    /// The strict grammar (same as `ParseOptions::default()`).
    pub fn strict() -> Self {
        Self::default()
    }

    /// Sets [`ParseOptions::unquoted_values`].
    pub fn with_unquoted_values(mut self, yes: bool) -> Self {
        self.unquoted_values = yes;
        self
    }
}

impl Filter {
    /// Parses a filter with the strict RFC 7644 §3.4.2.2 grammar.
    ///
    /// Keywords (`and`, `or`, `not`, `pr`, the comparison operators, `true`, `false`, `null`)
    /// are case-insensitive and whitespace between tokens is free. Every failure is an
    /// `invalidFilter` error whose detail names the byte offset where parsing stopped.
    pub fn parse(s: &str) -> Result<Filter, ScimError> {
        Self::parse_with(s, ParseOptions::default())
    }

    /// Parses a filter with explicit [`ParseOptions`].
    pub fn parse_with(s: &str, options: ParseOptions) -> Result<Filter, ScimError> {
        if s.len() > MAX_FILTER_LEN {
            return Err(ScimError::invalid_filter(format!(
                "the filter is longer than {MAX_FILTER_LEN} bytes"
            )));
        }
        let mut p = Parser {
            src: s,
            pos: 0,
            depth: 0,
            in_brackets: false,
            options,
        };
        p.skip_ws();
        if p.at_end() {
            return Err(ScimError::invalid_filter("the filter is empty"));
        }
        let filter = p.parse_or()?;
        p.skip_ws();
        if !p.at_end() {
            return Err(p.unexpected("'and', 'or' or the end of the filter"));
        }
        Ok(filter)
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
    in_brackets: bool,
    options: ParseOptions,
}

/// Bytes that end a word. All are ASCII, so slicing at them keeps UTF-8 boundaries.
fn is_delimiter(b: u8) -> bool {
    matches!(b, b'(' | b')' | b'[' | b']' | b'"') || b.is_ascii_whitespace()
}

impl<'a> Parser<'a> {
    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        let bytes = self.src.as_bytes();
        while self.pos < bytes.len() && bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    /// The word starting at `from` (possibly empty) and the offset just after it.
    fn word_at(&self, from: usize) -> (&'a str, usize) {
        let bytes = self.src.as_bytes();
        let mut end = from;
        while end < bytes.len() && !is_delimiter(bytes[end]) {
            end += 1;
        }
        (&self.src[from..end], end)
    }

    fn error(&self, at: usize, what: impl fmt::Display) -> ScimError {
        ScimError::invalid_filter(format!("{what} at byte {at} of the filter"))
    }

    /// "expected X, found Y" at the current position.
    fn unexpected(&self, expected: &str) -> ScimError {
        let found = match self.peek() {
            None => "the end of the filter".to_string(),
            Some(b) if is_delimiter(b) => format!("'{}'", b as char),
            Some(_) => {
                let (w, _) = self.word_at(self.pos);
                format!("{:?}", truncate(w))
            }
        };
        self.error(self.pos, format!("expected {expected}, found {found}"))
    }

    fn enter(&mut self) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                self.pos,
                format!("the filter nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Consumes the keyword `kw` (case-insensitive, a whole word) if it comes next.
    fn eat_keyword(&mut self, kw: &str) -> bool {
        self.skip_ws();
        let (w, end) = self.word_at(self.pos);
        if w.eq_ignore_ascii_case(kw) {
            self.pos = end;
            true
        } else {
            false
        }
    }

    fn expect_byte(&mut self, b: u8, expected: &str) -> Result<(), ScimError> {
        self.skip_ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// `or` binds loosest; chains are left-associative.
    fn parse_or(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.parse_and()?;
        while self.eat_keyword("or") {
            let right = self.parse_and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.parse_primary()?;
        while self.eat_keyword("and") {
            let right = self.parse_primary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `( filter )`, `not ( filter )`, `attrPath[valFilter]` or an attribute expression.
    fn parse_primary(&mut self) -> Result<Filter, ScimError> {
        self.skip_ws();
        match self.peek() {
            None => return Err(self.unexpected("an expression")),
            Some(b'(') => {
                self.enter()?;
                self.pos += 1;
                let inner = self.parse_or()?;
                self.expect_byte(b')', "')'")?;
                self.leave();
                return Ok(inner);
            }
            Some(b) if is_delimiter(b) => return Err(self.unexpected("an expression")),
            Some(_) => {}
        }
        let start = self.pos;
        let (word, end) = self.word_at(start);
        if word.eq_ignore_ascii_case("not") && self.not_is_operator(end) {
            self.pos = end;
            self.skip_ws();
            self.enter()?;
            self.pos += 1; // the '(' checked by `not_is_operator`
            let inner = self.parse_or()?;
            self.expect_byte(b')', "')'")?;
            self.leave();
            return Ok(Filter::Not(Box::new(inner)));
        }
        let path = AttrPath::parse(word).map_err(|_| {
            self.error(
                start,
                format!("{:?} is not a valid attribute path", truncate(word)),
            )
        })?;
        self.pos = end;
        self.skip_ws();
        if self.peek() == Some(b'[') {
            return self.parse_value_path(path, start);
        }
        self.parse_attr_expr(path)
    }

    /// Whether a `not` ending at `end` is the operator, i.e. a `(` follows. Otherwise the word
    /// is an attribute named `not` (`not eq "x"`), or a negation without parentheses, which
    /// the operator check then rejects with a hint.
    fn not_is_operator(&self, end: usize) -> bool {
        self.src[end..]
            .trim_start_matches(|c: char| c.is_ascii_whitespace())
            .starts_with('(')
    }

    fn parse_value_path(&mut self, path: AttrPath, start: usize) -> Result<Filter, ScimError> {
        if self.in_brackets {
            return Err(self.error(self.pos, "value filters cannot be nested"));
        }
        if path.sub.is_some() {
            return Err(self.error(
                start,
                format!("a value filter applies to an attribute, not to the sub-attribute {path}"),
            ));
        }
        self.enter()?;
        self.pos += 1;
        self.in_brackets = true;
        let inner = self.parse_or()?;
        self.expect_byte(b']', "']'")?;
        self.in_brackets = false;
        self.leave();
        Ok(Filter::ValuePath {
            path,
            filter: Box::new(inner),
        })
    }

    /// `attrPath pr` or `attrPath compareOp compValue`; `path` has been consumed.
    fn parse_attr_expr(&mut self, path: AttrPath) -> Result<Filter, ScimError> {
        let at = self.pos;
        let (word, end) = self.word_at(at);
        if word.is_empty() {
            return Err(self.unexpected(&format!("an operator after {path}")));
        }
        if word.eq_ignore_ascii_case("pr") {
            self.pos = end;
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::parse(word) else {
            let hint = if path.name.eq_ignore_ascii_case("not") && path.urn.is_none() {
                " ('not' needs parentheses: not (...))"
            } else {
                ""
            };
            return Err(self.error(
                at,
                format!(
                    "unknown operator {:?} after {path}; expected eq, ne, co, sw, ew, gt, ge, \
                     lt, le or pr{hint}",
                    truncate(word)
                ),
            ));
        };
        self.pos = end;
        self.skip_ws();
        let value = self.parse_value(op)?;
        Ok(Filter::Compare { path, op, value })
    }

    fn parse_value(&mut self, op: CompareOp) -> Result<CompValue, ScimError> {
        let start = self.pos;
        if self.peek() == Some(b'"') {
            return self.parse_string();
        }
        let (word, end) = self.word_at(start);
        if word.is_empty() {
            return Err(self.unexpected(&format!("a value after '{}'", op.as_str())));
        }
        let value = if word.eq_ignore_ascii_case("true") {
            CompValue::Bool(true)
        } else if word.eq_ignore_ascii_case("false") {
            CompValue::Bool(false)
        } else if word.eq_ignore_ascii_case("null") {
            CompValue::Null
        } else if is_json_number(word) {
            let n = json_number(word).ok_or_else(|| {
                self.error(
                    start,
                    format!("the number {:?} is out of range", truncate(word)),
                )
            })?;
            CompValue::Num(n)
        } else if self.options.unquoted_values {
            CompValue::Str(word.to_string())
        } else {
            return Err(self.error(
                start,
                format!(
                    "{:?} is not a value; strings must be in double quotes, other values are \
                     numbers, true, false or null",
                    truncate(word)
                ),
            ));
        };
        self.pos = end;
        Ok(value)
    }

    /// A JSON string starting at the current `"`. The end is found by a linear scan (skipping
    /// escaped characters); serde_json then decodes the escapes, surrogate pairs included, and
    /// rejects raw control characters and lone surrogates as JSON does.
    fn parse_string(&mut self) -> Result<CompValue, ScimError> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let mut i = start + 1;
        let end = loop {
            match bytes.get(i) {
                None => return Err(self.error(start, "unterminated string")),
                Some(b'\\') => i += 2,
                Some(b'"') => break i,
                Some(_) => i += 1,
            }
        };
        let literal = &self.src[start..=end];
        let s = serde_json::from_str::<String>(literal)
            .map_err(|e| self.error(start, format!("invalid string ({e})")))?;
        self.pos = end + 1;
        Ok(CompValue::Str(s))
    }
}

/// The JSON number grammar (RFC 8259 §6): `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let from = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - from
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(c) if c.is_ascii_digit() => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Converts text matching the JSON number grammar: integers exactly when they fit 64 bits,
/// everything else through the standard library's correctly rounded `f64` parser, so that the
/// printed form of any number parses back to the same value. `None` when it overflows `f64`.
fn json_number(s: &str) -> Option<serde_json::Number> {
    if !s.contains(['.', 'e', 'E']) {
        if let Ok(i) = s.parse::<i64>() {
            return Some(i.into());
        }
        if let Ok(u) = s.parse::<u64>() {
            return Some(u.into());
        }
    }
    s.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
}

/// Keeps error details short when the offending word is long.
fn truncate(s: &str) -> &str {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl fmt::Display for Filter {
    /// The canonical text. `Filter::parse(&f.to_string()) == f` for every filter the grammar
    /// can express (no value filter inside a value filter, no sub-attribute before `[`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Walk the left spine of an `and`/`or` chain in a loop so that long flat chains do not
        // recurse; recursion remains only where the text has parentheses.
        let mut spine: Vec<(&'static str, &Filter, bool)> = Vec::new();
        let mut cur = self;
        let mut paren_leftmost = false;
        loop {
            match cur {
                Filter::Or(l, r) => {
                    spine.push((" or ", r, matches!(**r, Filter::Or(..))));
                    cur = l;
                }
                Filter::And(l, r) => {
                    spine.push((" and ", r, matches!(**r, Filter::Or(..) | Filter::And(..))));
                    cur = l;
                    if matches!(**l, Filter::Or(..)) {
                        paren_leftmost = true;
                        break;
                    }
                }
                _ => break,
            }
        }
        if paren_leftmost {
            write!(f, "({cur})")?;
        } else {
            write_primary(cur, f)?;
        }
        for (op, operand, paren) in spine.into_iter().rev() {
            f.write_str(op)?;
            if paren {
                write!(f, "({operand})")?;
            } else {
                write!(f, "{operand}")?;
            }
        }
        Ok(())
    }
}

/// Writes a filter that is not an `and`/`or` (those are handled by the caller's loop; when one
/// does reach here it is printed through `Display`).
fn write_primary(filter: &Filter, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match filter {
        Filter::Compare { path, op, value } => write!(f, "{path} {} {value}", op.as_str()),
        Filter::Present(path) => write!(f, "{path} pr"),
        Filter::Not(inner) => write!(f, "not ({inner})"),
        Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        Filter::And(..) | Filter::Or(..) => write!(f, "{filter}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Filter {
        match Filter::parse(s) {
            Ok(f) => f,
            Err(e) => panic!("{s:?} failed to parse: {e}"),
        }
    }

    fn cmp(path: &str, op: CompareOp, value: CompValue) -> Filter {
        Filter::Compare {
            path: AttrPath::parse(path).unwrap(),
            op,
            value,
        }
    }

    fn s(v: &str) -> CompValue {
        CompValue::Str(v.to_string())
    }

    fn is_invalid_filter(r: Result<Filter, ScimError>) -> bool {
        matches!(r, Err(e) if e.scim_type == Some(crate::error::ScimType::InvalidFilter) && e.status == 400)
    }

    /// Every example filter of RFC 7644 §3.4.2.2, in its canonical form.
    const RFC_EXAMPLES: &[&str] = &[
        r#"userName eq "bjensen""#,
        r#"name.familyName co "O'Malley""#,
        r#"userName sw "J""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        r#"title pr"#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        r#"title pr and userType eq "Employee""#,
        r#"title pr or userType eq "Intern""#,
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType eq "Employee" and emails.type eq "work""#,
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    ];

    #[test]
    fn rfc_examples_parse_and_print_canonically() {
        for text in RFC_EXAMPLES {
            assert_eq!(parse(text).to_string(), *text);
        }
    }

    #[test]
    fn rfc_example_with_redundant_parentheses_prints_without_them() {
        let f = parse(r#"userType eq "Employee" and (emails.type eq "work")"#);
        assert_eq!(
            f,
            Filter::And(
                Box::new(cmp("userType", CompareOp::Eq, s("Employee"))),
                Box::new(cmp("emails.type", CompareOp::Eq, s("work"))),
            )
        );
        assert_eq!(
            f.to_string(),
            r#"userType eq "Employee" and emails.type eq "work""#
        );
    }

    #[test]
    fn rfc_value_path_example_builds_the_expected_tree() {
        let f = parse(
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        );
        let inner = Filter::And(
            Box::new(cmp("type", CompareOp::Eq, s("work"))),
            Box::new(cmp("value", CompareOp::Co, s("@example.com"))),
        );
        assert_eq!(
            f,
            Filter::And(
                Box::new(cmp("userType", CompareOp::Eq, s("Employee"))),
                Box::new(Filter::ValuePath {
                    path: AttrPath::new("emails"),
                    filter: Box::new(inner),
                }),
            )
        );
    }

    #[test]
    fn every_operator_parses_case_insensitively() {
        for op in CompareOp::ALL {
            let upper = op.as_str().to_ascii_uppercase();
            let f = parse(&format!("userName {upper} \"x\""));
            assert_eq!(f, cmp("userName", op, s("x")));
            assert_eq!(f.to_string(), format!("userName {} \"x\"", op.as_str()));
        }
        assert_eq!(parse("title PR"), Filter::Present(AttrPath::new("title")));
        assert_eq!(
            parse(r#"NOT (a Eq 1) AnD b pr Or c pr"#).to_string(),
            "not (a eq 1) and b pr or c pr"
        );
        assert_eq!(parse("a eq TRUE").to_string(), "a eq true");
        assert_eq!(parse("a eq False").to_string(), "a eq false");
        assert_eq!(parse("a eq NULL").to_string(), "a eq null");
    }

    #[test]
    fn and_binds_tighter_than_or_and_chains_are_left_associative() {
        let (a, b, c) = (
            || Filter::Present(AttrPath::new("a")),
            || Filter::Present(AttrPath::new("b")),
            || Filter::Present(AttrPath::new("c")),
        );
        assert_eq!(
            parse("a pr or b pr and c pr"),
            Filter::Or(
                Box::new(a()),
                Box::new(Filter::And(Box::new(b()), Box::new(c())))
            )
        );
        assert_eq!(
            parse("a pr and b pr or c pr"),
            Filter::Or(
                Box::new(Filter::And(Box::new(a()), Box::new(b()))),
                Box::new(c())
            )
        );
        assert_eq!(
            parse("a pr or b pr or c pr"),
            Filter::Or(
                Box::new(Filter::Or(Box::new(a()), Box::new(b()))),
                Box::new(c())
            )
        );
        assert_eq!(
            parse("not (a pr) and b pr"),
            Filter::And(Box::new(Filter::Not(Box::new(a()))), Box::new(b()))
        );
    }

    #[test]
    fn printer_adds_parentheses_only_where_precedence_needs_them() {
        for text in [
            "(a pr or b pr) and c pr",
            "a pr and (b pr or c pr)",
            "a pr or (b pr or c pr)",
            "a pr and (b pr and c pr)",
            "(a pr or b pr) and (c pr or d pr)",
            "a pr or b pr and c pr or d pr",
            "not (a pr or b pr) and c pr",
            "not (not (a pr))",
            "x[a pr or b pr] and c pr",
        ] {
            assert_eq!(parse(text).to_string(), text);
        }
        assert_eq!(parse("((a pr)) or ((b pr))").to_string(), "a pr or b pr");
        assert_eq!(
            parse("(a pr and b pr) or c pr").to_string(),
            "a pr and b pr or c pr"
        );
    }

    #[test]
    fn whitespace_is_flexible() {
        assert_eq!(
            parse(" \t userName   eq\n\"bjensen\"  and(title pr)or not(nickName pr) ").to_string(),
            r#"userName eq "bjensen" and title pr or not (nickName pr)"#
        );
        assert_eq!(
            parse(r#"emails [ type eq "work" ]"#).to_string(),
            r#"emails[type eq "work"]"#
        );
    }

    #[test]
    fn urn_paths_with_dotted_versions_parse() {
        let f = parse(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#,
        );
        let Filter::Compare { path, .. } = &f else {
            panic!("{f:?}")
        };
        assert_eq!(
            path.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(
            (path.name.as_str(), path.sub.as_deref()),
            ("manager", Some("value"))
        );
        let f = parse(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq "x"]"#,
        );
        assert!(matches!(f, Filter::ValuePath { .. }));
    }

    #[test]
    fn string_escapes_decode_and_print_back() {
        let f = parse(r#"a eq "q\" b\\ s\/ t\t u\u00e9 \ud83d\ude00 n\n""#);
        assert_eq!(
            f,
            cmp(
                "a",
                CompareOp::Eq,
                s("q\" b\\ s/ t\t u\u{e9} \u{1F600} n\n")
            )
        );
        assert_eq!(
            f.to_string(),
            "a eq \"q\\\" b\\\\ s/ t\\t u\u{e9} \u{1F600} n\\n\""
        );
        assert_eq!(parse(&f.to_string()), f);
        // Non-ASCII text may appear raw.
        assert_eq!(parse("a eq \"Zoë\""), cmp("a", CompareOp::Eq, s("Zoë")));
        // The closing quote may follow an escaped backslash.
        assert_eq!(parse(r#"a eq "x\\""#), cmp("a", CompareOp::Eq, s("x\\")));
    }

    #[test]
    fn bad_strings_are_invalid_filters() {
        for text in [
            r#"a eq "unterminated"#,
            r#"a eq "bad \x escape""#,
            r#"a eq "lone \ud800 surrogate""#,
            r#"a eq "reversed \udc00\ud800""#,
            "a eq \"raw\u{1}control\"",
            r#"a eq "trailing backslash\"#,
            r#"a eq "\u12""#,
        ] {
            assert!(is_invalid_filter(Filter::parse(text)), "{text:?}");
        }
    }

    #[test]
    fn numbers_follow_the_json_grammar() {
        for (text, canonical) in [
            ("0", "0"),
            ("-7", "-7"),
            ("42", "42"),
            ("1.5", "1.5"),
            ("-0.25", "-0.25"),
            ("1e3", "1000.0"),
            ("2.5E-3", "0.0025"),
            ("18446744073709551615", "18446744073709551615"),
        ] {
            let f = parse(&format!("n eq {text}"));
            assert_eq!(f.to_string(), format!("n eq {canonical}"), "{text}");
            assert_eq!(parse(&f.to_string()), f);
        }
        for bad in [
            "01", "1.", ".5", "+1", "1e", "1e+", "--1", "0x10", "1_000", "1e999",
        ] {
            assert!(
                is_invalid_filter(Filter::parse(&format!("n eq {bad}"))),
                "{bad}"
            );
        }
    }

    #[test]
    fn unquoted_values_need_the_option() {
        assert!(is_invalid_filter(Filter::parse("externalId eq jyoung")));
        let opts = ParseOptions::default().with_unquoted_values(true);
        assert_eq!(
            Filter::parse_with("externalId eq jyoung", opts).unwrap(),
            cmp("externalId", CompareOp::Eq, s("jyoung"))
        );
        assert_eq!(
            Filter::parse_with("active eq True", opts).unwrap(),
            cmp("active", CompareOp::Eq, CompValue::Bool(true))
        );
        assert_eq!(
            Filter::parse_with("x eq 12", opts).unwrap(),
            cmp("x", CompareOp::Eq, CompValue::Num(12.into()))
        );
    }

    #[test]
    fn attributes_named_like_keywords_still_parse() {
        assert_eq!(parse("not pr"), Filter::Present(AttrPath::new("not")));
        assert_eq!(parse(r#"and eq "x""#), cmp("and", CompareOp::Eq, s("x")));
        assert_eq!(
            parse(r#"or eq "x" or or pr"#).to_string(),
            r#"or eq "x" or or pr"#
        );
    }

    #[test]
    fn malformed_filters_are_invalid_filters() {
        for text in [
            "",
            "   ",
            "userName",
            "userName eq",
            r#"userName eq "a" and"#,
            r#"userName eq "a" or"#,
            r#"userName xx "a""#,
            r#"userName eq "a" userName eq "b""#,
            r#"(userName eq "a""#,
            r#"userName eq "a")"#,
            r#"not userName eq "a""#,
            r#"not"#,
            r#"not ("#,
            r#"emails[type eq "work""#,
            r#"emails[type eq "work"]]"#,
            r#"emails[type eq "work"].value eq "x""#,
            r#"emails[type eq "work"] eq "x""#,
            r#"emails[types[x eq 1]]"#,
            r#"emails.value[type eq "work"]"#,
            r#"emails[]"#,
            r#"1abc eq "x""#,
            r#"a.b.c eq "x""#,
            r#"a eq "x" and ()"#,
            r#"a eq ("x")"#,
            r#"a pr pr"#,
            r#"a eq "x" "y""#,
            r#"a eq 'x'"#,
            "a eq \"x\" and b eq [",
            r#"[a pr]"#,
        ] {
            let r = Filter::parse(text);
            assert!(is_invalid_filter(r.clone()), "{text:?} gave {r:?}");
        }
    }

    #[test]
    fn errors_name_the_position() {
        let e = Filter::parse(r#"userName eq "a" xor b pr"#).unwrap_err();
        assert!(e.detail.contains("byte 16"), "{}", e.detail);
        assert!(e.detail.contains("\"xor\""), "{}", e.detail);
        let e = Filter::parse(r#"userName qq "a""#).unwrap_err();
        assert!(e.detail.contains("unknown operator \"qq\""), "{}", e.detail);
    }

    #[test]
    fn nesting_beyond_the_limit_is_rejected() {
        let ok = format!("{}a pr{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(parse(&ok), Filter::Present(AttrPath::new("a")));
        let deep = format!(
            "{}a pr{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        let e = Filter::parse(&deep).unwrap_err();
        assert!(e.detail.contains("nests deeper"), "{}", e.detail);
        let nots = format!(
            "{}a pr{}",
            "not (".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert!(is_invalid_filter(Filter::parse(&nots)));
    }

    #[test]
    fn ten_thousand_nested_parentheses_fail_fast_without_overflow() {
        for open in ["(", "not (", "( not ("] {
            let text = format!("{}a pr{}", open.repeat(10_000), ")".repeat(10_000));
            let started = std::time::Instant::now();
            assert!(is_invalid_filter(Filter::parse(&text)));
            // Also below the length limit: depth alone must stop it.
            let short = open.repeat(MAX_FILTER_LEN / open.len());
            assert!(is_invalid_filter(Filter::parse(&short)));
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
        }
    }

    #[test]
    fn overlong_filters_are_rejected() {
        let long = format!("a eq \"{}\"", "x".repeat(MAX_FILTER_LEN));
        let e = Filter::parse(&long).unwrap_err();
        assert!(e.detail.contains("longer than"), "{}", e.detail);
    }

    #[test]
    fn a_maximal_flat_chain_parses_prints_and_drops_on_a_small_stack() {
        let n = MAX_FILTER_LEN / "a pr or ".len();
        let text = vec!["a pr"; n].join(" or ");
        assert!(text.len() <= MAX_FILTER_LEN);
        let handle = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let f = Filter::parse(&text).unwrap();
                assert_eq!(f.to_string(), text);
            })
            .unwrap();
        handle.join().unwrap();
    }
}
