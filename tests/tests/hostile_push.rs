//! Hostile pushes through the real HTTP path (issue 8): a push that would hold the team hostage,
//! probing ids, forging authorship, and filling the quarantine. The server keeps serving the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use automerge::ActorId;
use automerge::transaction::Transactable;
use fieldsync_core::Role;
use fieldsync_core::docs::{DocKind, Document, Tier};
use fieldsync_core::engine::{QuarantineQuota, is_server_actor};
use fieldsync_core::storage::Storage as _;
use fieldsync_e2e::fixtures::{LYON, checkin, on_visit, replace_notes, visit};
use fieldsync_e2e::{
    MORNING_MS, TestServer, changes_since, customer_of, edit_typed, notes_then_a_tier_change,
    tampered_changes, visit_of,
};

const TEAM: &str = "acme";

async fn team() -> TestServer {
    fieldsync_e2e::two_reps(TEAM).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_of_sixteen_thousand_changes_with_one_refused_is_decided_without_stalling_the_team() {
    // 1. Alice pushes 16 000 small note edits of her customer and then one tier change (not hers
    //    to make), in one request.
    let server = team().await;
    let alice = server.add_device("alice-phone", TEAM, "alice", Role::Rep);
    let changes = notes_then_a_tier_change(&server, TEAM, "c-alice", 16_000);
    assert_eq!(changes.len(), 16_001);
    let req = alice.push_request("c-alice", DocKind::Customer, changes);

    // 2. While it is decided, bob syncs and /healthz answers, again and again.
    let in_flight = Arc::new(AtomicBool::new(true));
    let hostile = {
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            let resp = alice.exchange(&req).await;
            in_flight.store(false, Ordering::SeqCst);
            resp
        })
    };
    let mut bob = server.add_device("bob-phone", TEAM, "bob", Role::Rep);
    bob.sync().await.expect("bob bootstraps");
    let http = reqwest::Client::new();
    let mut served_during = 0;
    for n in 0..100_000 {
        bob.replica
            .update("v-bob", MORNING_MS, on_visit(|v| v.notes.update(format!("bob {n}"))))
            .expect("bob's note");
        bob.sync().await.expect("bob's sync is served");
        let health = http.get(format!("{}/healthz", server.url())).send().await.expect("healthz");
        assert_eq!(health.status(), 200);
        if !in_flight.load(Ordering::SeqCst) {
            break;
        }
        served_during += 1;
    }
    let resp = hostile.await.expect("alice's task").expect("alice's push is answered");
    assert!(served_during >= 1, "bob was served while alice's push was decided");

    // 3. Every note edit is kept, the tier change alone is refused and quarantined.
    assert_eq!(resp.rejected.len(), 1, "{:?}", resp.rejected);
    assert_eq!(resp.rejected[0].code, "forbidden_field");
    assert_eq!(resp.rejected[0].hashes.len(), 1, "only the tier change");
    assert_eq!(resp.accepted.iter().map(|a| a.hashes.len()).sum::<usize>(), 16_000);
    let c = customer_of(server.doc(TEAM, "c-alice"));
    assert_eq!(c.notes.as_str().chars().count(), 16_000);
    assert_eq!(c.tier, Some(Tier::B));
    assert_eq!(server.server().engine().storage().quarantine(TEAM, 10).expect("quarantine").len(), 1);
    assert!(visit_of(server.doc(TEAM, "v-bob")).notes.as_str().starts_with("bob "));
}

#[tokio::test]
async fn out_of_scope_looks_exactly_like_missing() {
    // 1. Alice holds copies of bob's visit and customer (say, from before a reassignment).
    let server = team().await;
    let alice = server.add_device("alice-phone", TEAM, "alice", Role::Rep);
    let note = replace_notes("probe");
    let visit_edit = tampered_changes(&server.stored(TEAM, "v-bob"), "alice-phone", &note);
    let customer_edit = tampered_changes(&server.stored(TEAM, "c-bob"), "alice-phone", &note);

    // 2. She pushes them to the real ids, to ids that exist nowhere, and with the wrong kind.
    let probes = [
        ("v-bob", DocKind::Visit, visit_edit.clone()),
        ("v-nobody", DocKind::Visit, visit_edit.clone()),
        ("c-bob", DocKind::Customer, customer_edit.clone()),
        ("c-bob", DocKind::Visit, customer_edit.clone()),
        ("c-nobody", DocKind::Visit, customer_edit),
    ];
    let mut answers = Vec::new();
    for (id, kind, changes) in probes {
        let req = alice.push_request(id, kind, changes);
        let resp = alice.exchange(&req).await.unwrap_or_else(|e| panic!("{id} as {kind}: {e:?}"));
        assert!(resp.accepted.is_empty(), "{id}: {:?}", resp.accepted);
        assert_eq!(resp.rejected.len(), 1, "{id}");
        let r = &resp.rejected[0];
        answers.push((
            r.code.clone(),
            r.reason.clone(),
            r.server_doc.is_some(),
            resp.docs.len(),
            resp.changes.len(),
        ));
    }

    // 3. Every answer is the same: nothing tells an existing document from a missing one.
    assert_eq!(answers[0].0, "not_found", "{answers:?}");
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(visit_of(server.doc(TEAM, "v-bob")).notes.as_str(), "");
}

