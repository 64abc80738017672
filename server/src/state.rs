//! What every handler shares: the engine, the authenticator, the clock, the limits, and the one
//! way to run blocking work.

use std::sync::Arc;

use fieldsync_core::engine::SyncEngine;
use tokio::sync::Semaphore;

use crate::cache::{Versioned, Weighed};
use crate::error::ApiError;
use crate::http::HttpLimits;
use crate::store::ServerStorage;
use fieldsync_core::index::{IndexRow, StageChange};
use fieldsync_core::storage::Storage as _;
use fieldsync_planning::map::CustomerMap;

/// Where the time comes from: the system in production, a fixed clock in tests.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// Everything a request handler needs.
#[derive(Clone, Debug)]
pub struct AppState {
    pub engine: Arc<SyncEngine<ServerStorage>>,
    pub auth: Arc<crate::auth::Authenticator>,
    pub clock: Arc<dyn Clock>,
    pub limits: Arc<HttpLimits>,
    /// Slots for planning computations ([`HttpLimits::max_planning_jobs`]).
    pub planning_jobs: Arc<Semaphore>,
    /// The teams' report index (rows and stage changes), by version ([`AppState::team_index`]).
    pub index: Arc<Versioned<TeamIndex>>,
    /// The teams' map R-trees, by version.
    pub maps: Arc<Versioned<CustomerMap>>,
    /// Woken after every accepted write, so live feeds look at the feed ([`AppState::changed`]).
    pub feed_changed: Arc<tokio::sync::Notify>,
    /// Slots for live feeds ([`HttpLimits::max_live_streams`]).
    pub live_streams: Arc<Semaphore>,
    /// What the dashboard is configured with.
    pub dashboard: Arc<crate::routes::dashboard::DashboardSettings>,
    /// Who may read `/metrics` ([`crate::metrics`]).
    pub metrics: Arc<crate::metrics::MetricsAccess>,
    /// The lead intake's rates and team locks ([`crate::routes::leads`]).
    pub leads: Arc<crate::routes::leads::LeadIntake>,
}

impl AppState {
    pub fn new(
        engine: Arc<SyncEngine<ServerStorage>>,
        auth: Arc<crate::auth::Authenticator>,
        clock: Arc<dyn Clock>,
        limits: HttpLimits,
    ) -> Self {
        let planning_jobs = Arc::new(Semaphore::new(limits.max_planning_jobs.max(1)));
        let live_streams = Arc::new(Semaphore::new(limits.max_live_streams.max(1)));
        AppState {
            engine,
            auth,
            clock,
            limits: Arc::new(limits),
            planning_jobs,
            index: Arc::new(Versioned::new(8, 1_000_000)),
            maps: Arc::new(Versioned::new(8, 200_000)),
            feed_changed: Arc::default(),
            live_streams,
            dashboard: Arc::default(),
            metrics: Arc::new(crate::metrics::MetricsAccess::closed()),
            leads: Arc::default(),
        }
    }

    /// The same state with `/metrics` open to `access`'s token.
    pub fn with_metrics(mut self, access: crate::metrics::MetricsAccess) -> Self {
        self.metrics = Arc::new(access);
        self
    }

    /// The same state with the dashboard's settings.
    pub fn with_dashboard(mut self, settings: crate::routes::dashboard::DashboardSettings) -> Self {
        self.dashboard = Arc::new(settings);
        self
    }

    /// The team's report index at its current version, from the cache when the feed head has not
    /// moved since it was read. Blocking: call it inside [`blocking`].
    pub fn team_index(&self, team: &str) -> Result<(u64, Arc<TeamIndex>), ApiError> {
        // The version first: what is read after it is never older than the label.
        let version = self.engine.storage().feed_head(team)?;
        let index = self.index.get_or_build(team, version, || -> Result<_, ApiError> {
            Ok(TeamIndex {
                rows: self.engine.index_rows(team)?,
                changes: self.engine.stage_changes(team)?,
                plan: self.engine.current_plan(team)?,
            })
        })?;
        Ok((version, index))
    }

    /// The team's map at its current version, with the index it was built from (blocking, like
    /// [`AppState::team_index`]).
    pub fn team_map(&self, team: &str) -> Result<(Arc<CustomerMap>, Arc<TeamIndex>), ApiError> {
        let (version, index) = self.team_index(team)?;
        let map =
            self.maps.get_or_build(team, version, || Ok::<_, ApiError>(CustomerMap::build(&index.rows)))?;
        Ok((map, index))
    }

    /// The team's territories, or only those `member` (a rep) belongs to (blocking).
    pub fn territories(
        &self,
        team: &str,
        member: Option<&str>,
    ) -> Result<Vec<fieldsync_core::docs::Territory>, ApiError> {
        use fieldsync_core::docs::{DocKind, Document};
        let mut found = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.engine.storage().list_docs(team, member, &after, 1000)?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            for (id, _) in page.into_iter().filter(|(_, k)| *k == DocKind::Territory) {
                if let Some((Document::Territory(t), _)) = self.engine.read_doc(team, &id)? {
                    found.push(t);
                }
            }
        }
        Ok(found)
    }

    /// Wakes the live feeds: something was written.
    pub fn changed(&self) {
        self.feed_changed.notify_waiters();
    }

    /// A slot for a planning computation ([`HttpLimits::max_planning_jobs`]), or 503: planning
    /// keeps a core busy for up to seconds, so a burst of it must not starve everyone's syncs.
    pub fn planning_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.planning_jobs.clone().try_acquire_owned().map_err(|_| {
            ApiError::busy("the server is computing as many plans as it can", self.limits.retry_after_s)
        })
    }
}

/// Runs blocking work (storage, Automerge, planning) off the async threads, in the request's span.
pub async fn blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
        .map_err(Into::into)
}

/// What the reports and the map read of a team: the index rows, the stage transitions, and the
/// current plan (its thresholds tier the rows) — all at one version.
#[derive(Debug)]
pub struct TeamIndex {
    pub rows: Vec<IndexRow>,
    pub changes: Vec<StageChange>,
    pub plan: Option<fieldsync_core::docs::Plan>,
}

impl Weighed for TeamIndex {
    fn weight(&self) -> usize {
        self.rows.len() + self.changes.len()
    }
}

impl Weighed for CustomerMap {
    fn weight(&self) -> usize {
        self.len()
    }
}
