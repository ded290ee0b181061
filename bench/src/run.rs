//! `run`: closed-loop load, one scenario at a time.
//!
//! Each scenario gets `--concurrency` workers, each with its own keep-alive connection (opened
//! before the clock starts), sending its next request as soon as the previous response has been
//! read to the end. Requests started during the warm-up are not recorded; then every request
//! started before the deadline is (up to `--max-requests`). The member scenarios have no
//! warm-up: they draw users from finite pools that a warm-up would spend. Latency is measured from sending the request to having
//! read the whole response body. A non-2xx status or a transport error is an error: counted,
//! its first descriptions printed, and its latency left out of the percentiles.
//!
//! The member scenarios change the big group; at the end of the run it is restored to its
//! seeded members (members added are removed, seeded members removed are added back), so that
//! runs can be repeated on one data set.

use crate::client::{Conn, Target, encode_query};
use crate::data::{self, Identities};
use crate::discovery::ServiceConfig;
use crate::state::State;
use crate::stats::{Recorder, ScenarioReport};
use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::Method;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One kind of request measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// `GET /Users/{id}` of a random seeded user.
    Get,
    /// `GET /Users?filter=userName eq "…"` of a random seeded user.
    FilterEq,
    /// `GET /Users?filter=emails.value co "…"` with a fragment of one seeded user's email.
    FilterCo,
    /// `GET /Users?startIndex=1&count=P`.
    ListIndexFirst,
    /// `GET /Users?startIndex=N-P+1&count=P`: the last page by index.
    ListIndexDeep,
    /// `GET /Users?cursor&count=P`: the first cursor page.
    ListCursorFirst,
    /// `GET /Users?cursor=…&count=P` with a cursor near the end, reached by following
    /// `nextCursor` before measuring (the walk is not measured).
    ListCursorDeep,
    /// `POST /Users` of a new user.
    Create,
    /// `PUT /Users/{id}`: a random seeded user with a changed title.
    Put,
    /// `PATCH /Users/{id}`: replace one attribute (`title`).
    Patch,
    /// `PATCH /Groups/{big}`: add one user that is not a member.
    MemberAdd,
    /// `PATCH /Groups/{big}`: remove one member.
    MemberRemove,
}

impl Scenario {
    /// Every scenario, in the order they run.
    pub const ALL: [Scenario; 12] = [
        Scenario::Get,
        Scenario::FilterEq,
        Scenario::FilterCo,
        Scenario::ListIndexFirst,
        Scenario::ListIndexDeep,
        Scenario::ListCursorFirst,
        Scenario::ListCursorDeep,
        Scenario::Create,
        Scenario::Put,
        Scenario::Patch,
        Scenario::MemberAdd,
        Scenario::MemberRemove,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Get => "get",
            Scenario::FilterEq => "filter-eq",
            Scenario::FilterCo => "filter-co",
            Scenario::ListIndexFirst => "list-index-first",
            Scenario::ListIndexDeep => "list-index-deep",
            Scenario::ListCursorFirst => "list-cursor-first",
            Scenario::ListCursorDeep => "list-cursor-deep",
            Scenario::Create => "create",
            Scenario::Put => "put",
            Scenario::Patch => "patch",
            Scenario::MemberAdd => "member-add",
            Scenario::MemberRemove => "member-remove",
        }
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Measured time per scenario.
    pub duration: Duration,
    /// Unmeasured time per scenario before it (connections, caches).
    pub warmup: Duration,
    /// Concurrent workers (connections).
    pub concurrency: usize,
    /// The most measured requests per scenario.
    pub max_requests: u64,
    /// The scenarios, run in [`Scenario::ALL`] order.
    pub scenarios: Vec<Scenario>,
    /// The page size of list scenarios.
    pub page_size: u64,
    /// The state file written by `seed`.
    pub state_path: PathBuf,
    /// Where to write the JSON report.
    pub json: Option<PathBuf>,
    /// The server's process id, to report its memory (Linux `/proc`).
    pub server_pid: Option<u32>,
    /// Runtime worker threads (for the report).
    pub threads: usize,
}

