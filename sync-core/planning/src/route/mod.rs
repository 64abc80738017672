//! Routing (the R of S.T.A.R.): a rep's ordered day route under opening hours, visit durations and day
//! length; re-planning in the middle of the day; the team's week plan; and a plain VRPTW entry ([`vrptw`])
//! so benchmarks (Solomon's, in `examples/solomon.rs`) can measure the same solver.
//!
//! # The solver, and why this one
//!
//! One vehicle-routing core with time windows (`vrp.rs`) serves all of these: nodes, a distance and a
//! travel-time matrix (Euclidean for Solomon, [`TravelModel`] for customers), jobs with several
//! windows each (a shop closed for lunch), service time, demand, must/optional and priority, and
//! vehicles (a rep-day or a truck) with start, end, shift and capacity. The objective is lexicographic:
//! serve every must job, then the most optional priority, then (Solomon) fewest vehicles, then least
//! distance.
//!
//! The search (`search.rs`) is SISR — *Slack Induction by String Removals* (Christiaens & Vanden
//! Berghe, Transportation Science 2020): ruin strings of consecutive stops near a random seed,
//! recreate by cheapest insertion with "blinks", accept by simulated annealing; for the hierarchical
//! objective, SISR's fleet minimisation (take a route out, ruin and recreate until its stops fit
//! elsewhere, guided by absence counters) runs first. An insertion is checked in O(windows) from
//! cached earliest departures and latest arrivals (forward time slack), also with several windows per
//! stop. Re-planning starts from the current order and uses 2-opt / or-opt / relocate / swap-in local
//! search around a short ruin-and-recreate.
//!
//! Chosen by measurement against `vrp-core` 1.25 (reinterpretcat/vrp, the most complete Rust VRP
//! library, default configuration, both cores through its rayon pool), on the six Solomon instances
//! in `shared/data/solomon`, 10 s each on the shared 2-core machine (loaded by other builds in both
//! cases), hierarchical objective, vehicles/distance (gap to the best-known distance):
//!
//! | inst. | best known   | vrp-core 1.25        | this module (2 seeds, 1 thread each) |
//! |-------|--------------|----------------------|--------------------------------------|
//! | C101  | 10 / 828.94  | 10 / 828.94          | 10 / 828.94                          |
//! | C201  | 3 / 591.56   | 3 / 591.56           | 3 / 591.56                           |
//! | R101  | 19 / 1650.80 | 19 / 1722.66 (+4.4%) | 19 / 1655–1661 (+0.3–0.6%)           |
//! | R201  | 4 / 1252.37  | 4 / 1317.37 (+5.2%)  | 4 / 1252.37 (0.0%)                   |
//! | RC101 | 14 / 1696.95 | 16 / 1707.20         | 15 / 1640–1650 (a 3 s run: 14 / 1696.95)|
//! | RC201 | 4 / 1406.94  | 4 / 1559.90 (+10.9%) | 4 / 1415.00 (+0.6%)                  |
//!
//! `vrp-core` would also bring rayon, rosomaxa, rand 0.8 (a second `rand`) and a ~4 minute release
//! build on two cores into a library that ships on phones, with a thread pool we do not control. This
//! module adds no dependency but `jiff` (time zones, see `tz.rs`), is single-threaded and
//! deterministic for a seed (callers may run seeds in parallel, as `examples/solomon.rs` does), and
//! never panics on input.
//!
//! Time limits: every search runs for an iteration budget. A request's `time_limit_ms > 0` asks for a
//! wall-clock cap on top, which the *caller* builds as a [`Deadline`] over its own clock and passes
//! to the `*_until` form ([`plan_day_until`], [`replan_until`], [`plan_week_until`]); nothing here
//! reads a clock. The plain forms ([`plan_day`], [`replan`], [`plan_week`]) take no deadline. With no
//! deadline, or when it is not reached, results are a pure function of the request and its seed.

mod search;
mod tz;
mod vrp;
pub mod vrptw;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

pub use tz::{LocalDate, local_time_ms, opening_windows, opening_windows_for_days};

