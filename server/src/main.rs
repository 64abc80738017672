//! `fieldsync`: the sync server and its admin commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use fieldsync_core::Role;
use fieldsync_server::{Clock, Server, ServerConfig, SystemClock, auth, config, seed};

#[derive(Debug, Parser)]
#[command(name = "fieldsync", version, about = "Offline-first sync server for field sales teams")]
struct Cli {
    /// Log lines as text for people, or as one JSON object per line for a log pipeline (each line
    /// of a request carries its `request_id` under `span`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "FIELDSYNC_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct DataArg {
    /// Data directory (sled database and the development JWT secret).
    #[arg(long, default_value = "./data", env = "FIELDSYNC_DATA")]
    data: PathBuf,
}

/// `fieldsync serve`: every setting a flag, an environment variable, or a key of `--config`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Each setting comes from its flag, else its environment variable, else the --config \
file (the flag's name without --, e.g. `feed-trim-every = \"10m\"`, `log-format = \"json\"`; paths \
relative to the file), else its default.")]
struct ServeArgs {
    /// A TOML file of settings, one key per flag (`addr = "0.0.0.0:8080"`); flags and environment
    /// variables override it.
    #[arg(long, env = "FIELDSYNC_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    data: DataArg,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "FIELDSYNC_ADDR")]
    addr: SocketAddr,
    /// Do not seed the demo team into an empty data directory.
    #[arg(long, env = "FIELDSYNC_NO_SEED")]
    no_seed: bool,
    /// Accept tokens from an identity provider: RS256, ES256 or EdDSA (needs --jwt-public-key).
    #[arg(long, env = "FIELDSYNC_JWT_ALG")]
    jwt_alg: Option<String>,
    /// PEM public key of the identity provider (needs --jwt-alg).
    #[arg(long, env = "FIELDSYNC_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// Expected `iss` of tokens.
    #[arg(long, default_value = auth::DEFAULT_ISSUER, env = "FIELDSYNC_JWT_ISSUER")]
    jwt_issuer: String,
    /// Expected `aud` of tokens.
    #[arg(long, default_value = auth::DEFAULT_AUDIENCE, env = "FIELDSYNC_JWT_AUDIENCE")]
    jwt_audience: String,
    /// Feed entries kept per team; devices further behind bootstrap from snapshots again.
    #[arg(long, default_value_t = 1_000_000, env = "FIELDSYNC_FEED_RETAIN")]
    feed_retain: u64,
    /// How often the feed is trimmed to --feed-retain entries (e.g. 10m, 30s).
    #[arg(long, default_value = "10m", value_parser = config::parse_period, env = "FIELDSYNC_FEED_TRIM_EVERY")]
    feed_trim_every: Duration,
    /// Documents per bootstrap page (testing pagination).
    #[arg(long, hide = true)]
    bootstrap_page_docs: Option<usize>,
    /// Stored chunks past which a document is compacted (testing compaction).
    #[arg(long, hide = true)]
    compact_after_chunks: Option<u32>,
    /// Map tiles for the dashboard (`https://tiles.example/{z}/{x}/{y}.png`); without, the map
    /// works offline on a plain background.
    #[arg(long, env = "FIELDSYNC_TILE_URL")]
    tile_url: Option<String>,
    /// Free space kept on the data directory's filesystem (e.g. 64MiB, 1GiB): below it, writes
    /// are refused with 507 until space is freed, and reads go on.
    #[arg(long, default_value = "64MiB", value_parser = config::parse_bytes, env = "FIELDSYNC_MIN_FREE_SPACE")]
    min_free_space: u64,
    /// The file holding the token `GET /metrics` takes (hex, at least 32 bytes: `openssl rand
    /// -hex 32`); without, DATA/metrics-token, generated on first start.
    #[arg(long, env = "FIELDSYNC_METRICS_TOKEN_FILE")]
    metrics_token_file: Option<PathBuf>,
}

impl ServeArgs {
    /// Takes the `--config` file's value of every setting that neither its flag nor its
    /// environment variable gave (`matches` are `serve`'s, `global` the top level's); checks
    /// what only the settings together can say.
    fn merge_config(
        &mut self,
        matches: &clap::ArgMatches,
        global: &clap::ArgMatches,
        log_format: &mut LogFormat,
    ) -> anyhow::Result<()> {
        use clap::ValueEnum as _;
        use clap::parser::ValueSource;
        let unset = |m: &clap::ArgMatches, id: &str| {
            matches!(m.value_source(id), None | Some(ValueSource::DefaultValue))
        };
        if let Some(path) = &self.config {
            let file = config::ServeFile::load(path)?;
            macro_rules! take {
                ($field:ident) => {
                    if unset(matches, stringify!($field))
                        && let Some(v) = file.$field.clone()
                    {
                        self.$field = v.into();
                    }
                };
            }
            if unset(matches, "data")
                && let Some(v) = file.data.clone()
            {
                self.data.data = v;
            }
            take!(addr);
            take!(no_seed);
            take!(jwt_alg);
            take!(jwt_public_key);
            take!(jwt_issuer);
            take!(jwt_audience);
            take!(feed_retain);
            take!(feed_trim_every);
            take!(tile_url);
            take!(min_free_space);
            take!(metrics_token_file);
            if unset(global, "log_format")
                && unset(matches, "log_format")
                && let Some(v) = &file.log_format
            {
                *log_format = LogFormat::from_str(v, true)
                    .map_err(|_| anyhow::anyhow!("{}: log-format: {v:?}: text or json", path.display()))?;
            }
        }
        if self.jwt_alg.is_some() != self.jwt_public_key.is_some() {
            anyhow::bail!(
                "--jwt-alg and --jwt-public-key go together: a provider's algorithm and its public key"
            );
        }
        Ok(())
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the sync API. With an empty data directory, seeds the demo team first.
    Serve(ServeArgs),
    /// Print a development token (HS256, signed with the data directory's secret).
    Token {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        team: String,
        #[arg(long)]
        user: String,
        #[arg(long)]
        role: Role,
        /// Lifetime, e.g. 8h, 30d.
        #[arg(long, default_value = "8h")]
        ttl: String,
        /// Issue time (Unix seconds) instead of now: for testing how clients handle expired tokens.
        #[arg(long, hide = true)]
        issued_at: Option<u64>,
    },
    /// Revoke a device of a team (a lost phone) in a stopped server's data directory; on a running
    /// server, `POST /v1/devices/revoke`.
    RevokeDevice {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        team: String,
        /// The device id the phone syncs with.
        #[arg(long)]
        device: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Import customers from an XLSX, ODS or CSV file with a header row (English or Chinese names:
    /// name/客户名称, lat/纬度, lon/经度, external id/客户编号, address/地址, potential/潜力,
    /// probability/成交概率, owner/负责人, territory/区域, opening hours/营业时间, datum/坐标系,
    /// tier/等级) into a stopped server's data directory. Rows are matched by external id: importing
    /// a file again changes nothing. A file with a refused row writes nothing.
    Import {
        /// The file (.xlsx, .ods or .csv).
        file: PathBuf,
        #[command(flatten)]
        data: DataArg,
        /// The team (of the data directory; with --server, the token's team is used).
        #[arg(long, required_unless_present = "server")]
        team: Option<String>,
        /// A running server to import into (`POST /v1/import`), instead of a data directory.
        #[arg(long, requires = "token", env = "FIELDSYNC_SERVER")]
        server: Option<String>,
        /// A manager's or admin's token for --server.
        #[arg(long, requires = "server", env = "FIELDSYNC_TOKEN")]
        token: Option<String>,
        /// Check the file and report what would change, writing nothing.
        #[arg(long)]
        dry_run: bool,
        /// The report as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Who imports (tiers given in the file are overrides by them).
        #[arg(long, default_value = "import")]
        by: String,
    },
    /// Export a team's customers (as a file `import` reads back unchanged) or visits from a
    /// stopped server's data directory (on a running server: `GET /v1/export/customers`,
    /// `GET /v1/export/visits`).
    Export {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        team: String,
        /// `customers` or `visits`.
        #[arg(long, default_value = "customers")]
        what: String,
        /// `csv`, `xlsx` or `geojson`.
        #[arg(long, default_value = "csv")]
        format: String,
        /// Visits planned to start at or after this time (Unix ms; default: 90 days before --to-ms).
        #[arg(long)]
        from_ms: Option<i64>,
        /// Visits planned to start before this time (Unix ms; default: now).
        #[arg(long)]
        to_ms: Option<i64>,
        /// The file to write (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Back up a data directory to FILE: through the admin socket of the server running on it (it
    /// goes on serving; writes wait while the store is read), or directly when none runs. Every
    /// push acknowledged before the backup began is in it.
    Backup {
        #[command(flatten)]
        data: DataArg,
        /// The backup file to write (it must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into a new data directory, then serve it with `fieldsync serve --data`.
    /// Devices bootstrap from it and send up what they hold that the backup missed.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// The new data directory (absent or empty).
        #[arg(long)]
        data: PathBuf,
    },
    /// Seed the demo team (a manager, five reps, 300 customers around Lyon, territories, a plan, past visits).
    Seed {
        #[command(flatten)]
        data: DataArg,
        /// Random seed: the same seed gives the same team.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

/// `POST /v1/import` on a running server: the report it answers, also for refused rows (422
/// `rows_refused`); any other refusal is its message.
fn import_over_http(
    url: &str,
    token: &str,
    bytes: Vec<u8>,
    format: Option<fieldsync_exchange::table::Format>,
    dry_run: bool,
) -> anyhow::Result<fieldsync_exchange::import::Report> {
    let mut target = format!("{}/v1/import?dry_run={dry_run}", url.trim_end_matches('/'));
    if let Some(f) = format {
        target.push_str(&format!("&format={}", f.as_str()));
    }
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build(),
    );
    let mut resp = agent
        .post(&target)
        .header("authorization", &format!("Bearer {token}"))
        .header("content-type", "application/octet-stream")
        .send(&bytes[..])
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .with_context(|| format!("reading {url}'s answer"))?;
    let body: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("{url} answered HTTP {status} without a JSON report"))?;
    let report = match (status, &body["error"]) {
        (200, _) => body,
        (422, e) if e == "rows_refused" => body["report"].clone(),
        _ => anyhow::bail!("HTTP {status}: {}", body["message"].as_str().unwrap_or("no message")),
    };
    Ok(serde_json::from_value(report)?)
}

fn print_seed(summary: &seed::SeedSummary) {
    println!(
        "seeded team {:?}: {} customers, {} territories, {} past visits, {} plan",
        summary.team, summary.customers, summary.territories, summary.visits, summary.plans
    );
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing requests in flight");
}

/// A user's mistake (a port in use, a missing key file) is one line on stderr and exit code 1, never
/// a backtrace: the error chain says what failed and why.
fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let (Command::Serve(args), Some(("serve", serve))) = (&mut cli.command, matches.subcommand())
        && let Err(e) = args.merge_config(serve, &matches, &mut cli.log_format)
    {
        eprintln!("fieldsync: {e:#}");
        return std::process::ExitCode::FAILURE;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=warn".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fieldsync: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fieldsync: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(ServeArgs {
            config: _,
            data,
            addr,
            no_seed,
            jwt_alg,
            jwt_public_key,
            jwt_issuer,
            jwt_audience,
            feed_retain,
            feed_trim_every,
            bootstrap_page_docs,
            compact_after_chunks,
            tile_url,
            min_free_space,
            metrics_token_file,
        }) => {
            // The address first: a port in use must not leave a freshly seeded data directory behind.
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            let mut config = ServerConfig::dev(&data.data);
            config.min_free_bytes = min_free_space;
            config.metrics_token_file = metrics_token_file.clone();
            config.engine.bootstrap_docs = bootstrap_page_docs;
            config.engine.compact_after_chunks = compact_after_chunks;
            if let Some(url) = &tile_url {
                config.dashboard = fieldsync_server::routes::dashboard::DashboardSettings::with_tile_url(url)
                    .map_err(anyhow::Error::msg)?;
            }
            if let (Some(alg), Some(key)) = (&jwt_alg, &jwt_public_key) {
                let pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
                config.auth = Some(auth::AuthConfig::external(alg, &pem, &jwt_issuer, &jwt_audience)?);
            }
            let server = Server::open(config).with_context(|| format!("opening {}", data.data.display()))?;
            if !no_seed {
                let now = SystemClock.now_ms();
                let engine = server.state().engine;
                if let Some(summary) =
                    tokio::task::spawn_blocking(move || seed::seed_demo(&engine, 42, now)).await??
                {
                    print_seed(&summary);
                }
            }
            let local = listener.local_addr()?;
            println!("fieldsync listening on http://{local} (data in {})", data.data.display());
            println!("dashboard: http://{local}/");
            let token_file = fieldsync_server::metrics::token_path(&data.data, metrics_token_file.as_deref());
            println!("metrics: http://{local}/metrics (bearer token in {})", token_file.display());
            if server.auth().can_issue() {
                let token = fieldsync_server::routes::dashboard::demo_manager_token(server.auth())?;
                println!("demo manager token (8h):\n  {token}");
                let exe = std::env::current_exe().map(|p| p.display().to_string());
                println!(
                    "more tokens: {} token --data {} --team demo --user alice --role rep",
                    exe.as_deref().unwrap_or("fieldsync"),
                    data.data.display()
                );
                println!("try: curl -H \"Authorization: Bearer $TOKEN\" http://{local}/v1/quarantine");
            }
            tokio::spawn(fieldsync_server::trim_feeds_every(server.state(), feed_retain, feed_trim_every));
            let admin = server.clone();
            tokio::spawn(async move {
                if let Err(e) = fieldsync_server::admin::serve_admin(admin).await {
                    tracing::error!(error = %e, "the admin socket is not served: fieldsync backup cannot reach this server");
                }
            });
            fieldsync_server::run(listener, server.state(), shutdown_signal()).await?;
            let _ = std::fs::remove_file(fieldsync_server::admin::socket_path(&data.data));
            Ok(())
        }
        Command::Token { data, team, user, role, ttl, issued_at } => {
            let config = auth::AuthConfig::dev_from_data_dir(&data.data)?;
            let authenticator = auth::Authenticator::new(&config)?;
            let ttl = auth::parse_ttl(&ttl)?;
            println!(
                "{}",
                authenticator.issue(&team, &user, role, ttl, issued_at.unwrap_or_else(auth::unix_now))?
            );
            Ok(())
        }
        Command::RevokeDevice { data, team, device, reason } => {
            fieldsync_core::docs::validate_id("team", &team).map_err(anyhow::Error::msg)?;
            fieldsync_core::docs::validate_id("device", &device).map_err(anyhow::Error::msg)?;
            let server = Server::open_with_clock(ServerConfig::dev(&data.data), Arc::new(SystemClock))
                .with_context(|| {
                    format!(
                        "opening {} (stop the server first, or use POST /v1/devices/revoke)",
                        data.data.display()
                    )
                })?;
            let revocation = fieldsync_core::storage::DeviceRevocation {
                device_id: device.clone(),
                by: "fieldsync revoke-device".into(),
                at_ms: SystemClock.now_ms(),
                reason,
            };
            use fieldsync_core::storage::Storage as _;
            server.engine().storage().revoke_device(&team, &revocation)?;
            println!("device {device:?} of team {team:?} revoked: its syncs are refused from now on");
            Ok(())
        }
        Command::Import { file, data, team, dry_run, json, by, server: url, token } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let format = fieldsync_exchange::table::Format::from_name(&file.display().to_string());
            let not_imported = || format!("{} was not imported; nothing was written", file.display());
            let report: fieldsync_exchange::import::Report = match (url, token) {
                (Some(url), Some(token)) => tokio::task::spawn_blocking(move || {
                    import_over_http(&url, &token, bytes, format, dry_run)
                })
                .await?
                .with_context(not_imported)?,
                _ => {
                    let team = team.unwrap_or_default();
                    fieldsync_core::docs::validate_id("team", &team).map_err(anyhow::Error::msg)?;
                    fieldsync_core::docs::validate_id("by", &by).map_err(anyhow::Error::msg)?;
                    let server =
                        Server::open_with_clock(ServerConfig::dev(&data.data), Arc::new(SystemClock))
                            .with_context(|| {
                                format!(
                                    "opening {} (stop the server first, or use --server)",
                                    data.data.display()
                                )
                            })?;
                    let bar = indicatif::ProgressBar::new(0).with_style(
                        indicatif::ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} customers")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                    );
                    bar.set_message("importing");
                    let request = fieldsync_server::import::ImportRequest {
                        team: &team,
                        bytes: &bytes,
                        format,
                        dry_run,
                        by: &by,
                        now_ms: SystemClock.now_ms(),
                        limits: Default::default(),
                    };
                    let report = fieldsync_server::import::import_customers(
                        server.engine(),
                        &request,
                        &mut |done, total| {
                            bar.set_length(total as u64);
                            bar.set_position(done as u64);
                        },
                    );
                    bar.finish_and_clear();
                    report.with_context(not_imported)?
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for e in &report.refused {
                    let column = e.column.as_deref().map(|c| format!(", column {c:?}")).unwrap_or_default();
                    println!("line {}{column}: {}", e.line, e.reason);
                }
                if !report.ignored_columns.is_empty() {
                    println!("columns not imported: {}", report.ignored_columns.join(", "));
                }
                println!(
                    "{} rows: {} new, {} updated, {} unchanged, {} refused{}",
                    report.rows,
                    report.created,
                    report.updated,
                    report.unchanged,
                    report.refused.len(),
                    if report.written { "" } else { " — nothing written" }
                );
            }
            if !report.refused.is_empty() {
                anyhow::bail!("{} rows refused: fix them and import the file again", report.refused.len());
            }
            Ok(())
        }
        Command::Export { data, team, what, format, from_ms, to_ms, out } => {
            use fieldsync_exchange::export::What;
            use fieldsync_server::routes::export::{parse_format, team_file, visit_window};
            fieldsync_core::docs::validate_id("team", &team).map_err(anyhow::Error::msg)?;
            let what =
                What::parse(&what).ok_or_else(|| anyhow::anyhow!("--what {what:?}: customers or visits"))?;
            let format = parse_format(Some(&format)).map_err(|e| anyhow::anyhow!("--{e}"))?;
            let window = (what == What::Visits)
                .then(|| visit_window(from_ms, to_ms, SystemClock.now_ms()))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--from-ms/--to-ms: {e}"))?;
            let server = Server::open_with_clock(ServerConfig::dev(&data.data), Arc::new(SystemClock))
                .with_context(|| format!("opening {} (stop the server first)", data.data.display()))?;
            let bytes = team_file(server.engine(), &team, what, format, window)
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?
                }
                None => {
                    use std::io::Write as _;
                    std::io::stdout().write_all(&bytes)?;
                }
            }
            Ok(())
        }
        Command::Backup { data, out } => {
            let out = std::path::absolute(&out).with_context(|| format!("{}", out.display()))?;
            let report = match fieldsync_server::admin::request_backup(&data.data, &out).await {
                Ok(Some(report)) => report,
                Ok(None) => {
                    let server =
                        Server::open_with_clock(ServerConfig::dev(&data.data), Arc::new(SystemClock))
                            .with_context(|| format!("opening {}", data.data.display()))?;
                    tokio::task::spawn_blocking(move || server.backup(&out)).await??
                }
                Err(e) => {
                    anyhow::bail!("the server on {} could not back up: {}", data.data.display(), e.message)
                }
            };
            println!(
                "backup {}: {} records, {} bytes in {} ms",
                report.file.display(),
                report.summary.pairs + report.summary.files,
                report.summary.bytes,
                report.millis
            );
            Ok(())
        }
        Command::Restore { file, data } => {
            let report = tokio::task::spawn_blocking(move || fieldsync_server::backup::restore(&file, &data))
                .await?
                .context("nothing was restored")?;
            println!(
                "restored {} records in {} ms; {} teams, their devices bootstrap on their next sync",
                report.summary.pairs + report.summary.files,
                report.millis,
                report.teams.len()
            );
            Ok(())
        }
        Command::Seed { data, seed: seed_value } => {
            let server = Server::open_with_clock(ServerConfig::dev(&data.data), Arc::new(SystemClock))?;
            match seed::seed_demo(server.engine(), seed_value, SystemClock.now_ms())? {
                Some(summary) => print_seed(&summary),
                None => println!("team {:?} already has data: nothing seeded", seed::DEMO_TEAM),
            }
            Ok(())
        }
    }
}
