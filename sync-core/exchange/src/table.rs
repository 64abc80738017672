//! A customer file as a table of cells: its header row and its data rows, each with the line a
//! person sees it on in their spreadsheet.
//!
//! Every bound is checked while reading, before the next cell is kept: the file's size, the
//! columns of a row, the rows, a cell's length. An XLSX sheet is read cell by cell (calamine's
//! cell reader), never as the dense rectangle its dimensions claim, so a sheet with one cell in A1
//! and one in XFD1048576 costs two cells. Formulas are refused: the value a spreadsheet last
//! computed is not what the person sees after the next recalculation, and an import must write
//! what the file says.

use std::io::Cursor;

use calamine::{Reader, Xlsx};
use serde::Serialize;

/// Bounds of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_file_bytes: usize,
    /// What a workbook's parts may unpack to, as its ZIP directory declares (a 64 MiB file of
    /// repeated bytes can unpack to gigabytes).
    pub max_unpacked_bytes: u64,
    pub max_columns: usize,
    /// Data rows (the header not counted).
    pub max_rows: usize,
    /// Characters of one cell.
    pub max_cell_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 64 << 20,
            max_unpacked_bytes: 256 << 20,
            max_columns: 64,
            max_rows: 200_000,
            max_cell_chars: 4096,
        }
    }
}

/// The file formats read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Xlsx,
    /// OpenDocument (LibreOffice, WPS): read, never written.
    Ods,
}

impl Format {
    /// The format a file name says (`customers.xlsx`), if it says one this reads.
    pub fn from_name(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        match lower.rsplit_once('.').map(|(_, ext)| ext) {
            Some("csv" | "txt") => Some(Format::Csv),
            Some("xlsx" | "xlsm") => Some(Format::Xlsx),
            Some("ods") => Some(Format::Ods),
            _ => None,
        }
    }

    /// The format a query or flag names: `csv`, `xlsx` or `ods`.
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "csv" => Some(Format::Csv),
            "xlsx" => Some(Format::Xlsx),
            "ods" => Some(Format::Ods),
            _ => None,
        }
    }

    /// Its name in queries, flags and file extensions.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Ods => "ods",
        }
    }

    /// Its media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Ods => "application/vnd.oasis.opendocument.spreadsheet",
        }
    }

    /// The format the bytes are in: a ZIP container is a workbook (OpenDocument when its first,
    /// uncompressed entry is the `mimetype` naming a spreadsheet, as the format requires), anything
    /// else is read as CSV.
    pub fn sniff(bytes: &[u8]) -> Format {
        if !bytes.starts_with(b"PK\x03\x04") {
            return Format::Csv;
        }
        let head = &bytes[..bytes.len().min(128)];
        const ODF: &[u8] = b"application/vnd.oasis.opendocument.spreadsheet";
        let ods =
            head.get(30..38) == Some(b"mimetype".as_slice()) && head.windows(ODF.len()).any(|w| w == ODF);
        if ods { Format::Ods } else { Format::Xlsx }
    }
}

/// One cell's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    Bool(bool),
}

impl Cell {
    /// The cell as a person reads it, trimmed (numbers without a trailing `.0`).
    pub fn text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) => s.trim().to_string(),
            Cell::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
            Cell::Number(n) => n.to_string(),
            Cell::Bool(b) => b.to_string(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(s) => s.trim().is_empty(),
            _ => false,
        }
    }
}

/// A data row and the line (1-based, the header is line 1) it is on.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub line: usize,
    pub cells: Vec<Cell>,
}

