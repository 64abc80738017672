//! Check-in verification: did the rep really stand at the customer when they
//! checked in?
//!
//! This is a pure function of its inputs (the fix, the customer, the rep's
//! previous check-in and, on the server, the receipt time) so that the phone
//! and the server reach the same verdict for the same data: the phone verifies
//! offline to give the rep instant feedback, and the server re-verifies on
//! upload with the one input the phone cannot be trusted with, the receipt
//! time. No clock is read here for that reason.
//!
//! Customer locations imported from Chinese map providers are in GCJ-02
//! ("Mars coordinates"), which are deliberately offset from the WGS-84 the
//! phone GPS reports by a few hundred metres, more than a typical fence. They
//! are therefore converted before any distance is measured.

use std::fmt;
use std::str::FromStr;

use ::geo::{Distance, Haversine, Point};
use serde::{Deserialize, Serialize};

pub use crate::docs::limits::MAX_GEOFENCE_M;

/// Errors from parsing or validating geographic input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum GeoError {
    #[error("unknown datum {0:?} (expected \"wgs84\" or \"gcj02\")")]
    UnknownDatum(String),
    #[error("coordinate out of range: lat {lat}, lon {lon}")]
    OutOfRange { lat: f64, lon: f64 },
    #[error("coordinate is not a finite number")]
    NotFinite,
}

/// The geodetic datum a stored coordinate is expressed in.
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Datum {
    Wgs84,
    Gcj02,
}

impl Datum {
    pub fn as_str(self) -> &'static str {
        match self {
            Datum::Wgs84 => "wgs84",
            Datum::Gcj02 => "gcj02",
        }
    }
}

impl fmt::Display for Datum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Datum {
    type Err = GeoError;

    // Lenient on case and the hyphenated spelling because datums arrive from
    // CSV imports typed by people, not only from our own serializer.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wgs84" | "wgs-84" => Ok(Datum::Wgs84),
            "gcj02" | "gcj-02" => Ok(Datum::Gcj02),
            _ => Err(GeoError::UnknownDatum(s.to_owned())),
        }
    }
}

/// A latitude/longitude pair in degrees.
///
/// Fields are public and deserialization does not validate, because values
/// arrive from devices and imports that may be wrong; [`verify_checkin`]
/// re-validates rather than trusting the type.
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

impl LatLon {
    pub fn new(lat: f64, lon: f64) -> Result<LatLon, GeoError> {
        if !lat.is_finite() || !lon.is_finite() {
            return Err(GeoError::NotFinite);
        }
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return Err(GeoError::OutOfRange { lat, lon });
        }
        Ok(LatLon { lat, lon })
    }

    /// The point itself, if its coordinates are finite and in range.
    pub fn validate(self) -> Result<LatLon, GeoError> {
        LatLon::new(self.lat, self.lon)
    }

    fn to_point(self) -> Point<f64> {
        Point::new(self.lon, self.lat)
    }
}

// --- GCJ-02 -----------------------------------------------------------------

/// Semi-major axis of the Krasovsky 1940 ellipsoid that GCJ-02 is defined on.
const GCJ_A: f64 = 6_378_245.0;
/// Its first eccentricity squared (published as 0.00669342162296594323;
/// the trailing digits are beyond f64 precision).
const GCJ_EE: f64 = 0.006_693_421_622_965_943;

/// GCJ-02 is only applied inside this box; outside it the datum equals WGS-84.
/// Written so that NaN counts as "outside", making every transform the
/// identity for garbage input instead of spreading NaN through the maths.
fn out_of_china(p: LatLon) -> bool {
    !((72.004..=137.8347).contains(&p.lon) && (0.8293..=55.8271).contains(&p.lat))
}

fn transform_lat(x: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    let mut ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    ret += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    ret += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    ret += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y / 30.0 * PI).sin()) * 2.0 / 3.0;
    ret
}

fn transform_lon(x: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    let mut ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    ret += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    ret += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    ret += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    ret
}

/// The GCJ-02 offset (degrees) at a WGS-84 point, ignoring the China box.
///
/// Kept separate from the box test so the inverse can iterate on a smooth
/// function instead of one that jumps to zero at the border.
fn gcj_offset(p: LatLon) -> (f64, f64) {
    use std::f64::consts::PI;
    let x = p.lon - 105.0;
    let y = p.lat - 35.0;
    let rad_lat = p.lat / 180.0 * PI;
    let sin_lat = rad_lat.sin();
    let magic = 1.0 - GCJ_EE * sin_lat * sin_lat;
    let sqrt_magic = magic.sqrt();
    let d_lat = transform_lat(x, y) * 180.0 / ((GCJ_A * (1.0 - GCJ_EE)) / (magic * sqrt_magic) * PI);
    let d_lon = transform_lon(x, y) * 180.0 / (GCJ_A / sqrt_magic * rad_lat.cos() * PI);
    (d_lat, d_lon)
}

/// WGS-84 → GCJ-02. The identity outside mainland China's bounding box.
pub fn wgs84_to_gcj02(p: LatLon) -> LatLon {
    if out_of_china(p) {
        return p;
    }
    let (d_lat, d_lon) = gcj_offset(p);
    LatLon { lat: p.lat + d_lat, lon: p.lon + d_lon }
}

/// Stop once an iteration moves the estimate less than this many degrees
/// (about 0.1 µm), far below the centimetre we promise.
const INVERSE_TOLERANCE_DEG: f64 = 1e-12;
/// The offset changes by well under 1 % of a step per step, so the fixed-point
/// iteration converges in a handful of rounds; the cap only guards against
/// pathological input.
const INVERSE_MAX_ITERATIONS: usize = 30;