/// The big group's membership pools: who can be added, who can be removed, and what to undo.
/// Users are positions in [`State::users`] (cheaper than ids at a million users).
#[derive(Debug, Default)]
struct Pools {
    /// Seeded users outside the big group, to add.
    candidates: Vec<usize>,
    /// Users added during this run and (as far as we know) still members: removed first.
    added: Vec<usize>,
    /// Seeded members not yet removed.
    originals: Vec<usize>,
    /// Seeded members removed during this run: added back at the end.
    removed_originals: Vec<usize>,
    /// How many members the group was seeded with.
    seeded: usize,
}

impl Pools {
    /// The pools of a data set: every seeded member can be removed, every other seeded user
    /// added.
    fn new(state: &State) -> Pools {
        let members = state.big_group_members().len();
        Pools {
            candidates: (members..state.users.len()).rev().collect(),
            originals: (0..members).collect(),
            seeded: members,
            ..Pools::default()
        }
    }

    /// The group's size as far as the settled requests tell.
    fn group_size(&self) -> usize {
        (self.seeded + self.added.len()).saturating_sub(self.removed_originals.len())
    }
}

/// A request's effect on the pools, settled when its response arrives.
#[derive(Debug)]
enum Pending {
    None,
    Add(usize),
    Remove { user: usize, original: bool },
}

struct Prepared {
    method: Method,
    path: String,
    body: Option<Bytes>,
    pending: Pending,
}

/// A scenario's fixed request parts, decided before it starts.
#[derive(Debug, Clone, Default)]
struct Setup {
    /// The request path for scenarios that repeat one request.
    fixed_path: Option<String>,
    /// What one request is, for the report.
    request: String,
    /// What the reader should know.
    notes: Vec<String>,
    /// Why the scenario cannot run.
    skip: Option<String>,
}

/// Everything workers share.
struct Ctx {
    state: State,
    ids: Identities,
    /// Identities for users created by `create` (a per-run prefix, so runs never collide).
    new_ids: Identities,
    counter: AtomicU64,
    pools: Mutex<Pools>,
    group_path: Option<String>,
}

impl Ctx {
    fn pools(&self) -> MutexGuard<'_, Pools> {
        // A worker panicking while holding the lock cannot leave the pools inconsistent beyond
        // one id, so a poisoned lock is still used.
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn random_user(&self, rng: &mut SmallRng) -> Option<&crate::state::SeededUser> {
        if self.state.users.is_empty() {
            None
        } else {
            self.state
                .users
                .get(rng.random_range(0..self.state.users.len()))
        }
    }

    fn prepare(&self, sc: Scenario, setup: &Setup, rng: &mut SmallRng) -> Option<Prepared> {
        let get = |path: String| Prepared {
            method: Method::GET,
            path,
            body: None,
            pending: Pending::None,
        };
        let json_body = |v: Value| Some(Bytes::from(v.to_string()));
        Some(match sc {
            Scenario::Get => get(format!("/Users/{}", self.random_user(rng)?.1)),
            Scenario::FilterEq => {
                let u = self.random_user(rng)?;
                let f = format!("userName eq {}", Value::String(self.ids.user_name(u.0)));
                get(format!("/Users?filter={}", encode_query(&f)))
            }
            Scenario::FilterCo => {
                let u = self.random_user(rng)?;
                let f = format!(
                    "emails.value co {}",
                    Value::String(self.ids.email_fragment(u.0))
                );
                get(format!("/Users?filter={}", encode_query(&f)))
            }
            Scenario::ListIndexFirst
            | Scenario::ListIndexDeep
            | Scenario::ListCursorFirst
            | Scenario::ListCursorDeep => get(setup.fixed_path.clone()?),
            Scenario::Create => {
                let n = self.counter.fetch_add(1, Ordering::Relaxed);
                Prepared {
                    method: Method::POST,
                    path: "/Users".into(),
                    body: json_body(self.new_ids.user(n, None)),
                    pending: Pending::None,
                }
            }
            Scenario::Put => {
                let u = self.random_user(rng)?;
                let n = self.counter.fetch_add(1, Ordering::Relaxed);
                Prepared {
                    method: Method::PUT,
                    path: format!("/Users/{}", u.1),
                    body: json_body(self.ids.user(u.0, Some(&format!("Engineer {n}")))),
                    pending: Pending::None,
                }
            }
            Scenario::Patch => {
                let u = self.random_user(rng)?;
                let n = self.counter.fetch_add(1, Ordering::Relaxed);
                Prepared {
                    method: Method::PATCH,
                    path: format!("/Users/{}", u.1),
                    body: json_body(data::replace_attribute(
                        "title",
                        json!(format!("Analyst {n}")),
                    )),
                    pending: Pending::None,
                }
            }
            Scenario::MemberAdd => {
                let path = self.group_path.clone()?;
                let user = self.pools().candidates.pop()?;
                let id = self.state.users.get(user)?.1.as_str();
                Prepared {
                    method: Method::PATCH,
                    path,
                    body: json_body(data::add_members(&[id])),
                    pending: Pending::Add(user),
                }
            }
            Scenario::MemberRemove => {
                let path = self.group_path.clone()?;
                let (user, original) = {
                    let mut p = self.pools();
                    match p.added.pop() {
                        Some(user) => (user, false),
                        None => (p.originals.pop()?, true),
                    }
                };
                let id = self.state.users.get(user)?.1.as_str();
                Prepared {
                    method: Method::PATCH,
                    path,
                    body: json_body(data::remove_members(&[id])),
                    pending: Pending::Remove { user, original },
                }
            }
        })
    }

