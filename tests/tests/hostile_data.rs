//! Hostile data through the real HTTP path (issue 8, items 3 and 5): check-ins crafted to fool the
//! server's verification, and documents that would store unbounded data. Each attack is refused or
//! judged for what it is, and the server keeps serving the others.

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ObjType, ReadDoc, Value};
use fieldsync_core::Role;
use fieldsync_core::docs::limits::MAX_CHECKINS_PER_VISIT;
use fieldsync_core::docs::{Checkin, CheckinVerification, Checkout, DocKind, Document, Visit, VisitState};
use fieldsync_core::protocol::SyncResponse;
use fieldsync_core::storage::{Batch, DocData, DocWrite, FeedBody, SERVER_ORIGIN, Storage as _};
use fieldsync_e2e::fixtures::{LYON, checkin, customer, offset, on_customer, on_visit, visit};
use fieldsync_e2e::{
    Device, DeviceError, MORNING_MS, TestServer, changes_since, created_by_hand, customer_of, edit_typed,
    tampered_changes, visit_of,
};

const TEAM: &str = "acme";

/// Half an hour into the story's morning: when the honest check-ins happen.
const T: i64 = MORNING_MS + 30 * 60_000;
const SECOND: i64 = 1000;
const CENTURY_MS: i64 = 100 * 365 * 24 * 3_600_000;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The two reps' team ([`fieldsync_e2e::two_reps`]: alice's customer c-alice is in Lyon, bob has his
/// own and a planned visit), alice with two more customers 16.5 km and 16.8 km north of Lyon; and
/// alice's phone, bootstrapped. The server's clock is two hours into the morning, after every
/// honest check-in of the tests.
async fn team_and_alice() -> (TestServer, Device) {
    let server = fieldsync_e2e::two_reps(TEAM).await;
    let far =
        |id: &str, north_m: f64| customer(id, "alice", Some("t-alice"), offset(LYON, north_m, 0.0)).into();
    server.seed(TEAM, &[far("c-16k5", 16_500.0), far("c-16k8", 16_800.0)]);
    server.clock().set_ms(MORNING_MS + 2 * 3_600_000);
    let alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;
    (server, alice)
}

/// Alice checks in at `customer` with `ci` on her phone, the way her app does: a visit created
/// checked in, with the check-in.
fn create_checked_in(alice: &mut Device, visit_id: &str, customer: &str, ci: Checkin) {
    let v =
        Visit { state: VisitState::CheckedIn, checkins: vec![ci], ..visit(visit_id, customer, "alice", T) };
    alice.replica.create(v.into(), T).expect("the app checks in");
}

/// Alice checks in (see [`create_checked_in`]), syncs, and returns the server's verdict on it.
async fn check_in(
    server: &TestServer,
    alice: &mut Device,
    visit_id: &str,
    customer: &str,
    ci: Checkin,
) -> CheckinVerification {
    let ci_id = ci.id.clone();
    create_checked_in(alice, visit_id, customer, ci);
    let outcome = alice.sync().await.expect("the check-in is pushed");
    assert!(outcome.rejected().is_empty(), "{:?}", outcome.rejected());
    visit_of(server.doc(TEAM, visit_id))
        .verification
        .get(&ci_id)
        .cloned()
        .unwrap_or_else(|| panic!("the server judged {ci_id}"))
}

/// The verdict has this status and these reason codes, in order.
#[track_caller]
fn assert_verdict(v: &CheckinVerification, status: &str, codes: &[&str]) {
    let got: Vec<&str> = v.reasons.iter().map(|r| r.code.as_str()).collect();
    assert_eq!((v.status.as_str(), got.as_slice()), (status, codes), "{v:?}");
}

fn feed_head(server: &TestServer) -> u64 {
    server.server().engine().storage().feed_head(TEAM).expect("feed head")
}

fn stored(server: &TestServer, id: &str) -> Automerge {
    server.stored(TEAM, id)
}

