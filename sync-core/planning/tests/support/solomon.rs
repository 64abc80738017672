//! Solomon VRPTW instances (the files in `shared/data/solomon`): parser, feasibility check, and the
//! library's solver ([`fieldsync_planning::route::vrptw`]) run on them. Not part of the library: the
//! `solomon` example and the `route_solomon` test include this file (`#[path = ...] mod solomon;`).
//!
//! Conventions (from that folder's README): the first line is the vehicle capacity; then one row per
//! node `id x y demand ready due service`, node 0 the depot whose due time is the horizon. Distance is
//! Euclidean in double precision, unrounded; travel time = distance; service starts at
//! max(arrival, ready) and must start by due; vehicles leave after the service time and are back at
//! the depot by its due time; load ≤ capacity. Node ids are the files' (not Solomon's originals).

#![allow(dead_code)] // each includer uses a part

use std::time::Instant;

use fieldsync_planning::Deadline;
use fieldsync_planning::route::RouteError;
use fieldsync_planning::route::vrptw::{self, Customer, Vrptw};
pub use fieldsync_planning::route::vrptw::{MAX_NODES, Objective};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: usize,
    pub x: f64,
    pub y: f64,
    pub demand: i64,
    pub ready: f64,
    pub due: f64,
    pub service: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub capacity: i64,
    /// nodes[0] is the depot; nodes[k].id == k.
    pub nodes: Vec<Node>,
}

impl Instance {
    pub fn customers(&self) -> usize {
        self.nodes.len().saturating_sub(1)
    }

    fn dist(&self, a: usize, b: usize) -> f64 {
        let (p, q) = (&self.nodes[a], &self.nodes[b]);
        let (dx, dy) = (p.x - q.x, p.y - q.y);
        (dx * dx + dy * dy).sqrt()
    }

