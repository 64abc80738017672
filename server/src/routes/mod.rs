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
//! | `GET /v1/reports/visits`, `/v1/reports/customers`, `/v1/reports/effort`, `/v1/reports/calendar` | [`reports`] |
//! | `GET`, `POST /v1/reviews/checkins` | [`reviews`] |
//! | `GET /v1/map/customers`, `/v1/map/territories`, `/v1/map/day` | [`map`] |
//! | `GET /v1/live` (Server-Sent Events) | [`live`] |
//! | `GET /openapi.json` | [`openapi`] |
//! | `GET /metrics` | [`crate::metrics`] |
//! | `POST /v1/devices/revoke` | [`devices`] |
//! | `POST /v1/import` | [`import`] |
//! | `POST /v1/leads` | [`leads`] |
//! | `GET /v1/export/customers`, `GET /v1/export/visits` | [`export`] |
//! | `GET /`, `/assets/{name}`, `/v1/dashboard/config`, `POST /v1/dev/sign-in`, `GET /v1/me` | [`dashboard`] |

pub mod dashboard;
pub mod devices;
pub mod docs;
pub mod export;
pub mod import;
pub mod leads;
pub mod live;
pub mod map;
pub mod openapi;
pub mod plan;
pub mod reports;
pub mod reviews;
pub mod sync;

use std::sync::Arc;

use axum::{Json, Router, extract::DefaultBodyLimit, http::StatusCode, middleware};
use serde_json::json;
use tokio::sync::Semaphore;
use tower_http::compression::CompressionLayer;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt as _};
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::http::{self, MAX_IMPORT_BODY_BYTES, MAX_JSON_BODY_BYTES, MAX_SYNC_BODY_BYTES};
use crate::state::AppState;

/// Every route, each registered with its OpenAPI description ([`openapi`]): the router and the
/// description come from the same list.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(crate::metrics::metrics))
        // The bundle is text: gzip takes app.js from about 340 KB to about 110 KB.
        .routes(routes!(dashboard::page).layer(CompressionLayer::new()))
        .routes(routes!(dashboard::asset).layer(CompressionLayer::new()))
        .routes(routes!(dashboard::config))
        .routes(routes!(dashboard::demo_sign_in))
        .routes(routes!(dashboard::me))
        .routes(routes!(sync::sync).layer(DefaultBodyLimit::max(MAX_SYNC_BODY_BYTES)))
        .routes(routes!(docs::quarantine))
        .routes(routes!(docs::document))
        .routes(routes!(reports::visits))
        .routes(routes!(reports::customers))
        .routes(routes!(reports::effort))
        .routes(routes!(reports::calendar))
        .routes(routes!(reviews::pending, reviews::review))
        .routes(routes!(map::customers))
        .routes(routes!(map::territories))
        .routes(routes!(map::day))
        .routes(routes!(live::live))
        .routes(routes!(devices::revoke))
        .routes(routes!(export::customers))
        .routes(routes!(export::visits))
        .routes(routes!(leads::post_lead).layer(DefaultBodyLimit::max(MAX_JSON_BODY_BYTES)))
        .routes(routes!(import::import).layer(DefaultBodyLimit::max(MAX_IMPORT_BODY_BYTES)))
        .merge(plan::routes().layer(DefaultBodyLimit::max(MAX_JSON_BODY_BYTES)))
}

/// The HTTP application over `state`.
pub fn app(state: AppState) -> Router {
    let limits = state.limits.clone();
    let in_flight = http::InFlight {
        slots: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
        retry_after_s: limits.retry_after_s,
    };
    let (routes, _) = api_router().split_for_parts();
    routes
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
        // Outermost: the refusals of the limits above are counted too.
        .layer(middleware::from_fn(crate::metrics::track_requests))
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

#[utoipa::path(get, path = "/healthz", tag = "meta", security(()), responses((status = 200, description = "the process is alive", content_type = "application/json")))]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}
