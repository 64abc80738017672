//! Device figures: time of a first sync of N documents and the device process's peak memory.
//!
//! `cargo bench -p fieldsync-mobile --bench device [-- --docs 2000]`
//!
//! The server runs in a child process (this same binary with `--serve`), so the memory measured is
//! the device library's alone: VmHWM (peak RSS) of this process, read from /proc.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fieldsync_core::Role;
use fieldsync_core::docs::{Document, OpeningHours, Tier, Visit, VisitState};
use fieldsync_core::testing::fixtures;
use fieldsync_mobile::FieldsyncClient;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn docs(n: usize) -> Vec<Document> {
    let customers = n * 3 / 4;
    let mut out = Vec::with_capacity(n);
    for i in 0..customers {
        let at = (45.70 + (i % 100) as f64 * 0.001, 4.80 + (i / 100) as f64 * 0.001);
        let mut c = fixtures::customer(&format!("cust-{i:05}"), "alice", None, at);
        c.name = format!("Customer {i}");
        c.address = format!("{i} rue de la République, Lyon");
        c.opening_hours =
            (1..=5).map(|d| OpeningHours { weekday: d, open_min: 510, close_min: 1110 }).collect();
        (c.potential_value, c.close_probability) = (1000.0 * (i % 50) as f64, 0.3);
        c.tier = Some([Tier::A, Tier::B, Tier::C][i % 3]);
        c.tags = vec!["bench".into()];
        c.notes = "Some notes about this customer, a few lines long as they usually are.".into();
        out.push(Document::Customer(c));
    }
    for i in 0..(n - customers) {
        let start = 1_796_029_200_000 + i as i64 * 3_600_000;
        let customer = format!("cust-{:05}", i % customers.max(1));
        let planned = Visit::planned(&format!("visit-{i:05}"), &customer, "alice", start, start + 2_700_000);
        out.push(Document::Visit(Visit {
            state: VisitState::Completed,
            notes: "Visit notes.".into(),
            ..planned
        }));
    }
    out
}

fn serve(n: usize) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let server =
            fieldsync_server::Server::open(fieldsync_server::ServerConfig::dev(dir.path())).expect("open");
        for chunk in docs(n).chunks(500) {
            server.engine().write_as_server("bench", chunk, 0).expect("seed");
        }
        let token = server
            .auth()
            .issue("bench", "alice", Role::Rep, Duration::from_secs(3600), now_unix())
            .expect("token");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("{} {}", listener.local_addr().expect("addr"), token);
        fieldsync_server::run(listener, server.state(), std::future::pending()).await.expect("serve");
    });
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: usize = arg("--docs").and_then(|s| s.parse().ok()).unwrap_or(2000);
    if std::env::args().any(|a| a == "--serve") {
        serve(n);
        return;
    }
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["--serve", "--docs", &n.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("server process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("address");
    let mut parts = line.split_whitespace();
    let addr = parts.next().expect("addr").to_string();
    let token = parts.next().expect("token").to_string();

    let store = tempfile::tempdir().expect("store");
    let rss_start = status_kib("VmRSS:");
    let client =
        FieldsyncClient::open(store.path().display().to_string(), format!("http://{addr}")).expect("open");
    client.set_token(token).expect("token");
    let t = Instant::now();
    let summary = client.sync(None).expect("first sync");
    let sync_ms = t.elapsed().as_millis();
    let docs_held = client.status().documents;
    let peak = status_kib("VmHWM:");
    let after = status_kib("VmRSS:");
    drop(client);
    // Reopening loads the store again: the cost of an app start.
    let t = Instant::now();
    let reopened =
        FieldsyncClient::open(store.path().display().to_string(), format!("http://{addr}")).expect("reopen");
    let open_ms = t.elapsed().as_millis();
    let reopened_docs = reopened.status().documents;
    let peak_after_reopen = status_kib("VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(docs_held as usize, n, "every document arrived");
    assert_eq!(reopened_docs as usize, n, "every document survived reopening");
    println!(
        "{{\"scenario\":\"first_sync\",\"docs\":{n},\"rounds\":{},\"wall_ms\":{sync_ms},\"rss_start_mib\":{:.1},\"peak_rss_mib\":{:.1},\"rss_after_sync_mib\":{:.1},\"reopen_ms\":{open_ms},\"peak_rss_after_reopen_mib\":{:.1}}}",
        summary.rounds,
        rss_start as f64 / 1024.0,
        peak as f64 / 1024.0,
        after as f64 / 1024.0,
        peak_after_reopen as f64 / 1024.0,
    );
}
