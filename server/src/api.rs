//! HTTP: routes, the one error type, the `Claims` extractor.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{
        DefaultBodyLimit, FromRequestParts, Path, Query, State,
        rejection::{BytesRejection, PathRejection, QueryRejection},
    },
    http::{HeaderValue, StatusCode, header, request::Parts},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use fieldsync_core::{
    Principal,
    engine::{SyncEngine, SyncError},
    protocol::{CONTENT_TYPE, SyncRequest, WireError},
    storage::{Storage as _, StorageError},
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::auth::{AuthError, Authenticator, Claims};
use crate::http::HttpLimits;
use crate::store::SledStorage;

/// Largest request body accepted (a first push of thousands of documents fits).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Largest page of `/v1/quarantine`.
pub const MAX_QUARANTINE_PAGE: usize = 1000;

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
    pub engine: Arc<SyncEngine<SledStorage>>,
    pub auth: Arc<Authenticator>,
    pub clock: Arc<dyn Clock>,
    pub limits: Arc<HttpLimits>,
    /// Slots for planning computations ([`HttpLimits::max_planning_jobs`]).
    pub planning_jobs: Arc<Semaphore>,
}

impl AppState {
    pub fn new(
        engine: Arc<SyncEngine<SledStorage>>,
        auth: Arc<Authenticator>,
        clock: Arc<dyn Clock>,
        limits: HttpLimits,
    ) -> Self {
        let planning_jobs = Arc::new(Semaphore::new(limits.max_planning_jobs.max(1)));
        AppState { engine, auth, clock, limits: Arc::new(limits), planning_jobs }
    }
}

/// The one error type of the HTTP layer: a status and a JSON body
/// `{"error": CODE, "message": TEXT, "request_id": ID}`.
///
/// For 5xx answers `message` is the detail for the log only: the client is told that something
/// went wrong and which request id to quote, never what (storage messages, hashes and paths stay
/// on the server). 4xx messages are for the client, with long hexadecimal runs (hashes) removed.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The document at fault, when there is one (added to the body as `doc_id`).
    pub doc_id: Option<String>,
    /// Seconds for a `Retry-After` header (503s).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), doc_id: None, retry_after: None }
    }

    /// A server error: `detail` goes to the log, the client gets a generic message.
    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    /// 503 `overloaded` with `Retry-After`: the server is at one of its limits.
    pub fn busy(message: impl Into<String>, retry_after_s: u32) -> Self {
        ApiError {
            retry_after: Some(retry_after_s),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
        }
    }

    fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

/// Replaces every run of 16 or more hexadecimal digits (change hashes, heads, keys) with "…".
pub fn scrub_hex(text: &str) -> String {
    const RUN: usize = 16;
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= RUN {
            out.push('…');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = crate::http::current_request_id().unwrap_or_else(crate::http::new_request_id);
        let message = if self.status.is_server_error() {
            if self.status == StatusCode::SERVICE_UNAVAILABLE {
                // A limit reached or a transient conflict: worth a warning, not an alert.
                tracing::warn!(
                    request_id = %request_id, code = self.code, detail = %self.message, doc_id = ?self.doc_id,
                    "request not served now"
                );
                format!("{}; retry shortly (request id {request_id})", self.public_unavailable_reason())
            } else {
                tracing::error!(
                    request_id = %request_id, status = self.status.as_u16(), code = self.code,
                    detail = %self.message, doc_id = ?self.doc_id, "request failed"
                );
                format!("something went wrong on the server; quote request id {request_id} when reporting it")
            }
        } else {
            tracing::debug!(request_id = %request_id, code = self.code, message = %self.message, "request refused");
            scrub_hex(&self.message)
        };
        let code = if self.status == StatusCode::INTERNAL_SERVER_ERROR { "internal" } else { self.code };
        let mut body = json!({ "error": code, "message": message, "request_id": request_id });
        // The document a refusal is about; a server error names nothing (it is in the log).
        if let Some(doc) = self.doc_id.filter(|_| !self.status.is_server_error()) {
            body["doc_id"] = json!(doc);
        }
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        resp
    }
}

