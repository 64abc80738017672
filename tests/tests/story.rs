//! The spine, end to end: reps work offline, sync over real HTTP with a real server on loopback, and
//! a manager sees what happened.

use fieldsync_core::Role;
use fieldsync_core::docs::{Document, Tier, VisitState};
use fieldsync_core::geo::{
    self, CheckinContext, CheckinFix, Datum, LatLon, VerificationStatus, VerifyConfig,
};
use fieldsync_core::storage::Storage as _;
use fieldsync_e2e::fixtures::{self, LYON, offset, on_customer, prepend_notes};
use fieldsync_e2e::{DeviceError, MORNING_MS, TestServer, assert_converged};
use fieldsync_e2e::{customer_of, visit_of};

const TEAM: &str = "acme";

/// A team with one shared territory (alice and bob), one customer in it, and a plan-free setup.
async fn team_with_shared_customer() -> TestServer {
    TestServer::seeded(TEAM, &fixtures::territory_with_customer("terr-1", &["alice", "bob"], "cust-1")).await
}

#[tokio::test]
async fn two_reps_work_offline_and_the_manager_sees_both_visits_the_merged_notes_and_the_flag() {
    // 1. A team: alice and bob share a territory with one customer; maria manages.
    let server = team_with_shared_customer().await;
    let mut alice = server.add_device("alice-phone", TEAM, "alice", Role::Rep);
    let mut bob = server.add_device("bob-phone", TEAM, "bob", Role::Rep);
    let mut maria = server.add_device("maria-tablet", TEAM, "maria", Role::Manager);

    // 2. Morning sync at the office: both reps receive the customer.
    alice.sync().await.expect("alice bootstraps");
    bob.sync().await.expect("bob bootstraps");
    assert!(alice.doc("cust-1").is_some() && bob.doc("cust-1").is_some());

    // 3. Out in the field, no network.
    alice.go_offline();
    bob.go_offline();
    let now = MORNING_MS + 3_600_000;

    // 4. Alice plans a visit, checks in at the door, writes notes.
    let mut v1 = fixtures::visit("visit-alice-1", "cust-1", "alice", now);
    v1.checkins.push(fixtures::checkin("ci-a1", offset(LYON, 20.0, 10.0), 8.0, now));
    v1.state = VisitState::CheckedIn;
    v1.notes = "Owner wants the spring catalogue.".into();
    alice.replica.create(Document::Visit(v1), now).expect("alice plans and checks in");

    // 5. Bob does the same, but checks in 600 m away; his phone flags it on the spot.
    let bob_fix = offset(LYON, 600.0, 0.0);
    let on_the_spot = geo::verify_checkin(&CheckinContext {
        fix: &CheckinFix {
            point: LatLon { lat: bob_fix.0, lon: bob_fix.1 },
            accuracy_m: 10.0,
            device_time_ms: now,
            mock_location: false,
        },
        customer: LatLon { lat: LYON.0, lon: LYON.1 },
        customer_datum: Datum::Wgs84,
        fence_override_m: None,
        previous: None,
        received_at_ms: None,
        config: &VerifyConfig::default(),
    });
    assert_eq!(on_the_spot.status, VerificationStatus::Flagged);
    let mut v2 = fixtures::visit("visit-bob-1", "cust-1", "bob", now);
    v2.checkins.push(fixtures::checkin("ci-b1", bob_fix, 10.0, now + 60_000));
    v2.state = VisitState::CheckedIn;
    bob.replica.create(Document::Visit(v2), now).expect("bob plans and checks in");

    // 6. Both edit the same customer's notes at the same time.
    alice
        .replica
        .update("cust-1", now, prepend_notes("Alice: ordered 3 pallets. "))
        .expect("alice edits the notes");
    bob.replica.update("cust-1", now, prepend_notes("Bob: asks for a demo. ")).expect("bob edits the notes");

    // 7. Offline, nothing leaves the phone.
    assert!(matches!(alice.sync().await, Err(DeviceError::Offline)));
    assert_eq!(alice.replica.outbox_len(), 2);

    // 8. Back online two hours later: both sync.
    server.clock().set_ms(now + 2 * 3_600_000);
    alice.go_online();
    bob.go_online();
    let a = alice.sync().await.expect("alice syncs");
    let b = bob.sync().await.expect("bob syncs");
    assert!(a.rejected().is_empty() && b.rejected().is_empty(), "honest edits are accepted");
    assert_eq!(alice.replica.outbox_len(), 0);
    assert_eq!(bob.replica.outbox_len(), 0);

    // 9. The manager syncs and sees both visits, both notes, and bob's flag with its reason.
    maria.sync().await.expect("maria syncs");
    let seen_v1 = visit_of(maria.doc("visit-alice-1"));
    let seen_v2 = visit_of(maria.doc("visit-bob-1"));
    assert_eq!(seen_v1.verification["ci-a1"].status, "verified");
    let flag = &seen_v2.verification["ci-b1"];
    assert_eq!(flag.status, "flagged");
    assert!(flag.reasons.iter().any(|r| r.code == "outside_fence"), "reasons: {:?}", flag.reasons);
    assert!(flag.distance_m > 550.0 && flag.distance_m < 650.0, "distance {}", flag.distance_m);
    let notes = customer_of(maria.doc("cust-1")).notes.as_str().to_string();
    assert!(
        notes.contains("Alice: ordered 3 pallets.") && notes.contains("Bob: asks for a demo."),
        "merged notes: {notes:?}"
    );

    // 10. The reps pull again and everybody agrees with the server, document by document.
    alice.sync().await.expect("alice pulls");
    bob.sync().await.expect("bob pulls");
    assert_eq!(customer_of(alice.doc("cust-1")).notes.as_str(), notes);
    assert_eq!(customer_of(bob.doc("cust-1")).notes.as_str(), notes);
    // Alice sees the server's verdict on her own check-in.
    assert_eq!(visit_of(alice.doc("visit-alice-1")).verification["ci-a1"].status, "verified");
    // A rep never receives another rep's visits.
    assert!(bob.doc("visit-alice-1").is_none() && alice.doc("visit-bob-1").is_none());
    assert_converged(&server, TEAM, &[&alice, &bob, &maria]);
}

