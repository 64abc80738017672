//! Territory design for a team: balanced on workload and potential, compact, assigned to reps near
//! home, moves reported exactly against today's owners, and written back with `apply_design`.

mod areas_fixtures;

use std::collections::{BTreeMap, BTreeSet};

use areas_fixtures::{CITY, Rng, clustered, customer, offset, reps};
use fieldsync_core::docs::{Customer, Document, GeoPoint, Tier};
use fieldsync_core::geo::LatLon;
use fieldsync_planning::areas::{
    AreaError, RepBase, TerritoryConfig, TerritoryDesign, apply_design, design_territories, to_territory,
};

const SEED: u64 = 77;

/// 1 200 customers in 3 clusters around the city, 6 reps.
fn team() -> (Vec<Customer>, Vec<RepBase>) {
    (clustered(1200, 3, 25.0, 6.0, SEED), reps(6, SEED))
}

fn assert_partition(design: &TerritoryDesign, customers: &[Customer]) {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &design.territories {
        assert!(!t.customer_ids.is_empty(), "{} has no customer", t.rep);
        for id in &t.customer_ids {
            *count.entry(id.as_str()).or_default() += 1;
        }
    }
    let unplaced: BTreeSet<&str> = design.unplaced.iter().map(|u| u.customer_id.as_str()).collect();
    for c in customers {
        let expected = usize::from(!unplaced.contains(c.id.as_str()));
        assert_eq!(count.get(c.id.as_str()).copied().unwrap_or(0), expected, "{}", c.id);
    }
}

/// Applies the changed customers onto a copy of the list.
fn written_back(design: &TerritoryDesign, customers: &[Customer]) -> Vec<Customer> {
    let changed: BTreeMap<String, Customer> =
        apply_design(design, customers).into_iter().map(|c| (c.id.clone(), c)).collect();
    customers.iter().map(|c| changed.get(&c.id).cloned().unwrap_or_else(|| c.clone())).collect()
}

fn expected_moves(design: &TerritoryDesign, customers: &[Customer]) -> Vec<(String, Option<String>, String)> {
    let rep_of: BTreeMap<&str, &str> = design
        .territories
        .iter()
        .flat_map(|t| t.customer_ids.iter().map(move |id| (id.as_str(), t.rep.as_str())))
        .collect();
    customers
        .iter()
        .filter_map(|c| {
            let to = rep_of.get(c.id.as_str())?;
            (c.owner_rep.as_deref() != Some(*to)).then(|| (c.id.clone(), c.owner_rep.clone(), to.to_string()))
        })
        .collect()
}

/// In a module named `areas` so that `cargo test -p fieldsync-planning areas` selects them.
mod areas {
    use super::*;

    #[test]
    fn territory_design_balances_workload_and_potential_within_the_tolerance() {
        let (customers, reps) = team();
        let cfg = TerritoryConfig::default();
        let design = design_territories(&customers, &reps, &cfg, SEED).unwrap();
        assert_partition(&design, &customers);
        assert!(design.within_tolerance);
        assert!(design.workload_balance <= 1.15, "{}", design.workload_balance);
        assert!(design.potential_balance <= 1.15, "{}", design.potential_balance);

        // The reported balances are what the territories say.
        let ratio = |v: Vec<f64>| {
            v.iter().copied().fold(f64::MIN, f64::max) / v.iter().copied().fold(f64::MAX, f64::min)
        };
        let w = ratio(design.territories.iter().map(|t| t.workload_min).collect());
        let p = ratio(design.territories.iter().map(|t| t.potential).collect());
        assert!((w - design.workload_balance).abs() < 1e-9);
        assert!((p - design.potential_balance).abs() < 1e-9);
        // Potentials add up to the team's.
        let total: f64 = customers.iter().map(|c| c.potential_value).sum();
        let split: f64 = design.territories.iter().map(|t| t.potential).sum();
        assert!((total - split).abs() < 1e-6 * total);
        // One territory per rep, in the reps' order, with ids that are valid document ids.
        let order: Vec<&str> = design.territories.iter().map(|t| t.rep.as_str()).collect();
        let expected: Vec<&str> = reps.iter().map(|r| r.rep.as_str()).collect();
        assert_eq!(order, expected);
        for t in &design.territories {
            assert_eq!(t.territory_id, format!("territory-{}", t.rep));
            Document::Territory(to_territory(t)).validate().unwrap();
        }
    }

    #[test]
    fn a_tighter_tolerance_is_met_on_the_same_team() {
        let (customers, reps) = team();
        let cfg = TerritoryConfig { tolerance: 0.05, ..TerritoryConfig::default() };
        let design = design_territories(&customers, &reps, &cfg, SEED).unwrap();
        assert!(design.within_tolerance, "{} / {}", design.workload_balance, design.potential_balance);
    }

