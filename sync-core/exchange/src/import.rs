//! Deciding an import, as data: which rows create a customer, which update one (and which of its
//! fields), which change nothing and which are refused with their line, column and reason. The
//! caller performs the writes ([`ImportPlan::writes`]) — or, on a dry run or when a row is
//! refused, performs none.
//!
//! A row is matched to a customer by its external id, which is the customer's document id: the
//! same file imported twice changes nothing, an export imported again changes nothing, and a row
//! without an id gets one derived from its name and position (stable across imports of the same
//! row). An update is an edit of the stored customer's current version that sets only the columns
//! the file has and the row fills, so what reps changed meanwhile (notes, stage, follow-up) stays.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;

use fieldsync_core::docs::{
    Customer, DocKind, Document, GeoPoint, OpeningHours, Territory, Tier, TierThresholds,
};
use fieldsync_core::engine::ServerWrite;
use fieldsync_core::geo::{Datum, LatLon, to_wgs84};
use fieldsync_planning::segmentation::{score_of, tier_for_score};
use serde::{Deserialize, Serialize};

use crate::columns::{Field, Mapping};
use crate::table::{Cell, Row, Table};

/// What the team holds that an import is decided against.
#[derive(Debug, Clone, Default)]
pub struct TeamView {
    pub customers: HashMap<String, Customer>,
    /// Ids of the team's other documents (territories, visits, plans): never a customer's.
    pub other_ids: HashSet<String>,
    pub territories: Vec<Territory>,
    /// The current plan's thresholds: tiers are computed with them unless a row gives one.
    pub thresholds: Option<TierThresholds>,
}

impl TeamView {
    /// The view of a team's documents (the plan with the latest quarter gives the thresholds).
    pub fn of(docs: impl IntoIterator<Item = Document>) -> TeamView {
        let mut view = TeamView::default();
        let mut quarter = String::new();
        for d in docs {
            match d {
                Document::Customer(c) => {
                    view.customers.insert(c.id.clone(), c);
                }
                Document::Territory(t) => {
                    view.other_ids.insert(t.id.clone());
                    view.territories.push(t);
                }
                Document::Plan(p) => {
                    view.other_ids.insert(p.id.clone());
                    if p.quarter >= quarter {
                        quarter = p.quarter.clone();
                        view.thresholds = Some(p.thresholds.clone());
                    }
                }
                other => {
                    view.other_ids.insert(other.id().to_string());
                }
            }
        }
        view
    }

    /// The reps a row may name as owner: those of a territory or owning a customer.
    fn reps(&self) -> BTreeSet<String> {
        let mut reps: BTreeSet<String> =
            self.territories.iter().flat_map(|t| t.reps.iter().cloned()).collect();
        reps.extend(self.customers.values().filter_map(|c| c.owner_rep.clone()));
        reps
    }
}

/// Why one row is not imported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowError {
    pub line: usize,
    /// The column's header, as the file spells it (absent: the row as a whole).
    pub column: Option<String>,
    pub reason: String,
}

/// The values a row gives: `None` leaves a field as it is (a new customer: its default).
#[derive(Debug, Clone, PartialEq)]
struct Values {
    name: String,
    location: GeoPoint,
    address: Option<String>,
    phone: Option<String>,
    potential: Option<f64>,
    probability: Option<f64>,
    owner: Option<String>,
    territory: Option<String>,
    /// The territory whose polygon holds the point: a new customer's, when the row names none (a
    /// row naming no territory never changes a stored customer's, placed or deliberately not).
    placed: Option<String>,
    opening_hours: Option<Vec<OpeningHours>>,
    timezone: Option<String>,
    tier: Option<Tier>,
}

/// What the server does with one imported customer's row.
#[derive(Debug, Clone)]
pub struct Imported {
    pub id: String,
    pub line: usize,
    values: Values,
}

/// An update of a stored customer, and the fields it changes.
#[derive(Debug, Clone)]
pub struct Update {
    pub row: Imported,
    pub changed: Vec<&'static str>,
}

/// The decision.
#[derive(Debug, Clone, Default)]
pub struct ImportPlan {
    pub creates: Vec<Imported>,
    pub updates: Vec<Update>,
    pub unchanged: Vec<String>,
    pub refused: Vec<RowError>,
    pub ignored_columns: Vec<String>,
    /// Who the writes are by (tier overrides name them) and when.
    by: String,
    now_ms: i64,
    thresholds: Option<TierThresholds>,
}

