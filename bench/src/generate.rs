//! `generate`: the data set [`crate::seed`] would create, written as a file of SCIM resources
//! (one JSON object per line, ids included) for a bulk loader such as `scimd import`, with the
//! state file `run` needs. Seeding a million users through HTTP takes hours on a server that
//! makes every write durable on its own; loading them from a file takes minutes.

use crate::data::{self, Identities};
use crate::seed::regular_group_members;
use crate::state::{BigGroup, SeededGroup, SeededUser, State};
use anyhow::{Context, bail};
use rand::Rng;
use serde_json::Value;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Users.
    pub users: u64,
    /// Groups, the big group included.
    pub groups: u64,
    /// Members of the big group (the first K users); 0 for none.
    pub big_group: u64,
    /// Members of each other group.
    pub group_members: usize,
    /// The resources file to write.
    pub out: PathBuf,
    /// The state file to write.
    pub state_path: PathBuf,
}

/// A random version-4 UUID, as servers assign them.
fn new_id(rng: &mut impl Rng) -> String {
    data::uuid_v4(rng.random(), rng.random())
}

fn with_id(mut resource: Value, id: &str) -> Value {
    if let Some(o) = resource.as_object_mut() {
        o.insert("id".into(), Value::String(id.to_string()));
    }
    resource
}

/// Writes the resources file and the state file for the server at `url`: users first, then the
/// big group, then the other groups (members before the groups that list them).
pub fn generate(url: &str, opts: &GenerateOptions) -> anyhow::Result<State> {
    if opts.big_group > opts.users {
        bail!(
            "--big-group {} needs at least as many users (--users {})",
            opts.big_group,
            opts.users
        );
    }
    if opts.state_path.exists() {
        bail!(
            "{} exists: a generated data set starts a new state file",
            opts.state_path.display()
        );
    }
    let mut state = State::new(url, data::random_prefix());
    let ids = Identities::new(&state.prefix);
    let mut rng = rand::rng();
    let file = std::fs::File::create(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut line = |v: &Value| -> anyhow::Result<()> {
        serde_json::to_writer(&mut out, v)?;
        out.write_all(b"\n")?;
        Ok(())
    };
    for i in 0..opts.users {
        let id = new_id(&mut rng);
        line(&with_id(ids.user(i, None), &id))?;
        state.users.push(SeededUser(i, id));
    }
    let mut regular = opts.groups;
    if opts.big_group > 0 {
        regular = regular.saturating_sub(1);
        let id = new_id(&mut rng);
        let members: Vec<&str> = state.users[..opts.big_group as usize]
            .iter()
            .map(|u| u.1.as_str())
            .collect();
        let body = ids.group(
            &ids.big_group_name(),
            &format!("{}-big", ids.prefix()),
            &members,
        );
        line(&with_id(body, &id))?;
        state.big_group = Some(BigGroup {
            id,
            members: opts.big_group,
        });
    }
    for j in 0..regular {
        let id = new_id(&mut rng);
        let members = regular_group_members(&state.users, j, opts.group_members);
        let ext = format!("{}-g{j}", ids.prefix());
        line(&with_id(ids.group(&ids.group_name(j), &ext, &members), &id))?;
        state.groups.push(SeededGroup(j, id));
    }
    out.flush()
        .with_context(|| format!("cannot write {}", opts.out.display()))?;
    state.save(&opts.state_path)?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_users_then_groups_with_ids_matching_the_state() {
        let dir = std::env::temp_dir().join(format!("scimd-bench-gen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let opts = GenerateOptions {
            users: 50,
            groups: 3,
            big_group: 20,
            group_members: 5,
            out: dir.join("data.ndjson"),
            state_path: dir.join("state.json"),
        };
        let state = generate("http://x/scim/v2", &opts).unwrap();
        let text = std::fs::read_to_string(&opts.out).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 53);
        assert_eq!(lines[0]["id"], state.users[0].1.as_str());
        assert_eq!(
            lines[0]["userName"],
            Identities::new(&state.prefix).user_name(0)
        );
        let big = &lines[50];
        assert_eq!(big["id"], state.big_group.as_ref().unwrap().id.as_str());
        assert_eq!(big["members"].as_array().unwrap().len(), 20);
        assert_eq!(state.groups.len(), 2);
        assert_eq!(lines[52]["id"], state.groups[1].1.as_str());
        // Ids are unique and the state file reloads.
        let mut all: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 53);
        let loaded = State::load(&opts.state_path, "http://x/scim/v2")
            .unwrap()
            .unwrap();
        assert_eq!(loaded, state);
        // A second run refuses to overwrite the state.
        assert!(generate("http://x/scim/v2", &opts).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
