//! Runs the route solver on the Solomon instances and compares with the best-known solutions, then
//! times a 25-stop day route.
//!
//! ```text
//! cargo run --release -p fieldsync-planning --example solomon -- [DIR] [--time-ms 10000] [--seed 1]
//!     [--threads 2] [--objective hierarchical|distance|both] [--only C101]
//! ```
//! DIR defaults to `../shared/data/solomon` relative to the workspace root. Each of `--threads`
//! runs the (single-threaded, deterministic) solver with its own seed; the best result is kept.

use std::time::Instant;

#[path = "../tests/support/solomon.rs"]
mod solomon;

use fieldsync_core::geo::LatLon;
use fieldsync_planning::TravelModel;
use fieldsync_planning::route::{DayRouteRequest, RouteStop, plan_day, replan};
use solomon::{Objective, Solution, SolveOptions};

/// Best-known solutions, hierarchical objective (vehicles, then distance): SINTEF TOP, as listed in
/// shared/data/solomon/README.md ("Recomputed here" column).
const BKS: [(&str, usize, f64); 6] = [
    ("C101", 10, 828.9369),
    ("C201", 3, 591.5566),
    ("R101", 19, 1650.7992),
    ("R201", 4, 1252.3712),
    ("RC101", 14, 1696.9492),
    ("RC201", 4, 1406.9401),
];

/// Distance-only references from the same README (heuristic bests; R201 from dietmarwo's 8-vehicle
/// solution evaluated there).
const DIST_REF: [(&str, usize, f64); 6] = [
    ("C101", 10, 828.94),
    ("C201", 3, 591.56),
    ("R101", 20, 1642.88),
    ("R201", 8, 1147.9776),
    ("RC101", 16, 1643.41),
    ("RC201", 9, 1265.56),
];

struct Args {
    dir: String,
    time_ms: u64,
    seed: u64,
    threads: usize,
    objectives: Vec<Objective>,
    only: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/solomon").to_owned(),
        time_ms: 10_000,
        seed: 1,
        threads: 2,
        objectives: vec![Objective::VehiclesThenDistance, Objective::Distance],
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--time-ms" => a.time_ms = value()?.parse().map_err(|e| format!("--time-ms: {e}"))?,
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--threads" => a.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--only" => a.only = Some(value()?),
            "--objective" => {
                a.objectives = match value()?.as_str() {
                    "hierarchical" => vec![Objective::VehiclesThenDistance],
                    "distance" => vec![Objective::Distance],
                    "both" => vec![Objective::VehiclesThenDistance, Objective::Distance],
                    other => return Err(format!("unknown objective {other}")),
                }
            }
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}")),
            _ => a.dir = arg,
        }
    }
    Ok(a)
}

fn better(a: &Solution, b: &Solution, objective: Objective) -> bool {
    let key =
        |s: &Solution| (s.unserved.len(), if objective == Objective::Distance { 0 } else { s.vehicles });
    key(a) < key(b) || (key(a) == key(b) && a.distance < b.distance)
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    println!(
        "{:<6} {:<12} {:>4} {:>10} {:>7} {:>8} {:>9} {:>7} {:>8} {:>9} {:>7}  feasible",
        "inst",
        "objective",
        "veh",
        "distance",
        "time_ms",
        "bks_veh",
        "bks_dist",
        "gap_pct",
        "ref_veh",
        "ref_dist",
        "ref_gap"
    );
    for (name, bks_veh, bks_dist) in BKS {
        if a.only.as_deref().is_some_and(|o| !o.eq_ignore_ascii_case(name)) {
            continue;
        }
        let path = format!("{}/{name}.txt", a.dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        let inst = match solomon::parse(&text) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        for &objective in &a.objectives {
            let t0 = Instant::now();
            let results: Vec<Solution> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..a.threads.max(1))
                    .map(|k| {
                        let inst = &inst;
                        let opts = SolveOptions {
                            objective,
                            ..SolveOptions::new(a.seed.wrapping_add(k as u64), a.time_ms)
                        };
                        s.spawn(move || solomon::solve_with(inst, &opts))
                    })
                    .collect();
                handles.into_iter().filter_map(|h| h.join().ok()).collect()
            });
            let ms = t0.elapsed().as_millis();
            let Some(best) = results.iter().reduce(|x, y| if better(y, x, objective) { y } else { x }) else {
                continue;
            };
            let feasible = match solomon::check(&inst, best) {
                Ok(()) => "yes".to_owned(),
                Err(e) => format!("NO: {e}"),
            };
            let (_, ref_veh, ref_dist) =
                DIST_REF.iter().find(|r| r.0 == name).copied().unwrap_or((name, 0, f64::NAN));
            let label = match objective {
                Objective::VehiclesThenDistance => "veh,dist",
                Objective::Distance => "dist",
            };
            println!(
                "{name:<6} {label:<12} {:>4} {:>10.2} {:>7} {:>8} {:>9.2} {:>7.2} {:>8} {:>9.2} {:>7.2}  {feasible}",
                best.vehicles,
                best.distance,
                ms,
                bks_veh,
                bks_dist,
                (best.distance - bks_dist) / bks_dist * 100.0,
                ref_veh,
                ref_dist,
                (best.distance - ref_dist) / ref_dist * 100.0,
            );
        }
    }
    day_route_benchmark();
}

