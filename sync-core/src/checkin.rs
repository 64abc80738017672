//! The check-in policy that the server and the device both apply: which of the rep's earlier
//! fixes a new check-in is compared with, the verdict, and whether the fix may itself become a
//! reference for later check-ins.
//!
//! [`geo::verify_checkin`] judges one fix against one earlier fix. That alone can be fooled:
//!
//! - a check-in dated just *before* the rep's last one has no earlier neighbour to be compared
//!   with, so the rep's real trail must be checked on both sides of it in time;
//! - a fix dated far in the future, once it is "the last check-in", makes every later real
//!   check-in look older than the reference, so a fix may only become a reference when nothing
//!   is wrong with the fix itself ([`Judgement::reference`]);
//! - absurd device times (before 2020, `i64::MIN`) defeat every speed computation and are refused.
//!
//! Everything here is pure: the history, the fix, the customer and the receipt time (on the device,
//! its own clock) come in, a verdict comes out.

use serde::{Deserialize, Serialize};

use crate::docs::{Checkin, CheckinVerification, Customer, FlagReason, Visit};
use crate::geo::{self, CheckinFix, Datum, LatLon, Reason, Verification, VerificationStatus, VerifyConfig};

/// How many reference fixes of a rep are kept: the newest by device time. A check-in older than
/// all of them is still compared with the oldest kept one, on its later side.
pub const HISTORY_LEN: usize = 64;

/// Device times before this (2020-01-01T00:00:00Z) are not believed: no check-in of this
/// product predates it, and a clock reset to 1970, or `i64::MIN`, would otherwise make every
/// speed look harmless.
pub const EARLIEST_DEVICE_TIME_MS: i64 = 1_577_836_800_000;

/// A fix trusted as part of the rep's trail (WGS-84).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RefFix {
    pub lat: f64,
    pub lon: f64,
    pub device_time_ms: i64,
}

impl RefFix {
    fn point(&self) -> LatLon {
        LatLon { lat: self.lat, lon: self.lon }
    }
}

/// The newest trusted fixes of one rep, ordered by device time, at most [`HISTORY_LEN`].
///
/// Serialized as `{"fixes": [...]}`; what is read back is put in order and bounded again, so a
/// stored history edited by hand or by an older build cannot break the invariants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "HistoryRepr")]
pub struct CheckinHistory {
    fixes: Vec<RefFix>,
}

#[derive(Deserialize)]
struct HistoryRepr {
    #[serde(default)]
    fixes: Vec<RefFix>,
}

impl From<HistoryRepr> for CheckinHistory {
    fn from(repr: HistoryRepr) -> Self {
        let mut history = CheckinHistory::new();
        for fix in repr.fixes {
            history.record(fix);
        }
        history
    }
}

impl CheckinHistory {
    pub fn new() -> Self {
        CheckinHistory { fixes: Vec::new() }
    }

    /// Oldest first.
    pub fn fixes(&self) -> &[RefFix] {
        &self.fixes
    }

    pub fn len(&self) -> usize {
        self.fixes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fixes.is_empty()
    }

    /// The newest fix at or before `t` and the oldest fix after it. A fix at the same time as a
    /// check-in counts as before it, so that covering a distance in no time is judged (impossible).
    pub fn neighbours(&self, t: i64) -> (Option<&RefFix>, Option<&RefFix>) {
        let split = self.fixes.partition_point(|f| f.device_time_ms <= t);
        (split.checked_sub(1).and_then(|i| self.fixes.get(i)), self.fixes.get(split))
    }

    /// Adds a fix in time order, dropping the oldest beyond [`HISTORY_LEN`]. Only
    /// [`Judgement::reference`] should be recorded; a fix with unusable coordinates or time is
    /// ignored, and so is an exact duplicate (the same check-in judged twice).
    pub fn record(&mut self, fix: RefFix) {
        if LatLon::new(fix.lat, fix.lon).is_err() || fix.device_time_ms < EARLIEST_DEVICE_TIME_MS {
            return;
        }
        if self.fixes.contains(&fix) {
            return;
        }
        let at = self.fixes.partition_point(|f| f.device_time_ms <= fix.device_time_ms);
        self.fixes.insert(at, fix);
        if self.fixes.len() > HISTORY_LEN {
            let excess = self.fixes.len() - HISTORY_LEN;
            self.fixes.drain(..excess);
        }
    }