/// GCJ-02 → WGS-84. The identity outside mainland China's bounding box.
///
/// The transform has no closed-form inverse, so this solves
/// `wgs + offset(wgs) = gcj` by fixed-point iteration; the one-step inverse
/// that is commonly copied around is off by metres, which matters against a
/// 200 m fence with accuracy tolerance subtracted.
///
/// Within about 0.01° of the box edge the transform is not one-to-one (a point
/// just inside is shifted across the border, where points map to
/// themselves), so a round trip there can land on the other preimage.
pub fn gcj02_to_wgs84(p: LatLon) -> LatLon {
    if out_of_china(p) {
        return p;
    }
    let mut wgs = p;
    for _ in 0..INVERSE_MAX_ITERATIONS {
        let (d_lat, d_lon) = gcj_offset(wgs);
        let next = LatLon { lat: p.lat - d_lat, lon: p.lon - d_lon };
        let step = (next.lat - wgs.lat).abs().max((next.lon - wgs.lon).abs());
        wgs = next;
        if step.is_nan() || step < INVERSE_TOLERANCE_DEG {
            break;
        }
    }
    wgs
}

/// Converts a point in `datum` to WGS-84.
pub fn to_wgs84(p: LatLon, datum: Datum) -> LatLon {
    match datum {
        Datum::Wgs84 => p,
        Datum::Gcj02 => gcj02_to_wgs84(p),
    }
}

/// Great-circle distance in metres between two WGS-84 points.
///
/// Haversine on a sphere rather than a geodesic on the ellipsoid: check-in
/// distances are at most tens of kilometres, where the spherical error (well
/// under 0.5 %) is far smaller than GPS error, and it is much cheaper.
pub fn distance_m(a: LatLon, b: LatLon) -> f64 {
    Haversine.distance(a.to_point(), b.to_point())
}

// --- verification -----------------------------------------------------------

/// Thresholds for [`verify_checkin`]; organisation-wide, overridable per tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyConfig {
    /// Default geofence radius around a customer.
    pub fence_radius_m: f64,
    /// Travel speed between check-ins above which a manager should look.
    pub flag_speed_kmh: f64,
    /// Travel speed that no car can reach on roads: the data is wrong.
    pub invalid_speed_kmh: f64,
    /// Speed is only judged over hops longer than this, because over short
    /// hops GPS jitter and quick consecutive check-ins (neighbouring shops)
    /// produce absurd but harmless speeds.
    pub min_speed_distance_m: f64,
    /// How far the device clock may run ahead of the server's receipt time;
    /// beyond it the device time is not believed and the check-in is invalid.
    pub max_clock_skew_s: i64,
    /// Worst horizontal accuracy accepted, and the most the accuracy may add to
    /// the fence. A vaguer fix (cell towers, Wi-Fi guesses) is flagged
    /// `poor_accuracy`: it cannot say whether the rep was at the door.
    #[serde(default = "default_max_accuracy_m")]
    pub max_accuracy_m: f64,
}

fn default_max_accuracy_m() -> f64 {
    100.0
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            fence_radius_m: 200.0,
            flag_speed_kmh: 150.0,
            invalid_speed_kmh: 250.0,
            min_speed_distance_m: 1000.0,
            max_clock_skew_s: 300,
            max_accuracy_m: default_max_accuracy_m(),
        }
    }
}

/// A location fix taken by the phone at check-in (always WGS-84: it comes
/// straight from the GPS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckinFix {
    pub point: LatLon,
    /// Horizontal accuracy radius reported by the OS, in metres.
    pub accuracy_m: f64,
    pub device_time_ms: i64,
    /// The OS reported the location as coming from a mock provider.
    pub mock_location: bool,
}

/// The same rep's previous check-in (WGS-84).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousCheckin {
    pub point: LatLon,
    pub device_time_ms: i64,
}

/// Everything [`verify_checkin`] looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckinContext<'a> {
    pub fix: &'a CheckinFix,
    pub customer: LatLon,
    pub customer_datum: Datum,
    /// Per-customer fence radius (large sites, malls); ignored unless finite
    /// and non-negative, and never more than [`MAX_GEOFENCE_M`].
    pub fence_override_m: Option<f64>,
    pub previous: Option<&'a PreviousCheckin>,
    /// Server receipt time; `None` when verifying on the device, whose own
    /// clock is what is being checked.
    pub received_at_ms: Option<i64>,
    pub config: &'a VerifyConfig,
}

#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationStatus {
    Verified,
    /// Plausible but needs a manager's eye.
    Flagged,
    /// The data cannot be true (or cannot be checked).
    Invalid,
}

impl VerificationStatus {
    pub const ALL: [VerificationStatus; 3] =
        [VerificationStatus::Verified, VerificationStatus::Flagged, VerificationStatus::Invalid];

    /// The serde name, which is also the stored form in `docs::CheckinVerification`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationStatus::Verified => "verified",
            VerificationStatus::Flagged => "flagged",
            VerificationStatus::Invalid => "invalid",
        }
    }
}

impl std::fmt::Display for VerificationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for VerificationStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VerificationStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| "a verification status is verified, flagged or invalid".to_string())
    }
}

impl PartialEq<&str> for VerificationStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

// Stored in documents as its name, as it always was ("verified", …): older documents read the same.
impl autosurgeon::Reconcile for VerificationStatus {
    type Key<'a> = autosurgeon::reconcile::NoKey;
    fn reconcile<R: autosurgeon::Reconciler>(&self, mut reconciler: R) -> Result<(), R::Error> {
        reconciler.str(self.as_str())
    }
}

