//! The `scimd` command line: `serve`, `token create|list|revoke`, `config check`, `openapi`,
//! `migrate`, `import`.

use crate::app::App;
use crate::config::{self, Loaded, LogFormat};
use crate::tokens;
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use time::OffsetDateTime;

/// Writes a line to stdout, returning write errors (a closed pipe) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*)?
    };
}

/// scimd: a SCIM 2.0 provisioning server.
#[derive(Debug, Parser)]
#[command(name = "scimd", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command shares.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// The configuration file (default: $SCIMD_CONFIG, else ./scimd.toml when present).
    #[arg(long, short = 'c', value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve SCIM (with no configuration: source "default" on 127.0.0.1:8080).
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// The address to listen on, overriding `server.listen` (port 0 picks one).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Manage bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the OpenAPI document.
    Openapi {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Apply pending database migrations to every configured SQL database.
    Migrate {
        #[command(flatten)]
        config: ConfigArgs,
        /// Also rebuild the search copy (what filters read) of every source's resources, as
        /// the start does by itself when a source's schemas changed.
        #[arg(long)]
        reindex: bool,
    },
    /// Load users and groups from a file of SCIM resources, one JSON object per line; ids are
    /// kept, resources validated like POST bodies, groups must follow their members, no hooks
    /// run. Needs a SQL backend.
    Import {
        #[command(flatten)]
        config: ConfigArgs,
        /// The source to import into.
        #[arg(long, value_name = "SLUG", default_value = "default")]
        source: String,
        /// Resources stored per transaction.
        #[arg(long, value_name = "N", default_value_t = 1000)]
        batch: usize,
        /// The file (`-`: standard input).
        file: PathBuf,
    },
}

/// `scimd token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; the secret is printed once, alone on the last line.
    Create {
        #[command(flatten)]
        config: ConfigArgs,
        /// The source the token grants access to.
        #[arg(long, value_name = "SLUG")]
        source: String,
        /// A name for the token, unique within the source (default: `token-<unix time>`).
        #[arg(long)]
        name: Option<String>,
        /// Lifetime, e.g. 90d, 12h, 2w, 1y (default: no expiry).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// Only this source's tokens.
        #[arg(long, value_name = "SLUG")]
        source: Option<String>,
    },
    /// Revoke a token by name or id; it stops working at once on every replica.
    Revoke {
        #[command(flatten)]
        config: ConfigArgs,
        /// The token's source.
        #[arg(long, value_name = "SLUG")]
        source: String,
        /// The token's name or id.
        token: String,
    },
}

/// `scimd config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it with secrets redacted.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
    },
}

fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

fn load(args: &ConfigArgs) -> anyhow::Result<Loaded> {
    let loaded = config::load(args.config.as_deref(), &process_env())?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    Ok(loaded)
}

fn init_tracing(level: &str, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Runs the command line; returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, listen } => serve(&config, listen).await,
        Command::Token { command } => token(command).await,
        Command::Config {
            command: ConfigCommand::Check { config },
        } => {
            let loaded = load(&config)?;
            // Opening the schemas catches bad extension files too.
            for s in &loaded.config.sources {
                s.registry(&loaded.config_dir())
                    .with_context(|| format!("source {}", s.slug))?;
            }
            let file = loaded
                .file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| "(none: built-in defaults)".into());
            say!("# configuration file: {file}");
            say!("# the configuration is valid; effective values, secrets redacted:");
            say!(
                "{}",
                serde_json::to_string_pretty(&loaded.config.redacted())?
            );
            Ok(())
        }
        Command::Migrate { config, reindex } => {
            let loaded = load(&config)?;
            let c = &loaded.config;
            let mut targets = Vec::new();
            targets.extend(c.backend.sql());
            targets.extend(c.sources.iter().filter_map(|s| s.backend.as_ref()?.sql()));
            targets.extend(c.state.resolve(&c.backend));
            targets.dedup();
            if targets.is_empty() {
                say!("no SQL database is configured; nothing to migrate");
            }
            let mut done: Vec<String> = Vec::new();
            for t in targets {
                let what = t.describe();
                if done.contains(&what) {
                    continue;
                }
                let b = t
                    .migrate()
                    .await
                    .with_context(|| format!("while migrating {what}"))?;
                let version = b
                    .schema_version()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                say!(
                    "{what}: schema version {}",
                    version
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "none".into())
                );
                if reindex {
                    reindex_sources(&loaded, &t, &b).await?;
                }
                b.close().await;
                done.push(what);
            }
            Ok(())
        }
        Command::Import {
            config,
            source,
            batch,
            file,
        } => import(&config, &source, batch, &file).await,
        Command::Openapi { config } => {
            let loaded = load(&config)?;
            let app = App::build(&loaded).await?;
            say!(
                "{}",
                serde_json::to_string_pretty(&crate::http::openapi::document(&app))?
            );
            Ok(())
        }
    }
}

/// Rebuilds the search copy of the sources stored in the database `target`.
async fn reindex_sources(
    loaded: &Loaded,
    target: &config::SqlTarget<'_>,
    b: &scimd_backend_sql::SqlBackend,
) -> anyhow::Result<()> {
    let c = &loaded.config;
    for s in &c.sources {
        let db = match &s.backend {
            Some(own) => own.sql(),
            None => c.backend.sql(),
        };
        if db.as_ref() == Some(target) {
            let reg = s
                .registry(&loaded.config_dir())
                .with_context(|| format!("while loading the schemas of source {}", s.slug))?;
            b.set_schemas(&s.slug, Arc::new(reg));
        }
    }
    let report = b
        .reindex_all()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("while rebuilding the search copy in {}", target.describe()))?;
    for (source, kind) in &report.rebuilt {
        say!("  search copy of source {source}, {} rebuilt", kind.name());
    }
    say!(
        "  {} resources read, {} search copies rewritten",
        report.resources,
        report.rewritten
    );
    Ok(())
}

