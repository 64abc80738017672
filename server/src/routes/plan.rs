//! `/v1/plan/…`: S.T.A.R. planning over HTTP. `fieldsync-planning`'s pure functions, fed with the
//! team's documents and checked against the caller's role: reps see and plan their own, managers
//! the whole team. Bounds are checked before any document is loaded; computations run on a
//! blocking thread holding a planning slot, under a [`Deadline`] read on the server's monotonic
//! clock ([`deadline_clock`]).

use axum::{Json, extract::State};
use fieldsync_core::docs::{Customer, DocKind, Document, Plan, Territory, Visit};
use fieldsync_core::engine::ServerWrite;
use fieldsync_core::geo::LatLon;
use fieldsync_core::{Principal, Role};
use fieldsync_planning::Deadline;
use fieldsync_planning::agenda::{
    RepDayInput, TeamWeekInput, TeamWeekRep, plan_rep_day_until, plan_team_week_until,
};
use fieldsync_planning::allocation::{AllocationConfig, overdue, time_share};
use fieldsync_planning::areas::{
    AreaConfig, RepBase, TerritoryConfig, TerritoryDesign, apply_design, design_territories, sub_areas,
    to_territory,
};
use fieldsync_planning::route::LocalDate;
use fieldsync_planning::segmentation::{pareto_for_plan, segment};
use fieldsync_planning::targeting::targets;
use fieldsync_planning::{
    MAX_AREAS, MAX_REPS, TravelModel, check_id_len, check_instant, check_minute_of_day, check_window,
};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::to_json;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Caller, Manager, rep_scope};
use crate::state::{AppState, blocking};

/// The documents a report or a plan is computed from.
#[derive(Debug, Default)]
pub struct TeamDocs {
    pub customers: Vec<Customer>,
    pub visits: Vec<Visit>,
    pub territories: Vec<Territory>,
    pub plans: Vec<Plan>,
}

impl TeamDocs {
    /// The current plan: the latest quarter.
    fn plan(&self) -> Result<&Plan, ApiError> {
        self.plans.iter().max_by(|a, b| a.quarter.cmp(&b.quarter)).ok_or_else(ApiError::no_plan)
    }

    /// 404 `unknown_rep` unless `rep` is the caller or works in the team (a territory's rep, a
    /// customer's owner or a visit's rep): a misspelt name must not answer an empty plan as if the
    /// rep had nothing to do.
    fn check_rep(&self, who: &Principal, rep: &str) -> Result<(), ApiError> {
        let known = rep == who.user
            || self.territories.iter().any(|t| t.reps.iter().any(|r| r == rep))
            || self.customers.iter().any(|c| c.owner_rep.as_deref() == Some(rep))
            || self.visits.iter().any(|v| v.rep == rep);
        if known { Ok(()) } else { Err(ApiError::unknown_rep(rep)) }
    }
}

async fn team_docs(state: &AppState, team: &str) -> Result<TeamDocs, ApiError> {
    let engine = state.engine.clone();
    let team = team.to_string();
    blocking(move || -> Result<TeamDocs, ApiError> {
        let mut docs = TeamDocs::default();
        for d in engine.team_documents(&team)? {
            match d {
                Document::Customer(c) => docs.customers.push(c),
                Document::Visit(v) => docs.visits.push(v),
                Document::Territory(t) => docs.territories.push(t),
                Document::Plan(p) => docs.plans.push(p),
            }
        }
        Ok(docs)
    })
    .await
}

/// Runs a planning computation on a blocking thread, holding its job slot until it is done.
async fn compute<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    slot: tokio::sync::OwnedSemaphorePermit,
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    blocking(move || {
        let _slot = slot;
        f()
    })
    .await
}

/// The rep a plan is for: a rep's own, or the one a manager must name.
fn subject(who: &Principal, rep: Option<String>) -> Result<String, ApiError> {
    rep_scope(who, rep)?.ok_or_else(|| ApiError::bad_request("say which rep (\"rep\")"))
}

/// The monotonic clock a search's [`Deadline`] is read on: time since this call.
fn deadline_clock() -> impl Fn() -> std::time::Duration {
    let origin = std::time::Instant::now();
    move || origin.elapsed()
}