/// A string of `len` letters and digits that deflate cannot shrink much, so that it reaches the
/// engine at its full size (a run of one letter would be refused earlier, as a compression bomb).
fn incompressible(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// The whole request was refused as an invalid document: 422 `invalid_document`, naming the
/// document and echoing none of the data.
fn assert_invalid_document(answer: Result<SyncResponse, DeviceError>, doc_id: &str) {
    match answer {
        Err(DeviceError::Http { status, body }) => {
            assert_eq!(status, 422, "{body}");
            assert_eq!(body["error"], "invalid_document", "{body}");
            assert_eq!(body["doc_id"], doc_id, "{body}");
            assert!(
                body.to_string().len() < 4096,
                "the refusal echoes the data: {} bytes",
                body.to_string().len()
            );
        }
        Ok(resp) => panic!(
            "{doc_id}: answered 200 ({} documents accepted, rejected {:?})",
            resp.accepted.len(),
            resp.rejected.iter().map(|r| (&r.doc_id, &r.code)).collect::<Vec<_>>()
        ),
        Err(other) => panic!("{doc_id}: {other:?}"),
    }
}

/// Writes an edit straight into the store, as an older build (which accepted it) left it: a change
/// of its own, in the feed for the document's audience.
fn store_as_an_older_build(server: &TestServer, id: &str, edit: impl FnOnce(&mut Document)) {
    let storage = server.server().engine().storage();
    let meta = storage.doc_meta(TEAM, id).expect("meta").expect("stored");
    let mut doc = stored(server, id).with_actor(ActorId::from(b"older-build".as_slice()));
    let before = doc.get_heads();
    edit_typed(&mut doc, edit);
    let chunk = doc.save_after(&before);
    let mut batch = Batch::new(TEAM, feed_head(server));
    batch.push_feed(
        id,
        meta.kind,
        SERVER_ORIGIN,
        meta.audience.clone(),
        FeedBody::Changes(chunk.clone().into()),
    );
    batch.docs.push(DocWrite {
        doc_id: id.into(),
        kind: meta.kind,
        audience: meta.audience,
        data: DocData::Append(chunk),
    });
    storage.commit(batch).expect("commit");
}

/// After the attacks, another rep syncs an edit and `/healthz` answers.
async fn the_server_keeps_serving(server: &TestServer) {
    let mut bob = server.add_device("bob-phone", TEAM, "bob", Role::Rep);
    bob.sync().await.expect("bob bootstraps");
    bob.replica
        .update("v-bob", MORNING_MS, on_visit(|v| v.notes.update("bob was here")))
        .expect("bob's note");
    let outcome = bob.sync().await.expect("bob's sync is served");
    assert!(outcome.rejected().is_empty(), "{:?}", outcome.rejected());
    assert_eq!(visit_of(server.doc(TEAM, "v-bob")).notes.as_str(), "bob was here");
    let (status, body) = bob.get_json("/healthz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
}

// ---------------------------------------------------------------------------------------------
// Check-in verification (item 3)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_check_in_dated_just_before_the_reps_last_one_is_judged_against_it_and_not_verified() {
    // 1. Alice checks in at her customer in Lyon: verified.
    let (server, mut alice) = team_and_alice().await;
    let first = check_in(&server, &mut alice, "v-1", "c-alice", checkin("ci-1", LYON, 5.0, T)).await;
    assert_eq!(first.status, "verified", "{first:?}");

    // 2. Her app then sends a check-in at the door of a customer 16.5 km away, dated 10 s before
    //    that one: no earlier check-in to compare it with.
    let far = offset(LYON, 16_500.0, 0.0);
    let v = check_in(&server, &mut alice, "v-2", "c-16k5", checkin("ci-2", far, 5.0, T - 10 * SECOND)).await;

    // 3. It is compared with the later one: 16.5 km in 10 s is impossible.
    assert_ne!(v.status, "verified", "{v:?}");
    assert_verdict(&v, "invalid", &["impossible_speed"]);
}

#[tokio::test]
async fn offline_check_ins_pushed_together_are_judged_in_the_order_they_happened_whatever_their_visit_ids() {
    // 1. Offline, alice checks in at her customer in Lyon, then, one second later, at a door
    //    16.5 km away: the later check-in sits in the visit whose id sorts first.
    let (server, mut alice) = team_and_alice().await;
    let far = offset(LYON, 16_500.0, 0.0);
    for (visit_id, customer, ci) in [
        ("v-b-first", "c-alice", checkin("ci-first", LYON, 5.0, T)),
        ("v-a-second", "c-16k5", checkin("ci-second", far, 5.0, T + SECOND)),
    ] {
        create_checked_in(&mut alice, visit_id, customer, ci);
    }

    // 2. Both reach the server in one push.
    let outcome = alice.sync().await.expect("the check-ins are pushed");
    assert!(outcome.rejected().is_empty(), "{:?}", outcome.rejected());

    // 3. The one that happened first is the reference; the second, 16.5 km in one second later,
    //    is impossible.
    let verdict = |visit_id: &str, ci: &str| {
        visit_of(server.doc(TEAM, visit_id)).verification.get(ci).cloned().expect("judged")
    };
    assert_verdict(&verdict("v-b-first", "ci-first"), "verified", &[]);
    assert_verdict(&verdict("v-a-second", "ci-second"), "invalid", &["impossible_speed"]);
}

#[tokio::test]
async fn a_check_in_dated_a_century_ahead_is_invalid_and_does_not_blind_the_speed_check() {
    // 1. Alice's app sends a check-in at her customer, dated 100 years ahead.
    let (server, mut alice) = team_and_alice().await;
    let future =
        check_in(&server, &mut alice, "v-1", "c-alice", checkin("ci-1", LYON, 5.0, T + CENTURY_MS)).await;

    // 2. Then two check-ins 16.8 km and one second apart, each at a customer's door.
    let a = check_in(&server, &mut alice, "v-2", "c-alice", checkin("ci-2", LYON, 5.0, T)).await;
    let far = offset(LYON, 16_800.0, 0.0);
    let b = check_in(&server, &mut alice, "v-3", "c-16k8", checkin("ci-3", far, 5.0, T + SECOND)).await;

    // 3. The pair is judged against each other, not against the far-future fix: the second one is
    //    impossible.
    assert_eq!(a.status, "verified", "{a:?}");
    assert_ne!(b.status, "verified", "16.8 km in one second: {b:?}");
    assert_verdict(&b, "invalid", &["impossible_speed"]);

    // 4. The far-future fix is invalid, not merely flagged.
    assert_verdict(&future, "invalid", &["clock_skew"]);
}

#[tokio::test]
async fn a_fix_1150_m_away_claiming_999_m_accuracy_is_not_verified() {
    // 1. Alice's app sends a fix 1 150 m from her customer with an accuracy of ±999 m: the accuracy
    //    would cover the distance.
    let (server, mut alice) = team_and_alice().await;
    let vague = checkin("ci-1", offset(LYON, 1_150.0, 0.0), 999.0, T);
    let v = check_in(&server, &mut alice, "v-1", "c-alice", vague).await;

    // 2. Not verified: outside the fence, and too vague to say otherwise.
    assert_ne!(v.status, "verified", "{v:?}");
    assert_verdict(&v, "flagged", &["outside_fence", "poor_accuracy"]);
}

#[tokio::test]
async fn a_rep_cannot_widen_a_fence_and_a_stored_100_km_fence_is_clamped() {
    // 1. Alice's app refuses to create a prospect of hers with a fence of its own.
    let (mut server, mut alice) = team_and_alice().await;
    let mut prospect = customer("c-prospect", "alice", None, LYON);
    prospect.created_by = "alice".into();
    prospect.tier = None;
    let mut fenced = prospect.clone();
    fenced.geofence_m = Some(100_000.0);
    assert!(alice.replica.create(Document::Customer(fenced.clone()), T).is_err());

    // 2. Built by hand and pushed with her token, a 100 km fence is refused as out of bounds, and a
    //    fence within bounds as hers not to set. Nothing is stored.
    let head = feed_head(&server);
    let hundred_km = created_by_hand("alice-tampered", &Document::Customer(fenced.clone()));
    let req = alice.push_request("c-prospect", DocKind::Customer, hundred_km);
    assert_invalid_document(alice.exchange(&req).await, "c-prospect");
    fenced.geofence_m = Some(2_000.0);
    let two_km = created_by_hand("alice-tampered", &Document::Customer(fenced));
    let req = alice.push_request("c-prospect", DocKind::Customer, two_km);
    let resp = alice.exchange(&req).await.expect("refused per document");
    assert!(resp.accepted.is_empty(), "{:?}", resp.accepted);
    let refusals: Vec<(&str, &str)> =
        resp.rejected.iter().map(|r| (r.code.as_str(), r.reason.as_str())).collect();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].0, "forbidden_field");
    assert!(refusals[0].1.contains("geofence"), "{refusals:?}");
    assert!(server.doc(TEAM, "c-prospect").is_none());
    assert_eq!(feed_head(&server), head);

    // 3. A customer whose manager set a 100 km fence under an older build, which accepted it; the
    //    server is upgraded.
    server.seed(TEAM, &[Document::Customer(customer("c-fenced", "alice", Some("t-alice"), LYON))]);
    store_as_an_older_build(&server, "c-fenced", on_customer(|c| c.geofence_m = Some(100_000.0)));
    server.restart().await;
    assert_eq!(customer_of(server.doc(TEAM, "c-fenced")).geofence_m, Some(100_000.0));

    // 4. Alice checks in there from 60 km away: outside the fence, which counts as 2 km at most.
    let mut alice = server.add_device("alice-tablet", TEAM, "alice", Role::Rep);
    alice.sync().await.expect("alice bootstraps on her tablet");
    let v = check_in(
        &server,
        &mut alice,
        "v-1",
        "c-fenced",
        checkin("ci-1", offset(LYON, 60_000.0, 0.0), 5.0, T),
    )
    .await;
    assert_ne!(v.status, "verified", "{v:?}");
    assert_verdict(&v, "flagged", &["outside_fence"]);
    assert!(v.reasons[0].message.ends_with("allowed 2000 m"), "{v:?}");
}

