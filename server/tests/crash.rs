//! Jepsen-style: the real `fieldsync` binary is killed with SIGKILL at random moments while phones
//! and tablets of two teams push, pull and bootstrap at once, and every acknowledged change must
//! survive every kill.
//!
//! Each device keeps a history of its requests — invoked, then ok, failed (the server said no, or
//! the request never reached it) or unknown (the connection died with the request in flight) — and
//! the change hashes the server acknowledged. The server runs with tiny bootstrap pages, compaction
//! after a few chunks and a feed trimmed every few milliseconds, so kills land during pushes,
//! pulls, bootstraps, compactions and trims. After each kill, with the process dead, the checker
//! opens the data directory itself and checks:
//!
//! 1. every acknowledged change hash is in its stored document, and no change is in two feed entries;
//! 2. the feed runs horizon+1..=head with no gap or duplicate, and every entry's changes (or grant
//!    snapshot) are in its document;
//! 3. the audience index (`list_docs` per member, and each document's stored audience) is what the
//!    documents say: owner and territory reps for customers, the rep for visits;
//!
//! then restarts the binary, lets every device finish its work (unknown pushes are retried and must
//! be taken once), and checks that
//!
//! 4. each device and the manager's fresh bootstrap agree: the same documents with the same heads,
//!    each device holding exactly its scope, never another team's; and so does a fresh bootstrap
//!    of one device's user (a different device each life).
//!
//! `FIELDSYNC_CRASH_KILLS` (default 50) and `FIELDSYNC_CRASH_SEED` (default 14) change the run;
//! e.g. `FIELDSYNC_CRASH_KILLS=500 cargo test -p fieldsync-server --test crash -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use automerge::{Automerge, Change, ChangeHash, ReadDoc};
use fieldsync_core::client::Replica;
use fieldsync_core::docs::{Audience, DocKind, Document};
use fieldsync_core::protocol::{CONTENT_TYPE, SyncRequest, SyncResponse};
use fieldsync_core::storage::{FeedBody, Storage};
use fieldsync_core::testing::fixtures::{self, LYON, offset, prepend_notes};
use fieldsync_core::testing::replica;
use fieldsync_core::{Principal, Role};
use fieldsync_server::{Server, ServerConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const BIN: &str = env!("CARGO_BIN_EXE_fieldsync");

/// 2026-11-30 09:00 UTC: the devices' clock for the visits they plan.
const MORNING_MS: i64 = 1_796_029_200_000;

/// Who works in each team: two territories sharing a rep, so customers are edited by several
/// people at once, and a manager who moves customers between territories (grants and revokes).
const TEAMS: [(&str, [&str; 3], &str); 2] =
    [("acme", ["alice", "bob", "carol"], "maria"), ("globex", ["dan", "erin", "frank"], "gina")];
const CUSTOMERS_PER_TEAM: usize = 8;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

struct Running {
    child: Child,
    url: String,
}

fn start(data: &Path) -> Running {
    let mut child = Command::new(BIN)
        .args(["serve", "--no-seed", "--addr", "127.0.0.1:0"])
        .args(["--bootstrap-page-docs", "3", "--compact-after-chunks", "4"])
        .args(["--feed-retain", "60", "--feed-trim-every", "20ms", "--min-free-space", "0"])
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fieldsync serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("server printed its address").expect("read stdout");
        if let Some(rest) = line.strip_prefix("fieldsync listening on ") {
            break rest.split_whitespace().next().expect("url").to_string();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Running { child, url }
}

/// SIGKILL, and reaped. A failing test drops its server the same way, so no process outlives it.
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kill(server: Running) {
    drop(server);
}

fn team_of(id: &str) -> &str {
    id.split('-').next().unwrap_or_default()
}

/// Both teams' territories and customers, written as the server (an import), before the first life.
fn seed(data: &Path) {
    let server = Server::open(ServerConfig::dev(data)).expect("open the data directory");
    for (team, reps, _) in TEAMS {
        let mut docs = vec![
            fixtures::territory(&format!("{team}-north"), &[reps[0], reps[1]]),
            fixtures::territory(&format!("{team}-south"), &[reps[1], reps[2]]),
        ];
        for i in 0..CUSTOMERS_PER_TEAM {
            let territory = if i % 2 == 0 { "north" } else { "south" };
            let owner = reps[i % 3];
            let at = offset(LYON, 300.0 * i as f64, 0.0);
            let territory = format!("{team}-{territory}");
            docs.push(fixtures::customer(&format!("{team}-c-{i}"), owner, Some(&territory), at).into());
        }
        server.engine().write_as_server(team, &docs, MORNING_MS).expect("seed");
    }
}

// ---------------------------------------------------------------------------------------------
// Devices and their histories
// ---------------------------------------------------------------------------------------------

/// What became of requests, over the whole run.
#[derive(Debug, Default)]
struct History {
    invoked: u64,
    ok: u64,
    failed: u64,
    unknown: u64,
    /// Change hashes the server acknowledged, by (team, document).
    acked: BTreeMap<(String, String), BTreeSet<ChangeHash>>,
}

impl History {
    fn merge(&mut self, other: History) {
        self.invoked += other.invoked;
        self.ok += other.ok;
        self.failed += other.failed;
        self.unknown += other.unknown;
        for (k, v) in other.acked {
            self.acked.entry(k).or_default().extend(v);
        }
    }
    fn acked_changes(&self) -> usize {
        self.acked.values().map(BTreeSet::len).sum()
    }
}

struct Phone {
    replica: Replica,
    token: String,
    rng: SmallRng,
    history: History,
    edits: u64,
}

enum Failure {
    /// The server answered with an error, or the request never reached it: nothing was acknowledged.
    Failed,
    /// The connection died with the request in flight: it may or may not have been applied.
    Unknown,
}

async fn exchange(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    req: &SyncRequest,
) -> Result<SyncResponse, Failure> {
    let sent = http
        .post(format!("{url}/v1/sync"))
        .bearer_auth(token)
        .header("content-type", CONTENT_TYPE)
        .body(req.encode())
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Err(Failure::Failed),
        Err(_) => return Err(Failure::Unknown),
    };
    if !resp.status().is_success() {
        return Err(Failure::Failed);
    }
    let body = resp.bytes().await.map_err(|_| Failure::Unknown)?;
    Ok(SyncResponse::decode(&body).expect("a 200 answer decodes"))
}

impl Phone {
    fn who(&self) -> &Principal {
        self.replica.principal()
    }

    /// One round trip, recorded; the response is applied to the replica.
    async fn sync_once(&mut self, http: &reqwest::Client, url: &str) -> Result<bool, Failure> {
        let req = self.replica.prepare_request();
        self.history.invoked += 1;
        let resp = match exchange(http, url, &self.token, &req).await {
            Ok(resp) => resp,
            Err(f) => {
                match f {
                    Failure::Failed => self.history.failed += 1,
                    Failure::Unknown => self.history.unknown += 1,
                }
                return Err(f);
            }
        };
        self.history.ok += 1;
        let team = self.who().team.clone();
        let rejected: BTreeSet<&str> = resp.rejected.iter().map(|r| r.doc_id.as_str()).collect();
        for a in resp.accepted.iter().filter(|a| !rejected.contains(a.doc_id.as_str())) {
            let held: BTreeSet<ChangeHash> = a
                .hashes
                .iter()
                .map(|h| ChangeHash::try_from(h.as_slice()).expect("a 32-byte hash"))
                .collect();
            let pushed = req.push.iter().find(|p| p.doc_id == a.doc_id).expect("accepted what was pushed");
            for bytes in &pushed.changes {
                let hash = Change::from_bytes(bytes.to_vec()).expect("own change").hash();
                assert!(
                    held.contains(&hash),
                    "{}: the server acknowledged {} without {hash}",
                    a.doc_id,
                    team
                );
            }
            self.history.acked.entry((team.clone(), a.doc_id.clone())).or_default().extend(held);
        }
        self.replica.apply_response(&resp).expect("the device applies the server's answer");
        Ok(resp.more)
    }

    /// Syncs until the server has nothing more and nothing is waiting to be sent.
    async fn settle(&mut self, http: &reqwest::Client, url: &str) {
        for _ in 0..200 {
            let more = match self.sync_once(http, url).await {
                Ok(more) => more,
                Err(_) => panic!("{}: the restarted server refused a sync", self.replica.device_id()),
            };
            if !more && self.replica.outbox_len() == 0 {
                return;
            }
        }
        panic!("{} never settled", self.replica.device_id());
    }

    /// Offline work: notes on customers in scope, visits planned; a manager also moves customers
    /// between territories, which grants them to some reps and revokes them from others.
    fn edit(&mut self) {
        let customers: Vec<String> = self
            .replica
            .doc_ids()
            .filter(|id| id.contains("-c-"))
            .filter(|id| matches!(self.replica.local(id).map(|d| d.kind()), Some(DocKind::Customer)))
            .cloned()
            .collect();
        if customers.is_empty() {
            return;
        }
        let id = customers[self.rng.random_range(0..customers.len())].clone();
        let now = MORNING_MS + self.edits as i64 * 1000;
        self.edits += 1;
        let device = self.replica.device_id().to_string();
        let (team, user, role) = (self.who().team.clone(), self.who().user.clone(), self.who().role);
        let roll = self.rng.random_range(0..10);
        let result = if role == Role::Manager && roll == 0 {
            self.replica.update(&id, now, |d| {
                if let Document::Customer(c) = d {
                    let north = format!("{team}-north");
                    let to = if c.territory.as_deref() == Some(north.as_str()) { "south" } else { "north" };
                    c.territory = Some(format!("{team}-{to}"));
                }
            })
        } else if role == Role::Rep && roll < 3 {
            let visit = format!("{team}-v-{device}-{}", self.edits);
            let planned = fixtures::visit(&visit, &id, &user, now);
            return self.replica.create(planned.into(), now).expect("plan a visit");
        } else {
            self.replica.update(&id, now, prepend_notes(&format!("{device} #{}. ", self.edits)))
        };
        result.expect("an edit in scope");
    }
}

// ---------------------------------------------------------------------------------------------
// The checker, on the stopped server's data directory
// ---------------------------------------------------------------------------------------------

/// The change chunks of a feed entry (Automerge's chunk framing: magic, checksum, type, LEB128
/// length, body), each parsed as a change.
fn changes_in(bytes: &[u8]) -> Vec<Change> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (mut len, mut shift, mut i) = (0usize, 0, 9);
        loop {
            let b = rest[i];
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        let (chunk, tail) = rest.split_at(i + len);
        out.push(Change::from_bytes(chunk.to_vec()).expect("a feed entry holds changes"));
        rest = tail;
    }
    out
}

