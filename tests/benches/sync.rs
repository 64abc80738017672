//! Push throughput over the real HTTP path, against the in-process Automerge sync "limit".
//!
//! ```text
//! cargo bench -p fieldsync-e2e --bench sync                          # D = 500 and 5000
//! cargo bench -p fieldsync-e2e --bench sync -- --docs 500,5000 --batch 100 --workers 2
//! ```
//!
//! `--encoded-limit` also times the limit with every sync message encoded and decoded (stderr).
//!
//! For each D: a rep's phone creates D visits offline, each with 20 changes (the creation and 19
//! edits of the notes, a real `Text` splice, and the planned end). Untimed. Then, timed: the phone
//! pushes everything to a real server (axum + sled on loopback, every push flushed before it is
//! acknowledged) until its outbox is empty. The outbox is split into shards of `--batch` documents,
//! each held by its own `Replica` of the same device (same device id, same actor: one phone whose
//! outbox is sent in several requests), and `--workers` requests are in flight at once. All the
//! requests carry the phone's one cursor, so a response never carries the phone's own changes back.
//!
//! The limit: the same D documents (cloned Automerge docs) synced, one by one on one thread, to an
//! empty in-memory peer with Automerge's own sync protocol, until neither side has a message.
//!
//! stdout: one JSON line per D. stderr: requests, bytes, a client-side breakdown and server figures.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use automerge::sync::{Message, State, SyncDoc};
use automerge::{Automerge, ChangeHash};
use autosurgeon::Text;
use fieldsync_core::Role;
use fieldsync_core::docs::Document;
use fieldsync_core::protocol::{Cursor, SyncResponse};
use fieldsync_core::storage::{KvBackend as _, Storage as _};
use fieldsync_e2e::{Device, MORNING_MS, TestServer, fixtures};

const TEAM: &str = "bench";
const REP: &str = "alice";
const PHONE: &str = "bench-phone";
/// Changes per document: the creation and 19 edits.
const CHANGES_PER_DOC: usize = 20;

#[derive(Debug, Clone)]
struct Options {
    docs: Vec<usize>,
    /// Documents per request (per shard replica).
    batch: usize,
    /// Requests in flight at once.
    workers: usize,
    /// Also time the limit with every sync message encoded and decoded (stderr only).
    encoded_limit: bool,
}

fn parse_args() -> Options {
    let mut o = Options { docs: vec![500, 5000], batch: 100, workers: 2, encoded_limit: false };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let mut value = |what: &str| -> String {
            inline.clone().or_else(|| args.next()).unwrap_or_else(|| panic!("{what} needs a value"))
        };
        match name.as_str() {
            "--docs" => {
                o.docs = value("--docs")
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.trim().parse().expect("--docs takes numbers, e.g. 500,5000"))
                    .collect()
            }
            "--batch" => o.batch = value("--batch").parse().expect("--batch takes a number"),
            "--workers" => o.workers = value("--workers").parse().expect("--workers takes a number"),
            "--encoded-limit" => o.encoded_limit = true,
            // What `cargo bench` passes to every bench binary; filters are not used here.
            "--bench" => {}
            other if other.starts_with('-') => {
                eprintln!("sync bench: ignoring unknown option {other}")
            }
            _ => {}
        }
    }
    assert!(o.batch > 0 && o.workers > 0, "--batch and --workers must be positive");
    o
}