#[tokio::test]
async fn a_check_in_dated_i64_min_is_invalid() {
    // 1. Alice checks in at her customer: verified.
    let (server, mut alice) = team_and_alice().await;
    let honest = check_in(&server, &mut alice, "v-1", "c-alice", checkin("ci-1", LYON, 5.0, T)).await;
    assert_eq!(honest.status, "verified", "{honest:?}");

    // 2. Her app sends another one at the same door, dated i64::MIN: every speed from it is ~0.
    let v = check_in(&server, &mut alice, "v-2", "c-alice", checkin("ci-2", LYON, 5.0, i64::MIN)).await;

    // 3. Invalid: no check-in is dated before 2020.
    assert_verdict(&v, "invalid", &["invalid_fix"]);
    assert!(v.reasons[0].message.contains("before 2020"), "{v:?}");
}

// ---------------------------------------------------------------------------------------------
// Unbounded data (item 5)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_key_outside_the_schema_is_refused_whatever_its_size_and_nothing_is_stored() {
    // 1. Alice's app stores a 30 MiB value under a root key the schema does not have, on a customer
    //    assigned to her.
    let (server, mut alice) = team_and_alice().await;
    let head = feed_head(&server);
    let mut fork = stored(&server, "c-alice").with_actor(ActorId::from(b"alice-tampered".as_slice()));
    let before = fork.get_heads();
    let junk = incompressible(30 * 1024 * 1024);
    fork.transact(|tx| tx.put(automerge::ROOT, "junk", junk)).expect("junk");
    let changes = changes_since(&fork, &before);
    let req = alice.push_request("c-alice", DocKind::Customer, changes);

    // 2. The whole request is refused; the customer has no such key and the feed did not move.
    assert_invalid_document(alice.exchange(&req).await, "c-alice");
    assert!(stored(&server, "c-alice").get(automerge::ROOT, "junk").expect("read").is_none());
    assert_eq!(feed_head(&server), head);

    // 3. A small key slipped into a check-in of her visit is refused the same way.
    let first = check_in(&server, &mut alice, "v-1", "c-alice", checkin("ci-1", LYON, 5.0, T)).await;
    assert_eq!(first.status, "verified");
    let head = feed_head(&server);
    let mut fork = stored(&server, "v-1").with_actor(ActorId::from(b"alice-tampered".as_slice()));
    let before = fork.get_heads();
    let entry = |doc: &Automerge| {
        let Some((Value::Object(ObjType::List), list)) = doc.get(automerge::ROOT, "checkins").expect("read")
        else {
            panic!("the visit has a list of check-ins")
        };
        let Some((Value::Object(ObjType::Map), entry)) = doc.get(&list, 0).expect("read") else {
            panic!("the check-in is a map")
        };
        entry
    };
    let ci = entry(&fork);
    fork.transact(|tx| tx.put(&ci, "selfie", "ok")).expect("stray key");
    let changes = changes_since(&fork, &before);
    let req = alice.push_request("v-1", DocKind::Visit, changes);
    assert_invalid_document(alice.exchange(&req).await, "v-1");
    let kept = stored(&server, "v-1");
    assert!(kept.get(entry(&kept), "selfie").expect("read").is_none());
    assert_eq!(feed_head(&server), head);

    // 4. The server keeps serving.
    the_server_keeps_serving(&server).await;
}

