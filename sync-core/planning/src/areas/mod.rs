//! Compact sub-areas of a rep's customers (片区), and balanced territory design for a team.
//!
//! Both are the same problem at two scales: split a set of customers into `k` groups that are
//! **balanced** (workload; for territories also potential) and **compact** (short drives inside a
//! group). Pure functions: the seed is passed in, nothing reads a clock, the same input and seed give
//! the same output on the phone and on the server.
//!
//! # Workload
//!
//! A customer needs `rotation_days / cadence_days(tier)` visits per rotation (A every 7 days → 4
//! visits in 28 days). Its workload is visits × (visit minutes of the tier + travel per visit), and
//! a group's workload is the sum over its customers. Travel per visit is one leg of a day's route
//! through the customers around it: areas are worked one day a week, so a day's stops are the
//! rotation's visits / weeks, and a route through stops of density δ has legs of about 0.7124/√δ
//! (Beardwood–Halton–Hammersley), the density being measured over the customer's 8 nearest
//! neighbours, through the [`TravelModel`] (detour factor, speed). Downtown customers cost little
//! travel, remote ones a lot. Driving from home to the area is not counted: it depends on who works
//! it, which sub-areas do not know.
//!
//! # Algorithm
//!
//! 1. **Seeding**: k-means++ with the seed (centres drawn ∝ workload × squared distance), a few
//!    seeds (`restarts`) tried, the best kept.
//! 2. **Balanced k-means**: Lloyd iterations where customers are assigned in order of regret to the
//!    nearest centre that still has capacity (mean workload × (1 + tolerance/2)).
//! 3. **Boundary moves, for balance** (skipped if the start is already within the tolerance): local
//!    search that relocates a customer to a neighbouring group (one that holds one of its 8 nearest
//!    customers, or one of the 2 nearest other centroids) or swaps two neighbouring customers across
//!    a boundary, accepting a move when it lowers `pressure × imbalance + compactness (+
//!    continuity)`, imbalance being Σ (workload/mean − 1)² (and the same for potential),
//!    compactness the within-group share of the visit-weighted inertia (the k-means criterion).
//!    Every move is evaluated exactly in O(1) from each group's running sums. At a local optimum
//!    outside the tolerance the pressure is raised ×4 and the search goes on, until the tolerance
//!    is met or nothing improves (at most `max_iterations` sweeps).
//! 4. **Boundary moves, for compactness**: the same moves, now judged on compactness (and
//!    continuity) alone and only allowed while max/min stays within the tolerance: the result is
//!    as compact as the requested balance allows, so balances usually end close to the tolerance
//!    rather than far below it (at most `max_iterations` sweeps again).
//!
//! Among the starts, a result within the tolerance wins over one that is not, then the more compact
//! one (with continuity), then the earlier.
//!
//! For territories, today's ownership is one more starting point (`warm_start`), a continuity term
//! charges every customer taken from its current rep, and groups are given to reps by an optimal
//! assignment (Hungarian method, any team size) minimising the distance from the rep's home to the
//! territory centroid plus `move_penalty_km` per customer who changes rep. A design computed on an
//! already balanced team therefore moves (almost) nobody.
//!
//! Customers whose location is missing, not finite, out of range or in an unknown datum are not
//! placed: they are listed in `unplaced` and keep their owner. GCJ-02 locations are converted to
//! WGS-84 first.

mod engine;
mod geom;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use self::engine::{Engine, Item, Problem, Solution, Weights};
use self::geom::{Projection, convex_hull};
use super::{
    MAX_AREAS, MAX_ITERATIONS, MAX_MOVE_PENALTY_KM, MAX_REPS, MAX_RESTARTS, MAX_TOLERANCE, MAX_WEIGHT,
    OutOfBounds, TravelModel,
};
use crate::rng::Rng;
use fieldsync_core::docs::{Cadence, Customer, LatLonPoint, SubArea, Territory, Tier};
use fieldsync_core::geo::{LatLon, distance_m, to_wgs84};