/// What an import did or would do, for the terminal and as JSON (read back by `fieldsync import
/// --server`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub refused: Vec<RowError>,
    pub ignored_columns: Vec<String>,
    /// Whether the import was carried out: false on a dry run or when a row is refused (nothing
    /// is written then); true also when every row was unchanged.
    pub written: bool,
}

impl ImportPlan {
    pub fn report(&self, written: bool) -> Report {
        Report {
            rows: self.creates.len() + self.updates.len() + self.unchanged.len() + self.refused.len(),
            created: self.creates.len(),
            updated: self.updates.len(),
            unchanged: self.unchanged.len(),
            refused: self.refused.clone(),
            ignored_columns: self.ignored_columns.clone(),
            written,
        }
    }

    /// The server writes that carry the import out: a new customer whole, an update as an edit
    /// of the stored version setting only what the row gives.
    pub fn writes(&self) -> Vec<ServerWrite> {
        let mut out = Vec::with_capacity(self.creates.len() + self.updates.len());
        for c in &self.creates {
            out.push(ServerWrite::Put(Document::Customer(self.created(c))));
        }
        for u in &self.updates {
            let (values, by, now, thresholds) =
                (u.row.values.clone(), self.by.clone(), self.now_ms, self.thresholds.clone());
            out.push(ServerWrite::edit(&u.row.id, DocKind::Customer, move |d| {
                if let Document::Customer(c) = d {
                    apply(&values, c, false, &by, now, thresholds.as_ref());
                }
            }));
        }
        out
    }

    fn created(&self, row: &Imported) -> Customer {
        let mut c = Customer::new(&row.id, &row.values.name, row.values.location.clone(), &self.by);
        apply(&row.values, &mut c, true, &self.by, self.now_ms, self.thresholds.as_ref());
        c
    }
}

/// Sets what `v` gives on `c`; the tier is the row's (an override by `by`) or, unless a manager
/// set one, the plan's for the customer's score.
fn apply(
    v: &Values,
    c: &mut Customer,
    creating: bool,
    by: &str,
    now_ms: i64,
    thresholds: Option<&TierThresholds>,
) {
    c.name = v.name.clone();
    c.location = v.location.clone();
    if let Some(a) = &v.address {
        c.address = a.clone();
    }
    if let Some(p) = &v.phone {
        c.phone = p.clone();
    }
    if let Some(p) = v.potential {
        c.potential_value = p;
    }
    if let Some(p) = v.probability {
        c.close_probability = p;
    }
    if let Some(o) = &v.owner {
        c.owner_rep = Some(o.clone());
    }
    match (&v.territory, &v.placed) {
        (Some(t), _) => c.territory = Some(t.clone()),
        (None, Some(p)) if creating => c.territory = Some(p.clone()),
        _ => {}
    }
    if let Some(h) = &v.opening_hours {
        c.opening_hours = h.clone();
    }
    if let Some(tz) = &v.timezone {
        c.timezone = tz.clone();
    }
    match (v.tier, thresholds) {
        (Some(t), _) if c.tier != Some(t) || c.tier_set_by.is_none() => {
            c.tier = Some(t);
            c.tier_set_by = Some(by.to_string());
            c.tier_set_at_ms = Some(now_ms);
        }
        (None, Some(th)) if c.tier_set_by.is_none() => {
            c.tier = Some(tier_for_score(score_of(c.potential_value, c.close_probability), th));
        }
        _ => {}
    }
}

/// The field names that differ between two versions of a customer.
fn changed_fields(a: &Customer, b: &Customer) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            out.push(name);
        }
    };
    check("name", a.name != b.name);
    check("location", a.location != b.location);
    check("address", a.address != b.address);
    check("phone", a.phone != b.phone);
    check("potential", a.potential_value != b.potential_value);
    check("probability", a.close_probability != b.close_probability);
    check("owner", a.owner_rep != b.owner_rep);
    check("territory", a.territory != b.territory);
    check("opening_hours", a.opening_hours != b.opening_hours);
    check("timezone", a.timezone != b.timezone);
    check("tier", a.tier != b.tier || a.tier_set_by != b.tier_set_by);
    out
}