fn main() {
    println!("{}", fieldsync_e2e::machine_line());
    let opts = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    for &d in &opts.docs {
        let pushed = rt.block_on(http_push(d, &opts));
        let limit = automerge_limit(&pushed.docs, false);
        if opts.encoded_limit {
            let encoded = automerge_limit(&pushed.docs, true);
            eprintln!(
                "[D={d}] limit with sync messages encoded+decoded: {:.3} ms (ratio {:.3})",
                ms(encoded),
                ms(pushed.wall) / ms(encoded)
            );
        }
        let wall_ms = ms(pushed.wall);
        let limit_ms = ms(limit);
        println!(
            "{{\"scenario\":\"http_push\",\"docs\":{d},\"changes\":{},\"wall_ms\":{wall_ms:.3},\"limit_ms\":{limit_ms:.3},\"ratio\":{:.3}}}",
            d * CHANGES_PER_DOC,
            wall_ms / limit_ms
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A thread: id, name, ns on a CPU, ns waiting for one.
type ThreadTime = (String, String, u64, u64);

/// Per thread of this process: name, nanoseconds on a CPU, nanoseconds runnable but waiting for one
/// (Linux `schedstat`; empty elsewhere). The wait shows when other processes compete for the cores.
fn thread_times() -> Vec<ThreadTime> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return vec![];
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let path = entry.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
        let mut f = stat.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
        let (cpu, wait) = (f.next().unwrap_or(0), f.next().unwrap_or(0));
        let tid = entry.file_name().to_string_lossy().into_owned();
        out.push((tid, name.trim().to_string(), cpu, wait));
    }
    out
}

/// What each thread did between two `thread_times`, busiest first, as a line for stderr.
fn thread_delta(before: &[ThreadTime], after: &[ThreadTime]) -> String {
    let mut rows: Vec<(String, u64, u64)> = after
        .iter()
        .map(|(tid, name, cpu, wait)| {
            let (c0, w0) = before.iter().find(|b| &b.0 == tid).map_or((0, 0), |b| (b.2, b.3));
            (format!("{name}/{tid}"), cpu - c0.min(*cpu), wait - w0.min(*wait))
        })
        .filter(|r| r.1 > 5_000_000)
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    let total: u64 = rows.iter().map(|r| r.1).sum();
    let waited: u64 = rows.iter().map(|r| r.2).sum();
    let each: Vec<String> = rows
        .iter()
        .map(|(n, c, w)| {
            format!("{n} {:.0} ms (+{:.0} ms waiting for a core)", *c as f64 / 1e6, *w as f64 / 1e6)
        })
        .collect();
    format!(
        "CPU {:.0} ms, runnable-but-waiting {:.0} ms; {}",
        total as f64 / 1e6,
        waited as f64 / 1e6,
        each.join(", ")
    )
}

/// What the timed push left behind for the limit.
struct Pushed {
    wall: Duration,
    /// The device's documents, as Automerge docs.
    docs: Vec<Automerge>,
}

/// Client-side time of one worker, by phase.
#[derive(Debug, Default, Clone)]
struct Stats {
    requests: usize,
    bytes_sent: usize,
    bytes_received: usize,
    prepare: Duration,
    encode: Duration,
    round_trip: Duration,
    decode: Duration,
    apply: Duration,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.requests += o.requests;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.prepare += o.prepare;
        self.encode += o.encode;
        self.round_trip += o.round_trip;
        self.decode += o.decode;
        self.apply += o.apply;
    }
}

/// Notes typed on the road: each edit appends a sentence, every fifth also rewords the start.
fn edit_notes(notes: &mut Text, doc: usize, edit: usize) {
    const PHRASES: [&str; 5] = [
        "asked about the spring range",
        "buyer out, met the deputy",
        "shelf space down to two facings",
        "wants a tasting next month",
        "competitor promo on the end cap",
    ];
    let sentence = format!("{} (#{doc}.{edit}). ", PHRASES[(doc + edit) % PHRASES.len()]);
    let end = notes.as_str().len();
    notes.splice(end, 0, sentence);
    if edit.is_multiple_of(5) {
        let first = notes.as_str().find(' ').unwrap_or(0);
        notes.splice(0, first as isize, "Note:");
    }
}

