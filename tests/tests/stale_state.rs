//! The server never acts on an older version of a document than the stored one (issue 7).
//!
//! Each story here lost data or wedged a device on the engine that took documents out of its cache
//! and put them back without the team's lock: concurrent readers and writers past the compaction
//! threshold, a territory design applied while reps edit the moved customers, a device that
//! bootstraps after the revoke it missed was trimmed, and a phone whose push no longer fits.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use automerge::{Automerge, ChangeHash};
use fieldsync_core::Role;
use fieldsync_core::docs::{Cadence, Document, Plan, TierThresholds};
use fieldsync_core::storage::Storage;
use fieldsync_e2e::fixtures::{
    LYON, customer, offset, replace_notes, territory, territory_with_customer, visit,
};
use fieldsync_e2e::{Device, MORNING_MS, TestServer, customer_of, visit_of};
use serde_json::json;

const TEAM: &str = "acme";

fn plan() -> Document {
    let cadence = Cadence { a_days: 14, b_days: 28, c_days: 60 };
    let thresholds = TierThresholds { a_min_score: 30_000.0, b_min_score: 10_000.0 };
    Plan::new("plan-2026-q4", "2026-Q4", cadence, thresholds).into()
}

/// Alice's territory with her customer c1, in Lyon.
fn alices_customer() -> Vec<Document> {
    territory_with_customer("t-alice", &["alice"], "c1")
}