    /// Settles a member request. `ok` is `Some(true)` on 2xx, `Some(false)` on another status
    /// (the change did not happen), `None` on a transport error (it may have happened).
    fn settle(&self, pending: Pending, ok: Option<bool>) {
        let mut p = self.pools();
        match (pending, ok) {
            (Pending::None, _) => {}
            // Possibly added: remembered so that the restore removes it.
            (Pending::Add(user), Some(true) | None) => p.added.push(user),
            (Pending::Add(_), Some(false)) => {}
            (
                Pending::Remove {
                    user,
                    original: true,
                },
                _,
            ) => p.removed_originals.push(user),
            (
                Pending::Remove {
                    user,
                    original: false,
                },
                Some(true),
            ) => p.candidates.push(user),
            (
                Pending::Remove {
                    user,
                    original: false,
                },
                _,
            ) => p.added.push(user),
        }
    }
}

/// One scenario's run, shared by its workers.
struct Round {
    sc: Scenario,
    setup: Setup,
    /// Requests started before this are warm-up.
    measure_from: Instant,
    /// No request starts after this.
    deadline: Instant,
    /// Measured requests started so far (bounded by `max_requests`).
    tickets: AtomicU64,
    max_requests: u64,
}

/// What one worker saw.
struct WorkerResult {
    recorder: Recorder,
    last_end: Option<Instant>,
    ran_dry: bool,
}

async fn worker(ctx: Arc<Ctx>, round: Arc<Round>, mut conn: Conn, seed: u64) -> WorkerResult {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut out = WorkerResult {
        recorder: Recorder::new(),
        last_end: None,
        ran_dry: false,
    };
    loop {
        let start = Instant::now();
        if start >= round.deadline {
            break;
        }
        let measured = start >= round.measure_from;
        if measured && round.tickets.fetch_add(1, Ordering::Relaxed) >= round.max_requests {
            break;
        }
        let Some(req) = ctx.prepare(round.sc, &round.setup, &mut rng) else {
            out.ran_dry = true;
            break;
        };
        let path = req.path;
        // Bodies are built before the clock starts: their cost is the generator's, not the
        // server's.
        let t0 = Instant::now();
        let result = conn.send(req.method, &path, req.body).await;
        let latency = t0.elapsed();
        let ok = match &result {
            Ok(reply) => Some(reply.status.is_success()),
            Err(_) => None,
        };
        ctx.settle(req.pending, ok);
        if !measured {
            continue;
        }
        out.last_end = Some(Instant::now());
        match result {
            Ok(reply) if reply.status.is_success() => out.recorder.ok(latency),
            Ok(reply) => out
                .recorder
                .error(|| format!("{path}: {}", reply.describe(300))),
            Err(e) => out.recorder.error(|| format!("{path}: {e:#}")),
        }
    }
    out
}

/// `totalResults` of an unfiltered user list.
async fn total_users(conn: &mut Conn) -> anyhow::Result<u64> {
    let page = conn.get_json("/Users?count=1&attributes=id").await?;
    page["totalResults"]
        .as_u64()
        .context("the list response has no totalResults")
}

