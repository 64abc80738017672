//! A manager's exports of the demo team: visits as CSV and XLSX (one row each, what happened at
//! the door) and customers and visits as GeoJSON for maps and GIS tools, each checked against the
//! server's own documents.

use std::collections::BTreeSet;

use fieldsync_core::Role;
use fieldsync_core::docs::Document;
use fieldsync_e2e::{MORNING_MS, TestServer, json_answer};
use fieldsync_exchange::table::{Cell, Format, Limits, read};
use serde_json::Value;

const DAY: i64 = 86_400_000;

async fn get(server: &TestServer, token: &str, path: &str) -> (u16, String, Vec<u8>) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", server.url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("the server answers");
    let kind = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (resp.status().as_u16(), kind, resp.bytes().await.expect("body").to_vec())
}

/// The ids of the demo team's visits planned to start in `[from, to)`, from the server's documents.
fn visits_planned_in(server: &TestServer, from: i64, to: i64) -> BTreeSet<String> {
    server
        .server()
        .engine()
        .team_documents("demo")
        .expect("documents")
        .into_iter()
        .filter_map(|d| match d {
            Document::Visit(v) if (from..to).contains(&v.planned_start_ms) => Some(v.id),
            _ => None,
        })
        .collect()
}

fn text(c: &Cell) -> String {
    match c {
        Cell::Text(s) => s.clone(),
        Cell::Number(n) => n.to_string(),
        Cell::Bool(b) => b.to_string(),
        Cell::Empty => String::new(),
    }
}

/// Lyon and around, where every demo customer is: longitude first in GeoJSON.
fn in_lyon(coordinates: &Value) -> bool {
    let (lon, lat) = (coordinates[0].as_f64().unwrap_or(0.0), coordinates[1].as_f64().unwrap_or(0.0));
    (4.5..5.2).contains(&lon) && (45.5..46.0).contains(&lat)
}

