//! The `scimd-bench` command: `seed` a data set into a SCIM server, then `run` the measured
//! scenarios against it.

#![forbid(unsafe_code)]

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use scimd_bench::client::Target;
use scimd_bench::generate::GenerateOptions;
use scimd_bench::run::{RunOptions, Scenario};
use scimd_bench::seed::{SeedOptions, Via};
use std::path::PathBuf;
use std::time::Duration;

/// The longest measured time per scenario accepted: every request loop must end by itself.
const MAX_DURATION: Duration = Duration::from_secs(3600);
/// The most concurrent workers accepted.
const MAX_CONCURRENCY: usize = 1024;

/// A SCIM 2.0 load generator: seeds users and groups, then measures req/s and latency
/// percentiles of the requests identity providers send.
#[derive(Debug, Parser)]
#[command(name = "scimd-bench", version, about, long_about = None)]
struct Cli {
    /// The SCIM base URL of the server (and source) under test.
    #[arg(
        long,
        env = "SCIMD_BENCH_URL",
        default_value = "http://127.0.0.1:8080/scim/default/v2",
        global = true
    )]
    url: String,
    /// The bearer token (prefer the environment variable: arguments are visible to `ps`).
    #[arg(long, env = "SCIMD_BENCH_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// The state file recording what `seed` created.
    #[arg(long, default_value = "scimd-bench-state.json", global = true)]
    state: PathBuf,
    /// The longest one request may take (e.g. 30s, 500ms).
    #[arg(long, default_value = "30s", value_parser = parse_duration, global = true)]
    timeout: Duration,
    /// A PEM file of extra trusted CA certificates for https URLs.
    #[arg(long, value_name = "PEM", global = true)]
    ca_cert: Option<PathBuf>,
    /// Runtime threads of the generator (1: a single-threaded runtime, which leaves the other
    /// cores to a server on the same machine).
    #[arg(long, default_value_t = 1, global = true)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

/// The shape of the data set, the same for `seed` and `generate`.
#[derive(Debug, Args)]
struct DataSet {
    /// Users the data set should have in total.
    #[arg(long, default_value_t = 10_000)]
    users: u64,
    /// Groups the data set should have in total, the big group included.
    #[arg(long, default_value_t = 0)]
    groups: u64,
    /// Members of the big group (the first K users); 0 for none.
    #[arg(long, value_name = "K", default_value_t = 0)]
    big_group: u64,
    /// Members of each group other than the big one.
    #[arg(long, default_value_t = 10)]
    group_members: usize,
}

impl DataSet {
    /// The groups, counting the big group even when `--groups` leaves it out.
    fn groups(&self) -> u64 {
        self.groups.max(u64::from(self.big_group > 0))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create (or complete) the data set and record its ids in the state file.
    Seed {
        #[command(flatten)]
        data: DataSet,
        /// How users and groups are created.
        #[arg(long, value_enum, default_value_t = Via::Auto)]
        via: Via,
        /// Concurrent requests.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Members added per PATCH while filling the big group.
        #[arg(long, default_value_t = 1000)]
        member_batch: usize,
    },
    /// Write the data set `seed` would create as a file of SCIM resources with ids (one JSON
    /// object per line) for a bulk loader such as `scimd import`, and the state file for `run`.
    Generate {
        #[command(flatten)]
        data: DataSet,
        /// The resources file to write.
        #[arg(long, value_name = "PATH", default_value = "scimd-bench-data.ndjson")]
        out: PathBuf,
    },
    /// Measure the scenarios against the seeded data set and print the report.
    Run {
        /// Measured time per scenario (e.g. 20s, 2m).
        #[arg(long, default_value = "20s", value_parser = parse_duration)]
        duration: Duration,
        /// Unmeasured warm-up per scenario.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        warmup: Duration,
        /// Concurrent workers, one connection each.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Scenarios to run (comma-separated); all by default.
        #[arg(long, value_enum, value_delimiter = ',')]
        scenario: Vec<Scenario>,
        /// The most measured requests per scenario.
        #[arg(long, default_value_t = 10_000_000)]
        max_requests: u64,
        /// The page size (`count`) of the list scenarios.
        #[arg(long, default_value_t = 100)]
        page_size: u64,
        /// Also write the report as JSON to this file.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// The server's process id: its memory (RSS and peak) is reported after each scenario.
        #[arg(long, value_name = "PID")]
        server_pid: Option<u32>,
    },
}

/// Parses `500ms`, `20s`, `2m`, `1h` or a plain number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 20s, 2m or 1h"))?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(n.saturating_mul(3600))),
        other => Err(format!(
            "unknown duration unit {other:?} (use ms, s, m or h)"
        )),
    }
}