/// Follows `nextCursor` with id-only pages of up to `walk_page` until the next page is the
/// last full page of `page_size`; returns that cursor, how many users it skips and how many
/// requests the walk took.
async fn walk_to_deep_cursor(
    conn: &mut Conn,
    total: u64,
    page_size: u64,
    walk_page: u64,
) -> anyhow::Result<(String, u64, u64)> {
    let target = total.saturating_sub(page_size);
    if target == 0 {
        bail!("all {total} users fit in one page; there is no deep page");
    }
    let mut seen = 0u64;
    let mut cursor = String::new();
    let mut requests = 0u64;
    while seen < target {
        // Every page advances by at least one user, so this bounds the walk.
        if requests > target {
            bail!("the cursor walk took more than {target} requests");
        }
        let count = walk_page.min(target - seen).max(1);
        let query = if cursor.is_empty() {
            "cursor".to_string()
        } else {
            format!("cursor={}", encode_query(&cursor))
        };
        let page = conn
            .get_json(&format!("/Users?{query}&count={count}&attributes=id"))
            .await?;
        requests += 1;
        let got = page["Resources"].as_array().map_or(0, Vec::len) as u64;
        match page["nextCursor"].as_str() {
            Some(next) if got > 0 => {
                seen += got;
                cursor = next.to_string();
            }
            Some(_) => bail!("a cursor page with a nextCursor but no resources"),
            // The list ended sooner than totalResults said.
            None => break,
        }
    }
    if cursor.is_empty() {
        bail!("the first page has no nextCursor");
    }
    Ok((cursor, seen, requests))
}

async fn setup(
    ctx: &Ctx,
    sc: Scenario,
    opts: &RunOptions,
    service: &ServiceConfig,
    conn: &mut Conn,
) -> anyhow::Result<Setup> {
    let p = opts.page_size;
    let users = ctx.state.users.len();
    let mut s = Setup::default();
    let needs_users = !matches!(
        sc,
        Scenario::Create
            | Scenario::ListIndexFirst
            | Scenario::ListIndexDeep
            | Scenario::ListCursorFirst
            | Scenario::ListCursorDeep
    );
    if needs_users && users == 0 {
        s.skip = Some("the data set has no users; run seed first".into());
        return Ok(s);
    }
    match sc {
        Scenario::Get => s.request = "GET /Users/{id}".into(),
        Scenario::FilterEq => s.request = "GET /Users?filter=userName eq \"…\"".into(),
        Scenario::FilterCo => s.request = "GET /Users?filter=emails.value co \"…\"".into(),
        Scenario::ListIndexFirst => {
            s.fixed_path = Some(format!("/Users?startIndex=1&count={p}"));
        }
        Scenario::ListIndexDeep => {
            let total = total_users(conn).await?;
            let start = (total + 1).saturating_sub(p).max(1);
            s.fixed_path = Some(format!("/Users?startIndex={start}&count={p}"));
            s.notes.push(format!("{total} users; startIndex={start}"));
        }
        Scenario::ListCursorFirst | Scenario::ListCursorDeep if service.cursor == Some(false) => {
            s.skip = Some("the server does not advertise cursor paging".into());
        }
        Scenario::ListCursorFirst => s.fixed_path = Some(format!("/Users?cursor&count={p}")),
        Scenario::ListCursorDeep => {
            let total = total_users(conn).await?;
            let walk_page = service.max_page_size.unwrap_or(p).max(p);
            let started = Instant::now();
            let (cursor, seen, requests) = walk_to_deep_cursor(conn, total, p, walk_page).await?;
            s.fixed_path = Some(format!("/Users?cursor={}&count={p}", encode_query(&cursor)));
            s.notes.push(format!(
                "the cursor starts after {seen} of {total} users; reached in {requests} \
                 requests of {walk_page} ({:.1} s, not measured)",
                started.elapsed().as_secs_f64()
            ));
        }
        Scenario::Create => s.request = "POST /Users".into(),
        Scenario::Put => s.request = "PUT /Users/{id} (title changed)".into(),
        Scenario::Patch => s.request = "PATCH /Users/{id} replace title".into(),
        Scenario::MemberAdd | Scenario::MemberRemove => match &ctx.group_path {
            None => s.skip = Some("the data set has no big group (seed --big-group K)".into()),
            Some(path) => {
                let verb = if sc == Scenario::MemberAdd {
                    "add"
                } else {
                    "remove"
                };
                s.request = format!("PATCH {path} {verb} 1 member");
                let p = ctx.pools();
                if sc == Scenario::MemberAdd && p.candidates.is_empty() {
                    s.skip = Some(
                        "every seeded user is in the big group; seed more users than \
                         --big-group"
                            .into(),
                    );
                }
                if sc == Scenario::MemberRemove && p.added.is_empty() && p.originals.is_empty() {
                    s.skip = Some("the big group has no members".into());
                }
            }
        },
    }
    if let Some(path) = &s.fixed_path {
        s.request = format!("GET {path}");
        if s.request.len() > 90 {
            s.request = format!("{}…", &s.request[..s.request.floor_char_boundary(90)]);
        }
    }
    Ok(s)
}

