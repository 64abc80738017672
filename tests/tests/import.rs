//! Importing a team's customers from the spreadsheet they start from (issue 9, item 1): an XLSX
//! with Chinese headers built here, imported through the server's one import path, reaching the
//! rep's phone through sync; imported again (nothing changes) and changed (only what changed, a
//! rep's note kept); and malformed files — truncated, GBK, a million columns, formulas, wrong
//! types — each a clear error or report, with nothing written.

use fieldsync_core::Role;
use fieldsync_core::docs::{Cadence, Document, Plan, Territory, Tier, TierThresholds};
use fieldsync_core::storage::Storage;
use fieldsync_e2e::fixtures::{replace_notes, territory_over};
use fieldsync_e2e::{MORNING_MS, TestServer, customer_of};
use fieldsync_exchange::import::Report;
use fieldsync_exchange::table::{FileError, Format, Limits};
use fieldsync_server::import::{ImportError, ImportRequest, import_customers};

const TEAM: &str = "acme";
const HEADER: [&str; 8] = ["客户编号", "客户名称", "地址", "纬度", "经度", "潜力", "成交概率", "区域"];

fn team() -> Vec<Document> {
    let north = territory_over("t-north", "Lyon Nord", &["alice"], (45.76, 4.80), (45.80, 4.88));
    let south = Territory::new("t-south", "Lyon Sud", vec!["bruno".into()]);
    let cadence = Cadence { a_days: 14, b_days: 28, c_days: 60 };
    let thresholds = TierThresholds { a_min_score: 30_000.0, b_min_score: 10_000.0 };
    vec![north.into(), south.into(), Plan::new("plan-q4", "2026-Q4", cadence, thresholds).into()]
}

/// A workbook of `rows` under the Chinese header.
fn workbook(rows: &[[&str; 8]]) -> Vec<u8> {
    fieldsync_e2e::workbook(&HEADER, rows)
}

fn rows() -> Vec<[&'static str; 8]> {
    vec![
        ["k1", "Boulangerie Martin", "1 rue A, Lyon", "45.77", "4.83", "100000", "0.5", ""],
        ["k2", "Tabac du Sud", "2 rue B, Lyon", "45.70", "4.83", "12000", "50%", "Lyon Sud"],
        ["k3", "Café Nord", "3 rue C, Lyon", "45.79", "4.85", "500", "0.1", ""],
    ]
}

fn import(
    server: &TestServer,
    bytes: &[u8],
    format: Option<Format>,
    dry_run: bool,
) -> Result<Report, ImportError> {
    let req = ImportRequest {
        team: TEAM,
        bytes,
        format,
        dry_run,
        by: "maria",
        now_ms: MORNING_MS,
        limits: Limits::default(),
    };
    let mut calls = 0;
    let report = import_customers(server.server().engine(), &req, &mut |_, _| calls += 1);
    if let Ok(r) = &report {
        assert_eq!(calls > 0, r.written, "progress is reported when something is written");
    }
    report
}

