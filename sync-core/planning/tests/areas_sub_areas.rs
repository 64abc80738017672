//! Sub-areas (片区) of one rep's customers: a partition, balanced, compact, deterministic, and never a
//! panic on bad input.

mod areas_fixtures;

use std::collections::BTreeMap;

use areas_fixtures::{CITY, clustered, customer};
use fieldsync_core::docs::{Document, GeoPoint, Territory, Tier};
use fieldsync_core::geo::{LatLon, distance_m, wgs84_to_gcj02};
use fieldsync_planning::areas::{
    AreaConfig, AreaError, AreaNaming, SubAreaPlan, sub_areas, to_territory_sub_areas,
};

const SEED: u64 = 20_240_601;

fn rep_customers() -> Vec<fieldsync_core::docs::Customer> {
    clustered(300, 3, 12.0, 3.0, SEED)
}

fn assert_partition(plan: &SubAreaPlan, expected: &[String]) {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &plan.areas {
        assert!(!a.customer_ids.is_empty(), "{} is empty", a.name);
        for id in &a.customer_ids {
            *count.entry(id.as_str()).or_default() += 1;
        }
    }
    for id in expected {
        assert_eq!(count.get(id.as_str()), Some(&1), "{id} must be in exactly one area");
    }
    assert_eq!(count.len(), expected.len(), "no customer may appear that was not given");
}

/// In a module named `areas` so that `cargo test -p fieldsync-planning areas` selects them.
mod areas {
    use super::*;

    #[test]
    fn sub_areas_are_a_partition_of_the_reps_customers() {
        let customers = rep_customers();
        let plan = sub_areas(&customers, 5, &AreaConfig::default(), SEED).unwrap();
        assert_eq!(plan.areas.len(), 5);
        let ids: Vec<String> = customers.iter().map(|c| c.id.clone()).collect();
        assert_partition(&plan, &ids);
        assert!(plan.unplaced.is_empty());
    }

    #[test]
    fn sub_areas_are_balanced_within_the_tolerance_asked() {
        let customers = rep_customers();
        for tolerance in [0.20, 0.10, 0.05] {
            let cfg = AreaConfig { tolerance, ..AreaConfig::default() };
            let plan = sub_areas(&customers, 5, &cfg, SEED).unwrap();
            let max = plan.areas.iter().map(|a| a.workload_min).fold(f64::MIN, f64::max);
            let min = plan.areas.iter().map(|a| a.workload_min).fold(f64::MAX, f64::min);
            assert!((plan.balance - max / min).abs() < 1e-9);
            assert!(plan.within_tolerance, "tolerance {tolerance}: balance {}", plan.balance);
            assert!(
                plan.balance <= 1.0 + tolerance + 1e-9,
                "tolerance {tolerance}: balance {}",
                plan.balance
            );
        }
    }

    #[test]
    fn sub_areas_are_compact() {
        let customers = rep_customers();
        let plan = sub_areas(&customers, 5, &AreaConfig::default(), SEED).unwrap();
        let at: BTreeMap<&str, LatLon> = customers
            .iter()
            .map(|c| (c.id.as_str(), LatLon { lat: c.location.lat, lon: c.location.lon }))
            .collect();
        // Measured here with great-circle distances, independently of the planner's own metric.
        let mut own_is_nearest = 0;
        let mut own_beats_most = 0;
        for (a, area) in plan.areas.iter().enumerate() {
            for id in &area.customer_ids {
                let p = at[id.as_str()];
                let own = distance_m(p, area.centroid);
                let closer_elsewhere = plan
                    .areas
                    .iter()
                    .enumerate()
                    .filter(|(b, other)| *b != a && distance_m(p, other.centroid) < own)
                    .count();
                if closer_elsewhere == 0 {
                    own_is_nearest += 1;
                }
                // Closer to its own centroid than to most (more than half) of the others.
                if closer_elsewhere * 2 < plan.areas.len() - 1 {
                    own_beats_most += 1;
                }
                assert!(own / 1000.0 <= area.radius_km + 1e-6);
            }
        }
        let n = customers.len() as f64;
        let beats_most = own_beats_most as f64 / n;
        assert!(beats_most >= 0.9, "{:.1} %", 100.0 * beats_most);
        // Stronger: most customers are nearest to their own area's centroid. Not all can be: three
        // clusters of uneven size make five balanced areas, so some area straddles two clusters.
        let nearest = own_is_nearest as f64 / n;
        assert!(nearest >= 0.85, "{:.1} %", 100.0 * nearest);
        assert!((plan.nearest_centroid_share - nearest).abs() < 0.02);
        // Areas are much tighter than the rep's whole patch (three clusters 12 km from the city).
        assert!(plan.mean_distance_km < 6.0, "{}", plan.mean_distance_km);
    }

    #[test]
    fn the_same_seed_gives_the_same_plan() {
        let customers = rep_customers();
        let cfg = AreaConfig::default();
        let a = sub_areas(&customers, 5, &cfg, 7).unwrap();
        let b = sub_areas(&customers, 5, &cfg, 7).unwrap();
        assert_eq!(a, b);
        // And the input order of equal data does not matter for which customers end up together.
        let c = sub_areas(&customers, 5, &cfg, 8).unwrap();
        assert!(c.within_tolerance);
    }