/// The device's documents, created offline: `CHANGES_PER_DOC` changes each.
fn create_offline(shards: &mut [Device], d: usize, batch: usize) {
    for i in 0..d {
        let device = &mut shards[i / batch];
        let id = format!("visit-{i:06}");
        let start = MORNING_MS + (i as i64) * 60_000;
        let visit = fixtures::visit(&id, &format!("cust-{:04}", i % 997), REP, start);
        device.replica.create(Document::Visit(visit), MORNING_MS).expect("create a visit offline");
        for edit in 1..CHANGES_PER_DOC {
            device
                .replica
                .update(&id, MORNING_MS + edit as i64 * 1000, |doc| {
                    if let Document::Visit(v) = doc {
                        edit_notes(&mut v.notes, i, edit);
                        v.planned_end_ms += 1;
                    }
                })
                .expect("edit a visit offline");
        }
        let changes = device.replica.local(&id).expect("just created").pending().expect("readable").len();
        assert_eq!(changes, CHANGES_PER_DOC, "every edit of {id} is a change");
    }
}

fn later(a: &Cursor, b: &Cursor) -> bool {
    match (a, b) {
        (Cursor::Feed { seq: x }, Cursor::Feed { seq: y }) => x > y,
        (Cursor::Feed { .. }, _) => true,
        _ => false,
    }
}

/// Pushes every shard of one worker, one request at a time, until each outbox is empty.
async fn push_shards(mut shards: Vec<Device>, cursor: Arc<Mutex<Cursor>>) -> (Vec<Device>, Stats) {
    let mut st = Stats::default();
    for device in &mut shards {
        loop {
            let t = Instant::now();
            let mut req = device.replica.prepare_request();
            req.cursor = cursor.lock().expect("cursor lock").clone();
            st.prepare += t.elapsed();

            let t = Instant::now();
            let body = req.encode();
            st.encode += t.elapsed();
            st.bytes_sent += body.len();

            let t = Instant::now();
            let answer = device.post_raw(body).await.expect("push over HTTP");
            st.round_trip += t.elapsed();
            st.bytes_received += answer.len();
            st.requests += 1;

            let t = Instant::now();
            let resp = SyncResponse::decode(&answer).expect("decode the response");
            st.decode += t.elapsed();

            let t = Instant::now();
            let report = device.replica.apply_response(&resp).expect("apply the response");
            st.apply += t.elapsed();
            assert!(report.rejected.is_empty(), "the server refused edits: {:?}", report.rejected);
            {
                let mut c = cursor.lock().expect("cursor lock");
                if later(&resp.cursor, &c) {
                    *c = resp.cursor.clone();
                }
            }
            if !report.more && device.replica.outbox_len() == 0 {
                break;
            }
            assert!(st.requests < 100_000, "the push does not finish");
        }
    }
    (shards, st)
}