fn missing(doc: &Automerge, acked: &[ChangeHash]) -> Vec<usize> {
    acked
        .iter()
        .enumerate()
        .filter(|(_, h)| doc.get_change_meta_by_hash(h).is_none())
        .map(|(i, _)| i)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_edits_survive_managers_reading_while_a_rep_syncs() {
    // 1. A team with a customer, a territory, a plan and alice's visit; alice's phone holds them.
    let mut docs = alices_customer();
    docs.extend([visit("v1", "c1", "alice", MORNING_MS).into(), plan()]);
    let server = TestServer::seeded(TEAM, &docs).await;
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;

    // 2. Eight of maria's dashboards read the visit and the team's segmentation in a loop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for i in 0..8 {
        let maria = server.add_device(&format!("maria-{i}"), TEAM, "maria", Role::Manager);
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let mut reads = 0u32;
            while !stop.load(Ordering::Relaxed) && reads < 20_000 {
                let path = if i < 6 { "/v1/docs/v1" } else { "/v1/plan/segmentation" };
                let (status, body) = maria.get_json(path).await;
                assert_eq!(status, 200, "{path}: {body}");
                reads += 1;
            }
            reads
        }));
    }

    // 3. Meanwhile alice edits the visit's notes and syncs 80 times: past the compaction threshold
    //    (32 chunks) twice. Every change the server acknowledges is noted.
    let mut acked: Vec<ChangeHash> = Vec::new();
    for n in 0..80 {
        alice.replica.update("v1", MORNING_MS, replace_notes(&format!("edit {n}"))).expect("edit");
        let req = alice.replica.prepare_request();
        let resp = alice.exchange(&req).await.unwrap_or_else(|e| panic!("sync {n} failed: {e:?}"));
        assert!(resp.rejected.is_empty(), "sync {n}: {:?}", resp.rejected);
        for a in &resp.accepted {
            acked.extend(a.hashes.iter().map(|h| ChangeHash::try_from(h.as_slice()).expect("hash")));
        }
        alice.replica.apply_response(&resp).expect("apply");
    }
    stop.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for r in readers {
        reads += r.await.expect("reader");
    }
    assert!(reads >= 8, "the dashboards read ({reads} reads)");
    assert_eq!(acked.len(), 80, "one acknowledged change per sync");

    // 4. Every acknowledged change is in the stored document, before and after a restart, and the
    //    text is alice's last edit.
    assert_eq!(missing(&server.stored(TEAM, "v1"), &acked), Vec::<usize>::new(), "missing before restart");
    let mut server = server;
    server.restart().await;
    assert_eq!(missing(&server.stored(TEAM, "v1"), &acked), Vec::<usize>::new(), "missing after restart");
    assert_eq!(visit_of(server.doc(TEAM, "v1")).notes.as_str(), "edit 79");
    alice.replica.update("v1", MORNING_MS, replace_notes("after the restart")).expect("edit");
    alice.sync().await.expect("the phone keeps syncing");
    assert_eq!(visit_of(server.doc(TEAM, "v1")).notes.as_str(), "after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_territory_design_applied_while_reps_edit_the_moved_customers_keeps_their_edits() {
    // 1. Two reps, twelve customers each side of Lyon; alice's phone holds hers.
    let mut docs = vec![territory("t-alice", &["alice"]), territory("t-bruno", &["bruno"]), plan()];
    for i in 0..12 {
        let (owner, t) = if i < 6 { ("alice", "t-alice") } else { ("bruno", "t-bruno") };
        docs.push(customer(&format!("c{i:02}"), owner, Some(t), offset(LYON, 0.0, i as f64 * 500.0)).into());
    }
    let server = TestServer::seeded(TEAM, &docs).await;
    let maria = server.add_device("maria-tablet", TEAM, "maria", Role::Manager);
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;

    // 2. Two designs that hand c00..c02 back and forth between alice and bruno.
    let design = |alice_gets: &[&str], bruno_gets: &[&str]| {
        let t = |rep: &str, ids: &[&str]| {
            json!({"rep": rep, "territory_id": format!("t-{rep}"), "customer_ids": ids,
                   "workload_min": 0.0, "travel_min": 0.0, "visits": 0.0, "potential": 0.0,
                   "centroid": {"lat": LYON.0, "lon": LYON.1}, "hull": [], "home_distance_km": 0.0})
        };
        json!({
            "territories": [t("alice", alice_gets), t("bruno", bruno_gets)],
            "workload_balance": 1.0, "potential_balance": 1.0, "moves": [], "within_tolerance": true,
            "compactness_km": 0.0, "nearest_centroid_share": 1.0, "unplaced": [],
        })
    };
    let rest_a = ["c03", "c04", "c05"];
    let rest_b = ["c06", "c07", "c08", "c09", "c10", "c11"];
    let mut to_bruno: Vec<&str> = rest_b.to_vec();
    to_bruno.extend(["c00", "c01", "c02"]);
    let mut to_alice: Vec<&str> = rest_a.to_vec();
    to_alice.extend(["c00", "c01", "c02"]);
    let away = design(&rest_a, &to_bruno);
    let back = design(&to_alice, &rest_b);

    // 3. Alice writes notes on c00..c02 and syncs while maria applies the designs, in turns.
    let writer = tokio::spawn(async move {
        let mut written = Vec::new();
        for n in 0..30 {
            for id in ["c00", "c01", "c02"] {
                if alice.replica.local(id).is_some() {
                    let text = format!("{id} note {n}");
                    alice.replica.update(id, MORNING_MS, replace_notes(&text)).expect("note");
                }
            }
            let outcome = alice.sync().await.expect("alice syncs");
            for r in outcome.rejected() {
                assert_eq!(r.code, "not_found", "{r:?}");
            }
            written.push(n);
        }
        (alice, written)
    });
    for round in 0..12 {
        let body = if round % 2 == 0 { &away } else { &back };
        let (status, applied) = maria.post_json("/v1/plan/territories/apply", body).await;
        assert_eq!(status, 200, "apply {round}: {applied}");
    }
    let (mut alice, written) = writer.await.expect("writer");
    assert_eq!(written.len(), 30);

    // 4. The last design (back to alice) holds; whatever alice's server-acknowledged notes say is
    //    on the server, and her phone agrees with it.
    alice.sync().await.expect("final sync");
    for id in ["c00", "c01", "c02"] {
        let c = customer_of(server.doc(TEAM, id));
        assert_eq!(c.owner_rep.as_deref(), Some("alice"), "{id}");
        assert_eq!(c.territory.as_deref(), Some("t-alice"), "{id}");
        assert_eq!(customer_of(alice.doc(id)).notes.as_str(), c.notes.as_str(), "{id}");
    }
    fieldsync_e2e::assert_converged(&server, TEAM, &[&alice]);

    // 5. A note written now survives a further design, which only moves the customer.
    alice.replica.update("c00", MORNING_MS, replace_notes("keep me")).expect("note");
    alice.sync().await.expect("sync");
    let (status, _) = maria.post_json("/v1/plan/territories/apply", &away).await;
    assert_eq!(status, 200);
    let c = customer_of(server.doc(TEAM, "c00"));
    assert_eq!((c.owner_rep.as_deref(), c.notes.as_str()), (Some("bruno"), "keep me"));
}

