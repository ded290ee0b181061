//! Parsing a PatchOp body into canonical, schema-resolved operations.

use super::{MAX_OPERATIONS, PATCH_OP_SCHEMA, PatchOp, PatchOpKind, PatchPath};
use crate::error::ScimError;
use crate::filter::Filter;
use crate::normalize::normalize_value;
use crate::path::{AttrPath, MAX_PATH_LEN, is_attr_name, starts_with_urn};
use crate::schema::{AttrType, AttributeDef, Extension, Mutability, ResourceTypeDef};
use serde_json::{Map, Value};

/// Parses the whole message.
pub(super) fn parse_body(body: &Value, rt: &ResourceTypeDef) -> Result<Vec<PatchOp>, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("A PATCH body must be a JSON object"))?;
    let has_schema = get_ci(obj, "schemas")?
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .any(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
        });
    if !has_schema {
        return Err(ScimError::invalid_syntax(format!(
            "A PATCH body must list {PATCH_OP_SCHEMA} in \"schemas\""
        )));
    }
    let ops = match get_ci(obj, "Operations")? {
        Some(Value::Array(ops)) => ops,
        Some(_) => {
            return Err(ScimError::invalid_syntax(
                "\"Operations\" must be an array of operations",
            ));
        }
        None => {
            return Err(ScimError::invalid_syntax(
                "A PATCH body needs \"Operations\"",
            ));
        }
    };
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax(
            "\"Operations\" must hold at least one operation",
        ));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_syntax(format!(
            "A PATCH request may hold at most {MAX_OPERATIONS} operations"
        )));
    }
    let mut out = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        parse_op(rt, op, &mut out).map_err(|e| in_operation(e, i))?;
    }
    Ok(out)
}

/// Prefixes an error's detail with the operation it is about.
pub(super) fn in_operation(mut e: ScimError, index: usize) -> ScimError {
    e.detail = format!("Operations[{index}]: {}", e.detail);
    e
}

/// Looks a key up case-insensitively; two keys that differ only in case are ambiguous.
fn get_ci<'v>(obj: &'v Map<String, Value>, key: &str) -> Result<Option<&'v Value>, ScimError> {
    let mut found = None;
    for (k, v) in obj {
        if k.eq_ignore_ascii_case(key) {
            if found.is_some() {
                return Err(ScimError::invalid_syntax(format!(
                    "\"{key}\" is given more than once"
                )));
            }
            found = Some(v);
        }
    }
    Ok(found)
}

fn parse_op(rt: &ResourceTypeDef, op: &Value, out: &mut Vec<PatchOp>) -> Result<(), ScimError> {
    let obj = op
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("An operation must be a JSON object"))?;
    let op_kind = get_ci(obj, "op")?
        .and_then(Value::as_str)
        .and_then(PatchOpKind::parse)
        .ok_or_else(|| {
            ScimError::invalid_syntax("\"op\" must be \"add\", \"remove\" or \"replace\"")
        })?;
    let path = match get_ci(obj, "path")? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim()),
        Some(_) => return Err(ScimError::invalid_path("\"path\" must be a string")),
    };
    let value = get_ci(obj, "value")?;
    match (op_kind, path, value) {
        (PatchOpKind::Remove, None, _) => {
            Err(ScimError::no_target("A remove operation needs a \"path\""))
        }
        (PatchOpKind::Add | PatchOpKind::Replace, _, None) => Err(ScimError::invalid_syntax(
            format!("An {} operation needs a \"value\"", op_kind.as_str()),
        )),
        (_, None, Some(value)) => expand_resource(rt, op_kind, value, out),
        (_, Some(path), value) => match resolve_path(rt, path)? {
            Target::Resource => match value {
                Some(value) if op_kind != PatchOpKind::Remove => {
                    expand_resource(rt, op_kind, value, out)
                }
                _ => Err(ScimError::invalid_path(
                    "The resource itself cannot be removed with PATCH",
                )),
            },
            Target::Extension(ext) => {
                push_extension(rt, op_kind, ext, value, out)?;
                Ok(())
            }
            Target::Attr(t) => {
                if let Some(def) = t.read_only() {
                    return Err(ScimError::mutability(format!(
                        "Attribute {} is readOnly",
                        def.name
                    )));
                }
                let value = match (op_kind, value) {
                    (PatchOpKind::Remove, Some(v))
                        if t.attr.multi_valued
                            && t.filter.is_none()
                            && t.sub.is_none()
                            && !is_unassigned(v) =>
                    {
                        Some(t.normalize(rt, op_kind, v)?)
                    }
                    (PatchOpKind::Remove, _) => None,
                    (_, Some(v)) => Some(t.normalize(rt, op_kind, v)?),
                    (_, None) => None,
                };
                out.push(PatchOp {
                    op: op_kind,
                    path: Some(t.into_path()),
                    value,
                });
                Ok(())
            }
        },
    }
}

