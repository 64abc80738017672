//! A rep's day, from the documents: the visits already planned that day must be kept; customers
//! that are due (overdue by their tier's cadence) fill the rest of the day by priority; opening hours
//! come from each customer's own time zone; visit durations from the tier. The same function serves
//! the phone offline (through `mobile-ffi`) and the manager online (over HTTP).
//!
//! The team's week, likewise: the customers due over the week, as optional stops each reserved to
//! its owner rep, spread over the reps' working days ([`plan_team_week`]).

use serde::{Deserialize, Serialize};

use super::allocation::{AllocationConfig, due_visits};
use super::route::{
    DayRoute, DayRouteRequest, LocalDate, RepWeek, RouteError, RouteStop, WeekPlan, WeekPlanRequest,
    WeekStop, local_time_ms, opening_windows, opening_windows_for_days, plan_day_until, plan_week_until,
};
use super::segmentation::effective_tier;
use super::{
    MAX_OPTIONAL_STOPS, MAX_REPS, MAX_TIME_LIMIT_MS, OutOfBounds, TravelModel, check_id_len,
    check_minute_of_day,
};
use crate::deadline::Deadline;
use fieldsync_core::docs::{Customer, Plan, Visit, VisitState};
use fieldsync_core::geo::{LatLon, to_wgs84};

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
    /// Wall-clock cap on the search, validated here; the caller turns it into a [`Deadline`] for
    /// [`plan_rep_day_until`]. 0 = none.
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

/// A visit of the day the rep has made already (checked in or completed): shown, not routed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoneVisit {
    pub visit_id: String,
    pub customer_id: String,
    pub customer_name: String,
    pub state: VisitState,
    /// The first check-in's device time, else the planned start.
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepDayPlan {
    pub route: DayRoute,
    pub stops: Vec<StopInfo>,
    /// The day's visits already made, in time order; their customers are not offered again.
    #[serde(default)]
    pub done: Vec<DoneVisit>,
    pub day_start_ms: i64,
    pub day_end_ms: i64,
}

impl RepDayInput {
    /// Every knob within its bound (see [`crate`]'s constants), checked by
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
        check_time_limit(self.time_limit_ms)?;
        self.travel.validate()?;
        Ok(())
    }
}

fn check_time_limit(ms: u64) -> Result<(), RouteError> {
    if ms > MAX_TIME_LIMIT_MS {
        return Err(OutOfBounds::new("time_limit_ms", format!("must be at most {MAX_TIME_LIMIT_MS}")).into());
    }
    Ok(())
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
/// used. No deadline: the iteration budget alone (see [`plan_rep_day_until`]).
pub fn plan_rep_day(
    customers: &[Customer],
    visits: &[Visit],
    plan: &Plan,
    cfg: &AllocationConfig,
    input: &RepDayInput,
) -> Result<RepDayPlan, RouteError> {
    plan_rep_day_until(customers, visits, plan, cfg, input, None)
}

/// [`plan_rep_day`], the search stopping early at `deadline` (the caller builds it from
/// `input.time_limit_ms`, see [`Deadline::after_ms`]).
pub fn plan_rep_day_until(
    customers: &[Customer],
    visits: &[Visit],
    plan: &Plan,
    cfg: &AllocationConfig,
    input: &RepDayInput,
    deadline: Option<Deadline<'_>>,
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

    // The day's visits already made are shown as done, and their customers not offered again.
    let mut done: Vec<DoneVisit> = visits
        .iter()
        .filter(|v| v.rep == input.rep && matches!(v.state, VisitState::CheckedIn | VisitState::Completed))
        .filter_map(|v| {
            let at_ms = v.checkins.first().map_or(v.planned_start_ms, |c| c.device_time_ms);
            (day_start_ms - 12 * 3_600_000..day_end_ms).contains(&at_ms).then(|| DoneVisit {
                visit_id: v.id.clone(),
                customer_id: v.customer_id.clone(),
                customer_name: by_id.get(v.customer_id.as_str()).map(|c| c.name.clone()).unwrap_or_default(),
                state: v.state,
                at_ms,
            })
        })
        .collect();
    done.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then_with(|| a.visit_id.cmp(&b.visit_id)));
    planned_customers.extend(done.iter().map(|d| d.customer_id.as_str()));

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

    let req = DayRouteRequest {
        start: input.start,
        end: input.end,
        day_start_ms,
        day_end_ms,
        stops,
        travel: input.travel,
        seed: input.seed,
        time_limit_ms: input.time_limit_ms,
    };
    let route = plan_day_until(&req, deadline)?;
    Ok(RepDayPlan { route, stops: info, done, day_start_ms, day_end_ms })
}

/// Most days in one team week plan.
pub const MAX_WEEK_DAYS: u32 = 14;

