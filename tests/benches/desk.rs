//! The manager's desk at scale: report and map latency over loopback HTTP against the real server
//! (sled), with 10 000 customers and 100 000 visits stored.
//!
//! ```text
//! cargo bench -p fieldsync-e2e --bench desk                     # 10 000 customers, 100 000 visits
//! cargo bench -p fieldsync-e2e --bench desk -- --customers 1000 --visits 10000
//! ```
//!
//! The team is written as the server writes an import (batches of 1 000 documents, each indexed in
//! its batch), then each endpoint is asked 30 times in a row by a manager. stdout: one JSON line
//! per endpoint with p50 and p99 (ms), and one with the time the write took.

use std::time::Instant;

use fieldsync_core::Role;
use fieldsync_core::docs::{Checkin, Document, Plan, VisitState};
use fieldsync_e2e::fixtures::{self, LYON, offset};
use fieldsync_e2e::{MORNING_MS, TestServer};

const TEAM: &str = "bench";
const ROUNDS: usize = 30;

fn main() {
    println!("{}", fieldsync_e2e::machine_line());
    let (mut customers, mut visits) = (10_000usize, 100_000usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse().ok()).expect("a number");
        match a.as_str() {
            "--customers" => customers = value(),
            "--visits" => visits = value(),
            _ => {}
        }
    }
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(run(customers, visits));
}

fn team(customers: usize, visits: usize) -> Vec<Document> {
    let reps: Vec<String> = (0..50).map(|r| format!("rep-{r:02}")).collect();
    let mut docs: Vec<Document> = reps.iter().map(|r| fixtures::territory(&format!("t-{r}"), &[r])).collect();
    docs.push(
        Plan::new(
            "plan-q",
            "2026-Q4",
            fieldsync_core::docs::Cadence { a_days: 7, b_days: 14, c_days: 30 },
            fieldsync_core::docs::TierThresholds { a_min_score: 30_000.0, b_min_score: 10_000.0 },
        )
        .into(),
    );
    for i in 0..customers {
        let rep = &reps[i % reps.len()];
        // A city of 20 × 20 km around Lyon.
        let at = offset(LYON, (i % 100) as f64 * 200.0 - 10_000.0, (i / 100 % 100) as f64 * 200.0 - 10_000.0);
        let mut c = fixtures::customer(&format!("c-{i:05}"), rep, Some(&format!("t-{rep}")), at);
        c.potential_value = 1_000.0 + (i * 7919 % 100_000) as f64;
        docs.push(c.into());
    }
    for i in 0..visits {
        let c = i % customers;
        let rep = &reps[c % reps.len()];
        let start = MORNING_MS - (i % 60) as i64 * 86_400_000;
        let mut v = fixtures::visit(&format!("v-{i:06}"), &format!("c-{c:05}"), rep, start);
        if i % 3 != 0 {
            v.state = VisitState::Completed;
            v.checkins.push(Checkin::new(&format!("k-{i}"), LYON.0, LYON.1, 10.0, start + 60_000));
        }
        docs.push(v.into());
    }
    docs
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run(customers: usize, visits: usize) {
    let server = TestServer::start().await;
    let docs = team(customers, visits);
    let started = Instant::now();
    for chunk in docs.chunks(1_000) {
        server.seed(TEAM, chunk);
    }
    println!(
        "{{\"scenario\":\"desk_write\",\"customers\":{customers},\"visits\":{visits},\"wall_ms\":{}}}",
        started.elapsed().as_millis()
    );
    let maria = server.add_device("maria-dashboard", TEAM, "maria", Role::Manager);
    let window = format!("from_ms={}&to_ms={}", MORNING_MS - 28 * 86_400_000, MORNING_MS + 86_400_000);
    let endpoints = [
        ("report_visits", format!("/v1/reports/visits?{window}")),
        ("report_customers", format!("/v1/reports/customers?{window}")),
        ("report_effort", format!("/v1/reports/effort?{window}")),
        (
            "calendar_one_rep_week",
            format!(
                "/v1/reports/calendar?rep=rep-07&from_ms={}&to_ms={}",
                MORNING_MS - 7 * 86_400_000,
                MORNING_MS
            ),
        ),
        ("map_city_bbox", "/v1/map/customers?bbox=4.70,45.66,4.96,45.85&max_points=500".to_string()),
        (
            "map_one_rep",
            "/v1/map/customers?bbox=4.70,45.66,4.96,45.85&rep=rep-07&max_points=5000".to_string(),
        ),
    ];
    for (name, path) in endpoints {
        let mut ms = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let (status, body) = maria.get_json(&path).await;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "{name}: {body}");
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "{{\"scenario\":\"{name}\",\"customers\":{customers},\"visits\":{visits},\"rounds\":{ROUNDS},\"p50_ms\":{:.1},\"p99_ms\":{:.1}}}",
            percentile(&ms, 0.5),
            percentile(&ms, 0.99)
        );
    }
}