/// Decides the import of `table` into the team `view` holds, by `by` at `now_ms`.
pub fn plan(table: &Table, mapping: &Mapping, view: &TeamView, by: &str, now_ms: i64) -> ImportPlan {
    let mut plan = ImportPlan {
        ignored_columns: mapping.ignored.clone(),
        by: by.to_string(),
        now_ms,
        thresholds: view.thresholds.clone(),
        ..ImportPlan::default()
    };
    let reps = view.reps();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for row in &table.rows {
        let reader = RowReader { row, mapping, header: &table.header };
        let imported = match read_row(&reader, view, &reps) {
            Ok(i) => i,
            Err(e) => {
                plan.refused.push(e);
                continue;
            }
        };
        if let Some(first) = seen.insert(imported.id.clone(), row.line) {
            plan.refused.push(reader.error(
                Field::ExternalId,
                format!("{} is also the id of line {first}: one row per customer", imported.id),
            ));
            continue;
        }
        match view.customers.get(&imported.id) {
            None => {
                let created = plan.created(&imported);
                if let Err(e) = Document::Customer(created).validate() {
                    plan.refused.push(RowError { line: row.line, column: None, reason: e.to_string() });
                    continue;
                }
                plan.creates.push(imported);
            }
            Some(stored) => {
                let mut after = stored.clone();
                apply(&imported.values, &mut after, false, by, now_ms, view.thresholds.as_ref());
                if let Err(e) = Document::Customer(after.clone()).validate() {
                    plan.refused.push(RowError { line: row.line, column: None, reason: e.to_string() });
                    continue;
                }
                let changed = changed_fields(stored, &after);
                if changed.is_empty() {
                    plan.unchanged.push(imported.id);
                } else {
                    plan.updates.push(Update { row: imported, changed });
                }
            }
        }
    }
    plan
}

struct RowReader<'a> {
    row: &'a Row,
    mapping: &'a Mapping,
    header: &'a [String],
}

impl RowReader<'_> {
    fn cell(&self, field: Field) -> Option<&Cell> {
        let c = self.row.get(self.mapping.column(field)?);
        (!c.is_empty()).then_some(c)
    }

    fn text(&self, field: Field) -> Option<String> {
        self.cell(field).map(Cell::text)
    }

    fn error(&self, field: Field, reason: impl Into<String>) -> RowError {
        let column = self.mapping.column(field).and_then(|c| self.header.get(c)).cloned();
        RowError { line: self.row.line, column, reason: reason.into() }
    }

    fn number(&self, field: Field) -> Result<Option<f64>, RowError> {
        let Some(cell) = self.cell(field) else { return Ok(None) };
        let n = match cell {
            Cell::Number(n) => Some(*n),
            other => parse_number(&other.text()),
        };
        match n {
            Some(n) if n.is_finite() => Ok(Some(n)),
            _ => Err(self.error(field, format!("{:?} is not a number", cell.text()))),
        }
    }
}

/// `45.76`, `45,76`, `12 000`, `12,000.50`, `€ 1.200,00`: what people type into a sheet.
fn parse_number(text: &str) -> Option<f64> {
    let t: String = text.chars().filter(|c| !c.is_whitespace() && !"€$¥￥£".contains(*c)).collect();
    let t = match (t.rfind(','), t.rfind('.')) {
        (Some(c), Some(d)) if c < d => t.replace(',', ""),
        (Some(_), Some(_)) => t.replace('.', "").replace(',', "."),
        (Some(c), None) if t.len() - c - 1 == 3 && t.matches(',').count() >= 1 && !t.starts_with("0,") => {
            t.replace(',', "")
        }
        (Some(_), None) => t.replace(',', "."),
        _ => t,
    };
    t.parse().ok()
}

