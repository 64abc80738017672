//! Bad input, over real HTTP: every malformed, corrupt, invalid or oversized request gets a clear 4xx
//! with a JSON body `{"error": CODE, "message": TEXT}`, nothing of it is stored, and the server keeps
//! serving the devices that behave.

use automerge::{ActorId, Automerge};
use fieldsync_core::Role;
use fieldsync_core::docs::{DocKind, Document, VisitState};
use fieldsync_core::protocol::{Cursor, DocPush, SyncRequest, SyncResponse, WireError};
use fieldsync_core::storage::Storage as _;
use fieldsync_e2e::fixtures::{self, LYON, offset, on_visit, prepend_notes};
use fieldsync_e2e::{
    Device, DeviceError, MORNING_MS, TestServer, assert_converged, changes_since, created_by_hand,
};

const TEAM: &str = "acme";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A team with one territory (alice) and one customer in it, and alice's phone (not synced yet).
async fn team_and_alice() -> (TestServer, Device) {
    let server =
        TestServer::seeded(TEAM, &fixtures::territory_with_customer("terr-1", &["alice"], "cust-1")).await;
    let alice = server.add_device("alice-phone", TEAM, "alice", Role::Rep);
    (server, alice)
}

/// A visit alice plans at cust-1 this morning.
fn alices_visit(id: &str) -> Document {
    fixtures::visit(id, "cust-1", "alice", MORNING_MS).into()
}

fn push(doc_id: &str, kind: DocKind, changes: Vec<Vec<u8>>) -> DocPush {
    DocPush { doc_id: doc_id.into(), kind, changes: changes.into_iter().map(Into::into).collect() }
}

fn request(device_id: &str, pushes: Vec<DocPush>) -> SyncRequest {
    SyncRequest { device_id: device_id.into(), cursor: Cursor::Start, push: pushes }
}

/// A visit of alice's at cust-1 with one check-in at `at`.
fn visit_checked_in_at(id: &str, at: (f64, f64)) -> Document {
    let mut v = fixtures::visit(id, "cust-1", "alice", MORNING_MS);
    v.checkins.push(fixtures::checkin("ci-1", at, 5.0, MORNING_MS));
    v.state = VisitState::CheckedIn;
    Document::Visit(v)
}

/// A small, valid request pushing a new visit (small enough not to be deflated).
fn good_request() -> SyncRequest {
    let v = alices_visit("v-ok");
    request("alice-phone", vec![push("v-ok", DocKind::Visit, created_by_hand("alice-phone", &v))])
}

/// What the server holds before a bad request, to show afterwards that nothing was stored.
#[derive(Debug, PartialEq)]
struct Stored {
    feed_head: u64,
    quarantined: usize,
}

fn stored(server: &TestServer) -> Stored {
    let storage = server.server().engine().storage();
    Stored {
        feed_head: storage.feed_head(TEAM).expect("feed head"),
        quarantined: storage.quarantine(TEAM, 1000).expect("quarantine").len(),
    }
}

/// Posts `body` and checks the refusal: status, JSON error code and a non-empty message. Then checks
/// that nothing was stored and that the server still answers its health check.
async fn assert_refused(
    server: &TestServer,
    device: &Device,
    what: &str,
    body: Vec<u8>,
    status: u16,
    code: &str,
) {
    let before = stored(server);
    match device.post_raw(body).await {
        Err(DeviceError::Http { status: got, body }) => {
            assert_eq!(got, status, "{what}: status ({body})");
            assert_eq!(body["error"], code, "{what}: error code in {body}");
            let message = body["message"].as_str().unwrap_or_default();
            assert!(!message.trim().is_empty(), "{what}: a message for people in {body}");
        }
        Ok(bytes) => panic!("{what}: accepted with 200: {:?}", SyncResponse::decode(&bytes)),
        Err(other) => panic!("{what}: {other:?}"),
    }
    assert_eq!(stored(server), before, "{what}: nothing stored");
    assert_healthy(device).await;
}

async fn assert_healthy(device: &Device) {
    let (status, body) = device.get_json("/healthz").await;
    assert_eq!(status, 200, "the server keeps serving: {body}");
}

