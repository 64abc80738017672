//! One vocabulary on every HTTP surface (ARCHITECTURE.md, "API conventions"): snake_case codes and
//! shapes, tiers written `A`/`B`/`C` wherever they key a figure, figures without floating-point
//! noise. Against the seeded demo team.

use fieldsync_core::Role;
use fieldsync_e2e::TestServer;
use serde_json::Value;

/// Every number in `v` with at most six decimals.
fn assert_rounded(what: &str, v: &Value) {
    match v {
        Value::Number(n) => {
            if let Some(x) = n.as_f64().filter(|_| n.is_f64()) {
                let r = (x * 1e6).round() / 1e6;
                assert!(r == x, "{what}: {x} has more than six decimals");
            }
        }
        Value::Array(items) => items.iter().for_each(|i| assert_rounded(what, i)),
        Value::Object(fields) => fields.values().for_each(|f| assert_rounded(what, f)),
        _ => {}
    }
}

#[tokio::test]
async fn every_surface_speaks_one_vocabulary() {
    let server = TestServer::demo().await;
    let maria = server.add_device("maria-tablet", "demo", "maria", Role::Manager);

    // 1. An audience is a snake_case object, not a Rust enum's name.
    let (status, customer) = maria.get_json("/v1/docs/cust-0001").await;
    assert_eq!(status, 200, "{customer}");
    assert_eq!(customer["audience"]["scope"], "reps", "{customer}");
    assert!(customer["audience"]["reps"].as_array().is_some_and(|r| r.iter().any(|x| x == "bruno")));
    let (_, targets) = maria.get_json("/v1/plan/targets").await;
    let quarter = targets["quarter"].as_str().expect("the plan's quarter");
    let (status, plan) = maria.get_json(&format!("/v1/docs/plan-{quarter}")).await;
    assert_eq!((status, &plan["audience"]), (200, &serde_json::json!({ "scope": "team" })), "{plan}");

    // 2. Tiers key figures as they are written everywhere: A, B, C.
    let (status, shares) =
        maria.get_json("/v1/plan/time-share?from_ms=1790000000000&to_ms=1796000000000").await;
    assert_eq!(status, 200, "{shares}");
    let first = &shares.as_array().expect("reps")[0];
    let keys: Vec<&str> =
        first["minutes_by_tier"].as_object().expect("per tier").keys().map(String::as_str).collect();
    assert_eq!(keys, ["A", "B", "C"], "{first}");
    let (_, seg) = maria.get_json("/v1/plan/segmentation").await;
    assert!(
        seg["assignments"][0]["effective"].as_str().is_some_and(|t| ["A", "B", "C"].contains(&t)),
        "{}",
        seg["assignments"][0]
    );

    // 3. Figures carry no floating-point noise (scores were 125119.15000000001).
    assert_rounded("segmentation", &seg);
    assert_rounded("targets", &targets);
    assert_rounded("time-share", &shares);
    let (_, overdue) = maria.get_json("/v1/plan/overdue").await;
    assert_rounded("overdue", &overdue);

    // 4. Never visited says so: no invented "days overdue". The demo team has both kinds.
    let list = overdue.as_array().expect("list");
    let never = list.iter().filter(|o| o["never_visited"] == true).count();
    assert!(never > 0 && never < list.len(), "{never} of {} never visited", list.len());
    for o in list {
        assert_eq!(o["days_overdue"].is_null(), o["never_visited"] == true, "{o}");
    }
}
