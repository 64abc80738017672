//! `/v1/map/…`: the team map as GeoJSON (RFC 7946, WGS-84) from the report index — customers in a
//! view through an R-tree, filtered and clustered; territories as polygons; a rep's day as its
//! check-ins and planned route. A rep sees their own customers, territories and day.
//!
//! The R-tree of a team is cached by version ([`crate::cache`]): used only while the feed head has
//! not moved, never replaced by a tree built from older rows.

use axum::{Json, extract::State};
use fieldsync_core::Role;
use fieldsync_core::docs::{Plan, Tier};
use fieldsync_core::index::CustomerRow;
use fieldsync_planning::map::{BBox, CustomerFilter, day_features, territory_features};
use fieldsync_planning::reports::knows_rep;
use fieldsync_planning::route::local_time_ms;
use fieldsync_planning::segmentation::row_tier;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::{ApiQuery, Caller, rep_scope};
use crate::state::{AppState, blocking};

/// Points a view may hold before it is clustered (the `max_points` a client asks for is capped).
pub const MAX_POINTS: usize = 5_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomersQuery {
    bbox: String,
    /// Comma-separated tiers: `A,B`.
    tier: Option<String>,
    /// Comma-separated follow-up statuses.
    status: Option<String>,
    rep: Option<String>,
    territory: Option<String>,
    max_points: Option<usize>,
}

fn list(s: Option<&str>, what: &str) -> Result<Option<Vec<String>>, ApiError> {
    let Some(s) = s else { return Ok(None) };
    let items: Vec<String> = s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect();
    if items.len() > 20 || items.iter().any(|x| x.len() > 64) {
        return Err(ApiError::invalid_query(format!("{what}: at most 20 values of at most 64 bytes")));
    }
    Ok(Some(items))
}

fn tier_of(plan: Option<&Plan>) -> impl Fn(&CustomerRow) -> Option<Tier> + '_ {
    move |c| match plan {
        Some(p) => Some(row_tier(c, &p.thresholds)),
        None => c.tier,
    }
}

/// `GET /v1/map/customers?bbox=&tier=&status=&rep=&territory=&max_points=`.
#[utoipa::path(get, path = "/v1/map/customers", tag = "map", params(CustomersQuery), responses((status = 200, description = "a GeoJSON FeatureCollection of points and clusters (WGS-84)", content_type = "application/geo+json"), crate::routes::openapi::Errors))]
pub async fn customers(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<CustomersQuery>,
) -> Result<Json<Value>, ApiError> {
    let bbox = BBox::parse(&q.bbox).map_err(ApiError::invalid_query)?;
    let tiers = list(q.tier.as_deref(), "tier")?
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    t.parse::<Tier>().map_err(|_| ApiError::invalid_query(format!("tier {t:?}: A, B or C")))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let statuses = list(q.status.as_deref(), "status")?;
    let rep = rep_scope(&who, q.rep)?;
    for (what, id) in [("rep", &rep), ("territory", &q.territory)] {
        if let Some(id) = id {
            fieldsync_core::docs::validate_id(what, id).map_err(ApiError::invalid_query)?;
        }
    }
    let max_points = q.max_points.unwrap_or(500);
    if !(1..=MAX_POINTS).contains(&max_points) {
        return Err(ApiError::invalid_query(format!("max_points must be within 1..={MAX_POINTS}")));
    }
    let filter = CustomerFilter { tiers, statuses, rep, territory: q.territory };
    let (cached, team) = (state.clone(), who.team.clone());
    let view = blocking(move || -> Result<Value, ApiError> {
        let (map, index) = cached.team_map(&team)?;
        if let Some(r) = &filter.rep
            && r != &who.user
            && !map.has_owner(r)
        {
            return Err(ApiError::unknown_rep(r));
        }
        Ok(map.features(&bbox, &filter, max_points, tier_of(index.plan.as_ref())))
    })
    .await?;
    Ok(Json(view))
}

/// `GET /v1/map/territories`: the team's territories (a rep's own) as polygons.
#[utoipa::path(get, path = "/v1/map/territories", tag = "map", responses((status = 200, description = "the territories as GeoJSON polygons", content_type = "application/geo+json"), crate::routes::openapi::Errors))]
pub async fn territories(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<Value>, ApiError> {
    let view = blocking(move || -> Result<Value, ApiError> {
        let member = (who.role == Role::Rep).then_some(who.user.as_str());
        let found = state.territories(&who.team, member)?;
        Ok(territory_features(&found))
    })
    .await?;
    Ok(Json(view))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DayQuery {
    rep: Option<String>,
    date: String,
    #[serde(default = "paris")]
    timezone: String,
}

fn paris() -> String {
    "Europe/Paris".into()
}

/// `GET /v1/map/day?rep=&date=YYYY-MM-DD&timezone=`: a rep's check-ins of the day and planned route.
#[utoipa::path(get, path = "/v1/map/day", tag = "map", params(DayQuery), responses((status = 200, description = "a rep's check-ins and planned route of a day as GeoJSON", content_type = "application/geo+json"), crate::routes::openapi::Errors))]
pub async fn day(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<DayQuery>,
) -> Result<Json<Value>, ApiError> {
    let rep = rep_scope(&who, q.rep)?.ok_or_else(|| ApiError::bad_request("say which rep (\"rep\")"))?;
    fieldsync_core::docs::validate_id("rep", &rep).map_err(ApiError::invalid_query)?;
    fieldsync_planning::check_id_len("timezone", &q.timezone)?;
    let date = super::plan::parse_date(&q.date)?;
    let from = local_time_ms(&q.timezone, date, 0)?;
    let to = local_time_ms(&q.timezone, date.next()?, 0)?;
    let cached = state.clone();
    let view = blocking(move || -> Result<Value, ApiError> {
        let (_, index) = cached.team_index(&who.team)?;
        let rows = &index.rows;
        if rep != who.user && !knows_rep(rows, &rep) {
            return Err(ApiError::unknown_rep(&rep));
        }
        Ok(day_features(rows, &rep, from, to))
    })
    .await?;
    Ok(Json(view))
}
