//! Value paths and templates over canonical resource attributes, as mapping rules name them.
//!
//! A path is `[urn:]segment(.segment)*` where a segment is an attribute name with an optional
//! selector in brackets: `[primary]` (the element with `primary: true`), `[0]` (by position),
//! or `[type eq "work"]` (the elements whose sub-attribute equals a literal: a string compared
//! case-insensitively, `true`, `false` or a number). Names match case-insensitively.
//! Examples: `userName`, `name.givenName`, `emails[primary].value`,
//! `emails[type eq "work"].value`,
//! `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`.
//!
//! A template is text with `{path}` placeholders (`{{` and `}}` are literal braces):
//! `"{name.givenName}.{name.familyName}@example.com"`.

use serde_json::{Map, Value};
use std::fmt;

/// Longest path or template accepted from configuration, in bytes.
const MAX_LEN: usize = 1024;
/// Most segments a path may have (SCIM nests at most attribute.subAttribute).
const MAX_SEGMENTS: usize = 4;

/// Which elements of a multi-valued attribute a segment selects.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    /// `[primary]`.
    Primary,
    /// `[3]`.
    Index(usize),
    /// `[sub eq literal]`.
    Eq(String, Value),
}

impl Selector {
    fn matches(&self, pos: usize, element: &Value) -> bool {
        match self {
            Selector::Primary => element.get("primary") == Some(&Value::Bool(true)),
            Selector::Index(i) => *i == pos,
            Selector::Eq(sub, want) => {
                let got = element
                    .as_object()
                    .and_then(|o| get_ci(o, sub))
                    .unwrap_or(&Value::Null);
                match (got, want) {
                    (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
                    (a, b) => a == b,
                }
            }
        }
    }

    /// A new element that this selector would select (for writes that create one).
    fn seed(&self) -> Option<Map<String, Value>> {
        let mut m = Map::new();
        match self {
            Selector::Primary => {
                m.insert("primary".into(), Value::Bool(true));
            }
            Selector::Eq(sub, v) => {
                m.insert(sub.clone(), v.clone());
            }
            Selector::Index(_) => return None,
        }
        Some(m)
    }
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// The attribute name, as configured.
    pub name: String,
    /// The element selector, if any.
    pub selector: Option<Selector>,
}

/// A parsed value path.
#[derive(Debug, Clone, PartialEq)]
pub struct ValuePath {
    text: String,
    urn: Option<String>,
    segments: Vec<Segment>,
}

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Finds a key case-insensitively (canonical attributes are canonical, configuration may not
/// be).
pub fn get_ci<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn key_ci(m: &Map<String, Value>, key: &str) -> Option<String> {
    if m.contains_key(key) {
        return Some(key.to_string());
    }
    m.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned()
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl ValuePath {
    /// Parses a path; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<ValuePath, String> {
        let text = text.trim();
        if text.is_empty() || text.len() > MAX_LEN {
            return Err(format!("invalid attribute path {text:?}"));
        }
        // A URN prefix (`urn:nid:nss`, which may contain dots as in `2.0`) ends at the last
        // ':' before the first selector; names and selectors never contain ':' outside
        // literals.
        let head_end = text.find('[').unwrap_or(text.len());
        let (urn, rest) = if text.len() > 4 && text[..4].eq_ignore_ascii_case("urn:") {
            match text[..head_end].rfind(':') {
                Some(i) if text[..i].matches(':').count() >= 2 => {
                    (Some(text[..i].to_string()), &text[i + 1..])
                }
                _ => return Err(format!("invalid attribute path {text:?}")),
            }
        } else {
            (None, text)
        };
        let mut segments = Vec::new();
        let mut rest = rest;
        loop {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let name = &rest[..end];
            if !is_name(name) {
                return Err(format!("invalid attribute name {name:?} in {text:?}"));
            }
            rest = &rest[end..];
            let mut selector = None;
            if let Some(after) = rest.strip_prefix('[') {
                let close = after
                    .find(']')
                    .ok_or_else(|| format!("unclosed [ in {text:?}"))?;
                selector = Some(parse_selector(&after[..close], text)?);
                rest = &after[close + 1..];
            }
            segments.push(Segment {
                name: name.to_string(),
                selector,
            });
            if segments.len() > MAX_SEGMENTS {
                return Err(format!("attribute path {text:?} is too deep"));
            }
            match rest.strip_prefix('.') {
                Some(r) => rest = r,
                None if rest.is_empty() => break,
                None => return Err(format!("unexpected {rest:?} in {text:?}")),
            }
        }
        Ok(ValuePath {
            text: text.to_string(),
            urn,
            segments,
        })
    }

    /// The top-level container: the attributes, or the extension object under the URN.
    fn container<'a>(&self, attrs: &'a Map<String, Value>) -> Option<&'a Map<String, Value>> {
        match &self.urn {
            None => Some(attrs),
            Some(urn) => get_ci(attrs, urn)?.as_object(),
        }
    }

