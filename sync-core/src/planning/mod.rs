//! S.T.A.R. territory management, as pure functions: time and seeds are passed in, nothing reads a
//! clock or the network, so the same code runs offline on the phone and on the server.
//!
//! - [`segmentation`], [`targeting`], [`allocation`]: tiers, quotas and attainment, visit cadence;
//! - [`route`]: a rep's day route under opening hours, and the team's week plan;
//! - [`areas`]: compact sub-areas of a rep's customers and balanced territory design.

use serde::{Deserialize, Serialize};

use crate::geo::{LatLon, distance_m};

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

pub mod agenda;
pub mod allocation;
pub mod areas;
pub mod route;
pub mod segmentation;
pub mod targeting;