// --- configuration -------------------------------------------------------------------------------

/// Minutes spent at the customer per visit, by tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitMinutes {
    pub a: f64,
    pub b: f64,
    pub c: f64,
}

impl Default for VisitMinutes {
    fn default() -> Self {
        VisitMinutes { a: 45.0, b: 30.0, c: 20.0 }
    }
}

/// How much work a customer is: visits per rotation (by cadence) × (visit minutes + travel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadModel {
    /// Days between visits, by tier (usually the team plan's cadence).
    pub cadence: Cadence,
    pub visit_minutes: VisitMinutes,
    pub travel: TravelModel,
    /// The period workloads are counted over (28: four weeks).
    pub rotation_days: u32,
    /// Tier assumed for customers without one.
    pub untiered: Tier,
}

impl Default for WorkloadModel {
    fn default() -> Self {
        WorkloadModel {
            cadence: Cadence { a_days: 7, b_days: 14, c_days: 28 },
            visit_minutes: VisitMinutes::default(),
            travel: TravelModel::default(),
            rotation_days: 28,
            untiered: Tier::C,
        }
    }
}

impl WorkloadModel {
    fn tier(&self, tier: Option<Tier>) -> Tier {
        tier.unwrap_or(self.untiered)
    }

    /// Visits per rotation for a customer of this tier (fractional: C every 28 days in a 14-day
    /// rotation is half a visit).
    pub fn visits_per_rotation(&self, tier: Option<Tier>) -> f64 {
        let days = match self.tier(tier) {
            Tier::A => self.cadence.a_days,
            Tier::B => self.cadence.b_days,
            Tier::C => self.cadence.c_days,
        };
        f64::from(self.rotation_days) / f64::from(days.max(1))
    }

    pub fn visit_minutes(&self, tier: Option<Tier>) -> f64 {
        match self.tier(tier) {
            Tier::A => self.visit_minutes.a,
            Tier::B => self.visit_minutes.b,
            Tier::C => self.visit_minutes.c,
        }
    }

    /// Travel minutes per km of straight-line distance.
    fn minutes_per_km(&self) -> f64 {
        self.travel.detour_factor * 60.0 / self.travel.speed_kmh
    }

    /// Weeks per rotation: how many times an area worked one day a week is visited.
    fn weeks(&self) -> f64 {
        f64::from(self.rotation_days) / 7.0
    }

    fn validate(&self) -> Result<(), AreaError> {
        let c = &self.cadence;
        if [c.a_days, c.b_days, c.c_days].iter().any(|d| !(1..=366).contains(d)) {
            return Err(invalid("cadence", "days must be within 1..=366"));
        }
        if !(1..=366).contains(&self.rotation_days) {
            return Err(invalid("rotation_days", "must be within 1..=366"));
        }
        let v = &self.visit_minutes;
        if [v.a, v.b, v.c].iter().any(|m| !(m.is_finite() && (0.0..=1440.0).contains(m))) {
            return Err(invalid("visit_minutes", "must be within 0..=1440"));
        }
        self.travel.validate()?;
        Ok(())
    }
}

/// How sub-areas are named, in rotation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AreaNaming {
    /// "Monday" … "Sunday" (falls back to "Area n" beyond seven).
    Weekdays,
    /// "Week 1", "Week 2", …
    Weeks,
    /// "Area 1", "Area 2", …
    Numbered,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AreaConfig {
    pub workload: WorkloadModel,
    /// Target balance: max/min workload ≤ 1 + tolerance.
    pub tolerance: f64,
    /// Weight of compactness against balance (0: balance only).
    pub compactness_weight: f64,
    /// Maximum local-search sweeps (each tries every customer once).
    pub max_iterations: u32,
    /// Number of k-means++ seedings tried; the best result is kept.
    pub restarts: u32,
    pub naming: AreaNaming,
}

