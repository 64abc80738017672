//! Compaction and trims (issue 14, item 3).
//!
//! The server saves a document whole again after 32 appended chunks, the phone's store after 16;
//! the feed is trimmed to keep its tail short. None of that may change what a document is: these
//! stories edit one customer far past both thresholds from the device library and a manager's
//! tablet, restart everything, and compare heads, change sets and typed values on all sides; then
//! they trim the feed in the middle of a paginated bootstrap and over a grant and a revoke, and
//! check that every device ends with exactly its scope.

use std::collections::BTreeSet;

use automerge::{Automerge, ChangeHash};
use fieldsync_core::Role;
use fieldsync_core::docs::Document;
use fieldsync_core::engine::EngineConfig;
use fieldsync_core::storage::Storage;
use fieldsync_e2e::fixtures::{LYON, customer, offset, prepend_notes, territory};
use fieldsync_e2e::{
    Device, MORNING_MS, TestServer, assert_feed_without_gap, assert_holds_exactly_its_scope,
};
use fieldsync_mobile::FieldsyncClient;
use fieldsync_mobile::store::{COMPACT_AFTER, DeviceStore};

const TEAM: &str = "acme";

/// Blocking library calls, run off the async runtime that serves the test server.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn change_set(doc: &Automerge) -> BTreeSet<ChangeHash> {
    doc.get_changes(&[]).iter().map(|c| c.hash()).collect()
}

fn sorted(mut heads: Vec<ChangeHash>) -> Vec<ChangeHash> {
    heads.sort();
    heads
}

