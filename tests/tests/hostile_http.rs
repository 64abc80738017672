//! Hostile reps and strangers (issue 8, and issue 7 part 4): requests built to crash, starve or
//! probe the server, sent through the real HTTP path of a real server on a loopback port. Each
//! test sends the attack, checks the typed JSON refusal, and checks the server still serves others.

use std::time::Duration;

use fieldsync_core::Role;
use fieldsync_e2e::{Device, RawResponse, TestServer, b64url, json_answer, read_raw_response};
use fieldsync_planning::areas::AreaConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

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

/// Tries `attempt` every 25 ms until it gives something, 200 times at most (what the test waits
/// for may take a moment to be admitted or to go away).
async fn poll<T>(mut attempt: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    for _ in 0..200 {
        if let Some(done) = attempt().await {
            return Some(done);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// Syncs `device` until the server refuses it with `status` (bounded retries: what should make it
/// refuse may take a moment to be admitted); the refusal's body, or None if every sync went through.
async fn refused_sync(device: &mut Device, status: u16) -> Option<Value> {
    poll(async || match device.sync().await {
        Err(fieldsync_e2e::DeviceError::Http { status: got, body }) if got == status => Some(body),
        Err(e) => panic!("unexpected {e:?}"),
        Ok(_) => None,
    })
    .await
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
    let server = TestServer::demo().await;
    let alice = server.add_device("alice-phone", "demo", "alice", Role::Rep);
    let crash = json!({ "n": 5, "config": area_config(|c| c["restarts"] = json!(u32::MAX)) });
    // Sent alongside the other reps' work: it must not take the process (and them) down.
    let hostile = tokio::spawn(async move { alice.post_json("/v1/plan/sub-areas", &crash).await });
    others_are_still_served(&server, "bruno").await;
    let (status, body) = hostile.await.expect("request task");
    assert_json_error("restarts = u32::MAX", status, &body, 422, "invalid_request");
    assert!(body["message"].as_str().unwrap_or_default().contains("restarts"), "{body}");
    others_are_still_served(&server, "bruno").await;
}

/// Every client-supplied knob of the planning endpoints has a bound, checked before any work.
#[tokio::test]
async fn every_planning_knob_out_of_bounds_gets_a_typed_4xx_before_any_work() {
    let server = TestServer::demo().await;
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
    // A territory design as `/v1/plan/territories` returns it, of `n` territories with hulls of
    // `hull` points each.
    let design = |n: usize, hull: usize| {
        let point = json!({ "lat": 45.76, "lon": 4.83 });
        let territories: Vec<Value> = (0..n)
            .map(|i| {
                json!({
                    "rep": format!("rep-{i}"), "territory_id": format!("territory-rep-{i}"),
                    "customer_ids": [], "workload_min": 0.0, "travel_min": 0.0, "visits": 0.0,
                    "potential": 0.0, "centroid": point, "hull": vec![point.clone(); hull],
                    "home_distance_km": 0.0,
                })
            })
            .collect();
        json!({
            "territories": territories, "workload_balance": 1.0, "potential_balance": 1.0,
            "moves": [], "within_tolerance": true, "compactness_km": 0.0,
            "nearest_centroid_share": 1.0, "unplaced": [],
        })
    };
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
        ("applied design of 5000 territories", "/v1/plan/territories/apply", &maria, design(5000, 3)),
        ("applied design with a 20 000 point hull", "/v1/plan/territories/apply", &maria, design(1, 20_000)),
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
    // A planning body declared over its 8 MiB limit is refused before it is read.
    let mut s = TcpStream::connect(server.addr()).await.expect("connect");
    let head = format!(
        "POST /v1/plan/day HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        alice.token,
        9 * 1024 * 1024
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let resp = read_raw_response(&mut s, PATIENCE).await.expect("an answer without the body");
    assert_raw_json_error("9 MiB planning body", &resp, 413, "too_large");
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
    let server = TestServer::demo().await;
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

// --- connections, timeouts, caps -------------------------------------------------------------------

/// Generous bound on any single wait: a test fails rather than hangs, and never asserts speed.
const PATIENCE: Duration = Duration::from_secs(30);

/// Waits (at most PATIENCE) for the server to close `stream`: true if it did.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let wait = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // an answer (e.g. a 408) before the close is fine
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait).await.is_ok()
}

async fn healthz(server: &TestServer) -> (u16, Value) {
    let http = reqwest::Client::builder().timeout(PATIENCE * 2).build().expect("client");
    json_answer(http.get(format!("{}/healthz", server.url())).send().await.expect("GET /healthz")).await
}

/// A server taking at most `max_connections` at once, each given `header_read_timeout` to send
/// its request head.
async fn connection_capped(max_connections: usize, header_read_timeout: Duration) -> TestServer {
    TestServer::start_with(|c| {
        (c.limits.max_connections, c.limits.header_read_timeout) = (max_connections, header_read_timeout)
    })
    .await
}

#[tokio::test]
async fn hundreds_of_idle_and_slow_header_connections_do_not_stop_healthz() {
    let server = connection_capped(32, Duration::from_millis(500)).await;
    // 1. 300 connections, ten times the cap: half say nothing, half send a request head that never ends.
    let mut held = Vec::new();
    for i in 0..300 {
        let mut s = TcpStream::connect(server.addr()).await.expect("connect");
        if i % 2 == 1 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a").await.expect("partial head");
        }
        held.push(s);
    }
    // 2. /healthz still answers: the idle and slow ones are cut off at their header timeout, and
    //    the waiting clients get their turn.
    assert_eq!(healthz(&server).await.0, 200);
    // 3. Every one of them was closed by the server (none is held for ever).
    for (i, s) in held.iter_mut().enumerate() {
        assert!(closed_by_server(s).await, "connection {i} is still held open by the server");
    }
    assert_eq!(healthz(&server).await.0, 200);
}

/// Sends the head of an authenticated sync POST announcing `len` body bytes, and `first` of them.
async fn start_slow_post(server: &TestServer, token: &str, len: usize, first: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(server.addr()).await.expect("connect");
    let head = format!(
        "POST /v1/sync HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-fieldsync\r\nContent-Length: {len}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(first).await.expect("first bytes");
    s
}

fn assert_raw_json_error(what: &str, resp: &RawResponse, status: u16, code: &str) {
    let body = resp.json();
    assert_json_error(what, resp.status, &body, status, code);
    let id = resp.header("x-request-id").unwrap_or_default();
    assert!(!id.is_empty(), "{what}: an x-request-id header");
    assert_eq!(body["request_id"], id, "{what}: the body quotes the header's request id");
}

#[tokio::test]
async fn a_body_trickling_in_slower_than_the_body_deadline_is_cut_off_with_408() {
    let server = TestServer::start_with(|c| c.limits.body_read_timeout = Duration::from_secs(1)).await;
    let token = server.token("demo", "alice", Role::Rep);
    let mut s = start_slow_post(&server, &token, 100_000, b"FSYN").await;
    // A byte every 100 ms: never idle long, but the whole body would take hours.
    let (mut rd, mut wr) = s.split();
    let trickle = async {
        for _ in 0..(PATIENCE.as_millis() / 100) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if wr.write_all(b"x").await.is_err() {
                return;
            }
        }
    };
    let answer = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return buf,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.ends_with(b"}") {
                return buf;
            }
        }
    };
    let buf = tokio::select! {
        buf = answer => buf,
        () = trickle => Vec::new(),
    };
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "a 408 answer, got {text:?}");
    let body: Value =
        serde_json::from_str(&text[text.find("\r\n\r\n").map_or(0, |i| i + 4)..]).unwrap_or(Value::Null);
    assert_eq!(body["error"], "request_timeout", "{text}");
    assert!(body["request_id"].as_str().is_some(), "{text}");
    assert_eq!(healthz(&server).await.0, 200);
}

