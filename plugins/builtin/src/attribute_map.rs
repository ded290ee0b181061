//! `attribute_map`: declarative attribute mapping in the map phase.
//!
//! Rules run in configured order, each on the result of the previous ones, before the resource
//! is validated (so a rule may supply a required attribute). Each rule is scoped to resource
//! types and operations (create, replace, patch; empty = all). Paths and templates are
//! described in [`crate::valuepath`].
//!
//! | `action` | keys | effect |
//! |---|---|---|
//! | `set` | `attribute`, `value` or `template` | always sets the attribute |
//! | `default` | `attribute`, `value` or `template` | sets it only when it has no value |
//! | `copy` | `from`, `attribute` | copies the first value at `from` (when there is one) |
//! | `rename` | `from`, `attribute` | copies, then removes `from` |
//! | `lowercase` / `uppercase` / `trim` | `attribute` | changes every string value reached |
//! | `replace` | `attribute`, `pattern`, `replacement` | regex replacement (`$1` groups) |
//! | `drop` | `attribute` | removes the attribute, sub-attribute or selected elements |
//!
//! A template whose placeholder reaches no value leaves the target alone (chain a second
//! `default` rule as a fallback).

use crate::valuepath::{Template, ValuePath};
use async_trait::async_trait;
use regex::Regex;
use scimd_core::error::ScimError;
use scimd_core::hooks::{Hook, HookContext, Operation, Phase, Scope};
use scimd_core::resource::Resource;
use scimd_core::schema::ResourceKind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `type = "attribute_map"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeMapConfig {
    /// A name for logs; defaults to `attribute_map`.
    #[serde(default)]
    pub name: Option<String>,
    /// The rules, applied in order.
    pub rules: Vec<RuleConfig>,
}

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Always set `attribute`.
    Set,
    /// Set `attribute` when it has no value.
    Default,
    /// Copy `from` to `attribute`.
    Copy,
    /// Move `from` to `attribute`.
    Rename,
    /// Lowercase string values.
    Lowercase,
    /// Uppercase string values.
    Uppercase,
    /// Trim whitespace around string values.
    Trim,
    /// Regex replacement in string values.
    Replace,
    /// Remove `attribute`.
    Drop,
}

/// One rule of `rules`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// What the rule does.
    pub action: Action,
    /// The target path.
    pub attribute: String,
    /// `copy`/`rename`: the source path.
    #[serde(default)]
    pub from: Option<String>,
    /// `set`/`default`: a literal JSON value.
    #[serde(default)]
    pub value: Option<Value>,
    /// `set`/`default`: a template (`"{emails[primary].value}"`).
    #[serde(default)]
    pub template: Option<String>,
    /// `replace`: the regular expression.
    #[serde(default)]
    pub pattern: Option<String>,
    /// `replace`: the replacement (`$1` for groups); empty by default.
    #[serde(default)]
    pub replacement: Option<String>,
    /// Resource types the rule applies to (`User`, `Group`); empty = both.
    #[serde(default)]
    pub resource_types: Vec<ResourceKind>,
    /// Operations the rule applies to (`create`, `replace`, `patch`); empty = all.
    #[serde(default)]
    pub operations: Vec<Operation>,
}

#[derive(Debug)]
enum Source {
    Value(Value),
    Template(Template),
}

impl Source {
    fn produce(&self, attrs: &Map<String, Value>) -> Option<Value> {
        match self {
            Source::Value(v) => Some(v.clone()),
            Source::Template(t) => t.render(attrs),
        }
    }
}

#[derive(Debug)]
enum Op {
    Set(Source),
    Default(Source),
    Copy(ValuePath),
    Rename(ValuePath),
    Lowercase,
    Uppercase,
    Trim,
    Replace(Regex, String),
    Drop,
}

#[derive(Debug)]
struct Rule {
    target: ValuePath,
    op: Op,
    scope: Scope,
}

/// The built `attribute_map` hook.
#[derive(Debug)]
pub struct AttributeMap {
    name: String,
    rules: Vec<Rule>,
}

impl AttributeMapConfig {
    /// Checks every rule (paths, templates, regexes, the keys each action needs) and builds the
    /// hook. The error names the rule by position.
    pub fn build(&self) -> Result<AttributeMap, String> {
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, r) in self.rules.iter().enumerate() {
            rules.push(r.build().map_err(|e| format!("rule {}: {e}", i + 1))?);
        }
        Ok(AttributeMap {
            name: self.name.clone().unwrap_or_else(|| "attribute_map".into()),
            rules,
        })
    }
}

impl RuleConfig {
    fn build(&self) -> Result<Rule, String> {
        let target = ValuePath::parse(&self.attribute)?;
        let name = format!("{:?}", self.action).to_lowercase();
        let unexpected = |key: &str, present: bool| {
            if present {
                Err(format!("{name} takes no {key}"))
            } else {
                Ok(())
            }
        };
        let source = || -> Result<Source, String> {
            match (&self.value, &self.template) {
                (Some(v), None) => Ok(Source::Value(v.clone())),
                (None, Some(t)) => Ok(Source::Template(Template::parse(t)?)),
                _ => Err(format!("{name} needs exactly one of value and template")),
            }
        };
        let from = || -> Result<ValuePath, String> {
            ValuePath::parse(self.from.as_deref().ok_or(format!("{name} needs from"))?)
        };
        match self.action {
            Action::Set | Action::Default => {
                unexpected("from", self.from.is_some())?;
            }
            Action::Copy | Action::Rename => {
                unexpected("value", self.value.is_some())?;
                unexpected("template", self.template.is_some())?;
            }
            _ => {
                unexpected("from", self.from.is_some())?;
                unexpected("value", self.value.is_some())?;
                unexpected("template", self.template.is_some())?;
            }
        }
        if self.action != Action::Replace {
            unexpected("pattern", self.pattern.is_some())?;
            unexpected("replacement", self.replacement.is_some())?;
        }
        let op = match self.action {
            Action::Set => Op::Set(source()?),
            Action::Default => Op::Default(source()?),
            Action::Copy => Op::Copy(from()?),
            Action::Rename => Op::Rename(from()?),
            Action::Lowercase => Op::Lowercase,
            Action::Uppercase => Op::Uppercase,
            Action::Trim => Op::Trim,
            Action::Replace => {
                let pattern = self.pattern.as_deref().ok_or("replace needs pattern")?;
                let re = regex::RegexBuilder::new(pattern)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| format!("invalid pattern: {e}"))?;
                Op::Replace(re, self.replacement.clone().unwrap_or_default())
            }
            Action::Drop => Op::Drop,
        };
        if self.operations.contains(&Operation::Delete) {
            return Err("a mapping cannot apply to delete (there is no resource to map)".into());
        }
        Ok(Rule {
            target,
            op,
            scope: Scope {
                resource_types: self.resource_types.clone(),
                operations: self.operations.clone(),
            },
        })
    }
}

fn map_strings(target: &ValuePath, attrs: &mut Map<String, Value>, f: impl Fn(&str) -> String) {
    target.for_each_mut(attrs, &mut |v| {
        if let Value::String(s) = v {
            let new = f(s);
            if new != *s {
                *s = new;
            }
        }
    });
}

impl AttributeMap {
    /// Applies every rule in scope of `kind`/`operation` to `attrs`, in order.
    pub fn apply(&self, kind: ResourceKind, operation: Operation, attrs: &mut Map<String, Value>) {
        for rule in self
            .rules
            .iter()
            .filter(|r| r.scope.contains(kind, operation))
        {
            let t = &rule.target;
            match &rule.op {
                Op::Set(src) => {
                    if let Some(v) = src.produce(attrs) {
                        t.write(attrs, v);
                    }
                }
                Op::Default(src) => {
                    if !t.is_present(attrs)
                        && let Some(v) = src.produce(attrs)
                    {
                        t.write(attrs, v);
                    }
                }
                Op::Copy(from) | Op::Rename(from) => {
                    if let Some(v) = from.first(attrs).cloned() {
                        if matches!(rule.op, Op::Rename(_)) {
                            from.remove(attrs);
                        }
                        t.write(attrs, v);
                    }
                }
                Op::Lowercase => map_strings(t, attrs, str::to_lowercase),
                Op::Uppercase => map_strings(t, attrs, str::to_uppercase),
                Op::Trim => map_strings(t, attrs, |s| s.trim().to_string()),
                Op::Replace(re, with) => {
                    map_strings(t, attrs, |s| re.replace_all(s, with.as_str()).into_owned())
                }
                Op::Drop => t.remove(attrs),
            }
        }
    }
}

#[async_trait]
impl Hook for AttributeMap {
    fn name(&self) -> &str {
        &self.name
    }

    fn applies(&self, phase: Phase, kind: ResourceKind, operation: Operation) -> bool {
        phase == Phase::Map
            && operation.writes_state()
            && self.rules.iter().any(|r| r.scope.contains(kind, operation))
    }

    async fn map(
        &self,
        cx: &HookContext,
        _old: Option<&Resource>,
        attrs: &mut Map<String, Value>,
    ) -> Result<(), ScimError> {
        self.apply(cx.kind, cx.operation, attrs);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build(rules: Value) -> AttributeMap {
        let c: AttributeMapConfig = serde_json::from_value(json!({ "rules": rules })).unwrap();
        c.build().unwrap()
    }

    fn run(m: &AttributeMap, kind: ResourceKind, op: Operation, v: Value) -> Value {
        let mut attrs = v.as_object().cloned().unwrap();
        m.apply(kind, op, &mut attrs);
        Value::Object(attrs)
    }

    #[test]
    fn user_name_defaults_from_the_primary_email_then_is_lowercased() {
        let m = build(json!([
            {"action": "default", "attribute": "userName", "template": "{emails[primary].value}"},
            {"action": "lowercase", "attribute": "userName"}
        ]));
        let out = run(
            &m,
            ResourceKind::User,
            Operation::Create,
            json!({"emails": [{"value": "Ada@X.org", "primary": true}]}),
        );
        assert_eq!(out["userName"], "ada@x.org");
        let out = run(
            &m,
            ResourceKind::User,
            Operation::Create,
            json!({"userName": "Kept"}),
        );
        assert_eq!(out["userName"], "kept");
    }

    #[test]
    fn rules_apply_only_to_their_resource_types_and_operations() {
        let m = build(json!([
            {"action": "set", "attribute": "title", "value": "Staff",
             "resource_types": ["User"], "operations": ["create"]}
        ]));
        assert!(m.applies(Phase::Map, ResourceKind::User, Operation::Create));
        assert!(!m.applies(Phase::Map, ResourceKind::User, Operation::Replace));
        assert!(!m.applies(Phase::Map, ResourceKind::Group, Operation::Create));
        let out = run(&m, ResourceKind::User, Operation::Replace, json!({}));
        assert!(out.get("title").is_none());
        let out = run(&m, ResourceKind::User, Operation::Create, json!({}));
        assert_eq!(out["title"], "Staff");
    }

    #[test]
    fn copy_rename_drop_trim_and_replace_compose_in_order() {
        let m = build(json!([
            {"action": "copy", "from": "emails[type eq \"work\"].value", "attribute": "externalId"},
            {"action": "rename", "from": "nickName", "attribute": "displayName"},
            {"action": "trim", "attribute": "displayName"},
            {"action": "replace", "attribute": "phoneNumbers.value", "pattern": "[^0-9+]", "replacement": ""},
            {"action": "drop", "attribute": "x509Certificates"}
        ]));
        let out = run(
            &m,
            ResourceKind::User,
            Operation::Patch,
            json!({
                "nickName": "  Babs ",
                "emails": [{"value": "b@w.example", "type": "work"}],
                "phoneNumbers": [{"value": "+1 (555) 010-99"}],
                "x509Certificates": [{"value": "MII="}]
            }),
        );
        assert_eq!(out["externalId"], "b@w.example");
        assert_eq!(out["displayName"], "Babs");
        assert!(out.get("nickName").is_none());
        assert_eq!(out["phoneNumbers"][0]["value"], "+155501099");
        assert!(out.get("x509Certificates").is_none());
    }

    #[test]
    fn a_template_with_a_missing_value_leaves_the_target_alone() {
        let m = build(json!([
            {"action": "set", "attribute": "displayName", "template": "{name.givenName} {name.familyName}"}
        ]));
        let out = run(
            &m,
            ResourceKind::User,
            Operation::Create,
            json!({"displayName": "Old", "name": {"givenName": "A"}}),
        );
        assert_eq!(out["displayName"], "Old");
    }

    #[test]
    fn invalid_rules_are_refused_at_start_naming_the_rule() {
        let bad = [
            json!([{"action": "set", "attribute": "a"}]),
            json!([{"action": "set", "attribute": "a", "value": 1, "template": "x"}]),
            json!([{"action": "copy", "attribute": "a"}]),
            json!([{"action": "lowercase", "attribute": "a", "value": 1}]),
            json!([{"action": "replace", "attribute": "a", "pattern": "("}]),
            json!([{"action": "drop", "attribute": "a", "operations": ["delete"]}]),
            json!([{"action": "drop", "attribute": "a["}]),
        ];
        for rules in bad {
            let c: AttributeMapConfig = serde_json::from_value(json!({ "rules": rules })).unwrap();
            let e = c.build().unwrap_err();
            assert!(e.starts_with("rule 1:"), "{e}");
        }
        assert!(
            serde_json::from_value::<AttributeMapConfig>(
                json!({"rules": [{"action": "nope", "attribute": "a"}]})
            )
            .is_err()
        );
    }
}