impl autosurgeon::Hydrate for VerificationStatus {
    fn hydrate_string(s: &'_ str) -> Result<Self, autosurgeon::HydrateError> {
        s.parse()
            .map_err(|_| autosurgeon::HydrateError::unexpected("verified, flagged or invalid", s.to_string()))
    }
}

/// Why a check-in was not simply verified.
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    /// `distance_m` is the raw distance; the fence is judged on the distance
    /// minus the fix accuracy.
    OutsideFence {
        distance_m: f64,
        allowed_m: f64,
    },
    TooFast {
        speed_kmh: f64,
    },
    /// When the device time did not advance, the speed is computed over one
    /// second: infinity cannot be carried in JSON, and any finite lower bound
    /// above the invalid threshold tells the same story.
    ImpossibleSpeed {
        speed_kmh: f64,
    },
    /// Seconds the device clock is ahead of the server's receipt time. The
    /// device time is then unknown, and with it every speed judged from it.
    ClockSkew {
        skew_s: i64,
    },
    MockLocation,
    PoorAccuracy {
        accuracy_m: f64,
    },
    InvalidFix {
        detail: String,
    },
    /// The customer does not exist or is outside the rep's scope; the two are
    /// reported alike so that verification never tells a rep where a customer
    /// they may not see is.
    UnknownCustomer,
}

impl Reason {
    /// Whether this reason alone makes the check-in [`VerificationStatus::Invalid`].
    pub fn invalidates(&self) -> bool {
        matches!(
            self,
            Reason::ImpossibleSpeed { .. }
                | Reason::InvalidFix { .. }
                | Reason::ClockSkew { .. }
                | Reason::UnknownCustomer
        )
    }

    /// The stable machine-readable code, identical to the serde `code` tag,
    /// for storing and filtering on without serializing the whole reason.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::OutsideFence { .. } => "outside_fence",
            Reason::TooFast { .. } => "too_fast",
            Reason::ImpossibleSpeed { .. } => "impossible_speed",
            Reason::ClockSkew { .. } => "clock_skew",
            Reason::MockLocation => "mock_location",
            Reason::PoorAccuracy { .. } => "poor_accuracy",
            Reason::InvalidFix { .. } => "invalid_fix",
            Reason::UnknownCustomer => "unknown_customer",
        }
    }

    /// Human-readable text for managers and the rep.
    pub fn message(&self) -> String {
        match self {
            Reason::OutsideFence { distance_m, allowed_m } => {
                format!("{distance_m:.0} m from the customer, allowed {allowed_m:.0} m")
            }
            Reason::TooFast { speed_kmh } => {
                format!("travelled at {speed_kmh:.0} km/h between this and a neighbouring check-in")
            }
            Reason::ImpossibleSpeed { speed_kmh } => format!(
                "would have needed {speed_kmh:.0} km/h between this and a neighbouring check-in, which is impossible"
            ),
            Reason::ClockSkew { skew_s } => {
                format!("device clock is {skew_s} s ahead of the server")
            }
            Reason::MockLocation => "the device reported a simulated (mock) location".to_owned(),
            Reason::PoorAccuracy { accuracy_m } => {
                format!("location accuracy is only ±{accuracy_m:.0} m")
            }
            Reason::InvalidFix { detail } => format!("invalid location: {detail}"),
            Reason::UnknownCustomer => "the customer is not known for this rep".to_owned(),
        }
    }
}

#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub status: VerificationStatus,
    /// Raw distance from the fix to the customer (WGS-84), in metres; 0 when
    /// it cannot be measured, in which case an `InvalidFix` or
    /// `UnknownCustomer` reason says why.
    pub distance_m: f64,
    pub reasons: Vec<Reason>,
}

/// Accuracy radii this many times the fence radius make the fence meaningless
/// (the accuracy tolerance would admit almost any fix), so they are flagged.
const POOR_ACCURACY_FENCE_FACTOR: f64 = 5.0;

/// The customer side of a check-in: where it is, in which datum, and its own
/// fence radius if it has one.
pub(crate) struct Site {
    pub(crate) location: LatLon,
    pub(crate) datum: Datum,
    pub(crate) fence_override_m: Option<f64>,
}

/// The fence radius actually applied: a per-customer override if it is a
/// usable number, else the configured radius, and never more than
/// [`MAX_GEOFENCE_M`], because a fence of tens of kilometres verifies anything
/// (whoever managed to store one, and whatever the tenant configured).
pub fn effective_fence_m(fence_override_m: Option<f64>, config: &VerifyConfig) -> f64 {
    let radius = fence_override_m.filter(|r| r.is_finite() && *r >= 0.0).unwrap_or(config.fence_radius_m);
    // `f64::min` would let a NaN configured radius through as MAX; a NaN fence
    // must admit nothing instead.
    if radius <= MAX_GEOFENCE_M {
        radius
    } else if radius.is_nan() {
        0.0
    } else {
        MAX_GEOFENCE_M
    }
}

/// Verifies a check-in. Never panics, whatever the numbers.
///
/// All checks that can be evaluated are reported, not just the first, so a
/// manager sees the whole picture at once.
///
/// This judges the fix against one earlier check-in only and does not bound the
/// device time from below; `checkin::judge` is the full policy (neighbours on both
/// sides, absurd times, whether the fix may become a reference) and is what the
/// server and the device call.
pub fn verify_checkin(ctx: &CheckinContext<'_>) -> Verification {
    let site =
        Site { location: ctx.customer, datum: ctx.customer_datum, fence_override_m: ctx.fence_override_m };
    let previous = ctx.previous.map(|p| (p.point, p.device_time_ms));
    let (distance_m, reasons) = assess(ctx.fix, Some(&site), previous, None, ctx.received_at_ms, ctx.config);
    Verification { status: status_of(&reasons), distance_m, reasons }
}