    /// Every value the path reaches, in document order.
    pub fn read<'a>(&self, attrs: &'a Map<String, Value>) -> Vec<&'a Value> {
        let mut current: Vec<&Value> = Vec::new();
        let Some(first) = self.segments.first() else {
            return current;
        };
        let top = self
            .container(attrs)
            .and_then(|c| get_ci(c, &first.name))
            .or_else(|| {
                // A plain name may be an extension attribute (stored under its URN).
                if self.urn.is_some() {
                    return None;
                }
                attrs
                    .iter()
                    .filter(|(k, _)| k.len() > 4 && k[..4].eq_ignore_ascii_case("urn:"))
                    .find_map(|(_, v)| v.as_object().and_then(|o| get_ci(o, &first.name)))
            });
        current.extend(top);
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                current = current
                    .into_iter()
                    .flat_map(|v| match v {
                        Value::Array(items) => items.iter().collect::<Vec<_>>(),
                        other => vec![other],
                    })
                    .filter_map(|v| v.as_object().and_then(|o| get_ci(o, &seg.name)))
                    .collect();
            }
            if let Some(sel) = &seg.selector {
                current = current
                    .into_iter()
                    .flat_map(|v| match v {
                        Value::Array(items) => items
                            .iter()
                            .enumerate()
                            .filter(|(pos, e)| sel.matches(*pos, e))
                            .map(|(_, e)| e)
                            .collect::<Vec<_>>(),
                        _ => Vec::new(),
                    })
                    .collect();
            }
        }
        // A multi-valued leaf without selector stands for its elements.
        current
            .into_iter()
            .flat_map(|v| match v {
                Value::Array(items) => items.iter().collect::<Vec<_>>(),
                other => vec![other],
            })
            .collect()
    }

    /// The first value the path reaches.
    pub fn first<'a>(&self, attrs: &'a Map<String, Value>) -> Option<&'a Value> {
        self.read(attrs).into_iter().next()
    }

    /// Applies `f` to every value the path reaches (each element of a multi-valued leaf).
    pub fn for_each_mut(&self, attrs: &mut Map<String, Value>, f: &mut dyn FnMut(&mut Value)) {
        let container = match &self.urn {
            None => Some(attrs),
            Some(urn) => key_ci(attrs, urn).and_then(|k| attrs.get_mut(&k)?.as_object_mut()),
        };
        if let Some(c) = container {
            visit_mut(c, &self.segments, f);
        }
    }

    /// Sets the value at the path, creating objects and (for `[primary]`/`[x eq v]`
    /// selectors) a selected element when none exists. Returns whether anything was written.
    pub fn write(&self, attrs: &mut Map<String, Value>, value: Value) -> bool {
        let container = match &self.urn {
            None => attrs,
            Some(urn) => {
                let key = key_ci(attrs, urn).unwrap_or_else(|| urn.clone());
                let slot = attrs
                    .entry(key)
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                match slot.as_object_mut() {
                    Some(m) => m,
                    None => return false,
                }
            }
        };
        write_in(container, &self.segments, value)
    }

    /// Removes what the path reaches: an attribute, a sub-attribute (of every element), or the
    /// selected elements of a multi-valued attribute.
    pub fn remove(&self, attrs: &mut Map<String, Value>) {
        let container = match &self.urn {
            None => Some(&mut *attrs),
            Some(urn) => key_ci(attrs, urn).and_then(|k| attrs.get_mut(&k)?.as_object_mut()),
        };
        if let Some(c) = container {
            remove_in(c, &self.segments);
        }
        // An extension object left empty is not an attribute any more.
        if let Some(urn) = &self.urn
            && let Some(k) = key_ci(attrs, urn)
            && attrs
                .get(&k)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
        {
            attrs.remove(&k);
        }
    }

    /// Whether the path reaches any value.
    pub fn is_present(&self, attrs: &Map<String, Value>) -> bool {
        self.read(attrs).iter().any(|v| !is_unassigned(v))
    }
}

