//! `GET /metrics`: what the server did shows in the Prometheus text, by route and status, and only
//! the deployment's metrics token reads it (it names every team).
//!
//! The recorder is the process's: the first test compares two scrapes around what it does, and
//! the second never scrapes successfully, so the two may share a process (`cargo test`).

use std::collections::BTreeMap;

use fieldsync_core::docs::DocKind;
use fieldsync_core::{Role, storage::Storage as _};
use fieldsync_e2e::{TestServer, json_answer, notes_then_a_tier_change};

const TEAM: &str = "acme";

type Labels = BTreeMap<String, String>;

/// A scrape: every sample by name and labels, and every name's declared type and help.
#[derive(Debug, Default)]
struct Scrape {
    samples: BTreeMap<(String, Labels), f64>,
    types: BTreeMap<String, String>,
    helps: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses the text exposition format, refusing any line it does not understand.
    fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("a TYPE line: {line:?}"));
                scrape.types.insert(name.into(), kind.into());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or_else(|| panic!("a HELP line: {line:?}"));
                scrape.helps.insert(name.into(), help.into());
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample: {line:?}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number in {line:?}"));
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), Labels::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("closed labels: {line:?}"));
                    (name.to_string(), parse_labels(body, line))
                }
            };
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "a metric name: {name:?}");
            let previous = scrape.samples.insert((name, labels), value);
            assert!(previous.is_none(), "one sample per series: {line:?}");
        }
        for (name, _) in scrape.samples.keys() {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| scrape.types.contains_key(*f)))
                .unwrap_or(name);
            assert!(scrape.types.contains_key(family), "{name} has a TYPE line");
            assert!(scrape.helps.get(family).is_some_and(|h| !h.is_empty()), "{family} says what it is");
        }
        scrape
    }

    /// The sample of `name` with exactly `labels`, 0 when absent (a counter not yet counted).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels: Labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.get(&(name.to_string(), labels)).copied().unwrap_or(0.0)
    }

    /// Every series of `name`.
    fn series(&self, name: &str) -> Vec<(&Labels, f64)> {
        self.samples.iter().filter(|((n, _), _)| n == name).map(|((_, l), v)| (l, *v)).collect()
    }
}

fn parse_labels(body: &str, line: &str) -> Labels {
    let mut labels = Labels::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("key=\"value\" in {line:?}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("a dangling escape in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("an unclosed value in {line:?}"),
            }
        };
        labels.insert(key.to_string(), value);
        rest = after[end + 1..].strip_prefix(',').unwrap_or(&after[end + 1..]);
    }
    labels
}

async fn scrape(http: &reqwest::Client, server: &TestServer, token: &str) -> Scrape {
    let resp = http.get(format!("{}/metrics", server.url())).bearer_auth(token).send().await.expect("scrape");
    assert_eq!(resp.status(), 200);
    let kind = resp.headers()["content-type"].to_str().expect("ascii").to_string();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    Scrape::parse(&resp.text().await.expect("text"))
}