/// Canonicalizes the sub-attributes a merge value names: canonical names, types checked,
/// readOnly ones dropped, `null` kept (it unassigns the sub-attribute). A non-object (e.g. a
/// bare string for `manager`) is a whole value and goes through
/// [`normalize_value`] as such.
fn normalize_partial(
    rt: &ResourceTypeDef,
    def: &AttributeDef,
    v: &Value,
) -> Result<Value, ScimError> {
    let Value::Object(obj) = v else {
        return normalize_value(rt, def, v, false);
    };
    let mut out = Map::new();
    for (k, sv) in obj {
        let sub = def.sub_attribute(k).ok_or_else(|| {
            ScimError::invalid_syntax(format!("Unknown attribute \"{}.{k}\"", def.name))
        })?;
        if sub.mutability == Mutability::ReadOnly {
            continue;
        }
        if out.contains_key(&sub.name) {
            return Err(ScimError::invalid_syntax(format!(
                "Attribute {}.{} is given more than once",
                def.name, sub.name
            )));
        }
        let nv = if sv.is_null() {
            Value::Null
        } else {
            normalize_value(rt, sub, sv, sub.multi_valued)?
        };
        out.insert(sub.name.clone(), nv);
    }
    Ok(Value::Object(out))
}

/// Whether a value is unassigned in the sense of RFC 7643 §2.5.
fn is_unassigned(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// What a path designates.
enum Target<'a> {
    /// The resource itself (a path that is the core schema URN).
    Resource,
    /// A whole extension object.
    Extension(&'a Extension),
    /// An attribute, possibly filtered, possibly a sub-attribute.
    Attr(AttrTarget<'a>),
}

/// A resolved attribute target.
pub(super) struct AttrTarget<'a> {
    /// The canonical URN of the extension that defines the attribute (`None` for core).
    pub urn: Option<&'a str>,
    /// The top-level attribute.
    pub attr: &'a AttributeDef,
    /// The resolved value filter.
    pub filter: Option<Filter>,
    /// The sub-attribute (after the filter, or `attr.sub`).
    pub sub: Option<&'a AttributeDef>,
}

impl AttrTarget<'_> {
    /// The first readOnly definition along the path.
    fn read_only(&self) -> Option<&AttributeDef> {
        [Some(self.attr), self.sub]
            .into_iter()
            .flatten()
            .find(|d| d.mutability == Mutability::ReadOnly)
    }

    /// Canonicalizes an operation value for this target. A value for a whole multi-valued
    /// attribute may be an array or one value (RFC 7644 §3.5.2.1: "a new value is added"); a
    /// value for the values a filter selects is one value (a one-element array is unwrapped).
    /// A value that is merged into an existing complex value (`add`/`replace` of a
    /// single-valued complex attribute, `add` to filtered values) may name only some
    /// sub-attributes, so it is canonicalized sub-attribute by sub-attribute; the merged
    /// result is checked as a whole when the operation is applied.
    fn normalize(
        &self,
        rt: &ResourceTypeDef,
        op: PatchOpKind,
        v: &Value,
    ) -> Result<Value, ScimError> {
        if v.is_null() {
            return Ok(Value::Null);
        }
        if let Some(sub) = self.sub {
            return normalize_value(rt, sub, v, sub.multi_valued);
        }
        let def = self.attr;
        let merged = def.attr_type == AttrType::Complex
            && op != PatchOpKind::Remove
            && (!def.multi_valued || (op == PatchOpKind::Add && self.filter.is_some()));
        if !def.multi_valued {
            return if merged {
                normalize_partial(rt, def, v)
            } else {
                normalize_value(rt, def, v, false)
            };
        }
        let single = match v {
            Value::Array(items) if self.filter.is_some() && items.len() == 1 => &items[0],
            Value::Array(_) if self.filter.is_none() => {
                return normalize_value(rt, def, v, true);
            }
            other => other,
        };
        let one = if merged {
            normalize_partial(rt, def, single)?
        } else {
            normalize_value(rt, def, single, false)?
        };
        Ok(match (self.filter.is_some(), one) {
            (_, Value::Null) => Value::Null,
            (true, one) => one,
            (false, one) => Value::Array(vec![one]),
        })
    }

    fn into_path(self) -> PatchPath {
        let attr = AttrPath {
            urn: self.urn.map(str::to_string),
            name: self.attr.name.clone(),
            sub: None,
        };
        let sub = self.sub.map(|s| s.name.clone());
        match self.filter {
            Some(filter) => PatchPath {
                attr,
                filter: Some(filter),
                sub,
            },
            None => PatchPath::attr(AttrPath { sub, ..attr }),
        }
    }
}

