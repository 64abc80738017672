//! A damaged document costs only itself (issue 14, storage faults): a stored chunk that no longer
//! matches its checksum, on the server or on the phone, is an error naming that document, and
//! sync goes on for every other one. Nothing acknowledged or unsent elsewhere is lost.

use fieldsync_core::Role;
use fieldsync_core::client::{ApplyReport, LocalDoc, Replica};
use fieldsync_core::docs::*;
use fieldsync_core::engine::{SyncEngine, SyncError};
use fieldsync_core::protocol::{Cursor, SyncResponse};
use fieldsync_core::storage::{KvBackend, KvOp, MemoryStorage, StorageError};
use fieldsync_core::testing::fixtures::{self, prepend_notes};
use fieldsync_core::testing::{memory_engine, replica, sync_until_idle};

const TEAM: &str = "t";

/// Alice's customers c1 and c2, on the server and on her phone.
fn alice_and_her_customers() -> (SyncEngine<MemoryStorage>, Replica) {
    // A cache of one document: the damaged one is evicted by the next read (as by a restart).
    let engine = memory_engine(|c| c.cache_docs = 1);
    let docs: Vec<Document> =
        ["c1", "c2"].iter().map(|id| fixtures::customer(id, "alice", None, (45.0, 4.0)).into()).collect();
    engine.write_as_server(TEAM, &docs, 0).expect("seed");
    let mut alice = replica("alice-phone", TEAM, "alice", Role::Rep);
    sync_until_idle(&engine, &mut alice, 1);
    assert_eq!(alice.len(), 2);
    (engine, alice)
}

/// Flips one bit of the server's first stored chunk of `doc_id` and makes the server forget its
/// loaded copy (reading `other`); returns the original bytes.
fn damage_on_server(engine: &SyncEngine<MemoryStorage>, doc_id: &str, other: &str) -> Vec<u8> {
    let key = format!("c/{TEAM}/{doc_id}/{:010}", 0).into_bytes();
    let kv = engine.storage().backend();
    let original = kv.get(&key).expect("get").expect("the first chunk");
    let mut damaged = original.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x08;
    kv.apply(vec![KvOp::Put(key, damaged)]).expect("damage");
    engine.read_doc(TEAM, other).expect("read").expect("the other document");
    original
}

fn restore_on_server(engine: &SyncEngine<MemoryStorage>, doc_id: &str, original: Vec<u8>) {
    let key = format!("c/{TEAM}/{doc_id}/{:010}", 0).into_bytes();
    engine.storage().backend().apply(vec![KvOp::Put(key, original)]).expect("restore");
}

/// One request and its answer, applied.
fn round(engine: &SyncEngine<MemoryStorage>, r: &mut Replica, now_ms: i64) -> (SyncResponse, ApplyReport) {
    let req = r.prepare_request();
    let resp = engine.handle(&r.principal().clone(), &req, now_ms).expect("the sync is answered");
    let report = r.apply_response(&resp).expect("the answer applies");
    (resp, report)
}

fn notes(r: &Replica, id: &str) -> String {
    r.get(id).and_then(|d| d.notes().map(|n| n.as_str().to_string())).unwrap_or_default()
}

fn server_notes(engine: &SyncEngine<MemoryStorage>, id: &str) -> String {
    let (doc, _) = engine.read_doc(TEAM, id).expect("read").expect("stored");
    doc.notes().map(|n| n.as_str().to_string()).unwrap_or_default()
}

#[test]
fn a_damaged_document_on_the_server_is_named_and_the_others_sync() {
    // 1. Alice's phone holds c1 and c2. On the server, a bit of c1's stored chunk flips.
    let (engine, mut alice) = alice_and_her_customers();
    let original = damage_on_server(&engine, "c1", "c2");

    // 2. Offline, she writes notes on both and syncs: c2's are taken, c1 is named as damaged,
    //    nothing of it is accepted or refused, and her c1 notes stay on the phone, unsent.
    alice.update("c1", 10, prepend_notes("gate code 4411")).expect("edit c1");
    alice.update("c2", 10, prepend_notes("call before noon")).expect("edit c2");
    let (resp, report) = round(&engine, &mut alice, 11);
    assert_eq!(resp.accepted.iter().map(|a| a.doc_id.as_str()).collect::<Vec<_>>(), vec!["c2"]);
    assert!(resp.rejected.is_empty(), "nothing refused: {:?}", resp.rejected);
    assert_eq!(resp.unavailable.len(), 1, "{:?}", resp.unavailable);
    assert_eq!(
        (resp.unavailable[0].doc_id.as_str(), resp.unavailable[0].code.as_str()),
        ("c1", "document_damaged")
    );
    assert_eq!(report.unavailable, vec!["c1".to_string()]);
    assert!(server_notes(&engine, "c2").contains("noon"));
    assert_eq!(alice.outbox_len(), 1, "c1's notes wait on the phone");
    assert!(notes(&alice, "c1").contains("4411"));

    // 3. Reading c1 on the server is a typed error naming it; c2 reads.
    match engine.read_doc(TEAM, "c1") {
        Err(SyncError::Storage(StorageError::Damaged { doc_id, .. })) => assert_eq!(doc_id, "c1"),
        other => panic!("a damaged document was read: {other:?}"),
    }

    // 4. A new phone of alice's bootstraps: it gets c2, is told c1 is damaged, and finishes.
    let mut new_phone = replica("alice-tablet", TEAM, "alice", Role::Rep);
    let (resp, _) = round(&engine, &mut new_phone, 12);
    assert!(!resp.more);
    assert_eq!(new_phone.doc_ids().cloned().collect::<Vec<_>>(), vec!["c2".to_string()]);
    assert_eq!(resp.unavailable.iter().map(|u| u.doc_id.as_str()).collect::<Vec<_>>(), vec!["c1"]);

    // 5. The old phone bootstraps again too (its cursor lost): the page that does not bring c1
    //    does not make it drop its copy with the unsent notes.
    let mut again = Replica::restore(
        alice.device_id(),
        alice.principal().clone(),
        alice.doc_clone("c1").expect("c1").get_actor().clone(),
        Cursor::Start,
        alice.doc_ids().map(|id| (id.clone(), alice.local(id).expect("local").clone())).collect(),
        vec![],
    );
    round(&engine, &mut again, 13);
    assert!(notes(&again, "c1").contains("4411"), "the copy of a damaged document is kept");

    // 6. An operator restores c1's chunk (from a backup): the next sync takes the waiting notes.
    restore_on_server(&engine, "c1", original);
    let (resp, _) = round(&engine, &mut alice, 14);
    assert!(resp.unavailable.is_empty());
    assert_eq!(resp.accepted.iter().map(|a| a.doc_id.as_str()).collect::<Vec<_>>(), vec!["c1"]);
    assert!(server_notes(&engine, "c1").contains("4411"));
    assert_eq!(alice.outbox_len(), 0);
}

