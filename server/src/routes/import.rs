//! `POST /v1/import`: a manager or admin imports customers from an XLSX, ODS or CSV body into their
//! team — the same code as `fieldsync import` ([`crate::import`]). `?dry_run=true` only reports;
//! `?format=xlsx|ods|csv` overrides what the body looks like. A file with a refused row writes nothing
//! and answers 422 `rows_refused` with the report, which lists every refused row.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use fieldsync_exchange::table::{Format, Limits};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::{ApiBytes, ApiQuery, Manager};
use crate::import::{ImportError, ImportRequest, import_customers};
use crate::state::{AppState, blocking};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ImportQuery {
    /// Report what would change, writing nothing.
    #[serde(default)]
    dry_run: bool,
    /// `xlsx` or `csv` (default: a ZIP body is a workbook, anything else CSV).
    format: Option<String>,
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::File(e) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_file", e.to_string())
            }
            ImportError::Header(e) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_file", e.to_string())
            }
            ImportError::Sync(e) => e.into(),
        }
    }
}

#[utoipa::path(post, path = "/v1/import", tag = "import", params(ImportQuery), request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the XLSX, ODS or CSV file"), responses((status = 200, description = "the report: rows, created, updated, unchanged, refused (empty), ignored_columns, written", content_type = "application/json"), (status = 422, description = "rows_refused with the report (nothing written), or invalid_file"), crate::routes::openapi::Errors))]
pub async fn import(
    State(state): State<AppState>,
    Manager(who): Manager,
    ApiQuery(q): ApiQuery<ImportQuery>,
    ApiBytes(body): ApiBytes,
) -> Result<axum::response::Response, ApiError> {
    let format = match q.format.as_deref() {
        None => None,
        Some(f) => Some(
            Format::parse(f)
                .ok_or_else(|| ApiError::invalid_query(format!("format {f:?}: xlsx, ods or csv")))?,
        ),
    };
    let _slot = state.planning_slot()?;
    let (engine, now_ms) = (state.engine.clone(), state.clock.now_ms());
    let report = blocking(move || {
        let req = ImportRequest {
            team: &who.team,
            bytes: &body,
            format,
            dry_run: q.dry_run,
            by: &who.user,
            now_ms,
            limits: Limits::default(),
        };
        import_customers(&engine, &req, &mut |_, _| {})
    })
    .await?;
    if report.written {
        state.changed();
    }
    if !report.refused.is_empty() {
        let message = format!("{} rows refused: nothing was written", report.refused.len());
        let request_id =
            crate::request_id::current_request_id().unwrap_or_else(crate::request_id::new_request_id);
        let body = json!({ "error": "rows_refused", "message": message, "request_id": request_id, "report": report });
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response());
    }
    Ok(Json(json!(report)).into_response())
}