    #[test]
    fn workload_is_visits_by_cadence_times_visit_minutes_plus_travel() {
        // One A customer alone: every 7 days over 28 days is 4 visits of 45 minutes, and no travel.
        let cfg = AreaConfig::default();
        let one = [customer("a", CITY.lat, CITY.lon, Some(Tier::A), 1.0, None)];
        let plan = sub_areas(&one, 1, &cfg, SEED).unwrap();
        assert_eq!(plan.areas[0].visits, 4.0);
        assert_eq!(plan.areas[0].workload_min, 180.0);
        assert_eq!(plan.areas[0].travel_min, 0.0);

        // In general the fixed part is Σ visits × minutes by tier, and travel comes on top.
        let customers = rep_customers();
        let plan = sub_areas(&customers, 5, &cfg, SEED).unwrap();
        let by_id: BTreeMap<&str, Option<Tier>> = customers.iter().map(|c| (c.id.as_str(), c.tier)).collect();
        for area in &plan.areas {
            let fixed: f64 = area
                .customer_ids
                .iter()
                .map(|id| match by_id[id.as_str()] {
                    Some(Tier::A) => 4.0 * 45.0,
                    Some(Tier::B) => 2.0 * 30.0,
                    _ => 20.0,
                })
                .sum();
            assert!((area.workload_min - area.travel_min - fixed).abs() < 1e-6);
            assert!(area.travel_min > 0.0);
        }
    }

