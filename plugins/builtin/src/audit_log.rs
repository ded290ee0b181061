//! `audit_log`: one JSON line per successful write, with what changed.
//!
//! ```json
//! {"time":"2026-11-28T15:00:00Z","source":"default","resourceType":"User","operation":"replace",
//!  "id":"2819c223","version":"W/\"4\"","tokenName":"okta","requestId":"9f1c…",
//!  "changes":[{"path":"userName","old":"bjensen","new":"babs"},
//!             {"path":"emails","added":[{"value":"b@x.org"}],"removed":[]},
//!             {"path":"password","redacted":true}]}
//! ```
//!
//! Changes are listed per attribute; single-valued complex attributes (`name`) and extension
//! attributes per sub-attribute (`name.givenName`, `urn:…:User:department`); multi-valued
//! attributes as the elements added and removed, so a membership change of a large group
//! records the members that changed, not the whole list. A create lists every attribute as
//! new, a delete every attribute as old. Values of `password` and of every attribute listed in
//! `redact` are never written: such a change appears as `{"path": …, "redacted": true}`. A
//! user's `groups` is derived from group writes and is recorded there.
//!
//! Lines are appended with one `write` each, so concurrent writers never interleave within a
//! line; the file is opened once at start-up (create/append).

use async_trait::async_trait;
use scimd_core::hooks::{Hook, Operation, Phase, ReactError, Scope, WriteRecord};
use scimd_core::resource::format_time;
use scimd_core::schema::ResourceKind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Attributes whose values the audit log never writes, whatever the configuration says.
pub const ALWAYS_REDACTED: &[&str] = &["password"];

/// `type = "audit_log"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditLogConfig {
    /// A name for logs; defaults to `audit_log`.
    #[serde(default)]
    pub name: Option<String>,
    /// The JSON Lines file; relative paths are resolved against the configuration file's
    /// directory. Created if missing, appended to otherwise.
    pub path: PathBuf,
    /// More attributes (names or paths, case-insensitive) whose values are never written, in
    /// addition to `password`.
    #[serde(default)]
    pub redact: Vec<String>,
    /// Resource types to record (`User`, `Group`); empty = both.
    #[serde(default)]
    pub resource_types: Vec<ResourceKind>,
    /// Operations to record; empty = all.
    #[serde(default)]
    pub operations: Vec<Operation>,
}

/// The built `audit_log` hook.
#[derive(Debug)]
pub struct AuditLog {
    name: String,
    path: PathBuf,
    file: Mutex<File>,
    redact: Vec<String>,
    scope: Scope,
}

impl AuditLogConfig {
    /// Opens the file (`path` already resolved) and builds the hook.
    pub fn build(&self, path: &Path) -> Result<AuditLog, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open audit log {}: {e}", path.display()))?;
        let mut redact: Vec<String> = ALWAYS_REDACTED.iter().map(|s| s.to_string()).collect();
        redact.extend(self.redact.iter().map(|s| s.trim().to_string()));
        Ok(AuditLog {
            name: self.name.clone().unwrap_or_else(|| "audit_log".into()),
            path: path.to_path_buf(),
            file: Mutex::new(file),
            redact,
            scope: Scope {
                resource_types: self.resource_types.clone(),
                operations: self.operations.clone(),
            },
        })
    }
}

impl AuditLog {
    /// The audit record of a write.
    pub fn record(&self, w: &WriteRecord) -> Value {
        let cx = &w.context;
        let empty = Map::new();
        let old = w.old.as_ref().map_or(&empty, |r| &r.attrs);
        let new = w.new.as_ref().map_or(&empty, |r| &r.attrs);
        let skip: &[&str] = match cx.kind {
            ResourceKind::User => &["groups"],
            ResourceKind::Group => &[],
        };
        let mut out = Map::new();
        out.insert(
            "time".into(),
            json!(format_time(scimd_core::resource::now())),
        );
        out.insert("source".into(), json!(cx.source));
        out.insert("resourceType".into(), json!(cx.kind.name()));
        out.insert("operation".into(), json!(cx.operation));
        out.insert("id".into(), json!(cx.id));
        if let Some(v) = w.new.as_ref().or(w.old.as_ref()) {
            out.insert("version".into(), json!(v.meta.version.etag()));
        }
        if let Some(t) = &cx.token_name {
            out.insert("tokenName".into(), json!(t));
        }
        if let Some(r) = &cx.request_id {
            out.insert("requestId".into(), json!(r));
        }
        out.insert(
            "changes".into(),
            Value::Array(diff(old, new, &self.redact, skip)),
        );
        Value::Object(out)
    }
}