/// The phone's copy of `id` as its store holds it (the client closed): the document, and the
/// number of chunks it is stored in.
fn phone_copy(dir: &std::path::Path, id: &str) -> (Automerge, u32) {
    let store = DeviceStore::open(dir).expect("the phone's store opens");
    let chunks = store.chunks_of(id).expect("chunks");
    let loaded = store.load().expect("the phone's store loads");
    let (_, local) = loaded.docs.into_iter().find(|(d, _)| d == id).expect("the phone holds it");
    (local.automerge().expect("the phone's copy loads"), chunks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_edited_past_both_compaction_thresholds_is_the_same_document_everywhere() {
    // 1. Alice's customer c1; her phone runs the device library, maria's tablet a replica. The
    //    thresholds are the shipped ones.
    let server_threshold = EngineConfig::new(automerge::ActorId::random()).compact_after_chunks;
    assert_eq!((server_threshold, COMPACT_AFTER), (32, 16));
    let mut server = TestServer::seeded(
        TEAM,
        &[territory("t-alice", &["alice"]), customer("c1", "alice", Some("t-alice"), LYON).into()],
    )
    .await;
    let dir = tempfile::tempdir().expect("store dir");
    let store = dir.path().display().to_string();
    let phone = FieldsyncClient::open(store.clone(), server.url()).expect("open store");
    phone.set_token(server.token(TEAM, "alice", Role::Rep)).expect("token");
    blocking(|| phone.sync(None)).expect("alice bootstraps");
    let mut maria = server.synced_device("maria-tablet", TEAM, "maria", Role::Manager).await;

    // 2. Forty visits' worth of notes from alice, each synced (one chunk on the server and one on
    //    the phone per edit), and every fifth one a concurrent note from maria. The server's chunk
    //    count is watched: it must pass the threshold and come back down.
    let storage = server.server().engine().storage();
    let chunks_on_server = || storage.doc_meta(TEAM, "c1").expect("meta").expect("stored").chunks;
    let mut seen = vec![chunks_on_server()];
    let rounds = 2 * server_threshold as usize + 8;
    for i in 1..=rounds {
        let notes = blocking(|| phone.get_customer("c1".into())).expect("c1").notes;
        blocking(|| phone.set_customer_notes("c1".into(), format!("{}alice #{i}. ", notes.as_str())))
            .expect("note");
        if i % 5 == 0 {
            maria.replica.update("c1", MORNING_MS, prepend_notes(&format!("maria #{i}. "))).expect("note");
            maria.sync().await.expect("maria syncs");
        }
        let summary = blocking(|| phone.sync(None)).expect("alice syncs");
        assert!(summary.rejected.is_empty(), "round {i}: {:?}", summary.rejected);
        seen.push(chunks_on_server());
    }
    maria.sync().await.expect("maria pulls alice's last notes");
    assert!(seen.iter().all(|&n| n <= server_threshold), "never more than the threshold: {seen:?}");
    let compactions = seen.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(compactions >= 2, "the server compacted c1 at least twice: {seen:?}");

    // 3. Everything restarts: the server on its files, the app on its store.
    drop(phone);
    server.restart().await;
    let (on_phone, phone_chunks) = phone_copy(dir.path(), "c1");
    assert!(
        (1..=COMPACT_AFTER).contains(&phone_chunks),
        "{rounds} edits and {} pulls on the phone, stored in {phone_chunks} chunks",
        rounds / 5
    );

    // 4. The phone, the server's files and the tablet hold one document: the same heads, the same
    //    changes, the same typed customer, with every note of both authors in it.
    let on_server = server.stored(TEAM, "c1");
    let on_tablet = maria.replica.doc_clone("c1").expect("maria holds c1");
    assert_eq!(sorted(on_phone.get_heads()), sorted(on_server.get_heads()), "phone and server heads");
    assert_eq!(sorted(on_tablet.get_heads()), sorted(on_server.get_heads()), "tablet and server heads");
    assert_eq!(change_set(&on_phone), change_set(&on_server), "phone and server changes");
    assert_eq!(change_set(&on_tablet), change_set(&on_server), "tablet and server changes");
    let typed = Document::hydrate(&on_server).expect("the server's c1 is a customer");
    assert_eq!(Document::hydrate(&on_phone).expect("phone's c1"), typed);
    assert_eq!(maria.doc("c1").expect("tablet's c1"), typed);
    assert_eq!(server.doc(TEAM, "c1").expect("the engine's c1"), typed);
    let notes = typed.notes().expect("a customer has notes").as_str().to_string();
    for i in 1..=rounds {
        assert!(notes.contains(&format!("alice #{i}. ")), "alice's note {i} is kept: {notes}");
        if i % 5 == 0 {
            assert!(notes.contains(&format!("maria #{i}. ")), "maria's note {i} is kept: {notes}");
        }
    }

    // 5. Reopened, the app syncs as if nothing happened: nothing to send, nothing new to pull, and
    //    its next edit is accepted on top of the compacted copies.
    let phone = FieldsyncClient::open(store, server.url()).expect("the store opens again");
    phone.set_token(server.token(TEAM, "alice", Role::Rep)).expect("token");
    let summary = blocking(|| phone.sync(None)).expect("a sync after the restarts");
    assert!(summary.rejected.is_empty() && summary.outbox_size == 0, "{summary:?}");
    let notes = blocking(|| phone.get_customer("c1".into())).expect("c1").notes;
    blocking(|| phone.set_customer_notes("c1".into(), format!("{}after the restart. ", notes.as_str())))
        .expect("note");
    blocking(|| phone.sync(None)).expect("the edit goes up");
    let typed = server.doc(TEAM, "c1").expect("c1");
    assert!(typed.notes().expect("notes").as_str().ends_with("after the restart. "));
}

/// Customers c0..c{n} in alice's territory, and an empty territory for bruno.
fn alices_customers(n: usize) -> Vec<Document> {
    let mut docs = vec![territory("t-alice", &["alice"]), territory("t-bruno", &["bruno"])];
    for i in 0..n {
        docs.push(
            customer(&format!("c{i}"), "alice", Some("t-alice"), offset(LYON, 100.0 * i as f64, 0.0)).into(),
        );
    }
    docs
}

/// Moves customer `id` into `territory` and to its rep, from maria's tablet.
async fn move_customer(maria: &mut Device, id: &str, territory: &str, rep: &str) {
    maria
        .replica
        .update(id, MORNING_MS, |d| {
            if let Document::Customer(c) = d {
                c.territory = Some(territory.into());
                c.owner_rep = Some(rep.into());
            }
        })
        .expect("move");
    maria.sync().await.expect("maria syncs the move");
}

/// One request and its answer applied: returns whether the server has more.
async fn one_page(device: &mut Device) -> bool {
    let req = device.replica.prepare_request();
    let resp = device.exchange(&req).await.expect("a page");
    device.replica.apply_response(&resp).expect("apply a page").more
}

#[tokio::test]
async fn trims_in_the_middle_of_a_paginated_bootstrap_and_over_a_grant_and_a_revoke_leave_each_device_its_scope()
 {
    // 1. Twelve customers of alice's, bootstrap pages of four documents.
    let server = TestServer::start_with(|c| c.engine.bootstrap_docs = Some(4)).await;
    server.seed(TEAM, &alices_customers(12));
    let mut maria = server.synced_device("maria-tablet", TEAM, "maria", Role::Manager).await;
    let mut bruno = server.synced_device("bruno-phone", TEAM, "bruno", Role::Rep).await;
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;
    assert!(bruno.replica.local("c0").is_none() && alice.replica.local("c0").is_some());

    // 2. A new phone of alice's takes the first page of its bootstrap.
    let mut fresh = server.add_device("alice-new-phone", TEAM, "alice", Role::Rep);
    assert!(one_page(&mut fresh).await, "the bootstrap has more pages");
    let first_page: BTreeSet<String> = fresh.replica.doc_ids().cloned().collect();
    assert!(!first_page.is_empty() && first_page.len() < 13, "{first_page:?}");

    // 3. Meanwhile, with alice's and bruno's phones off, maria moves a customer alice's new phone
    //    already holds and one it does not yet hold to bruno (a grant to him, a revoke from her),
    //    and the feed holding the moves is trimmed away.
    let held =
        first_page.iter().find(|id| id.starts_with('c')).expect("a customer on the first page").clone();
    let not_yet = (0..12).map(|i| format!("c{i}")).find(|id| !first_page.contains(id)).expect("one to come");
    move_customer(&mut maria, &held, "t-bruno", "bruno").await;
    move_customer(&mut maria, &not_yet, "t-bruno", "bruno").await;
    let horizon = server.server().engine().trim_feed(TEAM, 0).expect("trim");
    assert_eq!(horizon, server.server().engine().storage().feed_head(TEAM).expect("head"));

    // 4. The new phone finishes its bootstrap, the others sync after the trim they missed.
    for _ in 0..100 {
        if !one_page(&mut fresh).await {
            break;
        }
    }
    fresh.sync().await.expect("the new phone settles");
    bruno.sync().await.expect("bruno syncs past the trimmed grant");
    alice.sync().await.expect("alice syncs past the trimmed revoke");
    maria.sync().await.expect("maria syncs");

    // 5. Each holds exactly its scope, at the server's heads: the moved customers are bruno's and
    //    on neither of alice's phones.
    let scopes = assert_holds_exactly_its_scope(&server, TEAM, &[&fresh, &alice, &bruno, &maria]);
    for id in [&held, &not_yet] {
        assert!(scopes["bruno"].contains(id) && !scopes["alice"].contains(id), "{id}: {scopes:?}");
    }
    assert_feed_without_gap(&server, TEAM);
}
