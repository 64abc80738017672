//! A rep's day, from the documents: the visits already planned that day must be kept; customers
//! that are due (overdue by their tier's cadence) fill the rest of the day by priority; opening hours
//! come from each customer's own time zone; visit durations from the tier. The same function serves
//! the phone offline (through `mobile-ffi`) and the manager online (over HTTP).

use serde::{Deserialize, Serialize};

use super::allocation::{AllocationConfig, due_visits};
use super::route::{
    DayRoute, DayRouteRequest, LocalDate, RouteError, RouteStop, local_time_ms, opening_windows, plan_day,
};
use super::segmentation::effective_tier;
use super::{
    MAX_OPTIONAL_STOPS, MAX_TIME_LIMIT_MS, OutOfBounds, TravelModel, check_id_len, check_minute_of_day,
};
use crate::docs::{Customer, Plan, Visit, VisitState};
use crate::geo::{LatLon, to_wgs84};

/// What a rep's day is planned from, besides the documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepDayInput {
    pub rep: String,
    pub date: LocalDate,
    /// The rep's time zone (working hours are local); also used for customers without one.
    pub timezone: String,
    pub start: LatLon,
    pub end: LatLon,
    /// Working hours, minutes after local midnight.
    pub work_start_min: u32,
    pub work_end_min: u32,
    pub travel: TravelModel,
    /// At most this many due customers are offered to the router as optional stops.
    pub max_optional: usize,
    pub seed: u64,
    pub time_limit_ms: u64,
}

/// What a stop of the day is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopInfo {
    /// The route stop id: a visit id for planned visits, a customer id for due customers.
    pub id: String,
    pub customer_id: String,
    pub customer_name: String,
    /// `planned` (a visit to keep) or `due` (an overdue customer, optional).
    pub source: String,
    pub must: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepDayPlan {
    pub route: DayRoute,
    pub stops: Vec<StopInfo>,
    pub day_start_ms: i64,
    pub day_end_ms: i64,
}

impl RepDayInput {
    /// Every knob within its bound (see [`crate::planning`]'s constants), checked by
    /// [`plan_rep_day`] before any work is done.
    pub fn validate(&self) -> Result<(), RouteError> {
        check_id_len("rep", &self.rep)?;
        check_id_len("timezone", &self.timezone)?;
        check_minute_of_day("work_start_min", self.work_start_min)?;
        check_minute_of_day("work_end_min", self.work_end_min)?;
        if self.work_end_min <= self.work_start_min {
            return Err(OutOfBounds::new("work_end_min", "must be after work_start_min").into());
        }
        if self.max_optional > MAX_OPTIONAL_STOPS {
            return Err(
                OutOfBounds::new("max_optional", format!("must be at most {MAX_OPTIONAL_STOPS}")).into()
            );
        }
        if self.time_limit_ms > MAX_TIME_LIMIT_MS {
            return Err(
                OutOfBounds::new("time_limit_ms", format!("must be at most {MAX_TIME_LIMIT_MS}")).into()
            );
        }
        self.travel.validate()?;
        Ok(())
    }
}

fn location(c: &Customer) -> Option<LatLon> {
    c.location.parsed("location").ok().map(|(p, d)| to_wgs84(p, d))
}

fn windows(c: &Customer, date: LocalDate, fallback_tz: &str) -> Result<Vec<(i64, i64)>, RouteError> {
    if c.timezone.trim().is_empty() {
        let mut with_tz = c.clone();
        with_tz.timezone = fallback_tz.to_string();
        return opening_windows(&with_tz, date);
    }
    opening_windows(c, date)
}