#[tokio::test]
async fn a_device_that_bootstraps_after_a_trimmed_revoke_holds_exactly_its_scope() {
    // 1. Alice holds two customers.
    let mut docs = alices_customer();
    docs.push(territory("t-bruno", &["bruno"]));
    docs.push(customer("c2", "alice", Some("t-alice"), offset(LYON, 500.0, 0.0)).into());
    let server = TestServer::seeded(TEAM, &docs).await;
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;
    assert!(alice.replica.local("c2").is_some());

    // 2. While her phone is off, c2 goes to bruno, and the feed (with the revoke) is trimmed.
    let mut c2 = customer("c2", "bruno", Some("t-bruno"), offset(LYON, 500.0, 0.0));
    c2.notes = "".into();
    server.seed(TEAM, &[c2.into()]);
    let horizon = server.server().engine().trim_feed(TEAM, 0).expect("trim");
    assert!(horizon > 0);

    // 3. Back online, alice's cursor is behind the horizon: she bootstraps and holds exactly her
    //    scope — c2 is gone, everything else is there.
    alice.sync().await.expect("re-bootstrap");
    let held: BTreeSet<String> = alice.replica.doc_ids().cloned().collect();
    let scope: BTreeSet<String> = server
        .server()
        .engine()
        .storage()
        .list_docs(TEAM, Some("alice"), "", 10_000)
        .expect("scope")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert!(!held.contains("c2"), "{held:?}");
    assert_eq!(held, scope);
    fieldsync_e2e::assert_converged(&server, TEAM, &[&alice]);
}

#[tokio::test]
async fn a_phone_whose_push_no_longer_fits_resyncs_the_document_and_keeps_its_text() {
    // 1. Alice's phone plans a visit and syncs; a backup of the phone is taken; she writes a note
    //    and syncs again (the server acknowledges it).
    let server = TestServer::seeded(TEAM, &alices_customer()).await;
    let mut alice = server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await;
    alice.replica.create(visit("v1", "c1", "alice", MORNING_MS).into(), MORNING_MS).expect("plan");
    alice.sync().await.expect("push the visit");
    let backup = alice.replica.clone();
    alice.replica.update("v1", MORNING_MS, replace_notes("first note")).expect("note");
    alice.sync().await.expect("push the note");
    let mut maria = server.add_device("maria-tablet", TEAM, "maria", Role::Manager);
    maria.sync().await.expect("maria syncs the team");

    // 2. The phone is restored from the backup: it writes with the same actor, so its next change
    //    takes a sequence number the server already holds for another change.
    let mut restored: Device = server.add_device("alice-phone", TEAM, "alice", Role::Rep);
    restored.replica = backup;
    restored.replica.update("v1", MORNING_MS, replace_notes("typed on the restored phone")).expect("note");

    // 3. Its sync is not refused for good: the visit is rebuilt on the server's version with the
    //    note made again, pushed again, and every later sync works.
    let outcome = restored.sync().await.expect("the restored phone syncs");
    assert!(outcome.reports.iter().any(|r| r.resynced == 1), "{:?}", outcome.reports);
    assert!(outcome.rejected().is_empty(), "nothing set aside: {:?}", outcome.rejected());
    let notes = visit_of(server.doc(TEAM, "v1")).notes.as_str().to_string();
    assert!(notes.contains("typed on the restored phone"), "{notes}");
    assert!(notes.contains("first note"), "the acknowledged note is kept too: {notes}");
    restored.replica.update("v1", MORNING_MS, replace_notes("and later")).expect("note");
    restored.sync().await.expect("later syncs work");
    assert_eq!(visit_of(server.doc(TEAM, "v1")).notes.as_str(), "and later");

    // 4. The manager's tablet, which had received the first note, follows without an error.
    maria.sync().await.expect("maria syncs again");
    assert_eq!(visit_of(maria.doc("v1")).notes.as_str(), "and later");
    fieldsync_e2e::assert_converged(&server, TEAM, &[&restored, &maria]);
}
