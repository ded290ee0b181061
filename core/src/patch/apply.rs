//! Applying operations (RFC 7644 §3.5.2.1–3) to a copy of a resource.
//!
//! Each operation takes the value of one top-level attribute out of the copy, computes its new
//! value and puts it back (an unassigned result removes the key, and an extension object left
//! empty is removed). Errors abort the whole request; the copy is then dropped, so the caller's
//! resource is never touched.

use super::parse::{expand_pathless, in_operation, push_extension};
use super::{PatchOp, PatchOpKind, PatchOutcome, PatchRequest};
use crate::error::ScimError;
use crate::filter::{CompValue, CompareOp, Filter, matches_value};
use crate::normalize::{normalize_value, validate, values_equal};
use crate::resource::{Resource, parse_time};
use crate::schema::{AttrType, AttributeDef, Mutability, ResourceKind, ResourceTypeDef};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// Applies a request to a copy of `current` and validates the result.
pub(super) fn apply(req: &PatchRequest, current: &Resource) -> Result<PatchOutcome, ScimError> {
    if current.kind != req.kind() {
        return Err(ScimError::internal(format!(
            "a {} patch cannot apply to a {}",
            req.kind().name(),
            current.kind.name()
        )));
    }
    let rt = req.registry().resource_type(req.kind());
    let mut attrs = current.attrs.clone();
    for (i, op) in req.ops.iter().enumerate() {
        apply_op(rt, req.kind(), &mut attrs, op).map_err(|e| in_operation(e, i))?;
    }
    validate(rt, &attrs, Some(current))?;
    let changed = attrs != current.attrs;
    Ok(PatchOutcome { attrs, changed })
}

fn apply_op(
    rt: &ResourceTypeDef,
    kind: ResourceKind,
    attrs: &mut Map<String, Value>,
    op: &PatchOp,
) -> Result<(), ScimError> {
    let Some(path) = &op.path else {
        // Parsed requests never get here; the expanded operations all have paths, so this
        // recursion is one level deep.
        for expanded in expand_pathless(rt, op.op, op.value.as_ref())? {
            apply_op(rt, kind, attrs, &expanded)?;
        }
        return Ok(());
    };
    if let Some(urn) = path.extension_urn() {
        return apply_extension(rt, kind, attrs, op, urn);
    }
    let resolved = rt
        .resolve(&path.attr)
        .ok_or_else(|| ScimError::invalid_path(format!("Unknown attribute {}", path.attr)))?;
    let def = resolved.attr;
    let sub = match (&path.filter, &path.sub) {
        (Some(_), Some(name)) => Some(def.sub_attribute(name).ok_or_else(|| {
            ScimError::invalid_path(format!("{} has no sub-attribute {name:?}", def.name))
        })?),
        (Some(_), None) => None,
        (None, _) => resolved.sub,
    };
    if let Some(ro) = [Some(def), sub]
        .into_iter()
        .flatten()
        .find(|d| d.mutability == Mutability::ReadOnly)
    {
        return Err(ScimError::mutability(format!(
            "Attribute {} is readOnly",
            ro.name
        )));
    }
    let target = Target {
        rt,
        def,
        filter: path.filter.as_ref(),
        sub,
        members: kind == ResourceKind::Group && resolved.is_core && def.name == "members",
    };
    let urn = (!resolved.is_core).then_some(resolved.schema);
    let old = take(attrs, urn, &def.name);
    let new = target.apply(op.op, old, op.value.as_ref())?;
    put(attrs, urn, &def.name, new);
    Ok(())
}