#[tokio::test]
async fn authorship_cannot_be_forged() {
    // 1. Alice checks in at her customer: the server writes its verdict, as its own actor, into the
    //    visit; any device in scope can read that actor from the change.
    let server = team().await;
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;
    let mut v = visit("v-alice", "c-alice", "alice", MORNING_MS);
    v.checkins.push(checkin("ci-1", LYON, 5.0, MORNING_MS));
    alice.replica.create(Document::Visit(v), MORNING_MS).expect("plan");
    alice.sync().await.expect("push");
    let held = alice.replica.doc_clone("v-alice").expect("held");
    let server_actor: ActorId = held
        .get_changes(&[])
        .iter()
        .map(|c| c.actor_id().clone())
        .find(is_server_actor)
        .expect("the verdict is the server's change");

    // 2. A change authored with that actor (rewriting the verdict as "verified") is refused.
    let mut fork = held.clone().with_actor(server_actor);
    let before = fork.get_heads();
    edit_typed(&mut fork, replace_notes("written as the server"));
    let bytes = changes_since(&fork, &before);
    let req = alice.push_request("v-alice", DocKind::Visit, bytes);
    let resp = alice.exchange(&req).await.expect("answered");
    assert_eq!(resp.rejected.len(), 1, "{:?}", resp.rejected);
    assert_eq!(resp.rejected[0].code, "server_actor");
    assert_ne!(visit_of(server.doc(TEAM, "v-alice")).notes.as_str(), "written as the server");

    // 3. A visit claiming to be created by someone else, or by the server, is refused.
    for claimed in ["maria", "server"] {
        let mut v = visit(&format!("v-{claimed}"), "c-alice", "alice", MORNING_MS);
        v.created_by = claimed.into();
        let mut scratch = fieldsync_core::testing::replica("alice-phone", TEAM, "alice", Role::Admin);
        scratch.create(Document::Visit(v.clone()), MORNING_MS).expect("scratch");
        let changes = scratch.local(&v.id).expect("held").pending().expect("pending");
        let req = alice.push_request(
            &v.id,
            DocKind::Visit,
            changes.iter().map(|c| c.raw_bytes().to_vec()).collect(),
        );
        let resp = alice.exchange(&req).await.expect("answered");
        assert_eq!(resp.rejected.len(), 1, "{claimed}: {:?}", resp.rejected);
        assert_eq!(resp.rejected[0].code, "wrong_owner", "{claimed}");
        assert!(server.doc(TEAM, &v.id).is_none());
    }
}

#[tokio::test]
async fn the_quarantine_keeps_a_bounded_digest_of_what_it_cannot_keep() {
    // 1. Bob pushes big edits to alice's customer (out of his scope), again and again.
    let server = team().await;
    let bob = server.add_device("bob-phone", TEAM, "bob", Role::Rep);
    let stored = server.stored(TEAM, "c-alice");
    let quota = QuarantineQuota::default();
    let big = "x".repeat(3 * 1024 * 1024);
    for n in 0..8 {
        // A big value under a key outside the schema: one operation, 3 MiB.
        let mut fork = stored.clone().with_actor(ActorId::from(format!("bob-{n}").into_bytes()));
        let before = fork.get_heads();
        fork.transact(|tx| tx.put(automerge::ROOT, "junk", format!("{n}{big}"))).expect("junk");
        let changes = changes_since(&fork, &before);
        let req = bob.push_request("c-alice", DocKind::Customer, changes);
        let resp = bob.exchange(&req).await.expect("answered");
        assert_eq!(resp.rejected.len(), 1);
    }

    // 2. Each is recorded, as a digest: too large to keep whole. The kept bytes stay in the quota.
    let entries = server.server().engine().storage().quarantine(TEAM, 100).expect("quarantine");
    assert_eq!(entries.len(), 8);
    for e in &entries {
        assert!(e.digest_only, "{e:?}");
        assert!(e.changes.is_empty());
        assert!(e.bytes > 3 * 1024 * 1024);
        assert_eq!(e.user, "bob");
    }
    let usage = server.server().engine().storage().quarantine_usage(TEAM, "bob").expect("usage");
    assert!(usage.bytes <= quota.bytes_per_user, "{usage:?}");
    assert_eq!(usage.entries, 8);
    assert_eq!(customer_of(server.doc(TEAM, "c-alice")).notes.as_str(), "");

    // 3. The manager sees them as digests in the quarantine list.
    let maria = server.add_device("maria-tablet", TEAM, "maria", Role::Manager);
    let (status, body) = maria.get_json("/v1/quarantine").await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 8);
    assert!(items.iter().all(|i| i["digest_only"] == true && i["changes"] == 1), "{body}");
}

#[tokio::test]
async fn more_changes_for_one_document_than_the_limit_are_refused_before_any_work() {
    // 1. 20 001 changes of one document in one push: one over the per-document bound.
    let server = team().await;
    let alice = server.add_device("alice-phone", TEAM, "alice", Role::Rep);
    let limit = server.server().engine().config().max_doc_changes;
    let changes = notes_then_a_tier_change(&server, TEAM, "c-alice", limit);
    assert_eq!(changes.len(), limit + 1);
    let head = server.server().engine().storage().feed_head(TEAM).expect("head");
    let req = alice.push_request("c-alice", DocKind::Customer, changes);

    // 2. Refused as too large, typed, and nothing is stored.
    match alice.exchange(&req).await {
        Err(fieldsync_e2e::DeviceError::Http { status, body }) => {
            assert_eq!(status, 413, "{body}");
            assert_eq!(body["error"], "too_large");
        }
        other => panic!("expected 413, got {other:?}"),
    }
    assert_eq!(server.server().engine().storage().feed_head(TEAM).expect("head"), head);
    assert!(server.server().engine().storage().quarantine(TEAM, 10).expect("quarantine").is_empty());
}