fn redacted(path: &str, name: &str, redact: &[String]) -> bool {
    redact
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name) || r.eq_ignore_ascii_case(path))
}

/// The changes from `old` to `new` (see the module docs). `skip` names top-level attributes
/// that are not recorded.
pub fn diff(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    redact: &[String],
    skip: &[&str],
) -> Vec<Value> {
    let mut out = Vec::new();
    let keys = old
        .keys()
        .chain(new.keys().filter(|k| !old.contains_key(*k)));
    for key in keys {
        if skip.iter().any(|s| s.eq_ignore_ascii_case(key)) {
            continue;
        }
        let (o, n) = (old.get(key), new.get(key));
        let is_extension = key.len() > 4 && key[..4].eq_ignore_ascii_case("urn:");
        if is_extension {
            let empty = Map::new();
            let om = o.and_then(Value::as_object).unwrap_or(&empty);
            let nm = n.and_then(Value::as_object).unwrap_or(&empty);
            for sub in om.keys().chain(nm.keys().filter(|k| !om.contains_key(*k))) {
                let path = format!("{key}:{sub}");
                change(&mut out, &path, sub, om.get(sub), nm.get(sub), redact);
            }
        } else {
            change(&mut out, key, key, o, n, redact);
        }
    }
    out
}

fn change(
    out: &mut Vec<Value>,
    path: &str,
    name: &str,
    o: Option<&Value>,
    n: Option<&Value>,
    redact: &[String],
) {
    if o == n {
        return;
    }
    if redacted(path, name, redact) {
        out.push(json!({"path": path, "redacted": true}));
        return;
    }
    let empty = Map::new();
    fn as_object<'a>(
        v: Option<&'a Value>,
        empty: &'a Map<String, Value>,
    ) -> Option<&'a Map<String, Value>> {
        match v {
            Some(Value::Object(m)) => Some(m),
            Some(Value::Null) | None => Some(empty),
            _ => None,
        }
    }
    let complex = matches!(o, Some(Value::Object(_))) || matches!(n, Some(Value::Object(_)));
    match (o, n) {
        // Complex on either side (the other absent): per sub-attribute, so that redacted
        // sub-attributes stay redacted when the whole attribute comes or goes.
        (Some(_), _) | (_, Some(_))
            if complex
                && let (Some(om), Some(nm)) = (as_object(o, &empty), as_object(n, &empty)) =>
        {
            for sub in om.keys().chain(nm.keys().filter(|k| !om.contains_key(*k))) {
                let p = format!("{path}.{sub}");
                let (so, sn) = (om.get(sub), nm.get(sub));
                if so == sn {
                    continue;
                }
                if redacted(&p, sub, redact) {
                    out.push(json!({"path": p, "redacted": true}));
                    continue;
                }
                out.push(scalar_change(&p, so, sn));
            }
        }
        (o, n) if matches!(o, Some(Value::Array(_))) || matches!(n, Some(Value::Array(_))) => {
            let as_list = |v: Option<&Value>| match v {
                Some(Value::Array(a)) => a.clone(),
                Some(Value::Null) | None => Vec::new(),
                Some(other) => vec![other.clone()],
            };
            let (ol, nl) = (as_list(o), as_list(n));
            let key = |v: &Value| v.to_string();
            let oset: HashSet<String> = ol.iter().map(key).collect();
            let nset: HashSet<String> = nl.iter().map(key).collect();
            let added: Vec<&Value> = nl.iter().filter(|v| !oset.contains(&key(v))).collect();
            let removed: Vec<&Value> = ol.iter().filter(|v| !nset.contains(&key(v))).collect();
            if !added.is_empty() || !removed.is_empty() {
                out.push(json!({"path": path, "added": added, "removed": removed}));
            }
        }
        (o, n) => out.push(scalar_change(path, o, n)),
    }
}

fn scalar_change(path: &str, o: Option<&Value>, n: Option<&Value>) -> Value {
    let mut m = Map::new();
    m.insert("path".into(), json!(path));
    if let Some(o) = o {
        m.insert("old".into(), o.clone());
    }
    if let Some(n) = n {
        m.insert("new".into(), n.clone());
    }
    Value::Object(m)
}