impl AreaConfig {
    /// Every knob within its bound (see [`crate`]'s constants): what a request may ask of
    /// [`sub_areas`] before any work is done. `sub_areas` checks it too.
    pub fn validate(&self) -> Result<(), AreaError> {
        self.workload.validate()?;
        check_bounded("tolerance", self.tolerance, MAX_TOLERANCE)?;
        check_bounded("compactness_weight", self.compactness_weight, MAX_WEIGHT)?;
        check_effort(self.max_iterations, self.restarts)
    }
}

impl Default for AreaConfig {
    fn default() -> Self {
        AreaConfig {
            workload: WorkloadModel::default(),
            tolerance: 0.10,
            compactness_weight: 1.0,
            max_iterations: 200,
            restarts: 4,
            naming: AreaNaming::Weekdays,
        }
    }
}

/// Relative weights of the territory design objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesignWeights {
    /// Σ (workload / mean − 1)² over territories.
    pub workload: f64,
    /// Σ (potential / mean − 1)² over territories (0: potential is not balanced nor checked).
    pub potential: f64,
    /// Within-territory inertia / total inertia (the k-means criterion, 0..1).
    pub compactness: f64,
    /// Share of customers taken from their current rep. With the defaults, moving 10 % of the
    /// customers is worth 0.02 of compactness (e.g. within-territory inertia from 10 % to 8 % of the
    /// total): a redesign keeps today's owners unless the territories are clearly untidy.
    pub continuity: f64,
}

