//! `seed`: creates the data set — users through `/Bulk` (within the advertised limits) or
//! parallel POSTs, groups, and one big group filled by PATCH batches — and records every id in
//! the state file.
//!
//! Seeding continues where the state file stops: users and groups already recorded are not
//! created again. A resource created but not recorded (the process was killed between the
//! server's answer and the next save) comes back as a 409 on the next attempt; its id is then
//! looked up by its unique name, so a restarted seed neither fails nor duplicates.

use crate::client::{Conn, Reply, Target, encode_query};
use crate::data::{self, Identities};
use crate::discovery::{BulkLimits, ServiceConfig};
use crate::state::{BigGroup, SeededGroup, SeededUser, State};
use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The start of a BulkRequest body; operations joined by `,` and [`BULK_TAIL`] follow.
const BULK_HEAD: &str =
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":["#;
/// The end of a BulkRequest body.
const BULK_TAIL: &str = "]}";
/// Users created between two saves of the state file.
const USER_CHUNK: u64 = 20_000;
/// Error descriptions kept per phase.
const SAMPLES: usize = 5;

/// How users and groups are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// `/Bulk` when the server advertises it, else POST.
    Auto,
    /// `/Bulk` requests within `maxOperations` and `maxPayloadSize`.
    Bulk,
    /// One POST per resource, from concurrent workers.
    Post,
}

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// Total users the data set should have.
    pub users: u64,
    /// Total groups the data set should have, the big group included.
    pub groups: u64,
    /// Members of the big group (0: no big group).
    pub big_group: u64,
    /// How to create resources.
    pub via: Via,
    /// Concurrent requests.
    pub concurrency: usize,
    /// Members of each group other than the big one.
    pub group_members: usize,
    /// Members added per PATCH while filling the big group.
    pub member_batch: usize,
    /// The state file.
    pub state_path: PathBuf,
}

/// Splits operations of the given serialized sizes into consecutive batches whose BulkRequest
/// bodies hold at most `max_operations` operations and `max_payload_size` bytes.
pub fn plan_batches(op_sizes: &[usize], limits: BulkLimits) -> anyhow::Result<Vec<Range<usize>>> {
    let envelope = BULK_HEAD.len() + BULK_TAIL.len();
    let mut batches = Vec::new();
    let mut start = 0;
    let mut size = envelope;
    for (i, &op) in op_sizes.iter().enumerate() {
        if envelope + op > limits.max_payload_size {
            bail!(
                "one Bulk operation is {op} bytes, more than maxPayloadSize ({}) allows",
                limits.max_payload_size
            );
        }
        let count = i - start;
        let with_op = size + op + usize::from(count > 0);
        if count > 0 && (count >= limits.max_operations || with_op > limits.max_payload_size) {
            batches.push(start..i);
            start = i;
            size = envelope + op;
        } else {
            size = with_op;
        }
    }
    if start < op_sizes.len() {
        batches.push(start..op_sizes.len());
    }
    Ok(batches)
}

/// A BulkRequest body from serialized operations.
fn bulk_body(ops: &[String]) -> String {
    let len = BULK_HEAD.len() + BULK_TAIL.len() + ops.iter().map(|o| o.len() + 1).sum::<usize>();
    let mut body = String::with_capacity(len);
    body.push_str(BULK_HEAD);
    for (k, op) in ops.iter().enumerate() {
        if k > 0 {
            body.push(',');
        }
        body.push_str(op);
    }
    body.push_str(BULK_TAIL);
    body
}

/// The result of one create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Created with this id.
    Id(String),
    /// 409: a resource with the same unique name exists.
    Conflict,
    /// Anything else, described.
    Failed(String),
}

/// The id in a resource's `location` URL (its last path segment).
fn id_from_location(location: &str) -> Option<String> {
    let path = location.split(['?', '#']).next()?;
    let id = path.trim_end_matches('/').rsplit('/').next()?;
    (!id.is_empty()).then(|| id.to_string())
}

