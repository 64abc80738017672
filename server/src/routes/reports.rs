//! `/v1/reports/…`: the manager's review of plan against execution, computed from the report
//! index the engine keeps in the same batch as every write (`fieldsync_core::index`) — a report
//! never hydrates the team's documents. A rep reads their own figures; managers and admins the
//! team's or one rep's. Windows are `[from_ms, to_ms)`, the last 28 days by default, at most 366.

use axum::{Json, extract::State};
use fieldsync_core::Principal;
use fieldsync_planning::allocation::AllocationConfig;
use fieldsync_planning::check_window;
use fieldsync_planning::reports::{
    ReportWindow, calendar as calendar_of, customer_report, effort_report, knows_rep, visit_report,
};
use serde::Deserialize;
use serde_json::Value;

use super::to_json;
use crate::error::ApiError;
use crate::extract::{ApiQuery, Caller, rep_scope};
use crate::state::{AppState, blocking};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    rep: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

/// The window and rep a report is for, checked before anything is read: a rep only their own.
fn window(state: &AppState, who: &Principal, q: ReportQuery) -> Result<ReportWindow, ApiError> {
    let rep = rep_scope(who, q.rep)?;
    if let Some(r) = &rep {
        fieldsync_core::docs::validate_id("rep", r).map_err(ApiError::invalid_query)?;
    }
    let to_ms = q.to_ms.unwrap_or_else(|| state.clock.now_ms());
    let from_ms = q.from_ms.unwrap_or(to_ms.saturating_sub(28 * 86_400_000));
    check_window(from_ms, to_ms).map_err(ApiError::invalid_query)?;
    Ok(ReportWindow { from_ms, to_ms, rep })
}

/// 404 `unknown_rep` for a rep the index has never seen (the caller themself is always known).
fn check_rep(
    rows: &[fieldsync_core::index::IndexRow],
    who: &Principal,
    window: &ReportWindow,
) -> Result<(), ApiError> {
    match &window.rep {
        Some(r) if r != &who.user && !knows_rep(rows, r) => Err(ApiError::unknown_rep(r)),
        _ => Ok(()),
    }
}

/// `GET /v1/reports/visits`: planned against completed and missed visits, the completion rate,
/// check-in verification (rate, flagged list with reasons), per rep.
#[utoipa::path(get, path = "/v1/reports/visits", tag = "reports", params(ReportQuery), responses((status = 200, description = "planned, completed and missed visits and check-in verification, per rep", content_type = "application/json"), crate::routes::openapi::Errors))]
pub async fn visits(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    let window = window(&state, &who, q)?;
    let now = state.clock.now_ms();
    let (cached, team) = (state.clone(), who.team.clone());
    let (_, index) = blocking(move || cached.team_index(&team)).await?;
    check_rep(&index.rows, &who, &window)?;
    to_json(&visit_report(&index.rows, &window, now))
}

/// What the customer and effort reports read: the rows, the stage changes, the current plan.
struct Loaded {
    index: std::sync::Arc<crate::state::TeamIndex>,
    plan: fieldsync_core::docs::Plan,
}

async fn load(state: &AppState, who: &Principal, window: &ReportWindow) -> Result<Loaded, ApiError> {
    let (cached, team) = (state.clone(), who.team.clone());
    let (_, index) = blocking(move || cached.team_index(&team)).await?;
    check_rep(&index.rows, who, window)?;
    let plan = index.plan.clone().ok_or_else(ApiError::no_plan)?;
    Ok(Loaded { index, plan })
}

/// `GET /v1/reports/customers`: new customers, tiers, coverage of A customers within their
/// cadence, the pipeline funnel and the opportunities won, by tier.
#[utoipa::path(get, path = "/v1/reports/customers", tag = "reports", params(ReportQuery), responses((status = 200, description = "new customers, tiers, A coverage, the funnel", content_type = "application/json"), crate::routes::openapi::Errors))]
pub async fn customers(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    let window = window(&state, &who, q)?;
    let Loaded { index, plan } = load(&state, &who, &window).await?;
    to_json(&customer_report(&index.rows, &index.changes, &plan, &window))
}

/// `GET /v1/reports/effort`: visit time per tier against the 80/20 focus, remote contacts of far C
/// customers, return on visit time (won value per visit hour, win rate, average deal) per tier and
/// per territory, and quota attainment per tier and rep.
#[utoipa::path(get, path = "/v1/reports/effort", tag = "reports", params(ReportQuery), responses((status = 200, description = "time per tier against 80/20, return on visit time, attainment", content_type = "application/json"), crate::routes::openapi::Errors))]
pub async fn effort(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    let window = window(&state, &who, q)?;
    let Loaded { index, plan } = load(&state, &who, &window).await?;
    to_json(&effort_report(&index.rows, &index.changes, &plan, &AllocationConfig::default(), &window))
}

/// Longest window of `GET /v1/reports/calendar`: a month and a half, a week with margin around it.
pub const MAX_CALENDAR_DAYS: i64 = 42;

/// Most visits `GET /v1/reports/calendar` lists (`truncated` says when more were in the window).
pub const MAX_CALENDAR_ENTRIES: usize = 5_000;

/// `GET /v1/reports/calendar`: the visits planned to start in the window (a week by default), by
/// rep then time, each as planned, checked in, done, remote, missed or cancelled.
#[utoipa::path(get, path = "/v1/reports/calendar", tag = "reports", params(ReportQuery), responses((status = 200, description = "the visits of the window with their status", content_type = "application/json"), crate::routes::openapi::Errors))]
pub async fn calendar(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(mut q): ApiQuery<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    if q.from_ms.is_none() {
        let to = q.to_ms.unwrap_or_else(|| state.clock.now_ms());
        q.from_ms = Some(to.saturating_sub(7 * 86_400_000));
    }
    let window = window(&state, &who, q)?;
    if window.to_ms - window.from_ms > MAX_CALENDAR_DAYS * 86_400_000 {
        return Err(ApiError::invalid_query(format!("a calendar covers at most {MAX_CALENDAR_DAYS} days")));
    }
    let now = state.clock.now_ms();
    let (cached, team) = (state.clone(), who.team.clone());
    let (_, index) = blocking(move || cached.team_index(&team)).await?;
    check_rep(&index.rows, &who, &window)?;
    to_json(&calendar_of(&index.rows, index.plan.as_ref(), &window, now, MAX_CALENDAR_ENTRIES))
}
