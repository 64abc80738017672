//! A full disk costs nothing: on a real small filesystem (a tmpfs this test mounts; it runs as
//! root, as CI does), a rep pushes visits until the server's free-space reserve is reached. Every
//! acknowledged visit stays readable, the refused pushes get a typed 507 and change nothing, reads
//! go on, writes resume by themselves once space is freed, and after a restart every acknowledged
//! visit is still there. Repeated on fresh filesystems: the corruption this guards against was
//! seen in one try of five.

use std::path::{Path, PathBuf};
use std::process::Command;

use fieldsync_core::Role;
use fieldsync_core::docs::Document;
use fieldsync_e2e::{Device, DeviceError, MORNING_MS, TestServer, fixtures};

const MIB: u64 = 1024 * 1024;
const ROUNDS: usize = 5;
/// Characters of notes per visit (the notes are diffed as they are set: quadratic in debug builds
/// past a few thousand).
const NOTES: usize = 2_000;
/// Visits pushed per sync.
const PER_SYNC: usize = 10;

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallFs {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size_mib: u64) -> SmallFs {
        let dir = tempfile::tempdir().expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m,mode=0700"), "tmpfs"])
            .arg(dir.path())
            .status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "mounting a {size_mib} MiB tmpfs needs root (CI runs as root): {status:?}"
        );
        SmallFs { mount: dir.path().to_path_buf(), _dir: dir }
    }

    fn path(&self) -> &Path {
        &self.mount
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// Incompressible notes: a full disk comes from what is written, not from its compression.
fn noise(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// Fills the filesystem at `dir` until `leave` bytes are free, with one file.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let free = fieldsync_server::store::free_bytes(dir).expect("statvfs");
    let filler = dir.join("filler");
    let size = free.saturating_sub(leave);
    std::fs::write(&filler, vec![0xA5u8; size as usize]).expect("filler");
    filler
}

/// Alice plans visits with notes and pushes them, ten a sync, until the server refuses a push:
/// the visits acknowledged, the ones refused (still in her outbox), and the refusal.
async fn push_until_refused(
    alice: &mut Device,
    round: usize,
) -> (Vec<String>, Vec<String>, Option<(u16, serde_json::Value)>) {
    let (mut acknowledged, mut waiting) = (Vec::new(), Vec::new());
    for i in 0..4_000 {
        let id = format!("v-{round}-{i:04}");
        let at = MORNING_MS + i as i64 * 60_000;
        alice.replica.plan_visit(&id, "c-1", at, at + 1_800_000, MORNING_MS).expect("plan");
        alice.replica.set_visit_notes(&id, &noise(i as u64, NOTES), MORNING_MS).expect("notes");
        waiting.push(id);
        if waiting.len() < PER_SYNC {
            continue;
        }
        match alice.sync().await {
            Ok(_) => acknowledged.append(&mut waiting),
            Err(DeviceError::Http { status, body }) => return (acknowledged, waiting, Some((status, body))),
            Err(e) => panic!("round {round}, visit {i}: {e:?}"),
        }
    }
    (acknowledged, waiting, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_507_loses_nothing_acknowledged_and_recovers_when_space_returns() {
    let mut acknowledged_total = 0;
    let mut refused_total = 0;
    for round in 0..ROUNDS {
        let fs = SmallFs::mount(96);
        let mut server = TestServer::start_in(fs.path(), |c| c.min_free_bytes = 8 * MIB).await;
        server.seed("t", &fixtures::territory_with_customer("t-alice", &["alice"], "c-1"));
        let mut alice = server.synced_device("alice-phone", "t", "alice", Role::Rep).await;

        // 1. Only a little room is left beyond the reserve: alice pushes visits, ten a sync, until
        //    it is gone.
        let filler = fill(fs.path(), 8 * MIB + 1536 * 1024);
        let (mut acknowledged, mut waiting, refusal) = push_until_refused(&mut alice, round).await;
        let (status, body) = refusal.expect("the reserve was reached");
        assert_eq!((status, body["error"].as_str()), (507, Some("storage_full")), "{body}");
        assert!(!acknowledged.is_empty(), "some visits were written before the disk filled");
        let free = fieldsync_server::store::free_bytes(fs.path()).expect("statvfs");
        // sled's own writes (its log, page rewrites) come out of the reserve, never past it.
        assert!(free >= 4 * MIB, "most of the 8 MiB reserve is kept: {free} bytes free");

        // 2. Refused again while full, and nothing of it stored; reads go on.
        let pending = alice.replica.outbox_len();
        eprintln!("round {round}: {} visits acknowledged before the reserve", acknowledged.len());
        assert!(pending > 0, "the refused visit waits in the outbox");
        assert!(matches!(alice.sync().await, Err(DeviceError::Http { status: 507, .. })));
        for id in &waiting {
            assert!(server.doc("t", id).is_none(), "a refused push left {id} behind");
        }
        for id in &acknowledged {
            let (status, doc) = alice.get_json(&format!("/v1/docs/{id}")).await;
            assert_eq!(status, 200, "{id} reads while the disk is full: {doc}");
        }

        // 3. Space returns: the next sync goes through, without a restart.
        std::fs::remove_file(&filler).expect("free the space");
        alice.sync().await.expect("writes resume once space is freed");
        assert_eq!(alice.replica.outbox_len(), 0);
        acknowledged.append(&mut waiting);

        // 4. After a restart every acknowledged visit is there, notes and all.
        server.restart().await;
        for (i, id) in acknowledged.iter().enumerate() {
            match server.doc("t", id) {
                Some(Document::Visit(v)) => assert_eq!(v.notes.as_str(), noise(i as u64, NOTES), "{id}"),
                other => panic!("round {round}: acknowledged {id} is gone after a restart: {other:?}"),
            }
        }
        acknowledged_total += acknowledged.len();
        refused_total += 2;
        server.stop().await;
    }
    println!(
        "{ROUNDS} full disks: {acknowledged_total} visits acknowledged and kept, {refused_total} pushes refused"
    );
}

/// Behind the reserve sled never meets `ENOSPC`; should a write fail anyway (another process filled
/// the disk), the store closes: nothing of the failed batch is served, later requests fail cleanly,
/// and after a restart with space freed every acknowledged visit is there and the store opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_fails_anyway_closes_the_store_and_a_restart_brings_back_everything_acknowledged() {
    for round in 0..3 {
        let fs = SmallFs::mount(96);
        // No reserve: the disk really fills.
        let mut server = TestServer::start_in(fs.path(), |c| c.min_free_bytes = 0).await;
        server.seed("t", &fixtures::territory_with_customer("t-alice", &["alice"], "c-1"));
        let mut alice = server.synced_device("alice-phone", "t", "alice", Role::Rep).await;
        let filler = fill(fs.path(), 1536 * 1024);

        // 1. Pushes until one fails on the full disk.
        let (acknowledged, waiting, refusal) = push_until_refused(&mut alice, round).await;
        let failed = refusal.map(|(status, _)| status);
        assert_eq!(failed, Some(500), "round {round}: the full disk failed a write");

        // 2. The store is closed: the failed batch is never served, and nothing else either.
        let (status, _) = alice.get_json(&format!("/v1/docs/{}", waiting[0])).await;
        assert_eq!(status, 500, "the failed visit is not served");
        let (status, _) = alice.get_json(&format!("/v1/docs/{}", acknowledged[0])).await;
        assert_eq!(status, 500, "a closed store serves nothing until restart");

        // 3. Space freed and a restart: the store opens, everything acknowledged is there.
        std::fs::remove_file(&filler).expect("free the space");
        server.restart().await;
        for (i, id) in acknowledged.iter().enumerate() {
            match server.doc("t", id) {
                Some(Document::Visit(v)) => assert_eq!(v.notes.as_str(), noise(i as u64, NOTES), "{id}"),
                other => panic!("round {round}: acknowledged {id} is gone after a restart: {other:?}"),
            }
        }
        // 4. And the phone's outbox goes through now.
        alice.sync().await.expect("the refused visits sync after the restart");
        for id in &waiting {
            assert!(matches!(server.doc("t", id), Some(Document::Visit(_))), "{id}");
        }
        server.stop().await;
    }
}

/// The phone's disk fills (its store on a small real filesystem): the write that does not fit
/// reaches the app as a typed `Storage` error, nothing the app was told is saved is lost, the
/// refused edit itself is saved with the next write once space returns, and everything reaches the
/// server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_phone_disk_is_a_storage_error_and_loses_no_edit() {
    use fieldsync_mobile::{FieldsyncClient, FieldsyncError};
    let server =
        TestServer::seeded("t", &fixtures::territory_with_customer("t-alice", &["alice"], "c-1")).await;
    let token = server.token("t", "alice", Role::Rep);
    let mut saved_total = 0;
    for round in 0..3 {
        let fs = SmallFs::mount(32);
        let store = fs.path().join("store").display().to_string();
        let phone = FieldsyncClient::open(store.clone(), server.url()).expect("open store");
        phone.set_token(token.clone()).expect("token");
        tokio::task::block_in_place(|| phone.sync(None)).expect("bootstrap");

        // 1. Offline, alice plans visits with long notes until the phone's disk is full.
        phone.set_server_url("http://127.0.0.1:1".into());
        let filler = fill(fs.path(), fieldsync_mobile::store::DEFAULT_MIN_FREE_BYTES + 384 * 1024);
        let mut saved: Vec<(String, String)> = Vec::new();
        let mut refused = None;
        for i in 0..2_000u64 {
            let at = MORNING_MS + i as i64 * 60_000;
            let visit = match phone.plan_visit("c-1".into(), at, at + 1_800_000) {
                Ok(v) => v,
                Err(e) => {
                    refused = Some((None, e));
                    break;
                }
            };
            let notes = noise(round * 10_000 + i, NOTES);
            match phone.set_visit_notes(visit.id.clone(), notes.clone()) {
                Ok(_) => saved.push((visit.id, notes)),
                Err(e) => {
                    refused = Some((Some((visit.id, notes)), e));
                    break;
                }
            }
        }
        let (unsaved, error) = refused.expect("the phone's disk filled");
        assert!(matches!(error, FieldsyncError::Storage { .. }), "round {round}: {error:?}");
        assert!(saved.len() > 10, "round {round}: visits were saved before the disk filled");

        // 2. Space returns: the next write works, and the refused edit is saved with it.
        std::fs::remove_file(&filler).expect("free the space");
        let last = phone.plan_visit("c-1".into(), MORNING_MS, MORNING_MS + 60_000).expect("writes resume");
        saved.push((last.id, String::new()));
        if let Some(edit) = unsaved {
            saved.push(edit);
        }

        // 3. Reopened (the app restarted), the phone has every visit with its notes.
        drop(phone);
        let phone = FieldsyncClient::open(store, server.url()).expect("the store opens again");
        phone.set_token(token.clone()).expect("token");
        for (id, notes) in &saved {
            let v = phone.get_visit(id.clone()).unwrap_or_else(|e| panic!("round {round}: {id} lost: {e:?}"));
            assert_eq!(v.notes.as_str(), notes, "round {round}: the notes of {id}");
        }

        // 4. Online again, all of it reaches the server.
        tokio::task::block_in_place(|| phone.sync(None)).expect("sync");
        assert_eq!(phone.outbox_size(), 0);
        for (id, notes) in &saved {
            match server.doc("t", id) {
                Some(Document::Visit(v)) => assert_eq!(v.notes.as_str(), notes, "{id}"),
                other => panic!("round {round}: {id} did not reach the server: {other:?}"),
            }
        }
        saved_total += saved.len();
    }
    println!("3 full phone disks: {saved_total} visits saved and synced, 3 refused writes kept");
}