/// `null`, `""`, `[]` and `{}` count as no value (RFC 7643 §2.5).
pub fn is_unassigned(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn parse_selector(s: &str, text: &str) -> Result<Selector, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("primary") {
        return Ok(Selector::Primary);
    }
    if let Ok(i) = s.parse::<usize>() {
        return Ok(Selector::Index(i));
    }
    let mut parts = s.splitn(3, ' ');
    let (Some(sub), Some(op), Some(lit)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("invalid selector [{s}] in {text:?}"));
    };
    if !op.eq_ignore_ascii_case("eq") || !is_name(sub) {
        return Err(format!(
            "invalid selector [{s}] in {text:?}: use [primary], [n] or [sub eq \"value\"]"
        ));
    }
    let lit: Value = serde_json::from_str(lit.trim())
        .map_err(|_| format!("invalid literal {lit} in {text:?}"))?;
    if lit.is_object() || lit.is_array() || lit.is_null() {
        return Err(format!("invalid literal {lit} in {text:?}"));
    }
    Ok(Selector::Eq(sub.to_string(), lit))
}

fn visit_mut(m: &mut Map<String, Value>, segs: &[Segment], f: &mut dyn FnMut(&mut Value)) {
    let Some((seg, rest)) = segs.split_first() else {
        return;
    };
    let Some(key) = key_ci(m, &seg.name) else {
        return;
    };
    let Some(v) = m.get_mut(&key) else {
        return;
    };
    let mut targets: Vec<&mut Value> = match (&seg.selector, v) {
        (Some(sel), Value::Array(items)) => items
            .iter_mut()
            .enumerate()
            .filter(|(pos, e)| sel.matches(*pos, e))
            .map(|(_, e)| e)
            .collect(),
        (Some(_), _) => Vec::new(),
        (None, Value::Array(items)) if !rest.is_empty() => items.iter_mut().collect(),
        (None, v) => vec![v],
    };
    for t in targets.iter_mut() {
        if rest.is_empty() {
            match t {
                Value::Array(items) => items.iter_mut().for_each(&mut *f),
                other => f(other),
            }
        } else if let Some(o) = t.as_object_mut() {
            visit_mut(o, rest, f);
        }
    }
}

