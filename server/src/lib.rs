//! # fieldsync-server
//!
//! The sync server of fieldsync: axum over HTTP, sled on disk, JWT for identity. It owns the IO loop
//! around [`fieldsync_core::engine::SyncEngine`]: authenticate a request, decode it, hand it to the
//! engine on a blocking thread, encode the answer. Deciding what to store and answer is the
//! core's; this crate performs it.
//!
//! A request crosses these rooms, in order: [`http`] (accept loop, limits, body budget) →
//! [`request_id`] → [`routes`] (one file per concern) taking its inputs through [`extract`]
//! (the caller and the request's parts) → the engine through [`state::blocking`] → [`error`]
//! for every refusal. [`auth`] verifies tokens; [`store`] opens sled; [`seed`] writes the demo
//! team.
//!
//! Open a server on a data directory, seed the demo team, and ask it something as a manager:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! use fieldsync_core::Role;
//! use fieldsync_server::{Server, ServerConfig, app, seed};
//! use tower::ServiceExt as _;
//!
//! let dir = tempfile::tempdir()?;
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
//! let server = Server::open(ServerConfig::dev(dir.path()))?;
//! seed::seed_demo(server.engine(), 42, now.as_millis() as i64)?;
//! let ttl = std::time::Duration::from_secs(60);
//! let token = server.auth().issue(seed::DEMO_TEAM, seed::DEMO_MANAGER, Role::Manager, ttl, now.as_secs())?;
//!
//! // `app` is the whole HTTP application; `run` serves it on a listener.
//! let request = axum::http::Request::get("/v1/plan/targets")
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(axum::body::Body::empty())?;
//! let response = app(server.state()).oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! ```

pub mod admin;
pub mod auth;
pub mod backup;
pub mod cache;
pub mod config;
pub mod error;
pub mod extract;
pub mod http;
pub mod import;
pub mod metrics;
pub mod request_id;
pub mod routes;
pub mod seed;
pub mod state;
pub mod store;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use fieldsync_core::engine::{EngineConfig, SyncEngine, server_actor};

pub use error::ApiError;
pub use http::HttpLimits;
pub use routes::app;
pub use state::{AppState, Clock, SystemClock};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error(transparent)]
    Storage(#[from] fieldsync_core::storage::StorageError),
    #[error(transparent)]
    Sync(#[from] fieldsync_core::engine::SyncError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Backup(#[from] backup::BackupFailure),
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// None: development mode, HS256 with a secret generated in the data directory.
    pub auth: Option<auth::AuthConfig>,
    /// Bytes of sled page cache.
    pub cache_bytes: u64,
    /// Documents kept loaded.
    pub cache_docs: usize,
    /// Timeouts and caps of the HTTP server.
    pub limits: HttpLimits,
    /// The dashboard's settings (a tile URL).
    pub dashboard: routes::dashboard::DashboardSettings,
    /// Free space on the data directory's filesystem that writes never eat into: below it, writes
    /// are refused with 507 and reads go on ([`store`]).
    pub min_free_bytes: u64,
    /// Engine settings a deployment or a test may change.
    pub engine: EngineTuning,
    /// The file holding the `/metrics` token; None: `DATA/metrics-token`, generated when absent.
    pub metrics_token_file: Option<PathBuf>,
}

/// Engine settings that may be changed from the defaults (`None` keeps the engine's own).
#[derive(Debug, Clone, Default)]
pub struct EngineTuning {
    /// Documents per bootstrap page.
    pub bootstrap_docs: Option<usize>,
    /// Stored chunks of a document past which the next write compacts it to one.
    pub compact_after_chunks: Option<u32>,
}

impl ServerConfig {
    pub fn dev(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            data_dir: data_dir.into(),
            auth: None,
            cache_bytes: 64 * 1024 * 1024,
            cache_docs: 2048,
            limits: HttpLimits::default(),
            dashboard: Default::default(),
            min_free_bytes: store::DEFAULT_MIN_FREE_BYTES,
            engine: EngineTuning::default(),
            metrics_token_file: None,
        }
    }
}