/// The end of every story: a well-behaved device still syncs, pushes and converges.
async fn a_normal_sync_still_works(server: &TestServer) {
    let mut phone = server.add_device("alice-spare-phone", TEAM, "alice", Role::Rep);
    let first = phone.sync().await.expect("bootstrap after the bad requests");
    assert!(first.rejected().is_empty());
    assert!(phone.doc("cust-1").is_some());
    let id = "v-after-the-storm";
    let mut v = fixtures::visit(id, "cust-1", "alice", MORNING_MS);
    v.checkins.push(fixtures::checkin("ci-ok", offset(LYON, 10.0, 0.0), 5.0, MORNING_MS));
    v.state = VisitState::CheckedIn;
    phone.replica.create(Document::Visit(v), MORNING_MS).expect("plan");
    let pushed = phone.sync().await.expect("push");
    assert!(pushed.rejected().is_empty(), "{:?}", pushed.rejected());
    phone.sync().await.expect("pull the verdict");
    match server.doc(TEAM, id) {
        Some(Document::Visit(v)) => assert_eq!(v.verification["ci-ok"].status, "verified"),
        other => panic!("expected the visit on the server, got {other:?}"),
    }
    assert_converged(server, TEAM, &[&phone]);
}

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn garbage_empty_future_version_truncated_and_unknown_flag_frames_get_400_with_a_json_error() {
    // 1. A team, a device, and a good request to spoil.
    let (server, alice) = team_and_alice().await;
    let good = good_request().encode();
    assert_eq!(good[5], 0, "the good request is small enough to travel uncompressed");
    let spoiled = |at: usize, byte: u8| {
        let mut b = good.clone();
        b[at] = byte;
        b
    };
    let with_cbor = |cbor: &[u8]| {
        let mut b = b"FSYN\x01\x00".to_vec();
        b.extend_from_slice(cbor);
        b
    };

    // 2. Each spoiled frame: 400 with its code, nothing stored, still serving.
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), "malformed"),
        ("empty body", vec![], "malformed"),
        ("magic only", b"FSYN".to_vec(), "malformed"),
        (
            "lower-case magic",
            {
                let mut b = good.clone();
                b[..4].copy_from_slice(b"fsyn");
                b
            },
            "malformed",
        ),
        ("future version", spoiled(4, 2), "unsupported_version"),
        ("version 255", spoiled(4, 255), "unsupported_version"),
        ("version 0", spoiled(4, 0), "unsupported_version"),
        ("truncated CBOR", good[..good.len() - 7].to_vec(), "malformed"),
        ("header only", good[..6].to_vec(), "malformed"),
        ("unknown flags", spoiled(5, 0x80), "malformed"),
        ("deflate flag on plain CBOR", spoiled(5, 1), "malformed"),
        (
            "JSON instead of CBOR",
            with_cbor(br#"{"device_id":"alice-phone","cursor":"Start","push":[]}"#),
            "malformed",
        ),
        ("a CBOR integer", with_cbor(&[0x00]), "malformed"),
        ("an empty CBOR map", with_cbor(&[0xa0]), "malformed"),
        (
            "a response instead of a request",
            SyncResponse {
                accepted: vec![],
                rejected: vec![],
                docs: vec![],
                changes: vec![],
                revoked: vec![],
                cursor: Cursor::Start,
                more: false,
                bootstrap_after: None,
                unavailable: vec![],
            }
            .encode(),
            "malformed",
        ),
    ];
    for (what, body, code) in cases {
        assert_refused(&server, &alice, what, body, 400, code).await;
    }

    // 3. The good request itself goes through, and so does a normal sync.
    alice.post_raw(good).await.expect("the unspoiled request is accepted");
    assert!(server.doc(TEAM, "v-ok").is_some());
    a_normal_sync_still_works(&server).await;
}

