//! The search: Slack Induction by String Removals (SISR, Christiaens & Vanden Berghe, Transportation
//! Science 2020) — ruin adjacent strings of stops, recreate by greedy insertion with blinks, accept by
//! simulated annealing — plus SISR's fleet minimisation and a small local search for re-planning.

use std::cmp::Ordering;
use std::time::Duration;

use super::vrp::{Cost, NONE, Problem, Sol, service_start};
use crate::deadline::Deadline;
use crate::rng::Rng;

/// A caller's clock and the span of it a search (or a part of one) may use.
#[derive(Debug, Clone, Copy)]
struct Span<'a> {
    clock: Deadline<'a>,
    start: Duration,
    limit: Duration,
}

impl Span<'_> {
    fn elapsed(&self) -> Duration {
        self.clock.now().saturating_sub(self.start)
    }
}

/// When to stop: an iteration count, and optionally a caller's deadline. With no deadline the
/// search is a pure function of its input and seed.
#[derive(Debug, Clone)]
pub(crate) struct Budget<'a> {
    span: Option<Span<'a>>,
    pub max_iters: u64,
}

impl<'a> Budget<'a> {
    pub(crate) fn new(max_iters: u64, deadline: Option<Deadline<'a>>) -> Budget<'a> {
        let span = deadline.map(|d| {
            let start = d.now();
            Span { clock: d, start, limit: d.at().saturating_sub(start) }
        });
        Budget { span, max_iters }
    }

    /// A budget for a part of this one: `share` of what is left.
    pub(crate) fn part(&self, iters_done: u64, share: f64) -> Budget<'a> {
        let share = if share.is_finite() { share.clamp(0.0, 1.0) } else { 0.0 };
        let left_iters = self.max_iters.saturating_sub(iters_done);
        let iters = (left_iters as f64 * share).ceil() as u64;
        let span = self.span.map(|s| {
            let left = s.limit.saturating_sub(s.elapsed());
            Span { clock: s.clock, start: s.clock.now(), limit: left.mul_f64(share) }
        });
        Budget { span, max_iters: iters }
    }

    /// Fraction used, 0..=1, the larger of iterations and time.
    pub(crate) fn progress(&self, iter: u64) -> f64 {
        let by_iter = if self.max_iters == 0 { 1.0 } else { iter as f64 / self.max_iters as f64 };
        let by_time = match self.span {
            Some(s) if !s.limit.is_zero() => s.elapsed().as_secs_f64() / s.limit.as_secs_f64(),
            Some(_) => 1.0,
            None => 0.0,
        };
        by_iter.max(by_time).min(1.0)
    }

    pub(crate) fn done(&self, iter: u64) -> bool {
        if iter >= self.max_iters {
            return true;
        }
        self.span.is_some_and(|s| s.elapsed() >= s.limit)
    }
}

/// SISR's parameters (the paper's values, temperatures scaled by the mean distance between jobs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    pub avg_removed: f64,
    pub max_string: f64,
    pub split_depth: f64,
    pub blink: f64,
    pub t0: f64,
    pub tf: f64,
}

impl Default for Params {
    fn default() -> Params {
        Params { avg_removed: 10.0, max_string: 10.0, split_depth: 0.01, blink: 0.01, t0: 10.0, tf: 0.1 }
    }
}

