//! `/v1/reviews/checkins`: a manager reviews the check-ins the server did not verify. The decision
//! is written by the server into the visit's verification (evidence: the rules let no client write
//! it), reaches the rep's phone with the next sync, and the reports count it.

use axum::{Json, extract::State, http::StatusCode};
use fieldsync_core::docs::{CheckinReview, DocKind, Document, ReviewDecision, validate_id};
use fieldsync_core::engine::ServerWrite;
use fieldsync_core::geo::VerificationStatus;
use fieldsync_core::index::IndexRow;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Manager};
use crate::state::{AppState, blocking};

/// Longest review comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// Largest page of pending reviews.
pub const MAX_PENDING_PAGE: usize = 1000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ReviewRequest {
    visit_id: String,
    checkin_id: String,
    /// `approved` or `rejected`.
    #[schema(value_type = String, example = "approved")]
    decision: ReviewDecision,
    #[serde(default)]
    comment: String,
}

/// `POST /v1/reviews/checkins`: approves or rejects one flagged or invalid check-in, with a comment.
#[utoipa::path(post, path = "/v1/reviews/checkins", tag = "reviews", request_body(content = ReviewRequest, content_type = "application/json"), responses((status = 200, description = "the review as stored in the visit", content_type = "application/json"), crate::routes::openapi::Errors))]
pub async fn review(
    State(state): State<AppState>,
    Manager(who): Manager,
    ApiJson(r): ApiJson<ReviewRequest>,
) -> Result<Json<Value>, ApiError> {
    validate_id("visit_id", &r.visit_id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    validate_id("checkin_id", &r.checkin_id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if r.comment.chars().count() > MAX_COMMENT_CHARS {
        return Err(ApiError::invalid(format!("comment: at most {MAX_COMMENT_CHARS} characters")));
    }
    let now = state.clock.now_ms();
    let review = CheckinReview { decision: r.decision, by: who.user.clone(), comment: r.comment, at_ms: now };
    let (engine, team, visit_id, checkin_id) =
        (state.engine.clone(), who.team.clone(), r.visit_id.clone(), r.checkin_id.clone());
    let written = review.clone();
    blocking(move || -> Result<(), ApiError> {
        let status = match engine.read_doc(&team, &visit_id)? {
            Some((Document::Visit(v), _)) => v.verification.get(&checkin_id).map(|j| j.status),
            _ => return Err(ApiError::not_found("no such visit")),
        };
        match status {
            None => Err(ApiError::not_found(
                "no such check-in on this visit, or the server has not judged it yet",
            )),
            Some(VerificationStatus::Verified) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_flagged",
                "the server verified this check-in: there is nothing to review",
            )),
            Some(_) => {
                let edit = ServerWrite::edit(&visit_id, DocKind::Visit, move |d| {
                    if let Document::Visit(v) = d
                        && let Some(j) = v.verification.get_mut(&checkin_id)
                    {
                        j.review = Some(written.clone());
                    }
                });
                engine.apply_server_writes(&team, &[edit], now)?;
                Ok(())
            }
        }
    })
    .await?;
    state.changed();
    tracing::info!(team = %who.team, manager = %who.user, visit = %r.visit_id, checkin = %r.checkin_id, decision = ?review.decision, "check-in reviewed");
    Ok(Json(json!({ "visit_id": r.visit_id, "checkin_id": r.checkin_id, "review": review })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PendingQuery {
    limit: Option<usize>,
}

/// `GET /v1/reviews/checkins`: the check-ins still to review (not verified, no decision yet),
/// oldest first, from the report index.
#[utoipa::path(get, path = "/v1/reviews/checkins", tag = "reviews", params(PendingQuery), responses((status = 200, description = "check-ins awaiting review, oldest first", content_type = "application/json"), crate::routes::openapi::Errors))]
pub async fn pending(
    State(state): State<AppState>,
    Manager(who): Manager,
    ApiQuery(q): ApiQuery<PendingQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = super::page_limit(q.limit, MAX_PENDING_PAGE)?;
    let cached = state.clone();
    let (_, index) = blocking(move || cached.team_index(&who.team)).await?;
    let rows = &index.rows;
    let mut pending: Vec<(i64, Value)> = rows
        .iter()
        .filter_map(|r| if let IndexRow::Visit(v) = r { Some(v) } else { None })
        .flat_map(|v| {
            v.verdicts.iter().filter(|j| j.status != VerificationStatus::Verified && j.review.is_none()).map(move |j| {
                (
                    j.device_time_ms,
                    json!({
                        "visit_id": v.id, "checkin_id": j.checkin_id, "rep": v.rep, "customer_id": v.customer_id,
                        "device_time_ms": j.device_time_ms, "status": j.status, "codes": j.codes,
                    }),
                )
            })
        })
        .collect();
    pending.sort_by_key(|p| p.0);
    let total = pending.len();
    let items: Vec<Value> = pending.into_iter().take(limit).map(|(_, v)| v).collect();
    Ok(Json(json!({ "total": total, "items": items })))
}
