//! The team map as GeoJSON (RFC 7946: `[lon, lat]`, WGS-84), from the report index: customers in
//! a bounding box through an R-tree ([`CustomerMap`], built from the rows — GCJ-02 customers are
//! converted when the row is written), filtered by tier, status, rep and territory, and clustered
//! on a grid when the view holds more points than asked for; territories as polygons; a rep's day
//! as its check-ins (points) and planned route (a line).
//!
//! ```
//! use fieldsync_core::docs::{Customer, Document, GeoPoint};
//! use fieldsync_core::index::IndexRow;
//! use fieldsync_planning::map::{BBox, CustomerFilter, CustomerMap};
//! let shop = Customer::new("c-1", "Shop", GeoPoint::wgs84(45.76, 4.83), "maria");
//! let rows = vec![IndexRow::of(&Document::Customer(shop), 0).expect("a row")];
//! let map = CustomerMap::build(&rows);
//! let lyon = BBox::parse("4.7,45.7,4.9,45.8").expect("a bbox");
//! let features = map.features(&lyon, &CustomerFilter::default(), 500, |_| None);
//! assert_eq!(features["features"][0]["geometry"]["coordinates"][0], 4.83);
//! ```

use std::collections::BTreeMap;

use fieldsync_core::docs::{Territory, Tier};
use fieldsync_core::index::{CustomerRow, IndexRow, VisitRow};
use rstar::{AABB, RTree, primitives::GeomWithData};
use serde_json::{Value, json};

/// A view: west, south, east, north in degrees (GeoJSON's order). No wrap across the antimeridian.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

impl BBox {
    /// `min_lon,min_lat,max_lon,max_lat`, each finite and in range, min below max.
    pub fn parse(s: &str) -> Result<BBox, String> {
        let parts: Vec<f64> = s
            .split(',')
            .map(|p| p.trim().parse::<f64>().map_err(|_| format!("bbox: {p:?} is not a number")))
            .collect::<Result<_, _>>()?;
        let [min_lon, min_lat, max_lon, max_lat] = parts[..] else {
            return Err("bbox is min_lon,min_lat,max_lon,max_lat".into());
        };
        let lon_ok = |x: f64| x.is_finite() && (-180.0..=180.0).contains(&x);
        let lat_ok = |x: f64| x.is_finite() && (-90.0..=90.0).contains(&x);
        if !(lon_ok(min_lon) && lon_ok(max_lon) && lat_ok(min_lat) && lat_ok(max_lat)) {
            return Err("bbox: longitudes within -180..=180, latitudes within -90..=90".into());
        }
        if min_lon >= max_lon || min_lat >= max_lat {
            return Err(
                "bbox: the minimum must be below the maximum (no wrap across the antimeridian)".into()
            );
        }
        Ok(BBox { min_lon, min_lat, max_lon, max_lat })
    }
}

/// Which customers a view shows; `None` shows all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerFilter {
    /// Effective tiers (with `tier_of`), any of.
    pub tiers: Option<Vec<Tier>>,
    /// Follow-up statuses, any of.
    pub statuses: Option<Vec<String>>,
    pub rep: Option<String>,
    pub territory: Option<String>,
}

/// The team's customers in an R-tree, built once per version of the index.
#[derive(Debug)]
pub struct CustomerMap {
    tree: RTree<GeomWithData<[f64; 2], usize>>,
    customers: Vec<CustomerRow>,
}