#[tokio::test]
async fn what_the_server_did_shows_in_the_prometheus_text_by_route_and_status() {
    // 1. A team of two reps; the operator reads the metrics token from the data directory.
    let server = fieldsync_e2e::two_reps(TEAM).await;
    let token = std::fs::read_to_string(server.data_dir().join("metrics-token")).expect("the token file");
    let token = token.trim();
    let http = reqwest::Client::new();
    let before = scrape(&http, &server, token).await;

    // 2. Alice's phone bootstraps, then pushes seven note edits and a tier change a rep may not
    //    make; bob's phone bootstraps; a manager reads the quarantine, a rep is refused it.
    let mut alice = server.add_device("alice-phone", TEAM, "alice", Role::Rep);
    alice.sync().await.expect("alice bootstraps");
    let changes = notes_then_a_tier_change(&server, TEAM, "c-alice", 7);
    let resp =
        alice.exchange(&alice.push_request("c-alice", DocKind::Customer, changes)).await.expect("push");
    assert_eq!(resp.rejected.len(), 1, "the tier change is refused");
    let mut bob = server.add_device("bob-phone", TEAM, "bob", Role::Rep);
    bob.sync().await.expect("bob bootstraps");
    let read_quarantine = |role, user| {
        let http = http.clone();
        let token = server.token(TEAM, user, role);
        let url = format!("{}/v1/quarantine", server.url());
        async move { http.get(url).bearer_auth(token).send().await.expect("quarantine").status().as_u16() }
    };
    assert_eq!(read_quarantine(Role::Manager, "maria").await, 200);
    assert_eq!(read_quarantine(Role::Rep, "alice").await, 403);

    // 3. Twenty paths that are no route, each different.
    for n in 0..20 {
        let resp = http.get(format!("{}/v1/no-such-{n}/x{n}", server.url())).send().await.expect("404");
        assert_eq!(resp.status(), 404);
    }
    let after = scrape(&http, &server, token).await;
    let delta = |name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.value(name, labels);

    // 4. Requests by route, method and status: three syncs, the quarantine's 200 and 403, the one
    //    scrape before, and the twenty misses under one series.
    let sync = [("method", "POST"), ("route", "/v1/sync"), ("status", "200")];
    assert_eq!(delta("fieldsync_http_requests_total", &sync), 3.0);
    let quarantine = |status| [("method", "GET"), ("route", "/v1/quarantine"), ("status", status)];
    assert_eq!(delta("fieldsync_http_requests_total", &quarantine("200")), 1.0);
    assert_eq!(delta("fieldsync_http_requests_total", &quarantine("403")), 1.0);
    let scrapes = [("method", "GET"), ("route", "/metrics"), ("status", "200")];
    assert_eq!(delta("fieldsync_http_requests_total", &scrapes), 1.0);
    let missed = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert_eq!(delta("fieldsync_http_requests_total", &missed), 20.0);
    let every_route: Vec<&str> = after
        .series("fieldsync_http_requests_total")
        .iter()
        .map(|(l, _)| l.get("route").map_or("", String::as_str))
        .collect();
    assert!(every_route.iter().all(|r| !r.contains("no-such")), "a path became a label: {every_route:?}");

    // 5. Latency: the sync's histogram counted the three, its buckets never decrease, +Inf is all.
    let sync_latency = [("method", "POST"), ("route", "/v1/sync")];
    assert_eq!(delta("fieldsync_http_request_duration_seconds_count", &sync_latency), 3.0);
    assert_eq!(after.types["fieldsync_http_request_duration_seconds"], "histogram");
    let mut buckets: Vec<(f64, f64)> = after
        .series("fieldsync_http_request_duration_seconds_bucket")
        .into_iter()
        .filter(|(l, _)| l.get("route").map(String::as_str) == Some("/v1/sync"))
        .map(|(l, v)| (l["le"].parse::<f64>().expect("le"), v))
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() >= 10, "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative: {buckets:?}");
    let all = buckets.last().expect("+Inf");
    assert!(all.0.is_infinite());
    assert_eq!(all.1, after.value("fieldsync_http_request_duration_seconds_count", &sync_latency));

    // 6. Syncs: three, one push of seven accepted changes and one quarantined; both bootstraps
    //    were pulls, each one bootstrap page.
    assert_eq!(delta("fieldsync_syncs_total", &[]), 3.0);
    assert_eq!(delta("fieldsync_pushes_total", &[]), 1.0);
    assert_eq!(delta("fieldsync_pushed_changes_total", &[("outcome", "accepted")]), 7.0);
    assert_eq!(delta("fieldsync_pushed_changes_total", &[("outcome", "quarantined")]), 1.0);
    assert!(delta("fieldsync_pulls_total", &[]) >= 2.0);
    assert_eq!(delta("fieldsync_bootstrap_pages_total", &[]), 2.0);
    assert!(delta("fieldsync_pulled_documents_total", &[]) >= 4.0, "each rep's territory and customer");

    // 7. Storage: the push and the bootstraps' device records were flushed; the store has a size;
    //    the feed head is the team's.
    assert!(delta("fieldsync_storage_flush_seconds_count", &[]) >= 1.0);
    assert!(delta("fieldsync_storage_batches_total", &[]) >= 1.0);
    assert!(after.value("fieldsync_storage_bytes", &[]) > 0.0);
    let head = server.server().engine().storage().feed_head(TEAM).expect("head");
    assert!(head > 0);
    assert_eq!(after.value("fieldsync_feed_head", &[("team", TEAM)]), head as f64);
    assert_eq!(after.value("fieldsync_teams", &[]), 1.0);

    // 8. The document cache was asked for the pushed customer: a hit or a miss, counted.
    let lookups = |s: &Scrape| {
        s.value("fieldsync_document_cache_hits_total", &[])
            + s.value("fieldsync_document_cache_misses_total", &[])
    };
    assert!(lookups(&after) > lookups(&before));
}

#[tokio::test]
async fn only_the_metrics_token_reads_the_metrics() {
    // 1. A server; its metrics token.
    let server = fieldsync_e2e::two_reps("other").await;
    let token = server.server().state().metrics.token().to_string();
    assert_eq!(token.len(), 64, "32 random bytes, hex");
    let http = reqwest::Client::new();
    let get = |auth: Option<String>| {
        let mut req = http.get(format!("{}/metrics", server.url()));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move { json_answer(req.send().await.expect("metrics")).await }
    };

    // 2. No token, a manager's and an admin's JWT, the token with one character changed, cut, or
    //    not as a bearer: each a typed 401 that says which token it takes.
    let mut changed = token.clone().into_bytes();
    changed[63] = if changed[63] == b'0' { b'1' } else { b'0' };
    let refused = [
        None,
        Some(format!("Bearer {}", server.token("other", "maria", Role::Manager))),
        Some(format!("Bearer {}", server.token("other", "root", Role::Admin))),
        Some(format!("Bearer {}", String::from_utf8(changed).expect("hex"))),
        Some(format!("Bearer {}", &token[..63])),
        Some(format!("Bearer {token}x")),
        Some(token.clone()),
        Some(format!("Basic {token}")),
    ];
    for auth in refused {
        let (status, body) = get(auth.clone()).await;
        assert_eq!(status, 401, "{auth:?}: {body}");
        assert_eq!(body["error"], "unauthorized", "{body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains("metrics token")), "{body}");
        assert!(body["request_id"].is_string());
    }
    // (That the token itself reads them, the test above shows.)
}
