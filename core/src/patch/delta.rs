//! Splitting a Group PATCH into member deltas and the other operations.

use super::apply::relative_name;
use super::{Member, MembershipDelta, PatchOp, PatchOpKind, PatchRequest};
use crate::filter::{CompValue, CompareOp, Filter};
use crate::schema::ResourceKind;
use serde_json::Value;
use std::collections::HashSet;

pub(super) fn split(req: &PatchRequest) -> Option<(PatchRequest, MembershipDelta)> {
    let mut rest = Vec::new();
    let mut fold = Fold::default();
    let members_def = req
        .registry()
        .resource_type(req.kind())
        .schema
        .attribute("members");
    for op in &req.ops {
        let Some(path) = &op.path else {
            // Parsed requests never have path-less operations; a hand-built one may hide
            // `members` inside its value.
            let touches_members = op
                .value
                .as_ref()
                .and_then(Value::as_object)
                .is_some_and(|o| o.keys().any(|k| k.eq_ignore_ascii_case("members")));
            if touches_members && req.kind() == ResourceKind::Group {
                return None;
            }
            rest.push(op.clone());
            continue;
        };
        let is_members = req.kind() == ResourceKind::Group
            && path.attr.urn.is_none()
            && path.attr.name == "members";
        if !is_members {
            rest.push(op.clone());
            continue;
        }
        if path.sub_attribute().is_some() {
            return None;
        }
        match (&path.filter, op.op) {
            (Some(filter), PatchOpKind::Remove) => {
                let def = members_def?;
                fold.remove(member_ids(def, filter)?);
            }
            (Some(_), _) => return None,
            (None, PatchOpKind::Add) => fold.add(members(op)?),
            (None, PatchOpKind::Replace) => fold.replace(members(op)?),
            (None, PatchOpKind::Remove) => match &op.value {
                Some(v) if !v.is_null() => {
                    fold.remove(members(op)?.into_iter().map(|m| m.value).collect());
                }
                _ => fold.replace(Vec::new()),
            },
        }
    }
    let rest = PatchRequest::from_ops(rest, req.registry().clone(), req.kind());
    Some((rest, fold.delta))
}

/// The members an operation's value lists (already canonical); `None` if one has no id.
fn members(op: &PatchOp) -> Option<Vec<Member>> {
    match &op.value {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(Member::from_json).collect(),
        Some(one) => Some(vec![Member::from_json(one)?]),
    }
}

/// The ids of `value eq "id"` or an `or` of them; `None` for any other filter.
fn member_ids(def: &crate::schema::AttributeDef, filter: &Filter) -> Option<Vec<String>> {
    let mut ids = Vec::new();
    // An explicit stack: a long `or` chain is a deep tree.
    let mut stack = vec![filter];
    while let Some(f) = stack.pop() {
        match f {
            Filter::Or(a, b) => {
                stack.push(b);
                stack.push(a);
            }
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: CompValue::Str(id),
            } if path.urn.is_none() && relative_name(def, path) == Some("value") => {
                ids.push(id.clone());
            }
            _ => return None,
        }
    }
    Some(ids)
}

/// Folds member operations in order into one delta whose application (replace, then remove,
/// then add-unless-present) has the same effect as the operations in sequence.
#[derive(Default)]
struct Fold {
    delta: MembershipDelta,
}

impl Fold {
    fn replace(&mut self, members: Vec<Member>) {
        let mut seen = HashSet::new();
        let list = members
            .into_iter()
            .filter(|m| seen.insert(m.value.clone()))
            .collect();
        self.delta = MembershipDelta {
            replace: Some(list),
            remove: Vec::new(),
            add: Vec::new(),
        };
    }

    fn remove(&mut self, ids: Vec<String>) {
        let gone: HashSet<&str> = ids.iter().map(String::as_str).collect();
        if let Some(list) = &mut self.delta.replace {
            list.retain(|m| !gone.contains(m.value.as_str()));
            return;
        }
        // A member added earlier in this request and removed now must end up absent.
        self.delta.add.retain(|m| !gone.contains(m.value.as_str()));
        let mut known: HashSet<String> = self.delta.remove.iter().cloned().collect();
        for id in &ids {
            if known.insert(id.clone()) {
                self.delta.remove.push(id.clone());
            }
        }
    }

    fn add(&mut self, members: Vec<Member>) {
        let target = match &mut self.delta.replace {
            Some(list) => list,
            None => &mut self.delta.add,
        };
        let mut present: HashSet<String> = target.iter().map(|m| m.value.clone()).collect();
        for m in members {
            // Adding a member that is already there changes nothing (the first add wins).
            if present.insert(m.value.clone()) {
                target.push(m);
            }
        }
    }
}
