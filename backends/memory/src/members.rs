//! A group's member list as an ordered set: O(log n) insert and remove by id, iteration in
//! insertion order, and no copying of the list for a single-member change.

use scimd_core::ResourceKind;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

/// What is stored about one member besides its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberInfo {
    /// Whether the member is a user or a group (derived from the id, never from the client).
    pub kind: ResourceKind,
    /// The display name the client sent, if any.
    pub display: Option<String>,
}

#[derive(Debug, Clone)]
struct Slot {
    seq: u64,
    info: MemberInfo,
}

/// The members of one group.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemberList {
    by_id: HashMap<String, Slot>,
    // Insertion order, so the list reads back in the order members were added; a sequence
    // number instead of a position keeps removal independent of the list's length.
    order: BTreeMap<u64, String>,
    next_seq: u64,
}

impl MemberList {
    /// Adds a member unless it is already present (a present member is left as it is).
    /// Returns whether the list changed.
    pub fn insert(&mut self, id: &str, info: MemberInfo) -> bool {
        if self.by_id.contains_key(id) {
            return false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, id.to_string());
        self.by_id.insert(id.to_string(), Slot { seq, info });
        true
    }

    /// Removes a member. Returns whether it was present.
    pub fn remove(&mut self, id: &str) -> bool {
        match self.by_id.remove(id) {
            Some(slot) => {
                self.order.remove(&slot.seq);
                true
            }
            None => false,
        }
    }

    /// Whether `id` is a member.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the group has no members.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The members in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MemberInfo)> + '_ {
        self.order
            .values()
            .filter_map(|id| self.by_id.get(id).map(|slot| (id.as_str(), &slot.info)))
    }

    /// The ids of the members, in insertion order.
    pub fn ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.order.values().map(String::as_str)
    }

    /// Whether the list holds exactly these members, in this order, with these displays.
    pub fn same_as(&self, other: &[(String, MemberInfo)]) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .zip(other)
                .all(|((id, info), (oid, oinfo))| id == oid && info == oinfo)
    }

    /// The SCIM `members` value: `[{value, type, display?}]`, the stored shape of
    /// [`scimd_core::patch::Member`]. `$ref` is left to the server,
    /// which knows the base URL.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.iter()
                .map(|(id, info)| {
                    let mut m = Map::with_capacity(3);
                    m.insert("value".into(), Value::String(id.to_string()));
                    m.insert("type".into(), Value::String(info.kind.name().to_string()));
                    if let Some(d) = &info.display {
                        m.insert("display".into(), Value::String(d.clone()));
                    }
                    Value::Object(m)
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(display: Option<&str>) -> MemberInfo {
        MemberInfo {
            kind: ResourceKind::User,
            display: display.map(str::to_string),
        }
    }

    #[test]
    fn members_keep_insertion_order_across_removals() {
        let mut l = MemberList::default();
        for id in ["c", "a", "b", "d"] {
            assert!(l.insert(id, user(None)));
        }
        assert!(l.remove("a"));
        assert!(!l.remove("a"));
        assert!(l.insert("a", user(None)));
        assert_eq!(l.ids().collect::<Vec<_>>(), ["c", "b", "d", "a"]);
        assert_eq!(l.len(), 4);
    }

    #[test]
    fn inserting_a_present_member_leaves_it_unchanged() {
        let mut l = MemberList::default();
        assert!(l.insert("a", user(Some("Ann"))));
        assert!(!l.insert("a", user(Some("Other"))));
        assert_eq!(
            l.to_json(),
            serde_json::json!([{"value": "a", "display": "Ann", "type": "User"}])
        );
    }
}