impl CustomerMap {
    /// Every customer of `rows` with a usable location.
    pub fn build(rows: &[IndexRow]) -> CustomerMap {
        let customers: Vec<CustomerRow> = rows
            .iter()
            .filter_map(|r| match r {
                IndexRow::Customer(c) if c.lat.is_some() && c.lon.is_some() => Some(c.clone()),
                _ => None,
            })
            .collect();
        let points = customers
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some(GeomWithData::new([c.lon?, c.lat?], i)))
            .collect();
        CustomerMap { tree: RTree::bulk_load(points), customers }
    }

    /// Whether `rep` owns any customer on the map.
    pub fn has_owner(&self, rep: &str) -> bool {
        self.customers.iter().any(|c| c.owner_rep.as_deref() == Some(rep))
    }

    pub fn len(&self) -> usize {
        self.customers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }

    /// The customers in `bbox` that pass `filter`, in id order (`tier_of` gives a row's effective
    /// tier, with the plan's thresholds).
    pub fn query(
        &self,
        bbox: &BBox,
        filter: &CustomerFilter,
        tier_of: impl Fn(&CustomerRow) -> Option<Tier>,
    ) -> Vec<&CustomerRow> {
        let env = AABB::from_corners([bbox.min_lon, bbox.min_lat], [bbox.max_lon, bbox.max_lat]);
        let mut found: Vec<&CustomerRow> = self
            .tree
            .locate_in_envelope(&env)
            .map(|p| &self.customers[p.data])
            .filter(|c| {
                filter.rep.as_deref().is_none_or(|r| c.owner_rep.as_deref() == Some(r))
                    && filter.territory.as_deref().is_none_or(|t| c.territory.as_deref() == Some(t))
                    && filter.statuses.as_ref().is_none_or(|s| s.contains(&c.follow_up_status))
                    && filter.tiers.as_ref().is_none_or(|ts| tier_of(c).is_some_and(|t| ts.contains(&t)))
            })
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    }

    /// The view as a FeatureCollection: one Point per customer, or, past `max_points`, one Point
    /// per occupied cell of a grid over the view (`cluster: true`, `count`, counts per tier).
    pub fn features(
        &self,
        bbox: &BBox,
        filter: &CustomerFilter,
        max_points: usize,
        tier_of: impl Fn(&CustomerRow) -> Option<Tier>,
    ) -> Value {
        let found = self.query(bbox, filter, &tier_of);
        let total = found.len();
        let features: Vec<Value> = if total <= max_points {
            found.iter().map(|c| customer_feature(c, tier_of(c))).collect()
        } else {
            clusters(&found, bbox, max_points, &tier_of)
        };
        json!({ "type": "FeatureCollection", "features": features, "total": total, "clustered": total > max_points })
    }
}

fn customer_feature(c: &CustomerRow, tier: Option<Tier>) -> Value {
    json!({
        "type": "Feature",
        "id": c.id,
        "geometry": { "type": "Point", "coordinates": [c.lon, c.lat] },
        "properties": {
            "id": c.id, "name": c.name, "tier": tier, "follow_up_status": c.follow_up_status,
            "opportunity_stage": c.opportunity_stage, "owner_rep": c.owner_rep, "territory": c.territory,
        },
    })
}

/// A square-ish grid of about `max_points` cells over the view; each occupied cell one feature at
/// the mean of its points.
fn clusters(
    found: &[&CustomerRow],
    bbox: &BBox,
    max_points: usize,
    tier_of: &impl Fn(&CustomerRow) -> Option<Tier>,
) -> Vec<Value> {
    let side = (max_points.max(1) as f64).sqrt().floor().max(1.0);
    let (w, h) = ((bbox.max_lon - bbox.min_lon) / side, (bbox.max_lat - bbox.min_lat) / side);
    #[derive(Default)]
    struct Cell {
        n: usize,
        lon: f64,
        lat: f64,
        tiers: [usize; 3],
    }
    let mut cells: BTreeMap<(i64, i64), Cell> = BTreeMap::new();
    for c in found {
        let (Some(lon), Some(lat)) = (c.lon, c.lat) else { continue };
        let cell = (((lon - bbox.min_lon) / w).floor() as i64, ((lat - bbox.min_lat) / h).floor() as i64);
        let e = cells.entry(cell).or_default();
        e.n += 1;
        e.lon += lon;
        e.lat += lat;
        if let Some(t) = tier_of(c) {
            e.tiers[match t {
                Tier::A => 0,
                Tier::B => 1,
                Tier::C => 2,
            }] += 1;
        }
    }
    cells
        .into_iter()
        .map(|((x, y), Cell { n, lon, lat, tiers })| {
            json!({
                "type": "Feature",
                "id": format!("cluster-{x}-{y}"),
                "geometry": { "type": "Point", "coordinates": [lon / n as f64, lat / n as f64] },
                "properties": { "cluster": true, "count": n, "tiers": { "A": tiers[0], "B": tiers[1], "C": tiers[2] } },
            })
        })
        .collect()
}