    #[test]
    fn territories_are_compact() {
        let (customers, reps) = team();
        let design = design_territories(&customers, &reps, &TerritoryConfig::default(), SEED).unwrap();
        assert!(design.nearest_centroid_share >= 0.85, "{}", design.nearest_centroid_share);
    }

    #[test]
    fn hulls_contain_their_customers() {
        let (customers, reps) = team();
        let design = design_territories(&customers, &reps, &TerritoryConfig::default(), SEED).unwrap();
        let at: BTreeMap<&str, LatLon> = customers
            .iter()
            .map(|c| (c.id.as_str(), LatLon { lat: c.location.lat, lon: c.location.lon }))
            .collect();
        for t in &design.territories {
            assert!(t.hull.len() >= 3, "{}: {} hull points", t.rep, t.hull.len());
            // Counter-clockwise in (lon, lat): every customer is left of (or on) every edge.
            for id in &t.customer_ids {
                let p = at[id.as_str()];
                for (i, a) in t.hull.iter().enumerate() {
                    let b = t.hull[(i + 1) % t.hull.len()];
                    let cross = (b.lon - a.lon) * (p.lat - a.lat) - (b.lat - a.lat) * (p.lon - a.lon);
                    assert!(cross >= -1e-12, "{id} outside the hull of {}", t.rep);
                }
            }
            // Hull vertices are customers of the territory.
            for v in &t.hull {
                assert!(t.customer_ids.iter().any(|id| at[id.as_str()] == *v));
            }
        }
    }

    #[test]
    fn moves_are_reported_exactly_against_todays_owners() {
        let (mut customers, reps) = team();
        let mut rng = Rng::new(5);
        for c in &mut customers {
            c.owner_rep = match rng.below(10) {
                0 => None,
                1 => Some("rep-who-left".into()),
                r => Some(reps[r % reps.len()].rep.clone()),
            };
        }
        let design = design_territories(&customers, &reps, &TerritoryConfig::default(), SEED).unwrap();
        let got: Vec<(String, Option<String>, String)> =
            design.moves.iter().map(|m| (m.customer_id.clone(), m.from.clone(), m.to.clone())).collect();
        assert_eq!(got, expected_moves(&design, &customers));
        // Unowned customers and those of the rep who left all move.
        for c in &customers {
            if c.owner_rep.is_none() || c.owner_rep.as_deref() == Some("rep-who-left") {
                assert!(design.moves.iter().any(|m| m.customer_id == c.id));
            }
        }
    }