/// Reads a BulkResponse: for each operation, its `bulkId` and outcome.
pub fn parse_bulk_response(resp: &Value) -> Vec<(String, Created)> {
    let Some(ops) = resp["Operations"].as_array() else {
        return Vec::new();
    };
    ops.iter()
        .filter_map(|op| {
            let bulk_id = op["bulkId"].as_str()?.to_string();
            let status = match &op["status"] {
                Value::String(s) => s.trim().parse::<u16>().ok(),
                Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                // RFC 7644's own examples once nested it as {"code": ...}.
                Value::Object(o) => o.get("code").and_then(Value::as_u64).map(|n| n as u16),
                _ => None,
            };
            let outcome = match status {
                Some(s) if (200..300).contains(&s) => op["response"]["id"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| op["location"].as_str().and_then(id_from_location))
                    .map(Created::Id)
                    .unwrap_or_else(|| Created::Failed(format!("{s} without a location"))),
                Some(409) => Created::Conflict,
                _ => Created::Failed(format!(
                    "{} {}",
                    op["status"],
                    crate::client::snippet(op["response"].to_string().as_bytes(), 300)
                )),
            };
            Some((bulk_id, outcome))
        })
        .collect()
}

/// Counts finished items and prints progress every two seconds.
struct Progress {
    label: String,
    total: u64,
    done: AtomicU64,
    started: Instant,
}

impl Progress {
    fn start(label: &str, total: u64) -> (Arc<Progress>, tokio::task::JoinHandle<()>) {
        let p = Arc::new(Progress {
            label: label.to_string(),
            total,
            done: AtomicU64::new(0),
            started: Instant::now(),
        });
        let ticker = {
            let p = p.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    p.print();
                }
            })
        };
        (p, ticker)
    }

    fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    fn print(&self) {
        let done = self.done.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        eprintln!(
            "{}: {done}/{} ({:.0}/s)",
            self.label,
            self.total,
            done as f64 / secs
        );
    }
}

/// Creates resources of one type, concurrently, through Bulk or POST.
struct Creator {
    target: Target,
    /// `Users` or `Groups`.
    endpoint: &'static str,
    /// The attribute that is unique and identifies a resource after a 409.
    unique_attr: &'static str,
    bulk: Option<BulkLimits>,
    concurrency: usize,
}

/// What a batch of creates produced.
#[derive(Debug, Default)]
struct Outcome {
    created: Vec<(u64, String)>,
    failed: u64,
    samples: Vec<String>,
}

impl Outcome {
    fn fail(&mut self, what: String) {
        self.failed += 1;
        if self.samples.len() < SAMPLES {
            self.samples.push(what);
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.created.extend(other.created);
        self.failed += other.failed;
        for s in other.samples {
            if self.samples.len() < SAMPLES {
                self.samples.push(s);
            }
        }
    }
}

impl Creator {
    /// Creates `items` (data-set index, body); conflicts are resolved to the existing ids.
    async fn create(
        &self,
        items: Vec<(u64, Value)>,
        progress: &Arc<Progress>,
    ) -> anyhow::Result<Outcome> {
        let items = Arc::new(items);
        let results = match self.bulk {
            Some(limits) => self.create_bulk(items.clone(), limits, progress).await?,
            None => self.create_post(items.clone(), progress).await?,
        };
        let mut out = Outcome::default();
        let mut conn = self.target.conn();
        for (k, result) in results {
            let (index, body) = &items[k];
            match result {
                Created::Id(id) => out.created.push((*index, id)),
                Created::Failed(what) => out.fail(what),
                Created::Conflict => match self.find_existing(&mut conn, body).await {
                    Ok(id) => out.created.push((*index, id)),
                    Err(e) => out.fail(format!("409, and the existing resource: {e:#}")),
                },
            }
        }
        out.created.sort_unstable_by_key(|(i, _)| *i);
        Ok(out)
    }

    /// The id of the resource with the same unique name as `body`.
    async fn find_existing(&self, conn: &mut Conn, body: &Value) -> anyhow::Result<String> {
        let name = body[self.unique_attr].as_str().unwrap_or_default();
        let filter = format!("{} eq {}", self.unique_attr, Value::String(name.into()));
        let page = conn
            .get_json(&format!(
                "/{}?filter={}&attributes=id",
                self.endpoint,
                encode_query(&filter)
            ))
            .await?;
        match page["Resources"].as_array().map(Vec::as_slice) {
            Some([one]) => one["id"]
                .as_str()
                .map(str::to_string)
                .context("the resource found has no id"),
            _ => bail!("{filter} does not find exactly one resource"),
        }
    }

