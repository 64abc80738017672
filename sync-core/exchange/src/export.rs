//! A team's customers as a file the import reads back unchanged: the same columns (English
//! headers), the customer's id as its external id, numbers as numbers, opening hours as
//! `Mo 09:00-18:00; …`, and the tier only where a manager set it (a computed tier is computed again
//! on import, from the plan of that day).

use fieldsync_core::docs::{Customer, OpeningHours};

use crate::columns::Field;

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
pub const CUSTOMER_COLUMNS: [Field; 13] = Field::ALL;

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

/// The customers as CSV (UTF-8, comma-separated, quoted where needed).
pub fn customers_csv(customers: &[Customer]) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(customer_header()).map_err(|e| e.to_string())?;
    for c in customers {
        w.write_record(customer_row(c).iter().map(Value::text)).map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

/// The customers as an XLSX workbook (rust_xlsxwriter): numbers as numbers, text as text.
pub fn customers_xlsx(customers: &[Customer]) -> Result<Vec<u8>, String> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let err = |e: rust_xlsxwriter::XlsxError| e.to_string();
    sheet.set_name("customers").map_err(err)?;
    for (col, h) in customer_header().iter().enumerate() {
        sheet.write_string(0, col as u16, *h).map_err(err)?;
    }
    for (r, c) in customers.iter().enumerate() {
        let row = u32::try_from(r + 1).map_err(|_| "too many rows for a workbook".to_string())?;
        for (col, v) in customer_row(c).iter().enumerate() {
            match v {
                Value::Number(n) => sheet.write_number(row, col as u16, *n).map(|_| ()),
                Value::Text(s) if s.is_empty() => Ok(()),
                Value::Text(s) => sheet.write_string(row, col as u16, s).map(|_| ()),
            }
            .map_err(err)?;
        }
    }
    book.save_to_buffer().map_err(err)
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
            (Format::Csv, customers_csv(&customers).expect("csv")),
            (Format::Xlsx, customers_xlsx(&customers).expect("xlsx")),
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
