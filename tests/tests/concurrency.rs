//! Fifty devices of one team syncing at once (issue 14): reps with four devices each and two
//! manager tablets write to the same customers, plan visits and move a customer between
//! territories, while dashboards read documents and the segmentation and the feed is trimmed
//! under them. Afterwards every device holds exactly its scope with the server's heads — every
//! document the server has for it, nothing else — every note anybody typed is on the server or
//! kept as a rejected edit, and the feed has no gap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use fieldsync_core::Role;
use fieldsync_core::docs::{Cadence, Document, Plan, TierThresholds};
use fieldsync_core::storage::Storage as _;
use fieldsync_e2e::fixtures::{LYON, customer, offset, on_customer, prepend_notes, territory, visit};
use fieldsync_e2e::{
    Device, DeviceError, MORNING_MS, SyncOutcome, TestServer, assert_feed_without_gap,
    assert_holds_exactly_its_scope, customer_of, spawn_trimmer, visit_of,
};

const TEAM: &str = "acme";
const REPS: usize = 12;
const DEVICES_PER_REP: usize = 4;
const MANAGERS: usize = 2;
/// Edits (each followed by a sync) per device.
const ROUNDS: usize = 6;
/// Feed entries the trimmer keeps: small, so devices fall behind the horizon and bootstrap again
/// while the others push.
const FEED_KEPT: u64 = 40;

fn rep(i: usize) -> String {
    format!("r{i:02}")
}

/// North: the first half of the reps; south: the others. Each has six customers.
fn territory_of(i: usize) -> &'static str {
    if i < REPS / 2 { "t-north" } else { "t-south" }
}

fn seed() -> Vec<Document> {
    let north: Vec<String> = (0..REPS / 2).map(rep).collect();
    let south: Vec<String> = (REPS / 2..REPS).map(rep).collect();
    let mut docs = vec![
        territory("t-north", &north.iter().map(String::as_str).collect::<Vec<_>>()),
        territory("t-south", &south.iter().map(String::as_str).collect::<Vec<_>>()),
    ];
    for (t, reps) in [("n", &north), ("s", &south)] {
        for i in 0..6 {
            let at = offset(LYON, i as f64 * 300.0, if t == "n" { 0.0 } else { 2_000.0 });
            let terr = if t == "n" { "t-north" } else { "t-south" };
            docs.push(customer(&format!("c-{t}{i}"), &reps[i % reps.len()], Some(terr), at).into());
        }
    }
    let cadence = Cadence { a_days: 14, b_days: 28, c_days: 60 };
    let thresholds = TierThresholds { a_min_score: 30_000.0, b_min_score: 10_000.0 };
    docs.push(Plan::new("plan-2026-q4", "2026-Q4", cadence, thresholds).into());
    docs
}

/// A note one device typed into one document.
#[derive(Debug, Clone)]
struct Typed {
    device: String,
    doc: String,
    text: String,
}