fn read_row(r: &RowReader<'_>, view: &TeamView, reps: &BTreeSet<String>) -> Result<Imported, RowError> {
    let name = r.text(Field::Name).ok_or_else(|| r.error(Field::Name, "a customer needs a name"))?;
    let lat = r.number(Field::Lat)?.ok_or_else(|| r.error(Field::Lat, "a customer needs a latitude"))?;
    let lon = r.number(Field::Lon)?.ok_or_else(|| r.error(Field::Lon, "a customer needs a longitude"))?;
    let datum = match r.text(Field::Datum) {
        None => Datum::Wgs84,
        Some(d) => {
            Datum::from_str(&d).map_err(|_| r.error(Field::Datum, format!("{d:?}: WGS-84 or GCJ-02")))?
        }
    };
    let point = LatLon::new(lat, lon).map_err(|e| r.error(Field::Lat, e.to_string()))?;
    let location = GeoPoint { lat, lon, datum: datum.as_str().to_string() };

    let probability = match r.cell(Field::Probability) {
        None => None,
        Some(cell) => {
            let text = cell.text();
            let (text, percent) = match text.strip_suffix('%') {
                Some(t) => (t.trim().to_string(), true),
                None => (text, false),
            };
            let p = match cell {
                Cell::Number(n) => Some(*n),
                _ => parse_number(&text),
            }
            .filter(|p| p.is_finite())
            .ok_or_else(|| r.error(Field::Probability, format!("{:?} is not a probability", cell.text())))?;
            let p = if percent || p > 1.0 { p / 100.0 } else { p };
            if !(0.0..=1.0).contains(&p) {
                return Err(r.error(
                    Field::Probability,
                    format!("{:?}: between 0 and 1, or 0% and 100%", cell.text()),
                ));
            }
            Some(p)
        }
    };
    let potential = r.number(Field::Potential)?;
    if potential.is_some_and(|p| p < 0.0) {
        return Err(r.error(Field::Potential, "a potential is not negative"));
    }

    let owner = match r.text(Field::Owner) {
        None => None,
        Some(o) => Some(
            reps.iter()
                .find(|rep| rep.eq_ignore_ascii_case(&o))
                .cloned()
                .ok_or_else(|| r.error(Field::Owner, format!("no rep {o:?} in this team's territories")))?,
        ),
    };
    let territory = match r.text(Field::Territory) {
        Some(t) => Some(
            view.territories
                .iter()
                .find(|x| x.id.eq_ignore_ascii_case(&t) || x.name.trim().eq_ignore_ascii_case(&t))
                .map(|x| x.id.clone())
                .ok_or_else(|| r.error(Field::Territory, format!("no territory {t:?} in this team")))?,
        ),
        None => None,
    };
    let placed = territory.is_none().then(|| {
        let wgs = to_wgs84(point, datum);
        view.territories.iter().find(|t| t.covers(wgs.lat, wgs.lon)).map(|t| t.id.clone())
    });
    let opening_hours = match r.text(Field::OpeningHours) {
        None => None,
        Some(h) => Some(parse_opening_hours(&h).map_err(|e| r.error(Field::OpeningHours, e))?),
    };
    let tier = match r.text(Field::Tier) {
        None => None,
        Some(t) => Some(match t.trim().to_ascii_uppercase().as_str() {
            "A" => Tier::A,
            "B" => Tier::B,
            "C" => Tier::C,
            _ => return Err(r.error(Field::Tier, format!("{t:?}: A, B or C"))),
        }),
    };
    let id = match r.text(Field::ExternalId) {
        Some(id) => {
            fieldsync_core::docs::validate_id("external_id", &id)
                .map_err(|e| r.error(Field::ExternalId, e.to_string()))?;
            id
        }
        None => derived_id(&name, lat, lon),
    };
    if view.other_ids.contains(&id) {
        return Err(r.error(Field::ExternalId, format!("{id} is the id of another kind of document")));
    }
    let phone = match r.text(Field::Phone) {
        None => None,
        Some(p) => {
            fieldsync_core::docs::normalized_phone(&p).map_err(|e| r.error(Field::Phone, e))?;
            Some(p)
        }
    };
    let values = Values {
        name,
        location,
        address: r.text(Field::Address),
        phone,
        potential,
        probability,
        owner,
        territory,
        placed: placed.flatten(),
        opening_hours,
        timezone: r.text(Field::Timezone),
        tier,
    };
    Ok(Imported { id, line: r.row.line, values })
}

/// A stable id for a row without one: FNV-1a of its name and position (rounded to about a metre).
fn derived_id(name: &str, lat: f64, lon: f64) -> String {
    let key = format!("{}|{:.5}|{:.5}", name.trim().to_lowercase(), lat, lon);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("imp-{h:016x}")
}

