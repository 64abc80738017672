//! End-to-end harness: a real fieldsync server on a loopback port over a temporary sled directory,
//! and devices that sync with it over real HTTP.
//!
//! Tests read like the story: start a server, `add_device`, work offline, `sync`, `assert_converged`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use automerge::{ActorId, Automerge};
use fieldsync_core::client::{ApplyReport, Replica};
use fieldsync_core::docs::{DocKind, Document};
use fieldsync_core::protocol::{CONTENT_TYPE, Cursor, DocPush, SyncRequest, SyncResponse};
use fieldsync_core::{Principal, Role};
use fieldsync_server::{Clock, Server, ServerConfig};

/// A settable clock: time is passed in, so tests are deterministic.
#[derive(Debug)]
pub struct TestClock(AtomicI64);

impl TestClock {
    pub fn set_ms(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// 2026-11-30 09:00 UTC, the story's morning.
pub const MORNING_MS: i64 = 1_796_029_200_000;

#[derive(Debug)]
struct Running {
    server: Server,
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A real server on 127.0.0.1:0 over a temporary data directory.
#[derive(Debug)]
pub struct TestServer {
    dir: tempfile::TempDir,
    clock: Arc<TestClock>,
    running: Option<Running>,
    /// The port is kept across restarts so devices keep their URL.
    port: u16,
}

impl TestServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temporary data directory");
        let clock = Arc::new(TestClock(AtomicI64::new(MORNING_MS)));
        let mut s = TestServer { dir, clock, running: None, port: 0 };
        s.boot().await;
        s
    }

    async fn boot(&mut self) {
        let server = Server::open_with_clock(ServerConfig::dev(self.dir.path()), self.clock.clone())
            .expect("open server");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        self.port = addr.port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(fieldsync_server::run(listener, server.state(), async {
            let _ = stopped.await;
        }));
        self.running = Some(Running { server, addr, stop, task });
    }

    /// Stops the server (finishing requests in flight), closes the store, and starts it again on the
    /// same directory and port.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.boot().await;
    }

    /// Stops the server: connections are refused until `restart`.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
            let _ = r.task.await;
            drop(r.server);
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("server is running")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        self.running().addr
    }

    pub fn server(&self) -> &Server {
        &self.running().server
    }

    pub fn clock(&self) -> &TestClock {
        &self.clock
    }

    pub fn token(&self, team: &str, user: &str, role: Role) -> String {
        // jsonwebtoken checks expiry against the real clock, so tokens are issued in real time.
        self.server()
            .auth()
            .issue(team, user, role, Duration::from_secs(3600 * 24), real_now())
            .expect("issue token")
    }

    /// Writes documents as the server (the way an import or the seed does).
    pub fn seed(&self, team: &str, docs: &[Document]) {
        self.server().engine().write_as_server(team, docs, self.clock.now_ms()).expect("seed documents");
    }

    /// The server's typed view of a document.
    pub fn doc(&self, team: &str, id: &str) -> Option<Document> {
        self.server().engine().read_doc(team, id).expect("read doc").map(|(d, _)| d)
    }

    pub fn add_device(&self, device_id: &str, team: &str, user: &str, role: Role) -> Device {
        let who = Principal { team: team.into(), user: user.into(), role };
        Device {
            replica: Replica::new(device_id, who, ActorId::from(device_id.as_bytes())),
            token: self.token(team, user, role),
            url: self.url(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("http client"),
            online: true,
        }
    }
}

fn real_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Why a device's sync did not complete.
#[derive(Debug)]
pub enum DeviceError {
    Offline,
    Http { status: u16, body: serde_json::Value },
    Transport(String),
    Decode(String),
    Apply(String),
}

/// A phone or tablet: a replica and a way to reach the server.
#[derive(Debug)]
pub struct Device {
    pub replica: Replica,
    pub token: String,
    pub url: String,
    pub http: reqwest::Client,
    online: bool,
}

/// What a full sync (every page) did.
#[derive(Debug, Default, Clone)]
pub struct SyncOutcome {
    pub rounds: usize,
    pub reports: Vec<ApplyReport>,
}

