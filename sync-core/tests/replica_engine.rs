//! The protocol without sockets: replicas and the engine exchange messages as data.

use fieldsync_core::Role;
use fieldsync_core::client::Replica;
use fieldsync_core::docs::*;
use fieldsync_core::engine::SyncEngine;
use fieldsync_core::protocol::Cursor;
use fieldsync_core::storage::{MemoryStorage, Storage};
use fieldsync_core::testing::fixtures::{self, checkin, on_customer, on_visit, prepend_notes};
use fieldsync_core::testing::{memory_engine as engine_with, replica, sync_until_idle as sync};

const TEAM: &str = "t";

/// A visit of `rep`'s at cust-1, already checked in there.
fn visit(id: &str, rep: &str) -> Document {
    let mut v = fixtures::visit(id, "cust-1", rep, 0);
    v.checkins.push(checkin(&format!("{id}-c1"), (45.0, 4.0), 5.0, 0));
    Document::Visit(v)
}

/// Alice's phone, where she plans visits `ids` offline, then syncs with `engine`.
fn alice_with_visits<I: AsRef<str>>(
    engine: &SyncEngine<MemoryStorage>,
    ids: impl IntoIterator<Item = I>,
) -> Replica {
    let mut alice = replica("p1", TEAM, "alice", Role::Rep);
    for id in ids {
        alice.create(visit(id.as_ref(), "alice"), 0).expect("plan");
    }
    sync(engine, &mut alice, 1);
    alice
}

/// v00, v01, … : `n` visit ids.
fn numbered(n: usize) -> impl Iterator<Item = String> {
    (0..n).map(|i| format!("v{i:02}"))
}

fn customer(id: &str, owner: &str) -> Document {
    Document::Customer(fixtures::customer(id, owner, None, (45.0, 4.0)))
}