/// `Mo-Fr 09:00-18:00; Sa 09:00-12:00`, `Mo,We 8:30-12:00,14:00-18:00`, `周一至周五 9:00-18:00`.
pub fn parse_opening_hours(text: &str) -> Result<Vec<OpeningHours>, String> {
    let mut out = Vec::new();
    for part in text.split([';', '；', '\n']).map(str::trim).filter(|p| !p.is_empty()) {
        let (days, times) = part
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{part:?}: days then hours, e.g. \"Mo-Fr 09:00-18:00\""))?;
        let mut weekdays = Vec::new();
        for range in days.split([',', '、', '，']) {
            let (from, to) = match range.split_once(['-', '至', '~']) {
                Some((a, b)) => (weekday(a)?, weekday(b)?),
                None => (weekday(range)?, weekday(range)?),
            };
            if from > to {
                return Err(format!("{range:?}: the first day comes first"));
            }
            weekdays.extend(from..=to);
        }
        for span in times.split([',', '，']).map(str::trim).filter(|s| !s.is_empty()) {
            let (open, close) =
                span.split_once(['-', '~', '至']).ok_or_else(|| format!("{span:?}: hours as 09:00-18:00"))?;
            let (open_min, close_min) = (minutes(open)?, minutes(close)?);
            if open_min >= close_min {
                return Err(format!("{span:?}: closes before it opens"));
            }
            for &weekday in &weekdays {
                out.push(OpeningHours { weekday, open_min, close_min });
            }
        }
    }
    Ok(out)
}

fn weekday(text: &str) -> Result<u8, String> {
    let t = text.trim();
    let d = match t.to_ascii_lowercase().as_str() {
        "mo" | "mon" | "周一" | "星期一" => 1,
        "tu" | "tue" | "周二" | "星期二" => 2,
        "we" | "wed" | "周三" | "星期三" => 3,
        "th" | "thu" | "周四" | "星期四" => 4,
        "fr" | "fri" | "周五" | "星期五" => 5,
        "sa" | "sat" | "周六" | "星期六" => 6,
        "su" | "sun" | "周日" | "星期日" | "周天" | "星期天" => 7,
        _ => return Err(format!("{t:?} is not a day (Mo … Su, 周一 … 周日)")),
    };
    Ok(d)
}