/// An operation on a whole extension object.
fn apply_extension(
    rt: &ResourceTypeDef,
    kind: ResourceKind,
    attrs: &mut Map<String, Value>,
    op: &PatchOp,
    urn: &str,
) -> Result<(), ScimError> {
    let ext = rt
        .extension(urn)
        .ok_or_else(|| ScimError::invalid_path(format!("Unknown extension {urn}")))?;
    let key = ext.schema.id.as_str();
    let unassign = op.op == PatchOpKind::Remove || op.value.as_ref().is_none_or(Value::is_null);
    if unassign {
        if ext.required && attrs.get(key).is_some_and(is_assigned) {
            return Err(ScimError::mutability(format!(
                "Extension {key} is required and cannot be removed"
            )));
        }
        attrs.shift_remove(key);
        return Ok(());
    }
    let mut expanded = Vec::new();
    push_extension(rt, op.op, ext, op.value.as_ref(), &mut expanded)?;
    for e in &expanded {
        if e.path.as_ref().is_some_and(|p| p.extension_urn().is_some()) {
            // Only `null` stays a whole-extension operation, and that was handled above.
            continue;
        }
        apply_op(rt, kind, attrs, e)?;
    }
    Ok(())
}

/// Takes a top-level attribute's value out of the attributes (leaving `null` behind, which
/// [`put`] overwrites or removes, so key order is kept).
fn take(attrs: &mut Map<String, Value>, urn: Option<&str>, name: &str) -> Option<Value> {
    let container = match urn {
        None => attrs,
        Some(u) => attrs.get_mut(u)?.as_object_mut()?,
    };
    container
        .get_mut(name)
        .map(Value::take)
        .filter(|v| !v.is_null())
}