async fn import(
    args: &ConfigArgs,
    slug: &str,
    batch: usize,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    let loaded = load(args)?;
    let app = App::build(&loaded).await?;
    let Some(source) = app.sources.get(slug) else {
        bail!("no source {slug:?} is configured");
    };
    let input: Box<dyn std::io::BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        Box::new(std::io::BufReader::with_capacity(1 << 20, f))
    };
    let started = std::time::Instant::now();
    let mut reported = 0;
    let counts = crate::import::import(source, input, batch, |c| {
        if c.total() >= reported + 100_000 {
            reported = c.total();
            eprintln!("{} users, {} groups", c.users, c.groups);
        }
    })
    .await?;
    let secs = started.elapsed().as_secs_f64();
    say!(
        "imported {} users and {} groups into source \"{slug}\" in {secs:.1} s ({:.0} resources/s)",
        counts.users,
        counts.groups,
        counts.total() as f64 / secs.max(1e-9)
    );
    Ok(())
}

async fn serve(args: &ConfigArgs, listen: Option<String>) -> anyhow::Result<()> {
    let mut loaded = load(args)?;
    if let Some(l) = listen {
        loaded.config.server.listen = l;
    }
    init_tracing(&loaded.config.log.level, loaded.config.log.format);
    let app = App::build(&loaded).await?;
    let listener = tokio::net::TcpListener::bind(&app.config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", app.config.server.listen))?;
    let local = listener.local_addr()?;
    if !app.persistent_state() {
        tracing::warn!(
            "the state store is in memory: tokens are lost on restart and not shared between replicas"
        );
    }
    let origin = app
        .config
        .server
        .public_url
        .clone()
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://{local}"));
    let fresh = app.ensure_initial_tokens().await?;
    let mut out = std::io::stdout().lock();
    for slug in app.sources.keys() {
        writeln!(
            out,
            "scimd: source \"{slug}\" is served at {origin}/scim/{slug}/v2"
        )?;
    }
    writeln!(out, "scimd: API documentation at {origin}/docs")?;
    for (slug, secret) in &fresh {
        writeln!(
            out,
            "scimd: bearer token for source \"{slug}\" (shown once, store it now):"
        )?;
        writeln!(out, "{}", secret.expose())?;
    }
    out.flush()?;
    drop(out);
    tracing::info!(address = %local, "listening");
    crate::http::serve(app, listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn token(command: TokenCommand) -> anyhow::Result<()> {
    let args = match &command {
        TokenCommand::Create { config, .. }
        | TokenCommand::List { config, .. }
        | TokenCommand::Revoke { config, .. } => config.clone(),
    };
    let loaded = load(&args)?;
    let Some(store) = config::open_state(&loaded.config).await? else {
        bail!(
            "the configured state store is in memory: a token managed by this command would \
             vanish when it exits and never reach a server; configure a SQL backend or [state]"
        );
    };
    let known = |slug: &str| -> anyhow::Result<()> {
        if loaded.config.sources.iter().any(|s| s.slug == slug) {
            Ok(())
        } else {
            bail!("no source {slug:?} is configured")
        }
    };
    match command {
        TokenCommand::Create {
            source,
            name,
            expires,
            ..
        } => {
            known(&source)?;
            let expires = expires
                .map(|e| tokens::parse_duration(&e).map_err(anyhow::Error::msg))
                .transpose()?;
            let name = name
                .unwrap_or_else(|| format!("token-{}", OffsetDateTime::now_utc().unix_timestamp()));
            let (rec, secret) = tokens::create(&*store, &source, &name, expires)
                .await
                .map_err(|e| anyhow::anyhow!(e.detail))?;
            eprintln!(
                "created token {:?} (id {}) for source {source}{}; the secret is shown once:",
                rec.name,
                rec.id,
                rec.expires
                    .map(|e| format!(", expires {}", show_time(e)))
                    .unwrap_or_default()
            );
            say!("{}", secret.expose());
        }
        TokenCommand::List { source, .. } => {
            let now = OffsetDateTime::now_utc();
            let list = store
                .list_tokens(source.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            say!("SOURCE\tNAME\tID\tCREATED\tEXPIRES\tSTATUS");
            for t in list {
                let status = if t.revoked.is_some() {
                    "revoked"
                } else if t.is_active(now) {
                    "active"
                } else {
                    "expired"
                };
                say!(
                    "{}\t{}\t{}\t{}\t{}\t{status}",
                    t.source,
                    t.name,
                    t.id,
                    show_time(t.created),
                    t.expires.map(show_time).unwrap_or_else(|| "never".into()),
                );
            }
        }
        TokenCommand::Revoke { source, token, .. } => {
            known(&source)?;
            let found = store
                .revoke_token(&source, &token, OffsetDateTime::now_utc())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if !found {
                bail!("source {source} has no token named or with id {token:?}");
            }
            say!("revoked token {token:?} of source {source}");
        }
    }
    Ok(())
}

/// A timestamp to the second, for humans.
fn show_time(t: OffsetDateTime) -> String {
    scimd_core::resource::format_time(t.replace_nanosecond(0).unwrap_or(t))
}