/// One of planning's `*_until` functions: the team's customers, visits and plan, an input, a deadline.
type PlanUntil<I, T, E> = for<'a> fn(
    &'a [Customer],
    &'a [Visit],
    &'a Plan,
    &'a AllocationConfig,
    &'a I,
    Option<Deadline<'a>>,
) -> Result<T, E>;

/// Runs one of planning's `*_until` functions over the team's documents and current plan like
/// [`compute`], under a deadline of `time_limit_ms` on the server's monotonic clock.
async fn compute_until<I: Send + 'static, T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    slot: tokio::sync::OwnedSemaphorePermit,
    docs: TeamDocs,
    time_limit_ms: u64,
    input: I,
    plan_until: PlanUntil<I, T, E>,
) -> Result<T, ApiError> {
    let plan = docs.plan()?.clone();
    compute(slot, move || {
        let clock = deadline_clock();
        let deadline = Deadline::after_ms(&clock, time_limit_ms);
        plan_until(&docs.customers, &docs.visits, &plan, &AllocationConfig::default(), &input, deadline)
    })
    .await
}

pub(crate) fn parse_date(s: &str) -> Result<LocalDate, ApiError> {
    let mut parts = s.split('-');
    let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(ApiError::invalid(format!("date {s:?} is not YYYY-MM-DD")));
    };
    let parsed = (y.parse::<i16>(), m.parse::<u8>(), d.parse::<u8>());
    match parsed {
        (Ok(y), Ok(m), Ok(d)) if (2000..=2199).contains(&y) => Ok(LocalDate::new(y, m, d)),
        (Ok(_), Ok(_), Ok(_)) => {
            Err(ApiError::invalid(format!("date {s:?} is not between the years 2000 and 2199")))
        }
        _ => Err(ApiError::invalid(format!("date {s:?} is not YYYY-MM-DD"))),
    }
}

fn point(lat: f64, lon: f64, field: &str) -> Result<LatLon, ApiError> {
    LatLon::new(lat, lon).map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(segmentation))
        .routes(routes!(target_report))
        .routes(routes!(overdue_list))
        .routes(routes!(time_shares))
        .routes(routes!(day))
        .routes(routes!(week))
        .routes(routes!(areas))
        .routes(routes!(territories))
        .routes(routes!(apply_territories))
}

#[utoipa::path(get, path = "/v1/plan/segmentation", tag = "planning", responses((status = 200, description = "A/B/C tier per customer and the Pareto summary", content_type = "application/json"), crate::routes::openapi::Errors))]
async fn segmentation(State(state): State<AppState>, Manager(who): Manager) -> Result<Json<Value>, ApiError> {
    let docs = team_docs(&state, &who.team).await?;
    let plan = docs.plan()?;
    to_json(&json!({
        "assignments": segment(&docs.customers, plan),
        "pareto": pareto_for_plan(&docs.customers, plan),
    }))
}