impl Default for DesignWeights {
    fn default() -> Self {
        DesignWeights { workload: 1.0, potential: 1.0, compactness: 1.0, continuity: 0.2 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerritoryConfig {
    pub workload: WorkloadModel,
    /// max/min ≤ 1 + tolerance, on workload and on potential.
    pub tolerance: f64,
    pub weights: DesignWeights,
    /// Maximum local-search sweeps per start.
    pub max_iterations: u32,
    /// Number of k-means++ seedings tried besides today's assignment.
    pub restarts: u32,
    /// Start from today's owners too (when at least half of the customers have one among the reps).
    pub warm_start: bool,
    /// In the rep assignment, one customer changing rep costs as much as this many km between the
    /// rep's home and the territory centroid.
    pub move_penalty_km: f64,
}

impl TerritoryConfig {
    /// Every knob within its bound, checked by [`design_territories`] before any work is done.
    pub fn validate(&self) -> Result<(), AreaError> {
        self.workload.validate()?;
        check_bounded("tolerance", self.tolerance, MAX_TOLERANCE)?;
        check_bounded("move_penalty_km", self.move_penalty_km, MAX_MOVE_PENALTY_KM)?;
        let w = &self.weights;
        for (field, v) in [
            ("weights.workload", w.workload),
            ("weights.potential", w.potential),
            ("weights.compactness", w.compactness),
            ("weights.continuity", w.continuity),
        ] {
            check_bounded(field, v, MAX_WEIGHT)?;
        }
        check_effort(self.max_iterations, self.restarts)
    }
}

impl Default for TerritoryConfig {
    fn default() -> Self {
        TerritoryConfig {
            workload: WorkloadModel::default(),
            tolerance: 0.15,
            weights: DesignWeights::default(),
            max_iterations: 200,
            restarts: 2,
            warm_start: true,
            move_penalty_km: 0.25,
        }
    }
}

/// A rep of the team and where their day starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepBase {
    pub rep: String,
    pub home: LatLon,
}

// --- results ---------------------------------------------------------------------------------------

/// A customer left out because its location cannot be used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unplaced {
    pub customer_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AreaResult {
    /// "area-1" …, in rotation order.
    pub id: String,
    pub name: String,
    /// In input order.
    pub customer_ids: Vec<String>,
    /// Visit-weighted centroid (WGS-84).
    pub centroid: LatLon,
    /// Minutes per rotation, travel included.
    pub workload_min: f64,
    /// The travel part of `workload_min`.
    pub travel_min: f64,
    /// Visits per rotation.
    pub visits: f64,
    /// Distance from the centroid to the farthest customer.
    pub radius_km: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubAreaPlan {
    /// Ordered clockwise around the rep's customers (from north), so consecutive days are
    /// neighbouring areas.
    pub areas: Vec<AreaResult>,
    /// max/min workload (1 = perfect; infinite if some area has no workload while another has).
    pub balance: f64,
    pub within_tolerance: bool,
    /// Σ distance from each customer to its area's centroid, km.
    pub compactness_km: f64,
    /// The same, per customer.
    pub mean_distance_km: f64,
    /// Share of customers whose own area's centroid is the nearest centroid.
    pub nearest_centroid_share: f64,
    pub unplaced: Vec<Unplaced>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerritoryResult {
    pub rep: String,
    /// `territory-{rep}`; what [`apply_design`] writes into `Customer::territory`.
    pub territory_id: String,
    /// In input order.
    pub customer_ids: Vec<String>,
    /// Minutes per rotation, travel included.
    pub workload_min: f64,
    pub travel_min: f64,
    pub visits: f64,
    /// Σ potential_value (non-finite or negative values count as 0).
    pub potential: f64,
    /// Visit-weighted centroid (WGS-84).
    pub centroid: LatLon,
    /// Convex hull of the customers, counter-clockwise, open ring (WGS-84). One or two points when
    /// the customers are all at one place or on a line.
    pub hull: Vec<LatLon>,
    /// Straight-line distance from the rep's home to the centroid.
    pub home_distance_km: f64,
}

/// A customer whose owner changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub customer_id: String,
    pub from: Option<String>,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerritoryDesign {
    /// One per rep, in the order of `reps`.
    pub territories: Vec<TerritoryResult>,
    /// max/min workload.
    pub workload_balance: f64,
    /// max/min potential.
    pub potential_balance: f64,
    /// Every placed customer whose owner_rep is not its territory's rep, in input order.
    pub moves: Vec<Move>,
    /// Both balances within 1 + tolerance (potential only when its weight is positive and some
    /// customer has potential).
    pub within_tolerance: bool,
    /// Σ distance from each customer to its territory's centroid, km.
    pub compactness_km: f64,
    pub nearest_centroid_share: f64,
    pub unplaced: Vec<Unplaced>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AreaError {
    #[error("no customer with a usable location")]
    NoCustomers,
    #[error("at least one area is needed")]
    NoAreas,
    #[error("{areas} areas cannot be made from {customers} located customers")]
    TooManyAreas { areas: usize, customers: usize },
    #[error("no reps to design territories for")]
    NoReps,
    #[error("customer {0:?} appears more than once")]
    DuplicateCustomer(String),
    #[error("rep {0:?} appears more than once")]
    DuplicateRep(String),
    #[error("rep {rep:?} has an unusable home location: {reason}")]
    InvalidRepHome { rep: String, reason: String },
    #[error("invalid configuration {field}: {reason}")]
    InvalidConfig { field: String, reason: String },
}

fn invalid(field: &str, reason: &str) -> AreaError {
    AreaError::InvalidConfig { field: field.to_string(), reason: reason.to_string() }
}

impl From<OutOfBounds> for AreaError {
    fn from(e: OutOfBounds) -> Self {
        AreaError::InvalidConfig { field: e.field, reason: e.reason }
    }
}

fn check_bounded(field: &str, v: f64, max: f64) -> Result<(), AreaError> {
    if v.is_finite() && (0.0..=max).contains(&v) {
        Ok(())
    } else {
        Err(AreaError::InvalidConfig {
            field: field.to_string(),
            reason: format!("must be within 0..={max}"),
        })
    }
}

fn check_effort(max_iterations: u32, restarts: u32) -> Result<(), AreaError> {
    if max_iterations > MAX_ITERATIONS {
        return Err(AreaError::InvalidConfig {
            field: "max_iterations".into(),
            reason: format!("must be at most {MAX_ITERATIONS}"),
        });
    }
    if restarts > MAX_RESTARTS {
        return Err(AreaError::InvalidConfig {
            field: "restarts".into(),
            reason: format!("must be at most {MAX_RESTARTS}"),
        });
    }
    Ok(())
}

// --- shared preparation --------------------------------------------------------------------------

/// The customers that can be placed, projected.
#[derive(Debug)]
struct Prepared {
    /// Index into the input slice, per item.
    index: Vec<usize>,
    /// WGS-84 location, per item.
    wgs: Vec<LatLon>,
    items: Vec<Item>,
    proj: Projection,
    unplaced: Vec<Unplaced>,
}

fn prepare(
    customers: &[Customer],
    model: &WorkloadModel,
    owner_index: impl Fn(&Customer) -> Option<usize>,
) -> Result<Prepared, AreaError> {
    let mut seen = BTreeSet::new();
    let mut index = Vec::with_capacity(customers.len());
    let mut wgs = Vec::with_capacity(customers.len());
    let mut unplaced = Vec::new();
    for (i, c) in customers.iter().enumerate() {
        if !seen.insert(c.id.as_str()) {
            return Err(AreaError::DuplicateCustomer(c.id.clone()));
        }
        match c.location.parsed("location") {
            Ok((p, datum)) => {
                let w = to_wgs84(p, datum);
                if w.lat.is_finite() && w.lon.is_finite() {
                    index.push(i);
                    wgs.push(w);
                } else {
                    unplaced.push(Unplaced {
                        customer_id: c.id.clone(),
                        reason: "datum conversion failed".into(),
                    });
                }
            }
            Err(e) => unplaced.push(Unplaced { customer_id: c.id.clone(), reason: e.to_string() }),
        }
    }
    if index.is_empty() {
        return Err(AreaError::NoCustomers);
    }
    let proj = Projection::fit(&wgs);
    let potential =
        |c: &Customer| if c.potential_value.is_finite() { c.potential_value.max(0.0) } else { 0.0 };
    let max_potential = index.iter().map(|&i| potential(&customers[i])).fold(0.0_f64, f64::max);
    let items = index
        .iter()
        .zip(&wgs)
        .map(|(&i, &p)| {
            let c = &customers[i];
            let visits = model.visits_per_rotation(c.tier);
            Item {
                xy: proj.to_xy(p),
                visits,
                fixed: visits * model.visit_minutes(c.tier),
                travel: 0.0,
                potential: if max_potential > 0.0 { potential(c) / max_potential } else { 0.0 },
                orig: owner_index(c),
            }
        })
        .collect();
    Ok(Prepared { index, wgs, items, proj, unplaced })
}

/// The best of several solutions: within tolerance first; among those, the most compact (with
/// continuity), since the tolerance is all the balance that was asked for; otherwise the lowest
/// full objective. Ties go to the earliest, so the choice is deterministic.
fn pick_best(engine: &Engine<'_>, candidates: Vec<Solution>) -> Option<Solution> {
    candidates
        .into_iter()
        .map(|s| {
            let within = engine.within_tolerance(&s);
            let score = engine.objective(&s, if within { 0.0 } else { 1.0 });
            (!within, score, s)
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map(|(_, _, s)| s)
}

/// Per group: (Σ km to the centroid, max km to the centroid, centroid).
fn group_geometry(prep: &Prepared, sol: &Solution, t: usize) -> (f64, f64, LatLon) {
    let centroid = prep.proj.to_latlon(sol.stats[t].centroid());
    let (sum, max) = sol.members(t).fold((0.0, 0.0_f64), |(s, m), i| {
        let d = distance_m(prep.wgs[i], centroid) / 1000.0;
        (s + d, m.max(d))
    });
    (sum, max, centroid)
}

// --- sub-areas --------------------------------------------------------------------------------------

/// Splits one rep's customers into `n` compact sub-areas of balanced workload, one per day (or
/// week) of the rotation. See the module documentation for the method.
///
/// Errors: no usable customer, `n == 0`, more areas than located customers, a duplicate customer
/// id, an invalid configuration. Customers with unusable locations are reported in `unplaced`.
pub fn sub_areas(
    customers: &[Customer],
    n: usize,
    cfg: &AreaConfig,
    seed: u64,
) -> Result<SubAreaPlan, AreaError> {
    cfg.validate()?;
    if n == 0 {
        return Err(AreaError::NoAreas);
    }
    if n > MAX_AREAS {
        return Err(AreaError::InvalidConfig {
            field: "n".into(),
            reason: format!("at most {MAX_AREAS} areas"),
        });
    }
    let prep = prepare(customers, &cfg.workload, |_| None)?;
    if n > prep.items.len() {
        return Err(AreaError::TooManyAreas { areas: n, customers: prep.items.len() });
    }
    let minutes_per_km = cfg.workload.minutes_per_km();
    let engine = Engine::new(Problem {
        items: &prep.items,
        k: n,
        minutes_per_km,
        weeks: cfg.workload.weeks(),
        weights: Weights {
            workload: 1.0,
            potential: 0.0,
            compactness: cfg.compactness_weight,
            continuity: 0.0,
        },
        tolerance: cfg.tolerance,
        max_sweeps: cfg.max_iterations as usize,
    });
    let mut rng = Rng::new(seed);
    let candidates = (0..cfg.restarts.max(1))
        .map(|_| {
            let mut start = Rng::new(rng.next_u64());
            let mut sol = engine.cold_start(&mut start);
            engine.optimise(&mut sol);
            sol
        })
        .collect();
    let Some(mut sol) = pick_best(&engine, candidates) else { return Err(AreaError::NoCustomers) };

    // Rotation order: clockwise from north around the visit-weighted centre of all customers.
    let all = sol.stats.iter().fold((0.0, 0.0, 0.0), |(v, x, y), s| {
        let [cx, cy] = s.centroid();
        (v + s.visits, x + s.visits * cx, y + s.visits * cy)
    });
    let centre = if all.0 > 0.0 { [all.1 / all.0, all.2 / all.0] } else { [0.0, 0.0] };
    let mut order: Vec<(f64, usize)> = sol
        .stats
        .iter()
        .enumerate()
        .map(|(t, s)| {
            let [x, y] = s.centroid();
            let bearing = (x - centre[0]).atan2(y - centre[1]);
            (if bearing < 0.0 { bearing + std::f64::consts::TAU } else { bearing }, t)
        })
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut perm = vec![0; n];
    for (rank, &(_, t)) in order.iter().enumerate() {
        perm[t] = rank;
    }
    sol.relabel(&perm);

    let mut areas = Vec::with_capacity(n);
    let mut total_km = 0.0;
    for t in 0..n {
        let (sum_km, radius_km, centroid) = group_geometry(&prep, &sol, t);
        total_km += sum_km;
        let s = &sol.stats[t];
        areas.push(AreaResult {
            id: format!("area-{}", t + 1),
            name: area_name(cfg.naming, t),
            customer_ids: sol.members(t).map(|i| customers[prep.index[i]].id.clone()).collect(),
            centroid,
            workload_min: s.workload(),
            travel_min: s.travel,
            visits: s.visits,
            radius_km,
        });
    }
    Ok(SubAreaPlan {
        balance: engine.balances(&sol).0,
        within_tolerance: engine.within_tolerance(&sol),
        compactness_km: total_km,
        mean_distance_km: total_km / prep.items.len() as f64,
        nearest_centroid_share: engine.nearest_centroid_share(&sol),
        areas,
        unplaced: prep.unplaced,
    })
}

fn area_name(naming: AreaNaming, t: usize) -> String {
    const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    match naming {
        AreaNaming::Weekdays if t < DAYS.len() => DAYS[t].to_string(),
        AreaNaming::Weeks => format!("Week {}", t + 1),
        _ => format!("Area {}", t + 1),
    }
}

/// The plan's areas as `Territory::sub_areas`.
pub fn to_territory_sub_areas(plan: &SubAreaPlan) -> Vec<SubArea> {
    plan.areas
        .iter()
        .map(|a| SubArea { id: a.id.clone(), name: a.name.clone(), customer_ids: a.customer_ids.clone() })
        .collect()
}

// --- territory design ---------------------------------------------------------------------------------

/// Partitions a team's customers into one territory per rep, balanced on workload and potential
/// and compact, and gives each territory to a rep (home near the centroid, few customers changing
/// rep). See the module documentation for the method.
///
/// Errors: no reps, a duplicate rep or customer id, a rep home that is not a valid coordinate, no
/// usable customer, more reps than located customers, an invalid configuration.
pub fn design_territories(
    customers: &[Customer],
    reps: &[RepBase],
    cfg: &TerritoryConfig,
    seed: u64,
) -> Result<TerritoryDesign, AreaError> {
    cfg.validate()?;
    let w = &cfg.weights;
    if reps.is_empty() {
        return Err(AreaError::NoReps);
    }
    if reps.len() > MAX_REPS {
        return Err(AreaError::InvalidConfig {
            field: "reps".into(),
            reason: format!("at most {MAX_REPS} reps"),
        });
    }
    let mut rep_index = BTreeMap::new();
    for (r, rep) in reps.iter().enumerate() {
        super::check_id_len("reps[].rep", &rep.rep)?;
        if rep_index.insert(rep.rep.as_str(), r).is_some() {
            return Err(AreaError::DuplicateRep(rep.rep.clone()));
        }
        LatLon::new(rep.home.lat, rep.home.lon)
            .map_err(|e| AreaError::InvalidRepHome { rep: rep.rep.clone(), reason: e.to_string() })?;
    }
    let prep = prepare(customers, &cfg.workload, |c| {
        c.owner_rep.as_deref().and_then(|o| rep_index.get(o).copied())
    })?;
    let k = reps.len();
    if k > prep.items.len() {
        return Err(AreaError::TooManyAreas { areas: k, customers: prep.items.len() });
    }
    let minutes_per_km = cfg.workload.minutes_per_km();
    let homes: Vec<[f64; 2]> = reps.iter().map(|r| prep.proj.to_xy(r.home)).collect();
    let engine = Engine::new(Problem {
        items: &prep.items,
        k,
        minutes_per_km,
        weeks: cfg.workload.weeks(),
        weights: Weights {
            workload: w.workload,
            potential: w.potential,
            compactness: w.compactness,
            continuity: w.continuity,
        },
        tolerance: cfg.tolerance,
        max_sweeps: cfg.max_iterations as usize,
    });
    let to_reps = |sol: &mut Solution| {
        let perm = engine.rep_permutation(sol, &homes, cfg.move_penalty_km);
        sol.relabel(&perm);
    };
    let mut candidates = Vec::new();
    if cfg.warm_start
        && let Some(mut sol) = engine.warm_start(&homes)
    {
        engine.optimise(&mut sol);
        to_reps(&mut sol);
        candidates.push(sol);
    }
    let mut rng = Rng::new(seed);
    for _ in 0..cfg.restarts.max(1) {
        let mut start = Rng::new(rng.next_u64());
        let mut sol = engine.cold_start(&mut start);
        // Give groups to reps before the search, so that continuity means something during it.
        to_reps(&mut sol);
        engine.optimise(&mut sol);
        to_reps(&mut sol);
        candidates.push(sol);
    }
    let Some(sol) = pick_best(&engine, candidates) else { return Err(AreaError::NoCustomers) };

    let potential =
        |c: &Customer| if c.potential_value.is_finite() { c.potential_value.max(0.0) } else { 0.0 };
    let mut territories = Vec::with_capacity(k);
    let mut total_km = 0.0;
    for (t, rep) in reps.iter().enumerate() {
        let (sum_km, _, centroid) = group_geometry(&prep, &sol, t);
        total_km += sum_km;
        let members: Vec<usize> = sol.members(t).collect();
        let xy: Vec<[f64; 2]> = members.iter().map(|&i| prep.items[i].xy).collect();
        let s = &sol.stats[t];
        territories.push(TerritoryResult {
            rep: rep.rep.clone(),
            territory_id: format!("territory-{}", rep.rep),
            customer_ids: members.iter().map(|&i| customers[prep.index[i]].id.clone()).collect(),
            workload_min: s.workload(),
            travel_min: s.travel,
            visits: s.visits,
            potential: members.iter().map(|&i| potential(&customers[prep.index[i]])).sum(),
            centroid,
            hull: convex_hull(&xy).into_iter().map(|h| prep.wgs[members[h]]).collect(),
            home_distance_km: distance_m(rep.home, centroid) / 1000.0,
        });
    }
    let moves = prep
        .index
        .iter()
        .zip(&sol.assign)
        .filter_map(|(&ci, &t)| {
            let c = &customers[ci];
            let to = &reps[t].rep;
            (c.owner_rep.as_deref() != Some(to.as_str())).then(|| Move {
                customer_id: c.id.clone(),
                from: c.owner_rep.clone(),
                to: to.clone(),
            })
        })
        .collect();
    let (workload_balance, _) = engine.balances(&sol);
    Ok(TerritoryDesign {
        workload_balance,
        potential_balance: ratio_of(territories.iter().map(|t| t.potential)),
        within_tolerance: engine.within_tolerance(&sol),
        compactness_km: total_km,
        nearest_centroid_share: engine.nearest_centroid_share(&sol),
        territories,
        moves,
        unplaced: prep.unplaced,
    })
}

fn ratio_of(values: impl Iterator<Item = f64>) -> f64 {
    engine::ratio(values)
}

/// The customers whose `owner_rep` or `territory` the design changes, with both set (owner: the
/// territory's rep; territory: its `territory_id`), ready to be written back. Customers the design
/// does not place are left alone.
impl TerritoryDesign {
    /// Most hull points per territory accepted from a caller.
    pub const MAX_HULL_POINTS: usize = 10_000;

    /// A design sent back by a caller (to be applied) is of a plausible size: at most
    /// [`MAX_REPS`] territories, short ids, hulls of at most [`Self::MAX_HULL_POINTS`] points.
    pub fn validate(&self) -> Result<(), AreaError> {
        if self.territories.len() > MAX_REPS {
            return Err(invalid("territories", "too many territories"));
        }
        for t in &self.territories {
            super::check_id_len("territories[].rep", &t.rep)?;
            super::check_id_len("territories[].territory_id", &t.territory_id)?;
            if t.hull.len() > Self::MAX_HULL_POINTS {
                return Err(invalid("territories[].hull", "too many points"));
            }
            for id in &t.customer_ids {
                super::check_id_len("territories[].customer_ids[]", id)?;
            }
        }
        Ok(())
    }
}

pub fn apply_design(design: &TerritoryDesign, customers: &[Customer]) -> Vec<Customer> {
    let mut target: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for t in &design.territories {
        for id in &t.customer_ids {
            target.insert(id.as_str(), (t.rep.as_str(), t.territory_id.as_str()));
        }
    }
    customers
        .iter()
        .filter_map(|c| {
            let &(rep, territory) = target.get(c.id.as_str())?;
            if c.owner_rep.as_deref() == Some(rep) && c.territory.as_deref() == Some(territory) {
                return None;
            }
            let mut changed = c.clone();
            changed.owner_rep = Some(rep.to_string());
            changed.territory = Some(territory.to_string());
            Some(changed)
        })
        .collect()
}

/// A `territory` document for one designed territory: its rep, and its hull as the polygon.
/// Sub-areas are left empty (see [`sub_areas`] and [`to_territory_sub_areas`]).
pub fn to_territory(result: &TerritoryResult) -> Territory {
    Territory {
        polygons: vec![result.hull.iter().map(|p| LatLonPoint { lat: p.lat, lon: p.lon }).collect()],
        ..Territory::new(&result.territory_id, &result.rep, vec![result.rep.clone()])
    }
}