fn write_in(m: &mut Map<String, Value>, segs: &[Segment], value: Value) -> bool {
    let Some((seg, rest)) = segs.split_first() else {
        return false;
    };
    let key = key_ci(m, &seg.name).unwrap_or_else(|| seg.name.clone());
    if rest.is_empty() && seg.selector.is_none() {
        m.insert(key, value);
        return true;
    }
    match &seg.selector {
        None => {
            let slot = m.entry(key).or_insert_with(|| Value::Object(Map::new()));
            match slot {
                Value::Object(o) => write_in(o, rest, value),
                // `emails.value` without selector: write into every element.
                Value::Array(items) => {
                    let mut wrote = false;
                    for item in items.iter_mut() {
                        if let Some(o) = item.as_object_mut() {
                            wrote |= write_in(o, rest, value.clone());
                        }
                    }
                    wrote
                }
                other => {
                    *other = Value::Object(Map::new());
                    match other.as_object_mut() {
                        Some(o) => write_in(o, rest, value),
                        None => false,
                    }
                }
            }
        }
        Some(sel) => {
            let slot = m.entry(key).or_insert_with(|| Value::Array(Vec::new()));
            if !slot.is_array() {
                *slot = Value::Array(Vec::new());
            }
            let Value::Array(items) = slot else {
                return false;
            };
            let pos = items
                .iter()
                .enumerate()
                .position(|(pos, e)| sel.matches(pos, e));
            let pos = match pos {
                Some(p) => p,
                None => match sel.seed() {
                    Some(seed) => {
                        items.push(Value::Object(seed));
                        items.len() - 1
                    }
                    None => return false,
                },
            };
            let Some(element) = items.get_mut(pos) else {
                return false;
            };
            if rest.is_empty() {
                *element = value;
                true
            } else {
                match element.as_object_mut() {
                    Some(o) => write_in(o, rest, value),
                    None => false,
                }
            }
        }
    }
}

fn remove_in(m: &mut Map<String, Value>, segs: &[Segment]) {
    let Some((seg, rest)) = segs.split_first() else {
        return;
    };
    let Some(key) = key_ci(m, &seg.name) else {
        return;
    };
    if rest.is_empty() && seg.selector.is_none() {
        m.remove(&key);
        return;
    }
    let Some(v) = m.get_mut(&key) else {
        return;
    };
    match (&seg.selector, v) {
        (Some(sel), Value::Array(items)) if rest.is_empty() => {
            let mut pos = 0;
            items.retain(|e| {
                let keep = !sel.matches(pos, e);
                pos += 1;
                keep
            });
        }
        (Some(sel), Value::Array(items)) => {
            for (pos, e) in items.iter_mut().enumerate() {
                if sel.matches(pos, e)
                    && let Some(o) = e.as_object_mut()
                {
                    remove_in(o, rest);
                }
            }
        }
        (None, Value::Array(items)) => {
            for e in items.iter_mut() {
                if let Some(o) = e.as_object_mut() {
                    remove_in(o, rest);
                }
            }
        }
        (None, Value::Object(o)) => remove_in(o, rest),
        _ => {}
    }
    if m.get(&key).is_some_and(is_unassigned) {
        m.remove(&key);
    }
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Path(ValuePath),
}

