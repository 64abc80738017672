//! # fieldsync-planning
//!
//! S.T.A.R. territory management for fieldsync, as pure functions over the documents of
//! [`fieldsync_core::docs`]: time and seeds are passed in, nothing reads a clock or the network, so
//! the same code runs offline on the phone (`fieldsync-mobile`) and on the server
//! (`fieldsync-server`); a search's wall-clock cap is a [`Deadline`] the caller builds over its own
//! clock. The sync path (`fieldsync-core`) does not depend on this crate.
//!
//! - [`segmentation`], [`targeting`], [`allocation`]: tiers, quotas and attainment, visit cadence;
//! - [`route`]: a rep's day route under opening hours, and the team's week plan;
//! - [`agenda`]: both composed from the documents (the rep's day, the team's week);
//! - [`areas`]: compact sub-areas of a rep's customers and balanced territory design;
//! - [`Deadline`]: the caller's wall-clock cap on a search (see [`deadline`]).
//!
//! ```
//! use fieldsync_core::docs::{Cadence, Customer, GeoPoint, Plan, Tier, TierThresholds};
//! use fieldsync_planning::segmentation::segment;
//!
//! let customer = |id: &str, potential_value: f64, close_probability: f64| Customer {
//!     potential_value,
//!     close_probability,
//!     owner_rep: Some("alice".into()),
//!     ..Customer::new(id, id, GeoPoint::wgs84(45.76, 4.83), "admin")
//! };
//! let cadence = Cadence { a_days: 7, b_days: 14, c_days: 30 };
//! let plan = Plan::new("plan-1", "2026-Q4", cadence, TierThresholds { a_min_score: 100.0, b_min_score: 40.0 });
//!
//! // Score = potential × close probability: 180 is an A, 25 a C.
//! let tiers = segment(&[customer("big", 200.0, 0.9), customer("small", 50.0, 0.5)], &plan);
//! assert_eq!(tiers[0].effective, Tier::A);
//! assert_eq!(tiers[1].effective, Tier::C);
//! ```

use serde::{Deserialize, Serialize};

pub use deadline::Deadline;
use fieldsync_core::geo::{LatLon, distance_m};

/// How travel time is estimated without a road network: great-circle distance × a detour factor,
/// at a constant speed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TravelModel {
    /// Average speed, km/h.
    pub speed_kmh: f64,
    /// Road distance / straight-line distance (1.3 is typical in cities).
    pub detour_factor: f64,
}

impl Default for TravelModel {
    fn default() -> Self {
        TravelModel { speed_kmh: 30.0, detour_factor: 1.3 }
    }
}

impl TravelModel {
    /// The model is usable: a speed within (0, [`MAX_SPEED_KMH`]] and a detour factor within
    /// 0..=[`MAX_DETOUR_FACTOR`], all finite.
    pub fn validate(&self) -> Result<(), OutOfBounds> {
        if !(self.speed_kmh.is_finite() && self.speed_kmh > 0.0 && self.speed_kmh <= MAX_SPEED_KMH) {
            return Err(OutOfBounds::new("travel.speed_kmh", format!("must be within (0, {MAX_SPEED_KMH}]")));
        }
        if !(self.detour_factor.is_finite() && (0.0..=MAX_DETOUR_FACTOR).contains(&self.detour_factor)) {
            return Err(OutOfBounds::new(
                "travel.detour_factor",
                format!("must be within 0..={MAX_DETOUR_FACTOR}"),
            ));
        }
        Ok(())
    }

    /// Road distance estimate in metres.
    pub fn distance_m(&self, a: LatLon, b: LatLon) -> f64 {
        distance_m(a, b) * self.detour_factor
    }

    /// Travel time estimate in seconds.
    pub fn travel_s(&self, a: LatLon, b: LatLon) -> f64 {
        let speed_ms = (self.speed_kmh.max(1.0)) / 3.6;
        self.distance_m(a, b) / speed_ms
    }
}

// --- bounds ---------------------------------------------------------------------------------------
//
// Every knob a caller (a rep's phone, a manager over HTTP) can turn has a bound, checked before any
// work is done: the planning functions are fed from the network, and one request must not be able
// to allocate the machine away or keep a core busy for hours.

/// Highest travel speed accepted, km/h.
pub const MAX_SPEED_KMH: f64 = 1000.0;
/// Highest detour factor accepted (road distance / straight-line distance).
pub const MAX_DETOUR_FACTOR: f64 = 10.0;
/// Most k-means++ seedings one sub-area or territory computation may try.
pub const MAX_RESTARTS: u32 = 32;
/// Most local-search sweeps per start.
pub const MAX_ITERATIONS: u32 = 2000;
/// Highest balance tolerance (max/min ≤ 1 + tolerance).
pub const MAX_TOLERANCE: f64 = 10.0;
/// Highest weight of any term of an objective.
pub const MAX_WEIGHT: f64 = 1000.0;
/// Highest move penalty of the territory assignment, km per customer.
pub const MAX_MOVE_PENALTY_KM: f64 = 10_000.0;
/// Most sub-areas of one rep.
pub const MAX_AREAS: usize = 64;
/// Most reps in one territory design or week plan.
pub const MAX_REPS: usize = 500;
/// Most rep-days (vehicles) in one week plan.
pub const MAX_REP_DAYS: usize = 2000;
/// Most due customers offered to a day's router as optional stops.
pub const MAX_OPTIONAL_STOPS: usize = 60;
/// Longest wall-clock cap a caller may ask a search for, ms.
pub const MAX_TIME_LIMIT_MS: u64 = 60_000;
/// Longest identifier (rep id, time zone name) accepted, bytes.
pub const MAX_ID_LEN: usize = 128;
/// Earliest instant accepted as "now" or as a bound of a window: 2000-01-01T00:00:00Z.
pub const MIN_EPOCH_MS: i64 = 946_684_800_000;
/// Latest such instant: 2200-01-01T00:00:00Z.
pub const MAX_EPOCH_MS: i64 = 7_258_118_400_000;
/// Longest window of a report (time shares, due visits): 366 days.
pub const MAX_WINDOW_MS: i64 = 366 * 86_400_000;