    async fn create_post(
        &self,
        items: Arc<Vec<(u64, Value)>>,
        progress: &Arc<Progress>,
    ) -> anyhow::Result<Vec<(usize, Created)>> {
        let next = Arc::new(AtomicUsize::new(0));
        let path = format!("/{}", self.endpoint);
        let mut workers = Vec::new();
        for _ in 0..self.concurrency.max(1) {
            let (items, next, progress, path) =
                (items.clone(), next.clone(), progress.clone(), path.clone());
            let mut conn = self.target.conn();
            workers.push(tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some((_, body)) = items.get(k) else { break };
                    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
                    let created = match conn.send(Method::POST, &path, Some(bytes)).await {
                        Ok(reply) => created_from_reply(&reply),
                        Err(e) => Created::Failed(format!("{e:#}")),
                    };
                    out.push((k, created));
                    progress.add(1);
                }
                out
            }));
        }
        let mut results = Vec::with_capacity(items.len());
        for w in workers {
            results.extend(w.await.context("a seeding worker failed")?);
        }
        Ok(results)
    }

    async fn create_bulk(
        &self,
        items: Arc<Vec<(u64, Value)>>,
        limits: BulkLimits,
        progress: &Arc<Progress>,
    ) -> anyhow::Result<Vec<(usize, Created)>> {
        let ops: Vec<String> = items
            .iter()
            .enumerate()
            .map(|(k, (_, body))| {
                json!({
                    "method": "POST",
                    "path": format!("/{}", self.endpoint),
                    "bulkId": format!("b{k}"),
                    "data": body,
                })
                .to_string()
            })
            .collect();
        let sizes: Vec<usize> = ops.iter().map(String::len).collect();
        let batches = Arc::new(plan_batches(&sizes, limits)?);
        let ops = Arc::new(ops);
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..self.concurrency.max(1) {
            let (ops, batches, next, progress) =
                (ops.clone(), batches.clone(), next.clone(), progress.clone());
            let mut conn = self.target.conn();
            workers.push(tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    let Some(range) = batches.get(b) else { break };
                    let body = Bytes::from(bulk_body(&ops[range.clone()]));
                    let reply = conn.send(Method::POST, "/Bulk", Some(body)).await;
                    out.extend(bulk_outcomes(range.clone(), reply));
                    progress.add(range.len() as u64);
                }
                out
            }));
        }
        let mut results = Vec::with_capacity(items.len());
        for w in workers {
            results.extend(w.await.context("a seeding worker failed")?);
        }
        Ok(results)
    }
}

fn created_from_reply(reply: &Reply) -> Created {
    if reply.status.is_success() {
        match reply.json() {
            Ok(v) => match v["id"].as_str() {
                Some(id) => Created::Id(id.to_string()),
                None => Created::Failed(format!("{} without an id", reply.status)),
            },
            Err(e) => Created::Failed(format!("{e:#}")),
        }
    } else if reply.status.as_u16() == 409 {
        Created::Conflict
    } else {
        Created::Failed(reply.describe(300))
    }
}

/// The outcome of each operation of a Bulk batch (`range` indexes the chunk's items; the
/// operations' bulkIds are `b<index>`).
fn bulk_outcomes(range: Range<usize>, reply: anyhow::Result<Reply>) -> Vec<(usize, Created)> {
    let whole_batch = |what: String| -> Vec<(usize, Created)> {
        range
            .clone()
            .map(|k| (k, Created::Failed(what.clone())))
            .collect()
    };
    let reply = match reply {
        Ok(r) if r.status.is_success() => r,
        Ok(r) => return whole_batch(format!("Bulk: {}", r.describe(300))),
        Err(e) => return whole_batch(format!("Bulk: {e:#}")),
    };
    let parsed = match reply.json() {
        Ok(v) => parse_bulk_response(&v),
        Err(e) => return whole_batch(format!("{e:#}")),
    };
    let mut by_index: Vec<Option<Created>> = vec![None; range.len()];
    for (bulk_id, created) in parsed {
        let k = bulk_id
            .strip_prefix('b')
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(slot) = k
            .and_then(|k| k.checked_sub(range.start))
            .and_then(|off| by_index.get_mut(off))
        {
            *slot = Some(created);
        }
    }
    by_index
        .into_iter()
        .zip(range)
        .map(|(c, k)| {
            (
                k,
                c.unwrap_or_else(|| Created::Failed("missing from the BulkResponse".into())),
            )
        })
        .collect()
}

/// Which seeded users group `j` gets: `n` spread deterministically over the users.
pub fn regular_group_members(users: &[SeededUser], j: u64, n: usize) -> Vec<&str> {
    if users.is_empty() {
        return Vec::new();
    }
    let len = users.len() as u64;
    let mut picked: Vec<&str> = (0..n as u64)
        .map(|t| {
            let k = (j.wrapping_mul(7_919).wrapping_add(t.wrapping_mul(104_729))) % len;
            users[k as usize].1.as_str()
        })
        .collect();
    picked.sort_unstable();
    picked.dedup();
    picked
}

