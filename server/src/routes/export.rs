//! `GET /v1/export/customers?format=csv|xlsx|geojson` and `GET /v1/export/visits?format=&from_ms=&to_ms=`:
//! a manager or admin downloads the team's customers (as a file `fieldsync import` and
//! `POST /v1/import` read back unchanged) or its visits, or either as GeoJSON
//! ([`fieldsync_exchange::export`]); `fieldsync export` writes the same files from a stopped
//! server's data directory ([`team_file`], the one place both call).

use axum::{extract::State, http::header, response::IntoResponse};
use fieldsync_core::docs::Document;
use fieldsync_core::engine::SyncEngine;
use fieldsync_core::storage::Storage;
use fieldsync_exchange::export::{ExportFormat, What};
use fieldsync_exchange::table::Format;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{ApiQuery, Manager};
use crate::state::{AppState, blocking};

/// A visits export's window when none is given: the last 90 days.
const DEFAULT_VISIT_DAYS: i64 = 90;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExportQuery {
    /// `csv` (default), `xlsx` or `geojson`.
    format: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct VisitExportQuery {
    /// `csv` (default), `xlsx` or `geojson`.
    format: Option<String>,
    /// Visits planned to start in `[from_ms, to_ms)`: the last 90 days by default, at most 366.
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

/// `format=`, checked.
pub fn parse_format(format: Option<&str>) -> Result<ExportFormat, String> {
    match format {
        None => Ok(ExportFormat::File(Format::Csv)),
        Some(f) => ExportFormat::parse(f).ok_or_else(|| format!("format {f:?}: csv, xlsx or geojson")),
    }
}

/// The window of a visits export: `[from_ms, to_ms)`, `to_ms` now and `from_ms` 90 days before it
/// unless given, at most 366 days.
pub fn visit_window(from_ms: Option<i64>, to_ms: Option<i64>, now_ms: i64) -> Result<(i64, i64), String> {
    let to = to_ms.unwrap_or(now_ms);
    let from = from_ms.unwrap_or(to.saturating_sub(DEFAULT_VISIT_DAYS * 86_400_000));
    fieldsync_planning::check_window(from, to).map_err(|e| e.to_string())?;
    Ok((from, to))
}

/// The export of a team's `what` (visits: those planned to start in `window`), as bytes.
pub fn team_file<S: Storage>(
    engine: &SyncEngine<S>,
    team: &str,
    what: What,
    format: ExportFormat,
    window: Option<(i64, i64)>,
) -> Result<Vec<u8>, ApiError> {
    let mut docs = engine.team_documents(team)?;
    if let Some((from, to)) = window {
        docs.retain(|d| match d {
            Document::Visit(v) => (from..to).contains(&v.planned_start_ms),
            _ => true,
        });
    }
    fieldsync_exchange::export::file(what, format, docs).map_err(ApiError::internal)
}

async fn download(
    state: AppState,
    team: String,
    what: What,
    format: ExportFormat,
    window: Option<(i64, i64)>,
) -> Result<impl IntoResponse, ApiError> {
    let _slot = state.planning_slot()?;
    let engine = state.engine.clone();
    let bytes = blocking(move || team_file(&engine, &team, what, format, window)).await?;
    let disposition = format!("attachment; filename=\"{}.{}\"", what.as_str(), format.as_str());
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    ))
}

#[utoipa::path(get, path = "/v1/export/customers", tag = "import", params(ExportQuery), responses((status = 200, description = "the team's customers as CSV or XLSX with the import's columns, or GeoJSON points", content_type = "text/csv"), crate::routes::openapi::Errors))]
pub async fn customers(
    State(state): State<AppState>,
    Manager(who): Manager,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let format = parse_format(q.format.as_deref()).map_err(ApiError::invalid_query)?;
    download(state, who.team, What::Customers, format, None).await
}

#[utoipa::path(get, path = "/v1/export/visits", tag = "import", params(VisitExportQuery), responses((status = 200, description = "the team's visits in the window as CSV or XLSX (one row each: plan, first check-in and its verdict, check-out; times in UTC), or GeoJSON points where the rep checked in", content_type = "text/csv"), crate::routes::openapi::Errors))]
pub async fn visits(
    State(state): State<AppState>,
    Manager(who): Manager,
    ApiQuery(q): ApiQuery<VisitExportQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let format = parse_format(q.format.as_deref()).map_err(ApiError::invalid_query)?;
    let window = visit_window(q.from_ms, q.to_ms, state.clock.now_ms()).map_err(ApiError::invalid_query)?;
    download(state, who.team, What::Visits, format, Some(window)).await
}