#[tokio::test]
async fn a_payload_deflating_past_the_limit_is_refused_with_413_without_taking_the_server_down() {
    // 1. A hand-made deflate stream (one fixed-Huffman block: the start of a request whose
    //    device id is a 4 GiB text string, then "copy 258 bytes from 1 back" over and over, i.e.
    //    NUL characters) of about 1.7 MB that inflates to just over the 256 MiB decode limit. The
    //    server decodes as it inflates, so the prefix is valid CBOR: the limit, not a type error,
    //    is what stops it.
    let (server, alice) = team_and_alice().await;
    let limit = fieldsync_core::protocol::MAX_DECODED_BYTES;
    let repeats = limit / 258 + 1;
    let mut bits = BitWriter::default();
    bits.lsb_first(1, 1); // BFINAL
    bits.lsb_first(1, 2); // BTYPE = 01, fixed Huffman
    let mut prefix = vec![0xa3, 0x69];
    prefix.extend_from_slice(b"device_id");
    prefix.push(0x7b); // text string, 8-byte length
    prefix.extend_from_slice(&(1u64 << 32).to_be_bytes()); // ends in a 0, which is repeated
    for byte in prefix {
        match byte {
            0..=143 => bits.huffman(0x30 + u32::from(byte), 8),
            _ => bits.huffman(0x190 + u32::from(byte) - 144, 9),
        }
    }
    for _ in 0..repeats {
        bits.huffman(0b1100_0101, 8); // length symbol 285: 258 bytes
        bits.huffman(0, 5); // distance symbol 0: 1 byte back
    }
    bits.huffman(0, 7); // end of block
    let mut body = b"FSYN\x01\x01".to_vec();
    body.extend_from_slice(&bits.finish());
    assert!(body.len() < 2 * 1024 * 1024, "a small request: {} bytes", body.len());

    // 2. Refused as too large, nothing stored, still serving.
    assert_refused(&server, &alice, "deflate bomb", body, 413, "too_large").await;
    a_normal_sync_still_works(&server).await;
}

/// Writes a deflate bit stream: header fields least significant bit first, Huffman codes most
/// significant bit first (RFC 1951, 3.1.1).
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    current: u8,
    used: u8,
}

impl BitWriter {
    fn bit(&mut self, b: u32) {
        self.current |= ((b & 1) as u8) << self.used;
        self.used += 1;
        if self.used == 8 {
            self.out.push(self.current);
            self.current = 0;
            self.used = 0;
        }
    }

    fn lsb_first(&mut self, value: u32, n: u32) {
        for i in 0..n {
            self.bit(value >> i);
        }
    }

