//! Segmentation, the S of S.T.A.R.: every customer gets a tier A, B or C from its expected value
//! (potential value × close probability) against the plan's thresholds, unless a manager has set the
//! tier by hand, in which case the manager's choice wins and is shown with who made it and when.
//!
//! The rest of planning (quotas, cadence, time share, routing) keys off the *effective* tier computed
//! here, so there is exactly one place that decides which tier a customer is in.
//!
//! Also here: the Pareto summary a manager looks at before setting thresholds ("do 20 % of my
//! customers hold 80 % of the potential?") and threshold suggestions from desired tier shares.

use serde::{Deserialize, Serialize};

use fieldsync_core::docs::{Customer, Plan, Tier, TierThresholds};

/// The tiers in report order.
pub const TIERS: [Tier; 3] = [Tier::A, Tier::B, Tier::C];

/// One value per tier. Serialised as `{"A": …, "B": …, "C": …}`: keyed by the tier's name, as a
/// tier is written everywhere else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PerTier<T> {
    #[serde(rename = "A")]
    pub a: T,
    #[serde(rename = "B")]
    pub b: T,
    #[serde(rename = "C")]
    pub c: T,
}

impl<T> PerTier<T> {
    pub fn get(&self, tier: Tier) -> &T {
        match tier {
            Tier::A => &self.a,
            Tier::B => &self.b,
            Tier::C => &self.c,
        }
    }

    pub fn get_mut(&mut self, tier: Tier) -> &mut T {
        match tier {
            Tier::A => &mut self.a,
            Tier::B => &mut self.b,
            Tier::C => &mut self.c,
        }
    }
}

/// How one customer was tiered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierAssignment {
    pub customer_id: String,
    pub score: f64,
    /// What the thresholds say.
    pub computed: Tier,
    /// What the rest of planning uses: the manager's tier when overridden, else `computed`.
    pub effective: Tier,
    pub overridden: bool,
    pub override_by: Option<String>,
    pub override_at_ms: Option<i64>,
}

/// Potential value as planning uses it: documents are validated, but planning also runs on data that
/// is not (imports, devices), and one NaN would otherwise poison every sum it enters.
pub fn potential(c: &Customer) -> f64 {
    non_negative(c.potential_value)
}

/// Close probability clamped into 0..=1 (NaN counts as 0).
pub fn probability(c: &Customer) -> f64 {
    unit(c.close_probability)
}

/// Expected value: potential value × close probability; 0 when either is not a usable number.
pub fn score(c: &Customer) -> f64 {
    score_of(c.potential_value, c.close_probability)
}

/// [`potential`] of a raw figure: non-negative, 0 when not a usable number.
pub fn potential_of(potential_value: f64) -> f64 {
    non_negative(potential_value)
}

/// The effective tier of a report-index row ([`effective_tier`] without the document).
pub fn row_tier(c: &fieldsync_core::index::CustomerRow, t: &TierThresholds) -> Tier {
    effective_tier_of(c.tier, c.tier_set_by.is_some(), score_of(c.potential_value, c.close_probability), t)
}

/// [`score`] from the two figures (the report index keeps them without the document).
pub fn score_of(potential_value: f64, close_probability: f64) -> f64 {
    let s = non_negative(potential_value) * unit(close_probability);
    if s.is_finite() { s } else { 0.0 }
}

/// The tier a score falls in. A NaN threshold never matches, so a broken plan tiers everybody C
/// rather than A.
pub fn tier_for_score(score: f64, t: &TierThresholds) -> Tier {
    if score >= t.a_min_score {
        Tier::A
    } else if score >= t.b_min_score {
        Tier::B
    } else {
        Tier::C
    }
}

/// The tier the thresholds give this customer, ignoring any override.
pub fn tier_for(c: &Customer, t: &TierThresholds) -> Tier {
    tier_for_score(score(c), t)
}

/// The tier planning uses. An override needs both a tier and the manager who set it: a tier stored
/// without `tier_set_by` is only a cached computed tier and may be stale against the current
/// thresholds, so it is recomputed.
pub fn effective_tier(c: &Customer, t: &TierThresholds) -> Tier {
    effective_tier_of(c.tier, c.tier_set_by.is_some(), score(c), t)
}

