//! Allocation, the A of S.T.A.R.: how often each customer should be contacted (cadence per tier),
//! who is overdue and how urgently, which far low-value customers are better served remotely, and
//! whether reps actually spend their time as planned (about 80 % on A and high-potential B
//! customers).
//!
//! Contact history is read from visits: a completed visit is a contact, and so is any visit checked
//! out with an outcome starting with "remote" (a call or video meeting logged against the visit), so
//! that remote customers stay on cadence without a drive. The output of [`due_visits`] feeds the
//! router.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::segmentation::{PerTier, effective_tier, score};
use fieldsync_core::docs::{Customer, Plan, Tier, Visit, VisitState};
use fieldsync_core::geo::{LatLon, distance_m, to_wgs84};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// A measured or planned visit longer than a working day means somebody forgot to check out; the
/// figure would swamp the time share, so the next best estimate is used instead.
const MAX_PLAUSIBLE_VISIT_MINUTES: f64 = 12.0 * 60.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocationConfig {
    /// A C customer further than this from the rep's base is served remotely.
    pub remote_c_km: f64,
    /// Typical visit length per tier, used when a visit has neither a measured nor a planned duration
    /// (and by the router as the default service time).
    pub visit_minutes: PerTier<f64>,
    /// How much a day overdue (relative to the cadence) weighs per tier.
    pub tier_weights: PerTier<f64>,
    /// B customers whose score is above this quantile of all B scores count as "high-potential B"
    /// and, with A customers, make up the focus the 80/20 share is measured on.
    pub high_potential_b_quantile: f64,
    /// Each rep's base (home or office). Reps missing here are based at the centroid of their
    /// customers.
    #[serde(default)]
    pub bases: BTreeMap<String, LatLon>,
}

impl Default for AllocationConfig {
    fn default() -> Self {
        AllocationConfig {
            remote_c_km: 25.0,
            visit_minutes: PerTier { a: 60.0, b: 45.0, c: 30.0 },
            tier_weights: PerTier { a: 3.0, b: 2.0, c: 1.0 },
            high_potential_b_quantile: 0.5,
            bases: BTreeMap::new(),
        }
    }
}

/// A customer whose next contact is late.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overdue {
    pub customer_id: String,
    pub owner_rep: Option<String>,
    pub tier: Tier,
    pub cadence_days: u32,
    /// Days past due; `None` for a customer never contacted (`never_visited`): there is no due
    /// date to be late from.
    pub days_overdue: Option<f64>,
    /// days_overdue / cadence_days × tier weight. A customer never contacted ranks as one full
    /// cadence late: among the others (first among equals), not above everything forever.
    pub urgency: f64,
    pub remote: bool,
    pub never_visited: bool,
    pub last_contact_ms: Option<i64>,
    /// None when never contacted.
    pub due_at_ms: Option<i64>,
}

/// A customer to contact within a planning window, for the router.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DueVisit {
    pub customer_id: String,
    pub rep: Option<String>,
    pub tier: Tier,
    /// Urgency as it will stand at the end of the window.
    pub priority: f64,
    pub remote: bool,
    /// When the next contact is due; the window start for a customer never contacted.
    pub due_at_ms: i64,
    pub never_visited: bool,
    /// Already overdue when the window opens and not remote: the route should not leave it out.
    pub must: bool,
}

/// How one rep's time was spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepTimeShare {
    pub rep: String,
    pub visits: usize,
    pub minutes_by_tier: PerTier<f64>,
    /// Visits to customers not in the list given (out of scope on this device, or deleted).
    pub other_minutes: f64,
    /// Minutes with A and high-potential B customers.
    pub focus_minutes: f64,
    pub total_minutes: f64,
    /// focus_minutes / total_minutes; 0 when no time was recorded.
    pub focus_share: f64,
    /// The plan's focus share.
    pub target_share: f64,
    /// focus_share − target_share: negative when too little time goes to the focus customers.
    pub gap: f64,
}

/// Days between contacts for a tier, at least 1 (a zero cadence would divide by zero).
pub fn cadence_days(plan: &Plan, tier: Tier) -> u32 {
    let c = &plan.cadence;
    match tier {
        Tier::A => c.a_days,
        Tier::B => c.b_days,
        Tier::C => c.c_days,
    }
    .max(1)
}

/// Whether a visit was checked out as a remote contact (see [`Visit::is_remote_contact`], which the
/// sync rules apply too).
pub fn is_remote_contact(v: &Visit) -> bool {
    v.is_remote_contact()
}

/// Whether a visit counts as contact with the customer.
pub fn is_contact(v: &Visit) -> bool {
    v.state == VisitState::Completed || is_remote_contact(v)
}

/// When the contact happened: check-out time, else the planned end (a visit completed without a
/// check-out, e.g. marked done by a manager).
pub fn contact_time_ms(v: &Visit) -> i64 {
    v.checkout.as_ref().map_or(v.planned_end_ms, |co| co.device_time_ms)
}

