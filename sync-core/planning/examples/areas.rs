//! Times sub-area planning (300 customers, 5 areas) and territory design (2 000 customers, 8 reps)
//! on generated data, and prints the balances. Run in release:
//!
//! ```text
//! cargo run --release -p fieldsync-planning --example areas
//! ```

#[path = "../tests/areas_fixtures.rs"]
mod fixtures;

use std::time::{Duration, Instant};

use fieldsync_planning::areas::{
    AreaConfig, AreaError, TerritoryConfig, apply_design, design_territories, sub_areas,
};

/// Median of `runs` timings of `f`, and its last result.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        last = Some(f());
        times.push(start.elapsed());
    }
    times.sort();
    let Some(result) = last else { unreachable!("runs > 0") };
    (times[times.len() / 2], result)
}

fn main() -> Result<(), AreaError> {
    let seed = 42;

    let customers = fixtures::clustered(300, 3, 12.0, 3.0, seed);
    let cfg = AreaConfig::default();
    let (t, plan) = time(21, || sub_areas(&customers, 5, &cfg, seed));
    let plan = plan?;
    println!("sub_areas: 300 customers, 5 areas, tolerance {:.2}", cfg.tolerance);
    println!("  median time        {:>10.2?}", t);
    println!("  balance (max/min)  {:>10.3}  within tolerance: {}", plan.balance, plan.within_tolerance);
    println!("  mean km to centre  {:>10.2}", plan.mean_distance_km);
    println!("  nearest centroid   {:>9.1} %", 100.0 * plan.nearest_centroid_share);
    for a in &plan.areas {
        println!(
            "  {:<10} {:>3} customers {:>6.0} min ({:>4.0} travel) radius {:>5.1} km",
            a.name,
            a.customer_ids.len(),
            a.workload_min,
            a.travel_min,
            a.radius_km
        );
    }

    let customers = fixtures::clustered(2000, 3, 25.0, 6.0, seed);
    let reps = fixtures::reps(8, seed);
    let cfg = TerritoryConfig::default();
    let (t, design) = time(5, || design_territories(&customers, &reps, &cfg, seed));
    let design = design?;
    println!();
    println!(
        "design_territories: 2000 customers, 8 reps, tolerance {:.2} (cold: nobody owns anything)",
        cfg.tolerance
    );
    println!("  median time        {:>10.2?}", t);
    println!("  workload balance   {:>10.3}", design.workload_balance);
    println!(
        "  potential balance  {:>10.3}  within tolerance: {}",
        design.potential_balance, design.within_tolerance
    );
    println!("  nearest centroid   {:>9.1} %", 100.0 * design.nearest_centroid_share);
    println!("  moves              {:>10}", design.moves.len());
    for tr in &design.territories {
        println!(
            "  {:<6} {:>4} customers {:>7.0} min ({:>5.0} travel) potential {:>9.0} home {:>5.1} km hull {:>2} pts",
            tr.rep,
            tr.customer_ids.len(),
            tr.workload_min,
            tr.travel_min,
            tr.potential,
            tr.home_distance_km,
            tr.hull.len()
        );
    }

    // Write the design back and redesign: the warm start should keep almost everybody.
    let mut owned = customers.clone();
    let changed = apply_design(&design, &customers);
    for c in changed {
        if let Some(slot) = owned.iter_mut().find(|o| o.id == c.id) {
            *slot = c;
        }
    }
    let (t, again) = time(5, || design_territories(&owned, &reps, &cfg, seed + 1));
    let again = again?;
    println!();
    println!("redesign of the applied design (warm start, another seed)");
    println!("  median time        {:>10.2?}", t);
    println!(
        "  workload {:.3}  potential {:.3}  moves {}",
        again.workload_balance,
        again.potential_balance,
        again.moves.len()
    );
    Ok(())
}
