//! Parsing a PatchOp body into canonical, schema-resolved operations.

use super::{MAX_OPERATIONS, PATCH_OP_SCHEMA, PatchOp, PatchOpKind, PatchPath};
use crate::compat::{Fired, Rule, Rules, parse_filter, tolerate};
use crate::error::ScimError;
use crate::filter::Filter;
use crate::normalize::{is_foreign_urn, normalize_value_with, urn_spelled_exactly};
use crate::path::{AttrPath, MAX_PATH_LEN, is_attr_name, starts_with_urn};
use crate::schema::{AttrType, AttributeDef, Extension, Mutability, ResourceTypeDef};
use serde_json::{Map, Value};

/// What parsing needs besides the body: the resource type, the source's tolerance rules and
/// where to record the rules applied.
#[derive(Clone, Copy)]
pub(super) struct Ctx<'a> {
    pub rt: &'a ResourceTypeDef,
    pub rules: &'a Rules,
    pub fired: &'a Fired,
}

impl Ctx<'_> {
    fn tolerate(&self, rule: Rule) -> bool {
        tolerate(self.rules, self.fired, rule)
    }

    fn normalize_value(
        &self,
        def: &AttributeDef,
        value: &Value,
        whole_list: bool,
    ) -> Result<Value, ScimError> {
        normalize_value_with(self.rt, def, value, whole_list, self.rules, self.fired)
    }

    /// A key or path under a URN the source does not host: skipped under `lenient_schemas`.
    fn foreign_urn(&self, key: &str) -> Result<(), ScimError> {
        if self.tolerate(Rule::LenientSchemas) {
            Ok(())
        } else {
            Err(ScimError::invalid_path(format!(
                "{key:?} is not under a schema of {} resources",
                self.rt.kind.name()
            )))
        }
    }

    /// A URN spelled differently from its schema needs `urn_case`.
    fn urn_spelling(&self, key: &str) -> Result<(), ScimError> {
        if urn_spelled_exactly(self.rt, key) == Some(false) && !self.tolerate(Rule::UrnCase) {
            return Err(ScimError::invalid_path(format!(
                "{key:?} does not spell its schema URN as the schema defines it"
            )));
        }
        Ok(())
    }

    /// A path-less value key that is a path needs `dotted_keys`.
    fn path_key(&self, key: &str) -> Result<(), ScimError> {
        if self.tolerate(Rule::DottedKeys) {
            Ok(())
        } else {
            Err(ScimError::invalid_path(format!(
                "{key:?} is a path, not an attribute name; give it as the operation's \"path\""
            )))
        }
    }

    /// A readOnly key in a path-less value: ignored under `read_only_in_patch`.
    fn read_only_key(&self, name: &str) -> Result<(), ScimError> {
        if self.tolerate(Rule::ReadOnlyInPatch) {
            Ok(())
        } else {
            Err(ScimError::mutability(format!(
                "Attribute {name} is readOnly"
            )))
        }
    }

    /// Parses a value filter, retrying without quotes around values under
    /// `unquoted_filter_values`.
    fn filter(&self, text: &str) -> Result<Filter, ScimError> {
        parse_filter(self.rules, self.fired, text)
    }
}