#[tokio::test]
async fn beyond_the_in_flight_cap_a_client_gets_503_with_retry_after_and_a_json_body() {
    let server = TestServer::start_with(|c| {
        c.limits.max_in_flight = 2;
        c.limits.body_read_timeout = Duration::from_secs(20);
    })
    .await;
    let token = server.token("demo", "alice", Role::Rep);
    // 1. Two requests in flight, each waiting for a body that does not come.
    let mut slow = Vec::new();
    for _ in 0..2 {
        slow.push(start_slow_post(&server, &token, 10_000, b"FSYN").await);
    }
    // 2. The next request is refused at once with 503, Retry-After and the JSON error (tried a
    //    bounded number of times: the two slow ones must first have reached the handler).
    let http = reqwest::Client::builder().timeout(PATIENCE).build().expect("client");
    let quarantine = async || {
        let req = http.get(format!("{}/v1/quarantine", server.url()));
        req.bearer_auth(server.token("demo", "maria", Role::Manager)).send().await.expect("GET")
    };
    let refused = poll(async || Some(quarantine().await).filter(|r| r.status() == 503)).await;
    let resp = refused.expect("a 503 once two requests are in flight");
    let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    let header_id = resp.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap_or_default()).unwrap_or(Value::Null);
    assert_json_error("in-flight cap", 503, &body, 503, "overloaded");
    assert!(
        retry_after.as_deref().and_then(|v| v.parse::<u32>().ok()).is_some_and(|s| s >= 1),
        "{retry_after:?}"
    );
    assert_eq!(body["request_id"].as_str(), header_id.as_deref());
    // 3. /healthz is exempt and answers meanwhile.
    assert_eq!(healthz(&server).await.0, 200);
    // 4. Once the slow clients go away, requests are served again.
    drop(slow);
    let served = poll(async || (quarantine().await.status() == 200).then_some(())).await;
    assert!(served.is_some(), "the server serves again once the slots are free");
}