#[derive(Debug, Default)]
struct Checked {
    acked_changes: usize,
    feed_entries: usize,
    documents: usize,
}

fn check_stored(data: &Path, history: &History, life: usize) -> Checked {
    let server = Server::open(ServerConfig::dev(data)).expect("the data directory opens after a kill");
    let storage = server.engine().storage();
    let mut checked = Checked::default();
    for (team, reps, manager) in TEAMS {
        let ids: Vec<String> = storage
            .list_docs(team, None, "", 1_000_000)
            .expect("list")
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut docs: HashMap<String, Automerge> = HashMap::new();
        let mut typed: HashMap<String, Document> = HashMap::new();
        for id in &ids {
            assert_eq!(team_of(id), team, "life {life}: {id} is stored in team {team}");
            let bytes = storage.load_doc(team, id).expect("load").expect("listed, so stored");
            let doc = Automerge::load(&bytes).unwrap_or_else(|e| panic!("life {life}: {id} loads: {e}"));
            typed
                .insert(id.clone(), Document::hydrate(&doc).unwrap_or_else(|e| panic!("{id} hydrates: {e}")));
            docs.insert(id.clone(), doc);
        }
        checked.documents += ids.len();

        // 1. Every acknowledged change is stored.
        for ((t, id), hashes) in history.acked.range((team.to_string(), String::new())..) {
            if t != team {
                break;
            }
            let doc = docs.get(id).unwrap_or_else(|| panic!("life {life}: acknowledged {id} is gone"));
            for h in hashes {
                assert!(
                    doc.get_change_by_hash(h).is_some(),
                    "life {life}: acknowledged change {h} of {id} lost"
                );
                checked.acked_changes += 1;
            }
        }

        // 2. The feed: numbered without gap or duplicate, its changes in their documents, no
        //    change written twice.
        let horizon = storage.feed_horizon(team).expect("horizon");
        let head = storage.feed_head(team).expect("head");
        let feed = storage.read_feed(team, horizon, 1_000_000).expect("feed");
        let seqs: Vec<u64> = feed.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (horizon + 1..=head).collect::<Vec<_>>(), "life {life}: {team}'s feed has a gap");
        let mut in_feed: HashMap<ChangeHash, u64> = HashMap::new();
        for e in &feed {
            let doc = docs
                .get(&e.doc_id)
                .unwrap_or_else(|| panic!("life {life}: feed entry {} of a missing doc", e.seq));
            match &e.body {
                FeedBody::Changes(bytes) => {
                    for c in changes_in(bytes) {
                        assert!(
                            doc.get_change_by_hash(&c.hash()).is_some(),
                            "feed {} of {}: not stored",
                            e.seq,
                            e.doc_id
                        );
                        if let Some(before) = in_feed.insert(c.hash(), e.seq) {
                            panic!(
                                "life {life}: change {} of {} in feed entries {before} and {}",
                                c.hash(),
                                e.doc_id,
                                e.seq
                            );
                        }
                    }
                }
                FeedBody::Grant { snapshot, .. } => {
                    let granted = Automerge::load(snapshot).expect("a grant's snapshot loads");
                    for h in granted.get_heads() {
                        assert!(
                            doc.get_change_by_hash(&h).is_some(),
                            "grant {} of {}: not stored",
                            e.seq,
                            e.doc_id
                        );
                    }
                }
                FeedBody::Revoke { .. } => {}
            }
        }
        checked.feed_entries += feed.len();

        // 3. The audience index is what the documents say.
        let territory_reps = |t: &str| match typed.get(t) {
            Some(Document::Territory(t)) => t.reps.clone(),
            _ => vec![],
        };
        let mut expected: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (id, doc) in &typed {
            let audience = doc.audience(&territory_reps);
            let meta = storage.doc_meta(team, id).expect("meta").expect("stored");
            assert_eq!(meta.audience, audience, "life {life}: stored audience of {id}");
            for user in reps.iter().chain([&manager]) {
                if audience.includes(user) || matches!(audience, Audience::Team) {
                    expected.entry(*user).or_default().insert(id.clone());
                }
            }
        }
        for user in reps {
            let listed: BTreeSet<String> = storage
                .list_docs(team, Some(user), "", 1_000_000)
                .expect("list")
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            assert_eq!(
                listed,
                expected.remove(user).unwrap_or_default(),
                "life {life}: {user}'s audience index"
            );
        }
    }
    checked
}