use self::search::{Budget, Params, anneal, eval_seq, local_search, recreate};
use self::vrp::{Job, NONE, Problem, Sol, Vehicle, normalise_windows, service_start};
use super::{MAX_REP_DAYS, MAX_REPS, MAX_TIME_LIMIT_MS, OutOfBounds, TravelModel};
use crate::deadline::Deadline;
use crate::rng::Rng;
use fieldsync_core::geo::LatLon;

/// Most nodes (stops plus distinct rep locations) in one request: the matrices are n² doubles.
pub const MAX_NODES: usize = 1500;

#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum RouteError {
    #[error("invalid request field {field}: {reason}")]
    InvalidRequest { field: String, reason: String },
    #[error("stop id {0:?} appears more than once")]
    DuplicateStop(String),
    #[error("unknown time zone {0:?}")]
    UnknownTimeZone(String),
    #[error("invalid date: {0}")]
    InvalidDate(String),
    #[error("too large: {nodes} nodes, at most {max}")]
    TooLarge { nodes: usize, max: usize },
    #[error("line {line}: {reason}")]
    Parse { line: usize, reason: String },
}

impl From<OutOfBounds> for RouteError {
    fn from(e: OutOfBounds) -> Self {
        RouteError::InvalidRequest { field: e.field, reason: e.reason }
    }
}