impl SyncOutcome {
    pub fn rejected(&self) -> Vec<&fieldsync_core::client::RejectedEdit> {
        self.reports.iter().flat_map(|r| r.rejected.iter()).collect()
    }
}

impl Device {
    pub fn go_offline(&mut self) {
        self.online = false;
    }

    pub fn go_online(&mut self) {
        self.online = true;
    }

    pub fn now(&self) -> i64 {
        MORNING_MS
    }

    /// Sends raw bytes to `/v1/sync` with this device's token.
    pub async fn post_raw(&self, body: Vec<u8>) -> Result<Vec<u8>, DeviceError> {
        self.post_raw_with_token(body, &self.token).await
    }

    pub async fn post_raw_with_token(&self, body: Vec<u8>, token: &str) -> Result<Vec<u8>, DeviceError> {
        if !self.online {
            return Err(DeviceError::Offline);
        }
        let resp = self
            .http
            .post(format!("{}/v1/sync", self.url))
            .bearer_auth(token)
            .header("content-type", CONTENT_TYPE)
            .body(body)
            .send()
            .await
            .map_err(|e| DeviceError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| DeviceError::Transport(e.to_string()))?;
        if status != 200 {
            let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            return Err(DeviceError::Http { status, body });
        }
        Ok(bytes.to_vec())
    }

    /// One exchange without applying the answer (to simulate a lost response).
    pub async fn exchange(&self, req: &SyncRequest) -> Result<SyncResponse, DeviceError> {
        let bytes = self.post_raw(req.encode()).await?;
        SyncResponse::decode(&bytes).map_err(|e| DeviceError::Decode(e.to_string()))
    }

    /// Syncs until the server has nothing more.
    pub async fn sync(&mut self) -> Result<SyncOutcome, DeviceError> {
        let mut outcome = SyncOutcome::default();
        loop {
            let req = self.replica.prepare_request();
            let resp = self.exchange(&req).await?;
            let report = self.replica.apply_response(&resp).map_err(|e| DeviceError::Apply(e.to_string()))?;
            outcome.rounds += 1;
            let more = report.more;
            outcome.reports.push(report);
            if !more && self.replica.outbox_len() == 0 {
                return Ok(outcome);
            }
            if outcome.rounds > 10_000 {
                return Err(DeviceError::Apply("sync did not finish in 10 000 rounds".into()));
            }
        }
    }

    pub fn doc(&self, id: &str) -> Option<Document> {
        self.replica.get(id)
    }

    /// GET a JSON endpoint with this device's token: (status, body).
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .get(format!("{}{}", self.url, path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }
}

impl Device {
    /// POST a JSON body to an endpoint with this device's token: (status, body).
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .post(format!("{}{}", self.url, path))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("POST");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }
}

/// The visit in a typed read, or a test failure naming what was there instead.
pub fn visit_of(d: Option<Document>) -> fieldsync_core::docs::Visit {
    match d {
        Some(Document::Visit(v)) => v,
        other => panic!("expected a visit, got {other:?}"),
    }
}

/// The customer in a typed read, or a test failure naming what was there instead.
pub fn customer_of(d: Option<Document>) -> fieldsync_core::docs::Customer {
    match d {
        Some(Document::Customer(c)) => c,
        other => panic!("expected a customer, got {other:?}"),
    }
}

/// A request pushing one document's changes, as a hand-built client would send it.
pub fn push_request(
    device_id: &str,
    cursor: Cursor,
    doc_id: &str,
    kind: DocKind,
    changes: Vec<Vec<u8>>,
) -> SyncRequest {
    SyncRequest {
        device_id: device_id.into(),
        cursor,
        push: vec![DocPush {
            doc_id: doc_id.into(),
            kind,
            changes: changes.into_iter().map(Into::into).collect(),
        }],
    }
}