/// A rep of the team's week: where the rep's days start and end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamWeekRep {
    pub rep: String,
    pub home: LatLon,
}

/// What the team's week is planned from, besides the documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamWeekInput {
    /// The first day.
    pub date: LocalDate,
    /// Working days from `date` (the first working day on or after it), 1..=[`MAX_WEEK_DAYS`].
    pub days: u32,
    /// The team's working weekdays, ISO (1 = Monday … 7 = Sunday); Monday to Friday by default.
    /// A week from a Tuesday runs to the next Monday, never through the weekend.
    #[serde(default = "default_working_weekdays")]
    pub working_weekdays: Vec<u8>,
    /// The team's time zone: working hours are local to it.
    pub timezone: String,
    pub reps: Vec<TeamWeekRep>,
    /// Working hours, minutes after local midnight.
    pub work_start_min: u32,
    pub work_end_min: u32,
    pub travel: TravelModel,
    pub seed: u64,
    /// Wall-clock cap on the search, validated here; the caller turns it into a [`Deadline`] for
    /// [`plan_team_week_until`]. 0 = none.
    pub time_limit_ms: u64,
}

/// Monday to Friday.
pub fn default_working_weekdays() -> Vec<u8> {
    (1..=5).collect()
}

impl TeamWeekInput {
    /// Every knob within its bound and every day resolvable in `timezone`, checked by
    /// [`plan_team_week`] before any work is done.
    pub fn validate(&self) -> Result<(), RouteError> {
        self.day_bounds().map(|_| ())
    }

    /// Validates, and gives each working day as (start, end), epoch ms, with the number of calendar
    /// days they span from `date`.
    fn day_bounds(&self) -> Result<(Vec<(i64, i64)>, u32), RouteError> {
        if self.days == 0 || self.days > MAX_WEEK_DAYS {
            return Err(OutOfBounds::new("days", format!("must be within 1..={MAX_WEEK_DAYS}")).into());
        }
        check_id_len("timezone", &self.timezone)?;
        check_minute_of_day("work_start_min", self.work_start_min)?;
        check_minute_of_day("work_end_min", self.work_end_min)?;
        if self.work_end_min <= self.work_start_min {
            return Err(OutOfBounds::new("work_end_min", "must be after work_start_min").into());
        }
        if self.reps.len() > MAX_REPS {
            return Err(OutOfBounds::new("reps", format!("at most {MAX_REPS} reps")).into());
        }
        for rep in &self.reps {
            check_id_len("reps[].rep", &rep.rep)?;
        }
        check_time_limit(self.time_limit_ms)?;
        self.travel.validate()?;
        if self.working_weekdays.is_empty()
            || self.working_weekdays.len() > 7
            || self.working_weekdays.iter().any(|d| !(1..=7).contains(d))
        {
            return Err(
                OutOfBounds::new("working_weekdays", "1 to 7 ISO weekdays, 1 = Monday … 7 = Sunday").into()
            );
        }
        let mut bounds = Vec::new();
        let mut date = self.date;
        let mut span = 0;
        // At least one working day a week: the days are found within `days` weeks.
        while bounds.len() < self.days as usize && span < 7 * self.days {
            if self.working_weekdays.contains(&date.weekday()?) {
                bounds.push((
                    local_time_ms(&self.timezone, date, self.work_start_min)?,
                    local_time_ms(&self.timezone, date, self.work_end_min)?,
                ));
            }
            span += 1;
            date = date.next()?;
        }
        Ok((bounds, span))
    }
}

/// Plans the team's week: every customer due between the first day's start and the last day's end
/// (remote contacts aside) becomes an optional stop reserved to its owner rep, with its opening
/// hours over the days and its tier's visit duration, and the reps' working days share them out
/// ([`plan_week`](super::route::plan_week)). No deadline: the iteration budget alone (see
/// [`plan_team_week_until`]).
pub fn plan_team_week(
    customers: &[Customer],
    visits: &[Visit],
    plan: &Plan,
    cfg: &AllocationConfig,
    input: &TeamWeekInput,
) -> Result<WeekPlan, RouteError> {
    plan_team_week_until(customers, visits, plan, cfg, input, None)
}