impl Row {
    pub fn get(&self, column: usize) -> &Cell {
        self.cells.get(column).unwrap_or(&Cell::Empty)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Row>,
}

/// Why a file cannot be read at all: nothing of it is imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum FileError {
    #[error("the file is {bytes} bytes; at most {max} are read")]
    TooLarge { bytes: usize, max: usize },
    #[error("the workbook unpacks to {bytes} bytes; at most {max} are read")]
    Unpacked { bytes: u64, max: u64 },
    #[error("the file has no header row")]
    Empty,
    #[error(
        "line {line} is not UTF-8 text (a CSV saved as GBK or another code page?): save it as \"CSV UTF-8\""
    )]
    NotUtf8 { line: usize },
    #[error("line {line} has {columns} columns; at most {max} are read")]
    TooManyColumns { line: usize, columns: usize, max: usize },
    #[error("the file has more than {max} rows")]
    TooManyRows { max: usize },
    #[error("line {line}, column {column}: a cell of more than {max} characters")]
    CellTooLong { line: usize, column: usize, max: usize },
    #[error(
        "cell {cell} holds a formula ({formula}): replace formulas by their values (copy, paste values) and import again"
    )]
    Formula { cell: String, formula: String },
    #[error("line {line}: {reason}")]
    Csv { line: usize, reason: String },
    #[error("not a readable workbook: {reason}")]
    Workbook { reason: String },
    /// An OpenDocument sheet whose cells, as its reader lays them out (a dense rectangle), would
    /// be more than the import reads.
    #[error(
        "the spreadsheet spans {cells} cells (rows × columns up to its last value); at most {max} are read: delete the empty rows and columns around the data"
    )]
    TooManyCells { cells: u64, max: u64 },
}

/// Reads `bytes` as `format`.
pub fn read(bytes: &[u8], format: Format, limits: &Limits) -> Result<Table, FileError> {
    if bytes.len() > limits.max_file_bytes {
        return Err(FileError::TooLarge { bytes: bytes.len(), max: limits.max_file_bytes });
    }
    match format {
        Format::Csv => read_csv(bytes, limits),
        Format::Xlsx => guarded(|| read_xlsx_cells(bytes, limits)),
        Format::Ods => guarded(|| read_ods(bytes, limits)),
    }
}

/// Collects rows, checking each bound before a cell is kept.
struct Builder<'a> {
    limits: &'a Limits,
    header: Option<Vec<String>>,
    rows: Vec<Row>,
}

impl<'a> Builder<'a> {
    fn new(limits: &'a Limits) -> Self {
        Builder { limits, header: None, rows: Vec::new() }
    }

    fn check_cell(&self, line: usize, column: usize, cell: &Cell) -> Result<(), FileError> {
        if column >= self.limits.max_columns {
            return Err(FileError::TooManyColumns {
                line,
                columns: column + 1,
                max: self.limits.max_columns,
            });
        }
        if let Cell::Text(s) = cell
            && s.chars().count() > self.limits.max_cell_chars
        {
            return Err(FileError::CellTooLong { line, column: column + 1, max: self.limits.max_cell_chars });
        }
        Ok(())
    }

    fn push(&mut self, line: usize, cells: Vec<Cell>) -> Result<(), FileError> {
        if self.header.is_none() {
            if cells.iter().all(Cell::is_empty) {
                return Ok(());
            }
            self.header = Some(cells.iter().map(Cell::text).collect());
            return Ok(());
        }
        if cells.iter().all(Cell::is_empty) {
            return Ok(());
        }
        if self.rows.len() >= self.limits.max_rows {
            return Err(FileError::TooManyRows { max: self.limits.max_rows });
        }
        self.rows.push(Row { line, cells });
        Ok(())
    }

    fn finish(self) -> Result<Table, FileError> {
        let header = self.header.ok_or(FileError::Empty)?;
        Ok(Table { header, rows: self.rows })
    }
}

fn read_csv(bytes: &[u8], limits: &Limits) -> Result<Table, FileError> {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    // Excel in many locales writes `;` between fields: the header line tells which one is used.
    let first_line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let delimiter = [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|d| first_line.iter().filter(|b| *b == d).count())
        .unwrap_or(b',');
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(bytes);
    let mut builder = Builder::new(limits);
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line() as usize;
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(FileError::Csv { line, reason: e.to_string() }),
        }
        let line = record.position().map_or(line, |p| p.line() as usize);
        if record.len() > limits.max_columns {
            return Err(FileError::TooManyColumns { line, columns: record.len(), max: limits.max_columns });
        }
        let mut cells = Vec::with_capacity(record.len());
        for (column, field) in record.iter().enumerate() {
            let text = std::str::from_utf8(field).map_err(|_| FileError::NotUtf8 { line })?;
            let cell = if text.trim().is_empty() { Cell::Empty } else { Cell::Text(text.to_string()) };
            builder.check_cell(line, column, &cell)?;
            if let Cell::Text(t) = &cell
                && looks_like_formula(t)
            {
                return Err(FileError::Formula {
                    cell: cell_name(line, column),
                    formula: t.trim().to_string(),
                });
            }
            cells.push(cell);
        }
        builder.push(line, cells)?;
    }
    builder.finish()
}