/// Syncs until the server has nothing more, waiting out the server's typed "busy" answers (a rep's
/// four devices and dashboards share the per-user body limit). Any other failure fails the test.
async fn sync(d: &mut Device, busy: &AtomicUsize) -> SyncOutcome {
    for _ in 0..500 {
        match d.sync().await {
            Ok(o) => return o,
            Err(DeviceError::Http { status: 503 | 429, .. }) => {
                busy.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{} failed to sync: {e:?}", d.replica.device_id()),
        }
    }
    panic!("{} stayed busy for 500 tries", d.replica.device_id());
}

/// One device's part: ROUNDS edits, each synced at once. Reps write notes on a customer they hold
/// and plan visits; managers write notes, and the first one moves c-n0 to the south on round 2.
async fn work(mut d: Device, index: usize, busy: Arc<AtomicUsize>) -> (Device, Vec<Typed>) {
    let me = d.replica.device_id().to_string();
    let manager = d.replica.principal().role == Role::Manager;
    let mut typed = Vec::new();
    sync(&mut d, &busy).await;
    for round in 0..ROUNDS {
        let now = MORNING_MS + (round as i64) * 60_000;
        let customers: Vec<String> = d.replica.doc_ids().filter(|id| id.starts_with("c-")).cloned().collect();
        assert!(!customers.is_empty(), "{me} holds customers");
        // Many devices on few documents: everyone starts from c-?0 and walks its customers.
        let target = customers[(index + round) % customers.len().min(3)].clone();
        let text = format!("[{me}.{round}]");
        d.replica.update(&target, now, prepend_notes(&text)).expect("a note on a held customer");
        typed.push(Typed { device: me.clone(), doc: target, text });
        if manager && index == 0 && round == 2 {
            let south = rep(REPS / 2);
            d.replica
                .update(
                    "c-n0",
                    now,
                    on_customer(|c| {
                        c.territory = Some("t-south".into());
                        c.owner_rep = Some(south.clone());
                    }),
                )
                .expect("a manager moves a customer");
        }
        if !manager && round % 2 == 1 {
            let user = d.replica.principal().user.clone();
            let id = format!("v-{me}-{round}");
            let customer = customers[round % customers.len()].clone();
            d.replica.create(visit(&id, &customer, &user, now).into(), now).expect("a rep plans a visit");
            typed.push(Typed { device: me.clone(), doc: id.clone(), text: String::new() });
        }
        sync(&mut d, &busy).await;
    }
    (d, typed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_devices_syncing_at_once_with_readers_and_trims_each_end_with_exactly_its_scope() {
    // 1. A team of twelve reps in two territories, twelve customers and a plan; 48 rep devices
    //    and two manager tablets, none synced yet.
    let server = TestServer::seeded(TEAM, &seed()).await;
    let mut devices = Vec::new();
    for r in 0..REPS {
        for k in 0..DEVICES_PER_REP {
            devices.push(server.add_device(&format!("{}-d{k}", rep(r)), TEAM, &rep(r), Role::Rep));
        }
    }
    for m in 0..MANAGERS {
        devices.push(server.add_device(&format!("maria-t{m}"), TEAM, "maria", Role::Manager));
    }
    assert_eq!(devices.len(), 50);

    // 2. Dashboards read documents and the segmentation in a loop; the feed is trimmed every few
    //    milliseconds to its newest entries.
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for i in 0..4 {
        let reader = server.add_device(&format!("dash-{i}"), TEAM, "maria", Role::Manager);
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let (mut ok, mut busy) = (0usize, 0usize);
            while !stop.load(Ordering::Relaxed) {
                let path = match i {
                    0 => "/v1/plan/segmentation",
                    1 => "/v1/docs/c-n0",
                    2 => "/v1/reports/customers",
                    _ => "/v1/docs/c-s0",
                };
                let (status, body) = reader.get_json(path).await;
                match status {
                    200 => ok += 1,
                    503 => busy += 1,
                    _ => panic!("{path}: {status} {body}"),
                }
            }
            (ok, busy)
        }));
    }
    let trimmer = spawn_trimmer(&server, TEAM, FEED_KEPT, Duration::from_millis(5), stop.clone());

    // 3. All fifty devices bootstrap, write and sync at once.
    let busy = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> =
        devices.into_iter().enumerate().map(|(i, d)| tokio::spawn(work(d, i % 7, busy.clone()))).collect();
    let mut devices = Vec::new();
    let mut typed = Vec::new();
    for t in tasks {
        let (d, t) = t.await.expect("a device's task");
        devices.push(d);
        typed.extend(t);
    }
    stop.store(true, Ordering::Relaxed);
    let (trims, failed_trims) = trimmer.await.expect("trimmer");
    assert_eq!(failed_trims, 0, "trims never fail");
    let mut reads = 0;
    for r in readers {
        let (ok, _) = r.await.expect("reader");
        assert!(ok > 0, "a dashboard read something");
        reads += ok;
    }
    let horizon = server.server().engine().storage().feed_horizon(TEAM).expect("horizon");
    assert!(horizon > 0, "the feed was trimmed under the devices");

    // 4. Every device syncs twice more, one after the other: what the others pushed last reaches it.
    for _ in 0..2 {
        for d in &mut devices {
            sync(d, &busy).await;
        }
    }

    // 5. Both directions: each device holds exactly its scope, each document with the server's
    //    heads; the customer that moved is with the south reps only.
    let scopes = assert_holds_exactly_its_scope(&server, TEAM, &devices.iter().collect::<Vec<_>>());
    assert_eq!(customer_of(server.doc(TEAM, "c-n0")).territory.as_deref(), Some("t-south"));
    for r in 0..REPS {
        let holds = scopes[&rep(r)].contains("c-n0");
        assert_eq!(holds, territory_of(r) == "t-south", "{} and c-n0", rep(r));
    }

    // 6. Nothing typed is lost: every note is on the server, or — written by a north rep on the
    //    customer that left their scope — kept as that device's rejected edit.
    let mut set_aside = 0;
    for t in &typed {
        if t.text.is_empty() {
            let v = visit_of(server.doc(TEAM, &t.doc));
            assert_eq!(format!("{}-d", v.rep), t.device[..v.rep.len() + 2], "{} is {}'s", t.doc, v.rep);
            continue;
        }
        let notes = customer_of(server.doc(TEAM, &t.doc)).notes.as_str().to_string();
        if notes.contains(&t.text) {
            continue;
        }
        let device = devices.iter().find(|d| d.replica.device_id() == t.device).expect("device");
        assert!(
            t.doc == "c-n0" && device.replica.rejected().iter().any(|r| r.doc_id == t.doc),
            "{} typed into {} is lost",
            t.text,
            t.doc
        );
        set_aside += 1;
    }

    // 7. The feed is numbered without a gap from its horizon to its head.
    let (horizon, head) = assert_feed_without_gap(&server, TEAM);
    eprintln!(
        "50 devices: {} notes and visits typed, {set_aside} set aside, {} busy answers waited out; \
         {reads} dashboard reads, {} trims, feed {horizon}..={head}, {} documents",
        typed.len(),
        busy.load(Ordering::Relaxed),
        trims,
        server.server().engine().storage().list_docs(TEAM, None, "", 100_000).expect("list").len()
    );
}