/// Puts a top-level attribute's new value back; an unassigned value removes the key, and an
/// extension object left empty is removed.
fn put(attrs: &mut Map<String, Value>, urn: Option<&str>, name: &str, value: Option<Value>) {
    let value = value.filter(is_assigned);
    let Some(u) = urn else {
        set(attrs, name, value);
        return;
    };
    if value.is_none() && !attrs.contains_key(u) {
        return;
    }
    let entry = attrs
        .entry(u.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    let mut now_empty = false;
    if let Value::Object(container) = entry {
        set(container, name, value);
        now_empty = container.is_empty();
    }
    if now_empty {
        attrs.shift_remove(u);
    }
}

fn set(map: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    match value {
        Some(v) => match map.get_mut(name) {
            Some(slot) => *slot = v,
            None => {
                map.insert(name.to_string(), v);
            }
        },
        None => {
            map.shift_remove(name);
        }
    }
}

/// Whether a value is assigned (RFC 7643 §2.5: `null`, `[]` and `{}` are unassigned).
fn is_assigned(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// The resolved target of one operation.
struct Target<'a> {
    /// The resource type.
    rt: &'a ResourceTypeDef,
    /// The top-level attribute.
    def: &'a AttributeDef,
    /// The value filter.
    filter: Option<&'a Filter>,
    /// The sub-attribute (`attr.sub` or `attr[filter].sub`).
    sub: Option<&'a AttributeDef>,
    /// Whether this is Group `members`, whose values are the same when their ids are.
    members: bool,
}

impl Target<'_> {
    fn apply(
        &self,
        op: PatchOpKind,
        old: Option<Value>,
        value: Option<&Value>,
    ) -> Result<Option<Value>, ScimError> {
        let value = match (op, value) {
            (PatchOpKind::Remove, v) => v.filter(|v| is_assigned(v)),
            (_, Some(v)) => Some(v),
            (_, None) => {
                return Err(ScimError::invalid_syntax(format!(
                    "An {} operation needs a value",
                    op.as_str()
                )));
            }
        };
        let def = self.def;
        match (def.multi_valued, self.filter, self.sub) {
            (false, Some(_), _) => Err(ScimError::invalid_path(format!(
                "A value filter needs a multi-valued attribute; {} is single-valued",
                def.name
            ))),
            (false, None, None) => self.single(op, old, value),
            (false, None, Some(sub)) => self.single_sub(op, sub, old, value),
            (true, None, None) => self.whole_list(op, old, value),
            (true, _, _) => self.elements(op, old, value),
        }
    }

    /// A single-valued attribute: set (merging sub-attributes of a complex one, RFC 7644
    /// §3.5.2.3: "Sub-attributes that are not specified in the value parameter are left
    /// unchanged") or remove.
    fn single(
        &self,
        op: PatchOpKind,
        old: Option<Value>,
        value: Option<&Value>,
    ) -> Result<Option<Value>, ScimError> {
        let def = self.def;
        let v = match value {
            Some(v) if op != PatchOpKind::Remove && !v.is_null() => v,
            _ => {
                if old.is_some() && def.required {
                    return Err(required_removed(&def.name));
                }
                return Ok(None);
            }
        };
        if def.attr_type != AttrType::Complex {
            return Ok(Some(v.clone()));
        }
        let mut obj = match old {
            Some(Value::Object(o)) => o,
            _ => Map::new(),
        };
        merge(def, &mut obj, v)?;
        self.renormalized(obj)
    }

    /// A sub-attribute of a single-valued complex attribute (`name.givenName`).
    fn single_sub(
        &self,
        op: PatchOpKind,
        sub: &AttributeDef,
        old: Option<Value>,
        value: Option<&Value>,
    ) -> Result<Option<Value>, ScimError> {
        let mut obj = match old {
            Some(Value::Object(o)) => o,
            _ => Map::new(),
        };
        match value {
            Some(v) if op != PatchOpKind::Remove && !v.is_null() => {
                set(&mut obj, &sub.name, Some(v.clone()));
            }
            _ => remove_sub(self.def, sub, &mut obj)?,
        }
        self.renormalized(obj)
    }

    /// Canonicalizes and checks a complex value (or value of a multi-valued complex
    /// attribute) after a merge or a sub-attribute change: the parts were canonical, the whole
    /// must be too (e.g. `manager` needs its `value`, a member's `type` its canonical spelling).
    fn renormalized(&self, obj: Map<String, Value>) -> Result<Option<Value>, ScimError> {
        if obj.is_empty() {
            return Ok(None);
        }
        let v = normalize_value(self.rt, self.def, &Value::Object(obj), false)?;
        Ok((!v.is_null()).then_some(v))
    }

    /// A multi-valued attribute without filter: add values (no duplicates), replace all
    /// values, remove all values or (with a value) the values given.
    fn whole_list(
        &self,
        op: PatchOpKind,
        old: Option<Value>,
        value: Option<&Value>,
    ) -> Result<Option<Value>, ScimError> {
        let def = self.def;
        let mut list = into_list(old);
        let new_values: &[Value] = match value {
            Some(Value::Array(a)) => a,
            Some(Value::Null) | None => &[],
            Some(one) => std::slice::from_ref(one),
        };
        match op {
            PatchOpKind::Add => {
                let mut index = ValueIndex::build(self, &list);
                let mut touched = vec![false; list.len()];
                for v in new_values {
                    if index.find(self, &list, v).is_none() {
                        index.insert(self, list.len(), v);
                        list.push(v.clone());
                        touched.push(true);
                    }
                }
                clear_other_primaries(def, &mut list, &touched);
                Ok(Some(Value::Array(list)))
            }
            PatchOpKind::Replace if !new_values.is_empty() => {
                let mut out: Vec<Value> = Vec::with_capacity(new_values.len());
                let mut index = ValueIndex::default();
                for v in new_values {
                    if index.find(self, &out, v).is_none() {
                        index.insert(self, out.len(), v);
                        out.push(v.clone());
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            PatchOpKind::Replace => {
                if !list.is_empty() && def.required {
                    return Err(required_removed(&def.name));
                }
                Ok(None)
            }
            PatchOpKind::Remove if value.is_some() => {
                let remover = Remover::new(self, new_values);
                list.retain(|e| !remover.matches(self, e));
                if list.is_empty() && def.required {
                    return Err(required_removed(&def.name));
                }
                Ok(Some(Value::Array(list)))
            }
            PatchOpKind::Remove => {
                if !list.is_empty() && def.required {
                    return Err(required_removed(&def.name));
                }
                Ok(None)
            }
        }
    }

    /// The values of a multi-valued attribute a filter selects (or all values, for
    /// `attr.sub` without filter), or a sub-attribute of them.
    fn elements(
        &self,
        op: PatchOpKind,
        old: Option<Value>,
        value: Option<&Value>,
    ) -> Result<Option<Value>, ScimError> {
        let def = self.def;
        let mut list = into_list(old);
        let matched: Vec<usize> = list
            .iter()
            .enumerate()
            .filter(|(_, e)| self.filter.is_none_or(|f| matches_value(f, def, e)))
            .map(|(i, _)| i)
            .collect();
        let mut touched = vec![false; list.len()];
        let v = value.filter(|v| !v.is_null());
        match op {
            PatchOpKind::Remove => {
                self.remove_elements(&mut list, &matched)?;
                touched = vec![false; list.len()];
            }
            PatchOpKind::Replace if matched.is_empty() && self.filter.is_some() => {
                return Err(ScimError::no_target(format!(
                    "No value of {} matches the filter",
                    def.name
                )));
            }
            PatchOpKind::Add | PatchOpKind::Replace if matched.is_empty() => {
                // RFC 7644 §3.5.2.1: a target that does not exist is added; §3.5.2.3 treats a
                // replace of a missing target as an add.
                let Some(v) = v else {
                    return Ok(Some(Value::Array(list)));
                };
                let mut element = self.template().ok_or_else(|| {
                    ScimError::no_target(format!(
                        "No value of {} matches the filter, and the filter does not determine \
                         a new value (only `eq` comparisons joined by `and` do)",
                        def.name
                    ))
                })?;
                match self.sub {
                    Some(sub) => set(&mut element, &sub.name, Some(v.clone())),
                    None => merge(def, &mut element, v)?,
                }
                if let Some(element) = self.renormalized(element)? {
                    list.push(element);
                    touched.push(true);
                }
            }
            PatchOpKind::Add | PatchOpKind::Replace => {
                for &i in &matched {
                    let Some(Value::Object(before)) = list.get(i) else {
                        continue;
                    };
                    let mut after = before.clone();
                    match (self.sub, v) {
                        (Some(sub), Some(v)) => set(&mut after, &sub.name, Some(v.clone())),
                        (Some(sub), None) => remove_sub(def, sub, &mut after)?,
                        (None, Some(v)) if op == PatchOpKind::Replace => {
                            after = v
                                .as_object()
                                .ok_or_else(|| not_an_object(&def.name))?
                                .clone();
                        }
                        (None, Some(v)) => merge(def, &mut after, v)?,
                        (None, None) if op == PatchOpKind::Replace => after.clear(),
                        (None, None) => {}
                    }
                    // An emptied value is removed as a whole, which is not a change in place.
                    let after = match self.renormalized(after)? {
                        Some(Value::Object(after)) => {
                            check_immutable_subs(def, before, &after)?;
                            after
                        }
                        _ => Map::new(),
                    };
                    list[i] = Value::Object(after);
                    touched[i] = true;
                }
            }
        }
        // A value left without sub-attributes is unassigned (RFC 7643 §2.5).
        let mut keep = touched.into_iter();
        let mut kept_touched = Vec::with_capacity(list.len());
        list.retain(|e| {
            let t = keep.next().unwrap_or(false);
            let k = is_assigned(e);
            if k {
                kept_touched.push(t);
            }
            k
        });
        clear_other_primaries(def, &mut list, &kept_touched);
        if list.is_empty() && def.required {
            return Err(required_removed(&def.name));
        }
        Ok(Some(Value::Array(list)))
    }

    /// `remove` on selected values: the values themselves, or one sub-attribute of them.
    /// Removing nothing is not an error (RFC 7644 §3.5.2.2 defines no `noTarget` for it, and
    /// clients such as Okta remove members that may already be gone).
    fn remove_elements(&self, list: &mut Vec<Value>, matched: &[usize]) -> Result<(), ScimError> {
        let def = self.def;
        match self.sub {
            None => {
                let drop: HashSet<usize> = matched.iter().copied().collect();
                let mut i = 0;
                list.retain(|_| {
                    let keep = !drop.contains(&i);
                    i += 1;
                    keep
                });
            }
            Some(sub) => {
                for &i in matched {
                    if let Some(Value::Object(o)) = list.get_mut(i) {
                        let before = o.clone();
                        remove_sub(def, sub, o)?;
                        check_immutable_subs(def, &before, o)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The value a filter describes, for `add` to a filtered path that matches nothing:
    /// `type eq "work" and primary eq true` describes `{"type": "work", "primary": true}`.
    /// Only `eq` on sub-attributes joined by `and` describes a value; without filter the
    /// template is empty.
    fn template(&self) -> Option<Map<String, Value>> {
        let def = self.def;
        if def.attr_type != AttrType::Complex {
            return None;
        }
        let mut out = Map::new();
        let Some(filter) = self.filter else {
            return Some(out);
        };
        // An explicit stack: a long `and` chain is a deep tree.
        let mut stack = vec![filter];
        while let Some(f) = stack.pop() {
            match f {
                Filter::And(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                Filter::Compare {
                    path,
                    op: CompareOp::Eq,
                    value,
                } => {
                    let name = relative_name(def, path)?;
                    let sub = def.sub_attribute(name)?;
                    if sub.mutability == Mutability::ReadOnly {
                        return None;
                    }
                    let v = match value {
                        CompValue::Str(s) => Value::String(s.clone()),
                        CompValue::Num(n) => Value::Number(n.clone()),
                        CompValue::Bool(b) => Value::Bool(*b),
                        CompValue::Null => return None,
                    };
                    match out.get(&sub.name) {
                        Some(existing) if !values_equal(sub, existing, &v) => return None,
                        Some(_) => {}
                        None => {
                            out.insert(sub.name.clone(), v);
                        }
                    }
                }
                _ => return None,
            }
        }
        Some(out)
    }

    /// Whether two values of the attribute are the same value.
    fn same(&self, a: &Value, b: &Value) -> bool {
        if self.members
            && let (Some(x), Some(y)) = (member_id(a), member_id(b))
        {
            return x == y;
        }
        values_equal(self.def, a, b)
    }
}

/// The sub-attribute name a comparison inside a value filter is about (`type`, or
/// `emails.type` if the filter spelled its paths in full).
pub(super) fn relative_name<'p>(
    def: &AttributeDef,
    path: &'p crate::path::AttrPath,
) -> Option<&'p str> {
    match &path.sub {
        Some(sub) if path.name.eq_ignore_ascii_case(&def.name) => Some(sub),
        Some(_) => None,
        None => Some(&path.name),
    }
}

fn member_id(v: &Value) -> Option<&str> {
    v.get("value").and_then(Value::as_str)
}

fn into_list(old: Option<Value>) -> Vec<Value> {
    match old {
        Some(Value::Array(a)) => a,
        Some(Value::Null) | None => Vec::new(),
        // A stored single value where a list belongs: keep it as the list's one value.
        Some(other) => vec![other],
    }
}

fn required_removed(name: &str) -> ScimError {
    ScimError::mutability(format!(
        "Attribute {name} is required and cannot be removed"
    ))
}

fn not_an_object(name: &str) -> ScimError {
    ScimError::invalid_value(format!(
        "A value of {name} must be an object of sub-attributes"
    ))
}

/// Merges the sub-attributes of `v` into `obj`; a `null` sub-attribute unassigns it (a
/// required one cannot be unassigned, RFC 7644 §3.5.2.2).
fn merge(def: &AttributeDef, obj: &mut Map<String, Value>, v: &Value) -> Result<(), ScimError> {
    let patch = v.as_object().ok_or_else(|| not_an_object(&def.name))?;
    for (k, sv) in patch {
        if sv.is_null() {
            match def.sub_attribute(k) {
                Some(sub) => remove_sub(def, sub, obj)?,
                None => {
                    obj.shift_remove(k);
                }
            }
        } else {
            set(obj, k, Some(sv.clone()));
        }
    }
    Ok(())
}

/// Removes a sub-attribute; a required one cannot be removed (RFC 7644 §3.5.2.2).
fn remove_sub(
    def: &AttributeDef,
    sub: &AttributeDef,
    obj: &mut Map<String, Value>,
) -> Result<(), ScimError> {
    if obj.get(&sub.name).is_some_and(is_assigned) && sub.required {
        return Err(required_removed(&format!("{}.{}", def.name, sub.name)));
    }
    obj.shift_remove(&sub.name);
    Ok(())
}

/// An immutable sub-attribute of a value that is changed in place (not added or removed as a
/// whole) keeps its value: `replace members[value eq "a"]` with `{"value": "b"}` is
/// `mutability`.
fn check_immutable_subs(
    def: &AttributeDef,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> Result<(), ScimError> {
    for sub in &def.sub_attributes {
        if sub.mutability != Mutability::Immutable {
            continue;
        }
        let Some(old) = before.get(&sub.name).filter(|v| !v.is_null()) else {
            continue;
        };
        match after.get(&sub.name).filter(|v| !v.is_null()) {
            Some(new) if values_equal(sub, old, new) => {}
            _ => {
                return Err(ScimError::mutability(format!(
                    "Attribute {}.{} is immutable and cannot be changed",
                    def.name, sub.name
                )));
            }
        }
    }
    Ok(())
}

/// RFC 7644 §3.5.2: an operation that sets `primary` to true on a value sets it to false on
/// every other value. `touched[i]` says whether value `i` was written by the operation.
fn clear_other_primaries(def: &AttributeDef, list: &mut [Value], touched: &[bool]) {
    if def.attr_type != AttrType::Complex || def.sub_attribute("primary").is_none() {
        return;
    }
    let is_primary = |v: &Value| v.get("primary") == Some(&Value::Bool(true));
    let set_now = list.iter().zip(touched).any(|(v, &t)| t && is_primary(v));
    if !set_now {
        return;
    }
    for (v, &t) in list.iter_mut().zip(touched) {
        if !t
            && is_primary(v)
            && let Some(o) = v.as_object_mut()
        {
            o.insert("primary".into(), Value::Bool(false));
        }
    }
}

/// Buckets the values of a list by a key that equal values always share, so finding a
/// duplicate costs one bucket's comparisons instead of a scan of the list (a group may have
/// many members).
#[derive(Default)]
struct ValueIndex {
    buckets: HashMap<String, Vec<usize>>,
}

impl ValueIndex {
    fn build(t: &Target<'_>, list: &[Value]) -> Self {
        let mut index = ValueIndex::default();
        for (i, v) in list.iter().enumerate() {
            index.insert(t, i, v);
        }
        index
    }

    fn insert(&mut self, t: &Target<'_>, i: usize, v: &Value) {
        self.buckets.entry(bucket_key(t, v)).or_default().push(i);
    }

    fn find(&self, t: &Target<'_>, list: &[Value], v: &Value) -> Option<usize> {
        self.buckets
            .get(&bucket_key(t, v))?
            .iter()
            .copied()
            .find(|&i| list.get(i).is_some_and(|e| t.same(e, v)))
    }
}

/// A key that is equal for any two values [`Target::same`] finds equal (it may also be equal
/// for some that are not; the bucket is then searched).
fn bucket_key(t: &Target<'_>, v: &Value) -> String {
    if t.members
        && let Some(id) = member_id(v)
    {
        return format!("m{id}");
    }
    let def = t.def;
    match (def.attr_type, v) {
        (AttrType::Complex, Value::Object(o)) => {
            let mut key = String::from("c");
            for sub in &def.sub_attributes {
                if sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                if let Some(sv) = o.get(&sub.name).filter(|v| !v.is_null()) {
                    key.push_str(&sub.name);
                    key.push('=');
                    if sub.multi_valued {
                        key.push('a');
                    } else {
                        key.push_str(&scalar_key(sub, sv));
                    }
                    key.push(';');
                }
            }
            key
        }
        _ => scalar_key(def, v),
    }
}

/// The equality key of a simple value under its attribute's comparison rules (the rules of
/// [`values_equal`]).
fn scalar_key(def: &AttributeDef, v: &Value) -> String {
    match (def.attr_type, v) {
        (AttrType::String, Value::String(s)) if !def.case_exact => {
            format!("s{}", Value::String(s.to_lowercase()))
        }
        (AttrType::DateTime, Value::String(s)) => match parse_time(s) {
            Some(t) => format!("t{}", t.unix_timestamp_nanos()),
            None => format!("s{v}"),
        },
        (AttrType::Integer | AttrType::Decimal, Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(0.0);
            // -0 and 0 are equal numbers with different printed forms.
            format!("n{}", if f == 0.0 { 0.0 } else { f })
        }
        (_, Value::Object(_) | Value::Array(_)) => "x".to_string(),
        _ => format!("j{v}"),
    }
}

/// Matches the values a `remove` with a value list names: a value is removed when every
/// sub-attribute given matches (members: when the id matches).
struct Remover<'v> {
    ids: HashSet<&'v str>,
    by_value: HashMap<String, Vec<&'v Value>>,
    others: Vec<&'v Value>,
}

impl<'v> Remover<'v> {
    fn new(t: &Target<'_>, values: &'v [Value]) -> Self {
        let mut r = Remover {
            ids: HashSet::new(),
            by_value: HashMap::new(),
            others: Vec::new(),
        };
        let value_sub = t.def.sub_attribute("value");
        for v in values {
            if t.members
                && let Some(id) = member_id(v)
            {
                r.ids.insert(id);
                continue;
            }
            match (value_sub, v.get("value").filter(|x| !x.is_null())) {
                (Some(sub), Some(x)) if t.def.attr_type == AttrType::Complex => {
                    r.by_value.entry(scalar_key(sub, x)).or_default().push(v)
                }
                _ => r.others.push(v),
            }
        }
        r
    }

    fn matches(&self, t: &Target<'_>, e: &Value) -> bool {
        if t.members
            && let Some(id) = member_id(e)
            && self.ids.contains(id)
        {
            return true;
        }
        let by_value = match (t.def.sub_attribute("value"), e.get("value")) {
            (Some(sub), Some(x)) if !self.by_value.is_empty() => self
                .by_value
                .get(&scalar_key(sub, x))
                .map(Vec::as_slice)
                .unwrap_or(&[]),
            _ => &[],
        };
        by_value
            .iter()
            .chain(&self.others)
            .any(|r| subset_matches(t.def, r, e))
    }
}

/// Whether `e` has every (non-readOnly) sub-attribute value that `r` gives; for simple values,
/// plain equality.
fn subset_matches(def: &AttributeDef, r: &Value, e: &Value) -> bool {
    match (def.attr_type, r, e) {
        (AttrType::Complex, Value::Object(r), Value::Object(e)) => {
            let mut any = false;
            for (k, rv) in r {
                if rv.is_null() {
                    continue;
                }
                let Some(sub) = def.sub_attribute(k) else {
                    return false;
                };
                if sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                any = true;
                match e.get(&sub.name) {
                    Some(ev) if values_equal(sub, rv, ev) => {}
                    _ => return false,
                }
            }
            any
        }
        _ => values_equal(def, r, e),
    }
}