/// Resolves a `path` string.
fn resolve_path<'a>(rt: &'a ResourceTypeDef, s: &str) -> Result<Target<'a>, ScimError> {
    if starts_with_urn(s) {
        if let Some(ext) = rt.extension(s) {
            return Ok(Target::Extension(ext));
        }
        if rt.schema.id.eq_ignore_ascii_case(s) {
            return Ok(Target::Resource);
        }
    }
    let (attr_text, bracket) = split_value_path(s)?;
    let attr_path = AttrPath::parse(attr_text)?;
    if bracket.is_some() && attr_path.sub.is_some() {
        return Err(ScimError::invalid_path(format!(
            "A value filter must follow a top-level attribute in {s:?}"
        )));
    }
    let resolved = rt
        .resolve(&attr_path)
        .ok_or_else(|| ScimError::invalid_path(format!("Unknown attribute {attr_text:?}")))?;
    let urn = (!resolved.is_core).then_some(resolved.schema);
    let Some((filter_text, sub_text)) = bracket else {
        return Ok(Target::Attr(AttrTarget {
            urn,
            attr: resolved.attr,
            filter: None,
            sub: resolved.sub,
        }));
    };
    let attr = resolved.attr;
    if !attr.multi_valued {
        return Err(ScimError::invalid_path(format!(
            "A value filter needs a multi-valued attribute; {} is single-valued",
            attr.name
        )));
    }
    let canonical = resolved.canonical_path();
    let filter = match Filter::parse(&format!("{canonical}[{filter_text}]"))?.resolve(rt)? {
        Filter::ValuePath { filter, .. } => *filter,
        _ => {
            return Err(ScimError::invalid_path(format!(
                "Malformed value filter in {s:?}"
            )));
        }
    };
    let sub = match sub_text {
        Some(name) => Some(attr.sub_attribute(name).ok_or_else(|| {
            ScimError::invalid_path(format!("{} has no sub-attribute {name:?}", attr.name))
        })?),
        None => None,
    };
    Ok(Target::Attr(AttrTarget {
        urn,
        attr,
        filter: Some(filter),
        sub,
    }))
}

/// The text of a value filter and the sub-attribute name after it.
type Bracket<'a> = (&'a str, Option<&'a str>);

/// Splits `attr[filter].sub` into `attr` and `(filter, sub)`. The closing bracket is the first
/// `]` outside a JSON string, so filter values may contain `]`; a value filter cannot nest
/// another one (RFC 7644 §3.10 `valFilter`), so an unquoted `[` inside is malformed.
fn split_value_path(s: &str) -> Result<(&str, Option<Bracket<'_>>), ScimError> {
    let malformed = || ScimError::invalid_path(format!("Malformed path {s:?}"));
    let Some(open) = s.find('[') else {
        if s.contains(']') {
            return Err(malformed());
        }
        return Ok((s, None));
    };
    let mut in_string = false;
    let mut escaped = false;
    let mut close = None;
    for (i, c) in s[open + 1..].char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else {
            match c {
                '"' => in_string = true,
                '[' => return Err(malformed()),
                ']' => {
                    close = Some(open + 1 + i);
                    break;
                }
                _ => {}
            }
        }
    }
    let close = close.ok_or_else(malformed)?;
    let rest = &s[close + 1..];
    let sub = if rest.is_empty() {
        None
    } else {
        match rest.strip_prefix('.') {
            Some(name) if is_attr_name(name) && name.len() <= MAX_PATH_LEN => Some(name),
            _ => return Err(malformed()),
        }
    };
    Ok((&s[..open], Some((&s[open + 1..close], sub))))
}

