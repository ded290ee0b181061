//! `scimd import`: loads users and groups from a file of SCIM resources, one JSON object per
//! line (NDJSON), into a source's backend.
//!
//! Each resource is validated like a POST body; the `id` it brings is kept (a directory moved
//! from another SCIM server keeps the ids its identity provider knows), and a new one is assigned
//! when it has none. Consecutive resources of one type are stored in batches, one transaction
//! each, so a million users load in minutes rather than the hours a million POSTs take. Groups
//! must come after their members. No hooks run: an import moves data, it does not provision.

use crate::app::Source;
use anyhow::{Context, bail};
use scimd_core::{Imported, ResourceKind};
use serde_json::Value;
use std::io::BufRead;

/// What an import stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    /// Users stored.
    pub users: u64,
    /// Groups stored.
    pub groups: u64,
}

impl ImportCounts {
    /// Users and groups together.
    pub fn total(&self) -> u64 {
        self.users + self.groups
    }
}

/// Resources read but not yet stored: consecutive lines of one type.
struct Pending {
    kind: ResourceKind,
    first_line: u64,
    items: Vec<Imported>,
}

/// Imports every line of `input` into `source`, `batch` resources per transaction; `progress`
/// is called after each stored batch. On an error, the batches before the failing one are
/// stored and the error names the first line that was not.
pub async fn import(
    source: &Source,
    input: impl BufRead,
    batch: usize,
    mut progress: impl FnMut(ImportCounts),
) -> anyhow::Result<ImportCounts> {
    let batch = batch.max(1);
    let mut counts = ImportCounts::default();
    let mut pending: Option<Pending> = None;
    for (n, line) in (1u64..).zip(input.lines()) {
        let line = line.with_context(|| format!("while reading line {n}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let prepared = serde_json::from_str::<Value>(&line)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .and_then(|body| {
                source
                    .service
                    .prepare_import(&body)
                    .map_err(|e| anyhow::anyhow!("{e}"))
            });
        let (kind, item) = match prepared {
            Ok(p) => p,
            Err(e) => {
                let stored = pending.as_ref().map_or(n, |p| p.first_line);
                bail!(
                    "line {n}: {e} (lines before {stored} are stored, nothing from line {stored} on)"
                );
            }
        };
        if let Some(p) = pending.take_if(|p| p.kind != kind || p.items.len() >= batch) {
            store(source, p, &mut counts).await?;
            progress(counts);
        }
        pending
            .get_or_insert_with(|| Pending {
                kind,
                first_line: n,
                items: Vec::with_capacity(batch),
            })
            .items
            .push(item);
    }
    if let Some(p) = pending.take() {
        store(source, p, &mut counts).await?;
        progress(counts);
    }
    Ok(counts)
}

async fn store(source: &Source, p: Pending, counts: &mut ImportCounts) -> anyhow::Result<()> {
    let n = p.items.len() as u64;
    let first = p.first_line;
    source.service.import(p.kind, p.items).await.map_err(|e| {
        anyhow::anyhow!(
            "the batch of {n} {}s from line {first}: {e} (lines before {first} are stored, \
             nothing from line {first} on)",
            p.kind.name()
        )
    })?;
    match p.kind {
        ResourceKind::User => counts.users += n,
        ResourceKind::Group => counts.groups += n,
    }
    Ok(())
}