async fn run_scenario(
    ctx: &Arc<Ctx>,
    target: &Target,
    sc: Scenario,
    setup: Setup,
    opts: &RunOptions,
) -> ScenarioReport {
    // Connections are opened before the clock starts; a failure shows up as the workers'
    // first request errors.
    let mut conns = Vec::with_capacity(opts.concurrency);
    for _ in 0..opts.concurrency.max(1) {
        let mut conn = target.conn();
        let _ = conn.connect().await;
        conns.push(conn);
    }
    // The member scenarios draw from finite pools; a warm-up would spend them unmeasured.
    let warmup = match sc {
        Scenario::MemberAdd | Scenario::MemberRemove => Duration::ZERO,
        _ => opts.warmup,
    };
    let now = Instant::now();
    let round = Arc::new(Round {
        sc,
        setup,
        measure_from: now + warmup,
        deadline: now + warmup + opts.duration,
        tickets: AtomicU64::new(0),
        max_requests: opts.max_requests,
    });
    let members_before = ctx.pools().group_size();
    let base_seed = rand::rng().random::<u64>();
    let mut handles = Vec::new();
    for (w, conn) in conns.into_iter().enumerate() {
        handles.push(tokio::spawn(worker(
            ctx.clone(),
            round.clone(),
            conn,
            base_seed ^ (w as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )));
    }
    let mut recorder = Recorder::new();
    let mut last_end = None::<Instant>;
    let mut notes = round.setup.notes.clone();
    let mut ran_dry = false;
    for h in handles {
        match h.await {
            Ok(r) => {
                recorder.merge(&r.recorder);
                last_end = last_end.max(r.last_end);
                ran_dry |= r.ran_dry;
            }
            Err(e) => notes.push(format!("a worker failed: {e}")),
        }
    }
    if matches!(sc, Scenario::MemberAdd | Scenario::MemberRemove) {
        notes.push(format!(
            "the big group had {members_before} members before, {} after",
            ctx.pools().group_size()
        ));
    }
    if ran_dry {
        notes.push(match sc {
            Scenario::MemberAdd => "stopped early: every seeded user outside the big group \
                                    was added; seed more users for longer runs"
                .into(),
            Scenario::MemberRemove => "stopped early: the big group ran out of members".into(),
            _ => "stopped early: nothing left to request".into(),
        });
    }
    let elapsed = last_end
        .map(|e| e.saturating_duration_since(round.measure_from))
        .unwrap_or(opts.duration);
    ScenarioReport {
        name: sc.name().into(),
        request: round.setup.request.clone(),
        recorder,
        elapsed,
        notes,
    }
}

/// Puts the big group back to its seeded members: removes the users added during the run and
/// adds back the seeded members removed.
async fn restore_big_group(ctx: &Ctx, conn: &mut Conn) -> anyhow::Result<(usize, usize)> {
    let Some(path) = &ctx.group_path else {
        return Ok((0, 0));
    };
    let (added, removed) = {
        let mut p = ctx.pools();
        (
            std::mem::take(&mut p.added),
            std::mem::take(&mut p.removed_originals),
        )
    };
    let id = |k: &usize| ctx.state.users.get(*k).map(|u| u.1.as_str());
    for batch in added.chunks(500) {
        let ids: Vec<&str> = batch.iter().filter_map(id).collect();
        let body = Bytes::from(data::remove_members(&ids).to_string());
        let reply = conn.send(Method::PATCH, path, Some(body)).await?;
        if !reply.status.is_success() {
            bail!("removing members added by the run: {}", reply.describe(300));
        }
    }
    for batch in removed.chunks(1000) {
        let ids: Vec<&str> = batch.iter().filter_map(id).collect();
        let body = Bytes::from(data::add_members(&ids).to_string());
        let reply = conn.send(Method::PATCH, path, Some(body)).await?;
        if !reply.status.is_success() {
            bail!("adding back removed members: {}", reply.describe(300));
        }
    }
    Ok((added.len(), removed.len()))
}

/// Linux process memory (`VmRSS`, `VmHWM`) in KiB.
fn process_memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Runs `run`: every selected scenario, then the report.
pub async fn run(target: &Target, opts: &RunOptions) -> anyhow::Result<Vec<ScenarioReport>> {
    let state = State::load(&opts.state_path, target.base_url())?.with_context(|| {
        format!(
            "no state file {}; run `scimd-bench seed` first",
            opts.state_path.display()
        )
    })?;
    if opts.page_size == 0 {
        bail!("--page-size must be at least 1");
    }
    let mut conn = target.conn();
    // Only the page limits come from it, so a server without one can still be measured.
    let service = match ServiceConfig::fetch(&mut conn).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warning: no /ServiceProviderConfig ({e:#}); assuming defaults");
            ServiceConfig::default()
        }
    };
    let ids = Identities::new(&state.prefix);
    let new_ids = Identities::new(&format!("{}-r{}", state.prefix, data::random_prefix()));
    let pools = Pools::new(&state);
    let group_path = state
        .big_group
        .as_ref()
        .map(|b| format!("/Groups/{}?excludedAttributes=members", b.id));
    let ctx = Arc::new(Ctx {
        state,
        ids,
        new_ids,
        counter: AtomicU64::new(0),
        pools: Mutex::new(pools),
        group_path,
    });
    eprintln!(
        "{}: {} seeded users, {} workers, {:?} per scenario after {:?} warm-up",
        target.base_url(),
        ctx.state.users.len(),
        opts.concurrency,
        opts.duration,
        opts.warmup
    );
    let mut reports = Vec::new();
    for sc in Scenario::ALL {
        if !opts.scenarios.contains(&sc) {
            continue;
        }
        let setup = match setup(&ctx, sc, opts, &service, &mut conn).await {
            Ok(s) => s,
            Err(e) => Setup {
                skip: Some(format!("setup failed: {e:#}")),
                ..Setup::default()
            },
        };
        let report = match &setup.skip {
            Some(why) => ScenarioReport {
                name: sc.name().into(),
                request: setup.request.clone(),
                recorder: Recorder::new(),
                elapsed: Duration::ZERO,
                notes: vec![format!("skipped: {why}")],
            },
            None => {
                eprintln!("{}: {}", sc.name(), setup.request);
                let mut r = run_scenario(&ctx, target, sc, setup, opts).await;
                if let Some((rss, hwm)) = opts.server_pid.and_then(process_memory) {
                    r.notes.push(format!(
                        "server RSS {} MiB (peak {} MiB)",
                        rss / 1024,
                        hwm / 1024
                    ));
                }
                r
            }
        };
        reports.push(report);
    }
    match restore_big_group(&ctx, &mut conn).await {
        Ok((0, 0)) => {}
        Ok((removed, added)) => eprintln!(
            "big group restored: {removed} members added by the run removed, {added} seeded \
             members added back"
        ),
        Err(e) => eprintln!("warning: the big group could not be restored: {e:#}"),
    }
    print!("{}", crate::stats::table(&reports));
    if let Some(path) = &opts.json {
        let doc = json!({
            "target": target.base_url(),
            "seeded_users": ctx.state.users.len(),
            "big_group_members": ctx.state.big_group.as_ref().map(|b| b.members),
            "concurrency": opts.concurrency,
            "threads": opts.threads,
            "duration_s": opts.duration.as_secs_f64(),
            "warmup_s": opts.warmup.as_secs_f64(),
            "page_size": opts.page_size,
            "server_memory_kib": opts.server_pid.and_then(process_memory)
                .map(|(rss, hwm)| json!({"rss": rss, "peak": hwm})),
            "scenarios": reports.iter().map(ScenarioReport::to_json).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{BigGroup, SeededUser};

    fn ctx(users: u64, members: u64) -> Ctx {
        let mut state = State::new("http://127.0.0.1:1/v2", "abc123".into());
        state.users = (0..users).map(|i| SeededUser(i, format!("u{i}"))).collect();
        state.big_group = Some(BigGroup {
            id: "big".into(),
            members,
        });
        let pools = Pools::new(&state);
        Ctx {
            ids: Identities::new(&state.prefix),
            new_ids: Identities::new("new123"),
            state,
            counter: AtomicU64::new(0),
            pools: Mutex::new(pools),
            group_path: Some("/Groups/big".into()),
        }
    }

    fn next(c: &Ctx, sc: Scenario) -> Option<Prepared> {
        c.prepare(sc, &Setup::default(), &mut SmallRng::seed_from_u64(1))
    }

    #[test]
    fn member_removes_take_run_additions_before_seeded_members() {
        let c = ctx(4, 2);
        let add = next(&c, Scenario::MemberAdd).unwrap();
        assert_eq!(add.path, "/Groups/big");
        let Pending::Add(added) = add.pending else {
            panic!("an add")
        };
        // Users outside the group are added in seeding order.
        assert_eq!(added, 2);
        let body: Value = serde_json::from_slice(add.body.as_ref().unwrap()).unwrap();
        assert_eq!(body["Operations"][0]["value"][0]["value"], "u2");
        c.settle(add.pending, Some(true));
        assert_eq!(c.pools().group_size(), 3);
        let rm = next(&c, Scenario::MemberRemove).unwrap();
        assert!(matches!(rm.pending, Pending::Remove { user, original: false } if user == added));
        let body: Value = serde_json::from_slice(rm.body.as_ref().unwrap()).unwrap();
        assert_eq!(body["Operations"][0]["path"], "members[value eq \"u2\"]");
        c.settle(rm.pending, Some(true));
        // The removed user can be added again.
        assert!(c.pools().candidates.contains(&added));
        let rm = next(&c, Scenario::MemberRemove).unwrap();
        assert!(matches!(
            rm.pending,
            Pending::Remove {
                user: 1,
                original: true
            }
        ));
        c.settle(rm.pending, Some(true));
        assert_eq!(c.pools().removed_originals.len(), 1);
        assert_eq!(c.pools().group_size(), 1);
    }

    #[test]
    fn uncertain_member_changes_are_undone_by_the_restore() {
        let c = ctx(4, 2);
        let add = next(&c, Scenario::MemberAdd).unwrap();
        c.settle(add.pending, None);
        assert_eq!(
            c.pools().added.len(),
            1,
            "a timed-out add may have happened"
        );
        let add = next(&c, Scenario::MemberAdd).unwrap();
        c.settle(add.pending, Some(false));
        assert_eq!(c.pools().added.len(), 1, "a refused add did not happen");
        let rm = next(&c, Scenario::MemberRemove).unwrap();
        c.settle(rm.pending, Some(false));
        assert_eq!(
            c.pools().added.len(),
            1,
            "a refused remove leaves the member"
        );
    }

    #[test]
    fn member_adds_run_dry_when_every_user_is_a_member() {
        let c = ctx(3, 3);
        assert!(next(&c, Scenario::MemberAdd).is_none());
        assert!(next(&c, Scenario::MemberRemove).is_some());
    }

    #[test]
    fn requests_target_seeded_users_with_encoded_filters() {
        let c = ctx(3, 0);
        let r = next(&c, Scenario::FilterEq).unwrap();
        assert!(
            r.path.starts_with("/Users?filter=userName%20eq%20%22"),
            "{}",
            r.path
        );
        let r = next(&c, Scenario::FilterCo).unwrap();
        assert!(r.path.starts_with("/Users?filter=emails.value%20co%20%22"));
        let r = next(&c, Scenario::Get).unwrap();
        assert!(["/Users/u0", "/Users/u1", "/Users/u2"].contains(&r.path.as_str()));
        let put = next(&c, Scenario::Put).unwrap();
        let body: Value = serde_json::from_slice(put.body.as_ref().unwrap()).unwrap();
        assert!(body["title"].as_str().unwrap().starts_with("Engineer "));
        let create = next(&c, Scenario::Create).unwrap();
        let body: Value = serde_json::from_slice(create.body.as_ref().unwrap()).unwrap();
        assert!(
            body["userName"]
                .as_str()
                .unwrap()
                .ends_with("@new123.example.com")
        );
    }

    #[test]
    fn scenario_names_match_the_command_line() {
        use clap::ValueEnum;
        for sc in Scenario::ALL {
            assert_eq!(Scenario::from_str(sc.name(), false), Ok(sc));
        }
    }
}