/// Latest contact time per customer id.
pub fn last_contacts(visits: &[Visit]) -> BTreeMap<&str, i64> {
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for v in visits.iter().filter(|v| is_contact(v)) {
        let t = contact_time_ms(v);
        last.entry(v.customer_id.as_str()).and_modify(|l| *l = (*l).max(t)).or_insert(t);
    }
    last
}

/// Ids of the C customers served remotely: further than `remote_c_km` from their owner's base.
/// Customers without an owner are measured from the centroid of the other unowned customers.
/// A customer or base with an unusable location is never remote: its distance is unknown.
pub fn remote_customers(customers: &[Customer], plan: &Plan, cfg: &AllocationConfig) -> BTreeSet<String> {
    let mut groups: BTreeMap<Option<&str>, Vec<LatLon>> = BTreeMap::new();
    for c in customers {
        if let Some(p) = location(c) {
            groups.entry(c.owner_rep.as_deref()).or_default().push(p);
        }
    }
    let bases: BTreeMap<Option<&str>, LatLon> = groups
        .iter()
        .filter_map(|(rep, points)| {
            let given = rep.and_then(|r| cfg.bases.get(r)).and_then(|b| LatLon::new(b.lat, b.lon).ok());
            given.or_else(|| centroid(points)).map(|b| (*rep, b))
        })
        .collect();
    let limit_m = cfg.remote_c_km * 1000.0;
    customers
        .iter()
        .filter(|c| effective_tier(c, &plan.thresholds) == Tier::C)
        .filter(|c| {
            let base = bases.get(&c.owner_rep.as_deref());
            // NaN limits compare false: nobody is remote under a broken config.
            matches!((location(c), base), (Some(p), Some(b)) if distance_m(p, *b) > limit_m)
        })
        .map(|c| c.id.clone())
        .collect()
}

fn location(c: &Customer) -> Option<LatLon> {
    c.location.parsed("location").ok().map(|(p, datum)| to_wgs84(p, datum))
}

/// Mean of the points on the sphere (through 3-D unit vectors, so customers either side of the
/// antimeridian average to a point between them, not to the other side of the world). None when the
/// points cancel out.
fn centroid(points: &[LatLon]) -> Option<LatLon> {
    let (mut x, mut y, mut z) = (0.0, 0.0, 0.0);
    for p in points {
        let (lat, lon) = (p.lat.to_radians(), p.lon.to_radians());
        x += lat.cos() * lon.cos();
        y += lat.cos() * lon.sin();
        z += lat.sin();
    }
    let horizontal = x.hypot(y);
    if horizontal.hypot(z) < 1e-9 {
        return None;
    }
    LatLon::new(z.atan2(horizontal).to_degrees(), y.atan2(x).to_degrees()).ok()
}

/// Every customer whose next contact is late at `now_ms`, most urgent first; among equals, customers
/// never contacted first, then by customer id.
pub fn overdue(
    customers: &[Customer],
    visits: &[Visit],
    plan: &Plan,
    cfg: &AllocationConfig,
    now_ms: i64,
) -> Vec<Overdue> {
    let last = last_contacts(visits);
    let remote = remote_customers(customers, plan, cfg);
    let mut out: Vec<Overdue> = customers
        .iter()
        .filter_map(|c| {
            status(c, last.get(c.id.as_str()).copied(), remote.contains(&c.id), plan, cfg, now_ms)
        })
        .collect();
    out.sort_by(|a, b| {
        b.urgency
            .total_cmp(&a.urgency)
            .then(b.never_visited.cmp(&a.never_visited))
            .then_with(|| a.customer_id.cmp(&b.customer_id))
    });
    out
}

/// The customer's contact status at `now_ms`, when overdue.
fn status(
    c: &Customer,
    last_contact_ms: Option<i64>,
    remote: bool,
    plan: &Plan,
    cfg: &AllocationConfig,
    now_ms: i64,
) -> Option<Overdue> {
    let tier = effective_tier(c, &plan.thresholds);
    let cadence_days = cadence_days(plan, tier);
    let (late_days, due_at_ms) = match last_contact_ms {
        None => (f64::from(cadence_days), None),
        Some(last) => {
            let due = last.saturating_add(i64::from(cadence_days) * DAY_MS);
            if now_ms <= due {
                return None;
            }
            // i128: now − due can exceed i64 with garbage device times.
            ((i128::from(now_ms) - i128::from(due)) as f64 / DAY_MS as f64, Some(due))
        }
    };
    let urgency = late_days / f64::from(cadence_days) * weight(*cfg.tier_weights.get(tier));
    Some(Overdue {
        customer_id: c.id.clone(),
        owner_rep: c.owner_rep.clone(),
        tier,
        cadence_days,
        days_overdue: last_contact_ms.map(|_| late_days),
        urgency: if urgency.is_finite() { urgency } else { 0.0 },
        remote,
        never_visited: last_contact_ms.is_none(),
        last_contact_ms,
        due_at_ms,
    })
}

