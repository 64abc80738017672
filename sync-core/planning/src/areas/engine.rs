//! The partitioning engine shared by sub-areas and territory design.
//!
//! Customers are points in a local planar projection (km), each with a number of visits per
//! rotation, a fixed workload (visits × visit minutes), a potential and, for territory design, the
//! index of the rep who owns it today. The engine finds `k` non-empty groups minimising
//!
//! ```text
//! F = p·w_work·Σ_t (W_t/W̄ − 1)²  +  p·w_pot·Σ_t (P_t/P̄ − 1)²       balance
//!   + w_comp·Σ_t I_t / I_all                                      compactness
//!   + w_cont·(customers taken from today's owner) / n              continuity
//! ```
//!
//! where `W_t` is a group's workload (Σ over its customers of visit minutes plus the travel
//! estimate of [`Engine::new`]),
//! `P_t` its potential, `I_t` its visit-weighted inertia (Σ visits·distance² to its centroid, the
//! k-means criterion), `I_all` the inertia of all customers around one centre, and `p` a balance
//! pressure that starts at 1 and is raised ×4 whenever a local optimum is still outside the balance
//! tolerance (a classic penalty method: the configured weights decide the trade-off, and balance is
//! only forced when the trade-off alone does not reach the tolerance).
//!
//! Every group keeps running sums (count, visits, Σ visits·x, Σ visits·|x|², minutes, potential), so
//! the exact change of `F` for moving or swapping customers is O(1) (centroids move with the
//! customers, as in Hartigan's k-means); a sweep over all boundary customers is O(n·neighbours).

use rstar::RTree;
use rstar::primitives::GeomWithData;

use super::geom::{dist2, hungarian};
use crate::rng::Rng;

/// Beardwood–Halton–Hammersley constant: a shortest tour through m random points of an area A is
/// about 0.7124·√(m·A) long, i.e. a leg is about 0.7124·√(A/m).
const BHH: f64 = 0.7124;
/// Neighbours per customer in the adjacency graph that defines "boundary customers".
const NEIGHBOURS: usize = 8;
/// Other groups, by centroid distance, a customer may also move to (so groups separated by empty
/// land can still exchange customers).
const NEAREST_CENTROIDS: usize = 2;
const LLOYD_ITERATIONS: usize = 25;
const PRESSURE_STEP: f64 = 4.0;
const MAX_PRESSURE: f64 = 1e9;
/// A move must improve the objective by more than this (plus 1e-9 relative) to count.
const EPS: f64 = 1e-12;

/// One customer as the engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Item {
    /// Planar position, km.
    pub xy: [f64; 2],
    /// Visits per rotation (> 0).
    pub visits: f64,
    /// Visits × visit minutes.
    pub fixed: f64,
    /// Visits × travel minutes per visit; computed by [`Engine::new`] (give 0).
    pub travel: f64,
    /// Potential, normalised to 0..=1 (the balance terms are scale-free).
    pub potential: f64,
    /// The group (rep) that holds this customer today.
    pub orig: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Weights {
    pub workload: f64,
    pub potential: f64,
    pub compactness: f64,
    pub continuity: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Problem<'a> {
    pub items: &'a [Item],
    pub k: usize,
    /// Travel minutes per km of straight-line distance (detour factor and speed included).
    pub minutes_per_km: f64,
    /// Weeks per rotation: how often an area worked one day a week is visited.
    pub weeks: f64,
    pub weights: Weights,
    pub tolerance: f64,
    pub max_sweeps: usize,
}

/// Running sums of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Stats {
    pub n: usize,
    pub visits: f64,
    sx: f64,
    sy: f64,
    sq: f64,
    pub fixed: f64,
    pub travel: f64,
    pub potential: f64,
}

impl Stats {
    fn add(&mut self, it: &Item) {
        let [x, y] = it.xy;
        self.n += 1;
        self.visits += it.visits;
        self.sx += it.visits * x;
        self.sy += it.visits * y;
        self.sq += it.visits * (x * x + y * y);
        self.fixed += it.fixed;
        self.travel += it.travel;
        self.potential += it.potential;
    }

