//! Importing a team's customer workbook into the real server's sled store.
//!
//! ```text
//! cargo bench -p fieldsync-e2e --bench import                  # 50 000 rows, XLSX, ODS, CSV
//! cargo bench -p fieldsync-e2e --bench import -- --rows 5000
//! ```
//!
//! A workbook of N customers (Chinese headers, ids, addresses, positions around Lyon, potential
//! and probability, half of them in a territory named by its name) is built in memory, imported
//! into an empty team (every row a new customer, written in durable batches), then imported again
//! (every row unchanged, nothing written). stdout: one JSON line per step with its wall time and
//! what the report counted; the XLSX and CSV forms of the same rows are timed separately.

use std::time::Instant;

use fieldsync_core::docs::{Territory, TierThresholds};
use fieldsync_exchange::table::{Format, Limits};
use fieldsync_server::import::{ImportRequest, import_customers};
use fieldsync_server::{Server, ServerConfig};

const TEAM: &str = "bench";

fn rows(n: usize) -> Vec<[String; 8]> {
    (0..n)
        .map(|i| {
            let (lat, lon) = (45.70 + (i % 300) as f64 * 0.0004, 4.78 + (i / 300) as f64 * 0.0004);
            [
                format!("K{i:06}"),
                format!("Client {i}"),
                format!("{} rue de la République, Lyon", i % 200 + 1),
                format!("{lat:.6}"),
                format!("{lon:.6}"),
                format!("{}", (i * 37) % 90_000 + 1_000),
                format!("{:.2}", (i % 90) as f64 / 100.0 + 0.05),
                if i % 2 == 0 { "Lyon Nord".into() } else { String::new() },
            ]
        })
        .collect()
}

const HEADER: [&str; 8] = ["客户编号", "客户名称", "地址", "纬度", "经度", "潜力", "成交概率", "区域"];

fn xlsx(rows: &[[String; 8]]) -> Vec<u8> {
    fieldsync_e2e::workbook(&HEADER, rows)
}

fn ods(rows: &[[String; 8]]) -> Vec<u8> {
    use fieldsync_exchange::testing::{ods, ods_row, ods_table};
    let sheet: Vec<String> = std::iter::once(ods_row(&HEADER))
        .chain(rows.iter().map(|r| ods_row(&r.iter().map(String::as_str).collect::<Vec<_>>())))
        .collect();
    ods(&[ods_table("客户", &sheet)])
}

fn csv(rows: &[[String; 8]]) -> Vec<u8> {
    let mut out = HEADER.join(",");
    out.push('\n');
    for row in rows {
        out.push_str(&row.iter().map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out.into_bytes()
}

fn run(format: Format, bytes: &[u8], n: usize) {
    let dir = tempfile::tempdir().expect("data dir");
    let server = Server::open(ServerConfig::dev(dir.path())).expect("open");
    let territory = Territory::new("t-north", "Lyon Nord", vec!["alice".into()]);
    let plan = fieldsync_core::docs::Plan::new(
        "plan",
        "2026-Q4",
        fieldsync_core::docs::Cadence { a_days: 14, b_days: 28, c_days: 60 },
        TierThresholds { a_min_score: 30_000.0, b_min_score: 10_000.0 },
    );
    server.engine().write_as_server(TEAM, &[territory.into(), plan.into()], 0).expect("team");
    for step in ["first", "again"] {
        let req = ImportRequest {
            team: TEAM,
            bytes,
            format: Some(format),
            dry_run: false,
            by: "bench",
            now_ms: 0,
            limits: Limits::default(),
        };
        let started = Instant::now();
        let report = import_customers(server.engine(), &req, &mut |_, _| {}).expect("imports");
        let wall_ms = started.elapsed().as_millis();
        assert!(report.refused.is_empty(), "{:?}", &report.refused[..report.refused.len().min(3)]);
        println!(
            "{{\"scenario\":\"import_{}_{step}\",\"rows\":{n},\"file_bytes\":{},\"wall_ms\":{wall_ms},\
             \"created\":{},\"unchanged\":{},\"store_bytes\":{}}}",
            format.as_str(),
            bytes.len(),
            report.created,
            report.unchanged,
            dir_size(dir.path()),
        );
    }
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    println!("{}", fieldsync_e2e::machine_line());
    let mut n = 50_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--rows" {
            n = args.next().and_then(|v| v.parse().ok()).expect("--rows takes a number");
        }
    }
    let rows = rows(n);
    run(Format::Xlsx, &xlsx(&rows), n);
    run(Format::Ods, &ods(&rows), n);
    run(Format::Csv, &csv(&rows), n);
}
