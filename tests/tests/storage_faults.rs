//! A failed write costs nothing (issue 14): the server's sled store behind a fault injector that
//! fails one batch in five at random (seeded) — refused before the write (a full disk, an I/O
//! error) or failed after it (the flush's answer lost) — while five devices push notes on shared
//! customers, a dashboard reads them and the feed is trimmed. Each failed request gets a typed 5xx
//! that tells nothing of the storage, nothing is acknowledged that is not stored, the next request
//! works, no reader ever sees what was not stored, and after a restart on plain sled everything
//! acknowledged is there and every device converges.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use automerge::ChangeHash;
use fieldsync_core::Role;
use fieldsync_core::testing::faults::Faults;
use fieldsync_e2e::fixtures::{LYON, customer, offset, prepend_notes, territory};
use fieldsync_e2e::{
    Device, DeviceError, MORNING_MS, TestServer, assert_feed_without_gap, assert_holds_exactly_its_scope,
    customer_of, spawn_trimmer,
};

const TEAM: &str = "acme";
/// Edits per device while faults are on.
const ROUNDS: usize = 25;
/// Batches failing, per thousand.
const FAULTS_PER_MILLE: u32 = 200;

fn seed() -> u64 {
    std::env::var("FIELDSYNC_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(14)
}

/// What one device saw: changes the server acknowledged, requests that failed (by status).
#[derive(Debug, Default)]
struct Record {
    acked: Vec<(String, ChangeHash)>,
    failed: BTreeMap<u16, usize>,
    typed: Vec<(String, String)>,
}

/// Syncs until idle, or until a request fails; a failure must be a typed server error that names
/// no storage internals. Returns whether the sync finished.
async fn sync_once(d: &mut Device, rec: &mut Record) -> bool {
    for _ in 0..100 {
        let req = d.replica.prepare_request();
        match d.exchange(&req).await {
            Ok(resp) => {
                for a in &resp.accepted {
                    for h in &a.hashes {
                        rec.acked.push((a.doc_id.clone(), ChangeHash::try_from(h.as_slice()).expect("hash")));
                    }
                }
                let report = d.replica.apply_response(&resp).expect("apply");
                assert!(report.rejected.is_empty(), "honest edits are taken: {:?}", report.rejected);
                if !report.more && d.replica.outbox_len() == 0 {
                    return true;
                }
            }
            Err(DeviceError::Http { status, body }) => {
                assert!(matches!(status, 500 | 503 | 507), "a failed write is a 5xx: {status} {body}");
                let code = body["error"].as_str().unwrap_or_default();
                assert!(!code.is_empty(), "typed: {body}");
                let message = body["message"].as_str().unwrap_or_default();
                assert!(!message.is_empty(), "with a message: {body}");
                assert!(!body.to_string().contains("injected"), "storage internals stay in the log: {body}");
                *rec.failed.entry(status).or_default() += 1;
                return false;
            }
            Err(e) => panic!("{}: {e:?}", d.replica.device_id()),
        }
    }
    panic!("{} did not finish in 100 rounds", d.replica.device_id());
}

async fn work(mut d: Device, n: usize) -> (Device, Record) {
    let mut rec = Record::default();
    let me = d.replica.device_id().to_string();
    for round in 0..ROUNDS {
        let customers: Vec<String> = d.replica.doc_ids().filter(|id| id.starts_with("c-")).cloned().collect();
        let target = customers[(n + round) % customers.len()].clone();
        let text = format!("[{me}.{round}]");
        d.replica.update(&target, MORNING_MS, prepend_notes(&text)).expect("note");
        rec.typed.push((target, text));
        sync_once(&mut d, &mut rec).await;
    }
    (d, rec)
}

/// The `[device.n]` notes of a text.
fn notes_in(text: &str) -> BTreeSet<String> {
    text.split('[')
        .skip(1)
        .filter_map(|s| s.split_once(']'))
        .filter(|(n, _)| {
            n.contains('.') && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        })
        .map(|(n, _)| format!("[{n}]"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_that_fails_at_random_loses_nothing_acknowledged_and_serves_nothing_unwritten() {
    // 1. A team whose three customers alice, bob and the manager share, and one of carol's; the
    //    store behind a fault injector, off while everyone bootstraps.
    let faults = Arc::new(Faults::new(seed()));
    let mut server = TestServer::start_with_faults(faults.clone()).await;
    let mut docs = vec![territory("t-1", &["alice", "bob"]), territory("t-2", &["carol"])];
    for i in 0..3 {
        docs.push(
            customer(&format!("c-{i}"), "alice", Some("t-1"), offset(LYON, i as f64 * 200.0, 0.0)).into(),
        );
    }
    docs.push(customer("c-carol", "carol", Some("t-2"), offset(LYON, 0.0, 900.0)).into());
    server.seed(TEAM, &docs);
    let mut devices = vec![
        server.synced_device("alice-phone", TEAM, "alice", Role::Rep).await,
        server.synced_device("alice-tablet", TEAM, "alice", Role::Rep).await,
        server.synced_device("bob-phone", TEAM, "bob", Role::Rep).await,
        server.synced_device("carol-phone", TEAM, "carol", Role::Rep).await,
        server.synced_device("maria-tablet", TEAM, "maria", Role::Manager).await,
    ];

    // 2. Faults on: a fifth of the batches fail. A dashboard reads the shared customer and notes
    //    every note it was shown; the feed is trimmed now and then (a trim is a batch too).
    faults.fail(FAULTS_PER_MILLE);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let dash = server.add_device("dash", TEAM, "maria", Role::Manager);
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = dash.get_json("/v1/docs/c-0").await;
                assert_eq!(status, 200, "reads work while writes fail: {body}");
                let text = body.to_string();
                seen.extend(notes_in(&text));
                reads += 1;
            }
            (seen, reads)
        })
    };
    // A trim that fails changes nothing; the next one trims.
    let trimmer = spawn_trimmer(&server, TEAM, 30, Duration::from_millis(20), stop.clone());

    // 3. Every device writes and syncs at once; a failed sync is simply tried again next round.
    let tasks: Vec<_> = devices.drain(..).enumerate().map(|(i, d)| tokio::spawn(work(d, i))).collect();
    let mut records = Vec::new();
    for t in tasks {
        let (d, rec) = t.await.expect("device task");
        devices.push(d);
        records.push(rec);
    }
    stop.store(true, Ordering::Relaxed);
    let (seen, reads) = reader.await.expect("reader");
    let (trims, _) = trimmer.await.expect("trimmer");
    let injected = faults.injected();
    let failed: usize = records.iter().flat_map(|r| r.failed.values()).sum();
    assert!(
        injected >= 10 && failed >= 5,
        "faults were injected ({injected}) and requests failed ({failed})"
    );

    // 4. Faults off: the next requests just work, with nothing to restart — every device
    //    finishes its sync and they all converge.
    faults.fail(0);
    for _ in 0..2 {
        for (d, rec) in devices.iter_mut().zip(records.iter_mut()) {
            assert!(sync_once(d, rec).await, "{} syncs once the store works", d.replica.device_id());
        }
    }
    assert_holds_exactly_its_scope(&server, TEAM, &devices.iter().collect::<Vec<_>>());

    // 5. A restart on plain sled: what was acknowledged is stored, every note typed is on the
    //    server, every note the dashboard was shown is too, and the feed has no gap.
    server.restart().await;
    let mut acked = 0;
    let mut stored_docs = BTreeMap::new();
    for rec in &records {
        for (doc, h) in &rec.acked {
            let stored = stored_docs.entry(doc.clone()).or_insert_with(|| server.stored(TEAM, doc));
            assert!(stored.get_change_meta_by_hash(h).is_some(), "acknowledged {h} of {doc} lost");
            acked += 1;
        }
        for (doc, text) in &rec.typed {
            let notes = customer_of(server.doc(TEAM, doc)).notes.as_str().to_string();
            assert!(notes.contains(text.as_str()), "{text} typed into {doc} is lost");
        }
    }
    let stored = notes_in(customer_of(server.doc(TEAM, "c-0")).notes.as_str());
    let unwritten: Vec<&String> = seen.difference(&stored).collect();
    assert!(unwritten.is_empty(), "the dashboard was shown notes that were never stored: {unwritten:?}");
    let (horizon, head) = assert_feed_without_gap(&server, TEAM);
    for (d, rec) in devices.iter_mut().zip(records.iter_mut()) {
        assert!(sync_once(d, rec).await, "{} syncs after the restart", d.replica.device_id());
    }
    assert_holds_exactly_its_scope(&server, TEAM, &devices.iter().collect::<Vec<_>>());

    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for rec in &records {
        for (s, n) in &rec.failed {
            *by_status.entry(*s).or_default() += n;
        }
    }
    eprintln!(
        "storage faults (seed {}): {} batches while on, {injected} failed ({} refused, {} disk full, {} after \
         the write); requests failed by status {by_status:?}; {acked} acknowledged changes checked; {} notes \
         typed; dashboard: {reads} reads, {} notes seen; {} trims; feed {horizon}..={head}",
        seed(),
        faults.batches.load(Ordering::SeqCst),
        faults.refused.load(Ordering::SeqCst),
        faults.full.load(Ordering::SeqCst),
        faults.after_write.load(Ordering::SeqCst),
        records.iter().map(|r| r.typed.len()).sum::<usize>(),
        seen.len(),
        trims,
    );
}