    /// Rebuilds a rep's history from the server's stored verdicts on their visits: every check-in
    /// of `rep` whose verdict [`is_reference`], with a device time that was sane when it was
    /// received. For the device (which holds the rep's visits, verdicts included) and for
    /// migrating from a single stored last check-in.
    pub fn from_visits<'a>(
        rep: &str,
        visits: impl IntoIterator<Item = &'a Visit>,
        config: &VerifyConfig,
    ) -> Self {
        let mut history = CheckinHistory::new();
        for visit in visits.into_iter().filter(|v| v.rep == rep) {
            for c in &visit.checkins {
                let Some(verdict) = visit.verification.get(&c.id) else { continue };
                let latest =
                    verdict.received_at_ms.saturating_add(config.max_clock_skew_s.saturating_mul(1000));
                // Verdicts written before this policy existed accepted absurd times.
                if is_reference(verdict) && c.device_time_ms <= latest {
                    history.record(RefFix { lat: c.lat, lon: c.lon, device_time_ms: c.device_time_ms });
                }
            }
        }
        history
    }

    /// A rep's history as a device sees it: the server's verdicts on the rep's visits, then the
    /// device's own check-ins the server has not judged yet, judged here in time order by the same
    /// policy (`site_of` finds each visit's customer; `now_ms` is the device's clock).
    pub fn on_device(
        rep: &str,
        visits: &[&Visit],
        site_of: impl Fn(&str) -> Option<CustomerSite>,
        now_ms: i64,
        config: &VerifyConfig,
    ) -> Self {
        let mut history = CheckinHistory::from_visits(rep, visits.iter().copied(), config);
        let mut unjudged: Vec<(&Checkin, Option<CustomerSite>)> = visits
            .iter()
            .filter(|v| v.rep == rep)
            .flat_map(|v| {
                let site = site_of(&v.customer_id);
                v.checkins.iter().filter(|c| !v.verification.contains_key(&c.id)).map(move |c| (c, site))
            })
            .collect();
        unjudged.sort_by_key(|(c, _)| c.device_time_ms);
        for (c, site) in unjudged {
            judge_and_record(&mut history, &fix_of(c), site.as_ref(), now_ms, config);
        }
        history
    }
}

/// What a check-in is judged against on the customer's side.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CustomerSite {
    pub location: LatLon,
    pub datum: Datum,
    /// Per-customer fence; clamped to [`geo::MAX_GEOFENCE_M`] whatever is stored.
    pub geofence_m: Option<f64>,
}

impl CustomerSite {
    /// The site of a customer document, or `None` when its location or datum is unusable (then the
    /// check-in is judged as against an unknown customer: master data needs fixing).
    pub fn of(customer: &Customer) -> Option<CustomerSite> {
        let (location, datum) = customer.location.parsed("location").ok()?;
        Some(CustomerSite { location, datum, geofence_m: customer.geofence_m })
    }
}

/// The verdict on one check-in, and whether its fix may join the rep's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verification: Verification,
    /// `Some` only when nothing is wrong with the fix itself ([`is_trusting`]): the only reason it
    /// may carry is being outside the fence, which says where the rep was, not that the fix lies.
    pub reference: Option<RefFix>,
}

impl Judgement {
    pub fn trusted(&self) -> bool {
        self.reference.is_some()
    }
}

/// Whether a check-in with these reasons may become a reference. Every reason but
/// `outside_fence` casts doubt on the fix itself (its time, its position, its source) or on what it
/// was checked against (`unknown_customer`: nothing to audit it by), so only outside-fence and
/// verified fixes are references.
pub fn is_trusting<'a>(status: VerificationStatus, reason_codes: impl IntoIterator<Item = &'a str>) -> bool {
    status != VerificationStatus::Invalid && reason_codes.into_iter().all(|c| c == "outside_fence")
}

/// [`is_trusting`] for a verdict as stored in a visit.
pub fn is_reference(stored: &CheckinVerification) -> bool {
    is_trusting(stored.status, stored.reasons.iter().map(|r| r.code.as_str()))
}

