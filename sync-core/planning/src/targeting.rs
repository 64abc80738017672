//! Targeting, the T of S.T.A.R.: the quarter's quota split across tiers and reps, and how far won
//! opportunities go towards it.
//!
//! There is no separate opportunity document: each customer carries one opportunity, its
//! `opportunity_stage` and `potential_value`. A won customer counts its potential as won value for
//! its owner rep and its effective tier; every customer still open counts its potential as pipeline,
//! weighted by close probability in the forecast. Tiers come from [`segmentation`] so that a manager's
//! override moves the customer's value with it.
//!
//! [`segmentation`]: super::segmentation

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::segmentation::{PerTier, TIERS, effective_tier, potential, score};
use fieldsync_core::docs::{Customer, Plan, Tier};

/// Where an opportunity stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageClass {
    Won,
    Lost,
    /// Anything else, including stages this build does not know: unknown work is still work to do.
    Open,
}

/// Classifies a stage as typed by people and CRMs: case and surrounding spaces are ignored, and the
/// CRM spelling "Closed Won"/"closed_won"/"closed-won" is the same as "won".
pub fn stage_class(stage: &str) -> StageClass {
    let s = stage.trim().to_ascii_lowercase().replace(['_', '-'], " ");
    let s = s.strip_prefix("closed ").map(str::trim_start).unwrap_or(&s);
    match s {
        "won" => StageClass::Won,
        "lost" => StageClass::Lost,
        _ => StageClass::Open,
    }
}

/// Quota and progress for one tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierTarget {
    pub tier: Tier,
    pub quota: f64,
    /// Potential value of won customers.
    pub won: f64,
    /// Potential value of open customers, unweighted.
    pub pipeline: f64,
    /// `won` + Σ open potential × close probability.
    pub forecast: f64,
    /// won / quota; 0 when there is no quota.
    pub attainment: f64,
    /// forecast / quota; 0 when there is no quota.
    pub forecast_attainment: f64,
}

