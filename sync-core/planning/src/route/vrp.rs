//! The solver's model and solution representation.
//!
//! A [`Problem`] is a set of nodes with a distance (cost) matrix and a travel-time matrix, jobs
//! (a node, time windows, service time, demand, must/optional value, allowed vehicles) and vehicles
//! (start/end node, shift, capacity). Time is an `f64` in any unit (Solomon: its own units; a rep's
//! day: milliseconds since the shift start, whole numbers, so all sums are exact).
//!
//! A [`Route`] caches, per position, the earliest departure (`dep`) and the latest arrival that
//! keeps the rest of the route feasible (`latest`, the "forward time slack" seen from the other end).
//! With waiting allowed, the departure from a stop is a non-decreasing function of the arrival even
//! with several windows per stop, so a suffix is feasible exactly when it is reached by one
//! threshold time; an insertion is therefore checked in O(windows of the inserted job).

use std::cmp::Ordering;

pub(crate) const NONE: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub node: u32,
    /// Sorted, disjoint, non-empty windows for service start; empty = never possible.
    pub windows: Vec<(f64, f64)>,
    pub service: f64,
    pub demand: i64,
    pub must: bool,
    /// What is lost if an optional job is not served (its priority, plus a little for being served).
    pub value: f64,
    /// `Some(allowed)`: allowed[v] says whether vehicle v may serve it.
    pub allowed: Option<Vec<bool>>,
}