/// The fix recorded in a check-in.
pub fn fix_of(c: &Checkin) -> CheckinFix {
    CheckinFix {
        point: LatLon { lat: c.lat, lon: c.lon },
        accuracy_m: c.accuracy_m,
        device_time_ms: c.device_time_ms,
        mock_location: c.mock_location,
    }
}

/// Judges a check-in against the rep's trusted history on both sides in time, the customer
/// (`None`: unknown or out of the rep's scope, judged alike) and the receipt time (on the device,
/// its own clock: a fix dated ahead of it is as suspicious there).
///
/// Never panics. Does not change the history: record [`Judgement::reference`] when it is `Some`,
/// or use [`judge_and_record`]. Several check-ins arriving together should be judged in device-time
/// order, recording as you go, so that each sees the others.
pub fn judge(
    history: &CheckinHistory,
    fix: &CheckinFix,
    customer: Option<&CustomerSite>,
    received_at_ms: i64,
    config: &VerifyConfig,
) -> Judgement {
    let (before, after) = history.neighbours(fix.device_time_ms);
    let site =
        customer.map(|c| geo::Site { location: c.location, datum: c.datum, fence_override_m: c.geofence_m });
    let (distance_m, mut reasons) = geo::assess(
        fix,
        site.as_ref(),
        before.map(|f| (f.point(), f.device_time_ms)),
        after.map(|f| (f.point(), f.device_time_ms)),
        Some(received_at_ms),
        config,
    );
    if fix.device_time_ms < EARLIEST_DEVICE_TIME_MS {
        reasons.insert(
            0,
            Reason::InvalidFix { detail: format!("device time {} ms is before 2020", fix.device_time_ms) },
        );
    }
    let status = geo::status_of(&reasons);
    let trusted = is_trusting(status, reasons.iter().map(Reason::code));
    let reference = trusted.then_some(RefFix {
        lat: fix.point.lat,
        lon: fix.point.lon,
        device_time_ms: fix.device_time_ms,
    });
    // Without a customer nothing was measured: the stored form says -1, never a distance that a
    // rep could use to locate a customer outside their scope.
    let distance_m = if site.is_some() { distance_m } else { f64::NAN };
    Judgement { verification: Verification { status, distance_m, reasons }, reference }
}

/// [`judge`], then records the fix if it is trusted.
pub fn judge_and_record(
    history: &mut CheckinHistory,
    fix: &CheckinFix,
    customer: Option<&CustomerSite>,
    received_at_ms: i64,
    config: &VerifyConfig,
) -> Judgement {
    let judgement = judge(history, fix, customer, received_at_ms, config);
    if let Some(reference) = judgement.reference {
        history.record(reference);
    }
    judgement
}

