//! An example scimd hook plugin (decide phase): only users whose email addresses all belong to
//! listed domains may be created or changed; anything else is refused with 403.
//!
//! Configuration (the `config` table of the plugin's entry in `scimd.toml`):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `allowed_domains` | (required) | domains, matched case-insensitively; `*.example.com` also matches subdomains |
//! | `require_email` | `false` | refuse users without any email |

#![deny(unsafe_code)]

use scimd_plugin_api::{Context, Denial, Phase, Plugin, Resource, export_plugin};
use serde_json::{Map, Value};

/// The policy plugin.
#[derive(Debug)]
pub struct AllowedDomains {
    domains: Vec<String>,
    require_email: bool,
}

impl Plugin for AllowedDomains {
    const NAME: &'static str = "example-policy";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PHASES: &'static [Phase] = &[Phase::Decide];

    fn new(config: Value) -> Result<Self, String> {
        let table = config
            .as_object()
            .ok_or("the configuration must be a table with allowed_domains")?;
        let mut domains = None;
        let mut require_email = false;
        for (key, value) in table {
            match key.as_str() {
                "allowed_domains" => {
                    let list = value
                        .as_array()
                        .ok_or("allowed_domains must be a list of strings")?;
                    let mut out = Vec::with_capacity(list.len());
                    for d in list {
                        let d = d.as_str().ok_or("allowed_domains must hold strings")?;
                        let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
                        if d.is_empty() {
                            return Err("allowed_domains holds an empty domain".into());
                        }
                        out.push(d);
                    }
                    domains = Some(out);
                }
                "require_email" => {
                    require_email = value.as_bool().ok_or("require_email must be a boolean")?
                }
                other => return Err(format!("unknown configuration key {other:?}")),
            }
        }
        Ok(AllowedDomains {
            domains: domains.ok_or("allowed_domains is required")?,
            require_email,
        })
    }

    fn decide(
        &self,
        cx: &Context,
        _old: Option<&Resource>,
        resource: Option<&mut Map<String, Value>>,
    ) -> Result<(), Denial> {
        let Some(resource) = resource else {
            return Ok(()); // deletes are always allowed
        };
        if cx.resource_type != "User" {
            return Ok(());
        }
        let emails: Vec<&str> = resource
            .get("emails")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.get("value").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        if emails.is_empty() && self.require_email {
            return Err(Denial::forbidden(format!(
                "source {} only accepts users with an email address",
                cx.source
            )));
        }
        for email in emails {
            let domain = email
                .rsplit_once('@')
                .map(|(_, d)| d.trim().to_ascii_lowercase())
                .unwrap_or_default();
            if !self.allows(&domain) {
                return Err(Denial::forbidden(format!(
                    "email domain {domain:?} is not allowed in source {}",
                    cx.source
                )));
            }
        }
        Ok(())
    }
}

impl AllowedDomains {
    fn allows(&self, domain: &str) -> bool {
        !domain.is_empty()
            && self.domains.iter().any(|d| match d.strip_prefix("*.") {
                Some(parent) => {
                    domain == parent
                        || domain
                            .strip_suffix(parent)
                            .is_some_and(|sub| sub.ends_with('.'))
                }
                None => domain == d,
            })
    }
}

export_plugin!(AllowedDomains);

#[cfg(test)]
mod tests {
    use super::*;
    use scimd_plugin_api::Operation;
    use serde_json::json;

    fn cx() -> Context {
        Context {
            source: "s".into(),
            resource_type: "User".into(),
            operation: Operation::Create,
            id: None,
            token_name: None,
            request_id: None,
        }
    }

    fn decide(p: &AllowedDomains, mut r: Value) -> Result<(), Denial> {
        let map = r.as_object_mut().unwrap();
        p.decide(&cx(), None, Some(map))
    }

    #[test]
    fn listed_domains_pass_case_insensitively() {
        let p = AllowedDomains::new(json!({"allowed_domains": ["Example.com"]})).unwrap();
        assert!(decide(&p, json!({"emails": [{"value": "a@EXAMPLE.com"}]})).is_ok());
    }

    #[test]
    fn any_foreign_address_refuses_the_user_with_403() {
        let p = AllowedDomains::new(json!({"allowed_domains": ["example.com"]})).unwrap();
        let e = decide(
            &p,
            json!({"emails": [{"value": "a@example.com"}, {"value": "a@evil.test"}]}),
        )
        .unwrap_err();
        assert_eq!(e.status, 403);
        assert!(e.detail.contains("evil.test"), "{}", e.detail);
        assert!(decide(&p, json!({"emails": [{"value": "no-at-sign"}]})).is_err());
    }

    #[test]
    fn wildcards_match_subdomains_but_not_lookalikes() {
        let p = AllowedDomains::new(json!({"allowed_domains": ["*.example.com"]})).unwrap();
        assert!(p.allows("eu.example.com"));
        assert!(p.allows("example.com"));
        assert!(!p.allows("badexample.com"));
    }

    #[test]
    fn users_without_email_pass_unless_required_and_deletes_always_pass() {
        let p = AllowedDomains::new(json!({"allowed_domains": ["x.org"]})).unwrap();
        assert!(decide(&p, json!({"userName": "a"})).is_ok());
        let strict =
            AllowedDomains::new(json!({"allowed_domains": ["x.org"], "require_email": true}))
                .unwrap();
        assert!(decide(&strict, json!({"userName": "a"})).is_err());
        assert!(strict.decide(&cx(), None, None).is_ok());
        assert!(AllowedDomains::new(json!({})).is_err());
    }
}