/// Removes strings of consecutive stops from routes near a random seed job.
pub(crate) fn ruin(p: &Problem, sol: &mut Sol, rng: &mut Rng, prm: &Params, touched: &mut Vec<usize>) {
    touched.clear();
    let nj = p.jobs.len();
    let assigned = nj - sol.unassigned.len();
    let used = sol.used_routes();
    if assigned == 0 || used == 0 {
        return;
    }
    let avg = assigned as f64 / used as f64;
    let ls_max = prm.max_string.min(avg).max(1.0);
    let ks_max = (4.0 * prm.avg_removed / (1.0 + ls_max) - 1.0).max(1.0);
    let ks = ((rng.f64() * ks_max).floor() as usize + 1).min(used);
    let seed = rng.below(nj) as u32;
    let neighbours = &p.neighbours[seed as usize];
    for &c in std::iter::once(&seed).chain(neighbours.iter()) {
        if touched.len() >= ks {
            break;
        }
        let v = sol.route_of[c as usize];
        if v == NONE || touched.contains(&(v as usize)) {
            continue;
        }
        let v = v as usize;
        let len = sol.routes[v].jobs.len();
        let Some(idx) = sol.routes[v].jobs.iter().position(|&j| j == c) else { continue };
        let lt_max = ls_max.min(len as f64);
        let l = ((rng.f64() * lt_max).floor() as usize + 1).clamp(1, len);
        let remove: Vec<usize> = if l == len || rng.chance(0.5) {
            let lo = (idx + 1).saturating_sub(l);
            let hi = idx.min(len - l);
            let s = rng.range(lo, hi.max(lo));
            (s..s + l).collect()
        } else {
            // Split string: l + m consecutive stops of which m consecutive ones are kept.
            let mut m = 1;
            while l + m < len && !rng.chance(prm.split_depth) {
                m += 1;
            }
            let total = l + m;
            let lo = (idx + 1).saturating_sub(total);
            let hi = idx.min(len - total);
            let s = rng.range(lo, hi.max(lo));
            let keep = rng.range(s, s + total - m);
            (s..s + total).filter(|&i| i < keep || i >= keep + m).collect()
        };
        sol.take_out(v, &remove);
        touched.push(v);
    }
    for &v in touched.iter() {
        sol.repair(p, v);
    }
}

/// The cheapest feasible position for a job, skipping each position with probability `blink`.
/// Empty vehicles are tried (one per class) when the problem opens them freely or nothing else fits.
pub(crate) fn best_position(
    p: &Problem,
    sol: &Sol,
    job: u32,
    rng: &mut Rng,
    blink: f64,
    allow_open: bool,
) -> Option<(usize, usize, f64)> {
    let j = &p.jobs[job as usize];
    if j.windows.is_empty() {
        return None;
    }
    let mut best: Option<(usize, usize, f64)> = None;
    let mut best_delta = f64::INFINITY;
    let last_end = j.last_end();
    for (v, r) in sol.routes.iter().enumerate() {
        if r.jobs.is_empty() || r.load.saturating_add(j.demand) > p.vehicles[v].capacity || !p.allowed(job, v)
        {
            continue;
        }
        for pos in 1..r.nodes.len() {
            // Departures only grow along a route (travel times are not negative).
            if r.dep[pos - 1] > last_end {
                break;
            }
            let delta = r.insert_delta(p, j.node, pos);
            if delta >= best_delta {
                continue;
            }
            if blink > 0.0 && rng.chance(blink) {
                continue;
            }
            if r.fits(p, job, pos) {
                best_delta = delta;
                best = Some((v, pos, delta));
            }
        }
    }
    if allow_open && (best.is_none() || p.open_freely) {
        let mut seen = vec![false; p.n_classes];
        for (v, r) in sol.routes.iter().enumerate() {
            let class = p.vehicles[v].class as usize;
            if !r.jobs.is_empty() || seen[class] || !p.allowed(job, v) || j.demand > p.vehicles[v].capacity {
                continue;
            }
            seen[class] = true;
            let veh = &p.vehicles[v];
            let delta = p.d(veh.start, j.node) + p.d(j.node, veh.end);
            if delta < best_delta && r.fits(p, job, 1) {
                best_delta = delta;
                best = Some((v, 1, delta));
            }
        }
    }
    best
}