#[tokio::test]
async fn the_same_push_sent_twice_creates_no_duplicates() {
    // 1. Alice plans a visit offline.
    let server = team_with_shared_customer().await;
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;
    alice
        .replica
        .create(fixtures::visit("v-1", "cust-1", "alice", MORNING_MS).into(), MORNING_MS)
        .expect("plan");
    let head_before = server.server().engine().storage().feed_head(TEAM).expect("head");

    // 2. She pushes; the answer is lost on the way back.
    let req = alice.replica.prepare_request();
    let lost = alice.exchange(&req).await.expect("first push");
    assert_eq!(lost.accepted.len(), 1);
    let head_after_first = server.server().engine().storage().feed_head(TEAM).expect("head");
    assert_eq!(head_after_first, head_before + 1, "one feed entry for the new visit");

    // 3. The phone retries the very same request.
    let again = alice.exchange(&req).await.expect("retry");
    assert_eq!(again.accepted, lost.accepted, "the same changes are acknowledged again");
    assert!(again.rejected.is_empty());
    assert_eq!(
        server.server().engine().storage().feed_head(TEAM).expect("head"),
        head_after_first,
        "nothing new was recorded"
    );
    alice.replica.apply_response(&again).expect("apply");
    assert_eq!(alice.replica.outbox_len(), 0);

    // 4. The manager sees exactly one visit with exactly the phone's history.
    let mut maria = server.add_device("maria-tablet", TEAM, "maria", Role::Manager);
    maria.sync().await.expect("maria syncs");
    assert!(maria.doc("v-1").is_some());
    assert_converged(&server, TEAM, &[&alice, &maria]);
}