/// [`plan_team_week`], the search stopping early at `deadline` (the caller builds it from
/// `input.time_limit_ms`, see [`Deadline::after_ms`]).
pub fn plan_team_week_until(
    customers: &[Customer],
    visits: &[Visit],
    plan: &Plan,
    cfg: &AllocationConfig,
    input: &TeamWeekInput,
    deadline: Option<Deadline<'_>>,
) -> Result<WeekPlan, RouteError> {
    let (day_bounds, span) = input.day_bounds()?;
    let reps = input
        .reps
        .iter()
        .map(|r| RepWeek { rep: r.rep.clone(), start: r.home, end: r.home, days: day_bounds.clone() })
        .collect();
    let (from, to) = (day_bounds[0].0, day_bounds[day_bounds.len() - 1].1);
    let due = due_visits(customers, visits, plan, cfg, from, to);
    let by_id: std::collections::HashMap<&str, &Customer> =
        customers.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut stops = Vec::new();
    for d in due.iter().filter(|d| !d.remote) {
        let Some(c) = by_id.get(d.customer_id.as_str()) else { continue };
        let Some(at) = location(c) else { continue };
        let windows = opening_windows_for_days(c, input.date, span).unwrap_or_default();
        stops.push(WeekStop {
            id: c.id.clone(),
            location: at,
            windows,
            service_s: (cfg.visit_minutes.get(effective_tier(c, &plan.thresholds)) * 60.0) as u32,
            must: false,
            priority: if d.priority.is_finite() { d.priority.max(0.0) } else { 0.0 },
            reps: c.owner_rep.iter().cloned().collect(),
        });
    }
    let req = WeekPlanRequest {
        reps,
        stops,
        travel: input.travel,
        seed: input.seed,
        time_limit_ms: input.time_limit_ms,
    };
    plan_week_until(&req, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segmentation::fixtures::rep_day;
    use fieldsync_core::docs::{Cadence, GeoPoint, OpeningHours, TierThresholds};

    fn customer(id: &str, rep: &str, north_km: f64, potential: f64) -> Customer {
        let opening_hours = (1..=5)
            .flat_map(|d| {
                [
                    OpeningHours { weekday: d, open_min: 510, close_min: 720 },
                    OpeningHours { weekday: d, open_min: 840, close_min: 1110 },
                ]
            })
            .collect();
        let at = GeoPoint::wgs84(45.76 + north_km / 111.2, 4.83);
        Customer {
            timezone: "Europe/Paris".into(),
            opening_hours,
            potential_value: potential,
            close_probability: 0.5,
            opportunity_stage: "qualification".into(),
            owner_rep: Some(rep.into()),
            ..Customer::new(id, &format!("Customer {id}"), at, "server")
        }
    }

    fn plan() -> Plan {
        let cadence = Cadence { a_days: 7, b_days: 14, c_days: 30 };
        Plan::new("p", "2026-Q4", cadence, TierThresholds { a_min_score: 30_000.0, b_min_score: 10_000.0 })
    }

    #[test]
    fn a_reps_day_keeps_planned_visits_and_fills_up_with_due_customers_of_their_own() {
        // Monday 2026-11-30 in Lyon.
        let date = LocalDate::new(2026, 11, 30);
        let input = rep_day(date, "Europe/Paris");
        let mut customers: Vec<Customer> =
            (0..6).map(|i| customer(&format!("c{i}"), "alice", i as f64, 100_000.0)).collect();
        customers.push(customer("bob-1", "bob", 1.0, 100_000.0));
        let day_start = local_time_ms("Europe/Paris", date, 8 * 60).expect("time");
        let planned =
            Visit::planned("v-planned", "c5", "alice", day_start + 3_600_000, day_start + 2 * 3_600_000);
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
    fn the_days_visits_already_made_are_shown_done_and_not_offered_again() {
        let date = LocalDate::new(2026, 11, 30);
        let input = rep_day(date, "Europe/Paris");
        let customers: Vec<Customer> =
            (0..4).map(|i| customer(&format!("c{i}"), "alice", i as f64, 100_000.0)).collect();
        let day_start = local_time_ms("Europe/Paris", date, 8 * 60).expect("time");
        let mut done = Visit::planned("v-done", "c1", "alice", day_start, day_start + 3_600_000);
        done.state = VisitState::Completed;
        done.checkins.push(fieldsync_core::docs::Checkin::new("k", 45.77, 4.83, 5.0, day_start + 600_000));
        let mut here = Visit::planned("v-here", "c2", "alice", day_start + 3_600_000, day_start + 7_200_000);
        here.state = VisitState::CheckedIn;
        here.checkins.push(fieldsync_core::docs::Checkin::new("k2", 45.78, 4.83, 5.0, day_start + 3_700_000));
        let mut yesterday = done.clone();
        yesterday.id = "v-yesterday".into();
        yesterday.checkins[0].device_time_ms -= 86_400_000;
        let visits = [done, here, yesterday];
        let day =
            plan_rep_day(&customers, &visits, &plan(), &AllocationConfig::default(), &input).expect("plan");
        let shown: Vec<(&str, VisitState)> =
            day.done.iter().map(|d| (d.visit_id.as_str(), d.state)).collect();
        assert_eq!(shown, [("v-done", VisitState::Completed), ("v-here", VisitState::CheckedIn)]);
        assert_eq!(day.done[0].customer_name, customers[1].name);
        let routed: Vec<&str> = day.stops.iter().map(|s| s.customer_id.as_str()).collect();
        assert!(
            !routed.contains(&"c1") && !routed.contains(&"c2"),
            "made today, not offered again: {routed:?}"
        );
    }

    #[test]
    fn an_unknown_rep_time_zone_is_a_typed_error() {
        let input = RepDayInput { max_optional: 5, ..rep_day(LocalDate::new(2026, 11, 30), "Mars/Olympus") };
        assert!(matches!(
            plan_rep_day(&[], &[], &plan(), &AllocationConfig::default(), &input),
            Err(RouteError::UnknownTimeZone(_))
        ));
    }

    #[test]
    fn the_teams_week_spreads_due_customers_over_their_owners_days() {
        let home = LatLon { lat: 45.76, lon: 4.83 };
        let input = TeamWeekInput {
            date: LocalDate::new(2026, 11, 30),
            days: 2,
            timezone: "Europe/Paris".into(),
            reps: vec![TeamWeekRep { rep: "alice".into(), home }, TeamWeekRep { rep: "bob".into(), home }],
            work_start_min: 8 * 60,
            work_end_min: 18 * 60,
            travel: TravelModel::default(),
            seed: 7,
            time_limit_ms: 0,
            working_weekdays: default_working_weekdays(),
        };
        let mut customers: Vec<Customer> =
            (0..4).map(|i| customer(&format!("a{i}"), "alice", i as f64, 100_000.0)).collect();
        customers.extend((0..3).map(|i| customer(&format!("b{i}"), "bob", -(i as f64), 100_000.0)));
        let cfg = AllocationConfig::default();
        let week = plan_team_week(&customers, &[], &plan(), &cfg, &input).expect("plan");
        assert_eq!(week.days.len(), 4, "two reps, two days each");
        assert_eq!(week, plan_team_week(&customers, &[], &plan(), &cfg, &input).expect("plan"));
        let mut served = 0;
        for day in &week.days {
            for s in &day.route.stops {
                assert_eq!(s.id.starts_with('a'), day.rep == "alice", "{} served by its owner", s.id);
                served += 1;
            }
        }
        assert_eq!(served + week.unassigned.len(), customers.len());
        for bad in [
            TeamWeekInput { days: 0, ..input.clone() },
            TeamWeekInput { days: MAX_WEEK_DAYS + 1, ..input.clone() },
            TeamWeekInput { work_end_min: 60, ..input.clone() },
            TeamWeekInput { time_limit_ms: MAX_TIME_LIMIT_MS + 1, ..input.clone() },
            TeamWeekInput { working_weekdays: vec![], ..input.clone() },
            TeamWeekInput { working_weekdays: vec![0], ..input.clone() },
            TeamWeekInput { working_weekdays: vec![8], ..input.clone() },
        ] {
            assert!(matches!(bad.validate(), Err(RouteError::InvalidRequest { .. })), "{bad:?}");
        }
        let mars = TeamWeekInput { timezone: "Mars/Olympus".into(), ..input };
        assert!(matches!(mars.validate(), Err(RouteError::UnknownTimeZone(_))));
    }

    #[test]
    fn a_week_from_a_tuesday_skips_the_weekend() {
        let home = LatLon { lat: 45.76, lon: 4.83 };
        // Tuesday 1 December 2026, five working days: Tuesday to the next Monday.
        let input = TeamWeekInput {
            date: LocalDate::new(2026, 12, 1),
            days: 5,
            timezone: "Europe/Paris".into(),
            reps: vec![TeamWeekRep { rep: "alice".into(), home }],
            work_start_min: 8 * 60,
            work_end_min: 18 * 60,
            travel: TravelModel::default(),
            seed: 7,
            time_limit_ms: 0,
            working_weekdays: default_working_weekdays(),
        };
        let customers: Vec<Customer> =
            (0..3).map(|i| customer(&format!("a{i}"), "alice", i as f64, 100_000.0)).collect();
        let week =
            plan_team_week(&customers, &[], &plan(), &AllocationConfig::default(), &input).expect("plan");
        let starts: Vec<i64> = week.days.iter().map(|d| d.day_start_ms).collect();
        let at_eight =
            |day: u8| local_time_ms("Europe/Paris", LocalDate::new(2026, 12, day), 8 * 60).expect("time");
        // Tuesday 1 to Friday 4, then Monday 7: no weekend.
        assert_eq!(starts, [1, 2, 3, 4, 7].map(at_eight));
        // A team that works Saturdays says so.
        let six = TeamWeekInput { working_weekdays: (1..=6).collect(), ..input };
        let week =
            plan_team_week(&customers, &[], &plan(), &AllocationConfig::default(), &six).expect("plan");
        assert_eq!(week.days.len(), 5);
        assert_eq!(week.days[4].day_start_ms - week.days[3].day_start_ms, 86_400_000, "Friday then Saturday");
    }
}