    fn huffman(&mut self, code: u32, n: u32) {
        for i in (0..n).rev() {
            self.bit(code >> i);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.used > 0 {
            self.out.push(self.current);
        }
        self.out
    }
}

#[tokio::test]
async fn a_body_over_64_mib_is_refused_with_413_and_nothing_is_stored() {
    // 1. 65 MiB of zeros, in one request.
    let (server, alice) = team_and_alice().await;
    let before = stored(&server);
    let body = vec![0u8; 65 * 1024 * 1024];

    // 2. 413.
    match alice.post_raw(body).await {
        Err(DeviceError::Http { status, body }) => assert_eq!(status, 413, "{body}"),
        other => panic!("expected 413, got {other:?}"),
    }

    // 3. Nothing stored, still serving.
    assert_eq!(stored(&server), before);
    assert_healthy(&alice).await;
    a_normal_sync_still_works(&server).await;
}

#[tokio::test]
async fn refusals_made_by_the_http_layer_itself_also_carry_the_json_error_body() {
    // 1. Requests that axum refuses before a handler runs: a body over the 64 MiB limit, an id that
    //    is not UTF-8, a query that does not parse, a method the route does not have.
    let (server, alice) = team_and_alice().await;
    let boss = server.add_device("boss-laptop", TEAM, "boss", Role::Manager);
    let url = |path: &str| format!("{}{}", alice.url, path);
    let cases = vec![
        (
            "body over the limit",
            413,
            &alice,
            alice.http.post(url("/v1/sync")).body(vec![0u8; 65 * 1024 * 1024]),
        ),
        ("id not UTF-8", 400, &alice, alice.http.get(url("/v1/docs/%FF"))),
        // The quarantine is a manager's: a rep is refused before the query is read.
        ("limit not a number", 400, &boss, alice.http.get(url("/v1/quarantine?limit=abc"))),
        ("PUT on the sync route", 405, &alice, alice.http.put(url("/v1/sync"))),
    ];

    // 2. Each gets its status and the same JSON error shape as every other refusal.
    for (what, status, caller, req) in cases {
        let resp = req.bearer_auth(&caller.token).send().await.expect("the server answers");
        assert_eq!(resp.status().as_u16(), status, "{what}");
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(content_type.as_deref(), Some("application/json"), "{what}: {text:?}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        assert!(body["error"].as_str().is_some_and(|c| !c.is_empty()), "{what}: an error code in {text:?}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: a message in {text:?}");
    }
    assert_healthy(&alice).await;
}

// ---------------------------------------------------------------------------------------------
// Pushed documents
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_push_with_random_or_truncated_change_bytes_gets_400_corrupt_change_and_stores_nothing() {
    // 1. A valid visit's change, and the ways it can arrive broken.
    let (server, alice) = team_and_alice().await;
    let good = created_by_hand("alice-phone", &alices_visit("v-1"));
    let mut random = Vec::with_capacity(300);
    let mut x: u32 = 0x2545_f491;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        random.push(x.to_le_bytes()[0]);
    }
    let truncated = good[0][..good[0].len() - 9].to_vec();
    let mut flipped = good[0].clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;

    // 2. Each is refused whole; a valid change in the same push is not kept either.
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("random bytes", vec![random.clone()]),
        ("empty change", vec![vec![]]),
        ("automerge magic only", vec![vec![0x85, 0x6f, 0x4a, 0x83]]),
        ("truncated change", vec![truncated]),
        ("a flipped byte (checksum)", vec![flipped]),
        ("a good change, then random bytes", vec![good[0].clone(), random]),
    ];
    for (what, changes) in cases {
        let body = request("alice-phone", vec![push("v-1", DocKind::Visit, changes)]).encode();
        assert_refused(&server, &alice, what, body, 400, "corrupt_change").await;
        assert!(server.doc(TEAM, "v-1").is_none(), "{what}: the visit was not stored");
    }
    a_normal_sync_still_works(&server).await;
}

#[tokio::test]
async fn a_push_with_an_unknown_document_kind_gets_400() {
    // 1. A valid request, its kind "visit" patched to "spacs" inside the (uncompressed) CBOR.
    let (server, alice) = team_and_alice().await;
    let mut body = good_request().encode();
    assert_eq!(body[5], 0, "uncompressed, so the CBOR can be patched");
    let needle = b"\x64kind\x65visit"; // text(4) "kind", text(5) "visit"
    let at: Vec<usize> =
        body.windows(needle.len()).enumerate().filter(|(_, w)| w == needle).map(|(i, _)| i).collect();
    assert_eq!(at.len(), 1, "exactly one kind field");
    body[at[0] + 6..at[0] + needle.len()].copy_from_slice(b"spacs");
    assert!(SyncRequest::decode(&body).is_err(), "not a request this build understands");

    // 2. Refused as malformed.
    assert_refused(&server, &alice, "unknown kind", body, 400, "malformed").await;
    assert!(server.doc(TEAM, "v-ok").is_none());
    a_normal_sync_still_works(&server).await;
}

