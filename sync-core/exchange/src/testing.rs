//! OpenDocument spreadsheets built by hand for tests (no crate writes ODS): the `mimetype` entry
//! first and stored, a manifest, and `content.xml` with the tables given as raw XML, so a test can
//! write any repetition attribute a hostile file would.

use std::io::Write as _;

/// A table row of string cells (numbers, where a cell parses as one).
pub fn ods_row(cells: &[&str]) -> String {
    let mut row = String::from("<table:table-row>");
    for c in cells {
        if c.is_empty() {
            row.push_str("<table:table-cell/>");
        } else if let Ok(n) = c.parse::<f64>() {
            row.push_str(&format!(
                r#"<table:table-cell office:value-type="float" office:value="{n}"><text:p>{c}</text:p></table:table-cell>"#
            ));
        } else {
            let text = c.replace('&', "&amp;").replace('<', "&lt;");
            row.push_str(&format!(
                r#"<table:table-cell office:value-type="string"><text:p>{text}</text:p></table:table-cell>"#
            ));
        }
    }
    row.push_str("</table:table-row>");
    row
}

/// A table named `name` of `rows` (each row's XML, as [`ods_row`] writes them or raw).
pub fn ods_table(name: &str, rows: &[String]) -> String {
    format!(r#"<table:table table:name="{name}">{}</table:table>"#, rows.concat())
}

/// An ODS file of `tables`.
pub fn ods(tables: &[String]) -> Vec<u8> {
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet>{}</office:spreadsheet></office:body></office:document-content>"#,
        tables.concat()
    );
    let manifest = r#"<?xml version="1.0" encoding="UTF-8"?>
<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut put = |name: &str, opts, bytes: &[u8]| {
        zip.start_file(name, opts).expect("a zip entry");
        zip.write_all(bytes).expect("written");
    };
    put("mimetype", stored, b"application/vnd.oasis.opendocument.spreadsheet");
    put("META-INF/manifest.xml", deflated, manifest.as_bytes());
    put("content.xml", deflated, content.as_bytes());
    zip.finish().expect("the zip closes").into_inner()
}
