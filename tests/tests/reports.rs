//! The manager's reports over HTTP on the seeded demo team: computed from the report index, equal
//! to a recomputation over the stored documents, up to date after a device syncs, role-checked,
//! and every bad query a typed 4xx.

use fieldsync_core::Role;
use fieldsync_core::geo::{CheckinFix, LatLon, VerifyConfig};
use fieldsync_core::index::IndexRow;
use fieldsync_e2e::{MORNING_MS, TestServer};
use fieldsync_planning::reports::{ReportWindow, visit_report};

const DAY_MS: i64 = 86_400_000;
const TEAM: &str = "demo";

fn window_query(from_ms: i64, to_ms: i64) -> String {
    format!("from_ms={from_ms}&to_ms={to_ms}")
}

/// The visit report recomputed from the stored documents, as the index would give it.
fn from_documents(server: &TestServer, window: &ReportWindow) -> serde_json::Value {
    let docs = server.server().engine().team_documents(TEAM).expect("documents");
    let rows: Vec<IndexRow> = docs.iter().filter_map(|d| IndexRow::of(d, 0)).collect();
    fieldsync_core::figures::to_json(&visit_report(&rows, window, MORNING_MS)).expect("json")
}

#[tokio::test]
async fn a_manager_reviews_plan_against_execution_from_the_index() {
    let server = TestServer::demo().await;
    let maria = server.add_device("maria-tablet", TEAM, "maria", Role::Manager);
    let (from, to) = (MORNING_MS - 15 * DAY_MS, MORNING_MS + DAY_MS);

    // 1. The last two weeks and the day ahead: the seed's 50 past visits (44 done, a few check-ins
    // flagged, 6 nobody went to) and the 20 of its working week that start before tomorrow morning.
    let (status, report) = maria.get_json(&format!("/v1/reports/visits?{}", window_query(from, to))).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["planned"], 70, "{report}");
    assert_eq!(report["completed"], 44);
    assert_eq!(report["missed"], 6);
    assert_eq!(report["completion_rate"], 0.628571);
    let flagged = report["flagged_checkins"].as_array().expect("flagged list");
    assert!(
        !flagged.is_empty() && flagged.iter().all(|f| f["codes"].as_array().is_some_and(|c| !c.is_empty()))
    );
    assert_eq!(report["per_rep"].as_array().map(Vec::len), Some(5));
    // The same figures as a recomputation over the documents.
    let window = ReportWindow { from_ms: from, to_ms: to, rep: None };
    assert_eq!(report, from_documents(&server, &window));

    // 2. Alice completes a visit today and syncs: the next report counts it.
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;
    let customer =
        alice.replica.visits().first().map(|v| v.customer_id.clone()).expect("one of her customers");
    let c = alice.replica.customer(&customer).expect("held");
    let at = MORNING_MS + 3_600_000;
    alice.replica.plan_visit("v-today", &customer, at, at + 1_800_000, MORNING_MS).expect("plan");
    let fix = CheckinFix {
        point: LatLon { lat: c.location.lat, lon: c.location.lon },
        accuracy_m: 8.0,
        device_time_ms: MORNING_MS,
        mock_location: false,
    };
    alice
        .replica
        .check_in("v-today", "ci-today", fix, MORNING_MS, &VerifyConfig::default())
        .expect("check in");
    alice.replica.check_out("v-today", "order", "", MORNING_MS + 60_000, MORNING_MS + 60_000).expect("out");
    alice.sync().await.expect("sync");
    let (_, after) = maria.get_json(&format!("/v1/reports/visits?{}", window_query(from, to))).await;
    assert_eq!((after["planned"].as_u64(), after["completed"].as_u64()), (Some(71), Some(45)), "{after}");
    assert_eq!(after, from_documents(&server, &window));

    // 3. The customer report: tiers, funnel, A coverage; alice's own on her phone's token.
    let (status, customers) = maria.get_json("/v1/reports/customers").await;
    assert_eq!(status, 200, "{customers}");
    let tiers = &customers["customers_by_tier"];
    assert_eq!(
        tiers["A"].as_u64().unwrap() + tiers["B"].as_u64().unwrap() + tiers["C"].as_u64().unwrap(),
        300
    );
    let funnel: u64 =
        customers["funnel"].as_array().expect("funnel").iter().filter_map(|s| s["customers"].as_u64()).sum();
    assert_eq!(funnel, 300);
    assert!(customers["a_coverage"].as_f64().is_some_and(|r| (0.0..=1.0).contains(&r)));
    // 4. Effort: time per tier against the 80/20 target, return per tier and territory, attainment.
    let (status, effort) = maria.get_json(&format!("/v1/reports/effort?{}", window_query(from, to))).await;
    assert_eq!(status, 200, "{effort}");
    let minutes: f64 = ["A", "B", "C"].iter().map(|t| effort["minutes_by_tier"][t].as_f64().unwrap()).sum();
    assert!(minutes > 0.0, "{effort}");
    let share = effort["focus_share"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&share) && effort["focus_target"] == 0.8, "{effort}");
    let hours: f64 = effort["by_territory"]
        .as_object()
        .expect("territories")
        .values()
        .map(|r| r["visit_hours"].as_f64().unwrap())
        .sum();
    assert!(
        (hours * 60.0 - minutes).abs() < 1e-3,
        "every visit hour is in one territory: {hours} h vs {minutes} min"
    );
    assert_eq!(effort["attainment"].as_array().map(Vec::len), Some(18), "3 team quotas and 3 per rep");
    // Alice wins her customer's opportunity: the effort report counts it, at its potential.
    let stage_before = c.opportunity_stage.clone();
    let target = if stage_before == "won" { "negotiation" } else { "won" };
    alice.replica.update_customer_status(&customer, None, Some(target.into()), MORNING_MS).expect("stage");
    if target != "won" {
        alice.sync().await.expect("sync");
        alice.replica.update_customer_status(&customer, None, Some("won".into()), MORNING_MS).expect("won");
    }
    alice.sync().await.expect("sync");
    let (_, effort) = maria.get_json(&format!("/v1/reports/effort?{}", window_query(from, to))).await;
    let won: u64 = ["A", "B", "C"].iter().map(|t| effort["by_tier"][t]["won"].as_u64().unwrap()).sum();
    let won_value: f64 =
        ["A", "B", "C"].iter().map(|t| effort["by_tier"][t]["won_value"].as_f64().unwrap()).sum();
    assert_eq!((won, won_value), (1, c.potential_value), "{}", effort["by_tier"]);

    let (status, mine) = alice.get_json("/v1/reports/customers").await;
    assert_eq!(status, 200, "{mine}");
    let mine_total: u64 =
        mine["funnel"].as_array().expect("funnel").iter().filter_map(|s| s["customers"].as_u64()).sum();
    assert_eq!(mine_total, 61, "alice's customers only");
}