impl Template {
    /// Parses a template; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Template, String> {
        if text.len() > MAX_LEN {
            return Err("template is too long".into());
        }
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let close = text[i..]
                        .find('}')
                        .ok_or_else(|| format!("unclosed {{ in template {text:?}"))?;
                    let path = ValuePath::parse(&text[i + 1..i + close])?;
                    if !lit.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Path(path));
                    while chars.peek().is_some_and(|(j, _)| *j <= i + close) {
                        chars.next();
                    }
                }
                '}' => return Err(format!("unmatched }} in template {text:?}")),
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template { parts })
    }

    /// Renders the template over `attrs`; `None` when a placeholder reaches no value. A
    /// template that is exactly one placeholder yields that value with its JSON type.
    pub fn render(&self, attrs: &Map<String, Value>) -> Option<Value> {
        if let [Part::Path(p)] = self.parts.as_slice() {
            return p.first(attrs).filter(|v| !is_unassigned(v)).cloned();
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Path(p) => match p.first(attrs)? {
                    Value::String(s) if !s.is_empty() => out.push_str(s),
                    Value::Number(n) => out.push_str(&n.to_string()),
                    Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                    _ => return None,
                },
            }
        }
        Some(Value::String(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn user() -> Map<String, Value> {
        json!({
            "userName": "bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [
                {"value": "b@home.example", "type": "home"},
                {"value": "Babs@Work.Example", "type": "work", "primary": true}
            ],
            ENT: {"employeeNumber": "701984", "manager": {"value": "m1"}}
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    fn p(s: &str) -> ValuePath {
        ValuePath::parse(s).unwrap()
    }

    #[test]
    fn paths_read_selectors_case_insensitively() {
        let u = user();
        assert_eq!(p("USERNAME").read(&u), [&json!("bjensen")]);
        assert_eq!(
            p("emails[primary].value").read(&u),
            [&json!("Babs@Work.Example")]
        );
        assert_eq!(
            p("emails[type eq \"HOME\"].value").read(&u),
            [&json!("b@home.example")]
        );
        assert_eq!(p("emails[0].type").read(&u), [&json!("home")]);
        assert_eq!(p("emails.value").read(&u).len(), 2);
        assert_eq!(p(&format!("{ENT}:manager.value")).read(&u), [&json!("m1")]);
        // Plain names find extension attributes too.
        assert_eq!(p("employeeNumber").read(&u), [&json!("701984")]);
        assert!(p("nickName").read(&u).is_empty());
    }

    #[test]
    fn bad_paths_are_refused_with_the_reason() {
        for bad in [
            "",
            "a..b",
            "emails[",
            "emails[type lt 1]",
            "1abc",
            "a.b.c.d.e",
            "urn:x",
        ] {
            assert!(ValuePath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn writes_create_objects_selected_elements_and_extension_objects() {
        let mut u = user();
        assert!(p("name.middleName").write(&mut u, json!("J")));
        assert_eq!(u["name"]["middleName"], "J");
        assert!(p("phoneNumbers[type eq \"work\"].value").write(&mut u, json!("+1")));
        assert_eq!(u["phoneNumbers"], json!([{"type": "work", "value": "+1"}]));
        assert!(p("emails[primary].display").write(&mut u, json!("Babs")));
        assert_eq!(u["emails"][1]["display"], "Babs");
        let mut empty = Map::new();
        assert!(p(&format!("{ENT}:department")).write(&mut empty, json!("R&D")));
        assert_eq!(empty[ENT]["department"], "R&D");
        assert!(!p("emails[5].value").write(&mut u, json!("x")));
    }

    #[test]
    fn for_each_reaches_every_element_and_remove_prunes() {
        let mut u = user();
        p("emails.value").for_each_mut(&mut u, &mut |v| {
            if let Value::String(s) = v {
                *s = s.to_lowercase();
            }
        });
        assert_eq!(u["emails"][1]["value"], "babs@work.example");
        p("emails[type eq \"home\"]").remove(&mut u);
        assert_eq!(u["emails"].as_array().map(Vec::len), Some(1));
        p("emails.type").remove(&mut u);
        assert!(u["emails"][0].get("type").is_none());
        p(&format!("{ENT}:employeeNumber")).remove(&mut u);
        p(&format!("{ENT}:manager")).remove(&mut u);
        assert!(!u.contains_key(ENT));
    }

    #[test]
    fn templates_render_text_and_keep_types_of_lone_placeholders() {
        let u = user();
        let t = Template::parse("{name.givenName}.{name.familyName}@{{corp}}").unwrap();
        assert_eq!(t.render(&u), Some(json!("Barbara.Jensen@{corp}")));
        let t = Template::parse("{emails[primary].value}").unwrap();
        assert_eq!(t.render(&u), Some(json!("Babs@Work.Example")));
        assert_eq!(Template::parse("{nickName}-x").unwrap().render(&u), None);
        assert!(Template::parse("{unclosed").is_err());
        assert!(Template::parse("a}b").is_err());
    }
}
