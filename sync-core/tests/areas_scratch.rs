mod areas_fixtures;
use areas_fixtures::*;
use fieldsync_core::planning::areas::*;
use std::time::Instant;
fn show(label: &str, d: &TerritoryDesign, t: std::time::Duration) {
    eprintln!(
        "{label}: {t:?} wl {:.3} pot {:.3} within {} nearest {:.3} moves {} meankm {:.2}",
        d.workload_balance,
        d.potential_balance,
        d.within_tolerance,
        d.nearest_centroid_share,
        d.moves.len(),
        d.compactness_km / 1200.0
    );
}
#[test]
fn scratch_sub() {
    for seed in [1u64, 2, 3, 20_240_601] {
        let customers = clustered(300, 3, 12.0, 3.0, seed);
        for (restarts, cw) in [(4, 1.0), (16, 1.0)] {
            let cfg = AreaConfig { restarts, compactness_weight: cw, ..AreaConfig::default() };
            let p = sub_areas(&customers, 5, &cfg, seed).unwrap();
            eprintln!(
                "seed {seed} restarts {restarts} cw {cw}: nearest {:.3} bal {:.3} mean {:.2} within {}",
                p.nearest_centroid_share, p.balance, p.mean_distance_km, p.within_tolerance
            );
            if restarts == 4 && seed == 1 {
                for a in &p.areas {
                    eprintln!(
                        "   {} n {} wl {:.0} tr {:.0} r {:.1}",
                        a.name,
                        a.customer_ids.len(),
                        a.workload_min,
                        a.travel_min,
                        a.radius_km
                    );
                }
            }
        }
    }
}
#[test]
fn scratch() {
    let customers = clustered(1200, 3, 25.0, 6.0, 77);
    let reps = reps(6, 77);
    let cfg = TerritoryConfig::default();
    let t = Instant::now();
    let d = design_territories(&customers, &reps, &cfg, 77).unwrap();
    show("cold", &d, t.elapsed());
    let changed = apply_design(&d, &customers);
    let today: Vec<_> = customers
        .iter()
        .map(|c| changed.iter().find(|x| x.id == c.id).cloned().unwrap_or(c.clone()))
        .collect();
    let t = Instant::now();
    let d2 = design_territories(&today, &reps, &cfg, 78).unwrap();
    show("redesign", &d2, t.elapsed());
    let mut rng = Rng::new(5);
    let mut messy = customers.clone();
    for c in &mut messy {
        c.owner_rep = Some(reps[rng.below(6)].rep.clone());
    }
    let t = Instant::now();
    let d3 = design_territories(&messy, &reps, &cfg, 77).unwrap();
    show("messy", &d3, t.elapsed());
    let mut bigger = reps.clone();
    bigger.push(RepBase { rep: "newcomer".into(), home: offset(CITY, 20.0, 5.0) });
    let t = Instant::now();
    let d4 = design_territories(&today, &bigger, &cfg, 77).unwrap();
    show("newcomer", &d4, t.elapsed());
    eprintln!("  to newcomer {}", d4.moves.iter().filter(|m| m.to == "newcomer").count());
    for t in &d4.territories {
        eprintln!(
            "  {} n {} wl {:.0} tr {:.0} pot {:.0} home {:.1} visits {:.0}",
            t.rep,
            t.customer_ids.len(),
            t.workload_min,
            t.travel_min,
            t.potential,
            t.home_distance_km,
            t.visits
        );
    }
    let mut fewer = reps.clone();
    fewer.pop();
    let t = Instant::now();
    let d5 = design_territories(&today, &fewer, &cfg, 77).unwrap();
    show("rep leaves", &d5, t.elapsed());
    eprintln!("  from leaver {}", d5.moves.iter().filter(|m| m.from.as_deref() == Some("rep-5")).count());
    for tol in [0.05, 0.02] {
        let c = TerritoryConfig { tolerance: tol, ..cfg.clone() };
        let t = Instant::now();
        let d = design_territories(&customers, &reps, &c, 77).unwrap();
        show(&format!("tol {tol}"), &d, t.elapsed());
    }
}