#[async_trait]
impl Hook for AuditLog {
    fn name(&self) -> &str {
        &self.name
    }

    fn applies(&self, phase: Phase, kind: ResourceKind, operation: Operation) -> bool {
        phase == Phase::React && self.scope.contains(kind, operation)
    }

    async fn react(&self, record: &WriteRecord) -> Result<(), ReactError> {
        let mut line =
            serde_json::to_vec(&self.record(record)).map_err(|e| ReactError::new(e.to_string()))?;
        line.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(&line).map_err(|e| {
            ReactError::new(format!(
                "cannot write audit log {}: {e}",
                self.path.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimd_core::hooks::{HookContext, RequestInfo};
    use scimd_core::resource::{Meta, Resource, Version};

    fn res(version: u64, attrs: Value) -> Resource {
        let t = scimd_core::resource::now();
        Resource {
            id: "u1".into(),
            kind: ResourceKind::User,
            meta: Meta {
                created: t,
                last_modified: t,
                version: Version(version),
            },
            attrs: attrs.as_object().cloned().unwrap(),
        }
    }

    const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    #[test]
    fn diffs_list_scalars_sub_attributes_extensions_and_element_changes() {
        let old = json!({
            "userName": "a", "name": {"givenName": "A", "familyName": "F"},
            "emails": [{"value": "a@x"}, {"value": "keep@x"}],
            ENT: {"department": "R&D"},
            "groups": [{"value": "g"}]
        });
        let new = json!({
            "userName": "b", "name": {"givenName": "B", "familyName": "F"},
            "emails": [{"value": "keep@x"}, {"value": "new@x"}],
            ENT: {"department": "Ops", "costCenter": "1"}
        });
        let d = diff(
            old.as_object().unwrap(),
            new.as_object().unwrap(),
            &[],
            &["groups"],
        );
        assert_eq!(
            d,
            vec![
                json!({"path": "userName", "old": "a", "new": "b"}),
                json!({"path": "name.givenName", "old": "A", "new": "B"}),
                json!({"path": "emails", "added": [{"value": "new@x"}], "removed": [{"value": "a@x"}]}),
                json!({"path": format!("{ENT}:department"), "old": "R&D", "new": "Ops"}),
                json!({"path": format!("{ENT}:costCenter"), "new": "1"}),
            ]
        );
    }

    #[test]
    fn passwords_and_redacted_attributes_never_reach_the_file() {
        let dir = std::env::temp_dir().join(format!("scimd-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let _ = std::fs::remove_file(&path);
        let c = AuditLogConfig {
            name: None,
            path: path.clone(),
            redact: vec!["name.familyName".into()],
            resource_types: vec![],
            operations: vec![],
        };
        let log = c.build(&path).unwrap();
        let mut cx = HookContext::new(
            "s",
            ResourceKind::User,
            Operation::Replace,
            Some("u1".into()),
            &RequestInfo {
                token_name: Some("okta".into()),
                request_id: Some("r1".into()),
            },
        );
        let record = WriteRecord {
            context: cx.clone(),
            old: Some(res(
                1,
                json!({"userName": "a", "password": "hunter2", "name": {"familyName": "Old"}}),
            )),
            new: Some(res(
                2,
                json!({"userName": "a", "password": "s3cret!", "name": {"familyName": "New"}}),
            )),
            patch: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(log.react(&record)).unwrap();
        cx.operation = Operation::Delete;
        let deleted = WriteRecord {
            context: cx,
            old: record.new.clone(),
            new: None,
            patch: None,
        };
        rt.block_on(log.react(&deleted)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("s3cret!"),
            "{text}"
        );
        assert!(!text.contains("Old") && !text.contains("New"), "{text}");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["tokenName"], "okta");
        assert_eq!(lines[0]["requestId"], "r1");
        assert_eq!(lines[0]["version"], "W/\"2\"");
        assert_eq!(
            lines[0]["changes"],
            json!([{"path": "password", "redacted": true}, {"path": "name.familyName", "redacted": true}])
        );
        assert_eq!(lines[1]["operation"], "delete");
        assert_eq!(
            lines[1]["changes"][0],
            json!({"path": "userName", "old": "a"})
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