#[tokio::test]
async fn a_visit_with_a_ten_megabyte_created_by_is_refused() {
    // 1. Alice's app creates a visit whose author is 10 MB of letters and digits.
    let (server, alice) = team_and_alice().await;
    let head = feed_head(&server);
    let mut v = visit("v-big", "c-alice", "alice", T);
    v.created_by = incompressible(10_000_000);
    let changes = created_by_hand("alice-tampered", &Document::Visit(v));
    let req = alice.push_request("v-big", DocKind::Visit, changes);

    // 2. The whole request is refused and nothing is stored.
    assert_invalid_document(alice.exchange(&req).await, "v-big");
    assert!(server.doc(TEAM, "v-big").is_none());
    assert_eq!(feed_head(&server), head);

    // 3. The server keeps serving.
    the_server_keeps_serving(&server).await;
}

#[tokio::test]
async fn more_check_ins_on_one_visit_than_the_limit_are_refused_and_the_limit_is_accepted() {
    // 1. Alice plans a visit.
    let (server, mut alice) = team_and_alice().await;
    alice.replica.create(Document::Visit(visit("v-1", "c-alice", "alice", T)), T).expect("plan");
    assert!(alice.sync().await.expect("push").rejected().is_empty());
    let head = feed_head(&server);
    let checkins = |n: usize| -> Vec<Checkin> {
        (0..n).map(|i| checkin(&format!("ci-{i}"), LYON, 5.0, T + i as i64 * 60 * SECOND)).collect()
    };
    let with_checkins = |n: usize| {
        tampered_changes(&stored(&server, "v-1"), "alice-tampered", on_visit(|v| v.checkins = checkins(n)))
    };

    // 2. Her app appends one check-in more than a visit may hold: the whole request is refused.
    let req = alice.push_request("v-1", DocKind::Visit, with_checkins(MAX_CHECKINS_PER_VISIT + 1));
    assert_invalid_document(alice.exchange(&req).await, "v-1");
    assert!(visit_of(server.doc(TEAM, "v-1")).checkins.is_empty());
    assert_eq!(feed_head(&server), head);

    // 3. Exactly the limit is accepted, and every check-in is judged.
    let req = alice.push_request("v-1", DocKind::Visit, with_checkins(MAX_CHECKINS_PER_VISIT));
    let resp = alice.exchange(&req).await.expect("accepted");
    assert!(resp.rejected.is_empty(), "{:?}", resp.rejected);
    let v = visit_of(server.doc(TEAM, "v-1"));
    assert_eq!((v.checkins.len(), v.verification.len()), (MAX_CHECKINS_PER_VISIT, MAX_CHECKINS_PER_VISIT));

    // 4. The server keeps serving.
    the_server_keeps_serving(&server).await;
}