// ---------------------------------------------------------------------------------------------
// Agreement, on the restarted server
// ---------------------------------------------------------------------------------------------

/// A fresh replica of `who`, bootstrapped page by page: what a new phone of that user gets.
async fn bootstrap(http: &reqwest::Client, url: &str, token: &str, who: &Principal, name: &str) -> Replica {
    let mut fresh = replica(name, &who.team, &who.user, who.role);
    for _ in 0..500 {
        let req = fresh.prepare_request();
        let resp =
            exchange(http, url, token, &req).await.unwrap_or_else(|_| panic!("{name}: bootstrap refused"));
        if !fresh.apply_response(&resp).expect("apply").more {
            return fresh;
        }
    }
    panic!("{name}: bootstrap never ended");
}

fn view(r: &Replica) -> BTreeMap<String, Vec<ChangeHash>> {
    r.doc_ids().map(|id| (id.clone(), r.heads(id).expect("held"))).collect()
}

async fn check_agreement(
    http: &reqwest::Client,
    url: &str,
    phones: &[Phone],
    tokens: &HashMap<String, String>,
    life: usize,
) {
    for (team, _, manager) in TEAMS {
        let token = &tokens[&format!("{team}/{manager}")];
        let who = Principal { team: team.into(), user: manager.into(), role: Role::Manager };
        let boss = bootstrap(http, url, token, &who, &format!("{manager}-fresh-{life}")).await;
        let whole = view(&boss);
        assert!(
            whole.keys().all(|id| team_of(id) == team),
            "life {life}: {team}'s manager sees another team"
        );
        let territory_reps = |t: &str| match boss.get(t) {
            Some(Document::Territory(t)) => t.reps.clone(),
            _ => vec![],
        };
        // Every device is compared each life; a fresh bootstrap is made for one of them in turn.
        let team_phones: Vec<&Phone> = phones.iter().filter(|p| p.who().team == team).collect();
        for (i, phone) in team_phones.iter().enumerate() {
            let who = phone.who();
            let scope: BTreeMap<String, Vec<ChangeHash>> = whole
                .iter()
                .filter(|(id, _)| {
                    who.role.sees_whole_team()
                        || boss.get(id).expect("held").audience(&territory_reps).includes(&who.user)
                })
                .map(|(id, h)| (id.clone(), h.clone()))
                .collect();
            let name = phone.replica.device_id();
            assert_eq!(
                view(&phone.replica),
                scope,
                "life {life}: {name} holds exactly its scope, as the manager sees it"
            );
            if i == life % team_phones.len() {
                let token = &tokens[&format!("{team}/{}", who.user)];
                let fresh = bootstrap(http, url, token, who, &format!("{name}-fresh-{life}")).await;
                assert_eq!(view(&fresh), scope, "life {life}: a fresh bootstrap of {} agrees", who.user);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_while_two_teams_sync_loses_no_acknowledged_change() {
    let kills = env_or("FIELDSYNC_CRASH_KILLS", 50) as usize;
    let seed_value = env_or("FIELDSYNC_CRASH_SEED", 14);
    let mut rng = SmallRng::seed_from_u64(seed_value);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("http client");

    // 1. Two teams, each with three reps (four phones: alice and dan have two) and a manager's
    //    tablet: 10 devices, plus a new phone bootstrapping again and again in each team.
    seed(data);
    let mut tokens = HashMap::new();
    {
        let server = Server::open(ServerConfig::dev(data)).expect("open");
        for (team, reps, manager) in TEAMS {
            for (user, role) in reps.iter().map(|r| (*r, Role::Rep)).chain([(manager, Role::Manager)]) {
                let token = server
                    .auth()
                    .issue(
                        team,
                        user,
                        role,
                        Duration::from_secs(24 * 3600),
                        fieldsync_server::auth::unix_now(),
                    )
                    .expect("token");
                tokens.insert(format!("{team}/{user}"), token);
            }
        }
    }
    let mut phones: Vec<Phone> = Vec::new();
    for (team, reps, manager) in TEAMS {
        let mut devices: Vec<(String, &str, Role)> =
            reps.iter().map(|r| (format!("{r}-phone"), *r, Role::Rep)).collect();
        devices.push((format!("{}-tablet", reps[0]), reps[0], Role::Rep));
        devices.push((format!("{manager}-tablet"), manager, Role::Manager));
        for (name, user, role) in devices {
            phones.push(Phone {
                replica: replica(&name, team, user, role),
                token: tokens[&format!("{team}/{user}")].clone(),
                rng: SmallRng::seed_from_u64(rng.random()),
                history: History::default(),
                edits: 0,
            });
        }
    }
    assert!(phones.len() >= 10);

    let mut history = History::default();
    let mut verified = 0usize;
    let mut feed_checked = 0usize;
    let mut server = start(data);
    for p in &mut phones {
        p.settle(&http, &server.url).await;
    }

    for life in 0..kills {
        // 2. Everybody works at once: edits, syncs, and new phones bootstrapping, until SIGKILL.
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for mut phone in phones.drain(..) {
            let (http, url, stop) = (http.clone(), server.url.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    for _ in 0..phone.rng.random_range(0..3) {
                        phone.edit();
                    }
                    if phone.sync_once(&http, &url).await.is_err() {
                        break;
                    }
                }
                phone
            }));
        }
        let mut bootstraps = Vec::new();
        for (t, (team, reps, _)) in TEAMS.iter().enumerate() {
            let (http, url, stop) = (http.clone(), server.url.clone(), stop.clone());
            let user = reps[(life + t) % reps.len()];
            let token = tokens[&format!("{team}/{user}")].clone();
            let who = Principal { team: team.to_string(), user: user.into(), role: Role::Rep };
            bootstraps.push(tokio::spawn(async move {
                let mut n = 0;
                'phones: while !stop.load(Ordering::SeqCst) {
                    let mut fresh =
                        replica(&format!("{user}-new-{life}-{n}"), &who.team, &who.user, who.role);
                    n += 1;
                    loop {
                        let req = fresh.prepare_request();
                        let Ok(resp) = exchange(&http, &url, &token, &req).await else { break 'phones };
                        if !fresh.apply_response(&resp).expect("apply a bootstrap page").more {
                            break;
                        }
                    }
                }
            }));
        }
        let delay = match rng.random_range(0..10) {
            0 => rng.random_range(0..5),
            _ => rng.random_range(5..300),
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        kill(server);
        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            phones.push(t.await.expect("a device task"));
        }
        for b in bootstraps {
            b.await.expect("a bootstrapping phone");
        }
        for p in &mut phones {
            history.merge(std::mem::take(&mut p.history));
        }

        // 3. With the process dead, the data directory itself.
        let checked = check_stored(data, &history, life);
        verified += checked.acked_changes;
        feed_checked += checked.feed_entries;

        // 4. A new life: unknown pushes are retried, everything settles, and all views agree.
        server = start(data);
        for p in &mut phones {
            p.settle(&http, &server.url).await;
        }
        for p in &mut phones {
            p.settle(&http, &server.url).await;
            history.merge(std::mem::take(&mut p.history));
        }
        check_agreement(&http, &server.url, &phones, &tokens, life).await;
    }
    kill(server);

    // 5. What the run proved, and that it proved something.
    let last = check_stored(data, &history, kills);
    eprintln!(
        "{kills} kills survived (seed {seed_value}); requests: {} invoked, {} ok, {} failed, {} unknown; \
         {} distinct acknowledged changes, {verified} change checks, {feed_checked} feed entries checked; \
         {} documents at the end",
        history.invoked,
        history.ok,
        history.failed,
        history.unknown,
        history.acked_changes(),
        last.documents,
    );
    assert!(history.unknown > 0, "no kill ever caught a request in flight");
    assert!(history.acked_changes() > 100 * TEAMS.len(), "too little work to prove anything");
}
