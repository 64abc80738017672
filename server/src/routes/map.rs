//! `/v1/map/…`: the team map as GeoJSON (RFC 7946, WGS-84) from the report index — customers in a
//! view through an R-tree, filtered and clustered; territories as polygons; a rep's day as its
//! check-ins and planned route. A rep sees their own customers, territories and day.
//!
//! The R-tree of a team is cached by version (the feed head read before the rows): it is used only
//! while the head has not moved, and a tree built from older rows never replaces a newer one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::{Json, extract::State};
use fieldsync_core::docs::{DocKind, Document, Plan, Territory, Tier};
use fieldsync_core::index::CustomerRow;
use fieldsync_core::storage::Storage as _;
use fieldsync_core::{Principal, Role};
use fieldsync_planning::map::{BBox, CustomerFilter, CustomerMap, day_features, territory_features};
use fieldsync_planning::reports::knows_rep;
use fieldsync_planning::route::local_time_ms;
use fieldsync_planning::segmentation::{effective_tier_of, score_of};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::{ApiQuery, Caller};
use crate::state::{AppState, blocking};

/// Points a view may hold before it is clustered (the `max_points` a client asks for is capped).
pub const MAX_POINTS: usize = 5_000;

/// Per team: the version of the index a tree was built from, and the tree.
#[derive(Debug, Default)]
pub struct MapCache(Mutex<HashMap<String, (u64, Arc<CustomerMap>)>>);

impl MapCache {
    fn get(&self, team: &str, version: u64) -> Option<Arc<CustomerMap>> {
        let cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(team).filter(|(v, _)| *v == version).map(|(_, m)| m.clone())
    }

    /// Keeps `map` unless a tree of a newer version is there already.
    fn offer(&self, team: &str, version: u64, map: Arc<CustomerMap>) {
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(team) {
            Some((v, _)) if *v > version => {}
            _ => {
                cache.insert(team.to_string(), (version, map));
            }
        }
    }
}

#[derive(Debug, Deserialize)]
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

/// The rep a view is narrowed to: a rep's own (another is 403).
fn narrowed(who: &Principal, rep: Option<String>) -> Result<Option<String>, ApiError> {
    match (who.role, rep) {
        (Role::Rep, Some(r)) if r != who.user => Err(ApiError::forbidden("a rep sees their own map only")),
        (Role::Rep, _) => Ok(Some(who.user.clone())),
        (_, rep) => Ok(rep),
    }
}

fn tier_of(plan: Option<&Plan>) -> impl Fn(&CustomerRow) -> Option<Tier> + '_ {
    move |c| match plan {
        Some(p) => Some(effective_tier_of(
            c.tier,
            c.tier_set_by.is_some(),
            score_of(c.potential_value, c.close_probability),
            &p.thresholds,
        )),
        None => c.tier,
    }
}

/// `GET /v1/map/customers?bbox=&tier=&status=&rep=&territory=&max_points=`.
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
    let rep = narrowed(&who, q.rep)?;
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
    let (engine, cache, team) = (state.engine.clone(), state.maps.clone(), who.team.clone());
    let view = blocking(move || -> Result<Value, ApiError> {
        // The version first: the tree is never older than its label.
        let version = engine.storage().feed_head(&team)?;
        let map = match cache.get(&team, version) {
            Some(m) => m,
            None => {
                let m = Arc::new(CustomerMap::build(&engine.index_rows(&team)?));
                cache.offer(&team, version, m.clone());
                m
            }
        };
        if let Some(r) = &filter.rep
            && r != &who.user
            && !map.has_owner(r)
        {
            return Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "unknown_rep",
                format!("no rep named {r:?} with customers in this team"),
            ));
        }
        let plan = engine.current_plan(&team)?;
        Ok(map.features(&bbox, &filter, max_points, tier_of(plan.as_ref())))
    })
    .await?;
    Ok(Json(view))
}

/// `GET /v1/map/territories`: the team's territories (a rep's own) as polygons.
pub async fn territories(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let view = blocking(move || -> Result<Value, ApiError> {
        let mut found: Vec<Territory> = Vec::new();
        let mut after = String::new();
        loop {
            let member = (who.role == Role::Rep).then_some(who.user.as_str());
            let page = engine.storage().list_docs(&who.team, member, &after, 1000)?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            for (id, kind) in page.into_iter().filter(|(_, k)| *k == DocKind::Territory) {
                let _ = kind;
                if let Some((Document::Territory(t), _)) = engine.read_doc(&who.team, &id)? {
                    found.push(t);
                }
            }
        }
        Ok(territory_features(&found))
    })
    .await?;
    Ok(Json(view))
}

#[derive(Debug, Deserialize)]
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
pub async fn day(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<DayQuery>,
) -> Result<Json<Value>, ApiError> {
    let rep = narrowed(&who, q.rep)?.ok_or_else(|| ApiError::bad_request("say which rep (\"rep\")"))?;
    fieldsync_core::docs::validate_id("rep", &rep).map_err(ApiError::invalid_query)?;
    fieldsync_planning::check_id_len("timezone", &q.timezone)?;
    let date = super::plan::parse_date(&q.date)?;
    let from = local_time_ms(&q.timezone, date, 0)?;
    let to = local_time_ms(&q.timezone, date.next()?, 0)?;
    let engine = state.engine.clone();
    let view = blocking(move || -> Result<Value, ApiError> {
        let rows = engine.index_rows(&who.team)?;
        if rep != who.user && !knows_rep(&rows, &rep) {
            return Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "unknown_rep",
                format!("no rep named {rep:?} in this team"),
            ));
        }
        Ok(day_features(&rows, &rep, from, to))
    })
    .await?;
    Ok(Json(view))
}