#[tokio::test]
async fn a_visit_whose_check_in_is_off_the_globe_gets_422_invalid_document_and_stores_nothing() {
    // 1. New visits with impossible check-ins, built directly so that no local check stops them.
    let (server, alice) = team_and_alice().await;
    let cases: Vec<(&str, (f64, f64))> = vec![
        ("latitude 123", (123.0, LYON.1)),
        ("latitude NaN", (f64::NAN, LYON.1)),
        ("longitude -200", (LYON.0, -200.0)),
        ("latitude infinite", (f64::INFINITY, LYON.1)),
        ("longitude NaN", (LYON.0, f64::NAN)),
    ];
    for (what, at) in cases {
        let v = visit_checked_in_at("v-bad", at);
        let body =
            request("alice-phone", vec![push("v-bad", DocKind::Visit, created_by_hand("alice-phone", &v))])
                .encode();
        assert_refused(&server, &alice, what, body, 422, "invalid_document").await;
        assert!(server.doc(TEAM, "v-bad").is_none(), "{what}: not stored");
    }

    // 2. A negative accuracy is refused the same way.
    let mut v = fixtures::visit("v-bad", "cust-1", "alice", MORNING_MS);
    v.checkins.push(fixtures::checkin("ci-1", LYON, -5.0, MORNING_MS));
    let body = request(
        "alice-phone",
        vec![push("v-bad", DocKind::Visit, created_by_hand("a", &Document::Visit(v)))],
    )
    .encode();
    assert_refused(&server, &alice, "negative accuracy", body, 422, "invalid_document").await;

    // 3. A good visit in the same request as a bad one is not stored either: the request is refused
    //    whole.
    let good = alices_visit("v-good");
    let bad = visit_checked_in_at("v-bad", (123.0, LYON.1));
    let body = request(
        "alice-phone",
        vec![
            push("v-good", DocKind::Visit, created_by_hand("alice-phone", &good)),
            push("v-bad", DocKind::Visit, created_by_hand("alice-phone", &bad)),
        ],
    )
    .encode();
    assert_refused(&server, &alice, "good and bad together", body, 422, "invalid_document").await;
    assert!(server.doc(TEAM, "v-good").is_none(), "nothing of a refused request is stored");
    a_normal_sync_still_works(&server).await;
}

#[tokio::test]
async fn an_edit_putting_an_existing_visits_check_in_off_the_globe_gets_422_and_changes_nothing() {
    // 1. Alice has a visit on the server.
    let (server, mut alice) = team_and_alice().await;
    alice.sync().await.expect("bootstrap");
    alice.replica.create(alices_visit("v-1"), MORNING_MS).expect("plan");
    alice.sync().await.expect("push");
    let heads = server.server().engine().doc_heads(TEAM, "v-1").expect("heads");

    // 2. An outdated app appends a check-in at longitude -200 (bypassing the local checks).
    let off_the_globe =
        || on_visit(|v| v.checkins.push(fixtures::checkin("ci-1", (LYON.0, -200.0), 5.0, MORNING_MS)));
    let local = alice.replica.update("v-1", MORNING_MS, off_the_globe());
    assert!(local.is_err(), "the library refuses it");
    alice.replica.update_unchecked("v-1", MORNING_MS, off_the_globe()).expect("tampered write");
    let body = alice.replica.prepare_request().encode();

    // 3. 422, the stored visit is unchanged.
    assert_refused(&server, &alice, "edit off the globe", body, 422, "invalid_document").await;
    assert_eq!(server.server().engine().doc_heads(TEAM, "v-1").expect("heads"), heads);
    match server.doc(TEAM, "v-1") {
        Some(Document::Visit(v)) => assert!(v.checkins.is_empty()),
        other => panic!("expected the visit, got {other:?}"),
    }
    a_normal_sync_still_works(&server).await;
}

#[tokio::test]
async fn a_document_pushed_as_another_kind_or_under_another_id_is_refused_with_a_4xx() {
    // 1. A new customer (a prospect of alice's) pushed with kind "visit".
    let (server, mut alice) = team_and_alice().await;
    let mut prospect = fixtures::customer("cust-new", "alice", None, LYON);
    prospect.tier = None;
    prospect.created_by = "alice".into();
    let prospect = Document::Customer(prospect);
    let body = request(
        "alice-phone",
        vec![push("cust-new", DocKind::Visit, created_by_hand("alice-phone", &prospect))],
    )
    .encode();
    assert_refused(&server, &alice, "new customer pushed as a visit", body, 422, "kind_mismatch").await;
    assert!(server.doc(TEAM, "cust-new").is_none());

    // 2. An edit to the existing customer, pushed with kind "visit".
    alice.sync().await.expect("bootstrap");
    alice.replica.update("cust-1", MORNING_MS, prepend_notes("note")).expect("edit");
    let mut req = alice.replica.prepare_request();
    assert_eq!(req.push.len(), 1);
    req.push[0].kind = DocKind::Visit;
    assert_refused(
        &server,
        &alice,
        "existing customer pushed as a visit",
        req.encode(),
        422,
        "kind_mismatch",
    )
    .await;

    // 3. A visit whose document says "v-1" pushed as "v-2".
    let v = alices_visit("v-1");
    let body = request("alice-phone", vec![push("v-2", DocKind::Visit, created_by_hand("alice-phone", &v))])
        .encode();
    assert_refused(&server, &alice, "visit under another id", body, 422, "invalid_document").await;
    assert!(server.doc(TEAM, "v-1").is_none() && server.doc(TEAM, "v-2").is_none());

    // 4. A change that is not a document at all (no kind at the root).
    let mut bare = Automerge::new().with_actor(ActorId::from(&b"alice-phone"[..]));
    bare.transact(|tx| {
        use automerge::transaction::Transactable as _;
        tx.put(automerge::ROOT, "hello", "world")
    })
    .expect("change");
    let bytes = changes_since(&bare, &[]);
    let body = request("alice-phone", vec![push("v-3", DocKind::Visit, bytes)]).encode();
    assert_refused(&server, &alice, "not a document", body, 422, "invalid_document").await;
    a_normal_sync_still_works(&server).await;
}

