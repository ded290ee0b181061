//! The state file: what `seed` created on which server, so that `run` can address seeded
//! resources without searching for them and a later `seed` continues instead of starting over.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The state file format version.
pub const FORMAT: u32 = 1;

/// A seeded user: its data-set index (see [`crate::data::Identities`]) and server id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededUser(pub u64, pub String);

/// A seeded group: its data-set index and server id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededGroup(pub u64, pub String);

/// The big group: its members are exactly the first `members` entries of [`State::users`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BigGroup {
    /// The group's server id.
    pub id: String,
    /// How many of the seeded users (from the start of the list) are members.
    pub members: u64,
}

/// Everything one data set holds on one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// [`FORMAT`].
    pub format: u32,
    /// The SCIM base URL the data set lives on.
    pub url: String,
    /// The data-set prefix (see [`crate::data::Identities`]).
    pub prefix: String,
    /// Seeded users, in creation order.
    pub users: Vec<SeededUser>,
    /// Seeded groups other than the big group.
    pub groups: Vec<SeededGroup>,
    /// The big group, once created.
    pub big_group: Option<BigGroup>,
}

impl State {
    /// An empty data set for `url`.
    pub fn new(url: &str, prefix: String) -> State {
        State {
            format: FORMAT,
            url: url.to_string(),
            prefix,
            users: Vec::new(),
            groups: Vec::new(),
            big_group: None,
        }
    }

    /// Loads the state for `url` from `path`; `Ok(None)` when the file does not exist. A file
    /// written for another URL is an error rather than silently mixing two servers' ids.
    pub fn load(path: &Path, url: &str) -> anyhow::Result<Option<State>> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let state: State = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a scimd-bench state file", path.display()))?;
        if state.format != FORMAT {
            bail!(
                "{} has format {} (expected {FORMAT})",
                path.display(),
                state.format
            );
        }
        if state.url != url {
            bail!(
                "{} holds a data set of {}, not {url}; pass another --state file",
                path.display(),
                state.url
            );
        }
        Ok(Some(state))
    }

    /// Writes the state atomically (a temporary file renamed over the old one), so an
    /// interrupted write never leaves a truncated file.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec(self)?;
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
    }

    /// The next unused user index.
    pub fn next_user_index(&self) -> u64 {
        self.users.iter().map(|u| u.0 + 1).max().unwrap_or(0)
    }

    /// The next unused group index.
    pub fn next_group_index(&self) -> u64 {
        self.groups.iter().map(|g| g.0 + 1).max().unwrap_or(0)
    }

    /// How many groups exist, the big group included.
    pub fn group_count(&self) -> u64 {
        self.groups.len() as u64 + u64::from(self.big_group.is_some())
    }

    /// Members of the big group (a prefix of [`State::users`]).
    pub fn big_group_members(&self) -> &[SeededUser] {
        let n = self.big_group.as_ref().map_or(0, |b| b.members as usize);
        &self.users[..n.min(self.users.len())]
    }

    /// Seeded users that are not in the big group.
    pub fn non_members(&self) -> &[SeededUser] {
        &self.users[self.big_group_members().len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let mut s = State::new("http://127.0.0.1:1/scim/v2", "abc123".into());
        s.users = (0..5).map(|i| SeededUser(i * 2, format!("u{i}"))).collect();
        s.groups = vec![SeededGroup(0, "g0".into()), SeededGroup(3, "g3".into())];
        s.big_group = Some(BigGroup {
            id: "big".into(),
            members: 2,
        });
        s
    }

    #[test]
    fn state_round_trips_through_its_file() {
        let dir = std::env::temp_dir().join(format!("scimd-bench-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert_eq!(
            State::load(&path, "http://127.0.0.1:1/scim/v2").unwrap(),
            None
        );
        let s = sample();
        s.save(&path).unwrap();
        assert_eq!(
            State::load(&path, "http://127.0.0.1:1/scim/v2").unwrap(),
            Some(s)
        );
        assert!(!path.with_extension("json.tmp").exists());
        let err = State::load(&path, "http://other/scim/v2").unwrap_err();
        assert!(err.to_string().contains("another --state"), "{err}");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(State::load(&path, "http://127.0.0.1:1/scim/v2").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn next_indexes_continue_after_the_highest_one_seeded() {
        let s = sample();
        assert_eq!(s.next_user_index(), 9);
        assert_eq!(s.next_group_index(), 4);
        assert_eq!(s.group_count(), 3);
        let empty = State::new("u", "p".into());
        assert_eq!((empty.next_user_index(), empty.group_count()), (0, 0));
    }

    #[test]
    fn big_group_members_are_a_prefix_of_the_users() {
        let s = sample();
        assert_eq!(s.big_group_members().len(), 2);
        assert_eq!(s.non_members()[0].1, "u2");
        let mut over = s.clone();
        over.big_group.as_mut().unwrap().members = 99;
        assert_eq!(over.big_group_members().len(), 5);
        assert!(over.non_members().is_empty());
    }
}
