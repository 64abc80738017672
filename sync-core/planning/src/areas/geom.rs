//! Small, dependency-free building blocks: a local planar projection, a seeded random number
//! generator, the convex hull and the assignment problem.

use fieldsync_core::geo::LatLon;

/// Mean Earth radius (IUGG), km.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// An equirectangular projection around a reference point, in kilometres.
///
/// Over a city or a region (a few hundred km) its distance error is well under the error of the
/// straight-line travel model itself, and, being affine in (lon, lat), it maps centroids and convex
/// hulls to centroids and convex hulls, so results can be projected back exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Projection {
    lat0: f64,
    lon0: f64,
    /// km per degree of longitude at `lat0`.
    kx: f64,
    /// km per degree of latitude.
    ky: f64,
}

/// Wraps a longitude difference or value into [-180, 180).
fn wrap_lon(lon: f64) -> f64 {
    (lon + 180.0).rem_euclid(360.0) - 180.0
}

impl Projection {
    /// Centred on the mean latitude and the circular mean longitude of `points` (so a set that
    /// straddles the antimeridian is not centred on the other side of the Earth). Points must be
    /// finite; an empty set gives the projection at (0, 0).
    pub(super) fn fit(points: &[LatLon]) -> Projection {
        let n = points.len().max(1) as f64;
        let lat0 = points.iter().map(|p| p.lat).sum::<f64>() / n;
        let (s, c) = points.iter().fold((0.0, 0.0), |(s, c), p| {
            let r = p.lon.to_radians();
            (s + r.sin(), c + r.cos())
        });
        let lon0 = if s == 0.0 && c == 0.0 { 0.0 } else { s.atan2(c).to_degrees() };
        let ky = EARTH_RADIUS_KM * std::f64::consts::PI / 180.0;
        // Near the poles a degree of longitude shrinks to nothing; keep the scale invertible.
        let kx = ky * lat0.to_radians().cos().max(1e-6);
        Projection { lat0, lon0, kx, ky }
    }

    pub(super) fn to_xy(self, p: LatLon) -> [f64; 2] {
        [wrap_lon(p.lon - self.lon0) * self.kx, (p.lat - self.lat0) * self.ky]
    }

    pub(super) fn to_latlon(self, xy: [f64; 2]) -> LatLon {
        LatLon {
            lat: (self.lat0 + xy[1] / self.ky).clamp(-90.0, 90.0),
            lon: wrap_lon(self.lon0 + xy[0] / self.kx),
        }
    }
}

pub(super) fn dist2(a: [f64; 2], b: [f64; 2]) -> f64 {
    let dx = a[0] - b[0];
    let dy = a[1] - b[1];
    dx * dx + dy * dy
}

fn cross(o: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
}

/// Indices (into `points`) of the convex hull's vertices, counter-clockwise, not closed, without
/// collinear points (Andrew's monotone chain, O(n log n)). Degenerate sets give one vertex (all
/// points equal) or two (all points on a line).
pub(super) fn convex_hull(points: &[[f64; 2]]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..points.len()).collect();
    idx.sort_by(|&a, &b| {
        points[a][0].total_cmp(&points[b][0]).then(points[a][1].total_cmp(&points[b][1])).then(a.cmp(&b))
    });
    idx.dedup_by(|a, b| points[*a] == points[*b]);
    if idx.len() < 3 {
        return idx;
    }
    let chain = |order: &mut dyn Iterator<Item = usize>| {
        let mut chain: Vec<usize> = Vec::new();
        for i in order {
            while chain.len() >= 2
                && cross(points[chain[chain.len() - 2]], points[chain[chain.len() - 1]], points[i]) <= 0.0
            {
                chain.pop();
            }
            chain.push(i);
        }
        // The last point of each chain is the first of the other.
        chain.pop();
        chain
    };
    let mut hull = chain(&mut idx.iter().copied());
    hull.extend(chain(&mut idx.iter().rev().copied()));
    hull
}