#[tokio::test]
async fn a_managers_exports_hold_every_visit_of_the_window_and_every_customer_on_the_map() {
    // 1. The demo team; its manager.
    let server = TestServer::demo().await;
    let maria = server.token("demo", "maria", Role::Manager);
    let expected = visits_planned_in(&server, MORNING_MS - 90 * DAY, MORNING_MS);
    assert!(expected.len() >= 50, "the demo's fortnight of visits: {}", expected.len());

    // 2. Visits as CSV, the last 90 days by default: one row for each, the header first.
    let (status, kind, csv) = get(&server, &maria, "/v1/export/visits").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&csv));
    assert!(kind.starts_with("text/csv"), "{kind}");
    let table = read(&csv, Format::Csv, &Limits::default()).expect("the export reads as a table");
    assert_eq!(table.header, fieldsync_exchange::export::VISIT_HEADER.to_vec());
    let col = |name: &str| table.header.iter().position(|h| h == name).expect(name);
    let ids: BTreeSet<String> = table.rows.iter().map(|r| text(r.get(col("id")))).collect();
    assert_eq!(ids, expected);

    // 3. Each completed visit says when the rep checked in, the server's verdict and the outcome,
    //    as the document holds them.
    let mut completed = 0;
    for row in &table.rows {
        let id = text(row.get(col("id")));
        let Some(Document::Visit(v)) = server.doc("demo", &id) else { panic!("{id} is a visit") };
        assert_eq!(text(row.get(col("rep"))), v.rep);
        let Some(first) = v.checkins.first() else {
            assert_eq!(text(row.get(col("checked_in_at"))), "", "{id}");
            continue;
        };
        completed += 1;
        let at = jiff::Timestamp::from_millisecond(first.device_time_ms).expect("a time").to_string();
        assert_eq!(text(row.get(col("checked_in_at"))), at, "{id}");
        let lat: f64 = text(row.get(col("checkin_lat"))).parse().expect("a latitude");
        assert!((lat - first.lat).abs() < 1e-9, "{id}: {lat} vs {}", first.lat);
        let verdict = text(row.get(col("verification")));
        assert!(["verified", "flagged", "invalid"].contains(&verdict.as_str()), "{id}: {verdict:?}");
        let outcome = v.checkout.as_ref().map(|c| c.outcome.clone()).unwrap_or_default();
        assert_eq!(text(row.get(col("outcome"))), outcome, "{id}");
    }
    assert!(completed >= 20, "{completed} visits with a check-in");

    // 4. The same as a workbook: the same header and rows.
    let (status, kind, xlsx) = get(&server, &maria, "/v1/export/visits?format=xlsx").await;
    assert_eq!(status, 200);
    assert!(kind.contains("spreadsheetml"), "{kind}");
    let book = read(&xlsx, Format::Xlsx, &Limits::default()).expect("the workbook reads");
    assert_eq!(book.header, table.header);
    let book_ids: BTreeSet<String> = book.rows.iter().map(|r| text(r.get(0))).collect();
    assert_eq!(book_ids, expected);

    // 5. As GeoJSON: a point for each visit, where the rep checked in (longitude first), or the
    //    customer's place before any check-in.
    let (status, kind, geo) = get(&server, &maria, "/v1/export/visits?format=geojson").await;
    assert_eq!((status, kind.as_str()), (200, "application/geo+json"));
    let geo: Value = serde_json::from_slice(&geo).expect("GeoJSON is JSON");
    assert_eq!(geo["type"], "FeatureCollection");
    let features = geo["features"].as_array().expect("features");
    let geo_ids: BTreeSet<String> =
        features.iter().map(|f| f["properties"]["id"].as_str().expect("an id").to_string()).collect();
    assert_eq!(geo_ids, expected);
    for f in features {
        assert_eq!(f["geometry"]["type"], "Point");
        assert!(in_lyon(&f["geometry"]["coordinates"]), "{f}");
    }
    let at_checkin = features.iter().filter(|f| f["properties"]["at"] == "checkin").count();
    assert_eq!(at_checkin, completed);

    // 6. A window of its own: exactly the visits planned in it.
    let (from, to) = (MORNING_MS - 7 * DAY, MORNING_MS - 3 * DAY);
    let (status, _, week) =
        get(&server, &maria, &format!("/v1/export/visits?from_ms={from}&to_ms={to}")).await;
    assert_eq!(status, 200);
    let week = read(&week, Format::Csv, &Limits::default()).expect("a table");
    let week_ids: BTreeSet<String> = week.rows.iter().map(|r| text(r.get(0))).collect();
    assert_eq!(week_ids, visits_planned_in(&server, from, to));
    assert!(!week_ids.is_empty() && week_ids.len() < expected.len());

    // 7. Customers as GeoJSON: all 300, on the map of Lyon.
    let (status, _, geo) = get(&server, &maria, "/v1/export/customers?format=geojson").await;
    assert_eq!(status, 200);
    let geo: Value = serde_json::from_slice(&geo).expect("JSON");
    let features = geo["features"].as_array().expect("features");
    assert_eq!(features.len(), 300);
    assert!(features.iter().all(|f| in_lyon(&f["geometry"]["coordinates"])), "longitude first");
    assert!(features.iter().all(|f| f["properties"]["owner_rep"].is_string()));

    // 8. Refusals: a rep, an unknown format, a window backwards or longer than 366 days.
    let alice = server.token("demo", "alice", Role::Rep);
    for (token, path, want) in [
        (&alice, "/v1/export/visits".to_string(), 403),
        (&maria, "/v1/export/visits?format=pdf".to_string(), 400),
        (&maria, format!("/v1/export/visits?from_ms={to}&to_ms={from}"), 400),
        (&maria, format!("/v1/export/visits?from_ms=0&to_ms={}", 400 * DAY), 400),
        (&maria, "/v1/export/customers?format=kml".to_string(), 400),
    ] {
        let (status, _, body) = get(&server, token, &path).await;
        assert_eq!(status, want, "{path}: {}", String::from_utf8_lossy(&body));
        let resp = reqwest::Client::new()
            .get(format!("{}{path}", server.url()))
            .bearer_auth(token)
            .send()
            .await
            .expect("answer");
        let (_, body) = json_answer(resp).await;
        assert!(body["error"].is_string() && body["message"].is_string(), "{body}");
    }
}
