//! Generated customers for the area and territory tests (and `examples/areas.rs`): clusters around
//! a city, tiers, log-normal potentials, all from a fixed seed.
#![allow(dead_code)]

use fieldsync_core::docs::{Customer, GeoPoint, Tier};
use fieldsync_core::geo::LatLon;

/// Lyon.
pub const CITY: LatLon = LatLon { lat: 45.764, lon: 4.8357 };

/// SplitMix64, so the fixtures do not depend on a random crate.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(1e-12);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.u64() % n as u64) as usize
    }
}

pub fn customer(
    id: &str,
    lat: f64,
    lon: f64,
    tier: Option<Tier>,
    potential: f64,
    owner: Option<&str>,
) -> Customer {
    Customer {
        timezone: "Europe/Paris".into(),
        potential_value: potential,
        close_probability: 0.5,
        tier,
        follow_up_status: String::new(),
        opportunity_stage: String::new(),
        owner_rep: owner.map(str::to_string),
        ..Customer::new(id, &format!("Customer {id}"), GeoPoint::wgs84(lat, lon), "import")
    }
}

/// A point `north_km` / `east_km` from `origin`.
pub fn offset(origin: LatLon, north_km: f64, east_km: f64) -> LatLon {
    let lat = origin.lat + north_km / 111.195;
    let lon = origin.lon + east_km / (111.195 * origin.lat.to_radians().cos());
    LatLon { lat, lon }
}

/// `n` customers in `clusters` Gaussian clusters (σ = `spread_km`) whose centres lie on a ring of
/// radius `ring_km` around the city, cluster sizes uneven (2:3:4:…), tiers 15 % A / 30 % B / 55 % C,
/// potentials log-normal and larger for better tiers. No owner.
pub fn clustered(n: usize, clusters: usize, ring_km: f64, spread_km: f64, seed: u64) -> Vec<Customer> {
    let mut rng = Rng::new(seed);
    let centres: Vec<LatLon> = (0..clusters)
        .map(|c| {
            let angle = std::f64::consts::TAU * c as f64 / clusters as f64 + 0.4;
            offset(CITY, ring_km * angle.cos(), ring_km * angle.sin())
        })
        .collect();
    let shares: Vec<usize> = (0..clusters).map(|c| c + 2).collect();
    let total: usize = shares.iter().sum();
    (0..n)
        .map(|i| {
            let mut pick = rng.below(total);
            let mut c = 0;
            while pick >= shares[c] {
                pick -= shares[c];
                c += 1;
            }
            let p = offset(centres[c], rng.normal() * spread_km, rng.normal() * spread_km);
            let r = rng.f64();
            let tier = if r < 0.15 {
                Tier::A
            } else if r < 0.45 {
                Tier::B
            } else {
                Tier::C
            };
            let scale = match tier {
                Tier::A => 50_000.0,
                Tier::B => 20_000.0,
                Tier::C => 5_000.0,
            };
            let potential = (scale * (0.6 * rng.normal()).exp()).round();
            customer(&format!("c{i:05}"), p.lat, p.lon, Some(tier), potential, None)
        })
        .collect()
}

/// Reps living around the city.
pub fn reps(k: usize, seed: u64) -> Vec<fieldsync_planning::areas::RepBase> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    (0..k)
        .map(|r| fieldsync_planning::areas::RepBase {
            rep: format!("rep-{r}"),
            home: offset(CITY, rng.normal() * 10.0, rng.normal() * 10.0),
        })
        .collect()
}
