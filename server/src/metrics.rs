//! What the server counts, and `GET /metrics` where Prometheus reads it.
//!
//! Counters and histograms are recorded where things happen, through the `metrics` facade:
//! every request by route and status with its latency ([`track_requests`]), every sync's pushes,
//! pulls, accepted and quarantined changes and bootstrap pages ([`record_sync`]), every storage
//! batch's flush ([`crate::store`]). What is a state rather than an event (the feed head of each
//! team, the store's size on disk, the document cache) is read when Prometheus scrapes.
//!
//! `/metrics` names every team, so no team's token opens it: it takes the deployment's metrics
//! token (`Authorization: Bearer <token>`), the hex in `DATA/metrics-token` (generated on first
//! start, 0600) or in the file `--metrics-token-file` names. Prometheus reads it with
//! `authorization: { credentials_file: … }`.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fieldsync_core::protocol::{SyncRequest, SyncResponse};
use fieldsync_core::storage::Storage as _;
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::auth::AuthError;
use crate::error::ApiError;
use crate::state::{AppState, blocking};

/// Name of the generated metrics token inside the data directory.
pub const TOKEN_FILE_NAME: &str = "metrics-token";

/// Bucket bounds of every `*_seconds` histogram: a millisecond to ten seconds.
const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Teams named in `fieldsync_feed_head`; past them the scrape says how many were left out
/// (`fieldsync_teams`), so a deployment with many teams does not make every scrape huge.
const MAX_TEAM_SERIES: usize = 1000;

/// The process's recorder, installed the first time it is asked for ([`crate::Server::open`]
/// does): what is recorded before it exists is lost.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = match PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        {
            Ok(b) => b,
            // Only an empty bucket list is refused; the default summaries then serve.
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            // Another recorder is the process's (an embedding program's): ours then renders
            // nothing, and the server still serves.
            tracing::warn!("a metrics recorder was installed before the server's: /metrics stays empty");
        }
        describe();
        handle
    })
}

/// The `# HELP` of every metric: one list of what the server exports.
fn describe() {
    describe_counter!(
        "fieldsync_http_requests_total",
        "HTTP requests answered, by method, route pattern and status"
    );
    describe_histogram!(
        "fieldsync_http_request_duration_seconds",
        Unit::Seconds,
        "time to an HTTP response's head, by method and route pattern"
    );
    describe_counter!("fieldsync_syncs_total", "sync requests answered");
    describe_counter!("fieldsync_pushes_total", "sync requests that carried changes");
    describe_counter!("fieldsync_pulls_total", "sync requests that brought changes or documents down");
    describe_counter!(
        "fieldsync_pushed_changes_total",
        "pushed changes: accepted, or refused by the rules and kept in quarantine"
    );
    describe_counter!("fieldsync_pulled_changes_total", "feed entries sent to devices");
    describe_counter!(
        "fieldsync_pulled_documents_total",
        "whole documents sent to devices (bootstrap, resets)"
    );
    describe_counter!("fieldsync_bootstrap_pages_total", "bootstrap pages sent to devices");
    describe_histogram!(
        "fieldsync_storage_flush_seconds",
        Unit::Seconds,
        "time to apply and flush one storage batch (an acknowledgement waits for it)"
    );
    describe_counter!("fieldsync_storage_batches_total", "storage batches made durable");
    describe_counter!(
        "fieldsync_storage_written_bytes_total",
        Unit::Bytes,
        "bytes of the batches made durable"
    );
    describe_gauge!("fieldsync_storage_bytes", Unit::Bytes, "the store's size on disk");
    describe_gauge!("fieldsync_feed_head", "the last sequence number of a team's change feed");
    describe_gauge!("fieldsync_teams", "teams stored");
    describe_counter!("fieldsync_document_cache_hits_total", "document lookups served from memory");
    describe_counter!("fieldsync_document_cache_misses_total", "document lookups loaded from storage");
    describe_gauge!("fieldsync_documents_loaded", "documents held in memory");
}

/// Who may read `/metrics`: the holder of this token.
#[derive(Clone)]
pub struct MetricsAccess {
    token: String,
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAccess").finish_non_exhaustive()
    }
}

/// Where the metrics token is read from: `token_file`, or `data_dir/metrics-token`.
pub fn token_path(data_dir: &Path, token_file: Option<&Path>) -> std::path::PathBuf {
    token_file.map_or_else(|| data_dir.join(TOKEN_FILE_NAME), Path::to_path_buf)
}