async fn http_push(d: usize, opts: &Options) -> Pushed {
    let server = TestServer::start().await;
    let n_shards = d.div_ceil(opts.batch).max(1);
    let mut shards: Vec<Device> =
        (0..n_shards).map(|_| server.add_device(PHONE, TEAM, REP, Role::Rep)).collect();
    // The phone has synced before (empty team): it is on the feed, not bootstrapping.
    for s in &mut shards {
        s.sync().await.expect("first sync");
    }
    let cursor = Arc::new(Mutex::new(shards[0].replica.cursor().clone()));

    let t = Instant::now();
    create_offline(&mut shards, d, opts.batch);
    eprintln!(
        "[D={d}] built {d} visits x {CHANGES_PER_DOC} changes offline in {:.0} ms ({n_shards} shards of <= {} docs, {} workers)",
        ms(t.elapsed()),
        opts.batch,
        opts.workers
    );
    let feed_before = server.server().engine().storage().feed_head(TEAM).expect("feed head");
    let disk_before = server.server().engine().storage().backend().size_on_disk();

    // Round-robin, so the workers finish together.
    let mut per_worker: Vec<Vec<Device>> = (0..opts.workers).map(|_| Vec::new()).collect();
    for (i, s) in shards.into_iter().enumerate() {
        per_worker[i % opts.workers].push(s);
    }

    let threads_before = thread_times();
    // ---- timed ----
    let started = Instant::now();
    let tasks: Vec<_> =
        per_worker.into_iter().map(|w| tokio::spawn(push_shards(w, cursor.clone()))).collect();
    let mut shards = Vec::new();
    let mut stats = Stats::default();
    for t in tasks {
        let (s, st) = t.await.expect("push worker");
        shards.extend(s);
        stats.add(&st);
    }
    let wall = started.elapsed();
    // ---- end timed ----
    let threads_after = thread_times();

    let engine = server.server().engine();
    let feed_after = engine.storage().feed_head(TEAM).expect("feed head");
    let disk_after = engine.storage().backend().size_on_disk();
    eprintln!(
        "[D={d}] pushed in {:.3} ms: {} requests, {:.2} MB sent, {:.2} MB received; {} feed entries, sled {:.1} -> {:.1} MB",
        ms(wall),
        stats.requests,
        stats.bytes_sent as f64 / 1e6,
        stats.bytes_received as f64 / 1e6,
        feed_after - feed_before,
        disk_before as f64 / 1e6,
        disk_after as f64 / 1e6,
    );
    eprintln!(
        "[D={d}] client time summed over workers: prepare {:.1} ms, encode {:.1} ms, HTTP round trip (server) {:.1} ms, decode {:.1} ms, apply {:.1} ms",
        ms(stats.prepare),
        ms(stats.encode),
        ms(stats.round_trip),
        ms(stats.decode),
        ms(stats.apply),
    );
    eprintln!("[D={d}] threads during the push: {}", thread_delta(&threads_before, &threads_after));

    // Untimed: the server holds every document exactly as the phone does.
    let mut docs = Vec::with_capacity(d);
    for s in &shards {
        assert_eq!(s.replica.outbox_len(), 0, "outbox empty after the push");
        assert!(s.replica.rejected().is_empty(), "nothing refused");
        for id in s.replica.doc_ids() {
            let mut local: Vec<ChangeHash> = s.replica.heads(id).expect("held");
            let mut remote = engine
                .doc_heads(TEAM, id)
                .expect("server heads")
                .unwrap_or_else(|| panic!("the server does not hold {id}"));
            local.sort();
            remote.sort();
            assert_eq!(local, remote, "server and phone disagree on {id}");
            docs.push(s.replica.doc_clone(id).expect("held"));
        }
    }
    assert_eq!(docs.len(), d, "the phone holds all {d} visits");
    assert_eq!(feed_after - feed_before, d as u64, "one feed entry per pushed document");
    drop(shards);
    drop(server);
    Pushed { wall, docs }
}

/// Automerge's own sync of each document to an empty peer, one after the other on this thread.
fn automerge_limit(docs: &[Automerge], encoded: bool) -> Duration {
    let mut sources: Vec<Automerge> = docs.to_vec();
    let mut peers: Vec<Automerge> = Vec::with_capacity(docs.len());
    let wire = |m: Message| -> Message {
        if encoded { Message::decode(&m.encode()).expect("decode a sync message") } else { m }
    };

    let threads_before = thread_times();
    // ---- timed ----
    let started = Instant::now();
    for a in &mut sources {
        let mut b = Automerge::new();
        let (mut sa, mut sb) = (State::new(), State::new());
        let mut rounds = 0;
        loop {
            let mut quiet = true;
            if let Some(m) = a.generate_sync_message(&mut sa) {
                b.receive_sync_message(&mut sb, wire(m)).expect("peer B receives");
                quiet = false;
            }
            if let Some(m) = b.generate_sync_message(&mut sb) {
                a.receive_sync_message(&mut sa, wire(m)).expect("peer A receives");
                quiet = false;
            }
            if quiet {
                break;
            }
            rounds += 1;
            assert!(rounds < 100, "automerge sync does not converge");
        }
        peers.push(b);
    }
    let elapsed = started.elapsed();
    // ---- end timed ----
    eprintln!(
        "[D={}] limit{}: {:.3} ms wall; {}",
        docs.len(),
        if encoded { " (encoded)" } else { "" },
        ms(elapsed),
        thread_delta(&threads_before, &thread_times())
    );

    for (a, b) in sources.iter().zip(&peers) {
        let (mut ha, mut hb) = (a.get_heads(), b.get_heads());
        ha.sort();
        hb.sort();
        assert_eq!(ha, hb, "automerge sync converged");
    }
    elapsed
}