    #[test]
    fn a_design_of_an_already_balanced_assignment_moves_few_customers() {
        let (customers, reps) = team();
        let cfg = TerritoryConfig::default();
        let first = design_territories(&customers, &reps, &cfg, SEED).unwrap();
        assert_eq!(first.moves.len(), customers.len(), "nobody owned anything before");
        let today = written_back(&first, &customers);
        let again = design_territories(&today, &reps, &cfg, SEED + 1).unwrap();
        assert!(again.within_tolerance);
        assert!(again.moves.len() <= customers.len() / 50, "{} moves", again.moves.len());
        assert_eq!(
            again.moves.iter().map(|m| m.customer_id.clone()).collect::<Vec<_>>(),
            expected_moves(&again, &today).into_iter().map(|m| m.0).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_rep_joining_takes_over_customers_near_home_and_the_rest_mostly_stay() {
        let (customers, reps) = team();
        let cfg = TerritoryConfig::default();
        let today = written_back(&design_territories(&customers, &reps, &cfg, SEED).unwrap(), &customers);
        let mut bigger = reps.clone();
        bigger.push(RepBase { rep: "newcomer".into(), home: offset(CITY, 20.0, 5.0) });
        let design = design_territories(&today, &bigger, &cfg, SEED).unwrap();
        assert!(design.within_tolerance, "{} / {}", design.workload_balance, design.potential_balance);
        let newcomer = &design.territories[6];
        assert_eq!(newcomer.rep, "newcomer");
        // The newcomer's share is about 1/7 of the customers; everybody else keeps most of theirs.
        let to_newcomer = design.moves.iter().filter(|m| m.to == "newcomer").count();
        let others = design.moves.len() - to_newcomer;
        assert!(others <= customers.len() / 4, "{others} moves between existing reps");
    }

    #[test]
    fn apply_design_returns_exactly_the_customers_that_change() {
        let (mut customers, reps) = team();
        for (i, c) in customers.iter_mut().enumerate() {
            c.owner_rep = Some(reps[i % reps.len()].rep.clone());
        }
        // A customer with an unusable location keeps its owner.
        customers[0].location = GeoPoint::wgs84(f64::NAN, 0.0);
        let design = design_territories(&customers, &reps, &TerritoryConfig::default(), SEED).unwrap();
        assert_eq!(design.unplaced.len(), 1);
        let changed = apply_design(&design, &customers);
        assert!(changed.iter().all(|c| c.id != customers[0].id));
        // Every placed customer gets a territory id, so all of them change here (none had one).
        assert_eq!(changed.len(), customers.len() - 1);
        let moved: BTreeSet<&str> = design.moves.iter().map(|m| m.customer_id.as_str()).collect();
        for c in &changed {
            let t = design.territories.iter().find(|t| t.customer_ids.contains(&c.id)).unwrap();
            assert_eq!(c.owner_rep.as_deref(), Some(t.rep.as_str()));
            assert_eq!(c.territory.as_deref(), Some(t.territory_id.as_str()));
            let before = customers.iter().find(|b| b.id == c.id).unwrap();
            assert_eq!(moved.contains(c.id.as_str()), before.owner_rep != c.owner_rep);
            // Nothing else is touched.
            let mut restored = c.clone();
            restored.owner_rep = before.owner_rep.clone();
            restored.territory = before.territory.clone();
            assert_eq!(&restored, before);
        }
        // Applying again changes nothing.
        let applied = written_back(&design, &customers);
        assert!(apply_design(&design, &applied).is_empty());
    }

    #[test]
    fn each_rep_gets_the_territory_nearest_home_when_nobody_owns_anything() {
        // Three far-apart towns of equal weight, one rep living in each (listed in another order).
        let towns = [offset(CITY, 0.0, -60.0), offset(CITY, 50.0, 30.0), offset(CITY, -50.0, 30.0)];
        let mut rng = Rng::new(3);
        let mut customers = Vec::new();
        for (t, town) in towns.iter().enumerate() {
            for i in 0..60 {
                let p = offset(*town, rng.normal() * 3.0, rng.normal() * 3.0);
                let tier = [Tier::A, Tier::B, Tier::C][i % 3];
                customers.push(customer(&format!("t{t}-{i}"), p.lat, p.lon, Some(tier), 1000.0, None));
            }
        }
        let reps = vec![
            RepBase { rep: "lives-in-town-2".into(), home: offset(towns[2], 1.0, 1.0) },
            RepBase { rep: "lives-in-town-0".into(), home: offset(towns[0], -2.0, 0.0) },
            RepBase { rep: "lives-in-town-1".into(), home: offset(towns[1], 0.0, 2.0) },
        ];
        let design = design_territories(&customers, &reps, &TerritoryConfig::default(), SEED).unwrap();
        for t in &design.territories {
            let town = t.rep.trim_start_matches("lives-in-town-");
            assert!(t.customer_ids.iter().all(|id| id.starts_with(&format!("t{town}-"))), "{}", t.rep);
            assert!(t.home_distance_km < 5.0);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_design() {
        let (customers, reps) = team();
        let cfg = TerritoryConfig::default();
        let a = design_territories(&customers, &reps, &cfg, 9).unwrap();
        let b = design_territories(&customers, &reps, &cfg, 9).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn bad_team_input_gives_typed_errors() {
        let (customers, reps) = team();
        let cfg = TerritoryConfig::default();
        assert_eq!(design_territories(&customers, &[], &cfg, SEED), Err(AreaError::NoReps));
        assert_eq!(design_territories(&[], &reps, &cfg, SEED), Err(AreaError::NoCustomers));
        let mut dup = reps.clone();
        dup[1].rep = dup[0].rep.clone();
        assert_eq!(
            design_territories(&customers, &dup, &cfg, SEED),
            Err(AreaError::DuplicateRep(dup[0].rep.clone()))
        );
        let mut homeless = reps.clone();
        homeless[2].home = LatLon { lat: f64::NAN, lon: 4.0 };
        assert!(matches!(
            design_territories(&customers, &homeless, &cfg, SEED),
            Err(AreaError::InvalidRepHome { .. })
        ));
        assert_eq!(
            design_territories(&customers[..4], &reps, &cfg, SEED),
            Err(AreaError::TooManyAreas { areas: 6, customers: 4 })
        );
        let bad_weights = TerritoryConfig {
            weights: fieldsync_planning::areas::DesignWeights { potential: -1.0, ..Default::default() },
            ..TerritoryConfig::default()
        };
        assert!(matches!(
            design_territories(&customers, &reps, &bad_weights, SEED),
            Err(AreaError::InvalidConfig { .. })
        ));

        // Garbage potentials count as zero; as many reps as customers is fine.
        let mut odd = customers[..6].to_vec();
        odd[0].potential_value = f64::NAN;
        odd[1].potential_value = -5.0;
        odd[2].potential_value = f64::INFINITY;
        let design = design_territories(&odd, &reps, &cfg, SEED).unwrap();
        assert!(design.territories.iter().all(|t| t.customer_ids.len() == 1 && t.potential.is_finite()));
    }
}
