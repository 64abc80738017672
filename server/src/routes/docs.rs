//! Reading the team's data as JSON: one document (`GET /v1/docs/{id}`, within the caller's scope)
//! and the quarantine of rejected edits (`GET /v1/quarantine`, managers and admins).

use axum::{Json, extract::State};
use fieldsync_core::docs::Audience;
use fieldsync_core::storage::Storage as _;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Caller, Manager};
use crate::state::{AppState, blocking};

/// Largest page of `/v1/quarantine`.
pub const MAX_QUARANTINE_PAGE: usize = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuarantineQuery {
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/quarantine", tag = "documents", params(QuarantineQuery), responses((status = 200, description = "refused edits, newest first", content_type = "application/json"), crate::routes::openapi::Errors))]
pub async fn quarantine(
    State(state): State<AppState>,
    Manager(who): Manager,
    ApiQuery(q): ApiQuery<QuarantineQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = super::page_limit(q.limit, MAX_QUARANTINE_PAGE)?;
    let entries = blocking(move || state.engine.storage().quarantine(&who.team, limit)).await?;
    let items: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            json!({
                "doc_id": e.doc_id, "kind": e.kind, "device": e.device, "user": e.user,
                "received_at_ms": e.received_at_ms, "code": e.code, "reason": e.reason,
                "hashes": e.hashes, "changes": e.change_count.max(e.changes.len() as u64),
                "bytes": e.bytes, "digest_only": e.digest_only,
                // What the author tried to write, as the document would have read.
                "attempted": e.attempted.as_deref().and_then(|a| serde_json::from_str::<Value>(a).ok()),
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// Who reads a document besides managers and admins, in snake_case like every code:
/// `{"scope": "team"}` or `{"scope": "reps", "reps": [...]}`.
fn audience_json(audience: &Audience) -> Value {
    match audience {
        Audience::Team => json!({ "scope": "team" }),
        Audience::Users(reps) => json!({ "scope": "reps", "reps": reps }),
    }
}

#[utoipa::path(get, path = "/v1/docs/{id}", tag = "documents", params(("id" = String, Path, description = "document id")), responses((status = 200, description = "{kind, audience, doc}", content_type = "application/json"), crate::routes::openapi::Errors))]
pub async fn document(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    fieldsync_core::docs::validate_id("id", &id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let team = who.team.clone();
    let found = blocking(move || state.engine.read_doc(&team, &id)).await?;
    match found {
        Some((doc, meta)) if who.role.sees_whole_team() || meta.audience.includes(&who.user) => {
            Ok(Json(json!({ "kind": meta.kind, "audience": audience_json(&meta.audience), "doc": doc })))
        }
        // Out of scope and absent look the same.
        _ => Err(ApiError::not_found("no such document")),
    }
}
