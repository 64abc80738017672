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

use crate::auth::{AuthError, Authenticator, Claims};
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
}

/// The one error type of the HTTP layer: a status and a JSON body `{"error": CODE, "message": TEXT}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The document at fault, when there is one (added to the body as `doc_id`).
    pub doc_id: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), doc_id: None }
    }

    fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        } else {
            tracing::debug!(code = self.code, message = %self.message, "request refused");
        }
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some(doc) = self.doc_id {
            body["doc_id"] = json!(doc);
        }
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        if e.is_unauthorized() {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
        } else {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "auth_config", e.to_string())
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
            SyncError::UnknownDocument { .. } => StatusCode::NOT_FOUND,
            SyncError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            SyncError::Storage(StorageError::Conflict { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            SyncError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let doc_id = match &e {
            SyncError::CorruptChange { doc_id, .. }
            | SyncError::InvalidDocument { doc_id, .. }
            | SyncError::KindMismatch { doc_id, .. }
            | SyncError::UnknownDocument { doc_id } => Some(doc_id.clone()),
            _ => None,
        };
        ApiError { doc_id, ..ApiError::new(status, e.code(), e.to_string()) }
    }
}

impl FromRequestParts<AppState> for Claims {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        Ok(state.auth.verify_authorization_header(header)?)
    }
}

/// The HTTP application.
pub fn app(state: AppState) -> Router {
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
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Runs blocking engine work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("worker failed: {e}"))
    })?
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> Self {
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
        let resp = state.engine.handle(&who, &req, now)?;
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
                "hashes": e.hashes, "changes": e.changes.len(),
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
