//! A team's data as files: customers as a file the import reads back unchanged (the same columns,
//! English headers, the customer's id as its external id, numbers as numbers, opening hours as
//! `Mo 09:00-18:00; …`, and the tier only where a manager set it: a computed tier is computed again
//! on import, from the plan of that day); visits as a table of what happened (times in UTC); and
//! either as GeoJSON points for maps and GIS tools ([`file`] picks).

use std::collections::HashMap;

use fieldsync_core::docs::{Customer, Document, OpeningHours, Visit};
use fieldsync_core::geo::to_wgs84;
use serde::Serialize;

use crate::columns::Field;
use crate::table::Format;

/// One exported value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Number(f64),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Text(s) => s.clone(),
            Value::Number(n) => n.to_string(),
        }
    }
}

/// The columns, in order.
pub const CUSTOMER_COLUMNS: [Field; 14] = Field::ALL;

/// The header row: the fields' names, which the import maps back.
pub fn customer_header() -> Vec<&'static str> {
    CUSTOMER_COLUMNS.iter().map(|f| f.key()).collect()
}

/// One customer's row, in [`CUSTOMER_COLUMNS`] order.
pub fn customer_row(c: &Customer) -> Vec<Value> {
    let text = |s: &str| Value::Text(s.to_string());
    CUSTOMER_COLUMNS
        .iter()
        .map(|f| match f {
            Field::ExternalId => text(&c.id),
            Field::Name => text(&c.name),
            Field::Address => text(&c.address),
            Field::Phone => text(&c.phone),
            Field::Lat => Value::Number(c.location.lat),
            Field::Lon => Value::Number(c.location.lon),
            Field::Datum => text(&c.location.datum),
            Field::Potential => Value::Number(c.potential_value),
            Field::Probability => Value::Number(c.close_probability),
            Field::Owner => text(c.owner_rep.as_deref().unwrap_or_default()),
            Field::Territory => text(c.territory.as_deref().unwrap_or_default()),
            Field::OpeningHours => text(&format_opening_hours(&c.opening_hours)),
            Field::Timezone => text(&c.timezone),
            Field::Tier => match (c.tier, &c.tier_set_by) {
                (Some(t), Some(_)) => text(&format!("{t:?}")),
                _ => text(""),
            },
        })
        .collect()
}

/// `Mo 09:00-18:00; Tu 09:00-12:00`, one entry per opening, as the import reads it.
pub fn format_opening_hours(hours: &[OpeningHours]) -> String {
    const DAYS: [&str; 7] = ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"];
    let time = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    hours
        .iter()
        .map(|h| {
            let day = DAYS.get(usize::from(h.weekday).saturating_sub(1)).copied().unwrap_or("Mo");
            format!("{day} {}-{}", time(h.open_min), time(h.close_min))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A table to write: a sheet's name, its header row and its rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Sheet {
    pub name: &'static str,
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<Value>>,
}

/// The customers with the import's columns.
pub fn customers_sheet(customers: &[Customer]) -> Sheet {
    Sheet { name: "customers", header: customer_header(), rows: customers.iter().map(customer_row).collect() }
}

/// The columns of a visits export (not an import format: visits come from phones).
pub const VISIT_HEADER: [&str; 16] = [
    "id",
    "customer_id",
    "customer",
    "rep",
    "planned_start",
    "planned_end",
    "state",
    "checked_in_at",
    "checkin_lat",
    "checkin_lon",
    "verification",
    "distance_m",
    "checked_out_at",
    "outcome",
    "next_step",
    "notes",
];

/// A time as RFC 3339 in UTC (`2026-12-04T09:30:00Z`).
fn utc(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default()
}

/// A unit enum's serde name (`checked_in`, `flagged`).
fn serde_name(v: impl Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The visits, one row each (the first check-in and its verdict; times in UTC), with each
/// customer's name from `customers`.
pub fn visits_sheet(visits: &[Visit], customers: &HashMap<&str, &Customer>) -> Sheet {
    let text = |s: &str| Value::Text(s.to_string());
    let rows = visits
        .iter()
        .map(|v| {
            let first = v.checkins.first();
            let verdict = first.and_then(|c| v.verification.get(&c.id));
            vec![
                text(&v.id),
                text(&v.customer_id),
                text(customers.get(v.customer_id.as_str()).map_or("", |c| c.name.as_str())),
                text(&v.rep),
                text(&utc(v.planned_start_ms)),
                text(&utc(v.planned_end_ms)),
                text(&serde_name(v.state)),
                text(&first.map(|c| utc(c.device_time_ms)).unwrap_or_default()),
                first.map_or(text(""), |c| Value::Number(c.lat)),
                first.map_or(text(""), |c| Value::Number(c.lon)),
                text(&verdict.map(|r| serde_name(r.status)).unwrap_or_default()),
                verdict.map_or(text(""), |r| Value::Number(r.distance_m.round())),
                text(&v.checkout.as_ref().map(|c| utc(c.device_time_ms)).unwrap_or_default()),
                text(v.checkout.as_ref().map_or("", |c| c.outcome.as_str())),
                text(v.checkout.as_ref().map_or("", |c| c.next_step.as_str())),
                text(v.notes.as_str()),
            ]
        })
        .collect();
    Sheet { name: "visits", header: VISIT_HEADER.to_vec(), rows }
}

/// A sheet as CSV (UTF-8, comma-separated, quoted where needed).
pub fn sheet_csv(sheet: &Sheet) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&sheet.header).map_err(|e| e.to_string())?;
    for row in &sheet.rows {
        w.write_record(row.iter().map(Value::text)).map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

/// A sheet as an XLSX workbook (rust_xlsxwriter): numbers as numbers, text as text.
pub fn sheet_xlsx(sheet: &Sheet) -> Result<Vec<u8>, String> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let ws = book.add_worksheet();
    let err = |e: rust_xlsxwriter::XlsxError| e.to_string();
    ws.set_name(sheet.name).map_err(err)?;
    for (col, h) in sheet.header.iter().enumerate() {
        ws.write_string(0, col as u16, *h).map_err(err)?;
    }
    for (r, cells) in sheet.rows.iter().enumerate() {
        let row = u32::try_from(r + 1).map_err(|_| "too many rows for a workbook".to_string())?;
        for (col, v) in cells.iter().enumerate() {
            match v {
                Value::Number(n) => ws.write_number(row, col as u16, *n).map(|_| ()),
                Value::Text(s) if s.is_empty() => Ok(()),
                Value::Text(s) => ws.write_string(row, col as u16, s).map(|_| ()),
            }
            .map_err(err)?;
        }
    }
    book.save_to_buffer().map_err(err)
}

/// A GeoJSON point feature (RFC 7946: WGS-84, longitude first).
fn point(lat: f64, lon: f64, properties: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": properties,
    })
}