async fn execute(cli: Cli) -> anyhow::Result<()> {
    // Only the commands that talk to the server need a token.
    let target = || -> anyhow::Result<Target> {
        let token = cli
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .context("a bearer token is needed: set SCIMD_BENCH_TOKEN or pass --token")?;
        Target::new(&cli.url, token, cli.timeout, cli.ca_cert.as_deref())
    };
    match cli.command {
        Command::Generate { data, out } => {
            let opts = GenerateOptions {
                users: data.users,
                groups: data.groups(),
                big_group: data.big_group,
                group_members: data.group_members,
                out,
                state_path: cli.state.clone(),
            };
            let state = scimd_bench::generate::generate(&cli.url, &opts)?;
            println!(
                "data set {}: {} users, {} groups in {}; state in {}",
                state.prefix,
                state.users.len(),
                state.group_count(),
                opts.out.display(),
                opts.state_path.display()
            );
            Ok(())
        }
        Command::Seed {
            data,
            via,
            concurrency,
            member_batch,
        } => {
            if concurrency == 0 || concurrency > MAX_CONCURRENCY {
                bail!("--concurrency must be from 1 to {MAX_CONCURRENCY}");
            }
            let opts = SeedOptions {
                users: data.users,
                groups: data.groups(),
                big_group: data.big_group,
                via,
                concurrency,
                group_members: data.group_members,
                member_batch,
                state_path: cli.state,
            };
            scimd_bench::seed::seed(&target()?, &opts).await
        }
        Command::Run {
            duration,
            warmup,
            concurrency,
            scenario,
            max_requests,
            page_size,
            json,
            server_pid,
        } => {
            if duration.is_zero() || duration > MAX_DURATION || warmup > MAX_DURATION {
                bail!("--duration must be from 1s to 1h, --warmup at most 1h");
            }
            if concurrency == 0 || concurrency > MAX_CONCURRENCY {
                bail!("--concurrency must be from 1 to {MAX_CONCURRENCY}");
            }
            let opts = RunOptions {
                duration,
                warmup,
                concurrency,
                max_requests,
                scenarios: if scenario.is_empty() {
                    Scenario::ALL.to_vec()
                } else {
                    scenario
                },
                page_size,
                state_path: cli.state,
                json,
                server_pid,
                threads: cli.threads,
            };
            let reports = scimd_bench::run::run(&target()?, &opts).await?;
            let errors: u64 = reports.iter().map(|r| r.recorder.errors()).sum();
            if errors > 0 {
                eprintln!("{errors} requests failed (see the error lines above)");
            }
            Ok(())
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let threads = cli.threads.clamp(1, 64);
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("2d").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "scimd-bench",
            "--token",
            "t",
            "run",
            "--scenario",
            "get,member-add",
            "--duration",
            "5s",
        ])
        .unwrap();
        match cli.command {
            Command::Run {
                scenario, duration, ..
            } => {
                assert_eq!(scenario, vec![Scenario::Get, Scenario::MemberAdd]);
                assert_eq!(duration, Duration::from_secs(5));
            }
            _ => panic!("parsed as another command"),
        }
    }
}