/// The status the reasons add up to.
pub(crate) fn status_of(reasons: &[Reason]) -> VerificationStatus {
    if reasons.iter().any(Reason::invalidates) {
        VerificationStatus::Invalid
    } else if reasons.is_empty() {
        VerificationStatus::Verified
    } else {
        VerificationStatus::Flagged
    }
}

/// Every check [`verify_checkin`] makes, with an optional later neighbour and an
/// optional customer (`None`: unknown to the judge, which is itself a reason).
/// Returns the raw distance to the customer (0 when it cannot be measured) and the reasons.
pub(crate) fn assess(
    fix: &CheckinFix,
    site: Option<&Site>,
    previous: Option<(LatLon, i64)>,
    next: Option<(LatLon, i64)>,
    received_at_ms: Option<i64>,
    config: &VerifyConfig,
) -> (f64, Vec<Reason>) {
    let mut reasons = Vec::new();

    let fix_point = match fix.point.validate() {
        Ok(p) => Some(p),
        Err(e) => {
            reasons.push(Reason::InvalidFix { detail: format!("fix {e}") });
            None
        }
    };
    // NaN, infinite and negative accuracies are all nonsense from the OS; an
    // infinite one would also defeat the fence by tolerance.
    let accuracy = if fix.accuracy_m.is_finite() && fix.accuracy_m >= 0.0 {
        Some(fix.accuracy_m)
    } else {
        reasons.push(Reason::InvalidFix {
            detail: format!("accuracy {} m is not a non-negative number", fix.accuracy_m),
        });
        None
    };
    // A broken customer record is not the rep's fault, but a check-in against
    // it cannot be verified either, and master data needs fixing.
    let customer = match site {
        None => {
            reasons.push(Reason::UnknownCustomer);
            None
        }
        Some(site) => match site.location.validate() {
            Ok(p) => Some(to_wgs84(p, site.datum)),
            Err(e) => {
                reasons.push(Reason::InvalidFix { detail: format!("customer location {e}") });
                None
            }
        },
    };

    let allowed_m = effective_fence_m(site.and_then(|s| s.fence_override_m), config);
    // The rep gets the benefit of the doubt within the accuracy radius, but only
    // up to the cap: a phone may not widen the fence by reporting a vague fix.
    let cap = config.max_accuracy_m;
    let credit = match accuracy {
        Some(a) if a <= cap => a,
        Some(_) if cap >= 0.0 => cap,
        _ => 0.0,
    };

    let mut distance = 0.0;
    if let (Some(fix_point), Some(customer)) = (fix_point, customer) {
        distance = distance_m(fix_point, customer);
        let effective = (distance - credit).max(0.0);
        if effective > allowed_m {
            reasons.push(Reason::OutsideFence { distance_m: distance, allowed_m });
        }
    }

    if let Some(accuracy) = accuracy {
        // Phrased so that a NaN cap flags every fix rather than none.
        let precise_enough = accuracy <= cap && accuracy <= POOR_ACCURACY_FENCE_FACTOR * allowed_m;
        if !precise_enough {
            reasons.push(Reason::PoorAccuracy { accuracy_m: accuracy });
        }
    }

    if let Some(fix_point) = fix_point {
        let before =
            previous.and_then(|(p, t)| speed_kmh_between(p, t, fix_point, fix.device_time_ms, config));
        let after = next.and_then(|(p, t)| speed_kmh_between(fix_point, fix.device_time_ms, p, t, config));
        // One speed reason, the worse of the two sides: the manager needs to know
        // the fix does not fit the rep's trail, not every way in which it does not.
        let worst = match (before, after) {
            (Some(a), Some(b)) => Some(if b.worse_than(&a) { b } else { a }),
            (a, b) => a.or(b),
        };
        if let Some(hop) = worst {
            if hop.instant || hop.speed_kmh > config.invalid_speed_kmh {
                reasons.push(Reason::ImpossibleSpeed { speed_kmh: hop.speed_kmh });
            } else if hop.speed_kmh > config.flag_speed_kmh {
                reasons.push(Reason::TooFast { speed_kmh: hop.speed_kmh });
            }
        }
    }

    if let Some(received_at_ms) = received_at_ms {
        // Only a clock *ahead* of receipt is suspicious: check-ins made
        // offline are uploaded hours later and legitimately look old.
        let ahead_ms = fix.device_time_ms.saturating_sub(received_at_ms);
        if ahead_ms > config.max_clock_skew_s.saturating_mul(1000) {
            // Rounded up so the reported skew never looks within the limit.
            let skew_s = ahead_ms.saturating_add(999) / 1000;
            reasons.push(Reason::ClockSkew { skew_s });
        }
    }

    if fix.mock_location {
        reasons.push(Reason::MockLocation);
    }

    (distance, reasons)
}

/// A hop between two fixes long enough to be judged on speed.
#[derive(Debug, Clone, Copy)]
struct Hop {
    speed_kmh: f64,
    /// The device times say the hop took no time (or negative time); the speed is
    /// then counted over one second, see `Reason::ImpossibleSpeed`.
    instant: bool,
}

impl Hop {
    fn worse_than(&self, other: &Hop) -> bool {
        (self.instant, self.speed_kmh) > (other.instant, other.speed_kmh)
    }
}

