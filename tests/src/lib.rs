//! End-to-end harness: a real fieldsync server on a loopback port over a temporary sled directory,
//! and devices that sync with it over real HTTP.
//!
//! Tests read like the story: start a server, `add_device`, work offline, `sync`, `assert_converged`.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! use fieldsync_core::Role;
//! use fieldsync_e2e::fixtures::{prepend_notes, territory_with_customer};
//! use fieldsync_e2e::{MORNING_MS, TestServer, assert_converged, customer_of};
//! // 1. A server on a loopback port with one shared customer.
//! let server = TestServer::seeded("acme", &territory_with_customer("t", &["alice", "bob"], "c-1")).await;
//! let mut alice = server.synced_device("alice-phone", "acme", "alice", Role::Rep).await;
//! let mut bob = server.synced_device("bob-phone", "acme", "bob", Role::Rep).await;
//! // 2. Offline, both write a note.
//! alice.replica.update("c-1", MORNING_MS, prepend_notes("alice: call back. ")).unwrap();
//! bob.replica.update("c-1", MORNING_MS, prepend_notes("bob: sent the quote. ")).unwrap();
//! // 3. They sync; both notes are kept, and every copy is the same.
//! alice.sync().await.unwrap();
//! bob.sync().await.unwrap();
//! alice.sync().await.unwrap();
//! let notes = customer_of(server.doc("acme", "c-1")).notes.as_str().to_string();
//! assert!(notes.contains("alice: call back.") && notes.contains("bob: sent the quote."), "{notes}");
//! assert_converged(&server, "acme", &[&alice, &bob]);
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use automerge::{ActorId, Automerge};
use base64::Engine as _;
use fieldsync_core::Role;
use fieldsync_core::client::{ApplyReport, RejectedEdit, Replica};
use fieldsync_core::docs::{DocKind, Document};
use fieldsync_core::protocol::{CONTENT_TYPE, Cursor, DocPush, SyncRequest, SyncResponse};
use fieldsync_core::storage::Storage as _;
use fieldsync_server::{Clock, Server, ServerConfig};