#[test]
fn a_rep_pushing_to_a_damaged_document_outside_her_scope_learns_nothing_of_it() {
    // 1. Bob's customer b1 is damaged on the server; alice pushes changes claiming to edit it.
    let (engine, alice) = alice_and_her_customers();
    engine
        .write_as_server(TEAM, &[fixtures::customer("b1", "bob", None, (45.0, 4.0)).into()], 2)
        .expect("b1");
    damage_on_server(&engine, "b1", "c1");
    let mut forged = alice.clone();
    let mine = Customer {
        created_by: "alice".into(),
        tier: None,
        ..fixtures::customer("b1", "alice", None, (45.0, 4.0))
    };
    forged.create(mine.into(), 3).expect("a b1 of her own");

    // 2. The answer is the one for a document that does not exist: refused as not found, never
    //    "damaged".
    let (resp, _) = round(&engine, &mut forged, 4);
    assert!(resp.unavailable.is_empty(), "{:?}", resp.unavailable);
    assert_eq!(resp.rejected.len(), 1, "{:?}", resp.rejected);
    assert_eq!((resp.rejected[0].doc_id.as_str(), resp.rejected[0].code.as_str()), ("b1", "not_found"));
}

#[test]
fn a_damaged_local_copy_is_fetched_again_and_the_other_documents_keep_their_edits() {
    // 1. Alice's phone holds c1 and c2; she writes notes on c2 offline.
    let (engine, mut alice) = alice_and_her_customers();
    alice.update("c2", 10, prepend_notes("call before noon")).expect("edit c2");

    // 2. The phone restarts, and the bytes of its c1 no longer load (a damaged store).
    let docs: Vec<(String, LocalDoc)> = alice
        .doc_ids()
        .map(|id| {
            let local = alice.local(id).expect("local");
            let mut saved = local.saved().into_owned();
            if id == "c1" {
                let middle = saved.len() / 2;
                saved[middle] ^= 0x08;
            }
            let heads = local.heads().to_vec();
            (
                id.clone(),
                LocalDoc::from_saved(saved, local.kind(), local.acked().to_vec(), heads, local.has_pending()),
            )
        })
        .collect();
    let actor = alice.doc_clone("c2").expect("c2").get_actor().clone();
    let mut phone = Replica::restore(
        alice.device_id(),
        alice.principal().clone(),
        actor,
        alice.cursor().clone(),
        docs,
        vec![],
    );

    // 3. Meanwhile maria changes c1 on the server: the pull reaches the damaged copy.
    let mut c1 = engine.read_doc(TEAM, "c1").expect("read").expect("c1").0;
    prepend_notes("new opening hours")(&mut c1);
    engine.write_as_server(TEAM, &[c1], 20).expect("maria's edit");

    // 4. Syncing: c2's notes go up, the damaged c1 is dropped and fetched whole by a bootstrap;
    //    the sync ends with both documents as the server holds them.
    let mut damaged = Vec::new();
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 10, "the sync does not settle");
        let (_, report) = round(&engine, &mut phone, 21);
        damaged.extend(report.damaged);
        if !report.more && phone.outbox_len() == 0 {
            break;
        }
    }
    assert_eq!(damaged, vec!["c1".to_string()], "the damaged copy is reported once");
    for id in ["c1", "c2"] {
        assert_eq!(phone.heads(id), engine.doc_heads(TEAM, id).expect("heads"), "{id} as on the server");
    }
    assert!(notes(&phone, "c1").contains("new opening hours"));
    assert!(server_notes(&engine, "c2").contains("noon"));
}
