//! S.T.A.R. planning over HTTP on the seeded demo team: role-checked reports, a rep's day route, a
//! manager's sub-areas and territory redesign, and the redesign reaching the reps' devices by sync.

use fieldsync_core::Role;
use fieldsync_core::docs::Document;
use fieldsync_e2e::TestServer;
use serde_json::json;

#[tokio::test]
async fn reports_are_role_checked_and_a_rep_sees_only_their_own() {
    let server = TestServer::demo().await;
    let maria = server.add_device("maria-tablet", "demo", "maria", Role::Manager);
    let alice = server.add_device("alice-phone", "demo", "alice", Role::Rep);

    // 1. Segmentation is the manager's: every customer gets a tier, and the Pareto share is there.
    let (status, seg) = maria.get_json("/v1/plan/segmentation").await;
    assert_eq!(status, 200, "{seg}");
    assert_eq!(seg["assignments"].as_array().map(Vec::len), Some(300));
    let share = seg["pareto"]["top20_share_of_potential"].as_f64().expect("share");
    assert!(share > 0.2 && share <= 1.0, "the top 20% hold more than 20% of the potential: {share}");
    assert_eq!(alice.get_json("/v1/plan/segmentation").await.0, 403);

    // 2. Targets: the manager sees every rep, a rep only themself.
    let (_, team) = maria.get_json("/v1/plan/targets").await;
    assert_eq!(team["reps"].as_array().map(Vec::len), Some(5));
    let (status, mine) = alice.get_json("/v1/plan/targets").await;
    assert_eq!(status, 200);
    let reps: Vec<&str> =
        mine["reps"].as_array().expect("reps").iter().filter_map(|r| r["rep"].as_str()).collect();
    assert_eq!(reps, vec!["alice"]);

    // 3. Overdue: a rep's list holds only their customers, most urgent first.
    let (status, overdue) = alice.get_json("/v1/plan/overdue").await;
    assert_eq!(status, 200);
    let list = overdue.as_array().expect("list");
    assert!(!list.is_empty());
    assert!(list.iter().all(|o| o["owner_rep"] == "alice"));
    let urgency: Vec<f64> = list.iter().filter_map(|o| o["urgency"].as_f64()).collect();
    assert!(urgency.windows(2).all(|w| w[0] >= w[1]), "ordered by urgency");
    assert_eq!(alice.get_json("/v1/plan/overdue?rep=bruno").await.0, 403);
}