fn feed_head(server: &TestServer) -> u64 {
    server.server().engine().storage().feed_head(TEAM).expect("head")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teams_workbook_reaches_the_phones_and_importing_it_again_changes_only_what_changed() {
    // 1. The team's territories and plan; alice's phone is synced (no customers yet).
    let server = TestServer::seeded(TEAM, &team()).await;
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;

    // 2. The workbook: three customers, two placed in alice's territory by their point alone.
    let book = workbook(&rows());
    let report =
        tokio::task::block_in_place(|| import(&server, &book, Some(Format::Xlsx), false)).expect("imports");
    assert_eq!((report.created, report.refused.len(), report.written), (3, 0, true), "{report:?}");
    let k1 = customer_of(server.doc(TEAM, "k1"));
    assert_eq!(
        (k1.territory.as_deref(), k1.tier, k1.close_probability),
        (Some("t-north"), Some(Tier::A), 0.5)
    );
    assert_eq!(customer_of(server.doc(TEAM, "k2")).territory.as_deref(), Some("t-south"));
    assert_eq!(customer_of(server.doc(TEAM, "k2")).close_probability, 0.5, "50% is 0.5");

    // 3. Alice's next sync brings her two, not bruno's.
    alice.sync().await.expect("sync");
    let held: Vec<&String> = alice.replica.doc_ids().filter(|id| id.starts_with('k')).collect();
    assert_eq!(held, ["k1", "k3"]);
    alice.replica.update("k1", MORNING_MS, replace_notes("met the owner")).expect("note");
    alice.sync().await.expect("the note goes up");

    // 4. The same file again: nothing changes, nothing is written to the feed.
    let head = feed_head(&server);
    let again = tokio::task::block_in_place(|| import(&server, &book, None, false)).expect("imports");
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 3), "{again:?}");
    assert_eq!(feed_head(&server), head, "an unchanged import writes nothing");

    // 5. k1 moved down the street: only its address changes, alice's note stays, and her phone
    //    learns it at the next sync.
    let mut moved = rows();
    moved[0][2] = "9 rue Z, Lyon";
    let changed =
        tokio::task::block_in_place(|| import(&server, &workbook(&moved), None, false)).expect("imports");
    assert_eq!((changed.created, changed.updated, changed.unchanged), (0, 1, 2), "{changed:?}");
    alice.sync().await.expect("sync");
    let k1 = customer_of(alice.doc("k1"));
    assert_eq!((k1.address.as_str(), k1.notes.as_str()), ("9 rue Z, Lyon", "met the owner"));
    fieldsync_e2e::assert_holds_exactly_its_scope(&server, TEAM, &[&alice]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_file_is_a_clear_error_and_writes_nothing() {
    let server = TestServer::seeded(TEAM, &team()).await;
    let head = feed_head(&server);
    let run = |bytes: &[u8], format| tokio::task::block_in_place(|| import(&server, bytes, format, false));

    // 1. A workbook cut in half (a download that stopped).
    let book = workbook(&rows());
    let cut = run(&book[..book.len() / 2], Some(Format::Xlsx));
    assert!(matches!(cut, Err(ImportError::File(FileError::Workbook { .. }))), "{cut:?}");

    // 1b. A workbook that unpacks to more than the import reads (checked before unpacking).
    let small = Limits { max_unpacked_bytes: 1_000, ..Limits::default() };
    let req = ImportRequest {
        team: TEAM,
        bytes: &book,
        format: None,
        dry_run: false,
        by: "maria",
        now_ms: 0,
        limits: small,
    };
    let bomb =
        tokio::task::block_in_place(|| import_customers(server.server().engine(), &req, &mut |_, _| {}));
    assert!(matches!(bomb, Err(ImportError::File(FileError::Unpacked { .. }))), "{bomb:?}");

    // 2. A CSV saved in GBK by an older Excel.
    let gbk: &[u8] =
        b"\xbf\xcd\xbb\xa7\xc3\xfb\xb3\xc6,\xce\xb3\xb6\xc8,\xbe\xad\xb6\xc8\n\xb2\xe2,45.7,4.8\n";
    let gbk = run(gbk, Some(Format::Csv));
    assert!(matches!(gbk, Err(ImportError::File(FileError::NotUtf8 { line: 1 }))), "{gbk:?}");

    // 3. A row of a million columns.
    let mut wide = String::from("name,lat,lon\nx,45.7,4.8");
    wide.push_str(&",".repeat(1_000_000));
    let wide = run(wide.as_bytes(), None);
    assert!(matches!(wide, Err(ImportError::File(FileError::TooManyColumns { line: 2, .. }))), "{wide:?}");

    // 4. A workbook whose potential is a formula.
    let mut formula = rust_xlsxwriter::Workbook::new();
    let sheet = formula.add_worksheet();
    for (c, h) in ["name", "lat", "lon", "potential"].iter().enumerate() {
        sheet.write_string(0, c as u16, *h).expect("header");
    }
    sheet.write_string(1, 0, "Boulangerie").expect("cell");
    sheet.write_number(1, 1, 45.7).expect("cell");
    sheet.write_number(1, 2, 4.8).expect("cell");
    sheet.write_formula(1, 3, "=B2*1000").expect("formula");
    let formula = run(&formula.save_to_buffer().expect("xlsx"), None);
    assert!(
        matches!(formula, Err(ImportError::File(FileError::Formula { ref cell, .. })) if cell == "D2"),
        "{formula:?}"
    );

    // 5. Wrong types: the good row is not written either, and the report names the bad one.
    let mut typed = rows();
    typed[1][3] = "north";
    let report = run(&workbook(&typed), None).expect("a report");
    assert!(!report.written, "{report:?}");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!((report.refused[0].line, report.refused[0].column.as_deref()), (3, Some("纬度")));

    // 6. A dry run of the good file reports three new customers and writes none.
    let dry = tokio::task::block_in_place(|| import(&server, &book, None, true)).expect("a report");
    assert_eq!((dry.created, dry.written), (3, false));

    assert_eq!(feed_head(&server), head, "nothing was written");
    assert!(server.doc(TEAM, "k1").is_none());
}

async fn post_import(
    server: &TestServer,
    token: &str,
    query: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/import{query}", server.url()))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("the server answers");
    fieldsync_e2e::json_answer(resp).await
}

async fn export(server: &TestServer, token: &str, query: &str) -> (u16, Vec<u8>) {
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/export/customers{query}", server.url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("the server answers");
    (resp.status().as_u16(), resp.bytes().await.expect("the body").to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_imports_and_exports_over_http_her_own_team_only_and_a_rep_cannot() {
    // 1. Two teams; maria manages acme, olga manages globex.
    let server = TestServer::seeded(TEAM, &team()).await;
    server.seed("globex", &team());
    let maria = server.token(TEAM, "maria", Role::Manager);
    let olga = server.token("globex", "olga", Role::Manager);
    let alice = server.token(TEAM, "alice", Role::Rep);
    let book = workbook(&rows());

    // 2. A rep may not import; a dry run writes nothing; a bad format parameter is a 400.
    let (status, body) = post_import(&server, &alice, "", book.clone()).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, body) = post_import(&server, &maria, "?dry_run=true", book.clone()).await;
    assert_eq!(
        (status, body["created"].as_u64(), body["written"].as_bool()),
        (200, Some(3), Some(false)),
        "{body}"
    );
    let (status, _) = post_import(&server, &maria, "?format=numbers", book.clone()).await;
    assert_eq!(status, 400);
    let (status, body) = post_import(&server, &maria, "?format=ods", book.clone()).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("invalid_file")), "an XLSX is no ODS: {body}");
    // The same sheet saved by LibreOffice (ODS, sniffed without a format): the same dry run.
    use fieldsync_exchange::testing::{ods, ods_row, ods_table};
    let sheet: Vec<String> =
        std::iter::once(ods_row(&HEADER)).chain(rows().iter().map(|r| ods_row(r))).collect();
    let (status, body) =
        post_import(&server, &maria, "?dry_run=true", ods(&[ods_table("客户", &sheet)])).await;
    assert_eq!(
        (status, body["created"].as_u64(), body["written"].as_bool()),
        (200, Some(3), Some(false)),
        "{body}"
    );
    assert!(server.doc(TEAM, "k1").is_none());

    // 3. The import writes into maria's team, not olga's; the same body again changes nothing.
    let (status, body) = post_import(&server, &maria, "", book.clone()).await;
    assert_eq!((status, body["created"].as_u64()), (200, Some(3)), "{body}");
    assert!(server.doc(TEAM, "k1").is_some() && server.doc("globex", "k1").is_none());
    let (_, again) = post_import(&server, &maria, "", book.clone()).await;
    assert_eq!(again["unchanged"].as_u64(), Some(3), "{again}");

    // 4. A refused row: 422 with the report naming it, a request id, and nothing written.
    let head = server.server().engine().storage().feed_head("globex").expect("head");
    let csv = "name,lat,lon\nok,45.7,4.8\nbad,north,4.8\n".as_bytes().to_vec();
    let (status, body) = post_import(&server, &olga, "?format=csv", csv).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("rows_refused")), "{body}");
    assert_eq!(body["report"]["refused"][0]["line"].as_u64(), Some(3), "{body}");
    assert!(body["request_id"].is_string(), "{body}");
    assert_eq!(server.server().engine().storage().feed_head("globex").expect("head"), head);

    // 5. Fixed, olga's file goes into globex only.
    let csv = "id,name,lat,lon\ng1,ok,45.7,4.8\n".as_bytes().to_vec();
    let (status, body) = post_import(&server, &olga, "?format=csv", csv).await;
    assert_eq!((status, body["created"].as_u64()), (200, Some(1)), "{body}");
    assert!(server.doc("globex", "g1").is_some() && server.doc(TEAM, "g1").is_none());

    // 6. Each manager's export holds her team's customers only, and imports back unchanged, in
    //    both formats; a rep may not export.
    for format in ["xlsx", "csv"] {
        let (status, file) = export(&server, &maria, &format!("?format={format}")).await;
        assert_eq!(status, 200);
        let (status, body) = post_import(&server, &maria, &format!("?format={format}"), file).await;
        assert_eq!(
            (status, body["unchanged"].as_u64(), body["updated"].as_u64()),
            (200, Some(3), Some(0)),
            "{format}: {body}"
        );
    }
    let olgas = String::from_utf8(export(&server, &olga, "").await.1).expect("csv");
    assert!(olgas.contains("g1") && !olgas.contains("k1"), "{olgas}");
    assert_eq!(export(&server, &alice, "").await.0, 403);

    // 7. A file that is not one is a 422 invalid_file; a body past the bound a 413.
    let (status, body) = post_import(&server, &olga, "?format=xlsx", b"not a zip".to_vec()).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("invalid_file")), "{body}");
    // (Declared, not sent: the server answers before reading a byte of it.)
    use tokio::io::AsyncWriteExt as _;
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.expect("connect");
    let head = format!(
        "POST /v1/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {olga}\r\nContent-Length: {}\r\n\r\n",
        65 * 1024 * 1024
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let resp = fieldsync_e2e::read_raw_response(&mut s, std::time::Duration::from_secs(10))
        .await
        .expect("an answer");
    assert_eq!(resp.status, 413);
}