impl Job {
    /// The end of the last window (service cannot start later).
    #[inline]
    pub(crate) fn last_end(&self) -> f64 {
        self.windows.last().map_or(f64::NEG_INFINITY, |w| w.1)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Vehicle {
    pub start: u32,
    pub end: u32,
    /// Earliest departure from the start, latest arrival at the end.
    pub shift: (f64, f64),
    pub capacity: i64,
    /// Vehicles of one class are interchangeable (same start, end, shift and capacity).
    pub class: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub n_nodes: usize,
    /// Row-major n_nodes × n_nodes: what the objective minimises (distance).
    pub dist: Vec<f64>,
    /// Row-major n_nodes × n_nodes: travel time.
    pub time: Vec<f64>,
    pub jobs: Vec<Job>,
    pub vehicles: Vec<Vehicle>,
    pub n_classes: usize,
    /// For each job, the other jobs from nearest to farthest.
    pub neighbours: Vec<Vec<u32>>,
    /// For each job, its distance from the first vehicle's start (to sort "far first").
    pub depot_dist: Vec<f64>,
    /// Hierarchical objective: fewer vehicles before less distance (Solomon).
    pub count_vehicles: bool,
    /// When false, an empty vehicle is only opened for a job that fits nowhere else.
    pub open_freely: bool,
    /// Mean matrix entry between jobs, the scale of the annealing temperature.
    pub scale: f64,
}

impl Problem {
    /// Builds the derived tables. `dist`/`time` must be n_nodes².
    pub(crate) fn new(
        n_nodes: usize,
        dist: Vec<f64>,
        time: Vec<f64>,
        jobs: Vec<Job>,
        mut vehicles: Vec<Vehicle>,
        count_vehicles: bool,
        open_freely: bool,
    ) -> Problem {
        // Classes of interchangeable vehicles.
        let mut classes: Vec<(u32, u32, u64, u64, i64)> = Vec::new();
        for v in vehicles.iter_mut() {
            let key = (v.start, v.end, v.shift.0.to_bits(), v.shift.1.to_bits(), v.capacity);
            let class = match classes.iter().position(|k| *k == key) {
                Some(c) => c,
                None => {
                    classes.push(key);
                    classes.len() - 1
                }
            };
            v.class = class as u32;
        }
        let n = n_nodes;
        let nj = jobs.len();
        let mut neighbours = Vec::with_capacity(nj);
        let mut sum = 0.0;
        let mut count = 0usize;
        for a in 0..nj {
            let na = jobs[a].node as usize;
            let mut others: Vec<(f64, u32)> = (0..nj)
                .filter(|&b| b != a)
                .map(|b| {
                    let nb = jobs[b].node as usize;
                    ((dist[na * n + nb] + dist[nb * n + na]) * 0.5, b as u32)
                })
                .collect();
            for (d, _) in &others {
                sum += d;
                count += 1;
            }
            others.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
            neighbours.push(others.into_iter().map(|(_, b)| b).collect());
        }
        let depot = vehicles.first().map(|v| v.start as usize).unwrap_or(0);
        let depot_dist =
            jobs.iter().map(|j| if n == 0 { 0.0 } else { dist[depot * n + j.node as usize] }).collect();
        let mut scale = if count > 0 { sum / count as f64 } else { 1.0 };
        if !(scale.is_finite() && scale > 0.0) {
            scale = 1.0;
        }
        Problem {
            n_nodes,
            dist,
            time,
            jobs,
            vehicles,
            n_classes: classes.len(),
            neighbours,
            depot_dist,
            count_vehicles,
            open_freely,
            scale,
        }
    }

    #[inline]
    pub(crate) fn d(&self, a: u32, b: u32) -> f64 {
        self.dist[a as usize * self.n_nodes + b as usize]
    }

    #[inline]
    pub(crate) fn t(&self, a: u32, b: u32) -> f64 {
        self.time[a as usize * self.n_nodes + b as usize]
    }

    #[inline]
    pub(crate) fn allowed(&self, job: u32, v: usize) -> bool {
        match &self.jobs[job as usize].allowed {
            None => true,
            Some(a) => a.get(v).copied().unwrap_or(false),
        }
    }
}

/// Service start for an arrival at `arr`: the first window still open, waiting for it if early.
#[inline]
pub(crate) fn service_start(windows: &[(f64, f64)], arr: f64) -> Option<f64> {
    for &(a, b) in windows {
        if arr <= b {
            return Some(if arr < a { a } else { arr });
        }
    }
    None
}

/// Latest arrival from which service can start by `latest_start` in some window.
#[inline]
fn latest_arrival(windows: &[(f64, f64)], latest_start: f64) -> f64 {
    for &(a, b) in windows.iter().rev() {
        if a <= latest_start {
            return if b < latest_start { b } else { latest_start };
        }
    }
    f64::NEG_INFINITY
}

/// Sorts windows, drops empty or non-finite ones and merges overlaps.
pub(crate) fn normalise_windows(mut w: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    w.retain(|&(a, b)| a.is_finite() && b.is_finite() && a <= b);
    w.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)));
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(w.len());
    for (a, b) in w {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

#[derive(Debug, Default)]
pub(crate) struct Route {
    /// Start node, the jobs' nodes, end node.
    pub nodes: Vec<u32>,
    pub jobs: Vec<u32>,
    /// Earliest departure at position p (0 = start, 1..=n jobs).
    pub dep: Vec<f64>,
    /// Latest arrival at position p (1..=n jobs, n+1 = end) keeping the rest feasible.
    pub latest: Vec<f64>,
    pub load: i64,
    pub dist: f64,
    pub end_time: f64,
    pub feasible: bool,
}

impl Clone for Route {
    fn clone(&self) -> Route {
        let mut r = Route::default();
        r.clone_from(self);
        r
    }

    // Reuses the buffers: the search copies solutions on every iteration.
    fn clone_from(&mut self, o: &Route) {
        self.nodes.clone_from(&o.nodes);
        self.jobs.clone_from(&o.jobs);
        self.dep.clone_from(&o.dep);
        self.latest.clone_from(&o.latest);
        self.load = o.load;
        self.dist = o.dist;
        self.end_time = o.end_time;
        self.feasible = o.feasible;
    }
}

impl Route {
    pub(crate) fn empty(p: &Problem, v: usize) -> Route {
        let mut r = Route::default();
        r.update(p, v);
        r
    }

    /// Recomputes the caches; returns whether the route is feasible.
    pub(crate) fn update(&mut self, p: &Problem, v: usize) -> bool {
        let veh = &p.vehicles[v];
        let n = self.jobs.len();
        self.nodes.clear();
        self.nodes.push(veh.start);
        self.nodes.extend(self.jobs.iter().map(|&j| p.jobs[j as usize].node));
        self.nodes.push(veh.end);
        self.dep.clear();
        self.dep.push(veh.shift.0);
        let mut feasible = true;
        let mut t = veh.shift.0;
        let mut dist = 0.0;
        let mut load = 0i64;
        let mut prev = veh.start;
        for &j in &self.jobs {
            let job = &p.jobs[j as usize];
            let arr = t + p.t(prev, job.node);
            match service_start(&job.windows, arr) {
                Some(s) => t = s + job.service,
                None => {
                    feasible = false;
                    t = arr + job.service;
                }
            }
            self.dep.push(t);
            dist += p.d(prev, job.node);
            load = load.saturating_add(job.demand);
            prev = job.node;
        }
        let end_time = t + p.t(prev, veh.end);
        dist += p.d(prev, veh.end);
        if end_time > veh.shift.1 || load > veh.capacity {
            feasible = false;
        }
        self.latest.clear();
        self.latest.resize(n + 2, f64::NEG_INFINITY);
        self.latest[n + 1] = veh.shift.1;
        let mut next = veh.end;
        for k in (0..n).rev() {
            let job = &p.jobs[self.jobs[k] as usize];
            let latest_start = self.latest[k + 2] - p.t(job.node, next) - job.service;
            self.latest[k + 1] = latest_arrival(&job.windows, latest_start);
            next = job.node;
        }
        self.load = load;
        self.dist = dist;
        self.end_time = end_time;
        self.feasible = feasible;
        feasible
    }

    /// Can `job` go between positions pos-1 and pos (1..=n+1)? Capacity is checked by the caller.
    #[inline]
    pub(crate) fn fits(&self, p: &Problem, job: u32, pos: usize) -> bool {
        let j = &p.jobs[job as usize];
        let a = self.nodes[pos - 1];
        let b = self.nodes[pos];
        let arr = self.dep[pos - 1] + p.t(a, j.node);
        match service_start(&j.windows, arr) {
            Some(s) => s + j.service + p.t(j.node, b) <= self.latest[pos],
            None => false,
        }
    }

    #[inline]
    pub(crate) fn insert_delta(&self, p: &Problem, node: u32, pos: usize) -> f64 {
        let a = self.nodes[pos - 1];
        let b = self.nodes[pos];
        p.d(a, node) + p.d(node, b) - p.d(a, b)
    }
}

/// The objective, compared lexicographically: must jobs missed, optional value lost, vehicles
/// (only when the problem counts them), distance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cost {
    pub must_missed: u32,
    pub value_lost: f64,
    pub vehicles: u32,
    pub distance: f64,
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

impl Cost {
    /// Compares everything above distance.
    pub(crate) fn cmp_upper(&self, o: &Cost) -> Ordering {
        self.must_missed
            .cmp(&o.must_missed)
            .then_with(|| {
                if close(self.value_lost, o.value_lost) {
                    Ordering::Equal
                } else {
                    self.value_lost.total_cmp(&o.value_lost)
                }
            })
            .then(self.vehicles.cmp(&o.vehicles))
    }

    pub(crate) fn better_than(&self, o: &Cost) -> bool {
        match self.cmp_upper(o) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => self.distance < o.distance - 1e-9 * (1.0 + o.distance.abs()),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Sol {
    pub routes: Vec<Route>,
    pub unassigned: Vec<u32>,
    pub route_of: Vec<u32>,
}

impl Clone for Sol {
    fn clone(&self) -> Sol {
        Sol {
            routes: self.routes.clone(),
            unassigned: self.unassigned.clone(),
            route_of: self.route_of.clone(),
        }
    }

    fn clone_from(&mut self, o: &Sol) {
        self.routes.clone_from(&o.routes);
        self.unassigned.clone_from(&o.unassigned);
        self.route_of.clone_from(&o.route_of);
    }
}

impl Sol {
    pub(crate) fn empty(p: &Problem) -> Sol {
        Sol {
            routes: (0..p.vehicles.len()).map(|v| Route::empty(p, v)).collect(),
            unassigned: (0..p.jobs.len() as u32).collect(),
            route_of: vec![NONE; p.jobs.len()],
        }
    }

    pub(crate) fn cost(&self, p: &Problem) -> Cost {
        let mut c = Cost { must_missed: 0, value_lost: 0.0, vehicles: 0, distance: 0.0 };
        for r in &self.routes {
            if !r.jobs.is_empty() {
                c.distance += r.dist;
                if p.count_vehicles {
                    c.vehicles += 1;
                }
            }
        }
        let mut lost: Vec<f64> = Vec::new();
        for &j in &self.unassigned {
            let job = &p.jobs[j as usize];
            if job.must {
                c.must_missed += 1;
            } else {
                lost.push(job.value);
            }
        }
        // Summed in a fixed order so that equal sets give equal sums.
        lost.sort_by(f64::total_cmp);
        c.value_lost = lost.iter().sum();
        c
    }

    pub(crate) fn used_routes(&self) -> usize {
        self.routes.iter().filter(|r| !r.jobs.is_empty()).count()
    }

    /// Inserts a job that is in no route (the caller keeps `unassigned`) and updates the route; on a
    /// (rounding-level) infeasibility, undoes and says false.
    pub(crate) fn insert(&mut self, p: &Problem, job: u32, v: usize, pos: usize) -> bool {
        let r = &mut self.routes[v];
        r.jobs.insert(pos - 1, job);
        if r.update(p, v) {
            self.route_of[job as usize] = v as u32;
            true
        } else {
            r.jobs.remove(pos - 1);
            r.update(p, v);
            false
        }
    }

    /// Removes jobs from routes (without updating them); they join `unassigned`.
    pub(crate) fn take_out(&mut self, v: usize, idx: &[usize]) -> Vec<u32> {
        let r = &mut self.routes[v];
        let mut taken = Vec::with_capacity(idx.len());
        let mut sorted: Vec<usize> = idx.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for &i in sorted.iter().rev() {
            if i < r.jobs.len() {
                taken.push(r.jobs.remove(i));
            }
        }
        for &j in &taken {
            self.route_of[j as usize] = NONE;
            self.unassigned.push(j);
        }
        taken
    }

    /// Updates a route after removals; if rounding made it infeasible, removes jobs until it is not.
    pub(crate) fn repair(&mut self, p: &Problem, v: usize) {
        while !self.routes[v].update(p, v) {
            if self.routes[v].jobs.is_empty() {
                return;
            }
            // Drop the first stop that is late (or the last one if the end is the problem).
            let r = &self.routes[v];
            let mut drop = r.jobs.len() - 1;
            let mut t = p.vehicles[v].shift.0;
            let mut prev = p.vehicles[v].start;
            for (k, &j) in r.jobs.iter().enumerate() {
                let job = &p.jobs[j as usize];
                let arr = t + p.t(prev, job.node);
                match service_start(&job.windows, arr) {
                    Some(s) => t = s + job.service,
                    None => {
                        drop = k;
                        break;
                    }
                }
                prev = job.node;
            }
            self.take_out(v, &[drop]);
        }
    }

    /// The full check, independent of the caches.
    #[cfg(test)]
    pub(crate) fn valid(&self, p: &Problem) -> bool {
        let mut seen = vec![false; p.jobs.len()];
        for (v, r) in self.routes.iter().enumerate() {
            let mut c = r.clone();
            if !c.update(p, v) {
                return false;
            }
            for &j in &r.jobs {
                if seen[j as usize] || !p.allowed(j, v) {
                    return false;
                }
                seen[j as usize] = true;
            }
        }
        self.unassigned.iter().all(|&j| !std::mem::replace(&mut seen[j as usize], true))
            && seen.iter().all(|&s| s)
    }
}
