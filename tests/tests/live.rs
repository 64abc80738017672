//! The live feed over HTTP: a dashboard hears about a rep's sync as it happens, resumes with
//! `Last-Event-ID` without losing or repeating an event, and hears only what its role may see.

use std::time::Duration;

use fieldsync_core::Role;
use fieldsync_e2e::fixtures::{on_visit, prepend_notes};
use fieldsync_e2e::{Device, MORNING_MS, TestServer};
use serde_json::Value;

const TEAM: &str = "acme";

/// One open event stream.
struct Live {
    resp: reqwest::Response,
    buffer: String,
}

impl Live {
    async fn open(device: &Device, last_event_id: Option<u64>) -> Live {
        let mut req = device.http.get(format!("{}/v1/live", device.url)).bearer_auth(&device.token);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.expect("the stream opens");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Live { resp, buffer: String::new() }
    }

    /// The next `change` event: (id, data), or None if none comes within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<(u64, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim_start().to_string()))
                };
                if field("event:").as_deref() == Some("change") {
                    let id = field("id:").and_then(|i| i.parse().ok()).expect("an id");
                    let data = serde_json::from_str(&field("data:").expect("data")).expect("json data");
                    return Some((id, data));
                }
            }
            let chunk =
                tokio::time::timeout_at(deadline, self.resp.chunk()).await.ok()?.expect("the stream")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test]
async fn a_dashboard_hears_a_reps_sync_and_resumes_where_it_stopped() {
    let server = fieldsync_e2e::two_reps(TEAM).await;
    let maria = server.add_device("maria-dashboard", TEAM, "maria", Role::Manager);
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;
    let mut bob = server.synced_device("bob-phone", TEAM, "bob", Role::Rep).await;

    // 1. Maria's dashboard and alice's phone listen from now.
    let mut dashboard = Live::open(&maria, None).await;
    let mut alices = Live::open(&alice, None).await;

    // 2. Bob writes a note on his visit and syncs: maria hears it, with a line for people.
    bob.replica.update("v-bob", MORNING_MS, on_visit(|v| v.notes.update("bob was here"))).expect("note");
    bob.sync().await.expect("sync");
    let (first, event) = dashboard.next(Duration::from_secs(10)).await.expect("an event");
    assert_eq!(
        (event["doc_id"].as_str(), event["kind"].as_str(), event["rep"].as_str()),
        (Some("v-bob"), Some("visit"), Some("bob")),
        "{event}"
    );
    assert!(event["line"].as_str().is_some_and(|l| l.contains("v-bob") && l.contains("bob")), "{event}");
    assert_eq!(event["seq"].as_u64(), Some(first));

    // 3. Alice hears nothing of bob's visit; she hears her own customer's change.
    alice.replica.update("c-alice", MORNING_MS, prepend_notes("Call back.")).expect("note");
    alice.sync().await.expect("sync");
    let (_, hers) = alices.next(Duration::from_secs(10)).await.expect("her event");
    assert_eq!(hers["doc_id"], "c-alice", "the first event she hears is hers: {hers}");
    let (second, event) =
        dashboard.next(Duration::from_secs(10)).await.expect("alice's event on the dashboard");
    assert_eq!(event["doc_id"], "c-alice");
    assert!(second > first);

    // 4. A dashboard that reconnects after the first event gets the second, exactly once.
    let mut again = Live::open(&maria, Some(first)).await;
    let (resumed, event) = again.next(Duration::from_secs(10)).await.expect("the missed event");
    assert_eq!((resumed, event["doc_id"].as_str()), (second, Some("c-alice")));
    assert!(again.next(Duration::from_millis(700)).await.is_none(), "nothing repeated");

    // 5. A Last-Event-ID that is not an event is refused.
    for bad in ["abc", "99999999"] {
        let resp = maria
            .http
            .get(format!("{}/v1/live", maria.url))
            .bearer_auth(&maria.token)
            .header("last-event-id", bad)
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn live_feeds_beyond_their_cap_get_503_and_do_not_take_request_slots() {
    let server = TestServer::start_with(|c| {
        c.limits.max_live_streams = 1;
        c.limits.max_in_flight = 1;
    })
    .await;
    server.seed(TEAM, &fieldsync_e2e::fixtures::territory_with_customer("t", &["alice"], "c-1"));
    let maria = server.add_device("maria-dashboard", TEAM, "maria", Role::Manager);
    let _open = Live::open(&maria, None).await;
    let resp = maria
        .http
        .get(format!("{}/v1/live", maria.url))
        .bearer_auth(&maria.token)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    // The open stream holds no request slot: the one slot still serves a request.
    let (status, _) = maria.get_json("/v1/quarantine").await;
    assert_eq!(status, 200);
}
