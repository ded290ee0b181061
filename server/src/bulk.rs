//! Bulk (RFC 7644 §3.7): several operations in one request, with `bulkId` cross-references.
//!
//! A `"bulkId:<id>"` string anywhere in an operation's `data` (including `members[].value`) or
//! its `path` stands for the id of the resource a POST with that `bulkId` creates. Operations run
//! in request order, except that one waiting for a `bulkId` runs as soon as the POST that
//! defines it has succeeded. Operations that can never run — a reference to a `bulkId` no POST
//! defines, to a POST that failed, or a circular chain of references — fail individually.
//! `failOnErrors` stops the run after that many failures; later operations are not performed
//! and not reported. Each operation goes through the same [`Service`] call as its single-request
//! equivalent, so validation, versions and `If-Match` (`version`) behave identically.

use crate::config::{BulkConfig, PatchResponse};
use scimd_core::ScimError;
use scimd_core::schema::ResourceKind;
use scimd_core::service::{Precondition, ProjectionParams, Service};
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};

/// The BulkRequest message URN.
pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// The BulkResponse message URN.
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

const BULK_ID_PREFIX: &str = "bulkId:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// One operation as sent, before references are resolved.
#[derive(Debug)]
struct Op {
    method_text: String,
    method: Result<Method, ScimError>,
    bulk_id: Option<String>,
    version: Option<String>,
    path: String,
    data: Option<Value>,
    refs: BTreeSet<String>,
}

enum State {
    Pending,
    Done(Value),
}

/// Runs a BulkRequest against a source and returns the BulkResponse.
pub async fn run(
    cfg: &BulkConfig,
    svc: &Service,
    patch_response: PatchResponse,
    base: &str,
    body: Value,
) -> Result<Value, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("a BulkRequest must be a JSON object"))?;
    let schema_ok = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .and_then(|(_, v)| v.as_array())
        .is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(BULK_REQUEST_SCHEMA))
            })
        });
    if !schema_ok {
        return Err(ScimError::invalid_syntax(format!(
            "a BulkRequest must list the schema {BULK_REQUEST_SCHEMA}"
        )));
    }
    let fail_on_errors = match field(obj, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Some(n),
            _ => {
                return Err(ScimError::invalid_value(
                    "failOnErrors must be a positive integer",
                ));
            }
        },
    };
    let operations = field(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("a BulkRequest needs an \"Operations\" array"))?;
    if operations.len() as u64 > cfg.max_operations {
        return Err(ScimError::new(
            413,
            format!(
                "The request has {} operations; the maximum is {} (maxOperations)",
                operations.len(),
                cfg.max_operations
            ),
        ));
    }
    let ops: Vec<Op> = operations.iter().map(parse_op).collect::<Result<_, _>>()?;

    // Which POST defines each bulkId; a duplicate definition is an error of the later POST.
    let mut defined: HashMap<String, usize> = HashMap::new();
    let mut duplicate = vec![false; ops.len()];
    for (i, op) in ops.iter().enumerate() {
        if let (Ok(Method::Post), Some(b)) = (&op.method, &op.bulk_id) {
            if defined.contains_key(b) {
                duplicate[i] = true;
            } else {
                defined.insert(b.clone(), i);
            }
        }
    }

    let mut states: Vec<State> = ops.iter().map(|_| State::Pending).collect();
    let mut resolved: HashMap<String, String> = HashMap::new();
    let mut failed_ids: BTreeSet<String> = BTreeSet::new();
    let mut errors = 0u64;
    let mut stopped = false;
    'passes: loop {
        let mut progress = false;
        for i in 0..ops.len() {
            if !matches!(states[i], State::Pending) {
                continue;
            }
            let op = &ops[i];
            let outcome = if duplicate[i] {
                Some(Err(ScimError::invalid_value(format!(
                    "bulkId {:?} is used by an earlier POST",
                    op.bulk_id.as_deref().unwrap_or_default()
                ))))
            } else if let Some(r) = op.refs.iter().find(|r| !defined.contains_key(*r)) {
                Some(Err(ScimError::invalid_value(format!(
                    "bulkId {r:?} is not defined by any POST in this request"
                ))))
            } else if let Some(r) = op.refs.iter().find(|r| failed_ids.contains(*r)) {
                Some(Err(ScimError::new(
                    409,
                    format!("the operation that defines bulkId {r:?} failed"),
                )))
            } else if op.refs.iter().all(|r| resolved.contains_key(r)) {
                Some(execute(svc, patch_response, base, op, &resolved).await)
            } else {
                None
            };
            let Some(outcome) = outcome else {
                continue;
            };
            progress = true;
            let result = match outcome {
                Ok((status, location, version, id)) => {
                    if let (Some(b), Some(id)) = (&op.bulk_id, id) {
                        resolved.insert(b.clone(), id);
                    }
                    success(op, status, location, version)
                }
                Err(e) => {
                    if let (Ok(Method::Post), Some(b)) = (&op.method, &op.bulk_id)
                        && !duplicate[i]
                    {
                        failed_ids.insert(b.clone());
                    }
                    errors += 1;
                    failure(op, &e)
                }
            };
            states[i] = State::Done(result);
            if fail_on_errors.is_some_and(|n| errors >= n) {
                stopped = true;
                break 'passes;
            }
        }
        if !progress {
            break;
        }
    }
    if !stopped {
        // Whatever still waits is part of, or depends on, a circle of references.
        for (i, op) in ops.iter().enumerate() {
            if matches!(states[i], State::Pending) {
                let e = ScimError::new(
                    409,
                    "circular bulkId references: the operation depends on itself through other operations",
                );
                states[i] = State::Done(failure(op, &e));
                errors += 1;
                if fail_on_errors.is_some_and(|n| errors >= n) {
                    break;
                }
            }
        }
    }
    let results: Vec<Value> = states
        .into_iter()
        .filter_map(|s| match s {
            State::Done(v) => Some(v),
            State::Pending => None,
        })
        .collect();
    Ok(json!({
        "schemas": [BULK_RESPONSE_SCHEMA],
        "Operations": results,
    }))
}