/// `=SUM(A1:A3)`, `=A2*2`: what a spreadsheet would compute, not a value. (A lone `=` or
/// `=-` text is a value, and so is "= 3 visits".)
fn looks_like_formula(text: &str) -> bool {
    let t = text.trim_start();
    t.strip_prefix('=').is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '('))
}

/// `B7` for line 7, column 2.
fn cell_name(line: usize, column: usize) -> String {
    let mut name = String::new();
    let mut n = column + 1;
    while n > 0 {
        let rem = (n - 1) % 26;
        name.insert(0, (b'A' + rem as u8) as char);
        n = (n - 1) / 26;
    }
    format!("{name}{line}")
}

/// A workbook cell's value as the import reads it: dates as their serial number, errors as text.
fn cell_of(value: calamine::Data) -> Cell {
    use calamine::Data;
    match value {
        Data::Empty => Cell::Empty,
        Data::Int(n) => Cell::Number(n as f64),
        Data::Float(f) => Cell::Number(f),
        Data::Bool(b) => Cell::Bool(b),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Text(s),
        Data::DateTime(d) => Cell::Number(d.as_f64()),
        Data::Error(e) => Cell::Text(format!("#{e:?}")),
    }
}

/// calamine panics on some damaged workbooks (an arithmetic overflow on a reversed dimension
/// `ref`, found by `tests/fuzz.rs`): a hostile file must be an error, never a crashed request, so
/// its reading is guarded and a panic answers that the workbook is damaged.
fn guarded(read: impl FnOnce() -> Result<Table, FileError>) -> Result<Table, FileError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|_| {
        Err(FileError::Workbook { reason: "the workbook is damaged (its reader gave up)".into() })
    })
}

fn damaged(e: impl std::fmt::Display) -> FileError {
    FileError::Workbook { reason: e.to_string() }
}

/// The workbook's ZIP, once what its parts declare they unpack to is within the bound.
fn archive<'a>(bytes: &'a [u8], limits: &Limits) -> Result<zip::ZipArchive<Cursor<&'a [u8]>>, FileError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(damaged)?;
    let mut unpacked = 0u64;
    for i in 0..archive.len() {
        let part = archive.by_index_raw(i).map_err(damaged)?;
        unpacked = unpacked.saturating_add(part.size());
    }
    if unpacked > limits.max_unpacked_bytes {
        return Err(FileError::Unpacked { bytes: unpacked, max: limits.max_unpacked_bytes });
    }
    Ok(archive)
}

fn read_xlsx_cells(bytes: &[u8], limits: &Limits) -> Result<Table, FileError> {
    let workbook = |e: calamine::XlsxError| FileError::Workbook { reason: e.to_string() };
    archive(bytes, limits)?;
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(workbook)?;
    let sheet = book.sheet_names().first().cloned().ok_or(FileError::Empty)?;
    let mut cells = book.worksheet_cells_reader(&sheet).map_err(workbook)?;
    let mut builder = Builder::new(limits);
    let mut current: Option<(u32, Vec<Cell>)> = None;
    while let Some(c) = cells.next_cell_with_formula().map_err(workbook)? {
        let (row, column) = c.pos;
        let line = row as usize + 1;
        if let Some(formula) = c.formula.filter(|f| !f.is_empty()) {
            return Err(FileError::Formula {
                cell: cell_name(line, column as usize),
                formula: format!("={formula}"),
            });
        }
        let cell = cell_of(calamine::Data::from(c.value));
        builder.check_cell(line, column as usize, &cell)?;
        match &mut current {
            Some((r, row_cells)) if *r == row => {
                row_cells.resize(column as usize, Cell::Empty);
                row_cells.push(cell);
            }
            _ => {
                if let Some((r, row_cells)) = current.take() {
                    builder.push(r as usize + 1, row_cells)?;
                }
                let mut row_cells = vec![Cell::Empty; column as usize];
                row_cells.push(cell);
                current = Some((row, row_cells));
            }
        }
    }
    if let Some((r, row_cells)) = current.take() {
        builder.push(r as usize + 1, row_cells)?;
    }
    builder.finish()
}

