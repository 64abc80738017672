//! `/v1/reports/…`: the manager's review of plan against execution, computed from the report
//! index the engine keeps in the same batch as every write (`fieldsync_core::index`) — a report
//! never hydrates the team's documents. A rep reads their own figures; managers and admins the
//! team's or one rep's. Windows are `[from_ms, to_ms)`, the last 28 days by default, at most 366.

use axum::{Json, extract::State};
use fieldsync_core::Principal;
use fieldsync_planning::allocation::AllocationConfig;
use fieldsync_planning::check_window;
use fieldsync_planning::reports::{ReportWindow, customer_report, effort_report, knows_rep, visit_report};
use serde::Deserialize;
use serde_json::Value;

use super::to_json;
use crate::error::ApiError;
use crate::extract::{ApiQuery, Caller, rep_scope};
use crate::state::{AppState, blocking};

#[derive(Debug, Deserialize)]
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
pub async fn effort(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Json<Value>, ApiError> {
    let window = window(&state, &who, q)?;
    let Loaded { index, plan } = load(&state, &who, &window).await?;
    to_json(&effort_report(&index.rows, &index.changes, &plan, &AllocationConfig::default(), &window))
}