/// A key of a JSON object, case-insensitively (clients differ on `Operations`/`operations`).
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn parse_op(v: &Value) -> Result<Op, ScimError> {
    let obj = v
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("each bulk operation must be a JSON object"))?;
    let text = |name: &str| -> Result<Option<String>, ScimError> {
        match field(obj, name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ScimError::invalid_syntax(format!(
                "bulk operation {name} must be a string"
            ))),
        }
    };
    let method_text = text("method")?.unwrap_or_default();
    let method = match method_text.to_ascii_uppercase().as_str() {
        "POST" => Ok(Method::Post),
        "PUT" => Ok(Method::Put),
        "PATCH" => Ok(Method::Patch),
        "DELETE" => Ok(Method::Delete),
        "" => Err(ScimError::invalid_syntax("a bulk operation needs a method")),
        m => Err(ScimError::invalid_value(format!(
            "bulk operations support POST, PUT, PATCH and DELETE, not {m}"
        ))),
    };
    let path = text("path")?.unwrap_or_default();
    let data = field(obj, "data").filter(|d| !d.is_null()).cloned();
    let mut refs = BTreeSet::new();
    if let Some(d) = &data {
        collect_refs(d, &mut refs, 0);
    }
    if let Some(r) = path
        .rsplit('/')
        .next()
        .and_then(|seg| seg.strip_prefix(BULK_ID_PREFIX))
    {
        refs.insert(r.to_string());
    }
    Ok(Op {
        method_text,
        method,
        bulk_id: text("bulkId")?,
        version: text("version")?,
        path,
        data,
        refs,
    })
}

/// Every `bulkId:<id>` string in a value. Depth is bounded by the JSON parser's own limit, and
/// this stops descending well before it anyway.
fn collect_refs(v: &Value, out: &mut BTreeSet<String>, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        Value::String(s) => {
            if let Some(r) = s.strip_prefix(BULK_ID_PREFIX) {
                out.insert(r.to_string());
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out, depth + 1)),
        Value::Object(m) => m.values().for_each(|x| collect_refs(x, out, depth + 1)),
        _ => {}
    }
}

fn substitute(v: &mut Value, resolved: &HashMap<String, String>, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix(BULK_ID_PREFIX).and_then(|r| resolved.get(r)) {
                *s = id.clone();
            }
        }
        Value::Array(a) => a
            .iter_mut()
            .for_each(|x| substitute(x, resolved, depth + 1)),
        Value::Object(m) => m
            .values_mut()
            .for_each(|x| substitute(x, resolved, depth + 1)),
        _ => {}
    }
}

/// `(kind, id)` of a path: `/Users` or `/Users/{id}`.
fn parse_path(
    path: &str,
    resolved: &HashMap<String, String>,
) -> Result<(ResourceKind, Option<String>), ScimError> {
    let trimmed = path.trim().trim_matches('/');
    let mut parts = trimmed.splitn(2, '/');
    let kind = parts
        .next()
        .and_then(ResourceKind::parse)
        .ok_or_else(|| ScimError::invalid_value(format!("unknown bulk operation path {path:?}")))?;
    let id = match parts.next() {
        None | Some("") => None,
        Some(id) if id.contains('/') => {
            return Err(ScimError::invalid_value(format!(
                "unknown bulk operation path {path:?}"
            )));
        }
        Some(id) => Some(match id.strip_prefix(BULK_ID_PREFIX) {
            Some(r) => resolved
                .get(r)
                .cloned()
                .ok_or_else(|| ScimError::invalid_value(format!("bulkId {r:?} is not resolved")))?,
            None => id.to_string(),
        }),
    };
    Ok((kind, id))
}