// --- refusals hyper makes, and tokens with repeated claims ---------------------------------------

#[tokio::test]
async fn a_one_mib_authorization_header_gets_431_with_the_json_error_body() {
    let server = TestServer::start().await;
    let mut s = TcpStream::connect(server.addr()).await.expect("connect");
    let request = format!(
        "GET /v1/quarantine HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let (mut rd, mut wr) = s.split();
    let send = async {
        let _ = wr.write_all(request.as_bytes()).await;
        std::future::pending::<()>().await
    };
    let reader = async {
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, rd.read_to_end(&mut buf)).await;
        buf
    };
    let buf = tokio::select! {
        buf = reader => buf,
        () = send => unreachable!(),
    };
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 431"), "{text:?}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    assert_eq!(body["error"], "headers_too_large", "{text}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    let id = body["request_id"].as_str().expect("request id");
    assert!(head.to_ascii_lowercase().contains(&format!("x-request-id: {id}")), "{head}");

    // A request line that is not HTTP gets its JSON 400 too.
    let mut s = TcpStream::connect(server.addr()).await.expect("connect");
    s.write_all(b"GARBAGE GARBAGE GARBAGE\r\n\r\n").await.expect("write");
    let resp = read_raw_response(&mut s, PATIENCE).await.expect("an answer");
    assert_raw_json_error("garbage request line", &resp, 400, "malformed_http");
    assert_eq!(healthz(&server).await.0, 200);
}

fn hs256(secret: &[u8], payload: &str) -> String {
    let message = format!("{}.{}", b64url(br#"{"alg":"HS256","typ":"JWT"}"#), b64url(payload.as_bytes()));
    let key = jsonwebtoken::EncodingKey::from_secret(secret).expect("key");
    let sig =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256).expect("sign");
    format!("{message}.{sig}")
}

#[tokio::test]
async fn a_correctly_signed_token_with_a_duplicated_role_claim_gets_401() {
    const SECRET: &[u8] = b"fieldsync-e2e-hostile-test-secret";
    let server = TestServer::start_with(|c| {
        c.auth = Some(fieldsync_server::auth::AuthConfig::dev(SECRET.to_vec()).expect("auth config"));
    })
    .await;
    server.seed_demo();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = |role: &str| {
        format!(
            r#"{{"sub":"alice","team":"demo",{role},"exp":{},"iat":{now},"iss":"fieldsync","aud":"fieldsync"}}"#,
            now + 3600
        )
    };
    let http = reqwest::Client::builder().timeout(PATIENCE).build().expect("client");
    let quarantine = |token: String| {
        let http = http.clone();
        let url = format!("{}/v1/quarantine", server.url());
        async move { json_answer(http.get(url).bearer_auth(token).send().await.expect("GET")).await }
    };
    // The signing is right: the same token with one role is a rep, who may not read the quarantine.
    let (status, body) = quarantine(hs256(SECRET, &claims(r#""role":"rep""#))).await;
    assert_eq!(status, 403, "{body}");
    // "rep" for one reader, "admin" for a last-value-wins reader: refused.
    let (status, body) = quarantine(hs256(SECRET, &claims(r#""role":"rep","role":"admin""#))).await;
    assert_json_error("duplicated role", status, &body, 401, "unauthorized");
    assert!(body["message"].as_str().unwrap_or_default().contains("role"), "{body}");
    let (status, body) = quarantine(hs256(SECRET, &claims(r#""role":"admin","sub":"maria""#))).await;
    assert_json_error("duplicated sub", status, &body, 401, "unauthorized");
}

// --- internal errors ---------------------------------------------------------------------------------

/// A run of 16 or more hexadecimal digits (a hash, a key).
fn has_hex_run(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_ascii_hexdigit() { run + 1 } else { 0 };
        if run >= 16 {
            return true;
        }
    }
    false
}

/// (That the detail reaches the log with the same request id is checked by the server's unit test
/// `api::tests::a_500_tells_the_client_a_request_id_and_the_log_the_detail`.)
#[tokio::test]
async fn a_500_names_a_request_id_and_nothing_of_the_storage() {
    use fieldsync_core::storage::{KvBackend as _, KvOp};
    let mut server = TestServer::demo().await;
    // 1. Corrupt a stored document's metadata while the server is stopped.
    server.stop().await;
    {
        // sled lets go of its lock file shortly after the store is dropped: a bounded wait.
        let mut opened = None;
        for _ in 0..100 {
            match fieldsync_server::store::SledKv::open(server.data_dir(), 1 << 20, 0) {
                Ok(kv) => {
                    opened = Some(kv);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let kv = opened.expect("open the store");
        kv.apply(vec![KvOp::Put(
            b"m/demo/cust-0001".to_vec(),
            b"\xff\xfe d1a3c0ffee0123456789abcdef0123456789abcdef sled storage".to_vec(),
        )])
        .expect("corrupt");
    }
    server.restart().await;
    let maria = server.add_device("maria-tablet", "demo", "maria", Role::Manager);
    // 2. Reading it is a 500 with a typed code, a message for people and the request id.
    let resp = maria
        .http
        .get(format!("{}/v1/docs/cust-0001", maria.url))
        .bearer_auth(&maria.token)
        .send()
        .await
        .expect("GET");
    let status = resp.status().as_u16();
    let header_id = resp.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let text = String::from_utf8_lossy(&resp.bytes().await.unwrap_or_default()).to_string();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert_json_error("corrupt metadata", status, &body, 500, "internal");
    let id = body["request_id"].as_str().expect("request id in the body");
    assert_eq!(Some(id), header_id.as_deref(), "the same request id in the header");
    assert!(body["message"].as_str().unwrap_or_default().contains(id), "{text}");
    let lower = text.to_lowercase();
    for leak in ["storage", "sled", "corrupt", "doc meta", "cust-0001", "/tmp", "syntax"] {
        assert!(!lower.contains(leak), "{leak:?} leaked to the client: {text}");
    }
    assert!(!has_hex_run(&text), "a hash-like run leaked to the client: {text}");
    // 3. Every other request is unaffected, and also carries a request id.
    let resp = maria.http.get(format!("{}/healthz", maria.url)).send().await.expect("GET");
    assert!(resp.headers().get("x-request-id").is_some());
    let (status, _) = maria.get_json("/v1/docs/cust-0002").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn every_error_body_carries_the_request_id_of_its_x_request_id_header() {
    let server = TestServer::demo().await;
    let alice = server.add_device("alice-phone", "demo", "alice", Role::Rep);
    for (what, req) in [
        ("no token", alice.http.get(format!("{}/v1/quarantine", alice.url))),
        ("unknown endpoint", alice.http.get(format!("{}/v1/nope", alice.url)).bearer_auth(&alice.token)),
        (
            "bad frame",
            alice.http.post(format!("{}/v1/sync", alice.url)).bearer_auth(&alice.token).body("junk"),
        ),
        (
            "rep reads quarantine",
            alice.http.get(format!("{}/v1/quarantine", alice.url)).bearer_auth(&alice.token),
        ),
    ] {
        let resp = req.send().await.expect("request");
        let header_id = resp.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body: Value =
            serde_json::from_slice(&resp.bytes().await.unwrap_or_default()).unwrap_or(Value::Null);
        assert!(body["error"].as_str().is_some(), "{what}: {body}");
        assert!(header_id.is_some(), "{what}: x-request-id");
        assert_eq!(body["request_id"].as_str(), header_id.as_deref(), "{what}: {body}");
    }
}

#[tokio::test]
async fn a_client_beyond_the_connection_cap_is_served_once_a_connection_frees_up() {
    let server = connection_capped(4, Duration::from_secs(60)).await;
    // 1. The cap is held by four silent connections (the server has accepted them: a request
    //    on each would be answered).
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(server.addr()).await.expect("connect"));
    }
    // 2. A fifth client's complete request is not served while they hold the cap…
    let mut fifth = TcpStream::connect(server.addr()).await.expect("connect");
    fifth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("request");
    let early = read_raw_response(&mut fifth, Duration::from_millis(1500)).await;
    assert!(early.is_err(), "served beyond the connection cap: {early:?}");
    // 3. …and is as soon as one of them goes.
    drop(held.pop());
    let resp = read_raw_response(&mut fifth, PATIENCE).await.expect("served once a slot is free");
    assert_eq!(resp.status, 200);
    assert!(resp.header("x-request-id").is_some());
}

#[tokio::test]
async fn planning_beyond_its_job_cap_gets_503_with_retry_after_while_syncs_go_on() {
    let server = TestServer::start_with(|c| c.limits.max_planning_jobs = 1).await;
    server.seed_demo();
    let alice = server.add_device("alice-phone", "demo", "alice", Role::Rep);
    // Batches of concurrent sub-area computations (each takes a while) against one slot: some
    // are refused at once rather than queued. Bounded: at most 20 batches.
    let mut refused = None;
    for _ in 0..20 {
        let batch: Vec<_> = (0..8)
            .map(|_| {
                let http = alice.http.clone();
                let url = format!("{}/v1/plan/sub-areas", alice.url);
                let token = alice.token.clone();
                tokio::spawn(async move {
                    let resp = http
                        .post(url)
                        .bearer_auth(token)
                        .header("content-type", "application/json")
                        .body(
                            json!({ "n": 5, "config": area_config(|c| c["restarts"] = json!(32)) })
                                .to_string(),
                        )
                        .send()
                        .await
                        .expect("POST");
                    let status = resp.status().as_u16();
                    let retry =
                        resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
                    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap_or_default())
                        .unwrap_or(Value::Null);
                    (status, retry, body)
                })
            })
            .collect();
        for task in batch {
            let (status, retry, body) = task.await.expect("task");
            if status == 503 {
                refused = Some((retry, body));
            } else {
                assert_eq!(status, 200, "{body}");
            }
        }
        if refused.is_some() {
            break;
        }
    }
    let (retry, body) = refused.expect("a planning request beyond the cap is refused");
    assert_json_error("planning cap", 503, &body, 503, "overloaded");
    assert!(retry.is_some_and(|r| r.parse::<u32>().is_ok()));
    others_are_still_served(&server, "bruno").await;
}

#[tokio::test]
async fn bodies_beyond_the_memory_budget_get_503_before_they_are_read() {
    // Each sync is charged its body and the worst its decoding may cost (about 23 MiB for a small
    // frame): a 40 MiB budget holds one at a time.
    let server = TestServer::start_with(|c| {
        c.limits.max_body_memory = 40 * 1024 * 1024;
        c.limits.body_read_timeout = Duration::from_secs(20);
    })
    .await;
    server.seed_demo();
    let token = server.token("demo", "alice", Role::Rep);
    // 1. A sync whose body is still on its way holds its share of the budget.
    let slow = start_slow_post(&server, &token, 100, b"FSYN").await;
    // 2. Another sync is refused with 503 + Retry-After and the JSON error (bounded retries: the
    //    slow one must first have been admitted).
    let mut bruno = server.add_device("bruno-phone", "demo", "bruno", Role::Rep);
    let body = refused_sync(&mut bruno, 503).await.expect("a sync beyond the budget is refused");
    assert_json_error("body memory", 503, &body, 503, "overloaded");
    // Requests without a body are not charged.
    let (status, _) = bruno.get_json("/v1/plan/overdue").await;
    assert_eq!(status, 200);
    // 3. A body declared larger than the endpoint accepts is refused before it is sent.
    let mut s = TcpStream::connect(server.addr()).await.expect("connect");
    let head = format!(
        "POST /v1/sync HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
        1u64 << 40
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let resp = read_raw_response(&mut s, PATIENCE).await.expect("an answer without the body");
    assert_raw_json_error("1 TiB declared", &resp, 413, "too_large");
    // 4. Once the slow client goes, syncs go through.
    drop(slow);
    let done = poll(async || bruno.sync().await.ok()).await;
    assert!(done.is_some(), "syncs go through once the budget is free");
}

#[tokio::test]
async fn strangers_slow_bodies_cost_nothing_and_one_rep_cannot_hold_the_body_budget() {
    // A 60 MiB budget holds two small syncs at once (about 23 MiB each).
    let server = TestServer::start_with(|c| {
        c.limits.max_body_memory = 60 * 1024 * 1024;
        c.limits.max_bodies_per_user = 1;
        c.limits.body_read_timeout = Duration::from_secs(20);
    })
    .await;
    server.seed_demo();
    // 1. Strangers with bad tokens and bodies that never arrive: refused (401) without their
    //    bodies being read or charged.
    let mut strangers = Vec::new();
    for i in 0..10 {
        let mut s = start_slow_post(&server, &format!("not-a-token-{i}"), 1000, b"FSYN").await;
        let resp = read_raw_response(&mut s, PATIENCE).await.expect("an answer before the body");
        assert_raw_json_error("stranger", &resp, 401, "unauthorized");
        strangers.push(s);
    }
    // 2. Alice holds one upload; her second is refused with 429 + Retry-After (bounded retries:
    //    the first must first have been admitted)…
    let alice_token = server.token("demo", "alice", Role::Rep);
    let _held = start_slow_post(&server, &alice_token, 1000, b"FSYN").await;
    let mut alice = server.add_device("alice-phone", "demo", "alice", Role::Rep);
    let body = refused_sync(&mut alice, 429).await.expect("alice's second upload is refused");
    assert_json_error("per-user bodies", 429, &body, 429, "too_many_requests");
    // 3. …while bruno, whose share the strangers did not take, syncs.
    let mut bruno = server.add_device("bruno-phone", "demo", "bruno", Role::Rep);
    bruno.sync().await.expect("bruno syncs while alice and the strangers hold connections");
}