fn collection(features: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({"type": "FeatureCollection", "features": features})
}

/// The customers as GeoJSON points (GCJ-02 positions converted to WGS-84), with what a map
/// colours them by.
pub fn customers_geojson(customers: &[Customer]) -> serde_json::Value {
    collection(
        customers
            .iter()
            .filter_map(|c| {
                let (p, datum) = c.location.parsed("location").ok()?;
                let at = to_wgs84(p, datum);
                Some(point(
                    at.lat,
                    at.lon,
                    serde_json::json!({
                        "id": c.id, "name": c.name, "address": c.address, "phone": c.phone,
                        "tier": c.tier.map(serde_name), "owner_rep": c.owner_rep, "territory": c.territory,
                        "opportunity_stage": c.opportunity_stage, "follow_up_status": c.follow_up_status,
                    }),
                ))
            })
            .collect(),
    )
}

/// The visits as GeoJSON points: where the rep checked in, or the customer's place for a visit
/// without a check-in (`"at": "checkin"` or `"customer"`).
pub fn visits_geojson(visits: &[Visit], customers: &HashMap<&str, &Customer>) -> serde_json::Value {
    collection(
        visits
            .iter()
            .filter_map(|v| {
                let first = v.checkins.first();
                let (lat, lon, at) = match first {
                    Some(c) => (c.lat, c.lon, "checkin"),
                    None => {
                        let (p, datum) =
                            customers.get(v.customer_id.as_str())?.location.parsed("location").ok()?;
                        let w = to_wgs84(p, datum);
                        (w.lat, w.lon, "customer")
                    }
                };
                let verdict = first.and_then(|c| v.verification.get(&c.id));
                Some(point(
                    lat,
                    lon,
                    serde_json::json!({
                        "id": v.id, "customer_id": v.customer_id,
                        "customer": customers.get(v.customer_id.as_str()).map(|c| c.name.clone()),
                        "rep": v.rep, "planned_start": utc(v.planned_start_ms), "state": serde_name(v.state),
                        "verification": verdict.map(|r| serde_name(r.status)), "at": at,
                    }),
                ))
            })
            .collect(),
    )
}

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Customers,
    Visits,
}

impl What {
    pub fn parse(s: &str) -> Option<What> {
        match s.trim().to_ascii_lowercase().as_str() {
            "customers" => Some(What::Customers),
            "visits" => Some(What::Visits),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            What::Customers => "customers",
            What::Visits => "visits",
        }
    }
}

/// An export's format: a file the import's formats name, or GeoJSON for maps and GIS tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    File(Format),
    GeoJson,
}