/// `(status, location, version, created id)`.
type Done = (u16, Option<String>, Option<String>, Option<String>);

async fn execute(
    svc: &Service,
    patch_response: PatchResponse,
    base: &str,
    op: &Op,
    resolved: &HashMap<String, String>,
) -> Result<Done, ScimError> {
    let method = op.method.clone()?;
    let (kind, id) = parse_path(&op.path, resolved)?;
    let pre = Precondition::if_match(op.version.as_deref());
    let data = || -> Result<Value, ScimError> {
        let mut d = op.data.clone().ok_or_else(|| {
            ScimError::invalid_syntax(format!("a bulk {} needs data", method.as_str()))
        })?;
        if !d.is_object() {
            return Err(ScimError::invalid_syntax(
                "bulk operation data must be an object",
            ));
        }
        substitute(&mut d, resolved, 0);
        Ok(d)
    };
    let need_id = || {
        id.clone().ok_or_else(|| {
            ScimError::invalid_value(format!(
                "a bulk {} needs a path with a resource id",
                method.as_str()
            ))
        })
    };
    let none = ProjectionParams::default();
    match method {
        Method::Post => {
            if id.is_some() {
                return Err(ScimError::invalid_value(
                    "a bulk POST path names the resource type only",
                ));
            }
            if op.bulk_id.is_none() {
                return Err(ScimError::invalid_syntax("a bulk POST needs a bulkId"));
            }
            let r = svc.create(base, kind, &data()?, none).await?;
            Ok((201, Some(r.location), Some(r.version.etag()), Some(r.id)))
        }
        Method::Put => {
            let r = svc
                .replace(base, kind, &need_id()?, &data()?, &pre, none)
                .await?;
            Ok((200, Some(r.location), Some(r.version.etag()), None))
        }
        Method::Patch => {
            let r = svc
                .patch(base, kind, &need_id()?, &data()?, &pre, none)
                .await?;
            let status = match patch_response {
                PatchResponse::Resource => 200,
                PatchResponse::NoContent => 204,
            };
            Ok((status, Some(r.location), Some(r.version.etag()), None))
        }
        Method::Delete => {
            let id = need_id()?;
            svc.delete(kind, &id, &pre).await?;
            Ok((
                204,
                Some(format!("{base}/{}/{id}", kind.endpoint())),
                None,
                None,
            ))
        }
    }
}

fn success(op: &Op, status: u16, location: Option<String>, version: Option<String>) -> Value {
    let mut m = Map::new();
    m.insert("method".into(), op.method_text.to_ascii_uppercase().into());
    if let Some(b) = &op.bulk_id {
        m.insert("bulkId".into(), b.clone().into());
    }
    if let Some(v) = version {
        m.insert("version".into(), v.into());
    }
    if let Some(l) = location {
        m.insert("location".into(), l.into());
    }
    m.insert("status".into(), status.to_string().into());
    Value::Object(m)
}

fn failure(op: &Op, e: &ScimError) -> Value {
    let mut m = Map::new();
    m.insert("method".into(), op.method_text.to_ascii_uppercase().into());
    if let Some(b) = &op.bulk_id {
        m.insert("bulkId".into(), b.clone().into());
    }
    m.insert("status".into(), e.status.to_string().into());
    m.insert("response".into(), e.to_json());
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_anywhere_in_data_and_path() {
        let op = parse_op(&json!({
            "method": "PATCH", "path": "/Groups/bulkId:g",
            "data": {"Operations": [{"op": "add", "path": "members",
                "value": [{"value": "bulkId:u1"}, {"value": "bulkId:u2"}]}]}
        }))
        .unwrap();
        assert_eq!(
            op.refs.into_iter().collect::<Vec<_>>(),
            vec!["g".to_string(), "u1".into(), "u2".into()]
        );
    }

    #[test]
    fn substitution_replaces_only_resolved_references() {
        let mut v =
            json!({"members": [{"value": "bulkId:a"}, {"value": "bulkId:b"}], "x": "bulkIdless"});
        let resolved = HashMap::from([("a".to_string(), "id-a".to_string())]);
        substitute(&mut v, &resolved, 0);
        assert_eq!(v["members"][0]["value"], "id-a");
        assert_eq!(v["members"][1]["value"], "bulkId:b");
        assert_eq!(v["x"], "bulkIdless");
    }

    #[test]
    fn paths_name_a_type_and_optionally_an_id() {
        let none = HashMap::new();
        assert_eq!(
            parse_path("/Users", &none).unwrap(),
            (ResourceKind::User, None)
        );
        assert_eq!(
            parse_path("/Groups/abc", &none).unwrap(),
            (ResourceKind::Group, Some("abc".into()))
        );
        assert!(parse_path("/Widgets", &none).is_err());
        assert!(parse_path("/Users/a/b", &none).is_err());
    }
}