/// Plans `input.rep`'s day. Customers and visits may be the whole team's: only the rep's own are
/// used.
pub fn plan_rep_day(
    customers: &[Customer],
    visits: &[Visit],
    plan: &Plan,
    cfg: &AllocationConfig,
    input: &RepDayInput,
) -> Result<RepDayPlan, RouteError> {
    input.validate()?;
    let day_start_ms = local_time_ms(&input.timezone, input.date, input.work_start_min)?;
    let day_end_ms = local_time_ms(&input.timezone, input.date, input.work_end_min)?;
    let by_id: std::collections::HashMap<&str, &Customer> =
        customers.iter().map(|c| (c.id.as_str(), c)).collect();
    let service_s = |c: &Customer| {
        (cfg.visit_minutes.get(effective_tier(c, &plan.thresholds)) * 60.0).round().max(0.0) as u32
    };
    let mut stops = Vec::new();
    let mut info = Vec::new();
    let mut planned_customers = std::collections::HashSet::new();

    // The day's planned visits are kept.
    for v in visits.iter().filter(|v| {
        v.rep == input.rep
            && v.state == VisitState::Planned
            && v.planned_start_ms >= day_start_ms - 12 * 3_600_000
            && v.planned_start_ms < day_end_ms
    }) {
        let Some(c) = by_id.get(v.customer_id.as_str()) else { continue };
        let Some(at) = location(c) else { continue };
        planned_customers.insert(c.id.as_str());
        stops.push(RouteStop {
            id: v.id.clone(),
            location: at,
            windows: windows(c, input.date, &input.timezone)?,
            service_s: service_s(c),
            must: true,
            priority: 0.0,
        });
        info.push(StopInfo {
            id: v.id.clone(),
            customer_id: c.id.clone(),
            customer_name: c.name.clone(),
            source: "planned".into(),
            must: true,
        });
    }

    // Due customers fill the day, most urgent first.
    let mine: Vec<Customer> =
        customers.iter().filter(|c| c.owner_rep.as_deref() == Some(input.rep.as_str())).cloned().collect();
    let mut due = due_visits(&mine, visits, plan, cfg, day_start_ms, day_end_ms);
    due.retain(|d| !d.remote && !planned_customers.contains(d.customer_id.as_str()));
    due.sort_by(|a, b| b.priority.total_cmp(&a.priority).then_with(|| a.customer_id.cmp(&b.customer_id)));
    for d in due.into_iter().take(input.max_optional) {
        let Some(c) = by_id.get(d.customer_id.as_str()) else { continue };
        let Some(at) = location(c) else { continue };
        stops.push(RouteStop {
            id: c.id.clone(),
            location: at,
            windows: windows(c, input.date, &input.timezone)?,
            service_s: service_s(c),
            must: false,
            priority: if d.priority.is_finite() { d.priority.max(0.0) } else { 0.0 },
        });
        info.push(StopInfo {
            id: c.id.clone(),
            customer_id: c.id.clone(),
            customer_name: c.name.clone(),
            source: "due".into(),
            must: false,
        });
    }

    let route = plan_day(&DayRouteRequest {
        start: input.start,
        end: input.end,
        day_start_ms,
        day_end_ms,
        stops,
        travel: input.travel,
        seed: input.seed,
        time_limit_ms: input.time_limit_ms,
    })?;
    Ok(RepDayPlan { route, stops: info, day_start_ms, day_end_ms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docs::{Cadence, GeoPoint, OpeningHours, SCHEMA_VERSION, TierThresholds};

    fn customer(id: &str, rep: &str, north_km: f64, potential: f64) -> Customer {
        Customer {
            kind: "customer".into(),
            schema: SCHEMA_VERSION,
            id: id.into(),
            name: format!("Customer {id}"),
            location: GeoPoint::wgs84(45.76 + north_km / 111.2, 4.83),
            address: String::new(),
            timezone: "Europe/Paris".into(),
            opening_hours: (1..=5)
                .flat_map(|d| {
                    [
                        OpeningHours { weekday: d, open_min: 510, close_min: 720 },
                        OpeningHours { weekday: d, open_min: 840, close_min: 1110 },
                    ]
                })
                .collect(),
            potential_value: potential,
            close_probability: 0.5,
            tier: None,
            tier_set_by: None,
            tier_set_at_ms: None,
            follow_up_status: "none".into(),
            opportunity_stage: "qualification".into(),
            owner_rep: Some(rep.into()),
            territory: None,
            tags: vec![],
            notes: "".into(),
            geofence_m: None,
            created_by: "server".into(),
        }
    }

    fn plan() -> Plan {
        Plan {
            kind: "plan".into(),
            schema: SCHEMA_VERSION,
            id: "p".into(),
            quarter: "2026-Q4".into(),
            quotas: vec![],
            cadence: Cadence { a_days: 7, b_days: 14, c_days: 30 },
            thresholds: TierThresholds { a_min_score: 30_000.0, b_min_score: 10_000.0 },
            focus_share: 0.8,
        }
    }

    #[test]
    fn a_reps_day_keeps_planned_visits_and_fills_up_with_due_customers_of_their_own() {
        // Monday 2026-11-30 in Lyon.
        let date = LocalDate::new(2026, 11, 30);
        let input = RepDayInput {
            rep: "alice".into(),
            date,
            timezone: "Europe/Paris".into(),
            start: LatLon { lat: 45.76, lon: 4.83 },
            end: LatLon { lat: 45.76, lon: 4.83 },
            work_start_min: 8 * 60,
            work_end_min: 18 * 60,
            travel: TravelModel::default(),
            max_optional: 10,
            seed: 1,
            time_limit_ms: 0,
        };
        let mut customers: Vec<Customer> =
            (0..6).map(|i| customer(&format!("c{i}"), "alice", i as f64, 100_000.0)).collect();
        customers.push(customer("bob-1", "bob", 1.0, 100_000.0));
        let day_start = local_time_ms("Europe/Paris", date, 8 * 60).expect("time");
        let planned = Visit {
            kind: "visit".into(),
            schema: SCHEMA_VERSION,
            id: "v-planned".into(),
            customer_id: "c5".into(),
            rep: "alice".into(),
            planned_start_ms: day_start + 3_600_000,
            planned_end_ms: day_start + 2 * 3_600_000,
            state: VisitState::Planned,
            checkins: vec![],
            checkout: None,
            notes: "".into(),
            verification: Default::default(),
            created_by: "alice".into(),
        };
        let day = plan_rep_day(&customers, &[planned], &plan(), &AllocationConfig::default(), &input)
            .expect("plan");
        let ids: Vec<&str> = day.route.stops.iter().map(|s| s.id.as_str()).collect();
        assert!(ids.contains(&"v-planned"), "the planned visit is kept: {ids:?}");
        assert!(!ids.contains(&"bob-1"), "never another rep's customer");
        assert!(!ids.contains(&"c5"), "a planned customer is not offered twice");
        assert!(ids.len() >= 4, "due customers fill the day: {ids:?}");
        for s in &day.route.stops {
            assert!(s.start_ms >= day.day_start_ms && s.depart_ms <= day.day_end_ms);
        }
        assert_eq!(day.stops.iter().filter(|s| s.source == "planned").count(), 1);
        assert!(day.stops.iter().all(|s| s.customer_id != "bob-1"));
    }

    #[test]
    fn an_unknown_rep_time_zone_is_a_typed_error() {
        let input = RepDayInput {
            rep: "alice".into(),
            date: LocalDate::new(2026, 11, 30),
            timezone: "Mars/Olympus".into(),
            start: LatLon { lat: 45.76, lon: 4.83 },
            end: LatLon { lat: 45.76, lon: 4.83 },
            work_start_min: 480,
            work_end_min: 1080,
            travel: TravelModel::default(),
            max_optional: 5,
            seed: 1,
            time_limit_ms: 0,
        };
        assert!(matches!(
            plan_rep_day(&[], &[], &plan(), &AllocationConfig::default(), &input),
            Err(RouteError::UnknownTimeZone(_))
        ));
    }
}
