//! A hostile push against the real server: how long deciding it takes, and what it costs the rest
//! of the team meanwhile.
//!
//! ```text
//! cargo bench -p fieldsync-e2e --bench hostile                 # 16 000 note edits + 1 tier change
//! cargo bench -p fieldsync-e2e --bench hostile -- --changes 4000
//! ```
//!
//! A rep pushes N one-letter note edits of one customer and then one tier change (refused), in one
//! request, over loopback HTTP. While it is being decided, another rep syncs an edit of their own
//! visit in a loop. stdout: one JSON line — the hostile push's wall time, and the other rep's sync
//! latencies during it (count, p50, max), so "one rep stalls every push" is a number.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use fieldsync_core::Role;
use fieldsync_core::docs::DocKind;
use fieldsync_e2e::fixtures::on_visit;
use fieldsync_e2e::{MORNING_MS, notes_then_a_tier_change, two_reps};

const TEAM: &str = "bench";

fn main() {
    println!("{}", fieldsync_e2e::machine_line());
    let mut changes = 16_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--changes" {
            changes = args.next().and_then(|v| v.parse().ok()).expect("--changes takes a number");
        }
    }
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(run(changes));
}

async fn run(n: usize) {
    let server = two_reps(TEAM).await;
    let alice = server.add_device("alice-phone", TEAM, "alice", Role::Rep);
    let changes = notes_then_a_tier_change(&server, TEAM, "c-alice", n);
    let req = alice.push_request("c-alice", DocKind::Customer, changes);
    let mut bob = server.add_device("bob-phone", TEAM, "bob", Role::Rep);
    bob.sync().await.expect("bob bootstraps");

    let in_flight = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let hostile = {
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            let resp = alice.exchange(&req).await.expect("the hostile push is answered");
            in_flight.store(false, Ordering::SeqCst);
            (resp, started.elapsed())
        })
    };
    let mut latencies = Vec::new();
    let mut i = 0;
    while in_flight.load(Ordering::SeqCst) && i < 1_000_000 {
        i += 1;
        bob.replica
            .update("v-bob", MORNING_MS, on_visit(|v| v.notes.update(format!("bob {i}"))))
            .expect("bob's note");
        let t = Instant::now();
        bob.sync().await.expect("bob syncs");
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (resp, wall) = hostile.await.expect("hostile task");
    assert_eq!(resp.rejected.len(), 1, "only the tier change is refused");
    latencies.sort_by(f64::total_cmp);
    let p50 = latencies.get(latencies.len() / 2).copied().unwrap_or(0.0);
    let max = latencies.last().copied().unwrap_or(0.0);
    println!(
        "{{\"scenario\":\"hostile_push\",\"changes\":{},\"wall_ms\":{:.1},\"other_syncs\":{},\"other_p50_ms\":{:.1},\"other_max_ms\":{:.1}}}",
        n + 1,
        wall.as_secs_f64() * 1000.0,
        latencies.len(),
        p50,
        max
    );
}