impl MetricsAccess {
    /// The token of `token_file` (hex, at least 32 bytes), or of `data_dir/metrics-token`,
    /// generated when absent.
    pub fn open(data_dir: &Path, token_file: Option<&Path>) -> Result<Self, AuthError> {
        let secret = match token_file {
            Some(path) => crate::auth::dev_secret::read_secret(path)?,
            None => crate::auth::dev_secret::load_or_create_secret_file(data_dir, TOKEN_FILE_NAME)?,
        };
        Ok(MetricsAccess { token: crate::auth::dev_secret::hex_encode(&secret) })
    }

    /// Admits no one: a state built without [`MetricsAccess::open`].
    pub fn closed() -> Self {
        MetricsAccess { token: String::new() }
    }

    /// The token itself (for `fieldsync serve` to say where it is, and for tests).
    pub fn token(&self) -> &str {
        &self.token
    }

    fn admits(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Every byte compared whatever the first difference: the time says nothing of the token.
        !self.token.is_empty()
            && given.len() == self.token.len()
            && given.bytes().zip(self.token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// The route label of a request: the route's pattern, never the path itself (a path carries ids,
/// and a client choosing paths would choose how many series the server keeps).
fn route_label(req: &Request) -> String {
    req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string())
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts every request by method, route and status, and times it to its response's
/// head (a live feed's stream goes on after).
pub async fn track_requests(req: Request, next: Next) -> Response {
    let route = route_label(&req);
    let method = method_label(req.method());
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    histogram!("fieldsync_http_request_duration_seconds", "method" => method, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    counter!("fieldsync_http_requests_total", "method" => method, "route" => route, "status" => status)
        .increment(1);
    resp
}

/// What one sync did: a push when it carried changes, a pull when it brought something down.
/// Every change the rules refused is kept in quarantine: `outcome="quarantined"`.
pub fn record_sync(req: &SyncRequest, resp: &SyncResponse) {
    counter!("fieldsync_syncs_total").increment(1);
    if !req.push.is_empty() {
        counter!("fieldsync_pushes_total").increment(1);
    }
    if !resp.changes.is_empty() || !resp.docs.is_empty() {
        counter!("fieldsync_pulls_total").increment(1);
    }
    let accepted: usize = resp.accepted.iter().map(|a| a.hashes.len()).sum();
    let quarantined: usize = resp.rejected.iter().map(|r| r.hashes.len()).sum();
    counter!("fieldsync_pushed_changes_total", "outcome" => "accepted").increment(accepted as u64);
    counter!("fieldsync_pushed_changes_total", "outcome" => "quarantined").increment(quarantined as u64);
    counter!("fieldsync_pulled_changes_total").increment(resp.changes.len() as u64);
    counter!("fieldsync_pulled_documents_total").increment(resp.docs.len() as u64);
    if resp.bootstrap_after.is_some() {
        counter!("fieldsync_bootstrap_pages_total").increment(1);
    }
}

/// One storage batch made durable in `seconds` (write and flush).
pub fn record_flush(seconds: f64, bytes: u64) {
    histogram!("fieldsync_storage_flush_seconds").record(seconds);
    counter!("fieldsync_storage_batches_total").increment(1);
    counter!("fieldsync_storage_written_bytes_total").increment(bytes);
}

/// Sets the gauges read at scrape time.
fn observe(state: &AppState) {
    let engine = &state.engine;
    let stats = engine.cache_stats();
    counter!("fieldsync_document_cache_hits_total").absolute(stats.hits);
    counter!("fieldsync_document_cache_misses_total").absolute(stats.misses);
    gauge!("fieldsync_documents_loaded").set(stats.loaded as f64);
    gauge!("fieldsync_storage_bytes").set(engine.storage().backend().size_on_disk() as f64);
    match engine.storage().teams() {
        Ok(teams) => {
            gauge!("fieldsync_teams").set(teams.len() as f64);
            for team in teams.iter().take(MAX_TEAM_SERIES) {
                if let Ok(head) = engine.storage().feed_head(team) {
                    gauge!("fieldsync_feed_head", "team" => team.clone()).set(head as f64);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the teams cannot be listed"),
    }
}

/// `text/plain; version=0.0.4`: what Prometheus reads.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[utoipa::path(get, path = "/metrics", tag = "meta", security(("metrics_token" = [])),
    responses((status = 200, description = "Prometheus text: requests, syncs, storage, feed heads, the document cache", content_type = "text/plain"),
    crate::routes::openapi::Errors))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if !state.metrics.admits(&headers) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "/metrics takes the deployment's metrics token (DATA/metrics-token), not a user's",
        ));
    }
    let text = blocking(move || -> Result<String, ApiError> {
        observe(&state);
        let handle = handle();
        handle.run_upkeep();
        Ok(handle.render())
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT))], text).into_response())
}