/// Cells an OpenDocument file may lay out. calamine's ODS reader, unlike its XLSX cell reader,
/// builds each sheet as a dense rectangle from the first to the last value (repeated rows and
/// columns expanded), for every sheet, when the file is opened: 4 million cells is a 200 000-row
/// sheet of 20 columns, a few hundred megabytes in its reader.
pub const MAX_ODS_CELLS: u64 = 4_000_000;

/// Reads `content.xml` as calamine's ODS reader will, without keeping a cell: refuses a value
/// beyond the last column read, and sheets whose rectangles (rows × columns up to their last
/// value, repetitions counted) hold more than [`MAX_ODS_CELLS`] in all.
fn check_ods_extent(bytes: &[u8], limits: &Limits) -> Result<(), FileError> {
    use quick_xml::events::{BytesStart, Event};
    let mut zip = archive(bytes, limits)?;
    let content = zip.by_name("content.xml").map_err(damaged)?;
    let mut xml = quick_xml::Reader::from_reader(std::io::BufReader::new(content));
    let repeats = |e: &BytesStart<'_>, name: &str| -> Result<u64, FileError> {
        match e.try_get_attribute(name).map_err(damaged)? {
            None => Ok(1),
            Some(a) => {
                a.value.trim().parse::<u64>().map_err(|_| damaged("a repetition count is not a number"))
            }
        }
    };
    let mut buf = Vec::new();
    let (mut total, mut rows, mut data_rows_end, mut width) = (0u64, 0u64, 0u64, 0u64);
    let (mut row_repeats, mut col, mut row_has_data) = (1u64, 0u64, false);
    let mut in_cell = 0u32;
    loop {
        let event = xml.read_event_into(&mut buf).map_err(damaged)?;
        match &event {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                "table:table" => (rows, data_rows_end, width) = (0, 0, 0),
                "table:table-row" => {
                    row_repeats = repeats(e, "table:number-rows-repeated")?;
                    (col, row_has_data) = (0, false);
                }
                "table:table-cell" | "table:covered-table-cell" if in_cell == 0 => {
                    let n = repeats(e, "table:number-columns-repeated")?;
                    let valued = matches!(event, Event::Start(_))
                        || e.try_get_attribute("office:value-type").map_err(damaged)?.is_some()
                        || e.try_get_attribute("table:formula").map_err(damaged)?.is_some();
                    if valued {
                        let end = col.saturating_add(n);
                        if end > limits.max_columns as u64 {
                            return Err(FileError::TooManyColumns {
                                line: rows.saturating_add(1).min(usize::MAX as u64) as usize,
                                columns: end.min(usize::MAX as u64) as usize,
                                max: limits.max_columns,
                            });
                        }
                        width = width.max(end);
                        row_has_data = true;
                    }
                    col = col.saturating_add(n);
                    if matches!(event, Event::Start(_)) {
                        in_cell = 1;
                    }
                }
                _ if in_cell > 0 && matches!(event, Event::Start(_)) => in_cell += 1,
                _ => {}
            },
            Event::End(e) => match e.name().as_ref() {
                "table:table-cell" | "table:covered-table-cell" if in_cell == 1 => in_cell = 0,
                _ if in_cell > 0 => in_cell -= 1,
                "table:table-row" => {
                    rows = rows.saturating_add(row_repeats);
                    if row_has_data {
                        data_rows_end = rows;
                    }
                }
                "table:table" => total = total.saturating_add(data_rows_end.saturating_mul(width)),
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        if total.saturating_add(data_rows_end.saturating_mul(width)) > MAX_ODS_CELLS {
            return Err(FileError::TooManyCells {
                cells: total.saturating_add(data_rows_end.saturating_mul(width)),
                max: MAX_ODS_CELLS,
            });
        }
        buf.clear();
    }
    Ok(())
}