    fn remove(&mut self, it: &Item) {
        if self.n <= 1 {
            *self = Stats::default();
            return;
        }
        let [x, y] = it.xy;
        self.n -= 1;
        self.visits -= it.visits;
        self.sx -= it.visits * x;
        self.sy -= it.visits * y;
        self.sq -= it.visits * (x * x + y * y);
        self.fixed -= it.fixed;
        self.travel -= it.travel;
        self.potential -= it.potential;
    }

    fn with(mut self, it: &Item) -> Stats {
        self.add(it);
        self
    }

    fn without(mut self, it: &Item) -> Stats {
        self.remove(it);
        self
    }

    /// Visit-weighted centroid (where the rep's effort is centred).
    pub fn centroid(&self) -> [f64; 2] {
        if self.visits > 0.0 { [self.sx / self.visits, self.sy / self.visits] } else { [0.0, 0.0] }
    }

    /// Σ visits·distance² to the centroid.
    pub fn inertia(&self) -> f64 {
        if self.n == 0 || self.visits <= 0.0 {
            return 0.0;
        }
        (self.sq - (self.sx * self.sx + self.sy * self.sy) / self.visits).max(0.0)
    }

    /// Minutes per rotation, travel included.
    pub fn workload(&self) -> f64 {
        self.fixed + self.travel
    }
}

/// A grouping: `assign[i]` is the group of item `i`; `stats` its running sums.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Solution {
    pub assign: Vec<usize>,
    pub stats: Vec<Stats>,
}

impl Solution {
    fn new(items: &[Item], k: usize, assign: Vec<usize>) -> Solution {
        let mut sol = Solution { assign, stats: vec![Stats::default(); k] };
        sol.recompute(items);
        sol
    }

    /// Rebuilds the running sums from scratch (removes floating-point drift).
    fn recompute(&mut self, items: &[Item]) {
        for s in &mut self.stats {
            *s = Stats::default();
        }
        for (it, &g) in items.iter().zip(&self.assign) {
            if let Some(s) = self.stats.get_mut(g) {
                s.add(it);
            }
        }
    }

    fn relocate(&mut self, items: &[Item], i: usize, to: usize) {
        let from = self.assign[i];
        self.stats[from].remove(&items[i]);
        self.stats[to].add(&items[i]);
        self.assign[i] = to;
    }

    /// Renames group `t` to `perm[t]`.
    pub fn relabel(&mut self, perm: &[usize]) {
        let mut stats = vec![Stats::default(); self.stats.len()];
        for (t, s) in self.stats.iter().enumerate() {
            if let Some(slot) = perm.get(t).and_then(|&to| stats.get_mut(to)) {
                *slot = *s;
            }
        }
        self.stats = stats;
        for g in &mut self.assign {
            *g = perm.get(*g).copied().unwrap_or(*g);
        }
    }

    pub fn members(&self, t: usize) -> impl Iterator<Item = usize> + '_ {
        self.assign.iter().enumerate().filter(move |(_, g)| **g == t).map(|(i, _)| i)
    }
}

/// max/min of positive quantities: 1 when all are zero, infinite when only some are.
pub(super) fn ratio(values: impl Iterator<Item = f64>) -> f64 {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi.is_nan() || hi <= 0.0 {
        1.0
    } else if lo > 0.0 {
        hi / lo
    } else {
        f64::INFINITY
    }
}

/// The objective, evaluated against frozen references (mean workload, mean potential).
#[derive(Debug, Clone, Copy)]
struct Eval {
    workload_ref: f64,
    potential_ref: f64,
    inertia_all: f64,
    per_customer: f64,
    w: Weights,
}

impl Eval {
    fn group(&self, s: &Stats) -> f64 {
        let mut f = 0.0;
        if self.w.workload > 0.0 && self.workload_ref > 0.0 {
            let d = s.workload() / self.workload_ref - 1.0;
            f += self.w.workload * d * d;
        }
        if self.w.potential > 0.0 && self.potential_ref > 0.0 {
            let d = s.potential / self.potential_ref - 1.0;
            f += self.w.potential * d * d;
        }
        if self.w.compactness > 0.0 && self.inertia_all > 0.0 {
            f += self.w.compactness * s.inertia() / self.inertia_all;
        }
        f
    }