fn report_failures(what: &str, out: &Outcome) {
    if out.failed > 0 {
        eprintln!("{what}: {} failed", out.failed);
        for s in &out.samples {
            eprintln!("  {s}");
        }
    }
}

/// Runs `seed`.
pub async fn seed(target: &Target, opts: &SeedOptions) -> anyhow::Result<()> {
    let mut state = match State::load(&opts.state_path, target.base_url())? {
        Some(s) => {
            eprintln!(
                "continuing data set {} from {}: {} users, {} groups",
                s.prefix,
                opts.state_path.display(),
                s.users.len(),
                s.group_count()
            );
            s
        }
        None => State::new(target.base_url(), data::random_prefix()),
    };
    if opts.big_group > opts.users.max(state.users.len() as u64) {
        bail!(
            "--big-group {} needs at least as many users (--users {})",
            opts.big_group,
            opts.users
        );
    }
    let ids = Identities::new(&state.prefix);
    let service = match ServiceConfig::fetch(&mut target.conn()).await {
        Ok(s) => s,
        Err(e) if opts.via != Via::Bulk => {
            eprintln!("warning: no /ServiceProviderConfig ({e:#}); creating through POST");
            ServiceConfig::default()
        }
        Err(e) => return Err(e.context("while reading /ServiceProviderConfig")),
    };
    let bulk = match (opts.via, service.bulk) {
        (Via::Post, _) | (Via::Auto, None) => None,
        (_, Some(limits)) => Some(limits),
        (Via::Bulk, None) => bail!("the server does not advertise Bulk support; use --via post"),
    };
    match bulk {
        Some(l) => eprintln!(
            "creating through /Bulk (maxOperations {}, maxPayloadSize {} bytes)",
            l.max_operations, l.max_payload_size
        ),
        None => eprintln!("creating through POST"),
    }
    let started = Instant::now();

    // Users, in chunks so that an interruption loses little.
    let missing = opts.users.saturating_sub(state.users.len() as u64);
    if missing > 0 {
        let creator = Creator {
            target: target.clone(),
            endpoint: "Users",
            unique_attr: "userName",
            bulk,
            concurrency: opts.concurrency,
        };
        let (progress, ticker) = Progress::start("users", missing);
        let mut next = state.next_user_index();
        let end = next + missing;
        let mut total = Outcome::default();
        while next < end {
            let chunk_end = (next + USER_CHUNK).min(end);
            let items: Vec<(u64, Value)> =
                (next..chunk_end).map(|i| (i, ids.user(i, None))).collect();
            let out = creator.create(items, &progress).await?;
            state
                .users
                .extend(out.created.iter().map(|(i, id)| SeededUser(*i, id.clone())));
            state.save(&opts.state_path)?;
            total.merge(Outcome {
                created: Vec::new(),
                ..out
            });
            next = chunk_end;
        }
        ticker.abort();
        progress.print();
        report_failures("users", &total);
    }

    // The big group first (it counts towards --groups), then the others.
    if opts.big_group > 0 && state.big_group.is_none() {
        let body = ids.group(&ids.big_group_name(), &format!("{}-big", ids.prefix()), &[]);
        let creator = Creator {
            target: target.clone(),
            endpoint: "Groups",
            unique_attr: "displayName",
            bulk: None,
            concurrency: 1,
        };
        let (progress, ticker) = Progress::start("big group", 1);
        let out = creator.create(vec![(0, body)], &progress).await?;
        ticker.abort();
        report_failures("big group", &out);
        let Some((_, id)) = out.created.into_iter().next() else {
            bail!("the big group could not be created");
        };
        state.big_group = Some(BigGroup { id, members: 0 });
        state.save(&opts.state_path)?;
    }
    let missing = opts.groups.saturating_sub(state.group_count());
    if missing > 0 {
        let creator = Creator {
            target: target.clone(),
            endpoint: "Groups",
            unique_attr: "displayName",
            bulk,
            concurrency: opts.concurrency,
        };
        let first = state.next_group_index();
        let items: Vec<(u64, Value)> = (first..first + missing)
            .map(|j| {
                let members = regular_group_members(&state.users, j, opts.group_members);
                let ext = format!("{}-g{j}", ids.prefix());
                (j, ids.group(&ids.group_name(j), &ext, &members))
            })
            .collect();
        let (progress, ticker) = Progress::start("groups", missing);
        let out = creator.create(items, &progress).await?;
        ticker.abort();
        progress.print();
        report_failures("groups", &out);
        state.groups.extend(
            out.created
                .iter()
                .map(|(j, id)| SeededGroup(*j, id.clone())),
        );
        state.save(&opts.state_path)?;
    }

    fill_big_group(target, &mut state, opts).await?;

    let secs = started.elapsed().as_secs_f64();
    println!(
        "data set {}: {} users, {} groups{}; seeded in {secs:.1} s; state in {}",
        state.prefix,
        state.users.len(),
        state.group_count(),
        state
            .big_group
            .as_ref()
            .map(|b| format!(", big group {} with {} members", b.id, b.members))
            .unwrap_or_default(),
        opts.state_path.display()
    );
    Ok(())
}

