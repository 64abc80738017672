//! The HTTP application: every route, and the layers every request passes through.
//!
//! A handler takes its caller ([`Caller`](crate::extract::Caller) or
//! [`Manager`](crate::extract::Manager)) and its inputs through the extractors of
//! [`crate::extract`], runs blocking work through [`crate::state::blocking`], and answers JSON or
//! an [`ApiError`]. Routes depend on the state, the extractors and the errors, never the other way.
//!
//! | route | file |
//! |---|---|
//! | `POST /v1/sync` | [`sync`] |
//! | `GET /v1/docs/{id}`, `GET /v1/quarantine` | [`docs`] |
//! | `/v1/plan/…` | [`plan`] |
//! | `GET /v1/reports/visits`, `/v1/reports/customers`, `/v1/reports/effort` | [`reports`] |
//! | `GET`, `POST /v1/reviews/checkins` | [`reviews`] |
//! | `GET /v1/map/customers`, `/v1/map/territories`, `/v1/map/day` | [`map`] |
//! | `GET /v1/live` (Server-Sent Events) | [`live`] |

pub mod docs;
pub mod live;
pub mod map;
pub mod plan;
pub mod reports;
pub mod reviews;
pub mod sync;

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    middleware,
    routing::{get, post},
};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::http::{self, MAX_JSON_BODY_BYTES, MAX_SYNC_BODY_BYTES};
use crate::state::AppState;

/// The HTTP application over `state`.
pub fn app(state: AppState) -> Router {
    let limits = state.limits.clone();
    let in_flight = http::InFlight {
        slots: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
        retry_after_s: limits.retry_after_s,
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/sync", post(sync::sync).layer(DefaultBodyLimit::max(MAX_SYNC_BODY_BYTES)))
        .route("/v1/quarantine", get(docs::quarantine))
        .route("/v1/docs/{id}", get(docs::document))
        .route("/v1/reports/visits", get(reports::visits))
        .route("/v1/reports/customers", get(reports::customers))
        .route("/v1/reports/effort", get(reports::effort))
        .route("/v1/reviews/checkins", get(reviews::pending).post(reviews::review))
        .route("/v1/map/customers", get(map::customers))
        .route("/v1/map/territories", get(map::territories))
        .route("/v1/map/day", get(map::day))
        .route("/v1/live", get(live::live))
        .merge(plan::routes().layer(DefaultBodyLimit::max(MAX_JSON_BODY_BYTES)))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(middleware::from_fn_with_state(limits.body_read_timeout, http::body_deadline))
        .layer(middleware::from_fn_with_state(
            http::BodyMemory::new(&limits, state.auth.clone()),
            http::limit_body_memory,
        ))
        .layer(middleware::from_fn_with_state(in_flight, http::limit_in_flight))
        .layer(middleware::from_fn(crate::request_id::request_context))
        .with_state(state)
}

/// A report or plan as JSON, its figures rounded as on every surface ([`fieldsync_core::figures`]).
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<Json<serde_json::Value>, ApiError> {
    fieldsync_core::figures::to_json(v).map(Json).map_err(|e| ApiError::internal(e.to_string()))
}

/// A page size from `?limit=`: 200 unless given, within `1..=max`.
pub(crate) fn page_limit(limit: Option<usize>, max: usize) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(200);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid_query(format!("limit must be within 1..={max}")))
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}
