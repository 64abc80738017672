//! The protocol without sockets: replicas and the engine exchange messages as data.

use automerge::ActorId;
use fieldsync_core::client::Replica;
use fieldsync_core::docs::*;
use fieldsync_core::engine::{EngineConfig, SyncEngine};
use fieldsync_core::protocol::Cursor;
use fieldsync_core::storage::{MemoryStorage, Storage};
use fieldsync_core::{Principal, Role};

const TEAM: &str = "t";

fn who(user: &str, role: Role) -> Principal {
    Principal { team: TEAM.into(), user: user.into(), role }
}

fn engine_with(config: impl FnOnce(&mut EngineConfig)) -> SyncEngine<MemoryStorage> {
    let mut c = EngineConfig::new(ActorId::from(b"srv"));
    config(&mut c);
    SyncEngine::new(MemoryStorage::in_memory(), c)
}

fn visit(id: &str, rep: &str) -> Document {
    Document::Visit(Visit {
        kind: "visit".into(),
        schema: SCHEMA_VERSION,
        id: id.into(),
        customer_id: "cust-1".into(),
        rep: rep.into(),
        planned_start_ms: 0,
        planned_end_ms: 10,
        state: VisitState::Planned,
        checkins: vec![Checkin {
            id: format!("{id}-c1"),
            lat: 45.0,
            lon: 4.0,
            accuracy_m: 5.0,
            device_time_ms: 0,
            mock_location: false,
        }],
        checkout: None,
        notes: "".into(),
        verification: Default::default(),
        created_by: rep.into(),
    })
}

fn customer(id: &str, owner: &str) -> Document {
    Document::Customer(Customer {
        kind: "customer".into(),
        schema: SCHEMA_VERSION,
        id: id.into(),
        name: "Boulangerie".into(),
        location: GeoPoint::wgs84(45.0, 4.0),
        address: "".into(),
        timezone: "Europe/Paris".into(),
        opening_hours: vec![],
        potential_value: 1000.0,
        close_probability: 0.5,
        tier: Some(Tier::B),
        tier_set_by: None,
        tier_set_at_ms: None,
        follow_up_status: "none".into(),
        opportunity_stage: "prospecting".into(),
        owner_rep: Some(owner.into()),
        territory: None,
        tags: vec![],
        notes: "".into(),
        geofence_m: None,
        created_by: "server".into(),
    })
}

/// Syncs until the server has nothing more; returns the number of rounds.
fn sync(engine: &SyncEngine<MemoryStorage>, phone: &mut Replica, now: i64) -> usize {
    let mut rounds = 0;
    loop {
        rounds += 1;
        let req = phone.prepare_request();
        let resp = engine.handle(&phone.principal().clone(), &req, now).expect("sync");
        let report = phone.apply_response(&resp).expect("apply");
        if !report.more && phone.outbox_len() == 0 {
            return rounds;
        }
        assert!(rounds < 1000, "sync does not finish");
    }
}