/// Inserts every unassigned job it can, in one of SISR's orders (must jobs always first).
pub(crate) fn recreate(p: &Problem, sol: &mut Sol, rng: &mut Rng, blink: f64, allow_open: bool) {
    let mut pending = std::mem::take(&mut sol.unassigned);
    match rng.below(13) {
        0..=3 => rng.shuffle(&mut pending),
        4..=7 => {
            rng.shuffle(&mut pending);
            pending.sort_by(|&a, &b| p.jobs[b as usize].demand.cmp(&p.jobs[a as usize].demand));
        }
        8..=9 => pending.sort_by(|&a, &b| p.depot_dist[b as usize].total_cmp(&p.depot_dist[a as usize])),
        10 => pending.sort_by(|&a, &b| p.depot_dist[a as usize].total_cmp(&p.depot_dist[b as usize])),
        _ => {
            rng.shuffle(&mut pending);
            pending.sort_by(|&a, &b| p.jobs[b as usize].value.total_cmp(&p.jobs[a as usize].value));
        }
    }
    // Stable: must jobs first, keeping the order above within each group.
    pending.sort_by_key(|&j| !p.jobs[j as usize].must);
    for job in pending {
        match best_position(p, sol, job, rng, blink, allow_open) {
            Some((v, pos, _)) if sol.insert(p, job, v, pos) => {}
            _ => sol.unassigned.push(job),
        }
    }
}

fn accept(new: &Cost, cur: &Cost, temp: f64, rng: &mut Rng) -> bool {
    match new.cmp_upper(cur) {
        Ordering::Less => true,
        Ordering::Greater => false,
        Ordering::Equal => {
            let threshold = cur.distance - temp * (1.0 - rng.f64()).ln();
            new.distance < threshold
        }
    }
}

/// Ruin-and-recreate under simulated annealing; returns the best solution seen and the iterations run.
pub(crate) fn anneal(p: &Problem, init: Sol, rng: &mut Rng, budget: &Budget, prm: &Params) -> (Sol, u64) {
    let mut cur = init;
    let mut cur_cost = cur.cost(p);
    let mut best = cur.clone();
    let mut best_cost = cur_cost;
    let mut work = cur.clone();
    let t0 = prm.t0 * p.scale;
    let tf = prm.tf * p.scale;
    let mut touched = Vec::new();
    let mut iter = 0u64;
    let mut temp = t0;
    while !budget.done(iter) {
        if iter.is_multiple_of(64) {
            temp = t0 * (tf / t0).powf(budget.progress(iter));
        }
        iter += 1;
        work.clone_from(&cur);
        ruin(p, &mut work, rng, prm, &mut touched);
        recreate(p, &mut work, rng, prm.blink, true);
        let c = work.cost(p);
        if accept(&c, &cur_cost, temp, rng) {
            std::mem::swap(&mut cur, &mut work);
            cur_cost = c;
            if c.better_than(&best_cost) {
                best.clone_from(&cur);
                best_cost = c;
            }
        }
    }
    (best, iter)
}

/// SISR's fleet minimisation: take a route out, then ruin and recreate without opening vehicles,
/// accepting fewer unserved jobs or a lower sum of their "absence counters" (how long each has been
/// out), until everything fits again; repeat. Needs a solution that serves every job.
pub(crate) fn minimise_fleet(
    p: &Problem,
    init: Sol,
    rng: &mut Rng,
    budget: &Budget,
    prm: &Params,
    lower_bound: usize,
) -> (Sol, u64) {
    let mut best = init;
    let mut iter = 0u64;
    if !best.unassigned.is_empty() {
        return (best, iter);
    }
    let mut absence = vec![0u64; p.jobs.len()];
    let mut touched = Vec::new();
    let mut work = best.clone();
    'outer: while best.used_routes() > lower_bound.max(1) && !budget.done(iter) {
        let mut s = best.clone();
        let used: Vec<usize> = (0..s.routes.len()).filter(|&v| !s.routes[v].jobs.is_empty()).collect();
        let a = used[rng.below(used.len())];
        let b = used[rng.below(used.len())];
        let v = if s.routes[a].jobs.len() <= s.routes[b].jobs.len() { a } else { b };
        let all: Vec<usize> = (0..s.routes[v].jobs.len()).collect();
        s.take_out(v, &all);
        s.routes[v].update(p, v);
        let sum = |s: &Sol, absence: &[u64]| s.unassigned.iter().map(|&j| absence[j as usize]).sum::<u64>();
        let mut s_abs = sum(&s, &absence);
        while !budget.done(iter) {
            iter += 1;
            work.clone_from(&s);
            ruin(p, &mut work, rng, prm, &mut touched);
            recreate(p, &mut work, rng, prm.blink, false);
            let w_abs = sum(&work, &absence);
            if work.unassigned.len() < s.unassigned.len() || w_abs < s_abs {
                std::mem::swap(&mut s, &mut work);
            }
            for &j in &s.unassigned {
                absence[j as usize] += 1;
            }
            s_abs = sum(&s, &absence);
            if s.unassigned.is_empty() {
                best = s;
                continue 'outer;
            }
        }
    }
    (best, iter)
}