fn weight(w: f64) -> f64 {
    if w.is_finite() && w > 0.0 { w } else { 0.0 }
}

/// Customers due for contact by the end of `[from_ms, to_ms)` (already overdue ones included),
/// highest priority first, same tie-breaks as [`overdue`]. Priority is the urgency at `to_ms`, so a
/// customer that falls due mid-window ranks below one that was already late.
pub fn due_visits(
    customers: &[Customer],
    visits: &[Visit],
    plan: &Plan,
    cfg: &AllocationConfig,
    from_ms: i64,
    to_ms: i64,
) -> Vec<DueVisit> {
    if to_ms <= from_ms {
        return Vec::new();
    }
    overdue(customers, visits, plan, cfg, to_ms)
        .into_iter()
        .map(|o| {
            let due_at_ms = o.due_at_ms.unwrap_or(from_ms);
            DueVisit {
                must: due_at_ms <= from_ms && !o.remote,
                customer_id: o.customer_id,
                rep: o.owner_rep,
                tier: o.tier,
                priority: o.urgency,
                remote: o.remote,
                due_at_ms,
                never_visited: o.never_visited,
            }
        })
        .collect()
}

/// Ids of the focus customers: effective tier A, and B customers whose score is above the
/// configured quantile of the B scores.
pub fn focus_customers(customers: &[Customer], plan: &Plan, cfg: &AllocationConfig) -> BTreeSet<String> {
    focus_of(customers.iter().map(|c| (c.id.as_str(), effective_tier(c, &plan.thresholds), score(c))), cfg)
}

/// [`focus_customers`] from (id, effective tier, score) triples (the report index has no documents).
pub fn focus_of<'a>(
    tiered: impl Iterator<Item = (&'a str, Tier, f64)>,
    cfg: &AllocationConfig,
) -> BTreeSet<String> {
    let tiered: Vec<(&str, Tier, f64)> = tiered.collect();
    let mut b_scores: Vec<f64> =
        tiered.iter().filter(|(_, t, _)| *t == Tier::B).map(|(_, _, s)| *s).collect();
    b_scores.sort_by(f64::total_cmp);
    let cut = quantile(&b_scores, cfg.high_potential_b_quantile);
    tiered
        .into_iter()
        .filter(|(_, t, s)| *t == Tier::A || (*t == Tier::B && cut.is_some_and(|cut| *s > cut)))
        .map(|(id, _, _)| id.to_string())
        .collect()
}

/// Linear-interpolation quantile of sorted values (the usual "type 7"; the median of [40, 100] is
/// 70). A NaN `q` means the median.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
    let last = sorted.len().checked_sub(1)?;
    let pos = q * last as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let (a, b) = (*sorted.get(lo)?, *sorted.get(hi)?);
    Some(a + (b - a) * (pos - lo as f64))
}

/// Minutes a visit took: check-out minus the first check-in when both exist, else the planned
/// window, else the configured typical length for the tier (0 when the customer is unknown).
pub fn visit_duration_minutes(v: &Visit, tier: Option<Tier>, cfg: &AllocationConfig) -> f64 {
    let first_checkin = v.checkins.iter().map(|c| c.device_time_ms).min();
    let checkout = v.checkout.as_ref().map(|co| co.device_time_ms);
    duration_minutes(first_checkin, checkout, (v.planned_start_ms, v.planned_end_ms), tier, cfg)
}

/// [`visit_duration_minutes`] from the visit's times: measured from the first check-in to the
/// check-out, else the planned window, else the tier's typical visit.
pub fn duration_minutes(
    first_checkin_ms: Option<i64>,
    checkout_ms: Option<i64>,
    (planned_start_ms, planned_end_ms): (i64, i64),
    tier: Option<Tier>,
    cfg: &AllocationConfig,
) -> f64 {
    let plausible = |ms: i128| {
        let min = ms as f64 / MINUTE_MS as f64;
        (min > 0.0 && min <= MAX_PLAUSIBLE_VISIT_MINUTES).then_some(min)
    };
    let measured = match (checkout_ms, first_checkin_ms) {
        (Some(co), Some(first)) => plausible(i128::from(co) - i128::from(first)),
        _ => None,
    };
    measured
        .or_else(|| plausible(i128::from(planned_end_ms) - i128::from(planned_start_ms)))
        .unwrap_or_else(|| tier.map_or(0.0, |t| weight(*cfg.visit_minutes.get(t))))
}