/// Minimum-cost perfect assignment on a square matrix (the Hungarian method with potentials,
/// O(k³)): `result[row] = column`. Non-finite costs are treated as prohibitively large.
pub(super) fn hungarian(cost: &[Vec<f64>]) -> Vec<usize> {
    let n = cost.len();
    if n == 0 {
        return Vec::new();
    }
    let big = cost.iter().flatten().filter(|c| c.is_finite()).fold(0.0_f64, |m, c| m.max(c.abs()));
    let big = (big + 1.0) * (n as f64 + 1.0);
    let at = |i: usize, j: usize| -> f64 {
        let c = cost.get(i).and_then(|row| row.get(j)).copied().unwrap_or(big);
        if c.is_finite() { c } else { big }
    };
    // 1-based arrays as in the classic formulation; row/column 0 is the virtual start.
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; n + 1];
    let mut p = vec![0usize; n + 1]; // p[col] = row matched to col
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        let mut minv = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=n {
                if !used[j] {
                    let cur = at(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            if j1 == 0 {
                // Only reachable with NaN arithmetic, which the cost clamp rules out; bail out
                // with whatever is matched rather than loop.
                break;
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut result = vec![usize::MAX; n];
    for j in 1..=n {
        if p[j] > 0 {
            result[p[j] - 1] = j - 1;
        }
    }
    // Defensive completion: any row left unmatched takes a free column, so the result is always a
    // permutation.
    let mut free: Vec<usize> = (0..n).filter(|j| !result.contains(j)).collect();
    for r in result.iter_mut() {
        if *r == usize::MAX {
            *r = free.pop().unwrap_or(0);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn brute_force(cost: &[Vec<f64>]) -> f64 {
        fn go(cost: &[Vec<f64>], row: usize, used: &mut Vec<bool>) -> f64 {
            if row == cost.len() {
                return 0.0;
            }
            let mut best = f64::INFINITY;
            for j in 0..cost.len() {
                if !used[j] {
                    used[j] = true;
                    best = best.min(cost[row][j] + go(cost, row + 1, used));
                    used[j] = false;
                }
            }
            best
        }
        go(cost, 0, &mut vec![false; cost.len()])
    }

    #[test]
    fn hungarian_matches_brute_force_on_random_matrices() {
        let mut rng = Rng::new(7);
        for n in 1..=7 {
            for _ in 0..20 {
                let cost: Vec<Vec<f64>> =
                    (0..n).map(|_| (0..n).map(|_| (rng.f64() * 100.0).floor()).collect()).collect();
                let a = hungarian(&cost);
                let mut seen = a.clone();
                seen.sort_unstable();
                assert_eq!(seen, (0..n).collect::<Vec<_>>());
                let total: f64 = a.iter().enumerate().map(|(i, &j)| cost[i][j]).sum();
                assert!((total - brute_force(&cost)).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn hungarian_survives_non_finite_costs() {
        let cost = vec![vec![f64::NAN, 1.0], vec![f64::INFINITY, f64::NEG_INFINITY]];
        let mut a = hungarian(&cost);
        a.sort_unstable();
        assert_eq!(a, vec![0, 1]);
    }

    #[test]
    fn hull_of_a_square_with_inner_and_edge_points() {
        let pts = [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]];
        assert_eq!(convex_hull(&pts), vec![0, 1, 2, 3]);
        assert_eq!(convex_hull(&[[1.0, 1.0], [1.0, 1.0]]).len(), 1);
        assert_eq!(convex_hull(&[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]), vec![0, 2]);
        assert!(convex_hull(&[]).is_empty());
    }

    #[test]
    fn projection_round_trips_and_handles_the_antimeridian() {
        let pts = [LatLon { lat: -17.0, lon: 179.9 }, LatLon { lat: -17.2, lon: -179.9 }];
        let proj = Projection::fit(&pts);
        let a = proj.to_xy(pts[0]);
        let b = proj.to_xy(pts[1]);
        // 0.2 degrees of longitude apart, not 359.8.
        assert!(dist2(a, b).sqrt() < 40.0);
        for p in pts {
            let back = proj.to_latlon(proj.to_xy(p));
            assert!((back.lat - p.lat).abs() < 1e-9 && (back.lon - p.lon).abs() < 1e-9);
        }
    }
}