#[tokio::test]
async fn illegal_document_and_device_ids_get_400_bad_request() {
    // 1. A valid visit, pushed under ids that could never be keys or path segments.
    let (server, alice) = team_and_alice().await;
    let changes = created_by_hand("alice-phone", &alices_visit("v-1"));
    let long = "v".repeat(200);
    for bad in ["a/b", "", long.as_str(), "../../etc/passwd", "visit 1", "vísit", "v\u{0}1", "v\n1"] {
        let body = request("alice-phone", vec![push(bad, DocKind::Visit, changes.clone())]).encode();
        assert_refused(&server, &alice, &format!("doc id {bad:?}"), body, 400, "bad_request").await;
    }

    // 2. The same for the device id, including the one the server reserves for itself.
    for bad in ["", "a/b", long.as_str(), "server"] {
        let body = request(bad, vec![push("v-1", DocKind::Visit, changes.clone())]).encode();
        assert_refused(&server, &alice, &format!("device id {bad:?}"), body, 400, "bad_request").await;
    }

    // 3. One document pushed twice in one request.
    let body = request(
        "alice-phone",
        vec![push("v-1", DocKind::Visit, changes.clone()), push("v-1", DocKind::Visit, changes.clone())],
    )
    .encode();
    assert_refused(&server, &alice, "the same document twice", body, 400, "bad_request").await;

    // 4. Reading by an illegal id: 400 as well.
    for path in ["/v1/docs/a%2Fb", &format!("/v1/docs/{long}"), "/v1/docs/a%20b"] {
        let (status, body) = alice.get_json(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "bad_request", "{path}: {body}");
    }
    assert!(server.doc(TEAM, "v-1").is_none());
    a_normal_sync_still_works(&server).await;
}

#[tokio::test]
async fn a_push_of_more_documents_than_allowed_at_once_gets_413() {
    // 1. One document more than the engine takes in one request (empty pushes: tiny on the wire).
    let (server, alice) = team_and_alice().await;
    let max = server.server().engine().config().max_push_docs;
    let pushes = (0..=max).map(|i| push(&format!("v-{i}"), DocKind::Visit, vec![])).collect();
    let body = request("alice-phone", pushes).encode();

    // 2. Too large, nothing stored.
    assert_refused(&server, &alice, "too many documents", body, 413, "too_large").await;
    a_normal_sync_still_works(&server).await;
}

// ---------------------------------------------------------------------------------------------
// Wire fixtures
// ---------------------------------------------------------------------------------------------