/// [`effective_tier`] from its parts: the stored tier, whether a manager set it, the score.
pub fn effective_tier_of(tier: Option<Tier>, set_by_manager: bool, score: f64, t: &TierThresholds) -> Tier {
    match (tier, set_by_manager) {
        (Some(tier), true) => tier,
        _ => tier_for_score(score, t),
    }
}

/// Tiers one customer against the thresholds.
pub fn assign(c: &Customer, t: &TierThresholds) -> TierAssignment {
    let score = score(c);
    let computed = tier_for_score(score, t);
    let (effective, overridden, override_by, override_at_ms) = match (c.tier, &c.tier_set_by) {
        (Some(tier), Some(by)) => (tier, true, Some(by.clone()), c.tier_set_at_ms),
        _ => (computed, false, None, None),
    };
    TierAssignment {
        customer_id: c.id.clone(),
        score,
        computed,
        effective,
        overridden,
        override_by,
        override_at_ms,
    }
}

/// Tiers every customer against the plan's thresholds, in input order.
pub fn segment(customers: &[Customer], plan: &Plan) -> Vec<TierAssignment> {
    customers.iter().map(|c| assign(c, &plan.thresholds)).collect()
}

/// A manager sets the tier by hand. Whether this user may do so is for `rules` to decide.
pub fn apply_override(c: &mut Customer, tier: Tier, manager: &str, now_ms: i64) {
    c.tier = Some(tier);
    c.tier_set_by = Some(manager.to_owned());
    c.tier_set_at_ms = Some(now_ms);
}

/// Removes a manager's override; the stored tier goes back to the computed one so that the map,
/// which reads the document, agrees with planning.
pub fn clear_override(c: &mut Customer, plan: &Plan) {
    c.tier_set_by = None;
    c.tier_set_at_ms = None;
    c.tier = Some(tier_for(c, &plan.thresholds));
}

/// How concentrated the potential is, and how it is spread over tiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pareto {
    pub customers: usize,
    /// ⌈20 % of customers⌉.
    pub top20_count: usize,
    /// Share (0..=1) of the total potential held by the `top20_count` customers with the highest
    /// potential; 0 when there is no potential at all.
    pub top20_share_of_potential: f64,
    pub total_potential: f64,
    pub tier_counts: PerTier<usize>,
    pub tier_potential: PerTier<f64>,
    /// Customers without a tier (only from [`pareto`], which reads the tier stored on documents).
    pub untiered: usize,
}

/// The Pareto summary by the tier stored on each document (what the map shows). Customers that
/// were never tiered are counted in `untiered`; use [`pareto_for_plan`] to tier them on the fly.
pub fn pareto(customers: &[Customer]) -> Pareto {
    pareto_by(customers, |c| c.tier)
}

/// The Pareto summary by effective tier under the plan's thresholds.
pub fn pareto_for_plan(customers: &[Customer], plan: &Plan) -> Pareto {
    pareto_by(customers, |c| Some(effective_tier(c, &plan.thresholds)))
}

fn pareto_by(customers: &[Customer], tier_of: impl Fn(&Customer) -> Option<Tier>) -> Pareto {
    let mut potentials: Vec<f64> = customers.iter().map(potential).collect();
    potentials.sort_by(|a, b| b.total_cmp(a));
    let n = potentials.len();
    // Integer ceiling: `0.2 * n as f64` is not exact for every n.
    let top20_count = n.div_ceil(5);
    let total_potential: f64 = potentials.iter().sum();
    let top: f64 = potentials.iter().take(top20_count).sum();
    let top20_share_of_potential =
        if total_potential > 0.0 { (top / total_potential).clamp(0.0, 1.0) } else { 0.0 };

    let mut tier_counts = PerTier::<usize>::default();
    let mut tier_potential = PerTier::<f64>::default();
    let mut untiered = 0;
    for c in customers {
        match tier_of(c) {
            Some(t) => {
                *tier_counts.get_mut(t) += 1;
                *tier_potential.get_mut(t) += potential(c);
            }
            None => untiered += 1,
        }
    }
    Pareto {
        customers: n,
        top20_count,
        top20_share_of_potential,
        total_potential,
        tier_counts,
        tier_potential,
        untiered,
    }
}

/// A threshold no finite score reaches, for a tier that should stay empty. Finite, because plan
/// validation rejects infinite thresholds.
const NOBODY: f64 = f64::MAX;