/// A 25-stop day in Paris: 8:00–18:00, half the shops closed 12:00–14:00, 20–40 minute visits.
fn day_request(seed: u64) -> DayRouteRequest {
    let day0 = 1_780_000_000_000i64; // some morning, epoch ms
    let h = 3_600_000i64;
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) as f64 / (1u64 << 31) as f64
    };
    let home = LatLon { lat: 48.8566, lon: 2.3522 };
    let stops = (0..25)
        .map(|i| {
            let location =
                LatLon { lat: home.lat + (next() - 0.5) * 0.12, lon: home.lon + (next() - 0.5) * 0.18 };
            let windows = match i % 4 {
                0 => vec![(day0 + h / 2, day0 + 4 * h), (day0 + 6 * h, day0 + 10 * h + h / 2)],
                1 => vec![(day0, day0 + 10 * h)],
                2 => vec![(day0 + 2 * h, day0 + 5 * h)],
                _ => vec![(day0 + 5 * h, day0 + 9 * h)],
            };
            RouteStop {
                id: format!("c{i}"),
                location,
                windows,
                service_s: 1200 + (next() * 1200.0) as u32,
                must: i % 5 == 0,
                priority: 1.0 + (i % 3) as f64,
            }
        })
        .collect();
    DayRouteRequest {
        start: home,
        end: home,
        day_start_ms: day0,
        day_end_ms: day0 + 10 * h,
        stops,
        travel: TravelModel::default(),
        seed,
        time_limit_ms: 0,
    }
}

fn day_route_benchmark() {
    let mut plan_ms = Vec::new();
    let mut replan_ms = Vec::new();
    let mut served = 0;
    for seed in 0..20 {
        let req = day_request(seed);
        let t = Instant::now();
        let Ok(route) = plan_day(&req) else { continue };
        plan_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        served += route.stops.len();
        let done: Vec<String> = route.stops.iter().take(3).map(|s| s.id.clone()).collect();
        let (now, pos) = match route.stops.get(2) {
            Some(s) => {
                (s.depart_ms, req.stops.iter().find(|x| x.id == s.id).map_or(req.start, |x| x.location))
            }
            None => (req.day_start_ms, req.start),
        };
        let t = Instant::now();
        if replan(&route, now + 600_000, pos, &done, &req).is_ok() {
            replan_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v.get(v.len() / 2).copied().unwrap_or(f64::NAN), v.last().copied().unwrap_or(f64::NAN))
    };
    let (pm, px) = stats(&mut plan_ms);
    let (rm, rx) = stats(&mut replan_ms);
    println!(
        "day route, 25 stops with windows (20 requests): plan_day median {pm:.1} ms, max {px:.1} ms; \
         {:.1} stops served on average; replan median {rm:.2} ms, max {rx:.2} ms",
        served as f64 / plan_ms.len().max(1) as f64
    );
}