/// Adds the first `--big-group` users to the big group, `--member-batch` per PATCH, in order,
/// so that its members are always a prefix of the user list.
async fn fill_big_group(
    target: &Target,
    state: &mut State,
    opts: &SeedOptions,
) -> anyhow::Result<()> {
    let Some(big) = state.big_group.clone() else {
        return Ok(());
    };
    let want = opts.big_group.min(state.users.len() as u64);
    if big.members >= want {
        return Ok(());
    }
    let mut conn = target.conn();
    // The response would repeat every member; a client that only changes membership asks for
    // none of them (RFC 7644 §3.9 applies `excludedAttributes` to PATCH responses too).
    let path = format!("/Groups/{}?excludedAttributes=members", big.id);
    let (progress, ticker) = Progress::start("big group members", want - big.members);
    let mut members = big.members;
    let mut last_save = Instant::now();
    let mut failure = None;
    while members < want {
        let end = (members + opts.member_batch.max(1) as u64).min(want);
        let body = {
            let batch: Vec<&str> = state.users[members as usize..end as usize]
                .iter()
                .map(|u| u.1.as_str())
                .collect();
            Bytes::from(data::add_members(&batch).to_string())
        };
        match conn.send(Method::PATCH, &path, Some(body)).await {
            Ok(reply) if reply.status.is_success() => {}
            Ok(reply) => {
                failure = Some(anyhow::anyhow!("adding members: {}", reply.describe(500)));
                break;
            }
            Err(e) => {
                failure = Some(e.context("adding members"));
                break;
            }
        }
        progress.add(end - members);
        members = end;
        if last_save.elapsed() > Duration::from_secs(10) {
            set_big_group_members(state, members);
            state.save(&opts.state_path)?;
            last_save = Instant::now();
        }
    }
    ticker.abort();
    set_big_group_members(state, members);
    state.save(&opts.state_path)?;
    match failure {
        Some(e) => Err(e),
        None => {
            progress.print();
            Ok(())
        }
    }
}