    /// The instance as the library's matrix VRPTW.
    pub fn vrptw(&self) -> Vrptw {
        let n = self.nodes.len();
        let mut dist = vec![0.0; n * n];
        for a in 0..n {
            for b in 0..n {
                dist[a * n + b] = self.dist(a, b);
            }
        }
        let depot = self.nodes.first().map_or((0.0, 0.0), |d| (d.ready, d.due));
        let customers = self
            .nodes
            .iter()
            .skip(1)
            .map(|c| Customer { demand: c.demand, ready: c.ready, due: c.due, service: c.service })
            .collect();
        Vrptw { capacity: self.capacity, depot_window: depot, customers, dist }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Solution {
    /// Number of (non-empty) routes.
    pub vehicles: usize,
    pub distance: f64,
    /// Customer node ids per route, depot excluded.
    pub routes: Vec<Vec<usize>>,
    /// Customers that could not be served (only for instances where a customer is infeasible even
    /// alone); empty otherwise.
    pub unserved: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolveOptions {
    pub seed: u64,
    /// Wall-clock limit; 0 = none (then `max_iterations` alone decides and the result is a pure
    /// function of the instance and the seed). Turned into a [`Deadline`] here, by the caller of the
    /// library.
    pub time_limit_ms: u64,
    /// Ruin-and-recreate iterations at most.
    pub max_iterations: u64,
    pub objective: Objective,
    /// Share of the budget given to fleet minimisation (hierarchical objective only).
    pub fleet_share: f64,
}

impl SolveOptions {
    pub fn new(seed: u64, time_limit_ms: u64) -> SolveOptions {
        SolveOptions {
            seed,
            time_limit_ms,
            max_iterations: u64::MAX,
            objective: Objective::VehiclesThenDistance,
            fleet_share: 0.4,
        }
    }
}

/// Parses the format described above. Splits on whitespace; blank lines are skipped.
pub fn parse(text: &str) -> Result<Instance, RouteError> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (cap_line, cap_text) =
        lines.next().ok_or(RouteError::Parse { line: 1, reason: "empty file".into() })?;
    let capacity: i64 = cap_text.trim().parse().map_err(|_| RouteError::Parse {
        line: cap_line + 1,
        reason: format!("expected the vehicle capacity, found {:?}", cap_text.trim()),
    })?;
    if capacity < 0 {
        return Err(RouteError::Parse { line: cap_line + 1, reason: "negative capacity".into() });
    }
    let mut nodes = Vec::new();
    for (i, line) in lines {
        let err = |reason: String| RouteError::Parse { line: i + 1, reason };
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 7 {
            return Err(err(format!("expected 7 fields, found {}", fields.len())));
        }
        let mut v = [0f64; 7];
        for (k, f) in fields.iter().enumerate() {
            v[k] = f.parse::<f64>().map_err(|_| err(format!("not a number: {f:?}")))?;
            if !v[k].is_finite() {
                return Err(err(format!("not a finite number: {f:?}")));
            }
        }
        if v[0] != nodes.len() as f64 {
            return Err(err(format!("node id {} where {} was expected", v[0], nodes.len())));
        }
        if v[3] < 0.0 || v[3].fract() != 0.0 || v[3] > i64::MAX as f64 / 4.0 || v[6] < 0.0 {
            return Err(err("demand must be a non-negative integer and service non-negative".into()));
        }
        if nodes.len() >= MAX_NODES {
            return Err(RouteError::TooLarge { nodes: nodes.len() + 1, max: MAX_NODES });
        }
        nodes.push(Node {
            id: nodes.len(),
            x: v[1],
            y: v[2],
            demand: v[3] as i64,
            ready: v[4],
            due: v[5],
            service: v[6],
        });
    }
    if nodes.is_empty() {
        return Err(RouteError::Parse { line: 2, reason: "no depot row".into() });
    }
    Ok(Instance { capacity, nodes })
}

/// Solves with the hierarchical objective (vehicles, then distance).
pub fn solve(inst: &Instance, seed: u64, time_limit_ms: u64) -> Solution {
    solve_with(inst, &SolveOptions::new(seed, time_limit_ms))
}

pub fn solve_with(inst: &Instance, opts: &SolveOptions) -> Solution {
    let origin = Instant::now();
    let clock = move || origin.elapsed();
    let deadline = Deadline::after_ms(&clock, opts.time_limit_ms);
    let lib = vrptw::SolveOptions {
        seed: opts.seed,
        max_iterations: opts.max_iterations,
        objective: opts.objective,
        fleet_share: opts.fleet_share,
    };
    let r = vrptw::solve(&inst.vrptw(), &lib, deadline);
    Solution {
        vehicles: r.routes.len(),
        distance: distance(inst, &r.routes),
        routes: r.routes,
        unserved: r.unserved,
    }
}

/// Total distance of routes (each from and back to the depot), summed in route order.
pub fn distance(inst: &Instance, routes: &[Vec<usize>]) -> f64 {
    let n = inst.nodes.len();
    let mut total = 0.0;
    if n == 0 {
        return total;
    }
    for r in routes {
        let mut prev = 0;
        for &c in r {
            if c < n {
                total += inst.dist(prev, c);
                prev = c;
            }
        }
        total += inst.dist(prev, 0);
    }
    total
}

/// Full feasibility check: every customer exactly once, no unknown node, windows (service starts by
/// due), capacity, return to the depot by its due time, and the stated vehicle count and distance.
pub fn check(inst: &Instance, sol: &Solution) -> Result<(), String> {
    let n = inst.nodes.len();
    if n == 0 {
        return Err("instance has no depot".into());
    }
    let depot = &inst.nodes[0];
    let mut seen = vec![false; n];
    for (r, route) in sol.routes.iter().enumerate() {
        if route.is_empty() {
            return Err(format!("route {r} is empty"));
        }
        let mut t = depot.ready;
        let mut load = 0i64;
        let mut prev = 0usize;
        for &c in route {
            if c == 0 || c >= n {
                return Err(format!("route {r}: {c} is not a customer"));
            }
            if std::mem::replace(&mut seen[c], true) {
                return Err(format!("customer {c} is visited twice"));
            }
            let node = &inst.nodes[c];
            let arrival = t + inst.dist(prev, c);
            if arrival > node.due {
                return Err(format!(
                    "route {r}: customer {c} reached at {arrival:.4}, after its due time {}",
                    node.due
                ));
            }
            t = arrival.max(node.ready) + node.service;
            load += node.demand;
            prev = c;
        }
        if load > inst.capacity {
            return Err(format!("route {r}: load {load} exceeds capacity {}", inst.capacity));
        }
        let back = t + inst.dist(prev, 0);
        if back > depot.due {
            return Err(format!("route {r}: back at the depot at {back:.4}, after {}", depot.due));
        }
    }
    if let Some(c) = (1..n).find(|&c| !seen[c]) {
        return Err(format!("customer {c} is not served"));
    }
    if sol.vehicles != sol.routes.len() {
        return Err(format!("{} vehicles stated for {} routes", sol.vehicles, sol.routes.len()));
    }
    let d = distance(inst, &sol.routes);
    if (d - sol.distance).abs() > 1e-6 * d.max(1.0) || sol.distance.is_nan() {
        return Err(format!("stated distance {} but the routes measure {d}", sol.distance));
    }
    Ok(())
}