/// Thresholds under which the top `a_share` of these customers by score are A and the next
/// `b_share` are B (shares in 0..=1; out-of-range or NaN shares are clamped, NaN counting as 0).
/// Counts round up, so any positive share puts at least one customer in the tier.
///
/// Each threshold is the score of the weakest customer placed in the tier, so customers tied with it
/// land in the higher tier too: with many equal scores the split can only be approximate.
pub fn suggest_thresholds(customers: &[Customer], a_share: f64, b_share: f64) -> TierThresholds {
    let mut scores: Vec<f64> = customers.iter().map(score).collect();
    scores.sort_by(|a, b| b.total_cmp(a));
    let n = scores.len();
    let a = unit(a_share);
    let ab = (a + unit(b_share)).min(1.0);
    let n_a = count_for_share(n, a);
    let n_ab = count_for_share(n, ab).max(n_a);
    let weakest = |count: usize| count.checked_sub(1).and_then(|i| scores.get(i)).copied();
    let a_min_score = weakest(n_a).unwrap_or(NOBODY);
    // An empty B collapses onto A's threshold: everything below A is then C.
    let b_min_score = if n_ab == n_a { a_min_score } else { weakest(n_ab).unwrap_or(a_min_score) };
    TierThresholds { a_min_score, b_min_score }
}

fn count_for_share(n: usize, share: f64) -> usize {
    // The epsilon keeps 0.7 × 10 = 7.000000000000001 from rounding up to 8.
    let c = (n as f64 * share - 1e-9).ceil();
    if c <= 0.0 { 0 } else { (c as usize).min(n) }
}

fn unit(x: f64) -> f64 {
    if x.is_finite() { x.clamp(0.0, 1.0) } else { 0.0 }
}

fn non_negative(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}

