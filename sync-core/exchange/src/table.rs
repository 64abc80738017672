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

use calamine::{DataRef, Reader, Xlsx};
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
}

impl Format {
    /// The format a file name says (`customers.xlsx`), if it says one this reads.
    pub fn from_name(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        match lower.rsplit_once('.').map(|(_, ext)| ext) {
            Some("csv" | "txt") => Some(Format::Csv),
            Some("xlsx" | "xlsm") => Some(Format::Xlsx),
            _ => None,
        }
    }

    /// The format a query or flag names: `csv` or `xlsx`.
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "csv" => Some(Format::Csv),
            "xlsx" => Some(Format::Xlsx),
            _ => None,
        }
    }

    /// Its name in queries, flags and file extensions.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }

    /// Its media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    /// The format the bytes are in: a ZIP container is a workbook, anything else is read as CSV.
    pub fn sniff(bytes: &[u8]) -> Format {
        if bytes.starts_with(b"PK\x03\x04") { Format::Xlsx } else { Format::Csv }
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
    #[error("not a readable XLSX workbook: {reason}")]
    Workbook { reason: String },
}

/// Reads `bytes` as `format`.
pub fn read(bytes: &[u8], format: Format, limits: &Limits) -> Result<Table, FileError> {
    if bytes.len() > limits.max_file_bytes {
        return Err(FileError::TooLarge { bytes: bytes.len(), max: limits.max_file_bytes });
    }
    match format {
        Format::Csv => read_csv(bytes, limits),
        Format::Xlsx => read_xlsx(bytes, limits),
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

/// calamine panics on some damaged workbooks (an arithmetic overflow on a reversed dimension
/// `ref`, found by `tests/fuzz.rs`): a hostile file must be an error, never a crashed request, so
/// its reading is guarded and a panic answers that the workbook is damaged.
fn read_xlsx(bytes: &[u8], limits: &Limits) -> Result<Table, FileError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_xlsx_cells(bytes, limits))).unwrap_or_else(
        |_| Err(FileError::Workbook { reason: "the workbook is damaged (its reader gave up)".into() }),
    )
}

fn read_xlsx_cells(bytes: &[u8], limits: &Limits) -> Result<Table, FileError> {
    let workbook = |e: calamine::XlsxError| FileError::Workbook { reason: e.to_string() };
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| FileError::Workbook { reason: e.to_string() })?;
    let mut unpacked = 0u64;
    for i in 0..archive.len() {
        let part = archive.by_index_raw(i).map_err(|e| FileError::Workbook { reason: e.to_string() })?;
        unpacked = unpacked.saturating_add(part.size());
    }
    if unpacked > limits.max_unpacked_bytes {
        return Err(FileError::Unpacked { bytes: unpacked, max: limits.max_unpacked_bytes });
    }
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
        let cell = match c.value {
            DataRef::Empty => Cell::Empty,
            DataRef::Int(n) => Cell::Number(n as f64),
            DataRef::Float(f) => Cell::Number(f),
            DataRef::Bool(b) => Cell::Bool(b),
            DataRef::String(s) => Cell::Text(s),
            DataRef::SharedString(s) => Cell::Text(s.to_string()),
            DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => Cell::Text(s),
            DataRef::DateTime(d) => Cell::Number(d.as_f64()),
            DataRef::Error(e) => Cell::Text(format!("#{e:?}")),
        };
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

#[cfg(test)]
mod tests {
    use super::*;

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