/// Forks `doc` under `actor`, edits it through its typed form (no rules), and returns the new change
/// bytes only: what a tampered client holding a copy of someone else's document would push.
pub fn tampered_changes(doc: &Automerge, actor: &str, edit: impl FnOnce(&mut Document)) -> Vec<Vec<u8>> {
    let mut fork = doc.clone().with_actor(ActorId::from(actor.as_bytes()));
    let before = fork.get_heads();
    fork.transact(|tx| -> Result<(), String> {
        let mut d = Document::hydrate(tx).map_err(|e| e.to_string())?;
        edit(&mut d);
        d.reconcile_into(tx).map_err(|e| e.to_string())
    })
    .expect("edit the fork");
    let new = fork.get_changes(&before);
    assert!(!new.is_empty(), "the edit made a change");
    new.iter().map(|c| c.raw_bytes().to_vec()).collect()
}

/// A customer as stored, with `n` one-letter note edits and then one tier change on top (which a
/// rep may not make), as raw changes by `alice-phone`: what a phone offline for a long time, or a
/// hostile one, pushes in one go.
pub fn notes_then_a_tier_change(server: &TestServer, team: &str, customer: &str, n: usize) -> Vec<Vec<u8>> {
    use automerge::ReadDoc as _;
    use automerge::transaction::Transactable as _;
    use fieldsync_core::storage::Storage as _;
    let bytes = server.server().engine().storage().load_doc(team, customer).expect("load").expect("doc");
    let mut doc = Automerge::load(&bytes).expect("load").with_actor(ActorId::from(b"alice-phone".as_slice()));
    let before = doc.get_heads();
    let notes = match doc.get(automerge::ROOT, "notes").expect("notes") {
        Some((_, id)) => id,
        None => panic!("the customer has notes"),
    };
    for i in 0..n {
        doc.transact(|tx| tx.splice_text(&notes, 0, 0, if i % 2 == 0 { "a" } else { "b" })).expect("note");
    }
    doc.transact(|tx| -> Result<(), String> {
        let mut d = Document::hydrate(tx).map_err(|e| e.to_string())?;
        if let Document::Customer(c) = &mut d {
            c.tier = Some(fieldsync_core::docs::Tier::A);
        }
        d.reconcile_into(tx).map_err(|e| e.to_string())
    })
    .expect("tier");
    doc.get_changes(&before).iter().map(|c| c.raw_bytes().to_vec()).collect()
}

/// A server with a team of two reps, each with a territory and a customer, and a visit of bob's:
/// the stage of the hostile-push tests and bench.
pub async fn two_reps(team: &str) -> TestServer {
    use fixtures::{LYON, customer, territory, visit};
    let server = TestServer::start().await;
    server.seed(
        team,
        &[
            territory("t-alice", &["alice"]),
            territory("t-bob", &["bob"]),
            Document::Customer(customer("c-alice", "alice", Some("t-alice"), LYON)),
            Document::Customer(customer("c-bob", "bob", Some("t-bob"), LYON)),
            Document::Visit(visit("v-bob", "c-bob", "bob", MORNING_MS)),
        ],
    );
    server
}

/// Every document a device holds has the same heads on the server.
pub fn assert_converged(server: &TestServer, team: &str, devices: &[&Device]) {
    for d in devices {
        for id in d.replica.doc_ids() {
            let mut local = d.replica.heads(id).unwrap_or_default();
            let mut remote =
                server.server().engine().doc_heads(team, id).expect("server heads").unwrap_or_else(|| {
                    panic!("{} holds {id}, which the server does not", d.replica.device_id())
                });
            local.sort();
            remote.sort();
            assert_eq!(local, remote, "{} and the server disagree on {id}", d.replica.device_id());
        }
    }
}

/// Document builders for the stories.
pub mod fixtures {
    use std::collections::HashMap;

    use fieldsync_core::docs::*;

    /// Lyon, Place Bellecour.
    pub const LYON: (f64, f64) = (45.7578, 4.8320);

    /// A point `north_m` metres north and `east_m` metres east of `from`.
    pub fn offset(from: (f64, f64), north_m: f64, east_m: f64) -> (f64, f64) {
        let lat = from.0 + north_m / 111_195.0;
        let lon = from.1 + east_m / (111_195.0 * from.0.to_radians().cos());
        (lat, lon)
    }

