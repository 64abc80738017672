//! `GET /v1/export/customers?format=csv|xlsx`: a manager or admin downloads the team's customers as
//! a file `fieldsync import` and `POST /v1/import` read back unchanged ([`fieldsync_exchange::export`]);
//! `fieldsync export` writes the same file from a stopped server's data directory.

use axum::{extract::State, http::header, response::IntoResponse};
use fieldsync_core::docs::{Customer, Document};
use fieldsync_exchange::table::Format;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{ApiQuery, Manager};
use crate::state::{AppState, blocking};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExportQuery {
    /// `csv` (default) or `xlsx`.
    format: Option<String>,
}

/// The team's customers in id order, as a file.
pub fn customers_file(docs: Vec<Document>, format: Format) -> Result<Vec<u8>, String> {
    let mut customers: Vec<Customer> =
        docs.into_iter().filter_map(|d| if let Document::Customer(c) = d { Some(c) } else { None }).collect();
    customers.sort_by(|a, b| a.id.cmp(&b.id));
    match format {
        Format::Csv => fieldsync_exchange::export::customers_csv(&customers),
        Format::Xlsx => fieldsync_exchange::export::customers_xlsx(&customers),
    }
}

#[utoipa::path(get, path = "/v1/export/customers", tag = "import", params(ExportQuery), responses((status = 200, description = "the team's customers as CSV or XLSX, with the import's columns", content_type = "text/csv"), crate::routes::openapi::Errors))]
pub async fn customers(
    State(state): State<AppState>,
    Manager(who): Manager,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let format = match q.format.as_deref() {
        None => Format::Csv,
        Some(f) => {
            Format::parse(f).ok_or_else(|| ApiError::invalid_query(format!("format {f:?}: csv or xlsx")))?
        }
    };
    let _slot = state.planning_slot()?;
    let engine = state.engine.clone();
    let team = who.team.clone();
    let bytes = blocking(move || {
        let docs = engine.team_documents(&team)?;
        customers_file(docs, format).map_err(ApiError::internal)
    })
    .await?;
    let disposition = format!("attachment; filename=\"customers.{}\"", format.as_str());
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    ))
}