/// The document builders of the stories (`fieldsync-core`'s test support).
pub use fieldsync_core::testing::fixtures;

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
        self.listen(server).await;
    }

    /// Serves `server` on the kept port (a new one the first time).
    async fn listen(&mut self, server: Server) {
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

    /// A server holding `docs` in `team`.
    pub async fn seeded(team: &str, docs: &[Document]) -> Self {
        let server = Self::start().await;
        server.seed(team, docs);
        server
    }

    /// A server holding the demo team (`demo`: five reps, 300 customers, their visits and plan).
    pub async fn demo() -> Self {
        let server = Self::start().await;
        server.seed_demo();
        server
    }

    /// Writes documents as the server (the way an import or the seed does).
    pub fn seed(&self, team: &str, docs: &[Document]) {
        self.server().engine().write_as_server(team, docs, self.clock.now_ms()).expect("seed documents");
    }

    /// Writes the demo team, as `fieldsync seed` does on an empty server.
    pub fn seed_demo(&self) {
        fieldsync_server::seed::seed_demo(self.server().engine(), 42, MORNING_MS)
            .expect("seed")
            .expect("seeded");
    }

    /// The server's typed view of a document.
    pub fn doc(&self, team: &str, id: &str) -> Option<Document> {
        self.server().engine().read_doc(team, id).expect("read doc").map(|(d, _)| d)
    }

    /// The stored document (storage, not the engine's cache), as Automerge.
    pub fn stored(&self, team: &str, id: &str) -> Automerge {
        let bytes = self.server().engine().storage().load_doc(team, id).expect("load").expect("stored");
        Automerge::load(&bytes).expect("stored bytes load")
    }

    pub fn add_device(&self, device_id: &str, team: &str, user: &str, role: Role) -> Device {
        Device {
            replica: fieldsync_core::testing::replica(device_id, team, user, role),
            token: self.token(team, user, role),
            url: self.url(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("http client"),
            online: true,
        }
    }

    /// [`TestServer::add_device`], bootstrapped: the device holds its scope.
    pub async fn synced_device(&self, device_id: &str, team: &str, user: &str, role: Role) -> Device {
        let mut device = self.add_device(device_id, team, user, role);
        device.sync().await.unwrap_or_else(|e| panic!("{device_id} bootstraps: {e:?}"));
        device
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
    pub fn rejected(&self) -> Vec<&RejectedEdit> {
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

    /// A request pushing `changes` of one document from this device at its cursor, as a hand-built
    /// (or tampered) client would send it.
    pub fn push_request(&self, doc_id: &str, kind: DocKind, changes: Vec<Vec<u8>>) -> SyncRequest {
        push_request(self.replica.device_id(), self.replica.cursor().clone(), doc_id, kind, changes)
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

    /// What an outdated or tampered app does: writes `edit` bypassing the local rules, then syncs.
    /// Returns the edits the server refused.
    pub async fn sync_tampered(&mut self, id: &str, edit: impl FnOnce(&mut Document)) -> Vec<RejectedEdit> {
        self.replica.update_unchecked(id, self.now(), edit).expect("tampered write");
        let outcome = self.sync().await.expect("sync");
        outcome.rejected().into_iter().cloned().collect()
    }

    /// GET a JSON endpoint with this device's token: (status, body).
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let req = self.http.get(format!("{}{}", self.url, path)).bearer_auth(&self.token);
        json_answer(req.send().await.expect("GET")).await
    }

    /// POST a JSON body to an endpoint with this device's token: (status, body).
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let req = self.http.post(format!("{}{}", self.url, path)).bearer_auth(&self.token);
        let req = req.header("content-type", "application/json").body(body.to_string());
        json_answer(req.send().await.expect("POST")).await
    }
}

/// A response's status and JSON body (`null` when the body is not JSON).
pub async fn json_answer(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap_or_default();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// Unpadded base64url, as JWTs use it.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The bytes of unpadded base64url text.
pub fn b64url_decode(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).expect("base64url")
}

/// Edits `doc` through its typed form (no rules) in one transaction.
pub fn edit_typed(doc: &mut Automerge, edit: impl FnOnce(&mut Document)) {
    doc.transact(|tx| -> Result<(), String> {
        let mut d = Document::hydrate(tx).map_err(|e| e.to_string())?;
        edit(&mut d);
        d.reconcile_into(tx).map_err(|e| e.to_string())
    })
    .expect("edit the document");
}

/// The changes that create `doc` from nothing under `actor`, built directly with Automerge: no
/// local rules, no validation.
pub fn created_by_hand(actor: &str, doc: &Document) -> Vec<Vec<u8>> {
    let mut am = Automerge::new().with_actor(ActorId::from(actor.as_bytes()));
    am.transact(|tx| doc.reconcile_into(tx).map_err(|e| e.to_string())).expect("build the document");
    changes_since(&am, &[])
}

/// The raw bytes of `doc`'s changes since `heads`.
pub fn changes_since(doc: &Automerge, heads: &[automerge::ChangeHash]) -> Vec<Vec<u8>> {
    doc.get_changes(heads).iter().map(|c| c.raw_bytes().to_vec()).collect()
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
    edit_typed(&mut fork, edit);
    let new = changes_since(&fork, &before);
    assert!(!new.is_empty(), "the edit made a change");
    new
}

/// A customer as stored, with `n` one-letter note edits and then one tier change on top (which a
/// rep may not make), as raw changes by `alice-phone`: what a phone offline for a long time, or a
/// hostile one, pushes in one go.
pub fn notes_then_a_tier_change(server: &TestServer, team: &str, customer: &str, n: usize) -> Vec<Vec<u8>> {
    use automerge::ReadDoc as _;
    use automerge::transaction::Transactable as _;
    let mut doc = server.stored(team, customer).with_actor(ActorId::from(b"alice-phone".as_slice()));
    let before = doc.get_heads();
    let notes = match doc.get(automerge::ROOT, "notes").expect("notes") {
        Some((_, id)) => id,
        None => panic!("the customer has notes"),
    };
    for i in 0..n {
        doc.transact(|tx| tx.splice_text(&notes, 0, 0, if i % 2 == 0 { "a" } else { "b" })).expect("note");
    }
    edit_typed(&mut doc, fixtures::on_customer(|c| c.tier = Some(fieldsync_core::docs::Tier::A)));
    changes_since(&doc, &before)
}

/// A server with a team of two reps, each with a territory and a customer, and a visit of bob's:
/// the stage of the hostile-push tests and bench.
pub async fn two_reps(team: &str) -> TestServer {
    use fixtures::{territory_with_customer, visit};
    let mut docs = territory_with_customer("t-alice", &["alice"], "c-alice");
    docs.extend(territory_with_customer("t-bob", &["bob"], "c-bob"));
    docs.push(visit("v-bob", "c-bob", "bob", MORNING_MS).into());
    TestServer::seeded(team, &docs).await
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

/// Trims `team`'s feed to its newest `keep` entries every `every` until `stop` is set (the
/// server's own trimmer, much faster): what devices syncing meanwhile must survive. Returns the
/// trims done and the trims that failed.
pub fn spawn_trimmer(
    server: &TestServer,
    team: &str,
    keep: u64,
    every: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<(usize, usize)> {
    let (server, team) = (server.server().clone(), team.to_string());
    tokio::spawn(async move {
        let (mut done, mut failed) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            let (s, t) = (server.clone(), team.clone());
            match tokio::task::spawn_blocking(move || s.engine().trim_feed(&t, keep))
                .await
                .expect("trim task")
            {
                Ok(_) => done += 1,
                Err(_) => failed += 1,
            }
            tokio::time::sleep(every).await;
        }
        (done, failed)
    })
}

/// Both directions: each device holds exactly its scope — every document the server has for its
/// user (a rep's audience, a manager's whole team), nothing else — each with the server's heads and
/// typed value. Returns the scope of each user.
pub fn assert_holds_exactly_its_scope(
    server: &TestServer,
    team: &str,
    devices: &[&Device],
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let storage = server.server().engine().storage();
    let ids = |member: Option<&str>| -> std::collections::BTreeSet<String> {
        storage.list_docs(team, member, "", 1_000_000).expect("list").into_iter().map(|(id, _)| id).collect()
    };
    let mut scopes = std::collections::BTreeMap::new();
    for d in devices {
        let who = d.replica.principal();
        let scope = scopes
            .entry(who.user.clone())
            .or_insert_with(|| if who.role.sees_whole_team() { ids(None) } else { ids(Some(&who.user)) });
        let held: std::collections::BTreeSet<String> = d.replica.doc_ids().cloned().collect();
        assert_eq!(&held, scope, "{} holds exactly its scope", d.replica.device_id());
        for id in &held {
            let mut local = d.replica.heads(id).unwrap_or_default();
            let mut remote = server.server().engine().doc_heads(team, id).expect("heads").expect("stored");
            local.sort();
            remote.sort();
            assert_eq!(local, remote, "{} and the server disagree on {id}", d.replica.device_id());
            assert_eq!(d.doc(id), server.doc(team, id), "{}: the typed {id}", d.replica.device_id());
        }
    }
    scopes
}

/// The team's feed is numbered without a gap from its horizon to its head; returns (horizon, head).
pub fn assert_feed_without_gap(server: &TestServer, team: &str) -> (u64, u64) {
    let storage = server.server().engine().storage();
    let head = storage.feed_head(team).expect("head");
    let horizon = storage.feed_horizon(team).expect("horizon");
    let seqs: Vec<u64> =
        storage.read_feed(team, horizon, 1_000_000).expect("feed").iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (horizon + 1..=head).collect::<Vec<_>>(), "{team}'s feed has a gap");
    (horizon, head)
}

impl TestServer {
    /// Like [`TestServer::start`] with a configuration adjusted by `tune` (small limits, a known
    /// secret). A [`TestServer::restart`] comes back with the default configuration.
    pub async fn start_with(tune: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_in(&std::env::temp_dir(), tune).await
    }

    /// Like [`TestServer::start_with`], its data directory inside `parent` (a small filesystem).
    /// A [`TestServer::restart`] comes back with the default configuration there.
    pub async fn start_in(parent: &std::path::Path, tune: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir_in(parent).expect("temporary data directory");
        let clock = Arc::new(TestClock(AtomicI64::new(MORNING_MS)));
        let mut config = ServerConfig::dev(dir.path());
        tune(&mut config);
        let server = Server::open_with_clock(config, clock.clone()).expect("open server");
        Self::serving(dir, clock, server).await
    }

    /// Like [`TestServer::start`], its sled store behind a fault injector: the batches `faults`
    /// says fail. A [`TestServer::restart`] comes back on plain sled, on the same directory.
    pub async fn start_with_faults(faults: Arc<fieldsync_core::testing::faults::Faults>) -> Self {
        use fieldsync_core::testing::faults::FaultyKv;
        let dir = tempfile::tempdir().expect("temporary data directory");
        let clock = Arc::new(TestClock(AtomicI64::new(MORNING_MS)));
        let server = Server::open_on(ServerConfig::dev(dir.path()), clock.clone(), |sled| {
            Box::new(FaultyKv::new(sled, faults))
        })
        .expect("open server");
        Self::serving(dir, clock, server).await
    }

    /// `server`, opened on `dir`, serving on a new loopback port.
    async fn serving(dir: tempfile::TempDir, clock: Arc<TestClock>, server: Server) -> Self {
        let mut s = TestServer { dir, clock, running: None, port: 0 };
        s.listen(server).await;
        s
    }

    /// The server's data directory (its sled store lives in `db/` inside).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The disaster and the recovery: the server stops, its data directory is gone, and a server
    /// restored from `backup` into a new directory takes its place on the same port (devices keep
    /// their URL; tokens verify, the backup carries the secret).
    pub async fn replace_with_restore(
        &mut self,
        backup: &std::path::Path,
    ) -> fieldsync_server::backup::RestoreReport {
        self.stop().await;
        let dir = tempfile::tempdir().expect("temporary data directory");
        let report = fieldsync_server::backup::restore(backup, dir.path()).expect("the backup restores");
        self.dir = dir;
        self.boot().await;
        report
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

/// The status and headers (names lower-cased) of an HTTP/1.1 response head, without its final
/// blank line.
pub fn parse_response_head(head: &[u8]) -> Result<(u16, Vec<(String, String)>), String> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("not a status line: {head:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
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
                let (status, headers) = parse_response_head(&buf[..end])?;
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

/// An XLSX workbook: `header`, then `rows`; a cell that reads as a number is written as one (as
/// a person typing it into Excel gets), an empty one is left out.
pub fn workbook<S: AsRef<str>>(header: &[&str], rows: &[impl AsRef<[S]>]) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in header.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).expect("header");
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.as_ref().iter().enumerate() {
            let (r, c, v) = (r as u32 + 1, c as u16, v.as_ref());
            match v.parse::<f64>() {
                Ok(n) => sheet.write_number(r, c, n).map(|_| ()),
                Err(_) if v.is_empty() => Ok(()),
                Err(_) => sheet.write_string(r, c, v).map(|_| ()),
            }
            .expect("cell");
        }
    }
    book.save_to_buffer().expect("xlsx")
}

/// The machine a benchmark ran on, as one JSON line for its stdout: cores and the load averages
/// when it started (`/proc/loadavg`; `null` where the system does not tell), so figures from
/// machines of different sizes or a busy machine are read as such.
pub fn machine_line() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let load: Vec<String> = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).map(str::to_string).collect())
        .unwrap_or_default();
    let load =
        |i: usize| load.get(i).filter(|v| v.parse::<f64>().is_ok()).cloned().unwrap_or_else(|| "null".into());
    format!(
        "{{\"scenario\":\"machine\",\"cores\":{cores},\"load_1m\":{},\"load_5m\":{},\"load_15m\":{}}}",
        load(0),
        load(1),
        load(2)
    )
}