/// Expands a path-less `add`/`replace` value (the resource itself is the target): one
/// operation per key. Keys may be attribute names, `attr.sub`, URN-qualified attributes, or
/// extension (or core schema) URNs whose value is an object of that schema's attributes.
/// ReadOnly attributes and `schemas` are ignored: clients such as Okta resend what they read.
fn expand_resource(
    rt: &ResourceTypeDef,
    op: PatchOpKind,
    value: &Value,
    out: &mut Vec<PatchOp>,
) -> Result<(), ScimError> {
    let obj = value.as_object().ok_or_else(|| {
        ScimError::invalid_syntax(format!(
            "A path-less {} needs an object of attributes as \"value\"",
            op.as_str()
        ))
    })?;
    for (key, v) in obj {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if starts_with_urn(key) {
            if let Some(ext) = rt.extension(key) {
                push_extension(rt, op, ext, Some(v), out)?;
                continue;
            }
            if rt.schema.id.eq_ignore_ascii_case(key) {
                let inner = v.as_object().ok_or_else(|| {
                    ScimError::invalid_value(format!("The value of {key} must be an object"))
                })?;
                expand_scoped(rt, op, &rt.schema.id, inner, out)?;
                continue;
            }
        }
        push_keyed(rt, op, key, v, out)?;
    }
    Ok(())
}

/// Expands an object of one schema's attributes (`{"employeeNumber": "7"}` under the
/// enterprise URN).
fn expand_scoped(
    rt: &ResourceTypeDef,
    op: PatchOpKind,
    urn: &str,
    obj: &Map<String, Value>,
    out: &mut Vec<PatchOp>,
) -> Result<(), ScimError> {
    for (key, v) in obj {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if key.len() > MAX_PATH_LEN || starts_with_urn(key) {
            return Err(ScimError::invalid_path(format!(
                "Unknown attribute {key:?} in {urn}"
            )));
        }
        push_keyed(rt, op, &format!("{urn}:{key}"), v, out)?;
    }
    Ok(())
}

/// One key of a path-less value: an attribute path with its value.
fn push_keyed(
    rt: &ResourceTypeDef,
    op: PatchOpKind,
    key: &str,
    v: &Value,
    out: &mut Vec<PatchOp>,
) -> Result<(), ScimError> {
    let path = AttrPath::parse(key)?;
    let resolved = rt
        .resolve(&path)
        .ok_or_else(|| ScimError::invalid_path(format!("Unknown attribute {key:?}")))?;
    let target = AttrTarget {
        urn: (!resolved.is_core).then_some(resolved.schema),
        attr: resolved.attr,
        filter: None,
        sub: resolved.sub,
    };
    if target.read_only().is_some() {
        return Ok(());
    }
    let value = target.normalize(rt, op, v).map_err(|e| ScimError {
        detail: format!("{key}: {}", e.detail),
        ..e
    })?;
    out.push(PatchOp {
        op,
        path: Some(target.into_path()),
        value: Some(value),
    });
    Ok(())
}

/// An operation on a whole extension object. `add`/`replace` with an object expand into one
/// operation per attribute (so a complex attribute inside merges as it would on its own);
/// `remove`, and `add`/`replace` with `null`, stay whole-extension operations.
pub(super) fn push_extension(
    rt: &ResourceTypeDef,
    op: PatchOpKind,
    ext: &Extension,
    value: Option<&Value>,
    out: &mut Vec<PatchOp>,
) -> Result<(), ScimError> {
    let urn = ext.schema.id.as_str();
    match (op, value) {
        (PatchOpKind::Remove, _) => {
            out.push(PatchOp {
                op,
                path: Some(PatchPath::extension(urn)),
                value: None,
            });
            Ok(())
        }
        (_, Some(Value::Object(obj))) => expand_scoped(rt, op, urn, obj, out),
        (_, Some(Value::Null)) => {
            out.push(PatchOp {
                op,
                path: Some(PatchPath::extension(urn)),
                value: Some(Value::Null),
            });
            Ok(())
        }
        _ => Err(ScimError::invalid_value(format!(
            "The value of extension {urn} must be an object"
        ))),
    }
}

/// Expands a path-less operation at apply time, for requests built with
/// [`super::PatchRequest::from_ops`] rather than parsed.
pub(super) fn expand_pathless(
    rt: &ResourceTypeDef,
    op: PatchOpKind,
    value: Option<&Value>,
) -> Result<Vec<PatchOp>, ScimError> {
    let mut out = Vec::new();
    match (op, value) {
        (PatchOpKind::Remove, _) => {
            return Err(ScimError::no_target("A remove operation needs a path"));
        }
        (_, None) => {
            return Err(ScimError::invalid_syntax(
                "An add or replace operation needs a value",
            ));
        }
        (_, Some(v)) => expand_resource(rt, op, v, &mut out)?,
    }
    Ok(out)
}