    fn continuity(&self, it: &Item, group: usize) -> f64 {
        match it.orig {
            Some(o) if o != group => self.w.continuity * self.per_customer,
            _ => 0.0,
        }
    }
}

/// Balance limits (max/min) the polish phase must keep.
#[derive(Debug, Clone, Copy)]
struct Limits {
    workload: f64,
    potential: f64,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// The full objective, balance weights × pressure.
    Balance { pressure: f64 },
    /// Compactness and continuity only, within the limits.
    Polish(Limits),
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Relocate(usize),
    Swap(usize),
}

/// A problem with its neighbour graph, ready to solve.
#[derive(Debug)]
pub(super) struct Engine<'a> {
    p: Problem<'a>,
    /// `p.items` with their travel estimate.
    items: Vec<Item>,
    /// `neighbours[i*stride .. i*stride + stride]`: the nearest other customers of `i`.
    neighbours: Vec<usize>,
    stride: usize,
    inertia_all: f64,
    potential_mean: f64,
}

impl<'a> Engine<'a> {
    /// Builds the neighbour graph (each customer's 8 nearest others, through an R-tree) and the
    /// travel estimate of every customer.
    ///
    /// Travel: every visit costs one leg of a day's route through the customers around it. An area
    /// is worked one day a week, so each day sees 1/`weeks` of the rotation's visits; with the
    /// visits of the customer's 8 nearest neighbours spread over the disc that reaches the 8th
    /// (visit density ρ = visits / (π·r²)), a day's stops have density ρ/weeks, and a route through
    /// random stops of density δ has legs of about 0.7124/√δ (Beardwood–Halton–Hammersley). So
    /// leg = 0.7124·r·√(π·weeks / neighbours' visits), through the travel model's detour factor and
    /// speed. Downtown customers get short legs, remote ones long legs, and the estimate does not
    /// depend on the grouping, which keeps workloads additive (and groups far from their
    /// neighbours are still discouraged, by the compactness term).
    ///
    /// `p.items` must be non-empty with finite values and `1 <= p.k <= p.items.len()`.
    pub(super) fn new(p: Problem<'a>) -> Engine<'a> {
        let n = p.items.len();
        let stride = NEIGHBOURS.min(n.saturating_sub(1));
        let tree = RTree::bulk_load(
            p.items.iter().enumerate().map(|(i, it)| GeomWithData::new(it.xy, i)).collect::<Vec<_>>(),
        );
        let mut items = p.items.to_vec();
        let mut neighbours = Vec::with_capacity(n * stride);
        let mut found: Vec<(f64, usize)> = Vec::with_capacity(stride + 1);
        for (i, it) in items.iter_mut().enumerate() {
            found.clear();
            found.extend(
                tree.nearest_neighbor_iter(&it.xy)
                    .filter(|g| g.data != i)
                    .take(stride)
                    .map(|g| (dist2(it.xy, *g.geom()), g.data)),
            );
            // Deterministic order among equidistant neighbours.
            found.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let reach_km = found.last().map_or(0.0, |(d2, _)| d2.sqrt());
            let around: f64 = found.iter().map(|(_, j)| p.items[*j].visits).sum();
            let leg_km = if around > 0.0 {
                BHH * reach_km * (std::f64::consts::PI * p.weeks.max(0.0) / around).sqrt()
            } else {
                0.0
            };
            it.travel = it.visits * leg_km * p.minutes_per_km;
            neighbours.extend(found.iter().map(|(_, j)| *j));
            // Pad (only if the tree returned fewer than asked; never in practice).
            while neighbours.len() < (i + 1) * stride {
                neighbours.push(i);
            }
        }
        let all = items.iter().fold(Stats::default(), |s, it| s.with(it));
        let potential_mean = all.potential / p.k.max(1) as f64;
        Engine { p, items, neighbours, stride, inertia_all: all.inertia(), potential_mean }
    }

    fn neighbours(&self, i: usize) -> &[usize] {
        self.neighbours.get(i * self.stride..(i + 1) * self.stride).unwrap_or(&[])
    }

    fn eval(&self, sol: &Solution, pressure: f64) -> Eval {
        let k = self.p.k.max(1) as f64;
        let total: f64 = sol.stats.iter().map(|s| s.workload()).sum();
        let w = self.p.weights;
        Eval {
            workload_ref: total / k,
            potential_ref: self.potential_mean,
            inertia_all: self.inertia_all,
            per_customer: 1.0 / self.items.len().max(1) as f64,
            w: Weights { workload: w.workload * pressure, potential: w.potential * pressure, ..w },
        }
    }

    /// The objective at the configured weights with balance pressure `pressure` (0: compactness
    /// and continuity only).
    pub(super) fn objective(&self, sol: &Solution, pressure: f64) -> f64 {
        let e = self.eval(sol, pressure);
        sol.stats.iter().map(|s| e.group(s)).sum::<f64>()
            + self.items.iter().zip(&sol.assign).map(|(it, &g)| e.continuity(it, g)).sum::<f64>()
    }

    /// (workload max/min, potential max/min).
    pub(super) fn balances(&self, sol: &Solution) -> (f64, f64) {
        (ratio(sol.stats.iter().map(|s| s.workload())), ratio(sol.stats.iter().map(|s| s.potential)))
    }

    pub(super) fn checks_potential(&self) -> bool {
        self.p.weights.potential > 0.0 && self.potential_mean > 0.0
    }

    pub(super) fn within_tolerance(&self, sol: &Solution) -> bool {
        let limit = 1.0 + self.p.tolerance + 1e-9;
        let (w, p) = self.balances(sol);
        w <= limit && (!self.checks_potential() || p <= limit)
    }

    /// Share of customers whose own group's centroid is the nearest centroid.
    pub(super) fn nearest_centroid_share(&self, sol: &Solution) -> f64 {
        let cents: Vec<[f64; 2]> = sol.stats.iter().map(Stats::centroid).collect();
        let good = self
            .p
            .items
            .iter()
            .zip(&sol.assign)
            .filter(|(it, g)| {
                let own = dist2(it.xy, cents[**g]);
                cents.iter().all(|c| dist2(it.xy, *c) >= own)
            })
            .count();
        good as f64 / self.items.len().max(1) as f64
    }

    // --- starting points --------------------------------------------------------------------------

    /// k-means++ seeding (weighted by workload), then a capacitated Lloyd iteration: customers are
    /// assigned in order of regret (how much farther their second-best centre is) to the nearest
    /// centre with room left (capacity: the mean workload × (1 + tolerance/2)), and centres
    /// move to their members' visit-weighted centroids, until the assignment is stable.
    pub(super) fn cold_start(&self, rng: &mut Rng) -> Solution {
        let items = &self.items;
        let (n, k) = (items.len(), self.p.k);
        let mut centres = self.seed_centres(rng);
        let cap = self.items.iter().map(|it| it.fixed + it.travel).sum::<f64>() / k as f64
            * (1.0 + self.p.tolerance.min(1.0) / 2.0);
        let mut assign = vec![usize::MAX; n];
        let mut d2 = vec![0.0; n * k];
        let mut order: Vec<(f64, usize)> = Vec::with_capacity(n);
        let mut by_distance: Vec<usize> = Vec::with_capacity(k);
        let mut next = vec![0usize; n];
        for _ in 0..LLOYD_ITERATIONS {
            order.clear();
            for (i, it) in items.iter().enumerate() {
                let row = &mut d2[i * k..(i + 1) * k];
                for (slot, c) in row.iter_mut().zip(&centres) {
                    *slot = dist2(it.xy, *c);
                }
                let (mut b1, mut b2) = (f64::INFINITY, f64::INFINITY);
                for &d in row.iter() {
                    if d < b1 {
                        b2 = b1;
                        b1 = d;
                    } else if d < b2 {
                        b2 = d;
                    }
                }
                let regret = if b2.is_finite() { b2.sqrt() - b1.sqrt() } else { 0.0 };
                order.push((regret, i));
            }
            order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut load = vec![0.0; k];
            for &(_, i) in &order {
                let row = &d2[i * k..(i + 1) * k];
                by_distance.clear();
                by_distance.extend(0..k);
                by_distance.sort_by(|&a, &b| row[a].total_cmp(&row[b]).then(a.cmp(&b)));
                let u = items[i].fixed + items[i].travel;
                let g = by_distance.iter().copied().find(|&c| load[c] + u <= cap).unwrap_or_else(|| {
                    (0..k).min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b))).unwrap_or(0)
                });
                load[g] += u;
                next[i] = g;
            }
            let stable = next == assign;
            assign.clone_from(&next);
            let sol = Solution::new(items, k, assign.clone());
            for (c, s) in centres.iter_mut().zip(&sol.stats) {
                if s.n > 0 {
                    *c = s.centroid();
                }
            }
            if stable {
                break;
            }
        }
        let mut sol = Solution::new(items, k, assign);
        self.fill_empty_groups(&mut sol, &centres);
        sol
    }

    /// k-means++: the first centre drawn by workload, each next one by workload × squared distance
    /// to the nearest centre so far. When every customer coincides with a centre, an unused customer
    /// is drawn uniformly, so duplicates never stall it.
    fn seed_centres(&self, rng: &mut Rng) -> Vec<[f64; 2]> {
        let items = &self.items;
        let n = items.len();
        let mut chosen = vec![false; n];
        let mut centres = Vec::with_capacity(self.p.k);
        let mut d2 = vec![f64::INFINITY; n];
        let weights: Vec<f64> = items.iter().map(|it| (it.fixed + it.travel).max(1e-9)).collect();
        for round in 0..self.p.k {
            let w: Vec<f64> = if round == 0 {
                weights.clone()
            } else {
                weights.iter().zip(&d2).map(|(w, d)| w * d).collect()
            };
            let total: f64 = w.iter().sum();
            let pick = if total > 0.0 && total.is_finite() {
                let r = rng.f64() * total;
                let mut acc = 0.0;
                let mut pick = None;
                for (i, wi) in w.iter().enumerate() {
                    if *wi > 0.0 {
                        acc += wi;
                        pick = Some(i);
                        if acc > r {
                            break;
                        }
                    }
                }
                pick
            } else {
                None
            };
            let pick = match pick {
                Some(i) if !chosen[i] => i,
                _ => {
                    let free: Vec<usize> = (0..n).filter(|&i| !chosen[i]).collect();
                    free.get(rng.below_mod(free.len())).copied().unwrap_or(0)
                }
            };
            chosen[pick] = true;
            let c = items[pick].xy;
            centres.push(c);
            for (d, it) in d2.iter_mut().zip(items) {
                *d = d.min(dist2(it.xy, c));
            }
        }
        centres
    }

    /// Today's grouping: customers stay with their owner; unowned ones join the nearest group
    /// (by centroid, or by the rep's home for a rep who has no customer today). `None` when fewer
    /// than half of the customers have an owner among the groups.
    pub(super) fn warm_start(&self, homes: &[[f64; 2]]) -> Option<Solution> {
        let items = &self.items;
        let k = self.p.k;
        let owned = items.iter().filter(|it| it.orig.is_some_and(|o| o < k)).count();
        if owned * 2 < items.len() {
            return None;
        }
        let assign: Vec<usize> =
            items.iter().map(|it| it.orig.filter(|&o| o < k).unwrap_or(usize::MAX)).collect();
        let sol = Solution::new(items, k, assign.clone());
        let centres: Vec<[f64; 2]> = sol
            .stats
            .iter()
            .enumerate()
            .map(|(t, s)| if s.n > 0 { s.centroid() } else { homes.get(t).copied().unwrap_or([0.0, 0.0]) })
            .collect();
        let assign = assign
            .iter()
            .zip(items)
            .map(|(&g, it)| {
                if g != usize::MAX {
                    return g;
                }
                (0..k)
                    .min_by(|&a, &b| {
                        dist2(it.xy, centres[a]).total_cmp(&dist2(it.xy, centres[b])).then(a.cmp(&b))
                    })
                    .unwrap_or(0)
            })
            .collect();
        let mut sol = Solution::new(items, k, assign);
        self.fill_empty_groups(&mut sol, &centres);
        Some(sol)
    }

    /// Gives every empty group the customer nearest its centre from the group with the most
    /// customers (which has at least two while some group is empty, since k <= n).
    fn fill_empty_groups(&self, sol: &mut Solution, centres: &[[f64; 2]]) {
        let items = &self.items;
        for _ in 0..self.p.k {
            let Some(empty) = sol.stats.iter().position(|s| s.n == 0) else { return };
            let Some(donor) =
                (0..self.p.k).max_by(|&a, &b| sol.stats[a].n.cmp(&sol.stats[b].n).then(b.cmp(&a)))
            else {
                return;
            };
            if sol.stats[donor].n < 2 {
                return;
            }
            let target = centres.get(empty).copied().unwrap_or([0.0, 0.0]);
            let pick = sol.members(donor).min_by(|&a, &b| {
                dist2(items[a].xy, target).total_cmp(&dist2(items[b].xy, target)).then(a.cmp(&b))
            });
            if let Some(i) = pick {
                sol.relocate(items, i, empty);
            }
        }
    }

    // --- assignment to reps --------------------------------------------------------------------------

    /// The optimal one-to-one assignment of groups to reps (Hungarian method) for the cost
    /// "distance from the rep's home to the group's centroid (km) + `move_penalty_km` × customers the
    /// rep does not own today"; `perm[group] = rep`.
    pub(super) fn rep_permutation(
        &self,
        sol: &Solution,
        homes: &[[f64; 2]],
        move_penalty_km: f64,
    ) -> Vec<usize> {
        let k = self.p.k;
        let mut kept = vec![vec![0usize; k]; k];
        let mut owned = vec![0usize; k];
        for (it, &g) in self.items.iter().zip(&sol.assign) {
            if let Some(o) = it.orig.filter(|&o| o < k) {
                kept[g][o] += 1;
                owned[g] += 1;
            }
        }
        let cost: Vec<Vec<f64>> = (0..k)
            .map(|t| {
                let c = sol.stats[t].centroid();
                (0..k)
                    .map(|r| {
                        let home = homes.get(r).copied().unwrap_or(c);
                        dist2(c, home).sqrt() + move_penalty_km * (owned[t] - kept[t][r]) as f64
                    })
                    .collect()
            })
            .collect();
        hungarian(&cost)
    }

    // --- local search --------------------------------------------------------------------------------

    /// Improves `sol` by relocating boundary customers to neighbouring groups and swapping pairs of
    /// neighbouring customers across a boundary, first improvement, in sweeps over all customers.
    ///
    /// 1. **Balance** (skipped when the start is within the tolerance): the full objective. A local
    ///    optimum outside the tolerance raises the balance pressure and continues, until the
    ///    tolerance is met, `max_sweeps` is spent or balance is all that counts.
    /// 2. **Polish**: compactness and continuity only, under the constraint that the balance stays
    ///    within the tolerance (or, if that was not reached, no worse than phase 1 left it): the
    ///    result is as compact as the tolerance allows, not more balanced than asked at the
    ///    expense of longer drives. At most `max_sweeps` sweeps again.
    pub(super) fn optimise(&self, sol: &mut Solution) {
        let mut pressure = 1.0;
        // A start that is already balanced enough (often today's assignment) goes straight to the
        // polish, which moves customers only for compactness.
        let sweeps = if self.within_tolerance(sol) { 0 } else { self.p.max_sweeps };
        for _ in 0..sweeps {
            if self.sweep(sol, Mode::Balance { pressure }) == 0 {
                if self.within_tolerance(sol) || pressure >= MAX_PRESSURE {
                    break;
                }
                pressure *= PRESSURE_STEP;
            }
        }
        sol.recompute(&self.items);
        let (w, p) = self.balances(sol);
        let tol = 1.0 + self.p.tolerance;
        let limits = Limits {
            workload: w.max(tol) + 1e-12,
            potential: if self.checks_potential() { p.max(tol) + 1e-12 } else { f64::INFINITY },
        };
        for _ in 0..self.p.max_sweeps {
            if self.sweep(sol, Mode::Polish(limits)) == 0 {
                break;
            }
        }
        sol.recompute(&self.items);
    }

    /// Whether the balance limits hold with groups `a` and `b` replaced by `na` and `nb`.
    fn feasible(&self, sol: &Solution, changed: [(usize, &Stats); 2], limits: Limits) -> bool {
        let group = |t: usize| changed.iter().find(|(g, _)| *g == t).map_or(&sol.stats[t], |(_, s)| *s);
        ratio((0..self.p.k).map(|t| group(t).workload())) <= limits.workload
            && (limits.potential == f64::INFINITY
                || ratio((0..self.p.k).map(|t| group(t).potential)) <= limits.potential)
    }

    fn sweep(&self, sol: &mut Solution, mode: Mode) -> usize {
        let items = &self.items;
        let k = self.p.k;
        sol.recompute(items);
        if k < 2 {
            return 0;
        }
        let (e, limits) = match mode {
            Mode::Balance { pressure } => (self.eval(sol, pressure), None),
            Mode::Polish(limits) => (self.eval(sol, 0.0), Some(limits)),
        };
        let ok = |sol: &Solution, changed: [(usize, &Stats); 2]| match limits {
            None => true,
            Some(l) => self.feasible(sol, changed, l),
        };
        let centres: Vec<[f64; 2]> = sol.stats.iter().map(Stats::centroid).collect();
        let mut candidates: Vec<usize> = Vec::with_capacity(NEIGHBOURS + NEAREST_CENTROIDS);
        let mut nearest: Vec<(f64, usize)> = Vec::with_capacity(k);
        let mut moves = 0;
        for i in 0..items.len() {
            let it = &items[i];
            let a = sol.assign[i];
            candidates.clear();
            for &j in self.neighbours(i) {
                let b = sol.assign[j];
                if b != a && !candidates.contains(&b) {
                    candidates.push(b);
                }
            }
            nearest.clear();
            nearest.extend((0..k).filter(|&b| b != a).map(|b| (dist2(it.xy, centres[b]), b)));
            nearest.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
            for &(_, b) in nearest.iter().take(NEAREST_CENTROIDS) {
                if !candidates.contains(&b) {
                    candidates.push(b);
                }
            }

            let sa = sol.stats[a];
            let fa = e.group(&sa);
            let ca = e.continuity(it, a);
            // Relative to the objective's scale, so rounding noise (say, swapping two identical
            // customers) never counts as an improvement.
            let mut best = -(EPS + 1e-9 * fa.abs());
            let mut step = None;
            if sa.n > 1 {
                let na = sa.without(it);
                let fa_without = e.group(&na);
                for &b in &candidates {
                    let sb = sol.stats[b];
                    let nb = sb.with(it);
                    let d = fa_without + e.group(&nb) - fa - e.group(&sb) + e.continuity(it, b) - ca;
                    if d < best && ok(sol, [(a, &na), (b, &nb)]) {
                        best = d;
                        step = Some(Step::Relocate(b));
                    }
                }
            }
            for &j in self.neighbours(i) {
                let b = sol.assign[j];
                if b == a {
                    continue;
                }
                let jt = &items[j];
                let sb = sol.stats[b];
                let na = sa.without(it).with(jt);
                let nb = sb.without(jt).with(it);
                let d = e.group(&na) + e.group(&nb) - fa - e.group(&sb)
                    + e.continuity(it, b)
                    + e.continuity(jt, a)
                    - ca
                    - e.continuity(jt, b);
                if d < best && ok(sol, [(a, &na), (b, &nb)]) {
                    best = d;
                    step = Some(Step::Swap(j));
                }
            }
            match step {
                Some(Step::Relocate(b)) => {
                    sol.relocate(items, i, b);
                    moves += 1;
                }
                Some(Step::Swap(j)) => {
                    let b = sol.assign[j];
                    sol.relocate(items, i, b);
                    sol.relocate(items, j, a);
                    moves += 1;
                }
                None => {}
            }
        }
        moves
    }
}
