//! Property tests: on random instances (duplicates, unusable points, any k) sub-areas and territory
//! designs are partitions of the usable customers, errors are the typed ones, and nothing panics.

mod areas_fixtures;

use std::collections::BTreeMap;

use areas_fixtures::customer;
use fieldsync_core::docs::{Customer, Tier};
use fieldsync_core::geo::LatLon;
use fieldsync_planning::areas::{
    AreaConfig, AreaError, RepBase, TerritoryConfig, design_territories, sub_areas,
};
use proptest::prelude::*;

/// (lat, lon) mostly in a small box, with duplicates and some unusable values.
fn point() -> impl Strategy<Value = (f64, f64)> {
    prop_oneof![
        8 => (45.0f64..45.3, 4.7f64..5.1),
        2 => Just((45.1, 4.9)),
        1 => prop_oneof![Just((f64::NAN, 4.9)), Just((45.0, f64::INFINITY)), Just((95.0, 4.9))],
    ]
}

fn customers() -> impl Strategy<Value = Vec<Customer>> {
    prop::collection::vec((point(), 0u8..4, 0.0f64..1e6, 0usize..5), 0..60).prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, ((lat, lon), tier, potential, owner))| {
                let tier = [Some(Tier::A), Some(Tier::B), Some(Tier::C), None][tier as usize];
                let owner = (owner < 4).then(|| format!("r{owner}"));
                customer(&format!("p{i}"), lat, lon, tier, potential, owner.as_deref())
            })
            .collect()
    })
}

fn usable(c: &Customer) -> bool {
    LatLon::new(c.location.lat, c.location.lon).is_ok()
}

fn check_partition<'a>(groups: impl Iterator<Item = &'a Vec<String>>, customers: &[Customer]) {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for g in groups {
        assert!(!g.is_empty(), "empty group");
        for id in g {
            *count.entry(id.as_str()).or_default() += 1;
        }
    }
    for c in customers {
        let expected = usize::from(usable(c));
        assert_eq!(count.get(c.id.as_str()).copied().unwrap_or(0), expected, "{}", c.id);
    }
    assert_eq!(count.values().sum::<usize>(), customers.iter().filter(|c| usable(c)).count());
}

/// In a module named `areas` so that `cargo test -p fieldsync-planning areas` selects them.
mod areas {
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn sub_areas_always_partition_the_usable_customers(
            customers in customers(),
            n in 0usize..9,
            tolerance in 0.0f64..0.5,
            seed in any::<u64>(),
        ) {
            let cfg = AreaConfig { tolerance, max_iterations: 50, restarts: 2, ..AreaConfig::default() };
            let located = customers.iter().filter(|c| usable(c)).count();
            match sub_areas(&customers, n, &cfg, seed) {
                Ok(plan) => {
                    prop_assert_eq!(plan.areas.len(), n);
                    check_partition(plan.areas.iter().map(|a| &a.customer_ids), &customers);
                    prop_assert_eq!(plan.unplaced.len(), customers.len() - located);
                    prop_assert!(plan.balance >= 1.0);
                    prop_assert!(plan.areas.iter().all(|a| a.workload_min.is_finite() && a.centroid.lat.is_finite()));
                }
                Err(AreaError::NoAreas) => prop_assert_eq!(n, 0),
                Err(AreaError::NoCustomers) => prop_assert_eq!(located, 0),
                Err(AreaError::TooManyAreas { areas, customers: c }) => {
                    prop_assert!(areas > c);
                    prop_assert_eq!(c, located);
                }
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }

        #[test]
        fn territory_designs_always_partition_the_usable_customers(
            customers in customers(),
            k in 1usize..5,
            seed in any::<u64>(),
        ) {
            let reps: Vec<RepBase> = (0..k)
                .map(|r| RepBase { rep: format!("r{r}"), home: LatLon { lat: 45.1 + 0.01 * r as f64, lon: 4.9 } })
                .collect();
            let cfg = TerritoryConfig { max_iterations: 50, restarts: 1, ..TerritoryConfig::default() };
            let located = customers.iter().filter(|c| usable(c)).count();
            match design_territories(&customers, &reps, &cfg, seed) {
                Ok(design) => {
                    prop_assert_eq!(design.territories.len(), k);
                    check_partition(design.territories.iter().map(|t| &t.customer_ids), &customers);
                    for m in &design.moves {
                        let c = customers.iter().find(|c| c.id == m.customer_id).unwrap();
                        prop_assert_eq!(&c.owner_rep, &m.from);
                        prop_assert!(c.owner_rep.as_deref() != Some(m.to.as_str()));
                    }
                    for t in &design.territories {
                        prop_assert!(!t.hull.is_empty() && t.hull.len() <= t.customer_ids.len());
                    }
                }
                Err(AreaError::NoCustomers) => prop_assert_eq!(located, 0),
                Err(AreaError::TooManyAreas { areas, customers: c }) => {
                    prop_assert!(areas > c);
                    prop_assert_eq!(c, located);
                }
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }
    }
}