#[test]
fn corrupt_wire_fixtures_never_decode() {
    // 1. Frames that are broken in every part: magic, version, flags, deflate stream, CBOR.
    let fixtures: &[(&str, &[u8])] = &[
        ("empty", b""),
        ("one byte", b"F"),
        ("magic only", b"FSYN"),
        ("no flags byte", b"FSYN\x01"),
        ("header only", b"FSYN\x01\x00"),
        ("bad magic", b"FSYM\x01\x00\xa0"),
        ("HTTP", b"HTTP/1.1 200 OK\r\n\r\n"),
        ("future version", b"FSYN\x02\x00\xa0"),
        ("version zero", b"FSYN\x00\x00\xa0"),
        ("unknown flags", b"FSYN\x01\x02\xa0"),
        ("all flags", b"FSYN\x01\xff\xa0"),
        ("bad deflate", b"FSYN\x01\x01\xff\xff"),
        ("deflate, reserved block type", b"FSYN\x01\x01\x07\x00\x00"),
        ("deflate flag on an empty body", b"FSYN\x01\x01"),
        ("CBOR break byte", b"FSYN\x01\x00\xff"),
        ("CBOR empty map", b"FSYN\x01\x00\xa0"),
        ("CBOR map cut short", b"FSYN\x01\x00\xa3\x69device_id"),
        ("CBOR array claiming 2^64 - 1 items", b"FSYN\x01\x00\x9b\xff\xff\xff\xff\xff\xff\xff\xff"),
        (
            "CBOR map whose push claims 2^32 items",
            b"FSYN\x01\x00\xa3\x69device_id\x61d\x66cursor\x65Start\x64push\x9a\xff\xff\xff\xff",
        ),
        (
            "CBOR byte string claiming 64 GiB",
            b"FSYN\x01\x00\xa3\x69device_id\x5b\x00\x00\x00\x10\x00\x00\x00\x00",
        ),
        ("CBOR tag soup", b"FSYN\x01\x00\xc6\xc6\xc6\xc6\xc6\xc6\xc6\xc6"),
        ("JSON", b"FSYN\x01\x00{\"device_id\":\"d\",\"cursor\":\"Start\",\"push\":[]}"),
    ];

    // 2. Each one is an error, never a panic or a huge allocation.
    let mut deep = b"FSYN\x01\x00".to_vec();
    deep.extend_from_slice(&[0x81; 100_000]); // arrays of one array, 100 000 deep
    let deep_fixture: &[u8] = &deep;
    for (name, bytes) in fixtures.iter().chain([&("CBOR nested 100 000 deep", deep_fixture)]) {
        assert!(SyncRequest::decode(bytes).is_err(), "{name} must not decode as a request");
        assert!(SyncResponse::decode(bytes).is_err(), "{name} must not decode as a response");
    }

    // 3. The errors say what is wrong.
    assert!(matches!(SyncRequest::decode(b"FSYM\x01\x00\xa0"), Err(WireError::BadMagic)));
    assert!(matches!(SyncRequest::decode(b"FSYN\x02\x00\xa0"), Err(WireError::UnsupportedVersion(2))));
    assert!(matches!(SyncRequest::decode(b"FSYN\x01\x02\xa0"), Err(WireError::UnknownFlags(2))));
    assert!(matches!(SyncRequest::decode(b"FSYN\x01"), Err(WireError::Truncated)));
    assert!(matches!(SyncRequest::decode(b"FSYN\x01\x00\xa0"), Err(WireError::Malformed(_))));
}

#[tokio::test]
async fn the_corrupt_wire_fixtures_posted_to_the_server_get_400_and_it_keeps_serving() {
    // 1. A few of the fixtures above, over HTTP.
    let (server, alice) = team_and_alice().await;
    let cases: &[(&[u8], &str)] = &[
        (b"FSYN\x01\xff\xff", "malformed"),
        (b"FSYN\x01\x01\xff\xff", "malformed"),
        (b"FSYN\x02\x00\xa0", "unsupported_version"),
        (b"FSYN\x01\x00\x9b\xff\xff\xff\xff\xff\xff\xff\xff", "malformed"),
        (b"FSYN\x01\x00\xa3\x69device_id\x5b\x00\x00\x00\x10\x00\x00\x00\x00", "malformed"),
    ];

    // 2. Each refused with 400 and a JSON error; nothing stored.
    for (bytes, code) in cases {
        assert_refused(&server, &alice, &format!("{bytes:x?}"), bytes.to_vec(), 400, code).await;
    }
    a_normal_sync_still_works(&server).await;
}
