//! Hostile reps and strangers (issue 8, and issue 7 part 4): requests built to crash, starve or
//! probe the server, sent through the real HTTP path of a real server on a loopback port. Each
//! test sends the attack, checks the typed JSON refusal, and checks the server still serves others.

use fieldsync_core::Role;
use fieldsync_core::planning::areas::{AreaConfig, TerritoryConfig};
use fieldsync_e2e::{Device, MORNING_MS, TestServer};
use serde_json::{Value, json};

async fn demo() -> TestServer {
    let server = TestServer::start().await;
    fieldsync_server::seed::seed_demo(server.server().engine(), 42, MORNING_MS)
        .expect("seed")
        .expect("seeded");
    server
}

/// The body is the typed JSON error: a snake_case `error` code and a `message` for people.
fn assert_json_error(what: &str, status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{what}: {body}");
    assert_eq!(body["error"], code, "{what}: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
}

fn is_json_error(status: u16, body: &Value, expected_status: u16, code: &str) -> bool {
    status == expected_status
        && body["error"] == code
        && body["message"].as_str().is_some_and(|m| !m.is_empty())
}

/// `/healthz` answers and another rep's full sync goes through.
async fn others_are_still_served(server: &TestServer, who: &str) {
    let probe = server.add_device(&format!("{who}-probe"), "demo", who, Role::Rep);
    let (status, body) = probe.get_json("/healthz").await;
    assert_eq!((status, &body["status"]), (200, &json!("ok")), "{body}");
    let mut phone = server.add_device(&format!("{who}-phone-{}", rand_suffix()), "demo", who, Role::Rep);
    let outcome = phone.sync().await.expect("another rep's sync still succeeds");
    assert!(outcome.rounds >= 1);
    assert!(phone.replica.doc_ids().next().is_some(), "{who} received their documents");
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn area_config(edit: impl FnOnce(&mut Value)) -> Value {
    let mut cfg = serde_json::to_value(AreaConfig::default()).expect("config as json");
    edit(&mut cfg);
    cfg
}

#[tokio::test]
async fn a_rep_asking_for_four_billion_restarts_gets_422_and_the_server_keeps_serving() {
    let server = demo().await;
    let alice = server.add_device("alice-phone", "demo", "alice", Role::Rep);
    let crash = json!({ "n": 5, "config": area_config(|c| c["restarts"] = json!(u32::MAX)) });
    // Sent alongside the other reps' work: it must not take the process (and them) down.
    let hostile = {
        let url = format!("{}/v1/plan/sub-areas", alice.url);
        let http = alice.http.clone();
        let token = alice.token.clone();
        tokio::spawn(async move {
            let resp = http
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(crash.to_string())
                .send()
                .await
                .expect("POST");
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.unwrap_or_default();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
        })
    };
    others_are_still_served(&server, "bruno").await;
    let (status, body) = hostile.await.expect("request task");
    assert_json_error("restarts = u32::MAX", status, &body, 422, "invalid_request");
    assert!(body["message"].as_str().unwrap_or_default().contains("restarts"), "{body}");
    others_are_still_served(&server, "bruno").await;
}

/// Every client-supplied knob of the planning endpoints has a bound, checked before any work.
#[tokio::test]
async fn every_planning_knob_out_of_bounds_gets_a_typed_4xx_before_any_work() {
    let server = demo().await;
    let alice = server.add_device("alice-phone", "demo", "alice", Role::Rep);
    let maria = server.add_device("maria-tablet", "demo", "maria", Role::Manager);
    let day = |edit: &dyn Fn(&mut Value)| {
        let mut b = json!({ "date": "2026-11-30", "start_lat": 45.7640, "start_lon": 4.8357 });
        edit(&mut b);
        b
    };
    let many_reps: Vec<Value> =
        (0..5000).map(|i| json!({ "rep": format!("rep-{i}"), "lat": 45.76, "lon": 4.83 })).collect();
    let many_bases: Vec<Value> = (0..5000)
        .map(|i| json!({ "rep": format!("rep-{i}"), "home": { "lat": 45.76, "lon": 4.83 } }))
        .collect();
    let mut territory_cfg = serde_json::to_value(TerritoryConfig::default()).expect("json");
    territory_cfg["restarts"] = json!(u32::MAX);
    let posts: Vec<(&str, &str, &Device, Value)> = vec![
        (
            "sub-areas max_iterations",
            "/v1/plan/sub-areas",
            &alice,
            json!({ "n": 5, "config": area_config(|c| c["max_iterations"] = json!(u32::MAX)) }),
        ),
        ("sub-areas n", "/v1/plan/sub-areas", &alice, json!({ "n": 1_000_000_000u64 })),
        (
            "sub-areas tolerance",
            "/v1/plan/sub-areas",
            &alice,
            json!({ "n": 5, "config": area_config(|c| c["tolerance"] = json!(1e300)) }),
        ),
        (
            "sub-areas compactness weight",
            "/v1/plan/sub-areas",
            &alice,
            json!({ "n": 5, "config": area_config(|c| c["compactness_weight"] = json!(1e300)) }),
        ),
        ("day work_start_min", "/v1/plan/day", &alice, day(&|b| b["work_start_min"] = json!(u32::MAX))),
        ("day work_end_min", "/v1/plan/day", &alice, day(&|b| b["work_end_min"] = json!(100_000))),
        (
            "day ends before it starts",
            "/v1/plan/day",
            &alice,
            day(&|b| {
                b["work_start_min"] = json!(900);
                b["work_end_min"] = json!(600);
            }),
        ),
        ("day max_optional", "/v1/plan/day", &alice, day(&|b| b["max_optional"] = json!(u64::MAX))),
        (
            "day travel speed",
            "/v1/plan/day",
            &alice,
            day(&|b| b["travel"] = json!({ "speed_kmh": 0.0, "detour_factor": 1.3 })),
        ),
        (
            "day travel detour",
            "/v1/plan/day",
            &alice,
            day(&|b| b["travel"] = json!({ "speed_kmh": 30.0, "detour_factor": 1e300 })),
        ),
        ("day far-future date", "/v1/plan/day", &alice, day(&|b| b["date"] = json!("9999-12-31"))),
        ("day timezone length", "/v1/plan/day", &alice, day(&|b| b["timezone"] = json!("x".repeat(100_000)))),
        (
            "week reps list",
            "/v1/plan/week",
            &maria,
            json!({ "date": "2026-11-30", "days": 5, "reps": many_reps }),
        ),
        (
            "week work minutes",
            "/v1/plan/week",
            &maria,
            json!({ "date": "2026-11-30", "reps": [], "work_start_min": 2_000_000 }),
        ),
        ("territories reps list", "/v1/plan/territories", &maria, json!({ "reps": many_bases })),
        ("territories tolerance", "/v1/plan/territories", &maria, json!({ "tolerance": 1e300 })),
    ];
    // Every case is tried before failing, so a failure lists all the knobs still unbounded.
    let mut unbounded = Vec::new();
    for (what, path, who, body) in &posts {
        let (status, resp) = who.post_json(path, body).await;
        if !is_json_error(status, &resp, 422, "invalid_request") {
            unbounded.push(format!("{what}: {status} {:.200}", resp.to_string()));
        }
    }
    // Absurd epochs, inverted or year-long ranges, page sizes.
    let gets: Vec<(&str, &Device, &str)> = vec![
        ("overdue now_ms far future", &alice, "/v1/plan/overdue?now_ms=9223372036854775807"),
        ("overdue now_ms before 2000", &alice, "/v1/plan/overdue?now_ms=-9223372036854775808"),
        ("time-share inverted", &alice, "/v1/plan/time-share?from_ms=1796029200000&to_ms=1796000000000"),
        ("time-share over 366 days", &alice, "/v1/plan/time-share?from_ms=946684800000&to_ms=1796029200000"),
        ("time-share absurd epoch", &alice, "/v1/plan/time-share?from_ms=0&to_ms=9223372036854775807"),
        ("quarantine page size", &maria, "/v1/quarantine?limit=1000000000"),
        ("quarantine page size 0", &maria, "/v1/quarantine?limit=0"),
    ];
    for (what, who, path) in gets {
        let (status, resp) = who.get_json(path).await;
        if !is_json_error(status, &resp, 400, "invalid_request") {
            unbounded.push(format!("{what}: {status} {:.200}", resp.to_string()));
        }
    }
    assert!(unbounded.is_empty(), "knobs without a bound:\n{}", unbounded.join("\n"));
    // The same endpoints with sane values still work.
    let (status, body) = alice.post_json("/v1/plan/sub-areas", &json!({ "n": 5 })).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        alice.get_json("/v1/plan/time-share?from_ms=1795000000000&to_ms=1796029200000").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = maria.get_json("/v1/quarantine?limit=1000").await;
    assert_eq!(status, 200, "{body}");
    others_are_still_served(&server, "bruno").await;
}

/// The bytes of a request frame (uncompressed) whose push list declares `declared` entries, holds
/// `present` empty document entries, and ends in bytes that are not CBOR.
fn many_entries_frame(declared: u64, present: usize) -> Vec<u8> {
    use fieldsync_core::docs::DocKind;
    use fieldsync_core::protocol::{Cursor, DocPush, SyncRequest};
    let one = SyncRequest {
        device_id: "d".into(),
        cursor: Cursor::Start,
        push: vec![DocPush { doc_id: String::new(), kind: DocKind::Visit, changes: vec![] }],
    }
    .encode();
    assert_eq!(one[5], 0, "small frames are not deflated");
    // The push list is the last field: `push` (0x64 "push"), a one-entry array (0x81), the entry.
    let at = one.windows(5).position(|w| w == b"\x64push").expect("push key") + 5;
    assert_eq!(one[at], 0x81);
    let entry = &one[at + 1..];
    let mut frame = one[..at].to_vec();
    frame.push(0x9b);
    frame.extend_from_slice(&declared.to_be_bytes());
    for _ in 0..present {
        frame.extend_from_slice(entry);
    }
    frame.extend_from_slice(&[0xff; 16]);
    frame
}

#[tokio::test]
async fn a_frame_of_millions_of_empty_entries_is_refused_with_413_while_decoding() {
    let server = demo().await;
    let alice = server.add_device("alice-phone", "demo", "alice", Role::Rep);
    // Six million entries declared, 200 000 present (a few MB), then garbage: refused as too
    // many while decoding; had the decoder gone on to the end it would have met the garbage
    // (400 malformed) after building 200 000 entries.
    let frame = many_entries_frame(6_000_000, 200_000);
    match alice.post_raw(frame).await {
        Err(fieldsync_e2e::DeviceError::Http { status, body }) => {
            assert_json_error("6M entries", status, &body, 413, "too_large");
            assert!(body["message"].as_str().unwrap_or_default().contains("5000"), "{body}");
        }
        other => panic!("expected a 413, got {other:?}"),
    }
    others_are_still_served(&server, "bruno").await;
}