impl ApiError {
    /// What a 503 may tell the client: only our own words, never the detail.
    fn public_unavailable_reason(&self) -> &'static str {
        match self.code {
            "overloaded" => "the server is at its limit of concurrent work",
            _ => "the server could not complete this request right now",
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        if e.is_unauthorized() {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
        } else {
            ApiError::internal(format!("authentication: {e}"))
        }
    }
}

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::UnsupportedVersion(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "unsupported_version", e.to_string())
            }
            WireError::TooLarge | WireError::TooMany(_) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            }
            _ => ApiError::new(StatusCode::BAD_REQUEST, "malformed", e.to_string()),
        }
    }
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        let status = match &e {
            SyncError::BadRequest(_) | SyncError::CorruptChange { .. } => StatusCode::BAD_REQUEST,
            SyncError::InvalidDocument { .. } | SyncError::KindMismatch { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            SyncError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            SyncError::Storage(StorageError::Conflict { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            SyncError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let retry_after = (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1);
        let doc_id = match &e {
            SyncError::CorruptChange { doc_id, .. }
            | SyncError::InvalidDocument { doc_id, .. }
            | SyncError::KindMismatch { doc_id, .. } => Some(doc_id.clone()),
            _ => None,
        };
        ApiError { doc_id, retry_after, ..ApiError::new(status, e.code(), e.to_string()) }
    }
}

impl FromRequestParts<AppState> for Claims {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Verified already by the body-memory middleware (requests with a body).
        if let Some(claims) = parts.extensions.get::<crate::http::Verified>() {
            return Ok(claims.0.clone());
        }
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        Ok(state.auth.verify_authorization_header(header)?)
    }
}

/// The HTTP application.
pub fn app(state: AppState) -> Router {
    let limits = state.limits.clone();
    let in_flight = crate::http::InFlight {
        slots: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
        retry_after_s: limits.retry_after_s,
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/sync", post(sync))
        .route("/v1/quarantine", get(quarantine))
        .route("/v1/docs/{id}", get(document))
        .merge(crate::planning::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(middleware::from_fn_with_state(limits.body_read_timeout, crate::http::body_deadline))
        .layer(middleware::from_fn_with_state(
            crate::http::BodyMemory::new(&limits, state.auth.clone()),
            crate::http::limit_body_memory,
        ))
        .layer(middleware::from_fn_with_state(in_flight, crate::http::limit_in_flight))
        .layer(middleware::from_fn(crate::http::request_context))
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Runs blocking engine work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}

/// 408 when reading the body hit its deadline ([`crate::http::HttpLimits::body_read_timeout`]).
pub(crate) fn body_timeout_error(e: &(dyn std::error::Error + 'static)) -> Option<ApiError> {
    crate::http::caused_by_body_timeout(e).then(|| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time; send it again",
        )
    })
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> Self {
        if let Some(timeout) = body_timeout_error(&e) {
            return timeout;
        }
        let status = e.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "too_large" } else { "bad_request" };
        ApiError::new(status, code, e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text())
    }
}

async fn sync(
    State(state): State<AppState>,
    claims: Claims,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let who: Principal = claims.principal();
    let now = state.clock.now_ms();
    let encoded = blocking(move || {
        let req = SyncRequest::decode(&body)?;
        let mut resp = state.engine.handle(&who, &req, now)?;
        // Reasons are for people: no hashes in them (the hashes are in their own field).
        for r in &mut resp.rejected {
            r.reason = scrub_hex(&r.reason);
        }
        tracing::info!(
            team = %who.team, user = %who.user, device = %req.device_id,
            pushed = req.push.len(), accepted = resp.accepted.len(), rejected = resp.rejected.len(),
            pulled_changes = resp.changes.len(), pulled_docs = resp.docs.len(), more = resp.more,
            "sync"
        );
        Ok(resp.encode())
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], encoded).into_response())
}

#[derive(Debug, Deserialize)]
struct QuarantineQuery {
    limit: Option<usize>,
}

async fn quarantine(
    State(state): State<AppState>,
    claims: Claims,
    q: Result<Query<QuarantineQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = q?;
    if !claims.role.sees_whole_team() {
        return Err(ApiError::forbidden("the quarantine is for managers and admins"));
    }
    let limit = q.limit.unwrap_or(200);
    if !(1..=MAX_QUARANTINE_PAGE).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("limit must be within 1..={MAX_QUARANTINE_PAGE}"),
        ));
    }
    let team = claims.team.clone();
    let entries = blocking(move || {
        state.engine.storage().quarantine(&team, limit).map_err(|e| SyncError::from(e).into())
    })
    .await?;
    let items: Vec<serde_json::Value> = entries
        .into_iter()
        .map(|e| {
            json!({
                "doc_id": e.doc_id, "kind": e.kind, "device": e.device, "user": e.user,
                "received_at_ms": e.received_at_ms, "code": e.code, "reason": e.reason,
                "hashes": e.hashes, "changes": e.change_count.max(e.changes.len() as u64),
                "bytes": e.bytes, "digest_only": e.digest_only,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn document(
    State(state): State<AppState>,
    claims: Claims,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Path(id) = id?;
    fieldsync_core::docs::validate_id("id", &id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?;
    let who = claims.principal();
    let found = blocking(move || state.engine.read_doc(&who.team, &id).map_err(ApiError::from)).await?;
    match found {
        Some((doc, meta)) if claims.role.sees_whole_team() || meta.audience.includes(&claims.sub) => {
            Ok(Json(json!({ "kind": meta.kind, "audience": meta.audience, "doc": doc })))
        }
        // Out of scope and absent look the same.
        _ => Err(ApiError::not_found("no such document")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log output captured into memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_500_tells_the_client_a_request_id_and_the_log_the_detail() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber =
            tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        let detail = "storage backend failed: reconcile cust-0139: the data to be reconciled is stale, \
                      expected heads were [d1a3c0ffee0123456789abcdef0123456789abcdef0123456789abcdef012345]";
        let resp = tracing::subscriber::with_default(subscriber, || {
            crate::http::REQUEST_ID.sync_scope("req-under-test".to_string(), || {
                ApiError::from(SyncError::Storage(StorageError::Backend(detail.into()))).into_response()
            })
        });
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("req-under-test"));
        let body = futures_body(resp);
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["error"], "internal");
        assert_eq!(json["request_id"], "req-under-test");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("storage") && !text.contains("d1a3") && !text.contains("cust-0139"), "{text}");
        let logged = String::from_utf8(log.0.lock().expect("log").clone()).expect("utf8");
        assert!(logged.contains("req-under-test") && logged.contains(detail), "{logged}");
    }

    fn futures_body(resp: Response) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(axum::body::to_bytes(resp.into_body(), 1 << 20)).expect("body").to_vec()
    }

    #[test]
    fn hex_runs_are_scrubbed_from_messages_for_people() {
        let automerge = "change d1a3c0ffee0123456789abcdef0123456789abcdef0123456789abcdef012345 is missing \
                         dependencies [ChangeHash(00ff00ff00ff00ff00ff)]";
        assert_eq!(scrub_hex(automerge), "change … is missing dependencies [ChangeHash(…)]");
        // Ordinary words, ids and numbers are kept.
        let ok = "visit v-0001 of customer cust-0139 (deadbeef, 2026) is 15 minutes late";
        assert_eq!(scrub_hex(ok), ok);
        assert_eq!(scrub_hex(""), "");
    }
}