/// The hop from `(a, a_ms)` to `(b, b_ms)`, or `None` when it is too short to
/// judge. `a` is the earlier fix by intent; when the device times say
/// otherwise the hop took no time.
fn speed_kmh_between(a: LatLon, a_ms: i64, b: LatLon, b_ms: i64, config: &VerifyConfig) -> Option<Hop> {
    // A corrupt neighbour was already judged when it was made; it must not
    // taint this fix.
    let a = a.validate().ok()?;
    let b = b.validate().ok()?;
    let hop_m = distance_m(a, b);
    // Phrased so that a NaN threshold means "never judge" rather than "always".
    let long_enough = hop_m > config.min_speed_distance_m;
    if !long_enough {
        return None;
    }
    let elapsed_ms = b_ms.saturating_sub(a_ms);
    Some(if elapsed_ms <= 0 {
        Hop { speed_kmh: hop_m / 1000.0 * 3600.0, instant: true }
    } else {
        Hop { speed_kmh: (hop_m / 1000.0) / (elapsed_ms as f64 / 3_600_000.0), instant: false }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Metres per degree of latitude on the sphere `Haversine` uses, so that
    /// points built with it are at exactly the intended distance.
    fn metres_per_degree() -> f64 {
        Haversine.radius() * std::f64::consts::PI / 180.0
    }

    fn north_of(p: LatLon, metres: f64) -> LatLon {
        LatLon { lat: p.lat + metres / metres_per_degree(), lon: p.lon }
    }

    /// A customer in Berlin, far from the GCJ-02 box.
    const CUSTOMER: LatLon = LatLon { lat: 52.520_008, lon: 13.404_954 };
    const NOW_MS: i64 = 1_700_000_000_000;

    fn fix_at(point: LatLon, accuracy_m: f64) -> CheckinFix {
        CheckinFix { point, accuracy_m, device_time_ms: NOW_MS, mock_location: false }
    }

    fn context<'a>(fix: &'a CheckinFix, config: &'a VerifyConfig) -> CheckinContext<'a> {
        CheckinContext {
            fix,
            customer: CUSTOMER,
            customer_datum: Datum::Wgs84,
            fence_override_m: None,
            previous: None,
            received_at_ms: None,
            config,
        }
    }

    /// The verdict on a fix at `point` with `accuracy_m` (no previous check-in, default configuration).
    fn verify_fix_at(point: LatLon, accuracy_m: f64) -> Verification {
        verify_checkin(&context(&fix_at(point, accuracy_m), &VerifyConfig::default()))
    }

    /// The verdict on a fix at `point` (±10 m) at a customer whose own fence is `fence_m`.
    fn verify_fenced(point: LatLon, fence_m: f64) -> Verification {
        let (fix, config) = (fix_at(point, 10.0), VerifyConfig::default());
        verify_checkin(&CheckinContext { fence_override_m: Some(fence_m), ..context(&fix, &config) })
    }

    /// The verdict on `fix` for a rep whose previous check-in was at `from`, at `time_ms`.
    fn verify_after(fix: &CheckinFix, config: &VerifyConfig, from: LatLon, time_ms: i64) -> Verification {
        let previous = PreviousCheckin { point: from, device_time_ms: time_ms };
        verify_checkin(&CheckinContext { previous: Some(&previous), ..context(fix, config) })
    }

    #[test]
    fn metre_offsets_used_by_these_tests_are_exact() {
        let d = distance_m(CUSTOMER, north_of(CUSTOMER, 412.0));
        assert!((d - 412.0).abs() < 1e-6, "{d}");
    }

    #[test]
    fn a_fix_inside_the_fence_is_verified() {
        let v = verify_fix_at(north_of(CUSTOMER, 150.0), 10.0);
        assert_eq!(v.status, VerificationStatus::Verified);
        assert!(v.reasons.is_empty());
        assert!((v.distance_m - 150.0).abs() < 1e-6);
    }

    #[test]
    fn a_fix_412_m_away_is_flagged_with_the_distance() {
        let v = verify_fix_at(north_of(CUSTOMER, 412.0), 10.0);
        assert_eq!(v.status, VerificationStatus::Flagged);
        assert_eq!(v.reasons.len(), 1);
        match &v.reasons[0] {
            Reason::OutsideFence { distance_m, allowed_m } => {
                assert!((distance_m - 412.0).abs() < 1e-6);
                assert_eq!(*allowed_m, 200.0);
            }
            other => panic!("unexpected reason {other:?}"),
        }
        assert_eq!(v.reasons[0].message(), "412 m from the customer, allowed 200 m");
    }

    #[test]
    fn accuracy_tolerance_brings_a_fix_back_inside_the_fence() {
        // 260 m away, but the true position may be up to 80 m closer.
        let v = verify_fix_at(north_of(CUSTOMER, 260.0), 80.0);
        assert_eq!(v.status, VerificationStatus::Verified, "{v:?}");

        // With only 50 m of tolerance, 210 m remain: outside.
        let v = verify_fix_at(north_of(CUSTOMER, 260.0), 50.0);
        assert_eq!(v.status, VerificationStatus::Flagged);
        assert!(matches!(v.reasons[..], [Reason::OutsideFence { .. }]));
    }

    #[test]
    fn poor_accuracy_is_flagged_and_its_credit_is_capped() {
        // 999 m of accuracy once turned 1150 m into "verified" (the full accuracy was credited,
        // and only accuracies above 5x the fence were flagged).
        let v = verify_fix_at(north_of(CUSTOMER, 1150.0), 999.0);
        assert_eq!(v.status, VerificationStatus::Flagged, "{v:?}");
        let codes: Vec<&str> = v.reasons.iter().map(Reason::code).collect();
        // Only 100 m are credited: 1050 m remain, far outside.
        assert_eq!(codes, ["outside_fence", "poor_accuracy"]);

        // Standing at the door with a vague fix is still not verified.
        let v = verify_fix_at(CUSTOMER, 101.0);
        assert_eq!(v.reasons, vec![Reason::PoorAccuracy { accuracy_m: 101.0 }]);
        assert_eq!(v.status, VerificationStatus::Flagged);

        // Exactly at the cap is acceptable, and credited in full.
        assert_eq!(verify_fix_at(north_of(CUSTOMER, 299.0), 100.0).status, VerificationStatus::Verified);

        // A broken cap trusts no accuracy at all rather than any.
        let broken = VerifyConfig { max_accuracy_m: f64::NAN, ..VerifyConfig::default() };
        let fix = fix_at(north_of(CUSTOMER, 150.0), 5.0);
        let v = verify_checkin(&context(&fix, &broken));
        assert_eq!(v.reasons, vec![Reason::PoorAccuracy { accuracy_m: 5.0 }]);
    }

    #[test]
    fn a_huge_fence_is_clamped_to_the_maximum() {
        // A rep's own prospect once carried a 100 km fence and verified a check-in 60 km away.
        let v = verify_fenced(north_of(CUSTOMER, 60_000.0), 100_000.0);
        assert_eq!(v.status, VerificationStatus::Flagged);
        assert!(
            matches!(v.reasons[..], [Reason::OutsideFence { allowed_m, .. }] if allowed_m == MAX_GEOFENCE_M),
            "{v:?}"
        );
        let config = VerifyConfig::default();
        for (radius, expected) in
            [(Some(f64::INFINITY), 200.0), (Some(1e9), MAX_GEOFENCE_M), (Some(1500.0), 1500.0), (None, 200.0)]
        {
            assert_eq!(effective_fence_m(radius, &config), expected, "{radius:?}");
        }
        let broken = VerifyConfig { fence_radius_m: f64::NAN, ..VerifyConfig::default() };
        assert_eq!(effective_fence_m(None, &broken), 0.0);
        let huge = VerifyConfig { fence_radius_m: 1e12, ..VerifyConfig::default() };
        assert_eq!(effective_fence_m(None, &huge), MAX_GEOFENCE_M);
    }

    #[test]
    fn per_customer_fence_override_applies() {
        assert_eq!(verify_fenced(north_of(CUSTOMER, 412.0), 500.0).status, VerificationStatus::Verified);

        let v = verify_fenced(north_of(CUSTOMER, 150.0), 100.0);
        assert_eq!(v.status, VerificationStatus::Flagged);
        assert!(matches!(
            v.reasons[..],
            [Reason::OutsideFence { allowed_m, .. }] if allowed_m == 100.0
        ));

        // A nonsense override falls back to the configured radius.
        assert_eq!(verify_fenced(north_of(CUSTOMER, 150.0), f64::NAN).status, VerificationStatus::Verified);
    }

    #[test]
    fn driving_at_200_kmh_is_flagged_and_at_300_is_invalid() {
        let config = VerifyConfig::default();
        let fix = fix_at(CUSTOMER, 10.0);
        let minutes_after_50_km = |minutes: i64| {
            verify_after(&fix, &config, north_of(CUSTOMER, 50_000.0), NOW_MS - minutes * 60 * 1000)
        };
        // 50 km in 15 minutes = 200 km/h.
        let v = minutes_after_50_km(15);
        assert_eq!(v.status, VerificationStatus::Flagged);
        let near = |speed_kmh: f64, expected: f64| (speed_kmh - expected).abs() < 1e-6;
        assert!(matches!(v.reasons[..], [Reason::TooFast { speed_kmh }] if near(speed_kmh, 200.0)), "{v:?}");

        // 50 km in 10 minutes = 300 km/h.
        let v = minutes_after_50_km(10);
        assert_eq!(v.status, VerificationStatus::Invalid);
        assert!(
            matches!(v.reasons[..], [Reason::ImpossibleSpeed { speed_kmh }] if near(speed_kmh, 300.0)),
            "{v:?}"
        );

        // 50 km in an hour is ordinary driving.
        assert_eq!(minutes_after_50_km(60).status, VerificationStatus::Verified);
    }

    #[test]
    fn covering_a_long_hop_with_no_elapsed_time_is_invalid() {
        let config = VerifyConfig::default();
        let fix = fix_at(CUSTOMER, 10.0);
        for elapsed_ms in [0, -60_000, i64::MIN] {
            let v =
                verify_after(&fix, &config, north_of(CUSTOMER, 2_000.0), NOW_MS.saturating_sub(elapsed_ms));
            assert_eq!(v.status, VerificationStatus::Invalid, "{elapsed_ms}: {v:?}");
            match v.reasons[..] {
                // 2 km counted over one second.
                [Reason::ImpossibleSpeed { speed_kmh }] => {
                    assert!((speed_kmh - 7200.0).abs() < 1e-6);
                    assert!(speed_kmh.is_finite());
                }
                ref other => panic!("unexpected reasons {other:?}"),
            }
        }
    }

    #[test]
    fn short_hops_are_never_judged_on_speed() {
        let config = VerifyConfig::default();
        let fix = fix_at(CUSTOMER, 10.0);
        // 900 m in one second (3240 km/h), in no time, and backwards in time.
        for previous_time in [NOW_MS - 1000, NOW_MS, NOW_MS + 60_000] {
            let v = verify_after(&fix, &config, north_of(CUSTOMER, 900.0), previous_time);
            assert_eq!(v.status, VerificationStatus::Verified, "{v:?}");
        }
    }

    #[test]
    fn device_time_ahead_of_receipt_is_invalid() {
        let config = VerifyConfig::default();
        let fix = fix_at(CUSTOMER, 10.0);
        let mut ctx = context(&fix, &config);

        // The device time is not believed, and with it no speed judged from it.
        ctx.received_at_ms = Some(NOW_MS - 301_500);
        let v = verify_checkin(&ctx);
        assert_eq!(v.status, VerificationStatus::Invalid);
        assert_eq!(v.reasons, vec![Reason::ClockSkew { skew_s: 302 }]);
        assert_eq!(v.reasons[0].message(), "device clock is 302 s ahead of the server");

        // Exactly at the limit is tolerated.
        ctx.received_at_ms = Some(NOW_MS - 300_000);
        assert_eq!(verify_checkin(&ctx).status, VerificationStatus::Verified);
    }

    #[test]
    fn a_fix_uploaded_days_later_is_not_clock_skew() {
        let config = VerifyConfig::default();
        let fix = fix_at(CUSTOMER, 10.0);
        let mut ctx = context(&fix, &config);
        ctx.received_at_ms = Some(NOW_MS + 3 * 24 * 3600 * 1000);
        assert_eq!(verify_checkin(&ctx).status, VerificationStatus::Verified);
        ctx.received_at_ms = Some(i64::MAX);
        assert_eq!(verify_checkin(&ctx).status, VerificationStatus::Verified);
    }

    #[test]
    fn mock_location_is_flagged() {
        let config = VerifyConfig::default();
        let mut fix = fix_at(CUSTOMER, 10.0);
        fix.mock_location = true;
        let v = verify_checkin(&context(&fix, &config));
        assert_eq!(v.status, VerificationStatus::Flagged);
        assert_eq!(v.reasons, vec![Reason::MockLocation]);
    }

    #[test]
    fn all_failed_checks_are_reported_together() {
        let config = VerifyConfig::default();
        let mut fix = fix_at(north_of(CUSTOMER, 5_000.0), 10.0);
        fix.mock_location = true;
        let previous =
            PreviousCheckin { point: north_of(CUSTOMER, 55_000.0), device_time_ms: NOW_MS - 10 * 60 * 1000 };
        let mut ctx = context(&fix, &config);
        ctx.previous = Some(&previous);
        ctx.received_at_ms = Some(NOW_MS - 3_600_000);
        let v = verify_checkin(&ctx);
        assert_eq!(v.status, VerificationStatus::Invalid);
        let codes: Vec<&str> = v.reasons.iter().map(Reason::code).collect();
        assert_eq!(codes, ["outside_fence", "impossible_speed", "clock_skew", "mock_location"]);
    }

    #[test]
    fn nan_and_out_of_range_fixes_are_invalid_not_panics() {
        let config = VerifyConfig::default();
        let bad_points = [
            LatLon { lat: f64::NAN, lon: 13.4 },
            LatLon { lat: 52.5, lon: f64::INFINITY },
            LatLon { lat: f64::NEG_INFINITY, lon: f64::NAN },
            LatLon { lat: 91.0, lon: 13.4 },
            LatLon { lat: 52.5, lon: -180.5 },
        ];
        let previous = PreviousCheckin { point: north_of(CUSTOMER, 5_000.0), device_time_ms: NOW_MS };
        for point in bad_points {
            let fix = fix_at(point, 10.0);
            let mut ctx = context(&fix, &config);
            ctx.previous = Some(&previous);
            ctx.received_at_ms = Some(NOW_MS);
            let v = verify_checkin(&ctx);
            assert_eq!(v.status, VerificationStatus::Invalid, "{point:?}");
            assert!(matches!(v.reasons[..], [Reason::InvalidFix { .. }]), "{v:?}");
            assert_eq!(v.distance_m, 0.0);
        }

        for accuracy in [f64::NAN, -1.0, f64::INFINITY] {
            let fix = fix_at(CUSTOMER, accuracy);
            let v = verify_checkin(&context(&fix, &config));
            assert_eq!(v.status, VerificationStatus::Invalid, "{accuracy}");
            assert!(matches!(v.reasons[..], [Reason::InvalidFix { .. }]));
        }

        // Garbage everywhere at once, including the customer, the previous
        // check-in and the times.
        let fix = CheckinFix {
            point: LatLon { lat: f64::NAN, lon: f64::NAN },
            accuracy_m: f64::NAN,
            device_time_ms: i64::MAX,
            mock_location: true,
        };
        let previous =
            PreviousCheckin { point: LatLon { lat: f64::INFINITY, lon: f64::NAN }, device_time_ms: i64::MIN };
        let ctx = CheckinContext {
            fix: &fix,
            customer: LatLon { lat: f64::NAN, lon: 1e300 },
            customer_datum: Datum::Gcj02,
            fence_override_m: Some(f64::NEG_INFINITY),
            previous: Some(&previous),
            received_at_ms: Some(i64::MIN),
            config: &config,
        };
        let v = verify_checkin(&ctx);
        assert_eq!(v.status, VerificationStatus::Invalid);
        for reason in &v.reasons {
            assert!(!reason.message().is_empty());
        }
    }

    #[test]
    fn verification_round_trips_through_json() {
        let config = VerifyConfig::default();
        let mut fix = fix_at(north_of(CUSTOMER, 412.0), 10.0);
        fix.mock_location = true;
        let v = verify_checkin(&context(&fix, &config));
        let json = serde_json::to_value(&v).expect("serialize");
        assert_eq!(json["status"], "flagged");
        assert_eq!(json["reasons"][0]["code"], "outside_fence");
        assert_eq!(json["reasons"][1]["code"], "mock_location");
        let back: Verification = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, v);
    }

    #[test]
    fn reason_codes_match_the_serde_tag() {
        let reasons = [
            Reason::OutsideFence { distance_m: 1.0, allowed_m: 2.0 },
            Reason::TooFast { speed_kmh: 1.0 },
            Reason::ImpossibleSpeed { speed_kmh: 1.0 },
            Reason::ClockSkew { skew_s: 1 },
            Reason::MockLocation,
            Reason::PoorAccuracy { accuracy_m: 1.0 },
            Reason::InvalidFix { detail: "x".to_owned() },
            Reason::UnknownCustomer,
        ];
        for reason in reasons {
            let json = serde_json::to_value(&reason).expect("serialize");
            assert_eq!(json["code"], reason.code());
            assert!(!reason.message().is_empty());
        }
    }

    #[test]
    fn datum_parses_and_prints() {
        assert_eq!("wgs84".parse::<Datum>(), Ok(Datum::Wgs84));
        assert_eq!(" GCJ-02 ".parse::<Datum>(), Ok(Datum::Gcj02));
        assert_eq!("bd09".parse::<Datum>(), Err(GeoError::UnknownDatum("bd09".to_owned())));
        for datum in [Datum::Wgs84, Datum::Gcj02] {
            assert_eq!(datum.as_str().parse::<Datum>(), Ok(datum));
            assert_eq!(serde_json::to_value(datum).expect("serialize"), datum.as_str());
        }
    }

    #[test]
    fn lat_lon_new_validates() {
        assert!(LatLon::new(90.0, -180.0).is_ok());
        assert_eq!(LatLon::new(f64::NAN, 0.0), Err(GeoError::NotFinite));
        assert_eq!(LatLon::new(0.0, 181.0), Err(GeoError::OutOfRange { lat: 0.0, lon: 181.0 }));
    }

    #[test]
    fn wgs84_to_gcj02_matches_published_reference_values() {
        // (wgs lat, wgs lon, gcj lat, gcj lon) from the widely used
        // eviltransform test suite. It uses a = 6378137 instead of 6378245,
        // which moves the result by about a centimetre, hence the tolerance
        // of 1e-6 degrees (~0.1 m).
        let cases = [
            (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215), // Shanghai
            (22.543847, 113.912316, 22.540796131694766, 113.9171764808363), // Shenzhen
            (39.911954, 116.377817, 39.91334545536069, 116.38404722455657), // Beijing
        ];
        for (wlat, wlon, glat, glon) in cases {
            let gcj = wgs84_to_gcj02(LatLon { lat: wlat, lon: wlon });
            assert!((gcj.lat - glat).abs() < 1e-6, "{gcj:?}");
            assert!((gcj.lon - glon).abs() < 1e-6, "{gcj:?}");
        }
    }

    #[test]
    fn gcj02_customer_is_converted_before_measuring() {
        let config = VerifyConfig::default();
        // Tiananmen Gate, WGS-84: where the rep actually stands.
        let true_spot = LatLon { lat: 39.9087, lon: 116.3975 };
        let stored_gcj = wgs84_to_gcj02(true_spot);
        let offset = distance_m(true_spot, stored_gcj);
        assert!((400.0..700.0).contains(&offset), "offset {offset}");

        let fix = fix_at(true_spot, 5.0);
        let mut ctx = context(&fix, &config);
        ctx.customer = stored_gcj;

        // Misreading the GCJ-02 record as WGS-84 puts the rep outside.
        ctx.customer_datum = Datum::Wgs84;
        let wrong = verify_checkin(&ctx);
        assert_eq!(wrong.status, VerificationStatus::Flagged);
        assert!((wrong.distance_m - offset).abs() < 1e-9);

        ctx.customer_datum = Datum::Gcj02;
        let right = verify_checkin(&ctx);
        assert_eq!(right.status, VerificationStatus::Verified, "{right:?}");
        assert!(right.distance_m < 0.01, "{}", right.distance_m);
    }

    #[test]
    fn outside_china_gcj02_is_identity() {
        let places = [
            LatLon { lat: 51.5074, lon: -0.1278 },   // London
            LatLon { lat: 40.7128, lon: -74.006 },   // New York
            LatLon { lat: 35.6762, lon: 139.6503 },  // Tokyo: east of the box
            LatLon { lat: -33.8688, lon: 151.2093 }, // Sydney
        ];
        for p in places {
            assert_eq!(wgs84_to_gcj02(p), p);
            assert_eq!(gcj02_to_wgs84(p), p);
            assert_eq!(to_wgs84(p, Datum::Gcj02), p);
        }
        let nan = LatLon { lat: f64::NAN, lon: 116.0 };
        assert!(wgs84_to_gcj02(nan).lat.is_nan());
        assert!(gcj02_to_wgs84(nan).lat.is_nan());
    }

    proptest! {
        #[test]
        fn gcj02_round_trip_is_within_a_centimetre(
            // China's bounding box, kept 0.05 degrees inside the edges where
            // the transform is not one-to-one (see `gcj02_to_wgs84`).
            lat in 0.8793f64..55.7771,
            lon in 72.054f64..137.7847,
        ) {
            let wgs = LatLon { lat, lon };
            let gcj = wgs84_to_gcj02(wgs);
            let back = gcj02_to_wgs84(gcj);
            let err = distance_m(wgs, back);
            prop_assert!(err < 0.01, "{wgs:?} -> {gcj:?} -> {back:?}: {err} m");
        }
    }
}