impl ExportFormat {
    /// `csv`, `xlsx` or `geojson` (ODS is read, not written).
    pub fn parse(s: &str) -> Option<ExportFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "geojson" => Some(ExportFormat::GeoJson),
            other => Format::parse(other).filter(|f| *f != Format::Ods).map(ExportFormat::File),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::File(f) => f.as_str(),
            ExportFormat::GeoJson => "geojson",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::File(f) => f.content_type(),
            ExportFormat::GeoJson => "application/geo+json",
        }
    }
}

const ODS_NOT_WRITTEN: &str = "ODS files are read, not written: export as xlsx";

/// The export of `what` from a team's documents, in id order (visits: by planned start).
pub fn file(what: What, format: ExportFormat, docs: Vec<Document>) -> Result<Vec<u8>, String> {
    let mut customers = Vec::new();
    let mut visits = Vec::new();
    for d in docs {
        match d {
            Document::Customer(c) => customers.push(c),
            Document::Visit(v) => visits.push(v),
            Document::Territory(_) | Document::Plan(_) => {}
        }
    }
    customers.sort_by(|a, b| a.id.cmp(&b.id));
    visits.sort_by(|a, b| (a.planned_start_ms, &a.id).cmp(&(b.planned_start_ms, &b.id)));
    let by_id = || customers.iter().map(|c| (c.id.as_str(), c)).collect::<HashMap<_, _>>();
    let sheet = || match what {
        What::Customers => customers_sheet(&customers),
        What::Visits => visits_sheet(&visits, &by_id()),
    };
    match format {
        ExportFormat::File(Format::Csv) => sheet_csv(&sheet()),
        ExportFormat::File(Format::Xlsx) => sheet_xlsx(&sheet()),
        ExportFormat::File(Format::Ods) => Err(ODS_NOT_WRITTEN.into()),
        ExportFormat::GeoJson => {
            let geo = match what {
                What::Customers => customers_geojson(&customers),
                What::Visits => visits_geojson(&visits, &by_id()),
            };
            serde_json::to_vec_pretty(&geo).map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::Mapping;
    use crate::import::{TeamView, parse_opening_hours, plan};
    use crate::table::{Format, Limits, read};
    use fieldsync_core::docs::{Document, Tier};
    use fieldsync_core::testing::fixtures::{customer, territory_over};

    fn team() -> Vec<Customer> {
        let mut a = customer("c-1", "alice", Some("t-north"), (45.77, 4.83));
        a.notes = "kept out of files".into();
        a.address = "1 rue A, \"Lyon\"; centre".into();
        a.phone = "+33 4 78 00 00 01".into();
        let mut b = customer("c-2", "alice", None, (45.7712345678, 4.8398765432));
        b.tier = Some(Tier::A);
        b.tier_set_by = Some("maria".into());
        b.timezone = "Europe/Paris".into();
        b.opening_hours.push(OpeningHours { weekday: 6, open_min: 540, close_min: 720 });
        let mut c = customer("0042", "alice", Some("t-north"), (45.78, 4.84));
        c.location.datum = "gcj02".into();
        c.close_probability = 0.35;
        vec![a, b, c]
    }

    fn reimport(bytes: &[u8], format: Format, customers: &[Customer]) -> crate::import::ImportPlan {
        let t = read(bytes, format, &Limits::default()).expect("the export reads");
        let mapping = Mapping::from_header(&t.header).expect("maps");
        assert!(mapping.ignored.is_empty(), "{:?}", mapping.ignored);
        let north = territory_over("t-north", "Lyon Nord", &["alice"], (45.76, 4.80), (45.80, 4.88));
        let docs = customers.iter().cloned().map(Document::Customer).chain([north.into()]);
        plan(&t, &mapping, &TeamView::of(docs), "maria", 0)
    }

    #[test]
    fn an_export_imported_again_changes_nothing_in_either_format() {
        let customers = team();
        for (format, bytes) in [
            (Format::Csv, sheet_csv(&customers_sheet(&customers)).expect("csv")),
            (Format::Xlsx, sheet_xlsx(&customers_sheet(&customers)).expect("xlsx")),
        ] {
            let p = reimport(&bytes, format, &customers);
            assert!(p.refused.is_empty(), "{format:?}: {:?}", p.refused);
            let changed: Vec<_> = p.updates.iter().map(|u| (u.row.id.clone(), u.changed.clone())).collect();
            assert_eq!(changed, vec![], "{format:?}");
            assert_eq!(p.unchanged.len(), 3, "{format:?}");
        }
    }

    #[test]
    fn opening_hours_are_written_as_they_are_read() {
        let hours = team()[1].opening_hours.clone();
        assert_eq!(parse_opening_hours(&format_opening_hours(&hours)).expect("reads"), hours);
    }
}