fn check_time_limit(ms: u64) -> Result<(), RouteError> {
    if ms > MAX_TIME_LIMIT_MS {
        return Err(invalid("time_limit_ms", format!("must be at most {MAX_TIME_LIMIT_MS}")));
    }
    Ok(())
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> RouteError {
    RouteError::InvalidRequest { field: field.into(), reason: reason.into() }
}

/// A stop to visit today.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteStop {
    pub id: String,
    pub location: LatLon,
    /// When the customer can be visited, absolute epoch ms (from [`opening_windows`]); several per
    /// day allowed (closed for lunch). The whole visit (`service_s`) fits inside one window.
    pub windows: Vec<(i64, i64)>,
    /// Visit duration.
    pub service_s: u32,
    /// Must be visited today (dropped only if impossible, with the reason).
    pub must: bool,
    /// For optional stops: what serving it is worth (e.g. tier weight × overdue days); ≥ 0.
    pub priority: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayRouteRequest {
    pub start: LatLon,
    pub end: LatLon,
    /// Earliest departure from `start`.
    pub day_start_ms: i64,
    /// Latest arrival at `end`.
    pub day_end_ms: i64,
    pub stops: Vec<RouteStop>,
    pub travel: TravelModel,
    pub seed: u64,
    /// Wall-clock cap on the search; 0 = none (the iteration budget alone, fully deterministic).
    /// Validated here; the caller turns it into a [`Deadline`] (see the module docs).
    pub time_limit_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStop {
    pub id: String,
    pub arrival_ms: i64,
    /// Service start (≥ arrival: waiting for the opening), within one of the stop's windows.
    pub start_ms: i64,
    pub depart_ms: i64,
    pub travel_m_from_prev: f64,
}

/// Why a stop is not in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum DropReason {
    /// Bad data (location, priority, a window ending before it starts).
    InvalidStop { detail: String },
    /// No opening window during the working day (or any working day of the plan) that is long
    /// enough for the visit.
    ClosedAllDay,
    /// Open during the day, but no window can be reached in time even going there directly.
    WindowUnreachable,
    /// Reachable, but the visit and the way home do not fit before the end of the day.
    DayTooShort,
    /// A must stop that fits alone but not together with the other must stops.
    DayFull,
    /// An optional stop left out for must stops or a higher total priority.
    LowerPriority,
    /// No rep of the plan may visit it (week plans).
    NoEligibleRep,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DroppedStop {
    pub id: String,
    pub reason: DropReason,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayRoute {
    /// When to leave the start: as late as possible without changing any service start.
    pub leave_ms: i64,
    pub stops: Vec<PlannedStop>,
    pub total_travel_m: f64,
    pub total_travel_s: f64,
    /// Arrival at the end location.
    pub end_ms: i64,
    pub dropped: Vec<DroppedStop>,
}

/// A rep's availability over the week.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepWeek {
    pub rep: String,
    pub start: LatLon,
    pub end: LatLon,
    /// Working days as (day start, day end), epoch ms.
    pub days: Vec<(i64, i64)>,
}

/// A due visit for the week plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeekStop {
    pub id: String,
    pub location: LatLon,
    /// Windows over the whole week (e.g. [`opening_windows_for_days`]).
    pub windows: Vec<(i64, i64)>,
    pub service_s: u32,
    pub must: bool,
    pub priority: f64,
    /// Reps who may visit it; empty = any.
    pub reps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeekPlanRequest {
    pub reps: Vec<RepWeek>,
    pub stops: Vec<WeekStop>,
    pub travel: TravelModel,
    pub seed: u64,
    /// Wall-clock cap; 0 = none. Validated here; the caller turns it into a [`Deadline`].
    pub time_limit_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepDay {
    pub rep: String,
    pub day_start_ms: i64,
    pub route: DayRoute,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeekPlan {
    /// One entry per rep and working day, in request order (days with no visit included).
    pub days: Vec<RepDay>,
    pub unassigned: Vec<DroppedStop>,
}

// --- building the model -------------------------------------------------------------------------

/// Served optional stops are worth their priority plus this, so that among equal priorities more
/// stops are better, and a priority-0 stop is still visited when it costs nothing else.
const SERVED_BONUS: f64 = 1e-3;

struct StopIn<'a> {
    id: &'a str,
    location: LatLon,
    windows: &'a [(i64, i64)],
    service_s: u32,
    must: bool,
    priority: f64,
    /// Vehicles allowed (None = all).
    allowed: Option<Vec<bool>>,
}

struct VehicleIn {
    start: LatLon,
    end: LatLon,
    shift: (i64, i64),
}

struct Model {
    p: Problem,
    /// Time origin: times in the model are ms after it.
    origin: i64,
    /// job → index of its stop in the input.
    job_stop: Vec<usize>,
    dropped: Vec<(usize, DropReason)>,
}

fn check_travel(t: &TravelModel) -> Result<(), RouteError> {
    if !(t.speed_kmh.is_finite() && t.speed_kmh > 0.0) {
        return Err(invalid("travel.speed_kmh", "must be a positive number"));
    }
    if !(t.detour_factor.is_finite() && t.detour_factor > 0.0) {
        return Err(invalid("travel.detour_factor", "must be a positive number"));
    }
    Ok(())
}

fn check_point(field: &str, p: LatLon) -> Result<LatLon, RouteError> {
    LatLon::new(p.lat, p.lon).map_err(|e| invalid(field, e.to_string()))
}

fn rel(ms: i64, origin: i64) -> f64 {
    ms.saturating_sub(origin) as f64
}

fn build(vehicles: &[VehicleIn], stops: &[StopIn<'_>], travel: TravelModel) -> Result<Model, RouteError> {
    check_travel(&travel)?;
    let mut seen = HashSet::new();
    for s in stops {
        if !seen.insert(s.id) {
            return Err(RouteError::DuplicateStop(s.id.to_owned()));
        }
    }
    if vehicles.len() > MAX_NODES {
        return Err(RouteError::TooLarge { nodes: vehicles.len(), max: MAX_NODES });
    }
    let origin = vehicles.iter().map(|v| v.shift.0).min().unwrap_or(0);
    // Nodes: distinct vehicle locations first, then one per plannable stop.
    let mut locations: Vec<LatLon> = Vec::new();
    let node_of = |p: LatLon, locations: &mut Vec<LatLon>| -> u32 {
        match locations.iter().position(|q| *q == p) {
            Some(i) => i as u32,
            None => {
                locations.push(p);
                (locations.len() - 1) as u32
            }
        }
    };
    let mut vs = Vec::with_capacity(vehicles.len());
    for v in vehicles {
        let start = node_of(v.start, &mut locations);
        let end = node_of(v.end, &mut locations);
        vs.push(Vehicle {
            start,
            end,
            shift: (rel(v.shift.0, origin), rel(v.shift.1, origin)),
            capacity: i64::MAX,
            class: 0,
        });
    }
    let n_fixed = locations.len();
    let mut dropped = Vec::new();
    let mut accepted: Vec<(usize, Vec<(f64, f64)>)> = Vec::new();
    for (i, s) in stops.iter().enumerate() {
        let detail = if LatLon::new(s.location.lat, s.location.lon).is_err() {
            Some(format!("location {:?} is not a valid coordinate", (s.location.lat, s.location.lon)))
        } else if !(s.priority.is_finite() && s.priority >= 0.0) {
            Some(format!("priority {} must be a finite number >= 0", s.priority))
        } else {
            s.windows.iter().find(|w| w.0 > w.1).map(|w| format!("window {w:?} ends before it starts"))
        };
        if let Some(detail) = detail {
            dropped.push((i, DropReason::InvalidStop { detail }));
            continue;
        }
        let allowed = |v: usize| s.allowed.as_ref().is_none_or(|a| a.get(v).copied().unwrap_or(false));
        if !(0..vehicles.len()).any(allowed) {
            dropped.push((i, DropReason::NoEligibleRep));
            continue;
        }
        // The whole visit happens while the customer is open: service starts by close − service.
        let service_ms = i64::from(s.service_s) * 1000;
        let starts: Vec<(i64, i64)> = s
            .windows
            .iter()
            .map(|&(a, b)| (a, b.saturating_sub(service_ms)))
            .filter(|&(a, b)| a <= b)
            .filter(|&(a, b)| {
                (0..vehicles.len())
                    .any(|v| allowed(v) && a <= vehicles[v].shift.1 && b >= vehicles[v].shift.0)
            })
            .collect();
        if starts.is_empty() {
            dropped.push((i, DropReason::ClosedAllDay));
            continue;
        }
        let windows =
            normalise_windows(starts.iter().map(|&(a, b)| (rel(a, origin), rel(b, origin))).collect());
        accepted.push((i, windows));
    }
    let n_nodes = n_fixed + accepted.len();
    if n_nodes > MAX_NODES {
        return Err(RouteError::TooLarge { nodes: n_nodes, max: MAX_NODES });
    }
    for &(i, _) in &accepted {
        locations.push(stops[i].location);
    }
    let mut dist = vec![0.0; n_nodes * n_nodes];
    let mut time = vec![0.0; n_nodes * n_nodes];
    for a in 0..n_nodes {
        for b in a + 1..n_nodes {
            let d = travel.distance_m(locations[a], locations[b]);
            let t = (travel.travel_s(locations[a], locations[b]) * 1000.0).round();
            let (d, t) =
                if d.is_finite() && t.is_finite() { (d, t) } else { (f64::MAX / 1e6, f64::MAX / 1e6) };
            dist[a * n_nodes + b] = d;
            dist[b * n_nodes + a] = d;
            time[a * n_nodes + b] = t;
            time[b * n_nodes + a] = t;
        }
    }
    // Jobs that cannot be served even alone are classified now and kept out of the search.
    let mut jobs = Vec::new();
    let mut job_stop = Vec::new();
    for (k, (i, windows)) in accepted.into_iter().enumerate() {
        let s = &stops[i];
        let node = (n_fixed + k) as u32;
        let service = f64::from(s.service_s) * 1000.0;
        let mut reach = false;
        let mut fits = false;
        for (v, veh) in vs.iter().enumerate() {
            if s.allowed.as_ref().is_some_and(|a| !a.get(v).copied().unwrap_or(false)) {
                continue;
            }
            let arr = veh.shift.0 + time[veh.start as usize * n_nodes + node as usize];
            if let Some(st) = service_start(&windows, arr) {
                reach = true;
                if st + service + time[node as usize * n_nodes + veh.end as usize] <= veh.shift.1 {
                    fits = true;
                    break;
                }
            }
        }
        if !fits {
            dropped.push((i, if reach { DropReason::DayTooShort } else { DropReason::WindowUnreachable }));
            continue;
        }
        jobs.push(Job {
            node,
            windows,
            service,
            demand: 0,
            must: s.must,
            value: s.priority + SERVED_BONUS,
            allowed: s.allowed.clone(),
        });
        job_stop.push(i);
    }
    let p = Problem::new(n_nodes, dist, time, jobs, vs, false, true);
    Ok(Model { p, origin, job_stop, dropped })
}

impl Model {
    fn abs(&self, t: f64) -> i64 {
        self.origin.saturating_add(t as i64)
    }

    /// The schedule of route v, and the reasons for everything not served.
    fn day_route(&self, sol: &Sol, v: usize, stops: &[StopIn<'_>]) -> DayRoute {
        let p = &self.p;
        let veh = &p.vehicles[v];
        let r = &sol.routes[v];
        let mut planned = Vec::with_capacity(r.jobs.len());
        let mut t = veh.shift.0;
        let mut prev = veh.start;
        let mut total_m = 0.0;
        let mut total_ms = 0.0;
        let mut leave = veh.shift.0;
        for (k, &j) in r.jobs.iter().enumerate() {
            let job = &p.jobs[j as usize];
            let arr = t + p.t(prev, job.node);
            let start = service_start(&job.windows, arr).unwrap_or(arr);
            let (arr, start) = if k == 0 {
                // Leave later instead of waiting at the first stop.
                leave = veh.shift.0 + (start - arr);
                (start, start)
            } else {
                (arr, start)
            };
            let leg_m = p.d(prev, job.node);
            total_m += leg_m;
            total_ms += p.t(prev, job.node);
            t = start + job.service;
            planned.push(PlannedStop {
                id: stops[self.job_stop[j as usize]].id.to_owned(),
                arrival_ms: self.abs(arr),
                start_ms: self.abs(start),
                depart_ms: self.abs(t),
                travel_m_from_prev: leg_m,
            });
            prev = job.node;
        }
        total_m += p.d(prev, veh.end);
        total_ms += p.t(prev, veh.end);
        let end_ms = t + p.t(prev, veh.end);
        DayRoute {
            leave_ms: self.abs(leave),
            stops: planned,
            total_travel_m: total_m,
            total_travel_s: total_ms / 1000.0,
            end_ms: self.abs(end_ms),
            dropped: Vec::new(),
        }
    }

    fn dropped(&self, sol: &Sol, stops: &[StopIn<'_>]) -> Vec<DroppedStop> {
        let mut out: Vec<(usize, DropReason)> = self.dropped.clone();
        for &j in &sol.unassigned {
            let reason =
                if self.p.jobs[j as usize].must { DropReason::DayFull } else { DropReason::LowerPriority };
            out.push((self.job_stop[j as usize], reason));
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(i, reason)| DroppedStop { id: stops[i].id.to_owned(), reason }).collect()
    }
}

/// Iterations for n jobs (the search converges long before on day-sized problems).
/// Measured on 25-stop days: the served priority stops improving at about 4 000 iterations.
fn iterations(n: usize) -> u64 {
    (1_000 + 120 * n as u64).min(200_000)
}

/// The routing searches' generator for a seed (the salt keeps their streams apart from the areas').
pub(crate) fn route_rng(seed: u64) -> Rng {
    Rng::new(seed ^ 0x5DEE_CE66_D1CE_5EED)
}

fn solve_model(m: &Model, seed: u64, deadline: Option<Deadline<'_>>) -> Sol {
    let p = &m.p;
    let mut rng = route_rng(seed);
    let mut sol = Sol::empty(p);
    recreate(p, &mut sol, &mut rng, 0.0, true);
    if p.jobs.is_empty() {
        return sol;
    }
    let budget = Budget::new(iterations(p.jobs.len()), deadline);
    let (mut best, _) = anneal(p, sol, &mut rng, &budget, &Params::default());
    if p.jobs.len() <= 60 {
        local_search(p, &mut best, &mut rng, 20);
    }
    best
}

fn day_inputs(req: &DayRouteRequest) -> Vec<StopIn<'_>> {
    req.stops
        .iter()
        .map(|s| StopIn {
            id: &s.id,
            location: s.location,
            windows: &s.windows,
            service_s: s.service_s,
            must: s.must,
            priority: s.priority,
            allowed: None,
        })
        .collect()
}

fn check_day(req: &DayRouteRequest) -> Result<(), RouteError> {
    check_point("start", req.start)?;
    check_point("end", req.end)?;
    req.travel.validate()?;
    check_time_limit(req.time_limit_ms)?;
    if req.day_end_ms < req.day_start_ms {
        return Err(invalid("day_end_ms", "is before day_start_ms"));
    }
    Ok(())
}

/// Plans a rep's day: which stops, in which order, at what times. No deadline: the iteration budget
/// alone (see [`plan_day_until`]).
pub fn plan_day(req: &DayRouteRequest) -> Result<DayRoute, RouteError> {
    plan_day_until(req, None)
}

/// [`plan_day`], stopping early at `deadline` (the caller builds it from `req.time_limit_ms`).
pub fn plan_day_until(req: &DayRouteRequest, deadline: Option<Deadline<'_>>) -> Result<DayRoute, RouteError> {
    check_day(req)?;
    let stops = day_inputs(req);
    let vehicle = VehicleIn { start: req.start, end: req.end, shift: (req.day_start_ms, req.day_end_ms) };
    let m = build(&[vehicle], &stops, req.travel)?;
    let sol = solve_model(&m, req.seed, deadline);
    let mut route = m.day_route(&sol, 0, &stops);
    route.dropped = m.dropped(&sol, &stops);
    Ok(route)
}

/// Re-plans the rest of the day from where the rep is (`position` at `now_ms`), without the stops in
/// `done`, keeping to the current order where it still works. Stops of `req` not in `route` (added or
/// dropped before) are fitted in if they can be. Fast: local search and a short ruin-and-recreate
/// (a few milliseconds for a day's worth of stops). The result lists only the remaining stops.
pub fn replan(
    route: &DayRoute,
    now_ms: i64,
    position: LatLon,
    done: &[String],
    req: &DayRouteRequest,
) -> Result<DayRoute, RouteError> {
    replan_until(route, now_ms, position, done, req, None)
}

/// [`replan`], stopping early at `deadline` (the caller builds it from `req.time_limit_ms`).
pub fn replan_until(
    route: &DayRoute,
    now_ms: i64,
    position: LatLon,
    done: &[String],
    req: &DayRouteRequest,
    deadline: Option<Deadline<'_>>,
) -> Result<DayRoute, RouteError> {
    check_day(req)?;
    check_point("position", position)?;
    let done: HashSet<&str> = done.iter().map(String::as_str).collect();
    let remaining: Vec<RouteStop> =
        req.stops.iter().filter(|s| !done.contains(s.id.as_str())).cloned().collect();
    let sub = DayRouteRequest { stops: remaining, ..req.clone() };
    let stops = day_inputs(&sub);
    // Past the end of the day the shift is empty and every stop is dropped as `DayTooShort`.
    let shift = (now_ms.max(req.day_start_ms), req.day_end_ms);
    let vehicle = VehicleIn { start: position, end: req.end, shift };
    let m = build(&[vehicle], &stops, req.travel)?;
    let p = &m.p;
    let mut rng = route_rng(req.seed ^ 0x7265_706c_616e);
    // Keep the planned order for what still fits.
    let job_of: HashMap<&str, u32> =
        m.job_stop.iter().enumerate().map(|(j, &i)| (stops[i].id, j as u32)).collect();
    let mut sol = Sol::empty(p);
    for ps in &route.stops {
        let Some(&j) = job_of.get(ps.id.as_str()) else { continue };
        if sol.route_of[j as usize] != NONE {
            continue;
        }
        let r = &sol.routes[0];
        let mut seq = r.jobs.clone();
        seq.push(j);
        if eval_seq(p, 0, &seq).is_some() {
            let pos = r.jobs.len() + 1;
            if sol.insert(p, j, 0, pos) {
                sol.unassigned.retain(|&u| u != j);
            }
        }
    }
    local_search(p, &mut sol, &mut rng, 20);
    let budget = Budget::new(150 + 6 * p.jobs.len() as u64, deadline);
    let (mut best, _) = anneal(p, sol, &mut rng, &budget, &Params::default());
    local_search(p, &mut best, &mut rng, 20);
    let mut out = m.day_route(&best, 0, &stops);
    out.dropped = m.dropped(&best, &stops);
    Ok(out)
}

/// Plans the team's week: due visits spread over reps and their working days (a VRPTW with one
/// vehicle per rep-day, each from the rep's own start location). No deadline: the iteration budget
/// alone (see [`plan_week_until`]).
pub fn plan_week(req: &WeekPlanRequest) -> Result<WeekPlan, RouteError> {
    plan_week_until(req, None)
}

/// [`plan_week`], stopping early at `deadline` (the caller builds it from `req.time_limit_ms`).
pub fn plan_week_until(
    req: &WeekPlanRequest,
    deadline: Option<Deadline<'_>>,
) -> Result<WeekPlan, RouteError> {
    req.travel.validate()?;
    check_time_limit(req.time_limit_ms)?;
    if req.reps.len() > MAX_REPS {
        return Err(invalid("reps", format!("at most {MAX_REPS} reps")));
    }
    let rep_days: usize = req.reps.iter().map(|r| r.days.len()).sum();
    if rep_days > MAX_REP_DAYS {
        return Err(invalid("reps[].days", format!("at most {MAX_REP_DAYS} rep-days in all")));
    }
    let mut vehicles = Vec::new();
    let mut owners = Vec::new();
    for (r, rep) in req.reps.iter().enumerate() {
        check_point(&format!("reps[{r}].start"), rep.start)?;
        check_point(&format!("reps[{r}].end"), rep.end)?;
        for (d, &(a, b)) in rep.days.iter().enumerate() {
            if b < a {
                return Err(invalid(format!("reps[{r}].days[{d}]"), "ends before it starts"));
            }
            vehicles.push(VehicleIn { start: rep.start, end: rep.end, shift: (a, b) });
            owners.push(r);
        }
    }
    let stops: Vec<StopIn<'_>> = req
        .stops
        .iter()
        .map(|s| StopIn {
            id: &s.id,
            location: s.location,
            windows: &s.windows,
            service_s: s.service_s,
            must: s.must,
            priority: s.priority,
            allowed: if s.reps.is_empty() {
                None
            } else {
                Some(owners.iter().map(|&r| s.reps.iter().any(|x| *x == req.reps[r].rep)).collect())
            },
        })
        .collect();
    let m = build(&vehicles, &stops, req.travel)?;
    let sol = solve_model(&m, req.seed, deadline);
    let days = (0..vehicles.len())
        .map(|v| RepDay {
            rep: req.reps[owners[v]].rep.clone(),
            day_start_ms: vehicles[v].shift.0,
            route: m.day_route(&sol, v, &stops),
        })
        .collect();
    Ok(WeekPlan { days, unassigned: m.dropped(&sol, &stops) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_window_latest_arrival_is_consistent_with_forward_simulation() {
        let stops = [StopIn {
            id: "a",
            location: LatLon { lat: 48.85, lon: 2.35 },
            windows: &[(0, 10_000), (20_000, 30_000)],
            service_s: 5,
            must: true,
            priority: 0.0,
            allowed: None,
        }];
        let v = VehicleIn {
            start: LatLon { lat: 48.85, lon: 2.35 },
            end: LatLon { lat: 48.85, lon: 2.35 },
            shift: (12_000, 100_000),
        };
        let m = build(&[v], &stops, TravelModel::default()).expect("model");
        let sol = solve_model(&m, 1, None);
        assert!(sol.valid(&m.p));
        assert_eq!(sol.routes[0].jobs, vec![0]);
        assert_eq!(sol.routes[0].dep[1], 20_000.0 - 12_000.0 + 5_000.0);
    }
}