/// The same figures summed over tiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetTotal {
    pub quota: f64,
    pub won: f64,
    pub pipeline: f64,
    pub forecast: f64,
    pub attainment: f64,
    pub forecast_attainment: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepTarget {
    pub rep: String,
    /// A, B, C in that order.
    pub tiers: Vec<TierTarget>,
    pub total: TargetTotal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetReport {
    pub quarter: String,
    /// A, B, C in that order. Includes customers with no owner rep.
    pub team: Vec<TierTarget>,
    pub team_total: TargetTotal,
    /// Every rep that has a quota or owns a customer, sorted by rep id.
    pub reps: Vec<RepTarget>,
}

/// A rep's quota for a tier: the sum of that rep's quota lines (a plan edited concurrently may hold
/// two; summing loses neither).
pub fn rep_quota(plan: &Plan, rep: &str, tier: Tier) -> f64 {
    plan.quotas
        .iter()
        .filter(|q| q.tier == tier && q.rep.as_deref() == Some(rep))
        .map(|q| amount(q.amount))
        .sum()
}

/// The team's quota for a tier: its team lines (`rep: None`) when there are any, because a manager
/// may set the team figure above the sum of the reps'; otherwise the sum of the reps' quotas.
pub fn team_quota(plan: &Plan, tier: Tier) -> f64 {
    let team: Vec<f64> =
        plan.quotas.iter().filter(|q| q.tier == tier && q.rep.is_none()).map(|q| amount(q.amount)).collect();
    if team.is_empty() {
        plan.quotas.iter().filter(|q| q.tier == tier && q.rep.is_some()).map(|q| amount(q.amount)).sum()
    } else {
        team.iter().sum()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Progress {
    won: f64,
    pipeline: f64,
    weighted_open: f64,
}

impl Progress {
    fn add(&mut self, c: &Customer) {
        match stage_class(&c.opportunity_stage) {
            StageClass::Won => self.won += potential(c),
            StageClass::Lost => {}
            StageClass::Open => {
                self.pipeline += potential(c);
                self.weighted_open += score(c);
            }
        }
    }
}

/// Quotas and attainment for the team and for each rep, per tier.
pub fn targets(customers: &[Customer], plan: &Plan) -> TargetReport {
    let mut team = PerTier::<Progress>::default();
    let mut by_rep: BTreeMap<&str, PerTier<Progress>> = BTreeMap::new();
    for c in customers {
        let tier = effective_tier(c, &plan.thresholds);
        team.get_mut(tier).add(c);
        if let Some(rep) = &c.owner_rep {
            by_rep.entry(rep).or_default().get_mut(tier).add(c);
        }
    }

    let mut reps: BTreeSet<&str> = by_rep.keys().copied().collect();
    reps.extend(plan.quotas.iter().filter_map(|q| q.rep.as_deref()));

    let team_tiers: Vec<TierTarget> =
        TIERS.iter().map(|&t| tier_target(t, team_quota(plan, t), team.get(t))).collect();
    let rep_targets = reps
        .into_iter()
        .map(|rep| {
            let progress = by_rep.get(rep).copied().unwrap_or_default();
            let tiers: Vec<TierTarget> =
                TIERS.iter().map(|&t| tier_target(t, rep_quota(plan, rep, t), progress.get(t))).collect();
            RepTarget { rep: rep.to_owned(), total: total(&tiers), tiers }
        })
        .collect();
    TargetReport {
        quarter: plan.quarter.clone(),
        team_total: total(&team_tiers),
        team: team_tiers,
        reps: rep_targets,
    }
}

fn tier_target(tier: Tier, quota: f64, p: &Progress) -> TierTarget {
    let forecast = p.won + p.weighted_open;
    TierTarget {
        tier,
        quota,
        won: p.won,
        pipeline: p.pipeline,
        forecast,
        attainment: ratio(p.won, quota),
        forecast_attainment: ratio(forecast, quota),
    }
}

fn total(tiers: &[TierTarget]) -> TargetTotal {
    let quota = tiers.iter().map(|t| t.quota).sum();
    let won = tiers.iter().map(|t| t.won).sum();
    let forecast = tiers.iter().map(|t| t.forecast).sum();
    TargetTotal {
        quota,
        won,
        pipeline: tiers.iter().map(|t| t.pipeline).sum(),
        forecast,
        attainment: ratio(won, quota),
        forecast_attainment: ratio(forecast, quota),
    }
}

fn ratio(part: f64, whole: f64) -> f64 {
    let r = part / whole;
    if whole > 0.0 && r.is_finite() { r } else { 0.0 }
}

fn amount(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::super::segmentation::apply_override;
    use super::super::segmentation::fixtures::{customer, plan};
    use super::*;
    use fieldsync_core::docs::Quota;

    fn owned(id: &str, rep: Option<&str>, potential: f64, probability: f64, stage: &str) -> Customer {
        let mut c = customer(id, potential, probability);
        c.owner_rep = rep.map(str::to_owned);
        c.opportunity_stage = stage.to_owned();
        c
    }

    fn quota(rep: Option<&str>, tier: Tier, amount: f64) -> Quota {
        Quota { rep: rep.map(str::to_owned), tier, amount }
    }

    fn by_tier(tiers: &[TierTarget], tier: Tier) -> &TierTarget {
        tiers.iter().find(|t| t.tier == tier).unwrap()
    }

    /// Thresholds A ≥ 100, B ≥ 40.
    fn tiny_team() -> (Vec<Customer>, Plan) {
        let customers = vec![
            owned("c1", Some("alice"), 300.0, 1.0, "won"),      // A, won 300
            owned("c2", Some("alice"), 400.0, 0.5, "proposal"), // A, open 400, weighted 200
            owned("c3", Some("bob"), 100.0, 0.5, "Closed Won"), // B (50), won 100
            owned("c4", Some("bob"), 50.0, 0.0, "lost"),        // C, nothing
            owned("c5", None, 200.0, 0.25, "negotiation"),      // B (50), open 200, weighted 50
            owned("c6", Some("bob"), 80.0, 0.25, "some_new_stage"), // C (20), open 80, weighted 20
        ];
        let mut p = plan();
        p.quotas = vec![
            quota(None, Tier::A, 1000.0),
            quota(None, Tier::B, 500.0),
            quota(Some("alice"), Tier::A, 600.0),
            quota(Some("bob"), Tier::A, 400.0),
            quota(Some("bob"), Tier::C, 100.0),
            quota(Some("carol"), Tier::B, 250.0),
        ];
        (customers, p)
    }

    #[test]
    fn stages_are_classified_as_people_type_them() {
        for s in ["won", " Won ", "WON", "closed won", "Closed_Won", "closed-won"] {
            assert_eq!(stage_class(s), StageClass::Won, "{s:?}");
        }
        for s in ["lost", "Closed Lost", "closed_lost"] {
            assert_eq!(stage_class(s), StageClass::Lost, "{s:?}");
        }
        for s in ["prospecting", "qualification", "proposal", "negotiation", "", "closed", "wonder"] {
            assert_eq!(stage_class(s), StageClass::Open, "{s:?}");
        }
    }

    #[test]
    fn team_quota_comes_from_team_lines_or_else_the_reps_sum() {
        let (_, p) = tiny_team();
        assert_eq!(team_quota(&p, Tier::A), 1000.0);
        assert_eq!(team_quota(&p, Tier::B), 500.0);
        // No team line for C: bob's 100.
        assert_eq!(team_quota(&p, Tier::C), 100.0);
        assert_eq!(rep_quota(&p, "alice", Tier::A), 600.0);
        assert_eq!(rep_quota(&p, "alice", Tier::B), 0.0);
    }

    #[test]
    fn attainment_and_forecast_on_a_tiny_team() {
        let (customers, p) = tiny_team();
        let r = targets(&customers, &p);
        assert_eq!(r.quarter, "2026-Q4");

        let a = by_tier(&r.team, Tier::A);
        assert_eq!((a.quota, a.won, a.pipeline, a.forecast), (1000.0, 300.0, 400.0, 500.0));
        assert_eq!((a.attainment, a.forecast_attainment), (300.0 / 1000.0, 500.0 / 1000.0));
        let b = by_tier(&r.team, Tier::B);
        assert_eq!((b.quota, b.won, b.pipeline, b.forecast), (500.0, 100.0, 200.0, 150.0));
        assert_eq!((b.attainment, b.forecast_attainment), (100.0 / 500.0, 150.0 / 500.0));
        let c = by_tier(&r.team, Tier::C);
        assert_eq!((c.quota, c.won, c.pipeline, c.forecast), (100.0, 0.0, 80.0, 20.0));
        assert_eq!((c.attainment, c.forecast_attainment), (0.0, 20.0 / 100.0));
        assert_eq!(r.team.iter().map(|t| t.tier).collect::<Vec<_>>(), TIERS);

        let t = &r.team_total;
        assert_eq!((t.quota, t.won, t.pipeline, t.forecast), (1600.0, 400.0, 680.0, 670.0));
        assert_eq!((t.attainment, t.forecast_attainment), (400.0 / 1600.0, 670.0 / 1600.0));

        let names: Vec<&str> = r.reps.iter().map(|r| r.rep.as_str()).collect();
        assert_eq!(names, ["alice", "bob", "carol"]);

        let alice = &r.reps[0];
        let a = by_tier(&alice.tiers, Tier::A);
        assert_eq!((a.quota, a.won, a.pipeline, a.forecast), (600.0, 300.0, 400.0, 500.0));
        assert_eq!((a.attainment, a.forecast_attainment), (300.0 / 600.0, 500.0 / 600.0));
        assert_eq!((alice.total.quota, alice.total.won, alice.total.attainment), (600.0, 300.0, 0.5));

        let bob = &r.reps[1];
        let b = by_tier(&bob.tiers, Tier::B);
        // Won without a quota: counted, but attainment is 0 rather than infinite.
        assert_eq!((b.quota, b.won, b.attainment), (0.0, 100.0, 0.0));
        let c = by_tier(&bob.tiers, Tier::C);
        assert_eq!((c.quota, c.won, c.pipeline, c.forecast), (100.0, 0.0, 80.0, 20.0));
        assert_eq!(
            (bob.total.quota, bob.total.won, bob.total.pipeline, bob.total.forecast),
            (500.0, 100.0, 80.0, 120.0)
        );
        assert_eq!(bob.total.attainment, 100.0 / 500.0);

        // A rep with a quota and no customers still shows up, at zero.
        let carol = &r.reps[2];
        assert_eq!((carol.total.quota, carol.total.won, carol.total.attainment), (250.0, 0.0, 0.0));
    }

    #[test]
    fn won_value_follows_a_managers_tier_override() {
        let (mut customers, p) = tiny_team();
        // c3 (won 100, computed B) moved to A by a manager.
        apply_override(&mut customers[2], Tier::A, "maria", 1);
        let r = targets(&customers, &p);
        assert_eq!(by_tier(&r.team, Tier::A).won, 400.0);
        assert_eq!(by_tier(&r.team, Tier::B).won, 0.0);
        assert_eq!(by_tier(&r.reps[1].tiers, Tier::A).won, 100.0);
    }

    #[test]
    fn empty_inputs_and_nan_values_do_not_panic() {
        let r = targets(&[], &plan());
        assert_eq!(r.team.len(), 3);
        assert!(r.reps.is_empty());
        assert_eq!(r.team_total.attainment, 0.0);

        let mut p = plan();
        p.quotas = vec![quota(None, Tier::A, f64::NAN), quota(Some("alice"), Tier::C, f64::INFINITY)];
        let customers = [
            owned("x", Some("alice"), f64::NAN, 0.5, "won"),
            owned("y", Some("alice"), 100.0, f64::NAN, "proposal"),
        ];
        let r = targets(&customers, &p);
        for t in r.team.iter().chain(r.reps.iter().flat_map(|r| r.tiers.iter())) {
            for v in [t.quota, t.won, t.pipeline, t.forecast, t.attainment, t.forecast_attainment] {
                assert!(v.is_finite(), "{t:?}");
            }
        }
        assert_eq!(by_tier(&r.team, Tier::C).pipeline, 100.0);
        assert_eq!(by_tier(&r.team, Tier::C).forecast, 0.0);
    }
}