#[test]
fn a_rep_edits_notes_after_the_server_verified_her_check_in() {
    let engine = engine_with(|_| {});
    let mut phone = alice_with_visits(&engine, ["v1"]);
    phone.update("v1", 2, prepend_notes("x")).unwrap();
    sync(&engine, &mut phone, 3);
    match engine.read_doc(TEAM, "v1").unwrap() {
        Some((Document::Visit(v), _)) => assert_eq!(v.notes.as_str(), "x"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bootstrap_is_paginated_and_then_follows_the_feed() {
    // 1. Forty visits on the server; bootstrap pages of 7 documents.
    let engine = engine_with(|c| c.bootstrap_docs = 7);
    let mut alice = alice_with_visits(&engine, numbered(40));

    // 2. A new tablet of the manager bootstraps in pages.
    let mut tablet = replica("tab", TEAM, "maria", Role::Manager);
    let rounds = sync(&engine, &mut tablet, 2);
    assert!(rounds >= 40 / 7, "paginated: {rounds} rounds");
    assert_eq!(tablet.len(), 40);
    assert!(matches!(tablet.cursor(), Cursor::Feed { .. }));

    // 3. Later changes arrive through the feed, not another bootstrap.
    alice.update("v03", 3, prepend_notes("later")).unwrap();
    sync(&engine, &mut alice, 4);
    let req = tablet.prepare_request();
    let resp = engine.handle(tablet.principal(), &req, 5).unwrap();
    assert!(resp.docs.is_empty(), "no snapshots once bootstrapped");
    assert_eq!(resp.changes.len(), 1);
    tablet.apply_response(&resp).unwrap();
    assert_eq!(tablet.heads("v03"), alice.heads("v03"));
}

#[test]
fn a_device_behind_the_compaction_horizon_bootstraps_again_and_keeps_its_pending_edits() {
    let engine = engine_with(|_| {});
    let mut alice = alice_with_visits(&engine, ["v1"]);
    let mut tablet = replica("tab", TEAM, "maria", Role::Manager);
    sync(&engine, &mut tablet, 1);

    // 1. The tablet goes quiet and edits offline while the feed moves on and is trimmed.
    tablet.update("v1", 2, prepend_notes("manager note. ")).unwrap();
    for i in 0..5 {
        alice.update("v1", 3, prepend_notes(&i.to_string())).unwrap();
        sync(&engine, &mut alice, 3);
    }
    let horizon = engine.trim_feed(TEAM, 1).unwrap();
    assert!(horizon > 0);
    assert_eq!(engine.storage().feed_horizon(TEAM).unwrap(), horizon);

    // 2. Its cursor is behind the horizon: it gets snapshots again, and its own edit still lands.
    let req = tablet.prepare_request();
    let resp = engine.handle(tablet.principal(), &req, 4).unwrap();
    assert!(!resp.docs.is_empty(), "bootstrapped from snapshots");
    tablet.apply_response(&resp).unwrap();
    sync(&engine, &mut tablet, 5);
    sync(&engine, &mut alice, 6);
    assert_eq!(tablet.heads("v1"), alice.heads("v1"));
    match alice.get("v1") {
        Some(Document::Visit(v)) => {
            assert!(v.notes.as_str().contains("manager note."), "{}", v.notes.as_str())
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_reassigned_customer_reaches_the_new_owner_and_leaves_the_old_one_keeping_unsent_edits() {
    let engine = engine_with(|_| {});
    engine.write_as_server(TEAM, &[customer("c1", "alice")], 0).unwrap();
    let mut alice = replica("pa", TEAM, "alice", Role::Rep);
    let mut bob = replica("pb", TEAM, "bob", Role::Rep);
    let mut tablet = replica("tab", TEAM, "maria", Role::Manager);
    sync(&engine, &mut alice, 1);
    sync(&engine, &mut bob, 1);
    sync(&engine, &mut tablet, 1);
    assert!(alice.get("c1").is_some() && bob.get("c1").is_none());

    // 1. Alice writes a note offline; meanwhile the manager gives the customer to bob.
    alice.update("c1", 2, prepend_notes("unsent")).unwrap();
    tablet.update("c1", 2, on_customer(|c| c.owner_rep = Some("bob".into()))).unwrap();
    sync(&engine, &mut tablet, 3);

    // 2. Bob receives the whole customer; alice loses it but her note is kept for her.
    sync(&engine, &mut bob, 4);
    assert!(matches!(bob.get("c1"), Some(Document::Customer(c)) if c.owner_rep.as_deref() == Some("bob")));
    let req = alice.prepare_request();
    let resp = engine.handle(alice.principal(), &req, 5).unwrap();
    let report = alice.apply_response(&resp).unwrap();
    assert!(alice.get("c1").is_none(), "revoked");
    assert!(
        alice.rejected().iter().any(|r| r.doc_id == "c1"),
        "the unsent note is kept: {:?} / {report:?}",
        alice.rejected()
    );
    assert_eq!(bob.heads("c1"), engine.doc_heads(TEAM, "c1").unwrap());
}

#[test]
fn the_document_cache_stays_within_its_bound() {
    let engine = engine_with(|c| c.cache_docs = 8);
    alice_with_visits(&engine, numbered(60));
    for i in 0..60 {
        assert!(engine.read_doc(TEAM, &format!("v{i:02}")).unwrap().is_some());
    }
    assert!(engine.cached_docs() <= 8, "cache holds {}", engine.cached_docs());
}

#[test]
fn a_pull_is_paged_by_entries() {
    let engine = engine_with(|c| c.page_entries = 5);
    let mut tablet = replica("tab", TEAM, "maria", Role::Manager);
    sync(&engine, &mut tablet, 0);
    alice_with_visits(&engine, numbered(23));
    let rounds = sync(&engine, &mut tablet, 2);
    assert!(rounds >= 5, "{rounds} rounds for 46 feed entries in pages of 5");
    assert_eq!(tablet.len(), 23);
}

#[test]
fn a_broken_local_edit_is_set_aside_so_the_device_can_sync_again() {
    let engine = engine_with(|_| {});
    let mut phone = alice_with_visits(&engine, ["v1"]);

    // 1. An outdated app writes a check-in off the globe, and a good note elsewhere.
    phone
        .update_unchecked("v1", 2, on_visit(|v| v.checkins.push(checkin("bad", (123.0, 4.0), 5.0, 2))))
        .unwrap();
    phone.create(visit("v2", "alice"), 2).unwrap();

    // 2. The server refuses the whole request, naming the document.
    let req = phone.prepare_request();
    let err = engine.handle(phone.principal(), &req, 3).unwrap_err();
    assert!(
        matches!(&err, fieldsync_core::engine::SyncError::InvalidDocument { doc_id, .. } if doc_id == "v1"),
        "{err}"
    );

    // 3. The device sets the broken edit aside (kept for the user) and syncs the rest.
    phone.set_aside("v1", "invalid_document", &err.to_string()).unwrap();
    sync(&engine, &mut phone, 4);
    assert_eq!(phone.rejected().len(), 1);
    assert_eq!(phone.heads("v1"), engine.doc_heads(TEAM, "v1").unwrap());
    assert!(engine.read_doc(TEAM, "v2").unwrap().is_some());
    match phone.get("v1") {
        Some(Document::Visit(v)) => assert_eq!(v.checkins.len(), 1, "back to the server's version"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn two_offline_check_ins_pushed_together_are_judged_in_the_order_they_happened() {
    let engine = engine_with(|_| {});
    let mut c2 = customer("c2", "alice");
    if let Document::Customer(c) = &mut c2 {
        c.location = GeoPoint::wgs84(45.045, 4.0); // 5 km north of c1
    }
    engine.write_as_server(TEAM, &[customer("c1", "alice"), c2], 0).unwrap();
    let mut phone = replica("p1", TEAM, "alice", Role::Rep);
    sync(&engine, &mut phone, 0);
    let hour = 3_600_000;
    let day = 1_796_000_000_000; // late 2026
    // The later visit sorts first by id, so it reaches the server first.
    for (id, cust, lat, t) in
        [("a-later", "c2", 45.045, day + 10 * hour), ("b-earlier", "c1", 45.0, day + 9 * hour)]
    {
        let mut v = visit(id, "alice");
        if let Document::Visit(v) = &mut v {
            v.customer_id = cust.into();
            v.checkins = vec![checkin(&format!("{id}-c"), (lat, 4.0), 5.0, t)];
        }
        phone.create(v, t).unwrap();
    }
    sync(&engine, &mut phone, day + 11 * hour);
    for id in ["a-later", "b-earlier"] {
        match engine.read_doc(TEAM, id).unwrap() {
            Some((Document::Visit(v), _)) => {
                let verdict = &v.verification[&format!("{id}-c")];
                assert_eq!(verdict.status, "verified", "{id}: {:?}", verdict.reasons);
            }
            other => panic!("{other:?}"),
        }
    }
}