fn set_big_group_members(state: &mut State, members: u64) {
    if let Some(b) = state.big_group.as_mut() {
        b.members = members;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BulkLimits = BulkLimits {
        max_operations: 3,
        max_payload_size: 1000,
    };

    fn body_len(sizes: &[usize]) -> usize {
        BULK_HEAD.len() + BULK_TAIL.len() + sizes.iter().sum::<usize>() + sizes.len() - 1
    }

    #[test]
    fn batches_respect_max_operations() {
        let b = plan_batches(&[10; 7], LIMITS).unwrap();
        assert_eq!(b, vec![0..3, 3..6, 6..7]);
    }

    #[test]
    fn batches_respect_max_payload_size_exactly() {
        let envelope = BULK_HEAD.len() + BULK_TAIL.len();
        // Two operations fill the payload to the byte; a third would not fit.
        let op = (1000 - envelope - 1) / 2;
        let extra = (1000 - envelope - 1) % 2;
        let sizes = [op, op + extra, 1];
        assert_eq!(body_len(&sizes[..2]), 1000);
        let b = plan_batches(&sizes, LIMITS).unwrap();
        assert_eq!(b, vec![0..2, 2..3]);
        let body = bulk_body(&["x".repeat(sizes[0]), "y".repeat(sizes[1])]);
        assert_eq!(body.len(), 1000);
    }

    #[test]
    fn an_operation_larger_than_the_payload_limit_is_an_error() {
        assert!(plan_batches(&[10, 2000], LIMITS).is_err());
        assert_eq!(
            plan_batches(&[], LIMITS).unwrap(),
            Vec::<Range<usize>>::new()
        );
    }

    #[test]
    fn bulk_bodies_are_bulk_requests() {
        let ops = vec![r#"{"method":"POST"}"#.to_string(), "{}".to_string()];
        let v: Value = serde_json::from_str(&bulk_body(&ops)).unwrap();
        assert_eq!(
            v["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
        );
        assert_eq!(v["Operations"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn bulk_responses_give_ids_conflicts_and_failures_per_operation() {
        let resp = json!({"Operations": [
            {"bulkId": "b0", "method": "POST", "status": "201",
             "location": "https://h/scim/v2/Users/abc-1"},
            {"bulkId": "b1", "method": "POST", "status": 201,
             "response": {"id": "def-2"}, "location": "https://h/scim/v2/Users/zzz"},
            {"bulkId": "b2", "method": "POST", "status": "409",
             "response": {"scimType": "uniqueness"}},
            {"bulkId": "b3", "method": "POST", "status": "400",
             "response": {"detail": "bad"}},
            {"method": "POST", "status": "201", "location": "https://h/x/no-bulk-id"}
        ]});
        let parsed = parse_bulk_response(&resp);
        assert_eq!(parsed.len(), 4);
        assert_eq!(parsed[0], ("b0".into(), Created::Id("abc-1".into())));
        assert_eq!(parsed[1], ("b1".into(), Created::Id("def-2".into())));
        assert_eq!(parsed[2], ("b2".into(), Created::Conflict));
        assert!(matches!(&parsed[3].1, Created::Failed(d) if d.contains("bad")));
    }

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status: hyper::StatusCode::from_u16(status).unwrap(),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn bulk_outcomes_map_bulk_ids_back_to_items_and_report_missing_ones() {
        let body = json!({"Operations": [
            {"bulkId": "b11", "status": "201", "location": "/Users/u11"},
            {"bulkId": "b99", "status": "201", "location": "/Users/foreign"}
        ]})
        .to_string();
        let out = bulk_outcomes(10..12, Ok(reply(200, &body)));
        assert_eq!(out[0].0, 10);
        assert!(matches!(&out[0].1, Created::Failed(d) if d.contains("missing")));
        assert_eq!(out[1], (11, Created::Id("u11".into())));
    }

    #[test]
    fn a_failed_bulk_request_fails_every_operation_in_it() {
        let out = bulk_outcomes(0..3, Ok(reply(413, r#"{"detail":"too big"}"#)));
        assert_eq!(out.len(), 3);
        assert!(
            out.iter()
                .all(|(_, c)| matches!(c, Created::Failed(d) if d.contains("413")))
        );
        let out = bulk_outcomes(0..1, Err(anyhow::anyhow!("connection reset")));
        assert!(matches!(&out[0].1, Created::Failed(d) if d.contains("reset")));
    }

    #[test]
    fn post_replies_give_the_id_or_a_conflict() {
        assert_eq!(
            created_from_reply(&reply(201, r#"{"id":"x1"}"#)),
            Created::Id("x1".into())
        );
        assert_eq!(created_from_reply(&reply(409, "{}")), Created::Conflict);
        assert!(matches!(
            created_from_reply(&reply(500, "oops")),
            Created::Failed(d) if d.starts_with("500")
        ));
    }

    #[test]
    fn locations_end_in_the_id() {
        assert_eq!(
            id_from_location("https://h/v2/Users/a-1").as_deref(),
            Some("a-1")
        );
        assert_eq!(id_from_location("/Users/a-1/").as_deref(), Some("a-1"));
        assert_eq!(id_from_location("/Users/a?x=1").as_deref(), Some("a"));
        assert_eq!(id_from_location(""), None);
    }

    #[test]
    fn regular_groups_get_distinct_seeded_members() {
        let users: Vec<SeededUser> = (0..50).map(|i| SeededUser(i, format!("u{i}"))).collect();
        let m = regular_group_members(&users, 3, 10);
        assert_eq!(m.len(), 10);
        assert!(m.iter().all(|id| users.iter().any(|u| u.1 == *id)));
        assert_eq!(m, regular_group_members(&users, 3, 10));
        assert!(regular_group_members(&[], 3, 10).is_empty());
        // More members than users: each user once.
        assert_eq!(regular_group_members(&users[..2], 0, 10).len(), 2);
    }
}