impl CheckinVerification {
    /// The stored form of a verification (what the server writes into the visit).
    pub fn from_verification(v: &Verification, received_at_ms: i64) -> Self {
        CheckinVerification {
            status: v.status,
            // -1 marks "not measured" in the stored form, which must stay JSON-safe.
            distance_m: if v.distance_m.is_finite() { v.distance_m } else { -1.0 },
            reasons: v
                .reasons
                .iter()
                .map(|r| FlagReason { code: r.code().into(), message: r.message() })
                .collect(),
            received_at_ms,
            review: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Metres per degree of latitude on the sphere the distances are measured on.
    const M_PER_DEG: f64 = 6_371_008.8 * std::f64::consts::PI / 180.0;
    const SHOP: LatLon = LatLon { lat: 52.520_008, lon: 13.404_954 };
    const T: i64 = 1_800_000_000_000;
    const SECOND: i64 = 1000;
    const HOUR: i64 = 3_600_000;

    fn north(metres: f64) -> LatLon {
        LatLon { lat: SHOP.lat + metres / M_PER_DEG, lon: SHOP.lon }
    }

    fn fix(point: LatLon, device_time_ms: i64) -> CheckinFix {
        CheckinFix { point, accuracy_m: 10.0, device_time_ms, mock_location: false }
    }

    fn site(point: LatLon) -> CustomerSite {
        CustomerSite { location: point, datum: Datum::Wgs84, geofence_m: None }
    }

    fn history_with(fixes: &[CheckinFix]) -> CheckinHistory {
        let mut h = CheckinHistory::new();
        for f in fixes {
            h.record(RefFix { lat: f.point.lat, lon: f.point.lon, device_time_ms: f.device_time_ms });
        }
        assert_eq!(h.len(), fixes.len(), "test setup: every fix is recorded");
        h
    }

    fn codes(j: &Judgement) -> Vec<&'static str> {
        j.verification.reasons.iter().map(Reason::code).collect()
    }

    #[test]
    fn the_test_geometry_is_exact() {
        let d = geo::distance_m(SHOP, north(16_500.0));
        assert!((d - 16_500.0).abs() < 1e-6, "{d}");
    }

    #[test]
    fn an_honest_check_in_is_verified_and_becomes_a_reference() {
        let config = VerifyConfig::default();
        let mut history = history_with(&[fix(north(20_000.0), T - HOUR)]);
        let j = judge_and_record(&mut history, &fix(north(50.0), T), Some(&site(SHOP)), T + HOUR, &config);
        assert_eq!(j.verification.status, VerificationStatus::Verified, "{j:?}");
        assert_eq!(
            j.reference,
            Some(RefFix { lat: north(50.0).lat, lon: north(50.0).lon, device_time_ms: T })
        );
        assert_eq!(history.len(), 2);
    }

    #[test]
    fn a_check_in_dated_just_before_the_last_one_is_judged_against_it() {
        // Found: 16.5 km away and dated 10 s before the rep's last check-in was verified, because
        // older check-ins skipped the speed check.
        let config = VerifyConfig::default();
        let history = history_with(&[fix(north(16_500.0), T)]);
        let j = judge(&history, &fix(SHOP, T - 10 * SECOND), Some(&site(SHOP)), T + HOUR, &config);
        assert_eq!(j.verification.status, VerificationStatus::Invalid, "{j:?}");
        assert_eq!(codes(&j), ["impossible_speed"]);
        assert!(!j.trusted());

        // Judged on both sides: fine after the earlier fix, impossible before the later one.
        let history = history_with(&[fix(north(1_500.0), T - HOUR), fix(north(16_500.0), T + 10 * SECOND)]);
        let j = judge(&history, &fix(SHOP, T), Some(&site(SHOP)), T + HOUR, &config);
        assert_eq!(codes(&j), ["impossible_speed"]);
    }

    #[test]
    fn a_fix_dated_a_century_ahead_is_invalid_and_never_a_reference() {
        // Found: only flagged clock_skew, it became the last check-in, after which two check-ins
        // 16.8 km and 1 s apart were both verified.
        let config = VerifyConfig::default();
        let received = T + HOUR;
        let mut history = CheckinHistory::new();
        let century = 100 * 365 * 24 * HOUR;
        let j = judge_and_record(&mut history, &fix(SHOP, T + century), Some(&site(SHOP)), received, &config);
        assert_eq!(j.verification.status, VerificationStatus::Invalid);
        assert_eq!(codes(&j), ["clock_skew"]);
        assert!(history.is_empty());

        let far = site(north(16_800.0));
        let a = judge_and_record(&mut history, &fix(SHOP, T), Some(&site(SHOP)), received, &config);
        assert_eq!(a.verification.status, VerificationStatus::Verified);
        let b =
            judge_and_record(&mut history, &fix(north(16_800.0), T + SECOND), Some(&far), received, &config);
        assert_eq!(b.verification.status, VerificationStatus::Invalid, "{b:?}");
        assert_eq!(codes(&b), ["impossible_speed"]);
        assert_eq!(history.len(), 1);
    }

    #[test]
    fn a_vague_fix_does_not_pass_and_is_not_a_reference() {
        // Found: accuracy 999 m turned a check-in 1150 m away into "verified".
        let config = VerifyConfig::default();
        let mut vague = fix(north(1_150.0), T);
        vague.accuracy_m = 999.0;
        let j = judge(&CheckinHistory::new(), &vague, Some(&site(SHOP)), T, &config);
        assert_eq!(j.verification.status, VerificationStatus::Flagged);
        assert_eq!(codes(&j), ["outside_fence", "poor_accuracy"]);
        assert!(!j.trusted());
    }

    #[test]
    fn a_huge_customer_fence_is_clamped() {
        // Found: a prospect with geofence_m = 100 000 verified a check-in 60 km away.
        let config = VerifyConfig::default();
        let mut prospect = site(SHOP);
        prospect.geofence_m = Some(100_000.0);
        let j = judge(&CheckinHistory::new(), &fix(north(60_000.0), T), Some(&prospect), T, &config);
        assert_eq!(j.verification.status, VerificationStatus::Flagged);
        assert!(matches!(
            j.verification.reasons[..],
            [Reason::OutsideFence { allowed_m, .. }] if allowed_m == geo::MAX_GEOFENCE_M
        ));
        // Being outside the fence says where the rep was, not that the fix lies.
        assert!(j.trusted());
    }

    #[test]
    fn absurd_device_times_are_invalid_and_never_references() {
        // Found: device_time_ms = i64::MIN was verified.
        let config = VerifyConfig::default();
        for t in [i64::MIN, -1, 0, EARLIEST_DEVICE_TIME_MS - 1] {
            let mut history = history_with(&[fix(SHOP, T)]);
            let j = judge_and_record(&mut history, &fix(SHOP, t), Some(&site(SHOP)), T, &config);
            assert_eq!(j.verification.status, VerificationStatus::Invalid, "{t}");
            assert_eq!(codes(&j), ["invalid_fix"], "{t}");
            assert!(j.verification.reasons[0].message().contains("before 2020"));
            assert_eq!(history.len(), 1, "{t}");
        }
        let j =
            judge(&CheckinHistory::new(), &fix(SHOP, EARLIEST_DEVICE_TIME_MS), Some(&site(SHOP)), T, &config);
        assert_eq!(j.verification.status, VerificationStatus::Verified);
    }

    #[test]
    fn mock_and_unknown_customer_check_ins_are_not_references() {
        let config = VerifyConfig::default();
        let mut mock = fix(SHOP, T);
        mock.mock_location = true;
        let j = judge(&CheckinHistory::new(), &mock, Some(&site(SHOP)), T, &config);
        assert_eq!((j.verification.status, j.trusted()), (VerificationStatus::Flagged, false));

        let j = judge(&CheckinHistory::new(), &fix(SHOP, T), None, T, &config);
        assert_eq!(j.verification.status, VerificationStatus::Invalid);
        assert_eq!(codes(&j), ["unknown_customer"]);
        assert!(j.verification.distance_m.is_nan(), "nothing measured, nothing told");
        assert!(!j.trusted());
    }

    #[test]
    fn neighbours_are_the_nearest_on_each_side() {
        let history = history_with(&[fix(SHOP, T), fix(north(1.0), T + HOUR), fix(north(2.0), T + 2 * HOUR)]);
        let times = |(a, b): (Option<&RefFix>, Option<&RefFix>)| {
            (a.map(|f| f.device_time_ms), b.map(|f| f.device_time_ms))
        };
        assert_eq!(times(history.neighbours(T - 1)), (None, Some(T)));
        assert_eq!(times(history.neighbours(T)), (Some(T), Some(T + HOUR)));
        assert_eq!(times(history.neighbours(T + HOUR + 1)), (Some(T + HOUR), Some(T + 2 * HOUR)));
        assert_eq!(times(history.neighbours(i64::MAX)), (Some(T + 2 * HOUR), None));
        assert_eq!(times(CheckinHistory::new().neighbours(T)), (None, None));
    }

    #[test]
    fn the_history_stays_sorted_bounded_and_sane() {
        let mut history = CheckinHistory::new();
        // Recorded newest first, one more than fits.
        for i in (0..=HISTORY_LEN as i64).rev() {
            history.record(RefFix { lat: SHOP.lat, lon: SHOP.lon, device_time_ms: T + i * HOUR });
        }
        assert_eq!(history.len(), HISTORY_LEN);
        assert_eq!(history.fixes()[0].device_time_ms, T + HOUR, "the oldest was dropped");
        assert!(history.fixes().windows(2).all(|w| w[0].device_time_ms <= w[1].device_time_ms));

        let before = history.clone();
        history.record(history.fixes()[3]);
        history.record(RefFix { lat: f64::NAN, lon: 0.0, device_time_ms: T + 1 });
        history.record(RefFix { lat: 0.0, lon: 0.0, device_time_ms: i64::MIN });
        assert_eq!(history, before, "duplicates and garbage are not recorded");
    }

    #[test]
    fn a_stored_history_is_normalised_when_read() {
        let json = serde_json::json!({"fixes": [
            {"lat": 1.0, "lon": 1.0, "device_time_ms": T + HOUR},
            {"lat": 1.0, "lon": 1.0, "device_time_ms": T},
            {"lat": 99.0, "lon": 1.0, "device_time_ms": T},
        ]});
        let history: CheckinHistory = serde_json::from_value(json).expect("deserialize");
        let times: Vec<i64> = history.fixes().iter().map(|f| f.device_time_ms).collect();
        assert_eq!(times, [T, T + HOUR]);
        let back: CheckinHistory =
            serde_json::from_value(serde_json::to_value(&history).expect("serialize")).expect("round trip");
        assert_eq!(back, history);
    }

    #[test]
    fn the_stored_form_keeps_status_codes_and_messages() {
        let config = VerifyConfig::default();
        let j = judge(&CheckinHistory::new(), &fix(north(600.0), T), Some(&site(SHOP)), T, &config);
        let stored = CheckinVerification::from_verification(&j.verification, T + 5);
        assert_eq!(stored.status, "flagged");
        assert_eq!(stored.received_at_ms, T + 5);
        assert!((stored.distance_m - 600.0).abs() < 1e-6);
        assert_eq!(stored.reasons.len(), 1);
        assert_eq!(stored.reasons[0].code, "outside_fence");
        assert_eq!(stored.reasons[0].message, "600 m from the customer, allowed 200 m");
        assert!(is_reference(&stored));

        let nan = Verification { status: VerificationStatus::Invalid, distance_m: f64::NAN, reasons: vec![] };
        let stored = CheckinVerification::from_verification(&nan, T);
        assert_eq!((stored.status.as_str(), stored.distance_m), ("invalid", -1.0));
        assert!(!is_reference(&stored));
    }

    #[test]
    fn a_history_is_rebuilt_from_the_servers_verdicts() {
        let config = VerifyConfig::default();
        let checkin = |id: &str, t: i64| Checkin::new(id, SHOP.lat, SHOP.lon, 5.0, t);
        let verdict = |status: &str, code: Option<&str>| CheckinVerification {
            status: status.parse().expect("a status"),
            distance_m: 0.0,
            reasons: code
                .map(|c| FlagReason { code: c.into(), message: String::new() })
                .into_iter()
                .collect(),
            received_at_ms: T,
            review: None,
        };
        let visit = |rep: &str, entries: Vec<(Checkin, Option<CheckinVerification>)>| {
            let mut verification = HashMap::new();
            let mut checkins = vec![];
            for (c, v) in entries {
                if let Some(v) = v {
                    verification.insert(c.id.clone(), v);
                }
                checkins.push(c);
            }
            Visit {
                state: crate::docs::VisitState::CheckedIn,
                checkins,
                verification,
                ..Visit::planned(&format!("v-{rep}"), "c", rep, T, T)
            }
        };
        let visits = [
            visit(
                "alice",
                vec![
                    (checkin("ok", T - 3 * HOUR), Some(verdict("verified", None))),
                    (checkin("outside", T - 2 * HOUR), Some(verdict("flagged", Some("outside_fence")))),
                    (checkin("mock", T - HOUR), Some(verdict("flagged", Some("mock_location")))),
                    (checkin("pending", T - HOUR / 2), None),
                    // Verified by a build without the time checks.
                    (checkin("future", T + 10 * HOUR), Some(verdict("verified", None))),
                    (checkin("ancient", i64::MIN), Some(verdict("verified", None))),
                ],
            ),
            visit("bob", vec![(checkin("bobs", T), Some(verdict("verified", None)))]),
        ];
        let history = CheckinHistory::from_visits("alice", &visits, &config);
        let times: Vec<i64> = history.fixes().iter().map(|f| f.device_time_ms).collect();
        assert_eq!(times, [T - 3 * HOUR, T - 2 * HOUR]);
    }

    /// A fix in a 30 km square around the shop, within a day, sometimes vague, mocked or absurd.
    fn any_fix() -> impl Strategy<Value = CheckinFix> {
        (
            -15_000.0f64..15_000.0,
            -15_000.0f64..15_000.0,
            prop_oneof![8 => 0i64..24 * HOUR, 1 => Just(i64::MIN), 1 => Just(100 * 365 * 24 * HOUR)],
            prop_oneof![8 => 0.0f64..60.0, 1 => 60.0f64..2_000.0],
            prop::bool::weighted(0.1),
        )
            .prop_map(|(north_m, east_m, dt, accuracy_m, mock_location)| CheckinFix {
                point: LatLon {
                    lat: SHOP.lat + north_m / M_PER_DEG,
                    lon: SHOP.lon + east_m / (M_PER_DEG * SHOP.lat.to_radians().cos()),
                },
                accuracy_m,
                device_time_ms: T.saturating_add(dt),
                mock_location,
            })
    }

    fn speed_kmh(a: &RefFix, f: &CheckinFix) -> f64 {
        let hop_m = geo::distance_m(a.point(), f.point);
        let elapsed_ms = a.device_time_ms.abs_diff(f.device_time_ms).max(1000);
        hop_m / 1000.0 / (elapsed_ms as f64 / HOUR as f64)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn no_fix_too_fast_for_a_trusted_neighbour_is_verified_and_only_trusted_fixes_are_kept(
            fixes in prop::collection::vec(any_fix(), 1..40),
        ) {
            let config = VerifyConfig::default();
            let received = T + 48 * HOUR;
            let mut history = CheckinHistory::new();
            let mut trusted = Vec::new();
            // The first check-in of the day is at the shop and always a reference, so every other
            // fix has at least one neighbour to be judged against.
            let first = fix(SHOP, T + 12 * HOUR);
            let j = judge_and_record(&mut history, &first, Some(&site(SHOP)), received, &config);
            prop_assert!(j.trusted());
            trusted.extend(j.reference);
            for f in &fixes {
                let (before, after) = history.neighbours(f.device_time_ms);
                let neighbours: Vec<RefFix> = before.into_iter().chain(after).copied().collect();
                prop_assert!(!neighbours.is_empty());
                // The customer is where the fix is: only the trail can refuse it.
                let j = judge_and_record(&mut history, f, Some(&site(f.point)), received, &config);
                if j.verification.status == VerificationStatus::Verified {
                    for n in &neighbours {
                        let hop_m = geo::distance_m(n.point(), f.point);
                        prop_assert!(
                            hop_m <= config.min_speed_distance_m || speed_kmh(n, f) <= config.flag_speed_kmh,
                            "{f:?} verified at {} km/h from {n:?}", speed_kmh(n, f)
                        );
                    }
                }
                // What makes a fix unfit as a reference, judged here without the module's help.
                let too_fast = neighbours.iter().any(|n| {
                    geo::distance_m(n.point(), f.point) > config.min_speed_distance_m
                        && speed_kmh(n, f) > config.flag_speed_kmh
                });
                let absurd_time = f.device_time_ms < EARLIEST_DEVICE_TIME_MS
                    || f.device_time_ms > received + config.max_clock_skew_s * 1000;
                let unfit = too_fast || absurd_time || f.mock_location || f.accuracy_m > config.max_accuracy_m;
                if unfit {
                    prop_assert!(!j.trusted(), "{f:?} trusted: {j:?}");
                    prop_assert!(j.verification.status != VerificationStatus::Verified);
                }
                trusted.extend(j.reference);
                for kept in history.fixes() {
                    prop_assert!(trusted.contains(kept), "{kept:?} was never trusted");
                }
                prop_assert!(history.fixes().windows(2).all(|w| w[0].device_time_ms <= w[1].device_time_ms));
                prop_assert!(history.len() <= HISTORY_LEN);
            }
        }
    }
}
