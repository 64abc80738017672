//! Backup and restore (issue 9, item 5).
//!
//! Three reps' phones push notes as fast as they can while the server writes a backup; the server
//! is then lost and restored from it. Every push acknowledged before the backup began must be in
//! the restored store, and the phones, which went on past the backup, must continue against the
//! restored server without losing anything: they bootstrap (their cursors lie behind the restarted
//! feed) and send up what the backup missed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fieldsync_core::Role;
use fieldsync_core::storage::{RESTORE_FEED_GAP, Storage};
use fieldsync_e2e::fixtures::{prepend_notes, territory_with_customer};
use fieldsync_e2e::{
    Device, TestServer, assert_feed_without_gap, assert_holds_exactly_its_scope, customer_of,
};

const TEAM: &str = "acme";
const REPS: [&str; 3] = ["alice", "bob", "carol"];

/// A note's text: delimited on both sides, so `alice-1` is never found inside `alice-12`.
fn note(rep: &str, i: usize) -> String {
    format!("|{rep}-{i}|")
}

/// When each note was acknowledged (the sync that carried it returned).
type Acks = Arc<Mutex<Vec<(String, Instant)>>>;

fn acked_count(acks: &Acks, rep: &str, after: Option<Instant>) -> usize {
    let acks = acks.lock().expect("acks");
    acks.iter().filter(|(n, at)| n.starts_with(&format!("|{rep}-")) && after.is_none_or(|t| *at > t)).count()
}

/// Edits the rep's customer and syncs, over and over, until `stop`; records each acknowledgement.
fn spawn_rep(
    mut phone: Device,
    rep: &'static str,
    acks: Acks,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Device> {
    tokio::spawn(async move {
        let mut i = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            i += 1;
            let text = note(rep, i);
            phone.replica.update(&format!("c-{rep}"), phone.now(), prepend_notes(&text)).expect("edit");
            match phone.sync().await {
                Ok(outcome) => {
                    assert!(
                        outcome.rejected().is_empty(),
                        "{rep}'s notes are refused: {:?}",
                        outcome.rejected()
                    );
                    acks.lock().expect("acks").push((text, Instant::now()));
                }
                Err(e) => panic!("{rep}'s sync failed during the backup: {e:?}"),
            }
        }
        phone
    })
}