// --- local search (re-planning, polishing) -------------------------------------------------------

/// Distance of a route made of `jobs` for vehicle `v`, or None if it breaks a window, the shift or
/// the capacity.
pub(crate) fn eval_seq(p: &Problem, v: usize, jobs: &[u32]) -> Option<f64> {
    let veh = &p.vehicles[v];
    let mut t = veh.shift.0;
    let mut prev = veh.start;
    let mut dist = 0.0;
    let mut load = 0i64;
    for &j in jobs {
        let job = &p.jobs[j as usize];
        let arr = t + p.t(prev, job.node);
        t = service_start(&job.windows, arr)? + job.service;
        dist += p.d(prev, job.node);
        load = load.saturating_add(job.demand);
        prev = job.node;
    }
    if t + p.t(prev, veh.end) > veh.shift.1 || load > veh.capacity {
        return None;
    }
    Some(dist + p.d(prev, veh.end))
}

const EPS: f64 = 1e-9;

/// Best-improvement 2-opt and or-opt (segments of 1–3, either direction) inside each route.
fn improve_routes(p: &Problem, sol: &mut Sol) -> bool {
    let mut any = false;
    let mut cand: Vec<u32> = Vec::new();
    for v in 0..sol.routes.len() {
        loop {
            let jobs = &sol.routes[v].jobs;
            let n = jobs.len();
            if n < 2 {
                break;
            }
            let cur = sol.routes[v].dist;
            let mut best: Option<(f64, Vec<u32>)> = None;
            let consider = |cand: &Vec<u32>, best: &mut Option<(f64, Vec<u32>)>| {
                if let Some(d) = eval_seq(p, v, cand)
                    && d < cur - EPS * (1.0 + cur)
                    && best.as_ref().is_none_or(|(bd, _)| d < *bd)
                {
                    *best = Some((d, cand.clone()));
                }
            };
            // 2-opt: reverse jobs[i..=k].
            for i in 0..n {
                for k in i + 1..n {
                    cand.clear();
                    cand.extend_from_slice(&jobs[..i]);
                    cand.extend(jobs[i..=k].iter().rev());
                    cand.extend_from_slice(&jobs[k + 1..]);
                    consider(&cand, &mut best);
                }
            }
            // or-opt: move jobs[i..i+len] elsewhere, maybe reversed.
            for len in 1..=3.min(n - 1) {
                for i in 0..=n - len {
                    let seg = &jobs[i..i + len];
                    let rest: Vec<u32> = jobs[..i].iter().chain(&jobs[i + len..]).copied().collect();
                    for at in 0..=rest.len() {
                        if at == i {
                            continue;
                        }
                        for rev in [false, true] {
                            if rev && len == 1 {
                                continue;
                            }
                            cand.clear();
                            cand.extend_from_slice(&rest[..at]);
                            if rev {
                                cand.extend(seg.iter().rev());
                            } else {
                                cand.extend_from_slice(seg);
                            }
                            cand.extend_from_slice(&rest[at..]);
                            consider(&cand, &mut best);
                        }
                    }
                }
            }
            match best {
                Some((_, seq)) => {
                    sol.routes[v].jobs = seq;
                    sol.routes[v].update(p, v);
                    any = true;
                }
                None => break,
            }
        }
    }
    any
}

