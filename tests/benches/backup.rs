//! Backup and restore of the demo team scaled to 100 000 documents, on the real sled store.
//!
//! ```text
//! cargo bench -p fieldsync-e2e --bench backup                   # 100 000 documents
//! cargo bench -p fieldsync-e2e --bench backup -- --docs 20000
//! ```
//!
//! The demo team is seeded, then customers around Lyon are added (as an import writes them, in
//! batches of 1 000) until the team holds N documents. The backup is taken three times (each to a
//! new file), then restored into a new directory, which a server then opens. stdout: one JSON line
//! per step with its wall time and sizes.

use std::time::Instant;

use fieldsync_core::docs::Document;
use fieldsync_core::storage::Storage as _;
use fieldsync_core::testing::fixtures::customer;
use fieldsync_server::{Server, ServerConfig, seed};

fn main() {
    println!("{}", fieldsync_e2e::machine_line());
    let args: Vec<String> = std::env::args().collect();
    let docs: usize = args
        .iter()
        .position(|a| a == "--docs")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse().expect("--docs N"))
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let server = Server::open(ServerConfig::dev(&data)).expect("open");
    let now = 1_796_029_200_000;
    seed::seed_demo(server.engine(), 42, now).expect("seed").expect("seeded");
    let count = |s: &Server| {
        s.engine().storage().list_docs(seed::DEMO_TEAM, None, "", usize::MAX).expect("list").len()
    };
    let mut held = count(&server);
    let started = Instant::now();
    let mut i = 0;
    while held < docs {
        let batch: Vec<Document> = (0..(docs - held).min(1000))
            .map(|_| {
                i += 1;
                let at = (45.70 + (i % 300) as f64 * 0.0004, 4.78 + (i / 300) as f64 * 0.0004);
                customer(&format!("bench-{i:06}"), "alice", None, at).into()
            })
            .collect();
        held += batch.len();
        server.engine().write_as_server(seed::DEMO_TEAM, &batch, now).expect("write");
    }
    let store_bytes = server.engine().storage().backend().size_on_disk();
    println!(
        "{{\"step\":\"filled\",\"documents\":{held},\"store_bytes\":{store_bytes},\"ms\":{}}}",
        started.elapsed().as_millis()
    );
    let mut last = None;
    for run in 1..=3 {
        let file = dir.path().join(format!("backup-{run}.fsb"));
        let report = server.backup(&file).expect("backup");
        println!(
            "{{\"step\":\"backup\",\"run\":{run},\"pairs\":{},\"bytes\":{},\"ms\":{}}}",
            report.summary.pairs, report.summary.bytes, report.millis
        );
        last = Some(file);
    }
    drop(server);
    let restored = dir.path().join("restored");
    let report = fieldsync_server::backup::restore(&last.expect("a backup"), &restored).expect("restore");
    println!("{{\"step\":\"restore\",\"pairs\":{},\"ms\":{}}}", report.summary.pairs, report.millis);
    let opened = Instant::now();
    let server = Server::open(ServerConfig::dev(&restored)).expect("open the restored directory");
    let again = count(&server);
    assert_eq!(again, held, "the restored team holds every document");
    println!("{{\"step\":\"open restored\",\"documents\":{again},\"ms\":{}}}", opened.elapsed().as_millis());
}