#[tokio::test]
async fn a_server_restart_between_push_and_pull_loses_nothing_acknowledged() {
    // 1. Alice checks in and syncs: the server acknowledges.
    let mut server = team_with_shared_customer().await;
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;
    let mut v = fixtures::visit("v-1", "cust-1", "alice", MORNING_MS);
    v.checkins.push(fixtures::checkin("ci-1", LYON, 5.0, MORNING_MS));
    alice.replica.create(Document::Visit(v), MORNING_MS).expect("plan");
    alice.sync().await.expect("push");
    assert_eq!(alice.replica.outbox_len(), 0, "acknowledged");

    // 2. The server goes down; a sync attempt fails and keeps the outbox.
    server.stop().await;
    alice
        .replica
        .update("v-1", MORNING_MS, prepend_notes("second thoughts"))
        .expect("edit while the server is down");
    assert!(matches!(alice.sync().await, Err(DeviceError::Transport(_))));
    assert_eq!(alice.replica.outbox_len(), 1, "the unsent edit waits");

    // 3. The server comes back on the same files; alice's retry goes through.
    server.restart().await;
    alice.sync().await.expect("retry after restart");

    // 4. The manager, syncing after the restart, sees everything alice was told was saved.
    let mut maria = server.add_device("maria-tablet", TEAM, "maria", Role::Manager);
    maria.sync().await.expect("maria syncs");
    let v = visit_of(maria.doc("v-1"));
    assert_eq!(v.checkins.len(), 1);
    assert_eq!(v.notes.as_str(), "second thoughts");
    assert_eq!(v.verification["ci-1"].status, "verified");
    alice.sync().await.expect("alice pulls the verdict");
    assert_converged(&server, TEAM, &[&alice, &maria]);
}

#[tokio::test]
async fn a_rep_changing_a_tier_offline_is_rejected_and_quarantined_while_the_rest_is_accepted() {
    // 1. Alice holds the customer.
    let server = team_with_shared_customer().await;
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;

    // 2. Offline she writes a note (allowed), and an outdated app lets her promote the customer to
    //    tier A (not allowed); she also plans a visit.
    alice.replica.update("cust-1", MORNING_MS, prepend_notes("Big order coming.")).expect("note");
    let promote = || on_customer(|c| c.tier = Some(Tier::A));
    let local_refusal = alice.replica.update("cust-1", MORNING_MS, promote());
    assert!(local_refusal.is_err(), "the library refuses it before writing");
    alice.replica.update_unchecked("cust-1", MORNING_MS, promote()).expect("tampered write");
    alice
        .replica
        .create(fixtures::visit("v-1", "cust-1", "alice", MORNING_MS).into(), MORNING_MS)
        .expect("plan");

    // 3. Sync: the tier change is refused with its reason, the rest is accepted.
    let outcome = alice.sync().await.expect("sync");
    let rejected = outcome.rejected();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].doc_id, "cust-1");
    assert_eq!(rejected[0].code, "forbidden_field");
    assert!(rejected[0].reason.contains("tier"), "{}", rejected[0].reason);
    assert_eq!(rejected[0].changes.len(), 1, "exactly the tier change");
    assert_eq!(alice.replica.rejected().len(), 1, "kept on the device for the user");

    // 4. The device was reset to the server's version: the note is there, the tier is not.
    let c = customer_of(alice.doc("cust-1"));
    assert_eq!(c.tier, Some(Tier::B));
    assert_eq!(c.notes.as_str(), "Big order coming.");
    let on_server = customer_of(server.doc(TEAM, "cust-1"));
    assert_eq!(on_server.tier, Some(Tier::B));
    assert_eq!(on_server.notes.as_str(), "Big order coming.");
    assert!(server.doc(TEAM, "v-1").is_some(), "the visit in the same push was accepted");

    // 5. The manager finds it in the quarantine, with who, what and why.
    let maria = server.add_device("maria-tablet", TEAM, "maria", Role::Manager);
    let (status, body) = maria.get_json("/v1/quarantine").await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["doc_id"], "cust-1");
    assert_eq!(items[0]["user"], "alice");
    assert_eq!(items[0]["device"], "alice-phone");
    assert_eq!(items[0]["code"], "forbidden_field");
    // What she tried to write, readable without decoding the changes.
    assert_eq!(items[0]["attempted"]["tier"], "A", "{}", items[0]);
    assert_eq!(items[0]["attempted"]["notes"], "Big order coming.", "{}", items[0]);
    // A rep may not read the quarantine.
    assert_eq!(alice.get_json("/v1/quarantine").await.0, 403);
    // Syncing again is quiet: nothing is pushed twice.
    let again = alice.sync().await.expect("sync again");
    assert!(again.rejected().is_empty());
    assert_converged(&server, TEAM, &[&alice]);
}