    pub fn territory(id: &str, reps: &[&str]) -> Document {
        Document::Territory(Territory {
            kind: "territory".into(),
            schema: SCHEMA_VERSION,
            id: id.into(),
            name: format!("Territory {id}"),
            reps: reps.iter().map(|r| r.to_string()).collect(),
            polygons: vec![],
            sub_areas: vec![],
        })
    }

    pub fn customer(id: &str, owner: &str, territory: Option<&str>, at: (f64, f64)) -> Customer {
        Customer {
            kind: "customer".into(),
            schema: SCHEMA_VERSION,
            id: id.into(),
            name: format!("Customer {id}"),
            location: GeoPoint::wgs84(at.0, at.1),
            address: "1 place Bellecour, Lyon".into(),
            timezone: "Europe/Paris".into(),
            opening_hours: vec![OpeningHours { weekday: 1, open_min: 480, close_min: 1080 }],
            potential_value: 50_000.0,
            close_probability: 0.5,
            tier: Some(Tier::B),
            tier_set_by: None,
            tier_set_at_ms: None,
            follow_up_status: "none".into(),
            opportunity_stage: "qualification".into(),
            owner_rep: Some(owner.into()),
            territory: territory.map(str::to_string),
            tags: vec![],
            notes: "".into(),
            geofence_m: None,
            created_by: "server".into(),
        }
    }

    pub fn visit(id: &str, customer: &str, rep: &str, start_ms: i64) -> Visit {
        Visit {
            kind: "visit".into(),
            schema: SCHEMA_VERSION,
            id: id.into(),
            customer_id: customer.into(),
            rep: rep.into(),
            planned_start_ms: start_ms,
            planned_end_ms: start_ms + 45 * 60_000,
            state: VisitState::Planned,
            checkins: vec![],
            checkout: None,
            notes: "".into(),
            verification: HashMap::new(),
            created_by: rep.into(),
        }
    }

    pub fn checkin(id: &str, at: (f64, f64), accuracy_m: f64, time_ms: i64) -> Checkin {
        Checkin {
            id: id.into(),
            lat: at.0,
            lon: at.1,
            accuracy_m,
            device_time_ms: time_ms,
            mock_location: false,
        }
    }
}

impl TestServer {
    /// Like [`TestServer::start`] with a configuration adjusted by `tune` (small limits, a known
    /// secret). A [`TestServer::restart`] comes back with the default configuration.
    pub async fn start_with(tune: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temporary data directory");
        let clock = Arc::new(TestClock(AtomicI64::new(MORNING_MS)));
        let mut config = ServerConfig::dev(dir.path());
        tune(&mut config);
        let server = Server::open_with_clock(config, clock.clone()).expect("open server");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(fieldsync_server::run(listener, server.state(), async {
            let _ = stopped.await;
        }));
        TestServer { dir, clock, running: Some(Running { server, addr, stop, task }), port: addr.port() }
    }

    /// The server's data directory (its sled store lives in `db/` inside).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// An HTTP/1.1 response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Reads one response (head, then a `content-length` body) from a raw connection, waiting at most
/// `within` in all. Errors if the connection closes first or nothing complete arrives in time.
pub async fn read_raw_response(
    stream: &mut tokio::net::TcpStream,
    within: Duration,
) -> Result<RawResponse, String> {
    use tokio::io::AsyncReadExt as _;
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let mut lines = head.split("\r\n");
                let status = lines
                    .next()
                    .and_then(|l| l.split(' ').nth(1))
                    .and_then(|s| s.parse::<u16>().ok())
                    .ok_or_else(|| format!("not a status line: {head:?}"))?;
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let len = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .unwrap_or(0);
                while buf.len() < end + 4 + len {
                    let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err("connection closed inside the body".to_string());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                return Ok(RawResponse { status, headers, body: buf[end + 4..end + 4 + len].to_vec() });
            }
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("connection closed after {} bytes", buf.len()));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(within, read).await.map_err(|_| format!("no complete response within {within:?}"))?
}
