//! `POST /v1/leads`: a lead from another system becomes a prospect customer of the token's team,
//! or merges into the customer it duplicates ([`fieldsync_exchange::lead`] decides; this file
//! performs). Only an integration's token (or an admin's) posts leads, at most
//! [`HttpLimits::leads_per_minute`](crate::http::HttpLimits) each, in bursts of
//! [`HttpLimits::lead_burst`](crate::http::HttpLimits).
//!
//! Leads of one team are taken one at a time (the duplicate check and the write under one
//! lock), so the same lead sent twice at once is still one customer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::{Json, extract::State, http::StatusCode};
use fieldsync_core::docs::{DocKind, Document};
use fieldsync_core::engine::ServerWrite;
use fieldsync_core::index::IndexRow;
use fieldsync_core::storage::Storage as _;
use fieldsync_exchange::lead::{self, CheckedLead, Lead};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{ApiJson, LeadSource};
use crate::state::{AppState, blocking};

/// Integration users whose buckets are kept; past it, full buckets are forgotten (a forgotten
/// bucket is a full one, so nothing is lost by it).
const MAX_BUCKETS: usize = 10_000;

/// A token bucket: `tokens` left at `at_ms`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

/// The lead intake's shared state: each sender's rate, each team's lock.
#[derive(Debug, Default)]
pub struct LeadIntake {
    buckets: Mutex<HashMap<(String, String), Bucket>>,
    teams: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl LeadIntake {
    /// Takes one lead's token from `team`/`user`'s bucket at `now_ms`, or says how many seconds
    /// until one is there.
    pub fn admit(&self, team: &str, user: &str, now_ms: i64, per_minute: u32, burst: u32) -> Result<(), u32> {
        let rate = f64::from(per_minute.max(1)) / 60_000.0;
        let capacity = f64::from(burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, b| b.tokens + (now_ms - b.at_ms).max(0) as f64 * rate < capacity);
        }
        let b = buckets
            .entry((team.to_string(), user.to_string()))
            .or_insert(Bucket { tokens: capacity, at_ms: now_ms });
        // A clock that went back refills nothing.
        b.tokens = (b.tokens + (now_ms - b.at_ms).max(0) as f64 * rate).min(capacity);
        b.at_ms = b.at_ms.max(now_ms);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - b.tokens) / rate) / 1000.0).ceil().max(1.0) as u32)
        }
    }

    fn team_lock(&self, team: &str) -> Arc<Mutex<()>> {
        let mut teams = self.teams.lock().unwrap_or_else(|p| p.into_inner());
        teams.entry(team.to_string()).or_default().clone()
    }
}

/// Decides and writes one checked lead under its team's lock: (status, answer).
fn take(
    state: &AppState,
    team: &str,
    by: &str,
    checked: CheckedLead,
    now_ms: i64,
) -> Result<(StatusCode, Value), ApiError> {
    let lock = state.leads.team_lock(team);
    let _one_at_a_time = lock.lock().unwrap_or_else(|p| p.into_inner());
    let (_, index) = state.team_index(team)?;
    let rows = index.rows.iter().filter_map(|r| match r {
        IndexRow::Customer(c) => Some(c),
        IndexRow::Visit(_) => None,
    });
    if let Some(id) = lead::find_duplicate(&checked, rows)
        && let Some((Document::Customer(mut stored), _)) = state.engine.read_doc(team, &id)?
    {
        let filled = lead::fill(&mut stored, &checked);
        if !filled.is_empty() {
            let fill = checked.clone();
            let write = ServerWrite::edit(&id, DocKind::Customer, move |d| {
                if let Document::Customer(c) = d {
                    lead::fill(c, &fill);
                }
            });
            state.engine.apply_server_writes(team, &[write], now_ms)?;
        }
        tracing::info!(team, customer = %id, by, filled = ?filled, "lead merged");
        let answer = json!({
            "outcome": "merged", "customer_id": id, "filled": filled,
            "owner_rep": stored.owner_rep, "territory": stored.territory,
        });
        return Ok((StatusCode::OK, answer));
    }
    if state.engine.storage().doc_meta(team, &checked.id)?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "id_taken",
            "external_id names a document of the team that is not a customer",
        ));
    }
    let customer = lead::prospect(&checked, &state.territories(team, None)?, by);
    let answer = json!({
        "outcome": "created", "customer_id": customer.id, "filled": [],
        "owner_rep": customer.owner_rep, "territory": customer.territory,
    });
    tracing::info!(team, customer = %customer.id, by, owner = ?customer.owner_rep, "lead created");
    state.engine.apply_server_writes(team, &[ServerWrite::Put(Document::Customer(customer))], now_ms)?;
    Ok((StatusCode::CREATED, answer))
}

#[utoipa::path(post, path = "/v1/leads", tag = "leads", request_body(content = Lead, content_type = "application/json"),
    responses(
        (status = 201, description = "a new prospect: {outcome: created, customer_id, owner_rep, territory, filled: []}", content_type = "application/json"),
        (status = 200, description = "a duplicate (same external id or phone) merged: {outcome: merged, customer_id, filled: the fields it brought}", content_type = "application/json"),
        (status = 409, description = "id_taken: external_id names a document that is not a customer"),
        crate::routes::openapi::Errors))]
pub async fn post_lead(
    State(state): State<AppState>,
    LeadSource(who): LeadSource,
    ApiJson(body): ApiJson<Lead>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let checked = lead::check(&body).map_err(ApiError::invalid)?;
    let now = state.clock.now_ms();
    let st = state.clone();
    let (status, answer) = blocking(move || take(&st, &who.team, &who.user, checked, now)).await?;
    state.changed();
    Ok((status, Json(answer)))
}
