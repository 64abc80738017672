//! The protocol without sockets: replicas and the engine exchange messages as data.

use automerge::ActorId;
use fieldsync_core::client::Replica;
use fieldsync_core::docs::*;
use fieldsync_core::engine::{EngineConfig, SyncEngine};
use fieldsync_core::storage::MemoryStorage;
use fieldsync_core::{Principal, Role};

fn visit(id: &str) -> Document {
    Document::Visit(Visit {
        kind: "visit".into(),
        schema: SCHEMA_VERSION,
        id: id.into(),
        customer_id: "cust-1".into(),
        rep: "alice".into(),
        planned_start_ms: 0,
        planned_end_ms: 10,
        state: VisitState::Planned,
        checkins: vec![Checkin {
            id: "c1".into(),
            lat: 45.0,
            lon: 4.0,
            accuracy_m: 5.0,
            device_time_ms: 0,
            mock_location: false,
        }],
        checkout: None,
        notes: "".into(),
        verification: Default::default(),
        created_by: "alice".into(),
    })
}

#[test]
fn a_rep_edits_notes_after_the_server_verified_her_check_in() {
    let engine = SyncEngine::new(MemoryStorage::in_memory(), EngineConfig::new(ActorId::from(b"srv")));
    let alice = Principal { team: "t".into(), user: "alice".into(), role: Role::Rep };
    let mut phone = Replica::new("p1", alice.clone(), ActorId::from(b"p1"));
    phone.create(visit("v1"), 0).unwrap();
    let resp = engine.handle(&alice, &phone.prepare_request(), 1).unwrap();
    phone.apply_response(&resp).unwrap();
    eprintln!("heads {:?}", phone.heads("v1"));
    let local = phone.local("v1").unwrap();
    eprintln!(
        "changes {:?}",
        local.doc.get_changes(&[]).iter().map(|c| (c.hash(), c.deps().to_vec())).collect::<Vec<_>>()
    );
    phone
        .update("v1", 2, |d| {
            if let Document::Visit(v) = d {
                v.notes.splice(0, 0, "x")
            }
        })
        .unwrap();
}