#[tokio::test]
async fn reports_are_role_checked_and_bad_queries_get_a_typed_4xx() {
    let server = TestServer::demo().await;
    let maria = server.add_device("maria-tablet", TEAM, "maria", Role::Manager);
    let alice = server.add_device("alice-phone", TEAM, "alice", Role::Rep);
    let (from, to) = (MORNING_MS - 15 * DAY_MS, MORNING_MS + DAY_MS);

    // A rep reads their own figures, and only those.
    let (status, mine) = alice.get_json(&format!("/v1/reports/visits?{}", window_query(from, to))).await;
    assert_eq!(status, 200, "{mine}");
    let reps: Vec<&str> =
        mine["per_rep"].as_array().expect("per rep").iter().filter_map(|r| r["rep"].as_str()).collect();
    assert_eq!(reps, ["alice"]);
    for path in ["/v1/reports/visits?rep=bruno", "/v1/reports/customers?rep=bruno"] {
        let (status, body) = alice.get_json(path).await;
        assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")), "{path}: {body}");
    }

    // Bad queries: an unknown rep, an inverted window, ten years, garbage.
    let cases = [
        ("/v1/reports/visits?rep=zed".to_string(), 404, "unknown_rep"),
        (format!("/v1/reports/visits?{}", window_query(to, from)), 400, "invalid_request"),
        (
            format!("/v1/reports/customers?{}", window_query(MORNING_MS - 3650 * DAY_MS, MORNING_MS)),
            400,
            "invalid_request",
        ),
        ("/v1/reports/visits?from_ms=yesterday".to_string(), 400, "bad_request"),
        ("/v1/reports/visits?rep=a%2Fb".to_string(), 400, "invalid_request"),
    ];
    for (path, status, code) in cases {
        let (got, body) = maria.get_json(&path).await;
        assert_eq!((got, body["error"].as_str()), (status, Some(code)), "{path}: {body}");
    }

    // Another team sees nothing of this one.
    let stranger = server.add_device("zz-phone", "other-team", "zed", Role::Manager);
    let (status, theirs) = stranger.get_json(&format!("/v1/reports/visits?{}", window_query(from, to))).await;
    assert_eq!((status, theirs["planned"].as_u64()), (200, Some(0)), "{theirs}");
}