/// Territories as Polygon features (each ring closed, `[lon, lat]`), with their sub-areas' ids.
pub fn territory_features(territories: &[Territory]) -> Value {
    let features: Vec<Value> = territories
        .iter()
        .map(|t| {
            let rings: Vec<Vec<[f64; 2]>> = t
                .polygons
                .iter()
                .filter(|r| r.len() >= 3)
                .map(|r| {
                    let mut ring: Vec<[f64; 2]> = r.iter().map(|p| [p.lon, p.lat]).collect();
                    if ring.first() != ring.last()
                        && let Some(first) = ring.first().copied()
                    {
                        ring.push(first);
                    }
                    ring
                })
                .collect();
            json!({
                "type": "Feature",
                "id": t.id,
                "geometry": { "type": "MultiPolygon", "coordinates": rings.iter().map(|r| vec![r]).collect::<Vec<_>>() },
                "properties": { "id": t.id, "name": t.name, "reps": t.reps, "sub_areas": t.sub_areas.len() },
            })
        })
        .collect();
    json!({ "type": "FeatureCollection", "features": features })
}

/// A rep's day on the map: each check-in as a Point, and the planned visits in time order as a
/// LineString through their customers.
pub fn day_features(rows: &[IndexRow], rep: &str, from_ms: i64, to_ms: i64) -> Value {
    let at: BTreeMap<&str, [f64; 2]> = rows
        .iter()
        .filter_map(|r| match r {
            IndexRow::Customer(c) => Some((c.id.as_str(), [c.lon?, c.lat?])),
            IndexRow::Visit(_) => None,
        })
        .collect();
    let mut visits: Vec<&VisitRow> = rows
        .iter()
        .filter_map(|r| match r {
            IndexRow::Visit(v) if v.rep == rep && (from_ms..to_ms).contains(&v.planned_start_ms) => Some(v),
            _ => None,
        })
        .collect();
    visits.sort_by(|a, b| a.planned_start_ms.cmp(&b.planned_start_ms).then(a.id.cmp(&b.id)));
    let route: Vec<[f64; 2]> =
        visits.iter().filter_map(|v| at.get(v.customer_id.as_str()).copied()).collect();
    let mut features = Vec::new();
    if route.len() >= 2 {
        features.push(json!({
            "type": "Feature",
            "id": format!("route-{rep}"),
            "geometry": { "type": "LineString", "coordinates": route },
            "properties": { "kind": "planned_route", "rep": rep, "visits": visits.iter().map(|v| &v.id).collect::<Vec<_>>() },
        }));
    }
    for v in rows.iter().filter_map(|r| if let IndexRow::Visit(v) = r { Some(v) } else { None }) {
        if v.rep != rep {
            continue;
        }
        for c in v.checkins.iter().filter(|c| (from_ms..to_ms).contains(&c.device_time_ms)) {
            let verdict = v.verdicts.iter().find(|j| j.checkin_id == c.id);
            features.push(json!({
                "type": "Feature",
                "id": c.id,
                "geometry": { "type": "Point", "coordinates": [c.lon, c.lat] },
                "properties": {
                    "kind": "checkin", "visit_id": v.id, "customer_id": v.customer_id, "device_time_ms": c.device_time_ms,
                    "status": verdict.map(|j| j.status), "codes": verdict.map(|j| j.codes.clone()),
                },
            }));
        }
    }
    json!({ "type": "FeatureCollection", "features": features })
}