#[test]
fn a_rep_edits_notes_after_the_server_verified_her_check_in() {
    let engine = engine_with(|_| {});
    let mut phone = Replica::new("p1", who("alice", Role::Rep), ActorId::from(b"p1"));
    phone.create(visit("v1", "alice"), 0).unwrap();
    sync(&engine, &mut phone, 1);
    phone
        .update("v1", 2, |d| {
            if let Document::Visit(v) = d {
                v.notes.splice(0, 0, "x")
            }
        })
        .unwrap();
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
    let mut alice = Replica::new("p1", who("alice", Role::Rep), ActorId::from(b"p1"));
    for i in 0..40 {
        alice.create(visit(&format!("v{i:02}"), "alice"), 0).unwrap();
    }
    sync(&engine, &mut alice, 1);

    // 2. A new tablet of the manager bootstraps in pages.
    let mut tablet = Replica::new("tab", who("maria", Role::Manager), ActorId::from(b"tab"));
    let rounds = sync(&engine, &mut tablet, 2);
    assert!(rounds >= 40 / 7, "paginated: {rounds} rounds");
    assert_eq!(tablet.len(), 40);
    assert!(matches!(tablet.cursor(), Cursor::Feed { .. }));

    // 3. Later changes arrive through the feed, not another bootstrap.
    alice
        .update("v03", 3, |d| {
            if let Document::Visit(v) = d {
                v.notes.splice(0, 0, "later")
            }
        })
        .unwrap();
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
    let mut alice = Replica::new("p1", who("alice", Role::Rep), ActorId::from(b"p1"));
    let mut tablet = Replica::new("tab", who("maria", Role::Manager), ActorId::from(b"tab"));
    alice.create(visit("v1", "alice"), 0).unwrap();
    sync(&engine, &mut alice, 1);
    sync(&engine, &mut tablet, 1);

    // 1. The tablet goes quiet and edits offline while the feed moves on and is trimmed.
    tablet
        .update("v1", 2, |d| {
            if let Document::Visit(v) = d {
                v.notes.splice(0, 0, "manager note. ")
            }
        })
        .unwrap();
    for i in 0..5 {
        alice
            .update("v1", 3, |d| {
                if let Document::Visit(v) = d {
                    v.notes.splice(0, 0, format!("{i}"))
                }
            })
            .unwrap();
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
    let mut alice = Replica::new("pa", who("alice", Role::Rep), ActorId::from(b"pa"));
    let mut bob = Replica::new("pb", who("bob", Role::Rep), ActorId::from(b"pb"));
    let mut tablet = Replica::new("tab", who("maria", Role::Manager), ActorId::from(b"tab"));
    sync(&engine, &mut alice, 1);
    sync(&engine, &mut bob, 1);
    sync(&engine, &mut tablet, 1);
    assert!(alice.get("c1").is_some() && bob.get("c1").is_none());

    // 1. Alice writes a note offline; meanwhile the manager gives the customer to bob.
    alice
        .update("c1", 2, |d| {
            if let Document::Customer(c) = d {
                c.notes.splice(0, 0, "unsent")
            }
        })
        .unwrap();
    tablet
        .update("c1", 2, |d| {
            if let Document::Customer(c) = d {
                c.owner_rep = Some("bob".into())
            }
        })
        .unwrap();
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
    let mut alice = Replica::new("p1", who("alice", Role::Rep), ActorId::from(b"p1"));
    for i in 0..60 {
        alice.create(visit(&format!("v{i:02}"), "alice"), 0).unwrap();
    }
    sync(&engine, &mut alice, 1);
    for i in 0..60 {
        assert!(engine.read_doc(TEAM, &format!("v{i:02}")).unwrap().is_some());
    }
    assert!(engine.cached_docs() <= 8, "cache holds {}", engine.cached_docs());
}

#[test]
fn a_pull_is_paged_by_entries() {
    let engine = engine_with(|c| c.page_entries = 5);
    let mut alice = Replica::new("p1", who("alice", Role::Rep), ActorId::from(b"p1"));
    let mut tablet = Replica::new("tab", who("maria", Role::Manager), ActorId::from(b"tab"));
    sync(&engine, &mut tablet, 0);
    for i in 0..23 {
        alice.create(visit(&format!("v{i:02}"), "alice"), 0).unwrap();
    }
    sync(&engine, &mut alice, 1);
    let rounds = sync(&engine, &mut tablet, 2);
    assert!(rounds >= 5, "{rounds} rounds for 46 feed entries in pages of 5");
    assert_eq!(tablet.len(), 23);
}

#[test]
fn a_broken_local_edit_is_set_aside_so_the_device_can_sync_again() {
    let engine = engine_with(|_| {});
    let mut phone = Replica::new("p1", who("alice", Role::Rep), ActorId::from(b"p1"));
    phone.create(visit("v1", "alice"), 0).unwrap();
    sync(&engine, &mut phone, 1);

    // 1. An outdated app writes a check-in off the globe, and a good note elsewhere.
    phone
        .update_unchecked("v1", 2, |d| {
            if let Document::Visit(v) = d {
                v.checkins.push(Checkin {
                    id: "bad".into(),
                    lat: 123.0,
                    lon: 4.0,
                    accuracy_m: 5.0,
                    device_time_ms: 2,
                    mock_location: false,
                })
            }
        })
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
    let mut phone = Replica::new("p1", who("alice", Role::Rep), ActorId::from(b"p1"));
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
            v.checkins = vec![Checkin {
                id: format!("{id}-c"),
                lat,
                lon: 4.0,
                accuracy_m: 5.0,
                device_time_ms: t,
                mock_location: false,
            }];
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