/// Small documents and inputs for planning tests, shared by the modules' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::TravelModel;
    use crate::agenda::RepDayInput;
    use crate::route::LocalDate;
    use fieldsync_core::docs::{Cadence, Customer, GeoPoint, Plan, TierThresholds, Visit, VisitState};
    use fieldsync_core::geo::LatLon;

    pub(crate) fn customer(id: &str, potential_value: f64, close_probability: f64) -> Customer {
        Customer {
            timezone: "Europe/Paris".into(),
            potential_value,
            close_probability,
            follow_up_status: String::new(),
            ..Customer::new(id, id, GeoPoint::wgs84(48.0, 2.0), "admin")
        }
    }

    /// The demo plan: A ≥ 100, B ≥ 40, cadence 7/14/30 days, 80 % focus.
    pub(crate) fn plan() -> Plan {
        let cadence = Cadence { a_days: 7, b_days: 14, c_days: 30 };
        Plan::new("plan-1", "2026-Q4", cadence, TierThresholds { a_min_score: 100.0, b_min_score: 40.0 })
    }

    pub(crate) fn visit(id: &str, customer_id: &str, rep: &str, start_ms: i64, end_ms: i64) -> Visit {
        Visit { state: VisitState::Completed, ..Visit::planned(id, customer_id, rep, start_ms, end_ms) }
    }

    /// Alice's working day (8:00–18:00) from and back to Lyon, up to ten optional stops.
    pub(crate) fn rep_day(date: LocalDate, timezone: &str) -> RepDayInput {
        let lyon = LatLon { lat: 45.76, lon: 4.83 };
        RepDayInput {
            rep: "alice".into(),
            date,
            timezone: timezone.into(),
            start: lyon,
            end: lyon,
            work_start_min: 8 * 60,
            work_end_min: 18 * 60,
            travel: TravelModel::default(),
            max_optional: 10,
            seed: 1,
            time_limit_ms: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{customer, plan};
    use super::*;

    #[test]
    fn the_score_is_potential_times_probability() {
        assert_eq!(score(&customer("c", 200.0, 0.25)), 50.0);
        assert_eq!(score(&customer("c", 200.0, 0.0)), 0.0);
    }

    #[test]
    fn unusable_numbers_score_zero_instead_of_spreading_nan() {
        for (p, q) in [
            (f64::NAN, 0.5),
            (100.0, f64::NAN),
            (f64::INFINITY, 0.5),
            (f64::NEG_INFINITY, 0.5),
            (-100.0, 0.5),
            (100.0, -0.5),
        ] {
            assert_eq!(score(&customer("c", p, q)), 0.0, "{p} × {q}");
        }
        // A probability above 1 is read as certainty.
        assert_eq!(score(&customer("c", 100.0, 3.0)), 100.0);
    }

    #[test]
    fn tiers_follow_the_thresholds_with_bounds_inclusive() {
        let t = plan().thresholds; // A ≥ 100, B ≥ 40
        assert_eq!(tier_for(&customer("c", 1000.0, 0.1), &t), Tier::A); // 100
        assert_eq!(tier_for(&customer("c", 1000.0, 0.5), &t), Tier::A); // 500
        assert_eq!(tier_for(&customer("c", 99.0, 1.0), &t), Tier::B);
        assert_eq!(tier_for(&customer("c", 80.0, 0.5), &t), Tier::B); // 40
        assert_eq!(tier_for(&customer("c", 39.0, 1.0), &t), Tier::C);
        assert_eq!(tier_for(&customer("c", f64::NAN, 1.0), &t), Tier::C);
    }

    #[test]
    fn a_nan_threshold_tiers_nobody_up() {
        let t = TierThresholds { a_min_score: f64::NAN, b_min_score: f64::NAN };
        assert_eq!(tier_for(&customer("c", 1e9, 1.0), &t), Tier::C);
    }

    #[test]
    fn segment_keeps_input_order_and_computes_tiers() {
        let customers = [customer("x", 500.0, 1.0), customer("y", 50.0, 1.0), customer("z", 1.0, 1.0)];
        let s = segment(&customers, &plan());
        let got: Vec<(&str, f64, Tier, Tier, bool)> = s
            .iter()
            .map(|a| (a.customer_id.as_str(), a.score, a.computed, a.effective, a.overridden))
            .collect();
        assert_eq!(
            got,
            [
                ("x", 500.0, Tier::A, Tier::A, false),
                ("y", 50.0, Tier::B, Tier::B, false),
                ("z", 1.0, Tier::C, Tier::C, false)
            ]
        );
        assert!(s.iter().all(|a| a.override_by.is_none() && a.override_at_ms.is_none()));
    }

    #[test]
    fn a_managers_override_wins_and_records_who_and_when() {
        let p = plan();
        let mut c = customer("c", 10.0, 1.0); // score 10: C
        apply_override(&mut c, Tier::A, "maria", 1_700_000_000_000);
        assert_eq!(c.tier, Some(Tier::A));
        assert_eq!(c.tier_set_by.as_deref(), Some("maria"));
        assert_eq!(c.tier_set_at_ms, Some(1_700_000_000_000));

        let s = &segment(std::slice::from_ref(&c), &p)[0];
        assert_eq!(s.computed, Tier::C);
        assert_eq!(s.effective, Tier::A);
        assert!(s.overridden);
        assert_eq!(s.override_by.as_deref(), Some("maria"));
        assert_eq!(s.override_at_ms, Some(1_700_000_000_000));
        assert_eq!(effective_tier(&c, &p.thresholds), Tier::A);

        clear_override(&mut c, &p);
        assert_eq!((c.tier, c.tier_set_by.clone(), c.tier_set_at_ms), (Some(Tier::C), None, None));
        let s = &segment(std::slice::from_ref(&c), &p)[0];
        assert_eq!((s.effective, s.overridden), (Tier::C, false));
    }

    #[test]
    fn a_stored_tier_without_a_manager_is_recomputed() {
        let mut c = customer("c", 10.0, 1.0);
        c.tier = Some(Tier::A); // stale cache, nobody overrode it
        let s = assign(&c, &plan().thresholds);
        assert_eq!((s.computed, s.effective, s.overridden), (Tier::C, Tier::C, false));
    }

    #[test]
    fn pareto_on_a_known_distribution() {
        let customers: Vec<Customer> = [100.0, 1.0, 1.0, 1.0, 1.0]
            .iter()
            .enumerate()
            .map(|(i, p)| customer(&format!("c{i}"), *p, 1.0))
            .collect();
        let p = pareto_for_plan(&customers, &plan());
        assert_eq!(p.customers, 5);
        assert_eq!(p.top20_count, 1);
        assert_eq!(p.total_potential, 104.0);
        assert_eq!(p.top20_share_of_potential, 100.0 / 104.0);
        // Scores equal potentials here: 100 is A, the four 1s are C.
        assert_eq!(p.tier_counts, PerTier { a: 1, b: 0, c: 4 });
        assert_eq!(p.tier_potential, PerTier { a: 100.0, b: 0.0, c: 4.0 });
        assert_eq!(p.untiered, 0);
    }

    #[test]
    fn pareto_rounds_the_top_fifth_up_and_reads_stored_tiers() {
        // Six customers: ⌈1.2⌉ = 2 in the top 20 %.
        let mut customers: Vec<Customer> = [5.0, 30.0, 10.0, 20.0, 25.0, 10.0]
            .iter()
            .enumerate()
            .map(|(i, p)| customer(&format!("c{i}"), *p, 1.0))
            .collect();
        customers[1].tier = Some(Tier::A);
        customers[2].tier = Some(Tier::B);
        let p = pareto(&customers);
        assert_eq!(p.top20_count, 2);
        assert_eq!(p.total_potential, 100.0);
        assert_eq!(p.top20_share_of_potential, 55.0 / 100.0);
        assert_eq!(p.tier_counts, PerTier { a: 1, b: 1, c: 0 });
        assert_eq!(p.tier_potential, PerTier { a: 30.0, b: 10.0, c: 0.0 });
        assert_eq!(p.untiered, 4);
    }

    #[test]
    fn pareto_of_nothing_or_of_nan_potentials_is_zero() {
        let p = pareto(&[]);
        assert_eq!((p.customers, p.top20_count, p.total_potential), (0, 0, 0.0));
        assert_eq!(p.top20_share_of_potential, 0.0);

        let customers = [customer("a", f64::NAN, 1.0), customer("b", f64::INFINITY, 0.5)];
        let p = pareto_for_plan(&customers, &plan());
        assert_eq!((p.customers, p.top20_count, p.total_potential), (2, 1, 0.0));
        assert_eq!(p.top20_share_of_potential, 0.0);
        assert_eq!(p.tier_counts, PerTier { a: 0, b: 0, c: 2 });
    }

    #[test]
    fn suggested_thresholds_split_as_asked() {
        // Scores 10, 20, …, 100 (potential × 0.5).
        let customers: Vec<Customer> =
            (1..=10).map(|k| customer(&format!("c{k}"), 20.0 * k as f64, 0.5)).collect();
        let t = suggest_thresholds(&customers, 0.2, 0.3);
        // Top 2 are A (100, 90), next 3 are B (80, 70, 60).
        assert_eq!(t, TierThresholds { a_min_score: 90.0, b_min_score: 60.0 });
        let mut counts = PerTier::<usize>::default();
        for c in &customers {
            *counts.get_mut(tier_for(c, &t)) += 1;
        }
        assert_eq!(counts, PerTier { a: 2, b: 3, c: 5 });

        // 0.7 × 10 must not become 8 through rounding.
        let t = suggest_thresholds(&customers, 0.0, 0.7);
        assert_eq!(t, TierThresholds { a_min_score: f64::MAX, b_min_score: 40.0 });
    }

    #[test]
    fn suggested_shares_round_up_and_empty_tiers_stay_empty() {
        // Seven customers, 20 % → ⌈1.4⌉ = 2 A; B share 0 → B empty.
        let customers: Vec<Customer> = (1..=7).map(|k| customer(&format!("c{k}"), k as f64, 1.0)).collect();
        let t = suggest_thresholds(&customers, 0.2, 0.0);
        assert_eq!(t, TierThresholds { a_min_score: 6.0, b_min_score: 6.0 });
        assert_eq!(tier_for(&customers[4], &t), Tier::C);

        // Shares adding up to more than everyone: all are A or B.
        let t = suggest_thresholds(&customers, 0.5, 0.9);
        assert_eq!(t, TierThresholds { a_min_score: 4.0, b_min_score: 1.0 });
    }

    #[test]
    fn suggested_thresholds_for_nothing_are_finite_and_tier_nobody_up() {
        for t in [
            suggest_thresholds(&[], 0.2, 0.3),
            suggest_thresholds(&[customer("c", 10.0, 1.0)], f64::NAN, -1.0),
        ] {
            assert!(t.a_min_score.is_finite() && t.b_min_score.is_finite(), "{t:?}");
            assert_eq!(tier_for(&customer("x", 1e300, 1.0), &t), Tier::C);
        }
    }

    #[test]
    fn per_tier_is_keyed_by_the_tiers_names() {
        let v = serde_json::to_value(PerTier { a: 1, b: 2, c: 3 }).unwrap();
        assert_eq!(v, serde_json::json!({"A": 1, "B": 2, "C": 3}));
        assert_eq!(serde_json::to_value(Tier::A).unwrap(), "A");
    }
}