/// Moves single jobs to a cheaper position in another route.
fn relocate_between(p: &Problem, sol: &mut Sol, rng: &mut Rng) -> bool {
    let mut any = false;
    let nj = p.jobs.len() as u32;
    for job in 0..nj {
        let v = sol.route_of[job as usize];
        if v == NONE {
            continue;
        }
        let v = v as usize;
        let Some(i) = sol.routes[v].jobs.iter().position(|&j| j == job) else { continue };
        let r = &sol.routes[v];
        let gain = p.d(r.nodes[i], r.nodes[i + 1]) + p.d(r.nodes[i + 1], r.nodes[i + 2])
            - p.d(r.nodes[i], r.nodes[i + 2]);
        let mut trial = sol.clone();
        trial.take_out(v, &[i]);
        trial.unassigned.pop();
        trial.repair(p, v);
        let before = sol.cost(p);
        if let Some((w, pos, delta)) = best_position(p, &trial, job, rng, 0.0, true)
            && w != v
            && delta < gain - EPS * (1.0 + gain)
            && trial.insert(p, job, w, pos)
            && trial.cost(p).better_than(&before)
        {
            *sol = trial;
            any = true;
        }
    }
    any
}

/// Inserts unassigned jobs where they fit (must first, then by value), then tries to swap an
/// unassigned optional job in for a less valuable served one.
fn fill(p: &Problem, sol: &mut Sol, rng: &mut Rng) -> bool {
    let mut any = false;
    let mut pending = std::mem::take(&mut sol.unassigned);
    pending.sort_by(|&a, &b| {
        let (ja, jb) = (&p.jobs[a as usize], &p.jobs[b as usize]);
        jb.must.cmp(&ja.must).then(jb.value.total_cmp(&ja.value)).then(a.cmp(&b))
    });
    for job in pending {
        match best_position(p, sol, job, rng, 0.0, true) {
            Some((v, pos, _)) if sol.insert(p, job, v, pos) => any = true,
            _ => sol.unassigned.push(job),
        }
    }
    // Swap-in: an unserved job replaces a served optional one worth less.
    let mut pending = sol.unassigned.clone();
    pending.sort_by(|&a, &b| {
        let (ja, jb) = (&p.jobs[a as usize], &p.jobs[b as usize]);
        jb.must.cmp(&ja.must).then(jb.value.total_cmp(&ja.value)).then(a.cmp(&b))
    });
    for job in pending {
        let before = sol.cost(p);
        let mut done = false;
        for v in 0..sol.routes.len() {
            for i in 0..sol.routes[v].jobs.len() {
                let out = sol.routes[v].jobs[i];
                let (jo, jn) = (&p.jobs[out as usize], &p.jobs[job as usize]);
                if jo.must || (!jn.must && jo.value >= jn.value) {
                    continue;
                }
                let mut trial = sol.clone();
                trial.take_out(v, &[i]);
                trial.repair(p, v);
                trial.unassigned.retain(|&u| u != job);
                if let Some((w, pos, _)) = best_position(p, &trial, job, rng, 0.0, true)
                    && trial.insert(p, job, w, pos)
                    && trial.cost(p).better_than(&before)
                {
                    *sol = trial;
                    done = true;
                    any = true;
                    break;
                }
            }
            if done {
                break;
            }
        }
    }
    any
}

/// Local search to a local optimum (bounded number of rounds).
pub(crate) fn local_search(p: &Problem, sol: &mut Sol, rng: &mut Rng, rounds: usize) {
    for _ in 0..rounds {
        let mut any = fill(p, sol, rng);
        any |= improve_routes(p, sol);
        if sol.routes.len() > 1 {
            any |= relocate_between(p, sol, rng);
        }
        if !any {
            break;
        }
    }
}