fn minutes(text: &str) -> Result<u16, String> {
    let t = text.trim();
    let (h, m) = t.split_once([':', '：']).unwrap_or((t, "0"));
    match (h.parse::<u16>(), m.parse::<u16>()) {
        (Ok(h), Ok(m)) if (h < 24 && m < 60) || (h == 24 && m == 0) => Ok(h * 60 + m),
        _ => Err(format!("{t:?} is not a time of day")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldsync_core::docs::{Cadence, Plan};
    use fieldsync_core::testing::fixtures::territory_over;

    use crate::table::{Format, Limits, read};

    fn view() -> TeamView {
        let north = territory_over("t-north", "Lyon Nord", &["alice"], (45.76, 4.80), (45.80, 4.88));
        let south = Territory::new("t-south", "Lyon Sud", vec!["bruno".into()]);
        let cadence = Cadence { a_days: 14, b_days: 28, c_days: 60 };
        let plan = Plan::new(
            "plan-q4",
            "2026-Q4",
            cadence,
            TierThresholds { a_min_score: 30_000.0, b_min_score: 10_000.0 },
        );
        TeamView::of([north.into(), south.into(), plan.into()])
    }

    fn plan_csv(csv: &str, view: &TeamView) -> ImportPlan {
        let table = read(csv.as_bytes(), Format::Csv, &Limits::default()).expect("reads");
        let mapping = Mapping::from_header(&table.header).expect("maps");
        plan(&table, &mapping, view, "maria", 1_000)
    }

    #[test]
    fn rows_become_customers_placed_owned_and_tiered_as_the_team_is_set_up() {
        let p = plan_csv(
            "客户编号,客户名称,纬度,经度,潜力,成交概率,负责人,区域,营业时间\n\
             k1,Boulangerie,45.77,4.83,100000,50%,ALICE,,周一至周五 9:00-18:00\n\
             k2,Tabac,45.70,4.83,\"12 000\",0.5,bruno,Lyon Sud,Sa 08:00-12:00\n",
            &view(),
        );
        assert!(p.refused.is_empty(), "{:?}", p.refused);
        let created: Vec<Customer> = p.creates.iter().map(|c| p.created(c)).collect();
        assert_eq!(created[0].territory.as_deref(), Some("t-north"), "placed by its point");
        assert_eq!(created[0].owner_rep.as_deref(), Some("alice"));
        assert_eq!((created[0].tier, created[0].tier_set_by.as_deref()), (Some(Tier::A), None));
        assert_eq!(created[0].opening_hours.len(), 5);
        assert_eq!((created[1].potential_value, created[1].tier), (12_000.0, Some(Tier::C)));
        assert_eq!(created[1].territory.as_deref(), Some("t-south"), "named by its name");
    }

    #[test]
    fn every_bad_row_is_refused_with_its_line_and_column_and_the_good_ones_are_kept() {
        let p = plan_csv(
            "id,name,lat,lon,probability,owner,tier,opening hours\n\
             a1,Ok,45.7,4.8,0.2,,,\n\
             a2,,45.7,4.8,,,,\n\
             a3,Bad lat,north,4.8,,,,\n\
             a4,Bad p,45.7,4.8,150%,,,\n\
             a5,Bad owner,45.7,4.8,,zoe,,\n\
             a6,Bad tier,45.7,4.8,,,D,\n\
             a7,Bad hours,45.7,4.8,,,,Mo 18:00-09:00\n\
             a1,Twice,45.7,4.8,,,,\n\
             t-north,Clash,45.7,4.8,,,,\n\
             a 9,Bad id,45.7,4.8,,,,\n\
             a10,Far,95,4.8,,,,\n",
            &view(),
        );
        let phones = plan_csv(
            "id,name,lat,lon,电话\np1,Ok,45.7,4.8,06 12 34 56 78\np2,Bad,45.7,4.8,call me\n",
            &view(),
        );
        assert_eq!(phones.creates.len(), 1);
        assert_eq!(phones.created(&phones.creates[0]).phone, "06 12 34 56 78");
        let refused: Vec<_> = phones.refused.iter().map(|e| (e.line, e.column.as_deref())).collect();
        assert_eq!(refused, [(3, Some("电话"))]);
        assert_eq!(p.creates.len(), 1);
        let refused: Vec<(usize, Option<&str>)> =
            p.refused.iter().map(|e| (e.line, e.column.as_deref())).collect();
        assert_eq!(
            refused,
            [
                (3, Some("name")),
                (4, Some("lat")),
                (5, Some("probability")),
                (6, Some("owner")),
                (7, Some("tier")),
                (8, Some("opening hours")),
                (9, Some("id")),
                (10, Some("id")),
                (11, Some("id")),
                (12, Some("lat")),
            ],
            "{:#?}",
            p.refused
        );
    }

    #[test]
    fn importing_the_same_rows_again_changes_nothing_and_a_changed_row_only_what_changed() {
        let csv = "id,name,lat,lon,potential,address\nk1,Boulangerie,45.77,4.83,100,1 rue A\nk2,Tabac,45.70,4.83,5,\n";
        let first = plan_csv(csv, &view());
        let mut view = view();
        for c in &first.creates {
            let mut stored = first.created(c);
            stored.notes = "a rep's note".into();
            view.customers.insert(stored.id.clone(), stored);
        }
        let again = plan_csv(csv, &view);
        assert_eq!((again.creates.len(), again.updates.len(), again.unchanged.len()), (0, 0, 2));
        let changed = plan_csv(&csv.replace("1 rue A", "2 rue B"), &view);
        assert_eq!(changed.updates.len(), 1);
        assert_eq!(
            (changed.updates[0].row.id.as_str(), changed.updates[0].changed.clone()),
            ("k1", vec!["address"])
        );
    }

    #[test]
    fn numbers_and_hours_read_as_people_type_them() {
        assert_eq!(parse_number("45,76"), Some(45.76));
        assert_eq!(parse_number("12 000"), Some(12_000.0));
        assert_eq!(parse_number("12,000.50"), Some(12_000.5));
        assert_eq!(parse_number("€ 1.200,00"), Some(1_200.0));
        assert_eq!(parse_number("north"), None);
        let h = parse_opening_hours("Mo,We 8:30-12:00,14:00-18:00; Sa 09:00-12:00").expect("hours");
        assert_eq!(h.len(), 5);
        assert_eq!(h[0], OpeningHours { weekday: 1, open_min: 510, close_min: 720 });
        assert!(parse_opening_hours("Mo").is_err());
        assert!(parse_opening_hours("Xx 09:00-10:00").is_err());
    }
}