/// Parses the whole message.
pub(super) fn parse_body(body: &Value, cx: &Ctx<'_>) -> Result<Vec<PatchOp>, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("A PATCH body must be a JSON object"))?;
    let listed = get_ci(obj, "schemas")?
        .and_then(Value::as_array)
        .and_then(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .find(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
        });
    let has_schema = match listed {
        Some(s) => s == PATCH_OP_SCHEMA || cx.tolerate(Rule::UrnCase),
        None => false,
    };
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
        parse_op(cx, op, &mut out).map_err(|e| in_operation(e, i))?;
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

fn parse_op(cx: &Ctx<'_>, op: &Value, out: &mut Vec<PatchOp>) -> Result<(), ScimError> {
    let obj = op
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("An operation must be a JSON object"))?;
    let bad_op = || ScimError::invalid_syntax("\"op\" must be \"add\", \"remove\" or \"replace\"");
    let op_text = get_ci(obj, "op")?
        .and_then(Value::as_str)
        .ok_or_else(bad_op)?;
    let op_kind = PatchOpKind::parse(op_text).ok_or_else(bad_op)?;
    if op_kind.as_str() != op_text && !cx.tolerate(Rule::OpCase) {
        return Err(ScimError::invalid_syntax(format!(
            "\"op\" must be \"{}\" in lower case, not {op_text:?}",
            op_kind.as_str()
        )));
    }
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
        (_, None, Some(value)) => expand_resource(cx, op_kind, value, out),
        (_, Some(path), value) => match resolve_path(cx, path)? {
            Target::Foreign => cx.foreign_urn(path),
            Target::Resource => match value {
                Some(value) if op_kind != PatchOpKind::Remove => {
                    expand_resource(cx, op_kind, value, out)
                }
                _ => Err(ScimError::invalid_path(
                    "The resource itself cannot be removed with PATCH",
                )),
            },
            Target::Extension(ext) => {
                push_extension_in(cx, op_kind, ext, value, out)?;
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
                        if !cx.tolerate(Rule::RemoveWithValue) {
                            // RFC 7644 §3.5.2.2 defines no value for remove; without a filter
                            // the operation would remove every value, which is never what a
                            // client listing values means.
                            return Err(ScimError::invalid_syntax(format!(
                                "A remove operation takes no \"value\"; select the values to \
                                 remove with a filter (\"{}[value eq \\\"…\\\"]\")",
                                t.attr.name
                            )));
                        }
                        Some(t.normalize(cx, op_kind, v)?)
                    }
                    (PatchOpKind::Remove, _) => None,
                    (_, Some(v)) => Some(t.normalize(cx, op_kind, v)?),
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
/// [`normalize_value_with`] as such.
fn normalize_partial(cx: &Ctx<'_>, def: &AttributeDef, v: &Value) -> Result<Value, ScimError> {
    let Value::Object(obj) = v else {
        return cx.normalize_value(def, v, false);
    };
    let mut out = Map::new();
    for (k, sv) in obj {
        let sub = match def.sub_attribute(k) {
            Some(sub) => sub,
            None if cx.tolerate(Rule::IgnoreUnknownAttributes) => continue,
            None => {
                return Err(ScimError::invalid_syntax(format!(
                    "Unknown attribute \"{}.{k}\"",
                    def.name
                )));
            }
        };
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
            cx.normalize_value(sub, sv, sub.multi_valued)?
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
    /// A path under a schema URN the source does not host.
    Foreign,
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
    fn normalize(&self, cx: &Ctx<'_>, op: PatchOpKind, v: &Value) -> Result<Value, ScimError> {
        if v.is_null() {
            return Ok(Value::Null);
        }
        if let Some(sub) = self.sub {
            return cx.normalize_value(sub, v, sub.multi_valued);
        }
        let def = self.attr;
        let merged = def.attr_type == AttrType::Complex
            && op != PatchOpKind::Remove
            && (!def.multi_valued || (op == PatchOpKind::Add && self.filter.is_some()));
        if !def.multi_valued {
            // Entra ID sends `"path": "manager", "value": [{"value": "…"}]`.
            let v = match v {
                Value::Array(items)
                    if items.len() == 1
                        && def.attr_type == AttrType::Complex
                        && cx.tolerate(Rule::SingleElementArrays) =>
                {
                    &items[0]
                }
                other => other,
            };
            return if merged {
                normalize_partial(cx, def, v)
            } else {
                cx.normalize_value(def, v, false)
            };
        }
        let single = match v {
            Value::Array(items) if self.filter.is_some() && items.len() == 1 => &items[0],
            Value::Array(_) if self.filter.is_none() => {
                return cx.normalize_value(def, v, true);
            }
            other => other,
        };
        let one = if merged {
            normalize_partial(cx, def, single)?
        } else {
            cx.normalize_value(def, single, false)?
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
fn resolve_path<'a>(cx: &Ctx<'a>, s: &str) -> Result<Target<'a>, ScimError> {
    let rt = cx.rt;
    if starts_with_urn(s) {
        if is_foreign_urn(rt, s) {
            return Ok(Target::Foreign);
        }
        cx.urn_spelling(s)?;
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
    let filter = match cx
        .filter(&format!("{canonical}[{filter_text}]"))?
        .resolve(rt)?
    {
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
/// operation per key. Keys are attribute names, or extension schema URNs whose value is an
/// object of that schema's attributes; under `dotted_keys` also `attr.sub`, URN-qualified
/// attributes, value paths and the core schema URN. ReadOnly attributes and `schemas` are
/// ignored under `read_only_in_patch`: clients such as Okta resend what they read.
fn expand_resource(
    cx: &Ctx<'_>,
    op: PatchOpKind,
    value: &Value,
    out: &mut Vec<PatchOp>,
) -> Result<(), ScimError> {
    let rt = cx.rt;
    let obj = value.as_object().ok_or_else(|| {
        ScimError::invalid_syntax(format!(
            "A path-less {} needs an object of attributes as \"value\"",
            op.as_str()
        ))
    })?;
    for (key, v) in obj {
        if key.eq_ignore_ascii_case("schemas") {
            cx.read_only_key("schemas")?;
            continue;
        }
        if starts_with_urn(key) {
            if is_foreign_urn(rt, key) {
                cx.foreign_urn(key)?;
                continue;
            }
            if let Some(ext) = rt.extension(key) {
                cx.urn_spelling(key)?;
                push_extension_in(cx, op, ext, Some(v), out)?;
                continue;
            }
            if rt.schema.id.eq_ignore_ascii_case(key) {
                cx.urn_spelling(key)?;
                cx.path_key(key)?;
                let inner = v.as_object().ok_or_else(|| {
                    ScimError::invalid_value(format!("The value of {key} must be an object"))
                })?;
                expand_scoped(cx, op, &rt.schema.id, inner, out)?;
                continue;
            }
        }
        push_keyed(cx, op, key, v, true, out)?;
    }
    Ok(())
}

/// Expands an object of one schema's attributes (`{"employeeNumber": "7"}` under the
/// enterprise URN).
fn expand_scoped(
    cx: &Ctx<'_>,
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
        if key.contains('.') {
            cx.path_key(&format!("{urn}:{key}"))?;
        }
        push_keyed(cx, op, &format!("{urn}:{key}"), v, false, out)?;
    }
    Ok(())
}

/// One key of a path-less value: an attribute path with its value. `client_key` says the key
/// is the client's own (not a URN-qualified name built from an extension object), so a
/// qualified or dotted spelling is a path and needs `dotted_keys`.
fn push_keyed(
    cx: &Ctx<'_>,
    op: PatchOpKind,
    key: &str,
    v: &Value,
    client_key: bool,
    out: &mut Vec<PatchOp>,
) -> Result<(), ScimError> {
    let rt = cx.rt;
    let unknown = |e: ScimError| {
        if cx.tolerate(Rule::IgnoreUnknownAttributes) {
            Ok(())
        } else {
            Err(e)
        }
    };
    let target = if key.contains('[') {
        // A value path as a key: `"emails[type eq \"work\"].value": "…"` (Entra ID).
        cx.path_key(key)?;
        match resolve_path(cx, key)? {
            Target::Attr(t) => t,
            Target::Foreign => return cx.foreign_urn(key),
            _ => {
                return Err(ScimError::invalid_path(format!(
                    "{key:?} is not an attribute path"
                )));
            }
        }
    } else {
        let path = AttrPath::parse(key)?;
        let Some(resolved) = rt.resolve(&path) else {
            return unknown(ScimError::invalid_path(format!(
                "Unknown attribute {key:?}"
            )));
        };
        if client_key && (path.urn.is_some() || path.sub.is_some()) {
            cx.path_key(key)?;
        }
        if path.urn.is_some() {
            cx.urn_spelling(key)?;
        }
        AttrTarget {
            urn: (!resolved.is_core).then_some(resolved.schema),
            attr: resolved.attr,
            filter: None,
            sub: resolved.sub,
        }
    };
    if let Some(def) = target.read_only() {
        return cx.read_only_key(&def.name);
    }
    let value = target.normalize(cx, op, v).map_err(|e| ScimError {
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
    let fired = Fired::new();
    let cx = Ctx {
        rt,
        rules: &Rules::DEFAULT,
        fired: &fired,
    };
    push_extension_in(&cx, op, ext, value, out)
}

fn push_extension_in(
    cx: &Ctx<'_>,
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
        (_, Some(Value::Object(obj))) => expand_scoped(cx, op, urn, obj, out),
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
        (_, Some(v)) => {
            let fired = Fired::new();
            let cx = Ctx {
                rt,
                rules: &Rules::DEFAULT,
                fired: &fired,
            };
            expand_resource(&cx, op, v, &mut out)?
        }
    }
    Ok(out)
}