#[tokio::test]
async fn a_rep_completing_a_visit_without_a_check_in_is_refused_unless_it_is_a_remote_contact() {
    // 1. Alice's app refuses to create a visit completed without a check-in.
    let (server, mut alice) = team_and_alice().await;
    let mut done = visit("v-done", "c-alice", "alice", T);
    done.state = VisitState::Completed;
    done.checkout =
        Some(Checkout { device_time_ms: T, outcome: "met the buyer".into(), next_step: String::new() });
    assert!(alice.replica.create(Document::Visit(done.clone()), T).is_err());

    // 2. Built by hand and pushed with her token: refused as a bad transition, nothing stored.
    let changes = created_by_hand("alice-tampered", &Document::Visit(done.clone()));
    let req = alice.push_request("v-done", DocKind::Visit, changes);
    let resp = alice.exchange(&req).await.expect("refused per document");
    assert!(resp.accepted.is_empty(), "{:?}", resp.accepted);
    let codes: Vec<&str> = resp.rejected.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["bad_transition"]);
    assert!(server.doc(TEAM, "v-done").is_none());

    // 3. Marking a planned visit completed without a check-in is refused the same way.
    alice.replica.create(Document::Visit(visit("v-planned", "c-alice", "alice", T)), T).expect("plan");
    assert!(alice.sync().await.expect("push").rejected().is_empty());
    alice
        .replica
        .update_unchecked(
            "v-planned",
            T,
            on_visit(|v| {
                v.state = VisitState::Completed;
                v.checkout = done.checkout.clone();
            }),
        )
        .expect("tampered write");
    let outcome = alice.sync().await.expect("sync");
    let codes: Vec<&str> = outcome.rejected().iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["bad_transition"]);
    assert_eq!(visit_of(server.doc(TEAM, "v-planned")).state, VisitState::Planned);

    // 4. A remote contact (a far customer served by phone) is completed without a check-in.
    let mut remote = visit("v-remote", "c-alice", "alice", T);
    remote.state = VisitState::Completed;
    remote.checkout =
        Some(Checkout { device_time_ms: T, outcome: "Remote: phone call".into(), next_step: String::new() });
    alice.replica.create(Document::Visit(remote), T).expect("a remote contact");
    let outcome = alice.sync().await.expect("sync");
    assert!(outcome.rejected().is_empty(), "{:?}", outcome.rejected());
    assert_eq!(visit_of(server.doc(TEAM, "v-remote")).state, VisitState::Completed);

    // 5. The server keeps serving.
    the_server_keeps_serving(&server).await;
}
