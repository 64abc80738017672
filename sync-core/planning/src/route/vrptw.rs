//! The solver on a plain capacitated VRPTW given as a distance matrix: what benchmarks (Solomon's
//! instances, parsed outside the library in `examples/solomon`) measure it with. Travel time equals
//! distance; service starts at max(arrival, ready) and must start by due; vehicles leave the depot
//! (node 0) within its window and are back by its end; load ≤ capacity; one vehicle per customer
//! is available (a benchmark's fleet size is never binding).

use serde::{Deserialize, Serialize};

use super::route_rng;
use super::search::{Budget, Params, anneal, minimise_fleet, recreate};
use super::vrp::{Job, Problem, Sol, Vehicle};
use crate::deadline::Deadline;

/// The largest instance accepted (nodes, depot included): the matrix is n² doubles.
pub const MAX_NODES: usize = 1501;

/// One customer: node `k + 1` for `jobs[k]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub demand: i64,
    pub ready: f64,
    pub due: f64,
    pub service: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vrptw {
    pub capacity: i64,
    /// When vehicles may leave the depot, and by when they are back.
    pub depot_window: (f64, f64),
    /// Node 0 is the depot, node `k + 1` is `customers[k]`.
    pub customers: Vec<Customer>,
    /// `(customers.len() + 1)²` distances, row-major (`dist[a * n + b]`).
    pub dist: Vec<f64>,
}

impl Vrptw {
    /// Nodes, depot included.
    pub fn nodes(&self) -> usize {
        self.customers.len() + 1
    }
}

/// What to minimise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Objective {
    /// Fewest vehicles, then least distance: how the best-known solutions are ranked.
    VehiclesThenDistance,
    /// Least distance, whatever the number of vehicles.
    Distance,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolveOptions {
    pub seed: u64,
    /// Ruin-and-recreate iterations at most.
    pub max_iterations: u64,
    pub objective: Objective,
    /// Share of the budget given to fleet minimisation (hierarchical objective only).
    pub fleet_share: f64,
}

/// Customer node ids per non-empty route (depot excluded), and those no route could take (only
/// for customers infeasible even alone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Routes {
    pub routes: Vec<Vec<usize>>,
    pub unserved: Vec<usize>,
}

fn problem(v: &Vrptw, objective: Objective) -> Problem {
    let n = v.nodes();
    let jobs: Vec<Job> = v
        .customers
        .iter()
        .enumerate()
        .map(|(k, c)| Job {
            node: (k + 1) as u32,
            windows: if c.ready <= c.due { vec![(c.ready, c.due)] } else { Vec::new() },
            service: c.service,
            demand: c.demand,
            must: true,
            value: 1.0,
            allowed: None,
        })
        .collect();
    let vehicles = (0..jobs.len().max(1))
        .map(|_| Vehicle { start: 0, end: 0, shift: v.depot_window, capacity: v.capacity, class: 0 })
        .collect();
    let hierarchical = objective == Objective::VehiclesThenDistance;
    Problem::new(n, v.dist.clone(), v.dist.clone(), jobs, vehicles, hierarchical, !hierarchical)
}

/// Solves `v`, stopping after `opts.max_iterations` or at `deadline`, whichever comes first. With no
/// deadline the result is a pure function of `v` and `opts`. An instance with no customer, more
/// than [`MAX_NODES`] nodes or a matrix of the wrong size gets no route, every customer unserved.
pub fn solve(v: &Vrptw, opts: &SolveOptions, deadline: Option<Deadline<'_>>) -> Routes {
    let n = v.nodes();
    if n <= 1 || n > MAX_NODES || v.dist.len() != n * n {
        return Routes { routes: vec![], unserved: (1..n).collect() };
    }
    let p = problem(v, opts.objective);
    let mut rng = route_rng(opts.seed);
    let budget = Budget::new(opts.max_iterations, deadline);
    let prm = Params::default();
    let mut sol = Sol::empty(&p);
    recreate(&p, &mut sol, &mut rng, 0.0, true);
    let best = match opts.objective {
        Objective::Distance => anneal(&p, sol, &mut rng, &budget, &prm).0,
        Objective::VehiclesThenDistance => {
            let demand: i128 = v.customers.iter().map(|c| i128::from(c.demand.max(0))).sum();
            let cap = i128::from(v.capacity);
            let lb =
                if cap > 0 { usize::try_from((demand + cap - 1) / cap).unwrap_or(usize::MAX) } else { 1 };
            let fleet_budget = budget.part(0, opts.fleet_share.clamp(0.0, 1.0));
            let (sol, used) = minimise_fleet(&p, sol, &mut rng, &fleet_budget, &prm, lb.max(1));
            let rest = budget.part(used, 1.0);
            anneal(&p, sol, &mut rng, &rest, &prm).0
        }
    };
    to_routes(&p, &best)
}

fn to_routes(p: &Problem, s: &Sol) -> Routes {
    let routes: Vec<Vec<usize>> = s
        .routes
        .iter()
        .filter(|r| !r.jobs.is_empty())
        .map(|r| r.jobs.iter().map(|&j| p.jobs[j as usize].node as usize).collect())
        .collect();
    let mut unserved: Vec<usize> = s.unassigned.iter().map(|&j| p.jobs[j as usize].node as usize).collect();
    unserved.sort_unstable();
    Routes { routes, unserved }
}
