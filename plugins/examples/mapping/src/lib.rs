//! An example scimd hook plugin (map phase): gives every user a `userName` derived from an
//! email address when the identity provider sent none, and lowercases and trims `userName`.
//!
//! Configuration (the `config` table of the plugin's entry in `scimd.toml`):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `derive_from_email` | `true` | fill a missing `userName` from an email |
//! | `email_type` | `"work"` | which email to prefer after the primary one |
//! | `lowercase` | `true` | lowercase and trim `userName` |

#![deny(unsafe_code)]

use scimd_plugin_api::{Context, Denial, Phase, Plugin, Resource, export_plugin};
use serde_json::{Map, Value};

/// The mapping plugin.
#[derive(Debug)]
pub struct EmailUserName {
    derive_from_email: bool,
    email_type: String,
    lowercase: bool,
}

impl Plugin for EmailUserName {
    const NAME: &'static str = "example-mapping";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PHASES: &'static [Phase] = &[Phase::Map];

    fn new(config: Value) -> Result<Self, String> {
        let mut plugin = EmailUserName {
            derive_from_email: true,
            email_type: "work".into(),
            lowercase: true,
        };
        let Some(table) = config.as_object() else {
            return match config {
                Value::Null => Ok(plugin),
                _ => Err("the configuration must be a table".into()),
            };
        };
        for (key, value) in table {
            match key.as_str() {
                "derive_from_email" => plugin.derive_from_email = flag(key, value)?,
                "lowercase" => plugin.lowercase = flag(key, value)?,
                "email_type" => {
                    plugin.email_type = value
                        .as_str()
                        .ok_or("email_type must be a string")?
                        .to_string()
                }
                other => return Err(format!("unknown configuration key {other:?}")),
            }
        }
        Ok(plugin)
    }

    fn map(
        &self,
        cx: &Context,
        _old: Option<&Resource>,
        resource: &mut Map<String, Value>,
    ) -> Result<(), Denial> {
        if cx.resource_type != "User" {
            return Ok(());
        }
        let missing = resource
            .get("userName")
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty());
        if missing
            && self.derive_from_email
            && let Some(email) = self.pick_email(resource)
        {
            resource.insert("userName".into(), Value::String(email));
        }
        if self.lowercase
            && let Some(Value::String(name)) = resource.get_mut("userName")
        {
            *name = name.trim().to_lowercase();
        }
        Ok(())
    }
}

impl EmailUserName {
    /// The primary email, else the first of the configured type, else the first one.
    fn pick_email(&self, resource: &Map<String, Value>) -> Option<String> {
        let emails = resource.get("emails")?.as_array()?;
        let value = |e: &Value| e.get("value").and_then(Value::as_str).map(str::to_string);
        emails
            .iter()
            .find(|e| e.get("primary") == Some(&Value::Bool(true)))
            .and_then(value)
            .or_else(|| {
                emails
                    .iter()
                    .find(|e| {
                        e.get("type")
                            .and_then(Value::as_str)
                            .is_some_and(|t| t.eq_ignore_ascii_case(&self.email_type))
                    })
                    .and_then(value)
            })
            .or_else(|| emails.iter().find_map(value))
    }
}

fn flag(key: &str, value: &Value) -> Result<bool, String> {
    value
        .as_bool()
        .ok_or_else(|| format!("{key} must be true or false"))
}

export_plugin!(EmailUserName);

#[cfg(test)]
mod tests {
    use super::*;
    use scimd_plugin_api::{Call, Operation, Reply, dispatch};
    use serde_json::json;

    fn map(plugin: &EmailUserName, kind: &str, resource: Value) -> Value {
        let call = Call {
            phase: Phase::Map,
            context: Context {
                source: "s".into(),
                resource_type: kind.into(),
                operation: Operation::Create,
                id: None,
                token_name: None,
                request_id: None,
            },
            old: None,
            resource: resource.as_object().cloned(),
            new: None,
            patch: None,
        };
        match dispatch(plugin, call).unwrap() {
            Reply::Continue { resource: Some(r) } => Value::Object(r),
            Reply::Continue { resource: None } => resource,
            Reply::Deny(d) => panic!("{d}"),
        }
    }

    #[test]
    fn missing_user_name_comes_from_the_primary_email_lowercased() {
        let p = EmailUserName::new(Value::Null).unwrap();
        let out = map(
            &p,
            "User",
            json!({"emails": [
                {"value": "Other@Example.com", "type": "home"},
                {"value": " Ada@Example.COM", "type": "work", "primary": true}
            ]}),
        );
        assert_eq!(out["userName"], "ada@example.com");
    }

    #[test]
    fn the_configured_email_type_wins_over_order_without_a_primary() {
        let p = EmailUserName::new(json!({"email_type": "home"})).unwrap();
        let out = map(
            &p,
            "User",
            json!({"emails": [{"value": "w@x.org", "type": "work"}, {"value": "h@x.org", "type": "home"}]}),
        );
        assert_eq!(out["userName"], "h@x.org");
    }

    #[test]
    fn an_existing_user_name_is_only_lowercased_and_groups_are_untouched() {
        let p = EmailUserName::new(json!({})).unwrap();
        let out = map(
            &p,
            "User",
            json!({"userName": "BJensen ", "emails": [{"value": "b@x.org"}]}),
        );
        assert_eq!(out["userName"], "bjensen");
        let g = json!({"displayName": "ADMINS"});
        assert_eq!(map(&p, "Group", g.clone()), g);
    }

    #[test]
    fn unknown_configuration_keys_are_refused() {
        assert!(EmailUserName::new(json!({"lowercse": true})).is_err());
        assert!(EmailUserName::new(json!({"lowercase": "yes"})).is_err());
    }
}