    #[test]
    fn areas_are_named_and_numbered_in_rotation_order() {
        let customers = rep_customers();
        let plan = sub_areas(&customers, 5, &AreaConfig::default(), SEED).unwrap();
        let names: Vec<&str> = plan.areas.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]);
        let ids: Vec<&str> = plan.areas.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["area-1", "area-2", "area-3", "area-4", "area-5"]);

        let weeks = AreaConfig { naming: AreaNaming::Weeks, ..AreaConfig::default() };
        let plan = sub_areas(&customers, 4, &weeks, SEED).unwrap();
        assert_eq!(plan.areas[3].name, "Week 4");
        let plan = sub_areas(&customers, 9, &AreaConfig::default(), SEED).unwrap();
        assert_eq!(plan.areas[6].name, "Sunday");
        assert_eq!(plan.areas[8].name, "Area 9");
    }

    #[test]
    fn a_plan_can_be_written_into_a_valid_territory_document() {
        let customers = rep_customers();
        let plan = sub_areas(&customers, 5, &AreaConfig::default(), SEED).unwrap();
        let subs = to_territory_sub_areas(&plan);
        assert_eq!(subs.len(), 5);
        for (s, a) in subs.iter().zip(&plan.areas) {
            assert_eq!((&s.id, &s.name, &s.customer_ids), (&a.id, &a.name, &a.customer_ids));
        }
        let territory = Territory::new("territory-alice", "Alice", vec!["alice".into()]);
        let doc = Document::Territory(Territory { sub_areas: subs, ..territory });
        doc.validate().unwrap();
    }

    #[test]
    fn empty_input_zero_areas_and_too_many_areas_are_typed_errors() {
        let cfg = AreaConfig::default();
        assert_eq!(sub_areas(&[], 3, &cfg, SEED), Err(AreaError::NoCustomers));
        let few = clustered(4, 1, 0.0, 1.0, SEED);
        assert_eq!(sub_areas(&few, 0, &cfg, SEED), Err(AreaError::NoAreas));
        assert_eq!(sub_areas(&few, 5, &cfg, SEED), Err(AreaError::TooManyAreas { areas: 5, customers: 4 }));
        // Exactly as many areas as customers: one each.
        let plan = sub_areas(&few, 4, &cfg, SEED).unwrap();
        assert!(plan.areas.iter().all(|a| a.customer_ids.len() == 1));
        // One area: everybody.
        let plan = sub_areas(&few, 1, &cfg, SEED).unwrap();
        assert_eq!(plan.areas[0].customer_ids.len(), 4);
        assert_eq!(plan.balance, 1.0);
    }

    #[test]
    fn customers_with_unusable_locations_are_reported_not_planned() {
        let mut customers = rep_customers();
        customers[0].location = GeoPoint::wgs84(f64::NAN, 4.8);
        customers[1].location = GeoPoint::wgs84(45.0, f64::INFINITY);
        customers[2].location = GeoPoint::wgs84(123.0, 4.8);
        customers[3].location.datum = "bd09".into();
        let plan = sub_areas(&customers, 5, &AreaConfig::default(), SEED).unwrap();
        let unplaced: Vec<&str> = plan.unplaced.iter().map(|u| u.customer_id.as_str()).collect();
        assert_eq!(unplaced, ["c00000", "c00001", "c00002", "c00003"]);
        assert!(plan.unplaced.iter().all(|u| !u.reason.is_empty()));
        let ids: Vec<String> = customers[4..].iter().map(|c| c.id.clone()).collect();
        assert_partition(&plan, &ids);
        assert!(plan.balance.is_finite());

        // Nothing usable at all.
        let nowhere: Vec<_> = (0..5)
            .map(|i| customer(&format!("x{i}"), f64::NAN, f64::NAN, Some(Tier::A), 1.0, None))
            .collect();
        assert_eq!(sub_areas(&nowhere, 2, &AreaConfig::default(), SEED), Err(AreaError::NoCustomers));
        // Fewer usable customers than areas.
        let mut mostly_nowhere = nowhere.clone();
        mostly_nowhere[0].location = GeoPoint::wgs84(45.0, 4.0);
        assert_eq!(
            sub_areas(&mostly_nowhere, 2, &AreaConfig::default(), SEED),
            Err(AreaError::TooManyAreas { areas: 2, customers: 1 })
        );
    }

    #[test]
    fn customers_all_at_the_same_place_are_still_split_and_balanced() {
        let customers: Vec<_> = (0..40)
            .map(|i| {
                customer(
                    &format!("d{i}"),
                    CITY.lat,
                    CITY.lon,
                    Some([Tier::A, Tier::B, Tier::C][i % 3]),
                    1.0,
                    None,
                )
            })
            .collect();
        let plan = sub_areas(&customers, 4, &AreaConfig::default(), SEED).unwrap();
        let ids: Vec<String> = customers.iter().map(|c| c.id.clone()).collect();
        assert_partition(&plan, &ids);
        assert!(plan.within_tolerance, "{}", plan.balance);
        assert!(plan.areas.iter().all(|a| a.radius_km < 1e-6 && a.travel_min < 1e-6));
    }

    #[test]
    fn gcj02_locations_are_converted_before_planning() {
        let customers = rep_customers();
        let wgs = sub_areas(&customers, 5, &AreaConfig::default(), SEED).unwrap();
        // The same customers, stored as a Chinese map provider would (far from China GCJ-02 is the
        // identity, so move the whole set to Shanghai first).
        let shanghai = LatLon { lat: 31.23, lon: 121.47 };
        let moved: Vec<_> = customers
            .iter()
            .map(|c| {
                let p = LatLon {
                    lat: c.location.lat - CITY.lat + shanghai.lat,
                    lon: c.location.lon - CITY.lon + shanghai.lon,
                };
                let mut c = c.clone();
                c.location = GeoPoint::wgs84(p.lat, p.lon);
                c
            })
            .collect();
        let as_gcj: Vec<_> = moved
            .iter()
            .map(|c| {
                let g = wgs84_to_gcj02(LatLon { lat: c.location.lat, lon: c.location.lon });
                let mut c = c.clone();
                c.location = GeoPoint { lat: g.lat, lon: g.lon, datum: "gcj02".into() };
                c
            })
            .collect();
        let a = sub_areas(&moved, 5, &AreaConfig::default(), SEED).unwrap();
        let b = sub_areas(&as_gcj, 5, &AreaConfig::default(), SEED).unwrap();
        for (x, y) in a.areas.iter().zip(&b.areas) {
            assert_eq!(x.customer_ids, y.customer_ids);
            // Centroids are WGS-84 in both cases: within centimetres, not the ~500 m GCJ-02 offset.
            assert!(distance_m(x.centroid, y.centroid) < 1.0);
        }
        assert!(wgs.within_tolerance && a.within_tolerance);
    }

    #[test]
    fn invalid_configurations_and_duplicate_ids_are_refused() {
        let customers = rep_customers();
        let bad = |f: fn(&mut AreaConfig)| {
            let mut cfg = AreaConfig::default();
            f(&mut cfg);
            sub_areas(&customers, 3, &cfg, SEED)
        };
        assert!(matches!(bad(|c| c.tolerance = f64::NAN), Err(AreaError::InvalidConfig { .. })));
        assert!(matches!(bad(|c| c.tolerance = -0.1), Err(AreaError::InvalidConfig { .. })));
        assert!(matches!(bad(|c| c.workload.travel.speed_kmh = 0.0), Err(AreaError::InvalidConfig { .. })));
        assert!(matches!(bad(|c| c.workload.cadence.b_days = 0), Err(AreaError::InvalidConfig { .. })));
        assert!(matches!(
            bad(|c| c.workload.visit_minutes.a = f64::INFINITY),
            Err(AreaError::InvalidConfig { .. })
        ));
        assert!(matches!(bad(|c| c.compactness_weight = f64::NAN), Err(AreaError::InvalidConfig { .. })));
        // Zero iterations or restarts is not an error: the seeding alone is returned.
        assert!(bad(|c| c.max_iterations = 0).is_ok());
        assert!(bad(|c| c.restarts = 0).is_ok());

        let mut dup = customers.clone();
        dup[5].id = dup[4].id.clone();
        assert_eq!(
            sub_areas(&dup, 3, &AreaConfig::default(), SEED),
            Err(AreaError::DuplicateCustomer(dup[4].id.clone()))
        );
    }
}