/// A caller-supplied value outside its bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct OutOfBounds {
    pub field: String,
    pub reason: String,
}

impl OutOfBounds {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        OutOfBounds { field: field.into(), reason: reason.into() }
    }
}

/// `ms` is an instant within [`MIN_EPOCH_MS`]..=[`MAX_EPOCH_MS`] (years 2000 to 2199).
pub fn check_instant(field: &str, ms: i64) -> Result<(), OutOfBounds> {
    if (MIN_EPOCH_MS..=MAX_EPOCH_MS).contains(&ms) {
        Ok(())
    } else {
        Err(OutOfBounds::new(field, "must be an epoch-ms instant between the years 2000 and 2199"))
    }
}

/// `[from_ms, to_ms)` is a window of plausible instants, not inverted, at most [`MAX_WINDOW_MS`] long.
pub fn check_window(from_ms: i64, to_ms: i64) -> Result<(), OutOfBounds> {
    check_instant("from_ms", from_ms)?;
    check_instant("to_ms", to_ms)?;
    if to_ms < from_ms {
        return Err(OutOfBounds::new("to_ms", "is before from_ms"));
    }
    if to_ms - from_ms > MAX_WINDOW_MS {
        return Err(OutOfBounds::new("to_ms", "the window may span at most 366 days"));
    }
    Ok(())
}

/// A minute of the day, 0..=1440 (1440 is the next midnight).
pub fn check_minute_of_day(field: &str, minute: u32) -> Result<(), OutOfBounds> {
    if minute <= 24 * 60 { Ok(()) } else { Err(OutOfBounds::new(field, "must be within 0..=1440")) }
}

/// An identifier of at most [`MAX_ID_LEN`] bytes.
pub fn check_id_len(field: &str, id: &str) -> Result<(), OutOfBounds> {
    if id.len() <= MAX_ID_LEN {
        Ok(())
    } else {
        Err(OutOfBounds::new(field, format!("must be at most {MAX_ID_LEN} bytes")))
    }
}

pub mod agenda;
pub mod allocation;
pub mod areas;
pub mod deadline;
pub mod map;
pub mod reports;
mod rng;
pub mod route;
pub mod segmentation;
pub mod targeting;

#[cfg(test)]
mod tests {
    use super::agenda::RepDayInput;
    use super::areas::{AreaConfig, AreaError, TerritoryConfig, sub_areas};
    use super::route::{LocalDate, RouteError};
    use super::*;

    #[test]
    fn knobs_out_of_bounds_are_refused_before_any_work() {
        // Four billion restarts would be a 200 GB allocation: refused by the function itself, so
        // the phone library gets the same bound as the server.
        let cfg = AreaConfig { restarts: u32::MAX, ..AreaConfig::default() };
        assert!(
            matches!(sub_areas(&[], 5, &cfg, 0), Err(AreaError::InvalidConfig { field, .. }) if field == "restarts")
        );
        let cfg = AreaConfig { max_iterations: u32::MAX, ..AreaConfig::default() };
        assert!(cfg.validate().is_err());
        assert!(AreaConfig { tolerance: f64::NAN, ..AreaConfig::default() }.validate().is_err());
        assert!(AreaConfig::default().validate().is_ok());
        assert!(
            TerritoryConfig { restarts: MAX_RESTARTS + 1, ..TerritoryConfig::default() }.validate().is_err()
        );
        assert!(TerritoryConfig::default().validate().is_ok());
        assert!(TravelModel { speed_kmh: 0.0, detour_factor: 1.3 }.validate().is_err());
        assert!(TravelModel { speed_kmh: 30.0, detour_factor: f64::INFINITY }.validate().is_err());

        let date = LocalDate::new(2026, 11, 30);
        let day = RepDayInput {
            work_start_min: 510,
            max_optional: 12,
            seed: 7,
            ..crate::segmentation::fixtures::rep_day(date, "Europe/Paris")
        };
        assert!(day.validate().is_ok());
        for bad in [
            RepDayInput { work_start_min: u32::MAX, ..day.clone() },
            RepDayInput { work_end_min: 500, ..day.clone() },
            RepDayInput { max_optional: usize::MAX, ..day.clone() },
            RepDayInput { time_limit_ms: u64::MAX, ..day.clone() },
            RepDayInput { timezone: "x".repeat(10_000), ..day.clone() },
        ] {
            assert!(matches!(bad.validate(), Err(RouteError::InvalidRequest { .. })), "{bad:?}");
        }

        assert!(check_window(MIN_EPOCH_MS, MIN_EPOCH_MS + MAX_WINDOW_MS).is_ok());
        assert!(check_window(MIN_EPOCH_MS, MIN_EPOCH_MS + MAX_WINDOW_MS + 1).is_err());
        assert!(check_window(MIN_EPOCH_MS + 1, MIN_EPOCH_MS).is_err());
        assert!(check_instant("now_ms", i64::MAX).is_err());
        assert!(check_instant("now_ms", 0).is_err());
    }
}