/// An opened server: storage, engine and authenticator, ready to serve.
#[derive(Debug, Clone)]
pub struct Server {
    state: AppState,
    data_dir: PathBuf,
}

impl Server {
    pub fn open(config: ServerConfig) -> Result<Self> {
        Self::open_with_clock(config, Arc::new(SystemClock))
    }

    pub fn open_with_clock(config: ServerConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        Self::open_on(config, clock, |sled| Box::new(sled))
    }

    /// Like [`Server::open_with_clock`], with the key-value backend `backend` makes of the data
    /// directory's sled store: the fault tests put the core's `testing::faults::FaultyKv`
    /// around it.
    pub fn open_on(
        config: ServerConfig,
        clock: Arc<dyn Clock>,
        backend: impl FnOnce(store::SledKv) -> Box<dyn fieldsync_core::storage::KvBackend>,
    ) -> Result<Self> {
        std::fs::create_dir_all(&config.data_dir)?;
        metrics::handle();
        let metrics_access =
            metrics::MetricsAccess::open(&config.data_dir, config.metrics_token_file.as_deref())?;
        let auth_config = match config.auth {
            Some(a) => a,
            None => auth::AuthConfig::dev_from_data_dir(&config.data_dir)?,
        };
        let authenticator = auth::Authenticator::new(&auth_config)?;
        let sled = store::SledKv::open(&config.data_dir, config.cache_bytes, config.min_free_bytes)?;
        let storage = fieldsync_core::storage::KvStorage::new(backend(sled));
        // A fresh actor per process: two processes never write the same (actor, seq).
        let mut engine_config = EngineConfig::new(server_actor(uuid::Uuid::new_v4().as_bytes()));
        engine_config.cache_docs = config.cache_docs;
        if let Some(n) = config.engine.bootstrap_docs {
            engine_config.bootstrap_docs = n.max(1);
        }
        if let Some(n) = config.engine.compact_after_chunks {
            engine_config.compact_after_chunks = n.max(1);
        }
        let engine = SyncEngine::new(storage, engine_config);
        // Data stored before the report index existed gets its index once, before serving.
        for team in fieldsync_core::storage::Storage::teams(engine.storage())? {
            let rows = engine.backfill_index(&team, clock.now_ms())?;
            if rows > 0 {
                tracing::info!(team = %team, rows, "report index built from the stored documents");
            }
        }
        let state = AppState::new(Arc::new(engine), Arc::new(authenticator), clock, config.limits)
            .with_dashboard(config.dashboard)
            .with_metrics(metrics_access);
        Ok(Server { state, data_dir: config.data_dir })
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    pub fn engine(&self) -> &SyncEngine<store::ServerStorage> {
        &self.state.engine
    }

    pub fn auth(&self) -> &auth::Authenticator {
        &self.state.auth
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Writes a backup of the running server to `out` ([`backup`]).
    pub fn backup(&self, out: &std::path::Path) -> Result<backup::BackupReport, backup::BackupFailure> {
        backup::backup(self.engine().storage().backend(), &self.data_dir, out)
    }
}

/// Serves the application on `listener` until `shutdown` resolves, then finishes in-flight requests.
/// The limits of `state` ([`HttpLimits`]) apply: header and body read timeouts, connection and
/// in-flight caps.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.limits.clone();
    http::serve(listener, app(state), &limits, shutdown).await
}

/// Compaction of the feed: every `period`, keeps the newest `retain` entries of each team.
pub async fn trim_feeds_every(state: AppState, retain: u64, period: std::time::Duration) {
    use fieldsync_core::storage::Storage as _;
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let engine = state.engine.clone();
        let done = tokio::task::spawn_blocking(move || -> Result<usize> {
            let teams = engine.storage().teams()?;
            for team in &teams {
                engine.trim_feed(team, retain)?;
            }
            Ok(teams.len())
        })
        .await;
        match done {
            Ok(Ok(n)) => tracing::debug!(teams = n, retain, "feed trimmed"),
            Ok(Err(e)) => tracing::error!(error = %e, "feed trimming failed"),
            Err(e) => tracing::error!(error = %e, "feed trimming task failed"),
        }
    }
}