/// Per rep, how the time of contacts made in `[from_ms, to_ms)` (by contact time) split across
/// tiers, against the plan's focus share. Lists every rep with a contact in the window or a customer
/// of their own, sorted by rep id; time is credited to the rep who made the visit.
pub fn time_share(
    customers: &[Customer],
    visits: &[Visit],
    plan: &Plan,
    cfg: &AllocationConfig,
    from_ms: i64,
    to_ms: i64,
) -> Vec<RepTimeShare> {
    let tiers: BTreeMap<&str, Tier> =
        customers.iter().map(|c| (c.id.as_str(), effective_tier(c, &plan.thresholds))).collect();
    let focus = focus_customers(customers, plan, cfg);
    let target_share = if plan.focus_share.is_finite() { plan.focus_share.clamp(0.0, 1.0) } else { 0.0 };

    let mut reps: BTreeMap<&str, RepTimeShare> = BTreeMap::new();
    let entry = |rep: &str| -> RepTimeShare {
        RepTimeShare {
            rep: rep.to_owned(),
            visits: 0,
            minutes_by_tier: PerTier::default(),
            other_minutes: 0.0,
            focus_minutes: 0.0,
            total_minutes: 0.0,
            focus_share: 0.0,
            target_share,
            gap: 0.0,
        }
    };
    for rep in customers.iter().filter_map(|c| c.owner_rep.as_deref()) {
        reps.entry(rep).or_insert_with(|| entry(rep));
    }
    for v in visits.iter().filter(|v| is_contact(v)) {
        let t = contact_time_ms(v);
        if t < from_ms || t >= to_ms {
            continue;
        }
        let tier = tiers.get(v.customer_id.as_str()).copied();
        let minutes = visit_duration_minutes(v, tier, cfg);
        let r = reps.entry(v.rep.as_str()).or_insert_with(|| entry(&v.rep));
        r.visits += 1;
        match tier {
            Some(tier) => *r.minutes_by_tier.get_mut(tier) += minutes,
            None => r.other_minutes += minutes,
        }
        if focus.contains(&v.customer_id) {
            r.focus_minutes += minutes;
        }
        r.total_minutes += minutes;
    }
    reps.into_values()
        .map(|mut r| {
            r.focus_share = if r.total_minutes > 0.0 { r.focus_minutes / r.total_minutes } else { 0.0 };
            r.gap = r.focus_share - r.target_share;
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::segmentation::apply_override;
    use super::super::segmentation::fixtures::{customer, plan, visit};
    use super::*;
    use fieldsync_core::docs::{Checkin, Checkout, GeoPoint};

    const NOW: i64 = 1_800_000_000_000;

    fn at(id: &str, rep: &str, potential: f64, lat: f64, lon: f64) -> Customer {
        let mut c = customer(id, potential, 1.0);
        c.owner_rep = Some(rep.to_owned());
        c.location = GeoPoint::wgs84(lat, lon);
        c
    }

    /// A completed visit ending `days_ago` days before NOW, with a check-out.
    fn done(id: &str, customer: &str, rep: &str, days_ago: f64) -> Visit {
        let end = NOW - (days_ago * DAY_MS as f64) as i64;
        let mut v = visit(id, customer, rep, end - 30 * MINUTE_MS, end);
        v.checkout =
            Some(Checkout { device_time_ms: end, outcome: "met buyer".into(), next_step: String::new() });
        v
    }

    fn ids(o: &[Overdue]) -> Vec<&str> {
        o.iter().map(|o| o.customer_id.as_str()).collect()
    }

    #[test]
    fn cadence_comes_from_the_plan_and_is_never_zero() {
        let mut p = plan();
        assert_eq!([Tier::A, Tier::B, Tier::C].map(|t| cadence_days(&p, t)), [7, 14, 30]);
        p.cadence.b_days = 0;
        assert_eq!(cadence_days(&p, Tier::B), 1);
    }

    #[test]
    fn overdue_is_ordered_by_urgency_with_tier_weights() {
        // Plan: A ≥ 100 every 7 days, B ≥ 40 every 14, C every 30; weights 3/2/1.
        let customers = [
            at("a-late", "alice", 500.0, 48.0, 2.0), // A, last 14 d ago: 7 d late → 7/7×3 = 3
            at("b-late", "alice", 50.0, 48.0, 2.0),  // B, last 35 d ago: 21 d late → 21/14×2 = 3
            at("c-late", "alice", 10.0, 48.0, 2.0),  // C, last 120 d ago: 90 d late → 90/30×1 = 3… tie
            at("a-fine", "alice", 500.0, 48.0, 2.0), // A, last 3 d ago: not due
            at("b-bit", "alice", 50.0, 48.0, 2.0),   // B, last 17.5 d ago: 3.5 d late → 0.5
            at("c-very", "alice", 10.0, 48.0, 2.0),  // C, last 150 d ago: 120 d late → 4
        ];
        let visits = [
            done("v1", "a-late", "alice", 14.0),
            done("v2", "b-late", "alice", 35.0),
            done("v3", "c-late", "alice", 120.0),
            done("v4", "a-fine", "alice", 3.0),
            done("v5", "b-bit", "alice", 17.5),
            done("v6", "c-very", "alice", 150.0),
            // An older contact does not hide the latest one.
            done("v0", "a-fine", "alice", 40.0),
        ];
        let o = overdue(&customers, &visits, &plan(), &AllocationConfig::default(), NOW);
        assert_eq!(ids(&o), ["c-very", "a-late", "b-late", "c-late", "b-bit"]);
        let urgencies: Vec<f64> = o.iter().map(|o| o.urgency).collect();
        assert_eq!(urgencies, [4.0, 3.0, 3.0, 3.0, 0.5]);
        let late = &o[1];
        assert_eq!((late.tier, late.cadence_days, late.days_overdue), (Tier::A, 7, Some(7.0)));
        assert_eq!(late.last_contact_ms, Some(NOW - 14 * DAY_MS));
        assert_eq!(late.due_at_ms, Some(NOW - 7 * DAY_MS));
        assert!(!late.never_visited && !late.remote);
        assert_eq!(late.owner_rep.as_deref(), Some("alice"));
    }

    #[test]
    fn never_visited_customers_come_first_among_equals() {
        let customers = [
            at("a-old", "alice", 500.0, 48.0, 2.0),   // A, 7 d late → 3
            at("z-never", "alice", 500.0, 48.0, 2.0), // A, never: one cadence → 7/7×3 = 3
            at("c-never", "alice", 10.0, 48.0, 2.0),  // C, never: 30/30×1 = 1
        ];
        let visits = [done("v1", "a-old", "alice", 14.0)];
        let o = overdue(&customers, &visits, &plan(), &AllocationConfig::default(), NOW);
        assert_eq!(ids(&o), ["z-never", "a-old", "c-never"]);
        assert_eq!((o[0].days_overdue, o[0].urgency, o[0].never_visited), (None, 3.0, true));
        assert_eq!((o[0].last_contact_ms, o[0].due_at_ms), (None, None));
        assert_eq!((o[2].days_overdue, o[2].urgency), (None, 1.0));
        assert_eq!((o[1].days_overdue, o[1].never_visited), (Some(7.0), false));
    }

    #[test]
    fn only_completed_or_remote_contacts_count() {
        let customers = [at("a", "alice", 500.0, 48.0, 2.0)];
        let mut cancelled = done("v1", "a", "alice", 1.0);
        cancelled.state = VisitState::Cancelled;
        let mut planned = done("v2", "a", "alice", 1.0);
        planned.state = VisitState::Planned;
        planned.checkout = None;
        let o = overdue(&customers, &[cancelled, planned], &plan(), &AllocationConfig::default(), NOW);
        assert_eq!(ids(&o), ["a"]);
        assert!(o[0].never_visited);

        // A completed visit without a check-out counts at its planned end.
        let mut no_checkout = done("v3", "a", "alice", 8.0);
        no_checkout.checkout = None;
        let o = overdue(&customers, &[no_checkout], &plan(), &AllocationConfig::default(), NOW);
        assert_eq!(o[0].days_overdue, Some(1.0));
    }

    #[test]
    fn far_c_customers_are_flagged_remote_by_distance_from_the_base() {
        // Base 48.0 N 2.0 E; one degree of latitude is about 111 km.
        let customers = [
            at("c-far", "alice", 10.0, 48.3, 2.0),  // C, ~33 km
            at("c-near", "alice", 10.0, 48.1, 2.0), // C, ~11 km
            at("a-far", "alice", 500.0, 48.5, 2.0), // A, ~56 km: never remote
            at("c-broken", "alice", 10.0, f64::NAN, 2.0),
        ];
        let mut cfg = AllocationConfig::default();
        cfg.bases.insert("alice".into(), LatLon { lat: 48.0, lon: 2.0 });
        let remote = remote_customers(&customers, &plan(), &cfg);
        assert_eq!(remote.into_iter().collect::<Vec<_>>(), ["c-far"]);

        let o = overdue(&customers, &[], &plan(), &cfg, NOW);
        let flags: BTreeMap<&str, bool> = o.iter().map(|o| (o.customer_id.as_str(), o.remote)).collect();
        assert!(flags["c-far"]);
        assert!(!flags["c-near"]);
        assert!(!flags["a-far"]);
    }

    #[test]
    fn without_a_base_distance_is_from_the_centroid_of_the_reps_customers() {
        // On the equator: customers at 0, 0.1, 0.2 and 1.0 degrees east. Their centroid is at about
        // 0.325 E, so the one at 1.0 is ~75 km away and the one at 0.2 ~14 km.
        let customers = [
            at("a1", "bob", 500.0, 0.0, 0.0),
            at("a2", "bob", 500.0, 0.0, 0.1),
            at("c-near", "bob", 10.0, 0.0, 0.2),
            at("c-far", "bob", 10.0, 0.0, 1.0),
            // Another rep's customers do not move bob's centroid.
            at("x", "carol", 500.0, 0.0, 10.0),
        ];
        let remote = remote_customers(&customers, &plan(), &AllocationConfig::default());
        assert_eq!(remote.into_iter().collect::<Vec<_>>(), ["c-far"]);

        let c = centroid(&[LatLon { lat: 0.0, lon: 0.0 }, LatLon { lat: 0.0, lon: 0.2 }]).unwrap();
        assert!(c.lat.abs() < 1e-9 && (c.lon - 0.1).abs() < 1e-9, "{c:?}");
        // Across the antimeridian the centroid is on it, not at Greenwich.
        let c = centroid(&[LatLon { lat: 0.0, lon: 179.0 }, LatLon { lat: 0.0, lon: -179.0 }]).unwrap();
        assert!((c.lon.abs() - 180.0).abs() < 1e-9, "{c:?}");
        assert_eq!(centroid(&[]), None);
    }

    #[test]
    fn remote_contacts_count_toward_cadence() {
        let customers = [at("c-far", "alice", 10.0, 48.3, 2.0)];
        let mut cfg = AllocationConfig::default();
        cfg.bases.insert("alice".into(), LatLon { lat: 48.0, lon: 2.0 });

        // Logged as a call 10 days ago, never checked in: the 30-day C cadence is met.
        let mut call = done("v1", "c-far", "alice", 10.0);
        call.state = VisitState::Planned;
        call.checkout.as_mut().unwrap().outcome = "Remote: phone call, reorder".into();
        assert!(is_remote_contact(&call) && is_contact(&call));
        assert!(overdue(&customers, std::slice::from_ref(&call), &plan(), &cfg, NOW).is_empty());

        // Without a remote outcome the same record is not a contact.
        call.checkout.as_mut().unwrap().outcome = "no answer".into();
        assert!(!is_contact(&call));
        let o = overdue(&customers, &[call], &plan(), &cfg, NOW);
        assert_eq!((o[0].never_visited, o[0].remote), (true, true));
    }

    #[test]
    fn due_visits_cover_the_window_and_mark_musts() {
        let customers = [
            at("a-late", "alice", 500.0, 48.0, 2.0), // A, last 10 d ago: due 3 d ago
            at("a-soon", "alice", 500.0, 48.0, 2.0), // A, last 5 d ago: due in 2 d
            at("a-later", "alice", 500.0, 48.0, 2.0), // A, last 1 d ago: due in 6 d, after the window
            at("c-never", "alice", 10.0, 48.0, 2.0), // C, never
        ];
        let visits = [
            done("v1", "a-late", "alice", 10.0),
            done("v2", "a-soon", "alice", 5.0),
            done("v3", "a-later", "alice", 1.0),
        ];
        let from = NOW;
        let to = NOW + 4 * DAY_MS;
        let d = due_visits(&customers, &visits, &plan(), &AllocationConfig::default(), from, to);
        let got: Vec<(&str, f64, bool, i64)> =
            d.iter().map(|d| (d.customer_id.as_str(), d.priority, d.must, d.due_at_ms)).collect();
        // At the window end a-late is 7 d late (7/7×3), a-soon 2 d (2/7×3), c-never one cadence (1).
        assert_eq!(
            got,
            [
                ("a-late", 7.0 / 7.0 * 3.0, true, NOW - 3 * DAY_MS),
                ("c-never", 1.0, true, from),
                ("a-soon", 2.0 / 7.0 * 3.0, false, NOW + 2 * DAY_MS),
            ]
        );
        assert_eq!(d[0].rep.as_deref(), Some("alice"));
        assert!(d[1].never_visited);
        assert!(due_visits(&customers, &visits, &plan(), &AllocationConfig::default(), to, from).is_empty());
    }

    #[test]
    fn durations_are_measured_then_planned_then_typical() {
        let cfg = AllocationConfig::default();
        let mut v = visit("v", "c", "alice", 0, 45 * MINUTE_MS);
        assert_eq!(visit_duration_minutes(&v, Some(Tier::A), &cfg), 45.0);
        v.checkins = vec![
            Checkin::new("k2", 48.0, 2.0, 5.0, 20 * MINUTE_MS),
            Checkin::new("k1", 48.0, 2.0, 5.0, 10 * MINUTE_MS),
        ];
        v.checkout = Some(Checkout {
            device_time_ms: 100 * MINUTE_MS,
            outcome: String::new(),
            next_step: String::new(),
        });
        assert_eq!(visit_duration_minutes(&v, Some(Tier::A), &cfg), 90.0);
        // Forgot to check out until the next day: the planned 45 minutes instead.
        v.checkout.as_mut().unwrap().device_time_ms = 30 * 60 * MINUTE_MS;
        assert_eq!(visit_duration_minutes(&v, Some(Tier::A), &cfg), 45.0);
        // No usable plan either: the tier's typical length.
        v.planned_end_ms = v.planned_start_ms;
        assert_eq!(visit_duration_minutes(&v, Some(Tier::B), &cfg), 45.0);
        assert_eq!(visit_duration_minutes(&v, Some(Tier::C), &cfg), 30.0);
        assert_eq!(visit_duration_minutes(&v, None, &cfg), 0.0);
    }

    #[test]
    fn time_share_of_80_20_on_a_tiny_schedule() {
        // Scores: A 500; B 90, 50 and bob's 45 (median 50: only 90 is high-potential); C 10.
        let customers = [
            at("a", "alice", 500.0, 48.0, 2.0),
            at("b-high", "alice", 90.0, 48.0, 2.0),
            at("b-low", "alice", 50.0, 48.0, 2.0),
            at("c", "alice", 10.0, 48.0, 2.0),
            at("b-bob", "bob", 45.0, 48.0, 2.0),
        ];
        let cfg = AllocationConfig::default();
        assert_eq!(
            focus_customers(&customers, &plan(), &cfg).into_iter().collect::<Vec<_>>(),
            ["a", "b-high"]
        );

        let from = NOW;
        let to = NOW + DAY_MS;
        let h = |hours: f64| from + (hours * 3_600_000.0) as i64;
        // alice: A 120 min (measured), high B 60, low B 30, C 30 (planned).
        let mut va = visit("v1", "a", "alice", h(1.0), h(1.5));
        va.checkins.push(Checkin::new("k", 48.0, 2.0, 5.0, h(1.0)));
        va.checkout =
            Some(Checkout { device_time_ms: h(3.0), outcome: "order".into(), next_step: String::new() });
        let vb = visit("v2", "b-high", "alice", h(4.0), h(5.0));
        let vl = visit("v3", "b-low", "alice", h(6.0), h(6.5));
        let vc = visit("v4", "c", "alice", h(7.0), h(7.5));
        // Outside the window, cancelled, or to an unknown customer.
        let before = visit("v5", "a", "alice", h(-3.0), h(-1.0));
        let after = visit("v6", "a", "alice", h(24.0), h(25.0));
        let mut cancelled = visit("v7", "a", "alice", h(8.0), h(9.0));
        cancelled.state = VisitState::Cancelled;
        let unknown = visit("v8", "ghost", "dave", h(8.0), h(8.25));
        let visits = [va, vb, vl, vc, before, after, cancelled, unknown];

        let s = time_share(&customers, &visits, &plan(), &cfg, from, to);
        let reps: Vec<&str> = s.iter().map(|r| r.rep.as_str()).collect();
        assert_eq!(reps, ["alice", "bob", "dave"]);

        let alice = &s[0];
        assert_eq!(alice.visits, 4);
        assert_eq!(alice.minutes_by_tier, PerTier { a: 120.0, b: 90.0, c: 30.0 });
        assert_eq!((alice.focus_minutes, alice.total_minutes), (180.0, 240.0));
        assert_eq!(alice.focus_share, 180.0 / 240.0);
        assert_eq!(alice.target_share, 0.8);
        assert_eq!(alice.gap, 180.0 / 240.0 - 0.8);

        // Bob owns a customer but made no visit: listed, at zero.
        let bob = &s[1];
        assert_eq!((bob.visits, bob.total_minutes, bob.focus_share, bob.gap), (0, 0.0, 0.0, -0.8));

        let dave = &s[2];
        assert_eq!((dave.other_minutes, dave.total_minutes, dave.focus_share), (15.0, 15.0, 0.0));
    }

    #[test]
    fn empty_inputs_and_nan_values_do_not_panic() {
        let p = plan();
        let cfg = AllocationConfig::default();
        assert!(overdue(&[], &[], &p, &cfg, NOW).is_empty());
        assert!(time_share(&[], &[], &p, &cfg, 0, NOW).is_empty());
        assert!(due_visits(&[], &[], &p, &cfg, 0, NOW).is_empty());
        assert!(focus_customers(&[], &p, &cfg).is_empty());

        let mut broken = p.clone();
        broken.cadence = fieldsync_core::docs::Cadence { a_days: 0, b_days: 0, c_days: 0 };
        broken.focus_share = f64::NAN;
        let bad_cfg = AllocationConfig {
            remote_c_km: f64::NAN,
            visit_minutes: PerTier { a: f64::NAN, b: -1.0, c: f64::INFINITY },
            tier_weights: PerTier { a: f64::NAN, b: f64::INFINITY, c: -3.0 },
            high_potential_b_quantile: f64::NAN,
            bases: [("alice".to_owned(), LatLon { lat: f64::NAN, lon: 500.0 })].into(),
        };
        let customers =
            [at("x", "alice", f64::NAN, f64::NAN, f64::INFINITY), at("y", "alice", 60.0, 48.0, 2.0)];
        let mut v = visit("v", "x", "alice", i64::MAX, i64::MIN);
        v.checkout =
            Some(Checkout { device_time_ms: i64::MIN, outcome: "remote".into(), next_step: String::new() });
        let visits = [v, visit("w", "y", "alice", i64::MIN, i64::MAX)];
        for now in [i64::MIN, 0, i64::MAX] {
            for o in overdue(&customers, &visits, &broken, &bad_cfg, now) {
                assert!(o.urgency.is_finite() && o.days_overdue.is_none_or(f64::is_finite), "{o:?}");
            }
            for s in time_share(&customers, &visits, &broken, &bad_cfg, i64::MIN, now) {
                assert!(s.total_minutes.is_finite() && s.gap.is_finite(), "{s:?}");
            }
            due_visits(&customers, &visits, &broken, &bad_cfg, i64::MIN, now);
        }
    }

    fn arb_customer() -> impl Strategy<Value = Customer> {
        (
            0u8..6,
            prop_oneof![Just(f64::NAN), Just(f64::INFINITY), -10.0f64..1000.0],
            prop_oneof![Just(f64::NAN), 0.0f64..1.0],
            prop::option::of(prop_oneof![Just("alice"), Just("bob")]),
            -90.0f64..90.0,
            -180.0f64..180.0,
            prop::option::of(prop_oneof![Just(Tier::A), Just(Tier::B), Just(Tier::C)]),
        )
            .prop_map(|(id, pot, prob, rep, lat, lon, tier)| {
                let mut c = customer(&format!("c{id}"), pot, prob);
                c.owner_rep = rep.map(str::to_owned);
                c.location = GeoPoint::wgs84(lat, lon);
                if let Some(t) = tier {
                    apply_override(&mut c, t, "maria", 0);
                }
                c
            })
    }

    fn arb_visit() -> impl Strategy<Value = Visit> {
        (
            0u8..6,
            any::<i64>(),
            any::<i64>(),
            prop_oneof![
                Just(VisitState::Planned),
                Just(VisitState::CheckedIn),
                Just(VisitState::Completed),
                Just(VisitState::Cancelled),
                Just(VisitState::Missed),
            ],
            prop::option::of((any::<i64>(), prop_oneof![Just("remote call"), Just("order"), Just("")])),
            prop::option::of(any::<i64>()),
        )
            .prop_map(|(c, start, end, state, checkout, checkin)| {
                let mut v = visit("v", &format!("c{c}"), "alice", start, end);
                v.state = state;
                v.checkout = checkout.map(|(t, o)| Checkout {
                    device_time_ms: t,
                    outcome: o.to_owned(),
                    next_step: String::new(),
                });
                v.checkins = checkin.map(|t| Checkin::new("k", 0.0, 0.0, 1.0, t)).into_iter().collect();
                v
            })
    }

    proptest! {
        #[test]
        fn overdue_never_panics_and_is_sorted(
            customers in prop::collection::vec(arb_customer(), 0..8),
            visits in prop::collection::vec(arb_visit(), 0..12),
            now in prop_oneof![any::<i64>(), (NOW - 400 * DAY_MS)..(NOW + 400 * DAY_MS)],
        ) {
            let p = plan();
            let cfg = AllocationConfig::default();
            let o = overdue(&customers, &visits, &p, &cfg, now);
            prop_assert!(o.len() <= customers.len());
            // Most urgent first, then never visited, then by id.
            let key = |x: &Overdue| (-x.urgency, !x.never_visited, x.customer_id.clone());
            for w in o.windows(2) {
                prop_assert!(key(&w[0]) <= key(&w[1]), "{:?} before {:?}", w[0], w[1]);
            }
            for x in &o {
                prop_assert!(x.urgency.is_finite() && x.urgency >= 0.0);
                prop_assert_eq!(x.days_overdue.is_none(), x.never_visited);
                prop_assert!(x.days_overdue.is_none_or(|d| d.is_finite() && d > 0.0));
            }
            let shares = time_share(&customers, &visits, &p, &cfg, now.saturating_sub(7 * DAY_MS), now);
            for s in &shares {
                prop_assert!((0.0..=1.0).contains(&s.focus_share));
            }
            // Whoever is overdue now is due by the end of the week.
            let due = due_visits(&customers, &visits, &p, &cfg, now, now.saturating_add(7 * DAY_MS));
            let ids: BTreeSet<&str> = due.iter().map(|d| d.customer_id.as_str()).collect();
            prop_assert!(o.iter().all(|x| ids.contains(x.customer_id.as_str())));
        }
    }
}