#[tokio::test]
async fn a_rep_gets_a_feasible_day_route_of_their_own_customers() {
    let server = TestServer::demo().await;
    let alice = server.add_device("alice-phone", "demo", "alice", Role::Rep);
    let (status, day) = alice
        .post_json(
            "/v1/plan/day",
            &json!({ "date": "2026-11-30", "start_lat": 45.7640, "start_lon": 4.8357 }),
        )
        .await;
    assert_eq!(status, 200, "{day}");
    let stops = day["route"]["stops"].as_array().expect("stops");
    assert!(stops.len() >= 3, "a working day of visits: {day}");
    let (start, end) =
        (day["day_start_ms"].as_i64().expect("start"), day["day_end_ms"].as_i64().expect("end"));
    let mut last = start;
    for s in stops {
        let (arr, st, dep) = (
            s["arrival_ms"].as_i64().unwrap(),
            s["start_ms"].as_i64().unwrap(),
            s["depart_ms"].as_i64().unwrap(),
        );
        assert!(arr >= last && st >= arr && dep >= st && dep <= end, "{s}");
        last = dep;
    }
    // Every stop is one of alice's customers, and none twice.
    let ids: Vec<&str> = stops.iter().filter_map(|s| s["id"].as_str()).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
    // (A stop is one of her customers, or a visit already planned for her that day.)
    for id in ids {
        match server.doc("demo", id) {
            Some(Document::Customer(c)) => assert_eq!(c.owner_rep.as_deref(), Some("alice")),
            Some(Document::Visit(v)) => assert_eq!(v.rep, "alice", "{id}"),
            other => panic!("{id}: {other:?}"),
        }
    }
    let (status, _) = alice
        .post_json(
            "/v1/plan/day",
            &json!({ "rep": "bruno", "date": "2026-11-30", "start_lat": 45.76, "start_lon": 4.83 }),
        )
        .await;
    assert_eq!(status, 403, "a rep plans for themself only");
    for report in ["/v1/plan/overdue?rep=bruno", "/v1/plan/time-share?rep=bruno"] {
        let (status, body) = alice.get_json(report).await;
        assert_eq!(status, 403, "{report}: a rep reads their own figures only: {body}");
    }
    let (status, body) = alice
        .post_json("/v1/plan/day", &json!({ "date": "30/11/2026", "start_lat": 45.76, "start_lon": 4.83 }))
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn a_manager_redesigns_territories_and_the_reassignments_reach_the_devices() {
    let server = TestServer::demo().await;
    let maria = server.add_device("maria-tablet", "demo", "maria", Role::Manager);
    let mut alice = server.add_device("alice-phone", "demo", "alice", Role::Rep);
    let mut bruno = server.add_device("bruno-phone", "demo", "bruno", Role::Rep);
    alice.sync().await.expect("alice bootstraps");
    bruno.sync().await.expect("bruno bootstraps");

    // 1. Sub-areas for alice's rotation: five, covering her customers once each.
    let (status, areas) = maria.post_json("/v1/plan/sub-areas", &json!({ "rep": "alice", "n": 5 })).await;
    assert_eq!(status, 200, "{areas}");
    let areas = areas["areas"].as_array().expect("areas");
    assert_eq!(areas.len(), 5);
    let covered: usize = areas.iter().map(|a| a["customer_ids"].as_array().map_or(0, Vec::len)).sum();
    let hers = alice.replica.doc_ids().filter(|id| id.starts_with("cust-")).count();
    assert_eq!(covered, hers);

    // 2. A territory design for the team, balanced within the tolerance asked.
    let (status, design) = maria.post_json("/v1/plan/territories", &json!({ "tolerance": 0.2 })).await;
    assert_eq!(status, 200, "{design}");
    assert_eq!(design["territories"].as_array().map(Vec::len), Some(5));
    assert!(
        design["workload_balance"].as_f64().expect("balance") <= 1.2 + 1e-9,
        "{}",
        design["workload_balance"]
    );
    let moves = design["moves"].as_array().expect("moves").clone();
    let (status, _) = alice.post_json("/v1/plan/territories", &json!({})).await;
    assert_eq!(status, 403);

    // 3. The manager applies it; each rep's phone follows on its next sync.
    let (status, applied) = maria.post_json("/v1/plan/territories/apply", &design).await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["moved_customers"].as_u64(), Some(moves.len() as u64));
    alice.sync().await.expect("alice syncs");
    bruno.sync().await.expect("bruno syncs");
    for m in &moves {
        let id = m["customer_id"].as_str().expect("id");
        let to = m["to"].as_str().expect("to");
        let from = m["from"].as_str();
        if to == "alice" {
            assert!(alice.replica.local(id).is_some(), "{id} reached alice");
        }
        if from == Some("alice") && to != "alice" {
            assert!(alice.replica.local(id).is_none(), "{id} left alice");
        }
        if to == "bruno" {
            assert!(bruno.replica.local(id).is_some(), "{id} reached bruno");
        }
    }
    let owned = |d: &fieldsync_e2e::Device, rep: &str| {
        d.replica
            .doc_ids()
            .filter(|id| id.starts_with("cust-"))
            .filter(
                |id| matches!(d.doc(id), Some(Document::Customer(c)) if c.owner_rep.as_deref() == Some(rep)),
            )
            .count()
    };
    let design_alice = design["territories"]
        .as_array()
        .expect("t")
        .iter()
        .find(|t| t["rep"] == "alice")
        .and_then(|t| t["customer_ids"].as_array().map(Vec::len))
        .expect("alice's territory");
    assert_eq!(owned(&alice, "alice"), design_alice, "alice holds exactly her new territory's customers");
}

#[tokio::test]
async fn a_misspelt_rep_or_an_empty_list_gets_a_typed_4xx_not_an_empty_plan() {
    let server = TestServer::demo().await;
    let maria = server.add_device("maria-tablet", "demo", "maria", Role::Manager);
    let lyon = json!({ "start_lat": 45.76, "start_lon": 4.83 });
    let day = |rep: &str| {
        let mut b = lyon.clone();
        b["rep"] = json!(rep);
        b["date"] = json!("2026-11-30");
        b
    };

    // 1. A rep the team does not have: 404 unknown_rep on every report and plan that names one.
    let week_of_zed = json!({ "date": "2026-11-30", "reps": [{ "rep": "zed", "lat": 45.76, "lon": 4.83 }] });
    let answers = [
        ("overdue", maria.get_json("/v1/plan/overdue?rep=zed").await),
        ("time-share", maria.get_json("/v1/plan/time-share?rep=zed").await),
        ("day", maria.post_json("/v1/plan/day", &day("zed")).await),
        ("week", maria.post_json("/v1/plan/week", &week_of_zed).await),
        ("sub-areas", maria.post_json("/v1/plan/sub-areas", &json!({ "rep": "zed", "n": 3 })).await),
    ];
    for (what, (status, body)) in answers {
        assert_eq!((status, body["error"].as_str()), (404, Some("unknown_rep")), "{what}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains("zed")), "{what}: {body}");
    }

    // 2. A week for nobody is a mistake, not 300 rows of no_eligible_rep.
    let (status, body) = maria.post_json("/v1/plan/week", &json!({ "date": "2026-11-30", "reps": [] })).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("invalid_request")), "{body}");

    // 3. An inverted window is refused, not answered with zeros.
    let (status, body) =
        maria.get_json("/v1/plan/time-share?from_ms=1796029200000&to_ms=1796000000000").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");

    // 4. The same requests for a rep who exists are answered.
    assert_eq!(maria.get_json("/v1/plan/overdue?rep=alice").await.0, 200);
    let (status, body) = maria.post_json("/v1/plan/day", &day("alice")).await;
    assert_eq!(status, 200, "{body}");
}