#[utoipa::path(get, path = "/v1/plan/targets", tag = "planning", responses((status = 200, description = "quota attainment and forecast per tier and rep", content_type = "application/json"), crate::routes::openapi::Errors))]
async fn target_report(State(state): State<AppState>, Caller(who): Caller) -> Result<Json<Value>, ApiError> {
    let docs = team_docs(&state, &who.team).await?;
    let mut report = targets(&docs.customers, docs.plan()?);
    if who.role == Role::Rep {
        report.reps.retain(|r| r.rep == who.user);
    }
    to_json(&report)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RepQuery {
    rep: Option<String>,
    now_ms: Option<i64>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

#[utoipa::path(get, path = "/v1/plan/overdue", tag = "planning", params(RepQuery), responses((status = 200, description = "customers past their visit cadence, most urgent first", content_type = "application/json"), crate::routes::openapi::Errors))]
async fn overdue_list(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<RepQuery>,
) -> Result<Json<Value>, ApiError> {
    let rep = rep_scope(&who, q.rep)?;
    let now = q.now_ms.unwrap_or_else(|| state.clock.now_ms());
    check_instant("now_ms", now).map_err(ApiError::invalid_query)?;
    let docs = team_docs(&state, &who.team).await?;
    if let Some(r) = &rep {
        docs.check_rep(&who, r)?;
    }
    let mut list = overdue(&docs.customers, &docs.visits, docs.plan()?, &AllocationConfig::default(), now);
    if let Some(r) = rep {
        list.retain(|o| o.owner_rep.as_deref() == Some(r.as_str()));
    }
    to_json(&list)
}

#[utoipa::path(get, path = "/v1/plan/time-share", tag = "planning", params(RepQuery), responses((status = 200, description = "visit time per tier against the 80/20 focus", content_type = "application/json"), crate::routes::openapi::Errors))]
async fn time_shares(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<RepQuery>,
) -> Result<Json<Value>, ApiError> {
    let rep = rep_scope(&who, q.rep)?;
    let now = state.clock.now_ms();
    let to = q.to_ms.unwrap_or(now);
    let from = q.from_ms.unwrap_or(to.saturating_sub(28 * 86_400_000));
    check_window(from, to).map_err(ApiError::invalid_query)?;
    let docs = team_docs(&state, &who.team).await?;
    if let Some(r) = &rep {
        docs.check_rep(&who, r)?;
    }
    let mut shares =
        time_share(&docs.customers, &docs.visits, docs.plan()?, &AllocationConfig::default(), from, to);
    if let Some(r) = rep {
        shares.retain(|s| s.rep == r);
    }
    to_json(&shares)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct DayRequest {
    rep: Option<String>,
    date: String,
    #[serde(default = "default_tz")]
    timezone: String,
    start_lat: f64,
    start_lon: f64,
    end_lat: Option<f64>,
    end_lon: Option<f64>,
    #[serde(default = "default_work_start")]
    work_start_min: u32,
    #[serde(default = "default_work_end")]
    work_end_min: u32,
    #[serde(default = "default_max_optional")]
    max_optional: usize,
    /// Travel speeds and detour factor (fieldsync_planning::TravelModel).
    #[schema(value_type = Option<Object>)]
    travel: Option<TravelModel>,
}

fn default_tz() -> String {
    "Europe/Paris".into()
}
fn default_work_start() -> u32 {
    8 * 60 + 30
}
fn default_work_end() -> u32 {
    18 * 60
}
fn default_max_optional() -> usize {
    12
}

#[utoipa::path(post, path = "/v1/plan/day", tag = "planning", request_body(content = DayRequest, content_type = "application/json"), responses((status = 200, description = "a day route under opening hours", content_type = "application/json"), crate::routes::openapi::Errors))]
async fn day(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiJson(r): ApiJson<DayRequest>,
) -> Result<Json<Value>, ApiError> {
    check_id_len("timezone", &r.timezone)?;
    let rep = subject(&who, r.rep)?;
    let start = point(r.start_lat, r.start_lon, "start")?;
    let end = point(r.end_lat.unwrap_or(r.start_lat), r.end_lon.unwrap_or(r.start_lon), "end")?;
    let input = RepDayInput {
        rep,
        date: parse_date(&r.date)?,
        timezone: r.timezone,
        start,
        end,
        work_start_min: r.work_start_min,
        work_end_min: r.work_end_min,
        travel: r.travel.unwrap_or_default(),
        max_optional: r.max_optional,
        seed: 7,
        time_limit_ms: 1_000,
    };
    input.validate()?;
    let slot = state.planning_slot()?;
    let docs = team_docs(&state, &who.team).await?;
    docs.check_rep(&who, &input.rep)?;
    let limit = input.time_limit_ms;
    let result = compute_until(slot, docs, limit, input, plan_rep_day_until).await?;
    to_json(&result)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct WeekRepRequest {
    rep: String,
    lat: f64,
    lon: f64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct WeekRequest {
    /// First day, YYYY-MM-DD.
    date: String,
    #[serde(default = "default_days")]
    days: u32,
    #[serde(default = "default_tz")]
    timezone: String,
    reps: Vec<WeekRepRequest>,
    #[serde(default = "default_work_start")]
    work_start_min: u32,
    #[serde(default = "default_work_end")]
    work_end_min: u32,
    /// Travel speeds and detour factor (fieldsync_planning::TravelModel).
    #[schema(value_type = Option<Object>)]
    travel: Option<TravelModel>,
    /// ISO weekdays the team works, Monday to Friday unless given.
    #[serde(default = "fieldsync_planning::agenda::default_working_weekdays")]
    working_weekdays: Vec<u8>,
}

fn default_days() -> u32 {
    5
}

#[utoipa::path(post, path = "/v1/plan/week", tag = "planning", request_body(content = WeekRequest, content_type = "application/json"), responses((status = 200, description = "week plans for several reps", content_type = "application/json"), crate::routes::openapi::Errors))]
async fn week(
    State(state): State<AppState>,
    Manager(who): Manager,
    ApiJson(r): ApiJson<WeekRequest>,
) -> Result<Json<Value>, ApiError> {
    if r.days == 0 || r.days > 14 {
        return Err(ApiError::invalid("days must be within 1..=14"));
    }
    check_id_len("timezone", &r.timezone)?;
    check_minute_of_day("work_start_min", r.work_start_min)?;
    check_minute_of_day("work_end_min", r.work_end_min)?;
    if r.work_end_min <= r.work_start_min {
        return Err(ApiError::invalid("work_end_min must be after work_start_min"));
    }
    if r.reps.len() > MAX_REPS {
        return Err(ApiError::invalid(format!("at most {MAX_REPS} reps")));
    }
    if r.reps.is_empty() {
        return Err(ApiError::invalid("name at least one rep to plan the week for"));
    }
    for rep in &r.reps {
        check_id_len("reps[].rep", &rep.rep)?;
    }
    if let Some(t) = &r.travel {
        t.validate()?;
    }
    let mut input = TeamWeekInput {
        date: parse_date(&r.date)?,
        days: r.days,
        timezone: r.timezone,
        reps: Vec::new(),
        work_start_min: r.work_start_min,
        work_end_min: r.work_end_min,
        travel: r.travel.unwrap_or_default(),
        seed: 7,
        time_limit_ms: 5_000,
        working_weekdays: r.working_weekdays,
    };
    // The days resolve in the time zone before the reps' points are looked at, as they always have.
    input.validate()?;
    for rep in &r.reps {
        input.reps.push(TeamWeekRep { rep: rep.rep.clone(), home: point(rep.lat, rep.lon, &rep.rep)? });
    }
    let slot = state.planning_slot()?;
    let docs = team_docs(&state, &who.team).await?;
    for rep in &input.reps {
        docs.check_rep(&who, &rep.rep)?;
    }
    let limit = input.time_limit_ms;
    let week = compute_until(slot, docs, limit, input, plan_team_week_until).await?;
    to_json(&week)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct AreasRequest {
    rep: Option<String>,
    n: usize,
    #[serde(default)]
    /// Balance and compactness knobs (fieldsync_planning::areas::AreaConfig).
    #[schema(value_type = Option<Object>)]
    config: Option<AreaConfig>,
    #[serde(default)]
    seed: u64,
}

#[utoipa::path(post, path = "/v1/plan/sub-areas", tag = "planning", request_body(content = AreasRequest, content_type = "application/json"), responses((status = 200, description = "compact, balanced sub-areas", content_type = "application/json"), crate::routes::openapi::Errors))]
async fn areas(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiJson(r): ApiJson<AreasRequest>,
) -> Result<Json<Value>, ApiError> {
    let rep = subject(&who, r.rep)?;
    // Bounds first: nothing is loaded for a request that will be refused.
    let cfg = r.config.unwrap_or_default();
    cfg.validate()?;
    if r.n == 0 || r.n > MAX_AREAS {
        return Err(ApiError::invalid(format!("n must be within 1..={MAX_AREAS}")));
    }
    let slot = state.planning_slot()?;
    let docs = team_docs(&state, &who.team).await?;
    docs.check_rep(&who, &rep)?;
    let mine: Vec<Customer> =
        docs.customers.into_iter().filter(|c| c.owner_rep.as_deref() == Some(rep.as_str())).collect();
    let result = compute(slot, move || sub_areas(&mine, r.n, &cfg, r.seed)).await?;
    to_json(&result)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct TerritoriesRequest {
    /// Reps and their homes; defaults to the reps of today's territories, based at the centroid of
    /// their customers.
    #[schema(value_type = Option<Vec<Object>>)]
    reps: Option<Vec<RepBase>>,
    tolerance: Option<f64>,
    #[serde(default)]
    seed: u64,
}

fn centroid(customers: &[&Customer]) -> Option<LatLon> {
    let pts: Vec<(f64, f64)> =
        customers.iter().filter_map(|c| c.location.parsed("l").ok()).map(|(p, _)| (p.lat, p.lon)).collect();
    if pts.is_empty() {
        return None;
    }
    let n = pts.len() as f64;
    Some(LatLon {
        lat: pts.iter().map(|p| p.0).sum::<f64>() / n,
        lon: pts.iter().map(|p| p.1).sum::<f64>() / n,
    })
}

#[utoipa::path(post, path = "/v1/plan/territories", tag = "planning", request_body(content = TerritoriesRequest, content_type = "application/json"), responses((status = 200, description = "a balanced territory design with its moves", content_type = "application/json"), crate::routes::openapi::Errors))]
async fn territories(
    State(state): State<AppState>,
    Manager(who): Manager,
    ApiJson(r): ApiJson<TerritoriesRequest>,
) -> Result<Json<Value>, ApiError> {
    let mut cfg = TerritoryConfig::default();
    if let Some(t) = r.tolerance {
        cfg.tolerance = t;
    }
    cfg.validate()?;
    if let Some(reps) = &r.reps {
        if reps.len() > MAX_REPS {
            return Err(ApiError::invalid(format!("at most {MAX_REPS} reps")));
        }
        for rep in reps {
            check_id_len("reps[].rep", &rep.rep)?;
        }
    }
    let slot = state.planning_slot()?;
    let docs = team_docs(&state, &who.team).await?;
    let reps = match r.reps {
        Some(reps) => reps,
        None => {
            let mut names: Vec<String> = docs.territories.iter().flat_map(|t| t.reps.clone()).collect();
            names.sort();
            names.dedup();
            names
                .into_iter()
                .filter_map(|rep| {
                    let mine: Vec<&Customer> = docs
                        .customers
                        .iter()
                        .filter(|c| c.owner_rep.as_deref() == Some(rep.as_str()))
                        .collect();
                    centroid(&mine).map(|home| RepBase { rep, home })
                })
                .collect()
        }
    };
    let customers = docs.customers;
    let design = compute(slot, move || design_territories(&customers, &reps, &cfg, r.seed)).await?;
    to_json(&design)
}

#[utoipa::path(post, path = "/v1/plan/territories/apply", tag = "planning", request_body(content = Object, content_type = "application/json", description = "a design as POST /v1/plan/territories answered it"), responses((status = 200, description = "{moved_customers, territories}", content_type = "application/json"), crate::routes::openapi::Errors))]
async fn apply_territories(
    State(state): State<AppState>,
    Manager(who): Manager,
    ApiJson(design): ApiJson<TerritoryDesign>,
) -> Result<Json<Value>, ApiError> {
    design.validate()?;
    let docs = team_docs(&state, &who.team).await?;
    let changed = apply_design(&design, &docs.customers);
    let mut writes: Vec<ServerWrite> =
        design.territories.iter().map(|t| ServerWrite::Put(Document::Territory(to_territory(t)))).collect();
    // Only the assignment changes, on the customer as it is stored when the write happens: what
    // reps wrote since the design was read (notes, status) stays.
    writes.extend(changed.iter().map(|c| {
        let (owner, territory) = (c.owner_rep.clone(), c.territory.clone());
        ServerWrite::edit(&c.id, DocKind::Customer, move |d| {
            if let Document::Customer(c) = d {
                c.owner_rep = owner.clone();
                c.territory = territory.clone();
            }
        })
    }));
    let engine = state.engine.clone();
    let team = who.team.clone();
    let now = state.clock.now_ms();
    let n = writes.len();
    blocking(move || engine.apply_server_writes(&team, &writes, now)).await?;
    state.changed();
    tracing::info!(team = %who.team, manager = %who.user, moved = changed.len(), documents = n, "territory design applied");
    Ok(Json(json!({ "moved_customers": changed.len(), "territories": design.territories.len() })))
}
