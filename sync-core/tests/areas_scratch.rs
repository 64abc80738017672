mod areas_fixtures;
use areas_fixtures::*;
use fieldsync_core::planning::areas::*;
#[test]
fn scratch() {
    for seed in [1u64, 2, 3, 20_240_601] {
        let customers = clustered(300, 3, 12.0, 3.0, seed);
        for (restarts, cw) in [(4, 1.0), (16, 1.0), (4, 0.0), (4, 10.0)] {
            let cfg = AreaConfig { restarts, compactness_weight: cw, ..AreaConfig::default() };
            let p = sub_areas(&customers, 5, &cfg, seed).unwrap();
            eprintln!(
                "seed {seed} restarts {restarts} cw {cw}: nearest {:.3} bal {:.3} mean {:.2} within {}",
                p.nearest_centroid_share, p.balance, p.mean_distance_km, p.within_tolerance
            );
        }
    }
}
