//! # fieldsync-exchange
//!
//! fieldsync's data exchange with the outside, without IO: a customer file (XLSX, ODS or CSV, with a
//! header row in English or Chinese) read into a [`table::Table`] under [`table::Limits`], its
//! columns mapped ([`columns::Mapping`]), and every row decided against what the team holds
//! ([`import::plan`]): created, updated (only the fields that changed), unchanged, or refused
//! with its line, column and reason. The server performs the writes the plan gives. [`export`]
//! writes a team's customers as CSV or XLSX that imports back unchanged. [`lead`] turns a lead
//! from another system into a prospect, or merges it into the customer it duplicates.
//!
//! ```
//! use fieldsync_exchange::{columns::Mapping, import, table};
//! let csv = "客户名称,纬度,经度,潜力\nBoulangerie,45.7640,4.8357,12000\n";
//! let t = table::read(csv.as_bytes(), table::Format::Csv, &table::Limits::default()).unwrap();
//! let mapping = Mapping::from_header(&t.header).unwrap();
//! let plan = import::plan(&t, &mapping, &import::TeamView::default(), "maria", 0);
//! let report = plan.report(false);
//! assert_eq!((report.created, report.refused.len()), (1, 0));
//! assert_eq!(plan.writes().len(), 1);
//! ```

pub mod columns;
pub mod export;
pub mod import;
pub mod lead;
pub mod table;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