fn notes_on_server(server: &TestServer, rep: &str) -> String {
    customer_of(server.doc(TEAM, &format!("c-{rep}"))).notes.as_str().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_during_pushes_restores_every_acknowledged_push_and_the_phones_send_up_the_rest() {
    // 1. A team of three reps, each with a territory and a customer; their phones are synced.
    let docs: Vec<_> = REPS
        .iter()
        .flat_map(|r| territory_with_customer(&format!("t-{r}"), &[r], &format!("c-{r}")))
        .collect();
    let mut server = TestServer::seeded(TEAM, &docs).await;
    let mut phones = Vec::new();
    for rep in REPS {
        phones.push(server.synced_device(&format!("{rep}-phone"), TEAM, rep, Role::Rep).await);
    }

    // 2. The phones push notes without pause.
    let acks: Acks = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> =
        phones.into_iter().zip(REPS).map(|(p, rep)| spawn_rep(p, rep, acks.clone(), stop.clone())).collect();
    let wait_for = |need: usize, after: Option<Instant>| {
        let acks = acks.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while REPS.iter().any(|r| acked_count(&acks, r, after) < need) {
                assert!(Instant::now() < deadline, "the phones stopped getting acknowledgements");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    wait_for(10, None).await;

    // 3. The backup is written while they push.
    let backup_dir = tempfile::tempdir().expect("backup dir");
    let file = backup_dir.path().join("acme.fsb");
    let began = Instant::now();
    let head_when_backup_began = server.server().engine().storage().feed_head(TEAM).expect("head");
    let (s, out) = (server.server().clone(), file.clone());
    let report = tokio::task::spawn_blocking(move || s.backup(&out)).await.expect("task").expect("backup");
    let ended = Instant::now();
    assert!(
        report.summary.pairs > 0 && report.summary.files == 2,
        "pairs, the secret and the metrics token: {report:?}"
    );

    // 4. They go on past the backup, then the server is lost.
    wait_for(10, Some(ended)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut phones = Vec::new();
    for t in tasks {
        phones.push(t.await.expect("a phone's task"));
    }
    let head_when_lost = server.server().engine().storage().feed_head(TEAM).expect("head");
    let acked: Vec<(String, Instant)> = acks.lock().expect("acks").clone();
    let restore = server.replace_with_restore(&file).await;
    assert_eq!(restore.teams.len(), 1, "one team restored: {restore:?}");

    // 5. Every note acknowledged before the backup began is in the restored store; notes
    //    acknowledged after it ended are not (the backup is of one moment, not of the end).
    let on_server: Vec<String> = REPS.iter().map(|r| notes_on_server(&server, r)).collect();
    let held = |n: &str| on_server.iter().any(|notes| notes.contains(n));
    let before: Vec<&String> = acked.iter().filter(|(_, at)| *at < began).map(|(n, _)| n).collect();
    assert!(before.len() >= 30, "at least 10 notes a rep before the backup: {}", before.len());
    let missing: Vec<&&String> = before.iter().filter(|n| !held(n)).collect();
    assert!(missing.is_empty(), "acknowledged before the backup began and not restored: {missing:?}");
    let after_backup: Vec<&String> = acked.iter().filter(|(_, at)| *at > ended).map(|(n, _)| n).collect();
    assert!(after_backup.iter().any(|n| !held(n)), "the restored store holds notes written after its backup");

    // 6. The restored feed restarted past every cursor the old server handed out.
    let (horizon, head) = assert_feed_without_gap(&server, TEAM);
    assert!(head >= head_when_backup_began + RESTORE_FEED_GAP && horizon == head, "feed {horizon}..{head}");

    // 7. The manager's tablet bootstraps on the restored server and writes more than the old
    //    server handed out after the backup, so the restored feed passes the phones' old cursors.
    let mut tablet = server.synced_device("manager-tablet", TEAM, "manager", Role::Manager).await;
    for i in 0..(head_when_lost - head_when_backup_began + 5) as usize {
        tablet.replica.update("c-alice", tablet.now(), prepend_notes(&note("manager", i))).expect("edit");
        tablet.sync().await.expect("the tablet syncs");
    }

    // 8. The phones sync with the server that replaced theirs: nothing refused, nothing lost.
    for round in 0..2 {
        for (p, rep) in phones.iter_mut().zip(REPS) {
            let outcome = p.sync().await.unwrap_or_else(|e| panic!("{rep} syncs after the restore: {e:?}"));
            assert!(
                outcome.rejected().is_empty(),
                "round {round}: {rep}'s edits refused: {:?}",
                outcome.rejected()
            );
        }
        tablet.sync().await.expect("the tablet syncs");
    }
    let on_server: Vec<String> = REPS.iter().map(|r| notes_on_server(&server, r)).collect();
    let lost: Vec<&String> = acked
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !on_server.iter().any(|notes| notes.contains(n.as_str())))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged notes lost through the restore: {lost:?}",
        lost.len(),
        acked.len()
    );
    let mut devices: Vec<&Device> = phones.iter().collect();
    devices.push(&tablet);
    assert_holds_exactly_its_scope(&server, TEAM, &devices);
}

#[tokio::test]
async fn a_damaged_or_cut_backup_restores_nothing_and_says_why() {
    // 1. A backup of a seeded team.
    let docs = territory_with_customer("t-alice", &["alice"], "c-alice");
    let server = TestServer::seeded(TEAM, &docs).await;
    let dir = tempfile::tempdir().expect("dir");
    let good = dir.path().join("good.fsb");
    server.server().backup(&good).expect("backup");
    let bytes = std::fs::read(&good).expect("read");

    // 2. A second backup to the same name is refused: a backup is never overwritten.
    assert!(server.server().backup(&good).is_err(), "a backup replaced an existing file");

    // 3. Cut short, or one byte changed: an error, and the new directory is left as it was.
    for (name, damaged) in [
        ("cut", bytes[..bytes.len() / 2].to_vec()),
        ("flipped", {
            let mut b = bytes.clone();
            let at = b.len() / 3;
            b[at] ^= 0x10;
            b
        }),
    ] {
        let path = dir.path().join(format!("{name}.fsb"));
        std::fs::write(&path, damaged).expect("write");
        let target = dir.path().join(format!("restored-{name}"));
        let err = fieldsync_server::backup::restore(&path, &target).expect_err("a damaged backup restores");
        assert!(!target.exists(), "{name}: the restore left {} behind", target.display());
        let message = err.to_string();
        assert!(message.contains("cut short") || message.contains("damaged"), "{name}: {message}");
    }

    // 4. A restore never writes into a directory holding data.
    let err =
        fieldsync_server::backup::restore(&good, server.data_dir()).expect_err("restored over live data");
    assert!(err.to_string().contains("not empty"), "{err}");
}