fn read_ods(bytes: &[u8], limits: &Limits) -> Result<Table, FileError> {
    check_ods_extent(bytes, limits)?;
    let mut book: calamine::Ods<_> = calamine::Ods::new(Cursor::new(bytes)).map_err(damaged)?;
    let sheet = book.sheet_names().first().cloned().ok_or(FileError::Empty)?;
    let formulas = book.worksheet_formula(&sheet).map_err(damaged)?;
    if let Some((row, column, formula)) = formulas.used_cells().find(|(_, _, f)| !f.is_empty()) {
        let (r0, c0) = formulas.start().unwrap_or((0, 0));
        return Err(FileError::Formula {
            cell: cell_name(r0 as usize + row + 1, c0 as usize + column),
            formula: formula.trim_start_matches("of:").to_string(),
        });
    }
    let range = book.worksheet_range(&sheet).map_err(damaged)?;
    let (r0, c0) = range.start().unwrap_or((0, 0));
    let mut builder = Builder::new(limits);
    for (i, row) in range.rows().enumerate() {
        let line = r0 as usize + i + 1;
        let mut cells = vec![Cell::Empty; c0 as usize];
        for (j, value) in row.iter().enumerate() {
            let cell = cell_of(value.clone());
            builder.check_cell(line, c0 as usize + j, &cell)?;
            cells.push(cell);
        }
        builder.push(line, cells)?;
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ods_sheet_reads_like_its_xlsx_and_is_sniffed_as_ods() {
        use crate::testing::{ods, ods_row, ods_table};
        let sheet = ods_table(
            "客户",
            &[
                ods_row(&["客户名称", "纬度", "经度"]),
                ods_row(&["Boulangerie", "45.764", "4.8357"]),
                // Three blank rows LibreOffice writes as one repeated row, then a row at line 6.
                r#"<table:table-row table:number-rows-repeated="3"><table:table-cell table:number-columns-repeated="3"/></table:table-row>"#.into(),
                ods_row(&["Tabac", "45.7", "4.8"]),
                // The endless empty tail every saved sheet has: nothing to read.
                r#"<table:table-row table:number-rows-repeated="1048570"><table:table-cell table:number-columns-repeated="16384"/></table:table-row>"#.into(),
            ],
        );
        let bytes = ods(&[sheet]);
        assert_eq!(Format::sniff(&bytes), Format::Ods);
        let t = read(&bytes, Format::Ods, &Limits::default()).expect("reads");
        assert_eq!(t.header, ["客户名称", "纬度", "经度"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(
            (t.rows[0].line, t.rows[0].get(0).text(), t.rows[0].get(1)),
            (2, "Boulangerie".into(), &Cell::Number(45.764))
        );
        assert_eq!(t.rows[1].line, 6);
    }

    #[test]
    fn an_ods_that_would_lay_out_too_many_cells_or_holds_a_formula_is_refused_before_its_reader_runs() {
        use crate::testing::{ods, ods_row, ods_table};
        let limits = Limits::default();
        let header = ods_row(&["name", "lat", "lon"]);
        let refused =
            |rows: &[String]| read(&ods(&[ods_table("s", rows)]), Format::Ods, &limits).expect_err("refused");
        // A value repeated across every column.
        let wide = r#"<table:table-row><table:table-cell office:value-type="float" office:value="1" table:number-columns-repeated="16384"/></table:table-row>"#;
        assert!(matches!(refused(&[header.clone(), wide.into()]), FileError::TooManyColumns { line: 2, .. }));
        // A value after a million empty columns.
        let far = r#"<table:table-row><table:table-cell table:number-columns-repeated="1000000"/><table:table-cell office:value-type="string"><text:p>x</text:p></table:table-cell></table:table-row>"#;
        assert!(matches!(refused(&[header.clone(), far.into()]), FileError::TooManyColumns { .. }));
        // A row of values repeated a million times, and a value after a million empty rows.
        let tall = r#"<table:table-row table:number-rows-repeated="1000000"><table:table-cell office:value-type="float" office:value="1"/><table:table-cell office:value-type="float" office:value="2"/><table:table-cell office:value-type="float" office:value="3"/></table:table-row>"#;
        assert!(matches!(refused(&[header.clone(), tall.into()]), FileError::TooManyCells { .. }));
        let gap = r#"<table:table-row table:number-rows-repeated="1048000"><table:table-cell table:number-columns-repeated="3"/></table:table-row>"#;
        assert!(matches!(
            refused(&[header.clone(), gap.into(), ods_row(&["a", "1", "2"])]),
            FileError::TooManyCells { .. }
        ));
        // Many sheets, each within the bound, together beyond it (the reader lays out every sheet).
        let rows: Vec<String> = std::iter::once(header.clone())
            .chain(std::iter::once(r#"<table:table-row table:number-rows-repeated="900000"><table:table-cell office:value-type="float" office:value="1"/></table:table-row>"#.to_string()))
            .collect();
        let sheets: Vec<String> = (0..5).map(|i| ods_table(&format!("s{i}"), &rows)).collect();
        assert!(matches!(read(&ods(&sheets), Format::Ods, &limits), Err(FileError::TooManyCells { .. })));
        // A formula.
        let formula = r#"<table:table-row><table:table-cell office:value-type="string"><text:p>a</text:p></table:table-cell><table:table-cell table:formula="of:=[.B1]*2" office:value-type="float" office:value="2"><text:p>2</text:p></table:table-cell></table:table-row>"#;
        assert!(
            matches!(refused(&[header.clone(), formula.into()]), FileError::Formula { ref cell, .. } if cell == "B2")
        );
        // Damaged: a repetition that is not a number, content.xml cut.
        let nan =
            r#"<table:table-row table:number-rows-repeated="many"><table:table-cell/></table:table-row>"#;
        assert!(matches!(refused(&[header.clone(), nan.into()]), FileError::Workbook { .. }));
        let mut cut = ods(&[ods_table("s", &[header])]);
        cut.truncate(cut.len() / 2);
        assert!(read(&cut, Format::Ods, &limits).is_err());
    }

    #[test]
    fn cells_are_named_as_a_spreadsheet_names_them() {
        assert_eq!(cell_name(7, 1), "B7");
        assert_eq!(cell_name(1, 25), "Z1");
        assert_eq!(cell_name(2, 26), "AA2");
        assert_eq!(cell_name(3, 16_383), "XFD3");
    }

    #[test]
    fn a_csv_with_semicolons_a_bom_and_quoted_newlines_reads_as_its_spreadsheet_shows_it() {
        let csv = "\u{feff}name;lat;lon\n\"Café; du\ncoin\";45.76;4.83\n\n;;\nB;1;2\n";
        let t = read(csv.as_bytes(), Format::Csv, &Limits::default()).expect("reads");
        assert_eq!(t.header, ["name", "lat", "lon"]);
        assert_eq!(t.rows.len(), 2, "blank rows are skipped");
        assert_eq!((t.rows[0].line, t.rows[0].get(0).text()), (2, "Café; du\ncoin".to_string()));
        assert_eq!(t.rows[1].line, 6);
    }

    #[test]
    fn bounds_and_formulas_are_errors_before_anything_is_kept() {
        let limits = Limits { max_columns: 4, max_rows: 2, max_cell_chars: 5, ..Limits::default() };
        let err = |csv: &str| read(csv.as_bytes(), Format::Csv, &limits).expect_err("refused");
        assert_eq!(err("a,b,c,d,e\n"), FileError::TooManyColumns { line: 1, columns: 5, max: 4 });
        assert_eq!(err("a\n1\n2\n3\n"), FileError::TooManyRows { max: 2 });
        assert_eq!(err("a,b\nx,toolong\n"), FileError::CellTooLong { line: 2, column: 2, max: 5 });
        assert!(matches!(err("a,b\n1,=A1*2\n"), FileError::Formula { ref cell, .. } if cell == "B2"));
        assert_eq!(err(""), FileError::Empty);
        let gbk: &[u8] = b"name,lat\n\xbf\xcd\xbb\xa7,1\n";
        assert_eq!(read(gbk, Format::Csv, &limits), Err(FileError::NotUtf8 { line: 2 }));
        let big = vec![b'a'; 100];
        let tiny = Limits { max_file_bytes: 10, ..limits };
        assert_eq!(read(&big, Format::Csv, &tiny), Err(FileError::TooLarge { bytes: 100, max: 10 }));
        assert_eq!(read(b"a\n= 3 visits\n", Format::Csv, &Limits::default()).expect("a value").rows.len(), 1);
    }
}
